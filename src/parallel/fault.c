/* fault.c - MPICNN_FAULT, the test-only fault injection (see fault.h).
 *
 * The parsed fault is process-wide state, like the environment it comes
 * from. Only the main thread touches it. */
#include "mpicnn/fault.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *name;
    cnn_fault_kind_t kind;
    int64_t default_step; /* also the smallest: step faults count from 1 */
} kinds[] = {
    {"kill", CNN_FAULT_KILL, 1},
    {"stop", CNN_FAULT_STOP, 1},
    {"hang", CNN_FAULT_HANG, 1},
    {"nan", CNN_FAULT_NAN, 1},
    {"nan_weights", CNN_FAULT_NAN_WEIGHTS, 1},
    {"slow", CNN_FAULT_SLOW, 1},
    {"ckpt_kill", CNN_FAULT_CKPT_KILL, 0},
    {"write_fail", CNN_FAULT_WRITE_FAIL, 0},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static cnn_fault_t fault;
static int parsed;       /* fault holds MPICNN_FAULT */
static int my_rank;      /* the caller's rank, from cnn_fault_init() */
static int64_t done;     /* global steps done (cnn_fault_set_step) */
static int write_fired;  /* the writing fault has fired */

/* A decimal integer in [lo, hi] spanning [s, end). */
static int parse_int(const char *s, const char *end, int64_t lo, int64_t hi, int64_t *out)
{
    if (s == end) return -1;
    int64_t v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v > (hi - (*p - '0')) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < lo) return -1;
    *out = v;
    return 0;
}

cnn_status_t cnn_fault_parse(const char *spec, cnn_fault_t *f)
{
    memset(f, 0, sizeof *f);
    f->rank = -1;
    if (!spec || !*spec) return CNN_OK;
    snprintf(f->text, sizeof f->text, "%s", spec);
    const size_t klen = strcspn(spec, ":@,");
    const char *kend = spec + klen;
    size_t i;
    for (i = 0; i < NKINDS; i++)
        if (strlen(kinds[i].name) == klen && !strncmp(spec, kinds[i].name, klen)) break;
    if (i == NKINDS)
        return cnn_error_set(CNN_EUSAGE,
                             "MPICNN_FAULT=%s: unknown fault kind '%.*s' (expected KIND[@STEP]"
                             "[,RANK] with KIND one of kill, stop, hang, nan, nan_weights, "
                             "slow, ckpt_kill, write_fail)", spec, (int)klen, spec);
    f->kind = kinds[i].kind;
    f->step = kinds[i].default_step;
    f->ms = f->kind == CNN_FAULT_SLOW ? 10 : 0;
    const char *p = kend;
    if (*p == ':') {
        const char *e = p + 1 + strcspn(p + 1, "@,");
        int64_t ms;
        if (f->kind != CNN_FAULT_SLOW || parse_int(p + 1, e, 1, 3600000, &ms) != 0)
            return cnn_error_set(CNN_EUSAGE,
                                 "MPICNN_FAULT=%s: '%.*s' after ':' is not a delay (only slow "
                                 "takes one: slow:MS with MS in 1..3600000)",
                                 spec, (int)(e - p - 1), p + 1);
        f->ms = (int)ms;
        p = e;
    }
    if (*p == '@') {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const int64_t first = kinds[i].default_step;
        if (parse_int(p + 1, e, first, (int64_t)1 << 50, &f->step) != 0)
            return cnn_error_set(CNN_EUSAGE,
                                 "MPICNN_FAULT=%s: '%.*s' after '@' is not a step number (expected "
                                 "an integer >= %lld%s)", spec, (int)(e - p - 1), p + 1,
                                 (long long)first,
                                 first ? ": global steps count from 1" : ", steps done");
        p = e;
    }
    if (*p == ',') {
        int64_t r;
        if (parse_int(p + 1, p + strlen(p), 0, 1 << 24, &r) != 0)
            return cnn_error_set(CNN_EUSAGE,
                                 "MPICNN_FAULT=%s: '%s' after ',' is not a rank (expected an "
                                 "integer >= 0)", spec, p + 1);
        f->rank = (int)r;
        p += strlen(p);
    }
    if (*p != '\0')
        return cnn_error_set(CNN_EUSAGE, "MPICNN_FAULT=%s: unexpected '%s' (expected "
                                         "KIND[@STEP][,RANK])", spec, p);
    return CNN_OK;
}

cnn_status_t cnn_fault_init(int rank, int size)
{
    my_rank = rank;
    done = 0;
    write_fired = 0;
    parsed = 1;
    cnn_status_t st = cnn_fault_parse(getenv("MPICNN_FAULT"), &fault);
    if (st == CNN_OK && fault.rank >= size)
        st = cnn_error_set(CNN_EUSAGE, "MPICNN_FAULT=%s: there is no rank %d: the run has %d "
                           "rank%s (0..%d)", fault.text, fault.rank, size, size == 1 ? "" : "s",
                           size - 1);
    if (st != CNN_OK) memset(&fault, 0, sizeof fault);
    return st;
}

const cnn_fault_t *cnn_fault_get(void)
{
    if (!parsed) {
        /* a library user that never ran cnn_train(): rank 0, as a writer is */
        parsed = 1;
        if (cnn_fault_parse(getenv("MPICNN_FAULT"), &fault) != CNN_OK)
            memset(&fault, 0, sizeof fault);
    }
    return &fault;
}

void cnn_fault_set_step(int64_t steps_done) { done = steps_done; }

static int rank_matches(const cnn_fault_t *f) { return f->rank < 0 || f->rank == my_rank; }

int cnn_fault_step_due(cnn_fault_kind_t kind, int64_t step)
{
    const cnn_fault_t *f = cnn_fault_get();
    return f->kind == kind && f->step == step && rank_matches(f);
}

void cnn_fault_step_hook(int64_t step)
{
    const cnn_fault_t *f = cnn_fault_get();
    if (f->kind == CNN_FAULT_SLOW && step >= f->step && rank_matches(f)) {
        struct timespec ts = {f->ms / 1000, (long)(f->ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        return;
    }
    if (f->kind == CNN_FAULT_NONE || f->step != step || !rank_matches(f)) return;
    switch (f->kind) {
    case CNN_FAULT_KILL:
        fprintf(stderr, "mpicnn: rank %d: MPICNN_FAULT=%s: SIGKILL at global step %lld\n",
                my_rank, f->text, (long long)step);
        raise(SIGKILL);
        break;
    case CNN_FAULT_STOP:
        fprintf(stderr, "mpicnn: rank %d: MPICNN_FAULT=%s: SIGSTOP at global step %lld\n",
                my_rank, f->text, (long long)step);
        raise(SIGSTOP);
        break;
    case CNN_FAULT_HANG:
        fprintf(stderr, "mpicnn: rank %d: MPICNN_FAULT=%s: hanging in global step %lld\n",
                my_rank, f->text, (long long)step);
        for (;;) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
    default: break;
    }
}

int cnn_fault_write_due(cnn_fault_kind_t kind, int64_t steps_done)
{
    const cnn_fault_t *f = cnn_fault_get();
    if (f->kind != kind || write_fired || my_rank != 0) return 0;
    if ((steps_done < 0 ? done : steps_done) < f->step) return 0;
    write_fired = 1;
    return 1;
}
