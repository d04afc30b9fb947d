/* source.c - this rank's batches: from memory, from the epoch's shard, or
 * from a reader thread's ring buffer (data.load).
 *
 * A batch is made the same way in every mode: the sampler gives the
 * training indices of the slice, their uint8 images are gathered (copied
 * from memory, or read from the data file), augmented image by image
 * (draws from seed, epoch and the training index) and converted to
 * normalised floats. Without augmentation, memory mode converts straight
 * from the data set (cnn_dataset_batch(), the same arithmetic without
 * the copy).
 *
 * The stream thread makes no MPI and no HDF5 call: it reads with pread()
 * (cnn_h5data_read_rows) or copies from memory. The ring of ready batches
 * is guarded by one mutex; the thread waits while the ring is full, the
 * trainer while it is empty. */
#include "mpicnn/source.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/augment.h"

#define STREAM_MAX_SLOTS 64

typedef struct {
    float *x;            /* (batch, c, h, w) */
    int32_t *labels;     /* (batch) */
    int n_local, n_global;
    long epoch;
    size_t step;
} slot_t;

/* What one thread needs to make batches: its own sampler and buffers. */
typedef struct {
    cnn_sampler_t *sampler;
    uint8_t *pix;        /* (batch, c, h, w) gathered images */
    uint8_t *scratch;    /* one image, for augmentation */
    size_t *rows;        /* (batch) file rows of a slice */
} maker_t;

typedef struct {
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t ready, space;
    slot_t *slots;
    int nslots, head, count; /* ready batches: slots[head .. head + count) */
    int stop;
    cnn_status_t err;        /* the thread's failure, once it has stopped */
    char msg[1024];
    long epoch;              /* the next batch the thread makes */
    size_t step;
    long want_epoch;         /* the next batch the trainer takes */
    size_t want_step;
    maker_t mk;
} stream_t;

struct cnn_source {
    cnn_source_data_t d;
    cnn_augment_config_t aug;
    int augment;
    uint64_t seed;
    cnn_data_load_t load;
    int c, h, w, batch;      /* batch: per rank */
    size_t isz, steps;
    maker_t mk;              /* the trainer thread's */
    /* shard: this rank's images of epoch shard_epoch, slice by slice */
    long shard_epoch;
    uint8_t *shard;
    size_t *shard_start;     /* (steps + 1) first image of each step's slice */
    stream_t *stream;
};

/* ------------------------------------------------------------------ */
/* making one batch                                                    */

static cnn_status_t maker_init(maker_t *m, const cnn_source_t *s, int rank, int nranks,
                               int global_batch, uint64_t seed)
{
    CNN_TRY(cnn_sampler_create(s->d.train->n, global_batch, rank, nranks, seed, 1, &m->sampler));
    m->pix = malloc(s->isz * (size_t)s->batch);
    m->scratch = malloc(s->isz);
    m->rows = malloc(sizeof(size_t) * (size_t)s->batch);
    if (!m->pix || !m->scratch || !m->rows)
        return cnn_error_set(CNN_ENOMEM, "out of memory for the batch buffers");
    return CNN_OK;
}

static void maker_free(maker_t *m)
{
    cnn_sampler_free(m->sampler);
    free(m->pix);
    free(m->scratch);
    free(m->rows);
    memset(m, 0, sizeof *m);
}

/* The images of training indices idx[0..n) into pix (n,c,h,w). */
static cnn_status_t gather(const cnn_source_t *s, maker_t *m, const size_t *idx, int n,
                           uint8_t *pix)
{
    if (!s->d.file) {
        for (int k = 0; k < n; k++)
            memcpy(pix + (size_t)k * s->isz, s->d.train->images + idx[k] * s->isz, s->isz);
        return CNN_OK;
    }
    for (int k = 0; k < n; k++) m->rows[k] = s->d.rows[idx[k]];
    return cnn_h5data_read_rows(s->d.file, m->rows, (size_t)n, pix);
}

/* Augments the gathered images pix of indices idx[0..n) and converts
 * them into x and labels. */
static void finish(const cnn_source_t *s, maker_t *m, long epoch, const size_t *idx, int n,
                   uint8_t *pix, float *x, int32_t *labels)
{
    if (s->augment)
        for (int k = 0; k < n; k++)
            cnn_augment_image(&s->aug, s->seed, epoch, idx[k], s->c, s->h, s->w,
                              pix + (size_t)k * s->isz, m->scratch);
    cnn_images_to_floats(pix, n, s->c, s->h, s->w, s->d.mean, s->d.std, x);
    for (int k = 0; k < n; k++) labels[k] = s->d.train->labels[idx[k]];
}

/* The slice of (epoch, step) from the data, by gathering. */
static cnn_status_t make_batch(const cnn_source_t *s, maker_t *m, long epoch, size_t step,
                               float *x, int32_t *labels, int *n_local, int *n_global)
{
    if (m->sampler->epoch != epoch) cnn_sampler_set_epoch(m->sampler, epoch);
    const size_t *idx = cnn_sampler_slice(m->sampler, step, n_local, n_global);
    CNN_TRY(gather(s, m, idx, *n_local, m->pix));
    finish(s, m, epoch, idx, *n_local, m->pix, x, labels);
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* shard                                                               */

static int by_value(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* This rank's images of every step of the sampler's epoch, in slice
 * order, listed as row << 32 | position in the shard (both below
 * CNN_IDX_MAX_IMAGES < 2^32) and sorted: the file's rows in order, each
 * with where it goes. rp holds the shard's total. */
static void shard_reads(const cnn_source_t *s, uint64_t *rp)
{
    for (size_t step = 0; step < s->steps; step++) {
        int nl, ng;
        const size_t *idx = cnn_sampler_slice(s->mk.sampler, step, &nl, &ng);
        for (int k = 0; k < nl; k++) {
            const uint64_t pos = s->shard_start[step] + (size_t)k;
            rp[pos] = (uint64_t)s->d.rows[idx[k]] << 32 | pos;
        }
    }
    qsort(rp, s->shard_start[s->steps], sizeof *rp, by_value);
}

/* Reads the n images rp lists into their places in s->shard, BOUNCE rows
 * at a time. */
static cnn_status_t read_shard(cnn_source_t *s, const uint64_t *rp, size_t n)
{
    enum { BOUNCE = 256 };
    size_t *rows = malloc(sizeof *rows * BOUNCE);
    uint8_t *bounce = malloc(s->isz * BOUNCE);
    cnn_status_t st = CNN_OK;
    if (!rows || !bounce) st = cnn_error_set(CNN_ENOMEM, "out of memory reading this rank's shard");
    for (size_t k = 0; k < n && st == CNN_OK; k += BOUNCE) {
        const size_t m = n - k < BOUNCE ? n - k : BOUNCE;
        for (size_t j = 0; j < m; j++) rows[j] = (size_t)(rp[k + j] >> 32);
        st = cnn_h5data_read_rows(s->d.file, rows, m, bounce);
        for (size_t j = 0; j < m && st == CNN_OK; j++)
            memcpy(s->shard + (size_t)(rp[k + j] & 0xffffffffu) * s->isz, bounce + j * s->isz,
                   s->isz);
    }
    free(rows);
    free(bounce);
    return st;
}

/* Reads this rank's images of every step of `epoch` into s->shard, in
 * slice order, going through the file in row order. */
static cnn_status_t load_shard(cnn_source_t *s, long epoch)
{
    const size_t total = s->shard_start[s->steps];
    uint64_t *rp = malloc(sizeof *rp * (total + 1));
    if (!rp) return cnn_error_set(CNN_ENOMEM, "out of memory reading this rank's shard");
    cnn_sampler_set_epoch(s->mk.sampler, epoch);
    shard_reads(s, rp);
    const cnn_status_t st = read_shard(s, rp, total);
    free(rp);
    s->shard_epoch = st == CNN_OK ? epoch : -1;
    return st;
}

/* The slice sizes are the same every epoch: the shard's layout and its
 * buffer are made once. */
static cnn_status_t shard_init(cnn_source_t *s)
{
    s->shard_epoch = -1;
    if (!(s->shard_start = malloc(sizeof(size_t) * (s->steps + 1))))
        return cnn_error_set(CNN_ENOMEM, "out of memory");
    size_t total = 0;
    for (size_t step = 0; step < s->steps; step++) {
        int nl, ng;
        cnn_sampler_slice(s->mk.sampler, step, &nl, &ng);
        s->shard_start[step] = total;
        total += (size_t)nl;
    }
    s->shard_start[s->steps] = total;
    if (!(s->shard = malloc(s->isz * (total + 1))))
        return cnn_error_set(CNN_ENOMEM, "cannot allocate a shard of %zu images", total);
    return CNN_OK;
}

static cnn_status_t shard_batch(cnn_source_t *s, long epoch, size_t step, float *x,
                                int32_t *labels, int *n_local, int *n_global)
{
    if (s->shard_epoch != epoch) CNN_TRY(load_shard(s, epoch));
    const size_t *idx = cnn_sampler_slice(s->mk.sampler, step, n_local, n_global);
    uint8_t *pix = s->shard + (step < s->steps ? s->shard_start[step] : 0) * s->isz;
    /* augmentation works on a copy: the shard stays as read */
    memcpy(s->mk.pix, pix, s->isz * (size_t)*n_local);
    finish(s, &s->mk, epoch, idx, *n_local, s->mk.pix, x, labels);
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* stream                                                              */

static void *stream_main(void *arg)
{
    cnn_source_t *s = arg;
    stream_t *q = s->stream;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->count == q->nslots && !q->stop) pthread_cond_wait(&q->space, &q->mu);
        const int stop = q->stop, at = (q->head + q->count) % q->nslots;
        pthread_mutex_unlock(&q->mu);
        if (stop) break;
        /* slot `at` is outside the ready range: the trainer does not touch it */
        slot_t *sl = &q->slots[at];
        cnn_status_t st = make_batch(s, &q->mk, q->epoch, q->step, sl->x, sl->labels,
                                     &sl->n_local, &sl->n_global);
        sl->epoch = q->epoch;
        sl->step = q->step;
        pthread_mutex_lock(&q->mu);
        if (st != CNN_OK) {
            q->err = st;
            snprintf(q->msg, sizeof q->msg, "%s", cnn_error_message());
        } else {
            q->count++;
        }
        pthread_cond_signal(&q->ready);
        pthread_mutex_unlock(&q->mu);
        if (st != CNN_OK) break;
        if (++q->step == s->steps) {
            q->step = 0;
            q->epoch++;
        }
    }
    return NULL;
}

static void stream_stop(stream_t *q)
{
    if (!q->running) return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    q->running = 0;
}

/* (Re)starts the thread at (epoch, step) with an empty ring. Signals are
 * blocked in the thread: they belong to the trainer's thread. */
static cnn_status_t stream_start(cnn_source_t *s, long epoch, size_t step)
{
    stream_t *q = s->stream;
    stream_stop(q);
    q->head = q->count = q->stop = 0;
    q->err = CNN_OK;
    q->epoch = q->want_epoch = epoch;
    q->step = q->want_step = step;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&q->thread, NULL, stream_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return cnn_error_set(CNN_EINTERNAL, "cannot start the data reader thread (error %d)", rc);
    q->running = 1;
    return CNN_OK;
}

static cnn_status_t stream_init(cnn_source_t *s, const cnn_config_t *cfg, int rank, int nranks)
{
    stream_t *q = calloc(1, sizeof *q);
    if (!q) return cnn_error_set(CNN_ENOMEM, "out of memory");
    s->stream = q;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->ready, NULL);
    pthread_cond_init(&q->space, NULL);
    const size_t slot_bytes = (size_t)s->batch * (s->isz * sizeof(float) + sizeof(int32_t));
    size_t n = ((size_t)cfg->data.cache_mb << 20) / slot_bytes;
    q->nslots = n < 2 ? 2 : n > STREAM_MAX_SLOTS ? STREAM_MAX_SLOTS : (int)n;
    if (!(q->slots = calloc((size_t)q->nslots, sizeof *q->slots)))
        return cnn_error_set(CNN_ENOMEM, "out of memory");
    for (int i = 0; i < q->nslots; i++) {
        q->slots[i].x = malloc(sizeof(float) * s->isz * (size_t)s->batch);
        q->slots[i].labels = malloc(sizeof(int32_t) * (size_t)s->batch);
        if (!q->slots[i].x || !q->slots[i].labels)
            return cnn_error_set(CNN_ENOMEM, "out of memory for the data ring buffer");
    }
    q->want_epoch = -1;
    return maker_init(&q->mk, s, rank, nranks, cfg->train.batch_size * nranks, cfg->train.seed);
}

static void stream_free(stream_t *q)
{
    if (!q) return;
    stream_stop(q);
    for (int i = 0; q->slots && i < q->nslots; i++) {
        free(q->slots[i].x);
        free(q->slots[i].labels);
    }
    free(q->slots);
    maker_free(&q->mk);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->ready);
    pthread_cond_destroy(&q->space);
    free(q);
}

static cnn_status_t stream_batch(cnn_source_t *s, long epoch, size_t step, float *x,
                                 int32_t *labels, int *n_local, int *n_global)
{
    stream_t *q = s->stream;
    if (!q->running || epoch != q->want_epoch || step != q->want_step)
        CNN_TRY(stream_start(s, epoch, step));
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && q->err == CNN_OK) pthread_cond_wait(&q->ready, &q->mu);
    if (q->count == 0) {
        const cnn_status_t err = q->err;
        pthread_mutex_unlock(&q->mu);
        stream_stop(q);
        return cnn_error_set(err, "%s", q->msg);
    }
    const slot_t *sl = &q->slots[q->head];
    *n_local = sl->n_local;
    *n_global = sl->n_global;
    memcpy(x, sl->x, sizeof(float) * s->isz * (size_t)sl->n_local);
    memcpy(labels, sl->labels, sizeof(int32_t) * (size_t)sl->n_local);
    q->head = (q->head + 1) % q->nslots;
    q->count--;
    pthread_cond_signal(&q->space);
    pthread_mutex_unlock(&q->mu);
    if (++q->want_step == s->steps) {
        q->want_step = 0;
        q->want_epoch++;
    }
    return CNN_OK;
}

/* ------------------------------------------------------------------ */

cnn_status_t cnn_source_create(const cnn_config_t *cfg, const cnn_source_data_t *data, int rank,
                               int nranks, cnn_source_t **out)
{
    cnn_status_t st;
    cnn_source_t *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s) return cnn_error_set(CNN_ENOMEM, "out of memory");
    s->d = *data;
    s->aug = cfg->augment;
    s->augment = cnn_augment_enabled(&cfg->augment);
    s->seed = cfg->train.seed;
    s->load = cfg->data.load;
    /* a set in memory has nothing to shard: it is served as memory */
    if (!s->d.file && s->load == CNN_LOAD_SHARD) s->load = CNN_LOAD_MEMORY;
    s->c = data->train->c;
    s->h = data->train->h;
    s->w = data->train->w;
    s->isz = (size_t)s->c * s->h * s->w;
    s->batch = cfg->train.batch_size;
    const int global = cfg->train.batch_size * nranks;
    if ((st = maker_init(&s->mk, s, rank, nranks, global, cfg->train.seed)) != CNN_OK) goto fail;
    s->steps = cnn_sampler_steps(s->mk.sampler);
    if (s->load == CNN_LOAD_SHARD) st = shard_init(s);
    else if (s->load == CNN_LOAD_STREAM) st = stream_init(s, cfg, rank, nranks);
    if (st != CNN_OK) goto fail;
    *out = s;
    return CNN_OK;
fail:
    cnn_source_free(s);
    return st;
}

void cnn_source_free(cnn_source_t *s)
{
    if (!s) return;
    stream_free(s->stream);
    maker_free(&s->mk);
    free(s->shard);
    free(s->shard_start);
    free(s);
}

size_t cnn_source_steps(const cnn_source_t *s) { return s->steps; }

cnn_status_t cnn_source_batch(cnn_source_t *s, long epoch, size_t step, float *x,
                              int32_t *labels, int *n_local, int *n_global)
{
    if (s->load == CNN_LOAD_STREAM)
        return stream_batch(s, epoch, step, x, labels, n_local, n_global);
    if (s->load == CNN_LOAD_SHARD)
        return shard_batch(s, epoch, step, x, labels, n_local, n_global);
    if (s->d.file || s->augment)
        return make_batch(s, &s->mk, epoch, step, x, labels, n_local, n_global);
    /* the data set in memory, converted in place (as the trainer always did) */
    cnn_sampler_t *sp = s->mk.sampler;
    if (sp->epoch != epoch) cnn_sampler_set_epoch(sp, epoch);
    const size_t *idx = cnn_sampler_slice(sp, step, n_local, n_global);
    cnn_dataset_batch(s->d.train, idx, *n_local, s->d.mean, s->d.std, x, labels);
    return CNN_OK;
}
