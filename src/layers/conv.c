/* conv.c - 2-D convolution as im2col + GEMM.
 *
 * Parameters: W (K, C, KH, KW) as PyTorch stores them, then b (K).
 *
 * The images of a chunk are unfolded side by side into one wide column
 * matrix col (C*KH*KW, nb*OH*OW), so each pass is one large GEMM rather
 * than many small ones per image; chunks keep col under CHUNK_FLOATS.
 * OpenMP threads split the GEMMs into disjoint blocks of output (columns
 * for the forward pass and the input gradient, rows or columns of dW for
 * the weight gradient) and run a single-threaded BLAS on their block, so
 * no two threads write one element, and every element is summed in the
 * same order whatever the thread count. im2col, col2im and the layout
 * changes take whole images per thread. */
#include <math.h>
#include <string.h>

#include "layer_util.h"
#include "mpicnn/kernels.h"

/* Upper bound of the column matrix of one chunk (16 MB of floats). */
#define CHUNK_FLOATS ((size_t)4 << 20)

typedef struct {
    int C, H, W, K, KH, KW, S, P, OH, OW;
    size_t ckk, ohw;
    int chunk; /* images per chunk */
} geom_t;

static int chunk_images(size_t ckk, size_t ohw, int nmax)
{
    size_t per = ckk * ohw;
    size_t c = per ? CHUNK_FLOATS / per : (size_t)nmax;
    if (c < 1) c = 1;
    return c < (size_t)nmax ? (int)c : nmax;
}

static geom_t geom(const cnn_layer_t *l)
{
    geom_t g = {.C = l->in.c, .H = l->in.h, .W = l->in.w, .K = l->spec.filters,
                .KH = l->spec.kh, .KW = l->spec.kw, .S = l->spec.stride,
                .P = l->spec.pad, .OH = l->out.h, .OW = l->out.w};
    g.ckk = (size_t)g.C * g.KH * g.KW;
    g.ohw = (size_t)g.OH * g.OW;
    g.chunk = chunk_images(g.ckk, g.ohw, l->in.n);
    return g;
}

/* Thread t's share of n columns, in blocks of 16 for aligned stores. */
static void split(size_t n, int t, int T, size_t *lo, size_t *hi)
{
    size_t blocks = (n + 15) / 16;
    *lo = blocks * (size_t)t / (size_t)T * 16;
    *hi = blocks * (size_t)(t + 1) / (size_t)T * 16;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

static cnn_status_t conv_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                               cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    char why[160];
    if (s->filters < 1 || s->kh < 1 || s->kw < 1 || s->stride < 1 || s->pad < 0) {
        snprintf(why, sizeof why,
                 "needs filters >= 1, kernel >= 1, stride >= 1, pad >= 0 "
                 "(got filters=%d kernel=%dx%d stride=%d pad=%d)",
                 s->filters, s->kh, s->kw, s->stride, s->pad);
        return layer_shape_error(s, in, why);
    }
    int oh = cnn_conv_out_size(in.h, s->kh, s->stride, s->pad);
    int ow = cnn_conv_out_size(in.w, s->kw, s->stride, s->pad);
    if (oh < 1 || ow < 1) {
        snprintf(why, sizeof why,
                 "a %dx%d kernel with pad %d needs at least %dx%d input pixels",
                 s->kh, s->kw, s->pad, s->kh - 2 * s->pad, s->kw - 2 * s->pad);
        return layer_shape_error(s, in, why);
    }
    *out = (cnn_shape_t){in.n, s->filters, oh, ow};
    const size_t ckk = (size_t)in.c * s->kh * s->kw, ohw = (size_t)oh * ow;
    const size_t n = (size_t)chunk_images(ckk, ohw, in.n) * ohw;
    *sz = (cnn_layer_sizes_t){0};
    sz->params = (size_t)s->filters * ckk + (size_t)s->filters;
    /* a chunk's column matrix, then its output (or output gradient)
     * with the images side by side: (K, nb*OH*OW) */
    sz->shared = ckk * n + (size_t)s->filters * n;
    return CNN_OK;
}

static void conv_init(cnn_layer_t *l, uint64_t seed)
{
    /* PyTorch's default: weights and bias uniform in +-1/sqrt(fan_in)
     * (kaiming_uniform with a = sqrt(5)), so the same net starts alike */
    geom_t g = geom(l);
    const size_t np = l->sz.params;
    const float bound = 1.0f / sqrtf((float)g.ckk);
    for (size_t i = 0; i < np; i++)
        l->params[i] = bound * (2.0f * cnn_u01(cnn_hash4(seed, (uint64_t)l->index, i, 0)) - 1.0f);
}

/* x (n,C,H,W) -> y (n,K,OH,OW) */
static void conv_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                         const float *x, float *y)
{
    const geom_t g = geom(l);
    const float *w = l->params, *b = l->params + (size_t)g.K * g.ckk;
    const size_t chw = (size_t)g.C * g.H * g.W, kohw = (size_t)g.K * g.ohw;
    float *col = ctx->shared, *yb = ctx->shared + g.ckk * g.chunk * g.ohw;
    for (int b0 = 0; b0 < n; b0 += g.chunk) {
        const int nb = n - b0 < g.chunk ? n - b0 : g.chunk;
        const size_t N = (size_t)nb * g.ohw;
#pragma omp parallel num_threads(ctx->nthreads)
        {
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++)
                cnn_im2col(x + (size_t)(b0 + i) * chw, g.C, g.H, g.W, g.KH, g.KW, g.S, g.P,
                           col + (size_t)i * g.ohw, N);
            size_t c0, c1;
            split(N, omp_get_thread_num(), omp_get_num_threads(), &c0, &c1);
            /* yb[:, c0:c1] (K, N) = W (K, CKK) x col[:, c0:c1] (CKK, N) */
            if (c1 > c0)
                cnn_sgemm(0, 0, g.K, (int)(c1 - c0), (int)g.ckk, 1.0f, w, (int)g.ckk, col + c0,
                          (int)N, 0.0f, yb + c0, (int)N);
#pragma omp barrier
            /* (K, nb, OHW) -> (nb, K, OHW), adding the bias */
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++)
                for (int k = 0; k < g.K; k++) {
                    const float *src = yb + (size_t)k * N + (size_t)i * g.ohw;
                    float *dst = y + (size_t)(b0 + i) * kohw + (size_t)k * g.ohw;
                    for (size_t p = 0; p < g.ohw; p++) dst[p] = src[p] + b[k];
                }
        }
    }
}

static void conv_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, const float *y, const float *dy,
                          float *dx)
{
    const geom_t g = geom(l);
    const size_t nw = (size_t)g.K * g.ckk;
    const size_t chw = (size_t)g.C * g.H * g.W, kohw = (size_t)g.K * g.ohw;
    const float *w = l->params;
    float *dw = l->grads, *db = l->grads + nw;
    float *col = ctx->shared, *dyt = ctx->shared + g.ckk * g.chunk * g.ohw;
    /* split dW by its longer side, so both threads get real work */
    const int by_rows = (size_t)g.K >= g.ckk;
    for (int b0 = 0; b0 < n; b0 += g.chunk) {
        const int nb = n - b0 < g.chunk ? n - b0 : g.chunk;
        const size_t N = (size_t)nb * g.ohw;
#pragma omp parallel num_threads(ctx->nthreads)
        {
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            /* the columns again, and dy as (K, nb*OHW) */
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++) {
                cnn_im2col(x + (size_t)(b0 + i) * chw, g.C, g.H, g.W, g.KH, g.KW, g.S, g.P,
                           col + (size_t)i * g.ohw, N);
                for (int k = 0; k < g.K; k++)
                    memcpy(dyt + (size_t)k * N + (size_t)i * g.ohw,
                           dy + (size_t)(b0 + i) * kohw + (size_t)k * g.ohw,
                           sizeof(float) * g.ohw);
            }
            /* dW (K, CKK) += dyt (K, N) x col^T (N, CKK), one block each */
            size_t lo, hi;
            if (by_rows) {
                split((size_t)g.K, t, T, &lo, &hi);
                if (hi > lo)
                    cnn_sgemm(0, 1, (int)(hi - lo), (int)g.ckk, (int)N, 1.0f, dyt + lo * N,
                              (int)N, col, (int)N, 1.0f, dw + lo * g.ckk, (int)g.ckk);
            } else {
                split(g.ckk, t, T, &lo, &hi);
                if (hi > lo)
                    cnn_sgemm(0, 1, g.K, (int)(hi - lo), (int)N, 1.0f, dyt, (int)N,
                              col + lo * N, (int)N, 1.0f, dw + lo, (int)g.ckk);
            }
#pragma omp for schedule(static)
            for (int k = 0; k < g.K; k++) {
                const float *row = dyt + (size_t)k * N;
                float s = 0.0f;
                for (size_t p = 0; p < N; p++) s += row[p];
                db[k] += s;
            }
            if (dx) {
                /* implicit barrier above: col is free again.
                 * dcol[:, c0:c1] (CKK, N) = W^T (CKK, K) x dyt[:, c0:c1] */
                split(N, t, T, &lo, &hi);
                if (hi > lo)
                    cnn_sgemm(1, 0, (int)g.ckk, (int)(hi - lo), g.K, 1.0f, w, (int)g.ckk,
                              dyt + lo, (int)N, 0.0f, col + lo, (int)N);
#pragma omp barrier
#pragma omp for schedule(static)
                for (int i = 0; i < nb; i++) {
                    float *dxi = dx + (size_t)(b0 + i) * chw;
                    memset(dxi, 0, sizeof(float) * chw);
                    cnn_col2im(col + (size_t)i * g.ohw, N, g.C, g.H, g.W, g.KH, g.KW, g.S, g.P,
                               dxi);
                }
            }
        }
    }
}

const cnn_layer_ops_t cnn_conv_ops = {
    .type = "conv",
    .shape = conv_shape,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
};
