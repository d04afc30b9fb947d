/* report.c - the end of a sweep: the trials ranked from the journal,
 * DIR/sweep.csv and DIR/best/model.h5 (both written atomically through
 * fs.h), the best model scored on the test set, the table on the
 * terminal. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/dataprep.h"
#include "mpicnn/dist.h"
#include "mpicnn/evaluate.h"
#include "mpicnn/fs.h"
#include "mpicnn/loss.h"
#include "mpicnn/model.h"
#include "mpicnn/net.h"
#include "sweep_impl.h"

/* A CSV field, quoted when it needs to be. */
static void csv_field(FILE *f, const char *v)
{
    if (!strpbrk(v, ",\"\n\r")) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (; *v; v++) {
        if (*v == '"') fputc('"', f);
        fputc(*v, f);
    }
    fputc('"', f);
}

/* The row of trial t, ranked i + 1. */
static void csv_row(FILE *f, const sweep_t *s, int i, int t)
{
    const sweep_record_t *rec = s->plan.last[t];
    fprintf(f, "%d,%d", i + 1, t);
    for (int k = 0; k < s->grid->nkeys; k++) {
        fputc(',', f);
        csv_field(f, s->grid->value[(size_t)t * s->grid->nkeys + k]);
    }
    if (!rec) {
        fprintf(f, ",not run,,,,,,,0,\n");
        return;
    }
    fprintf(f, ",%s,", rec->ok ? "ok" : "failed");
    if (rec->ok && !isnan(rec->val_acc)) fprintf(f, "%.6f", rec->val_acc);
    fprintf(f, ",%d,%d,%.3f,%d,%d,%d,", rec->best_epoch, rec->epochs_run, s->plan.seconds[t],
            rec->ranks, rec->group, s->plan.reached[t] + 1);
    csv_field(f, rec->reason);
    fputc('\n', f);
}

/* sweep.csv: one row per trial, in ranked order (rank 0). */
static cnn_status_t write_csv(const sweep_t *s, const int *order)
{
    char path[CNN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/sweep.csv", s->dir);
    cnn_afile_clean_stale(path, NULL);
    cnn_afile_t *af = NULL;
    FILE *f;
    CNN_TRY(cnn_afile_open(path, &af, &f));
    fprintf(f, "rank,trial");
    for (int k = 0; k < s->grid->nkeys; k++) {
        fputc(',', f);
        csv_field(f, s->grid->key[k]);
    }
    fprintf(f, ",status,val_acc,best_epoch,epochs_run,seconds,ranks,group,rounds,reason\n");
    for (int i = 0; i < s->n; i++) csv_row(f, s, i, order[i]);
    return cnn_afile_commit(af);
}

/* Copies src to dst atomically. */
static cnn_status_t copy_atomic(const char *src, const char *dst)
{
    cnn_afile_clean_stale(dst, NULL);
    FILE *in = fopen(src, "rb");
    if (!in) return cnn_fs_error(src, "cannot open", errno);
    cnn_afile_t *af = NULL;
    cnn_status_t st = cnn_afile_begin(dst, &af);
    if (st == CNN_OK) st = cnn_afile_copy_from(af, in, src);
    fclose(in);
    if (st != CNN_OK) {
        cnn_afile_abort(af);
        return st;
    }
    return cnn_afile_commit(af);
}

/* Counts the trials by final status into res; best[] as
 * sweep_write_results() says, from the ranking in s->plan.order. */
static void tally(const sweep_t *s, cnn_sweep_result_t *res, int best[2])
{
    const sweep_plan_t *pl = &s->plan;
    for (int t = 0; t < s->n; t++) {
        const sweep_record_t *l = pl->last[t];
        if (l && l->ok) res->nok++;
        else if (l) res->nfailed++;
        if (l && !l->ok && !best[1]) best[1] = l->code ? l->code : CNN_EINTERNAL;
    }
    if (pl->last[pl->order[0]] && pl->last[pl->order[0]]->ok) {
        best[0] = pl->order[0];
        res->best_val_acc = pl->last[best[0]]->val_acc;
    }
}

cnn_status_t sweep_write_results(sweep_t *s, cnn_sweep_result_t *res, int best[2])
{
    CNN_TRY(sweep_journal_read(s->journal, s->header, s->grid->hash, s->n, 0, &s->j));
    CNN_TRY(sweep_plan_round(&s->plan, &s->j, s->cfg, s->nrounds - 1));
    for (int t = 0; t < s->n; t++) s->plan.order[t] = t;
    CNN_TRY(sweep_rank_trials(&s->plan, s->plan.order, s->n));
    tally(s, res, best);
    CNN_TRY(write_csv(s, s->plan.order));
    if (best[0] < 0) return CNN_OK;
    char src[CNN_PATH_MAX + 64], bdir[CNN_PATH_MAX + 16], dst[CNN_PATH_MAX + 32];
    snprintf(src, sizeof src, "%s/trials/%d/model.h5", s->dir, best[0]);
    snprintf(bdir, sizeof bdir, "%s/best", s->dir);
    snprintf(dst, sizeof dst, "%s/model.h5", bdir);
    CNN_TRY(cnn_fs_mkdir_p(bdir));
    return copy_atomic(src, dst);
}

/* The test set of the best model's config: s->data's when the data is
 * shared, else loaded into *own. */
static cnn_status_t test_set(const sweep_t *s, const cnn_config_t *mcfg, cnn_data_t *own,
                             const cnn_dataset_t **test)
{
    if (s->have_data) {
        *test = s->data.test;
        return CNN_OK;
    }
    CNN_TRY(cnn_data_prepare(mcfg, 0, own));
    *test = own->test;
    return CNN_OK;
}

/* The best trial's model on the test set, on every rank of comm. */
cnn_status_t sweep_score_best(sweep_t *s, int best, cnn_sweep_result_t *res)
{
    char path[CNN_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/trials/%d/model.h5", s->dir, best);
    cnn_model_meta_t meta;
    memset(&meta, 0, sizeof meta);
    cnn_data_t own;
    memset(&own, 0, sizeof own);
    cnn_net_t *net = NULL;
    cnn_config_t *mcfg = malloc(sizeof *mcfg);
    const cnn_dataset_t *test = NULL;
    cnn_status_t st = mcfg ? CNN_OK : cnn_error_set(CNN_ENOMEM, "out of memory");
    if (st == CNN_OK) st = cnn_model_load_meta(path, &meta);
    if (st == CNN_OK && !meta.config)
        st = cnn_error_set(CNN_EDATA, "%s: the model has no config attribute", path);
    if (st == CNN_OK) st = cnn_config_parse_string(meta.config, path, NULL, 0, mcfg);
    if (st == CNN_OK) {
        const cnn_shape_t in = {mcfg->train.batch_size, meta.c, meta.h, meta.w};
        st = cnn_net_create(mcfg->layers, mcfg->nlayers, in, mcfg->train.threads, &net);
    }
    if (st == CNN_OK) st = cnn_model_load_weights(path, net);
    if (st == CNN_OK) st = test_set(s, mcfg, &own, &test);
    if ((st = cnn_dist_agree(s->comm, st)) != CNN_OK || !test) goto done;
    const cnn_loss_t *loss = mcfg->train.loss == CNN_LOSS_HINGE ? &cnn_loss_hinge
                                                                 : &cnn_loss_softmax_ce;
    cnn_eval_t ev;
    st = cnn_evaluate(s->comm, net, test, meta.mean, meta.std, loss, 0, NULL, &ev);
    if (st == CNN_OK) {
        res->test_acc = ev.acc;
        res->test_correct = ev.correct;
        res->test_total = ev.total;
    }
done:
    cnn_net_free(net);
    cnn_data_free(&own);
    cnn_model_meta_free(&meta);
    free(mcfg);
    return st;
}

/* Column widths of the swept values: each key's longest, at most 28. */
static void value_widths(const sweep_t *s, int w[CNN_MAX_SWEEP])
{
    const cnn_sweep_grid_t *g = s->grid;
    for (int k = 0; k < g->nkeys; k++) {
        w[k] = (int)strlen(g->key[k]);
        for (int t = 0; t < s->n; t++) {
            const int l = (int)strlen(g->value[(size_t)t * g->nkeys + k]);
            if (l > w[k]) w[k] = l;
        }
        if (w[k] > 28) w[k] = 28;
    }
}

/* The ranked table on the terminal (rank 0). */
static void print_table(const sweep_t *s, const int *order)
{
    const cnn_sweep_grid_t *g = s->grid;
    int w[CNN_MAX_SWEEP];
    value_widths(s, w);
    printf("\n%4s %5s", "rank", "trial");
    for (int k = 0; k < g->nkeys; k++) printf("  %-*.*s", w[k], w[k], g->key[k]);
    printf("  %-7s %7s %5s %6s %8s %5s\n", "status", "val_acc", "best", "epochs", "seconds",
           "group");
    for (int i = 0; i < s->n; i++) {
        const int t = order[i];
        const sweep_record_t *rec = s->plan.last[t];
        printf("%4d %5d", i + 1, t);
        for (int k = 0; k < g->nkeys; k++)
            printf("  %-*.*s", w[k], w[k], g->value[(size_t)t * g->nkeys + k]);
        if (!rec) {
            printf("  not run\n");
            continue;
        }
        if (rec->ok)
            printf("  %-7s %7.4f %5d %6d %8.1f %5d\n", "ok", rec->val_acc, rec->best_epoch,
                   rec->epochs_run, s->plan.seconds[t], rec->group);
        else
            printf("  %-7s %7s %5s %6d %8.1f %5d  %.100s\n", "failed", "-", "-", rec->epochs_run,
                   s->plan.seconds[t], rec->group, rec->reason);
    }
}

void sweep_print_summary(const sweep_t *s, const cnn_sweep_result_t *res)
{
    print_table(s, s->plan.order);
    printf("\n%d trial%s: %d ok, %d failed; %.1f s\n", s->n, s->n == 1 ? "" : "s", res->nok,
           res->nfailed, res->seconds);
    printf("results: %s/sweep.csv\n", s->dir);
    if (res->best >= 0) {
        char label[1024];
        cnn_sweep_point_label(s->grid, res->best, label, sizeof label);
        printf("best: trial %d [%s] val accuracy %.4f\n", res->best, label, res->best_val_acc);
        if (!isnan(res->test_acc))
            printf("best trial's test accuracy: %.4f (%ld/%ld)\n", res->test_acc,
                   res->test_correct, res->test_total);
        else
            printf("best trial's test accuracy: no test set\n");
        printf("model: %s/best/model.h5\n", s->dir);
    }
    fflush(stdout);
}
