/* test_optim.c - each optimizer against the torch.optim formulas written
 * out in double, over several steps with weight decay; AdamW and LARS
 * against naive references over a table of small tensors; the tensor
 * table of a net; the L2 term; a convergence check on a quadratic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn/optim.h"
#include "testutil.h"

enum { N = 37, STEPS = 6 };

static void check_kind(cnn_optim_kind_t kind)
{
    cnn_optim_t *o;
    assert_int_equal(cnn_optim_create(kind, N, &o), CNN_OK);
    o->momentum = 0.8;
    o->weight_decay = 0.01;
    uint64_t seed = 17 + kind;
    float w[N], g[N];
    double rw[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++) rw[i] = w[i] = (float)tu_uniform(&seed, -1, 1);
    for (int t = 1; t <= STEPS; t++) {
        const double lr = 0.1 / t;
        for (int i = 0; i < N; i++) g[i] = (float)tu_uniform(&seed, -1, 1);
        cnn_optim_step(o, w, g, lr, 2);
        for (int i = 0; i < N; i++) {
            double gi = g[i] + 0.01 * rw[i];
            switch (kind) {
            case CNN_SGD: rw[i] -= lr * gi; break;
            case CNN_MOMENTUM: rm[i] = 0.8 * rm[i] + gi; rw[i] -= lr * rm[i]; break;
            case CNN_NESTEROV: rm[i] = 0.8 * rm[i] + gi; rw[i] -= lr * (gi + 0.8 * rm[i]); break;
            case CNN_ADAM:
                rm[i] = 0.9 * rm[i] + 0.1 * gi;
                rv[i] = 0.999 * rv[i] + 0.001 * gi * gi;
                rw[i] -= lr * (rm[i] / (1 - pow(0.9, t))) /
                         (sqrt(rv[i] / (1 - pow(0.999, t))) + 1e-8);
                break;
            default: break; /* adamw, lars: their own tests */
            }
        }
        TU_ASSERT_CLOSE(cnn_optim_name(kind), w, rw, N, 1e-6, 1e-5);
    }
    assert_int_equal(o->t, STEPS);
    cnn_optim_free(o);
}

static void test_formulas(void **state)
{
    for (int k = CNN_SGD; k <= CNN_ADAM; k++) check_kind((cnn_optim_kind_t)k);
}

/* Three tensors over N floats: a 2-D weight, a 1-D bias, a weight. */
static const cnn_optim_tensor_t table[3] = {
    {.offset = 0, .count = 20, .decay = 1},
    {.offset = 20, .count = 5, .decay = 0},
    {.offset = 25, .count = 12, .decay = 1},
};

static cnn_optim_t *with_table(cnn_optim_kind_t kind)
{
    cnn_optim_t *o;
    assert_int_equal(cnn_optim_create(kind, N, &o), CNN_OK);
    assert_int_equal(cnn_optim_set_tensors(o, table, 3), CNN_OK);
    assert_int_equal(o->ntensors, 3);
    return o;
}

/* a table must tile the arena */
static void test_bad_table(void **state)
{
    cnn_optim_t *o = with_table(CNN_LARS);
    cnn_optim_tensor_t gap[2] = {{.offset = 0, .count = 10}, {.offset = 11, .count = 26}};
    cnn_optim_tensor_t short_[1] = {{.offset = 0, .count = 36}};
    assert_int_equal(cnn_optim_set_tensors(o, gap, 2), CNN_EINTERNAL);
    assert_int_equal(cnn_optim_set_tensors(o, short_, 1), CNN_EINTERNAL);
    assert_int_equal(o->ntensors, 3); /* unchanged */
    cnn_optim_free(o);
}

/* lars and adamw give the same bits on 1 and 3 threads, on tensors large
 * enough to be split between threads */
static void test_threads(void **state)
{
    enum { BIG = 20000 };
    const cnn_optim_tensor_t big[3] = {{.offset = 0, .count = 12000, .decay = 1},
                                       {.offset = 12000, .count = 100, .decay = 0},
                                       {.offset = 12100, .count = 7900, .decay = 1}};
    const cnn_optim_kind_t kinds[2] = {CNN_LARS, CNN_ADAMW};
    float *w1 = malloc(3 * BIG * sizeof(float)), *w3 = w1 + BIG, *g = w3 + BIG;
    assert_non_null(w1);
    for (int k = 0; k < 2; k++) {
        cnn_optim_t *o1, *o3;
        assert_int_equal(cnn_optim_create(kinds[k], BIG, &o1), CNN_OK);
        assert_int_equal(cnn_optim_create(kinds[k], BIG, &o3), CNN_OK);
        assert_int_equal(cnn_optim_set_tensors(o1, big, 3), CNN_OK);
        assert_int_equal(cnn_optim_set_tensors(o3, big, 3), CNN_OK);
        o1->weight_decay = o3->weight_decay = 0.01;
        uint64_t seed = 11;
        for (int i = 0; i < BIG; i++) w1[i] = w3[i] = (float)tu_uniform(&seed, -1, 1);
        for (int t = 0; t < 3; t++) {
            for (int i = 0; i < BIG; i++) g[i] = (float)tu_uniform(&seed, -1, 1);
            cnn_optim_step(o1, w1, g, 0.1, 1);
            cnn_optim_step(o3, w3, g, 0.1, 3);
        }
        assert_memory_equal(w1, w3, BIG * sizeof(float));
        assert_true(cnn_optim_l2(o1, w1, 1) == cnn_optim_l2(o3, w3, 3));
        cnn_optim_free(o1);
        cnn_optim_free(o3);
    }
    free(w1);
}

/* adamw: w -= lr wd w, then Adam on the raw gradient (torch.optim.AdamW) */
static void test_adamw(void **state)
{
    cnn_optim_t *o;
    assert_int_equal(cnn_optim_create(CNN_ADAMW, N, &o), CNN_OK);
    assert_int_equal(cnn_optim_state_slots(o), 2);
    o->weight_decay = 0.05;
    o->beta1 = 0.8;
    o->beta2 = 0.99;
    uint64_t seed = 99;
    float w[N], g[N];
    double rw[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++) rw[i] = w[i] = (float)tu_uniform(&seed, -1, 1);
    for (int t = 1; t <= STEPS; t++) {
        const double lr = 0.03 / t;
        for (int i = 0; i < N; i++) g[i] = (float)tu_uniform(&seed, -1, 1);
        cnn_optim_step(o, w, g, lr, 2);
        for (int i = 0; i < N; i++) {
            rw[i] -= lr * 0.05 * rw[i];
            rm[i] = 0.8 * rm[i] + 0.2 * g[i];
            rv[i] = 0.99 * rv[i] + 0.01 * g[i] * g[i];
            rw[i] -= lr * (rm[i] / (1 - pow(0.8, t))) / (sqrt(rv[i] / (1 - pow(0.99, t))) + 1e-8);
        }
        TU_ASSERT_CLOSE("adamw", w, rw, N, 1e-6, 1e-5);
    }
    cnn_optim_free(o);
}

/* lars: per tensor local = eta |w| / (|g| + wd |w|) on the decayed ones
 * (1 on the bias and when a norm is 0), v = mu v + local (g + wd w),
 * w -= lr v */
static void test_lars(void **state)
{
    const double eta = 0.02, wd = 0.01, mu = 0.9;
    cnn_optim_t *o = with_table(CNN_LARS);
    assert_int_equal(cnn_optim_state_slots(o), 1);
    o->weight_decay = wd;
    o->trust_coefficient = eta;
    o->momentum = mu;
    uint64_t seed = 5;
    float w[N], g[N];
    double rw[N], rv[N] = {0};
    for (int i = 0; i < N; i++) rw[i] = w[i] = (float)tu_uniform(&seed, -1, 1);
    for (int i = 25; i < N; i++) rw[i] = w[i] = 0; /* |w| = 0: local 1 */
    for (int t = 1; t <= STEPS; t++) {
        const double lr = 0.5 / t;
        for (int i = 0; i < N; i++) g[i] = (float)tu_uniform(&seed, -1, 1);
        double local[3], twd[3];
        for (int k = 0; k < 3; k++) {
            double ww = 0, gg = 0;
            for (size_t i = table[k].offset; i < table[k].offset + table[k].count; i++) {
                ww += rw[i] * rw[i];
                gg += (double)g[i] * g[i];
            }
            const double wn = sqrt(ww), gn = sqrt(gg);
            local[k] = table[k].decay && wn > 0 && gn > 0 ? eta * wn / (gn + wd * wn) : 1.0;
            twd[k] = table[k].decay ? wd : 0.0;
        }
        cnn_optim_step(o, w, g, lr, 2);
        for (int k = 0; k < 3; k++)
            for (size_t i = table[k].offset; i < table[k].offset + table[k].count; i++) {
                rv[i] = mu * rv[i] + local[k] * (g[i] + twd[k] * rw[i]);
                rw[i] -= lr * rv[i];
            }
        TU_ASSERT_CLOSE("lars", w, rw, N, 1e-6, 1e-5);
        /* after the first step the last tensor is no longer 0 */
    }
    cnn_optim_free(o);
}

/* The L2 term: wd/2 sum w^2, over the decayed tensors for lars */
static void test_l2(void **state)
{
    float w[N];
    double all = 0, decayed = 0;
    for (int i = 0; i < N; i++) {
        w[i] = 0.1f * (float)(i - 10);
        all += (double)w[i] * w[i];
        if (i < 20 || i >= 25) decayed += (double)w[i] * w[i];
    }
    cnn_optim_t *o = with_table(CNN_MOMENTUM);
    assert_true(cnn_optim_l2(o, w, 2) == 0.0); /* no decay */
    o->weight_decay = 0.2;
    assert_float_equal(cnn_optim_l2(o, w, 2), 0.1 * all, 1e-12);
    cnn_optim_free(o);
    o = with_table(CNN_LARS);
    o->weight_decay = 0.2;
    assert_float_equal(cnn_optim_l2(o, w, 1), 0.1 * decayed, 1e-12);
    assert_true(cnn_optim_l2(o, w, 1) == cnn_optim_l2(o, w, 3));
    cnn_optim_free(o);
}

/* A net's tensors: weights decay, biases and batchnorm parameters not;
 * together they tile the arena. */
static void test_net_tensors(void **state)
{
    cnn_layer_spec_t specs[4] = {
        {.name = "c", .type = "conv", .filters = 3, .kh = 3, .kw = 3, .stride = 1},
        {.name = "b", .type = "batchnorm", .eps = 1e-5f, .momentum = 0.1f},
        {.name = "f", .type = "flatten"},
        {.name = "d", .type = "dense", .filters = 2},
    };
    cnn_net_t *net = NULL;
    const cnn_shape_t in = {2, 1, 5, 5};
    if (cnn_net_create(specs, 4, in, 1, &net) != CNN_OK) fail_msg("%s", cnn_error_message());
    cnn_optim_t *o;
    assert_int_equal(cnn_optim_create(CNN_LARS, net->nparams, &o), CNN_OK);
    assert_int_equal(cnn_optim_use_net(o, net), CNN_OK);
    const int want[6] = {1, 0, 0, 0, 1, 0}; /* conv w, b; bn w, b; dense w, b */
    assert_int_equal(o->ntensors, 6);
    size_t next = 0;
    for (int k = 0; k < 6; k++) {
        assert_int_equal(o->tensors[k].decay, want[k]);
        assert_int_equal(o->tensors[k].offset, next);
        next += o->tensors[k].count;
    }
    assert_int_equal(next, net->nparams);
    assert_int_equal(o->tensors[0].count, 27);
    assert_int_equal(o->tensors[1].count, 3);
    cnn_optim_free(o);
    cnn_net_free(net);
}

static void test_converges(void **state)
{
    /* minimise sum (w - 3)^2 */
    for (int k = CNN_SGD; k <= CNN_ADAMW; k++) {
        cnn_optim_t *o;
        assert_int_equal(cnn_optim_create((cnn_optim_kind_t)k, 4, &o), CNN_OK);
        float w[4] = {0, 1, -2, 10}, g[4];
        for (int t = 0; t < 500; t++) {
            for (int i = 0; i < 4; i++) g[i] = 2 * (w[i] - 3);
            cnn_optim_step(o, w, g, k >= CNN_ADAM ? 0.05 : 0.02, 1);
        }
        for (int i = 0; i < 4; i++) assert_float_equal(w[i], 3.0, 1e-2);
        cnn_optim_free(o);
    }
}

static void test_names(void **state)
{
    assert_int_equal(cnn_optim_kind("nesterov"), CNN_NESTEROV);
    assert_int_equal(cnn_optim_kind("rmsprop"), -1);
    assert_int_equal(cnn_optim_kind("adamw"), CNN_ADAMW);
    assert_int_equal(cnn_optim_kind("lars"), CNN_LARS);
    assert_string_equal(cnn_optim_name(CNN_LARS), "lars");
    cnn_optim_t *o;
    assert_int_equal(cnn_optim_create(CNN_ADAM, 3, &o), CNN_OK);
    assert_int_equal(cnn_optim_state_slots(o), 2);
    cnn_optim_free(o);
    cnn_optim_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formulas),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_lars),
        cmocka_unit_test(test_l2),
        cmocka_unit_test(test_bad_table),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_net_tensors),
        cmocka_unit_test(test_converges),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
