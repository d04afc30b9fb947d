/* dense.c - fully connected layer, y = x W^T + b.
 *
 * Parameters: W (M, D) as PyTorch's nn.Linear stores them, then b (M).
 * An input (n, C, H, W) is read as flat, D = C*H*W, in NCHW order, which
 * is what a flatten layer (or PyTorch's nn.Flatten) would give.
 * Threads take row blocks (of the batch for y and dx, of W for dW), so
 * no two threads write one element and each element's sum has the same
 * order for any thread count. */
#include <math.h>
#include <string.h>

#include "layer_util.h"
#include "mpicnn/kernels.h"

/* Batches of up to SMALL_N images, and up to SMALL_M units, take the
 * blocked kernels (smallgemm.c) for dW and dx, whose inner dimension is
 * the batch and the units: a panel of 3 vectors' width stays in L1. The
 * choice depends on the layer's shape alone, not on the threads. */
#define SMALL_N 256
#define SMALL_M 256

static cnn_status_t dense_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    char why[160];
    if (s->filters < 1) {
        snprintf(why, sizeof why, "needs units >= 1 (got %d)", s->filters);
        return layer_shape_error(s, in, why);
    }
    *out = (cnn_shape_t){in.n, s->filters, 1, 1};
    *sz = (cnn_layer_sizes_t){0};
    sz->params = (size_t)s->filters * cnn_shape_image(in) + (size_t)s->filters;
    if (in.n <= SMALL_N) sz->work = (size_t)s->filters * in.n; /* dy^T, a thread's rows */
    return CNN_OK;
}

static void dense_init(cnn_layer_t *l, uint64_t seed)
{
    /* PyTorch's default for nn.Linear: uniform in +-1/sqrt(fan_in) */
    const float bound = 1.0f / sqrtf((float)cnn_shape_image(l->in));
    for (size_t i = 0; i < l->sz.params; i++)
        l->params[i] = bound * (2.0f * cnn_u01(cnn_hash4(seed, (uint64_t)l->index, i, 0)) - 1.0f);
}

/* Splits [0, total) into the block of thread t of T. */
static void block(int total, int t, int T, int *lo, int *hi)
{
    *lo = (int)((long)total * t / T);
    *hi = (int)((long)total * (t + 1) / T);
}

/* x (n,D) -> y (n,M) */
static void dense_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, float *y)
{
    const int M = l->out.c, D = (int)cnn_shape_image(l->in);
    const float *w = l->params, *b = l->params + (size_t)M * D;
#pragma omp parallel num_threads(ctx->nthreads)
    {
        int lo, hi;
        block(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int i = lo; i < hi; i++) memcpy(y + (size_t)i * M, b, sizeof(float) * M);
        if (hi > lo)
            cnn_sgemm(0, 1, hi - lo, M, D, 1.0f, x + (size_t)lo * D, D, w, D,
                      1.0f, y + (size_t)lo * M, M);
    }
}

static void dense_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                           const float *x, const float *y, const float *dy,
                           float *dx)
{
    const int M = l->out.c, D = (int)cnn_shape_image(l->in);
    const float *w = l->params;
    float *dw = l->grads, *db = l->grads + (size_t)M * D;
#pragma omp parallel num_threads(ctx->nthreads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        int lo, hi;
        /* dW rows [lo,hi) (M,D) += dy^T (M,n) x x (n,D) */
        block(M, t, T, &lo, &hi);
        if (hi > lo && n > 0 && l->sz.work) {
            float *dyt = layer_work(ctx); /* dy^T's rows [lo,hi) */
            for (int m = lo; m < hi; m++)
                for (int i = 0; i < n; i++) dyt[(size_t)(m - lo) * n + i] = dy[(size_t)i * M + m];
            cnn_gemm_small_inner_acc(dyt, hi - lo, n, x, D, D, dw + (size_t)lo * D, D);
        } else if (hi > lo && n > 0) {
            cnn_sgemm(1, 0, hi - lo, D, n, 1.0f, dy + lo, M, x, D, 1.0f,
                      dw + (size_t)lo * D, D);
        }
        for (int m = lo; m < hi; m++) {
            float s = 0.0f;
            for (int i = 0; i < n; i++) s += dy[(size_t)i * M + m];
            db[m] += s;
        }
        /* dx rows [lo,hi) (n,D) = dy (n,M) x W (M,D) */
        if (dx) {
            block(n, t, T, &lo, &hi);
            if (hi > lo && M <= SMALL_M)
                cnn_gemm_small_inner(dy + (size_t)lo * M, NULL, hi - lo, M, w, D, D,
                                     dx + (size_t)lo * D, D);
            else if (hi > lo)
                cnn_sgemm(0, 0, hi - lo, D, M, 1.0f, dy + (size_t)lo * M, M, w,
                          D, 0.0f, dx + (size_t)lo * D, D);
        }
    }
}

const cnn_layer_ops_t cnn_dense_ops = {
    .type = "dense",
    .shape = dense_shape,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
};
