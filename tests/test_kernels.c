/* test_kernels.c - im2col/col2im against direct indexing and as adjoints,
 * the polyphase planes of stride 2 against direct indexing,
 * the GEMM wrapper in every transpose against a naive product, and the
 * counter-based RNG. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn.h"
#include "testutil.h"

typedef struct { int C, H, W, KH, KW, S, P; } geo_t;

static const geo_t geos[] = {
    {3, 5, 5, 3, 3, 1, 1}, {2, 7, 6, 3, 2, 2, 0}, {1, 4, 4, 4, 4, 2, 1},
    {2, 3, 4, 2, 3, 1, 2}, {4, 9, 9, 5, 5, 3, 2}, {1, 1, 1, 1, 1, 1, 0},
    /* stride 1 and OW == W: one copy per row of col (pad < W) */
    {3, 8, 8, 5, 5, 1, 2}, {2, 6, 7, 3, 3, 1, 1}, {1, 3, 5, 5, 3, 1, 1},
    {2, 2, 5, 1, 7, 1, 3}, {1, 5, 2, 3, 3, 1, 1}, {1, 4, 6, 2, 1, 1, 0},
    /* ... and the same with pad >= W, which takes the pixel-row loop */
    {1, 3, 1, 5, 5, 1, 2}, {2, 3, 2, 5, 5, 1, 2},
};

static void test_out_size(void **state)
{
    assert_int_equal(cnn_conv_out_size(28, 3, 1, 1), 28);
    assert_int_equal(cnn_conv_out_size(5, 2, 2, 0), 2);
    assert_int_equal(cnn_conv_out_size(4, 4, 2, 1), 2);
    assert_int_equal(cnn_conv_out_size(3, 5, 1, 0), 0);
    assert_int_equal(cnn_conv_out_size(3, 5, 1, 1), 1);
    assert_int_equal(cnn_conv_out_size(3, 3, 0, 1), 0);
}

static void test_im2col(void **state)
{
    for (size_t g = 0; g < sizeof geos / sizeof geos[0]; g++) {
        const geo_t q = geos[g];
        int OH = cnn_conv_out_size(q.H, q.KH, q.S, q.P);
        int OW = cnn_conv_out_size(q.W, q.KW, q.S, q.P);
        size_t nx = (size_t)q.C * q.H * q.W, nc = (size_t)q.C * q.KH * q.KW * OH * OW;
        float *x = malloc(nx * sizeof(float)), *col = malloc(nc * sizeof(float));
        float *c2 = malloc(nc * sizeof(float)), *dx = calloc(nx, sizeof(float));
        double *ref = malloc(nc * sizeof(double));
        uint64_t seed = 7 + g;
        for (size_t i = 0; i < nx; i++) x[i] = (float)tu_uniform(&seed, -1, 1);
        for (size_t i = 0; i < nc; i++) c2[i] = (float)tu_uniform(&seed, -1, 1);
        for (int c = 0; c < q.C; c++)
            for (int ky = 0; ky < q.KH; ky++)
                for (int kx = 0; kx < q.KW; kx++)
                    for (int oy = 0; oy < OH; oy++)
                        for (int ox = 0; ox < OW; ox++) {
                            int iy = oy * q.S - q.P + ky, ix = ox * q.S - q.P + kx;
                            size_t r = ((size_t)(c * q.KH + ky) * q.KW + kx);
                            ref[r * OH * OW + (size_t)oy * OW + ox] =
                                (iy < 0 || ix < 0 || iy >= q.H || ix >= q.W)
                                    ? 0.0 : x[((size_t)c * q.H + iy) * q.W + ix];
                        }
        cnn_im2col(x, q.C, q.H, q.W, q.KH, q.KW, q.S, q.P, col, (size_t)OH * OW);
        TU_ASSERT_CLOSE("im2col (exact copy)", col, ref, nc, 1e-30, 0);
        /* col2im is the adjoint: <im2col(x), c2> == <x, col2im(c2)> */
        cnn_col2im(c2, (size_t)OH * OW, q.C, q.H, q.W, q.KH, q.KW, q.S, q.P, dx);
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < nc; i++) lhs += (double)col[i] * c2[i];
        for (size_t i = 0; i < nx; i++) rhs += (double)x[i] * dx[i];
        assert_float_equal(lhs, rhs, 1e-4 * (1 + fabs(lhs)));
        free(x); free(col); free(c2); free(dx); free(ref);
    }
}

/* Two images side by side in one wide column matrix equal each image's
 * own matrix; col2im reads them back from there. */
static void test_im2col_wide(void **state)
{
    const geo_t q = {2, 5, 4, 3, 3, 2, 1};
    const int OH = cnn_conv_out_size(q.H, q.KH, q.S, q.P), OW = cnn_conv_out_size(q.W, q.KW, q.S, q.P);
    const size_t ohw = (size_t)OH * OW, rows = (size_t)q.C * q.KH * q.KW, nx = (size_t)q.C * q.H * q.W;
    float x[2 * 40], one[2][18 * 6], wide[18 * 12], dx1[40] = {0}, dx2[40] = {0};
    uint64_t seed = 11;
    for (size_t i = 0; i < 2 * nx; i++) x[i] = (float)tu_uniform(&seed, -1, 1);
    for (int b = 0; b < 2; b++) {
        cnn_im2col(x + b * nx, q.C, q.H, q.W, q.KH, q.KW, q.S, q.P, one[b], ohw);
        cnn_im2col(x + b * nx, q.C, q.H, q.W, q.KH, q.KW, q.S, q.P, wide + b * ohw, 2 * ohw);
    }
    for (size_t r = 0; r < rows; r++)
        for (int b = 0; b < 2; b++)
            assert_memory_equal(wide + r * 2 * ohw + b * ohw, one[b] + r * ohw, ohw * sizeof(float));
    cnn_col2im(one[1], ohw, q.C, q.H, q.W, q.KH, q.KW, q.S, q.P, dx1);
    cnn_col2im(wide + ohw, 2 * ohw, q.C, q.H, q.W, q.KH, q.KW, q.S, q.P, dx2);
    assert_memory_equal(dx1, dx2, sizeof dx1);
}

/* The polyphase planes of stride 2 against direct indexing, rows of
 * several sizes (vectors of 8 and 4 pairs and single pixels, odd and
 * even widths, pads 0-2), side by side (ldq > QW) with nothing written
 * between them; the merge puts every input pixel back, and zeros past
 * the planes. */
static void test_polyphase(void **state)
{
    static const int cases[][5] = {/* C, H, W, pad, QW - OW */
                                   {2, 7, 7, 1, 1}, {1, 15, 15, 0, 1}, {3, 32, 32, 1, 1},
                                   {2, 14, 14, 1, 1}, {1, 6, 7, 2, 1}, {2, 8, 6, 0, 1},
                                   {1, 41, 41, 1, 1}, {1, 9, 9, 1, 0}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int C = cases[t][0], H = cases[t][1], W = cases[t][2], pad = cases[t][3];
        const int QH = cnn_conv_out_size(H, 3, 2, pad) + cases[t][4];
        const int QW = cnn_conv_out_size(W, 3, 2, pad) + cases[t][4];
        const size_t ldq = (size_t)QW + 3, cs = (size_t)QH * ldq, ps = (size_t)C * cs;
        const size_t nx = (size_t)C * H * W;
        float *x = malloc(nx * sizeof(float)), *q = malloc(4 * ps * sizeof(float));
        float *dx = malloc(nx * sizeof(float));
        uint64_t seed = 5 + t;
        for (size_t i = 0; i < nx; i++) x[i] = (float)tu_uniform(&seed, -1, 1);
        for (size_t i = 0; i < 4 * ps; i++) q[i] = 7.0f; /* not written: stays 7 */
        cnn_polyphase_split(x, C, H, W, pad, QH, QW, ldq, cs, ps, q);
        for (int ph = 0; ph < 4; ph++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < QH; i++)
                    for (size_t j = 0; j < ldq; j++) {
                        const int r = 2 * i + ph / 2 - pad, s = 2 * (int)j + ph % 2 - pad;
                        const float v = q[ph * ps + c * cs + i * ldq + j];
                        if (j >= (size_t)QW)
                            assert_true(v == 7.0f);
                        else if (r < 0 || r >= H || s < 0 || s >= W)
                            assert_true(v == 0.0f);
                        else
                            assert_true(v == x[((size_t)c * H + r) * W + s]);
                    }
        cnn_polyphase_merge(q, C, H, W, pad, QH, QW, ldq, cs, ps, dx);
        for (int c = 0; c < C; c++)
            for (int r = 0; r < H; r++)
                for (int s = 0; s < W; s++) {
                    const size_t e = ((size_t)c * H + r) * W + s;
                    const int inside = (r + pad) / 2 < QH && (s + pad) / 2 < QW;
                    assert_true(dx[e] == (inside ? x[e] : 0.0f));
                }
        free(x); free(q); free(dx);
    }
}

static void test_sgemm(void **state)
{
    const int M = 7, N = 5, K = 9;
    uint64_t seed = 3;
    float A[K * M], B[N * K], C[M * N];
    double ref[M * N];
    for (int i = 0; i < K * M; i++) A[i] = (float)tu_uniform(&seed, -1, 1);
    for (int i = 0; i < N * K; i++) B[i] = (float)tu_uniform(&seed, -1, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int i = 0; i < M * N; i++) C[i] = 1.0f;
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[k * M + m] : A[m * K + k];
                        double b = tb ? B[n * K + k] : B[k * N + n];
                        s += a * b;
                    }
                    ref[m * N + n] = 2.0 * s + 0.5;
                }
            cnn_sgemm(ta, tb, M, N, K, 2.0f, A, ta ? M : K, B, tb ? K : N, 0.5f, C, N);
            TU_ASSERT_CLOSE("sgemm", C, ref, M * N, 1e-6, 1e-6);
        }
}

/* The blocked kernels (smallgemm.c), against a double reference, on
 * shapes that reach every block and tail: rows in blocks of 4, 2 and 1,
 * columns in blocks of 3 vectors, of 1 and single ones (vectors of 16
 * and of 8 lanes), inner dimensions (dW's columns) in blocks of 6, 3, 2
 * and 1, or of 4 where they come in fours (16 lanes: their sums added 16
 * at a time), inner dimensions past the tail's pieces of 64, leading
 * dimensions beyond the width. dW and db must come out bitwise the same
 * however the rows are split (threads split them), and y however the
 * columns are (Winograd's blocks split them: a column must get the same
 * bits in a panel of vectors and in the tail). */
static void check_gemm_small(void)
{
    static const int cases[][3] = {{4, 9, 784}, {5, 27, 100}, {8, 10, 37}, {3, 4, 7},
                                   {32, 9, 30}, {6, 1, 1}, {4, 8, 50},
                                   {7, 5, 40}, {8, 130, 45}, {4, 70, 21}, {8, 16, 100}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int K = cases[t][0], D = cases[t][1], P = cases[t][2];
        const size_t ldc = (size_t)P + 3, ldy = (size_t)P + 5;
        uint64_t seed = 11 + t;
        float *w = malloc(sizeof(float) * K * D), *b = malloc(sizeof(float) * K);
        float *col = malloc(sizeof(float) * D * ldc), *y = malloc(sizeof(float) * K * ldy);
        float *dy = malloc(sizeof(float) * K * ldy);
        float *dw1 = malloc(sizeof(float) * K * D), *dw2 = malloc(sizeof(float) * K * D);
        double *yref = malloc(sizeof(double) * K * P), *dwref = malloc(sizeof(double) * K * D);
        float *yk = malloc(sizeof(float) * K * P);
        for (int i = 0; i < K * D; i++) w[i] = (float)tu_uniform(&seed, -1, 1);
        for (int i = 0; i < K; i++) b[i] = (float)tu_uniform(&seed, -1, 1);
        for (size_t i = 0; i < D * ldc; i++) col[i] = (float)tu_uniform(&seed, -1, 1);
        for (size_t i = 0; i < K * ldy; i++) dy[i] = (float)tu_uniform(&seed, -1, 1);
        for (int i = 0; i < K * D; i++) dw1[i] = dw2[i] = (float)tu_uniform(&seed, -1, 1);
        for (int k = 0; k < K; k++) {
            for (int p = 0; p < P; p++) {
                double s = b[k];
                for (int j = 0; j < D; j++) s += (double)w[k * D + j] * col[j * ldc + p];
                yref[k * P + p] = s;
            }
            for (int j = 0; j < D; j++) {
                double s = dw1[k * D + j];
                for (int p = 0; p < P; p++) s += (double)dy[k * ldy + p] * col[j * ldc + p];
                dwref[k * D + j] = s;
            }
        }
        for (size_t i = 0; i < K * ldy; i++) y[i] = -7.0f; /* the gap must stay */
        cnn_gemm_small_inner(w, b, K, D, col, ldc, (size_t)P, y, ldy);
        for (int k = 0; k < K; k++) {
            memcpy(yk + (size_t)k * P, y + k * ldy, sizeof(float) * P);
            for (size_t p = P; p < ldy; p++) assert_true(y[k * ldy + p] == -7.0f);
        }
        TU_ASSERT_CLOSE("small-inner forward", yk, yref, (size_t)K * P, 1e-5, 1e-5);
        for (int cut = 1; cut < P; cut += 1 + cut / 3) {
            float *y2 = malloc(sizeof(float) * K * ldy);
            cnn_gemm_small_inner(w, b, K, D, col, ldc, (size_t)cut, y2, ldy);
            cnn_gemm_small_inner(w, b, K, D, col + cut, ldc, (size_t)(P - cut), y2 + cut, ldy);
            for (int k = 0; k < K; k++)
                if (memcmp(y2 + (size_t)k * ldy, yk + (size_t)k * P, sizeof(float) * P))
                    fail_msg("y with columns cut at %d differs from one call (K=%d D=%d P=%d)",
                             cut, K, D, P);
            free(y2);
        }
        /* added into y: y + W x col = 2 yref - b */
        cnn_gemm_small_inner_acc(w, K, D, col, ldc, (size_t)P, y, ldy);
        for (int k = 0; k < K; k++) {
            memcpy(yk + (size_t)k * P, y + k * ldy, sizeof(float) * P);
            for (size_t p = P; p < ldy; p++) assert_true(y[k * ldy + p] == -7.0f);
            for (int p = 0; p < P; p++) yref[k * P + p] = 2 * yref[k * P + p] - b[k];
        }
        TU_ASSERT_CLOSE("small-inner added into y", yk, yref, (size_t)K * P, 2e-5, 1e-5);

        /* dW, and db from dy's row sums; without db, dW alone */
        float *db1 = malloc(sizeof(float) * K), *db0 = malloc(sizeof(float) * K);
        double *dbref = malloc(sizeof(double) * K);
        for (int k = 0; k < K; k++) {
            db1[k] = b[k];
            dbref[k] = b[k];
            for (int p = 0; p < P; p++) dbref[k] += dy[k * ldy + p];
        }
        float *dw0 = malloc(sizeof(float) * K * D);
        memcpy(dw0, dw1, sizeof(float) * K * D);
        cnn_gemm_small_dw(dy, ldy, 0, K, (size_t)P, col, ldc, D, dw1, db1);
        TU_ASSERT_CLOSE("small-inner dW", dw1, dwref, (size_t)K * D, 1e-4, 1e-5);
        TU_ASSERT_CLOSE("small-inner db", db1, dbref, (size_t)K, 1e-4, 1e-5);
        cnn_gemm_small_dw(dy, ldy, 0, K, (size_t)P, col, ldc, D, dw0, NULL);
        assert_memory_equal(dw0, dw1, sizeof(float) * K * D);
        for (int split = 1; split < K; split++) {
            memcpy(dw0, dw2, sizeof(float) * K * D);
            memcpy(db0, b, sizeof(float) * K);
            cnn_gemm_small_dw(dy, ldy, 0, split, (size_t)P, col, ldc, D, dw0, db0);
            cnn_gemm_small_dw(dy, ldy, split, K, (size_t)P, col, ldc, D, dw0, db0);
            if (memcmp(dw0, dw1, sizeof(float) * K * D) || memcmp(db0, db1, sizeof(float) * K))
                fail_msg("dW or db with rows split at %d differs from one call (K=%d D=%d P=%d)",
                         split, K, D, P);
        }
        free(dw0), free(db0), free(db1), free(dbref);
        free(w), free(b), free(col), free(y), free(dy), free(dw1), free(dw2);
        free(yref), free(dwref), free(yk);
    }
}

/* both vector widths: 16 lanes where the CPU has AVX-512, and 8 */
static void test_gemm_small(void **state)
{
    check_gemm_small();
    cnn_kernels_set_lanes(8);
    check_gemm_small();
    cnn_kernels_set_lanes(0);
}

/* The 2x2 stride-2 max pool against a scalar loop over each window, on
 * planes whose rows take 8-wide vectors (with an overlapping last one),
 * 4-wide ones and single windows, with odd last rows and columns, which
 * ceil mode makes windows of what they hold. Values come from four
 * levels, so ties are common: the first maximum must win. */
static void test_maxpool2x2(void **state)
{
    const int shapes[][2] = {{2, 2}, {3, 5}, {5, 9}, {4, 14}, {7, 15}, {6, 16},
                             {5, 19}, {8, 40}, {2, 34}, {3, 7}, {2, 3}, {3, 2}};
    uint64_t seed = 77;
    for (size_t s = 0; s < 2 * sizeof shapes / sizeof shapes[0]; s++) {
        const int ceil = s & 1, H = shapes[s / 2][0], W = shapes[s / 2][1];
        const int OH = (H + ceil) / 2, OW = (W + ceil) / 2;
        const int nin = H * W, nout = OH * OW;
        float *x = malloc(sizeof(float) * nin), *y = malloc(sizeof(float) * nout);
        float *dy = malloc(sizeof(float) * nout), *dx = malloc(sizeof(float) * nin);
        float *ref = malloc(sizeof(float) * nin);
        int32_t *arg = malloc(sizeof(int32_t) * nout);
        for (int nan = 0; nan < 2; nan++) {
            for (int i = 0; i < nin; i++) x[i] = (float)(int)tu_uniform(&seed, -2, 3) * 0.5f;
            if (nan) x[nin / 2] = NAN; /* a NaN wins its window */
            for (int i = 0; i < nout; i++) dy[i] = (float)tu_uniform(&seed, -1, 1);
            cnn_maxpool2x2(x, H, W, ceil, y, arg);
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const int o = oy * OW + ox;
                    int best = 2 * oy * W + 2 * ox;
                    for (int k = 1; k < 4; k++) {
                        if (2 * oy + k / 2 >= H || 2 * ox + k % 2 >= W) continue;
                        const int i = (2 * oy + k / 2) * W + 2 * ox + k % 2;
                        if (x[i] > x[best] || isnan(x[i])) best = i;
                    }
                    if (arg[o] != best || !(y[o] == x[best] || (isnan(y[o]) && isnan(x[best]))))
                        fail_msg("maxpool2x2 %dx%d (ceil %d) at output %d: arg %d (want %d), "
                                 "y %g", H, W, ceil, o, arg[o], best, y[o]);
                }
            /* the gradient, plain and through a ReLU before the pool:
             * every element of dx is written, garbage or not before */
            for (int relu = 0; relu < 2; relu++) {
                for (int i = 0; i < nin; i++) dx[i] = 7.0f, ref[i] = 0.0f;
                for (int o = 0; o < nout; o++)
                    ref[arg[o]] = !relu || y[o] > 0.0f ? dy[o] : 0.0f;
                cnn_maxpool2x2_grad(dy, relu ? y : NULL, arg, H, W, ceil, dx);
                if (memcmp(dx, ref, sizeof(float) * nin))
                    fail_msg("maxpool2x2 gradient %dx%d (relu %d, ceil %d) differs", H, W, relu,
                             ceil);
            }
        }
        free(x);
        free(y);
        free(dy);
        free(dx);
        free(ref);
        free(arg);
    }
}

static void test_rng(void **state)
{
    assert_true(cnn_hash4(1, 2, 3, 4) == cnn_hash4(1, 2, 3, 4));
    assert_true(cnn_hash4(1, 2, 3, 4) != cnn_hash4(1, 2, 3, 5));
    assert_true(cnn_hash4(1, 2, 3, 4) != cnn_hash4(2, 1, 3, 4));
    double s = 0, s2 = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double v = cnn_randn(5, 1, (uint64_t)i);
        s += v;
        s2 += v * v;
    }
    assert_float_equal(s / n, 0.0, 0.02);
    assert_float_equal(s2 / n, 1.0, 0.02);
    float u = cnn_u01(~0ULL);
    assert_true(u < 1.0f && u >= 0.0f);
}

static void test_all_finite(void **state)
{
    float v[4] = {1, 2, 3, 4};
    assert_true(cnn_all_finite(v, 4));
    v[2] = NAN;
    assert_false(cnn_all_finite(v, 4));
    v[2] = INFINITY;
    assert_false(cnn_all_finite(v, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_size), cmocka_unit_test(test_im2col),
        cmocka_unit_test(test_im2col_wide), cmocka_unit_test(test_polyphase),
        cmocka_unit_test(test_sgemm),    cmocka_unit_test(test_gemm_small),
        cmocka_unit_test(test_maxpool2x2), cmocka_unit_test(test_rng),
        cmocka_unit_test(test_all_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
