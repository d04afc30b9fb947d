/* onnx.c - a net as an ONNX model (onnx.h): the graph builder the layer
 * types' mappings use, and the model file around their nodes.
 *
 * Messages are encoded as they are made: each node and initialiser goes
 * straight into the bytes of the GraphProto's repeated fields, so the
 * builder keeps no tree, only the names it hands out and each value's
 * rank. Field numbers are those of onnx.proto3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/fs.h"
#include "mpicnn/onnx.h"
#include "pb.h"

/* onnx.proto3 field numbers, by message. */
enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3,
       MODEL_GRAPH = 7, MODEL_OPSET_IMPORT = 8, MODEL_METADATA_PROPS = 14 };
enum { OPSET_VERSION = 2 };
enum { ENTRY_KEY = 1, ENTRY_VALUE = 2 };
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11,
       GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5 };
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20 };
enum { TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9 };
enum { VALUE_NAME = 1, VALUE_TYPE = 2 };
enum { TYPE_TENSOR_TYPE = 1, TTYPE_ELEM_TYPE = 1, TTYPE_SHAPE = 2, SHAPE_DIM = 1,
       DIM_VALUE = 1, DIM_PARAM = 2 };
enum { DTYPE_FLOAT = 1, DTYPE_INT64 = 7 };

typedef struct {
    char *name; /* owned */
    int rank;
} value_t;

struct cnn_onnx {
    cnn_pb_t nodes;  /* GraphProto field 1, every node so far, tagged */
    cnn_pb_t inits;  /* GraphProto field 5, every initialiser, tagged */
    value_t *vals;   /* every value named so far, with its rank */
    int nvals, capvals;
    char **strs;     /* names made by cnn_onnx_name / cnn_onnx_param */
    int nstrs, capstrs;
};

static void graph_free(cnn_onnx_t *g)
{
    cnn_pb_free(&g->nodes);
    cnn_pb_free(&g->inits);
    for (int i = 0; i < g->nvals; i++) free(g->vals[i].name);
    for (int i = 0; i < g->nstrs; i++) free(g->strs[i]);
    free(g->vals);
    free(g->strs);
}

/* Grows an array of *cap elements of size sz to hold one more. */
static int grow(void **p, int n, int *cap, size_t sz)
{
    if (n < *cap) return 1;
    int nc = *cap ? 2 * *cap : 16;
    void *q = realloc(*p, (size_t)nc * sz);
    if (!q) return 0;
    *p = q;
    *cap = nc;
    return 1;
}

static cnn_status_t oom(void)
{
    return cnn_error_set(CNN_ENOMEM, "out of memory building the ONNX graph");
}

/* Records (or updates) the rank of value name. */
static cnn_status_t set_rank(cnn_onnx_t *g, const char *name, int rank)
{
    for (int i = 0; i < g->nvals; i++)
        if (!strcmp(g->vals[i].name, name)) {
            g->vals[i].rank = rank;
            return CNN_OK;
        }
    if (!grow((void **)&g->vals, g->nvals, &g->capvals, sizeof *g->vals)) return oom();
    char *s = strdup(name);
    if (!s) return oom();
    g->vals[g->nvals++] = (value_t){s, rank};
    return CNN_OK;
}

int cnn_onnx_rank(const cnn_onnx_t *g, const char *name)
{
    for (int i = 0; i < g->nvals; i++)
        if (!strcmp(g->vals[i].name, name)) return g->vals[i].rank;
    return 0;
}

/* A copy of s that g owns, or NULL. */
static const char *keep(cnn_onnx_t *g, const char *s)
{
    if (!grow((void **)&g->strs, g->nstrs, &g->capstrs, sizeof *g->strs)) return NULL;
    char *c = strdup(s);
    if (c) g->strs[g->nstrs++] = c;
    return c;
}

const char *cnn_onnx_name(cnn_onnx_t *g, const cnn_layer_t *l, const char *what)
{
    char buf[CNN_NAME_MAX + 64];
    snprintf(buf, sizeof buf, "%s/%s", l->spec.name, what);
    return keep(g, buf);
}

static void encode_attr(cnn_pb_t *a, const cnn_onnx_attr_t *at)
{
    cnn_pb_string(a, ATTR_NAME, at->name);
    cnn_pb_int(a, ATTR_TYPE, at->type);
    if (at->type == CNN_ONNX_ATTR_FLOAT) cnn_pb_float(a, ATTR_F, at->f);
    if (at->type == CNN_ONNX_ATTR_INT) cnn_pb_int(a, ATTR_I, at->i);
    if (at->type == CNN_ONNX_ATTR_INTS)
        for (int k = 0; k < at->n; k++) cnn_pb_int(a, ATTR_INTS, at->ints[k]);
}

cnn_status_t cnn_onnx_node(cnn_onnx_t *g, const char *op, const char *const *in, int nin,
                           const char *out, const cnn_onnx_attr_t *attrs, int nattrs)
{
    if (!out) return oom();
    for (int k = 0; k < nin; k++)
        if (!in[k]) return oom();
    cnn_pb_t n = {0}, a = {0};
    for (int k = 0; k < nin; k++) cnn_pb_string(&n, NODE_INPUT, in[k]);
    cnn_pb_string(&n, NODE_OUTPUT, out);
    cnn_pb_string(&n, NODE_NAME, out);
    cnn_pb_string(&n, NODE_OP_TYPE, op);
    for (int k = 0; k < nattrs; k++) {
        a.len = 0;
        encode_attr(&a, &attrs[k]);
        cnn_pb_message(&n, NODE_ATTRIBUTE, &a);
    }
    cnn_pb_message(&g->nodes, GRAPH_NODE, &n);
    cnn_pb_free(&a);
    cnn_pb_free(&n);
    CNN_TRY(cnn_pb_status(&g->nodes));
    const int flat = !strcmp(op, "Flatten") || !strcmp(op, "Gemm");
    return set_rank(g, out, flat ? 2 : nin > 0 ? cnn_onnx_rank(g, in[0]) : 0);
}

cnn_status_t cnn_onnx_unary(cnn_onnx_t *g, const char *op, const char *in, const char *out)
{
    return cnn_onnx_node(g, op, &in, 1, out, NULL, 0);
}

/* An initialiser of n elements of `esize` bytes each, already in
 * little-endian order in le. */
static cnn_status_t add_init(cnn_onnx_t *g, const char *name, int dtype, const int64_t *dims,
                             int ndims, const uint8_t *le, size_t nbytes)
{
    if (!name) return oom();
    cnn_pb_t t = {0};
    for (int k = 0; k < ndims; k++) cnn_pb_int(&t, TENSOR_DIMS, dims[k]);
    cnn_pb_int(&t, TENSOR_DATA_TYPE, dtype);
    cnn_pb_string(&t, TENSOR_NAME, name);
    cnn_pb_bytes(&t, TENSOR_RAW_DATA, le, nbytes);
    cnn_pb_message(&g->inits, GRAPH_INITIALIZER, &t);
    cnn_pb_free(&t);
    CNN_TRY(cnn_pb_status(&g->inits));
    return set_rank(g, name, ndims);
}

static size_t count_of(const int64_t *dims, int ndims)
{
    size_t n = 1;
    for (int k = 0; k < ndims; k++) n *= (size_t)dims[k];
    return n;
}

cnn_status_t cnn_onnx_const(cnn_onnx_t *g, const char *name, const float *v, const int64_t *dims,
                            int ndims)
{
    const size_t n = count_of(dims, ndims);
    uint8_t *le = malloc(4 * n + 1);
    if (!le) return oom();
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &v[k], sizeof u);
        for (int b = 0; b < 4; b++) le[4 * k + b] = (uint8_t)(u >> (8 * b));
    }
    cnn_status_t st = add_init(g, name, DTYPE_FLOAT, dims, ndims, le, 4 * n);
    free(le);
    return st;
}

/* An int64 initialiser of n values (Reshape's shape). */
static cnn_status_t const_i64(cnn_onnx_t *g, const char *name, const int64_t *v, int n)
{
    uint8_t le[8 * 4];
    if (n > 4) return cnn_error_set(CNN_EINTERNAL, "const_i64: %d values", n);
    for (int k = 0; k < n; k++)
        for (int b = 0; b < 8; b++) le[8 * k + b] = (uint8_t)((uint64_t)v[k] >> (8 * b));
    const int64_t dims[1] = {n};
    return add_init(g, name, DTYPE_INT64, dims, 1, le, 8 * (size_t)n);
}

cnn_status_t cnn_onnx_param(cnn_onnx_t *g, const cnn_layer_t *l, int i, const char **name)
{
    cnn_layer_tensor_t t[CNN_LAYER_TENSORS_MAX];
    const int nt = cnn_layer_tensors(l, t);
    if (i < 0 || i >= nt)
        return cnn_error_set(CNN_EINTERNAL, "layer '%s' has no tensor %d", l->spec.name, i);
    char buf[CNN_NAME_MAX + 64];
    snprintf(buf, sizeof buf, "%s.%s", l->spec.name, t[i].desc->name);
    if (!(*name = keep(g, buf))) return oom();
    int64_t dims[4];
    for (int k = 0; k < t[i].ndims; k++) dims[k] = (int64_t)t[i].dims[k];
    const float *base = t[i].desc->in_state ? l->state : l->params;
    return cnn_onnx_const(g, *name, base + t[i].offset, dims, t[i].ndims);
}

cnn_status_t cnn_onnx_image(cnn_onnx_t *g, const cnn_layer_t *l, const char *in,
                            const char **out)
{
    *out = in;
    if (cnn_onnx_rank(g, in) == 4) return CNN_OK;
    static const int64_t shape4[4] = {0, -1, 1, 1};
    const char *shape = cnn_onnx_name(g, l, "shape4");
    const char *img = cnn_onnx_name(g, l, "image");
    CNN_TRY(const_i64(g, shape, shape4, 4));
    const char *ins[2] = {in, shape};
    CNN_TRY(cnn_onnx_node(g, "Reshape", ins, 2, img, NULL, 0));
    *out = img;
    return set_rank(g, img, 4);
}

cnn_status_t cnn_onnx_merge_inputs(cnn_onnx_t *g, const cnn_layer_t *l, const char *const *in,
                                   int nin, const char **out)
{
    int flat = 0;
    for (int k = 0; k < nin; k++) flat += cnn_onnx_rank(g, in[k]) == 2;
    for (int k = 0; k < nin; k++) out[k] = in[k];
    if (flat == 0 || flat == nin) return CNN_OK;
    static const int64_t shape4[4] = {0, -1, 1, 1};
    const char *shape = cnn_onnx_name(g, l, "shape4");
    CNN_TRY(const_i64(g, shape, shape4, 4));
    for (int k = 0; k < nin; k++) {
        if (cnn_onnx_rank(g, in[k]) != 2) continue;
        char what[16];
        snprintf(what, sizeof what, "image%d", k);
        out[k] = cnn_onnx_name(g, l, what);
        const char *ins[2] = {in[k], shape};
        CNN_TRY(cnn_onnx_node(g, "Reshape", ins, 2, out[k], NULL, 0));
        CNN_TRY(set_rank(g, out[k], 4));
    }
    return CNN_OK;
}

/* ---- the model around the layers' nodes --------------------------------- */

/* A ValueInfoProto: float32 tensor `name` with dims; dims[k] < 0 is the
 * dynamic batch "N". */
static void encode_value_info(cnn_pb_t *b, int field, const char *name, const int64_t *dims,
                              int ndims)
{
    cnn_pb_t shape = {0}, dim = {0}, tt = {0}, type = {0}, vi = {0};
    for (int k = 0; k < ndims; k++) {
        dim.len = 0;
        if (dims[k] < 0)
            cnn_pb_string(&dim, DIM_PARAM, "N");
        else
            cnn_pb_int(&dim, DIM_VALUE, dims[k]);
        cnn_pb_message(&shape, SHAPE_DIM, &dim);
    }
    cnn_pb_int(&tt, TTYPE_ELEM_TYPE, DTYPE_FLOAT);
    cnn_pb_message(&tt, TTYPE_SHAPE, &shape);
    cnn_pb_message(&type, TYPE_TENSOR_TYPE, &tt);
    cnn_pb_string(&vi, VALUE_NAME, name);
    cnn_pb_message(&vi, VALUE_TYPE, &type);
    cnn_pb_message(b, field, &vi);
    cnn_pb_free(&shape);
    cnn_pb_free(&dim);
    cnn_pb_free(&tt);
    cnn_pb_free(&type);
    cnn_pb_free(&vi);
}

/* A StringStringEntryProto of ModelProto.metadata_props. */
static void encode_entry(cnn_pb_t *b, const char *key, const char *value, size_t vlen)
{
    cnn_pb_t e = {0};
    cnn_pb_string(&e, ENTRY_KEY, key);
    cnn_pb_bytes(&e, ENTRY_VALUE, value, vlen);
    cnn_pb_message(b, MODEL_METADATA_PROPS, &e);
    cnn_pb_free(&e);
}

/* The class names as a JSON array of strings (with names "0".."K-1" when
 * the model has none) into j. */
static void class_names_json(cnn_pb_t *j, const cnn_onnx_model_t *m, int K)
{
    cnn_pb_raw(j, "[", 1);
    for (int k = 0; k < K; k++) {
        char num[24];
        snprintf(num, sizeof num, "%d", k);
        const char *s = m->class_names && k < m->nclasses ? m->class_names[k] : num;
        if (k) cnn_pb_raw(j, ",", 1);
        cnn_pb_raw(j, "\"", 1);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
            char esc[8];
            if (*p == '"' || *p == '\\') {
                esc[0] = '\\';
                esc[1] = (char)*p;
                cnn_pb_raw(j, esc, 2);
            } else if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                cnn_pb_raw(j, esc, 6);
            } else {
                cnn_pb_raw(j, p, 1);
            }
        }
        cnn_pb_raw(j, "\"", 1);
    }
    cnn_pb_raw(j, "]", 1);
}

/* The value layer i writes: its name, or "NAME:out" for a layer named as
 * the graph's own input or output. */
static const char *layer_value(const cnn_onnx_model_t *m, int i, char *buf, size_t len)
{
    const char *name = m->layers[i].spec.name;
    if (strcmp(name, "input") && strcmp(name, "logits")) return name;
    snprintf(buf, len, "%s:out", name);
    return buf;
}

/* The values layer i reads into in[0..*nin): the outputs of the layers
 * its inputs come from (l->src), or, for the net's input (-1), the
 * normalised network input `first`. */
static void layer_inputs(const cnn_onnx_model_t *m, int i, const char *first, char (*bufs)[64],
                         const char **in, int *nin)
{
    const cnn_layer_t *l = &m->layers[i];
    *nin = l->ninputs > 0 ? l->ninputs : 1;
    for (int k = 0; k < *nin; k++) {
        const int from = l->ninputs > 0 ? l->src[k] : i - 1;
        in[k] = from < 0 ? first : layer_value(m, from, bufs[k], sizeof bufs[k]);
    }
}

/* Sub the mean and Div by the std, per channel, as (1, C, 1, 1)
 * initialisers: what cnn_images_to_floats does to pixel/255. *out is the
 * normalised value ("input" itself without a normalisation). */
static cnn_status_t add_normalization(cnn_onnx_t *g, const cnn_onnx_model_t *m,
                                      const char **out)
{
    *out = "input";
    if (!m->mean || !m->std) return CNN_OK;
    const int64_t dims[4] = {1, m->input.c, 1, 1};
    CNN_TRY(cnn_onnx_const(g, "normalization.mean", m->mean, dims, 4));
    CNN_TRY(cnn_onnx_const(g, "normalization.std", m->std, dims, 4));
    const char *sub[2] = {"input", "normalization.mean"};
    const char *div[2] = {"input/centered", "normalization.std"};
    CNN_TRY(cnn_onnx_node(g, "Sub", sub, 2, "input/centered", NULL, 0));
    CNN_TRY(cnn_onnx_node(g, "Div", div, 2, "input/normalized", NULL, 0));
    *out = "input/normalized";
    return CNN_OK;
}

/* Every layer's nodes, then the Flatten to `logits`. */
static cnn_status_t add_layers(cnn_onnx_t *g, const cnn_onnx_model_t *m, const char *first)
{
    char bufs[CNN_LAYER_INPUTS_MAX][64], own[64];
    const char *in[CNN_LAYER_INPUTS_MAX];
    int nin;
    for (int i = 0; i < m->nlayers; i++) {
        const cnn_layer_t *l = &m->layers[i];
        layer_inputs(m, i, first, bufs, in, &nin);
        CNN_TRY(l->ops->onnx(l, g, in, nin, layer_value(m, i, own, sizeof own)));
    }
    const char *last = layer_value(m, m->nlayers - 1, own, sizeof own);
    const cnn_onnx_attr_t axis = CNN_ONNX_INT("axis", 1);
    return cnn_onnx_node(g, "Flatten", &last, 1, "logits", &axis, 1);
}

/* The ModelProto bytes of the finished graph g into m. */
static void encode_model(cnn_pb_t *b, const cnn_onnx_t *g, const cnn_onnx_model_t *m)
{
    cnn_pb_t graph = {0}, opset = {0}, json = {0};
    const int64_t in_dims[4] = {-1, m->input.c, m->input.h, m->input.w};
    const int K = (int)cnn_shape_image(m->output);
    const int64_t out_dims[2] = {-1, K};
    cnn_pb_raw(&graph, g->nodes.data, g->nodes.len);
    cnn_pb_string(&graph, GRAPH_NAME, "mpicnn");
    cnn_pb_raw(&graph, g->inits.data, g->inits.len);
    encode_value_info(&graph, GRAPH_INPUT, "input", in_dims, 4);
    encode_value_info(&graph, GRAPH_OUTPUT, "logits", out_dims, 2);
    cnn_pb_int(&opset, OPSET_VERSION, CNN_ONNX_OPSET);

    cnn_pb_int(b, MODEL_IR_VERSION, CNN_ONNX_IR_VERSION);
    cnn_pb_string(b, MODEL_PRODUCER_NAME, "mpicnn");
    cnn_pb_string(b, MODEL_PRODUCER_VERSION, m->version ? m->version : "");
    cnn_pb_message(b, MODEL_GRAPH, &graph);
    cnn_pb_message(b, MODEL_OPSET_IMPORT, &opset);
    class_names_json(&json, m, K);
    encode_entry(b, "class_names", (const char *)json.data, json.len);
    if (json.failed) b->failed = 1;
    cnn_pb_free(&graph);
    cnn_pb_free(&opset);
    cnn_pb_free(&json);
}

/* CNN_ECONFIG naming the first layer whose type has no ONNX mapping. */
static cnn_status_t check_mappings(const cnn_onnx_model_t *m)
{
    for (int i = 0; i < m->nlayers; i++)
        if (!m->layers[i].ops->onnx)
            return cnn_error_set(CNN_ECONFIG,
                                 "layer '%s' (type '%s') has no ONNX mapping: this model cannot "
                                 "be exported",
                                 m->layers[i].spec.name, m->layers[i].ops->type);
    return CNN_OK;
}

cnn_status_t cnn_onnx_export(const char *path, const cnn_onnx_model_t *m)
{
    if (!m || !m->layers || m->nlayers < 1)
        return cnn_error_set(CNN_EINTERNAL, "export: no layers");
    CNN_TRY(check_mappings(m));
    cnn_onnx_t g = {0};
    cnn_pb_t model = {0};
    cnn_afile_t *af = NULL;
    const char *first;
    cnn_status_t st = set_rank(&g, "input", 4);
    if (st == CNN_OK) st = add_normalization(&g, m, &first);
    if (st == CNN_OK) st = add_layers(&g, m, first);
    if (st == CNN_OK) {
        encode_model(&model, &g, m);
        st = cnn_pb_status(&model);
    }
    if (st == CNN_OK && model.len > (size_t)INT32_MAX)
        st = cnn_error_set(CNN_ECONFIG, "the model takes %zu bytes as ONNX, over the 2 GiB a "
                           "protobuf message can hold", model.len);
    if (st == CNN_OK) st = cnn_afile_begin(path, &af);
    if (st == CNN_OK) st = cnn_afile_write(af, model.data, model.len);
    if (st == CNN_OK) {
        st = cnn_afile_commit(af);
        af = NULL;
    }
    cnn_afile_abort(af);
    cnn_pb_free(&model);
    graph_free(&g);
    return st;
}
