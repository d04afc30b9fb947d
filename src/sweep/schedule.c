/* schedule.c - the rounds of a sweep and successive halving. A grid has
 * one round of every trial; successive halving trains every trial to
 * halving_epochs, then the best halving_keep of them halving_epochs more,
 * and so on to train.epochs. Who takes part in a round follows from the
 * journal alone, so a resumed sweep plans exactly what the first run
 * would have. */
#include <math.h>
#include <stdlib.h>

#include "sweep_impl.h"

int sweep_nrounds(const cnn_config_t *cfg)
{
    if (cfg->sweep.mode != CNN_SWEEP_HALVING) return 1;
    return (cfg->train.epochs + cfg->sweep.halving_epochs - 1) / cfg->sweep.halving_epochs;
}

int sweep_round_target(const cnn_config_t *cfg, int r)
{
    const int E = cfg->train.epochs;
    if (cfg->sweep.mode != CNN_SWEEP_HALVING) return E;
    long t = (long)(r + 1) * cfg->sweep.halving_epochs;
    return t < E ? (int)t : E;
}

int sweep_keep_count(const cnn_config_t *cfg, int m)
{
    int keep = (int)ceil(m * cfg->sweep.halving_keep - 1e-9);
    return keep < 1 ? 1 : keep;
}

cnn_status_t sweep_plan_init(sweep_plan_t *pl, int n)
{
    const size_t m = (size_t)n;
    pl->n = n;
    pl->member = malloc(sizeof(int) * m);
    pl->reached = malloc(sizeof(int) * m);
    pl->last = malloc(sizeof(sweep_record_t *) * m);
    pl->seconds = malloc(sizeof(double) * m);
    pl->order = malloc(sizeof(int) * m);
    if (!pl->member || !pl->reached || !pl->last || !pl->seconds || !pl->order)
        return CNN_ENOMEM;
    return CNN_OK;
}

void sweep_plan_free(sweep_plan_t *pl)
{
    free(pl->member);
    free(pl->reached);
    free(pl->last);
    free(pl->seconds);
    free(pl->order);
}

/* Sort key of a trial (see sweep_rank_trials()). */
typedef struct {
    int reached, ok;
    double val;
    int trial;
} rank_key_t;

static int cmp_keys(const void *pa, const void *pb)
{
    const rank_key_t *a = pa, *b = pb;
    if (a->reached != b->reached) return b->reached - a->reached;
    if (a->ok != b->ok) return b->ok - a->ok;
    if (a->val != b->val) return a->val > b->val ? -1 : 1;
    return a->trial - b->trial;
}

cnn_status_t sweep_rank_trials(const sweep_plan_t *pl, int *idx, int n)
{
    rank_key_t *k = malloc(sizeof *k * (size_t)(n + 1));
    if (!k) return cnn_error_set(CNN_ENOMEM, "out of memory ranking the trials");
    for (int i = 0; i < n; i++) {
        const sweep_record_t *r = pl->last[idx[i]];
        k[i].reached = pl->reached[idx[i]];
        k[i].ok = r && r->ok;
        k[i].val = k[i].ok && !isnan(r->val_acc) ? r->val_acc : -1.0;
        k[i].trial = idx[i];
    }
    qsort(k, (size_t)n, sizeof *k, cmp_keys);
    for (int i = 0; i < n; i++) idx[i] = k[i].trial;
    free(k);
    return CNN_OK;
}

/* Every trial a member of round 0, no record yet; the time of each trial
 * summed over its records up to round r. */
static void plan_start(sweep_plan_t *pl, const sweep_journal_t *j, int r)
{
    for (int t = 0; t < pl->n; t++) {
        pl->member[t] = 1;
        pl->reached[t] = 0;
        pl->last[t] = NULL;
        pl->seconds[t] = 0.0;
    }
    for (int i = 0; i < j->n; i++)
        if (j->rec[i].round <= r) pl->seconds[j->rec[i].trial] += j->rec[i].seconds;
}

/* The members of round q + 1: the best of round q's members that
 * succeeded. */
static cnn_status_t next_members(sweep_plan_t *pl, const cnn_config_t *cfg, int q)
{
    int m = 0;
    for (int t = 0; t < pl->n; t++)
        if (pl->member[t]) pl->order[m++] = t;
    CNN_TRY(sweep_rank_trials(pl, pl->order, m));
    const int keep = sweep_keep_count(cfg, m);
    for (int t = 0; t < pl->n; t++) pl->member[t] = 0;
    for (int i = 0; i < keep && i < m; i++) {
        const int t = pl->order[i];
        if (pl->last[t] && pl->last[t]->ok) {
            pl->member[t] = 1;
            pl->reached[t] = q + 1;
        }
    }
    return CNN_OK;
}

cnn_status_t sweep_plan_round(sweep_plan_t *pl, const sweep_journal_t *j,
                              const cnn_config_t *cfg, int r)
{
    plan_start(pl, j, r);
    for (int q = 0;; q++) {
        for (int i = 0; i < j->n; i++) {
            const sweep_record_t *rec = &j->rec[i];
            if (rec->round == q && pl->member[rec->trial]) pl->last[rec->trial] = rec;
        }
        if (q == r) break;
        CNN_TRY(next_members(pl, cfg, q));
    }
    return CNN_OK;
}
