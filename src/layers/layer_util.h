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

#endif
