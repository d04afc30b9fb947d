/* sweep_impl.h - what the files of src/sweep share (not public).
 *
 *   grid.c      the grid of [sweep] (sweep.h) and the hash of a point
 *   journal.c   DIR/sweep.journal: one fsync'd line per finished trial run
 *   schedule.c  rounds and successive halving, planned from the journal
 *   resume.c    DIR/sweep.ini and --resume across a new config key
 *   runner.c    groups of ranks, the rounds, cnn_sweep_run()
 *   report.c    the ranking, sweep.csv, best/model.h5, the summary
 *
 * Who does what (docs/sweeps.md has the long version):
 *   - every rank expands the same grid and joins one group of
 *     sweep.ranks_per_trial ranks (MPI_Comm_split on rank / R);
 *   - rank 0 reads the journal between rounds, decides which trials a
 *     round runs (all of them in a grid, the survivors in successive
 *     halving, minus those already journaled) and broadcasts the list;
 *   - within a round, each group leader takes list positions from an
 *     atomic counter in a one-sided window on rank 0 (MPI_Fetch_and_op),
 *     so a group that finishes takes the next trial at once and rank 0
 *     trains like any other leader: nobody has to answer requests;
 *   - the leader appends the trial's result to the journal under an
 *     fcntl lock and fsyncs it before taking the next one;
 *   - at the end rank 0 ranks the trials, writes sweep.csv and
 *     best/model.h5, and all ranks score the best model on the test set. */
#ifndef MPICNN_SWEEP_IMPL_H
#define MPICNN_SWEEP_IMPL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicnn/config.h"
#include "mpicnn/dataprep.h"
#include "mpicnn/status.h"
#include "mpicnn/sweep.h"

#define SWEEP_REASON_MAX 480
#define SWEEP_JOURNAL_NAME "sweep.journal"
#define SWEEP_CONFIG_NAME "sweep.ini"

/* ------------------------------------------------------------------ */
/* grid.c                                                              */

/* Rewrites a resolved config text (cnn_config_to_string()) before it is
 * hashed; returns a malloc'd text or NULL when out of memory. */
typedef char *(*sweep_text_edit_fn)(const char *text, const void *ctx);

/* The hash of grid point p applied to a copy of base (work is scratch):
 * cnn_config_hash() of its resolved text, passed through edit(text, ctx)
 * first unless edit is NULL; for a point whose values do not go together,
 * the hash of "!" and its label. CNN_ENOMEM only. */
cnn_status_t sweep_point_hash(const cnn_sweep_grid_t *g, int p, const cnn_config_t *base,
                              cnn_config_t *work, sweep_text_edit_fn edit, const void *ctx,
                              uint64_t *h);

/* FNV-1a over the bytes of hash[0..n), each least significant byte
 * first: the grid hash in the journal's header. */
uint64_t sweep_grid_hash(const uint64_t *hash, int n);

/* ------------------------------------------------------------------ */
/* journal.c                                                           */

/* One finished trial run (a trial in one round): a line of the journal. */
typedef struct {
    int trial, round;
    uint64_t point;       /* the grid's hash of the trial, to catch a changed grid */
    int ok;
    int code;             /* cnn_status_t of a failure, 0 if ok */
    double val_acc, val_loss;
    int best_epoch, epochs_run, stopped_early;
    double seconds;       /* wall time of the run */
    int group, ranks;
    char reason[SWEEP_REASON_MAX];
} sweep_record_t;

/* The records read from a journal; rec is malloc'd, grown by the reader. */
typedef struct {
    sweep_record_t *rec;
    int n, cap;
} sweep_journal_t;

/* The journal's first line, naming the number of trials and the grid. */
void sweep_journal_header(char *buf, size_t len, int ntrials, uint64_t grid_hash);

/* Creates the journal `path` (which must not exist) holding only header,
 * fsyncs it and the directory dir. */
cnn_status_t sweep_journal_create(const char *path, const char *dir, const char *header);

/* 1 if the journal `path` starts with the line `header`, else 0 (also
 * when it cannot be read: sweep_journal_read() then says why). */
int sweep_journal_has_header(const char *path, const char *header);

/* The whole file `path` into *buf (malloc'd, '\0'-terminated, the
 * caller's to free, also on failure) of *len bytes. CNN_EIO "PATH: what:
 * why" when it cannot be opened, CNN_ENOMEM. */
cnn_status_t sweep_read_file(const char *path, const char *what, char **buf, size_t *len);

/* Appends rec's line under an exclusive fcntl lock, then fsyncs. */
cnn_status_t sweep_journal_append(const char *path, const sweep_record_t *rec);

/* Reads the journal into *j (rank 0). A last line without its newline (a
 * write cut short by a crash) is dropped and, if `repair`, cut off the
 * file so that the next append starts a fresh line. The file must start
 * with header, and every record must name a trial 0..ntrials-1 with its
 * hash in hashes[]: CNN_EUSAGE otherwise. */
cnn_status_t sweep_journal_read(const char *path, const char *header, const uint64_t *hashes,
                                int ntrials, int repair, sweep_journal_t *j);

/* ------------------------------------------------------------------ */
/* schedule.c                                                          */

/* Rounds: 1 for a grid; ceil(epochs / halving_epochs) in successive
 * halving. */
int sweep_nrounds(const cnn_config_t *cfg);

/* The epochs a trial trains to by the end of round r. */
int sweep_round_target(const cnn_config_t *cfg, int r);

/* How many of m trials successive halving keeps for the next round. */
int sweep_keep_count(const cnn_config_t *cfg, int m);

/* Rank 0's view of the trials, recomputed from the journal; every array
 * has one entry per trial. */
typedef struct {
    int n;                         /* trials */
    int *member;                   /* 1: in the round planned */
    int *reached;                  /* the last round the trial took part in */
    const sweep_record_t **last;   /* its latest record up to that round, or NULL */
    double *seconds;               /* its time, summed over its records */
    int *order;                    /* scratch for the ranking */
} sweep_plan_t;

/* Allocates the arrays for n trials; CNN_ENOMEM. */
cnn_status_t sweep_plan_init(sweep_plan_t *pl, int n);
void sweep_plan_free(sweep_plan_t *pl);

/* From the journal alone: who takes part in round r, each trial's latest
 * record up to round r, the last round it took part in and its time so
 * far. Round 0 has every trial; round q+1 the best sweep_keep_count() of
 * round q that succeeded. */
cnn_status_t sweep_plan_round(sweep_plan_t *pl, const sweep_journal_t *j,
                              const cnn_config_t *cfg, int r);

/* Sorts idx[0..n) best first: later rounds first, then succeeded, higher
 * val_acc (NaN last), lower index. CNN_ENOMEM. */
cnn_status_t sweep_rank_trials(const sweep_plan_t *pl, int *idx, int n);

/* ------------------------------------------------------------------ */
/* runner.c: the state of one cnn_sweep_run()                          */

typedef struct {
    const cnn_config_t *cfg;
    const cnn_sweep_opts_t *opts;
    MPI_Comm comm, group;     /* group: MPI_COMM_NULL on a rank without one */
    int rank, size, grank, gid, ngroups, R;
    cnn_sweep_grid_t *grid;
    int n;                    /* trials */
    int nrounds;
    cnn_data_t data;
    int have_data;            /* data loaded once; 0 when data.* keys are swept */
    cnn_config_t *tcfg;       /* scratch: the trial's config */
    char dir[CNN_PATH_MAX], journal[CNN_PATH_MAX + 32], header[128];
    sweep_journal_t j;        /* rank 0 */
    sweep_plan_t plan;        /* rank 0, recomputed from the journal */
    int *pending;             /* (n) the trials a round runs */
    int nrun, nskipped;
} sweep_t;

/* ------------------------------------------------------------------ */
/* resume.c                                                            */

/* Rank 0, new sweep: DIR/sweep.ini, the resolved config the sweep starts
 * with, written atomically. */
cnn_status_t sweep_config_save(const sweep_t *s);

/* Rank 0, --resume of a journal whose header does not match this grid:
 * if DIR/sweep.ini, resolved again by this version, equals this config,
 * the journal was written by a version that lacked some of this version's
 * keys; the grid's hashes and the header are recomputed without those
 * keys (as that version computed them) into s->grid->hash and s->header.
 * *matched is 1 then, else 0 (no sweep.ini, or a different config). */
cnn_status_t sweep_config_match_older(sweep_t *s, int *matched);

/* ------------------------------------------------------------------ */
/* report.c                                                            */

/* Rank 0: the final ranking (into s->plan.order), sweep.csv and
 * best/model.h5; counts in res. best[0] = the best trial or -1, best[1] =
 * the status of the first failed trial (0 if none). */
cnn_status_t sweep_write_results(sweep_t *s, cnn_sweep_result_t *res, int best[2]);

/* Every rank of s->comm: the best trial's model on the test set. */
cnn_status_t sweep_score_best(sweep_t *s, int best, cnn_sweep_result_t *res);

/* Rank 0: the ranked table and the summary lines. */
void sweep_print_summary(const sweep_t *s, const cnn_sweep_result_t *res);

#endif
