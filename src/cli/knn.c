/* knn.c - `mpicnn knn`: the k-nearest-neighbour baseline on a data set
 * (distributed over the ranks), or the decision regions of k-NN on 2-D
 * points drawn as a PNG (rank 0). See mpicnn/knn.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/data.h"
#include "mpicnn/dist.h"
#include "mpicnn/knn.h"

static const char knn_usage[] =
    "usage: mpicnn knn --train-images F --train-labels F --test-images F --test-labels F\n"
    "                  --k K [--limit-train N] [--limit-test N] [--max-memory MB]\n"
    "       mpicnn knn --format cifar10|cifar100 [--coarse] --train-files A,B,... --test-files C,...\n"
    "                  --k K [--limit-train N] [--limit-test N] [--max-memory MB]\n"
    "       mpicnn knn --points FILE.csv --k K --plot OUT.png [--size 512]\n"
    "  Data mode classifies each test image by the majority label of its k nearest\n"
    "  training images (exact squared L2 distance on the raw pixels; neighbours\n"
    "  ordered by distance, then training index; a tied vote goes to the label\n"
    "  with the smaller summed distance, then to the smaller label). Under mpirun\n"
    "  each rank searches a contiguous shard of the training set; the answer does\n"
    "  not depend on the number of ranks. Prints 'accuracy: 0.XXXX (correct/total)'\n"
    "  and a per-class table. --limit-* keep the first N images.\n"
    "  --format idx (the default) reads IDX files, raw or gzip; cifar100 uses the\n"
    "  100 fine labels, or the 20 superclasses with --coarse.\n"
    "  Points mode reads one point a line, x,y,label (optional header line;\n"
    "  fields split at commas, or at spaces on a line without commas) and\n"
    "  draws the k-NN decision regions over the points' bounding box (plus a\n"
    "  margin) with the points on top, as a SIZE x SIZE RGB PNG. A label is\n"
    "  any string of 1 to 31 characters without ',', ';' or '#'; at most 10\n"
    "  distinct labels, each a class and a colour, in order of first\n"
    "  appearance (labels that are all integers 0..9 keep their number as\n"
    "  class). Prints each class's label, colour and number of points.\n"
    "  Data mode takes --max-memory MB: refuse (exit 8) before the search when\n"
    "  the data sets and the search's buffers need more than MB per rank;\n"
    "  default 80% of the node's limit (cgroup, MemAvailable, Slurm) over the\n"
    "  ranks on the node.\n";

#define MAX_FILES 16

/* Splits a copy of "a,b,c" into paths; *buf is the copy to free. */
static cnn_status_t split_files(const char *flag, const char *s, char **buf,
                                const char **paths, int *n)
{
    *n = 0;
    *buf = strdup(s);
    if (!*buf) return cnn_error_set(CNN_ENOMEM, "out of memory");
    for (char *p = *buf, *tok; (tok = strsep(&p, ","));) {
        if (!*tok) continue;
        if (*n == MAX_FILES)
            return cnn_error_set(CNN_EUSAGE, "%s: more than %d files", flag, MAX_FILES);
        paths[(*n)++] = tok;
    }
    if (*n == 0) return cnn_error_set(CNN_EUSAGE, "%s: no file names in '%s'", flag, s);
    return CNN_OK;
}

/* --limit-X N as a count; 0 when the flag is absent. */
static cnn_status_t limit(cli_args_t *a, const char *flag, size_t *lim)
{
    const char *s = cli_get(a, flag);
    long v;
    *lim = 0;
    if (!s) return CNN_OK;
    CNN_TRY(cli_int(flag, s, 1, 0x7fffffffL, &v));
    *lim = (size_t)v;
    return CNN_OK;
}

/* Parses the data flags and loads both sets (every rank does). */
static cnn_status_t load_sets(cli_args_t *a, cnn_dataset_t **train, cnn_dataset_t **test)
{
    const char *fmt = cli_get(a, "--format");
    if (!fmt || !strcmp(fmt, "idx")) {
        const char *ti, *tl, *si, *sl;
        CNN_TRY(cli_need(a, "--train-images", &ti));
        CNN_TRY(cli_need(a, "--train-labels", &tl));
        CNN_TRY(cli_need(a, "--test-images", &si));
        CNN_TRY(cli_need(a, "--test-labels", &sl));
        CNN_TRY(cli_check_unused(a));
        CNN_TRY(cnn_idx_load(ti, tl, train));
        return cnn_idx_load(si, sl, test);
    }
    if (strcmp(fmt, "cifar10") && strcmp(fmt, "cifar100"))
        return cnn_error_set(CNN_EUSAGE, "--format: '%s' must be idx, cifar10 or cifar100", fmt);
    const int variant = fmt[5] == '1' && fmt[6] == '0' && fmt[7] == '0' ? 100 : 10;
    const int coarse = cli_has(a, "--coarse");
    if (coarse && variant != 100)
        return cnn_error_set(CNN_EUSAGE, "--coarse applies to --format cifar100 only");
    const char *trs, *tes, *trp[MAX_FILES], *tep[MAX_FILES];
    char *b1 = NULL, *b2 = NULL;
    int ntr, nte;
    cnn_status_t st;
    if ((st = cli_need(a, "--train-files", &trs)) != CNN_OK) goto done;
    if ((st = cli_need(a, "--test-files", &tes)) != CNN_OK) goto done;
    if ((st = cli_check_unused(a)) != CNN_OK) goto done;
    if ((st = split_files("--train-files", trs, &b1, trp, &ntr)) != CNN_OK) goto done;
    if ((st = split_files("--test-files", tes, &b2, tep, &nte)) != CNN_OK) goto done;
    if ((st = cnn_cifar_load(trp, ntr, variant, coarse, train)) != CNN_OK) goto done;
    st = cnn_cifar_load(tep, nte, variant, coarse, test);
done:
    free(b1);
    free(b2);
    return st;
}

/* One line per class of the points: its index, colour, label and count. */
static void print_classes(const cnn_knn_classes_t *cl, const int32_t *labels, size_t n)
{
    for (int c = 0; c < cl->n; c++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++) cnt += labels[i] == c;
        if (cnt)
            printf("  class %d %-6s %s: %zu point%s\n", c, cnn_knn_palette_name(c),
                   cl->names[c], cnt, cnt == 1 ? "" : "s");
    }
}

static cnn_status_t knn_points(cli_args_t *a, int k)
{
    const char *pts, *plot, *s = cli_get(a, "--size");
    long size = 512;
    double *xy = NULL;
    int32_t *labels = NULL;
    size_t n = 0;
    cnn_knn_classes_t classes;
    cnn_status_t st;
    CNN_TRY(cli_need(a, "--points", &pts));
    CNN_TRY(cli_need(a, "--plot", &plot));
    if (s) CNN_TRY(cli_int("--size", s, 16, CNN_KNN_MAX_PLOT, &size));
    CNN_TRY(cli_check_unused(a));
    CNN_TRY(cnn_knn_points_read(pts, &xy, &labels, &n, &classes));
    if ((size_t)k > n) {
        st = cnn_error_set(CNN_EUSAGE, "--k %d: only %zu points in %s", k, n, pts);
        goto done;
    }
    st = cnn_knn_plot(plot, xy, labels, n, k, (int)size);
    if (st != CNN_OK) goto done;
    printf("knn: %zu points, k = %d: wrote %s (%ld x %ld)\n", n, k, plot, size, size);
    print_classes(&classes, labels, n);
done:
    free(xy);
    free(labels);
    return st;
}

/* Bytes of a data set's first n images and labels. */
static size_t set_bytes(const cnn_dataset_t *ds, size_t n)
{
    const size_t dim = cnn_mem_mul(cnn_mem_mul((size_t)ds->c, (size_t)ds->h), (size_t)ds->w);
    return cnn_mem_mul(n, cnn_mem_add(dim, sizeof(int32_t)));
}

/* The data sets held (whole, as loaded), rank 0's predictions and the
 * search's buffers against the budget. */
static cnn_status_t check_plan(const cnn_dataset_t *train, const cnn_dataset_t *test,
                               size_t ntrain, size_t ntest, int k, int rank, int nranks,
                               const cnn_membudget_t *budget)
{
    const size_t dim = (size_t)train->c * train->h * train->w;
    cnn_mem_item_t items[5] = {
        {"training set", set_bytes(train, train->n)},
        {"test set", set_bytes(test, test->n)},
        {"predictions", rank == 0 ? cnn_mem_mul(ntest, sizeof(int32_t)) : 0},
    };
    cnn_knn_plan(ntrain, ntest, dim, k, rank, nranks, items + 3);
    const cnn_status_t st = cnn_mem_check(items, 5, budget);
    if (st != CNN_OK) cnn_error_prefix("knn");
    return st;
}

/* Overall accuracy and the per-class table, on rank 0. */
static void report(const cnn_dataset_t *train, const cnn_dataset_t *test, size_t ntest,
                   const int32_t *pred)
{
    const int nc = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
    size_t correct = 0;
    size_t *tot = calloc((size_t)nc, sizeof *tot), *ok = calloc((size_t)nc, sizeof *ok);
    for (size_t i = 0; i < ntest; i++) {
        const int32_t y = test->labels[i];
        correct += pred[i] == y;
        if (tot && ok && y >= 0 && y < nc) {
            tot[y]++;
            ok[y] += pred[i] == y;
        }
    }
    printf("accuracy: %.4f (%zu/%zu)\n", ntest ? (double)correct / (double)ntest : 0.0, correct,
           ntest);
    if (tot && ok) {
        printf("%-5s %-20s %8s %8s %9s\n", "class", "name", "correct", "total", "accuracy");
        for (int c = 0; c < nc; c++) {
            if (!tot[c]) continue;
            const char *name = c < test->nclasses ? test->class_names[c]
                                                  : train->class_names[c];
            printf("%-5d %-20.20s %8zu %8zu %9.4f\n", c, name, ok[c], tot[c],
                   (double)ok[c] / (double)tot[c]);
        }
    }
    free(tot);
    free(ok);
}

cnn_status_t cli_knn(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--coarse", NULL};
    cli_args_t a;
    cnn_dataset_t *train = NULL, *test = NULL;
    int32_t *pred = NULL;
    const char *s;
    long k;
    int rank = 0, nranks = 1;
    cnn_status_t st = CNN_OK;

    CNN_TRY(cnn_dist_prepare(comm));
    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), done);
    CNN_MPI_CHECK(st, MPI_Comm_size(comm, &nranks), done);
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        if (rank == 0) fputs(knn_usage, stdout);
        return CNN_OK;
    }
    if (a.npos) {
        if (rank == 0) fputs(knn_usage, stderr);
        return cnn_error_set(CNN_EUSAGE, "knn: unexpected argument '%s'", a.pos[0]);
    }
    CNN_TRY(cli_need(&a, "--k", &s));
    CNN_TRY(cli_int("--k", s, 1, CNN_KNN_MAX_K, &k));
    if (cli_get(&a, "--points")) /* rank 0 draws; the others have nothing to do */
        return rank == 0 ? knn_points(&a, (int)k) : CNN_OK;

    size_t ntrain = 0, ntest = 0, ltrain, ltest;
    cnn_membudget_t budget;
    CNN_TRY(limit(&a, "--limit-train", &ltrain));
    CNN_TRY(limit(&a, "--limit-test", &ltest));
    CNN_TRY(cli_max_memory(&a, comm, &budget));
    st = load_sets(&a, &train, &test);
    if (st == CNN_OK) {
        ntrain = ltrain && ltrain < train->n ? ltrain : train->n;
        ntest = ltest && ltest < test->n ? ltest : test->n;
        if (train->c != test->c || train->h != test->h || train->w != test->w)
            st = cnn_error_set(CNN_EDATA,
                               "knn: the training images are %dx%dx%d but the test images %dx%dx%d",
                               train->c, train->h, train->w, test->c, test->h, test->w);
        else if ((size_t)k > ntrain)
            st = cnn_error_set(CNN_EUSAGE, "--k %ld: there are only %zu training images", k,
                               ntrain);
        else
            st = check_plan(train, test, ntrain, ntest, (int)k, rank, nranks, &budget);
        if (st == CNN_OK && rank == 0 && !(pred = malloc(sizeof *pred * (ntest ? ntest : 1))))
            st = cnn_error_set(CNN_ENOMEM, "out of memory");
    }
    /* all ranks go on together or stop together (a file may be readable
     * on one node and not on another) */
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;

    const size_t dim = (size_t)train->c * train->h * train->w;
    const double t0 = MPI_Wtime();
    st = cnn_knn_classify(comm, train->images, train->labels, ntrain, test->images, ntest,
                          dim, (int)k, pred);
    const double secs = MPI_Wtime() - t0;
    if (st != CNN_OK || rank != 0) goto done;
    printf("knn: %zu test x %zu training images of %zu values, k = %ld, %d rank%s: %.2f s\n",
           ntest, ntrain, dim, k, nranks, nranks == 1 ? "" : "s", secs);
    report(train, test, ntest, pred);
    fflush(stdout);

done:
    cnn_dataset_free(train);
    cnn_dataset_free(test);
    free(pred);
    return st;
}
