/* gradcheck.c - `mpicnn gradcheck CONFIG [--set k=v ...] [--samples N]
 * [--directions D] [--tolerance T]`: checks every layer's backward pass
 * of the configured net against central finite differences, on the
 * activations that real training images produce.
 *
 * Each layer is checked on its own, as defined (the net folds no ReLU
 * into the layer before it, cnn_net_set_fuse): with x its input from a forward pass
 * over N training images and r a fixed random tensor of its output's
 * shape, the objective f = sum(r * layer(x)) has the gradients the
 * layer's backward computes from dy = r. Checking layer by layer keeps the
 * finite differences sharp. The step follows the type's fd kind in its
 * ops table (layer.h): conv, dense, flatten, the average pools and
 * dropout (with its mask fixed) are linear in their weights and inputs, so
 * a unit step is exact; batchnorm, sigmoid, tanh, elu and gelu are smooth
 * and get a small step with Richardson extrapolation. relu, leaky_relu
 * and maxpool are piecewise linear, and real images put many of their
 * inputs exactly on a kink (equal background pixels tie in a max window),
 * where a finite difference measures a different one-sided slope: they
 * are reported as not checked here; make check compares them exactly with
 * a reference.
 *
 * With --dtype f64 the same check runs in double on the layers'
 * references: the analytic gradients of reference_backward against
 * finite differences of reference, which agree to about 1e-8 or better
 * (default tolerance 1e-6). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/dataprep.h"

static const char gradcheck_usage[] =
    "usage: mpicnn gradcheck CONFIG [--set section.key=value ...] [--samples N]\n"
    "                        [--directions D] [--tolerance T] [--dtype f32|f64]\n"
    "  Checks each layer's parameter and input gradients against central\n"
    "  finite differences of sum(r * layer(x)), with x the layer's input on N\n"
    "  training images (default 4) and r random, along D unit directions\n"
    "  (default 4: the analytic gradient, then random ones). The net runs in\n"
    "  training mode (batch statistics, a fixed dropout mask). Linear layers\n"
    "  (conv, dense, flatten, avgpool, gap, dropout, add, concat) use a unit\n"
    "  step, which is exact; batchnorm, sigmoid, tanh, elu and gelu use a small\n"
    "  step with Richardson extrapolation (float rounding leaves about 1e-4 of\n"
    "  noise, more in a direction where the derivative is small, as sigmoid's\n"
    "  can be, and elu with alpha != 1 has a kink at 0). relu, leaky_relu and\n"
    "  maxpool are not checked here (real images tie exactly on their kinks);\n"
    "  make check compares them exactly with a reference. A merge layer's\n"
    "  inputs are checked each in turn.\n"
    "  Fails (exit 6) when the largest relative error\n"
    "  |analytic - fd| / max(|analytic|, |fd|) exceeds T (default 1e-3).\n"
    "  --dtype f64: checks each layer's double-precision backward pass against\n"
    "  finite differences of its double forward pass, on the same images in\n"
    "  double (default tolerance 1e-6; they agree to about 1e-8 or better).\n";

/* Layer l's forward pass on its inputs in the net, into y. */
static void layer_forward(cnn_net_t *net, cnn_layer_t *l, const cnn_ctx_t *ctx, int n, float *y)
{
    const float *xs[CNN_LAYER_INPUTS_MAX];
    for (int k = 0; k < l->ninputs; k++) xs[k] = cnn_net_layer_in(net, l->index, k);
    if (cnn_layer_is_merge(l->ops)) l->ops->forward_n(l, ctx, n, l->ninputs, xs, y);
    else l->ops->forward(l, ctx, n, xs[0], y);
}

/* Its backward pass from dy = r: parameter gradients, and the gradient
 * at input k into dx. */
static void layer_backward(cnn_net_t *net, cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                           const float *y, const float *r, int k, float *dx)
{
    const float *xs[CNN_LAYER_INPUTS_MAX];
    float *dxs[CNN_LAYER_INPUTS_MAX];
    for (int j = 0; j < l->ninputs; j++) {
        xs[j] = cnn_net_layer_in(net, l->index, j);
        dxs[j] = j == k ? dx : NULL;
    }
    if (cnn_layer_is_merge(l->ops)) l->ops->backward_n(l, ctx, n, l->ninputs, xs, y, r, dxs);
    else l->ops->backward(l, ctx, n, xs[0], y, r, dx);
}

/* A layer's objective sum(r * layer(x)) in double. */
static double objective(cnn_net_t *net, cnn_layer_t *l, const cnn_ctx_t *ctx, int n, float *y,
                        const float *r)
{
    layer_forward(net, l, ctx, n, y);
    double f = 0;
    const size_t ny = (size_t)n * cnn_shape_image(l->out);
    for (size_t i = 0; i < ny; i++) f += (double)r[i] * y[i];
    return f;
}

/* Direction k as a unit vector into dir (nv): k = 0 the analytic
 * gradient ga itself, else uniform in [-1, 1) from (salt, k). Returns the
 * directional derivative ga . dir, or NAN for a zero direction. */
static double unit_direction(double *dir, const double *ga, size_t nv, long k, int salt)
{
    double norm = 0, an = 0;
    for (size_t j = 0; j < nv; j++) {
        dir[j] = k == 0 ? ga[j] : 2.0 * cnn_u01(cnn_hash4(99, (uint64_t)salt, (uint64_t)k, j)) - 1.0;
        norm += dir[j] * dir[j];
    }
    if (norm == 0) return NAN;
    norm = sqrt(norm);
    for (size_t j = 0; j < nv; j++) an += ga[j] * (dir[j] /= norm);
    return an;
}

/* Scores one direction from the objective at steps h, -h, h/2, -h/2 (f):
 * a linear layer's central difference, a smooth one's Richardson
 * extrapolation, against the analytic an; raises *worst and counts it, or
 * counts a kink when the two step sizes disagree (by over 5% + `tiny`). */
static void score_direction(const double f[4], double h, double an, int linear, double tiny,
                            double *worst, int *checked, int *kinks)
{
    const double fd1 = (f[0] - f[1]) / (2 * h), fd2 = (f[2] - f[3]) / h;
    if (!linear && fabs(fd1 - fd2) > 0.05 * fabs(fd2) + tiny) {
        (*kinks)++;
        return;
    }
    const double fd = linear ? fd1 : (4 * fd2 - fd1) / 3;
    *worst = fmax(*worst, fabs(an - fd) / fmax(fmax(fabs(an), fabs(fd)), tiny));
    (*checked)++;
}

/* Worst relative error of the directional derivatives of the objective
 * with respect to v (nv floats, the layer's params or its input x) against
 * the analytic gradient ga, over `ndir` directions. */
static double check_dirs(cnn_net_t *net, cnn_layer_t *l, const cnn_ctx_t *ctx, int n, float *y,
                         const float *r, float *v, size_t nv, const float *ga, int linear,
                         long ndir, int salt, int *checked, int *kinks)
{
    double worst = 0;
    float *keep = malloc(sizeof(float) * nv);
    double *dir = malloc(sizeof(double) * nv), *gad = malloc(sizeof(double) * nv);
    if (keep && dir && gad) {
        memcpy(keep, v, sizeof(float) * nv);
        for (size_t j = 0; j < nv; j++) gad[j] = ga[j];
    }
    for (long k = 0; keep && dir && gad && k < ndir; k++) {
        const double an = unit_direction(dir, gad, nv, k, salt);
        if (isnan(an)) continue;
        /* smooth layers: each value moves by about 1e-3 */
        const double h = linear ? 1.0 : 1e-3 * sqrt((double)nv);
        const double hs[4] = {h, -h, h / 2, -h / 2};
        double f[4];
        for (int s = 0; s < 4; s++) {
            for (size_t j = 0; j < nv; j++) v[j] = keep[j] + (float)(hs[s] * dir[j]);
            f[s] = objective(net, l, ctx, n, y, r);
        }
        memcpy(v, keep, sizeof(float) * nv);
        score_direction(f, h, an, linear, 1e-6, &worst, checked, kinks);
    }
    if (!keep || !dir || !gad) worst = INFINITY;
    free(keep);
    free(dir);
    free(gad);
    return worst;
}

/* Checks layer i of net on its input from the last forward pass (n
 * images) and prints its row; raises *worst_all to its worst error. r, dx
 * and y are scratch of the largest activation's size. CNN_ENUMERIC if
 * every direction crossed a kink. */
static cnn_status_t check_layer(cnn_net_t *net, const cnn_ctx_t *ctx, int i, int n, long ndir,
                                double tol, float *r, float *dx, float *y, double *worst_all)
{
    cnn_layer_t *l = &net->layers[i];
    const size_t ny = (size_t)n * cnn_shape_image(l->out);
    if (l->ops->fd == CNN_FD_KINKED) {
        printf("%-12s %-10s %8zu %14s %14s %6s  (piecewise linear: not checked)\n",
               l->spec.name, l->spec.type, l->sz.params, "-", "-", "-");
        return CNN_OK;
    }
    const int linear = l->ops->fd == CNN_FD_LINEAR;
    for (size_t j = 0; j < ny; j++) r[j] = 2.0f * cnn_u01(cnn_hash4(5, (uint64_t)i, j, 0)) - 1.0f;
    /* the forward that the backward refers to (caches, masks) */
    layer_forward(net, l, ctx, n, y);
    memset(l->grads, 0, sizeof(float) * l->sz.params);
    layer_backward(net, l, ctx, n, y, r, 0, dx);
    int checked = 0, kinks = 0;
    double ep = 0, ex = 0;
    if (l->sz.params)
        ep = check_dirs(net, l, ctx, n, y, r, l->params, l->sz.params, l->grads, linear, ndir,
                        2 * i, &checked, &kinks);
    /* each input in turn (a merge layer has several) */
    for (int k = 0; k < l->ninputs; k++) {
        if (k > 0) layer_backward(net, l, ctx, n, y, r, k, dx);
        const size_t nx = (size_t)n * cnn_shape_image(l->ins[k]);
        ex = fmax(ex, check_dirs(net, l, ctx, n, y, r, cnn_net_layer_in(net, i, k), nx, dx,
                                 linear, ndir, 2 * i + 1 + 1000 * k, &checked, &kinks));
    }
    const double worst = fmax(ep, ex);
    char pbuf[32] = "-";
    if (l->sz.params) snprintf(pbuf, sizeof pbuf, "%.3g", ep);
    printf("%-12s %-10s %8zu %14s %14.3g %6d%s\n", l->spec.name, l->spec.type, l->sz.params,
           pbuf, ex, kinks, worst > tol ? "  FAIL" : "");
    *worst_all = fmax(*worst_all, worst);
    if (checked == 0)
        return cnn_error_set(CNN_ENUMERIC, "layer %s: every direction crossed a kink",
                             l->spec.name);
    return CNN_OK;
}

/* ---- --dtype f64: the layers' double references ------------------- */

/* One layer's objective sum(r * reference(x)) in double: its args (x,
 * params as the check moves them), the weights r and scratch y. */
typedef struct {
    const cnn_layer_ops_t *ops;
    cnn_ref_args_t args;
    const double *r;
    double *y;
    size_t ny;
} obj64_t;

static double objective64(const obj64_t *o)
{
    double f = 0;
    o->ops->reference(&o->args, o->y);
    for (size_t i = 0; i < o->ny; i++) f += o->r[i] * o->y[i];
    return f;
}

/* check_dirs in double: v (nv) is the layer's params or input, which the
 * objective reads; ga the analytic gradient. Linear layers take a unit
 * step, smooth ones a step moving each value by about 1e-4, with
 * Richardson extrapolation. */
static double check_dirs64(const obj64_t *o, double *v, size_t nv, const double *ga,
                           int linear, long ndir, int salt, int *checked, int *kinks)
{
    double worst = 0;
    double *keep = malloc(sizeof(double) * nv), *dir = malloc(sizeof(double) * nv);
    if (keep && dir) memcpy(keep, v, sizeof(double) * nv);
    for (long k = 0; keep && dir && k < ndir; k++) {
        const double an = unit_direction(dir, ga, nv, k, salt);
        if (isnan(an)) continue;
        const double h = linear ? 1.0 : 1e-4 * sqrt((double)nv);
        const double hs[4] = {h, -h, h / 2, -h / 2};
        double f[4];
        for (int s = 0; s < 4; s++) {
            for (size_t j = 0; j < nv; j++) v[j] = keep[j] + hs[s] * dir[j];
            f[s] = objective64(o);
        }
        memcpy(v, keep, sizeof(double) * nv);
        score_direction(f, h, an, linear, 1e-12, &worst, checked, kinks);
    }
    if (!keep || !dir) worst = INFINITY;
    free(keep);
    free(dir);
    return worst;
}

/* check_layer in double: layer i of the double net on its input from the
 * last forward pass (n images, training mode); r, dx and y are scratch of
 * the largest activation's size. */
static cnn_status_t check_layer64(cnn_net64_t *n64, int i, int n, long ndir, double tol,
                                  double *r, double *dx, double *y, double *worst_all)
{
    cnn_layer64_t *l = &n64->layers[i];
    const size_t np = l->nparams;
    const size_t nx = (size_t)n * cnn_shape_image(l->in), ny = (size_t)n * cnn_shape_image(l->out);
    if (l->ops->fd == CNN_FD_KINKED) {
        printf("%-12s %-10s %8zu %14s %14s %6s  (piecewise linear: not checked)\n",
               l->spec.name, l->spec.type, np, "-", "-", "-");
        return CNN_OK;
    }
    for (size_t j = 0; j < ny; j++) r[j] = 2.0 * cnn_u01(cnn_hash4(5, (uint64_t)i, j, 0)) - 1.0;
    obj64_t o = {.ops = l->ops, .args = cnn_net64_ref_args(n64, i, 1, n), .r = r, .y = y, .ny = ny};
    objective64(&o);
    if (np) memset(l->grads, 0, sizeof(double) * np);
    l->ops->reference_backward(&o.args, y, r, dx, l->grads);
    int checked = 0, kinks = 0;
    double ep = 0, ex;
    const int linear = l->ops->fd == CNN_FD_LINEAR;
    if (np) ep = check_dirs64(&o, l->params, np, l->grads, linear, ndir, 2 * i, &checked, &kinks);
    ex = check_dirs64(&o, (double *)o.args.x, nx, dx, linear, ndir, 2 * i + 1, &checked, &kinks);
    const double worst = fmax(ep, ex);
    char pbuf[32] = "-";
    if (np) snprintf(pbuf, sizeof pbuf, "%.3g", ep);
    printf("%-12s %-10s %8zu %14s %14.3g %6d%s\n", l->spec.name, l->spec.type, np, pbuf, ex,
           kinks, worst > tol ? "  FAIL" : "");
    *worst_all = fmax(*worst_all, worst);
    if (checked == 0)
        return cnn_error_set(CNN_ENUMERIC, "layer %s: every direction crossed a kink",
                             l->spec.name);
    return CNN_OK;
}

/* The f64 check of every layer: the double net from net (its initial
 * parameters), the n images of idx in double, a forward pass in training
 * mode, then each layer on its own. */
static cnn_status_t check_all64(const cnn_net_t *net, const cnn_data_t *d, const size_t *idx,
                                int n, uint64_t seed, long ndir, double tol, size_t maxact,
                                double *worst_all)
{
    cnn_net64_t *n64 = NULL;
    const size_t chw = cnn_shape_image(net->input);
    double *r = malloc(sizeof(double) * maxact), *dx = malloc(sizeof(double) * maxact);
    double *y = malloc(sizeof(double) * maxact);
    uint8_t *px = malloc(chw * (size_t)n);
    cnn_status_t st = r && dx && y && px ? CNN_OK : cnn_error_set(CNN_ENOMEM, "out of memory");
    if (st == CNN_OK) st = cnn_net64_create(net, &n64);
    if (st == CNN_OK) {
        for (int i = 0; i < n; i++) memcpy(px + (size_t)i * chw, d->train->images + idx[i] * chw, chw);
        cnn_net64_set_pixels(n64, px, n, d->mean, d->std);
        cnn_net64_forward(n64, 1, seed, n);
    }
    for (int i = 0; st == CNN_OK && i < n64->nlayers; i++)
        st = check_layer64(n64, i, n, ndir, tol, r, dx, y, worst_all);
    cnn_net64_free(n64);
    free(r);
    free(dx);
    free(y);
    free(px);
    return st;
}

cnn_status_t cli_gradcheck(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", NULL};
    cli_args_t a;
    const char *sets[CLI_MAX_FLAGS], *s;
    long samples = 4, ndir = 4;
    int f64;
    double tol;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        fputs(gradcheck_usage, stdout);
        return CNN_OK;
    }
    if (a.npos != 1) return cnn_error_set(CNN_EUSAGE, "gradcheck: expected one CONFIG (see --help)");
    int nsets = cli_get_all(&a, "--set", sets, CLI_MAX_FLAGS);
    CNN_TRY(cli_dtype(&a, &f64));
    tol = f64 ? 1e-6 : 1e-3;
    if ((s = cli_get(&a, "--samples"))) CNN_TRY(cli_int("--samples", s, 1, 1024, &samples));
    if ((s = cli_get(&a, "--directions"))) CNN_TRY(cli_int("--directions", s, 1, 1000, &ndir));
    if ((s = cli_get(&a, "--tolerance"))) CNN_TRY(cli_float("--tolerance", s, &tol));
    CNN_TRY(cli_check_unused(&a));
    if (tol <= 0) return cnn_error_set(CNN_EUSAGE, "--tolerance must be > 0");

    cnn_config_t *cfg = malloc(sizeof *cfg);
    cnn_data_t d = {0};
    cnn_net_t *net = NULL;
    int32_t *labels = NULL;
    float *r = NULL, *dx = NULL, *y = NULL;
    cnn_status_t st;
    if (!cfg) return cnn_error_set(CNN_ENOMEM, "out of memory");
    if ((st = cnn_config_load(a.pos[0], sets, nsets, cfg)) != CNN_OK) goto done;
    if ((st = cnn_data_prepare(cfg, 1, &d)) != CNN_OK) goto done;
    const int n = (int)samples;
    const cnn_shape_t in = {n, d.c, d.h, d.w};
    /* every layer as defined: no ReLU folded into the batchnorm, add or
     * conv before it, whose check would then cross the ReLU's kinks */
    const int fuse = cnn_net_set_fuse(0);
    st = cnn_net_create(cfg->layers, cfg->nlayers, in, cfg->train.threads, &net);
    cnn_net_set_fuse(fuse);
    if (st != CNN_OK) goto done;
    cnn_net_init(net, cfg->train.seed);
    size_t maxact = (size_t)n * cnn_shape_image(in);
    for (int i = 0; i < net->nlayers; i++)
        maxact = fmax(maxact, (size_t)n * cnn_shape_image(net->layers[i].out));
    labels = malloc(sizeof(int32_t) * (size_t)n);
    r = malloc(sizeof(float) * maxact);
    dx = malloc(sizeof(float) * maxact);
    y = malloc(sizeof(float) * maxact);
    if (!labels || !r || !dx || !y) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
        goto done;
    }
    size_t idx[1024];
    for (int i = 0; i < n; i++) idx[i] = (size_t)i % d.train->n;
    cnn_dataset_batch(d.train, idx, n, d.mean, d.std, cnn_net_input(net), labels);
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, cfg->train.seed, 0, 0);
    cnn_net_forward(net, &ctx, n); /* every layer's input, from real images */

    printf("gradient check of %s%s: %d image%s, %ld direction%s per tensor, tolerance %g\n",
           a.pos[0], f64 ? " in double precision" : "", n, n > 1 ? "s" : "", ndir,
           ndir > 1 ? "s" : "", tol);
    printf("%-12s %-10s %8s %14s %14s %6s\n", "layer", "type", "params", "params rel err",
           "input rel err", "kinks");
    double worst_all = 0;
    if (f64) st = check_all64(net, &d, idx, n, cfg->train.seed, ndir, tol, maxact, &worst_all);
    for (int i = 0; !f64 && i < net->nlayers && st == CNN_OK; i++)
        st = check_layer(net, &ctx, i, n, ndir, tol, r, dx, y, &worst_all);
    if (st != CNN_OK) goto done;
    if (worst_all > tol)
        st = cnn_error_set(CNN_ENUMERIC, "gradient check failed: max relative error %.3g > %g",
                           worst_all, tol);
    else
        printf("gradient check passed: max relative error %.3g <= %g\n", worst_all, tol);
done:
    free(labels);
    free(r);
    free(dx);
    free(y);
    cnn_net_free(net);
    cnn_data_free(&d);
    free(cfg);
    (void)comm;
    return st;
}
