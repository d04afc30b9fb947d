/* smallgemm.c - products with a small left matrix, where a BLAS GEMM
 * spends much of its time packing and edge handling:
 *   forward: y (K, P)  = b + W (K, D) x col (D, P), or y += W x col
 *   dW:      dW (K, D) += dy (K, P) x col (D, P)^T, and db (K) += dy's row sums
 * The first is a conv layer's forward pass when its column matrix has few
 * rows (D = C*KH*KW: 9 for a 3x3 conv on grey images, 27 on RGB;
 * layers/conv_smallgemm.c), and the Winograd products M = U x V and
 * dV = U^T x dM of layers with few channels (layers/conv_winograd.c);
 * the second is such a first layer's dW, and a dense layer's forward
 * pass y = x W^T (dense.c), whose inner dimension is long too.
 * Both block over a few rows of W (or dy) so that every load of col feeds
 * several multiply-adds, with the accumulators in vector registers.
 *
 * Each output element is summed in a fixed order that depends on D and
 * P alone, not on how the caller splits rows over threads: y[k][p] adds
 * j = 0, 1, ..., D-1 to b[k]; dW[k][j] sums p in VN interleaved lanes,
 * then the lanes in order.
 *
 * The kernels come in two vector widths (smallgemm_body.h, included
 * twice): 16 lanes for CPUs with AVX-512, 8 lanes built for two
 * instruction sets as simd.h says. The CPU decides at run time, so dW's
 * sums (VN lanes) round differently with and without AVX-512, and all
 * sums with and without FMA. On one machine results do not depend on how
 * the work is split. */
#include "kernels/simd.h"
#include "mpicnn/kernels.h"

/* Multiply-adds as fused multiply-adds (one rounding, not two) where the
 * CPU has them: mpicnn builds as ISO C, where GCC keeps a * b + c as a
 * multiply and an add, which here doubled the instructions and reloaded
 * every operand from memory. */
#pragma GCC optimize("fp-contract=fast")

#define KB 4 /* rows of W (dy) per block */

/* 8 lanes: 4 x 3 accumulators of dW in 16 vector registers */
#define VN 8
#define JB 3
#define VF v8
#define SG(f) f##_8
#define KATTR CLONES
#include "kernels/smallgemm_body.h"
#undef VN
#undef JB
#undef VF
#undef SG
#undef KATTR

#ifdef HAVE_V16
/* Lane e of the result: 0 + t[e][0] + t[e][1] + ... + t[e][15], added in
 * that order, as a loop over one vector's lanes adds them, for 16 vectors
 * at once. The 16 x 16 lanes are transposed (the off-diagonal blocks of
 * 8, 4, 2 and 1 lanes swapped), and then 16 vectors added: 64 shuffles
 * and 16 adds for 16 sums, where a sum of one vector's lanes in scalar
 * code takes some 30 instructions. */
#define UNPAREN(...) __VA_ARGS__
#define SWAP_BLOCKS(t, h, LO, HI)                                                   \
    for (int i = 0; i < 16; i++)                                                  \
        if (!(i & (h))) {                                                         \
            const v16 x = t[i], y = t[i + (h)];                                   \
            t[i] = __builtin_shuffle(x, y, (v16i){UNPAREN LO});                   \
            t[i + (h)] = __builtin_shuffle(x, y, (v16i){UNPAREN HI});             \
        }
INLINE v16 lane_sums_16(v16 t[16])
{
    SWAP_BLOCKS(t, 8, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
                (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
    SWAP_BLOCKS(t, 4, (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
                (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
    SWAP_BLOCKS(t, 2, (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
                (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
    SWAP_BLOCKS(t, 1, (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
                (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
    v16 sum = (v16){0};
    for (int l = 0; l < 16; l++) sum += t[l];
    return sum;
}
#undef SWAP_BLOCKS
#undef UNPAREN

/* 16 lanes: 4 x 4 accumulators of dW, one LANE_SUMS, where dW's columns
 * come in fours (the Winograd layers' channels), else 4 x 6 in 32
 * vector registers */
#define LANE_SUMS lane_sums_16
#define VN 16
#define JB 6
#define VF v16
#define SG(f) f##_16
#define KATTR V16_ATTR
#include "kernels/smallgemm_body.h"
#undef VN
#undef VF
#undef SG
#undef KATTR
#undef LANE_SUMS
#endif

static int max_lanes; /* 0: as wide as the CPU allows */

void cnn_kernels_set_lanes(int lanes) { max_lanes = lanes; }

int cnn_kernels_wide(void)
{
#ifdef HAVE_V16
    return max_lanes != 8 && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

/* The kernels of one width: y = b + w x col (or y += w x col with acc),
 * and dW (db) += dy x col^T */
typedef struct {
    void (*inner)(const float *w, const float *b, int K, int D, const float *col, size_t ldcol,
                  size_t P, int acc, float *y, size_t ldy);
    void (*dw)(const float *dy, size_t ldy, int k0, int k1, size_t P, const float *col,
               size_t ldcol, int D, float *dw, float *db);
} widths_t;

static const widths_t narrow8 = {inner_8, dw_8};
#ifdef HAVE_V16
static const widths_t wide16 = {inner_16, dw_16};
#endif

/* The kernels of the CPU's width */
static const widths_t *kernels(void)
{
#ifdef HAVE_V16
    if (cnn_kernels_wide()) return &wide16;
#endif
    return &narrow8;
}

void cnn_gemm_small_inner(const float *w, const float *b, int K, int D, const float *col,
                          size_t ldcol, size_t P, float *y, size_t ldy)
{
    kernels()->inner(w, b, K, D, col, ldcol, P, 0, y, ldy);
}

void cnn_gemm_small_inner_acc(const float *w, int K, int D, const float *col, size_t ldcol,
                              size_t P, float *y, size_t ldy)
{
    kernels()->inner(w, NULL, K, D, col, ldcol, P, 1, y, ldy);
}

void cnn_gemm_small_dw(const float *dy, size_t ldy, int k0, int k1, size_t P,
                       const float *col, size_t ldcol, int D, float *dw, float *db)
{
    kernels()->dw(dy, ldy, k0, k1, P, col, ldcol, D, dw, db);
}
