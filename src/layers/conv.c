/* conv.c - 2-D convolution layer.
 *
 * Parameters: W (K, C, KH, KW) as PyTorch stores them, then b (K).
 * x (n, C, H, W) -> y (n, K, OH, OW).
 *
 * The layer computes with one of five engines (conv_engine.h), chosen
 * once when the net is built (conv_shape) and recorded in sz.variant, so
 * that every later call agrees with the memory planned for it:
 * - a plain product per image (conv_1x1.c) for 1x1 kernels without
 *   padding, any stride;
 * - Winograd F(2x2, 3x3) or F(4x4, 3x3) (conv_winograd.c) for 3x3
 *   stride-1 layers with enough channels (wino_variant), F(2x2, 5x5) for
 *   5x5 stride-1 layers with enough (wino25_pays), or as
 *   cnn_conv_set_algo forces;
 * - one product per tap on the images' polyphase planes
 *   (conv_stride2.c) for 3x3 stride-2 layers whose column matrix has
 *   more than SMALL_D rows (ResNet's downsampling), or as
 *   cnn_conv_set_algo forces;
 * - else im2col + GEMM: with the blocked kernels of kernels/smallgemm.c
 *   (conv_smallgemm.c) when the column matrix has at most SMALL_D rows,
 *   with the BLAS (conv_im2col.c) otherwise. A 5x5 stride-1 layer on 1 to
 *   3 channels (a first layer) takes the blocked kernels' engine with
 *   its forward pass by F(2x2, 5x5), the products summed and transformed
 *   in registers (CNN_CONV_FUSED25).
 * This file checks the spec and the shapes, initialises the parameters
 * (with init.c), and holds what the engines share: the column budget
 * (cnn_conv_set_chunk_floats) and the bias gradient.
 *
 * A ReLU that reads only the conv's output can run inside the layer
 * (relu_out) where the engine does it (conv_engine_t.relu: the blocked
 * kernels' columns and Winograd): the output is clamped as it is written,
 * and the output gradient masked as it is read, saving the ReLU's own
 * passes over memory (cifar-3layer's two ReLUs).
 *
 * Every engine computes each element in an order that does not depend on
 * the thread count, so results are the same bits for any thread count. */
#include <math.h>
#include <string.h>

#include "conv_engine.h"
#include "init.h"
#include "mpicnn/kernels.h"

/* Column matrices of at most this many rows (a first layer's C*KH*KW:
 * 9 for 3x3 on grey images, 27 or 75 for 3x3 or 5x5 on RGB) use the
 * blocked kernels of kernels/smallgemm.c: at so few rows the BLAS spends
 * its time packing and on edges rather than multiplying. */
#define SMALL_D 80

/* Upper bound of the column matrices kept at once (16 MB of floats). */
#define CHUNK_FLOATS ((size_t)4 << 20)
static size_t chunk_floats = CHUNK_FLOATS;

void cnn_conv_set_chunk_floats(size_t n)
{
    chunk_floats = n ? n : CHUNK_FLOATS;
}

size_t cnn_conv_chunk_floats(void)
{
    return chunk_floats;
}

int cnn_conv_chunk_images(size_t floats, int nmax)
{
    size_t c = floats ? chunk_floats / floats : (size_t)nmax;
    if (c < 1) c = 1;
    return c < (size_t)nmax ? (int)c : nmax;
}

static int conv_algo = CNN_CONV_AUTO;

/* 1 where Winograd F(2x2, 5x5) is taken for a 5x5 stride-1 layer by
 * default: from 4 input channels and CNN_CONV_WINO_MIN filters. Measured
 * on one thread, batch 64, forward and backward (with the input
 * gradient) against the columns: 32 -> 32 channels at 16x16 4.2/10.3
 * against 11.1/27.2 ms, 32 -> 64 at 8x8 2.3/5.1 against 5.3/12.6, 8 -> 16
 * at 16x16 0.8/1.7 against 1.5/3.4, 4 -> 32 at 16x16 1.1/1.7 against
 * 1.2/2.5. Not for a first layer's 5x5 on RGB: with 3 channels the
 * output transform and the 9 floats of M per output cost what the
 * multiply-adds save (cifar-3layer's conv1: 4.1/6.2 against the blocked
 * kernels' 3.8/5.4 ms); conv_variant gives it CNN_CONV_FUSED25. */
static int wino25_pays(const cnn_layer_spec_t *s, cnn_shape_t in)
{
    return in.c >= 4 && s->filters >= CNN_CONV_WINO_MIN;
}

void cnn_conv_set_algo(int algo)
{
    conv_algo = algo;
}

/* The Winograd variant for a layer (CNN_CONV_WINOGRAD, _WINOGRAD4 or
 * _WINOGRAD25), or 0 for im2col. */
static int wino_variant(const cnn_layer_spec_t *s, cnn_shape_t in, int oh, int ow)
{
    if (s->stride != 1 || conv_algo == CNN_CONV_IM2COL || conv_algo == CNN_CONV_1X1 ||
        conv_algo == CNN_CONV_STRIDE2)
        return 0;
    if (s->kh == 5 && s->kw == 5) {
        const int forced = conv_algo == CNN_CONV_WINOGRAD25;
        return forced || (conv_algo == CNN_CONV_AUTO && wino25_pays(s, in)) ? CNN_CONV_WINOGRAD25
                                                                             : 0;
    }
    if (s->kh != 3 || s->kw != 3 || conv_algo == CNN_CONV_WINOGRAD25 ||
        conv_algo == CNN_CONV_FUSED25)
        return 0;
    if (conv_algo == CNN_CONV_WINOGRAD || conv_algo == CNN_CONV_WINOGRAD4) return conv_algo;
    if (in.c < CNN_CONV_WINO_MIN || s->filters < CNN_CONV_WINO_MIN) return 0;
    /* F(4x4) does 1.78x fewer multiply-adds per tile position but has
     * costlier transforms, and pads the output to a multiple of 4. It is
     * taken where its positions (36 per 4x4 tile) are at most 3/4 of
     * F(2x2)'s (16 per 2x2 tile) and its tiles fill the transforms'
     * vectors of 8: rows of at least 4 tiles (from 13 pixels; 4 go two
     * rows to a vector), or 2 x 2 tiles (5-8 pixels, two images to a
     * vector, kernels/winograd.c). Measured on ResNet-20's layers, F(4x4)
     * against F(2x2): 14x14 1.35/3.0 against 1.62/3.1 ms (forward and
     * backward, 32 channels), 7x7 1.45/3.25 against 1.8/3.75 (64) */
    const int th4 = (oh + 3) / 4, tw4 = (ow + 3) / 4;
    const long pos4 = 36L * th4 * tw4, pos2 = 16L * ((oh + 1) / 2) * ((ow + 1) / 2);
    const int fills = tw4 >= 4 || (th4 == 2 && tw4 == 2);
    return fills && 4 * pos4 <= 3 * pos2 ? CNN_CONV_WINOGRAD4 : CNN_CONV_WINOGRAD;
}

/* A layer's engine, as recorded in sz.variant: a Winograd variant,
 * CNN_CONV_1X1 for a 1x1 kernel without padding (any stride),
 * CNN_CONV_STRIDE2 for a 3x3 stride-2 kernel whose columns are too many
 * for the blocked kernels (fewer go to conv_smallgemm.c), or 0 for the
 * columns of im2col. */
static int conv_variant(const cnn_layer_spec_t *s, cnn_shape_t in, int oh, int ow)
{
    if (s->kh == 5 && s->kw == 5 && s->stride == 1 && (size_t)in.c * 25 <= SMALL_D &&
        (conv_algo == CNN_CONV_AUTO || conv_algo == CNN_CONV_FUSED25))
        return CNN_CONV_FUSED25;
    if (s->kh == 1 && s->kw == 1 && s->pad == 0 &&
        (conv_algo == CNN_CONV_AUTO || conv_algo == CNN_CONV_1X1))
        return CNN_CONV_1X1;
    if (s->kh == 3 && s->kw == 3 && s->stride == 2 &&
        ((conv_algo == CNN_CONV_AUTO && (size_t)in.c * 9 > SMALL_D) ||
         conv_algo == CNN_CONV_STRIDE2))
        return CNN_CONV_STRIDE2;
    return wino_variant(s, in, oh, ow);
}

/* The engine for a layer: the one shape chose (Winograd, 1x1, stride
 * 2), else the columns of im2col, multiplied by the blocked kernels when
 * they have at most SMALL_D rows. Depends on the sizes and the shape
 * alone, so that every call of a built layer takes the engine its memory
 * was planned for. */
static const conv_engine_t *engine_of(int variant, size_t ckk)
{
    if (variant == CNN_CONV_1X1) return &cnn_conv_1x1_engine;
    if (variant == CNN_CONV_STRIDE2) return &cnn_conv_stride2_engine;
    if (variant == CNN_CONV_FUSED25) return &cnn_conv_smallgemm_engine;
    if (variant) return &cnn_conv_winograd_engine;
    return ckk <= SMALL_D ? &cnn_conv_smallgemm_engine : &cnn_conv_im2col_engine;
}

static conv_geom_t conv_geom_of(const cnn_layer_spec_t *s, cnn_shape_t in, cnn_shape_t out)
{
    conv_geom_t g = {.C = in.c, .H = in.h, .W = in.w, .K = s->filters, .KH = s->kh,
                     .KW = s->kw, .S = s->stride, .P = s->pad, .OH = out.h, .OW = out.w};
    g.ckk = (size_t)g.C * g.KH * g.KW;
    g.ohw = (size_t)g.OH * g.OW;
    g.colsz = g.ckk * g.ohw;
    return g;
}

static conv_geom_t conv_geom(const cnn_layer_t *l)
{
    return conv_geom_of(&l->spec, l->in, l->out);
}

/* acc[j] += x[j], x[LANES + j], ...: a sum in a fixed order that the
 * compiler turns into vector adds (a plain running sum is one long chain
 * of dependent scalar adds). */
#define LANES 16
static inline void add_lanes(const float *x, size_t n, float acc[LANES])
{
    size_t p = 0;
    for (; p + LANES <= n; p += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[p + j];
    for (int j = 0; p < n; p++, j++) acc[j] += x[p];
}

void cnn_conv_bias_grad(const conv_geom_t *g, const cnn_ctx_t *ctx, int n, const float *dy,
                        float *db)
{
    const size_t kohw = (size_t)g->K * g->ohw;
#pragma omp parallel num_threads(ctx->nthreads)
    {
        size_t lo, hi;
        conv_split((size_t)g->K, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (size_t k = lo; k < hi; k++) {
            float acc[LANES] = {0};
            for (int i = 0; i < n; i++) add_lanes(dy + (size_t)i * kohw + k * g->ohw, g->ohw, acc);
            float s = 0.0f;
            for (int j = 0; j < LANES; j++) s += acc[j];
            db[k] += s;
        }
    }
}

static cnn_status_t conv_shape(const cnn_layer_spec_t *s, cnn_shape_t in,
                               cnn_shape_t *out, cnn_layer_sizes_t *sz)
{
    char why[160];
    CNN_TRY(cnn_init_check(s));
    if (s->filters < 1 || s->kh < 1 || s->kw < 1 || s->stride < 1 || s->pad < 0) {
        snprintf(why, sizeof why,
                 "needs filters >= 1, kernel >= 1, stride >= 1, pad >= 0 "
                 "(got filters=%d kernel=%dx%d stride=%d pad=%d)",
                 s->filters, s->kh, s->kw, s->stride, s->pad);
        return layer_shape_error(s, in, why);
    }
    int oh = cnn_conv_out_size(in.h, s->kh, s->stride, s->pad);
    int ow = cnn_conv_out_size(in.w, s->kw, s->stride, s->pad);
    if (oh < 1 || ow < 1) {
        snprintf(why, sizeof why,
                 "a %dx%d kernel with pad %d needs at least %dx%d input pixels",
                 s->kh, s->kw, s->pad, s->kh - 2 * s->pad, s->kw - 2 * s->pad);
        return layer_shape_error(s, in, why);
    }
    *out = (cnn_shape_t){in.n, s->filters, oh, ow};
    const conv_geom_t g = conv_geom_of(s, in, *out);
    *sz = (cnn_layer_sizes_t){0};
    sz->variant = conv_variant(s, in, oh, ow);
    sz->params = (size_t)s->filters * g.ckk + (size_t)s->filters;
    const conv_engine_t *e = engine_of(sz->variant, g.ckk);
    e->sizes(&g, in.n, sz);
    sz->no_relu_out = !e->relu;
    sz->dx_adds = e->dx_add;
    return CNN_OK;
}

/* Weights and biases as the layer's init says (init.c): each weight sees
 * fan_in = C*KH*KW inputs and feeds fan_out = K*KH*KW outputs */
static void conv_init(cnn_layer_t *l, uint64_t seed)
{
    const conv_geom_t g = conv_geom(l);
    cnn_init_params(l, seed, g.ckk, (size_t)g.K * g.KH * g.KW);
}

/* x (n,C,H,W) -> y (n,K,OH,OW) */
static void conv_forward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                         const float *x, float *y)
{
    const conv_geom_t g = conv_geom(l);
    engine_of(l->sz.variant, g.ckk)->forward(l, ctx, &g, n, x, y);
}

static void conv_backward(cnn_layer_t *l, const cnn_ctx_t *ctx, int n,
                          const float *x, const float *y, const float *dy,
                          float *dx)
{
    const conv_geom_t g = conv_geom(l);
    engine_of(l->sz.variant, g.ckk)->backward(l, ctx, &g, n, x, y, dy, dx);
}

/* ---- the table ------------------------------------------------------ */

static const cnn_layer_key_t conv_keys[] = {
    LAYER_INT_KEY("filters", filters, 1, 65536, NULL, 0),
    LAYER_PAIR_KEY("kernel", kh, kw, 1, 4096, NULL, 0),
    LAYER_INT_KEY("stride", stride, 1, 4096, "1", 0),
    LAYER_INT_KEY("pad", pad, 0, 4096, "0", 0),
    CNN_INIT_KEYS,
};

/* weight (K,C,KH,KW) then bias (K), as nn.Conv2d; `mpicnn op` without
 * --b runs the layer without bias (zero) */
static const cnn_tensor_desc_t conv_tensors[] = {
    {.name = "weight", .flag = "--w", .grad_flag = "--dw"},
    {.name = "bias", .flag = "--b", .grad_flag = "--db", .optional = 1},
};

static int conv_tensor_dims(const cnn_layer_t *l, int i, size_t dims[4])
{
    dims[0] = (size_t)l->out.c;
    dims[1] = (size_t)l->in.c;
    dims[2] = (size_t)l->spec.kh;
    dims[3] = (size_t)l->spec.kw;
    return i == 0 ? 4 : 1;
}

/* The index in x (n, C, H, W) of the input that kernel tap (ky, kx) of
 * output (oy, ox) reads for channel c of image n, or SIZE_MAX where the
 * tap falls on the zero padding. */
static size_t conv_tap(const cnn_layer_spec_t *s, cnn_shape_t in, int n, int c, int oy, int ox,
                       int ky, int kx)
{
    const int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
    if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) return SIZE_MAX;
    return layer_idx(n, c, iy, ix, in.c, in.h, in.w);
}

/* y = b + sum over c, ky, kx of W x (zero outside the input), in double */
static void conv_reference(const cnn_ref_args_t *r, double *y)
{
    const cnn_layer_spec_t *s = r->spec;
    const cnn_shape_t in = r->in, out = r->out;
    const double *x = r->x, *p = r->params;
    const int K = out.c, C = in.c, KH = s->kh, KW = s->kw;
    const double *b = p + (size_t)K * C * KH * KW;
    for (int n = 0; n < in.n; n++)
        for (int k = 0; k < K; k++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double acc = b[k];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < KH; ky++)
                            for (int kx = 0; kx < KW; kx++) {
                                const size_t xi = conv_tap(s, in, n, c, oy, ox, ky, kx);
                                if (xi != SIZE_MAX)
                                    acc += p[layer_idx(k, c, ky, kx, C, KH, KW)] * x[xi];
                            }
                    y[layer_idx(n, k, oy, ox, K, out.h, out.w)] = acc;
                }
}

/* The gradients of conv_reference, in double: each product W x of an
 * output sends dy to the weight (times x) and to the input (times W);
 * the bias gets dy itself. */
static void conv_reference_backward(const cnn_ref_args_t *r, const double *y,
                                    const double *dy, double *dx, double *dp)
{
    const cnn_layer_spec_t *s = r->spec;
    const cnn_shape_t in = r->in, out = r->out;
    const double *x = r->x, *p = r->params;
    const int K = out.c, C = in.c, KH = s->kh, KW = s->kw;
    const size_t nw = (size_t)K * C * KH * KW;
    (void)y;
    if (dx) memset(dx, 0, sizeof(double) * (size_t)in.n * cnn_shape_image(in));
    for (int n = 0; n < in.n; n++)
        for (int k = 0; k < K; k++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    const double g = dy[layer_idx(n, k, oy, ox, K, out.h, out.w)];
                    if (dp) dp[nw + k] += g;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < KH; ky++)
                            for (int kx = 0; kx < KW; kx++) {
                                const size_t xi = conv_tap(s, in, n, c, oy, ox, ky, kx);
                                if (xi == SIZE_MAX) continue;
                                const size_t wi = layer_idx(k, c, ky, kx, C, KH, KW);
                                if (dp) dp[wi] += g * x[xi];
                                if (dx) dx[xi] += g * p[wi];
                            }
                }
}

static const cnn_layer_cli_t conv_cli = {
    .usage = "--x F --x-shape N,C,H,W --w F --w-shape K,C,KH,KW [--b F] [--stride S]\n"
             "            [--pad P] --out F [--dout F --dx F --dw F [--db F]]\n"
             "            --w holds W as (K,C,KH,KW), PyTorch's Conv2d weight; --b (K), none:\n"
             "            no bias (then no --db); --stride 1 and --pad 0 by default, the\n"
             "            zero padding added on each side; --out and --dout (N,K,OH,OW)",
    .x_dims = "N,C,H,W",
    .shape_flag = "--w-shape",
    .shape_dims = "K,C,KH,KW",
    .shape_in = 1,
    .shape_in_why = "the channels of",
    .shape_keys = {"filters", NULL, "kernel", "kernel"},
};

/* Conv with the stored (K, C, KH, KW) weight and (K) bias; pads per side. */
static cnn_status_t conv_onnx(const cnn_layer_t *l, cnn_onnx_t *g, const char *const *in, int nin,
                              const char *out)
{
    const cnn_layer_spec_t *s = &l->spec;
    const char *x[3];
    (void)nin;
    CNN_TRY(cnn_onnx_image(g, l, in[0], &x[0]));
    CNN_TRY(cnn_onnx_param(g, l, 0, &x[1]));
    CNN_TRY(cnn_onnx_param(g, l, 1, &x[2]));
    const int64_t k[2] = {s->kh, s->kw}, st[2] = {s->stride, s->stride},
                  p[4] = {s->pad, s->pad, s->pad, s->pad};
    const cnn_onnx_attr_t a[3] = {CNN_ONNX_INTS("kernel_shape", k, 2),
                                  CNN_ONNX_INTS("strides", st, 2), CNN_ONNX_INTS("pads", p, 4)};
    return cnn_onnx_node(g, "Conv", x, 3, out, a, 3);
}

const cnn_layer_ops_t cnn_conv_ops = {
    .type = "conv",
    .shape = conv_shape,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .keys = conv_keys,
    .nkeys = LAYER_COUNT(conv_keys),
    .tensors = conv_tensors,
    .ntensors = LAYER_COUNT(conv_tensors),
    .tensor_dims = conv_tensor_dims,
    .cli = &conv_cli,
    .fd = CNN_FD_LINEAR,
    .reference = conv_reference,
    .onnx = conv_onnx,
    .reference_backward = conv_reference_backward,
    .fold_affine = 1,
    .relu_out = 1, /* where the engine can (sz.no_relu_out) */
};
