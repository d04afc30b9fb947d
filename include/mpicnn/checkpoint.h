/* checkpoint.h - the complete training state in one HDF5 file, so that a
 * resumed run continues bit for bit where the interrupted one stopped.
 *
 * Layout (docs/slurm.md, "What a checkpoint holds"): the model layout of
 * the current weights and batchnorm statistics under /layers, plus
 * /best/layers (the early-stopping best weights), /optimizer (kind, step
 * count t, moment arenas m and v), /train/counters and /train/values
 * (the fields of cnn_train_state_fields, train_state.h, in its order and
 * named by a "names" attribute), /train/history (the metrics rows), and
 * the attributes format, format_version, world_size, threads,
 * grad_sum_ranks_per_node, config and config_hash_hex on "/".
 *
 * Randomness needs no state of its own. Shuffling derives from (seed,
 * epoch), so the sampler's position is (epoch, step); dropout masks derive
 * from (seed, rank, global step, layer, element); the initial weights from
 * the seed. The learning rate is a function of (epoch, step, global step).
 * Timing fields (epoch_seconds, the history's seconds) never feed back into
 * the weights. Written atomically by rank 0 (h5io.h), at step boundaries
 * only. */
#ifndef MPICNN_CHECKPOINT_H
#define MPICNN_CHECKPOINT_H

#include "mpicnn/config.h"
#include "mpicnn/model.h"
#include "mpicnn/net.h"
#include "mpicnn/optim.h"
#include "mpicnn/train_state.h"

typedef struct {
    const cnn_net_t *net;         /* current weights and state */
    const cnn_optim_t *opt;
    const cnn_train_state_t *ts;
    const float *best_params;     /* (net->nparams) or NULL if !ts->has_best */
    const float *best_state;      /* (net->nstate) */
    const cnn_model_meta_t *meta; /* config text, classes, normalisation */
    int world_size;
    int threads;
    int sum_ranks_per_node; /* the gradient sum's shared-memory level: ranks
                               per node (cnn_dist_gsum_ranks_per_node); 1
                               for MPI_Allreduce alone */
} cnn_checkpoint_t;

/* Writes the checkpoint atomically (temp file, fsync, rename, fsync dir).
 * Refuses non-finite weights (CNN_ENUMERIC) and leaves an existing file
 * intact on any failure (CNN_EIO names the path). For tests,
 * MPICNN_FAULT=ckpt_kill[@STEP] kills the process with SIGKILL after the
 * temporary file is written and before the rename (the first checkpoint
 * at global step >= STEP). */
cnn_status_t cnn_checkpoint_save(const char *path, const cnn_checkpoint_t *ck);

/* Reads a checkpoint into net, opt, ts, best_params, best_state (arrays
 * the caller owns, sized for net) and, unless they are NULL, *threads (the
 * OpenMP thread count of the run that wrote it: a different count gives a
 * valid but not bitwise identical continuation) and *sum_ranks_per_node
 * (its gradient sum's ranks per node, 1 for MPI_Allreduce alone; read as
 * 1 when the checkpoint does not record it; with 3 or more ranks a
 * different value sums in another order). A recorded value outside
 * 1..world size is CNN_EDATA. ts->history is replaced
 * (ts owns the new array). Before touching anything it checks that the
 * checkpoint was made by the same config (after the documented safe
 * changes; see cnn_checkpoint_compatible), world size and optimizer, and
 * refuses otherwise with CNN_ECONFIG saying what differs. A file of
 * another format version is CNN_EDATA. */
cnn_status_t cnn_checkpoint_load(const char *path, const cnn_config_t *cfg, int world_size,
                                 cnn_net_t *net, cnn_optim_t *opt, cnn_train_state_t *ts,
                                 float *best_params, float *best_state, int *threads,
                                 int *sum_ranks_per_node);

/* Compares a checkpoint's config with this run's. A key the saved text
 * lacks (one added to mpicnn after the checkpoint was written) counts as
 * its default: the saved text is parsed and resolved before the
 * comparison. Keys that may change on resume: train.epochs,
 * train.log_every, train.threads, train.watchdog_seconds,
 * early_stopping.patience, checkpoint.*. Any other difference is
 * CNN_ECONFIG naming the key and both values. */
cnn_status_t cnn_checkpoint_compatible(const char *path, const char *saved_config,
                                       const cnn_config_t *cfg);

#endif
