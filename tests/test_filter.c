/* test_filter.c - PNG I/O and `mpicnn filter`.
 *
 * PNG: round trips of all four layouts, the conversions of the reader
 * (16-bit, palette, gray + alpha, low bit depths), and no crash but
 * CNN_EDATA for every truncation of a valid file.
 * Filters: every kernel on small non-square gray, RGB and RGBA images
 * through the library and through the program ($MPICNN), compared pixel
 * by pixel with a naive double reference written out plainly here (zero
 * padding, same size, rounding half up, clamping); big kernels that make
 * the tiling code cut the image; and the errors of the command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <png.h>

#include "mpicnn.h"
#include "mpicnn/filter.h"
#include "mpicnn/png.h"
#include "testutil.h"

static char dir[64];
static const char *prog;

static int setup(void **state)
{
    prog = getenv("MPICNN");
    if (!prog) prog = "src/mpicnn";
    cnn_blas_single_thread();
    snprintf(dir, sizeof dir, "/tmp/mpicnn-filter-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path(const char *name)
{
    static char buf[8][160];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Runs "mpicnn filter ARGS" in dir; returns the exit code, stderr in err. */
static int run(char *err, size_t errlen, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s filter %s 2>%s/stderr.txt >/dev/null", dir, prog,
             args, dir);
    int rc = system(cmd);
    FILE *f = fopen(path("stderr.txt"), "r");
    size_t got = f ? fread(err, 1, errlen - 1, f) : 0;
    err[got] = '\0';
    if (f) fclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static cnn_image_t random_image(int w, int h, int c, uint64_t seed)
{
    cnn_image_t img = {.w = w, .h = h, .channels = c};
    img.pixels = malloc((size_t)w * h * c);
    assert_non_null(img.pixels);
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        img.pixels[i] = (uint8_t)tu_uniform(&seed, 0, 256);
    /* a flat patch and a saturated one, so clamping is exercised */
    for (int r = 0; r < h / 2; r++)
        for (int q = 0; q < w / 3; q++)
            for (int k = 0; k < c; k++) img.pixels[((size_t)r * w + q) * c + k] = 255;
    return img;
}

static void write_png(const char *name, const cnn_image_t *img)
{
    cnn_status_t st = cnn_png_write(path(name), img->pixels, img->w, img->h, img->channels);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
}

static cnn_image_t read_png(const char *name)
{
    cnn_image_t img;
    if (cnn_png_read(path(name), &img) != CNN_OK) fail_msg("%s", cnn_error_message());
    return img;
}

/* ---- the naive reference ----------------------------------------------- */

typedef enum { K_BOX, K_SHARPEN, K_EDGE, K_SOBEL, K_CSV } kind_t;

/* x at (r, q) of channel ch, 0 outside */
static double px(const cnn_image_t *im, int r, int q, int ch)
{
    if (r < 0 || r >= im->h || q < 0 || q >= im->w) return 0.0;
    return im->pixels[((size_t)r * im->w + q) * im->channels + ch];
}

/* The filtered value before rounding. n: box size or CSV side. */
static double reference(const cnn_image_t *im, int r, int q, int ch, kind_t kind, int n,
                        const double *w)
{
    double s = 0.0;
    switch (kind) {
    case K_BOX:
        for (int a = -n / 2; a <= n / 2; a++)
            for (int b = -n / 2; b <= n / 2; b++) s += px(im, r + a, q + b, ch);
        return s / ((double)n * n);
    case K_SHARPEN:
        return 5 * px(im, r, q, ch) - px(im, r - 1, q, ch) - px(im, r + 1, q, ch) -
               px(im, r, q - 1, ch) - px(im, r, q + 1, ch);
    case K_EDGE:
        return fabs(px(im, r - 1, q, ch) + px(im, r + 1, q, ch) + px(im, r, q - 1, ch) +
                    px(im, r, q + 1, ch) - 4 * px(im, r, q, ch));
    case K_SOBEL: {
        double h = px(im, r, q + 1, ch) - px(im, r, q - 1, ch);
        double v = px(im, r + 1, q, ch) - px(im, r - 1, q, ch);
        return sqrt(h * h + v * v);
    }
    case K_CSV: /* cross-correlation, like the conv layer */
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
                s += w[a * n + b] * px(im, r + a - n / 2, q + b - n / 2, ch);
        return s;
    }
    return 0.0;
}

/* Compares every pixel of got with the reference. A difference of one is
 * allowed only where the reference is within 1e-3 of a rounding tie
 * (float vs double). Alpha must be copied. */
static void check(const char *what, const cnn_image_t *in, const cnn_image_t *got,
                  kind_t kind, int n, const double *w)
{
    assert_int_equal(got->w, in->w);
    assert_int_equal(got->h, in->h);
    assert_int_equal(got->channels, in->channels);
    const int colour = in->channels == 2 || in->channels == 4 ? in->channels - 1 : in->channels;
    int worst = 0;
    for (int r = 0; r < in->h; r++)
        for (int q = 0; q < in->w; q++)
            for (int ch = 0; ch < in->channels; ch++) {
                const size_t o = ((size_t)r * in->w + q) * in->channels + ch;
                if (ch == colour) {
                    if (got->pixels[o] != in->pixels[o])
                        fail_msg("%s: alpha at (%d,%d) changed", what, r, q);
                    continue;
                }
                const double v = reference(in, r, q, ch, kind, n, w);
                double want = floor(v + 0.5);
                want = want < 0 ? 0 : want > 255 ? 255 : want;
                const int d = abs((int)got->pixels[o] - (int)want);
                const int near_tie = fabs(v - floor(v) - 0.5) < 1e-3;
                if (d > 1 || (d == 1 && !near_tie))
                    fail_msg("%s: pixel (%d,%d) channel %d: got %d, want %g (exact %.6f)", what, r,
                             q, ch, got->pixels[o], want, v);
                if (d > worst) worst = d;
            }
    if (worst) print_message("  %s: largest difference %d at a rounding tie\n", what, worst);
}

/* Runs one kernel on one image through the library and the program. */
static void one(const char *spec, kind_t kind, int n, const double *w, const cnn_image_t *in)
{
    char what[256], err[1024];
    cnn_filter_t *f = NULL;
    cnn_image_t out;
    if (cnn_filter_create(spec, &f) != CNN_OK) fail_msg("%s: %s", spec, cnn_error_message());
    if (cnn_filter_apply(f, in, &out) != CNN_OK) fail_msg("%s: %s", spec, cnn_error_message());
    snprintf(what, sizeof what, "library %s on %dx%dx%d", spec, in->w, in->h, in->channels);
    check(what, in, &out, kind, n, w);
    cnn_image_free(&out);
    cnn_filter_free(f);

    write_png("in.png", in);
    unlink(path("out.png"));
    int rc = run(err, sizeof err, "in.png out.png --kernel %s", spec);
    if (rc != 0) fail_msg("mpicnn filter --kernel %s: exit %d: %s", spec, rc, err);
    out = read_png("out.png");
    snprintf(what, sizeof what, "mpicnn filter --kernel %s on %dx%dx%d", spec, in->w, in->h,
             in->channels);
    check(what, in, &out, kind, n, w);
    cnn_image_free(&out);
}

/* ---- PNG ---------------------------------------------------------------- */

static void test_png_roundtrip(void **state)
{
    for (int c = 1; c <= 4; c++) {
        cnn_image_t in = random_image(13, 9, c, 10 + c), out;
        write_png("rt.png", &in);
        out = read_png("rt.png");
        assert_int_equal(out.w, 13);
        assert_int_equal(out.h, 9);
        if (c == 2) { /* gray + alpha comes back as RGBA */
            assert_int_equal(out.channels, 4);
            for (size_t p = 0; p < 13 * 9; p++) {
                for (int k = 0; k < 3; k++) assert_int_equal(out.pixels[p * 4 + k], in.pixels[p * 2]);
                assert_int_equal(out.pixels[p * 4 + 3], in.pixels[p * 2 + 1]);
            }
        } else {
            assert_int_equal(out.channels, c);
            assert_memory_equal(out.pixels, in.pixels, (size_t)13 * 9 * c);
        }
        cnn_image_free(&in);
        cnn_image_free(&out);
    }
    /* the file is replaced atomically: no temporary file (.NAME.tmp.HOST.PID)
     * is left */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A %s | grep -q '\\.tmp\\.'", dir);
    assert_int_not_equal(system(cmd), 0);
    /* bad arguments */
    uint8_t px1 = 0;
    assert_int_equal(cnn_png_write(path("x.png"), &px1, 0, 1, 1), CNN_EUSAGE);
    assert_int_equal(cnn_png_write(path("x.png"), &px1, 1, 1, 5), CNN_EUSAGE);
    cnn_image_free(NULL);
}

/* Writes a PNG with libpng directly, in layouts cnn_png_write does not
 * make: rows of `depth`-bit samples of color type `type`. */
static void raw_png(const char *name, int w, int h, int depth, int type, png_bytep *rows,
                    const png_color *pal, int npal, const png_byte *trns, int ntrns)
{
    FILE *f = fopen(path(name), "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed writing %s", name);
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_png_conversions(void **state)
{
    enum { W = 5, H = 3 };
    png_byte data[H][W * 8];
    png_bytep rows[H];
    for (int r = 0; r < H; r++) rows[r] = data[r];
    cnn_image_t img;

    /* 16-bit gray: v * 257 scales back to v exactly */
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W; q++) {
            const int v = 17 * (r * W + q), v16 = v * 257;
            data[r][2 * q] = (png_byte)(v16 >> 8);
            data[r][2 * q + 1] = (png_byte)(v16 & 255);
        }
    raw_png("g16.png", W, H, 16, PNG_COLOR_TYPE_GRAY, rows, NULL, 0, NULL, 0);
    img = read_png("g16.png");
    assert_int_equal(img.channels, 1);
    for (int i = 0; i < W * H; i++) assert_int_equal(img.pixels[i], 17 * i);
    cnn_image_free(&img);

    /* 16-bit RGBA */
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W * 4; q++) data[r][2 * q] = data[r][2 * q + 1] = (png_byte)(r * 40 + q);
    raw_png("rgba16.png", W, H, 16, PNG_COLOR_TYPE_RGB_ALPHA, rows, NULL, 0, NULL, 0);
    img = read_png("rgba16.png");
    assert_int_equal(img.channels, 4);
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W * 4; q++) assert_int_equal(img.pixels[r * W * 4 + q], r * 40 + q);
    cnn_image_free(&img);

    /* palette (4-bit indices) -> RGB; with tRNS -> RGBA */
    const png_color pal[3] = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
    const png_byte trns[3] = {255, 128, 0};
    for (int r = 0; r < H; r++) {
        memset(data[r], 0, sizeof data[r]);
        for (int q = 0; q < W; q++) data[r][q / 2] |= (png_byte)(((r + q) % 3) << (q % 2 ? 0 : 4));
    }
    raw_png("pal.png", W, H, 4, PNG_COLOR_TYPE_PALETTE, rows, pal, 3, NULL, 0);
    img = read_png("pal.png");
    assert_int_equal(img.channels, 3);
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W; q++) {
            const png_color *c = &pal[(r + q) % 3];
            const uint8_t *p = img.pixels + (r * W + q) * 3;
            assert_true(p[0] == c->red && p[1] == c->green && p[2] == c->blue);
        }
    cnn_image_free(&img);
    raw_png("palt.png", W, H, 4, PNG_COLOR_TYPE_PALETTE, rows, pal, 3, trns, 3);
    img = read_png("palt.png");
    assert_int_equal(img.channels, 4);
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W; q++) assert_int_equal(img.pixels[(r * W + q) * 4 + 3], trns[(r + q) % 3]);
    cnn_image_free(&img);

    /* 1-bit gray -> 0 / 255 */
    for (int r = 0; r < H; r++) data[r][0] = (png_byte)(r % 2 ? 0xA8 : 0x50); /* 10101 / 01010 */
    raw_png("g1.png", W, H, 1, PNG_COLOR_TYPE_GRAY, rows, NULL, 0, NULL, 0);
    img = read_png("g1.png");
    assert_int_equal(img.channels, 1);
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W; q++)
            assert_int_equal(img.pixels[r * W + q], ((q + (r % 2 ? 0 : 1)) % 2) ? 0 : 255);
    cnn_image_free(&img);

    /* 8-bit gray + alpha -> RGBA */
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W; q++) {
            data[r][2 * q] = (png_byte)(q * 50);
            data[r][2 * q + 1] = (png_byte)(r * 100);
        }
    raw_png("ga.png", W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, rows, NULL, 0, NULL, 0);
    img = read_png("ga.png");
    assert_int_equal(img.channels, 4);
    for (int r = 0; r < H; r++)
        for (int q = 0; q < W; q++) {
            const uint8_t *p = img.pixels + (r * W + q) * 4;
            assert_true(p[0] == q * 50 && p[1] == q * 50 && p[2] == q * 50 && p[3] == r * 100);
        }
    cnn_image_free(&img);
}

static void test_png_bad(void **state)
{
    cnn_image_t in = random_image(13, 9, 3, 5), img;
    write_png("good.png", &in);
    cnn_image_free(&in);
    FILE *f = fopen(path("good.png"), "rb");
    assert_non_null(f);
    static unsigned char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(len > 60 && len < sizeof buf);

    /* every truncation fails cleanly, naming the file */
    for (size_t cut = 0; cut < len; cut += (cut < 80 ? 1 : 7)) {
        f = fopen(path("cut.png"), "wb");
        fwrite(buf, 1, cut, f);
        fclose(f);
        memset(&img, 0x55, sizeof img);
        assert_int_equal(cnn_png_read(path("cut.png"), &img), CNN_EDATA);
        assert_null(img.pixels);
        if (!strstr(cnn_error_message(), "cut.png")) fail_msg("cut %zu: %s", cut, cnn_error_message());
    }
    /* a flipped byte in the image data: CRC error */
    buf[len - 20] ^= 0x40;
    f = fopen(path("crc.png"), "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    assert_int_equal(cnn_png_read(path("crc.png"), &img), CNN_EDATA);
    assert_non_null(strstr(cnn_error_message(), "crc.png"));
    /* not a PNG, missing */
    f = fopen(path("text.png"), "w");
    fputs("this is not an image, just text long enough\n", f);
    fclose(f);
    assert_int_equal(cnn_png_read(path("text.png"), &img), CNN_EDATA);
    assert_non_null(strstr(cnn_error_message(), "not a PNG"));
    assert_int_equal(cnn_png_read(path("none.png"), &img), CNN_EDATA);
    assert_non_null(strstr(cnn_error_message(), "none.png"));
    /* unwritable: a missing directory */
    uint8_t p = 7;
    assert_int_equal(cnn_png_write(path("no/such/dir.png"), &p, 1, 1, 1), CNN_EIO);
    assert_non_null(strstr(cnn_error_message(), "dir.png"));
}

/* ---- filters -------------------------------------------------------------- */

static void test_builtin_kernels(void **state)
{
    cnn_image_t imgs[3] = {random_image(13, 9, 1, 1), random_image(13, 9, 3, 2),
                           random_image(7, 11, 4, 3)};
    for (int i = 0; i < 3; i++) {
        one("box", K_BOX, 3, NULL, &imgs[i]);
        one("box:5", K_BOX, 5, NULL, &imgs[i]);
        one("box:1", K_BOX, 1, NULL, &imgs[i]);
        one("sharpen", K_SHARPEN, 0, NULL, &imgs[i]);
        one("edge", K_EDGE, 0, NULL, &imgs[i]);
        one("sobel", K_SOBEL, 0, NULL, &imgs[i]);
        cnn_image_free(&imgs[i]);
    }
}

/* Kernels larger than the image, and sizes that make several tiles (the
 * column buffer of one tile is at most 2^20 floats, or one row). */
static void test_big_kernels(void **state)
{
    cnn_image_t small = random_image(13, 9, 1, 4), big = random_image(40, 30, 3, 5),
                wide = random_image(120, 5, 1, 6);
    one("box:15", K_BOX, 15, NULL, &small);
    one("box:99", K_BOX, 99, NULL, &small); /* 99^2 x 13 floats a row: 2 x 1 tiles */
    one("box:31", K_BOX, 31, NULL, &big);   /* 31^2 x 40 floats a row: 2 x 1 tiles */
    one("box:99", K_BOX, 99, NULL, &wide);  /* 106 columns a tile: 5 x 2 tiles */
    cnn_image_free(&small);
    cnn_image_free(&big);
    cnn_image_free(&wide);
}

/* An asymmetric CSV kernel: applied as cross-correlation (not flipped).
 * Weights are multiples of 1/8, so float sums are exact. */
static void test_csv_kernel(void **state)
{
    double w3[9], w5[25];
    uint64_t seed = 99;
    for (int i = 0; i < 9; i++) w3[i] = floor(tu_uniform(&seed, -8, 8)) / 8;
    for (int i = 0; i < 25; i++) w5[i] = floor(tu_uniform(&seed, -4, 6)) / 8 / 5;
    w3[0] = 1.0; /* certainly asymmetric */
    w3[8] = -0.5;
    FILE *f = fopen(path("k3.csv"), "w");
    for (int r = 0; r < 3; r++) fprintf(f, "%g,%g,%g\n", w3[3 * r], w3[3 * r + 1], w3[3 * r + 2]);
    fclose(f);
    f = fopen(path("k5.txt"), "w");
    for (int i = 0; i < 25; i++) fprintf(f, "%.17g%s", w5[i], i % 5 == 4 ? "\n" : " ");
    fclose(f);
    cnn_image_t g = random_image(13, 9, 1, 6), c = random_image(9, 13, 3, 7);
    char spec[200];
    snprintf(spec, sizeof spec, "%s", path("k3.csv"));
    one(spec, K_CSV, 3, w3, &g);
    one(spec, K_CSV, 3, w3, &c);
    snprintf(spec, sizeof spec, "%s", path("k5.txt"));
    one(spec, K_CSV, 5, w5, &c);
    cnn_image_free(&g);
    cnn_image_free(&c);
}

static void test_errors(void **state)
{
    char err[2048];
    cnn_image_t in = random_image(13, 9, 1, 8);
    write_png("in.png", &in);
    cnn_image_free(&in);

    /* not a PNG */
    FILE *f = fopen(path("notpng.png"), "w");
    fputs("hello, I am text\n", f);
    fclose(f);
    assert_int_equal(run(err, sizeof err, "notpng.png out.png --kernel box"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "notpng.png"));
    /* truncated PNG */
    f = fopen(path("in.png"), "rb");
    static unsigned char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(path("trunc.png"), "wb");
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    assert_int_equal(run(err, sizeof err, "trunc.png out.png --kernel edge"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "trunc.png"));
    assert_non_null(strstr(err, "truncated"));
    /* missing input */
    assert_int_equal(run(err, sizeof err, "missing.png out.png --kernel edge"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "missing.png"));
    /* bad kernel name, bad box sizes, no kernel */
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel blur"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--kernel"));
    assert_non_null(strstr(err, "blur"));
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel box:4"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--kernel"));
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel box:101"), CNN_EXIT_USAGE);
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel box:x"), CNN_EXIT_USAGE);
    assert_int_equal(run(err, sizeof err, "in.png out.png"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--kernel"));
    assert_int_equal(run(err, sizeof err, "in.png --kernel box"), CNN_EXIT_USAGE);
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel box --bogus 1"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--bogus"));
    /* CSV kernels: 8 values, missing file, not a number */
    f = fopen(path("k8.csv"), "w");
    fputs("1,2,3\n4,5,6\n7,8\n", f);
    fclose(f);
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel k8.csv"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "k8.csv"));
    assert_non_null(strstr(err, "8 values"));
    f = fopen(path("k4.csv"), "w");
    fputs("1 2\n3 4\n", f);
    fclose(f);
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel k4.csv"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "k4.csv"));
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel nope.csv"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "nope.csv"));
    f = fopen(path("kx.csv"), "w");
    fputs("1 2 3\n4 x 6\n7 8 9\n", f);
    fclose(f);
    assert_int_equal(run(err, sizeof err, "in.png out.png --kernel kx.csv"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "kx.csv"));
    /* output that cannot be written */
    assert_int_equal(run(err, sizeof err, "in.png no/such/out.png --kernel box"), CNN_EXIT_IO);
    assert_non_null(strstr(err, "out.png"));
    /* --help */
    assert_int_equal(run(err, sizeof err, "--help"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_roundtrip),  cmocka_unit_test(test_png_conversions),
        cmocka_unit_test(test_png_bad),        cmocka_unit_test(test_builtin_kernels),
        cmocka_unit_test(test_big_kernels),    cmocka_unit_test(test_csv_kernel),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
