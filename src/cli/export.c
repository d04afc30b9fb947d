/* export.c - `mpicnn export MODEL.h5 --out OUT.onnx [--format onnx]`:
 * writes a model as an ONNX model (docs/model-format.md, "ONNX export"),
 * which ONNX Runtime and other engines run without mpicnn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "mpicnn/onnx.h"

static const char export_usage[] =
    "usage: mpicnn export MODEL.h5 --out OUT.onnx [--format onnx]\n"
    "  Writes the model as an ONNX model (opset 13) for ONNX Runtime and other\n"
    "  engines. Its input 'input' is float32 (N, C, H, W) pixel values / 255\n"
    "  (any batch N); the model's normalisation is part of the graph; its output\n"
    "  'logits' is (N, classes), the scores before the softmax. The class names\n"
    "  are in the metadata entry 'class_names' (a JSON array). The format follows\n"
    "  the extension of --out (.onnx) unless --format names it.\n";

/* The format: --format, or the extension of out. */
static cnn_status_t export_format(const char *format, const char *out)
{
    if (format) {
        if (strcmp(format, "onnx"))
            return cnn_error_set(CNN_EUSAGE, "export: --format %s: expected onnx", format);
        return CNN_OK;
    }
    const char *dot = strrchr(out, '.');
    if (!dot || strcmp(dot, ".onnx"))
        return cnn_error_set(CNN_EUSAGE,
                             "export: cannot tell the format of '%s' from its extension "
                             "(.onnx), give --format onnx",
                             out);
    return CNN_OK;
}

cnn_status_t cli_export(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", NULL};
    cli_args_t a;
    const char *out;
    (void)comm;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        fputs(export_usage, stdout);
        return CNN_OK;
    }
    if (a.npos != 1)
        return cnn_error_set(CNN_EUSAGE, "export: expected one MODEL.h5 (see --help)");
    CNN_TRY(cli_need(&a, "--out", &out));
    const char *format = cli_get(&a, "--format");
    CNN_TRY(cli_check_unused(&a));
    CNN_TRY(export_format(format, out));

    cnn_config_t *cfg = malloc(sizeof *cfg);
    cnn_model_meta_t meta = {0};
    cnn_net_t *net = NULL;
    if (!cfg) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_status_t st = cli_load_model_within(a.pos[0], NULL, 0, 1, NULL, &meta, cfg, &net);
    if (st == CNN_OK) {
        const cnn_onnx_model_t m = {.layers = net->layers, .nlayers = net->nlayers,
                                    .input = net->input, .output = net->output,
                                    .mean = meta.mean, .std = meta.std,
                                    .class_names = meta.class_names, .nclasses = meta.nclasses,
                                    .version = PACKAGE_VERSION};
        st = cnn_onnx_export(out, &m);
    }
    if (st == CNN_OK) printf("wrote %s\n", out);
    cnn_net_free(net);
    cnn_model_meta_free(&meta);
    free(cfg);
    return st;
}
