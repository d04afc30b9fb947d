/* idx.c - the IDX loader (MNIST, Fashion-MNIST), raw or gzip.
 *
 * Both kinds are read through zlib: gzdopen() looks at the first two bytes
 * and inflates when they are the gzip magic 1f 8b, and passes the bytes
 * through otherwise, so the file name never matters. A raw regular file
 * has a known size, so its body is checked against the header before
 * anything is allocated. A gzip stream's size is only known at its end:
 * its body is read in chunks into a buffer that grows with the data
 * actually decompressed, never to the header's claim up front, and a short
 * or long stream is an error. */
#include "mpicnn/data.h"
#include "mpicnn/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define READ_CHUNK ((size_t)1 << 24)  /* largest single gzread */
#define GROW_START ((size_t)1 << 24)  /* first buffer of a stream of unknown size */

typedef struct {
    const char *path;
    gzFile gz;
    int gzip;          /* 1: the bytes are being inflated */
    long long size;    /* bytes in the file if raw, else -1 */
    const char *kind;  /* "" or " (gzip)", for messages */
} src_t;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* zlib's message without the "<fd:N>: " it puts in front. */
static const char *zlib_msg(const char *m)
{
    const char *p = (m && m[0] == '<') ? strstr(m, ": ") : NULL;
    return p ? p + 2 : (m ? m : "?");
}

static const char *plural(unsigned long long n) { return n == 1 ? "" : "s"; }

static void src_close(src_t *s)
{
    if (s->gz) gzclose(s->gz);
    s->gz = NULL;
}

static cnn_status_t src_open(src_t *s, const char *path)
{
    *s = (src_t){.path = path, .size = -1, .kind = ""};
    int fd;
    long long size;
    CNN_TRY(cnn_fs_open_input(path, CNN_EDATA, "an IDX file", &fd, &size));
    s->gz = gzdopen(fd, "rb");
    if (!s->gz) {
        close(fd);
        return cnn_error_set(CNN_ENOMEM, "%s: cannot set up zlib", path);
    }
    gzbuffer(s->gz, 1u << 17);
    /* looks at the first bytes: 1f 8b means gzip */
    s->gzip = !gzdirect(s->gz);
    if (s->gzip) s->kind = " (gzip)";
    else s->size = size;
    return CNN_OK;
}

/* Reads up to len bytes; *got < len only at the end of the data. A
 * corrupt or truncated gzip stream is an error. */
static cnn_status_t src_read(src_t *s, void *buf, size_t len, size_t *got)
{
    uint8_t *p = buf;
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        if (want > READ_CHUNK) want = READ_CHUNK;
        int r = gzread(s->gz, p + *got, (unsigned)want);
        int zerr = Z_OK;
        const char *zmsg = zlib_msg(gzerror(s->gz, &zerr));
        if (r < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR)) {
            if (zerr == Z_ERRNO)
                return cnn_error_set(CNN_EDATA, "%s: read error: %s", s->path,
                                     zmsg);
            return cnn_error_set(CNN_EDATA, "%s: corrupt gzip data (zlib: %s)",
                                 s->path, zmsg);
        }
        if (zerr == Z_BUF_ERROR)
            return cnn_error_set(CNN_EDATA,
                                 "%s: truncated gzip stream (zlib: %s)", s->path,
                                 zmsg);
        if (r == 0) break;
        *got += (size_t)r;
    }
    return CNN_OK;
}

/* Reads and checks the header: magic 00 00 08 ndims, then ndims
 * big-endian u32 dimensions into dims. `what` names the expected file. */
static cnn_status_t idx_header(src_t *s, uint32_t magic, uint32_t *dims,
                               const char *what)
{
    uint8_t h[16];
    size_t got;
    int ndims = (int)(magic & 0xff);
    CNN_TRY(src_read(s, h, 4, &got));
    if (got == 0)
        return cnn_error_set(CNN_EDATA, "%s: empty file%s, expected %s",
                             s->path, s->kind, what);
    if (got < 4)
        return cnn_error_set(CNN_EDATA,
                             "%s: only %zu byte%s%s, too short for an IDX header",
                             s->path, got, plural(got), s->kind);
    uint32_t m = be32(h);
    if (h[0] != 0 || h[1] != 0)
        return cnn_error_set(CNN_EDATA,
                             "%s: not an IDX file (magic 0x%08x%s), expected "
                             "0x%08x for %s",
                             s->path, m, s->gzip ? " after gunzip" : "", magic,
                             what);
    if (h[2] != 0x08)
        return cnn_error_set(CNN_EDATA,
                             "%s: IDX element type 0x%02x, expected 0x08 "
                             "(unsigned byte) for %s",
                             s->path, h[2], what);
    if (h[3] != ndims)
        return cnn_error_set(CNN_EDATA,
                             "%s: IDX file with %d dimension%s (magic 0x%08x), "
                             "expected %s (%d dimension%s, magic 0x%08x)",
                             s->path, h[3], plural(h[3]), m, what, ndims,
                             plural((unsigned)ndims), magic);
    CNN_TRY(src_read(s, h + 4, (size_t)ndims * 4, &got));
    if (got < (size_t)ndims * 4)
        return cnn_error_set(CNN_EDATA,
                             "%s: truncated IDX header%s: %zu of %d dimension "
                             "bytes",
                             s->path, s->kind, got, ndims * 4);
    for (int i = 0; i < ndims; i++) dims[i] = be32(h + 4 + 4 * i);
    return CNN_OK;
}

/* For a raw regular file: the size must be exactly header + body. */
static cnn_status_t check_size(const src_t *s, size_t header, size_t body,
                               const char *what)
{
    if (s->size < 0) return CNN_OK;
    unsigned long long want = (unsigned long long)header + body;
    unsigned long long have = (unsigned long long)s->size;
    if (have < want)
        return cnn_error_set(CNN_EDATA,
                             "%s: truncated: %llu bytes, but the header "
                             "promises %s (%llu bytes)",
                             s->path, have, what, want);
    if (have > want)
        return cnn_error_set(CNN_EDATA,
                             "%s: %llu trailing byte%s after %s (file has %llu "
                             "bytes, expected %llu)",
                             s->path, have - want, plural(have - want), what,
                             have, want);
    return CNN_OK;
}

/* Reads exactly `want` body bytes into a new buffer (*out, caller frees),
 * then requires the end of the data. Raw regular files get one buffer of
 * the (already checked) size; streams grow theirs as data arrives. */
static cnn_status_t read_body(src_t *s, size_t want, const char *what,
                              uint8_t **out)
{
    cnn_status_t st = CNN_OK;
    size_t cap = (s->size >= 0 || want < GROW_START) ? want : GROW_START;
    size_t have = 0, got;
    uint8_t *buf = malloc(cap ? cap : 1), extra;
    *out = NULL;
    if (!buf)
        return cnn_error_set(CNN_ENOMEM, "%s: cannot allocate %zu bytes for %s",
                             s->path, cap, what);
    while (have < want) {
        if (have == cap) {
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                st = cnn_error_set(CNN_ENOMEM,
                                   "%s: cannot allocate %zu bytes for %s",
                                   s->path, ncap, what);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        st = src_read(s, buf + have, cap - have, &got);
        if (st != CNN_OK) goto fail;
        if (got == 0) {
            st = cnn_error_set(CNN_EDATA,
                               "%s: truncated%s: %zu of the %zu bytes of %s",
                               s->path, s->kind, have, want, what);
            goto fail;
        }
        have += got;
    }
    st = src_read(s, &extra, 1, &got);
    if (st != CNN_OK) goto fail;
    if (got) {
        st = cnn_error_set(CNN_EDATA,
                           "%s: trailing bytes%s after the %zu bytes of %s",
                           s->path, s->kind, want, what);
        goto fail;
    }
    *out = buf;
    return CNN_OK;
fail:
    free(buf);
    return st;
}

/* Class names "0", "1", ..., "k-1" (k <= 256: labels are bytes). */
static cnn_status_t default_names(cnn_dataset_t *ds, int k)
{
    char buf[256][12];
    const char *names[256];
    for (int i = 0; i < k; i++) {
        snprintf(buf[i], sizeof buf[i], "%d", i);
        names[i] = buf[i];
    }
    return cnn_dataset_set_class_names(ds, names, k);
}

/* Opens the images file and reads its header into di (n, h, w), checking
 * the dimensions against the limits; *body is n * h * w bytes. */
static cnn_status_t open_images(src_t *s, const char *path, uint32_t di[3], size_t *body)
{
    CNN_TRY(src_open(s, path));
    CNN_TRY(idx_header(s, IDX_MAGIC_IMAGES, di, "an IDX images file (n,h,w)"));
    if (di[0] == 0 || di[1] == 0 || di[2] == 0)
        return cnn_error_set(CNN_EDATA, "%s: IDX dimensions %u x %u x %u, each must be > 0",
                             path, di[0], di[1], di[2]);
    if (di[0] > CNN_IDX_MAX_IMAGES)
        return cnn_error_set(CNN_EDATA, "%s: %u images, more than the limit of %u", path,
                             di[0], CNN_IDX_MAX_IMAGES);
    if ((uint64_t)di[1] * di[2] > CNN_IDX_MAX_PIXELS)
        return cnn_error_set(CNN_EDATA,
                             "%s: images of %u x %u pixels, more than the limit of %u pixels",
                             path, di[1], di[2], CNN_IDX_MAX_PIXELS);
    /* <= 1e8 * 2^24 < 2^57: fits in 64 bits; check size_t for 32-bit hosts */
    uint64_t body64 = (uint64_t)di[0] * di[1] * di[2];
    if (body64 > (uint64_t)SIZE_MAX / 2)
        return cnn_error_set(CNN_EDATA, "%s: %llu bytes of images do not fit in memory", path,
                             (unsigned long long)body64);
    *body = (size_t)body64;
    return CNN_OK;
}

/* Opens the labels file and reads its header: one label per image. */
static cnn_status_t open_labels(src_t *s, const char *path, const char *images_path,
                                uint32_t nimages)
{
    uint32_t dl[1] = {0};
    CNN_TRY(src_open(s, path));
    CNN_TRY(idx_header(s, IDX_MAGIC_LABELS, dl, "an IDX labels file (n)"));
    if (dl[0] != nimages)
        return cnn_error_set(CNN_EDATA, "%s: %u labels, but %s has %u images", path, dl[0],
                             images_path, nimages);
    return CNN_OK;
}

/* Reads the n labels (*lab, caller frees), each below nnames when names
 * are given; *maxlab is the largest. */
static cnn_status_t read_labels(src_t *s, size_t n, int nnames, uint8_t **lab, int *maxlab)
{
    char what[96];
    snprintf(what, sizeof what, "%zu labels", n);
    CNN_TRY(check_size(s, 8, n, what));
    CNN_TRY(read_body(s, n, what, lab));
    for (size_t i = 0; i < n; i++) {
        if (nnames > 0 && (*lab)[i] >= nnames)
            return cnn_error_set(CNN_EDATA,
                                 "%s: label %d of image %zu is out of range, expected 0..%d "
                                 "(%d classes)",
                                 s->path, (*lab)[i], i, nnames - 1, nnames);
        if ((*lab)[i] > *maxlab) *maxlab = (*lab)[i];
    }
    return CNN_OK;
}

/* A data set of n one-channel h x w images that takes over *pix (NULL
 * afterwards), with labels lab (all 0 if NULL) and the given class names
 * (or "0".."maxlab" when nnames is 0). */
static cnn_status_t make_dataset(const char *path, size_t n, const uint32_t di[3], uint8_t **pix,
                                 const uint8_t *lab, const char *const *names, int nnames,
                                 int maxlab, cnn_dataset_t **out)
{
    cnn_status_t st;
    cnn_dataset_t *ds = calloc(1, sizeof *ds);
    if (!ds) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
    ds->labels = malloc(n * sizeof *ds->labels);
    if (!ds->labels) {
        st = cnn_error_set(CNN_ENOMEM, "%s: cannot allocate %zu labels", path, n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) ds->labels[i] = lab ? lab[i] : 0;
    ds->n = n;
    ds->c = 1;
    ds->h = (int)di[1];
    ds->w = (int)di[2];
    ds->images = *pix;
    *pix = NULL;
    if (nnames > 0) st = cnn_dataset_set_class_names(ds, names, nnames);
    else st = default_names(ds, maxlab + 1);
    if (st != CNN_OK) goto fail;
    *out = ds;
    return CNN_OK;
fail:
    cnn_dataset_free(ds);
    return st;
}

cnn_status_t cnn_idx_load_named(const char *images_path, const char *labels_path,
                                const char *const *names, int nnames, cnn_dataset_t **out)
{
    cnn_status_t st;
    src_t si = {0}, sl = {0};
    uint32_t di[3] = {0};
    uint8_t *pix = NULL, *lab = NULL;
    size_t body = 0;
    int maxlab = 0;
    char what[96];

    *out = NULL;
    if (nnames < 0 || (nnames > 0 && !names))
        return cnn_error_set(CNN_ECONFIG, "%s: %d class names given",
                             labels_path ? labels_path : images_path, nnames);
    /* both headers first, then the sizes, then the data: the cheapest
     * checks fail first */
    if ((st = open_images(&si, images_path, di, &body)) != CNN_OK) goto done;
    if (labels_path && (st = open_labels(&sl, labels_path, images_path, di[0])) != CNN_OK)
        goto done;
    const size_t n = di[0];
    snprintf(what, sizeof what, "%zu images of %u x %u", n, di[1], di[2]);
    if ((st = check_size(&si, 16, body, what)) != CNN_OK) goto done;
    if (labels_path && (st = read_labels(&sl, n, nnames, &lab, &maxlab)) != CNN_OK) goto done;
    if ((st = read_body(&si, body, what, &pix)) != CNN_OK) goto done;
    st = make_dataset(images_path, n, di, &pix, lab, names, nnames, maxlab, out);
done:
    free(pix);
    free(lab);
    src_close(&si);
    src_close(&sl);
    return st;
}

cnn_status_t cnn_idx_load(const char *images_path, const char *labels_path,
                          cnn_dataset_t **out)
{
    return cnn_idx_load_named(images_path, labels_path, NULL, 0, out);
}
