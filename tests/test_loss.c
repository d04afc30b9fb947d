/* test_loss.c - softmax cross-entropy with label smoothing: the loss
 * against a naive double reference (target (1-e) onehot + e/K), the
 * gradient against the reference's analytic gradient and against central
 * finite differences of the reference, with the worst difference reported
 * on a failure; e = 0 is the plain loss bit for bit; large logits stay
 * finite. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn/kernels.h"
#include "mpicnn/loss.h"
#include "testutil.h"

enum { N = 6, K = 5 };
#define FD_STEP 1e-5
#define GRAD_ATOL 1e-6
#define GRAD_RTOL 1e-4

/* sum over samples of sum_j t_j (lse(z) - z_j), t = (1-e) onehot + e/K */
static double ref_loss(const double *z, const int *labels, int n, int k, double e)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        const double *zi = z + (size_t)i * k;
        double m = zi[0], se = 0;
        for (int j = 1; j < k; j++) m = fmax(m, zi[j]);
        for (int j = 0; j < k; j++) se += exp(zi[j] - m);
        const double lse = m + log(se);
        for (int j = 0; j < k; j++) {
            const double t = (j == labels[i] ? 1.0 - e : 0.0) + e / k;
            total += t * (lse - zi[j]);
        }
    }
    return total;
}

/* d(sum)/dz * scale = scale (softmax(z) - t) */
static void ref_grad(const double *z, const int *labels, int n, int k, double e, double scale,
                     double *d)
{
    for (int i = 0; i < n; i++) {
        const double *zi = z + (size_t)i * k;
        double m = zi[0], se = 0;
        for (int j = 1; j < k; j++) m = fmax(m, zi[j]);
        for (int j = 0; j < k; j++) se += exp(zi[j] - m);
        for (int j = 0; j < k; j++) {
            const double t = (j == labels[i] ? 1.0 - e : 0.0) + e / k;
            d[(size_t)i * k + j] = scale * (exp(zi[j] - m) / se - t);
        }
    }
}

static void check_smoothing(double e)
{
    uint64_t seed = 7 + (uint64_t)(e * 1000);
    double z[N * K], rd[N * K];
    float zf[N * K], d[N * K];
    const int labels[N] = {0, 4, 1, 1, 2, 3};
    for (int i = 0; i < N * K; i++) z[i] = zf[i] = (float)tu_uniform(&seed, -4, 4);
    double sum;
    cnn_loss_softmax_ce_smooth(zf, labels, N, K, e, 1.0f / N, &sum, d);
    const double want = ref_loss(z, labels, N, K, e);
    if (fabs(sum - want) > 1e-9 * (1 + fabs(want)))
        fail_msg("e = %g: loss %.17g, reference %.17g", e, sum, want);
    ref_grad(z, labels, N, K, e, 1.0 / N, rd);
    TU_ASSERT_CLOSE("smoothed softmax_ce gradient", d, rd, N * K, 1e-7, 1e-6);
    for (int i = 0; i < N * K; i++) {
        const double keep = z[i];
        z[i] = keep + FD_STEP;
        const double fp = ref_loss(z, labels, N, K, e);
        z[i] = keep - FD_STEP;
        const double fm = ref_loss(z, labels, N, K, e);
        z[i] = keep;
        const double fd = (fp - fm) / (2 * FD_STEP) / N;
        if (fabs(d[i] - fd) > GRAD_ATOL + GRAD_RTOL * fabs(fd))
            fail_msg("e = %g: gradient at [%d]: %.9g vs fd %.9g", e, i, d[i], fd);
    }
    /* without dlogits the same sum */
    double sum2;
    cnn_loss_softmax_ce_smooth(zf, labels, N, K, e, 1.0f / N, &sum2, NULL);
    assert_true(sum2 == sum);
}

static void test_smoothing(void **state)
{
    (void)state;
    const double es[] = {0.0, 0.1, 0.3, 0.9};
    for (size_t i = 0; i < sizeof es / sizeof es[0]; i++) check_smoothing(es[i]);
}

/* e = 0 is cnn_loss_softmax_ce exactly */
static void test_zero_is_plain(void **state)
{
    (void)state;
    uint64_t seed = 3;
    float z[N * K], d0[N * K], d1[N * K];
    const int labels[N] = {2, 2, 0, 4, 3, 1};
    for (int i = 0; i < N * K; i++) z[i] = (float)tu_uniform(&seed, -6, 6);
    double s0, s1;
    cnn_loss_softmax_ce.compute(z, labels, N, K, 0.125f, &s0, d0);
    cnn_loss_softmax_ce_smooth(z, labels, N, K, 0.0, 0.125f, &s1, d1);
    assert_true(s0 == s1);
    assert_memory_equal(d0, d1, sizeof d0);
}

/* a sample's smoothed loss is at least the entropy of its target, and
 * large logits stay finite */
static void test_bounds(void **state)
{
    (void)state;
    float z[K] = {1e4f, -1e4f, 0, 3, -2}, d[K];
    const int label = 0;
    double sum;
    cnn_loss_softmax_ce_smooth(z, &label, 1, K, 0.2, 1.0f, &sum, d);
    assert_true(isfinite(sum));
    assert_true(cnn_all_finite(d, K));
    const double hi = 1 - 0.2 + 0.2 / K, lo = 0.2 / K;
    const double entropy = -(hi * log(hi) + (K - 1) * lo * log(lo));
    float zt[K];
    for (int j = 0; j < K; j++) zt[j] = (float)log(j == 0 ? hi : lo);
    cnn_loss_softmax_ce_smooth(zt, &label, 1, K, 0.2, 1.0f, &sum, d);
    assert_float_equal(sum, entropy, 1e-6); /* the minimum: logits = log target */
    for (int j = 0; j < K; j++) assert_float_equal(d[j], 0.0, 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smoothing),
        cmocka_unit_test(test_zero_is_plain),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
