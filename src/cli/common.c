/* common.c - pieces several subcommands share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    cnn_net_plan_t plan;
    /* with a budget (eval, predict): forward only, activation buffers
     * reused; without (info, plot): every layer's output kept */
    st = budget ? cnn_net_plan_infer(cfg->layers, cfg->nlayers, in, cfg->train.threads, &plan)
                : cnn_net_plan(cfg->layers, cfg->nlayers, in, cfg->train.threads, &plan);
    if (st == CNN_OK)
        st = cnn_net_plan_check(&plan, cfg->layers, NULL, 0,
                                budget ? budget->bytes : CNN_MEM_UNLIMITED,
                                budget ? budget->why : "no budget");
    if (st == CNN_OK) st = cnn_net_build(&plan, cfg->layers, net);
    cnn_net_plan_free(&plan);
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

cnn_status_t cli_dtype(cli_args_t *a, int *f64)
{
    const char *s = cli_get(a, "--dtype");
    *f64 = s && !strcmp(s, "f64");
    if (s && !*f64 && strcmp(s, "f32"))
        return cnn_error_set(CNN_EUSAGE, "--dtype: '%s' must be f32 or f64", s);
    return CNN_OK;
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

cnn_status_t cli_run_args(cli_args_t *a, const char *cmd, const char *usage, MPI_Comm comm,
                          cli_run_args_t *r)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
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
    r->force = cli_has(a, "--force");
    r->auto_resume = cli_has(a, "--auto-resume");
    if (r->force + r->resume + r->auto_resume > 1)
        return cnn_error_set(CNN_EUSAGE, "--resume, --auto-resume and --force exclude each other: "
                                         "--resume continues the run in %s, --auto-resume "
                                         "continues it if there is one, --force moves it aside",
                             r->out);
    const char *wait = cli_get(a, "--lock-wait");
    if (wait) {
        CNN_TRY(cli_float("--lock-wait", wait, &r->lock_wait));
        if (r->lock_wait < 0 || r->lock_wait > 1e7)
            return cnn_error_set(CNN_EUSAGE, "--lock-wait: %s is out of range [0, 1e7] seconds",
                                 wait);
    }
    return CNN_OK;
}

cnn_status_t cli_run_config(const cli_run_args_t *r, cnn_config_t **cfg)
{
    cli_install_stop_signals();
    *cfg = malloc(sizeof **cfg);
    if (!*cfg) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_status_t st = cnn_config_load(r->config, r->sets, r->nsets, *cfg);
    if (st != CNN_OK) {
        free(*cfg);
        *cfg = NULL;
    }
    return st;
}

/* Rank 0's part of cli_rundir_open. */
static cnn_status_t rundir_take(cli_run_args_t *r, const char *const *outputs, int noutputs,
                                int nmove, cli_rundir_t *rd)
{
    struct stat sb;
    if (r->resume && stat(r->out, &sb) != 0 && errno == ENOENT)
        return cnn_error_set(CNN_EUSAGE, "--resume: %s/%s does not exist: there is no "
                             "directory %s", r->out, outputs[0], r->out);
    if (r->resume && stat(r->out, &sb) != 0)
        return cnn_fs_error(r->out, "--resume", errno);
    if (r->resume && !S_ISDIR(sb.st_mode))
        return cnn_error_set(CNN_EUSAGE, "--resume: %s is not a directory", r->out);
    CNN_TRY(cnn_fs_mkdir_p(r->out));
    CNN_TRY(cnn_rundir_lock(r->out, r->lock_wait, &rd->lock));
    if (r->auto_resume) { /* decided under the lock: the holder may have left one */
        char path[CNN_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", r->out, outputs[0]);
        r->resume = access(path, F_OK) == 0;
    }
    char moved[CNN_PATH_MAX + 64];
    cnn_status_t st = CNN_OK;
    if (!r->resume)
        st = cnn_rundir_check_fresh(r->out, outputs, noutputs, nmove, r->force, moved,
                                    sizeof moved);
    if (st == CNN_OK && !r->resume && moved[0]) {
        printf("--force: moved the previous run's files to %s\n", moved);
        fflush(stdout);
    }
    if (st == CNN_OK) st = cnn_rundir_status_running(r->out);
    if (st != CNN_OK) {
        cnn_rundir_unlock(rd->lock);
        rd->lock = NULL;
    }
    return st;
}

cnn_status_t cli_rundir_open(MPI_Comm comm, cli_run_args_t *r, const char *const *outputs,
                             int noutputs, int nmove, cli_rundir_t *rd)
{
    cnn_status_t st = CNN_OK;
    memset(rd, 0, sizeof *rd);
    rd->comm = comm;
    rd->dir = r->out;
    MPI_Comm_rank(comm, &rd->rank);
    if (rd->rank == 0) st = rundir_take(r, outputs, noutputs, nmove, rd);
    cnn_status_t bst = cnn_dist_idle_barrier(comm);
    st = cnn_dist_agree(comm, st != CNN_OK ? st : bst);
    if (st == CNN_OK && r->auto_resume)
        CNN_MPI_CHECK(st, MPI_Bcast(&r->resume, 1, MPI_INT, 0, comm), error);
error:
    st = cnn_dist_agree(comm, st);
    if (st != CNN_OK && rd->lock) { /* another rank failed */
        cnn_rundir_unlock(rd->lock);
        rd->lock = NULL;
    }
    return st;
}

cnn_status_t cli_rundir_close(cli_rundir_t *rd, cnn_status_t st)
{
    char saved[4096]; /* as long as a status message can be (status.c) */
    snprintf(saved, sizeof saved, "%s", cnn_error_message());
    cnn_status_t wst = CNN_OK;
    if (rd->rank == 0 && rd->lock) {
        wst = cnn_rundir_status_end(rd->dir, st, saved);
        if (wst != CNN_OK && st != CNN_OK)
            fprintf(stderr, "mpicnn: rank 0: warning: %s\n", cnn_error_message());
        cnn_rundir_unlock(rd->lock);
        rd->lock = NULL;
    }
    if (st != CNN_OK) {
        cnn_error_set(st, "%s", saved);
        return st;
    }
    return cnn_dist_agree(rd->comm, wst);
}
