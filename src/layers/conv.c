/* conv.c - 2-D convolution as im2col + GEMM, one image per GEMM.
 *
 * Parameters: W (K, C, KH, KW) as PyTorch stores them, then b (K).
 *
 * Each image's patches are unfolded into a column matrix col_i
 * (C*KH*KW, OH*OW); then
 *   forward:  y_i  (K, OH*OW)   = b + W x col_i       (straight into y)
 *   backward: dW   (K, C*KH*KW) += sum_i dy_i x col_i^T
 *             db   (K)          += sum_i rows of dy_i
 *             dx_i              = col2im(W^T x dy_i)
 * y_i and dy_i are already (K, OH*OW) slices of NCHW tensors, so no
 * layout change is needed around the GEMMs, and the bias is the GEMM's
 * starting value. When col_i has at most SMALL_D rows (a first layer:
 * 9 for 3x3 on grey images, 27 or 75 for 3x3 or 5x5 on RGB), the forward
 * product and dW use kernels/smallgemm.c instead of the BLAS, which is
 * slow at such shapes.
 *
 * In training the forward pass keeps every col_i in the layer's cache, so
 * the backward pass does not unfold the images again. The cache is sized
 * for the whole batch when that is at most CHUNK_FLOATS (16 MB), as for
 * fmnist-ref's conv1; a bigger layer unfolds again in the backward pass,
 * a chunk of images at a time in the shared scratch (or, at most SMALL_D
 * rows, one image at a time in each thread's own scratch).
 *
 * Threads: the forward pass and the input gradient take whole images per
 * thread (each thread unfolds into its own scratch); dW and db are split
 * into blocks of rows or columns, each thread summing over every image in
 * order. A layer of at most SMALL_D rows (small_backward) takes whole
 * images for dW and db too, into per-image partial sums that are then
 * added in image order. No two threads write one element, and every
 * element is summed in the same order whatever the thread count.
 *
 * 3x3 stride-1 layers with enough channels use Winograd F(2x2, 3x3) or
 * F(4x4, 3x3) instead (kernels/winograd.c): per chunk of images, the input
 * tiles are transformed (V), 16 (or 36) GEMMs M[xi] = U[xi] x V[xi]
 * replace the one big GEMM, and the output transform adds the bias. The
 * backward pass runs the adjoints: dM from dy, dU[xi] += dM[xi] x
 * V[xi]^T, dV[xi] = U[xi]^T x dM[xi] (written over V, which is not needed
 * after), dx from dV, dW from dU. 2.25x (or 4x) fewer multiply-adds than
 * im2col in all three products. M and dV come from the blocked kernel
 * of kernels/smallgemm.c when U is small (small_left). The cache holds U
 * and dU (and U^T for that kernel); V is computed again in the backward
 * pass, a chunk of images at a time (WINO_IMAGES). Threads take whole
 * images for the transforms and whole (xi, column block) GEMMs, whose
 * blocks do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "layer_util.h"
#include "mpicnn/kernels.h"

/* Column matrices of at most this many rows (a first layer's C*KH*KW)
 * use cnn_gemm_small_inner/_dw instead of the BLAS, with the filters in
 * blocks of 4 (the kernels' row block). cifar-3layer's conv1 (75 rows),
 * 1 thread, best of 7 runs: forward 4.52 -> 3.41 ms, dW 6.59 -> 4.06 ms
 * (with 16 lanes and FMA; with 8 lanes and no FMA it measured level). */
#define SMALL_D 80

/* The Winograd products M = U x V and dV = U^T x dM use
 * cnn_gemm_small_inner, which needs no packing, when the left matrix has
 * rows in blocks of 4 and at most SMALL_LEFT floats (16 KB: it stays in
 * L1 beside a panel of the right one); else the BLAS. Measured (1
 * thread, batch 64, F(2x2)): 8% faster at 32 -> 64 and 64 -> 64
 * channels, 7-20% slower at 64 -> 128 and 128 -> 128. */
#define SMALL_LEFT 4096

static int small_left(int rows, int inner)
{
    return rows % 4 == 0 && (size_t)rows * inner <= SMALL_LEFT;
}

/* Upper bound of the column matrices kept at once (16 MB of floats). */
#define CHUNK_FLOATS ((size_t)4 << 20)
static size_t chunk_floats = CHUNK_FLOATS;

void cnn_conv_set_chunk_floats(size_t n)
{
    chunk_floats = n ? n : CHUNK_FLOATS;
}

static int conv_algo = CNN_CONV_AUTO;

void cnn_conv_set_algo(int algo)
{
    conv_algo = algo;
}

/* Floats between two of the 16 transformed matrices beyond their size:
 * one cache line, so that the 16 do not share cache sets. */
#define XGAP 16

/* The kernels of one Winograd variant: F(m x m, 3x3), (m+2)^2 positions. */
typedef struct {
    int m, npos;
    size_t (*scratch)(int th, int tw);
    void (*filter)(const float *w, int K, int C, float *U);
    void (*filter_grad)(const float *dU, int K, int C, float *dw);
    void (*input)(const float *x, int C, int H, int W, int pad, int th, int tw, float *V,
                  size_t ld, size_t xs, float *scratch, int spill);
    void (*input_grad)(const float *dV, size_t ld, size_t xs, int C, int H, int W, int pad,
                       int th, int tw, float *dx, float *scratch);
    void (*output)(const float *M, size_t ld, size_t xs, int K, int OH, int OW, int th, int tw,
                   const float *bias, float *y, float *scratch);
    void (*output_grad)(const float *dy, int K, int OH, int OW, int th, int tw, float *dM,
                        size_t ld, size_t xs, float *scratch, int spill);
} wino_impl_t;

static const wino_impl_t wino2 = {2, 16, cnn_wino_scratch, cnn_wino_filter,
                                  cnn_wino_filter_grad, cnn_wino_input, cnn_wino_input_grad,
                                  cnn_wino_output, cnn_wino_output_grad};
static const wino_impl_t wino4 = {4, 36, cnn_wino4_scratch, cnn_wino4_filter,
                                  cnn_wino4_filter_grad, cnn_wino4_input, cnn_wino4_input_grad,
                                  cnn_wino4_output, cnn_wino4_output_grad};

/* Winograd geometry, from the spec and input shape alone. */
typedef struct {
    const wino_impl_t *f; /* F(2x2, 3x3) or F(4x4, 3x3) */
    int npos;            /* 16 or 36 transformed matrices */
    int th, tw;          /* tiles per image: ceil(OH/m) x ceil(OW/m) */
    size_t tpi;          /* th * tw */
    size_t vimg, mimg;   /* floats of V and of M per image: npos*C*tpi, npos*K*tpi */
    size_t ukc;          /* floats of U (and of dU, and U^T): npos*K*C */
    int nu;              /* U and dU, and U^T when dV uses small_left */
    int chunk;           /* most images per chunk */
} wgeom_t;

/* The Winograd variant for a layer (CNN_CONV_WINOGRAD or _WINOGRAD4), or
 * 0 for im2col. */
static int wino_variant(const cnn_layer_spec_t *s, cnn_shape_t in, int oh, int ow)
{
    if (s->kh != 3 || s->kw != 3 || s->stride != 1 || conv_algo == CNN_CONV_IM2COL)
        return 0;
    if (conv_algo == CNN_CONV_WINOGRAD || conv_algo == CNN_CONV_WINOGRAD4) return conv_algo;
    if (in.c < CNN_CONV_WINO_MIN || s->filters < CNN_CONV_WINO_MIN) return 0;
    /* F(4x4) does 1.78x fewer multiply-adds but costlier transforms, and
     * pads the output to a multiple of 4. Measured (1 thread, batch 64,
     * forward + backward): F(4x4) 12-24% faster at 16x16 (64 -> 128
     * channels) and 32x32 (32 -> 16), level at 28x28, 5-27% slower at 7x7
     * and 14x14 */
    return oh % 4 == 0 && ow % 4 == 0 && oh >= 16 && ow >= 16 ? CNN_CONV_WINOGRAD4
                                                             : CNN_CONV_WINOGRAD;
}

/* Images per Winograd chunk, at most. A chunk's V and M stay in the
 * caches from one phase to the next; V is computed again in the backward
 * pass, a chunk at a time. Keeping V of the whole batch for the backward
 * pass instead (when it fit the 16 MB budget, as fmnist-ref conv2's 6.4
 * MB does) wrote it out to memory and read it back: without it, whole
 * training steps of fmnist-ref at -np 2 x 1 thread computed 10% faster
 * (11.6-11.9 against 13.1-13.2 ms a step, quiet rounds), 2 threads on
 * one rank went 10% slower (5081-5231 against 5587-5834 images/s). 16
 * images measured best for fmnist-ref's conv2 (against 22 and 32) and
 * cifar-3layer's (against 13), 1 thread. */
#define WINO_IMAGES 16

static wgeom_t wgeom(int variant, int C, int K, int OH, int OW, int nmax)
{
    const wino_impl_t *f = variant == CNN_CONV_WINOGRAD4 ? &wino4 : &wino2;
    wgeom_t g = {.f = f, .npos = f->npos, .th = (OH + f->m - 1) / f->m,
                 .tw = (OW + f->m - 1) / f->m};
    g.tpi = (size_t)g.th * g.tw;
    g.vimg = (size_t)g.npos * C * g.tpi;
    g.mimg = (size_t)g.npos * K * g.tpi;
    g.ukc = (size_t)g.npos * K * C;
    g.nu = 2 + small_left(C, K);
    /* at most WINO_IMAGES images and half the column budget per chunk,
     * and chunks of the largest batch as even as possible */
    size_t c = chunk_floats / 2 / (g.mimg + g.vimg);
    c = c < 1 ? 1 : c < WINO_IMAGES ? c : WINO_IMAGES;
    c = c < (size_t)nmax ? c : (size_t)nmax;
    const size_t nchunks = ((size_t)nmax + c - 1) / c;
    g.chunk = (int)(((size_t)nmax + nchunks - 1) / nchunks);
    return g;
}

/* Column blocks of a chunk's GEMMs, of whole images and about
 * WINO_BLOCK columns: fixed by the chunk, not the threads, so that every
 * element is summed in the same order whatever the thread count. */
#define WINO_BLOCK 512
static int wino_blocks(int nb, size_t tpi)
{
    const size_t nblk = ((size_t)nb * tpi + WINO_BLOCK - 1) / WINO_BLOCK;
    return nblk < (size_t)nb ? (int)nblk : nb;
}

/* Block b's columns [c0, c1): images [nb b / nblk, nb (b + 1) / nblk). */
static void block_range(int nb, size_t tpi, int nblk, int b, size_t *c0, size_t *c1)
{
    *c0 = tpi * (size_t)(nb * b / nblk);
    *c1 = tpi * (size_t)(nb * (b + 1) / nblk);
}

typedef struct {
    int C, H, W, K, KH, KW, S, P, OH, OW;
    size_t ckk, ohw, colsz; /* colsz = ckk * ohw, one image's columns */
    int chunk;              /* images per chunk of the backward pass */
    int cached;             /* 1: the forward pass keeps col in l->cache */
} geom_t;

static int chunk_images(size_t colsz, int nmax)
{
    size_t c = colsz ? chunk_floats / colsz : (size_t)nmax;
    if (c < 1) c = 1;
    return c < (size_t)nmax ? (int)c : nmax;
}

/* Floats of one image's partial dW and db in the small-D backward pass,
 * rounded up to whole cache lines so threads do not share lines. */
static size_t small_slot(int K, size_t ckk)
{
    return ((size_t)K * ckk + (size_t)K + 15) / 16 * 16;
}

static geom_t geom(const cnn_layer_t *l)
{
    geom_t g = {.C = l->in.c, .H = l->in.h, .W = l->in.w, .K = l->spec.filters,
                .KH = l->spec.kh, .KW = l->spec.kw, .S = l->spec.stride,
                .P = l->spec.pad, .OH = l->out.h, .OW = l->out.w};
    g.ckk = (size_t)g.C * g.KH * g.KW;
    g.ohw = (size_t)g.OH * g.OW;
    g.colsz = g.ckk * g.ohw;
    g.cached = l->sz.cache > 0;
    if (g.ckk <= SMALL_D) /* the partial sums that fit the shared scratch */
        g.chunk = (int)(l->sz.shared / small_slot(g.K, g.ckk));
    else
        g.chunk = g.cached ? l->in.n : chunk_images(g.colsz, l->in.n);
    return g;
}

/* Thread t's share [lo, hi) of n items. */
static void split(size_t n, int t, int T, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)t / (size_t)T;
    *hi = n * (size_t)(t + 1) / (size_t)T;
}

/* The calling thread's images [lo, hi) of a chunk of nb, in a parallel
 * region: one run, so that an image transform may spill into the tiles
 * of the next image, which the same thread transforms after it. */
static void my_images(int nb, int *lo, int *hi)
{
    size_t a, b;
    split((size_t)nb, omp_get_thread_num(), omp_get_num_threads(), &a, &b);
    *lo = (int)a;
    *hi = (int)b;
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
    const int variant = wino_variant(s, in, oh, ow);
    if (variant) {
        const wgeom_t w = wgeom(variant, in.c, s->filters, oh, ow, in.n);
        const size_t gaps = (size_t)w.npos * XGAP;
        *sz = (cnn_layer_sizes_t){0};
        sz->variant = variant;
        sz->params = (size_t)s->filters * in.c * 9 + (size_t)s->filters;
        sz->work = w.f->scratch(w.th, w.tw);
        sz->cache = w.nu * w.ukc;
        sz->shared = (size_t)w.chunk * (w.mimg + w.vimg) + 2 * gaps; /* M, then V */
        return CNN_OK;
    }
    const size_t ckk = (size_t)in.c * s->kh * s->kw, colsz = ckk * (size_t)oh * ow;
    const int chunk = chunk_images(colsz, in.n);
    *sz = (cnn_layer_sizes_t){0};
    sz->params = (size_t)s->filters * ckk + (size_t)s->filters;
    sz->work = colsz; /* one image's columns: forward without cache, dx */
    if (chunk >= in.n) sz->cache = colsz * (size_t)in.n; /* every image's columns */
    if (ckk <= SMALL_D) /* per-image partial dW and db, a chunk at a time */
        sz->shared = small_slot(s->filters, ckk) *
                     (size_t)chunk_images(small_slot(s->filters, ckk), in.n);
    else if (chunk < in.n)
        sz->shared = colsz * (size_t)chunk; /* a chunk's columns, again */
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

/* acc[j] += x[j], x[LANES + j], ...: a sum in a fixed order that the
 * compiler turns into vector adds (a plain running sum is one long chain
 * of dependent scalar adds). */
#define LANES 16
static inline void add_lanes(const float *x, size_t n, float acc[LANES])
{
    size_t p = 0;
    for (; p + LANES <= n; p += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[p + j];
    for (int j = 0; p < n; p++, j++) acc[j] += x[p];
}

static void unfold(const geom_t *g, const float *xi, float *col)
{
    cnn_im2col(xi, g->C, g->H, g->W, g->KH, g->KW, g->S, g->P, col, g->ohw);
}

/* The Winograd geometry of a built layer: what shape decided, read back
 * from its sizes (not from the settings, which may have changed since). */
static wgeom_t wgeom_layer(const cnn_layer_t *l)
{
    wgeom_t w = wgeom(l->sz.variant, l->in.c, l->spec.filters, l->out.h, l->out.w, l->in.n);
    w.chunk = (int)((l->sz.shared - (size_t)w.npos * XGAP * 2) / (w.mimg + w.vimg));
    return w;
}

/* Images per chunk for a batch of n: as even as the chunk limit allows. */
static int wino_chunk(const wgeom_t *w, int n)
{
    const int nchunks = (n + w->chunk - 1) / w->chunk;
    return (n + nchunks - 1) / nchunks;
}

/* One chunk of images [b0, b0 + nb) of a batch cut into chunks of nc. */
typedef struct {
    int nb, nblk;     /* images, GEMM column blocks */
    size_t tc;        /* tiles: nb * tpi, the columns of V and M */
    size_t vxs, mxs;  /* floats between V's (and M's) 16 matrices */
    float *V;         /* in the shared scratch after M */
} wchunk_t;

static wchunk_t wino_chunk_at(const cnn_layer_t *l, const cnn_ctx_t *ctx,
                              const wgeom_t *w, int n, int b0, int nc)
{
    wchunk_t c = {.nb = n - b0 < nc ? n - b0 : nc};
    c.tc = (size_t)c.nb * w->tpi;
    c.nblk = wino_blocks(c.nb, w->tpi);
    c.vxs = (size_t)l->in.c * c.tc + XGAP;
    c.mxs = (size_t)l->spec.filters * c.tc + XGAP;
    c.V = ctx->shared + (size_t)w->chunk * w->mimg + (size_t)w->npos * XGAP;
    return c;
}

static void wino_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                         const float *x, float *y)
{
    const geom_t g = geom(l);
    const wgeom_t w = wgeom_layer(l);
    const size_t chw = (size_t)g.C * g.H * g.W, kohw = (size_t)g.K * g.ohw;
    const float *b = l->params + (size_t)g.K * g.ckk;
    float *U = l->cache, *M = ctx->shared;
    w.f->filter(l->params, g.K, g.C, U);
    const int nc = wino_chunk(&w, n);
    for (int b0 = 0; b0 < n; b0 += nc) {
        const wchunk_t c = wino_chunk_at(l, ctx, &w, n, b0, nc);
        const int nb = c.nb, nblk = c.nblk;
        const size_t tc = c.tc, vxs = c.vxs, mxs = c.mxs;
        float *V = c.V;
#pragma omp parallel num_threads(ctx->nthreads)
        {
            int lo, hi;
            my_images(nb, &lo, &hi);
            for (int i = lo; i < hi; i++)
                w.f->input(x + (size_t)(b0 + i) * chw, g.C, g.H, g.W, g.P, w.th, w.tw,
                           V + (size_t)i * w.tpi, tc, vxs, layer_work(ctx), i + 1 < hi);
#pragma omp barrier
            /* M[xi] (K, tc) = U[xi] (K, C) x V[xi] (C, tc), by column
             * blocks, block-major: with as many blocks as threads (or a
             * multiple), a thread multiplies the columns of the images it
             * transformed, and transforms them back, in its own caches */
#pragma omp for schedule(static)
            for (int it = 0; it < w.npos * nblk; it++) {
                const int xi = it % w.npos;
                size_t c0, c1;
                block_range(nb, w.tpi, nblk, it / w.npos, &c0, &c1);
                if (small_left(g.K, g.C))
                    cnn_gemm_small_inner(U + (size_t)xi * g.K * g.C, NULL, g.K, g.C,
                                         V + (size_t)xi * vxs + c0, tc, c1 - c0,
                                         M + (size_t)xi * mxs + c0, tc);
                else
                    cnn_sgemm(0, 0, g.K, (int)(c1 - c0), g.C, 1.0f,
                              U + (size_t)xi * g.K * g.C, g.C, V + (size_t)xi * vxs + c0,
                              (int)tc, 0.0f, M + (size_t)xi * mxs + c0, (int)tc);
            }
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++)
                w.f->output(M + (size_t)i * w.tpi, tc, mxs, g.K, g.OH, g.OW, w.th, w.tw, b,
                                y + (size_t)(b0 + i) * kohw, layer_work(ctx));
        }
    }
}

/* db[k] += sum over images and pixels of dy, split by k over threads */
static void bias_grad(const geom_t *g, const cnn_ctx_t *ctx, int n,
                      const float *dy, float *db)
{
    const size_t kohw = (size_t)g->K * g->ohw;
#pragma omp parallel num_threads(ctx->nthreads)
    {
        size_t lo, hi;
        split((size_t)g->K, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (size_t k = lo; k < hi; k++) {
            float acc[LANES] = {0};
            for (int i = 0; i < n; i++) add_lanes(dy + (size_t)i * kohw + k * g->ohw, g->ohw, acc);
            float s = 0.0f;
            for (int j = 0; j < LANES; j++) s += acc[j];
            db[k] += s;
        }
    }
}

static void wino_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, const float *dy, float *dx)
{
    const geom_t g = geom(l);
    const wgeom_t w = wgeom_layer(l);
    const size_t chw = (size_t)g.C * g.H * g.W, kohw = (size_t)g.K * g.ohw;
    const size_t kc = (size_t)g.K * g.C;
    float *dw = l->grads, *db = l->grads + (size_t)g.K * g.ckk;
    const float *U = l->cache;
    float *dU = l->cache + w.ukc, *UT = l->cache + 2 * w.ukc, *dM = ctx->shared;
    bias_grad(&g, ctx, n, dy, db);
    const int small = small_left(g.C, g.K);
    if (dx && small) /* U^T, the left matrix of dV */
        for (int xi = 0; xi < w.npos; xi++)
            for (int k = 0; k < g.K; k++)
                for (int ch = 0; ch < g.C; ch++)
                    UT[(size_t)xi * kc + (size_t)ch * g.K + k] =
                        U[(size_t)xi * kc + (size_t)k * g.C + ch];
    const int nc = wino_chunk(&w, n);
    for (int b0 = 0; b0 < n; b0 += nc) {
        const wchunk_t c = wino_chunk_at(l, ctx, &w, n, b0, nc);
        const int nb = c.nb, nblk = c.nblk;
        const size_t tc = c.tc, vxs = c.vxs, mxs = c.mxs;
        float *V = c.V;
        const float beta = b0 ? 1.0f : 0.0f;
#pragma omp parallel num_threads(ctx->nthreads)
        {
            int lo, hi;
            my_images(nb, &lo, &hi);
            for (int i = lo; i < hi; i++) {
                w.f->input(x + (size_t)(b0 + i) * chw, g.C, g.H, g.W, g.P, w.th, w.tw,
                           V + (size_t)i * w.tpi, tc, vxs, layer_work(ctx), i + 1 < hi);
                w.f->output_grad(dy + (size_t)(b0 + i) * kohw, g.K, g.OH, g.OW, w.th, w.tw,
                                 dM + (size_t)i * w.tpi, tc, mxs, layer_work(ctx), i + 1 < hi);
            }
#pragma omp barrier
            /* dU[xi] (K, C) += dM[xi] (K, tc) x V[xi]^T (tc, C). (Block
             * by block instead, each thread reading only the columns it
             * transformed, into per-block shares added after, measured
             * slower: this phase of fmnist-ref's conv2 took 2.2 against
             * 1.8 ms a batch on 1 thread, 1.5-1.7 against 1.0-1.2 on 2.) */
#pragma omp for schedule(static)
            for (int xi = 0; xi < w.npos; xi++) {
                float *dUx = dU + (size_t)xi * kc;
                if (small) {
                    if (!b0) memset(dUx, 0, sizeof(float) * kc);
                    cnn_gemm_small_dw(dM + (size_t)xi * mxs, tc, 0, g.K, tc,
                                      V + (size_t)xi * vxs, tc, g.C, dUx, NULL);
                } else {
                    cnn_sgemm(0, 1, g.K, g.C, (int)tc, 1.0f, dM + (size_t)xi * mxs, (int)tc,
                              V + (size_t)xi * vxs, (int)tc, beta, dUx, g.C);
                }
            }
            if (dx) {
                /* dV[xi] (C, tc) = U[xi]^T (C, K) x dM[xi] (K, tc), over V */
#pragma omp for schedule(static)
                for (int it = 0; it < w.npos * nblk; it++) {
                    const int xi = it % w.npos;
                    size_t c0, c1;
                    block_range(nb, w.tpi, nblk, it / w.npos, &c0, &c1);
                    if (small)
                        cnn_gemm_small_inner(UT + (size_t)xi * kc, NULL, g.C, g.K,
                                             dM + (size_t)xi * mxs + c0, tc, c1 - c0,
                                             V + (size_t)xi * vxs + c0, tc);
                    else
                        cnn_sgemm(1, 0, g.C, (int)(c1 - c0), g.K, 1.0f, U + (size_t)xi * kc,
                                  g.C, dM + (size_t)xi * mxs + c0, (int)tc, 0.0f,
                                  V + (size_t)xi * vxs + c0, (int)tc);
                }
#pragma omp for schedule(static)
                for (int i = 0; i < nb; i++)
                    w.f->input_grad(V + (size_t)i * w.tpi, tc, vxs, g.C, g.H, g.W, g.P, w.th,
                                        w.tw, dx + (size_t)(b0 + i) * chw, layer_work(ctx));
            }
        }
    }
    w.f->filter_grad(dU, g.K, g.C, dw);
}

/* x (n,C,H,W) -> y (n,K,OH,OW) */
static void conv_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                         const float *x, float *y)
{
    const geom_t g = geom(l);
    const float *w = l->params, *b = l->params + (size_t)g.K * g.ckk;
    const size_t chw = (size_t)g.C * g.H * g.W, kohw = (size_t)g.K * g.ohw;
    if (l->sz.variant) {
        wino_forward(l, ctx, n, x, y);
        return;
    }
    const int keep = g.cached && ctx->train;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int i = 0; i < n; i++) {
        float *col = keep ? l->cache + (size_t)i * g.colsz : layer_work(ctx);
        float *yi = y + (size_t)i * kohw;
        unfold(&g, x + (size_t)i * chw, col);
        if (g.ckk <= SMALL_D && g.K % 4 == 0) {
            cnn_gemm_small_inner(w, b, g.K, (int)g.ckk, col, g.ohw, g.ohw, yi, g.ohw);
            continue;
        }
        for (int k = 0; k < g.K; k++)
            for (size_t p = 0; p < g.ohw; p++) yi[(size_t)k * g.ohw + p] = b[k];
        /* y_i (K, OHW) += W (K, CKK) x col_i (CKK, OHW) */
        cnn_sgemm(0, 0, g.K, (int)g.ohw, (int)g.ckk, 1.0f, w, (int)g.ckk, col, (int)g.ohw,
                  1.0f, yi, (int)g.ohw);
    }
}

/* dcol_i (CKK, OHW) = W^T (CKK, K) x dy_i (K, OHW), folded back into dx_i */
static void input_grad(const geom_t *g, const float *w, const float *dyi, float *dcol, float *dxi)
{
    cnn_sgemm(1, 0, (int)g->ckk, (int)g->ohw, g->K, 1.0f, w, (int)g->ckk, dyi, (int)g->ohw, 0.0f,
              dcol, (int)g->ohw);
    memset(dxi, 0, sizeof(float) * (size_t)g->C * g->H * g->W);
    cnn_col2im(dcol, g->ohw, g->C, g->H, g->W, g->KH, g->KW, g->S, g->P, dxi);
}

/* The backward pass of a layer with at most SMALL_D column rows. Threads
 * take whole images: each sums its images' dW and db into per-image slots
 * of the shared scratch, from columns that are cached or that it unfolds
 * into its own scratch, where they stay in its cache. Then the slots are
 * added to the gradient in image order, split by element over threads.
 * Every element gets the same additions in the same order as one thread
 * summing image after image (the kernel adds each image's sum to its
 * output), whatever the thread count. Splitting dW by rows instead, each
 * thread read every image's columns: 2 threads on cifar-3layer's conv1
 * (75 rows, 300 KB of columns an image) ran no faster than 1. */
static void small_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, const geom_t *g, int n,
                           const float *x, const float *dy, float *dx)
{
    const size_t nw = (size_t)g->K * g->ckk, slot = small_slot(g->K, g->ckk);
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    const int have = g->cached && ctx->train; /* the forward pass kept the columns */
    float *grad = l->grads; /* dW (K, CKK), then db (K), as in a slot */
    for (int b0 = 0; b0 < n; b0 += g->chunk) {
        const int nb = n - b0 < g->chunk ? n - b0 : g->chunk;
#pragma omp parallel num_threads(ctx->nthreads)
        {
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++) {
                const float *dyi = dy + (size_t)(b0 + i) * kohw;
                float *part = ctx->shared + (size_t)i * slot, *col = layer_work(ctx);
                if (have)
                    col = l->cache + (size_t)(b0 + i) * g->colsz;
                else
                    unfold(g, x + (size_t)(b0 + i) * chw, col);
                memset(part, 0, sizeof(float) * slot);
                cnn_gemm_small_dw(dyi, g->ohw, 0, g->K, g->ohw, col, g->ohw, (int)g->ckk, part,
                                  part + nw);
                if (dx) input_grad(g, l->params, dyi, layer_work(ctx), dx + (size_t)(b0 + i) * chw);
            }
            /* whole cache lines per thread */
            size_t lo, hi;
            split(slot / 16, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
            lo *= 16;
            hi = 16 * hi < nw + (size_t)g->K ? 16 * hi : nw + (size_t)g->K;
            for (int i = 0; i < nb; i++) {
                const float *part = ctx->shared + (size_t)i * slot;
                for (size_t e = lo; e < hi; e++) grad[e] += part[e];
            }
        }
    }
}

static void conv_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, const float *y, const float *dy,
                          float *dx)
{
    (void)y;
    if (l->sz.variant) {
        wino_backward(l, ctx, n, x, dy, dx);
        return;
    }
    const geom_t g = geom(l);
    if (g.ckk <= SMALL_D) {
        small_backward(l, ctx, &g, n, x, dy, dx);
        return;
    }
    const size_t nw = (size_t)g.K * g.ckk;
    const size_t chw = (size_t)g.C * g.H * g.W, kohw = (size_t)g.K * g.ohw;
    float *dw = l->grads, *db = l->grads + nw;
    /* the forward pass of a training step kept the columns */
    const int have = g.cached && ctx->train;
    /* split dW by its longer side, so every thread gets real work */
    const int by_rows = (size_t)g.K >= g.ckk;
    bias_grad(&g, ctx, n, dy, db);
    for (int b0 = 0; b0 < n; b0 += g.chunk) {
        const int nb = n - b0 < g.chunk ? n - b0 : g.chunk;
        /* else unfold again, into the cache (an eval-mode forward left it
         * stale) or a chunk at a time into the shared scratch */
        float *col = g.cached ? l->cache : ctx->shared;
        if (have) col += (size_t)b0 * g.colsz;
#pragma omp parallel num_threads(ctx->nthreads)
        {
            if (!have) {
#pragma omp for schedule(static)
                for (int i = 0; i < nb; i++)
                    unfold(&g, x + (size_t)(b0 + i) * chw, col + (size_t)i * g.colsz);
            }
            size_t lo, hi;
            split(by_rows ? (size_t)g.K : g.ckk, omp_get_thread_num(), omp_get_num_threads(), &lo,
                  &hi);
            for (int i = 0; i < nb && hi > lo; i++) {
                const float *dyi = dy + (size_t)(b0 + i) * kohw, *ci = col + (size_t)i * g.colsz;
                if (by_rows) /* dW[lo:hi, :] += dy_i[lo:hi, :] x col_i^T */
                    cnn_sgemm(0, 1, (int)(hi - lo), (int)g.ckk, (int)g.ohw, 1.0f,
                              dyi + lo * g.ohw, (int)g.ohw, ci, (int)g.ohw, 1.0f,
                              dw + lo * g.ckk, (int)g.ckk);
                else /* dW[:, lo:hi] += dy_i x col_i[lo:hi, :]^T */
                    cnn_sgemm(0, 1, g.K, (int)(hi - lo), (int)g.ohw, 1.0f, dyi, (int)g.ohw,
                              ci + lo * g.ohw, (int)g.ohw, 1.0f, dw + lo, (int)g.ckk);
            }
            if (dx) {
#pragma omp for schedule(static)
                for (int i = 0; i < nb; i++)
                    input_grad(&g, l->params, dy + (size_t)(b0 + i) * kohw, layer_work(ctx),
                               dx + (size_t)(b0 + i) * chw);
            }
        }
    }
}

/* ---- the table ------------------------------------------------------ */

static const cnn_layer_key_t conv_keys[] = {
    LAYER_INT_KEY("filters", filters, 1, 65536, NULL, 0),
    LAYER_PAIR_KEY("kernel", kh, kw, 1, 4096, NULL, 0),
    LAYER_INT_KEY("stride", stride, 1, 4096, "1", 1),
    LAYER_INT_KEY("pad", pad, 0, 4096, "0", 1),
};

/* weight (K,C,KH,KW) then bias (K), as nn.Conv2d */
static const cnn_tensor_desc_t conv_tensors[] = {
    {.name = "weight", .flag = "--w", .grad_flag = "--dw"},
    {.name = "bias", .flag = "--b", .grad_flag = "--db"},
};

static int conv_tensor_dims(const cnn_layer_t *l, int i, size_t dims[4])
{
    dims[0] = (size_t)l->out.c;
    dims[1] = (size_t)l->in.c;
    dims[2] = (size_t)l->spec.kh;
    dims[3] = (size_t)l->spec.kw;
    return i == 0 ? 4 : 1;
}

/* y = b + sum over c, ky, kx of W x (zero outside the input), in double */
static void conv_reference(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                           const double *x, const double *p, const double *state,
                           const double *mask, int train, double *y)
{
    const int K = out.c, C = in.c, KH = s->kh, KW = s->kw;
    const double *b = p + (size_t)K * C * KH * KW;
    for (int n = 0; n < in.n; n++)
        for (int k = 0; k < K; k++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double acc = b[k];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < KH; ky++)
                            for (int kx = 0; kx < KW; kx++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                                acc += p[layer_idx(k, c, ky, kx, C, KH, KW)] *
                                       x[layer_idx(n, c, iy, ix, C, in.h, in.w)];
                            }
                    y[layer_idx(n, k, oy, ox, K, out.h, out.w)] = acc;
                }
}

static const cnn_layer_cli_t conv_cli = {
    .usage = "--x F --x-shape N,C,H,W --w F --w-shape K,C,KH,KW --b F --stride S --pad P "
             "--out F\n"
             "            [--dout F --dx F --dw F --db F]",
    .x_dims = "N,C,H,W",
    .shape_flag = "--w-shape",
    .shape_dims = "K,C,KH,KW",
    .shape_in = 1,
    .shape_in_why = "the channels of",
    .shape_keys = {"filters", NULL, "kernel", "kernel"},
};

const cnn_layer_ops_t cnn_conv_ops = {
    .type = "conv",
    .shape = conv_shape,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .keys = conv_keys,
    .nkeys = LAYER_COUNT(conv_keys),
    .tensors = conv_tensors,
    .ntensors = LAYER_COUNT(conv_tensors),
    .tensor_dims = conv_tensor_dims,
    .cli = &conv_cli,
    .fd = CNN_FD_LINEAR,
    .reference = conv_reference,
};
