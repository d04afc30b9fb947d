/* train_state.c - the field table of the training state (train_state.h). */
#include "mpicnn/train_state.h"

#include <stdlib.h>

#define FIELD(name, type) {#name, type, offsetof(cnn_train_state_t, name)}

const cnn_ts_field_t cnn_train_state_fields[CNN_TS_NFIELDS] = {
    /* /train/counters */
    FIELD(epoch, CNN_TS_INT64),
    FIELD(step, CNN_TS_INT64),
    FIELD(global_step, CNN_TS_INT64),
    FIELD(skipped_steps, CNN_TS_INT64),
    FIELD(evals, CNN_TS_INT64),
    FIELD(has_best, CNN_TS_FLAG),
    FIELD(best_epoch, CNN_TS_INT64),
    FIELD(bad_evals, CNN_TS_INT64),
    FIELD(stopped_early, CNN_TS_FLAG),
    /* /train/values */
    FIELD(best_metric, CNN_TS_DOUBLE),
    FIELD(acc_loss, CNN_TS_DOUBLE),
    FIELD(acc_correct, CNN_TS_DOUBLE),
    FIELD(acc_seen, CNN_TS_DOUBLE),
    FIELD(epoch_seconds, CNN_TS_DOUBLE),
    FIELD(val_loss, CNN_TS_DOUBLE),
    FIELD(val_acc, CNN_TS_DOUBLE),
    FIELD(lr, CNN_TS_DOUBLE),
};

void cnn_train_state_names(const char *counters[CNN_TS_NCOUNTERS],
                           const char *values[CNN_TS_NVALUES])
{
    int nc = 0, nv = 0;
    for (int i = 0; i < CNN_TS_NFIELDS; i++) {
        const cnn_ts_field_t *f = &cnn_train_state_fields[i];
        if (f->type == CNN_TS_DOUBLE) values[nv++] = f->name;
        else counters[nc++] = f->name;
    }
}

void cnn_train_state_pack(const cnn_train_state_t *ts, int64_t counters[CNN_TS_NCOUNTERS],
                          double values[CNN_TS_NVALUES])
{
    const char *base = (const char *)ts;
    int nc = 0, nv = 0;
    for (int i = 0; i < CNN_TS_NFIELDS; i++) {
        const cnn_ts_field_t *f = &cnn_train_state_fields[i];
        const void *p = base + f->offset;
        switch (f->type) {
        case CNN_TS_INT64: counters[nc++] = *(const int64_t *)p; break;
        case CNN_TS_FLAG: counters[nc++] = *(const int *)p; break;
        case CNN_TS_DOUBLE: values[nv++] = *(const double *)p; break;
        }
    }
}

void cnn_train_state_unpack(cnn_train_state_t *ts, const int64_t counters[CNN_TS_NCOUNTERS],
                            const double values[CNN_TS_NVALUES])
{
    char *base = (char *)ts;
    int nc = 0, nv = 0;
    for (int i = 0; i < CNN_TS_NFIELDS; i++) {
        const cnn_ts_field_t *f = &cnn_train_state_fields[i];
        void *p = base + f->offset;
        switch (f->type) {
        case CNN_TS_INT64: *(int64_t *)p = counters[nc++]; break;
        case CNN_TS_FLAG: *(int *)p = counters[nc++] != 0; break;
        case CNN_TS_DOUBLE: *(double *)p = values[nv++]; break;
        }
    }
}

void cnn_train_state_free(cnn_train_state_t *ts)
{
    if (!ts) return;
    free(ts->history);
    ts->history = NULL;
    ts->nhistory = 0;
}
