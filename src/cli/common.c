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

/* Writes to a temp file and renames it into place. */
FILE *cli_open_tmp(const char *path, char *tmp, size_t len)
{
    snprintf(tmp, len, "%s.tmp", path);
    return fopen(tmp, "w");
}

cnn_status_t cli_close_tmp(FILE *f, const char *tmp, const char *path)
{
    errno = 0;
    int bad = ferror(f);
    bad |= fflush(f) != 0;
    int err = errno;
    bad |= fclose(f) != 0;
    if (!err) err = errno;
    if (bad || rename(tmp, path) != 0) {
        if (!bad) err = errno;
        remove(tmp);
        return cnn_error_set(CNN_EIO, "%s: write failed: %s", path,
                             err == ENOSPC ? "disk full" : err ? strerror(err) : "I/O error");
    }
    return CNN_OK;
}
