/* conv_winograd.c - the conv engine of Winograd F(2x2, 3x3) and
 * F(4x4, 3x3), for 3x3 stride-1 layers, and F(2x2, 5x5), for 5x5
 * stride-1 layers (kernels/winograd.c).
 *
 * Per chunk of images, the input tiles are transformed (V), 16 (or 36)
 * GEMMs M[xi] = U[xi] x V[xi] replace the one big GEMM of im2col, and the
 * output transform adds the bias. The backward pass runs the adjoints: dM
 * from dy, dU[xi] += dM[xi] x V[xi]^T, dV[xi] = U[xi]^T x dM[xi] (written
 * over V, which is not needed after), dx from dV, dW from dU. 2.25x (4x
 * for F(4x4, 3x3), 2.78x for F(2x2, 5x5)) fewer multiply-adds than
 * im2col in all three products. M and dV come from the blocked kernel of
 * kernels/smallgemm.c when U is small (small_left), and dU from its dW
 * kernel then and for fewer than 4 channels (small_du). A ReLU folded into the layer (relu_out) clamps the output
 * where the output transform writes it, and masks dy where dM's transform
 * reads it. dM's transform also sums each channel of an image's dy, the
 * image's share of the bias gradient, which the pass adds up in image
 * order at its end. The cache holds U and dU (and U^T for that kernel)
 * and those shares; with ctx->dx_add the input gradient transform adds
 * into dx instead of writing it (a fan-out's second part: net.c). V is
 * computed again in the backward pass, a chunk of
 * images at a time (WINO_IMAGES; the forward pass takes smaller chunks
 * where they fit the L2 caches, wino_chunk). Threads take whole images for the transforms
 * and whole (xi, column block) GEMMs. Every element gets the same bits
 * whatever the thread count: the backward pass's blocks depend on the
 * shape alone, and the forward pass's only where the blocked kernel,
 * which does not mind where blocks are cut, does the products. */
#include <string.h>
#include <unistd.h>

#include "conv_engine.h"
#include "mpicnn/kernels.h"

/* The Winograd products M = U x V and dV = U^T x dM use
 * cnn_gemm_small_inner, which needs no packing, when the left matrix has
 * rows in blocks of 4 and at most SMALL_LEFT floats (16 KB: it stays in
 * L1 beside a panel of the right one); a bigger left matrix goes to the
 * BLAS, whose packing then pays for itself. */
#define SMALL_LEFT 4096

static int small_left(int rows, int inner)
{
    return rows % 4 == 0 && (size_t)rows * inner <= SMALL_LEFT;
}

/* dU = dM x V^T uses cnn_gemm_small_dw where dV takes the blocked kernel
 * (small_left(C, K)), and also for fewer than 4 channels (a first
 * layer's RGB), whose 3 columns the BLAS spends its time packing. */
static int small_du(int C, int K)
{
    return small_left(C, K) || (C < 4 && (size_t)C * K <= SMALL_LEFT);
}

/* Floats between two of the 16 transformed matrices beyond their size:
 * one cache line, so that the 16 do not share cache sets. */
#define XGAP 16

/* The kernels of one Winograd variant: F(m x m, r x r), (m+r-1)^2
 * positions. */
typedef struct {
    int m, npos;
    size_t (*scratch)(int th, int tw);
    void (*filter)(const float *w, int K, int C, float *U);
    void (*filter_grad)(const float *dU, int K, int C, float *dw);
    void (*input)(const float *x, int C, int H, int W, int pad, int th, int tw, float *V,
                  size_t ld, size_t xs, float *scratch, int spill);
    void (*input_grad)(const float *dV, size_t ld, size_t xs, int C, int H, int W, int pad,
                       int th, int tw, float *dx, float *scratch, int add);
    void (*output)(const float *M, size_t ld, size_t xs, int K, int OH, int OW, int th, int tw,
                   const float *bias, float *y, float *scratch, int relu);
    void (*output_grad)(const float *dy, const float *y, int K, int OH, int OW, int th, int tw,
                        float *dM, size_t ld, size_t xs, float *scratch, int spill, float *db);
} wino_impl_t;

static const wino_impl_t wino2 = {2, 16, cnn_wino_scratch, cnn_wino_filter,
                                  cnn_wino_filter_grad, cnn_wino_input, cnn_wino_input_grad,
                                  cnn_wino_output, cnn_wino_output_grad};
static const wino_impl_t wino4 = {4, 36, cnn_wino4_scratch, cnn_wino4_filter,
                                  cnn_wino4_filter_grad, cnn_wino4_input, cnn_wino4_input_grad,
                                  cnn_wino4_output, cnn_wino4_output_grad};
static const wino_impl_t wino25 = {2, 36, cnn_wino25_scratch, cnn_wino25_filter,
                                   cnn_wino25_filter_grad, cnn_wino25_input,
                                   cnn_wino25_input_grad, cnn_wino25_output,
                                   cnn_wino25_output_grad};

/* Winograd geometry, from the spec and input shape alone. */
typedef struct {
    const wino_impl_t *f; /* F(2x2, 3x3), F(4x4, 3x3) or F(2x2, 5x5) */
    int npos;            /* 16 or 36 transformed matrices */
    int th, tw;          /* tiles per image: ceil(OH/m) x ceil(OW/m) */
    size_t tpi;          /* th * tw */
    size_t vimg, mimg;   /* floats of V and of M per image: npos*C*tpi, npos*K*tpi */
    size_t ukc;          /* floats of U (and of dU, and U^T): npos*K*C */
    int nu;              /* U and dU, and U^T when dV uses small_left */
    int chunk;           /* most images per chunk */
    int quad;            /* F(4x4) on 2 x 2 tiles: the image transforms take
                            two images at a time (cnn_wino4_input2) */
} wgeom_t;

/* Images per chunk, at most. A chunk's V and M stay in the caches from
 * one phase to the next. V is computed again in the backward pass, a
 * chunk at a time, rather than kept for the whole batch: writing it out
 * to memory and reading it back costs more than transforming again. */
#define WINO_IMAGES 16
/* ... or more, up to WINO_TILES tiles, for images of few tiles: dU sums
 * a chunk's tiles per (tile position, filter, channel), and at 4 tiles an
 * image (F(4x4) on 7x7 and 8x8) 16 images made these sums too short to
 * pay for their setup (ResNet-20's last stage, backward: 4.3-4.4 ms in
 * chunks of 16 images, 3.2-3.4 in chunks of 64) */
#define WINO_TILES 256
/* The backward pass's chunks hold at most this much V and M (but at least
 * WINO_TILES tiles): a constant, not the machine's cache, as the chunks
 * decide the order of dU's sums. cifar-3layer's conv2 (442 KB an image)
 * takes 9.8-9.9 ms backward in chunks of 4 images, 10.7-11.5 in chunks of
 * 16. */
#define WINO_BWD_BYTES ((size_t)2 << 20)

static wgeom_t wgeom(int variant, int C, int K, int OH, int OW, int nmax)
{
    const wino_impl_t *f = variant == CNN_CONV_WINOGRAD4    ? &wino4
                           : variant == CNN_CONV_WINOGRAD25 ? &wino25
                                                            : &wino2;
    wgeom_t g = {.f = f, .npos = f->npos, .th = (OH + f->m - 1) / f->m,
                 .tw = (OW + f->m - 1) / f->m};
    g.tpi = (size_t)g.th * g.tw;
    g.vimg = (size_t)g.npos * C * g.tpi;
    g.mimg = (size_t)g.npos * K * g.tpi;
    g.ukc = (size_t)g.npos * K * C;
    g.nu = 2 + small_left(C, K);
    g.quad = f == &wino4 && g.th == 2 && g.tw == 2;
    /* at most WINO_IMAGES images (or WINO_TILES tiles) and half the
     * column budget per chunk, and chunks of the largest batch as even as
     * possible */
    size_t c = cnn_conv_chunk_floats() / 2 / (g.mimg + g.vimg);
    const size_t most = WINO_IMAGES > WINO_TILES / g.tpi ? WINO_IMAGES : WINO_TILES / g.tpi;
    c = c < 1 ? 1 : c < most ? c : most;
    c = c < (size_t)nmax ? c : (size_t)nmax;
    const size_t nchunks = ((size_t)nmax + c - 1) / c;
    g.chunk = (int)(((size_t)nmax + nchunks - 1) / nchunks);
    return g;
}

/* The Winograd geometry of a built layer: what shape decided, read back
 * from its sizes (not from the settings, which may have changed since). */
static wgeom_t wgeom_layer(const cnn_layer_t *l)
{
    wgeom_t w = wgeom(l->sz.variant, l->in.c, l->spec.filters, l->out.h, l->out.w, l->in.n);
    w.chunk = (int)((l->sz.shared - (size_t)w.npos * XGAP * 2) / (w.mimg + w.vimg));
    return w;
}

/* Column blocks of a chunk's GEMMs, of about WINO_BLOCK columns (whole
 * images, but for the bounds' rounding in block_range): fixed by the
 * chunk, not the threads (wino_chunk says where the chunk may depend on
 * them), so that every element is summed in the same order whatever the
 * thread count. */
#define WINO_BLOCK 512
static int wino_blocks(int nb, size_t tpi)
{
    const size_t nblk = ((size_t)nb * tpi + WINO_BLOCK - 1) / WINO_BLOCK;
    return nblk < (size_t)nb ? (int)nblk : nb;
}

/* Columns a block's bounds fall on: whole vectors of the blocked kernel
 * (of 16 lanes, or 2 of 8), so that only a chunk's last block has a tail
 * of columns narrower than a vector, which the kernel takes more slowly.
 * The kernel gives a column the same bits wherever the blocks cut, so
 * this choice changes the speed only. */
#define BLOCK_ALIGN 16

/* Block b's columns [c0, c1): about images [nb b / nblk, nb (b + 1) /
 * nblk), the inner bounds rounded down to BLOCK_ALIGN columns. */
static void block_range(int nb, size_t tpi, int nblk, int b, size_t *c0, size_t *c1)
{
    const size_t tc = tpi * (size_t)nb;
    *c0 = tpi * (size_t)(nb * b / nblk) / BLOCK_ALIGN * BLOCK_ALIGN;
    *c1 = b + 1 == nblk ? tc : tpi * (size_t)(nb * (b + 1) / nblk) / BLOCK_ALIGN * BLOCK_ALIGN;
}

/* The calling thread's images [lo, hi) of a chunk of nb, in a parallel
 * region: one run, so that an image transform may spill into the tiles
 * of the next image, which the same thread transforms after it. */
static void my_images(int nb, int *lo, int *hi)
{
    size_t a, b;
    conv_split((size_t)nb, omp_get_thread_num(), omp_get_num_threads(), &a, &b);
    *lo = (int)a;
    *hi = (int)b;
}

/* my_images for the two-image transforms (w->quad): whole pairs */
static void my_pairs(int nb, int *lo, int *hi)
{
    size_t a, b;
    conv_split((size_t)(nb + 1) / 2, omp_get_thread_num(), omp_get_num_threads(), &a, &b);
    *lo = (int)(2 * a);
    *hi = (int)(2 * b) < nb ? (int)(2 * b) : nb;
}

/* Bytes of one core's L2 cache: the forward pass's chunks fit their V
 * and M into it (1 MB when the system does not say). */
static size_t l2_bytes(void)
{
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long b = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (b >= (256 << 10) && b <= (64 << 20)) return (size_t)b;
#endif
    return (size_t)1 << 20;
}

/* Images per chunk of a pass over a batch of n, as even as the chunk
 * limit allows. The forward pass takes fewer than w->chunk where a
 * chunk's V and M then stay in the L2 caches of the cores that compute it:
 * from a transform to its products and from these to the output
 * transform, they are not written to memory and read back. Measured on
 * 32x32 F(4x4) layers (cifar-3layer's conv2, ResNet-20's first stage)
 * 10-25% faster. Only where the products take the blocked kernel
 * (blocked), which gives a column the same bits wherever the column
 * blocks are cut: the BLAS does not (a column's sums differ between
 * blocks of 16 and of 44 columns), and the chunks, which set the blocks,
 * would then make the outputs depend on the thread count. And never
 * fewer images than threads (pairs of them with w->quad). The backward
 * pass, whose chunks decide the order of dU's sums, takes chunks of at
 * most WINO_BWD_BYTES whatever the machine and the threads. A smaller
 * chunk keeps its tiles a multiple of 16 columns, which the blocked
 * kernel takes fastest, or the chunk stays as it was: Fashion-MNIST's
 * 28x28 layers, 49 tiles an image, are slower in chunks of 2 or 4
 * images, whose tails are 2 or 4 columns. */
static int wino_chunk(const wgeom_t *w, int n, int fwd, int cores, int blocked)
{
    int most = w->chunk, fewer = 0;
    const size_t per = sizeof(float) * (w->mimg + w->vimg);
    const size_t least = fwd ? (size_t)cores * (w->quad ? 2 : 1) : WINO_TILES / w->tpi;
    size_t c = fwd ? l2_bytes() * (size_t)cores / per : WINO_BWD_BYTES / per;
    if (c < least) c = least;
    while (c >= 1 && c * w->tpi % 16) c--;
    if ((blocked || !fwd) && c >= 1 && c < (size_t)most) {
        most = (int)c;
        fewer = 1;
    }
    const int nchunks = (n + most - 1) / most;
    int nc = (n + nchunks - 1) / nchunks;
    while (fewer && nc < most && nc * w->tpi % 16) nc++; /* evened, still whole vectors */
    return nc;
}

/* One chunk of images [b0, b0 + nb) of a batch cut into chunks of nc. */
typedef struct {
    int b0, nb, nblk; /* first image, images, GEMM column blocks */
    size_t tc;        /* tiles: nb * tpi, the columns of V and M */
    size_t vxs, mxs;  /* floats between V's (and M's) 16 matrices */
    float *M, *V;     /* M (dM) at the start of the shared scratch, V after it */
} wchunk_t;

static wchunk_t wino_chunk_at(const cnn_layer_t *l, const cnn_ctx_t *ctx,
                              const wgeom_t *w, int n, int b0, int nc)
{
    wchunk_t c = {.b0 = b0, .nb = n - b0 < nc ? n - b0 : nc};
    c.tc = (size_t)c.nb * w->tpi;
    c.nblk = wino_blocks(c.nb, w->tpi);
    c.vxs = (size_t)l->in.c * c.tc + XGAP;
    c.mxs = (size_t)l->spec.filters * c.tc + XGAP;
    c.M = ctx->shared;
    c.V = ctx->shared + (size_t)w->chunk * w->mimg + (size_t)w->npos * XGAP;
    return c;
}

static void wino_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz)
{
    const wgeom_t w = wgeom(sz->variant, g->C, g->K, g->OH, g->OW, nmax);
    const size_t gaps = (size_t)w.npos * XGAP;
    sz->work = w.f->scratch(w.th, w.tw);
    sz->cache = w.nu * w.ukc + (size_t)nmax * g->K; /* U, dU (U^T); the bias sums */
    sz->shared = (size_t)w.chunk * (w.mimg + w.vimg) + 2 * gaps; /* M, then V */
}

/* In a parallel region: V from the calling thread's images of the chunk
 * and, with dy, dM from their output gradients (where y > 0, with y: a
 * ReLU folded into the layer) and each image's share of the bias
 * gradient, K floats an image at dbp (image b0 + i at dbp + (b0 + i) K). */
static void transform_images(const cnn_ctx_t *ctx, const conv_geom_t *g, const wgeom_t *w,
                             const wchunk_t *c, const float *x, const float *dy, const float *y,
                             float *dbp)
{
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    int lo, hi;
    if (w->quad) {
        my_pairs(c->nb, &lo, &hi);
        for (int i = lo; i < hi; i += 2) {
            const float *xa = x + (size_t)(c->b0 + i) * chw;
            cnn_wino4_input2(xa, i + 1 < hi ? xa + chw : NULL, g->C, g->H, g->W, g->P,
                             c->V + (size_t)i * w->tpi, c->tc, c->vxs, layer_work(ctx));
            if (dy) {
                const size_t at = (size_t)(c->b0 + i) * kohw;
                const float *da = dy + at, *ya = y ? y + at : NULL;
                cnn_wino4_output_grad2(da, i + 1 < hi ? da + kohw : NULL, ya,
                                       ya && i + 1 < hi ? ya + kohw : NULL, g->K, g->OH, g->OW,
                                       c->M + (size_t)i * w->tpi, c->tc, c->mxs,
                                       layer_work(ctx), dbp + (size_t)(c->b0 + i) * g->K);
            }
        }
        return;
    }
    my_images(c->nb, &lo, &hi);
    for (int i = lo; i < hi; i++) {
        w->f->input(x + (size_t)(c->b0 + i) * chw, g->C, g->H, g->W, g->P, w->th, w->tw,
                    c->V + (size_t)i * w->tpi, c->tc, c->vxs, layer_work(ctx), i + 1 < hi);
        if (dy) {
            const size_t at = (size_t)(c->b0 + i) * kohw;
            w->f->output_grad(dy + at, y ? y + at : NULL, g->K, g->OH, g->OW, w->th, w->tw,
                              c->M + (size_t)i * w->tpi, c->tc, c->mxs, layer_work(ctx),
                              i + 1 < hi, dbp + (size_t)(c->b0 + i) * g->K);
        }
    }
}

/* In a parallel region: M[xi] (K, tc) = U[xi] (K, C) x V[xi] (C, tc), by
 * column blocks, block-major: with as many blocks as threads (or a
 * multiple), a thread multiplies the columns of the images it transformed,
 * and transforms them back, in its own caches. */
static void products_m(const conv_geom_t *g, const wgeom_t *w, const wchunk_t *c,
                       const float *U)
{
    const size_t tc = c->tc;
#pragma omp for schedule(static)
    for (int it = 0; it < w->npos * c->nblk; it++) {
        const int xi = it % w->npos;
        size_t c0, c1;
        block_range(c->nb, w->tpi, c->nblk, it / w->npos, &c0, &c1);
        if (small_left(g->K, g->C))
            cnn_gemm_small_inner(U + (size_t)xi * g->K * g->C, NULL, g->K, g->C,
                                 c->V + (size_t)xi * c->vxs + c0, tc, c1 - c0,
                                 c->M + (size_t)xi * c->mxs + c0, tc);
        else
            cnn_sgemm(0, 0, g->K, (int)(c1 - c0), g->C, 1.0f, U + (size_t)xi * g->K * g->C, g->C,
                      c->V + (size_t)xi * c->vxs + c0, (int)tc, 0.0f,
                      c->M + (size_t)xi * c->mxs + c0, (int)tc);
    }
}

/* UT[xi] (C, K) = U[xi]^T, the left matrix of dV for the blocked kernel:
 * UT's rows in turn, which writes it in order (at 64 x 64, 45 us against
 * 84 for U's rows in turn, which write UT a float every K) */
static void transpose_u(const conv_geom_t *g, const wgeom_t *w, const float *U, float *UT)
{
    const size_t kc = (size_t)g->K * g->C;
    for (int xi = 0; xi < w->npos; xi++)
        for (int ch = 0; ch < g->C; ch++)
            for (int k = 0; k < g->K; k++)
                UT[(size_t)xi * kc + (size_t)ch * g->K + k] =
                    U[(size_t)xi * kc + (size_t)k * g->C + ch];
}

/* In a parallel region: dU[xi] (K, C) += dM[xi] (K, tc) x V[xi]^T (tc, C)
 * (set, not added, for the first chunk), one whole xi per thread: split
 * by column blocks instead, the per-block shares would have to be added
 * afterwards, which costs more than it saves. */
static void products_du(const conv_geom_t *g, const wgeom_t *w, const wchunk_t *c, int small,
                        float *dU)
{
    const size_t kc = (size_t)g->K * g->C, tc = c->tc;
    const float beta = c->b0 ? 1.0f : 0.0f;
#pragma omp for schedule(static)
    for (int xi = 0; xi < w->npos; xi++) {
        float *dUx = dU + (size_t)xi * kc;
        if (small) {
            if (!c->b0) memset(dUx, 0, sizeof(float) * kc);
            cnn_gemm_small_dw(c->M + (size_t)xi * c->mxs, tc, 0, g->K, tc,
                              c->V + (size_t)xi * c->vxs, tc, g->C, dUx, NULL);
        } else {
            cnn_sgemm(0, 1, g->K, g->C, (int)tc, 1.0f, c->M + (size_t)xi * c->mxs, (int)tc,
                      c->V + (size_t)xi * c->vxs, (int)tc, beta, dUx, g->C);
        }
    }
}

/* In a parallel region: dV[xi] (C, tc) = U[xi]^T (C, K) x dM[xi] (K, tc),
 * over V, by column blocks as products_m; UT is U^T for the blocked
 * kernel (small). */
static void products_dv(const conv_geom_t *g, const wgeom_t *w, const wchunk_t *c, int small,
                        const float *U, const float *UT)
{
    const size_t kc = (size_t)g->K * g->C, tc = c->tc;
#pragma omp for schedule(static)
    for (int it = 0; it < w->npos * c->nblk; it++) {
        const int xi = it % w->npos;
        size_t c0, c1;
        block_range(c->nb, w->tpi, c->nblk, it / w->npos, &c0, &c1);
        if (small)
            cnn_gemm_small_inner(UT + (size_t)xi * kc, NULL, g->C, g->K,
                                 c->M + (size_t)xi * c->mxs + c0, tc, c1 - c0,
                                 c->V + (size_t)xi * c->vxs + c0, tc);
        else
            cnn_sgemm(1, 0, g->C, (int)(c1 - c0), g->K, 1.0f, U + (size_t)xi * kc, g->C,
                      c->M + (size_t)xi * c->mxs + c0, (int)tc, 0.0f,
                      c->V + (size_t)xi * c->vxs + c0, (int)tc);
    }
}

/* The tensors of one pass over a batch: forward (x -> y; dy NULL) or
 * backward (x, dy -> dU and, if dx is not NULL, dx). relu: a ReLU folded
 * into the layer, which clamps y (forward) and masks dy by the output yr
 * (backward). */
typedef struct {
    const float *x, *dy, *yr;
    int relu;
    const float *U, *UT; /* U; U^T when small (backward, for dV) */
    const float *b;      /* bias (forward) */
    float *y, *dU, *dx;
    float *dbp;          /* backward: each image's bias gradient, K floats */
    int add;             /* backward: dx += the input gradient (ctx->dx_add) */
    int small;           /* backward: the blocked kernel for dV */
    int small_du;        /* backward: the blocked kernel for dU */
} wpass_t;

/* In a parallel region, once the chunk's V is made: M = U x V, and the
 * chunk's outputs from it. */
static void forward_chunk(const cnn_ctx_t *ctx, const conv_geom_t *g, const wgeom_t *w,
                          const wchunk_t *c, const wpass_t *p)
{
    const size_t kohw = (size_t)g->K * g->ohw;
    products_m(g, w, c, p->U);
    if (w->quad) {
#pragma omp for schedule(static)
        for (int i = 0; i < c->nb; i += 2) {
            float *ya = p->y + (size_t)(c->b0 + i) * kohw;
            cnn_wino4_output2(c->M + (size_t)i * w->tpi, c->tc, c->mxs, g->K, g->OH, g->OW,
                              p->b, ya, i + 1 < c->nb ? ya + kohw : NULL, layer_work(ctx),
                              p->relu);
        }
        return;
    }
#pragma omp for schedule(static)
    for (int i = 0; i < c->nb; i++)
        w->f->output(c->M + (size_t)i * w->tpi, c->tc, c->mxs, g->K, g->OH, g->OW, w->th, w->tw,
                     p->b, p->y + (size_t)(c->b0 + i) * kohw, layer_work(ctx), p->relu);
}

/* In a parallel region, once the chunk's V and dM are made: dU += dM x
 * V^T, and with dx, dV = U^T x dM and the chunk's input gradients from
 * it. */
static void backward_chunk(const cnn_ctx_t *ctx, const conv_geom_t *g, const wgeom_t *w,
                           const wchunk_t *c, const wpass_t *p)
{
    const size_t chw = (size_t)g->C * g->H * g->W;
    products_du(g, w, c, p->small_du, p->dU);
    if (!p->dx) return;
    products_dv(g, w, c, p->small, p->U, p->UT);
    if (w->quad) {
#pragma omp for schedule(static)
        for (int i = 0; i < c->nb; i += 2) {
            float *da = p->dx + (size_t)(c->b0 + i) * chw;
            cnn_wino4_input_grad2(c->V + (size_t)i * w->tpi, c->tc, c->vxs, g->C, g->H, g->W,
                                  g->P, da, i + 1 < c->nb ? da + chw : NULL, layer_work(ctx),
                                  p->add);
        }
        return;
    }
#pragma omp for schedule(static)
    for (int i = 0; i < c->nb; i++)
        w->f->input_grad(c->V + (size_t)i * w->tpi, c->tc, c->vxs, g->C, g->H, g->W, g->P, w->th,
                         w->tw, p->dx + (size_t)(c->b0 + i) * chw, layer_work(ctx), p->add);
}

/* The batch of n a chunk at a time, each in one parallel region: its
 * images' transforms, then the rest of the pass on it. */
static void wino_pass(const cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g,
                      const wgeom_t *w, int n, const wpass_t *p)
{
    const int nc = wino_chunk(w, n, !p->dy, ctx->nthreads, small_left(g->K, g->C));
    for (int b0 = 0; b0 < n; b0 += nc) {
        const wchunk_t c = wino_chunk_at(l, ctx, w, n, b0, nc);
#pragma omp parallel num_threads(ctx->nthreads)
        {
            transform_images(ctx, g, w, &c, p->x, p->dy, p->yr, p->dbp);
#pragma omp barrier
            if (p->dy)
                backward_chunk(ctx, g, w, &c, p);
            else
                forward_chunk(ctx, g, w, &c, p);
        }
    }
}

static void wino_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                         const float *x, float *y)
{
    const wgeom_t w = wgeom_layer(l);
    w.f->filter(l->params, g->K, g->C, l->cache);
    const wpass_t p = {.x = x, .U = l->cache, .b = l->params + (size_t)g->K * g->ckk, .y = y,
                       .relu = l->relu_out};
    wino_pass(l, ctx, g, &w, n, &p);
}

static void wino_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                          const float *x, const float *y, const float *dy,
                          float *dx)
{
    const wgeom_t w = wgeom_layer(l);
    float *dw = l->grads, *db = l->grads + (size_t)g->K * g->ckk;
    float *UT = l->cache + 2 * w.ukc;
    const wpass_t p = {.x = x, .dy = dy, .yr = l->relu_out ? y : NULL, .U = l->cache, .UT = UT,
                       .dU = l->cache + w.ukc, .dx = dx, .small = small_left(g->C, g->K),
                       .small_du = small_du(g->C, g->K),
                       .dbp = l->cache + (size_t)w.nu * w.ukc, .add = ctx->dx_add};
    if (dx && p.small) transpose_u(g, &w, p.U, UT);
    wino_pass(l, ctx, g, &w, n, &p);
    w.f->filter_grad(p.dU, g->K, g->C, dw);
    for (int k = 0; k < g->K; k++) { /* db: the images' sums in image order */
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += p.dbp[(size_t)i * g->K + k];
        db[k] += s;
    }
}

const conv_engine_t cnn_conv_winograd_engine = {
    .name = "winograd",
    .sizes = wino_sizes,
    .forward = wino_forward,
    .backward = wino_backward,
    .relu = 1,
    .dx_add = 1,
};
