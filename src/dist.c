/* dist.c - checked MPI helpers. */
#include "mpicnn/dist.h"

#include <limits.h>
#include <stdio.h>

cnn_status_t cnn_mpi_error(int rc, const char *call, const char *file, int line)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0, rank = -1, initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    return cnn_error_set(CNN_ECOMM, "%s:%d: rank %d: %s failed: %s", file, line, rank,
                         call, msg);
}

cnn_status_t cnn_dist_prepare(MPI_Comm comm)
{
    cnn_status_t st = CNN_OK;
    CNN_MPI_CHECK(st, MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), error);
error:
    return st;
}

/* MPI counts are int: large buffers go in chunks. */
#define CHUNK (INT_MAX / 2)

cnn_status_t cnn_dist_sum_floats(MPI_Comm comm, float *buf, size_t n)
{
    cnn_status_t st = CNN_OK;
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        CNN_MPI_CHECK(st, MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, comm),
                      error);
    }
error:
    return st;
}

cnn_status_t cnn_dist_sum_doubles(MPI_Comm comm, double *buf, size_t n)
{
    cnn_status_t st = CNN_OK;
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        CNN_MPI_CHECK(st, MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, MPI_SUM, comm),
                      error);
    }
error:
    return st;
}

cnn_status_t cnn_dist_agree(MPI_Comm comm, cnn_status_t local)
{
    cnn_status_t st = CNN_OK;
    int mine = (int)local, worst = 0;
    CNN_MPI_CHECK(st, MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm), error);
    if (worst != CNN_OK && local == CNN_OK)
        return cnn_error_set((cnn_status_t)worst, "another rank failed (%s)",
                             cnn_status_name((cnn_status_t)worst));
    return (cnn_status_t)worst;
error:
    return st;
}
