/* sweep.h - hyperparameter sweeps: the grid of a config's [sweep] section,
 * and running it on groups of ranks.
 *
 * The grid is the cross product of the [sweep] value lists, enumerated
 * like nested loops in [sweep] order with the last key varying fastest,
 * and deduplicated: a point whose resolved config equals an earlier
 * point's (`0.1` and `1e-1`, a key listed twice) is dropped, keeping the
 * first. Points are numbered 0..npoints-1 in that order; the number is the
 * trial's name everywhere (DIR/trials/<n>, sweep.csv, the journal).
 *
 * cnn_sweep_run() splits the communicator into groups of
 * sweep.ranks_per_trial ranks. Every group leader takes the next trial
 * from an atomic counter (MPI one-sided, hosted on rank 0, which also
 * trains), the group trains it with cnn_train() on the group's
 * communicator, and the leader appends the result to DIR/sweep.journal
 * (one fsync'd line per finished trial). docs/sweeps.md describes the
 * files, successive halving and --resume. */
#ifndef MPICNN_SWEEP_H
#define MPICNN_SWEEP_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicnn/config.h"
#include "mpicnn/status.h"

/* Most grid points before deduplication (an error above it). */
#define CNN_SWEEP_MAX_POINTS 10000

/* The expanded grid. All memory is owned by the struct; free it with
 * cnn_sweep_grid_free(). */
typedef struct {
    int nkeys;                        /* the swept keys, in [sweep] order */
    const char *key[CNN_MAX_SWEEP];   /* "section.key" */
    int npoints;                      /* points after deduplication (>= 1) */
    const char **value;               /* (npoints, nkeys) row-major: point p's
                                         value of key k is value[p * nkeys + k],
                                         trimmed, as written in [sweep] */
    uint64_t *hash;                   /* (npoints) cnn_config_hash() of each
                                         point's resolved config; for a point
                                         that does not apply (its values
                                         conflict), the hash of its label */
    char *text;                       /* backing store of key[] and value[] */
} cnn_sweep_grid_t;

/* Expands cfg->sweep.params. A config without swept keys gives one point
 * (the config itself). CNN_ECONFIG if the cross product exceeds
 * CNN_SWEEP_MAX_POINTS, CNN_ENOMEM. Deterministic: every rank gets the
 * same grid. *grid is the caller's to free. */
cnn_status_t cnn_sweep_grid(const cnn_config_t *cfg, cnn_sweep_grid_t **grid);

void cnn_sweep_grid_free(cnn_sweep_grid_t *grid);

/* Applies point p of grid to *cfg (a copy of the config the grid came
 * from) with cnn_config_set(). CNN_ECONFIG when the point's values do not
 * go together; *cfg is then partly applied. */
cnn_status_t cnn_sweep_point_config(const cnn_sweep_grid_t *grid, int p, cnn_config_t *cfg);

/* "optimizer.lr=0.01 conv1.filters=16" into buf[len] (truncated to fit;
 * "(base config)" for a grid without keys). */
void cnn_sweep_point_label(const cnn_sweep_grid_t *grid, int p, char *buf, size_t len);

typedef struct {
    MPI_Comm comm;          /* every rank of the sweep (never copied or freed) */
    const char *out_dir;    /* DIR: created if missing */
    int resume;             /* continue the sweep journaled in DIR */
    int quiet;              /* print nothing */
} cnn_sweep_opts_t;

typedef struct {
    int ntrials;            /* grid points */
    int nrun;               /* trial runs (one per trial and round) this call made */
    int nskipped;           /* runs found finished in the journal (--resume) */
    int nok, nfailed;       /* trials by final status */
    int best;               /* the best trial, -1 if none succeeded */
    double best_val_acc;    /* its validation accuracy (NaN without validation) */
    double test_acc;        /* its test accuracy (NaN without a test set) */
    long test_correct, test_total;
    double seconds;         /* wall time of the sweep */
} cnn_sweep_result_t;

/* Runs the sweep cfg describes (see the top of this file). Collective over
 * opts->comm: every rank calls it with the same cfg and opts. Writes
 *   DIR/sweep.ini       the resolved config the sweep started with (rank
 *                       0, atomically, once): --resume compares with it
 *                       when the journal's hashes do not match, so that a
 *                       sweep journaled by a version of mpicnn without some
 *                       of this version's config keys (at their defaults)
 *                       can be resumed
 *   DIR/sweep.journal   one line per finished trial run, appended and
 *                       fsync'd by the group leader that ran it
 *   DIR/trials/<n>/     each trial's model.h5, checkpoint.h5, metrics.csv
 *   DIR/sweep.csv       one row per trial (rank 0, atomically)
 *   DIR/best/model.h5   the best trial's model (rank 0, atomically)
 * and, unless quiet, a line per finished trial (from its group leader)
 * and the ranked table with the best trial's test accuracy (rank 0).
 * A trial that fails (CNN_ENUMERIC, CNN_ECONFIG, CNN_EDATA, CNN_ENOMEM) is
 * recorded as failed and the sweep goes on; I/O, communication and
 * internal failures end the sweep, and so does a stop request
 * (CNN_ESTOPPED: trials in flight checkpoint, --resume continues them).
 * If no trial succeeds, returns the first failed trial's status. All
 * ranks return the same status; *res is filled on every rank. */
cnn_status_t cnn_sweep_run(const cnn_config_t *cfg, const cnn_sweep_opts_t *opts,
                           cnn_sweep_result_t *res);

#endif
