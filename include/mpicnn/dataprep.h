/* dataprep.h - the data a run trains on, as the config describes it:
 * load the files of data.format, apply the class names and the class
 * subset, hold out the validation split, compute the normalisation on
 * the training split. Every rank calls it and gets the same result. */
#ifndef MPICNN_DATAPREP_H
#define MPICNN_DATAPREP_H

#include "mpicnn/config.h"
#include "mpicnn/data.h"

typedef struct {
    cnn_dataset_t *train; /* training split (owned) */
    cnn_dataset_t *val;   /* validation split, or NULL (owned) */
    cnn_dataset_t *test;  /* test set, or NULL (owned) */
    int c, h, w;          /* image shape */
    int nclasses;
    float mean[4], std[4];/* per channel, of train's pixels in [0,1]
                             (mean 0, std 1 when data.normalize is off) */
} cnn_data_t;

/* Loads everything cfg->data names. On failure returns the loader's status
 * (CNN_EDATA naming the file, CNN_ECONFIG for a bad subset or split) and
 * leaves *d empty. Free with cnn_data_free(). `want_train` 0 skips the
 * training files (evaluation only needs the test set). */
cnn_status_t cnn_data_prepare(const cnn_config_t *cfg, int want_train, cnn_data_t *d);

void cnn_data_free(cnn_data_t *d);

/* The class-name table name for a config value ("fashion-mnist", ...), or
 * NULL for none. */
const char *cnn_data_class_set(cnn_class_names_t which);

#endif
