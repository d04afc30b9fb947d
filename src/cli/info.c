/* info.c - `mpicnn info MODEL.h5|DATA.h5`: what a model or data file
 * holds (told apart by the root attribute `format`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/datafile.h"
#include "mpicnn/h5io.h"

/* Most labels read to count the images per class. */
#define INFO_LABELS_MAX ((size_t)1 << 26)
/* Most class names printed. */
#define INFO_CLASSES_SHOWN 20

/* 1 if path is a data file (root attribute format = "mpicnn-data"). */
static int is_data_file(const char *path)
{
    cnn_h5r_t *r = NULL;
    char *format = NULL;
    int yes = 0;
    if (cnn_h5r_open(path, &r) != CNN_OK) {
        cnn_error_clear();
        return 0;
    }
    if (cnn_h5r_attr_exists(r, "/", "format") && cnn_h5r_attr_str(r, "/", "format", &format) == CNN_OK)
        yes = !strcmp(format, CNN_DATA_FORMAT);
    cnn_error_clear();
    free(format);
    cnn_h5r_close(r);
    return yes;
}

/* A root string attribute, or "?" when it is missing. */
static void print_attr(cnn_h5r_t *r, const char *label, const char *name)
{
    char *v = NULL;
    if (cnn_h5r_attr_exists(r, "/", name) && cnn_h5r_attr_str(r, "/", name, &v) == CNN_OK)
        printf("%s: %s\n", label, *v ? v : "(none)");
    cnn_error_clear();
    free(v);
}

/* How a model's training images were made, when its data file said. */
static void print_recipe(const cnn_model_meta_t *m)
{
    if (m->resize) printf("resize: %s\n", *m->resize ? m->resize : "(none)");
    if (m->fit) printf("fit: %s\n", *m->fit ? m->fit : "(none)");
    if (m->channels) printf("channels: %s\n", *m->channels ? m->channels : "(none)");
}

/* Classes with their image counts (from /labels, when not too long). */
static cnn_status_t print_classes(cnn_h5r_t *r, size_t n)
{
    char **names = NULL;
    size_t k = 0, nl = 0;
    int64_t *labels = NULL;
    CNN_TRY(cnn_h5r_strings(r, "/classes", 1000000, &names, &k));
    size_t *count = calloc(k + 1, sizeof *count);
    cnn_status_t st = count ? CNN_OK : cnn_error_set(CNN_ENOMEM, "out of memory");
    if (st == CNN_OK && n <= INFO_LABELS_MAX)
        st = cnn_h5r_int64s(r, "/labels", INFO_LABELS_MAX, &labels, &nl);
    for (size_t i = 0; st == CNN_OK && i < nl; i++)
        if (labels[i] >= 0 && (size_t)labels[i] < k) count[labels[i]]++;
    if (st == CNN_OK) {
        printf("classes: %zu\n", k);
        for (size_t c = 0; c < k && c < INFO_CLASSES_SHOWN; c++) {
            if (labels) printf("  %3zu %-24s %zu images\n", c, names[c], count[c]);
            else printf("  %3zu %s\n", c, names[c]);
        }
        if (k > INFO_CLASSES_SHOWN) printf("  ... (%zu more)\n", k - INFO_CLASSES_SHOWN);
    }
    free(count);
    free(labels);
    cnn_h5_strings_free(names, k);
    return st;
}

/* How /images is stored: images per chunk, or contiguous. */
static void print_chunking(cnn_h5r_t *r)
{
    hid_t ds = H5Dopen2(cnn_h5r_file(r), "/images", H5P_DEFAULT);
    hid_t dcpl = ds >= 0 ? H5Dget_create_plist(ds) : H5I_INVALID_HID;
    hsize_t chunk[4] = {0};
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 4, chunk) == 4)
        printf("%llu images per chunk\n", (unsigned long long)chunk[0]);
    else
        printf("not chunked\n");
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ds >= 0) H5Dclose(ds);
    H5Eclear2(H5E_DEFAULT);
}

/* `info` of a data file (docs/data-format.md). */
static cnn_status_t data_info(const char *path)
{
    cnn_h5r_t *r = NULL;
    int nd = 0;
    size_t dims[CNN_H5_MAXDIMS];
    int64_t version = 0, skipped = 0;
    CNN_TRY(cnn_h5r_open(path, &r));
    cnn_status_t st = cnn_h5r_attr_int64(r, "/", "format_version", &version);
    if (st == CNN_OK) st = cnn_h5r_shape(r, "/images", &nd, dims);
    if (st == CNN_OK && nd != 4)
        st = cnn_error_set(CNN_EDATA, "%s: /images has %d dimensions, expected 4 (N, C, H, W)",
                           path, nd);
    if (st != CNN_OK) goto done;
    printf("data file: %s (format version %lld)\n", path, (long long)version);
    printf("images: %zu of %zu x %zu x %zu (channels x height x width), ", dims[0], dims[1],
           dims[2], dims[3]);
    print_chunking(r);
    if ((st = print_classes(r, dims[0])) != CNN_OK) goto done;
    const size_t c = dims[1];
    float mean[4], std[4];
    if (c <= 4 && cnn_h5r_floats(r, "/normalization/mean", 1, &c, mean) == CNN_OK &&
        cnn_h5r_floats(r, "/normalization/std", 1, &c, std) == CNN_OK) {
        printf("normalisation: mean");
        for (size_t k = 0; k < c; k++) printf(" %.4f", mean[k]);
        printf(", std");
        for (size_t k = 0; k < c; k++) printf(" %.4f", std[k]);
        printf("\n");
    }
    cnn_error_clear();
    print_attr(r, "source", "source");
    print_attr(r, "options", "options");
    print_attr(r, "resize", "resize");
    print_attr(r, "fit", "fit");
    print_attr(r, "channels", "channels");
    if (cnn_h5r_attr_int64(r, "/", "skipped", &skipped) == CNN_OK)
        printf("skipped when packed: %lld\n", (long long)skipped);
    cnn_error_clear();
done:
    cnn_h5r_close(r);
    return st;
}

cnn_status_t cli_info(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--config", NULL};
    cli_args_t a;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        printf("usage: mpicnn info MODEL.h5|DATA.h5 [--config]\n"
               "  Prints the input shape, classes, normalisation, layers, parameter count\n"
               "  and training history of a model; --config prints its stored config.\n"
               "  For a data file (mpicnn pack): its images, classes with their counts,\n"
               "  normalisation and how it was packed.\n");
        return CNN_OK;
    }
    int show_config = cli_has(&a, "--config");
    CNN_TRY(cli_check_unused(&a));
    if (a.npos != 1) return cnn_error_set(CNN_EUSAGE, "info: expected one MODEL.h5 or DATA.h5");
    if (is_data_file(a.pos[0])) return data_info(a.pos[0]);
    cnn_config_t *cfg = malloc(sizeof *cfg);
    if (!cfg) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_model_meta_t m;
    cnn_net_t *net;
    cnn_status_t st = cli_load_model(a.pos[0], NULL, 0, 1, &m, cfg, &net);
    if (st != CNN_OK) {
        free(cfg);
        return st;
    }
    printf("model: %s\n", a.pos[0]);
    printf("input: %d x %d x %d (channels x height x width)\n", m.c, m.h, m.w);
    printf("classes: %d", m.nclasses);
    for (int k = 0; m.class_names && k < m.nclasses && k < 20; k++)
        printf("%s%s", k ? ", " : " (", m.class_names[k]);
    printf("%s\n", m.class_names ? (m.nclasses > 20 ? ", ...)" : ")") : "");
    if (m.mean) {
        printf("normalisation: mean");
        for (int c = 0; c < m.c; c++) printf(" %.4f", m.mean[c]);
        printf(", std");
        for (int c = 0; c < m.c; c++) printf(" %.4f", m.std[c]);
        printf("\n");
    }
    print_recipe(&m);
    printf("\n");
    cnn_net_print(net, stdout);
    if (m.nhistory > 0) {
        printf("\nhistory: %d epoch%s\n%5s %10s %9s %9s %8s\n", m.nhistory, m.nhistory > 1 ? "s" : "",
               "epoch", "train_loss", "train_acc", "val_acc", "lr");
        for (int i = 0; i < m.nhistory; i++) {
            const double *h = m.history + (size_t)i * CNN_HISTORY_COLS;
            printf("%5d %10.4f %9.4f %9.4f %8.3g\n", (int)h[0], h[1], h[2], h[4], h[5]);
        }
    }
    if (show_config) printf("\n%s", m.config);
    cnn_net_free(net);
    cnn_model_meta_free(&m);
    free(cfg);
    return CNN_OK;
}
