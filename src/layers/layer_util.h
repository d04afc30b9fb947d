/* layer_util.h - small helpers shared by the layer files (not public). */
#ifndef MPICNN_LAYER_UTIL_H
#define MPICNN_LAYER_UTIL_H

#include <omp.h>
#include <stdio.h>

#include "mpicnn/layer.h"

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
