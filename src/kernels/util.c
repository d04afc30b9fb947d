/* util.c - counter-based randomness and small elementwise helpers. */
#include "mpicnn/kernels.h"

#include <math.h>

static inline uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t cnn_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    uint64_t h = splitmix64(a);
    h = splitmix64(h ^ b);
    h = splitmix64(h ^ c);
    return splitmix64(h ^ d);
}

float cnn_randn(uint64_t seed, uint64_t stream, uint64_t i)
{
    /* Box-Muller on two independent uniforms; (0,1] avoids log(0). */
    uint64_t h1 = cnn_hash4(seed, stream, i, 0x5eed1);
    uint64_t h2 = cnn_hash4(seed, stream, i, 0x5eed2);
    double u1 = ((double)(h1 >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(h2 >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

int cnn_all_finite(const float *x, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= isfinite(x[i]) ? 1 : 0;
    return ok;
}
