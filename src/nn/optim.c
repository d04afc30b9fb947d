/* optim.c - parameter updates. Formulas follow torch.optim so that the
 * hyperparameters mean what PyTorch users expect:
 *   momentum: v = mu v + g;            w -= lr v
 *   nesterov: v = mu v + g;            w -= lr (g + mu v)
 *   adam:     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *             w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * with g = grad + weight_decay * w in every case. */
#include "mpicnn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"sgd", "momentum", "nesterov", "adam"};

int cnn_optim_kind(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

const char *cnn_optim_name(cnn_optim_kind_t kind) { return names[kind]; }

int cnn_optim_state_slots(const cnn_optim_t *opt)
{
    return opt->kind == CNN_SGD ? 0 : opt->kind == CNN_ADAM ? 2 : 1;
}

void cnn_optim_free(cnn_optim_t *opt)
{
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    free(opt);
}

cnn_status_t cnn_optim_create(cnn_optim_kind_t kind, size_t n, cnn_optim_t **out)
{
    *out = NULL;
    cnn_optim_t *o = calloc(1, sizeof *o);
    if (!o) return cnn_error_set(CNN_ENOMEM, "out of memory for the optimizer");
    *o = (cnn_optim_t){.kind = kind, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999,
                       .eps = 1e-8, .n = n};
    int slots = cnn_optim_state_slots(o);
    if (slots >= 1) o->m = calloc(n ? n : 1, sizeof(float));
    if (slots >= 2) o->v = calloc(n ? n : 1, sizeof(float));
    if ((slots >= 1 && !o->m) || (slots >= 2 && !o->v)) {
        cnn_optim_free(o);
        return cnn_error_set(CNN_ENOMEM, "out of memory for the optimizer state");
    }
    *out = o;
    return CNN_OK;
}

void cnn_optim_step(cnn_optim_t *opt, float *w, const float *g, double lr, int nthreads)
{
    const float wd = (float)opt->weight_decay, mu = (float)opt->momentum;
    const float flr = (float)lr;
    const ptrdiff_t n = (ptrdiff_t)opt->n;
    opt->t++;
    switch (opt->kind) {
    case CNN_SGD:
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (ptrdiff_t i = 0; i < n; i++) w[i] -= flr * (g[i] + wd * w[i]);
        break;
    case CNN_MOMENTUM:
    case CNN_NESTEROV: {
        float *v = opt->m;
        const int nest = opt->kind == CNN_NESTEROV;
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (ptrdiff_t i = 0; i < n; i++) {
            const float gi = g[i] + wd * w[i];
            v[i] = mu * v[i] + gi;
            w[i] -= flr * (nest ? gi + mu * v[i] : v[i]);
        }
        break;
    }
    case CNN_ADAM: {
        const float b1 = (float)opt->beta1, b2 = (float)opt->beta2;
        const float c1 = (float)(1.0 - pow(opt->beta1, (double)opt->t));
        const float c2 = (float)(1.0 - pow(opt->beta2, (double)opt->t));
        const float eps = (float)opt->eps;
        float *m = opt->m, *v = opt->v;
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (ptrdiff_t i = 0; i < n; i++) {
            const float gi = g[i] + wd * w[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            w[i] -= flr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
        }
        break;
    }
    }
}
