/* model.c - save and load model files (layout in docs/model-format.md).
 *
 * The names and shapes of a layer's datasets (PyTorch's names and
 * layouts) come from its type's tensor table (layer.h). A type without
 * one that has parameters or state is stored as flat `params` / `state`
 * datasets. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mpicnn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

const char *const cnn_history_cols[CNN_HISTORY_COLS] = {
    "epoch", "train_loss", "train_acc", "val_loss",
    "val_acc", "lr", "seconds", "images_per_second"};

/* Largest image side / channel count / class count accepted from a file. */
#define DIM_MAX (1 << 20)
/* Longest object path we build. */
#define OBJ_MAX 512

/* ---- per-type dataset layout ------------------------------------------ */

#define MAX_DS CNN_LAYER_TENSORS_MAX

typedef struct {
    const char *name; /* dataset name inside the layer group */
    int in_state;     /* 0: in the layer's params, 1: in its state */
    size_t offset;    /* floats from the start of that slice */
    int ndims;
    size_t dims[4];
} ds_t;

static size_t ds_count(const ds_t *d)
{
    size_t n = 1;
    for (int i = 0; i < d->ndims; i++) n *= d->dims[i];
    return n;
}

/* Fills d[MAX_DS] with the datasets of layer l; *n = 0 if it stores
 * nothing. CNN_EINTERNAL if the table disagrees with the layer's sizes. */
static cnn_status_t layer_layout(const cnn_layer_t *l, ds_t *d, int *n)
{
    *n = 0;
    if (l->sz.params == 0 && l->sz.state == 0) return CNN_OK;
    if (l->ops->ntensors > MAX_DS)
        return cnn_error_set(CNN_EINTERNAL, "layer %s (%s): %d tensors, at most %d",
                             l->spec.name, l->spec.type, l->ops->ntensors, MAX_DS);
    cnn_layer_tensor_t t[MAX_DS];
    *n = cnn_layer_tensors(l, t);
    for (int i = 0; i < *n; i++) {
        d[i] = (ds_t){t[i].desc->name, t[i].desc->in_state, t[i].offset, t[i].ndims, {0}};
        memcpy(d[i].dims, t[i].dims, sizeof d[i].dims);
    }
    if (*n == 0) {
        if (l->sz.params) d[(*n)++] = (ds_t){"params", 0, 0, 1, {l->sz.params}};
        if (l->sz.state) d[(*n)++] = (ds_t){"state", 1, 0, 1, {l->sz.state}};
    }
    size_t np = 0, ns = 0;
    for (int i = 0; i < *n; i++) *(d[i].in_state ? &ns : &np) += ds_count(&d[i]);
    if (np != l->sz.params || ns != l->sz.state)
        return cnn_error_set(CNN_EINTERNAL,
                             "layer %s (%s): file layout has %zu params + %zu state, "
                             "the layer %zu + %zu",
                             l->spec.name, l->spec.type, np, ns, l->sz.params, l->sz.state);
    return CNN_OK;
}

/* Where dataset d of layer l starts in its arena (net's params or
 * state), in values. */
static size_t ds_offset(const cnn_net_t *net, const cnn_layer_t *l, const ds_t *d)
{
    return (size_t)(d->in_state ? l->state - net->state : l->params - net->params) + d->offset;
}

/* The start of dataset d of layer l inside the given arenas. */
static const float *ds_src(const cnn_net_t *net, const cnn_layer_t *l, const ds_t *d,
                           const float *params, const float *state)
{
    return (d->in_state ? state : params) + ds_offset(net, l, d);
}

/* Arenas to read a net's layers into: float (f) or, with f64 set,
 * double (d); [0] params, [1] state. */
typedef struct {
    int f64;
    float *f[2];
    double *d[2];
} arenas_t;

static cnn_status_t obj_path(char *buf, const char *a, const char *b, const char *c)
{
    int k = c ? snprintf(buf, OBJ_MAX, "%s/%s/%s", a, b, c)
              : snprintf(buf, OBJ_MAX, "%s/%s", a, b);
    if (k < 0 || k >= OBJ_MAX)
        return cnn_error_set(CNN_EINTERNAL, "object path %s/%s too long", a, b);
    return CNN_OK;
}

/* The datasets of layer l (d[MAX_DS], *n of them) and its group's path
 * prefix/NAME in obj[OBJ_MAX]; *n = 0 for a layer that stores nothing. */
static cnn_status_t layer_group(const cnn_layer_t *l, const char *prefix, ds_t *d, int *n,
                                char *obj)
{
    CNN_TRY(layer_layout(l, d, n));
    return *n ? obj_path(obj, prefix, l->spec.name, NULL) : CNN_OK;
}

/* CNN_ENUMERIC naming the first non-finite value of the arenas. */
static cnn_status_t check_finite(const cnn_net_t *net, const float *params,
                                 const float *state)
{
    for (int li = 0; li < net->nlayers; li++) {
        const cnn_layer_t *l = &net->layers[li];
        ds_t d[MAX_DS];
        int n;
        CNN_TRY(layer_layout(l, d, &n));
        for (int k = 0; k < n; k++) {
            const float *v = ds_src(net, l, &d[k], params, state);
            const size_t cnt = ds_count(&d[k]);
            for (size_t i = 0; i < cnt; i++)
                if (!isfinite(v[i]))
                    return cnn_error_set(CNN_ENUMERIC, "layer %s %s[%zu] is %s",
                                         l->spec.name, d[k].name, i,
                                         isnan(v[i]) ? "NaN" : "Inf");
        }
    }
    return CNN_OK;
}

/* ---- writing ---------------------------------------------------------- */

/* Layer li's `inputs` attribute on obj: the names of its inputs (the
 * previous layer's, or "input" for the net's input). */
static cnn_status_t write_inputs(cnn_h5w_t *w, const cnn_net_t *net, int li, const char *obj)
{
    const cnn_layer_t *l = &net->layers[li];
    const char *names[CNN_LAYER_INPUTS_MAX];
    for (int k = 0; k < l->ninputs; k++)
        names[k] = l->src[k] < 0 ? CNN_NET_INPUT_NAME : net->layers[l->src[k]].spec.name;
    return cnn_h5w_attr_strings(w, obj, "inputs", (size_t)l->ninputs, names);
}

cnn_status_t cnn_model_write_layers(cnn_h5w_t *w, const char *prefix,
                                    const cnn_net_t *net, const float *params,
                                    const float *state)
{
    cnn_status_t st;
    const char **names = NULL, **types = NULL;
    char obj[OBJ_MAX], dso[OBJ_MAX];

    if (!params) params = net->params;
    if (!state) state = net->state;
    st = check_finite(net, params, state);
    if (st != CNN_OK) return st;
    names = malloc(sizeof *names * (size_t)(net->nlayers ? net->nlayers : 1));
    types = malloc(sizeof *types * (size_t)(net->nlayers ? net->nlayers : 1));
    if (!names || !types) {
        st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", cnn_h5w_path(w));
        goto done;
    }
    for (int i = 0; i < net->nlayers; i++) {
        names[i] = net->layers[i].spec.name;
        types[i] = net->layers[i].spec.type;
    }
    if ((st = cnn_h5w_group(w, prefix)) != CNN_OK) goto done;
    if ((st = cnn_h5w_attr_strings(w, prefix, "order", (size_t)net->nlayers,
                                   names)) != CNN_OK)
        goto done;
    if ((st = cnn_h5w_attr_strings(w, prefix, "types", (size_t)net->nlayers,
                                   types)) != CNN_OK)
        goto done;
    for (int li = 0; li < net->nlayers; li++) {
        const cnn_layer_t *l = &net->layers[li];
        ds_t d[MAX_DS];
        int n;
        if ((st = layer_group(l, prefix, d, &n, obj)) != CNN_OK) goto done;
        if (n == 0) continue;
        if ((st = cnn_h5w_group(w, obj)) != CNN_OK) goto done;
        if ((st = cnn_h5w_attr_str(w, obj, "type", l->spec.type)) != CNN_OK) goto done;
        if ((st = cnn_h5w_attr_int64(w, obj, "index", li)) != CNN_OK) goto done;
        if ((st = write_inputs(w, net, li, obj)) != CNN_OK) goto done;
        for (int k = 0; k < n; k++) {
            if ((st = obj_path(dso, prefix, l->spec.name, d[k].name)) != CNN_OK) goto done;
            st = cnn_h5w_floats(w, dso, d[k].ndims, d[k].dims,
                                ds_src(net, l, &d[k], params, state));
            if (st != CNN_OK) goto done;
        }
    }
done:
    free(names);
    free(types);
    return st;
}

cnn_status_t cnn_model_write_history(cnn_h5w_t *w, const char *prefix,
                                     int nrows, const double *history)
{
    cnn_status_t st = CNN_OK;
    char obj[OBJ_MAX];
    double *col;

    if (nrows <= 0) return CNN_OK;
    col = malloc(sizeof *col * (size_t)nrows);
    if (!col) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", cnn_h5w_path(w));
    for (int c = 0; c < CNN_HISTORY_COLS && st == CNN_OK; c++) {
        for (int i = 0; i < nrows; i++) col[i] = history[(size_t)i * CNN_HISTORY_COLS + c];
        st = obj_path(obj, prefix, cnn_history_cols[c], NULL);
        if (st == CNN_OK) st = cnn_h5w_doubles(w, obj, (size_t)nrows, col);
    }
    free(col);
    return st;
}

/* Checks meta against net before anything is written. */
static cnn_status_t check_meta(const char *path, const cnn_net_t *net,
                               const cnn_model_meta_t *m)
{
    if (m->class_names && m->nclasses != net->output.c)
        return cnn_error_set(CNN_ECONFIG, "cannot save %s: %d class names for a net "
                             "with %d outputs", path, m->nclasses, net->output.c);
    if (!m->mean != !m->std)
        return cnn_error_set(CNN_ECONFIG, "cannot save %s: normalisation needs both "
                             "mean and std", path);
    if (m->nhistory < 0 || (m->nhistory > 0 && !m->history))
        return cnn_error_set(CNN_ECONFIG, "cannot save %s: %d history rows without data",
                             path, m->nhistory);
    return CNN_OK;
}

/* The root attributes resize, fit and channels that meta has (how the
 * training images were made); absent ones are not written. */
static cnn_status_t write_recipe(cnn_h5w_t *w, const cnn_model_meta_t *m)
{
    const char *const names[3] = {"resize", "fit", "channels"};
    const char *const values[3] = {m->resize, m->fit, m->channels};
    for (int k = 0; k < 3; k++)
        if (values[k]) CNN_TRY(cnn_h5w_attr_str(w, "/", names[k], values[k]));
    return CNN_OK;
}

cnn_status_t cnn_model_save(const char *path, const cnn_net_t *net,
                            const cnn_model_meta_t *meta)
{
    static const cnn_model_meta_t none = {0};
    const cnn_model_meta_t *m = meta ? meta : &none;
    cnn_h5w_t *w = NULL;
    cnn_status_t st;

    st = check_finite(net, net->params, net->state);
    if (st != CNN_OK) {
        cnn_error_prefix("cannot save %s", path);
        return st;
    }
    if ((st = check_meta(path, net, m)) != CNN_OK) return st;
    if ((st = cnn_h5w_open(path, &w)) != CNN_OK) return st;

    const int64_t shape[3] = {net->input.c, net->input.h, net->input.w};
    const size_t c = (size_t)net->input.c;
#define TRY_W(expr)                                                            \
    do {                                                                       \
        if ((st = (expr)) != CNN_OK) goto fail;                                \
    } while (0)
    TRY_W(cnn_h5w_attr_str(w, "/", "format", CNN_MODEL_FORMAT));
    TRY_W(cnn_h5w_attr_int64(w, "/", "format_version", CNN_MODEL_FORMAT_VERSION));
    TRY_W(cnn_h5w_attr_str(w, "/", "config", m->config ? m->config : ""));
    TRY_W(cnn_h5w_attr_str(w, "/", "mpicnn_version", PACKAGE_VERSION));
    TRY_W(cnn_h5w_attr_int64(w, "/", "num_classes", net->output.c));
    TRY_W(cnn_h5w_int64s(w, "/input_shape", 3, shape));
    if (m->class_names)
        TRY_W(cnn_h5w_strings(w, "/classes", (size_t)m->nclasses,
                              (const char *const *)m->class_names));
    if (m->mean) {
        TRY_W(cnn_h5w_floats(w, "/normalization/mean", 1, &c, m->mean));
        TRY_W(cnn_h5w_floats(w, "/normalization/std", 1, &c, m->std));
    }
    TRY_W(write_recipe(w, m));
    TRY_W(cnn_model_write_layers(w, "/layers", net, NULL, NULL));
    TRY_W(cnn_model_write_history(w, "/history", m->nhistory, m->history));
#undef TRY_W
    return cnn_h5w_commit(w);
fail:
    cnn_h5w_abort(w);
    return st;
}

/* ---- reading ---------------------------------------------------------- */

void cnn_model_meta_free(cnn_model_meta_t *m)
{
    if (!m) return;
    free(m->config);
    if (m->class_names) cnn_h5_strings_free(m->class_names, (size_t)m->nclasses);
    free(m->mean);
    free(m->std);
    free(m->history);
    free(m->resize);
    free(m->fit);
    free(m->channels);
    memset(m, 0, sizeof *m);
}

/* The format attribute and version of an open model file. */
static cnn_status_t check_format(cnn_h5r_t *r)
{
    char *fmt = NULL;
    int64_t ver = 0;
    const char *path = cnn_h5r_path(r);
    cnn_status_t st;

    if (!cnn_h5r_attr_exists(r, "/", "format"))
        return cnn_error_set(CNN_EDATA, "%s: not an mpicnn model (no 'format' attribute "
                             "on /)", path);
    if ((st = cnn_h5r_attr_str(r, "/", "format", &fmt)) != CNN_OK) return st;
    if (strcmp(fmt, CNN_MODEL_FORMAT) != 0) {
        st = cnn_error_set(CNN_EDATA, "%s: / attribute 'format' is \"%.64s\", expected \"%s\"",
                           path, fmt, CNN_MODEL_FORMAT);
        free(fmt);
        return st;
    }
    free(fmt);
    if ((st = cnn_h5r_attr_int64(r, "/", "format_version", &ver)) != CNN_OK) return st;
    /* version 1 is a chain, which this reader builds as before */
    if (ver < 1 || ver > CNN_MODEL_FORMAT_VERSION)
        return cnn_error_set(CNN_EDATA, "%s: / attribute 'format_version' is %lld; this "
                             "mpicnn reads versions 1 to %d", path, (long long)ver,
                             CNN_MODEL_FORMAT_VERSION);
    return CNN_OK;
}

/* The optional root attributes resize, fit and channels into m. */
static cnn_status_t read_recipe(cnn_h5r_t *r, cnn_model_meta_t *m)
{
    const char *const names[3] = {"resize", "fit", "channels"};
    char **fields[3] = {&m->resize, &m->fit, &m->channels};
    for (int k = 0; k < 3; k++)
        if (cnn_h5r_attr_exists(r, "/", names[k]))
            CNN_TRY(cnn_h5r_attr_str(r, "/", names[k], fields[k]));
    return CNN_OK;
}

/* /input_shape as three ints in 1..DIM_MAX. */
static cnn_status_t read_input_shape(cnn_h5r_t *r, int chw[3])
{
    int64_t *v = NULL;
    size_t n = 0;
    cnn_status_t st = cnn_h5r_int64s(r, "/input_shape", 3, &v, &n);
    if (st != CNN_OK) return st;
    if (n != 3) st = cnn_error_set(CNN_EDATA, "%s: /input_shape: length %zu expected 3",
                                   cnn_h5r_path(r), n);
    for (size_t i = 0; st == CNN_OK && i < 3; i++) {
        if (v[i] < 1 || v[i] > DIM_MAX)
            st = cnn_error_set(CNN_EDATA, "%s: /input_shape: value %lld not in 1..%d",
                               cnn_h5r_path(r), (long long)v[i], DIM_MAX);
        else
            chw[i] = (int)v[i];
    }
    free(v);
    return st;
}

cnn_status_t cnn_model_read_history(cnn_h5r_t *r, const char *prefix,
                                    int *nrows, double **history)
{
    cnn_status_t st = CNN_OK;
    char obj[OBJ_MAX];
    double *hist = NULL, *col = NULL;
    size_t rows = 0;

    *nrows = 0;
    *history = NULL;
    if (!cnn_h5r_exists(r, prefix)) return CNN_OK;
    for (int c = 0; c < CNN_HISTORY_COLS; c++) {
        size_t n;
        if ((st = obj_path(obj, prefix, cnn_history_cols[c], NULL)) != CNN_OK) goto done;
        if ((st = cnn_h5r_doubles(r, obj, CNN_HISTORY_MAX, &col, &n)) != CNN_OK) goto done;
        if (c == 0) {
            rows = n;
            hist = malloc(sizeof *hist * (rows ? rows : 1) * CNN_HISTORY_COLS);
            if (!hist) {
                st = cnn_error_set(CNN_ENOMEM, "%s: %s: out of memory", cnn_h5r_path(r), obj);
                goto done;
            }
        } else if (n != rows) {
            st = cnn_error_set(CNN_EDATA, "%s: %s: length %zu, expected %zu like %s/%s",
                               cnn_h5r_path(r), obj, n, rows, prefix, cnn_history_cols[0]);
            goto done;
        }
        for (size_t i = 0; i < rows; i++) hist[i * CNN_HISTORY_COLS + c] = col[i];
        free(col);
        col = NULL;
    }
    *nrows = (int)rows;
    *history = hist;
    hist = NULL;
done:
    free(col);
    free(hist);
    return st;
}

cnn_status_t cnn_model_load_meta(const char *path, cnn_model_meta_t *meta)
{
    cnn_h5r_t *r = NULL;
    cnn_model_meta_t m = {0};
    cnn_status_t st;
    int chw[3];
    int64_t ncls = 0;
    size_t n = 0;

    memset(meta, 0, sizeof *meta);
    if ((st = cnn_h5r_open(path, &r)) != CNN_OK) return st;
    if ((st = check_format(r)) != CNN_OK) goto fail;
    if (cnn_h5r_attr_exists(r, "/", "config") &&
        (st = cnn_h5r_attr_str(r, "/", "config", &m.config)) != CNN_OK)
        goto fail;
    if ((st = read_input_shape(r, chw)) != CNN_OK) goto fail;
    m.c = chw[0];
    m.h = chw[1];
    m.w = chw[2];
    if (cnn_h5r_attr_exists(r, "/", "num_classes")) {
        if ((st = cnn_h5r_attr_int64(r, "/", "num_classes", &ncls)) != CNN_OK) goto fail;
        if (ncls < 0 || ncls > DIM_MAX) {
            st = cnn_error_set(CNN_EDATA, "%s: / attribute 'num_classes' is %lld, not in "
                               "0..%d", path, (long long)ncls, DIM_MAX);
            goto fail;
        }
        m.nclasses = (int)ncls;
    }
    if (cnn_h5r_exists(r, "/classes")) {
        if ((st = cnn_h5r_strings(r, "/classes", DIM_MAX, &m.class_names, &n)) != CNN_OK)
            goto fail;
        if (m.nclasses > 0 && n != (size_t)m.nclasses) {
            cnn_h5_strings_free(m.class_names, n);
            m.class_names = NULL;
            st = cnn_error_set(CNN_EDATA, "%s: /classes: %zu names, expected num_classes = %d",
                               path, n, m.nclasses);
            goto fail;
        }
        m.nclasses = (int)n;
    }
    const int has_mean = cnn_h5r_exists(r, "/normalization/mean");
    const int has_std = cnn_h5r_exists(r, "/normalization/std");
    if (has_mean != has_std) {
        st = cnn_error_set(CNN_EDATA, "%s: /normalization/%s: dataset missing (mean and "
                           "std come together)", path, has_mean ? "std" : "mean");
        goto fail;
    }
    if (has_mean) {
        const size_t c = (size_t)m.c;
        m.mean = malloc(sizeof *m.mean * c);
        m.std = malloc(sizeof *m.std * c);
        if (!m.mean || !m.std) {
            st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        if ((st = cnn_h5r_floats(r, "/normalization/mean", 1, &c, m.mean)) != CNN_OK ||
            (st = cnn_h5r_floats(r, "/normalization/std", 1, &c, m.std)) != CNN_OK)
            goto fail;
        for (size_t i = 0; i < c; i++)
            if (!(m.std[i] > 0.0f)) {
                st = cnn_error_set(CNN_EDATA, "%s: /normalization/std: value %g at index %zu "
                                   "is not positive", path, (double)m.std[i], i);
                goto fail;
            }
    }
    if ((st = cnn_model_read_history(r, "/history", &m.nhistory, &m.history)) != CNN_OK)
        goto fail;
    if ((st = read_recipe(r, &m)) != CNN_OK) goto fail;
    cnn_h5r_close(r);
    *meta = m;
    return CNN_OK;
fail:
    cnn_model_meta_free(&m);
    cnn_h5r_close(r);
    return st;
}

/* Index of the layer called `name` with something stored, or -1. */
static int stored_layer(const cnn_net_t *net, const char *name)
{
    for (int i = 0; i < net->nlayers; i++) {
        const cnn_layer_t *l = &net->layers[i];
        if (strcmp(l->spec.name, name) == 0 && (l->sz.params || l->sz.state)) return i;
    }
    return -1;
}

/* Reads dataset dso, layer l's d, into its place in the arenas a. */
static cnn_status_t read_tensor(cnn_h5r_t *r, const char *dso, const cnn_net_t *net,
                                const cnn_layer_t *l, const ds_t *d, const arenas_t *a)
{
    const size_t at = ds_offset(net, l, d);
    if (a->f64) return cnn_h5r_reals(r, dso, d->ndims, d->dims, a->d[d->in_state] + at);
    return cnn_h5r_floats(r, dso, d->ndims, d->dims, a->f[d->in_state] + at);
}

/* cnn_model_read_layers into the arenas a. */
static cnn_status_t read_layers(cnn_h5r_t *r, const char *path, const char *prefix,
                                const cnn_net_t *net, const arenas_t *a)
{
    char **names = NULL;
    size_t nnames = 0;
    char obj[OBJ_MAX], dso[OBJ_MAX];
    char *type = NULL;
    cnn_status_t st;

    if (!cnn_h5r_is_group(r, prefix))
        return cnn_error_set(CNN_EDATA, "%s: %s: group missing", path, prefix);
    /* every group under prefix must be a layer of the net that stores
     * something: anything else means the file is for another net */
    if ((st = cnn_h5r_list(r, prefix, &names, &nnames)) != CNN_OK) return st;
    for (size_t i = 0; i < nnames; i++)
        if (stored_layer(net, names[i]) < 0) {
            st = cnn_error_set(CNN_EDATA, "%s: %s/%s: extra layer group (the net has no "
                               "layer '%s' with parameters or state)",
                               path, prefix, names[i], names[i]);
            goto done;
        }
    cnn_h5_strings_free(names, nnames);
    names = NULL;

    for (int li = 0; li < net->nlayers; li++) {
        const cnn_layer_t *l = &net->layers[li];
        ds_t d[MAX_DS];
        int n;
        if ((st = layer_group(l, prefix, d, &n, obj)) != CNN_OK) goto done;
        if (n == 0) continue;
        if (!cnn_h5r_is_group(r, obj)) {
            st = cnn_error_set(CNN_EDATA, "%s: %s: layer group missing (layer %d, %s)",
                               path, obj, li, l->spec.type);
            goto done;
        }
        if (cnn_h5r_attr_exists(r, obj, "type")) {
            if ((st = cnn_h5r_attr_str(r, obj, "type", &type)) != CNN_OK) goto done;
            if (strcmp(type, l->spec.type) != 0) {
                st = cnn_error_set(CNN_EDATA, "%s: %s: layer type '%.32s' expected '%s'",
                                   path, obj, type, l->spec.type);
                goto done;
            }
            free(type);
            type = NULL;
        }
        if ((st = cnn_h5r_list(r, obj, &names, &nnames)) != CNN_OK) goto done;
        for (size_t i = 0; i < nnames; i++) {
            int known = 0;
            for (int k = 0; k < n; k++) known |= strcmp(names[i], d[k].name) == 0;
            if (!known) {
                st = cnn_error_set(CNN_EDATA, "%s: %s/%s: extra dataset (a %s layer has "
                                   "%s%s%s%s%s%s%s)", path, obj, names[i], l->spec.type,
                                   d[0].name, n > 1 ? ", " : "", n > 1 ? d[1].name : "",
                                   n > 2 ? ", " : "", n > 2 ? d[2].name : "",
                                   n > 3 ? ", " : "", n > 3 ? d[3].name : "");
                goto done;
            }
        }
        cnn_h5_strings_free(names, nnames);
        names = NULL;
        for (int k = 0; k < n; k++) {
            if ((st = obj_path(dso, prefix, l->spec.name, d[k].name)) != CNN_OK) goto done;
            if ((st = read_tensor(r, dso, net, l, &d[k], a)) != CNN_OK) goto done;
        }
    }
done:
    free(type);
    cnn_h5_strings_free(names, nnames);
    return st;
}

cnn_status_t cnn_model_read_layers(cnn_h5r_t *r, const char *path_for_msgs,
                                   const char *prefix, cnn_net_t *net,
                                   float *params, float *state)
{
    const arenas_t a = {.f = {params ? params : net->params, state ? state : net->state}};
    return read_layers(r, path_for_msgs ? path_for_msgs : cnn_h5r_path(r), prefix, net, &a);
}

/* Opens model file path for net: its format and input shape checked. */
static cnn_status_t open_for(const char *path, const cnn_net_t *net, cnn_h5r_t **out)
{
    cnn_h5r_t *r = NULL;
    int chw[3];
    cnn_status_t st;
    *out = NULL;
    if ((st = cnn_h5r_open(path, &r)) != CNN_OK) return st;
    if ((st = check_format(r)) != CNN_OK) goto fail;
    if ((st = read_input_shape(r, chw)) != CNN_OK) goto fail;
    if (chw[0] != net->input.c || chw[1] != net->input.h || chw[2] != net->input.w) {
        st = cnn_error_set(CNN_EDATA, "%s: /input_shape: (%d,%d,%d) expected (%d,%d,%d) "
                           "for this net", path, chw[0], chw[1], chw[2], net->input.c,
                           net->input.h, net->input.w);
        goto fail;
    }
    *out = r;
    return CNN_OK;
fail:
    cnn_h5r_close(r);
    return st;
}

cnn_status_t cnn_model_load_weights64(const char *path, const cnn_net_t *net, double *params,
                                      double *state)
{
    cnn_h5r_t *r = NULL;
    CNN_TRY(open_for(path, net, &r));
    const arenas_t a = {.f64 = 1, .d = {params, state}};
    cnn_status_t st = read_layers(r, path, "/layers", net, &a);
    cnn_h5r_close(r);
    return st;
}

cnn_status_t cnn_model_load_weights(const char *path, cnn_net_t *net)
{
    cnn_h5r_t *r = NULL;
    float *p = NULL, *s = NULL;
    cnn_status_t st;

    if ((st = open_for(path, net, &r)) != CNN_OK) return st;
    /* read into scratch so a bad file leaves the net as it was */
    p = malloc(sizeof *p * (net->nparams ? net->nparams : 1));
    s = malloc(sizeof *s * (net->nstate ? net->nstate : 1));
    if (!p || !s) {
        st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((st = cnn_model_read_layers(r, path, "/layers", net, p, s)) != CNN_OK) goto done;
    if (net->nparams) memcpy(net->params, p, sizeof *p * net->nparams);
    if (net->nstate) memcpy(net->state, s, sizeof *s * net->nstate);
done:
    free(p);
    free(s);
    cnn_h5r_close(r);
    return st;
}
