/* test_layers.c - every layer three ways: forward against the naive double
 * reference (tests/naive.c), input and parameter gradients against central
 * finite differences of that reference, and 1 vs 2 OpenMP threads.
 *
 * Tolerances (stated once, used everywhere):
 *   forward:   |float - ref| <= 1e-5 + 1e-5 |ref|
 *   gradients: |analytic - fd| <= 1e-4 + 1e-3 |fd|, with fd the central
 *              difference of sum(r * y) in double, step 1e-6
 *   threads:   |1 thread - 2 threads| <= 1e-6 + 1e-6 |1 thread|
 * A failure prints the worst element, both values and its index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn.h"
#include "naive.h"
#include "testutil.h"

#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-5
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-3
#define FD_STEP 1e-6

typedef struct {
    size_t nin, nout, np, nstate;
    float *y, *dx, *dp; /* results of one run */
    float *mask;        /* dropout mask used */
} run_t;

static void run_free(run_t *r)
{
    free(r->y);
    free(r->dx);
    free(r->dp);
    free(r->mask);
}

/* Runs forward + backward of one layer with given x, params, state, dy. */
static run_t run_layer(const cnn_layer_spec_t *spec, cnn_shape_t in, int train,
                       int nthreads, const double *x, const double *p,
                       const double *state, const double *dy)
{
    cnn_net_t *net = NULL;
    cnn_status_t st = cnn_net_create(spec, 1, in, nthreads, &net);
    if (st != CNN_OK) fail_msg("create %s: %s", spec->name, cnn_error_message());
    cnn_layer_t *l = &net->layers[0];
    run_t r = {.nin = (size_t)in.n * cnn_shape_image(in),
               .nout = (size_t)in.n * cnn_shape_image(l->out),
               .np = l->sz.params, .nstate = l->sz.state};
    for (size_t i = 0; i < r.nin; i++) net->act[0][i] = (float)x[i];
    for (size_t i = 0; i < r.np; i++) l->params[i] = (float)p[i];
    for (size_t i = 0; i < r.nstate; i++) l->state[i] = (float)state[i];
    cnn_ctx_t ctx = cnn_net_ctx(net, train, 1234, 1, 17);
    const float *y = cnn_net_forward(net, &ctx, in.n);
    float *dyf = malloc(sizeof(float) * r.nout);
    for (size_t i = 0; i < r.nout; i++) dyf[i] = (float)dy[i];
    r.y = malloc(sizeof(float) * r.nout);
    r.dx = malloc(sizeof(float) * r.nin);
    r.dp = calloc(r.np + 1, sizeof(float));
    memcpy(r.y, y, sizeof(float) * r.nout);
    cnn_net_zero_grad(net);
    l->ops->backward(l, &ctx, in.n, net->act[0], net->act[1], dyf, r.dx);
    memcpy(r.dp, l->grads, sizeof(float) * r.np);
    if (!strcmp(spec->type, "dropout")) {
        r.mask = malloc(sizeof(float) * r.nin);
        for (size_t i = 0; i < r.nin; i++)
            r.mask[i] = train && spec->p > 0 ? l->cache[i] : 1.0f;
    }
    free(dyf);
    cnn_net_free(net);
    return r;
}

/* Analytic gradient against central differences of the reference. */
static void check_fd(const char *what, const cnn_layer_spec_t *s, cnn_shape_t in,
                     cnn_shape_t out, double *x, double *p, const double *state,
                     const double *mask, int train, const double *r, int wrt_params,
                     size_t nv, const float *analytic)
{
    double *fd = malloc(sizeof(double) * nv);
    naive_grad(s, in, out, x, p, state, mask, train, r, wrt_params, nv, fd);
    for (size_t i = 0; i < nv; i++) {
        double err = fabs(analytic[i] - fd[i]);
        if (err > GRAD_ATOL + GRAD_RTOL * fabs(fd[i]))
            fail_msg("%s gradient of layer %s at [%zu]: analytic %.9g, finite "
                     "difference %.9g (|diff| %.3g > %.1g + %.1g*|fd|)",
                     what, s->name, i, analytic[i], fd[i], err, GRAD_ATOL, GRAD_RTOL);
    }
    free(fd);
}

/* The whole three-way check of one layer configuration. */
static void check_layer(cnn_layer_spec_t spec, cnn_shape_t in, int train)
{
    cnn_net_t *probe = NULL;
    if (cnn_net_create(&spec, 1, in, 1, &probe) != CNN_OK)
        fail_msg("create %s: %s", spec.name, cnn_error_message());
    cnn_shape_t out = probe->layers[0].out;
    size_t np = probe->layers[0].sz.params, ns = probe->layers[0].sz.state;
    cnn_net_free(probe);

    size_t nin = (size_t)in.n * cnn_shape_image(in);
    size_t nout = (size_t)in.n * cnn_shape_image(out);
    uint64_t seed = 0x9e3779b97f4a7c15ULL ^ nin ^ (np << 20);
    double *x = malloc(sizeof(double) * nin), *p = malloc(sizeof(double) * (np + 1));
    double *st = calloc(ns + 1, sizeof(double)), *r = calloc(nout, sizeof(double));
    double *yref = malloc(sizeof(double) * nout), *mask = malloc(sizeof(double) * nin);
    for (size_t i = 0; i < nin; i++) x[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < np; i++) p[i] = tu_uniform(&seed, -0.5, 0.5);
    if (!strcmp(spec.type, "batchnorm")) {
        for (int c = 0; c < in.c; c++) {
            p[c] = tu_uniform(&seed, 0.5, 1.5);
            st[c] = tu_uniform(&seed, -0.2, 0.2);
            st[in.c + c] = tu_uniform(&seed, 0.5, 2.0);
        }
    }
    for (size_t i = 0; i < nout; i++) r[i] = tu_uniform(&seed, -1, 1);

    run_t a = run_layer(&spec, in, train, 1, x, p, st, r);
    for (size_t i = 0; i < nin; i++) mask[i] = a.mask ? a.mask[i] : 1.0;

    naive_forward(&spec, in, out, x, p, st, mask, train, yref);
    TU_ASSERT_CLOSE("forward", a.y, yref, nout, FWD_ATOL, FWD_RTOL);

    check_fd("input", &spec, in, out, x, p, st, mask, train, r, 0, nin, a.dx);
    if (np) check_fd("parameter", &spec, in, out, x, p, st, mask, train, r, 1, np, a.dp);

    /* 2 threads give the same answer */
    run_t b = run_layer(&spec, in, train, 2, x, p, st, r);
    double *ad = malloc(sizeof(double) * (nin + nout + np));
    for (size_t i = 0; i < nout; i++) ad[i] = a.y[i];
    TU_ASSERT_CLOSE("forward, 2 threads vs 1", b.y, ad, nout, 1e-6, 1e-6);
    for (size_t i = 0; i < nin; i++) ad[i] = a.dx[i];
    TU_ASSERT_CLOSE("input gradient, 2 threads vs 1", b.dx, ad, nin, 1e-6, 1e-6);
    for (size_t i = 0; i < np; i++) ad[i] = a.dp[i];
    TU_ASSERT_CLOSE("parameter gradient, 2 threads vs 1", b.dp, ad, np, 1e-6, 1e-6);

    run_free(&a);
    run_free(&b);
    free(ad);
    free(x);
    free(p);
    free(st);
    free(r);
    free(yref);
    free(mask);
}

static cnn_layer_spec_t mk(const char *type, int filters, int kh, int kw,
                           int stride, int pad)
{
    cnn_layer_spec_t s = {.filters = filters, .kh = kh, .kw = kw,
                          .stride = stride, .pad = pad, .eps = 1e-5f,
                          .momentum = 0.1f};
    snprintf(s.name, sizeof s.name, "%s_t", type);
    snprintf(s.type, sizeof s.type, "%s", type);
    return s;
}

static cnn_shape_t sh(int n, int c, int h, int w) { return (cnn_shape_t){n, c, h, w}; }

static void test_conv(void **state)
{
    check_layer(mk("conv", 4, 3, 3, 1, 1), sh(2, 3, 5, 5), 1);
    check_layer(mk("conv", 3, 3, 2, 2, 0), sh(1, 2, 7, 6), 1);  /* non-square, uneven */
    check_layer(mk("conv", 3, 4, 4, 2, 1), sh(2, 3, 4, 4), 1);
    check_layer(mk("conv", 5, 1, 1, 1, 0), sh(2, 4, 3, 3), 1);  /* pointwise path */
    check_layer(mk("conv", 2, 5, 5, 3, 2), sh(3, 1, 8, 8), 1);
    check_layer(mk("conv", 6, 2, 3, 1, 2), sh(1, 2, 3, 4), 1);  /* pad > kernel/2 */
    /* a first layer's short columns (9 rows): blocks of 4 filters and of
     * 24 and 8 pixels, and the tails of both */
    check_layer(mk("conv", 9, 3, 3, 1, 1), sh(2, 1, 9, 9), 1);
    /* and an RGB first layer's 75 rows (5x5 on 3 channels) */
    check_layer(mk("conv", 4, 5, 5, 1, 2), sh(2, 3, 6, 6), 1);
    /* the forward pass in eval mode leaves no columns: backward unfolds */
    check_layer(mk("conv", 4, 3, 3, 1, 1), sh(3, 3, 5, 5), 0);
    /* 3x3 stride 2 pad 1 (ResNet's downsampling): even and odd sides */
    check_layer(mk("conv", 4, 3, 3, 2, 1), sh(2, 3, 8, 8), 1);
    check_layer(mk("conv", 5, 3, 3, 2, 1), sh(2, 9, 7, 9), 1);
    check_layer(mk("conv", 4, 3, 3, 2, 1), sh(2, 3, 1, 2), 1);
    check_layer(mk("conv", 4, 3, 3, 2, 0), sh(1, 2, 3, 6), 0);
}

/* Layers too big to keep their columns unfold again in the backward pass,
 * a chunk of images at a time: here one or two images per chunk. Layers
 * of at most 80 column rows (cnn_gemm_small_dw's) unfold each image into
 * a thread's own scratch instead and sum its dW and db into a slot of the
 * shared scratch, a chunk of slots at a time: one, two or three here. */
static void test_conv_chunked(void **state)
{
    (void)state;
    cnn_layer_spec_t s = mk("conv", 4, 3, 3, 1, 1);
    cnn_net_t *net = NULL;
    cnn_conv_set_chunk_floats(81 * 16); /* 9 channels: 81 rows, 16 pixels */
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 9, 4, 4), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 0);        /* nothing kept */
    assert_int_equal(net->layers[0].sz.shared, 81 * 16); /* one image */
    cnn_net_free(net);
    check_layer(s, sh(3, 9, 4, 4), 1);
    cnn_conv_set_chunk_floats(2 * 81 * 16); /* two images per chunk */
    check_layer(s, sh(3, 9, 4, 4), 1);
    check_layer(s, sh(3, 9, 4, 4), 0);
    /* 27 rows: a slot is 4 * 27 + 4 = 112 floats, 7 cache lines */
    cnn_conv_set_chunk_floats(112);
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 0);
    assert_int_equal(net->layers[0].sz.shared, 112); /* one slot */
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 5, 5), 1);
    check_layer(mk("conv", 5, 1, 1, 1, 0), sh(3, 4, 3, 3), 1); /* 25 floats: 3 slots of 32 */
    cnn_conv_set_chunk_floats(2 * 112);
    check_layer(mk("conv", 2, 5, 5, 3, 2), sh(5, 1, 8, 8), 1); /* slots of 64: 3 + 2 images */
    check_layer(s, sh(3, 3, 5, 5), 0);
    cnn_conv_set_chunk_floats(0);
}

/* The small cases both Winograd variants run forced (s is a 4-filter 3x3
 * pad-1 conv): odd and even outputs, pads 0-2, eval mode. */
static void check_wino_cases(cnn_layer_spec_t s)
{
    check_layer(s, sh(2, 3, 5, 5), 1);
    check_layer(mk("conv", 3, 3, 3, 1, 0), sh(2, 2, 6, 7), 1);
    check_layer(mk("conv", 2, 3, 3, 1, 2), sh(1, 3, 4, 3), 1);
    check_layer(s, sh(3, 3, 5, 5), 0);
}

/* Winograd F(2x2, 3x3): forced on small cases (odd and even outputs,
 * pads 0-2, eval mode, one or more chunks, tile
 * rows shorter and longer than a vector),
 * then chosen by default for a layer with enough channels. */
static void test_conv_winograd(void **state)
{
    (void)state;
    cnn_conv_set_algo(CNN_CONV_WINOGRAD);
    cnn_layer_spec_t s = mk("conv", 4, 3, 3, 1, 1), s2 = mk("conv", 4, 3, 3, 2, 1);
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_WINOGRAD);
    cnn_net_free(net);
    assert_int_equal(cnn_net_create(&s2, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0); /* stride 2: im2col */
    cnn_net_free(net);
    check_wino_cases(s);
    /* tile rows of 8 tiles at a time: 10 tiles (a vector and 2 lanes),
     * exactly 8 (the last tile's share carried one vector further), 7 */
    check_layer(s, sh(2, 2, 3, 19), 1);
    check_layer(mk("conv", 3, 3, 3, 1, 0), sh(1, 2, 6, 18), 1);
    check_layer(s, sh(1, 3, 5, 13), 0);
    /* channels in blocks of 4: both products by the blocked kernel, with
     * U^T kept for dV (V is not kept: computed again in the backward pass) */
    assert_int_equal(cnn_net_create(&s, 1, sh(2, 4, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 3 * 16 * 4 * 4);
    cnn_net_free(net);
    check_layer(s, sh(2, 4, 6, 6), 1);
    /* 5x5 output: 9 tiles; V is 16*3*9 = 432 floats per image, M 576,
     * and each chunk of V or M has 16 gaps of a cache line (256 floats) */
    cnn_conv_set_chunk_floats(2200); /* one image per chunk */
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 2 * 16 * 4 * 3); /* U and dU */
    assert_int_equal(net->layers[0].sz.shared, 576 + 256 + 432 + 256);
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 5, 5), 1);
    check_layer(s, sh(3, 4, 5, 5), 1); /* dU by the blocked kernel, summed over chunks */
    cnn_conv_set_chunk_floats(4100); /* two images per chunk: 2 + 1 */
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 2 * 16 * 4 * 3);
    assert_int_equal(net->layers[0].sz.shared, 2 * (576 + 432) + 2 * 256);
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 5, 5), 1);
    check_layer(s, sh(3, 3, 5, 5), 0);
    cnn_conv_set_chunk_floats(0); /* at most 16 images per chunk: 9 + 8 */
    check_layer(s, sh(17, 2, 3, 3), 1);
    cnn_conv_set_chunk_floats(0);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    cnn_layer_spec_t big = mk("conv", CNN_CONV_WINO_MIN, 3, 3, 1, 1);
    assert_int_equal(cnn_net_create(&big, 1, sh(2, CNN_CONV_WINO_MIN, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_WINOGRAD);
    cnn_net_free(net);
    check_layer(big, sh(2, CNN_CONV_WINO_MIN, 7, 6), 1);
}

/* Winograd F(4x4, 3x3), forced: the same cases, tiles cut by the edge
 * (5, 6 and 7 pixel outputs), one or more chunks. */
static void test_conv_winograd4(void **state)
{
    (void)state;
    cnn_conv_set_algo(CNN_CONV_WINOGRAD4);
    cnn_layer_spec_t s = mk("conv", 4, 3, 3, 1, 1);
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_WINOGRAD4);
    cnn_net_free(net);
    check_wino_cases(s);
    check_layer(mk("conv", 3, 3, 3, 1, 1), sh(2, 2, 9, 8), 1);
    check_layer(mk("conv", 8, 3, 3, 1, 1), sh(2, 4, 9, 8), 1); /* the blocked kernel */
    /* tile rows of 8 tiles at a time: 10 tiles (a vector and 2 lanes),
     * exactly 8 (the last tile's share carried one vector further), 7
     * with the last one cut by the edge */
    check_layer(s, sh(2, 2, 5, 40), 1);
    check_layer(mk("conv", 3, 3, 3, 1, 0), sh(1, 2, 6, 34), 1);
    check_layer(s, sh(1, 3, 6, 27), 0);
    cnn_conv_set_chunk_floats(1000); /* one image per chunk */
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 2 * 36 * 4 * 3); /* U and dU only */
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 5, 5), 1);
    cnn_conv_set_chunk_floats(0);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    /* by default: F(4x4) from 16x16 outputs in multiples of 4, else F(2x2) */
    cnn_layer_spec_t big = mk("conv", CNN_CONV_WINO_MIN, 3, 3, 1, 1);
    assert_int_equal(cnn_net_create(&big, 1, sh(2, CNN_CONV_WINO_MIN, 16, 16), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_WINOGRAD4);
    cnn_net_free(net);
    assert_int_equal(cnn_net_create(&big, 1, sh(2, CNN_CONV_WINO_MIN, 14, 14), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_WINOGRAD);
    cnn_net_free(net);
}

/* Largest |v| of n values. */
static double max_abs(const float *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* Both Winograd variants agree with im2col at realistic sizes, where the
 * double reference would be slow: fmnist-ref's conv2 and cifar-3layer's.
 * The bound is relative to each tensor's largest value: against an exact
 * double computation im2col and F(2x2) err by 3e-7-7e-7 of it, F(4x4) by
 * up to 7e-6 (its transforms scale by up to 8 and 1/24). */
static void compare_with_im2col(int filters, cnn_shape_t in, int algo)
{
    const double rel = algo == CNN_CONV_WINOGRAD4 ? 3e-5 : 3e-6;
    cnn_layer_spec_t s = mk("conv", filters, 3, 3, 1, 1);
    size_t nin = (size_t)in.n * cnn_shape_image(in);
    size_t nout = (size_t)in.n * filters * in.h * in.w;
    size_t np = (size_t)filters * in.c * 9 + filters;
    uint64_t seed = 42;
    double *x = malloc(sizeof(double) * nin), *p = malloc(sizeof(double) * np);
    double *dy = malloc(sizeof(double) * nout), *st = calloc(1, sizeof(double));
    for (size_t i = 0; i < nin; i++) x[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < np; i++) p[i] = tu_uniform(&seed, -0.1, 0.1);
    for (size_t i = 0; i < nout; i++) dy[i] = tu_uniform(&seed, -1, 1);
    cnn_conv_set_algo(CNN_CONV_IM2COL);
    run_t a = run_layer(&s, in, 1, 2, x, p, st, dy);
    cnn_conv_set_algo(algo);
    run_t b = run_layer(&s, in, 1, 2, x, p, st, dy);
    run_t c = run_layer(&s, in, 1, 1, x, p, st, dy);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    /* every element is summed in the same order whatever the threads */
    assert_memory_equal(b.y, c.y, sizeof(float) * nout);
    assert_memory_equal(b.dx, c.dx, sizeof(float) * nin);
    assert_memory_equal(b.dp, c.dp, sizeof(float) * np);
    run_free(&c);
    double *ad = malloc(sizeof(double) * (nin + nout + np));
    for (size_t i = 0; i < nout; i++) ad[i] = a.y[i];
    TU_ASSERT_CLOSE("forward, Winograd vs im2col", b.y, ad, nout, rel * max_abs(a.y, nout), 0);
    for (size_t i = 0; i < nin; i++) ad[i] = a.dx[i];
    TU_ASSERT_CLOSE("input gradient, Winograd vs im2col", b.dx, ad, nin,
                    rel * max_abs(a.dx, nin), 0);
    for (size_t i = 0; i < np; i++) ad[i] = a.dp[i];
    TU_ASSERT_CLOSE("parameter gradient, Winograd vs im2col", b.dp, ad, np,
                    rel * max_abs(a.dp, np), 0);
    run_free(&a);
    run_free(&b);
    free(ad);
    free(x);
    free(p);
    free(dy);
    free(st);
}

static void test_conv_winograd_vs_im2col(void **state)
{
    (void)state;
    compare_with_im2col(64, sh(6, 32, 14, 14), CNN_CONV_WINOGRAD);
    compare_with_im2col(64, sh(6, 32, 14, 14), CNN_CONV_WINOGRAD4);
    compare_with_im2col(16, sh(3, 32, 32, 32), CNN_CONV_WINOGRAD);
    compare_with_im2col(16, sh(3, 32, 32, 32), CNN_CONV_WINOGRAD4);
}

/* A chunk's GEMMs run in column blocks of whole images (about 512
 * columns), taken block by block: 3 blocks of 1, 2 and 2 images (256
 * tiles each), which 2 threads cannot split evenly; chunks of 3 images,
 * of 2 blocks each; chunks of 3 and 2 images, of 2 blocks and of 1. 1
 * and 2 threads give the same bits. */
static void test_conv_winograd_blocks(void **state)
{
    (void)state;
    compare_with_im2col(16, sh(5, 32, 32, 32), CNN_CONV_WINOGRAD);
    /* M and V of an image: 16 x (16 + 32) x 256 floats; half the budget */
    cnn_conv_set_chunk_floats(2 * 3 * 16 * 48 * 256);
    compare_with_im2col(16, sh(6, 32, 32, 32), CNN_CONV_WINOGRAD);
    compare_with_im2col(16, sh(5, 32, 32, 32), CNN_CONV_WINOGRAD);
    cnn_conv_set_chunk_floats(0);
}

/* The 1x1 engine: chosen for 1x1 kernels without padding (with padding
 * im2col), checked three ways at stride 1, 2 and 3, odd sizes, filter
 * and channel counts that are and are not multiples of 4 (the blocked
 * kernels or the BLAS), eval mode and one slot per chunk. */
static void test_conv_1x1(void **state)
{
    (void)state;
    cnn_net_t *net = NULL;
    cnn_layer_spec_t s1 = mk("conv", 8, 1, 1, 1, 0), s2 = mk("conv", 8, 1, 1, 2, 0);
    cnn_layer_spec_t padded = mk("conv", 8, 1, 1, 1, 1);
    assert_int_equal(cnn_net_create(&s1, 1, sh(2, 4, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_1X1);
    assert_int_equal(net->layers[0].sz.work, 0); /* no column buffer */
    assert_int_equal(net->layers[0].sz.cache, 0);
    cnn_net_free(net);
    assert_int_equal(cnn_net_create(&padded, 1, sh(2, 4, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0);
    cnn_net_free(net);
    check_layer(s1, sh(2, 4, 5, 5), 1);
    check_layer(s1, sh(3, 8, 7, 3), 1);
    check_layer(s2, sh(2, 4, 5, 5), 1);            /* odd sides: 3x3 output */
    check_layer(s2, sh(2, 8, 6, 7), 1);            /* 3x4 output */
    check_layer(mk("conv", 8, 1, 1, 3, 0), sh(2, 4, 7, 5), 1);
    check_layer(mk("conv", 5, 1, 1, 1, 0), sh(2, 3, 4, 5), 1); /* the BLAS both ways */
    check_layer(mk("conv", 6, 1, 1, 2, 0), sh(2, 7, 5, 9), 1);
    check_layer(mk("conv", 3, 1, 1, 2, 0), sh(2, 8, 5, 5), 1); /* forward BLAS, dx blocked */
    check_layer(mk("conv", 8, 1, 1, 1, 0), sh(2, 5, 4, 4), 1); /* forward blocked, dx BLAS */
    check_layer(s2, sh(3, 4, 5, 5), 0);
    check_layer(padded, sh(2, 4, 3, 3), 1);
    cnn_conv_set_chunk_floats(1); /* one slot a chunk */
    check_layer(s2, sh(3, 4, 6, 6), 1);
    cnn_conv_set_chunk_floats(0);
}

/* A layer computed by the engine `algo` picks against the same layer
 * forced onto im2col (1x1 layers at ResNet projection shapes and a wider
 * one), and 1 against 2 threads bit for bit. */
static void compare_engines(cnn_layer_spec_t s, cnn_shape_t in, int algo)
{
    cnn_net_t *probe = NULL;
    assert_int_equal(cnn_net_create(&s, 1, in, 1, &probe), CNN_OK);
    const cnn_shape_t out = probe->layers[0].out;
    const size_t np = probe->layers[0].sz.params;
    cnn_net_free(probe);
    size_t nin = (size_t)in.n * cnn_shape_image(in), nout = (size_t)in.n * cnn_shape_image(out);
    uint64_t seed = 7;
    double *x = malloc(sizeof(double) * nin), *p = malloc(sizeof(double) * np);
    double *dy = malloc(sizeof(double) * nout), *st = calloc(1, sizeof(double));
    for (size_t i = 0; i < nin; i++) x[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < np; i++) p[i] = tu_uniform(&seed, -0.1, 0.1);
    for (size_t i = 0; i < nout; i++) dy[i] = tu_uniform(&seed, -1, 1);
    cnn_conv_set_algo(CNN_CONV_IM2COL);
    run_t a = run_layer(&s, in, 1, 2, x, p, st, dy);
    cnn_conv_set_algo(algo);
    run_t b = run_layer(&s, in, 1, 2, x, p, st, dy);
    run_t c = run_layer(&s, in, 1, 1, x, p, st, dy);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    assert_memory_equal(b.y, c.y, sizeof(float) * nout);
    assert_memory_equal(b.dx, c.dx, sizeof(float) * nin);
    assert_memory_equal(b.dp, c.dp, sizeof(float) * np);
    double *ad = malloc(sizeof(double) * (nin + nout + np));
    for (size_t i = 0; i < nout; i++) ad[i] = a.y[i];
    TU_ASSERT_CLOSE("forward vs im2col", b.y, ad, nout, 3e-6 * max_abs(a.y, nout), 0);
    for (size_t i = 0; i < nin; i++) ad[i] = a.dx[i];
    TU_ASSERT_CLOSE("input gradient vs im2col", b.dx, ad, nin, 3e-6 * max_abs(a.dx, nin), 0);
    for (size_t i = 0; i < np; i++) ad[i] = a.dp[i];
    TU_ASSERT_CLOSE("parameter gradient vs im2col", b.dp, ad, np, 3e-6 * max_abs(a.dp, np), 0);
    run_free(&a);
    run_free(&b);
    run_free(&c);
    free(ad);
    free(x);
    free(p);
    free(dy);
    free(st);
}

static void test_conv_1x1_vs_im2col(void **state)
{
    (void)state;
    compare_engines(mk("conv", 32, 1, 1, 2, 0), sh(5, 16, 32, 32), CNN_CONV_AUTO);
    compare_engines(mk("conv", 64, 1, 1, 2, 0), sh(5, 32, 16, 16), CNN_CONV_AUTO);
    compare_engines(mk("conv", 64, 1, 1, 1, 0), sh(3, 96, 15, 15), CNN_CONV_AUTO);
    /* and ResNet's 3x3 stride-2 layers (im2col both times): 1 vs 2 threads */
    compare_engines(mk("conv", 32, 3, 3, 2, 1), sh(3, 16, 32, 32), CNN_CONV_AUTO);
    compare_engines(mk("conv", 64, 3, 3, 2, 1), sh(3, 32, 7, 7), CNN_CONV_AUTO);
}

static void test_relu(void **state)
{
    check_layer(mk("relu", 0, 0, 0, 0, 0), sh(2, 3, 4, 5), 1);
    check_layer(mk("relu", 0, 0, 0, 0, 0), sh(1, 7, 1, 1), 0);
}

static void test_maxpool(void **state)
{
    check_layer(mk("maxpool", 0, 2, 2, 2, 0), sh(2, 3, 5, 5), 1); /* drops the edge */
    check_layer(mk("maxpool", 0, 3, 2, 1, 0), sh(1, 2, 6, 7), 1); /* overlapping */
    check_layer(mk("maxpool", 0, 2, 2, 2, 0), sh(2, 2, 4, 4), 1);
}

static void test_avgpool(void **state)
{
    check_layer(mk("avgpool", 0, 2, 2, 2, 0), sh(2, 3, 5, 5), 1);
    check_layer(mk("avgpool", 0, 3, 2, 1, 0), sh(1, 2, 6, 7), 1);
}

static void test_gap_flatten(void **state)
{
    check_layer(mk("gap", 0, 0, 0, 0, 0), sh(2, 3, 4, 5), 1);
    check_layer(mk("flatten", 0, 0, 0, 0, 0), sh(2, 3, 2, 2), 1);
}

static void test_dense(void **state)
{
    check_layer(mk("dense", 5, 0, 0, 0, 0), sh(3, 7, 1, 1), 1);
    check_layer(mk("dense", 3, 0, 0, 0, 0), sh(1, 10, 1, 1), 1);
    check_layer(mk("dense", 17, 0, 0, 0, 0), sh(9, 33, 1, 1), 1);
    check_layer(mk("dense", 4, 0, 0, 0, 0), sh(2, 3, 2, 3), 1); /* implicit flatten */
    /* the forward product in chunks of the inner dimension (33 = 16 + 16
     * + 1), 9 images: two blocks of 4 rows and one row on its own */
    cnn_dense_set_chunk_floats(16);
    check_layer(mk("dense", 17, 0, 0, 0, 0), sh(9, 33, 1, 1), 1);
    check_layer(mk("dense", 6, 0, 0, 0, 0), sh(13, 2, 4, 5), 1);
    cnn_dense_set_chunk_floats(0);
    /* more units than the blocked kernels take: the BLAS */
    check_layer(mk("dense", 257, 0, 0, 0, 0), sh(5, 6, 1, 1), 1);
}

static void test_dropout(void **state)
{
    cnn_layer_spec_t s = mk("dropout", 0, 0, 0, 0, 0);
    s.p = 0.3f;
    check_layer(s, sh(2, 3, 4, 4), 1);
    check_layer(s, sh(2, 3, 4, 4), 0);

    /* the mask drops about p of the values and scales the rest by 1/(1-p) */
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(&s, 1, sh(10, 10, 10, 10), 2, &net), CNN_OK);
    for (size_t i = 0; i < 10000; i++) net->act[0][i] = 1.0f;
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 99, 0, 5);
    const float *y = cnn_net_forward(net, &ctx, 10);
    int zeros = 0;
    for (size_t i = 0; i < 10000; i++) {
        if (y[i] == 0.0f) zeros++;
        else assert_float_equal(y[i], 1.0f / 0.7f, 1e-6);
    }
    assert_in_range(zeros, 2800, 3200);
    /* same (seed, rank, step) -> same mask; another step -> another mask */
    float first[100];
    memcpy(first, y, sizeof first);
    y = cnn_net_forward(net, &ctx, 10);
    assert_memory_equal(first, y, sizeof first);
    ctx.step = 6;
    y = cnn_net_forward(net, &ctx, 10);
    assert_true(memcmp(first, y, sizeof first) != 0);
    cnn_net_free(net);
}

static void test_batchnorm(void **state)
{
    check_layer(mk("batchnorm", 0, 0, 0, 0, 0), sh(4, 3, 3, 3), 1);
    check_layer(mk("batchnorm", 0, 0, 0, 0, 0), sh(5, 6, 1, 1), 1);
    check_layer(mk("batchnorm", 0, 0, 0, 0, 0), sh(2, 3, 3, 3), 0);

    /* running statistics follow PyTorch: (1-m) r + m * batch (unbiased var) */
    cnn_layer_spec_t s = mk("batchnorm", 0, 0, 0, 0, 0);
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(&s, 1, sh(4, 1, 1, 1), 1, &net), CNN_OK);
    cnn_net_init(net, 1);
    const float v[4] = {1, 2, 3, 6};
    memcpy(net->act[0], v, sizeof v);
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    cnn_net_forward(net, &ctx, 4);
    assert_float_equal(net->state[0], 0.1 * 3.0, 1e-6);           /* mean 3 */
    assert_float_equal(net->state[1], 0.9 + 0.1 * (14.0 / 3), 1e-6); /* var */
    cnn_net_free(net);
}

/* Course-style fixed values: linspace inputs as the course notebooks build
 * them; the expected values come from the double reference. */
static void test_course_linspace(void **state)
{
    cnn_layer_spec_t s = mk("conv", 3, 4, 4, 2, 1);
    cnn_shape_t in = sh(2, 3, 4, 4);
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(&s, 1, in, 2, &net), CNN_OK);
    assert_int_equal(net->output.h, 2);
    assert_int_equal(net->output.w, 2);
    double x[96], p[147], y[24];
    naive_linspace(-0.1, 0.5, 96, x);
    naive_linspace(-0.2, 0.3, 144, p);
    naive_linspace(-0.1, 0.2, 3, p + 144);
    for (int i = 0; i < 96; i++) net->act[0][i] = (float)x[i];
    for (int i = 0; i < 147; i++) net->params[i] = (float)p[i];
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    const float *out = cnn_net_forward(net, &ctx, 2);
    naive_forward(&s, in, net->output, x, p, NULL, NULL, 1, y);
    TU_ASSERT_CLOSE("conv linspace", out, y, 24, 1e-7, 1e-6);
    cnn_net_free(net);

    s = mk("maxpool", 0, 2, 2, 2, 0);
    assert_int_equal(cnn_net_create(&s, 1, in, 1, &net), CNN_OK);
    naive_linspace(-0.3, 0.4, 96, x);
    for (int i = 0; i < 96; i++) net->act[0][i] = (float)x[i];
    out = cnn_net_forward(net, &ctx, 2);
    naive_forward(&s, in, net->output, x, NULL, NULL, NULL, 1, y);
    TU_ASSERT_CLOSE("maxpool linspace", out, y, 24, 1e-7, 1e-6);
    cnn_net_free(net);
}

static void check_loss(const cnn_loss_t *loss, double (*ref)(const double *, const int *, int, int))
{
    enum { N = 5, K = 4 };
    uint64_t seed = 42;
    double z[N * K];
    float zf[N * K], d[N * K];
    int labels[N] = {0, 3, 1, 1, 2};
    for (int i = 0; i < N * K; i++) zf[i] = (float)(z[i] = tu_uniform(&seed, -3, 3));
    double sum;
    loss->compute(zf, labels, N, K, 1.0f / N, &sum, d);
    assert_float_equal(sum, ref(z, labels, N, K), 1e-5);
    for (int i = 0; i < N * K; i++) {
        double keep = z[i];
        z[i] = keep + FD_STEP;
        double fp = ref(z, labels, N, K);
        z[i] = keep - FD_STEP;
        double fm = ref(z, labels, N, K);
        z[i] = keep;
        double fd = (fp - fm) / (2 * FD_STEP) / N;
        if (fabs(d[i] - fd) > GRAD_ATOL + GRAD_RTOL * fabs(fd))
            fail_msg("%s gradient at [%d]: %.9g vs fd %.9g", loss->name, i, d[i], fd);
    }
    /* large logits stay finite */
    zf[0] = 1e4f;
    zf[1] = -1e4f;
    loss->compute(zf, labels, N, K, 1.0f / N, &sum, d);
    assert_true(isfinite(sum));
    assert_true(cnn_all_finite(d, N * K));
}

static void test_losses(void **state)
{
    check_loss(cnn_loss_find("softmax_ce"), naive_softmax_ce);
    check_loss(cnn_loss_find("hinge"), naive_hinge);
    assert_null(cnn_loss_find("mse"));
}

static void test_shape_errors(void **state)
{
    cnn_net_t *net = NULL;
    cnn_layer_spec_t s = mk("conv", 4, 5, 5, 1, 0);
    snprintf(s.name, sizeof s.name, "conv1");
    assert_int_equal(cnn_net_create(&s, 1, sh(2, 1, 3, 3), 1, &net), CNN_ECONFIG);
    assert_null(net);
    assert_non_null(strstr(cnn_error_message(), "conv1"));
    assert_non_null(strstr(cnn_error_message(), "(2,1,3,3)"));

    /* dense reads a (c,h,w) input as flat, as after a flatten layer */
    cnn_layer_spec_t two[2] = {mk("conv", 4, 3, 3, 1, 1), mk("dense", 10, 0, 0, 0, 0)};
    assert_int_equal(cnn_net_create(two, 2, sh(2, 1, 8, 8), 1, &net), CNN_OK);
    assert_int_equal(net->layers[1].sz.params, 10 * 4 * 8 * 8 + 10);
    cnn_net_free(net);
    net = NULL;
    two[1].filters = 0;
    snprintf(two[1].name, sizeof two[1].name, "fc1");
    assert_int_equal(cnn_net_create(two, 2, sh(2, 1, 8, 8), 1, &net), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "fc1"));

    s = mk("pool", 0, 2, 2, 2, 0);
    assert_int_equal(cnn_net_create(&s, 1, sh(1, 1, 4, 4), 1, &net), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "unknown type"));

    s = mk("maxpool", 0, 5, 5, 1, 0);
    assert_int_equal(cnn_net_create(&s, 1, sh(1, 1, 4, 4), 1, &net), CNN_ECONFIG);
    s = mk("dropout", 0, 0, 0, 0, 0);
    s.p = 1.0f;
    assert_int_equal(cnn_net_create(&s, 1, sh(1, 1, 4, 4), 1, &net), CNN_ECONFIG);
}

/* ---- the registry: every type's table is complete and consistent ---- */

/* A value inside key k's range, for a required key. */
static void sample_key(const cnn_layer_key_t *k, cnn_layer_spec_t *s)
{
    char *base = (char *)s;
    switch (k->kind) {
    case CNN_LKEY_INT: *(int *)(base + k->off) = 2; break;
    case CNN_LKEY_PAIR: *(int *)(base + k->off) = *(int *)(base + k->off2) = 2; break;
    case CNN_LKEY_FLOAT:
        *(float *)(base + k->off) = (float)(isinf(k->hi) ? k->lo + 1 : (k->lo + k->hi) / 2);
        break;
    case CNN_LKEY_BOOL: *(int *)(base + k->off) = 1; break;
    case CNN_LKEY_ENUM:
        if (!k->choices || !k->choices[0]) fail_msg("%s: enum key %s has no choices", s->type, k->name);
        *(int *)(base + k->off) = 0;
        break;
    default: fail_msg("%s: key %s has no kind", s->type, k->name);
    }
}

/* A spec of type t: sample values for the required keys, then each other
 * key's default, which must parse (an "=KEY" default after KEY). */
static cnn_layer_spec_t sample_spec(const cnn_layer_ops_t *t)
{
    cnn_layer_spec_t s = {0};
    snprintf(s.name, sizeof s.name, "%s_t", t->type);
    snprintf(s.type, sizeof s.type, "%s", t->type);
    assert_true(t->nkeys >= 0 && t->nkeys <= CNN_LAYER_KEYS_MAX);
    for (int j = 0; j < t->nkeys; j++) {
        const cnn_layer_key_t *k = &t->keys[j];
        assert_ptr_equal(cnn_layer_key(t, k->name), k); /* names are unique */
        assert_true(k->lo <= k->hi);
        if (!k->def) sample_key(k, &s);
        else if (k->def[0] == '=') { /* a key before this one */
            const cnn_layer_key_t *from = cnn_layer_key(t, k->def + 1);
            assert_non_null(from);
            assert_true(from < k);
        }
    }
    for (int j = 0; j < t->nkeys; j++)
        if (t->keys[j].def && cnn_config_layer_default(&s, &t->keys[j]) != CNN_OK)
            fail_msg("%s: default of %s: %s", t->type, t->keys[j].name, cnn_error_message());
    return s;
}

/* The tensors fill the layer's params and state exactly. */
static void check_tensors(const cnn_layer_t *l)
{
    const cnn_layer_ops_t *t = l->ops;
    cnn_layer_tensor_t tt[CNN_LAYER_TENSORS_MAX];
    size_t sum[2] = {0, 0};
    assert_true(t->ntensors >= 0 && t->ntensors <= CNN_LAYER_TENSORS_MAX);
    if (t->ntensors) assert_non_null(t->tensor_dims);
    const int n = cnn_layer_tensors(l, tt);
    for (int i = 0; i < n; i++) {
        assert_non_null(tt[i].desc->name);
        assert_true(tt[i].desc->in_state == 0 || tt[i].desc->in_state == 1);
        assert_true(tt[i].ndims >= 1 && tt[i].ndims <= 4);
        assert_int_equal(tt[i].offset, sum[tt[i].desc->in_state]);
        sum[tt[i].desc->in_state] += tt[i].count;
        for (int j = 0; j < i; j++) assert_string_not_equal(tt[i].desc->name, tt[j].desc->name);
        if (tt[i].desc->in_state) assert_null(tt[i].desc->grad_flag);
    }
    if (sum[0] != l->sz.params || sum[1] != l->sz.state)
        fail_msg("%s: tensors hold %zu params + %zu state, the layer %zu + %zu", t->type,
                 sum[0], sum[1], l->sz.params, l->sz.state);
}

/* `mpicnn op`'s descriptor names flags and keys the type has. */
static void check_cli(const cnn_layer_ops_t *t)
{
    const cnn_layer_cli_t *c = t->cli;
    unsigned from_shape = 0;
    if (!c) return;
    assert_non_null(c->usage);
    if (c->shape_flag) {
        int nd = 1;
        for (const char *p = c->shape_dims; *p; p++) nd += *p == ',';
        assert_true(nd <= 4 && c->shape_in < nd && c->shape_in_why);
        assert_true(t->ntensors > 0 && t->tensors[0].flag);
        for (int i = 0; i < nd; i++) {
            if (!c->shape_keys[i]) continue;
            const cnn_layer_key_t *k = cnn_layer_key(t, c->shape_keys[i]);
            assert_non_null(k);
            int uses = 0;
            for (int j = 0; j < nd; j++)
                uses += c->shape_keys[j] && !strcmp(c->shape_keys[j], k->name);
            assert_int_equal(uses, k->kind == CNN_LKEY_PAIR ? 2 : 1);
            from_shape |= 1u << (k - t->keys);
        }
    }
    /* op sets each key from a flag, from the shape flag or to its default */
    for (int j = 0; j < t->nkeys; j++)
        if (!t->keys[j].op_flag && !(from_shape & (1u << j)) && !t->keys[j].def)
            fail_msg("op %s: nothing sets key %s", t->type, t->keys[j].name);
}

/* The layer's forward pass in test mode against its reference, on a
 * sample shape with its initial parameters. */
static void check_reference(const cnn_layer_spec_t *s, cnn_shape_t in)
{
    cnn_net_t *net = NULL;
    if (cnn_net_create(s, 1, in, 1, &net) != CNN_OK)
        fail_msg("create %s: %s", s->name, cnn_error_message());
    cnn_layer_t *l = &net->layers[0];
    cnn_net_init(net, 7);
    check_tensors(l);
    const size_t nin = (size_t)in.n * cnn_shape_image(in), nout = (size_t)in.n * cnn_shape_image(l->out);
    double *x = malloc(sizeof(double) * nin), *y = malloc(sizeof(double) * nout);
    double *p = malloc(sizeof(double) * (l->sz.params + 1));
    double *st = malloc(sizeof(double) * (l->sz.state + 1));
    uint64_t seed = 5;
    for (size_t i = 0; i < nin; i++) net->act[0][i] = (float)(x[i] = tu_uniform(&seed, -1, 1));
    for (size_t i = 0; i < l->sz.params; i++) p[i] = l->params[i];
    for (size_t i = 0; i < l->sz.state; i++) st[i] = l->state[i];
    cnn_ctx_t ctx = cnn_net_ctx(net, 0, 1, 0, 0);
    const float *yf = cnn_net_forward(net, &ctx, in.n);
    const cnn_ref_args_t r = {.spec = s, .in = in, .out = l->out, .x = x, .params = p,
                              .state = st};
    l->ops->reference(&r, y);
    TU_ASSERT_CLOSE(s->type, yf, y, nout, FWD_ATOL, FWD_RTOL);
    free(x);
    free(y);
    free(p);
    free(st);
    cnn_net_free(net);
}

static void test_registry(void **state)
{
    const cnn_layer_ops_t *const *all = cnn_layer_all();
    const char *const *names = cnn_layer_types();
    int n = 0;
    for (; all[n]; n++) {
        const cnn_layer_ops_t *t = all[n];
        assert_non_null(names[n]);
        assert_string_equal(names[n], t->type);
        assert_ptr_equal(cnn_layer_find(t->type), t);
        assert_true(strlen(t->type) < sizeof ((cnn_layer_spec_t *)0)->type);
        assert_true(t->shape && t->forward && t->backward && t->reference);
        assert_true(t->fd == CNN_FD_LINEAR || t->fd == CNN_FD_SMOOTH || t->fd == CNN_FD_KINKED);
        cnn_layer_spec_t s = sample_spec(t);
        check_cli(t);
        check_reference(&s, sh(2, 3, 8, 8));
    }
    assert_null(names[n]);
    assert_true(n >= 9);
    assert_null(cnn_layer_find("pool"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv), cmocka_unit_test(test_conv_1x1),
        cmocka_unit_test(test_conv_1x1_vs_im2col),
        cmocka_unit_test(test_conv_chunked),  cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_winograd4), cmocka_unit_test(test_conv_winograd_vs_im2col),
        cmocka_unit_test(test_conv_winograd_blocks),  cmocka_unit_test(test_relu),
        cmocka_unit_test(test_maxpool),       cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_gap_flatten),   cmocka_unit_test(test_dense),
        cmocka_unit_test(test_dropout),       cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_course_linspace), cmocka_unit_test(test_losses),
        cmocka_unit_test(test_shape_errors),  cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
