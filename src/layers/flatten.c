/* flatten.c - (n,C,H,W) -> (n,C*H*W,1,1); the data does not move. */
#include <string.h>

#include "layer_util.h"

static cnn_status_t flatten_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                  cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    *out = (cnn_shape_t){in.n, in.c * in.h * in.w, 1, 1};
    *sz = (cnn_layer_sizes_t){0};
    return CNN_OK;
}

static void flatten_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                            const float *x, float *y)
{
    memcpy(y, x, sizeof(float) * (size_t)n * cnn_shape_image(l->in));
}

static void flatten_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                             const float *x, const float *y, const float *dy,
                             float *dx)
{
    if (dx) memcpy(dx, dy, sizeof(float) * (size_t)n * cnn_shape_image(l->in));
}

/* the same values: only the shape changes */
static void flatten_reference(const cnn_ref_args_t *r, double *y)
{
    memcpy(y, r->x, sizeof(double) * (size_t)r->in.n * cnn_shape_image(r->in));
}

static cnn_status_t flatten_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                 int nin, const char *out)
{
    const cnn_onnx_attr_t axis = CNN_ONNX_INT("axis", 1);
    (void)l, (void)nin;
    return cnn_onnx_node(g, "Flatten", in, 1, out, &axis, 1);
}

/* the same gradient: only the shape changes */
static void flatten_reference_backward(const cnn_ref_args_t *r, const double *y,
                                       const double *dy, double *dx, double *dparams)
{
    if (dx) memcpy(dx, dy, sizeof(double) * (size_t)r->in.n * cnn_shape_image(r->in));
}

const cnn_layer_ops_t cnn_flatten_ops = {
    .type = "flatten",
    .shape = flatten_shape,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .fd = CNN_FD_LINEAR,
    .reference = flatten_reference,
    .onnx = flatten_onnx,
    .reference_backward = flatten_reference_backward,
};
