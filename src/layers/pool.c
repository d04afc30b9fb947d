/* pool.c - max pooling, average pooling and global average pooling.
 *
 * Windows are KH x KW with stride S and no padding; windows that would
 * run past the edge are dropped (floor), as PyTorch does by default.
 * Threads split the (image, channel) planes, so overlapping windows
 * never make two threads write one input element. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "layer_util.h"
#include "mpicnn/kernels.h"

static cnn_status_t window_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                 cnn_shape_t *out, cnn_layer_sizes_t *sz,
                                 int cache_argmax)
{
    char why[160];
    if (s->kh < 1 || s->kw < 1 || s->stride < 1) {
        snprintf(why, sizeof why, "needs size >= 1 and stride >= 1 (got %dx%d, stride %d)",
                 s->kh, s->kw, s->stride);
        return layer_shape_error(s, in, why);
    }
    int oh = cnn_conv_out_size(in.h, s->kh, s->stride, 0);
    int ow = cnn_conv_out_size(in.w, s->kw, s->stride, 0);
    if (oh < 1 || ow < 1) {
        snprintf(why, sizeof why, "a %dx%d window needs at least %dx%d input pixels",
                 s->kh, s->kw, s->kh, s->kw);
        return layer_shape_error(s, in, why);
    }
    *out = (cnn_shape_t){in.n, in.c, oh, ow};
    *sz = (cnn_layer_sizes_t){0};
    /* arg-max index of each output, stored as int32 in the float cache */
    if (cache_argmax) sz->cache = (size_t)in.n * in.c * oh * ow;
    return CNN_OK;
}

static cnn_status_t maxpool_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                  cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    return window_shape(s, in, out, sz, 1);
}

static cnn_status_t avgpool_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                  cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    return window_shape(s, in, out, sz, 0);
}

/* x (n,C,H,W) -> y (n,C,OH,OW); cache holds each output's input index
 * within its plane. With relu set, y = the pool of max(x, 0), computed as
 * max(pool of x, 0): the same y (but where a window holds a NaN and a
 * positive number: 0, not the number) and, where y > 0, the same arg-max;
 * elsewhere the gradient is 0 either way. */
static void maxpool_run(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, const float *x, float *y,
                        int relu)
{
    const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w;
    const int KH = l->spec.kh, KW = l->spec.kw, S = l->spec.stride;
    const int planes = n * l->in.c;
    int32_t *arg = (int32_t *)l->cache;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *yp = y + (size_t)p * OH * OW;
        int32_t *ap = arg + (size_t)p * OH * OW;
        if (KH == 2 && KW == 2 && S == 2) /* the common window, vectorized */
            cnn_maxpool2x2(xp, H, W, yp, ap);
        else
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int best = (oy * S) * W + ox * S;
                    float m = xp[best];
                    for (int ky = 0; ky < KH; ky++)
                        for (int kx = 0; kx < KW; kx++) {
                            const int idx = (oy * S + ky) * W + ox * S + kx;
                            const float v = xp[idx];
                            /* strict '>' keeps the first maximum, as PyTorch;
                             * a NaN wins so that it propagates. Selects, not
                             * branches: random data would mispredict them */
                            const int take = v > m || v != v;
                            best = take ? idx : best;
                            m = take ? v : m;
                        }
                    yp[oy * OW + ox] = m;
                    ap[oy * OW + ox] = best;
                }
        if (relu)
            for (int j = 0; j < OH * OW; j++) yp[j] = yp[j] > 0.0f ? yp[j] : 0.0f;
    }
}

static void maxpool_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                            const float *x, float *y)
{
    maxpool_run(l, ctx, n, x, y, 0);
}

static void maxpool_forward_after_relu(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                                       const float *x, float *y)
{
    maxpool_run(l, ctx, n, x, y, 1);
}

/* dx from dy; with relu set, the gradient of the ReLU before the pool as
 * well (at the ReLU's input): dy passes only where the pool's y > 0 */
static void maxpool_grad(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, const float *y,
                         const float *dy, float *dx, int relu)
{
    if (!dx) return;
    const size_t in_plane = (size_t)l->in.h * l->in.w;
    const size_t out_plane = (size_t)l->out.h * l->out.w;
    const int planes = n * l->in.c;
    const int32_t *arg = (const int32_t *)l->cache;
    const int win2 = l->spec.kh == 2 && l->spec.kw == 2 && l->spec.stride == 2;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        float *dxp = dx + (size_t)p * in_plane;
        const float *dyp = dy + (size_t)p * out_plane, *yp = y + (size_t)p * out_plane;
        const int32_t *ap = arg + (size_t)p * out_plane;
        if (win2) {
            cnn_maxpool2x2_grad(dyp, relu ? yp : NULL, ap, l->in.h, l->in.w, dxp);
            continue;
        }
        memset(dxp, 0, sizeof(float) * in_plane);
        for (size_t j = 0; j < out_plane; j++) {
            const float g = dyp[j]; /* a select, not a branch */
            dxp[ap[j]] += !relu || yp[j] > 0.0f ? g : 0.0f;
        }
    }
}

static void maxpool_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                             const float *x, const float *y, const float *dy,
                             float *dx)
{
    maxpool_grad(l, ctx, n, y, dy, dx, 0);
}

static void maxpool_backward_after_relu(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                                        const float *x, const float *y, const float *dy,
                                        float *dx)
{
    maxpool_grad(l, ctx, n, y, dy, dx, 1);
}

static void avgpool_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                            const float *x, float *y)
{
    const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w;
    const int KH = l->spec.kh, KW = l->spec.kw, S = l->spec.stride;
    const float scale = 1.0f / (float)(KH * KW);
    const int planes = n * l->in.c;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *yp = y + (size_t)p * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float s = 0.0f;
                for (int ky = 0; ky < KH; ky++)
                    for (int kx = 0; kx < KW; kx++)
                        s += xp[(oy * S + ky) * W + ox * S + kx];
                yp[oy * OW + ox] = s * scale;
            }
    }
}

static void avgpool_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                             const float *x, const float *y, const float *dy,
                             float *dx)
{
    if (!dx) return;
    const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w;
    const int KH = l->spec.kh, KW = l->spec.kw, S = l->spec.stride;
    const float scale = 1.0f / (float)(KH * KW);
    const int planes = n * l->in.c;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        float *dxp = dx + (size_t)p * H * W;
        const float *dyp = dy + (size_t)p * OH * OW;
        memset(dxp, 0, sizeof(float) * (size_t)H * W);
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float g = dyp[oy * OW + ox] * scale;
                for (int ky = 0; ky < KH; ky++)
                    for (int kx = 0; kx < KW; kx++)
                        dxp[(oy * S + ky) * W + ox * S + kx] += g;
            }
    }
}

/* global average pooling: (n,C,H,W) -> (n,C,1,1) */
static cnn_status_t gap_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                              cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    *out = (cnn_shape_t){in.n, in.c, 1, 1};
    *sz = (cnn_layer_sizes_t){0};
    return CNN_OK;
}

static void gap_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                        const float *x, float *y)
{
    const size_t hw = (size_t)l->in.h * l->in.w;
    const int planes = n * l->in.c;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * hw;
        double s = 0.0;
        for (size_t j = 0; j < hw; j++) s += xp[j];
        y[p] = (float)(s / (double)hw);
    }
}

static void gap_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                         const float *x, const float *y, const float *dy,
                         float *dx)
{
    if (!dx) return;
    const size_t hw = (size_t)l->in.h * l->in.w;
    const int planes = n * l->in.c;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float g = dy[p] / (float)hw;
        for (size_t j = 0; j < hw; j++) dx[(size_t)p * hw + j] = g;
    }
}

/* ---- the table ------------------------------------------------------ */

/* The window is `size`; the stride defaults to the window's height. */
static const cnn_layer_key_t pool_keys[] = {
    LAYER_PAIR_KEY("size", kh, kw, 1, 4096, NULL, 1),
    LAYER_INT_KEY("stride", stride, 1, 4096, "=size", 1),
};

/* The maximum (is_max) or the mean of each window, in double. */
static void pool_reference(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                           const double *x, double *y, int is_max)
{
    for (int n = 0; n < in.n; n++)
        for (int c = 0; c < in.c; c++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double m = -INFINITY, sum = 0.0;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            double v = x[layer_idx(n, c, oy * s->stride + ky,
                                                   ox * s->stride + kx, in.c, in.h, in.w)];
                            if (v > m) m = v;
                            sum += v;
                        }
                    y[layer_idx(n, c, oy, ox, in.c, out.h, out.w)] =
                        is_max ? m : sum / (s->kh * s->kw);
                }
}

static void maxpool_reference(const cnn_ref_args_t *r, double *y)
{
    pool_reference(r->spec, r->in, r->out, r->x, y, 1);
}

static void avgpool_reference(const cnn_ref_args_t *r, double *y)
{
    pool_reference(r->spec, r->in, r->out, r->x, y, 0);
}

/* the mean of each plane, in double */
static void gap_reference(const cnn_ref_args_t *r, double *y)
{
    const size_t hw = (size_t)r->in.h * r->in.w;
    for (int p = 0; p < r->in.n * r->in.c; p++) {
        double sum = 0;
        for (size_t j = 0; j < hw; j++) sum += r->x[p * hw + j];
        y[p] = sum / (double)hw;
    }
}

static const cnn_layer_cli_t maxpool_cli = {
    .usage = "--x F --x-shape N,C,H,W --size PH,PW --stride S --out F [--dout F --dx F]",
    .x_dims = "N,C,H,W",
};

static const cnn_layer_cli_t avgpool_cli = {
    .usage = "(same flags as maxpool)",
    .x_dims = "N,C,H,W",
};

/* MaxPool or AveragePool over the spec's window, stride, padding and
 * rounding; count_include_pad = count_pad for the average. */
static cnn_status_t pool_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *in, const char *out,
                              int avg)
{
    const cnn_layer_spec_t *s = &l->spec;
    const char *x;
    CNN_TRY(cnn_onnx_image(g, l, in, &x));
    const int64_t k[2] = {s->kh, s->kw}, st[2] = {s->stride, s->stride},
                  p[4] = {s->pad, s->pad, s->pad, s->pad};
    const cnn_onnx_attr_t a[5] = {CNN_ONNX_INTS("kernel_shape", k, 2),
                                  CNN_ONNX_INTS("strides", st, 2), CNN_ONNX_INTS("pads", p, 4),
                                  CNN_ONNX_INT("ceil_mode", s->ceil_mode),
                                  CNN_ONNX_INT("count_include_pad", s->count_pad)};
    return cnn_onnx_node(g, avg ? "AveragePool" : "MaxPool", &x, 1, out, a, avg ? 5 : 4);
}

static cnn_status_t maxpool_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                 int nin, const char *out)
{
    (void)nin;
    return pool_onnx(l, g, in[0], out, 0);
}

const cnn_layer_ops_t cnn_maxpool_ops = {
    .type = "maxpool",
    .shape = maxpool_shape,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .backward_after_relu = maxpool_backward_after_relu,
    .forward_after_relu = maxpool_forward_after_relu,
    .keys = pool_keys,
    .nkeys = LAYER_COUNT(pool_keys),
    .cli = &maxpool_cli,
    .fd = CNN_FD_KINKED,
    .reference = maxpool_reference,
    .onnx = maxpool_onnx,
};

static cnn_status_t avgpool_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                 int nin, const char *out)
{
    (void)nin;
    return pool_onnx(l, g, in[0], out, 1);
}

const cnn_layer_ops_t cnn_avgpool_ops = {
    .type = "avgpool",
    .shape = avgpool_shape,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .keys = pool_keys,
    .nkeys = LAYER_COUNT(pool_keys),
    .cli = &avgpool_cli,
    .fd = CNN_FD_LINEAR,
    .reference = avgpool_reference,
    .onnx = avgpool_onnx,
};

/* GlobalAveragePool; the sum (mode 1) is the mean times H*W. */
static cnn_status_t gap_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                             const char *out)
{
    const char *x, *mean = out;
    (void)nin;
    CNN_TRY(cnn_onnx_image(g, l, in[0], &x));
    if (l->spec.mode == 1) mean = cnn_onnx_name(g, l, "mean");
    CNN_TRY(cnn_onnx_unary(g, "GlobalAveragePool", x, mean));
    if (l->spec.mode != 1) return CNN_OK;
    const float area = (float)l->in.h * (float)l->in.w;
    const int64_t one = 1;
    const char *m[2] = {mean, cnn_onnx_name(g, l, "area")};
    CNN_TRY(cnn_onnx_const(g, m[1], &area, &one, 1));
    return cnn_onnx_node(g, "Mul", m, 2, out, NULL, 0);
}

const cnn_layer_ops_t cnn_gap_ops = {
    .type = "gap",
    .shape = gap_shape,
    .forward = gap_forward,
    .backward = gap_backward,
    .fd = CNN_FD_LINEAR,
    .reference = gap_reference,
    .onnx = gap_onnx,
};
