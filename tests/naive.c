/* naive.c - reference layers: loops over the definitions, no tricks. */
#include "naive.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IDX(n, c, h, w, C, H, W) ((((size_t)(n) * (C) + (c)) * (H) + (h)) * (W) + (w))

static void conv(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                 const double *x, const double *p, double *y)
{
    const int K = out.c, C = in.c, KH = s->kh, KW = s->kw;
    const double *b = p + (size_t)K * C * KH * KW;
    for (int n = 0; n < in.n; n++)
        for (int k = 0; k < K; k++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double acc = b[k];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < KH; ky++)
                            for (int kx = 0; kx < KW; kx++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                                acc += p[IDX(k, c, ky, kx, C, KH, KW)] *
                                       x[IDX(n, c, iy, ix, C, in.h, in.w)];
                            }
                    y[IDX(n, k, oy, ox, K, out.h, out.w)] = acc;
                }
}

static void pool(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                 const double *x, double *y, int is_max)
{
    for (int n = 0; n < in.n; n++)
        for (int c = 0; c < in.c; c++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double m = -INFINITY, sum = 0.0;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            double v = x[IDX(n, c, oy * s->stride + ky,
                                             ox * s->stride + kx, in.c, in.h, in.w)];
                            if (v > m) m = v;
                            sum += v;
                        }
                    y[IDX(n, c, oy, ox, in.c, out.h, out.w)] =
                        is_max ? m : sum / (s->kh * s->kw);
                }
}

static void batchnorm(const cnn_layer_spec_t *s, cnn_shape_t in, const double *x,
                      const double *p, const double *state, int train, double *y)
{
    const int C = in.c;
    const size_t hw = (size_t)in.h * in.w;
    for (int c = 0; c < C; c++) {
        double mean = state[c], var = state[C + c];
        if (train) {
            double s1 = 0.0, s2 = 0.0;
            for (int n = 0; n < in.n; n++)
                for (size_t j = 0; j < hw; j++) s1 += x[((size_t)n * C + c) * hw + j];
            mean = s1 / (double)(in.n * hw);
            for (int n = 0; n < in.n; n++)
                for (size_t j = 0; j < hw; j++) {
                    double d = x[((size_t)n * C + c) * hw + j] - mean;
                    s2 += d * d;
                }
            var = s2 / (double)(in.n * hw);
        }
        for (int n = 0; n < in.n; n++)
            for (size_t j = 0; j < hw; j++) {
                size_t i = ((size_t)n * C + c) * hw + j;
                y[i] = p[c] * (x[i] - mean) / sqrt(var + s->eps) + p[C + c];
            }
    }
}

void naive_forward(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                   const double *x, const double *params, const double *state,
                   const double *mask, int train, double *y)
{
    const size_t nin = (size_t)in.n * in.c * in.h * in.w;
    if (!strcmp(s->type, "conv")) {
        conv(s, in, out, x, params, y);
    } else if (!strcmp(s->type, "relu")) {
        for (size_t i = 0; i < nin; i++) y[i] = x[i] > 0 ? x[i] : 0;
    } else if (!strcmp(s->type, "maxpool")) {
        pool(s, in, out, x, y, 1);
    } else if (!strcmp(s->type, "avgpool")) {
        pool(s, in, out, x, y, 0);
    } else if (!strcmp(s->type, "gap")) {
        const size_t hw = (size_t)in.h * in.w;
        for (int p = 0; p < in.n * in.c; p++) {
            double sum = 0;
            for (size_t j = 0; j < hw; j++) sum += x[p * hw + j];
            y[p] = sum / (double)hw;
        }
    } else if (!strcmp(s->type, "flatten")) {
        memcpy(y, x, sizeof(double) * nin);
    } else if (!strcmp(s->type, "dense")) {
        const int D = in.c * in.h * in.w, M = out.c;
        for (int n = 0; n < in.n; n++)
            for (int m = 0; m < M; m++) {
                double acc = params[(size_t)M * D + m];
                for (int d = 0; d < D; d++)
                    acc += x[(size_t)n * D + d] * params[(size_t)m * D + d];
                y[(size_t)n * M + m] = acc;
            }
    } else if (!strcmp(s->type, "dropout")) {
        for (size_t i = 0; i < nin; i++) y[i] = train ? x[i] * mask[i] : x[i];
    } else if (!strcmp(s->type, "batchnorm")) {
        batchnorm(s, in, x, params, state, train, y);
    }
}

double naive_softmax_ce(const double *z, const int *labels, int n, int k)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        double m = z[(size_t)i * k], se = 0;
        for (int j = 1; j < k; j++) m = fmax(m, z[(size_t)i * k + j]);
        for (int j = 0; j < k; j++) se += exp(z[(size_t)i * k + j] - m);
        total += -(z[(size_t)i * k + labels[i]] - m - log(se));
    }
    return total;
}

double naive_hinge(const double *z, const int *labels, int n, int k)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            if (j != labels[i])
                total += fmax(0.0, z[(size_t)i * k + j] - z[(size_t)i * k + labels[i]] + 1.0);
    return total;
}

void naive_linspace(double lo, double hi, int n, double *out)
{
    for (int i = 0; i < n; i++) out[i] = n > 1 ? lo + (hi - lo) * i / (n - 1) : lo;
}

void naive_grad(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                double *x, double *params, const double *state, const double *mask,
                int train, const double *r, int wrt_params, size_t nv, double *g)
{
    const double h = 1e-6;
    size_t nout = (size_t)out.n * out.c * out.h * out.w;
    double *y = malloc(sizeof(double) * nout);
    double *v = wrt_params ? params : x;
    for (size_t i = 0; i < nv; i++) {
        double keep = v[i], f[2];
        for (int k = 0; k < 2; k++) {
            v[i] = keep + (k ? -h : h);
            naive_forward(s, in, out, x, params, state, mask, train, y);
            f[k] = 0;
            for (size_t j = 0; j < nout; j++) f[k] += r[j] * y[j];
        }
        v[i] = keep;
        g[i] = (f[0] - f[1]) / (2 * h);
    }
    free(y);
}
