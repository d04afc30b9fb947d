/* h5io.h - a thin, checked layer over HDF5 for model and checkpoint files.
 *
 * Serial use only: one process (rank 0) writes a file, any process reads.
 * Every HDF5 call goes through CNN_H5_CHECK, which records where it failed
 * and a one-line summary of HDF5's error stack (HDF5's own printing to
 * stderr is switched off the first time any function here runs).
 *
 * Writing is atomic, through the one atomic writer of fs.h:
 * cnn_h5w_open() starts it (a temporary file next to the target,
 * `<dir>/.<base>.tmp.<host>.<pid>`) and creates an HDF5 file in memory
 * (the core driver); cnn_h5w_commit() writes the memory image to the
 * temporary file and commits it (fsync, rename over the target, fsync of
 * the directory). A reader sees either the old file or the complete new one,
 * never a partial file. HDF5 itself never touches the disk while
 * writing, so a full disk is a plain ENOSPC from write(2) or fsync(2)
 * ("disk full"), never a half-closed HDF5 file.
 *
 * Object paths are absolute HDF5 paths ("/layers/conv1/weight"); writers
 * create the intermediate groups. Readers check the class, rank and every
 * dimension of what they read and refuse absurd sizes before allocating;
 * a bad file gives CNN_EDATA with a message naming the file and the
 * object, e.g.
 *     run/model.h5: /layers/conv1/weight: shape (32,1,3,3) expected (32,1,5,5)
 *
 * Checksums: every dataset the writers create carries attribute
 * CNN_H5_CRC_ATTR, a uint32: the CRC-32C (rng.h) of its elements in the
 * stored type encoded little-endian, in row-major order (a string
 * dataset: each string's UTF-8 bytes followed by a NUL). The dataset
 * readers verify it once the values passed their own checks (a mismatch
 * is CNN_EDATA naming the dataset). A dataset without one (a file from an
 * older mpicnn, or a dataset rewritten by another tool) is read, with one
 * warning line per file on stderr.
 *
 * Limits: cnn_h5r_open() refuses a file with a soft, external or
 * user-defined link anywhere, or a dataset with virtual or external
 * storage or any filter (mpicnn writes none of these). String datasets
 * and attributes hold at most CNN_H5_STR_MAX bytes.
 */
#ifndef MPICNN_H5IO_H
#define MPICNN_H5IO_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "mpicnn/fs.h"
#include "mpicnn/status.h"

/* Largest rank of a float dataset the readers and writers handle. */
#define CNN_H5_MAXDIMS 8

/* The checksum attribute of every dataset mpicnn writes (see above). */
#define CNN_H5_CRC_ATTR "mpicnn_crc32c"

/* Most bytes of strings (their sum) one dataset or attribute may hold:
 * 16 MiB, the limit of a config file. */
#define CNN_H5_STR_MAX ((size_t)16 << 20)

/* Tells the readers which MPI rank this process is, for their warnings:
 * rank 0 prints them as "mpicnn: rank 0: warning: ...", other ranks stay
 * silent (they read the same files). Without a call every process prints
 * "mpicnn: warning: ...". */
void cnn_h5_set_rank(int rank);

/* Records "SRCFILE:LINE: <call>: <HDF5 error summary>" as the message of
 * status `status` and returns `status`. Clears HDF5's error stack. Used by
 * the macros below; call it directly only after a failed HDF5 call. */
cnn_status_t cnn_h5_error_set(cnn_status_t status, const char *file, int line,
                              const char *call);

/* Runs `expr` (an HDF5 call, or an assignment of one); on a negative
 * result sets the local `cnn_status_t st` to `status` with the message
 * above and jumps to `label`. Needs `st` in scope. */
#define CNN_H5_CHECK_AS(status, expr, label)                                   \
    CNN_H5_CHECK_TEXT_((status), (expr), #expr, label)

/* The same with CNN_EIO (writing side). Readers use CNN_EDATA. */
#define CNN_H5_CHECK(expr, label) CNN_H5_CHECK_TEXT_(CNN_EIO, (expr), #expr, label)

/* Shared body; `text` is the call as written (stringized by the macros
 * above, before HDF5's own macros such as H5P_DEFAULT expand). */
#define CNN_H5_CHECK_TEXT_(status, expr, text, label)                          \
    do {                                                                       \
        if ((expr) < 0) {                                                      \
            st = cnn_h5_error_set((status), __FILE__, __LINE__, (text));       \
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* Frees an array of n malloc'd strings and the array. NULL is a no-op. */
void cnn_h5_strings_free(char **s, size_t n);

/* ---- atomic writer ---------------------------------------------------- */

typedef struct cnn_h5w cnn_h5w_t;

/* Creates the temporary file for `path` (same directory) and returns a
 * writer in *w (NULL on failure). The target is not touched until commit.
 * Fails with CNN_EIO naming `path` and strerror (no such directory, parent
 * not a directory, permission denied, disk full). Borrows `path`. */
cnn_status_t cnn_h5w_open(const char *path, cnn_h5w_t **w);

/* Closes the file (checked), fsyncs it, renames it over the target and
 * fsyncs the directory. Always consumes and frees w. On failure removes
 * the temporary file, leaves the target as it was and returns CNN_EIO
 * naming the target and the cause ("disk full" for ENOSPC). */
cnn_status_t cnn_h5w_commit(cnn_h5w_t *w);

/* Closes and removes the temporary file and frees w. NULL is a no-op. */
void cnn_h5w_abort(cnn_h5w_t *w);

/* The target path given to cnn_h5w_open(). Owned by w. */
const char *cnn_h5w_path(const cnn_h5w_t *w);

/* The open HDF5 file of w, for calls this module does not wrap. Owned by
 * w: do not close it; objects opened on it must be closed before commit. */
hid_t cnn_h5w_file(const cnn_h5w_t *w);

/* The bytes of the file as it stands (flushed), in a malloc'd *image of
 * *size bytes (caller frees). commit writes exactly this; the ckpt_kill
 * test hook writes part of it to show a crash in the middle of a write. */
cnn_status_t cnn_h5w_image(cnn_h5w_t *w, void **image, size_t *size);

/* The temporary file of w (`<dir>/.<base>.tmp.<host>.<pid>`), for the
 * test hook that leaves a half-written file behind. Owned by w. Leftover
 * temporary files are removed with cnn_afile_clean_stale() (fs.h). */
const char *cnn_h5w_tmp_path(const cnn_h5w_t *w);

/* Creates group `obj` (and its parents). An existing group is fine. */
cnn_status_t cnn_h5w_group(cnn_h5w_t *w, const char *obj);

/* Dataset `obj` of float32, shape dims[0..ndims-1] (1 <= ndims <=
 * CNN_H5_MAXDIMS), from data (row-major, product(dims) values). */
cnn_status_t cnn_h5w_floats(cnn_h5w_t *w, const char *obj, int ndims,
                            const size_t *dims, const float *data);

/* 1-d datasets of n float64 / int64 values. */
cnn_status_t cnn_h5w_doubles(cnn_h5w_t *w, const char *obj, size_t n,
                             const double *data);
cnn_status_t cnn_h5w_int64s(cnn_h5w_t *w, const char *obj, size_t n,
                            const int64_t *data);

/* 1-d dataset of n variable-length UTF-8 strings (h5py reads them as str
 * with .asstr(), or bytes by default). */
cnn_status_t cnn_h5w_strings(cnn_h5w_t *w, const char *obj, size_t n,
                             const char *const *strs);

/* Attributes `name` on the existing object `obj` ("/" for the file):
 * a variable-length UTF-8 string, a 1-d array of n such strings, a scalar
 * int64, a scalar float64. An existing attribute of that name is
 * replaced. */
cnn_status_t cnn_h5w_attr_str(cnn_h5w_t *w, const char *obj, const char *name,
                              const char *value);
cnn_status_t cnn_h5w_attr_strings(cnn_h5w_t *w, const char *obj,
                                  const char *name, size_t n,
                                  const char *const *strs);
cnn_status_t cnn_h5w_attr_int64(cnn_h5w_t *w, const char *obj, const char *name,
                                int64_t value);
cnn_status_t cnn_h5w_attr_double(cnn_h5w_t *w, const char *obj,
                                 const char *name, double value);

/* Opens the temp file of `out`, which another writer made and closed (the
 * parallel writer of a data file, pack.h), for adding datasets and
 * attributes with the functions above, through HDF5's default (POSIX)
 * driver. Messages name out's final path. Finish with cnn_h5w_close(),
 * never commit or abort: out stays the caller's, who commits or aborts it
 * after the close. */
cnn_status_t cnn_h5w_reopen(cnn_afile_t *out, cnn_h5w_t **w);

/* Closes a writer of cnn_h5w_reopen() (checked) and frees it. NULL is a
 * no-op. */
cnn_status_t cnn_h5w_close(cnn_h5w_t *w);

/* ---- checked reader --------------------------------------------------- */

typedef struct cnn_h5r cnn_h5r_t;

/* Opens `path` read-only into *r (NULL on failure). CNN_EDATA naming the
 * file if it is missing, unreadable, not HDF5 or truncated. Borrows path.
 * Close with cnn_h5r_close(). */
cnn_status_t cnn_h5r_open(const char *path, cnn_h5r_t **r);

/* Closes r and frees it. NULL is a no-op. */
void cnn_h5r_close(cnn_h5r_t *r);

/* The path given to cnn_h5r_open(). Owned by r. */
const char *cnn_h5r_path(const cnn_h5r_t *r);

/* The open HDF5 file of r. Owned by r: do not close it. */
hid_t cnn_h5r_file(const cnn_h5r_t *r);

/* 1 if object `obj` exists (every component of the path resolves), else 0. */
int cnn_h5r_exists(cnn_h5r_t *r, const char *obj);

/* 1 if object `obj` exists and has attribute `name`, else 0. */
int cnn_h5r_attr_exists(cnn_h5r_t *r, const char *obj, const char *name);

/* 1 if `obj` is a group, 0 if it is something else or missing. */
int cnn_h5r_is_group(cnn_h5r_t *r, const char *obj);

/* Shape of dataset `obj`: *ndims (0 for a scalar) and dims[0..*ndims-1].
 * CNN_EDATA if it is not a dataset or has more than CNN_H5_MAXDIMS dims. */
cnn_status_t cnn_h5r_shape(cnn_h5r_t *r, const char *obj, int *ndims,
                           size_t dims[CNN_H5_MAXDIMS]);

/* Reads dataset `obj` into out (product(want_dims) floats). Requires a
 * float dataset (float32, or float64 converted to float32) of rank
 * `ndims` and exactly the dims want_dims[0..ndims-1], and every value
 * finite. CNN_EDATA otherwise, naming the file, the dataset and what was
 * expected vs found. On failure out may be partly written. */
cnn_status_t cnn_h5r_floats(cnn_h5r_t *r, const char *obj, int ndims,
                            const size_t *want_dims, float *out);

/* As cnn_h5r_floats, into doubles: float32 or float64 data, unrounded
 * (float64 keeps its full precision), every value finite. */
cnn_status_t cnn_h5r_reals(cnn_h5r_t *r, const char *obj, int ndims,
                           const size_t *want_dims, double *out);

/* Read a 1-d dataset of at most `maxlen` values into a malloc'd array
 * (*out, caller frees; never NULL on success, even for length 0) and its
 * length *n. doubles takes float or integer data (converted), int64s only
 * integer data. Values are not checked for finiteness. A longer dataset is
 * refused before anything is allocated. */
cnn_status_t cnn_h5r_doubles(cnn_h5r_t *r, const char *obj, size_t maxlen,
                             double **out, size_t *n);
cnn_status_t cnn_h5r_int64s(cnn_h5r_t *r, const char *obj, size_t maxlen,
                            int64_t **out, size_t *n);

/* Reads a 1-d dataset of at most `maxlen` strings (variable-length or
 * fixed-length) into a malloc'd array of malloc'd strings *out, length *n.
 * Free with cnn_h5_strings_free(*out, *n). */
cnn_status_t cnn_h5r_strings(cnn_h5r_t *r, const char *obj, size_t maxlen,
                             char ***out, size_t *n);

/* Attribute readers on object `obj`. A string attribute (scalar, vlen or
 * fixed) comes back malloc'd in *out (caller frees). int64 requires an
 * integer attribute, double takes float or integer; both must hold
 * exactly one value. attr_strings reads a 1-d string array attribute like
 * cnn_h5r_strings(). */
cnn_status_t cnn_h5r_attr_str(cnn_h5r_t *r, const char *obj, const char *name,
                              char **out);
cnn_status_t cnn_h5r_attr_strings(cnn_h5r_t *r, const char *obj,
                                  const char *name, size_t maxlen, char ***out,
                                  size_t *n);
cnn_status_t cnn_h5r_attr_int64(cnn_h5r_t *r, const char *obj, const char *name,
                                int64_t *out);
cnn_status_t cnn_h5r_attr_double(cnn_h5r_t *r, const char *obj,
                                 const char *name, double *out);

/* The names of the children of group `obj` (groups, datasets, any link),
 * sorted by name, as a malloc'd array of malloc'd strings *names with
 * length *n. Free with cnn_h5_strings_free(*names, *n). */
cnn_status_t cnn_h5r_list(cnn_h5r_t *r, const char *obj, char ***names,
                          size_t *n);

#endif
