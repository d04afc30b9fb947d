/* resize.h - image resizing and channel conversion for packing and
 * prediction. Pure functions on 8-bit images.
 *
 * Images here are interleaved (h, w, channels) bytes with a row stride, as
 * decoders hand them out. Resizing is separable: along each axis a
 * shrinking output averages the source area it covers (box filter,
 * fractional at the edges), and an enlarging one interpolates linearly
 * between the two nearest source pixel centres (half-pixel centres, edge
 * pixels repeated). Results are rounded to the nearest byte. */
#ifndef MPICNN_RESIZE_H
#define MPICNN_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/status.h"

/* A window of a source image: the w x h pixels starting at column x, row y. */
typedef struct {
    int x, y, w, h;
} cnn_rect_t;

/* The centred window of a sw x sh image with the aspect ratio dw : dh
 * (the largest such window, rounded to whole pixels, at least 1 x 1). */
cnn_rect_t cnn_resize_crop_rect(int sw, int sh, int dw, int dh);

/* Resizes the window r of src (rows of `stride` bytes; `ch` interleaved
 * channels) to dst (dh, dw, ch), dst packed (stride dw*ch). Allocates a
 * scratch buffer of dw*r.h*ch doubles plus the weight tables; returns
 * CNN_ENOMEM if that fails, CNN_EUSAGE for sizes < 1. */
cnn_status_t cnn_resize_u8(const uint8_t *src, size_t stride, int ch, cnn_rect_t r,
                           uint8_t *dst, int dw, int dh);

/* Converts an interleaved image (h, w, ic) with ic = 1 grey, 2 grey +
 * alpha, 3 RGB or 4 RGBA into planar (oc, h, w), oc = 1 or 3: grey is
 * repeated on every colour channel, colour becomes its ITU-R BT.601
 * luminance (299 R + 587 G + 114 B + 500) / 1000, alpha is dropped. */
void cnn_image_to_chw(const uint8_t *hwc, int w, int h, int ic, int oc, uint8_t *chw);

#endif
