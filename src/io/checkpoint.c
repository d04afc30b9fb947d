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
/* Most history rows a checkpoint may hold. */
#define CKPT_HISTORY_MAX 100000

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

/* ------------------------------------------------------------------ */
/* writing                                                             */

/* The attributes of "/": format, version, config, how the run was split. */
static cnn_status_t write_header(cnn_h5w_t *w, const cnn_checkpoint_t *ck)
{
    cnn_status_t st;
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)cnn_config_hash(ck->meta->config));
    if ((st = cnn_h5w_attr_str(w, "/", "format", CKPT_FORMAT)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_int64(w, "/", "format_version", CKPT_VERSION)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_str(w, "/", "config", ck->meta->config)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_str(w, "/", "config_hash_hex", hex)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_int64(w, "/", "world_size", ck->world_size)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_int64(w, "/", "threads", ck->threads)) != CNN_OK) return st;
    return cnn_h5w_attr_int64(w, "/", "grad_sum_ranks_per_node",
                              ck->sum_ranks_per_node > 0 ? ck->sum_ranks_per_node : 1);
}

/* /optimizer: kind, step count t, the moment arenas it has (m: the
 * velocity of momentum, nesterov and lars, adam's and adamw's first
 * moment; v: their second moment). Nothing else is state: lars's tensor
 * table follows from the net, the learning rate from the step's position
 * and the config. */
static cnn_status_t write_optimizer(cnn_h5w_t *w, const cnn_optim_t *opt)
{
    cnn_status_t st;
    const size_t dims[1] = {opt->n};
    if ((st = cnn_h5w_group(w, "/optimizer")) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_str(w, "/optimizer", "kind", cnn_optim_name(opt->kind))) != CNN_OK)
        return st;
    if ((st = cnn_h5w_attr_int64(w, "/optimizer", "t", opt->t)) != CNN_OK) return st;
    if (opt->m && (st = cnn_h5w_floats(w, "/optimizer/m", 1, dims, opt->m)) != CNN_OK) return st;
    if (opt->v && (st = cnn_h5w_floats(w, "/optimizer/v", 1, dims, opt->v)) != CNN_OK) return st;
    return CNN_OK;
}

/* /train: the fields of the state's table as counters and values, each
 * named by a "names" attribute, and the history. */
static cnn_status_t write_train_state(cnn_h5w_t *w, const cnn_train_state_t *ts)
{
    cnn_status_t st;
    int64_t c[CNN_TS_NCOUNTERS];
    double v[CNN_TS_NVALUES];
    const char *cnames[CNN_TS_NCOUNTERS], *vnames[CNN_TS_NVALUES];
    cnn_train_state_pack(ts, c, v);
    cnn_train_state_names(cnames, vnames);
    if ((st = cnn_h5w_int64s(w, "/train/counters", CNN_TS_NCOUNTERS, c)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_strings(w, "/train/counters", "names", CNN_TS_NCOUNTERS, cnames)) !=
        CNN_OK)
        return st;
    if ((st = cnn_h5w_doubles(w, "/train/values", CNN_TS_NVALUES, v)) != CNN_OK) return st;
    if ((st = cnn_h5w_attr_strings(w, "/train/values", "names", CNN_TS_NVALUES, vnames)) !=
        CNN_OK)
        return st;
    if (ts->nhistory > 0)
        return cnn_h5w_doubles(w, "/train/history", (size_t)ts->nhistory * CNN_HISTORY_COLS,
                               ts->history);
    return CNN_OK;
}

cnn_status_t cnn_checkpoint_save(const char *path, const cnn_checkpoint_t *ck)
{
    const cnn_net_t *net = ck->net;
    cnn_h5w_t *w = NULL;
    cnn_status_t st;
    if (!cnn_all_finite(net->params, net->nparams) || !cnn_all_finite(net->state, net->nstate))
        return cnn_error_set(CNN_ENUMERIC, "%s: not written: the weights contain NaN or Inf", path);
    if ((st = cnn_h5w_open(path, &w)) != CNN_OK) return st;
    if ((st = write_header(w, ck)) != CNN_OK) goto fail;
    /* weights: the model layout of the current and of the best weights */
    if ((st = cnn_model_write_layers(w, "/layers", net, net->params, net->state)) != CNN_OK)
        goto fail;
    if (ck->best_params &&
        (st = cnn_model_write_layers(w, "/best/layers", net, ck->best_params, ck->best_state)) !=
            CNN_OK)
        goto fail;
    if ((st = write_optimizer(w, ck->opt)) != CNN_OK) goto fail;
    if ((st = write_train_state(w, ck->ts)) != CNN_OK) goto fail;
    fault_ckpt_kill(w, ck->ts->global_step);
    return cnn_h5w_commit(w);
fail:
    cnn_h5w_abort(w);
    return st;
}

/* ------------------------------------------------------------------ */
/* compatibility of the configs                                        */

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
                                       "train.watchdog_seconds", "train.max_memory_mb",
                                       "early_stopping.patience", "data.load", "data.cache_mb",
                                       NULL};
    char full[256];
    if (!strcmp(section, "checkpoint") || !strcmp(section, "sweep")) return 1;
    snprintf(full, sizeof full, "%s.%s", section, key);
    for (const char *const *s = safe; *s; s++)
        if (!strcmp(full, *s)) return 1;
    return 0;
}

/* 1 and the value of section.key in an INI text in out[len], or 0. */
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
                                 "train.watchdog_seconds, train.max_memory_mb, "
                                 "early_stopping.patience, data.load, data.cache_mb and "
                                 "[checkpoint] may change on "
                                 "resume)",
                                 path, section, key, a_name[0] == 'c' ? va : vb,
                                 a_name[0] == 'c' ? vb : va);
    }
    return CNN_OK;
}

/* The saved config as this mpicnn resolves it: parsing fills every key
 * the saved text lacks (a key added after the checkpoint was written)
 * with its default, and the re-serialised text lists them all. A text
 * that does not parse is compared as stored, so that the comparison names
 * what differs. NULL if out of memory; the caller frees. */
static char *resolve_saved_config(const char *saved)
{
    cnn_config_t *cfg = malloc(sizeof *cfg);
    char *text = NULL;
    if (cfg && cnn_config_parse_string(saved, "checkpoint", NULL, 0, cfg) == CNN_OK)
        text = cnn_config_to_string(cfg);
    else if (cfg)
        text = strdup(saved);
    free(cfg);
    return text;
}

cnn_status_t cnn_checkpoint_compatible(const char *path, const char *saved_config,
                                       const cnn_config_t *cfg)
{
    char *now = cnn_config_to_string(cfg), *then = resolve_saved_config(saved_config);
    cnn_status_t st;
    if (!now || !then) st = cnn_error_set(CNN_ENOMEM, "out of memory");
    else if ((st = compare_texts(path, then, now, "checkpoint", "current config")) == CNN_OK)
        st = compare_texts(path, now, then, "current config", "checkpoint");
    free(now);
    free(then);
    return st;
}

/* ------------------------------------------------------------------ */
/* reading                                                             */

/* The checkpoint is one of ours, of this format version, and made by a
 * run this one may continue: same world size, config (up to the safe
 * keys) and optimizer. *ws is its world size. */
static cnn_status_t check_identity(cnn_h5r_t *r, const char *path, const cnn_config_t *cfg,
                                   int world_size, const cnn_optim_t *opt, int64_t *ws)
{
    char *fmt = NULL, *config = NULL, *kind = NULL;
    int64_t version = 0;
    cnn_status_t st;
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
    if ((st = cnn_h5r_attr_int64(r, "/", "world_size", ws)) != CNN_OK) goto done;
    if (*ws != world_size) {
        st = cnn_error_set(CNN_ECONFIG,
                           "%s: cannot resume: the checkpoint was made with %lld rank%s, this run "
                           "has %d (the global batch and the data shards would change)",
                           path, (long long)*ws, *ws == 1 ? "" : "s", world_size);
        goto done;
    }
    if ((st = cnn_h5r_attr_str(r, "/", "config", &config)) != CNN_OK) goto done;
    if ((st = cnn_checkpoint_compatible(path, config, cfg)) != CNN_OK) goto done;
    if ((st = cnn_h5r_attr_str(r, "/optimizer", "kind", &kind)) != CNN_OK) goto done;
    if (strcmp(kind, cnn_optim_name(opt->kind)))
        st = cnn_error_set(CNN_ECONFIG, "%s: cannot resume: the checkpoint's optimizer is %s, "
                                        "this run's is %s", path, kind, cnn_optim_name(opt->kind));
done:
    free(fmt);
    free(config);
    free(kind);
    return st;
}

/* /train/counters and /train/values into the scalar fields of *got,
 * checked for values no run can reach. */
static cnn_status_t read_counters(cnn_h5r_t *r, const char *path, cnn_train_state_t *got)
{
    int64_t *c = NULL;
    double *v = NULL;
    size_t nc = 0, nv = 0;
    cnn_status_t st;
    if ((st = cnn_h5r_int64s(r, "/train/counters", CNN_TS_NCOUNTERS, &c, &nc)) != CNN_OK) goto done;
    if ((st = cnn_h5r_doubles(r, "/train/values", CNN_TS_NVALUES, &v, &nv)) != CNN_OK) goto done;
    if (nc != CNN_TS_NCOUNTERS || nv != CNN_TS_NVALUES) {
        st = cnn_error_set(CNN_EDATA, "%s: /train/counters has %zu values and /train/values %zu; "
                                      "expected %d and %d", path, nc, nv, CNN_TS_NCOUNTERS,
                           CNN_TS_NVALUES);
        goto done;
    }
    cnn_train_state_unpack(got, c, v);
    if (got->epoch < 0 || got->step < 0 || got->global_step < 0 || got->epoch > 100000000 ||
        got->global_step > ((int64_t)1 << 50))
        st = cnn_error_set(CNN_EDATA,
                           "%s: /train/counters holds impossible values: epoch %lld, step %lld, "
                           "global step %lld (expected epoch in 0..100000000, step >= 0, global "
                           "step in 0..2^50)", path, (long long)got->epoch, (long long)got->step,
                           (long long)got->global_step);
done:
    free(c);
    free(v);
    return st;
}

/* /train/history (absent: no rows) as whole rows; *hist is the caller's. */
static cnn_status_t read_history(cnn_h5r_t *r, const char *path, double **hist, int *nrows)
{
    size_t nh = 0;
    cnn_status_t st = CNN_OK;
    *hist = NULL;
    *nrows = 0;
    if (cnn_h5r_exists(r, "/train/history") &&
        (st = cnn_h5r_doubles(r, "/train/history", (size_t)CKPT_HISTORY_MAX * CNN_HISTORY_COLS,
                              hist, &nh)) != CNN_OK)
        return st;
    if (nh % CNN_HISTORY_COLS) {
        free(*hist);
        *hist = NULL;
        return cnn_error_set(CNN_EDATA, "%s: /train/history has %zu values, not a multiple of %d",
                             path, nh, CNN_HISTORY_COLS);
    }
    *nrows = (int)(nh / CNN_HISTORY_COLS);
    return CNN_OK;
}

/* The optimizer's step count and the attributes that say how the run was
 * split: its threads and its gradient sum's ranks per node (1 when not
 * recorded; refused outside 1..ws). */
static cnn_status_t read_run_attrs(cnn_h5r_t *r, const char *path, int64_t ws, int64_t *t,
                                   int64_t *nthreads, int64_t *sum_rpn)
{
    cnn_status_t st;
    *sum_rpn = 1;
    if ((st = cnn_h5r_attr_int64(r, "/optimizer", "t", t)) != CNN_OK) return st;
    if ((st = cnn_h5r_attr_int64(r, "/", "threads", nthreads)) != CNN_OK) return st;
    if (cnn_h5r_attr_exists(r, "/", "grad_sum_ranks_per_node") &&
        (st = cnn_h5r_attr_int64(r, "/", "grad_sum_ranks_per_node", sum_rpn)) != CNN_OK)
        return st;
    if (*sum_rpn < 1 || *sum_rpn > ws)
        return cnn_error_set(CNN_EDATA, "%s: grad_sum_ranks_per_node is %lld, expected 1..%lld "
                                        "(the world size)", path, (long long)*sum_rpn,
                             (long long)ws);
    return CNN_OK;
}

/* The optimizer's moment arenas it has. */
static cnn_status_t read_moments(cnn_h5r_t *r, cnn_optim_t *opt)
{
    cnn_status_t st;
    const size_t dims[1] = {opt->n};
    if (opt->m && (st = cnn_h5r_floats(r, "/optimizer/m", 1, dims, opt->m)) != CNN_OK) return st;
    if (opt->v && (st = cnn_h5r_floats(r, "/optimizer/v", 1, dims, opt->v)) != CNN_OK) return st;
    return CNN_OK;
}

cnn_status_t cnn_checkpoint_load(const char *path, const cnn_config_t *cfg, int world_size,
                                 cnn_net_t *net, cnn_optim_t *opt, cnn_train_state_t *ts,
                                 float *best_params, float *best_state, int *threads,
                                 int *sum_ranks_per_node)
{
    cnn_h5r_t *r = NULL;
    cnn_train_state_t got = {0};
    int64_t ws = 0, t = 0, nthreads = 0, sum_rpn = 1;
    cnn_status_t st;
    if ((st = cnn_h5r_open(path, &r)) != CNN_OK) return st;
    if ((st = check_identity(r, path, cfg, world_size, opt, &ws)) != CNN_OK) goto done;
    /* everything matches: read the state */
    if ((st = read_counters(r, path, &got)) != CNN_OK) goto done;
    if ((st = read_history(r, path, &got.history, &got.nhistory)) != CNN_OK) goto done;
    if ((st = cnn_model_read_layers(r, path, "/layers", net, net->params, net->state)) != CNN_OK)
        goto done;
    if (got.has_best &&
        (st = cnn_model_read_layers(r, path, "/best/layers", net, best_params, best_state)) != CNN_OK)
        goto done;
    if ((st = read_run_attrs(r, path, ws, &t, &nthreads, &sum_rpn)) != CNN_OK) goto done;
    if ((st = read_moments(r, opt)) != CNN_OK) goto done;

    opt->t = t;
    if (threads) *threads = (int)nthreads;
    if (sum_ranks_per_node) *sum_ranks_per_node = (int)sum_rpn;
    cnn_train_state_free(ts);
    *ts = got; /* ts owns the history now */
    got.history = NULL;
done:
    cnn_train_state_free(&got);
    cnn_h5r_close(r);
    return st;
}
