/* test_knn.c - the k-NN baseline against a brute-force reference.
 *
 * The reference here computes every distance in double, sorts by
 * (distance, index) and votes by the documented rule (most votes, then the
 * smaller summed distance, then the smaller label). Images with few grey
 * levels make many exact ties, so the tie rules are exercised; sizes cross
 * the block sizes of the GEMM code (64 test, 2048 training images) and the
 * exact-chunk length (1024 values). Also: shards searched separately and
 * merged give the same neighbours; k = 1 on the training set is 100%;
 * `mpicnn knn` on IDX files prints the reference accuracy; points mode
 * draws regions whose colour at each point is that point's class (k = 1)
 * and a PNG of the requested size. Runs as a singleton MPI process. */
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpicnn.h"
#include "mpicnn/knn.h"
#include "mpicnn/png.h"
#include "testutil.h"

static char dir[64];
static const char *prog;
/* "env -u NAME ..." for the variables MPI_Init added to this process's
 * environment: a child that inherited them would take itself for part of
 * this singleton's job instead of starting as a singleton of its own
 * (under LeakSanitizer its exit-time check then crashed). */
static char unset_mpi_env[4096] = "env";
static char **env_before_init;

extern char **environ;

static int had_before_init(const char *var)
{
    size_t n = strcspn(var, "=");
    for (char **e = env_before_init; e && *e; e++)
        if (!strncmp(*e, var, n) && (*e)[n] == '=') return 1;
    return 0;
}

static void note_mpi_env(void)
{
    for (char **e = environ; *e; e++) {
        size_t n = strcspn(*e, "="), len = strlen(unset_mpi_env);
        if (had_before_init(*e) || len + n + 5 >= sizeof unset_mpi_env) continue;
        snprintf(unset_mpi_env + len, sizeof unset_mpi_env - len, " -u %.*s", (int)n, *e);
    }
}

static int setup(void **state)
{
    prog = getenv("MPICNN");
    if (!prog) prog = "src/mpicnn";
    cnn_blas_single_thread();
    snprintf(dir, sizeof dir, "/tmp/mpicnn-knn-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path(const char *name)
{
    static char buf[8][160];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Runs "mpicnn knn ARGS" in dir; exit code, stdout in out, stderr in err. */
static int run(char *out, size_t outlen, char *err, size_t errlen, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s %s knn %s >%s/stdout.txt 2>%s/stderr.txt", dir,
             unset_mpi_env, prog, args, dir, dir);
    int rc = system(cmd);
    char *bufs[2] = {out, err};
    size_t lens[2] = {outlen, errlen};
    const char *names[2] = {"stdout.txt", "stderr.txt"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(path(names[i]), "r");
        size_t got = f ? fread(bufs[i], 1, lens[i] - 1, f) : 0;
        bufs[i][got] = '\0';
        if (f) fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- the reference ------------------------------------------------------ */

typedef struct {
    double d;
    long i;
    int lab;
} nb_t;

static int nb_cmp(const void *a, const void *b)
{
    const nb_t *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Sorted neighbours (n) of one query among train rows [lo, hi). */
static void naive_neighbours(const uint8_t *train, const int32_t *labels, size_t lo, size_t hi,
                             const uint8_t *q, size_t dim, nb_t *nb)
{
    for (size_t j = lo; j < hi; j++) {
        double s = 0;
        for (size_t e = 0; e < dim; e++) {
            double d = (double)q[e] - (double)train[j * dim + e];
            s += d * d;
        }
        nb[j - lo] = (nb_t){s, (long)j, labels[j]};
    }
    qsort(nb, hi - lo, sizeof *nb, nb_cmp);
}

/* The vote, written out: count and distance sum per label. */
static int naive_vote(const nb_t *nb, int k)
{
    int votes[256] = {0}, best = -1;
    double sum[256] = {0};
    for (int i = 0; i < k; i++) {
        votes[nb[i].lab]++;
        sum[nb[i].lab] += nb[i].d;
    }
    for (int c = 0; c < 256; c++) {
        if (!votes[c]) continue;
        if (best < 0 || votes[c] > votes[best] || (votes[c] == votes[best] && sum[c] < sum[best]))
            best = c;
    }
    return best;
}

typedef struct {
    size_t ntrain, ntest, dim;
    int levels, nclasses;
    uint8_t *train, *test;
    int32_t *ltrain, *ltest;
} set_t;

/* Pixels take `levels` values spread over 0..255 (few levels: many ties).
 * Some test images are copies of training images. */
static set_t make_set(size_t ntrain, size_t ntest, size_t dim, int levels, int nclasses,
                      uint64_t seed)
{
    set_t s = {.ntrain = ntrain, .ntest = ntest, .dim = dim, .levels = levels,
               .nclasses = nclasses};
    s.train = malloc(ntrain * dim);
    s.test = malloc(ntest * dim);
    s.ltrain = malloc(sizeof(int32_t) * ntrain);
    s.ltest = malloc(sizeof(int32_t) * ntest);
    assert_true(s.train && s.test && s.ltrain && s.ltest);
    const int step = levels > 1 ? 255 / (levels - 1) : 0;
    for (size_t i = 0; i < ntrain * dim; i++)
        s.train[i] = (uint8_t)((int)tu_uniform(&seed, 0, levels) * step);
    for (size_t i = 0; i < ntest * dim; i++)
        s.test[i] = (uint8_t)((int)tu_uniform(&seed, 0, levels) * step);
    for (size_t i = 0; i < ntrain; i++) s.ltrain[i] = (int32_t)tu_uniform(&seed, 0, nclasses);
    for (size_t i = 0; i < ntest; i++) s.ltest[i] = (int32_t)tu_uniform(&seed, 0, nclasses);
    for (size_t i = 0; i < ntest; i += 5) /* duplicates: distance 0 */
        memcpy(s.test + i * dim, s.train + (i * 7 % ntrain) * dim, dim);
    return s;
}

static void free_set(set_t *s)
{
    free(s->train);
    free(s->test);
    free(s->ltrain);
    free(s->ltest);
}

/* cnn_knn_search over `nshards` shards, merged, equals the reference; and
 * cnn_knn_classify equals the reference vote. */
static void check_set(const set_t *s, int k, int nshards)
{
    cnn_knn_cand_t *c = malloc(sizeof *c * s->ntest * k * nshards);
    nb_t *nb = malloc(sizeof *nb * s->ntrain);
    int32_t *pred = malloc(sizeof *pred * s->ntest);
    assert_true(c && nb && pred);
    for (int r = 0; r < nshards; r++) {
        size_t lo = s->ntrain * r / nshards, hi = s->ntrain * (r + 1) / nshards;
        cnn_status_t st = cnn_knn_search(s->train, s->ltrain, lo, hi, s->test, s->ntest, s->dim,
                                         k, c + (size_t)r * s->ntest * k);
        if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    }
    cnn_status_t st = cnn_knn_classify(MPI_COMM_WORLD, s->train, s->ltrain, s->ntrain, s->test,
                                       s->ntest, s->dim, k, pred);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    for (size_t t = 0; t < s->ntest; t++) {
        naive_neighbours(s->train, s->ltrain, 0, s->ntrain, s->test + t * s->dim, s->dim, nb);
        /* merge the shards' lists: the k best by (dist, index) */
        int pos[16] = {0};
        const int kk = (size_t)k < s->ntrain ? k : (int)s->ntrain; /* the rest are empty */
        for (int j = 0; j < kk; j++) {
            int br = -1;
            for (int r = 0; r < nshards; r++) {
                const cnn_knn_cand_t *x = c + ((size_t)r * s->ntest + t) * k + pos[r];
                if (pos[r] >= k || x->label < 0) continue;
                const cnn_knn_cand_t *b = br < 0 ? NULL : c + ((size_t)br * s->ntest + t) * k + pos[br];
                if (!b || x->dist < b->dist || (x->dist == b->dist && x->index < b->index)) br = r;
            }
            assert_true(br >= 0);
            const cnn_knn_cand_t *x = c + ((size_t)br * s->ntest + t) * k + pos[br]++;
            if (x->dist != nb[j].d || x->index != nb[j].i || x->label != nb[j].lab)
                fail_msg("dim %zu k %d shards %d: test %zu neighbour %d: got (%.17g, #%lld, "
                         "label %d), want (%.17g, #%ld, label %d)",
                         s->dim, k, nshards, t, j, x->dist, (long long)x->index, x->label,
                         nb[j].d, nb[j].i, nb[j].lab);
        }
        const int want = naive_vote(nb, kk);
        if (pred[t] != want)
            fail_msg("dim %zu k %d: test %zu predicted %d, want %d", s->dim, k, t, pred[t], want);
    }
    free(c);
    free(nb);
    free(pred);
}

static void test_vote(void **state)
{
    const double inf = INFINITY;
    /* majority */
    cnn_knn_cand_t a[4] = {{1, 0, 3}, {2, 1, 1}, {3, 2, 1}, {4, 3, 2}};
    assert_int_equal(cnn_knn_vote(a, 4), 1);
    assert_int_equal(cnn_knn_vote(a, 1), 3);
    /* 2-2 tie: the smaller summed distance wins (label 4: 2+3 < label 7: 1+5) */
    cnn_knn_cand_t b[4] = {{1, 0, 7}, {2, 1, 4}, {3, 2, 4}, {5, 3, 7}};
    assert_int_equal(cnn_knn_vote(b, 4), 4);
    /* 1-1 tie with equal sums: smaller label */
    cnn_knn_cand_t c[2] = {{2, 5, 9}, {2, 6, 3}};
    assert_int_equal(cnn_knn_vote(c, 2), 3);
    /* empty slots are not votes */
    cnn_knn_cand_t d[3] = {{1, 0, 5}, {inf, INT64_MAX, -1}, {inf, INT64_MAX, -1}};
    assert_int_equal(cnn_knn_vote(d, 3), 5);
    assert_int_equal(cnn_knn_vote(d + 1, 2), -1);
}

static void test_small_sets(void **state)
{
    static const struct {
        size_t ntrain, ntest, dim;
        int levels;
    } cases[] = {
        {50, 13, 7, 2},     /* tiny, binary: ties everywhere */
        {300, 70, 16, 3},   /* two test blocks */
        {2500, 40, 5, 4},   /* two training blocks */
        {120, 30, 1030, 3}, /* two exact chunks */
        {90, 20, 2100, 256},
        {200, 65, 784, 256},
    };
    static const int ks[] = {1, 2, 3, 5, 8};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_t s = make_set(cases[i].ntrain, cases[i].ntest, cases[i].dim, cases[i].levels, 4,
                           100 + i);
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            for (int shards = 1; shards <= 4; shards += 3) check_set(&s, ks[j], shards);
        free_set(&s);
    }
}

/* More neighbours than training images: the missing ones are empty slots. */
static void test_k_above_n(void **state)
{
    set_t s = make_set(3, 5, 4, 256, 3, 7);
    cnn_knn_cand_t c[5 * 6];
    assert_int_equal(cnn_knn_search(s.train, s.ltrain, 0, 3, s.test, 5, 4, 6, c), CNN_OK);
    for (int t = 0; t < 5; t++) {
        for (int j = 0; j < 3; j++) assert_true(c[t * 6 + j].label >= 0);
        for (int j = 3; j < 6; j++) {
            assert_int_equal(c[t * 6 + j].label, -1);
            assert_true(isinf(c[t * 6 + j].dist));
        }
    }
    check_set(&s, 6, 1);
    /* an empty shard */
    assert_int_equal(cnn_knn_search(s.train, s.ltrain, 2, 2, s.test, 5, 4, 2, c), CNN_OK);
    assert_int_equal(c[0].label, -1);
    /* bad arguments */
    assert_int_equal(cnn_knn_search(s.train, s.ltrain, 0, 3, s.test, 5, 4, 0, c), CNN_EUSAGE);
    assert_int_equal(cnn_knn_search(s.train, s.ltrain, 0, 3, s.test, 5, 4, CNN_KNN_MAX_K + 1, c),
                     CNN_EUSAGE);
    assert_int_equal(cnn_knn_search(s.train, s.ltrain, 0, 3, s.test, 5, 0, 1, c), CNN_EUSAGE);
    int32_t pred[5];
    assert_int_equal(cnn_knn_classify(MPI_COMM_WORLD, s.train, s.ltrain, 3, s.test, 5, 4, 0, pred),
                     CNN_EUSAGE);
    free_set(&s);
}

/* k = 1 on the training set itself: every image finds itself. */
static void test_self(void **state)
{
    set_t s = make_set(700, 1, 33, 256, 10, 11);
    int32_t *pred = malloc(sizeof *pred * 700);
    assert_int_equal(cnn_knn_classify(MPI_COMM_WORLD, s.train, s.ltrain, 700, s.train, 700, 33,
                                      1, pred),
                     CNN_OK);
    for (int i = 0; i < 700; i++) assert_int_equal(pred[i], s.ltrain[i]);
    free(pred);
    free_set(&s);
}

/* ---- the program on IDX files ------------------------------------------- */

static void be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {v >> 24, v >> 16 & 255, v >> 8 & 255, v & 255};
    fwrite(b, 1, 4, f);
}

static void write_idx(const char *images, const char *labels, const uint8_t *x,
                      const int32_t *y, size_t n, int h, int w)
{
    FILE *f = fopen(path(images), "wb");
    assert_non_null(f);
    be32(f, 0x803);
    be32(f, (uint32_t)n);
    be32(f, (uint32_t)h);
    be32(f, (uint32_t)w);
    fwrite(x, 1, n * h * w, f);
    fclose(f);
    f = fopen(path(labels), "wb");
    assert_non_null(f);
    be32(f, 0x801);
    be32(f, (uint32_t)n);
    for (size_t i = 0; i < n; i++) fputc(y[i], f);
    fclose(f);
}

static void test_program(void **state)
{
    set_t s = make_set(400, 90, 6 * 5, 3, 5, 21);
    write_idx("tr-img", "tr-lab", s.train, s.ltrain, s.ntrain, 6, 5);
    write_idx("te-img", "te-lab", s.test, s.ltest, s.ntest, 6, 5);
    nb_t *nb = malloc(sizeof *nb * s.ntrain);
    char out[8192], err[2048], want[64];
    for (int k = 1; k <= 4; k += 3) {
        for (int lim = 0; lim < 2; lim++) {
            const size_t ntest = lim ? 50 : s.ntest, ntrain = lim ? 150 : s.ntrain;
            size_t correct = 0;
            for (size_t t = 0; t < ntest; t++) {
                naive_neighbours(s.train, s.ltrain, 0, ntrain, s.test + t * s.dim, s.dim, nb);
                correct += naive_vote(nb, k) == s.ltest[t];
            }
            snprintf(want, sizeof want, "accuracy: %.4f (%zu/%zu)\n",
                     (double)correct / (double)ntest, correct, ntest);
            int rc = run(out, sizeof out, err, sizeof err,
                         "--train-images tr-img --train-labels tr-lab --test-images te-img "
                         "--test-labels te-lab --k %d%s",
                         k, lim ? " --limit-test 50 --limit-train 150" : "");
            if (rc != 0) fail_msg("exit %d: %s", rc, err);
            if (!strstr(out, want)) fail_msg("k %d: want '%s', got:\n%s", k, want, out);
            assert_non_null(strstr(out, "class"));
        }
    }
    /* k = 1 on the training set itself */
    int rc = run(out, sizeof out, err, sizeof err,
                 "--train-images tr-img --train-labels tr-lab --test-images tr-img "
                 "--test-labels tr-lab --k 1");
    assert_int_equal(rc, 0);
    if (!strstr(out, "accuracy: 1.0000 (400/400)")) fail_msg("%s", out);

    /* errors: missing file, missing flag, bad k, too big k, shape mismatch */
    rc = run(out, sizeof out, err, sizeof err,
             "--train-images nope --train-labels tr-lab --test-images te-img --test-labels te-lab --k 1");
    assert_int_equal(rc, CNN_EXIT_DATA);
    assert_non_null(strstr(err, "nope"));
    rc = run(out, sizeof out, err, sizeof err, "--train-images tr-img --test-images te-img --k 1");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--train-labels"));
    rc = run(out, sizeof out, err, sizeof err,
             "--train-images tr-img --train-labels tr-lab --test-images te-img --test-labels te-lab --k 0");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--k"));
    rc = run(out, sizeof out, err, sizeof err,
             "--train-images tr-img --train-labels tr-lab --test-images te-img --test-labels te-lab "
             "--k 5 --limit-train 3");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    write_idx("sq-img", "sq-lab", s.test, s.ltest, 10, 5, 6);
    rc = run(out, sizeof out, err, sizeof err,
             "--train-images tr-img --train-labels tr-lab --test-images sq-img --test-labels sq-lab --k 1");
    assert_int_equal(rc, CNN_EXIT_DATA);
    rc = run(out, sizeof out, err, sizeof err, "--format cifar7 --train-files a --test-files b --k 1");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--format"));
    rc = run(out, sizeof out, err, sizeof err, "--format cifar10 --train-files nope.bin --test-files b --k 1");
    assert_int_equal(rc, CNN_EXIT_DATA);
    assert_non_null(strstr(err, "nope.bin"));
    free(nb);
    free_set(&s);
}

/* ---- points mode ---------------------------------------------------------- */

/* n points on a jittered lattice (well apart), labels 0..nc-1. */
static void make_points(double *xy, int32_t *lab, int n, int nc, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        xy[2 * i] = -3.0 + 1.5 * (i % 6) + tu_uniform(&seed, -0.3, 0.3);
        xy[2 * i + 1] = 10.0 + 1.5 * (i / 6) + tu_uniform(&seed, -0.3, 0.3);
        lab[i] = (int32_t)tu_uniform(&seed, 0, nc);
    }
}

static void test_points_predict(void **state)
{
    enum { N = 40, Q = 300 };
    double xy[2 * N], q[2 * Q];
    int32_t lab[N], pred[Q];
    uint64_t seed = 5;
    make_points(xy, lab, N, 4, 3);
    /* queries: random, and some exactly on points or halfway (ties) */
    for (int i = 0; i < Q; i++) {
        q[2 * i] = tu_uniform(&seed, -4, 6);
        q[2 * i + 1] = tu_uniform(&seed, 9, 20);
    }
    for (int i = 0; i < 20; i++) {
        q[2 * i] = xy[2 * i];
        q[2 * i + 1] = xy[2 * i + 1];
        q[2 * (20 + i)] = 0.5 * (xy[2 * i] + xy[2 * i + 2]);
        q[2 * (20 + i) + 1] = 0.5 * (xy[2 * i + 1] + xy[2 * i + 3]);
    }
    nb_t nb[N];
    for (int k = 1; k <= 5; k += 2) {
        assert_int_equal(cnn_knn_points_predict(xy, lab, N, q, Q, k, pred), CNN_OK);
        for (int i = 0; i < Q; i++) {
            for (int j = 0; j < N; j++) {
                double dx = xy[2 * j] - q[2 * i], dy = xy[2 * j + 1] - q[2 * i + 1];
                nb[j] = (nb_t){dx * dx + dy * dy, j, lab[j]};
            }
            qsort(nb, N, sizeof *nb, nb_cmp);
            assert_int_equal(pred[i], naive_vote(nb, k));
        }
    }
}

static void test_points_plot(void **state)
{
    enum { N = 36, S = 240 };
    double xy[2 * N];
    int32_t lab[N];
    make_points(xy, lab, N, 5, 9);
    /* the file, with a header line */
    FILE *f = fopen(path("pts.csv"), "w");
    fprintf(f, "x,y,label\n");
    for (int i = 0; i < N; i++) fprintf(f, "%.6f,%.6f,%d\n", xy[2 * i], xy[2 * i + 1], lab[i]);
    fclose(f);
    /* what the reader sees (floats) */
    double *rxy;
    int32_t *rlab;
    size_t n;
    cnn_knn_classes_t cl;
    assert_int_equal(cnn_knn_points_read(path("pts.csv"), &rxy, &rlab, &n, &cl), CNN_OK);
    assert_int_equal(n, N);
    for (int i = 0; i < N; i++) {
        assert_true(fabs(rxy[2 * i] - xy[2 * i]) < 1e-5);
        assert_int_equal(rlab[i], lab[i]); /* integer labels keep their number */
    }
    assert_in_range(cl.n, 1, 5);

    /* regions alone: the pixel of each point has its class's light colour */
    cnn_knn_view_t v = cnn_knn_view(rxy, n, S);
    uint8_t *rgb = malloc(S * S * 3), col[3];
    assert_int_equal(cnn_knn_render(rxy, rlab, n, 1, &v, 0, rgb), CNN_OK);
    for (int i = 0; i < N; i++) {
        int r, c;
        cnn_knn_view_pixel(&v, rxy[2 * i], rxy[2 * i + 1], &r, &c);
        cnn_knn_palette(rlab[i], 0, col);
        assert_memory_equal(rgb + (r * S + c) * 3, col, 3);
    }
    /* every pixel is the light colour of the class predicted at its centre */
    double *q = malloc(sizeof *q * 2 * S * S);
    int32_t *pred = malloc(sizeof *pred * S * S);
    for (int r = 0; r < S; r++)
        for (int c = 0; c < S; c++) {
            q[2 * (r * S + c)] = v.x0 + (c + 0.5) * v.scale;
            q[2 * (r * S + c) + 1] = v.y1 - (r + 0.5) * v.scale;
        }
    assert_int_equal(cnn_knn_points_predict(rxy, rlab, n, q, S * S, 1, pred), CNN_OK);
    for (int p = 0; p < S * S; p++) {
        cnn_knn_palette(pred[p], 0, col);
        assert_memory_equal(rgb + p * 3, col, 3);
    }

    /* the program: a PNG of the requested size, the library's picture, and
     * each point's pixel in its class's strong colour (the dot) */
    char out[4096], err[2048];
    int rc = run(out, sizeof out, err, sizeof err, "--points pts.csv --k 1 --plot plot.png --size %d", S);
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    cnn_image_t img;
    assert_int_equal(cnn_png_read(path("plot.png"), &img), CNN_OK);
    assert_int_equal(img.w, S);
    assert_int_equal(img.h, S);
    assert_int_equal(img.channels, 3);
    assert_int_equal(cnn_knn_render(rxy, rlab, n, 1, &v, 1, rgb), CNN_OK);
    assert_memory_equal(img.pixels, rgb, S * S * 3);
    for (int i = 0; i < N; i++) {
        int r, c;
        cnn_knn_view_pixel(&v, rxy[2 * i], rxy[2 * i + 1], &r, &c);
        cnn_knn_palette(rlab[i], 1, col);
        assert_memory_equal(img.pixels + (r * S + c) * 3, col, 3);
    }
    cnn_image_free(&img);
    /* default size, k = 3 */
    rc = run(out, sizeof out, err, sizeof err, "--points pts.csv --k 3 --plot plot3.png");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_int_equal(cnn_png_read(path("plot3.png"), &img), CNN_OK);
    assert_int_equal(img.w, 512);
    cnn_image_free(&img);

    /* errors */
    f = fopen(path("bad.csv"), "w");
    fprintf(f, "0,0,1\n1,1,a-label-of-thirty-two-characters\n");
    fclose(f);
    rc = run(out, sizeof out, err, sizeof err, "--points bad.csv --k 1 --plot p.png");
    assert_int_equal(rc, CNN_EXIT_DATA);
    assert_non_null(strstr(err, "bad.csv: line 2"));
    assert_non_null(strstr(err, "label"));
    f = fopen(path("odd.csv"), "w");
    fprintf(f, "0,0,1\n1,1\n");
    fclose(f);
    rc = run(out, sizeof out, err, sizeof err, "--points odd.csv --k 1 --plot p.png");
    assert_int_equal(rc, CNN_EXIT_DATA);
    assert_non_null(strstr(err, "odd.csv"));
    rc = run(out, sizeof out, err, sizeof err, "--points pts.csv --k 1");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--plot"));
    rc = run(out, sizeof out, err, sizeof err, "--points pts.csv --k 1 --plot p.png --size 8");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    rc = run(out, sizeof out, err, sizeof err, "--points pts.csv --k 37 --plot p.png");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    rc = run(out, sizeof out, err, sizeof err, "--points missing.csv --k 1 --plot p.png");
    assert_int_equal(rc, CNN_EXIT_DATA);
    assert_non_null(strstr(err, "missing.csv"));

    free(rxy);
    free(rlab);
    free(rgb);
    free(q);
    free(pred);
}

/* Writes text to file `name` of the test directory. */
static void put(const char *name, const char *text)
{
    FILE *f = fopen(path(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* string labels: classes in order of first appearance, printed with
 * their labels; the plot is the one of those class indices */
static void test_points_labels(void **state)
{
    put("iris.csv", "# sepal length, width\n"
                    "x;y;species\n"
                    "5.1;3.5;Iris setosa\n"
                    "7.0;3.2;versicolor\n"
                    "4.9 ; 3.0 ; Iris setosa\n"
                    "6.3;3.3;virginica # a comment\n"
                    "\n"
                    "6.4;3.2;versicolor\r\n");
    double *xy;
    int32_t *lab;
    size_t n;
    cnn_knn_classes_t cl;
    assert_int_equal(cnn_knn_points_read(path("iris.csv"), &xy, &lab, &n, &cl), CNN_OK);
    assert_int_equal(n, 5);
    const int32_t want[5] = {0, 1, 0, 2, 1};
    for (int i = 0; i < 5; i++) assert_int_equal(lab[i], want[i]);
    assert_int_equal(cl.n, 3);
    assert_string_equal(cl.names[0], "Iris setosa");
    assert_string_equal(cl.names[1], "versicolor");
    assert_string_equal(cl.names[2], "virginica");
    /* coordinates are rounded to float, as every CSV number */
    if (!(xy[4] == (double)4.9f && xy[5] == (double)3.0f)) fail_msg("%.17g %.17g", xy[4], xy[5]);
    /* space separated, numbers that are not 0..9 are strings too */
    put("sp.csv", "0 0 12\n1 1 cat\n2 2 12\n");
    free(xy);
    free(lab);
    assert_int_equal(cnn_knn_points_read(path("sp.csv"), &xy, &lab, &n, NULL), CNN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(lab[0], 0);
    assert_int_equal(lab[1], 1);
    assert_int_equal(lab[2], 0);

    char out[4096], err[2048];
    int rc = run(out, sizeof out, err, sizeof err, "--points iris.csv --k 1 --plot iris.png --size 64");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(out, "class 0 blue   Iris setosa: 2 points"));
    assert_non_null(strstr(out, "class 1 orange versicolor: 2 points"));
    assert_non_null(strstr(out, "class 2 green  virginica: 1 point\n"));
    cnn_image_t img;
    assert_int_equal(cnn_png_read(path("iris.png"), &img), CNN_OK);
    free(xy);
    free(lab);
    assert_int_equal(cnn_knn_points_read(path("iris.csv"), &xy, &lab, &n, NULL), CNN_OK);
    uint8_t *rgb = malloc(64 * 64 * 3);
    const cnn_knn_view_t v = cnn_knn_view(xy, n, 64);
    assert_int_equal(cnn_knn_render(xy, lab, n, 1, &v, 1, rgb), CNN_OK);
    assert_memory_equal(img.pixels, rgb, 64 * 64 * 3);
    cnn_image_free(&img);
    free(rgb);
    free(xy);
    free(lab);

    /* errors name the file and the line */
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"0,0,a\n1,1\n", "line 2: has 2 fields"},
        {"0,0,a\n1,1,b,c\n", "line 2: has more than 3 fields"},
        {"0,0,a\n\n1,1,\n", "line 3: label '' must have 1 to 31"},
        {"0,0,a\n1,z,b\n", "line 2: 'z' is not a finite number"},
        {"0 0 a\n1 1 two words\n", "line 2: has more than 3 fields"},
        {"0,0,a\n0,0,b\n0,0,c\n0,0,d\n0,0,e\n0,0,f\n0,0,g\n0,0,h\n0,0,i\n0,0,j\n0,0,a\n"
         "0,0,k\n", "line 12: label 11 of a kind; at most 10"},
        {"x,y,label\n", "no points"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put("bad.csv", bad[i].text);
        rc = run(out, sizeof out, err, sizeof err, "--points bad.csv --k 1 --plot p.png");
        assert_int_equal(rc, CNN_EXIT_DATA);
        if (!strstr(err, "bad.csv") || !strstr(err, bad[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].want);
    }
}

int main(int argc, char **argv)
{
    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    env_before_init = malloc(sizeof(char *) * (nenv + 1));
    for (size_t i = 0; env_before_init && i <= nenv; i++)
        env_before_init[i] = environ[i] ? strdup(environ[i]) : NULL;
    MPI_Init(&argc, &argv);
    note_mpi_env();
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vote),           cmocka_unit_test(test_small_sets),
        cmocka_unit_test(test_k_above_n),      cmocka_unit_test(test_self),
        cmocka_unit_test(test_program),        cmocka_unit_test(test_points_predict),
        cmocka_unit_test(test_points_plot),    cmocka_unit_test(test_points_labels),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    MPI_Finalize();
    for (char **e = env_before_init; e && *e; e++) free(*e);
    free(env_before_init);
    return rc;
}
