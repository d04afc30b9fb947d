/* dataprep.c - from [data] to train/val/test sets. */
#include "mpicnn/dataprep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cnn_data_class_set(cnn_class_names_t which)
{
    switch (which) {
    case CNN_CLASSNAMES_FASHION_MNIST: return "fashion-mnist";
    case CNN_CLASSNAMES_MNIST: return "mnist";
    case CNN_CLASSNAMES_CIFAR10: return "cifar10";
    case CNN_CLASSNAMES_CIFAR100_FINE: return "cifar100-fine";
    case CNN_CLASSNAMES_CIFAR100_COARSE: return "cifar100-coarse";
    case CNN_CLASSNAMES_NONE: break;
    }
    return NULL;
}

/* dir + name unless name is absolute or dir is empty */
#define JOINED_MAX (2 * CNN_PATH_MAX + 2)

static void join(const char *dir, const char *name, char *out, size_t len)
{
    if (!dir[0] || name[0] == '/') snprintf(out, len, "%s", name);
    else snprintf(out, len, "%s/%s", dir, name);
}

static cnn_status_t load_split(const cnn_config_t *cfg, int test, cnn_dataset_t **out)
{
    const cnn_data_config_t *dc = &cfg->data;
    const char *pp[CNN_MAX_FILES];
    if (dc->format == CNN_FORMAT_IDX) {
        char img[JOINED_MAX], lab[JOINED_MAX];
        join(dc->dir, test ? dc->test_images : dc->train_images, img, sizeof img);
        join(dc->dir, test ? dc->test_labels : dc->train_labels, lab, sizeof lab);
        return cnn_idx_load(img, lab, out);
    }
    int n = test ? dc->ntest_files : dc->ntrain_files;
    char(*paths)[JOINED_MAX] = malloc(sizeof(*paths) * CNN_MAX_FILES);
    if (!paths) return cnn_error_set(CNN_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        join(dc->dir, test ? dc->test_files[i] : dc->train_files[i], paths[i], JOINED_MAX);
        pp[i] = paths[i];
    }
    cnn_status_t st = cnn_cifar_load(pp, n, dc->format == CNN_FORMAT_CIFAR10 ? 10 : 100,
                                     dc->labels == CNN_LABELS_COARSE, out);
    free(paths);
    return st;
}

/* Class names, then the subset, on one loaded set (the test set if
 * test). A label beyond the names is an error naming the labels file. */
static cnn_status_t label(const cnn_config_t *cfg, int test, cnn_dataset_t *ds)
{
    const cnn_data_config_t *dc = &cfg->data;
    const char *set = cnn_data_class_set(dc->class_names);
    if (set) {
        int n;
        const char *const *names = cnn_class_names(set, &n);
        cnn_status_t st = cnn_dataset_set_class_names(ds, names, n);
        if (st == CNN_EDATA && dc->format == CNN_FORMAT_IDX) {
            char lab[JOINED_MAX];
            join(dc->dir, test ? dc->test_labels : dc->train_labels, lab, sizeof lab);
            cnn_error_prefix("%s ([data] class_names = %s)", lab, set);
        } else if (st == CNN_EDATA) {
            cnn_error_prefix("%s: the %s files ([data] class_names = %s)", cfg->source,
                             test ? "test" : "training", set);
        }
        CNN_TRY(st);
    }
    if (dc->nclasses > 0) {
        int idx[CNN_MAX_CLASSES];
        for (int i = 0; i < dc->nclasses; i++) {
            idx[i] = cnn_dataset_class_index(ds, dc->classes[i]);
            if (idx[i] < 0)
                return cnn_error_set(CNN_ECONFIG,
                                     "%s: [data] classes: '%s' is neither a class name nor an index "
                                     "in [0, %d)", cfg->source, dc->classes[i], ds->nclasses);
        }
        CNN_TRY(cnn_dataset_subset(ds, idx, dc->nclasses));
    }
    return CNN_OK;
}

void cnn_data_free(cnn_data_t *d)
{
    cnn_dataset_free(d->train);
    cnn_dataset_free(d->val);
    cnn_dataset_free(d->test);
    memset(d, 0, sizeof *d);
}

cnn_status_t cnn_data_prepare(const cnn_config_t *cfg, int want_train, cnn_data_t *d)
{
    cnn_status_t st;
    cnn_dataset_t *all = NULL;
    memset(d, 0, sizeof *d);
    const int has_test = cfg->data.format == CNN_FORMAT_IDX ? cfg->data.test_images[0] != '\0'
                                                            : cfg->data.ntest_files > 0;
    if (has_test) {
        if ((st = load_split(cfg, 1, &d->test)) != CNN_OK) goto fail;
        if ((st = label(cfg, 1, d->test)) != CNN_OK) goto fail;
    }
    if (!want_train) {
        if (!d->test) {
            st = cnn_error_set(CNN_ECONFIG, "%s: [data] names no test set", cfg->source);
            goto fail;
        }
        d->c = d->test->c;
        d->h = d->test->h;
        d->w = d->test->w;
        d->nclasses = d->test->nclasses;
        return CNN_OK;
    }
    if ((st = load_split(cfg, 0, &all)) != CNN_OK) goto fail;
    if ((st = label(cfg, 0, all)) != CNN_OK) goto fail;
    if (d->test && (d->test->c != all->c || d->test->h != all->h || d->test->w != all->w)) {
        st = cnn_error_set(CNN_EDATA, "%s: the test images are %dx%dx%d but the training images %dx%dx%d",
                           cfg->source, d->test->c, d->test->h, d->test->w, all->c, all->h, all->w);
        goto fail;
    }
    size_t nval = 0;
    if (cfg->data.validation_is_fraction)
        nval = (size_t)(cfg->data.validation * (double)all->n + 0.5);
    else
        nval = (size_t)cfg->data.validation;
    if (nval >= all->n) {
        st = cnn_error_set(CNN_ECONFIG, "%s: [data] validation: %zu images held out of %zu leaves none to train on",
                           cfg->source, nval, all->n);
        goto fail;
    }
    if (nval > 0) {
        if ((st = cnn_dataset_split(all, nval, cfg->train.seed, &d->train, &d->val)) != CNN_OK)
            goto fail;
        cnn_dataset_free(all);
    } else {
        d->train = all;
    }
    all = NULL;
    d->c = d->train->c;
    d->h = d->train->h;
    d->w = d->train->w;
    d->nclasses = d->train->nclasses;
    if (d->test && d->test->nclasses > d->nclasses) d->nclasses = d->test->nclasses;
    if (d->c > 4) {
        st = cnn_error_set(CNN_EDATA, "%s: %d channels; at most 4 are supported", cfg->source, d->c);
        goto fail;
    }
    for (int c = 0; c < d->c; c++) {
        d->mean[c] = 0.0f;
        d->std[c] = 1.0f;
    }
    if (cfg->data.normalize) cnn_dataset_channel_stats(d->train, d->mean, d->std);
    return CNN_OK;
fail:
    cnn_dataset_free(all);
    cnn_data_free(d);
    return st;
}
