/* source.h - where a training step's images come from.
 *
 * Two parts:
 *
 * The data file reader (cnn_h5data_*): a DATA.h5 written by `mpicnn pack`
 * (docs/data-format.md), opened and checked once. Opening reads the small
 * datasets (labels, class names) and the file offsets of the /images
 * chunks; afterwards cnn_h5data_read_rows() reads any images with plain
 * POSIX pread() calls and no HDF5 call at all, so a background thread may
 * use it while the main thread writes checkpoints through HDF5 (Debian's
 * HDF5 is not thread-safe).
 *
 * The batch source (cnn_source_*): "fill this rank's slice of step s of
 * epoch e" for the trainer, in one of three ways (data.load):
 *   memory  the training set is in memory (cnn_data_t.train->images);
 *   shard   at the start of an epoch, the images of every slice this rank
 *           trains on in that epoch (about N/P) are read into one buffer;
 *   stream  a thread reads, augments and normalises the coming batches of
 *           this rank into a ring of at most data.cache_mb MiB; the
 *           trainer pops them in order.
 * Every mode produces a batch by the same steps on the same uint8 pixels
 * (gather, cnn_augment_image(), cnn_images_to_floats()), so a step trains
 * on the same floats in every mode. The source owns the epoch sampler. No
 * source function calls MPI. */
#ifndef MPICNN_SOURCE_H
#define MPICNN_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/config.h"
#include "mpicnn/data.h"
#include "mpicnn/status.h"

/* ---- the data file reader -------------------------------------------- */

/* How a data file's images were made: its root string attributes
 * `resize` ("HxW" or "none"), `fit` ("stretch" or "crop") and `channels`
 * ("1" or "3") as `mpicnn pack` wrote them, each NULL when absent. A
 * model trained on the file records them, so that `predict` prepares an
 * image as pack did. The strings are owned. */
typedef struct {
    char *resize, *fit, *channels;
} cnn_h5data_recipe_t;

/* Reads the recipe of the data file `path` (only its root attributes;
 * *out zeroed first, and on failure holds nothing to free). Errors:
 * CNN_EDATA (the file cannot be opened, or an attribute is not a
 * string). Free with cnn_h5data_recipe_free(). */
cnn_status_t cnn_h5data_recipe_read(const char *path, cnn_h5data_recipe_t *out);

/* Frees the strings of r and zeroes them; NULL is a no-op. */
void cnn_h5data_recipe_free(cnn_h5data_recipe_t *r);

typedef struct cnn_h5data_priv cnn_h5data_priv_t;

typedef struct {
    char *path;              /* as opened (owned) */
    size_t n;                /* images */
    int c, h, w;             /* per-image shape */
    int32_t *labels;         /* (n), each in [0, nclasses) (owned; a caller may
                                take it and leave NULL) */
    int nclasses;
    char **class_names;      /* (nclasses) from /classes (owned) */
    cnn_h5data_priv_t *priv; /* HDF5 handles, file descriptor, chunk offsets */
} cnn_h5data_t;

/* Opens and checks the data file `path`: root attributes format =
 * "mpicnn-data" and format_version = 1, /images uint8 (N,C,H,W) with
 * 1 <= C <= 4, unfiltered, /labels int32 (N) each in [0, K), /classes K
 * strings. Errors: CNN_EDATA naming the file and the dataset (wrong
 * shape, type, a label out of range, N that disagrees, a missing
 * chunk); CNN_ENOMEM. *out is NULL on failure. Close with
 * cnn_h5data_close(). */
cnn_status_t cnn_h5data_open(const char *path, cnn_h5data_t **out);

/* Closes the file and frees f. NULL is a no-op. */
void cnn_h5data_close(cnn_h5data_t *f);

/* Reads images rows[0..n) (each < f->n) into out (n,c,h,w) with pread()
 * only: safe on any one thread while other threads use HDF5. Errors:
 * CNN_EDATA (a read error or a short file, naming the file). */
cnn_status_t cnn_h5data_read_rows(const cnn_h5data_t *f, const size_t *rows, size_t n,
                                  uint8_t *out);

/* Reads images [lo, lo + n) through HDF5 (main thread only). */
cnn_status_t cnn_h5data_read_range(const cnn_h5data_t *f, size_t lo, size_t n, uint8_t *out);

/* Loads the whole data file as a data set (data.load = memory): a new
 * data set with the file's images, labels and class names; free with
 * cnn_dataset_free(). Errors as cnn_h5data_open(). */
cnn_status_t cnn_h5data_load(const char *path, cnn_dataset_t **out);

/* ---- the batch source ------------------------------------------------ */

typedef struct cnn_source cnn_source_t;

/* What a source reads from: a data set in memory, or training image i is
 * row rows[i] of a data file. Borrowed: they must outlive the source. */
typedef struct {
    const cnn_dataset_t *train; /* labels (n) always; images unless file */
    const cnn_h5data_t *file;   /* NULL: images from train->images */
    const size_t *rows;         /* (train->n) file rows, with file */
    const float *mean, *std;    /* (c) normalisation, or NULL */
} cnn_source_data_t;

/* A source of this rank's batches: cfg->data.load, cfg->augment,
 * cfg->train.seed, batch_size x nranks images a global batch. Borrows
 * cfg and data. Errors: CNN_ENOMEM, CNN_ECONFIG (a bad rank), CNN_EINTERNAL
 * (a thread that cannot start). Free with cnn_source_free(). */
cnn_status_t cnn_source_create(const cnn_config_t *cfg, const cnn_source_data_t *data, int rank,
                               int nranks, cnn_source_t **out);

/* Stops the reader thread (if any) and frees s. NULL is a no-op. */
void cnn_source_free(cnn_source_t *s);

/* Steps per epoch (ceil(n / global batch)). */
size_t cnn_source_steps(const cnn_source_t *s);

/* This rank's slice of step `step` of epoch `epoch`, normalised and
 * augmented: x (n_local,c,h,w) and labels (n_local), both with room for
 * batch_size images; *n_global is the global batch. Steps are meant to
 * be asked for in order; another order is correct but costs a re-read
 * (shard: the epoch; stream: the thread restarts there). Errors: the
 * reader's (CNN_EDATA naming the file), CNN_ENOMEM. */
cnn_status_t cnn_source_batch(cnn_source_t *s, long epoch, size_t step, float *x,
                              int32_t *labels, int *n_local, int *n_global);

#endif
