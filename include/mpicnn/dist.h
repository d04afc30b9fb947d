/* dist.h - the MPI side: checked calls, gradient all-reduce, the sums of
 * layer statistics (synchronised batchnorm), and the agreement of all
 * ranks on one outcome.
 *
 * Nothing here uses MPI_COMM_WORLD: every function takes the
 * communicator it works on (a sweep gives each trial group its own). */
#ifndef MPICNN_DIST_H
#define MPICNN_DIST_H

#include <mpi.h>
#include <stddef.h>

#include "mpicnn/status.h"

/* Records a failed MPI call (file, line, rank, MPI's message) and returns
 * CNN_ECOMM. */
cnn_status_t cnn_mpi_error(int rc, const char *call, const char *file, int line);

/* Runs an MPI call; on failure sets `st` and jumps to `label`. */
#define CNN_MPI_CHECK(st, call, label)                                         \
    do {                                                                       \
        int cnn_mpi_rc_ = (call);                                              \
        if (cnn_mpi_rc_ != MPI_SUCCESS) {                                      \
            (st) = cnn_mpi_error(cnn_mpi_rc_, #call, __FILE__, __LINE__);      \
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* Sets MPI_ERRORS_RETURN on comm so failures come back as values. */
cnn_status_t cnn_dist_prepare(MPI_Comm comm);

/* In-place sum of n floats over comm. */
cnn_status_t cnn_dist_sum_floats(MPI_Comm comm, float *buf, size_t n);

/* In-place sum of n doubles over comm. */
cnn_status_t cnn_dist_sum_doubles(MPI_Comm comm, double *buf, size_t n);

/* The gradient sum of the trainer: every rank's block of n floats summed
 * over comm, the same result on every rank.
 *
 * Ranks that share a node sum through one shared-memory segment: each
 * writes its block into its own slot there, and after a barrier each
 * sums one slice of all the slots (the same order, slot 0 first, on every
 * rank) into a result every rank of the node reads. With nodes of equal
 * rank counts L > 1 spread over several nodes, each rank then sums its
 * slice over the nodes with MPI_Allreduce among the ranks of the same
 * slice (hierarchical all-reduce). Otherwise (one rank per node, nodes of
 * unequal sizes, no shared memory, or MPICNN_GRAD_SUM=mpi) it is one
 * MPI_Allreduce of the rank's block. */
typedef struct cnn_dist_gsum cnn_dist_gsum_t;

/* Collective over comm. n: floats per block. ranks_per_node: 0 finds the
 * nodes (MPI_COMM_TYPE_SHARED); L > 0 treats each L consecutive ranks as
 * a node (for tests: they must share memory). The environment variable
 * MPICNN_GRAD_SUM chooses: "auto" (or unset) as above, "mpi" always one
 * MPI_Allreduce; anything else is CNN_ECONFIG on every rank. If shared
 * memory cannot be had on some rank (say /dev/shm is full), every rank
 * falls back to MPI_Allreduce and the lowest such rank prints a warning.
 * Each rank allocates the pages of its own slot. The segment is unlinked
 * as soon as every rank has mapped it: only a run killed in between
 * leaves a file (/dev/shm/mpicnn-PID-N) behind. Returns CNN_OK,
 * CNN_ECONFIG, CNN_ENOMEM or CNN_ECOMM; on failure *out is NULL. Free
 * with cnn_dist_gsum_free(). */
cnn_status_t cnn_dist_gsum_create(MPI_Comm comm, size_t n, int ranks_per_node,
                                  cnn_dist_gsum_t **out);

/* Not collective: unmaps and frees (NULL: nothing). Blocks handed out by
 * cnn_dist_gsum_buffer() are invalid afterwards. */
void cnn_dist_gsum_free(cnn_dist_gsum_t *g);

/* This rank's slot in shared memory (n floats, 64-byte aligned, owned by
 * g), for the caller to accumulate its gradients in so that no copy is
 * needed; NULL when the sum uses MPI_Allreduce only, and any block serves. */
float *cnn_dist_gsum_buffer(cnn_dist_gsum_t *g);

/* How the sum runs: "mpi", "shared memory" or "shared memory + mpi". */
const char *cnn_dist_gsum_method(const cnn_dist_gsum_t *g);

/* The ranks per node of the shared-memory level, 1 when the sum is one
 * MPI_Allreduce. With the world size, this fixes the order of the sum
 * when it is 2 or more (with 1 the order is MPI_Allreduce's own). */
int cnn_dist_gsum_ranks_per_node(const cnn_dist_gsum_t *g);

/* Collective: sums the ranks' blocks `grads` (n floats; the slot from
 * cnn_dist_gsum_buffer() or any other block, then copied there first).
 * *sum points at the sum: `grads` itself after MPI_Allreduce, else a
 * block in shared memory owned by g, read-only, valid until this rank's
 * next call. Returns CNN_OK or CNN_ECOMM. */
cnn_status_t cnn_dist_gsum_run(cnn_dist_gsum_t *g, float *grads, const float **sum);

/* Sums for layers whose training statistics cover the global batch (a
 * batchnorm with sync = true): the hook of cnn_ctx_t.allreduce_sum over
 * the ranks that train the model. Each training step is one begin/end
 * pair around its forward and backward passes; only the ranks that have
 * images in the step run them, so begin sets up a communicator of those
 * ranks. The trainer keeps one per run (in its own memory). */
typedef struct {
    MPI_Comm comm;       /* the training communicator (not owned) */
    MPI_Comm step;       /* this step's: comm, a communicator of the ranks
                            with images (owned), or MPI_COMM_NULL */
    int ranks;           /* ranks with images in this step */
    cnn_status_t status; /* the first failed sum of the step, else CNN_OK */
} cnn_dist_layer_sum_t;

/* Not collective: an idle s over comm (no step begun). */
void cnn_dist_layer_sum_init(cnn_dist_layer_sum_t *s, MPI_Comm comm);

/* Collective over s->comm, once per step before the forward pass:
 * has_images 1 if this rank runs the step's passes, else 0. Counts the
 * ranks with images (s->ranks) and, if some have none, splits off a
 * communicator of the others (MPI_COMM_NULL on a rank without). Returns
 * CNN_OK or CNN_ECOMM. */
cnn_status_t cnn_dist_layer_sum_begin(cnn_dist_layer_sum_t *s, int has_images);

/* The hook (arg: a begun cnn_dist_layer_sum_t): sums the n doubles of buf
 * in place over the step's ranks with images. Collective over those. On
 * failure returns CNN_ECOMM, records it in s->status, and from then on
 * returns it at once without calling MPI, until the step's end. */
cnn_status_t cnn_dist_layer_sum(void *arg, double *buf, size_t n);

/* Not collective: ends the step (frees its communicator) and returns the
 * first failure of its sums, or CNN_OK. */
cnn_status_t cnn_dist_layer_sum_end(cnn_dist_layer_sum_t *s);

/* All ranks agree on one status: the most severe (largest) of the local
 * ones. A rank whose own status is OK but whose peers failed gets that
 * status with the message "another rank failed (<status>): rank R:
 * <R's message>", R being the lowest rank with that status (numbered as
 * in MPI_COMM_WORLD). A failing rank keeps its own message. If the
 * agreement itself fails, CNN_ECOMM. */
cnn_status_t cnn_dist_agree(MPI_Comm comm, cnn_status_t local);

/* A barrier over comm that sleeps (20 ms at a time) instead of spinning in
 * MPI: for ranks that may wait long (for a lock, for other groups'
 * trials) and should leave their cores to those still working.
 * Collective. */
cnn_status_t cnn_dist_idle_barrier(MPI_Comm comm);

#endif
