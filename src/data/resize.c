/* resize.c - separable area / bilinear resizing and channel conversion
 * (see resize.h). */
#include "mpicnn/resize.h"

#include <math.h>
#include <stdlib.h>

#include "mpicnn/status.h"

/* One output pixel along an axis: the weights of source pixels
 * first .. first + n - 1 (they sum to 1). */
typedef struct {
    int first, n;
    size_t at; /* offset of its weights in the table */
} tap_t;

cnn_rect_t cnn_resize_crop_rect(int sw, int sh, int dw, int dh)
{
    cnn_rect_t r = {0, 0, sw, sh};
    if ((long long)sw * dh > (long long)sh * dw) {
        r.w = (int)(((long long)sh * dw * 2 + dh) / (2LL * dh)); /* rounded */
        if (r.w < 1) r.w = 1;
        r.x = (sw - r.w) / 2;
    } else if ((long long)sw * dh < (long long)sh * dw) {
        r.h = (int)(((long long)sw * dh * 2 + dw) / (2LL * dw));
        if (r.h < 1) r.h = 1;
        r.y = (sh - r.h) / 2;
    }
    return r;
}

/* Taps of n_out outputs over n_in inputs; weights into w (room for
 * n_out * (ceil(n_in / n_out) + 2) values, which covers both cases). */
static void make_taps(int n_in, int n_out, tap_t *taps, double *w)
{
    size_t at = 0;
    const double scale = (double)n_in / n_out;
    for (int j = 0; j < n_out; j++) {
        tap_t *t = &taps[j];
        t->at = at;
        if (n_out < n_in) {
            /* area: source interval [lo, hi) of length scale */
            const double lo = j * scale, hi = (j + 1) * scale;
            t->first = (int)floor(lo);
            int last = (int)ceil(hi) - 1;
            if (last > n_in - 1) last = n_in - 1;
            t->n = last - t->first + 1;
            for (int i = t->first; i <= last; i++) {
                const double a = i > lo ? i : lo, b = i + 1 < hi ? i + 1 : hi;
                w[at++] = (b - a) / scale;
            }
        } else {
            /* bilinear between the two nearest centres (or a copy) */
            double x = (j + 0.5) * scale - 0.5;
            if (x < 0) x = 0;
            if (x > n_in - 1) x = n_in - 1;
            t->first = (int)floor(x);
            const double f = x - t->first;
            t->n = t->first + 1 < n_in ? 2 : 1;
            w[at++] = t->n == 2 ? 1.0 - f : 1.0;
            if (t->n == 2) w[at++] = f;
        }
    }
}

static uint8_t round_byte(double v)
{
    v = floor(v + 0.5);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

cnn_status_t cnn_resize_u8(const uint8_t *src, size_t stride, int ch, cnn_rect_t r,
                           uint8_t *dst, int dw, int dh)
{
    if (r.w < 1 || r.h < 1 || dw < 1 || dh < 1 || ch < 1)
        return cnn_error_set(CNN_EUSAGE, "resize: sizes must be at least 1");
    const size_t kx = (size_t)r.w / (size_t)dw + 3, ky = (size_t)r.h / (size_t)dh + 3;
    tap_t *tx = malloc(sizeof *tx * (size_t)dw), *ty = malloc(sizeof *ty * (size_t)dh);
    double *wx = malloc(sizeof *wx * kx * (size_t)dw), *wy = malloc(sizeof *wy * ky * (size_t)dh);
    double *tmp = malloc(sizeof *tmp * (size_t)dw * (size_t)r.h * (size_t)ch);
    cnn_status_t st = CNN_OK;
    if (!tx || !ty || !wx || !wy || !tmp) {
        st = cnn_error_set(CNN_ENOMEM, "resize: out of memory");
        goto done;
    }
    make_taps(r.w, dw, tx, wx);
    make_taps(r.h, dh, ty, wy);
    /* horizontal pass: (r.h, r.w, ch) -> tmp (r.h, dw, ch) */
    for (int y = 0; y < r.h; y++) {
        const uint8_t *row = src + (size_t)(r.y + y) * stride + (size_t)r.x * (size_t)ch;
        double *out = tmp + (size_t)y * (size_t)dw * (size_t)ch;
        for (int j = 0; j < dw; j++)
            for (int k = 0; k < ch; k++) {
                double s = 0.0;
                for (int t = 0; t < tx[j].n; t++)
                    s += wx[tx[j].at + (size_t)t] * row[(size_t)(tx[j].first + t) * (size_t)ch + (size_t)k];
                out[(size_t)j * (size_t)ch + (size_t)k] = s;
            }
    }
    /* vertical pass: tmp -> dst (dh, dw, ch) */
    const size_t rowlen = (size_t)dw * (size_t)ch;
    for (int i = 0; i < dh; i++)
        for (size_t e = 0; e < rowlen; e++) {
            double s = 0.0;
            for (int t = 0; t < ty[i].n; t++)
                s += wy[ty[i].at + (size_t)t] * tmp[(size_t)(ty[i].first + t) * rowlen + e];
            dst[(size_t)i * rowlen + e] = round_byte(s);
        }
done:
    free(tx);
    free(ty);
    free(wx);
    free(wy);
    free(tmp);
    return st;
}

void cnn_image_to_chw(const uint8_t *hwc, int w, int h, int ic, int oc, uint8_t *chw)
{
    const size_t hw = (size_t)h * (size_t)w;
    const int colour = ic >= 3;
    for (size_t p = 0; p < hw; p++) {
        const uint8_t *px = hwc + p * (size_t)ic;
        if (oc == 1) {
            chw[p] = colour ? (uint8_t)((299 * px[0] + 587 * px[1] + 114 * px[2] + 500) / 1000)
                            : px[0];
        } else {
            for (int k = 0; k < oc; k++) chw[(size_t)k * hw + p] = colour ? px[k] : px[0];
        }
    }
}
