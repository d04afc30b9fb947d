/* watchdog.h - ends a training job that stops making progress.
 *
 * A job left running for days must not hang on a rank that stalled (a
 * stopped process, a hung file system, a deadlock) or died without the
 * launcher noticing. Unless train.watchdog_seconds = 0, cnn_train()
 * starts a watchdog on every rank. It has two parts:
 *
 *  - A monitor thread. The training loop tells it where it is (epoch,
 *    step, global step) and what it is doing (the phase: computing a step,
 *    waiting in an all-reduce, validating, writing a checkpoint, ...) at
 *    every phase boundary; that is a few atomic stores. If one phase lasts
 *    longer than its limit, the thread writes one line to stderr naming
 *    this rank, the step and the phase, and ends the process with
 *    _exit(CNN_EXIT_COMM). A rank stuck in its own computation names
 *    itself; a rank stuck in a collective says which one it waits in.
 *
 *  - An arrival check before the gradient all-reduce of every step
 *    (cnn_watchdog_arrive()): each rank sends its global step to every
 *    other rank on a private duplicate of the communicator and polls for
 *    theirs with a deadline. A rank whose message does not come in time is
 *    named ("rank 1 did not reach the gradient all-reduce of global step
 *    12 ..."), even when it cannot report itself (SIGSTOP, a frozen node),
 *    and the job is aborted with MPI_Abort(comm, CNN_EXIT_COMM).
 *
 * Why the library ends the process here, against the rule that it only
 * returns errors: a rank waiting for a stalled peer cannot return (it is
 * inside a blocking MPI call, or it would have to finalize MPI, which
 * waits for the stalled peer too). Ending the job is the only way to free
 * the allocation and report. The two exits are chosen by thread:
 * MPI_Abort() from the main thread (the only thread allowed to call MPI
 * under MPI_THREAD_FUNNELED, the level mpicnn asks for), _exit() from the
 * monitor thread, which never calls MPI. Under mpirun a process that
 * exits with a non-zero code makes mpirun kill the other ranks and return
 * that code, so either way the job ends with exit code 7.
 *
 * Each phase has a limit (docs/reliability.md). With a number T, T bounds
 * every phase: loading the data set and setting up (at least the data's
 * size at 1 MiB/s), preparing the output directory (with reading the
 * checkpoint for --resume), one step, one validation pass, one checkpoint
 * or model write (and the other ranks' wait for it), the final test-set
 * evaluation. With auto (CNN_WATCHDOG_AUTO), the step phases are not
 * watched until 10 steps are measured, then bounded by the larger of
 * 300 s and 20 times the median step; loading, reading the checkpoint and
 * saving by the larger of 300 s and their bytes at 1 MiB/s; validation
 * and the final evaluation, once steps are measured, by the larger of
 * 300 s and 20 median steps per batch they score. MPICNN_WATCHDOG_FLOOR
 * (seconds, for tests) replaces the 300 s.
 *
 * Time in which the process itself was stopped (SIGSTOP and SIGCONT, a
 * suspended job, a frozen node), seen as a wake-up of the monitor thread
 * or of the arrival check much later than asked for, is not counted: a
 * rank that was stopped and continued is not stuck. */
#ifndef MPICNN_WATCHDOG_H
#define MPICNN_WATCHDOG_H

#include <mpi.h>
#include <stdint.h>

#include "mpicnn/status.h"

typedef struct cnn_watchdog cnn_watchdog_t;

/* What the main thread is doing, for the report. */
typedef enum {
    CNN_WD_IDLE = 0,      /* not watched */
    CNN_WD_LOAD,          /* loading the data set and setting up, before the outputs */
    CNN_WD_OUTPUTS,       /* the output directory and, for --resume, reading the checkpoint */
    CNN_WD_COMPUTE,       /* loading the batch, forward and backward */
    CNN_WD_ARRIVE,        /* the arrival check before the gradient all-reduce */
    CNN_WD_ALLREDUCE,     /* the gradient all-reduce */
    CNN_WD_ALLREDUCE_AUX, /* the all-reduce of the step's loss, accuracy and flags */
    CNN_WD_UPDATE,        /* the optimizer step and the bookkeeping after it */
    CNN_WD_VALIDATE,      /* scoring the validation set and the early-stop decision */
    CNN_WD_SAVE,          /* rank 0 writing files, and every rank agreeing on the result */
    CNN_WD_EVALUATE,      /* scoring the best model at the end */
    CNN_WD_NPHASES
} cnn_wd_phase_t;

/* What the size-scaled limits scale with (0: unknown, the floor). */
typedef struct {
    double load_bytes;   /* the data files loading reads */
    double save_bytes;   /* the largest file a save writes (a checkpoint), or --resume reads */
    double val_batches;  /* batches (of one step's size) a validation scores */
    double eval_batches; /* batches the final evaluation scores (validation and test) */
} cnn_wd_sizes_t;

/* Starts a watchdog of `seconds` (train.watchdog_seconds: > 0, or
 * CNN_WATCHDOG_AUTO) on comm. Collective: every rank of comm calls it
 * with the same seconds. seconds = 0 gives *wd = NULL, and every other
 * function takes NULL as "off" and does nothing. Needs only
 * MPI_THREAD_FUNNELED (the thread never calls MPI). Returns CNN_ECOMM if
 * the communicator cannot be duplicated, CNN_ENOMEM or CNN_EINTERNAL if
 * the thread cannot start, CNN_EUSAGE for a malformed
 * MPICNN_WATCHDOG_FLOOR (auto only). Stop it with cnn_watchdog_stop(). */
cnn_status_t cnn_watchdog_start(MPI_Comm comm, double seconds, cnn_watchdog_t **wd);

/* Stops the thread and frees wd (collective: frees the duplicated
 * communicator). NULL is a no-op. */
void cnn_watchdog_stop(cnn_watchdog_t *wd);

/* Where the run is, for the report: epoch and step within it (both
 * 1-based) and the global step (1-based). Main thread only. */
void cnn_watchdog_position(cnn_watchdog_t *wd, int64_t epoch, int64_t step, int64_t global_step);

/* Enters `phase`: the clock of the deadline restarts. With auto, the
 * time from CNN_WD_COMPUTE to CNN_WD_UPDATE is a step's. Main thread
 * only. */
void cnn_watchdog_phase(cnn_watchdog_t *wd, cnn_wd_phase_t phase);

/* The sizes the loading, save and evaluation limits scale with (copied).
 * Main thread only. */
void cnn_watchdog_sizes(cnn_watchdog_t *wd, const cnn_wd_sizes_t *sizes);

/* The arrival check (collective, main thread): returns CNN_OK once every
 * rank of comm has reached it for the same global step; CNN_ECOMM if an
 * MPI call fails. A rank that does not arrive within the deadline is
 * named on stderr and the job is aborted (it does not return); with auto,
 * before 10 steps are measured, there is no deadline. Leaves the phase
 * at CNN_WD_ALLREDUCE. */
cnn_status_t cnn_watchdog_arrive(cnn_watchdog_t *wd);

#endif
