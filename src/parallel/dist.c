/* dist.c - checked MPI helpers. */
#include "mpicnn/dist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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

/* ------------------------------------------------------------------ */
/* gradient sum                                                        */

struct cnn_dist_gsum {
    MPI_Comm node;  /* the ranks sharing the segment; MPI_COMM_NULL: one MPI_Allreduce */
    MPI_Comm cross; /* the ranks of the same slice on the other nodes; MPI_COMM_NULL: one node */
    MPI_Comm comm;  /* the caller's, for the MPI_Allreduce path (not owned) */
    int nrank, nsize;
    size_t n;       /* floats per block */
    size_t stride;  /* floats from one slot to the next (whole pages) */
    size_t lo, hi;  /* this rank's slice of the sum */
    float *map;     /* nsize slots, then the sum */
    size_t map_bytes;
};

/* Slice r of L over n floats: whole 64-byte lines, so no two ranks write
 * the same line of the sum. */
static size_t slice_start(size_t n, int r, int L)
{
    return r >= L ? n : n * (size_t)r / (size_t)L / 16 * 16;
}

static void gsum_unmap(cnn_dist_gsum_t *g)
{
    if (g->map) munmap(g->map, g->map_bytes);
    g->map = NULL;
    if (g->node != MPI_COMM_NULL) MPI_Comm_free(&g->node);
    if (g->cross != MPI_COMM_NULL) MPI_Comm_free(&g->cross);
}

void cnn_dist_gsum_free(cnn_dist_gsum_t *g)
{
    if (!g) return;
    gsum_unmap(g);
    free(g);
}

/* Maps the node's segment: node rank 0 creates it, the others open it by
 * the name it sends them, and it is unlinked once all have it mapped.
 * Returns 1 if this rank has it mapped, 0 (with *why set) if not; MPI
 * failures are CNN_ECOMM through st. An MPI failure here leaves the
 * node's other ranks in the barrier below, as a failed all-reduce would:
 * the run is lost either way and the watchdog names the rank. */
static int gsum_map(cnn_dist_gsum_t *g, char *why, size_t why_len, cnn_status_t *st)
{
    static unsigned serial;
    char name[64] = "";
    int fd = -1, ok = 1;
    if (g->nrank == 0) {
        for (int tries = 0; fd < 0 && tries < 16; tries++) {
            snprintf(name, sizeof name, "/mpicnn-%ld-%u", (long)getpid(), serial++);
            fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
            if (fd < 0 && errno != EEXIST) break;
        }
        /* sized here, its pages allocated by the ranks that write them */
        if (fd < 0 || ftruncate(fd, (off_t)g->map_bytes) != 0) {
            snprintf(why, why_len, "%s %s: %s", fd < 0 ? "shm_open" : "ftruncate", name,
                     strerror(errno));
            if (fd >= 0) {
                shm_unlink(name);
                close(fd);
                fd = -1;
            }
            name[0] = '\0';
            ok = 0;
        }
    }
    CNN_MPI_CHECK(*st, MPI_Bcast(name, (int)sizeof name, MPI_CHAR, 0, g->node), error);
    if (!name[0]) {
        ok = 0; /* node rank 0 says why */
    } else {
        if (g->nrank != 0) fd = shm_open(name, O_RDWR, 0);
        /* Each rank allocates its own slot (node rank 0 the sum as well):
         * on a node of several sockets its pages are then on its own
         * memory, and a full /dev/shm is an error now instead of a
         * SIGBUS in the first step. */
        const size_t slot = sizeof(float) * g->stride;
        const char *what = "shm_open";
        int rc = fd < 0 ? errno : 0;
        if (rc == 0) {
            what = "posix_fallocate";
            rc = posix_fallocate(fd, (off_t)(slot * (size_t)g->nrank), (off_t)slot);
            if (rc == 0 && g->nrank == 0)
                rc = posix_fallocate(fd, (off_t)(slot * (size_t)g->nsize), (off_t)slot);
        }
        if (rc == 0) {
            what = "mmap";
            void *p = mmap(NULL, g->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) rc = errno;
            else g->map = p;
        }
        if (rc != 0) {
            snprintf(why, why_len, "%s %s (%zu bytes): %s", what, name, g->map_bytes,
                     strerror(rc));
            ok = 0;
        }
    }
    /* every rank has opened it (or failed to) once all are past here */
    CNN_MPI_CHECK(*st, MPI_Barrier(g->node), error);
error:
    if (name[0] && g->nrank == 0) shm_unlink(name);
    if (fd >= 0) close(fd);
    return ok;
}

cnn_status_t cnn_dist_gsum_create(MPI_Comm comm, size_t n, int ranks_per_node,
                                  cnn_dist_gsum_t **out)
{
    cnn_status_t st = CNN_OK;
    *out = NULL;
    cnn_dist_gsum_t *g = calloc(1, sizeof *g);
    int rank = 0, size = 1, local[2] = {0, 0}; /* a bad setting (2: no memory), "mpi" */
    if (!g) local[0] = 2;
    else {
        g->node = g->cross = MPI_COMM_NULL;
        g->comm = comm;
        g->n = n;
    }
    const char *env = getenv("MPICNN_GRAD_SUM");
    if (env && strcmp(env, "mpi") == 0) local[1] = 1;
    else if (env && *env && strcmp(env, "auto") != 0 && !local[0]) local[0] = 1;
    int any[2] = {0, 0};
    CNN_MPI_CHECK(st, MPI_Allreduce(local, any, 2, MPI_INT, MPI_MAX, comm), error);
    const int worst = any[0];
    if (worst == 2) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory for the gradient sum");
        goto error;
    }
    if (worst == 1) {
        st = cnn_error_set(CNN_ECONFIG, "MPICNN_GRAD_SUM=%s: expected 'auto' or 'mpi'",
                           env && local[0] ? env : "(another rank's value)");
        goto error;
    }
    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(comm, &size), error);
    if (any[1] || size < 2 || n == 0) goto done;

    if (ranks_per_node > 0)
        CNN_MPI_CHECK(st, MPI_Comm_split(comm, rank / ranks_per_node, rank, &g->node), error);
    else
        CNN_MPI_CHECK(st, MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
                                              &g->node), error);
    if ((st = cnn_dist_prepare(g->node)) != CNN_OK) goto error;
    CNN_MPI_CHECK(st, MPI_Comm_rank(g->node, &g->nrank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(g->node, &g->nsize), error);
    /* the smallest and (negated) the largest node */
    int l[2] = {g->nsize, -g->nsize}, lmin[2];
    CNN_MPI_CHECK(st, MPI_Allreduce(l, lmin, 2, MPI_INT, MPI_MIN, comm), error);
    if (lmin[0] != -lmin[1] || lmin[0] < 2) goto plain;
    if (g->nsize < size) {
        CNN_MPI_CHECK(st, MPI_Comm_split(comm, g->nrank, rank, &g->cross), error);
        if ((st = cnn_dist_prepare(g->cross)) != CNN_OK) goto error;
    }
    /* whole 4 KB pages per slot: no two ranks write the same page */
    g->stride = (n + 1023) / 1024 * 1024;
    if (g->stride / 1024 > (size_t)INT64_MAX / 4096 / ((size_t)g->nsize + 1)) goto plain;
    g->map_bytes = sizeof(float) * g->stride * ((size_t)g->nsize + 1);
    if ((size_t)(off_t)g->map_bytes != g->map_bytes) goto plain; /* a 32-bit off_t */
    g->lo = slice_start(n, g->nrank, g->nsize);
    g->hi = slice_start(n, g->nrank + 1, g->nsize);
    char why[256] = "";
    int mapped = gsum_map(g, why, sizeof why, &st);
    if (st != CNN_OK) goto error;
    /* all ranks or none: the lowest rank that failed says why */
    int bad = mapped ? INT_MAX : rank, first_bad = INT_MAX;
    CNN_MPI_CHECK(st, MPI_Allreduce(&bad, &first_bad, 1, MPI_INT, MPI_MIN, comm), error);
    if (first_bad != INT_MAX) {
        if (rank == first_bad)
            fprintf(stderr, "mpicnn: rank %d: warning: no shared memory for the gradient sum (%s); "
                            "summing with MPI_Allreduce\n", rank, why);
        goto plain;
    }
    goto done;
plain:
    gsum_unmap(g);
done:
    *out = g;
    return CNN_OK;
error:
    cnn_dist_gsum_free(g);
    return st;
}

float *cnn_dist_gsum_buffer(cnn_dist_gsum_t *g)
{
    return g->map ? g->map + g->stride * (size_t)g->nrank : NULL;
}

int cnn_dist_gsum_ranks_per_node(const cnn_dist_gsum_t *g)
{
    return g->map ? g->nsize : 1;
}

const char *cnn_dist_gsum_method(const cnn_dist_gsum_t *g)
{
    return !g->map ? "mpi" : g->cross != MPI_COMM_NULL ? "shared memory + mpi" : "shared memory";
}

/* Orders this rank's stores to the segment before what the barrier lets
 * the other ranks do, and their stores before this rank's loads after it
 * (MPI_Barrier alone promises nothing about memory). */
static int node_barrier(MPI_Comm node)
{
    atomic_thread_fence(memory_order_seq_cst);
    int rc = MPI_Barrier(node);
    atomic_thread_fence(memory_order_seq_cst);
    return rc;
}

cnn_status_t cnn_dist_gsum_run(cnn_dist_gsum_t *g, float *grads, const float **sum)
{
    cnn_status_t st = CNN_OK;
    *sum = grads;
    if (!g->map) return cnn_dist_sum_floats(g->comm, grads, g->n);
    float *mine = cnn_dist_gsum_buffer(g);
    if (grads != mine) memcpy(mine, grads, sizeof(float) * g->n);
    float *res = g->map + g->stride * (size_t)g->nsize;
    /* every rank has its block in place, and has finished reading the last sum */
    CNN_MPI_CHECK(st, node_barrier(g->node), error);
    enum { CH = 512 };
    const int L = g->nsize;
    for (size_t a = g->lo; a < g->hi; a += CH) {
        const size_t m = g->hi - a < CH ? g->hi - a : CH;
        float *restrict r = res + a;
        const float *restrict b0 = g->map + a;
        const float *restrict b1 = g->map + g->stride + a;
        for (size_t i = 0; i < m; i++) r[i] = b0[i] + b1[i];
        for (int k = 2; k < L; k++) {
            const float *restrict bk = g->map + g->stride * (size_t)k + a;
            for (size_t i = 0; i < m; i++) r[i] += bk[i];
        }
    }
    /* (if this fails, the node's other ranks wait in the barrier below, as
     * they would in a failed MPI_Allreduce, until the watchdog or mpirun
     * ends the run) */
    if (g->cross != MPI_COMM_NULL &&
        (st = cnn_dist_sum_floats(g->cross, res + g->lo, g->hi - g->lo)) != CNN_OK)
        goto error;
    /* every slice of the sum is complete */
    CNN_MPI_CHECK(st, node_barrier(g->node), error);
    *sum = res;
error:
    return st;
}

/* ------------------------------------------------------------------ */
/* sums of layer statistics                                            */

void cnn_dist_layer_sum_init(cnn_dist_layer_sum_t *s, MPI_Comm comm)
{
    *s = (cnn_dist_layer_sum_t){.comm = comm, .step = MPI_COMM_NULL, .status = CNN_OK};
}

cnn_status_t cnn_dist_layer_sum_begin(cnn_dist_layer_sum_t *s, int has_images)
{
    cnn_status_t st = CNN_OK;
    int size = 0, mine = has_images ? 1 : 0;
    s->step = MPI_COMM_NULL;
    s->ranks = 0;
    s->status = CNN_OK;
    CNN_MPI_CHECK(st, MPI_Comm_size(s->comm, &size), error);
    CNN_MPI_CHECK(st, MPI_Allreduce(&mine, &s->ranks, 1, MPI_INT, MPI_SUM, s->comm), error);
    if (s->ranks == size) {
        s->step = s->comm;
        return CNN_OK;
    }
    /* a last batch smaller than the ranks, or a rank that could not read
     * its images: the others sum among themselves */
    int rank = 0;
    MPI_Comm part = MPI_COMM_NULL;
    CNN_MPI_CHECK(st, MPI_Comm_rank(s->comm, &rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_split(s->comm, mine ? 0 : MPI_UNDEFINED, rank, &part), error);
    s->step = part; /* freed by the end of the step */
    if (part != MPI_COMM_NULL) st = cnn_dist_prepare(part);
error:
    s->status = st;
    return st;
}

cnn_status_t cnn_dist_layer_sum(void *arg, double *buf, size_t n)
{
    cnn_dist_layer_sum_t *s = arg;
    /* after a failure the communicator is not to be trusted: no more
     * collectives in this step, whose end reports the failure */
    if (s->status != CNN_OK) return s->status;
    if (s->step == MPI_COMM_NULL)
        s->status = cnn_error_set(CNN_ECOMM, "a layer summed its statistics over the ranks "
                                             "on a rank that has no images in the step");
    else
        s->status = cnn_dist_sum_doubles(s->step, buf, n);
    return s->status;
}

cnn_status_t cnn_dist_layer_sum_end(cnn_dist_layer_sum_t *s)
{
    cnn_status_t st = s->status;
    if (s->step != MPI_COMM_NULL && s->step != s->comm) {
        int rc = MPI_Comm_free(&s->step);
        if (rc != MPI_SUCCESS && st == CNN_OK)
            st = cnn_mpi_error(rc, "MPI_Comm_free(&s->step)", __FILE__, __LINE__);
    }
    s->step = MPI_COMM_NULL;
    s->status = CNN_OK;
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

cnn_status_t cnn_dist_idle_barrier(MPI_Comm comm)
{
    cnn_status_t st = CNN_OK;
    MPI_Request req = MPI_REQUEST_NULL;
    int done = 0;
    CNN_MPI_CHECK(st, MPI_Ibarrier(comm, &req), error);
    for (;;) {
        CNN_MPI_CHECK(st, MPI_Test(&req, &done, MPI_STATUS_IGNORE), error);
        if (done) break;
        const struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
error:
    return st;
}
