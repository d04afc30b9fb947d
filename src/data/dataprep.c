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
    case CNN_CLASSNAMES_FILE: /* the file's own names */
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
    if (dc->format == CNN_FORMAT_HDF5) {
        char path[JOINED_MAX];
        join(dc->dir, test ? dc->test_file : dc->train_file, path, sizeof path);
        return cnn_h5data_load(path, out);
    }
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

/* The class names data.class_names gives ds (the test set if test), then
 * the classes of the subset (idx[0..data.nclasses)). A label beyond the
 * names is an error naming the labels file. */
static cnn_status_t name_classes(const cnn_config_t *cfg, int test, cnn_dataset_t *ds, int *idx)
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
    for (int i = 0; i < dc->nclasses; i++) {
        idx[i] = cnn_dataset_class_index(ds, dc->classes[i]);
        if (idx[i] < 0)
            return cnn_error_set(CNN_ECONFIG,
                                 "%s: [data] classes: '%s' is neither a class name nor an index "
                                 "in [0, %d)", cfg->source, dc->classes[i], ds->nclasses);
    }
    return CNN_OK;
}

/* format = hdf5: how the training file's images were made, for the model. */
static cnn_status_t read_recipe(const cnn_config_t *cfg, cnn_data_t *d)
{
    if (cfg->data.format != CNN_FORMAT_HDF5) return CNN_OK;
    char path[JOINED_MAX];
    join(cfg->data.dir, cfg->data.train_file, path, sizeof path);
    return cnn_h5data_recipe_read(path, &d->recipe);
}

/* Class names, then the subset, on one loaded set (the test set if test). */
static cnn_status_t label(const cnn_config_t *cfg, int test, cnn_dataset_t *ds)
{
    int idx[CNN_MAX_CLASSES];
    CNN_TRY(name_classes(cfg, test, ds, idx));
    if (cfg->data.nclasses > 0) CNN_TRY(cnn_dataset_subset(ds, idx, cfg->data.nclasses));
    return CNN_OK;
}

void cnn_data_free(cnn_data_t *d)
{
    cnn_h5data_close(d->train_file);
    cnn_h5data_recipe_free(&d->recipe);
    free(d->train_rows);
    cnn_dataset_free(d->train);
    cnn_dataset_free(d->val);
    cnn_dataset_free(d->test);
    memset(d, 0, sizeof *d);
}

/* The images data.validation holds out of n. */
static cnn_status_t validation_count(const cnn_config_t *cfg, size_t n, size_t *nval)
{
    if (cfg->data.validation_is_fraction)
        *nval = (size_t)(cfg->data.validation * (double)n + 0.5);
    else
        *nval = (size_t)cfg->data.validation;
    if (*nval >= n)
        return cnn_error_set(CNN_ECONFIG, "%s: [data] validation: %zu images held out of %zu "
                             "leaves none to train on", cfg->source, *nval, n);
    return CNN_OK;
}

cnn_status_t cnn_data_prepare(const cnn_config_t *cfg, int want_train, cnn_data_t *d)
{
    cnn_status_t st;
    cnn_dataset_t *all = NULL;
    memset(d, 0, sizeof *d);
    const int has_test = cfg->data.format == CNN_FORMAT_IDX    ? cfg->data.test_images[0] != '\0'
                         : cfg->data.format == CNN_FORMAT_HDF5 ? cfg->data.test_file[0] != '\0'
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
        d->test_total = d->test->n;
        return CNN_OK;
    }
    if ((st = load_split(cfg, 0, &all)) != CNN_OK) goto fail;
    if ((st = read_recipe(cfg, d)) != CNN_OK) goto fail;
    if ((st = label(cfg, 0, all)) != CNN_OK) goto fail;
    if (d->test && (d->test->c != all->c || d->test->h != all->h || d->test->w != all->w)) {
        st = cnn_error_set(CNN_EDATA, "%s: the test images are %dx%dx%d but the training images %dx%dx%d",
                           cfg->source, d->test->c, d->test->h, d->test->w, all->c, all->h, all->w);
        goto fail;
    }
    size_t nval = 0;
    if ((st = validation_count(cfg, all->n, &nval)) != CNN_OK) goto fail;
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
    d->val_total = d->val ? d->val->n : 0;
    d->test_total = d->test ? d->test->n : 0;
    return CNN_OK;
fail:
    cnn_dataset_free(all);
    cnn_data_free(d);
    return st;
}

/* ---- data.load = shard / stream with format = hdf5 -------------------- */

/* A data set with the labels and class names of f and no images. */
static cnn_status_t label_only(const cnn_h5data_t *f, cnn_dataset_t **out)
{
    cnn_dataset_t *ds = calloc(1, sizeof *ds);
    *out = NULL;
    if (!ds || !(ds->labels = malloc(sizeof(int32_t) * (f->n + 1)))) {
        cnn_dataset_free(ds);
        return cnn_error_set(CNN_ENOMEM, "%s: out of memory", f->path);
    }
    ds->n = f->n;
    ds->c = f->c;
    ds->h = f->h;
    ds->w = f->w;
    memcpy(ds->labels, f->labels, sizeof(int32_t) * f->n);
    cnn_status_t st = cnn_dataset_set_class_names(ds, (const char *const *)f->class_names,
                                                  f->nclasses);
    if (st != CNN_OK) cnn_dataset_free(ds);
    else *out = ds;
    return st;
}

/* label() for a set without images: rows[0..ds->n) (the file rows) keeps
 * the rows of the images the class subset keeps, in order. */
static cnn_status_t label_rows(const cnn_config_t *cfg, int test, cnn_dataset_t *ds,
                               size_t *rows)
{
    int idx[CNN_MAX_CLASSES], map[CNN_MAX_CLASSES];
    const char *names[CNN_MAX_CLASSES];
    const int k = cfg->data.nclasses;
    CNN_TRY(name_classes(cfg, test, ds, idx));
    if (k == 0) return CNN_OK;
    if (ds->nclasses > CNN_MAX_CLASSES)
        return cnn_error_set(CNN_ECONFIG, "%s: [data] classes: a subset of %d classes is not "
                             "supported (at most %d)", cfg->source, ds->nclasses, CNN_MAX_CLASSES);
    for (int c = 0; c < ds->nclasses; c++) map[c] = -1;
    for (int j = 0; j < k; j++) {
        if (map[idx[j]] >= 0)
            return cnn_error_set(CNN_ECONFIG, "class subset: class %d (%s) is listed twice",
                                 idx[j], ds->class_names[idx[j]]);
        map[idx[j]] = j;
        names[j] = ds->class_names[idx[j]];
    }
    size_t o = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const int nl = map[ds->labels[i]];
        if (nl < 0) continue;
        rows[o] = rows[i];
        ds->labels[o++] = nl;
    }
    if (o == 0)
        return cnn_error_set(CNN_ECONFIG, "class subset: no image has any of the %d chosen "
                             "classes", k);
    ds->n = o;
    return cnn_dataset_set_class_names(ds, names, k);
}

/* A data set of images rows[lo..hi) of f (labels from lab, indexed like
 * rows), read with pread(). */
static cnn_status_t read_slice(const cnn_h5data_t *f, const cnn_dataset_t *lab,
                               const size_t *rows, size_t lo, size_t hi, cnn_dataset_t **out)
{
    const size_t n = hi - lo, isz = (size_t)f->c * f->h * f->w;
    cnn_dataset_t *ds = calloc(1, sizeof *ds);
    *out = NULL;
    if (!ds || !(ds->images = malloc(isz * (n + 1))) ||
        !(ds->labels = malloc(sizeof(int32_t) * (n + 1)))) {
        cnn_dataset_free(ds);
        return cnn_error_set(CNN_ENOMEM, "%s: out of memory", f->path);
    }
    ds->n = n;
    ds->c = f->c;
    ds->h = f->h;
    ds->w = f->w;
    for (size_t i = 0; i < n; i++) ds->labels[i] = lab->labels[lo + i];
    cnn_status_t st = cnn_h5data_read_rows(f, rows + lo, n, ds->images);
    if (st == CNN_OK)
        st = cnn_dataset_set_class_names(ds, (const char *const *)lab->class_names, lab->nclasses);
    if (st != CNN_OK) cnn_dataset_free(ds);
    else *out = ds;
    return st;
}

/* The test set's slice of this rank. */
static cnn_status_t test_slice(const cnn_config_t *cfg, int rank, int nranks, cnn_data_t *d)
{
    char path[JOINED_MAX];
    cnn_h5data_t *f = NULL;
    cnn_dataset_t *lab = NULL;
    size_t *rows = NULL, lo, hi;
    cnn_status_t st;
    join(cfg->data.dir, cfg->data.test_file, path, sizeof path);
    if ((st = cnn_h5data_open(path, &f)) != CNN_OK) goto done;
    if ((st = label_only(f, &lab)) != CNN_OK) goto done;
    if (!(rows = malloc(sizeof(size_t) * (f->n + 1)))) {
        st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < f->n; i++) rows[i] = i;
    if ((st = label_rows(cfg, 1, lab, rows)) != CNN_OK) goto done;
    cnn_sampler_eval_range(lab->n, rank, nranks, &lo, &hi);
    if ((st = read_slice(f, lab, rows, lo, hi, &d->test)) != CNN_OK) goto done;
    d->test->nclasses = lab->nclasses;
    d->test_lo = lo;
    d->test_total = lab->n;
done:
    free(rows);
    cnn_dataset_free(lab);
    cnn_h5data_close(f);
    return st;
}

/* The normalisation of the training images, read a block at a time. */
static cnn_status_t file_stats(cnn_data_t *d)
{
    enum { BLOCK = 1024 };
    const cnn_h5data_t *f = d->train_file;
    uint8_t *buf = malloc((size_t)f->c * f->h * f->w * BLOCK);
    cnn_stats_acc_t acc;
    cnn_status_t st = CNN_OK;
    if (!buf) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", f->path);
    cnn_stats_init(&acc);
    for (size_t i = 0; i < d->train->n && st == CNN_OK; i += BLOCK) {
        const size_t m = d->train->n - i < BLOCK ? d->train->n - i : BLOCK;
        st = cnn_h5data_read_rows(f, d->train_rows + i, m, buf);
        cnn_stats_add(&acc, buf, m, f->c, f->h, f->w);
    }
    free(buf);
    if (st == CNN_OK) cnn_stats_finish(&acc, f->c, f->h, f->w, d->mean, d->std);
    return st;
}

/* Training rows (kept in the file) and this rank's validation slice. */
static cnn_status_t train_rows(const cnn_config_t *cfg, int rank, int nranks, cnn_data_t *d)
{
    char path[JOINED_MAX];
    cnn_dataset_t *lab = NULL;
    size_t *rows = NULL, *vrows = NULL, nval = 0;
    int32_t *vlabels = NULL;
    uint8_t *isval = NULL;
    cnn_status_t st;
    join(cfg->data.dir, cfg->data.train_file, path, sizeof path);
    if ((st = cnn_h5data_open(path, &d->train_file)) != CNN_OK) goto done;
    cnn_h5data_t *f = d->train_file;
    if ((st = label_only(f, &lab)) != CNN_OK) goto done;
    /* the training split keeps its own labels: the file's are not needed */
    free(f->labels);
    f->labels = NULL;
    rows = malloc(sizeof(size_t) * (f->n + 1));
    if (!rows) goto nomem;
    for (size_t i = 0; i < f->n; i++) rows[i] = i;
    if ((st = label_rows(cfg, 0, lab, rows)) != CNN_OK) goto done;
    if ((st = validation_count(cfg, lab->n, &nval)) != CNN_OK) goto done;
    isval = malloc(lab->n + 1);
    vrows = malloc(sizeof(size_t) * (nval + 1));
    vlabels = malloc(sizeof(int32_t) * (nval + 1));
    if (!isval || !vrows || !vlabels) goto nomem;
    if ((st = cnn_dataset_split_mask(lab->n, nval, cfg->train.seed, isval)) != CNN_OK) goto done;
    /* both parts keep the file's order, as cnn_dataset_split() does */
    size_t it = 0, iv = 0;
    for (size_t i = 0; i < lab->n; i++) {
        if (isval[i]) {
            vrows[iv] = rows[i];
            vlabels[iv++] = lab->labels[i];
        } else {
            rows[it] = rows[i];
            lab->labels[it++] = lab->labels[i];
        }
    }
    if (nval > 0) {
        size_t lo, hi;
        cnn_sampler_eval_range(nval, rank, nranks, &lo, &hi);
        cnn_dataset_t vl = *lab;
        vl.labels = vlabels;
        if ((st = read_slice(f, &vl, vrows, lo, hi, &d->val)) != CNN_OK) goto done;
        d->val_lo = lo;
        d->val_total = nval;
    }
    lab->n -= nval;
    d->train = lab;
    d->train_rows = rows;
    lab = NULL;
    rows = NULL;
    goto done;
nomem:
    st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
done:
    free(rows);
    free(vrows);
    free(vlabels);
    free(isval);
    cnn_dataset_free(lab);
    return st;
}

cnn_status_t cnn_data_prepare_rank(const cnn_config_t *cfg, int want_train, int rank,
                                   int nranks, cnn_data_t *d)
{
    cnn_status_t st;
    if (cfg->data.format != CNN_FORMAT_HDF5 || cfg->data.load == CNN_LOAD_MEMORY || !want_train)
        return cnn_data_prepare(cfg, want_train, d);
    memset(d, 0, sizeof *d);
    if ((st = test_slice(cfg, rank, nranks, d)) != CNN_OK) goto fail;
    if ((st = train_rows(cfg, rank, nranks, d)) != CNN_OK) goto fail;
    if ((st = read_recipe(cfg, d)) != CNN_OK) goto fail;
    if (d->test->c != d->train->c || d->test->h != d->train->h || d->test->w != d->train->w) {
        st = cnn_error_set(CNN_EDATA, "%s: the test images are %dx%dx%d but the training images "
                           "%dx%dx%d", cfg->source, d->test->c, d->test->h, d->test->w,
                           d->train->c, d->train->h, d->train->w);
        goto fail;
    }
    d->c = d->train->c;
    d->h = d->train->h;
    d->w = d->train->w;
    d->nclasses = d->train->nclasses;
    if (d->test->nclasses > d->nclasses) d->nclasses = d->test->nclasses;
    for (int c = 0; c < d->c; c++) {
        d->mean[c] = 0.0f;
        d->std[c] = 1.0f;
    }
    if (cfg->data.normalize && (st = file_stats(d)) != CNN_OK) goto fail;
    d->sliced = 1;
    return CNN_OK;
fail:
    cnn_data_free(d);
    return st;
}
