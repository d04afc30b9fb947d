/* dataset.c - class-name tables and operations on a loaded data set:
 * subset/relabel, split, channel statistics and batch conversion. */
#include "mpicnn/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mpicnn/rng.h"

/* ---- class-name tables (label order of the official releases) ---------- */

static const char *const fashion_mnist_names[] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static const char *const mnist_names[] = {"0", "1", "2", "3", "4",
                                          "5", "6", "7", "8", "9"};

static const char *const cifar10_names[] = {
    "airplane", "automobile", "bird", "cat",  "deer",
    "dog",      "frog",       "horse", "ship", "truck"};

static const char *const cifar100_fine_names[] = {
    "apple",        "aquarium_fish", "baby",         "bear",
    "beaver",       "bed",           "bee",          "beetle",
    "bicycle",      "bottle",        "bowl",         "boy",
    "bridge",       "bus",           "butterfly",    "camel",
    "can",          "castle",        "caterpillar",  "cattle",
    "chair",        "chimpanzee",    "clock",        "cloud",
    "cockroach",    "couch",         "crab",         "crocodile",
    "cup",          "dinosaur",      "dolphin",      "elephant",
    "flatfish",     "forest",        "fox",          "girl",
    "hamster",      "house",         "kangaroo",     "keyboard",
    "lamp",         "lawn_mower",    "leopard",      "lion",
    "lizard",       "lobster",       "man",          "maple_tree",
    "motorcycle",   "mountain",      "mouse",        "mushroom",
    "oak_tree",     "orange",        "orchid",       "otter",
    "palm_tree",    "pear",          "pickup_truck", "pine_tree",
    "plain",        "plate",         "poppy",        "porcupine",
    "possum",       "rabbit",        "raccoon",      "ray",
    "road",         "rocket",        "rose",         "sea",
    "seal",         "shark",         "shrew",        "skunk",
    "skyscraper",   "snail",         "snake",        "spider",
    "squirrel",     "streetcar",     "sunflower",    "sweet_pepper",
    "table",        "tank",          "telephone",    "television",
    "tiger",        "tractor",       "train",        "trout",
    "tulip",        "turtle",        "wardrobe",     "whale",
    "willow_tree",  "wolf",          "woman",        "worm"};

static const char *const cifar100_coarse_names[] = {
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct {
    const char *set;
    const char *const *names;
    int n;
} tables[] = {
    {"fashion-mnist", fashion_mnist_names, COUNT(fashion_mnist_names)},
    {"mnist", mnist_names, COUNT(mnist_names)},
    {"cifar10", cifar10_names, COUNT(cifar10_names)},
    {"cifar100-fine", cifar100_fine_names, COUNT(cifar100_fine_names)},
    {"cifar100-coarse", cifar100_coarse_names, COUNT(cifar100_coarse_names)},
};

const char *const *cnn_class_names(const char *set, int *n)
{
    if (!set) return NULL;
    for (int i = 0; i < COUNT(tables); i++) {
        if (strcmp(set, tables[i].set) == 0) {
            if (n) *n = tables[i].n;
            return tables[i].names;
        }
    }
    return NULL;
}

/* ---- lifetime and names ------------------------------------------------ */

static void free_names(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

void cnn_dataset_free(cnn_dataset_t *ds)
{
    if (!ds) return;
    free(ds->images);
    free(ds->labels);
    free_names(ds->class_names, ds->nclasses);
    free(ds);
}

/* New array of copies of names[0..n), or NULL when out of memory. */
static char **copy_names(const char *const *names, int n)
{
    char **c = calloc((size_t)n, sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < n; i++) {
        c[i] = strdup(names[i]);
        if (!c[i]) {
            free_names(c, i);
            return NULL;
        }
    }
    return c;
}

cnn_status_t cnn_dataset_set_class_names(cnn_dataset_t *ds,
                                         const char *const *names, int n)
{
    if (n < 1 || !names)
        return cnn_error_set(CNN_ECONFIG, "class names: %d given, need at least 1",
                             n);
    for (int i = 0; i < n; i++)
        if (!names[i])
            return cnn_error_set(CNN_ECONFIG, "class names: name %d is NULL", i);
    for (size_t i = 0; i < ds->n; i++)
        if (ds->labels[i] < 0 || ds->labels[i] >= n)
            return cnn_error_set(CNN_EDATA,
                                 "label %d of image %zu is out of range for %d "
                                 "class names (expected 0..%d)",
                                 (int)ds->labels[i], i, n, n - 1);
    char **c = copy_names(names, n);
    if (!c) return cnn_error_set(CNN_ENOMEM, "class names: out of memory");
    free_names(ds->class_names, ds->nclasses);
    ds->class_names = c;
    ds->nclasses = n;
    return CNN_OK;
}

int cnn_dataset_class_index(const cnn_dataset_t *ds, const char *name_or_index)
{
    const char *s = name_or_index;
    if (!ds || !s || !*s) return -1;
    if (ds->class_names) {
        for (int i = 0; i < ds->nclasses; i++)
            if (ds->class_names[i] && strcmp(ds->class_names[i], s) == 0) return i;
        for (int i = 0; i < ds->nclasses; i++)
            if (ds->class_names[i] && strcasecmp(ds->class_names[i], s) == 0)
                return i;
    }
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
        if (v >= ds->nclasses) return -1;
    }
    return (int)v;
}

/* ---- subset ------------------------------------------------------------ */

/* The label of image i after the subset, -1 if it is dropped. */
static int new_label(const cnn_dataset_t *ds, const int *map, size_t i)
{
    int32_t l = ds->labels[i];
    return (l >= 0 && l < ds->nclasses) ? map[l] : -1;
}

cnn_status_t cnn_dataset_subset(cnn_dataset_t *ds, const int *classes, int k)
{
    if (k < 1 || !classes)
        return cnn_error_set(CNN_ECONFIG, "class subset: %d classes given, need "
                                          "at least 1", k);
    int *map = malloc(((size_t)ds->nclasses + 1) * sizeof *map);
    char **names = NULL;
    if (!map) return cnn_error_set(CNN_ENOMEM, "class subset: out of memory");
    for (int c = 0; c < ds->nclasses; c++) map[c] = -1;
    for (int j = 0; j < k; j++) {
        int c = classes[j];
        if (c < 0 || c >= ds->nclasses) {
            free(map);
            return cnn_error_set(CNN_ECONFIG,
                                 "class subset: class %d is out of range "
                                 "(the data set has classes 0..%d)",
                                 c, ds->nclasses - 1);
        }
        if (map[c] >= 0) {
            free(map);
            return cnn_error_set(CNN_ECONFIG,
                                 "class subset: class %d (%s) is listed twice", c,
                                 ds->class_names ? ds->class_names[c] : "?");
        }
        map[c] = j;
    }
    size_t keep = 0;
    for (size_t i = 0; i < ds->n; i++) keep += new_label(ds, map, i) >= 0;
    if (keep == 0) {
        free(map);
        return cnn_error_set(CNN_ECONFIG,
                             "class subset: no image has any of the %d chosen "
                             "classes",
                             k);
    }
    if (ds->class_names) {
        names = calloc((size_t)k, sizeof *names);
        if (!names) {
            free(map);
            return cnn_error_set(CNN_ENOMEM, "class subset: out of memory");
        }
    }

    /* nothing can fail from here on */
    const size_t isz = (size_t)ds->c * ds->h * ds->w;
    size_t o = 0;
    for (size_t i = 0; i < ds->n; i++) {
        int nl = new_label(ds, map, i);
        if (nl < 0) continue;
        if (o != i) memcpy(ds->images + o * isz, ds->images + i * isz, isz);
        ds->labels[o++] = nl;
    }
    if (names) {
        for (int c = 0; c < ds->nclasses; c++) {
            if (map[c] >= 0) names[map[c]] = ds->class_names[c];
            else free(ds->class_names[c]);
        }
        free(ds->class_names);
        ds->class_names = names;
    }
    free(map);
    ds->n = keep;
    ds->nclasses = k;
    /* shrinking: on failure the larger block is still valid */
    uint8_t *im = realloc(ds->images, keep * isz);
    if (im) ds->images = im;
    int32_t *lb = realloc(ds->labels, keep * sizeof *lb);
    if (lb) ds->labels = lb;
    return CNN_OK;
}

/* ---- split ------------------------------------------------------------- */

/* A new data set of m images shaped like ds, with copies of its class
 * names; images and labels uninitialised (NULL if m = 0). */
static cnn_status_t alloc_like(const cnn_dataset_t *ds, size_t m,
                               cnn_dataset_t **out)
{
    const size_t isz = (size_t)ds->c * ds->h * ds->w;
    cnn_dataset_t *d = calloc(1, sizeof *d);
    *out = NULL;
    if (!d) return cnn_error_set(CNN_ENOMEM, "data set: out of memory");
    d->n = m;
    d->c = ds->c;
    d->h = ds->h;
    d->w = ds->w;
    d->nclasses = ds->nclasses;
    if (m > 0) {
        d->images = malloc(m * isz);
        d->labels = malloc(m * sizeof *d->labels);
    }
    if (ds->class_names)
        d->class_names = copy_names((const char *const *)ds->class_names,
                                    ds->nclasses);
    if ((m > 0 && (!d->images || !d->labels)) ||
        (ds->class_names && !d->class_names)) {
        cnn_dataset_free(d);
        return cnn_error_set(CNN_ENOMEM, "data set: cannot allocate %zu images",
                             m);
    }
    *out = d;
    return CNN_OK;
}

/* isval[i] = 1 for the nval images of [0, n) held out: the first nval
 * entries of a seeded Fisher-Yates shuffle. perm has room for n. */
static void split_mask(size_t n, size_t nval, uint64_t seed, size_t *perm, uint8_t *isval)
{
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = 0; i < nval; i++) {
        size_t j = i + (size_t)cnn_rng_below(&rng, n - i);
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        isval[perm[i]] = 1;
    }
}

cnn_status_t cnn_dataset_split_mask(size_t n, size_t nval, uint64_t seed, uint8_t *isval)
{
    if (nval >= n)
        return cnn_error_set(CNN_ECONFIG, "validation size %zu must be smaller than the data "
                             "set (%zu images)", nval, n);
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    if (!perm) return cnn_error_set(CNN_ENOMEM, "split: out of memory");
    memset(isval, 0, n);
    split_mask(n, nval, seed, perm, isval);
    free(perm);
    return CNN_OK;
}

cnn_status_t cnn_dataset_split(const cnn_dataset_t *ds, size_t nval,
                               uint64_t seed, cnn_dataset_t **train,
                               cnn_dataset_t **val)
{
    cnn_status_t st = CNN_OK;
    size_t *perm = NULL;
    uint8_t *isval = NULL;
    cnn_dataset_t *tr = NULL, *va = NULL;

    *train = *val = NULL;
    if (nval >= ds->n)
        return cnn_error_set(CNN_ECONFIG,
                             "validation size %zu must be smaller than the data "
                             "set (%zu images)",
                             nval, ds->n);
    const size_t n = ds->n, isz = (size_t)ds->c * ds->h * ds->w;
    perm = malloc(n * sizeof *perm);
    isval = calloc(n, 1);
    if (!perm || !isval) {
        st = cnn_error_set(CNN_ENOMEM, "split: out of memory");
        goto done;
    }
    split_mask(n, nval, seed, perm, isval);
    st = alloc_like(ds, n - nval, &tr);
    if (st != CNN_OK) goto done;
    st = alloc_like(ds, nval, &va);
    if (st != CNN_OK) goto done;
    size_t it = 0, iv = 0;
    for (size_t i = 0; i < n; i++) {
        cnn_dataset_t *d = isval[i] ? va : tr;
        size_t *o = isval[i] ? &iv : &it;
        memcpy(d->images + *o * isz, ds->images + i * isz, isz);
        d->labels[*o] = ds->labels[i];
        (*o)++;
    }
    *train = tr;
    *val = va;
    tr = va = NULL;
done:
    cnn_dataset_free(tr);
    cnn_dataset_free(va);
    free(perm);
    free(isval);
    return st;
}

/* ---- statistics and batches ------------------------------------------- */

/* below this many pixels a batch is converted by one thread */
#define OMP_MIN_PIXELS 65536

/* mean and std of one channel from its exact integer sums over cnt
 * pixels (cnt > 0) ranging over [lo, hi] */
static void finish_channel(uint64_t s1, uint64_t s2, int lo, int hi, double cnt, float *mean,
                           float *std)
{
    double m = (double)s1 / cnt;           /* in pixel units */
    double var = (double)s2 / cnt - m * m;
    *mean = (float)(m / 255.0);
    *std = (lo == hi || var <= 0.0) ? 1.0f : (float)(sqrt(var) / 255.0);
}

void cnn_dataset_channel_stats(const cnn_dataset_t *ds, float *mean,
                               float *std)
{
    const size_t hw = (size_t)ds->h * ds->w, isz = hw * (size_t)ds->c;
    const long n = (long)ds->n;
    for (int ch = 0; ch < ds->c; ch++) {
        /* integer sums are exact, so the thread count cannot change them */
        uint64_t s1 = 0, s2 = 0;
        int lo = 255, hi = 0;
#pragma omp parallel for schedule(static) reduction(+ : s1, s2) \
    reduction(min : lo) reduction(max : hi) if ((size_t)n * hw >= OMP_MIN_PIXELS)
        for (long i = 0; i < n; i++) {
            const uint8_t *p = ds->images + (size_t)i * isz + (size_t)ch * hw;
            for (size_t j = 0; j < hw; j++) {
                unsigned v = p[j];
                s1 += v;
                s2 += v * v;
                if ((int)v < lo) lo = (int)v;
                if ((int)v > hi) hi = (int)v;
            }
        }
        if (ds->n == 0 || hw == 0) {
            mean[ch] = 0.0f;
            std[ch] = 1.0f;
            continue;
        }
        finish_channel(s1, s2, lo, hi, (double)ds->n * (double)hw, &mean[ch], &std[ch]);
    }
}

void cnn_stats_init(cnn_stats_acc_t *a)
{
    memset(a, 0, sizeof *a);
    for (int ch = 0; ch < 4; ch++) a->lo[ch] = 255;
}

void cnn_stats_add(cnn_stats_acc_t *a, const uint8_t *images, size_t n, int c, int h, int w)
{
    const size_t hw = (size_t)h * w;
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < c && ch < 4; ch++) {
            const uint8_t *p = images + (i * (size_t)c + (size_t)ch) * hw;
            uint64_t s1 = 0, s2 = 0;
            for (size_t j = 0; j < hw; j++) {
                unsigned v = p[j];
                s1 += v;
                s2 += v * v;
                if ((int)v < a->lo[ch]) a->lo[ch] = (int)v;
                if ((int)v > a->hi[ch]) a->hi[ch] = (int)v;
            }
            a->s1[ch] += s1;
            a->s2[ch] += s2;
        }
    a->n += n;
}

void cnn_stats_finish(const cnn_stats_acc_t *a, int c, int h, int w, float *mean, float *std)
{
    const size_t hw = (size_t)h * w;
    for (int ch = 0; ch < c && ch < 4; ch++) {
        if (a->n == 0 || hw == 0) {
            mean[ch] = 0.0f;
            std[ch] = 1.0f;
            continue;
        }
        finish_channel(a->s1[ch], a->s2[ch], a->lo[ch], a->hi[ch], (double)a->n * (double)hw,
                       &mean[ch], &std[ch]);
    }
}

/* lut[v] for channel ch: the normalised value of pixel v */
static void make_lut(int ch, const float *mean, const float *std, float lut[256])
{
    /* 256 possible inputs: compute each once, in the documented form */
    for (int v = 0; v < 256; v++) {
        float f = (float)v / 255.0f;
        lut[v] = (mean && std) ? (f - mean[ch]) / std[ch] : f;
    }
}

void cnn_images_to_floats(const uint8_t *images, int n, int c, int h, int w, const float *mean,
                          const float *std, float *x)
{
    const size_t hw = (size_t)h * w;
    float lut[256];
    for (int ch = 0; ch < c; ch++) {
        make_lut(ch, mean, std, lut);
        for (int b = 0; b < n; b++) {
            const size_t o = ((size_t)b * c + (size_t)ch) * hw;
            for (size_t j = 0; j < hw; j++) x[o + j] = lut[images[o + j]];
        }
    }
}

void cnn_dataset_batch(const cnn_dataset_t *ds, const size_t *idx, int n,
                       const float *mean, const float *std, float *x,
                       int32_t *labels)
{
    const size_t hw = (size_t)ds->h * ds->w, isz = hw * (size_t)ds->c;
    float lut[256];
    for (int ch = 0; ch < ds->c; ch++) {
        make_lut(ch, mean, std, lut);
#pragma omp parallel for schedule(static) if ((size_t)n * hw >= OMP_MIN_PIXELS)
        for (int b = 0; b < n; b++) {
            const uint8_t *p = ds->images + idx[b] * isz + (size_t)ch * hw;
            float *y = x + (size_t)b * isz + (size_t)ch * hw;
            for (size_t j = 0; j < hw; j++) y[j] = lut[p[j]];
        }
    }
    if (labels)
        for (int b = 0; b < n; b++) labels[b] = ds->labels[idx[b]];
}
