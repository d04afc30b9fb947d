/* cli.h - subcommands and the small flag parser they share.
 *
 * Each subcommand returns a cnn_status_t; main() prints the recorded
 * message (naming the rank) and turns the status into the exit code. */
#ifndef MPICNN_CLI_H
#define MPICNN_CLI_H

#include <mpi.h>
#include <stdio.h>

#include "mpicnn.h"
#include "mpicnn/config.h"
#include "mpicnn/memlimit.h"
#include "mpicnn/model.h"
#include "mpicnn/rundir.h"

#define CLI_MAX_FLAGS 64

/* "--name value" pairs, and the positional arguments, in order. */
typedef struct {
    int nflags;
    const char *name[CLI_MAX_FLAGS];
    const char *value[CLI_MAX_FLAGS]; /* NULL for a bare switch */
    int used[CLI_MAX_FLAGS];
    int novalue;  /* 1 + index of a last flag given without its value, or 0 */
    int npos;
    const char *pos[CLI_MAX_FLAGS];
} cli_args_t;

/* Splits argv. `switches` lists the flags that take no value
 * (NULL-terminated, may be NULL). Repeated flags are kept in order. */
cnn_status_t cli_parse(int argc, char **argv, const char *const *switches,
                       cli_args_t *a);
/* Value of the last --name, or NULL. Marks it used. */
const char *cli_get(cli_args_t *a, const char *name);
/* Every value of a repeated --name, in order, into vals[0..max); returns
 * how many there were (which may exceed max). Marks them used. */
int cli_get_all(cli_args_t *a, const char *name, const char **vals, int max);
/* 1 if the switch was given. */
int cli_has(cli_args_t *a, const char *name);
/* Like cli_get but a missing flag is a usage error naming it. */
cnn_status_t cli_need(cli_args_t *a, const char *name, const char **out);
/* Usage error for any flag that no cli_get/cli_has asked for ("unknown
 * or unused flag"), then for a known flag given last without its value
 * ("needs a value"). */
cnn_status_t cli_check_unused(const cli_args_t *a);
/* Strict number parsing; errors name the flag. */
cnn_status_t cli_int(const char *flag, const char *s, long lo, long hi, long *out);
cnn_status_t cli_float(const char *flag, const char *s, double *out);
/* "2,3,4,4" -> dims; 1..maxd positive integers. */
cnn_status_t cli_dims(const char *flag, const char *s, int maxd, int *dims, int *nd);

/* Routes SIGUSR1, SIGTERM and SIGINT to cnn_train_request_stop(), and
 * makes a closed standard output (`mpicnn train ... | head`) drop the
 * terminal output with one note on stderr instead of killing the run
 * with SIGPIPE. */
void cli_install_stop_signals(void);

/* Loads a model file: its metadata, its config (with data.* overrides
 * applied), and a net built from it holding its weights, for max batch
 * `batch` (0: the config's batch size). Frees nothing on failure that it
 * did not allocate; free with cnn_model_meta_free / cnn_net_free. */
cnn_status_t cli_load_model(const char *path, const char *const *sets, int nsets, int batch,
                            cnn_model_meta_t *meta, cnn_config_t *cfg, cnn_net_t **net);

/* cli_load_model() that builds the net only when its memory plan fits in
 * `budget` (NULL: no budget), else CNN_ENOMEM with the plan per layer.
 * With a budget the net is for forward passes only (eval, predict:
 * cnn_net_plan_infer, activation buffers reused); without, as
 * cli_load_model, every layer's output is kept (cnn_net_layer_output). */
cnn_status_t cli_load_model_within(const char *path, const char *const *sets, int nsets,
                                   int batch, const cnn_membudget_t *budget,
                                   cnn_model_meta_t *meta, cnn_config_t *cfg, cnn_net_t **net);

/* The flag of every command that builds a net or holds a data set. */
#define CLI_MAX_MEMORY_USAGE                                                   \
    "  --max-memory MB: refuse (exit 8) before allocating when the memory plan\n"\
    "  needs more than MB per rank; default 80% of the node's limit (cgroup,\n"  \
    "  MemAvailable, Slurm) over the ranks on the node.\n"

/* Reads --max-memory MB (absent: 0, the automatic budget), then, on every
 * rank of comm (collective when it is absent), the budget it gives
 * (memlimit.h). CNN_EUSAGE for a value that is not 1..1e9. */
cnn_status_t cli_max_memory(cli_args_t *a, MPI_Comm comm, cnn_membudget_t *budget);

/* --dtype f32|f64 (default f32): *f64 = 1 for f64, the exact double-
 * precision mode of op, predict and gradcheck. CNN_EUSAGE for another
 * value. */
cnn_status_t cli_dtype(cli_args_t *a, int *f64);
#define CLI_DTYPE_USAGE                                                        \
    "  --dtype f64: compute everything in double precision, forward and\n"    \
    "  backward, from each layer's double reference (slow; for checks against\n"\
    "  float64 references); numbers are written with 17 significant digits.\n"

/* What `train` and `sweep` share: one CONFIG, --set overrides, --out DIR
 * (default runs/<config base name without .ini>), --resume,
 * --auto-resume, --force and --lock-wait SECONDS. */
typedef struct {
    const char *config;              /* borrowed from argv */
    const char *sets[CLI_MAX_FLAGS]; /* borrowed from argv */
    int nsets;
    char out[CNN_PATH_MAX];
    int resume;                      /* set by cli_rundir_open for --auto-resume */
    int auto_resume;                 /* resume if DIR holds a run, else start */
    int force;                       /* move an old run's files aside */
    double lock_wait;                /* seconds to wait for DIR's lock */
    int help;                        /* 1: --help was printed, nothing to run */
} cli_run_args_t;

/* Reads those flags of a (parsed) for subcommand `cmd`; prints `usage` on
 * comm's rank 0 for --help (r->help = 1) and to stderr with a usage error when
 * there is not exactly one CONFIG. The caller reads its own flags, then
 * calls cli_check_unused(a). CNN_EUSAGE for a wrong count, --out "", a
 * bad --lock-wait, or two of --resume, --auto-resume and --force. The
 * switches --resume, --auto-resume and --force must be in the list given
 * to cli_parse. */
cnn_status_t cli_run_args(cli_args_t *a, const char *cmd, const char *usage, MPI_Comm comm,
                          cli_run_args_t *r);

/* Installs the stop signals (cli_install_stop_signals: from here on a
 * stop signal is a request, in every phase), then loads r's CONFIG with
 * its --set overrides into *cfg, malloc'd (free() it; NULL on failure). */
cnn_status_t cli_run_config(const cli_run_args_t *r, cnn_config_t **cfg);

/* The run directory of `train` or `sweep` while the command runs
 * (include/mpicnn/rundir.h): its lock and status file, on rank 0. */
typedef struct {
    MPI_Comm comm;
    int rank;
    const char *dir;            /* borrowed: cli_run_args_t.out */
    cnn_rundir_lock_t *lock;    /* rank 0, while held */
} cli_rundir_t;

/* Collective. Rank 0 checks that a --resume directory exists (creating
 * it otherwise; outputs[0] is the file --resume needs, named in the
 * error), takes its lock (waiting up to r->lock_wait seconds), with
 * --auto-resume sets r->resume on every rank to whether DIR/outputs[0]
 * exists now,
 * refuses a directory holding any of outputs[0..noutputs) unless
 * --resume (--force moves outputs[0..nmove) aside), and writes "running"
 * to DIR/status; the other ranks wait, sleeping, and all agree on the
 * outcome. On failure nothing is held (CNN_EBUSY: another run holds
 * DIR). */
cnn_status_t cli_rundir_open(MPI_Comm comm, cli_run_args_t *r, const char *const *outputs,
                             int noutputs, int nmove, cli_rundir_t *rd);

/* Collective. Rank 0 writes how the command ended (st, and
 * cnn_error_message() for a failure) to DIR/status and releases the
 * lock. Returns st, or the status file's write error if st was CNN_OK;
 * the recorded message is st's. */
cnn_status_t cli_rundir_close(cli_rundir_t *rd, cnn_status_t st);

/* The subcommands, the one list of them, in the order `mpicnn --help`
 * gives: X(NAME, summary, collective), where collective 0 says that rank
 * 0 does the work and the other ranks wait. Subcommand NAME is
 * cnn_status_t cli_NAME(int argc, char **argv, MPI_Comm comm), argv[0]
 * its name (src/cli/NAME.c). */
#define CLI_COMMANDS(X)                                                                      \
    X(train, "train a net from a config file", 1)                                            \
    X(sweep, "grid search over [sweep] values on groups of ranks", 1)                        \
    X(eval, "score a model on a test set", 1)                                                \
    X(predict, "classify PNG or JPEG images, or IDX or CIFAR files, with a model", 1)        \
    X(pack, "convert an image folder, IDX or CIFAR files into one HDF5 data file", 1)        \
    X(export, "write a model as an ONNX model for ONNX Runtime", 0)                          \
    X(info, "describe a model or data file", 0)                                              \
    X(gradcheck, "check a config's gradients by finite differences", 0)                      \
    X(op, "run one layer forward/backward on CSV files", 0)                                  \
    X(knn, "k-nearest-neighbour baseline, or k-NN regions of 2-D points as a PNG", 1)        \
    X(filter, "filter a PNG image with a kernel through the conv layer", 0)                  \
    X(plot, "PNG pictures of a run: learning curves, filters, confusion, mistakes", 0)

#define CLI_DECLARE(name, summary, collective)                                               \
    cnn_status_t cli_##name(int argc, char **argv, MPI_Comm comm);
CLI_COMMANDS(CLI_DECLARE)
#undef CLI_DECLARE

#endif
