/* fault.h - test-only fault injection, driven by MPICNN_FAULT.
 *
 * The fault-injection tests (tests/test_fault_*.sh, tests/test_resume.sh)
 * make one process misbehave at a chosen step to show how the others and
 * the files on disk cope. The variable holds one fault:
 *
 *     MPICNN_FAULT=KIND[@STEP][,RANK]      (slow also takes KIND:MS)
 *
 *   kill        SIGKILL at the start of global step STEP (1-based, as in
 *               the messages: "global step 5")
 *   stop        SIGSTOP at the start of global step STEP (the process,
 *               its watchdog thread included, freezes)
 *   hang        sleeps forever at the start of global step STEP (the
 *               process is alive: its own watchdog fires)
 *   nan         a NaN in this rank's gradient arena in global step STEP,
 *               before the all-reduce
 *   nan_weights a NaN in this rank's weights right after the optimizer
 *               step of global step STEP (as an overflow would leave them)
 *   slow[:MS]   every step from global step STEP on takes MS milliseconds
 *               longer (default 10): a slow rank, or a run that must last
 *               long enough for a test to act in its middle
 *   ckpt_kill   SIGKILL in the middle of the first checkpoint written once
 *               STEP steps are done (STEP defaults to 0: the first one)
 *   write_fail  the first model or checkpoint write once STEP steps are
 *               done fails as if the disk were full (the target is left
 *               as it was)
 *
 * RANK is the rank in the training communicator; without it every rank
 * is affected (the writing kinds only ever affect rank 0, which writes).
 * STEP defaults to 1 for the step kinds and 0 for the writing kinds, and
 * may not be lower (a step kind at STEP 0 would never fire).
 *
 * Unset, the variable costs one getenv per cnn_train() and an integer
 * compare per step. A value that does not parse is an error
 * (CNN_EUSAGE), so a misspelt test fails loudly instead of passing with
 * no fault injected. */
#ifndef MPICNN_FAULT_H
#define MPICNN_FAULT_H

#include <stdint.h>

#include "mpicnn/status.h"

typedef enum {
    CNN_FAULT_NONE = 0,
    CNN_FAULT_KILL,
    CNN_FAULT_STOP,
    CNN_FAULT_HANG,
    CNN_FAULT_NAN,
    CNN_FAULT_NAN_WEIGHTS,
    CNN_FAULT_SLOW,
    CNN_FAULT_CKPT_KILL,
    CNN_FAULT_WRITE_FAIL
} cnn_fault_kind_t;

typedef struct {
    cnn_fault_kind_t kind;
    int64_t step;  /* see above */
    int rank;      /* -1: every rank */
    int ms;        /* slow: the delay per step in milliseconds */
    char text[64]; /* the specification as given, for messages */
} cnn_fault_t;

/* Parses a specification (the grammar above) into *f. NULL or "" gives
 * CNN_FAULT_NONE. CNN_EUSAGE with a message naming the value otherwise.
 * Pure: no environment, no global state. */
cnn_status_t cnn_fault_parse(const char *spec, cnn_fault_t *f);

/* Reads MPICNN_FAULT (again) into the process-wide fault and records the
 * caller's rank of `size` ranks (a fault naming a rank >= size is a usage
 * error: it would never fire). cnn_train() calls it once at its start. */
cnn_status_t cnn_fault_init(int rank, int size);

/* The process-wide fault (parsed from MPICNN_FAULT on first use if
 * cnn_fault_init() has not run; a malformed value then counts as none).
 * Static storage: do not free. */
const cnn_fault_t *cnn_fault_get(void);

/* Tells the hooks how many global steps are done (cnn_train() calls it
 * at each step boundary). */
void cnn_fault_set_step(int64_t steps_done);

/* 1 if the step fault `kind` (kill, stop, hang, nan, nan_weights) applies
 * to this rank in global step `step` (1-based). */
int cnn_fault_step_due(cnn_fault_kind_t kind, int64_t step);

/* Acts on the process-level step faults due in global step `step`:
 * raises SIGKILL or SIGSTOP, or sleeps forever, after a line on stderr
 * naming the fault; or sleeps for a slow fault. Returns when none is
 * due. */
void cnn_fault_step_hook(int64_t step);

/* 1 (once) if the writing fault `kind` (ckpt_kill, write_fail) is due:
 * this is rank 0 and at least STEP steps are done (`steps_done`, or the
 * count given to cnn_fault_set_step() when steps_done < 0). A writing
 * fault fires once per cnn_fault_init(). */
int cnn_fault_write_due(cnn_fault_kind_t kind, int64_t steps_done);

#endif
