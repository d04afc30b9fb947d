/* simd.h - what the hand-vectorized kernels share: GCC vector types of 8
 * lanes and the attribute that compiles a kernel twice, for AVX2 + FMA
 * (x86-64-v3) and for the baseline x86-64, with the loader picking one
 * for the CPU (GCC's target_clones; the rest of mpicnn is built for the
 * baseline unless configured with --enable-native). The sanitizer build
 * keeps the baseline only: its checks do not cover the loader's resolver. */
#ifndef MPICNN_SIMD_H
#define MPICNN_SIMD_H

#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#define VW 8 /* lanes per vector */

/* 8 floats or 8 int32, loaded and stored at any 4-byte alignment */
typedef float v8 __attribute__((vector_size(4 * VW), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(4 * VW), aligned(4)));

/* 16 floats or int32 (AVX-512), at any 4-byte alignment, for the kernels
 * that come in a 16-lane version too, built for x86-64-v4 (V16_ATTR) and
 * run where cnn_kernels_wide() says the CPU has it. GCC on x86-64 only:
 * the 16-lane shuffles are __builtin_shuffle's. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_V16 1
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4)));
#define V16_ATTR __attribute__((target("arch=x86-64-v4")))
#endif

/* 1: the 16-lane kernels may run (the CPU has AVX-512 F, VL, BW and DQ,
 * and cnn_kernels_set_lanes has not capped the width at 8) */
int cnn_kernels_wide(void);

/* 4 of them, for short rows */
typedef float v4 __attribute__((vector_size(16), aligned(4)));
typedef int32_t v4i __attribute__((vector_size(16), aligned(4)));

/* SHUFFLE(a, b, i...): lanes i... of the 2N lanes of the N-lane vectors
 * a, b. GCC 12 and clang have __builtin_shufflevector (the fuzz targets
 * build with clang); older GCC has __builtin_shuffle. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define CNN_SHUFFLEVECTOR 1
#endif
#endif
#ifdef CNN_SHUFFLEVECTOR
#define SHUFFLE8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define SHUFFLE4(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUFFLE8(a, b, ...) __builtin_shuffle(a, b, (v8i){__VA_ARGS__})
#define SHUFFLE4(a, b, ...) __builtin_shuffle(a, b, (v4i){__VA_ARGS__})
#endif

/* Lanes of two vectors a, b of 8: the even and the odd lanes of the 16
 * (a0 a2 .. b6, a1 a3 .. b7), and a and b interleaved (a0 b0 a1 b1 ..
 * a3 b3, and a4 b4 .. a7 b7): a row of pixels split into its even and
 * odd columns and put back together. The same for vectors of 4. */
#define IDX8_EVEN 0, 2, 4, 6, 8, 10, 12, 14
#define IDX8_ODD 1, 3, 5, 7, 9, 11, 13, 15
#define IDX8_LO 0, 8, 1, 9, 2, 10, 3, 11
#define IDX8_HI 4, 12, 5, 13, 6, 14, 7, 15
#define IDX4_EVEN 0, 2, 4, 6
#define IDX4_ODD 1, 3, 5, 7
#define IDX4_LO 0, 4, 1, 5
#define IDX4_HI 2, 6, 3, 7

/* Vector arguments change the calling convention between instruction
 * sets, and the compilers warn of it (-Wpsabi); the helpers that take
 * vectors are always inlined, so no call passes one. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* Helpers are inlined into each clone, so that they are compiled for the
 * clone's instruction set. */
#define INLINE static inline __attribute__((always_inline))

/* dst[0..n) = src[0..n), in vectors. Image rows are short (14-32 floats
 * in the reference nets), and for them memcpy's call and dispatch cost
 * more than the copy: 20% of an F(4x4) layer's time on 1 thread went to
 * memcpy in the Winograd planes' row copies. (im2col's rows of a whole
 * plane, longer copies, are faster so too where they leave L1:
 * kernels/im2col.c.) */
INLINE void copy_floats(float *dst, const float *src, int n)
{
    if (n >= VW) { /* the last vector overlaps the one before */
        for (int i = 0; i + VW < n; i += VW) *(v8 *)(dst + i) = *(const v8 *)(src + i);
        *(v8 *)(dst + n - VW) = *(const v8 *)(src + n - VW);
        return;
    }
    for (int l = 0; l < VW; l++) /* not a loop to n: that becomes memcpy */
        if (l < n) dst[l] = src[l];
}

/* dst[0..n) += src[0..n): whole vectors, then the last n % 8 one by
 * one (an overlapping vector, as copy_floats takes, would add twice) */
INLINE void add_floats(float *dst, const float *src, int n)
{
    int i = 0;
    for (; i + VW <= n; i += VW) *(v8 *)(dst + i) = *(const v8 *)(dst + i) + *(const v8 *)(src + i);
    for (; i < n; i++) dst[i] += src[i];
}

/* The ReLU of 8 lanes, v > 0 ? v : 0 (0 for NaN and -0, as the relu
 * layer gives) */
INLINE v8 relu8(v8 v) { return (v8)((v8i)v & (v > 0.0f)); }

/* dst[0..n) = the ReLU of src[0..n), as relu8, in vectors as copy_floats */
INLINE void relu_floats(float *dst, const float *src, int n)
{
    if (n >= VW) {
        for (int i = 0; i + VW < n; i += VW) *(v8 *)(dst + i) = relu8(*(const v8 *)(src + i));
        *(v8 *)(dst + n - VW) = relu8(*(const v8 *)(src + n - VW));
        return;
    }
    for (int l = 0; l < VW; l++)
        if (l < n) dst[l] = src[l] > 0.0f ? src[l] : 0.0f;
}

/* dst[0..n) = mask > 0 ? src : 0: the gradient src at a ReLU's output
 * taken back to its input (mask the ReLU's output), as the relu layer's
 * backward pass gives it */
INLINE void relu_grad_floats(float *dst, const float *src, const float *mask, int n)
{
    if (n >= VW) {
        for (int i = 0; i + VW < n; i += VW)
            *(v8 *)(dst + i) = (v8)((v8i) * (const v8 *)(src + i) &
                                    (*(const v8 *)(mask + i) > 0.0f));
        *(v8 *)(dst + n - VW) = (v8)((v8i) * (const v8 *)(src + n - VW) &
                                     (*(const v8 *)(mask + n - VW) > 0.0f));
        return;
    }
    for (int l = 0; l < VW; l++)
        if (l < n) dst[l] = mask[l] > 0.0f ? src[l] : 0.0f;
}

/* dst[0..n) = 0, in vectors, for the same reason. GCC sees the plain
 * loop as a memset and calls it (the empty asm, which may change i as far
 * as GCC knows, keeps the loop): for the Winograd input gradients' rows
 * of 8-32 floats that call was 1.3% of cifar-3layer's training step. */
INLINE void zero_floats(float *dst, int n)
{
    if (n >= VW) {
        for (int i = 0; i + VW < n; i += VW) {
            *(v8 *)(dst + i) = (v8){0};
            __asm__("" : "+r"(i));
        }
        *(v8 *)(dst + n - VW) = (v8){0};
        return;
    }
    for (int l = 0; l < VW; l++)
        if (l < n) dst[l] = 0.0f;
}

/* The 8 floats at p, at any alignment */
#define load8(p) (*(const v8 *)(p))

/* Lanes 0..n-1 of v to p[0..n-1]. (A loop to n would become a call to
 * memcpy, which costs more than the stores.) */
INLINE void store8(float *p, v8 v, int n)
{
    if (n == VW) {
        *(v8 *)p = v;
        return;
    }
    for (int l = 0; l < VW; l++)
        if (l < n) p[l] = v[l];
}

#endif
