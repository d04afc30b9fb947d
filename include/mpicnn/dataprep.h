/* dataprep.h - the data a run trains on, as the config describes it:
 * load the files of data.format, apply the class names and the class
 * subset, hold out the validation split, compute the normalisation on
 * the training split. Every rank calls it and gets the same result. */
#ifndef MPICNN_DATAPREP_H
#define MPICNN_DATAPREP_H

#include "mpicnn/config.h"
#include "mpicnn/data.h"
#include "mpicnn/source.h"

typedef struct {
    cnn_dataset_t *train; /* training split (owned) */
    cnn_dataset_t *val;   /* validation split, or NULL (owned) */
    cnn_dataset_t *test;  /* test set, or NULL (owned) */
    int c, h, w;          /* image shape */
    int nclasses;
    float mean[4], std[4];/* per channel, of train's pixels in [0,1]
                             (mean 0, std 1 when data.normalize is off) */
    /* data.load = shard or stream with format = hdf5: train holds the
     * labels and class names but no images (images NULL); training image
     * i is row train_rows[i] of train_file. NULL otherwise. */
    cnn_h5data_t *train_file;  /* (owned) */
    size_t *train_rows;        /* (train->n) (owned) */
    /* Evaluation sets: val and test hold images [*_lo, *_lo + n) of a set
     * of *_total images: all of it (lo 0) unless the set was read in
     * slices, one per rank (cnn_sampler_eval_range). */
    size_t val_lo, val_total, test_lo, test_total;
    int sliced;                /* 1: val and test are this rank's slices */
    /* format = hdf5: how the training file's images were made (empty
     * for other formats and for evaluation only) (owned) */
    cnn_h5data_recipe_t recipe;
} cnn_data_t;

/* Loads everything cfg->data names. On failure returns the loader's status
 * (CNN_EDATA naming the file, CNN_ECONFIG for a bad subset or split) and
 * leaves *d empty. Free with cnn_data_free(). `want_train` 0 skips the
 * training files (evaluation only needs the test set). */
cnn_status_t cnn_data_prepare(const cnn_config_t *cfg, int want_train, cnn_data_t *d);

/* As cnn_data_prepare(), for rank `rank` of `nranks`. With format = hdf5
 * and data.load = shard or stream the training images stay in the file
 * (train_file, train_rows), and the validation and test sets are read
 * only for this rank's evaluation slice; the normalisation is computed
 * by a pass over the file and equals what load = memory computes. In
 * every other case this is cnn_data_prepare(). */
cnn_status_t cnn_data_prepare_rank(const cnn_config_t *cfg, int want_train, int rank,
                                   int nranks, cnn_data_t *d);

void cnn_data_free(cnn_data_t *d);

/* The class-name table name for a config value ("fashion-mnist", ...), or
 * NULL for none. */
const char *cnn_data_class_set(cnn_class_names_t which);

#endif
