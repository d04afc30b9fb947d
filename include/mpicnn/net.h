/* net.h - a network: a graph of layers over one parameter arena.
 *
 * The layers are listed in their order of evaluation; each takes the
 * output of earlier layers (or the net's input) as its input(s), by
 * default the layer before it (cnn_layer_spec_t.inputs), so a chain is
 * the plain case. The last layer's output is the net's output.
 *
 * cnn_net_plan() resolves the graph, runs shape inference and plans all
 * memory, without allocating it, and cnn_net_create() allocates that
 * plan: one block of parameters, one of gradients (same layout, so a
 * single all-reduce covers every layer), one of non-trainable state, the
 * activations of every layer at the maximum batch (a net planned for
 * inference only, cnn_net_plan_infer, reuses their buffers), the
 * gradient buffers the backward pass needs at once (two for a chain,
 * which it uses in turn) and per-thread scratch. forward/backward never
 * allocate. */
#ifndef MPICNN_NET_H
#define MPICNN_NET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mpicnn/layer.h"
#include "mpicnn/memlimit.h"
#include "mpicnn/status.h"

/* One step of the backward pass: a layer's backward call and where its
 * gradients go (indices into cnn_net_t.dbuf). Planned with the net. */
typedef struct {
    int layer;  /* the layer whose backward runs */
    int fused;  /* 1: its input is a folded ReLU: backward_after_relu,
                   whose input gradient is at the ReLU's input */
    int dy;     /* buffer of the gradient at its output; -1: dout */
    int dx[CNN_LAYER_INPUTS_MAX];  /* buffer its input k's gradient is
                                      written to; -1: not needed (the net's
                                      input) */
    int acc[CNN_LAYER_INPUTS_MAX]; /* -1, or the buffer dx[k] is then added
                                      into: the input's gradient, begun by
                                      a later consumer of it (fan-out); a
                                      layer with sz.dx_adds adds its input
                                      0's gradient there itself */
} cnn_net_bstep_t;

typedef struct {
    int nlayers;
    cnn_layer_t *layers;   /* nlayers entries */
    cnn_shape_t input;     /* n = max batch */
    cnn_shape_t output;    /* of the last layer; n = max batch */
    int nthreads;          /* OpenMP threads planned for */
    size_t nparams;        /* floats in params and grads */
    size_t nstate;         /* floats in state */
    float *params;         /* (nparams) */
    float *grads;          /* (nparams) */
    float *grads_own;      /* the block cnn_net_create allocated for grads;
                              NULL after cnn_net_bind_grads */
    float *state;          /* (nstate) */
    float **act;           /* act[0] is the input (max batch), act[i+1] the
                              output of layer i; an in-place layer's
                              output is its input's buffer (act[i+1] ==
                              act[src+1]), so after the forward pass that
                              buffer holds the in-place layer's output */
    int *fold;             /* (nlayers) the layer that runs ReLU i's passes
                              (cnn_net_relu_folded), else -1 */
    int *affine_into;      /* (nlayers) inference: the conv batchnorm i is
                              folded into, else -1 */
    int *affine_from;      /* (nlayers) inference: the batchnorm folded into
                              conv i, else -1 */
    float **folded;        /* (nlayers) conv i's params with its batchnorm
                              folded in, remade by each forward; else NULL */
    int nsteps;            /* the backward pass, in order */
    cnn_net_bstep_t *steps;
    int ndbuf;             /* gradient buffers (>= 2; 0 in a net planned
                              for inference), each the largest activation;
                              dbuf[1] is free until the second step (the
                              trainer puts the loss gradient there) */
    float **dbuf;
    float *work;           /* nthreads * work_stride */
    size_t work_stride;
    float *shared;         /* scratch shared by the threads of one layer call */
    size_t nshared;
    float *cache;          /* all layers' caches */
} cnn_net_t;

/* ---- the memory plan ----------------------------------------------------
 * What a net will allocate, found by shape inference alone, so that it can
 * be checked against a budget (memlimit.h) before anything big exists.
 * All sizes are in bytes; a size that does not fit in size_t is SIZE_MAX,
 * which stays SIZE_MAX through the sums (cnn_mem_add), so an overflow is
 * over every budget. */

/* One layer's part of the plan. */
typedef struct {
    const cnn_layer_ops_t *ops;
    cnn_shape_t in, out;      /* n = max batch; in: the first input's */
    int ninputs;              /* its inputs (1, or a merge layer's count) */
    int src[CNN_LAYER_INPUTS_MAX]; /* the layer each comes from; -1: the
                                      net's input */
    cnn_shape_t ins[CNN_LAYER_INPUTS_MAX];
    int uses;                 /* consumers of its output (inputs naming it) */
    int slot;                 /* the buffer its output lives in */
    int in_place;             /* 1: its output is its input's buffer */
    int fold;                 /* the layer that runs this ReLU's passes
                                 (cnn_net_relu_folded), else -1: the max
                                 pool after it, or the layer before it */
    int relu_out;             /* the ReLU this layer runs over its own
                                 output (cnn_layer_t.relu_out), else -1 */
    int affine_into;          /* inference: the conv this batchnorm is
                                 folded into (test_affine), else -1 */
    int affine_from;          /* inference: the batchnorm folded into this
                                 conv, else -1 */
    cnn_layer_sizes_t sz;     /* what the layer's shape asked for, in floats */
    size_t params, grads;     /* its slices of the parameter and gradient arenas */
    size_t state, cache;      /* its slices of the state and cache arenas */
    size_t act;               /* its output buffer (0 when it runs in place) */
    size_t work;              /* the scratch one call needs: nthreads x work
                                 + shared; the net holds the largest once */
    size_t folded;            /* its params with a batchnorm folded in */
    size_t total;             /* params + grads + state + cache + act
                                 + folded */
} cnn_net_plan_layer_t;

typedef struct {
    int nlayers;
    int infer;                    /* 1: from cnn_net_plan_infer */
    int nthreads;                 /* resolved (>= 1) */
    int nslots;                   /* activation buffers (cnn_net_plan_layer_t.slot) */
    cnn_net_plan_layer_t *layers; /* (nlayers), owned: cnn_net_plan_free */
    cnn_shape_t output;           /* of the last layer */
    size_t nparams, nstate;       /* floats, as in cnn_net_t */
    size_t input;                 /* the input buffer */
    int ndbuf;                    /* gradient buffers the backward pass holds
                                     at once (>= 2; 0 when infer) */
    size_t dbuf;                  /* all of them, each the largest activation */
    int nsteps;                   /* the backward pass (cnn_net_t.steps) */
    cnn_net_bstep_t *steps;       /* owned: cnn_net_plan_free */
    size_t work;                  /* the largest layer's work */
    size_t total;                 /* everything the net allocates */
} cnn_net_plan_t;

/* Shape inference and the memory plan of the net cnn_net_create() would
 * build from the same arguments. Allocates only plan->layers and
 * plan->steps (small entries per layer). Errors: CNN_ECONFIG (no layers,
 * a bad input shape, an unknown type, a shape mismatch naming the layer;
 * in the graph: an input naming no layer, the layer itself or a later
 * one, the wrong number of inputs for the type, a layer other than the
 * last whose output nothing takes), CNN_ENOMEM; plan is then empty
 * (cnn_net_plan_free is still safe). */
cnn_status_t cnn_net_plan(const cnn_layer_spec_t *specs, int nlayers, cnn_shape_t input,
                          int nthreads, cnn_net_plan_t *plan);

/* cnn_net_plan() of a net that only runs forward (predict, eval): an
 * activation buffer is given back when the last layer that reads it has
 * run, and a later output takes it; there are no gradient buffers. A net
 * built from it must not run cnn_net_backward (which then does nothing)
 * nor cnn_net_layer_output (an earlier layer's output may be gone). In
 * test mode its forward pass gives a training net's output to float
 * rounding (a batchnorm after a conv is folded into the conv's weights,
 * and a ReLU after the batchnorm into the conv's output where its engine
 * can: cnn_net_set_fuse), and bit for bit with fusions off; in training
 * mode the conv, the batchnorm and the ReLU run in turn, as in a
 * training net. */
cnn_status_t cnn_net_plan_infer(const cnn_layer_spec_t *specs, int nlayers, cnn_shape_t input,
                                int nthreads, cnn_net_plan_t *plan);

void cnn_net_plan_free(cnn_net_plan_t *plan);

/* The plan's total plus the extras, saturating at SIZE_MAX. */
size_t cnn_net_plan_bytes(const cnn_net_plan_t *plan, const cnn_mem_item_t *extra, int nextra);

/* CNN_OK when the plan and the extras (what the caller allocates beside
 * the net: the optimizer state, the data set; nextra of them, may be NULL) fit
 * in `budget` bytes; else CNN_ENOMEM with a message giving the total, the
 * budget and `why` (where it comes from), and the plan per layer (specs
 * give the names) and per extra. A plan whose sizes overflow is always
 * refused. */
cnn_status_t cnn_net_plan_check(const cnn_net_plan_t *plan, const cnn_layer_spec_t *specs,
                                const cnn_mem_item_t *extra, int nextra, uint64_t budget,
                                const char *why);

/* Allocates the net of a plan (from cnn_net_plan with the same specs,
 * after any check). CNN_ENOMEM if an allocation fails; *out is then NULL.
 * The plan is not needed afterwards. */
cnn_status_t cnn_net_build(const cnn_net_plan_t *plan, const cnn_layer_spec_t *specs,
                           cnn_net_t **out);

/* Builds a net of `nlayers` specs on input shape `input` (input.n = the
 * largest batch forward will see) for `nthreads` threads (0: OpenMP's
 * default). On failure returns CNN_ECONFIG (shape mismatch, naming the
 * layer) or CNN_ENOMEM (a plan whose sizes overflow, or an allocation
 * that failed) and leaves *out NULL. Free with cnn_net_free(). */
cnn_status_t cnn_net_create(const cnn_layer_spec_t *specs, int nlayers,
                            cnn_shape_t input, int nthreads, cnn_net_t **out);

/* cnn_net_create() that first checks its plan, with the extras the
 * caller will allocate beside it, against `budget` bytes (why: where the
 * budget comes from), and allocates nothing when it is over
 * (cnn_net_plan_check's CNN_ENOMEM). */
cnn_status_t cnn_net_create_within(const cnn_layer_spec_t *specs, int nlayers,
                                   cnn_shape_t input, int nthreads,
                                   const cnn_mem_item_t *extra, int nextra, uint64_t budget,
                                   const char *why, cnn_net_t **out);

void cnn_net_free(cnn_net_t *net);

/* Initialises all parameters and state, deterministically in `seed`. */
void cnn_net_init(cnn_net_t *net, uint64_t seed);

/* A context for this net: scratch pointers, thread count, mode. */
cnn_ctx_t cnn_net_ctx(const cnn_net_t *net, int train, uint64_t seed,
                      int rank, uint64_t step);

/* Input buffer to fill: (max batch, c, h, w). Owned by the net. */
static inline float *cnn_net_input(cnn_net_t *net) { return net->act[0]; }

/* Runs every layer, in order, on the first n images of the input buffer.
 * Returns the output (n, out.c, out.h, out.w), owned by the net, valid
 * until the next forward. */
const float *cnn_net_forward(cnn_net_t *net, const cnn_ctx_t *ctx, int n);

/* 1 if layer i is a ReLU whose passes cnn_net_forward and
 * cnn_net_backward leave to another layer, else 0. Either to its one
 * consumer's forward_after_relu and backward_after_relu (a max pool whose
 * input is the ReLU, and the only layer taking the ReLU's output): the
 * ReLU's output buffer is then not written, it holds the ReLU's input
 * (the same buffer, when the ReLU runs in place) or nothing. Or to the
 * layer before it (ops->relu_out: a batchnorm, an add, or a conv on the
 * blocked-kernel or Winograd engine, whose one consumer is the ReLU),
 * which writes the ReLU's output into the buffer the two share; in a net
 * planned for inference, to the conv that a batchnorm before the ReLU is
 * folded into (in test mode; in training mode the three run in turn). */
int cnn_net_relu_folded(const cnn_net_t *net, int i);

/* 1 (the default): nets built after the call fold a ReLU into the layer
 * that produces its input (ops->relu_out) or the max pool that takes its
 * output (forward_after_relu), where the graph allows, and a net planned
 * for inference folds a batchnorm into the conv before it (test_affine:
 * the conv runs with scaled weights, the batchnorm not at all); 0: every
 * layer runs on its own. Also on: a layer that can (sz.dx_adds) adds its
 * part of a fan-out's gradient in as it writes it, where 0 writes it
 * apart and adds it after. The ReLU folds and those adds give the same
 * bits as without;
 * the batchnorm fold changes outputs by float rounding (the scaling
 * happens before the sums, not after). For tests and benchmarks. */
int cnn_net_set_fuse(int on); /* returns the setting before the call */

/* Layer i's output buffer (net->act[i + 1]) after the last forward pass
 * on n images, as it would be had every layer run on its own: where a
 * ReLU at i, or a ReLU running in place over i's output, was left to the
 * max pool after it, the ReLU runs here (again, harmlessly, if called
 * twice). A buffer shared with a ReLU running in place, or folded into
 * the layer that writes it, holds the ReLU's output. For looking at
 * activations, not for training. */
const float *cnn_net_layer_output(cnn_net_t *net, const cnn_ctx_t *ctx, int n, int i);

/* The buffer of input k of layer i (k < ninputs): the net's input or an
 * earlier layer's output. After a forward pass it holds that input,
 * unless layer i runs in place (then it holds layer i's output). Owned by
 * the net. */
float *cnn_net_layer_in(const cnn_net_t *net, int i, int k);

/* Backpropagates dout (n, out...) through the layers of the last forward,
 * in reverse order, ADDING parameter gradients into net->grads. The
 * gradient at an output several layers take is the sum of theirs. */
void cnn_net_backward(cnn_net_t *net, const cnn_ctx_t *ctx, int n,
                      const float *dout);

void cnn_net_zero_grad(cnn_net_t *net);

/* Moves the gradient block, and every layer's gradients in it, to
 * `grads`: nparams floats, 64-byte aligned, owned by the caller and alive
 * until cnn_net_free(). Zeroes them and frees the net's own block. For a
 * gradient sum that reads the block where backward leaves it
 * (cnn_dist_gsum_buffer in dist.h). */
void cnn_net_bind_grads(cnn_net_t *net, float *grads);

/* The layer called `name`, or NULL. */
cnn_layer_t *cnn_net_layer(cnn_net_t *net, const char *name);

/* Prints a summary table (layer, type, output shape, parameters; and
 * each layer's inputs when the net is not a chain) to f. */
void cnn_net_print(const cnn_net_t *net, FILE *f);

#endif
