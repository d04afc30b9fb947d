/* test_model.c - HDF5 layer (h5io) and model files: bit-exact round trip,
 * atomic writes (the target changes only at commit, failures leave it
 * intact), and hostile files (missing, not HDF5,
 * truncated, missing/extra/misshapen/mistyped/non-finite datasets, absurd
 * lengths), each refused with CNN_EDATA and a message naming the file and
 * the dataset. Every test runs in its own mkdtemp directory. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicnn.h"
#include "mpicnn/h5io.h"
#include "mpicnn/model.h"
#include "testutil.h"

typedef struct {
    char dir[64];
    char path[128]; /* dir/model.h5 */
} fx_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/mpicnn-test-model-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/model.h5", fx->dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static cnn_layer_spec_t L(const char *name, const char *type, int f, int k, int pad)
{
    cnn_layer_spec_t s = {.filters = f, .kh = k, .kw = k, .stride = k ? 1 : 0,
                          .pad = pad, .eps = 1e-5f, .momentum = 0.1f};
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.type, sizeof s.type, "%s", type);
    return s;
}

/* conv 4 3x3 pad 1 -> batchnorm -> relu -> maxpool 2 -> flatten -> dense 5
 * on (2,6,6) images, with random parameters and state. */
static cnn_net_t *make_net(uint64_t seed)
{
    cnn_layer_spec_t specs[] = {
        L("conv1", "conv", 4, 3, 1), L("bn1", "batchnorm", 0, 0, 0),
        L("relu1", "relu", 0, 0, 0), L("pool1", "maxpool", 0, 2, 0),
        L("flat", "flatten", 0, 0, 0), L("fc", "dense", 5, 0, 0),
    };
    specs[3].stride = 2;
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(specs, 6, (cnn_shape_t){2, 2, 6, 6}, 1, &net), CNN_OK);
    for (size_t i = 0; i < net->nparams; i++)
        net->params[i] = (float)tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < net->nstate; i++)
        net->state[i] = (float)tu_uniform(&seed, 0.1, 2);
    return net;
}

static const char *class_names[5] = {"zero", "one", "two", "three", "f\xc3\xbcnf"};
static float norm_mean[2] = {0.25f, 0.5f}, norm_std[2] = {0.125f, 0.75f};
static double hist[2 * CNN_HISTORY_COLS] = {1, 2.5, 0.25, 2.25, 0.3, 0.01, 1.5, 1000,
                                            2, 1.5, 0.5,  1.25, 0.6, 0.01, 1.25, 1200};
static const char config_text[] = "[net]\nlayers = conv1, bn1, relu1, pool1, flat, fc\n";

static cnn_model_meta_t make_meta(void)
{
    cnn_model_meta_t m = {
        .config = (char *)config_text, .nclasses = 5, .class_names = (char **)class_names,
        .mean = norm_mean, .std = norm_std, .nhistory = 2, .history = hist};
    return m;
}

static void save_good(const char *path, const cnn_net_t *net)
{
    cnn_model_meta_t m = make_meta();
    cnn_status_t st = cnn_model_save(path, net, &m);
    if (st != CNN_OK) fail_msg("save %s: %s", path, cnn_error_message());
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Entries of dir other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void assert_msg_has(const char *needle)
{
    const char *msg = cnn_error_message();
    if (!strstr(msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

/* ---- h5io ------------------------------------------------------------- */

static void test_h5_writer_commit(void **state)
{
    fx_t *fx = *state;
    char tmp[256], want[256];
    cnn_h5w_t *w = NULL;
    const float v[6] = {1, 2, 3, 4, 5, 6};
    const size_t dims[2] = {2, 3};
    assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
    assert_string_equal(cnn_h5w_path(w), fx->path);
    /* the temp file is .model.h5.tmp.HOST.PID next to the target */
    snprintf(tmp, sizeof tmp, "%s", cnn_h5w_tmp_path(w));
    snprintf(want, sizeof want, "%s/.model.h5.tmp.", fx->dir);
    assert_int_equal(strncmp(tmp, want, strlen(want)), 0);
    snprintf(want, sizeof want, ".%ld", (long)getpid());
    assert_string_equal(tmp + strlen(tmp) - strlen(want), want);
    assert_int_equal(cnn_h5w_floats(w, "/a/b/x", 2, dims, v), CNN_OK);
    /* not there before the commit; only the temp file is */
    assert_int_equal(access(fx->path, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), 0);
    assert_int_equal(cnn_h5w_commit(w), CNN_OK);
    assert_int_equal(access(fx->path, F_OK), 0);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(dir_entries(fx->dir), 1);

    cnn_h5r_t *r = NULL;
    float got[6];
    assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
    assert_true(cnn_h5r_exists(r, "/a/b/x"));
    assert_true(cnn_h5r_is_group(r, "/a/b"));
    assert_false(cnn_h5r_exists(r, "/a/c/x"));
    assert_false(cnn_h5r_exists(r, "/a/b/x/y"));
    assert_int_equal(cnn_h5r_floats(r, "/a/b/x", 2, dims, got), CNN_OK);
    assert_memory_equal(got, v, sizeof v);
    const size_t bad[2] = {3, 2};
    assert_int_equal(cnn_h5r_floats(r, "/a/b/x", 2, bad, got), CNN_EDATA);
    assert_msg_has("model.h5: /a/b/x: shape (2,3) expected (3,2)");
    assert_int_equal(cnn_h5r_floats(r, "/a/b", 2, dims, got), CNN_EDATA);
    assert_msg_has("/a/b: is a group");
    cnn_h5r_close(r);
    cnn_h5r_close(NULL);
}

static void test_h5_writer_abort(void **state)
{
    fx_t *fx = *state;
    cnn_h5w_t *w = NULL;
    const double d[2] = {1, 2};
    assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
    assert_int_equal(cnn_h5w_doubles(w, "/d", 2, d), CNN_OK);
    assert_int_equal(dir_entries(fx->dir), 1);
    cnn_h5w_abort(w);
    cnn_h5w_abort(NULL);
    assert_int_equal(dir_entries(fx->dir), 0);
}

static void test_h5_values(void **state)
{
    fx_t *fx = *state;
    cnn_h5w_t *w = NULL;
    const double d[3] = {0.5, -1, 1e300};
    const int64_t iv[2] = {-7, (int64_t)1 << 40};
    const char *strs[3] = {"alpha", "", "\xce\xb2\xce\xb7"};
    assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
    assert_int_equal(cnn_h5w_doubles(w, "/g/d", 3, d), CNN_OK);
    assert_int_equal(cnn_h5w_int64s(w, "/g/i", 2, iv), CNN_OK);
    assert_int_equal(cnn_h5w_strings(w, "/g/s", 3, strs), CNN_OK);
    assert_int_equal(cnn_h5w_group(w, "/empty/sub"), CNN_OK);
    assert_int_equal(cnn_h5w_group(w, "/empty/sub"), CNN_OK);
    assert_int_equal(cnn_h5w_attr_str(w, "/", "note", "first"), CNN_OK);
    assert_int_equal(cnn_h5w_attr_str(w, "/", "note", "second"), CNN_OK);
    assert_int_equal(cnn_h5w_attr_int64(w, "/g/d", "n", 42), CNN_OK);
    assert_int_equal(cnn_h5w_attr_double(w, "/g", "x", 0.125), CNN_OK);
    assert_int_equal(cnn_h5w_attr_strings(w, "/g", "names", 3, strs), CNN_OK);
    assert_int_equal(cnn_h5w_attr_str(w, "/nothere", "a", "b"), CNN_EIO);
    assert_msg_has("/nothere");
    /* fixed-length strings, as numpy's bytes arrays are stored by h5py */
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    hsize_t two = 2;
    hid_t sp = H5Screate_simple(1, &two, NULL);
    hid_t ds = H5Dcreate2(cnn_h5w_file(w), "/fixed", t, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, "abcdxy\0\0") >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Tclose(t);
    assert_int_equal(cnn_h5w_commit(w), CNN_OK);

    cnn_h5r_t *r = NULL;
    double *dv = NULL;
    int64_t *ivr = NULL, i64 = 0;
    char **sv = NULL, *s = NULL;
    size_t n = 0;
    double x = 0;
    assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
    assert_int_equal(cnn_h5r_doubles(r, "/g/d", 3, &dv, &n), CNN_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(dv, d, sizeof d);
    free(dv);
    assert_int_equal(cnn_h5r_doubles(r, "/g/d", 2, &dv, &n), CNN_EDATA);
    assert_msg_has("/g/d: length 3 exceeds the limit 2");
    assert_null(dv);
    assert_int_equal(cnn_h5r_int64s(r, "/g/i", 10, &ivr, &n), CNN_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(ivr, iv, sizeof iv);
    free(ivr);
    assert_int_equal(cnn_h5r_int64s(r, "/g/d", 10, &ivr, &n), CNN_EDATA);
    assert_msg_has("/g/d: dtype float64, expected int64");
    assert_int_equal(cnn_h5r_strings(r, "/g/s", 10, &sv, &n), CNN_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) assert_string_equal(sv[i], strs[i]);
    cnn_h5_strings_free(sv, n);
    assert_int_equal(cnn_h5r_strings(r, "/fixed", 10, &sv, &n), CNN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(sv[0], "abcd");
    assert_string_equal(sv[1], "xy");
    cnn_h5_strings_free(sv, n);
    assert_int_equal(cnn_h5r_attr_str(r, "/", "note", &s), CNN_OK);
    assert_string_equal(s, "second");
    free(s);
    assert_int_equal(cnn_h5r_attr_int64(r, "/g/d", "n", &i64), CNN_OK);
    assert_int_equal(i64, 42);
    assert_int_equal(cnn_h5r_attr_double(r, "/g", "x", &x), CNN_OK);
    assert_true(x == 0.125);
    assert_int_equal(cnn_h5r_attr_double(r, "/g/d", "n", &x), CNN_OK);
    assert_true(x == 42.0);
    assert_int_equal(cnn_h5r_attr_int64(r, "/g", "x", &i64), CNN_EDATA);
    assert_msg_has("/g attribute 'x': dtype float64, expected int64");
    assert_int_equal(cnn_h5r_attr_str(r, "/", "missing", &s), CNN_EDATA);
    assert_msg_has("/ attribute 'missing': missing");
    assert_int_equal(cnn_h5r_attr_strings(r, "/g", "names", 10, &sv, &n), CNN_OK);
    assert_int_equal(n, 3);
    assert_string_equal(sv[2], strs[2]);
    cnn_h5_strings_free(sv, n);
    assert_int_equal(cnn_h5r_list(r, "/g", &sv, &n), CNN_OK);
    assert_int_equal(n, 3);
    assert_string_equal(sv[0], "d");
    assert_string_equal(sv[1], "i");
    assert_string_equal(sv[2], "s");
    cnn_h5_strings_free(sv, n);
    assert_int_equal(cnn_h5r_list(r, "/empty/sub", &sv, &n), CNN_OK);
    assert_int_equal(n, 0);
    cnn_h5_strings_free(sv, n);
    assert_int_equal(cnn_h5r_list(r, "/g/d", &sv, &n), CNN_EDATA);
    int nd = 0;
    size_t dims[CNN_H5_MAXDIMS];
    assert_int_equal(cnn_h5r_shape(r, "/g/s", &nd, dims), CNN_OK);
    assert_int_equal(nd, 1);
    assert_int_equal(dims[0], 3);
    cnn_h5r_close(r);
}

static void make_ds(hid_t f, const char *name, hid_t type, int nd, const hsize_t *dims,
                    hid_t mtype, const void *data);

/* CRC-32C bit by bit: the definition of docs/model-format.md. */
static uint32_t crc_bits(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

static uint32_t crc_attr(hid_t f, const char *obj)
{
    uint32_t v = 0;
    hid_t ds = H5Dopen2(f, obj, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t a = H5Aopen(ds, CNN_H5_CRC_ATTR, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_UINT32, &v) >= 0);
    H5Aclose(a);
    H5Dclose(ds);
    return v;
}

static void set_crc_attr(hid_t f, const char *obj, uint32_t v)
{
    hid_t ds = H5Dopen2(f, obj, H5P_DEFAULT), one = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(ds, CNN_H5_CRC_ATTR, H5T_STD_U32LE, one, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_UINT32, &v) >= 0);
    H5Aclose(a);
    H5Sclose(one);
    H5Dclose(ds);
}

/* A copy of `good` (len bytes) at path with bit `bit` of byte `byte` of
 * dataset obj's data flipped, in the file's bytes. */
static void write_flipped(const char *path, const char *good, size_t len, const char *obj,
                          size_t byte, int bit)
{
    write_bytes(path, good, len);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, obj, H5P_DEFAULT);
    assert_true(ds >= 0);
    const haddr_t off = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
    assert_true(off != HADDR_UNDEF && off + byte < len);
    char *b = malloc(len);
    memcpy(b, good, len);
    b[off + byte] ^= (char)(1u << bit);
    write_bytes(path, b, len);
    free(b);
}

/* Every writer attaches the CRC-32C of the little-endian data; every
 * reader verifies it, whatever the dataset (a generic h5io file, as a
 * data file would be), and finds one flipped bit. */
static void test_h5_checksums(void **state)
{
    fx_t *fx = *state;
    const float fv[6] = {0.5f, -1.25f, 3.0f, 1e-3f, 7.0f, -2.0f};
    const double dv[3] = {1.5, -2.0, 1e300};
    const int64_t iv[4] = {1, -2, 1LL << 40, 7};
    const char *sv[3] = {"a", "", "bc"};
    const size_t dims[2] = {2, 3};
    const uint16_t one = 1;
    cnn_h5w_t *w = NULL;
    assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
    assert_int_equal(cnn_h5w_floats(w, "/d/f", 2, dims, fv), CNN_OK);
    assert_int_equal(cnn_h5w_doubles(w, "/d/x", 3, dv), CNN_OK);
    assert_int_equal(cnn_h5w_int64s(w, "/d/i", 4, iv), CNN_OK);
    assert_int_equal(cnn_h5w_strings(w, "/d/s", 3, sv), CNN_OK);
    assert_int_equal(cnn_h5w_commit(w), CNN_OK);

    /* the attribute is the CRC-32C of the bytes (strings: each with its NUL) */
    hid_t f = H5Fopen(fx->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*(const unsigned char *)&one == 1) {
        assert_true(crc_attr(f, "/d/f") == crc_bits(fv, sizeof fv));
        assert_true(crc_attr(f, "/d/x") == crc_bits(dv, sizeof dv));
        assert_true(crc_attr(f, "/d/i") == crc_bits(iv, sizeof iv));
    }
    assert_true(crc_attr(f, "/d/s") == crc_bits("a\0\0bc", 6));
    H5Fclose(f);

    size_t len, n;
    char *good = slurp(fx->path, &len);
    float fo[6];
    double *dp;
    int64_t *ip;
    char **sp;
    cnn_h5r_t *r = NULL;
    static const struct {
        const char *obj;
        size_t byte;
    } flips[] = {{"/d/f", 9}, {"/d/x", 17}, {"/d/i", 0}};
    for (size_t k = 0; k < 3; k++) {
        write_flipped(fx->path, good, len, flips[k].obj, flips[k].byte, 1);
        assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
        cnn_status_t st = k == 0   ? cnn_h5r_floats(r, "/d/f", 2, dims, fo)
                          : k == 1 ? cnn_h5r_doubles(r, "/d/x", 9, &dp, &n)
                                   : cnn_h5r_int64s(r, "/d/i", 9, &ip, &n);
        assert_int_equal(st, CNN_EDATA);
        assert_msg_has(flips[k].obj);
        assert_msg_has(": checksum mismatch: the data's CRC-32C is 0x");
        cnn_h5r_close(r);
    }
    /* a string changed through HDF5: the library writes the data, not the checksum */
    write_bytes(fx->path, good, len);
    f = H5Fopen(fx->path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/d/s", H5P_DEFAULT), t = H5Dget_type(ds);
    const char *sv2[3] = {"a", "x", "bc"};
    assert_true(H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, sv2) >= 0);
    H5Tclose(t);
    H5Dclose(ds);
    H5Fclose(f);
    assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
    assert_int_equal(cnn_h5r_strings(r, "/d/s", 9, &sp, &n), CNN_EDATA);
    assert_null(sp);
    assert_msg_has("/d/s: checksum mismatch");
    /* the untouched datasets, and data read as another type (int64 as
     * doubles: the checksum is of the stored int64s) */
    assert_int_equal(cnn_h5r_floats(r, "/d/f", 2, dims, fo), CNN_OK);
    assert_int_equal(cnn_h5r_doubles(r, "/d/i", 9, &dp, &n), CNN_OK);
    assert_true(n == 4 && dp[2] == 1099511627776.0);
    free(dp);
    cnn_h5r_close(r);
    free(good);
}

/* The checksum is of the stored type, little-endian: float64 and
 * big-endian float32 datasets with a correct one load as float32. */
static void test_h5_checksum_stored_type(void **state)
{
    fx_t *fx = *state;
    const double dv[2] = {0.25, -3.5};
    const float fv[2] = {0.25f, -3.5f};
    const uint16_t one = 1;
    const hsize_t d2 = 2;
    const size_t want = 2;
    float out[2];
    if (*(const unsigned char *)&one != 1) skip();
    cnn_h5w_t *w = NULL;
    assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
    hid_t f = cnn_h5w_file(w);
    make_ds(f, "/f64", H5T_IEEE_F64LE, 1, &d2, H5T_NATIVE_DOUBLE, dv);
    set_crc_attr(f, "/f64", crc_bits(dv, sizeof dv));
    make_ds(f, "/f32be", H5T_IEEE_F32BE, 1, &d2, H5T_NATIVE_FLOAT, fv);
    set_crc_attr(f, "/f32be", crc_bits(fv, sizeof fv));
    make_ds(f, "/wrong", H5T_IEEE_F64LE, 1, &d2, H5T_NATIVE_DOUBLE, dv);
    set_crc_attr(f, "/wrong", crc_bits(fv, sizeof fv)); /* of float32 values: wrong */
    assert_int_equal(cnn_h5w_commit(w), CNN_OK);
    cnn_h5r_t *r = NULL;
    assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
    assert_int_equal(cnn_h5r_floats(r, "/f64", 1, &want, out), CNN_OK);
    assert_true(out[1] == -3.5f);
    assert_int_equal(cnn_h5r_floats(r, "/f32be", 1, &want, out), CNN_OK);
    assert_true(out[0] == 0.25f);
    assert_int_equal(cnn_h5r_floats(r, "/wrong", 1, &want, out), CNN_EDATA);
    assert_msg_has("/wrong: checksum mismatch");
    cnn_h5r_close(r);
}

/* cnn_h5r_open refuses links, external and virtual storage and filters
 * anywhere in the file; string attributes are limited like config files. */
static void test_h5_limits(void **state)
{
    fx_t *fx = *state;
    const float fv[4] = {1, 2, 3, 4};
    const size_t d4 = 4;
    const hsize_t h4 = 4;
    cnn_h5r_t *r = NULL;
    for (int k = 0; k < 4; k++) {
        cnn_h5w_t *w = NULL;
        assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
        assert_int_equal(cnn_h5w_floats(w, "/g/a", 1, &d4, fv), CNN_OK);
        hid_t f = cnn_h5w_file(w), dcpl = H5Pcreate(H5P_DATASET_CREATE);
        const char *want = NULL;
        if (k == 0) {
            assert_true(H5Lcreate_soft("/g/a", f, "/g/b", H5P_DEFAULT, H5P_DEFAULT) >= 0);
            want = "/g/b: a soft link to '/g/a', refused";
        } else if (k == 1) {
            assert_true(H5Lcreate_external("other.h5", "/x", f, "/g/b", H5P_DEFAULT,
                                           H5P_DEFAULT) >= 0);
            want = "/g/b: an external link to other.h5:/x, refused";
        } else if (k == 2) {
            assert_true(H5Pset_external(dcpl, "raw.bin", 0, 16) >= 0);
            want = "/g/b: its data is stored in the external file 'raw.bin'";
        } else {
            assert_true(H5Pset_chunk(dcpl, 1, &h4) >= 0 && H5Pset_shuffle(dcpl) >= 0);
            want = "/g/b: stored through the HDF5 filter 'shuffle'";
        }
        if (k >= 2) {
            hid_t sp = H5Screate_simple(1, &h4, NULL);
            hid_t ds = H5Dcreate2(f, "/g/b", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl,
                                  H5P_DEFAULT);
            assert_true(ds >= 0);
            H5Dclose(ds);
            H5Sclose(sp);
        }
        H5Pclose(dcpl);
        assert_int_equal(cnn_h5w_commit(w), CNN_OK);
        assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_EDATA);
        assert_null(r);
        assert_msg_has(want);
    }
    /* a string attribute of 16 MiB + 1 byte: refused; 16 MiB - 1: read */
    for (int k = 0; k < 2; k++) {
        const size_t len = CNN_H5_STR_MAX + (k ? 0 : -1);
        char *big = malloc(len + 1), *got = NULL;
        memset(big, 'c', len);
        big[len] = '\0';
        cnn_h5w_t *w = NULL;
        assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
        assert_int_equal(cnn_h5w_attr_str(w, "/", "config", big), CNN_OK);
        assert_int_equal(cnn_h5w_commit(w), CNN_OK);
        assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
        assert_int_equal(cnn_h5r_attr_str(r, "/", "config", &got), k ? CNN_EDATA : CNN_OK);
        if (k) assert_msg_has("/ attribute 'config': strings of more than 16777216 bytes");
        else assert_true(got && strlen(got) == len);
        free(got);
        cnn_h5r_close(r);
        free(big);
    }
}

static void test_h5_error_summary(void **state)
{
    /* a failing HDF5 call through the macro: source location, the call
     * and HDF5's own reason, and nothing printed */
    cnn_status_t st = CNN_OK;
    hid_t f = H5I_INVALID_HID;
    CNN_H5_CHECK(f = H5Fopen("/nonexistent/dir/x.h5", H5F_ACC_RDONLY, H5P_DEFAULT), fail);
    fail_msg("H5Fopen succeeded");
fail:
    assert_int_equal(st, CNN_EIO);
    assert_true(f < 0);
    assert_msg_has("test_model.c:");
    assert_msg_has("H5Fopen(\"/nonexistent/dir/x.h5\"");
    assert_msg_has("unable to open file");
}

/* ---- model: round trip and atomicity ------------------------------------ */

static void test_model_roundtrip(void **state)
{
    fx_t *fx = *state;
    cnn_net_t *a = make_net(1), *b = make_net(2);
    save_good(fx->path, a);

    cnn_model_meta_t m;
    assert_int_equal(cnn_model_load_meta(fx->path, &m), CNN_OK);
    assert_string_equal(m.config, config_text);
    assert_int_equal(m.c, 2);
    assert_int_equal(m.h, 6);
    assert_int_equal(m.w, 6);
    assert_int_equal(m.nclasses, 5);
    assert_non_null(m.class_names);
    for (int i = 0; i < 5; i++) assert_string_equal(m.class_names[i], class_names[i]);
    assert_memory_equal(m.mean, norm_mean, sizeof norm_mean);
    assert_memory_equal(m.std, norm_std, sizeof norm_std);
    assert_int_equal(m.nhistory, 2);
    assert_memory_equal(m.history, hist, sizeof hist);
    cnn_model_meta_free(&m);
    assert_null(m.config);
    cnn_model_meta_free(NULL);

    assert_true(memcmp(a->params, b->params, sizeof(float) * a->nparams) != 0);
    assert_int_equal(cnn_model_load_weights(fx->path, b), CNN_OK);
    assert_memory_equal(a->params, b->params, sizeof(float) * a->nparams);
    assert_int_equal(a->nstate, 8);
    assert_memory_equal(a->state, b->state, sizeof(float) * a->nstate);

    /* PyTorch layouts */
    cnn_h5r_t *r = NULL;
    int nd;
    size_t dims[CNN_H5_MAXDIMS];
    assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
    assert_int_equal(cnn_h5r_shape(r, "/layers/conv1/weight", &nd, dims), CNN_OK);
    assert_int_equal(nd, 4);
    assert_int_equal(dims[0], 4);
    assert_int_equal(dims[1], 2);
    assert_int_equal(dims[2], 3);
    assert_int_equal(dims[3], 3);
    assert_int_equal(cnn_h5r_shape(r, "/layers/fc/weight", &nd, dims), CNN_OK);
    assert_int_equal(nd, 2);
    assert_int_equal(dims[0], 5);
    assert_int_equal(dims[1], 36);
    assert_true(cnn_h5r_exists(r, "/layers/bn1/running_var"));
    assert_false(cnn_h5r_exists(r, "/layers/relu1"));
    char **order = NULL;
    size_t n = 0;
    assert_int_equal(cnn_h5r_attr_strings(r, "/layers", "order", 100, &order, &n), CNN_OK);
    assert_int_equal(n, 6);
    assert_string_equal(order[3], "pool1");
    cnn_h5_strings_free(order, n);
    int64_t idx = 0;
    assert_int_equal(cnn_h5r_attr_int64(r, "/layers/fc", "index", &idx), CNN_OK);
    assert_int_equal(idx, 5);
    /* each layer group names its inputs: here the layer before, or the
     * net's input */
    assert_int_equal(cnn_h5r_attr_strings(r, "/layers/fc", "inputs", 8, &order, &n), CNN_OK);
    assert_int_equal(n, 1);
    assert_string_equal(order[0], "flat");
    cnn_h5_strings_free(order, n);
    assert_int_equal(cnn_h5r_attr_strings(r, "/layers/conv1", "inputs", 8, &order, &n), CNN_OK);
    assert_int_equal(n, 1);
    assert_string_equal(order[0], "input");
    cnn_h5_strings_free(order, n);
    cnn_h5r_close(r);

    /* a model without optional metadata */
    char p2[256];
    snprintf(p2, sizeof p2, "%s/bare.h5", fx->dir);
    assert_int_equal(cnn_model_save(p2, a, NULL), CNN_OK);
    assert_int_equal(cnn_model_load_meta(p2, &m), CNN_OK);
    assert_string_equal(m.config, "");
    assert_int_equal(m.nclasses, 5); /* from the net's outputs */
    assert_null(m.class_names);
    assert_null(m.mean);
    assert_null(m.history);
    assert_int_equal(m.nhistory, 0);
    cnn_model_meta_free(&m);
    assert_int_equal(cnn_model_load_weights(p2, b), CNN_OK);
    cnn_net_free(a);
    cnn_net_free(b);
}

static void test_model_layers_prefix(void **state)
{
    /* the checkpoint's use: other arenas, under another prefix */
    fx_t *fx = *state;
    cnn_net_t *a = make_net(3), *b = make_net(4);
    float *p = malloc(sizeof(float) * a->nparams), *s = malloc(sizeof(float) * a->nstate);
    for (size_t i = 0; i < a->nparams; i++) p[i] = (float)i * 0.5f;
    for (size_t i = 0; i < a->nstate; i++) s[i] = (float)i + 1.0f;
    cnn_h5w_t *w = NULL;
    assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
    assert_int_equal(cnn_model_write_layers(w, "/best/layers", a, p, s), CNN_OK);
    assert_int_equal(cnn_model_write_history(w, "/best/history", 2, hist), CNN_OK);
    assert_int_equal(cnn_h5w_commit(w), CNN_OK);

    cnn_h5r_t *r = NULL;
    int rows = 0;
    double *h = NULL;
    assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
    assert_int_equal(cnn_model_read_layers(r, NULL, "/best/layers", b, NULL, NULL), CNN_OK);
    assert_memory_equal(b->params, p, sizeof(float) * a->nparams);
    assert_memory_equal(b->state, s, sizeof(float) * a->nstate);
    assert_int_equal(cnn_model_read_history(r, "/best/history", &rows, &h), CNN_OK);
    assert_int_equal(rows, 2);
    assert_memory_equal(h, hist, sizeof hist);
    free(h);
    assert_int_equal(cnn_model_read_history(r, "/history", &rows, &h), CNN_OK);
    assert_int_equal(rows, 0);
    assert_null(h);
    assert_int_equal(cnn_model_read_layers(r, "shown.h5", "/layers", b, NULL, NULL),
                     CNN_EDATA);
    assert_msg_has("shown.h5: /layers: group missing");
    cnn_h5r_close(r);

    /* non-finite values in the given arenas are refused before writing */
    p[7] = INFINITY;
    assert_int_equal(cnn_h5w_open(fx->path, &w), CNN_OK);
    assert_int_equal(cnn_model_write_layers(w, "/best/layers", a, p, s), CNN_ENUMERIC);
    assert_msg_has("conv1 weight[7] is Inf");
    cnn_h5w_abort(w);
    free(p);
    free(s);
    cnn_net_free(a);
    cnn_net_free(b);
}

static void test_model_dense_unflattened(void **state)
{
    /* a dense layer straight after a conv reads (C,H,W) as D = C*H*W, so its
     * weight is (M, C*H*W), as after nn.Flatten */
    fx_t *fx = *state;
    cnn_layer_spec_t specs[] = {L("conv1", "conv", 3, 3, 1), L("fc", "dense", 4, 0, 0)};
    cnn_net_t *a = NULL, *b = NULL;
    assert_int_equal(cnn_net_create(specs, 2, (cnn_shape_t){1, 2, 5, 5}, 1, &a), CNN_OK);
    assert_int_equal(cnn_net_create(specs, 2, (cnn_shape_t){1, 2, 5, 5}, 1, &b), CNN_OK);
    cnn_net_init(a, 1);
    cnn_net_init(b, 2);
    assert_int_equal(cnn_model_save(fx->path, a, NULL), CNN_OK);
    assert_int_equal(cnn_model_load_weights(fx->path, b), CNN_OK);
    assert_memory_equal(a->params, b->params, sizeof(float) * a->nparams);
    cnn_h5r_t *r = NULL;
    int nd;
    size_t dims[CNN_H5_MAXDIMS];
    assert_int_equal(cnn_h5r_open(fx->path, &r), CNN_OK);
    assert_int_equal(cnn_h5r_shape(r, "/layers/fc/weight", &nd, dims), CNN_OK);
    assert_int_equal(nd, 2);
    assert_int_equal(dims[0], 4);
    assert_int_equal(dims[1], 3 * 5 * 5);
    cnn_h5r_close(r);
    cnn_net_free(a);
    cnn_net_free(b);
}

static void test_model_nan_keeps_old(void **state)
{
    fx_t *fx = *state;
    cnn_net_t *net = make_net(5);
    save_good(fx->path, net);
    size_t n0, n1;
    char *before = slurp(fx->path, &n0);
    net->state[1] = NAN;
    cnn_model_meta_t m = make_meta();
    assert_int_equal(cnn_model_save(fx->path, net, &m), CNN_ENUMERIC);
    assert_msg_has(fx->path);
    assert_msg_has("bn1 running_mean[1] is NaN");
    char *after = slurp(fx->path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    assert_int_equal(dir_entries(fx->dir), 1);
    free(before);
    free(after);
    cnn_net_free(net);
}

static void test_model_bad_targets(void **state)
{
    fx_t *fx = *state;
    cnn_net_t *net = make_net(6);
    char p[256];
    save_good(fx->path, net);
    size_t n0, n1;
    char *before = slurp(fx->path, &n0);

    /* a directory that does not exist */
    snprintf(p, sizeof p, "%s/nodir/model.h5", fx->dir);
    assert_int_equal(cnn_model_save(p, net, NULL), CNN_EIO);
    assert_msg_has(p);
    assert_msg_has("No such file or directory");

    /* a parent that is a regular file (root ignores permissions, so this
     * stands in for a read-only directory) */
    snprintf(p, sizeof p, "%s/model.h5/inner.h5", fx->dir);
    assert_int_equal(cnn_model_save(p, net, NULL), CNN_EIO);
    assert_msg_has(p);
    assert_msg_has("Not a directory");

    /* the commit's rename fails: the target is a non-empty directory */
    char sub[256], inside[300];
    snprintf(sub, sizeof sub, "%s/taken.h5", fx->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(inside, sizeof inside, "%s/keep", sub);
    write_bytes(inside, "keep", 4);
    assert_int_equal(cnn_model_save(sub, net, NULL), CNN_EIO);
    assert_msg_has(sub);
    assert_msg_has("rename");
    assert_int_equal(access(inside, F_OK), 0);

    /* nothing left behind, the old model untouched */
    assert_int_equal(dir_entries(fx->dir), 2);
    char *after = slurp(fx->path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    /* inconsistent metadata is refused before anything is written */
    cnn_model_meta_t m = make_meta();
    m.nclasses = 3;
    snprintf(p, sizeof p, "%s/meta.h5", fx->dir);
    assert_int_equal(cnn_model_save(p, net, &m), CNN_ECONFIG);
    assert_int_equal(access(p, F_OK), -1);
    cnn_net_free(net);
}

/* ---- hostile files ---------------------------------------------------- */

/* Expects CNN_EDATA from loading the weights (and, if meta, the meta data)
 * of path into a fresh net, with a message naming the file and `what`. */
static void expect_bad(const char *path, const char *what, int meta)
{
    cnn_net_t *net = make_net(9);
    float *p0 = malloc(sizeof(float) * net->nparams);
    memcpy(p0, net->params, sizeof(float) * net->nparams);
    cnn_status_t st = cnn_model_load_weights(path, net);
    if (st != CNN_EDATA)
        fail_msg("load_weights %s: status %d (%s), want CNN_EDATA", path, (int)st,
                 cnn_error_message());
    assert_msg_has(path);
    assert_msg_has(what);
    /* a failed load leaves the net as it was */
    assert_memory_equal(p0, net->params, sizeof(float) * net->nparams);
    if (meta) {
        cnn_model_meta_t m;
        assert_int_equal(cnn_model_load_meta(path, &m), CNN_EDATA);
        assert_msg_has(path);
        assert_msg_has(what);
        assert_null(m.config);
    }
    free(p0);
    cnn_net_free(net);
}

/* Opens a freshly saved good model read-write for tampering. */
static hid_t tamper_open(const char *path)
{
    cnn_net_t *net = make_net(7);
    save_good(path, net);
    cnn_net_free(net);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

static void make_ds(hid_t f, const char *name, hid_t type, int nd, const hsize_t *dims,
                    hid_t mtype, const void *data)
{
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    if (data) assert_true(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void test_bad_not_hdf5(void **state)
{
    fx_t *fx = *state;
    char p[256];
    snprintf(p, sizeof p, "%s/missing.h5", fx->dir);
    expect_bad(p, "No such file", 1);

    snprintf(p, sizeof p, "%s/text.h5", fx->dir);
    const char txt[] = "this is not an HDF5 file\n";
    write_bytes(p, txt, sizeof txt - 1);
    expect_bad(p, "not an HDF5 file", 1);

    expect_bad(fx->dir, "is a directory", 1);

    /* the first half of a valid model */
    cnn_net_t *net = make_net(8);
    save_good(fx->path, net);
    cnn_net_free(net);
    size_t n;
    char *all = slurp(fx->path, &n);
    snprintf(p, sizeof p, "%s/half.h5", fx->dir);
    write_bytes(p, all, n / 2);
    free(all);
    expect_bad(p, "half.h5", 1);

    /* an HDF5 file that is not a model */
    snprintf(p, sizeof p, "%s/other.h5", fx->dir);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    expect_bad(p, "not an mpicnn model", 1);
}

/* Rewrites the root attribute format_version of a model file. */
static void set_version(const char *path, int64_t v)
{
    hid_t f = tamper_open(path);
    hid_t sp = H5Screate(H5S_SCALAR);
    H5Adelete(f, "format_version");
    hid_t a = H5Acreate2(f, "format_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

static void test_bad_format_attrs(void **state)
{
    fx_t *fx = *state;
    set_version(fx->path, 1); /* a chain of the first version: still read */
    cnn_net_t *net = make_net(9);
    assert_int_equal(cnn_model_load_weights(fx->path, net), CNN_OK);
    cnn_net_free(net);
    set_version(fx->path, 3); /* a newer version is refused */
    expect_bad(fx->path, "'format_version' is 3", 1);
    hid_t f;

    /* an input shape that does not fit the net */
    f = tamper_open(fx->path);
    H5Ldelete(f, "/input_shape", H5P_DEFAULT);
    const int64_t shp[3] = {3, 6, 6};
    hsize_t three = 3;
    make_ds(f, "/input_shape", H5T_STD_I64LE, 1, &three, H5T_NATIVE_INT64, shp);
    H5Fclose(f);
    expect_bad(fx->path, "/input_shape: (3,6,6) expected (2,6,6)", 0);
}

static void test_bad_missing_dataset(void **state)
{
    fx_t *fx = *state;
    hid_t f = tamper_open(fx->path);
    assert_true(H5Ldelete(f, "/layers/conv1/bias", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/conv1/bias: dataset missing", 0);

    f = tamper_open(fx->path);
    assert_true(H5Ldelete(f, "/layers/bn1", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/bn1: layer group missing", 0);
}

static void test_bad_extra(void **state)
{
    fx_t *fx = *state;
    hsize_t four = 4;
    const float z[4] = {0};
    hid_t f = tamper_open(fx->path);
    make_ds(f, "/layers/conv1/extra", H5T_IEEE_F32LE, 1, &four, H5T_NATIVE_FLOAT, z);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/conv1/extra: extra dataset", 0);

    f = tamper_open(fx->path);
    hid_t g = H5Gcreate2(f, "/layers/conv9", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    H5Gclose(g);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/conv9: extra layer group", 0);

    /* a group for a layer that has no parameters */
    f = tamper_open(fx->path);
    g = H5Gcreate2(f, "/layers/relu1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/relu1: extra layer group", 0);
}

static void test_bad_shapes_and_types(void **state)
{
    fx_t *fx = *state;
    float w[4 * 2 * 5 * 5] = {0};
    const hsize_t d4[4] = {4, 2, 5, 5};
    hid_t f = tamper_open(fx->path);
    H5Ldelete(f, "/layers/conv1/weight", H5P_DEFAULT);
    make_ds(f, "/layers/conv1/weight", H5T_IEEE_F32LE, 4, d4, H5T_NATIVE_FLOAT, w);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/conv1/weight: shape (4,2,5,5) expected (4,2,3,3)", 0);

    /* right size, wrong rank */
    const hsize_t flat = 4 * 2 * 3 * 3;
    f = tamper_open(fx->path);
    H5Ldelete(f, "/layers/conv1/weight", H5P_DEFAULT);
    make_ds(f, "/layers/conv1/weight", H5T_IEEE_F32LE, 1, &flat, H5T_NATIVE_FLOAT, w);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/conv1/weight: shape (72,) expected (4,2,3,3)", 0);

    /* integers where floats belong */
    const int32_t iv[5] = {1, 2, 3, 4, 5};
    const hsize_t five = 5;
    f = tamper_open(fx->path);
    H5Ldelete(f, "/layers/fc/bias", H5P_DEFAULT);
    make_ds(f, "/layers/fc/bias", H5T_STD_I32LE, 1, &five, H5T_NATIVE_INT32, iv);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/fc/bias: dtype int32, expected float32", 0);

    /* a group where a dataset belongs */
    f = tamper_open(fx->path);
    H5Ldelete(f, "/layers/fc/bias", H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "/layers/fc/bias", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/fc/bias: is a group", 0);
}

static void test_float64_accepted(void **state)
{
    /* float64 is accepted and converted (numpy's default dtype), as long
     * as every value is finite and fits a float32 */
    fx_t *fx = *state;
    const double bias[5] = {0.5, -0.25, 1, 2, 3};
    const hsize_t five = 5;
    hid_t f = tamper_open(fx->path);
    H5Ldelete(f, "/layers/fc/bias", H5P_DEFAULT);
    make_ds(f, "/layers/fc/bias", H5T_IEEE_F64LE, 1, &five, H5T_NATIVE_DOUBLE, bias);
    H5Fclose(f);
    cnn_net_t *net = make_net(10);
    assert_int_equal(cnn_model_load_weights(fx->path, net), CNN_OK);
    const cnn_layer_t *fc = cnn_net_layer(net, "fc");
    for (int i = 0; i < 5; i++) assert_true(fc->params[5 * 36 + i] == (float)bias[i]);

    const double big[5] = {0, 0, 1e300, 0, 0};
    f = H5Fopen(fx->path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/layers/fc/bias", H5P_DEFAULT);
    make_ds(f, "/layers/fc/bias", H5T_IEEE_F64LE, 1, &five, H5T_NATIVE_DOUBLE, big);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/fc/bias: contains a value beyond float32 at index 2", 0);
    cnn_net_free(net);
}

static void test_bad_nonfinite(void **state)
{
    fx_t *fx = *state;
    float w[4 * 2 * 3 * 3];
    hid_t f = tamper_open(fx->path);
    hid_t ds = H5Dopen2(f, "/layers/conv1/weight", H5P_DEFAULT);
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    w[7] = NAN;
    assert_true(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/conv1/weight: contains NaN at index 7", 0);

    float rv[4];
    f = tamper_open(fx->path);
    ds = H5Dopen2(f, "/layers/bn1/running_var", H5P_DEFAULT);
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, rv) >= 0);
    rv[3] = -INFINITY;
    assert_true(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, rv) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
    expect_bad(fx->path, "/layers/bn1/running_var: contains Inf at index 3", 0);
}

static void test_bad_meta(void **state)
{
    fx_t *fx = *state;
    cnn_model_meta_t m;
    /* a history column claiming 2^40 rows (chunked, so it costs nothing
     * in the file): refused before allocating */
    hid_t f = tamper_open(fx->path);
    H5Ldelete(f, "/history/epoch", H5P_DEFAULT);
    hsize_t huge = (hsize_t)1 << 40, chunk = 1024;
    hid_t sp = H5Screate_simple(1, &huge, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    hid_t ds = H5Dcreate2(f, "/history/epoch", H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl,
                          H5P_DEFAULT);
    assert_true(ds >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Fclose(f);
    assert_int_equal(cnn_model_load_meta(fx->path, &m), CNN_EDATA);
    assert_msg_has(fx->path);
    assert_msg_has("/history/epoch: length 1099511627776 exceeds the limit");
    assert_null(m.config);

    /* history columns of different lengths */
    const double three[3] = {1, 2, 3};
    const hsize_t n3 = 3;
    f = tamper_open(fx->path);
    H5Ldelete(f, "/history/lr", H5P_DEFAULT);
    make_ds(f, "/history/lr", H5T_IEEE_F64LE, 1, &n3, H5T_NATIVE_DOUBLE, three);
    H5Fclose(f);
    assert_int_equal(cnn_model_load_meta(fx->path, &m), CNN_EDATA);
    assert_msg_has("/history/lr: length 3, expected 2");

    /* mean without std */
    f = tamper_open(fx->path);
    H5Ldelete(f, "/normalization/std", H5P_DEFAULT);
    H5Fclose(f);
    assert_int_equal(cnn_model_load_meta(fx->path, &m), CNN_EDATA);
    assert_msg_has("/normalization/std: dataset missing");

    /* class names that disagree with num_classes */
    const char *two[2] = {"a", "b"};
    hsize_t n2 = 2;
    f = tamper_open(fx->path);
    H5Ldelete(f, "/classes", H5P_DEFAULT);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    make_ds(f, "/classes", st, 1, &n2, st, two);
    H5Tclose(st);
    H5Fclose(f);
    assert_int_equal(cnn_model_load_meta(fx->path, &m), CNN_EDATA);
    assert_msg_has("/classes: 2 names, expected num_classes = 5");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_h5_writer_commit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_h5_writer_abort, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_h5_values, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_h5_error_summary, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_h5_checksums, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_h5_checksum_stored_type, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_h5_limits, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_model_roundtrip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_model_layers_prefix, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_model_dense_unflattened, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_model_nan_keeps_old, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_model_bad_targets, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_not_hdf5, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_format_attrs, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_missing_dataset, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_extra, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_shapes_and_types, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_float64_accepted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_nonfinite, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_meta, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
