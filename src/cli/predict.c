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
 * class, or its raw score for a hinge-loss model). */
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
    "  output of the net (before the softmax), with 9 significant digits.\n" CLI_MAX_MEMORY_USAGE;

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

/* Rank 0: the CSV rows. */
static void write_rows(FILE *f, const input_t *ins, int nin, const float *scores, int K,
                       int hinge, int logits, const cnn_model_meta_t *m)
{
    fprintf(f, "input,index,predicted,class,score");
    for (int k = 0; logits && k < K; k++) fprintf(f, ",logit_%d", k);
    fputc('\n', f);
    size_t row = 0;
    for (int j = 0; j < nin; j++)
        for (size_t i = 0; i < ins[j].n; i++, row++) {
            const float *s = scores + row * (size_t)K;
            const int p = cnn_argmax(s, K);
            double score = s[p];
            if (!hinge) {
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
                fprintf(f, ",%zu,%d,%s,%.6g", i, p, m->class_names[p], score);
            else
                fprintf(f, ",%zu,%d,%d,%.6g", i, p, p, score);
            for (int k = 0; logits && k < K; k++) fprintf(f, ",%.9g", (double)s[k]);
            fputc('\n', f);
        }
}

static cnn_status_t write_csv(const char *path, const input_t *ins, int nin, const float *scores,
                              int K, int hinge, int logits, const cnn_model_meta_t *m)
{
    if (!path) {
        write_rows(stdout, ins, nin, scores, K, hinge, logits, m);
        if (fflush(stdout) != 0 || ferror(stdout))
            return cnn_error_set(CNN_EIO, "standard output: write failed: %s", strerror(errno));
        return CNN_OK;
    }
    cnn_afile_t *af;
    FILE *f;
    CNN_TRY(cnn_afile_open(path, &af, &f));
    write_rows(f, ins, nin, scores, K, hinge, logits, m);
    return cnn_afile_commit(af);
}

/* Rank 0: CNN_ENUMERIC naming the first image whose scores are not
 * finite (finite weights too large for float32), rather than a CSV of NaN. */
static cnn_status_t check_scores(const char *model, const input_t *ins, int nin,
                                 const float *scores, int K)
{
    size_t n = 0;
    for (int j = 0; j < nin; j++) n += ins[j].n;
    size_t bad = cnn_scores_first_nonfinite(scores, n, K);
    if (bad == n) return CNN_OK;
    int j = 0;
    while (bad >= ins[j].n) bad -= ins[j++].n;
    return cnn_error_set(CNN_ENUMERIC, "%s: the scores of %s (image %zu) are not finite (NaN or "
                         "Inf): the weights are finite but overflow float32 arithmetic", model,
                         ins[j].path, bad);
}

cnn_status_t cli_predict(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--logits", NULL};
    cli_args_t a;
    int rank;
    MPI_Comm_rank(comm, &rank);
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        if (rank == 0) fputs(predict_usage, stdout);
        return CNN_OK;
    }
    if (a.npos < 2)
        return cnn_error_set(CNN_EUSAGE, "predict: expected MODEL.h5 and at least one INPUT "
                             "(see --help)");
    const char *out = cli_get(&a, "--out");
    const int logits = cli_has(&a, "--logits");
    cnn_membudget_t budget;
    CNN_TRY(cli_max_memory(&a, comm, &budget));
    CNN_TRY(cli_check_unused(&a));

    const int nin = a.npos - 1;
    cnn_config_t *cfg = malloc(sizeof *cfg);
    input_t *ins = calloc((size_t)nin, sizeof *ins);
    cnn_model_meta_t meta = {0};
    cnn_net_t *net = NULL;
    cnn_dataset_t ds = {0};
    float *scores = NULL;
    cnn_status_t st = cfg && ins ? CNN_OK : cnn_error_set(CNN_ENOMEM, "out of memory");
    geometry_t geom = {0};
    if (st == CNN_OK) st = cli_load_model_within(a.pos[0], NULL, 0, 0, &budget, &meta, cfg, &net);
    if (st == CNN_OK) geom = geometry_of(&meta);
    for (int j = 0; st == CNN_OK && j < nin; j++)
        st = load_input(a.pos[1 + j], cfg, &meta, &geom, &ins[j]);
    /* one data set of every image, labels 0 (unused) */
    const size_t chw = (size_t)meta.c * meta.h * meta.w;
    if (st == CNN_OK) {
        for (int j = 0; j < nin; j++) ds.n += ins[j].n;
        ds.c = meta.c;
        ds.h = meta.h;
        ds.w = meta.w;
        ds.nclasses = 1;
        ds.images = malloc(ds.n * chw + 1);
        ds.labels = calloc(ds.n + 1, sizeof *ds.labels);
        if (!ds.images || !ds.labels) st = cnn_error_set(CNN_ENOMEM, "out of memory for %zu images", ds.n);
    }
    if (st == CNN_OK) {
        size_t at = 0;
        for (int j = 0; j < nin; j++) {
            memcpy(ds.images + at * chw, ins[j].images, ins[j].n * chw);
            at += ins[j].n;
        }
    }
    const int K = net ? net->output.c : 0;
    if (st == CNN_OK && rank == 0 && !(scores = malloc(sizeof(float) * ds.n * (size_t)K + 1)))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    const int hinge = cfg->train.loss == CNN_LOSS_HINGE;
    cnn_eval_t ev;
    st = cnn_evaluate(comm, net, &ds, meta.mean, meta.std,
                      hinge ? &cnn_loss_hinge : &cnn_loss_softmax_ce, 1, scores, &ev);
    if (st != CNN_OK) goto done;
    if (rank == 0) st = check_scores(a.pos[0], ins, nin, scores, K);
    if (rank == 0 && st == CNN_OK)
        st = write_csv(out, ins, nin, scores, K, hinge, logits, &meta);
    st = cnn_dist_agree(comm, st);
done:
    for (int j = 0; ins && j < nin; j++) free(ins[j].images);
    free(ins);
    free(ds.images);
    free(ds.labels);
    free(scores);
    cnn_net_free(net);
    cnn_model_meta_free(&meta);
    free(cfg);
    return st;
}
