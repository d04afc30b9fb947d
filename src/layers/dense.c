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

#include "init.h"
#include "layer_util.h"
#include "mpicnn/kernels.h"

/* Batches of up to SMALL_N images, and up to SMALL_M units, take the
 * blocked kernels (smallgemm.c) for dW and dx, whose inner dimension is
 * the batch and the units: a panel of 3 vectors' width stays in L1.
 * Up to SMALL_M units, y = x W^T is the kernel of a conv layer's dW
 * (rows of x against rows of W, the long inner dimension D in vector
 * lanes), in chunks of D that keep W's chunk in L2 (CHUNK_BYTES): with
 * fmnist-ref's fc1 (D = 3136, 128 units, 64 images) 0.33 against the
 * BLAS's 0.53 ms on one core. The choices depend on the layer's shape
 * alone, not on the threads. */
#define SMALL_N 256
#define SMALL_M 256
#define CHUNK_BYTES (512 << 10)

static int chunk_floats; /* 0: from CHUNK_BYTES */

void cnn_dense_set_chunk_floats(int n) { chunk_floats = n > 0 ? n : 0; }

/* Inner chunk of the forward product for M units: a multiple of 16
 * floats (whole vectors), at least 256 */
static size_t forward_chunk(int M)
{
    if (chunk_floats) return (size_t)chunk_floats;
    size_t c = CHUNK_BYTES / sizeof(float) / (size_t)M / 16 * 16;
    return c < 256 ? 256 : c;
}

static cnn_status_t dense_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    char why[160];
    CNN_TRY(cnn_init_check(s));
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

/* Weights and biases as the layer's init says (init.c): each weight sees
 * fan_in = D inputs and feeds fan_out = M outputs */
static void dense_init(cnn_layer_t *l, uint64_t seed)
{
    cnn_init_params(l, seed, cnn_shape_image(l->in), (size_t)l->out.c);
}

/* Splits [0, total) into the block of thread t of T. */
static void block(int total, int t, int T, int *lo, int *hi)
{
    *lo = (int)((long)total * t / T);
    *hi = (int)((long)total * (t + 1) / T);
}

/* Splits [0, total) into the block of thread t of T in whole groups of
 * 4 rows (the blocked kernels' rows per block), the rest to the last. */
static void block4(int total, int t, int T, int *lo, int *hi)
{
    block(total / 4, t, T, lo, hi);
    *lo *= 4;
    *hi = t == T - 1 ? total : *hi * 4;
}

/* x (n,D) -> y (n,M) */
static void dense_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, float *y)
{
    const int M = l->out.c, D = (int)cnn_shape_image(l->in);
    const float *w = l->params, *b = l->params + (size_t)M * D;
    const size_t chunk = forward_chunk(M);
#pragma omp parallel num_threads(ctx->nthreads)
    {
        int lo, hi;
        block4(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int i = lo; i < hi; i++) memcpy(y + (size_t)i * M, b, sizeof(float) * M);
        if (hi > lo && M <= SMALL_M)
            for (size_t p = 0; p < (size_t)D; p += chunk)
                cnn_gemm_small_dw(x + p, (size_t)D, lo, hi, D - p < chunk ? D - p : chunk,
                                  w + p, (size_t)D, M, y, NULL);
        else if (hi > lo)
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

/* ---- the table ------------------------------------------------------ */

static const cnn_layer_key_t dense_keys[] = {
    LAYER_INT_KEY("units", filters, 1, 10000000, NULL, 0),
    CNN_INIT_KEYS,
};

/* weight (M,D) then bias (M), as nn.Linear; `mpicnn op` files hold the
 * weight as (D,M), so that out = x.w + b, or with --w-layout out,in as
 * (M,D); op without --b runs the layer without bias (zero) */
static const cnn_tensor_desc_t dense_tensors[] = {
    {.name = "weight", .flag = "--w", .grad_flag = "--dw", .transposed = 1},
    {.name = "bias", .flag = "--b", .grad_flag = "--db", .optional = 1},
};

static int dense_tensor_dims(const cnn_layer_t *l, int i, size_t dims[4])
{
    /* a non-flat input (n,C,H,W) is read as D = C*H*W, as nn.Flatten would */
    const size_t M = (size_t)l->out.c, D = cnn_shape_image(l->in);
    dims[0] = M;
    dims[1] = D;
    return i == 0 ? 2 : 1;
}

/* y = x W^T + b in double; params are W (M,D) then b (M) */
static void dense_reference(const cnn_ref_args_t *r, double *y)
{
    const cnn_shape_t in = r->in, out = r->out;
    const double *x = r->x, *params = r->params;
    const int D = in.c * in.h * in.w, M = out.c;
    for (int n = 0; n < in.n; n++)
        for (int m = 0; m < M; m++) {
            double acc = params[(size_t)M * D + m];
            for (int d = 0; d < D; d++)
                acc += x[(size_t)n * D + d] * params[(size_t)m * D + d];
            y[(size_t)n * M + m] = acc;
        }
}

/* The gradients of dense_reference in double: dW += dy^T x, db += the
 * sum of dy over the batch, dx = dy W */
static void dense_reference_backward(const cnn_ref_args_t *r, const double *y,
                                     const double *dy, double *dx, double *dp)
{
    const cnn_shape_t in = r->in, out = r->out;
    const double *x = r->x, *w = r->params;
    const int D = in.c * in.h * in.w, M = out.c;
    (void)y;
    if (dx) memset(dx, 0, sizeof(double) * (size_t)in.n * D);
    for (int n = 0; n < in.n; n++)
        for (int m = 0; m < M; m++) {
            const double g = dy[(size_t)n * M + m];
            if (dp) dp[(size_t)M * D + m] += g;
            for (int d = 0; d < D; d++) {
                if (dp) dp[(size_t)m * D + d] += g * x[(size_t)n * D + d];
                if (dx) dx[(size_t)n * D + d] += g * w[(size_t)m * D + d];
            }
        }
}

static const cnn_layer_cli_t dense_cli = {
    .usage = "--x F --x-shape N,D --w F --w-shape D,M [--w-layout in,out|out,in] [--b F]\n"
             "            --out F [--dout F --dx F --dw F [--db F]]\n"
             "            --w holds W as (D,M) (in,out: out = x.W + b), or with\n"
             "            --w-layout out,in as (M,D), PyTorch's Linear weight, and\n"
             "            --w-shape is then M,D; --dw in the same order; --b (M), none:\n"
             "            no bias (then no --db); --out and --dout (N,M)",
    .x_dims = "N,D",
    .shape_flag = "--w-shape",
    .shape_dims = "D,M",
    .shape_in = 0,
    .shape_in_why = "from",
    .shape_keys = {NULL, "units"},
    .layout_flag = "--w-layout",
    .layouts = {"in,out", "out,in"},
};

/* Gemm on the flattened input (NCHW order, as nn.Flatten) with the
 * stored (M, D) weight: y = x W^T + b, so transB = 1. */
static cnn_status_t dense_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                               int nin, const char *out)
{
    const char *x[3] = {in[0]};
    (void)nin;
    if (cnn_onnx_rank(g, in[0]) != 2) {
        const cnn_onnx_attr_t axis = CNN_ONNX_INT("axis", 1);
        x[0] = cnn_onnx_name(g, l, "flat");
        CNN_TRY(cnn_onnx_node(g, "Flatten", in, 1, x[0], &axis, 1));
    }
    CNN_TRY(cnn_onnx_param(g, l, 0, &x[1]));
    CNN_TRY(cnn_onnx_param(g, l, 1, &x[2]));
    const cnn_onnx_attr_t tb = CNN_ONNX_INT("transB", 1);
    return cnn_onnx_node(g, "Gemm", x, 3, out, &tb, 1);
}

const cnn_layer_ops_t cnn_dense_ops = {
    .type = "dense",
    .shape = dense_shape,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .keys = dense_keys,
    .nkeys = LAYER_COUNT(dense_keys),
    .tensors = dense_tensors,
    .ntensors = LAYER_COUNT(dense_tensors),
    .tensor_dims = dense_tensor_dims,
    .cli = &dense_cli,
    .fd = CNN_FD_LINEAR,
    .reference = dense_reference,
    .onnx = dense_onnx,
    .reference_backward = dense_reference_backward,
};
