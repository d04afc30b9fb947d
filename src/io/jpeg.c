/* jpeg.c - JPEG decoding through libjpeg(-turbo) (see jpeg.h).
 *
 * libjpeg reports a fatal error through error_exit, which here longjmps
 * back into decode_body. As in png.c, decode_body keeps everything it
 * allocates or learns in a context owned by the caller, so nothing needed
 * after the longjmp is an indeterminate local, and the caller frees it at
 * one place. */
#include "mpicnn/jpeg.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg sees it as its error manager */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int truncated;             /* libjpeg warned of a premature end of file */
} jerr_t;

typedef struct {
    struct jpeg_decompress_struct d;
    jerr_t err;
    FILE *f;
    int min_w, min_h;
    int w, h, channels;        /* as the header says, then as decoded */
    const char *refusal;       /* why a valid header is refused, or NULL */
    int nomem;
    uint8_t *pixels;
} jctx_t;

static void on_error(j_common_ptr cinfo)
{
    jerr_t *e = (jerr_t *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings are not printed; the one that matters, a file ending before
 * its data, is remembered so the image is refused rather than padded. */
static void on_message(j_common_ptr cinfo, int level)
{
    jerr_t *e = (jerr_t *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

int cnn_jpeg_sniff(const unsigned char *head, size_t n)
{
    return n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF;
}

/* The largest DCT scaling 1/s (s = 8, 4, 2) that keeps the output at
 * least min_w x min_h; 1 without a minimum. */
static int scale_denom(const jctx_t *c)
{
    if (c->min_w <= 0 || c->min_h <= 0) return 1;
    for (int s = 8; s > 1; s /= 2)
        if ((c->w + s - 1) / s >= c->min_w && (c->h + s - 1) / s >= c->min_h) return s;
    return 1;
}

/* Reads the header and says whether it is an image we decode. */
static void check_header(jctx_t *c)
{
    c->w = (int)c->d.image_width;
    c->h = (int)c->d.image_height;
    if (c->d.jpeg_color_space == JCS_CMYK || c->d.jpeg_color_space == JCS_YCCK)
        c->refusal = "a CMYK JPEG (convert it to RGB first, e.g. `convert IN -colorspace sRGB OUT`)";
    else if (c->d.data_precision != 8)
        c->refusal = "a JPEG of more than 8 bits per sample (12-bit JPEG is not supported)";
    else if (c->w > CNN_PNG_MAX_SIDE || c->h > CNN_PNG_MAX_SIDE ||
             (size_t)c->w * (size_t)c->h > CNN_IMAGE_MAX_PIXELS)
        c->refusal = "too large";
}

/* Returns 0 on success, -1 after a libjpeg error (c->err.msg), a refusal
 * (c->refusal), a truncated file or a failed allocation (c->nomem). */
static int decode_body(jctx_t *c)
{
    if (setjmp(c->err.jump)) return -1;
    jpeg_create_decompress(&c->d);
    jpeg_stdio_src(&c->d, c->f);
    jpeg_read_header(&c->d, TRUE);
    check_header(c);
    if (c->refusal) return -1;
    c->d.out_color_space = c->d.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    c->d.scale_num = 1;
    c->d.scale_denom = (unsigned)scale_denom(c);
    c->d.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&c->d);
    c->w = (int)c->d.output_width;
    c->h = (int)c->d.output_height;
    c->channels = c->d.output_components;
    const size_t stride = (size_t)c->w * (size_t)c->channels;
    if (!(c->pixels = malloc(stride * (size_t)c->h))) {
        c->nomem = 1;
        return -1;
    }
    while (c->d.output_scanline < c->d.output_height) {
        JSAMPROW row = c->pixels + (size_t)c->d.output_scanline * stride;
        jpeg_read_scanlines(&c->d, &row, 1);
        if (c->err.truncated) return -1;
    }
    jpeg_finish_decompress(&c->d);
    return c->err.truncated ? -1 : 0;
}

static cnn_status_t decode_error(const jctx_t *c, const char *path)
{
    if (c->nomem)
        return cnn_error_set(CNN_ENOMEM, "out of memory reading %s (%d x %d pixels)", path,
                             c->w, c->h);
    if (c->refusal && !strcmp(c->refusal, "too large"))
        return cnn_error_set(CNN_EDATA, "%s: the JPEG header claims %d x %d pixels, more than "
                             "the limit of %zu pixels or %d a side", path, c->w, c->h,
                             (size_t)CNN_IMAGE_MAX_PIXELS, CNN_PNG_MAX_SIDE);
    if (c->refusal) return cnn_error_set(CNN_EDATA, "%s: %s", path, c->refusal);
    if (c->err.truncated)
        return cnn_error_set(CNN_EDATA, "%s: truncated JPEG (the file ends before its image "
                             "data)", path);
    return cnn_error_set(CNN_EDATA, "%s: corrupt JPEG (libjpeg: %s)", path, c->err.msg);
}

/* Opens path and checks the JPEG signature. */
static cnn_status_t open_jpeg(const char *path, FILE **f)
{
    unsigned char head[3];
    *f = fopen(path, "rb");
    if (!*f) return cnn_error_set(CNN_EDATA, "cannot open %s: %s", path, strerror(errno));
    size_t got = fread(head, 1, sizeof head, *f);
    cnn_status_t st = CNN_OK;
    if (ferror(*f))
        st = cnn_error_set(CNN_EDATA, "cannot read %s: %s", path, strerror(errno));
    else if (!cnn_jpeg_sniff(head, got))
        st = cnn_error_set(CNN_EDATA, "%s: not a JPEG file (%s)", path,
                           got == 0 ? "it is empty" : "no JPEG signature");
    else if (fseek(*f, 0, SEEK_SET) != 0)
        st = cnn_error_set(CNN_EDATA, "cannot read %s: %s", path, strerror(errno));
    if (st != CNN_OK) {
        fclose(*f);
        *f = NULL;
    }
    return st;
}

cnn_status_t cnn_jpeg_read(const char *path, int min_w, int min_h, cnn_image_t *img)
{
    jctx_t *c = calloc(1, sizeof *c);
    memset(img, 0, sizeof *img);
    if (!c) return cnn_error_set(CNN_ENOMEM, "out of memory reading %s", path);
    c->min_w = min_w;
    c->min_h = min_h;
    cnn_status_t st = open_jpeg(path, &c->f);
    if (st != CNN_OK) goto done;
    c->d.err = jpeg_std_error(&c->err.pub);
    c->err.pub.error_exit = on_error;
    c->err.pub.emit_message = on_message;
    if (decode_body(c) != 0) {
        st = decode_error(c, path);
        goto done;
    }
    *img = (cnn_image_t){.w = c->w, .h = c->h, .channels = c->channels, .pixels = c->pixels};
    c->pixels = NULL;
done:
    jpeg_destroy_decompress(&c->d);
    if (c->f) fclose(c->f);
    free(c->pixels);
    free(c);
    return st;
}
