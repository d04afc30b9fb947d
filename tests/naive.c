/* naive.c - reference losses and finite differences; the reference
 * layers are the ops tables' `reference` functions. */
#include "naive.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each type's reference forward lives in its layer file (the ops table's
 * `reference`); this dispatches to it. */
void naive_forward(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out,
                   const double *x, const double *params, const double *state,
                   const double *mask, int train, double *y)
{
    const cnn_layer_ops_t *ops = cnn_layer_find(s->type);
    if (!ops || !ops->reference) {
        fprintf(stderr, "naive_forward: no reference for layer type '%s'\n", s->type);
        abort();
    }
    const cnn_ref_args_t r = {.spec = s, .in = in, .out = out, .x = x, .params = params,
                             .state = state, .mask = mask, .train = train};
    ops->reference(&r, y);
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
