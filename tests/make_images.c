/* make_images.c - image folders for tests/test_pack.sh and the pack
 * benchmark:
 *   make_images good DIR      DIR/<class>/ of PNG and JPEG files of mixed
 *                             sizes and modes (grey, grey+alpha, RGB, RGBA,
 *                             palette-free 16-bit PNG; grey and colour JPEG)
 *   make_images same DIR N W H EXT
 *                             N images of W x H in 10 classes, EXT png or jpg
 *                             (grey PNG, colour JPEG), for speed and kill tests
 *   make_images bad DIR       one image of each kind of defect: truncated
 *                             JPEG and PNG, zero bytes, text named .jpg, CMYK
 *                             JPEG, headers claiming 60000 x 60000 pixels
 *   make_images idx DIR       small IDX (images+labels) and CIFAR-10/100 files
 *   make_images jpeg IN.png OUT.jpg
 *                             a grey or RGB PNG as a JPEG of quality 100
 *   make_images attr FILE.h5 NAME VALUE
 *                             a string attribute on the file's root group
 * The pixels are a pattern of (image, row, column, channel), so the same
 * call always writes the same files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "mpicnn/png.h"

static int failures;

static void fail(const char *what, const char *path)
{
    fprintf(stderr, "make_images: %s: %s\n", path, what);
    failures++;
}

static uint8_t *pattern(int seed, int w, int h, int c)
{
    uint8_t *p = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] =
                    (uint8_t)((seed * 37 + x * 11 + y * 7 + k * 60 + (x * y) % 13) & 255);
    return p;
}

static void write_png(const char *path, int seed, int w, int h, int c)
{
    uint8_t *p = pattern(seed, w, h, c);
    if (cnn_png_write(path, p, w, h, c) != CNN_OK) fail("cannot write PNG", path);
    free(p);
}

/* An 8-bit grey PNG through libpng directly, without the atomic writer's
 * fsync (tens of thousands of files for the benchmark). */
static void write_png_fast(const char *path, int seed, int w, int h)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t *p = pattern(seed, w, h, 1);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fail("cannot write PNG", path);
        return;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, p + (size_t)y * w);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(p);
}

/* A 16-bit RGB PNG through libpng directly. */
static void write_png16(const char *path, int w, int h)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fail("cannot write 16-bit PNG", path);
        return;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t *row = malloc((size_t)w * 6);
    for (int y = 0; y < h; y++) {
        for (int i = 0; i < w * 6; i++) row[i] = (uint8_t)(y * 3 + i);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
}

/* pixels (h, w, c) as a JPEG of c = 1 (grey), 3 (RGB) or 4 (CMYK)
 * components. */
static void write_jpeg_pixels(const char *path, const uint8_t *p, int w, int h, int c, int quality)
{
    struct jpeg_compress_struct cj;
    struct jpeg_error_mgr jerr;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fail("cannot create", path);
        return;
    }
    cj.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cj);
    jpeg_stdio_dest(&cj, f);
    cj.image_width = (JDIMENSION)w;
    cj.image_height = (JDIMENSION)h;
    cj.input_components = c;
    cj.in_color_space = c == 1 ? JCS_GRAYSCALE : c == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&cj);
    jpeg_set_quality(&cj, quality, TRUE);
    jpeg_start_compress(&cj, TRUE);
    while (cj.next_scanline < cj.image_height) {
        JSAMPROW row = (JSAMPROW)(p + (size_t)cj.next_scanline * w * c);
        jpeg_write_scanlines(&cj, &row, 1);
    }
    jpeg_finish_compress(&cj);
    jpeg_destroy_compress(&cj);
    fclose(f);
}

static void write_jpeg(const char *path, int seed, int w, int h, int c)
{
    uint8_t *p = pattern(seed, w, h, c);
    write_jpeg_pixels(path, p, w, h, c, 90);
    free(p);
}

/* A PNG (grey or RGB) re-encoded as a JPEG of quality 100. */
static void png_to_jpeg(const char *in, const char *out)
{
    cnn_image_t img;
    if (cnn_png_read(in, &img) != CNN_OK || (img.channels != 1 && img.channels != 3)) {
        fail("not a grey or RGB PNG", in);
        cnn_image_free(&img);
        return;
    }
    write_jpeg_pixels(out, img.pixels, img.w, img.h, img.channels, 100);
    cnn_image_free(&img);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Keeps the first `keep` bytes of path. */
static void truncate_to(const char *path, long keep)
{
    if (truncate(path, keep) != 0) fail("cannot truncate", path);
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) fail("cannot write", path);
    if (f) fclose(f);
}

/* Rewrites the size in the header of a small image to 60000 x 60000:
 * the JPEG SOF0 marker or the PNG IHDR (with its CRC). */
static void claim_huge(const char *path, int is_png)
{
    long n = file_size(path);
    FILE *f = fopen(path, "r+b");
    uint8_t *b = malloc((size_t)n);
    if (!f || fread(b, 1, (size_t)n, f) != (size_t)n) {
        fail("cannot read back", path);
        return;
    }
    const uint8_t big[4] = {0, 0, 0xEA, 0x60}; /* 60000 */
    if (is_png) {
        memcpy(b + 16, big, 4);                 /* IHDR width */
        memcpy(b + 20, big, 4);                 /* IHDR height */
        uint32_t crc = (uint32_t)crc32(0, b + 12, 17);
        uint8_t c[4] = {crc >> 24, crc >> 16, crc >> 8, crc};
        memcpy(b + 29, c, 4);
    } else {
        for (long i = 2; i + 8 < n; i++)
            if (b[i] == 0xFF && b[i + 1] == 0xC0) {
                memcpy(b + i + 5, big + 2, 2);  /* height */
                memcpy(b + i + 7, big + 2, 2);  /* width */
                break;
            }
    }
    fseek(f, 0, SEEK_SET);
    fwrite(b, 1, (size_t)n, f);
    fclose(f);
    free(b);
}

static char *at(const char *dir, const char *name)
{
    static char buf[8][2048];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void make_dir(const char *d) { mkdir(d, 0777); }

static void good(const char *dir)
{
    make_dir(dir);
    make_dir(at(dir, "cat"));
    make_dir(at(dir, "dog"));
    make_dir(at(dir, "emu"));
    write_png(at(dir, "cat/a01.png"), 1, 20, 16, 1);
    write_png(at(dir, "cat/a02.png"), 2, 40, 30, 3);
    write_jpeg(at(dir, "cat/a03.jpg"), 3, 64, 48, 3);
    write_png(at(dir, "cat/a04.PNG"), 4, 16, 16, 4);
    write_jpeg(at(dir, "dog/b01.jpeg"), 5, 33, 17, 1);
    write_png(at(dir, "dog/b02.png"), 6, 8, 8, 2);
    write_png16(at(dir, "dog/b03.png"), 24, 20);
    write_jpeg(at(dir, "dog/b04.jpg"), 7, 200, 120, 3);
    write_png(at(dir, "emu/c01.png"), 8, 12, 40, 3);
    write_jpeg(at(dir, "emu/c02.jpg"), 9, 16, 16, 1);
    write_png(at(dir, "emu/c03.png"), 10, 16, 16, 1);
}

static void same(const char *dir, int n, int w, int h, const char *ext)
{
    char name[64];
    make_dir(dir);
    for (int k = 0; k < 10; k++) {
        snprintf(name, sizeof name, "%d", k);
        make_dir(at(dir, name));
    }
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%d/%06d.%s", i % 10, i, ext);
        if (!strcmp(ext, "png")) write_png_fast(at(dir, name), i, w, h);
        else write_jpeg(at(dir, name), i, w, h, 3);
    }
}

static void bad(const char *dir)
{
    make_dir(dir);
    make_dir(at(dir, "a"));
    make_dir(at(dir, "b"));
    write_png(at(dir, "a/01-good.png"), 1, 8, 8, 1);
    write_jpeg(at(dir, "a/02-truncated.jpg"), 2, 64, 64, 3);
    truncate_to(at(dir, "a/02-truncated.jpg"), file_size(at(dir, "a/02-truncated.jpg")) / 2);
    write_png(at(dir, "a/03-truncated.png"), 3, 64, 64, 3);
    truncate_to(at(dir, "a/03-truncated.png"), file_size(at(dir, "a/03-truncated.png")) / 2);
    write_bytes(at(dir, "a/04-empty.png"), "", 0);
    write_bytes(at(dir, "a/05-text.jpg"), "this is not an image\n", 21);
    write_jpeg(at(dir, "a/06-cmyk.jpg"), 6, 16, 16, 4);
    write_jpeg(at(dir, "a/07-bomb.jpg"), 7, 16, 16, 3);
    claim_huge(at(dir, "a/07-bomb.jpg"), 0);
    write_png(at(dir, "a/08-bomb.png"), 8, 16, 16, 3);
    claim_huge(at(dir, "a/08-bomb.png"), 1);
    write_png16(at(dir, "b/01-sixteen-bit.png"), 8, 8);
    write_png(at(dir, "b/02-good.png"), 9, 8, 8, 3);
}

/* IDX: 20 images of 28 x 28 with labels i % 10; CIFAR-10: 20 records
 * (labels i % 10) and 10 more in a second batch; CIFAR-100: 20 records
 * (coarse label i % 20). The jobs' nets run on them. */
static void arrays(const char *dir)
{
    enum { N = 20, HW = 28 * 28 };
    make_dir(dir);
    static uint8_t img[16 + N * HW], lab[8 + N];
    const uint8_t ih[16] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, 28, 0, 0, 0, 28};
    const uint8_t lh[8] = {0, 0, 8, 1, 0, 0, 0, N};
    memcpy(img, ih, 16);
    memcpy(lab, lh, 8);
    for (int i = 0; i < N; i++) {
        lab[8 + i] = (uint8_t)(i % 10);
        for (int p = 0; p < HW; p++) img[16 + i * HW + p] = (uint8_t)((p * (i + 3) + i * 40) & 255);
    }
    write_bytes(at(dir, "images.idx"), img, sizeof img);
    write_bytes(at(dir, "labels.idx"), lab, sizeof lab);
    static uint8_t rec10[N * 3073], rec100[N * 3074];
    for (int r = 0; r < N; r++) {
        rec10[r * 3073] = (uint8_t)(r % 10);
        rec100[r * 3074] = (uint8_t)(r % 20);
        rec100[r * 3074 + 1] = (uint8_t)(r * 7 % 100);
        for (int i = 0; i < 3072; i++) {
            rec10[r * 3073 + 1 + i] = (uint8_t)(i * (r + 1) + r);
            rec100[r * 3074 + 2 + i] = (uint8_t)(i * 3 + r * 17);
        }
    }
    write_bytes(at(dir, "data_batch_1.bin"), rec10, sizeof rec10);
    write_bytes(at(dir, "data_batch_2.bin"), rec10 + 3073 * 5, 10 * 3073);
    write_bytes(at(dir, "train.bin"), rec100, sizeof rec100);
}

/* Root attribute `name` = value (a variable-length UTF-8 string) in the
 * HDF5 file `path`, as a model trained on a resized data file records it. */
static void set_attr(const char *path, const char *name, const char *value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    if (f >= 0 && t >= 0 && sp >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
        H5Tset_cset(t, H5T_CSET_UTF8) >= 0)
        a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, &value) < 0) fail("cannot write the attribute", path);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (f >= 0) H5Fclose(f);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "good")) good(argv[2]);
    else if (argc == 3 && !strcmp(argv[1], "bad")) bad(argv[2]);
    else if (argc == 3 && !strcmp(argv[1], "idx")) arrays(argv[2]);
    else if (argc == 4 && !strcmp(argv[1], "jpeg")) png_to_jpeg(argv[2], argv[3]);
    else if (argc == 5 && !strcmp(argv[1], "attr")) set_attr(argv[2], argv[3], argv[4]);
    else if (argc == 7 && !strcmp(argv[1], "same"))
        same(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6]);
    else {
        fprintf(stderr, "usage: make_images good|bad|idx DIR | same DIR N W H png|jpg | "
                        "jpeg IN.png OUT.jpg | attr FILE.h5 NAME VALUE\n");
        return 2;
    }
    return failures ? 1 : 0;
}
