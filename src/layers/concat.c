/* concat.c - y = the inputs stacked along the channels, in input order:
 * 2 to CNN_LAYER_INPUTS_MAX inputs of the same height and width
 * (torch.cat(xs, dim=1)). */
#include <stdio.h>
#include <string.h>

#include "merge_util.h"

static cnn_status_t concat_shape(const cnn_layer_spec_t *s, int nin, const cnn_shape_t *in,
                                 cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    long c = in[0].c;
    for (int k = 1; k < nin; k++) {
        if (in[k].h != in[0].h || in[k].w != in[0].w)
            return merge_shape_error(s, nin, in, "a concat layer needs inputs of one height "
                                     "and width");
        c += in[k].c;
    }
    if (c > 1L << 30) return merge_shape_error(s, nin, in, "too many channels");
    *out = (cnn_shape_t){in[0].n, (int)c, in[0].h, in[0].w};
    *sz = (cnn_layer_sizes_t){0};
    return CNN_OK;
}

/* xs[k] is (n, c_k, h, w), y (n, sum c_k, h, w): image by image, each
 * input's block after the previous one's */
static void concat_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                           const float *const *xs, float *y)
{
    const size_t img = cnn_shape_image(l->out);
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * img;
        for (int k = 0; k < nin; k++) {
            const size_t m = cnn_shape_image(l->ins[k]);
            memcpy(yi, xs[k] + (size_t)i * m, sizeof(float) * m);
            yi += m;
        }
    }
}

/* dxs[k] is the slice of dy that input k filled */
static void concat_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                            const float *const *xs, const float *y, const float *dy,
                            float *const *dxs)
{
    const size_t img = cnn_shape_image(l->out);
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int i = 0; i < n; i++) {
        const float *gi = dy + (size_t)i * img;
        for (int k = 0; k < nin; k++) {
            const size_t m = cnn_shape_image(l->ins[k]);
            if (dxs[k]) memcpy(dxs[k] + (size_t)i * m, gi, sizeof(float) * m);
            gi += m;
        }
    }
}

static void concat_reference(const cnn_ref_args_t *r, double *y)
{
    const cnn_shape_t o = r->out;
    for (int i = 0; i < o.n; i++) {
        int c0 = 0;
        for (int k = 0; k < r->nx; k++) {
            const cnn_shape_t s = r->ins[k];
            for (int c = 0; c < s.c; c++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++)
                        y[layer_idx(i, c0 + c, h, w, o.c, o.h, o.w)] =
                            r->xs[k][layer_idx(i, c, h, w, s.c, s.h, s.w)];
            c0 += s.c;
        }
    }
}

/* Input k's gradient is its channels of dy. */
static void concat_reference_backward(const cnn_ref_args_t *r, const double *y, const double *dy,
                                      double *dx, double *dparams)
{
    (void)y, (void)dparams;
    const cnn_shape_t o = r->out;
    size_t at = 0; /* where input k's gradient starts in dx */
    for (int k = 0, c0 = 0; dx && k < r->nx; k++) {
        const cnn_shape_t s = r->ins[k];
        for (int i = 0; i < o.n; i++)
            for (int c = 0; c < s.c; c++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++)
                        dx[at + layer_idx(i, c, h, w, s.c, s.h, s.w)] =
                            dy[layer_idx(i, c0 + c, h, w, o.c, o.h, o.w)];
        at += (size_t)o.n * cnn_shape_image(s);
        c0 += s.c;
    }
}

/* Along the channels (axis 1), in input order. */
static cnn_status_t concat_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                int nin, const char *out)
{
    const cnn_onnx_attr_t axis = CNN_ONNX_INT("axis", 1);
    const char *x[CNN_LAYER_INPUTS_MAX];
    CNN_TRY(cnn_onnx_merge_inputs(g, l, in, nin, x));
    return cnn_onnx_node(g, "Concat", x, nin, out, &axis, 1);
}

const cnn_layer_ops_t cnn_concat_ops = {
    .type = "concat",
    .shape_n = concat_shape,
    .forward_n = concat_forward,
    .backward_n = concat_backward,
    .fd = CNN_FD_LINEAR,
    .reference = concat_reference,
    .reference_backward = concat_reference_backward,
    .onnx = concat_onnx,
};
