/* evaluate.c - distributed scoring of a data set. */
#include "mpicnn/evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "mpicnn/dist.h"
#include "mpicnn/kernels.h"

/* Runs the net over images [lo, hi) of ds in batches of the net's batch
 * size; sums[0] += their loss, sums[1] += the correct ones; their output
 * scores ((hi - lo) x K) go to mine unless it is NULL. */
static cnn_status_t score_slice(cnn_net_t *net, const cnn_dataset_t *ds, const float *mean,
                                const float *std, const cnn_loss_t *loss, int rank, size_t lo,
                                size_t hi, double sums[2], float *mine)
{
    const int K = net->output.c, B = net->input.n;
    size_t *idx = malloc(sizeof(size_t) * (size_t)B);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)B);
    if (!idx || !labels) {
        free(idx);
        free(labels);
        return cnn_error_set(CNN_ENOMEM, "out of memory");
    }
    cnn_ctx_t ctx = cnn_net_ctx(net, 0, 0, rank, 0);
    for (size_t start = lo; start < hi; start += (size_t)B) {
        int n = (int)(hi - start < (size_t)B ? hi - start : (size_t)B);
        for (int i = 0; i < n; i++) idx[i] = start + (size_t)i;
        cnn_dataset_batch(ds, idx, n, mean, std, cnn_net_input(net), labels);
        const float *y = cnn_net_forward(net, &ctx, n);
        double s;
        loss->compute(y, labels, n, K, 0.0f, &s, NULL);
        sums[0] += s;
        for (int i = 0; i < n; i++)
            sums[1] += cnn_argmax(y + (size_t)i * K, K) == labels[i];
        if (mine) memcpy(mine + (start - lo) * K, y, sizeof(float) * (size_t)n * K);
    }
    free(idx);
    free(labels);
    return CNN_OK;
}

/* Every rank's slice of scores (mine) into scores on rank 0, in image
 * order: ds->n x K floats. */
static cnn_status_t gather_scores(MPI_Comm comm, int rank, int size, size_t n, int K,
                                  const float *mine, float *scores)
{
    cnn_status_t st = CNN_OK;
    int *counts = malloc(sizeof(int) * (size_t)size), *displs = malloc(sizeof(int) * (size_t)size);
    if (!counts || !displs) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
        goto error;
    }
    if (n * (size_t)K > 0x7fffffff) {
        st = cnn_error_set(CNN_EDATA, "too many scores to gather (%zu)", n * (size_t)K);
        goto error;
    }
    for (int r = 0; r < size; r++) {
        size_t a, b;
        cnn_sampler_eval_range(n, r, size, &a, &b);
        counts[r] = (int)((b - a) * (size_t)K);
        displs[r] = (int)(a * (size_t)K);
    }
    CNN_MPI_CHECK(st, MPI_Gatherv(mine, counts[rank], MPI_FLOAT, scores, counts, displs,
                                  MPI_FLOAT, 0, comm), error);
error:
    free(counts);
    free(displs);
    return st;
}

/* Scores images [first, first + (hi - lo)) of ds, which are images
 * [lo, hi) of a set of `total`: this rank's evaluation slice. */
static cnn_status_t evaluate_range(MPI_Comm comm, cnn_net_t *net, const cnn_dataset_t *ds,
                                   size_t first, size_t total, const float *mean,
                                   const float *std, const cnn_loss_t *loss, int want_scores,
                                   float *scores, cnn_eval_t *out)
{
    cnn_status_t st = CNN_OK;
    int rank, size;
    const int K = net->output.c;
    float *mine = NULL;
    double sums[2] = {0, 0}; /* loss, correct */
    size_t lo, hi;
    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(comm, &size), error);
    cnn_sampler_eval_range(total, rank, size, &lo, &hi);
    if (first + (hi - lo) > ds->n) {
        st = cnn_error_set(CNN_EINTERNAL, "evaluation slice [%zu, %zu) of %zu images is not in "
                           "the %zu images held", lo, hi, total, ds->n);
        goto error;
    }
    if (want_scores && !(mine = malloc(sizeof(float) * ((hi - lo) * (size_t)K + 1)))) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
        goto error;
    }
    st = score_slice(net, ds, mean, std, loss, rank, first, first + (hi - lo), sums, mine);
    if (st != CNN_OK) goto error;
    if ((st = cnn_dist_sum_doubles(comm, sums, 2)) != CNN_OK) goto error;
    out->total = (long)total;
    out->correct = (long)sums[1];
    out->loss = total ? sums[0] / (double)total : 0.0;
    out->acc = total ? sums[1] / (double)total : 0.0;
    if (want_scores) st = gather_scores(comm, rank, size, total, K, mine, scores);
error:
    free(mine);
    return st;
}

cnn_status_t cnn_evaluate(MPI_Comm comm, cnn_net_t *net, const cnn_dataset_t *ds,
                          const float *mean, const float *std,
                          const cnn_loss_t *loss, int want_scores, float *scores,
                          cnn_eval_t *out)
{
    cnn_status_t st = CNN_OK;
    int rank, size;
    size_t lo, hi;
    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(comm, &size), error);
    cnn_sampler_eval_range(ds->n, rank, size, &lo, &hi);
    st = evaluate_range(comm, net, ds, lo, ds->n, mean, std, loss, want_scores, scores, out);
error:
    return st;
}

cnn_status_t cnn_evaluate_part(MPI_Comm comm, cnn_net_t *net, const cnn_dataset_t *part,
                               size_t total, const float *mean, const float *std,
                               const cnn_loss_t *loss, int want_scores, float *scores,
                               cnn_eval_t *out)
{
    return evaluate_range(comm, net, part, 0, total, mean, std, loss, want_scores, scores, out);
}

size_t cnn_scores_first_nonfinite(const float *scores, size_t n, int K)
{
    for (size_t i = 0; i < n; i++)
        if (!cnn_all_finite(scores + i * (size_t)K, (size_t)K)) return i;
    return n;
}
