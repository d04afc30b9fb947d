/* layer_util.h - small helpers shared by the layer files (not public). */
#ifndef MPICNN_LAYER_UTIL_H
#define MPICNN_LAYER_UTIL_H

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>

#include "mpicnn/layer.h"
#include "mpicnn/onnx.h"

/* The number of entries of a static table. */
#define LAYER_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Key table entries (cnn_layer_key_t): an int, a pair and a float field
 * of cnn_layer_spec_t with range lo..hi, default text `def` (NULL:
 * required) and whether `mpicnn op` takes it as a flag. */
#define LAYER_INT_KEY(name, field, lo, hi, def, op)                            \
    {name, CNN_LKEY_INT, offsetof(cnn_layer_spec_t, field), 0, lo, hi, 0, 0, def, op, NULL}
#define LAYER_PAIR_KEY(name, field, field2, lo, hi, def, op)                   \
    {name, CNN_LKEY_PAIR, offsetof(cnn_layer_spec_t, field),                   \
     offsetof(cnn_layer_spec_t, field2), lo, hi, 0, 0, def, op, NULL}
#define LAYER_FLOAT_KEY(name, field, lo, lo_open, hi, hi_open, def, op)        \
    {name, CNN_LKEY_FLOAT, offsetof(cnn_layer_spec_t, field), 0, lo, hi,       \
     lo_open, hi_open, def, op, NULL}

/* Index of an element (n, c, h, w) of a (N, C, H, W) tensor, for the
 * reference functions. */
static inline size_t layer_idx(int n, int c, int h, int w, int C, int H, int W)
{
    return (((size_t)n * C + c) * H + h) * W + w;
}

/* This thread's scratch inside a parallel region. */
static inline float *layer_work(const cnn_ctx_t *ctx)
{
    return ctx->work + (size_t)omp_get_thread_num() * ctx->work_stride;
}

/* Records a shape error naming the layer, its input and what it needs. */
#define LAYER_SHAPE_ERROR(spec, in, ...)                                       \
    layer_shape_error((spec), (in), __VA_ARGS__)

static inline cnn_status_t layer_shape_error(const cnn_layer_spec_t *spec,
                                             cnn_shape_t in, const char *why)
{
    char buf[64];
    return cnn_error_set(CNN_ECONFIG, "layer %s (%s): input %s: %s",
                         spec->name, spec->type,
                         cnn_shape_str(in, buf, sizeof buf), why);
}

/* An enum field's key: its value is the index of one of `choices`
 * (NULL-terminated); `def` and `op` as for LAYER_INT_KEY. */
#define LAYER_ENUM_KEY(name, field, choices, def, op)                          \
    {name, CNN_LKEY_ENUM, offsetof(cnn_layer_spec_t, field), 0, 0, 0, 0, 0,    \
     def, op, choices}

/* An ops table's keys and nkeys fields from its key table t. */
#define LAYER_KEYS(t) .keys = (t), .nkeys = LAYER_COUNT(t)

/* ---- elementwise layers: relu and the other activations ---------------- */

/* The kernels of an elementwise layer, over the n values of one span:
 * forward writes y[i] = f(x[i]); backward writes dx[i] = dy[i] * f'(x[i]).
 * Backward may compute f' from y[i] only where a ReLU run in place after
 * the layer leaves y as it is (the in_place contract in layer.h). y may be
 * x (relu runs in place). */
typedef void (*layer_fwd_span_fn)(const cnn_layer_spec_t *s, size_t n, const float *x,
                                  float *y);
typedef void (*layer_bwd_span_fn)(const cnn_layer_spec_t *s, size_t n, const float *x,
                                  const float *y, const float *dy, float *dx);

/* Values per span. Spans are cut the same way whatever the thread count,
 * so a result does not depend on it even where a kernel's vector loop and
 * its scalar tail round differently; 16 KB of floats stay in L1. */
#define LAYER_SPAN 4096

/* Shape of an elementwise layer: the input's, and no memory. */
static inline cnn_status_t layer_same_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                            cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    (void)s;
    *out = in;
    *sz = (cnn_layer_sizes_t){0};
    return CNN_OK;
}

/* Runs a forward kernel (fwd) or a backward one (bwd, when fwd is NULL)
 * over the n * image values of l, in spans shared out to ctx->nthreads
 * threads. x, y, dy and out are (n, in.c, in.h, in.w). */
static inline void layer_map(const cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                             layer_fwd_span_fn fwd, layer_bwd_span_fn bwd, const float *x,
                             const float *y, const float *dy, float *out)
{
    const size_t total = (size_t)n * cnn_shape_image(l->in);
    const size_t nspans = (total + LAYER_SPAN - 1) / LAYER_SPAN;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (size_t k = 0; k < nspans; k++) {
        const size_t at = k * LAYER_SPAN;
        const size_t m = total - at < LAYER_SPAN ? total - at : LAYER_SPAN;
        if (fwd) fwd(&l->spec, m, x + at, out + at);
        else bwd(&l->spec, m, x + at, y + at, dy + at, out + at);
    }
}

/* The ops entry points of an elementwise layer NAME from its kernels
 * NAME_fwd, NAME_bwd, its reference NAME_ref(spec, x), f(x) in double, and
 * its derivative NAME_ref_grad(spec, x), f'(x) in double: NAME_forward,
 * NAME_backward (which writes nothing when dx is NULL), NAME_reference and
 * NAME_reference_backward (dx = dy f'(x); no params). */
#define LAYER_ELEMENTWISE(NAME)                                                \
    static void NAME##_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,    \
                               const float *x, float *y)                       \
    {                                                                          \
        layer_map(l, ctx, n, NAME##_fwd, NULL, x, NULL, NULL, y);              \
    }                                                                          \
    static void NAME##_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,   \
                                const float *x, const float *y,                \
                                const float *dy, float *dx)                    \
    {                                                                          \
        if (dx) layer_map(l, ctx, n, NULL, NAME##_bwd, x, y, dy, dx);          \
    }                                                                          \
    static void NAME##_reference(const cnn_ref_args_t *r, double *y)           \
    {                                                                          \
        const size_t nin = (size_t)r->in.n * cnn_shape_image(r->in);           \
        for (size_t i = 0; i < nin; i++) y[i] = NAME##_ref(r->spec, r->x[i]);  \
    }                                                                          \
    static void NAME##_reference_backward(const cnn_ref_args_t *r,             \
                                          const double *y, const double *dy,   \
                                          double *dx, double *dparams)         \
    {                                                                          \
        const size_t nin = (size_t)r->in.n * cnn_shape_image(r->in);           \
        (void)y, (void)dparams;                                                \
        for (size_t i = 0; dx && i < nin; i++)                                 \
            dx[i] = dy[i] * NAME##_ref_grad(r->spec, r->x[i]);                 \
    }

/* The fields of an elementwise layer's ops table that LAYER_ELEMENTWISE
 * defines, with its `mpicnn op` descriptor; OPT is the usage text of its
 * key flags ("" or "[--slope S] "), and NAME_onnx, its ONNX mapping. The
 * table adds keys, fd and flags. */
#define LAYER_ELEMENTWISE_OPS(NAME, OPT)                                       \
    .type = #NAME, .shape = layer_same_shape, .forward = NAME##_forward,       \
    .backward = NAME##_backward, .reference = NAME##_reference,                \
    .onnx = NAME##_onnx,                                                       \
    .reference_backward = NAME##_reference_backward,                           \
    .cli = &(const cnn_layer_cli_t){                                           \
        .usage = "--x F --x-shape ... " OPT "--out F [--dout F --dx F]"}

#endif
