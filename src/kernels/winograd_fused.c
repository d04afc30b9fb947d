/* winograd_fused.c - the forward pass of Winograd F(2x2, 5x5) with the
 * products in registers, for layers of few channels (a first layer's 5x5
 * on RGB; winograd.c has the transforms and their matrices). There the
 * 36 products of a tile and filter are C multiply-adds each, and writing
 * M (9 floats per output) and reading it back for the output transform
 * would cost more than they save. Here each vector of 8 tiles' V is first copied into
 * one block (vb: [xi][c][8 lanes]), and each filter's U sits in one
 * block too (uk: [xi][c]), so that every operand is a constant offset
 * from two pointers. Then, a column q of the tile at a time, the 6
 * M[r][q] (summed over the channels) go into that column's share of
 * A^T M (2 values), and that at once into the 2x2 outputs: 4
 * accumulators, so nothing is stored but the outputs. */
#include "kernels/simd.h"
#include "mpicnn/kernels.h"

/* Multiply-adds as fused multiply-adds where the CPU has them (as in
 * smallgemm.c): mpicnn builds as ISO C, where GCC keeps a * b + c as a
 * multiply and an add. */
#pragma GCC optimize("fp-contract=fast")

INLINE void fused8_f25(int C, const float *vb, const float *uk, float b, v8 row[2][2])
{
    v8 o00 = {0}, o01 = {0}, o10 = {0}, o11 = {0};
#pragma GCC unroll 6
    for (int q = 0; q < 6; q++) {
        v8 t0 = {0}, t1 = {0}; /* column q of A^T M: rows (1 1 1 1 1 0), (0 1 -1 2 -2 1) */
#pragma GCC unroll 6
        for (int r = 0; r < 6; r++) {
            const int xi = 6 * r + q;
            v8 m = uk[xi * C] * load8(vb + (size_t)xi * C * VW);
#pragma GCC unroll 4
            for (int c = 1; c < C; c++) m += uk[xi * C + c] * load8(vb + (size_t)(xi * C + c) * VW);
            if (r < 5) t0 += m;
            if (r == 1 || r == 5) t1 += m;
            if (r == 2) t1 -= m;
            if (r == 3) t1 += m + m;
            if (r == 4) t1 -= m + m;
        }
        /* (A^T M) A: column q's share of the two output columns */
        if (q < 5) {
            o00 += t0;
            o10 += t1;
        }
        if (q == 1 || q == 5) {
            o01 += t0;
            o11 += t1;
        }
        if (q == 2) {
            o01 -= t0;
            o11 -= t1;
        }
        if (q == 3) {
            o01 += t0 + t0;
            o11 += t1 + t1;
        }
        if (q == 4) {
            o01 -= t0 + t0;
            o11 -= t1 + t1;
        }
    }
    o00 += b;
    o01 += b;
    o10 += b;
    o11 += b;
    row[0][0] = SHUFFLE8(o00, o01, IDX8_LO);
    row[0][1] = SHUFFLE8(o00, o01, IDX8_HI);
    row[1][0] = SHUFFLE8(o10, o11, IDX8_LO);
    row[1][1] = SHUFFLE8(o10, o11, IDX8_HI);
}

INLINE void fused_tiles(int C, const float *V, size_t xs, const float *UK, int K, int OH, int OW,
                        int th, int tw, const float *bias, float *y, int relu, float *vb)
{
    const size_t tpi = (size_t)th * tw, ohw = (size_t)OH * OW;
    for (int ti = 0; ti < th; ti++)
        for (int tj0 = 0; tj0 < tw; tj0 += VW) {
            const float *vt = V + (size_t)ti * tw + tj0;
            for (int xi = 0; xi < 36; xi++)
                for (int c = 0; c < C; c++)
                    *(v8 *)(vb + (size_t)(xi * C + c) * VW) = load8(vt + xi * xs + c * tpi);
            const int rows = OH - 2 * ti < 2 ? OH - 2 * ti : 2;
            const int cols = OW - 2 * tj0 < 2 * VW ? OW - 2 * tj0 : 2 * VW;
            for (int k = 0; k < K; k++) {
                v8 row[2][2];
                fused8_f25(C, vb, UK + (size_t)k * 36 * C, bias[k], row);
                float *yk = y + (size_t)k * ohw + (size_t)(2 * ti) * OW + 2 * tj0;
                for (int a = 0; a < rows; a++)
                    for (int h = 0; h < 2; h++) {
                        v8 o = row[a][h];
                        if (relu) o = relu8(o);
                        const int n = cols - h * VW; /* lanes inside the row */
                        store8(yk + (size_t)a * OW + h * VW, o, n < 0 ? 0 : n > VW ? VW : n);
                    }
            }
        }
}

/* y (K, OH, OW) = bias + A^T (U x V) A of one image: V as
 * cnn_wino25_input wrote it with ld = th * tw (its 36 matrices of C rows
 * xs floats apart, read up to 8 floats past each row's last tile), UK
 * filter by filter (U[xi][k][c] at UK + (36 k + xi) C + c); relu != 0:
 * max(that, 0). vb: 36 * C * 8 floats of scratch. For few channels (C of
 * 1 to 3; more work too, but pay less). */
CLONES
void cnn_wino25_fused(const float *V, size_t xs, int C, const float *UK, int K, int OH, int OW,
                      int th, int tw, const float *bias, float *y, int relu, float *vb)
{
    switch (C) {
    case 1: fused_tiles(1, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;
    case 2: fused_tiles(2, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;
    case 3: fused_tiles(3, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;
    default: fused_tiles(C, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;
    }
}
