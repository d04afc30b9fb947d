/* gelu.c - y = x Phi(x), elementwise, with Phi the standard normal CDF:
 * exactly, 0.5 x (1 + erf(x / sqrt 2)) (approximate = none), or in
 * PyTorch's tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * (approximate = tanh). Backward uses x. */
#include "layer_util.h"

static const char *const gelu_approximate[] = {"none", "tanh", NULL};

static const cnn_layer_key_t gelu_keys[] = {
    LAYER_ENUM_KEY("approximate", approximate, gelu_approximate, "none", 0),
};

#define GELU_RSQRT2 0.70710678118654752440f  /* 1 / sqrt 2 */
#define GELU_RSQRT2PI 0.39894228040143267794f /* 1 / sqrt(2 pi), Phi'(0) */
#define GELU_BETA 0.79788456080286535588f   /* sqrt(2 / pi) */
#define GELU_KAPPA 0.044715f

/* Both forms are computed without the cancellation of 1 + erf and 1 + tanh
 * for x < 0, where float would lose the small result: 1 + erf(z) is
 * erfc(-z) and 1 + tanh(u) is 2 s with s = 1 / (1 + exp(-2u)). */
static void gelu_fwd(const cnn_layer_spec_t *s, size_t n, const float *x, float *y)
{
    if (s->approximate)
        for (size_t i = 0; i < n; i++) {
            const float v = x[i], u = GELU_BETA * (v + GELU_KAPPA * v * v * v);
            y[i] = v / (1.0f + expf(-2.0f * u));
        }
    else
        for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * erfcf(-x[i] * GELU_RSQRT2);
}

/* d/dx of x Phi(x) = Phi(x) + x Phi'(x); of the tanh form x s, with
 * u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2), s (1 + 2 x (1 - s) u'). s and
 * 1 - s are 1 / (1 + e) and e / (1 + e) with e = exp(-2|u|), in the order
 * u's sign gives: each keeps its precision, and e stays finite. */
static void gelu_bwd(const cnn_layer_spec_t *s, size_t n, const float *x, const float *y,
                     const float *dy, float *dx)
{
    if (s->approximate)
        for (size_t i = 0; i < n; i++) {
            const float v = x[i], v2 = v * v, u = GELU_BETA * (v + GELU_KAPPA * v2 * v);
            const float e = expf(-2.0f * fabsf(u)), big = 1.0f / (1.0f + e), small = e * big;
            const float sg = u >= 0.0f ? big : small, sc = u >= 0.0f ? small : big;
            const float du = GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * v2);
            dx[i] = dy[i] * sg * (1.0f + 2.0f * v * sc * du);
        }
    else
        for (size_t i = 0; i < n; i++) {
            const float v = x[i];
            const float cdf = 0.5f * erfcf(-v * GELU_RSQRT2);
            dx[i] = dy[i] * (cdf + v * GELU_RSQRT2PI * expf(-0.5f * v * v));
        }
}

static double gelu_ref(const cnn_layer_spec_t *s, double x)
{
    if (s->approximate)
        return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1 + erf(x / sqrt(2)));
}

/* Phi(x) + x Phi'(x); the tanh form's 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'
 * with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2) */
static double gelu_ref_grad(const cnn_layer_spec_t *s, double x)
{
    if (s->approximate) {
        const double b = sqrt(2 / M_PI), t = tanh(b * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * b * (1 + 3 * 0.044715 * x * x);
    }
    return 0.5 * (1 + erf(x / sqrt(2))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
}

LAYER_ELEMENTWISE(gelu)

/* Opset 13 has no Gelu: built from its definition. Exact (approximate =
 * none): 0.5 x (1 + erf(x / sqrt 2)); tanh form: 0.5 x (1 + tanh(sqrt(2/pi)
 * (x + 0.044715 x^3))). Scalar constants are 0-d initialisers. */
static cnn_status_t gelu_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                              const char *out)
{
    static const float half = 0.5f, one = 1.0f, sqrt2 = 1.41421356237309505f,
                       c3 = 0.044715f, k = 0.797884560802865356f; /* sqrt(2/pi) */
    const char *x = in[0], *h = cnn_onnx_name(g, l, "half"), *o = cnn_onnx_name(g, l, "one");
    const char *t = cnn_onnx_name(g, l, "t"), *s = cnn_onnx_name(g, l, "s"),
               *xp = cnn_onnx_name(g, l, "xp");
    (void)nin;
    CNN_TRY(cnn_onnx_const(g, h, &half, NULL, 0));
    CNN_TRY(cnn_onnx_const(g, o, &one, NULL, 0));
    if (!l->spec.approximate) { /* t = erf(x / sqrt 2) */
        const char *c = cnn_onnx_name(g, l, "sqrt2"), *u = cnn_onnx_name(g, l, "u");
        CNN_TRY(cnn_onnx_const(g, c, &sqrt2, NULL, 0));
        CNN_TRY(cnn_onnx_node(g, "Div", (const char *[]){x, c}, 2, u, NULL, 0));
        CNN_TRY(cnn_onnx_unary(g, "Erf", u, t));
    } else { /* t = tanh(k (x + c3 x^3)) */
        const char *cc = cnn_onnx_name(g, l, "c3"), *ck = cnn_onnx_name(g, l, "k"),
                   *x2 = cnn_onnx_name(g, l, "x2"), *x3 = cnn_onnx_name(g, l, "x3"),
                   *a = cnn_onnx_name(g, l, "a"), *b = cnn_onnx_name(g, l, "b"),
                   *u = cnn_onnx_name(g, l, "u");
        CNN_TRY(cnn_onnx_const(g, cc, &c3, NULL, 0));
        CNN_TRY(cnn_onnx_const(g, ck, &k, NULL, 0));
        CNN_TRY(cnn_onnx_node(g, "Mul", (const char *[]){x, x}, 2, x2, NULL, 0));
        CNN_TRY(cnn_onnx_node(g, "Mul", (const char *[]){x2, x}, 2, x3, NULL, 0));
        CNN_TRY(cnn_onnx_node(g, "Mul", (const char *[]){x3, cc}, 2, a, NULL, 0));
        CNN_TRY(cnn_onnx_node(g, "Add", (const char *[]){x, a}, 2, b, NULL, 0));
        CNN_TRY(cnn_onnx_node(g, "Mul", (const char *[]){b, ck}, 2, u, NULL, 0));
        CNN_TRY(cnn_onnx_unary(g, "Tanh", u, t));
    }
    CNN_TRY(cnn_onnx_node(g, "Add", (const char *[]){t, o}, 2, s, NULL, 0));
    CNN_TRY(cnn_onnx_node(g, "Mul", (const char *[]){x, s}, 2, xp, NULL, 0));
    return cnn_onnx_node(g, "Mul", (const char *[]){xp, h}, 2, out, NULL, 0);
}

const cnn_layer_ops_t cnn_gelu_ops = {
    LAYER_ELEMENTWISE_OPS(gelu, "[--approximate none|tanh] "),
    LAYER_KEYS(gelu_keys),
    .fd = CNN_FD_SMOOTH,
};
