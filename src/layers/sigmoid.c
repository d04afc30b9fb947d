/* sigmoid.c - y = 1 / (1 + exp(-x)), elementwise. Backward uses
 * y' = y (1 - y) from the output: a ReLU after the layer, run in place,
 * leaves its outputs (all >= 0) as they are. */
#include "layer_util.h"

static void sigmoid_fwd(const cnn_layer_spec_t *s, size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

static void sigmoid_bwd(const cnn_layer_spec_t *s, size_t n, const float *x, const float *y,
                        const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
}

static double sigmoid_ref(const cnn_layer_spec_t *s, double x)
{
    return 1 / (1 + exp(-x));
}

static double sigmoid_ref_grad(const cnn_layer_spec_t *s, double x)
{
    const double y = 1 / (1 + exp(-x));
    return y * (1 - y);
}

LAYER_ELEMENTWISE(sigmoid)

static cnn_status_t sigmoid_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                 int nin, const char *out)
{
    (void)l, (void)nin;
    return cnn_onnx_unary(g, "Sigmoid", in[0], out);
}

const cnn_layer_ops_t cnn_sigmoid_ops = {
    LAYER_ELEMENTWISE_OPS(sigmoid, ""),
    .fd = CNN_FD_SMOOTH,
};
