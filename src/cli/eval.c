/* eval.c - `mpicnn eval MODEL.h5 [--set data.key=value ...]
 * [--predictions FILE.csv] [--confusion FILE.csv] [--max-memory MB]`: scores a model on the
 * test set its config names (or another, through --set). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/dataprep.h"
#include "mpicnn/dist.h"
#include "mpicnn/evaluate.h"

static const char eval_usage[] =
    "usage: mpicnn eval MODEL.h5 [--set data.key=value ...] [--predictions FILE.csv]\n"
    "                   [--confusion FILE.csv] [--max-memory MB]\n"
    "  Scores the model on the test set of its stored config; --set data.* points\n"
    "  it at other files. Prints 'accuracy: A (correct/total)', a confusion matrix\n"
    "  and per-class precision and recall. --predictions writes\n"
    "  index,label,predicted,score_0..score_{K-1} (softmax probabilities, or the\n"
    "  raw scores of a hinge-loss model); --confusion writes the matrix (rows: true\n"
    "  class, columns: predicted).\n" CLI_MAX_MEMORY_USAGE;

static const char *class_name(const cnn_model_meta_t *m, int k, char *buf, size_t len)
{
    if (m->class_names && k < m->nclasses) return m->class_names[k];
    snprintf(buf, len, "%d", k);
    return buf;
}

/* The confusion matrix as CSV (rows: true class, columns: predicted). */
static cnn_status_t write_confusion(const char *path, const cnn_model_meta_t *m,
                                    const long *conf, int K)
{
    cnn_afile_t *af;
    FILE *f;
    char nb[32];
    CNN_TRY(cnn_afile_open(path, &af, &f));
    fprintf(f, "true\\predicted");
    for (int k = 0; k < K; k++) fprintf(f, ",%s", class_name(m, k, nb, sizeof nb));
    fprintf(f, "\n");
    for (int y = 0; y < K; y++) {
        fprintf(f, "%s", class_name(m, y, nb, sizeof nb));
        for (int k = 0; k < K; k++) fprintf(f, ",%ld", conf[(size_t)y * K + k]);
        fprintf(f, "\n");
    }
    return cnn_afile_commit(af);
}

/* One line per test image: index, label, predicted class and the K
 * scores (softmax probabilities, or the raw scores of a hinge-loss
 * model). */
static cnn_status_t write_predictions(const char *path, const cnn_dataset_t *ds,
                                      const float *scores, int K, int hinge)
{
    cnn_afile_t *af;
    FILE *f;
    CNN_TRY(cnn_afile_open(path, &af, &f));
    fprintf(f, "index,label,predicted");
    for (int k = 0; k < K; k++) fprintf(f, ",score_%d", k);
    fprintf(f, "\n");
    for (size_t i = 0; i < ds->n; i++) {
        const float *s = scores + i * (size_t)K;
        const int p = cnn_argmax(s, K);
        fprintf(f, "%zu,%d,%d", i, ds->labels[i], p);
        double z = 0.0;
        if (!hinge)
            for (int k = 0; k < K; k++) z += exp((double)s[k] - s[p]);
        for (int k = 0; k < K; k++)
            fprintf(f, ",%.6g", hinge ? (double)s[k] : exp((double)s[k] - s[p]) / z);
        fprintf(f, "\n");
    }
    return cnn_afile_commit(af);
}

/* The terminal part: the confusion matrix when it fits, then precision
 * and recall per class. */
static void print_confusion(const cnn_model_meta_t *m, const long *conf, int K)
{
    char nb[32];
    if (K <= 20) {
        printf("\nconfusion matrix (rows: true class, columns: predicted)\n%14s", "");
        for (int k = 0; k < K; k++) printf(" %5d", k);
        printf("\n");
        for (int y = 0; y < K; y++) {
            printf("%2d %-11.11s", y, class_name(m, y, nb, sizeof nb));
            for (int k = 0; k < K; k++) printf(" %5ld", conf[(size_t)y * K + k]);
            printf("\n");
        }
    }
    printf("\n%-3s %-16s %9s %9s %7s\n", "", "class", "precision", "recall", "images");
    for (int k = 0; k < K; k++) {
        long tp = conf[(size_t)k * K + k], col = 0, row = 0;
        for (int j = 0; j < K; j++) {
            col += conf[(size_t)j * K + k];
            row += conf[(size_t)k * K + j];
        }
        printf("%-3d %-16.16s %9.4f %9.4f %7ld\n", k, class_name(m, k, nb, sizeof nb),
               col ? (double)tp / col : 0.0, row ? (double)tp / row : 0.0, row);
    }
}

/* Rank 0: the CSV files and the terminal report. */
static cnn_status_t report(const cnn_model_meta_t *m, const cnn_dataset_t *ds, const float *scores,
                           int K, int hinge, const char *pred_path, const char *conf_path)
{
    long *conf = calloc((size_t)K * K, sizeof(long));
    if (!conf) return cnn_error_set(CNN_ENOMEM, "out of memory");
    for (size_t i = 0; i < ds->n; i++) {
        const int y = ds->labels[i];
        if (y < K) conf[(size_t)y * K + cnn_argmax(scores + i * (size_t)K, K)]++;
    }
    cnn_status_t st = pred_path ? write_predictions(pred_path, ds, scores, K, hinge) : CNN_OK;
    if (st == CNN_OK && conf_path) st = write_confusion(conf_path, m, conf, K);
    if (st == CNN_OK) print_confusion(m, conf, K);
    free(conf);
    return st;
}

cnn_status_t cli_eval(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", NULL};
    cli_args_t a;
    const char *sets[CLI_MAX_FLAGS];
    int rank;
    MPI_Comm_rank(comm, &rank);
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        if (rank == 0) fputs(eval_usage, stdout);
        return CNN_OK;
    }
    if (a.npos != 1) return cnn_error_set(CNN_EUSAGE, "eval: expected one MODEL.h5 (see --help)");
    int nsets = cli_get_all(&a, "--set", sets, CLI_MAX_FLAGS);
    const char *pred = cli_get(&a, "--predictions"), *confp = cli_get(&a, "--confusion");
    cnn_membudget_t budget;
    CNN_TRY(cli_max_memory(&a, comm, &budget));
    CNN_TRY(cli_check_unused(&a));
    for (int i = 0; i < nsets && i < CLI_MAX_FLAGS; i++)
        if (strncmp(sets[i], "data.", 5) && strncmp(sets[i], "train.batch_size=", 17) &&
            strncmp(sets[i], "train.threads=", 14))
            return cnn_error_set(CNN_EUSAGE,
                                 "eval: --set %s: only data.*, train.batch_size and train.threads "
                                 "can change for an evaluation", sets[i]);

    cnn_config_t *cfg = malloc(sizeof *cfg);
    cnn_model_meta_t meta = {0};
    cnn_net_t *net = NULL;
    cnn_data_t d = {0};
    float *scores = NULL;
    if (!cfg) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_status_t st = cli_load_model_within(a.pos[0], sets, nsets, 0, &budget, &meta, cfg, &net);
    if (st == CNN_OK) st = cnn_data_prepare(cfg, 0, &d);
    if (st == CNN_OK && (d.c != meta.c || d.h != meta.h || d.w != meta.w))
        st = cnn_error_set(CNN_EDATA, "%s: the model takes %dx%dx%d images, the test set has %dx%dx%d",
                           a.pos[0], meta.c, meta.h, meta.w, d.c, d.h, d.w);
    if (st == CNN_OK && d.test->nclasses > net->output.c)
        st = cnn_error_set(CNN_EDATA, "%s: the test set has %d classes, the model %d", a.pos[0],
                           d.test->nclasses, net->output.c);
    st = cnn_dist_agree(comm, st);
    if (st != CNN_OK) goto done;
    const int K = net->output.c;
    if (rank == 0 && !(scores = malloc(sizeof(float) * d.test->n * (size_t)K + 1)))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    cnn_eval_t ev;
    const cnn_loss_t *loss = cfg->train.loss == CNN_LOSS_HINGE ? &cnn_loss_hinge : &cnn_loss_softmax_ce;
    st = cnn_evaluate(comm, net, d.test, meta.mean, meta.std, loss, 1, scores, &ev);
    if (st != CNN_OK) goto done;
    const size_t bad = rank == 0 ? cnn_scores_first_nonfinite(scores, d.test->n, K) : 0;
    if (rank == 0 && bad < d.test->n)
        st = cnn_error_set(CNN_ENUMERIC, "%s: the scores of test image %zu are not finite (NaN or "
                           "Inf): the weights are finite but overflow float32 arithmetic",
                           a.pos[0], bad);
    if (rank == 0 && st == CNN_OK) {
        printf("accuracy: %.4f (%ld/%ld)\n", ev.acc, ev.correct, ev.total);
        printf("loss: %.4f\n", ev.loss);
        st = report(&meta, d.test, scores, K, cfg->train.loss == CNN_LOSS_HINGE, pred, confp);
        fflush(stdout);
    }
    st = cnn_dist_agree(comm, st);
done:
    free(scores);
    cnn_data_free(&d);
    cnn_net_free(net);
    cnn_model_meta_free(&meta);
    free(cfg);
    return st;
}
