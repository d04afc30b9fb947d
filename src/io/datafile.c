/* datafile.c - the parallel writer of data files (see datafile.h).
 *
 * Parallel HDF5 asks every rank to make the same metadata calls (create
 * the file and each dataset with the same arguments); the raw data of a
 * dataset is then written by each rank for its own hyperslab in one
 * collective H5Dwrite, a rank with no images taking part with an empty
 * selection. The small objects are written afterwards by rank 0 alone, so
 * no variable-length data goes through MPI-IO. */
#include "mpicnn/datafile.h"

#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "mpicnn/dist.h"
#include "mpicnn/h5io.h"
#include "mpicnn/rng.h"

size_t cnn_datafile_chunk_images(size_t n, int c, int h, int w)
{
    const size_t img = (size_t)c * (size_t)h * (size_t)w;
    size_t b = img ? CNN_DATA_CHUNK_BYTES / img : 1;
    if (b < 1) b = 1;
    if (b > n) b = n;
    return b ? b : 1;
}

/* Creates dataset `name` of file type ftype and shape dims[nd] in file,
 * chunked by `chunk` rows when chunk > 0, and writes this rank's rows
 * first .. first+count-1 (row = product of dims[1..]) from buf. */
static cnn_status_t write_slab(hid_t file, const char *name, hid_t ftype, hid_t mtype, int nd,
                               const hsize_t *dims, hsize_t chunk, hsize_t first,
                               hsize_t count, const void *buf)
{
    cnn_status_t st = CNN_OK;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hid_t ds = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
    hsize_t start[4] = {first, 0, 0, 0}, cnt[4], cdims[4];
    for (int i = 0; i < nd; i++) cnt[i] = cdims[i] = dims[i];
    cnt[0] = count;
    cdims[0] = chunk;
    CNN_H5_CHECK(fspace = H5Screate_simple(nd, dims, NULL), done);
    CNN_H5_CHECK(dcpl = H5Pcreate(H5P_DATASET_CREATE), done);
    /* no time stamps: the same data make the same bytes */
    CNN_H5_CHECK(H5Pset_obj_track_times(dcpl, 0), done);
    CNN_H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), done);
    if (chunk > 0) CNN_H5_CHECK(H5Pset_chunk(dcpl, nd, cdims), done);
    CNN_H5_CHECK(ds = H5Dcreate2(file, name, ftype, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT), done);
    /* the memory space has the slab's own shape, so HDF5 copies whole rows
     * instead of mapping element by element between unlike shapes */
    hsize_t mdims[4];
    for (int i = 0; i < nd; i++) mdims[i] = cnt[i];
    if (count == 0) mdims[0] = 1;
    CNN_H5_CHECK(mspace = H5Screate_simple(nd, mdims, NULL), done);
    if (count > 0) {
        CNN_H5_CHECK(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL), done);
    } else {
        CNN_H5_CHECK(H5Sselect_none(fspace), done);
        CNN_H5_CHECK(H5Sselect_none(mspace), done);
    }
    CNN_H5_CHECK(dxpl = H5Pcreate(H5P_DATASET_XFER), done);
    CNN_H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), done);
    CNN_H5_CHECK(H5Dwrite(ds, mtype, mspace, fspace, dxpl, buf), done);
done:
    if (ds >= 0 && H5Dclose(ds) < 0 && st == CNN_OK)
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Dclose(ds)");
    if (dxpl >= 0) H5Pclose(dxpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (st != CNN_OK) cnn_error_prefix("%s", name);
    return st;
}

/* Every rank: the file with /images and /labels, through MPI-IO. */
static cnn_status_t write_parallel(MPI_Comm comm, const char *tmp, const cnn_datafile_t *d)
{
    cnn_status_t st = CNN_OK;
    hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID;
    const hsize_t idims[4] = {d->n, (hsize_t)d->c, (hsize_t)d->h, (hsize_t)d->w};
    const hsize_t ldims[1] = {d->n};
    const hsize_t chunk = cnn_datafile_chunk_images(d->n, d->c, d->h, d->w);
    static const uint8_t none8 = 0;
    static const int32_t none32 = 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    CNN_H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS), done);
    CNN_H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), done);
    CNN_H5_CHECK(file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl), done);
    st = write_slab(file, "/images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, idims, chunk, d->first,
                    d->count, d->count ? (const void *)d->images : &none8);
    if (st != CNN_OK) goto done;
    st = write_slab(file, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, ldims, 0, d->first,
                    d->count, d->count ? (const void *)d->labels : &none32);
done:
    /* H5Fclose is collective: every rank closes even after a failure */
    if (file >= 0 && H5Fclose(file) < 0 && st == CNN_OK)
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Fclose(file)");
    if (fapl >= 0) H5Pclose(fapl);
    return st;
}

/* Adds k labels to the CRC-32C crc, each as its 4 stored bytes
 * (int32 little-endian), whatever the host's byte order. */
static uint32_t crc_labels_le(uint32_t crc, const int32_t *l, size_t k)
{
    unsigned char le[256];
    for (size_t at = 0; at < k;) {
        size_t m = 0;
        for (; m < sizeof le / 4 && at < k; m++, at++) {
            const uint32_t v = (uint32_t)l[at];
            for (int b = 0; b < 4; b++) le[4 * m + (size_t)b] = (unsigned char)(v >> (8 * b));
        }
        crc = cnn_crc32c(crc, le, 4 * m);
    }
    return crc;
}

/* Adds the k rows of buf (labels, or images of `row` bytes) to sums
 * (per channel plane for images) and to the running CRC-32C *crc. */
static void sum_block(const void *buf, size_t k, size_t row, const cnn_datafile_t *d,
                      int labels, uint64_t *sums, uint32_t *crc)
{
    const size_t hw = (size_t)d->h * (size_t)d->w;
    if (labels) {
        for (size_t i = 0; i < k; i++) sums[0] += (uint64_t)((const int32_t *)buf)[i];
        *crc = crc_labels_le(*crc, buf, k);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        const uint8_t *img = (const uint8_t *)buf + i * row;
        for (int ch = 0; ch < d->c; ch++)
            for (size_t p = 0; p < hw; p++) sums[ch] += img[(size_t)ch * hw + p];
    }
    *crc = cnn_crc32c(*crc, buf, k * row);
}

/* Reads dataset `name` back in blocks of rows, adding every byte (per
 * channel plane for images) or every label into sums, and computes the
 * CRC-32C of its stored bytes in *crc. */
static cnn_status_t sum_back(hid_t file, const char *name, const cnn_datafile_t *d, int labels,
                             uint64_t *sums, uint32_t *crc)
{
    cnn_status_t st = CNN_OK;
    hid_t ds = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    const size_t row = labels ? 1 : (size_t)d->h * (size_t)d->w * (size_t)d->c;
    const size_t block = cnn_datafile_chunk_images(d->n, d->c, d->h, d->w);
    void *buf = malloc(block * row * (labels ? sizeof(int32_t) : 1));
    if (!buf) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", name);
    *crc = 0;
    CNN_H5_CHECK(ds = H5Dopen2(file, name, H5P_DEFAULT), done);
    CNN_H5_CHECK(fspace = H5Dget_space(ds), done);
    for (size_t at = 0; at < d->n; at += block) {
        const size_t k = d->n - at < block ? d->n - at : block;
        hsize_t start[4] = {at, 0, 0, 0}, cnt[4] = {k, (hsize_t)d->c, (hsize_t)d->h, (hsize_t)d->w};
        const int nd = labels ? 1 : 4;
        CNN_H5_CHECK(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL), done);
        CNN_H5_CHECK(mspace = H5Screate_simple(nd, cnt, NULL), done);
        CNN_H5_CHECK(H5Dread(ds, labels ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT8, mspace, fspace,
                             H5P_DEFAULT, buf), done);
        H5Sclose(mspace);
        mspace = H5I_INVALID_HID;
        sum_block(buf, k, row, d, labels, sums, crc);
    }
done:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (ds >= 0) H5Dclose(ds);
    free(buf);
    if (st != CNN_OK) cnn_error_prefix("%s", name);
    return st;
}

/* Attaches crc to dataset `name` as attribute CNN_H5_CRC_ATTR (uint32),
 * as h5io's writers do for the datasets they create. */
static cnn_status_t attach_crc(hid_t file, const char *name, uint32_t crc)
{
    cnn_status_t st = CNN_OK;
    hid_t ds = H5I_INVALID_HID, one = H5I_INVALID_HID, a = H5I_INVALID_HID;
    CNN_H5_CHECK(ds = H5Dopen2(file, name, H5P_DEFAULT), done);
    CNN_H5_CHECK(one = H5Screate(H5S_SCALAR), done);
    CNN_H5_CHECK(a = H5Acreate2(ds, CNN_H5_CRC_ATTR, H5T_STD_U32LE, one, H5P_DEFAULT,
                                H5P_DEFAULT), done);
    CNN_H5_CHECK(H5Awrite(a, H5T_NATIVE_UINT32, &crc), done);
done:
    if (a >= 0) H5Aclose(a);
    if (one >= 0) H5Sclose(one);
    if (ds >= 0) H5Dclose(ds);
    if (st != CNN_OK) cnn_error_prefix("%s: attribute %s", name, CNN_H5_CRC_ATTR);
    return st;
}

/* Rank 0: the seal of the datasets the ranks wrote in parallel. Their
 * stored bytes are read back once and must add up to the sums of what the
 * ranks decoded (a slab lost or misplaced by the parallel write shows
 * here); this one pass over the stored bytes is where each dataset's
 * checksum attribute is computed and attached. */
static cnn_status_t seal_slab_datasets(cnn_h5w_t *w, const cnn_datafile_t *d)
{
    uint64_t got[4] = {0, 0, 0, 0};
    uint32_t icrc = 0, lcrc = 0;
    hid_t file = cnn_h5w_file(w);
    CNN_TRY(sum_back(file, "/images", d, 0, got, &icrc));
    CNN_TRY(sum_back(file, "/labels", d, 1, got + d->c, &lcrc));
    for (int i = 0; i <= d->c; i++)
        if (got[i] != d->sums[i])
            return cnn_error_set(CNN_EIO, "%s: %s read back does not match what was written "
                                 "(sum %llu, expected %llu)", cnn_h5w_path(w),
                                 i < d->c ? "/images" : "/labels", (unsigned long long)got[i],
                                 (unsigned long long)d->sums[i]);
    CNN_TRY(attach_crc(file, "/images", icrc));
    return attach_crc(file, "/labels", lcrc);
}

/* Rank 0: classes, normalisation and attributes, with the serial writer. */
static cnn_status_t write_small(cnn_h5w_t *w, const cnn_datafile_t *d)
{
    const size_t c = (size_t)d->c;
    CNN_TRY(cnn_h5w_attr_str(w, "/", "format", CNN_DATA_FORMAT));
    CNN_TRY(cnn_h5w_attr_int64(w, "/", "format_version", CNN_DATA_FORMAT_VERSION));
    CNN_TRY(cnn_h5w_strings(w, "/classes", (size_t)d->nclasses, d->classes));
    CNN_TRY(cnn_h5w_floats(w, "/normalization/mean", 1, &c, d->mean));
    CNN_TRY(cnn_h5w_floats(w, "/normalization/std", 1, &c, d->std));
    CNN_TRY(cnn_h5w_attr_str(w, "/", "source", d->source));
    CNN_TRY(cnn_h5w_attr_str(w, "/", "options", d->options));
    CNN_TRY(cnn_h5w_attr_str(w, "/", "resize", d->resize));
    CNN_TRY(cnn_h5w_attr_str(w, "/", "fit", d->fit));
    CNN_TRY(cnn_h5w_attr_str(w, "/", "channels", d->channels));
    CNN_TRY(cnn_h5w_attr_int64(w, "/", "skipped", d->skipped));
    return seal_slab_datasets(w, d);
}

cnn_status_t cnn_datafile_write(MPI_Comm comm, const char *tmp, cnn_afile_t *out,
                                const cnn_datafile_t *d)
{
    cnn_status_t st = write_parallel(comm, tmp, d);
    if (st != CNN_OK) cnn_error_prefix("cannot write %s", out ? cnn_afile_path(out) : tmp);
    st = cnn_dist_agree(comm, st);
    if (st != CNN_OK || !out) return cnn_dist_agree(comm, st);
    cnn_h5w_t *w = NULL;
    st = cnn_h5w_reopen(out, &w);
    if (st == CNN_OK) {
        st = write_small(w, d);
        cnn_status_t cl = cnn_h5w_close(w);
        if (st == CNN_OK) st = cl;
    }
    return cnn_dist_agree(comm, st);
}
