/* test_augment.c - [augment] against a naive reference: each output pixel
 * computed from its definition (padded image, window, mirror, square). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn/augment.h"
#include "mpicnn/rng.h"

#define C 3
#define H 7
#define W 9
#define ISZ (C * H * W)

static void fill(uint8_t *img, uint64_t seed)
{
    for (int i = 0; i < ISZ; i++) img[i] = (uint8_t)(1 + cnn_hash4(seed, 0, (uint64_t)i, 9) % 255);
}

/* The pixel (ch, y, x) of the augmented image, from its definition. */
static uint8_t naive_pixel(const cnn_augment_config_t *a, const uint8_t *in, uint64_t seed,
                           long epoch, uint64_t index, int ch, int y, int x)
{
    const int p = a->crop_pad;
    int dy = 0, dx = 0;
    if (p > 0) {
        dy = (int)(cnn_hash4(seed, (uint64_t)epoch, index, 0) % (uint64_t)(2 * p + 1));
        dx = (int)(cnn_hash4(seed, (uint64_t)epoch, index, 1) % (uint64_t)(2 * p + 1));
    }
    if (a->cutout > 0) {
        const int cy = (int)(cnn_hash4(seed, (uint64_t)epoch, index, 3) % H);
        const int cx = (int)(cnn_hash4(seed, (uint64_t)epoch, index, 4) % W);
        const int y0 = cy - a->cutout / 2, x0 = cx - a->cutout / 2;
        if (y >= y0 && y < y0 + a->cutout && x >= x0 && x < x0 + a->cutout) return 0;
    }
    /* the flip mirrors the cropped image: its column x is the crop's W-1-x */
    if (a->flip && cnn_hash4(seed, (uint64_t)epoch, index, 2) % 2) x = W - 1 - x;
    /* the crop's pixel (y, x) is the padded image's (y + dy, x + dx) */
    const int sy = y + dy - p, sx = x + dx - p;
    if (sy < 0 || sy >= H || sx < 0 || sx >= W) return 0;
    return in[(ch * H + sy) * W + sx];
}

static void check(const cnn_augment_config_t *a)
{
    uint8_t in[ISZ], img[ISZ], scratch[ISZ];
    for (uint64_t index = 0; index < 200; index++)
        for (long epoch = 0; epoch < 3; epoch++) {
            fill(in, index);
            memcpy(img, in, ISZ);
            cnn_augment_image(a, 7, epoch, index, C, H, W, img, scratch);
            for (int ch = 0; ch < C; ch++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        const uint8_t want = naive_pixel(a, in, 7, epoch, index, ch, y, x);
                        if (img[(ch * H + y) * W + x] != want)
                            fail_msg("crop_pad %d flip %d cutout %d: image %llu epoch %ld "
                                     "pixel (%d,%d,%d) is %d, want %d", a->crop_pad, a->flip,
                                     a->cutout, (unsigned long long)index, epoch, ch, y, x,
                                     img[(ch * H + y) * W + x], want);
                    }
        }
}

static void test_naive(void **state)
{
    (void)state;
    const cnn_augment_config_t cases[] = {{0, 0, 0}, {2, 0, 0}, {0, 1, 0}, {0, 0, 3},
                                          {4, 1, 4}, {1, 1, 1}, {10, 1, 20}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check(&cases[i]);
}

static void test_enabled_and_identity(void **state)
{
    (void)state;
    cnn_augment_config_t a = {0, 0, 0};
    assert_false(cnn_augment_enabled(&a));
    uint8_t in[ISZ], img[ISZ], scratch[ISZ];
    fill(in, 1);
    memcpy(img, in, ISZ);
    cnn_augment_image(&a, 1, 0, 5, C, H, W, img, scratch);
    assert_memory_equal(img, in, ISZ);
    a.flip = 1;
    assert_true(cnn_augment_enabled(&a));
}

/* Draws depend on (seed, epoch, index) only: the same image augmented
 * alone or among others, now or later, changes the same way; and the
 * draws do vary (flip about half of the images, crops spread out). */
static void test_draws(void **state)
{
    (void)state;
    const cnn_augment_config_t a = {2, 1, 3};
    uint8_t in[ISZ], x[ISZ], y[ISZ], scratch[ISZ];
    int flips = 0, same_as_epoch0 = 0;
    for (uint64_t index = 0; index < 400; index++) {
        fill(in, 3);
        memcpy(x, in, ISZ);
        memcpy(y, in, ISZ);
        cnn_augment_image(&a, 11, 4, index, C, H, W, x, scratch);
        memset(scratch, 0xAB, ISZ); /* the scratch carries nothing over */
        cnn_augment_image(&a, 11, 4, index, C, H, W, y, scratch);
        assert_memory_equal(x, y, ISZ);
        memcpy(y, in, ISZ);
        cnn_augment_image(&a, 11, 0, index, C, H, W, y, scratch);
        same_as_epoch0 += memcmp(x, y, ISZ) == 0;
        flips += (int)(cnn_hash4(11, 4, index, 2) % 2);
    }
    assert_in_range(flips, 150, 250);
    assert_true(same_as_epoch0 < 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naive),
        cmocka_unit_test(test_enabled_and_identity),
        cmocka_unit_test(test_draws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
