/* png.h - 8-bit PNG images in memory, read and written through libpng.
 *
 * An image is h rows of w pixels of `channels` interleaved bytes (HWC):
 * 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. The reader normalises every PNG
 * to one of 1, 3 or 4 channels of 8 bits with libpng's transforms: a
 * palette becomes RGB (RGBA if it has transparency), 16-bit samples are
 * scaled to 8 bits, 1/2/4-bit gray is expanded, gray + alpha (and gray
 * with a tRNS colour) becomes RGBA, and interlaced files are
 * de-interlaced. The writer takes any of the four layouts, so image grids
 * and plots can be written with it too. */
#ifndef MPICNN_PNG_H
#define MPICNN_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/status.h"

/* Largest width or height the reader accepts (checked before any pixel
 * memory is allocated). */
#define CNN_PNG_MAX_SIDE 32768

/* Most pixels (width x height) the PNG and JPEG readers decode: a header
 * claiming more is refused before the pixels are allocated. */
#define CNN_IMAGE_MAX_PIXELS ((size_t)1 << 26)

typedef struct {
    int w, h;          /* width and height in pixels, >= 1 */
    int channels;      /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint8_t *pixels;   /* (h, w, channels): pixel (r,c) channel k at
                          (r*w + c)*channels + k (owned) */
} cnn_image_t;

/* Reads the PNG file `path` into *img (any previous content is
 * overwritten, not freed). On success img->pixels is malloc'd and owned
 * by the caller: free it with cnn_image_free(). On failure *img is all
 * zero. Errors, each naming the file: CNN_EDATA for a missing or
 * unreadable file, a file that is not a PNG, a truncated or corrupt one,
 * or one wider or taller than CNN_PNG_MAX_SIDE or of more than
 * CNN_IMAGE_MAX_PIXELS pixels (refused from the header, before the pixels
 * are allocated); CNN_ENOMEM. */
cnn_status_t cnn_png_read(const char *path, cnn_image_t *img);

/* Writes `pixels` (h, w, channels) as an 8-bit PNG (gray, gray+alpha, RGB
 * or RGBA by `channels`) to `path`, atomically (cnn_afile_* of fs.h: a
 * temporary file next to `path`, flushed, fsync'd and renamed over it),
 * so `path` is either the old file or the complete new one. The
 * caller keeps ownership of `pixels`. Errors: CNN_EUSAGE for w or h < 1
 * or > CNN_PNG_MAX_SIDE, channels outside 1..4 or NULL pixels; CNN_EIO
 * (naming the file and the cause: disk full, permission, ...) when the
 * file cannot be created, written or renamed (the temporary file is
 * removed); CNN_ENOMEM. */
cnn_status_t cnn_png_write(const char *path, const uint8_t *pixels, int w,
                           int h, int channels);

/* Frees img->pixels and zeroes *img. NULL (or an empty image) is a no-op. */
void cnn_image_free(cnn_image_t *img);

#endif
