/* test_sampler.c - the epoch sampler and the evaluation shards.
 *
 * The ranks are simulated: one sampler per rank in one process, exactly
 * what nranks processes would each build. Per epoch, every index must be
 * seen exactly once over all ranks and steps, whatever n, batch and nranks
 * (including a partial last batch and empty shards). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn/data.h"

#define MAX_RANKS 8

/* One sampler per simulated rank. */
typedef struct {
    int nranks;
    cnn_sampler_t *s[MAX_RANKS];
} ranks_t;

static void ranks_create(ranks_t *r, size_t n, int batch, int nranks,
                         uint64_t seed, int shuffle)
{
    assert_true(nranks <= MAX_RANKS);
    r->nranks = nranks;
    for (int k = 0; k < nranks; k++)
        assert_int_equal(cnn_sampler_create(n, batch, k, nranks, seed, shuffle,
                                            &r->s[k]),
                         CNN_OK);
}

static void ranks_free(ranks_t *r)
{
    for (int k = 0; k < r->nranks; k++) cnn_sampler_free(r->s[k]);
    r->nranks = 0;
}

static void ranks_set_epoch(ranks_t *r, long epoch)
{
    for (int k = 0; k < r->nranks; k++) cnn_sampler_set_epoch(r->s[k], epoch);
}

static int teardown(void **state)
{
    ranks_t *r = *state;
    ranks_free(r);
    free(r);
    return 0;
}

static int setup(void **state)
{
    ranks_t *r = calloc(1, sizeof *r);
    if (!r) return -1;
    *state = r;
    return 0;
}

/* perm is a permutation of [0, n) */
static void check_perm(const size_t *perm, size_t n)
{
    unsigned char *seen = calloc(n + 1, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        assert_true(perm[i] < n);
        assert_int_equal(seen[perm[i]], 0);
        seen[perm[i]] = 1;
    }
    free(seen);
}

/* One epoch over all ranks: every index exactly once; shards are the
 * balanced contiguous slices of each global batch; all ranks agree on the
 * global batch. Returns how many (step, rank) shards were empty. */
static int check_epoch(const ranks_t *r)
{
    const cnn_sampler_t *s0 = r->s[0];
    size_t n = s0->n, steps = cnn_sampler_steps(s0);
    int *count = calloc(n + 1, sizeof *count), empty = 0;
    assert_non_null(count);
    assert_int_equal(steps, (n + (size_t)s0->batch - 1) / (size_t)s0->batch);
    for (int k = 1; k < r->nranks; k++) {
        assert_int_equal(cnn_sampler_steps(r->s[k]), steps);
        assert_memory_equal(r->s[k]->perm, s0->perm, n * sizeof(size_t));
    }
    for (size_t step = 0; step < steps; step++) {
        size_t want_g = step + 1 < steps ? (size_t)s0->batch
                                         : n - step * (size_t)s0->batch;
        size_t next = step * (size_t)s0->batch; /* shards tile the batch */
        int total = 0, maxl = 0, minl = 1 << 30;
        for (int k = 0; k < r->nranks; k++) {
            int nl = -1, ng = -1;
            const size_t *p = cnn_sampler_slice(r->s[k], step, &nl, &ng);
            assert_int_equal(ng, want_g);
            assert_true(nl >= 0);
            assert_ptr_equal(p, r->s[k]->perm + next);
            next += (size_t)nl;
            for (int i = 0; i < nl; i++) count[p[i]]++;
            total += nl;
            if (nl > maxl) maxl = nl;
            if (nl < minl) minl = nl;
            if (nl == 0) empty++;
            size_t lo = (size_t)ng * (size_t)k / (size_t)r->nranks;
            size_t hi = (size_t)ng * (size_t)(k + 1) / (size_t)r->nranks;
            assert_int_equal(nl, hi - lo);
        }
        assert_int_equal(total, want_g);
        assert_true(maxl - minl <= 1); /* balanced */
    }
    for (size_t i = 0; i < n; i++)
        if (count[i] != 1) fail_msg("index %zu seen %d times", i, count[i]);
    free(count);
    return empty;
}

static void test_uneven(void **state)
{
    ranks_t *r = *state;
    /* n not divisible by batch, batch not divisible by nranks */
    ranks_create(r, 103, 10, 3, 42, 1);
    assert_int_equal(cnn_sampler_steps(r->s[0]), 11);
    assert_int_equal(r->s[0]->epoch, -1);
    for (long e = 0; e < 4; e++) {
        ranks_set_epoch(r, e);
        assert_int_equal(r->s[1]->epoch, e);
        check_perm(r->s[0]->perm, 103);
        check_epoch(r);
    }
    /* the last, partial batch: 3 images, one per rank */
    int nl, ng;
    for (int k = 0; k < 3; k++) {
        const size_t *p = cnn_sampler_slice(r->s[k], 10, &nl, &ng);
        assert_int_equal(ng, 3);
        assert_int_equal(nl, 1);
        assert_int_equal(p[0], r->s[k]->perm[100 + k]);
    }
    /* the full batches split 3/3/4 */
    cnn_sampler_slice(r->s[0], 0, &nl, &ng);
    assert_int_equal(nl, 3);
    cnn_sampler_slice(r->s[2], 0, &nl, &ng);
    assert_int_equal(nl, 4);
    /* past the end: empty */
    nl = ng = -1;
    cnn_sampler_slice(r->s[0], 11, &nl, &ng);
    assert_int_equal(nl, 0);
    assert_int_equal(ng, 0);
}

static void test_many_shapes(void **state)
{
    ranks_t *r = *state;
    const size_t ns[] = {1, 2, 7, 9, 64, 100, 257};
    const int batches[] = {1, 2, 3, 4, 10, 64, 300};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
            for (int nr = 1; nr <= 5; nr++) {
                ranks_create(r, ns[a], batches[b], nr, a * 100 + b, 1);
                ranks_set_epoch(r, (long)b);
                check_epoch(r);
                ranks_free(r);
            }
}

static void test_empty_shards(void **state)
{
    ranks_t *r = *state;
    /* n=9, batch 4, 3 ranks: batches of 4, 4, 1; the last gives ranks 0
     * and 1 nothing */
    ranks_create(r, 9, 4, 3, 1, 1);
    ranks_set_epoch(r, 0);
    assert_int_equal(check_epoch(r), 2);
    int nl, ng;
    cnn_sampler_slice(r->s[0], 2, &nl, &ng);
    assert_int_equal(ng, 1);
    assert_int_equal(nl, 0);
    cnn_sampler_slice(r->s[1], 2, &nl, &ng);
    assert_int_equal(nl, 0);
    const size_t *p = cnn_sampler_slice(r->s[2], 2, &nl, &ng);
    assert_int_equal(nl, 1);
    assert_int_equal(p[0], r->s[2]->perm[8]);
    ranks_free(r);

    /* a global batch smaller than the number of ranks: always someone idle */
    ranks_create(r, 10, 2, 3, 1, 1);
    ranks_set_epoch(r, 3);
    assert_int_equal(check_epoch(r), 5);
    ranks_free(r);

    /* more ranks than images */
    ranks_create(r, 2, 8, 5, 1, 1);
    ranks_set_epoch(r, 0);
    assert_int_equal(check_epoch(r), 3);
}

static void test_determinism(void **state)
{
    ranks_t *r = *state;
    const size_t n = 1000;
    ranks_create(r, n, 32, 2, 7, 1);
    size_t *e5 = malloc(n * sizeof *e5), *e6 = malloc(n * sizeof *e6);
    assert_non_null(e5);
    assert_non_null(e6);
    cnn_sampler_set_epoch(r->s[0], 5);
    memcpy(e5, r->s[0]->perm, n * sizeof *e5);
    cnn_sampler_set_epoch(r->s[0], 6);
    memcpy(e6, r->s[0]->perm, n * sizeof *e6);
    check_perm(e5, n);
    check_perm(e6, n);
    assert_true(memcmp(e5, e6, n * sizeof *e5) != 0); /* epochs differ */
    size_t fixed = 0;
    for (size_t i = 0; i < n; i++) fixed += e5[i] == i;
    assert_true(fixed < 20); /* actually shuffled */
    cnn_sampler_set_epoch(r->s[0], 5); /* back again: same order */
    assert_memory_equal(r->s[0]->perm, e5, n * sizeof *e5);
    /* another rank reaching epoch 5 by another path agrees */
    cnn_sampler_set_epoch(r->s[1], 2);
    cnn_sampler_set_epoch(r->s[1], 5);
    assert_memory_equal(r->s[1]->perm, e5, n * sizeof *e5);
    /* a fresh sampler with the same seed agrees; another seed does not */
    cnn_sampler_t *s = NULL;
    assert_int_equal(cnn_sampler_create(n, 32, 0, 1, 7, 1, &s), CNN_OK);
    cnn_sampler_set_epoch(s, 5);
    assert_memory_equal(s->perm, e5, n * sizeof *e5);
    cnn_sampler_free(s);
    assert_int_equal(cnn_sampler_create(n, 32, 0, 1, 8, 1, &s), CNN_OK);
    cnn_sampler_set_epoch(s, 5);
    assert_true(memcmp(s->perm, e5, n * sizeof *e5) != 0);
    cnn_sampler_free(s);
    free(e5);
    free(e6);
}

static void test_no_shuffle(void **state)
{
    ranks_t *r = *state;
    ranks_create(r, 50, 8, 2, 7, 0);
    for (long e = 0; e < 3; e++) {
        ranks_set_epoch(r, e);
        for (size_t i = 0; i < 50; i++) assert_int_equal(r->s[0]->perm[i], i);
        check_epoch(r);
    }
}

static void test_create_errors(void **state)
{
    (void)state;
    cnn_sampler_t *s = (cnn_sampler_t *)(uintptr_t)1;
    assert_int_equal(cnn_sampler_create(10, 0, 0, 1, 1, 1, &s), CNN_ECONFIG);
    assert_null(s);
    assert_int_equal(cnn_sampler_create(10, 4, 2, 2, 1, 1, &s), CNN_ECONFIG);
    assert_int_equal(cnn_sampler_create(10, 4, -1, 2, 1, 1, &s), CNN_ECONFIG);
    assert_int_equal(cnn_sampler_create(10, 4, 0, 0, 1, 1, &s), CNN_ECONFIG);
    assert_null(s);
    /* an empty data set: no steps */
    assert_int_equal(cnn_sampler_create(0, 4, 0, 1, 1, 1, &s), CNN_OK);
    cnn_sampler_set_epoch(s, 0);
    assert_int_equal(cnn_sampler_steps(s), 0);
    cnn_sampler_free(s);
    cnn_sampler_free(NULL);
}

static void test_eval_range(void **state)
{
    (void)state;
    const size_t ns[] = {0, 1, 2, 5, 10, 10000, 10001};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (int nr = 1; nr <= 7; nr++) {
            size_t n = ns[a], next = 0, minl = (size_t)-1, maxl = 0;
            for (int k = 0; k < nr; k++) {
                size_t lo, hi;
                cnn_sampler_eval_range(n, k, nr, &lo, &hi);
                assert_int_equal(lo, next); /* contiguous, in rank order */
                assert_true(hi >= lo);
                assert_int_equal(lo, n * (size_t)k / (size_t)nr);
                next = hi;
                if (hi - lo < minl) minl = hi - lo;
                if (hi - lo > maxl) maxl = hi - lo;
            }
            assert_int_equal(next, n);
            assert_true(maxl - minl <= 1);
        }
    /* no overflow of n * rank */
    size_t lo, hi, big = (size_t)1 << 62;
    cnn_sampler_eval_range(big, 3, 4, &lo, &hi);
    assert_int_equal(lo, big / 4 * 3);
    assert_int_equal(hi, big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_uneven, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_determinism, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_shuffle, setup, teardown),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_eval_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
