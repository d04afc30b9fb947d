/* common.c - pieces several subcommands share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

cnn_status_t cli_load_model(const char *path, const char *const *sets, int nsets, int batch,
                            cnn_model_meta_t *meta, cnn_config_t *cfg, cnn_net_t **net)
{
    cnn_status_t st;
    *net = NULL;
    memset(meta, 0, sizeof *meta);
    CNN_TRY(cnn_model_load_meta(path, meta));
    if (!meta->config) {
        st = cnn_error_set(CNN_EDATA, "%s: the model has no config attribute", path);
        goto fail;
    }
    char name[CNN_PATH_MAX + 16];
    snprintf(name, sizeof name, "%s:/config", path);
    if ((st = cnn_config_parse_string(meta->config, name, sets, nsets, cfg)) != CNN_OK) goto fail;
    cnn_shape_t in = {batch > 0 ? batch : cfg->train.batch_size, meta->c, meta->h, meta->w};
    if ((st = cnn_net_create(cfg->layers, cfg->nlayers, in, cfg->train.threads, net)) != CNN_OK) {
        cnn_error_prefix("%s", path);
        st = CNN_EDATA;
        goto fail;
    }
    if ((st = cnn_model_load_weights(path, *net)) != CNN_OK) goto fail;
    return CNN_OK;
fail:
    cnn_net_free(*net);
    *net = NULL;
    cnn_model_meta_free(meta);
    return st;
}

cnn_status_t cli_create(const char *path, cnn_afile_t **af, FILE **f)
{
    *f = NULL;
    cnn_status_t st = cnn_afile_begin(path, af);
    if (st == CNN_EIO) return cnn_fs_error(path, "cannot create", errno);
    if (st != CNN_OK) return st;
    if (!(*f = cnn_afile_stream(*af))) {
        st = cnn_fs_error(path, "cannot create", errno);
        cnn_afile_abort(*af);
        *af = NULL;
    }
    return st;
}

void cli_default_out(const char *config, char *out, size_t len)
{
    const char *base = strrchr(config, '/');
    base = base ? base + 1 : config;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".ini")) n -= 4;
    snprintf(out, len, "runs/%.*s", (int)n, base);
}
