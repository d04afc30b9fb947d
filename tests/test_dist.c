/* test_dist.c - the gradient sum (cnn_dist_gsum_*), run under mpirun -np 4
 * (and as a single process): every rank gets, bit for bit, the sum in the
 * documented order, through shared memory on one node, through shared
 * memory and MPI with the ranks cut into "nodes" of 2, and through
 * MPI_Allreduce alone; the method is chosen as documented, a bad
 * MPICNN_GRAD_SUM fails on every rank, no shared-memory file outlives
 * the set-up, and a segment that cannot be had falls back to MPI; the
 * sums of layer statistics over the ranks with images. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>
#include <mpi.h>

#include "mpicnn.h"
#include "mpicnn/dist.h"
#include "testutil.h"

static int rank, size;

/* Rank r's block for call `call`: values of mixed sign and magnitude, so
 * that the order of the sum shows in the rounding. */
static void block(float *x, size_t n, int r, int call)
{
    uint64_t s = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)r << 32) ^ (uint64_t)(call + 1);
    for (size_t i = 0; i < n; i++) {
        double m = tu_uniform(&s, -1.0, 1.0);
        x[i] = (float)(m * (i % 7 == 0 ? 1e4 : i % 3 == 0 ? 1e-3 : 1.0));
    }
}

/* The sum as documented: within a node of L ranks slot 0 first, left to
 * right; over the nodes (rpn > 0) the node sums added left to right too,
 * which is what MPI_Allreduce gives for 2 nodes. rpn = 0: one node. */
static void expected(float *want, size_t n, int call, int rpn)
{
    const int L = rpn > 0 ? rpn : size;
    float *b = malloc(sizeof(float) * n), *node = malloc(sizeof(float) * n);
    assert_non_null(b);
    assert_non_null(node);
    for (int first = 0; first < size; first += L) {
        for (int k = 0; k < L; k++) {
            block(b, n, first + k, call);
            for (size_t i = 0; i < n; i++) node[i] = k == 0 ? b[i] : node[i] + b[i];
        }
        for (size_t i = 0; i < n; i++) want[i] = first == 0 ? node[i] : want[i] + node[i];
    }
    free(b);
    free(node);
}

/* Three sums in a row of blocks of n floats; each must match the reference
 * bit for bit (an earlier sum's result is not read after the next call).
 * The method is the same on every rank (agreed), so its assert fails on
 * all of them or none; the sums are agreed after the three calls. */
static void check_sums(size_t n, int rpn, int use_slot, const char *method)
{
    cnn_dist_gsum_t *g;
    assert_int_equal(cnn_dist_gsum_create(MPI_COMM_WORLD, n, rpn, &g), CNN_OK);
    assert_string_equal(cnn_dist_gsum_method(g), method);
    const int shared = strcmp(method, "mpi") != 0;
    assert_int_equal(cnn_dist_gsum_ranks_per_node(g), !shared ? 1 : rpn > 0 ? rpn : size);
    float *own = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
    assert_non_null(own);
    assert_non_null(want);
    float *slot = cnn_dist_gsum_buffer(g);
    float *x = use_slot && slot ? slot : own;
    if (slot) assert_int_equal((uintptr_t)slot % 64, 0);
    const int mpi = !shared;
    char msg[256] = "";
    for (int call = 0; call < 3; call++) {
        block(x, n, rank, call);
        const float *sum;
        if (cnn_dist_gsum_run(g, x, &sum) != CNN_OK) {
            snprintf(msg, sizeof msg, "call %d: %s", call, cnn_error_message());
            break;
        }
        /* one rank checks late, while the others are already in the
         * next call (no collective in between when the sum is shared):
         * the sum must not change under it */
        if (rank == call % size) usleep(5000);
        if (mpi) {
            /* MPI_Allreduce's order is its own: close to the exact sum,
             * and the same bits on every rank */
            double *exact = calloc(n, sizeof(double));
            assert_non_null(exact);
            for (int r = 0; r < size; r++) {
                block(want, n, r, call);
                for (size_t i = 0; i < n; i++) exact[i] += want[i];
            }
            size_t w;
            double worst = tu_worst(sum, exact, n, 1e-2, 1e-5, &w);
            if (worst > 1 && !msg[0])
                snprintf(msg, sizeof msg, "call %d: sum[%zu] = %.9g, exact %.9g", call, w, sum[w],
                         exact[w]);
            free(exact);
            memcpy(want, sum, sizeof(float) * n);
            MPI_Bcast(want, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
        } else {
            expected(want, n, call, strcmp(method, "shared memory + mpi") == 0 ? rpn : 0);
        }
        for (size_t i = 0; i < n && !msg[0]; i++)
            if (memcmp(&sum[i], &want[i], sizeof(float)) != 0)
                snprintf(msg, sizeof msg, "call %d: sum[%zu] = %.9g, expected %.9g", call, i,
                         sum[i], want[i]);
    }
    /* every rank fails together, or the others would wait in the next
     * collective forever (a rank that broke off above makes fewer calls:
     * with a failed sum the run is lost anyway) */
    int bad = msg[0] != 0, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any)
        fail_msg("n %zu, %s, rank %d: %s", n, method, rank,
                 bad ? msg : "another rank's sum is wrong");
    free(own);
    free(want);
    cnn_dist_gsum_free(g);
}

static const size_t sizes[] = {1, 15, 16, 17, 63, 64, 65, 1000, 4099, 421642};

static void test_one_node(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        check_sums(sizes[i], 0, 1, size > 1 ? "shared memory" : "mpi");
        check_sums(sizes[i], 0, 0, size > 1 ? "shared memory" : "mpi");
    }
}

/* 4 ranks as 2 nodes of 2: the node sums, then MPI between the nodes */
static void test_two_nodes(void **state)
{
    (void)state;
    if (size != 4) skip();
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        check_sums(sizes[i], 2, i % 2, "shared memory + mpi");
}

static void test_mpi_only(void **state)
{
    (void)state;
    /* one rank per "node": nothing to share */
    check_sums(1000, 1, 1, "mpi");
    /* nodes of unequal size (3 + 1 of 4 ranks) */
    if (size == 4) check_sums(1000, 3, 1, "mpi");
    setenv("MPICNN_GRAD_SUM", "mpi", 1);
    check_sums(4099, 0, 1, "mpi");
    /* on one rank only: all of them use MPI */
    if (rank == size - 1) setenv("MPICNN_GRAD_SUM", "mpi", 1);
    else unsetenv("MPICNN_GRAD_SUM");
    check_sums(65, 0, 1, "mpi");
    setenv("MPICNN_GRAD_SUM", "auto", 1);
    check_sums(17, 0, 1, size > 1 ? "shared memory" : "mpi");
    unsetenv("MPICNN_GRAD_SUM");
}

/* A bad value on one rank fails the set-up on every rank */
static void test_bad_env(void **state)
{
    (void)state;
    if (rank == size - 1) setenv("MPICNN_GRAD_SUM", "nccl", 1);
    cnn_dist_gsum_t *g = (cnn_dist_gsum_t *)1;
    assert_int_equal(cnn_dist_gsum_create(MPI_COMM_WORLD, 100, 0, &g), CNN_ECONFIG);
    assert_null(g);
    if (rank == size - 1)
        assert_non_null(strstr(cnn_error_message(), "MPICNN_GRAD_SUM=nccl"));
    unsetenv("MPICNN_GRAD_SUM");
}

/* Files in /dev/shm whose names start with `prefix` */
static int count_files(const char *prefix)
{
    DIR *d = opendir("/dev/shm");
    if (!d) return 0;
    int k = 0;
    for (struct dirent *e; (e = readdir(d));) k += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return k;
}

/* The segment is unlinked once every rank has it: nothing is left behind
 * even if the run is killed later */
static void test_nothing_left(void **state)
{
    (void)state;
    if (size < 2) skip();
    long pid = (long)getpid();
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "mpicnn-%ld-", pid);
    cnn_dist_gsum_t *g;
    assert_int_equal(cnn_dist_gsum_create(MPI_COMM_WORLD, 5000, 0, &g), CNN_OK);
    assert_non_null(cnn_dist_gsum_buffer(g));
    assert_int_equal(count_files(prefix), 0);
    cnn_dist_gsum_free(g);
}

/* No room for the segment: every rank falls back to MPI_Allreduce (and
 * the lowest one says why on stderr). Here each slot is larger than all
 * of /dev/shm, which posix_fallocate refuses at once. */
static void test_no_room(void **state)
{
    (void)state;
    struct statvfs fs;
    if (size < 2 || statvfs("/dev/shm", &fs) != 0 || fs.f_blocks == 0) skip();
    size_t n = (size_t)fs.f_blocks * fs.f_frsize / sizeof(float) + 1;
    cnn_dist_gsum_t *g;
    assert_int_equal(cnn_dist_gsum_create(MPI_COMM_WORLD, n, 0, &g), CNN_OK);
    assert_string_equal(cnn_dist_gsum_method(g), "mpi");
    assert_null(cnn_dist_gsum_buffer(g));
    cnn_dist_gsum_free(g);
}

/* The sums of layer statistics (cnn_dist_layer_sum_*): over every rank,
 * or, with one rank without images, over the others on a communicator
 * of their own; on the rank without, a sum fails, stays failed without
 * calling MPI, and the end of the step reports it. */
static void test_layer_sum(void **state)
{
    (void)state;
    cnn_dist_layer_sum_t s;
    cnn_dist_layer_sum_init(&s, MPI_COMM_WORLD);
    for (int idle = -1; idle < size; idle++) { /* -1: every rank has images */
        const int mine = rank != idle;
        assert_int_equal(cnn_dist_layer_sum_begin(&s, mine), CNN_OK);
        assert_int_equal(s.ranks, idle < 0 ? size : size - 1);
        double ranks = 0.0, want = 0.0;
        for (int r = 0; r < size; r++)
            if (r != idle) ranks += 1.0, want += r;
        for (int call = 0; call < 2 && mine; call++) {
            double buf[3] = {1.0, rank, 0.5 * call};
            assert_int_equal(cnn_dist_layer_sum(&s, buf, 3), CNN_OK);
            assert_true(buf[0] == ranks && buf[1] == want && buf[2] == 0.5 * call * ranks);
        }
        if (!mine) {
            double buf[1] = {1.0};
            assert_true(s.step == MPI_COMM_NULL);
            assert_int_equal(cnn_dist_layer_sum(&s, buf, 1), CNN_ECOMM);
            assert_int_equal(cnn_dist_layer_sum(&s, buf, 1), CNN_ECOMM);
            assert_int_equal(cnn_dist_layer_sum_end(&s), CNN_ECOMM);
        } else {
            assert_int_equal(cnn_dist_layer_sum_end(&s), CNN_OK);
        }
        assert_true(s.step == MPI_COMM_NULL && s.status == CNN_OK);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    unsetenv("MPICNN_GRAD_SUM");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_node),  cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_mpi_only),  cmocka_unit_test(test_bad_env),
        cmocka_unit_test(test_nothing_left), cmocka_unit_test(test_no_room),
        cmocka_unit_test(test_layer_sum),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
