/* net.c - build a network from layer specs, plan its memory, run it. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/kernels.h"
#include "mpicnn/net.h"

#define ALIGN 64

/* Zeroed floats aligned for vector loads, or NULL. n may be 0. */
static float *alloc_floats(size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    float *p = aligned_alloc(ALIGN, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void cnn_net_free(cnn_net_t *net)
{
    if (!net) return;
    if (net->act)
        for (int i = 0; i <= net->nlayers; i++)
            if (i == 0 || net->act[i] != net->act[i - 1]) free(net->act[i]); /* shared */
    free(net->act);
    free(net->layers);
    free(net->params);
    free(net->grads_own);
    free(net->state);
    free(net->dbuf[0]);
    free(net->dbuf[1]);
    free(net->work);
    free(net->shared);
    free(net->cache);
    free(net);
}

cnn_status_t cnn_net_create(const cnn_layer_spec_t *specs, int nlayers,
                            cnn_shape_t input, int nthreads, cnn_net_t **out)
{
    cnn_status_t st = CNN_OK;
    *out = NULL;
    if (nlayers < 1)
        return cnn_error_set(CNN_ECONFIG, "the net has no layers");
    if (input.n < 1 || input.c < 1 || input.h < 1 || input.w < 1) {
        char b[64];
        return cnn_error_set(CNN_ECONFIG, "invalid input shape %s",
                             cnn_shape_str(input, b, sizeof b));
    }
    cnn_net_t *net = calloc(1, sizeof *net);
    if (!net) return cnn_error_set(CNN_ENOMEM, "out of memory building the net");
    net->nlayers = nlayers;
    net->input = input;
    net->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
    net->layers = calloc((size_t)nlayers, sizeof *net->layers);
    net->act = calloc((size_t)nlayers + 1, sizeof *net->act);
    if (!net->layers || !net->act) goto nomem;

    /* shape inference and sizes */
    cnn_shape_t shape = input;
    size_t max_act = (size_t)input.n * cnn_shape_image(input), cache = 0;
    for (int i = 0; i < nlayers; i++) {
        cnn_layer_t *l = &net->layers[i];
        l->spec = specs[i];
        l->index = i;
        l->ops = cnn_layer_find(specs[i].type);
        if (!l->ops) {
            st = cnn_error_set(CNN_ECONFIG, "layer %s: unknown type '%s'",
                               specs[i].name, specs[i].type);
            goto fail;
        }
        l->in = shape;
        st = l->ops->shape(&l->spec, shape, &l->out, &l->sz);
        if (st != CNN_OK) goto fail;
        shape = l->out;
        net->nparams += l->sz.params;
        net->nstate += l->sz.state;
        cache += l->sz.cache;
        if (l->sz.work > net->work_stride) net->work_stride = l->sz.work;
        if (l->sz.shared > net->nshared) net->nshared = l->sz.shared;
        size_t a = (size_t)shape.n * cnn_shape_image(shape);
        if (a > max_act) max_act = a;
    }
    net->output = shape;
    /* keep each thread's scratch on its own cache lines */
    net->work_stride = (net->work_stride + ALIGN / sizeof(float) - 1) /
                       (ALIGN / sizeof(float)) * (ALIGN / sizeof(float));

    net->params = alloc_floats(net->nparams);
    net->grads = net->grads_own = alloc_floats(net->nparams);
    net->state = alloc_floats(net->nstate);
    net->cache = alloc_floats(cache);
    net->work = alloc_floats(net->work_stride * (size_t)net->nthreads);
    net->shared = alloc_floats(net->nshared);
    net->dbuf[0] = alloc_floats(max_act);
    net->dbuf[1] = alloc_floats(max_act);
    if (!net->params || !net->grads || !net->state || !net->cache ||
        !net->work || !net->shared || !net->dbuf[0] || !net->dbuf[1])
        goto nomem;
    net->act[0] = alloc_floats((size_t)input.n * cnn_shape_image(input));
    if (!net->act[0]) goto nomem;

    size_t po = 0, so = 0, co = 0;
    for (int i = 0; i < nlayers; i++) {
        cnn_layer_t *l = &net->layers[i];
        l->params = net->params + po;
        l->grads = net->grads + po;
        l->state = net->state + so;
        l->cache = net->cache + co;
        po += l->sz.params;
        so += l->sz.state;
        co += l->sz.cache;
        /* an in-place layer (relu) writes over its input, which saves a
         * buffer and a pass over memory; never over the net's input */
        if (l->ops->in_place && i > 0) {
            net->act[i + 1] = net->act[i];
            continue;
        }
        net->act[i + 1] = alloc_floats((size_t)l->out.n * cnn_shape_image(l->out));
        if (!net->act[i + 1]) goto nomem;
    }
    *out = net;
    return CNN_OK;

nomem:
    st = cnn_error_set(CNN_ENOMEM, "out of memory building the net");
fail:
    cnn_net_free(net);
    return st;
}

void cnn_net_init(cnn_net_t *net, uint64_t seed)
{
    for (int i = 0; i < net->nlayers; i++) {
        cnn_layer_t *l = &net->layers[i];
        if (l->ops->init) l->ops->init(l, seed);
    }
}

cnn_ctx_t cnn_net_ctx(const cnn_net_t *net, int train, uint64_t seed,
                      int rank, uint64_t step)
{
    cnn_ctx_t ctx = {.train = train, .seed = seed, .rank = rank, .step = step,
                     .nthreads = net->nthreads, .work = net->work,
                     .work_stride = net->work_stride, .shared = net->shared};
    return ctx;
}

const float *cnn_net_forward(cnn_net_t *net, const cnn_ctx_t *ctx, int n)
{
    for (int i = 0; i < net->nlayers; i++) {
        cnn_layer_t *l = &net->layers[i];
        if (cnn_net_relu_folded(net, i)) {
            /* a ReLU and the max pool after it: the pool reads the ReLU's
             * input and clamps its own output */
            l = &net->layers[++i];
            l->ops->forward_after_relu(l, ctx, n, net->act[i - 1], net->act[i + 1]);
            continue;
        }
        l->ops->forward(l, ctx, n, net->act[i], net->act[i + 1]);
    }
    return net->act[net->nlayers];
}

int cnn_net_relu_folded(const cnn_net_t *net, int i)
{
    return i >= 0 && i + 1 < net->nlayers && net->layers[i].ops->relu &&
           net->layers[i + 1].ops->backward_after_relu &&
           net->layers[i + 1].ops->forward_after_relu;
}

const float *cnn_net_layer_output(cnn_net_t *net, const cnn_ctx_t *ctx, int n, int i)
{
    const int r = cnn_net_relu_folded(net, i) ? i : cnn_net_relu_folded(net, i + 1) ? i + 1 : -1;
    if (r >= 0) {
        cnn_layer_t *relu = &net->layers[r];
        relu->ops->forward(relu, ctx, n, net->act[r], net->act[r + 1]);
    }
    return net->act[i + 1];
}

void cnn_net_backward(cnn_net_t *net, const cnn_ctx_t *ctx, int n,
                      const float *dout)
{
    const float *g = dout;
    int cur = 0;
    for (int i = net->nlayers - 1; i >= 0; i--) {
        cnn_layer_t *l = &net->layers[i];
        /* a ReLU and the max pool after it in one pass over memory, not
         * two: the pool's backward_after_relu gives the ReLU's dx */
        const int fuse = cnn_net_relu_folded(net, i - 1);
        /* the first layer's input gradient is never needed */
        float *dx = i - fuse > 0 ? net->dbuf[cur] : NULL;
        if (fuse)
            l->ops->backward_after_relu(l, ctx, n, net->act[i], net->act[i + 1], g, dx);
        else
            l->ops->backward(l, ctx, n, net->act[i], net->act[i + 1], g, dx);
        g = dx;
        cur ^= 1;
        i -= fuse;
    }
}

void cnn_net_zero_grad(cnn_net_t *net)
{
    memset(net->grads, 0, sizeof(float) * net->nparams);
}

void cnn_net_bind_grads(cnn_net_t *net, float *grads)
{
    /* the same layout in the new block */
    for (int i = 0; i < net->nlayers; i++)
        net->layers[i].grads = grads + (net->layers[i].grads - net->grads);
    free(net->grads_own);
    net->grads_own = NULL;
    net->grads = grads;
    cnn_net_zero_grad(net);
}

cnn_layer_t *cnn_net_layer(cnn_net_t *net, const char *name)
{
    for (int i = 0; i < net->nlayers; i++)
        if (strcmp(net->layers[i].spec.name, name) == 0) return &net->layers[i];
    return NULL;
}

void cnn_net_print(const cnn_net_t *net, FILE *f)
{
    char b[64];
    cnn_shape_t in = net->input;
    fprintf(f, "%-12s %-10s %-20s %10s\n", "layer", "type", "output (c,h,w)", "params");
    fprintf(f, "%-12s %-10s (%d,%d,%d)%*s %10d\n", "input", "", in.c, in.h, in.w,
            (int)(19 - snprintf(b, sizeof b, "(%d,%d,%d)", in.c, in.h, in.w)), "", 0);
    for (int i = 0; i < net->nlayers; i++) {
        const cnn_layer_t *l = &net->layers[i];
        snprintf(b, sizeof b, "(%d,%d,%d)", l->out.c, l->out.h, l->out.w);
        fprintf(f, "%-12s %-10s %-20s %10zu\n", l->spec.name, l->spec.type, b,
                l->sz.params);
    }
    fprintf(f, "total parameters: %zu\n", net->nparams);
}
