/* filter.c - image filters through a one-layer conv net.
 *
 * The image is cut into tiles of R rows by TW columns (whole rows unless
 * the kernel is very large). Each (channel, tile) pair is one
 * single-channel image of the batch: the tile plus a halo of r = size/2
 * pixels on every side, taken from the image where it exists and zero
 * outside it. The conv layer then runs with pad 0 and gives exactly
 * R x TW outputs per tile. This is the zero-padded "same" filtering of the
 * whole image, but the layer's column buffer (size^2 x R x TW floats per
 * thread) stays bounded for big kernels and images, and a gray image
 * still gives every thread work. */
#include "mpicnn/filter.h"

#include <ctype.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicnn/csv.h"
#include "mpicnn/net.h"

/* Floats of the conv layer's column buffer per thread (4 MB). */
#define COL_FLOATS ((size_t)1 << 20)

static const char kernel_choices[] =
    "box, box:N (N odd, 1..99), sharpen, edge, sobel, or a CSV file";

void cnn_filter_free(cnn_filter_t *f)
{
    if (!f) return;
    free(f->weights);
    free(f);
}

static cnn_status_t filter_new(const char *name, int size, int nk, cnn_filter_mode_t mode,
                               cnn_filter_t **out)
{
    cnn_filter_t *f = calloc(1, sizeof *f);
    if (f) f->weights = calloc((size_t)nk * size * size, sizeof(float));
    if (!f || !f->weights) {
        cnn_filter_free(f);
        return cnn_error_set(CNN_ENOMEM, "out of memory for the kernel");
    }
    snprintf(f->name, sizeof f->name, "%s", name);
    f->size = size;
    f->nkernels = nk;
    f->mode = mode;
    *out = f;
    return CNN_OK;
}

/* A kernel file: its values must fill an odd square. */
static cnn_status_t filter_csv(const char *path, cnn_filter_t **out)
{
    float *v = NULL;
    size_t n = 0;
    CNN_TRY(cnn_csv_read(path, "--kernel", &v, &n));
    int side = (int)lround(sqrt((double)n));
    cnn_status_t st = CNN_OK;
    if (n == 0 || (size_t)side * (size_t)side != n || side % 2 == 0 ||
        side > CNN_FILTER_MAX_SIZE) {
        st = cnn_error_set(CNN_EDATA,
                           "--kernel %s: has %zu value%s; a kernel needs N x N values with N "
                           "odd, 1..%d (1, 9, 25, 49, ...)",
                           path, n, n == 1 ? "" : "s", CNN_FILTER_MAX_SIZE);
        goto done;
    }
    if ((st = filter_new(path, side, 1, CNN_FILTER_CLAMP, out)) != CNN_OK) goto done;
    memcpy((*out)->weights, v, n * sizeof(float));
done:
    free(v);
    return st;
}

cnn_status_t cnn_filter_create(const char *spec, cnn_filter_t **out)
{
    *out = NULL;
    if (!strcmp(spec, "box") || !strncmp(spec, "box:", 4)) {
        long n = 3;
        if (spec[3] == ':') {
            char *end = NULL;
            n = isdigit((unsigned char)spec[4]) ? strtol(spec + 4, &end, 10) : -1;
            if (n < 0 || *end != '\0')
                return cnn_error_set(CNN_EUSAGE, "--kernel %s: the box size must be an odd "
                                     "integer, 1..%d", spec, CNN_FILTER_MAX_SIZE);
        }
        if (n < 1 || n > CNN_FILTER_MAX_SIZE || n % 2 == 0)
            return cnn_error_set(CNN_EUSAGE, "--kernel %s: the box size %ld must be odd "
                                 "and in 1..%d", spec, n, CNN_FILTER_MAX_SIZE);
        char name[32];
        snprintf(name, sizeof name, "box:%ld", n);
        CNN_TRY(filter_new(name, (int)n, 1, CNN_FILTER_CLAMP, out));
        for (long i = 0; i < n * n; i++) (*out)->weights[i] = 1.0f / (float)(n * n);
        return CNN_OK;
    }
    if (!strcmp(spec, "sharpen") || !strcmp(spec, "edge")) {
        const int sharpen = spec[0] == 's';
        static const float ws[9] = {0, -1, 0, -1, 5, -1, 0, -1, 0};
        static const float we[9] = {0, 1, 0, 1, -4, 1, 0, 1, 0};
        CNN_TRY(filter_new(spec, 3, 1, sharpen ? CNN_FILTER_CLAMP : CNN_FILTER_ABS, out));
        memcpy((*out)->weights, sharpen ? ws : we, sizeof ws);
        return CNN_OK;
    }
    if (!strcmp(spec, "sobel")) {
        /* cross-correlation weights: h = x[i][j+1] - x[i][j-1],
         * v = x[i+1][j] - x[i-1][j] */
        static const float w[18] = {0, 0, 0, -1, 0, 1, 0, 0, 0,
                                    0, -1, 0, 0, 0, 0, 0, 1, 0};
        CNN_TRY(filter_new(spec, 3, 2, CNN_FILTER_MAGNITUDE, out));
        memcpy((*out)->weights, w, sizeof w);
        return CNN_OK;
    }
    if (strchr(spec, '/') || strchr(spec, '.') || access(spec, F_OK) == 0)
        return filter_csv(spec, out);
    return cnn_error_set(CNN_EUSAGE, "--kernel: unknown kernel '%s' (%s)", spec,
                         kernel_choices);
}

/* The response(s) of one pixel made into a byte: rounded half up, clamped. */
static uint8_t to_byte(cnn_filter_mode_t mode, float r0, float r1)
{
    double v = mode == CNN_FILTER_MAGNITUDE ? sqrt((double)r0 * r0 + (double)r1 * r1)
               : mode == CNN_FILTER_ABS     ? fabs((double)r0)
                                            : (double)r0;
    v = floor(v + 0.5);
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

cnn_status_t cnn_filter_apply(const cnn_filter_t *f, const cnn_image_t *in, cnn_image_t *out)
{
    cnn_status_t st = CNN_OK;
    cnn_net_t *net = NULL;
    memset(out, 0, sizeof *out);
    if (!in->pixels || in->w < 1 || in->h < 1 || in->channels < 1 || in->channels > 4)
        return cnn_error_set(CNN_EUSAGE, "filter: an image of %d x %d pixels with %d channels "
                             "cannot be filtered", in->w, in->h, in->channels);
    const int W = in->w, H = in->h, C = in->channels, S = f->size, P = S / 2;
    const int colour = (C == 2 || C == 4) ? C - 1 : C; /* the rest is alpha */
    const size_t npix = (size_t)W * H;

    /* tiles of R rows x TW columns: one tile's column buffer is S*S x R*TW
     * floats, at most COL_FLOATS unless a single row of S*S floats is more */
    const size_t ss = (size_t)S * S;
    const int TW = ss * W <= COL_FLOATS ? W : (int)(COL_FLOATS / ss > 0 ? COL_FLOATS / ss : 1);
    const size_t rows = COL_FLOATS / (ss * TW);
    const int R = rows < 1 ? 1 : rows > (size_t)H ? H : (int)rows;
    const int nty = (H + R - 1) / R, ntx = (W + TW - 1) / TW, ntiles = nty * ntx;
    const int items = colour * ntiles;
    const int threads = omp_get_max_threads();
    const int B = items < 2 * threads ? items : 2 * threads;
    const int IH = R + 2 * P, IW = TW + 2 * P;

    cnn_layer_spec_t spec = {.name = "filter", .filters = f->nkernels,
                             .kh = S, .kw = S, .stride = 1, .pad = 0};
    snprintf(spec.type, sizeof spec.type, "%s", cnn_conv_ops.type);
    st = cnn_net_create(&spec, 1, (cnn_shape_t){B, 1, IH, IW}, 0, &net);
    if (st != CNN_OK) {
        cnn_error_prefix("filter %s", f->name);
        goto fail;
    }
    cnn_layer_t *l = &net->layers[0];
    const size_t nw = (size_t)f->nkernels * ss;
    memcpy(l->params, f->weights, nw * sizeof(float));
    memset(l->params + nw, 0, (size_t)f->nkernels * sizeof(float)); /* bias */

    out->pixels = malloc(npix * (size_t)C);
    if (!out->pixels) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory for a %d x %d image", W, H);
        goto fail;
    }
    out->w = W;
    out->h = H;
    out->channels = C;
    const cnn_ctx_t ctx = cnn_net_ctx(net, 0, 0, 0, 0);
    float *x = cnn_net_input(net);

    for (int first = 0; first < items; first += B) {
        const int n = items - first < B ? items - first : B;
        /* x (n, 1, IH, IW): item t is tile (t % ntiles) of channel t / ntiles,
         * with its halo */
#pragma omp parallel for schedule(static)
        for (int t = 0; t < n; t++) {
            const int ch = (first + t) / ntiles, tile = (first + t) % ntiles;
            const int r0 = tile / ntx * R, c0 = tile % ntx * TW;
            float *xt = x + (size_t)t * IH * IW;
            for (int i = 0; i < IH; i++) {
                const int sr = r0 + i - P;
                float *row = xt + (size_t)i * IW;
                if (sr < 0 || sr >= H) {
                    memset(row, 0, sizeof(float) * (size_t)IW);
                    continue;
                }
                const uint8_t *src = in->pixels + (size_t)sr * W * C + ch;
                for (int j = 0; j < IW; j++) {
                    const int sc = c0 + j - P;
                    row[j] = (sc < 0 || sc >= W) ? 0.0f : (float)src[(size_t)sc * C];
                }
            }
        }
        /* y (n, nkernels, R, TW) */
        const float *y = cnn_net_forward(net, &ctx, n);
        const size_t plane = (size_t)R * TW;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < n; t++) {
            const int ch = (first + t) / ntiles, tile = (first + t) % ntiles;
            const int r0 = tile / ntx * R, c0 = tile % ntx * TW;
            const float *y0 = y + (size_t)t * f->nkernels * plane;
            const float *y1 = f->nkernels > 1 ? y0 + plane : y0;
            for (int i = 0; i < R && r0 + i < H; i++)
                for (int j = 0; j < TW && c0 + j < W; j++) {
                    const size_t o = (size_t)i * TW + j;
                    out->pixels[((size_t)(r0 + i) * W + c0 + j) * C + ch] =
                        to_byte(f->mode, y0[o], y1[o]);
                }
        }
    }
    if (colour < C)
        for (size_t p = 0; p < npix; p++)
            out->pixels[p * C + colour] = in->pixels[p * C + colour];
    cnn_net_free(net);
    return CNN_OK;

fail:
    cnn_net_free(net);
    cnn_image_free(out);
    return st;
}
