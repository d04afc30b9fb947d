/* make_datafile - writes an IDX pair as an mpicnn data file (DATA.h5,
 * docs/data-format.md), for the tests and the benchmarks.
 *
 *   make_datafile IMAGES.idx[.gz] LABELS.idx[.gz] OUT.h5 [--names SET]
 *                 [--repeat K] [--bad WHAT]
 *
 * --names SET   class names of a known set (fashion-mnist, ...); default
 *               "0", "1", ...
 * --repeat K    the images K times over (a large set from a small one)
 * --bad WHAT    a damaged file: version, images-type, images-rank,
 *               labels-type, labels-range, labels-count, no-classes,
 *               no-crc (no checksum attributes on /images and /labels,
 *               as in a file packed before they were written) */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/data.h"
#include "mpicnn/h5io.h"
#include "mpicnn/rng.h"

typedef struct {
    const char *names, *bad;
    long repeat;
} opts_t;

static int bad(const opts_t *o, const char *what) { return o->bad && strcmp(o->bad, what) == 0; }

/* Attaches the checksum attribute as `mpicnn pack` does (unless --bad
 * no-crc: a file packed before data files carried checksums). */
static int attach_crc(hid_t d, const opts_t *o, uint32_t crc)
{
    if (bad(o, "no-crc")) return 0;
    hid_t one = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(d, CNN_H5_CRC_ATTR, H5T_STD_U32LE, one, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, H5T_NATIVE_UINT32, &crc) < 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(one);
    return rc;
}

/* CRC-32C of n int32 values stored little-endian. */
static uint32_t crc_i32_le(const int32_t *v, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char le[4];
        for (int b = 0; b < 4; b++) le[b] = (unsigned char)((uint32_t)v[i] >> (8 * b));
        crc = cnn_crc32c(crc, le, 4);
    }
    return crc;
}

/* /images uint8 (N,C,H,W) chunked by whole images, N = n * repeat. */
static int write_images(hid_t file, const cnn_dataset_t *ds, const opts_t *o)
{
    const size_t isz = (size_t)ds->c * ds->h * ds->w, n = ds->n * (size_t)o->repeat;
    hsize_t dims[4] = {n, (hsize_t)ds->c, (hsize_t)ds->h, (hsize_t)ds->w};
    hsize_t chunk[4] = {(1u << 20) / isz ? (1u << 20) / isz : 1, dims[1], dims[2], dims[3]};
    if (chunk[0] > n) chunk[0] = n;
    const int rank = bad(o, "images-rank") ? 3 : 4;
    if (rank == 3) dims[2] *= dims[3], chunk[2] *= chunk[3];
    hid_t type = bad(o, "images-type") ? H5T_STD_I16LE : H5T_STD_U8LE;
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    hid_t d = H5Dcreate2(file, "/images", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = d < 0;
    uint32_t crc = 0;
    for (long k = 0; k < o->repeat && !rc; k++) {
        crc = cnn_crc32c(crc, ds->images, ds->n * isz);
        hsize_t start[4] = {(hsize_t)k * ds->n, 0, 0, 0}, count[4] = {ds->n, dims[1], dims[2],
                                                                       dims[3]};
        hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, count, NULL);
        rc |= H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0;
        rc |= H5Dwrite(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, ds->images) < 0;
        H5Sclose(fs);
        H5Sclose(ms);
    }
    if (!rc) rc = attach_crc(d, o, crc);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc;
}

static int write_labels(hid_t file, const cnn_dataset_t *ds, const opts_t *o)
{
    const size_t n = ds->n * (size_t)o->repeat + (bad(o, "labels-count") ? 1 : 0);
    int32_t *l = calloc(n + 1, sizeof *l);
    for (size_t i = 0; i < ds->n * (size_t)o->repeat; i++) l[i] = ds->labels[i % ds->n];
    if (bad(o, "labels-range")) l[n / 2] = 1000;
    hsize_t dims[1] = {n};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t type = bad(o, "labels-type") ? H5T_IEEE_F32LE : H5T_STD_I32LE;
    hid_t d = H5Dcreate2(file, "/labels", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, l) < 0;
    if (!rc) rc = attach_crc(d, o, crc_i32_le(l, n));
    H5Dclose(d);
    H5Sclose(space);
    free(l);
    return rc;
}

static cnn_status_t write_file(const char *out, const cnn_dataset_t *ds, const opts_t *o)
{
    cnn_h5w_t *w = NULL;
    CNN_TRY(cnn_h5w_open(out, &w));
    hid_t file = cnn_h5w_file(w);
    cnn_status_t st = CNN_OK;
    float mean[4], std[4];
    cnn_dataset_channel_stats(ds, mean, std);
    const size_t c = (size_t)ds->c;
    if ((st = cnn_h5w_attr_str(w, "/", "format", "mpicnn-data")) != CNN_OK) goto fail;
    if ((st = cnn_h5w_attr_int64(w, "/", "format_version", bad(o, "version") ? 2 : 1)) != CNN_OK)
        goto fail;
    if (write_images(file, ds, o) || write_labels(file, ds, o)) {
        st = cnn_error_set(CNN_EIO, "%s: cannot write the images or labels", out);
        goto fail;
    }
    if (!bad(o, "no-classes") &&
        (st = cnn_h5w_strings(w, "/classes", (size_t)ds->nclasses,
                              (const char *const *)ds->class_names)) != CNN_OK)
        goto fail;
    if ((st = cnn_h5w_group(w, "/normalization")) != CNN_OK ||
        (st = cnn_h5w_floats(w, "/normalization/mean", 1, &c, mean)) != CNN_OK ||
        (st = cnn_h5w_floats(w, "/normalization/std", 1, &c, std)) != CNN_OK)
        goto fail;
    const char *attrs[] = {"source", "options", "resize", "fit", "channels"};
    for (int i = 0; i < 5; i++)
        if ((st = cnn_h5w_attr_str(w, "/", attrs[i], i == 0 ? "make_datafile" : "")) != CNN_OK)
            goto fail;
    if ((st = cnn_h5w_attr_int64(w, "/", "skipped", 0)) != CNN_OK) goto fail;
    return cnn_h5w_commit(w);
fail:
    cnn_h5w_abort(w);
    return st;
}

int main(int argc, char **argv)
{
    opts_t o = {.repeat = 1};
    if (argc < 4) {
        fprintf(stderr, "usage: make_datafile IMAGES LABELS OUT.h5 [--names SET] [--repeat K] "
                        "[--bad WHAT]\n");
        return 2;
    }
    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--names") == 0) o.names = argv[i + 1];
        else if (strcmp(argv[i], "--repeat") == 0) o.repeat = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--bad") == 0) o.bad = argv[i + 1];
    }
    if (o.repeat < 1) o.repeat = 1;
    cnn_dataset_t *ds = NULL;
    cnn_status_t st = cnn_idx_load(argv[1], argv[2], &ds);
    if (st == CNN_OK && o.names) {
        int n;
        const char *const *names = cnn_class_names(o.names, &n);
        st = names ? cnn_dataset_set_class_names(ds, names, n)
                   : cnn_error_set(CNN_EUSAGE, "unknown class-name set %s", o.names);
    }
    if (st == CNN_OK) st = write_file(argv[3], ds, &o);
    cnn_dataset_free(ds);
    if (st != CNN_OK) {
        fprintf(stderr, "make_datafile: %s\n", cnn_error_message());
        return 1;
    }
    return 0;
}
