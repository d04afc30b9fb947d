/* conv_smallgemm.c - the conv engine for column matrices of few rows.
 *
 * A layer whose column matrix has few rows (C*KH*KW: 9 for 3x3 on grey
 * images, 27 or 75 for 3x3 or 5x5 on RGB, a first layer) unfolds its
 * images as the im2col engine does (conv_im2col.c, whose column steps it
 * shares), but the forward product and dW use the blocked kernels of
 * kernels/smallgemm.c: with so few rows the BLAS spends its time packing
 * and on edges, where the blocked kernels load each column once for
 * several filters. The forward kernel takes the filters in blocks of 4;
 * with K not a multiple of 4 the product goes to the BLAS.
 *
 * Threads take whole images in both passes. The backward pass sums each
 * image's dW and db into a partial-sum slot of the shared scratch, then
 * adds the slots to the gradient in image order. A ReLU folded into the
 * layer (relu_out) clamps each image's output after its product, and
 * masks its output gradient into the thread's scratch before dW. */
#include <string.h>

#include "conv_engine.h"
#include "mpicnn/kernels.h"

size_t cnn_conv_slot_floats(int K, size_t ckk)
{
    return ((size_t)K * ckk + (size_t)K + 15) / 16 * 16;
}

static void small_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz)
{
    (void)cnn_conv_cols_sizes(g, nmax, sz);
    /* after one image's columns, its output gradient masked by a ReLU
     * folded into the layer (relu_out) */
    sz->work += (size_t)g->K * g->ohw;
    /* per-image partial dW and db, a chunk at a time */
    const size_t slot = cnn_conv_slot_floats(g->K, g->ckk);
    sz->shared = slot * (size_t)cnn_conv_chunk_images(slot, nmax);
}

/* y_i = b + W x col_i by the blocked kernel, which takes K in blocks of 4 */
static void small_product(const conv_geom_t *g, const float *w, const float *b,
                          const float *col, float *yi)
{
    if (g->K % 4 == 0)
        cnn_gemm_small_inner(w, b, g->K, (int)g->ckk, col, g->ohw, g->ohw, yi, g->ohw);
    else
        cnn_conv_gemm_product(g, w, b, col, yi);
}

static void small_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                          const float *x, float *y)
{
    cnn_conv_cols_forward(l, ctx, g, n, x, y, small_product);
}

void cnn_conv_add_slots(const float *part, size_t slot, size_t used, int nb, float *grad)
{
    size_t lo, hi;
    conv_split(slot / 16, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
    lo *= 16;
    hi = 16 * hi < used ? 16 * hi : used;
    for (int i = 0; i < nb; i++) {
        const float *pi = part + (size_t)i * slot;
        for (size_t e = lo; e < hi; e++) grad[e] += pi[e];
    }
}

/* Threads take whole images: each sums its images' dW and db into
 * per-image slots of the shared scratch, from columns that are cached or
 * that it unfolds into its own scratch, where they stay in its cache.
 * Then the slots are added to the gradient in image order, split by
 * element over threads. Every element gets the same additions in the same
 * order as one thread summing image after image (the kernel adds each
 * image's sum to its output), whatever the thread count. Splitting dW by
 * rows instead would make every thread read every image's columns, which
 * is where such a layer's backward pass spends its time. */
static void small_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                           const float *x, const float *y, const float *dy,
                           float *dx)
{
    const size_t nw = (size_t)g->K * g->ckk, slot = cnn_conv_slot_floats(g->K, g->ckk);
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    /* the slots that fit the shared scratch, as small_sizes planned it */
    const int chunk = (int)(l->sz.shared / slot);
    const int have = l->sz.cache > 0 && ctx->train; /* the forward pass kept the columns */
    float *grad = l->grads; /* dW (K, CKK), then db (K), as in a slot */
    for (int b0 = 0; b0 < n; b0 += chunk) {
        const int nb = n - b0 < chunk ? n - b0 : chunk;
#pragma omp parallel num_threads(ctx->nthreads)
        {
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++) {
                const float *dyi = dy + (size_t)(b0 + i) * kohw;
                float *part = ctx->shared + (size_t)i * slot, *col = layer_work(ctx);
                if (l->relu_out) { /* the ReLU's backward pass, into this core's cache */
                    float *m = layer_work(ctx) + g->colsz;
                    const float *yi = y + (size_t)(b0 + i) * kohw;
                    for (size_t j = 0; j < kohw; j++) {
                        const float v = dyi[j]; /* read always: a select */
                        m[j] = yi[j] > 0.0f ? v : 0.0f;
                    }
                    dyi = m;
                }
                if (have)
                    col = l->cache + (size_t)(b0 + i) * g->colsz;
                else
                    cnn_conv_unfold(g, x + (size_t)(b0 + i) * chw, col);
                memset(part, 0, sizeof(float) * slot);
                cnn_gemm_small_dw(dyi, g->ohw, 0, g->K, g->ohw, col, g->ohw, (int)g->ckk, part,
                                  part + nw);
                if (dx)
                    cnn_conv_input_grad(g, l->params, dyi, layer_work(ctx),
                                        dx + (size_t)(b0 + i) * chw);
            }
            cnn_conv_add_slots(ctx->shared, slot, nw + (size_t)g->K, nb, grad);
        }
    }
}

const conv_engine_t cnn_conv_smallgemm_engine = {
    .name = "smallgemm",
    .sizes = small_sizes,
    .forward = small_forward,
    .backward = small_backward,
    .relu = 1,
};
