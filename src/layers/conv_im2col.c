/* conv_im2col.c - the conv engine of im2col + GEMM, one image per GEMM.
 *
 * Each image's patches are unfolded into a column matrix col_i
 * (C*KH*KW, OH*OW); then
 *   forward:  y_i  (K, OH*OW)   = b + W x col_i       (straight into y)
 *   backward: dW   (K, C*KH*KW) += sum_i dy_i x col_i^T
 *             db   (K)          += sum_i rows of dy_i
 *             dx_i              = col2im(W^T x dy_i)
 * y_i and dy_i are already (K, OH*OW) slices of NCHW tensors, so no
 * layout change is needed around the GEMMs, and the bias is the GEMM's
 * starting value.
 *
 * In training the forward pass keeps every col_i in the layer's cache, so
 * the backward pass does not unfold the images again. The cache is sized
 * for the whole batch when that fits the column budget
 * (cnn_conv_set_chunk_floats, 16 MB by default); a bigger layer unfolds
 * again in the backward pass, a chunk of images at a time in the shared
 * scratch.
 *
 * Threads: the forward pass and the input gradient take whole images per
 * thread (each thread unfolds into its own scratch); dW is split into
 * blocks of DW_BLOCK rows or columns (fixed by the shape, so that the
 * BLAS gets the same calls whatever the thread count) and db by rows,
 * each thread summing over every image in order. No two threads write one
 * element, and every element is summed in the same order whatever the
 * thread count.
 *
 * The column steps (unfold, sizes, forward, input gradient) serve the
 * small-D engine (conv_smallgemm.c) too. */
#include <string.h>

#include "conv_engine.h"
#include "mpicnn/kernels.h"

void cnn_conv_unfold(const conv_geom_t *g, const float *xi, float *col)
{
    cnn_im2col(xi, g->C, g->H, g->W, g->KH, g->KW, g->S, g->P, col, g->ohw);
}

int cnn_conv_cols_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz)
{
    const int chunk = cnn_conv_chunk_images(g->colsz, nmax);
    sz->work = g->colsz; /* one image's columns: forward without cache, dx */
    if (chunk >= nmax) sz->cache = g->colsz * (size_t)nmax; /* every image's columns */
    return chunk;
}

void cnn_conv_gemm_product(const conv_geom_t *g, const float *w, const float *b,
                           const float *col, float *yi)
{
    for (int k = 0; k < g->K; k++)
        for (size_t p = 0; p < g->ohw; p++) yi[(size_t)k * g->ohw + p] = b[k];
    /* y_i (K, OHW) += W (K, CKK) x col_i (CKK, OHW) */
    cnn_sgemm(0, 0, g->K, (int)g->ohw, (int)g->ckk, 1.0f, w, (int)g->ckk, col, (int)g->ohw,
              1.0f, yi, (int)g->ohw);
}

void cnn_conv_cols_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                           const float *x, float *y, conv_product_fn product)
{
    const float *w = l->params, *b = l->params + (size_t)g->K * g->ckk;
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    const int keep = l->sz.cache > 0 && ctx->train;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int i = 0; i < n; i++) {
        float *col = keep ? l->cache + (size_t)i * g->colsz : layer_work(ctx);
        cnn_conv_unfold(g, x + (size_t)i * chw, col);
        product(g, w, b, col, y + (size_t)i * kohw);
        if (l->relu_out) /* while the image's output is in this core's cache */
            for (size_t j = 0; j < kohw; j++) {
                const float v = y[(size_t)i * kohw + j];
                y[(size_t)i * kohw + j] = v > 0.0f ? v : 0.0f;
            }
    }
}

void cnn_conv_input_grad(const conv_geom_t *g, const float *w, const float *dyi, float *dcol,
                         float *dxi)
{
    /* dcol_i (CKK, OHW) = W^T (CKK, K) x dy_i (K, OHW), folded back into dx_i */
    cnn_sgemm(1, 0, (int)g->ckk, (int)g->ohw, g->K, 1.0f, w, (int)g->ckk, dyi, (int)g->ohw, 0.0f,
              dcol, (int)g->ohw);
    memset(dxi, 0, sizeof(float) * (size_t)g->C * g->H * g->W);
    cnn_col2im(dcol, g->ohw, g->C, g->H, g->W, g->KH, g->KW, g->S, g->P, dxi);
}

static void im2col_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz)
{
    const int chunk = cnn_conv_cols_sizes(g, nmax, sz);
    if (chunk < nmax) sz->shared = g->colsz * (size_t)chunk; /* a chunk's columns, again */
}

static void im2col_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                           const float *x, float *y)
{
    cnn_conv_cols_forward(l, ctx, g, n, x, y, cnn_conv_gemm_product);
}

/* dW is split into blocks of DW_BLOCK rows (by_rows) or columns, fixed
 * by the shape: the BLAS may sum in another order for another width, so
 * a thread's share of the products is whole blocks, each one call, the
 * same calls whatever the thread count. */
#define DW_BLOCK 32

/* dW += sum over the chunk's nb images of dy_i x col_i^T, the calling
 * thread's share: blocks [blo, bhi) of dW's rows (by_rows) or columns. */
static void weight_grad_share(const conv_geom_t *g, int by_rows, size_t blo, size_t bhi, int nb,
                              const float *dy, const float *col, float *dw)
{
    const size_t kohw = (size_t)g->K * g->ohw, dim = by_rows ? (size_t)g->K : g->ckk;
    for (size_t b = blo; b < bhi; b++) {
        const size_t lo = b * DW_BLOCK, hi = lo + DW_BLOCK < dim ? lo + DW_BLOCK : dim;
        for (int i = 0; i < nb; i++) {
            const float *dyi = dy + (size_t)i * kohw, *ci = col + (size_t)i * g->colsz;
            if (by_rows) /* dW[lo:hi, :] += dy_i[lo:hi, :] x col_i^T */
                cnn_sgemm(0, 1, (int)(hi - lo), (int)g->ckk, (int)g->ohw, 1.0f,
                          dyi + lo * g->ohw, (int)g->ohw, ci, (int)g->ohw, 1.0f,
                          dw + lo * g->ckk, (int)g->ckk);
            else /* dW[:, lo:hi] += dy_i x col_i[lo:hi, :]^T */
                cnn_sgemm(0, 1, g->K, (int)(hi - lo), (int)g->ohw, 1.0f, dyi, (int)g->ohw,
                          ci + lo * g->ohw, (int)g->ohw, 1.0f, dw + lo, (int)g->ckk);
        }
    }
}

static void im2col_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                            const float *x, const float *y, const float *dy,
                            float *dx)
{
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    float *dw = l->grads, *db = l->grads + (size_t)g->K * g->ckk;
    const int cached = l->sz.cache > 0;
    /* images per chunk, as im2col_sizes planned them */
    const int chunk = cached ? l->in.n : (int)(l->sz.shared / g->colsz);
    /* the forward pass of a training step kept the columns */
    const int have = cached && ctx->train;
    /* split dW by its longer side, so every thread gets real work */
    const int by_rows = (size_t)g->K >= g->ckk;
    (void)y; /* no relu_out */
    cnn_conv_bias_grad(g, ctx, n, dy, db);
    for (int b0 = 0; b0 < n; b0 += chunk) {
        const int nb = n - b0 < chunk ? n - b0 : chunk;
        /* else unfold again, into the cache (an eval-mode forward left it
         * stale) or a chunk at a time into the shared scratch */
        float *col = cached ? l->cache : ctx->shared;
        if (have) col += (size_t)b0 * g->colsz;
#pragma omp parallel num_threads(ctx->nthreads)
        {
            if (!have) {
#pragma omp for schedule(static)
                for (int i = 0; i < nb; i++)
                    cnn_conv_unfold(g, x + (size_t)(b0 + i) * chw, col + (size_t)i * g->colsz);
            }
            const size_t dim = by_rows ? (size_t)g->K : g->ckk;
            size_t blo, bhi;
            conv_split((dim + DW_BLOCK - 1) / DW_BLOCK, omp_get_thread_num(),
                       omp_get_num_threads(), &blo, &bhi);
            weight_grad_share(g, by_rows, blo, bhi, nb, dy + (size_t)b0 * kohw, col, dw);
            if (dx) {
#pragma omp for schedule(static)
                for (int i = 0; i < nb; i++)
                    cnn_conv_input_grad(g, l->params, dy + (size_t)(b0 + i) * kohw,
                                        layer_work(ctx), dx + (size_t)(b0 + i) * chw);
            }
        }
    }
}

const conv_engine_t cnn_conv_im2col_engine = {
    .name = "im2col",
    .sizes = im2col_sizes,
    .forward = im2col_forward,
    .backward = im2col_backward,
};
