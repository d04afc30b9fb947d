/* jpeg.h - 8-bit JPEG images decoded through libjpeg(-turbo).
 *
 * The decoder hands out the image type of png.h (cnn_image_t): grey JPEGs
 * as 1 channel, YCbCr and RGB ones as 3 channels of RGB. It reads the
 * header first and refuses, before any pixel memory is allocated, an image
 * of more than CNN_IMAGE_MAX_PIXELS pixels or wider or taller than
 * CNN_PNG_MAX_SIDE (a few bytes of header can claim 60000 x 60000), a
 * CMYK or YCCK image and a sample precision other than 8 bits (12-bit
 * JPEG). A file that ends before its last scan is an error, not a grey
 * band at the bottom. */
#ifndef MPICNN_JPEG_H
#define MPICNN_JPEG_H

#include <stddef.h>

#include "mpicnn/png.h"
#include "mpicnn/status.h"

/* 1 if the first n bytes of a file (n >= 3) start a JPEG (FF D8 FF). */
int cnn_jpeg_sniff(const unsigned char *head, size_t n);

/* Decodes the JPEG file `path` into *img (as cnn_png_read(): img->pixels
 * is malloc'd and owned by the caller, cnn_image_free() releases it; on
 * failure *img is all zero). min_w, min_h > 0 let the decoder use
 * libjpeg's DCT scaling (1/2, 1/4, 1/8) while the result stays at least
 * that large, for callers that shrink the image anyway; 0, 0 decodes at
 * full size. Errors, each naming the file: CNN_EDATA for a missing,
 * unreadable, empty, truncated or corrupt file, one that is not a JPEG,
 * CMYK/YCCK, 12-bit, or over the size limits above; CNN_ENOMEM. */
cnn_status_t cnn_jpeg_read(const char *path, int min_w, int min_h, cnn_image_t *img);

#endif
