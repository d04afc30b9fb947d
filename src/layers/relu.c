/* relu.c - y = max(x, 0), elementwise. Runs in place inside a net (y is
 * x's buffer): the backward test x > 0 reads the same whether x is the
 * input or the output. */
#include "layer_util.h"

static cnn_status_t relu_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                               cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    *out = in;
    *sz = (cnn_layer_sizes_t){0};
    return CNN_OK;
}

static void relu_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                         const float *x, float *y)
{
    const size_t total = (size_t)n * cnn_shape_image(l->in);
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (size_t i = 0; i < total; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, const float *y, const float *dy,
                          float *dx)
{
    if (!dx) return;
    const size_t total = (size_t)n * cnn_shape_image(l->in);
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (size_t i = 0; i < total; i++) {
        /* read dy unconditionally: a select, not a branch, so it vectorizes */
        const float g = dy[i];
        dx[i] = x[i] > 0.0f ? g : 0.0f;
    }
}

/* y = max(x, 0) in double */
static void relu_reference(const cnn_ref_args_t *r, double *y)
{
    const size_t nin = (size_t)r->in.n * cnn_shape_image(r->in);
    for (size_t i = 0; i < nin; i++) y[i] = r->x[i] > 0 ? r->x[i] : 0;
}

static const cnn_layer_cli_t relu_cli = {
    .usage = "--x F --x-shape ... --out F [--dout F --dx F]",
};

static cnn_status_t relu_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                              const char *out)
{
    (void)l, (void)nin;
    return cnn_onnx_unary(g, "Relu", in[0], out);
}

const cnn_layer_ops_t cnn_relu_ops = {
    .type = "relu",
    .shape = relu_shape,
    .forward = relu_forward,
    .backward = relu_backward,
    .in_place = 1,
    .relu = 1,
    .cli = &relu_cli,
    .fd = CNN_FD_KINKED,
    .reference = relu_reference,
    .onnx = relu_onnx,
};
