/* batchnorm.c - batch normalisation per channel: over (n, h, w) for conv
 * outputs, over n for dense outputs (which are (n, D, 1, 1)).
 *
 * Parameters: gamma (C), beta (C). State: running mean (C), running
 * variance (C), updated in training as running = (1-m)*running + m*batch
 * with the unbiased batch variance (PyTorch's convention). Training mode
 * normalises with the batch statistics (biased variance), test mode with
 * the running ones. Threads split channels; sums are in double. */
#include <math.h>
#include <string.h>

#include "layer_util.h"

static cnn_status_t bn_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                             cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    if (!(s->eps > 0.0f) || !(s->momentum > 0.0f && s->momentum <= 1.0f)) {
        char why[128];
        snprintf(why, sizeof why, "needs eps > 0 and 0 < momentum <= 1 (got %g, %g)",
                 (double)s->eps, (double)s->momentum);
        return layer_shape_error(s, in, why);
    }
    *out = in;
    *sz = (cnn_layer_sizes_t){0};
    sz->params = 2 * (size_t)in.c;
    sz->state = 2 * (size_t)in.c;
    /* xhat (n,C,H,W), then the inverse std used per channel (C) */
    sz->cache = (size_t)in.n * cnn_shape_image(in) + (size_t)in.c;
    return CNN_OK;
}

static void bn_init(cnn_layer_t *l, uint64_t seed)
{
    const int C = l->in.c;
    for (int c = 0; c < C; c++) {
        l->params[c] = 1.0f;     /* gamma */
        l->params[C + c] = 0.0f; /* beta */
        l->state[c] = 0.0f;      /* running mean */
        l->state[C + c] = 1.0f;  /* running variance */
    }
}

/* x, y (n,C,H,W) */
static void bn_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                       const float *x, float *y)
{
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w, chw = (size_t)C * hw;
    const size_t m = (size_t)n * hw;
    const float *gamma = l->params, *beta = l->params + C;
    float *rmean = l->state, *rvar = l->state + C;
    float *xhat = l->cache, *invstd = l->cache + (size_t)l->in.n * chw;
    const float eps = l->spec.eps, mom = l->spec.momentum;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int c = 0; c < C; c++) {
        float mean, var;
        if (ctx->train && m > 0) {
            double s = 0.0, s2 = 0.0;
            for (int i = 0; i < n; i++) {
                const float *xp = x + i * chw + c * hw;
                for (size_t j = 0; j < hw; j++) s += xp[j];
            }
            const double mu = s / (double)m;
            for (int i = 0; i < n; i++) {
                const float *xp = x + i * chw + c * hw;
                for (size_t j = 0; j < hw; j++) {
                    const double d = xp[j] - mu;
                    s2 += d * d;
                }
            }
            mean = (float)mu;
            var = (float)(s2 / (double)m);
            const double unbiased = m > 1 ? s2 / (double)(m - 1) : s2;
            rmean[c] = (1.0f - mom) * rmean[c] + mom * mean;
            rvar[c] = (1.0f - mom) * rvar[c] + mom * (float)unbiased;
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        const float is = 1.0f / sqrtf(var + eps);
        invstd[c] = is;
        for (int i = 0; i < n; i++) {
            const float *xp = x + i * chw + c * hw;
            float *hp = xhat + i * chw + c * hw;
            float *yp = y + i * chw + c * hw;
            for (size_t j = 0; j < hw; j++) {
                hp[j] = (xp[j] - mean) * is;
                yp[j] = gamma[c] * hp[j] + beta[c];
            }
        }
    }
}

static void bn_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                        const float *x, const float *y, const float *dy,
                        float *dx)
{
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w, chw = (size_t)C * hw;
    const size_t m = (size_t)n * hw;
    const float *gamma = l->params;
    float *dgamma = l->grads, *dbeta = l->grads + C;
    const float *xhat = l->cache, *invstd = l->cache + (size_t)l->in.n * chw;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int i = 0; i < n; i++) {
            const float *dp = dy + i * chw + c * hw;
            const float *hp = xhat + i * chw + c * hw;
            for (size_t j = 0; j < hw; j++) {
                sdy += dp[j];
                sdyx += (double)dp[j] * hp[j];
            }
        }
        dgamma[c] += (float)sdyx;
        dbeta[c] += (float)sdy;
        if (!dx) continue;
        const float g = gamma[c] * invstd[c];
        /* training: the batch statistics depend on x too */
        const float a = ctx->train && m > 0 ? (float)(sdy / (double)m) : 0.0f;
        const float b = ctx->train && m > 0 ? (float)(sdyx / (double)m) : 0.0f;
        for (int i = 0; i < n; i++) {
            const float *dp = dy + i * chw + c * hw;
            const float *hp = xhat + i * chw + c * hw;
            float *op = dx + i * chw + c * hw;
            for (size_t j = 0; j < hw; j++) op[j] = g * (dp[j] - a - hp[j] * b);
        }
    }
}

const cnn_layer_ops_t cnn_batchnorm_ops = {
    .type = "batchnorm",
    .shape = bn_shape,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
};
