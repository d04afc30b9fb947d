/* test_data.c - the IDX and CIFAR loaders and the data set operations.
 *
 * Every test gets a fresh mkdtemp() directory (fixture), writes small
 * files in the format under test, and checks every pixel and label of
 * what comes back. Each bad input must give CNN_EDATA (or CNN_ECONFIG for
 * bad arguments) with a message naming the file, and never crash. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "mpicnn/data.h"

typedef struct {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/mpicnn_test_data.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    DIR *d = opendir(fx->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", fx->dir, e->d_name);
            if (remove(p) != 0) rmdir(p);
        }
        closedir(d);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static void mkpath(const fixture_t *fx, const char *name, char *out)
{
    snprintf(out, 256, "%s/%s", fx->dir, name);
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *buf, size_t len)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (len) assert_int_equal(gzwrite(g, buf, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *len = (size_t)sz;
    return b;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint8_t pix_idx(size_t i, int y, int x)
{
    return (uint8_t)(i * 31 + (size_t)y * 7 + (size_t)x * 3 + 1);
}

static int32_t lab_idx(size_t i) { return (int32_t)((i * 5 + 1) % 3); }

/* An IDX images file image (header + body), *len set. */
static uint8_t *idx_images(uint32_t n, uint32_t h, uint32_t w, size_t *len)
{
    *len = 16 + (size_t)n * h * w;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    put_be32(b, 0x00000803u);
    put_be32(b + 4, n);
    put_be32(b + 8, h);
    put_be32(b + 12, w);
    uint8_t *p = b + 16;
    for (size_t i = 0; i < n; i++)
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) *p++ = pix_idx(i, (int)y, (int)x);
    return b;
}

static uint8_t *idx_labels(uint32_t n, size_t *len)
{
    *len = 8 + (size_t)n;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    put_be32(b, 0x00000801u);
    put_be32(b + 4, n);
    for (size_t i = 0; i < n; i++) b[8 + i] = (uint8_t)lab_idx(i);
    return b;
}

/* Writes a valid pair (n images of h x w), raw or gzip each. */
static void write_idx_pair(const char *ip, const char *lp, uint32_t n, uint32_t h,
                           uint32_t w, int gz_images, int gz_labels)
{
    size_t li, ll;
    uint8_t *bi = idx_images(n, h, w, &li), *bl = idx_labels(n, &ll);
    if (gz_images) write_gz(ip, bi, li);
    else write_file(ip, bi, li);
    if (gz_labels) write_gz(lp, bl, ll);
    else write_file(lp, bl, ll);
    free(bi);
    free(bl);
}

static void check_idx_ds(const cnn_dataset_t *ds, size_t n, int h, int w)
{
    assert_non_null(ds);
    assert_int_equal(ds->n, n);
    assert_int_equal(ds->c, 1);
    assert_int_equal(ds->h, h);
    assert_int_equal(ds->w, w);
    int32_t maxl = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ds->labels[i], lab_idx(i));
        if (lab_idx(i) > maxl) maxl = lab_idx(i);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                assert_int_equal(ds->images[(i * (size_t)h + (size_t)y) * (size_t)w + (size_t)x],
                                 pix_idx(i, y, x));
    }
    assert_int_equal(ds->nclasses, maxl + 1);
    for (int c = 0; c < ds->nclasses; c++) {
        char want[12];
        snprintf(want, sizeof want, "%d", c);
        assert_string_equal(ds->class_names[c], want);
    }
}

/* The status must be `want` and the message must name `path`. */
static void expect_error(cnn_status_t st, cnn_status_t want, const char *path)
{
    const char *msg = cnn_error_message();
    if (getenv("MPICNN_TEST_VERBOSE")) print_message("  error: %s\n", msg);
    if (st != want)
        fail_msg("status %d (%s), expected %d; message: %s", (int)st,
                 cnn_status_name(st), (int)want, msg);
    if (path && !strstr(msg, path))
        fail_msg("message \"%s\" does not name %s", msg, path);
}

/* Loads the pair expecting CNN_EDATA that names `bad`; optionally a
 * substring the message must contain. */
static void expect_idx_fail(const char *ip, const char *lp, const char *bad,
                            const char *needle)
{
    cnn_dataset_t *ds = (cnn_dataset_t *)(uintptr_t)1;
    cnn_error_clear();
    cnn_status_t st = cnn_idx_load(ip, lp, &ds);
    expect_error(st, CNN_EDATA, bad);
    assert_null(ds);
    if (needle && !strstr(cnn_error_message(), needle))
        fail_msg("message \"%s\" lacks \"%s\"", cnn_error_message(), needle);
}

/* ---- IDX: good files ---------------------------------------------------- */

static void test_idx_raw(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images.idx", ip);
    mkpath(*state, "labels.idx", lp);
    write_idx_pair(ip, lp, 5, 4, 3, 0, 0);
    cnn_dataset_t *ds = NULL;
    assert_int_equal(cnn_idx_load(ip, lp, &ds), CNN_OK);
    check_idx_ds(ds, 5, 4, 3);
    cnn_dataset_free(ds);
}

static void test_idx_gz(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images.idx.gz", ip);
    mkpath(*state, "labels.idx.gz", lp);
    write_idx_pair(ip, lp, 7, 28, 28, 1, 1);
    cnn_dataset_t *ds = NULL;
    assert_int_equal(cnn_idx_load(ip, lp, &ds), CNN_OK);
    check_idx_ds(ds, 7, 28, 28);
    cnn_dataset_free(ds);
}

/* gzip is told by its magic bytes, never by the name */
static void test_idx_magic_not_name(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images-still-gzipped.idx", ip);
    mkpath(*state, "labels-raw.gz", lp);
    write_idx_pair(ip, lp, 6, 5, 2, 1, 0);
    cnn_dataset_t *ds = NULL;
    assert_int_equal(cnn_idx_load(ip, lp, &ds), CNN_OK);
    check_idx_ds(ds, 6, 5, 2);
    cnn_dataset_free(ds);
}

static void test_idx_named(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "i", ip);
    mkpath(*state, "l", lp);
    write_idx_pair(ip, lp, 9, 2, 2, 0, 1);
    int k = 0;
    const char *const *names = cnn_class_names("fashion-mnist", &k);
    cnn_dataset_t *ds = NULL;
    assert_int_equal(cnn_idx_load_named(ip, lp, names, k, &ds), CNN_OK);
    assert_int_equal(ds->nclasses, 10);
    assert_string_equal(ds->class_names[0], "T-shirt/top");
    assert_string_equal(ds->class_names[9], "Ankle boot");
    for (size_t i = 0; i < 9; i++) assert_int_equal(ds->labels[i], lab_idx(i));
    cnn_dataset_free(ds);

    /* labels go up to 2: two names are too few, and the labels file is named */
    ds = (cnn_dataset_t *)(uintptr_t)1;
    cnn_status_t st = cnn_idx_load_named(ip, lp, names, 2, &ds);
    expect_error(st, CNN_EDATA, lp);
    assert_non_null(strstr(cnn_error_message(), "out of range"));
    assert_null(ds);

    assert_int_equal(cnn_idx_load_named(ip, lp, NULL, 3, &ds), CNN_ECONFIG);
    assert_null(ds);
}

/* ---- IDX: bad files ----------------------------------------------------- */

static void test_idx_bad_magic(void **state)
{
    char ip[256], lp[256], tp[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    mkpath(*state, "text.gz", tp);
    write_idx_pair(ip, lp, 3, 2, 2, 0, 0);
    const char text[] = "this is not an IDX file at all\n";
    write_file(tp, text, sizeof text - 1);
    expect_idx_fail(tp, lp, tp, "not an IDX file (magic 0x74686973");
    expect_idx_fail(ip, tp, tp, "not an IDX file");

    /* a gzip file that inflates to something that is not IDX */
    mkpath(*state, "text2", tp);
    write_gz(tp, text, sizeof text - 1);
    expect_idx_fail(tp, lp, tp, "not an IDX file");
}

static void test_idx_bad_type(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    size_t li, ll;
    uint8_t *bi = idx_images(3, 2, 2, &li), *bl = idx_labels(3, &ll);
    write_file(lp, bl, ll);
    bi[2] = 0x0D; /* float */
    write_file(ip, bi, li);
    expect_idx_fail(ip, lp, ip, "type 0x0d");
    bi[2] = 0x08;
    write_file(ip, bi, li);
    bl[2] = 0x0C; /* int32 labels */
    write_file(lp, bl, ll);
    expect_idx_fail(ip, lp, lp, "type 0x0c");
    free(bi);
    free(bl);
}

static void test_idx_wrong_ndims(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    write_idx_pair(ip, lp, 3, 2, 2, 0, 0);
    expect_idx_fail(lp, ip, lp, "dimension"); /* swapped */
    expect_idx_fail(ip, ip, ip, "dimension");
}

static void write_header(const char *path, uint32_t n, uint32_t h, uint32_t w,
                         int gz)
{
    uint8_t b[16];
    put_be32(b, 0x00000803u);
    put_be32(b + 4, n);
    put_be32(b + 8, h);
    put_be32(b + 12, w);
    if (gz) write_gz(path, b, sizeof b);
    else write_file(path, b, sizeof b);
}

static void test_idx_huge_dims(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    write_idx_pair(ip, lp, 3, 2, 2, 0, 0);
    for (int gz = 0; gz <= 1; gz++) {
        write_header(ip, 0xFFFFFFFFu, 28, 28, gz);
        expect_idx_fail(ip, lp, ip, "limit");
        write_header(ip, 3, 0xFFFFFFFFu, 0xFFFFFFFFu, gz);
        expect_idx_fail(ip, lp, ip, "limit");
        write_header(ip, 3, 4097, 4096, gz);
        expect_idx_fail(ip, lp, ip, "limit");
        write_header(ip, 3, 0xFFFFFFFFu, 1, gz);
        expect_idx_fail(ip, lp, ip, "limit");
        write_header(ip, 0, 28, 28, gz);
        expect_idx_fail(ip, lp, ip, "> 0");
        write_header(ip, 3, 28, 0, gz);
        expect_idx_fail(ip, lp, ip, "> 0");
        /* within the limits, but the body is missing: no 80 GB allocation */
        write_header(ip, 3, 4096, 4096, gz);
        expect_idx_fail(ip, lp, ip, "truncated");
    }
    /* a labels stream that claims the maximum count but ends at once: the
     * gzip path only grows its buffer with the data actually read */
    uint8_t b[8];
    put_be32(b, 0x00000801u);
    put_be32(b + 4, CNN_IDX_MAX_IMAGES);
    write_gz(lp, b, sizeof b);
    write_header(ip, CNN_IDX_MAX_IMAGES, 28, 28, 1);
    expect_idx_fail(ip, lp, lp, "truncated");
    put_be32(b + 4, 0xFFFFFFFFu);
    write_file(lp, b, sizeof b);
    write_header(ip, 3, 2, 2, 0);
    expect_idx_fail(ip, lp, lp, "labels");
}

static void test_idx_truncated(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    size_t li, ll;
    uint8_t *bi = idx_images(4, 3, 3, &li), *bl = idx_labels(4, &ll);
    write_file(lp, bl, ll);
    for (size_t len = 0; len < li; len++) {
        write_file(ip, bi, len);
        expect_idx_fail(ip, lp, ip, NULL);
    }
    write_file(ip, bi, li);
    for (size_t len = 0; len < ll; len++) {
        write_file(lp, bl, len);
        expect_idx_fail(ip, lp, lp, NULL);
    }
    /* the same through gzip: complete streams with a short body */
    for (size_t len = 0; len < li; len++) {
        write_gz(ip, bi, len);
        write_file(lp, bl, ll);
        expect_idx_fail(ip, lp, ip, NULL);
    }
    free(bi);
    free(bl);
}

static void test_idx_trailing(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    size_t li, ll;
    uint8_t *bi = idx_images(4, 3, 3, &li), *bl = idx_labels(4, &ll);
    uint8_t *xi = calloc(li + 3, 1), *xl = calloc(ll + 1, 1);
    assert_non_null(xi);
    assert_non_null(xl);
    memcpy(xi, bi, li);
    memcpy(xl, bl, ll);
    write_file(lp, bl, ll);
    write_file(ip, xi, li + 3);
    expect_idx_fail(ip, lp, ip, "trailing");
    write_gz(ip, xi, li + 1);
    expect_idx_fail(ip, lp, ip, "trailing");
    write_file(ip, bi, li);
    write_file(lp, xl, ll + 1);
    expect_idx_fail(ip, lp, lp, "trailing");
    write_gz(lp, xl, ll + 1);
    expect_idx_fail(ip, lp, lp, "trailing");
    free(bi);
    free(bl);
    free(xi);
    free(xl);
}

static void test_idx_count_mismatch(void **state)
{
    char ip[256], lp[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    size_t li, ll;
    uint8_t *bi = idx_images(4, 3, 3, &li), *bl = idx_labels(5, &ll);
    write_file(ip, bi, li);
    write_file(lp, bl, ll);
    expect_idx_fail(ip, lp, lp, "4 images");
    write_gz(lp, bl, ll);
    expect_idx_fail(ip, lp, ip, NULL);
    free(bi);
    free(bl);
}

static void test_idx_gz_truncated(void **state)
{
    char ip[256], lp[256], tp[256];
    mkpath(*state, "images.gz", ip);
    mkpath(*state, "labels", lp);
    mkpath(*state, "cut.gz", tp);
    write_idx_pair(ip, lp, 40, 28, 28, 1, 0);
    size_t len;
    uint8_t *gz = read_all(ip, &len);
    assert_true(len > 20);
    for (size_t cut = 0; cut < len; cut++) {
        write_file(tp, gz, cut);
        expect_idx_fail(tp, lp, tp, NULL);
    }
    /* corrupt deflate data or checksum */
    for (size_t at = 12; at < len; at += 7) {
        uint8_t *c = malloc(len);
        assert_non_null(c);
        memcpy(c, gz, len);
        c[at] ^= 0x5a;
        write_file(tp, c, len);
        expect_idx_fail(tp, lp, tp, NULL);
        free(c);
    }
    free(gz);
}

static void test_idx_missing(void **state)
{
    char ip[256], lp[256], np[256];
    mkpath(*state, "images", ip);
    mkpath(*state, "labels", lp);
    mkpath(*state, "no-such-file", np);
    write_idx_pair(ip, lp, 3, 2, 2, 0, 0);
    expect_idx_fail(np, lp, np, "cannot open");
    expect_idx_fail(ip, np, np, "cannot open");
    fixture_t *fx = *state;
    expect_idx_fail(fx->dir, lp, fx->dir, "directory");
}

/* ---- CIFAR ---------------------------------------------------------------- */

#define REC_PIX 3072

static uint8_t pix_cifar(size_t i, size_t k) { return (uint8_t)(i * 13 + k * 7 + k / 1024); }

/* Writes records [first, first+n) of a synthetic CIFAR set. Labels:
 * CIFAR-10 i%10; CIFAR-100 coarse (3i)%20, fine (17i)%100. */
static void write_cifar(const char *path, int variant, size_t first, size_t n)
{
    size_t nl = variant == 10 ? 1 : 2, rec = nl + REC_PIX;
    uint8_t *b = malloc(n * rec);
    assert_non_null(b);
    for (size_t r = 0; r < n; r++) {
        size_t i = first + r;
        uint8_t *p = b + r * rec;
        if (variant == 10) p[0] = (uint8_t)(i % 10);
        else {
            p[0] = (uint8_t)((3 * i) % 20);
            p[1] = (uint8_t)((17 * i) % 100);
        }
        for (size_t k = 0; k < REC_PIX; k++) p[nl + k] = pix_cifar(i, k);
    }
    write_file(path, b, n * rec);
    free(b);
}

static void check_cifar_pixels(const cnn_dataset_t *ds, size_t n)
{
    assert_int_equal(ds->n, n);
    assert_int_equal(ds->c, 3);
    assert_int_equal(ds->h, 32);
    assert_int_equal(ds->w, 32);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < REC_PIX; k++)
            if (ds->images[i * REC_PIX + k] != pix_cifar(i, k))
                fail_msg("image %zu byte %zu: %d, expected %d", i, k,
                         ds->images[i * REC_PIX + k], pix_cifar(i, k));
}

static void test_cifar10(void **state)
{
    char a[256], b[256];
    mkpath(*state, "data_batch_1.bin", a);
    mkpath(*state, "data_batch_2.bin", b);
    write_cifar(a, 10, 0, 3);
    write_cifar(b, 10, 3, 12);
    const char *paths[] = {a, b};
    cnn_dataset_t *ds = NULL;
    assert_int_equal(cnn_cifar_load(paths, 2, 10, 0, &ds), CNN_OK);
    check_cifar_pixels(ds, 15);
    for (size_t i = 0; i < 15; i++) assert_int_equal(ds->labels[i], (int)(i % 10));
    assert_int_equal(ds->nclasses, 10);
    assert_string_equal(ds->class_names[0], "airplane");
    assert_string_equal(ds->class_names[9], "truck");
    cnn_dataset_free(ds);
}

static void test_cifar100(void **state)
{
    char a[256];
    mkpath(*state, "train.bin", a);
    write_cifar(a, 100, 0, 7);
    const char *paths[] = {a};
    cnn_dataset_t *ds = NULL;
    assert_int_equal(cnn_cifar_load(paths, 1, 100, 1, &ds), CNN_OK);
    check_cifar_pixels(ds, 7);
    for (size_t i = 0; i < 7; i++) assert_int_equal(ds->labels[i], (int)((3 * i) % 20));
    assert_int_equal(ds->nclasses, 20);
    assert_string_equal(ds->class_names[0], "aquatic_mammals");
    cnn_dataset_free(ds);
    assert_int_equal(cnn_cifar_load(paths, 1, 100, 0, &ds), CNN_OK);
    check_cifar_pixels(ds, 7);
    for (size_t i = 0; i < 7; i++) assert_int_equal(ds->labels[i], (int)((17 * i) % 100));
    assert_int_equal(ds->nclasses, 100);
    assert_string_equal(ds->class_names[17], "castle");
    cnn_dataset_free(ds);
}

static void expect_cifar_fail(const char *const *paths, int np, int variant,
                              const char *bad, const char *needle)
{
    cnn_dataset_t *ds = (cnn_dataset_t *)(uintptr_t)1;
    cnn_error_clear();
    expect_error(cnn_cifar_load(paths, np, variant, 0, &ds), CNN_EDATA, bad);
    assert_null(ds);
    if (needle && !strstr(cnn_error_message(), needle))
        fail_msg("message \"%s\" lacks \"%s\"", cnn_error_message(), needle);
}

static void test_cifar_bad_size(void **state)
{
    char a[256], b[256];
    mkpath(*state, "good.bin", a);
    mkpath(*state, "bad.bin", b);
    write_cifar(a, 10, 0, 2);
    size_t len;
    uint8_t *buf = read_all(a, &len);
    write_file(b, buf, len - 5);
    const char *paths[] = {a, b};
    expect_cifar_fail(paths, 2, 10, b, "3073");
    expect_cifar_fail(paths, 2, 10, b, "6141");
    /* a CIFAR-10 file read as CIFAR-100: 6146 is not a multiple of 3074 */
    expect_cifar_fail(paths, 1, 100, a, "3074");
    write_file(b, buf, 0);
    expect_cifar_fail(paths, 2, 10, b, "empty");
    free(buf);
}

static void test_cifar_bad_label(void **state)
{
    char a[256], b[256];
    mkpath(*state, "good.bin", a);
    mkpath(*state, "bad.bin", b);
    write_cifar(a, 10, 0, 2);
    write_cifar(b, 10, 0, 3);
    size_t len;
    uint8_t *buf = read_all(b, &len);
    buf[1 * 3073] = 10;
    write_file(b, buf, len);
    const char *paths[] = {a, b};
    expect_cifar_fail(paths, 2, 10, b, "record 1");
    free(buf);

    write_cifar(b, 100, 0, 3);
    buf = read_all(b, &len);
    buf[2 * 3074] = 20; /* coarse */
    write_file(b, buf, len);
    expect_cifar_fail(paths + 1, 1, 100, b, "record 2: coarse label 20");
    buf[2 * 3074] = 0;
    buf[0 * 3074 + 1] = 100; /* fine */
    write_file(b, buf, len);
    expect_cifar_fail(paths + 1, 1, 100, b, "record 0: fine label 100");
    free(buf);
}

static void test_cifar_missing(void **state)
{
    char a[256], b[256];
    mkpath(*state, "good.bin", a);
    mkpath(*state, "missing.bin", b);
    write_cifar(a, 10, 0, 1);
    const char *paths[] = {a, b};
    expect_cifar_fail(paths, 2, 10, b, "cannot open");
    fixture_t *fx = *state;
    const char *dirs[] = {fx->dir};
    expect_cifar_fail(dirs, 1, 10, fx->dir, NULL);

    cnn_dataset_t *ds = (cnn_dataset_t *)(uintptr_t)1;
    assert_int_equal(cnn_cifar_load(paths, 1, 11, 0, &ds), CNN_ECONFIG);
    assert_null(ds);
    assert_int_equal(cnn_cifar_load(paths, 0, 10, 0, &ds), CNN_ECONFIG);
    assert_null(ds);
}

/* ---- class names -------------------------------------------------------- */

static void test_class_names(void **state)
{
    (void)state;
    int n = -1;
    const char *const *t = cnn_class_names("cifar100-fine", &n);
    assert_non_null(t);
    assert_int_equal(n, 100);
    assert_string_equal(t[0], "apple");
    assert_string_equal(t[99], "worm");
    for (int i = 1; i < n; i++)
        if (strcmp(t[i - 1], t[i]) >= 0)
            fail_msg("cifar100-fine not in alphabetical order at %d: %s, %s", i,
                     t[i - 1], t[i]);
    t = cnn_class_names("cifar100-coarse", &n);
    assert_int_equal(n, 20);
    assert_string_equal(t[0], "aquatic_mammals");
    assert_string_equal(t[1], "fish");
    assert_string_equal(t[2], "flowers");
    assert_string_equal(t[19], "vehicles_2");
    for (int i = 1; i < n; i++) assert_true(strcmp(t[i - 1], t[i]) < 0);
    t = cnn_class_names("cifar10", &n);
    assert_int_equal(n, 10);
    assert_string_equal(t[2], "bird");
    t = cnn_class_names("mnist", &n);
    assert_int_equal(n, 10);
    assert_string_equal(t[7], "7");
    t = cnn_class_names("fashion-mnist", &n);
    assert_int_equal(n, 10);
    assert_string_equal(t[1], "Trouser");
    n = 42;
    assert_null(cnn_class_names("imagenet", &n));
    assert_int_equal(n, 42);
    assert_null(cnn_class_names(NULL, &n));
}

/* ---- in-memory data sets ------------------------------------------------ */

/* n images of (c,h,w); pixel 0 of image i is i (a tag), the rest a pattern;
 * labels i % 10 with the CIFAR-10 names. */
static cnn_dataset_t *make_ds(size_t n, int c, int h, int w)
{
    cnn_dataset_t *ds = calloc(1, sizeof *ds);
    assert_non_null(ds);
    size_t isz = (size_t)c * h * w;
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->images = malloc(n * isz);
    ds->labels = malloc(n * sizeof *ds->labels);
    assert_non_null(ds->images);
    assert_non_null(ds->labels);
    uint64_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        ds->labels[i] = (int32_t)(i % 10);
        for (size_t k = 0; k < isz; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            ds->images[i * isz + k] = k == 0 ? (uint8_t)i : (uint8_t)(x >> 56);
        }
    }
    int k = 0;
    const char *const *names = cnn_class_names("cifar10", &k);
    assert_int_equal(cnn_dataset_set_class_names(ds, names, k), CNN_OK);
    return ds;
}

static void test_set_class_names(void **state)
{
    (void)state;
    cnn_dataset_t *ds = make_ds(4, 1, 2, 2); /* labels 0..3 */
    const char *few[] = {"a", "b", "c"};
    expect_error(cnn_dataset_set_class_names(ds, few, 3), CNN_EDATA, NULL);
    assert_int_equal(ds->nclasses, 10);
    assert_string_equal(ds->class_names[3], "cat");
    const char *four[] = {"a", "b", "c", "d"};
    assert_int_equal(cnn_dataset_set_class_names(ds, four, 4), CNN_OK);
    assert_int_equal(ds->nclasses, 4);
    assert_string_equal(ds->class_names[3], "d");
    int k;
    const char *const *fine = cnn_class_names("cifar100-fine", &k);
    assert_int_equal(cnn_dataset_set_class_names(ds, fine, k), CNN_OK);
    assert_int_equal(ds->nclasses, 100);
    const char *withnull[] = {"a", NULL, "c", "d"};
    assert_int_equal(cnn_dataset_set_class_names(ds, withnull, 4), CNN_ECONFIG);
    assert_int_equal(ds->nclasses, 100);
    cnn_dataset_free(ds);
    cnn_dataset_free(NULL);
}

static void test_subset(void **state)
{
    (void)state;
    cnn_dataset_t *orig = make_ds(25, 3, 2, 2), *ds = make_ds(25, 3, 2, 2);
    const size_t isz = 12;
    int bad_dup[] = {0, 2, 0}, bad_range[] = {0, 10}, bad_neg[] = {-1};
    assert_int_equal(cnn_dataset_subset(ds, bad_dup, 3), CNN_ECONFIG);
    assert_int_equal(cnn_dataset_subset(ds, bad_range, 2), CNN_ECONFIG);
    assert_int_equal(cnn_dataset_subset(ds, bad_neg, 1), CNN_ECONFIG);
    assert_int_equal(cnn_dataset_subset(ds, bad_neg, 0), CNN_ECONFIG);
    assert_int_equal(ds->n, 25);
    assert_int_equal(ds->nclasses, 10);
    assert_memory_equal(ds->images, orig->images, 25 * isz);

    int ab[] = {cnn_dataset_class_index(ds, "airplane"),
                cnn_dataset_class_index(ds, "bird")};
    assert_int_equal(ab[0], 0);
    assert_int_equal(ab[1], 2);
    assert_int_equal(cnn_dataset_subset(ds, ab, 2), CNN_OK);
    /* images 0,2,10,12,20,22 in their order */
    const size_t want[] = {0, 2, 10, 12, 20, 22};
    assert_int_equal(ds->n, 6);
    assert_int_equal(ds->nclasses, 2);
    assert_string_equal(ds->class_names[0], "airplane");
    assert_string_equal(ds->class_names[1], "bird");
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(ds->labels[i], orig->labels[want[i]] == 0 ? 0 : 1);
        assert_memory_equal(ds->images + i * isz, orig->images + want[i] * isz, isz);
    }
    cnn_dataset_free(ds);

    /* the order of `classes` decides the new labels */
    ds = make_ds(25, 3, 2, 2);
    int rev[] = {9, 4};
    assert_int_equal(cnn_dataset_subset(ds, rev, 2), CNN_OK);
    assert_int_equal(ds->n, 5); /* 4, 9, 14, 19, 24 */
    assert_int_equal(ds->labels[0], 1);
    assert_int_equal(ds->labels[1], 0);
    assert_string_equal(ds->class_names[0], "truck");
    assert_string_equal(ds->class_names[1], "deer");
    assert_int_equal(ds->images[1 * isz], 9);
    cnn_dataset_free(ds);

    /* classes with no image at all */
    ds = make_ds(5, 1, 1, 1); /* labels 0..4 */
    int none[] = {7, 8};
    assert_int_equal(cnn_dataset_subset(ds, none, 2), CNN_ECONFIG);
    assert_int_equal(ds->n, 5);
    cnn_dataset_free(ds);
    cnn_dataset_free(orig);
}

static void test_class_index(void **state)
{
    (void)state;
    cnn_dataset_t *ds = make_ds(10, 1, 1, 1);
    assert_int_equal(cnn_dataset_class_index(ds, "bird"), 2);
    assert_int_equal(cnn_dataset_class_index(ds, "BIRD"), 2);
    assert_int_equal(cnn_dataset_class_index(ds, "truck"), 9);
    assert_int_equal(cnn_dataset_class_index(ds, "2"), 2);
    assert_int_equal(cnn_dataset_class_index(ds, "09"), 9);
    assert_int_equal(cnn_dataset_class_index(ds, "10"), -1);
    assert_int_equal(cnn_dataset_class_index(ds, "-1"), -1);
    assert_int_equal(cnn_dataset_class_index(ds, "2x"), -1);
    assert_int_equal(cnn_dataset_class_index(ds, "99999999999999999999"), -1);
    assert_int_equal(cnn_dataset_class_index(ds, "unicorn"), -1);
    assert_int_equal(cnn_dataset_class_index(ds, ""), -1);
    assert_int_equal(cnn_dataset_class_index(ds, NULL), -1);
    int k;
    const char *const *fm = cnn_class_names("fashion-mnist", &k);
    assert_int_equal(cnn_dataset_set_class_names(ds, fm, k), CNN_OK);
    assert_int_equal(cnn_dataset_class_index(ds, "Ankle boot"), 9);
    assert_int_equal(cnn_dataset_class_index(ds, "t-shirt/top"), 0);
    cnn_dataset_free(ds);
}

/* The tags (pixel 0 = original index) of a data set. */
static void tags(const cnn_dataset_t *ds, int *out)
{
    size_t isz = (size_t)ds->c * ds->h * ds->w;
    for (size_t i = 0; i < ds->n; i++) out[i] = ds->images[i * isz];
}

static void test_split(void **state)
{
    (void)state;
    const size_t n = 50, nval = 12, isz = 2 * 3 * 3;
    cnn_dataset_t *ds = make_ds(n, 2, 3, 3), *orig = make_ds(n, 2, 3, 3);
    cnn_dataset_t *tr = NULL, *va = NULL, *tr2 = NULL, *va2 = NULL;
    assert_int_equal(cnn_dataset_split(ds, nval, 7, &tr, &va), CNN_OK);
    assert_int_equal(tr->n, n - nval);
    assert_int_equal(va->n, nval);
    assert_memory_equal(ds->images, orig->images, n * isz);
    assert_int_equal(ds->n, n);

    int seen[50] = {0}, tt[50], tv[50];
    tags(tr, tt);
    tags(va, tv);
    for (size_t i = 0; i < tr->n; i++) {
        seen[tt[i]]++;
        if (i) assert_true(tt[i - 1] < tt[i]); /* original order kept */
        assert_memory_equal(tr->images + i * isz, ds->images + (size_t)tt[i] * isz, isz);
        assert_int_equal(tr->labels[i], ds->labels[tt[i]]);
    }
    for (size_t i = 0; i < va->n; i++) {
        seen[tv[i]]++;
        if (i) assert_true(tv[i - 1] < tv[i]);
        assert_memory_equal(va->images + i * isz, ds->images + (size_t)tv[i] * isz, isz);
        assert_int_equal(va->labels[i], ds->labels[tv[i]]);
    }
    for (size_t i = 0; i < n; i++) assert_int_equal(seen[i], 1); /* partition */
    assert_int_equal(va->nclasses, 10);
    assert_string_equal(va->class_names[2], "bird");

    /* same seed, same split */
    assert_int_equal(cnn_dataset_split(ds, nval, 7, &tr2, &va2), CNN_OK);
    int tv2[50];
    tags(va2, tv2);
    assert_memory_equal(tv, tv2, nval * sizeof(int));
    cnn_dataset_free(tr2);
    cnn_dataset_free(va2);
    /* another seed, another split */
    assert_int_equal(cnn_dataset_split(ds, nval, 8, &tr2, &va2), CNN_OK);
    tags(va2, tv2);
    assert_true(memcmp(tv, tv2, nval * sizeof(int)) != 0);
    cnn_dataset_free(tr2);
    cnn_dataset_free(va2);

    /* nval = 0: everything is training data */
    assert_int_equal(cnn_dataset_split(ds, 0, 7, &tr2, &va2), CNN_OK);
    assert_int_equal(tr2->n, n);
    assert_int_equal(va2->n, 0);
    assert_memory_equal(tr2->images, ds->images, n * isz);
    cnn_dataset_free(tr2);
    cnn_dataset_free(va2);

    tr2 = va2 = (cnn_dataset_t *)(uintptr_t)1;
    assert_int_equal(cnn_dataset_split(ds, n, 7, &tr2, &va2), CNN_ECONFIG);
    assert_null(tr2);
    assert_null(va2);

    cnn_dataset_free(tr);
    cnn_dataset_free(va);
    cnn_dataset_free(ds);
    cnn_dataset_free(orig);
}

static void test_channel_stats(void **state)
{
    (void)state;
    cnn_dataset_t *ds = make_ds(100, 3, 32, 32); /* enough for OpenMP */
    const size_t hw = 1024, isz = 3 * hw;
    /* channel 2 constant */
    for (size_t i = 0; i < ds->n; i++) memset(ds->images + i * isz + 2 * hw, 77, hw);
    float mean[3], std[3];
    cnn_dataset_channel_stats(ds, mean, std);
    for (int c = 0; c < 2; c++) {
        double s = 0, s2 = 0, cnt = (double)ds->n * hw;
        for (size_t i = 0; i < ds->n; i++)
            for (size_t j = 0; j < hw; j++) s += ds->images[i * isz + (size_t)c * hw + j] / 255.0;
        double m = s / cnt;
        for (size_t i = 0; i < ds->n; i++)
            for (size_t j = 0; j < hw; j++) {
                double d = ds->images[i * isz + (size_t)c * hw + j] / 255.0 - m;
                s2 += d * d;
            }
        assert_float_equal(mean[c], m, 1e-6);
        assert_float_equal(std[c], sqrt(s2 / cnt), 1e-6);
        assert_true(std[c] > 0.2f && std[c] < 0.4f);
    }
    assert_float_equal(mean[2], 77.0 / 255.0, 1e-7);
    assert_float_equal(std[2], 1.0, 0);
    /* deterministic */
    float mean2[3], std2[3];
    cnn_dataset_channel_stats(ds, mean2, std2);
    assert_memory_equal(mean, mean2, sizeof mean);
    assert_memory_equal(std, std2, sizeof std);
    cnn_dataset_free(ds);
}

static void test_batch(void **state)
{
    (void)state;
    cnn_dataset_t *ds = make_ds(100, 3, 8, 8);
    const size_t isz = 3 * 64;
    const float mean[3] = {0.5f, 0.25f, 0.1f}, std[3] = {0.2f, 0.5f, 2.0f};
    /* small batch, and one large enough to run threaded */
    const int sizes[2] = {3, 400};
    for (int t = 0; t < 2; t++) {
        int n = sizes[t];
        size_t *idx = malloc((size_t)n * sizeof *idx);
        float *x = malloc((size_t)n * isz * sizeof *x);
        int32_t *lab = malloc((size_t)n * sizeof *lab);
        assert_non_null(idx);
        assert_non_null(x);
        assert_non_null(lab);
        for (int b = 0; b < n; b++) idx[b] = (size_t)(b * 37 + 3) % ds->n;
        cnn_dataset_batch(ds, idx, n, mean, std, x, lab);
        for (int b = 0; b < n; b++) {
            assert_int_equal(lab[b], ds->labels[idx[b]]);
            for (size_t k = 0; k < isz; k++) {
                int c = (int)(k / 64);
                float want = ((float)ds->images[idx[b] * isz + k] / 255.0f - mean[c]) / std[c];
                assert_float_equal(x[(size_t)b * isz + k], want, 1e-6);
            }
        }
        cnn_dataset_batch(ds, idx, n, NULL, NULL, x, NULL);
        for (int b = 0; b < n; b++)
            for (size_t k = 0; k < isz; k++)
                assert_float_equal(x[(size_t)b * isz + k],
                                   ds->images[idx[b] * isz + k] / 255.0, 1e-7);
        free(idx);
        free(x);
        free(lab);
    }
    cnn_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idx_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_gz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_magic_not_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_bad_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_bad_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_wrong_ndims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_huge_dims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_trailing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_count_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_gz_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cifar10, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cifar100, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cifar_bad_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cifar_bad_label, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cifar_missing, setup, teardown),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_set_class_names),
        cmocka_unit_test(test_subset),
        cmocka_unit_test(test_class_index),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_channel_stats),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
