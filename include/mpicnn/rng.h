/* rng.h - the one module of randomness and hashing (and checksums).
 *
 * Everything random in mpicnn is counter-based: a value is a hash of
 * (seed, stream, index, ...), never the next draw of a shared generator,
 * so that it depends neither on the thread or rank count nor on where a
 * run was resumed. Sequential draws (a shuffle) use a splitmix64 state
 * seeded from such a hash. */
#ifndef MPICNN_RNG_H
#define MPICNN_RNG_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64's finaliser of x + golden ratio: a bijective 64-bit mix. */
static inline uint64_t cnn_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The next value of a splitmix64 generator whose state is *state. */
static inline uint64_t cnn_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, m), m >= 1, without modulo bias (rejection). */
uint64_t cnn_rng_below(uint64_t *state, uint64_t m);

/* A hash of four 64-bit words (chained cnn_mix64): the counter-based
 * source of every random value. */
uint64_t cnn_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

/* Uniform float in [0, 1) from a hash's top 24 bits. */
static inline float cnn_u01(uint64_t h)
{
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal deviate number i of (seed, stream) (Box-Muller). */
float cnn_randn(uint64_t seed, uint64_t stream, uint64_t i);

/* FNV-1a 64-bit over n bytes, continuing from h (start with
 * CNN_FNV1A_INIT). */
#define CNN_FNV1A_INIT 14695981039346656037ULL
uint64_t cnn_fnv1a(uint64_t h, const void *data, size_t n);

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and
 * final xor 0xFFFFFFFF: the CRC of iSCSI, ext4 and Python's `crc32c`
 * package) of n bytes, continuing from crc: start with 0, and
 * cnn_crc32c(cnn_crc32c(0, a, na), b, nb) is the CRC of a followed by b.
 * cnn_crc32c(0, "123456789", 9) = 0xE3069283. Thread-safe. */
uint32_t cnn_crc32c(uint32_t crc, const void *data, size_t n);

#endif
