/* dist.h - the MPI side: checked calls, gradient all-reduce, and the
 * agreement of all ranks on one outcome.
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

/* All ranks agree on one status: the most severe (largest) of the local
 * ones. A rank whose own status is OK but whose peers failed gets that
 * status with the message "another rank failed (<status>): rank R:
 * <R's message>", R being the lowest rank with that status (numbered as
 * in MPI_COMM_WORLD). A failing rank keeps its own message. If the
 * agreement itself fails, CNN_ECOMM. */
cnn_status_t cnn_dist_agree(MPI_Comm comm, cnn_status_t local);

#endif
