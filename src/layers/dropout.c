/* dropout.c - inverted dropout: in training each value is dropped with
 * probability p and the survivors are scaled by 1/(1-p); at test time
 * the layer is the identity.
 *
 * The mask of element j of sample i comes from a hash of (seed, rank,
 * step, layer, i, j), so it does not depend on the thread count and a
 * resumed run draws the same masks. */
#include <string.h>

#include "layer_util.h"
#include "mpicnn/kernels.h"

static cnn_status_t dropout_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                                  cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    if (!(s->p >= 0.0f && s->p < 1.0f)) {
        char why[96];
        snprintf(why, sizeof why, "needs 0 <= p < 1 (got %g)", (double)s->p);
        return layer_shape_error(s, in, why);
    }
    *out = in;
    *sz = (cnn_layer_sizes_t){0};
    sz->cache = (size_t)in.n * cnn_shape_image(in); /* the scaled mask */
    return CNN_OK;
}

static void dropout_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                            const float *x, float *y)
{
    const size_t img = cnn_shape_image(l->in), total = (size_t)n * img;
    if (!ctx->train || l->spec.p == 0.0f) {
        memcpy(y, x, sizeof(float) * total);
        return;
    }
    const float p = l->spec.p, keep = 1.0f / (1.0f - p);
    const uint64_t stream = cnn_hash4(ctx->seed, (uint64_t)ctx->rank, ctx->step,
                                      (uint64_t)l->index);
    float *mask = l->cache;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (size_t j = 0; j < total; j++) {
        mask[j] = cnn_u01(cnn_hash4(stream, j, 0, 0)) < p ? 0.0f : keep;
        y[j] = x[j] * mask[j];
    }
}

static void dropout_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                             const float *x, const float *y, const float *dy,
                             float *dx)
{
    if (!dx) return;
    const size_t total = (size_t)n * cnn_shape_image(l->in);
    if (!ctx->train || l->spec.p == 0.0f) {
        memcpy(dx, dy, sizeof(float) * total);
        return;
    }
    const float *mask = l->cache;
#pragma omp parallel for schedule(static) num_threads(ctx->nthreads)
    for (size_t j = 0; j < total; j++) dx[j] = dy[j] * mask[j];
}

static const cnn_layer_key_t dropout_keys[] = {
    LAYER_FLOAT_KEY("p", p, 0, 0, 1, 1, NULL, 1),
};

/* y = x * mask in training (the mask already scaled by 1/(1-p)), else x */
static void dropout_reference(const cnn_ref_args_t *r, double *y)
{
    const size_t nin = (size_t)r->in.n * cnn_shape_image(r->in);
    for (size_t i = 0; i < nin; i++) y[i] = r->train ? r->x[i] * r->mask[i] : r->x[i];
}

/* dx = dy * mask in training, else dy */
static void dropout_reference_backward(const cnn_ref_args_t *r, const double *y,
                                       const double *dy, double *dx, double *dparams)
{
    const size_t nin = (size_t)r->in.n * cnn_shape_image(r->in);
    for (size_t i = 0; dx && i < nin; i++) dx[i] = r->train ? dy[i] * r->mask[i] : dy[i];
}

static const cnn_layer_cli_t dropout_cli = {
    .usage = "--x F --x-shape ... --p P --mode train|test --seed K --out F [--dout F --dx F]",
    .mode = 1,
    .seed = 1,
};

/* Inference: the identity (inverted dropout scales while training). */
static cnn_status_t dropout_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in,
                                 int nin, const char *out)
{
    (void)l, (void)nin;
    return cnn_onnx_unary(g, "Identity", in[0], out);
}

const cnn_layer_ops_t cnn_dropout_ops = {
    .type = "dropout",
    .shape = dropout_shape,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .keys = dropout_keys,
    .nkeys = LAYER_COUNT(dropout_keys),
    .cli = &dropout_cli,
    .fd = CNN_FD_LINEAR,
    .reference = dropout_reference,
    .onnx = dropout_onnx,
    .reference_backward = dropout_reference_backward,
};
