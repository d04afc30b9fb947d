/* evaluate.h - score a net on a data set, spread over the ranks of a
 * communicator: each rank takes a contiguous slice, the sums are reduced. */
#ifndef MPICNN_EVALUATE_H
#define MPICNN_EVALUATE_H

#include <mpi.h>

#include "mpicnn/data.h"
#include "mpicnn/loss.h"
#include "mpicnn/net.h"

typedef struct {
    double loss;   /* mean loss */
    double acc;    /* correct / total */
    long correct;
    long total;
} cnn_eval_t;

/* Runs the net in test mode over all of ds (normalised with mean/std, c
 * entries, NULL for none). Collective over comm; every rank gets *out.
 * If want_scores, rank 0 also receives every image's output scores in
 * scores (ds->n x K, caller-allocated on rank 0; ignored elsewhere). */
cnn_status_t cnn_evaluate(MPI_Comm comm, cnn_net_t *net, const cnn_dataset_t *ds,
                          const float *mean, const float *std,
                          const cnn_loss_t *loss, int want_scores, float *scores,
                          cnn_eval_t *out);

/* The first of n rows of K scores (as cnn_evaluate() gathers them) that
 * holds a NaN or Inf, or n if every score is finite. Finite weights can
 * still overflow float32 arithmetic (weights of 3e38): `eval` and
 * `predict` refuse such outputs (CNN_ENUMERIC) rather than report them. */
size_t cnn_scores_first_nonfinite(const float *scores, size_t n, int K);

/* As cnn_evaluate(), when each rank holds only its slice of a set of
 * `total` images: part holds images [lo, hi) of it, where
 * cnn_sampler_eval_range(total, rank, size) gives [lo, hi). Collective
 * over comm. CNN_EINTERNAL if part is smaller than the slice. */
cnn_status_t cnn_evaluate_part(MPI_Comm comm, cnn_net_t *net, const cnn_dataset_t *part,
                               size_t total, const float *mean, const float *std,
                               const cnn_loss_t *loss, int want_scores, float *scores,
                               cnn_eval_t *out);

#endif
