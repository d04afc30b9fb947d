/* layer.h - the layer ops table and the layer registry.
 *
 * A layer is a spec (what the config says), a shape (what shape inference
 * decided) and pointers into the network's arenas. The network calls a
 * layer only through its ops table; the registry maps a type name (conv,
 * relu, ...) to that table. The table is the one list of what a type is:
 * besides the compute functions it holds the type's config keys, the
 * tensors it stores in model files, how `mpicnn op` reads it from flags,
 * how a finite-difference check treats it, and its double-precision
 * reference forward and backward passes (the f64 mode runs on them). The
 * config parser, the model files, the CLI and
 * the tests read these fields and name no type themselves.
 *
 * Adding a layer type:
 *  1. src/layers/NAME.c with static shape/forward/backward (and init if it
 *     has parameters or state), its key table, its tensor table with a
 *     tensor_dims callback if it stores anything, optionally a cli
 *     descriptor, its fd kind, its reference functions (forward and
 *     backward, in double) and its ONNX mapping (onnx.h), all in one
 *     `const cnn_layer_ops_t cnn_NAME_ops`;
 *  2. one line in src/layers/registry.c (and the extern below), and the
 *     file in src/layers/local.mk;
 *  3. a case in tests/test_layers.c against its reference.
 * A merge type (several inputs: add, concat) gives shape_n, forward_n and
 * backward_n instead of shape, forward and backward.
 * tests/test_layers.c checks every registered table for completeness.
 * An elementwise type (an activation) writes only its kernels over a span
 * of values, its reference for one value and its derivative there, and its
 * keys; LAYER_ELEMENTWISE
 * and LAYER_ELEMENTWISE_OPS in src/layers/layer_util.h make the rest
 * (src/layers/sigmoid.c is the smallest example).
 *
 * Layout is NCHW float32 throughout. A flat vector of D values is the
 * shape (N, D, 1, 1). Every shape below is per batch: `n` is the batch. */
#ifndef MPICNN_LAYER_H
#define MPICNN_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/status.h"

typedef struct {
    int n, c, h, w;
} cnn_shape_t;

/* Elements of one image of a shape (c*h*w). */
static inline size_t cnn_shape_image(cnn_shape_t s)
{
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

#define CNN_NAME_MAX 32

/* Most inputs of one layer (a merge layer: add, concat). */
#define CNN_LAYER_INPUTS_MAX 4

/* The name by which a layer's `input` or `inputs` refers to the net's
 * input; no layer may be called so. */
#define CNN_NET_INPUT_NAME "input"

/* What the config says about one layer. Fields a type does not use are 0. */
typedef struct {
    char name[CNN_NAME_MAX]; /* as in the config, e.g. "conv1" */
    char type[16];           /* registry name (an ops table's type) */
    /* Where the layer's inputs come from: ninputs names of earlier layers
     * or CNN_NET_INPUT_NAME. ninputs = 0 is the default: the previous
     * layer in the net's order (the net's input for the first layer). A
     * merge type (shape_n) takes 2..CNN_LAYER_INPUTS_MAX, any other
     * type 1. */
    int ninputs;
    char inputs[CNN_LAYER_INPUTS_MAX][CNN_NAME_MAX];
    int filters;             /* conv: output channels K; dense: units M */
    int kh, kw;              /* conv kernel / pool window */
    int stride;              /* conv / pool stride (>= 1) */
    int pad;                 /* conv zero padding, per side */
    float p;                 /* dropout: drop probability in [0, 1) */
    float eps;               /* batchnorm: variance epsilon */
    float momentum;          /* batchnorm: running = (1-m)*running + m*batch */
    float slope;             /* leaky_relu: the slope below 0 */
    float alpha;             /* elu: the saturation value for x -> -inf */
    int approximate;         /* gelu: 0 exact (erf), 1 the tanh form */
    int ceil_mode;           /* pools: 1 keeps partial windows at the edge */
    int count_pad;           /* avgpool: 1 divides by the whole window */
    int mode;                /* gap: 0 mean, 1 sum */
    int init;                /* conv, dense: the weight initialiser */
    float init_std;          /* conv, dense: std of init = normal */
    float init_range;        /* conv, dense: half-width of init = uniform */
    float bias_init;         /* conv, dense: the biases' initial value */
    int sync;                /* batchnorm: 1 takes training statistics over
                                the global batch (cnn_ctx_t.allreduce_sum) */
} cnn_layer_spec_t;

/* Memory a layer asks for at build time, in floats. */
typedef struct {
    size_t params; /* trainable parameters (and as many gradients) */
    size_t state;  /* persistent non-trainable values (batchnorm stats) */
    size_t cache;  /* values kept from forward to backward, at max batch */
    size_t work;   /* scratch per thread, valid during one call only */
    size_t shared; /* scratch shared by the threads of one call */
    int variant;   /* the layer's own choice made by shape (conv: the
                      algorithm), so later calls agree with the sizes */
    int no_relu_out; /* 1: this layer cannot take the ReLU after it
                        (ops->relu_out) after all: a conv whose algorithm
                        does not run one */
    int dx_adds;     /* 1: backward can add its input gradient into dx
                        (cnn_ctx_t.dx_add) instead of writing it */
} cnn_layer_sizes_t;

/* Per-call context: mode, randomness and scratch. Built by the caller. */
typedef struct {
    int train;          /* 1: training mode (dropout on, batch stats) */
    uint64_t seed;      /* run seed; dropout masks derive from it */
    int rank;           /* rank in the training communicator */
    uint64_t step;      /* global optimizer step, for dropout streams */
    int nthreads;       /* OpenMP threads to use (>= 1) */
    float *work;        /* nthreads * work_stride floats, 64-byte aligned */
    size_t work_stride; /* floats of scratch per thread */
    float *shared;      /* the largest sz.shared of the net, 64-byte aligned */
    /* Optional: sums buf (n doubles) in place over the ranks that train
     * the model together, for layers whose training statistics cover the
     * global batch (batchnorm with sync = true). NULL: this rank alone
     * (one rank, evaluation, tools). A layer calls it from the thread that
     * called forward or backward, outside its parallel regions; it is
     * collective: every rank of the step calls it as often, with the same
     * n, in the same order. On failure it returns an error status, leaves
     * buf undefined and stays failed for the rest of the step; a layer
     * then goes on with its own values, and whoever set the hook reports
     * the failure (layers cannot return one). */
    cnn_status_t (*allreduce_sum)(void *arg, double *buf, size_t n);
    void *allreduce_arg; /* the hook's first argument, owned by its setter */
    /* 1 (given only to a layer with sz.dx_adds, in backward): dx holds
     * a gradient already (the part from another consumer of the layer's
     * input), and the layer adds its own into it, dx[i] + g[i] as a
     * separate add would, instead of overwriting dx */
    int dx_add;
} cnn_ctx_t;

typedef struct cnn_layer cnn_layer_t;
typedef struct cnn_onnx cnn_onnx_t; /* an ONNX graph being built (onnx.h) */

/* ---- what a type declares besides its compute functions ---------------- */

/* The kinds of value a layer key takes. */
typedef enum {
    CNN_LKEY_INT = 1, /* int at off */
    CNN_LKEY_PAIR,    /* "N" or "NxM" (`mpicnn op`: "N" or "N,M"): ints at off, off2 */
    CNN_LKEY_FLOAT,   /* float at off, range checked after rounding to float */
    CNN_LKEY_BOOL,    /* int at off: 1 for true|yes|on|1, 0 for false|no|off|0 */
    CNN_LKEY_ENUM     /* int at off: the index of the value in choices */
} cnn_lkey_kind_t;

#define CNN_LAYER_KEYS_MAX 16

/* One key of a layer's config section (besides `type`). The config parser
 * checks the value against lo..hi and prints "expected ..." from them;
 * cnn_config_to_string() prints the keys in table order. */
typedef struct {
    const char *name;     /* the config key; `mpicnn op` flag "--" name */
    cnn_lkey_kind_t kind;
    size_t off, off2;     /* offsetof() in cnn_layer_spec_t; off2: a pair's
                             second int */
    double lo, hi;        /* range; hi may be HUGE_VAL (no upper end) */
    int lo_open, hi_open; /* 1: the bound itself is outside the range */
    /* Default as text, as the config would spell it; NULL: required;
     * "=KEY": the (first) value of key KEY of the same layer, e.g. a
     * pool's stride is "=size", the window's height. */
    const char *def;
    /* 1: `mpicnn op` requires it as --NAME; 0: --NAME is optional and
     * the key otherwise takes its default (a key with a default should be
     * 0, so that op and the config agree on what may be left out) */
    int op_flag;
    const char *const *choices; /* CNN_LKEY_ENUM: the values, NULL-terminated */
} cnn_layer_key_t;

#define CNN_LAYER_TENSORS_MAX 4

/* One tensor a layer stores in model files (a dataset of its group,
 * docs/model-format.md). A type's tensors lie in table order in its
 * params (or state) slice, each starting where the previous one of the
 * same arena ends, and together fill sz.params and sz.state. */
typedef struct {
    const char *name;      /* dataset name, PyTorch's: "weight", "bias",
                              "running_mean", "running_var" */
    int in_state;          /* 0: in the params arena; 1: in the state arena */
    /* `mpicnn op`: the flag naming the file it is read from (NULL: not
     * read); a state tensor is then required in test mode only (training
     * mode starts from init's values and does not return them). */
    const char *flag;
    const char *grad_flag; /* op: flag the gradient is written to, or NULL */
    int transposed;        /* op: the file holds the 2-D tensor transposed */
    const char *note;      /* op: what ties its size to --x-shape, in
                              messages ("the channels of"), or NULL */
    /* op: 1 if the file flag may be left out: the tensor is then zero
     * (a conv's or dense's bias: a layer without bias, as bias=False in
     * PyTorch), and its grad_flag is refused (there is no such tensor) */
    int optional;
} cnn_tensor_desc_t;

/* How `mpicnn op TYPE` builds its one-layer net from flags. Besides these,
 * op reads --x (shaped by --x-shape), the tensors' flags, the keys marked
 * op_flag (required) and the other keys' optional --NAME flags (e.g.
 * --stride), and writes --out (and --dx and the gradient flags when
 * --dout is given). Keys that neither a flag nor the shape flag sets take
 * their default. */
typedef struct {
    const char *usage;      /* the flags, for op's help text */
    const char *x_dims;     /* names of the dims --x-shape must have
                               ("N,C,H,W"); NULL: 1 to 4 dims, N first */
    /* A flag giving the first tensor's file dims, which set keys: */
    const char *shape_flag; /* "--w-shape", or NULL */
    const char *shape_dims; /* names of its dims, "K,C,KH,KW" */
    int shape_in;           /* index of the dim equal to the input's channels */
    const char *shape_in_why; /* how they are tied, for the message:
                                 "the channels of" --x-shape */
    /* The key each dim sets, or NULL; a pair key named at two dims takes
     * the first as off and the second as off2. */
    const char *shape_keys[4];
    int mode;               /* 1: takes --mode train|test (else: train) */
    int seed;               /* 1: takes --seed K, the run seed */
    /* Optional, for a 2-D shape flag: a flag choosing the order of the
     * first tensor's file ("--w-layout"), and its two values, e.g.
     * {"in,out", "out,in"}: layouts[0] (the default) is the order
     * shape_dims names; layouts[1] the reverse, for the shape flag, the
     * tensor's file and its gradient's file alike. NULL: no such flag. */
    const char *layout_flag;
    const char *layouts[2];
} cnn_layer_cli_t;

/* How a finite-difference gradient check treats a type (cli gradcheck). */
typedef enum {
    CNN_FD_LINEAR = 1, /* linear in its params and input (dropout: with its
                          mask fixed): a unit step is exact */
    CNN_FD_SMOOTH,     /* smooth: a small step with Richardson extrapolation */
    CNN_FD_KINKED      /* piecewise linear: real inputs sit on its kinks, so
                          finite differences do not apply; not checked */
} cnn_fd_kind_t;

/* The inputs of a type's double-precision reference: x is (in.n, in.c,
 * in.h, in.w) and the output has the shape `out`; params and state are in
 * the layer's own layouts (NULL for a type without them); `train` selects
 * training mode (batchnorm: batch statistics, else the running ones in
 * state; dropout: y = x * mask, else y = x); mask is dropout's
 * per-element scaled mask (NULL for other types). All borrowed. */
typedef struct {
    const cnn_layer_spec_t *spec;
    cnn_shape_t in, out;
    const double *x, *params, *state, *mask;
    int train;
    /* A merge type's inputs: nx tensors xs[k] of shapes ins[k] (x and in
     * are then xs[0] and ins[0]); nx = 0 for the other types. */
    int nx;
    const double *const *xs;
    const cnn_shape_t *ins;
} cnn_ref_args_t;

/* A type's forward pass in double, straight from its definition: plain
 * loops, no blocking, no threads. Writes y. */
typedef void (*cnn_layer_ref_fn)(const cnn_ref_args_t *r, double *y);

/* A type's backward pass in double, straight from its definition, for the
 * forward pass `reference` ran with the same r and wrote y: given dy (the
 * shape r->out), WRITES dx (the shape r->in; may be NULL: not needed) and
 * ADDS the parameter gradients into dparams (the params layout; may be
 * NULL for a type without params, or when they are not needed). In
 * training mode batchnorm's statistics depend on x, and dx says so. A
 * merge type (r->nx inputs) writes the gradients of its inputs into dx
 * one after another, input k's after those of inputs 0..k-1 (the shapes
 * r->ins). Plain loops, no threads; all pointers borrowed. */
typedef void (*cnn_layer_ref_bwd_fn)(const cnn_ref_args_t *r, const double *y,
                                     const double *dy, double *dx, double *dparams);

typedef struct {
    const char *type;
    /* Validates `spec` against input shape `in` (in.n = max batch) and
     * fills the output shape and memory sizes. Returns CNN_ECONFIG with a
     * message naming the layer and the shapes on a mismatch. */
    cnn_status_t (*shape)(const cnn_layer_spec_t *spec, cnn_shape_t in,
                          cnn_shape_t *out, cnn_layer_sizes_t *sz);
    /* Initial parameters and state; may be NULL (nothing to initialise).
     * Deterministic in `seed`. */
    void (*init)(cnn_layer_t *l, uint64_t seed);
    /* x is (n, in.c, in.h, in.w), y is (n, out.c, out.h, out.w), n <= max. */
    void (*forward)(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                    const float *x, float *y);
    /* Given dy, ADDS parameter gradients into l->grads and WRITES dx
     * (dx may be NULL: the input gradient is not needed). x and y are the
     * tensors of the forward call that preceded it. */
    void (*backward)(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                     const float *x, const float *y, const float *dy,
                     float *dx);
    /* 1: forward may run in place (y == x) and backward is right with
     * x == y (relu: x > 0 exactly where y > 0). The net then gives the
     * layer its input buffer as output, unless that input is the net's or
     * has another consumer (a layer that also reads it). A layer's backward
     * reads its own y only where a ReLU after it leaves y as it is: through
     * y > 0 (maxpool), or where y is never negative (sigmoid's y (1 - y));
     * tanh and elu, whose outputs go below 0, work from x. So a ReLU may
     * overwrite the output of any layer. */
    int in_place;
    /* 1: the layer is an elementwise ReLU, whose backward pass the next
     * layer may take over (backward_after_relu). */
    int relu;
    /* Optional: the backward pass of a ReLU and this layer after it, in
     * one pass. x and y are this layer's (x is the ReLU's output); dx is
     * the gradient at the ReLU's input. The net calls it, and skips the
     * ReLU's own backward, when this layer's input is a ReLU whose output
     * has no other consumer and this layer has forward_after_relu too.
     * May be NULL. */
    void (*backward_after_relu)(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                                const float *x, const float *y, const float *dy,
                                float *dx);
    /* Optional: the forward pass of a ReLU and this layer after it, from
     * the ReLU's input x: y as if x had passed the ReLU. The net calls it,
     * and skips the ReLU's forward, when it calls backward_after_relu; the
     * ReLU's output buffer is then not written (a max pool takes the
     * maximum first and clamps its 4x fewer outputs: the two commute). */
    void (*forward_after_relu)(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                               const float *x, float *y);
    /* 1: the layer can run a ReLU over its own output (cnn_layer_t's
     * relu_out), which saves the ReLU's passes over memory, unless its
     * sizes say otherwise (sz.no_relu_out). The net sets relu_out when a
     * ReLU is the one consumer of this layer's output (batchnorm -> relu,
     * add -> relu, conv -> relu), and then runs neither the ReLU's
     * forward nor its backward. */
    int relu_out;
    /* Optional: in test mode the layer is y = a x + b on channel c (a
     * batchnorm with its running statistics): *a and *b of channel c. The
     * net of an inference plan folds such a layer into the conv before it
     * (fold_affine), and skips it. */
    void (*test_affine)(const cnn_layer_t *l, int c, float *a, float *b);
    /* 1: the params are out.c rows of weights, then out.c biases, and
     * output channel k is linear in row k and bias k (conv): the layer
     * with row k and bias k scaled by a and b added to the bias computes
     * a y + b on channel k. */
    int fold_affine;

    /* A merge type (add, concat) takes 2..CNN_LAYER_INPUTS_MAX inputs
     * through these three instead of shape, forward and backward, which
     * are then NULL; a type has one set or the other. */
    /* Validates `spec` against the nin input shapes in[k] (n = max batch)
     * and fills the output shape and sizes; CNN_ECONFIG naming the layer
     * and the shapes on a mismatch. */
    cnn_status_t (*shape_n)(const cnn_layer_spec_t *spec, int nin, const cnn_shape_t *in,
                            cnn_shape_t *out, cnn_layer_sizes_t *sz);
    /* xs[k] is (n, l->ins[k]...), y is (n, out...). */
    void (*forward_n)(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                      const float *const *xs, float *y);
    /* Given dy, ADDS parameter gradients into l->grads and WRITES each
     * dxs[k] (the gradient at input k; NULL: not needed). */
    void (*backward_n)(cnn_layer_t *l, const cnn_ctx_t *ctx, int n, int nin,
                       const float *const *xs, const float *y, const float *dy,
                       float *const *dxs);

    /* The config keys, in the order the resolved config prints them. */
    const cnn_layer_key_t *keys;
    int nkeys;
    /* The tensors stored in model files (none: nothing, or, for a type
     * with params or state, flat "params" / "state" datasets). */
    const cnn_tensor_desc_t *tensors;
    int ntensors;
    /* The PyTorch-order dims of tensor i of layer l into dims; returns
     * their number (1 to 4). NULL when ntensors is 0. */
    int (*tensor_dims)(const cnn_layer_t *l, int i, size_t dims[4]);
    const cnn_layer_cli_t *cli; /* NULL: `mpicnn op` does not offer it */
    cnn_fd_kind_t fd;
    cnn_layer_ref_fn reference;
    /* Optional: the layer as ONNX nodes (include/mpicnn/onnx.h): reads the
     * values in[0..nin) (one today: the previous layer's output, or the
     * normalised network input) and writes the value `out`, named after
     * the layer, adding its parameters as initialisers. NULL: models
     * holding the type cannot be exported (mpicnn export exits 4). */
    cnn_status_t (*onnx)(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                         const char *out);
    cnn_layer_ref_bwd_fn reference_backward;
} cnn_layer_ops_t;

struct cnn_layer {
    cnn_layer_spec_t spec;
    const cnn_layer_ops_t *ops;
    int index;             /* position in the net, for RNG streams */
    cnn_shape_t in, out;   /* n = max batch; in = ins[0] */
    int ninputs;           /* 1, or a merge layer's count (>= 2) */
    int src[CNN_LAYER_INPUTS_MAX]; /* the layer each input is the output
                                      of; -1: the net's input */
    cnn_shape_t ins[CNN_LAYER_INPUTS_MAX]; /* their shapes */
    cnn_layer_sizes_t sz;
    float *params;         /* sz.params floats in the parameter arena */
    float *grads;          /* sz.params floats in the gradient arena */
    float *state;          /* sz.state floats in the state arena */
    float *cache;          /* sz.cache floats, private to this layer */
    /* 1 (set by the net, only for a type with ops->relu_out): the layer
     * ends with a ReLU. forward writes max(y, 0), the ReLU's output, and
     * backward is given dy at the ReLU's output: it backpropagates dy
     * where its own output before the ReLU was > 0 and 0 elsewhere, as
     * the ReLU's backward would have. Its y is then the ReLU's output. */
    int relu_out;
};

/* 1 if the type is a merge type (several inputs through shape_n). */
static inline int cnn_layer_is_merge(const cnn_layer_ops_t *ops)
{
    return ops->shape_n != NULL;
}

/* The ops table for a type name, or NULL. Static; do not free. */
const cnn_layer_ops_t *cnn_layer_find(const char *type);

/* The registered type names, NULL-terminated. Static. */
const char *const *cnn_layer_types(void);

/* The registered ops tables in registry order, NULL-terminated. Static. */
const cnn_layer_ops_t *const *cnn_layer_all(void);

/* Key `name` of a type, or NULL if the type has no such key. */
const cnn_layer_key_t *cnn_layer_key(const cnn_layer_ops_t *ops, const char *name);

/* Tensor i of a layer, placed: its description, where it starts in the
 * layer's params (or state) slice, and its PyTorch-order dims. */
typedef struct {
    const cnn_tensor_desc_t *desc;
    size_t offset; /* floats from l->params (or l->state) */
    int ndims;
    size_t dims[4];
    size_t count;  /* the product of dims */
} cnn_layer_tensor_t;

/* Places l's tensors (l->ops->ntensors of them, at most
 * CNN_LAYER_TENSORS_MAX) into t, in table order; returns their number. */
int cnn_layer_tensors(const cnn_layer_t *l, cnn_layer_tensor_t *t);

/* Shapes as "(n,c,h,w)" into buf; returns buf. */
char *cnn_shape_str(cnn_shape_t s, char *buf, size_t len);

/* Layer ops tables, one per file in src/layers/. */
extern const cnn_layer_ops_t cnn_conv_ops, cnn_relu_ops, cnn_maxpool_ops,
    cnn_avgpool_ops, cnn_gap_ops, cnn_flatten_ops, cnn_dense_ops,
    cnn_dropout_ops, cnn_batchnorm_ops, cnn_sigmoid_ops, cnn_tanh_ops,
    cnn_leaky_relu_ops, cnn_elu_ops, cnn_gelu_ops, cnn_add_ops, cnn_concat_ops;

/* Largest number of floats of column matrices the conv layer keeps at once
 * (0: the default, 16 MB). A layer whose whole batch fits keeps its
 * columns from the forward to the backward pass; a bigger one unfolds
 * again, in chunks of this size. Takes effect for nets built after the
 * call; for tests and tuning. */
void cnn_conv_set_chunk_floats(size_t n);

/* The inner chunk, in floats, of a dense layer's forward product with at
 * most 256 units (0: the default, 512 KB of W's rows). For tests and
 * tuning; takes effect at once. */
void cnn_dense_set_chunk_floats(int n);

/* How conv layers compute: CNN_CONV_AUTO picks one product per image on
 * the NCHW images for 1x1 kernels without padding (CNN_CONV_1X1),
 * Winograd for 3x3 stride-1 layers with at least CNN_CONV_WINO_MIN input
 * and output channels -- F(4x4, 3x3) where it needs at most 3/4 of
 * F(2x2, 3x3)'s tile positions and its tiles fill the vectors (rows of
 * at least 4 tiles, or 2 x 2 tiles), F(2x2, 3x3) otherwise -- Winograd
 * F(2x2, 5x5) for 5x5 stride-1 layers with at least 4 input channels and
 * CNN_CONV_WINO_MIN filters (CNN_CONV_WINOGRAD25) -- and for 5x5
 * stride-1 layers on 1 to 3 channels (a first layer), its forward pass
 * with the products in registers, the backward pass by the blocked
 * kernels' columns (CNN_CONV_FUSED25) -- one product per tap
 * on the polyphase planes for 3x3 stride-2 layers of at least 9 input
 * channels (CNN_CONV_STRIDE2), and im2col + GEMM for the rest. The
 * others force one where it applies (Winograd: 3x3 or, for
 * CNN_CONV_WINOGRAD25, 5x5, stride 1; 1x1: 1x1, pad 0; stride 2: 3x3,
 * stride 2), im2col elsewhere. Takes effect for
 * nets built after the call; for tests and benchmarks. */
enum { CNN_CONV_AUTO = 0, CNN_CONV_IM2COL = 1, CNN_CONV_WINOGRAD = 2,
       CNN_CONV_WINOGRAD4 = 3, CNN_CONV_1X1 = 4, CNN_CONV_STRIDE2 = 5,
       CNN_CONV_WINOGRAD25 = 6, CNN_CONV_FUSED25 = 7 };
#define CNN_CONV_WINO_MIN 8
void cnn_conv_set_algo(int algo);

#endif
