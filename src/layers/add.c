/* add.c - y = x0 + x1 + ...: the elementwise sum of 2 to
 * CNN_LAYER_INPUTS_MAX inputs of one shape (a residual connection). Sums
 * run in input order, as (x0 + x1) + x2 in PyTorch.
 *
 * A ResNet block ends with add then ReLU: the net folds the ReLU into the
 * add (relu_out, layer.h), which then clamps the sum as it writes it and
 * passes dy back only where its output is positive, in the same sweeps. */
#include <stdio.h>
#include <string.h>

#include "merge_util.h"

static cnn_status_t add_shape(const cnn_layer_spec_t *s, int nin, const cnn_shape_t *in,
                              cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    for (int k = 1; k < nin; k++)
        if (in[k].c != in[0].c || in[k].h != in[0].h || in[k].w != in[0].w)
            return merge_shape_error(s, nin, in, "an add layer needs inputs of one shape");
    *out = in[0];
    *sz = (cnn_layer_sizes_t){0};
    return CNN_OK;
}

/* y = a + b, n floats, clamped at 0 (as relu.c: NaN and -0 give 0) if
 * clamp; y may be a. */
static void add_pair(const float *a, const float *b, size_t n, int clamp, float *y,
                     int nthreads)
{
    if (clamp) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (size_t i = 0; i < n; i++) {
            const float v = a[i] + b[i];
            y[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    }
}

/* xs[k] and y are (n, c, h, w); with relu_out the last sum is clamped as
 * it is written */
static void add_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                        const float *const *xs, float *y)
{
    const size_t total = (size_t)n * cnn_shape_image(l->out);
    for (int k = 1; k < nin; k++)
        add_pair(k == 1 ? xs[0] : y, xs[k], total, l->relu_out && k == nin - 1, y,
                 ctx->nthreads);
}

/* Every input's gradient is dy; with relu_out, dy where y > 0, else 0
 * (the ReLU's backward: y is its output). */
static void add_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                         const float *const *xs, const float *y, const float *dy,
                         float *const *dxs)
{
    (void)xs;
    const size_t total = (size_t)n * cnn_shape_image(l->out);
    int first = -1; /* the first gradient written, which the others copy */
    for (int k = 0; k < nin && first < 0; k++)
        if (dxs[k]) first = k;
    if (first < 0) return;
    float *d = dxs[first];
    int second = -1; /* a residual block's shortcut: written in the same pass */
    for (int k = first + 1; k < nin && second < 0; k++)
        if (dxs[k]) second = k;
    if (l->relu_out && second >= 0) {
        float *e = dxs[second];
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
        for (size_t i = 0; i < total; i++) {
            const float g = dy[i], o = y[i] > 0.0f ? g : 0.0f;
            d[i] = o;
            e[i] = o;
        }
    } else if (l->relu_out) {
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
        for (size_t i = 0; i < total; i++) {
            const float g = dy[i]; /* read always: a select, which vectorizes */
            d[i] = y[i] > 0.0f ? g : 0.0f;
        }
    } else {
        memcpy(d, dy, sizeof(float) * total);
    }
    for (int k = (l->relu_out && second >= 0 ? second : first) + 1; k < nin; k++)
        if (dxs[k]) memcpy(dxs[k], d, sizeof(float) * total);
}

static void add_reference(const cnn_ref_args_t *r, double *y)
{
    const size_t total = (size_t)r->out.n * cnn_shape_image(r->out);
    for (size_t i = 0; i < total; i++) {
        double s = 0;
        for (int k = 0; k < r->nx; k++) s += r->xs[k][i];
        y[i] = s;
    }
}

/* Every input's gradient is dy. */
static void add_reference_backward(const cnn_ref_args_t *r, const double *y, const double *dy,
                                   double *dx, double *dparams)
{
    (void)y, (void)dparams;
    const size_t total = (size_t)r->out.n * cnn_shape_image(r->out);
    for (int k = 0; dx && k < r->nx; k++)
        for (size_t i = 0; i < total; i++) dx[(size_t)k * total + i] = dy[i];
}

/* The elementwise sum of every input, left to right. */
static cnn_status_t add_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                             const char *out)
{
    const char *x[CNN_LAYER_INPUTS_MAX];
    CNN_TRY(cnn_onnx_merge_inputs(g, l, in, nin, x));
    in = x;
    const char *acc = in[0];
    for (int i = 1; i < nin; i++) {
        char what[16];
        snprintf(what, sizeof what, "sum%d", i);
        const char *dst = i == nin - 1 ? out : cnn_onnx_name(g, l, what);
        CNN_TRY(cnn_onnx_node(g, "Add", (const char *[]){acc, in[i]}, 2, dst, NULL, 0));
        acc = dst;
    }
    return nin == 1 ? cnn_onnx_unary(g, "Identity", in[0], out) : CNN_OK;
}

const cnn_layer_ops_t cnn_add_ops = {
    .type = "add",
    .shape_n = add_shape,
    .forward_n = add_forward,
    .backward_n = add_backward,
    .fd = CNN_FD_LINEAR,
    .reference = add_reference,
    .reference_backward = add_reference_backward,
    .onnx = add_onnx,
    .relu_out = 1,
};
