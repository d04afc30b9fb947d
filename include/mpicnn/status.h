/* status.h - error values shared by every module.
 *
 * Library functions return a cnn_status_t. On failure they also record a
 * message (what went wrong, naming the file, key or layer) with
 * cnn_error_set(); the CLI prints it and maps the status to an exit code
 * with cnn_status_exit_code(). Nothing in the library exits or aborts. */
#ifndef MPICNN_STATUS_H
#define MPICNN_STATUS_H

#include <stddef.h>

typedef enum {
    CNN_OK = 0,
    CNN_EUSAGE,    /* bad command line */
    CNN_EDATA,     /* bad data or input file (IDX, CIFAR, CSV, model) */
    CNN_ECONFIG,   /* bad config key or value, or an inconsistent net */
    CNN_EIO,       /* I/O failure: open, write, fsync, rename, disk full */
    CNN_ENUMERIC,  /* NaN or Inf in loss, gradients or weights */
    CNN_ECOMM,     /* MPI failure or timeout */
    CNN_ENOMEM,    /* allocation failed */
    CNN_EINTERNAL, /* a bug: an invariant did not hold */
    CNN_ESTOPPED,  /* a signal asked us to stop; a checkpoint was written */
    CNN_EUNAVAIL,  /* a program we run is not installed (gnuplot) */
    CNN_EBUSY      /* another run holds the run directory's lock (rundir.h) */
} cnn_status_t;

/* Process exit codes, documented in docs/reliability.md and --help. */
#define CNN_EXIT_OK 0
#define CNN_EXIT_INTERNAL 1
#define CNN_EXIT_USAGE 2
#define CNN_EXIT_DATA 3
#define CNN_EXIT_CONFIG 4
#define CNN_EXIT_IO 5
#define CNN_EXIT_NUMERIC 6
#define CNN_EXIT_COMM 7
#define CNN_EXIT_NOMEM 8
#define CNN_EXIT_BUSY 9
#define CNN_EXIT_UNAVAILABLE 69 /* sysexits.h EX_UNAVAILABLE */
#define CNN_EXIT_REQUEUE 75

/* Records the message for the current thread's most recent error and
 * returns `st`, so a failure reads: return cnn_error_set(CNN_EDATA, ...).
 * A second call replaces the first; use cnn_error_prefix() to add context. */
cnn_status_t cnn_error_set(cnn_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Puts "context: " in front of the recorded message. */
void cnn_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The recorded message ("" if none). Owned by the library; valid until the
 * next cnn_error_set() on this thread. */
const char *cnn_error_message(void);

/* Forgets the recorded message. */
void cnn_error_clear(void);

/* Short name of a status ("bad data", "I/O error", ...). Static string. */
const char *cnn_status_name(cnn_status_t st);

/* The process exit code for a status (table above). */
int cnn_status_exit_code(cnn_status_t st);

/* Convenience: propagate a failing status. */
#define CNN_TRY(expr)                                                          \
    do {                                                                       \
        cnn_status_t cnn_try_st_ = (expr);                                     \
        if (cnn_try_st_ != CNN_OK) return cnn_try_st_;                         \
    } while (0)

#endif
