/* onnx.h - export of a trained net as an ONNX model, and the small graph
 * builder each layer type's ONNX mapping (cnn_layer_ops_t.onnx) uses.
 *
 * The exported graph (docs/model-format.md) takes `input`, float32
 * (N, C, H, W) pixel values / 255 with a dynamic batch N, applies the
 * model's normalisation, runs every layer in order and gives `logits`
 * (N, K). It imports opset 13 of the default domain (IR version 7).
 *
 * A mapping adds nodes and initialisers to a graph through the functions
 * below. Every value (a node's output, an initialiser) has a name; a
 * layer's output value is named after the layer, and its parameters
 * "LAYER.weight", "LAYER.bias" ... (PyTorch's state_dict names). The
 * builder keeps every string and array it is given by copying: callers
 * keep ownership of theirs. */
#ifndef MPICNN_ONNX_H
#define MPICNN_ONNX_H

#include <stdint.h>

#include "mpicnn/layer.h"
#include "mpicnn/status.h"

/* The opset the graph imports and the IR version of the file. */
#define CNN_ONNX_OPSET 13
#define CNN_ONNX_IR_VERSION 7

typedef struct cnn_onnx cnn_onnx_t;

/* AttributeProto.AttributeType values of the attributes a mapping sets. */
typedef enum {
    CNN_ONNX_ATTR_FLOAT = 1,
    CNN_ONNX_ATTR_INT = 2,
    CNN_ONNX_ATTR_INTS = 7
} cnn_onnx_attr_type_t;

/* One node attribute; ints (n values) is borrowed for the call. */
typedef struct {
    const char *name;
    cnn_onnx_attr_type_t type;
    int64_t i;
    float f;
    const int64_t *ints;
    int n;
} cnn_onnx_attr_t;

#define CNN_ONNX_INT(nm, v) ((cnn_onnx_attr_t){.name = (nm), .type = CNN_ONNX_ATTR_INT, .i = (v)})
#define CNN_ONNX_FLOAT(nm, v)                                                  \
    ((cnn_onnx_attr_t){.name = (nm), .type = CNN_ONNX_ATTR_FLOAT, .f = (v)})
#define CNN_ONNX_INTS(nm, arr, cnt)                                            \
    ((cnn_onnx_attr_t){.name = (nm), .type = CNN_ONNX_ATTR_INTS, .ints = (arr), .n = (cnt)})

/* Appends a node `op` (an operator of the default domain, e.g. "Conv")
 * with inputs in[0..nin) and the one output `out`, and attrs[0..nattrs)
 * (may be NULL when nattrs is 0). Nodes must be added in evaluation
 * order. The output's rank is recorded (cnn_onnx_rank): 2 for Flatten
 * and Gemm, otherwise the rank of the first input. CNN_ENOMEM (also for
 * a NULL name: a cnn_onnx_name that ran out of memory). */
cnn_status_t cnn_onnx_node(cnn_onnx_t *g, const char *op, const char *const *in, int nin,
                           const char *out, const cnn_onnx_attr_t *attrs, int nattrs);

/* cnn_onnx_node with one input and no attributes. */
cnn_status_t cnn_onnx_unary(cnn_onnx_t *g, const char *op, const char *in, const char *out);

/* Adds a float32 initialiser `name` of dims[0..ndims) holding the
 * product of dims values of v (copied). */
cnn_status_t cnn_onnx_const(cnn_onnx_t *g, const char *name, const float *v, const int64_t *dims,
                            int ndims);

/* Adds tensor i of layer l (its table's order: conv/dense weight, bias;
 * batchnorm weight, bias, running_mean, running_var) as the initialiser
 * "LAYER.TENSOR" with its PyTorch dims, and points *name at that name
 * (owned by g). */
cnn_status_t cnn_onnx_param(cnn_onnx_t *g, const cnn_layer_t *l, int i, const char **name);

/* "LAYER/what": a name for an intermediate value or constant of a
 * layer's mapping. Owned by g; NULL when out of memory (the node or
 * constant given it then fails). */
const char *cnn_onnx_name(cnn_onnx_t *g, const cnn_layer_t *l, const char *what);

/* The rank of value `name` (4 for the input and the images after it, 2
 * after a Flatten or Gemm), or 0 for a name the graph does not have. */
int cnn_onnx_rank(const cnn_onnx_t *g, const char *name);

/* The 4-D form of value `in` for an operator over images (Conv, pools):
 * `in` itself when its rank is 4, else a Reshape of the flat (N, D) to
 * (N, D, 1, 1), which is how mpicnn holds a flat vector. *out is owned
 * by g or is `in`. */
cnn_status_t cnn_onnx_image(cnn_onnx_t *g, const cnn_layer_t *l, const char *in,
                            const char **out);

/* A merge layer's inputs in[0..nin) as values of one rank into out: as
 * they are when their ranks agree, else each flat (N, D) one reshaped to
 * (N, D, 1, 1), as mpicnn adds or stacks a flat vector with images of
 * 1x1. The names in out are owned by g or are in's. */
cnn_status_t cnn_onnx_merge_inputs(cnn_onnx_t *g, const cnn_layer_t *l, const char *const *in,
                                   int nin, const char **out);

/* What an ONNX model is made of: a net's layers (model.h's metadata and
 * net.h's net give them; this header leaves both out, so that the layer
 * files that include it stay below them). All borrowed. */
typedef struct {
    const cnn_layer_t *layers;   /* (nlayers), built and holding weights */
    int nlayers;
    cnn_shape_t input, output;   /* the net's per-image shapes (n unused) */
    const float *mean, *std;     /* (input.c) each, or both NULL */
    char *const *class_names;    /* (nclasses) or NULL: names "0".."K-1" */
    int nclasses;
    const char *version;         /* producer_version */
} cnn_onnx_model_t;

/* Writes m as an ONNX model to `path`, atomically (fs.h): the class names
 * go to metadata_props "class_names", a JSON array of strings.
 * CNN_ECONFIG naming the layer and its type when a layer type has no ONNX
 * mapping, or for a model over protobuf's 2 GiB (nothing is written
 * then), CNN_ENOMEM, CNN_EIO. */
cnn_status_t cnn_onnx_export(const char *path, const cnn_onnx_model_t *m);

#endif
