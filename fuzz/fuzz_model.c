/* fuzz_model.c - the model-file reader (cnn_model_load_meta and
 * cnn_model_load_weights) on arbitrary model files.
 *
 * The input does not go to HDF5 as raw bytes: HDF5's own parser of
 * damaged files is not hardened (a flipped byte can crash or hang it, see
 * docs/reliability.md) and is not the code under test. Instead the input
 * is a little program of edits applied, with HDF5's writer, to a valid
 * model: delete any object, create datasets of any class, rank and shape
 * (up to 2^40 per dimension, never allocated) with any values (NaN, Inf,
 * huge), create groups, set the file's and the layers' attributes to any
 * type and value. The edited file then goes through the reader, which
 * must return a status, never crash or allocate by an absurd header, and
 * keep its promises: a failed load leaves the net unchanged, a loaded
 * one holds only finite values and a consistent meta data block. */
#include <math.h>
#include <string.h>

#include <hdf5.h>

#include "fuzz_util.h"
#include "mpicnn/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cnn_net_t *net;
static void *base;      /* the image of a valid model file */
static size_t base_len;
static float *snap;     /* the net's parameters and state before a load */

typedef struct {
    const uint8_t *p;
    size_t n;
} in_t;

static unsigned take(in_t *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static uint64_t take_u64(in_t *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | take(in);
    return v;
}

static const char *const paths[] = {
    "/layers", "/layers/conv1", "/layers/conv1/weight", "/layers/conv1/bias", "/layers/bn1",
    "/layers/bn1/weight", "/layers/bn1/bias", "/layers/bn1/running_mean",
    "/layers/bn1/running_var", "/layers/fc", "/layers/fc/weight", "/layers/fc/bias",
    "/layers/relu1", "/layers/ghost", "/layers/ghost/weight", "/input_shape", "/classes",
    "/normalization", "/normalization/mean", "/normalization/std", "/history",
    "/history/epoch", "/history/train_loss", "/history/val_acc", "/history/lr", "/extra",
};
#define NPATHS (sizeof paths / sizeof paths[0])

static const char *const attrs[] = {"format", "format_version", "config", "num_classes",
                                    "mpicnn_version", "order", "types", "type", "index"};
#define NATTRS (sizeof attrs / sizeof attrs[0])

/* A dimension: mostly small, sometimes what the reader expects, sometimes
 * absurd. */
static hsize_t take_dim(in_t *in)
{
    unsigned b = take(in);
    switch (b >> 6) {
    case 0: return b & 7;
    case 1: return (hsize_t)(b & 31) + 1;
    case 2: return (hsize_t)1 << (20 + (b & 20));
    default: return (hsize_t)take_u64(in, 4);
    }
}

static double take_value(in_t *in)
{
    unsigned b = take(in);
    switch (b & 7) {
    case 0: return NAN;
    case 1: return (b & 8) ? INFINITY : -INFINITY;
    case 2: return 1e300;
    case 3: return (double)(int64_t)take_u64(in, 8);
    default: return (double)(int)(b - 128) / 16.0;
    }
}

static hid_t take_type(in_t *in, int *is_str)
{
    *is_str = 0;
    switch (take(in) % 7) {
    case 0: return H5Tcopy(H5T_IEEE_F32LE);
    case 1: return H5Tcopy(H5T_IEEE_F64LE);
    case 2: return H5Tcopy(H5T_STD_I32LE);
    case 3: return H5Tcopy(H5T_STD_I64LE);
    case 4: return H5Tcopy(H5T_STD_U8LE);
    case 5: {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        *is_str = 1;
        return t;
    }
    default: {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 1 + take(in) % 16);
        *is_str = 2;
        return t;
    }
    }
}

/* A space of rank 0..4 (0: scalar): *total elements, *big if there are
 * too many to write (more than 4096). */
static hid_t take_space(in_t *in, hsize_t *dims, int *rank, hsize_t *total, int *big)
{
    *rank = (int)(take(in) % 5);
    *total = 1;
    *big = 0;
    for (int i = 0; i < *rank; i++) {
        dims[i] = take_dim(in);
        if (dims[i] > 4096 || *total * dims[i] > 4096) *big = 1;
        else *total *= dims[i];
    }
    if (*big) *total = 0;
    return *rank ? H5Screate_simple(*rank, dims, NULL) : H5Screate(H5S_SCALAR);
}

/* Values for `total` elements of type t (numbers from the input, or short
 * strings). Caller frees. */
static void *take_values(in_t *in, hid_t t, int is_str, hsize_t total, char ***strs)
{
    *strs = NULL;
    if (is_str == 1) {
        char **s = calloc(total ? total : 1, sizeof *s);
        for (hsize_t i = 0; i < total; i++) {
            size_t len = take(in) % 24;
            s[i] = calloc(len + 1, 1);
            for (size_t k = 0; k < len; k++) s[i][k] = (char)(take(in) | 1);
        }
        *strs = s;
        return NULL;
    }
    size_t sz = H5Tget_size(t);
    unsigned char *buf = calloc(total ? total : 1, sz);
    for (hsize_t i = 0; i < total; i++) {
        if (is_str == 2) {
            for (size_t k = 0; k < sz; k++) buf[i * sz + k] = (unsigned char)take(in);
        } else if (H5Tget_class(t) == H5T_FLOAT) {
            double v = take_value(in);
            if (sz == 4) {
                float f = (float)v;
                memcpy(buf + i * 4, &f, 4);
            } else {
                memcpy(buf + i * 8, &v, 8);
            }
        } else {
            uint64_t v = take_u64(in, (int)sz);
            memcpy(buf + i * sz, &v, sz); /* little-endian host */
        }
    }
    return buf;
}

static void free_strs(char **s, hsize_t n)
{
    if (!s) return;
    for (hsize_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

static void make_dataset(hid_t f, in_t *in)
{
    const char *path = paths[take(in) % NPATHS];
    hsize_t dims[4], total;
    int rank, is_str, big;
    if (H5Lexists(f, path, H5P_DEFAULT) > 0) H5Ldelete(f, path, H5P_DEFAULT);
    hid_t t = take_type(in, &is_str);
    hid_t sp = take_space(in, dims, &rank, &total, &big);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (big) {
        /* too large to write: chunked, never allocated */
        hsize_t chunk[4] = {1, 1, 1, 1};
        H5Pset_chunk(dcpl, rank, chunk);
    }
    hid_t ds = H5Dcreate2(f, path, t, sp, lcpl, dcpl, H5P_DEFAULT);
    if (ds >= 0 && total) {
        char **strs;
        void *buf = take_values(in, t, is_str, total, &strs);
        H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, strs ? (void *)strs : buf);
        free(buf);
        free_strs(strs, total);
    }
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(sp);
    H5Tclose(t);
}

static void make_attr(hid_t f, in_t *in)
{
    const unsigned where = take(in);
    const char *obj = where & 1 ? paths[(where >> 1) % NPATHS] : "/";
    const char *name = attrs[take(in) % NATTRS];
    if (H5Oexists_by_name(f, obj, H5P_DEFAULT) <= 0) return;
    if (H5Aexists_by_name(f, obj, name, H5P_DEFAULT) > 0)
        H5Adelete_by_name(f, obj, name, H5P_DEFAULT);
    hsize_t dims[4], total;
    int rank, is_str, big;
    hid_t t = take_type(in, &is_str);
    hid_t sp = take_space(in, dims, &rank, &total, &big);
    if (total) {
        hid_t a = H5Acreate_by_name(f, obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) {
            char **strs;
            void *buf = take_values(in, t, is_str, total, &strs);
            H5Awrite(a, t, strs ? (void *)strs : buf);
            free(buf);
            free_strs(strs, total);
            H5Aclose(a);
        }
    }
    H5Sclose(sp);
    H5Tclose(t);
}

/* The input's edits applied to the base model; the result's image. */
static void *edit(in_t *in, size_t *len)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    H5Pset_file_image(fapl, base, base_len);
    hid_t f = H5Fopen("fuzz-model-image", H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    void *img = NULL;
    if (f < 0) return NULL;
    for (int ops = 0; in->n && ops < 16; ops++) {
        switch (take(in) % 4) {
        case 0: {
            const char *p = paths[take(in) % NPATHS];
            if (H5Lexists(f, "/layers", H5P_DEFAULT) > 0 || strncmp(p, "/layers/", 8))
                if (H5Lexists(f, p, H5P_DEFAULT) > 0) H5Ldelete(f, p, H5P_DEFAULT);
            break;
        }
        case 1: make_dataset(f, in); break;
        case 2: make_attr(f, in); break;
        default: {
            const char *p = paths[take(in) % NPATHS];
            hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
            H5Pset_create_intermediate_group(lcpl, 1);
            hid_t g = H5Gcreate2(f, p, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            if (g >= 0) H5Gclose(g);
            H5Pclose(lcpl);
        }
        }
    }
    H5Fflush(f, H5F_SCOPE_GLOBAL);
    ssize_t n = H5Fget_file_image(f, NULL, 0);
    if (n > 0 && (img = malloc((size_t)n)) && H5Fget_file_image(f, img, (size_t)n) == n) {
        *len = (size_t)n;
    } else {
        free(img);
        img = NULL;
    }
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    return img;
}

static cnn_layer_spec_t spec(const char *name, const char *type, int f, int k, int pad)
{
    cnn_layer_spec_t s = {.filters = f, .kh = k, .kw = k, .stride = k ? 1 : 0, .pad = pad,
                          .eps = 1e-5f, .momentum = 0.1f};
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.type, sizeof s.type, "%s", type);
    return s;
}

/* conv 2 3x3 pad 1 -> batchnorm -> relu -> maxpool 2 -> flatten -> dense
 * 3 on 1x4x4 images, saved once as the base model. */
static int init(void)
{
    cnn_layer_spec_t s[] = {spec("conv1", "conv", 2, 3, 1), spec("bn1", "batchnorm", 0, 0, 0),
                            spec("relu1", "relu", 0, 0, 0), spec("pool1", "maxpool", 0, 2, 0),
                            spec("flat", "flatten", 0, 0, 0), spec("fc", "dense", 3, 0, 0)};
    s[3].stride = 2;
    if (cnn_net_create(s, 6, (cnn_shape_t){1, 1, 4, 4}, 1, &net) != CNN_OK) return -1;
    for (size_t i = 0; i < net->nparams; i++) net->params[i] = (float)i / 100.0f - 0.3f;
    for (size_t i = 0; i < net->nstate; i++) net->state[i] = 1.0f + (float)i / 10.0f;
    static const char *names[3] = {"a", "b", "c"};
    static float mean[1] = {0.5f}, std_[1] = {0.25f};
    static double hist[CNN_HISTORY_COLS] = {1, 0.5, 0.9, 0.6, 0.8, 0.01, 1.0, 100};
    cnn_model_meta_t m = {.config = "[net]\nlayers = conv1\n", .nclasses = 3,
                          .class_names = (char **)names, .mean = mean, .std = std_,
                          .nhistory = 1, .history = hist};
    char path[256];
    if (fuzz_file("model-base", (const uint8_t *)"", 0, path, sizeof path)) return -1;
    if (cnn_model_save(path, net, &m) != CNN_OK) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    base_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    base = malloc(base_len);
    if (!base || fread(base, 1, base_len, f) != base_len) return -1;
    fclose(f);
    remove(path);
    snap = malloc(sizeof(float) * (net->nparams + net->nstate));
    return snap ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        if (init() != 0) __builtin_trap();
        ready = 1;
    }
    in_t in = {data, size};
    size_t len = 0;
    void *img = edit(&in, &len);
    if (!img) return 0;
    char path[256];
    int bad = fuzz_file("model", img, len, path, sizeof path);
    free(img);
    if (bad) return 0;

    cnn_model_meta_t m;
    if (cnn_model_load_meta(path, &m) == CNN_OK) {
        if (m.c < 1 || m.h < 1 || m.w < 1 || m.nclasses < 0 || m.nhistory < 0) __builtin_trap();
        if (m.class_names)
            for (int k = 0; k < m.nclasses; k++)
                if (!m.class_names[k]) __builtin_trap();
        if (m.mean)
            for (int c = 0; c < m.c; c++)
                if (!isfinite(m.mean[c]) || !isfinite(m.std[c])) __builtin_trap();
        cnn_model_meta_free(&m);
    } else if (m.config || m.class_names || m.mean || m.history) {
        __builtin_trap(); /* failure must leave nothing to free */
    }

    memcpy(snap, net->params, sizeof(float) * net->nparams);
    memcpy(snap + net->nparams, net->state, sizeof(float) * net->nstate);
    if (cnn_model_load_weights(path, net) == CNN_OK) {
        for (size_t i = 0; i < net->nparams; i++)
            if (!isfinite(net->params[i])) __builtin_trap();
        for (size_t i = 0; i < net->nstate; i++)
            if (!isfinite(net->state[i])) __builtin_trap();
    } else if (memcmp(snap, net->params, sizeof(float) * net->nparams) ||
               memcmp(snap + net->nparams, net->state, sizeof(float) * net->nstate)) {
        __builtin_trap(); /* a failed load leaves the net as it was */
    }
    remove(path);
    return 0;
}
