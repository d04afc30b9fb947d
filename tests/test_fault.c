/* test_fault.c - MPICNN_FAULT parsing and triggering, the watchdog's life
 * cycle and arrival check, and the message of an agreed failure. Runs on
 * one rank (make check) and on two (tests/test_fault_np2.sh), where the
 * arrival check and the agreement really exchange messages. The
 * watchdog firing is shown through the program (tests/test_fault.sh):
 * it ends the process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mpi.h>

#include "mpicnn/config.h"
#include "mpicnn/dist.h"
#include "mpicnn/fault.h"
#include "mpicnn/watchdog.h"

static int rank, size;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void expect_fault(const char *spec, cnn_fault_kind_t kind, int64_t step, int r, int ms)
{
    cnn_fault_t f;
    cnn_status_t st = cnn_fault_parse(spec, &f);
    if (st != CNN_OK) fail_msg("'%s': %s", spec, cnn_error_message());
    assert_int_equal(f.kind, kind);
    assert_int_equal(f.step, step);
    assert_int_equal(f.rank, r);
    assert_int_equal(f.ms, ms);
}

static void test_parse_ok(void **state)
{
    (void)state;
    expect_fault(NULL, CNN_FAULT_NONE, 0, -1, 0);
    expect_fault("", CNN_FAULT_NONE, 0, -1, 0);
    expect_fault("kill@5,1", CNN_FAULT_KILL, 5, 1, 0);
    expect_fault("stop", CNN_FAULT_STOP, 1, -1, 0);
    expect_fault("hang,3", CNN_FAULT_HANG, 1, 3, 0);
    expect_fault("nan@12", CNN_FAULT_NAN, 12, -1, 0);
    expect_fault("nan_weights@7,0", CNN_FAULT_NAN_WEIGHTS, 7, 0, 0);
    expect_fault("slow", CNN_FAULT_SLOW, 1, -1, 10);
    expect_fault("slow:25@3,0", CNN_FAULT_SLOW, 3, 0, 25);
    /* the writing kinds default to any step: the form test_resume.sh uses */
    expect_fault("ckpt_kill", CNN_FAULT_CKPT_KILL, 0, -1, 0);
    expect_fault("ckpt_kill@30", CNN_FAULT_CKPT_KILL, 30, -1, 0);
    expect_fault("write_fail@0,0", CNN_FAULT_WRITE_FAIL, 0, 0, 0);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "bogus", "kil", "kill_", "KILL", "kill@", "kill@x", "kill@5,", "kill@5,a", "kill@-1",
        "kill@5,1,2", "kill@5@6", "kill:5", "slow:0", "slow:", "slow:x@1",
        "kill@99999999999999999999", "nan@1,99999999999", " kill", "kill@0", "nan@0,1",
        "slow:5@0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cnn_fault_t f;
        cnn_error_clear();
        if (cnn_fault_parse(bad[i], &f) != CNN_EUSAGE) fail_msg("'%s' was accepted", bad[i]);
        /* the message names the variable and its value */
        char want[96];
        snprintf(want, sizeof want, "MPICNN_FAULT=%s", bad[i]);
        if (!strstr(cnn_error_message(), want))
            fail_msg("'%s': message '%s'", bad[i], cnn_error_message());
    }
}

static void test_triggers(void **state)
{
    (void)state;
    setenv("MPICNN_FAULT", "write_fail@3", 1);
    assert_int_equal(cnn_fault_init(0, 2), CNN_OK);
    cnn_fault_set_step(2);
    assert_false(cnn_fault_write_due(CNN_FAULT_WRITE_FAIL, -1));
    assert_false(cnn_fault_write_due(CNN_FAULT_CKPT_KILL, 5));
    cnn_fault_set_step(3);
    assert_true(cnn_fault_write_due(CNN_FAULT_WRITE_FAIL, -1));
    /* once per run */
    assert_false(cnn_fault_write_due(CNN_FAULT_WRITE_FAIL, -1));
    /* only the writer (rank 0) */
    assert_int_equal(cnn_fault_init(1, 2), CNN_OK);
    assert_false(cnn_fault_write_due(CNN_FAULT_WRITE_FAIL, 10));

    setenv("MPICNN_FAULT", "nan@4,1", 1);
    assert_int_equal(cnn_fault_init(1, 2), CNN_OK);
    assert_true(cnn_fault_step_due(CNN_FAULT_NAN, 4));
    assert_false(cnn_fault_step_due(CNN_FAULT_NAN, 5));
    assert_false(cnn_fault_step_due(CNN_FAULT_KILL, 4));
    assert_int_equal(cnn_fault_init(0, 2), CNN_OK);
    assert_false(cnn_fault_step_due(CNN_FAULT_NAN, 4));

    /* a step fault that is not due does nothing */
    setenv("MPICNN_FAULT", "kill@4", 1);
    assert_int_equal(cnn_fault_init(0, 2), CNN_OK);
    cnn_fault_step_hook(3);
    cnn_fault_step_hook(5);

    setenv("MPICNN_FAULT", "kill@", 1);
    assert_int_equal(cnn_fault_init(0, 2), CNN_EUSAGE);
    assert_int_equal(cnn_fault_get()->kind, CNN_FAULT_NONE);
    /* a rank the run does not have would never fire */
    setenv("MPICNN_FAULT", "kill@5,7", 1);
    assert_int_equal(cnn_fault_init(0, 2), CNN_EUSAGE);
    assert_non_null(strstr(cnn_error_message(), "no rank 7"));
    assert_int_equal(cnn_fault_get()->kind, CNN_FAULT_NONE);
    setenv("MPICNN_FAULT", "write_fail@0", 1);
    assert_int_equal(cnn_fault_init(0, 1), CNN_OK);
    setenv("MPICNN_FAULT", "kill@5,1", 1);
    assert_int_equal(cnn_fault_init(0, 2), CNN_OK);
    setenv("MPICNN_FAULT", "kill@5,1", 1);
    assert_int_equal(cnn_fault_init(0, 1), CNN_EUSAGE);
    assert_int_equal(cnn_fault_get()->kind, CNN_FAULT_NONE);

    unsetenv("MPICNN_FAULT");
    assert_int_equal(cnn_fault_init(0, 2), CNN_OK);
    assert_int_equal(cnn_fault_get()->kind, CNN_FAULT_NONE);
}

static void test_watchdog_off(void **state)
{
    (void)state;
    cnn_watchdog_t *wd = (cnn_watchdog_t *)1;
    assert_int_equal(cnn_watchdog_start(MPI_COMM_WORLD, 0, &wd), CNN_OK);
    assert_null(wd);
    cnn_watchdog_position(NULL, 1, 1, 1);
    cnn_watchdog_phase(NULL, CNN_WD_COMPUTE);
    assert_int_equal(cnn_watchdog_arrive(NULL), CNN_OK);
    cnn_watchdog_stop(NULL);
}

/* Many arrival checks in a row, with the ranks arriving at different
 * times (well within the deadline): every one must pass. */
static void test_watchdog_arrive(void **state)
{
    (void)state;
    cnn_watchdog_t *wd = NULL;
    assert_int_equal(cnn_watchdog_start(MPI_COMM_WORLD, 5.0, &wd), CNN_OK);
    assert_non_null(wd);
    for (int g = 1; g <= 200; g++) {
        cnn_watchdog_position(wd, 1, g, g);
        cnn_watchdog_phase(wd, CNN_WD_COMPUTE);
        if (g % 50 == 0 && rank == g / 50 % size) sleep_ms(20);
        assert_int_equal(cnn_watchdog_arrive(wd), CNN_OK);
        double x = 1.0;
        assert_int_equal(cnn_dist_sum_doubles(MPI_COMM_WORLD, &x, 1), CNN_OK);
        assert_true(x == size);
    }
    cnn_watchdog_stop(wd);
}

/* Phases that each stay under the deadline never fire it, however long
 * the whole run is. */
static void test_watchdog_no_false_alarm(void **state)
{
    (void)state;
    cnn_watchdog_t *wd = NULL;
    assert_int_equal(cnn_watchdog_start(MPI_COMM_WORLD, 0.4, &wd), CNN_OK);
    for (int i = 0; i < 6; i++) {
        cnn_watchdog_position(wd, 1, i + 1, i + 1);
        cnn_watchdog_phase(wd, i % 2 ? CNN_WD_COMPUTE : CNN_WD_SAVE);
        sleep_ms(200);
    }
    /* stopped in the middle of a phase: the thread is gone, nothing fires */
    cnn_watchdog_phase(wd, CNN_WD_COMPUTE);
    cnn_watchdog_stop(wd);
    sleep_ms(500);
    /* started and stopped again at once, as a sweep does per trial */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(cnn_watchdog_start(MPI_COMM_WORLD, 1.0, &wd), CNN_OK);
        cnn_watchdog_stop(wd);
    }
}

/* train.watchdog_seconds = auto: no deadline before 10 steps are
 * measured (a long first step is no alarm), then steps well within 20
 * medians pass; a malformed MPICNN_WATCHDOG_FLOOR is a usage error. */
static void test_watchdog_auto(void **state)
{
    (void)state;
    cnn_watchdog_t *wd = NULL;
    setenv("MPICNN_WATCHDOG_FLOOR", "0.3", 1);
    assert_int_equal(cnn_watchdog_start(MPI_COMM_WORLD, CNN_WATCHDOG_AUTO, &wd), CNN_OK);
    assert_non_null(wd);
    const cnn_wd_sizes_t z = {.load_bytes = 1e6, .save_bytes = 1e6, .val_batches = 2,
                              .eval_batches = 4};
    cnn_watchdog_sizes(wd, &z);
    cnn_watchdog_phase(wd, CNN_WD_LOAD);
    sleep_ms(100);
    for (int g = 1; g <= 40; g++) {
        cnn_watchdog_position(wd, 1, g, g);
        cnn_watchdog_phase(wd, CNN_WD_COMPUTE);
        /* before 10 steps: unwatched, however long; after: within the floor */
        sleep_ms(g == 3 ? 600 : g % 7 == 0 ? 100 : 5);
        assert_int_equal(cnn_watchdog_arrive(wd), CNN_OK);
        cnn_watchdog_phase(wd, CNN_WD_UPDATE);
    }
    cnn_watchdog_phase(wd, CNN_WD_SAVE);
    sleep_ms(100);
    cnn_watchdog_stop(wd);
    setenv("MPICNN_WATCHDOG_FLOOR", "soon", 1);
    assert_int_equal(cnn_watchdog_start(MPI_COMM_WORLD, CNN_WATCHDOG_AUTO, &wd), CNN_EUSAGE);
    assert_null(wd);
    assert_non_null(strstr(cnn_error_message(), "MPICNN_WATCHDOG_FLOOR='soon'"));
    unsetenv("MPICNN_WATCHDOG_FLOOR");
}

/* A process that is stopped (SIGSTOP) for longer than T and continued is
 * not stuck: the time it was stopped does not count, its watchdog stays
 * quiet (on a firing, the process would end with exit code 7). A child
 * process stops and continues this one. */
static void test_watchdog_stopped_not_stuck(void **state)
{
    (void)state;
    cnn_watchdog_t *wd = NULL;
    assert_int_equal(cnn_watchdog_start(MPI_COMM_WORLD, 1.0, &wd), CNN_OK);
    cnn_watchdog_position(wd, 1, 1, 1);
    cnn_watchdog_phase(wd, CNN_WD_COMPUTE);
    const pid_t self = getpid();
    const pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct timespec a = {0, 100000000L}, b = {2, 500000000L};
        nanosleep(&a, NULL);
        kill(self, SIGSTOP);
        nanosleep(&b, NULL);
        kill(self, SIGCONT);
        _exit(0);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
    }
    sleep_ms(500); /* running again, within T of the phase's running time */
    cnn_watchdog_phase(wd, CNN_WD_UPDATE);
    cnn_watchdog_stop(wd);
}

/* The last rank fails; every other rank's message carries its message. */
static void test_agree_message(void **state)
{
    (void)state;
    cnn_status_t local = CNN_OK;
    if (rank == size - 1)
        local = cnn_error_set(CNN_EDATA, "data/x.idx: wrong magic 0x00000803, expected 0x00000801");
    cnn_status_t st = cnn_dist_agree(MPI_COMM_WORLD, local);
    assert_int_equal(st, CNN_EDATA);
    if (rank == size - 1) {
        assert_string_equal(cnn_error_message(),
                            "data/x.idx: wrong magic 0x00000803, expected 0x00000801");
    } else {
        char want[256];
        snprintf(want, sizeof want,
                 "another rank failed (bad input): rank %d: data/x.idx: wrong magic "
                 "0x00000803, expected 0x00000801", size - 1);
        assert_string_equal(cnn_error_message(), want);
    }
    assert_int_equal(cnn_dist_agree(MPI_COMM_WORLD, CNN_OK), CNN_OK);
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_triggers),
        cmocka_unit_test(test_watchdog_off),
        cmocka_unit_test(test_watchdog_arrive),
        cmocka_unit_test(test_watchdog_no_false_alarm),
        cmocka_unit_test(test_watchdog_auto),
        cmocka_unit_test(test_watchdog_stopped_not_stuck),
        cmocka_unit_test(test_agree_message),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
