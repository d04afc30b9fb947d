/* kernels.h - pure numeric kernels: im2col/col2im, the GEMM wrapper,
 * small elementwise helpers and the counter-based RNG.
 *
 * Kernels take raw pointers and dimensions, never allocate, and keep no
 * state. Each comment gives the shapes. */
#ifndef MPICNN_KERNELS_H
#define MPICNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Output size of a window sweep: (in + 2*pad - k) / stride + 1,
 * or 0 if the window does not fit. */
int cnn_conv_out_size(int in, int k, int stride, int pad);

/* x is (C,H,W); writes the column matrix (C*KH*KW, OH*OW) whose rows
 * start ldcol floats apart (ldcol >= OH*OW: several images side by side
 * make one wide matrix). Zero padding `pad` per side. */
void cnn_im2col(const float *x, int C, int H, int W, int KH, int KW,
                int stride, int pad, float *col, size_t ldcol);

/* Adds the column matrix (C*KH*KW, OH*OW; rows ldcol apart) back into
 * dx (C,H,W). dx is NOT zeroed first, so the caller zeroes it. One image
 * per call: no atomics needed when threads own different images. */
void cnn_col2im(const float *col, size_t ldcol, int C, int H, int W, int KH,
                int KW, int stride, int pad, float *dx);

/* C = alpha * op(A) * op(B) + beta * C, row-major.
 * op(A) is (M,K), op(B) is (K,N), C is (M,N). ta/tb: 1 = transposed. */
void cnn_sgemm(int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc);

/* Makes the BLAS single-threaded: parallelism comes from OpenMP. */
void cnn_blas_single_thread(void);

/* --- counter-based randomness: same value for the same key on any
 * thread or rank, so dropout and init do not depend on thread counts. */

/* A 64-bit hash of (a, b, c, d) (splitmix64 rounds). */
uint64_t cnn_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

/* Uniform in [0, 1) from a hash value (24 random bits). */
static inline float cnn_u01(uint64_t h)
{
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal deviate i of stream (seed, stream) (Box-Muller). */
float cnn_randn(uint64_t seed, uint64_t stream, uint64_t i);

/* 1 if all n values are finite. */
int cnn_all_finite(const float *x, size_t n);

#endif
