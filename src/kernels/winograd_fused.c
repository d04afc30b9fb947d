/* winograd_fused.c - the forward pass of Winograd F(2x2, 5x5) with the
 * products in registers, for layers of few channels (a first layer's 5x5
 * on RGB; winograd.c has the transforms and their matrices). There the
 * 36 products of a tile and filter are C multiply-adds each, and writing
 * M (9 floats per output) and reading it back for the output transform
 * would cost more than they save. Here each vector of 8 (or 16) tiles'
 * V is first copied into one block (vb: [xi][c][lanes]), and each
 * filter's U sits in one
 * block too (uk: [xi][c]), so that every operand is a constant offset
 * from two pointers. Then, a column q of the tile at a time, the 6
 * M[r][q] (summed over the channels) go into that column's share of
 * A^T M (2 values), and that at once into the 2x2 outputs: 4
 * accumulators, so nothing is stored but the outputs. The kernel comes
 * in 8 lanes (AVX2 + FMA, or the baseline) and, where the CPU has
 * AVX-512, in 16 (winograd_fused_body.h): every lane does the same
 * arithmetic at either width, and the same bits as the 8-lane AVX2 + FMA
 * clone, which an AVX-512 CPU runs. */
#include "kernels/simd.h"
#include "mpicnn/kernels.h"

/* Multiply-adds as fused multiply-adds where the CPU has them (as in
 * smallgemm.c): mpicnn builds as ISO C, where GCC keeps a * b + c as a
 * multiply and an add. */
#pragma GCC optimize("fp-contract=fast")

/* 8 lanes */
#define VN 8
#define VF v8
#define VI v8i
#define FN(f) f##_8
#define INTERLEAVE_LO(a, b) SHUFFLE8(a, b, IDX8_LO)
#define INTERLEAVE_HI(a, b) SHUFFLE8(a, b, IDX8_HI)
#include "kernels/winograd_fused_body.h"
#undef VN
#undef VF
#undef VI
#undef FN
#undef INTERLEAVE_LO
#undef INTERLEAVE_HI

#ifdef HAVE_V16
/* 16 lanes */
#define VN 16
#define VF v16
#define VI v16i
#define FN(f) f##_16
#define INTERLEAVE_LO(a, b)                                                                  \
    __builtin_shuffle(a, b, (v16i){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
#define INTERLEAVE_HI(a, b)                                                                  \
    __builtin_shuffle(a, b,                                                                  \
                      (v16i){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
#include "kernels/winograd_fused_body.h"
#undef VN
#undef VF
#undef VI
#undef FN
#undef INTERLEAVE_LO
#undef INTERLEAVE_HI
#endif

/* The channel counts of a first layer, as constants where inlined */
#define FUSED_BY_C(tiles)                                                                    \
    switch (C) {                                                                             \
    case 1: tiles(1, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;                \
    case 2: tiles(2, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;                \
    case 3: tiles(3, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;                \
    default: tiles(C, V, xs, UK, K, OH, OW, th, tw, bias, y, relu, vb); break;               \
    }

CLONES static void fused_8(const float *V, size_t xs, int C, const float *UK, int K, int OH,
                           int OW, int th, int tw, const float *bias, float *y, int relu,
                           float *vb)
{
    FUSED_BY_C(fused_tiles_8)
}

#ifdef HAVE_V16
V16_ATTR static void fused_16(const float *V, size_t xs, int C, const float *UK, int K, int OH,
                              int OW, int th, int tw, const float *bias, float *y, int relu,
                              float *vb)
{
    FUSED_BY_C(fused_tiles_16)
}
#endif

/* y (K, OH, OW) = bias + A^T (U x V) A of one image: V as
 * cnn_wino25_input wrote it with ld = th * tw (its 36 matrices of C rows
 * xs floats apart, read up to 15 floats past each row's last tile), UK
 * filter by filter (U[xi][k][c] at UK + (36 k + xi) C + c); relu != 0:
 * max(that, 0). vb: 36 * C * 16 floats of scratch. For few channels (C of
 * 1 to 3; more work too, but pay less). */
void cnn_wino25_fused(const float *V, size_t xs, int C, const float *UK, int K, int OH, int OW,
                      int th, int tw, const float *bias, float *y, int relu, float *vb)
{
#ifdef HAVE_V16
    if (cnn_kernels_wide()) {
        fused_16(V, xs, C, UK, K, OH, OW, th, tw, bias, y, relu, vb);
        return;
    }
#endif
    fused_8(V, xs, C, UK, K, OH, OW, th, tw, bias, y, relu, vb);
}
