/* make_model64.c - `make_model64 MODEL.h5 TENSOR.h5`: a small model whose
 * parameters are stored as float64, and a tensor file to score with it,
 * for tests/test_predict_f64.sh. Deterministic: every value comes from a
 * formula that tests/model64_reference.py repeats in float64.
 *
 * The net (input 2x6x6, normalised with mean (0.25, 0.5), std (0.5,
 * 0.25)): conv 3x3x3 pad 1, batchnorm (test mode: its running
 * statistics), tanh, maxpool 2, conv 4x2x2, sigmoid, flatten, dense 5,
 * softmax cross-entropy. Element j of tensor t of the layer at position
 * i is 0.5 sin(0.7 j + 1.3 i + 0.4 t + 0.1); a running variance v is
 * stored as 0.5 + v^2. The tensor file holds x (3,2,6,6) float64 with
 * x[j] = 0.5 + 0.45 sin(0.37 j + 0.2), the same rounded to float32 as
 * x32, and the labels y (3) = 1, 4, 0 as int64. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn.h"
#include "mpicnn/config.h"
#include "mpicnn/model.h"

static const char ini[] =
    "[data]\nformat = idx\ndir = .\n"
    "train_images = train-images.idx\ntrain_labels = train-labels.idx\n"
    "test_images = test-images.idx\ntest_labels = test-labels.idx\n\n"
    "[net]\nlayers = c1, bn, t, p, c2, s, f, fc\n\n"
    "[c1]\ntype = conv\nfilters = 3\nkernel = 3\npad = 1\n\n"
    "[bn]\ntype = batchnorm\n\n[t]\ntype = tanh\n\n"
    "[p]\ntype = maxpool\nsize = 2\n\n"
    "[c2]\ntype = conv\nfilters = 4\nkernel = 2\n\n"
    "[s]\ntype = sigmoid\n\n[f]\ntype = flatten\n\n"
    "[fc]\ntype = dense\nunits = 5\n\n"
    "[optimizer]\nlr = 0.1\n\n[train]\nepochs = 1\nbatch_size = 2\nthreads = 1\n";

#define CHECK(x)                                                                   \
    do {                                                                           \
        if ((x) < 0) {                                                             \
            fprintf(stderr, "make_model64: %s failed (line %d)\n", #x, __LINE__); \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

/* A dataset obj of file type ftype, dims[nd], from data (memory type
 * mtype), with the checksum attribute the reader verifies: the CRC-32C
 * of its little-endian bytes (this runs on little-endian hosts). */
static void put(hid_t f, const char *obj, hid_t ftype, hid_t mtype, int nd, const hsize_t *dims,
                const void *data, size_t bytes)
{
    hid_t sp, ds, one, a;
    uint32_t crc = cnn_crc32c(0, data, bytes);
    CHECK(sp = H5Screate_simple(nd, dims, NULL));
    CHECK(ds = H5Dcreate2(f, obj, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    CHECK(one = H5Screate(H5S_SCALAR));
    CHECK(a = H5Acreate2(ds, CNN_H5_CRC_ATTR, H5T_STD_U32LE, one, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Awrite(a, H5T_NATIVE_UINT32, &crc));
    CHECK(H5Aclose(a));
    CHECK(H5Sclose(one));
    CHECK(H5Dclose(ds));
    CHECK(H5Sclose(sp));
}

/* Replaces each layer dataset of the model by its float64 values. */
static void write_weights64(const char *path, const cnn_net_t *net)
{
    hid_t f;
    CHECK(f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT));
    for (int i = 0; i < net->nlayers; i++) {
        const cnn_layer_t *l = &net->layers[i];
        cnn_layer_tensor_t t[CNN_LAYER_TENSORS_MAX];
        const int n = cnn_layer_tensors(l, t);
        for (int k = 0; k < n; k++) {
            char obj[256];
            hsize_t dims[4];
            double *v = malloc(sizeof(double) * t[k].count);
            if (!v) exit(1);
            for (size_t j = 0; j < t[k].count; j++) {
                v[j] = 0.5 * sin(0.7 * (double)j + 1.3 * i + 0.4 * k + 0.1);
                if (!strcmp(t[k].desc->name, "running_var")) v[j] = 0.5 + v[j] * v[j];
            }
            for (int d = 0; d < t[k].ndims; d++) dims[d] = t[k].dims[d];
            snprintf(obj, sizeof obj, "/layers/%s/%s", l->spec.name, t[k].desc->name);
            CHECK(H5Ldelete(f, obj, H5P_DEFAULT));
            put(f, obj, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, t[k].ndims, dims, v,
                sizeof(double) * t[k].count);
            free(v);
        }
    }
    CHECK(H5Fclose(f));
}

static void write_tensor(const char *path)
{
    enum { N = 3, X = N * 2 * 6 * 6 };
    double x[X];
    float x32[X];
    int64_t y[N] = {1, 4, 0};
    const hsize_t dims[4] = {N, 2, 6, 6}, ny = N;
    for (int j = 0; j < X; j++) x32[j] = (float)(x[j] = 0.5 + 0.45 * sin(0.37 * j + 0.2));
    hid_t f;
    CHECK(f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    put(f, "x", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 4, dims, x, sizeof x);
    put(f, "x32", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, dims, x32, sizeof x32);
    put(f, "y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &ny, y, sizeof y);
    CHECK(H5Fclose(f));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_model64 MODEL.h5 TENSOR.h5\n");
        return 2;
    }
    cnn_config_t *cfg = malloc(sizeof *cfg);
    cnn_net_t *net = NULL;
    float mean[2] = {0.25f, 0.5f}, std[2] = {0.5f, 0.25f};
    cnn_model_meta_t meta = {.config = (char *)ini, .mean = mean, .std = std};
    if (!cfg || cnn_config_parse_string(ini, "model64.ini", NULL, 0, cfg) != CNN_OK ||
        cnn_net_create(cfg->layers, cfg->nlayers, (cnn_shape_t){1, 2, 6, 6}, 1, &net) != CNN_OK) {
        fprintf(stderr, "make_model64: %s\n", cnn_error_message());
        return 1;
    }
    cnn_net_init(net, 1);
    if (cnn_model_save(argv[1], net, &meta) != CNN_OK) {
        fprintf(stderr, "make_model64: %s\n", cnn_error_message());
        return 1;
    }
    write_weights64(argv[1], net);
    write_tensor(argv[2]);
    cnn_net_free(net);
    free(cfg);
    return 0;
}
