/* rng.c - counter-based randomness and hashing (rng.h). */
#include "mpicnn/rng.h"

#include <math.h>
#include <pthread.h>

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

/* CRC-32C by slicing-by-8: table[0] is the byte-at-a-time table,
 * table[k][b] the CRC of byte b followed by k zero bytes. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t i = 0; i < 256; i++) {
            const uint32_t c = crc_table[k - 1][i];
            crc_table[k][i] = (c >> 8) ^ crc_table[0][c & 0xff];
        }
}

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t cnn_crc32c(uint32_t crc, const void *data, size_t n)
{
    const uint32_t(*t)[256] = (const uint32_t(*)[256])crc_table;
    const unsigned char *p = data;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        const uint32_t lo = crc ^ load_le32(p), hi = load_le32(p + 4);
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
              t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
              t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    }
    while (n--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
