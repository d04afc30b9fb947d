/* optim.c - parameter updates. Formulas follow torch.optim so that the
 * hyperparameters mean what PyTorch users expect:
 *   momentum: v = mu v + g;            w -= lr v
 *   nesterov: v = mu v + g;            w -= lr (g + mu v)
 *   adam:     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *             w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * with g = grad + weight_decay * w in each of these; and
 *   adamw:    w -= lr wd w, then adam's step with g = grad
 *             (decoupled weight decay, as torch.optim.AdamW)
 *   lars:     per tensor, with d = 1 for a tensor that decays and 0
 *             for a 1-D one (bias, batchnorm):
 *             local = d ? eta |w| / (|grad| + wd |w|) : 1
 *                     (1 when |w| or |grad| is 0)
 *             v = mu v + local (grad + d wd w);  w -= lr v
 *             (You et al. 2017, in the form of NVIDIA's LARC: the
 *             momentum holds the locally scaled gradient, lr is applied
 *             after it, as in the momentum rule above). */
#include "mpicnn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"sgd", "momentum", "nesterov", "adam", "adamw", "lars"};
#define NKINDS ((int)(sizeof names / sizeof names[0]))

int cnn_optim_kind(const char *name)
{
    for (int i = 0; i < NKINDS; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

const char *cnn_optim_name(cnn_optim_kind_t kind) { return names[kind]; }

int cnn_optim_kind_slots(cnn_optim_kind_t kind)
{
    switch (kind) {
    case CNN_SGD: return 0;
    case CNN_ADAM:
    case CNN_ADAMW: return 2;
    default: return 1;
    }
}

int cnn_optim_state_slots(const cnn_optim_t *opt) { return cnn_optim_kind_slots(opt->kind); }

void cnn_optim_free(cnn_optim_t *opt)
{
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    free(opt->tensors);
    free(opt->sums);
    free(opt);
}

/* The tensor table t (nt entries, taken over, freed on failure) and its
 * scratch. */
static cnn_status_t set_tensors(cnn_optim_t *o, cnn_optim_tensor_t *t, int nt)
{
    double *sums = calloc(2 * (size_t)nt, sizeof(double));
    if (!sums) {
        free(t);
        return cnn_error_set(CNN_ENOMEM, "out of memory for the optimizer's tensor table");
    }
    free(o->tensors);
    free(o->sums);
    o->tensors = t;
    o->sums = sums;
    o->ntensors = nt;
    return CNN_OK;
}

cnn_status_t cnn_optim_create(cnn_optim_kind_t kind, size_t n, cnn_optim_t **out)
{
    *out = NULL;
    cnn_optim_t *o = calloc(1, sizeof *o);
    if (!o) return cnn_error_set(CNN_ENOMEM, "out of memory for the optimizer");
    *o = (cnn_optim_t){.kind = kind, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999,
                       .eps = 1e-8, .trust_coefficient = 0.001, .n = n};
    int slots = cnn_optim_state_slots(o);
    if (slots >= 1) o->m = calloc(n ? n : 1, sizeof(float));
    if (slots >= 2) o->v = calloc(n ? n : 1, sizeof(float));
    cnn_optim_tensor_t *all = malloc(sizeof *all);
    if ((slots >= 1 && !o->m) || (slots >= 2 && !o->v) || !all) {
        free(all);
        cnn_optim_free(o);
        return cnn_error_set(CNN_ENOMEM, "out of memory for the optimizer state");
    }
    *all = (cnn_optim_tensor_t){.offset = 0, .count = n, .decay = 1};
    cnn_status_t st = set_tensors(o, all, 1);
    if (st != CNN_OK) {
        cnn_optim_free(o);
        return st;
    }
    *out = o;
    return CNN_OK;
}

cnn_status_t cnn_optim_set_tensors(cnn_optim_t *opt, const cnn_optim_tensor_t *t, int nt)
{
    size_t next = 0;
    for (int k = 0; k < nt; k++) {
        if (t[k].offset != next)
            return cnn_error_set(CNN_EINTERNAL, "optimizer tensor %d starts at %zu, not %zu", k,
                                 t[k].offset, next);
        next += t[k].count;
    }
    if (nt < 1 || next != opt->n)
        return cnn_error_set(CNN_EINTERNAL, "%d optimizer tensors cover %zu of %zu parameters",
                             nt, next, opt->n);
    cnn_optim_tensor_t *copy = malloc(sizeof *copy * (size_t)nt);
    if (!copy) return cnn_error_set(CNN_ENOMEM, "out of memory for the optimizer's tensor table");
    memcpy(copy, t, sizeof *copy * (size_t)nt);
    return set_tensors(opt, copy, nt);
}

cnn_status_t cnn_optim_use_net(cnn_optim_t *opt, const cnn_net_t *net)
{
    int nt = 0;
    for (int i = 0; i < net->nlayers; i++) nt += net->layers[i].ops->ntensors;
    cnn_optim_tensor_t *t = malloc(sizeof *t * (size_t)(nt ? nt : 1));
    if (!t) return cnn_error_set(CNN_ENOMEM, "out of memory for the optimizer's tensor table");
    nt = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const cnn_layer_t *l = &net->layers[i];
        cnn_layer_tensor_t lt[CNN_LAYER_TENSORS_MAX];
        const int k = cnn_layer_tensors(l, lt);
        for (int j = 0; j < k; j++) {
            if (lt[j].desc->in_state || lt[j].count == 0) continue;
            t[nt++] = (cnn_optim_tensor_t){.offset = (size_t)(l->params - net->params) +
                                                     lt[j].offset,
                                           .count = lt[j].count, .decay = lt[j].ndims > 1};
        }
    }
    if (nt == 0) { /* no parameters: one empty tensor keeps the table non-empty */
        t[0] = (cnn_optim_tensor_t){.offset = 0, .count = opt->n, .decay = 1};
        nt = 1;
    }
    const cnn_status_t st = cnn_optim_set_tensors(opt, t, nt);
    free(t);
    return st;
}

/* sum of x[i]^2 over n floats, in double, in index order */
static double sumsq(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

double cnn_optim_l2(const cnn_optim_t *opt, const float *w, int nthreads)
{
    if (opt->weight_decay == 0.0) return 0.0;
    const int lars = opt->kind == CNN_LARS;
    double *s = opt->sums;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int k = 0; k < opt->ntensors; k++) {
        const cnn_optim_tensor_t *t = &opt->tensors[k];
        s[k] = !lars || t->decay ? sumsq(w + t->offset, t->count) : 0.0;
    }
    double total = 0.0;
    for (int k = 0; k < opt->ntensors; k++) total += s[k];
    return 0.5 * opt->weight_decay * total;
}

/* sgd, momentum, nesterov: coupled weight decay */
static void step_sgd(cnn_optim_t *opt, float *w, const float *g, float flr, int nthreads)
{
    const float wd = (float)opt->weight_decay, mu = (float)opt->momentum;
    const ptrdiff_t n = (ptrdiff_t)opt->n;
    if (opt->kind == CNN_SGD) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (ptrdiff_t i = 0; i < n; i++) w[i] -= flr * (g[i] + wd * w[i]);
        return;
    }
    float *v = opt->m;
    const int nest = opt->kind == CNN_NESTEROV;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (ptrdiff_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * w[i];
        v[i] = mu * v[i] + gi;
        w[i] -= flr * (nest ? gi + mu * v[i] : v[i]);
    }
}

/* adam (weight decay in the gradient) and adamw (decoupled) */
static void step_adam(cnn_optim_t *opt, float *w, const float *g, double lr, int nthreads)
{
    const float flr = (float)lr;
    const ptrdiff_t n = (ptrdiff_t)opt->n;
    const int decoupled = opt->kind == CNN_ADAMW;
    const float wd = decoupled ? 0.0f : (float)opt->weight_decay;
    const float shrink = decoupled ? (float)(lr * opt->weight_decay) : 0.0f;
    const float b1 = (float)opt->beta1, b2 = (float)opt->beta2;
    const float c1 = (float)(1.0 - pow(opt->beta1, (double)opt->t));
    const float c2 = (float)(1.0 - pow(opt->beta2, (double)opt->t));
    const float eps = (float)opt->eps;
    float *m = opt->m, *v = opt->v;
    if (decoupled) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (ptrdiff_t i = 0; i < n; i++) {
            w[i] -= shrink * w[i];
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            w[i] -= flr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
        }
        return;
    }
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (ptrdiff_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= flr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

/* lars: the norms of every tensor (one thread each), then its update */
static void step_lars(cnn_optim_t *opt, float *w, const float *g, float flr, int nthreads)
{
    const double wd = opt->weight_decay, eta = opt->trust_coefficient;
    const float mu = (float)opt->momentum;
    double *s = opt->sums; /* |w|^2, |g|^2 of tensor k at 2k, 2k+1 */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int k = 0; k < opt->ntensors; k++) {
        const cnn_optim_tensor_t *t = &opt->tensors[k];
        s[2 * k] = t->decay ? sumsq(w + t->offset, t->count) : 0.0;
        s[2 * k + 1] = t->decay ? sumsq(g + t->offset, t->count) : 0.0;
    }
    for (int k = 0; k < opt->ntensors; k++) {
        const cnn_optim_tensor_t *t = &opt->tensors[k];
        const double wn = sqrt(s[2 * k]), gn = sqrt(s[2 * k + 1]);
        const float local = t->decay && wn > 0.0 && gn > 0.0 ? (float)(eta * wn / (gn + wd * wn))
                                                             : 1.0f;
        const float twd = t->decay ? (float)wd : 0.0f;
        float *tw = w + t->offset, *tv = opt->m + t->offset;
        const float *tg = g + t->offset;
        const ptrdiff_t n = (ptrdiff_t)t->count;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (n > 4096)
        for (ptrdiff_t i = 0; i < n; i++) {
            tv[i] = mu * tv[i] + local * (tg[i] + twd * tw[i]);
            tw[i] -= flr * tv[i];
        }
    }
}

void cnn_optim_step(cnn_optim_t *opt, float *w, const float *g, double lr, int nthreads)
{
    opt->t++;
    switch (opt->kind) {
    case CNN_SGD:
    case CNN_MOMENTUM:
    case CNN_NESTEROV: step_sgd(opt, w, g, (float)lr, nthreads); break;
    case CNN_ADAM:
    case CNN_ADAMW: step_adam(opt, w, g, lr, nthreads); break;
    case CNN_LARS: step_lars(opt, w, g, (float)lr, nthreads); break;
    }
}
