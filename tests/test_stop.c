/* test_stop.c - a stop requested before the first step, on the last rank
 * only (1 rank here, 2 through test_stop_np2.sh): cnn_train() ends with
 * CNN_ESTOPPED before a step, writes DIR/checkpoint.none and no
 * checkpoint; --resume of that directory starts from the beginning and
 * gives the weights of an uninterrupted run; --resume of a directory with
 * neither file is still a usage error. The signal itself, in a real
 * process, is tests/test_fault_inputs.sh's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <mpi.h>

#include "mpicnn.h"
#include "mpicnn/config.h"
#include "mpicnn/train.h"
#include "synth.h"

static char dir[64];
static int rank, size;

static int setup(void **state)
{
    (void)state;
    if (rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/mpicnn-stop-XXXXXX");
        if (!mkdtemp(dir)) return -1;
        if (synth_write(dir, "train", 200, 8, 4, 1) || synth_write(dir, "test", 40, 8, 4, 2))
            return -1;
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

/* Trains (or resumes) 1 epoch into dir/name. */
static cnn_status_t train(const char *name, int resume, cnn_train_result_t *res)
{
    char text[4096], out[256];
    synth_config(text, sizeof text, dir, 1, NULL, NULL);
    cnn_config_t *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    if (cnn_config_parse_string(text, "stop", NULL, 0, cfg) != CNN_OK)
        fail_msg("config: %s", cnn_error_message());
    snprintf(out, sizeof out, "%s/%s", dir, name);
    cnn_train_opts_t opts = {.comm = MPI_COMM_WORLD, .out_dir = out, .resume = resume,
                             .quiet = 1};
    cnn_status_t st = cnn_train(cfg, &opts, res);
    free(cfg);
    return st;
}

static int exists(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void test_stop_before_first_step(void **state)
{
    (void)state;
    cnn_train_result_t plain, res;
    if (train("plain", 0, &plain) != CNN_OK) fail_msg("plain: %s", cnn_error_message());

    if (rank == size - 1) cnn_train_request_stop(); /* the ranks agree on it */
    assert_int_equal(train("early", 0, &res), CNN_ESTOPPED);
    cnn_train_clear_stop();
    assert_non_null(strstr(cnn_error_message(), "nothing to resume"));
    MPI_Barrier(MPI_COMM_WORLD);
    assert_true(exists("early/checkpoint.none"));
    assert_false(exists("early/checkpoint.h5"));

    /* --resume starts from the beginning: the uninterrupted run's weights */
    if (train("early", 1, &res) != CNN_OK) fail_msg("resume: %s", cnn_error_message());
    assert_true(res.params_hash == plain.params_hash);
    MPI_Barrier(MPI_COMM_WORLD);
    assert_true(exists("early/checkpoint.h5"));
    assert_false(exists("early/checkpoint.none"));
}

static void test_resume_without_anything(void **state)
{
    (void)state;
    cnn_train_result_t res;
    assert_int_equal(train("nothing", 1, &res), CNN_EUSAGE);
    assert_non_null(strstr(cnn_error_message(), "does not exist"));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    cnn_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_before_first_step),
        cmocka_unit_test(test_resume_without_anything),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    int any = 0; /* one rank's failure fails the run */
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}
