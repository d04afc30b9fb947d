/* optim.h - optimizers over the flat parameter arena: SGD, momentum,
 * Nesterov momentum, Adam, AdamW and LARS, with weight decay.
 *
 * The same step on the same (all-reduced) gradients on every rank keeps
 * the replicas identical. The update is elementwise; the per-tensor norms
 * of LARS and the L2 term are each summed by one thread in a fixed order,
 * so no result depends on the thread count. */
#ifndef MPICNN_OPTIM_H
#define MPICNN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/net.h"
#include "mpicnn/status.h"

/* The order is that of [optimizer] type in config.h (cnn_opt_kind_t). */
typedef enum { CNN_SGD, CNN_MOMENTUM, CNN_NESTEROV, CNN_ADAM, CNN_ADAMW, CNN_LARS } cnn_optim_kind_t;

/* One parameter tensor of the arena. */
typedef struct {
    size_t offset, count; /* its floats: [offset, offset + count) of the arena */
    int decay;            /* 1: weight decay and LARS adaptation apply; 0 for
                             biases and batchnorm parameters (1-D tensors) */
} cnn_optim_tensor_t;

typedef struct {
    cnn_optim_kind_t kind;
    double momentum;     /* momentum / nesterov / lars: mu */
    double beta1, beta2; /* adam, adamw */
    double eps;          /* adam, adamw */
    double weight_decay; /* L2 coupled (g += wd w) or decoupled (adamw) */
    double trust_coefficient; /* lars: eta */
    size_t n;            /* parameters */
    float *m;            /* (n) velocity or Adam's first moment, or NULL */
    float *v;            /* (n) Adam's second moment, or NULL */
    int64_t t;           /* steps taken */
    int ntensors;        /* >= 1 */
    cnn_optim_tensor_t *tensors; /* (ntensors), owned; they tile [0, n) */
    double *sums;        /* (2 ntensors) scratch for the per-tensor norms */
} cnn_optim_t;

/* Name -> kind ("sgd", "momentum", "nesterov", "adam", "adamw", "lars");
 * -1 if unknown. */
int cnn_optim_kind(const char *name);
const char *cnn_optim_name(cnn_optim_kind_t kind);

/* An optimizer for n parameters with zeroed state, seeing the arena as one
 * tensor that weight decay applies to. Free with cnn_optim_free(). The
 * hyperparameters are set by the caller in the returned struct (defaults:
 * momentum 0.9, Adam 0.9/0.999/1e-8, no decay, trust coefficient 0.001). */
cnn_status_t cnn_optim_create(cnn_optim_kind_t kind, size_t n, cnn_optim_t **out);
void cnn_optim_free(cnn_optim_t *opt);

/* Sets the tensor table to a copy of t[0..nt): the tensors must tile
 * [0, opt->n) in order (CNN_EINTERNAL otherwise). CNN_ENOMEM and
 * CNN_EINTERNAL leave opt as it was. */
cnn_status_t cnn_optim_set_tensors(cnn_optim_t *opt, const cnn_optim_tensor_t *t, int nt);

/* Sets the tensors from the layer tensor table of net (cnn_layer_tensors):
 * a tensor with one dimension (a bias, a batchnorm weight or bias) gets
 * decay = 0. net->nparams must be opt->n. Only LARS and the L2 term of
 * cnn_optim_l2() read the table. CNN_ENOMEM leaves opt as it was. */
cnn_status_t cnn_optim_use_net(cnn_optim_t *opt, const cnn_net_t *net);

/* Floats of state per parameter (0, 1 or 2): what a checkpoint saves. */
int cnn_optim_state_slots(const cnn_optim_t *opt);
/* The same for a kind, before an optimizer exists (memory plans). */
int cnn_optim_kind_slots(cnn_optim_kind_t kind);

/* One update of w (n) with gradient g (n) and learning rate lr. */
void cnn_optim_step(cnn_optim_t *opt, float *w, const float *g, double lr, int nthreads);

/* The L2 term that the weight decay of this optimizer follows at weights
 * w (n): weight_decay / 2 * sum of w^2 over the tensors it decays (every
 * parameter, but for lars only the tensors with decay = 1). 0 when
 * weight_decay is 0. Uses opt's scratch: not concurrently with another
 * call on opt. */
double cnn_optim_l2(const cnn_optim_t *opt, const float *w, int nthreads);

#endif
