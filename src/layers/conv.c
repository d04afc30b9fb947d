/* conv.c - 2-D convolution as im2col + GEMM.
 *
 * Parameters: W (K, C, KH, KW) as PyTorch stores them, then b (K).
 * Each thread takes whole images, so no two threads write one output;
 * weight gradients go to per-thread partial sums that are added in thread
 * order, so a run is reproducible for a given thread count. */
#include <math.h>
#include <string.h>

#include "layer_util.h"
#include "mpicnn/kernels.h"

typedef struct {
    int C, H, W, K, KH, KW, S, P, OH, OW;
    size_t ckk, ohw;
} geom_t;

static geom_t geom(const cnn_layer_t *l)
{
    geom_t g = {.C = l->in.c, .H = l->in.h, .W = l->in.w, .K = l->spec.filters,
                .KH = l->spec.kh, .KW = l->spec.kw, .S = l->spec.stride,
                .P = l->spec.pad, .OH = l->out.h, .OW = l->out.w};
    g.ckk = (size_t)g.C * g.KH * g.KW;
    g.ohw = (size_t)g.OH * g.OW;
    return g;
}

/* 1x1, stride 1, no padding: the input already is the column matrix. */
static int is_pointwise(const geom_t *g)
{
    return g->KH == 1 && g->KW == 1 && g->S == 1 && g->P == 0;
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
    size_t ckk = (size_t)in.c * s->kh * s->kw;
    sz->params = (size_t)s->filters * ckk + (size_t)s->filters;
    sz->state = 0;
    sz->cache = 0;
    /* one column matrix + one partial weight gradient per thread */
    sz->work = ckk * (size_t)oh * ow + sz->params;
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
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * g.C * g.H * g.W;
        float *yi = y + (size_t)i * g.K * g.ohw;
        const float *col = xi;
        if (!is_pointwise(&g)) {
            float *buf = layer_work(ctx);
            cnn_im2col(xi, g.C, g.H, g.W, g.KH, g.KW, g.S, g.P, buf);
            col = buf;
        }
        for (int k = 0; k < g.K; k++) {
            float *row = yi + (size_t)k * g.ohw;
            for (size_t j = 0; j < g.ohw; j++) row[j] = b[k];
        }
        /* yi (K, OHW) += W (K, CKK) x col (CKK, OHW) */
        cnn_sgemm(0, 0, g.K, (int)g.ohw, (int)g.ckk, 1.0f, w, (int)g.ckk, col,
                  (int)g.ohw, 1.0f, yi, (int)g.ohw);
    }
}

static void conv_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, const float *y, const float *dy,
                          float *dx)
{
    const geom_t g = geom(l);
    const size_t nw = (size_t)g.K * g.ckk, np = l->sz.params;
    const size_t colsz = g.ckk * g.ohw;
    const float *w = l->params;
    const int T = ctx->nthreads;

#pragma omp parallel num_threads(T)
    {
        float *col = layer_work(ctx);
        float *part = col + colsz; /* this thread's (dW, db) */
        memset(part, 0, sizeof(float) * np);
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * g.C * g.H * g.W;
            const float *dyi = dy + (size_t)i * g.K * g.ohw;
            const float *c = xi;
            if (!is_pointwise(&g)) {
                cnn_im2col(xi, g.C, g.H, g.W, g.KH, g.KW, g.S, g.P, col);
                c = col;
            }
            /* dW (K, CKK) += dy_i (K, OHW) x col^T (OHW, CKK) */
            cnn_sgemm(0, 1, g.K, (int)g.ckk, (int)g.ohw, 1.0f, dyi, (int)g.ohw,
                      c, (int)g.ohw, 1.0f, part, (int)g.ckk);
            for (int k = 0; k < g.K; k++) {
                const float *row = dyi + (size_t)k * g.ohw;
                float s = 0.0f;
                for (size_t j = 0; j < g.ohw; j++) s += row[j];
                part[nw + k] += s;
            }
            if (dx) {
                float *dxi = dx + (size_t)i * g.C * g.H * g.W;
                if (is_pointwise(&g)) {
                    /* dx_i (C, HW) = W^T (C, K) x dy_i (K, HW) */
                    cnn_sgemm(1, 0, (int)g.ckk, (int)g.ohw, g.K, 1.0f, w,
                              (int)g.ckk, dyi, (int)g.ohw, 0.0f, dxi, (int)g.ohw);
                } else {
                    /* dcol (CKK, OHW) = W^T x dy_i, reusing the column buffer */
                    cnn_sgemm(1, 0, (int)g.ckk, (int)g.ohw, g.K, 1.0f, w,
                              (int)g.ckk, dyi, (int)g.ohw, 0.0f, col, (int)g.ohw);
                    memset(dxi, 0, sizeof(float) * (size_t)g.C * g.H * g.W);
                    cnn_col2im(col, g.C, g.H, g.W, g.KH, g.KW, g.S, g.P, dxi);
                }
            }
        }
        /* implicit barrier: every partial is complete. Sum them in thread
         * order over the team actually started (it may be < T). */
        const int team = omp_get_num_threads();
#pragma omp for schedule(static)
        for (size_t j = 0; j < np; j++) {
            float s = 0.0f;
            for (int t = 0; t < team; t++)
                s += ctx->work[(size_t)t * ctx->work_stride + colsz + j];
            l->grads[j] += s;
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
