/* test_plot.c - the picture pieces of `mpicnn plot`: the bitmap font, the
 * layouts plot.h documents (sizes, where tiles land, their normalisation),
 * the gnuplot runner (missing program, failing program) and, when gnuplot
 * is installed, both charts.
 *
 * Two helper modes serve tests/test_plot.sh:
 *   test_plot --synth DIR   writes a small synthetic IDX data set and
 *                           DIR/plot.ini, a config that trains on it
 *   test_plot --png FILE    prints "W H CHANNELS" of a PNG; exit 1 if it is
 *                           unreadable or blank (fewer than 1% of its
 *                           pixels differ from the top-left one)
 * and one makes the filter example pictures of docs/plots.md:
 *   test_plot --idx-png IMAGES LABELS INDEX SCALE OUT.png
 *                           image INDEX of an IDX pair, upscaled SCALE
 *                           times (nearest neighbour), as a gray PNG
 *   test_plot --idx-png-rgb ...  the same as an RGB PNG (R = G = B), for
 *                           tests/test_predict.sh */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpicnn/data.h"
#include "mpicnn/plot.h"
#include "mpicnn/png.h"
#include "synth.h"

#define M CNN_PLOT_MARGIN
#define G CNN_PLOT_GAP
#define L CNN_PLOT_LINE
#define T CNN_PLOT_TITLE

static const uint8_t *px(const cnn_canvas_t *cv, int x, int y)
{
    return cv->rgb + ((size_t)y * (size_t)cv->w + (size_t)x) * 3;
}

static int ink(const cnn_canvas_t *cv, int x0, int y0, int w, int h)
{
    int n = 0;
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++) n += px(cv, x, y)[0] != 255;
    return n;
}

static void assert_gray(const cnn_canvas_t *cv, int x, int y, int v)
{
    const uint8_t *p = px(cv, x, y);
    if (p[0] != v || p[1] != v || p[2] != v)
        fail_msg("pixel (%d,%d) is (%d,%d,%d), expected gray %d", x, y, p[0], p[1], p[2], v);
}

static void test_font(void **state)
{
    cnn_canvas_t cv;
    const uint8_t black[3] = {0, 0, 0};
    assert_int_equal(cnn_canvas_create(40, 10, &cv), CNN_OK);
    assert_int_equal(cnn_plot_text_width(""), 0);
    assert_int_equal(cnn_plot_text_width("ab"), 2 * CNN_PLOT_CHAR - 1);
    cnn_canvas_text(&cv, 0, 0, " ", black);
    assert_int_equal(ink(&cv, 0, 0, 40, 10), 0);
    cnn_canvas_text(&cv, 0, 0, "|", black); /* one full column, the middle one */
    assert_int_equal(ink(&cv, 0, 0, 40, 10), 7);
    assert_int_equal(ink(&cv, 2, 0, 1, 7), 7);
    /* a byte outside printable ASCII is drawn as '?'; clipping is silent */
    cnn_canvas_t q;
    assert_int_equal(cnn_canvas_create(40, 10, &q), CNN_OK);
    cnn_canvas_text(&q, 0, 0, "?", black);
    cnn_canvas_text(&cv, 6, 0, "\x01", black);
    assert_int_equal(ink(&cv, 6, 0, 6, 10), ink(&q, 0, 0, 6, 10));
    cnn_canvas_text(&cv, 36, 8, "WWW", black);
    cnn_canvas_text(&cv, -100, -100, "WWW", black);
    cnn_canvas_free(&q);
    cnn_canvas_free(&cv);
    cnn_canvas_free(&cv); /* twice is fine */
    cnn_canvas_free(NULL);
    assert_int_equal(cnn_canvas_create(0, 5, &cv), CNN_EUSAGE);
    assert_null(cv.rgb);
}

static void test_filters_gray(void **state)
{
    /* 6 filters 1x3x3, filter k holds k*100 + 0..8: each is scaled on its
     * own, so every tile runs from black (top left) to white (bottom right) */
    float w[6 * 9];
    for (int k = 0; k < 6; k++)
        for (int i = 0; i < 9; i++) w[k * 9 + i] = (float)(k * 100 + i);
    cnn_canvas_t cv;
    assert_int_equal(cnn_plot_filters(w, 6, 1, 3, 3, "f", &cv), CNN_OK);
    const int S = 16; /* 48 / 3 */
    assert_int_equal(cv.w, 2 * M + 6 * 3 * S + 5 * G);
    assert_int_equal(cv.h, 2 * M + T + 3 * S);
    for (int k = 0; k < 6; k++) {
        const int x = M + k * (3 * S + G), y = M + T;
        assert_gray(&cv, x, y, 0);
        assert_gray(&cv, x + 3 * S - 1, y + 3 * S - 1, 255);
        assert_gray(&cv, x + S, y + S, 128); /* value 4 of 0..8 */
        assert_gray(&cv, x + 3 * S, y, 255); /* the gap */
    }
    cnn_canvas_free(&cv);

    /* 10 filters of 5x5 wrap after 8: two rows; a constant filter is mid-gray */
    float w2[10 * 25] = {0};
    assert_int_equal(cnn_plot_filters(w2, 10, 1, 5, 5, "", &cv), CNN_OK);
    assert_int_equal(cv.w, 2 * M + 8 * 5 * 9 + 7 * G);
    assert_int_equal(cv.h, 2 * M + T + 2 * 5 * 9 + G);
    assert_gray(&cv, M, M + T, 128);
    cnn_canvas_free(&cv);
    /* a long title widens the picture */
    assert_int_equal(cnn_plot_filters(w2, 1, 1, 5, 5, "a title wider than one tile", &cv), CNN_OK);
    assert_int_equal(cv.w, 2 * M + cnn_plot_text_width("a title wider than one tile"));
    cnn_canvas_free(&cv);
}

static void test_filters_rgb_and_other(void **state)
{
    /* one 3x1x1 filter (r, g, b) = (1, 0, 0.5): a pure colour tile */
    const float w[3] = {1.0f, 0.0f, 0.5f};
    cnn_canvas_t cv;
    assert_int_equal(cnn_plot_filters(w, 1, 3, 1, 1, "", &cv), CNN_OK);
    const uint8_t *p = px(&cv, M, M + T);
    assert_int_equal(p[0], 255);
    assert_int_equal(p[1], 0);
    assert_int_equal(p[2], 128);
    assert_int_equal(cv.w, 2 * M + 16); /* S = clamp(48, 2, 16) */
    cnn_canvas_free(&cv);
    /* C = 2: one row per filter, one tile per channel */
    float w2[3 * 2 * 4];
    for (int i = 0; i < 24; i++) w2[i] = (float)i;
    assert_int_equal(cnn_plot_filters(w2, 3, 2, 2, 2, "", &cv), CNN_OK);
    assert_int_equal(cv.w, 2 * M + 2 * 2 * 16 + G);
    assert_int_equal(cv.h, 2 * M + T + 3 * 2 * 16 + 2 * G);
    /* filter 1's channel 1 holds its 4 largest values: bottom right white */
    assert_gray(&cv, M + 2 * 16 + G + 31, M + T + 32 + G + 31, 255);
    assert_gray(&cv, M, M + T + 32 + G, 0);
    cnn_canvas_free(&cv);
    assert_int_equal(cnn_plot_filters(w2, 0, 1, 3, 3, "", &cv), CNN_EUSAGE);
    assert_int_equal(cnn_plot_filters(w2, 4096, 4096, 1, 1, "", &cv), CNN_EUSAGE);
    assert_null(cv.rgb);
}

static void test_activations(void **state)
{
    /* 2 images, 3 channels of 4x4 (S = 10), input 1x8x8 (Si = 5) */
    float act[2 * 3 * 16];
    uint8_t img[2 * 64];
    for (int i = 0; i < 2 * 3 * 16; i++) act[i] = (float)(i % 16);
    act[16] = 100.0f; /* image 0, channel 1: its range is 0..100 over both images */
    memset(img, 200, sizeof img);
    const char *cap[2] = {"image zero", "image one, a longer caption than the blocks"};
    cnn_canvas_t cv;
    assert_int_equal(cnn_plot_activations(act, 2, 3, 4, 4, img, 1, 8, 8, cap, "t", &cv), CNN_OK);
    const int bw = 8 * 5 + M + 3 * 40 + 2 * G, bh = L + 40;
    assert_true(cnn_plot_text_width(cap[1]) > bw);
    assert_int_equal(cv.w, 2 * M + cnn_plot_text_width(cap[1]));
    assert_int_equal(cv.h, 2 * M + T + 2 * bh + M);
    /* the input of image 1, gray 200 */
    assert_gray(&cv, M, M + T + bh + M + L, 200);
    /* channel 0 of image 0 spans 0..15: viridis' ends at its corners */
    const int x0 = M + 40 + M, y0 = M + T + L;
    const uint8_t *lo = px(&cv, x0, y0), *hi = px(&cv, x0 + 39, y0 + 39);
    assert_int_equal(lo[0], 68);
    assert_int_equal(lo[2], 84);
    assert_int_equal(hi[0], 253);
    assert_int_equal(hi[1], 231);
    /* channel 1: image 1's values 0..15 are dark next to image 0's 100 */
    const uint8_t *c1 = px(&cv, x0 + 40 + G + 39, M + T + bh + M + L + 39);
    assert_true(c1[0] < 80 && c1[1] < 80);
    cnn_canvas_free(&cv);
    /* 1x1 maps go 16 to a row */
    float v[40];
    for (int i = 0; i < 40; i++) v[i] = (float)i;
    assert_int_equal(cnn_plot_activations(v, 1, 40, 1, 1, img, 1, 8, 8, NULL, "", &cv), CNN_OK);
    assert_int_equal(cv.w, 2 * M + 8 * 5 + M + 16 * 16 + 15 * G);
    assert_int_equal(cv.h, 2 * M + T + L + 3 * 16 + 2 * G);
    cnn_canvas_free(&cv);
}

static void test_image_grid(void **state)
{
    /* 7 RGB images 2x3x3: 6 in the first row, S = 8 */
    uint8_t img[7 * 3 * 9];
    for (int i = 0; i < 7; i++)
        for (int c = 0; c < 3; c++) memset(img + (i * 3 + c) * 9, c == 0 ? 10 * i : 0, 9);
    const char *l1[7] = {"true: a", "b", "c", "d", "e", "f", "true: 0123456789"};
    const char *l2[7] = {"pred: b", "a", "a", "a", "a", "a", "pred: x"};
    cnn_canvas_t cv;
    assert_int_equal(cnn_plot_image_grid(img, 7, 3, 3, 3, l1, l2, "grid", &cv), CNN_OK);
    const int cw = cnn_plot_text_width("true: 0123456789"), ch = 3 * 8 + 2 * L;
    assert_int_equal(cv.w, 2 * M + 6 * cw + 5 * M);
    assert_int_equal(cv.h, 2 * M + T + 2 * ch + M);
    /* image 6 (second row, first cell) is centred in its cell and red 60 */
    const uint8_t *p = px(&cv, M + (cw - 24) / 2, M + T + ch + M);
    assert_int_equal(p[0], 60);
    assert_int_equal(p[1], 0);
    /* its second caption is red, the first dark gray */
    int red = 0, gray = 0;
    for (int y = M + T + ch + M + 24; y < M + T + 2 * ch + M; y++)
        for (int x = M; x < M + cw; x++) {
            const uint8_t *q = px(&cv, x, y);
            red += q[0] == 200 && q[1] == 30;
            gray += q[0] == 40 && q[1] == 40;
        }
    assert_true(red > 20 && gray > 20);
    cnn_canvas_free(&cv);
    /* no images: the title alone */
    assert_int_equal(cnn_plot_image_grid(NULL, 0, 0, 0, 0, NULL, NULL, "nothing", &cv), CNN_OK);
    assert_int_equal(cv.w, 2 * M + cnn_plot_text_width("nothing"));
    assert_int_equal(cv.h, 2 * M + T);
    cnn_canvas_free(&cv);
}

static char work[64];

static int make_work(void **state)
{
    snprintf(work, sizeof work, "/tmp/mpicnn-plot-unit-XXXXXX");
    return mkdtemp(work) ? 0 : -1;
}

static int remove_work(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_runner(void **state)
{
    char script[128], log[128];
    snprintf(script, sizeof script, "%s/fail.sh", work);
    snprintf(log, sizeof log, "%s/fail.log", work);
    assert_int_equal(cnn_gnuplot_found("/nonexistent/gnuplot"), 0);
    assert_int_equal(cnn_gnuplot_found("no-such-program-mpicnn"), 0);
    assert_int_equal(cnn_gnuplot_found("sh"), 1);
    cnn_status_t st = cnn_gnuplot_run("no-such-program-mpicnn", script, log);
    assert_int_equal(st, CNN_EUNAVAIL);
    assert_non_null(strstr(cnn_error_message(), "not found in PATH"));
    /* a failing program: its exit status and last output in the message */
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, "echo 'line 1: something is wrong' >&2\necho 'second line' >&2\nexit 3\n");
    fclose(f);
    st = cnn_gnuplot_run("/bin/sh", script, log);
    assert_int_equal(st, CNN_EIO);
    const char *m = cnn_error_message();
    if (!strstr(m, "exit status 3") || !strstr(m, "something is wrong | second line"))
        fail_msg("message: %s", m);
    f = fopen(script, "w");
    fprintf(f, "echo fine\n");
    fclose(f);
    assert_int_equal(cnn_gnuplot_run("/bin/sh", script, log), CNN_OK);
}

static void check_png(const char *path, int w, int h)
{
    cnn_image_t img;
    if (cnn_png_read(path, &img) != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_int_equal(img.w, w);
    assert_int_equal(img.h, h);
    assert_true(img.channels == 3 || img.channels == 4);
    cnn_image_free(&img);
}

static void test_charts(void **state)
{
    if (!cnn_gnuplot_found("gnuplot")) {
        printf("SKIP: gnuplot is not installed; the charts are not tested\n");
        skip();
    }
    char png[128];
    /* two epochs, no validation (NaN): the validation curves are left out */
    const double rows[2 * 8] = {1, 0.9, 0.5, NAN, NAN, 0.1, 1, 100,
                                2, 0.5, 0.7, NAN, NAN, 0.1, 1, 100};
    snprintf(png, sizeof png, "%s/curves.png", work);
    cnn_status_t st = cnn_plot_learning_curves("gnuplot", work, rows, 2, "it's a test", png);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    check_png(png, 960, 400);
    /* class names with a quote and an underscore (no enhanced text) */
    const long conf[9] = {5, 1, 0, 0, 7, 2, 1, 0, 9};
    const char *names[3] = {"it's", "snake_case", "x"};
    snprintf(png, sizeof png, "%s/confusion.png", work);
    st = cnn_plot_confusion("gnuplot", work, conf, 3, names, "confusion", png);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    check_png(png, cnn_plot_confusion_side(3), cnn_plot_confusion_side(3));
    assert_int_equal(cnn_plot_confusion_side(3), 480);
    assert_int_equal(cnn_plot_confusion_side(10), 720);
    /* the work files are gone: only the two pictures (and the runner's
     * files) are left */
    char path[128];
    snprintf(path, sizeof path, "%s/confusion.gp", work);
    assert_int_equal(access(path, F_OK), -1);
    /* a gnuplot error comes back with gnuplot's own message */
    char script[128], log[128];
    snprintf(script, sizeof script, "%s/bad.gp", work);
    snprintf(log, sizeof log, "%s/bad.log", work);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, "set terminal dumb\nplot no_such_function(x)\n");
    fclose(f);
    assert_int_equal(cnn_gnuplot_run("gnuplot", script, log), CNN_EIO);
    if (!strstr(cnn_error_message(), "undefined function"))
        fail_msg("message: %s", cnn_error_message());
}

/* ---- helper modes for test_plot.sh ------------------------------------- */

static int write_synth(const char *d)
{
    char text[4096], path[512];
    if (synth_write(d, "train", 160, 8, 4, 1) || synth_write(d, "test", 60, 8, 4, 2)) return 1;
    synth_config(text, sizeof text, d, 2, NULL, "threads = 1");
    snprintf(path, sizeof path, "%s/plot.ini", d);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs(text, f);
    return fclose(f) != 0;
}

static int png_info(const char *path)
{
    cnn_image_t img;
    if (cnn_png_read(path, &img) != CNN_OK) {
        printf("%s\n", cnn_error_message());
        return 1;
    }
    const size_t n = (size_t)img.w * (size_t)img.h, c = (size_t)img.channels;
    size_t differ = 0;
    for (size_t i = 1; i < n; i++) differ += memcmp(img.pixels + i * c, img.pixels, c) != 0;
    printf("%d %d %d\n", img.w, img.h, img.channels);
    cnn_image_free(&img);
    if (differ * 100 < n) {
        printf("%s is blank: only %zu of %zu pixels differ from the first\n", path, differ, n);
        return 1;
    }
    return 0;
}

static int idx_png(const char *images, const char *labels, long index, int scale,
                   const char *out, int channels)
{
    cnn_dataset_t *ds = NULL;
    if (cnn_idx_load(images, labels, &ds) != CNN_OK || index < 0 || (size_t)index >= ds->n ||
        scale < 1 || scale > 64) {
        fprintf(stderr, "%s\n", ds ? "bad INDEX or SCALE" : cnn_error_message());
        cnn_dataset_free(ds);
        return 1;
    }
    const int w = ds->w * scale, h = ds->h * scale;
    uint8_t *px = malloc((size_t)w * (size_t)h * (size_t)channels);
    const uint8_t *src = ds->images + (size_t)index * (size_t)ds->c * ds->h * ds->w;
    for (int y = 0; px && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < channels; k++)
                px[((size_t)y * w + x) * channels + k] = src[(y / scale) * ds->w + x / scale];
    const cnn_status_t st = px ? cnn_png_write(out, px, w, h, channels) : CNN_ENOMEM;
    if (st != CNN_OK) fprintf(stderr, "%s\n", cnn_error_message());
    else printf("%s: image %ld (class %d), %d x %d\n", out, index, ds->labels[index], w, h);
    free(px);
    cnn_dataset_free(ds);
    return st != CNN_OK;
}

int main(int argc, char **argv)
{
    if (argc == 7 && !strcmp(argv[1], "--idx-png"))
        return idx_png(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), argv[6], 1);
    if (argc == 7 && !strcmp(argv[1], "--idx-png-rgb"))
        return idx_png(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), argv[6], 3);
    if (argc == 3 && !strcmp(argv[1], "--synth")) return write_synth(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--png")) return png_info(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_font),
        cmocka_unit_test(test_filters_gray),
        cmocka_unit_test(test_filters_rgb_and_other),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_image_grid),
        cmocka_unit_test(test_runner),
        cmocka_unit_test(test_charts),
    };
    return cmocka_run_group_tests(tests, make_work, remove_work);
}
