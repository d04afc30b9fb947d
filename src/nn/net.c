/* net.c - build a network from layer specs, plan its memory, run it. */
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/kernels.h"
#include "mpicnn/memlimit.h"
#include "mpicnn/net.h"

#define ALIGN 64

/* Zeroed floats aligned for vector loads, or NULL. n may be 0. */
static float *alloc_floats(size_t n)
{
    if (n > (SIZE_MAX - ALIGN) / sizeof(float)) return NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    float *p = aligned_alloc(ALIGN, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* The bytes alloc_floats(n) takes; SIZE_MAX if they do not fit. */
static size_t floats_bytes(size_t n)
{
    if (n == SIZE_MAX || n > (SIZE_MAX - ALIGN) / sizeof(float)) return SIZE_MAX;
    return ((n ? n : 1) * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
}

/* Floats of a shape at its batch, n*c*h*w; SIZE_MAX if they do not fit. */
static size_t shape_floats(cnn_shape_t s)
{
    return cnn_mem_mul(cnn_mem_mul(cnn_mem_mul((size_t)s.n, (size_t)s.c), (size_t)s.h),
                       (size_t)s.w);
}

/* A thread's scratch in floats, rounded up to whole cache lines so that
 * each thread's scratch is on its own lines. */
static size_t work_stride(size_t work)
{
    const size_t line = ALIGN / sizeof(float);
    return work > SIZE_MAX - line ? SIZE_MAX : (work + line - 1) / line * line;
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

void cnn_net_plan_free(cnn_net_plan_t *plan)
{
    if (!plan) return;
    free(plan->layers);
    plan->layers = NULL;
    plan->nlayers = 0;
}

/* Layer i's shape and sizes on input `in`, and its part of the plan. */
static cnn_status_t plan_layer(const cnn_layer_spec_t *spec, int i, cnn_shape_t in,
                               int nthreads, cnn_net_plan_layer_t *pl)
{
    pl->ops = cnn_layer_find(spec->type);
    if (!pl->ops)
        return cnn_error_set(CNN_ECONFIG, "layer %s: unknown type '%s'", spec->name, spec->type);
    pl->in = in;
    CNN_TRY(pl->ops->shape(spec, in, &pl->out, &pl->sz));
    const cnn_layer_sizes_t *sz = &pl->sz;
    pl->params = pl->grads = cnn_mem_mul(sz->params, sizeof(float));
    pl->state = cnn_mem_mul(sz->state, sizeof(float));
    pl->cache = cnn_mem_mul(sz->cache, sizeof(float));
    /* an in-place layer (relu) writes over its input; never over the net's */
    pl->act = pl->ops->in_place && i > 0 ? 0 : floats_bytes(shape_floats(pl->out));
    pl->work = cnn_mem_add(cnn_mem_mul(cnn_mem_mul(work_stride(sz->work), (size_t)nthreads),
                                       sizeof(float)),
                           cnn_mem_mul(sz->shared, sizeof(float)));
    size_t t = cnn_mem_add(pl->params, pl->grads);
    t = cnn_mem_add(t, cnn_mem_add(pl->state, pl->cache));
    pl->total = cnn_mem_add(t, pl->act);
    return CNN_OK;
}

/* The arenas' sizes and the total from the layers' sizes. */
static void plan_totals(cnn_net_plan_t *plan)
{
    size_t ncache = 0, stride = 0, nshared = 0, max_act = shape_floats(plan->layers[0].in), t;
    plan->nparams = plan->nstate = 0;
    for (int i = 0; i < plan->nlayers; i++) {
        const cnn_net_plan_layer_t *pl = &plan->layers[i];
        plan->nparams = cnn_mem_add(plan->nparams, pl->sz.params);
        plan->nstate = cnn_mem_add(plan->nstate, pl->sz.state);
        ncache = cnn_mem_add(ncache, pl->sz.cache);
        if (pl->sz.work > stride) stride = pl->sz.work;
        if (pl->sz.shared > nshared) nshared = pl->sz.shared;
        const size_t a = shape_floats(pl->out);
        if (a > max_act) max_act = a;
    }
    plan->input = floats_bytes(shape_floats(plan->layers[0].in));
    plan->dbuf = cnn_mem_mul(floats_bytes(max_act), 2);
    plan->work = cnn_mem_add(floats_bytes(cnn_mem_mul(work_stride(stride), (size_t)plan->nthreads)),
                             floats_bytes(nshared));
    t = cnn_mem_mul(floats_bytes(plan->nparams), 2);
    t = cnn_mem_add(t, cnn_mem_add(floats_bytes(plan->nstate), floats_bytes(ncache)));
    t = cnn_mem_add(t, cnn_mem_add(plan->input, cnn_mem_add(plan->dbuf, plan->work)));
    for (int i = 0; i < plan->nlayers; i++) t = cnn_mem_add(t, plan->layers[i].act);
    plan->total = t;
}

cnn_status_t cnn_net_plan(const cnn_layer_spec_t *specs, int nlayers, cnn_shape_t input,
                          int nthreads, cnn_net_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    if (nlayers < 1) return cnn_error_set(CNN_ECONFIG, "the net has no layers");
    if (input.n < 1 || input.c < 1 || input.h < 1 || input.w < 1) {
        char b[64];
        return cnn_error_set(CNN_ECONFIG, "invalid input shape %s",
                             cnn_shape_str(input, b, sizeof b));
    }
    plan->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
    plan->layers = calloc((size_t)nlayers, sizeof *plan->layers);
    if (!plan->layers) return cnn_error_set(CNN_ENOMEM, "out of memory planning the net");
    plan->nlayers = nlayers;
    cnn_shape_t shape = input;
    for (int i = 0; i < nlayers; i++) {
        cnn_status_t st = plan_layer(&specs[i], i, shape, plan->nthreads, &plan->layers[i]);
        if (st != CNN_OK) {
            cnn_net_plan_free(plan);
            return st;
        }
        shape = plan->layers[i].out;
    }
    plan->output = shape;
    plan_totals(plan);
    return CNN_OK;
}

size_t cnn_net_plan_bytes(const cnn_net_plan_t *plan, const cnn_mem_item_t *extra, int nextra)
{
    size_t t = plan->total;
    for (int i = 0; i < nextra; i++) t = cnn_mem_add(t, extra[i].bytes);
    return t;
}

/* Appends to a message buffer, keeping it terminated when it is full. */
typedef struct {
    char *buf;
    size_t len, used;
} msgbuf_t;

static void __attribute__((format(printf, 2, 3))) put(msgbuf_t *m, const char *fmt, ...)
{
    if (m->used + 1 >= m->len) return;
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(m->buf + m->used, m->len - m->used, fmt, ap);
    va_end(ap);
    if (n > 0) m->used = m->used + (size_t)n < m->len ? m->used + (size_t)n : m->len - 1;
}

/* One row of the table: a name and its sizes; a 0 prints as "-". */
static void put_row(msgbuf_t *m, const char *name, const size_t *v, int nv)
{
    char b[32];
    put(m, "\n  %-22.22s", name);
    for (int i = 0; i < nv; i++) put(m, " %9s", v[i] ? cnn_mem_str(v[i], b, sizeof b) : "-");
}

/* Room left for the rows after the layers: a row is under 100 chars. */
#define TAIL_ROOM 800

/* The plan per layer and per extra, as the body of the refusal. */
static void put_table(msgbuf_t *m, const cnn_net_plan_t *plan, const cnn_layer_spec_t *specs,
                      const cnn_mem_item_t *extra, int nextra)
{
    char name[64];
    put(m, "\n  %-22s %9s %9s %9s %9s %9s %9s %9s", "layer", "params", "grads", "state",
        "output", "cache", "work", "total");
    put_row(m, "input", (size_t[]){0, 0, 0, plan->input, 0, 0, plan->input}, 7);
    for (int i = 0; i < plan->nlayers; i++) {
        const cnn_net_plan_layer_t *pl = &plan->layers[i];
        if (m->used + TAIL_ROOM >= m->len) {
            put(m, "\n  ... and %d more layers", plan->nlayers - i);
            break;
        }
        snprintf(name, sizeof name, "%s (%s)", specs[i].name, specs[i].type);
        put_row(m, name, (size_t[]){pl->params, pl->grads, pl->state, pl->act, pl->cache,
                                    pl->work, pl->total}, 7);
    }
    put_row(m, "gradient buffers (2)", (size_t[]){0, 0, 0, 0, 0, 0, plan->dbuf}, 7);
    snprintf(name, sizeof name, "work (largest, %d thr.)", plan->nthreads);
    put_row(m, name, (size_t[]){0, 0, 0, 0, 0, 0, plan->work}, 7);
    for (int i = 0; i < nextra; i++)
        put_row(m, extra[i].what, (size_t[]){0, 0, 0, 0, 0, 0, extra[i].bytes}, 7);
}

cnn_status_t cnn_net_plan_check(const cnn_net_plan_t *plan, const cnn_layer_spec_t *specs,
                                const cnn_mem_item_t *extra, int nextra, uint64_t budget,
                                const char *why)
{
    const size_t total = cnn_net_plan_bytes(plan, extra, nextra);
    if (total != SIZE_MAX && (uint64_t)total <= budget) return CNN_OK;
    char text[4000], t[32], b[32];
    msgbuf_t m = {text, sizeof text, 0};
    if (total == SIZE_MAX)
        put(&m, "the memory plan does not fit in the address space");
    else
        put(&m, "the memory plan needs %s, over the budget of %s (%s)",
            cnn_mem_str(total, t, sizeof t), cnn_mem_str(budget, b, sizeof b), why ? why : "");
    put(&m, "; the net was not built. The plan at batch %d (a layer's work is scratch "
            "the layers share: the net holds the largest once):", plan->layers[0].in.n);
    put_table(&m, plan, specs, extra, nextra);
    return cnn_error_set(CNN_ENOMEM, "%s", text);
}

/* The layers and arenas of a checked plan. */
static cnn_status_t net_alloc(cnn_net_t *net, const cnn_net_plan_t *plan,
                              const cnn_layer_spec_t *specs)
{
    size_t ncache = 0, max_act = shape_floats(net->input);
    for (int i = 0; i < plan->nlayers; i++) {
        cnn_layer_t *l = &net->layers[i];
        const cnn_net_plan_layer_t *pl = &plan->layers[i];
        *l = (cnn_layer_t){.spec = specs[i], .index = i, .ops = pl->ops, .in = pl->in,
                           .out = pl->out, .sz = pl->sz};
        ncache += pl->sz.cache;
        if (pl->sz.work > net->work_stride) net->work_stride = pl->sz.work;
        if (pl->sz.shared > net->nshared) net->nshared = pl->sz.shared;
        if (shape_floats(pl->out) > max_act) max_act = shape_floats(pl->out);
    }
    net->work_stride = work_stride(net->work_stride);
    net->params = alloc_floats(net->nparams);
    net->grads = net->grads_own = alloc_floats(net->nparams);
    net->state = alloc_floats(net->nstate);
    net->cache = alloc_floats(ncache);
    net->work = alloc_floats(net->work_stride * (size_t)net->nthreads);
    net->shared = alloc_floats(net->nshared);
    net->dbuf[0] = alloc_floats(max_act);
    net->dbuf[1] = alloc_floats(max_act);
    net->act[0] = alloc_floats(shape_floats(net->input));
    if (!net->params || !net->grads || !net->state || !net->cache || !net->work ||
        !net->shared || !net->dbuf[0] || !net->dbuf[1] || !net->act[0])
        return CNN_ENOMEM;
    return CNN_OK;
}

/* Points each layer into the arenas and gives it its output buffer. */
static cnn_status_t net_bind(cnn_net_t *net)
{
    size_t po = 0, so = 0, co = 0;
    for (int i = 0; i < net->nlayers; i++) {
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
        net->act[i + 1] = alloc_floats(shape_floats(l->out));
        if (!net->act[i + 1]) return CNN_ENOMEM;
    }
    return CNN_OK;
}

cnn_status_t cnn_net_build(const cnn_net_plan_t *plan, const cnn_layer_spec_t *specs,
                           cnn_net_t **out)
{
    *out = NULL;
    cnn_net_t *net = calloc(1, sizeof *net);
    if (!net) return cnn_error_set(CNN_ENOMEM, "out of memory building the net");
    net->nlayers = plan->nlayers;
    net->input = plan->layers[0].in;
    net->output = plan->output;
    net->nthreads = plan->nthreads;
    net->nparams = plan->nparams;
    net->nstate = plan->nstate;
    net->layers = calloc((size_t)plan->nlayers, sizeof *net->layers);
    net->act = calloc((size_t)plan->nlayers + 1, sizeof *net->act);
    if (!net->layers || !net->act || net_alloc(net, plan, specs) != CNN_OK ||
        net_bind(net) != CNN_OK) {
        cnn_net_free(net);
        return cnn_error_set(CNN_ENOMEM, "out of memory building the net");
    }
    *out = net;
    return CNN_OK;
}

cnn_status_t cnn_net_create_within(const cnn_layer_spec_t *specs, int nlayers,
                                   cnn_shape_t input, int nthreads,
                                   const cnn_mem_item_t *extra, int nextra, uint64_t budget,
                                   const char *why, cnn_net_t **out)
{
    cnn_net_plan_t plan;
    *out = NULL;
    cnn_status_t st = cnn_net_plan(specs, nlayers, input, nthreads, &plan);
    if (st == CNN_OK) st = cnn_net_plan_check(&plan, specs, extra, nextra, budget, why);
    if (st == CNN_OK) st = cnn_net_build(&plan, specs, out);
    cnn_net_plan_free(&plan);
    return st;
}

cnn_status_t cnn_net_create(const cnn_layer_spec_t *specs, int nlayers,
                            cnn_shape_t input, int nthreads, cnn_net_t **out)
{
    return cnn_net_create_within(specs, nlayers, input, nthreads, NULL, 0, CNN_MEM_UNLIMITED,
                                 "no budget", out);
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
