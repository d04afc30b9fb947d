/* train.c - the data-parallel training loop.
 *
 * cnn_train() follows the data flow of a run (docs/architecture.md): set up
 * the net, optimizer and sampler, open the output directory (or resume
 * from its checkpoint), then epochs of steps; after each epoch a
 * validation, the early-stopping decision and the saves; at the end the
 * best weights are scored and written as the model.
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
 * Unless train.watchdog_seconds = 0 a watchdog (watchdog.h) is told the
 * phase of the loading, every step, validation and save, and an arrival
 * check runs before the gradient all-reduce; a stalled rank ends the job
 * with exit code 7. A stop requested before the first step ends the run
 * there (exit code 75); without a checkpoint yet, DIR/checkpoint.none
 * records that there is nothing to resume, and --resume then starts from
 * the beginning. MPICNN_FAULT (fault.h, tests only) is read once per run. */
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
#include "mpicnn/fs.h"
#include "mpicnn/kernels.h"
#include "mpicnn/loss.h"
#include "mpicnn/memlimit.h"
#include "mpicnn/model.h"
#include "mpicnn/net.h"
#include "mpicnn/optim.h"
#include "mpicnn/rng.h"
#include "mpicnn/source.h"
#include "mpicnn/watchdog.h"

/* Set from a signal handler; read at step boundaries. */
static volatile sig_atomic_t stop_requested;

void cnn_train_request_stop(void) { stop_requested = 1; }
int cnn_train_stop_requested(void) { return stop_requested != 0; }
void cnn_train_clear_stop(void) { stop_requested = 0; }

/* Slots of the per-step block of doubles after the batchnorm state. */
enum { AUX_LOSS, AUX_CORRECT, AUX_STOP, AUX_CKPT, AUX_DATA_ERROR, AUX_N };

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
    cnn_source_t *src;        /* this rank's batches (data.load) */
    size_t steps;             /* steps per epoch */
    const cnn_loss_t *loss;
    float *best_params, *best_state, *prev_state;
    double *aux;              /* nstate + AUX_N */
    int32_t *labels;
    cnn_watchdog_t *wd;       /* NULL when train.watchdog_seconds = 0 */
    cnn_dist_gsum_t *gsum;    /* the gradient sum; net->grads may live in it */
    const float *grad_sum;    /* the last step's gradients summed over the
                                 ranks (nparams; net->grads or g's block) */
    int sync_stats;           /* a layer sums its statistics over the ranks
                                 (batchnorm sync = true, more than one rank) */
    cnn_dist_layer_sum_t lsum; /* those sums, when sync_stats */
    cnn_train_state_t ts;
    char *config_text;
    char model_path[CNN_PATH_MAX + 32], ckpt_path[CNN_PATH_MAX + 32];
    char metrics_path[CNN_PATH_MAX + 32];
    char none_path[CNN_PATH_MAX + 32]; /* checkpoint.none: stopped before a checkpoint */
    int fresh;                /* rank 0: --resume found no checkpoint, only checkpoint.none */
    double last_ckpt_time;
    double last_bar_time;
    double images_total;      /* images trained on by this call */
    int stopped;              /* a signal stopped the run (checkpoint written) */
    int tty;
} run_t;

/* What one step's reductions give (the same on every rank). */
typedef struct {
    int finite;               /* loss and summed gradient are finite */
    int n_global;             /* images in the global batch */
    double loss_sum, correct; /* over all ranks */
    int stop, checkpoint;     /* a rank asked to stop / rank 0 to checkpoint */
} step_out_t;

static const char *tag_of(const run_t *r) { return r->opts->tag ? r->opts->tag : ""; }

/* ------------------------------------------------------------------ */
/* output files (rank 0)                                               */

/* metrics.csv from the whole history, replaced atomically. */
static cnn_status_t write_metrics(const char *path, const cnn_train_state_t *ts)
{
    cnn_afile_t *f = NULL;
    FILE *out;
    CNN_TRY(cnn_afile_open(path, &f, &out));
    fprintf(out, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_second\n");
    for (int i = 0; i < ts->nhistory; i++) {
        const double *h = ts->history + (size_t)i * CNN_HISTORY_COLS;
        fprintf(out, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%.1f\n", (int)h[0], h[1], h[2], h[3],
                h[4], h[5], h[6], h[7]);
    }
    return cnn_afile_commit(f);
}

/* What model.h5 and checkpoint.h5 say besides the weights; borrows the
 * run's config text, class names, normalisation and history. */
static cnn_model_meta_t model_meta(const run_t *r)
{
    const cnn_data_t *d = r->d;
    return (cnn_model_meta_t){
        .config = r->config_text, .c = d->c, .h = d->h, .w = d->w, .nclasses = d->nclasses,
        .class_names = d->train->nclasses == d->nclasses ? d->train->class_names : NULL,
        .mean = (float *)d->mean, .std = (float *)d->std,
        .nhistory = r->ts.nhistory, .history = r->ts.history,
        .resize = d->recipe.resize, .fit = d->recipe.fit, .channels = d->recipe.channels};
}

/* Writes `path` as a model file of net's layers holding the weights
 * `params` (net->nparams) and `state` (net->nstate) with meta. These may
 * be the net's own arenas or copies in the same layout (the best
 * weights); copies are swapped into the net for the write and the net's
 * values put back. */
static cnn_status_t write_model(const char *path, cnn_net_t *net, const float *params,
                                const float *state, const cnn_model_meta_t *meta)
{
    if (params == net->params && state == net->state) return cnn_model_save(path, net, meta);
    const size_t np = net->nparams, ns = net->nstate;
    float *keep = malloc(sizeof(float) * (np + ns + 1));
    if (!keep) return cnn_error_set(CNN_ENOMEM, "out of memory");
    memcpy(keep, net->params, sizeof(float) * np);
    memcpy(keep + np, net->state, sizeof(float) * ns);
    memcpy(net->params, params, sizeof(float) * np);
    memcpy(net->state, state, sizeof(float) * ns);
    cnn_status_t st = cnn_model_save(path, net, meta);
    memcpy(net->params, keep, sizeof(float) * np);
    memcpy(net->state, keep + np, sizeof(float) * ns);
    free(keep);
    return st;
}

static cnn_status_t write_checkpoint(run_t *r)
{
    const cnn_model_meta_t meta = model_meta(r);
    cnn_checkpoint_t ck = {.net = r->net, .opt = r->opt, .ts = &r->ts,
                           .best_params = r->ts.has_best ? r->best_params : NULL,
                           .best_state = r->best_state, .meta = &meta,
                           .world_size = r->size, .threads = r->net->nthreads,
                           .sum_ranks_per_node = cnn_dist_gsum_ranks_per_node(r->gsum)};
    cnn_status_t st = cnn_checkpoint_save(r->ckpt_path, &ck);
    if (st == CNN_OK) unlink(r->none_path); /* there is something to resume now */
    r->last_ckpt_time = MPI_Wtime();
    return st;
}

/* What a save point writes, in this order. */
typedef struct {
    int metrics;                  /* metrics.csv */
    const float *model_params;    /* model.h5 with these weights (nparams) */
    const float *model_state;     /* and state (nstate); NULL: no model */
    int checkpoint;               /* checkpoint.h5 */
} save_t;

/* The best weights so far, as model.h5. */
static save_t save_best(const run_t *r)
{
    return (save_t){.model_params = r->best_params, .model_state = r->best_state};
}

/* Rank 0 writes, then all ranks agree on the outcome. */
static cnn_status_t save_agreed(run_t *r, save_t what)
{
    cnn_status_t st = CNN_OK;
    cnn_watchdog_phase(r->wd, CNN_WD_SAVE);
    cnn_fault_set_step(r->ts.global_step);
    if (r->rank == 0) {
        const cnn_model_meta_t meta = model_meta(r);
        if (st == CNN_OK && what.metrics) st = write_metrics(r->metrics_path, &r->ts);
        if (st == CNN_OK && what.model_params)
            st = write_model(r->model_path, r->net, what.model_params, what.model_state, &meta);
        if (st == CNN_OK && what.checkpoint) st = write_checkpoint(r);
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
    const char *tag = tag_of(r);
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

/* Scores the net on ds: the whole set on every rank, or with data.load =
 * shard or stream this rank's slice of a set of `total` images. */
static cnn_status_t evaluate_set(run_t *r, const cnn_dataset_t *ds, size_t total, cnn_eval_t *ev)
{
    const cnn_data_t *d = r->d;
    if (d->sliced)
        return cnn_evaluate_part(r->comm, r->net, ds, total, d->mean, d->std, r->loss, 0, NULL, ev);
    return cnn_evaluate(r->comm, r->net, ds, d->mean, d->std, r->loss, 0, NULL, ev);
}

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
    CNN_TRY(evaluate_set(r, r->d->val, r->d->val_total, &ev));
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

/* 1 if rank 0 wants a checkpoint after the coming step (checkpoint.*
 * cadence); the other ranks learn it through the step's reduction. */
static int checkpoint_due(const run_t *r)
{
    const cnn_checkpoint_config_t *cc = &r->cfg->checkpoint;
    if (r->rank != 0) return 0;
    return (cc->every_steps > 0 && (r->ts.global_step + 1) % cc->every_steps == 0) ||
           (cc->every_minutes > 0 && MPI_Wtime() - r->last_ckpt_time >= 60.0 * cc->every_minutes);
}

/* MPICNN_FAULT=nan: a NaN in this rank's gradient of the coming step. */
static void fault_nan_gradient(run_t *r)
{
    if (r->net->nparams == 0 || !cnn_fault_step_due(CNN_FAULT_NAN, r->ts.global_step + 1)) return;
    fprintf(stderr, "mpicnn: rank %d: MPICNN_FAULT=%s: NaN in this rank's gradient of global "
                    "step %lld\n", r->rank, cnn_fault_get()->text, (long long)r->ts.global_step + 1);
    r->net->grads[0] = NAN;
}

/* MPICNN_FAULT=nan_weights: a NaN in this rank's weights after the step. */
static void fault_nan_weights(run_t *r)
{
    if (r->net->nparams == 0 || !cnn_fault_step_due(CNN_FAULT_NAN_WEIGHTS, r->ts.global_step + 1))
        return;
    fprintf(stderr, "mpicnn: rank %d: MPICNN_FAULT=%s: NaN in this rank's weights after global "
                    "step %lld\n", r->rank, cnn_fault_get()->text, (long long)r->ts.global_step + 1);
    r->net->params[0] = NAN;
}

/* This rank's slice of the batch (in the net's input and r->labels):
 * forward, loss (into aux) and backward (gradients into the arena). */
static void forward_backward(run_t *r, int n_local, int n_global, double *aux)
{
    cnn_net_t *net = r->net;
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, r->cfg->train.seed, r->rank, (uint64_t)r->ts.global_step);
    if (r->sync_stats) {
        ctx.allreduce_sum = cnn_dist_layer_sum;
        ctx.allreduce_arg = &r->lsum;
    }
    const float *y = cnn_net_forward(net, &ctx, n_local);
    const int K = net->output.c;
    /* the loss gradient goes to the first layer's ping-pong buffer's
     * twin: dbuf[1] is free until the second layer from the top */
    float *dy = net->dbuf[1];
    const double smoothing = r->cfg->train.label_smoothing;
    if (smoothing > 0)
        cnn_loss_softmax_ce_smooth(y, r->labels, n_local, K, smoothing, 1.0f / (float)n_global,
                                   &aux[AUX_LOSS], dy);
    else
        r->loss->compute(y, r->labels, n_local, K, 1.0f / (float)n_global, &aux[AUX_LOSS], dy);
    for (int i = 0; i < n_local; i++)
        aux[AUX_CORRECT] += cnn_argmax(y + (size_t)i * K, K) == r->labels[i];
    cnn_net_backward(net, &ctx, n_local, dy);
}

/* forward_backward on a rank with images; with synchronised layer
 * statistics, inside the step's begin and end of their sums (collective:
 * a rank without images takes part in the begin). */
static cnn_status_t run_passes(run_t *r, int n_local, int n_global, double *aux)
{
    if (!r->sync_stats) {
        if (n_local > 0) forward_backward(r, n_local, n_global, aux);
        return CNN_OK;
    }
    const cnn_status_t st = cnn_dist_layer_sum_begin(&r->lsum, n_local > 0);
    if (st == CNN_OK && n_local > 0) forward_backward(r, n_local, n_global, aux);
    const cnn_status_t end = cnn_dist_layer_sum_end(&r->lsum);
    return st != CNN_OK ? st : end;
}

/* Forward, backward and the reductions for step `step` of the current
 * epoch; the caller applies or skips the update. */
static cnn_status_t compute_step(run_t *r, size_t step, int want_ckpt, step_out_t *out)
{
    cnn_net_t *net = r->net;
    int n_local = 0, n_global = 0;
    /* a rank that cannot read its batch still joins the step's
     * reductions, which tell every rank to fail */
    const cnn_status_t data_st = cnn_source_batch(r->src, (long)r->ts.epoch, step,
                                                  cnn_net_input(net), r->labels, &n_local,
                                                  &n_global);
    if (data_st != CNN_OK) n_local = 0;
    double *aux = r->aux + net->nstate;
    cnn_net_zero_grad(net);
    memcpy(r->prev_state, net->state, sizeof(float) * net->nstate);
    aux[AUX_LOSS] = aux[AUX_CORRECT] = 0.0;
    aux[AUX_DATA_ERROR] = data_st != CNN_OK;
    CNN_TRY(run_passes(r, n_local, n_global, aux));
    /* batchnorm running statistics: averaged over the ranks (with
     * synchronised ones, over the ranks that ran the step, which agree;
     * a rank without images has the old ones) */
    const int idle = r->sync_stats && n_local == 0;
    const int state_ranks = r->sync_stats && r->lsum.ranks > 0 ? r->lsum.ranks : r->size;
    for (size_t i = 0; i < net->nstate; i++) r->aux[i] = idle ? 0.0 : net->state[i];
    aux[AUX_STOP] = cnn_train_stop_requested() ? 1.0 : 0.0;
    aux[AUX_CKPT] = want_ckpt ? 1.0 : 0.0;
    fault_nan_gradient(r);
    CNN_TRY(cnn_watchdog_arrive(r->wd));
    CNN_TRY(cnn_dist_gsum_run(r->gsum, net->grads, &r->grad_sum));
    cnn_watchdog_phase(r->wd, CNN_WD_ALLREDUCE_AUX);
    CNN_TRY(cnn_dist_sum_doubles(r->comm, r->aux, net->nstate + AUX_N));
    if (aux[AUX_DATA_ERROR] > 0)
        return data_st != CNN_OK ? data_st
                                 : cnn_error_set(CNN_EDATA, "another rank could not read its "
                                                 "training images (see its message)");
    cnn_watchdog_phase(r->wd, CNN_WD_UPDATE);
    out->finite = isfinite(aux[AUX_LOSS]) && cnn_all_finite(r->grad_sum, net->nparams);
    for (size_t i = 0; i < net->nstate; i++) net->state[i] = (float)(r->aux[i] / state_ranks);
    out->n_global = n_global;
    out->loss_sum = aux[AUX_LOSS];
    out->correct = aux[AUX_CORRECT];
    out->stop = aux[AUX_STOP] > 0;
    out->checkpoint = aux[AUX_CKPT] > 0;
    return CNN_OK;
}

/* The optimizer step with the scheduled learning rate, and the epoch's
 * running sums; with train.report_l2 the loss of every image includes the
 * L2 term of the weights the step's loss was computed at. */
static void apply_step(run_t *r, const step_out_t *s)
{
    cnn_train_state_t *ts = &r->ts;
    cnn_net_t *net = r->net;
    const double l2 = r->cfg->train.report_l2 ? cnn_optim_l2(r->opt, net->params, net->nthreads)
                                              : 0.0;
    ts->lr = cnn_config_lr(r->cfg, (double)ts->epoch + (double)ts->step / (double)r->steps,
                           (long)ts->global_step, (long)r->steps, r->size);
    cnn_optim_step(r->opt, net->params, r->grad_sum, ts->lr, net->nthreads);
    fault_nan_weights(r);
    if (r->cfg->train.report_l2) ts->acc_loss += s->loss_sum + l2 * s->n_global;
    else ts->acc_loss += s->loss_sum;
    ts->acc_correct += s->correct;
    ts->acc_seen += s->n_global;
    r->images_total += s->n_global;
}

/* train.nan_policy for a step whose summed loss or gradient is not
 * finite: stop fails the run; skip drops the step (the batchnorm
 * statistics go back to before it). The reduced values are the same on
 * every rank, so is the outcome. */
static cnn_status_t skip_step(run_t *r, const step_out_t *s)
{
    cnn_train_state_t *ts = &r->ts;
    cnn_net_t *net = r->net;
    const char *what = isfinite(s->loss_sum) ? "gradient"
                       : cnn_all_finite(r->grad_sum, net->nparams) ? "loss"
                                                                  : "loss and gradient";
    if (r->cfg->train.nan_policy == CNN_NAN_STOP)
        return cnn_error_set(CNN_ENUMERIC,
                             "non-finite %s (summed over all ranks) at epoch %lld step %lld "
                             "(global step %lld); train.nan_policy = stop",
                             what, (long long)ts->epoch + 1, (long long)ts->step + 1,
                             (long long)ts->global_step + 1);
    memcpy(net->state, r->prev_state, sizeof(float) * net->nstate);
    ts->skipped_steps++;
    /* every rank says so: the proof that they all skipped */
    if (!r->opts->quiet)
        fprintf(stderr, "mpicnn: rank %d: warning: non-finite %s at epoch %lld step %lld "
                        "(global step %lld): step skipped on every rank (train.nan_policy = "
                        "skip; %lld skipped so far)\n",
                r->rank, what, (long long)ts->epoch + 1, (long long)ts->step + 1,
                (long long)ts->global_step + 1, (long long)ts->skipped_steps);
    return CNN_OK;
}

/* After a step: a validation if train.validate_every asks for one inside
 * the epoch (saving a new best model; early stopping ends the epoch
 * here), then the checkpoint a signal or the cadence asked for. A signal
 * stops the run at this step boundary. */
static cnn_status_t after_step(run_t *r, const step_out_t *s)
{
    const cnn_train_state_t *ts = &r->ts;
    const int every = r->cfg->train.validate_every;
    if (every > 0 && ts->global_step % every == 0 && (size_t)ts->step < r->steps) {
        int new_best;
        CNN_TRY(validate(r, &new_best));
        if (new_best) CNN_TRY(save_agreed(r, save_best(r)));
        if (ts->stopped_early) return CNN_OK;
    }
    if (s->stop) {
        CNN_TRY(save_agreed(r, (save_t){.checkpoint = 1}));
        r->stopped = 1;
        return CNN_OK;
    }
    if (s->checkpoint) CNN_TRY(save_agreed(r, (save_t){.checkpoint = 1}));
    return CNN_OK;
}

/* One step of the current epoch, from the batch to the saves after it.
 * t_epoch: when the epoch started (MPI_Wtime, less the seconds of the
 * epoch spent before a resume). */
static cnn_status_t train_step(run_t *r, double t_epoch)
{
    cnn_train_state_t *ts = &r->ts;
    const int want_ckpt = checkpoint_due(r);
    step_out_t s = {0};
    cnn_watchdog_position(r->wd, ts->epoch + 1, ts->step + 1, ts->global_step + 1);
    cnn_watchdog_phase(r->wd, CNN_WD_COMPUTE);
    cnn_fault_step_hook(ts->global_step + 1);
    CNN_TRY(compute_step(r, (size_t)ts->step, want_ckpt, &s));
    if (s.finite) apply_step(r, &s);
    else CNN_TRY(skip_step(r, &s));
    ts->global_step++;
    ts->step++;
    ts->epoch_seconds = MPI_Wtime() - t_epoch;
    progress(r, (size_t)ts->step, r->steps, ts->epoch_seconds);
    return after_step(r, &s);
}

/* ------------------------------------------------------------------ */
/* one epoch                                                           */

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
    printf("%sepoch %d/%d  train loss %.4f acc %.4f", tag_of(r), (int)h[0], r->cfg->train.epochs,
           h[1], h[2]);
    if (isfinite(h[4])) printf("  val loss %.4f acc %.4f", h[3], h[4]);
    printf("  lr %.3g  %.1fs  %.0f img/s%s\n", h[5], h[6], h[7],
           new_best && r->d->val ? "  *best*" : "");
    fflush(stdout);
}

/* The end of an epoch (or an early stop in the middle of it): the
 * validation and the early-stopping decision, the history row, then
 * metrics.csv, a new best model and the checkpoint. */
static cnn_status_t end_epoch(run_t *r, double t_epoch)
{
    cnn_train_state_t *ts = &r->ts;
    ts->epoch_seconds = MPI_Wtime() - t_epoch;
    const double seconds = ts->epoch_seconds;
    int new_best = 0;
    if (!ts->stopped_early) CNN_TRY(validate(r, &new_best));
    ts->epoch++;
    ts->step = 0;
    CNN_TRY(add_history(r, ts->lr, seconds));
    print_epoch(r, new_best);
    ts->acc_loss = ts->acc_correct = ts->acc_seen = 0.0;
    ts->epoch_seconds = 0.0;
    save_t what = {.metrics = 1, .checkpoint = 1};
    if (new_best) {
        what.model_params = r->best_params;
        what.model_state = r->best_state;
    }
    CNN_TRY(save_agreed(r, what));
    if (ts->stopped_early && r->rank == 0 && !r->opts->quiet)
        printf("%searly stop: no improvement in %d validation%s; best epoch %lld\n", tag_of(r),
               r->cfg->early_stopping.patience, r->cfg->early_stopping.patience > 1 ? "s" : "",
               (long long)ts->best_epoch);
    return CNN_OK;
}

/* The steps left in the current epoch (all of them, or from where a
 * resumed run stopped), then its end unless a signal stopped the run. */
static cnn_status_t train_epoch(run_t *r)
{
    cnn_train_state_t *ts = &r->ts;
    const double t_epoch = MPI_Wtime() - ts->epoch_seconds;
    while ((size_t)ts->step < r->steps && !ts->stopped_early && !r->stopped)
        CNN_TRY(train_step(r, t_epoch));
    if (r->stopped) return CNN_OK;
    return end_epoch(r, t_epoch);
}

static int run_finished(const run_t *r)
{
    return r->ts.epoch >= r->cfg->train.epochs || r->ts.stopped_early || r->stopped;
}

/* ------------------------------------------------------------------ */
/* set-up and tear-down                                                */

static void run_free(run_t *r)
{
    cnn_watchdog_stop(r->wd);
    cnn_net_free(r->net);
    cnn_dist_gsum_free(r->gsum); /* after the net: its gradients may be in there */
    cnn_optim_free(r->opt);
    cnn_source_free(r->src);
    free(r->best_params);
    free(r->best_state);
    free(r->prev_state);
    free(r->aux);
    free(r->labels);
    free(r->config_text);
    cnn_train_state_free(&r->ts);
    cnn_data_free(&r->own);
}

/* Bytes of a data set in memory: its images and labels. */
static size_t dataset_bytes(const cnn_dataset_t *ds)
{
    if (!ds) return 0;
    const size_t image = cnn_mem_mul(cnn_mem_mul((size_t)ds->c, (size_t)ds->h), (size_t)ds->w);
    return cnn_mem_mul(ds->n, cnn_mem_add(image, sizeof(int32_t)));
}

/* What the run allocates beside the net, in the order of the plan's
 * message: the optimizer's state, the best-weights copies and step
 * buffers (alloc_buffers), the gradient sum's block, and the data set
 * with the sampler's order. Returns how many items it filled. */
static int run_extras(const run_t *r, const cnn_net_plan_t *plan, cnn_mem_item_t *x)
{
    const size_t slots = (size_t)cnn_optim_kind_slots((cnn_optim_kind_t)r->cfg->opt.type);
    const size_t np = cnn_mem_mul(plan->nparams, sizeof(float));
    const size_t ns = cnn_mem_mul(plan->nstate, sizeof(float));
    const cnn_data_t *d = r->d;
    size_t data = cnn_mem_add(dataset_bytes(d->train), dataset_bytes(d->val));
    data = cnn_mem_add(cnn_mem_add(data, dataset_bytes(d->test)),
                       cnn_mem_mul(d->train->n, sizeof(size_t)));
    int n = 0;
    x[n++] = (cnn_mem_item_t){"optimizer state", cnn_mem_mul(np, slots)};
    x[n++] = (cnn_mem_item_t){"best weights + buffers",
                              cnn_mem_add(cnn_mem_add(np, cnn_mem_mul(ns, 2)),
                                          cnn_mem_mul(plan->nstate + AUX_N, sizeof(double)))};
    if (r->size > 1) x[n++] = (cnn_mem_item_t){"gradient sum", np};
    x[n++] = (cnn_mem_item_t){"data set", data};
    return n;
}

/* The net for the data's image shape, built only when the run's memory
 * plan fits in the budget, its last layer checked against the number of
 * classes, initialised from train.seed. */
static cnn_status_t build_net(run_t *r, const cnn_membudget_t *budget)
{
    const cnn_config_t *cfg = r->cfg;
    const cnn_data_t *d = r->d;
    const cnn_shape_t in = {cfg->train.batch_size, d->c, d->h, d->w};
    cnn_net_plan_t plan;
    cnn_mem_item_t extra[4];
    cnn_status_t st = cnn_net_plan(cfg->layers, cfg->nlayers, in, cfg->train.threads, &plan);
    if (st == CNN_OK) {
        st = cnn_net_plan_check(&plan, cfg->layers, extra, run_extras(r, &plan, extra),
                                budget->bytes, budget->why);
        if (st != CNN_OK) cnn_error_prefix("%s", cfg->source);
    }
    if (st == CNN_OK) st = cnn_net_build(&plan, cfg->layers, &r->net);
    cnn_net_plan_free(&plan);
    CNN_TRY(st);
    cnn_net_t *net = r->net;
    if (net->output.c != d->nclasses || net->output.h != 1 || net->output.w != 1)
        return cnn_error_set(CNN_ECONFIG,
                             "%s: the last layer (%s) gives (%d,%d,%d) per image but the data "
                             "has %d classes: it must give (%d,1,1)",
                             cfg->source, cfg->layers[cfg->nlayers - 1].name, net->output.c,
                             net->output.h, net->output.w, d->nclasses, d->nclasses);
    cnn_net_init(net, cfg->train.seed);
    return CNN_OK;
}

static cnn_status_t build_optimizer(run_t *r)
{
    const cnn_opt_config_t *oc = &r->cfg->opt;
    CNN_TRY(cnn_optim_create((cnn_optim_kind_t)oc->type, r->net->nparams, &r->opt));
    r->opt->momentum = oc->momentum;
    r->opt->beta1 = oc->beta1;
    r->opt->beta2 = oc->beta2;
    r->opt->eps = oc->eps;
    r->opt->weight_decay = oc->weight_decay;
    r->opt->trust_coefficient = oc->trust_coefficient;
    return cnn_optim_use_net(r->opt, r->net);
}

/* The best-weights copies, the step buffers and the config text. */
static cnn_status_t alloc_buffers(run_t *r)
{
    const cnn_net_t *net = r->net;
    r->best_params = malloc(sizeof(float) * (net->nparams + 1));
    r->best_state = malloc(sizeof(float) * (net->nstate + 1));
    r->prev_state = malloc(sizeof(float) * (net->nstate + 1));
    r->aux = malloc(sizeof(double) * (net->nstate + AUX_N));
    r->labels = malloc(sizeof(int32_t) * (size_t)r->cfg->train.batch_size);
    r->config_text = cnn_config_to_string(r->cfg);
    if (!r->best_params || !r->best_state || !r->prev_state || !r->aux || !r->labels ||
        !r->config_text)
        return cnn_error_set(CNN_ENOMEM, "out of memory setting up training");
    return CNN_OK;
}

/* This rank's data, net, optimizer, sampler and buffers; a fresh state. */
static cnn_status_t setup(run_t *r)
{
    const cnn_config_t *cfg = r->cfg;
    cnn_status_t st = CNN_OK;
    CNN_TRY(cnn_dist_prepare(r->comm));
    CNN_MPI_CHECK(st, MPI_Comm_rank(r->comm, &r->rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(r->comm, &r->size), error);
    r->d = r->opts->data;
    if (!r->d) {
        CNN_TRY(cnn_dist_agree(r->comm, cnn_data_prepare_rank(cfg, 1, r->rank, r->size, &r->own)));
        r->d = &r->own;
    }
    cnn_membudget_t budget;
    CNN_TRY(cnn_dist_agree(r->comm, cnn_membudget_get(r->comm, cfg->train.max_memory_mb,
                                                      "[train] max_memory_mb", &budget)));
    CNN_TRY(build_net(r, &budget));
    CNN_TRY(build_optimizer(r));
    const cnn_source_data_t sd = {.train = r->d->train, .file = r->d->train_file,
                                  .rows = r->d->train_rows, .mean = r->d->mean, .std = r->d->std};
    CNN_TRY(cnn_source_create(cfg, &sd, r->rank, r->size, &r->src));
    r->steps = cnn_source_steps(r->src);
    r->loss = cfg->train.loss == CNN_LOSS_HINGE ? &cnn_loss_hinge : &cnn_loss_softmax_ce;
    CNN_TRY(alloc_buffers(r));
    r->ts.val_loss = r->ts.val_acc = NAN;
    r->ts.lr = cfg->opt.lr;

    const char *dir = r->opts->out_dir;
    snprintf(r->model_path, sizeof r->model_path, "%s/model.h5", dir);
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/checkpoint.h5", dir);
    snprintf(r->metrics_path, sizeof r->metrics_path, "%s/metrics.csv", dir);
    snprintf(r->none_path, sizeof r->none_path, "%s/checkpoint.none", dir);
    r->tty = r->opts->progress == CNN_PROGRESS_BAR ||
             (r->opts->progress == CNN_PROGRESS_AUTO && isatty(STDOUT_FILENO));
error:
    return st;
}

/* ------------------------------------------------------------------ */
/* the output directory and --resume                                   */

/* Rank 0: creates the output directory, removes the temp files a crashed
 * writer left, and reads the checkpoint if --resume asks for one (a
 * checkpoint without --resume, or --resume without one, is an error:
 * never a silent restart or overwrite). *threads and *sum_rpn: how the
 * checkpoint's run was split. */
static cnn_status_t open_outputs(run_t *r, int *threads, int *sum_rpn)
{
    const cnn_train_opts_t *o = r->opts;
    CNN_TRY(cnn_fs_mkdir_p(o->out_dir));
    CNN_TRY(cnn_afile_clean_stale(r->ckpt_path, NULL));
    CNN_TRY(cnn_afile_clean_stale(r->model_path, NULL));
    CNN_TRY(cnn_afile_clean_stale(r->metrics_path, NULL));
    const int exists = access(r->ckpt_path, F_OK) == 0;
    const int none = access(r->none_path, F_OK) == 0;
    if (exists && none) unlink(r->none_path); /* a checkpoint came after it */
    if (exists && !o->resume)
        return cnn_error_set(CNN_EUSAGE, "%s already holds a checkpoint: add --resume to continue "
                                         "that run, or choose another --out", o->out_dir);
    if (!exists && o->resume && !none)
        return cnn_error_set(CNN_EUSAGE, "--resume: %s does not exist", r->ckpt_path);
    if (!exists && o->resume) {
        r->fresh = 1;
        if (!o->quiet)
            printf("%s--resume: %s has no checkpoint (%s: the run was stopped before its "
                   "first): starting from the beginning\n", tag_of(r), o->out_dir, r->none_path);
    }
    if (!exists) return CNN_OK;
    return cnn_checkpoint_load(r->ckpt_path, r->cfg, r->size, r->net, r->opt, &r->ts,
                               r->best_params, r->best_state, threads, sum_rpn);
}

/* Rank 0's training state (read from the checkpoint) on every rank. */
static cnn_status_t share_state(run_t *r)
{
    cnn_train_state_t *ts = &r->ts;
    cnn_status_t st = CNN_OK;
    int64_t c[CNN_TS_NCOUNTERS + 1]; /* the counters, then the rows of history */
    double v[CNN_TS_NVALUES];
    cnn_train_state_pack(ts, c, v);
    c[CNN_TS_NCOUNTERS] = ts->nhistory;
    CNN_MPI_CHECK(st, MPI_Bcast(c, CNN_TS_NCOUNTERS + 1, MPI_INT64_T, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(v, CNN_TS_NVALUES, MPI_DOUBLE, 0, r->comm), error);
    cnn_train_state_unpack(ts, c, v);
    if (r->rank != 0) {
        const int64_t rows = c[CNN_TS_NCOUNTERS];
        free(ts->history);
        ts->nhistory = 0;
        ts->history = malloc(sizeof(double) * CNN_HISTORY_COLS * (size_t)(rows + 1));
        if (ts->history) ts->nhistory = (int)rows;
        else st = cnn_error_set(CNN_ENOMEM, "out of memory");
    }
    CNN_TRY(cnn_dist_agree(r->comm, st));
    CNN_MPI_CHECK(st, MPI_Bcast(ts->history, (int)(CNN_HISTORY_COLS * ts->nhistory), MPI_DOUBLE, 0,
                                r->comm), error);
error:
    return st;
}

/* Rank 0's weights, best weights and optimizer state on every rank. */
static cnn_status_t share_arenas(run_t *r)
{
    cnn_net_t *net = r->net;
    cnn_optim_t *opt = r->opt;
    cnn_status_t st = CNN_OK;
    CNN_MPI_CHECK(st, MPI_Bcast(net->params, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(net->state, (int)net->nstate, MPI_FLOAT, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(r->best_params, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(r->best_state, (int)net->nstate, MPI_FLOAT, 0, r->comm), error);
    int64_t t = opt->t;
    CNN_MPI_CHECK(st, MPI_Bcast(&t, 1, MPI_INT64_T, 0, r->comm), error);
    opt->t = t;
    if (opt->m)
        CNN_MPI_CHECK(st, MPI_Bcast(opt->m, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
    if (opt->v)
        CNN_MPI_CHECK(st, MPI_Bcast(opt->v, (int)net->nparams, MPI_FLOAT, 0, r->comm), error);
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

/* Rank 0 says where the run resumes, and whether the continuation can
 * differ from an uninterrupted run (another thread count or gradient
 * sum than the checkpoint's). */
static void print_resume(const run_t *r, int threads, int sum_rpn)
{
    const cnn_train_state_t *ts = &r->ts;
    const cnn_net_t *net = r->net;
    const char *tag = tag_of(r);
    if (r->rank != 0 || r->opts->quiet || r->fresh) return;
    if (ts->stopped_early || ts->epoch >= r->cfg->train.epochs)
        printf("%sresuming a finished run (%lld epochs%s): scoring the best model again\n", tag,
               (long long)ts->epoch, ts->stopped_early ? ", stopped early" : "");
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

/* The output directory; with --resume, the checkpoint's state on every
 * rank. */
static cnn_status_t prepare_outputs(run_t *r)
{
    cnn_status_t st = CNN_OK;
    int threads = 0, sum_rpn = 1;
    if (r->rank == 0) st = open_outputs(r, &threads, &sum_rpn);
    CNN_TRY(cnn_dist_agree(r->comm, st));
    if (!r->opts->resume) return CNN_OK;
    CNN_TRY(share_state(r));
    CNN_TRY(share_arenas(r));
    print_resume(r, threads, sum_rpn);
    return CNN_OK;
}

/* The images of an evaluation set (all ranks' slices). */
static size_t set_size(const cnn_dataset_t *ds, size_t total, int sliced)
{
    return !ds ? 0 : sliced ? total : ds->n;
}

/* The bytes of the data files the config names (those that exist), which
 * the watchdog's limit for loading scales with. */
static double data_bytes(const cnn_data_config_t *dc)
{
    const char *names[6 + 2 * CNN_MAX_FILES];
    int n = 0;
    const char *idx[] = {dc->train_images, dc->train_labels, dc->test_images, dc->test_labels,
                         dc->train_file, dc->test_file};
    for (int i = 0; i < 6; i++) names[n++] = idx[i];
    for (int i = 0; i < dc->ntrain_files; i++) names[n++] = dc->train_files[i];
    for (int i = 0; i < dc->ntest_files; i++) names[n++] = dc->test_files[i];
    double bytes = 0;
    for (int i = 0; i < n; i++) {
        char path[2 * CNN_PATH_MAX + 2];
        struct stat sb;
        if (!names[i][0]) continue;
        if (!dc->dir[0] || names[i][0] == '/') snprintf(path, sizeof path, "%s", names[i]);
        else snprintf(path, sizeof path, "%s/%s", dc->dir, names[i]);
        if (stat(path, &sb) == 0) bytes += (double)sb.st_size;
    }
    return bytes;
}

/* The sizes the watchdog's limits for saving, validation and the final
 * evaluation scale with: a checkpoint's bytes (weights, best weights,
 * two optimizer moments, the state twice) and batches of one step. */
static void watch_sizes(const run_t *r)
{
    const cnn_net_t *net = r->net;
    const double batch = (double)r->cfg->train.batch_size * r->size;
    const double nval = (double)set_size(r->d->val, r->d->val_total, r->d->sliced);
    const double ntest = (double)set_size(r->d->test, r->d->test_total, r->d->sliced);
    const cnn_wd_sizes_t z = {
        .load_bytes = 0,
        .save_bytes = 4.0 * (4.0 * (double)net->nparams + 2.0 * (double)net->nstate) + (1 << 20),
        .val_batches = ceil(nval / batch),
        .eval_batches = ceil((nval + ntest) / batch)};
    cnn_watchdog_sizes(r->wd, &z);
}

/* A stop requested on any rank before the first step ends the run here
 * (exit code 75). Without a checkpoint to resume, rank 0 writes
 * DIR/checkpoint.none, so that --resume starts from the beginning. */
static cnn_status_t stop_before_start(run_t *r)
{
    cnn_status_t st = CNN_OK;
    int stop = cnn_train_stop_requested(), any = 0, none = 0;
    CNN_MPI_CHECK(st, MPI_Allreduce(&stop, &any, 1, MPI_INT, MPI_MAX, r->comm), error);
    if (!any) return CNN_OK;
    if (r->rank == 0 && access(r->ckpt_path, F_OK) != 0) {
        cnn_afile_t *f = NULL;
        FILE *out;
        none = 1;
        st = cnn_fs_mkdir_p(r->opts->out_dir);
        if (st == CNN_OK) st = cnn_afile_open(r->none_path, &f, &out);
        if (st == CNN_OK) {
            fprintf(out, "stopped by a signal before the first checkpoint: nothing to resume; "
                         "--resume starts from the beginning\n");
            st = cnn_afile_commit(f);
        }
    }
    CNN_TRY(cnn_dist_agree(r->comm, st));
    CNN_MPI_CHECK(st, MPI_Bcast(&none, 1, MPI_INT, 0, r->comm), error);
    if (none)
        return cnn_error_set(CNN_ESTOPPED, "stopped by a signal before the first step: no "
                             "checkpoint yet, nothing to resume; --resume --out %s starts from "
                             "the beginning", r->opts->out_dir);
    return cnn_error_set(CNN_ESTOPPED, "stopped by a signal before the first step; %s is "
                         "unchanged: resume with --resume --out %s", r->ckpt_path,
                         r->opts->out_dir);
error:
    return st;
}


/* 1 if a layer of the net takes its training statistics over the ranks. */
static int syncs_stats(const cnn_net_t *net)
{
    for (int i = 0; i < net->nlayers; i++)
        if (net->layers[i].spec.sync) return 1;
    return 0;
}

/* Everything before the first step: this rank's set-up, then the
 * collective parts (the gradient sum, the watchdog), the output directory
 * or the resumed state, and rank 0's opening line. */
static cnn_status_t start_run(run_t *r)
{
    CNN_TRY(cnn_dist_prepare(r->comm));
    cnn_status_t st = cnn_watchdog_start(r->comm, r->cfg->train.watchdog_seconds, &r->wd);
    CNN_TRY(cnn_dist_agree(r->comm, st));
    const cnn_wd_sizes_t load = {.load_bytes = r->opts->data ? 0 : data_bytes(&r->cfg->data)};
    cnn_watchdog_sizes(r->wd, &load);
    cnn_watchdog_phase(r->wd, CNN_WD_LOAD);
    st = setup(r);
    if (st == CNN_OK) st = cnn_fault_init(r->rank, r->size);
    CNN_TRY(cnn_dist_agree(r->comm, st));
    CNN_TRY(stop_before_start(r));
    watch_sizes(r);
    /* collective: only once every rank has its net */
    st = cnn_dist_gsum_create(r->comm, r->net->nparams, 0, &r->gsum);
    if (st == CNN_OK && cnn_dist_gsum_buffer(r->gsum))
        cnn_net_bind_grads(r->net, cnn_dist_gsum_buffer(r->gsum));
    CNN_TRY(cnn_dist_agree(r->comm, st));
    r->sync_stats = r->size > 1 && syncs_stats(r->net);
    cnn_dist_layer_sum_init(&r->lsum, r->comm);
    cnn_watchdog_phase(r->wd, CNN_WD_OUTPUTS);
    CNN_TRY(prepare_outputs(r));
    CNN_TRY(stop_before_start(r));
    if (r->rank == 0 && !r->opts->quiet && (!r->opts->resume || r->fresh)) {
        const cnn_net_t *net = r->net;
        const cnn_data_t *d = r->d;
        printf("%straining %s: %zu train, %zu val, %zu test images; %d rank%s x %d thread%s; "
               "global batch %d; %zu parameters%s%s\n",
               tag_of(r), r->cfg->source, d->train->n, set_size(d->val, d->val_total, d->sliced),
               set_size(d->test, d->test_total, d->sliced), r->size, r->size > 1 ? "s" : "", net->nthreads,
               net->nthreads > 1 ? "s" : "", r->cfg->train.batch_size * r->size, net->nparams,
               r->size > 1 ? "; gradient sum: " : "", r->size > 1 ? cnn_dist_gsum_method(r->gsum) : "");
        fflush(stdout);
    }
    r->last_ckpt_time = MPI_Wtime();
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* the result                                                          */

/* The run's counts and the last epoch's training figures (from the
 * history, so that a resumed finished run reports them too). */
static void record_run(const run_t *r, double seconds, cnn_train_result_t *res)
{
    const cnn_train_state_t *ts = &r->ts;
    res->seconds = seconds;
    res->images_per_second = seconds > 0 ? r->images_total / seconds : 0.0;
    res->epochs_run = (int)ts->epoch;
    res->stopped_early = ts->stopped_early;
    if (ts->nhistory > 0) {
        res->train_loss = ts->history[(size_t)(ts->nhistory - 1) * CNN_HISTORY_COLS + 1];
        res->train_acc = ts->history[(size_t)(ts->nhistory - 1) * CNN_HISTORY_COLS + 2];
    }
}

/* A signal ended the run: its checkpoint is written; say how to go on. */
static cnn_status_t report_stop(const run_t *r)
{
    if (r->rank == 0 && !r->opts->quiet)
        printf("\n%sstopped by a signal at epoch %lld step %lld; checkpoint written to %s\n",
               tag_of(r), (long long)r->ts.epoch + 1, (long long)r->ts.step, r->ckpt_path);
    return cnn_error_set(CNN_ESTOPPED, "stopped by a signal; resume with --resume --out %s",
                         r->opts->out_dir);
}

/* FNV-1a over the bytes of the parameter and state arenas. */
static uint64_t hash_arenas(const cnn_net_t *net)
{
    const uint64_t h = cnn_fnv1a(CNN_FNV1A_INIT, net->params, net->nparams * sizeof(float));
    return cnn_fnv1a(h, net->state, net->nstate * sizeof(float));
}

/* The best weights become the net's (they are the result, whatever ended
 * the run), hashed and scored on the validation and test sets. */
static cnn_status_t score_best(run_t *r, cnn_train_result_t *res)
{
    cnn_net_t *net = r->net;
    const cnn_data_t *d = r->d;
    cnn_eval_t ev;
    if (r->ts.has_best) {
        memcpy(net->params, r->best_params, sizeof(float) * net->nparams);
        memcpy(net->state, r->best_state, sizeof(float) * net->nstate);
    }
    res->best_epoch = (int)r->ts.best_epoch;
    res->params_hash = hash_arenas(net);
    cnn_watchdog_phase(r->wd, CNN_WD_EVALUATE);
    if (d->val) {
        CNN_TRY(evaluate_set(r, d->val, d->val_total, &ev));
        res->val_loss = ev.loss;
        res->val_acc = ev.acc;
    }
    if (d->test && !r->opts->skip_test) {
        CNN_TRY(evaluate_set(r, d->test, d->test_total, &ev));
        res->test_loss = ev.loss;
        res->test_acc = ev.acc;
        res->test_correct = ev.correct;
        res->test_total = ev.total;
    }
    return CNN_OK;
}

static void print_summary(const run_t *r, const cnn_train_result_t *res)
{
    if (r->rank != 0 || r->opts->quiet) return;
    const char *tag = tag_of(r);
    const int test = r->d->test && !r->opts->skip_test;
    printf("%sbest epoch %d of %d (%.1f s, %.0f images/s)\n", tag, res->best_epoch,
           res->epochs_run, res->seconds, res->images_per_second);
    printf("%strain accuracy: %.4f (last epoch, running)\n", tag, res->train_acc);
    if (r->d->val) printf("%sval accuracy: %.4f\n", tag, res->val_acc);
    if (test)
        printf("%stest accuracy: %.4f (%ld/%ld)\n", tag, res->test_acc, res->test_correct,
               res->test_total);
    printf("%smodel: %s\n", tag, r->model_path);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */

cnn_status_t cnn_train(const cnn_config_t *cfg, const cnn_train_opts_t *opts,
                       cnn_train_result_t *res)
{
    run_t r = {.cfg = cfg, .opts = opts, .comm = opts->comm};
    cnn_status_t st;
    memset(res, 0, sizeof *res);
    res->val_loss = res->val_acc = res->test_loss = res->test_acc = NAN;

    if ((st = start_run(&r)) != CNN_OK) goto done;
    const double t_start = MPI_Wtime();
    while (!run_finished(&r))
        if ((st = train_epoch(&r)) != CNN_OK) goto done;
    record_run(&r, MPI_Wtime() - t_start, res);
    if (r.stopped) {
        st = report_stop(&r);
        goto done;
    }
    if ((st = score_best(&r, res)) != CNN_OK) goto done;
    /* model.h5 with the complete history: the best weights are the net's now */
    st = save_agreed(&r, (save_t){.model_params = r.net->params, .model_state = r.net->state});
    if (st != CNN_OK) goto done;
    print_summary(&r, res);
done:
    run_free(&r);
    return st;
}
