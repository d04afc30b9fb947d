/* conv_1x1.c - the conv engine for 1x1 kernels without padding.
 *
 * A 1x1 convolution is one matrix product per image on the NCHW layout
 * as it is, with x_n (C, OHW) the image's pixels that the kernel visits:
 *   forward:  y_n  (K, OHW) = b + W (K, C) x x_n
 *   backward: dW   (K, C)   += sum_n dy_n x x_n^T,  db (K) += dy_n's row sums
 *             dx_n (C, OHW) = W^T (C, K) x dy_n
 * With stride 1, x_n is the image itself (C, H*W): no unfolding and no
 * column buffer. With stride S > 1 it is the pixels (S oy, S ox) of each
 * plane, gathered into the thread's scratch first (a copy of OHW floats a
 * channel, 1/S^2 of the image), and dx_n is W^T dy_n scattered back to
 * them, zero elsewhere. Nothing is kept from the forward pass: the
 * backward pass gathers again, and the layer plans no cache.
 *
 * The products run on the blocked kernels of kernels/smallgemm.c, which
 * need no packing, when W is at most SMALL_W floats and the filters (or,
 * for dx, the channels) come in blocks of 4; else on the BLAS. dW always
 * takes the blocked kernel, one image at a time. Threads take whole
 * images in both passes; dW and db are summed per image into slots of
 * the shared scratch, then added in image order (cnn_conv_add_slots), so
 * every element is summed in the same order whatever the thread count. */
#include <string.h>

#include "conv_engine.h"
#include "mpicnn/kernels.h"

/* The largest W (K x C floats) whose products take the blocked kernels:
 * 16 KB, the bound above which the same kernels ran 7-20% slower than the
 * BLAS on Winograd's products of the same form (docs/performance.md). */
#define SMALL_W 4096

static int blocked(const conv_geom_t *g, int rows)
{
    return rows % 4 == 0 && (size_t)g->K * g->C <= SMALL_W;
}

/* Floats of W^T (C, K) at the start of the shared scratch, whole cache
 * lines; the per-image slots follow. */
static size_t wt_floats(const conv_geom_t *g)
{
    return ((size_t)g->K * g->C + 15) / 16 * 16;
}

static void pw_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz)
{
    const size_t slot = cnn_conv_slot_floats(g->K, g->ckk);
    /* stride > 1: the gathered pixels (C, OHW), and dx_n before the
     * scatter, in each thread's scratch */
    sz->work = g->S > 1 ? 2 * g->colsz : 0;
    sz->shared = wt_floats(g) + slot * (size_t)cnn_conv_chunk_images(slot, nmax);
}

/* The image's pixels as the product's right matrix (C, OHW): xi itself,
 * or gathered into buf. */
static const float *pixels(const conv_geom_t *g, const float *xi, float *buf)
{
    if (g->S == 1) return xi;
    cnn_im2col(xi, g->C, g->H, g->W, 1, 1, g->S, 0, buf, g->ohw);
    return buf;
}

static void pw_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                       const float *x, float *y)
{
    const float *w = l->params, *b = l->params + (size_t)g->K * g->C;
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (int i = 0; i < n; i++) {
        const float *col = pixels(g, x + (size_t)i * chw, layer_work(ctx));
        float *yi = y + (size_t)i * kohw;
        if (blocked(g, g->K)) /* y_i (K, OHW) = b + W (K, C) x col (C, OHW) */
            cnn_gemm_small_inner(w, b, g->K, g->C, col, g->ohw, g->ohw, yi, g->ohw);
        else
            cnn_conv_gemm_product(g, w, b, col, yi);
    }
}

/* dx_i (C, H, W) from dy_i (K, OHW): W^T x dy_i, straight into dx_i with
 * stride 1, else into buf and scattered. wt is W^T (C, K). */
static void pw_input_grad(const conv_geom_t *g, const float *w, const float *wt,
                          const float *dyi, float *buf, float *dxi)
{
    float *d = g->S == 1 ? dxi : buf;
    if (blocked(g, g->C)) /* d (C, OHW) = W^T (C, K) x dy_i (K, OHW) */
        cnn_gemm_small_inner(wt, NULL, g->C, g->K, dyi, g->ohw, g->ohw, d, g->ohw);
    else
        cnn_sgemm(1, 0, g->C, (int)g->ohw, g->K, 1.0f, w, g->C, dyi, (int)g->ohw, 0.0f, d,
                  (int)g->ohw);
    if (g->S == 1) return;
    memset(dxi, 0, sizeof(float) * (size_t)g->C * g->H * g->W);
    cnn_col2im(buf, g->ohw, g->C, g->H, g->W, 1, 1, g->S, 0, dxi);
}

/* One image's dW and db into its slot `part`, and its dx. */
static void pw_backward_image(const conv_geom_t *g, const float *w, const float *wt,
                              const float *xi, const float *dyi, float *part, float *scratch,
                              float *dxi)
{
    const size_t nw = (size_t)g->K * g->C;
    const float *col = pixels(g, xi, scratch);
    memset(part, 0, sizeof(float) * cnn_conv_slot_floats(g->K, g->ckk));
    /* part (K, C) += dy_i (K, OHW) x col (C, OHW)^T, part + nw (K) += row sums */
    cnn_gemm_small_dw(dyi, g->ohw, 0, g->K, g->ohw, col, g->ohw, g->C, part, part + nw);
    if (dxi) pw_input_grad(g, w, wt, dyi, scratch + g->colsz, dxi);
}

static void pw_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                        const float *x, const float *y, const float *dy,
                        float *dx)
{
    (void)y; /* no relu_out */
    const size_t slot = cnn_conv_slot_floats(g->K, g->ckk), nw = (size_t)g->K * g->C;
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    const float *w = l->params;
    float *wt = ctx->shared, *parts = ctx->shared + wt_floats(g);
    /* the slots that fit the shared scratch, as pw_sizes planned them */
    const int chunk = (int)((l->sz.shared - wt_floats(g)) / slot);
    if (dx && blocked(g, g->C)) /* W^T (C, K), for dx's product by the blocked kernel */
        for (int k = 0; k < g->K; k++)
            for (int c = 0; c < g->C; c++) wt[(size_t)c * g->K + k] = w[(size_t)k * g->C + c];
    for (int b0 = 0; b0 < n; b0 += chunk) {
        const int nb = n - b0 < chunk ? n - b0 : chunk;
#pragma omp parallel num_threads(ctx->nthreads)
        {
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++) {
                const size_t im = (size_t)(b0 + i);
                pw_backward_image(g, w, wt, x + im * chw, dy + im * kohw,
                                  parts + (size_t)i * slot, layer_work(ctx),
                                  dx ? dx + im * chw : NULL);
            }
            cnn_conv_add_slots(parts, slot, nw + (size_t)g->K, nb, l->grads);
        }
    }
}

const conv_engine_t cnn_conv_1x1_engine = {
    .name = "1x1",
    .sizes = pw_sizes,
    .forward = pw_forward,
    .backward = pw_backward,
};
