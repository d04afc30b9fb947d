/* winograd.c - Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms for 3x3
 * stride-1 convolution, and F(2x2, 5x5) for 5x5 (Lavin and Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016). F(2x2) first,
 * then F(4x4), then F(2x2, 5x5), then the loops over an image's channels
 * and tiles, which all three share.
 *
 * One output tile of 2x2 pixels comes from a 4x4 input tile d and a 3x3
 * filter g:
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * with
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * Summed over input channels, the 16 products become 16 independent
 * matrix products, M[xi] (K, T) = U[xi] (K, C) x V[xi] (C, T), over all T
 * tiles at once: 16 * K * C multiply-adds per tile of 4 outputs instead of
 * 36 * K * C, 2.25x fewer. Every coefficient is 0, +-1 or +-1/2, so the
 * transforms only add and halve: results agree with im2col + GEMM to float
 * rounding (tests/test_layers.c compares both with a double reference).
 *
 * The gradient functions are the exact adjoints (transposes) of the
 * forward transforms (dd = B dV B^T, dM = A dY A^T, dg = G^T dU G), so the
 * backward pass is the exact gradient of what the forward pass computes.
 *
 * Layouts. A transformed tensor is 16 matrices, one per position xi of
 * the 4x4 tile (xi = 4 * row + col), each (rows, ld) with rows = C (V),
 * K (M) or K*C (U, flattened), xs floats apart (xs >= rows * ld; callers
 * add a cache line so that the 16 matrices do not fall on the same cache
 * sets). Tile t of an image is tile row t / tw, tile column t % tw;
 * tw = ceil(OW / 2), th = ceil(OH / 2). The image transforms go through
 * a zero-padded copy of one channel (the plane), so the borders need no
 * tests.
 *
 * The F(2x2) image transforms take 8 tiles of a tile row at a time, lane
 * l holding tile tj0 + l: tile tj's 4 columns are the plane's columns 2tj
 * to 2tj + 3, so splitting 16 columns from 2tj0 into even and odd ones
 * gives the tiles' first two, and 16 from 2tj0 + 2 their last two. The
 * arithmetic is that of one tile, on vectors (built for two instruction
 * sets, as simd.h says). Rows of the plane have 16 floats of slack, so
 * that a tile row's last vector, whose lanes past the row are not used,
 * stays inside the row. */
#include <string.h>

#include "kernels/simd.h"
#include "mpicnn/kernels.h"

/* w (K, C, 3, 3) -> U: 16 matrices (K, C), xi-th at U + xi * K * C. */
void cnn_wino_filter(const float *w, int K, int C, float *U)
{
    const size_t kc = (size_t)K * C;
    for (size_t j = 0; j < kc; j++) {
        const float *g = w + 9 * j;
        float t[4][3]; /* G g */
        for (int s = 0; s < 3; s++) {
            t[0][s] = g[s];
            t[1][s] = 0.5f * (g[s] + g[3 + s] + g[6 + s]);
            t[2][s] = 0.5f * (g[s] - g[3 + s] + g[6 + s]);
            t[3][s] = g[6 + s];
        }
        for (int r = 0; r < 4; r++) { /* (G g) G^T */
            U[(size_t)(4 * r + 0) * kc + j] = t[r][0];
            U[(size_t)(4 * r + 1) * kc + j] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
            U[(size_t)(4 * r + 2) * kc + j] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
            U[(size_t)(4 * r + 3) * kc + j] = t[r][2];
        }
    }
}

/* The adjoint of cnn_wino_filter: dw (K, C, 3, 3) += G^T dU G. */
void cnn_wino_filter_grad(const float *dU, int K, int C, float *dw)
{
    const size_t kc = (size_t)K * C;
    for (size_t j = 0; j < kc; j++) {
        float t[4][3]; /* dU G, row by row */
        for (int r = 0; r < 4; r++) {
            const float u0 = dU[(size_t)(4 * r) * kc + j], u1 = dU[(size_t)(4 * r + 1) * kc + j];
            const float u2 = dU[(size_t)(4 * r + 2) * kc + j], u3 = dU[(size_t)(4 * r + 3) * kc + j];
            t[r][0] = u0 + 0.5f * (u1 + u2);
            t[r][1] = 0.5f * (u1 - u2);
            t[r][2] = 0.5f * (u1 + u2) + u3;
        }
        float *g = dw + 9 * j;
        for (int s = 0; s < 3; s++) { /* G^T (dU G) */
            g[s] += t[0][s] + 0.5f * (t[1][s] + t[2][s]);
            g[3 + s] += 0.5f * (t[1][s] - t[2][s]);
            g[6 + s] += 0.5f * (t[1][s] + t[2][s]) + t[3][s];
        }
    }
}

/* Copies channel xc (H, W) into the interior of the zero-padded plane
 * (ph, pw; rows ps floats apart), `pad` rows and columns in; the border
 * is left as it is. */
INLINE void plane_put(const float *xc, int H, int W, int pad, float *plane, int ph, int pw,
                      int ps)
{
    const int n = W < pw - pad ? W : pw - pad;
    for (int h = 0; h < H && h + pad < ph; h++)
        copy_floats(plane + (size_t)(h + pad) * ps + pad, xc + (size_t)h * W, n);
}

/* The adjoint: channel xc (H, W) = the plane's interior; pixels no tile
 * reaches get 0. With add, xc += the interior instead (xc[i] + v, the
 * one float add that adding a gradient computed apart would make; 0 for
 * the pixels no tile reaches). The interior is moved, not copied: it is
 * left zero for the next channel's sums, while its rows are still in L1.
 * The input gradients clear their plane once an image and then only
 * this: the rest of the plane takes sums that nothing reads (measured on
 * cifar-3layer's conv2, clearing the whole plane for every channel was
 * 2% of a training step). */
INLINE void plane_take(float *plane, int ph, int pw, int ps, int pad, float *xc, int H, int W,
                       int add)
{
    const int n = W < pw - pad ? W : pw - pad;
    for (int h = 0; h < H; h++) {
        float *row = xc + (size_t)h * W;
        const int from = h + pad >= ph ? 0 : n; /* the row's pixels no tile reaches */
        if (from) {
            float *in = plane + (size_t)(h + pad) * ps + pad;
            if (add)
                add_floats(row, in, n);
            else
                copy_floats(row, in, n);
            zero_floats(in, n);
        }
        if (from == W) continue;
        if (add)
            for (int j = from; j < W; j++) row[j] += 0.0f;
        else
            memset(row + from, 0, sizeof(float) * (size_t)(W - from));
    }
}

/* Asks for p[0..min(n, most)) in the cache: a share of the next channel
 * of an image (or of its output gradient), which the hardware
 * prefetcher, following a channel's short rows, does not fetch early
 * enough, asked for at each tile row of this channel (all at once, the
 * requests wait on each other). */
INLINE void prefetch_floats(const float *p, size_t n, size_t most)
{
    for (size_t i = 0; i < n && i < most; i += 16) __builtin_prefetch(p + i);
}

/* With add: channel c of dx (H, W), the gradient so far that plane_take
 * will read, asked for in the cache before the channel's transform */
INLINE void prefetch_added(int add, const float *dx, int c, int H, int W)
{
    if (add && dx) prefetch_floats(dx + (size_t)c * H * W, (size_t)H * W, (size_t)H * W);
}

/* Lanes of a tile row's vector from tile t of an image of tpi tiles that
 * may be stored: all 8 while the lanes past the row fall on later tiles
 * of the image, which are written after them, or, with spill, on the
 * next image's, which are written after them too (an image of at least 8
 * tiles takes all the lanes past the last one). A whole vector is one
 * store where the lanes one at a time are eight, on every tile row's
 * last vector. */
INLINE int lanes_to_store(int t, int tpi, int spill)
{
    return t + VW <= tpi || (spill && tpi >= VW) ? VW : tpi - t;
}

/* The F(2x2) transforms of 8 tiles of a tile row, lane l holding the
 * row's tile tj0 + l. The loops over an image's channels and tiles that
 * call them are at the end of the file, shared with F(4x4, 3x3) and
 * F(2x2, 5x5). */

/* Input transform: d is the first tile's corner in the plane (rows ps
 * floats apart); writes V[xi] of the 8 tiles to v + xi * xs, the first n
 * lanes. hs is where lanes 4-7's inputs start, from d: VW for one tile
 * row of 8 tiles, or 2 ps for two tile rows of 4 (see pair_rows). */
INLINE void input8_f2(const float *d, int ps, int hs, float *v, size_t xs, int n)
{
    v8 col[4][4]; /* col[row][q]: column q of each tile's 4x4 input */
    for (int r = 0; r < 4; r++) {
        const v8 a = load8(d + (size_t)r * ps), b = load8(d + (size_t)r * ps + hs);
        const v8 e = load8(d + (size_t)r * ps + 2);
        const v8 f = load8(d + (size_t)r * ps + 2 + hs);
        col[r][0] = SHUFFLE8(a, b, IDX8_EVEN);
        col[r][1] = SHUFFLE8(a, b, IDX8_ODD);
        col[r][2] = SHUFFLE8(e, f, IDX8_EVEN);
        col[r][3] = SHUFFLE8(e, f, IDX8_ODD);
    }
    for (int q = 0; q < 4; q++) { /* B^T d, in place */
        const v8 d0 = col[0][q], d1 = col[1][q], d2 = col[2][q], d3 = col[3][q];
        col[0][q] = d0 - d2;
        col[1][q] = d1 + d2;
        col[2][q] = d2 - d1;
        col[3][q] = d1 - d3;
    }
    for (int r = 0; r < 4; r++) { /* (B^T d) B */
        const v8 *tr = col[r];
        store8(v + (size_t)(4 * r + 0) * xs, tr[0] - tr[2], n);
        store8(v + (size_t)(4 * r + 1) * xs, tr[1] + tr[2], n);
        store8(v + (size_t)(4 * r + 2) * xs, tr[2] - tr[1], n);
        store8(v + (size_t)(4 * r + 3) * xs, tr[1] - tr[3], n);
    }
}

/* B dV B^T of 8 tiles: row r, column q of each tile in rows[r][q] */
INLINE void igrad_rows_f2(const v8 dv[16], v8 rows[4][4])
{
    v8 g[4][4]; /* dV B^T, row by row */
    for (int r = 0; r < 4; r++) {
        const v8 v0 = dv[4 * r], v1 = dv[4 * r + 1], v2 = dv[4 * r + 2];
        const v8 v3 = dv[4 * r + 3];
        g[r][0] = v0;
        g[r][1] = v1 - v2 + v3;
        g[r][2] = v1 + v2 - v0;
        g[r][3] = -v3;
    }
    for (int q = 0; q < 4; q++) {
        rows[0][q] = g[0][q];
        rows[1][q] = g[1][q] - g[2][q] + g[3][q];
        rows[2][q] = g[1][q] + g[2][q] - g[0][q];
        rows[3][q] = -g[3][q];
    }
}

/* Its adjoint: adds B dV B^T of the 8 tiles whose dV[xi] is at
 * v + xi * xs (lanes outside keep count as zero) into the plane at d.
 * Columns 2 and 3 of tile tj are tile tj + 1's 0 and 1: carry[r] holds
 * row r's of the vector before, and takes this one's. */
INLINE void input_grad8_f2(const float *v, size_t xs, v8i keep, v8 carry[][2], float *d,
                           int ps)
{
    v8 dv[16], rows[4][4];
    for (int xi = 0; xi < 16; xi++) dv[xi] = (v8)((v8i)load8(v + (size_t)xi * xs) & keep);
    igrad_rows_f2(dv, rows);
    for (int r = 0; r < 4; r++) { /* added into place */
        const v8 *col = rows[r];
        const v8 e = col[0] + SHUFFLE8(carry[r][0], col[2], 7, 8, 9, 10, 11, 12, 13, 14);
        const v8 o = col[1] + SHUFFLE8(carry[r][1], col[3], 7, 8, 9, 10, 11, 12, 13, 14);
        carry[r][0] = col[2];
        carry[r][1] = col[3];
        float *p = d + (size_t)r * ps;
        *(v8 *)p = load8(p) + SHUFFLE8(e, o, IDX8_LO);
        *(v8 *)(p + VW) = load8(p + VW) + SHUFFLE8(e, o, IDX8_HI);
    }
}

/* Lanes 0-3 of x moved up one within each half: (0, x0, x1, x2, 0, x4,
 * x5, x6), the 0 being +0 */
#define SHIFT_HALVES(x) SHUFFLE8(x, (v8){0}, 8, 0, 1, 2, 8, 4, 5, 6)

/* input_grad8_f2 for two tile rows of 4 tiles (lanes 0-3 and 4-7; tile
 * rows at d and 2 rows below): the same sums in the same order as on
 * each row alone, where a row's first tile starts from a carry of +0
 * and its last tile's columns 2 and 3 meet the lanes past the row, which
 * hold B dV B^T of a tile of zeros (zr). Tile row ti's sums go into the
 * plane before tile row ti + 1's, which share two plane rows with it. */
INLINE void input_grad8_f2_pair(const float *v, size_t xs, float *d, int ps)
{
    v8 dv[16], rows[4][4], zr[4][4];
    for (int xi = 0; xi < 16; xi++) dv[xi] = load8(v + (size_t)xi * xs);
    igrad_rows_f2(dv, rows);
    for (int xi = 0; xi < 16; xi++) dv[xi] = (v8){0};
    igrad_rows_f2(dv, zr);
    for (int half = 0; half < 2; half++)
        for (int r = 0; r < 4; r++) {
            const v8 *col = rows[r];
            const v8 e = col[0] + SHIFT_HALVES(col[2]), o = col[1] + SHIFT_HALVES(col[3]);
            const v8 te = zr[r][0] + SHUFFLE8(col[2], col[2], 3, 7, 3, 7, 3, 7, 3, 7);
            const v8 to = zr[r][1] + SHUFFLE8(col[3], col[3], 3, 7, 3, 7, 3, 7, 3, 7);
            float *p = d + (size_t)(2 * half + r) * ps;
            if (half == 0) {
                *(v8 *)p = load8(p) + SHUFFLE8(e, o, IDX8_LO);
                *(v8 *)(p + VW) = load8(p + VW) + SHUFFLE8(te, to, IDX8_LO);
            } else {
                *(v8 *)p = load8(p) + SHUFFLE8(e, o, IDX8_HI);
                *(v8 *)(p + VW) = load8(p + VW) + SHUFFLE8(te, to, 1, 9, 1, 9, 1, 9, 1, 9);
            }
        }
}

/* Output transform: A^T M A + b of the 8 tiles whose M[xi] is at
 * m + xi * xs, to the plane at y0 (rows ps floats apart), lanes 4-7's
 * outputs hs floats from lanes 0-3's. */
INLINE void output8_f2(const float *m, size_t xs, float b, float *y0, int ps, int hs)
{
    v8 t0[4], t1[4]; /* A^T M */
    for (int q = 0; q < 4; q++) {
        const v8 m0 = load8(m + (size_t)q * xs), m1 = load8(m + (size_t)(4 + q) * xs);
        const v8 m2 = load8(m + (size_t)(8 + q) * xs);
        const v8 m3 = load8(m + (size_t)(12 + q) * xs);
        t0[q] = m0 + m1 + m2;
        t1[q] = m1 - m2 - m3;
    }
    /* (A^T M) A, and the bias */
    const v8 a0 = t0[0] + t0[1] + t0[2] + b, a1 = t0[1] - t0[2] - t0[3] + b;
    const v8 b0 = t1[0] + t1[1] + t1[2] + b, b1 = t1[1] - t1[2] - t1[3] + b;
    float *y1 = y0 + ps;
    *(v8 *)y0 = SHUFFLE8(a0, a1, IDX8_LO);
    *(v8 *)(y0 + hs) = SHUFFLE8(a0, a1, IDX8_HI);
    *(v8 *)y1 = SHUFFLE8(b0, b1, IDX8_LO);
    *(v8 *)(y1 + hs) = SHUFFLE8(b0, b1, IDX8_HI);
}

/* Its adjoint without the bias: dM[xi] = A dY A^T of the 8 tiles whose
 * dY is in the plane at y0 (lanes 4-7's hs floats further), to
 * mv + xi * xs, the first n lanes. */
INLINE void output_grad8_f2(const float *y0, int ps, int hs, float *mv, size_t xs, int n)
{
    const float *y1 = y0 + ps;
    const v8 p0 = load8(y0), p1 = load8(y0 + hs), q0 = load8(y1), q1 = load8(y1 + hs);
    const v8 a0 = SHUFFLE8(p0, p1, IDX8_EVEN);
    const v8 a1 = SHUFFLE8(p0, p1, IDX8_ODD);
    const v8 b0 = SHUFFLE8(q0, q1, IDX8_EVEN);
    const v8 b1 = SHUFFLE8(q0, q1, IDX8_ODD);
    /* dY A^T: rows (a0, a0+a1, a0-a1, -a1) and (b0, ...) */
    const v8 r0[4] = {a0, a0 + a1, a0 - a1, -a1};
    const v8 r1[4] = {b0, b0 + b1, b0 - b1, -b1};
    for (int q = 0; q < 4; q++) { /* A (dY A^T) */
        store8(mv + (size_t)q * xs, r0[q], n);
        store8(mv + (size_t)(4 + q) * xs, r0[q] + r1[q], n);
        store8(mv + (size_t)(8 + q) * xs, r0[q] - r1[q], n);
        store8(mv + (size_t)(12 + q) * xs, -r1[q], n);
    }
}

/* ---- F(4x4, 3x3): 6x6 input tiles, 36 positions, 4x4 outputs per tile.
 * Interpolation points 0, +-1, +-2 (Lavin and Gray's choice):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *          0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *          1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * 36 * K * C multiply-adds per tile of 16 outputs instead of 144 * K * C:
 * 4x fewer than im2col, 1.78x fewer than F(2x2, 3x3). The coefficients
 * are no longer all 0, +-1 or +-1/2 but scale by up to 8 and 1/24: the
 * results err by up to about 7e-6 of a tensor's largest value against an
 * exact computation, where im2col and F(2x2) err by 3e-7-7e-7
 * (tests/test_layers.c bounds it). g6 (G) and gt6 (G^T) work on values s
 * floats apart; the image transforms further down take 8 tiles at once. */

/* g6 and gt6 for one filter (float) and for 8 side by side (v8, lane l
 * filter l): the same operations, so the same bits either way */
#define DEF_G6(name, T)                                                     \
    static inline void name(const T *g, size_t s, T *u, size_t us)          \
    {                                                                       \
        const T g0 = g[0], g1 = g[s], g2 = g[2 * s];                        \
        u[0] = 0.25f * g0;                                                  \
        u[us] = -(g0 + g1 + g2) / 6.0f;                                     \
        u[2 * us] = -(g0 - g1 + g2) / 6.0f;                                 \
        u[3 * us] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;                    \
        u[4 * us] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;                    \
        u[5 * us] = g2;                                                     \
    }
#define DEF_GT6(name, T)                                                    \
    static inline void name(const T *u, size_t us, T *g, size_t s)          \
    {                                                                       \
        const T u0 = u[0], u1 = u[us], u2 = u[2 * us], u3 = u[3 * us];      \
        const T u4 = u[4 * us], u5 = u[5 * us];                             \
        g[0] = 0.25f * u0 - (u1 + u2) / 6.0f + (u3 + u4) / 24.0f;           \
        g[s] = (u2 - u1) / 6.0f + (u3 - u4) / 12.0f;                        \
        g[2 * s] = (u3 + u4 - u1 - u2) / 6.0f + u5;                         \
    }
DEF_G6(g6, float)
DEF_G6(g6v, v8)
DEF_GT6(gt6, float)
DEF_GT6(gt6v, v8)
#undef DEF_G6
#undef DEF_GT6

/* U = G w G^T of K*C filters of r x r taps (w (K, C, r, r)) into 36
 * matrices (K, C), with gv (G on vectors) and gs (on floats): 8 filters
 * at a time in vectors (the divisions, which the scalar code waited on,
 * take 1/8 the instructions), the last K*C % 8 one by one. And the
 * adjoint, dw += G^T dU G, with gtv and gts. F(4x4, 3x3) and F(2x2, 5x5)
 * each define theirs. */
#define DEF_FILTER6(name, r, gv, gs)                                                       \
    CLONES void name(const float *w, int K, int C, float *U)                               \
    {                                                                                      \
        const size_t kc = (size_t)K * C;                                                   \
        size_t j = 0;                                                                      \
        for (; j + VW <= kc; j += VW) {                                                    \
            v8 g[r * r], t[6][r], u[6][6];                                                 \
            for (int e = 0; e < r * r; e++)                                                \
                for (int l = 0; l < VW; l++) g[e][l] = w[r * r * (j + l) + e];             \
            for (int q = 0; q < r; q++) gv(g + q, r, &t[0][q], r); /* G g */               \
            for (int a = 0; a < 6; a++) gv(t[a], 1, u[a], 1);      /* (G g) G^T */         \
            for (int xi = 0; xi < 36; xi++)                                                \
                *(v8 *)(U + (size_t)xi * kc + j) = u[xi / 6][xi % 6];                      \
        }                                                                                  \
        for (; j < kc; j++) {                                                              \
            float t[6][r], u[6][6];                                                        \
            for (int q = 0; q < r; q++) gs(w + r * r * j + q, r, &t[0][q], r);             \
            for (int a = 0; a < 6; a++) gs(t[a], 1, u[a], 1);                              \
            for (int xi = 0; xi < 36; xi++) U[(size_t)xi * kc + j] = u[xi / 6][xi % 6];    \
        }                                                                                  \
    }
#define DEF_FILTER6_GRAD(name, r, gtv, gts)                                                \
    CLONES void name(const float *dU, int K, int C, float *dw)                             \
    {                                                                                      \
        const size_t kc = (size_t)K * C;                                                   \
        size_t j = 0;                                                                      \
        for (; j + VW <= kc; j += VW) {                                                    \
            v8 u[6][6], t[6][r], g[r][r];                                                  \
            for (int xi = 0; xi < 36; xi++)                                                \
                u[xi / 6][xi % 6] = *(const v8 *)(dU + (size_t)xi * kc + j);               \
            for (int a = 0; a < 6; a++) gtv(u[a], 1, t[a], 1);                             \
            for (int q = 0; q < r; q++) gtv(&t[0][q], r, &g[0][q], r);                     \
            for (int l = 0; l < VW; l++)                                                   \
                for (int e = 0; e < r * r; e++) dw[r * r * (j + l) + e] += g[e / r][e % r][l]; \
        }                                                                                  \
        for (; j < kc; j++) {                                                              \
            float u[6][6], t[6][r], g[r][r];                                               \
            for (int xi = 0; xi < 36; xi++) u[xi / 6][xi % 6] = dU[(size_t)xi * kc + j];   \
            for (int a = 0; a < 6; a++) gts(u[a], 1, t[a], 1);                             \
            for (int q = 0; q < r; q++) gts(&t[0][q], r, &g[0][q], r);                     \
            for (int e = 0; e < r * r; e++) dw[r * r * j + e] += g[e / r][e % r];          \
        }                                                                                  \
    }

/* As cnn_wino_filter (and its adjoint): U is 36 matrices (K, C). */
DEF_FILTER6(cnn_wino4_filter, 3, g6v, g6)
DEF_FILTER6_GRAD(cnn_wino4_filter_grad, 3, gt6v, gt6)

/* The image transforms below take a tile row's 8 tiles at a time, lane l
 * holding tile tj0 + l, as F(2x2)'s do. Tile tj's 6 columns are the
 * plane's columns 4tj to 4tj + 5: splitting 32 columns from 4tj0 four
 * ways (even and odd twice) gives the tiles' first four, and shifting the
 * first two by one lane, with columns 4tj0 + 32 and + 33 coming in, the
 * last two. The 1-D maps B^T, A^T (and their adjoints) run on 6 (or 4)
 * such vectors, the same arithmetic as on one tile's values. */

/* Columns 0-5 of the 8 tiles whose first columns are p[0], p[4], ...,
 * p[12] and p[hs], ..., p[hs + 12]: hs = 16 for 8 tiles of a tile row
 * (reads p[0..39]), 4 ps for 4 tiles of two tile rows (reads p[0..23]
 * and p[hs..hs + 23]). Column 4 (5) of lanes 0-3 is column 0 (1) of the
 * lane after, but for lane 3, whose comes from p[16] (p[17]); the same
 * for lanes 4-7. */
INLINE void cols6(const float *p, int hs, int two, v8 c[6])
{
    const v8 a = load8(p), b = load8(p + VW), e = load8(p + hs), f = load8(p + hs + VW);
    const v8 ab0 = SHUFFLE8(a, b, IDX8_EVEN), ab1 = SHUFFLE8(a, b, IDX8_ODD);
    const v8 ef0 = SHUFFLE8(e, f, IDX8_EVEN), ef1 = SHUFFLE8(e, f, IDX8_ODD);
    c[0] = SHUFFLE8(ab0, ef0, IDX8_EVEN);
    c[1] = SHUFFLE8(ab1, ef1, IDX8_EVEN);
    c[2] = SHUFFLE8(ab0, ef0, IDX8_ODD);
    c[3] = SHUFFLE8(ab1, ef1, IDX8_ODD);
    if (two) {
        const v8 g = load8(p + 2 * VW), h = load8(p + hs + 2 * VW);
        const v8 gh = SHUFFLE8(g, h, 0, 1, 8, 9, 2, 3, 10, 11);
        c[4] = SHUFFLE8(c[0], gh, 1, 2, 3, 8, 5, 6, 7, 10);
        c[5] = SHUFFLE8(c[1], gh, 1, 2, 3, 9, 5, 6, 7, 11);
    } else {
        const v8 g = load8(p + 4 * VW);
        c[4] = SHUFFLE8(c[0], g, 1, 2, 3, 4, 5, 6, 7, 8);
        c[5] = SHUFFLE8(c[1], g, 1, 2, 3, 4, 5, 6, 7, 9);
    }
}

/* The inverse of the four-way split: columns 0-3 of 8 tiles back into 32
 * consecutive floats. */
INLINE void join4(const v8 c[4], v8 out[4])
{
    const v8 ab0 = SHUFFLE8(c[0], c[2], IDX8_LO), ef0 = SHUFFLE8(c[0], c[2], IDX8_HI);
    const v8 ab1 = SHUFFLE8(c[1], c[3], IDX8_LO), ef1 = SHUFFLE8(c[1], c[3], IDX8_HI);
    out[0] = SHUFFLE8(ab0, ab1, IDX8_LO);
    out[1] = SHUFFLE8(ab0, ab1, IDX8_HI);
    out[2] = SHUFFLE8(ef0, ef1, IDX8_LO);
    out[3] = SHUFFLE8(ef0, ef1, IDX8_HI);
}

/* r[0..5] (rs apart) = B^T d[0..5] (s apart), for vectors of type T
 * (8 lanes, and 16 for the 16-lane input transform below) */
#define DEF_BT6(name, T)                                                                     \
    INLINE void name(const T *d, int s, T *r, int rs)                                       \
    {                                                                                        \
        const T d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s];           \
        const T d5 = d[5 * s];                                                               \
        r[0] = 4.0f * d0 - 5.0f * d2 + d4;                                                   \
        r[rs] = (d3 + d4) - 4.0f * (d1 + d2);                                                \
        r[2 * rs] = 4.0f * (d1 - d2) + (d4 - d3);                                            \
        r[3 * rs] = (d4 - d2) - 2.0f * (d1 - d3);                                            \
        r[4 * rs] = (d4 - d2) + 2.0f * (d1 - d3);                                            \
        r[5 * rs] = 4.0f * d1 - 5.0f * d3 + d5;                                              \
    }
DEF_BT6(bt6, v8)

/* d = B r, the adjoint of bt6 */
#define DEF_B6(name, T)                                                                      \
    INLINE void name(const T *r, int rs, T *d, int s)                                       \
    {                                                                                        \
        const T r0 = r[0], r1 = r[rs], r2 = r[2 * rs], r3 = r[3 * rs], r4 = r[4 * rs];       \
        const T r5 = r[5 * rs];                                                              \
        d[0] = 4.0f * r0;                                                                    \
        d[s] = 4.0f * (r2 - r1 + r5) + 2.0f * (r4 - r3);                                     \
        d[2 * s] = -5.0f * r0 - 4.0f * (r1 + r2) - (r3 + r4);                                \
        d[3 * s] = (r1 - r2) + 2.0f * (r3 - r4) - 5.0f * r5;                                 \
        d[4 * s] = r0 + r1 + r2 + r3 + r4;                                                   \
        d[5 * s] = r5;                                                                       \
    }
DEF_B6(b6, v8)

/* y[0..3] = A^T m[0..5] (T: 8 lanes, and 16 for the 16-lane output
 * transforms below) */
#define DEF_AT6(name, T)                                                                     \
    INLINE void name(const T *m, int ms, T *y, int ys)                                      \
    {                                                                                        \
        const T m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms];       \
        const T m5 = m[5 * ms];                                                              \
        const T a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;                          \
        y[0] = m0 + a + c;                                                                   \
        y[ys] = b + 2.0f * d;                                                                \
        y[2 * ys] = a + 4.0f * c;                                                            \
        y[3 * ys] = b + 8.0f * d + m5;                                                       \
    }
DEF_AT6(at6, v8)

/* m[0..5] = A y[0..3], the adjoint of at6 */
#define DEF_A6(name, T)                                                                      \
    INLINE void name(const T *y, int ys, T *m, int ms)                                      \
    {                                                                                        \
        const T y0 = y[0], y1 = y[ys], y2 = y[2 * ys], y3 = y[3 * ys];                       \
        m[0] = y0;                                                                           \
        m[ms] = y0 + y1 + y2 + y3;                                                           \
        m[2 * ms] = y0 - y1 + y2 - y3;                                                       \
        m[3 * ms] = y0 + 2.0f * y1 + 4.0f * y2 + 8.0f * y3;                                  \
        m[4 * ms] = y0 - 2.0f * y1 + 4.0f * y2 - 8.0f * y3;                                  \
        m[5 * ms] = y3;                                                                      \
    }
DEF_A6(a6, v8)

/* The F(4x4) transforms of 8 tiles of a tile row (or 4 of two), as the
 * F(2x2) ones above: the same arguments, 36 matrices, hs = 16 or 4 ps. */
/* V of 8 tiles from their 6x6 inputs, col[row][column] (T, bt, store:
 * the vector type of VN lanes, its B^T and its store of n lanes) */
#define DEF_INPUT_COLS_F4(name, T, bt, store)                                                \
    INLINE void name(const T col[6][6], float *v, size_t xs, int n)                         \
    {                                                                                        \
        T bd[6][6];                                                                          \
        for (int q = 0; q < 6; q++) bt(&col[0][q], 6, &bd[0][q], 6); /* B^T d */            \
        for (int r = 0; r < 6; r++) { /* (B^T d) B */                                        \
            T vr[6];                                                                         \
            bt(bd[r], 1, vr, 1);                                                             \
            for (int q = 0; q < 6; q++) store(v + (size_t)(6 * r + q) * xs, vr[q], n);       \
        }                                                                                    \
    }
DEF_INPUT_COLS_F4(input_cols_f4, v8, bt6, store8)

INLINE void input8_f4(const float *d, int ps, int hs, int two, float *v, size_t xs, int n)
{
    v8 col[6][6]; /* [row][column] of each tile's 6x6 */
    for (int r = 0; r < 6; r++) cols6(d + (size_t)r * ps, hs, two, col[r]);
    input_cols_f4(col, v, xs, n);
}

/* B dV B^T of 8 tiles, dv[6 r + q] at row r, column q: rows[r][q] */
#define DEF_IGRAD_ROWS_F4(name, T, b)                                                        \
    INLINE void name(const T dv[36], T rows[6][6])                                          \
    {                                                                                        \
        T g[6][6];                                                                           \
        for (int r = 0; r < 6; r++) b(dv + 6 * r, 1, g[r], 1); /* dV B^T, row by row */      \
        for (int q = 0; q < 6; q++) b(&g[0][q], 6, &rows[0][q], 6); /* B (dV B^T) */        \
    }
DEF_IGRAD_ROWS_F4(igrad_rows_f4, v8, b6)

/* Columns 4 and 5 of tile tj are tile tj + 1's 0 and 1. */
INLINE void input_grad8_f4_add(const v8 rows[6][6], v8 carry[][2], float *d, int ps);
INLINE void input_grad8_f4(const float *v, size_t xs, v8i keep, v8 carry[][2], float *d,
                           int ps)
{
    v8 dv[36], rows[6][6];
    for (int xi = 0; xi < 36; xi++) dv[xi] = (v8)((v8i)load8(v + (size_t)xi * xs) & keep);
    igrad_rows_f4(dv, rows);
    input_grad8_f4_add(rows, carry, d, ps);
}

/* The 8 tiles' B dV B^T (rows) added into the plane at d, each tile's
 * columns 4 and 5 carried into the next vector's lanes 0 and 1 */
INLINE void input_grad8_f4_add(const v8 rows[6][6], v8 carry[][2], float *d, int ps)
{
    for (int r = 0; r < 6; r++) { /* added into place */
        const v8 *col = rows[r];
        const v8 sum[4] = {
            col[0] + SHUFFLE8(carry[r][0], col[4], 7, 8, 9, 10, 11, 12, 13, 14),
            col[1] + SHUFFLE8(carry[r][1], col[5], 7, 8, 9, 10, 11, 12, 13, 14),
            col[2], col[3]};
        carry[r][0] = col[4];
        carry[r][1] = col[5];
        v8 out[4];
        join4(sum, out);
        float *p = d + (size_t)r * ps;
        for (int j = 0; j < 4; j++) *(v8 *)(p + j * VW) = load8(p + j * VW) + out[j];
    }
}

/* input_grad8_f4 for two tile rows of 4 tiles, as input_grad8_f2_pair:
 * a row's 16 columns, then columns 16 and 17, where its last tile's
 * columns 4 and 5 meet a tile of zeros' (zr). */
INLINE void input_grad8_f4_pair_add(const v8 rows[6][6], const v8 zr[6][6], float *d, int ps);
INLINE void input_grad8_f4_pair(const float *v, size_t xs, float *d, int ps)
{
    v8 dv[36], rows[6][6], zr[6][6];
    for (int xi = 0; xi < 36; xi++) dv[xi] = load8(v + (size_t)xi * xs);
    igrad_rows_f4(dv, rows);
    for (int xi = 0; xi < 36; xi++) dv[xi] = (v8){0};
    igrad_rows_f4(dv, zr);
    input_grad8_f4_pair_add(rows, zr, d, ps);
}

/* The two rows' B dV B^T (rows; zr: of a tile of zeros) added into the
 * plane at d */
INLINE void input_grad8_f4_pair_add(const v8 rows[6][6], const v8 zr[6][6], float *d, int ps)
{
    for (int half = 0; half < 2; half++)
        for (int r = 0; r < 6; r++) {
            const v8 *col = rows[r];
            const v8 sum[4] = {col[0] + SHIFT_HALVES(col[4]), col[1] + SHIFT_HALVES(col[5]),
                               col[2], col[3]};
            const v8 t4 = zr[r][0] + SHUFFLE8(col[4], col[4], 3, 7, 3, 7, 3, 7, 3, 7);
            const v8 t5 = zr[r][1] + SHUFFLE8(col[5], col[5], 3, 7, 3, 7, 3, 7, 3, 7);
            v8 out[4];
            join4(sum, out);
            float *p = d + (size_t)(4 * half + r) * ps;
            const v8 tail = half ? SHUFFLE8(t4, t5, 1, 9, 1, 9, 1, 9, 1, 9)
                                 : SHUFFLE8(t4, t5, IDX8_LO);
            *(v8 *)p = load8(p) + out[2 * half];
            *(v8 *)(p + VW) = load8(p + VW) + out[2 * half + 1];
            *(v8 *)(p + 2 * VW) = load8(p + 2 * VW) + tail;
        }
}

/* A^T M of 8 tiles whose M[xi] is at m + xi * xs: t[row][column] */
#define DEF_OUTPUT_ROWS_F4(name, T, at)                                                      \
    INLINE void name(const float *m, size_t xs, T t[4][6])                                  \
    {                                                                                        \
        for (int q = 0; q < 6; q++) {                                                        \
            T mq[6];                                                                         \
            for (int r = 0; r < 6; r++) mq[r] = *(const T *)(m + (size_t)(6 * r + q) * xs);  \
            at(mq, 1, &t[0][q], 6);                                                          \
        }                                                                                    \
    }
DEF_OUTPUT_ROWS_F4(output_rows_f4, v8, at6)

/* Output row a of the 8 tiles from A^T M (t), with the bias: out[j]
 * holds tiles 2j and 2j + 1's 4 pixels each, in order */
INLINE void output_row_f4(v8 t[4][6], int a, float b, v8 out[4])
{
    v8 o[4];
    at6(t[a], 1, o, 1);
    for (int j = 0; j < 4; j++) o[j] = o[j] + b;
    join4(o, out);
}

INLINE void output8_f4(const float *m, size_t xs, float b, float *y0, int ps, int hs)
{
    v8 t[4][6]; /* A^T M */
    output_rows_f4(m, xs, t);
    for (int a = 0; a < 4; a++) { /* (A^T M) A, and the bias */
        v8 out[4];
        output_row_f4(t, a, b, out);
        float *row = y0 + (size_t)a * ps;
        *(v8 *)row = out[0];
        *(v8 *)(row + VW) = out[1];
        *(v8 *)(row + hs) = out[2];
        *(v8 *)(row + hs + VW) = out[3];
    }
}

/* dM of 8 tiles from their 4x4 output gradients, g[row][column]
 * (columns 0-3 used), the first n lanes stored */
#define DEF_OUTPUT_GRAD_COLS_F4(name, T, a6f, store)                                         \
    INLINE void name(const T g[4][6], float *mv, size_t xs, int n)                          \
    {                                                                                        \
        T tr[6][4];                                                                          \
        for (int a = 0; a < 4; a++) { /* dY A^T */                                           \
            T m[6];                                                                          \
            a6f(g[a], 1, m, 1);                                                              \
            for (int q = 0; q < 6; q++) tr[q][a] = m[q];                                     \
        }                                                                                    \
        for (int q = 0; q < 6; q++) { /* A (dY A^T) */                                       \
            T m[6];                                                                          \
            a6f(tr[q], 1, m, 1);                                                             \
            for (int r = 0; r < 6; r++) store(mv + (size_t)(6 * r + q) * xs, m[r], n);       \
        }                                                                                    \
    }
DEF_OUTPUT_GRAD_COLS_F4(output_grad_cols_f4, v8, a6, store8)

INLINE void output_grad8_f4(const float *y0, int ps, int hs, int two, float *mv, size_t xs,
                            int n)
{
    v8 g[4][6]; /* g[a]: row a of the tiles, columns 0-3 used */
    for (int a = 0; a < 4; a++) cols6(y0 + (size_t)a * ps, hs, two, g[a]);
    output_grad_cols_f4(g, mv, xs, n);
}

/* ---- F(2x2, 5x5): 6x6 input tiles, 36 positions, 2x2 outputs per tile,
 * for 5x5 stride-1 layers (a first layer's 5x5 on RGB). The same
 * interpolation points as F(4x4, 3x3), so the same B^T (bt6 and b6 above),
 * with
 *   G   = [1/4 0 0 0 0; -1/6 -1/6 -1/6 -1/6 -1/6; -1/6 1/6 -1/6 1/6 -1/6;
 *          1/24 1/12 1/6 1/3 2/3; 1/24 -1/12 1/6 -1/3 2/3; 0 0 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1]
 * 36 * K * C multiply-adds per tile of 4 outputs instead of 100 * K * C,
 * 2.78x fewer than im2col; the scales are those of F(4x4), and so is the
 * rounding (tests/test_layers.c bounds it). Tile tj's 6 columns are the
 * plane's columns 2tj to 2tj + 5: the even and odd ones of 16 columns
 * from 2tj0, 2tj0 + 2 and 2tj0 + 4 give the 8 tiles' columns 0-1, 2-3 and
 * 4-5, as F(2x2)'s image transforms split theirs. */
#define DEF_G65(name, T)                                                    \
    static inline void name(const T *g, size_t s, T *u, size_t us)          \
    {                                                                       \
        const T g0 = g[0], g1 = g[s], g2 = g[2 * s], g3 = g[3 * s];         \
        const T g4 = g[4 * s];                                              \
        u[0] = 0.25f * g0;                                                  \
        u[us] = -(g0 + g1 + g2 + g3 + g4) / 6.0f;                           \
        u[2 * us] = -(g0 - g1 + g2 - g3 + g4) / 6.0f;                       \
        u[3 * us] = (g0 + 2.0f * g1 + 4.0f * g2 + 8.0f * g3 + 16.0f * g4) / 24.0f; \
        u[4 * us] = (g0 - 2.0f * g1 + 4.0f * g2 - 8.0f * g3 + 16.0f * g4) / 24.0f; \
        u[5 * us] = g4;                                                     \
    }
#define DEF_GT65(name, T)                                                   \
    static inline void name(const T *u, size_t us, T *g, size_t s)          \
    {                                                                       \
        const T u0 = u[0], u1 = u[us], u2 = u[2 * us], u3 = u[3 * us];      \
        const T u4 = u[4 * us], u5 = u[5 * us];                             \
        const T p = u1 + u2, q = u2 - u1, a = u3 + u4, b = u3 - u4;         \
        g[0] = 0.25f * u0 - p / 6.0f + a / 24.0f;                           \
        g[s] = q / 6.0f + b / 12.0f;                                        \
        g[2 * s] = (a - p) / 6.0f;                                          \
        g[3 * s] = q / 6.0f + b / 3.0f;                                     \
        g[4 * s] = 2.0f * a / 3.0f - p / 6.0f + u5;                         \
    }
DEF_G65(g65, float)
DEF_G65(g65v, v8)
DEF_GT65(gt65, float)
DEF_GT65(gt65v, v8)
#undef DEF_G65
#undef DEF_GT65

/* w (K, C, 5, 5) -> U: 36 matrices (K, C), and the adjoint, dw (K, C,
 * 5, 5) += G^T dU G */
DEF_FILTER6(cnn_wino25_filter, 5, g65v, g65)
DEF_FILTER6_GRAD(cnn_wino25_filter_grad, 5, gt65v, gt65)
#undef DEF_FILTER6
#undef DEF_FILTER6_GRAD

/* y[0..1] = A^T m[0..5] */
INLINE void at26(const v8 *m, int ms, v8 *y, int ys)
{
    const v8 m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms];
    const v8 m5 = m[5 * ms];
    y[0] = m0 + (m1 + m2) + (m3 + m4);
    y[ys] = (m1 - m2) + 2.0f * (m3 - m4) + m5;
}

/* m[0..5] = A y[0..1], the adjoint of at26 */
INLINE void a26(v8 y0, v8 y1, v8 *m, int ms)
{
    m[0] = y0;
    m[ms] = y0 + y1;
    m[2 * ms] = y0 - y1;
    m[3 * ms] = y0 + 2.0f * y1;
    m[4 * ms] = y0 - 2.0f * y1;
    m[5 * ms] = y1;
}

/* Columns 0-5 of the 8 tiles whose first columns are p[0], p[2], ...,
 * p[14] (reads p[0..19]) */
INLINE void cols6_s2(const float *p, v8 c[6])
{
    for (int h = 0; h < 3; h++) {
        const v8 a = load8(p + 2 * h), b = load8(p + 2 * h + VW);
        c[2 * h] = SHUFFLE8(a, b, IDX8_EVEN);
        c[2 * h + 1] = SHUFFLE8(a, b, IDX8_ODD);
    }
}

/* V of 8 tiles of a tile row, from the plane at d (the first tile's
 * corner), the first n lanes stored */
INLINE void input8_f25(const float *d, int ps, float *v, size_t xs, int n)
{
    v8 col[6][6];
    for (int r = 0; r < 6; r++) cols6_s2(d + (size_t)r * ps, col[r]);
    input_cols_f4(col, v, xs, n);
}

/* Its adjoint: adds B dV B^T of the 8 tiles (lanes outside keep count as
 * zero; v NULL: no tiles, only the carry) into the plane at d. The plane's
 * column pair tj (columns 2tj and 2tj + 1) gets columns 0-1 of tile tj,
 * 2-3 of tile tj - 1 and 4-5 of tile tj - 2: carry[r] holds row r's
 * columns 2-5 of the vector before, and takes this one's. */
INLINE void input_grad8_f25(const float *v, size_t xs, v8i keep, v8 carry[][4], float *d,
                            int ps)
{
    v8 dv[36], rows[6][6];
    for (int xi = 0; xi < 36; xi++)
        dv[xi] = v ? (v8)((v8i)load8(v + (size_t)xi * xs) & keep) : (v8){0};
    igrad_rows_f4(dv, rows);
    for (int r = 0; r < 6; r++) { /* added into place */
        const v8 *col = rows[r];
        const v8 e = col[0] + SHUFFLE8(carry[r][0], col[2], 7, 8, 9, 10, 11, 12, 13, 14) +
                     SHUFFLE8(carry[r][2], col[4], 6, 7, 8, 9, 10, 11, 12, 13);
        const v8 o = col[1] + SHUFFLE8(carry[r][1], col[3], 7, 8, 9, 10, 11, 12, 13, 14) +
                     SHUFFLE8(carry[r][3], col[5], 6, 7, 8, 9, 10, 11, 12, 13);
        for (int q = 0; q < 4; q++) carry[r][q] = col[2 + q];
        float *p = d + (size_t)r * ps;
        *(v8 *)p = load8(p) + SHUFFLE8(e, o, IDX8_LO);
        *(v8 *)(p + VW) = load8(p + VW) + SHUFFLE8(e, o, IDX8_HI);
    }
}

/* Output transform: A^T M A + b of the 8 tiles whose M[xi] is at
 * m + xi * xs, to the plane at y0 (rows ps floats apart) */
INLINE void output8_f25(const float *m, size_t xs, float b, float *y0, int ps)
{
    v8 t[2][6]; /* A^T M */
    for (int q = 0; q < 6; q++) {
        v8 mq[6];
        for (int r = 0; r < 6; r++) mq[r] = load8(m + (size_t)(6 * r + q) * xs);
        at26(mq, 1, &t[0][q], 6);
    }
    for (int a = 0; a < 2; a++) { /* (A^T M) A, and the bias */
        v8 o[2];
        at26(t[a], 1, o, 1);
        o[0] = o[0] + b;
        o[1] = o[1] + b;
        float *row = y0 + (size_t)a * ps;
        *(v8 *)row = SHUFFLE8(o[0], o[1], IDX8_LO);
        *(v8 *)(row + VW) = SHUFFLE8(o[0], o[1], IDX8_HI);
    }
}

/* Its adjoint without the bias: dM[xi] = A dY A^T of the 8 tiles whose
 * dY is in the plane at y0, to mv + xi * xs, the first n lanes */
INLINE void output_grad8_f25(const float *y0, int ps, float *mv, size_t xs, int n)
{
    v8 t[2][6]; /* dY A^T, row by row */
    for (int a = 0; a < 2; a++) {
        const float *row = y0 + (size_t)a * ps;
        const v8 p0 = load8(row), p1 = load8(row + VW);
        a26(SHUFFLE8(p0, p1, IDX8_EVEN), SHUFFLE8(p0, p1, IDX8_ODD), t[a], 1);
    }
    for (int q = 0; q < 6; q++) { /* A (dY A^T) */
        v8 m[6];
        a26(t[0][q], t[1][q], m, 1);
        for (int r = 0; r < 6; r++) store8(mv + (size_t)(6 * r + q) * xs, m[r], n);
    }
}

/* ---- The image transforms of all three, F(m x m, r x r) with m = 2 or
 * 4 and r = 3, or m = 2 and r = 5: the loops over channels, tile rows and
 * vectors of 8 tiles around the 8-tile transforms above. m and r are
 * constants in every caller, so each inlined copy keeps only its own
 * variant's calls.
 *
 * An image's plane is its zero-padded channel, m * th + r - 1 rows of
 * m * tw + r - 1 columns, rows plane_stride() floats apart; tile (ti, tj)
 * covers rows m ti to m ti + m + r - 2 and columns m tj to
 * m tj + m + r - 2. */

/* Floats between the rows of a plane: the slack lets a tile row's last
 * vector of 8 tiles load and store whole vectors. F(2x2, 3x3) reads
 * 16 + 2 columns from 2 tj0; F(4x4) 40 from 4 tj0, and its last vector
 * of a row may start at the row's last tile; F(2x2, 5x5) reads 20 from
 * 2 tj0, and its input gradient adds 16 from 2 tj0 up to tj0 = tw + 1:
 * up to column 2 tw + 17 of a row of 2 tw + 4. */
static int plane_stride(int m, int r, int tw)
{
    return m * tw + r - 1 + (m == 4 ? 5 : 2) * VW;
}

static size_t plane_floats(int m, int r, int th, int tw)
{
    return (size_t)(m * th + r - 1) * (size_t)plane_stride(m, r, tw);
}

size_t cnn_wino_scratch(int th, int tw) { return plane_floats(2, 3, th, tw); }

size_t cnn_wino25_scratch(int th, int tw) { return plane_floats(2, 5, th, tw); }

/* 1: tile rows ti and ti + 1 in one vector, 4 tiles each, where a row
 * has 4 tiles (ResNet-20's 8x8 F(2x2) and 16x16 F(4x4) layers), which
 * would leave half of each vector idle. Their tiles are consecutive in V
 * and M as a row's 8 are, and lanes 4-7's plane data starts m rows below
 * lanes 0-3's, where for one tile row it starts 4 tiles (m * 4 columns)
 * further along. */
static int pair_rows(int r, int ti, int th, int tw)
{
    return r == 3 && tw == VW / 2 && ti + 1 < th;
}

/* One vector of tiles of the plane at d: 8 of a tile row, or 4 of each
 * of two (two, a constant where it is inlined). */
INLINE void input_vec(int m, int r, int two, const float *d, int ps, float *v, size_t xs,
                      int n)
{
    const int hs = two ? m * ps : m * VW / 2;
    if (r == 5)
        input8_f25(d, ps, v, xs, n);
    else if (m == 2)
        input8_f2(d, ps, hs, v, xs, n);
    else
        input8_f4(d, ps, hs, two, v, xs, n);
}

INLINE void output_vec(int m, int r, int two, const float *mt, size_t xs, float b, float *y0,
                       int ps)
{
    const int hs = two ? m * ps : m * VW / 2;
    if (r == 5)
        output8_f25(mt, xs, b, y0, ps);
    else if (m == 2)
        output8_f2(mt, xs, b, y0, ps, hs);
    else
        output8_f4(mt, xs, b, y0, ps, hs);
}

INLINE void output_grad_vec(int m, int r, int two, const float *p, int ps, float *mv,
                            size_t xs, int n)
{
    const int hs = two ? m * ps : m * VW / 2;
    if (r == 5)
        output_grad8_f25(p, ps, mv, xs, n);
    else if (m == 2)
        output_grad8_f2(p, ps, hs, mv, xs, n);
    else
        output_grad8_f4(p, ps, hs, two, mv, xs, n);
}
size_t cnn_wino4_scratch(int th, int tw)
{
    /* images of 2 x 2 tiles go two at a time, each in its own plane */
    return (th == 2 && tw == 2 ? 2 : 1) * plane_floats(4, 3, th, tw);
}

INLINE void input_tiles(int m, int r, const float *x, int C, int H, int W, int pad, int th, int tw,
                        float *V, size_t ld, size_t xs, float *plane, int spill)
{
    const int ph = m * th + r - 1, pw = m * tw + r - 1, ps = plane_stride(m, r, tw);
    const int tpi = th * tw;
    memset(plane, 0, sizeof(float) * (size_t)ph * ps);
    for (int c = 0; c < C; c++) {
        plane_put(x + (size_t)c * H * W, H, W, pad, plane, ph, pw, ps);
        /* the next channel, a share at each tile row */
        const float *next = c + 1 < C ? x + (size_t)(c + 1) * H * W : NULL;
        const size_t share = ((size_t)H * W + th - 1) / th;
        float *vc = V + (size_t)c * ld;
        for (int ti = 0, two; ti < th; ti += 1 + two) {
            two = pair_rows(r, ti, th, tw);
            if (next && ti * share < (size_t)H * W)
                prefetch_floats(next + ti * share, (size_t)H * W - ti * share, (1 + two) * share);
            for (int tj0 = 0; tj0 < tw; tj0 += VW) {
                const int t = ti * tw + tj0, n = lanes_to_store(t, tpi, spill);
                const float *d = plane + (size_t)(m * ti) * ps + m * tj0;
                if (two)
                    input_vec(m, r, 1, d, ps, vc + t, xs, n);
                else
                    input_vec(m, r, 0, d, ps, vc + t, xs, n);
            }
        }
        /* the plane's padding stays zero: only the interior is rewritten */
    }
}

INLINE void input_grad_tiles(int m, int r, const float *dV, size_t ld, size_t xs, int C, int H,
                             int W, int pad, int th, int tw, float *dx, float *plane, int add)
{
    const int ph = m * th + r - 1, pw = m * tw + r - 1, ps = plane_stride(m, r, tw);
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    /* tile tj's last two columns are the next tile's first two (F(2x2,
     * 5x5): its last four are the next two tiles'), so each vector
     * carries its last lanes' shares into the next one, and a row whose
     * last tile is in lane 7 (or 6 or 7) needs one more, of no tiles, to
     * take them */
    const int tend = r == 5 ? tw + 2 : tw + (tw % VW == 0);
    memset(plane, 0, sizeof(float) * (size_t)ph * ps); /* then plane_take clears */
    for (int c = 0; c < C; c++) {
        const float *vc = dV + (size_t)c * ld;
        prefetch_added(add, dx, c, H, W);
        for (int ti = 0; ti < th; ti++) {
            if (pair_rows(r, ti, th, tw)) {
                float *d = plane + (size_t)(m * ti) * ps;
                if (m == 2)
                    input_grad8_f2_pair(vc + ti * tw, xs, d, ps);
                else
                    input_grad8_f4_pair(vc + ti * tw, xs, d, ps);
                ti++;
                continue;
            }
            v8 carry[6][2] = {{{0}}}; /* by tile row: the last two columns before */
            v8 carry4[6][4] = {{{0}}}; /* F(2x2, 5x5): the last four */
            for (int tj0 = 0; tj0 < tend; tj0 += VW) {
                const int t = ti * tw + tj0;
                const v8i keep = lane < tw - tj0;
                float *d = plane + (size_t)(m * ti) * ps + m * tj0;
                if (r == 5)
                    input_grad8_f25(tj0 < tw ? vc + t : NULL, xs, keep, carry4, d, ps);
                else if (m == 2)
                    input_grad8_f2(vc + t, xs, keep, carry, d, ps);
                else
                    input_grad8_f4(vc + t, xs, keep, carry, d, ps);
            }
        }
        plane_take(plane, ph, pw, ps, pad, dx + (size_t)c * H * W, H, W, add);
    }
}

/* The plane's first OH x OW (rows ps floats apart) to yk, clamped at 0
 * with relu */
INLINE void plane_out(const float *plane, int ps, float *yk, int OH, int OW, int relu)
{
    for (int h = 0; h < OH; h++)
        if (relu)
            relu_floats(yk + (size_t)h * OW, plane + (size_t)h * ps, OW);
        else
            copy_floats(yk + (size_t)h * OW, plane + (size_t)h * ps, OW);
}

/* The output tiles go to the plane, lanes past a tile row landing in its
 * slack, and the plane's first OH x OW to y. */
INLINE void output_tiles(int m, int r, const float *M, size_t ld, size_t xs, int K, int OH, int OW,
                         int th, int tw, const float *bias, float *y, float *plane, int relu)
{
    const int ps = plane_stride(m, r, tw);
    for (int k = 0; k < K; k++) {
        const float *mk = M + (size_t)k * ld;
        const float b = bias[k];
        for (int ti = 0, two; ti < th; ti += 1 + two) {
            two = pair_rows(r, ti, th, tw);
            for (int tj0 = 0; tj0 < tw; tj0 += VW) {
                const float *mt = mk + (size_t)ti * tw + tj0;
                float *yo = plane + (size_t)(m * ti) * ps + m * tj0;
                if (two)
                    output_vec(m, r, 1, mt, xs, b, yo, ps);
                else
                    output_vec(m, r, 0, mt, xs, b, yo, ps);
            }
        }
        plane_out(plane, ps, y + (size_t)k * OH * OW, OH, OW, relu);
    }
}

/* The sum of a channel's output gradient in the plane (rows ps floats
 * apart; OH rows of OW, zero from OW to the next multiple of 8): the
 * conv's bias gradient for one image, summed where the rows are in the
 * cache anyway. Rows in turn, 8 lanes, then the lanes in order. */
INLINE float plane_sum(const float *plane, int ps, int OH, int OW)
{
    v8 acc = {0};
    for (int h = 0; h < OH; h++)
        for (int j = 0; j < OW; j += VW) acc += load8(plane + (size_t)h * ps + j);
    float s = acc[0];
    for (int l = 1; l < VW; l++) s += acc[l];
    return s;
}

/* Output channel k's gradient dyk (OH, OW; 0 where yk, unless NULL, is)
 * into the plane, whose cropped border stays zero, and its sum to db[k]
 * (db NULL: none) */
INLINE void grad_in_plane(float *plane, int ps, const float *dyk, const float *yk, int OH,
                          int OW, float *db, int k)
{
    for (int h = 0; h < OH; h++)
        if (yk)
            relu_grad_floats(plane + (size_t)h * ps, dyk + (size_t)h * OW, yk + (size_t)h * OW,
                             OW);
        else
            copy_floats(plane + (size_t)h * ps, dyk + (size_t)h * OW, OW);
    if (db) db[k] = plane_sum(plane, ps, OH, OW);
}

INLINE void output_grad_tiles(int m, int r, const float *dy, const float *y, int K, int OH, int OW,
                              int th, int tw, float *dM, size_t ld, size_t xs, float *plane,
                              int spill, float *db)
{
    const int ps = plane_stride(m, r, tw), tpi = th * tw;
    memset(plane, 0, sizeof(float) * (size_t)(m * th) * ps);
    for (int k = 0; k < K; k++) {
        const float *dyk = dy + (size_t)k * OH * OW;
        grad_in_plane(plane, ps, dyk, y ? y + (size_t)k * OH * OW : NULL, OH, OW, db, k);
        const float *next = k + 1 < K ? dyk + (size_t)OH * OW : NULL;
        const size_t share = ((size_t)OH * OW + th - 1) / th;
        float *mk = dM + (size_t)k * ld;
        for (int ti = 0, two; ti < th; ti += 1 + two) {
            two = pair_rows(r, ti, th, tw);
            if (next && ti * share < (size_t)OH * OW)
                prefetch_floats(next + ti * share, (size_t)OH * OW - ti * share,
                                (1 + two) * share);
            for (int tj0 = 0; tj0 < tw; tj0 += VW) {
                const int t = ti * tw + tj0, n = lanes_to_store(t, tpi, spill);
                const float *p = plane + (size_t)(m * ti) * ps + m * tj0;
                if (two)
                    output_grad_vec(m, r, 1, p, ps, mk + t, xs, n);
                else
                    output_grad_vec(m, r, 0, p, ps, mk + t, xs, n);
            }
        }
    }
}

/* ---- F(4x4) on images of 2 x 2 tiles (outputs of 5 to 8 pixels a
 * side: ResNet's last stage at 7x7 or 8x8), two images at a time. A tile
 * row has 2 tiles, so a vector of one tile row (or of two, as
 * pair_rows) would leave 6 (or 4) of its 8 lanes idle. Here lanes 2g and
 * 2g + 1 hold tile row g % 2 of image g / 2: the 4 tiles of image a, then
 * the 4 of image b, which is where V and M keep them (tile t of image i
 * at column 4 i + t). Each image has its own plane (pa, pb), and lane
 * group g's rows start at rows 0 and 4 of each. */

/* Where lane group g's tile row starts: rows 0 and 4 of each plane */
INLINE void quad_rows(float *pa, float *pb, int ps, float *g[4])
{
    g[0] = pa;
    g[1] = pa + 4 * (size_t)ps;
    g[2] = pb;
    g[3] = pb + 4 * (size_t)ps;
}

/* Columns 0-5 of the 8 tiles, one row r of each: group g's two tiles
 * start at g[g] + r ps and 4 columns further (reads 12 floats a row) */
INLINE void quad_cols6(float *const g[4], size_t off, v8 c[6])
{
    v8 lo[4], hi[4];
    for (int k = 0; k < 4; k++) {
        /* x: the first tile's columns, y: the second's */
        const v8 x = load8(g[k] + off), y = load8(g[k] + off + 4);
        lo[k] = SHUFFLE8(x, y, IDX8_LO); /* columns 0-3 of both, interleaved */
        hi[k] = SHUFFLE8(x, y, IDX8_HI); /* columns 4-5 (and 6-7, unused) */
    }
    v8 q01[2], q23[2], q45[2]; /* lanes 4h..4h+3 of columns 0 and 1, ... */
    for (int h = 0; h < 2; h++) {
        q01[h] = SHUFFLE8(lo[2 * h], lo[2 * h + 1], 0, 1, 8, 9, 2, 3, 10, 11);
        q23[h] = SHUFFLE8(lo[2 * h], lo[2 * h + 1], 4, 5, 12, 13, 6, 7, 14, 15);
        q45[h] = SHUFFLE8(hi[2 * h], hi[2 * h + 1], 0, 1, 8, 9, 2, 3, 10, 11);
    }
    c[0] = SHUFFLE8(q01[0], q01[1], 0, 1, 2, 3, 8, 9, 10, 11);
    c[1] = SHUFFLE8(q01[0], q01[1], 4, 5, 6, 7, 12, 13, 14, 15);
    c[2] = SHUFFLE8(q23[0], q23[1], 0, 1, 2, 3, 8, 9, 10, 11);
    c[3] = SHUFFLE8(q23[0], q23[1], 4, 5, 6, 7, 12, 13, 14, 15);
    c[4] = SHUFFLE8(q45[0], q45[1], 0, 1, 2, 3, 8, 9, 10, 11);
    c[5] = SHUFFLE8(q45[0], q45[1], 4, 5, 6, 7, 12, 13, 14, 15);
}

/* t[l] = lane l of t[0..7]: an 8 x 8 transpose, the off-diagonal blocks
 * of 4, 2 and 1 lanes swapped in turn */
#define SWAP8(t, h, ...)                                                  \
    for (int i = 0; i < 8; i++)                                           \
        if (!(i & (h))) {                                                 \
            const v8 x = t[i], y = t[i + (h)];                            \
            t[i] = SHUFFLE8(x, y, __VA_ARGS__);                           \
            t[i + (h)] = SHUFFLE8(x, y, QUAD_HI_##h);                     \
        }
#define QUAD_HI_4 4, 5, 6, 7, 12, 13, 14, 15
#define QUAD_HI_2 2, 3, 10, 11, 6, 7, 14, 15
#define QUAD_HI_1 1, 9, 3, 11, 5, 13, 7, 15
INLINE void transpose8(v8 t[8])
{
    SWAP8(t, 4, 0, 1, 2, 3, 8, 9, 10, 11)
    SWAP8(t, 2, 0, 1, 8, 9, 4, 5, 12, 13)
    SWAP8(t, 1, 0, 8, 2, 10, 4, 12, 6, 14)
}
#undef SWAP8
#undef QUAD_HI_4
#undef QUAD_HI_2
#undef QUAD_HI_1

/* Planes a and b of the two images, ph rows of ps floats each, in the
 * scratch one after the other */
static int quad_stride(void) { return plane_stride(4, 3, 2); }
static size_t quad_plane(void) { return plane_floats(4, 3, 2, 2); }

/* V of two images xa and xb (xb NULL: lanes 4-7 are not stored) */
INLINE void input_quad(const float *xa, const float *xb, int C, int H, int W, int pad,
                       float *V, size_t ld, size_t xs, float *plane)
{
    const int ps = quad_stride(), n = xb ? VW : VW / 2;
    float *pa = plane, *pb = plane + quad_plane();
    memset(plane, 0, sizeof(float) * 2 * quad_plane());
    float *g[4];
    quad_rows(pa, pb, ps, g);
    for (int c = 0; c < C; c++) {
        plane_put(xa + (size_t)c * H * W, H, W, pad, pa, 10, 10, ps);
        if (xb) plane_put(xb + (size_t)c * H * W, H, W, pad, pb, 10, 10, ps);
        v8 col[6][6];
        for (int r = 0; r < 6; r++) quad_cols6(g, (size_t)r * ps, col[r]);
        input_cols_f4(col, V + (size_t)c * ld, xs, n);
    }
}

/* The adjoint: dxa (and dxb, unless NULL) from dV */
INLINE void input_grad_quad(const float *dV, size_t ld, size_t xs, int C, int H, int W,
                            int pad, float *dxa, float *dxb, float *plane, int add)
{
    const int ps = quad_stride();
    float *pa = plane, *pb = plane + quad_plane();
    float *g[4];
    quad_rows(pa, pb, ps, g);
    memset(plane, 0, sizeof(float) * 2 * quad_plane()); /* then plane_take clears */
    for (int c = 0; c < C; c++) {
        const float *vc = dV + (size_t)c * ld;
        prefetch_added(add, dxa, c, H, W);
        prefetch_added(add, dxb, c, H, W);
        v8 dv[36], rows[6][6];
        for (int xi = 0; xi < 36; xi++) dv[xi] = load8(vc + (size_t)xi * xs);
        igrad_rows_f4(dv, rows);
        for (int r = 0; r < 6; r++) {
            /* lane l's 6 columns to t[l]: tile 2g's to group g's row at
             * column 0, tile 2g + 1's at column 4 */
            v8 t[8] = {rows[r][0], rows[r][1], rows[r][2], rows[r][3], rows[r][4], rows[r][5],
                       (v8){0}, (v8){0}};
            transpose8(t);
            for (int k = 0; k < (dxb ? 4 : 2); k++) {
                float *p = g[k] + (size_t)r * ps;
                *(v8 *)p = load8(p) + t[2 * k];
                *(v8 *)(p + 4) = load8(p + 4) + t[2 * k + 1];
            }
        }
        plane_take(pa, 10, 10, ps, pad, dxa + (size_t)c * H * W, H, W, add);
        if (dxb) plane_take(pb, 10, 10, ps, pad, dxb + (size_t)c * H * W, H, W, add);
    }
}

/* ya (and yb, unless NULL) = bias + A^T M A */
INLINE void output_quad(const float *M, size_t ld, size_t xs, int K, int OH, int OW,
                        const float *bias, float *ya, float *yb, float *plane, int relu)
{
    const int ps = quad_stride();
    float *pa = plane, *pb = plane + quad_plane();
    float *g[4];
    quad_rows(pa, pb, ps, g);
    for (int k = 0; k < K; k++) {
        v8 t[4][6];
        output_rows_f4(M + (size_t)k * ld, xs, t);
        for (int a = 0; a < 4; a++) {
            v8 out[4];
            output_row_f4(t, a, bias[k], out);
            for (int j = 0; j < (yb ? 4 : 2); j++) *(v8 *)(g[j] + (size_t)a * ps) = out[j];
        }
        for (int h = 0; h < OH; h++) {
            const size_t r = ((size_t)k * OH + h) * OW;
            if (relu) {
                relu_floats(ya + r, pa + (size_t)h * ps, OW);
                if (yb) relu_floats(yb + r, pb + (size_t)h * ps, OW);
            } else {
                copy_floats(ya + r, pa + (size_t)h * ps, OW);
                if (yb) copy_floats(yb + r, pb + (size_t)h * ps, OW);
            }
        }
    }
}

/* The adjoint without the bias: dM from dya (and dyb, unless NULL:
 * lanes 4-7 are not stored) */
INLINE void output_grad_quad(const float *dya, const float *dyb, const float *ya,
                             const float *yb, int K, int OH, int OW, float *dM, size_t ld,
                             size_t xs, float *plane, float *db)
{
    const int ps = quad_stride(), n = dyb ? VW : VW / 2;
    float *pa = plane, *pb = plane + quad_plane();
    memset(plane, 0, sizeof(float) * 2 * quad_plane()); /* the cropped border stays zero */
    float *g[4];
    quad_rows(pa, pb, ps, g);
    for (int k = 0; k < K; k++) {
        for (int h = 0; h < OH; h++) {
            const size_t r = ((size_t)k * OH + h) * OW;
            if (ya) {
                relu_grad_floats(pa + (size_t)h * ps, dya + r, ya + r, OW);
                if (dyb) relu_grad_floats(pb + (size_t)h * ps, dyb + r, yb + r, OW);
            } else {
                copy_floats(pa + (size_t)h * ps, dya + r, OW);
                if (dyb) copy_floats(pb + (size_t)h * ps, dyb + r, OW);
            }
        }
        if (db) {
            db[k] = plane_sum(pa, ps, OH, OW);
            if (dyb) db[K + k] = plane_sum(pb, ps, OH, OW);
        }
        v8 gc[4][6];
        for (int a = 0; a < 4; a++) quad_cols6(g, (size_t)a * ps, gc[a]);
        output_grad_cols_f4(gc, dM + (size_t)k * ld, xs, n);
    }
}

#ifdef HAVE_V16
/* ---- F(4x4)'s input transform in 16 lanes, for tile rows of 5 to 8
 * tiles (outputs of 17 to 32 pixels a side: cifar-3layer's conv2,
 * ResNet-20's first stage at 32x32 and 28x28). A vector takes two tile
 * rows: lanes 0 to tw-1 tile row ti, lanes tw to 2 tw - 1 tile row
 * ti + 1, which is where V keeps them (tile t of the image at column t);
 * lanes past 2 tw fall on later tiles, written after them, as
 * lanes_to_store says for 8. Each row of the pair comes from cols6 in 8
 * lanes, and the two are joined into one vector for B^T d B, whose
 * arithmetic per lane is that of the 8-lane code: the same bits (this
 * file builds as ISO C, which fuses no multiply-adds; the products that
 * follow match the 8-lane AVX2 + FMA clone's, which an AVX-512 CPU runs).
 * A last tile row without a partner takes the 8-lane code. */

static inline void store16(float *p, v16 v, int n)
{
    if (n == 16) {
        *(v16 *)p = v;
        return;
    }
    for (int l = 0; l < 16; l++)
        if (l < n) p[l] = v[l];
}
DEF_BT6(bt6_16, v16)
DEF_INPUT_COLS_F4(input_cols_f4_16, v16, bt6_16, store16)
DEF_B6(b6_16, v16)
DEF_IGRAD_ROWS_F4(igrad_rows_f4_16, v16, b6_16)
DEF_AT6(at6_16, v16)
DEF_OUTPUT_ROWS_F4(output_rows_f4_16, v16, at6_16)
DEF_A6(a6_16, v16)
DEF_OUTPUT_GRAD_COLS_F4(output_grad_cols_f4_16, v16, a6_16, store16)

/* Lanes of a pair's vector that may be stored, as lanes_to_store */
static inline int lanes_to_store16(int t, int tpi, int spill)
{
    return t + 16 <= tpi || (spill && tpi >= 16) ? 16 : tpi - t;
}

/* Lane l of a pair: lane l of the first row's 8, or lane l - tw of the
 * second row's (lanes 8-15 of the two side by side) */
static inline v16i pair_join(int tw)
{
    v16i join;
    for (int l = 0; l < 16; l++) join[l] = l < tw ? l : l < 2 * tw ? 8 + l - tw : 0;
    return join;
}

/* Columns 0-5 of a pair's tiles, one row of each tile row: cols6 of the
 * plane row at p and of the one 4 rows below, joined */
V16_ATTR INLINE void cols6_pair(const float *p, int ps, v16i join, v16 c[6])
{
    v8 a[6], b[6];
    cols6(p, 16, 0, a);
    cols6(p + (size_t)4 * ps, 16, 0, b);
    for (int q = 0; q < 6; q++)
        c[q] = __builtin_shuffle(__builtin_shufflevector(a[q], b[q], 0, 1, 2, 3, 4, 5, 6, 7, 8,
                                                         9, 10, 11, 12, 13, 14, 15),
                                 join);
}

/* One channel's pairs of tile rows, from the plane (rows ps floats
 * apart) to the matrices at m: V from 6x6 input tiles (rows 6), or dM
 * from 4x4 output gradients (rows 4). A last tile row without a partner
 * takes the 8-lane code. The next channel (hw floats at next, unless
 * NULL) is asked for a share at each pair. */
V16_ATTR INLINE void pairs_f4_16(int rows, const float *plane, int ps, int th, int tw,
                                 v16i join, float *m, size_t xs, int spill, const float *next,
                                 size_t hw)
{
    const int tpi = th * tw;
    const size_t share = (hw + th - 1) / th;
    for (int ti = 0; ti < th; ti += 2) {
        if (next && ti * share < hw) prefetch_floats(next + ti * share, hw - ti * share, 2 * share);
        const int t = ti * tw;
        const float *d = plane + (size_t)(4 * ti) * ps;
        if (ti + 1 == th) { /* the last tile row alone */
            if (rows == 6)
                input8_f4(d, ps, 16, 0, m + t, xs, lanes_to_store(t, tpi, spill));
            else
                output_grad8_f4(d, ps, 16, 0, m + t, xs, lanes_to_store(t, tpi, spill));
            continue;
        }
        v16 col[6][6];
        for (int r = 0; r < rows; r++) cols6_pair(d + (size_t)r * ps, ps, join, col[r]);
        if (rows == 6)
            input_cols_f4_16(col, m + t, xs, lanes_to_store16(t, tpi, spill));
        else
            output_grad_cols_f4_16(col, m + t, xs, lanes_to_store16(t, tpi, spill));
    }
}

V16_ATTR static void input_tiles_f4_16(const float *x, int C, int H, int W, int pad, int th,
                                       int tw, float *V, size_t ld, size_t xs, float *plane,
                                       int spill)
{
    const int ph = 4 * th + 2, pw = 4 * tw + 2, ps = plane_stride(4, 3, tw);
    const size_t hw = (size_t)H * W;
    const v16i join = pair_join(tw);
    memset(plane, 0, sizeof(float) * (size_t)ph * ps);
    for (int c = 0; c < C; c++) {
        plane_put(x + (size_t)c * hw, H, W, pad, plane, ph, pw, ps);
        pairs_f4_16(6, plane, ps, th, tw, join, V + (size_t)c * ld, xs, spill,
                    c + 1 < C ? x + (size_t)(c + 1) * hw : NULL, hw);
    }
}

/* Its adjoint, the input gradient, on the same pairs of tile rows: B dV
 * B^T of both rows in 16 lanes, then each row's 8 lanes added into the
 * plane as input_grad8_f4 adds them, row ti's before row ti + 1's. Lanes
 * past a row take B 0 B^T, as the 8-lane code's masked lanes do, so that
 * every sum is the same, to the sign of a zero. */
V16_ATTR static void input_grad_tiles_f4_16(const float *dV, size_t ld, size_t xs, int C, int H,
                                            int W, int pad, int th, int tw, float *dx,
                                            float *plane, int add)
{
    const int ph = 4 * th + 2, pw = 4 * tw + 2, ps = plane_stride(4, 3, tw);
    v16i keep, half[2];
    for (int l = 0; l < 16; l++) {
        keep[l] = l < 2 * tw ? -1 : 0;
        half[0][l] = l < tw ? l : 16 + l; /* lanes of B 0 B^T past the row */
        half[1][l] = l < tw ? tw + l : 16 + l;
    }
    v16 zero[36] = {{0}}, zr[6][6];
    igrad_rows_f4_16(zero, zr);
    v8 zr8[6][6];
    for (int r = 0; r < 6; r++)
        for (int q = 0; q < 6; q++)
            zr8[r][q] = __builtin_shufflevector(zr[r][q], zr[r][q], 0, 1, 2, 3, 4, 5, 6, 7);
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    memset(plane, 0, sizeof(float) * (size_t)ph * ps); /* then plane_take clears */
    for (int c = 0; c < C; c++) {
        const float *vc = dV + (size_t)c * ld;
        prefetch_added(add, dx, c, H, W);
        for (int ti = 0; ti < th; ti += 2) {
            const int t = ti * tw;
            if (ti + 1 == th) { /* the last tile row alone, as input_grad_tiles */
                v8 carry[6][2] = {{{0}}};
                float *d = plane + (size_t)(4 * ti) * ps;
                input_grad8_f4(vc + t, xs, lane < tw, carry, d, ps);
                if (tw == 8) input_grad8_f4_add(zr8, carry, d + 32, ps);
                continue;
            }
            v16 dv[36], rows[6][6];
            for (int xi = 0; xi < 36; xi++)
                dv[xi] = (v16)((v16i) * (const v16 *)(vc + t + (size_t)xi * xs) & keep);
            igrad_rows_f4_16(dv, rows);
            for (int h = 0; h < 2; h++) {
                v8 rows8[6][6], carry[6][2] = {{{0}}};
                for (int r = 0; r < 6; r++)
                    for (int q = 0; q < 6; q++) {
                        const v16 x = __builtin_shuffle(rows[r][q], zr[r][q], half[h]);
                        rows8[r][q] = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
                    }
                float *d = plane + (size_t)(4 * (ti + h)) * ps;
                input_grad8_f4_add(rows8, carry, d, ps);
                if (tw == 8) input_grad8_f4_add(zr8, carry, d + 32, ps);
            }
        }
        plane_take(plane, ph, pw, ps, pad, dx + (size_t)c * H * W, H, W, add);
    }
}

/* One output row of a tile row's tiles (out: output_row_f4's), when
 * the tiles cover the output exactly: its n = 4 tw columns, n a multiple
 * of 4 up to 32, straight to y, clamped at 0 with relu as plane_out
 * clamps */
typedef float v4 __attribute__((vector_size(16), aligned(4)));
INLINE void row_out(float *row, const v8 *out, int n, int relu)
{
    for (int j = 0; 8 * j < n; j++) {
        const v8 o = relu ? relu8(out[j]) : out[j];
        if (8 * j + 8 <= n)
            *(v8 *)(row + 8 * j) = o;
        else /* 8 j + 4 = n */
            *(v4 *)(row + 8 * j) = __builtin_shufflevector(o, o, 0, 1, 2, 3);
    }
}

/* The output transform on the same pairs of tile rows: A^T M A of both
 * rows in 16 lanes (M of tile t of the image at column t, as V), then
 * each row's 8 lanes (the first row's lanes 0-7, the second's tw to
 * tw + 7) joined as output8_f4 joins them. Where the tiles cover the
 * output exactly (OH = 4 th, OW = 4 tw: 28x28, 32x32), the rows go
 * straight to y; otherwise to the plane, lanes past a row landing in its
 * slack, as there. */
V16_ATTR static void output_tiles_f4_16(const float *M, size_t ld, size_t xs, int K, int OH,
                                        int OW, int th, int tw, const float *bias, float *y,
                                        float *plane, int relu)
{
    const int ps = plane_stride(4, 3, tw), direct = OH == 4 * th && OW == 4 * tw;
    v16i second; /* the second row's lanes first */
    for (int l = 0; l < 16; l++) second[l] = (tw + l) % 16;
    for (int k = 0; k < K; k++) {
        const float *mk = M + (size_t)k * ld;
        const float b = bias[k];
        float *yk = y + (size_t)k * OH * OW;
        for (int ti = 0; ti < th; ti += 2) {
            const float *mt = mk + (size_t)ti * tw;
            float *yo = plane + (size_t)(4 * ti) * ps;
            if (ti + 1 == th && direct) { /* the last tile row alone */
                v8 t[4][6];
                output_rows_f4(mt, xs, t);
                for (int a = 0; a < 4; a++) {
                    v8 out[4];
                    output_row_f4(t, a, b, out);
                    row_out(yk + (size_t)(4 * ti + a) * OW, out, OW, relu);
                }
                continue;
            }
            if (ti + 1 == th) {
                output8_f4(mt, xs, b, yo, ps, 16);
                continue;
            }
            v16 t[4][6]; /* A^T M */
            output_rows_f4_16(mt, xs, t);
            for (int a = 0; a < 4; a++) { /* (A^T M) A, and the bias */
                v16 o[4];
                at6_16(t[a], 1, o, 1);
                for (int j = 0; j < 4; j++) o[j] = o[j] + b;
                for (int h = 0; h < 2; h++) {
                    v8 o8[4], out[4];
                    for (int j = 0; j < 4; j++) {
                        const v16 x = h ? __builtin_shuffle(o[j], second) : o[j];
                        o8[j] = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
                    }
                    join4(o8, out);
                    if (direct) {
                        row_out(yk + (size_t)(4 * (ti + h) + a) * OW, out, OW, relu);
                        continue;
                    }
                    float *row = yo + (size_t)(4 * h + a) * ps;
                    for (int j = 0; j < 4; j++) *(v8 *)(row + j * VW) = out[j];
                }
            }
        }
        if (!direct) plane_out(plane, ps, yk, OH, OW, relu);
    }
}

/* Its adjoint, dM from dy, on the same pairs: each row's columns
 * gathered by cols6 and joined, as the input transform's, then A dY A^T
 * in 16 lanes */
V16_ATTR static void output_grad_tiles_f4_16(const float *dy, const float *y, int K, int OH,
                                             int OW, int th, int tw, float *dM, size_t ld,
                                             size_t xs, float *plane, int spill, float *db)
{
    const int ps = plane_stride(4, 3, tw);
    const size_t ohw = (size_t)OH * OW;
    const v16i join = pair_join(tw);
    memset(plane, 0, sizeof(float) * (size_t)(4 * th) * ps);
    for (int k = 0; k < K; k++) {
        const float *dyk = dy + (size_t)k * ohw;
        grad_in_plane(plane, ps, dyk, y ? y + (size_t)k * ohw : NULL, OH, OW, db, k);
        pairs_f4_16(4, plane, ps, th, tw, join, dM + (size_t)k * ld, xs, spill,
                    k + 1 < K ? dyk + ohw : NULL, ohw);
    }
}

/* ---- F(4x4) on images of 4 x 4 tiles (outputs of 13 to 16 pixels a
 * side: ResNet-20's second stage at 14x14 and 16x16) in 16 lanes: one
 * vector holds a channel's 16 tiles, lanes 0-7 tile rows 0 and 1 and
 * lanes 8-15 rows 2 and 3, each 8 as the 8-lane code's pairs
 * (pair_rows) hold them. The same arithmetic per lane, the same sums
 * into the plane in the same order: the same bits. */

/* Columns 0-5 of the 16 tiles, one row r of each: cols6 of the two
 * pairs (the plane rows at p and 4, 8 and 12 rows below) side by side */
V16_ATTR INLINE void cols6_quad(const float *p, int ps, v16 c[6])
{
    v8 a[6], b[6];
    cols6(p, 4 * ps, 1, a);
    cols6(p + (size_t)8 * ps, 4 * ps, 1, b);
    for (int q = 0; q < 6; q++)
        c[q] = __builtin_shufflevector(a[q], b[q], 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                       14, 15);
}

/* Lanes 8h to 8h + 7 of x */
V16_ATTR INLINE v8 half16(v16 x, int h)
{
    return h ? __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15)
             : __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
}

V16_ATTR static void input_tiles_f4_4x4_16(const float *x, int C, int H, int W, int pad,
                                           float *V, size_t ld, size_t xs, float *plane)
{
    const int ps = plane_stride(4, 3, 4);
    const size_t hw = (size_t)H * W;
    memset(plane, 0, sizeof(float) * 18 * ps);
    for (int c = 0; c < C; c++) {
        plane_put(x + (size_t)c * hw, H, W, pad, plane, 18, 18, ps);
        if (c + 1 < C) prefetch_floats(x + (size_t)(c + 1) * hw, hw, hw);
        v16 col[6][6];
        for (int r = 0; r < 6; r++) cols6_quad(plane + (size_t)r * ps, ps, col[r]);
        input_cols_f4_16(col, V + (size_t)c * ld, xs, 16);
    }
}

/* Its adjoint: B dV B^T of the 16 tiles, then each pair of tile rows
 * added into the plane as input_grad8_f4_pair adds it */
V16_ATTR static void input_grad_tiles_f4_4x4_16(const float *dV, size_t ld, size_t xs, int C,
                                                int H, int W, int pad, float *dx, float *plane,
                                                int add)
{
    const int ps = plane_stride(4, 3, 4);
    v8 zero[36] = {{0}}, zr[6][6];
    igrad_rows_f4(zero, zr);
    memset(plane, 0, sizeof(float) * 18 * ps); /* then plane_take clears */
    for (int c = 0; c < C; c++) {
        const float *vc = dV + (size_t)c * ld;
        prefetch_added(add, dx, c, H, W);
        v16 dv[36], rows[6][6];
        for (int xi = 0; xi < 36; xi++) dv[xi] = *(const v16 *)(vc + (size_t)xi * xs);
        igrad_rows_f4_16(dv, rows);
        for (int h = 0; h < 2; h++) {
            v8 rows8[6][6];
            for (int r = 0; r < 6; r++)
                for (int q = 0; q < 6; q++) rows8[r][q] = half16(rows[r][q], h);
            input_grad8_f4_pair_add(rows8, zr, plane + (size_t)(8 * h) * ps, ps);
        }
        plane_take(plane, 18, 18, ps, pad, dx + (size_t)c * H * W, H, W, add);
    }
}

/* The output transform: A^T M A of the 16 tiles, each pair of tile rows
 * joined as output8_f4 joins it; a 16x16 output straight to y, a smaller
 * one through the plane */
V16_ATTR static void output_tiles_f4_4x4_16(const float *M, size_t ld, size_t xs, int K,
                                            int OH, int OW, const float *bias, float *y,
                                            float *plane, int relu)
{
    const int ps = plane_stride(4, 3, 4), direct = OH == 16 && OW == 16;
    for (int k = 0; k < K; k++) {
        float *yk = y + (size_t)k * OH * OW;
        v16 t[4][6]; /* A^T M */
        output_rows_f4_16(M + (size_t)k * ld, xs, t);
        for (int a = 0; a < 4; a++) { /* (A^T M) A, and the bias */
            v16 o[4];
            at6_16(t[a], 1, o, 1);
            for (int j = 0; j < 4; j++) o[j] = o[j] + bias[k];
            for (int h = 0; h < 2; h++) {
                v8 o8[4], out[4];
                for (int j = 0; j < 4; j++) o8[j] = half16(o[j], h);
                join4(o8, out);
                if (direct) { /* tile rows 2h and 2h + 1's row a */
                    row_out(yk + (size_t)(8 * h + a) * 16, out, 16, relu);
                    row_out(yk + (size_t)(8 * h + 4 + a) * 16, out + 2, 16, relu);
                    continue;
                }
                float *row = plane + (size_t)(8 * h + a) * ps;
                *(v8 *)row = out[0];
                *(v8 *)(row + VW) = out[1];
                *(v8 *)(row + 4 * ps) = out[2];
                *(v8 *)(row + 4 * ps + VW) = out[3];
            }
        }
        if (!direct) plane_out(plane, ps, yk, OH, OW, relu);
    }
}

/* Its adjoint, dM from dy */
V16_ATTR static void output_grad_tiles_f4_4x4_16(const float *dy, const float *y, int K, int OH,
                                                 int OW, float *dM, size_t ld, size_t xs,
                                                 float *plane, float *db)
{
    const int ps = plane_stride(4, 3, 4);
    const size_t ohw = (size_t)OH * OW;
    memset(plane, 0, sizeof(float) * 16 * ps);
    for (int k = 0; k < K; k++) {
        const float *dyk = dy + (size_t)k * ohw;
        grad_in_plane(plane, ps, dyk, y ? y + (size_t)k * ohw : NULL, OH, OW, db, k);
        if (k + 1 < K) prefetch_floats(dyk + ohw, ohw, ohw);
        v16 g[4][6];
        for (int a = 0; a < 4; a++) cols6_quad(plane + (size_t)a * ps, ps, g[a]);
        output_grad_cols_f4_16(g, dM + (size_t)k * ld, xs, 16);
    }
}
#endif

/* Input tiles of one image. x is (C, H, W); writes V[xi][c][t] for the
 * th * tw tiles of every channel, at V + xi * C * ld + c * ld + t (the
 * caller offsets V to this image's first tile), the 16 (36) matrices xs
 * floats apart. pad is the conv's zero padding; plane is
 * cnn_wino_scratch() (cnn_wino4_scratch()) floats. */
CLONES
void cnn_wino_input(const float *x, int C, int H, int W, int pad, int th, int tw, float *V,
                    size_t ld, size_t xs, float *plane, int spill)
{
    input_tiles(2, 3, x, C, H, W, pad, th, tw, V, ld, xs, plane, spill);
}

/* The 16-lane F(4x4) image transforms an image of th x tw tiles takes:
 * none (the 8-lane code), two tile rows of 5-8 tiles a vector, or a
 * channel's 4 x 4 tiles a vector */
#ifdef HAVE_V16
enum { WIDE_NONE, WIDE_PAIRS, WIDE_4X4 };
static int f4_wide(int th, int tw)
{
    if (!cnn_kernels_wide()) return WIDE_NONE;
    if (th == 4 && tw == 4) return WIDE_4X4;
    if (tw >= 5 && tw <= 8 && th >= 2) return WIDE_PAIRS;
    return WIDE_NONE;
}
#endif

static void wino4_input(const float *x, int C, int H, int W, int pad, int th, int tw, float *V,
                        size_t ld, size_t xs, float *plane, int spill);

void cnn_wino4_input(const float *x, int C, int H, int W, int pad, int th, int tw, float *V,
                     size_t ld, size_t xs, float *plane, int spill)
{
#ifdef HAVE_V16
    if (f4_wide(th, tw) == WIDE_4X4) {
        input_tiles_f4_4x4_16(x, C, H, W, pad, V, ld, xs, plane);
        return;
    }
    if (f4_wide(th, tw) == WIDE_PAIRS) {
        input_tiles_f4_16(x, C, H, W, pad, th, tw, V, ld, xs, plane, spill);
        return;
    }
#endif
    wino4_input(x, C, H, W, pad, th, tw, V, ld, xs, plane, spill);
}

CLONES
static void wino4_input(const float *x, int C, int H, int W, int pad, int th, int tw, float *V,
                        size_t ld, size_t xs, float *plane, int spill)
{
    input_tiles(4, 3, x, C, H, W, pad, th, tw, V, ld, xs, plane, spill);
}

/* The adjoint of cnn_wino_input: dx (C, H, W) = the input gradient from
 * dV laid out as cnn_wino_input writes V. dx is overwritten. Reads up to
 * 8 floats past the last tile of each of dV's rows; lanes past a tile
 * row count as zero. */
CLONES
void cnn_wino_input_grad(const float *dV, size_t ld, size_t xs, int C, int H, int W, int pad,
                         int th, int tw, float *dx, float *plane, int add)
{
    input_grad_tiles(2, 3, dV, ld, xs, C, H, W, pad, th, tw, dx, plane, add);
}

static void wino4_input_grad(const float *dV, size_t ld, size_t xs, int C, int H, int W,
                             int pad, int th, int tw, float *dx, float *plane, int add);

void cnn_wino4_input_grad(const float *dV, size_t ld, size_t xs, int C, int H, int W, int pad,
                          int th, int tw, float *dx, float *plane, int add)
{
#ifdef HAVE_V16
    if (f4_wide(th, tw) == WIDE_4X4) {
        input_grad_tiles_f4_4x4_16(dV, ld, xs, C, H, W, pad, dx, plane, add);
        return;
    }
    if (f4_wide(th, tw) == WIDE_PAIRS) {
        input_grad_tiles_f4_16(dV, ld, xs, C, H, W, pad, th, tw, dx, plane, add);
        return;
    }
#endif
    wino4_input_grad(dV, ld, xs, C, H, W, pad, th, tw, dx, plane, add);
}

CLONES
static void wino4_input_grad(const float *dV, size_t ld, size_t xs, int C, int H, int W,
                             int pad, int th, int tw, float *dx, float *plane, int add)
{
    input_grad_tiles(4, 3, dV, ld, xs, C, H, W, pad, th, tw, dx, plane, add);
}

/* Output tiles of one image: y (K, OH, OW) = bias + A^T M A, M laid out
 * as 16 (36) matrices (K, ld) xs floats apart (the caller offsets M to
 * this image's first tile). Reads up to 8 floats past the last tile of
 * each of M's rows. */
CLONES
void cnn_wino_output(const float *M, size_t ld, size_t xs, int K, int OH, int OW, int th,
                     int tw, const float *bias, float *y, float *plane, int relu)
{
    output_tiles(2, 3, M, ld, xs, K, OH, OW, th, tw, bias, y, plane, relu);
}

static void wino4_output(const float *M, size_t ld, size_t xs, int K, int OH, int OW, int th,
                         int tw, const float *bias, float *y, float *plane, int relu);

void cnn_wino4_output(const float *M, size_t ld, size_t xs, int K, int OH, int OW, int th,
                      int tw, const float *bias, float *y, float *plane, int relu)
{
#ifdef HAVE_V16
    if (f4_wide(th, tw) == WIDE_4X4) {
        output_tiles_f4_4x4_16(M, ld, xs, K, OH, OW, bias, y, plane, relu);
        return;
    }
    if (f4_wide(th, tw) == WIDE_PAIRS) {
        output_tiles_f4_16(M, ld, xs, K, OH, OW, th, tw, bias, y, plane, relu);
        return;
    }
#endif
    wino4_output(M, ld, xs, K, OH, OW, th, tw, bias, y, plane, relu);
}

CLONES
static void wino4_output(const float *M, size_t ld, size_t xs, int K, int OH, int OW, int th,
                         int tw, const float *bias, float *y, float *plane, int relu)
{
    output_tiles(4, 3, M, ld, xs, K, OH, OW, th, tw, bias, y, plane, relu);
}

/* The adjoint of cnn_wino_output (without the bias): dM laid out as 16
 * (36) matrices (K, ld) xs floats apart, from dy (K, OH, OW). */
CLONES
void cnn_wino_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                          int tw, float *dM, size_t ld, size_t xs, float *plane, int spill,
                          float *db)
{
    output_grad_tiles(2, 3, dy, y, K, OH, OW, th, tw, dM, ld, xs, plane, spill, db);
}

static void wino4_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                              int tw, float *dM, size_t ld, size_t xs, float *plane, int spill,
                              float *db);

void cnn_wino4_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                           int tw, float *dM, size_t ld, size_t xs, float *plane, int spill,
                           float *db)
{
#ifdef HAVE_V16
    if (f4_wide(th, tw) == WIDE_4X4) {
        output_grad_tiles_f4_4x4_16(dy, y, K, OH, OW, dM, ld, xs, plane, db);
        return;
    }
    if (f4_wide(th, tw) == WIDE_PAIRS) {
        output_grad_tiles_f4_16(dy, y, K, OH, OW, th, tw, dM, ld, xs, plane, spill, db);
        return;
    }
#endif
    wino4_output_grad(dy, y, K, OH, OW, th, tw, dM, ld, xs, plane, spill, db);
}

CLONES
static void wino4_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                              int tw, float *dM, size_t ld, size_t xs, float *plane, int spill,
                              float *db)
{
    output_grad_tiles(4, 3, dy, y, K, OH, OW, th, tw, dM, ld, xs, plane, spill, db);
}

/* The same for F(2x2, 5x5) */
CLONES
void cnn_wino25_input(const float *x, int C, int H, int W, int pad, int th, int tw, float *V,
                      size_t ld, size_t xs, float *plane, int spill)
{
    input_tiles(2, 5, x, C, H, W, pad, th, tw, V, ld, xs, plane, spill);
}

CLONES
void cnn_wino25_input_grad(const float *dV, size_t ld, size_t xs, int C, int H, int W, int pad,
                           int th, int tw, float *dx, float *plane, int add)
{
    input_grad_tiles(2, 5, dV, ld, xs, C, H, W, pad, th, tw, dx, plane, add);
}

CLONES
void cnn_wino25_output(const float *M, size_t ld, size_t xs, int K, int OH, int OW, int th,
                       int tw, const float *bias, float *y, float *plane, int relu)
{
    output_tiles(2, 5, M, ld, xs, K, OH, OW, th, tw, bias, y, plane, relu);
}

CLONES
void cnn_wino25_output_grad(const float *dy, const float *y, int K, int OH, int OW, int th,
                            int tw, float *dM, size_t ld, size_t xs, float *plane, int spill,
                            float *db)
{
    output_grad_tiles(2, 5, dy, y, K, OH, OW, th, tw, dM, ld, xs, plane, spill, db);
}

/* F(4x4) on images of 2 x 2 tiles, two at a time (b NULL: one image,
 * its 4 tiles only): the same maps as the four above, with
 * cnn_wino4_scratch(2, 2) floats of scratch. */
CLONES
void cnn_wino4_input2(const float *xa, const float *xb, int C, int H, int W, int pad,
                      float *V, size_t ld, size_t xs, float *plane)
{
    input_quad(xa, xb, C, H, W, pad, V, ld, xs, plane);
}

CLONES
void cnn_wino4_input_grad2(const float *dV, size_t ld, size_t xs, int C, int H, int W, int pad,
                           float *dxa, float *dxb, float *plane, int add)
{
    input_grad_quad(dV, ld, xs, C, H, W, pad, dxa, dxb, plane, add);
}

CLONES
void cnn_wino4_output2(const float *M, size_t ld, size_t xs, int K, int OH, int OW,
                       const float *bias, float *ya, float *yb, float *plane, int relu)
{
    output_quad(M, ld, xs, K, OH, OW, bias, ya, yb, plane, relu);
}

CLONES
void cnn_wino4_output_grad2(const float *dya, const float *dyb, const float *ya,
                            const float *yb, int K, int OH, int OW, float *dM, size_t ld,
                            size_t xs, float *plane, float *db)
{
    output_grad_quad(dya, dyb, ya, yb, K, OH, OW, dM, ld, xs, plane, db);
}
