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
    /* the worst status and the lowest rank that has it */
    int mine[2] = {(int)local, 0}, worst[2] = {0, 0};
    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &mine[1]), error);
    CNN_MPI_CHECK(st, MPI_Allreduce(mine, worst, 1, MPI_2INT, MPI_MAXLOC, comm), error);
    if (worst[0] == CNN_OK) return CNN_OK;
    /* Failures are rare: that rank's message goes to every rank, so each
     * one's error line says what went wrong (the file, the key) */
    char text[512];
    snprintf(text, sizeof text, "%s", mine[1] == worst[1] ? cnn_error_message() : "");
    CNN_MPI_CHECK(st, MPI_Bcast(text, (int)sizeof text, MPI_CHAR, worst[1], comm), error);
    text[sizeof text - 1] = '\0';
    if (local != CNN_OK) return (cnn_status_t)worst[0];
    int who = worst[1], initialized = 0;
    MPI_Group g = MPI_GROUP_NULL, gw = MPI_GROUP_NULL;
    /* name it as mpirun and the error lines do: its rank in MPI_COMM_WORLD
     * (a query, no communication; best effort: if it fails, the rank in
     * comm is named instead) */
    MPI_Initialized(&initialized);
    if (initialized && MPI_Comm_group(comm, &g) == MPI_SUCCESS &&
        MPI_Comm_group(MPI_COMM_WORLD, &gw) == MPI_SUCCESS &&
        (MPI_Group_translate_ranks(g, 1, &worst[1], gw, &who) != MPI_SUCCESS ||
         who == MPI_UNDEFINED))
        who = worst[1];
    if (g != MPI_GROUP_NULL) MPI_Group_free(&g);
    if (gw != MPI_GROUP_NULL) MPI_Group_free(&gw);
    return cnn_error_set((cnn_status_t)worst[0], "another rank failed (%s): rank %d: %s",
                         cnn_status_name((cnn_status_t)worst[0]), who,
                         text[0] ? text : "no message");
error:
    return st;
}
