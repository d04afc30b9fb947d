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

/* Helpers are inlined into each clone, so that they are compiled for the
 * clone's instruction set. */
#define INLINE static inline __attribute__((always_inline))

#endif
