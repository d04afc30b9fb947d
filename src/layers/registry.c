/* registry.c - type name -> layer ops table. The only place that knows
 * every layer type: the config, the model files, `mpicnn op` and the tests
 * find the types through these functions. */
#include <stdio.h>
#include <string.h>

#include "mpicnn/layer.h"

static const cnn_layer_ops_t *const registry[] = {
    &cnn_conv_ops,    &cnn_relu_ops,  &cnn_maxpool_ops,
    &cnn_avgpool_ops, &cnn_gap_ops,   &cnn_flatten_ops,
    &cnn_dense_ops,   &cnn_dropout_ops, &cnn_batchnorm_ops,
    &cnn_sigmoid_ops, &cnn_tanh_ops,  &cnn_leaky_relu_ops,
    &cnn_elu_ops,     &cnn_gelu_ops,
    &cnn_add_ops,     &cnn_concat_ops,
    NULL,
};
#define NREG (sizeof registry / sizeof registry[0] - 1)

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

const cnn_layer_ops_t *const *cnn_layer_all(void)
{
    return registry;
}

const cnn_layer_key_t *cnn_layer_key(const cnn_layer_ops_t *ops, const char *name)
{
    for (int i = 0; ops && i < ops->nkeys; i++)
        if (strcmp(ops->keys[i].name, name) == 0) return &ops->keys[i];
    return NULL;
}

int cnn_layer_tensors(const cnn_layer_t *l, cnn_layer_tensor_t *t)
{
    size_t next[2] = {0, 0}; /* the free offset in params, in state */
    const int n = l->ops->ntensors;
    for (int i = 0; i < n; i++) {
        const cnn_tensor_desc_t *d = &l->ops->tensors[i];
        t[i] = (cnn_layer_tensor_t){.desc = d, .offset = next[d->in_state]};
        t[i].ndims = l->ops->tensor_dims(l, i, t[i].dims);
        t[i].count = 1;
        for (int k = 0; k < t[i].ndims; k++) t[i].count *= t[i].dims[k];
        next[d->in_state] += t[i].count;
    }
    return n;
}

char *cnn_shape_str(cnn_shape_t s, char *buf, size_t len)
{
    snprintf(buf, len, "(%d,%d,%d,%d)", s.n, s.c, s.h, s.w);
    return buf;
}
