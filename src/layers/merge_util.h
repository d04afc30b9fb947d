/* merge_util.h - what the merge layers (add, concat) share (not public). */
#ifndef MPICNN_MERGE_UTIL_H
#define MPICNN_MERGE_UTIL_H

#include "layer_util.h"

/* CNN_ECONFIG naming merge layer `spec`, its inputs with their shapes
 * (in[k], named by spec->inputs[k]) and why they do not fit. */
static inline cnn_status_t merge_shape_error(const cnn_layer_spec_t *spec, int nin,
                                             const cnn_shape_t *in, const char *why)
{
    char list[CNN_LAYER_INPUTS_MAX * (CNN_NAME_MAX + 48)], b[48];
    size_t used = 0;
    list[0] = '\0';
    for (int k = 0; k < nin && used < sizeof list; k++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s %s", k ? ", " : "",
                                 spec->inputs[k], cnn_shape_str(in[k], b, sizeof b));
    return cnn_error_set(CNN_ECONFIG, "layer %s (%s): inputs %s: %s", spec->name, spec->type,
                         list, why);
}

#endif
