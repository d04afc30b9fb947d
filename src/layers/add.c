/* add.c - y = x0 + x1 + ...: the elementwise sum of 2 to
 * CNN_LAYER_INPUTS_MAX inputs of one shape (a residual connection). Sums
 * run in input order, as (x0 + x1) + x2 in PyTorch. */
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

/* xs[k] and y are (n, c, h, w) */
static void add_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                        const float *const *xs, float *y)
{
    const size_t total = (size_t)n * cnn_shape_image(l->out);
    const float *a = xs[0], *b = xs[1];
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (size_t i = 0; i < total; i++) y[i] = a[i] + b[i];
    for (int k = 2; k < nin; k++) {
        const float *c = xs[k];
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
        for (size_t i = 0; i < total; i++) y[i] += c[i];
    }
}

/* every input's gradient is dy */
static void add_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                         const float *const *xs, const float *y, const float *dy,
                         float *const *dxs)
{
    const size_t total = (size_t)n * cnn_shape_image(l->out);
    for (int k = 0; k < nin; k++)
        if (dxs[k]) memcpy(dxs[k], dy, sizeof(float) * total);
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
};
