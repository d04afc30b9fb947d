/* png.c - PNG reading and atomic writing through libpng.
 *
 * libpng reports errors by longjmp. The setjmp lives in a small helper
 * (read_body / write_body) whose only local state is a pointer to a
 * context owned by the caller: everything the helper allocates or changes
 * is stored through that pointer, so nothing it needs after a longjmp is
 * an indeterminate local variable, and the caller frees it at one place. */
#include "mpicnn/png.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/fs.h"

typedef struct {
    png_structp png;
    png_infop info;
    FILE *f;
    char msg[200];      /* libpng's last error */
    int err;            /* errno when libpng failed (writer) */
    /* reader */
    uint8_t *pixels;
    png_bytep *rows;
    int w, h, channels;
    int nomem;
    int too_big;        /* the header claims more than the limits */
    /* writer */
    const uint8_t *in;
} pngctx_t;

static void on_error(png_structp png, png_const_charp m)
{
    pngctx_t *c = png_get_error_ptr(png);
    c->err = errno;
    snprintf(c->msg, sizeof c->msg, "%s", m ? m : "unknown error");
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary chunks, sRGB profile notes) are not ours to
 * print: the image is still usable. */
static void on_warning(png_structp png, png_const_charp m)
{
    (void)png;
    (void)m;
}

void cnn_image_free(cnn_image_t *img)
{
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ---- reading ------------------------------------------------------------ */

/* Returns 0 on success, -1 after a libpng error (c->msg) or when memory
 * ran out (c->nomem). */
static int read_body(pngctx_t *c)
{
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_init_io(c->png, c->f);
    png_set_sig_bytes(c->png, 8);
    png_read_info(c->png, c->info);
    /* the header's size decides before anything is allocated or decoded */
    c->w = (int)png_get_image_width(c->png, c->info);
    c->h = (int)png_get_image_height(c->png, c->info);
    if (c->w > CNN_PNG_MAX_SIDE || c->h > CNN_PNG_MAX_SIDE ||
        (size_t)c->w * (size_t)c->h > CNN_IMAGE_MAX_PIXELS) {
        c->too_big = 1;
        return -1;
    }

    const int type = png_get_color_type(c->png, c->info);
    const int depth = png_get_bit_depth(c->png, c->info);
    const int trns = png_get_valid(c->png, c->info, PNG_INFO_tRNS) != 0;
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (trns) png_set_tRNS_to_alpha(c->png);
    if (depth == 16) png_set_scale_16(c->png);
    /* gray + alpha is not one of the layouts we hand out: make it RGBA */
    if (type == PNG_COLOR_TYPE_GRAY_ALPHA || (type == PNG_COLOR_TYPE_GRAY && trns))
        png_set_gray_to_rgb(c->png);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);

    c->w = (int)png_get_image_width(c->png, c->info);
    c->h = (int)png_get_image_height(c->png, c->info);
    c->channels = png_get_channels(c->png, c->info);
    const size_t stride = (size_t)c->w * (size_t)c->channels;
    if (png_get_bit_depth(c->png, c->info) != 8 || png_get_rowbytes(c->png, c->info) != stride)
        png_error(c->png, "unexpected pixel layout after conversion to 8 bits");

    c->pixels = malloc(stride * (size_t)c->h);
    c->rows = malloc(sizeof *c->rows * (size_t)c->h);
    if (!c->pixels || !c->rows) {
        c->nomem = 1;
        return -1;
    }
    for (int r = 0; r < c->h; r++) c->rows[r] = c->pixels + (size_t)r * stride;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, NULL);
    return 0;
}

cnn_status_t cnn_png_read(const char *path, cnn_image_t *img)
{
    cnn_status_t st = CNN_OK;
    pngctx_t c = {0};
    unsigned char sig[8];
    memset(img, 0, sizeof *img);

    if ((st = cnn_fs_fopen_input(path, CNN_EDATA, "a PNG file", &c.f, NULL)) != CNN_OK)
        goto done;
    size_t got = fread(sig, 1, sizeof sig, c.f);
    if (ferror(c.f)) {
        st = cnn_error_set(CNN_EDATA, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (got < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        st = cnn_error_set(CNN_EDATA, "%s: not a PNG file (%s)", path,
                           got == 0 ? "it is empty"
                           : got < sizeof sig ? "shorter than the 8-byte PNG signature"
                                              : "no PNG signature");
        goto done;
    }
    c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    if (c.png) c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    if (read_body(&c) != 0) {
        if (c.too_big)
            st = cnn_error_set(CNN_EDATA, "%s: the PNG header claims %d x %d pixels, more than "
                               "the limit of %zu pixels or %d a side", path, c.w, c.h,
                               (size_t)CNN_IMAGE_MAX_PIXELS, CNN_PNG_MAX_SIDE);
        else if (c.nomem)
            st = cnn_error_set(CNN_ENOMEM, "out of memory reading %s (%d x %d pixels)", path,
                               c.w, c.h);
        else
            st = cnn_error_set(CNN_EDATA, "%s: truncated or corrupt PNG (libpng: %s)", path,
                               !strcmp(c.msg, "Read Error") ? "unexpected end of file"
                                                            : c.msg);
        goto done;
    }
    *img = (cnn_image_t){.w = c.w, .h = c.h, .channels = c.channels, .pixels = c.pixels};
    c.pixels = NULL;

done:
    if (c.png) png_destroy_read_struct(&c.png, c.info ? &c.info : NULL, NULL);
    if (c.f) fclose(c.f);
    free(c.rows);
    free(c.pixels);
    return st;
}

/* ---- writing ------------------------------------------------------------ */

static int write_body(pngctx_t *c)
{
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_init_io(c->png, c->f);
    png_set_IHDR(c->png, c->info, (png_uint_32)c->w, (png_uint_32)c->h, 8,
                 types[c->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(c->png, c->info);
    const size_t stride = (size_t)c->w * (size_t)c->channels;
    for (int r = 0; r < c->h; r++) png_write_row(c->png, c->in + (size_t)r * stride);
    png_write_end(c->png, c->info);
    return 0;
}

/* The error of a failed write_body: libpng's "Write Error" comes from the
 * stream (errno says why), anything else is libpng's own message. */
static cnn_status_t body_error(const pngctx_t *c, const char *path)
{
    if (!strcmp(c->msg, "Write Error") && c->err) return cnn_fs_error(path, "write", c->err);
    return cnn_error_set(CNN_EIO, "cannot write %s: libpng: %s", path, c->msg);
}

cnn_status_t cnn_png_write(const char *path, const uint8_t *pixels, int w, int h,
                           int channels)
{
    pngctx_t c = {.in = pixels, .w = w, .h = h, .channels = channels};
    cnn_afile_t *out = NULL;
    cnn_status_t st;

    if (!pixels || w < 1 || h < 1 || w > CNN_PNG_MAX_SIDE || h > CNN_PNG_MAX_SIDE ||
        channels < 1 || channels > 4)
        return cnn_error_set(CNN_EUSAGE,
                             "cannot write %s: %d x %d pixels with %d channels%s (need 1..%d "
                             "pixels a side and 1..4 channels)",
                             path, w, h, channels, pixels ? "" : " and no data",
                             CNN_PNG_MAX_SIDE);
    if ((st = cnn_afile_begin(path, &out)) != CNN_OK) return st;
    if (!(c.f = cnn_afile_stream(out))) {
        st = cnn_fs_error(path, "fdopen", errno);
        goto fail;
    }
    c.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    if (c.png) c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory writing %s", path);
        goto fail;
    }
    if (write_body(&c) != 0) {
        st = body_error(&c, path);
        goto fail;
    }
    png_destroy_write_struct(&c.png, &c.info);
    /* flush, fsync, rename over path, fsync of the directory */
    return cnn_afile_commit(out);

fail:
    if (c.png) png_destroy_write_struct(&c.png, c.info ? &c.info : NULL);
    cnn_afile_abort(out);
    return st;
}
