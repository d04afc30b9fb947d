/* loss.h - losses on logits (N,K) with integer labels.
 *
 * Each loss returns the SUM of the per-sample losses and writes
 * dlogits = scale * d(sum)/d(logits). The trainer passes
 * scale = 1/global_batch so that summing gradients over ranks gives the
 * gradient of the global mean; `mpicnn op` passes 1/N. */
#ifndef MPICNN_LOSS_H
#define MPICNN_LOSS_H

#include "mpicnn/status.h"

typedef struct {
    const char *name; /* "softmax_ce" or "hinge" */
    /* logits (n,k), labels (n) in [0,k); dlogits (n,k) or NULL.
     * Returns the summed loss in *sum (double for a stable total). */
    void (*compute)(const float *logits, const int *labels, int n, int k,
                    float scale, double *sum, float *dlogits);
} cnn_loss_t;

/* The loss named `name` ("softmax_ce", "hinge"), or NULL. Static. */
const cnn_loss_t *cnn_loss_find(const char *name);

extern const cnn_loss_t cnn_loss_softmax_ce, cnn_loss_hinge;

/* Softmax cross-entropy against label-smoothed targets
 * t = (1 - smoothing) onehot(label) + smoothing / k, smoothing in [0, 1):
 * per sample sum_j t_j (lse(z) - z_j), and dlogits = scale (softmax(z) - t).
 * smoothing = 0 is cnn_loss_softmax_ce, bit for bit. Same arguments and
 * outputs as cnn_loss_t's compute. */
void cnn_loss_softmax_ce_smooth(const float *logits, const int *labels, int n, int k,
                                double smoothing, float scale, double *sum, float *dlogits);

/* Index of the largest of k scores (first one on ties). */
int cnn_argmax(const float *v, int k);

#endif
