/* watchdog.c - the training watchdog (see watchdog.h).
 *
 * The main thread publishes its position and phase through a sequence
 * lock of atomics: the monitor thread reads a consistent snapshot without
 * ever blocking the main thread. The monitor thread makes no MPI call and
 * takes no lock the main thread holds while computing, so it keeps
 * running whatever the main thread is stuck in. */
#include "mpicnn/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpicnn/dist.h"

/* Tag of the arrival messages (on the private communicator). */
#define ARRIVE_TAG 0x4d57
/* Most ranks a report names one by one. */
#define NAME_MAX_RANKS 8

struct cnn_watchdog {
    double seconds;       /* train.watchdog_seconds */
    MPI_Comm comm;        /* private duplicate: only arrival messages */
    int rank, size;       /* in comm */
    int *world;           /* (size) rank in MPI_COMM_WORLD of each rank of comm */
    int64_t *in;          /* (size) arrival receive buffers */
    int64_t *last;        /* (size) last global step each rank arrived at (-1: none) */
    int64_t out;          /* arrival send buffer */
    MPI_Request *req;     /* (2 * size) */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;             /* under mu */

    /* published by the main thread; seq is odd while it writes */
    atomic_uint seq;
    atomic_int phase;
    atomic_llong epoch, step, global;
    atomic_llong since_ns; /* CLOCK_MONOTONIC when the phase began */
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The deadline of the arrival check: a little longer than the others',
 * so that a rank stuck in its own computation, whose monitor thread is
 * alive, names itself and its phase before its peers name it. */
static double arrive_limit(const cnn_watchdog_t *wd)
{
    double grace = wd->seconds / 4;
    return wd->seconds + (grace > 2.0 ? 2.0 : grace);
}

/* The monitor's limit for a phase. The arrival check has its own deadline
 * in the main thread; the monitor only backs it up. */
static double phase_limit(const cnn_watchdog_t *wd, int phase)
{
    return phase == CNN_WD_ARRIVE ? 2 * arrive_limit(wd) + 1.0 : wd->seconds;
}

typedef struct {
    int phase;
    long long epoch, step, global, since;
} snapshot_t;

static void snapshot(cnn_watchdog_t *wd, snapshot_t *s)
{
    for (;;) {
        unsigned a = atomic_load(&wd->seq);
        if (a & 1u) {
            sched_yield();
            continue;
        }
        s->phase = atomic_load(&wd->phase);
        s->epoch = atomic_load(&wd->epoch);
        s->step = atomic_load(&wd->step);
        s->global = atomic_load(&wd->global);
        s->since = atomic_load(&wd->since_ns);
        if (atomic_load(&wd->seq) == a) return;
    }
}

/* What a rank stuck in `phase` is doing, for the report. */
static const char *phase_text(int phase, int rank0)
{
    switch (phase) {
    case CNN_WD_OUTPUTS:
        return rank0 ? "this rank (rank 0) is stuck preparing the output directory or reading "
                       "the checkpoint for --resume: a slow or hung file system, or a damaged "
                       "checkpoint"
                     : "this rank is waiting for rank 0 to prepare the output directory or read "
                       "the checkpoint for --resume: rank 0 is stuck or dead";
    case CNN_WD_COMPUTE:
        return "this rank is stuck computing the step (loading its batch, forward, backward)";
    case CNN_WD_ARRIVE:
        return "this rank is stuck in the arrival check before the gradient all-reduce";
    case CNN_WD_ALLREDUCE:
        return "this rank is waiting in the gradient all-reduce (the shared-memory barriers or "
               "MPI_Allreduce); every rank had reached it, so another rank stalled or died "
               "inside it";
    case CNN_WD_ALLREDUCE_AUX:
        return "this rank is waiting in the all-reduce of the step's loss and flags "
               "(MPI_Allreduce): another rank stalled or died after the gradient all-reduce";
    case CNN_WD_UPDATE:
        return "this rank is stuck in the optimizer step";
    case CNN_WD_VALIDATE:
        return "validation is stuck (scoring this rank's share of the validation set or "
               "waiting for the other ranks' counts)";
    case CNN_WD_SAVE:
        return rank0 ? "this rank (the writer) is stuck writing metrics, model or checkpoint: "
                       "the file system is slow or hung"
                     : "this rank is waiting for rank 0 to write the model or checkpoint: rank "
                       "0 is stuck (slow or hung file system?) or dead";
    case CNN_WD_EVALUATE:
        return "the final evaluation is stuck (scoring this rank's share or waiting for the "
               "other ranks' counts)";
    default: return "this rank is stuck";
    }
}

static void *monitor(void *arg)
{
    cnn_watchdog_t *wd = arg;
    double tick = wd->seconds / 10;
    if (tick > 0.1) tick = 0.1;
    if (tick < 0.005) tick = 0.005;
    pthread_mutex_lock(&wd->mu);
    while (!wd->quit) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        long long ns = until.tv_nsec + (long long)(tick * 1e9);
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        int rc = pthread_cond_timedwait(&wd->cv, &wd->mu, &until);
        if (wd->quit) break;
        if (rc != 0 && rc != ETIMEDOUT) continue;
        snapshot_t s;
        snapshot(wd, &s);
        if (s.phase == CNN_WD_IDLE) continue;
        const double waited = (double)(now_ns() - s.since) * 1e-9;
        if (waited <= phase_limit(wd, s.phase)) continue;
        /* One write, then out: no MPI from this thread (FUNNELED), no
         * exit handlers (they would wait for the stuck main thread). */
        char msg[1024], where[96];
        if (s.global > 0)
            snprintf(where, sizeof where, "at epoch %lld step %lld (global step %lld)", s.epoch,
                     s.step, s.global);
        else
            snprintf(where, sizeof where, "before the first step");
        int n = snprintf(msg, sizeof msg,
                         "mpicnn: rank %d: communication failure: watchdog: no progress for "
                         "%.1f s (train.watchdog_seconds = %g) %s: %s; ending the job (exit code "
                         "%d)\n", wd->world[wd->rank], waited, wd->seconds, where,
                         phase_text(s.phase, wd->rank == 0), CNN_EXIT_COMM);
        if (n > (int)sizeof msg - 1) n = (int)sizeof msg - 1;
        ssize_t wr = write(STDERR_FILENO, msg, (size_t)n);
        (void)wr;
        _exit(CNN_EXIT_COMM);
    }
    pthread_mutex_unlock(&wd->mu);
    return NULL;
}

cnn_status_t cnn_watchdog_start(MPI_Comm comm, double seconds, cnn_watchdog_t **out)
{
    cnn_status_t st = CNN_OK;
    cnn_watchdog_t *wd = NULL;
    MPI_Group g = MPI_GROUP_NULL, gw = MPI_GROUP_NULL;
    int *ranks = NULL;
    *out = NULL;
    if (!(seconds > 0)) return CNN_OK;
    wd = calloc(1, sizeof *wd);
    if (!wd) return cnn_error_set(CNN_ENOMEM, "watchdog: out of memory");
    wd->seconds = seconds;
    wd->comm = MPI_COMM_NULL;
    CNN_MPI_CHECK(st, MPI_Comm_dup(comm, &wd->comm), fail);
    CNN_MPI_CHECK(st, MPI_Comm_set_errhandler(wd->comm, MPI_ERRORS_RETURN), fail);
    CNN_MPI_CHECK(st, MPI_Comm_rank(wd->comm, &wd->rank), fail);
    CNN_MPI_CHECK(st, MPI_Comm_size(wd->comm, &wd->size), fail);
    const size_t n = (size_t)wd->size;
    wd->world = malloc(n * sizeof *wd->world);
    wd->in = malloc(n * sizeof *wd->in);
    wd->last = malloc(n * sizeof *wd->last);
    wd->req = malloc(2 * n * sizeof *wd->req);
    ranks = malloc(n * sizeof *ranks);
    if (!wd->world || !wd->in || !wd->last || !wd->req || !ranks) {
        st = cnn_error_set(CNN_ENOMEM, "watchdog: out of memory");
        goto fail;
    }
    /* reports name ranks as mpirun and the error messages do */
    for (int i = 0; i < wd->size; i++) {
        ranks[i] = i;
        wd->last[i] = -1;
    }
    CNN_MPI_CHECK(st, MPI_Comm_group(wd->comm, &g), fail);
    CNN_MPI_CHECK(st, MPI_Comm_group(MPI_COMM_WORLD, &gw), fail);
    CNN_MPI_CHECK(st, MPI_Group_translate_ranks(g, wd->size, ranks, gw, wd->world), fail);
    for (int i = 0; i < wd->size; i++)
        if (wd->world[i] == MPI_UNDEFINED) wd->world[i] = i;

    atomic_init(&wd->seq, 0u);
    atomic_init(&wd->phase, CNN_WD_IDLE);
    atomic_init(&wd->epoch, 0);
    atomic_init(&wd->step, 0);
    atomic_init(&wd->global, 0);
    atomic_init(&wd->since_ns, now_ns());

    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0) rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(&wd->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        st = cnn_error_set(CNN_EINTERNAL, "watchdog: pthread_cond_init: %s", strerror(rc));
        goto fail;
    }
    pthread_mutex_init(&wd->mu, NULL);
    /* The thread takes no signals: SIGUSR1/SIGTERM/SIGINT stay with the
     * main thread, whose handler asks for a checkpoint. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&wd->thread, NULL, monitor, wd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&wd->cv);
        pthread_mutex_destroy(&wd->mu);
        st = cnn_error_set(rc == EAGAIN ? CNN_ENOMEM : CNN_EINTERNAL,
                           "watchdog: cannot start its thread: %s", strerror(rc));
        goto fail;
    }
    MPI_Group_free(&g);
    MPI_Group_free(&gw);
    free(ranks);
    *out = wd;
    return CNN_OK;
fail:
    if (g != MPI_GROUP_NULL) MPI_Group_free(&g);
    if (gw != MPI_GROUP_NULL) MPI_Group_free(&gw);
    if (wd->comm != MPI_COMM_NULL) MPI_Comm_free(&wd->comm);
    free(ranks);
    free(wd->world);
    free(wd->in);
    free(wd->last);
    free(wd->req);
    free(wd);
    return st;
}

void cnn_watchdog_stop(cnn_watchdog_t *wd)
{
    if (!wd) return;
    pthread_mutex_lock(&wd->mu);
    wd->quit = 1;
    pthread_cond_signal(&wd->cv);
    pthread_mutex_unlock(&wd->mu);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cv);
    pthread_mutex_destroy(&wd->mu);
    if (wd->comm != MPI_COMM_NULL) MPI_Comm_free(&wd->comm);
    free(wd->world);
    free(wd->in);
    free(wd->last);
    free(wd->req);
    free(wd);
}

void cnn_watchdog_position(cnn_watchdog_t *wd, int64_t epoch, int64_t step, int64_t global_step)
{
    if (!wd) return;
    atomic_fetch_add(&wd->seq, 1u);
    atomic_store(&wd->epoch, (long long)epoch);
    atomic_store(&wd->step, (long long)step);
    atomic_store(&wd->global, (long long)global_step);
    atomic_fetch_add(&wd->seq, 1u);
}

void cnn_watchdog_phase(cnn_watchdog_t *wd, cnn_wd_phase_t phase)
{
    if (!wd) return;
    atomic_fetch_add(&wd->seq, 1u);
    atomic_store(&wd->phase, (int)phase);
    atomic_store(&wd->since_ns, now_ns());
    atomic_fetch_add(&wd->seq, 1u);
}

/* Names the ranks whose arrival did not come (their receive is still
 * pending) and aborts the job. Main thread only. */
static _Noreturn void arrive_abort(cnn_watchdog_t *wd, int64_t global, double waited)
{
    char who[256] = "", last[256] = "";
    size_t w = 0, l = 0;
    int missing = 0, k = 0;
    for (int p = 0; p < wd->size; p++) {
        if (p == wd->rank) continue;
        if (wd->req[k++] == MPI_REQUEST_NULL) continue;
        missing++;
        if (missing > NAME_MAX_RANKS) continue;
        w += (size_t)snprintf(who + w, w < sizeof who ? sizeof who - w : 0, "%s%d",
                              missing > 1 ? ", " : "", wd->world[p]);
        if (w >= sizeof who) w = sizeof who - 1;
        if (wd->last[p] >= 0)
            l += (size_t)snprintf(last + l, l < sizeof last ? sizeof last - l : 0,
                                  "%srank %d reached global step %lld", l ? ", " : "",
                                  wd->world[p], (long long)wd->last[p]);
        else
            l += (size_t)snprintf(last + l, l < sizeof last ? sizeof last - l : 0,
                                  "%srank %d never arrived", l ? ", " : "", wd->world[p]);
        if (l >= sizeof last) l = sizeof last - 1;
    }
    snapshot_t s;
    snapshot(wd, &s);
    fprintf(stderr,
            "mpicnn: rank %d: communication failure: watchdog: rank%s %s%s did not reach the "
            "gradient all-reduce of epoch %lld step %lld (global step %lld) within %.1f s "
            "(train.watchdog_seconds = %g): stalled (stopped, hung) or dead; the last arrival "
            "check: %s; ending the job (exit code %d)\n",
            wd->world[wd->rank], missing > 1 ? "s" : "", who,
            missing > NAME_MAX_RANKS ? ", ..." : "", s.epoch, s.step, (long long)global, waited,
            wd->seconds, last[0] ? last : "none", CNN_EXIT_COMM);
    fflush(stderr);
    MPI_Abort(wd->comm, CNN_EXIT_COMM);
    _exit(CNN_EXIT_COMM); /* not reached: MPI_Abort does not return */
}

cnn_status_t cnn_watchdog_arrive(cnn_watchdog_t *wd)
{
    cnn_status_t st = CNN_OK;
    if (!wd) return CNN_OK;
    cnn_watchdog_phase(wd, CNN_WD_ARRIVE);
    if (wd->size > 1) {
        const long long t0 = atomic_load(&wd->since_ns);
        const long long limit = (long long)(arrive_limit(wd) * 1e9);
        const int64_t global = (int64_t)atomic_load(&wd->global);
        int n = 0;
        wd->out = global;
        for (int p = 0; p < wd->size; p++)
            if (p != wd->rank)
                CNN_MPI_CHECK(st, MPI_Irecv(&wd->in[p], 1, MPI_INT64_T, p, ARRIVE_TAG, wd->comm,
                                            &wd->req[n++]), error);
        for (int p = 0; p < wd->size; p++)
            if (p != wd->rank)
                CNN_MPI_CHECK(st, MPI_Isend(&wd->out, 1, MPI_INT64_T, p, ARRIVE_TAG, wd->comm,
                                            &wd->req[n++]), error);
        for (long spins = 0;; spins++) {
            int done = 0;
            CNN_MPI_CHECK(st, MPI_Testall(n, wd->req, &done, MPI_STATUSES_IGNORE), error);
            if (done) break;
            const long long waited = now_ns() - t0;
            if (waited > limit) {
                /* Which did not come? A completed request becomes
                 * MPI_REQUEST_NULL; the receives are the first n/2. */
                int pending = 0;
                for (int i = 0; i < n; i++) {
                    int f = 0;
                    if (wd->req[i] != MPI_REQUEST_NULL)
                        CNN_MPI_CHECK(st, MPI_Test(&wd->req[i], &f, MPI_STATUS_IGNORE), error);
                    if (i < n / 2 && wd->req[i] != MPI_REQUEST_NULL) pending++;
                }
                if (pending) arrive_abort(wd, global, (double)waited * 1e-9);
            }
            if (spins > 1000) sched_yield(); /* a long wait: leave the core to others */
        }
        for (int p = 0; p < wd->size; p++) {
            if (p == wd->rank) continue;
            if (wd->in[p] != global) {
                fprintf(stderr,
                        "mpicnn: rank %d: communication failure: watchdog: rank %d arrived at "
                        "the gradient all-reduce of global step %lld, this rank at global step "
                        "%lld: the ranks are out of step (a bug); ending the job (exit code "
                        "%d)\n",
                        wd->world[wd->rank], wd->world[p], (long long)wd->in[p],
                        (long long)global, CNN_EXIT_COMM);
                fflush(stderr);
                MPI_Abort(wd->comm, CNN_EXIT_COMM);
                _exit(CNN_EXIT_COMM);
            }
            wd->last[p] = wd->in[p];
        }
    }
    cnn_watchdog_phase(wd, CNN_WD_ALLREDUCE);
error:
    return st;
}
