/* conv_stride2.c - the conv engine for 3x3 stride-2 layers.
 *
 * ResNet's downsampling layers (16 -> 32 channels at 32x32 or 28x28,
 * 32 -> 64 at 16x16 or 14x14) are products with the columns of im2col,
 * which for stride 2 are nine shifted views of four smaller planes: tap
 * (ky, kx) of output (oy, ox) reads the padded input at (2 oy + ky,
 * 2 ox + kx), which is the polyphase plane of rows of parity ky % 2 and
 * columns of parity kx % 2 (cnn_polyphase_split) at (oy + ky/2,
 * ox + kx/2). The planes of a group of G images lie side by side, in rows
 * of RW = G QW pixels (QW = OW + (KW-1)/2 per image); then that view is
 * a flat run of the planes that starts at (ky/2) RW + kx/2, and the
 * outputs, laid out in the same rows (each image's OW outputs and
 * (KW-1)/2 columns that are not outputs), are a sum of one product per
 * tap, on the planes as they are:
 *   forward:  y  (K, P)      = b + sum_t W_t (K, C) x Q_t (C, P)
 *   backward: dW_t (K, C)   += dy (K, P) x Q_t^T,  db (K) += dy's row sums
 *             dQ_t (C, P)   += W_t^T (C, K) x dy,  dx = the merge of dQ
 * with P = OH RW (rounded up to whole vectors), Q_t the planes of tap t
 * from its offset, W_t the tap's weights and dy zero outside the outputs.
 * The products run on the blocked kernels of kernels/smallgemm.c (dW of
 * layers of few channels on the BLAS): no column matrix (9/4 of the
 * image) is written, and a group's planes and outputs stay in the
 * thread's cache through the taps. The price is the columns that are
 * not outputs: 1 in OW + 1.
 *
 * Threads take whole groups in both passes (groups depend on the batch
 * planned for, not on the threads). dW and db are summed per group into
 * slots of the shared scratch, the slots added in group order
 * (cnn_conv_add_slots) and the sum moved to the gradient, in (K, C, KH,
 * KW) order, at the end. Every element is summed in the same order
 * whatever the thread count: the taps in order, and within a tap the
 * kernels' fixed order. Nothing is kept from the forward pass: the
 * backward pass splits the images again. */
#include <string.h>

#include "conv_engine.h"
#include "mpicnn/kernels.h"

/* Images per group are the fewest (a power of two, so that batches of
 * a power of two split into whole groups) whose outputs make product rows
 * of at least GROUP_PIXELS floats, and at most the planned batch: dW's
 * kernel sums a row into vector lanes and then the lanes, which for one
 * image's short rows (72 floats at 8x8 outputs) cost more than the sums.
 * The forward and input-gradient products take BLOCK_COLS columns at a
 * time through all taps, so that the block's outputs stay in L1/L2
 * between taps. */
#define GROUP_PIXELS 768
#define BLOCK_COLS 192

/* dW of layers with at most this many input channels takes the BLAS:
 * the blocked kernel takes the channels in blocks of 4 (16 lanes) or 3
 * (8 lanes). With 16 channels (ResNet-20's first stride-2 layer) it takes
 * 2.0-2.3 ms of CPU time backward against the BLAS's 3.35-3.40 at 28x28
 * and 2.7-2.9 against 4.2-4.3 at 32x32 (bench/mpicnn-bench --resnet-convs
 * --cpu-time, 3 rounds, AVX-512 and the BLAS's Haswell kernels). */
#define BLAS_DW_C 8

/* The sum of v[0..n), in 16 lanes and then the lanes: db, when dW takes
 * the BLAS */
static float row_sum(const float *v, size_t n)
{
    float acc[16] = {0};
    size_t p = 0;
    for (; p + 16 <= n; p += 16)
        for (int j = 0; j < 16; j++) acc[j] += v[p + j];
    for (int j = 0; p < n; p++, j++) acc[j] += v[p];
    float sum = 0.0f;
    for (int j = 0; j < 16; j++) sum += acc[j];
    return sum;
}

static size_t lines(size_t n)
{
    return (n + 15) / 16 * 16;
}

/* The polyphase layout of a layer. A group's images lie side by side:
 * row i of plane (phase, c) holds row i of that plane of each image, QW
 * floats each, RW = G QW floats in all; the products' columns are laid
 * out the same, image g's output (oy, ox) at oy RW + g QW + ox (the
 * columns ox >= OW are not outputs, and are ignored). */
typedef struct {
    int QH, QW, G; /* plane rows and row length; images per group */
    size_t RW;     /* G QW: a group's row */
    size_t P;      /* product columns: OH rows, whole vectors */
    size_t cs, ps; /* floats from plane to plane (channel), phase to phase */
    size_t taps;   /* KH*KW */
} s2_layout_t;

static s2_layout_t s2_layout(const conv_geom_t *g, int nmax)
{
    s2_layout_t s = {.QH = g->OH + (g->KH - 1) / 2, .QW = g->OW + (g->KW - 1) / 2, .G = 1};
    while ((size_t)s.G * g->OH * s.QW < GROUP_PIXELS && 2 * s.G <= nmax) s.G *= 2;
    s.RW = (size_t)s.G * s.QW;
    s.P = lines((size_t)g->OH * s.RW);
    /* the last tap's columns, from its offset, stay inside the plane */
    const size_t reach = (size_t)((g->KH - 1) / 2) * s.RW + (size_t)((g->KW - 1) / 2);
    s.cs = lines(s.P + reach);
    s.ps = (size_t)g->C * s.cs;
    s.taps = (size_t)g->KH * g->KW;
    return s;
}

/* Q_t: the row of plane (ky % 2, kx % 2) of channel 0 in q, from the
 * tap's offset */
static float *tap_planes(const s2_layout_t *s, float *q, int ky, int kx)
{
    return q + (size_t)(2 * (ky % 2) + kx % 2) * s->ps + (size_t)(ky / 2) * s->RW +
           (size_t)(kx / 2);
}

/* The shared scratch: W by taps (taps, K, C), the same transposed (taps,
 * C, K), the sum of the slots, then the per-group slots of dW and db. */
static size_t wtaps_floats(const conv_geom_t *g)
{
    return lines((size_t)g->K * g->ckk);
}

static size_t slot_floats(const conv_geom_t *g)
{
    return cnn_conv_slot_floats(g->K, g->ckk);
}

static size_t slots_at(const conv_geom_t *g)
{
    return 2 * wtaps_floats(g) + slot_floats(g);
}

static void s2_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz)
{
    const s2_layout_t s = s2_layout(g, nmax);
    const int groups = (nmax + s.G - 1) / s.G;
    /* a group's planes (4 C rows), and its outputs (K, P) */
    sz->work = 4 * s.ps + (size_t)g->K * s.P;
    sz->shared =
        slots_at(g) + slot_floats(g) * (size_t)cnn_conv_chunk_images(slot_floats(g), groups);
}

/* wt (taps, K, C) = W (K, C, taps) by taps, and with wtt, wtt (taps, C,
 * K): the left matrices of the forward and input-gradient products */
static void weights_by_tap(const conv_geom_t *g, const float *w, float *wt, float *wtt)
{
    const size_t T = (size_t)g->KH * g->KW, K = (size_t)g->K, C = (size_t)g->C;
    for (size_t k = 0; k < K; k++)
        for (size_t c = 0; c < C; c++)
            for (size_t t = 0; t < T; t++) {
                const float v = w[(k * C + c) * T + t];
                wt[(t * K + k) * C + c] = v;
                if (wtt) wtt[(t * C + c) * K + k] = v;
            }
}

/* q = the planes of the group's nb images x (nb, C, H, W), zeros where
 * no image is (a last group of fewer than G images) and after the rows */
static void s2_split(const conv_geom_t *g, const s2_layout_t *s, const float *x, int nb,
                     float *q)
{
    const size_t chw = (size_t)g->C * g->H * g->W, used = (size_t)s->QH * s->RW;
    if (nb < s->G) memset(q, 0, sizeof(float) * 4 * s->ps);
    for (int i = 0; i < nb; i++)
        cnn_polyphase_split(x + (size_t)i * chw, g->C, g->H, g->W, g->P, s->QH, s->QW, s->RW,
                            s->cs, s->ps, q + (size_t)i * s->QW);
    for (size_t r = 0; r < 4 * (size_t)g->C; r++)
        memset(q + r * s->cs + used, 0, sizeof(float) * (s->cs - used));
}

/* y (nb, K, OH, OW) = b + sum over taps of W_t x Q_t, through yb (K, P),
 * for a group of nb images x */
static void s2_forward_group(const conv_geom_t *g, const s2_layout_t *s, const float *wt,
                             const float *b, const float *x, int nb, float *q, float *yb, float *y)
{
    const size_t cols = s->P, kc = (size_t)g->K * g->C;
    s2_split(g, s, x, nb, q);
    for (size_t p0 = 0; p0 < cols; p0 += BLOCK_COLS) {
        const size_t np = cols - p0 < BLOCK_COLS ? cols - p0 : BLOCK_COLS;
        for (int ky = 0; ky < g->KH; ky++)
            for (int kx = 0; kx < g->KW; kx++) {
                const size_t t = (size_t)ky * g->KW + kx;
                const float *qt = tap_planes(s, q, ky, kx) + p0;
                if (t == 0)
                    cnn_gemm_small_inner(wt, b, g->K, g->C, qt, s->cs, np, yb + p0, s->P);
                else
                    cnn_gemm_small_inner_acc(wt + t * kc, g->K, g->C, qt, s->cs, np, yb + p0,
                                             s->P);
            }
    }
    for (int i = 0; i < nb; i++)
        for (int k = 0; k < g->K; k++)
            for (int oy = 0; oy < g->OH; oy++)
                memcpy(y + (((size_t)i * g->K + k) * g->OH + oy) * g->OW,
                       yb + k * s->P + (size_t)oy * s->RW + (size_t)i * s->QW,
                       sizeof(float) * (size_t)g->OW);
}

static void s2_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                       const float *x, float *y)
{
    const s2_layout_t s = s2_layout(g, l->in.n);
    const float *b = l->params + (size_t)g->K * g->ckk;
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    const int groups = (n + s.G - 1) / s.G;
    float *wt = ctx->shared;
    weights_by_tap(g, l->params, wt, NULL);
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int gi = 0; gi < groups; gi++) {
        const int i0 = gi * s.G, nb = n - i0 < s.G ? n - i0 : s.G;
        float *q = layer_work(ctx), *yb = q + 4 * s.ps;
        s2_forward_group(g, &s, wt, b, x + (size_t)i0 * chw, nb, q, yb, y + (size_t)i0 * kohw);
    }
}

/* dyb (K, P) = the group's dy (nb, K, OH, OW) in the products' columns,
 * zero elsewhere */
static void s2_pad_dy(const conv_geom_t *g, const s2_layout_t *s, const float *dy, int nb,
                      float *dyb)
{
    memset(dyb, 0, sizeof(float) * (size_t)g->K * s->P);
    for (int i = 0; i < nb; i++)
        for (int k = 0; k < g->K; k++)
            for (int oy = 0; oy < g->OH; oy++)
                memcpy(dyb + k * s->P + (size_t)oy * s->RW + (size_t)i * s->QW,
                       dy + (((size_t)i * g->K + k) * g->OH + oy) * g->OW,
                       sizeof(float) * (size_t)g->OW);
}

/* dx (nb, C, H, W) of the group: dQ_t += W_t^T x dy for every tap, a
 * block of columns at a time, in q; then the planes merged */
static void s2_input_grad(const conv_geom_t *g, const s2_layout_t *s, const float *wtt,
                          const float *dyb, size_t cols, int nb, float *q, float *dx)
{
    const size_t kc = (size_t)g->K * g->C, chw = (size_t)g->C * g->H * g->W;
    memset(q, 0, sizeof(float) * 4 * s->ps);
    for (size_t p0 = 0; p0 < cols; p0 += BLOCK_COLS) {
        const size_t np = cols - p0 < BLOCK_COLS ? cols - p0 : BLOCK_COLS;
        for (int ky = 0; ky < g->KH; ky++)
            for (int kx = 0; kx < g->KW; kx++) {
                const size_t t = (size_t)ky * g->KW + kx;
                /* dQ_t (C, np) += W_t^T (C, K) x dy (K, np) */
                cnn_gemm_small_inner_acc(wtt + t * kc, g->C, g->K, dyb + p0, s->P, np,
                                         tap_planes(s, q, ky, kx) + p0, s->cs);
            }
    }
    for (int i = 0; i < nb; i++)
        cnn_polyphase_merge(q + (size_t)i * s->QW, g->C, g->H, g->W, g->P, s->QH, s->QW, s->RW,
                            s->cs, s->ps, dx + (size_t)i * chw);
}

/* One group of nb images: its dW (taps, K, C) and db (K) into the slot
 * `part`, and its dx (when dx is not NULL), through q and dyb, the
 * thread's scratch */
static void s2_backward_group(const conv_geom_t *g, const s2_layout_t *s, const float *wtt,
                              const float *x, const float *dy, int nb, float *part, float *q,
                              float *dyb, float *dx)
{
    const size_t kc = (size_t)g->K * g->C, cols = s->P;
    s2_split(g, s, x, nb, q);
    s2_pad_dy(g, s, dy, nb, dyb);
    memset(part, 0, sizeof(float) * slot_floats(g));
    for (int ky = 0; ky < g->KH; ky++)
        for (int kx = 0; kx < g->KW; kx++) {
            const size_t t = (size_t)ky * g->KW + kx;
            /* dW_t (K, C) = dy (K, cols) x Q_t (C, cols)^T, db with the first */
            if (g->C <= BLAS_DW_C)
                cnn_sgemm(0, 1, g->K, g->C, (int)cols, 1.0f, dyb, (int)s->P,
                          tap_planes(s, q, ky, kx), (int)s->cs, 0.0f, part + t * kc, g->C);
            else
                cnn_gemm_small_dw(dyb, s->P, 0, g->K, cols, tap_planes(s, q, ky, kx), s->cs,
                                  g->C, part + t * kc, t == 0 ? part + s->taps * kc : NULL);
        }
    if (g->C <= BLAS_DW_C)
        for (int k = 0; k < g->K; k++) part[s->taps * kc + k] = row_sum(dyb + k * s->P, cols);
    if (dx) s2_input_grad(g, s, wtt, dyb, cols, nb, q, dx);
}

/* grads (dW (K, C, taps), then db) += sum (dW by taps (taps, K, C), then
 * db), the calling thread's share of the filters */
static void add_sum(const conv_geom_t *g, const float *sum, float *grads)
{
    const size_t T = (size_t)g->KH * g->KW, K = (size_t)g->K, C = (size_t)g->C;
    size_t lo, hi;
    conv_split(K, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
    for (size_t k = lo; k < hi; k++) {
        for (size_t c = 0; c < C; c++)
            for (size_t t = 0; t < T; t++) grads[(k * C + c) * T + t] += sum[(t * K + k) * C + c];
        grads[K * C * T + k] += sum[K * C * T + k];
    }
}

static void s2_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                        const float *x, const float *y, const float *dy,
                        float *dx)
{
    (void)y; /* no relu_out */
    const s2_layout_t s = s2_layout(g, l->in.n);
    const size_t slot = slot_floats(g), used = (size_t)g->K * g->ckk + (size_t)g->K;
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    float *wt = ctx->shared, *wtt = wt + wtaps_floats(g), *sum = wtt + wtaps_floats(g);
    float *parts = ctx->shared + slots_at(g);
    const int groups = (n + s.G - 1) / s.G;
    /* the slots that fit the shared scratch, as s2_sizes planned them */
    const int chunk = (int)((l->sz.shared - slots_at(g)) / slot);
    weights_by_tap(g, l->params, wt, wtt);
    memset(sum, 0, sizeof(float) * slot);
    for (int c0 = 0; c0 < groups; c0 += chunk) {
        const int nc = groups - c0 < chunk ? groups - c0 : chunk;
#pragma omp parallel num_threads(ctx->nthreads)
        {
#pragma omp for schedule(static)
            for (int j = 0; j < nc; j++) {
                const size_t i0 = (size_t)(c0 + j) * s.G;
                const int nb = n - (int)i0 < s.G ? n - (int)i0 : s.G;
                float *q = layer_work(ctx), *dyb = q + 4 * s.ps;
                s2_backward_group(g, &s, wtt, x + i0 * chw, dy + i0 * kohw, nb,
                                  parts + (size_t)j * slot, q, dyb, dx ? dx + i0 * chw : NULL);
            }
            cnn_conv_add_slots(parts, slot, used, nc, sum);
        }
    }
#pragma omp parallel num_threads(ctx->nthreads)
    add_sum(g, sum, l->grads);
}

const conv_engine_t cnn_conv_stride2_engine = {
    .name = "stride2",
    .sizes = s2_sizes,
    .forward = s2_forward,
    .backward = s2_backward,
};
