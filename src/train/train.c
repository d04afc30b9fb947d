/* train.c - the data-parallel training loop.
 *
 * One step on every rank: load this rank's slice of the global batch,
 * forward, loss (scaled by 1/global batch), backward, then two
 * all-reduces: the gradient arena (floats, in place) and a small block of
 * doubles carrying the batchnorm running statistics, the loss and
 * accuracy sums and the stop/checkpoint flags. Everything a rank decides
 * afterwards depends only on reduced values, so every rank takes the same
 * branch without further messages. Early stopping is decided by rank 0
 * and broadcast.
 *
 * With train.watchdog_seconds > 0 a watchdog (watchdog.h) is told the
 * phase of every step, validation and save, and an arrival check runs
 * before the gradient all-reduce; a stalled rank ends the job with exit
 * code 7. MPICNN_FAULT (fault.h, tests only) is read once per run. */
#include "mpicnn/train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicnn/checkpoint.h"
#include "mpicnn/dist.h"
#include "mpicnn/evaluate.h"
#include "mpicnn/fault.h"
#include "mpicnn/h5io.h"
#include "mpicnn/kernels.h"
#include "mpicnn/loss.h"
#include "mpicnn/model.h"
#include "mpicnn/net.h"
#include "mpicnn/optim.h"
#include "mpicnn/watchdog.h"

/* Set from a signal handler; read at step boundaries. */
static volatile sig_atomic_t stop_requested;

void cnn_train_request_stop(void) { stop_requested = 1; }
int cnn_train_stop_requested(void) { return stop_requested != 0; }

/* Slots of the per-step block of doubles after the batchnorm state. */
enum { AUX_LOSS, AUX_CORRECT, AUX_STOP, AUX_CKPT, AUX_N };

/* Everything one run holds; freed in one place. */
typedef struct {
    const cnn_config_t *cfg;
    const cnn_train_opts_t *opts;
    MPI_Comm comm;
    int rank, size;
    cnn_data_t own;           /* data loaded here (when opts->data is NULL) */
    const cnn_data_t *d;
    cnn_net_t *net;
    cnn_optim_t *opt;
    cnn_sampler_t *sampler;
    const cnn_loss_t *loss;
    float *best_params, *best_state, *prev_state;
    double *aux;              /* nstate + AUX_N */
    int32_t *labels;
    cnn_watchdog_t *wd;       /* NULL when train.watchdog_seconds = 0 */
    cnn_dist_gsum_t *gsum;    /* the gradient sum; net->grads may live in it */
    const float *grad_sum;    /* the last step's gradients summed over the
                                 ranks (nparams; net->grads or g's block) */
    cnn_train_state_t ts;
    cnn_model_meta_t meta;    /* borrowed pointers: config text, names, norm */
    char *config_text;
    char model_path[CNN_PATH_MAX + 32], ckpt_path[CNN_PATH_MAX + 32];
    char metrics_path[CNN_PATH_MAX + 32];
    double last_ckpt_time;
    double last_bar_time;
    int tty;
} run_t;

/* ------------------------------------------------------------------ */
/* output files                                                        */

static cnn_status_t make_dir(const char *dir)
{
    char buf[CNN_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return cnn_error_set(CNN_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return cnn_error_set(CNN_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cnn_error_set(CNN_EIO, "%s: not a directory", buf);
    return CNN_OK;
}

/* metrics.csv from the whole history, replaced atomically. */
static cnn_status_t write_metrics(const run_t *r)
{
    /* the temp-file name cnn_h5_clean_stale() knows */
    char tmp[CNN_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/.metrics.csv.tmp.%ld", r->opts->out_dir, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return cnn_error_set(CNN_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_second\n");
    for (int i = 0; i < r->ts.nhistory; i++) {
        const double *h = r->ts.history + (size_t)i * CNN_HISTORY_COLS;
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%.1f\n", (int)h[0], h[1], h[2], h[3], h[4],
                h[5], h[6], h[7]);
    }
    int bad = ferror(f);
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    int saved = errno;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, r->metrics_path) != 0) {
        if (!bad) saved = errno;
        remove(tmp);
        return cnn_error_set(CNN_EIO, "%s: write failed: %s", r->metrics_path,
                             saved == ENOSPC ? "disk full" : strerror(saved));
    }
    return CNN_OK;
}

static void fill_meta(run_t *r)
{
    r->meta.config = r->config_text;
    r->meta.c = r->d->c;
    r->meta.h = r->d->h;
    r->meta.w = r->d->w;
    r->meta.nclasses = r->d->nclasses;
    r->meta.class_names = r->d->train->nclasses == r->d->nclasses ? r->d->train->class_names : NULL;
    r->meta.mean = (float *)r->d->mean;
    r->meta.std = (float *)r->d->std;
    r->meta.nhistory = r->ts.nhistory;
    r->meta.history = r->ts.history;
}

/* The best weights (or the current ones if there is no best yet) as
 * model.h5. Rank 0 only. */
static cnn_status_t write_model(run_t *r)
{
    cnn_net_t *net = r->net;
    fill_meta(r);
    if (!r->ts.has_best) return cnn_model_save(r->model_path, net, &r->meta);
    /* swap the best arenas in for the write, then back */
    float *p = net->params, *s = net->state;
    memcpy(r->prev_state, net->state, sizeof(float) * net->nstate);
    float *cur = malloc(sizeof(float) * (net->nparams ? net->nparams : 1));
    if (!cur) return cnn_error_set(CNN_ENOMEM, "out of memory");
    memcpy(cur, p, sizeof(float) * net->nparams);
    memcpy(p, r->best_params, sizeof(float) * net->nparams);
    memcpy(s, r->best_state, sizeof(float) * net->nstate);
    cnn_status_t st = cnn_model_save(r->model_path, net, &r->meta);
    memcpy(p, cur, sizeof(float) * net->nparams);
    memcpy(s, r->prev_state, sizeof(float) * net->nstate);
    free(cur);
    return st;
}

static cnn_status_t write_checkpoint(run_t *r)
{
    fill_meta(r);
    cnn_checkpoint_t ck = {.net = r->net, .opt = r->opt, .ts = &r->ts,
                           .best_params = r->ts.has_best ? r->best_params : NULL,
                           .best_state = r->best_state, .meta = &r->meta,
                           .world_size = r->size, .threads = r->net->nthreads,
                           .sum_ranks_per_node = cnn_dist_gsum_ranks_per_node(r->gsum)};
    cnn_status_t st = cnn_checkpoint_save(r->ckpt_path, &ck);
    r->last_ckpt_time = MPI_Wtime();
    return st;
}

/* Rank 0 writes, then all ranks agree on the outcome. */
static cnn_status_t save_agreed(run_t *r, int model, int checkpoint, int metrics)
{
    cnn_status_t st = CNN_OK;
    cnn_watchdog_phase(r->wd, CNN_WD_SAVE);
    cnn_fault_set_step(r->ts.global_step);
    if (r->rank == 0) {
        if (st == CNN_OK && metrics) st = write_metrics(r);
        if (st == CNN_OK && model) st = write_model(r);
        if (st == CNN_OK && checkpoint) st = write_checkpoint(r);
    }
    return cnn_dist_agree(r->comm, st);
}

/* ------------------------------------------------------------------ */
/* progress                                                            */

static void progress(run_t *r, size_t step, size_t steps, double seconds)
{
    if (r->rank != 0 || r->opts->quiet || r->opts->progress == CNN_PROGRESS_NONE) return;
    const cnn_train_state_t *ts = &r->ts;
    const double loss = ts->acc_seen > 0 ? ts->acc_loss / ts->acc_seen : 0.0;
    const double acc = ts->acc_seen > 0 ? ts->acc_correct / ts->acc_seen : 0.0;
    const double ips = seconds > 0 ? ts->acc_seen / seconds : 0.0;
    const char *tag = r->opts->tag ? r->opts->tag : "";
    if (r->tty) {
        /* a few redraws a second are live enough and keep logs small */
        const double now = MPI_Wtime();
        if (step < steps && now - r->last_bar_time < 0.25) return;
        r->last_bar_time = now;
        char bar[31];
        int fill = (int)(30.0 * (double)step / (double)steps);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[30] = '\0';
        printf("\r%sepoch %lld/%d [%s] %3d%% loss %.4f acc %.4f %6.0f img/s ", tag,
               (long long)ts->epoch + 1, r->cfg->train.epochs, bar,
               (int)(100.0 * (double)step / (double)steps), loss, acc, ips);
        fflush(stdout);
    } else if (r->cfg->train.log_every > 0 && step % (size_t)r->cfg->train.log_every == 0) {
        printf("%sepoch %lld step %zu/%zu loss %.4f acc %.4f %.0f img/s\n", tag,
               (long long)ts->epoch + 1, step, steps, loss, acc, ips);
        fflush(stdout);
    }
}

/* ------------------------------------------------------------------ */
/* validation and the early-stopping decision                          */

/* Runs the validation set (if any); rank 0 decides whether the model is a
 * new best and whether to stop, and broadcasts that. */
static cnn_status_t validate(run_t *r, int *new_best)
{
    cnn_status_t st = CNN_OK;
    const cnn_early_stop_config_t *es = &r->cfg->early_stopping;
    cnn_train_state_t *ts = &r->ts;
    int decision[2] = {0, 0}; /* new best, stop */
    *new_best = 0;
    cnn_watchdog_phase(r->wd, CNN_WD_VALIDATE);
    if (!r->d->val) {
        /* without validation the latest model is the one kept */
        ts->val_loss = ts->val_acc = NAN;
        *new_best = 1;
        ts->has_best = 1;
        ts->best_epoch = ts->epoch + (ts->step > 0);
        goto keep;
    }
    cnn_eval_t ev;
    CNN_TRY(cnn_evaluate(r->comm, r->net, r->d->val, r->d->mean, r->d->std, r->loss, 0, NULL, &ev));
    ts->val_loss = ev.loss;
    ts->val_acc = ev.acc;
    ts->evals++;
    if (r->rank == 0) {
        const double m = es->metric == CNN_METRIC_VAL_ACC ? ev.acc : ev.loss;
        const int better = !ts->has_best ||
                           (es->mode == CNN_MODE_MAX ? m > ts->best_metric + es->min_delta
                                                     : m < ts->best_metric - es->min_delta);
        decision[0] = better && isfinite(m);
        decision[1] = !decision[0] && es->enabled && ts->bad_evals + 1 >= es->patience;
    }
    CNN_MPI_CHECK(st, MPI_Bcast(decision, 2, MPI_INT, 0, r->comm), error);
    if (decision[0]) {
        ts->has_best = 1;
        ts->best_metric = es->metric == CNN_METRIC_VAL_ACC ? ev.acc : ev.loss;
        ts->best_epoch = ts->epoch + (ts->step > 0);
        ts->bad_evals = 0;
        *new_best = 1;
    } else {
        ts->bad_evals++;
    }
    ts->stopped_early = decision[1];
keep:
    if (*new_best) {
        memcpy(r->best_params, r->net->params, sizeof(float) * r->net->nparams);
        memcpy(r->best_state, r->net->state, sizeof(float) * r->net->nstate);
    }
error:
    return st;
}

/* ------------------------------------------------------------------ */
/* one step                                                            */

/* Forward, backward and the reductions for step `step` of the current
 * epoch. Sets *finite; the caller applies or skips the update. */
static cnn_status_t compute_step(run_t *r, size_t step, int want_ckpt, int *finite,
                                 double *loss_sum, double *correct, int *n_global)
{
    cnn_net_t *net = r->net;
    int n_local;
    const size_t *idx = cnn_sampler_slice(r->sampler, step, &n_local, n_global);
    double *aux = r->aux + net->nstate;
    cnn_net_zero_grad(net);
    memcpy(r->prev_state, net->state, sizeof(float) * net->nstate);
    aux[AUX_LOSS] = aux[AUX_CORRECT] = 0.0;
    if (n_local > 0) {
        cnn_ctx_t ctx = cnn_net_ctx(net, 1, r->cfg->train.seed, r->rank,
                                    (uint64_t)r->ts.global_step);
        cnn_dataset_batch(r->d->train, idx, n_local, r->d->mean, r->d->std,
                          cnn_net_input(net), r->labels);
        const float *y = cnn_net_forward(net, &ctx, n_local);
        const int K = net->output.c;
        /* the loss gradient goes to the first layer's ping-pong buffer's
         * twin: dbuf[1] is free until the second layer from the top */
        float *dy = net->dbuf[1];
        r->loss->compute(y, r->labels, n_local, K, 1.0f / (float)*n_global, &aux[AUX_LOSS], dy);
        for (int i = 0; i < n_local; i++)
            aux[AUX_CORRECT] += cnn_argmax(y + (size_t)i * K, K) == r->labels[i];
        cnn_net_backward(net, &ctx, n_local, dy);
    }
    /* batchnorm running statistics: averaged over the ranks */
    for (size_t i = 0; i < net->nstate; i++) r->aux[i] = net->state[i];
    aux[AUX_STOP] = cnn_train_stop_requested() ? 1.0 : 0.0;
    aux[AUX_CKPT] = want_ckpt ? 1.0 : 0.0;
    if (net->nparams > 0 && cnn_fault_step_due(CNN_FAULT_NAN, r->ts.global_step + 1)) {
        fprintf(stderr, "mpicnn: rank %d: MPICNN_FAULT=%s: NaN in this rank's gradient of "
                        "global step %lld\n", r->rank, cnn_fault_get()->text,
                (long long)r->ts.global_step + 1);
        net->grads[0] = NAN;
    }
    CNN_TRY(cnn_watchdog_arrive(r->wd));
    CNN_TRY(cnn_dist_gsum_run(r->gsum, net->grads, &r->grad_sum));
    cnn_watchdog_phase(r->wd, CNN_WD_ALLREDUCE_AUX);
    CNN_TRY(cnn_dist_sum_doubles(r->comm, r->aux, net->nstate + AUX_N));
    cnn_watchdog_phase(r->wd, CNN_WD_UPDATE);
    *finite = isfinite(aux[AUX_LOSS]) && cnn_all_finite(r->grad_sum, net->nparams);
    for (size_t i = 0; i < net->nstate; i++) net->state[i] = (float)(r->aux[i] / r->size);
    *loss_sum = aux[AUX_LOSS];
    *correct = aux[AUX_CORRECT];
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* set-up and tear-down                                                */

static void run_free(run_t *r)
{
    cnn_watchdog_stop(r->wd);
    cnn_net_free(r->net);
    cnn_dist_gsum_free(r->gsum); /* after the net: its gradients may be in there */
    cnn_optim_free(r->opt);
    cnn_sampler_free(r->sampler);
    free(r->best_params);
    free(r->best_state);
    free(r->prev_state);
    free(r->aux);
    free(r->labels);
    free(r->config_text);
    cnn_train_state_free(&r->ts);
    cnn_data_free(&r->own);
}

static cnn_status_t setup(run_t *r)
{
    const cnn_config_t *cfg = r->cfg;
    cnn_status_t st = CNN_OK;
    CNN_TRY(cnn_dist_prepare(r->comm));
    CNN_MPI_CHECK(st, MPI_Comm_rank(r->comm, &r->rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(r->comm, &r->size), error);

    r->d = r->opts->data;
    if (!r->d) {
        st = cnn_dist_agree(r->comm, cnn_data_prepare(cfg, 1, &r->own));
        if (st != CNN_OK) return st;
        r->d = &r->own;
    }
    const cnn_data_t *d = r->d;
    const cnn_shape_t in = {cfg->train.batch_size, d->c, d->h, d->w};
    CNN_TRY(cnn_net_create(cfg->layers, cfg->nlayers, in, cfg->train.threads, &r->net));
    cnn_net_t *net = r->net;
    if (net->output.c != d->nclasses || net->output.h != 1 || net->output.w != 1)
        return cnn_error_set(CNN_ECONFIG,
                             "%s: the last layer (%s) gives (%d,%d,%d) per image but the data "
                             "has %d classes: it must give (%d,1,1)",
                             cfg->source, cfg->layers[cfg->nlayers - 1].name, net->output.c,
                             net->output.h, net->output.w, d->nclasses, d->nclasses);
    cnn_net_init(net, cfg->train.seed);

    CNN_TRY(cnn_optim_create((cnn_optim_kind_t)cfg->opt.type, net->nparams, &r->opt));
    r->opt->momentum = cfg->opt.momentum;
    r->opt->beta1 = cfg->opt.beta1;
    r->opt->beta2 = cfg->opt.beta2;
    r->opt->eps = cfg->opt.eps;
    r->opt->weight_decay = cfg->opt.weight_decay;

    CNN_TRY(cnn_sampler_create(d->train->n, cfg->train.batch_size * r->size, r->rank, r->size,
                               cfg->train.seed, 1, &r->sampler));
    r->loss = cfg->train.loss == CNN_LOSS_HINGE ? &cnn_loss_hinge : &cnn_loss_softmax_ce;
    r->best_params = malloc(sizeof(float) * (net->nparams + 1));
    r->best_state = malloc(sizeof(float) * (net->nstate + 1));
    r->prev_state = malloc(sizeof(float) * (net->nstate + 1));
    r->aux = malloc(sizeof(double) * (net->nstate + AUX_N));
    r->labels = malloc(sizeof(int32_t) * (size_t)cfg->train.batch_size);
    r->config_text = cnn_config_to_string(cfg);
    if (!r->best_params || !r->best_state || !r->prev_state || !r->aux || !r->labels ||
        !r->config_text)
        return cnn_error_set(CNN_ENOMEM, "out of memory setting up training");
    r->ts.val_loss = r->ts.val_acc = NAN;
    r->ts.lr = cfg->opt.lr;

    const char *dir = r->opts->out_dir;
    snprintf(r->model_path, sizeof r->model_path, "%s/model.h5", dir);
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/checkpoint.h5", dir);
    snprintf(r->metrics_path, sizeof r->metrics_path, "%s/metrics.csv", dir);
    r->tty = r->opts->progress == CNN_PROGRESS_BAR ||
             (r->opts->progress == CNN_PROGRESS_AUTO && isatty(STDOUT_FILENO));
error:
    return st;
}

/* How a gradient sum of L ranks per node adds, for the resume note. */
static void describe_sum(int ranks_per_node, char *buf, size_t len)
{
    if (ranks_per_node > 1)
        snprintf(buf, len, "in shared memory by %d ranks per node", ranks_per_node);
    else
        snprintf(buf, len, "by MPI_Allreduce");
}

/* Output directory, stale temp files, and --resume. */
static cnn_status_t prepare_outputs(run_t *r)
{
    cnn_status_t st = CNN_OK;
    int exists = 0, threads = 0, sum_rpn = 1;
    if (r->rank == 0) {
        st = make_dir(r->opts->out_dir);
        if (st == CNN_OK) {
            cnn_h5_clean_stale(r->ckpt_path, NULL);
            cnn_h5_clean_stale(r->model_path, NULL);
            cnn_h5_clean_stale(r->metrics_path, NULL);
            exists = access(r->ckpt_path, F_OK) == 0;
            if (exists && !r->opts->resume)
                st = cnn_error_set(CNN_EUSAGE,
                                   "%s already holds a checkpoint: add --resume to continue "
                                   "that run, or choose another --out",
                                   r->opts->out_dir);
            else if (!exists && r->opts->resume)
                st = cnn_error_set(CNN_EUSAGE, "--resume: %s does not exist", r->ckpt_path);
            else if (exists)
                st = cnn_checkpoint_load(r->ckpt_path, r->cfg, r->size, r->net, r->opt, &r->ts,
                                         r->best_params, r->best_state, &threads, &sum_rpn);
        }
    }
    CNN_TRY(cnn_dist_agree(r->comm, st));
    if (!r->opts->resume) return CNN_OK;

    /* rank 0 read the checkpoint: share it */
    cnn_net_t *net = r->net;
    cnn_train_state_t *ts = &r->ts;
    int64_t c[10] = {ts->epoch, ts->step, ts->global_step, ts->skipped_steps, ts->evals,
                     ts->has_best, ts->best_epoch, ts->bad_evals, ts->nhistory,
                     ts->stopped_early};
    double v[8] = {ts->best_metric, ts->acc_loss, ts->acc_correct, ts->acc_seen,
                   ts->epoch_seconds, ts->val_loss, ts->val_acc, ts->lr};
    CNN_MPI_CHECK(st, MPI_Bcast(c, 10, MPI_INT64_T, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(v, 8, MPI_DOUBLE, 0, r->comm), error);
    ts->epoch = c[0];
    ts->step = c[1];
    ts->global_step = c[2];
    ts->skipped_steps = c[3];
    ts->evals = c[4];
    ts->has_best = (int)c[5];
    ts->best_epoch = c[6];
    ts->bad_evals = c[7];
    ts->stopped_early = (int)c[9];
    ts->best_metric = v[0];
    ts->acc_loss = v[1];
    ts->acc_correct = v[2];
    ts->acc_seen = v[3];
    ts->epoch_seconds = v[4];
    ts->val_loss = v[5];
    ts->val_acc = v[6];
    ts->lr = v[7];
    if (r->rank != 0) {
        free(ts->history);
        ts->history = malloc(sizeof(double) * CNN_HISTORY_COLS * (size_t)(c[8] + 1));
        if (!ts->history) {
            st = cnn_error_set(CNN_ENOMEM, "out of memory");
            goto error;
        }
        ts->nhistory = (int)c[8];
    }
    st = cnn_dist_agree(r->comm, st);
    if (st != CNN_OK) return st;
    CNN_MPI_CHECK(st, MPI_Bcast(ts->history, (int)(CNN_HISTORY_COLS * ts->nhistory), MPI_DOUBLE, 0,
                                r->comm), error);
    /* the arenas: rank 0's values on every rank */
    CNN_MPI_CHECK(st, MPI_Bcast(net->params, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(net->state, (int)net->nstate, MPI_FLOAT, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(r->best_params, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(r->best_state, (int)net->nstate, MPI_FLOAT, 0, r->comm), error);
    int64_t t = r->opt->t;
    CNN_MPI_CHECK(st, MPI_Bcast(&t, 1, MPI_INT64_T, 0, r->comm), error);
    r->opt->t = t;
    if (r->opt->m)
        CNN_MPI_CHECK(st, MPI_Bcast(r->opt->m, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
    if (r->opt->v)
        CNN_MPI_CHECK(st, MPI_Bcast(r->opt->v, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
    if (r->rank == 0 && !r->opts->quiet) {
        const char *tag = r->opts->tag ? r->opts->tag : "";
        if (ts->stopped_early || ts->epoch >= r->cfg->train.epochs)
            printf("%sresuming a finished run (%lld epochs%s): scoring the best model again\n",
                   tag, (long long)ts->epoch, ts->stopped_early ? ", stopped early" : "");
        else
            printf("%sresuming at epoch %lld, step %lld (global step %lld)\n", tag,
                   (long long)ts->epoch + 1, (long long)ts->step, (long long)ts->global_step);
        if (threads != net->nthreads)
            printf("%snote: the checkpoint was written with %d thread%s, this run has %d: the "
                   "result will not be bitwise that of an uninterrupted run\n",
                   tag, threads, threads == 1 ? "" : "s", net->nthreads);
        /* with 2 ranks a + b is b + a: only 3 or more can differ */
        const int rpn = cnn_dist_gsum_ranks_per_node(r->gsum);
        if (r->size >= 3 && sum_rpn != rpn) {
            char was[64], now[64];
            describe_sum(sum_rpn, was, sizeof was);
            describe_sum(rpn, now, sizeof now);
            printf("%snote: the checkpoint's gradients were summed %s, this run's %s: the "
                   "result will not be bitwise that of an uninterrupted run\n", tag, was, now);
        }
        fflush(stdout);
    }
error:
    return st;
}

/* Appends this epoch's row to the history. */
static cnn_status_t add_history(run_t *r, double lr, double seconds)
{
    cnn_train_state_t *ts = &r->ts;
    double *h = realloc(ts->history, sizeof(double) * CNN_HISTORY_COLS * (size_t)(ts->nhistory + 1));
    if (!h) return cnn_error_set(CNN_ENOMEM, "out of memory");
    ts->history = h;
    double *row = h + (size_t)ts->nhistory * CNN_HISTORY_COLS;
    row[0] = (double)ts->epoch; /* already counted: 1-based */
    row[1] = ts->acc_seen > 0 ? ts->acc_loss / ts->acc_seen : NAN;
    row[2] = ts->acc_seen > 0 ? ts->acc_correct / ts->acc_seen : NAN;
    row[3] = ts->val_loss;
    row[4] = ts->val_acc;
    row[5] = lr;
    row[6] = seconds;
    row[7] = seconds > 0 ? ts->acc_seen / seconds : 0.0;
    ts->nhistory++;
    return CNN_OK;
}

static void print_epoch(const run_t *r, int new_best)
{
    if (r->rank != 0 || r->opts->quiet) return;
    const double *h = r->ts.history + (size_t)(r->ts.nhistory - 1) * CNN_HISTORY_COLS;
    if (r->tty) printf("\r\033[K");
    printf("%sepoch %d/%d  train loss %.4f acc %.4f", r->opts->tag ? r->opts->tag : "", (int)h[0],
           r->cfg->train.epochs, h[1], h[2]);
    if (isfinite(h[4])) printf("  val loss %.4f acc %.4f", h[3], h[4]);
    printf("  lr %.3g  %.1fs  %.0f img/s%s\n", h[5], h[6], h[7],
           new_best && r->d->val ? "  *best*" : "");
    fflush(stdout);
}

/* FNV-1a over the bytes of the parameter and state arenas. */
static uint64_t hash_arenas(const cnn_net_t *net)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char *p = (const unsigned char *)net->params;
    for (size_t i = 0; i < net->nparams * sizeof(float); i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    p = (const unsigned char *)net->state;
    for (size_t i = 0; i < net->nstate * sizeof(float); i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* ------------------------------------------------------------------ */

cnn_status_t cnn_train(const cnn_config_t *cfg, const cnn_train_opts_t *opts,
                       cnn_train_result_t *res)
{
    run_t r = {.cfg = cfg, .opts = opts, .comm = opts->comm};
    cnn_status_t st;
    memset(res, 0, sizeof *res);
    res->val_loss = res->val_acc = res->test_loss = res->test_acc = NAN;

    st = setup(&r);
    if (st == CNN_OK) st = cnn_fault_init(r.rank);
    st = cnn_dist_agree(r.comm, st);
    if (st != CNN_OK) goto done;
    /* collective: only once every rank has its net */
    st = cnn_dist_gsum_create(r.comm, r.net->nparams, 0, &r.gsum);
    if (st == CNN_OK && cnn_dist_gsum_buffer(r.gsum))
        cnn_net_bind_grads(r.net, cnn_dist_gsum_buffer(r.gsum));
    if ((st = cnn_dist_agree(r.comm, st)) != CNN_OK) goto done;
    /* watched from here on; loading the data above is not */
    st = cnn_watchdog_start(r.comm, cfg->train.watchdog_seconds, &r.wd);
    if ((st = cnn_dist_agree(r.comm, st)) != CNN_OK) goto done;
    cnn_watchdog_phase(r.wd, CNN_WD_OUTPUTS);
    if ((st = prepare_outputs(&r)) != CNN_OK) goto done;
    cnn_net_t *net = r.net;
    cnn_train_state_t *ts = &r.ts;
    if (r.rank == 0 && !opts->quiet && !opts->resume) {
        printf("%straining %s: %zu train, %zu val, %zu test images; %d rank%s x %d thread%s; "
               "global batch %d; %zu parameters%s%s\n",
               opts->tag ? opts->tag : "", cfg->source, r.d->train->n,
               r.d->val ? r.d->val->n : 0, r.d->test ? r.d->test->n : 0, r.size,
               r.size > 1 ? "s" : "", net->nthreads, net->nthreads > 1 ? "s" : "",
               cfg->train.batch_size * r.size, net->nparams,
               r.size > 1 ? "; gradient sum: " : "",
               r.size > 1 ? cnn_dist_gsum_method(r.gsum) : "");
        fflush(stdout);
    }
    r.last_ckpt_time = MPI_Wtime();
    const double t_start = MPI_Wtime();
    double images_total = 0.0;
    const size_t steps = cnn_sampler_steps(r.sampler);
    int stopped = 0;

    while (ts->epoch < cfg->train.epochs && !ts->stopped_early && !stopped) {
        cnn_sampler_set_epoch(r.sampler, (long)ts->epoch);
        const double t_epoch = MPI_Wtime() - ts->epoch_seconds;
        while ((size_t)ts->step < steps) {
            const size_t step = (size_t)ts->step;
            int want_ckpt = 0;
            if (r.rank == 0) {
                const cnn_checkpoint_config_t *cc = &cfg->checkpoint;
                want_ckpt = (cc->every_steps > 0 && (ts->global_step + 1) % cc->every_steps == 0) ||
                            (cc->every_minutes > 0 &&
                             MPI_Wtime() - r.last_ckpt_time >= 60.0 * cc->every_minutes);
            }
            int finite, n_global;
            double loss_sum, correct;
            cnn_watchdog_position(r.wd, ts->epoch + 1, ts->step + 1, ts->global_step + 1);
            cnn_watchdog_phase(r.wd, CNN_WD_COMPUTE);
            cnn_fault_step_hook(ts->global_step + 1);
            st = compute_step(&r, step, want_ckpt, &finite, &loss_sum, &correct, &n_global);
            if (st != CNN_OK) goto done;
            if (!finite) {
                /* the reduced values: the same on every rank, so is this branch */
                const char *what = isfinite(loss_sum) ? "gradient"
                                   : cnn_all_finite(r.grad_sum, net->nparams) ? "loss"
                                                                              : "loss and gradient";
                if (cfg->train.nan_policy == CNN_NAN_STOP) {
                    st = cnn_error_set(CNN_ENUMERIC,
                                       "non-finite %s (summed over all ranks) at epoch %lld step "
                                       "%zu (global step %lld); train.nan_policy = stop",
                                       what, (long long)ts->epoch + 1, step + 1,
                                       (long long)ts->global_step + 1);
                    goto done;
                }
                memcpy(net->state, r.prev_state, sizeof(float) * net->nstate);
                ts->skipped_steps++;
                /* every rank says so: the proof that they all skipped */
                if (!opts->quiet)
                    fprintf(stderr, "mpicnn: rank %d: warning: non-finite %s at epoch %lld step "
                                    "%zu (global step %lld): step skipped on every rank "
                                    "(train.nan_policy = skip; %lld skipped so far)\n",
                            r.rank, what, (long long)ts->epoch + 1, step + 1,
                            (long long)ts->global_step + 1, (long long)ts->skipped_steps);
            } else {
                ts->lr = cnn_config_lr(cfg, (double)ts->epoch + (double)step / (double)steps,
                                       (long)ts->global_step, r.size);
                cnn_optim_step(r.opt, net->params, r.grad_sum, ts->lr, net->nthreads);
                if (net->nparams > 0 &&
                    cnn_fault_step_due(CNN_FAULT_NAN_WEIGHTS, ts->global_step + 1)) {
                    fprintf(stderr, "mpicnn: rank %d: MPICNN_FAULT=%s: NaN in this rank's "
                                    "weights after global step %lld\n", r.rank,
                            cnn_fault_get()->text, (long long)ts->global_step + 1);
                    net->params[0] = NAN;
                }
                ts->acc_loss += loss_sum;
                ts->acc_correct += correct;
                ts->acc_seen += n_global;
                images_total += n_global;
            }
            ts->global_step++;
            ts->step++;
            const double *aux = r.aux + net->nstate;
            ts->epoch_seconds = MPI_Wtime() - t_epoch;
            progress(&r, (size_t)ts->step, steps, ts->epoch_seconds);

            if (cfg->train.validate_every > 0 && ts->global_step % cfg->train.validate_every == 0 &&
                (size_t)ts->step < steps) {
                int new_best;
                if ((st = validate(&r, &new_best)) != CNN_OK) goto done;
                if (new_best && (st = save_agreed(&r, 1, 0, 0)) != CNN_OK) goto done;
                if (ts->stopped_early) break;
            }
            if (aux[AUX_STOP] > 0) {
                /* a signal: checkpoint at this step boundary and leave */
                if ((st = save_agreed(&r, 0, 1, 0)) != CNN_OK) goto done;
                stopped = 1;
                break;
            }
            if (aux[AUX_CKPT] > 0 && (st = save_agreed(&r, 0, 1, 0)) != CNN_OK) goto done;
        }
        if (stopped) break;
        /* end of the epoch (or an early stop in the middle of it) */
        ts->epoch_seconds = MPI_Wtime() - t_epoch;
        const double seconds = ts->epoch_seconds;
        int new_best = 0;
        if (!ts->stopped_early && (st = validate(&r, &new_best)) != CNN_OK) goto done;
        ts->epoch++;
        ts->step = 0;
        if ((st = add_history(&r, ts->lr, seconds)) != CNN_OK) goto done;
        print_epoch(&r, new_best);
        ts->acc_loss = ts->acc_correct = ts->acc_seen = 0.0;
        ts->epoch_seconds = 0.0;
        if ((st = save_agreed(&r, new_best, 1, 1)) != CNN_OK) goto done;
        if (ts->stopped_early && r.rank == 0 && !opts->quiet)
            printf("%searly stop: no improvement in %d validation%s; best epoch %lld\n",
                   opts->tag ? opts->tag : "", cfg->early_stopping.patience,
                   cfg->early_stopping.patience > 1 ? "s" : "", (long long)ts->best_epoch);
    }
    res->seconds = MPI_Wtime() - t_start;
    res->images_per_second = res->seconds > 0 ? images_total / res->seconds : 0.0;
    res->epochs_run = (int)ts->epoch;
    res->stopped_early = ts->stopped_early;
    if (ts->nhistory > 0) {
        /* from the history, so that a resumed finished run reports them too */
        res->train_loss = ts->history[(size_t)(ts->nhistory - 1) * CNN_HISTORY_COLS + 1];
        res->train_acc = ts->history[(size_t)(ts->nhistory - 1) * CNN_HISTORY_COLS + 2];
    }
    if (stopped) {
        if (r.rank == 0 && !opts->quiet)
            printf("\n%sstopped by a signal at epoch %lld step %lld; checkpoint written to %s\n",
                   opts->tag ? opts->tag : "", (long long)ts->epoch + 1, (long long)ts->step,
                   r.ckpt_path);
        st = cnn_error_set(CNN_ESTOPPED, "stopped by a signal; resume with --resume --out %s",
                           opts->out_dir);
        goto done;
    }

    /* the best weights are the result, whatever ended the run */
    if (ts->has_best) {
        memcpy(net->params, r.best_params, sizeof(float) * net->nparams);
        memcpy(net->state, r.best_state, sizeof(float) * net->nstate);
    }
    res->best_epoch = (int)ts->best_epoch;
    res->params_hash = hash_arenas(net);
    cnn_watchdog_phase(r.wd, CNN_WD_EVALUATE);
    cnn_eval_t ev;
    if (r.d->val) {
        if ((st = cnn_evaluate(r.comm, net, r.d->val, r.d->mean, r.d->std, r.loss, 0, NULL, &ev)) != CNN_OK)
            goto done;
        res->val_loss = ev.loss;
        res->val_acc = ev.acc;
    }
    if (r.d->test && !opts->skip_test) {
        if ((st = cnn_evaluate(r.comm, net, r.d->test, r.d->mean, r.d->std, r.loss, 0, NULL, &ev)) != CNN_OK)
            goto done;
        res->test_loss = ev.loss;
        res->test_acc = ev.acc;
        res->test_correct = ev.correct;
        res->test_total = ev.total;
    }
    /* model.h5 with the complete history; the best weights are in the net
     * now, so write it as the current model */
    ts->has_best = 0;
    st = save_agreed(&r, 1, 0, 0);
    ts->has_best = 1;
    if (st != CNN_OK) goto done;
    if (r.rank == 0 && !opts->quiet) {
        const char *tag = opts->tag ? opts->tag : "";
        printf("%sbest epoch %d of %d (%.1f s, %.0f images/s)\n", tag, res->best_epoch,
               res->epochs_run, res->seconds, res->images_per_second);
        printf("%strain accuracy: %.4f (last epoch, running)\n", tag, res->train_acc);
        if (r.d->val) printf("%sval accuracy: %.4f\n", tag, res->val_acc);
        if (r.d->test && !opts->skip_test)
            printf("%stest accuracy: %.4f (%ld/%ld)\n", tag, res->test_acc, res->test_correct,
                   res->test_total);
        printf("%smodel: %s\n", tag, r.model_path);
        fflush(stdout);
    }
done:
    run_free(&r);
    return st;
}
