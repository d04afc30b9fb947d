/* util.c - small elementwise helpers. */
#include "mpicnn/kernels.h"

#include <math.h>

int cnn_all_finite(const float *x, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= isfinite(x[i]) ? 1 : 0;
    return ok;
}
