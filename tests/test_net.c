/* test_net.c - whole networks: shape inference and parameter counts,
 * memory planning and its budget check, a finite-difference check of the chained backward pass
 * with the loss, and reproducibility. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn.h"
#include "testutil.h"

static cnn_layer_spec_t L(const char *name, const char *type, int f, int k,
                          int stride, int pad)
{
    cnn_layer_spec_t s = {.filters = f, .kh = k, .kw = k, .stride = stride,
                          .pad = pad, .eps = 1e-5f, .momentum = 0.1f};
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.type, sizeof s.type, "%s", type);
    return s;
}

static void test_fmnist_ref_shape(void **state)
{
    /* DESIGN.md: about 421,642 parameters */
    cnn_layer_spec_t specs[] = {
        L("conv1", "conv", 32, 3, 1, 1), L("relu1", "relu", 0, 0, 0, 0),
        L("pool1", "maxpool", 0, 2, 2, 0), L("conv2", "conv", 64, 3, 1, 1),
        L("relu2", "relu", 0, 0, 0, 0),   L("pool2", "maxpool", 0, 2, 2, 0),
        L("flat", "flatten", 0, 0, 0, 0), L("fc1", "dense", 128, 0, 0, 0),
        L("relu3", "relu", 0, 0, 0, 0),   L("fc2", "dense", 10, 0, 0, 0),
    };
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(specs, 10, (cnn_shape_t){64, 1, 28, 28}, 2, &net), CNN_OK);
    assert_int_equal(net->nparams, 421642);
    assert_int_equal(net->output.c, 10);
    assert_int_equal(net->layers[6].out.c, 64 * 7 * 7);
    assert_ptr_equal(cnn_net_layer(net, "fc1"), &net->layers[7]);
    assert_null(cnn_net_layer(net, "fc9"));
    /* parameters of consecutive layers are contiguous in one arena */
    assert_ptr_equal(net->layers[3].params, net->layers[0].params + 32 * 9 + 32);
    /* the relus run in place: their output is their input's buffer */
    assert_ptr_equal(net->act[2], net->act[1]);
    assert_ptr_equal(net->act[5], net->act[4]);
    assert_ptr_equal(net->act[9], net->act[8]);
    assert_ptr_not_equal(net->act[3], net->act[2]);
    /* relu1 and relu2 come before max pools, which do their backward pass */
    for (int i = -1; i <= 10; i++)
        assert_int_equal(cnn_net_relu_folded(net, i), i == 1 || i == 4);
    cnn_net_free(net);
    cnn_net_free(NULL);
    /* but never over the net's input */
    cnn_layer_spec_t first[] = {L("r", "relu", 0, 0, 0, 0), L("r2", "relu", 0, 0, 0, 0)};
    assert_int_equal(cnn_net_create(first, 2, (cnn_shape_t){2, 1, 3, 3}, 1, &net), CNN_OK);
    assert_ptr_not_equal(net->act[1], net->act[0]);
    assert_ptr_equal(net->act[2], net->act[1]);
    for (int i = 0; i < 18; i++) net->act[0][i] = (float)i - 9.0f;
    const cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    const float *y = cnn_net_forward(net, &ctx, 2);
    for (int i = 0; i < 18; i++) {
        assert_true(net->act[0][i] == (float)i - 9.0f); /* input intact */
        assert_true(y[i] == (i > 9 ? (float)i - 9.0f : 0.0f));
    }
    cnn_net_free(net);
}

/* loss(x) for the net at its current parameters */
static double net_loss(cnn_net_t *net, const cnn_ctx_t *ctx, int n, const int *labels)
{
    const float *y = cnn_net_forward(net, ctx, n);
    double sum;
    cnn_loss_softmax_ce.compute(y, labels, n, net->output.c, 1.0f, &sum, NULL);
    return sum;
}

static void check_net_gradient(const cnn_layer_spec_t *specs, int nl, cnn_shape_t in)
{
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(specs, nl, in, 2, &net), CNN_OK);
    cnn_net_init(net, 11);
    uint64_t seed = 5;
    size_t nin = (size_t)in.n * cnn_shape_image(in);
    for (size_t i = 0; i < nin; i++) net->act[0][i] = (float)tu_uniform(&seed, -1, 1);
    int labels[8];
    for (int i = 0; i < in.n; i++) labels[i] = i % net->output.c;
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 3, 0, 1);
    const float *y = cnn_net_forward(net, &ctx, in.n);
    size_t nout = (size_t)in.n * net->output.c;
    float *dy = malloc(sizeof(float) * nout);
    double sum;
    cnn_loss_softmax_ce.compute(y, labels, in.n, net->output.c, 1.0f, &sum, dy);
    cnn_net_zero_grad(net);
    cnn_net_backward(net, &ctx, in.n, dy);
    float *g = malloc(sizeof(float) * net->nparams);
    memcpy(g, net->grads, sizeof(float) * net->nparams);
    /* central differences of the float net: step 1e-3, tolerance
     * 2e-3 + 2e-2 |fd| (float forward passes limit the precision). Like
     * Caffe's checker, a parameter whose step crosses a kink (relu, max)
     * is skipped: there the estimates with h and h/2 disagree. At most a
     * tenth of the parameters may be skipped. */
    const double h = 1e-3;
    size_t stride = net->nparams / 200 + 1, checked = 0, skipped = 0;
    for (size_t i = 0; i < net->nparams; i += stride) {
        float keep = net->params[i];
        double f[4];
        const double steps[4] = {h, -h, h / 2, -h / 2};
        for (int k = 0; k < 4; k++) {
            net->params[i] = keep + (float)steps[k];
            f[k] = net_loss(net, &ctx, in.n, labels);
        }
        net->params[i] = keep;
        double fd = (f[0] - f[1]) / (2 * h), fd_half = (f[2] - f[3]) / h;
        if (fabs(fd - fd_half) > 2e-3 + 2e-2 * fabs(fd)) {
            skipped++;
            continue;
        }
        checked++;
        if (fabs(g[i] - fd) > 2e-3 + 2e-2 * fabs(fd))
            fail_msg("net gradient at parameter %zu: analytic %.6g, fd %.6g", i, g[i], fd);
    }
    if (skipped * 10 > checked + skipped)
        fail_msg("%zu of %zu parameters sat on a kink", skipped, checked + skipped);
    free(dy);
    free(g);
    cnn_net_free(net);
}

/* L() with its inputs: one name, or a merge layer's list */
static cnn_layer_spec_t G(cnn_layer_spec_t s, const char *a, const char *b, const char *c)
{
    const char *in[3] = {a, b, c};
    for (int k = 0; k < 3 && in[k]; k++)
        snprintf(s.inputs[s.ninputs++], CNN_NAME_MAX, "%s", in[k]);
    return s;
}

/* A residual block after a stem: stem-r0 fans out to the block
 * (conv-bn-relu-conv-bn) and to the add; then relu, average pool, dense. */
static void residual_net(cnn_layer_spec_t *a)
{
    const cnn_layer_spec_t r[] = {
        L("stem", "conv", 4, 3, 1, 1),     L("r0", "relu", 0, 0, 0, 0),
        L("c1", "conv", 4, 3, 1, 1),       L("b1", "batchnorm", 0, 0, 0, 0),
        L("r1", "relu", 0, 0, 0, 0),       L("c2", "conv", 4, 3, 1, 1),
        L("b2", "batchnorm", 0, 0, 0, 0),  G(L("sum", "add", 0, 0, 0, 0), "b2", "r0", NULL),
        L("r2", "relu", 0, 0, 0, 0),       L("p", "avgpool", 0, 2, 2, 0),
        L("fc", "dense", 3, 0, 0, 0),
    };
    memcpy(a, r, sizeof r);
}

/* Two branches of the input, concatenated; the input also joins. */
static void concat_net(cnn_layer_spec_t *a)
{
    const cnn_layer_spec_t r[] = {
        L("ca", "conv", 3, 3, 1, 1),
        G(L("cb", "conv", 2, 1, 1, 0), "input", NULL, NULL),
        L("rb", "relu", 0, 0, 0, 0),
        G(L("cat", "concat", 0, 0, 0, 0), "ca", "rb", "input"),
        L("p", "avgpool", 0, 2, 2, 0),
        L("fc", "dense", 3, 0, 0, 0),
    };
    memcpy(a, r, sizeof r);
}

/* The plan of a graph: who runs in place, which ReLUs fold, how many
 * gradient buffers the backward pass needs, the buffers' sharing. */
static void test_graph_plan(void **state)
{
    (void)state;
    cnn_layer_spec_t a[11];
    residual_net(a);
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(a, 11, (cnn_shape_t){4, 2, 6, 6}, 1, &net), CNN_OK);
    assert_ptr_equal(net->act[2], net->act[1]);     /* r0 over stem: stem has one consumer */
    assert_ptr_equal(net->act[5], net->act[4]);     /* r1 over b1 */
    assert_ptr_equal(net->act[9], net->act[8]);     /* r2 over sum */
    assert_ptr_not_equal(net->act[3], net->act[2]); /* c1 reads r0 */
    assert_int_equal(net->layers[7].ninputs, 2);
    assert_int_equal(net->layers[7].src[0], 6);
    assert_int_equal(net->layers[7].src[1], 1);
    assert_ptr_equal(cnn_net_layer_in(net, 7, 1), net->act[2]);
    assert_int_equal(net->output.c, 3);
    /* r0's gradient gathers two parts: a third buffer for the second */
    assert_int_equal(net->ndbuf, 3);
    int acc = 0;
    for (int k = 0; k < net->nsteps; k++) acc += net->steps[k].acc[0] >= 0 || net->steps[k].acc[1] >= 0;
    assert_int_equal(acc, 1);
    cnn_net_free(net);

    /* fan-out of a relu: not in place over a tensor another layer reads,
     * not folded into a max pool that is not its one consumer */
    cnn_layer_spec_t f[] = {
        L("c", "conv", 2, 3, 1, 1),   L("r", "relu", 0, 0, 0, 0),
        L("mp", "maxpool", 0, 2, 2, 0), G(L("mp2", "maxpool", 0, 2, 2, 0), "r", NULL, NULL),
        G(L("s", "add", 0, 0, 0, 0), "mp", "mp2", NULL),
    };
    assert_int_equal(cnn_net_create(f, 5, (cnn_shape_t){2, 1, 4, 4}, 1, &net), CNN_OK);
    assert_ptr_equal(net->act[2], net->act[1]); /* c has one consumer: r */
    assert_int_equal(net->fold[1], 0); /* into c (relu_out), not into a pool */
    cnn_net_free(net);
    f[3] = G(L("mp2", "maxpool", 0, 2, 2, 0), "c", NULL, NULL); /* c fans out now */
    f[1] = G(L("r", "relu", 0, 0, 0, 0), "c", NULL, NULL);
    assert_int_equal(cnn_net_create(f, 5, (cnn_shape_t){2, 1, 4, 4}, 1, &net), CNN_OK);
    assert_ptr_not_equal(net->act[2], net->act[1]);
    assert_int_equal(cnn_net_relu_folded(net, 1), 1); /* its one consumer is mp */
    cnn_net_free(net);

    /* the plan counts the buffers */
    cnn_net_plan_t plan;
    residual_net(a);
    assert_int_equal(cnn_net_plan(a, 11, (cnn_shape_t){4, 2, 6, 6}, 1, &plan), CNN_OK);
    assert_int_equal(plan.ndbuf, 3);
    assert_int_equal(plan.dbuf, 3 * plan.layers[0].act);
    cnn_net_plan_free(&plan);
}

/* Output and gradients (dout = the output) of a net, into *y and *g. */
static void run_net(const cnn_layer_spec_t *a, int nl, cnn_shape_t in, float **y, float **g,
                    size_t *ny, size_t *np)
{
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(a, nl, in, 2, &net), CNN_OK);
    cnn_net_init(net, 6);
    uint64_t seed = 12;
    for (size_t i = 0; i < (size_t)in.n * cnn_shape_image(in); i++)
        net->act[0][i] = (float)tu_uniform(&seed, -1, 1);
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    const float *out = cnn_net_forward(net, &ctx, in.n);
    *ny = (size_t)in.n * cnn_shape_image(net->output);
    *np = net->nparams;
    *y = malloc(sizeof(float) * *ny);
    memcpy(*y, out, sizeof(float) * *ny);
    cnn_net_zero_grad(net);
    cnn_net_backward(net, &ctx, in.n, *y);
    *g = malloc(sizeof(float) * *np);
    memcpy(*g, net->grads, sizeof(float) * *np);
    cnn_net_free(net);
}

/* A ReLU folded into a max pool that is not the next layer: the same
 * bits as the pool and the ReLU in the other order (max and ReLU
 * commute, in both passes). */
static void test_graph_fold(void **state)
{
    (void)state;
    const cnn_layer_spec_t a[] = {
        L("c", "conv", 3, 3, 1, 1),   G(L("r", "relu", 0, 0, 0, 0), "c", NULL, NULL),
        G(L("d", "conv", 3, 3, 1, 1), "input", NULL, NULL),
        G(L("mp", "maxpool", 0, 2, 2, 0), "r", NULL, NULL),
        G(L("mp2", "maxpool", 0, 2, 2, 0), "d", NULL, NULL),
        G(L("s", "add", 0, 0, 0, 0), "mp", "mp2", NULL), L("f", "flatten", 0, 0, 0, 0),
        L("fc", "dense", 4, 0, 0, 0),
    };
    const cnn_layer_spec_t b[] = {
        L("c", "conv", 3, 3, 1, 1),   G(L("mp", "maxpool", 0, 2, 2, 0), "c", NULL, NULL),
        G(L("d", "conv", 3, 3, 1, 1), "input", NULL, NULL),
        G(L("r", "relu", 0, 0, 0, 0), "mp", NULL, NULL),
        G(L("mp2", "maxpool", 0, 2, 2, 0), "d", NULL, NULL),
        G(L("s", "add", 0, 0, 0, 0), "r", "mp2", NULL), L("f", "flatten", 0, 0, 0, 0),
        L("fc", "dense", 4, 0, 0, 0),
    };
    const cnn_shape_t in = {3, 2, 8, 10};
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(a, 8, in, 1, &net), CNN_OK);
    assert_int_equal(cnn_net_relu_folded(net, 1), 1);
    assert_int_equal(net->fold[1], 3);
    assert_ptr_equal(net->act[2], net->act[1]); /* in place over c */
    cnn_net_free(net);
    float *ya, *ga, *yb, *gb;
    size_t ny, np, nyb, npb;
    run_net(a, 8, in, &ya, &ga, &ny, &np);
    run_net(b, 8, in, &yb, &gb, &nyb, &npb);
    assert_int_equal(ny, nyb);
    assert_int_equal(np, npb);
    assert_memory_equal(ya, yb, sizeof(float) * ny);
    assert_memory_equal(ga, gb, sizeof(float) * np);
    free(ya);
    free(ga);
    free(yb);
    free(gb);
}

/* ReLUs folded into the layer before them (ops->relu_out): the same
 * bits as every layer on its own (cnn_net_set_fuse(0)) in training
 * (output and gradients), and in inference the same to rounding (where
 * the batchnorms are folded into their convs); a ReLU folds only where its
 * input has no other consumer. Nets: the residual block (sum -> r2,
 * b1 -> r1, and the stem's conv -> r0), a three-input add whose ReLU is
 * the net's output (dout is its gradient), an add another layer also
 * reads (not folded), and convs on each engine (folded on the blocked
 * kernels and Winograd only). */
static void check_relu_out(const cnn_layer_spec_t *a, int nl, cnn_shape_t in)
{
    float *y[2], *g[2];
    size_t ny[2], np[2];
    for (int f = 0; f < 2; f++) {
        cnn_net_set_fuse(f);
        run_net(a, nl, in, &y[f], &g[f], &ny[f], &np[f]);
    }
    assert_int_equal(ny[0], ny[1]);
    assert_memory_equal(y[0], y[1], sizeof(float) * ny[0]);
    assert_memory_equal(g[0], g[1], sizeof(float) * np[0]);
    for (int f = 0; f < 2; f++) {
        free(y[f]);
        free(g[f]);
    }
    for (int f = 0; f < 2; f++) { /* inference: the same output fused or not */
        cnn_net_set_fuse(f);
        cnn_net_plan_t p;
        cnn_net_t *net;
        assert_int_equal(cnn_net_plan_infer(a, nl, in, 1, &p), CNN_OK);
        assert_int_equal(cnn_net_build(&p, a, &net), CNN_OK);
        cnn_net_init(net, 6);
        uint64_t seed = 12;
        for (size_t i = 0; i < (size_t)in.n * cnn_shape_image(in); i++)
            net->act[0][i] = (float)tu_uniform(&seed, -1, 1);
        cnn_ctx_t ctx = cnn_net_ctx(net, 0, 1, 0, 0);
        ny[f] = (size_t)in.n * cnn_shape_image(net->output);
        y[f] = malloc(sizeof(float) * ny[f]);
        memcpy(y[f], cnn_net_forward(net, &ctx, in.n), sizeof(float) * ny[f]);
        cnn_net_free(net);
        cnn_net_plan_free(&p);
    }
    /* the batchnorms are folded into their convs: the same to rounding */
    double *ref = malloc(sizeof(double) * ny[0]);
    for (size_t i = 0; i < ny[0]; i++) ref[i] = y[0][i];
    TU_ASSERT_CLOSE("inference, fused vs not", y[1], ref, ny[0], 1e-5, 1e-5);
    free(ref);
    free(y[0]);
    free(y[1]);
    cnn_net_set_fuse(1);
}

/* Which ReLUs of a net are folded into the layer before them. */
static void check_relu_out_plan(const cnn_layer_spec_t *a, int nl, cnn_shape_t in,
                                const int *want)
{
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(a, nl, in, 1, &net), CNN_OK);
    for (int i = 0; i < nl; i++) {
        const int s = net->layers[i].src[0];
        const int folded = net->fold[i] >= 0 && net->fold[i] < i;
        assert_int_equal(folded, want[i]);
        if (folded) {
            assert_int_equal(net->fold[i], s);
            assert_int_equal(net->layers[s].relu_out, 1);
            assert_ptr_equal(net->act[i + 1], net->act[s + 1]);
        }
    }
    cnn_net_free(net);
}

static void test_relu_out(void **state)
{
    (void)state;
    cnn_layer_spec_t a[11];
    residual_net(a);
    int want[11] = {0};
    want[8] = 1;                                    /* sum -> r2 */
    want[4] = cnn_batchnorm_ops.relu_out;           /* b1 -> r1 */
    want[1] = 1; /* stem -> r0, whose output two layers read */
    check_relu_out_plan(a, 11, (cnn_shape_t){4, 2, 6, 6}, want);
    check_relu_out(a, 11, (cnn_shape_t){4, 2, 6, 6});
    /* convs: cifar-3layer's shape of net (the blocked kernels' columns,
     * then Winograd), and engines that do not take the ReLU (the BLAS's
     * columns at 5x5 on 4 channels, 1x1, stride 2) */
    const cnn_layer_spec_t d[] = {
        L("c1", "conv", 8, 5, 1, 2), L("r1", "relu", 0, 0, 0, 0),
        L("c2", "conv", 16, 3, 1, 1), L("r2", "relu", 0, 0, 0, 0),
        L("c3", "conv", 8, 3, 2, 1), L("r3", "relu", 0, 0, 0, 0),
        L("c4", "conv", 4, 1, 1, 0), L("r4", "relu", 0, 0, 0, 0),
        L("c5", "conv", 4, 5, 1, 2), L("r5", "relu", 0, 0, 0, 0),
        L("f", "flatten", 0, 0, 0, 0), L("fc", "dense", 3, 0, 0, 0),
    };
    const int wd[12] = {0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    cnn_conv_set_algo(CNN_CONV_AUTO);
    check_relu_out_plan(d, 12, (cnn_shape_t){3, 3, 16, 16}, wd);
    check_relu_out(d, 12, (cnn_shape_t){3, 3, 16, 16});
    const cnn_layer_spec_t b[] = {
        L("c1", "conv", 3, 3, 1, 1), G(L("c2", "conv", 3, 3, 1, 1), "input", NULL, NULL),
        G(L("c3", "conv", 3, 1, 1, 0), "input", NULL, NULL),
        G(L("s", "add", 0, 0, 0, 0), "c1", "c2", "c3"), L("r", "relu", 0, 0, 0, 0),
    };
    const int wb[5] = {0, 0, 0, 0, 1};
    check_relu_out_plan(b, 5, (cnn_shape_t){2, 3, 5, 5}, wb);
    check_relu_out(b, 5, (cnn_shape_t){2, 3, 5, 5});
    const cnn_layer_spec_t c[] = {
        L("c1", "conv", 3, 3, 1, 1), G(L("c2", "conv", 3, 3, 1, 1), "input", NULL, NULL),
        G(L("s", "add", 0, 0, 0, 0), "c1", "c2", NULL), L("r", "relu", 0, 0, 0, 0),
        G(L("t", "add", 0, 0, 0, 0), "r", "s", NULL), L("f", "flatten", 0, 0, 0, 0),
        L("fc", "dense", 4, 0, 0, 0),
    };
    const int wc[7] = {0};
    check_relu_out_plan(c, 7, (cnn_shape_t){2, 3, 5, 5}, wc);
    check_relu_out(c, 7, (cnn_shape_t){2, 3, 5, 5});
    /* off: nothing folds, the pool fold included */
    cnn_net_set_fuse(0);
    check_relu_out_plan(a, 11, (cnn_shape_t){4, 2, 6, 6}, (const int[11]){0});
    cnn_net_set_fuse(1);
}

/* A fan-out's gradient added by the Winograd conv that takes it (c1,
 * the block's first conv: sz.dx_adds) as it writes its input gradient:
 * the same bits as written apart and added after (fusions off), for
 * the output and every parameter's gradient (the stem's sum both
 * parts), on tile rows in pairs (28x28), images of 4 x 4 tiles (14x14)
 * and two images of 2 x 2 a vector (7x7, a batch of 3). */
static void test_fanout_add(void **state)
{
    (void)state;
    cnn_layer_spec_t a[11];
    residual_net(a);
    cnn_conv_set_algo(CNN_CONV_WINOGRAD4);
    const cnn_shape_t in[] = {{2, 2, 28, 28}, {3, 2, 14, 14}, {3, 2, 7, 7}};
    for (int i = 0; i < 3; i++) {
        cnn_net_t *net;
        assert_int_equal(cnn_net_create(a, 11, in[i], 1, &net), CNN_OK);
        assert_int_equal(net->layers[2].sz.dx_adds, 1); /* c1 */
        int k = 0;
        while (k < net->nsteps && net->steps[k].layer != 2) k++;
        assert_true(k < net->nsteps);
        assert_true(net->steps[k].acc[0] >= 0); /* r0's gradient, begun by the add */
        cnn_net_free(net);
        check_relu_out(a, 11, in[i]);
    }
    cnn_conv_set_algo(CNN_CONV_AUTO);
}

/* The output of a net planned for inference (buffers reused) equals a
 * training net's, bit for bit, and its plan is smaller. (Fusions off: a
 * batchnorm folded into its conv changes the rounding; test_affine_fold.) */
static void check_infer(const cnn_layer_spec_t *a, int nl, cnn_shape_t in, int nslots)
{
    cnn_net_plan_t pt, pi;
    cnn_net_t *nt, *ni;
    cnn_net_set_fuse(0);
    assert_int_equal(cnn_net_plan(a, nl, in, 2, &pt), CNN_OK);
    assert_int_equal(cnn_net_plan_infer(a, nl, in, 2, &pi), CNN_OK);
    assert_int_equal(pi.nslots, nslots);
    assert_true(pi.total < pt.total);
    assert_int_equal(pi.ndbuf, 0);
    assert_int_equal(cnn_net_build(&pt, a, &nt), CNN_OK);
    assert_int_equal(cnn_net_build(&pi, a, &ni), CNN_OK);
    cnn_net_init(nt, 4);
    cnn_net_init(ni, 4);
    uint64_t seed = 8;
    for (size_t i = 0; i < (size_t)in.n * cnn_shape_image(in); i++)
        nt->act[0][i] = ni->act[0][i] = (float)tu_uniform(&seed, -1, 1);
    cnn_ctx_t ct = cnn_net_ctx(nt, 0, 1, 0, 0), ci = cnn_net_ctx(ni, 0, 1, 0, 0);
    const float *yt = cnn_net_forward(nt, &ct, in.n), *yi = cnn_net_forward(ni, &ci, in.n);
    assert_memory_equal(yt, yi, sizeof(float) * (size_t)in.n * cnn_shape_image(nt->output));
    cnn_net_free(nt);
    cnn_net_free(ni);
    cnn_net_plan_free(&pt);
    cnn_net_plan_free(&pi);
    cnn_net_set_fuse(1);
}

/* Inference folds each batchnorm into the conv before it: the
 * batchnorm runs in place over the conv's buffer and not at all, the
 * conv with scaled weights, and with the ReLU after the batchnorm (r1)
 * clamping what it writes; the output agrees with the training plan's
 * in test mode to float rounding, for running statistics, gamma and beta
 * far from their initial 0 and 1, and in training mode (the three layers
 * in turn) bit for bit. A batchnorm whose conv output another layer
 * reads, or one after a non-conv, is not folded. */
static void test_affine_fold(void **state)
{
    (void)state;
    cnn_layer_spec_t a[11];
    residual_net(a);
    const cnn_shape_t in = {3, 2, 6, 6};
    cnn_net_plan_t pt, pi;
    cnn_net_t *nt, *ni;
    assert_int_equal(cnn_net_plan(a, 11, in, 2, &pt), CNN_OK);
    assert_int_equal(cnn_net_plan_infer(a, 11, in, 2, &pi), CNN_OK);
    assert_int_equal(pi.layers[3].affine_into, 2); /* b1 into c1 */
    assert_int_equal(pi.layers[6].affine_into, 5); /* b2 into c2 */
    assert_int_equal(pi.layers[2].affine_from, 3);
    assert_int_equal(pt.layers[3].affine_into, -1); /* training: never */
    assert_true(pi.layers[2].folded >= pi.layers[2].params); /* a copy, whole lines */
    assert_true(pi.layers[2].folded < pi.layers[2].params + 64);
    assert_int_equal(cnn_net_build(&pt, a, &nt), CNN_OK);
    assert_int_equal(cnn_net_build(&pi, a, &ni), CNN_OK);
    assert_ptr_equal(ni->act[4], ni->act[3]);
    assert_ptr_equal(ni->act[5], ni->act[4]); /* r1 over b1 over c1 */
    assert_int_equal(pi.layers[4].fold, 2); /* r1 into c1, through b1 */
    assert_int_equal(pi.layers[2].relu_out, 4);
    assert_int_equal(ni->layers[2].relu_out, 0); /* set in test mode only */
    assert_int_equal(cnn_net_relu_folded(ni, 4), 1);
    assert_int_equal(pt.layers[4].fold, 3); /* training: r1 into b1 */
    cnn_net_init(nt, 4);
    uint64_t seed = 8;
    for (int i = 0; i < 11; i++) { /* batchnorm: gamma, beta, mean, var */
        cnn_layer_t *l = &nt->layers[i];
        if (!l->ops->test_affine) continue;
        for (int c = 0; c < l->in.c; c++) {
            l->params[c] = (float)tu_uniform(&seed, 0.5, 2);
            l->params[l->in.c + c] = (float)tu_uniform(&seed, -1, 1);
            l->state[c] = (float)tu_uniform(&seed, -0.5, 0.5);
            l->state[l->in.c + c] = (float)tu_uniform(&seed, 0.2, 3);
        }
    }
    memcpy(ni->params, nt->params, sizeof(float) * nt->nparams);
    memcpy(ni->state, nt->state, sizeof(float) * nt->nstate);
    for (size_t i = 0; i < (size_t)in.n * cnn_shape_image(in); i++)
        nt->act[0][i] = ni->act[0][i] = (float)tu_uniform(&seed, -1, 1);
    cnn_ctx_t ct = cnn_net_ctx(nt, 0, 1, 0, 0), ci = cnn_net_ctx(ni, 0, 1, 0, 0);
    const size_t ny = (size_t)in.n * cnn_shape_image(nt->output);
    const float *yt = cnn_net_forward(nt, &ct, in.n), *yi = cnn_net_forward(ni, &ci, in.n);
    double *ref = malloc(sizeof(double) * ny);
    for (size_t i = 0; i < ny; i++) ref[i] = yt[i];
    TU_ASSERT_CLOSE("batchnorm folded into conv vs on its own", yi, ref, ny, 1e-5, 1e-5);
    /* the params the model holds are not touched */
    assert_memory_equal(ni->params, nt->params, sizeof(float) * nt->nparams);
    /* in training mode the conv and the batchnorm run in turn: the
     * training net's output, bit for bit */
    ct.train = ci.train = 1;
    yt = cnn_net_forward(nt, &ct, in.n);
    yi = cnn_net_forward(ni, &ci, in.n);
    assert_memory_equal(yt, yi, sizeof(float) * ny);
    free(ref);
    cnn_net_free(nt);
    cnn_net_free(ni);
    cnn_net_plan_free(&pt);
    cnn_net_plan_free(&pi);
    /* not folded: the conv's output fans out; the batchnorm follows a relu */
    const cnn_layer_spec_t b[] = {
        L("c", "conv", 3, 3, 1, 1),      L("bn", "batchnorm", 0, 0, 0, 0),
        G(L("s", "add", 0, 0, 0, 0), "bn", "c", NULL), L("r", "relu", 0, 0, 0, 0),
        L("bn2", "batchnorm", 0, 0, 0, 0),
    };
    assert_int_equal(cnn_net_plan_infer(b, 5, (cnn_shape_t){2, 3, 5, 5}, 1, &pi), CNN_OK);
    assert_int_equal(pi.layers[1].affine_into, -1);
    assert_int_equal(pi.layers[4].affine_into, -1);
    cnn_net_plan_free(&pi);
}

static void test_graph_infer(void **state)
{
    (void)state;
    cnn_layer_spec_t a[11];
    residual_net(a);
    /* r0 lives until sum: the block takes two more slots, the pool a third */
    check_infer(a, 11, (cnn_shape_t){3, 2, 6, 6}, 3);
    concat_net(a);
    check_infer(a, 6, (cnn_shape_t){3, 2, 4, 4}, 3);
    /* a chain ping-pongs between two buffers */
    cnn_layer_spec_t f[] = {
        L("conv1", "conv", 8, 3, 1, 1), L("relu1", "relu", 0, 0, 0, 0),
        L("pool1", "maxpool", 0, 2, 2, 0), L("conv2", "conv", 8, 3, 1, 1),
        L("relu2", "relu", 0, 0, 0, 0),   L("pool2", "maxpool", 0, 2, 2, 0),
        L("flat", "flatten", 0, 0, 0, 0), L("fc1", "dense", 16, 0, 0, 0),
        L("relu3", "relu", 0, 0, 0, 0),   L("fc2", "dense", 10, 0, 0, 0),
    };
    check_infer(f, 10, (cnn_shape_t){4, 1, 12, 12}, 2);
    /* a folded ReLU's slot (its input's) lives until its max pool has run */
    cnn_layer_spec_t g[] = {
        L("conv1", "conv", 8, 3, 1, 1), L("relu1", "relu", 0, 0, 0, 0),
        L("pool1", "maxpool", 0, 2, 2, 0), L("flat", "flatten", 0, 0, 0, 0),
        L("fc2", "dense", 10, 0, 0, 0),
    };
    check_infer(g, 5, (cnn_shape_t){4, 1, 12, 12}, 2);
}

/* Each graph error is CNN_ECONFIG naming the layers. */
static void test_graph_errors(void **state)
{
    (void)state;
    cnn_net_t *net = NULL;
    const cnn_shape_t in = {2, 2, 4, 4};
    struct {
        const char *type, *i0, *i1, *want0, *want1;
    } cases[] = {
        {"add", "c", "nope", "layer s: input 'nope' is not a layer", NULL},
        {"add", "c", "s", "layer s: input 's' is the layer itself", NULL},
        {"add", "c", "late", "input 'late' is a later layer", "no cycles"},
        {"add", "c", NULL, "layer s: a add layer takes 2 to 4 inputs", NULL},
        {"add", "c", "c", "layer s: input 'c' is named twice", NULL},
        {"add", "c", "input", "layer s (add): inputs c (2,3,4,4), input (2,2,4,4)", NULL},
        {"concat", "c", "p", "layer s (concat): inputs c (2,3,4,4), p (2,2,2,2)", "height"},
        {"relu", "c", "input", "layer s: a relu layer takes one input, not 2", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_layer_spec_t a[] = {L("c", "conv", 3, 3, 1, 1), G(L("p", "maxpool", 0, 2, 2, 0), "input", NULL, NULL),
                                G(L("s", cases[i].type, 0, 0, 0, 0), cases[i].i0, cases[i].i1, NULL),
                                L("late", "flatten", 0, 0, 0, 0)};
        if (cnn_net_create(a, 4, in, 1, &net) != CNN_ECONFIG) fail_msg("case %zu accepted", i);
        assert_null(net);
        if (!strstr(cnn_error_message(), cases[i].want0) ||
            (cases[i].want1 && !strstr(cnn_error_message(), cases[i].want1)))
            fail_msg("case %zu: \"%s\"", i, cnn_error_message());
    }
    /* an output nothing takes */
    cnn_layer_spec_t u[] = {L("c", "conv", 3, 3, 1, 1), G(L("d", "conv", 3, 3, 1, 1), "input", NULL, NULL)};
    assert_int_equal(cnn_net_create(u, 2, in, 1, &net), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "layer c: no layer takes its output"));
    /* a layer may not be called input */
    cnn_layer_spec_t n[] = {L("input", "conv", 3, 3, 1, 1)};
    assert_int_equal(cnn_net_create(n, 1, in, 1, &net), CNN_ECONFIG);
}

/* Forward and backward of a graph with 1 and 2 threads: the same
 * output and gradients (1e-6). */
static void check_graph_threads(const cnn_layer_spec_t *a, int nl, cnn_shape_t in)
{
    float *out[2], *g[2];
    size_t nout = 0, np = 0;
    for (int t = 0; t < 2; t++) {
        cnn_net_t *net;
        assert_int_equal(cnn_net_create(a, nl, in, t + 1, &net), CNN_OK);
        cnn_net_init(net, 9);
        uint64_t seed = 3;
        for (size_t i = 0; i < (size_t)in.n * cnn_shape_image(in); i++)
            net->act[0][i] = (float)tu_uniform(&seed, -1, 1);
        cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
        const float *y = cnn_net_forward(net, &ctx, in.n);
        nout = (size_t)in.n * cnn_shape_image(net->output);
        np = net->nparams;
        out[t] = malloc(sizeof(float) * nout);
        memcpy(out[t], y, sizeof(float) * nout);
        cnn_net_zero_grad(net);
        cnn_net_backward(net, &ctx, in.n, out[t]);
        g[t] = malloc(sizeof(float) * np);
        memcpy(g[t], net->grads, sizeof(float) * np);
        cnn_net_free(net);
    }
    double *d = malloc(sizeof(double) * (nout > np ? nout : np));
    for (size_t i = 0; i < nout; i++) d[i] = out[0][i];
    TU_ASSERT_CLOSE("graph output, 2 threads vs 1", out[1], d, nout, 1e-6, 1e-6);
    for (size_t i = 0; i < np; i++) d[i] = g[0][i];
    TU_ASSERT_CLOSE("graph gradients, 2 threads vs 1", g[1], d, np, 1e-6, 1e-6);
    free(d);
    for (int t = 0; t < 2; t++) {
        free(out[t]);
        free(g[t]);
    }
}

/* The net's gradients on a residual and a concat net against finite
 * differences, and 1 vs 2 threads. */
static void test_graph_gradient(void **state)
{
    (void)state;
    cnn_layer_spec_t a[11];
    residual_net(a);
    /* 4x4 images: on 6x6 ones a step of 1e-3 crosses a ReLU's kink that
     * the h vs h/2 test does not see (the estimate meets the analytic
     * gradient as the step shrinks) */
    check_net_gradient(a, 11, (cnn_shape_t){4, 2, 4, 4});
    check_graph_threads(a, 11, (cnn_shape_t){4, 2, 6, 6});
    concat_net(a);
    check_net_gradient(a, 6, (cnn_shape_t){3, 2, 4, 4});
    check_graph_threads(a, 6, (cnn_shape_t){3, 2, 4, 4});
}

static void test_net_gradient(void **state)
{
    /* avgpool rather than maxpool here: a step of 1e-3 can swap two
     * nearly equal maxima, which no step-size check detects reliably;
     * maxpool's gradient is checked exactly in test_layers */
    cnn_layer_spec_t a[] = {
        L("c1", "conv", 4, 3, 1, 1),  L("r1", "relu", 0, 0, 0, 0),
        L("p1", "avgpool", 0, 2, 2, 0), L("c2", "conv", 3, 3, 2, 1),
        L("bn", "batchnorm", 0, 0, 0, 0), L("r2", "relu", 0, 0, 0, 0),
        L("ap", "avgpool", 0, 1, 1, 0), L("f", "flatten", 0, 0, 0, 0),
        L("d1", "dense", 6, 0, 0, 0), L("do", "dropout", 0, 0, 0, 0),
        L("d2", "dense", 3, 0, 0, 0),
    };
    a[9].p = 0.25f;
    check_net_gradient(a, 11, (cnn_shape_t){4, 2, 9, 9});
    cnn_layer_spec_t b[] = {L("c1", "conv", 5, 3, 1, 0), L("g", "gap", 0, 0, 0, 0),
                            L("f", "flatten", 0, 0, 0, 0), L("d", "dense", 4, 0, 0, 0)};
    check_net_gradient(b, 4, (cnn_shape_t){3, 3, 6, 5});
}

/* The net runs a ReLU's backward pass inside the max pool's after it.
 * Its gradients must equal, bitwise, those of the layers' own backward
 * passes chained one by one: for the vectorized 2x2 window (rows of 9
 * outputs, an odd last column), the general one (3x3, stride 2), and a
 * ReLU as the first layer. Half the conv outputs are negative, so the
 * ReLU's mask matters. */
static void check_relu_pool_fused(const cnn_layer_spec_t *specs, int nl, cnn_shape_t in)
{
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(specs, nl, in, 2, &net), CNN_OK);
    cnn_net_init(net, 21);
    uint64_t seed = 8;
    for (size_t i = 0; i < (size_t)in.n * cnn_shape_image(in); i++)
        net->act[0][i] = (float)tu_uniform(&seed, -1, 1);
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    const size_t nout = (size_t)in.n * net->output.c;
    /* the forward pass one layer at a time, each into a buffer of its own */
    float *ref[16];
    assert_true(nl <= 16);
    for (int i = 0; i < nl; i++) {
        cnn_layer_t *l = &net->layers[i];
        ref[i] = malloc(sizeof(float) * (size_t)in.n * cnn_shape_image(l->out));
        l->ops->forward(l, &ctx, in.n, i ? ref[i - 1] : net->act[0], ref[i]);
    }
    /* the net runs the ReLUs with the max pools: the same output */
    const float *y = cnn_net_forward(net, &ctx, in.n);
    assert_memory_equal(ref[nl - 1], y, sizeof(float) * nout);
    /* and gives each layer's activations as the layers alone would (a
     * buffer shared with an in-place ReLU holds the ReLU's output) */
    for (int i = 0; i < nl; i++) {
        const int j = i + 1 < nl && net->act[i + 2] == net->act[i + 1] ? i + 1 : i;
        const float *a = cnn_net_layer_output(net, &ctx, in.n, i);
        assert_memory_equal(ref[j], a,
                            sizeof(float) * in.n * cnn_shape_image(net->layers[j].out));
    }
    for (int i = 0; i < nl; i++) free(ref[i]);
    float *dout = malloc(sizeof(float) * nout);
    for (size_t i = 0; i < nout; i++) dout[i] = (float)tu_uniform(&seed, -1, 1);
    cnn_net_zero_grad(net);
    cnn_net_backward(net, &ctx, in.n, dout);
    float *fused = malloc(sizeof(float) * net->nparams);
    memcpy(fused, net->grads, sizeof(float) * net->nparams);

    /* the same chain, one layer's backward at a time */
    cnn_net_zero_grad(net);
    float *g = malloc(sizeof(float) * nout);
    memcpy(g, dout, sizeof(float) * nout);
    for (int i = nl - 1; i >= 0; i--) {
        cnn_layer_t *l = &net->layers[i];
        float *dx = malloc(sizeof(float) * (size_t)in.n * cnn_shape_image(l->in));
        l->ops->backward(l, &ctx, in.n, net->act[i], net->act[i + 1], g, dx);
        free(g);
        g = dx;
    }
    free(g);
    assert_memory_equal(fused, net->grads, sizeof(float) * net->nparams);
    free(fused);
    free(dout);
    cnn_net_free(net);
}

static void test_relu_pool_fused(void **state)
{
    cnn_layer_spec_t a[] = {
        L("c1", "conv", 4, 3, 1, 1),    L("r1", "relu", 0, 0, 0, 0),
        L("p1", "maxpool", 0, 2, 2, 0), L("c2", "conv", 3, 3, 1, 1),
        L("r2", "relu", 0, 0, 0, 0),    L("p2", "maxpool", 0, 3, 2, 0),
        L("f", "flatten", 0, 0, 0, 0),  L("d", "dense", 5, 0, 0, 0),
    };
    check_relu_pool_fused(a, 8, (cnn_shape_t){3, 2, 9, 19});
    cnn_layer_spec_t b[] = {L("r", "relu", 0, 0, 0, 0), L("p", "maxpool", 0, 2, 2, 0),
                            L("f", "flatten", 0, 0, 0, 0), L("d", "dense", 3, 0, 0, 0)};
    check_relu_pool_fused(b, 4, (cnn_shape_t){2, 3, 8, 8});
}

/* Two runs give the same gradients, the second into a block of the
 * caller's (cnn_net_bind_grads, as the shared-memory gradient sum does):
 * zeroed, and every layer's gradients moved into it. */
static void test_reproducible(void **state)
{
    cnn_layer_spec_t a[] = {L("c1", "conv", 8, 3, 1, 1), L("r1", "relu", 0, 0, 0, 0),
                            L("f", "flatten", 0, 0, 0, 0), L("d", "dense", 5, 0, 0, 0)};
    float *g[2], *bound = NULL;
    for (int run = 0; run < 2; run++) {
        cnn_net_t *net;
        assert_int_equal(cnn_net_create(a, 4, (cnn_shape_t){6, 2, 8, 8}, 2, &net), CNN_OK);
        cnn_net_init(net, 3);
        if (run == 1) {
            size_t bytes = (sizeof(float) * net->nparams + 63) / 64 * 64;
            bound = aligned_alloc(64, bytes);
            assert_non_null(bound);
            memset(bound, 0xff, bytes); /* NaN until bound */
            cnn_net_bind_grads(net, bound);
            assert_ptr_equal(net->grads, bound);
            assert_ptr_equal(net->layers[0].grads, bound);
            assert_ptr_equal(net->layers[3].grads, bound + net->layers[0].sz.params);
            for (size_t i = 0; i < net->nparams; i++) assert_true(bound[i] == 0.0f);
        }
        for (size_t i = 0; i < 6 * 2 * 64; i++) net->act[0][i] = (float)(i % 13) / 13.0f;
        cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
        const float *y = cnn_net_forward(net, &ctx, 6);
        cnn_net_zero_grad(net);
        cnn_net_backward(net, &ctx, 6, y); /* any dout will do */
        g[run] = malloc(sizeof(float) * net->nparams);
        memcpy(g[run], net->grads, sizeof(float) * net->nparams);
        if (run == 1) assert_memory_equal(g[0], g[1], sizeof(float) * net->nparams);
        cnn_net_free(net);
    }
    free(g[0]);
    free(g[1]);
    free(bound);
}

static void test_partial_batch(void **state)
{
    /* forward on fewer images than planned gives the same first rows */
    cnn_layer_spec_t a[] = {L("c1", "conv", 4, 3, 1, 1), L("f", "flatten", 0, 0, 0, 0),
                            L("d", "dense", 3, 0, 0, 0)};
    cnn_net_t *net;
    assert_int_equal(cnn_net_create(a, 3, (cnn_shape_t){8, 1, 5, 5}, 2, &net), CNN_OK);
    cnn_net_init(net, 9);
    for (size_t i = 0; i < 8 * 25; i++) net->act[0][i] = (float)i / 100.0f;
    cnn_ctx_t ctx = cnn_net_ctx(net, 0, 1, 0, 0);
    float full[24];
    memcpy(full, cnn_net_forward(net, &ctx, 8), sizeof full);
    const float *part = cnn_net_forward(net, &ctx, 3);
    assert_memory_equal(full, part, sizeof(float) * 9);
    cnn_net_free(net);
}

/* The plan is what cnn_net_create allocates, and a budget below it
 * refuses before anything is built, naming the layers. */
static void test_plan(void **state)
{
    cnn_layer_spec_t a[] = {L("c1", "conv", 4, 3, 1, 1), L("r1", "relu", 0, 0, 0, 0),
                            L("p1", "maxpool", 0, 2, 2, 0), L("f", "flatten", 0, 0, 0, 0),
                            L("d", "dense", 3, 0, 0, 0)};
    const cnn_shape_t in = {8, 2, 6, 6};
    cnn_net_plan_t plan;
    cnn_net_t *net;
    assert_int_equal(cnn_net_plan(a, 5, in, 2, &plan), CNN_OK);
    assert_int_equal(cnn_net_create(a, 5, in, 2, &net), CNN_OK);
    assert_int_equal(plan.nparams, net->nparams);
    assert_int_equal(plan.nstate, net->nstate);
    assert_int_equal(plan.output.c, 3);
    assert_int_equal(plan.layers[0].params, (4 * 2 * 9 + 4) * sizeof(float));
    assert_int_equal(plan.layers[0].grads, plan.layers[0].params);
    assert_int_equal(plan.layers[0].act, 8 * 4 * 6 * 6 * sizeof(float));
    assert_int_equal(plan.layers[1].act, 0); /* in place */
    assert_int_equal(plan.input, 8 * 2 * 6 * 6 * sizeof(float));
    assert_int_equal(plan.dbuf, 2 * plan.layers[0].act);
    size_t sum = plan.input + plan.dbuf + plan.work;
    for (int i = 0; i < 5; i++) {
        const cnn_net_plan_layer_t *pl = &plan.layers[i];
        assert_int_equal(pl->total, pl->params + pl->grads + pl->state + pl->cache + pl->act);
        sum += pl->total;
    }
    /* the arenas round each block up to 64 bytes */
    assert_true(plan.total >= sum && plan.total <= sum + 5 * 64);
    cnn_net_free(net);

    const cnn_mem_item_t extra[] = {{"optimizer state", 1000}, {"data set", 2000}};
    assert_int_equal(cnn_net_plan_bytes(&plan, extra, 2), plan.total + 3000);
    assert_int_equal(cnn_net_plan_check(&plan, a, extra, 2, plan.total + 3000, "test"), CNN_OK);
    assert_int_equal(cnn_net_plan_check(&plan, a, extra, 2, plan.total + 2999, "test budget"),
                     CNN_ENOMEM);
    const char *msg = cnn_error_message();
    assert_non_null(strstr(msg, "over the budget of"));
    assert_non_null(strstr(msg, "(test budget)"));
    assert_non_null(strstr(msg, "c1 (conv)"));
    assert_non_null(strstr(msg, "d (dense)"));
    assert_non_null(strstr(msg, "data set"));
    cnn_net_plan_free(&plan);
    cnn_net_plan_free(&plan); /* twice is harmless */

    /* over the budget: refused, *out NULL; within it: built */
    net = (cnn_net_t *)&net;
    assert_int_equal(cnn_net_create_within(a, 5, in, 2, NULL, 0, 1024, "1 KB", &net), CNN_ENOMEM);
    assert_null(net);
    assert_int_equal(cnn_net_create_within(a, 5, in, 2, NULL, 0, 1 << 20, "1 MB", &net), CNN_OK);
    assert_non_null(net);
    cnn_net_free(net);
    /* a shape error is still a config error */
    assert_int_equal(cnn_net_plan(a, 5, (cnn_shape_t){8, 2, 1, 1}, 2, &plan), CNN_ECONFIG);
    assert_null(plan.layers);
}

/* Sizes that do not fit in size_t saturate: the plan is over every
 * budget, and cnn_net_create refuses it without allocating. */
static void test_plan_overflow(void **state)
{
    cnn_layer_spec_t a[] = {L("r", "relu", 0, 0, 0, 0), L("d", "dense", 10, 0, 0, 0)};
    const cnn_shape_t huge = {65536, 65536, 65536, 65536};
    cnn_net_plan_t plan;
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_plan(a, 1, huge, 1, &plan), CNN_OK);
    assert_int_equal(plan.input, SIZE_MAX);
    assert_int_equal(plan.total, SIZE_MAX);
    assert_int_equal(cnn_net_plan_check(&plan, a, NULL, 0, CNN_MEM_UNLIMITED, "none"), CNN_ENOMEM);
    assert_non_null(strstr(cnn_error_message(), "does not fit"));
    cnn_net_plan_free(&plan);
    assert_int_equal(cnn_net_create(a, 1, huge, 1, &net), CNN_ENOMEM);
    assert_null(net);
    /* a wide layer on a large image: in range for size_t, over a budget */
    cnn_layer_spec_t c[] = {L("conv1", "conv", 64, 3, 1, 4096)};
    assert_int_equal(cnn_net_plan(c, 1, (cnn_shape_t){64, 1, 28, 28}, 1, &plan), CNN_OK);
    assert_true(plan.layers[0].act > ((size_t)64 << 30));
    assert_int_equal(cnn_net_plan_check(&plan, c, NULL, 0, (uint64_t)1 << 30, "1 GB"),
                     CNN_ENOMEM);
    assert_non_null(strstr(cnn_error_message(), "conv1 (conv)"));
    cnn_net_plan_free(&plan);
    /* the saturating helpers */
    assert_int_equal(cnn_mem_mul(SIZE_MAX / 2 + 1, 2), SIZE_MAX);
    assert_int_equal(cnn_mem_mul(SIZE_MAX, 0), 0);
    assert_int_equal(cnn_mem_add(SIZE_MAX - 1, 2), SIZE_MAX);
    assert_int_equal(cnn_mem_add(SIZE_MAX, 0), SIZE_MAX);
    assert_int_equal(cnn_mem_mul(3, 4), 12);
}

/* The double net: its forward pass in training mode (batch statistics,
 * the float layer's dropout mask) agrees with the float net's to float
 * precision, and its backward pass with central differences of its own
 * loss in double to about 1e-8. */
static void test_net64(void **state)
{
    cnn_layer_spec_t a[] = {
        L("c1", "conv", 4, 3, 1, 1),  L("t1", "tanh", 0, 0, 0, 0),
        L("p1", "maxpool", 0, 2, 2, 0), L("c2", "conv", 3, 3, 2, 1),
        L("bn", "batchnorm", 0, 0, 0, 0), L("s2", "sigmoid", 0, 0, 0, 0),
        L("f", "flatten", 0, 0, 0, 0), L("d1", "dense", 6, 0, 0, 0),
        L("do", "dropout", 0, 0, 0, 0), L("d2", "dense", 3, 0, 0, 0),
    };
    a[8].p = 0.25f;
    const int nl = 10, k = 4, labels[4] = {0, 2, 1, 2};
    cnn_net_t *net = NULL;
    cnn_net64_t *n64 = NULL;
    assert_int_equal(cnn_net_create(a, nl, (cnn_shape_t){k, 2, 9, 9}, 1, &net), CNN_OK);
    cnn_net_init(net, 3);
    assert_int_equal(cnn_net64_create(net, &n64), CNN_OK);
    const size_t nin = (size_t)k * cnn_shape_image(net->input);
    uint64_t seed = 9;
    for (size_t i = 0; i < nin; i++)
        n64->act[0][i] = net->act[0][i] = (float)tu_uniform(&seed, -1, 1);
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 77, 0, 0);
    const float *yf = cnn_net_forward(net, &ctx, k);
    const double *y = cnn_net64_forward(n64, 1, 77, k);
    const int K = net->output.c;
    TU_ASSERT_CLOSE("net64 forward", yf, y, (size_t)k * K, 1e-5, 1e-4);
    double dz[12];
    cnn_net64_loss(y, labels, k, K, 0, dz);
    cnn_net64_zero_grad(n64);
    cnn_net64_backward(n64, 1, k, dz);
    /* every 7th parameter and input value against central differences */
    double *xin = malloc(sizeof(double) * nin);
    memcpy(xin, n64->act[0], sizeof(double) * nin);
    for (int pass = 0; pass < 2; pass++) {
        double *v = pass ? xin : n64->params, *g = pass ? n64->grad[0] : n64->grads;
        const size_t nv = pass ? nin : n64->nparams;
        for (size_t i = 0; i < nv; i += 7) {
            const double keep = v[i], h = 1e-5;
            double f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                v[i] = keep + (sgn ? -h : h);
                memcpy(n64->act[0], xin, sizeof(double) * nin);
                f[sgn] = cnn_net64_loss(cnn_net64_forward(n64, 1, 77, k), labels, k, K, 0, NULL);
            }
            v[i] = keep;
            const double fd = (f[0] - f[1]) / (2 * h);
            if (fabs(fd - g[i]) > 1e-8 * fmax(1, fabs(g[i])))
                fail_msg("net64 %s[%zu]: analytic %.12g, differences %.12g", pass ? "dx" : "dparams",
                         i, g[i], fd);
        }
    }
    free(xin);
    cnn_net64_free(n64);
    cnn_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmnist_ref_shape), cmocka_unit_test(test_net_gradient),
        cmocka_unit_test(test_reproducible), cmocka_unit_test(test_partial_batch),
        cmocka_unit_test(test_relu_pool_fused), cmocka_unit_test(test_plan),
        cmocka_unit_test(test_plan_overflow), cmocka_unit_test(test_graph_plan),
        cmocka_unit_test(test_graph_errors), cmocka_unit_test(test_graph_gradient),
        cmocka_unit_test(test_graph_infer),   cmocka_unit_test(test_graph_fold),
        cmocka_unit_test(test_net64),        cmocka_unit_test(test_relu_out),
        cmocka_unit_test(test_fanout_add),
        cmocka_unit_test(test_affine_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
