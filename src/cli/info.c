/* info.c - `mpicnn info MODEL.h5`: what a model file holds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

cnn_status_t cli_info(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--config", NULL};
    cli_args_t a;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        printf("usage: mpicnn info MODEL.h5 [--config]\n"
               "  Prints the input shape, classes, normalisation, layers, parameter count\n"
               "  and training history of a model; --config prints its stored config.\n");
        return CNN_OK;
    }
    int show_config = cli_has(&a, "--config");
    CNN_TRY(cli_check_unused(&a));
    if (a.npos != 1) return cnn_error_set(CNN_EUSAGE, "info: expected one MODEL.h5");
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
