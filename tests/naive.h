/* naive.h - plain double-precision references for the tests, written
 * straight from the definitions: every layer (through its ops table's
 * `reference`) and loss, and finite differences of them. */
#ifndef MPICNN_TEST_NAIVE_H
#define MPICNN_TEST_NAIVE_H

#include "mpicnn/layer.h"

/* Forward of one layer in double: its type's reference function. x is (in.n, c, h, w); params in the
 * layer's parameter layout; state (batchnorm running mean then var) is
 * read in test mode; mask (dropout, per element) is used in train mode.
 * y has the layer's output shape. */
void naive_forward(const cnn_layer_spec_t *spec, cnn_shape_t in, cnn_shape_t out,
                   const double *x, const double *params, const double *state,
                   const double *mask, int train, double *y);

/* Central differences (step 1e-6) of sum(r * naive_forward) with respect
 * to the nv values of x (wrt_params 0) or of params (1), into g. */
void naive_grad(const cnn_layer_spec_t *spec, cnn_shape_t in, cnn_shape_t out,
                double *x, double *params, const double *state, const double *mask,
                int train, const double *r, int wrt_params, size_t nv, double *g);

/* Summed loss over n samples of logits (n,k). */
double naive_softmax_ce(const double *z, const int *labels, int n, int k);
double naive_hinge(const double *z, const int *labels, int n, int k);

/* linspace(lo, hi, n) as numpy: n points, both ends included. */
void naive_linspace(double lo, double hi, int n, double *out);

#endif
