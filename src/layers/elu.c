/* elu.c - y = x for x > 0, alpha (exp(x) - 1) below, elementwise
 * (PyTorch's ELU). Backward uses x: a ReLU after the layer, run in place,
 * zeroes the negative outputs that y + alpha would need. */
#include "layer_util.h"

static const cnn_layer_key_t elu_keys[] = {
    LAYER_FLOAT_KEY("alpha", alpha, 0, 1, HUGE_VAL, 0, "1", 0),
};

static void elu_fwd(const cnn_layer_spec_t *s, size_t n, const float *x, float *y)
{
    const float a = s->alpha;
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : a * expm1f(x[i]);
}

static void elu_bwd(const cnn_layer_spec_t *s, size_t n, const float *x, const float *y,
                    const float *dy, float *dx)
{
    const float a = s->alpha;
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * a * expf(x[i]);
}

static double elu_ref(const cnn_layer_spec_t *s, double x)
{
    return x > 0 ? x : s->alpha * (exp(x) - 1);
}

static double elu_ref_grad(const cnn_layer_spec_t *s, double x)
{
    return x > 0 ? 1 : s->alpha * exp(x);
}

LAYER_ELEMENTWISE(elu)

static cnn_status_t elu_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                             const char *out)
{
    const cnn_onnx_attr_t alpha = CNN_ONNX_FLOAT("alpha", l->spec.alpha);
    (void)nin;
    return cnn_onnx_node(g, "Elu", in, 1, out, &alpha, 1);
}

const cnn_layer_ops_t cnn_elu_ops = {
    LAYER_ELEMENTWISE_OPS(elu, "[--alpha A] "),
    LAYER_KEYS(elu_keys),
    .fd = CNN_FD_SMOOTH,
};
