/* net64.c - a network in double precision (net64.h): the layers'
 * references, run in the order of the net. */
#include "mpicnn/net64.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/memlimit.h"
#include "mpicnn/rng.h"

void cnn_net64_free(cnn_net64_t *n)
{
    if (!n) return;
    for (int i = 0; n->act && i <= n->nlayers; i++) free(n->act[i]);
    for (int i = 0; n->grad && i <= n->nlayers; i++) free(n->grad[i]);
    for (int i = 0; n->layers && i < n->nlayers; i++) free(n->layers[i].mask);
    free(n->act);
    free(n->grad);
    free(n->dx);
    free(n->layers);
    free(n->params);
    free(n->grads);
    free(n->state);
    free(n);
}

/* Values of a shape at its max batch, at least 1 (malloc(0) may be NULL). */
static size_t shape_values(cnn_shape_t s)
{
    const size_t v = (size_t)s.n * cnn_shape_image(s);
    return v ? v : 1;
}

/* Layer i of n from layer l of the float net: its slices at the same
 * offsets, and a mask buffer for a type with a drop probability (key p:
 * dropout), whose reference reads a mask in training. */
static cnn_status_t copy_layer(cnn_net64_t *n, const cnn_net_t *net, int i)
{
    const cnn_layer_t *l = &net->layers[i];
    cnn_layer64_t *d = &n->layers[i];
    *d = (cnn_layer64_t){.ops = l->ops, .spec = l->spec, .index = l->index, .in = l->in,
                         .out = l->out, .nparams = l->sz.params, .nstate = l->sz.state};
    if (l->sz.params) {
        const size_t at = (size_t)(l->params - net->params);
        d->params = n->params + at;
        d->grads = n->grads + at;
    }
    if (l->sz.state) d->state = n->state + (size_t)(l->state - net->state);
    d->ninputs = l->ninputs;
    for (int k = 0; k < l->ninputs; k++) {
        d->src[k] = l->src[k];
        d->ins[k] = l->ins[k];
        d->xs[k] = n->act[l->src[k] + 1];
    }
    if (cnn_layer_key(l->ops, "p") && !(d->mask = malloc(sizeof(double) * shape_values(l->in))))
        return cnn_error_set(CNN_ENOMEM, "out of memory for a double net");
    return CNN_OK;
}

size_t cnn_net64_bytes(const cnn_net_t *net)
{
    /* params, grads and state; an output and a gradient buffer per layer
     * and for the input; the largest layer's input gradients */
    size_t doubles = cnn_mem_add(cnn_mem_add(net->nparams, net->nparams), net->nstate), dx = 1;
    for (int i = 0; i <= net->nlayers; i++) {
        const size_t v = shape_values(i ? net->layers[i - 1].out : net->input);
        doubles = cnn_mem_add(doubles, cnn_mem_mul(v, 2));
    }
    for (int i = 0; i < net->nlayers; i++) {
        size_t v = 0;
        for (int k = 0; k < net->layers[i].ninputs; k++)
            v = cnn_mem_add(v, shape_values(net->layers[i].ins[k]));
        dx = v > dx ? v : dx;
    }
    return cnn_mem_mul(cnn_mem_add(doubles, dx), sizeof(double));
}

cnn_status_t cnn_net64_create(const cnn_net_t *net, cnn_net64_t **out)
{
    cnn_net64_t *n = calloc(1, sizeof *n);
    cnn_status_t st = CNN_ENOMEM;
    *out = NULL;
    if (!n) return cnn_error_set(CNN_ENOMEM, "out of memory for a double net");
    n->nlayers = net->nlayers;
    n->input = net->input;
    n->output = net->output;
    n->nparams = net->nparams;
    n->nstate = net->nstate;
    n->layers = calloc((size_t)net->nlayers, sizeof *n->layers);
    n->act = calloc((size_t)net->nlayers + 1, sizeof *n->act);
    n->grad = calloc((size_t)net->nlayers + 1, sizeof *n->grad);
    n->params = malloc(sizeof(double) * (net->nparams + 1));
    n->grads = calloc(net->nparams + 1, sizeof(double));
    n->state = malloc(sizeof(double) * (net->nstate + 1));
    if (!n->layers || !n->act || !n->grad || !n->params || !n->grads || !n->state) goto fail;
    for (size_t j = 0; j < net->nparams; j++) n->params[j] = net->params[j];
    for (size_t j = 0; j < net->nstate; j++) n->state[j] = net->state[j];
    for (int i = 0; i <= net->nlayers; i++) {
        const cnn_shape_t s = i ? net->layers[i - 1].out : net->input;
        n->act[i] = malloc(sizeof(double) * shape_values(s));
        n->grad[i] = malloc(sizeof(double) * shape_values(s));
        if (!n->act[i] || !n->grad[i]) goto fail;
    }
    size_t dx = 1;
    for (int i = 0; i < net->nlayers; i++) {
        size_t v = 0;
        for (int k = 0; k < net->layers[i].ninputs; k++) v += shape_values(net->layers[i].ins[k]);
        dx = v > dx ? v : dx;
    }
    if (!(n->dx = malloc(sizeof(double) * dx))) goto fail;
    for (int i = 0; i < net->nlayers; i++)
        if ((st = copy_layer(n, net, i)) != CNN_OK) goto fail;
    *out = n;
    return CNN_OK;
fail:
    cnn_net64_free(n);
    return st == CNN_ENOMEM ? cnn_error_set(CNN_ENOMEM, "out of memory for a double net") : st;
}

void cnn_net64_set_input(cnn_net64_t *n, const double *x, int k, const float *mean,
                         const float *std)
{
    const cnn_shape_t s = n->input;
    const size_t hw = (size_t)s.h * s.w;
    for (int b = 0; b < k; b++)
        for (int c = 0; c < s.c; c++) {
            const size_t o = ((size_t)b * s.c + c) * hw;
            for (size_t j = 0; j < hw; j++)
                n->act[0][o + j] = mean && std ? (x[o + j] - mean[c]) / std[c] : x[o + j];
        }
}

void cnn_net64_set_pixels(cnn_net64_t *n, const uint8_t *images, int k, const float *mean,
                          const float *std)
{
    const size_t total = (size_t)k * cnn_shape_image(n->input);
    double *x = n->act[0];
    for (size_t j = 0; j < total; j++) x[j] = images[j] / 255.0;
    /* in place: each value is read before it is written */
    cnn_net64_set_input(n, x, k, mean, std);
}

cnn_ref_args_t cnn_net64_ref_args(const cnn_net64_t *n, int i, int train, int k)
{
    const cnn_layer64_t *l = &n->layers[i];
    cnn_ref_args_t r = {.spec = &l->spec, .in = l->in, .out = l->out, .x = l->xs[0],
                        .params = l->params, .state = l->state, .mask = l->mask,
                        .train = train};
    if (cnn_layer_is_merge(l->ops)) {
        r.nx = l->ninputs;
        r.xs = l->xs;
        r.ins = l->ins;
    }
    r.in.n = r.out.n = k;
    return r;
}

/* Dropout's mask for k images, as the float layer draws it for run seed
 * `seed` at rank 0, step 0: element j is dropped when its uniform falls
 * below p, else scaled by 1 / (1 - p). */
static void dropout_mask(cnn_layer64_t *l, uint64_t seed, int k)
{
    const size_t total = (size_t)k * cnn_shape_image(l->in);
    const float p = l->spec.p;
    const uint64_t stream = cnn_hash4(seed, 0, 0, (uint64_t)l->index);
    for (size_t j = 0; j < total; j++)
        l->mask[j] = cnn_u01(cnn_hash4(stream, j, 0, 0)) < p ? 0.0 : 1.0 / (1.0 - (double)p);
}

const double *cnn_net64_forward(cnn_net64_t *n, int train, uint64_t seed, int k)
{
    for (int i = 0; i < n->nlayers; i++) {
        cnn_layer64_t *l = &n->layers[i];
        if (l->mask && train) dropout_mask(l, seed, k);
        const cnn_ref_args_t r = cnn_net64_ref_args(n, i, train, k);
        l->ops->reference(&r, n->act[i + 1]);
    }
    return n->act[n->nlayers];
}

void cnn_net64_zero_grad(cnn_net64_t *n)
{
    memset(n->grads, 0, sizeof(double) * (n->nparams + 1));
}

void cnn_net64_backward(cnn_net64_t *n, int train, int k, const double *dy)
{
    const int last = n->nlayers;
    memcpy(n->grad[last], dy, sizeof(double) * (size_t)k * cnn_shape_image(n->output));
    for (int i = 0; i < last; i++)
        memset(n->grad[i], 0, sizeof(double) * (size_t)k *
                                  cnn_shape_image(i ? n->layers[i - 1].out : n->input));
    /* in reverse order a layer's output gradient is complete, its readers
     * all done; its input gradients add into their producers' */
    for (int i = last - 1; i >= 0; i--) {
        const cnn_layer64_t *l = &n->layers[i];
        const cnn_ref_args_t r = cnn_net64_ref_args(n, i, train, k);
        l->ops->reference_backward(&r, n->act[i + 1], n->grad[i + 1], n->dx, l->grads);
        const double *d = n->dx;
        for (int j = 0; j < l->ninputs; j++) {
            const size_t m = (size_t)k * cnn_shape_image(l->ins[j]);
            double *g = n->grad[l->src[j] + 1];
            for (size_t v = 0; v < m; v++) g[v] += d[v];
            d += m;
        }
    }
}

/* per sample: log sum_j exp(z_j) - z_y, computed after subtracting the
 * largest z; dz = softmax(z) - onehot(y) */
static double softmax_ce64(const double *z, int y, int K, double *dz)
{
    double zmax = z[0], se = 0;
    for (int j = 1; j < K; j++) zmax = z[j] > zmax ? z[j] : zmax;
    for (int j = 0; j < K; j++) se += exp(z[j] - zmax);
    const double lse = zmax + log(se);
    for (int j = 0; dz && j < K; j++) dz[j] = exp(z[j] - lse) - (j == y);
    return lse - z[y];
}

/* per sample: sum over j != y of max(0, z_j - z_y + 1) */
static double hinge64(const double *z, int y, int K, double *dz)
{
    double total = 0;
    int active = 0;
    for (int j = 0; j < K; j++) {
        const double margin = z[j] - z[y] + 1;
        if (dz) dz[j] = 0;
        if (j == y || !(margin > 0)) continue;
        total += margin;
        active++;
        if (dz) dz[j] = 1;
    }
    if (dz) dz[y] = -active;
    return total;
}

double cnn_net64_loss(const double *z, const int *labels, int k, int K, int hinge, double *dz)
{
    double sum = 0;
    for (int i = 0; i < k; i++) {
        const size_t o = (size_t)i * K;
        sum += hinge ? hinge64(z + o, labels[i], K, dz ? dz + o : NULL)
                     : softmax_ce64(z + o, labels[i], K, dz ? dz + o : NULL);
    }
    return sum;
}
