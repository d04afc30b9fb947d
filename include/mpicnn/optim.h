/* optim.h - optimizers over the flat parameter arena: SGD, momentum,
 * Nesterov momentum and Adam, with L2 weight decay.
 *
 * The same step on the same (all-reduced) gradients on every rank keeps
 * the replicas identical. The update is elementwise, so its result does
 * not depend on the thread count. */
#ifndef MPICNN_OPTIM_H
#define MPICNN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/status.h"

typedef enum { CNN_SGD, CNN_MOMENTUM, CNN_NESTEROV, CNN_ADAM } cnn_optim_kind_t;

typedef struct {
    cnn_optim_kind_t kind;
    double momentum;     /* momentum / nesterov: mu */
    double beta1, beta2; /* adam */
    double eps;          /* adam */
    double weight_decay; /* L2: g += weight_decay * w */
    size_t n;            /* parameters */
    float *m;            /* (n) velocity or Adam's first moment, or NULL */
    float *v;            /* (n) Adam's second moment, or NULL */
    int64_t t;           /* steps taken */
} cnn_optim_t;

/* Name -> kind ("sgd", "momentum", "nesterov", "adam"); -1 if unknown. */
int cnn_optim_kind(const char *name);
const char *cnn_optim_name(cnn_optim_kind_t kind);

/* An optimizer for n parameters with zeroed state. Free with
 * cnn_optim_free(). The hyperparameters are set by the caller in the
 * returned struct (defaults: momentum 0.9, Adam 0.9/0.999/1e-8, no decay). */
cnn_status_t cnn_optim_create(cnn_optim_kind_t kind, size_t n, cnn_optim_t **out);
void cnn_optim_free(cnn_optim_t *opt);

/* Floats of state per parameter (0, 1 or 2): what a checkpoint saves. */
int cnn_optim_state_slots(const cnn_optim_t *opt);

/* One update of w (n) with gradient g (n) and learning rate lr. */
void cnn_optim_step(cnn_optim_t *opt, float *w, const float *g, double lr, int nthreads);

#endif
