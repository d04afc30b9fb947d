/* bench.c - the performance table: sgemm peak, every layer of fmnist-ref
 * and cifar-3layer forward and backward (time, GFLOP/s, share of the
 * sgemm peak), whole training steps (images/s) with the all-reduce time
 * and its share, and the peak resident memory per rank.
 *
 *   bench/mpicnn-bench [--threads T] [--batch B] [--seconds S] [--layers-only]
 *                      [--net fmnist-ref|cifar-3layer|resnet20|resnet20-fmnist|resnet20-cifar|
 *                             cifar-quick]
 *   (cifar-quick, three 5x5 convs, only when named)
 *   mpirun -np 2 bench/mpicnn-bench --threads 1 --steps-only
 *   mpirun -np 2 bench/mpicnn-bench --allreduce
 *   bench/mpicnn-bench --resnet-convs [--threads T] [--algo N] [--net LAYER] [--cpu-time]
 *                      (ResNet-20's conv layers, or the one named; --algo
 *                      forces an engine, as cnn_conv_set_algo)
 *   --no-fuse: every layer runs on its own (cnn_net_set_fuse(0)): no ReLU is
 *              folded into the layer before or after it
 *
 * Random data: only speed is measured here (accuracy is the trainer's).
 * The steps copy their batch from a few made in advance, as the trainer
 * gathers its batch from the data set (making random numbers every step
 * would time the generator). */
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "mpicnn.h"

static double now(void) { return MPI_Wtime(); }

/* --cpu-time: the layer timings (--layers-only, --resnet-convs) count the
 * process's CPU time instead of the wall clock (one thread: on a machine shared with
 * other work, the time the layer ran, not the time it waited) */
static int cpu_time;
static double layer_clock(void)
{
    if (!cpu_time) return now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static cnn_layer_spec_t L(const char *name, const char *type, int f, int k, int s, int p)
{
    cnn_layer_spec_t l = {.filters = f, .kh = k, .kw = k, .stride = s, .pad = p, .eps = 1e-5f,
                          .momentum = 0.1f};
    snprintf(l.name, sizeof l.name, "%s", name);
    snprintf(l.type, sizeof l.type, "%s", type);
    return l;
}

typedef struct {
    const char *name;
    cnn_shape_t in; /* per image */
    int n;
    cnn_layer_spec_t layers[80];
} netdef_t;

static netdef_t fmnist(void)
{
    netdef_t d = {"fmnist-ref", {1, 1, 28, 28}, 10, {
        L("conv1", "conv", 32, 3, 1, 1), L("relu1", "relu", 0, 0, 0, 0),
        L("pool1", "maxpool", 0, 2, 2, 0), L("conv2", "conv", 64, 3, 1, 1),
        L("relu2", "relu", 0, 0, 0, 0), L("pool2", "maxpool", 0, 2, 2, 0),
        L("flatten", "flatten", 0, 0, 0, 0), L("fc1", "dense", 128, 0, 0, 0),
        L("relu3", "relu", 0, 0, 0, 0), L("fc2", "dense", 10, 0, 0, 0)}};
    return d;
}

static netdef_t cifar3(void)
{
    netdef_t d = {"cifar-3layer", {1, 3, 32, 32}, 5, {
        L("conv1", "conv", 32, 5, 1, 2), L("relu1", "relu", 0, 0, 0, 0),
        L("conv2", "conv", 16, 3, 1, 1), L("relu2", "relu", 0, 0, 0, 0),
        L("fc", "dense", 10, 0, 0, 0)}};
    return d;
}

/* Caffe's "CIFAR-10 quick" net, with 2x2 pools: three 5x5 convs, the
 * last two on 32 channels (F(2x2, 5x5) Winograd by default). Only with
 * --net cifar-quick. */
static netdef_t cifar_quick(void)
{
    netdef_t d = {"cifar-quick", {1, 3, 32, 32}, 11, {
        L("conv1", "conv", 32, 5, 1, 2), L("pool1", "maxpool", 0, 2, 2, 0),
        L("relu1", "relu", 0, 0, 0, 0), L("conv2", "conv", 32, 5, 1, 2),
        L("relu2", "relu", 0, 0, 0, 0), L("pool2", "avgpool", 0, 2, 2, 0),
        L("conv3", "conv", 64, 5, 1, 2), L("relu3", "relu", 0, 0, 0, 0),
        L("pool3", "avgpool", 0, 2, 2, 0), L("flatten", "flatten", 0, 0, 0, 0),
        L("fc1", "dense", 64, 0, 0, 0)}};
    d.layers[d.n++] = L("fc2", "dense", 10, 0, 0, 0);
    return d;
}

/* Appends l to d, reading from the layers named in `from` (ninputs of
 * them; 0: the layer before). */
static void put(netdef_t *d, cnn_layer_spec_t l, int ninputs, const char *const *from)
{
    l.ninputs = ninputs;
    for (int k = 0; k < ninputs; k++) snprintf(l.inputs[k], sizeof l.inputs[k], "%s", from[k]);
    d->layers[d->n++] = l;
}

/* He et al.'s CIFAR ResNet-20 on c x hw x hw images, as
 * jobs/cifar10-resnet20.ini and jobs/fashion-mnist-resnet20.ini build it:
 * a 3x3 stem, 3 stages of 3 basic blocks (16, 32, 64 channels; conv, bn,
 * relu, conv, bn, add, relu), 1x1 stride-2 projections where a stage
 * halves the size, gap, dense 10. */
static netdef_t resnet20(const char *name, int c, int hw)
{
    netdef_t d = {.name = name, .in = {1, c, hw, hw}};
    char prev[CNN_NAME_MAX] = "relu1", n[8][CNN_NAME_MAX];
    put(&d, L("conv1", "conv", 16, 3, 1, 1), 0, NULL);
    put(&d, L("bn1", "batchnorm", 0, 0, 0, 0), 0, NULL);
    put(&d, L("relu1", "relu", 0, 0, 0, 0), 0, NULL);
    for (int st = 1; st <= 3; st++)
        for (int b = 1; b <= 3; b++) {
            const int ch = 16 << (st - 1), s = st > 1 && b == 1 ? 2 : 1;
            static const char *const part[8] = {"c1", "bn1", "r1", "c2", "bn2", "proj", "pbn", "add"};
            for (int k = 0; k < 8; k++) snprintf(n[k], sizeof n[k], "s%db%d_%s", st, b, part[k]);
            put(&d, L(n[0], "conv", ch, 3, s, 1), 0, NULL);
            put(&d, L(n[1], "batchnorm", 0, 0, 0, 0), 0, NULL);
            put(&d, L(n[2], "relu", 0, 0, 0, 0), 0, NULL);
            put(&d, L(n[3], "conv", ch, 3, 1, 1), 0, NULL);
            put(&d, L(n[4], "batchnorm", 0, 0, 0, 0), 0, NULL);
            const char *shortcut = prev;
            if (s == 2) {
                put(&d, L(n[5], "conv", ch, 1, 2, 0), 1, (const char *const[]){prev});
                put(&d, L(n[6], "batchnorm", 0, 0, 0, 0), 0, NULL);
                shortcut = n[6];
            }
            put(&d, L(n[7], "add", 0, 0, 0, 0), 2, (const char *const[]){n[4], shortcut});
            snprintf(prev, sizeof prev, "s%db%d_relu", st, b);
            put(&d, L(prev, "relu", 0, 0, 0, 0), 0, NULL);
        }
    put(&d, L("gap", "gap", 0, 0, 0, 0), 0, NULL);
    put(&d, L("fc", "dense", 10, 0, 0, 0), 0, NULL);
    return d;
}

/* FLOPs of one image through a layer: forward, and backward (weights and,
 * unless it is the first layer, the input). 0 for layers without GEMMs. */
static void layer_flops(const cnn_layer_t *l, int first, double *fwd, double *bwd)
{
    *fwd = *bwd = 0;
    if (!strcmp(l->spec.type, "conv") || !strcmp(l->spec.type, "dense")) {
        double macs = (double)(l->sz.params - (size_t)l->out.c) * l->out.h * l->out.w;
        *fwd = 2 * macs;
        *bwd = (first ? 2 : 4) * macs;
    }
}

static double sgemm_gflops(int threads)
{
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 1.0f / (1 + i % 7);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t = now();
        /* OpenMP threads each take a block of rows, as the layers do */
#pragma omp parallel num_threads(threads)
        {
            int T = omp_get_num_threads(), id = omp_get_thread_num();
            int lo = n * id / T, hi = n * (id + 1) / T;
            cnn_sgemm(0, 0, hi - lo, n, n, 1.0f, a + (size_t)lo * n, n, b, n, 0.0f,
                      c + (size_t)lo * n, n);
        }
        t = now() - t;
        double g = 2.0 * n * n * (double)n / t / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static void fill(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * cnn_u01(cnn_hash4(seed, i, 0, 0)) - 1.0f;
}

/* Times each layer of the net, forward and backward, at batch B. */
static void bench_layers(const netdef_t *d, int B, int threads, double peak, double seconds)
{
    cnn_shape_t in = d->in;
    in.n = B;
    printf("\n%s, batch %d, %d thread%s (sgemm peak %.1f GFLOP/s)\n", d->name, B, threads,
           threads > 1 ? "s" : "", peak);
    printf("%-10s %-9s %10s %8s %6s %10s %8s %6s\n", "layer", "type", "fwd ms", "GFLOP/s", "peak",
           "bwd ms", "GFLOP/s", "peak");
    cnn_net_t *net;
    if (cnn_net_create(d->layers, d->n, in, threads, &net) != CNN_OK) {
        fprintf(stderr, "bench: %s\n", cnn_error_message());
        return;
    }
    cnn_net_init(net, 1);
    fill(net->act[0], (size_t)B * cnn_shape_image(in), 2);
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    cnn_net_forward(net, &ctx, B);
    /* gradient buffers of the largest activation: dy and one per input */
    size_t big = 0;
    for (int i = 0; i < net->nlayers; i++)
        if (cnn_shape_image(net->layers[i].out) > big) big = cnn_shape_image(net->layers[i].out);
    float *grad = malloc(sizeof(float) * (size_t)B * big * (1 + CNN_LAYER_INPUTS_MAX));
    double tf_all = 0, tb_all = 0;
    for (int i = 0; i < net->nlayers; i++) {
        cnn_layer_t *l = &net->layers[i];
        float *dy = grad, *dxs[CNN_LAYER_INPUTS_MAX];
        const float *xs[CNN_LAYER_INPUTS_MAX];
        for (int k = 0; k < l->ninputs; k++) {
            xs[k] = cnn_net_layer_in(net, i, k);
            dxs[k] = l->src[k] < 0 ? NULL : grad + (size_t)B * big * (1 + k);
        }
        fill(dy, (size_t)B * cnn_shape_image(l->out), 3);
        /* as the net runs them: a folded ReLU has no pass of its own.
         * Folded into the max pool after it, the pool's forward_after_relu
         * and backward_after_relu do it from the ReLU's input; folded into
         * the layer before it (relu_out), that layer's passes do it */
        const int folded = cnn_net_relu_folded(net, i);
        const int folds = l->ninputs == 1 && l->src[0] >= 0 && net->fold[l->src[0]] == i;
        const float *x = folds ? cnn_net_layer_in(net, l->src[0], 0) : xs[0];
        int reps = 0;
        double t = layer_clock(), tf, tb;
        do {
            if (folded) break;
            if (folds) l->ops->forward_after_relu(l, &ctx, B, x, net->act[i + 1]);
            else if (cnn_layer_is_merge(l->ops))
                l->ops->forward_n(l, &ctx, B, l->ninputs, xs, net->act[i + 1]);
            else l->ops->forward(l, &ctx, B, x, net->act[i + 1]);
            reps++;
        } while ((tf = layer_clock() - t) < seconds / 2 / net->nlayers || reps < 3);
        tf = folded ? 0.0 : tf / reps;
        reps = 0;
        t = layer_clock();
        do {
            if (folded) break;
            if (folds) l->ops->backward_after_relu(l, &ctx, B, x, net->act[i + 1], dy, dxs[0]);
            else if (cnn_layer_is_merge(l->ops))
                l->ops->backward_n(l, &ctx, B, l->ninputs, xs, net->act[i + 1], dy, dxs);
            else l->ops->backward(l, &ctx, B, x, net->act[i + 1], dy, dxs[0]);
            reps++;
        } while ((tb = layer_clock() - t) < seconds / 2 / net->nlayers || reps < 3);
        tb = folded ? 0.0 : tb / reps;
        double ff, fb;
        layer_flops(l, i == 0, &ff, &fb);
        tf_all += tf;
        tb_all += tb;
        if (ff > 0)
            printf("%-10s %-9s %10.3f %8.1f %5.0f%% %10.3f %8.1f %5.0f%%\n", l->spec.name,
                   l->spec.type, tf * 1e3, ff * B / tf / 1e9, 100 * ff * B / tf / 1e9 / peak,
                   tb * 1e3, fb * B / tb / 1e9, 100 * fb * B / tb / 1e9 / peak);
        else if (folded)
            printf("%-10s %-9s %10s %8s %6s %10s %8s %6s\n", l->spec.name, l->spec.type,
                   net->fold[i] > i ? "in next" : "in prev", "-", "",
                   net->fold[i] > i ? "in next" : "in prev", "-", "");
        else
            printf("%-10s %-9s %10.3f %8s %6s %10.3f %8s %6s\n", l->spec.name, l->spec.type,
                   tf * 1e3, "-", "", tb * 1e3, "-", "");
    }
    printf("%-20s %10.3f %24.3f   (%.0f images/s without loss, update, data)\n", "sum",
           tf_all * 1e3, tb_all * 1e3, B / (tf_all + tb_all));
    free(grad);
    cnn_net_free(net);
}

/* The conv layers of ResNet-20 (He et al.; CIFAR 32x32 input, or
 * Fashion-MNIST 28x28) as single layers: the stem, the 3x3 layers of the
 * three stages, the two 3x3 stride-2 layers and the 1x1 stride-2
 * projection shortcuts, each with the number of times a net has it.
 * bench/torch_ref.py convs times the same shapes. */
typedef struct {
    const char *name;
    int c, hw, k, ks, s, p, count;
} convdef_t;

static const convdef_t resnet_convs[] = {
    {"stem", 3, 32, 16, 3, 1, 1, 1},          {"s1 3x3", 16, 32, 16, 3, 1, 1, 6},
    {"s2 3x3/2", 16, 32, 32, 3, 2, 1, 1},     {"s2 1x1/2", 16, 32, 32, 1, 2, 0, 1},
    {"s2 3x3", 32, 16, 32, 3, 1, 1, 5},       {"s3 3x3/2", 32, 16, 64, 3, 2, 1, 1},
    {"s3 1x1/2", 32, 16, 64, 1, 2, 0, 1},     {"s3 3x3", 64, 8, 64, 3, 1, 1, 5},
    {"fm stem", 1, 28, 16, 3, 1, 1, 1},       {"fm s1 3x3", 16, 28, 16, 3, 1, 1, 6},
    {"fm s2 3x3/2", 16, 28, 32, 3, 2, 1, 1},  {"fm s2 1x1/2", 16, 28, 32, 1, 2, 0, 1},
    {"fm s2 3x3", 32, 14, 32, 3, 1, 1, 5},    {"fm s3 3x3/2", 32, 14, 64, 3, 2, 1, 1},
    {"fm s3 1x1/2", 32, 14, 64, 1, 2, 0, 1},  {"fm s3 3x3", 64, 7, 64, 3, 1, 1, 5},
};

/* Seconds per forward and backward pass (with dx, but for a stem) of one
 * conv layer at batch B. */
static void time_conv(const convdef_t *c, int B, int threads, double seconds, double *tf,
                      double *tb, int *variant)
{
    cnn_layer_spec_t s = L(c->name, "conv", c->k, c->ks, c->s, c->p);
    cnn_net_t *net;
    *tf = *tb = 0;
    if (cnn_net_create(&s, 1, (cnn_shape_t){B, c->c, c->hw, c->hw}, threads, &net) != CNN_OK) {
        fprintf(stderr, "bench: %s\n", cnn_error_message());
        return;
    }
    cnn_net_init(net, 1);
    cnn_layer_t *l = &net->layers[0];
    *variant = l->sz.variant;
    fill(net->act[0], (size_t)B * cnn_shape_image(net->layers[0].in), 2);
    float *dy = net->dbuf[0], *dx = c->c > 3 ? net->dbuf[1] : NULL;
    fill(dy, (size_t)B * cnn_shape_image(l->out), 3);
    cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, 0, 0);
    int reps = 0;
    double t = layer_clock();
    do {
        l->ops->forward(l, &ctx, B, net->act[0], net->act[1]);
        reps++;
    } while ((*tf = layer_clock() - t) < seconds || reps < 3);
    *tf /= reps;
    reps = 0;
    t = layer_clock();
    do {
        l->ops->backward(l, &ctx, B, net->act[0], net->act[1], dy, dx);
        reps++;
    } while ((*tb = layer_clock() - t) < seconds || reps < 3);
    *tb /= reps;
    cnn_net_free(net);
}

/* The table of resnet_convs (or of the one named `only`): ms forward and
 * backward, GFLOP/s, and the sum over a ResNet-20 of each (CIFAR,
 * Fashion-MNIST) */
static void bench_convs(int B, int threads, double seconds, const char *only)
{
    printf("\nResNet-20 conv layers, batch %d, %d thread%s (engine: 0 im2col, 2/3 Winograd "
           "F(2x2)/F(4x4), 4 1x1, 5 stride 2)\n%-12s %4s %4s %4s %6s %6s %9s %8s %9s %8s\n",
           B, threads, threads > 1 ? "s" : "", "layer", "C", "HW", "K", "k/s", "engine", "fwd ms",
           "GFLOP/s", "bwd ms", "GFLOP/s");
    double sum[2][2] = {{0}};
    for (size_t i = 0; i < sizeof resnet_convs / sizeof resnet_convs[0]; i++) {
        const convdef_t *c = &resnet_convs[i];
        if (only && strcmp(only, c->name)) continue;
        double tf, tb;
        int variant = -1;
        time_conv(c, B, threads, seconds / 2, &tf, &tb, &variant);
        const int o = (c->hw + 2 * c->p - c->ks) / c->s + 1;
        const double f = 2.0 * B * c->k * c->c * c->ks * c->ks * o * o;
        printf("%-12s %4d %4d %4d %4d/%d %6d %9.3f %8.1f %9.3f %8.1f\n", c->name, c->c, c->hw,
               c->k, c->ks, c->s, variant, tf * 1e3, f / tf / 1e9, tb * 1e3,
               (c->c > 3 ? 2 : 1) * f / tb / 1e9);
        sum[c->hw == 28 || c->hw == 14 || c->hw == 7][0] += c->count * tf;
        sum[c->hw == 28 || c->hw == 14 || c->hw == 7][1] += c->count * tb;
    }
    printf("ResNet-20 convs, CIFAR: fwd %.2f ms, bwd %.2f ms a step; Fashion-MNIST: fwd %.2f ms, "
           "bwd %.2f ms\n", sum[0][0] * 1e3, sum[0][1] * 1e3, sum[1][0] * 1e3, sum[1][1] * 1e3);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the q-quantile of t[0..n) (sorts t) */
static double quantile(double *t, long n, double q)
{
    if (n == 0) return 0;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[(long)(q * (double)(n - 1) + 0.5)];
}

/* One line per rank: the median and 90th percentile of each phase of
 * the step (ms), which shows whether a rank waits in the all-reduce
 * because the other computes slower on the whole or in occasional
 * slow steps. ph[p * cap + s] is phase p of measured step s. */
enum { PH_COMPUTE, PH_REDUCE, PH_UPDATE, PH_N };
static void print_phases(const netdef_t *d, double *ph, long cap, long n, MPI_Comm comm)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    double mine[2 * PH_N], *all = malloc(sizeof(double) * 2 * PH_N * size);
    for (int p = 0; p < PH_N; p++) {
        mine[2 * p] = 1e3 * quantile(ph + p * cap, n, 0.5);
        mine[2 * p + 1] = 1e3 * quantile(ph + p * cap, n, 0.9);
    }
    MPI_Gather(mine, 2 * PH_N, MPI_DOUBLE, all, 2 * PH_N, MPI_DOUBLE, 0, comm);
    if (rank == 0)
        for (int r = 0; r < size; r++) {
            const double *a = all + 2 * PH_N * r;
            printf("%-13s   rank %d, ms per step (median / 90th percentile): compute %.2f / %.2f"
                   "  all-reduce %.3f / %.3f  update %.3f / %.3f\n",
                   d->name, r, a[0], a[1], a[2], a[3], a[4], a[5]);
        }
    free(all);
}

/* Whole steps: batch, forward, loss, backward, all-reduce, update. */
static void bench_steps(const netdef_t *d, int B, int threads, double seconds, int phases,
                        MPI_Comm comm)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    cnn_shape_t in = d->in;
    in.n = B;
    cnn_net_t *net;
    if (cnn_net_create(d->layers, d->n, in, threads, &net) != CNN_OK) {
        fprintf(stderr, "bench: %s\n", cnn_error_message());
        return;
    }
    cnn_net_init(net, 1);
    /* the trainer's gradient sum (MPICNN_GRAD_SUM=mpi: one MPI_Allreduce) */
    cnn_dist_gsum_t *gsum;
    if (cnn_dist_gsum_create(comm, net->nparams, 0, &gsum) != CNN_OK) {
        fprintf(stderr, "bench: %s\n", cnn_error_message());
        cnn_net_free(net);
        return;
    }
    if (cnn_dist_gsum_buffer(gsum)) cnn_net_bind_grads(net, cnn_dist_gsum_buffer(gsum));
    cnn_optim_t *opt;
    cnn_optim_create(CNN_MOMENTUM, net->nparams, &opt);
    const int K = net->output.c;
    int *labels = malloc(sizeof(int) * B);
    for (int i = 0; i < B; i++) labels[i] = i % K;
    float *dy = malloc(sizeof(float) * (size_t)B * K);
    enum { NBATCH = 4 };
    const size_t bsz = (size_t)B * cnn_shape_image(in);
    float *batches = malloc(sizeof(float) * bsz * NBATCH);
    for (int b = 0; b < NBATCH; b++) fill(batches + b * bsz, bsz, (uint64_t)b + 10);
    double t_reduce = 0, t0 = 0;
    long steps = 0, warm = 3, cap = phases ? 100000 : 0;
    double *ph = phases ? malloc(sizeof(double) * PH_N * cap) : NULL;
    for (;;) {
        if (steps == warm) {
            MPI_Barrier(comm);
            t0 = now();
            t_reduce = 0;
        }
        double tc = now();
        memcpy(net->act[0], batches + (steps % NBATCH) * bsz, sizeof(float) * bsz);
        cnn_ctx_t ctx = cnn_net_ctx(net, 1, 1, rank, (uint64_t)steps);
        const float *y = cnn_net_forward(net, &ctx, B);
        double loss;
        cnn_loss_softmax_ce.compute(y, labels, B, K, 1.0f / (B * size), &loss, dy);
        cnn_net_zero_grad(net);
        cnn_net_backward(net, &ctx, B, dy);
        double tr = now();
        const float *g;
        cnn_dist_gsum_run(gsum, net->grads, &g);
        double tu = now();
        t_reduce += tu - tr;
        cnn_optim_step(opt, net->params, g, 1e-4, net->nthreads);
        long s = steps - warm;
        if (s >= 0 && s < cap) {
            ph[PH_COMPUTE * cap + s] = tr - tc;
            ph[PH_REDUCE * cap + s] = tu - tr;
            ph[PH_UPDATE * cap + s] = now() - tu;
        }
        steps++;
        /* rank 0's clock decides when to stop, for everyone */
        int done = steps > warm && now() - t0 >= seconds;
        MPI_Bcast(&done, 1, MPI_INT, 0, comm);
        if (done) break;
    }
    double t = now() - t0;
    long n = steps - warm;
    double rmax;
    MPI_Allreduce(&t_reduce, &rmax, 1, MPI_DOUBLE, MPI_MAX, comm);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss = ru.ru_maxrss, rss_max;
    MPI_Allreduce(&rss, &rss_max, 1, MPI_LONG, MPI_MAX, comm);
    if (rank == 0)
        printf("%-13s -np %d x %d thread%s, batch %d/rank: %8.0f images/s  step %.2f ms  "
               "all-reduce %.3f ms (%.1f%%)  peak RSS %.0f MB/rank%s%s\n",
               d->name, size, threads, threads > 1 ? "s" : " ", B, (double)n * B * size / t,
               1e3 * t / n, 1e3 * rmax / n, 100 * rmax / t, rss_max / 1024.0,
               size > 1 ? "  sum: " : "", size > 1 ? cnn_dist_gsum_method(gsum) : "");
    if (phases) print_phases(d, ph, cap, n < cap ? n : cap, comm);
    free(ph);
    free(labels);
    free(dy);
    free(batches);
    cnn_optim_free(opt);
    cnn_net_free(net);
    cnn_dist_gsum_free(gsum);
}

/* MPI_Allreduce (sum of floats) time over message sizes: the latency and
 * bandwidth the scaling model in docs/performance.md uses. */
static void bench_allreduce(MPI_Comm comm)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    const size_t maxn = (size_t)4 << 20;
    float *buf = calloc(maxn, sizeof(float));
    if (rank == 0)
        printf("all-reduce over %d ranks (sum of floats): MPI_Allreduce, and the trainer's "
               "gradient sum (cnn_dist_gsum_run) from its own slot\n%12s %12s %10s %12s %s\n",
               size, "bytes", "us", "GB/s", "gsum us", "gsum method");
    for (size_t n = 1; n <= maxn; n *= 4) {
        int reps = n < 65536 ? 200 : 20;
        MPI_Barrier(comm);
        double t = now();
        for (int r = 0; r < reps; r++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, comm);
        t = (now() - t) / reps;
        double tmax, tg = 0, tgmax = 0;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, comm);
        cnn_dist_gsum_t *g = NULL;
        if (cnn_dist_gsum_create(comm, n, 0, &g) == CNN_OK) {
            float *x = cnn_dist_gsum_buffer(g) ? cnn_dist_gsum_buffer(g) : buf;
            const float *sum;
            /* a new segment: its pages are mapped into each rank on first use */
            for (int r = 0; r < 3; r++) cnn_dist_gsum_run(g, x, &sum);
            MPI_Barrier(comm);
            tg = now();
            for (int r = 0; r < reps; r++) cnn_dist_gsum_run(g, x, &sum);
            tg = (now() - tg) / reps;
        }
        MPI_Allreduce(&tg, &tgmax, 1, MPI_DOUBLE, MPI_MAX, comm);
        /* ring all-reduce moves 2 (P-1)/P of the buffer per rank */
        if (rank == 0)
            printf("%12zu %12.1f %10.2f %12.1f %s\n", n * 4, tmax * 1e6,
                   size > 1 ? 2.0 * (size - 1) / size * n * 4 / tmax / 1e9 : 0.0, tgmax * 1e6,
                   g ? cnn_dist_gsum_method(g) : "(failed)");
        cnn_dist_gsum_free(g);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    int provided, rank;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cnn_blas_single_thread();
    int threads = omp_get_max_threads(), B = 64, layers = 1, steps = 1, allreduce = 0, phases = 0;
    int convs = 0;
    double seconds = 3;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--steps-only")) layers = 0;
        else if (!strcmp(argv[i], "--layers-only")) steps = 0;
        else if (!strcmp(argv[i], "--allreduce")) allreduce = 1;
        else if (!strcmp(argv[i], "--phases")) phases = 1;
        else if (!strcmp(argv[i], "--resnet-convs")) convs = 1;
        else if (!strcmp(argv[i], "--cpu-time")) cpu_time = 1;
        else if (!strcmp(argv[i], "--algo") && i + 1 < argc) cnn_conv_set_algo(atoi(argv[++i]));
        else if (!strcmp(argv[i], "--no-fuse")) cnn_net_set_fuse(0);
        else if (!strcmp(argv[i], "--net") && i + 1 < argc) only = argv[++i];
        else {
            if (rank == 0)
                fprintf(stderr, "usage: mpicnn-bench [--threads T] [--batch B] [--seconds S] "
                                "[--net NAME] [--phases] [--algo N] [--no-fuse] [--cpu-time] "
                                "[--steps-only|--layers-only|--allreduce|--resnet-convs]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (threads < 1 || B < 1 || seconds <= 0) {
        if (rank == 0) fprintf(stderr, "mpicnn-bench: bad argument\n");
        MPI_Finalize();
        return 2;
    }
    if (allreduce) {
        bench_allreduce(MPI_COMM_WORLD);
        MPI_Finalize();
        return 0;
    }
    if (convs) {
        if (rank == 0) bench_convs(B, threads, seconds, only);
        MPI_Finalize();
        return 0;
    }
    enum { NNETS = 5 };
    static netdef_t nets[NNETS];
    nets[0] = fmnist();
    nets[1] = cifar3();
    nets[2] = resnet20("resnet20-fmnist", 1, 28);
    nets[3] = resnet20("resnet20-cifar", 3, 32);
    nets[4] = cifar_quick();
    int use[NNETS] = {1, 1, 1, 1, 0}, any = 0;
    if (only) {
        /* --net resnet20: both inputs */
        for (int i = 0; i < NNETS; i++)
            any |= use[i] = !strcmp(only, nets[i].name) ||
                            (!strcmp(only, "resnet20") && !strncmp(nets[i].name, "resnet20-", 9));
        if (!any) {
            if (rank == 0)
                fprintf(stderr, "mpicnn-bench: --net %s: no such net (fmnist-ref, cifar-3layer, "
                                "resnet20, resnet20-fmnist, resnet20-cifar, cifar-quick)\n",
                        only);
            MPI_Finalize();
            return 2;
        }
    }
    if (layers && rank == 0) {
        double peak1 = sgemm_gflops(1), peak = threads > 1 ? sgemm_gflops(threads) : peak1;
        printf("sgemm 2048^3: %.1f GFLOP/s on 1 thread, %.1f on %d (BLAS kernels: %s)\n",
               peak1, peak, threads, cnn_blas_kernels());
        for (int i = 0; i < NNETS; i++)
            if (use[i]) bench_layers(&nets[i], B, threads, peak, seconds);
        printf("\n");
    }
    if (steps)
        for (int i = 0; i < NNETS; i++)
            if (use[i]) bench_steps(&nets[i], B, threads, seconds, phases, MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
