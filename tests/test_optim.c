/* test_optim.c - each optimizer against the torch.optim formulas written
 * out in double, over several steps with weight decay, and a convergence
 * check on a quadratic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

static void test_converges(void **state)
{
    /* minimise sum (w - 3)^2 */
    for (int k = CNN_SGD; k <= CNN_ADAM; k++) {
        cnn_optim_t *o;
        assert_int_equal(cnn_optim_create((cnn_optim_kind_t)k, 4, &o), CNN_OK);
        float w[4] = {0, 1, -2, 10}, g[4];
        for (int t = 0; t < 500; t++) {
            for (int i = 0; i < 4; i++) g[i] = 2 * (w[i] - 3);
            cnn_optim_step(o, w, g, k == CNN_ADAM ? 0.05 : 0.02, 1);
        }
        for (int i = 0; i < 4; i++) assert_float_equal(w[i], 3.0, 1e-2);
        cnn_optim_free(o);
    }
}

static void test_names(void **state)
{
    assert_int_equal(cnn_optim_kind("nesterov"), CNN_NESTEROV);
    assert_int_equal(cnn_optim_kind("rmsprop"), -1);
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
        cmocka_unit_test(test_converges),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
