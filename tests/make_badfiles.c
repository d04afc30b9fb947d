/* make_badfiles.c - writes the corpus of bad input files that
 * tests/test_badinput.sh runs through the program:
 *   make_badfiles OUT DATA MODEL.h5 CHECKPOINT.h5
 * DATA is a directory with the good IDX set of tests/synth.h
 * (train-images.idx, train-labels.idx, 8x8 images); MODEL.h5 and
 * CHECKPOINT.h5 are good files of a run on it. Every file written to OUT
 * is one defect: IDX (wrong magic or type, gzip named raw and raw named
 * .gz, corrupt or truncated gzip, dimensions near 2^32, truncated body,
 * trailing bytes, counts that disagree, labels as images), CIFAR (size
 * not a multiple of the record, a label out of range) and HDF5 models and
 * checkpoints (missing or extra datasets and groups, wrong rank, shape or
 * dtype, absurd dimensions, NaN and Inf weights, bad attributes,
 * truncated, garbage, empty or text files; a flipped byte or finite
 * garbage under a checksum, no checksums at all (an older file), finite
 * weights of 3e38 whose outputs overflow, strings over the size limit,
 * soft and external links, external storage, a virtual dataset, a
 * filter). The names say which. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <zlib.h>

static const char *out;
static int failures;

#define CHECK(expr)                                                            \
    do {                                                                       \
        if ((expr) < 0) {                                                      \
            fprintf(stderr, "make_badfiles: %s:%d: %s failed\n", __FILE__,     \
                    __LINE__, #expr);                                          \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static char *path_of(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "make_badfiles: cannot read %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "make_badfiles: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void spit(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(path_of(out, name), "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "make_badfiles: cannot write %s\n", name);
        exit(1);
    }
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX header (magic, dims) followed by `body` bytes of pattern. */
static void idx_file(const char *name, uint32_t magic, int nd, const uint32_t *dims,
                     size_t body)
{
    size_t n = 4 + 4 * (size_t)nd + body;
    unsigned char *b = calloc(n, 1);
    be32(b, magic);
    for (int i = 0; i < nd; i++) be32(b + 4 + 4 * i, dims[i]);
    for (size_t i = 4 + 4 * (size_t)nd; i < n; i++) b[i] = (unsigned char)(i * 7);
    spit(name, b, n);
    free(b);
}

static void gz_file(const char *name, const void *data, size_t n)
{
    gzFile g = gzopen(path_of(out, name), "wb");
    if (!g || (n && gzwrite(g, data, (unsigned)n) != (int)n) || gzclose(g) != Z_OK) {
        fprintf(stderr, "make_badfiles: cannot write %s\n", name);
        exit(1);
    }
}

static void idx_cases(const char *data)
{
    size_t ni, nl;
    unsigned char *img = slurp(path_of(data, "train-images.idx"), &ni);
    unsigned char *lab = slurp(path_of(data, "train-labels.idx"), &nl);
    const uint32_t n = (uint32_t)(nl - 8);

    /* the loader goes by content, not by name: both load */
    gz_file("idx-gzip-named-raw.idx", img, ni);
    spit("idx-raw-named-gz.idx.gz", img, ni);

    /* wrong magic, wrong element type, wrong number of dimensions */
    uint32_t d3[3] = {n, 8, 8};
    idx_file("idx-magic.idx", 0x12345678u, 3, d3, (size_t)n * 64);
    idx_file("idx-float-type.idx", 0x00000d03u, 3, d3, (size_t)n * 64 * 4);
    /* the labels given as images: one dimension where three are expected */
    spit("idx-labels-as-images.idx", lab, nl);

    /* corrupt and truncated gzip */
    unsigned char junk[64] = {0x1f, 0x8b, 0x08, 0x00};
    for (size_t i = 4; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 37 + 11);
    spit("idx-corrupt.idx.gz", junk, sizeof junk);
    gz_file("idx-whole.idx.gz", img, ni);
    size_t ng;
    unsigned char *gz = slurp(path_of(out, "idx-whole.idx.gz"), &ng);
    spit("idx-truncated.idx.gz", gz, ng / 2);
    free(gz);
    remove(path_of(out, "idx-whole.idx.gz"));

    /* dimensions near 2^32: refused before allocating anything */
    uint32_t huge[3] = {10, 0xffffu, 0xffffu};
    idx_file("idx-huge-dims.idx", 0x00000803u, 3, huge, 64);
    uint32_t huge_n[3] = {0xffffffffu, 8, 8};
    idx_file("idx-huge-count.idx", 0x00000803u, 3, huge_n, 64);
    uint32_t huge_l[1] = {0xfffffff0u};
    idx_file("idx-huge-labels.idx", 0x00000801u, 1, huge_l, 16);

    /* truncated body, trailing bytes, empty, header only */
    spit("idx-truncated-body.idx", img, ni - 64 * 10 - 5);
    unsigned char *longer = malloc(ni + 3);
    memcpy(longer, img, ni);
    memset(longer + ni, 0xab, 3);
    spit("idx-trailing.idx", longer, ni + 3);
    free(longer);
    spit("idx-empty.idx", "", 0);
    spit("idx-short-header.idx", img, 10);

    /* a label file with one label fewer than there are images */
    unsigned char *fewer = malloc(nl);
    memcpy(fewer, lab, nl);
    be32(fewer + 4, n - 1);
    spit("idx-labels-fewer.idx", fewer, nl - 1);
    free(fewer);
    free(img);
    free(lab);
}

static void cifar_cases(void)
{
    enum { REC = 1 + 3072 };
    unsigned char *b = calloc(3 * REC, 1);
    for (size_t i = 0; i < 3 * REC; i++) b[i] = (unsigned char)(i * 13);
    for (int r = 0; r < 3; r++) b[(size_t)r * REC] = (unsigned char)r;
    spit("cifar-good.bin", b, 3 * REC);
    /* two records and 100 bytes of a third */
    spit("cifar-size.bin", b, 2 * REC + 100);
    /* label 10 in a CIFAR-10 batch */
    b[2 * REC] = 10;
    spit("cifar-label.bin", b, 3 * REC);
    spit("cifar-empty.bin", "", 0);
    free(b);
}

/* ---- HDF5 ------------------------------------------------------------- */

/* A copy of the good file `src` as OUT/name, opened read-write. */
static hid_t h5_copy(const char *src, const char *name)
{
    size_t n;
    unsigned char *b = slurp(src, &n);
    spit(name, b, n);
    free(b);
    hid_t f = H5Fopen(path_of(out, name), H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "make_badfiles: cannot open the copy %s\n", name);
        exit(1);
    }
    return f;
}

static void h5_float_ds(hid_t f, const char *obj, int nd, const hsize_t *dims, float value)
{
    hsize_t total = 1;
    for (int i = 0; i < nd; i++) total *= dims[i];
    float *v = malloc(total * sizeof *v);
    for (hsize_t i = 0; i < total; i++) v[i] = value;
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    hid_t ds = H5Dcreate2(f, obj, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(ds);
    CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
    H5Dclose(ds);
    H5Sclose(sp);
    free(v);
}

/* Sets element i of float dataset obj to value. */
static void h5_poke(hid_t f, const char *obj, hsize_t i, float value)
{
    hid_t ds = H5Dopen2(f, obj, H5P_DEFAULT);
    CHECK(ds);
    hid_t fs = H5Dget_space(ds);
    hsize_t one = 1;
    int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[8], start[8], count[8];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    for (int k = nd - 1; k >= 0; k--) {
        start[k] = i % dims[k];
        i /= dims[k];
        count[k] = 1;
    }
    CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
    hid_t ms = H5Screate_simple(1, &one, NULL);
    CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &value));
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
}

static void h5_str_attr(hid_t f, const char *name, const char *value)
{
    if (H5Aexists(f, name) > 0) CHECK(H5Adelete(f, name));
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a);
    CHECK(H5Awrite(a, t, value));
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

/* CRC-32C bit by bit: the checksum mpicnn stores (docs/model-format.md),
 * computed independently of the library's table-driven one. */
static uint32_t crc32c(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

#define CRC_ATTR "mpicnn_crc32c"

/* Sets the checksum of numeric dataset obj from its stored data, as a
 * tool that edits a file and keeps it valid would. */
static void h5_set_crc(hid_t f, const char *obj)
{
    hid_t ds = H5Dopen2(f, obj, H5P_DEFAULT);
    CHECK(ds);
    hid_t t = H5Dget_type(ds), le = H5Tcopy(t), sp = H5Dget_space(ds);
    CHECK(H5Tset_order(le, H5T_ORDER_LE));
    const size_t bytes = (size_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(le);
    unsigned char *b = malloc(bytes + 1);
    CHECK(H5Dread(ds, le, H5S_ALL, H5S_ALL, H5P_DEFAULT, b));
    uint32_t crc = crc32c(b, bytes);
    if (H5Aexists(ds, CRC_ATTR) > 0) CHECK(H5Adelete(ds, CRC_ATTR));
    hid_t one = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(ds, CRC_ATTR, H5T_STD_U32LE, one, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a);
    CHECK(H5Awrite(a, H5T_NATIVE_UINT32, &crc));
    H5Aclose(a);
    H5Sclose(one);
    free(b);
    H5Sclose(sp);
    H5Tclose(le);
    H5Tclose(t);
    H5Dclose(ds);
}

static herr_t drop_crc_cb(hid_t g, const char *name, const H5L_info_t *info, void *p)
{
    (void)info;
    (void)p;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o >= 0 && H5Iget_type(o) == H5I_DATASET && H5Aexists(o, CRC_ATTR) > 0)
        CHECK(H5Adelete(o, CRC_ATTR));
    if (o >= 0) H5Oclose(o);
    return 0;
}

/* Removes every checksum: a file as mpicnn wrote it before checksums. */
static void h5_drop_all_crc(hid_t f)
{
    CHECK(H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, drop_crc_cb, NULL));
}

static herr_t huge_cb(hid_t g, const char *name, const H5L_info_t *info, void *p)
{
    (void)info;
    (void)p;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o >= 0 && H5Iget_type(o) == H5I_DATASET) {
        hid_t sp = H5Dget_space(o);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
        for (hssize_t i = 0; i < n; i++) v[i] = 3e38f;
        CHECK(H5Dwrite(o, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        free(v);
        H5Sclose(sp);
        H5Oclose(o);
        h5_set_crc(g, name);
    } else if (o >= 0) {
        H5Oclose(o);
    }
    return 0;
}

/* Flips bit `bit` of byte `byte` of dataset obj's data, in the file's
 * bytes (HDF5 does not see the change): a bit rotted on the disk. */
static void flip_data_bit(const char *src, const char *name, const char *obj, size_t byte, int bit)
{
    hid_t f = H5Fopen(src, H5F_ACC_RDONLY, H5P_DEFAULT), ds = H5Dopen2(f, obj, H5P_DEFAULT);
    CHECK(ds);
    haddr_t off = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
    size_t n;
    unsigned char *b = slurp(src, &n);
    if (off == HADDR_UNDEF || off + byte >= n) {
        fprintf(stderr, "make_badfiles: %s: no contiguous data\n", obj);
        exit(1);
    }
    b[off + byte] ^= (unsigned char)(1u << bit);
    spit(name, b, n);
    free(b);
}

/* A 1-d variable-length string dataset or root attribute of n copies of
 * a string of len bytes (h5py's default for str). */
static void h5_big_strings(hid_t f, const char *obj, int attr, size_t n, size_t len)
{
    char *big = malloc(len + 1);
    memset(big, 'x', len);
    big[len] = '\0';
    const char **v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = big;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hsize_t d = n;
    hid_t sp = attr ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &d, NULL);
    if (attr) {
        if (H5Aexists(f, obj) > 0) CHECK(H5Adelete(f, obj));
        hid_t a = H5Acreate2(f, obj, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(a);
        CHECK(H5Awrite(a, t, v));
        H5Aclose(a);
    } else {
        if (H5Lexists(f, obj, H5P_DEFAULT) > 0) CHECK(H5Ldelete(f, obj, H5P_DEFAULT));
        hid_t ds = H5Dcreate2(f, obj, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(ds);
        CHECK(H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        H5Dclose(ds);
    }
    H5Sclose(sp);
    H5Tclose(t);
    free(v);
    free(big);
}

/* /layers/fc1/bias (4 floats) replaced by a dataset made with dcpl. */
static void h5_replace_bias(hid_t f, hid_t dcpl)
{
    hsize_t d1[1] = {4};
    CHECK(H5Ldelete(f, "/layers/fc1/bias", H5P_DEFAULT));
    hid_t sp = H5Screate_simple(1, d1, NULL);
    hid_t ds = H5Dcreate2(f, "/layers/fc1/bias", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl,
                          H5P_DEFAULT);
    CHECK(ds);
    H5Dclose(ds);
    H5Sclose(sp);
}

/* Checksums, limits, links and storage (see h5io.h). */
static void h5_checksum_cases(const char *model, const char *ckpt)
{
    hid_t f, dcpl;
    hsize_t d1[1] = {4}, chunk[2] = {4, 16};

    /* byte 41: the second byte of weight 10, a finite change */
    flip_data_bit(model, "model-bit-flip.h5", "/layers/fc1/weight", 41, 3);
    flip_data_bit(ckpt, "ckpt-bit-flip.h5", "/layers/conv1/weight", 9, 0);

    f = h5_copy(ckpt, "ckpt-finite-garbage.h5");
    {
        float v[36];
        for (int i = 0; i < 36; i++) v[i] = 1000.0f;
        hid_t ds = H5Dopen2(f, "/layers/conv1/weight", H5P_DEFAULT);
        CHECK(ds);
        CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        H5Dclose(ds);
    }
    H5Fclose(f);

    f = h5_copy(model, "model-no-checksums.h5");
    h5_drop_all_crc(f);
    H5Fclose(f);

    /* finite weights, valid checksums, outputs that overflow */
    f = h5_copy(model, "model-huge-weights.h5");
    {
        hid_t g = H5Gopen2(f, "/layers", H5P_DEFAULT);
        CHECK(H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, huge_cb, NULL));
        H5Gclose(g);
    }
    H5Fclose(f);

    f = h5_copy(model, "model-big-config.h5");
    h5_big_strings(f, "config", 1, 1, (size_t)17 << 20);
    H5Fclose(f);

    f = h5_copy(model, "model-big-classes.h5");
    h5_big_strings(f, "/classes", 0, 4, (size_t)5 << 20);
    H5Fclose(f);

    f = h5_copy(model, "model-external-link.h5");
    CHECK(H5Ldelete(f, "/layers/fc1/bias", H5P_DEFAULT));
    CHECK(H5Lcreate_external(model, "/layers/fc1/bias", f, "/layers/fc1/bias", H5P_DEFAULT,
                             H5P_DEFAULT));
    H5Fclose(f);

    f = h5_copy(model, "model-soft-link.h5");
    CHECK(H5Ldelete(f, "/layers/fc1/bias", H5P_DEFAULT));
    CHECK(H5Lcreate_soft("/layers/conv1/bias", f, "/layers/fc1/bias", H5P_DEFAULT,
                         H5P_DEFAULT));
    H5Fclose(f);

    f = h5_copy(model, "model-external-storage.h5");
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    CHECK(H5Pset_external(dcpl, "fc1-bias.raw", 0, 16));
    h5_replace_bias(f, dcpl);
    H5Pclose(dcpl);
    H5Fclose(f);

    f = h5_copy(model, "model-virtual.h5");
    {
        hid_t vs = H5Screate_simple(1, d1, NULL), ss = H5Screate_simple(1, d1, NULL);
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        CHECK(H5Pset_virtual(dcpl, vs, ".", "/layers/conv1/bias", ss));
        h5_replace_bias(f, dcpl);
        H5Pclose(dcpl);
        H5Sclose(ss);
        H5Sclose(vs);
    }
    H5Fclose(f);

    f = h5_copy(model, "model-filter.h5");
    {
        float v[4 * 64] = {0};
        hsize_t d2[2] = {4, 64};
        CHECK(H5Ldelete(f, "/layers/fc1/weight", H5P_DEFAULT));
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        CHECK(H5Pset_chunk(dcpl, 2, chunk));
        CHECK(H5Pset_deflate(dcpl, 6));
        hid_t sp = H5Screate_simple(2, d2, NULL);
        hid_t ds = H5Dcreate2(f, "/layers/fc1/weight", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl,
                              H5P_DEFAULT);
        CHECK(ds);
        CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        H5Dclose(ds);
        H5Sclose(sp);
        H5Pclose(dcpl);
    }
    H5Fclose(f);
}

static void h5_cases(const char *model)
{
    hid_t f;
    hsize_t d1[1] = {4}, d2[2] = {4, 9}, d2b[2] = {4, 63};

    f = h5_copy(model, "model-missing-dataset.h5");
    CHECK(H5Ldelete(f, "/layers/conv1/weight", H5P_DEFAULT));
    H5Fclose(f);

    f = h5_copy(model, "model-extra-dataset.h5");
    h5_float_ds(f, "/layers/conv1/extra", 1, d1, 0.5f);
    H5Fclose(f);

    f = h5_copy(model, "model-extra-group.h5");
    hid_t g = H5Gcreate2(f, "/layers/ghost", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(g);
    H5Gclose(g);
    h5_float_ds(f, "/layers/ghost/weight", 1, d1, 0.5f);
    H5Fclose(f);

    f = h5_copy(model, "model-wrong-rank.h5");
    CHECK(H5Ldelete(f, "/layers/conv1/weight", H5P_DEFAULT));
    h5_float_ds(f, "/layers/conv1/weight", 2, d2, 0.1f);
    H5Fclose(f);

    f = h5_copy(model, "model-wrong-shape.h5");
    CHECK(H5Ldelete(f, "/layers/fc1/weight", H5P_DEFAULT));
    h5_float_ds(f, "/layers/fc1/weight", 2, d2b, 0.1f);
    H5Fclose(f);

    f = h5_copy(model, "model-wrong-dtype.h5");
    CHECK(H5Ldelete(f, "/layers/conv1/bias", H5P_DEFAULT));
    {
        int v[4] = {1, 2, 3, 4};
        hid_t sp = H5Screate_simple(1, d1, NULL);
        hid_t ds = H5Dcreate2(f, "/layers/conv1/bias", H5T_STD_I32LE, sp, H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT);
        CHECK(ds);
        CHECK(H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        H5Dclose(ds);
        H5Sclose(sp);
    }
    H5Fclose(f);

    /* 2^40 x 2^40 floats, chunked and never written: a reader that
     * allocated by the header would ask for 4 YiB */
    f = h5_copy(model, "model-absurd-dims.h5");
    CHECK(H5Ldelete(f, "/layers/fc1/weight", H5P_DEFAULT));
    {
        hsize_t big[2] = {(hsize_t)1 << 40, (hsize_t)1 << 40}, chunk[2] = {16, 16};
        hid_t sp = H5Screate_simple(2, big, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 2, chunk);
        hid_t ds = H5Dcreate2(f, "/layers/fc1/weight", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl,
                              H5P_DEFAULT);
        CHECK(ds);
        H5Dclose(ds);
        H5Pclose(dcpl);
        H5Sclose(sp);
    }
    H5Fclose(f);

    f = h5_copy(model, "model-nan-weight.h5");
    h5_poke(f, "/layers/conv1/weight", 5, NAN);
    H5Fclose(f);

    f = h5_copy(model, "model-inf-bias.h5");
    h5_poke(f, "/layers/fc1/bias", 2, INFINITY);
    H5Fclose(f);

    f = h5_copy(model, "model-no-config.h5");
    CHECK(H5Adelete(f, "config"));
    H5Fclose(f);

    f = h5_copy(model, "model-bad-config.h5");
    h5_str_attr(f, "config", "[net]\nlayers = conv1\n[conv1]\ntype = teleport\n");
    H5Fclose(f);

    f = h5_copy(model, "model-wrong-format.h5");
    h5_str_attr(f, "format", "someone-elses-model");
    H5Fclose(f);

    f = h5_copy(model, "model-input-shape.h5");
    {
        int64_t v[3] = {1, 1000000000, 1000000000};
        hid_t ds = H5Dopen2(f, "/input_shape", H5P_DEFAULT);
        CHECK(ds);
        CHECK(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        /* an edit that drops the checksum: the values are checked */
        CHECK(H5Adelete(ds, CRC_ATTR));
        H5Dclose(ds);
    }
    H5Fclose(f);

    /* not HDF5 at all, or not all of it */
    size_t n;
    unsigned char *b = slurp(model, &n);
    spit("model-truncated.h5", b, n / 2);
    spit("model-header-only.h5", b, 96);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((i * 2654435761u) >> 13);
    spit("model-garbage.h5", b, n);
    free(b);
    spit("model-empty.h5", "", 0);
    spit("model-text.h5", "this is not a model\n", 20);
}

static void h5_ckpt_cases(const char *ckpt)
{
    hid_t f;
    hsize_t d2[2] = {4, 9};
    size_t n;
    unsigned char *b;

    f = h5_copy(ckpt, "ckpt-nan-weight.h5");
    h5_poke(f, "/layers/fc1/weight", 17, NAN);
    H5Fclose(f);

    f = h5_copy(ckpt, "ckpt-missing-counters.h5");
    CHECK(H5Ldelete(f, "/train/counters", H5P_DEFAULT));
    H5Fclose(f);

    f = h5_copy(ckpt, "ckpt-bad-counters.h5");
    {
        hid_t ds = H5Dopen2(f, "/train/counters", H5P_DEFAULT);
        CHECK(ds);
        hid_t sp = H5Dget_space(ds);
        hssize_t cnt = H5Sget_simple_extent_npoints(sp);
        int64_t *v = calloc((size_t)(cnt > 0 ? cnt : 1), sizeof *v);
        CHECK(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        v[0] = -7; /* epoch */
        CHECK(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        CHECK(H5Adelete(ds, CRC_ATTR)); /* as above */
        free(v);
        H5Sclose(sp);
        H5Dclose(ds);
    }
    H5Fclose(f);

    f = h5_copy(ckpt, "ckpt-wrong-shape.h5");
    CHECK(H5Ldelete(f, "/layers/conv1/weight", H5P_DEFAULT));
    h5_float_ds(f, "/layers/conv1/weight", 2, d2, 0.1f);
    H5Fclose(f);

    f = h5_copy(ckpt, "ckpt-is-model.h5");
    h5_str_attr(f, "format", "mpicnn-model");
    H5Fclose(f);

    b = slurp(ckpt, &n);
    spit("ckpt-truncated.h5", b, n / 3);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((i * 40503u) >> 7);
    spit("ckpt-garbage.h5", b, n);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s OUT DATA MODEL.h5 CHECKPOINT.h5\n", argv[0]);
        return 2;
    }
    out = argv[1];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    idx_cases(argv[2]);
    cifar_cases();
    h5_cases(argv[3]);
    h5_ckpt_cases(argv[4]);
    h5_checksum_cases(argv[3], argv[4]);
    return failures ? 1 : 0;
}
