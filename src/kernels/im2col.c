/* im2col.c - unfold image patches into columns and fold them back.
 * The column matrix has one row per (channel, ky, kx) and one column per
 * output pixel, so a convolution becomes W (K, C*KH*KW) x col. */
#include "kernels/simd.h"
#include "mpicnn/kernels.h"

/* The zeroing loops below stay loops: GCC would make each short run of
 * zeros (a row's padded edge, 1 or 2 floats) a call to memset, which
 * took as long as the copies (0.8% of a cifar-3layer step in each pass). */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

#include <stddef.h>
#include <string.h>

int cnn_conv_out_size(int in, int k, int stride, int pad)
{
    int span = in + 2 * pad - k;
    if (k <= 0 || stride <= 0 || span < 0) return 0;
    return span / stride + 1;
}

/* Stride 1 with OW == W (KW = 2 pad + 1: a "same" convolution) and pad
 * < W, so that |kx - pad| < W: row
 * (c, ky, kx) of col is plane c shifted by (ky - pad) rows and (kx - pad)
 * columns, so it is one copy of the plane's rows [oy0, oy1) + ky - pad,
 * zeros above and below, and |kx - pad| zeros at one edge of each row
 * (what the copy brought in from the next or the previous row). One copy
 * a row of col instead of one a pixel row: fewer, longer copies, whose
 * call and edge handling no longer dominate at short image rows. The
 * copies and the zeros are vector loops (simd.h), not memcpy and memset:
 * for cifar-3layer's 5x5 layer on 3 x 32 x 32 (75 rows of 1024, 300 KB
 * an image, more than L1 holds) they unfold 64 images in 0.54 ms against
 * 0.98; a grey 28 x 28 image with a 3x3 kernel in 0.048 against 0.050,
 * an RGB 32 x 32 one in 0.18 against 0.17. */
CLONES static void im2col_same_width(const float *x, int C, int H, int W, int KH, int KW,
                                     int pad, int OH, float *col, size_t ldcol)
{
    const ptrdiff_t plane = (ptrdiff_t)H * W, rows = (ptrdiff_t)OH * W;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * plane;
        for (int ky = 0; ky < KH; ky++) {
            /* output rows whose input row iy = oy - pad + ky is inside */
            const int oy0 = pad - ky > 0 ? pad - ky : 0;
            const int oy1 = H + pad - ky < OH ? H + pad - ky : OH;
            for (int kx = 0; kx < KW; kx++) {
                float *row = col + ((size_t)(c * KH + ky) * KW + kx) * ldcol;
                const ptrdiff_t shift = (ptrdiff_t)(ky - pad) * W + (kx - pad);
                if (oy1 <= oy0) { /* every input row outside */
                    memset(row, 0, sizeof(float) * (size_t)rows);
                    continue;
                }
                /* the first and last pixel of the run can fall off the
                 * plane; lo then stays below oy1 W, as pad - kx < W */
                ptrdiff_t lo = (ptrdiff_t)oy0 * W, hi = (ptrdiff_t)oy1 * W;
                if (lo + shift < 0) lo = -shift;
                if (hi + shift > plane) hi = plane - shift;
                if (hi < lo) hi = lo;
                zero_floats(row, (int)lo);
                copy_floats(row + lo, xc + lo + shift, (int)(hi - lo));
                zero_floats(row + hi, (int)(rows - hi));
                const int e0 = kx < pad ? 0 : W + pad - kx, e1 = kx < pad ? pad - kx : W;
                for (int oy = oy0; oy < oy1; oy++)
                    for (int ox = e0; ox < e1; ox++) row[(size_t)oy * W + ox] = 0.0f;
            }
        }
    }
}

/* The output columns [*ox0, *ox1) of a row whose input column ix =
 * ox stride - pad + kx falls inside [0, W): the others read padding. */
INLINE void inside_cols(int W, int OW, int stride, int pad, int kx, int *ox0, int *ox1)
{
    const int first = pad - kx; /* ox stride >= pad - kx */
    int lo = first > 0 ? (first + stride - 1) / stride : 0;
    int hi = (W - 1 + pad - kx) >= 0 ? (W - 1 + pad - kx) / stride + 1 : 0;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    *ox0 = lo;
    *ox1 = hi;
}

/* dst[ox] = src[ox stride] for ox in [0, n): a constant stride, which the
 * compiler turns into vector loads and shuffles (stride 2), rather than a
 * test of every pixel */
INLINE void gather_row(float *dst, const float *src, int n, int stride)
{
    if (stride == 2)
        for (int ox = 0; ox < n; ox++) dst[ox] = src[2 * ox];
    else
        for (int ox = 0; ox < n; ox++) dst[ox] = src[(size_t)ox * stride];
}

/* dst[ox stride] += src[ox] for ox in [0, n) */
INLINE void scatter_add_row(float *dst, const float *src, int n, int stride)
{
    if (stride == 2)
        for (int ox = 0; ox < n; ox++) dst[2 * ox] += src[ox];
    else
        for (int ox = 0; ox < n; ox++) dst[(size_t)ox * stride] += src[ox];
}

/* cnn_im2col for stride > 1: each row of col is, for the output rows
 * whose input row is inside, a gather at a constant stride between zero
 * edges, with the ranges worked out once per row of col. Built for AVX2
 * too (CLONES), where the stride-2 gather is a few shuffles a vector. */
CLONES static void im2col_strided(const float *x, int C, int H, int W, int KH, int KW,
                                  int stride, int pad, int OH, int OW, float *col,
                                  size_t ldcol)
{
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int ky = 0; ky < KH; ky++) {
            int oy0, oy1;
            inside_cols(H, OH, stride, pad, ky, &oy0, &oy1);
            for (int kx = 0; kx < KW; kx++) {
                float *row = col + ((size_t)(c * KH + ky) * KW + kx) * ldcol;
                int ox0, ox1;
                inside_cols(W, OW, stride, pad, kx, &ox0, &ox1);
                memset(row, 0, sizeof(float) * (size_t)oy0 * OW);
                memset(row + (size_t)oy1 * OW, 0, sizeof(float) * (size_t)(OH - oy1) * OW);
                for (int oy = oy0; oy < oy1; oy++) {
                    float *dst = row + (size_t)oy * OW;
                    const float *src = xc + (size_t)(oy * stride - pad + ky) * W;
                    for (int ox = 0; ox < ox0; ox++) dst[ox] = 0.0f;
                    gather_row(dst + ox0, src + ox0 * stride - pad + kx, ox1 - ox0, stride);
                    for (int ox = ox1; ox < OW; ox++) dst[ox] = 0.0f;
                }
            }
        }
    }
}

/* cnn_col2im for stride > 1, the adjoint of im2col_strided */
CLONES static void col2im_strided(const float *col, size_t ldcol, int C, int H, int W, int KH,
                                  int KW, int stride, int pad, int OH, int OW, float *dx)
{
    for (int c = 0; c < C; c++) {
        float *dc = dx + (size_t)c * H * W;
        for (int ky = 0; ky < KH; ky++) {
            int oy0, oy1;
            inside_cols(H, OH, stride, pad, ky, &oy0, &oy1);
            for (int kx = 0; kx < KW; kx++) {
                const float *row = col + ((size_t)(c * KH + ky) * KW + kx) * ldcol;
                int ox0, ox1;
                inside_cols(W, OW, stride, pad, kx, &ox0, &ox1);
                for (int oy = oy0; oy < oy1; oy++)
                    scatter_add_row(dc + (size_t)(oy * stride - pad + ky) * W + ox0 * stride -
                                        pad + kx,
                                    row + (size_t)oy * OW + ox0, ox1 - ox0, stride);
            }
        }
    }
}

/* x is (C,H,W); col rows are C*KH*KW, each OH*OW long, ldcol apart. */
void cnn_im2col(const float *x, int C, int H, int W, int KH, int KW,
                int stride, int pad, float *col, size_t ldcol)
{
    const int OH = cnn_conv_out_size(H, KH, stride, pad);
    const int OW = cnn_conv_out_size(W, KW, stride, pad);
    if (stride == 1 && OW == W && pad < W && OH > 0) {
        im2col_same_width(x, C, H, W, KH, KW, pad, OH, col, ldcol);
        return;
    }
    if (stride > 1) {
        im2col_strided(x, C, H, W, KH, KW, stride, pad, OH, OW, col, ldcol);
        return;
    }
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int ky = 0; ky < KH; ky++) {
            for (int kx = 0; kx < KW; kx++) {
                float *row = col + ((size_t)(c * KH + ky) * KW + kx) * ldcol;
                for (int oy = 0; oy < OH; oy++) {
                    const int iy = oy * stride - pad + ky;
                    float *dst = row + (size_t)oy * OW;
                    if (iy < 0 || iy >= H) {
                        memset(dst, 0, sizeof(float) * (size_t)OW);
                        continue;
                    }
                    const float *src = xc + (size_t)iy * W;
                    /* contiguous run: zero the padded edges, copy the rest */
                    int ox0 = pad - kx > 0 ? pad - kx : 0;
                    int ox1 = W + pad - kx < OW ? W + pad - kx : OW;
                    if (ox1 < ox0) ox1 = ox0;
                    for (int ox = 0; ox < ox0; ox++) dst[ox] = 0.0f;
                    if (ox1 > ox0)
                        memcpy(dst + ox0, src + ox0 - pad + kx,
                               sizeof(float) * (size_t)(ox1 - ox0));
                    for (int ox = ox1; ox < OW; ox++) dst[ox] = 0.0f;
                }
            }
        }
    }
}

/* col rows (C*KH*KW of them, ldcol apart); adds into dx (C,H,W). */
void cnn_col2im(const float *col, size_t ldcol, int C, int H, int W, int KH,
                int KW, int stride, int pad, float *dx)
{
    const int OH = cnn_conv_out_size(H, KH, stride, pad);
    const int OW = cnn_conv_out_size(W, KW, stride, pad);
    if (stride > 1) {
        col2im_strided(col, ldcol, C, H, W, KH, KW, stride, pad, OH, OW, dx);
        return;
    }
    for (int c = 0; c < C; c++) {
        float *dc = dx + (size_t)c * H * W;
        for (int ky = 0; ky < KH; ky++) {
            for (int kx = 0; kx < KW; kx++) {
                const float *row = col + ((size_t)(c * KH + ky) * KW + kx) * ldcol;
                for (int oy = 0; oy < OH; oy++) {
                    const int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    const float *src = row + (size_t)oy * OW;
                    float *dst = dc + (size_t)iy * W;
                    /* the columns that land inside the row, in one run */
                    int ox0 = pad - kx > 0 ? pad - kx : 0;
                    int ox1 = W + pad - kx < OW ? W + pad - kx : OW;
                    float *d = dst + ox0 - pad + kx;
                    for (int ox = ox0; ox < ox1; ox++) d[ox - ox0] += src[ox];
                }
            }
        }
    }
}

/* ---- the polyphase planes of a stride-2 convolution ------------------
 *
 * With stride 2, tap (ky, kx) of output (oy, ox) reads the padded input
 * at (2 oy + ky, 2 ox + kx): the plane of rows of parity ky % 2 and
 * columns of parity kx % 2, at (oy + ky / 2, ox + kx / 2). So each tap is
 * one of four "polyphase" planes, shifted. */

/* q's rows for one input row src (W floats) of padded row parity: q0[j]
 * = src[2 j - pad], q1[j] = src[2 j + 1 - pad] for j in [0, QW), zero
 * outside the row. Vectors of 8 or 4 pairs where they are inside. */
INLINE void split_row(const float *src, int W, int pad, int QW, float *q0, float *q1)
{
    int j = 0;
    for (; j < QW && 2 * j - pad < 0; j++) { /* the left padding */
        q0[j] = 0.0f;
        q1[j] = 2 * j + 1 - pad >= 0 && 2 * j + 1 - pad < W ? src[2 * j + 1 - pad] : 0.0f;
    }
    for (; j + VW <= QW && 2 * j - pad + 2 * VW <= W; j += VW) {
        const float *s = src + 2 * j - pad;
        const v8 a = *(const v8 *)s, b = *(const v8 *)(s + VW);
        *(v8 *)(q0 + j) = SHUFFLE8(a, b, IDX8_EVEN);
        *(v8 *)(q1 + j) = SHUFFLE8(a, b, IDX8_ODD);
    }
    for (; j + 4 <= QW && 2 * j - pad + 8 <= W; j += 4) {
        const float *s = src + 2 * j - pad;
        const v4 a = *(const v4 *)s, b = *(const v4 *)(s + 4);
        *(v4 *)(q0 + j) = SHUFFLE4(a, b, IDX4_EVEN);
        *(v4 *)(q1 + j) = SHUFFLE4(a, b, IDX4_ODD);
    }
    for (; j < QW; j++) {
        const int s = 2 * j - pad;
        q0[j] = s < W ? src[s] : 0.0f;
        q1[j] = s + 1 < W ? src[s + 1] : 0.0f;
    }
}

/* The inverse for the columns of the row: dst[2 j - pad] = q0[j],
 * dst[2 j + 1 - pad] = q1[j] where inside the row, and 0 for the columns
 * past the planes (j >= QW). */
INLINE void merge_row(const float *q0, const float *q1, int W, int pad, int QW, float *dst)
{
    int j = 0;
    for (; j < QW && 2 * j - pad < 0; j++) /* the left padding */
        if (2 * j + 1 - pad >= 0 && 2 * j + 1 - pad < W) dst[2 * j + 1 - pad] = q1[j];
    for (; j + VW <= QW && 2 * j - pad + 2 * VW <= W; j += VW) {
        const v8 a = *(const v8 *)(q0 + j), b = *(const v8 *)(q1 + j);
        *(v8 *)(dst + 2 * j - pad) = SHUFFLE8(a, b, IDX8_LO);
        *(v8 *)(dst + 2 * j - pad + VW) = SHUFFLE8(a, b, IDX8_HI);
    }
    for (; j + 4 <= QW && 2 * j - pad + 8 <= W; j += 4) {
        const v4 a = *(const v4 *)(q0 + j), b = *(const v4 *)(q1 + j);
        *(v4 *)(dst + 2 * j - pad) = SHUFFLE4(a, b, IDX4_LO);
        *(v4 *)(dst + 2 * j - pad + 4) = SHUFFLE4(a, b, IDX4_HI);
    }
    for (; j < QW; j++) {
        const int s = 2 * j - pad;
        if (s < W) dst[s] = q0[j];
        if (s + 1 < W) dst[s + 1] = q1[j];
    }
    for (int s = 2 * QW - pad > 0 ? 2 * QW - pad : 0; s < W; s++) dst[s] = 0.0f;
}

/* Rows ahead that polyphase_split prefetches */
#define PREFETCH_ROWS 8

/* The planes of input plane c: plane (py, px) of channel c at
 * q + (2 py + px) pstride + c cstride, rows ldq apart. Every one of their
 * QH rows of QW floats is written: from an input row, or zeros. */
CLONES static void polyphase_split(const float *x, int C, int H, int W, int pad, int QH,
                                   int QW, size_t ldq, size_t cstride, size_t pstride, float *q)
{
    for (int c = 0; c < C; c++)
        for (int py = 0; py < 2; py++)
            for (int i = 0; i < QH; i++) {
                const int r = 2 * i + py - pad; /* the input row */
                float *q0 = q + 2 * py * pstride + c * cstride + (size_t)i * ldq;
                if (r < 0 || r >= H) {
                    memset(q0, 0, sizeof(float) * (size_t)QW);
                    memset(q0 + pstride, 0, sizeof(float) * (size_t)QW);
                    continue;
                }
                const float *src = x + ((size_t)c * H + r) * W;
                /* the image comes from memory: ask for the rows ahead (a
                 * prefetch past the end of x is harmless) */
                for (int l = 0; l < W; l += 16) __builtin_prefetch(src + PREFETCH_ROWS * W + l);
                split_row(src, W, pad, QW, q0, q0 + pstride);
            }
}

CLONES static void polyphase_merge(const float *q, int C, int H, int W, int pad, int QH,
                                   int QW, size_t ldq, size_t cstride, size_t pstride, float *dx)
{
    for (int c = 0; c < C; c++)
        for (int r = 0; r < H; r++) {
            const int i = (r + pad) / 2, py = (r + pad) % 2;
            float *dst = dx + ((size_t)c * H + r) * W;
            if (i >= QH) {
                memset(dst, 0, sizeof(float) * (size_t)W);
                continue;
            }
            const float *q0 = q + 2 * py * pstride + c * cstride + (size_t)i * ldq;
            merge_row(q0, q0 + pstride, W, pad, QW, dst);
        }
}

void cnn_polyphase_split(const float *x, int C, int H, int W, int pad, int QH, int QW,
                         size_t ldq, size_t cstride, size_t pstride, float *q)
{
    polyphase_split(x, C, H, W, pad, QH, QW, ldq, cstride, pstride, q);
}

void cnn_polyphase_merge(const float *q, int C, int H, int W, int pad, int QH, int QW,
                         size_t ldq, size_t cstride, size_t pstride, float *dx)
{
    polyphase_merge(q, C, H, W, pad, QH, QW, ldq, cstride, pstride, dx);
}
