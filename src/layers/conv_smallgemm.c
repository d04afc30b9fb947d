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
 * masks its output gradient into the thread's scratch before dW.
 *
 * 5x5 stride-1 layers on 1 to 3 channels (CNN_CONV_FUSED25, a first
 * layer's 5x5 on RGB) compute the forward pass by Winograd F(2x2, 5x5)
 * instead, each image's tiles transformed into the thread's scratch and
 * their 36 products per filter summed and transformed in registers
 * (cnn_wino25_fused): 2.78x fewer multiply-adds and no columns. The
 * backward pass stays with the columns: the blocked kernels' dW takes
 * dy as it lies, where Winograd's would write dM, 9 floats per output.
 * The gradient is that of the convolution, which the forward pass
 * computes to rounding (tests/test_layers.c bounds the difference). */
#include <string.h>

#include "conv_engine.h"
#include "mpicnn/kernels.h"

size_t cnn_conv_slot_floats(int K, size_t ckk)
{
    return ((size_t)K * ckk + (size_t)K + 15) / 16 * 16;
}

/* CNN_CONV_FUSED25's forward pass: one image's V, 36 matrices of C rows
 * of th*tw tiles with a cache line between them, then a vector of tiles'
 * V in one block, then the input transform's plane; U in the cache, as
 * cnn_wino25_filter writes it, then filter by filter (UK). */
typedef struct {
    int th, tw;
    size_t xs, vfloats; /* between V's matrices; all of V, with the last gap */
} fused_t;

static fused_t fused_geom(const conv_geom_t *g)
{
    fused_t f = {.th = (g->OH + 1) / 2, .tw = (g->OW + 1) / 2};
    f.xs = (size_t)g->C * f.th * f.tw + 16; /* the kernel reads up to 15 past */
    f.vfloats = 36 * f.xs + 36 * (size_t)g->C * 16; /* with the block (16 lanes) */
    return f;
}

static void small_sizes(const conv_geom_t *g, int nmax, cnn_layer_sizes_t *sz)
{
    (void)cnn_conv_cols_sizes(g, nmax, sz);
    /* after one image's columns, its output gradient masked by a ReLU
     * folded into the layer (relu_out) */
    sz->work += (size_t)g->K * g->ohw;
    if (sz->variant == CNN_CONV_FUSED25) { /* no columns kept: U instead */
        const fused_t f = fused_geom(g);
        const size_t fwd = f.vfloats + cnn_wino25_scratch(f.th, f.tw);
        sz->work = sz->work > fwd ? sz->work : fwd;
        sz->cache = (size_t)2 * 36 * g->K * g->C;
    }
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

/* CNN_CONV_FUSED25: U from W, then each thread transforms its images'
 * tiles (V) and computes their outputs with the products in registers
 * (cnn_wino25_fused). */
static void fused_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                          const float *x, float *y)
{
    const fused_t f = fused_geom(g);
    const float *b = l->params + (size_t)g->K * g->ckk;
    const size_t chw = (size_t)g->C * g->H * g->W, kohw = (size_t)g->K * g->ohw;
    const size_t kc = (size_t)g->K * g->C;
    float *U = l->cache, *UK = l->cache + 36 * kc;
    cnn_wino25_filter(l->params, g->K, g->C, U);
    for (int xi = 0; xi < 36; xi++)
        for (int k = 0; k < g->K; k++)
            for (int c = 0; c < g->C; c++)
                UK[((size_t)36 * k + xi) * g->C + c] = U[xi * kc + (size_t)k * g->C + c];
#pragma omp parallel num_threads(ctx->nthreads)
    {
        float *V = layer_work(ctx), *vb = V + 36 * f.xs, *plane = V + f.vfloats;
        /* the gaps, which the last vector of a row reads past its tiles */
        for (int xi = 0; xi < 36; xi++) memset(V + xi * f.xs + f.xs - 16, 0, 16 * sizeof(float));
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            cnn_wino25_input(x + (size_t)i * chw, g->C, g->H, g->W, g->P, f.th, f.tw, V,
                             (size_t)f.th * f.tw, f.xs, plane, 0);
            cnn_wino25_fused(V, f.xs, g->C, UK, g->K, g->OH, g->OW, f.th, f.tw, b,
                             y + (size_t)i * kohw, l->relu_out, vb);
        }
    }
}

static void small_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, const conv_geom_t *g, int n,
                          const float *x, float *y)
{
    if (l->sz.variant == CNN_CONV_FUSED25)
        fused_forward(l, ctx, g, n, x, y);
    else
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
    /* the forward pass kept the columns */
    const int have = l->sz.cache > 0 && ctx->train && l->sz.variant != CNN_CONV_FUSED25;
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
