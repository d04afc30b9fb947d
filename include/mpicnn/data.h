/* data.h - data sets in memory, their loaders, and the epoch sampler.
 *
 * A data set is n uint8 images of one shape (c,h,w) in CHW order plus one
 * int32 label per image and a name per class. The loaders read the IDX
 * format (MNIST, Fashion-MNIST; raw or gzip, told apart by the magic
 * bytes, not by the file name) and the CIFAR-10 / CIFAR-100 binary format.
 * Every check that can be made from a header or a file size is made before
 * the big allocation, so a corrupt or hostile file costs nothing. Failures
 * return CNN_EDATA with a message that names the file and says what was
 * found and what was expected.
 *
 * Images stay uint8 in memory (a quarter of the float size);
 * cnn_dataset_batch() converts the images of one batch to normalised
 * floats (n,c,h,w) for the network.
 *
 * The sampler makes one seeded permutation of the training set per epoch,
 * the same on every rank, cuts it into global batches and gives each rank
 * a contiguous, balanced slice of each batch. */
#ifndef MPICNN_DATA_H
#define MPICNN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/status.h"

/* Limits enforced by the IDX loader before it allocates. */
#define CNN_IDX_MAX_IMAGES 100000000u          /* images in one file */
#define CNN_IDX_MAX_PIXELS (4096u * 4096u)     /* h*w of one image */

typedef struct {
    size_t n;              /* images */
    int c, h, w;           /* per-image shape, CHW */
    uint8_t *images;       /* (n,c,h,w): image i at i*c*h*w (owned) */
    int32_t *labels;       /* (n) labels in [0, nclasses) (owned) */
    int nclasses;
    char **class_names;    /* (nclasses) strings (owned, each one too) */
} cnn_dataset_t;

/* Frees the data set and everything it owns. NULL is a no-op. */
void cnn_dataset_free(cnn_dataset_t *ds);

/* ---- loaders ---------------------------------------------------------- */

/* Loads an IDX pair: images (magic 0x00000803: unsigned bytes, 3 dims
 * n,h,w) and labels (magic 0x00000801: unsigned bytes, 1 dim n). Either
 * file may be gzip-compressed; that is detected from the 1f 8b magic, so
 * the file name does not matter. The result has c = 1,
 * nclasses = max label + 1 and class names "0", "1", ... .
 * Errors (CNN_EDATA, the message names the file): missing or unreadable
 * file, not IDX, wrong type or number of dimensions, a zero dimension or
 * one over the limits above, truncated body, trailing bytes, image and
 * label counts that differ, a corrupt gzip stream. CNN_ENOMEM if memory
 * runs out. On success *out is a new data set (free with
 * cnn_dataset_free()); on failure *out is NULL. labels_path may be NULL
 * (images to classify): every label is then 0. */
cnn_status_t cnn_idx_load(const char *images_path, const char *labels_path,
                          cnn_dataset_t **out);

/* As cnn_idx_load(), with the class names given: every label must be
 * < nnames (otherwise CNN_EDATA naming the labels file and the image),
 * nclasses = nnames and the names are copied. names NULL with nnames 0
 * behaves exactly like cnn_idx_load(); names NULL with nnames > 0, or
 * nnames < 0, is CNN_ECONFIG. */
cnn_status_t cnn_idx_load_named(const char *images_path,
                                const char *labels_path,
                                const char *const *names, int nnames,
                                cnn_dataset_t **out);

/* Loads CIFAR binary batches, concatenated in the order of paths[0..npaths).
 * variant 10: records of 1 label byte + 3072 pixel bytes (3x32x32, CHW),
 *   classes "cifar10".
 * variant 100: 2 label bytes (coarse, fine) + 3072 pixel bytes; coarse = 1
 *   keeps the 20 superclasses ("cifar100-coarse"), 0 the 100 fine labels
 *   ("cifar100-fine"). Both label bytes are checked.
 * Errors: CNN_ECONFIG for a variant other than 10 or 100 or npaths < 1;
 * CNN_EDATA (naming the file) for a missing, empty or unreadable file, a
 * size that is not a multiple of the record size, or a label out of range
 * (naming the record index in that file). Sizes are checked before
 * anything is allocated. On success *out is a new data set (free with
 * cnn_dataset_free()); on failure *out is NULL. */
cnn_status_t cnn_cifar_load(const char *const *paths, int npaths, int variant,
                            int coarse, cnn_dataset_t **out);

/* ---- class names ------------------------------------------------------ */

/* The class names of a known set: "fashion-mnist", "mnist", "cifar10",
 * "cifar100-fine", "cifar100-coarse" (the official names in label order).
 * Returns the static table and sets *n to its length (n may be NULL), or
 * returns NULL and leaves *n alone for an unknown set. Do not free. */
const char *const *cnn_class_names(const char *set, int *n);

/* Replaces ds->class_names with copies of names[0..n) and sets
 * ds->nclasses = n. Every label must be < n: a table longer than the
 * largest label + 1 is fine (the data just lacks the last classes).
 * Errors: CNN_EDATA if a label is >= n (ds is unchanged), CNN_ECONFIG if
 * n < 1 or a name is NULL, CNN_ENOMEM. */
cnn_status_t cnn_dataset_set_class_names(cnn_dataset_t *ds,
                                         const char *const *names, int n);

/* ---- operations on a data set ---------------------------------------- */

/* Keeps only the images whose label is in classes[0..k), in their order,
 * relabelled to the label's position in `classes`: {0 airplane, 2 bird}
 * makes airplane 0 and bird 1. The class names follow; nclasses = k.
 * Works in place (the buffers may shrink). Errors: CNN_ECONFIG for k < 1,
 * a class out of [0, nclasses), a duplicate class, or no image left; ds
 * is unchanged on error. */
cnn_status_t cnn_dataset_subset(cnn_dataset_t *ds, const int *classes, int k);

/* The class index named by `name_or_index`: a class name (exact, then
 * ignoring case) or a decimal index in [0, nclasses). -1 if it is
 * neither. */
int cnn_dataset_class_index(const cnn_dataset_t *ds, const char *name_or_index);

/* Splits ds into a training and a validation set. A permutation seeded by
 * `seed` picks nval images for validation; both outputs keep the original
 * relative order, are new data sets (copies, each with copies of the
 * class names; free both with cnn_dataset_free()) and ds is untouched. The
 * same (ds, nval, seed) always gives the same split. nval may be 0 (an
 * empty validation set, images and labels NULL). Errors: CNN_ECONFIG if
 * nval >= ds->n, CNN_ENOMEM; on error *train and *val are NULL. */
cnn_status_t cnn_dataset_split(const cnn_dataset_t *ds, size_t nval,
                               uint64_t seed, cnn_dataset_t **train,
                               cnn_dataset_t **val);

/* The images cnn_dataset_split() holds out of a set of n: isval (n bytes)
 * gets 1 for them, 0 for the others. Errors: CNN_ECONFIG if nval >= n,
 * CNN_ENOMEM. */
cnn_status_t cnn_dataset_split_mask(size_t n, size_t nval, uint64_t seed, uint8_t *isval);

/* Per-channel mean and standard deviation (population) of the pixel values
 * scaled to [0,1], over all images. mean and std have ds->c entries. The
 * result does not depend on the thread count. The std of a constant
 * channel (or of an empty set) is reported as 1 so that it can be divided
 * by; the mean of an empty set is 0. */
void cnn_dataset_channel_stats(const cnn_dataset_t *ds, float *mean,
                               float *std);

/* cnn_dataset_channel_stats() over images seen a few at a time: exact
 * integer sums, so any order of cnn_stats_add() calls gives the same
 * result, equal to cnn_dataset_channel_stats() on all the images. At most
 * 4 channels. */
typedef struct {
    uint64_t s1[4], s2[4]; /* per channel: sum of pixels, of squares */
    int lo[4], hi[4];      /* per channel: smallest, largest pixel */
    size_t n;              /* images added */
} cnn_stats_acc_t;

void cnn_stats_init(cnn_stats_acc_t *a);
/* Adds n images (n,c,h,w). */
void cnn_stats_add(cnn_stats_acc_t *a, const uint8_t *images, size_t n, int c, int h, int w);
/* mean and std (c entries) as cnn_dataset_channel_stats() gives them. */
void cnn_stats_finish(const cnn_stats_acc_t *a, int c, int h, int w, float *mean, float *std);

/* Converts n images stored one after the other (n,c,h,w) into floats x
 * (n,c,h,w) with exactly cnn_dataset_batch()'s arithmetic. One thread. */
void cnn_images_to_floats(const uint8_t *images, int n, int c, int h, int w, const float *mean,
                          const float *std, float *x);

/* Converts the images idx[0..n) (each < ds->n) into floats.
 * x is (n, c, h, w): x = (pixel/255 - mean[ch]) / std[ch], or pixel/255
 * if mean and std are NULL. labels (n) gets their labels unless it is
 * NULL. The caller owns x and labels. */
void cnn_dataset_batch(const cnn_dataset_t *ds, const size_t *idx, int n,
                       const float *mean, const float *std, float *x,
                       int32_t *labels);

/* ---- sampler ---------------------------------------------------------- */

/* One permutation of [0, n) per epoch, depending only on (seed, epoch),
 * hence identical on every rank. Step s of an epoch is the global batch
 * perm[s*batch, min((s+1)*batch, n)); each rank takes a contiguous,
 * balanced slice of it. */
typedef struct {
    size_t n;            /* data set size */
    int batch;           /* GLOBAL batch size (sum over ranks) */
    int rank, nranks;
    uint64_t seed;
    int shuffle;         /* 0: identity order (for evaluation) */
    size_t *perm;        /* (n) indices of the current epoch (owned) */
    long epoch;          /* epoch of perm, -1 before the first */
} cnn_sampler_t;

/* Creates a sampler over [0, n) with perm = identity and epoch -1; call
 * cnn_sampler_set_epoch() before each epoch. Errors: CNN_ECONFIG for
 * global_batch < 1, nranks < 1 or rank outside [0, nranks); CNN_ENOMEM.
 * Free with cnn_sampler_free(); *out is NULL on error. */
cnn_status_t cnn_sampler_create(size_t n, int global_batch, int rank,
                                int nranks, uint64_t seed, int shuffle,
                                cnn_sampler_t **out);

/* Frees the sampler and its permutation. NULL is a no-op. */
void cnn_sampler_free(cnn_sampler_t *s);

/* Makes perm the permutation of `epoch` (Fisher-Yates driven by a
 * splitmix64 stream seeded from (seed, epoch)); identity if !shuffle.
 * Calling it again with the same epoch gives the same perm. */
void cnn_sampler_set_epoch(cnn_sampler_t *s, long epoch);

/* Steps per epoch: ceil(n / batch). The last batch may be partial; it is
 * never dropped. */
size_t cnn_sampler_steps(const cnn_sampler_t *s);

/* The indices of this rank for step `step` of the current epoch. The
 * global batch has *n_global = min(batch, n - step*batch) images; this
 * rank gets its slice [lo, hi) with lo = g*rank/nranks,
 * hi = g*(rank+1)/nranks (g = *n_global), so *n_local = hi - lo. The slice
 * may be empty (a small last batch, or batch < nranks): the caller must
 * still join the collectives of the step. Returns a pointer into perm,
 * owned by the sampler and valid until the next set_epoch or free. A step
 * >= cnn_sampler_steps() gives *n_global = *n_local = 0. */
const size_t *cnn_sampler_slice(const cnn_sampler_t *s, size_t step,
                                int *n_local, int *n_global);

/* The contiguous, balanced evaluation shard [*lo, *hi) of [0, n) for
 * `rank` of `nranks`: lo = n*rank/nranks, hi = n*(rank+1)/nranks. */
void cnn_sampler_eval_range(size_t n, int rank, int nranks, size_t *lo,
                            size_t *hi);

#endif
