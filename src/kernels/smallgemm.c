/* smallgemm.c - products with a small left matrix, where a BLAS GEMM
 * spends much of its time packing and edge handling:
 *   forward: y (K, P)  = b + W (K, D) x col (D, P)
 *   dW:      dW (K, D) += dy (K, P) x col (D, P)^T
 * The first is a conv layer's forward pass when its column matrix has few
 * rows (D = C*KH*KW: 9 for a 3x3 conv on grey images, 27 on RGB), and the
 * Winograd products M = U x V and dV = U^T x dM of layers with few
 * channels (conv.c decides); the second is such a first layer's dW.
 * Both block over a few rows of W (or dy) so that every load of col feeds
 * several multiply-adds, with the accumulators in vector registers.
 *
 * Each output element is summed in a fixed order that depends on D and
 * P alone, not on how the caller splits rows over threads: y[k][p] adds
 * j = 0, 1, ..., D-1 to b[k]; dW[k][j] sums p in VW interleaved lanes,
 * then the lanes in order.
 *
 * Built for two instruction sets, as simd.h says. */
#include "kernels/simd.h"
#include "mpicnn/kernels.h"

#define KB 4 /* rows of W (dy) per block */
#define JB 3 /* rows of col per dW block */

/* y[k][p] for one element, in the blocks' order: b, then j = 0.. D-1 */
INLINE float fwd_one(const float *w, float b, int D, const float *col, size_t ldcol)
{
    float acc = b;
    for (int j = 0; j < D; j++) acc += w[j] * col[(size_t)j * ldcol];
    return acc;
}

/* y rows 0..KB-1, columns 0..nv*VW-1 (nv <= 3), of a block. Inlined into
 * each clone, so that it is compiled for the clone's instruction set. */
INLINE void fwd_block(const float *w, const float *b, int D, const float *col, size_t ldcol,
                      int nv, float *y, size_t ldy)
{
    v8 a[KB][3];
    for (int r = 0; r < KB; r++)
        for (int v = 0; v < nv; v++) a[r][v] = (v8){0} + (b ? b[r] : 0.0f);
    const float *c = col;
    for (int j = 0; j < D; j++, c += ldcol) {
        v8 cv[3];
        for (int v = 0; v < nv; v++) cv[v] = *(const v8 *)(c + v * VW);
        for (int r = 0; r < KB; r++) {
            const float wv = w[(size_t)r * D + j];
            for (int v = 0; v < nv; v++) a[r][v] += wv * cv[v];
        }
    }
    for (int r = 0; r < KB; r++)
        for (int v = 0; v < nv; v++) *(v8 *)(y + (size_t)r * ldy + v * VW) = a[r][v];
}

CLONES
void cnn_gemm_small_inner(const float *w, const float *b, int K, int D, const float *col,
                          size_t ldcol, size_t P, float *y, size_t ldy)
{
    const int kfull = K - K % KB;
    /* column panels outside, row blocks inside: a panel of col (D x 24)
     * stays in L1 while every row block of W passes over it */
    size_t p0 = 0;
    for (; p0 + 3 * VW <= P; p0 += 3 * VW)
        for (int k0 = 0; k0 < kfull; k0 += KB)
            fwd_block(w + (size_t)k0 * D, b ? b + k0 : NULL, D, col + p0, ldcol, 3,
                      y + (size_t)k0 * ldy + p0, ldy);
    for (; p0 + VW <= P; p0 += VW)
        for (int k0 = 0; k0 < kfull; k0 += KB)
            fwd_block(w + (size_t)k0 * D, b ? b + k0 : NULL, D, col + p0, ldcol, 1,
                      y + (size_t)k0 * ldy + p0, ldy);
    for (int k = 0; k < K; k++) /* the last columns, and the last rows */
        for (size_t p = k < kfull ? p0 : 0; p < P; p++)
            y[(size_t)k * ldy + p] =
                fwd_one(w + (size_t)k * D, b ? b[k] : 0.0f, D, col + p, ldcol);
}

/* dW[k][j] for one element, in the blocks' order: VW interleaved lanes
 * over p, the tail in lanes 0, 1, ..., then the lanes in order */
INLINE float dw_one(const float *g, const float *c, size_t P)
{
    float lane[VW] = {0};
    size_t p = 0;
    for (; p + VW <= P; p += VW)
        for (int l = 0; l < VW; l++) lane[l] += g[p + l] * c[p + l];
    for (int l = 0; p < P; p++, l++) lane[l] += g[p] * c[p];
    float sum = 0.0f;
    for (int l = 0; l < VW; l++) sum += lane[l];
    return sum;
}

CLONES
void cnn_gemm_small_dw(const float *dy, size_t ldy, int k0, int k1, size_t P,
                       const float *col, size_t ldcol, int D, float *dw)
{
    int k = k0;
    for (; k + KB <= k1; k += KB) {
        int j = 0;
        for (; j + JB <= D; j += JB) { /* 4 rows of dy x 3 rows of col */
            v8 a[KB][JB];
            for (int r = 0; r < KB; r++)
                for (int s = 0; s < JB; s++) a[r][s] = (v8){0};
            const float *g = dy + (size_t)k * ldy, *c = col + (size_t)j * ldcol;
            size_t p = 0;
            for (; p + VW <= P; p += VW) {
                v8 cv[JB];
                for (int s = 0; s < JB; s++) cv[s] = *(const v8 *)(c + (size_t)s * ldcol + p);
                for (int r = 0; r < KB; r++) {
                    const v8 gv = *(const v8 *)(g + (size_t)r * ldy + p);
                    for (int s = 0; s < JB; s++) a[r][s] += gv * cv[s];
                }
            }
            for (int l = 0; p < P; p++, l++)
                for (int r = 0; r < KB; r++)
                    for (int s = 0; s < JB; s++)
                        a[r][s][l] += g[(size_t)r * ldy + p] * c[(size_t)s * ldcol + p];
            for (int r = 0; r < KB; r++)
                for (int s = 0; s < JB; s++) {
                    float sum = 0.0f;
                    for (int l = 0; l < VW; l++) sum += a[r][s][l];
                    dw[(size_t)(k + r) * D + j + s] += sum;
                }
        }
        for (; j < D; j++)
            for (int r = 0; r < KB; r++)
                dw[(size_t)(k + r) * D + j] +=
                    dw_one(dy + (size_t)(k + r) * ldy, col + (size_t)j * ldcol, P);
    }
    for (; k < k1; k++)
        for (int j = 0; j < D; j++)
            dw[(size_t)k * D + j] += dw_one(dy + (size_t)k * ldy, col + (size_t)j * ldcol, P);
}
