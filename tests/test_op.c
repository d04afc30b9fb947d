/* test_op.c - `mpicnn op` end to end: generated CSV files in, the program's
 * CSV files out, compared with the naive double reference (forward) and
 * its finite differences (backward) to 1e-5 relative; and the errors for
 * bad shapes, counts, numbers and files. Needs $MPICNN (the program). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpicnn.h"
#include "mpicnn/csv.h"
#include "naive.h"
#include "testutil.h"

static char dir[64];
static const char *prog;

static int setup(void **state)
{
    prog = getenv("MPICNN");
    if (!prog) prog = "src/mpicnn";
    snprintf(dir, sizeof dir, "/tmp/mpicnn-op-XXXXXX");
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
    static char buf[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Writes doubles as numpy.savetxt would (space separated, 18 digits). */
static void save(const char *name, const double *v, size_t n)
{
    FILE *f = fopen(path(name), "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%.18e%s", v[i], (i % 4 == 3) ? "\n" : " ");
    fclose(f);
}

static float *load(const char *name, size_t want)
{
    float *v;
    size_t n;
    if (cnn_csv_read(path(name), name, &v, &n) != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_int_equal(n, want);
    return v;
}

/* Runs "mpicnn op ARGS" in dir; returns the exit code, stderr in err. */
static int run(char *err, size_t errlen, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s op %s 2>%s/stderr.txt >/dev/null", dir, prog,
             args, dir);
    int rc = system(cmd);
    FILE *f = fopen(path("stderr.txt"), "r");
    size_t got = f ? fread(err, 1, errlen - 1, f) : 0;
    err[got] = '\0';
    if (f) fclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void fill(double *v, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) v[i] = tu_uniform(&seed, -1, 1);
}

static void test_conv(void **state)
{
    cnn_layer_spec_t s = {.name = "conv", .type = "conv", .filters = 3, .kh = 4, .kw = 4,
                          .stride = 2, .pad = 1};
    cnn_shape_t in = {2, 3, 4, 4}, out = {2, 3, 2, 2};
    double x[96], p[147], y[24], dout[24], gx[96], gp[147];
    naive_linspace(-0.1, 0.5, 96, x);
    naive_linspace(-0.2, 0.3, 144, p);
    naive_linspace(-0.1, 0.2, 3, p + 144);
    fill(dout, 24, 3);
    save("x", x, 96);
    save("w", p, 144);
    save("b", p + 144, 3);
    save("dout", dout, 24);
    char err[1024];
    int rc = run(err, sizeof err,
                 "conv --x x --x-shape 2,3,4,4 --w w --w-shape 3,3,4,4 --b b --stride 2 "
                 "--pad 1 --out out --dout dout --dx dx --dw dw --db db");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    naive_forward(&s, in, out, x, p, NULL, NULL, 1, y);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 0, 96, gx);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 1, 147, gp);
    float *o = load("out", 24), *dx = load("dx", 96), *dw = load("dw", 144), *db = load("db", 3);
    TU_ASSERT_CLOSE("op conv out", o, y, 24, 1e-7, 1e-5);
    TU_ASSERT_CLOSE("op conv dx", dx, gx, 96, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("op conv dw", dw, gp, 144, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("op conv db", db, gp + 144, 3, 1e-6, 1e-5);
    free(o); free(dx); free(dw); free(db);
}

static void test_dense(void **state)
{
    /* op takes w as (D,M) with out = x.w + b */
    const int N = 3, D = 5, M = 4;
    double x[15], wdm[20], p[24], y[12], dout[12], gx[15], gp[24];
    fill(x, 15, 1);
    fill(wdm, 20, 2);
    fill(p + 20, 4, 3);
    fill(dout, 12, 4);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < M; j++) p[j * D + i] = wdm[i * M + j];
    save("x", x, 15);
    save("w", wdm, 20);
    save("b", p + 20, 4);
    save("dout", dout, 12);
    char err[1024];
    int rc = run(err, sizeof err, "dense --x x --x-shape 3,5 --w w --w-shape 5,4 --b b "
                                  "--out out --dout dout --dx dx --dw dw --db db");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    cnn_layer_spec_t s = {.name = "fc", .type = "dense", .filters = M};
    cnn_shape_t in = {N, D, 1, 1}, out = {N, M, 1, 1};
    naive_forward(&s, in, out, x, p, NULL, NULL, 1, y);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 0, 15, gx);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 1, 24, gp);
    double gw[20];
    for (int i = 0; i < D; i++)
        for (int j = 0; j < M; j++) gw[i * M + j] = gp[j * D + i];
    float *o = load("out", 12), *dx = load("dx", 15), *dw = load("dw", 20), *db = load("db", 4);
    TU_ASSERT_CLOSE("op dense out", o, y, 12, 1e-7, 1e-5);
    TU_ASSERT_CLOSE("op dense dx", dx, gx, 15, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("op dense dw", dw, gw, 20, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("op dense db", db, gp + 20, 4, 1e-6, 1e-5);
    free(o); free(dx); free(dw); free(db);
}

/* pools, relu: forward and dx */
static void check_simple(const char *op, const char *args, cnn_layer_spec_t s,
                         cnn_shape_t in, cnn_shape_t out)
{
    size_t nin = (size_t)in.n * in.c * in.h * in.w, nout = (size_t)out.n * out.c * out.h * out.w;
    double *x = malloc(nin * sizeof(double)), *y = malloc(nout * sizeof(double));
    double *dout = malloc(nout * sizeof(double)), *gx = malloc(nin * sizeof(double));
    fill(x, nin, 7);
    fill(dout, nout, 8);
    save("x", x, nin);
    save("dout", dout, nout);
    char err[1024], cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s --x x --out out --dout dout --dx dx", op, args);
    int rc = run(err, sizeof err, cmd);
    if (rc != 0) fail_msg("%s: exit %d: %s", op, rc, err);
    naive_forward(&s, in, out, x, NULL, NULL, NULL, 1, y);
    naive_grad(&s, in, out, x, NULL, NULL, NULL, 1, dout, 0, nin, gx);
    float *o = load("out", nout), *dx = load("dx", nin);
    TU_ASSERT_CLOSE(op, o, y, nout, 1e-7, 1e-5);
    TU_ASSERT_CLOSE(op, dx, gx, nin, 1e-6, 1e-5);
    free(o); free(dx); free(x); free(y); free(dout); free(gx);
}

static void test_pool_relu(void **state)
{
    cnn_layer_spec_t mp = {.name = "m", .type = "maxpool", .kh = 2, .kw = 3, .stride = 2};
    check_simple("maxpool", "--x-shape 2,2,5,7 --size 2,3 --stride 2", mp,
                 (cnn_shape_t){2, 2, 5, 7}, (cnn_shape_t){2, 2, 2, 3});
    cnn_layer_spec_t ap = {.name = "a", .type = "avgpool", .kh = 2, .kw = 2, .stride = 1};
    check_simple("avgpool", "--x-shape 1,3,4,4 --size 2,2 --stride 1", ap,
                 (cnn_shape_t){1, 3, 4, 4}, (cnn_shape_t){1, 3, 3, 3});
    cnn_layer_spec_t r = {.name = "r", .type = "relu"};
    check_simple("relu", "--x-shape 4,6", r, (cnn_shape_t){4, 6, 1, 1}, (cnn_shape_t){4, 6, 1, 1});
}

/* the activations: their key flags are optional (the key's default
 * otherwise) and checked as the config checks them */
static void test_activations(void **state)
{
    const cnn_shape_t in = {3, 2, 2, 5};
    static const struct {
        const char *op, *flags;
        cnn_layer_spec_t s;
    } cases[] = {
        {"sigmoid", "", {.type = "sigmoid"}},
        {"tanh", "", {.type = "tanh"}},
        {"leaky_relu", "", {.type = "leaky_relu", .slope = 0.01f}},
        {"leaky_relu", "--slope 0.2", {.type = "leaky_relu", .slope = 0.2f}},
        {"elu", "--alpha 0.5", {.type = "elu", .alpha = 0.5f}},
        {"gelu", "", {.type = "gelu"}},
        {"gelu", "--approximate tanh", {.type = "gelu", .approximate = 1}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char args[128];
        snprintf(args, sizeof args, "--x-shape 3,2,2,5 %s", cases[k].flags);
        check_simple(cases[k].op, args, cases[k].s, in, in);
    }
    char err[1024];
    assert_int_equal(run(err, sizeof err, "gelu --x x --x-shape 3,2,2,5 --approximate erf "
                                          "--out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "'erf' is not a valid choice"));
    assert_non_null(strstr(err, "none | tanh"));
    assert_int_equal(run(err, sizeof err, "elu --x x --x-shape 3,2,2,5 --alpha 0 --out out"),
                     CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--alpha"));
}

static void test_batchnorm_dropout(void **state)
{
    /* batchnorm, train mode on (N,D) */
    double x[20], p[8], st[8] = {0}, y[20], dout[20], gx[20], gp[8];
    fill(x, 20, 11);
    fill(dout, 20, 12);
    naive_linspace(0.5, 1.5, 4, p);
    naive_linspace(-0.2, 0.2, 4, p + 4);
    save("x", x, 20);
    save("g", p, 4);
    save("be", p + 4, 4);
    save("dout", dout, 20);
    char err[1024];
    int rc = run(err, sizeof err, "batchnorm --x x --x-shape 5,4 --gamma g --beta be --mode train "
                                  "--eps 1e-5 --out out --dout dout --dx dx --dgamma dg --dbeta db");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    cnn_layer_spec_t s = {.name = "bn", .type = "batchnorm", .eps = 1e-5f, .momentum = 0.1f};
    cnn_shape_t sh = {5, 4, 1, 1};
    naive_forward(&s, sh, sh, x, p, st, NULL, 1, y);
    naive_grad(&s, sh, sh, x, p, st, NULL, 1, dout, 0, 20, gx);
    naive_grad(&s, sh, sh, x, p, st, NULL, 1, dout, 1, 8, gp);
    float *o = load("out", 20), *dx = load("dx", 20), *dg = load("dg", 4), *db = load("db", 4);
    TU_ASSERT_CLOSE("op batchnorm out", o, y, 20, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("op batchnorm dx", dx, gx, 20, 1e-5, 1e-4);
    TU_ASSERT_CLOSE("op batchnorm dgamma", dg, gp, 4, 1e-5, 1e-4);
    TU_ASSERT_CLOSE("op batchnorm dbeta", db, gp + 4, 4, 1e-5, 1e-4);
    free(o); free(dx); free(dg); free(db);

    /* test mode needs the running statistics */
    rc = run(err, sizeof err, "batchnorm --x x --x-shape 5,4 --gamma g --beta be --mode test "
                              "--eps 1e-5 --out out");
    assert_int_equal(rc, CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--mean"));
    double mv[8] = {0.1, 0.2, -0.1, 0, 1, 2, 0.5, 1};
    save("mean", mv, 4);
    save("var", mv + 4, 4);
    rc = run(err, sizeof err, "batchnorm --x x --x-shape 5,4 --gamma g --beta be --mode test "
                              "--mean mean --var var --eps 1e-5 --out out");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    naive_forward(&s, sh, sh, x, p, mv, NULL, 0, y);
    o = load("out", 20);
    TU_ASSERT_CLOSE("op batchnorm test mode", o, y, 20, 1e-6, 1e-5);
    free(o);

    /* dropout: kept values scaled by 1/(1-p), dx uses the same mask;
     * test mode is the identity */
    double ones[400];
    for (int i = 0; i < 400; i++) ones[i] = 1.0;
    save("x", ones, 400);
    save("dout", ones, 400);
    rc = run(err, sizeof err, "dropout --x x --x-shape 4,100 --p 0.25 --mode train --seed 3 "
                              "--out out --dout dout --dx dx");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    o = load("out", 400);
    dx = load("dx", 400);
    int zeros = 0;
    for (int i = 0; i < 400; i++) {
        assert_true(o[i] == 0.0f || fabsf(o[i] - 1.0f / 0.75f) < 1e-6f);
        assert_true(dx[i] == o[i]);
        zeros += o[i] == 0.0f;
    }
    assert_in_range(zeros, 60, 140);
    free(o);
    free(dx);
    rc = run(err, sizeof err, "dropout --x x --x-shape 4,100 --p 0.25 --mode test --seed 3 --out out");
    assert_int_equal(rc, 0);
    o = load("out", 400);
    for (int i = 0; i < 400; i++) assert_true(o[i] == 1.0f);
    free(o);
}

static void test_losses(void **state)
{
    double z[12], lab[3] = {2, 0, 3}, g[12];
    int labels[3] = {2, 0, 3};
    fill(z, 12, 21);
    save("z", z, 12);
    save("lab", lab, 3);
    const char *ops[2] = {"softmax-ce", "hinge"};
    double (*ref[2])(const double *, const int *, int, int) = {naive_softmax_ce, naive_hinge};
    for (int k = 0; k < 2; k++) {
        char err[1024], cmd[256];
        snprintf(cmd, sizeof cmd, "%s --x z --x-shape 3,4 --labels lab --out out --dx dx", ops[k]);
        int rc = run(err, sizeof err, cmd);
        if (rc != 0) fail_msg("%s exit %d: %s", ops[k], rc, err);
        double want = ref[k](z, labels, 3, 4) / 3;
        for (int i = 0; i < 12; i++) {
            double keep = z[i];
            z[i] = keep + 1e-6;
            double fp = ref[k](z, labels, 3, 4);
            z[i] = keep - 1e-6;
            double fm = ref[k](z, labels, 3, 4);
            z[i] = keep;
            g[i] = (fp - fm) / 2e-6 / 3;
        }
        float *o = load("out", 1), *dx = load("dx", 12);
        TU_ASSERT_CLOSE(ops[k], o, &want, 1, 1e-7, 1e-6);
        TU_ASSERT_CLOSE(ops[k], dx, g, 12, 1e-6, 1e-5);
        free(o);
        free(dx);
    }
}

static void test_errors(void **state)
{
    double x[10] = {0};
    save("x10", x, 10);
    FILE *f = fopen(path("bad"), "w");
    fputs("1, 2, 3\n4, abc, 6\n", f);
    fclose(f);
    char err[1024];
    /* count does not match the shape */
    assert_int_equal(run(err, sizeof err, "relu --x x10 --x-shape 3,4 --out out"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "--x"));
    assert_non_null(strstr(err, "10 values"));
    /* not a number: names the line and the token */
    assert_int_equal(run(err, sizeof err, "relu --x bad --x-shape 2,3 --out out"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "line 2"));
    assert_non_null(strstr(err, "abc"));
    /* missing file */
    assert_int_equal(run(err, sizeof err, "relu --x nope.csv --x-shape 2,3 --out out"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "nope.csv"));
    /* bad shape text, missing flags, unknown flag, unknown op, w/x mismatch */
    assert_int_equal(run(err, sizeof err, "relu --x x10 --x-shape 2,a --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--x-shape"));
    assert_int_equal(run(err, sizeof err, "relu --x x10 --out out"), CNN_EXIT_USAGE);
    assert_int_equal(run(err, sizeof err, "relu --x x10 --x-shape 10 --out out --bogus 1"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--bogus"));
    assert_int_equal(run(err, sizeof err, "softplus --x x10 --x-shape 10 --out out"), CNN_EXIT_USAGE);
    /* a layer type without op flags is not an op; the message lists the ops */
    assert_int_equal(run(err, sizeof err, "gap --x x10 --x-shape 10 --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "unknown layer 'gap'"));
    assert_non_null(strstr(err, "conv, "));
    assert_non_null(strstr(err, "batchnorm, "));
    assert_non_null(strstr(err, "gelu, softmax-ce, hinge)"));
    assert_int_equal(run(err, sizeof err, "conv --x x10 --x-shape 1,1,2,5 --w x10 --w-shape 1,2,1,1 "
                                          "--b x10 --stride 1 --pad 0 --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--w-shape"));
    /* kernel larger than the padded input */
    assert_int_equal(run(err, sizeof err, "conv --x x10 --x-shape 1,1,2,5 --w x10 --w-shape 1,1,3,3 "
                                          "--b x10 --stride 1 --pad 0 --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "kernel"));
    /* --dx without --dout */
    assert_int_equal(run(err, sizeof err, "relu --x x10 --x-shape 10 --out out --dx dx"), CNN_EXIT_USAGE);
    /* labels out of range */
    double lab[2] = {0, 5};
    save("lab", lab, 2);
    assert_int_equal(run(err, sizeof err, "hinge --x x10 --x-shape 2,5 --labels lab --out out"), CNN_EXIT_DATA);
    assert_non_null(strstr(err, "--labels"));
}

/* the flags left out take the config's defaults: conv stride 1, pad 0
 * and no bias; a pool's stride is its window; the output's shape is
 * printed on stderr */
static void test_defaults(void **state)
{
    cnn_layer_spec_t s = {.name = "conv", .type = "conv", .filters = 2, .kh = 3, .kw = 2,
                          .stride = 1, .pad = 0};
    cnn_shape_t in = {2, 3, 4, 5}, out = {2, 2, 2, 4};
    double x[120], p[38] = {0}, y[32], dout[32], gx[120], gp[38];
    fill(x, 120, 31);
    fill(p, 36, 32); /* the bias p[36..37] stays 0 */
    fill(dout, 32, 33);
    save("x", x, 120);
    save("w", p, 36);
    save("dout", dout, 32);
    char err[1024];
    int rc = run(err, sizeof err, "conv --x x --x-shape 2,3,4,5 --w w --w-shape 2,3,3,2 "
                                  "--out out --dout dout --dx dx --dw dw");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "op conv: output (2,2,2,4)"));
    naive_forward(&s, in, out, x, p, NULL, NULL, 1, y);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 0, 120, gx);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 1, 38, gp);
    float *o = load("out", 32), *dx = load("dx", 120), *dw = load("dw", 36);
    TU_ASSERT_CLOSE("op conv defaults out", o, y, 32, 1e-7, 1e-5);
    TU_ASSERT_CLOSE("op conv defaults dx", dx, gx, 120, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("op conv defaults dw", dw, gp, 36, 1e-6, 1e-5);
    free(o); free(dx); free(dw);
    /* the same in double */
    rc = run(err, sizeof err, "conv --x x --x-shape 2,3,4,5 --w w --w-shape 2,3,3,2 "
                              "--out out --dtype f64");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "op conv: output (2,2,2,4)"));
    o = load("out", 32);
    TU_ASSERT_CLOSE("op conv f64 defaults out", o, y, 32, 1e-7, 1e-5);
    free(o);
    /* a gradient of the bias needs one */
    assert_int_equal(run(err, sizeof err, "conv --x x --x-shape 2,3,4,5 --w w --w-shape 2,3,3,2 "
                                          "--out out --dout dout --db nodb"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--db needs --b"));
    assert_int_equal(access(path("nodb"), F_OK), -1);

    /* maxpool's stride is its window's height */
    cnn_layer_spec_t mp = {.name = "m", .type = "maxpool", .kh = 2, .kw = 2, .stride = 2};
    check_simple("maxpool", "--x-shape 1,2,4,6 --size 2", mp, (cnn_shape_t){1, 2, 4, 6},
                 (cnn_shape_t){1, 2, 2, 3});
    /* flat shapes print as given */
    save("x", x, 12);
    rc = run(err, sizeof err, "relu --x x --x-shape 3,4 --out out");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "op relu: output (3,4)"));
    double lab[3] = {0, 1, 3};
    save("lab", lab, 3);
    rc = run(err, sizeof err, "hinge --x x --x-shape 3,4 --labels lab --out out");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "op hinge: output (1)"));
}

/* dense --w-layout out,in: W and dW as (M,D), PyTorch's order; no --b */
static void test_dense_layout(void **state)
{
    const int N = 2, D = 3, M = 4;
    double x[6], p[16] = {0}, y[8], dout[8], gx[6], gp[16];
    fill(x, 6, 41);
    fill(p, 12, 42); /* (M,D), bias 0 */
    fill(dout, 8, 43);
    save("x", x, 6);
    save("w", p, 12);
    save("dout", dout, 8);
    char err[1024];
    int rc = run(err, sizeof err, "dense --x x --x-shape 2,3 --w w --w-shape 4,3 "
                                  "--w-layout out,in --out out --dout dout --dx dx --dw dw");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "op dense: output (2,4)"));
    cnn_layer_spec_t s = {.name = "fc", .type = "dense", .filters = M};
    cnn_shape_t in = {N, D, 1, 1}, out = {N, M, 1, 1};
    naive_forward(&s, in, out, x, p, NULL, NULL, 1, y);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 0, 6, gx);
    naive_grad(&s, in, out, x, p, NULL, NULL, 1, dout, 1, 16, gp);
    float *o = load("out", 8), *dx = load("dx", 6), *dw = load("dw", 12);
    TU_ASSERT_CLOSE("op dense out,in out", o, y, 8, 1e-7, 1e-5);
    TU_ASSERT_CLOSE("op dense out,in dx", dx, gx, 6, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("op dense out,in dw", dw, gp, 12, 1e-6, 1e-5);
    free(o); free(dx); free(dw);
    /* f64: the same file order */
    rc = run(err, sizeof err, "dense --x x --x-shape 2,3 --w w --w-shape 4,3 "
                              "--w-layout out,in --out out --dout dout --dw dw --dtype f64");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    dw = load("dw", 12);
    TU_ASSERT_CLOSE("op dense out,in f64 dw", dw, gp, 12, 1e-6, 1e-5);
    free(dw);
    /* in,out is the default, named */
    rc = run(err, sizeof err, "dense --x x --x-shape 2,3 --w w --w-shape 3,4 --w-layout in,out "
                              "--out out");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);

    /* errors: the shape in the other order, a bad value, another type */
    assert_int_equal(run(err, sizeof err, "dense --x x --x-shape 2,3 --w w --w-shape 3,4 "
                                          "--w-layout out,in --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "must be M,D with D = 3"));
    assert_int_equal(run(err, sizeof err, "dense --x x --x-shape 2,3 --w w --w-shape 3,4 "
                                          "--w-layout M,D --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "'M,D' must be in,out or out,in"));
    assert_int_equal(run(err, sizeof err, "conv --x x --x-shape 1,1,2,3 --w w --w-shape 1,1,1,1 "
                                          "--w-layout out,in --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--w-layout: op conv has no such flag (dense takes it)"));
    assert_int_equal(run(err, sizeof err, "relu --x x --x-shape 6 --w-layout in,out --out out"),
                     CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--w-layout"));
}

/* --help names the layouts */
static void test_help(void **state)
{
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "%s op --help", prog);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t got = fread(out, 1, sizeof out - 1, f);
    out[got] = '\0';
    assert_int_equal(pclose(f), 0);
    static const char *const want[] = {"(N,C,H,W)", "(K,C,KH,KW)", "on each side",
                                       "--w-layout out,in as (M,D)", "(D,M)",
                                       "one value per channel, (C)", "no bias"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) fail_msg("op --help lacks '%s':\n%s", want[i], out);
}

/* ---- --dtype f64 ----------------------------------------------------- */

static double *load64(const char *name, size_t want)
{
    double *v;
    size_t n;
    if (cnn_csv_read64(path(name), name, &v, &n) != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_int_equal(n, want);
    return v;
}

/* The largest |got - want| over the largest |want| must be <= tol. */
static void check_rel64(const char *what, const double *got, const double *want, size_t n,
                        double tol)
{
    double err = 0, big = 1e-300;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs(got[i] - want[i]));
        big = fmax(big, fabs(want[i]));
    }
    if (!(err <= tol * big)) fail_msg("%s: relative error %.3g > %.3g", what, err / big, tol);
}

/* One conv case: x (N,C,H,W), w (K,C,KH,KW), b (K), stride S, pad P;
 * y, dx, dw and db straight from the formula
 * y[n,k,oy,ox] = b[k] + sum_{c,ky,kx} w[k,c,ky,kx] x[n,c,oy*S-P+ky,ox*S-P+kx]. */
typedef struct {
    int N, C, H, W, K, KH, KW, S, P, OH, OW;
} conv_case_t;

static size_t at4(int a, int b, int c, int d, int B, int C, int D)
{
    return (((size_t)a * B + b) * C + c) * D + d;
}

static void conv_direct(const conv_case_t *g, const double *x, const double *w, const double *b,
                        const double *dy, double *y, double *dx, double *dw, double *db)
{
    memset(dx, 0, sizeof(double) * g->N * g->C * g->H * g->W);
    memset(dw, 0, sizeof(double) * g->K * g->C * g->KH * g->KW);
    memset(db, 0, sizeof(double) * g->K);
    for (int n = 0; n < g->N; n++)
        for (int k = 0; k < g->K; k++)
            for (int oy = 0; oy < g->OH; oy++)
                for (int ox = 0; ox < g->OW; ox++) {
                    const size_t o = at4(n, k, oy, ox, g->K, g->OH, g->OW);
                    double acc = b[k];
                    db[k] += dy[o];
                    for (int c = 0; c < g->C; c++)
                        for (int ky = 0; ky < g->KH; ky++)
                            for (int kx = 0; kx < g->KW; kx++) {
                                const int iy = oy * g->S - g->P + ky, ix = ox * g->S - g->P + kx;
                                if (iy < 0 || ix < 0 || iy >= g->H || ix >= g->W) continue;
                                const size_t xi = at4(n, c, iy, ix, g->C, g->H, g->W);
                                const size_t wi = at4(k, c, ky, kx, g->C, g->KH, g->KW);
                                acc += w[wi] * x[xi];
                                dw[wi] += dy[o] * x[xi];
                                dx[xi] += dy[o] * w[wi];
                            }
                    y[o] = acc;
                }
}

static void check_conv64(uint64_t seed)
{
    conv_case_t g;
    g.N = 1 + (int)tu_uniform(&seed, 0, 2.99);
    g.C = 1 + (int)tu_uniform(&seed, 0, 3.99);
    g.K = 1 + (int)tu_uniform(&seed, 0, 3.99);
    g.KH = 1 + (int)tu_uniform(&seed, 0, 3.99);
    g.KW = 1 + (int)tu_uniform(&seed, 0, 3.99);
    g.S = 1 + (int)tu_uniform(&seed, 0, 2.99);
    g.P = (int)tu_uniform(&seed, 0, 2.99);
    g.H = g.KH + (int)tu_uniform(&seed, 0, 6.99);
    g.W = g.KW + (int)tu_uniform(&seed, 0, 6.99);
    g.OH = (g.H + 2 * g.P - g.KH) / g.S + 1;
    g.OW = (g.W + 2 * g.P - g.KW) / g.S + 1;
    const size_t nx = (size_t)g.N * g.C * g.H * g.W, nw = (size_t)g.K * g.C * g.KH * g.KW;
    const size_t ny = (size_t)g.N * g.K * g.OH * g.OW;
    double *x = malloc(sizeof(double) * nx), *w = malloc(sizeof(double) * nw), b[4];
    double *dy = malloc(sizeof(double) * ny), *y = malloc(sizeof(double) * ny);
    double *dx = malloc(sizeof(double) * nx), *dw = malloc(sizeof(double) * nw), db[4];
    fill(x, nx, seed + 1);
    fill(w, nw, seed + 2);
    fill(b, (size_t)g.K, seed + 3);
    fill(dy, ny, seed + 4);
    save("x", x, nx);
    save("w", w, nw);
    save("b", b, (size_t)g.K);
    save("dout", dy, ny);
    char args[512], err[1024];
    snprintf(args, sizeof args,
             "conv --dtype f64 --x x --x-shape %d,%d,%d,%d --w w --w-shape %d,%d,%d,%d --b b "
             "--stride %d --pad %d --out out --dout dout --dx dx --dw dw --db db",
             g.N, g.C, g.H, g.W, g.K, g.C, g.KH, g.KW, g.S, g.P);
    int rc = run(err, sizeof err, args);
    if (rc != 0) fail_msg("%s: exit %d: %s", args, rc, err);
    conv_direct(&g, x, w, b, dy, y, dx, dw, db);
    double *o = load64("out", ny), *ox = load64("dx", nx), *ow = load64("dw", nw);
    double *ob = load64("db", (size_t)g.K);
    check_rel64("op conv f64 out", o, y, ny, 1e-12);
    check_rel64("op conv f64 dx", ox, dx, nx, 1e-12);
    check_rel64("op conv f64 dw", ow, dw, nw, 1e-12);
    check_rel64("op conv f64 db", ob, db, (size_t)g.K, 1e-12);
    free(o), free(ox), free(ow), free(ob);
    free(x), free(w), free(dy), free(y), free(dx), free(dw);
}

/* conv in f64 against the formula, on random shapes, strides and pads */
static void test_conv_f64(void **state)
{
    for (uint64_t k = 0; k < 12; k++) check_conv64(1000 + 17 * k);
}

/* dense (its weight file transposed) and softmax-ce in f64: 17 digits,
 * exact to double rounding */
static void test_dense_loss_f64(void **state)
{
    double x[6], w[12], b[4], dout[8], lab[2] = {3, 1};
    fill(x, 6, 5), fill(w, 12, 6), fill(b, 4, 7), fill(dout, 8, 8);
    save("x", x, 6), save("w", w, 12), save("b", b, 4), save("dout", dout, 8), save("lab", lab, 2);
    char err[1024];
    int rc = run(err, sizeof err, "dense --dtype f64 --x x --x-shape 2,3 --w w --w-shape 3,4 "
                                  "--b b --out out --dout dout --dx dx --dw dw --db db");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    double y[8], dx[6] = {0}, dw[12] = {0}, db[4] = {0};
    for (int n = 0; n < 2; n++)
        for (int m = 0; m < 4; m++) {
            y[n * 4 + m] = b[m];
            db[m] += dout[n * 4 + m];
            for (int d = 0; d < 3; d++) {
                y[n * 4 + m] += x[n * 3 + d] * w[d * 4 + m];
                dw[d * 4 + m] += x[n * 3 + d] * dout[n * 4 + m];
                dx[n * 3 + d] += dout[n * 4 + m] * w[d * 4 + m];
            }
        }
    double *o = load64("out", 8), *ox = load64("dx", 6), *ow = load64("dw", 12);
    check_rel64("op dense f64 out", o, y, 8, 1e-15);
    check_rel64("op dense f64 dx", ox, dx, 6, 1e-15);
    check_rel64("op dense f64 dw", ow, dw, 12, 1e-15);
    free(o), free(ox), free(ow);
    save("z", y, 8);
    rc = run(err, sizeof err, "softmax-ce --dtype f64 --x z --x-shape 2,4 --labels lab --out out");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    double loss = 0;
    for (int n = 0; n < 2; n++) {
        double se = 0;
        for (int m = 0; m < 4; m++) se += exp(y[n * 4 + m]);
        loss += (log(se) - y[n * 4 + (int)lab[n]]) / 2;
    }
    o = load64("out", 1);
    check_rel64("op softmax-ce f64", o, &loss, 1, 1e-15);
    free(o);
    assert_int_equal(run(err, sizeof err, "dense --dtype f16 --x x --x-shape 2,3 --w w "
                                          "--w-shape 3,4 --b b --out out"), CNN_EXIT_USAGE);
    assert_non_null(strstr(err, "--dtype"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),       cmocka_unit_test(test_dense),
        cmocka_unit_test(test_pool_relu),  cmocka_unit_test(test_activations),
        cmocka_unit_test(test_batchnorm_dropout),
        cmocka_unit_test(test_losses),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_conv_f64),   cmocka_unit_test(test_dense_loss_f64),
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_dense_layout),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
