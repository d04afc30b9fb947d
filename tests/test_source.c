/* test_source.c - the data file reader and the batch sources.
 *
 * A batch is the same floats in every load mode and for every rank count
 * (the slices of the ranks put together), with and without augmentation;
 * the file reader refuses damaged files naming the file and the dataset;
 * the streamed statistics and the sliced sets equal load = memory's. */
#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpicnn/checkpoint.h"
#include "mpicnn/dataprep.h"
#include "mpicnn/h5io.h"
#include "mpicnn/rng.h"
#include "mpicnn/source.h"

#define N 203
#define CH 2
#define HH 5
#define WW 6
#define ISZ (CH * HH * WW)
#define K 5

static char dir[256], path[300];

typedef enum { OK, BAD_VERSION, BAD_TYPE, BAD_LABEL, BAD_COUNT, BAD_RANK } bad_t;

/* A data file of N images, chunks of `chunk` images; `bad` damages it. */
static void write_file(const char *p, hsize_t chunk, bad_t bad)
{
    cnn_h5w_t *w;
    assert_int_equal(cnn_h5w_open(p, &w), CNN_OK);
    hid_t f = cnn_h5w_file(w);
    uint8_t *img = malloc(N * ISZ);
    int32_t lab[N + 1];
    for (size_t i = 0; i < N * ISZ; i++) img[i] = (uint8_t)(cnn_hash4(5, i, 0, 0) % 256);
    for (int i = 0; i <= N; i++) lab[i] = (int32_t)(cnn_hash4(6, (uint64_t)i, 0, 0) % K);
    if (bad == BAD_LABEL) lab[17] = K;
    assert_int_equal(cnn_h5w_attr_str(w, "/", "format", "mpicnn-data"), CNN_OK);
    assert_int_equal(cnn_h5w_attr_int64(w, "/", "format_version", bad == BAD_VERSION ? 7 : 1),
                     CNN_OK);
    const int rank = bad == BAD_RANK ? 3 : 4;
    hsize_t dims[4] = {N, CH, HH, WW}, cd[4] = {chunk, CH, HH, WW};
    if (rank == 3) dims[2] *= WW, cd[2] *= WW;
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, cd);
    hid_t d = H5Dcreate2(f, "/images", bad == BAD_TYPE ? H5T_STD_I8LE : H5T_STD_U8LE, sp,
                         H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, img) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(dcpl);
    hsize_t nl = bad == BAD_COUNT ? N + 1 : N;
    sp = H5Screate_simple(1, &nl, NULL);
    d = H5Dcreate2(f, "/labels", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    const char *names[K] = {"a", "b", "c", "d", "e"};
    assert_int_equal(cnn_h5w_strings(w, "/classes", K, names), CNN_OK);
    assert_int_equal(cnn_h5w_commit(w), CNN_OK);
    free(img);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/mpicnn-source-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/data.h5", dir);
    write_file(path, 16, OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void test_open_and_read(void **state)
{
    (void)state;
    cnn_h5data_t *f;
    cnn_dataset_t *ds;
    assert_int_equal(cnn_h5data_open(path, &f), CNN_OK);
    assert_int_equal(cnn_h5data_load(path, &ds), CNN_OK);
    assert_int_equal(f->n, N);
    assert_int_equal(f->c, CH);
    assert_int_equal(f->nclasses, K);
    assert_string_equal(f->class_names[4], "e");
    assert_memory_equal(f->labels, ds->labels, sizeof(int32_t) * N);
    /* rows in any order, runs across chunk borders */
    size_t rows[] = {0, 15, 16, 17, 200, 201, 202, 3, 4, 5, 100};
    const size_t nr = sizeof rows / sizeof rows[0];
    uint8_t out[sizeof rows / sizeof rows[0] * ISZ];
    assert_int_equal(cnn_h5data_read_rows(f, rows, nr, out), CNN_OK);
    for (size_t k = 0; k < nr; k++)
        assert_memory_equal(out + k * ISZ, ds->images + rows[k] * ISZ, ISZ);
    cnn_h5data_close(f);
    cnn_dataset_free(ds);
}

static void expect_refused(bad_t bad, const char *what)
{
    char p[400];
    cnn_h5data_t *f = (cnn_h5data_t *)1;
    snprintf(p, sizeof p, "%s/bad%d.h5", dir, (int)bad);
    write_file(p, 16, bad);
    assert_int_equal(cnn_h5data_open(p, &f), CNN_EDATA);
    assert_null(f);
    const char *msg = cnn_error_message();
    if (!strstr(msg, p) || !strstr(msg, what))
        fail_msg("the message '%s' does not name %s and %s", msg, p, what);
}

static void test_refused(void **state)
{
    (void)state;
    expect_refused(BAD_VERSION, "format_version");
    expect_refused(BAD_TYPE, "/images");
    expect_refused(BAD_RANK, "/images");
    expect_refused(BAD_LABEL, "/labels");
    expect_refused(BAD_COUNT, "/labels");
}

/* The floats of every step of epochs 0 and 1, ranks' slices put
 * together, for one load mode and rank count. */
static float *all_batches(const cnn_config_t *cfg, const cnn_source_data_t *sd, int nranks,
                          size_t *nout)
{
    const int B = cfg->train.batch_size;
    float *all = malloc(sizeof(float) * 2 * (N + 1) * ISZ), *x = malloc(sizeof(float) * B * ISZ);
    int32_t labels[64];
    size_t o = 0;
    cnn_source_t *src[4];
    for (int r = 0; r < nranks; r++)
        assert_int_equal(cnn_source_create(cfg, sd, r, nranks, &src[r]), CNN_OK);
    const size_t steps = cnn_source_steps(src[0]);
    for (long e = 0; e < 2; e++)
        for (size_t s = 0; s < steps; s++)
            for (int r = 0; r < nranks; r++) {
                int nl, ng;
                assert_int_equal(cnn_source_batch(src[r], e, s, x, labels, &nl, &ng), CNN_OK);
                for (int i = 0; i < nl; i++) assert_true(labels[i] >= 0 && labels[i] < K);
                memcpy(all + o, x, sizeof(float) * (size_t)nl * ISZ);
                o += (size_t)nl * ISZ;
            }
    for (int r = 0; r < nranks; r++) cnn_source_free(src[r]);
    free(x);
    *nout = o;
    return all;
}

static void compare_modes(int augment)
{
    cnn_config_t *cfg = calloc(1, sizeof *cfg);
    cnn_config_defaults(cfg);
    cfg->train.batch_size = 8;
    cfg->train.seed = 9;
    cfg->data.cache_mb = 1;
    if (augment) cfg->augment = (cnn_augment_config_t){.crop_pad = 2, .flip = 1, .cutout = 2};
    cnn_dataset_t *ds;
    cnn_h5data_t *f;
    assert_int_equal(cnn_h5data_load(path, &ds), CNN_OK);
    assert_int_equal(cnn_h5data_open(path, &f), CNN_OK);
    float mean[CH], std[CH];
    cnn_dataset_channel_stats(ds, mean, std);
    size_t rows[N];
    for (size_t i = 0; i < N; i++) rows[i] = i;
    const cnn_source_data_t mem = {.train = ds, .mean = mean, .std = std};
    const cnn_source_data_t file = {.train = ds, .file = f, .rows = rows, .mean = mean, .std = std};
    size_t nref, n;
    cfg->data.load = CNN_LOAD_MEMORY;
    float *ref = all_batches(cfg, &mem, 1, &nref);
    assert_int_equal(nref, 2 * N * ISZ);
    const cnn_data_load_t loads[] = {CNN_LOAD_MEMORY, CNN_LOAD_SHARD, CNN_LOAD_STREAM};
    for (int l = 0; l < 3; l++)
        for (int nr = 1; nr <= 3; nr++)
            for (int use_file = 0; use_file < 2; use_file++) {
                cfg->data.load = loads[l];
                float *got = all_batches(cfg, use_file ? &file : &mem, nr, &n);
                assert_int_equal(n, nref);
                if (memcmp(got, ref, sizeof(float) * n) != 0)
                    fail_msg("load %d, %d ranks, %s, augment %d: batches differ from memory "
                             "mode on 1 rank", l, nr, use_file ? "file" : "memory", augment);
                free(got);
            }
    free(ref);
    cnn_h5data_close(f);
    cnn_dataset_free(ds);
    free(cfg);
}

static void test_modes_equal(void **state)
{
    (void)state;
    compare_modes(0);
}

static void test_modes_equal_augmented(void **state)
{
    (void)state;
    compare_modes(1);
}

/* Steps asked for out of order: the stream restarts where asked. */
static void test_stream_out_of_order(void **state)
{
    (void)state;
    cnn_config_t *cfg = calloc(1, sizeof *cfg);
    cnn_config_defaults(cfg);
    cfg->train.batch_size = 8;
    cfg->data.cache_mb = 1;
    cnn_h5data_t *f;
    cnn_dataset_t *ds;
    assert_int_equal(cnn_h5data_open(path, &f), CNN_OK);
    assert_int_equal(cnn_h5data_load(path, &ds), CNN_OK);
    size_t rows[N];
    for (size_t i = 0; i < N; i++) rows[i] = i;
    const cnn_source_data_t sd = {.train = ds, .file = f, .rows = rows};
    cnn_source_t *m, *s;
    cfg->data.load = CNN_LOAD_MEMORY;
    assert_int_equal(cnn_source_create(cfg, &sd, 0, 1, &m), CNN_OK);
    cfg->data.load = CNN_LOAD_STREAM;
    assert_int_equal(cnn_source_create(cfg, &sd, 0, 1, &s), CNN_OK);
    float a[8 * ISZ], b[8 * ISZ];
    int32_t la[8], lb[8];
    const struct { long e; size_t s; } order[] = {{1, 5}, {1, 6}, {0, 0}, {2, 25}, {3, 0}, {0, 3}};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        int n1, g1, n2, g2;
        assert_int_equal(cnn_source_batch(m, order[i].e, order[i].s, a, la, &n1, &g1), CNN_OK);
        assert_int_equal(cnn_source_batch(s, order[i].e, order[i].s, b, lb, &n2, &g2), CNN_OK);
        assert_int_equal(n1, n2);
        assert_int_equal(g1, g2);
        assert_memory_equal(a, b, sizeof(float) * (size_t)n1 * ISZ);
        assert_memory_equal(la, lb, sizeof(int32_t) * (size_t)n1);
    }
    cnn_source_free(m);
    cnn_source_free(s);
    cnn_h5data_close(f);
    cnn_dataset_free(ds);
    free(cfg);
}

/* Streamed statistics equal the in-memory ones, bit for bit. */
static void test_stats(void **state)
{
    (void)state;
    cnn_dataset_t *ds;
    assert_int_equal(cnn_h5data_load(path, &ds), CNN_OK);
    float m1[CH], s1[CH], m2[CH], s2[CH];
    cnn_dataset_channel_stats(ds, m1, s1);
    cnn_stats_acc_t acc;
    cnn_stats_init(&acc);
    for (size_t i = N; i-- > 0;) cnn_stats_add(&acc, ds->images + i * ISZ, 1, CH, HH, WW);
    cnn_stats_finish(&acc, CH, HH, WW, m2, s2);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(s1, s2, sizeof s1);
    cnn_dataset_free(ds);
}

/* load = shard: the training labels, the normalisation and each rank's
 * slices of the validation and test sets equal load = memory's. */
static void test_prepare_sliced(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof text,
             "[data]\nformat = hdf5\ntrain_file = %s\ntest_file = %s\nvalidation = 37\n"
             "classes = e, a, c\n[net]\nlayers = fc\n[fc]\ntype = dense\nunits = 3\n"
             "[optimizer]\nlr = 0.1\n[train]\nepochs = 1\n", path, path);
    cnn_config_t *cfg = calloc(1, sizeof *cfg);
    assert_int_equal(cnn_config_parse_string(text, "t.ini", NULL, 0, cfg), CNN_OK);
    cnn_data_t mem, sl;
    assert_int_equal(cnn_data_prepare(cfg, 1, &mem), CNN_OK);
    cfg->data.load = CNN_LOAD_SHARD;
    for (int nr = 1; nr <= 3; nr++)
        for (int r = 0; r < nr; r++) {
            assert_int_equal(cnn_data_prepare_rank(cfg, 1, r, nr, &sl), CNN_OK);
            assert_true(sl.sliced);
            assert_int_equal(sl.train->n, mem.train->n);
            assert_memory_equal(sl.train->labels, mem.train->labels,
                                sizeof(int32_t) * mem.train->n);
            assert_string_equal(sl.train->class_names[0], "e");
            for (size_t i = 0; i < sl.train->n; i++) {
                uint8_t img[ISZ];
                assert_int_equal(cnn_h5data_read_rows(sl.train_file, &sl.train_rows[i], 1, img),
                                 CNN_OK);
                assert_memory_equal(img, mem.train->images + i * ISZ, ISZ);
            }
            assert_memory_equal(sl.mean, mem.mean, sizeof mem.mean);
            assert_memory_equal(sl.std, mem.std, sizeof mem.std);
            assert_int_equal(sl.val_total, mem.val->n);
            assert_int_equal(sl.test_total, mem.test->n);
            assert_memory_equal(sl.val->images, mem.val->images + sl.val_lo * ISZ,
                                sl.val->n * ISZ);
            assert_memory_equal(sl.val->labels, mem.val->labels + sl.val_lo, sl.val->n * 4);
            assert_memory_equal(sl.test->images, mem.test->images + sl.test_lo * ISZ,
                                sl.test->n * ISZ);
            assert_memory_equal(sl.test->labels, mem.test->labels + sl.test_lo, sl.test->n * 4);
            cnn_data_free(&sl);
        }
    cnn_data_free(&mem);
    free(cfg);
}

/* text without the lines that start with one of drop[] */
static char *without(const char *text, const char *const *drop, int ndrop)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p + 1) : strlen(p);
        int skip = 0;
        for (int i = 0; i < ndrop; i++) skip |= strncmp(p, drop[i], strlen(drop[i])) == 0;
        if (!skip) {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = '\0';
    return out;
}

/* A checkpoint's config written before data.load, data.cache_mb and
 * [augment] existed resumes (they count as their defaults); data.load
 * and data.cache_mb may change on resume, [augment] may not. */
static void test_resume_keys(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof text,
             "[data]\nformat = hdf5\ntrain_file = %s\ntest_file = %s\n[net]\nlayers = fc\n"
             "[fc]\ntype = dense\nunits = 3\n[optimizer]\nlr = 0.1\n[train]\nepochs = 1\n", path,
             path);
    cnn_config_t *cfg = calloc(1, sizeof *cfg);
    assert_int_equal(cnn_config_parse_string(text, "t.ini", NULL, 0, cfg), CNN_OK);
    char *saved = cnn_config_to_string(cfg);
    assert_non_null(strstr(saved, "[augment]\ncrop_pad = 0\nflip = false\ncutout = 0\n"));
    const char *const drop[] = {"load =", "cache_mb =", "[augment]", "crop_pad =", "flip =",
                                "cutout ="};
    char *older = without(saved, drop, 6);
    if (cnn_checkpoint_compatible("ck.h5", older, cfg) != CNN_OK)
        fail_msg("a config without the new keys must resume: %s", cnn_error_message());
    assert_int_equal(cnn_config_set(cfg, "data.load=stream"), CNN_OK);
    assert_int_equal(cnn_config_set(cfg, "data.cache_mb=8"), CNN_OK);
    if (cnn_checkpoint_compatible("ck.h5", saved, cfg) != CNN_OK)
        fail_msg("data.load and data.cache_mb may change on resume: %s", cnn_error_message());
    assert_int_equal(cnn_config_set(cfg, "augment.flip=true"), CNN_OK);
    assert_int_equal(cnn_checkpoint_compatible("ck.h5", older, cfg), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "[augment] flip differs"));
    free(older);
    free(saved);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_read),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_modes_equal),
        cmocka_unit_test(test_modes_equal_augmented),
        cmocka_unit_test(test_stream_out_of_order),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_prepare_sliced),
        cmocka_unit_test(test_resume_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
