/* train_state.h - the counters and history of a training run: what,
 * besides the tensors (weights, best weights, optimizer moments), a
 * checkpoint must hold for a resumed run to continue bit for bit.
 *
 * The sampler's position is (epoch, step): shuffling derives from (seed,
 * epoch). Dropout derives from the global step. The learning rate is a
 * function of (epoch, step, global step); lr records the last one used.
 *
 * cnn_train_state_fields is the one list of the scalar fields: their
 * names, types and offsets, in the order a checkpoint stores them.
 * Integer fields (CNN_TS_INT64, CNN_TS_FLAG) form /train/counters
 * (int64), CNN_TS_DOUBLE fields /train/values (float64); the same table
 * packs the state into those two arrays to send it between ranks. */
#ifndef MPICNN_TRAIN_STATE_H
#define MPICNN_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t epoch;          /* completed epochs */
    int64_t step;           /* steps done in the current epoch */
    int64_t global_step;    /* optimizer steps taken (also the dropout stream) */
    int64_t skipped_steps;  /* steps skipped for NaN/Inf (nan_policy = skip) */
    int64_t evals;          /* validations run */
    int has_best;           /* a best model exists */
    double best_metric;     /* its early-stopping metric */
    int64_t best_epoch;     /* its epoch (1-based) */
    int64_t bad_evals;      /* validations since the best (patience counter) */
    int stopped_early;      /* early stopping has ended the run */
    double lr;              /* learning rate of the last step taken (history) */
    double acc_loss, acc_correct, acc_seen; /* running sums of this epoch */
    double epoch_seconds;   /* seconds spent in this epoch so far */
    double val_loss, val_acc; /* latest validation, NaN if none */
    int nhistory;           /* rows of history */
    double *history;        /* (nhistory, CNN_HISTORY_COLS of model.h), owned */
} cnn_train_state_t;

typedef enum {
    CNN_TS_INT64,  /* int64_t; a counter */
    CNN_TS_FLAG,   /* int, 0 or 1; a counter (stored as 0/1, read as != 0) */
    CNN_TS_DOUBLE  /* double; a value */
} cnn_ts_type_t;

typedef struct {
    const char *name;   /* as in the checkpoint's "names" attributes */
    cnn_ts_type_t type;
    size_t offset;      /* offsetof(cnn_train_state_t, field) */
} cnn_ts_field_t;

/* Counters first, then values, each in the order of the checkpoint. */
#define CNN_TS_NCOUNTERS 9
#define CNN_TS_NVALUES 8
#define CNN_TS_NFIELDS (CNN_TS_NCOUNTERS + CNN_TS_NVALUES)
extern const cnn_ts_field_t cnn_train_state_fields[CNN_TS_NFIELDS];

/* The names of the counters and of the values, in their order (static
 * strings). */
void cnn_train_state_names(const char *counters[CNN_TS_NCOUNTERS],
                           const char *values[CNN_TS_NVALUES]);

/* The scalar fields of ts as the two arrays a checkpoint stores. */
void cnn_train_state_pack(const cnn_train_state_t *ts, int64_t counters[CNN_TS_NCOUNTERS],
                          double values[CNN_TS_NVALUES]);

/* Sets the scalar fields of ts from the two arrays; the history is left
 * as it is. */
void cnn_train_state_unpack(cnn_train_state_t *ts, const int64_t counters[CNN_TS_NCOUNTERS],
                            const double values[CNN_TS_NVALUES]);

/* Frees the history and empties it; ts itself is the caller's. NULL is a
 * no-op. */
void cnn_train_state_free(cnn_train_state_t *ts);

#endif
