/* hdf5.c - the reader of mpicnn data files (DATA.h5, docs/data-format.md).
 *
 * Opening checks everything a hostile file could get wrong before any
 * large allocation, reads the labels and class names, and records where
 * each chunk of /images starts in the file. The images are unfiltered,
 * so row i of a chunked dataset with chunks of B rows is the bytes
 * [addr(i / B) + (i % B) * isz, + isz) of the file, and pread() reads it
 * without HDF5.
 *
 * Checksums (attribute CNN_H5_CRC_ATTR, see h5io.h): /labels and /classes
 * are read whole at opening and verified there, through h5io's readers
 * (which also give the one warning per file for a dataset without one).
 * /images is verified only where it is read whole, by cnn_h5data_load();
 * cnn_h5data_read_rows() reads subsets and cannot check them. */
#include "mpicnn/source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicnn/h5io.h"
#include "mpicnn/rng.h"

#define MAX_CLASSES 100000

struct cnn_h5data_priv {
    cnn_h5r_t *r;
    hid_t images;       /* /images, open while the file is */
    int fd;             /* for pread(); -1 if the layout does not allow it */
    size_t chunk_rows;  /* B; n for a contiguous dataset */
    off_t *chunk_addr;  /* (nchunks) file offset of each chunk's first byte */
    size_t nchunks;
    int labels_crc;     /* 1 if /labels carries a checksum */
    int images_crc;     /* 1 if /images carries a checksum, then in images_want */
    uint64_t images_want;
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Root attributes: format = "mpicnn-data", format_version = 1. */
static cnn_status_t check_root(cnn_h5data_t *f)
{
    char *fmt = NULL;
    int64_t version = 0;
    cnn_status_t st = cnn_h5r_attr_str(f->priv->r, "/", "format", &fmt);
    if (st != CNN_OK || strcmp(fmt, "mpicnn-data") != 0) {
        free(fmt);
        return cnn_error_set(CNN_EDATA, "%s: not an mpicnn data file (root attribute format "
                                        "must be \"mpicnn-data\")", f->path);
    }
    free(fmt);
    if (cnn_h5r_attr_int64(f->priv->r, "/", "format_version", &version) != CNN_OK ||
        version != 1)
        return cnn_error_set(CNN_EDATA, "%s: format_version %lld is not supported (expected 1)",
                             f->path, (long long)version);
    return CNN_OK;
}

/* Reads the checksum attribute of dataset ds (`what`, for messages) into
 * *want, *present = 0 if it has none. */
static cnn_status_t read_crc_attr(const cnn_h5data_t *f, hid_t ds, const char *what,
                                  uint64_t *want, int *present)
{
    cnn_status_t st = CNN_OK;
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    htri_t ex;
    *present = 0;
    CNN_H5_CHECK_AS(CNN_EDATA, ex = H5Aexists(ds, CNN_H5_CRC_ATTR), fail);
    if (!ex) return CNN_OK;
    CNN_H5_CHECK_AS(CNN_EDATA, a = H5Aopen(ds, CNN_H5_CRC_ATTR, H5P_DEFAULT), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, t = H5Aget_type(a), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, sp = H5Aget_space(a), fail);
    if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != 1) {
        st = cnn_error_set(CNN_EDATA, "%s: %s: attribute '%s' is not one unsigned 32-bit "
                           "integer", f->path, what, CNN_H5_CRC_ATTR);
        goto done;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, H5Aread(a, H5T_NATIVE_UINT64, want), fail);
    *present = 1;
    goto done;
fail:
    cnn_error_prefix("%s: %s attribute '%s'", f->path, what, CNN_H5_CRC_ATTR);
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return st;
}

/* /images: uint8, (N,C,H,W), 1 <= C <= 4, sane sizes. */
static cnn_status_t check_images(cnn_h5data_t *f)
{
    cnn_status_t st = CNN_OK;
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t dims[4];
    if (!cnn_h5r_exists(f->priv->r, "/images") || cnn_h5r_is_group(f->priv->r, "/images"))
        return cnn_error_set(CNN_EDATA, "%s: /images: missing (expected a uint8 dataset)",
                             f->path);
    CNN_H5_CHECK_AS(CNN_EDATA, f->priv->images = H5Dopen2(cnn_h5r_file(f->priv->r), "/images",
                                                          H5P_DEFAULT), error);
    CNN_H5_CHECK_AS(CNN_EDATA, type = H5Dget_type(f->priv->images), error);
    if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 1 ||
        H5Tget_sign(type) != H5T_SGN_NONE) {
        st = cnn_error_set(CNN_EDATA, "%s: /images: wrong type (expected uint8)", f->path);
        goto error;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, space = H5Dget_space(f->priv->images), error);
    if (H5Sget_simple_extent_ndims(space) != 4) {
        st = cnn_error_set(CNN_EDATA, "%s: /images: %d dimensions (expected 4: N,C,H,W)",
                           f->path, H5Sget_simple_extent_ndims(space));
        goto error;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, H5Sget_simple_extent_dims(space, dims, NULL), error);
    if (dims[0] < 1 || dims[0] > CNN_IDX_MAX_IMAGES || dims[1] < 1 || dims[1] > 4 ||
        dims[2] < 1 || dims[3] < 1 || dims[2] * dims[3] > CNN_IDX_MAX_PIXELS) {
        st = cnn_error_set(CNN_EDATA, "%s: /images: shape (%llu,%llu,%llu,%llu) (expected "
                           "1..%u images of 1..4 channels, at most %u pixels each)", f->path,
                           (unsigned long long)dims[0], (unsigned long long)dims[1],
                           (unsigned long long)dims[2], (unsigned long long)dims[3],
                           CNN_IDX_MAX_IMAGES, CNN_IDX_MAX_PIXELS);
        goto error;
    }
    f->n = (size_t)dims[0];
    f->c = (int)dims[1];
    f->h = (int)dims[2];
    f->w = (int)dims[3];
    st = read_crc_attr(f, f->priv->images, "/images", &f->priv->images_want,
                       &f->priv->images_crc);
error:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return st;
}

/* Verifies the checksum of /labels (dataset d, already read into
 * f->labels) by reading it once more through h5io, whose reader checks
 * the attribute, words a mismatch as for models and checkpoints, and
 * warns once per file (rank 0 only) when there is none. */
static cnn_status_t verify_labels(cnn_h5data_t *f, hid_t d)
{
    uint64_t want;
    int64_t *again = NULL;
    size_t k = 0;
    CNN_TRY(read_crc_attr(f, d, "/labels", &want, &f->priv->labels_crc));
    cnn_status_t st = cnn_h5r_int64s(f->priv->r, "/labels", f->n, &again, &k);
    free(again);
    return st;
}

/* /labels int32 (N), /classes K strings, every label in [0, K). */
static cnn_status_t read_labels(cnn_h5data_t *f)
{
    cnn_status_t st = CNN_OK;
    hid_t d = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    size_t k = 0;
    hsize_t dims[1];
    if (!cnn_h5r_exists(f->priv->r, "/classes"))
        return cnn_error_set(CNN_EDATA, "%s: /classes: missing (expected the class names)",
                             f->path);
    CNN_TRY(cnn_h5r_strings(f->priv->r, "/classes", MAX_CLASSES, &f->class_names, &k));
    f->nclasses = (int)k;
    if (k < 1) return cnn_error_set(CNN_EDATA, "%s: /classes: empty", f->path);
    if (!cnn_h5r_exists(f->priv->r, "/labels") || cnn_h5r_is_group(f->priv->r, "/labels"))
        return cnn_error_set(CNN_EDATA, "%s: /labels: missing (expected int32 (%zu))", f->path,
                             f->n);
    CNN_H5_CHECK_AS(CNN_EDATA, d = H5Dopen2(cnn_h5r_file(f->priv->r), "/labels", H5P_DEFAULT),
                    error);
    CNN_H5_CHECK_AS(CNN_EDATA, type = H5Dget_type(d), error);
    CNN_H5_CHECK_AS(CNN_EDATA, space = H5Dget_space(d), error);
    if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 4 ||
        H5Tget_sign(type) != H5T_SGN_2 || H5Sget_simple_extent_ndims(space) != 1) {
        st = cnn_error_set(CNN_EDATA, "%s: /labels: wrong type or rank (expected int32 (N))",
                           f->path);
        goto error;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, H5Sget_simple_extent_dims(space, dims, NULL), error);
    if ((size_t)dims[0] != f->n) {
        st = cnn_error_set(CNN_EDATA, "%s: /labels: %llu labels for %zu images", f->path,
                           (unsigned long long)dims[0], f->n);
        goto error;
    }
    if (!(f->labels = malloc(sizeof(int32_t) * f->n))) {
        st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", f->path);
        goto error;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                       f->labels), error);
    if ((st = verify_labels(f, d)) != CNN_OK) goto error;
    for (size_t i = 0; i < f->n; i++)
        if (f->labels[i] < 0 || f->labels[i] >= f->nclasses) {
            st = cnn_error_set(CNN_EDATA, "%s: /labels: label %d of image %zu is out of range "
                               "(expected 0..%d)", f->path, (int)f->labels[i], i, f->nclasses - 1);
            goto error;
        }
error:
    if (d >= 0) H5Dclose(d);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return st;
}

/* The file offset of every chunk (or of the contiguous block) of /images.
 * A filtered, compact or partly unwritten dataset leaves fd = -1: it can
 * be read through HDF5 (load = memory) but not with pread(). */
static cnn_status_t map_chunks(cnn_h5data_t *f)
{
    cnn_status_t st = CNN_OK;
    cnn_h5data_priv_t *p = f->priv;
    hid_t dcpl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID, space = H5I_INVALID_HID;
    const size_t isz = (size_t)f->c * f->h * f->w;
    hsize_t ub = 0, cdims[4];
    CNN_H5_CHECK_AS(CNN_EDATA, dcpl = H5Dget_create_plist(p->images), error);
    CNN_H5_CHECK_AS(CNN_EDATA, fcpl = H5Fget_create_plist(cnn_h5r_file(p->r)), error);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Pget_userblock(fcpl, &ub), error);
    if (ub != 0 || H5Pget_nfilters(dcpl) != 0) goto error;
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout == H5D_CONTIGUOUS) {
        haddr_t a = H5Dget_offset(p->images);
        if (a == HADDR_UNDEF) goto error;
        p->chunk_rows = f->n;
        p->nchunks = 1;
        if (!(p->chunk_addr = malloc(sizeof(off_t)))) goto nomem;
        p->chunk_addr[0] = (off_t)a;
    } else if (layout == H5D_CHUNKED) {
        if (H5Pget_chunk(dcpl, 4, cdims) != 4 || cdims[1] != (hsize_t)f->c ||
            cdims[2] != (hsize_t)f->h || cdims[3] != (hsize_t)f->w || cdims[0] < 1) {
            st = cnn_error_set(CNN_EDATA, "%s: /images: chunks must hold whole images "
                               "(B,C,H,W)", f->path);
            goto error;
        }
        p->chunk_rows = (size_t)cdims[0];
        p->nchunks = (f->n + p->chunk_rows - 1) / p->chunk_rows;
        hsize_t have = 0;
        CNN_H5_CHECK_AS(CNN_EDATA, space = H5Dget_space(p->images), error);
        CNN_H5_CHECK_AS(CNN_EDATA, H5Dget_num_chunks(p->images, space, &have), error);
        if (have != p->nchunks) goto error;
        if (!(p->chunk_addr = malloc(sizeof(off_t) * p->nchunks))) goto nomem;
        for (size_t i = 0; i < p->nchunks; i++) p->chunk_addr[i] = -1;
        for (hsize_t i = 0; i < have; i++) {
            hsize_t off[4];
            unsigned mask;
            haddr_t a;
            hsize_t size;
            CNN_H5_CHECK_AS(CNN_EDATA, H5Dget_chunk_info(p->images, space, i, off, &mask, &a,
                                                         &size), error);
            if (off[0] % p->chunk_rows || off[0] / p->chunk_rows >= p->nchunks ||
                size != p->chunk_rows * isz || a == HADDR_UNDEF ||
                p->chunk_addr[off[0] / p->chunk_rows] != -1) {
                st = cnn_error_set(CNN_EDATA, "%s: /images: damaged chunk %llu", f->path,
                                   (unsigned long long)i);
                goto error;
            }
            p->chunk_addr[off[0] / p->chunk_rows] = (off_t)a;
        }
    } else {
        goto error;
    }
    p->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0)
        st = cnn_error_set(CNN_EDATA, "%s: cannot open: %s", f->path, strerror(errno));
    goto error;
nomem:
    st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", f->path);
error:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

cnn_status_t cnn_h5data_open(const char *path, cnn_h5data_t **out)
{
    cnn_status_t st;
    cnn_h5data_t *f = calloc(1, sizeof *f);
    *out = NULL;
    if (!f || !(f->path = dup_str(path)) || !(f->priv = calloc(1, sizeof *f->priv))) {
        cnn_h5data_close(f);
        return cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
    }
    f->priv->images = H5I_INVALID_HID;
    f->priv->fd = -1;
    if ((st = cnn_h5r_open(path, &f->priv->r)) != CNN_OK) goto fail;
    if ((st = check_root(f)) != CNN_OK) goto fail;
    if ((st = check_images(f)) != CNN_OK) goto fail;
    if ((st = read_labels(f)) != CNN_OK) goto fail;
    if ((st = map_chunks(f)) != CNN_OK) goto fail;
    *out = f;
    return CNN_OK;
fail:
    cnn_h5data_close(f);
    return st;
}

void cnn_h5data_close(cnn_h5data_t *f)
{
    if (!f) return;
    if (f->priv) {
        if (f->priv->images >= 0) H5Dclose(f->priv->images);
        cnn_h5r_close(f->priv->r);
        if (f->priv->fd >= 0) close(f->priv->fd);
        free(f->priv->chunk_addr);
        free(f->priv);
    }
    cnn_h5_strings_free(f->class_names, (size_t)f->nclasses);
    free(f->labels);
    free(f->path);
    free(f);
}

/* pread() all of [off, off + len) into buf. */
static int read_at(int fd, uint8_t *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t got = pread(fd, buf, len, off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        buf += got;
        len -= (size_t)got;
        off += got;
    }
    return 0;
}

cnn_status_t cnn_h5data_read_rows(const cnn_h5data_t *f, const size_t *rows, size_t n,
                                  uint8_t *out)
{
    const cnn_h5data_priv_t *p = f->priv;
    const size_t isz = (size_t)f->c * f->h * f->w;
    if (p->fd < 0)
        return cnn_error_set(CNN_EDATA, "%s: /images is compressed, compact or not fully "
                             "written: use data.load = memory", f->path);
    for (size_t k = 0; k < n;) {
        /* one read for a run of consecutive rows in one chunk */
        const size_t r0 = rows[k], chunk = r0 / p->chunk_rows;
        size_t run = 1;
        while (k + run < n && rows[k + run] == r0 + run && (r0 + run) / p->chunk_rows == chunk)
            run++;
        const off_t off = p->chunk_addr[chunk] + (off_t)((r0 % p->chunk_rows) * isz);
        if (read_at(p->fd, out + k * isz, run * isz, off) != 0)
            return cnn_error_set(CNN_EDATA, "%s: /images: cannot read image %zu: %s", f->path,
                                 r0, errno ? strerror(errno) : "file too short");
        k += run;
    }
    return CNN_OK;
}

cnn_status_t cnn_h5data_read_range(const cnn_h5data_t *f, size_t lo, size_t n, uint8_t *out)
{
    cnn_status_t st = CNN_OK;
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    if (n == 0) return CNN_OK;
    hsize_t start[4] = {lo, 0, 0, 0}, count[4] = {n, (hsize_t)f->c, (hsize_t)f->h,
                                                  (hsize_t)f->w};
    CNN_H5_CHECK_AS(CNN_EDATA, fs = H5Dget_space(f->priv->images), error);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL),
                    error);
    CNN_H5_CHECK_AS(CNN_EDATA, ms = H5Screate_simple(4, count, NULL), error);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Dread(f->priv->images, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT,
                                       out), error);
error:
    if (fs >= 0) H5Sclose(fs);
    if (ms >= 0) H5Sclose(ms);
    if (st != CNN_OK) cnn_error_prefix("%s: /images: ", f->path);
    return st;
}

/* Verifies the checksum of /images, all of whose rows are in images. A
 * file whose /labels has no checksum was already warned about by h5io
 * (once per file); one whose /labels has one but /images none is warned
 * about here. */
static cnn_status_t verify_images(const cnn_h5data_t *f, const uint8_t *images)
{
    const cnn_h5data_priv_t *p = f->priv;
    if (!p->images_crc) {
        if (p->labels_crc)
            fprintf(stderr, "mpicnn: warning: %s: /images has no checksum ('%s'): rewritten by "
                    "another tool; its data is read unverified\n", f->path, CNN_H5_CRC_ATTR);
        return CNN_OK;
    }
    const uint32_t got = cnn_crc32c(0, images, f->n * (size_t)f->c * f->h * f->w);
    if (got == p->images_want) return CNN_OK;
    return cnn_error_set(CNN_EDATA, "%s: /images: checksum mismatch: the data's CRC-32C is "
                         "0x%08x, the file records 0x%08llx ('%s'): the data changed after it "
                         "was written", f->path, (unsigned)got,
                         (unsigned long long)p->images_want, CNN_H5_CRC_ATTR);
}

cnn_status_t cnn_h5data_load(const char *path, cnn_dataset_t **out)
{
    cnn_status_t st;
    cnn_h5data_t *f = NULL;
    cnn_dataset_t *ds = NULL;
    *out = NULL;
    CNN_TRY(cnn_h5data_open(path, &f));
    const size_t isz = (size_t)f->c * f->h * f->w;
    if (!(ds = calloc(1, sizeof *ds)) || !(ds->images = malloc(f->n * isz))) {
        st = cnn_error_set(CNN_ENOMEM, "%s: cannot allocate %zu images", path, f->n);
        goto done;
    }
    if ((st = cnn_h5data_read_range(f, 0, f->n, ds->images)) != CNN_OK) goto done;
    if ((st = verify_images(f, ds->images)) != CNN_OK) goto done;
    ds->n = f->n;
    ds->c = f->c;
    ds->h = f->h;
    ds->w = f->w;
    ds->labels = f->labels;
    ds->nclasses = f->nclasses;
    ds->class_names = f->class_names;
    f->labels = NULL;
    f->class_names = NULL;
    f->nclasses = 0;
    *out = ds;
    ds = NULL;
done:
    cnn_dataset_free(ds);
    cnn_h5data_close(f);
    return st;
}

/* ---- the recipe ---------------------------------------------------------- */

cnn_status_t cnn_h5data_recipe_read(const char *path, cnn_h5data_recipe_t *out)
{
    static const char *const names[3] = {"resize", "fit", "channels"};
    char **fields[3] = {&out->resize, &out->fit, &out->channels};
    cnn_h5r_t *r = NULL;
    cnn_status_t st;
    memset(out, 0, sizeof *out);
    CNN_TRY(cnn_h5r_open(path, &r));
    for (int k = 0; k < 3; k++) {
        if (!cnn_h5r_attr_exists(r, "/", names[k])) continue;
        if ((st = cnn_h5r_attr_str(r, "/", names[k], fields[k])) != CNN_OK) {
            cnn_h5data_recipe_free(out);
            cnn_h5r_close(r);
            return st;
        }
    }
    cnn_h5r_close(r);
    return CNN_OK;
}

void cnn_h5data_recipe_free(cnn_h5data_recipe_t *r)
{
    if (!r) return;
    free(r->resize);
    free(r->fit);
    free(r->channels);
    memset(r, 0, sizeof *r);
}
