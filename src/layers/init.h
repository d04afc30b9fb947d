/* init.h - the initialisers of the layers with weights and biases (conv,
 * dense): their config keys, the check of those keys and the one drawing
 * routine (not public; docs/config.md gives the formulas).
 *
 * A layer of this kind keeps its weights first and its out.c biases last
 * in its params slice. Every value is counter-based: weight i of the
 * layer at position `index` in the net is a function of (run seed, index,
 * i) alone, so it depends neither on the thread nor on the rank count. */
#ifndef MPICNN_LAYERS_INIT_H
#define MPICNN_LAYERS_INIT_H

#include <math.h>
#include <stddef.h>

#include "mpicnn/layer.h"

/* The values of the `init` key, in the order of cnn_init_choices.
 * CNN_INIT_PYTORCH is 0, so that a spec built in code without an init
 * starts as the config's default does. */
typedef enum {
    CNN_INIT_PYTORCH = 0,   /* U(+-1/sqrt(fan_in)), biases drawn alike */
    CNN_INIT_HE_NORMAL,     /* N(0, 2/fan_in) */
    CNN_INIT_HE_UNIFORM,    /* U(+-sqrt(6/fan_in)) */
    CNN_INIT_XAVIER_NORMAL, /* N(0, 2/(fan_in+fan_out)) */
    CNN_INIT_XAVIER_UNIFORM,/* U(+-sqrt(6/(fan_in+fan_out))) */
    CNN_INIT_NORMAL,        /* N(0, init_std^2) */
    CNN_INIT_UNIFORM,       /* U(-init_range, init_range) */
    CNN_INIT_COUNT
} cnn_init_t;

/* The names of the cnn_init_t values, NULL-terminated (the `init` key's
 * choices). Static. */
extern const char *const cnn_init_choices[CNN_INIT_COUNT + 1];

/* The defaults of init_std and init_range, as numbers and as the key
 * tables' text. */
#define CNN_INIT_STD_DEFAULT 0.01
#define CNN_INIT_RANGE_DEFAULT 0.05
#define CNN_INIT_STR_(x) #x
#define CNN_INIT_STR(x) CNN_INIT_STR_(x)

/* The four key table entries (cnn_layer_key_t) of a layer with weights
 * and biases, to end its key table with. */
#define CNN_INIT_KEYS                                                          \
    {"init", CNN_LKEY_ENUM, offsetof(cnn_layer_spec_t, init), 0, 0, 0, 0, 0,   \
     "pytorch", 0, cnn_init_choices},                                          \
    {"init_std", CNN_LKEY_FLOAT, offsetof(cnn_layer_spec_t, init_std), 0, 0,   \
     HUGE_VAL, 1, 0, CNN_INIT_STR(CNN_INIT_STD_DEFAULT), 0, NULL},             \
    {"init_range", CNN_LKEY_FLOAT, offsetof(cnn_layer_spec_t, init_range), 0,  \
     0, HUGE_VAL, 1, 0, CNN_INIT_STR(CNN_INIT_RANGE_DEFAULT), 0, NULL},        \
    {"bias_init", CNN_LKEY_FLOAT, offsetof(cnn_layer_spec_t, bias_init), 0,    \
     -1000, 1000, 0, 0, "0", 0, NULL}

/* Checks the init keys of a spec, for the layer's shape function:
 * CNN_ECONFIG, naming the layer, when `init` is not one of the choices,
 * when init = normal (uniform) has no positive init_std (init_range),
 * when init_std (init_range) differs from its default but init is not
 * normal (uniform), or when bias_init is not 0 with init = pytorch, which
 * draws the biases. A value of 0 in init_std or init_range, outside the
 * config's range, means a spec built in code that does not set it. */
cnn_status_t cnn_init_check(const cnn_layer_spec_t *s);

/* Fills l->params as l->spec's init says: weights of a layer whose
 * weights have `fan_in` inputs and `fan_out` outputs each (conv: C*KH*KW
 * and K*KH*KW; dense: D and M), then the l->out.c biases. */
void cnn_init_params(cnn_layer_t *l, uint64_t seed, size_t fan_in, size_t fan_out);

#endif
