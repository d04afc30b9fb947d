/* rundir.h - a run directory's lock, its status file, and the check that
 * a new run does not overwrite an old one.
 *
 * One run at a time writes a run directory (`mpicnn train --out DIR`, or
 * a sweep's DIR). Its first process takes the lock before it writes
 * anything and holds it to the end:
 *   DIR/lock       an fcntl() write lock on this file; the file names the
 *                  holder: "HOST PID SLURM_JOB_ID START" (job "-" outside
 *                  SLURM, START in UTC, ISO 8601). The kernel (or the
 *                  file server) drops the lock when the holder dies, even
 *                  by SIGKILL.
 *   DIR/lock.held  the fallback where the file system has no working
 *                  fcntl() locks (ENOLCK, EOPNOTSUPP, ENOSYS: NFS without
 *                  a lock daemon, Lustre mounted without -o flock), or
 *                  with MPICNN_LOCK=excl: created with O_EXCL, holding the
 *                  same line, removed at the end. A holder on this host
 *                  whose process is gone is stale and is replaced; one on
 *                  another host cannot be checked and must be removed by
 *                  hand once its run is gone.
 *   DIR/status     one line saying how the last run in DIR went, written
 *                  atomically: "running HOST PID START", "finished",
 *                  "stopped-resumable" or "failed CODE MESSAGE" (CODE the
 *                  exit code). A "running" line whose process is gone
 *                  means that run died hard (SIGKILL, a node failure).
 *
 * These functions are for one process (rank 0); they make no MPI call. */
#ifndef MPICNN_RUNDIR_H
#define MPICNN_RUNDIR_H

#include <stddef.h>

#include "mpicnn/status.h"

#define CNN_RUNDIR_LOCK "lock"
#define CNN_RUNDIR_LOCK_HELD "lock.held"
#define CNN_RUNDIR_STATUS "status"

typedef struct cnn_rundir_lock cnn_rundir_lock_t;

/* Takes the lock on the existing directory dir, waiting up to
 * wait_seconds (0: not at all) for a holder to end, polling a few times a
 * second. *out is owned by the caller and released by
 * cnn_rundir_unlock(). CNN_EBUSY names the holder ("DIR is in use by
 * another run: host H, pid P, SLURM job J, since T (DIR/lock)");
 * CNN_ESTOPPED if cnn_train_request_stop() was called while waiting
 * (nothing was written); CNN_EIO if the lock file cannot be made;
 * CNN_EUSAGE for a bad MPICNN_LOCK. */
cnn_status_t cnn_rundir_lock(const char *dir, double wait_seconds, cnn_rundir_lock_t **out);

/* Releases the lock (removes DIR/lock.held for the fallback; keeps
 * DIR/lock, whose removal would race with a waiting run). NULL is a
 * no-op. */
void cnn_rundir_unlock(cnn_rundir_lock_t *l);

/* Writes "running HOST PID START" to DIR/status, atomically. */
cnn_status_t cnn_rundir_status_running(const char *dir);

/* Writes the final line for a run that ended with st to DIR/status,
 * atomically: "finished" (CNN_OK), "stopped-resumable" (CNN_ESTOPPED), or
 * "failed CODE MESSAGE" with CODE = cnn_status_exit_code(st) and message
 * (newlines made spaces). */
cnn_status_t cnn_rundir_status_end(const char *dir, cnn_status_t st, const char *message);

/* Refuses to start a new run in dir if it holds any of the files or
 * directories names[0..n) (the previous run's outputs): CNN_EUSAGE naming
 * them. With force, moves those of names[0..nmove) that exist (nmove >=
 * n: the outputs, then related files such as plots) into a new
 * DIR/old-<UTC time>/ instead, and puts its path in moved (moved[0] =
 * '\0' if nothing was there). CNN_EIO if a move fails. */
cnn_status_t cnn_rundir_check_fresh(const char *dir, const char *const *names, int n, int nmove,
                                    int force, char *moved, size_t len);

#endif
