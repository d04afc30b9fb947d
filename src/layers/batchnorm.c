/* batchnorm.c - batch normalisation per channel: over (n, h, w) for conv
 * outputs, over n for dense outputs (which are (n, D, 1, 1)).
 *
 * Parameters: gamma (C), beta (C). State: running mean (C), running
 * variance (C), updated in training as running = (1-m)*running + m*batch
 * with the unbiased batch variance (PyTorch's convention). Training mode
 * normalises with the batch statistics (biased variance), test mode with
 * the running ones. The cache keeps the mean and inverse std each channel
 * was normalised with; backward recomputes xhat from them and x. With
 * relu_out (layer.h) the layer also runs the ReLU after it: forward
 * writes max(y, 0), backward takes dy where y was > 0.
 *
 * Threads split channels, and each channel's passes run back to back in
 * one thread, so that after the first pass reads a channel (n*h*w
 * floats: 200 KB at 28x28 and batch 64) from memory the others find it
 * in L2:
 *   forward:  sum of x; sum of squared deviations from the mean (L2);
 *             y = gamma xhat + beta (L2; writes y).
 *   backward: sums of dy and dy * xhat (reads dy and x); dx (L2; writes
 *             dx).
 * Each sum runs in fixed float lanes folded into double (see "sums in
 * fixed lanes" below), in an order that depends on the shape alone.
 *
 * With sync = true and a reduction hook in the context (the trainer sets
 * one on more than one rank), training takes its statistics over the
 * global batch: one sum of per-channel moments over the ranks in
 * forward, one of the two sums dx needs in backward. The sums of all
 * channels must then be complete before the reduction, so the pass after
 * it reads x (forward) or dy and x (backward) from memory again. Without
 * either, each rank normalises with its own images' statistics. */
#include <math.h>
#include <string.h>

#include "kernels/simd.h"
#include "layer_util.h"

/* With sync, the statistics of the global batch come from per-channel
 * sums over the ranks (ctx->allreduce_sum): BN_SUMS(C) doubles, the sums
 * (C), the sums of squares (C) and the count. The shared scratch holds
 * two such blocks: this rank's sums and their total. */
#define BN_SUMS(C) (2 * (size_t)(C) + 1)

/* What the kernels know of one channel. */
typedef struct {
    float mean, is;    /* normalised with: xhat = (x - mean) * is */
    float gamma, beta; /* the output before a ReLU: gamma xhat + beta */
    int relu;          /* 1: the layer ends with a ReLU (relu_out) */
} bn_chan_t;

/* xhat, and the output before a ReLU, of x in channel p, in the one
 * sequence of float operations that forward and backward share: backward
 * recomputes forward's values to the bit. For floats and for vectors of
 * them (v8). */
#define BN_XHAT(x, p) (((x) - (p).mean) * (p).is)
#define BN_OUT(xhat, p) ((p).gamma * (xhat) + (p).beta)

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
    /* the mean and inverse std each channel was normalised with (C, C):
     * backward recomputes xhat from them and x */
    sz->cache = 2 * (size_t)in.c;
    /* sync: two blocks of BN_SUMS doubles */
    if (s->sync) sz->shared = 2 * 2 * BN_SUMS(in.c);
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

static int bn_synced(const cnn_layer_t *l, const cnn_ctx_t *ctx)
{
    return ctx->train && l->spec.sync && ctx->allreduce_sum;
}

/* ---- per-channel sums in fixed lanes --------------------------------
 * A channel's sums run in BN_LANES float lanes: value j of an image's row
 * (hw values) goes to lane j % BN_LANES, but for the row's last hw % 8
 * values (bn_lanes_add_tail). After at most BN_TERMS values a
 * float lane is added into its double lane and restarts from 0, so no
 * float sum holds more than BN_TERMS terms; at the end the double lanes
 * are added in lane order. The order depends on the shape alone (threads
 * split channels, never one channel's values), and the lanes, 4 vectors
 * of 8, are independent chains that keep the adders busy where one
 * accumulator would wait on each add. */
#define BN_VECS 4
#define BN_LANES (8 * BN_VECS)
#define BN_TERMS 32

typedef double v8d __attribute__((vector_size(64)));

/* What a lane sum adds up, per value: x; (x - mean)^2; dy and dy * xhat,
 * xhat recomputed from x; the same with dy taken as 0 where a ReLU at the
 * output (relu_out) gave 0, as its backward pass would have. */
enum { BN_SUM_X, BN_SUM_SQDEV, BN_SUM_GRAD, BN_SUM_GRAD_RELU };

/* The terms of 8 values a (x, or dy) and b (x) of channel p into u and
 * v (BN_SUM_X and BN_SUM_SQDEV use u only). */
INLINE void bn_lanes_terms(int op, v8 a, v8 b, const bn_chan_t *p, v8 *u, v8 *v)
{
    v8 tu = a, tv = {0};
    if (op == BN_SUM_SQDEV) {
        const v8 d = a - p->mean;
        tu = d * d;
    } else if (op >= BN_SUM_GRAD) {
        const v8 h = BN_XHAT(b, *p);
        if (op == BN_SUM_GRAD_RELU) tu = (v8)((v8i)a & (BN_OUT(h, *p) > 0.0f));
        tv = tu * h;
    }
    *u = tu;
    *v = tv;
}

/* Float lanes fu, fv into the double lanes du, dv; the float lanes restart
 * from 0. */
INLINE void bn_lanes_fold(v8 *fu, v8 *fv, v8d *du, v8d *dv)
{
#pragma GCC unroll 8
    for (int k = 0; k < BN_VECS; k++) {
        du[k] += __builtin_convertvector(fu[k], v8d);
        dv[k] += __builtin_convertvector(fv[k], v8d);
        fu[k] = fv[k] = (v8){0};
    }
}

/* Adds BN_LANES values from a and b (op's inputs) to the lanes fu, fv. */
INLINE void bn_lanes_add(int op, const float *a, const float *b, const bn_chan_t *p, v8 *fu,
                         v8 *fv)
{
#pragma GCC unroll 8
    for (int k = 0; k < BN_VECS; k++) {
        const v8 vb = op >= BN_SUM_GRAD ? *(const v8 *)(b + 8 * k) : (v8){0};
        v8 u, v;
        bn_lanes_terms(op, *(const v8 *)(a + 8 * k), vb, p, &u, &v);
        fu[k] += u;
        fv[k] += v;
    }
}

/* Adds the len < BN_LANES values left at the end of a row of hw values
 * to the lanes: whole vectors of 8 as bn_lanes_add, the last r < 8 values
 * to the last r lanes of the next vector, loaded as the 8 values that end
 * the row (if the row has 8) with the ones before masked off, else to its
 * first r lanes one by one. */
INLINE void bn_lanes_add_tail(int op, const float *a, const float *b, int len, size_t hw,
                              const bn_chan_t *p, v8 *fu, v8 *fv)
{
    static const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    const int whole = len / 8, r = len % 8;
#pragma GCC unroll 8
    for (int k = 0; k < BN_VECS; k++) {
        if (k > whole || (k == whole && r == 0)) break;
        v8 va = {0}, vb = {0}, u, v;
        v8i on = lane >= 0;
        if (k < whole) {
            va = *(const v8 *)(a + 8 * k);
            if (op >= BN_SUM_GRAD) vb = *(const v8 *)(b + 8 * k);
        } else if (hw >= 8) {
            va = *(const v8 *)(a + len - 8);
            if (op >= BN_SUM_GRAD) vb = *(const v8 *)(b + len - 8);
            on = lane >= 8 - r;
        } else {
            for (int l = 0; l < r; l++) {
                va[l] = a[8 * k + l];
                if (op >= BN_SUM_GRAD) vb[l] = b[8 * k + l];
            }
            on = lane < r;
        }
        bn_lanes_terms(op, va, vb, p, &u, &v);
        fu[k] += (v8)((v8i)u & on); /* the values outside give 0 */
        fv[k] += (v8)((v8i)v & on);
    }
}

/* The sums of op's terms over channel c of a (and b: the same layout),
 * n images of (C, H, W) with hw = H*W and chw = C*H*W: out[0] the sum of
 * u, out[1] that of v. */
INLINE void bn_lane_sums(int op, const float *a, const float *b, int n, int c, size_t hw,
                         size_t chw, const bn_chan_t *p, double out[2])
{
    v8 fu[BN_VECS] = {{0}}, fv[BN_VECS] = {{0}};
    v8d du[BN_VECS] = {{0}}, dv[BN_VECS] = {{0}};
    int terms = 0; /* values each float lane took since it was folded */
    for (int i = 0; i < n; i++) {
        const size_t o = (size_t)i * chw + (size_t)c * hw;
        const float *ar = a + o, *br = b ? b + o : NULL;
        size_t j = 0;
        for (; j + BN_LANES <= hw; j += BN_LANES) {
            bn_lanes_add(op, ar + j, br ? br + j : NULL, p, fu, fv);
            if (++terms == BN_TERMS) bn_lanes_fold(fu, fv, du, dv), terms = 0;
        }
        if (j < hw) {
            bn_lanes_add_tail(op, ar + j, br ? br + j : NULL, (int)(hw - j), hw, p, fu, fv);
            if (++terms == BN_TERMS) bn_lanes_fold(fu, fv, du, dv), terms = 0;
        }
    }
    bn_lanes_fold(fu, fv, du, dv);
    out[0] = out[1] = 0.0;
    for (int l = 0; l < BN_LANES; l++) {
        out[0] += du[l / 8][l % 8];
        out[1] += dv[l / 8][l % 8];
    }
}

/* Channel c of x (n,C,H,W), m = n*h*w > 0 values: their sum and the sum
 * M2 of their squared deviations from their mean, in two passes (no
 * cancellation). The second pass squares x - mf in float, mf the mean
 * rounded to float (the one the normalisation uses), and corrects for its
 * distance d from the exact mean: sum (x - mf)^2 = M2 + m d^2. */
CLONES static void bn_moments(const float *x, int n, int c, size_t hw, size_t chw,
                              double *sum, double *sq)
{
    double s[2], q[2];
    bn_chan_t p = {.mean = 0.0f};
    bn_lane_sums(BN_SUM_X, x, NULL, n, c, hw, chw, &p, s);
    const double m = (double)((size_t)n * hw);
    const float mf = (float)(s[0] / m);
    p.mean = mf;
    bn_lane_sums(BN_SUM_SQDEV, x, NULL, n, c, hw, chw, &p, q);
    const double md = s[0] - m * (double)mf; /* m d */
    const double m2 = q[0] - md * (md / m);
    *sum = s[0];
    *sq = m2 > 0.0 ? m2 : 0.0;
}

/* Sums `own` (BN_SUMS(C) doubles) over the ranks into `all`. If the
 * reduction fails, `all` gets this rank's own sums: the layer goes on
 * with local statistics and the hook's owner fails the step. */
static const double *bn_allreduce(const cnn_ctx_t *ctx, const double *own, double *all,
                                  int C)
{
    memcpy(all, own, sizeof(double) * BN_SUMS(C));
    if (ctx->allreduce_sum(ctx->allreduce_arg, all, BN_SUMS(C)) != CNN_OK)
        memcpy(all, own, sizeof(double) * BN_SUMS(C));
    return all;
}

/* The per-channel sums of x (n,C,H,W) over the ranks. A rank adds its sum
 * of squares as its squared deviations plus sum * mean, so the one
 * cancellation left is M2 = Q - S * mean in bn_global_stats: its error
 * in double, about 1e-16 mean^2 / var relative to the variance, stays far
 * below that of the float normalisation x - mean that follows. */
static const double *bn_global_moments(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                                       const float *x)
{
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w, chw = (size_t)C * hw;
    const size_t m = (size_t)n * hw;
    double *own = (double *)ctx->shared, *all = own + BN_SUMS(C);
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int c = 0; c < C; c++) {
        double s = 0.0, s2 = 0.0;
        if (m > 0) bn_moments(x, n, c, hw, chw, &s, &s2);
        own[c] = s;
        own[C + c] = m > 0 ? s2 + s * (s / (double)m) : 0.0;
    }
    own[2 * C] = (double)m;
    return bn_allreduce(ctx, own, all, C);
}

/* Channel c's mean, biased variance (to normalise with) and unbiased
 * variance (for the running statistics) from the global sums g. Returns 0
 * if the global batch is empty. */
static int bn_global_stats(const double *g, int C, int c, double *mean, double *var,
                           double *unbiased)
{
    const double m = g[2 * C];
    if (!(m > 0.0)) return 0;
    *mean = g[c] / m;
    double m2 = g[C + c] - g[c] * *mean;
    if (m2 < 0.0) m2 = 0.0;
    *var = m2 / m;
    *unbiased = m > 1.0 ? m2 / (m - 1.0) : m2;
    return 1;
}

/* Channel c's mean and variance to normalise with: in training those of
 * the batch (from the global sums g, or from this rank's x (n,C,H,W)),
 * which also update the running statistics; in test mode the running
 * ones. */
static void bn_channel_stats(cnn_layer_t *l, const cnn_ctx_t *ctx, const double *g, int n,
                             const float *x, int c, float *mean, float *var)
{
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w, m = (size_t)n * hw;
    float *rmean = l->state, *rvar = l->state + C;
    const float mom = l->spec.momentum;
    double mu = 0.0, v = 0.0, unbiased = 0.0;
    int batch = 0;
    if (g) {
        batch = bn_global_stats(g, C, c, &mu, &v, &unbiased);
    } else if (ctx->train && m > 0) {
        double s, s2;
        bn_moments(x, n, c, hw, (size_t)C * hw, &s, &s2);
        mu = s / (double)m;
        v = s2 / (double)m;
        unbiased = m > 1 ? s2 / (double)(m - 1) : s2;
        batch = 1;
    }
    if (batch) {
        *mean = (float)mu;
        *var = (float)v;
        rmean[c] = (1.0f - mom) * rmean[c] + mom * *mean;
        rvar[c] = (1.0f - mom) * rvar[c] + mom * (float)unbiased;
    } else {
        *mean = rmean[c];
        *var = rvar[c];
    }
}

/* y = gamma xhat + beta over channel c of x, y (n,C,H,W), then the ReLU
 * with p.relu (as relu.c writes it: x > 0 ? x : 0) */
CLONES static void bn_normalise(const float *x, float *y, int n, int c, size_t hw, size_t chw,
                                bn_chan_t p)
{
    for (int i = 0; i < n; i++) {
        const float *xp = x + i * chw + c * hw;
        float *yp = y + i * chw + c * hw;
        if (p.relu) {
            for (size_t j = 0; j < hw; j++) {
                const float o = BN_OUT(BN_XHAT(xp[j], p), p);
                yp[j] = o > 0.0f ? o : 0.0f;
            }
        } else {
            for (size_t j = 0; j < hw; j++) yp[j] = BN_OUT(BN_XHAT(xp[j], p), p);
        }
    }
}

/* Channel c of layer l as the kernels see it. */
static bn_chan_t bn_chan(const cnn_layer_t *l, int c)
{
    const int C = l->in.c;
    return (bn_chan_t){.mean = l->cache[c], .is = l->cache[C + c], .gamma = l->params[c],
                       .beta = l->params[C + c], .relu = l->relu_out};
}

/* x, y (n,C,H,W); the cache gets each channel's mean and inverse std */
static void bn_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                       const float *x, float *y)
{
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w, chw = (size_t)C * hw;
    float *mean = l->cache, *invstd = l->cache + C;
    const double *g = bn_synced(l, ctx) ? bn_global_moments(l, ctx, n, x) : NULL;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int c = 0; c < C; c++) {
        float var;
        bn_channel_stats(l, ctx, g, n, x, c, &mean[c], &var);
        invstd[c] = 1.0f / sqrtf(var + l->spec.eps);
        bn_normalise(x, y, n, c, hw, chw, bn_chan(l, c));
    }
}

/* Channel c's sums of dy and of dy * xhat over this rank's n images, xhat
 * recomputed from x (n,C,H,W); with p.relu dy is 0 where the output was. */
CLONES static void bn_grad_sums(const float *dy, const float *x, int n, int c, size_t hw,
                                size_t chw, bn_chan_t p, double *sdy_out, double *sdyx_out)
{
    double g[2];
    if (p.relu)
        bn_lane_sums(BN_SUM_GRAD_RELU, dy, x, n, c, hw, chw, &p, g);
    else
        bn_lane_sums(BN_SUM_GRAD, dy, x, n, c, hw, chw, &p, g);
    *sdy_out = g[0];
    *sdyx_out = g[1];
}

/* dx of channel c: gamma invstd (dy - a - xhat b), a and b the batch
 * means of dy and of dy * xhat (0 in test mode: the statistics do not
 * depend on x); with p.relu dy is 0 where the output was (relu.c's
 * backward: x > 0 ? dy : 0). */
CLONES static void bn_channel_dx(const float *dy, const float *x, int n, int c, size_t hw,
                                 size_t chw, bn_chan_t p, float a, float b, float *dx)
{
    const float g = p.gamma * p.is;
    for (int i = 0; i < n; i++) {
        const float *dp = dy + i * chw + c * hw, *xp = x + i * chw + c * hw;
        float *op = dx + i * chw + c * hw;
        if (p.relu) {
            for (size_t j = 0; j < hw; j++) {
                const float h = BN_XHAT(xp[j], p), d = dp[j];
                op[j] = g * ((BN_OUT(h, p) > 0.0f ? d : 0.0f) - a - h * b);
            }
        } else {
            for (size_t j = 0; j < hw; j++) op[j] = g * (dp[j] - a - BN_XHAT(xp[j], p) * b);
        }
    }
}

/* The backward pass of a synchronised layer in training: dgamma and dbeta
 * get this rank's sums (the gradient sum of the trainer adds the other
 * ranks'), dx the means of dy and dy * xhat over the global batch, so
 * that it is the gradient of the global batch's loss. */
static void bn_backward_synced(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, const float *x,
                               const float *dy, float *dx)
{
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w, chw = (size_t)C * hw;
    float *dgamma = l->grads, *dbeta = l->grads + C;
    double *own = (double *)ctx->shared, *all = own + BN_SUMS(C);
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int c = 0; c < C; c++) {
        bn_grad_sums(dy, x, n, c, hw, chw, bn_chan(l, c), &own[c], &own[C + c]);
        dgamma[c] += (float)own[C + c];
        dbeta[c] += (float)own[c];
    }
    /* no rank needs dx of a first layer: none reduces */
    if (!dx) return;
    own[2 * C] = (double)((size_t)n * hw);
    const double *g = bn_allreduce(ctx, own, all, C);
    const double m = g[2 * C];
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int c = 0; c < C; c++) {
        const float a = m > 0.0 ? (float)(g[c] / m) : 0.0f;
        const float b = m > 0.0 ? (float)(g[C + c] / m) : 0.0f;
        bn_channel_dx(dy, x, n, c, hw, chw, bn_chan(l, c), a, b, dx);
    }
}

/* x, y, dy, dx (n,C,H,W); xhat comes from x and the cached statistics */
static void bn_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                        const float *x, const float *y, const float *dy,
                        float *dx)
{
    if (bn_synced(l, ctx)) {
        bn_backward_synced(l, ctx, n, x, dy, dx);
        return;
    }
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w, chw = (size_t)C * hw;
    const size_t m = (size_t)n * hw;
    float *dgamma = l->grads, *dbeta = l->grads + C;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int c = 0; c < C; c++) {
        const bn_chan_t p = bn_chan(l, c);
        double sdy, sdyx;
        bn_grad_sums(dy, x, n, c, hw, chw, p, &sdy, &sdyx);
        dgamma[c] += (float)sdyx;
        dbeta[c] += (float)sdy;
        if (!dx) continue;
        /* training: the batch statistics depend on x too */
        const float a = ctx->train && m > 0 ? (float)(sdy / (double)m) : 0.0f;
        const float b = ctx->train && m > 0 ? (float)(sdyx / (double)m) : 0.0f;
        bn_channel_dx(dy, x, n, c, hw, chw, p, a, b, dx);
    }
}

/* ---- the table ------------------------------------------------------ */

static const cnn_layer_key_t bn_keys[] = {
    LAYER_FLOAT_KEY("eps", eps, 0, 1, HUGE_VAL, 0, "1e-05", 0),
    LAYER_FLOAT_KEY("momentum", momentum, 0, 1, 1, 0, "0.1", 0),
    {"sync", CNN_LKEY_BOOL, offsetof(cnn_layer_spec_t, sync), 0, 0, 1, 0, 0, "false", 0, NULL},
};

/* gamma, beta (params) and the running statistics (state), as
 * nn.BatchNorm names them */
static const cnn_tensor_desc_t bn_tensors[] = {
    {.name = "weight", .flag = "--gamma", .grad_flag = "--dgamma", .note = "the channels of"},
    {.name = "bias", .flag = "--beta", .grad_flag = "--dbeta", .note = "the channels of"},
    {.name = "running_mean", .in_state = 1, .flag = "--mean", .note = "the channels of"},
    {.name = "running_var", .in_state = 1, .flag = "--var", .note = "the channels of"},
};

static int bn_tensor_dims(const cnn_layer_t *l, int i, size_t dims[4])
{
    dims[0] = (size_t)l->in.c;
    return 1;
}

/* y = gamma (x - mean) / sqrt(var + eps) + beta in double, per channel:
 * training mode takes mean and (biased) var of the batch, test mode the
 * running ones of state (mean (C), then var (C)) */
static void bn_reference(const cnn_ref_args_t *r, double *y)
{
    const cnn_shape_t in = r->in;
    const double *x = r->x, *p = r->params, *state = r->state;
    const int C = in.c, train = r->train;
    const size_t hw = (size_t)in.h * in.w;
    for (int c = 0; c < C; c++) {
        double mean = state[c], var = state[C + c];
        if (train) {
            double s1 = 0.0, s2 = 0.0;
            for (int n = 0; n < in.n; n++)
                for (size_t j = 0; j < hw; j++) s1 += x[((size_t)n * C + c) * hw + j];
            mean = s1 / (double)(in.n * hw);
            for (int n = 0; n < in.n; n++)
                for (size_t j = 0; j < hw; j++) {
                    double d = x[((size_t)n * C + c) * hw + j] - mean;
                    s2 += d * d;
                }
            var = s2 / (double)(in.n * hw);
        }
        for (int n = 0; n < in.n; n++)
            for (size_t j = 0; j < hw; j++) {
                size_t i = ((size_t)n * C + c) * hw + j;
                y[i] = p[c] * (x[i] - mean) / sqrt(var + r->spec->eps) + p[C + c];
            }
    }
}

/* The gradients of bn_reference in double, per channel, with
 * xhat = (x - mean) / sqrt(var + eps): dgamma += sum dy xhat, dbeta +=
 * sum dy; dx = gamma / sqrt(var + eps) (dy - a - xhat b), where in
 * training a and b are the batch means of dy and dy xhat (the batch
 * statistics depend on x), in test mode 0. */
static void bn_reference_backward(const cnn_ref_args_t *r, const double *y,
                                  const double *dy, double *dx, double *dp)
{
    const cnn_shape_t in = r->in;
    const double *x = r->x, *p = r->params, *state = r->state;
    const int C = in.c;
    const size_t hw = (size_t)in.h * in.w, m = (size_t)in.n * hw;
    (void)y;
    for (int c = 0; c < C; c++) {
        double mean = state ? state[c] : 0, var = state ? state[C + c] : 1;
        if (r->train) {
            double s1 = 0.0, s2 = 0.0;
            for (int n = 0; n < in.n; n++)
                for (size_t j = 0; j < hw; j++) s1 += x[((size_t)n * C + c) * hw + j];
            mean = s1 / (double)m;
            for (int n = 0; n < in.n; n++)
                for (size_t j = 0; j < hw; j++) {
                    double d = x[((size_t)n * C + c) * hw + j] - mean;
                    s2 += d * d;
                }
            var = s2 / (double)m;
        }
        const double is = 1 / sqrt(var + r->spec->eps);
        double sdy = 0.0, sdyx = 0.0;
        for (int n = 0; n < in.n; n++)
            for (size_t j = 0; j < hw; j++) {
                const size_t i = ((size_t)n * C + c) * hw + j;
                sdy += dy[i];
                sdyx += dy[i] * (x[i] - mean) * is;
            }
        if (dp) dp[c] += sdyx, dp[C + c] += sdy;
        if (!dx) continue;
        const double a = r->train ? sdy / (double)m : 0, b = r->train ? sdyx / (double)m : 0;
        for (int n = 0; n < in.n; n++)
            for (size_t j = 0; j < hw; j++) {
                const size_t i = ((size_t)n * C + c) * hw + j;
                dx[i] = p[c] * is * (dy[i] - a - (x[i] - mean) * is * b);
            }
    }
}

static const cnn_layer_cli_t bn_cli = {
    .usage = "--x F --x-shape ... --gamma F --beta F --mode train|test [--mean F --var F] "
             "[--eps E]\n"
             "            --out F [--dout F --dx F --dgamma F --dbeta F]",
    .mode = 1,
};

/* BatchNormalization in inference mode: the running statistics, whose
 * variance is the one mpicnn divides by (sqrt(var + eps)), as ONNX. */
static cnn_status_t bn_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                            const char *out)
{
    const char *x[5] = {in[0]};
    (void)nin;
    for (int i = 0; i < 4; i++) CNN_TRY(cnn_onnx_param(g, l, i, &x[1 + i]));
    const cnn_onnx_attr_t eps = CNN_ONNX_FLOAT("epsilon", l->spec.eps);
    return cnn_onnx_node(g, "BatchNormalization", x, 5, out, &eps, 1);
}

/* Test mode on channel c: y = a x + b with a = gamma / sqrt(var + eps)
 * and b = beta - mean a, from the running statistics. */
static void bn_test_affine(const cnn_layer_t *l, int c, float *a, float *b)
{
    const int C = l->in.c;
    const float is = 1.0f / sqrtf(l->state[C + c] + l->spec.eps);
    *a = l->params[c] * is;
    *b = l->params[C + c] - l->state[c] * *a;
}

const cnn_layer_ops_t cnn_batchnorm_ops = {
    .type = "batchnorm",
    .shape = bn_shape,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .relu_out = 1,
    .test_affine = bn_test_affine,
    .keys = bn_keys,
    .nkeys = LAYER_COUNT(bn_keys),
    .tensors = bn_tensors,
    .ntensors = LAYER_COUNT(bn_tensors),
    .tensor_dims = bn_tensor_dims,
    .cli = &bn_cli,
    .fd = CNN_FD_SMOOTH,
    .reference = bn_reference,
    .onnx = bn_onnx,
    .reference_backward = bn_reference_backward,
};
