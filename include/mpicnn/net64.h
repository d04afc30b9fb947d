/* net64.h - a network in double precision, for exact references.
 *
 * The same layers as a cnn_net_t, computed in double by each type's
 * reference and reference_backward (layer.h): plain loops, no threads,
 * no rounding to float anywhere. Parameters, gradients and state are
 * doubles laid out as the float net's arenas, so a model file fills them
 * (cnn_model_load_weights64) and a layer's slice is the layout its
 * reference reads. Slow; for checks against float64 references (`mpicnn
 * op|predict|gradcheck --dtype f64`), not for training: batchnorm's
 * running statistics are not updated.
 *
 * Layers run in the order of the net, each on the outputs its inputs
 * name (the graph of the float net: src, -1 for the net's input); the
 * gradient of an output read by several layers is the sum of theirs. */
#ifndef MPICNN_NET64_H
#define MPICNN_NET64_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/layer.h"
#include "mpicnn/net.h"
#include "mpicnn/status.h"

/* One layer: its type, spec and shapes (n = max batch) and its slices of
 * the net's arenas (NULL when it has none). */
typedef struct {
    const cnn_layer_ops_t *ops;
    cnn_layer_spec_t spec;
    int index;             /* position in the net, for dropout streams */
    cnn_shape_t in, out;
    size_t nparams, nstate; /* the float layer's sz.params and sz.state */
    double *params, *grads; /* nparams each */
    double *state;         /* nstate */
    double *mask;          /* a type with key p (dropout): its scaled mask
                              (max batch x in), else NULL */
    int ninputs;           /* as the float layer's: 1, or a merge's count */
    int src[CNN_LAYER_INPUTS_MAX];        /* the layer each input is the
                                             output of; -1: the net's input */
    cnn_shape_t ins[CNN_LAYER_INPUTS_MAX]; /* their shapes */
    const double *xs[CNN_LAYER_INPUTS_MAX]; /* their buffers (act) */
} cnn_layer64_t;

typedef struct {
    int nlayers;
    cnn_layer64_t *layers; /* (nlayers) */
    cnn_shape_t input, output; /* n = max batch */
    size_t nparams, nstate;
    double *params, *grads; /* (nparams) each, the float net's layout */
    double *state;          /* (nstate) */
    double **act;           /* act[0] the input, act[i+1] layer i's output,
                               each at the max batch */
    double **grad;          /* grad[i]: the loss gradient at act[i] */
    double *dx;             /* one layer's input gradients, before they are
                               added into grad (the largest layer's inputs) */
} cnn_net64_t;

/* A double net with the layers, shapes (max batch included) and arena
 * layout of `net`, its params and state copied from net's (widened).
 * CNN_ENOMEM (then *out is NULL). Free with cnn_net64_free(). */
cnn_status_t cnn_net64_create(const cnn_net_t *net, cnn_net64_t **out);

/* The bytes cnn_net64_create(net) allocates (SIZE_MAX: more than size_t
 * holds), for a memory budget. */
size_t cnn_net64_bytes(const cnn_net_t *net);

/* Frees n and everything it owns; NULL is a no-op. */
void cnn_net64_free(cnn_net64_t *n);

/* Input buffer to fill: (max batch, c, h, w). Owned by the net. */
static inline double *cnn_net64_input(cnn_net64_t *n) { return n->act[0]; }

/* The normalised input from k images x in pixel/255 space (k, c, h, w):
 * (x - mean[c]) / std[c] in double, or x itself when mean or std is
 * NULL, into the input buffer. */
void cnn_net64_set_input(cnn_net64_t *n, const double *x, int k, const float *mean,
                         const float *std);

/* As cnn_net64_set_input from 8-bit pixels v, x = v / 255. */
void cnn_net64_set_pixels(cnn_net64_t *n, const uint8_t *images, int k, const float *mean,
                          const float *std);

/* Runs the layers on the first k images of the input buffer, in training
 * (train = 1: batch statistics; dropout with the masks the float layer
 * draws for run seed `seed`, rank 0, step 0) or test mode. Returns the
 * output (k, out.c, out.h, out.w), owned by the net, valid until the
 * next forward. */
const double *cnn_net64_forward(cnn_net64_t *n, int train, uint64_t seed, int k);

/* The backward pass of the last forward (same train and k): dy is the
 * loss gradient at the output (k, out...). ADDS the parameter gradients
 * into n->grads (zero them first with cnn_net64_zero_grad) and leaves
 * each layer's input gradient in n->grad (grad[0]: the net's input). */
void cnn_net64_backward(cnn_net64_t *n, int train, int k, const double *dy);

void cnn_net64_zero_grad(cnn_net64_t *n);

/* The reference args of layer i on k images in mode train: its input, its
 * params, state and mask. For a layer run on its own (gradcheck). */
cnn_ref_args_t cnn_net64_ref_args(const cnn_net64_t *n, int i, int train, int k);

/* The loss of scores z (k, K) against labels in double: softmax cross-
 * entropy (hinge = 0) or the multiclass hinge (hinge = 1), as the float
 * losses define them (loss.h). Returns their SUM; writes dz = d(sum)/dz
 * when dz is not NULL. */
double cnn_net64_loss(const double *z, const int *labels, int k, int K, int hinge, double *dz);

#endif
