/* maxpool.c - the 2x2 stride-2 max pool, the window nearly every CNN
 * uses, on one (H, W) plane at a time, 8 (or 4) outputs per vector.
 *
 * The forward pass loads 2N inputs of each of the window's two rows,
 * splits them into the even and odd columns and keeps the running
 * maximum with its input index, as the general loop in layers/pool.c
 * does: strict '>' keeps the first maximum, a NaN wins.
 *
 * The windows tile the plane, so the backward pass writes every element
 * of dx once (dy at the arg-max, 0 elsewhere, 0 in the odd last row and
 * column no window covers) instead of zeroing dx and scattering into it.
 *
 * In ceil mode an odd last column and row are windows too, 1 wide or 1
 * high (and 1x1 in the corner), run one at a time after the whole ones:
 * the same first maximum over the inputs they hold.
 *
 * Given the forward pass's y, the backward pass is that of a ReLU and the
 * max pool after it: the gradient passes only where y > 0 (the ReLU's
 * input at the arg-max is y).
 *
 * A row of outputs that is not a whole number of vectors ends with a
 * vector that overlaps the one before: it writes the same values again.
 * Rows of fewer than 4 outputs run one window at a time.
 *
 * Built for two instruction sets, as simd.h says. */
#include "kernels/simd.h"
#include "mpicnn/kernels.h"

/* The N outputs from i0 (the top-left input index of the first window)
 * of a row, for N = 8 and 4: the body is the same, the types and the
 * shuffles differ (simd.h). LANE2 holds 0, 2, 4, ...: window l starts at
 * input i0 + 2l. */
#define DEFINE_ROW(N, VF, VI, SHUF, EVEN, ODD, LO, HI, LANE2)                               \
    INLINE void fwd_##N(const float *x, int W, int i0, float *y, int32_t *arg)              \
    {                                                                                       \
        const float *r0 = x + i0, *r1 = r0 + W;                                             \
        const VF a0 = *(const VF *)r0, b0 = *(const VF *)(r0 + N);                          \
        const VF a1 = *(const VF *)r1, b1 = *(const VF *)(r1 + N);                          \
        const VF cand[3] = {SHUF(a0, b0, ODD), SHUF(a1, b1, EVEN), SHUF(a1, b1, ODD)};      \
        const int32_t off[3] = {1, W, W + 1};                                               \
        VF m = SHUF(a0, b0, EVEN);                                                          \
        VI best = (VI){0};                                                                  \
        for (int t = 0; t < 3; t++) {                                                       \
            const VF v = cand[t];                                                           \
            const VI take = (v > m) | (v != v);                                             \
            m = (VF)((take & (VI)v) | (~take & (VI)m));                                     \
            best = (take & off[t]) | (~take & best);                                        \
        }                                                                                   \
        *(VF *)y = m;                                                                       \
        *(VI *)arg = best + i0 + LANE2;                                                     \
    }                                                                                       \
    INLINE void grad_##N(const float *dy, const float *y, const int32_t *arg, int ox,       \
                         int W, int i0, float *dx)                                          \
    {                                                                                       \
        VF g = *(const VF *)(dy + ox);                                                      \
        if (y) g = (VF)((*(const VF *)(y + ox) > 0.0f) & (VI)g);                            \
        const VI off = *(const VI *)(arg + ox) - i0 - LANE2; /* within the window */        \
        const VI g00 = (off == 0) & (VI)g, g01 = (off == 1) & (VI)g;                        \
        const VI g10 = (off == W) & (VI)g, g11 = (off == W + 1) & (VI)g;                    \
        float *r0 = dx + i0, *r1 = r0 + W;                                                  \
        *(VF *)r0 = (VF)SHUF(g00, g01, LO);                                                 \
        *(VF *)(r0 + N) = (VF)SHUF(g00, g01, HI);                                           \
        *(VF *)r1 = (VF)SHUF(g10, g11, LO);                                                 \
        *(VF *)(r1 + N) = (VF)SHUF(g10, g11, HI);                                           \
    }

DEFINE_ROW(8, v8, v8i, SHUFFLE8, IDX8_EVEN, IDX8_ODD, IDX8_LO, IDX8_HI, ((v8i){IDX8_EVEN}))
DEFINE_ROW(4, v4, v4i, SHUFFLE4, IDX4_EVEN, IDX4_ODD, IDX4_LO, IDX4_HI, ((v4i){IDX4_EVEN}))

/* one window; bitwise selects, not branches: random data would
 * mispredict them */
INLINE void fwd_1(const float *x, int W, int i0, float *y, int32_t *arg)
{
    float m = x[i0];
    int best = i0;
    const int idx[3] = {i0 + 1, i0 + W, i0 + W + 1};
    for (int t = 0; t < 3; t++) {
        const float v = x[idx[t]];
        const int take = (v > m) | (v != v);
        best = take ? idx[t] : best;
        m = take ? v : m;
    }
    *y = m;
    *arg = best;
}

INLINE void grad_1(const float *dy, const float *y, const int32_t *arg, int ox, int W,
                   int i0, float *dx)
{
    dx[i0] = dx[i0 + 1] = dx[i0 + W] = dx[i0 + W + 1] = 0.0f;
    dx[arg[ox]] = !y || y[ox] > 0.0f ? dy[ox] : 0.0f;
}

/* a partial window of ceil mode, h x w inputs from i0, as the general
 * loop in layers/pool.c runs it */
INLINE void fwd_part(const float *x, int W, int i0, int h, int w, float *y, int32_t *arg)
{
    float m = x[i0];
    int best = i0;
    for (int a = 0; a < h; a++)
        for (int b = 0; b < w; b++) {
            const int i = i0 + a * W + b;
            const float v = x[i];
            const int take = (v > m) | (v != v);
            best = take ? i : best;
            m = take ? v : m;
        }
    *y = m;
    *arg = best;
}

/* its gradient: the window's h x w inputs, dy at the arg-max */
INLINE void grad_part(float g, const float *y, int32_t arg, int W, int i0, int h, int w,
                      float *dx)
{
    for (int a = 0; a < h; a++)
        for (int b = 0; b < w; b++) dx[i0 + a * W + b] = 0.0f;
    dx[arg] = !y || *y > 0.0f ? g : 0.0f;
}

/* ox = 0, N, 2N, ..., and a last vector at OW - N if N does not divide OW */
#define ROW_LOOP(N, OW, body)                                  \
    for (int ox_ = 0; ox_ < (OW); ox_ += (N)) {                \
        const int ox = ox_ + (N) <= (OW) ? ox_ : (OW) - (N);   \
        body;                                                   \
    }

/* The outputs of one row of whole-height windows from input row 2 oy:
 * the whole windows, then in ceil mode the last column's. */
INLINE void fwd_row(const float *x, int W, int OW, int oy, float *yr, int32_t *ar)
{
    const int row = 2 * oy * W, whole = W / 2;
    if (whole >= 8)
        ROW_LOOP(8, whole, fwd_8(x, W, row + 2 * ox, yr + ox, ar + ox))
    else if (whole >= 4)
        ROW_LOOP(4, whole, fwd_4(x, W, row + 2 * ox, yr + ox, ar + ox))
    else
        ROW_LOOP(1, whole, fwd_1(x, W, row + 2 * ox, yr + ox, ar + ox))
    if (OW > whole) fwd_part(x, W, row + W - 1, 2, 1, yr + whole, ar + whole);
}

CLONES
void cnn_maxpool2x2(const float *x, int H, int W, int ceil_mode, float *y, int32_t *arg)
{
    const int OH = (H + (ceil_mode != 0)) / 2, OW = (W + (ceil_mode != 0)) / 2;
    for (int oy = 0; oy < H / 2; oy++)
        fwd_row(x, W, OW, oy, y + (size_t)oy * OW, arg + (size_t)oy * OW);
    if (OH > H / 2) /* ceil mode, odd H: windows of the last row alone */
        for (int ox = 0; ox < OW; ox++)
            fwd_part(x, W, (H - 1) * W + 2 * ox, 1, 2 * ox + 1 < W ? 2 : 1,
                     y + (size_t)(OH - 1) * OW + ox, arg + (size_t)(OH - 1) * OW + ox);
}

/* The gradient of one row of whole-height windows (see fwd_row). */
INLINE void grad_row(const float *dr, const float *yr, const int32_t *ar, int W, int OW,
                     int oy, float *dx)
{
    const int row = 2 * oy * W, whole = W / 2;
    if (whole >= 8)
        ROW_LOOP(8, whole, grad_8(dr, yr, ar, ox, W, row + 2 * ox, dx))
    else if (whole >= 4)
        ROW_LOOP(4, whole, grad_4(dr, yr, ar, ox, W, row + 2 * ox, dx))
    else
        ROW_LOOP(1, whole, grad_1(dr, yr, ar, ox, W, row + 2 * ox, dx))
    if (OW > whole)
        grad_part(dr[whole], yr ? yr + whole : NULL, ar[whole], W, row + W - 1, 2, 1, dx);
    else if (W & 1)
        dx[row + W - 1] = dx[row + 2 * W - 1] = 0.0f;
}

CLONES
void cnn_maxpool2x2_grad(const float *dy, const float *y, const int32_t *arg, int H, int W,
                         int ceil_mode, float *dx)
{
    const int OH = (H + (ceil_mode != 0)) / 2, OW = (W + (ceil_mode != 0)) / 2;
    for (int oy = 0; oy < H / 2; oy++) {
        const size_t o = (size_t)oy * OW;
        grad_row(dy + o, y ? y + o : NULL, arg + o, W, OW, oy, dx);
    }
    if (OH > H / 2) { /* ceil mode, odd H */
        const size_t o = (size_t)(OH - 1) * OW;
        for (int ox = 0; ox < OW; ox++)
            grad_part(dy[o + ox], y ? y + o + ox : NULL, arg[o + ox], W, (H - 1) * W + 2 * ox, 1,
                      2 * ox + 1 < W ? 2 : 1, dx);
    } else if (H & 1) {
        for (int j = 0; j < W; j++) dx[(size_t)(H - 1) * W + j] = 0.0f;
    }
}
