/* testutil.h - helpers shared by the cmocka programs. */
#ifndef MPICNN_TESTUTIL_H
#define MPICNN_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Deterministic uniform in [lo, hi) (xorshift64*). */
static inline double tu_uniform(uint64_t *s, double lo, double hi)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint64_t r = *s * 2685821657736338717ULL;
    return lo + (hi - lo) * (double)(r >> 11) / 9007199254740992.0;
}

/* Largest |a-b| / (atol + rtol*|b|) over n values; > 1 means a failure.
 * *where gets the index of the worst element. */
static inline double tu_worst(const float *a, const double *b, size_t n,
                              double atol, double rtol, size_t *where)
{
    double worst = 0.0;
    *where = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (!(d <= worst)) { /* catches NaN too */
            worst = isnan(d) ? INFINITY : d;
            *where = i;
        }
    }
    return worst;
}

/* Fails the test with the largest difference and where it was. */
#define TU_ASSERT_CLOSE(what, a, b, n, atol, rtol)                             \
    do {                                                                       \
        size_t tu_w_;                                                          \
        double tu_r_ = tu_worst((a), (b), (n), (atol), (rtol), &tu_w_);        \
        if (tu_r_ > 1.0)                                                       \
            fail_msg("%s: worst difference at [%zu]: got %.9g, want %.9g "     \
                     "(|diff| = %.3g, tolerance %.3g + %.3g*|want|)",          \
                     (what), tu_w_, (double)(a)[tu_w_], (b)[tu_w_],            \
                     fabs((double)(a)[tu_w_] - (b)[tu_w_]), (double)(atol),    \
                     (double)(rtol));                                          \
    } while (0)

#endif
