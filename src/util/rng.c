/* rng.c - counter-based randomness and hashing (rng.h). */
#include "mpicnn/rng.h"

#include <math.h>

uint64_t cnn_rng_below(uint64_t *state, uint64_t m)
{
    uint64_t limit = -m % m; /* 2^64 mod m: values below it are rejected */
    uint64_t r;
    do r = cnn_rng_next(state);
    while (r < limit);
    return r % m;
}

uint64_t cnn_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    uint64_t h = cnn_mix64(a);
    h = cnn_mix64(h ^ b);
    h = cnn_mix64(h ^ c);
    return cnn_mix64(h ^ d);
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

uint64_t cnn_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
