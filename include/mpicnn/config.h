/* config.h - the trainer's INI configuration: parse, override, print.
 *
 * A config file has the sections [data], [net], [optimizer], [train],
 * [augment], [early_stopping], [checkpoint] and [sweep], plus one section per layer
 * named in [net] layers. Every key is typed and range-checked; an unknown
 * section or key, a missing required key, a bad value or a duplicate key
 * is an error (CNN_ECONFIG) whose message reads
 *     FILE:LINE: [section] key: what was wrong (expected ...)
 * or, for a command-line override,
 *     --set section.key: [section] key: what was wrong (expected ...)
 * Nothing falls back silently. docs/config.md lists every key.
 *
 * cnn_config_t is plain data (no pointers): copy it with `=` or memcpy.
 * It is large (about 200 KB), so keep it on the heap rather than on a
 * thread's stack. */
#ifndef MPICNN_CONFIG_H
#define MPICNN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/layer.h"
#include "mpicnn/status.h"

#define CNN_MAX_LAYERS 256
#define CNN_PATH_MAX 4096
#define CNN_MAX_FILES 16        /* data.train_files / data.test_files */
#define CNN_MAX_CLASSES 100     /* data.classes */
#define CNN_MAX_SWEEP 32        /* section.key entries in [sweep] */
#define CNN_SWEEP_KEY_MAX 128
#define CNN_SWEEP_VALUES_MAX 1024
#define CNN_MAX_MILESTONES 64   /* optimizer.milestones */
#define CNN_MILESTONE_MAX 16    /* characters of one milestone, with the NUL */

typedef enum {
    CNN_FORMAT_UNSET = 0, /* only in cnn_config_defaults(); a load sets it */
    CNN_FORMAT_IDX,
    CNN_FORMAT_CIFAR10,
    CNN_FORMAT_CIFAR100,
    CNN_FORMAT_HDF5       /* a data file written by mpicnn pack */
} cnn_data_format_t;

/* data.load: where the training images live while a run trains. */
typedef enum {
    CNN_LOAD_MEMORY, /* every rank holds the whole training set */
    CNN_LOAD_SHARD,  /* each rank holds the images of its slice of the epoch */
    CNN_LOAD_STREAM  /* a thread per rank reads ahead into a bounded ring */
} cnn_data_load_t;

typedef enum { CNN_LABELS_FINE, CNN_LABELS_COARSE } cnn_cifar_labels_t;

typedef enum {
    CNN_CLASSNAMES_NONE,
    CNN_CLASSNAMES_FASHION_MNIST,
    CNN_CLASSNAMES_MNIST,
    CNN_CLASSNAMES_CIFAR10,
    CNN_CLASSNAMES_CIFAR100_FINE,
    CNN_CLASSNAMES_CIFAR100_COARSE,
    CNN_CLASSNAMES_FILE             /* format = hdf5: the file's /classes */
} cnn_class_names_t;

/* The order is that of cnn_optim_kind_t (optim.h). */
typedef enum {
    CNN_OPT_SGD, CNN_OPT_MOMENTUM, CNN_OPT_NESTEROV, CNN_OPT_ADAM, CNN_OPT_ADAMW, CNN_OPT_LARS
} cnn_opt_kind_t;
typedef enum {
    CNN_LR_CONSTANT, CNN_LR_STEP, CNN_LR_EXPONENTIAL, CNN_LR_COSINE, CNN_LR_MULTISTEP
} cnn_lr_schedule_t;
typedef enum { CNN_LR_UNIT_EPOCHS, CNN_LR_UNIT_STEPS } cnn_lr_unit_t;
typedef enum { CNN_LR_SCALING_NONE, CNN_LR_SCALING_LINEAR } cnn_lr_scaling_t;
typedef enum { CNN_LOSS_SOFTMAX_CE, CNN_LOSS_HINGE } cnn_loss_kind_t;
typedef enum { CNN_NAN_STOP, CNN_NAN_SKIP } cnn_nan_policy_t;
typedef enum { CNN_METRIC_VAL_ACC, CNN_METRIC_VAL_LOSS } cnn_metric_t;
typedef enum { CNN_MODE_MAX, CNN_MODE_MIN } cnn_metric_mode_t;
typedef enum { CNN_SWEEP_GRID, CNN_SWEEP_HALVING } cnn_sweep_mode_t;

typedef struct {
    cnn_data_format_t format;
    char dir[CNN_PATH_MAX];          /* prefix for relative names; "" = cwd */
    /* format = idx (each may end in .gz); "" for the cifar formats */
    char train_images[CNN_PATH_MAX], train_labels[CNN_PATH_MAX];
    char test_images[CNN_PATH_MAX], test_labels[CNN_PATH_MAX];
    /* format = cifar10 / cifar100; ntrain_files = 0 for idx */
    char train_files[CNN_MAX_FILES][CNN_PATH_MAX];
    int ntrain_files;
    char test_files[CNN_MAX_FILES][CNN_PATH_MAX];
    int ntest_files;                 /* 0: no test set */
    /* format = hdf5 (mpicnn pack's DATA.h5); "" otherwise */
    char train_file[CNN_PATH_MAX], test_file[CNN_PATH_MAX];
    cnn_cifar_labels_t labels;       /* cifar100 only; fine otherwise */
    /* Class subset as written: names or decimal indices, trimmed. Names
     * are resolved against class_names by the data module. 0 = all. */
    char classes[CNN_MAX_CLASSES][CNN_NAME_MAX];
    int nclasses;
    cnn_class_names_t class_names;   /* resolved: never a "default" value */
    double validation;               /* count (integer) or fraction in (0,1) */
    int validation_is_fraction;      /* 0: validation is a count; 0 = none */
    int normalize;                   /* bool */
    cnn_data_load_t load;            /* memory, shard or stream */
    int cache_mb;                    /* stream: the ring buffer's bound, MiB */
} cnn_data_config_t;

/* [augment]: random changes to training images (never validation/test). */
typedef struct {
    int crop_pad;                    /* >= 0: pad by this many zero pixels, crop back */
    int flip;                        /* bool: horizontal flip with probability 1/2 */
    int cutout;                      /* >= 0: side of one zeroed square */
} cnn_augment_config_t;

typedef struct {
    cnn_opt_kind_t type;
    double lr;                       /* > 0: the initial learning rate */
    double momentum;                 /* momentum / nesterov, [0, 1) */
    double beta1, beta2, eps;        /* adam */
    double weight_decay;             /* L2, >= 0 */
    cnn_lr_schedule_t lr_schedule;
    double lr_decay;                 /* (0, 1] */
    long lr_decay_every;             /* >= 1, in lr_decay_unit */
    cnn_lr_unit_t lr_decay_unit;
    cnn_lr_scaling_t lr_scaling;     /* linear: lr times the ranks training the model */
    double lr_warmup_epochs;         /* >= 0: epochs over which the rate ramps up */
    double lr_warmup_start;          /* >= 0: the rate the warmup starts from, or
                                        CNN_LR_WARMUP_START_AUTO: lr (unscaled) */
    double lr_min;                   /* >= 0: cosine's final rate */
    /* multistep: the epochs at which the rate is multiplied by lr_decay,
     * increasing; as written (items) and as numbers (milestones) */
    char milestone_items[CNN_MAX_MILESTONES][CNN_MILESTONE_MAX];
    long milestones[CNN_MAX_MILESTONES];
    int nmilestones;
    double trust_coefficient;        /* lars: eta, > 0 */
} cnn_opt_config_t;

/* The value a number key stores for "auto" (the config parser writes one
 * value for every such key). */
#define CNN_CONFIG_AUTO (-1.0)

/* optimizer.lr_warmup_start = auto: the warmup starts from optimizer.lr. */
#define CNN_LR_WARMUP_START_AUTO CNN_CONFIG_AUTO

/* train.watchdog_seconds = auto (watchdog.h): a limit from the measured
 * step time and the size of each phase. */
#define CNN_WATCHDOG_AUTO CNN_CONFIG_AUTO

typedef struct {
    int epochs;                      /* 1..100000 */
    int batch_size;                  /* per rank, 1..65536 */
    uint64_t seed;
    cnn_loss_kind_t loss;
    int threads;                     /* 0 = OpenMP's default */
    long validate_every;             /* steps; 0 = once per epoch */
    long log_every;                  /* steps; 0 = never */
    cnn_nan_policy_t nan_policy;
    double watchdog_seconds;         /* seconds > 0, 0 = off, CNN_WATCHDOG_AUTO = auto */
    long max_memory_mb;              /* a rank's memory budget in MB; 0 = 80% of
                                        the node's limit over its ranks (memlimit.h) */
    double label_smoothing;          /* softmax_ce: [0, 1) */
    int report_l2;                   /* bool: the logged loss includes weight decay's L2 term */
} cnn_train_config_t;

typedef struct {
    int enabled;                     /* bool */
    cnn_metric_t metric;
    cnn_metric_mode_t mode;          /* resolved from metric if not given */
    int patience;                    /* >= 1 validations */
    double min_delta;                /* >= 0 */
} cnn_early_stop_config_t;

typedef struct {
    long every_steps;                /* 0 = off */
    double every_minutes;            /* 0 = off */
} cnn_checkpoint_config_t;

/* One swept key: key is "section.key" (a real, validated key), values the
 * comma list exactly as written (trimmed), each value already validated
 * against the key's type and range. The grid is not expanded here. */
typedef struct {
    char key[CNN_SWEEP_KEY_MAX];
    char values[CNN_SWEEP_VALUES_MAX];
} cnn_sweep_param_t;

typedef struct {
    cnn_sweep_mode_t mode;
    int ranks_per_trial;             /* >= 1 */
    int halving_epochs;              /* >= 1 */
    double halving_keep;             /* (0, 1) */
    cnn_sweep_param_t params[CNN_MAX_SWEEP];
    int nparams;
} cnn_sweep_config_t;

typedef struct {
    cnn_data_config_t data;
    /* [net] layers in order; each spec resolved (defaults filled in, keys
     * a type does not use are 0), ready for cnn_net_create(). */
    cnn_layer_spec_t layers[CNN_MAX_LAYERS];
    int nlayers;
    cnn_opt_config_t opt;
    cnn_train_config_t train;
    cnn_augment_config_t augment;
    cnn_early_stop_config_t early_stopping;
    cnn_checkpoint_config_t checkpoint;
    cnn_sweep_config_t sweep;
    char source[CNN_PATH_MAX];       /* the config's path, or the name given
                                        to cnn_config_parse_string() */
} cnn_config_t;

/* Sets every key to its default. Required keys without a default are left
 * empty: data.format = CNN_FORMAT_UNSET, no layers, opt.lr = 0,
 * train.epochs = 0. Such a config does not pass validation. */
void cnn_config_defaults(cnn_config_t *cfg);

/* Sets key k of a layer of type spec->type to its default (k->def; an
 * "=KEY" default takes the value of key KEY already in *spec), with the
 * checks a config value gets. CNN_ECONFIG if k is required or its default
 * is out of its range, CNN_EINTERNAL if "=KEY" names no key of the type.
 * Used for the keys a config section (or `mpicnn op`) leaves out. */
cnn_status_t cnn_config_layer_default(cnn_layer_spec_t *spec, const cnn_layer_key_t *k);

/* Sets key k of a layer to `value`, given as the config would spell it,
 * with the checks a config value gets (CNN_ECONFIG naming `where`, the
 * layer and the key). For `mpicnn op`'s flags. */
cnn_status_t cnn_config_layer_set(cnn_layer_spec_t *spec, const cnn_layer_key_t *k,
                                  const char *value, const char *where);

/* Reads and parses the config file `path`, then applies
 * overrides[0..noverrides-1] (each "section.key=value", later ones win)
 * and validates the result. On success fills *cfg and returns CNN_OK. On
 * failure returns CNN_ECONFIG with a message (an unreadable file names the
 * path and strerror) and leaves *cfg unchanged. `overrides` may be NULL
 * when noverrides is 0. Borrows every argument. */
cnn_status_t cnn_config_load(const char *path, const char *const *overrides,
                             int noverrides, cnn_config_t *cfg);

/* Same as cnn_config_load(), from the INI text `text` (a config stored in
 * a model file, or a test). `name` stands for the file in messages and is
 * copied into cfg->source. */
cnn_status_t cnn_config_parse_string(const char *text, const char *name,
                                     const char *const *overrides,
                                     int noverrides, cnn_config_t *cfg);

/* Applies one override "section.key=value" to an already loaded config.
 * This is exactly parsing cnn_config_to_string(cfg) with that override, so
 * cfg counts as fully resolved: a derived default (a pool's stride, the
 * early-stopping mode, data.class_names) keeps its resolved value when the
 * key it derives from changes. On failure returns CNN_ECONFIG (or
 * CNN_ENOMEM) and leaves *cfg unchanged. */
cnn_status_t cnn_config_set(cnn_config_t *cfg, const char *assignment);

/* The resolved config as INI text: every section and every key that
 * applies (defaults included) with its effective value, in a fixed order;
 * parsing it back under the same name gives an identical struct. Returns a
 * malloc'd string the caller frees, or NULL if out of memory. */
char *cnn_config_to_string(const cnn_config_t *cfg);

/* FNV-1a 64-bit hash of a string (of cnn_config_to_string()'s text). */
uint64_t cnn_config_hash(const char *resolved_text);

/* The learning rate of the step that follows `steps_done` optimizer steps,
 * after `epochs_done` epochs (a real number: completed epochs +
 * step_in_epoch / steps_per_epoch), of a model trained by `ranks` ranks
 * with `steps_per_epoch` steps an epoch. With L = lr times `ranks` when
 * opt.lr_scaling is linear (else L = lr), the schedule gives
 *   constant:    L
 *   step:        L * lr_decay ^ floor(t / lr_decay_every)
 *   exponential: L * lr_decay ^ (t / lr_decay_every)
 *   multistep:   L * lr_decay ^ (number of milestones <= epochs_done)
 *   cosine:      lr_min + (L - lr_min) * (1 + cos(pi * min(s / T, 1))) / 2
 * with t = epochs_done or steps_done as lr_decay_unit says, s =
 * steps_done and T = train.epochs * steps_per_epoch. Within the first
 * w = lr_warmup_epochs epochs (e = epochs_done < w) that rate is
 * multiplied by a + (1 - a) * e / w, a = lr_warmup_start / L (the start
 * defaulting to lr). docs/config.md gives the exact arithmetic. */
double cnn_config_lr(const cnn_config_t *cfg, double epochs_done, long steps_done,
                     long steps_per_epoch, int ranks);

/* Prints the effective value of "section.key" (e.g. "optimizer.lr",
 * "conv1.filters", "sweep.optimizer.lr") into buf[len], formatted as
 * cnn_config_to_string() would. Returns CNN_ECONFIG for a key that does
 * not exist or does not apply (a conv key of a relu layer, an idx file for
 * cifar data), CNN_EINTERNAL if buf is too small. */
cnn_status_t cnn_config_get_string(const cnn_config_t *cfg,
                                   const char *section_dot_key, char *buf,
                                   size_t len);

#endif
