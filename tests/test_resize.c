/* test_resize.c - image resizing and channel conversion (resize.h), and
 * the JPEG reader's checks (jpeg.h).
 *
 * cnn_resize_u8 is compared with a naive reference that sums every source
 * pixel with its weight, each weight computed from its definition (the
 * overlap of a source pixel with an output pixel's area when shrinking,
 * the tent of linear interpolation when enlarging), over shrinking,
 * enlarging, mixed and cropped cases and 1 to 4 channels. Both sum in
 * double and must give the same bytes, except where the exact value is a
 * tie (k + 1/2, common with weights like 1/2 x 2/3): there the two sums'
 * rounding errors may round either way, and one level apart is allowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/jpeg.h"
#include "mpicnn/resize.h"

/* Weight of source pixel i in output pixel j along an axis of n_in -> n_out. */
static double weight(int n_in, int n_out, int j, int i)
{
    const double s = (double)n_in / n_out;
    if (n_out < n_in) {
        const double lo = j * s, hi = (j + 1) * s;
        const double a = fmax(lo, i), b = fmin(hi, i + 1.0);
        return b > a ? (b - a) / s : 0.0;
    }
    double x = (j + 0.5) * s - 0.5;
    x = fmin(fmax(x, 0.0), n_in - 1.0);
    const double d = fabs(x - i);
    return d < 1.0 ? 1.0 - d : 0.0;
}

static void naive(const uint8_t *src, size_t stride, int ch, cnn_rect_t r, uint8_t *dst,
                  double *exact, int dw, int dh)
{
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
            for (int k = 0; k < ch; k++) {
                double s = 0.0;
                for (int i = 0; i < r.h; i++)
                    for (int j = 0; j < r.w; j++)
                        s += weight(r.h, dh, y, i) * weight(r.w, dw, x, j) *
                             src[(size_t)(r.y + i) * stride + (size_t)(r.x + j) * ch + k];
                exact[((size_t)y * dw + x) * ch + k] = s;
                const double v = floor(s + 0.5);
                dst[((size_t)y * dw + x) * ch + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static uint8_t *pattern(int w, int h, int ch, unsigned seed)
{
    uint8_t *p = malloc((size_t)w * h * ch);
    for (size_t i = 0; i < (size_t)w * h * ch; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

static void check_case(int sw, int sh, int ch, int dw, int dh, int crop)
{
    uint8_t *src = pattern(sw, sh, ch, (unsigned)(sw * 31 + sh * 7 + ch));
    uint8_t *got = malloc((size_t)dw * dh * ch), *want = malloc((size_t)dw * dh * ch);
    cnn_rect_t r = crop ? cnn_resize_crop_rect(sw, sh, dw, dh) : (cnn_rect_t){0, 0, sw, sh};
    assert_int_equal(cnn_resize_u8(src, (size_t)sw * ch, ch, r, got, dw, dh), CNN_OK);
    size_t n = (size_t)dw * dh * ch, off = 0;
    double *exact = malloc(n * sizeof *exact);
    naive(src, (size_t)sw * ch, ch, r, want, exact, dw, dh);
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        const int d = abs((int)got[i] - (int)want[i]);
        const int tie = fabs(exact[i] - floor(exact[i]) - 0.5) < 1e-9;
        if (d > maxd) maxd = d;
        off += d != 0 && !tie;
    }
    if (maxd > 1 || off > 0)
        fail_msg("%dx%dx%d -> %dx%d%s: max difference %d, %zu of %zu values differ (not ties)",
                 sw, sh, ch, dw, dh, crop ? " (crop)" : "", maxd, off, n);
    free(exact);
    free(src);
    free(got);
    free(want);
}

static void test_resize_vs_naive(void **state)
{
    (void)state;
    static const int cases[][5] = {
        {28, 28, 1, 14, 14}, {30, 20, 3, 7, 5},   {5, 4, 3, 17, 13}, {40, 9, 1, 12, 20},
        {9, 40, 4, 20, 12},  {64, 48, 3, 32, 32}, {3, 3, 2, 1, 1},   {1, 1, 3, 4, 5},
        {100, 7, 1, 13, 7},  {17, 17, 3, 17, 17}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        check_case(c[0], c[1], c[2], c[3], c[4], 0);
        check_case(c[0], c[1], c[2], c[3], c[4], 1);
    }
}

/* Exact properties: a copy at the same size, 2x2 block means, constants. */
static void test_resize_exact(void **state)
{
    (void)state;
    uint8_t *src = pattern(8, 6, 3, 5), out[8 * 6 * 3];
    assert_int_equal(cnn_resize_u8(src, 24, 3, (cnn_rect_t){0, 0, 8, 6}, out, 8, 6), CNN_OK);
    assert_memory_equal(src, out, sizeof out);
    const uint8_t g[16] = {0, 2, 10, 20, 4, 6, 30, 41, 100, 100, 7, 7, 100, 101, 7, 8};
    uint8_t half[4];
    assert_int_equal(cnn_resize_u8(g, 4, 1, (cnn_rect_t){0, 0, 4, 4}, half, 2, 2), CNN_OK);
    assert_int_equal(half[0], 3);   /* (0+2+4+6)/4 */
    assert_int_equal(half[1], 25);  /* (10+20+30+41)/4 = 25.25 */
    assert_int_equal(half[2], 100); /* 100.25 */
    assert_int_equal(half[3], 7);   /* 7.25 */
    uint8_t flat[35 * 3], big[9 * 11 * 3];
    memset(flat, 77, sizeof flat);
    assert_int_equal(cnn_resize_u8(flat, 15, 3, (cnn_rect_t){0, 0, 5, 7}, big, 9, 11), CNN_OK);
    for (size_t i = 0; i < sizeof big; i++) assert_int_equal(big[i], 77);
    assert_int_equal(cnn_resize_u8(flat, 15, 3, (cnn_rect_t){0, 0, 5, 7}, big, 0, 11), CNN_EUSAGE);
    free(src);
}

static void test_crop_rect(void **state)
{
    (void)state;
    cnn_rect_t r = cnn_resize_crop_rect(200, 100, 32, 32);
    assert_true(r.x == 50 && r.y == 0 && r.w == 100 && r.h == 100);
    r = cnn_resize_crop_rect(100, 300, 20, 30);
    assert_true(r.x == 0 && r.y == 75 && r.w == 100 && r.h == 150);
    r = cnn_resize_crop_rect(64, 48, 4, 3);
    assert_true(r.x == 0 && r.y == 0 && r.w == 64 && r.h == 48);
    r = cnn_resize_crop_rect(1, 1000, 1000, 1);
    assert_true(r.w == 1 && r.h == 1 && r.y == 499);
}

static void test_to_chw(void **state)
{
    (void)state;
    const uint8_t rgba[2 * 4] = {255, 0, 0, 9, 10, 20, 30, 9};
    uint8_t grey[2], col[6];
    cnn_image_to_chw(rgba, 2, 1, 4, 1, grey);
    assert_int_equal(grey[0], (299 * 255 + 500) / 1000);
    assert_int_equal(grey[1], (299 * 10 + 587 * 20 + 114 * 30 + 500) / 1000);
    cnn_image_to_chw(rgba, 2, 1, 4, 3, col);
    const uint8_t want[6] = {255, 10, 0, 20, 0, 30};
    assert_memory_equal(col, want, 6);
    const uint8_t ga[4] = {50, 1, 60, 2};
    cnn_image_to_chw(ga, 2, 1, 2, 3, col);
    const uint8_t want2[6] = {50, 60, 50, 60, 50, 60};
    assert_memory_equal(col, want2, 6);
}

static void test_jpeg_not_jpeg(void **state)
{
    (void)state;
    const unsigned char j[3] = {0xFF, 0xD8, 0xFF}, p[3] = {0x89, 'P', 'N'};
    assert_true(cnn_jpeg_sniff(j, 3));
    assert_false(cnn_jpeg_sniff(p, 3));
    assert_false(cnn_jpeg_sniff(j, 2));
    cnn_image_t img;
    assert_int_equal(cnn_jpeg_read("/nonexistent/x.jpg", 0, 0, &img), CNN_EDATA);
    assert_null(img.pixels);
    assert_non_null(strstr(cnn_error_message(), "/nonexistent/x.jpg"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_vs_naive), cmocka_unit_test(test_resize_exact),
        cmocka_unit_test(test_crop_rect),       cmocka_unit_test(test_to_chw),
        cmocka_unit_test(test_jpeg_not_jpeg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
