/* leaky_relu.c - y = x for x > 0, slope * x below, elementwise (PyTorch's
 * LeakyReLU with negative_slope = slope). */
#include "layer_util.h"

static const cnn_layer_key_t leaky_relu_keys[] = {
    LAYER_FLOAT_KEY("slope", slope, 0, 0, HUGE_VAL, 0, "0.01", 0),
};

static void leaky_relu_fwd(const cnn_layer_spec_t *s, size_t n, const float *x, float *y)
{
    const float a = s->slope;
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : x[i] * a;
}

static void leaky_relu_bwd(const cnn_layer_spec_t *s, size_t n, const float *x,
                           const float *y, const float *dy, float *dx)
{
    const float a = s->slope;
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * a;
}

static double leaky_relu_ref(const cnn_layer_spec_t *s, double x)
{
    return x > 0 ? x : s->slope * x;
}

static double leaky_relu_ref_grad(const cnn_layer_spec_t *s, double x)
{
    return x > 0 ? 1 : s->slope;
}

LAYER_ELEMENTWISE(leaky_relu)

static cnn_status_t leaky_relu_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                    int nin, const char *out)
{
    const cnn_onnx_attr_t alpha = CNN_ONNX_FLOAT("alpha", l->spec.slope);
    (void)nin;
    return cnn_onnx_node(g, "LeakyRelu", in, 1, out, &alpha, 1);
}

const cnn_layer_ops_t cnn_leaky_relu_ops = {
    LAYER_ELEMENTWISE_OPS(leaky_relu, "[--slope S] "),
    LAYER_KEYS(leaky_relu_keys),
    .fd = CNN_FD_KINKED,
};
