/* sampler.c - one seeded permutation per epoch, sliced across ranks.
 *
 * The permutation depends only on (seed, epoch), so every rank computes
 * the same one without communicating, and a resumed run that calls
 * set_epoch(e) sees exactly the order it would have seen. */
#include "mpicnn/data.h"

#include <stdlib.h>

#include "mpicnn/rng.h"

/* floor(n * k / d) for 0 <= k <= d without overflowing n * k. */
static size_t share(size_t n, size_t k, size_t d)
{
    return (n / d) * k + (n % d) * k / d;
}

cnn_status_t cnn_sampler_create(size_t n, int global_batch, int rank,
                                int nranks, uint64_t seed, int shuffle,
                                cnn_sampler_t **out)
{
    *out = NULL;
    if (global_batch < 1)
        return cnn_error_set(CNN_ECONFIG, "sampler: batch size %d, must be >= 1",
                             global_batch);
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return cnn_error_set(CNN_ECONFIG,
                             "sampler: rank %d of %d ranks is not valid", rank,
                             nranks);
    cnn_sampler_t *s = calloc(1, sizeof *s);
    if (!s) return cnn_error_set(CNN_ENOMEM, "sampler: out of memory");
    s->perm = malloc((n ? n : 1) * sizeof *s->perm);
    if (!s->perm) {
        free(s);
        return cnn_error_set(CNN_ENOMEM,
                             "sampler: cannot allocate a permutation of %zu", n);
    }
    for (size_t i = 0; i < n; i++) s->perm[i] = i;
    s->n = n;
    s->batch = global_batch;
    s->rank = rank;
    s->nranks = nranks;
    s->seed = seed;
    s->shuffle = shuffle;
    s->epoch = -1;
    *out = s;
    return CNN_OK;
}

void cnn_sampler_free(cnn_sampler_t *s)
{
    if (!s) return;
    free(s->perm);
    free(s);
}

void cnn_sampler_set_epoch(cnn_sampler_t *s, long epoch)
{
    for (size_t i = 0; i < s->n; i++) s->perm[i] = i;
    s->epoch = epoch;
    if (!s->shuffle) return;
    /* one stream per (seed, epoch): hash the seed, then mix in the epoch */
    uint64_t st = s->seed;
    st = cnn_rng_next(&st) ^ (uint64_t)epoch;
    st = cnn_rng_next(&st);
    for (size_t i = s->n; i > 1; i--) {
        size_t j = (size_t)cnn_rng_below(&st, i);
        size_t t = s->perm[i - 1];
        s->perm[i - 1] = s->perm[j];
        s->perm[j] = t;
    }
}

size_t cnn_sampler_steps(const cnn_sampler_t *s)
{
    return (s->n + (size_t)s->batch - 1) / (size_t)s->batch;
}

const size_t *cnn_sampler_slice(const cnn_sampler_t *s, size_t step,
                                int *n_local, int *n_global)
{
    if (step >= cnn_sampler_steps(s)) {
        *n_local = *n_global = 0;
        return s->perm + s->n;
    }
    size_t start = step * (size_t)s->batch;
    size_t g = s->n - start < (size_t)s->batch ? s->n - start : (size_t)s->batch;
    size_t lo = share(g, (size_t)s->rank, (size_t)s->nranks);
    size_t hi = share(g, (size_t)s->rank + 1, (size_t)s->nranks);
    *n_global = (int)g;
    *n_local = (int)(hi - lo);
    return s->perm + start + lo;
}

void cnn_sampler_eval_range(size_t n, int rank, int nranks, size_t *lo,
                            size_t *hi)
{
    *lo = share(n, (size_t)rank, (size_t)nranks);
    *hi = share(n, (size_t)rank + 1, (size_t)nranks);
}
