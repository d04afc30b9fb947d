/* checkpoint.c - write and read the complete training state.
 *
 * MPICNN_FAULT=ckpt_kill[@STEP] (tests only; see fault.h) kills the
 * writing process with SIGKILL half-way through the first checkpoint it
 * writes once STEP global steps are done (default 0): the temporary file
 * holds half the file, the rename has not happened. It shows that a
 * crash during the write leaves the previous checkpoint intact. */
#include "mpicnn/checkpoint.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/fault.h"
#include "mpicnn/h5io.h"
#include "mpicnn/kernels.h"

#define CKPT_FORMAT "mpicnn-checkpoint"
/* 2: /train/counters gained stopped_early and /train/values lr */
#define CKPT_VERSION 2

/* Counters of cnn_train_state_t, in the order of /train/counters. */
enum { C_EPOCH, C_STEP, C_GLOBAL_STEP, C_SKIPPED, C_EVALS, C_HAS_BEST, C_BEST_EPOCH,
       C_BAD_EVALS, C_STOPPED_EARLY, C_N };
/* Reals of cnn_train_state_t, in the order of /train/values. */
enum { V_BEST_METRIC, V_ACC_LOSS, V_ACC_CORRECT, V_ACC_SEEN, V_EPOCH_SECONDS, V_VAL_LOSS,
       V_VAL_ACC, V_LR, V_N };

static const char *const counter_names[C_N] = {
    "epoch", "step", "global_step", "skipped_steps", "evals", "has_best", "best_epoch",
    "bad_evals", "stopped_early"};
static const char *const value_names[V_N] = {
    "best_metric", "acc_loss", "acc_correct", "acc_seen", "epoch_seconds", "val_loss",
    "val_acc", "lr"};

/* The MPICNN_FAULT=ckpt_kill hook (see the top of this file). */
static void fault_ckpt_kill(cnn_h5w_t *w, int64_t global_step)
{
    if (!cnn_fault_write_due(CNN_FAULT_CKPT_KILL, global_step)) return;
    /* half the file in the temporary file, as a crash in the middle of
     * commit's write would leave it; best effort: we die next */
    void *image = NULL;
    size_t size = 0;
    if (cnn_h5w_image(w, &image, &size) == CNN_OK) {
        FILE *f = fopen(cnn_h5w_tmp_path(w), "wb");
        if (f) {
            fwrite(image, 1, size / 2, f);
            fclose(f);
        }
        free(image);
    }
    fprintf(stderr, "mpicnn: MPICNN_FAULT=%s: killed while writing the checkpoint of global "
                    "step %lld\n", cnn_fault_get()->text, (long long)global_step);
    raise(SIGKILL);
}

cnn_status_t cnn_checkpoint_save(const char *path, const cnn_checkpoint_t *ck)
{
    const cnn_net_t *net = ck->net;
    const cnn_train_state_t *ts = ck->ts;
    cnn_h5w_t *w = NULL;
    cnn_status_t st;
    if (!cnn_all_finite(net->params, net->nparams) || !cnn_all_finite(net->state, net->nstate))
        return cnn_error_set(CNN_ENUMERIC, "%s: not written: the weights contain NaN or Inf", path);
    if ((st = cnn_h5w_open(path, &w)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_str(w, "/", "format", CKPT_FORMAT)) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_int64(w, "/", "format_version", CKPT_VERSION)) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_str(w, "/", "config", ck->meta->config)) != CNN_OK) goto fail;
    {
        char hex[32];
        snprintf(hex, sizeof hex, "%016llx",
                 (unsigned long long)cnn_config_hash(ck->meta->config));
        if ((st = cnn_h5w_attr_str(w, "/", "config_hash_hex", hex)) != CNN_OK) goto fail;
    }
    if ((st = cnn_h5w_attr_int64(w, "/", "world_size", ck->world_size)) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_int64(w, "/", "threads", ck->threads)) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_int64(w, "/", "grad_sum_ranks_per_node",
                                 ck->sum_ranks_per_node > 0 ? ck->sum_ranks_per_node : 1)) !=
        CNN_OK)
        goto fail;

    /* weights: the model layout of the current and of the best weights */
    if ((st = cnn_model_write_layers(w, "/layers", net, net->params, net->state)) != CNN_OK)
        goto fail;
    if (ck->best_params &&
        (st = cnn_model_write_layers(w, "/best/layers", net, ck->best_params, ck->best_state)) !=
            CNN_OK)
        goto fail;

    /* optimizer */
    const cnn_optim_t *opt = ck->opt;
    if ((st = cnn_h5w_group(w, "/optimizer")) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_str(w, "/optimizer", "kind", cnn_optim_name(opt->kind))) != CNN_OK)
        goto fail;
    if ((st = cnn_h5w_attr_int64(w, "/optimizer", "t", opt->t)) != CNN_OK) goto fail;
    size_t dims[1] = {opt->n};
    if (opt->m && (st = cnn_h5w_floats(w, "/optimizer/m", 1, dims, opt->m)) != CNN_OK) goto fail;
    if (opt->v && (st = cnn_h5w_floats(w, "/optimizer/v", 1, dims, opt->v)) != CNN_OK) goto fail;

    /* counters */
    int64_t c[C_N] = {ts->epoch, ts->step, ts->global_step, ts->skipped_steps, ts->evals,
                      ts->has_best, ts->best_epoch, ts->bad_evals, ts->stopped_early};
    double v[V_N] = {ts->best_metric, ts->acc_loss, ts->acc_correct, ts->acc_seen,
                     ts->epoch_seconds, ts->val_loss, ts->val_acc, ts->lr};
    if ((st = cnn_h5w_int64s(w, "/train/counters", C_N, c)) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_strings(w, "/train/counters", "names", C_N, counter_names)) != CNN_OK)
        goto fail;
    if ((st = cnn_h5w_doubles(w, "/train/values", V_N, v)) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_strings(w, "/train/values", "names", V_N, value_names)) != CNN_OK)
        goto fail;
    if (ts->nhistory > 0 &&
        (st = cnn_h5w_doubles(w, "/train/history", (size_t)ts->nhistory * CNN_HISTORY_COLS,
                              ts->history)) != CNN_OK)
        goto fail;
    fault_ckpt_kill(w, ts->global_step);
    return cnn_h5w_commit(w);
fail:
    cnn_h5w_abort(w);
    return st;
}

/* Lines of an INI text, one at a time: "section.key = value" keys. */
static const char *next_line(const char *p, char *buf, size_t len)
{
    size_t n = 0;
    while (*p && *p != '\n') {
        if (n + 1 < len) buf[n++] = *p;
        p++;
    }
    buf[n] = '\0';
    return *p ? p + 1 : p;
}

/* Keys a resume may change (documented in docs/config.md). */
static int safe_key(const char *section, const char *key)
{
    static const char *const safe[] = {"train.epochs", "train.log_every", "train.threads",
                                       "train.watchdog_seconds", "early_stopping.patience",
                                       NULL};
    char full[256];
    if (!strcmp(section, "checkpoint") || !strcmp(section, "sweep")) return 1;
    snprintf(full, sizeof full, "%s.%s", section, key);
    for (const char *const *s = safe; *s; s++)
        if (!strcmp(full, *s)) return 1;
    return 0;
}

/* The value of section.key in an INI text, or NULL. */
static int find_value(const char *text, const char *section, const char *key, char *out, size_t len)
{
    char line[4096], cur[256] = "";
    for (const char *p = text; *p;) {
        p = next_line(p, line, sizeof line);
        if (line[0] == '[') {
            snprintf(cur, sizeof cur, "%.*s", (int)strcspn(line + 1, "]"), line + 1);
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq || strcmp(cur, section)) continue;
        char k[256];
        snprintf(k, sizeof k, "%.*s", (int)(eq - line), line);
        for (size_t i = strlen(k); i > 0 && k[i - 1] == ' '; i--) k[i - 1] = '\0';
        if (strcmp(k, key)) continue;
        const char *val = eq + 1;
        while (*val == ' ') val++;
        snprintf(out, len, "%s", val);
        return 1;
    }
    return 0;
}

/* Every key of `a` must be in `b` with the same value unless it is safe to
 * change; reports the first difference. */
static cnn_status_t compare_texts(const char *path, const char *a, const char *b,
                                  const char *a_name, const char *b_name)
{
    char line[4096], section[256] = "";
    for (const char *p = a; *p;) {
        p = next_line(p, line, sizeof line);
        if (line[0] == '[') {
            snprintf(section, sizeof section, "%.*s", (int)strcspn(line + 1, "]"), line + 1);
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#' || line[0] == ';') continue;
        char key[256], va[4096], vb[4096];
        snprintf(key, sizeof key, "%.*s", (int)(eq - line), line);
        for (size_t i = strlen(key); i > 0 && key[i - 1] == ' '; i--) key[i - 1] = '\0';
        const char *v = eq + 1;
        while (*v == ' ') v++;
        snprintf(va, sizeof va, "%s", v);
        if (safe_key(section, key)) continue;
        if (!find_value(b, section, key, vb, sizeof vb))
            return cnn_error_set(CNN_ECONFIG,
                                 "%s: cannot resume: [%s] %s is set in the %s (%s) but not in the %s",
                                 path, section, key, a_name, va, b_name);
        if (strcmp(va, vb))
            return cnn_error_set(CNN_ECONFIG,
                                 "%s: cannot resume: [%s] %s differs: checkpoint has %s, this run "
                                 "has %s (only train.epochs, train.log_every, train.threads, "
                                 "train.watchdog_seconds, early_stopping.patience and "
                                 "[checkpoint] may change on resume)",
                                 path, section, key, a_name[0] == 'c' ? va : vb,
                                 a_name[0] == 'c' ? vb : va);
    }
    return CNN_OK;
}

cnn_status_t cnn_checkpoint_compatible(const char *path, const char *saved_config,
                                       const cnn_config_t *cfg)
{
    char *now = cnn_config_to_string(cfg);
    if (!now) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_status_t st = compare_texts(path, saved_config, now, "checkpoint", "current config");
    if (st == CNN_OK) st = compare_texts(path, now, saved_config, "current config", "checkpoint");
    free(now);
    return st;
}

cnn_status_t cnn_checkpoint_load(const char *path, const cnn_config_t *cfg, int world_size,
                                 cnn_net_t *net, cnn_optim_t *opt, cnn_train_state_t *ts,
                                 float *best_params, float *best_state, int *threads,
                                 int *sum_ranks_per_node)
{
    cnn_h5r_t *r = NULL;
    char *fmt = NULL, *config = NULL, *kind = NULL;
    int64_t *c = NULL, ws = 0, version = 0, t = 0, nthreads = 0, sum_rpn = 1;
    double *v = NULL, *hist = NULL;
    size_t nc = 0, nv = 0, nh = 0;
    cnn_status_t st;
    if ((st = cnn_h5r_open(path, &r)) != CNN_OK) return st;
    if ((st = cnn_h5r_attr_str(r, "/", "format", &fmt)) != CNN_OK) goto done;
    if (strcmp(fmt, CKPT_FORMAT)) {
        st = cnn_error_set(CNN_EDATA, "%s: not an mpicnn checkpoint (format '%s')", path, fmt);
        goto done;
    }
    if ((st = cnn_h5r_attr_int64(r, "/", "format_version", &version)) != CNN_OK) goto done;
    if (version != CKPT_VERSION) {
        st = cnn_error_set(CNN_EDATA, "%s: checkpoint format version %lld; this mpicnn reads %d",
                           path, (long long)version, CKPT_VERSION);
        goto done;
    }
    if ((st = cnn_h5r_attr_int64(r, "/", "world_size", &ws)) != CNN_OK) goto done;
    if (ws != world_size) {
        st = cnn_error_set(CNN_ECONFIG,
                           "%s: cannot resume: the checkpoint was made with %lld rank%s, this run "
                           "has %d (the global batch and the data shards would change)",
                           path, (long long)ws, ws == 1 ? "" : "s", world_size);
        goto done;
    }
    if ((st = cnn_h5r_attr_str(r, "/", "config", &config)) != CNN_OK) goto done;
    if ((st = cnn_checkpoint_compatible(path, config, cfg)) != CNN_OK) goto done;
    if ((st = cnn_h5r_attr_str(r, "/optimizer", "kind", &kind)) != CNN_OK) goto done;
    if (strcmp(kind, cnn_optim_name(opt->kind))) {
        st = cnn_error_set(CNN_ECONFIG, "%s: cannot resume: the checkpoint's optimizer is %s, "
                                        "this run's is %s", path, kind, cnn_optim_name(opt->kind));
        goto done;
    }

    /* everything matches: read the state */
    if ((st = cnn_h5r_int64s(r, "/train/counters", C_N, &c, &nc)) != CNN_OK) goto done;
    if ((st = cnn_h5r_doubles(r, "/train/values", V_N, &v, &nv)) != CNN_OK) goto done;
    if (nc != C_N || nv != V_N) {
        st = cnn_error_set(CNN_EDATA, "%s: /train/counters has %zu values and /train/values %zu; "
                                      "expected %d and %d", path, nc, nv, C_N, V_N);
        goto done;
    }
    if (c[C_EPOCH] < 0 || c[C_STEP] < 0 || c[C_GLOBAL_STEP] < 0 || c[C_EPOCH] > 100000000 ||
        c[C_GLOBAL_STEP] > ((int64_t)1 << 50)) {
        st = cnn_error_set(CNN_EDATA,
                           "%s: /train/counters holds impossible values: epoch %lld, step %lld, "
                           "global step %lld (expected epoch in 0..100000000, step >= 0, global "
                           "step in 0..2^50)", path, (long long)c[C_EPOCH], (long long)c[C_STEP],
                           (long long)c[C_GLOBAL_STEP]);
        goto done;
    }
    if (cnn_h5r_exists(r, "/train/history") &&
        (st = cnn_h5r_doubles(r, "/train/history", (size_t)100000 * CNN_HISTORY_COLS, &hist,
                              &nh)) != CNN_OK)
        goto done;
    if (nh % CNN_HISTORY_COLS) {
        st = cnn_error_set(CNN_EDATA, "%s: /train/history has %zu values, not a multiple of %d",
                           path, nh, CNN_HISTORY_COLS);
        goto done;
    }
    if ((st = cnn_model_read_layers(r, path, "/layers", net, net->params, net->state)) != CNN_OK)
        goto done;
    if (c[C_HAS_BEST] &&
        (st = cnn_model_read_layers(r, path, "/best/layers", net, best_params, best_state)) != CNN_OK)
        goto done;
    if ((st = cnn_h5r_attr_int64(r, "/optimizer", "t", &t)) != CNN_OK) goto done;
    if ((st = cnn_h5r_attr_int64(r, "/", "threads", &nthreads)) != CNN_OK) goto done;
    if (cnn_h5r_attr_exists(r, "/", "grad_sum_ranks_per_node") &&
        (st = cnn_h5r_attr_int64(r, "/", "grad_sum_ranks_per_node", &sum_rpn)) != CNN_OK)
        goto done;
    if (sum_rpn < 1 || sum_rpn > ws) {
        st = cnn_error_set(CNN_EDATA, "%s: grad_sum_ranks_per_node is %lld, expected 1..%lld "
                                      "(the world size)", path, (long long)sum_rpn, (long long)ws);
        goto done;
    }
    size_t dims[1] = {opt->n};
    if (opt->m && (st = cnn_h5r_floats(r, "/optimizer/m", 1, dims, opt->m)) != CNN_OK) goto done;
    if (opt->v && (st = cnn_h5r_floats(r, "/optimizer/v", 1, dims, opt->v)) != CNN_OK) goto done;
    opt->t = t;

    ts->epoch = c[C_EPOCH];
    ts->step = c[C_STEP];
    ts->global_step = c[C_GLOBAL_STEP];
    ts->skipped_steps = c[C_SKIPPED];
    ts->evals = c[C_EVALS];
    ts->has_best = (int)c[C_HAS_BEST];
    ts->best_epoch = c[C_BEST_EPOCH];
    ts->bad_evals = c[C_BAD_EVALS];
    ts->stopped_early = c[C_STOPPED_EARLY] != 0;
    ts->best_metric = v[V_BEST_METRIC];
    ts->acc_loss = v[V_ACC_LOSS];
    ts->acc_correct = v[V_ACC_CORRECT];
    ts->acc_seen = v[V_ACC_SEEN];
    ts->epoch_seconds = v[V_EPOCH_SECONDS];
    ts->val_loss = v[V_VAL_LOSS];
    ts->val_acc = v[V_VAL_ACC];
    ts->lr = v[V_LR];
    if (threads) *threads = (int)nthreads;
    if (sum_ranks_per_node) *sum_ranks_per_node = (int)sum_rpn;
    free(ts->history);
    ts->history = hist;
    ts->nhistory = (int)(nh / CNN_HISTORY_COLS);
    hist = NULL;
done:
    free(fmt);
    free(config);
    free(kind);
    free(c);
    free(v);
    free(hist);
    cnn_h5r_close(r);
    return st;
}
