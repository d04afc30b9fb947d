/* winograd.c - Winograd F(2x2, 3x3) transforms for 3x3 stride-1 convolution
 * (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
 * 2016).
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
 * tw = ceil(OW / 2), th = ceil(OH / 2). The image transforms go tile by
 * tile through a zero-padded copy of one channel (the plane), so the
 * borders need no tests. */
#include <string.h>

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

/* Scratch floats per thread for the image transforms: the padded plane,
 * (2*th + 2) x (2*tw + 2). */
size_t cnn_wino_scratch(int th, int tw)
{
    return (size_t)(2 * th + 2) * (size_t)(2 * tw + 2);
}

/* Input tiles of one image. x is (C, H, W); writes V[xi][c][t] for the
 * th * tw tiles of every channel, at V + xi * C * ld + c * ld + t (the
 * caller offsets V to this image's first tile), the 16 matrices xs floats
 * apart. pad is the conv's zero padding; plane is cnn_wino_scratch()
 * floats. */
void cnn_wino_input(const float *x, int C, int H, int W, int pad, int th,
                    int tw, float *V, size_t ld, size_t xs, float *plane)
{
    const int ph = 2 * th + 2, pw = 2 * tw + 2;
    const size_t cl = xs;
    memset(plane, 0, sizeof(float) * (size_t)ph * pw);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int h = 0; h < H && h + pad < ph; h++) {
            const int n = W < pw - pad ? W : pw - pad;
            memcpy(plane + (size_t)(h + pad) * pw + pad, xc + (size_t)h * W,
                   sizeof(float) * (size_t)n);
        }
        float *vc = V + (size_t)c * ld;
        for (int ti = 0; ti < th; ti++) {
            const float *d0 = plane + (size_t)(2 * ti) * pw, *d1 = d0 + pw;
            const float *d2 = d1 + pw, *d3 = d2 + pw;
            float *v = vc + (size_t)ti * tw;
            for (int tj = 0; tj < tw; tj++) {
                const int s = 2 * tj;
                float t[4][4]; /* B^T d */
                for (int q = 0; q < 4; q++) {
                    t[0][q] = d0[s + q] - d2[s + q];
                    t[1][q] = d1[s + q] + d2[s + q];
                    t[2][q] = d2[s + q] - d1[s + q];
                    t[3][q] = d1[s + q] - d3[s + q];
                }
                for (int r = 0; r < 4; r++) { /* (B^T d) B */
                    v[(size_t)(4 * r + 0) * cl + tj] = t[r][0] - t[r][2];
                    v[(size_t)(4 * r + 1) * cl + tj] = t[r][1] + t[r][2];
                    v[(size_t)(4 * r + 2) * cl + tj] = t[r][2] - t[r][1];
                    v[(size_t)(4 * r + 3) * cl + tj] = t[r][1] - t[r][3];
                }
            }
        }
        /* the plane's padding stays zero: only the interior is rewritten */
    }
}

/* The adjoint of cnn_wino_input: dx (C, H, W) = the input gradient from
 * dV laid out as cnn_wino_input writes V. dx is overwritten. plane is
 * cnn_wino_scratch() floats. */
void cnn_wino_input_grad(const float *dV, size_t ld, size_t xs, int C, int H,
                         int W, int pad, int th, int tw, float *dx, float *plane)
{
    const int ph = 2 * th + 2, pw = 2 * tw + 2;
    const size_t cl = xs;
    for (int c = 0; c < C; c++) {
        memset(plane, 0, sizeof(float) * (size_t)ph * pw);
        const float *vc = dV + (size_t)c * ld;
        for (int ti = 0; ti < th; ti++) {
            float *d0 = plane + (size_t)(2 * ti) * pw, *d1 = d0 + pw;
            float *d2 = d1 + pw, *d3 = d2 + pw;
            const float *v = vc + (size_t)ti * tw;
            for (int tj = 0; tj < tw; tj++) {
                const int s = 2 * tj;
                float t[4][4]; /* dV B^T */
                for (int r = 0; r < 4; r++) {
                    const float v0 = v[(size_t)(4 * r) * cl + tj];
                    const float v1 = v[(size_t)(4 * r + 1) * cl + tj];
                    const float v2 = v[(size_t)(4 * r + 2) * cl + tj];
                    const float v3 = v[(size_t)(4 * r + 3) * cl + tj];
                    t[r][0] = v0;
                    t[r][1] = v1 - v2 + v3;
                    t[r][2] = v1 + v2 - v0;
                    t[r][3] = -v3;
                }
                for (int q = 0; q < 4; q++) { /* B (dV B^T), added into place */
                    d0[s + q] += t[0][q];
                    d1[s + q] += t[1][q] - t[2][q] + t[3][q];
                    d2[s + q] += t[1][q] + t[2][q] - t[0][q];
                    d3[s + q] -= t[3][q];
                }
            }
        }
        float *xc = dx + (size_t)c * H * W;
        for (int h = 0; h < H; h++) {
            if (h + pad >= ph) { /* rows no tile reaches get no gradient */
                memset(xc + (size_t)h * W, 0, sizeof(float) * (size_t)W);
                continue;
            }
            const int n = W < pw - pad ? W : pw - pad;
            memcpy(xc + (size_t)h * W, plane + (size_t)(h + pad) * pw + pad,
                   sizeof(float) * (size_t)n);
            if (n < W) memset(xc + (size_t)h * W + n, 0, sizeof(float) * (size_t)(W - n));
        }
    }
}

/* Output tiles of one image: y (K, OH, OW) = bias + A^T M A, M laid out
 * as 16 matrices (K, ld) xs floats apart (the caller offsets M to this
 * image's first tile). plane is cnn_wino_scratch() floats. */
void cnn_wino_output(const float *M, size_t ld, size_t xs, int K, int OH,
                     int OW, int th, int tw, const float *bias, float *y,
                     float *plane)
{
    const int pw = 2 * tw;
    const size_t kl = xs;
    for (int k = 0; k < K; k++) {
        const float *mk = M + (size_t)k * ld;
        for (int ti = 0; ti < th; ti++) {
            float *y0 = plane + (size_t)(2 * ti) * pw, *y1 = y0 + pw;
            const float *m = mk + (size_t)ti * tw;
            for (int tj = 0; tj < tw; tj++) {
                float t[2][4]; /* A^T M */
                for (int q = 0; q < 4; q++) {
                    const float m0 = m[(size_t)q * kl + tj], m1 = m[(size_t)(4 + q) * kl + tj];
                    const float m2 = m[(size_t)(8 + q) * kl + tj], m3 = m[(size_t)(12 + q) * kl + tj];
                    t[0][q] = m0 + m1 + m2;
                    t[1][q] = m1 - m2 - m3;
                }
                y0[2 * tj] = t[0][0] + t[0][1] + t[0][2];
                y0[2 * tj + 1] = t[0][1] - t[0][2] - t[0][3];
                y1[2 * tj] = t[1][0] + t[1][1] + t[1][2];
                y1[2 * tj + 1] = t[1][1] - t[1][2] - t[1][3];
            }
        }
        float *yk = y + (size_t)k * OH * OW;
        const float b = bias[k];
        for (int h = 0; h < OH; h++)
            for (int w = 0; w < OW; w++) yk[(size_t)h * OW + w] = plane[(size_t)h * pw + w] + b;
    }
}

/* The adjoint of cnn_wino_output (without the bias): dM laid out as 16
 * matrices (K, ld) xs floats apart, from dy (K, OH, OW). plane is
 * cnn_wino_scratch() floats. */
void cnn_wino_output_grad(const float *dy, int K, int OH, int OW, int th,
                          int tw, float *dM, size_t ld, size_t xs, float *plane)
{
    const int pw = 2 * tw;
    const size_t kl = xs;
    memset(plane, 0, sizeof(float) * (size_t)2 * th * pw);
    for (int k = 0; k < K; k++) {
        const float *dyk = dy + (size_t)k * OH * OW;
        for (int h = 0; h < OH; h++) /* the cropped border stays zero */
            memcpy(plane + (size_t)h * pw, dyk + (size_t)h * OW, sizeof(float) * (size_t)OW);
        float *mk = dM + (size_t)k * ld;
        for (int ti = 0; ti < th; ti++) {
            const float *y0 = plane + (size_t)(2 * ti) * pw, *y1 = y0 + pw;
            float *m = mk + (size_t)ti * tw;
            for (int tj = 0; tj < tw; tj++) {
                const float a0 = y0[2 * tj], a1 = y0[2 * tj + 1];
                const float b0 = y1[2 * tj], b1 = y1[2 * tj + 1];
                /* dY A^T: rows (a0, a0+a1, a0-a1, -a1) and (b0, ...) */
                const float r0[4] = {a0, a0 + a1, a0 - a1, -a1};
                const float r1[4] = {b0, b0 + b1, b0 - b1, -b1};
                for (int q = 0; q < 4; q++) { /* A (dY A^T) */
                    m[(size_t)q * kl + tj] = r0[q];
                    m[(size_t)(4 + q) * kl + tj] = r0[q] + r1[q];
                    m[(size_t)(8 + q) * kl + tj] = r0[q] - r1[q];
                    m[(size_t)(12 + q) * kl + tj] = -r1[q];
                }
            }
        }
    }
}
