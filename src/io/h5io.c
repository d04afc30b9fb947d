/* h5io.c - checked HDF5 reading and atomic HDF5 writing (see h5io.h).
 *
 * HDF5's automatic error printing is switched off; a failed call is
 * summarised from a copy of the error stack (outermost and innermost
 * descriptions plus the minor message) into the status message.
 *
 * Every dataset written carries the CRC-32C of its data (CNN_H5_CRC_ATTR);
 * the readers verify it after the values themselves passed their checks.
 *
 * MPICNN_FAULT=write_fail[@STEP] (tests only; see fault.h) makes the first
 * commit once STEP global steps are done fail as a full disk would, after
 * the data is written and before the rename: the target stays as it was. */
#include "mpicnn/h5io.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicnn/fault.h"
#include "mpicnn/fs.h"
#include "mpicnn/rng.h"

/* Most bytes of strings one dataset or attribute may hold (refused before
 * they are copied), the limit of a config file (docs/reliability.md). */
#define STR_BYTES_MAX CNN_H5_STR_MAX
/* Most children of one group cnn_h5r_list() enumerates. */
#define LIST_MAX ((hsize_t)1 << 20)

/* The element types of the typed numeric datasets and attributes: how
 * they are stored (little-endian) and read, which stored classes a
 * reader converts from, and their name in messages. (HDF5's type ids are
 * not constants, hence functions.) */
typedef struct {
    hid_t file, mem;
    H5T_class_t cls, cls2;
    const char *name;
} num_type_t;

static num_type_t f64_type(void)
{
    return (num_type_t){H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H5T_FLOAT, H5T_INTEGER, "float64"};
}

static num_type_t i64_type(void)
{
    return (num_type_t){H5T_STD_I64LE, H5T_NATIVE_INT64, H5T_INTEGER, H5T_INTEGER, "int64"};
}

/* ---- errors ----------------------------------------------------------- */

typedef struct {
    char inner[256], outer[160], minor[96];
    int n;
} walk_t;

/* One line from an HDF5 error description: the text before its details
 * (a system call failure reads "file write failed: time = ...\n,
 * filename = ..., errno = 28, error message = '...', buf = ..."), plus
 * the system's message if there is one. */
static void tidy_desc(char *dst, size_t len, const char *desc)
{
    size_t n = strcspn(desc, "\n");
    const char *t = strstr(desc, ": time = ");
    if (t && (size_t)(t - desc) < n) n = (size_t)(t - desc);
    const char *m = strstr(desc, "error message = '");
    if (m) {
        m += strlen("error message = '");
        snprintf(dst, len, "%.*s: %.*s", (int)n, desc, (int)strcspn(m, "'\n"), m);
    } else {
        snprintf(dst, len, "%.*s", (int)n, desc);
    }
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *p)
{
    walk_t *wk = p;
    const char *desc = e->desc && e->desc[0] ? e->desc : e->func_name;
    if (wk->n == 0) {
        /* H5E_WALK_UPWARD starts where the error was detected */
        tidy_desc(wk->inner, sizeof wk->inner, desc ? desc : "");
        if (H5Eget_msg(e->min_num, NULL, wk->minor, sizeof wk->minor) < 0)
            wk->minor[0] = '\0';
    }
    tidy_desc(wk->outer, sizeof wk->outer, desc ? desc : "");
    wk->n++;
    return 0;
}

/* One line from HDF5's current error stack, which is cleared. */
static void h5_summary(char *buf, size_t len)
{
    walk_t wk = {.n = 0};
    hid_t stk = H5Eget_current_stack();
    if (stk < 0) {
        snprintf(buf, len, "no HDF5 error details");
        return;
    }
    if (H5Ewalk2(stk, H5E_WALK_UPWARD, walk_cb, &wk) < 0 || wk.n == 0) {
        snprintf(buf, len, "no HDF5 error details");
    } else {
        const int full = strstr(wk.inner, "errno = 28") != NULL ||
                         strstr(wk.inner, "No space left") != NULL;
        /* the outer description often repeats the inner one's start */
        const int same = wk.n == 1 || strncmp(wk.inner, wk.outer, strlen(wk.outer)) == 0;
        snprintf(buf, len, "%s%s%s%s%s%s%s", full ? "disk full: " : "",
                 same ? "" : wk.outer, same ? "" : ": ", wk.inner,
                 wk.minor[0] ? " (" : "", wk.minor, wk.minor[0] ? ")" : "");
    }
    H5Eclose_stack(stk);
}

cnn_status_t cnn_h5_error_set(cnn_status_t status, const char *file, int line,
                              const char *call)
{
    char sum[600];
    const char *base = strrchr(file, '/');
    h5_summary(sum, sizeof sum);
    return cnn_error_set(status, "%s:%d: %.160s: %s", base ? base + 1 : file,
                         line, call, sum);
}

/* Switches off HDF5's printing of error stacks (idempotent and cheap). */
static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

void cnn_h5_strings_free(char **s, size_t n)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* 1 if every component of `obj` resolves to an object in `file`. */
static int path_exists(hid_t file, const char *obj)
{
    if (!obj || obj[0] != '/') return 0;
    if (strcmp(obj, "/") == 0) return 1;
    char *buf = dup_str(obj);
    if (!buf) return 0;
    int ok = 1;
    for (char *p = buf + 1; ok; p++) {
        if (*p == '/' || *p == '\0') {
            const char c = *p;
            *p = '\0';
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) ok = 0;
            *p = c;
            if (c == '\0') break;
        }
    }
    if (ok && H5Oexists_by_name(file, obj, H5P_DEFAULT) <= 0) ok = 0;
    free(buf);
    H5Eclear2(H5E_DEFAULT);
    return ok;
}

/* A variable-length UTF-8 string type (close it). Negative on failure. */
static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* ---- writer ----------------------------------------------------------- */

struct cnn_h5w {
    hid_t file;
    hid_t lcpl; /* creates intermediate groups */
    cnn_afile_t *out; /* the temp file commit writes the image to */
};

const char *cnn_h5w_path(const cnn_h5w_t *w) { return cnn_afile_path(w->out); }
hid_t cnn_h5w_file(const cnn_h5w_t *w) { return w->file; }
const char *cnn_h5w_tmp_path(const cnn_h5w_t *w) { return cnn_afile_tmp_path(w->out); }

/* Closes the HDF5 handles of w (an in-memory file: no disk is touched). */
static void writer_close_h5(cnn_h5w_t *w)
{
    if (w->lcpl >= 0) H5Pclose(w->lcpl);
    if (w->file >= 0) H5Fclose(w->file);
    w->lcpl = w->file = H5I_INVALID_HID;
    H5Eclear2(H5E_DEFAULT);
}

void cnn_h5w_abort(cnn_h5w_t *w)
{
    if (!w) return;
    writer_close_h5(w);
    cnn_afile_abort(w->out);
    free(w);
}

/* The in-memory HDF5 file of w, named after its temp file. */
static cnn_status_t writer_create_h5(cnn_h5w_t *w)
{
    cnn_status_t st = CNN_OK;
    hid_t fapl = H5I_INVALID_HID;
    CNN_H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS), done);
    /* closing the file closes every object still open in it */
    CNN_H5_CHECK(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), done);
    /* HDF5 builds the file in memory; commit writes the image with
     * write(2). A write error inside HDF5 (a full disk at H5Fclose) leaves
     * the library in a state that crashes at exit (HDF5 1.10); ours gives
     * a plain errno and nothing to clean up. */
    CNN_H5_CHECK(H5Pset_fapl_core(fapl, (size_t)1 << 22, 0), done);
    CNN_H5_CHECK(w->file = H5Fcreate(cnn_afile_tmp_path(w->out), H5F_ACC_TRUNC, H5P_DEFAULT,
                                     fapl), done);
    CNN_H5_CHECK(w->lcpl = H5Pcreate(H5P_LINK_CREATE), done);
    CNN_H5_CHECK(H5Pset_create_intermediate_group(w->lcpl, 1), done);
done:
    if (fapl >= 0) H5Pclose(fapl);
    return st;
}

cnn_status_t cnn_h5w_open(const char *path, cnn_h5w_t **w)
{
    cnn_status_t st;
    *w = NULL;
    h5_quiet();
    cnn_h5w_t *x = calloc(1, sizeof *x);
    if (!x) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
    x->file = x->lcpl = H5I_INVALID_HID;
    /* The temp file is created now, so that a missing directory, a
     * read-only one or a full disk is a plain errno here rather than
     * HDF5's "unable to open file" later. */
    if ((st = cnn_afile_begin(path, &x->out)) != CNN_OK) {
        free(x);
        return st;
    }
    if ((st = writer_create_h5(x)) != CNN_OK) {
        cnn_error_prefix("cannot write %s", path);
        cnn_h5w_abort(x);
        return st;
    }
    *w = x;
    return CNN_OK;
}

cnn_status_t cnn_h5w_image(cnn_h5w_t *w, void **image, size_t *size)
{
    cnn_status_t st = CNN_OK;
    ssize_t n = -1;
    *image = NULL;
    *size = 0;
    CNN_H5_CHECK(H5Fflush(w->file, H5F_SCOPE_GLOBAL), fail);
    CNN_H5_CHECK(n = H5Fget_file_image(w->file, NULL, 0), fail);
    *image = malloc(n > 0 ? (size_t)n : 1);
    if (!*image)
        return cnn_error_set(CNN_ENOMEM, "cannot write %s: out of memory", cnn_h5w_path(w));
    CNN_H5_CHECK(H5Fget_file_image(w->file, *image, (size_t)n), fail);
    *size = (size_t)n;
    return CNN_OK;
fail:
    free(*image);
    *image = NULL;
    cnn_error_prefix("cannot write %s", cnn_h5w_path(w));
    return st;
}

/* The image of w's file, which is then closed (checked). */
static cnn_status_t writer_finish_h5(cnn_h5w_t *w, void **image, size_t *size)
{
    if (w->lcpl >= 0) H5Pclose(w->lcpl);
    w->lcpl = H5I_INVALID_HID;
    cnn_status_t st = cnn_h5w_image(w, image, size);
    /* an in-memory file: closing it touches no disk */
    herr_t e = H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    if (st == CNN_OK && e < 0) {
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Fclose(w->file)");
        cnn_error_prefix("cannot write %s", cnn_h5w_path(w));
    }
    return st;
}

cnn_status_t cnn_h5w_commit(cnn_h5w_t *w)
{
    void *image = NULL;
    size_t size = 0;
    if (!w) return cnn_error_set(CNN_EINTERNAL, "cnn_h5w_commit: no writer");
    cnn_status_t st = writer_finish_h5(w, &image, &size);
    if (st == CNN_OK) st = cnn_afile_write(w->out, image, size);
    free(image);
    if (st == CNN_OK && cnn_fault_write_due(CNN_FAULT_WRITE_FAIL, -1)) {
        /* MPICNN_FAULT=write_fail (tests only): the disk fills up now */
        st = cnn_error_set(CNN_EIO, "cannot write %s: fsync: disk full (%s) [simulated by "
                                    "MPICNN_FAULT=%s]", cnn_h5w_path(w), strerror(ENOSPC),
                           cnn_fault_get()->text);
    }
    if (st != CNN_OK) {
        cnn_h5w_abort(w);
        return st;
    }
    /* fsync, rename over the target, fsync of the directory */
    st = cnn_afile_commit(w->out);
    free(w);
    return st;
}

cnn_status_t cnn_h5w_group(cnn_h5w_t *w, const char *obj)
{
    cnn_status_t st = CNN_OK;
    hid_t g = H5I_INVALID_HID;
    if (path_exists(w->file, obj)) return CNN_OK;
    CNN_H5_CHECK(g = H5Gcreate2(w->file, obj, w->lcpl, H5P_DEFAULT, H5P_DEFAULT), done);
done:
    if (g >= 0 && H5Gclose(g) < 0 && st == CNN_OK)
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Gclose(g)");
    if (st != CNN_OK) cnn_error_prefix("%s: %s", cnn_h5w_path(w), obj);
    return st;
}

/* ---- checksums ---------------------------------------------------------- */

static int host_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* CRC-32C of n native elements of esize bytes, each encoded little-endian
 * (the bytes of a dataset of the matching little-endian type). */
static uint32_t crc_le(const void *data, size_t esize, size_t n)
{
    const unsigned char *p = data;
    if (host_little_endian() || esize == 1) return cnn_crc32c(0, p, esize * n);
    unsigned char buf[4096];
    const size_t per = sizeof buf / esize;
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i += per) {
        const size_t m = n - i < per ? n - i : per;
        for (size_t j = 0; j < m; j++)
            for (size_t b = 0; b < esize; b++)
                buf[j * esize + b] = p[(i + j) * esize + esize - 1 - b];
        crc = cnn_crc32c(crc, buf, m * esize);
    }
    return crc;
}

/* CRC-32C of n strings, each followed by its terminating NUL. */
static uint32_t crc_strings(size_t n, const char *const *strs)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) crc = cnn_crc32c(crc, strs[i], strlen(strs[i]) + 1);
    return crc;
}

/* Creates dataset obj of file type ftype and shape dims[ndims], writes
 * `total` elements of memory type mtype from data, and attaches `crc`,
 * the checksum of that data, as attribute CNN_H5_CRC_ATTR. */
static cnn_status_t write_dataset(cnn_h5w_t *w, const char *obj, hid_t ftype,
                                  hid_t mtype, int ndims, const hsize_t *dims,
                                  size_t total, const void *data, uint32_t crc)
{
    cnn_status_t st = CNN_OK;
    hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID, one = H5I_INVALID_HID;
    hid_t a = H5I_INVALID_HID;

    CNN_H5_CHECK(space = H5Screate_simple(ndims, dims, NULL), done);
    CNN_H5_CHECK(ds = H5Dcreate2(w->file, obj, ftype, space, w->lcpl, H5P_DEFAULT,
                                 H5P_DEFAULT), done);
    if (total > 0)
        CNN_H5_CHECK(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), done);
    CNN_H5_CHECK(one = H5Screate(H5S_SCALAR), done);
    CNN_H5_CHECK(a = H5Acreate2(ds, CNN_H5_CRC_ATTR, H5T_STD_U32LE, one, H5P_DEFAULT,
                                H5P_DEFAULT), done);
    CNN_H5_CHECK(H5Awrite(a, H5T_NATIVE_UINT32, &crc), done);
done:
    if (a >= 0 && H5Aclose(a) < 0 && st == CNN_OK)
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Aclose(a)");
    if (one >= 0) H5Sclose(one);
    if (ds >= 0 && H5Dclose(ds) < 0 && st == CNN_OK)
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Dclose(ds)");
    if (space >= 0) H5Sclose(space);
    if (st != CNN_OK) cnn_error_prefix("%s: %s", cnn_h5w_path(w), obj);
    return st;
}

cnn_status_t cnn_h5w_floats(cnn_h5w_t *w, const char *obj, int ndims,
                            const size_t *dims, const float *data)
{
    hsize_t hd[CNN_H5_MAXDIMS];
    size_t total = 1;
    if (ndims < 1 || ndims > CNN_H5_MAXDIMS)
        return cnn_error_set(CNN_EINTERNAL, "%s: %s: rank %d not in 1..%d",
                             cnn_h5w_path(w), obj, ndims, CNN_H5_MAXDIMS);
    for (int i = 0; i < ndims; i++) {
        hd[i] = dims[i];
        total *= dims[i];
    }
    return write_dataset(w, obj, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndims, hd,
                         total, data, crc_le(data, sizeof *data, total));
}

/* A 1-d dataset of n elements of type t. */
static cnn_status_t write_1d(cnn_h5w_t *w, const char *obj, num_type_t t, size_t n,
                             const void *data)
{
    hsize_t d = n;
    return write_dataset(w, obj, t.file, t.mem, 1, &d, n, data,
                         crc_le(data, H5Tget_size(t.mem), n));
}

cnn_status_t cnn_h5w_doubles(cnn_h5w_t *w, const char *obj, size_t n, const double *data)
{
    return write_1d(w, obj, f64_type(), n, data);
}

cnn_status_t cnn_h5w_int64s(cnn_h5w_t *w, const char *obj, size_t n, const int64_t *data)
{
    return write_1d(w, obj, i64_type(), n, data);
}

/* strs with NULL entries replaced by "" (a malloc'd array), or NULL. */
static const char **strs_or_empty(size_t n, const char *const *strs)
{
    const char **s = malloc((n ? n : 1) * sizeof *s);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) s[i] = strs[i] ? strs[i] : "";
    return s;
}

cnn_status_t cnn_h5w_strings(cnn_h5w_t *w, const char *obj, size_t n,
                             const char *const *strs)
{
    cnn_status_t st = CNN_OK;
    hid_t t = H5I_INVALID_HID;
    hsize_t d = n;
    const char **s = strs_or_empty(n, strs);
    if (!s) return cnn_error_set(CNN_ENOMEM, "%s: %s: out of memory", cnn_h5w_path(w), obj);
    CNN_H5_CHECK(t = vlen_str_type(), fail);
    st = write_dataset(w, obj, t, t, 1, &d, n, s, crc_strings(n, s));
    H5Tclose(t);
    free(s);
    return st;
fail:
    cnn_error_prefix("%s: %s", cnn_h5w_path(w), obj);
    free(s);
    return st;
}

/* Writes attribute `name` of obj (replacing one of that name). */
static cnn_status_t write_attr(cnn_h5w_t *w, const char *obj, const char *name,
                               hid_t ftype, hid_t mtype, hid_t space,
                               const void *data)
{
    cnn_status_t st = CNN_OK;
    hid_t a = H5I_INVALID_HID;
    htri_t ex;

    CNN_H5_CHECK(ex = H5Aexists_by_name(w->file, obj, name, H5P_DEFAULT), done);
    if (ex > 0) CNN_H5_CHECK(H5Adelete_by_name(w->file, obj, name, H5P_DEFAULT), done);
    CNN_H5_CHECK(a = H5Acreate_by_name(w->file, obj, name, ftype, space, H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT), done);
    CNN_H5_CHECK(H5Awrite(a, mtype, data), done);
done:
    if (a >= 0 && H5Aclose(a) < 0 && st == CNN_OK)
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Aclose(a)");
    if (st != CNN_OK) cnn_error_prefix("%s: %s attribute '%s'", cnn_h5w_path(w), obj, name);
    return st;
}

/* A scalar attribute of the given types. */
static cnn_status_t write_scalar_attr(cnn_h5w_t *w, const char *obj,
                                      const char *name, hid_t ftype, hid_t mtype,
                                      const void *data)
{
    cnn_status_t st = CNN_OK;
    hid_t space = H5I_INVALID_HID;
    CNN_H5_CHECK(space = H5Screate(H5S_SCALAR), fail);
    st = write_attr(w, obj, name, ftype, mtype, space, data);
    H5Sclose(space);
    return st;
fail:
    cnn_error_prefix("%s: %s attribute '%s'", cnn_h5w_path(w), obj, name);
    return st;
}

cnn_status_t cnn_h5w_attr_str(cnn_h5w_t *w, const char *obj, const char *name,
                              const char *value)
{
    cnn_status_t st = CNN_OK;
    hid_t t = H5I_INVALID_HID;
    const char *v = value ? value : "";
    CNN_H5_CHECK(t = vlen_str_type(), fail);
    st = write_scalar_attr(w, obj, name, t, t, &v);
    H5Tclose(t);
    return st;
fail:
    cnn_error_prefix("%s: %s attribute '%s'", cnn_h5w_path(w), obj, name);
    return st;
}

cnn_status_t cnn_h5w_attr_strings(cnn_h5w_t *w, const char *obj,
                                  const char *name, size_t n,
                                  const char *const *strs)
{
    cnn_status_t st = CNN_OK;
    hid_t t = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t d = n;
    const char **s = strs_or_empty(n, strs);
    if (!s) return cnn_error_set(CNN_ENOMEM, "%s: %s: out of memory", cnn_h5w_path(w), obj);
    CNN_H5_CHECK(t = vlen_str_type(), fail);
    CNN_H5_CHECK(space = H5Screate_simple(1, &d, NULL), fail);
    st = write_attr(w, obj, name, t, t, space, s);
    H5Sclose(space);
    H5Tclose(t);
    free(s);
    return st;
fail:
    if (t >= 0) H5Tclose(t);
    cnn_error_prefix("%s: %s attribute '%s'", cnn_h5w_path(w), obj, name);
    free(s);
    return st;
}

cnn_status_t cnn_h5w_attr_int64(cnn_h5w_t *w, const char *obj, const char *name,
                                int64_t value)
{
    const num_type_t t = i64_type();
    return write_scalar_attr(w, obj, name, t.file, t.mem, &value);
}

cnn_status_t cnn_h5w_attr_double(cnn_h5w_t *w, const char *obj, const char *name,
                                 double value)
{
    const num_type_t t = f64_type();
    return write_scalar_attr(w, obj, name, t.file, t.mem, &value);
}

/* ---- reader ----------------------------------------------------------- */

struct cnn_h5r {
    hid_t file;
    char *path;
};

/* Who prints warnings: -1 (unknown: any process, no rank), 0 (rank 0),
 * > 0 (another rank: silent). Set by cnn_h5_set_rank(). */
static int warn_rank = -1;

void cnn_h5_set_rank(int rank) { warn_rank = rank; }

/* ---- what a reader refuses before it reads anything -------------------- */

/* CNN_EDATA if the link `name` (in group g) is not a hard link: mpicnn
 * writes none, and a soft or external link would make the read depend on
 * other objects or other files. */
static cnn_status_t check_link(const cnn_h5r_t *r, hid_t g, const char *name,
                               const H5L_info_t *info)
{
    char val[1024] = "";
    const char *file = NULL, *obj = NULL;
    unsigned flags;
    const size_t n = info->u.val_size < sizeof val ? info->u.val_size : sizeof val;
    if (info->type == H5L_TYPE_HARD) return CNN_OK;
    if ((info->type == H5L_TYPE_SOFT || info->type == H5L_TYPE_EXTERNAL) &&
        H5Lget_val(g, name, val, n, H5P_DEFAULT) < 0)
        val[0] = '\0';
    val[sizeof val - 1] = '\0';
    H5Eclear2(H5E_DEFAULT);
    if (info->type == H5L_TYPE_SOFT)
        return cnn_error_set(CNN_EDATA, "%s: /%s: a soft link to '%.200s', refused (mpicnn "
                             "follows no links; the files it writes have none)", r->path,
                             name, val);
    if (info->type == H5L_TYPE_EXTERNAL) {
        if (info->u.val_size > sizeof val ||
            H5Lunpack_elink_val(val, n, &flags, &file, &obj) < 0 || !file || !obj)
            file = obj = "?";
        H5Eclear2(H5E_DEFAULT);
        return cnn_error_set(CNN_EDATA, "%s: /%s: an external link to %.200s:%.200s, refused "
                             "(mpicnn follows no links; the files it writes have none)",
                             r->path, name, file, obj);
    }
    return cnn_error_set(CNN_EDATA, "%s: /%s: a user-defined link (type %d), refused (mpicnn "
                         "follows no links)", r->path, name, (int)info->type);
}

/* CNN_EDATA if dataset ds keeps its data elsewhere (a virtual dataset,
 * external storage) or behind a filter: mpicnn writes contiguous data in
 * the file, and a filter can be a plugin HDF5 would load. */
static cnn_status_t check_storage(const cnn_h5r_t *r, hid_t ds, const char *name)
{
    cnn_status_t st = CNN_OK;
    hid_t dcpl = H5I_INVALID_HID;
    H5D_layout_t layout;
    int next, nf;
    char fname[256] = "";
    unsigned flags, cfg;
    size_t nelm = 0;
    off_t off;
    hsize_t size;

    CNN_H5_CHECK_AS(CNN_EDATA, dcpl = H5Dget_create_plist(ds), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, layout = H5Pget_layout(dcpl), fail);
    if (layout == H5D_VIRTUAL) {
        st = cnn_error_set(CNN_EDATA, "%s: /%s: a virtual dataset (its data lives in other "
                           "datasets or files), refused", r->path, name);
        goto done;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, next = H5Pget_external_count(dcpl), fail);
    if (next > 0) {
        if (H5Pget_external(dcpl, 0, sizeof fname, fname, &off, &size) < 0)
            snprintf(fname, sizeof fname, "?");
        fname[sizeof fname - 1] = '\0';
        st = cnn_error_set(CNN_EDATA, "%s: /%s: its data is stored in the external file '%s', "
                           "refused (mpicnn reads only data stored in the file)", r->path, name,
                           fname);
        goto done;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, nf = H5Pget_nfilters(dcpl), fail);
    if (nf > 0) {
        const H5Z_filter_t id = H5Pget_filter2(dcpl, 0, &flags, &nelm, NULL, sizeof fname,
                                               fname, &cfg);
        fname[sizeof fname - 1] = '\0';
        st = cnn_error_set(CNN_EDATA, "%s: /%s: stored through the HDF5 filter '%s' (id %d), "
                           "refused: mpicnn reads datasets as it writes them, without filters "
                           "(h5repack -f NONE IN OUT removes them)", r->path, name,
                           fname[0] ? fname : "?", (int)id);
    }
    goto done;
fail:
    cnn_error_prefix("%s: /%s", r->path, name);
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Eclear2(H5E_DEFAULT);
    return st;
}

typedef struct {
    const cnn_h5r_t *r;
    cnn_status_t st;
    hsize_t nlinks;
} visit_t;

static herr_t visit_cb(hid_t g, const char *name, const H5L_info_t *info, void *p)
{
    visit_t *v = p;
    if (++v->nlinks > LIST_MAX) {
        v->st = cnn_error_set(CNN_EDATA, "%s: more than %llu objects, refused", v->r->path,
                              (unsigned long long)LIST_MAX);
        return -1;
    }
    if ((v->st = check_link(v->r, g, name, info)) != CNN_OK) return -1;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
        v->st = cnn_h5_error_set(CNN_EDATA, __FILE__, __LINE__, "H5Oopen(g, name, H5P_DEFAULT)");
        cnn_error_prefix("%s: /%s", v->r->path, name);
        return -1;
    }
    if (H5Iget_type(o) == H5I_DATASET) v->st = check_storage(v->r, o, name);
    H5Oclose(o);
    return v->st == CNN_OK ? 0 : -1;
}

/* Every link of r's file, before anything is read: CNN_EDATA naming the
 * first (by name) that is not a hard link, or the first dataset whose
 * data is not contiguous in the file without filters (see above). Links
 * are not followed, and a group reached twice is visited once. */
static cnn_status_t check_structure(const cnn_h5r_t *r)
{
    visit_t v = {.r = r, .st = CNN_OK, .nlinks = 0};
    herr_t e = H5Lvisit(r->file, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v);
    if (v.st != CNN_OK) {
        H5Eclear2(H5E_DEFAULT);
        return v.st;
    }
    if (e < 0) {
        cnn_status_t st = cnn_h5_error_set(CNN_EDATA, __FILE__, __LINE__, "H5Lvisit(file)");
        cnn_error_prefix("%s", r->path);
        return st;
    }
    return CNN_OK;
}

const char *cnn_h5r_path(const cnn_h5r_t *r) { return r->path; }
hid_t cnn_h5r_file(const cnn_h5r_t *r) { return r->file; }

void cnn_h5r_close(cnn_h5r_t *r)
{
    if (!r) return;
    if (r->file >= 0) H5Fclose(r->file);
    H5Eclear2(H5E_DEFAULT);
    free(r->path);
    free(r);
}

cnn_status_t cnn_h5r_open(const char *path, cnn_h5r_t **r)
{
    cnn_status_t st = CNN_OK;
    hid_t fapl = H5I_INVALID_HID;
    cnn_h5r_t *x = NULL;
    int fd;

    *r = NULL;
    h5_quiet();
    /* HDF5 opens the file by name, and blocks on a FIFO: refuse anything
     * but a regular file first */
    CNN_TRY(cnn_fs_open_input(path, CNN_EDATA, "an HDF5 file", &fd, NULL));
    close(fd);
    x = calloc(1, sizeof *x);
    if (!x || !(x->path = dup_str(path))) {
        free(x);
        return cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
    }
    x->file = H5I_INVALID_HID;
    CNN_H5_CHECK_AS(CNN_EDATA, fapl = H5Pcreate(H5P_FILE_ACCESS), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), fail);
    x->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (x->file < 0) {
        char sum[600];
        h5_summary(sum, sizeof sum);
        st = cnn_error_set(CNN_EDATA, "%s: not an HDF5 file, or truncated or damaged (%s)",
                           path, sum);
        goto fail;
    }
    H5Pclose(fapl);
    fapl = H5I_INVALID_HID;
    if ((st = check_structure(x)) != CNN_OK) goto fail;
    *r = x;
    return CNN_OK;
fail:
    if (fapl >= 0) H5Pclose(fapl);
    cnn_h5r_close(x);
    return st;
}

int cnn_h5r_exists(cnn_h5r_t *r, const char *obj) { return path_exists(r->file, obj); }

int cnn_h5r_attr_exists(cnn_h5r_t *r, const char *obj, const char *name)
{
    if (!path_exists(r->file, obj)) return 0;
    htri_t ex = H5Aexists_by_name(r->file, obj, name, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return ex > 0;
}

/* The type (H5I_GROUP, H5I_DATASET, ...) of obj, H5I_BADID if missing. */
static H5I_type_t obj_kind(hid_t file, const char *obj)
{
    if (!path_exists(file, obj)) return H5I_BADID;
    hid_t o = H5Oopen(file, obj, H5P_DEFAULT);
    if (o < 0) {
        H5Eclear2(H5E_DEFAULT);
        return H5I_BADID;
    }
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t;
}

int cnn_h5r_is_group(cnn_h5r_t *r, const char *obj)
{
    return obj_kind(r->file, obj) == H5I_GROUP;
}

/* A dataset or an attribute being read; `what` names it in messages. */
typedef struct {
    hid_t id;
    int is_attr;
    char what[320];
} src_t;

static cnn_status_t src_error(const cnn_h5r_t *r, const src_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static cnn_status_t src_error(const cnn_h5r_t *r, const src_t *s, const char *fmt, ...)
{
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cnn_error_set(CNN_EDATA, "%s: %s: %s", r->path, s->what, why);
}

static cnn_status_t src_nomem(const cnn_h5r_t *r, const src_t *s)
{
    return cnn_error_set(CNN_ENOMEM, "%s: %s: out of memory", r->path, s->what);
}

static void src_close(src_t *s)
{
    if (s->id < 0) return;
    if (s->is_attr) H5Aclose(s->id);
    else H5Oclose(s->id);
    s->id = H5I_INVALID_HID;
}

static hid_t src_type(const src_t *s)
{
    return s->is_attr ? H5Aget_type(s->id) : H5Dget_type(s->id);
}

static hid_t src_space(const src_t *s)
{
    return s->is_attr ? H5Aget_space(s->id) : H5Dget_space(s->id);
}

static herr_t src_read(const src_t *s, hid_t mtype, void *buf)
{
    return s->is_attr ? H5Aread(s->id, mtype, buf)
                      : H5Dread(s->id, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
}

/* Opens dataset obj; CNN_EDATA if it is missing or not a dataset. */
static cnn_status_t open_dataset(cnn_h5r_t *r, const char *obj, src_t *s)
{
    cnn_status_t st = CNN_OK;
    s->id = H5I_INVALID_HID;
    s->is_attr = 0;
    snprintf(s->what, sizeof s->what, "%s", obj);
    if (!path_exists(r->file, obj)) return src_error(r, s, "dataset missing");
    CNN_H5_CHECK_AS(CNN_EDATA, s->id = H5Oopen(r->file, obj, H5P_DEFAULT), fail);
    if (H5Iget_type(s->id) != H5I_DATASET) {
        src_close(s);
        return src_error(r, s, "is a group, expected a dataset");
    }
    return CNN_OK;
fail:
    cnn_error_prefix("%s: %s", r->path, obj);
    return st;
}

static cnn_status_t open_attr(cnn_h5r_t *r, const char *obj, const char *name,
                              src_t *s)
{
    cnn_status_t st = CNN_OK;
    s->id = H5I_INVALID_HID;
    s->is_attr = 1;
    snprintf(s->what, sizeof s->what, "%s attribute '%s'", obj, name);
    if (!cnn_h5r_attr_exists(r, obj, name)) return src_error(r, s, "missing");
    CNN_H5_CHECK_AS(CNN_EDATA, s->id = H5Aopen_by_name(r->file, obj, name,
                                                        H5P_DEFAULT, H5P_DEFAULT), fail);
    return CNN_OK;
fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
    return st;
}

/* ---- checksum verification -------------------------------------------- */

/* Once per file (and on rank 0 only, see cnn_h5_set_rank): dataset s has
 * no checksum, so its data is read unverified. A file read twice in a row
 * (a model's metadata, then its weights) is one file. */
static void warn_unverified(cnn_h5r_t *r, const src_t *s)
{
    static char warned[4096];
    if (warn_rank > 0 || strncmp(warned, r->path, sizeof warned) == 0) return;
    snprintf(warned, sizeof warned, "%s", r->path);
    fprintf(stderr, "mpicnn: %swarning: %s: %s has no checksum ('%s'): a file from an older "
            "mpicnn, or rewritten by another tool; its data is read unverified\n",
            warn_rank == 0 ? "rank 0: " : "", r->path, s->what, CNN_H5_CRC_ATTR);
}

/* The checksum recorded on dataset s in *want; *present is 0 if s has
 * none, which is warned of (warn_unverified). */
static cnn_status_t read_crc(cnn_h5r_t *r, const src_t *s, uint64_t *want, int *present)
{
    cnn_status_t st = CNN_OK;
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    htri_t ex;

    *present = 0;
    CNN_H5_CHECK_AS(CNN_EDATA, ex = H5Aexists(s->id, CNN_H5_CRC_ATTR), fail);
    if (!ex) {
        warn_unverified(r, s);
        return CNN_OK;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, a = H5Aopen(s->id, CNN_H5_CRC_ATTR, H5P_DEFAULT), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, t = H5Aget_type(a), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, sp = H5Aget_space(a), fail);
    if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != 1) {
        st = src_error(r, s, "attribute '%s' is not one unsigned 32-bit integer",
                       CNN_H5_CRC_ATTR);
        goto done;
    }
    CNN_H5_CHECK_AS(CNN_EDATA, H5Aread(a, H5T_NATIVE_UINT64, want), fail);
    *present = 1;
    goto done;
fail:
    cnn_error_prefix("%s: %s attribute '%s'", r->path, s->what, CNN_H5_CRC_ATTR);
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return st;
}

static cnn_status_t crc_compare(cnn_h5r_t *r, const src_t *s, uint64_t want, uint32_t got)
{
    if (want == got) return CNN_OK;
    return src_error(r, s, "checksum mismatch: the data's CRC-32C is 0x%08x, the file records "
                     "0x%08llx ('%s'): the data changed after it was written", (unsigned)got,
                     (unsigned long long)want, CNN_H5_CRC_ATTR);
}

/* The CRC-32C of numeric dataset s's n elements in its stored type,
 * encoded little-endian: computed from buf (the n elements read as memory
 * type mtype) when mtype holds exactly the stored type, else from a
 * second read of the stored values. */
static cnn_status_t stored_crc(cnn_h5r_t *r, const src_t *s, hid_t mtype, const void *buf,
                               size_t n, uint32_t *crc)
{
    cnn_status_t st = CNN_OK;
    hid_t ft = H5I_INVALID_HID, le = H5I_INVALID_HID, mle = H5I_INVALID_HID;
    unsigned char *raw = NULL;
    htri_t same;

    CNN_H5_CHECK_AS(CNN_EDATA, ft = src_type(s), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, le = H5Tcopy(ft), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Tset_order(le, H5T_ORDER_LE), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, mle = H5Tcopy(mtype), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Tset_order(mle, H5T_ORDER_LE), fail);
    CNN_H5_CHECK_AS(CNN_EDATA, same = H5Tequal(le, mle), fail);
    const size_t esize = H5Tget_size(le);
    if (same) {
        *crc = crc_le(buf, esize, n);
        goto done;
    }
    if (esize == 0 || n > ((size_t)1 << 40) / esize || !(raw = malloc(n * esize + 1))) {
        st = src_nomem(r, s);
        goto done;
    }
    if (n > 0) CNN_H5_CHECK_AS(CNN_EDATA, src_read(s, le, raw), fail);
    *crc = cnn_crc32c(0, raw, n * esize);
    goto done;
fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
done:
    free(raw);
    if (mle >= 0) H5Tclose(mle);
    if (le >= 0) H5Tclose(le);
    if (ft >= 0) H5Tclose(ft);
    return st;
}

/* Verifies the checksum of numeric dataset s, whose n elements were read
 * into buf as memory type mtype. */
static cnn_status_t verify_numeric(cnn_h5r_t *r, const src_t *s, hid_t mtype, const void *buf,
                                   size_t n)
{
    uint64_t want = 0;
    uint32_t got = 0;
    int present;
    cnn_status_t st = read_crc(r, s, &want, &present);
    if (st != CNN_OK || !present) return st;
    if ((st = stored_crc(r, s, mtype, buf, n, &got)) != CNN_OK) return st;
    return crc_compare(r, s, want, got);
}

/* Verifies the checksum of string dataset s, read as strs[0..n-1]. */
static cnn_status_t verify_strings(cnn_h5r_t *r, const src_t *s, char *const *strs, size_t n)
{
    uint64_t want = 0;
    int present;
    cnn_status_t st = read_crc(r, s, &want, &present);
    if (st != CNN_OK || !present) return st;
    return crc_compare(r, s, want, crc_strings(n, (const char *const *)strs));
}

/* numpy-style shape text: "(32,1,3,3)", "(5,)", "()". */
static void shape_text(char *buf, size_t len, int nd, const hsize_t *dims)
{
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < nd && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%llu", i ? "," : "",
                              (unsigned long long)dims[i]);
    if (k < len) snprintf(buf + k, len - k, "%s)", nd == 1 ? "," : "");
}

/* "float32", "int64", "uint8", "string", ... */
static void type_text(hid_t t, char *buf, size_t len)
{
    const size_t bits = H5Tget_size(t) * 8;
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum"); break;
    case H5T_ARRAY: snprintf(buf, len, "array"); break;
    case H5T_VLEN: snprintf(buf, len, "vlen"); break;
    default: snprintf(buf, len, "HDF5 class %d", (int)H5Tget_class(t)); break;
    }
}

/* Shape of a dataset or attribute: *nd (0: scalar), dims. */
static cnn_status_t src_shape(cnn_h5r_t *r, const src_t *s, int *nd, hsize_t *dims)
{
    cnn_status_t st = CNN_OK;
    hid_t space = H5I_INVALID_HID;
    H5S_class_t cls;
    int n = 0;

    CNN_H5_CHECK_AS(CNN_EDATA, space = src_space(s), fail);
    cls = H5Sget_simple_extent_type(space);
    if (cls == H5S_NULL) {
        st = src_error(r, s, "has no data (null dataspace)");
        goto done;
    }
    if (cls != H5S_SCALAR) {
        CNN_H5_CHECK_AS(CNN_EDATA, n = H5Sget_simple_extent_ndims(space), fail);
        if (n > CNN_H5_MAXDIMS) {
            st = src_error(r, s, "rank %d exceeds %d", n, CNN_H5_MAXDIMS);
            goto done;
        }
        CNN_H5_CHECK_AS(CNN_EDATA, H5Sget_simple_extent_dims(space, dims, NULL), fail);
    }
    *nd = n;
    goto done;
fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
done:
    if (space >= 0) H5Sclose(space);
    return st;
}

/* Opens a 1-d (or, if allow_scalar, scalar: length 1) dataset or
 * attribute of class `cls` (or cls2) and checks its length <= maxlen. */
static cnn_status_t check_1d(cnn_h5r_t *r, const src_t *s, H5T_class_t cls,
                             H5T_class_t cls2, const char *want, int allow_scalar,
                             size_t maxlen, size_t *len)
{
    cnn_status_t st = CNN_OK;
    hid_t t = H5I_INVALID_HID;
    hsize_t dims[CNN_H5_MAXDIMS];
    int nd;
    char tt[32];

    CNN_H5_CHECK_AS(CNN_EDATA, t = src_type(s), fail);
    H5T_class_t c = H5Tget_class(t);
    if (c != cls && c != cls2) {
        type_text(t, tt, sizeof tt);
        st = src_error(r, s, "dtype %s, expected %s", tt, want);
        goto done;
    }
    st = src_shape(r, s, &nd, dims);
    if (st != CNN_OK) goto done;
    if (nd == 0 && allow_scalar) {
        nd = 1;
        dims[0] = 1;
    }
    if (nd != 1) {
        char sh[200];
        shape_text(sh, sizeof sh, nd, dims);
        st = src_error(r, s, "shape %s, expected a 1-d array", sh);
        goto done;
    }
    if (dims[0] > (hsize_t)maxlen) {
        st = src_error(r, s, "length %llu exceeds the limit %zu",
                       (unsigned long long)dims[0], maxlen);
        goto done;
    }
    *len = (size_t)dims[0];
    goto done;
fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
done:
    if (t >= 0) H5Tclose(t);
    return st;
}

cnn_status_t cnn_h5r_shape(cnn_h5r_t *r, const char *obj, int *ndims,
                           size_t dims[CNN_H5_MAXDIMS])
{
    src_t s;
    hsize_t hd[CNN_H5_MAXDIMS];
    cnn_status_t st = open_dataset(r, obj, &s);
    if (st != CNN_OK) return st;
    st = src_shape(r, &s, ndims, hd);
    if (st == CNN_OK)
        for (int i = 0; i < *ndims; i++) dims[i] = (size_t)hd[i];
    src_close(&s);
    return st;
}

/* Checks float dataset s's dtype (float32 or float64) and its shape
 * against want (ndims dims); *total gets the product of want. */
static cnn_status_t check_real_shape(cnn_h5r_t *r, const src_t *s, int ndims,
                                     const size_t *want_dims, size_t *total, size_t *size)
{
    cnn_status_t st = CNN_OK;
    hid_t t = H5I_INVALID_HID;
    hsize_t dims[CNN_H5_MAXDIMS], want[CNN_H5_MAXDIMS];
    int nd = 0;
    char a[200], b[200];
    *total = 1;
    for (int i = 0; i < ndims; i++) {
        want[i] = want_dims[i];
        *total *= want_dims[i];
    }
    CNN_H5_CHECK_AS(CNN_EDATA, t = src_type(s), h5fail);
    *size = H5Tget_size(t);
    if (H5Tget_class(t) != H5T_FLOAT || (*size != 4 && *size != 8)) {
        type_text(t, a, sizeof a);
        st = src_error(r, s, "dtype %s, expected float32", a);
        goto done;
    }
    if ((st = src_shape(r, s, &nd, dims)) != CNN_OK) goto done;
    int same = nd == ndims;
    for (int i = 0; same && i < nd; i++) same = dims[i] == want[i];
    if (!same) {
        shape_text(a, sizeof a, nd, dims);
        shape_text(b, sizeof b, ndims, want);
        st = src_error(r, s, "shape %s expected %s", a, b);
    }
    goto done;
h5fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
done:
    if (t >= 0) H5Tclose(t);
    return st;
}

/* Reads the total values of float dataset s (stored as `size` bytes
 * each) into outd as double, unrounded, or, when outd is NULL, into outf
 * as float: float64 data are then read as double first so that values
 * beyond float32 are caught, not clipped by the conversion. Every value
 * must be finite (and, for outf, within float32). */
static cnn_status_t read_reals(cnn_h5r_t *r, const src_t *s, const char *obj, size_t total,
                               size_t size, float *outf, double *outd)
{
    cnn_status_t st = CNN_OK;
    double *tmp = outd;
    if (total == 0) return verify_numeric(r, s, outd ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT,
                                          outd ? (void *)outd : (void *)outf, 0);
    if (!outd && size == 4) {
        size_t bad;
        CNN_H5_CHECK_AS(CNN_EDATA, src_read(s, H5T_NATIVE_FLOAT, outf), h5fail);
        for (bad = 0; bad < total && isfinite(outf[bad]); bad++) {
        }
        if (bad < total)
            return src_error(r, s, "contains %s at index %zu", isnan(outf[bad]) ? "NaN" : "Inf",
                             bad);
        return verify_numeric(r, s, H5T_NATIVE_FLOAT, outf, total);
    }
    if (!tmp && !(tmp = malloc(total * sizeof *tmp)))
        return cnn_error_set(CNN_ENOMEM, "%s: %s: out of memory", r->path, obj);
    CNN_H5_CHECK_AS(CNN_EDATA, src_read(s, H5T_NATIVE_DOUBLE, tmp), h5fail);
    for (size_t i = 0; i < total; i++) {
        if (!isfinite(tmp[i]) || (!outd && fabs(tmp[i]) > FLT_MAX)) {
            st = src_error(r, s, "contains %s at index %zu",
                           isnan(tmp[i]) ? "NaN" : isinf(tmp[i]) ? "Inf" : "a value beyond float32",
                           i);
            goto done;
        }
        if (!outd) outf[i] = (float)tmp[i];
    }
    st = verify_numeric(r, s, H5T_NATIVE_DOUBLE, tmp, total);
    goto done;
h5fail:
    cnn_error_prefix("%s: %s", r->path, obj);
done:
    if (tmp != outd) free(tmp);
    return st;
}

/* cnn_h5r_floats (outd NULL) and cnn_h5r_reals (outf NULL). */
static cnn_status_t read_real_dataset(cnn_h5r_t *r, const char *obj, int ndims,
                                      const size_t *want_dims, float *outf, double *outd)
{
    src_t s;
    size_t total = 0, size = 0;
    if (ndims < 0 || ndims > CNN_H5_MAXDIMS)
        return cnn_error_set(CNN_EINTERNAL, "%s: %s: rank %d not in 0..%d", r->path,
                             obj, ndims, CNN_H5_MAXDIMS);
    cnn_status_t st = open_dataset(r, obj, &s);
    if (st != CNN_OK) return st;
    st = check_real_shape(r, &s, ndims, want_dims, &total, &size);
    if (st == CNN_OK) st = read_reals(r, &s, obj, total, size, outf, outd);
    src_close(&s);
    return st;
}

cnn_status_t cnn_h5r_floats(cnn_h5r_t *r, const char *obj, int ndims,
                            const size_t *want_dims, float *out)
{
    return read_real_dataset(r, obj, ndims, want_dims, out, NULL);
}

cnn_status_t cnn_h5r_reals(cnn_h5r_t *r, const char *obj, int ndims,
                           const size_t *want_dims, double *out)
{
    return read_real_dataset(r, obj, ndims, want_dims, NULL, out);
}

/* Reads 1-d numeric dataset obj, of at most maxlen elements, converted
 * to type t, into a malloc'd array *out of *n elements. */
static cnn_status_t read_1d(cnn_h5r_t *r, const char *obj, num_type_t t, size_t maxlen,
                            void **out, size_t *n)
{
    src_t s;
    size_t len = 0;
    void *buf = NULL;
    cnn_status_t st;

    *out = NULL;
    *n = 0;
    st = open_dataset(r, obj, &s);
    if (st != CNN_OK) return st;
    st = check_1d(r, &s, t.cls, t.cls2, t.name, 0, maxlen, &len);
    if (st != CNN_OK) goto done;
    buf = malloc(len ? len * H5Tget_size(t.mem) : 1);
    if (!buf) {
        st = cnn_error_set(CNN_ENOMEM, "%s: %s: out of memory", r->path, obj);
        goto done;
    }
    if (len > 0) CNN_H5_CHECK_AS(CNN_EDATA, src_read(&s, t.mem, buf), h5fail);
    if ((st = verify_numeric(r, &s, t.mem, buf, len)) != CNN_OK) goto done;
    *out = buf;
    *n = len;
    buf = NULL;
    goto done;
h5fail:
    cnn_error_prefix("%s: %s", r->path, obj);
done:
    free(buf);
    src_close(&s);
    return st;
}

cnn_status_t cnn_h5r_doubles(cnn_h5r_t *r, const char *obj, size_t maxlen, double **out,
                             size_t *n)
{
    void *p;
    cnn_status_t st = read_1d(r, obj, f64_type(), maxlen, &p, n);
    *out = p;
    return st;
}

cnn_status_t cnn_h5r_int64s(cnn_h5r_t *r, const char *obj, size_t maxlen, int64_t **out,
                            size_t *n)
{
    void *p;
    cnn_status_t st = read_1d(r, obj, i64_type(), maxlen, &p, n);
    *out = p;
    return st;
}

/* A malloc that stops at a budget of bytes. HDF5 allocates every
 * variable-length string of a dataset through it, so a dataset whose
 * strings exceed the limit fails before they are all in memory. It keeps
 * every block in a list, freed at once by budget_release(): HDF5 does not
 * free the strings it allocated before a failure. */
typedef union block {
    union block *next;
    max_align_t align;
} block_t;

typedef struct {
    size_t left;
    int over;
    block_t *blocks;
} budget_t;

static void *budget_alloc(size_t n, void *p)
{
    budget_t *b = p;
    if (n > b->left) {
        b->over = 1;
        return NULL;
    }
    block_t *k = malloc(sizeof *k + (n ? n : 1));
    if (!k) return NULL;
    b->left -= n;
    k->next = b->blocks;
    b->blocks = k;
    return k + 1;
}

/* Blocks are freed together by budget_release(). */
static void budget_free(void *m, void *p)
{
    (void)m;
    (void)p;
}

static void budget_release(budget_t *b)
{
    while (b->blocks) {
        block_t *k = b->blocks;
        b->blocks = k->next;
        free(k);
    }
}

static cnn_status_t too_many_bytes(const cnn_h5r_t *r, const src_t *s)
{
    return src_error(r, s, "strings of more than %zu bytes, refused (the limit of a config "
                     "file)", (size_t)STR_BYTES_MAX);
}

/* Reads s's len variable-length strings into vl (calloc'd by the caller;
 * the strings of a dataset are in b's blocks, an attribute's are HDF5's).
 * HDF5 gives no way to bound an attribute's read: its strings are
 * measured once read, before anything else is done with them. */
static cnn_status_t read_vlen(cnn_h5r_t *r, const src_t *s, size_t len, char **vl, budget_t *b)
{
    cnn_status_t st = CNN_OK;
    hid_t mt = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
    size_t total = 0;
    herr_t e;

    CNN_H5_CHECK_AS(CNN_EDATA, mt = vlen_str_type(), h5fail);
    if (s->is_attr) {
        e = H5Aread(s->id, mt, vl);
    } else {
        CNN_H5_CHECK_AS(CNN_EDATA, dxpl = H5Pcreate(H5P_DATASET_XFER), h5fail);
        CNN_H5_CHECK_AS(CNN_EDATA, H5Pset_vlen_mem_manager(dxpl, budget_alloc, b, budget_free,
                                                           NULL), h5fail);
        e = H5Dread(s->id, mt, H5S_ALL, H5S_ALL, dxpl, vl);
    }
    if (b->over) {
        H5Eclear2(H5E_DEFAULT);
        st = too_many_bytes(r, s);
        goto done;
    }
    if (e < 0) {
        st = cnn_h5_error_set(CNN_EDATA, __FILE__, __LINE__, "H5Aread/H5Dread(strings)");
        goto h5fail;
    }
    for (size_t i = 0; i < len && st == CNN_OK; i++) {
        const size_t k = vl[i] ? strlen(vl[i]) : 0;
        if (k >= STR_BYTES_MAX - total) st = too_many_bytes(r, s);
        total += k + 1;
    }
    goto done;
h5fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
done:
    if (dxpl >= 0) H5Pclose(dxpl);
    if (mt >= 0) H5Tclose(mt);
    return st;
}

/* Reads s's len fixed-length strings (of sz bytes each) into res. */
static cnn_status_t read_fixed(cnn_h5r_t *r, const src_t *s, size_t sz, size_t len, char **res)
{
    cnn_status_t st = CNN_OK;
    hid_t mt = H5I_INVALID_HID;
    char *fixed = NULL;

    if (sz == 0 || sz >= STR_BYTES_MAX / len) return too_many_bytes(r, s);
    if (!(fixed = malloc(len * (sz + 1)))) return src_nomem(r, s);
    CNN_H5_CHECK_AS(CNN_EDATA, mt = H5Tcopy(H5T_C_S1), h5fail);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Tset_size(mt, sz + 1), h5fail);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Tset_strpad(mt, H5T_STR_NULLTERM), h5fail);
    CNN_H5_CHECK_AS(CNN_EDATA, src_read(s, mt, fixed), h5fail);
    /* string i is the first up to sz bytes of its sz + 1, up to a NUL */
    for (size_t i = 0; i < len && st == CNN_OK; i++)
        if (!(res[i] = strndup(fixed + i * (sz + 1), sz))) st = src_nomem(r, s);
    goto done;
h5fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
done:
    free(fixed);
    if (mt >= 0) H5Tclose(mt);
    return st;
}

/* Reads the len strings of s (vlen or fixed) into malloc'd copies. */
static cnn_status_t read_strs(cnn_h5r_t *r, const src_t *s, size_t len, char ***out)
{
    cnn_status_t st = CNN_OK;
    hid_t t = H5I_INVALID_HID;
    char **res = NULL, **vl = NULL;
    budget_t b = {.left = STR_BYTES_MAX, .over = 0, .blocks = NULL};
    htri_t var;

    *out = NULL;
    res = calloc(len ? len : 1, sizeof *res);
    if (!res) goto nomem;
    CNN_H5_CHECK_AS(CNN_EDATA, t = src_type(s), h5fail);
    CNN_H5_CHECK_AS(CNN_EDATA, var = H5Tis_variable_str(t), h5fail);
    if (len > 0 && var) {
        if (!(vl = calloc(len, sizeof *vl))) goto nomem;
        if ((st = read_vlen(r, s, len, vl, &b)) != CNN_OK) goto done;
        for (size_t i = 0; i < len; i++)
            if (!(res[i] = dup_str(vl[i] ? vl[i] : ""))) goto nomem;
    } else if (len > 0 && (st = read_fixed(r, s, H5Tget_size(t), len, res)) != CNN_OK) {
        goto done;
    }
    *out = res;
    res = NULL;
    goto done;
nomem:
    st = src_nomem(r, s);
    goto done;
h5fail:
    cnn_error_prefix("%s: %s", r->path, s->what);
done:
    for (size_t i = 0; vl && s->is_attr && i < len; i++)
        if (vl[i]) H5free_memory(vl[i]);
    budget_release(&b);
    free(vl);
    cnn_h5_strings_free(res, len);
    if (t >= 0) H5Tclose(t);
    return st;
}

static cnn_status_t read_str_array(cnn_h5r_t *r, src_t *s, size_t maxlen,
                                   char ***out, size_t *n)
{
    size_t len = 0;
    cnn_status_t st = check_1d(r, s, H5T_STRING, H5T_STRING, "string", 0, maxlen, &len);
    if (st == CNN_OK) st = read_strs(r, s, len, out);
    if (st == CNN_OK) *n = len;
    return st;
}

cnn_status_t cnn_h5r_strings(cnn_h5r_t *r, const char *obj, size_t maxlen,
                             char ***out, size_t *n)
{
    src_t s;
    *out = NULL;
    *n = 0;
    cnn_status_t st = open_dataset(r, obj, &s);
    if (st != CNN_OK) return st;
    st = read_str_array(r, &s, maxlen, out, n);
    if (st == CNN_OK && (st = verify_strings(r, &s, *out, *n)) != CNN_OK) {
        cnn_h5_strings_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    src_close(&s);
    return st;
}

cnn_status_t cnn_h5r_attr_strings(cnn_h5r_t *r, const char *obj,
                                  const char *name, size_t maxlen, char ***out,
                                  size_t *n)
{
    src_t s;
    *out = NULL;
    *n = 0;
    cnn_status_t st = open_attr(r, obj, name, &s);
    if (st != CNN_OK) return st;
    st = read_str_array(r, &s, maxlen, out, n);
    src_close(&s);
    return st;
}

/* Checks that attribute s holds exactly one value of class cls/cls2. */
static cnn_status_t check_single(cnn_h5r_t *r, const src_t *s, H5T_class_t cls,
                                 H5T_class_t cls2, const char *want)
{
    size_t len = 0;
    cnn_status_t st = check_1d(r, s, cls, cls2, want, 1, 1, &len);
    if (st == CNN_OK && len != 1) st = src_error(r, s, "empty, expected one %s", want);
    return st;
}

cnn_status_t cnn_h5r_attr_str(cnn_h5r_t *r, const char *obj, const char *name,
                              char **out)
{
    src_t s;
    char **v = NULL;
    *out = NULL;
    cnn_status_t st = open_attr(r, obj, name, &s);
    if (st != CNN_OK) return st;
    st = check_single(r, &s, H5T_STRING, H5T_STRING, "string");
    if (st == CNN_OK) st = read_strs(r, &s, 1, &v);
    if (st == CNN_OK) {
        *out = v[0];
        free(v);
    }
    src_close(&s);
    return st;
}

/* Reads scalar attribute `name` of obj, converted to type t, into *out. */
static cnn_status_t attr_number(cnn_h5r_t *r, const char *obj, const char *name, num_type_t t,
                                void *out)
{
    src_t s;
    cnn_status_t st = open_attr(r, obj, name, &s);
    if (st != CNN_OK) return st;
    st = check_single(r, &s, t.cls, t.cls2, t.name);
    if (st == CNN_OK && src_read(&s, t.mem, out) < 0) {
        st = cnn_h5_error_set(CNN_EDATA, __FILE__, __LINE__, "H5Aread(attribute)");
        cnn_error_prefix("%s: %s", r->path, s.what);
    }
    src_close(&s);
    return st;
}

cnn_status_t cnn_h5r_attr_int64(cnn_h5r_t *r, const char *obj, const char *name,
                                int64_t *out)
{
    return attr_number(r, obj, name, i64_type(), out);
}

cnn_status_t cnn_h5r_attr_double(cnn_h5r_t *r, const char *obj, const char *name,
                                 double *out)
{
    return attr_number(r, obj, name, f64_type(), out);
}

cnn_status_t cnn_h5r_list(cnn_h5r_t *r, const char *obj, char ***names, size_t *n)
{
    cnn_status_t st = CNN_OK;
    H5G_info_t info;
    char **res = NULL;
    size_t cnt = 0;

    *names = NULL;
    *n = 0;
    if (!cnn_h5r_is_group(r, obj))
        return cnn_error_set(CNN_EDATA, "%s: %s: group missing", r->path, obj);
    CNN_H5_CHECK_AS(CNN_EDATA, H5Gget_info_by_name(r->file, obj, &info, H5P_DEFAULT),
                    h5fail);
    if (info.nlinks > LIST_MAX)
        return cnn_error_set(CNN_EDATA, "%s: %s: %llu members exceed the limit %llu",
                             r->path, obj, (unsigned long long)info.nlinks,
                             (unsigned long long)LIST_MAX);
    cnt = (size_t)info.nlinks;
    res = calloc(cnt ? cnt : 1, sizeof *res);
    if (!res) goto nomem;
    for (size_t i = 0; i < cnt; i++) {
        ssize_t len;
        CNN_H5_CHECK_AS(CNN_EDATA, len = H5Lget_name_by_idx(r->file, obj, H5_INDEX_NAME,
                                                            H5_ITER_INC, i, NULL, 0,
                                                            H5P_DEFAULT), h5fail);
        res[i] = malloc((size_t)len + 1);
        if (!res[i]) goto nomem;
        CNN_H5_CHECK_AS(CNN_EDATA, H5Lget_name_by_idx(r->file, obj, H5_INDEX_NAME,
                                                      H5_ITER_INC, i, res[i],
                                                      (size_t)len + 1, H5P_DEFAULT),
                        h5fail);
    }
    *names = res;
    *n = cnt;
    return CNN_OK;
nomem:
    cnn_h5_strings_free(res, cnt);
    return cnn_error_set(CNN_ENOMEM, "%s: %s: out of memory", r->path, obj);
h5fail:
    cnn_h5_strings_free(res, cnt);
    cnn_error_prefix("%s: %s", r->path, obj);
    return st;
}

/* ---- adding to a file another writer made ------------------------------ */

cnn_status_t cnn_h5w_reopen(cnn_afile_t *out, cnn_h5w_t **w)
{
    cnn_status_t st = CNN_OK;
    *w = NULL;
    h5_quiet();
    cnn_h5w_t *x = calloc(1, sizeof *x);
    if (!x) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", cnn_afile_path(out));
    x->file = x->lcpl = H5I_INVALID_HID;
    x->out = out;
    CNN_H5_CHECK(x->file = H5Fopen(cnn_afile_tmp_path(out), H5F_ACC_RDWR, H5P_DEFAULT), fail);
    CNN_H5_CHECK(x->lcpl = H5Pcreate(H5P_LINK_CREATE), fail);
    CNN_H5_CHECK(H5Pset_create_intermediate_group(x->lcpl, 1), fail);
    *w = x;
    return CNN_OK;
fail:
    cnn_error_prefix("cannot write %s", cnn_afile_path(out));
    writer_close_h5(x);
    free(x);
    return st;
}

cnn_status_t cnn_h5w_close(cnn_h5w_t *w)
{
    cnn_status_t st = CNN_OK;
    if (!w) return CNN_OK;
    if (w->lcpl >= 0) H5Pclose(w->lcpl);
    w->lcpl = H5I_INVALID_HID;
    if (H5Fclose(w->file) < 0) {
        st = cnn_h5_error_set(CNN_EIO, __FILE__, __LINE__, "H5Fclose(w->file)");
        cnn_error_prefix("cannot write %s", cnn_h5w_path(w));
    }
    H5Eclear2(H5E_DEFAULT);
    free(w);
    return st;
}
