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
    /* rows of 4 tiles, two to a vector: 3 tile rows (a pair and one
     * alone), and 4, the last cut by the edge */
    check_layer(s, sh(2, 2, 6, 8), 1);
    check_layer(s, sh(3, 2, 7, 7), 0);
    /* tile rows of 8 tiles at a time: 10 tiles (a vector and 2 lanes),
     * exactly 8 (the last tile's share carried one vector further), 7 */
    check_layer(s, sh(2, 2, 3, 19), 1);
    check_layer(mk("conv", 3, 3, 3, 1, 0), sh(1, 2, 6, 18), 1);
    check_layer(s, sh(1, 3, 5, 13), 0);
    /* channels in blocks of 4: both products by the blocked kernel, with
     * U^T kept for dV (V is not kept: computed again in the backward pass) */
    assert_int_equal(cnn_net_create(&s, 1, sh(2, 4, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 3 * 16 * 4 * 4 + 2 * 4); /* and the bias sums */
    cnn_net_free(net);
    check_layer(s, sh(2, 4, 6, 6), 1);
    /* 5x5 output: 9 tiles; V is 16*3*9 = 432 floats per image, M 576,
     * and each chunk of V or M has 16 gaps of a cache line (256 floats) */
    cnn_conv_set_chunk_floats(2200); /* one image per chunk */
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 2 * 16 * 4 * 3 + 3 * 4); /* U, dU, bias sums */
    assert_int_equal(net->layers[0].sz.shared, 576 + 256 + 432 + 256);
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 5, 5), 1);
    check_layer(s, sh(3, 4, 5, 5), 1); /* dU by the blocked kernel, summed over chunks */
    cnn_conv_set_chunk_floats(4100); /* two images per chunk: 2 + 1 */
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 2 * 16 * 4 * 3 + 3 * 4);
    assert_int_equal(net->layers[0].sz.shared, 2 * (576 + 432) + 2 * 256);
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 5, 5), 1);
    check_layer(s, sh(3, 3, 5, 5), 0);
    cnn_conv_set_chunk_floats(0); /* at most 256 tiles per chunk: 9 + 8 images of 16 */
    check_layer(s, sh(17, 2, 8, 8), 1);
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
    /* rows of 4 tiles, two to a vector: 3 tile rows (a pair and one
     * alone, the last cut by the edge), and 4 */
    check_layer(s, sh(2, 2, 10, 14), 1);
    check_layer(s, sh(3, 2, 16, 13), 0);
    check_layer(mk("conv", 3, 3, 3, 1, 1), sh(2, 2, 9, 8), 1);
    check_layer(mk("conv", 8, 3, 3, 1, 1), sh(2, 4, 9, 8), 1); /* the blocked kernel */
    /* tile rows of 8 tiles at a time: 10 tiles (a vector and 2 lanes),
     * exactly 8 (the last tile's share carried one vector further), 7
     * with the last one cut by the edge */
    check_layer(s, sh(2, 2, 5, 40), 1);
    check_layer(mk("conv", 3, 3, 3, 1, 0), sh(1, 2, 6, 34), 1);
    check_layer(s, sh(1, 3, 6, 27), 0);
    /* images of 2 x 2 tiles, two to a vector (5x5 above): 7x7 and 8x8,
     * an odd image left over (on 2 threads one takes it alone), the
     * blocked kernel, eval mode */
    check_layer(mk("conv", 8, 3, 3, 1, 1), sh(5, 8, 7, 7), 1);
    check_layer(mk("conv", 3, 3, 3, 1, 0), sh(3, 2, 10, 10), 1);
    check_layer(s, sh(2, 3, 6, 8), 0);
    cnn_conv_set_chunk_floats(1000); /* one image per chunk */
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 5, 5), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.cache, 2 * 36 * 4 * 3 + 3 * 4); /* U, dU, bias sums */
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 5, 5), 1);
    cnn_conv_set_chunk_floats(0);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    /* by default: F(4x4) where it has at most 3/4 of F(2x2)'s tile
     * positions and rows of 4 tiles or more (16x16, 14x14), else F(2x2)
     * (9x9 to 12x12: rows of 3 tiles) */
    cnn_layer_spec_t big = mk("conv", CNN_CONV_WINO_MIN, 3, 3, 1, 1);
    assert_int_equal(cnn_net_create(&big, 1, sh(2, CNN_CONV_WINO_MIN, 16, 16), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_WINOGRAD4);
    cnn_net_free(net);
    /* more shapes: rows of 4 tiles or more, 2 x 2 tiles where F(2x2) needs
     * more than 3 x 3, and neither */
    const int sides[][3] = {
        {14, 14, CNN_CONV_WINOGRAD4}, {13, 28, CNN_CONV_WINOGRAD4}, {7, 7, CNN_CONV_WINOGRAD4},
        {8, 8, CNN_CONV_WINOGRAD4},   {6, 8, CNN_CONV_WINOGRAD4},   {6, 6, CNN_CONV_WINOGRAD},
        {5, 5, CNN_CONV_WINOGRAD},    {9, 9, CNN_CONV_WINOGRAD},    {12, 12, CNN_CONV_WINOGRAD},
        {14, 3, CNN_CONV_WINOGRAD}};
    for (int i = 0; i < 10; i++) {
        const cnn_shape_t in = sh(2, CNN_CONV_WINO_MIN, sides[i][0], sides[i][1]);
        assert_int_equal(cnn_net_create(&big, 1, in, 1, &net), CNN_OK);
        assert_int_equal(net->layers[0].sz.variant, sides[i][2]);
        cnn_net_free(net);
    }
}

/* Winograd F(2x2, 5x5), forced: pads 0-3, odd and even outputs, tile
 * rows shorter than a vector and of one to three vectors, the last tile
 * in each lane that carries its input gradient into the next vector,
 * one output and one output row, eval mode, one or more chunks; then the
 * default for 5x5 layers. */
static void test_conv_winograd25(void **state)
{
    (void)state;
    cnn_conv_set_algo(CNN_CONV_WINOGRAD25);
    cnn_layer_spec_t s = mk("conv", 4, 5, 5, 1, 2);
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 3, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_WINOGRAD25);
    cnn_net_free(net);
    cnn_layer_spec_t s3 = mk("conv", 4, 3, 3, 1, 1), s2 = mk("conv", 4, 5, 5, 2, 2);
    assert_int_equal(cnn_net_create(&s3, 1, sh(3, 3, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0); /* 3x3: im2col */
    cnn_net_free(net);
    assert_int_equal(cnn_net_create(&s2, 1, sh(3, 3, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0); /* stride 2: im2col */
    cnn_net_free(net);
    check_layer(s, sh(2, 3, 6, 6), 1);
    check_layer(s, sh(2, 3, 5, 7), 1);
    check_layer(mk("conv", 3, 5, 5, 1, 0), sh(2, 2, 9, 8), 1);
    check_layer(mk("conv", 2, 5, 5, 1, 1), sh(1, 3, 7, 6), 1);
    check_layer(mk("conv", 3, 5, 5, 1, 3), sh(1, 2, 4, 5), 1);
    check_layer(mk("conv", 3, 5, 5, 1, 2), sh(2, 2, 1, 1), 1); /* one output */
    check_layer(mk("conv", 3, 5, 5, 1, 2), sh(1, 3, 1, 6), 1); /* one output row */
    check_layer(s, sh(3, 3, 6, 6), 0);
    /* tile rows of 8 tiles at a time: 7 (the last tile in lane 6), 8
     * (lane 7), 9, 14 (lane 5 of the second vector) and 15, 17 and 24 */
    const int widths[] = {14, 16, 18, 28, 30, 34, 48};
    for (int i = 0; i < 7; i++) check_layer(mk("conv", 2, 5, 5, 1, 2), sh(1, 2, 5, widths[i]), 1);
    check_layer(mk("conv", 8, 5, 5, 1, 2), sh(2, 4, 12, 16), 1); /* the blocked kernels */
    check_layer(mk("conv", 8, 5, 5, 1, 2), sh(2, 3, 12, 16), 1); /* dU by cnn_gemm_small_dw */
    cnn_conv_set_chunk_floats(2000); /* one image per chunk */
    check_layer(mk("conv", 8, 5, 5, 1, 2), sh(3, 3, 4, 4), 1);
    check_layer(s, sh(3, 3, 6, 6), 1);
    cnn_conv_set_chunk_floats(0);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    /* by default from 4 channels and CNN_CONV_WINO_MIN filters; a first
     * layer on 1-3 channels takes CNN_CONV_FUSED25 (test_conv_fused25);
     * not few filters, nor stride 2 */
    const int cases[][4] = {{4, CNN_CONV_WINO_MIN, 1, CNN_CONV_WINOGRAD25},
                            {32, 64, 1, CNN_CONV_WINOGRAD25},
                            {3, 32, 1, CNN_CONV_FUSED25},
                            {8, CNN_CONV_WINO_MIN - 1, 1, 0},
                            {32, 32, 2, 0}};
    for (int i = 0; i < 5; i++) {
        cnn_layer_spec_t d = mk("conv", cases[i][1], 5, 5, cases[i][2], 2);
        assert_int_equal(cnn_net_create(&d, 1, sh(2, cases[i][0], 12, 12), 1, &net), CNN_OK);
        assert_int_equal(net->layers[0].sz.variant, cases[i][3]);
        cnn_net_free(net);
    }
    check_layer(mk("conv", CNN_CONV_WINO_MIN, 5, 5, 1, 2), sh(2, 4, 9, 9), 1);
}

/* 5x5 stride-1 layers on 1 to 3 channels (CNN_CONV_FUSED25): the
 * forward pass by F(2x2, 5x5) with the products in registers, the
 * backward pass by the blocked kernels' columns. Odd and even outputs,
 * pads 0-3, outputs narrower than a vector of 8 tiles and cut by its
 * edge, one output and one output row, eval mode; forced onto 4
 * channels or a 3x3, the columns. */
/* A same-padded stride-1 conv case with random data: x, the parameters
 * and dy (in [-1, 1], [-0.1, 0.1], [-1, 1]) and the (empty) state. */
typedef struct {
    cnn_layer_spec_t s;
    size_t nin, nout, np;
    double *x, *p, *dy, *st;
} conv_case_t;

static conv_case_t conv_case(int filters, int r, cnn_shape_t in, uint64_t seed)
{
    conv_case_t k = {.s = mk("conv", filters, r, r, 1, r / 2)};
    k.nin = (size_t)in.n * cnn_shape_image(in);
    k.nout = (size_t)in.n * filters * in.h * in.w;
    k.np = (size_t)filters * in.c * r * r + filters;
    k.x = malloc(sizeof(double) * k.nin);
    k.p = malloc(sizeof(double) * k.np);
    k.dy = malloc(sizeof(double) * k.nout);
    k.st = calloc(1, sizeof(double));
    for (size_t i = 0; i < k.nin; i++) k.x[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < k.np; i++) k.p[i] = tu_uniform(&seed, -0.1, 0.1);
    for (size_t i = 0; i < k.nout; i++) k.dy[i] = tu_uniform(&seed, -1, 1);
    return k;
}

static void conv_case_free(conv_case_t *k)
{
    free(k->x);
    free(k->p);
    free(k->dy);
    free(k->st);
}

/* A conv engine's kernels in 16 lanes (where the CPU has AVX-512) and
 * in 8 (cnn_kernels_set_lanes): the same bits where every lane does the
 * same arithmetic: CNN_CONV_FUSED25's forward pass, and F(4x4)'s
 * forward pass and input gradient (its image transforms take two tile
 * rows a vector, the output gradient's dM among them; the products'
 * blocked kernel sums each element in the same order at either width;
 * dW's sums in lanes differ). On a CPU without AVX-512 both runs take
 * 8. */
/* Largest |v| of n values. */
static double max_abs(const float *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* The same bits need the 8-lane kernels' build with fused multiply-adds
 * (x86-64-v3, which every CPU with AVX-512 runs). The sanitizer build
 * keeps only the baseline x86-64 build (simd.h): there the two widths
 * round differently, and agree to rounding. */
#ifdef __SANITIZE_ADDRESS__
#define LANES_BITWISE 0
#else
#define LANES_BITWISE 1
#endif

static void same_lanes(const char *what, const float *wide, const float *narrow, size_t n)
{
    if (LANES_BITWISE) {
        assert_memory_equal(wide, narrow, sizeof(float) * n);
        return;
    }
    double *want = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) want[i] = narrow[i];
    TU_ASSERT_CLOSE(what, wide, want, n, 1e-5 * max_abs(narrow, n), 0);
    free(want);
}

static void lanes_same(int algo, int filters, cnn_shape_t in)
{
    conv_case_t k = conv_case(filters, algo == CNN_CONV_FUSED25 ? 5 : 3, in, 7);
    cnn_conv_set_algo(algo);
    run_t wide = run_layer(&k.s, in, 1, 2, k.x, k.p, k.st, k.dy);
    cnn_kernels_set_lanes(8);
    run_t narrow = run_layer(&k.s, in, 1, 2, k.x, k.p, k.st, k.dy);
    cnn_kernels_set_lanes(0);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    same_lanes("forward, 16 lanes vs 8", wide.y, narrow.y, k.nout);
    if (algo != CNN_CONV_FUSED25)
        same_lanes("input gradient, 16 lanes vs 8", wide.dx, narrow.dx, k.nin);
    run_free(&wide);
    run_free(&narrow);
    conv_case_free(&k);
}

static void test_conv_fused25(void **state)
{
    (void)state;
    cnn_layer_spec_t s = mk("conv", 8, 5, 5, 1, 2);
    cnn_net_t *net = NULL;
    for (int c = 1; c <= 3; c++) {
        assert_int_equal(cnn_net_create(&s, 1, sh(2, c, 32, 32), 1, &net), CNN_OK);
        assert_int_equal(net->layers[0].sz.variant, CNN_CONV_FUSED25);
        assert_int_equal(net->layers[0].sz.cache, 2 * 36 * 8 * c); /* U twice, no columns */
        cnn_net_free(net);
        check_layer(mk("conv", 4, 5, 5, 1, 2), sh(2, c, 6, 6), 1);
    }
    check_layer(mk("conv", 5, 5, 5, 1, 2), sh(2, 3, 7, 9), 1);
    check_layer(mk("conv", 3, 5, 5, 1, 0), sh(2, 2, 9, 8), 1);
    check_layer(mk("conv", 2, 5, 5, 1, 3), sh(1, 3, 4, 5), 1);
    check_layer(mk("conv", 3, 5, 5, 1, 2), sh(2, 2, 1, 1), 1); /* one output */
    check_layer(mk("conv", 3, 5, 5, 1, 2), sh(1, 3, 1, 6), 1); /* one output row */
    check_layer(mk("conv", 4, 5, 5, 1, 2), sh(1, 3, 5, 34), 1); /* 17 tiles a row */
    check_layer(mk("conv", 4, 5, 5, 1, 2), sh(1, 3, 5, 30), 1); /* 15 */
    check_layer(s, sh(3, 3, 6, 6), 0);
    /* 16 tiles a row (cifar-3layer's conv1), 17, 15 and 4 */
    lanes_same(CNN_CONV_FUSED25, 32, sh(3, 3, 32, 32));
    lanes_same(CNN_CONV_FUSED25, 4, sh(2, 3, 5, 34));
    lanes_same(CNN_CONV_FUSED25, 5, sh(2, 2, 7, 30));
    lanes_same(CNN_CONV_FUSED25, 3, sh(2, 1, 9, 8));
    cnn_kernels_set_lanes(8); /* the 8-lane kernel where the CPU has more */
    check_layer(mk("conv", 4, 5, 5, 1, 2), sh(1, 3, 5, 34), 1);
    check_layer(mk("conv", 3, 5, 5, 1, 2), sh(2, 2, 1, 1), 1);
    cnn_kernels_set_lanes(0);
    cnn_conv_set_algo(CNN_CONV_FUSED25);
    assert_int_equal(cnn_net_create(&s, 1, sh(2, 4, 8, 8), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0);
    cnn_net_free(net);
    cnn_layer_spec_t s3 = mk("conv", 16, 3, 3, 1, 1); /* not a 5x5: the columns */
    assert_int_equal(cnn_net_create(&s3, 1, sh(2, 16, 16, 16), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0);
    cnn_net_free(net);
    cnn_conv_set_algo(CNN_CONV_AUTO);
}

/* The Winograd variants agree with im2col at realistic sizes, where the
 * double reference would be slow: fmnist-ref's conv2 and cifar-3layer's.
 * The bound is relative to each tensor's largest value: against an exact
 * double computation im2col and F(2x2, 3x3) err by 3e-7-7e-7 of it,
 * F(4x4, 3x3) and F(2x2, 5x5) by up to 7e-6 (their transforms scale by up
 * to 8 and 1/24). 1 and 2 threads give the same bits. */
static void compare_with_im2col(int filters, cnn_shape_t in, int algo)
{
    const double rel = algo == CNN_CONV_WINOGRAD ? 3e-6 : 3e-5;
    const int r = algo == CNN_CONV_WINOGRAD25 || algo == CNN_CONV_FUSED25 ? 5 : 3;
    conv_case_t k = conv_case(filters, r, in, 42);
    cnn_layer_spec_t s = k.s;
    const size_t nin = k.nin, nout = k.nout, np = k.np;
    double *x = k.x, *p = k.p, *dy = k.dy, *st = k.st;
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
    conv_case_free(&k);
}

static void test_conv_winograd_vs_im2col(void **state)
{
    (void)state;
    compare_with_im2col(64, sh(6, 32, 14, 14), CNN_CONV_WINOGRAD);
    compare_with_im2col(64, sh(6, 32, 14, 14), CNN_CONV_WINOGRAD4);
    compare_with_im2col(16, sh(3, 32, 32, 32), CNN_CONV_WINOGRAD);
    /* 442 KB of V and M an image: the forward pass's chunks, which fit
     * the L2 caches, differ on 1 and 2 threads (2 and 3 images with a
     * 1 MB L2 a core, 3 and 6 with 2 MB) */
    compare_with_im2col(16, sh(6, 32, 32, 32), CNN_CONV_WINOGRAD4);
    /* products by the BLAS (6 filters, not a multiple of 4): the forward
     * chunks stay the same on any thread count, as the BLAS's bits
     * depend on the column blocks */
    compare_with_im2col(6, sh(8, 32, 32, 32), CNN_CONV_WINOGRAD4);
    /* ResNet-20's last stage on Fashion-MNIST (7x7, 64 channels): F(4x4)
     * two images a vector, 5 images, so that one is left over */
    compare_with_im2col(64, sh(5, 64, 7, 7), CNN_CONV_WINOGRAD4);
    /* F(2x2, 5x5): cifar-3layer's conv1 (5x5 on RGB, 32 filters: dU by
     * the blocked kernels, dV by the BLAS), its forward pass in registers
     * (CNN_CONV_FUSED25), one with more channels (all three products by
     * the blocked kernels), and tile rows of 15 and 7 tiles, where the
     * input gradient takes a vector of no tiles at the end of each row */
    compare_with_im2col(32, sh(5, 3, 32, 32), CNN_CONV_WINOGRAD25);
    compare_with_im2col(32, sh(5, 3, 32, 32), CNN_CONV_FUSED25);
    compare_with_im2col(16, sh(3, 16, 16, 16), CNN_CONV_WINOGRAD25);
    compare_with_im2col(8, sh(3, 8, 14, 30), CNN_CONV_WINOGRAD25);
    compare_with_im2col(8, sh(3, 8, 13, 14), CNN_CONV_WINOGRAD25);
    /* F(4x4)'s image transforms two tile rows a vector in 16 lanes: tile
     * rows of 8 (32x32, an even count), 7 (28x28, odd: the last alone),
     * 6 and 5 tiles; products by the blocked kernel and by the BLAS (6
     * filters); the same against im2col with 8 lanes */
    lanes_same(CNN_CONV_WINOGRAD4, 16, sh(3, 16, 32, 32));
    lanes_same(CNN_CONV_WINOGRAD4, 16, sh(5, 16, 28, 28));
    lanes_same(CNN_CONV_WINOGRAD4, 8, sh(3, 8, 8, 24));
    lanes_same(CNN_CONV_WINOGRAD4, 6, sh(4, 8, 18, 20));
    /* and images of 4 x 4 tiles, a channel's 16 a vector: 16x16 (the
     * output straight to y), 14x14 and 13x13 (through the plane) */
    lanes_same(CNN_CONV_WINOGRAD4, 16, sh(3, 16, 16, 16));
    lanes_same(CNN_CONV_WINOGRAD4, 32, sh(3, 16, 14, 14));
    lanes_same(CNN_CONV_WINOGRAD4, 8, sh(2, 8, 13, 13));
    cnn_kernels_set_lanes(8);
    compare_with_im2col(16, sh(6, 16, 28, 28), CNN_CONV_WINOGRAD4);
    cnn_kernels_set_lanes(0);
    compare_with_im2col(16, sh(6, 16, 28, 28), CNN_CONV_WINOGRAD4);
}

/* ---- input gradients added in place (ctx.dx_add) -------------------- */

/* A conv whose engine adds its input gradient into dx (sz.dx_adds, the
 * first layer of a residual block: net.c) gives dx = d0 + g, float by
 * float, to the bit: g the gradient it writes without dx_add, d0 what dx
 * held. With relu_out too (dy masked by y), and on 1 and 2 threads. */
static void check_dx_add(int algo, int filters, int r, cnn_shape_t in, int relu)
{
    conv_case_t k = conv_case(filters, r, in, 11);
    cnn_conv_set_algo(algo);
    for (int threads = 1; threads <= 2; threads++) {
        cnn_net_t *net = NULL;
        if (cnn_net_create(&k.s, 1, in, threads, &net) != CNN_OK)
            fail_msg("create: %s", cnn_error_message());
        cnn_layer_t *l = &net->layers[0];
        assert_int_equal(l->sz.dx_adds, 1);
        l->relu_out = relu;
        for (size_t i = 0; i < k.nin; i++) net->act[0][i] = (float)k.x[i];
        for (size_t i = 0; i < k.np; i++) l->params[i] = (float)k.p[i];
        cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1234, 1, 17);
        const float *y = cnn_net_forward(net, &ctx, in.n);
        float *dy = malloc(sizeof(float) * k.nout), *g = malloc(sizeof(float) * k.nin);
        float *d = malloc(sizeof(float) * k.nin), *want = malloc(sizeof(float) * k.nin);
        for (size_t i = 0; i < k.nout; i++) dy[i] = (float)k.dy[i];
        l->ops->backward(l, &ctx, in.n, net->act[0], y, dy, g);
        uint64_t seed = 99;
        for (size_t i = 0; i < k.nin; i++) {
            /* a -0 among the values: -0 + 0 is +0, as a separate add gives */
            d[i] = i % 97 == 5 ? -0.0f : (float)tu_uniform(&seed, -1, 1);
            want[i] = d[i] + g[i];
        }
        ctx.dx_add = 1;
        l->ops->backward(l, &ctx, in.n, net->act[0], y, dy, d);
        assert_memory_equal(d, want, sizeof(float) * k.nin);
        free(dy);
        free(g);
        free(d);
        free(want);
        cnn_net_free(net);
    }
    cnn_conv_set_algo(CNN_CONV_AUTO);
    conv_case_free(&k);
}

static void test_conv_dx_add(void **state)
{
    (void)state;
    /* F(4x4): tile rows of 7 (28x28, in 16 lanes two a vector), images
     * of 4 x 4 tiles (14x14), of 2 x 2 (7x7, two images a vector: an odd
     * batch leaves one alone), 18x20 through the plane; F(2x2) and
     * F(2x2, 5x5) */
    check_dx_add(CNN_CONV_WINOGRAD4, 8, 3, sh(2, 8, 28, 28), 0);
    check_dx_add(CNN_CONV_WINOGRAD4, 16, 3, sh(3, 16, 14, 14), 1);
    check_dx_add(CNN_CONV_WINOGRAD4, 8, 3, sh(3, 8, 7, 7), 0);
    check_dx_add(CNN_CONV_WINOGRAD4, 6, 3, sh(2, 4, 18, 20), 1);
    check_dx_add(CNN_CONV_WINOGRAD, 8, 3, sh(3, 8, 12, 12), 0);
    check_dx_add(CNN_CONV_WINOGRAD25, 8, 5, sh(2, 4, 12, 18), 0);
    cnn_kernels_set_lanes(8); /* the 8-lane transforms where the CPU has more */
    check_dx_add(CNN_CONV_WINOGRAD4, 8, 3, sh(2, 8, 28, 28), 1);
    check_dx_add(CNN_CONV_WINOGRAD4, 16, 3, sh(3, 16, 14, 14), 0);
    cnn_kernels_set_lanes(0);
}

/* ---- conv with its ReLU folded in (relu_out) ------------------------ */

/* The batch the conv_relu_run layers are planned for, when more than the
 * images they run (0: those) */
static int relu_plan_n;

/* One conv layer on x with dy at the end, on nthreads, as the net runs
 * it: with relu_out (the layer clamps and masks), or followed by a relu
 * layer run in place over its output (relu_out 0). Results in r. */
static void conv_relu_run(cnn_layer_spec_t s, cnn_shape_t in, int algo, int relu_out,
                          int train, int nthreads, const float *x, const float *p,
                          const float *dy, run_t *r)
{
    cnn_conv_set_algo(algo);
    cnn_net_t *net = NULL;
    cnn_shape_t plan = in;
    if (relu_plan_n > in.n) plan.n = relu_plan_n;
    assert_int_equal(cnn_net_create(&s, 1, plan, nthreads, &net), CNN_OK);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    cnn_layer_t *l = &net->layers[0];
    assert_int_equal(l->sz.no_relu_out, 0); /* its engine runs the ReLU */
    r->nin = (size_t)in.n * cnn_shape_image(in);
    r->nout = (size_t)in.n * cnn_shape_image(l->out);
    r->np = l->sz.params;
    r->y = malloc(sizeof(float) * r->nout);
    r->dx = malloc(sizeof(float) * r->nin);
    r->dp = malloc(sizeof(float) * r->np);
    r->mask = NULL;
    memcpy(l->params, p, sizeof(float) * r->np);
    memcpy(net->act[0], x, sizeof(float) * r->nin);
    const cnn_ctx_t ctx = cnn_net_ctx(net, train, 1, 0, 0);
    l->relu_out = relu_out;
    l->ops->forward(l, &ctx, in.n, net->act[0], r->y);
    float *g = malloc(sizeof(float) * r->nout);
    memcpy(g, dy, sizeof(float) * r->nout);
    if (!relu_out) { /* the relu layer, in place as the net runs it */
        cnn_layer_spec_t rs = mk("relu", 0, 0, 0, 0, 0);
        cnn_net_t *rn = NULL;
        assert_int_equal(cnn_net_create(&rs, 1, l->out, nthreads, &rn), CNN_OK);
        cnn_layer_t *rl = &rn->layers[0];
        const cnn_ctx_t rctx = cnn_net_ctx(rn, train, 1, 0, 0);
        rl->ops->forward(rl, &rctx, in.n, r->y, r->y);
        rl->ops->backward(rl, &rctx, in.n, r->y, r->y, dy, g);
        cnn_net_free(rn);
    }
    cnn_net_zero_grad(net);
    l->ops->backward(l, &ctx, in.n, net->act[0], r->y, g, r->dx);
    memcpy(r->dp, l->grads, sizeof(float) * r->np);
    free(g);
    cnn_net_free(net);
}

static void same_conv_run(const char *what, const run_t *a, const run_t *b)
{
    if (memcmp(a->y, b->y, sizeof(float) * a->nout) ||
        memcmp(a->dx, b->dx, sizeof(float) * a->nin) ||
        memcmp(a->dp, b->dp, sizeof(float) * a->np))
        fail_msg("conv %s: not the same to the bit", what);
}

/* relu(conv(x)) with relu_out: the same bits as the conv and a relu
 * layer, on 1 and 2 threads, and against the double reference (conv's,
 * clamped; its backward pass given dy where the output was > 0), with
 * outputs on both sides of 0. */
static void check_conv_relu_out(cnn_layer_spec_t s, cnn_shape_t in, int algo)
{
    cnn_net_t *probe = NULL;
    cnn_conv_set_algo(algo);
    assert_int_equal(cnn_net_create(&s, 1, in, 1, &probe), CNN_OK);
    cnn_conv_set_algo(CNN_CONV_AUTO);
    const cnn_shape_t out = probe->layers[0].out;
    const size_t np = probe->layers[0].sz.params;
    cnn_net_free(probe);
    const size_t nin = (size_t)in.n * cnn_shape_image(in);
    const size_t nout = (size_t)in.n * cnn_shape_image(out);
    uint64_t seed = 77 ^ nin ^ (np << 16);
    float *x = malloc(sizeof(float) * nin), *p = malloc(sizeof(float) * np);
    float *dy = malloc(sizeof(float) * nout);
    for (size_t i = 0; i < nin; i++) x[i] = (float)tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < np; i++) p[i] = (float)tu_uniform(&seed, -0.3, 0.3);
    for (size_t i = 0; i < nout; i++) dy[i] = (float)tu_uniform(&seed, -1, 1);
    for (int train = 0; train < 2; train++) {
        run_t f, two, f2;
        conv_relu_run(s, in, algo, 1, train, 1, x, p, dy, &f);
        conv_relu_run(s, in, algo, 0, train, 1, x, p, dy, &two);
        conv_relu_run(s, in, algo, 1, train, 2, x, p, dy, &f2);
        same_conv_run("relu_out vs conv, relu", &f, &two);
        same_conv_run("relu_out, 2 threads vs 1", &f2, &f);
        /* the reference */
        double *xd = malloc(sizeof(double) * nin), *pd = malloc(sizeof(double) * np);
        double *yd = malloc(sizeof(double) * nout), *dyd = malloc(sizeof(double) * nout);
        double *dxd = malloc(sizeof(double) * nin), *dpd = calloc(np, sizeof(double));
        for (size_t i = 0; i < nin; i++) xd[i] = x[i];
        for (size_t i = 0; i < np; i++) pd[i] = p[i];
        const cnn_ref_args_t a = {.spec = &s, .in = in, .out = out, .x = xd, .params = pd};
        cnn_conv_ops.reference(&a, yd);
        size_t zeros = 0;
        for (size_t i = 0; i < nout; i++) {
            dyd[i] = yd[i] > 0 ? dy[i] : 0.0;
            yd[i] = yd[i] > 0 ? yd[i] : 0.0;
            zeros += f.y[i] == 0.0f;
        }
        assert_true(zeros > nout / 10 && zeros < nout * 9 / 10);
        cnn_conv_ops.reference_backward(&a, yd, dyd, dxd, dpd);
        TU_ASSERT_CLOSE("conv relu_out forward", f.y, yd, nout, FWD_ATOL, FWD_RTOL);
        TU_ASSERT_CLOSE("conv relu_out input gradient", f.dx, dxd, nin, GRAD_ATOL, GRAD_RTOL);
        TU_ASSERT_CLOSE("conv relu_out parameter gradients", f.dp, dpd, np, GRAD_ATOL,
                        GRAD_RTOL);
        free(xd);
        free(pd);
        free(yd);
        free(dyd);
        free(dxd);
        free(dpd);
        run_free(&f);
        run_free(&two);
        run_free(&f2);
    }
    free(x);
    free(p);
    free(dy);
}

/* 1 where the net may fold a ReLU into the conv: its engine runs one */
static int conv_takes_relu(cnn_layer_spec_t s, cnn_shape_t in)
{
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(&s, 1, in, 1, &net), CNN_OK);
    const int can = !net->layers[0].sz.no_relu_out;
    cnn_net_free(net);
    return can;
}

/* Every engine that runs the ReLU: the blocked kernels' columns (5x5 on
 * 3 channels, as cifar-3layer's conv1; 6 filters, whose product goes to
 * the BLAS; a grey 3x3, whose columns the layer keeps), Winograd F(2x2),
 * F(4x4) (rows of 4 tiles, two to a vector; a cropped 13x13; two images
 * to a vector on 7x7, with an odd one left over), F(2x2, 5x5). Then
 * batches of fewer images than planned, and of several chunks:
 * Winograd's (21 images, chunks of at most 16), and the blocked kernels'
 * backward pass with dW slots for one image at a time. The other engines
 * (the BLAS's columns, 1x1, stride 2) do not take it. */
static void test_conv_relu_out(void **state)
{
    (void)state;
    assert_int_equal(cnn_conv_ops.relu_out, 1);
    check_conv_relu_out(mk("conv", 8, 5, 5, 1, 2), sh(3, 3, 12, 12), CNN_CONV_AUTO);
    check_conv_relu_out(mk("conv", 6, 5, 5, 1, 2), sh(2, 3, 9, 11), CNN_CONV_AUTO);
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(3, 1, 10, 10), CNN_CONV_AUTO);
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(3, 8, 12, 12), CNN_CONV_WINOGRAD);
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(3, 8, 16, 16), CNN_CONV_WINOGRAD4);
    check_conv_relu_out(mk("conv", 12, 3, 3, 1, 1), sh(2, 8, 13, 13), CNN_CONV_WINOGRAD4);
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(3, 8, 7, 7), CNN_CONV_WINOGRAD4);
    /* F(4x4) on tile rows of 5-8 tiles, two rows a vector in 16 lanes:
     * 28x28 (7 rows of 7 tiles that cover the output, which goes straight
     * to y; the last row alone), 18x20 (cropped: through the plane) */
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(2, 8, 28, 28), CNN_CONV_WINOGRAD4);
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(2, 8, 18, 20), CNN_CONV_WINOGRAD4);
    check_conv_relu_out(mk("conv", 8, 5, 5, 1, 2), sh(3, 4, 12, 18), CNN_CONV_WINOGRAD25);
    check_conv_relu_out(mk("conv", 8, 5, 5, 1, 2), sh(3, 3, 12, 12), CNN_CONV_IM2COL);
    relu_plan_n = 7; /* 3 of 7 images */
    check_conv_relu_out(mk("conv", 8, 5, 5, 1, 2), sh(3, 3, 12, 12), CNN_CONV_AUTO);
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(3, 8, 16, 16), CNN_CONV_WINOGRAD4);
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(3, 8, 7, 7), CNN_CONV_WINOGRAD4);
    relu_plan_n = 0;
    check_conv_relu_out(mk("conv", 8, 3, 3, 1, 1), sh(21, 4, 8, 8), CNN_CONV_WINOGRAD);
    cnn_conv_set_chunk_floats(1000); /* under an image's dW slot, 8 x 76 */
    check_conv_relu_out(mk("conv", 8, 5, 5, 1, 2), sh(5, 3, 12, 12), CNN_CONV_AUTO);
    cnn_conv_set_chunk_floats(0);
    assert_true(conv_takes_relu(mk("conv", 16, 3, 3, 1, 1), sh(2, 16, 14, 14)));
    assert_true(conv_takes_relu(mk("conv", 8, 5, 5, 1, 2), sh(2, 4, 12, 12))); /* F(2x2, 5x5) */
    assert_false(conv_takes_relu(mk("conv", 4, 5, 5, 1, 2), sh(2, 4, 12, 12))); /* BLAS */
    assert_false(conv_takes_relu(mk("conv", 8, 1, 1, 1, 0), sh(2, 4, 6, 6)));
    assert_false(conv_takes_relu(mk("conv", 16, 3, 3, 2, 1), sh(2, 16, 8, 8)));
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
    run_t d = run_layer(&s, in, 1, 3, x, p, st, dy); /* more threads than cores */
    cnn_conv_set_algo(CNN_CONV_AUTO);
    assert_memory_equal(b.y, c.y, sizeof(float) * nout);
    assert_memory_equal(b.dx, c.dx, sizeof(float) * nin);
    assert_memory_equal(b.dp, c.dp, sizeof(float) * np);
    assert_memory_equal(d.y, c.y, sizeof(float) * nout);
    assert_memory_equal(d.dx, c.dx, sizeof(float) * nin);
    assert_memory_equal(d.dp, c.dp, sizeof(float) * np);
    run_free(&d);
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

/* im2col + BLAS on 1, 2 and 3 threads, bit for bit: dW split by its
 * columns (K < C KH KW) and by its rows. */
static void test_conv_im2col_threads(void **state)
{
    (void)state;
    compare_engines(mk("conv", 5, 3, 3, 1, 1), sh(4, 9, 6, 6), CNN_CONV_IM2COL);
    compare_engines(mk("conv", 96, 3, 3, 1, 1), sh(3, 9, 7, 5), CNN_CONV_IM2COL);
    compare_engines(mk("conv", 40, 5, 5, 2, 2), sh(3, 7, 11, 9), CNN_CONV_IM2COL);
}

static void test_conv_1x1_vs_im2col(void **state)
{
    (void)state;
    compare_engines(mk("conv", 32, 1, 1, 2, 0), sh(5, 16, 32, 32), CNN_CONV_AUTO);
    compare_engines(mk("conv", 64, 1, 1, 2, 0), sh(5, 32, 16, 16), CNN_CONV_AUTO);
    compare_engines(mk("conv", 64, 1, 1, 1, 0), sh(3, 96, 15, 15), CNN_CONV_AUTO);
    /* and ResNet's 3x3 stride-2 layers (the stride-2 engine) */
    compare_engines(mk("conv", 32, 3, 3, 2, 1), sh(3, 16, 32, 32), CNN_CONV_AUTO);
    compare_engines(mk("conv", 64, 3, 3, 2, 1), sh(3, 32, 7, 7), CNN_CONV_AUTO);
}

/* The stride-2 engine: chosen for 3x3 stride-2 layers of more than 80
 * column rows (C >= 9), forced on the others; checked three ways on odd
 * and even sizes (7x7, 15x15, 8x6), pads 0-2, channel and filter counts
 * that are not multiples of 4 or 8, batches of 1 and 3 (a group of
 * images not full), eval mode and one slot per chunk. */
static void test_conv_stride2(void **state)
{
    (void)state;
    cnn_net_t *net = NULL;
    cnn_layer_spec_t s = mk("conv", 5, 3, 3, 2, 1);
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 9, 7, 7), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, CNN_CONV_STRIDE2);
    assert_int_equal(net->layers[0].sz.cache, 0); /* nothing kept */
    cnn_net_free(net);
    assert_int_equal(cnn_net_create(&s, 1, sh(3, 8, 7, 7), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0); /* 72 rows: the blocked kernels */
    cnn_net_free(net);
    check_layer(s, sh(3, 9, 7, 7), 1);
    check_layer(mk("conv", 3, 3, 3, 2, 0), sh(1, 12, 7, 7), 1);
    check_layer(mk("conv", 4, 3, 3, 2, 1), sh(2, 17, 7, 7), 1); /* dW by the blocked kernel, */
    check_layer(mk("conv", 6, 3, 3, 2, 1), sh(2, 16, 5, 5), 1); /* as with 9-16 channels */
    cnn_conv_set_algo(CNN_CONV_STRIDE2);
    cnn_layer_spec_t s1 = mk("conv", 8, 3, 3, 1, 1), k5 = mk("conv", 4, 5, 5, 2, 1);
    assert_int_equal(cnn_net_create(&s1, 1, sh(2, 8, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0); /* stride 1: im2col */
    cnn_net_free(net);
    assert_int_equal(cnn_net_create(&k5, 1, sh(2, 8, 6, 6), 1, &net), CNN_OK);
    assert_int_equal(net->layers[0].sz.variant, 0); /* 5x5: im2col */
    cnn_net_free(net);
    check_layer(s, sh(3, 3, 7, 7), 1); /* forced on 2-8 channels: dW by the BLAS */
    check_layer(s, sh(1, 5, 15, 15), 1);
    check_layer(mk("conv", 6, 3, 3, 2, 0), sh(3, 2, 15, 15), 1);
    check_layer(mk("conv", 4, 3, 3, 2, 0), sh(1, 5, 7, 7), 1);
    check_layer(mk("conv", 8, 3, 3, 2, 1), sh(2, 3, 8, 6), 1);
    check_layer(mk("conv", 3, 3, 3, 2, 2), sh(2, 3, 6, 7), 1);
    check_layer(mk("conv", 4, 3, 3, 2, 1), sh(2, 2, 3, 2), 1); /* 2x1 outputs */
    check_layer(s, sh(3, 3, 7, 7), 0);
    cnn_conv_set_chunk_floats(1); /* one slot a chunk */
    check_layer(s, sh(3, 3, 7, 7), 1);
    cnn_conv_set_chunk_floats(0);
    cnn_conv_set_algo(CNN_CONV_AUTO);
}

/* The stride-2 engine against im2col at ResNet's sizes and on several
 * groups of images (16, 16 and 8 of 7x7 outputs; 2, 2 and 1 of 16x16),
 * one group and one slot per chunk; 1 and 2 threads bit for bit. */
static void test_conv_stride2_vs_im2col(void **state)
{
    (void)state;
    compare_engines(mk("conv", 32, 3, 3, 2, 1), sh(4, 16, 28, 28), CNN_CONV_AUTO);
    compare_engines(mk("conv", 64, 3, 3, 2, 1), sh(4, 32, 14, 14), CNN_CONV_AUTO);
    compare_engines(mk("conv", 6, 3, 3, 2, 0), sh(40, 12, 15, 15), CNN_CONV_STRIDE2);
    compare_engines(mk("conv", 32, 3, 3, 2, 1), sh(5, 16, 32, 32), CNN_CONV_STRIDE2);
    cnn_conv_set_chunk_floats(1);
    compare_engines(mk("conv", 6, 3, 3, 2, 0), sh(40, 12, 15, 15), CNN_CONV_STRIDE2);
    cnn_conv_set_chunk_floats(0);
}

static void test_relu(void **state)
{
    check_layer(mk("relu", 0, 0, 0, 0, 0), sh(2, 3, 4, 5), 1);
    check_layer(mk("relu", 0, 0, 0, 0, 0), sh(1, 7, 1, 1), 0);
}

/* ---- the activations ---- */

/* A layer of type `type` with its keys at their defaults, then key `key`
 * (if not NULL) set to `value` as the config would spell it. */
static cnn_layer_spec_t act_spec(const char *type, const char *key, const char *value)
{
    cnn_layer_spec_t s = mk(type, 0, 0, 0, 0, 0);
    const cnn_layer_ops_t *t = cnn_layer_find(type);
    assert_non_null(t);
    for (int j = 0; j < t->nkeys; j++)
        assert_int_equal(cnn_config_layer_default(&s, &t->keys[j]), CNN_OK);
    if (key && cnn_config_layer_set(&s, cnn_layer_key(t, key), value, "test") != CNN_OK)
        fail_msg("%s %s = %s: %s", type, key, value, cnn_error_message());
    return s;
}

/* Every type and setting the activations have. */
static const struct {
    const char *type, *key, *value;
} act_cases[] = {
    {"relu", NULL, NULL},           {"sigmoid", NULL, NULL},
    {"tanh", NULL, NULL},           {"leaky_relu", NULL, NULL},
    {"leaky_relu", "slope", "0.2"}, {"elu", NULL, NULL},
    {"elu", "alpha", "0.5"},        {"elu", "alpha", "2.5"},
    {"gelu", NULL, NULL},           {"gelu", "approximate", "tanh"},
};
#define NACT (sizeof act_cases / sizeof act_cases[0])

/* Over a wide range of inputs, kept 0.05 away from the kinks at 0: the
 * forward pass against the reference, the first 400 input gradients
 * against finite differences, and 2 threads against 1, bit for bit, on
 * three spans of values that the threads share out. */
static void check_activation_wide(const cnn_layer_spec_t *s)
{
    const cnn_shape_t in = sh(2, 3, 37, 40);
    const size_t nin = (size_t)in.n * cnn_shape_image(in);
    uint64_t seed = 77;
    double *x = malloc(sizeof(double) * nin), *r = malloc(sizeof(double) * nin);
    double *yref = malloc(sizeof(double) * nin);
    for (size_t i = 0; i < nin; i++) {
        const double v = tu_uniform(&seed, -8, 8);
        x[i] = v < 0 ? v - 0.05 : v + 0.05;
        r[i] = tu_uniform(&seed, -1, 1);
    }
    run_t a = run_layer(s, in, 1, 1, x, NULL, NULL, r);
    run_t b = run_layer(s, in, 1, 2, x, NULL, NULL, r);
    naive_forward(s, in, in, x, NULL, NULL, NULL, 1, yref);
    TU_ASSERT_CLOSE(s->type, a.y, yref, nin, FWD_ATOL, FWD_RTOL);
    check_fd("input", s, in, in, x, NULL, NULL, NULL, 1, r, 0, 400, a.dx);
    assert_memory_equal(a.y, b.y, sizeof(float) * nin);
    assert_memory_equal(a.dx, b.dx, sizeof(float) * nin);
    run_free(&a);
    run_free(&b);
    free(x);
    free(r);
    free(yref);
}

/* A ReLU after the layer runs in place over its output; the layer's
 * backward pass must give the same dx from the ReLU's max(y, 0). */
static void check_relu_after(const cnn_layer_spec_t *s)
{
    cnn_layer_spec_t two[2] = {*s, mk("relu", 0, 0, 0, 0, 0)};
    const cnn_shape_t in = sh(3, 2, 5, 7);
    const size_t nin = (size_t)in.n * cnn_shape_image(in);
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(two, 2, in, 1, &net), CNN_OK);
    assert_ptr_equal(net->act[2], net->act[1]);
    cnn_layer_t *l = &net->layers[0];
    uint64_t seed = 3;
    float *y = malloc(sizeof(float) * nin), *dy = malloc(sizeof(float) * nin);
    float *dx = malloc(sizeof(float) * nin), *dx_relu = malloc(sizeof(float) * nin);
    for (size_t i = 0; i < nin; i++) {
        net->act[0][i] = (float)tu_uniform(&seed, -4, 4);
        dy[i] = (float)tu_uniform(&seed, -1, 1);
    }
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    l->ops->forward(l, &ctx, in.n, net->act[0], y);
    l->ops->backward(l, &ctx, in.n, net->act[0], y, dy, dx);
    for (size_t i = 0; i < nin; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    l->ops->backward(l, &ctx, in.n, net->act[0], y, dy, dx_relu);
    if (memcmp(dx, dx_relu, sizeof(float) * nin) != 0)
        fail_msg("%s: backward reads the output a ReLU after it overwrites", s->type);
    free(y);
    free(dy);
    free(dx);
    free(dx_relu);
    cnn_net_free(net);
}

static void test_activations(void **state)
{
    for (size_t k = 0; k < NACT; k++) {
        const cnn_layer_spec_t s = act_spec(act_cases[k].type, act_cases[k].key,
                                            act_cases[k].value);
        check_layer(s, sh(2, 3, 4, 5), 1);
        check_layer(s, sh(1, 7, 1, 1), 0);
        check_activation_wide(&s);
        check_relu_after(&s);
        /* only relu runs in place */
        assert_int_equal(cnn_layer_find(s.type)->in_place, !strcmp(s.type, "relu"));
    }
    /* the keys' defaults and ranges */
    assert_true(act_spec("leaky_relu", NULL, NULL).slope == 0.01f);
    assert_true(act_spec("elu", NULL, NULL).alpha == 1.0f);
    assert_int_equal(act_spec("gelu", NULL, NULL).approximate, 0);
    assert_int_equal(act_spec("gelu", "approximate", "tanh").approximate, 1);
    assert_true(act_spec("leaky_relu", "slope", "0").slope == 0.0f);
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

/* ---- pooling options: padding, ceil mode, the divisor, gap's sum ---- */

static cnn_layer_spec_t pool_spec(const char *type, int kh, int kw, int stride, int pad,
                                  int ceil_mode, int count_pad)
{
    cnn_layer_spec_t s = mk(type, 0, kh, kw, stride, pad);
    s.ceil_mode = ceil_mode;
    s.count_pad = count_pad;
    return s;
}

/* The output (h, w) of a pool on a (1,1,h,w) input, PyTorch's rule. */
static void check_pool_out(cnn_layer_spec_t s, int h, int w, int oh, int ow)
{
    cnn_net_t *net = NULL;
    if (cnn_net_create(&s, 1, sh(1, 1, h, w), 1, &net) != CNN_OK)
        fail_msg("create %s: %s", s.name, cnn_error_message());
    if (net->output.h != oh || net->output.w != ow)
        fail_msg("%s %dx%d stride %d pad %d ceil %d on %dx%d: output %dx%d, want %dx%d",
                 s.type, s.kh, s.kw, s.stride, s.pad, s.ceil_mode, h, w, net->output.h,
                 net->output.w, oh, ow);
    cnn_net_free(net);
}

/* Forward and input gradient of 1 and 2 threads agree to the bit. */
static void check_threads_bitwise(cnn_layer_spec_t s, cnn_shape_t in)
{
    cnn_net_t *probe = NULL;
    if (cnn_net_create(&s, 1, in, 1, &probe) != CNN_OK)
        fail_msg("create %s: %s", s.name, cnn_error_message());
    const size_t nin = (size_t)in.n * cnn_shape_image(in);
    const size_t nout = (size_t)in.n * cnn_shape_image(probe->output);
    cnn_net_free(probe);
    uint64_t seed = 0x51ab5eedULL ^ nin;
    double *x = malloc(sizeof(double) * nin), *dy = calloc(nout, sizeof(double)), none = 0;
    for (size_t i = 0; i < nin; i++) x[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < nout; i++) dy[i] = tu_uniform(&seed, -1, 1);
    run_t a = run_layer(&s, in, 1, 1, x, &none, &none, dy);
    run_t b = run_layer(&s, in, 1, 2, x, &none, &none, dy);
    if (memcmp(a.y, b.y, sizeof(float) * nout) || memcmp(a.dx, b.dx, sizeof(float) * nin))
        fail_msg("%s: 1 and 2 threads differ", s.type);
    run_free(&a);
    run_free(&b);
    free(x);
    free(dy);
}

/* The three-way check and the bitwise thread check. */
static void check_pool(cnn_layer_spec_t s, cnn_shape_t in)
{
    check_layer(s, in, 1);
    check_threads_bitwise(s, in);
}

static void test_pool_out_size(void **state)
{
    check_pool_out(pool_spec("maxpool", 2, 2, 2, 0, 0, 0), 5, 7, 2, 3); /* floor */
    check_pool_out(pool_spec("maxpool", 2, 2, 2, 0, 1, 0), 5, 7, 3, 4); /* ceil */
    check_pool_out(pool_spec("maxpool", 2, 2, 2, 0, 1, 0), 4, 6, 2, 3); /* ceil, exact */
    check_pool_out(pool_spec("avgpool", 3, 3, 2, 1, 0, 0), 6, 7, 3, 4);
    check_pool_out(pool_spec("avgpool", 3, 3, 2, 1, 1, 0), 6, 7, 4, 4);
    /* the last window would start at or past H + pad: dropped */
    check_pool_out(pool_spec("maxpool", 1, 1, 3, 0, 1, 0), 5, 7, 2, 3);
    check_pool_out(pool_spec("avgpool", 3, 3, 4, 1, 1, 0), 7, 8, 2, 3);
    check_pool_out(pool_spec("maxpool", 2, 4, 3, 1, 1, 0), 5, 5, 2, 2);
}

static void test_maxpool_options(void **state)
{
    check_pool(pool_spec("maxpool", 2, 2, 2, 0, 1, 0), sh(2, 3, 5, 7));  /* partial edge */
    check_pool(pool_spec("maxpool", 2, 2, 2, 0, 1, 0), sh(1, 2, 17, 19)); /* 8-wide rows */
    check_pool(pool_spec("maxpool", 3, 3, 2, 1, 0, 0), sh(1, 2, 7, 6));  /* padding */
    check_pool(pool_spec("maxpool", 3, 3, 2, 1, 1, 0), sh(2, 2, 6, 7));  /* both */
    check_pool(pool_spec("maxpool", 2, 3, 3, 1, 1, 0), sh(1, 3, 7, 8));  /* stride != size */
    check_pool(pool_spec("maxpool", 2, 2, 1, 1, 1, 0), sh(1, 2, 3, 4));  /* overlapping */
    /* today's defaults: the 2x2 kernel, and the general loops */
    check_pool(pool_spec("maxpool", 2, 2, 2, 0, 0, 0), sh(2, 3, 6, 10));
    check_pool(pool_spec("maxpool", 3, 3, 3, 0, 1, 0), sh(1, 2, 9, 9));
}

static void test_avgpool_options(void **state)
{
    for (int cp = 0; cp <= 1; cp++) {
        check_pool(pool_spec("avgpool", 2, 2, 2, 0, 1, cp), sh(2, 3, 5, 7));
        check_pool(pool_spec("avgpool", 3, 3, 2, 1, 0, cp), sh(1, 2, 7, 6));
        check_pool(pool_spec("avgpool", 3, 3, 2, 1, 1, cp), sh(2, 2, 6, 7));
        check_pool(pool_spec("avgpool", 2, 3, 3, 1, 1, cp), sh(1, 3, 7, 8));
        check_pool(pool_spec("avgpool", 3, 2, 1, 1, 0, cp), sh(1, 2, 5, 4));
    }
}

/* The divisor on a plane of ones: 1 everywhere without count_pad; with
 * it, the share of the window inside the padded input that is input. */
static void test_avgpool_divisor(void **state)
{
    /* 3x3 window, stride 2, pad 1 on 4x4 with ceil: out 3x3 (PyTorch) */
    cnn_layer_spec_t s = pool_spec("avgpool", 3, 3, 2, 1, 1, 1);
    double ones[16], y[9];
    for (int i = 0; i < 16; i++) ones[i] = 1;
    /* rows: [-1,2) 2 of 3 inputs, [1,4) 3 of 3, [3,5) clipped to the
     * padded input (ends at 5): 1 of 2 */
    const double row[3] = {2.0 / 3, 1, 0.5};
    naive_forward(&s, sh(1, 1, 4, 4), sh(1, 1, 3, 3), ones, NULL, NULL, NULL, 1, y);
    for (int i = 0; i < 9; i++) assert_true(fabs(y[i] - row[i / 3] * row[i % 3]) < 1e-15);
    s.count_pad = 0;
    naive_forward(&s, sh(1, 1, 4, 4), sh(1, 1, 3, 3), ones, NULL, NULL, NULL, 1, y);
    for (int i = 0; i < 9; i++) assert_true(y[i] == 1);
    check_pool(s, sh(1, 1, 4, 4));
}

static void test_gap_sum(void **state)
{
    cnn_layer_spec_t s = mk("gap", 0, 0, 0, 0, 0);
    s.mode = 1;
    check_pool(s, sh(2, 3, 4, 5));
    check_pool(s, sh(1, 2, 1, 1));
    double x[6] = {1, 2, 3, 4, 5, 6}, y[2];
    naive_forward(&s, sh(1, 2, 1, 3), sh(1, 2, 1, 1), x, NULL, NULL, NULL, 1, y);
    assert_true(y[0] == 6 && y[1] == 15);
}

/* A ReLU before a max pool runs folded into it (forward_after_relu,
 * backward_after_relu): with padding and partial windows, the same y and
 * dx as the two layers one after the other, to the bit. */
static void check_relu_fold(cnn_layer_spec_t pool, cnn_shape_t in)
{
    cnn_layer_spec_t two[2] = {mk("relu", 0, 0, 0, 0, 0), pool};
    cnn_net_t *net = NULL, *one = NULL;
    assert_int_equal(cnn_net_create(two, 2, in, 1, &net), CNN_OK);
    assert_int_equal(cnn_net_create(&pool, 1, in, 1, &one), CNN_OK);
    assert_true(cnn_net_relu_folded(net, 0));
    const size_t nin = (size_t)in.n * cnn_shape_image(in);
    const size_t nout = (size_t)in.n * cnn_shape_image(net->output);
    float *dy = malloc(sizeof(float) * nout), *dx = malloc(sizeof(float) * nin);
    float *dx1 = malloc(sizeof(float) * nin);
    uint64_t seed = 77;
    for (size_t i = 0; i < nin; i++) {
        net->act[0][i] = (float)tu_uniform(&seed, -1, 0.5); /* windows of negatives too */
        one->act[0][i] = net->act[0][i] > 0.0f ? net->act[0][i] : 0.0f;
    }
    for (size_t i = 0; i < nout; i++) dy[i] = (float)tu_uniform(&seed, -1, 1);
    const cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0), ctx1 = cnn_net_ctx(one, 1, 1, 0, 0);
    const float *y = cnn_net_forward(net, &ctx, in.n), *y1 = cnn_net_forward(one, &ctx1, in.n);
    assert_memory_equal(y, y1, sizeof(float) * nout);
    cnn_layer_t *l = &net->layers[1], *l1 = &one->layers[0];
    l->ops->backward_after_relu(l, &ctx, in.n, net->act[1], net->act[2], dy, dx);
    l1->ops->backward(l1, &ctx1, in.n, one->act[0], one->act[1], dy, dx1);
    for (size_t i = 0; i < nin; i++) dx1[i] = net->act[0][i] > 0.0f ? dx1[i] : 0.0f;
    assert_memory_equal(dx, dx1, sizeof(float) * nin);
    free(dy);
    free(dx);
    free(dx1);
    cnn_net_free(net);
    cnn_net_free(one);
}

static void test_maxpool_relu_fold(void **state)
{
    check_relu_fold(pool_spec("maxpool", 3, 3, 2, 1, 1, 0), sh(2, 3, 6, 7));
    check_relu_fold(pool_spec("maxpool", 2, 2, 2, 0, 1, 0), sh(2, 2, 5, 5));
    check_relu_fold(pool_spec("maxpool", 2, 2, 2, 1, 0, 0), sh(1, 2, 4, 6));
    check_relu_fold(pool_spec("maxpool", 2, 2, 2, 0, 0, 0), sh(2, 2, 8, 8)); /* 2x2 kernel */
}

/* pad above half the window, and the keys as the config spells them */
static void test_pool_errors(void **state)
{
    cnn_net_t *net = NULL;
    cnn_layer_spec_t s = pool_spec("maxpool", 3, 3, 1, 2, 0, 0);
    snprintf(s.name, sizeof s.name, "pool7");
    assert_int_equal(cnn_net_create(&s, 1, sh(1, 1, 8, 8), 1, &net), CNN_ECONFIG);
    assert_null(net);
    assert_non_null(strstr(cnn_error_message(), "pool7"));
    assert_non_null(strstr(cnn_error_message(), "pad 2"));
    s = pool_spec("avgpool", 2, 4, 2, 2, 1, 1); /* half of 4 but more than half of 2 */
    assert_int_equal(cnn_net_create(&s, 1, sh(1, 1, 8, 8), 1, &net), CNN_ECONFIG);
    s.kh = 4;
    assert_int_equal(cnn_net_create(&s, 1, sh(1, 1, 8, 8), 1, &net), CNN_OK);
    cnn_net_free(net);

    const cnn_layer_ops_t *mp = cnn_layer_find("maxpool"), *ap = cnn_layer_find("avgpool");
    const cnn_layer_ops_t *gap = cnn_layer_find("gap");
    assert_null(cnn_layer_key(mp, "count_pad"));
    assert_non_null(cnn_layer_key(ap, "count_pad"));
    s = mk("avgpool", 0, 2, 2, 2, 0);
    assert_int_equal(cnn_config_layer_set(&s, cnn_layer_key(ap, "ceil_mode"), "true", "t"), CNN_OK);
    assert_int_equal(cnn_config_layer_set(&s, cnn_layer_key(ap, "count_pad"), "yes", "t"), CNN_OK);
    assert_int_equal(s.ceil_mode + s.count_pad, 2);
    assert_int_equal(cnn_config_layer_set(&s, cnn_layer_key(ap, "pad"), "-1", "t"), CNN_ECONFIG);
    s = mk("gap", 0, 0, 0, 0, 0);
    assert_int_equal(cnn_config_layer_set(&s, cnn_layer_key(gap, "mode"), "sum", "t"), CNN_OK);
    assert_int_equal(s.mode, 1);
    assert_int_equal(cnn_config_layer_set(&s, cnn_layer_key(gap, "mode"), "max", "t"),
                     CNN_ECONFIG);
    /* defaults: today's layers */
    s = pool_spec("avgpool", 2, 2, 2, 9, 1, 1);
    for (int j = 2; j < ap->nkeys; j++)
        assert_int_equal(cnn_config_layer_default(&s, &ap->keys[j]), CNN_OK);
    assert_int_equal(s.pad + s.ceil_mode + s.count_pad, 0);
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

/* ---- synchronised batchnorm: two half batches, one whole batch ----- */

#define FAKE_MAX 64

/* A stand-in for the all-reduce over two ranks: each call records this
 * half's buffer (for the other half) and adds the other half's buffer of
 * the same pass, recorded when that half ran; with fail set it fails as
 * a broken all-reduce would, leaving garbage. */
typedef struct {
    double sent[FAKE_MAX];
    const double *peer; /* NULL: nothing to add */
    int calls, fail;
} fake_sum_t;

static cnn_status_t fake_sum(void *arg, double *buf, size_t n)
{
    fake_sum_t *f = arg;
    if (n > FAKE_MAX) fail_msg("fake_sum: %zu values", n);
    f->calls++;
    if (f->fail) {
        for (size_t i = 0; i < n; i++) buf[i] = NAN;
        return cnn_error_set(CNN_ECOMM, "fake all-reduce failed");
    }
    memcpy(f->sent, buf, sizeof(double) * n);
    if (f->peer)
        for (size_t i = 0; i < n; i++) buf[i] += f->peer[i];
    return CNN_OK;
}

/* A one-layer batchnorm net on `in`, with gamma, beta and running
 * statistics the same for every net of the test. */
static cnn_net_t *bn_net(int sync, cnn_shape_t in, int nthreads)
{
    cnn_layer_spec_t s = mk("batchnorm", 0, 0, 0, 0, 0);
    s.sync = sync;
    cnn_net_t *net = NULL;
    if (cnn_net_create(&s, 1, in, nthreads, &net) != CNN_OK)
        fail_msg("create batchnorm: %s", cnn_error_message());
    uint64_t seed = 99;
    for (int c = 0; c < in.c; c++) {
        net->params[c] = (float)tu_uniform(&seed, 0.5, 1.5);
        net->params[in.c + c] = (float)tu_uniform(&seed, -0.5, 0.5);
        net->state[c] = (float)tu_uniform(&seed, -0.2, 0.2);
        net->state[in.c + c] = (float)tu_uniform(&seed, 0.5, 2.0);
    }
    return net;
}

/* A training-mode context, with the fake reduction f if not NULL. */
static cnn_ctx_t bn_ctx(const cnn_net_t *net, fake_sum_t *f)
{
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    if (f) {
        ctx.allreduce_sum = fake_sum;
        ctx.allreduce_arg = f;
    }
    return ctx;
}

/* Forward over the n images x; the output stays in net->act[1]. */
static void bn_fwd(cnn_net_t *net, int n, const float *x, fake_sum_t *f)
{
    memcpy(net->act[0], x, sizeof(float) * (size_t)n * cnn_shape_image(net->input));
    const cnn_ctx_t ctx = bn_ctx(net, f);
    cnn_net_forward(net, &ctx, n);
}

/* Backward of the last forward: dx written, the gradients this pass's. */
static void bn_bwd(cnn_net_t *net, int n, const float *dy, float *dx, fake_sum_t *f)
{
    cnn_layer_t *l = &net->layers[0];
    const cnn_ctx_t ctx = bn_ctx(net, f);
    cnn_net_zero_grad(net);
    l->ops->backward(l, &ctx, n, net->act[0], net->act[1], dy, dx);
}

/* a (n floats) against b (n floats) within 1e-6 */
static void close_floats(const char *what, const float *a, const float *b, size_t n)
{
    double *d = malloc(sizeof(double) * (n + 1));
    for (size_t i = 0; i < n; i++) d[i] = b[i];
    TU_ASSERT_CLOSE(what, a, d, n, 1e-6, 1e-6);
    free(d);
}

/* Half batches of na and N - na images on two nets that sum through the
 * fake reduction, as two ranks: the whole batch's outputs, input
 * gradients, summed parameter gradients and running statistics within
 * 1e-6. Each pass runs b alone (recording its sums), then a with them,
 * then b again (from where it was) with a's. */
static void check_sync_halves(cnn_shape_t in, int na)
{
    const int N = in.n, nb = N - na;
    const size_t img = cnn_shape_image(in), C = (size_t)in.c, all = (size_t)N * img;
    float *x = malloc(sizeof(float) * all), *dy = malloc(sizeof(float) * all);
    float *dx = malloc(sizeof(float) * all), *dxw = malloc(sizeof(float) * all);
    float *y = malloc(sizeof(float) * all), *g = malloc(sizeof(float) * 2 * C);
    float *state0 = malloc(sizeof(float) * 2 * C);
    uint64_t seed = 7;
    for (size_t i = 0; i < all; i++) {
        x[i] = (float)tu_uniform(&seed, 0.5, 3.0); /* a mean away from 0 */
        dy[i] = (float)tu_uniform(&seed, -1, 1);
    }
    cnn_net_t *w = bn_net(0, in, 1), *a = bn_net(1, in, 2), *b = bn_net(1, in, 2);
    bn_fwd(w, N, x, NULL);
    bn_bwd(w, N, dy, dxw, NULL);

    fake_sum_t fa = {.peer = NULL}, fb = {.peer = NULL};
    const float *xb = x + (size_t)na * img, *dyb = dy + (size_t)na * img;
    memcpy(state0, b->state, sizeof(float) * 2 * C);
    bn_fwd(b, nb, xb, &fb);
    fa.peer = fb.sent;
    bn_fwd(a, na, x, &fa);
    memcpy(b->state, state0, sizeof(float) * 2 * C);
    fb.peer = fa.sent;
    bn_fwd(b, nb, xb, &fb);
    memcpy(y, a->act[1], sizeof(float) * (size_t)na * img);
    memcpy(y + (size_t)na * img, b->act[1], sizeof(float) * (size_t)nb * img);
    close_floats("sync forward, halves vs whole", y, w->act[1], all);
    close_floats("sync running statistics, first half vs whole", a->state, w->state, 2 * C);
    close_floats("sync running statistics, second half vs whole", b->state, w->state, 2 * C);

    fb.peer = NULL;
    bn_bwd(b, nb, dyb, dx + (size_t)na * img, &fb);
    fa.peer = fb.sent;
    bn_bwd(a, na, dy, dx, &fa);
    fb.peer = fa.sent;
    bn_bwd(b, nb, dyb, dx + (size_t)na * img, &fb);
    close_floats("sync input gradient, halves vs whole", dx, dxw, all);
    /* dgamma, dbeta: each half's own, the trainer's gradient sum adds them */
    for (size_t i = 0; i < 2 * C; i++) g[i] = a->grads[i] + b->grads[i];
    close_floats("sync parameter gradients, sum of halves vs whole", g, w->grads, 2 * C);
    assert_int_equal(fa.calls, 2);
    assert_int_equal(fb.calls, 4);

    /* a first layer's backward (no dx) sums nothing */
    bn_bwd(a, na, dy, NULL, &fa);
    assert_int_equal(fa.calls, 2);
    cnn_net_free(w);
    cnn_net_free(a);
    cnn_net_free(b);
    free(x);
    free(dy);
    free(dx);
    free(dxw);
    free(y);
    free(g);
    free(state0);
}

/* sync without a reduction hook is the per-rank layer, bit for bit; a
 * failed reduction leaves the layer with this rank's statistics */
static void check_sync_alone(cnn_shape_t in)
{
    const size_t img = cnn_shape_image(in), all = (size_t)in.n * img, C = (size_t)in.c;
    float *x = malloc(sizeof(float) * all), *dy = malloc(sizeof(float) * all);
    float *dx0 = malloc(sizeof(float) * all), *dx1 = malloc(sizeof(float) * all);
    uint64_t seed = 11;
    for (size_t i = 0; i < all; i++) {
        x[i] = (float)tu_uniform(&seed, -2, 2);
        dy[i] = (float)tu_uniform(&seed, -1, 1);
    }
    cnn_net_t *p = bn_net(0, in, 2), *s = bn_net(1, in, 2), *f = bn_net(1, in, 2);
    bn_fwd(p, in.n, x, NULL);
    bn_bwd(p, in.n, dy, dx0, NULL);
    bn_fwd(s, in.n, x, NULL);
    bn_bwd(s, in.n, dy, dx1, NULL);
    assert_memory_equal(p->act[1], s->act[1], sizeof(float) * all);
    assert_memory_equal(dx0, dx1, sizeof(float) * all);
    assert_memory_equal(p->grads, s->grads, sizeof(float) * 2 * C);
    assert_memory_equal(p->state, s->state, sizeof(float) * 2 * C);

    fake_sum_t broken = {.fail = 1};
    bn_fwd(f, in.n, x, &broken);
    bn_bwd(f, in.n, dy, dx1, &broken);
    assert_int_equal(broken.calls, 2);
    close_floats("forward after a failed sum", f->act[1], p->act[1], all);
    close_floats("input gradient after a failed sum", dx1, dx0, all);
    close_floats("running statistics after a failed sum", f->state, p->state, 2 * C);
    cnn_net_free(p);
    cnn_net_free(s);
    cnn_net_free(f);
    free(x);
    free(dy);
    free(dx0);
    free(dx1);
}

static void test_batchnorm_sync(void **state)
{
    check_sync_halves(sh(7, 3, 3, 2), 3);
    check_sync_halves(sh(8, 5, 1, 1), 4);
    check_sync_halves(sh(6, 2, 4, 4), 1);
    check_sync_alone(sh(5, 3, 2, 3));
    /* the key: false by default, sync = true sets it */
    const cnn_layer_key_t *k = cnn_layer_key(&cnn_batchnorm_ops, "sync");
    assert_non_null(k);
    assert_int_equal(k->kind, CNN_LKEY_BOOL);
    assert_string_equal(k->def, "false");
}

/* ---- batchnorm with its ReLU folded in (relu_out) ------------------- */

/* What one forward and backward pass of a batchnorm layer left: y, dx,
 * the parameter gradients and the running statistics. */
typedef struct {
    float *y, *dx, *grads, *state;
} bn_run_t;

static void bn_run_free(bn_run_t *r)
{
    free(r->y);
    free(r->dx);
    free(r->grads);
    free(r->state);
}

/* A batchnorm layer (bn_net's parameters) on x with the gradient dy at the
 * end, in training or test mode on nthreads: with relu_out set as given,
 * and with relu_layer a separate relu layer after it, run in place as the
 * net runs it. sync runs the synchronised path through a reduction that
 * adds nothing (one rank). The layers are called through their ops
 * tables, so that the net's own choice of fusion does not enter. */
static bn_run_t bn_relu_run(cnn_shape_t in, int sync, int relu_out, int relu_layer, int train,
                            int nthreads, const float *x, const float *dy)
{
    const size_t all = (size_t)in.n * cnn_shape_image(in), C = (size_t)in.c;
    cnn_net_t *net = bn_net(sync, in, nthreads);
    cnn_layer_t *l = &net->layers[0];
    l->relu_out = relu_out;
    fake_sum_t f = {.peer = NULL};
    cnn_ctx_t ctx = cnn_net_ctx(net, train, 1, 0, 0);
    if (sync) {
        ctx.allreduce_sum = fake_sum;
        ctx.allreduce_arg = &f;
    }
    bn_run_t r = {malloc(sizeof(float) * all), malloc(sizeof(float) * all),
                  malloc(sizeof(float) * 2 * C), malloc(sizeof(float) * 2 * C)};
    float *dyr = malloc(sizeof(float) * all);
    memcpy(net->act[0], x, sizeof(float) * all);
    l->ops->forward(l, &ctx, in.n, net->act[0], r.y);
    memcpy(dyr, dy, sizeof(float) * all);
    if (relu_layer) {
        cnn_layer_spec_t rs = mk("relu", 0, 0, 0, 0, 0);
        cnn_net_t *rn = NULL;
        assert_int_equal(cnn_net_create(&rs, 1, in, nthreads, &rn), CNN_OK);
        cnn_layer_t *rl = &rn->layers[0];
        const cnn_ctx_t rctx = cnn_net_ctx(rn, train, 1, 0, 0);
        rl->ops->forward(rl, &rctx, in.n, r.y, r.y);
        rl->ops->backward(rl, &rctx, in.n, r.y, r.y, dy, dyr);
        cnn_net_free(rn);
    }
    cnn_net_zero_grad(net);
    l->ops->backward(l, &ctx, in.n, net->act[0], r.y, dyr, r.dx);
    memcpy(r.grads, l->grads, sizeof(float) * 2 * C);
    memcpy(r.state, l->state, sizeof(float) * 2 * C);
    free(dyr);
    cnn_net_free(net);
    return r;
}

/* a and b the same to the bit */
static void same_run(const char *what, const bn_run_t *a, const bn_run_t *b, cnn_shape_t in)
{
    const size_t all = (size_t)in.n * cnn_shape_image(in), C = (size_t)in.c;
    if (memcmp(a->y, b->y, sizeof(float) * all) || memcmp(a->dx, b->dx, sizeof(float) * all) ||
        memcmp(a->grads, b->grads, sizeof(float) * 2 * C) ||
        memcmp(a->state, b->state, sizeof(float) * 2 * C))
        fail_msg("batchnorm %s on (%d,%d,%d,%d): not the same to the bit", what, in.n, in.c,
                 in.h, in.w);
}

/* relu(batchnorm(x)) and its gradients in double (bn_reference and
 * bn_reference_backward with dy taken where the output before the ReLU
 * was > 0), against run r. */
static void check_bn_relu_ref(const bn_run_t *r, cnn_shape_t in, int train, const float *x,
                              const float *dy)
{
    const size_t all = (size_t)in.n * cnn_shape_image(in), C = (size_t)in.c;
    cnn_net_t *net = bn_net(0, in, 1);
    double *xd = malloc(sizeof(double) * all), *dyd = malloc(sizeof(double) * all);
    double *y = malloc(sizeof(double) * all), *dx = malloc(sizeof(double) * all);
    double p[2 * FAKE_MAX], st[2 * FAKE_MAX], dp[2 * FAKE_MAX] = {0};
    assert_true(C <= FAKE_MAX);
    for (size_t i = 0; i < 2 * C; i++) p[i] = net->params[i], st[i] = net->state[i];
    for (size_t i = 0; i < all; i++) xd[i] = x[i];
    const cnn_ref_args_t a = {.spec = &net->layers[0].spec, .in = in, .out = in, .x = xd,
                              .params = p, .state = st, .train = train};
    cnn_batchnorm_ops.reference(&a, y);
    for (size_t i = 0; i < all; i++) dyd[i] = y[i] > 0 ? dy[i] : 0.0;
    cnn_batchnorm_ops.reference_backward(&a, y, dyd, dx, dp);
    for (size_t i = 0; i < all; i++) y[i] = y[i] > 0 ? y[i] : 0.0;
    TU_ASSERT_CLOSE("relu_out forward", r->y, y, all, FWD_ATOL, FWD_RTOL);
    TU_ASSERT_CLOSE("relu_out input gradient", r->dx, dx, all, GRAD_ATOL, GRAD_RTOL);
    TU_ASSERT_CLOSE("relu_out parameter gradients", r->grads, dp, 2 * C, GRAD_ATOL, GRAD_RTOL);
    size_t zeros = 0;
    for (size_t i = 0; i < all; i++) zeros += r->y[i] == 0.0f;
    assert_true(zeros > all / 10 && zeros < all * 9 / 10); /* both sides of the ReLU */
    cnn_net_free(net);
    free(xd);
    free(dyd);
    free(y);
    free(dx);
}

/* relu_out against the double reference, bit for bit the same as
 * batchnorm then a relu layer, and the same on 1 and 2 threads; in
 * training and test mode, on the plain and the synchronised path. */
static void check_bn_relu_out(cnn_shape_t in)
{
    const size_t all = (size_t)in.n * cnn_shape_image(in);
    float *x = malloc(sizeof(float) * all), *dy = malloc(sizeof(float) * all);
    uint64_t seed = 23 ^ all;
    for (size_t i = 0; i < all; i++) {
        x[i] = (float)tu_uniform(&seed, -2, 2);
        dy[i] = (float)tu_uniform(&seed, -1, 1);
    }
    for (int train = 0; train < 2; train++)
        for (int sync = 0; sync < 2; sync++) {
            bn_run_t f = bn_relu_run(in, sync, 1, 0, train, 1, x, dy);
            bn_run_t two = bn_relu_run(in, sync, 0, 1, train, 1, x, dy);
            bn_run_t f2 = bn_relu_run(in, sync, 1, 0, train, 2, x, dy);
            bn_run_t p1 = bn_relu_run(in, sync, 0, 0, train, 1, x, dy);
            bn_run_t p2 = bn_relu_run(in, sync, 0, 0, train, 2, x, dy);
            same_run("relu_out vs batchnorm, relu", &f, &two, in);
            same_run("relu_out, 2 threads vs 1", &f2, &f, in);
            same_run("2 threads vs 1", &p2, &p1, in);
            check_bn_relu_ref(&f, in, train, x, dy);
            bn_run_free(&f);
            bn_run_free(&two);
            bn_run_free(&f2);
            bn_run_free(&p1);
            bn_run_free(&p2);
        }
    free(x);
    free(dy);
}

static void test_batchnorm_relu_out(void **state)
{
    assert_int_equal(cnn_batchnorm_ops.relu_out, 1);
    check_bn_relu_out(sh(4, 3, 5, 7));  /* rows of 35: a partial lane block */
    check_bn_relu_out(sh(3, 5, 20, 30)); /* rows of 600: sums fold within a row */
    check_bn_relu_out(sh(9, 6, 1, 1));  /* dense outputs: rows of 1 */
    check_bn_relu_out(sh(5, 3, 2, 3));  /* rows shorter than a vector */
    check_bn_relu_out(sh(2, 4, 16, 16));
    /* the same sums over more terms than a row holds: finite differences */
    check_layer(mk("batchnorm", 0, 0, 0, 0, 0), sh(2, 2, 17, 33), 1);
    /* the cache keeps a mean and an inverse std per channel, no activation */
    cnn_net_t *net = bn_net(0, sh(8, 5, 12, 12), 1);
    assert_int_equal(net->layers[0].sz.cache, 2 * 5);
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

/* ---- merge layers: several inputs --------------------------------------- */

/* Forward and input gradients of merge layer `spec` on inputs of shapes
 * in[0..nin) with nthreads threads; y and dxs[k] are allocated here. */
static void run_merge(const cnn_layer_spec_t *spec, int nin, const cnn_shape_t *in,
                      int nthreads, double *const *x, const double *dy, float **y,
                      float **dxs)
{
    cnn_layer_t l = {.spec = *spec, .ops = cnn_layer_find(spec->type), .ninputs = nin};
    assert_non_null(l.ops);
    assert_int_equal(l.ops->shape_n(spec, nin, in, &l.out, &l.sz), CNN_OK);
    memcpy(l.ins, in, sizeof *in * (size_t)nin);
    l.in = in[0];
    const int n = in[0].n;
    const size_t nout = (size_t)n * cnn_shape_image(l.out);
    float *xf[CNN_LAYER_INPUTS_MAX];
    for (int k = 0; k < nin; k++) {
        const size_t m = (size_t)n * cnn_shape_image(in[k]);
        xf[k] = malloc(sizeof(float) * m);
        dxs[k] = malloc(sizeof(float) * m);
        for (size_t i = 0; i < m; i++) xf[k][i] = (float)x[k][i];
    }
    float *dyf = malloc(sizeof(float) * nout);
    for (size_t i = 0; i < nout; i++) dyf[i] = (float)dy[i];
    *y = malloc(sizeof(float) * nout);
    const cnn_ctx_t ctx = {.train = 1, .nthreads = nthreads};
    l.ops->forward_n(&l, &ctx, n, nin, (const float *const *)xf, *y);
    l.ops->backward_n(&l, &ctx, n, nin, (const float *const *)xf, *y, dyf, dxs);
    for (int k = 0; k < nin; k++) free(xf[k]);
    free(dyf);
}

/* sum(r * reference(xs)) */
static double merge_objective(const cnn_ref_args_t *a, const double *r, double *y)
{
    cnn_layer_find(a->spec->type)->reference(a, y);
    double f = 0;
    for (size_t i = 0; i < (size_t)a->out.n * cnn_shape_image(a->out); i++) f += r[i] * y[i];
    return f;
}

/* A merge layer three ways: forward against its reference, each input's
 * gradient against central differences, 1 vs 2 threads. */
static void check_merge(const char *type, int nin, const cnn_shape_t *in)
{
    cnn_layer_spec_t spec = {.ninputs = nin};
    snprintf(spec.name, sizeof spec.name, "%s_t", type);
    snprintf(spec.type, sizeof spec.type, "%s", type);
    for (int k = 0; k < nin; k++) snprintf(spec.inputs[k], CNN_NAME_MAX, "in%d", k);
    cnn_shape_t out;
    cnn_layer_sizes_t sz;
    assert_int_equal(cnn_layer_find(type)->shape_n(&spec, nin, in, &out, &sz), CNN_OK);
    const size_t nout = (size_t)out.n * cnn_shape_image(out);
    uint64_t seed = 77 + (uint64_t)nin;
    double *x[CNN_LAYER_INPUTS_MAX], *r = calloc(nout, sizeof(double));
    double *yref = malloc(sizeof(double) * nout);
    size_t m[CNN_LAYER_INPUTS_MAX];
    for (int k = 0; k < nin; k++) {
        m[k] = (size_t)in[k].n * cnn_shape_image(in[k]);
        x[k] = malloc(sizeof(double) * m[k]);
        for (size_t i = 0; i < m[k]; i++) x[k][i] = tu_uniform(&seed, -1, 1);
    }
    for (size_t i = 0; i < nout; i++) r[i] = tu_uniform(&seed, -1, 1);
    float *y1, *y2, *dx1[CNN_LAYER_INPUTS_MAX], *dx2[CNN_LAYER_INPUTS_MAX];
    run_merge(&spec, nin, in, 1, x, r, &y1, dx1);
    run_merge(&spec, nin, in, 2, x, r, &y2, dx2);
    const cnn_ref_args_t a = {.spec = &spec, .in = in[0], .out = out, .x = x[0], .nx = nin,
                              .xs = (const double *const *)x, .ins = in, .train = 1};
    cnn_layer_find(type)->reference(&a, yref);
    TU_ASSERT_CLOSE("merge forward", y1, yref, nout, FWD_ATOL, FWD_RTOL);
    for (size_t i = 0; i < nout; i++) yref[i] = y1[i];
    TU_ASSERT_CLOSE("merge forward, 2 threads vs 1", y2, yref, nout, 1e-6, 1e-6);
    for (int k = 0; k < nin; k++) {
        double *fd = malloc(sizeof(double) * m[k]);
        for (size_t i = 0; i < m[k]; i++) {
            const double keep = x[k][i];
            x[k][i] = keep + FD_STEP;
            const double fp = merge_objective(&a, r, yref);
            x[k][i] = keep - FD_STEP;
            const double fm = merge_objective(&a, r, yref);
            x[k][i] = keep;
            fd[i] = (fp - fm) / (2 * FD_STEP);
        }
        TU_ASSERT_CLOSE("merge input gradient", dx1[k], fd, m[k], GRAD_ATOL, GRAD_RTOL);
        for (size_t i = 0; i < m[k]; i++) fd[i] = dx1[k][i];
        TU_ASSERT_CLOSE("merge input gradient, 2 threads vs 1", dx2[k], fd, m[k], 1e-6, 1e-6);
        free(fd);
    }
    for (int k = 0; k < nin; k++) {
        free(x[k]);
        free(dx1[k]);
        free(dx2[k]);
    }
    free(y1);
    free(y2);
    free(r);
    free(yref);
}

static void test_add(void **state)
{
    (void)state;
    check_merge("add", 2, (cnn_shape_t[]){sh(2, 3, 4, 5), sh(2, 3, 4, 5)});
    check_merge("add", 4, (cnn_shape_t[]){sh(1, 2, 3, 3), sh(1, 2, 3, 3), sh(1, 2, 3, 3),
                                          sh(1, 2, 3, 3)});
    /* shapes must agree; the message names the layer and its inputs */
    cnn_layer_spec_t s = {.name = "sum", .type = "add", .ninputs = 2,
                          .inputs = {"conv_a", "conv_b"}};
    cnn_shape_t out;
    cnn_layer_sizes_t sz;
    assert_int_equal(cnn_add_ops.shape_n(&s, 2, (cnn_shape_t[]){sh(2, 3, 4, 4), sh(2, 4, 4, 4)},
                                         &out, &sz), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "sum"));
    assert_non_null(strstr(cnn_error_message(), "conv_a (2,3,4,4)"));
    assert_non_null(strstr(cnn_error_message(), "conv_b (2,4,4,4)"));
}

/* add with the ReLU after it folded in (relu_out): every input's
 * gradient that is asked for is dy where y > 0, else 0, with 2 and 3
 * inputs, any of them not asked for, on 1 and 2 threads. */
static void test_add_relu_out(void **state)
{
    (void)state;
    const cnn_shape_t s = sh(3, 2, 5, 7);
    const size_t m = (size_t)s.n * cnn_shape_image(s);
    cnn_layer_t l = {.ops = &cnn_add_ops, .in = s, .out = s, .relu_out = 1};
    float *y = malloc(sizeof(float) * m), *dy = malloc(sizeof(float) * m);
    float *dx[3];
    uint64_t seed = 5;
    for (size_t i = 0; i < m; i++) {
        y[i] = i % 5 == 0 ? 0.0f : (float)tu_uniform(&seed, -1, 1);
        dy[i] = (float)tu_uniform(&seed, -1, 1);
    }
    for (int k = 0; k < 3; k++) dx[k] = malloc(sizeof(float) * m);
    for (int nin = 2; nin <= 3; nin++)
        for (int skip = -1; skip < nin; skip++)
            for (int threads = 1; threads <= 2; threads++) {
                const cnn_ctx_t ctx = {.train = 1, .nthreads = threads};
                float *dxs[3];
                for (int k = 0; k < nin; k++) {
                    for (size_t i = 0; i < m; i++) dx[k][i] = 99.0f;
                    dxs[k] = k == skip ? NULL : dx[k];
                }
                cnn_add_ops.backward_n(&l, &ctx, s.n, nin, NULL, y, dy, dxs);
                for (int k = 0; k < nin; k++)
                    for (size_t i = 0; i < m; i++) {
                        const float want = k == skip ? 99.0f : y[i] > 0.0f ? dy[i] : 0.0f;
                        if (dx[k][i] != want)
                            fail_msg("%d inputs, input %d not asked for, %d threads: dx%d[%zu] "
                                     "= %g, want %g", nin, skip, threads, k, i, dx[k][i], want);
                    }
            }
    for (int k = 0; k < 3; k++) free(dx[k]);
    free(y);
    free(dy);
}

static void test_concat(void **state)
{
    (void)state;
    check_merge("concat", 2, (cnn_shape_t[]){sh(2, 3, 4, 5), sh(2, 1, 4, 5)});
    check_merge("concat", 3, (cnn_shape_t[]){sh(3, 2, 2, 3), sh(3, 5, 2, 3), sh(3, 1, 2, 3)});
    cnn_layer_spec_t s = {.name = "cat", .type = "concat", .ninputs = 2,
                          .inputs = {"a", "b"}};
    cnn_shape_t out;
    cnn_layer_sizes_t sz;
    assert_int_equal(cnn_concat_ops.shape_n(&s, 2, (cnn_shape_t[]){sh(2, 3, 4, 4),
                                                                    sh(2, 3, 4, 5)},
                                            &out, &sz), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "cat"));
    assert_int_equal(cnn_concat_ops.shape_n(&s, 2, (cnn_shape_t[]){sh(2, 3, 4, 4),
                                                                    sh(2, 5, 4, 4)},
                                            &out, &sz), CNN_OK);
    assert_int_equal(out.c, 8);
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

/* A layer's reference forward in double, for the finite differences of
 * check_reference_backward: L = sum of y * w over the outputs. */
typedef struct {
    cnn_ref_args_t r;
    const double *w; /* the weights of L (nout) */
    double *y;       /* scratch (nout) */
    size_t nout;
} ref_loss_t;

static double ref_loss(const ref_loss_t *f)
{
    double s = 0;
    cnn_layer_find(f->r.spec->type)->reference(&f->r, f->y);
    for (size_t i = 0; i < f->nout; i++) s += f->y[i] * f->w[i];
    return s;
}

/* The largest |a - b| over the largest |a|, of n values; fails above tol. */
static void check_rel(const char *what, const char *type, int train, const double *a,
                      const double *b, size_t n, double tol)
{
    double err = 0, big = 1e-30;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs(a[i] - b[i]));
        big = fmax(big, fabs(a[i]));
    }
    if (!(err <= tol * big))
        fail_msg("%s (%s mode) %s: analytic vs finite differences: max diff %.3g, max %.3g",
                 type, train ? "train" : "test", what, err, big);
}

/* Central differences (step h) of L in each value of v (n). */
static void fd_grad(ref_loss_t *f, double *v, size_t n, double *out)
{
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        const double keep = v[i];
        v[i] = keep + h;
        const double up = ref_loss(f);
        v[i] = keep - h;
        const double down = ref_loss(f);
        v[i] = keep;
        out[i] = (up - down) / (2 * h);
    }
}

/* reference_backward against central differences of reference, in double,
 * with random input, parameters, state (positive: running variances) and
 * a random dropout mask, in training or test mode. */
static void check_reference_backward(const cnn_layer_spec_t *s, cnn_shape_t in, int train)
{
    const cnn_layer_ops_t *t = cnn_layer_find(s->type);
    cnn_shape_t out;
    cnn_layer_sizes_t sz;
    if (t->shape(s, in, &out, &sz) != CNN_OK) fail_msg("shape %s: %s", s->type, cnn_error_message());
    const size_t nin = (size_t)in.n * cnn_shape_image(in), nout = (size_t)in.n * cnn_shape_image(out);
    const size_t np = sz.params + 1;
    double *x = malloc(sizeof(double) * nin), *dx = malloc(sizeof(double) * nin);
    double *fdx = malloc(sizeof(double) * nin), *mask = malloc(sizeof(double) * nin);
    double *y = malloc(sizeof(double) * nout), *w = malloc(sizeof(double) * nout);
    double *p = malloc(sizeof(double) * np), *dp = calloc(np, sizeof(double));
    double *fdp = malloc(sizeof(double) * np), *st = malloc(sizeof(double) * (sz.state + 1));
    uint64_t seed = 11;
    for (size_t i = 0; i < nin; i++) x[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < nin; i++) mask[i] = tu_uniform(&seed, 0, 1) < 0.3 ? 0 : 1 / 0.7;
    for (size_t i = 0; i < nout; i++) w[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < np; i++) p[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < sz.state + 1; i++) st[i] = tu_uniform(&seed, 0.5, 1.5);
    ref_loss_t f = {.r = {.spec = s, .in = in, .out = out, .x = x, .params = p, .state = st,
                          .mask = mask, .train = train},
                    .w = w, .y = y, .nout = nout};
    ref_loss(&f);
    assert_non_null(t->reference_backward);
    t->reference_backward(&f.r, y, w, dx, dp);
    fd_grad(&f, x, nin, fdx);
    check_rel("dx", s->type, train, dx, fdx, nin, 1e-8);
    fd_grad(&f, p, sz.params, fdp);
    check_rel("dparams", s->type, train, dp, fdp, sz.params, 1e-8);
    free(x), free(dx), free(fdx), free(mask), free(y), free(w);
    free(p), free(dp), free(fdp), free(st);
}

/* A merge type's reference_backward against central differences of its
 * reference: the inputs lie one after another in one buffer, as the
 * gradients do in dx. */
static void check_merge_reference_backward(const cnn_layer_ops_t *t, int nx,
                                           const cnn_shape_t *ins)
{
    cnn_layer_spec_t s = mk(t->type, 0, 0, 0, 0, 0);
    cnn_shape_t out;
    cnn_layer_sizes_t sz;
    if (t->shape_n(&s, nx, ins, &out, &sz) != CNN_OK) {
        /* add takes one shape: use the first for every input */
        cnn_shape_t same[CNN_LAYER_INPUTS_MAX];
        for (int k = 0; k < nx; k++) same[k] = ins[0];
        check_merge_reference_backward(t, nx, same);
        return;
    }
    size_t nin = 0, at[CNN_LAYER_INPUTS_MAX];
    for (int k = 0; k < nx; k++) at[k] = nin, nin += (size_t)ins[k].n * cnn_shape_image(ins[k]);
    const size_t nout = (size_t)out.n * cnn_shape_image(out);
    double *x = malloc(sizeof(double) * nin), *dx = malloc(sizeof(double) * nin);
    double *fdx = malloc(sizeof(double) * nin), *y = malloc(sizeof(double) * nout);
    double *w = malloc(sizeof(double) * nout);
    const double *xs[CNN_LAYER_INPUTS_MAX];
    uint64_t seed = 13;
    for (size_t i = 0; i < nin; i++) x[i] = tu_uniform(&seed, -1, 1);
    for (size_t i = 0; i < nout; i++) w[i] = tu_uniform(&seed, -1, 1);
    for (int k = 0; k < nx; k++) xs[k] = x + at[k];
    ref_loss_t f = {.r = {.spec = &s, .in = ins[0], .out = out, .x = x, .train = 1, .nx = nx,
                          .xs = xs, .ins = ins},
                    .w = w, .y = y, .nout = nout};
    ref_loss(&f);
    t->reference_backward(&f.r, y, w, dx, NULL);
    fd_grad(&f, x, nin, fdx);
    check_rel("dx", t->type, 1, dx, fdx, nin, 1e-8);
    free(x), free(dx), free(fdx), free(y), free(w);
}

/* reference_backward with the settings the registry's samples leave at
 * their defaults: conv stride and padding, pools' padding, ceil mode and
 * divisors, global sum, gelu's tanh form, leaky_relu's and elu's keys. */
static void test_reference_backward_options(void **state)
{
    const cnn_layer_spec_t specs[] = {
        mk("conv", 4, 3, 3, 2, 1), mk("conv", 2, 3, 2, 1, 2), mk("dense", 5, 0, 0, 0, 0),
        pool_spec("maxpool", 3, 3, 2, 1, 1, 0), pool_spec("maxpool", 2, 3, 1, 1, 0, 0),
        pool_spec("avgpool", 3, 3, 2, 1, 1, 1), pool_spec("avgpool", 3, 2, 2, 1, 1, 0),
        act_spec("gap", "mode", "sum"), act_spec("gelu", "approximate", "tanh"),
        act_spec("leaky_relu", "slope", "0.2"), act_spec("elu", "alpha", "0.5"),
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        check_reference_backward(&specs[i], sh(2, 3, 7, 6), 1);
        check_reference_backward(&specs[i], sh(1, 2, 5, 5), 0);
    }
}

/* Max pooling on ties: the float kernels (the vectorized 2x2 one and the
 * general one) send a window's gradient to the same input as
 * reference_backward, its first maximum in row-major order. Inputs take
 * three values only, so most windows tie. */
static void check_pool_ties(cnn_layer_spec_t s, cnn_shape_t in)
{
    cnn_net_t *net = NULL;
    if (cnn_net_create(&s, 1, in, 1, &net) != CNN_OK) fail_msg("%s", cnn_error_message());
    cnn_layer_t *l = &net->layers[0];
    const size_t nin = (size_t)in.n * cnn_shape_image(in), nout = (size_t)in.n * cnn_shape_image(l->out);
    double *x = malloc(sizeof(double) * nin), *dx = malloc(sizeof(double) * nin);
    double *dy = malloc(sizeof(double) * nout), *y = malloc(sizeof(double) * nout);
    float *dyf = malloc(sizeof(float) * nout), *dxf = malloc(sizeof(float) * nin);
    uint64_t seed = 3;
    for (size_t i = 0; i < nin; i++)
        net->act[0][i] = (float)(x[i] = (double)(int)tu_uniform(&seed, 0, 2.999));
    for (size_t i = 0; i < nout; i++) dyf[i] = (float)(dy[i] = 1 + (double)i);
    cnn_ctx_t ctx = cnn_net_ctx(net, 0, 1, 0, 0);
    cnn_net_forward(net, &ctx, in.n);
    l->ops->backward(l, &ctx, in.n, net->act[0], net->act[1], dyf, dxf);
    const cnn_ref_args_t r = {.spec = &s, .in = in, .out = l->out, .x = x};
    l->ops->reference(&r, y);
    l->ops->reference_backward(&r, y, dy, dx, NULL);
    for (size_t i = 0; i < nin; i++)
        if ((double)dxf[i] != dx[i])
            fail_msg("maxpool %dx%d stride %d pad %d: ties: dx[%zu] %g (float) vs %g (reference)",
                     s.kh, s.kw, s.stride, s.pad, i, (double)dxf[i], dx[i]);
    free(x), free(dx), free(dy), free(y), free(dyf), free(dxf);
    cnn_net_free(net);
}

static void test_maxpool_ties(void **state)
{
    check_pool_ties(pool_spec("maxpool", 2, 2, 2, 0, 0, 0), sh(2, 3, 8, 9));
    check_pool_ties(pool_spec("maxpool", 2, 2, 2, 0, 1, 0), sh(2, 3, 7, 9));
    check_pool_ties(pool_spec("maxpool", 3, 3, 2, 1, 1, 0), sh(2, 2, 7, 8));
    check_pool_ties(pool_spec("maxpool", 3, 2, 1, 1, 0, 0), sh(1, 2, 6, 5));
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
        assert_non_null(t->reference);
        /* one input (shape, forward, backward) or several (the _n set) */
        if (cnn_layer_is_merge(t))
            assert_true(t->forward_n && t->backward_n && !t->shape && !t->forward &&
                        !t->backward && !t->in_place && !t->relu && !t->cli);
        else
            assert_true(t->shape && t->forward && t->backward && !t->forward_n &&
                        !t->backward_n);
        assert_true(t->fd == CNN_FD_LINEAR || t->fd == CNN_FD_SMOOTH || t->fd == CNN_FD_KINKED);
        cnn_layer_spec_t s = sample_spec(t);
        check_cli(t);
        if (!t->reference_backward) fail_msg("%s: no reference_backward", t->type);
        if (cnn_layer_is_merge(t)) {
            check_merge(t->type, 2, (cnn_shape_t[]){sh(2, 3, 8, 8), sh(2, 3, 8, 8)});
            check_merge_reference_backward(t, 2, (cnn_shape_t[]){sh(2, 3, 5, 6), sh(2, 2, 5, 6)});
        } else {
            check_reference(&s, sh(2, 3, 8, 8));
            check_reference_backward(&s, sh(2, 3, 5, 6), 0);
            check_reference_backward(&s, sh(2, 3, 5, 6), 1);
        }
    }
    assert_null(names[n]);
    assert_true(n >= 16);
    assert_null(cnn_layer_find("pool"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv), cmocka_unit_test(test_conv_1x1),
        cmocka_unit_test(test_conv_im2col_threads), cmocka_unit_test(test_conv_1x1_vs_im2col), cmocka_unit_test(test_conv_stride2),
        cmocka_unit_test(test_conv_stride2_vs_im2col),
        cmocka_unit_test(test_conv_chunked),  cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_winograd4), cmocka_unit_test(test_conv_winograd25),
        cmocka_unit_test(test_conv_fused25),
        cmocka_unit_test(test_conv_winograd_vs_im2col),
        cmocka_unit_test(test_conv_dx_add),
        cmocka_unit_test(test_conv_winograd_blocks), cmocka_unit_test(test_conv_relu_out),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_maxpool),       cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_gap_flatten),
        cmocka_unit_test(test_pool_out_size), cmocka_unit_test(test_maxpool_options),
        cmocka_unit_test(test_avgpool_options), cmocka_unit_test(test_avgpool_divisor),
        cmocka_unit_test(test_gap_sum), cmocka_unit_test(test_maxpool_relu_fold),
        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_dropout),       cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_batchnorm_sync), cmocka_unit_test(test_batchnorm_relu_out),
        cmocka_unit_test(test_course_linspace), cmocka_unit_test(test_losses),
        cmocka_unit_test(test_shape_errors),  cmocka_unit_test(test_add), cmocka_unit_test(test_add_relu_out),
        cmocka_unit_test(test_concat),        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_reference_backward_options),
        cmocka_unit_test(test_maxpool_ties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
