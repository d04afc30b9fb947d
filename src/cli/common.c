/* common.c - pieces several subcommands share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

cnn_status_t cli_load_model_within(const char *path, const char *const *sets, int nsets,
                                   int batch, const cnn_membudget_t *budget,
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
    st = cnn_net_create_within(cfg->layers, cfg->nlayers, in, cfg->train.threads, NULL, 0,
                               budget ? budget->bytes : CNN_MEM_UNLIMITED,
                               budget ? budget->why : "no budget", net);
    if (st != CNN_OK) {
        cnn_error_prefix("%s", path);
        if (st != CNN_ENOMEM) st = CNN_EDATA; /* the model file's net is broken */
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

cnn_status_t cli_load_model(const char *path, const char *const *sets, int nsets, int batch,
                            cnn_model_meta_t *meta, cnn_config_t *cfg, cnn_net_t **net)
{
    return cli_load_model_within(path, sets, nsets, batch, NULL, meta, cfg, net);
}

cnn_status_t cli_max_memory(cli_args_t *a, MPI_Comm comm, cnn_membudget_t *budget)
{
    const char *s = cli_get(a, "--max-memory");
    long mb = 0;
    if (s) CNN_TRY(cli_int("--max-memory", s, 1, 1000000000L, &mb));
    return cnn_membudget_get(comm, mb, "--max-memory", budget);
}

/* runs/<base name of config without .ini> */
static void default_out(const char *config, char *out, size_t len)
{
    const char *base = strrchr(config, '/');
    base = base ? base + 1 : config;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".ini")) n -= 4;
    snprintf(out, len, "runs/%.*s", (int)n, base);
}

cnn_status_t cli_run_args(cli_args_t *a, const char *cmd, const char *usage, int rank,
                          cli_run_args_t *r)
{
    memset(r, 0, sizeof *r);
    if (cli_has(a, "--help")) {
        if (rank == 0) fputs(usage, stdout);
        r->help = 1;
        return CNN_OK;
    }
    if (a->npos != 1) {
        if (rank == 0) fputs(usage, stderr);
        return cnn_error_set(CNN_EUSAGE, "%s: expected one CONFIG file, got %d arguments", cmd,
                             a->npos);
    }
    r->config = a->pos[0];
    r->nsets = cli_get_all(a, "--set", r->sets, CLI_MAX_FLAGS);
    r->resume = cli_has(a, "--resume");
    const char *dir = cli_get(a, "--out");
    if (dir && !*dir) return cnn_error_set(CNN_EUSAGE, "--out: the directory name is empty");
    if (dir) snprintf(r->out, sizeof r->out, "%s", dir);
    else default_out(r->config, r->out, sizeof r->out);
    return CNN_OK;
}
