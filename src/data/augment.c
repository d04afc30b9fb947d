/* augment.c - crop after zero padding, horizontal flip, cutout. */
#include "mpicnn/augment.h"

#include <string.h>

#include "mpicnn/rng.h"

/* The k of each draw in cnn_hash4(seed, epoch, index, k). */
enum { DRAW_CROP_Y, DRAW_CROP_X, DRAW_FLIP, DRAW_CUT_Y, DRAW_CUT_X };

int cnn_augment_enabled(const cnn_augment_config_t *a)
{
    return a->crop_pad > 0 || a->flip || a->cutout > 0;
}

/* A draw in [0, m). */
static int draw(uint64_t seed, long epoch, uint64_t index, int k, int m)
{
    return (int)(cnn_hash4(seed, (uint64_t)epoch, index, (uint64_t)k) % (uint64_t)m);
}

/* out(y,x) = in(y + dy - p, x + dx - p), 0 outside: the window at (dy,dx)
 * of the image padded by p. */
static void crop(const uint8_t *in, int c, int h, int w, int p, int dy, int dx, uint8_t *out)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            uint8_t *o = out + ((size_t)ch * h + y) * w;
            const int sy = y + dy - p;
            if (sy < 0 || sy >= h) {
                memset(o, 0, (size_t)w);
                continue;
            }
            const uint8_t *row = in + ((size_t)ch * h + sy) * w;
            for (int x = 0; x < w; x++) {
                const int sx = x + dx - p;
                o[x] = sx >= 0 && sx < w ? row[sx] : 0;
            }
        }
}

static void flip(uint8_t *img, int c, int h, int w)
{
    for (size_t r = 0; r < (size_t)c * h; r++) {
        uint8_t *row = img + r * w;
        for (int x = 0; x < w / 2; x++) {
            uint8_t t = row[x];
            row[x] = row[w - 1 - x];
            row[w - 1 - x] = t;
        }
    }
}

/* Zeros rows [cy - n/2, cy - n/2 + n) x the same columns around cx,
 * clipped to the image. */
static void cutout(uint8_t *img, int c, int h, int w, int n, int cy, int cx)
{
    int y0 = cy - n / 2, x0 = cx - n / 2, y1 = y0 + n, x1 = x0 + n;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    if (y1 > h) y1 = h;
    if (x1 > w) x1 = w;
    for (int ch = 0; ch < c; ch++)
        for (int y = y0; y < y1; y++) memset(img + ((size_t)ch * h + y) * w + x0, 0, (size_t)(x1 - x0));
}

void cnn_augment_image(const cnn_augment_config_t *a, uint64_t seed, long epoch, uint64_t index,
                       int c, int h, int w, uint8_t *img, uint8_t *scratch)
{
    if (a->crop_pad > 0) {
        const int p = a->crop_pad;
        const int dy = draw(seed, epoch, index, DRAW_CROP_Y, 2 * p + 1);
        const int dx = draw(seed, epoch, index, DRAW_CROP_X, 2 * p + 1);
        crop(img, c, h, w, p, dy, dx, scratch);
        memcpy(img, scratch, (size_t)c * h * w);
    }
    if (a->flip && draw(seed, epoch, index, DRAW_FLIP, 2)) flip(img, c, h, w);
    if (a->cutout > 0)
        cutout(img, c, h, w, a->cutout, draw(seed, epoch, index, DRAW_CUT_Y, h),
               draw(seed, epoch, index, DRAW_CUT_X, w));
}
