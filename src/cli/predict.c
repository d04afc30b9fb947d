/* predict.c - `mpicnn predict MODEL.h5 INPUT... [--out FILE.csv]
 * [--max-memory MB]`:
 * classifies images with a model. Each INPUT is a PNG or JPEG image, an
 * IDX images file (raw or .gz; no labels needed) or a CIFAR binary file
 * (read as the model's data.format says). A model trained on a data file
 * records how its images were made (root attributes `resize`, `fit` and
 * `channels`, as in the data file), and images are then resized the same way;
 * otherwise every image must have the model's height and width. Channels
 * are adapted (see to_chw). The images are
 * scored in test mode with the model's normalisation, spread over the
 * ranks like `eval`; rank 0 writes one CSV row per image:
 *   input,index,predicted,class,score
 * (index within its file; score: the softmax probability of the predicted
 * class, or its raw score for a hinge-loss model).
 *
 * --tensor FILE.h5[:DATASET] scores a float tensor (N, C, H, W) instead,
 * in pixel/255 space, unrounded (with the model's normalisation, or as it
 * is with --no-normalize); --tensor-labels adds the mean loss. With
 * --dtype f64 the scores come from the double net (net64.h) with the
 * model's weights unrounded, and are written with 17 digits. The tensor
 * and f64 paths compute on rank 0 alone. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/dist.h"
#include "mpicnn/evaluate.h"
#include "mpicnn/fs.h"
#include "mpicnn/jpeg.h"
#include "mpicnn/png.h"
#include "mpicnn/resize.h"

static const char predict_usage[] =
    "usage: mpicnn predict MODEL.h5 INPUT... [--out FILE.csv] [--logits] [--max-memory MB]\n"
    "                      [--dtype f32|f64]\n"
    "       mpicnn predict MODEL.h5 --tensor FILE.h5[:DATASET] [--tensor-labels FILE.h5[:DATASET]]\n"
    "                      [--no-normalize] [--out FILE.csv] [--logits] [--dtype f32|f64]\n"
    "  Classifies images: each INPUT is a PNG or JPEG image, an IDX images file\n"
    "  (raw or .gz) or a CIFAR binary file (as the model's data.format). Images\n"
    "  must have the model's height and width, unless the model was trained on a\n"
    "  data file packed with --resize: they are then resized (and cropped) as\n"
    "  that file's images were. A gray image feeds an RGB model on\n"
    "  every channel, an RGB one a gray model as its luminance, and alpha is\n"
    "  dropped. Writes CSV to standard output (or atomically to --out):\n"
    "    input,index,predicted,class,score\n"
    "  score: the softmax probability of the predicted class (the raw score for a\n"
    "  hinge-loss model). --logits adds the columns logit_0 ... logit_K-1: every\n"
    "  output of the net (before the softmax), with 9 significant digits.\n"
    "  --tensor: scores the float32 or float64 tensor (N,C,H,W) of dataset\n"
    "  DATASET (default x) instead of images, unrounded: values in pixel/255\n"
    "  space, normalised as the model's images (--no-normalize: fed as they\n"
    "  are); its rows are named FILE.h5:DATASET. --tensor-labels: the integer\n"
    "  labels (N) of dataset DATASET (default y); prints the mean loss of the\n"
    "  model's loss function, \"loss,N,VALUE\" (to standard error when the CSV\n"
    "  goes to standard output, else to standard output).\n"
    CLI_DTYPE_USAGE CLI_MAX_MEMORY_USAGE;

/* How the model's training images were resized (data file attributes the
 * model records); resize 0: not at all. */
typedef struct {
    int resize;
    int crop;
} geometry_t;

/* One input file's images, in CHW order. */
typedef struct {
    const char *path;
    size_t n;
    uint8_t *images; /* (n, c, h, w) */
} input_t;

/* 'p' (PNG), 'i' (IDX) or 'c' (CIFAR) by the first bytes; -1 with the
 * error recorded if the file cannot be opened or is not a regular file. */
static int file_kind(const char *path)
{
    unsigned char m[8] = {0};
    FILE *f;
    if (cnn_fs_fopen_input(path, CNN_EDATA, "an image file", &f, NULL) != CNN_OK) return -1;
    size_t got = fread(m, 1, sizeof m, f);
    fclose(f);
    if (got >= 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8)) return 'p';
    if (cnn_jpeg_sniff(m, got)) return 'j';
    if (got >= 2 && m[0] == 0x1f && m[1] == 0x8b) return 'i'; /* gzip: IDX */
    if (got >= 4 && m[0] == 0 && m[1] == 0 && m[2] == 8 && m[3] == 3) return 'i';
    return 'c';
}

/* The resize and fit a model records, if any (absent: as stored). */
static geometry_t geometry_of(const cnn_model_meta_t *m)
{
    return (geometry_t){.resize = m->resize && *m->resize && strcmp(m->resize, "none") != 0,
                        .crop = m->fit && !strcmp(m->fit, "crop")};
}

/* An image (h, w, channels 1..4) into (C, H, W) for a model of C channels,
 * resized first when the model's data were. The steps and functions are
 * pack's (src/data/pack.c keep(), then cnn_image_to_chw()), so an image
 * gets the pixels it has in a data file packed with the model's resize,
 * fit and channels: resizing treats each channel on its own, so an alpha
 * channel resized along and dropped afterwards changes nothing. */
static cnn_status_t to_chw(const cnn_image_t *img, const char *path, int C, int H, int W,
                           const geometry_t *g, uint8_t *out)
{
    if (C != 1 && C != 3)
        return cnn_error_set(CNN_EDATA, "%s: the model takes %d-channel images; image input "
                             "needs a model of 1 or 3 channels", path, C);
    if (!g->resize && (img->h != H || img->w != W))
        return cnn_error_set(CNN_EDATA, "%s: a %dx%d image, but the model takes %dx%d (WxH)", path,
                             img->w, img->h, W, H);
    if (!g->resize || (img->h == H && img->w == W)) {
        cnn_image_to_chw(img->pixels, W, H, img->channels, C, out);
        return CNN_OK;
    }
    const int ic = img->channels;
    cnn_rect_t r = g->crop ? cnn_resize_crop_rect(img->w, img->h, W, H)
                           : (cnn_rect_t){0, 0, img->w, img->h};
    uint8_t *tmp = malloc((size_t)W * H * (size_t)ic);
    if (!tmp) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
    cnn_status_t st = cnn_resize_u8(img->pixels, (size_t)img->w * (size_t)ic, ic, r, tmp, W, H);
    if (st == CNN_OK) cnn_image_to_chw(tmp, W, H, ic, C, out);
    free(tmp);
    return st;
}

static cnn_status_t load_input(const char *path, const cnn_config_t *cfg,
                               const cnn_model_meta_t *m, const geometry_t *g, input_t *in)
{
    const size_t chw = (size_t)m->c * m->h * m->w;
    in->path = path;
    int kind = file_kind(path);
    if (kind < 0) return CNN_EDATA;
    if (kind == 'p' || kind == 'j') {
        cnn_image_t img;
        if (kind == 'p') CNN_TRY(cnn_png_read(path, &img));
        else CNN_TRY(cnn_jpeg_read(path, g->resize ? m->w : 0, g->resize ? m->h : 0, &img));
        in->n = 1;
        in->images = malloc(chw);
        cnn_status_t st = in->images ? to_chw(&img, path, m->c, m->h, m->w, g, in->images)
                                     : cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
        cnn_image_free(&img);
        return st;
    }
    cnn_dataset_t *ds = NULL;
    if (kind == 'i') {
        CNN_TRY(cnn_idx_load(path, NULL, &ds));
    } else if (cfg->data.format == CNN_FORMAT_CIFAR10 || cfg->data.format == CNN_FORMAT_CIFAR100) {
        const char *paths[1] = {path};
        CNN_TRY(cnn_cifar_load(paths, 1, cfg->data.format == CNN_FORMAT_CIFAR10 ? 10 : 100,
                               cfg->data.labels == CNN_LABELS_COARSE, &ds));
    } else {
        return cnn_error_set(CNN_EDATA, "%s: neither a PNG or JPEG image nor an IDX images file (the model "
                             "reads %s data, so CIFAR files do not apply)", path, "IDX");
    }
    cnn_status_t st = CNN_OK;
    if (ds->c != m->c || ds->h != m->h || ds->w != m->w)
        st = cnn_error_set(CNN_EDATA, "%s: images of %dx%dx%d (CxHxW), but the model takes "
                           "%dx%dx%d", path, ds->c, ds->h, ds->w, m->c, m->h, m->w);
    if (st == CNN_OK) {
        in->n = ds->n;
        in->images = ds->images;
        ds->images = NULL;
    }
    cnn_dataset_free(ds);
    return st;
}

/* What the CSV rows say: the scores (exact doubles of float scores, or
 * f64's), and how. */
typedef struct {
    const double *scores; /* (images, K) */
    int K, hinge, logits;
    int digits;           /* of score and logits: 0 as float (6 and 9), 17 in f64 */
} rows_t;

/* Index of the largest of k scores (first one on ties), as cnn_argmax. */
static int argmax64(const double *v, int k)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* Rank 0: the CSV rows. */
static void write_rows(FILE *f, const input_t *ins, int nin, const rows_t *rw,
                       const cnn_model_meta_t *m)
{
    const int K = rw->K, logits = rw->logits, sd = rw->digits ? rw->digits : 6;
    const int ld = rw->digits ? rw->digits : 9;
    fprintf(f, "input,index,predicted,class,score");
    for (int k = 0; logits && k < K; k++) fprintf(f, ",logit_%d", k);
    fputc('\n', f);
    size_t row = 0;
    for (int j = 0; j < nin; j++)
        for (size_t i = 0; i < ins[j].n; i++, row++) {
            const double *s = rw->scores + row * (size_t)K;
            const int p = argmax64(s, K);
            double score = s[p];
            if (!rw->hinge) {
                double z = 0.0;
                for (int k = 0; k < K; k++) z += exp((double)s[k] - s[p]);
                score = 1.0 / z;
            }
            /* paths with commas or quotes are quoted, CSV style */
            const char *path = ins[j].path;
            if (strpbrk(path, ",\"\n")) {
                fputc('"', f);
                for (const char *c = path; *c; c++) {
                    if (*c == '"') fputc('"', f);
                    fputc(*c, f);
                }
                fputc('"', f);
            } else {
                fputs(path, f);
            }
            if (m->class_names && p < m->nclasses)
                fprintf(f, ",%zu,%d,%s,%.*g", i, p, m->class_names[p], sd, score);
            else
                fprintf(f, ",%zu,%d,%d,%.*g", i, p, p, sd, score);
            for (int k = 0; logits && k < K; k++) fprintf(f, ",%.*g", ld, s[k]);
            fputc('\n', f);
        }
}

static cnn_status_t write_csv(const char *path, const input_t *ins, int nin, const rows_t *rw,
                              const cnn_model_meta_t *m)
{
    if (!path) {
        write_rows(stdout, ins, nin, rw, m);
        if (fflush(stdout) != 0 || ferror(stdout))
            return cnn_error_set(CNN_EIO, "standard output: write failed: %s", strerror(errno));
        return CNN_OK;
    }
    cnn_afile_t *af;
    FILE *f;
    CNN_TRY(cnn_afile_open(path, &af, &f));
    write_rows(f, ins, nin, rw, m);
    return cnn_afile_commit(af);
}

/* Rank 0: CNN_ENUMERIC naming the first image whose scores are not
 * finite (finite weights too large for float32), rather than a CSV of NaN. */
static cnn_status_t check_scores(const char *model, const input_t *ins, int nin,
                                 const double *scores, int K)
{
    size_t n = 0, bad = 0;
    for (int j = 0; j < nin; j++) n += ins[j].n;
    while (bad < n * (size_t)K && isfinite(scores[bad])) bad++;
    if (bad == n * (size_t)K) return CNN_OK;
    bad /= (size_t)K;
    int j = 0;
    while (bad >= ins[j].n) bad -= ins[j++].n;
    return cnn_error_set(CNN_ENUMERIC, "%s: the scores of %s (image %zu) are not finite (NaN or "
                         "Inf): the weights are finite but overflow float32 arithmetic", model,
                         ins[j].path, bad);
}

/* The flags of one predict run. */
typedef struct {
    const char *model, *out;
    int logits, f64, normalize;
    const char *tensor, *tensor_labels; /* FILE.h5[:DATASET] or NULL */
    cnn_membudget_t budget;
} predict_args_t;

/* FILE.h5[:DATASET] into path and obj ("/" + DATASET, default def): a
 * colon splits them unless the whole argument names an existing file. */
static cnn_status_t split_spec(const char *flag, const char *arg, const char *def, char *path,
                               char *obj, size_t len)
{
    const char *colon = strrchr(arg, ':');
    FILE *f = colon ? fopen(arg, "rb") : NULL;
    if (f) fclose(f), colon = NULL;
    const size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
    const char *ds = colon ? colon + 1 : def;
    if (n == 0 || !*ds || n >= len || strlen(ds) + 2 > len)
        return cnn_error_set(CNN_EUSAGE, "%s: '%s' is not FILE.h5[:DATASET]", flag, arg);
    snprintf(path, len, "%.*s", (int)n, arg);
    snprintf(obj, len, "%s%s", ds[0] == '/' ? "" : "/", ds);
    return CNN_OK;
}

/* The --tensor dataset: (N, C, H, W) floats of the model's shape, as
 * doubles (*x, malloc'd), one input_t naming it. */
static cnn_status_t load_tensor(const char *spec, const cnn_model_meta_t *m, input_t *in,
                                double **x, char *name, size_t namelen)
{
    char path[1024], obj[1024];
    size_t dims[CNN_H5_MAXDIMS];
    int nd;
    cnn_h5r_t *r = NULL;
    CNN_TRY(split_spec("--tensor", spec, "x", path, obj, sizeof path));
    snprintf(name, namelen, "%s:%s", path, obj + 1);
    CNN_TRY(cnn_h5r_open(path, &r));
    cnn_status_t st = cnn_h5r_shape(r, obj, &nd, dims);
    if (st == CNN_OK && (nd != 4 || dims[1] != (size_t)m->c || dims[2] != (size_t)m->h ||
                         dims[3] != (size_t)m->w))
        st = cnn_error_set(CNN_EDATA, "%s: %s: a tensor of %d dims, but the model takes "
                           "(N,%d,%d,%d)", path, obj, nd, m->c, m->h, m->w);
    if (st == CNN_OK && dims[0] > ((size_t)1 << 31))
        st = cnn_error_set(CNN_EDATA, "%s: %s: %zu images, too many", path, obj, dims[0]);
    if (st == CNN_OK && !(*x = malloc(sizeof(double) * (dims[0] * m->c * m->h * m->w + 1))))
        st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
    if (st == CNN_OK) st = cnn_h5r_reals(r, obj, 4, dims, *x);
    if (st == CNN_OK) *in = (input_t){.path = name, .n = dims[0]};
    cnn_h5r_close(r);
    return st;
}

/* The --tensor-labels dataset: n integers in [0, K), into *labels. */
static cnn_status_t load_labels(const char *spec, size_t n, int K, int **labels)
{
    char path[1024], obj[1024];
    int64_t *v = NULL;
    size_t got = 0;
    cnn_h5r_t *r = NULL;
    CNN_TRY(split_spec("--tensor-labels", spec, "y", path, obj, sizeof path));
    CNN_TRY(cnn_h5r_open(path, &r));
    cnn_status_t st = cnn_h5r_int64s(r, obj, n, &v, &got);
    if (st == CNN_OK && got != n)
        st = cnn_error_set(CNN_EDATA, "%s: %s: %zu labels for %zu images", path, obj, got, n);
    if (st == CNN_OK && !(*labels = malloc(sizeof(int) * (n + 1))))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    for (size_t i = 0; st == CNN_OK && i < n; i++) {
        if (v[i] < 0 || v[i] >= K)
            st = cnn_error_set(CNN_EDATA, "%s: %s[%zu] is %lld, not a class in [0, %d)", path,
                               obj, i, (long long)v[i], K);
        else (*labels)[i] = (int)v[i];
    }
    free(v);
    cnn_h5r_close(r);
    return st;
}

/* Where the images to score come from: a data set of 8-bit pixels or a
 * float tensor (pixel/255 space), n of them, (n, c, h, w). */
typedef struct {
    size_t n;
    const cnn_dataset_t *ds;
    const double *tensor;
    int normalize; /* 0: the tensor goes to the net as it is */
} batch_src_t;

/* Float scores of a tensor through the float net: values rounded to
 * float, normalised as images are ((x - mean) / std in float), in chunks
 * of the net's batch. */
static void scores_f32_tensor(cnn_net_t *net, const cnn_model_meta_t *m, const batch_src_t *b,
                              double *scores)
{
    const size_t chw = cnn_shape_image(net->input), hw = (size_t)m->h * m->w;
    const int K = net->output.c, norm = b->normalize && m->mean && m->std;
    cnn_ctx_t ctx = cnn_net_ctx(net, 0, 0, 0, 0);
    for (size_t at = 0; at < b->n; at += (size_t)net->input.n) {
        const int k = (int)(b->n - at < (size_t)net->input.n ? b->n - at : (size_t)net->input.n);
        float *x = cnn_net_input(net);
        for (size_t j = 0; j < (size_t)k * chw; j++) {
            const float v = (float)b->tensor[at * chw + j];
            const int c = (int)(j % chw / hw);
            x[j] = norm ? (v - m->mean[c]) / m->std[c] : v;
        }
        const float *y = cnn_net_forward(net, &ctx, k);
        for (size_t j = 0; j < (size_t)k * K; j++) scores[at * K + j] = y[j];
    }
}

/* Double scores through the double net, with the weights of `model`
 * unrounded, in chunks of the net's batch. */
static cnn_status_t scores_f64(const char *model, const cnn_net_t *net, const cnn_model_meta_t *m,
                               const batch_src_t *b, double *scores)
{
    cnn_net64_t *n64 = NULL;
    CNN_TRY(cnn_net64_create(net, &n64));
    cnn_status_t st = cnn_model_load_weights64(model, net, n64->params, n64->state);
    const size_t chw = cnn_shape_image(net->input);
    const int K = net->output.c;
    const float *mean = b->normalize ? m->mean : NULL, *std = b->normalize ? m->std : NULL;
    for (size_t at = 0; st == CNN_OK && at < b->n; at += (size_t)net->input.n) {
        const int k = (int)(b->n - at < (size_t)net->input.n ? b->n - at : (size_t)net->input.n);
        if (b->tensor) cnn_net64_set_input(n64, b->tensor + at * chw, k, mean, std);
        else cnn_net64_set_pixels(n64, b->ds->images + at * chw, k, mean, std);
        const double *y = cnn_net64_forward(n64, 0, 0, k);
        memcpy(scores + at * K, y, sizeof(double) * (size_t)k * K);
    }
    cnn_net64_free(n64);
    return st;
}

/* The mean loss of the model's loss function over the n labelled scores,
 * in double for f64 scores, else as the float loss computes it. */
static double mean_loss(const double *scores, const int *labels, size_t n, int K, int hinge,
                        int f64)
{
    if (f64 || n == 0) return n ? cnn_net64_loss(scores, labels, (int)n, K, hinge, NULL) / n : 0;
    float *z = malloc(sizeof(float) * n * K);
    double sum = NAN;
    if (z) {
        for (size_t j = 0; j < n * K; j++) z[j] = (float)scores[j];
        (hinge ? &cnn_loss_hinge : &cnn_loss_softmax_ce)->compute(z, labels, (int)n, K, 1.0f,
                                                                  &sum, NULL);
    }
    free(z);
    return sum / n;
}

/* Every image of the inputs in one data set, labels 0 (unused). */
static cnn_status_t gather_images(const input_t *ins, int nin, const cnn_model_meta_t *m,
                                  cnn_dataset_t *ds)
{
    const size_t chw = (size_t)m->c * m->h * m->w;
    for (int j = 0; j < nin; j++) ds->n += ins[j].n;
    ds->c = m->c;
    ds->h = m->h;
    ds->w = m->w;
    ds->nclasses = 1;
    ds->images = malloc(ds->n * chw + 1);
    ds->labels = calloc(ds->n + 1, sizeof *ds->labels);
    if (!ds->images || !ds->labels)
        return cnn_error_set(CNN_ENOMEM, "out of memory for %zu images", ds->n);
    size_t at = 0;
    for (int j = 0; j < nin; j++) {
        memcpy(ds->images + at * chw, ins[j].images, ins[j].n * chw);
        at += ins[j].n;
    }
    return CNN_OK;
}

/* The scores of every image into scores (rank 0: n x K doubles): f32
 * images through cnn_evaluate over the ranks, the rest on rank 0. */
static cnn_status_t score_all(MPI_Comm comm, const predict_args_t *pa, cnn_net_t *net,
                              const cnn_model_meta_t *m, const batch_src_t *b, int hinge,
                              double *scores)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    cnn_status_t st = CNN_OK;
    if (!pa->f64 && !b->tensor) {
        const size_t nk = b->n * (size_t)net->output.c;
        float *f = rank == 0 ? malloc(sizeof(float) * nk + 1) : NULL;
        if (rank == 0 && !f) st = cnn_error_set(CNN_ENOMEM, "out of memory");
        if ((st = cnn_dist_agree(comm, st)) != CNN_OK) return st;
        cnn_eval_t ev;
        st = cnn_evaluate(comm, net, b->ds, m->mean, m->std,
                          hinge ? &cnn_loss_hinge : &cnn_loss_softmax_ce, 1, f, &ev);
        for (size_t j = 0; rank == 0 && st == CNN_OK && j < nk; j++) scores[j] = f[j];
        free(f);
        return st;
    }
    if (rank == 0 && pa->f64) {
        /* the double net beside the float one, within --max-memory */
        const cnn_mem_item_t item = {"the double-precision net (--dtype f64)",
                                     cnn_net64_bytes(net)};
        st = cnn_mem_check(&item, 1, &pa->budget);
        if (st == CNN_OK) st = scores_f64(pa->model, net, m, b, scores);
    } else if (rank == 0) {
        scores_f32_tensor(net, m, b, scores);
    }
    return cnn_dist_agree(comm, st);
}

/* Rank 0: the CSV, then the mean loss line when there are labels. */
static cnn_status_t report(const predict_args_t *pa, const input_t *ins, int nin,
                           const rows_t *rw, const cnn_model_meta_t *m, const int *labels)
{
    size_t n = 0;
    for (int j = 0; j < nin; j++) n += ins[j].n;
    CNN_TRY(check_scores(pa->model, ins, nin, rw->scores, rw->K));
    CNN_TRY(write_csv(pa->out, ins, nin, rw, m));
    if (!labels) return CNN_OK;
    FILE *f = pa->out ? stdout : stderr;
    fprintf(f, "loss,%zu,%.*g\n", n, pa->f64 ? 17 : 9,
            mean_loss(rw->scores, labels, n, rw->K, rw->hinge, pa->f64));
    if (fflush(f) != 0 || ferror(f))
        return cnn_error_set(CNN_EIO, "output: write failed: %s", strerror(errno));
    return CNN_OK;
}

/* The flags, checked. */
static cnn_status_t predict_flags(cli_args_t *a, MPI_Comm comm, predict_args_t *pa)
{
    pa->model = a->npos ? a->pos[0] : NULL;
    pa->out = cli_get(a, "--out");
    pa->logits = cli_has(a, "--logits");
    pa->normalize = !cli_has(a, "--no-normalize");
    pa->tensor = cli_get(a, "--tensor");
    pa->tensor_labels = cli_get(a, "--tensor-labels");
    CNN_TRY(cli_dtype(a, &pa->f64));
    CNN_TRY(cli_max_memory(a, comm, &pa->budget));
    CNN_TRY(cli_check_unused(a));
    if (a->npos < 1 || (a->npos < 2 && !pa->tensor))
        return cnn_error_set(CNN_EUSAGE, "predict: expected MODEL.h5 and at least one INPUT "
                             "or --tensor (see --help)");
    if (pa->tensor && a->npos > 1)
        return cnn_error_set(CNN_EUSAGE, "predict: --tensor takes no INPUT files (got '%s')",
                             a->pos[1]);
    if (!pa->tensor && (pa->tensor_labels || !pa->normalize))
        return cnn_error_set(CNN_EUSAGE, "predict: %s needs --tensor",
                             pa->tensor_labels ? "--tensor-labels" : "--no-normalize");
    return CNN_OK;
}

cnn_status_t cli_predict(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--logits", "--no-normalize", NULL};
    cli_args_t a;
    predict_args_t pa = {0};
    int rank;
    MPI_Comm_rank(comm, &rank);
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        if (rank == 0) fputs(predict_usage, stdout);
        return CNN_OK;
    }
    CNN_TRY(predict_flags(&a, comm, &pa));

    const int nin = pa.tensor ? 1 : a.npos - 1;
    cnn_config_t *cfg = malloc(sizeof *cfg);
    input_t *ins = calloc((size_t)nin, sizeof *ins);
    cnn_model_meta_t meta = {0};
    cnn_net_t *net = NULL;
    cnn_dataset_t ds = {0};
    double *scores = NULL, *tensor = NULL;
    int *labels = NULL;
    char tname[2100];
    cnn_status_t st = cfg && ins ? CNN_OK : cnn_error_set(CNN_ENOMEM, "out of memory");
    geometry_t geom = {0};
    if (st == CNN_OK)
        st = cli_load_model_within(pa.model, NULL, 0, 0, &pa.budget, &meta, cfg, &net);
    if (st == CNN_OK) geom = geometry_of(&meta);
    if (st == CNN_OK && pa.tensor) st = load_tensor(pa.tensor, &meta, &ins[0], &tensor, tname,
                                                    sizeof tname);
    for (int j = 0; st == CNN_OK && !pa.tensor && j < nin; j++)
        st = load_input(a.pos[1 + j], cfg, &meta, &geom, &ins[j]);
    if (st == CNN_OK && !pa.tensor) st = gather_images(ins, nin, &meta, &ds);
    const int K = net ? net->output.c : 0;
    const size_t n = pa.tensor ? ins[0].n : ds.n;
    if (st == CNN_OK && pa.tensor_labels) st = load_labels(pa.tensor_labels, n, K, &labels);
    if (st == CNN_OK && rank == 0 && !(scores = malloc(sizeof(double) * n * (size_t)K + 1)))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    const int hinge = cfg->train.loss == CNN_LOSS_HINGE;
    const batch_src_t b = {.n = n, .ds = &ds, .tensor = tensor, .normalize = pa.normalize};
    if ((st = score_all(comm, &pa, net, &meta, &b, hinge, scores)) != CNN_OK) goto done;
    const rows_t rw = {.scores = scores, .K = K, .hinge = hinge, .logits = pa.logits,
                       .digits = pa.f64 ? 17 : 0};
    if (rank == 0) st = report(&pa, ins, nin, &rw, &meta, labels);
    st = cnn_dist_agree(comm, st);
done:
    for (int j = 0; ins && j < nin; j++) free(ins[j].images);
    free(ins);
    free(ds.images);
    free(ds.labels);
    free(scores);
    free(tensor);
    free(labels);
    cnn_net_free(net);
    cnn_model_meta_free(&meta);
    free(cfg);
    return st;
}
