/* op.c - `mpicnn op LAYER ...`: one layer's forward (and backward) on
 * CSV files, through the same layer code the trainer uses. What a layer
 * type takes comes from its ops table (layer.h): its cli descriptor (the
 * --x-shape rule, a shape flag such as --w-shape, --mode, --seed), its
 * keys (--stride, ...: required if marked op_flag, else optional with the
 * key's default), its tensors' flags (--w, --dw, ...; an optional tensor
 * such as a bias is zero when its flag is left out) and its layout flag
 * (dense's --w-layout). The losses softmax-ce and hinge are handled here.
 * On success the output's shape is printed on stderr. With
 * --dtype f64 the layer runs in double, through its reference and
 * reference_backward (the double net of net64.h), and numbers are
 * written with 17 significant digits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/csv.h"

/* Integer flags of layer keys run from the key's lower bound to this:
 * the layer's shape check rejects what does not fit the input. */
#define OP_INT_MAX (1 << 20)

static const char op_usage_losses[] =
    "  softmax-ce --x F --x-shape N,K --labels F --out F [--dx F]\n"
    "  hinge      --x F --x-shape N,K --labels F --out F [--dx F]\n"
    "             --labels (N) class indices in 0..K-1; --out the mean loss (1)\n"
    "Arrays are C-order numbers separated by commas, spaces or newlines;\n"
    "outputs have one value per line with 9 significant digits.\n"
    "Layouts: --x, --dx and the outputs are NCHW, (N,C,H,W); a shape with\n"
    "fewer dims is (N,D) or (N,C,H), read as (N,D,1,1) or (N,C,H,1), as\n"
    "the layers see it. Each tensor file holds its tensor in the layout its\n"
    "layer names above; batchnorm's --gamma, --beta, --mean, --var and their\n"
    "gradients hold one value per channel, (C). Gradient files have the\n"
    "layout of their tensor. On success the output's shape is printed on\n"
    "stderr, e.g. \"op conv: output (2,4,5,5)\".\n"
    "--dtype f64 (any op): computes in double precision from each layer's\n"
    "double reference, forward and backward, and writes 17 significant digits.\n";

/* One layer op being set up from its flags. */
typedef struct {
    cli_args_t *a;
    const cnn_layer_ops_t *ops;
    const cnn_layer_cli_t *cli; /* ops->cli */
    cnn_layer_spec_t spec;
    cnn_shape_t in;             /* from --x-shape */
    char xdesc[64];             /* --x-shape as "(N,...)", for messages */
    int xnd;                    /* the number of dims --x-shape gave */
    int layout;                 /* index in cli->layouts; 0 by default */
    int train;                  /* --mode, else 1 */
    int f64;                    /* --dtype f64 */
    uint64_t seed;              /* --seed, else 0 */
    unsigned set;               /* bit j: key j was set by a flag */
} op_t;

static void print_usage(FILE *f)
{
    fputs("usage: mpicnn op LAYER FLAGS\n", f);
    for (const cnn_layer_ops_t *const *t = cnn_layer_all(); *t; t++)
        if ((*t)->cli) fprintf(f, "  %-9s %s\n", (*t)->type, (*t)->cli->usage);
    fputs(op_usage_losses, f);
}

static cnn_status_t unknown_op(const char *op)
{
    char list[256];
    size_t n = 0;
    list[0] = '\0';
    for (const cnn_layer_ops_t *const *t = cnn_layer_all(); *t && n < sizeof list; t++)
        if ((*t)->cli) n += (size_t)snprintf(list + n, sizeof list - n, "%s, ", (*t)->type);
    return cnn_error_set(CNN_EUSAGE, "op: unknown layer '%s' (%ssoftmax-ce, hinge)", op, list);
}

/* Reads the file named by `flag` into doubles and checks it holds
 * exactly `want` values; `shape` describes where `want` comes from for
 * the message. */
static cnn_status_t read_exact64(cli_args_t *a, const char *flag, size_t want,
                                 const char *shape, double **out)
{
    const char *path;
    size_t n;
    *out = NULL;
    CNN_TRY(cli_need(a, flag, &path));
    CNN_TRY(cnn_csv_read64(path, flag, out, &n));
    if (n != want) {
        free(*out);
        *out = NULL;
        return cnn_error_set(CNN_EDATA, "%s %s: has %zu values, but shape %s needs %zu",
                             flag, path, n, shape, want);
    }
    return CNN_OK;
}

/* read_exact64 rounded to float. */
static cnn_status_t read_exact(cli_args_t *a, const char *flag, size_t want,
                               const char *shape, float **out)
{
    double *d;
    *out = NULL;
    CNN_TRY(read_exact64(a, flag, want, shape, &d));
    if (!(*out = malloc(sizeof(float) * (want ? want : 1)))) {
        free(d);
        return cnn_error_set(CNN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < want; i++) (*out)[i] = (float)d[i];
    free(d);
    return CNN_OK;
}

/* Writes to the file named by `flag`, if that flag was given. */
static cnn_status_t write_opt(cli_args_t *a, const char *flag, const float *v, size_t n)
{
    const char *path = cli_get(a, flag);
    return path ? cnn_csv_write(path, v, n) : CNN_OK;
}

static cnn_status_t write_opt64(cli_args_t *a, const char *flag, const double *v, size_t n)
{
    const char *path = cli_get(a, flag);
    return path ? cnn_csv_write64(path, v, n) : CNN_OK;
}

static void dims_str(const int *d, int nd, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < nd && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ",%d" : "(%d", d[i]);
    if (o < len) snprintf(buf + o, len - o, ")");
}

/* dims_str for tensor dims */
static void sizes_str(const size_t *d, int nd, char *buf, size_t len)
{
    int di[4];
    for (int i = 0; i < nd; i++) di[i] = (int)d[i];
    dims_str(di, nd, buf, len);
}

/* "op TYPE: output (N,...)" on stderr: the output's dims, as many as
 * --x-shape gave (at least 2) where the trailing ones are 1. */
static void print_output(const char *type, cnn_shape_t out, int xnd)
{
    const int d[4] = {out.n, out.c, out.h, out.w}, least = xnd > 2 ? xnd : 2;
    int nd = 4;
    char buf[64];
    while (nd > least && d[nd - 1] == 1) nd--;
    dims_str(d, nd, buf, sizeof buf);
    fprintf(stderr, "op %s: output %s\n", type, buf);
}

/* The number of dims named in "A,B,C". */
static int count_dims(const char *names)
{
    int n = 1;
    for (; *names; names++) n += *names == ',';
    return n;
}

/* dst (cols, rows) = the transpose of src (rows, cols) */
static void transpose(const float *src, size_t rows, size_t cols, float *dst)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}

static void transpose64(const double *src, size_t rows, size_t cols, double *dst)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}

static size_t prod(const int *d, int nd)
{
    size_t p = 1;
    for (int i = 0; i < nd; i++) p *= (size_t)d[i];
    return p;
}

/* The labels (n) from --labels: class indices in [0, k). */
static cnn_status_t read_labels(cli_args_t *a, int n, int k, int **labels)
{
    double *lab = NULL;
    cnn_status_t st = read_exact64(a, "--labels", (size_t)n, "(N)", &lab);
    if (st == CNN_OK && !(*labels = malloc(sizeof(int) * ((size_t)n + 1))))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    for (int i = 0; st == CNN_OK && i < n; i++) {
        /* the range first: a value outside int's may not be cast */
        if (!(lab[i] >= 0 && lab[i] < k) || lab[i] != (int)lab[i])
            st = cnn_error_set(CNN_EDATA, "--labels: value %d is %g, not a class index in [0, %d)",
                               i, lab[i], k);
        else (*labels)[i] = (int)lab[i];
    }
    free(lab);
    return st;
}

/* The loss ops in double (--dtype f64): the mean loss and dx = its
 * gradient, x (n, k). */
static cnn_status_t op_loss64(cli_args_t *a, int hinge, const int *d, const char *shape)
{
    double *x = NULL, *dx = NULL;
    int *labels = NULL;
    const char *out;
    cnn_status_t st = read_exact64(a, "--x", prod(d, 2), shape, &x);
    if (st == CNN_OK) st = read_labels(a, d[0], d[1], &labels);
    if (st == CNN_OK && !(dx = malloc(sizeof(double) * prod(d, 2))))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    if (st != CNN_OK) goto done;
    double mean = cnn_net64_loss(x, labels, d[0], d[1], hinge, dx) / d[0];
    for (size_t i = 0; i < prod(d, 2); i++) dx[i] /= d[0];
    if ((st = cli_need(a, "--out", &out)) != CNN_OK) goto done;
    (void)cli_get(a, "--dx"); /* the one optional flag */
    if ((st = cli_check_unused(a)) != CNN_OK) goto done;
    if ((st = cnn_csv_write64(out, &mean, 1)) != CNN_OK) goto done;
    if ((st = write_opt64(a, "--dx", dx, prod(d, 2))) == CNN_OK)
        fprintf(stderr, "op %s: output (1)\n", hinge ? "hinge" : "softmax-ce");
done:
    free(x);
    free(dx);
    free(labels);
    return st;
}

/* The softmax-ce and hinge ops: x (N,K), labels (N). */
static cnn_status_t op_loss(cli_args_t *a, const cnn_loss_t *loss, int f64)
{
    const char *s;
    int d[4], nd;
    float *x = NULL, *lab = NULL, *dx = NULL;
    int *labels = NULL;
    cnn_status_t st;
    char shape[64];
    CNN_TRY(cli_need(a, "--x-shape", &s));
    CNN_TRY(cli_dims("--x-shape", s, 2, d, &nd));
    if (nd != 2) return cnn_error_set(CNN_EUSAGE, "--x-shape: %s needs N,K (2 dimensions)", loss->name);
    dims_str(d, nd, shape, sizeof shape);
    if (f64) return op_loss64(a, loss == &cnn_loss_hinge, d, shape);
    if ((st = read_exact(a, "--x", prod(d, 2), shape, &x)) != CNN_OK) goto done;
    if ((st = read_exact(a, "--labels", (size_t)d[0], "(N)", &lab)) != CNN_OK) goto done;
    labels = malloc(sizeof(int) * (size_t)d[0]);
    dx = malloc(sizeof(float) * prod(d, 2));
    if (!labels || !dx) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < d[0]; i++) {
        if (lab[i] != (float)(int)lab[i] || lab[i] < 0 || lab[i] >= (float)d[1]) {
            st = cnn_error_set(CNN_EDATA, "--labels: value %d is %g, not a class index in [0, %d)",
                               i, (double)lab[i], d[1]);
            goto done;
        }
        labels[i] = (int)lab[i];
    }
    double sum;
    loss->compute(x, labels, d[0], d[1], 1.0f / (float)d[0], &sum, dx);
    float mean = (float)(sum / d[0]);
    const char *out;
    if ((st = cli_need(a, "--out", &out)) != CNN_OK) goto done;
    (void)cli_get(a, "--dx"); /* the one optional flag */
    if ((st = cli_check_unused(a)) != CNN_OK) goto done;
    if ((st = cnn_csv_write(out, &mean, 1)) != CNN_OK) goto done;
    if ((st = write_opt(a, "--dx", dx, prod(d, 2))) == CNN_OK)
        fprintf(stderr, "op %s: output (1)\n", loss == &cnn_loss_hinge ? "hinge" : "softmax-ce");
done:
    free(x);
    free(lab);
    free(dx);
    free(labels);
    return st;
}

/* --x-shape: 1 to 4 dims (or exactly the dims cli->x_dims names) as
 * NCHW; flat shapes become (N,D,1,1). */
static cnn_status_t op_x_shape(op_t *o)
{
    const char *s;
    int d[4], nd;
    const int want = o->cli->x_dims ? count_dims(o->cli->x_dims) : 0;
    CNN_TRY(cli_need(o->a, "--x-shape", &s));
    CNN_TRY(cli_dims("--x-shape", s, want ? want : 4, d, &nd));
    if (want && nd != want)
        return cnn_error_set(CNN_EUSAGE, "--x-shape: '%s' must be %s", s, o->cli->x_dims);
    dims_str(d, nd, o->xdesc, sizeof o->xdesc);
    o->xnd = nd;
    if (nd == 4) o->in = (cnn_shape_t){d[0], d[1], d[2], d[3]};
    else if (nd == 3) o->in = (cnn_shape_t){d[0], d[1], d[2], 1};
    else o->in = (cnn_shape_t){d[0], nd == 2 ? d[1] : 1, 1, 1};
    return CNN_OK;
}

/* Sets key `name` (or, for a pair key set already, its second int) to v. */
static cnn_status_t set_shape_key(op_t *o, const char *name, int v)
{
    const cnn_layer_key_t *k = cnn_layer_key(o->ops, name);
    if (!k)
        return cnn_error_set(CNN_EINTERNAL, "op %s: shape key %s is not a key", o->ops->type,
                             name);
    const unsigned bit = 1u << (k - o->ops->keys);
    const size_t off = (o->set & bit) && k->kind == CNN_LKEY_PAIR ? k->off2 : k->off;
    *(int *)((char *)&o->spec + off) = v;
    o->set |= bit;
    return CNN_OK;
}

/* The layout flag (--w-layout), for the types that take it: o->layout
 * is the index of its value in cli->layouts. Another type refuses it. */
static cnn_status_t op_layout(op_t *o)
{
    const cnn_layer_cli_t *c = o->cli;
    for (const cnn_layer_ops_t *const *t = cnn_layer_all(); *t; t++) {
        const char *f = (*t)->cli ? (*t)->cli->layout_flag : NULL;
        if (f && (!c->layout_flag || strcmp(f, c->layout_flag)) && cli_get(o->a, f))
            return cnn_error_set(CNN_EUSAGE, "%s: op %s has no such flag (%s takes it)", f,
                                 o->ops->type, (*t)->type);
    }
    const char *s;
    if (!c->layout_flag || !(s = cli_get(o->a, c->layout_flag))) return CNN_OK;
    for (o->layout = 0; o->layout < 2; o->layout++)
        if (!strcmp(s, c->layouts[o->layout])) return CNN_OK;
    return cnn_error_set(CNN_EUSAGE, "%s: '%s' must be %s or %s", c->layout_flag, s,
                         c->layouts[0], c->layouts[1]);
}

/* The names "A,B" of a 2-D shape flag's dims in the order of o->layout
 * ("B,A" for layouts[1]), into buf. */
static const char *shape_names(const op_t *o, char *buf, size_t len)
{
    const char *n = o->cli->shape_dims, *comma = strchr(n, ',');
    if (!o->layout || !comma) return n;
    snprintf(buf, len, "%s,%.*s", comma + 1, (int)(comma - n), n);
    return buf;
}

/* The shape flag (--w-shape): the first tensor's file dims, one of them
 * the input's channels; the others set keys (filters, kernel, units).
 * With the reversed layout the dims come in reverse order. */
static cnn_status_t op_shape_flag(op_t *o)
{
    const cnn_layer_cli_t *c = o->cli;
    if (!c->shape_flag) return CNN_OK;
    const char *s;
    int d[4], nd;
    char wdesc[64], nbuf[64];
    const int want = count_dims(c->shape_dims);
    CNN_TRY(cli_need(o->a, c->shape_flag, &s));
    CNN_TRY(cli_dims(c->shape_flag, s, want, d, &nd));
    dims_str(d, nd, wdesc, sizeof wdesc);
    if (o->layout && nd == 2) { /* back to the order of shape_dims */
        const int t = d[0];
        d[0] = d[1];
        d[1] = t;
    }
    if (nd != want || d[c->shape_in] != o->in.c) {
        const char *names = shape_names(o, nbuf, sizeof nbuf), *name = names;
        const int at = o->layout ? want - 1 - c->shape_in : c->shape_in;
        for (int i = 0; i < at; i++) name = strchr(name, ',') + 1;
        return cnn_error_set(CNN_EUSAGE, "%s: %s must be %s with %.*s = %d (%s --x-shape %s)",
                             c->shape_flag, wdesc, names, (int)strcspn(name, ","), name,
                             o->in.c, c->shape_in_why, o->xdesc);
    }
    for (int i = 0; i < nd; i++)
        if (c->shape_keys[i]) CNN_TRY(set_shape_key(o, c->shape_keys[i], d[i]));
    return CNN_OK;
}

/* An optional tensor (a bias) left out has no gradient to write. */
static cnn_status_t op_check_optional(const op_t *o)
{
    for (int i = 0; i < o->ops->ntensors; i++) {
        const cnn_tensor_desc_t *d = &o->ops->tensors[i];
        if (d->optional && d->grad_flag && !cli_get(o->a, d->flag) && cli_get(o->a, d->grad_flag))
            return cnn_error_set(CNN_EUSAGE,
                                 "%s needs %s: without %s the layer has no %s to differentiate",
                                 d->grad_flag, d->flag, d->flag, d->name);
    }
    return CNN_OK;
}

/* --mode train|test, for the types that take it. */
static cnn_status_t op_mode(op_t *o)
{
    const char *s;
    if (!o->cli->mode) return CNN_OK;
    CNN_TRY(cli_need(o->a, "--mode", &s));
    if (strcmp(s, "train") && strcmp(s, "test"))
        return cnn_error_set(CNN_EUSAGE, "--mode: '%s' must be train or test", s);
    o->train = !strcmp(s, "train");
    return CNN_OK;
}

/* --seed K, for the types that take it. */
static cnn_status_t op_seed(op_t *o)
{
    const char *s;
    long v;
    if (!o->cli->seed) return CNN_OK;
    CNN_TRY(cli_need(o->a, "--seed", &s));
    CNN_TRY(cli_int("--seed", s, 0, 0x7fffffffffffffffL, &v));
    o->seed = (uint64_t)v;
    return CNN_OK;
}

/* A float key's value against its range, in the words of the range. */
static cnn_status_t check_float(const cnn_layer_key_t *k, const char *flag, double v)
{
    const int lo_ok = k->lo_open ? v > k->lo : v >= k->lo;
    const int hi_ok = k->hi_open ? v < k->hi : v <= k->hi;
    if (lo_ok && hi_ok) return CNN_OK;
    if (isinf(k->hi))
        return cnn_error_set(CNN_EUSAGE, "%s: %g must be %s %g", flag, v,
                             k->lo_open ? ">" : ">=", k->lo);
    return cnn_error_set(CNN_EUSAGE, "%s: %g must be in %c%g, %g%c", flag, v,
                         k->lo_open ? '(' : '[', k->lo, k->hi, k->hi_open ? ')' : ']');
}

/* Key k from its flag --NAME: required for an op_flag key, else optional
 * (the key then keeps its default). */
static cnn_status_t op_key_flag(op_t *o, const cnn_layer_key_t *k)
{
    char flag[48];
    const char *s;
    int d[2], nd;
    long v;
    double dv;
    char *base = (char *)&o->spec;
    snprintf(flag, sizeof flag, "--%s", k->name);
    if (k->op_flag) CNN_TRY(cli_need(o->a, flag, &s));
    else if (!(s = cli_get(o->a, flag))) return CNN_OK;
    switch (k->kind) {
    case CNN_LKEY_INT:
        CNN_TRY(cli_int(flag, s, (long)k->lo, OP_INT_MAX, &v));
        *(int *)(base + k->off) = (int)v;
        break;
    case CNN_LKEY_PAIR:
        CNN_TRY(cli_dims(flag, s, 2, d, &nd));
        *(int *)(base + k->off) = d[0];
        *(int *)(base + k->off2) = nd == 2 ? d[1] : d[0];
        break;
    case CNN_LKEY_FLOAT:
        CNN_TRY(cli_float(flag, s, &dv));
        CNN_TRY(check_float(k, flag, dv));
        *(float *)(base + k->off) = (float)dv;
        break;
    case CNN_LKEY_BOOL:
    case CNN_LKEY_ENUM:
        if (cnn_config_layer_set(&o->spec, k, s, flag) != CNN_OK)
            return cnn_error_set(CNN_EUSAGE, "%s", cnn_error_message());
        break;
    }
    o->set |= 1u << (k - o->ops->keys);
    return CNN_OK;
}

/* The layer spec from the flags, in the order they are checked: --x-shape,
 * the shape flag, --mode, the key flags, --seed; then the defaults of the
 * keys no flag set. */
static cnn_status_t op_spec(op_t *o)
{
    snprintf(o->spec.name, sizeof o->spec.name, "%s", o->ops->type);
    snprintf(o->spec.type, sizeof o->spec.type, "%s", o->ops->type);
    CNN_TRY(op_x_shape(o));
    CNN_TRY(op_layout(o));
    CNN_TRY(op_shape_flag(o));
    CNN_TRY(op_mode(o));
    for (int j = 0; j < o->ops->nkeys; j++)
        if (!(o->set & (1u << j))) CNN_TRY(op_key_flag(o, &o->ops->keys[j]));
    CNN_TRY(op_seed(o));
    CNN_TRY(op_check_optional(o));
    for (int j = 0; j < o->ops->nkeys; j++)
        if (!(o->set & (1u << j))) CNN_TRY(cnn_config_layer_default(&o->spec, &o->ops->keys[j]));
    return CNN_OK;
}

/* 1 if the file of tensor t holds it transposed: as its table says, the
 * other way round for the first tensor under the reversed layout. */
static int file_transposed(const op_t *o, const cnn_layer_tensor_t *t)
{
    const int flip = o->layout && t->desc == &o->ops->tensors[0];
    return t->ndims == 2 && (t->desc->transposed ^ flip);
}

/* Reads tensor t from its flag into the layer's slice: `at` (its params
 * or state) or, in f64 mode, `at64`. The file holds it in PyTorch order,
 * or transposed. */
static cnn_status_t op_read_tensor(op_t *o, const cnn_layer_tensor_t *t, float *at,
                                   double *at64)
{
    const cnn_tensor_desc_t *d = t->desc;
    const int tr = file_transposed(o, t);
    size_t fdims[4];
    char desc[192], dims[64];
    double *buf;
    memcpy(fdims, t->dims, sizeof fdims);
    if (tr) fdims[0] = t->dims[1], fdims[1] = t->dims[0];
    sizes_str(fdims, t->ndims, dims, sizeof dims);
    if (d->note) snprintf(desc, sizeof desc, "%s (%s --x-shape %s)", dims, d->note, o->xdesc);
    else snprintf(desc, sizeof desc, "%s", dims);
    CNN_TRY(read_exact64(o->a, d->flag, t->count, desc, &buf));
    for (size_t i = 0; i < t->count; i++) {
        /* layout value i = (r, c) of (dims[0], dims[1]) is file value (c, r) */
        const double v = tr ? buf[(i % t->dims[1]) * t->dims[0] + i / t->dims[1]] : buf[i];
        if (at64) at64[t->offset + i] = v;
        else at[t->offset + i] = (float)v;
    }
    free(buf);
    return CNN_OK;
}

/* The layer's tensors from their flags, into the net's arenas or, when
 * n64 is not NULL, the double net's. State tensors start as init makes
 * them, and are required in test mode only, which uses them; an optional
 * params tensor left out is zero. */
static cnn_status_t op_read_tensors(op_t *o, cnn_net_t *net, cnn_net64_t *n64)
{
    cnn_layer_t *l = &net->layers[0];
    cnn_layer_tensor_t t[CNN_LAYER_TENSORS_MAX];
    const int n = cnn_layer_tensors(l, t);
    for (int i = 0; i < n; i++) {
        const cnn_tensor_desc_t *d = t[i].desc;
        if (d->flag && d->optional && !cli_get(o->a, d->flag)) { /* none: zero */
            if (n64) memset(n64->params + t[i].offset, 0, sizeof(double) * t[i].count);
            else memset(l->params + t[i].offset, 0, sizeof(float) * t[i].count);
            continue;
        }
        if (!d->flag || (d->in_state && o->train && !cli_get(o->a, d->flag))) continue;
        if (n64) CNN_TRY(op_read_tensor(o, &t[i], NULL, d->in_state ? n64->state : n64->params));
        else CNN_TRY(op_read_tensor(o, &t[i], d->in_state ? l->state : l->params, NULL));
    }
    return CNN_OK;
}

/* --dout, then the backward pass of the forward just run: dx (nin). */
static cnn_status_t op_backward(op_t *o, cnn_net_t *net, const cnn_ctx_t *ctx, float **dy,
                                float **dx)
{
    cnn_layer_t *l = &net->layers[0];
    const size_t nin = (size_t)o->in.n * cnn_shape_image(o->in);
    const size_t nout = (size_t)o->in.n * cnn_shape_image(l->out);
    char desc[160];
    snprintf(desc, sizeof desc, "(output of %s on %s)", o->ops->type, o->xdesc);
    CNN_TRY(read_exact(o->a, "--dout", nout, desc, dy));
    *dx = malloc(sizeof(float) * nin);
    if (!*dx) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_net_zero_grad(net);
    l->ops->backward(l, ctx, o->in.n, net->act[0], net->act[1], *dy, *dx);
    return CNN_OK;
}

/* Every output flag of a gradient (--dx, and any type's --dw, --dgamma,
 * ...) needs --dout. */
static cnn_status_t check_grad_flags(cli_args_t *a, const char *dout)
{
    if (cli_get(a, "--dx") && !dout) return cnn_error_set(CNN_EUSAGE, "--dx needs --dout");
    for (const cnn_layer_ops_t *const *t = cnn_layer_all(); *t; t++)
        for (int i = 0; i < (*t)->ntensors; i++) {
            const char *g = (*t)->tensors[i].grad_flag;
            if (g && cli_get(a, g) && !dout)
                return cnn_error_set(CNN_EUSAGE, "%s needs --dout", g);
        }
    return CNN_OK;
}

/* --dx and the parameter gradients, each to its flag if given, in the
 * same order as the tensor files. */
static cnn_status_t op_write_grads(op_t *o, const cnn_layer_t *l, const float *dx)
{
    cnn_layer_tensor_t t[CNN_LAYER_TENSORS_MAX];
    CNN_TRY(write_opt(o->a, "--dx", dx, (size_t)o->in.n * cnn_shape_image(o->in)));
    const int n = cnn_layer_tensors(l, t);
    for (int i = 0; i < n; i++) {
        const cnn_tensor_desc_t *d = t[i].desc;
        const float *g = l->grads + t[i].offset;
        if (!d->grad_flag || d->in_state) continue;
        if (!file_transposed(o, &t[i])) {
            CNN_TRY(write_opt(o->a, d->grad_flag, g, t[i].count));
            continue;
        }
        float *buf = malloc(sizeof(float) * t[i].count);
        if (!buf) return cnn_error_set(CNN_ENOMEM, "out of memory");
        transpose(g, t[i].dims[0], t[i].dims[1], buf);
        cnn_status_t st = write_opt(o->a, d->grad_flag, buf, t[i].count);
        free(buf);
        CNN_TRY(st);
    }
    return CNN_OK;
}

/* The one-layer net of the flags, on `threads` threads (0: OpenMP's
 * default). A spec the layer refuses is a usage error: the shape check
 * names the layer, but here the culprit is the flags. */
static cnn_status_t op_net(const op_t *o, int threads, cnn_net_t **net)
{
    if (cnn_net_create(&o->spec, 1, o->in, threads, net) == CNN_OK) return CNN_OK;
    cnn_error_prefix("op %s", o->ops->type);
    return CNN_EUSAGE;
}

/* Builds the one-layer net, runs it on --x and writes --out (and the
 * gradients when --dout is given). */
static cnn_status_t op_layer(op_t *o)
{
    cnn_net_t *net = NULL;
    float *x = NULL, *dx = NULL, *dy = NULL;
    const char *out, *dout;
    cnn_status_t st;
    CNN_TRY(op_net(o, 0, &net));
    const size_t nin = (size_t)o->in.n * cnn_shape_image(o->in);
    const size_t nout = (size_t)o->in.n * cnn_shape_image(net->layers[0].out);
    if ((st = read_exact(o->a, "--x", nin, o->xdesc, &x)) != CNN_OK) goto done;
    memcpy(net->act[0], x, nin * sizeof(float));
    cnn_net_init(net, 0);
    if ((st = op_read_tensors(o, net, NULL)) != CNN_OK) goto done;
    cnn_ctx_t ctx = cnn_net_ctx(net, o->train, o->seed, 0, 0);
    const float *y = cnn_net_forward(net, &ctx, o->in.n);
    if ((st = cli_need(o->a, "--out", &out)) != CNN_OK) goto done;
    dout = cli_get(o->a, "--dout");
    if (dout && (st = op_backward(o, net, &ctx, &dy, &dx)) != CNN_OK) goto done;
    if ((st = check_grad_flags(o->a, dout)) != CNN_OK) goto done;
    if ((st = cli_check_unused(o->a)) != CNN_OK) goto done;
    if ((st = cnn_csv_write(out, y, nout)) != CNN_OK) goto done;
    if (dout) st = op_write_grads(o, &net->layers[0], dx);
    if (st == CNN_OK) print_output(o->ops->type, net->layers[0].out, o->xnd);
done:
    free(x);
    free(dx);
    free(dy);
    cnn_net_free(net);
    return st;
}

/* op_write_grads in f64 mode: dx and the layer's gradients (grads, in
 * its params layout) as doubles. */
static cnn_status_t op_write_grads64(op_t *o, const cnn_layer_t *l, const double *grads,
                                     const double *dx)
{
    cnn_layer_tensor_t t[CNN_LAYER_TENSORS_MAX];
    CNN_TRY(write_opt64(o->a, "--dx", dx, (size_t)o->in.n * cnn_shape_image(o->in)));
    const int n = cnn_layer_tensors(l, t);
    for (int i = 0; i < n; i++) {
        const cnn_tensor_desc_t *d = t[i].desc;
        const double *g = grads + t[i].offset;
        double *buf = NULL;
        if (!d->grad_flag || d->in_state) continue;
        if (file_transposed(o, &t[i])) {
            if (!(buf = malloc(sizeof(double) * t[i].count)))
                return cnn_error_set(CNN_ENOMEM, "out of memory");
            transpose64(g, t[i].dims[0], t[i].dims[1], buf);
            g = buf;
        }
        cnn_status_t st = write_opt64(o->a, d->grad_flag, g, t[i].count);
        free(buf);
        CNN_TRY(st);
    }
    return CNN_OK;
}

/* op_layer in double (--dtype f64): the float net checks the flags and
 * gives the layout; the double net (net64.h) reads --x and the tensors
 * unrounded and runs the layer's reference and reference_backward. */
static cnn_status_t op_layer64(op_t *o)
{
    cnn_net_t *net = NULL;
    cnn_net64_t *n64 = NULL;
    double *x = NULL, *dy = NULL;
    const char *out, *dout;
    char desc[160];
    cnn_status_t st;
    CNN_TRY(op_net(o, 1, &net));
    cnn_net_init(net, 0);
    const size_t nin = (size_t)o->in.n * cnn_shape_image(o->in);
    const size_t nout = (size_t)o->in.n * cnn_shape_image(net->layers[0].out);
    if ((st = cnn_net64_create(net, &n64)) != CNN_OK) goto done;
    if ((st = read_exact64(o->a, "--x", nin, o->xdesc, &x)) != CNN_OK) goto done;
    memcpy(cnn_net64_input(n64), x, nin * sizeof(double));
    if ((st = op_read_tensors(o, net, n64)) != CNN_OK) goto done;
    const double *y = cnn_net64_forward(n64, o->train, o->seed, o->in.n);
    if ((st = cli_need(o->a, "--out", &out)) != CNN_OK) goto done;
    if ((dout = cli_get(o->a, "--dout"))) {
        snprintf(desc, sizeof desc, "(output of %s on %s)", o->ops->type, o->xdesc);
        if ((st = read_exact64(o->a, "--dout", nout, desc, &dy)) != CNN_OK) goto done;
        cnn_net64_zero_grad(n64);
        cnn_net64_backward(n64, o->train, o->in.n, dy);
    }
    if ((st = check_grad_flags(o->a, dout)) != CNN_OK) goto done;
    if ((st = cli_check_unused(o->a)) != CNN_OK) goto done;
    if ((st = cnn_csv_write64(out, y, nout)) != CNN_OK) goto done;
    if (dout) st = op_write_grads64(o, &net->layers[0], n64->grads, n64->grad[0]);
    if (st == CNN_OK) print_output(o->ops->type, net->layers[0].out, o->xnd);
done:
    free(x);
    free(dy);
    cnn_net64_free(n64);
    cnn_net_free(net);
    return st;
}

cnn_status_t cli_op(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", NULL};
    cli_args_t a;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help") || a.npos == 0) {
        print_usage(cli_has(&a, "--help") ? stdout : stderr);
        return a.npos || cli_has(&a, "--help") ? CNN_OK
                                               : cnn_error_set(CNN_EUSAGE, "op: which layer?");
    }
    if (a.npos != 1)
        return cnn_error_set(CNN_EUSAGE, "op: one layer name expected, got '%s' and '%s'",
                             a.pos[0], a.pos[1]);
    const char *op = a.pos[0];
    int f64;
    CNN_TRY(cli_dtype(&a, &f64));
    if (!strcmp(op, "softmax-ce")) return op_loss(&a, &cnn_loss_softmax_ce, f64);
    if (!strcmp(op, "hinge")) return op_loss(&a, &cnn_loss_hinge, f64);
    const cnn_layer_ops_t *ops = cnn_layer_find(op);
    if (!ops || !ops->cli) return unknown_op(op);
    op_t o = {.a = &a, .ops = ops, .cli = ops->cli, .train = 1, .f64 = f64};
    CNN_TRY(op_spec(&o));
    return f64 ? op_layer64(&o) : op_layer(&o);
}
