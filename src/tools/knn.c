/* knn.c - exact k-NN on image bytes (GEMM blocks, OpenMP, MPI shards) and
 * on 2-D points (decision-region plots). See mpicnn/knn.h for the rules. */
#include "mpicnn/knn.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/csv.h"
#include "mpicnn/data.h"
#include "mpicnn/dist.h"
#include "mpicnn/kernels.h"
#include "mpicnn/png.h"
#include "mpicnn/str.h"

#define TB 256       /* test images per block: the rows of one GEMM */
#define NB 512       /* training images per block: its columns */
#define KC 1024      /* longest dot product of centred bytes exact in float */
#define ROUND 2048   /* test images per gather in cnn_knn_classify */

static const cnn_knn_cand_t EMPTY = {INFINITY, INT64_MAX, -1};

/* a comes before b: smaller distance, then smaller index */
static int before(const cnn_knn_cand_t *a, const cnn_knn_cand_t *b)
{
    return a->dist < b->dist || (a->dist == b->dist && a->index < b->index);
}

/* Puts x into the sorted list c (k) if it belongs there. */
static void insert(cnn_knn_cand_t *c, int k, cnn_knn_cand_t x)
{
    if (!before(&x, &c[k - 1])) return;
    int i = k - 1;
    for (; i > 0 && before(&x, &c[i - 1]); i--) c[i] = c[i - 1];
    c[i] = x;
}

int32_t cnn_knn_vote(const cnn_knn_cand_t *c, int k)
{
    int32_t best = -1;
    int best_n = 0;
    double best_sum = 0.0;
    for (int i = 0; i < k; i++) {
        const int32_t lab = c[i].label;
        if (lab < 0) continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = c[j].label == lab;
        if (seen) continue; /* counted with its first occurrence */
        int votes = 0;
        double sum = 0.0;
        for (int j = i; j < k; j++)
            if (c[j].label == lab) {
                votes++;
                sum += c[j].dist;
            }
        if (best < 0 || votes > best_n ||
            (votes == best_n && (sum < best_sum || (sum == best_sum && lab < best)))) {
            best = lab;
            best_n = votes;
            best_sum = sum;
        }
    }
    return best;
}

/* ---- images ------------------------------------------------------------- */

/* dst (rows, dim) = src - 128 as floats; norm (rows) = ||src - 128||^2,
 * exact (an integer < 2^53 for any image that fits in memory). */
static void centre_rows(const uint8_t *src, size_t rows, size_t dim, float *dst, double *norm)
{
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *s = src + r * dim;
        float *d = dst + r * dim;
        int64_t sq = 0;
        for (size_t j = 0; j < dim; j++) {
            const int v = (int)s[j] - 128;
            d[j] = (float)v;
            sq += v * v;
        }
        norm[r] = (double)sq;
    }
}

static cnn_status_t check_k(int k)
{
    if (k < 1 || k > CNN_KNN_MAX_K)
        return cnn_error_set(CNN_EUSAGE, "knn: k = %d must be in 1..%d", k, CNN_KNN_MAX_K);
    return CNN_OK;
}

/* cnn_knn_search's scratch: the centred test images tf (ntest, dim) and
 * their norms tn (ntest), a block of centred training images rf (nbmax,
 * dim) and their norms rn (nbmax), and per thread a block of dot products
 * g (gsz) and, when dim > KC, their sums over the chunks of KC, acc
 * (gsz). */
typedef struct {
    float *tf, *rf, *g;
    double *tn, *rn, *acc;
} knn_work_t;

static void work_free(knn_work_t *w)
{
    free(w->tf);
    free(w->tn);
    free(w->rf);
    free(w->rn);
    free(w->g);
    free(w->acc);
}

static cnn_status_t work_alloc(knn_work_t *w, size_t ntest, size_t nbmax, size_t dim,
                               size_t gsz, int T)
{
    *w = (knn_work_t){.tf = malloc(sizeof *w->tf * ntest * dim),
                      .tn = malloc(sizeof *w->tn * ntest),
                      .rf = malloc(sizeof *w->rf * nbmax * dim),
                      .rn = malloc(sizeof *w->rn * nbmax),
                      .g = malloc(sizeof *w->g * gsz * (size_t)T),
                      .acc = dim > KC ? malloc(sizeof *w->acc * gsz * (size_t)T) : NULL};
    if (w->tf && w->tn && w->rf && w->rn && w->g && (dim <= KC || w->acc)) return CNN_OK;
    work_free(w);
    return cnn_error_set(CNN_ENOMEM, "knn: out of memory for %zu test images of %zu values",
                         ntest, dim);
}

cnn_status_t cnn_knn_search(const uint8_t *train, const int32_t *labels, size_t lo,
                            size_t hi, const uint8_t *test, size_t ntest, size_t dim,
                            int k, cnn_knn_cand_t *best)
{
    CNN_TRY(check_k(k));
    if (dim < 1 || dim > (size_t)1 << 30 || lo > hi)
        return cnn_error_set(CNN_EUSAGE, "knn: bad search range [%zu, %zu) or image size %zu",
                             lo, hi, dim);
    for (size_t i = 0; i < ntest * (size_t)k; i++) best[i] = EMPTY;
    if (ntest == 0 || lo == hi) return CNN_OK;

    const size_t nbmax = hi - lo < NB ? hi - lo : NB, tbmax = ntest < TB ? ntest : TB;
    const size_t gsz = tbmax * nbmax; /* one thread's block of dot products */
    knn_work_t w;
    CNN_TRY(work_alloc(&w, ntest, nbmax, dim, gsz, omp_get_max_threads()));
    float *tf = w.tf, *rf = w.rf, *g = w.g;
    double *tn = w.tn, *rn = w.rn, *acc = w.acc;
    centre_rows(test, ntest, dim, tf, tn);
    const long ntb = (long)((ntest + TB - 1) / TB);

    for (size_t b0 = lo; b0 < hi; b0 += NB) {
        const size_t nb = hi - b0 < NB ? hi - b0 : NB;
        centre_rows(train + b0 * dim, nb, dim, rf, rn);
#pragma omp parallel for schedule(dynamic, 1)
        for (long tb = 0; tb < ntb; tb++) {
            const size_t t0 = (size_t)tb * TB, mt = ntest - t0 < TB ? ntest - t0 : TB;
            float *gt = g + gsz * (size_t)omp_get_thread_num();
            double *at = acc ? acc + gsz * (size_t)omp_get_thread_num() : NULL;
            const float *A = tf + t0 * dim;
            /* dot (mt, nb) = A (mt, dim) x rf^T (dim, nb), in exact chunks */
            for (size_t k0 = 0; k0 < dim; k0 += KC) {
                const size_t kc = dim - k0 < KC ? dim - k0 : KC;
                cnn_sgemm(0, 1, (int)mt, (int)nb, (int)kc, 1.0f, A + k0, (int)dim, rf + k0,
                          (int)dim, 0.0f, gt, (int)nb);
                if (at) {
                    if (k0 == 0)
                        for (size_t e = 0; e < mt * nb; e++) at[e] = gt[e];
                    else
                        for (size_t e = 0; e < mt * nb; e++) at[e] += gt[e];
                }
            }
            for (size_t i = 0; i < mt; i++) {
                cnn_knn_cand_t *c = best + (t0 + i) * (size_t)k;
                const double ti = tn[t0 + i];
                double worst = c[k - 1].dist;
                for (size_t j = 0; j < nb; j++) {
                    const double dot = at ? at[i * nb + j] : (double)gt[i * nb + j];
                    const double d = ti + rn[j] - 2.0 * dot;
                    if (d <= worst) {
                        const size_t idx = b0 + j;
                        insert(c, k, (cnn_knn_cand_t){d, (int64_t)idx, labels[idx]});
                        worst = c[k - 1].dist;
                    }
                }
            }
        }
    }
    work_free(&w);
    return CNN_OK;
}

/* The MPI type of cnn_knn_cand_t (committed; the caller frees it). */
static cnn_status_t cand_type(MPI_Datatype *type)
{
    cnn_status_t st = CNN_OK;
    MPI_Datatype raw = MPI_DATATYPE_NULL;
    int len[3] = {1, 1, 1};
    MPI_Aint disp[3] = {offsetof(cnn_knn_cand_t, dist), offsetof(cnn_knn_cand_t, index),
                        offsetof(cnn_knn_cand_t, label)};
    MPI_Datatype types[3] = {MPI_DOUBLE, MPI_INT64_T, MPI_INT32_T};
    *type = MPI_DATATYPE_NULL;
    CNN_MPI_CHECK(st, MPI_Type_create_struct(3, len, disp, types, &raw), done);
    CNN_MPI_CHECK(st, MPI_Type_create_resized(raw, 0, sizeof(cnn_knn_cand_t), type), done);
    CNN_MPI_CHECK(st, MPI_Type_commit(type), done);
done:
    if (raw != MPI_DATATYPE_NULL) MPI_Type_free(&raw);
    if (st != CNN_OK && *type != MPI_DATATYPE_NULL) MPI_Type_free(type);
    return st;
}

cnn_status_t cnn_knn_classify(MPI_Comm comm, const uint8_t *train, const int32_t *labels,
                              size_t ntrain, const uint8_t *test, size_t ntest, size_t dim,
                              int k, int32_t *pred)
{
    cnn_status_t st = CNN_OK, local = CNN_OK;
    MPI_Datatype type = MPI_DATATYPE_NULL;
    cnn_knn_cand_t *mine = NULL, *all = NULL, *top = NULL;
    int rank = 0, nranks = 1;
    size_t lo, hi;

    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), done);
    CNN_MPI_CHECK(st, MPI_Comm_size(comm, &nranks), done);
    cnn_sampler_eval_range(ntrain, rank, nranks, &lo, &hi);
    const size_t round = ntest < ROUND ? (ntest ? ntest : 1) : ROUND;

    if ((local = check_k(k)) == CNN_OK && rank == 0 && !pred && ntest)
        local = cnn_error_set(CNN_EUSAGE, "knn: rank 0 needs an output array");
    if (local == CNN_OK) {
        mine = malloc(sizeof *mine * round * (size_t)k);
        if (rank == 0) {
            all = malloc(sizeof *all * round * (size_t)k * (size_t)nranks);
            top = malloc(sizeof *top * (size_t)k);
        }
        if (!mine || (rank == 0 && (!all || !top)))
            local = cnn_error_set(CNN_ENOMEM, "knn: out of memory for the candidates");
        else
            local = cand_type(&type);
    }
    /* every rank learns whether every rank can go on */
    if ((st = cnn_dist_agree(comm, local)) != CNN_OK) goto done;

    for (size_t t0 = 0; t0 < ntest; t0 += round) {
        const size_t nt = ntest - t0 < round ? ntest - t0 : round;
        local = cnn_knn_search(train, labels, lo, hi, test + t0 * dim, nt, dim, k, mine);
        if ((st = cnn_dist_agree(comm, local)) != CNN_OK) goto done;
        const int cnt = (int)(nt * (size_t)k);
        CNN_MPI_CHECK(st, MPI_Gather(mine, cnt, type, all, cnt, type, 0, comm), done);
        if (rank != 0) continue;
        /* all is (nranks, nt, k): merge each image's nranks lists */
        for (size_t i = 0; i < nt; i++) {
            for (int j = 0; j < k; j++) top[j] = EMPTY;
            for (int r = 0; r < nranks; r++) {
                const cnn_knn_cand_t *c = all + ((size_t)r * nt + i) * (size_t)k;
                for (int j = 0; j < k && c[j].label >= 0; j++) insert(top, k, c[j]);
            }
            pred[t0 + i] = cnn_knn_vote(top, k);
        }
    }

done:
    if (type != MPI_DATATYPE_NULL) MPI_Type_free(&type);
    free(mine);
    free(all);
    free(top);
    return st;
}

void cnn_knn_plan(size_t ntrain, size_t ntest, size_t dim, int k, int rank, int nranks,
                  cnn_mem_item_t items[2])
{
    size_t lo, hi;
    cnn_sampler_eval_range(ntrain, rank, nranks, &lo, &hi);
    const size_t round = ntest < ROUND ? (ntest ? ntest : 1) : ROUND;
    const size_t nbmax = hi - lo < NB ? hi - lo : NB, tbmax = round < TB ? round : TB;
    const size_t gsz = cnn_mem_mul(cnn_mem_mul(tbmax, nbmax), (size_t)omp_get_max_threads());
    /* cnn_knn_search on one round: the centred test and training blocks,
     * their norms, and each thread's block of dot products (and sums) */
    size_t search = cnn_mem_mul(cnn_mem_add(round, nbmax), cnn_mem_mul(dim, sizeof(float)));
    search = cnn_mem_add(search, cnn_mem_mul(cnn_mem_add(round, nbmax), sizeof(double)));
    search = cnn_mem_add(search, cnn_mem_mul(gsz, dim > KC ? sizeof(float) + sizeof(double)
                                                           : sizeof(float)));
    /* each rank's k per test image of a round; rank 0 gathers them all */
    const size_t cand = cnn_mem_mul(cnn_mem_mul(round, (size_t)k), sizeof(cnn_knn_cand_t));
    items[0] = (cnn_mem_item_t){"k-NN search blocks", search};
    items[1] = (cnn_mem_item_t){"k-NN candidates",
                                rank == 0 ? cnn_mem_mul(cand, (size_t)nranks + 1) : cand};
}

/* ---- points --------------------------------------------------------------- */

/* c (k) = the k nearest of the n points to (qx, qy). */
static void points_topk(const double *xy, const int32_t *labels, size_t n, double qx,
                        double qy, int k, cnn_knn_cand_t *c)
{
    for (int i = 0; i < k; i++) c[i] = EMPTY;
    for (size_t j = 0; j < n; j++) {
        const double dx = xy[2 * j] - qx, dy = xy[2 * j + 1] - qy;
        const double d = dx * dx + dy * dy;
        if (d <= c[k - 1].dist) insert(c, k, (cnn_knn_cand_t){d, (int64_t)j, labels[j]});
    }
}

cnn_status_t cnn_knn_points_predict(const double *xy, const int32_t *labels, size_t n,
                                    const double *q, size_t nq, int k, int32_t *pred)
{
    CNN_TRY(check_k(k));
    if (n == 0) return cnn_error_set(CNN_EUSAGE, "knn: no points to classify with");
    const int T = omp_get_max_threads();
    cnn_knn_cand_t *buf = malloc(sizeof *buf * (size_t)k * (size_t)T);
    if (!buf) return cnn_error_set(CNN_ENOMEM, "knn: out of memory");
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nq; i++) {
        cnn_knn_cand_t *c = buf + (size_t)k * (size_t)omp_get_thread_num();
        points_topk(xy, labels, n, q[2 * i], q[2 * i + 1], k, c);
        pred[i] = cnn_knn_vote(c, k);
    }
    free(buf);
    return CNN_OK;
}

/* The bytes of file `path` into a malloc'd, NUL-terminated *text of
 * *len bytes. */
static cnn_status_t read_all(const char *path, char **text, size_t *len)
{
    cnn_status_t st = CNN_OK;
    size_t cap = 0;
    FILE *f = fopen(path, "rb");
    *text = NULL;
    *len = 0;
    if (!f)
        return cnn_error_set(CNN_EDATA, "--points %s: cannot open: %s", path, strerror(errno));
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            if (cap > ((size_t)1 << 30)) {
                st = cnn_error_set(CNN_EDATA, "--points %s: file too large", path);
                break;
            }
            cap = cap ? 2 * cap : 65536;
            char *p = realloc(*text, cap);
            if (!p) {
                st = cnn_error_set(CNN_ENOMEM, "--points %s: out of memory", path);
                break;
            }
            *text = p;
        }
        size_t got = fread(*text + *len, 1, cap - *len - 1, f);
        *len += got;
        if (got == 0) break;
    }
    if (st == CNN_OK && ferror(f)) st = cnn_error_set(CNN_EDATA, "--points %s: read error", path);
    fclose(f);
    if (st != CNN_OK) {
        free(*text);
        *text = NULL;
        return st;
    }
    (*text)[*len] = '\0';
    return CNN_OK;
}

/* Splits one line (no newline, comment cut off) into at most 4 trimmed
 * fields f: at commas and semicolons, or, when it has neither, at runs
 * of spaces and tabs. Returns their number (4: too many). */
static int split_row(char *line, char **f)
{
    int nf = 0;
    if (strpbrk(line, ",;")) {
        for (char *p = line, *tok; nf < 4 && (tok = strsep(&p, ",;"));)
            f[nf++] = cnn_str_trim(tok);
        return nf;
    }
    for (char *p = line, *tok; nf < 4 && (tok = strsep(&p, " \t\r"));)
        if (*tok) f[nf++] = tok;
    return nf;
}

/* s as one coordinate, read by csv.h's number reader (as `mpicnn op`
 * reads numbers: rounded to float): 0 if it is one number, else -1. */
static int coord(const char *s, double *v)
{
    float *f = NULL;
    size_t n = 0;
    if (cnn_csv_parse(s, strlen(s), "--points", "", &f, &n) != CNN_OK) return -1;
    if (n == 1) *v = f[0];
    free(f);
    return n == 1 ? 0 : -1;
}

/* The integer 0..9 a label spells as a number, else -1. */
static int label_number(const char *s)
{
    char *end;
    const double d = strtod(s, &end);
    if (end == s || *end || !(d >= 0 && d < CNN_KNN_POINT_CLASSES) || d != floor(d)) return -1;
    return (int)d;
}

/* A points file being read: the points and, for each, its label as a
 * number (num: 0..9 or -1) and as the index of its text among the
 * distinct labels in order of first appearance (app: -1 past the
 * CNN_KNN_POINT_CLASSES-th, whose line is kept in `over`). */
typedef struct {
    const char *path;
    double *xy;
    int32_t *num, *app;
    size_t n, cap;
    int over;                   /* line of the first label past the classes */
    int ntext;                  /* distinct label texts seen, at most the classes */
    cnn_knn_classes_t texts;    /* their names, in order of first appearance */
    cnn_knn_classes_t numbers;  /* names[v]: the text that first spelt v */
} points_in_t;

static cnn_status_t points_grow(points_in_t *p)
{
    if (p->n < p->cap) return CNN_OK;
    const size_t cap = p->cap ? 2 * p->cap : 256;
    double *xy = realloc(p->xy, sizeof *xy * 2 * cap);
    if (xy) p->xy = xy;
    int32_t *num = xy ? realloc(p->num, sizeof *num * cap) : NULL;
    if (num) p->num = num;
    int32_t *app = num ? realloc(p->app, sizeof *app * cap) : NULL;
    if (app) p->app = app;
    if (!app) return cnn_error_set(CNN_ENOMEM, "--points %s: out of memory", p->path);
    p->cap = cap;
    return CNN_OK;
}

/* Adds the point of one split row (three fields f) from line `line`. */
static cnn_status_t points_add(points_in_t *p, char **f, int line)
{
    double x = 0, y = 0;
    const char *lab = f[2];
    if (coord(f[0], &x) || coord(f[1], &y))
        return cnn_error_set(CNN_EDATA, "--points %s: line %d: '%s' is not a finite number",
                             p->path, line, coord(f[0], &x) ? f[0] : f[1]);
    const size_t len = strlen(lab);
    if (len == 0 || len > CNN_KNN_LABEL_MAX)
        return cnn_error_set(CNN_EDATA, "--points %s: line %d: label '%.40s%s' must have 1 to %d "
                             "characters", p->path, line, lab, len > 40 ? "..." : "",
                             CNN_KNN_LABEL_MAX);
    CNN_TRY(points_grow(p));
    const int v = label_number(lab);
    int a = 0;
    while (a < p->ntext && strcmp(p->texts.names[a], lab)) a++;
    if (a == p->ntext && a < CNN_KNN_POINT_CLASSES)
        snprintf(p->texts.names[p->ntext++], CNN_KNN_LABEL_MAX + 1, "%s", lab);
    else if (a == p->ntext && !p->over)
        p->over = line;
    if (v >= 0 && !p->numbers.names[v][0])
        snprintf(p->numbers.names[v], CNN_KNN_LABEL_MAX + 1, "%s", lab);
    p->xy[2 * p->n] = x;
    p->xy[2 * p->n + 1] = y;
    p->num[p->n] = v;
    p->app[p->n] = a < CNN_KNN_POINT_CLASSES ? a : -1;
    p->n++;
    return CNN_OK;
}

/* Reads the rows of text (NUL-terminated; changed in place). */
static cnn_status_t points_parse(points_in_t *p, char *text)
{
    int line = 0, seen_row = 0;
    for (char *rest = text, *l; (l = strsep(&rest, "\n"));) {
        char *f[4];
        line++;
        l[strcspn(l, "#")] = '\0';
        if (!*cnn_str_trim(l)) continue;
        const int nf = split_row(l, f);
        double dummy;
        if (!seen_row++ && nf > 0 && coord(f[0], &dummy)) continue; /* a header */
        if (nf != 3)
            return cnn_error_set(CNN_EDATA, "--points %s: line %d: has %s fields; expected "
                                 "x,y,label", p->path, line, nf > 3 ? "more than 3" :
                                 nf == 2 ? "2" : "1");
        CNN_TRY(points_add(p, f, line));
    }
    if (p->n == 0)
        return cnn_error_set(CNN_EDATA, "--points %s: no points (rows x,y,label)", p->path);
    return CNN_OK;
}

cnn_status_t cnn_knn_points_read(const char *path, double **xy, int32_t **labels, size_t *n,
                                 cnn_knn_classes_t *classes)
{
    points_in_t p = {.path = path};
    char *text = NULL;
    size_t len;
    cnn_status_t st = read_all(path, &text, &len);
    *xy = NULL;
    *labels = NULL;
    *n = 0;
    if (st == CNN_OK && memchr(text, '\0', len))
        st = cnn_error_set(CNN_EDATA, "--points %s: unexpected NUL byte", path);
    if (st == CNN_OK) st = points_parse(&p, text);
    /* all labels integers 0..9: they are the classes; else the texts are */
    int numeric = 1;
    for (size_t i = 0; st == CNN_OK && i < p.n; i++) numeric &= p.num[i] >= 0;
    if (st == CNN_OK && !numeric && p.over)
        st = cnn_error_set(CNN_EDATA, "--points %s: line %d: label %d of a kind; at most %d "
                           "distinct labels (one colour each)", path, p.over,
                           CNN_KNN_POINT_CLASSES + 1, CNN_KNN_POINT_CLASSES);
    if (st == CNN_OK) {
        *xy = p.xy;
        *labels = numeric ? p.num : p.app;
        *n = p.n;
        p.xy = NULL;
        if (numeric) p.num = NULL;
        else p.app = NULL;
        if (numeric) {
            p.numbers.n = 0;
            for (size_t i = 0; i < p.n; i++)
                if ((*labels)[i] >= p.numbers.n) p.numbers.n = (*labels)[i] + 1;
        } else {
            p.texts.n = p.ntext;
        }
        if (classes) *classes = numeric ? p.numbers : p.texts;
    }
    free(text);
    free(p.xy);
    free(p.num);
    free(p.app);
    return st;
}

/* ---- plots -------------------------------------------------------------- */

cnn_knn_view_t cnn_knn_view(const double *xy, size_t n, int size)
{
    double xmin = xy[0], xmax = xy[0], ymin = xy[1], ymax = xy[1];
    for (size_t i = 1; i < n; i++) {
        xmin = fmin(xmin, xy[2 * i]);
        xmax = fmax(xmax, xy[2 * i]);
        ymin = fmin(ymin, xy[2 * i + 1]);
        ymax = fmax(ymax, xy[2 * i + 1]);
    }
    double span = fmax(xmax - xmin, ymax - ymin);
    if (!(span > 0)) span = 1.0; /* one point, or all on one spot */
    const double side = 1.2 * span;
    cnn_knn_view_t v = {.size = size,
                        .x0 = 0.5 * (xmin + xmax) - 0.5 * side,
                        .y1 = 0.5 * (ymin + ymax) + 0.5 * side,
                        .scale = side / size};
    return v;
}

void cnn_knn_view_pixel(const cnn_knn_view_t *v, double x, double y, int *row, int *col)
{
    double c = floor((x - v->x0) / v->scale), r = floor((v->y1 - y) / v->scale);
    *col = c < 0 ? 0 : c >= v->size ? v->size - 1 : (int)c;
    *row = r < 0 ? 0 : r >= v->size ? v->size - 1 : (int)r;
}

const char *cnn_knn_palette_name(int cls)
{
    static const char *const names[CNN_KNN_POINT_CLASSES] = {
        "blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan"};
    return cls >= 0 && cls < CNN_KNN_POINT_CLASSES ? names[cls] : "white";
}

void cnn_knn_palette(int cls, int strong, uint8_t rgb[3])
{
    /* Tableau 10 */
    static const uint8_t tab[CNN_KNN_POINT_CLASSES][3] = {
        {31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
    if (cls < 0 || cls >= CNN_KNN_POINT_CLASSES) {
        rgb[0] = rgb[1] = rgb[2] = 255; /* no prediction */
        return;
    }
    for (int i = 0; i < 3; i++)
        rgb[i] = strong ? tab[cls][i] : (uint8_t)((35 * tab[cls][i] + 65 * 255 + 50) / 100);
}

cnn_status_t cnn_knn_render(const double *xy, const int32_t *labels, size_t n, int k,
                            const cnn_knn_view_t *v, int draw_points, uint8_t *rgb)
{
    CNN_TRY(check_k(k));
    if (n == 0) return cnn_error_set(CNN_EUSAGE, "knn: no points to plot");
    const int S = v->size, T = omp_get_max_threads();
    cnn_knn_cand_t *buf = malloc(sizeof *buf * (size_t)k * (size_t)T);
    if (!buf) return cnn_error_set(CNN_ENOMEM, "knn: out of memory");
#pragma omp parallel for schedule(dynamic, 4)
    for (int r = 0; r < S; r++) {
        cnn_knn_cand_t *c = buf + (size_t)k * (size_t)omp_get_thread_num();
        const double y = v->y1 - (r + 0.5) * v->scale;
        for (int col = 0; col < S; col++) {
            points_topk(xy, labels, n, v->x0 + (col + 0.5) * v->scale, y, k, c);
            cnn_knn_palette(cnn_knn_vote(c, k), 0, rgb + ((size_t)r * S + col) * 3);
        }
    }
    free(buf);
    if (!draw_points) return CNN_OK;

    const int rad = S / 100 > 3 ? S / 100 : 3;
    const uint8_t dark[3] = {40, 40, 40};
    for (size_t i = 0; i < n; i++) {
        int pr, pc;
        uint8_t strong[3];
        cnn_knn_view_pixel(v, xy[2 * i], xy[2 * i + 1], &pr, &pc);
        cnn_knn_palette(labels[i], 1, strong);
        for (int dr = -rad; dr <= rad; dr++)
            for (int dc = -rad; dc <= rad; dc++) {
                const int r = pr + dr, c = pc + dc;
                const double d = sqrt((double)(dr * dr + dc * dc));
                if (r < 0 || r >= S || c < 0 || c >= S || d > rad + 0.5) continue;
                memcpy(rgb + ((size_t)r * S + c) * 3, d > rad - 1.0 ? dark : strong, 3);
            }
    }
    return CNN_OK;
}

cnn_status_t cnn_knn_plot(const char *path, const double *xy, const int32_t *labels,
                          size_t n, int k, int size)
{
    if (size < 16 || size > CNN_KNN_MAX_PLOT)
        return cnn_error_set(CNN_EUSAGE, "knn: plot size %d must be in 16..%d", size,
                             CNN_KNN_MAX_PLOT);
    if (n == 0) return cnn_error_set(CNN_EUSAGE, "knn: no points to plot");
    uint8_t *rgb = malloc((size_t)size * size * 3);
    if (!rgb) return cnn_error_set(CNN_ENOMEM, "knn: out of memory for a %d x %d plot", size, size);
    const cnn_knn_view_t v = cnn_knn_view(xy, n, size);
    cnn_status_t st = cnn_knn_render(xy, labels, n, k, &v, 1, rgb);
    if (st == CNN_OK) st = cnn_png_write(path, rgb, size, size, 3);
    free(rgb);
    return st;
}
