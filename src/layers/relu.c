/* relu.c - y = max(x, 0), elementwise. Runs in place inside a net (y is
 * x's buffer): the backward test x > 0 reads the same whether x is the
 * input or the output. */
#include "layer_util.h"

static void relu_fwd(const cnn_layer_spec_t *s, size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_bwd(const cnn_layer_spec_t *s, size_t n, const float *x, const float *y,
                     const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++) {
        /* read dy unconditionally: a select, not a branch, so it vectorizes */
        const float g = dy[i];
        dx[i] = x[i] > 0.0f ? g : 0.0f;
    }
}

static double relu_ref(const cnn_layer_spec_t *s, double x)
{
    return x > 0 ? x : 0;
}

static double relu_ref_grad(const cnn_layer_spec_t *s, double x)
{
    return x > 0 ? 1 : 0;
}

LAYER_ELEMENTWISE(relu)

static cnn_status_t relu_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                              const char *out)
{
    (void)l, (void)nin;
    return cnn_onnx_unary(g, "Relu", in[0], out);
}

const cnn_layer_ops_t cnn_relu_ops = {
    LAYER_ELEMENTWISE_OPS(relu, ""),
    .in_place = 1,
    .relu = 1,
    .fd = CNN_FD_KINKED,
};
