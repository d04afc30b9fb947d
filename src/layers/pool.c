/* pool.c - max pooling, average pooling and global pooling.
 *
 * Windows are KH x KW with stride S and P padded positions on each side
 * (P <= KH/2 and P <= KW/2, as PyTorch requires). Along a side of n
 * inputs there are floor((n + 2P - K) / S) + 1 windows (PyTorch's
 * default: windows that would run past the padded edge are dropped); with
 * ceil_mode the ceiling instead, less one if the last window would start
 * at or past n + P, so that every window starts inside the input or its
 * leading padding. Window o covers inputs [o S - P, o S - P + K) clipped
 * to the input: each holds at least one input, since P < K and the last
 * one starts before n.
 *
 * Max pooling reads padding as -inf (it never wins); average pooling
 * divides by the inputs in the window, or with count_pad by the window
 * clipped to the padded input (PyTorch's count_include_pad). Threads
 * split the (image, channel) planes, so overlapping windows never make
 * two threads write one input element. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "layer_util.h"
#include "mpicnn/kernels.h"

/* The windows along one side of n inputs (see the top of the file). */
static int pool_out_size(int n, int k, int s, int pad, int ceil_mode)
{
    const int span = n + 2 * pad - k;
    if (k < 1 || s < 1 || span < 0) return 0;
    int out = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (out - 1) * s >= n + pad) out--;
    return out;
}

/* Window o along a side of n inputs: the inputs [a, b) it covers and its
 * length clipped to the padded input (count_pad's divisor). */
typedef struct {
    int a, b, padded;
} span_t;

static inline span_t pool_span(int o, int k, int s, int pad, int n)
{
    const int start = o * s - pad;
    const int end = start + k < n + pad ? start + k : n + pad;
    return (span_t){start > 0 ? start : 0, end < n ? end : n, end - start};
}

/* sz.variant of a max pool that the vectorized 2x2 stride-2 kernel runs
 * (without padding; in ceil mode too) */
enum { POOL_GENERAL = 0, POOL_2X2 = 1 };

static cnn_status_t window_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                 cnn_shape_t *out, cnn_layer_sizes_t *sz,
                                 int cache_argmax)
{
    char why[160];
    if (s->kh < 1 || s->kw < 1 || s->stride < 1 || s->pad < 0) {
        snprintf(why, sizeof why,
                 "needs size >= 1, stride >= 1 and pad >= 0 (got %dx%d, stride %d, pad %d)",
                 s->kh, s->kw, s->stride, s->pad);
        return layer_shape_error(s, in, why);
    }
    if (2 * s->pad > s->kh || 2 * s->pad > s->kw) {
        snprintf(why, sizeof why, "pad %d is more than half the %dx%d window", s->pad,
                 s->kh, s->kw);
        return layer_shape_error(s, in, why);
    }
    int oh = pool_out_size(in.h, s->kh, s->stride, s->pad, s->ceil_mode);
    int ow = pool_out_size(in.w, s->kw, s->stride, s->pad, s->ceil_mode);
    if (oh < 1 || ow < 1) {
        snprintf(why, sizeof why, "a %dx%d window with pad %d needs at least %dx%d input pixels",
                 s->kh, s->kw, s->pad, s->kh - 2 * s->pad, s->kw - 2 * s->pad);
        return layer_shape_error(s, in, why);
    }
    *out = (cnn_shape_t){in.n, in.c, oh, ow};
    *sz = (cnn_layer_sizes_t){0};
    if (!cache_argmax) return CNN_OK;
    /* arg-max index of each output, stored as int32 in the float cache */
    sz->cache = (size_t)in.n * in.c * oh * ow;
    if (s->kh == 2 && s->kw == 2 && s->stride == 2 && s->pad == 0) sz->variant = POOL_2X2;
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

/* A pool layer's dimensions, as its loops read them. */
typedef struct {
    int H, W, OH, OW, KH, KW, S, P;
} pool_dims_t;

static pool_dims_t pool_dims(const cnn_layer_t *l)
{
    return (pool_dims_t){l->in.h, l->in.w, l->out.h, l->out.w,
                         l->spec.kh, l->spec.kw, l->spec.stride, l->spec.pad};
}

/* One plane xp (H,W) -> yp (OH,OW), ap the arg-max of each output within
 * the plane. m starts at the window's first input (every window has
 * one); strict '>' keeps the first maximum, as PyTorch; a NaN wins so
 * that it propagates. Selects, not branches: random data would
 * mispredict them. */
static void maxpool_plane(const pool_dims_t *d, const float *xp, float *yp, int32_t *ap)
{
    for (int oy = 0; oy < d->OH; oy++) {
        const span_t ry = pool_span(oy, d->KH, d->S, d->P, d->H);
        for (int ox = 0; ox < d->OW; ox++) {
            const span_t rx = pool_span(ox, d->KW, d->S, d->P, d->W);
            int best = ry.a * d->W + rx.a;
            float m = xp[best];
            for (int iy = ry.a; iy < ry.b; iy++)
                for (int ix = rx.a; ix < rx.b; ix++) {
                    const int idx = iy * d->W + ix;
                    const float v = xp[idx];
                    const int take = v > m || v != v;
                    best = take ? idx : best;
                    m = take ? v : m;
                }
            yp[oy * d->OW + ox] = m;
            ap[oy * d->OW + ox] = best;
        }
    }
}

/* x (n,C,H,W) -> y (n,C,OH,OW); cache holds each output's input index
 * within its plane. With relu set, y = the pool of max(x, 0), computed as
 * max(pool of x, 0): the same y (but where a window holds a NaN and a
 * positive number: 0, not the number) and, where y > 0, the same arg-max;
 * elsewhere the gradient is 0 either way. Padding does not change this:
 * it is never the maximum, and every window holds an input. */
static void maxpool_run(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, const float *x, float *y,
                        int relu)
{
    const pool_dims_t d = pool_dims(l);
    const int planes = n * l->in.c, vec = l->sz.variant == POOL_2X2;
    int32_t *arg = (int32_t *)l->cache;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * d.H * d.W;
        float *yp = y + (size_t)p * d.OH * d.OW;
        int32_t *ap = arg + (size_t)p * d.OH * d.OW;
        if (vec) cnn_maxpool2x2(xp, d.H, d.W, l->spec.ceil_mode, yp, ap);
        else maxpool_plane(&d, xp, yp, ap);
        if (relu)
            for (int j = 0; j < d.OH * d.OW; j++) yp[j] = yp[j] > 0.0f ? yp[j] : 0.0f;
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
    const int planes = n * l->in.c, vec = l->sz.variant == POOL_2X2;
    const int32_t *arg = (const int32_t *)l->cache;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        float *dxp = dx + (size_t)p * in_plane;
        const float *dyp = dy + (size_t)p * out_plane, *yp = y + (size_t)p * out_plane;
        const int32_t *ap = arg + (size_t)p * out_plane;
        if (vec) {
            cnn_maxpool2x2_grad(dyp, relu ? yp : NULL, ap, l->in.h, l->in.w, l->spec.ceil_mode,
                                dxp);
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

/* 1 / the divisor of an average over the window ry x rx: its inputs, or
 * with count_pad the window clipped to the padded input. For a whole
 * window both are KH * KW. */
static inline float avg_scale(span_t ry, span_t rx, int count_pad)
{
    const int cnt = count_pad ? ry.padded * rx.padded : (ry.b - ry.a) * (rx.b - rx.a);
    return 1.0f / (float)cnt;
}

static void avgpool_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                            const float *x, float *y)
{
    const pool_dims_t d = pool_dims(l);
    const int planes = n * l->in.c, count_pad = l->spec.count_pad;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * d.H * d.W;
        float *yp = y + (size_t)p * d.OH * d.OW;
        for (int oy = 0; oy < d.OH; oy++) {
            const span_t ry = pool_span(oy, d.KH, d.S, d.P, d.H);
            for (int ox = 0; ox < d.OW; ox++) {
                const span_t rx = pool_span(ox, d.KW, d.S, d.P, d.W);
                float s = 0.0f;
                for (int iy = ry.a; iy < ry.b; iy++)
                    for (int ix = rx.a; ix < rx.b; ix++) s += xp[iy * d.W + ix];
                yp[oy * d.OW + ox] = s * avg_scale(ry, rx, count_pad);
            }
        }
    }
}

static void avgpool_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                             const float *x, const float *y, const float *dy,
                             float *dx)
{
    if (!dx) return;
    const pool_dims_t d = pool_dims(l);
    const int planes = n * l->in.c, count_pad = l->spec.count_pad;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        float *dxp = dx + (size_t)p * d.H * d.W;
        const float *dyp = dy + (size_t)p * d.OH * d.OW;
        memset(dxp, 0, sizeof(float) * (size_t)d.H * d.W);
        for (int oy = 0; oy < d.OH; oy++) {
            const span_t ry = pool_span(oy, d.KH, d.S, d.P, d.H);
            for (int ox = 0; ox < d.OW; ox++) {
                const span_t rx = pool_span(ox, d.KW, d.S, d.P, d.W);
                const float g = dyp[oy * d.OW + ox] * avg_scale(ry, rx, count_pad);
                for (int iy = ry.a; iy < ry.b; iy++)
                    for (int ix = rx.a; ix < rx.b; ix++) dxp[iy * d.W + ix] += g;
            }
        }
    }
}

/* global pooling: (n,C,H,W) -> (n,C,1,1), the mean (mode 0) or the sum
 * (mode 1) of each plane */
enum { GAP_MEAN = 0, GAP_SUM = 1 };

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
    const int planes = n * l->in.c, sum = l->spec.mode == GAP_SUM;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * hw;
        double s = 0.0;
        for (size_t j = 0; j < hw; j++) s += xp[j];
        y[p] = (float)(sum ? s : s / (double)hw);
    }
}

static void gap_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                         const float *x, const float *y, const float *dy,
                         float *dx)
{
    if (!dx) return;
    const size_t hw = (size_t)l->in.h * l->in.w;
    const int planes = n * l->in.c, sum = l->spec.mode == GAP_SUM;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int p = 0; p < planes; p++) {
        const float g = sum ? dy[p] : dy[p] / (float)hw;
        for (size_t j = 0; j < hw; j++) dx[(size_t)p * hw + j] = g;
    }
}

/* ---- the references ------------------------------------------------- */

/* The maximum (is_max) or the mean of each window, in double, from the
 * definition: window (oy, ox) covers the padded positions oy*S - P + ky,
 * ox*S - P + kx for ky < KH, kx < KW; positions past the padded input
 * do not count, padding counts only in the divisor with count_pad. */
static void pool_reference(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                           const double *x, double *y, int is_max)
{
    for (int n = 0; n < in.n; n++)
        for (int c = 0; c < in.c; c++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double m = -INFINITY, sum = 0.0, real = 0, padded = 0;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            const int iy = oy * s->stride - s->pad + ky;
                            const int ix = ox * s->stride - s->pad + kx;
                            if (iy >= in.h + s->pad || ix >= in.w + s->pad) continue;
                            padded++;
                            if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
                            real++;
                            const double v = x[layer_idx(n, c, iy, ix, in.c, in.h, in.w)];
                            if (v > m) m = v;
                            sum += v;
                        }
                    y[layer_idx(n, c, oy, ox, in.c, out.h, out.w)] =
                        is_max ? m : sum / (s->count_pad ? padded : real);
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

/* the mean (or the sum) of each plane, in double */
static void gap_reference(const cnn_ref_args_t *r, double *y)
{
    const size_t hw = (size_t)r->in.h * r->in.w;
    for (int p = 0; p < r->in.n * r->in.c; p++) {
        double sum = 0;
        for (size_t j = 0; j < hw; j++) sum += r->x[p * hw + j];
        y[p] = r->spec->mode == GAP_SUM ? sum : sum / (double)hw;
    }
}

/* The gradient of pool_reference in double: a window's dy goes to its
 * first maximum (in row-major order, as the float kernels choose: strict
 * '>'), or is shared by its inputs over the divisor. */
static void pool_reference_grad(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                                const double *x, const double *dy, double *dx, int is_max)
{
    memset(dx, 0, sizeof(double) * (size_t)in.n * cnn_shape_image(in));
    for (int n = 0; n < in.n; n++)
        for (int c = 0; c < in.c; c++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double m = -INFINITY, real = 0, padded = 0;
                    size_t best = 0;
                    for (int pass = 0; pass < 2; pass++)
                        for (int ky = 0; ky < s->kh; ky++)
                            for (int kx = 0; kx < s->kw; kx++) {
                                const int iy = oy * s->stride - s->pad + ky;
                                const int ix = ox * s->stride - s->pad + kx;
                                if (iy >= in.h + s->pad || ix >= in.w + s->pad) continue;
                                padded += pass == 0;
                                if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
                                real += pass == 0;
                                const size_t i = layer_idx(n, c, iy, ix, in.c, in.h, in.w);
                                const double g = dy[layer_idx(n, c, oy, ox, in.c, out.h, out.w)];
                                /* pass 0 finds the maximum and the divisor, pass 1 spreads */
                                if (pass == 0 && x[i] > m) m = x[i], best = i;
                                if (pass == 1 && !is_max)
                                    dx[i] += g / (s->count_pad ? padded : real);
                                if (pass == 1 && is_max && i == best) dx[i] += g;
                            }
                }
}

static void maxpool_reference_backward(const cnn_ref_args_t *r, const double *y,
                                       const double *dy, double *dx, double *dparams)
{
    if (dx) pool_reference_grad(r->spec, r->in, r->out, r->x, dy, dx, 1);
}

static void avgpool_reference_backward(const cnn_ref_args_t *r, const double *y,
                                       const double *dy, double *dx, double *dparams)
{
    if (dx) pool_reference_grad(r->spec, r->in, r->out, r->x, dy, dx, 0);
}

/* each input of a plane gets the plane's dy (sum), or dy / (h w) (mean) */
static void gap_reference_backward(const cnn_ref_args_t *r, const double *y,
                                   const double *dy, double *dx, double *dparams)
{
    const size_t hw = (size_t)r->in.h * r->in.w;
    for (int p = 0; dx && p < r->in.n * r->in.c; p++)
        for (size_t j = 0; j < hw; j++)
            dx[p * hw + j] = r->spec->mode == GAP_SUM ? dy[p] : dy[p] / (double)hw;
}

/* ---- the tables ------------------------------------------------------ */

/* The window is `size`; the stride defaults to the window's height. The
 * last key, count_pad, is avgpool's alone: maxpool takes the others. */
static const cnn_layer_key_t pool_keys[] = {
    LAYER_PAIR_KEY("size", kh, kw, 1, 4096, NULL, 1),
    LAYER_INT_KEY("stride", stride, 1, 4096, "=size", 0),
    LAYER_INT_KEY("pad", pad, 0, 2048, "0", 0),
    {.name = "ceil_mode", .kind = CNN_LKEY_BOOL, .off = offsetof(cnn_layer_spec_t, ceil_mode),
     .hi = 1, .def = "false"},
    {.name = "count_pad", .kind = CNN_LKEY_BOOL, .off = offsetof(cnn_layer_spec_t, count_pad),
     .hi = 1, .def = "false"},
};

static const char *const gap_modes[] = {[GAP_MEAN] = "mean", [GAP_SUM] = "sum", NULL};

static const cnn_layer_key_t gap_keys[] = {
    {.name = "mode", .kind = CNN_LKEY_ENUM, .off = offsetof(cnn_layer_spec_t, mode), .hi = 1,
     .def = "mean", .choices = gap_modes},
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

/* `mpicnn op` flags: [0] maxpool's, [1] avgpool's */
static const cnn_layer_cli_t pool_cli[] = {
    {.usage = "--x F --x-shape N,C,H,W --size PH,PW [--stride S] [--pad P] [--ceil_mode B]\n"
              "            --out F [--dout F --dx F]\n"
              "            --stride is the window's height PH by default; --pad 0 by default,\n"
              "            added on each side; --out and --dout (N,C,OH,OW)",
     .x_dims = "N,C,H,W"},
    {.usage = "(maxpool's flags) [--count_pad B]", .x_dims = "N,C,H,W"},
};

/* What maxpool's and avgpool's tables share: functions NAME_shape,
 * NAME_forward, NAME_backward, NAME_reference, NAME_reference_backward
 * and NAME_onnx, pool_keys (the first
 * nkeys of them) and op descriptor pool_cli[cli]. */
#define POOL_OPS(NAME, nkeys_, cli_, fd_)                                                    \
    .type = #NAME, .shape = NAME##_shape, .forward = NAME##_forward,                        \
    .backward = NAME##_backward, .keys = pool_keys, .nkeys = (nkeys_),                      \
    .cli = &pool_cli[cli_], .fd = (fd_), .reference = NAME##_reference,                     \
    .reference_backward = NAME##_reference_backward, .onnx = NAME##_onnx

const cnn_layer_ops_t cnn_maxpool_ops = {
    POOL_OPS(maxpool, LAYER_COUNT(pool_keys) - 1, 0, CNN_FD_KINKED),
    .backward_after_relu = maxpool_backward_after_relu,
    .forward_after_relu = maxpool_forward_after_relu,
};

static cnn_status_t avgpool_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                 int nin, const char *out)
{
    (void)nin;
    return pool_onnx(l, g, in[0], out, 1);
}

const cnn_layer_ops_t cnn_avgpool_ops = {
    POOL_OPS(avgpool, LAYER_COUNT(pool_keys), 1, CNN_FD_LINEAR),
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
    .type = "gap", .shape = gap_shape, .forward = gap_forward, .backward = gap_backward,
    .keys = gap_keys, .nkeys = LAYER_COUNT(gap_keys), .fd = CNN_FD_LINEAR,
    .reference = gap_reference, .reference_backward = gap_reference_backward,
    .onnx = gap_onnx,
};
