/* runner.c - cnn_sweep_run(): the groups of ranks, the journal opened or
 * resumed, and the rounds, each trial handed to the next free group
 * through an atomic counter on rank 0 (sweep_impl.h says who does what). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpicnn/dataprep.h"
#include "mpicnn/dist.h"
#include "mpicnn/fs.h"
#include "mpicnn/train.h"
#include "sweep_impl.h"

/* ------------------------------------------------------------------ */
/* one trial                                                           */

static int trial_failure_is_fatal(cnn_status_t st)
{
    /* the trial's own fault goes in the journal; the machine's ends the sweep */
    return st == CNN_EIO || st == CNN_ECOMM || st == CNN_EINTERNAL || st == CNN_ESTOPPED;
}

/* Trial t's config for round r into s->tcfg; agreed over the group. */
static cnn_status_t trial_config(sweep_t *s, int t, int r)
{
    const int target = sweep_round_target(s->cfg, r);
    *s->tcfg = *s->cfg;
    cnn_status_t st = cnn_sweep_point_config(s->grid, t, s->tcfg);
    if (st == CNN_OK && target != s->cfg->train.epochs) {
        char a[64];
        snprintf(a, sizeof a, "train.epochs=%d", target);
        st = cnn_config_set(s->tcfg, a);
    }
    if (st != CNN_OK) cnn_error_prefix("trial %d", t);
    return cnn_dist_agree(s->group, st);
}

/* The journal record of trial t's run in round r that ended with st. */
static void make_record(const sweep_t *s, int t, int r, cnn_status_t st,
                        const cnn_train_result_t *res, double secs, sweep_record_t *rec)
{
    *rec = (sweep_record_t){.trial = t, .round = r, .point = s->grid->hash[t],
                            .ok = st == CNN_OK, .code = (int)st,
                            .val_acc = res->val_acc, .val_loss = res->val_loss,
                            .best_epoch = res->best_epoch, .epochs_run = res->epochs_run,
                            .stopped_early = res->stopped_early, .seconds = secs,
                            .group = s->gid, .ranks = s->R};
    if (st != CNN_OK)
        snprintf(rec->reason, sizeof rec->reason, "%s: %s", cnn_status_name(st),
                 cnn_error_message());
}

/* The group leader's line about a finished trial. */
static void print_trial(const sweep_t *s, const sweep_record_t *rec)
{
    char round[48] = "", label[1024];
    if (s->nrounds > 1)
        snprintf(round, sizeof round, "round %d/%d, ", rec->round + 1, s->nrounds);
    cnn_sweep_point_label(s->grid, rec->trial, label, sizeof label);
    if (rec->ok)
        printf("%strial %d/%d [%s] val %.4f (epoch %d of %d) %.1f s on %d rank%s (group %d)\n",
               round, rec->trial, s->n, label, rec->val_acc, rec->best_epoch, rec->epochs_run,
               rec->seconds, s->R, s->R > 1 ? "s" : "", s->gid);
    else
        printf("%strial %d/%d [%s] FAILED after %.1f s (group %d): %s\n", round, rec->trial,
               s->n, label, rec->seconds, s->gid, rec->reason);
    fflush(stdout);
}

/* Trains trial t for round r on the group. Returns a fatal status only;
 * a failed trial is journaled as failed. */
static cnn_status_t run_trial(sweep_t *s, int t, int r, int resume)
{
    char dir[CNN_PATH_MAX + 32], tag[48];
    snprintf(dir, sizeof dir, "%s/trials/%d", s->dir, t);
    snprintf(tag, sizeof tag, "trial %d: ", t);
    cnn_train_result_t res;
    memset(&res, 0, sizeof res);
    res.val_acc = res.val_loss = NAN;

    cnn_status_t st = trial_config(s, t, r);
    const double t0 = MPI_Wtime();
    if (st == CNN_OK) {
        cnn_train_opts_t o = {.comm = s->group, .out_dir = dir, .resume = resume, .quiet = 1,
                              .progress = CNN_PROGRESS_NONE,
                              .data = s->have_data ? &s->data : NULL, .tag = tag,
                              .skip_test = 1};
        st = cnn_train(s->tcfg, &o, &res);
    }
    const double secs = MPI_Wtime() - t0;
    if (trial_failure_is_fatal(st)) return st;
    if (s->grank != 0) return CNN_OK;

    sweep_record_t rec;
    make_record(s, t, r, st, &res, secs, &rec);
    cnn_status_t jst = sweep_journal_append(s->journal, &rec);
    if (!s->opts->quiet) print_trial(s, &rec);
    return jst;
}

/* ------------------------------------------------------------------ */
/* one round                                                           */

/* The counter: one int64 in a window hosted on rank 0, set to 0. */
static cnn_status_t counter_create(const sweep_t *s, MPI_Win *win)
{
    cnn_status_t st = CNN_OK;
    int64_t *counter = NULL;
    CNN_MPI_CHECK(st, MPI_Win_allocate(s->rank == 0 ? (MPI_Aint)sizeof(int64_t) : 0,
                                       (int)sizeof(int64_t), MPI_INFO_NULL, s->comm, &counter,
                                       win), error);
    CNN_MPI_CHECK(st, MPI_Win_set_errhandler(*win, MPI_ERRORS_RETURN), error);
    if (s->rank == 0) {
        CNN_MPI_CHECK(st, MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, *win), error);
        *counter = 0;
        CNN_MPI_CHECK(st, MPI_Win_unlock(0, *win), error);
    }
    CNN_MPI_CHECK(st, MPI_Barrier(s->comm), error);
error:
    return st;
}

/* Group leader: the next trial of the round into msg[0] (-1 when the list
 * is used up), and in msg[1] whether it resumes from its checkpoint. */
static cnn_status_t draw_trial(const sweep_t *s, MPI_Win win, int npending, int msg[2])
{
    cnn_status_t st = CNN_OK;
    const int64_t one = 1;
    int64_t pos = 0;
    CNN_MPI_CHECK(st, MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win), error);
    CNN_MPI_CHECK(st, MPI_Fetch_and_op(&one, &pos, MPI_INT64_T, 0, 0, MPI_SUM, win), error);
    CNN_MPI_CHECK(st, MPI_Win_unlock(0, win), error);
    if (pos < npending) {
        char ck[CNN_PATH_MAX + 64];
        msg[0] = s->pending[pos];
        snprintf(ck, sizeof ck, "%s/trials/%d/checkpoint.h5", s->dir, msg[0]);
        msg[1] = access(ck, F_OK) == 0;
    }
error:
    return st;
}

/* Runs the trials pending[0..npending) of round r: leaders draw list
 * positions from a counter on rank 0 until the list is used up. */
static cnn_status_t run_round(sweep_t *s, int r, int npending)
{
    cnn_status_t st = CNN_OK, local = CNN_OK;
    MPI_Win win = MPI_WIN_NULL;
    if ((st = counter_create(s, &win)) != CNN_OK) goto error;
    while (s->group != MPI_COMM_NULL) {
        int msg[2] = {-1, 0}; /* trial, resume from its checkpoint */
        if (s->grank == 0 && local == CNN_OK && !cnn_train_stop_requested())
            local = draw_trial(s, win, npending, msg);
        CNN_MPI_CHECK(local, MPI_Bcast(msg, 2, MPI_INT, 0, s->group), done);
        if (msg[0] < 0) break;
        if (local == CNN_OK) local = run_trial(s, msg[0], r, msg[1]);
        if (local == CNN_OK && s->grank == 0) s->nrun++;
    }
done:
    /* every rank gets here, failed or not, so the barrier always matches */
    st = cnn_dist_idle_barrier(s->comm);
    if (local != CNN_OK) st = local;
error:
    if (win != MPI_WIN_NULL) {
        cnn_status_t fst = CNN_OK;
        CNN_MPI_CHECK(fst, MPI_Win_free(&win), freed);
    freed:
        if (st == CNN_OK) st = fst;
    }
    return cnn_dist_agree(s->comm, st);
}

/* Rank 0: the trials round r runs, into s->pending; counts in hdr
 * (pending, taking part). */
static cnn_status_t plan_round(sweep_t *s, int r, int hdr[2])
{
    if (r > 0)
        CNN_TRY(sweep_journal_read(s->journal, s->header, s->grid->hash, s->n, 0, &s->j));
    CNN_TRY(sweep_plan_round(&s->plan, &s->j, s->cfg, r));
    int skipped = 0;
    hdr[0] = hdr[1] = 0;
    for (int t = 0; t < s->n; t++) {
        if (!s->plan.member[t]) continue;
        hdr[1]++;
        const sweep_record_t *l = s->plan.last[t];
        if (!l || (l->round < r && !l->stopped_early)) s->pending[hdr[0]++] = t;
        else if (l->round == r) skipped++;
    }
    s->nskipped += skipped;
    if (!s->opts->quiet && hdr[1] > 0) {
        const int target = sweep_round_target(s->cfg, r);
        if (s->nrounds > 1)
            printf("round %d/%d: %d trial%s to %d epoch%s\n", r + 1, s->nrounds, hdr[1],
                   hdr[1] == 1 ? "" : "s", target, target == 1 ? "" : "s");
        if (skipped)
            printf("resuming: %d of %d trial%s already finished, skipping them; %d to run\n",
                   skipped, hdr[1], hdr[1] == 1 ? "" : "s", hdr[0]);
        fflush(stdout);
    }
    return CNN_OK;
}

/* Every round: rank 0 plans it, everyone runs it. */
static cnn_status_t run_rounds(sweep_t *s)
{
    cnn_status_t st = CNN_OK;
    for (int r = 0; r < s->nrounds; r++) {
        int hdr[2] = {0, 0};
        if (s->rank == 0) st = plan_round(s, r, hdr);
        CNN_TRY(cnn_dist_agree(s->comm, st));
        CNN_MPI_CHECK(st, MPI_Bcast(hdr, 2, MPI_INT, 0, s->comm), error);
        if (hdr[1] == 0) break; /* every trial failed */
        if (hdr[0] == 0) continue;
        CNN_MPI_CHECK(st, MPI_Bcast(s->pending, hdr[0], MPI_INT, 0, s->comm), error);
        st = run_round(s, r, hdr[0]);
        if (st == CNN_ESTOPPED)
            return cnn_error_set(CNN_ESTOPPED,
                                 "stopped by a signal; the trials in flight checkpointed: run "
                                 "the same sweep with --resume --out %s to continue", s->dir);
        CNN_TRY(st);
    }
error:
    return st;
}

/* ------------------------------------------------------------------ */
/* set-up                                                              */

/* Rank 0, --resume: the journal read (and a torn last line cut off). A
 * journal written by a version without some of this version's config
 * keys is matched through DIR/sweep.ini; a sweep started before that
 * file existed gets it now, so that it survives the next new key. */
static cnn_status_t resume_journal(sweep_t *s)
{
    if (sweep_journal_has_header(s->journal, s->header)) {
        char ini[CNN_PATH_MAX + 32];
        snprintf(ini, sizeof ini, "%s/%s", s->dir, SWEEP_CONFIG_NAME);
        if (access(ini, F_OK) != 0) CNN_TRY(sweep_config_save(s));
    } else {
        int matched = 0;
        CNN_TRY(sweep_config_match_older(s, &matched));
    }
    return sweep_journal_read(s->journal, s->header, s->grid->hash, s->n, 1, &s->j);
}

/* Rank 0: the sweep directory and the journal (new, or checked for
 * --resume). */
static cnn_status_t open_journal(sweep_t *s)
{
    CNN_TRY(cnn_fs_mkdir_p(s->dir));
    const int exists = access(s->journal, F_OK) == 0;
    if (exists && !s->opts->resume)
        return cnn_error_set(CNN_EUSAGE,
                             "%s already holds a sweep (%s): add --resume to continue it, or "
                             "choose another --out", s->dir, SWEEP_JOURNAL_NAME);
    if (!exists && s->opts->resume)
        return cnn_error_set(CNN_EUSAGE, "--resume: %s does not exist", s->journal);
    if (exists) return resume_journal(s);
    CNN_TRY(sweep_config_save(s));
    return sweep_journal_create(s->journal, s->dir, s->header);
}

static void print_intro(const sweep_t *s)
{
    const cnn_sweep_grid_t *g = s->grid;
    printf("sweep %s: %d trial%s", s->cfg->source, s->n, s->n == 1 ? "" : "s");
    if (g->nkeys) {
        printf(" (");
        for (int k = 0; k < g->nkeys; k++) printf("%s%s", k ? " x " : "", g->key[k]);
        printf(")");
    }
    printf("; %d group%s of %d rank%s; writing %s\n", s->ngroups, s->ngroups == 1 ? "" : "s",
           s->R, s->R == 1 ? "" : "s", s->dir);
    if (s->ngroups * s->R < s->size)
        printf("warning: sweep.ranks_per_trial = %d does not divide %d ranks: rank%s %d..%d "
               "idle\n", s->R, s->size, s->size - s->ngroups * s->R > 1 ? "s" : "",
               s->ngroups * s->R, s->size - 1);
    if (s->nrounds > 1) {
        printf("successive halving: %d rounds, keeping %.3g of the trials after each:",
               s->nrounds, s->cfg->sweep.halving_keep);
        int m = s->n;
        for (int r = 0; r < s->nrounds; r++) {
            const int target = sweep_round_target(s->cfg, r);
            printf("%s %d to %d epoch%s", r ? "," : "", m, target, target == 1 ? "" : "s");
            m = sweep_keep_count(s->cfg, m);
        }
        printf("\n");
    }
    if (s->cfg->data.validation <= 0)
        printf("warning: no validation split (data.validation = 0): trials cannot be "
               "ranked by validation accuracy\n");
    fflush(stdout);
}

static void sweep_free(sweep_t *s)
{
    cnn_sweep_grid_free(s->grid);
    cnn_data_free(&s->data);
    free(s->tcfg);
    free(s->j.rec);
    sweep_plan_free(&s->plan);
    free(s->pending);
}

/* The grid (the same on every rank), the scratch sized by it, the number
 * of groups and rounds and the journal's header; collective. */
static cnn_status_t setup_grid(sweep_t *s)
{
    const cnn_config_t *cfg = s->cfg;
    cnn_status_t st = cnn_sweep_grid(cfg, &s->grid);
    if (st == CNN_OK) {
        s->n = s->grid->npoints;
        s->tcfg = malloc(sizeof *s->tcfg);
        s->pending = malloc(sizeof(int) * (size_t)s->n);
        if (sweep_plan_init(&s->plan, s->n) != CNN_OK || !s->tcfg || !s->pending)
            st = cnn_error_set(CNN_ENOMEM, "out of memory setting up the sweep");
    }
    s->R = cfg->sweep.ranks_per_trial;
    if (st == CNN_OK && s->R > s->size)
        st = cnn_error_set(CNN_ECONFIG,
                           "%s: sweep.ranks_per_trial = %d needs at least %d ranks; this run "
                           "has %d", cfg->source, s->R, s->R, s->size);
    CNN_TRY(cnn_dist_agree(s->comm, st));
    s->ngroups = s->size / s->R;
    s->nrounds = sweep_nrounds(cfg);
    sweep_journal_header(s->header, sizeof s->header, s->n,
                         sweep_grid_hash(s->grid->hash, s->n));
    return CNN_OK;
}

/* Groups: ranks [gR, gR + R) train together; the rest (size % R) idle. */
static cnn_status_t setup_groups(sweep_t *s)
{
    cnn_status_t st = CNN_OK;
    const int color = s->rank < s->ngroups * s->R ? s->rank / s->R : MPI_UNDEFINED;
    CNN_MPI_CHECK(st, MPI_Comm_split(s->comm, color, s->rank, &s->group), error);
    s->gid = color == MPI_UNDEFINED ? -1 : color;
    if (s->group != MPI_COMM_NULL) {
        st = cnn_dist_prepare(s->group);
        if (st == CNN_OK) CNN_MPI_CHECK(st, MPI_Comm_rank(s->group, &s->grank), error);
    }
error:
    return st;
}

/* The grid, the groups, the journal and the data; collective. */
static cnn_status_t sweep_setup(sweep_t *s)
{
    cnn_status_t st = CNN_OK;
    CNN_TRY(cnn_dist_prepare(s->comm));
    CNN_MPI_CHECK(st, MPI_Comm_rank(s->comm, &s->rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(s->comm, &s->size), error);
    snprintf(s->dir, sizeof s->dir, "%s", s->opts->out_dir);
    snprintf(s->journal, sizeof s->journal, "%s/%s", s->dir, SWEEP_JOURNAL_NAME);
    CNN_TRY(setup_grid(s));
    st = setup_groups(s);
    if (st == CNN_OK && s->rank == 0) st = open_journal(s);
    CNN_TRY(cnn_dist_agree(s->comm, st));
    /* the hashes the journal's records carry, which --resume of an older
     * sweep may have changed on rank 0 */
    CNN_MPI_CHECK(st, MPI_Bcast(s->grid->hash, s->n, MPI_UINT64_T, 0, s->comm), error);

    /* the data once per rank, unless trials differ in it */
    int swept_data = 0;
    for (int k = 0; k < s->grid->nkeys; k++) swept_data |= !strncmp(s->grid->key[k], "data.", 5);
    if (!swept_data) {
        st = cnn_data_prepare(s->cfg, 1, &s->data);
        s->have_data = st == CNN_OK;
        CNN_TRY(cnn_dist_agree(s->comm, st));
    }
    if (s->rank == 0 && !s->opts->quiet) print_intro(s);
error:
    return st;
}

/* ------------------------------------------------------------------ */

/* The results on every rank, the best model scored, the summary. */
static cnn_status_t finish(sweep_t *s, cnn_sweep_result_t *res, double t_start)
{
    cnn_status_t st = CNN_OK;
    int best[2] = {-1, 0};
    if (s->rank == 0) st = sweep_write_results(s, res, best);
    CNN_TRY(cnn_dist_agree(s->comm, st));
    /* every rank reports the same */
    int c[5] = {best[0], best[1], res->nok, res->nfailed, s->nskipped};
    CNN_MPI_CHECK(st, MPI_Bcast(c, 5, MPI_INT, 0, s->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(&res->best_val_acc, 1, MPI_DOUBLE, 0, s->comm), error);
    CNN_MPI_CHECK(st, MPI_Allreduce(&s->nrun, &res->nrun, 1, MPI_INT, MPI_SUM, s->comm), error);
    res->best = c[0];
    res->nok = c[2];
    res->nfailed = c[3];
    res->nskipped = c[4];
    res->ntrials = s->n;
    if (res->best >= 0) CNN_TRY(sweep_score_best(s, res->best, res));
    res->seconds = MPI_Wtime() - t_start;
    if (s->rank == 0 && !s->opts->quiet) sweep_print_summary(s, res);
    if (res->best < 0)
        st = cnn_error_set(c[1] ? (cnn_status_t)c[1] : CNN_EINTERNAL,
                           "no trial succeeded (%s/sweep.csv gives the reasons)", s->dir);
error:
    return st;
}

cnn_status_t cnn_sweep_run(const cnn_config_t *cfg, const cnn_sweep_opts_t *opts,
                           cnn_sweep_result_t *res)
{
    const double t_start = MPI_Wtime();
    sweep_t s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.opts = opts;
    s.comm = opts->comm;
    s.group = MPI_COMM_NULL;
    memset(res, 0, sizeof *res);
    res->best = -1;
    res->best_val_acc = res->test_acc = NAN;

    cnn_status_t st = sweep_setup(&s);
    if (st == CNN_OK) st = run_rounds(&s);
    if (st == CNN_OK) st = finish(&s, res, t_start);
    if (s.group != MPI_COMM_NULL) {
        cnn_status_t fst = CNN_OK;
        CNN_MPI_CHECK(fst, MPI_Comm_free(&s.group), freed);
    freed:
        if (st == CNN_OK) st = fst;
    }
    sweep_free(&s);
    return st;
}
