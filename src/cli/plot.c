/* plot.c - `mpicnn plot RUN_DIR`: pictures of what a run learned, from
 * the files `mpicnn train` wrote (model.h5, metrics.csv, and confusion.csv
 * when `mpicnn eval --confusion` put one there), into RUN_DIR/plots/.
 * Charts with axes go through gnuplot; image grids are drawn directly
 * (mpicnn/plot.h). Rank 0 does the work. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mpicnn/dataprep.h"
#include "mpicnn/dist.h"
#include "mpicnn/evaluate.h"
#include "mpicnn/plot.h"
#include "mpicnn/png.h"

static const char plot_usage[] =
    "usage: mpicnn plot RUN_DIR [--misclassified N] [--set data.key=value ...]\n"
    "       mpicnn plot RUN_DIR --activations LAYER [--images N] [--set data.key=value ...]\n"
    "  Draws PNG pictures of a training run into RUN_DIR/plots/:\n"
    "    learning_curves.png  loss and accuracy per epoch (RUN_DIR/metrics.csv, or the\n"
    "                         model's history), drawn by gnuplot\n"
    "    filters.png          the first conv layer's filters, each scaled to 0..255\n"
    "    confusion.png        the confusion matrix as a heat map, drawn by gnuplot, from\n"
    "                         RUN_DIR/confusion.csv if present (mpicnn eval --confusion),\n"
    "                         else by scoring model.h5 on its config's test set\n"
    "    misclassified.png    the N most confidently misclassified test images (24),\n"
    "                         labelled with the true and the predicted class\n"
    "  --activations LAYER draws only activations_LAYER.png instead: every channel of\n"
    "  LAYER's output for the first N test images (4). --set data.* points the model\n"
    "  at other data files, as for eval. gnuplot is looked up in PATH, or taken from\n"
    "  $MPICNN_GNUPLOT; without it the gnuplot charts are skipped and the exit code\n"
    "  is 69 (Debian: apt-get install gnuplot-nox).\n";

#define DEFAULT_WRONG 24
#define DEFAULT_IMAGES 4
#define BUF (CNN_PATH_MAX + 64)

/* Everything one invocation holds; freed in one place. */
typedef struct {
    char run[BUF];                  /* RUN_DIR without trailing slashes */
    char name[CNN_NAME_MAX * 2];    /* RUN_DIR's last component, for titles */
    char plots[BUF];                /* RUN_DIR/plots */
    char work[BUF + 32];            /* gnuplot's temp dir under plots, or "" */
    const char *gnuplot;            /* program name or path */
    int have_gnuplot;
    cnn_config_t *cfg;
    cnn_model_meta_t meta;
    cnn_net_t *net;
    cnn_data_t data;
    float *scores;                  /* (test n, K) */
    const char **names;             /* (K) class names (borrowed) */
    char (*numbers)[12];            /* (K) "0", "1", ... when unnamed */
} plot_t;

static void plot_free(plot_t *p)
{
    if (p->work[0]) rmdir(p->work); /* keeps itself when a failed chart left files */
    free(p->scores);
    free(p->names);
    free(p->numbers);
    cnn_data_free(&p->data);
    cnn_net_free(p->net);
    cnn_model_meta_free(&p->meta);
    free(p->cfg);
}

static cnn_status_t write_canvas(const plot_t *p, const char *file, cnn_canvas_t *cv)
{
    char path[BUF + 64];
    snprintf(path, sizeof path, "%s/%s", p->plots, file);
    cnn_status_t st = cnn_png_write(path, cv->rgb, cv->w, cv->h, 3);
    if (st == CNN_OK) printf("plot: wrote %s (%d x %d)\n", path, cv->w, cv->h);
    cnn_canvas_free(cv);
    return st;
}

/* The temp dir for gnuplot's script and data, made on first use. */
static cnn_status_t work_dir(plot_t *p)
{
    if (p->work[0]) return CNN_OK;
    snprintf(p->work, sizeof p->work, "%s/.gnuplot-XXXXXX", p->plots);
    if (!mkdtemp(p->work)) {
        const int e = errno;
        p->work[0] = '\0';
        return cnn_error_set(CNN_EIO, "%s: cannot create a temporary directory: %s", p->plots,
                             strerror(e));
    }
    return CNN_OK;
}

/* ---- run files ---------------------------------------------------------- */

/* Splits a CSV line in place into at most max fields; returns the count. */
static int split_csv(char *line, char **field, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *s = line, *tok; (tok = strsep(&s, ","));) {
        if (n == max) return max + 1;
        field[n++] = tok;
    }
    return n;
}

/* RUN_DIR/metrics.csv as history rows (n x CNN_HISTORY_COLS). A missing
 * file gives 0 rows; anything malformed is CNN_EDATA naming the line. */
static cnn_status_t read_metrics(const char *path, double **rows, int *nrows)
{
    *rows = NULL;
    *nrows = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? CNN_OK : cnn_error_set(CNN_EDATA, "%s: %s", path, strerror(errno));
    cnn_status_t st = CNN_OK;
    char *line = NULL, *field[CNN_HISTORY_COLS + 1];
    size_t cap = 0;
    int lineno = 0, n = 0, alloc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        const int nf = split_csv(line, field, CNN_HISTORY_COLS);
        if (lineno == 1) {
            for (int k = 0; k < CNN_HISTORY_COLS && st == CNN_OK; k++)
                if (nf != CNN_HISTORY_COLS || strcmp(field[k], cnn_history_cols[k]))
                    st = cnn_error_set(CNN_EDATA, "%s: line 1: not the header of a metrics file "
                                       "(epoch,train_loss,...,images_per_second)", path);
            if (st != CNN_OK) break;
            continue;
        }
        if (nf == 1 && !field[0][0]) continue; /* blank line */
        if (nf != CNN_HISTORY_COLS) {
            st = cnn_error_set(CNN_EDATA, "%s: line %d: %d fields, expected %d", path, lineno, nf,
                               CNN_HISTORY_COLS);
            break;
        }
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 64;
            double *r = n < CNN_HISTORY_MAX ? realloc(*rows, sizeof(double) * (size_t)alloc *
                                                                 CNN_HISTORY_COLS)
                                            : NULL;
            if (!r) {
                st = cnn_error_set(n < CNN_HISTORY_MAX ? CNN_ENOMEM : CNN_EDATA,
                                   "%s: too many rows", path);
                break;
            }
            *rows = r;
        }
        for (int k = 0; k < CNN_HISTORY_COLS && st == CNN_OK; k++) {
            char *end;
            const double v = strtod(field[k], &end);
            if (end == field[k] || *end)
                st = cnn_error_set(CNN_EDATA, "%s: line %d: %s '%s' is not a number", path,
                                   lineno, cnn_history_cols[k], field[k]);
            (*rows)[(size_t)n * CNN_HISTORY_COLS + k] = v;
        }
        if (st != CNN_OK) break;
        n++;
    }
    free(line);
    fclose(f);
    if (st != CNN_OK) {
        free(*rows);
        *rows = NULL;
        return st;
    }
    *nrows = n;
    return CNN_OK;
}

/* A confusion CSV as `mpicnn eval --confusion` writes it: a header
 * "true\predicted,NAME,...", then one row "NAME,count,..." per true class.
 * *conf (K x K) and *names (K strings, and the array) are malloc'd. A
 * missing file gives K = 0. */
static cnn_status_t read_confusion(const char *path, long **conf, char ***names, int *K)
{
    *conf = NULL;
    *names = NULL;
    *K = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? CNN_OK : cnn_error_set(CNN_EDATA, "%s: %s", path, strerror(errno));
    cnn_status_t st = CNN_OK;
    char *line = NULL, *field[CNN_MAX_CLASSES * 10 + 2];
    const int maxf = (int)(sizeof field / sizeof field[0]) - 1;
    size_t cap = 0;
    int k = 0, rows = 0, lineno = 0;
    while (st == CNN_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        const int nf = split_csv(line, field, maxf);
        if (lineno == 1) {
            if (nf < 2 || nf > maxf || strcmp(field[0], "true\\predicted")) {
                st = cnn_error_set(CNN_EDATA, "%s: line 1: not the header of a confusion matrix "
                                   "(true\\predicted,NAME,...)", path);
                break;
            }
            k = nf - 1;
            *conf = calloc((size_t)k * (size_t)k, sizeof **conf);
            *names = calloc((size_t)k, sizeof **names);
            if (!*conf || !*names) {
                st = cnn_error_set(CNN_ENOMEM, "out of memory");
                break;
            }
            for (int j = 0; j < k && st == CNN_OK; j++)
                if (!((*names)[j] = strdup(field[j + 1]))) st = cnn_error_set(CNN_ENOMEM, "out of memory");
            continue;
        }
        if (nf == 1 && !field[0][0]) continue;
        if (nf != k + 1 || rows == k) {
            st = cnn_error_set(CNN_EDATA, "%s: line %d: %s", path, lineno,
                               rows == k ? "more rows than classes" : "wrong number of fields");
            break;
        }
        for (int j = 0; j < k && st == CNN_OK; j++) {
            char *end;
            errno = 0;
            const long v = strtol(field[j + 1], &end, 10);
            if (end == field[j + 1] || *end || v < 0 || errno)
                st = cnn_error_set(CNN_EDATA, "%s: line %d: '%s' is not a count", path, lineno,
                                   field[j + 1]);
            (*conf)[(size_t)rows * k + j] = v;
        }
        rows++;
    }
    free(line);
    fclose(f);
    if (st == CNN_OK && rows != k)
        st = cnn_error_set(CNN_EDATA, "%s: %d rows for %d classes", path, rows, k);
    if (st != CNN_OK) {
        for (int j = 0; *names && j < k; j++) free((*names)[j]);
        free(*names);
        free(*conf);
        *names = NULL;
        *conf = NULL;
        return st;
    }
    *K = k;
    return CNN_OK;
}

/* ---- the model and its test set ----------------------------------------- */

/* Loads the test set of the model's config and checks its shape. */
static cnn_status_t load_test(plot_t *p, const char *model)
{
    CNN_TRY(cnn_data_prepare(p->cfg, 0, &p->data));
    const cnn_dataset_t *t = p->data.test;
    if (!t || t->n == 0)
        return cnn_error_set(CNN_ECONFIG, "%s: its config names no test set (give one with --set "
                             "data.test_images=... --set data.test_labels=...)", model);
    if (t->c != p->meta.c || t->h != p->meta.h || t->w != p->meta.w)
        return cnn_error_set(CNN_EDATA, "%s: the model takes %dx%dx%d images, the test set has "
                             "%dx%dx%d", model, p->meta.c, p->meta.h, p->meta.w, t->c, t->h, t->w);
    if (t->nclasses > p->net->output.c)
        return cnn_error_set(CNN_EDATA, "%s: the test set has %d classes, the model %d", model,
                             t->nclasses, p->net->output.c);
    /* class names: the model's, else the data's, else numbers */
    const int K = p->net->output.c;
    p->names = calloc((size_t)K, sizeof *p->names);
    p->numbers = calloc((size_t)K, sizeof *p->numbers);
    if (!p->names || !p->numbers) return cnn_error_set(CNN_ENOMEM, "out of memory");
    for (int k = 0; k < K; k++) {
        snprintf(p->numbers[k], sizeof p->numbers[k], "%d", k);
        p->names[k] = p->meta.class_names && k < p->meta.nclasses ? p->meta.class_names[k]
                      : k < t->nclasses                          ? t->class_names[k]
                                                                 : p->numbers[k];
    }
    return CNN_OK;
}

/* ---- pictures ----------------------------------------------------------- */

static cnn_status_t draw_filters(plot_t *p)
{
    const cnn_layer_t *l = NULL;
    for (int i = 0; i < p->net->nlayers && !l; i++)
        if (p->net->layers[i].ops == &cnn_conv_ops) l = &p->net->layers[i];
    if (!l) {
        printf("plot: the model has no conv layer: no filters.png\n");
        return CNN_OK;
    }
    const int K = l->spec.filters, C = l->in.c, KH = l->spec.kh, KW = l->spec.kw;
    char title[160];
    snprintf(title, sizeof title, "%s: %d filters of %dx%dx%d%s, each scaled to its min..max",
             l->spec.name, K, C, KH, KW, C == 3 ? " (RGB)" : "");
    cnn_canvas_t cv;
    CNN_TRY(cnn_plot_filters(l->params, K, C, KH, KW, title, &cv));
    return write_canvas(p, "filters.png", &cv);
}

static cnn_status_t draw_curves(plot_t *p)
{
    char path[BUF + 64], png[BUF + 64], title[160];
    double *rows = NULL;
    int n = 0;
    snprintf(path, sizeof path, "%s/metrics.csv", p->run);
    CNN_TRY(read_metrics(path, &rows, &n));
    const double *use = rows;
    if (n == 0) { /* no metrics.csv: the history saved in the model */
        use = p->meta.history;
        n = p->meta.nhistory;
        snprintf(path, sizeof path, "%s/model.h5 (its history)", p->run);
    }
    cnn_status_t st = CNN_OK;
    if (n == 0) {
        printf("plot: neither %s/metrics.csv nor the model's history has epochs: no "
               "learning_curves.png\n", p->run);
        goto done;
    }
    snprintf(png, sizeof png, "%s/learning_curves.png", p->plots);
    snprintf(title, sizeof title, "%s: %d epoch%s", p->name, n, n == 1 ? "" : "s");
    if ((st = work_dir(p)) != CNN_OK) goto done;
    st = cnn_plot_learning_curves(p->gnuplot, p->work, use, n, title, png);
    if (st == CNN_OK) printf("plot: wrote %s (960 x 400) from %s\n", png, path);
    else cnn_error_prefix("learning curves");
done:
    free(rows);
    return st;
}

static cnn_status_t draw_confusion(plot_t *p)
{
    char path[BUF + 64], png[BUF + 64], title[200];
    long *conf = NULL;
    char **csv_names = NULL;
    int K = 0;
    snprintf(path, sizeof path, "%s/confusion.csv", p->run);
    CNN_TRY(read_confusion(path, &conf, &csv_names, &K));
    cnn_status_t st = CNN_OK;
    const char *from = path;
    const char *const *names = (const char *const *)csv_names;
    if (!conf) { /* computed from the scores */
        const cnn_dataset_t *t = p->data.test;
        K = p->net->output.c;
        if (!(conf = calloc((size_t)K * (size_t)K, sizeof *conf))) {
            st = cnn_error_set(CNN_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < t->n; i++)
            conf[(size_t)t->labels[i] * K + cnn_argmax(p->scores + i * (size_t)K, K)]++;
        names = p->names;
        from = "the test set";
    }
    long total = 0, right = 0;
    for (int y = 0; y < K; y++)
        for (int x = 0; x < K; x++) {
            total += conf[(size_t)y * K + x];
            if (x == y) right += conf[(size_t)y * K + x];
        }
    snprintf(title, sizeof title, "%s: accuracy %.4f (%ld/%ld)", p->name,
             total ? (double)right / (double)total : 0.0, right, total);
    snprintf(png, sizeof png, "%s/confusion.png", p->plots);
    if ((st = work_dir(p)) != CNN_OK) goto done;
    st = cnn_plot_confusion(p->gnuplot, p->work, conf, K, names, title, png);
    if (st == CNN_OK) {
        const int side = cnn_plot_confusion_side(K);
        printf("plot: wrote %s (%d x %d) from %s\n", png, side, side, from);
    } else {
        cnn_error_prefix("confusion matrix");
    }
done:
    for (int k = 0; csv_names && k < K; k++) free(csv_names[k]);
    free(csv_names);
    free(conf);
    return st;
}

typedef struct {
    size_t index;
    float margin; /* score of the prediction - score of the true class */
} wrong_t;

static int by_margin(const void *a, const void *b)
{
    const wrong_t *x = a, *y = b;
    if (x->margin != y->margin) return x->margin > y->margin ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static cnn_status_t draw_misclassified(plot_t *p, int want)
{
    const cnn_dataset_t *t = p->data.test;
    const int K = p->net->output.c;
    const size_t img = (size_t)t->c * (size_t)t->h * (size_t)t->w;
    cnn_status_t st = CNN_OK;
    size_t nwrong = 0;
    wrong_t *wrong = malloc(sizeof *wrong * (t->n ? t->n : 1));
    uint8_t *images = malloc(img * (size_t)want);
    char (*text)[2][64] = calloc((size_t)want, sizeof *text);
    const char **l1 = calloc((size_t)want, sizeof *l1), **l2 = calloc((size_t)want, sizeof *l2);
    if (!wrong || !images || !text || !l1 || !l2) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < t->n; i++) {
        const float *s = p->scores + i * (size_t)K;
        const int pred = cnn_argmax(s, K), y = t->labels[i];
        if (pred != y) wrong[nwrong++] = (wrong_t){i, s[pred] - s[y]};
    }
    qsort(wrong, nwrong, sizeof *wrong, by_margin);
    const int n = nwrong < (size_t)want ? (int)nwrong : want;
    for (int i = 0; i < n; i++) {
        const size_t j = wrong[i].index;
        memcpy(images + (size_t)i * img, t->images + j * img, img);
        snprintf(text[i][0], sizeof text[i][0], "true: %s", p->names[t->labels[j]]);
        snprintf(text[i][1], sizeof text[i][1], "pred: %s",
                 p->names[cnn_argmax(p->scores + j * (size_t)K, K)]);
        l1[i] = text[i][0];
        l2[i] = text[i][1];
    }
    char title[200];
    if (n) snprintf(title, sizeof title, "%s: the %d most confident of %zu misclassified test "
                    "images (of %zu)", p->name, n, nwrong, t->n);
    else snprintf(title, sizeof title, "%s: no misclassified test images (of %zu)", p->name, t->n);
    cnn_canvas_t cv;
    if ((st = cnn_plot_image_grid(images, n, t->c, t->h, t->w, l1, l2, title, &cv)) == CNN_OK)
        st = write_canvas(p, "misclassified.png", &cv);
done:
    free(wrong);
    free(images);
    free(text);
    free(l1);
    free(l2);
    return st;
}

static cnn_status_t draw_activations(plot_t *p, const char *layer, int want)
{
    cnn_net_t *net = p->net;
    const cnn_layer_t *l = cnn_net_layer(net, layer);
    if (!l) {
        char list[512] = "";
        for (int i = 0; i < net->nlayers; i++) {
            const size_t o = strlen(list);
            snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", net->layers[i].spec.name);
        }
        return cnn_error_set(CNN_EUSAGE, "--activations: the model has no layer '%s' (its layers: "
                             "%s)", layer, list);
    }
    const cnn_dataset_t *t = p->data.test;
    const int n = t->n < (size_t)want ? (int)t->n : want, K = net->output.c;
    size_t idx[64];
    int32_t labels[64];
    char text[64][96];
    const char *captions[64];
    for (int i = 0; i < n; i++) idx[i] = (size_t)i;
    cnn_dataset_batch(t, idx, n, p->meta.mean, p->meta.std, cnn_net_input(net), labels);
    const cnn_ctx_t ctx = cnn_net_ctx(net, 0, 0, 0, 0);
    const float *out = cnn_net_forward(net, &ctx, n);
    for (int i = 0; i < n; i++) {
        snprintf(text[i], sizeof text[i], "test image %d: %s, predicted %s", i,
                 p->names[labels[i]], p->names[cnn_argmax(out + (size_t)i * K, K)]);
        captions[i] = text[i];
    }
    char title[260], file[CNN_NAME_MAX + 32], after[CNN_NAME_MAX + 16] = "";
    /* a relu taking the layer's output runs in place: its buffer holds
     * the relu's output (the last of such a run), so say so */
    const int i = l->index;
    for (int j = i + 1; j < net->nlayers; j++)
        if (net->act[j + 1] == net->act[i + 1])
            snprintf(after, sizeof after, " after %s", net->layers[j].spec.name);
    snprintf(title, sizeof title, "%s (%s)%s: %d channels of %dx%d; colour per channel, dark = low",
             l->spec.name, l->spec.type, after, l->out.c, l->out.h, l->out.w);
    /* the file name keeps the layer name's safe characters */
    char safe[CNN_NAME_MAX];
    snprintf(safe, sizeof safe, "%s", l->spec.name);
    for (char *c = safe; *c; c++)
        if (!(*c == '-' || *c == '_' || *c == '.' || (*c >= '0' && *c <= '9') ||
              (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
            *c = '_';
    snprintf(file, sizeof file, "activations_%s.png", safe);
    cnn_canvas_t cv;
    /* a relu left to the max pool after it has not written its buffer */
    const float *act = cnn_net_layer_output(net, &ctx, n, i);
    const cnn_status_t st = cnn_plot_activations(act, n, l->out.c, l->out.h,
                                                 l->out.w, t->images, t->c, t->h, t->w, captions,
                                                 title, &cv);
    if (st == CNN_EUSAGE) { /* too big a picture */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", cnn_error_message());
        return cnn_error_set(st, "--activations %s --images %d: %s; ask for fewer images",
                             layer, n, msg);
    }
    if (st != CNN_OK) return st;
    return write_canvas(p, file, &cv);
}

/* ---- the command -------------------------------------------------------- */

/* The last component of a path ("runs/fm" -> "fm"), for titles. */
static void base_name(const char *path, char *out, size_t len)
{
    const size_t end = strlen(path);
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(out, len, "%.*s", (int)(end - start), path + start);
}

/* Not collective: main() runs it on rank 0 alone, so the evaluation runs
 * on MPI_COMM_SELF and `comm` is not used. */
cnn_status_t cli_plot(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", NULL};
    const char *sets[CLI_MAX_FLAGS], *s;
    cli_args_t a;
    long wrong = DEFAULT_WRONG, nimages = DEFAULT_IMAGES;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        fputs(plot_usage, stdout);
        return CNN_OK;
    }
    if (a.npos != 1) return cnn_error_set(CNN_EUSAGE, "plot: expected one RUN_DIR (see --help)");
    const int nsets = cli_get_all(&a, "--set", sets, CLI_MAX_FLAGS);
    const char *layer = cli_get(&a, "--activations");
    if ((s = cli_get(&a, "--misclassified"))) {
        if (layer) return cnn_error_set(CNN_EUSAGE, "--misclassified does not go with --activations");
        CNN_TRY(cli_int("--misclassified", s, 1, 200, &wrong));
    }
    if ((s = cli_get(&a, "--images"))) {
        if (!layer) return cnn_error_set(CNN_EUSAGE, "--images goes with --activations LAYER");
        CNN_TRY(cli_int("--images", s, 1, 64, &nimages));
    }
    CNN_TRY(cli_check_unused(&a));
    for (int i = 0; i < nsets && i < CLI_MAX_FLAGS; i++)
        if (strncmp(sets[i], "data.", 5) && strncmp(sets[i], "train.threads=", 14))
            return cnn_error_set(CNN_EUSAGE, "plot: --set %s: only data.* and train.threads can "
                                 "change", sets[i]);

    plot_t p = {0};
    cnn_status_t st = CNN_OK;
    char model[BUF];
    size_t len = strlen(a.pos[0]);
    if (len > CNN_PATH_MAX) return cnn_error_set(CNN_EUSAGE, "plot: RUN_DIR too long");
    while (len > 1 && a.pos[0][len - 1] == '/') len--;
    snprintf(p.run, sizeof p.run, "%.*s", (int)len, a.pos[0]);
    base_name(p.run, p.name, sizeof p.name);
    snprintf(model, sizeof model, "%s/model.h5", p.run);
    snprintf(p.plots, sizeof p.plots, "%s/plots", p.run);
    s = getenv("MPICNN_GNUPLOT");
    p.gnuplot = s && *s ? s : "gnuplot";
    p.have_gnuplot = cnn_gnuplot_found(p.gnuplot);
    CNN_TRY(cnn_dist_prepare(MPI_COMM_SELF));
    if (!(p.cfg = malloc(sizeof *p.cfg))) return cnn_error_set(CNN_ENOMEM, "out of memory");

    /* --activations runs the first N images through a net of batch N */
    if ((st = cli_load_model(model, sets, nsets, layer ? (int)nimages : 0, &p.meta, p.cfg,
                             &p.net)) != CNN_OK)
        goto done;
    if ((st = cnn_fs_mkdir_p(p.plots)) != CNN_OK) goto done;
    if (layer) {
        if ((st = load_test(&p, model)) == CNN_OK) st = draw_activations(&p, layer, (int)nimages);
        goto done;
    }

    if ((st = draw_filters(&p)) != CNN_OK) goto done;
    if (p.have_gnuplot && (st = draw_curves(&p)) != CNN_OK) goto done;
    if ((st = load_test(&p, model)) != CNN_OK) goto done;
    const int K = p.net->output.c;
    if (!(p.scores = malloc(sizeof(float) * p.data.test->n * (size_t)K))) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
        goto done;
    }
    cnn_eval_t ev;
    const cnn_loss_t *loss = p.cfg->train.loss == CNN_LOSS_HINGE ? &cnn_loss_hinge
                                                                 : &cnn_loss_softmax_ce;
    st = cnn_evaluate(MPI_COMM_SELF, p.net, p.data.test, p.meta.mean, p.meta.std, loss, 1,
                      p.scores, &ev);
    if (st != CNN_OK) goto done;
    printf("plot: test accuracy %.4f (%ld/%ld)\n", ev.acc, ev.correct, ev.total);
    if (p.have_gnuplot && (st = draw_confusion(&p)) != CNN_OK) goto done;
    if ((st = draw_misclassified(&p, (int)wrong)) != CNN_OK) goto done;
    if (!p.have_gnuplot)
        st = cnn_error_set(CNN_EUNAVAIL,
                           "gnuplot not found ('%s'%s): learning_curves.png and confusion.png "
                           "were not drawn (the other pictures are in %s). Install it (Debian: "
                           "apt-get install gnuplot-nox) or set MPICNN_GNUPLOT to its path",
                           p.gnuplot, strchr(p.gnuplot, '/') ? "" : " in PATH", p.plots);
done:
    fflush(stdout);
    plot_free(&p);
    return st;
}
