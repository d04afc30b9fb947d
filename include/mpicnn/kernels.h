/* kernels.h - pure numeric kernels: im2col/col2im, the GEMM wrapper,
 * small elementwise helpers and the counter-based RNG.
 *
 * Kernels take raw pointers and dimensions, never allocate, and keep no
 * state. Each comment gives the shapes. */
#ifndef MPICNN_KERNELS_H
#define MPICNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/rng.h"

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

/* The polyphase planes of x (C,H,W) zero-padded by `pad` per side, for a
 * stride-2 convolution: plane (py, px) of channel c starts at
 * q + (2 py + px) pstride + c cstride, and its row i, ldq floats apart
 * (ldq >= QW: several images side by side), holds at [j] the padded
 * input at (2i + py, 2j + px), i < QH, j < QW (zero in the padding). Its
 * QH rows of QW floats are written, nothing else in q. Tap (ky, kx) of
 * output (oy, ox) then reads plane (ky % 2, kx % 2) at (oy + ky/2,
 * ox + kx/2). cnn_polyphase_merge is the inverse, for the gradient: it
 * WRITES dx (C,H,W) from such planes, zero where a pixel is past them (no
 * tap reads it). */
void cnn_polyphase_split(const float *x, int C, int H, int W, int pad, int QH, int QW,
                         size_t ldq, size_t cstride, size_t pstride, float *q);
void cnn_polyphase_merge(const float *q, int C, int H, int W, int pad, int QH, int QW,
                         size_t ldq, size_t cstride, size_t pstride, float *dx);

/* C = alpha * op(A) * op(B) + beta * C, row-major.
 * op(A) is (M,K), op(B) is (K,N), C is (M,N). ta/tb: 1 = transposed. */
void cnn_sgemm(int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc);

/* Products with a small left matrix, faster than the BLAS there
 * (smallgemm.c): a first conv layer's short column matrix (D = C*KH*KW
 * rows, 9 or 27), the Winograd products of layers with few channels.
 * y (K, P; rows ldy apart) = b + w (K, D) x col (D, P; rows ldcol apart);
 * b may be NULL (no bias). Fastest with K a multiple of 4. */
void cnn_gemm_small_inner(const float *w, const float *b, int K, int D, const float *col,
                          size_t ldcol, size_t P, float *y, size_t ldy);

/* The same product added into y: y (K, P) += w (K, D) x col (D, P). */
void cnn_gemm_small_inner_acc(const float *w, int K, int D, const float *col, size_t ldcol,
                              size_t P, float *y, size_t ldy);

/* The widest vectors the kernels above may use: 0 (the default) for as
 * wide as the CPU allows (16 lanes with AVX-512), 8 for at most 8. A
 * process-wide setting, for tests and benchmarks. */
void cnn_kernels_set_lanes(int lanes);

/* dw (K, D) rows k0..k1-1 += dy (K, P; rows ldy apart) x col (D, P; rows
 * ldcol apart)^T, and, with db not NULL, db[k0..k1) += the sums of dy's
 * rows (a conv layer's bias gradient, while the rows are in the cache).
 * Each element's sum runs in the same order whatever [k0, k1) is, so
 * threads may split the rows freely. */
void cnn_gemm_small_dw(const float *dy, size_t ldy, int k0, int k1, size_t P,
                       const float *col, size_t ldcol, int D, float *dw, float *db);

/* The 2x2 stride-2 max pool of one (H, W) plane (maxpool.c): y and arg
 * are (H/2, W/2), or with ceil_mode ((H+1)/2, (W+1)/2), where an odd last
 * row and column make windows of the inputs they hold; arg gets each
 * output's input index in the plane, the first maximum of its window (a
 * NaN wins). */
void cnn_maxpool2x2(const float *x, int H, int W, int ceil_mode, float *y, int32_t *arg);

/* Its gradient: writes all of dx (H, W), dy at each arg-max, 0 elsewhere.
 * dx need not be zeroed first. With y (the forward output) not NULL, the
 * gradient of a ReLU followed by the pool: dy passes only where y > 0. */
void cnn_maxpool2x2_grad(const float *dy, const float *y, const int32_t *arg, int H, int W,
                         int ceil_mode, float *dx);

/* Makes the BLAS single-threaded: parallelism comes from OpenMP. */
void cnn_blas_single_thread(void);

/* The BLAS's name for the kernels it runs ("SkylakeX", "Haswell"), or
 * "unknown". Static; do not free. */
const char *cnn_blas_kernels(void);

/* --- Winograd F(2x2, 3x3) for 3x3 stride-1 convolution (winograd.c has
 * the math). A transformed tensor is 16 matrices, one per position xi of
 * the 4x4 tile; tiles are th = ceil(OH/2) by tw = ceil(OW/2) per image. */

/* w (K, C, 3, 3) -> U: 16 matrices (K, C), the xi-th at U + xi*K*C. */
void cnn_wino_filter(const float *w, int K, int C, float *U);

/* Adjoint of cnn_wino_filter: dw (K, C, 3, 3) += the gradient from dU. */
void cnn_wino_filter_grad(const float *dU, int K, int C, float *dw);

/* Scratch floats per thread for the image transforms below: a padded
 * plane of (2*th + 2) x (2*tw + 2), its rows with 16 floats of slack. */
size_t cnn_wino_scratch(int th, int tw);

/* x (C, H, W) with zero padding `pad` -> V: 16 matrices (C, ld) xs
 * floats apart, this image's th*tw tiles in columns [0, th*tw) (offset V
 * to place them). spill != 0: columns th*tw to th*tw + 6 may be
 * overwritten too (the next image's, which the caller transforms after
 * this one, in the same thread); it saves storing the last tile row's
 * lanes one at a time. */
void cnn_wino_input(const float *x, int C, int H, int W, int pad, int th,
                    int tw, float *V, size_t ld, size_t xs, float *scratch, int spill);

/* Adjoint of cnn_wino_input: OVERWRITES dx (C, H, W) from dV (layout of
 * V), or with add != 0 adds into it: dx[i] + g[i], the bits that adding
 * the gradient g written elsewhere would give (a tensor with several
 * consumers: net.c). */
void cnn_wino_input_grad(const float *dV, size_t ld, size_t xs, int C, int H,
                         int W, int pad, int th, int tw, float *dx, float *scratch, int add);

/* M: 16 matrices (K, ld) xs floats apart -> y (K, OH, OW) = bias (K) +
 * output tiles; relu != 0: max(that, 0), as the relu layer computes it
 * (a conv with its ReLU folded in). */
void cnn_wino_output(const float *M, size_t ld, size_t xs, int K, int OH,
                     int OW, int th, int tw, const float *bias, float *y,
                     float *scratch, int relu);

/* Adjoint of cnn_wino_output without the bias: dy (K, OH, OW) -> dM, 16
 * matrices (K, ld) xs floats apart; spill as for cnn_wino_input. y, unless
 * NULL, is the output that cnn_wino_output gave with relu: dy is taken
 * where y > 0 and 0 elsewhere, the ReLU's backward pass. db, unless NULL,
 * gets (=) the sum of each channel of that dy, this image's share of the
 * bias gradient, in an order fixed by OH and OW. */
void cnn_wino_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                          int tw, float *dM, size_t ld, size_t xs, float *scratch, int spill,
                          float *db);

/* The same six for Winograd F(4x4, 3x3): 6x6 input tiles, 36 matrices,
 * th = ceil(OH/4) by tw = ceil(OW/4) tiles per image; scratch from
 * cnn_wino4_scratch(): a padded plane of (4*th + 2) x (4*tw + 2), its
 * rows with 40 floats of slack (the transforms load 8 tiles' columns in
 * whole vectors). Where the CPU has AVX-512 (and cnn_kernels_set_lanes
 * allows), the four image transforms of tile rows of 5 to 8 tiles and
 * of images of 4 x 4 tiles run in 16 lanes: the same bits as the 8-lane
 * code built with FMA. */
size_t cnn_wino4_scratch(int th, int tw);
void cnn_wino4_filter(const float *w, int K, int C, float *U);
void cnn_wino4_filter_grad(const float *dU, int K, int C, float *dw);
void cnn_wino4_input(const float *x, int C, int H, int W, int pad, int th,
                     int tw, float *V, size_t ld, size_t xs, float *scratch, int spill);
void cnn_wino4_input_grad(const float *dV, size_t ld, size_t xs, int C, int H,
                          int W, int pad, int th, int tw, float *dx, float *scratch, int add);
void cnn_wino4_output(const float *M, size_t ld, size_t xs, int K, int OH,
                      int OW, int th, int tw, const float *bias, float *y,
                      float *scratch, int relu);
void cnn_wino4_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                           int tw, float *dM, size_t ld, size_t xs, float *scratch, int spill,
                           float *db);

/* The same six for Winograd F(2x2, 5x5), for 5x5 stride-1 layers: 6x6
 * input tiles, 36 matrices, th = ceil(OH/2) by tw = ceil(OW/2) tiles per
 * image; scratch from cnn_wino25_scratch(): a padded plane of
 * (2*th + 4) x (2*tw + 4), its rows with 16 floats of slack. w and dw
 * are (K, C, 5, 5). */
size_t cnn_wino25_scratch(int th, int tw);
void cnn_wino25_filter(const float *w, int K, int C, float *U);
void cnn_wino25_filter_grad(const float *dU, int K, int C, float *dw);
void cnn_wino25_input(const float *x, int C, int H, int W, int pad, int th,
                      int tw, float *V, size_t ld, size_t xs, float *scratch, int spill);
void cnn_wino25_input_grad(const float *dV, size_t ld, size_t xs, int C, int H,
                           int W, int pad, int th, int tw, float *dx, float *scratch, int add);
void cnn_wino25_output(const float *M, size_t ld, size_t xs, int K, int OH,
                       int OW, int th, int tw, const float *bias, float *y,
                       float *scratch, int relu);
void cnn_wino25_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                            int tw, float *dM, size_t ld, size_t xs, float *scratch, int spill,
                            float *db);

/* The forward pass of F(2x2, 5x5) for few channels, M never stored: y
 * (K, OH, OW) = bias + the output tiles of U x V, V one image's
 * (cnn_wino25_input with ld = th*tw: 36 matrices of C rows, xs floats
 * apart, readable up to 15 floats past each row's last tile), UK = U
 * filter by filter (U[xi][k][c] at UK[(36 k + xi) C + c]); relu as for
 * cnn_wino_output; vb: 576 * C floats of scratch. In 16 lanes where the
 * CPU has AVX-512 (and cnn_kernels_set_lanes allows), else 8: the same
 * bits as the 8-lane code built with FMA. */
void cnn_wino25_fused(const float *V, size_t xs, int C, const float *UK, int K, int OH, int OW,
                      int th, int tw, const float *bias, float *y, int relu, float *vb);

/* F(4x4) on images of 2 x 2 tiles (OH and OW of 5 to 8), two images at a
 * time, the tiles of both in one vector: a (columns 0-3 of V and M) and b
 * (columns 4-7), or a alone when b is NULL. Scratch:
 * cnn_wino4_scratch(2, 2), which holds a plane for each. The output
 * gradient's ya and yb, the outputs that mask dy (a folded ReLU), are
 * NULL or not together (yb NULL with dyb); its db, unless NULL, gets
 * image a's channel sums in db[0, K) and b's in db[K, 2K). */
void cnn_wino4_input2(const float *xa, const float *xb, int C, int H, int W, int pad,
                      float *V, size_t ld, size_t xs, float *scratch);
void cnn_wino4_input_grad2(const float *dV, size_t ld, size_t xs, int C, int H, int W, int pad,
                           float *dxa, float *dxb, float *scratch, int add);
void cnn_wino4_output2(const float *M, size_t ld, size_t xs, int K, int OH, int OW,
                       const float *bias, float *ya, float *yb, float *scratch, int relu);
void cnn_wino4_output_grad2(const float *dya, const float *dyb, const float *ya,
                            const float *yb, int K, int OH, int OW, float *dM, size_t ld,
                            size_t xs, float *scratch, float *db);

/* counter-based randomness (cnn_hash4, cnn_u01, cnn_randn) lives in rng.h */

/* 1 if all n values are finite. */
int cnn_all_finite(const float *x, size_t n);

#endif
