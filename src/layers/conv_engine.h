/* conv_engine.h - the ways the conv layer computes (not public).
 *
 * conv.c checks a layer's spec, picks one engine when the net is built
 * and runs the layer's passes through it; each engine plans the layer's
 * scratch and cache and computes the forward and backward passes:
 *   im2col + GEMM (conv_im2col.c), the same columns with the blocked
 *   kernels of kernels/smallgemm.c for few rows (conv_smallgemm.c; a 5x5
 *   layer on 1-3 channels runs its forward pass by Winograd instead),
 *   Winograd F(2x2, 3x3), F(4x4, 3x3) or F(2x2, 5x5) (conv_winograd.c),
 *   plain products on the NCHW images for 1x1 kernels (conv_1x1.c), and one
 *   product per tap on the images' polyphase planes for 3x3 stride-2
 *   kernels (conv_stride2.c).
 * The helpers below are shared by the engines, defined once: the chunk
 * planning and the bias gradient in conv.c, the column steps in
 * conv_im2col.c. Names visible to the linker carry the cnn_conv_ prefix. */
#ifndef MPICNN_CONV_ENGINE_H
#define MPICNN_CONV_ENGINE_H

#include "layer_util.h"

/* A layer's dimensions: input (C, H, W), K filters (KH, KW), stride S,
 * pad P, output (K, OH, OW). */
typedef struct {
    int C, H, W, K, KH, KW, S, P, OH, OW;
    size_t ckk, ohw, colsz; /* C*KH*KW, OH*OW, colsz = ckk * ohw: one image's columns */
} conv_geom_t;

typedef struct {
    const char *name;
    /* Fills sz->work, cache and shared for a batch of at most nmax images;
     * sz->params and sz->variant are set already. */
    void (*sizes)(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz);
    /* The layer's forward and backward passes, as cnn_layer_ops_t's
     * (x (n,C,H,W), y and dy (n,K,OH,OW); dx may be NULL). An engine with
     * `relu` runs the ReLU the net folds into the layer (l->relu_out):
     * forward writes max(y, 0), and backward takes dy where y > 0 (y is
     * what forward wrote) and 0 elsewhere, each image's share where it
     * reads dy anyway, so that the ReLU's passes over memory are saved.
     * Engines without it are never given l->relu_out: conv.c sets their
     * sz.no_relu_out, and the net's planning (net.c) then leaves the
     * ReLU on its own. An engine with `dx_add` takes ctx->dx_add
     * (layer.h): backward adds its input gradient into dx. */
    void (*forward)(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                    const float *x, float *y);
    void (*backward)(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                     const float *x, const float *y, const float *dy, float *dx);
    int relu;
    int dx_add;
} conv_engine_t;

extern const conv_engine_t cnn_conv_im2col_engine, cnn_conv_smallgemm_engine,
    cnn_conv_winograd_engine, cnn_conv_1x1_engine, cnn_conv_stride2_engine;

/* Thread t's share [lo, hi) of n items, of T threads. */
static inline void conv_split(size_t n, int t, int T, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)t / (size_t)T;
    *hi = n * (size_t)(t + 1) / (size_t)T;
}

/* conv.c: the planning budget and the bias. */

/* The most floats of column (or transformed) matrices kept at once, as
 * cnn_conv_set_chunk_floats set it. */
size_t cnn_conv_chunk_floats(void);

/* Images of `floats` floats each that fit that budget: at least 1, at
 * most nmax. */
int cnn_conv_chunk_images(size_t floats, int nmax);

/* db (K) += the sums over images and pixels of dy (n, K, OH*OW), split by
 * k over threads, each sum in a fixed order (the engines that take a
 * folded ReLU sum its masked dy where they read it: the blocked kernels'
 * dW, Winograd's dM transform). */
void cnn_conv_bias_grad(const conv_geom_t *g, const cnn_ctx_t *ctx, int n, const float *dy,
                        float *db);

/* conv_im2col.c: the column steps that the small-D engine shares. */

/* One image's columns: xi (C, H, W) -> col (CKK, OHW). */
void cnn_conv_unfold(const conv_geom_t *g, const float *xi, float *col);

/* sz->work (one image's columns) and sz->cache (every image's columns,
 * when the batch fits the budget). Returns the images per chunk. */
int cnn_conv_cols_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz);

/* y_i (K, OHW) = b + W (K, CKK) x col_i (CKK, OHW), one image's product. */
typedef void (*conv_product_fn)(const conv_geom_t *g, const float *w, const float *b,
                                const float *col, float *yi);

/* The product by the BLAS. */
void cnn_conv_gemm_product(const conv_geom_t *g, const float *w, const float *b,
                           const float *col, float *yi);

/* The forward pass over columns: each thread unfolds whole images (into
 * the cache in training when the layer keeps its columns, else into its
 * own scratch) and multiplies them by `product`; with l->relu_out it
 * clamps each image's output while that is in its cache. */
void cnn_conv_cols_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                           const float *x, float *y, conv_product_fn product);

/* dx_i (C, H, W) = col2im(W^T (CKK, K) x dy_i (K, OHW)), through dcol, one
 * image's columns of scratch. */
void cnn_conv_input_grad(const conv_geom_t *g, const float *w, const float *dyi, float *dcol,
                         float *dxi);

/* conv_smallgemm.c: the per-image partial sums of dW and db that the
 * 1x1 engine shares. */

/* Floats of one image's partial dW (K, CKK) and db (K), rounded up to
 * whole cache lines so threads do not share lines. */
size_t cnn_conv_slot_floats(int K, size_t ckk);

/* grad[lo, hi) += the nb slots (`slot` floats apart) from `part` in image
 * order, the calling thread's share of a parallel region: whole cache
 * lines of a slot's `used` elements. */
void cnn_conv_add_slots(const float *part, size_t slot, size_t used, int nb, float *grad);

#endif
