/* train.h - data-parallel training on one communicator.
 *
 * Every rank of `comm` holds a replica of the net and trains on its slice
 * of each global batch; the gradient arena is summed over the ranks every
 * step and every rank takes the same optimizer step. Rank 0 of `comm`
 * decides about early stopping and writes the run's files:
 *   DIR/model.h5       the best model (see docs/model-format.md)
 *   DIR/checkpoint.h5  the full training state, for --resume
 *   DIR/metrics.csv    one row per epoch
 * A sweep calls cnn_train() once per trial with a group communicator. */
#ifndef MPICNN_TRAIN_H
#define MPICNN_TRAIN_H

#include <mpi.h>
#include <stdint.h>

#include "mpicnn/config.h"
#include "mpicnn/dataprep.h"
#include "mpicnn/status.h"
#include "mpicnn/train_state.h"

typedef enum {
    CNN_PROGRESS_AUTO = 0, /* a live bar if stdout is a terminal, else lines */
    CNN_PROGRESS_BAR,
    CNN_PROGRESS_LINES,    /* a line every train.log_every steps */
    CNN_PROGRESS_NONE      /* epoch lines only */
} cnn_progress_t;

typedef struct {
    MPI_Comm comm;          /* the ranks that train this model */
    const char *out_dir;    /* created if missing */
    int resume;             /* continue from out_dir/checkpoint.h5 */
    int quiet;              /* print nothing (sweeps print their own) */
    cnn_progress_t progress;
    const cnn_data_t *data; /* preloaded data, or NULL to load cfg->data */
    const char *tag;        /* prefix of progress lines, or NULL */
    int skip_test;          /* 1: do not score the test set (res->test_* stay NaN/0) */
} cnn_train_opts_t;

typedef struct {
    double train_loss, train_acc; /* last epoch's running averages */
    double val_loss, val_acc;     /* of the best model (NaN: no validation) */
    double test_loss, test_acc;   /* of the best model (NaN: no test set) */
    long test_correct, test_total;
    int best_epoch;               /* 1-based; the last epoch without validation */
    int epochs_run;
    int stopped_early;
    double seconds;               /* wall time of the training loop */
    double images_per_second;     /* over the whole run */
    uint64_t params_hash;         /* FNV-1a of the final weights and state;
                                     the same on every rank */
} cnn_train_result_t;

/* Trains per cfg. Collective over opts->comm: every rank must call it with
 * the same cfg. All ranks return the same status (failures are agreed);
 * *res is filled on every rank. CNN_ESTOPPED means a stop was requested
 * (cnn_train_request_stop()) and a checkpoint was written. */
cnn_status_t cnn_train(const cnn_config_t *cfg, const cnn_train_opts_t *opts,
                       cnn_train_result_t *res);

/* Asks running trainings to checkpoint and stop at the next step
 * boundary. Async-signal-safe: it only sets a flag. */
void cnn_train_request_stop(void);

/* 1 if a stop was requested. */
int cnn_train_stop_requested(void);

/* Forgets a stop request, so that a later cnn_train() in the same process
 * runs (tests). */
void cnn_train_clear_stop(void);

#endif
