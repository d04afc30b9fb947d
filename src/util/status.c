/* status.c - per-thread error message and the status -> exit code table. */
#include "mpicnn/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_MAX 4096 /* room for a memory plan's table (net.h) */

static _Thread_local char msg[MSG_MAX];

/* Formats into a buffer of its own first: an argument may be the current
 * message (cnn_error_set(st, "%s", cnn_error_message()) changes only the
 * status). */
cnn_status_t cnn_error_set(cnn_status_t st, const char *fmt, ...)
{
    char m[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    memcpy(msg, m, sizeof msg);
    return st;
}

void cnn_error_prefix(const char *fmt, ...)
{
    char pre[MSG_MAX], old[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, msg, sizeof old);
    snprintf(msg, sizeof msg, "%.300s: %.3700s", pre, old);
}

const char *cnn_error_message(void) { return msg; }

void cnn_error_clear(void) { msg[0] = '\0'; }

const char *cnn_status_name(cnn_status_t st)
{
    switch (st) {
    case CNN_OK: return "ok";
    case CNN_EUSAGE: return "usage error";
    case CNN_EDATA: return "bad input";
    case CNN_ECONFIG: return "bad config";
    case CNN_EIO: return "I/O error";
    case CNN_ENUMERIC: return "numerical failure";
    case CNN_ECOMM: return "communication failure";
    case CNN_ENOMEM: return "out of memory";
    case CNN_EINTERNAL: return "internal error";
    case CNN_ESTOPPED: return "stopped by signal (checkpointed)";
    case CNN_EUNAVAIL: return "missing program";
    case CNN_EBUSY: return "run directory in use";
    }
    return "unknown error";
}

int cnn_status_exit_code(cnn_status_t st)
{
    switch (st) {
    case CNN_OK: return CNN_EXIT_OK;
    case CNN_EUSAGE: return CNN_EXIT_USAGE;
    case CNN_EDATA: return CNN_EXIT_DATA;
    case CNN_ECONFIG: return CNN_EXIT_CONFIG;
    case CNN_EIO: return CNN_EXIT_IO;
    case CNN_ENUMERIC: return CNN_EXIT_NUMERIC;
    case CNN_ECOMM: return CNN_EXIT_COMM;
    case CNN_ENOMEM: return CNN_EXIT_NOMEM;
    case CNN_ESTOPPED: return CNN_EXIT_REQUEUE;
    case CNN_EUNAVAIL: return CNN_EXIT_UNAVAILABLE;
    case CNN_EBUSY: return CNN_EXIT_BUSY;
    case CNN_EINTERNAL: break;
    }
    return CNN_EXIT_INTERNAL;
}
