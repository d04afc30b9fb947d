/* watchdog.c - the training watchdog (see watchdog.h).
 *
 * The main thread publishes its position and phase through a sequence
 * lock of atomics: the monitor thread reads a consistent snapshot without
 * ever blocking the main thread. The monitor thread makes no MPI call and
 * takes no lock the main thread holds while computing, so it keeps
 * running whatever the main thread is stuck in. */
#include "mpicnn/watchdog.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpicnn/config.h"
#include "mpicnn/dist.h"

/* Tag of the arrival messages (on the private communicator). */
#define ARRIVE_TAG 0x4d57
/* Most ranks a report names one by one. */
#define NAME_MAX_RANKS 8
/* auto: steps measured before the step phases are watched, the multiple
 * of the median step a phase may take, the floor of every limit, and the
 * window of recent steps the median is taken over. */
#define AUTO_STEPS 10
#define AUTO_FACTOR 20.0
#define AUTO_FLOOR 300.0
#define AUTO_WINDOW 31
/* The rate, in bytes per second, a read or write of the data set, a model
 * or a checkpoint is assumed to reach at worst: a hung file system, not a
 * slow one, is what the limits it gives catch. */
#define IO_RATE (1024.0 * 1024.0)
/* A clock jump this long between two wake-ups of a thread that asked to
 * wake sooner means the process was stopped (SIGSTOP, a suspended job, a
 * frozen node) or not scheduled: that time is not counted as no progress. */
#define STOP_GAP_NS 1000000000LL

struct cnn_watchdog {
    double seconds;       /* train.watchdog_seconds (> 0), or CNN_WATCHDOG_AUTO */
    double floor;         /* auto: the smallest limit (AUTO_FLOOR, MPICNN_WATCHDOG_FLOOR) */
    MPI_Comm comm;        /* private duplicate: only arrival messages */
    int rank, size;       /* in comm */
    int *world;           /* (size) rank in MPI_COMM_WORLD of each rank of comm */
    int64_t *in;          /* (size) arrival receive buffers */
    int64_t *last;        /* (size) last global step each rank arrived at (-1: none) */
    int64_t out;          /* arrival send buffer */
    MPI_Request *req;     /* (2 * size) */

    /* main thread only: the step times and the sizes behind the limits */
    cnn_wd_sizes_t sizes;
    double step_times[AUTO_WINDOW]; /* seconds, a ring */
    long nsteps;                    /* steps measured */
    long long step_start;           /* CLOCK_MONOTONIC ns when the step began */
    double median;                  /* of step_times; 0 until AUTO_STEPS */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;             /* under mu */
    double tick;          /* seconds between the monitor's checks */

    /* published by the main thread; seq is odd while it writes */
    atomic_uint seq;
    atomic_int phase;
    atomic_llong epoch, step, global;
    atomic_llong since_ns; /* CLOCK_MONOTONIC when the phase began */
    atomic_llong limit_ns[CNN_WD_NPHASES]; /* 0: the phase is not watched */
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double max2(double a, double b) { return a > b ? a : b; }

/* The limit of the step phases, in seconds: T, or auto's once measured
 * (0 before). */
static double step_limit(const cnn_watchdog_t *wd)
{
    if (wd->seconds > 0) return wd->seconds;
    return wd->median > 0 ? max2(wd->floor, AUTO_FACTOR * wd->median) : 0.0;
}

/* The deadline of the arrival check: a little longer than the others',
 * so that a rank stuck in its own computation, whose monitor thread is
 * alive, names itself and its phase before its peers name it. 0: none. */
static double arrive_limit(const cnn_watchdog_t *wd)
{
    const double t = step_limit(wd);
    const double grace = t / 4;
    return t > 0 ? t + (grace > 2.0 ? 2.0 : grace) : 0.0;
}

/* The limit of a phase whose work is `bytes` of file, or `batches` of
 * evaluation: T (a loading, which T did not bound before, at least its
 * size at IO_RATE), or auto's floor and size. */
static double sized_limit(const cnn_watchdog_t *wd, int phase, double bytes, double batches)
{
    if (wd->seconds > 0)
        return phase == CNN_WD_LOAD ? max2(wd->seconds, bytes / IO_RATE) : wd->seconds;
    if (batches > 0)
        return wd->median > 0 ? max2(wd->floor, AUTO_FACTOR * wd->median * batches) : 0.0;
    return max2(wd->floor, bytes / IO_RATE);
}

/* The monitor's limit of every phase, from the setting, the sizes and the
 * steps measured. The arrival check has its own deadline in the main
 * thread; the monitor only backs it up. */
static void publish_limits(cnn_watchdog_t *wd)
{
    const cnn_wd_sizes_t *z = &wd->sizes;
    double lim[CNN_WD_NPHASES] = {0};
    const double t = step_limit(wd), a = arrive_limit(wd);
    lim[CNN_WD_LOAD] = sized_limit(wd, CNN_WD_LOAD, z->load_bytes, 0);
    lim[CNN_WD_OUTPUTS] = sized_limit(wd, CNN_WD_OUTPUTS, z->save_bytes, 0);
    lim[CNN_WD_COMPUTE] = lim[CNN_WD_ALLREDUCE] = lim[CNN_WD_ALLREDUCE_AUX] = t;
    lim[CNN_WD_UPDATE] = t;
    lim[CNN_WD_ARRIVE] = a > 0 ? 2 * a + 1.0 : 0.0;
    lim[CNN_WD_VALIDATE] = sized_limit(wd, CNN_WD_VALIDATE, 0, max2(z->val_batches, 1));
    lim[CNN_WD_SAVE] = sized_limit(wd, CNN_WD_SAVE, z->save_bytes, 0);
    lim[CNN_WD_EVALUATE] = sized_limit(wd, CNN_WD_EVALUATE, 0, max2(z->eval_batches, 1));
    for (int p = 0; p < CNN_WD_NPHASES; p++)
        atomic_store(&wd->limit_ns[p], (long long)(lim[p] * 1e9));
}

/* "train.watchdog_seconds = T", or auto with the limit it gave, for the
 * reports. */
static void setting_text(const cnn_watchdog_t *wd, double limit, char *buf, size_t len)
{
    if (wd->seconds > 0) snprintf(buf, len, "train.watchdog_seconds = %g", wd->seconds);
    else snprintf(buf, len, "train.watchdog_seconds = auto: %.1f s for this phase", limit);
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
    case CNN_WD_LOAD:
        return "this rank is stuck loading the data set or setting up, or waiting for a rank "
               "that is: a slow or hung file system, or a stalled rank";
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

/* Writes the monitor's report and ends the process: one write, no MPI
 * from this thread (FUNNELED), no exit handlers (they would wait for the
 * stuck main thread). */
static _Noreturn void monitor_fire(const cnn_watchdog_t *wd, const snapshot_t *s, double waited,
                                   double limit, double paused)
{
    char msg[1280], where[96], setting[96], stopped[128] = "";
    if (s->global > 0)
        snprintf(where, sizeof where, "at epoch %lld step %lld (global step %lld)", s->epoch,
                 s->step, s->global);
    else
        snprintf(where, sizeof where, "before the first step");
    setting_text(wd, limit, setting, sizeof setting);
    if (paused > 0)
        snprintf(stopped, sizeof stopped, " (not counting %.1f s in which this process was "
                 "stopped or not scheduled)", paused);
    int n = snprintf(msg, sizeof msg,
                     "mpicnn: rank %d: communication failure: watchdog: no progress for "
                     "%.1f s%s (%s) %s: %s; ending the job (exit code %d)\n",
                     wd->world[wd->rank], waited, stopped, setting, where,
                     phase_text(s->phase, wd->rank == 0), CNN_EXIT_COMM);
    if (n > (int)sizeof msg - 1) n = (int)sizeof msg - 1;
    ssize_t wr = write(STDERR_FILENO, msg, (size_t)n);
    (void)wr;
    _exit(CNN_EXIT_COMM);
}

/* The monitor thread: every tick, the time the current phase has run,
 * less the time the process was stopped, against the phase's limit. A
 * wake-up much later than asked for means the whole process was stopped
 * (its main thread too): a rank that was SIGSTOPped and continued, or a
 * suspended job, is not stuck, and that time is not counted. */
static void *monitor(void *arg)
{
    cnn_watchdog_t *wd = arg;
    const long long tick_ns = (long long)(wd->tick * 1e9);
    long long prev = now_ns(), cur_since = -1, paused = 0;
    pthread_mutex_lock(&wd->mu);
    while (!wd->quit) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        long long ns = until.tv_nsec + tick_ns;
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        int rc = pthread_cond_timedwait(&wd->cv, &wd->mu, &until);
        if (wd->quit) break;
        if (rc != 0 && rc != ETIMEDOUT) continue;
        const long long now = now_ns();
        snapshot_t s;
        snapshot(wd, &s);
        if (s.since != cur_since) { /* a new phase: nothing paused in it yet */
            cur_since = s.since;
            paused = 0;
        }
        if (now - prev - tick_ns > STOP_GAP_NS) {
            const long long from = prev > s.since ? prev : s.since;
            if (now - tick_ns > from) paused += now - tick_ns - from;
        }
        prev = now;
        if (s.phase == CNN_WD_IDLE) continue;
        const long long limit = atomic_load(&wd->limit_ns[s.phase]);
        const long long waited = now - s.since - paused;
        if (limit > 0 && waited > limit)
            monitor_fire(wd, &s, (double)waited * 1e-9, (double)limit * 1e-9,
                         (double)paused * 1e-9);
    }
    pthread_mutex_unlock(&wd->mu);
    return NULL;
}

/* auto's floor: AUTO_FLOOR, or MPICNN_WATCHDOG_FLOOR seconds (for tests,
 * which cannot wait minutes for a stalled rank to be named). */
static cnn_status_t auto_floor(double *floor)
{
    const char *e = getenv("MPICNN_WATCHDOG_FLOOR");
    *floor = AUTO_FLOOR;
    if (!e) return CNN_OK;
    char *end;
    errno = 0;
    const double x = strtod(e, &end);
    if (end == e || *end || errno || !(x > 0) || !(x <= 1e9))
        return cnn_error_set(CNN_EUSAGE, "MPICNN_WATCHDOG_FLOOR='%s': expected a number of "
                             "seconds > 0", e);
    *floor = x;
    return CNN_OK;
}

cnn_status_t cnn_watchdog_start(MPI_Comm comm, double seconds, cnn_watchdog_t **out)
{
    cnn_status_t st = CNN_OK;
    cnn_watchdog_t *wd = NULL;
    MPI_Group g = MPI_GROUP_NULL, gw = MPI_GROUP_NULL;
    int *ranks = NULL;
    double floor = AUTO_FLOOR;
    *out = NULL;
    if (seconds == 0 || isnan(seconds)) return CNN_OK;
    if (seconds < 0) CNN_TRY(auto_floor(&floor));
    wd = calloc(1, sizeof *wd);
    if (!wd) return cnn_error_set(CNN_ENOMEM, "watchdog: out of memory");
    wd->seconds = seconds > 0 ? seconds : CNN_WATCHDOG_AUTO;
    wd->floor = floor;
    wd->tick = (seconds > 0 ? seconds : floor) / 10;
    if (wd->tick > 0.1) wd->tick = 0.1;
    if (wd->tick < 0.005) wd->tick = 0.005;
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
    for (int p = 0; p < CNN_WD_NPHASES; p++) atomic_init(&wd->limit_ns[p], 0);
    publish_limits(wd);

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

/* The median of the measured step times (at most AUTO_WINDOW). */
static double median_step(const cnn_watchdog_t *wd)
{
    double v[AUTO_WINDOW];
    const int n = wd->nsteps < AUTO_WINDOW ? (int)wd->nsteps : AUTO_WINDOW;
    for (int i = 0; i < n; i++) { /* insertion sort: a few dozen values */
        double x = wd->step_times[i];
        int j = i;
        for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
        v[j] = x;
    }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* auto: a step runs from entering CNN_WD_COMPUTE to entering
 * CNN_WD_UPDATE (its computation, the arrival check and the
 * all-reduces). Once AUTO_STEPS are measured, the limits follow the
 * median of the recent ones. */
static void measure_step(cnn_watchdog_t *wd, cnn_wd_phase_t phase, long long now)
{
    if (phase == CNN_WD_COMPUTE) {
        wd->step_start = now;
        return;
    }
    if (phase != CNN_WD_UPDATE || wd->step_start == 0) return;
    wd->step_times[wd->nsteps % AUTO_WINDOW] = (double)(now - wd->step_start) * 1e-9;
    wd->step_start = 0;
    wd->nsteps++;
    if (wd->nsteps < AUTO_STEPS) return;
    wd->median = median_step(wd);
    publish_limits(wd);
}

void cnn_watchdog_phase(cnn_watchdog_t *wd, cnn_wd_phase_t phase)
{
    if (!wd) return;
    const long long now = now_ns();
    if (wd->seconds < 0) measure_step(wd, phase, now);
    atomic_fetch_add(&wd->seq, 1u);
    atomic_store(&wd->phase, (int)phase);
    atomic_store(&wd->since_ns, now);
    atomic_fetch_add(&wd->seq, 1u);
}

void cnn_watchdog_sizes(cnn_watchdog_t *wd, const cnn_wd_sizes_t *sizes)
{
    if (!wd) return;
    wd->sizes = *sizes;
    publish_limits(wd);
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
    char setting[96];
    snapshot(wd, &s);
    setting_text(wd, arrive_limit(wd), setting, sizeof setting);
    fprintf(stderr,
            "mpicnn: rank %d: communication failure: watchdog: rank%s %s%s did not reach the "
            "gradient all-reduce of epoch %lld step %lld (global step %lld) within %.1f s "
            "(%s): stalled (stopped, hung) or dead; the last arrival check: %s; ending the job "
            "(exit code %d)\n",
            wd->world[wd->rank], missing > 1 ? "s" : "", who,
            missing > NAME_MAX_RANKS ? ", ..." : "", s.epoch, s.step, (long long)global, waited,
            setting, last[0] ? last : "none", CNN_EXIT_COMM);
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
        long long t0 = atomic_load(&wd->since_ns), prev = t0;
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
            if (limit == 0) { /* auto, before the steps are measured: no deadline */
                CNN_MPI_CHECK(st, MPI_Waitall(n, wd->req, MPI_STATUSES_IGNORE), error);
                break;
            }
            /* a stopped (then continued) process does not count the time
             * it was stopped against its peers */
            const long long now = now_ns();
            if (now - prev > STOP_GAP_NS) t0 += now - prev;
            prev = now;
            const long long waited = now - t0;
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
