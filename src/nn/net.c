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
        for (int i = 0; i <= net->nlayers; i++) {
            int shared = 0; /* an in-place layer's output is an earlier buffer */
            for (int j = 0; j < i && !shared; j++) shared = net->act[j] == net->act[i];
            if (!shared) free(net->act[i]);
        }
    free(net->act);
    free(net->layers);
    free(net->fold);
    free(net->affine_into);
    free(net->affine_from);
    if (net->folded)
        for (int i = 0; i < net->nlayers; i++) free(net->folded[i]);
    free(net->folded);
    free(net->steps);
    free(net->params);
    free(net->grads_own);
    free(net->state);
    if (net->dbuf)
        for (int b = 0; b < net->ndbuf; b++) free(net->dbuf[b]);
    free(net->dbuf);
    free(net->work);
    free(net->shared);
    free(net->cache);
    free(net);
}

void cnn_net_plan_free(cnn_net_plan_t *plan)
{
    if (!plan) return;
    free(plan->layers);
    free(plan->steps);
    plan->layers = NULL;
    plan->steps = NULL;
    plan->nlayers = plan->nsteps = 0;
}

/* ---- the graph ------------------------------------------------------------
 * Layer i's inputs are the net's input (-1) or earlier layers' outputs:
 * `layers` is the order of evaluation, so a reference to the layer itself
 * or a later one (a cycle) is refused, as is a name no layer has. */

/* Index of the layer called `name` among specs[0..nlayers), or -1; -2
 * for the net's input. */
static int find_spec(const cnn_layer_spec_t *specs, int nlayers, const char *name)
{
    if (strcmp(name, CNN_NET_INPUT_NAME) == 0) return -2;
    for (int j = 0; j < nlayers; j++)
        if (strcmp(specs[j].name, name) == 0) return j;
    return -1;
}

/* Layer i's inputs into pl->src (-1: the net's input), checked against
 * its type. */
static cnn_status_t resolve_inputs(const cnn_layer_spec_t *specs, int nlayers, int i,
                                   cnn_net_plan_layer_t *pl)
{
    const cnn_layer_spec_t *s = &specs[i];
    const int merge = cnn_layer_is_merge(pl->ops);
    if (s->ninputs < 0 || s->ninputs > CNN_LAYER_INPUTS_MAX ||
        (merge ? s->ninputs < 2 : s->ninputs > 1))
        return merge ? cnn_error_set(CNN_ECONFIG, "layer %s: a %s layer takes 2 to %d inputs "
                                     "(inputs = A, B), not %d", s->name, s->type,
                                     CNN_LAYER_INPUTS_MAX, s->ninputs)
                     : cnn_error_set(CNN_ECONFIG, "layer %s: a %s layer takes one input, "
                                     "not %d", s->name, s->type, s->ninputs);
    if (s->ninputs == 0) { /* the layer before, or the net's input */
        pl->ninputs = 1;
        pl->src[0] = i - 1;
        return CNN_OK;
    }
    pl->ninputs = s->ninputs;
    for (int k = 0; k < s->ninputs; k++) {
        const char *name = s->inputs[k];
        const int j = find_spec(specs, nlayers, name);
        if (j == -1)
            return cnn_error_set(CNN_ECONFIG, "layer %s: input '%s' is not a layer of the net "
                                 "(nor '%s', the net's input)", s->name, name,
                                 CNN_NET_INPUT_NAME);
        if (j >= i)
            return cnn_error_set(CNN_ECONFIG, "layer %s: input '%s' is %s; a layer takes the "
                                 "net's input or earlier layers in [net] layers, which is "
                                 "the order of evaluation (no cycles)", s->name, name,
                                 j == i ? "the layer itself" : "a later layer");
        for (int m = 0; m < k; m++)
            if (strcmp(s->inputs[m], name) == 0)
                return cnn_error_set(CNN_ECONFIG, "layer %s: input '%s' is named twice",
                                     s->name, name);
        pl->src[k] = j < 0 ? -1 : j;
    }
    return CNN_OK;
}

/* An output nothing takes (but the last layer's, the net's output) is
 * refused: its backward pass would have no gradient. */
static cnn_status_t plan_unused(const cnn_layer_spec_t *specs, const cnn_net_plan_t *plan)
{
    for (int i = 0; i + 1 < plan->nlayers; i++)
        if (plan->layers[i].uses == 0)
            return cnn_error_set(CNN_ECONFIG, "layer %s: no layer takes its output, and it "
                                 "is not the last layer (the net's output)", specs[i].name);
    return CNN_OK;
}

/* Fusions on (cnn_net_set_fuse). */
static int fuse_on = 1;

int cnn_net_set_fuse(int on)
{
    const int was = fuse_on;
    fuse_on = on != 0;
    return was;
}

/* A ReLU (i, in place over its one input s) whose input no other layer
 * reads, and not folded into a pool after it: the layer s runs it over
 * its own output if its type can (ops->relu_out) and its sizes do not
 * say otherwise (sz.no_relu_out: a conv whose engine has no ReLU). In
 * inference, where s is a batchnorm folded into the conv before it
 * (plan_affine), that conv runs it: the batchnorm makes no pass, and the
 * conv, which writes the batchnorm's output, clamps it. */
static void plan_relu_out(cnn_net_plan_layer_t *ls, int i)
{
    cnn_net_plan_layer_t *pl = &ls[i];
    if (!pl->ops->relu || !pl->in_place || pl->fold >= 0) return;
    int s = pl->src[0];
    if (ls[s].affine_into >= 0) s = ls[s].affine_into;
    if (!ls[s].ops->relu_out || ls[s].sz.no_relu_out || ls[s].relu_out >= 0) return;
    pl->fold = s;
    ls[s].relu_out = i;
}

/* Inference: a batchnorm (test_affine) whose input is a conv
 * (fold_affine) that no other layer reads is folded into the conv, and
 * its output is the conv's buffer. */
static void plan_affine(cnn_net_plan_layer_t *ls, int i)
{
    cnn_net_plan_layer_t *pl = &ls[i];
    const int s = pl->src[0];
    if (!pl->ops->test_affine || pl->ninputs != 1 || s < 0 || ls[s].uses != 1 ||
        !ls[s].ops->fold_affine)
        return;
    pl->affine_into = s;
    pl->in_place = 1;
    ls[s].affine_from = i;
}

/* The consumers of every layer's output, and the decisions that depend
 * on them: which layers run in place, which ReLUs are folded into the
 * max pool after them, and in inference which batchnorms into the conv
 * before them. (Which ReLUs are folded into the layer before them waits
 * for the shapes: plan_relu_out.) */
static void plan_uses(cnn_net_plan_t *plan)
{
    cnn_net_plan_layer_t *ls = plan->layers;
    const int nl = plan->nlayers;
    for (int i = 0; i < nl; i++)
        for (int k = 0; k < ls[i].ninputs; k++)
            if (ls[i].src[k] >= 0) ls[ls[i].src[k]].uses++;
    for (int i = 0; i < nl; i++) {
        cnn_net_plan_layer_t *pl = &ls[i];
        const int s = pl->src[0];
        /* an in-place layer (relu) writes over its input: never over the
         * net's, nor over one another layer reads */
        pl->in_place = pl->ops->in_place && pl->ninputs == 1 && s >= 0 && ls[s].uses == 1;
        pl->fold = pl->relu_out = pl->affine_into = pl->affine_from = -1;
        /* a ReLU whose one consumer is a max pool: the pool runs both */
        if (fuse_on && pl->ninputs == 1 && s >= 0 && ls[s].ops->relu && ls[s].uses == 1 &&
            pl->ops->backward_after_relu && pl->ops->forward_after_relu)
            ls[s].fold = i;
    }
    for (int i = 0; i < nl && fuse_on && plan->infer; i++) plan_affine(ls, i);
}

/* Layer i's type and inputs. */
static cnn_status_t plan_graph(const cnn_layer_spec_t *specs, int nlayers, int i,
                               cnn_net_plan_layer_t *pl)
{
    const cnn_layer_spec_t *spec = &specs[i];
    pl->ops = cnn_layer_find(spec->type);
    if (!pl->ops)
        return cnn_error_set(CNN_ECONFIG, "layer %s: unknown type '%s'", spec->name, spec->type);
    if (strcmp(spec->name, CNN_NET_INPUT_NAME) == 0)
        return cnn_error_set(CNN_ECONFIG, "layer %s: '%s' names the net's input, not a layer",
                             spec->name, CNN_NET_INPUT_NAME);
    return resolve_inputs(specs, nlayers, i, pl);
}

/* Layer i's shapes and sizes from its inputs' (input: the net's), and its
 * part of the plan. */
static cnn_status_t plan_layer(const cnn_layer_spec_t *spec, const cnn_net_plan_t *plan,
                               cnn_shape_t input, cnn_net_plan_layer_t *pl)
{
    for (int k = 0; k < pl->ninputs; k++)
        pl->ins[k] = pl->src[k] < 0 ? input : plan->layers[pl->src[k]].out;
    pl->in = pl->ins[0];
    if (cnn_layer_is_merge(pl->ops))
        CNN_TRY(pl->ops->shape_n(spec, pl->ninputs, pl->ins, &pl->out, &pl->sz));
    else
        CNN_TRY(pl->ops->shape(spec, pl->in, &pl->out, &pl->sz));
    const cnn_layer_sizes_t *sz = &pl->sz;
    const int nthreads = plan->nthreads;
    pl->params = pl->grads = cnn_mem_mul(sz->params, sizeof(float));
    pl->state = cnn_mem_mul(sz->state, sizeof(float));
    pl->cache = cnn_mem_mul(sz->cache, sizeof(float));
    pl->work = cnn_mem_add(cnn_mem_mul(cnn_mem_mul(work_stride(sz->work), (size_t)nthreads),
                                       sizeof(float)),
                           cnn_mem_mul(sz->shared, sizeof(float)));
    pl->folded = pl->affine_from >= 0 ? floats_bytes(pl->sz.params) : 0;
    size_t t = cnn_mem_add(pl->params, pl->grads);
    t = cnn_mem_add(t, cnn_mem_add(pl->state, pl->cache));
    pl->total = cnn_mem_add(t, pl->folded); /* plus its activations: plan_slots */
    return CNN_OK;
}

/* ---- the backward pass's gradient buffers ----------------------------
 * The steps run the layers in reverse order (a folded ReLU's step is its
 * pool's). The gradient at a layer's output lives from the step of its
 * last consumer, which writes it, to the layer's own step, which reads
 * it; each further consumer writes its part into a buffer of its own,
 * added in after its call. A buffer is taken lowest-index first when a
 * gradient begins and given back when it ends: a chain alternates
 * between buffers 0 and 1, as two ping-pong buffers. Buffer 1 is kept
 * free during the first step, where the caller's dout may lie. */

typedef struct {
    unsigned char *busy; /* (cap) */
    int cap, n;          /* n: buffers used so far */
} bufs_t;

/* The lowest free buffer, taken. At most one gradient per layer, its
 * input's and one being added in are live at once: cap = layers + 2 + the
 * inputs of one layer is never reached. */
static int buf_take(bufs_t *b)
{
    for (int i = 0; i < b->cap; i++)
        if (!b->busy[i]) {
            b->busy[i] = 1;
            if (i + 1 > b->n) b->n = i + 1;
            return i;
        }
    return -1;
}

/* Step s for layer i; gb[t] is the buffer of the gradient at layer t's
 * output (-1: not begun). */
static cnn_status_t plan_step(cnn_net_plan_t *plan, int i, int *gb, bufs_t *b,
                              cnn_net_bstep_t *s)
{
    const cnn_net_plan_layer_t *pl = &plan->layers[i];
    /* the output whose gradient the step takes: a folded ReLU's */
    const int o = pl->relu_out >= 0 ? pl->relu_out : i;
    *s = (cnn_net_bstep_t){.layer = i, .dy = o == plan->nlayers - 1 ? -1 : gb[o]};
    s->fused = pl->ninputs == 1 && pl->src[0] >= 0 && plan->layers[pl->src[0]].fold == i;
    for (int k = 0; k < CNN_LAYER_INPUTS_MAX; k++) s->dx[k] = s->acc[k] = -1;
    for (int k = 0; k < pl->ninputs; k++) {
        /* a fused pool's input gradient is at the ReLU's input */
        const int t = s->fused ? plan->layers[pl->src[0]].src[0] : pl->src[k];
        if (t < 0) continue; /* the net's input: not needed */
        s->dx[k] = buf_take(b);
        if (gb[t] < 0) gb[t] = s->dx[k];
        else s->acc[k] = gb[t];
        if (s->dx[k] < 0)
            return cnn_error_set(CNN_EINTERNAL, "layer %d: no gradient buffer left", i);
    }
    return CNN_OK;
}

static cnn_status_t plan_backward(cnn_net_plan_t *plan)
{
    const int nl = plan->nlayers;
    int *gb = malloc(sizeof *gb * (size_t)nl);
    bufs_t b = {.busy = calloc((size_t)nl + 2 + CNN_LAYER_INPUTS_MAX, 1),
                .cap = nl + 2 + CNN_LAYER_INPUTS_MAX, .n = 2};
    if (!gb || !b.busy) {
        free(gb);
        free(b.busy);
        return cnn_error_set(CNN_ENOMEM, "out of memory planning the net");
    }
    for (int i = 0; i < nl; i++) gb[i] = -1;
    b.busy[1] = 1; /* dout may lie there during the first step */
    cnn_status_t st = CNN_OK;
    plan->nsteps = 0;
    for (int i = nl - 1; i >= 0 && st == CNN_OK; i--) {
        if (plan->layers[i].fold >= 0) continue; /* its pool's or producer's step */
        cnn_net_bstep_t *s = &plan->steps[plan->nsteps++];
        st = plan_step(plan, i, gb, &b, s);
        for (int k = 0; k < CNN_LAYER_INPUTS_MAX; k++)
            if (s->acc[k] >= 0) b.busy[s->dx[k]] = 0; /* added in: free again */
        if (s->dy >= 0) b.busy[s->dy] = 0;
        if (plan->nsteps == 1) b.busy[1] = 0; /* dout has been read */
    }
    plan->ndbuf = b.n;
    free(gb);
    free(b.busy);
    return st;
}

/* ---- activation buffers ---------------------------------------------------
 * Each layer's output lives in a slot: its own, or its input's when it
 * runs in place. A net planned for training keeps every activation, as
 * the backward pass reads them: a slot per layer that does not run in
 * place. A net planned for inference (cnn_net_plan_infer) gives a slot
 * back after the last layer that reads it has run, and a later output
 * takes it: the largest output it holds sizes it. The net's input has a
 * buffer of its own (the caller fills it). */

/* The last layer that reads each layer's output: a ReLU folded into the
 * pool after it reads nothing, the pool reads the ReLU's input; one
 * folded into the layer before it reads that layer's output, in place;
 * the net's output is read after every layer. */
static void plan_last_use(const cnn_net_plan_t *plan, int *last)
{
    const cnn_net_plan_layer_t *ls = plan->layers;
    const int nl = plan->nlayers;
    for (int i = 0; i < nl; i++) last[i] = i + 1 < nl ? i : nl;
    for (int c = 0; c < nl; c++) {
        if (ls[c].fold > c) continue; /* its pool reads its input */
        for (int k = 0; k < ls[c].ninputs; k++) {
            int t = ls[c].src[k];
            if (t >= 0 && ls[t].fold == c) t = ls[t].src[0];
            if (t >= 0 && c > last[t]) last[t] = c;
        }
    }
}

/* The lowest free slot of busy[0..nl), taken. */
static int slot_take(unsigned char *busy, int nl, int *nslots)
{
    int s = 0;
    while (s < nl && busy[s]) s++;
    busy[s] = 1;
    if (s + 1 > *nslots) *nslots = s + 1;
    return s;
}

/* Each layer's slot, and its part of the plan: the bytes of the slots
 * whose largest output it is (the first of equals). */
static cnn_status_t plan_slots(cnn_net_plan_t *plan)
{
    cnn_net_plan_layer_t *ls = plan->layers;
    const int nl = plan->nlayers;
    int *last = malloc(sizeof *last * (size_t)nl), *until = malloc(sizeof *until * (size_t)nl);
    unsigned char *busy = calloc((size_t)nl + 1, 1);
    if (!last || !until || !busy) {
        free(last);
        free(until);
        free(busy);
        return cnn_error_set(CNN_ENOMEM, "out of memory planning the net");
    }
    plan_last_use(plan, last);
    plan->nslots = 0;
    for (int i = 0; i < nl; i++) {
        const int s = ls[i].slot =
            ls[i].in_place ? ls[ls[i].src[0]].slot : slot_take(busy, nl, &plan->nslots);
        /* a slot is read until the last use of every output it holds at
         * once (an in-place layer's and its input's) */
        if (!ls[i].in_place || last[i] > until[s]) until[s] = last[i];
        if (!plan->infer) continue;
        for (int k = 0; k < plan->nslots; k++) /* read for the last time here */
            if (busy[k] && until[k] == i) busy[k] = 0;
    }
    for (int s = 0; s < plan->nslots; s++) {
        int owner = -1;
        for (int i = 0; i < nl; i++)
            if (ls[i].slot == s && (owner < 0 || shape_floats(ls[i].out) >
                                                     shape_floats(ls[owner].out)))
                owner = i;
        ls[owner].act = floats_bytes(shape_floats(ls[owner].out));
        ls[owner].total = cnn_mem_add(ls[owner].total, ls[owner].act);
    }
    free(last);
    free(until);
    free(busy);
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
    plan->dbuf = cnn_mem_mul(floats_bytes(max_act), (size_t)plan->ndbuf);
    plan->work = cnn_mem_add(floats_bytes(cnn_mem_mul(work_stride(stride), (size_t)plan->nthreads)),
                             floats_bytes(nshared));
    t = cnn_mem_mul(floats_bytes(plan->nparams), 2);
    t = cnn_mem_add(t, cnn_mem_add(floats_bytes(plan->nstate), floats_bytes(ncache)));
    t = cnn_mem_add(t, cnn_mem_add(plan->input, cnn_mem_add(plan->dbuf, plan->work)));
    for (int i = 0; i < plan->nlayers; i++)
        t = cnn_mem_add(t, cnn_mem_add(plan->layers[i].act, plan->layers[i].folded));
    plan->total = t;
}

/* cnn_net_plan or cnn_net_plan_infer. */
static cnn_status_t net_plan(const cnn_layer_spec_t *specs, int nlayers, cnn_shape_t input,
                             int nthreads, int infer, cnn_net_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->infer = infer;
    if (nlayers < 1) return cnn_error_set(CNN_ECONFIG, "the net has no layers");
    if (input.n < 1 || input.c < 1 || input.h < 1 || input.w < 1) {
        char b[64];
        return cnn_error_set(CNN_ECONFIG, "invalid input shape %s",
                             cnn_shape_str(input, b, sizeof b));
    }
    plan->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
    plan->layers = calloc((size_t)nlayers, sizeof *plan->layers);
    plan->steps = calloc((size_t)nlayers, sizeof *plan->steps);
    cnn_status_t st = CNN_OK;
    if (!plan->layers || !plan->steps)
        st = cnn_error_set(CNN_ENOMEM, "out of memory planning the net");
    plan->nlayers = nlayers;
    for (int i = 0; i < nlayers && st == CNN_OK; i++)
        st = plan_graph(specs, nlayers, i, &plan->layers[i]);
    if (st == CNN_OK) plan_uses(plan);
    for (int i = 0; i < nlayers && st == CNN_OK; i++)
        st = plan_layer(&specs[i], plan, input, &plan->layers[i]);
    /* after the shapes: a conv's sizes say whether it can take its ReLU */
    for (int i = 0; i < nlayers && st == CNN_OK && fuse_on; i++) plan_relu_out(plan->layers, i);
    if (st == CNN_OK) st = plan_unused(specs, plan);
    if (st == CNN_OK) st = plan_slots(plan);
    if (st == CNN_OK && !infer) st = plan_backward(plan);
    if (st != CNN_OK) {
        cnn_net_plan_free(plan);
        return st;
    }
    plan->output = plan->layers[nlayers - 1].out;
    plan_totals(plan);
    return CNN_OK;
}

cnn_status_t cnn_net_plan(const cnn_layer_spec_t *specs, int nlayers, cnn_shape_t input,
                          int nthreads, cnn_net_plan_t *plan)
{
    return net_plan(specs, nlayers, input, nthreads, 0, plan);
}

cnn_status_t cnn_net_plan_infer(const cnn_layer_spec_t *specs, int nlayers, cnn_shape_t input,
                                int nthreads, cnn_net_plan_t *plan)
{
    return net_plan(specs, nlayers, input, nthreads, 1, plan);
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
        /* a conv's copy of its params with a batchnorm folded in counts
         * as its cache */
        put_row(m, name, (size_t[]){pl->params, pl->grads, pl->state, pl->act,
                                    cnn_mem_add(pl->cache, pl->folded), pl->work, pl->total}, 7);
    }
    snprintf(name, sizeof name, "gradient buffers (%d)", plan->ndbuf);
    if (plan->ndbuf) put_row(m, name, (size_t[]){0, 0, 0, 0, 0, 0, plan->dbuf}, 7);
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
                           .out = pl->out, .sz = pl->sz, .ninputs = pl->ninputs};
        memcpy(l->src, pl->src, sizeof l->src);
        memcpy(l->ins, pl->ins, sizeof l->ins);
        net->fold[i] = pl->fold;
        net->affine_into[i] = pl->affine_into;
        net->affine_from[i] = pl->affine_from;
        if (pl->affine_from >= 0 && !(net->folded[i] = alloc_floats(pl->sz.params)))
            return CNN_ENOMEM;
        /* a conv with its batchnorm folded in runs the ReLU only then
         * (affine_relu) */
        l->relu_out = pl->relu_out >= 0 && pl->affine_from < 0;
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
    net->act[0] = alloc_floats(shape_floats(net->input));
    if (!net->params || !net->grads || !net->state || !net->cache || !net->work ||
        !net->shared || !net->act[0])
        return CNN_ENOMEM;
    for (int b = 0; b < net->ndbuf; b++)
        if (!(net->dbuf[b] = alloc_floats(max_act))) return CNN_ENOMEM;
    return CNN_OK;
}

/* Points each layer into the arenas and gives it its output buffer. */
static cnn_status_t net_bind(cnn_net_t *net, const cnn_net_plan_t *plan)
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
    }
    /* the output buffers: a slot each, sized by its largest output (an
     * in-place layer, relu, shares its input's: that saves a buffer and
     * a pass over memory) */
    for (int s = 0; s < plan->nslots; s++) {
        size_t n = 0;
        for (int i = 0; i < net->nlayers; i++)
            if (plan->layers[i].slot == s && shape_floats(plan->layers[i].out) > n)
                n = shape_floats(plan->layers[i].out);
        float *buf = alloc_floats(n);
        if (!buf) return CNN_ENOMEM;
        for (int i = 0; i < net->nlayers; i++)
            if (plan->layers[i].slot == s) net->act[i + 1] = buf;
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
    net->ndbuf = plan->ndbuf;
    net->nsteps = plan->nsteps;
    net->layers = calloc((size_t)plan->nlayers, sizeof *net->layers);
    net->act = calloc((size_t)plan->nlayers + 1, sizeof *net->act);
    net->fold = calloc((size_t)plan->nlayers, sizeof *net->fold);
    net->affine_into = calloc((size_t)plan->nlayers, sizeof *net->affine_into);
    net->affine_from = calloc((size_t)plan->nlayers, sizeof *net->affine_from);
    net->folded = calloc((size_t)plan->nlayers, sizeof *net->folded);
    net->steps = calloc((size_t)plan->nlayers, sizeof *net->steps);
    net->dbuf = calloc((size_t)plan->ndbuf + 1, sizeof *net->dbuf);
    if (net->steps) memcpy(net->steps, plan->steps, sizeof *net->steps * (size_t)plan->nsteps);
    if (!net->layers || !net->act || !net->fold || !net->affine_into || !net->affine_from ||
        !net->folded || !net->steps || !net->dbuf ||
        net_alloc(net, plan, specs) != CNN_OK || net_bind(net, plan) != CNN_OK) {
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

/* The params of conv l with batchnorm bn folded in, into p: row k and
 * bias k of the weights scaled by bn's a of channel k, and its b added
 * to the bias (layer.h: test_affine, fold_affine). */
static void fold_affine(const cnn_layer_t *l, const cnn_layer_t *bn, float *p)
{
    const int K = l->out.c;
    const size_t row = (l->sz.params - (size_t)K) / (size_t)K;
    for (int k = 0; k < K; k++) {
        float a, b;
        bn->ops->test_affine(bn, k, &a, &b);
        const float *w = l->params + (size_t)k * row;
        float *o = p + (size_t)k * row;
        for (size_t j = 0; j < row; j++) o[j] = a * w[j];
        p[(size_t)K * row + k] = a * l->params[(size_t)K * row + k] + b;
    }
}

/* The ReLU folded into conv i with the batchnorm after it (in inference:
 * plan_relu_out), else -1. In training mode the three run in turn, and
 * the conv's relu_out stays 0. */
static int affine_relu(const cnn_net_t *net, int i)
{
    const int b = net->affine_from[i];
    for (int j = b + 1; b >= 0 && j < net->nlayers; j++)
        if (net->fold[j] == i && net->layers[j].src[0] == b) return j;
    return -1;
}

/* Layer l's forward pass: its input(s) from act, its output to act. */
static void layer_forward(cnn_net_t *net, cnn_layer_t *l, const cnn_ctx_t *ctx, int n)
{
    float *y = net->act[l->index + 1];
    if (cnn_layer_is_merge(l->ops)) {
        const float *xs[CNN_LAYER_INPUTS_MAX];
        for (int k = 0; k < l->ninputs; k++) xs[k] = net->act[l->src[k] + 1];
        l->ops->forward_n(l, ctx, n, l->ninputs, xs, y);
        return;
    }
    const int s = l->src[0];
    if (net->affine_from[l->index] >= 0 && !ctx->train) {
        /* a conv with the batchnorm after it: one pass, scaled weights
         * (in training mode the two run in turn, the batchnorm in place) */
        cnn_layer_t folded = *l;
        folded.params = net->folded[l->index];
        folded.relu_out = affine_relu(net, l->index) >= 0;
        fold_affine(l, &net->layers[net->affine_from[l->index]], folded.params);
        l->ops->forward(&folded, ctx, n, net->act[s + 1], y);
        return;
    }
    if (s >= 0 && net->fold[s] == l->index) {
        /* a ReLU and the max pool after it: the pool reads the ReLU's
         * input and clamps its own output */
        l->ops->forward_after_relu(l, ctx, n, net->act[net->layers[s].src[0] + 1], y);
        return;
    }
    l->ops->forward(l, ctx, n, net->act[s + 1], y);
}

const float *cnn_net_forward(cnn_net_t *net, const cnn_ctx_t *ctx, int n)
{
    for (int i = 0; i < net->nlayers; i++) {
        const int f = net->fold[i];
        /* folded away: a ReLU (into the pool after it or the layer before
         * it), a batchnorm into its conv; but in training mode a ReLU
         * folded into a conv through its batchnorm runs, as the batchnorm
         * does */
        const int runs = f < 0 || (ctx->train && f < i && net->layers[i].src[0] != f);
        if (runs && (net->affine_into[i] < 0 || ctx->train))
            layer_forward(net, &net->layers[i], ctx, n);
    }
    return net->act[net->nlayers];
}

int cnn_net_relu_folded(const cnn_net_t *net, int i)
{
    return i >= 0 && i < net->nlayers && net->fold[i] >= 0;
}

float *cnn_net_layer_in(const cnn_net_t *net, int i, int k)
{
    return net->act[net->layers[i].src[k] + 1];
}

const float *cnn_net_layer_output(cnn_net_t *net, const cnn_ctx_t *ctx, int n, int i)
{
    /* the ReLU at i folded into the max pool after it, or one running in
     * place over i's output (a ReLU folded into the layer before it ran
     * with that layer) */
    int r = cnn_net_relu_folded(net, i) && net->fold[i] > i ? i : -1;
    for (int j = i + 1; j < net->nlayers && r < 0; j++)
        if (cnn_net_relu_folded(net, j) && net->fold[j] > j && net->act[j + 1] == net->act[i + 1])
            r = j;
    if (r >= 0) {
        cnn_layer_t *relu = &net->layers[r];
        relu->ops->forward(relu, ctx, n, cnn_net_layer_in(net, r, 0), net->act[r + 1]);
    }
    return net->act[i + 1];
}

/* a += b, n floats: a second consumer's part of a gradient (fan-out) */
static void add_into(float *restrict a, const float *restrict b, size_t n, int nthreads)
{
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

/* One step of the backward pass (net.h: cnn_net_bstep_t). A layer input
 * with another consumer (s->acc) gets this layer's part of its gradient
 * added to the part already there: by the layer itself where it can
 * (sz.dx_adds: a Winograd conv, the first layer of a residual block, adds
 * as it writes, which saves a pass over memory that writing and then
 * adding would take; a fusion: cnn_net_set_fuse), else by add_into. Both
 * give the same bits. */
static void backward_step(cnn_net_t *net, const cnn_net_bstep_t *s, const cnn_ctx_t *ctx,
                          int n, const float *dout)
{
    cnn_layer_t *l = &net->layers[s->layer];
    const float *dy = s->dy < 0 ? dout : net->dbuf[s->dy];
    const float *y = net->act[s->layer + 1];
    float *dx[CNN_LAYER_INPUTS_MAX];
    for (int k = 0; k < l->ninputs; k++) dx[k] = s->dx[k] < 0 ? NULL : net->dbuf[s->dx[k]];
    const int merge = cnn_layer_is_merge(l->ops);
    const int adds = fuse_on && !merge && !s->fused && l->sz.dx_adds && dx[0] && s->acc[0] >= 0;
    cnn_ctx_t actx;
    if (adds) {
        actx = *ctx;
        actx.dx_add = 1;
        ctx = &actx;
        dx[0] = net->dbuf[s->acc[0]];
    }
    if (merge) {
        const float *xs[CNN_LAYER_INPUTS_MAX];
        for (int k = 0; k < l->ninputs; k++) xs[k] = cnn_net_layer_in(net, s->layer, k);
        l->ops->backward_n(l, ctx, n, l->ninputs, xs, y, dy, dx);
    } else if (s->fused) {
        /* a ReLU and the max pool after it in one pass over memory, not
         * two: the pool's backward_after_relu gives the ReLU's dx */
        l->ops->backward_after_relu(l, ctx, n, cnn_net_layer_in(net, s->layer, 0), y, dy, dx[0]);
    } else {
        l->ops->backward(l, ctx, n, cnn_net_layer_in(net, s->layer, 0), y, dy, dx[0]);
    }
    for (int k = adds; k < l->ninputs; k++)
        if (s->acc[k] >= 0) {
            const cnn_shape_t in = l->ins[k];
            add_into(net->dbuf[s->acc[k]], dx[k], (size_t)n * cnn_shape_image(in),
                     ctx->nthreads);
        }
}

void cnn_net_backward(cnn_net_t *net, const cnn_ctx_t *ctx, int n,
                      const float *dout)
{
    for (int k = 0; k < net->nsteps; k++) backward_step(net, &net->steps[k], ctx, n, dout);
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

/* 1 if every layer takes the one before it (the first: the net's input). */
static int net_is_chain(const cnn_net_t *net)
{
    for (int i = 0; i < net->nlayers; i++)
        if (net->layers[i].ninputs != 1 || net->layers[i].src[0] != i - 1) return 0;
    return 1;
}

/* Layer l's inputs as "a, b" into buf. */
static void inputs_str(const cnn_net_t *net, const cnn_layer_t *l, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < l->ninputs && n < len; k++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? ", " : "",
                              l->src[k] < 0 ? CNN_NET_INPUT_NAME
                                            : net->layers[l->src[k]].spec.name);
}

void cnn_net_print(const cnn_net_t *net, FILE *f)
{
    char b[64], ins[CNN_LAYER_INPUTS_MAX * (CNN_NAME_MAX + 2)];
    const int graph = !net_is_chain(net);
    cnn_shape_t in = net->input;
    fprintf(f, "%-12s %-10s %-20s %10s%s\n", "layer", "type", "output (c,h,w)", "params",
            graph ? "  inputs" : "");
    fprintf(f, "%-12s %-10s (%d,%d,%d)%*s %10d\n", "input", "", in.c, in.h, in.w,
            (int)(19 - snprintf(b, sizeof b, "(%d,%d,%d)", in.c, in.h, in.w)), "", 0);
    for (int i = 0; i < net->nlayers; i++) {
        const cnn_layer_t *l = &net->layers[i];
        snprintf(b, sizeof b, "(%d,%d,%d)", l->out.c, l->out.h, l->out.w);
        inputs_str(net, l, ins, sizeof ins);
        fprintf(f, "%-12s %-10s %-20s %10zu%s%s\n", l->spec.name, l->spec.type, b,
                l->sz.params, graph ? "  " : "", graph ? ins : "");
    }
    fprintf(f, "total parameters: %zu\n", net->nparams);
}
