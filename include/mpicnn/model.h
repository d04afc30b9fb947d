/* model.h - the model file: a trained net and what is needed to use it.
 *
 * A model file is HDF5, laid out as docs/model-format.md describes: the
 * resolved config text, the input shape, class names, the normalisation,
 * one group per layer with parameters or state (PyTorch layouts: conv
 * weight (K,C,KH,KW), dense weight (M,D), batchnorm weight/bias/
 * running_mean/running_var) and the training history. It is written
 * atomically (temp file, fsync, rename) and read with every dataset,
 * shape and value checked.
 *
 * Loading is two steps: cnn_model_load_meta() gives the config text, from
 * which the caller builds the net (cnn_config_parse_string(),
 * cnn_net_create()); cnn_model_load_weights() then fills it. */
#ifndef MPICNN_MODEL_H
#define MPICNN_MODEL_H

#include "mpicnn/h5io.h"
#include "mpicnn/net.h"
#include "mpicnn/status.h"

#define CNN_MODEL_FORMAT "mpicnn-model"
/* 2: the layers form a graph (the config's input/inputs; each layer
 * group's `inputs` attribute). Version 1 files (chains) are read too. */
#define CNN_MODEL_FORMAT_VERSION 2

/* Columns of the training history, in this order (as in metrics.csv). */
#define CNN_HISTORY_COLS 8
/* "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
 * "seconds", "images_per_second". Static. */
extern const char *const cnn_history_cols[CNN_HISTORY_COLS];

/* Most history rows a reader accepts (refused before allocating). */
#define CNN_HISTORY_MAX 1000000

/* Everything in a model file except the weights. All pointers are owned
 * by the struct: free them with cnn_model_meta_free(). */
typedef struct {
    char *config;         /* resolved INI text, or NULL */
    int c, h, w;          /* input image shape */
    int nclasses;         /* 0 if unknown */
    char **class_names;   /* (nclasses) strings, or NULL */
    float *mean, *std;    /* (c) each, or both NULL */
    int nhistory;         /* rows of history */
    double *history;      /* (nhistory, CNN_HISTORY_COLS) row-major, or NULL */
    /* How the training images were made, as the data file they came from
     * says (root attributes resize "HxW" or "none", fit "stretch" or
     * "crop", channels "1" or "3"); each NULL when absent (IDX, CIFAR). */
    char *resize, *fit, *channels;
} cnn_model_meta_t;

/* Frees the members of m and zeroes them; does not free m. NULL is a
 * no-op. */
void cnn_model_meta_free(cnn_model_meta_t *m);

/* Writes net (its params and state) and meta to `path` atomically. meta
 * may be NULL (no config, names, normalisation or history); meta->c/h/w
 * are ignored (the net's input shape is written); class_names, if given,
 * must have net->output.c entries; mean/std have net->input.c entries.
 * Refuses with CNN_ENUMERIC (nothing written, an existing file intact) if
 * a parameter or state value is not finite; CNN_EIO if writing fails
 * (the existing file is intact). Borrows everything. */
cnn_status_t cnn_model_save(const char *path, const cnn_net_t *net,
                            const cnn_model_meta_t *meta);

/* Reads everything but the weights into *meta (zeroed first; on failure
 * it holds nothing to free). Checks the format attribute and version.
 * CNN_EDATA naming the file and object on anything malformed. */
cnn_status_t cnn_model_load_meta(const char *path, cnn_model_meta_t *meta);

/* Loads the params and state of `path` into net, which must have been
 * built from the file's config: the input shape must match and every
 * layer with parameters or state must have its group with exactly the
 * expected datasets and shapes, finite values, and no extra groups or
 * datasets. CNN_EDATA otherwise, naming the file, the dataset and what
 * was expected vs found; the net is then left unchanged. */
cnn_status_t cnn_model_load_weights(const char *path, cnn_net_t *net);

/* The params and state of `path`, with the checks of
 * cnn_model_load_weights(), into double arenas laid out as net's
 * (net->nparams and net->nstate doubles; net's own arenas are not
 * touched): float64 datasets keep their full precision, float32 ones are
 * widened. On failure the arenas may be partly written. */
cnn_status_t cnn_model_load_weights64(const char *path, const cnn_net_t *net, double *params,
                                      double *state);

/* Writes the layer groups of net under `prefix` ("/layers" in a model,
 * e.g. "/best/layers" in a checkpoint): the prefix group gets attributes
 * `order` and `types` (every layer's name and type, in order), and each
 * layer with parameters or state a group `prefix/<name>` with attributes
 * `type`, `index` and its datasets. params (net->nparams floats) and
 * state (net->nstate) default to the net's arenas when NULL, so weights
 * kept elsewhere in the same layout are written by the same code.
 * CNN_ENUMERIC (before writing anything) if a value is not finite. */
cnn_status_t cnn_model_write_layers(cnn_h5w_t *w, const char *prefix,
                                    const cnn_net_t *net, const float *params,
                                    const float *state);

/* Reads the layer groups under `prefix` into params and state (net's
 * arenas when NULL), with the checks of cnn_model_load_weights().
 * path_for_msgs names the file in messages (NULL: the reader's path). On
 * failure the arenas may be partly overwritten: read into scratch arenas
 * if that matters. */
cnn_status_t cnn_model_read_layers(cnn_h5r_t *r, const char *path_for_msgs,
                                   const char *prefix, cnn_net_t *net,
                                   float *params, float *state);

/* Writes nrows rows of history (nrows x CNN_HISTORY_COLS, row-major) as
 * one float64 dataset per column, `prefix/<column>` (prefix e.g.
 * "/history"). Nothing is written when nrows is 0. */
cnn_status_t cnn_model_write_history(cnn_h5w_t *w, const char *prefix,
                                     int nrows, const double *history);

/* Reads the history under `prefix`: every column must be present with the
 * same length (at most CNN_HISTORY_MAX). A missing prefix group gives 0
 * rows and NULL. *history is malloc'd (caller frees). */
cnn_status_t cnn_model_read_history(cnn_h5r_t *r, const char *prefix,
                                    int *nrows, double **history);

#endif
