/* tanh.c - y = tanh(x), elementwise. Backward computes tanh(x) again
 * rather than read y: a ReLU after the layer, run in place, zeroes the
 * negative outputs. */
#include "layer_util.h"

static void tanh_fwd(const cnn_layer_spec_t *s, size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

static void tanh_bwd(const cnn_layer_spec_t *s, size_t n, const float *x, const float *y,
                     const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++) {
        const float t = tanhf(x[i]);
        dx[i] = dy[i] * (1.0f - t * t);
    }
}

static double tanh_ref(const cnn_layer_spec_t *s, double x)
{
    return tanh(x);
}

static double tanh_ref_grad(const cnn_layer_spec_t *s, double x)
{
    const double t = tanh(x);
    return 1 - t * t;
}

LAYER_ELEMENTWISE(tanh)

static cnn_status_t tanh_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                              const char *out)
{
    (void)l, (void)nin;
    return cnn_onnx_unary(g, "Tanh", in[0], out);
}

const cnn_layer_ops_t cnn_tanh_ops = {
    LAYER_ELEMENTWISE_OPS(tanh, ""),
    .fd = CNN_FD_SMOOTH,
};
