/* registry.c - type name -> layer ops table. The only place that knows
 * every layer type. */
#include <stdio.h>
#include <string.h>

#include "mpicnn/layer.h"

static const cnn_layer_ops_t *const registry[] = {
    &cnn_conv_ops,    &cnn_relu_ops,  &cnn_maxpool_ops,
    &cnn_avgpool_ops, &cnn_gap_ops,   &cnn_flatten_ops,
    &cnn_dense_ops,   &cnn_dropout_ops, &cnn_batchnorm_ops,
};
#define NREG (sizeof registry / sizeof registry[0])

const cnn_layer_ops_t *cnn_layer_find(const char *type)
{
    for (size_t i = 0; i < NREG; i++)
        if (strcmp(registry[i]->type, type) == 0) return registry[i];
    return NULL;
}

const char *const *cnn_layer_types(void)
{
    static const char *names[NREG + 1];
    if (!names[0])
        for (size_t i = 0; i < NREG; i++) names[i] = registry[i]->type;
    return names;
}

char *cnn_shape_str(cnn_shape_t s, char *buf, size_t len)
{
    snprintf(buf, len, "(%d,%d,%d,%d)", s.n, s.c, s.h, s.w);
    return buf;
}
