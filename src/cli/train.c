/* train.c - `mpicnn train CONFIG [--set section.key=value ...] [--out DIR]
 * [--resume]`. */
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/train.h"

static const char train_usage[] =
    "usage: mpicnn train CONFIG [--set section.key=value ...] [--out DIR] [--resume]\n"
    "                    [--progress auto|bar|lines|none]\n"
    "  Trains the net CONFIG describes (docs/config.md), data-parallel over the\n"
    "  ranks of mpirun. Writes DIR/model.h5 (best model), DIR/checkpoint.h5\n"
    "  (latest state) and DIR/metrics.csv. DIR defaults to runs/<config name>.\n"
    "  --resume continues from DIR/checkpoint.h5. SIGUSR1, SIGTERM or SIGINT\n"
    "  checkpoint at the next step and exit with code 75 (docs/slurm.md). In a\n"
    "  SLURM job with train.threads = 0 and no OMP_NUM_THREADS, the thread count\n"
    "  is SLURM_CPUS_PER_TASK. --progress: a live bar\n"
    "  (auto: when stdout is a terminal; mpirun gives ranks a terminal even when\n"
    "  its own output goes to a file, so batch jobs should say lines), a line\n"
    "  every train.log_every steps, or epoch lines only.\n";

static void on_stop_signal(int sig)
{
    (void)sig;
    cnn_train_request_stop();
}

void cli_install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Under SLURM: one line on rank 0 saying where the run is, and the thread
 * count from SLURM_CPUS_PER_TASK when neither the config (train.threads =
 * 0) nor OMP_NUM_THREADS sets one. Nothing else depends on SLURM. */
static void slurm_setup(const cnn_config_t *cfg, int rank)
{
    const char *job = getenv("SLURM_JOB_ID");
    const char *cpus = getenv("SLURM_CPUS_PER_TASK");
    if (cfg->train.threads == 0 && !getenv("OMP_NUM_THREADS") && cpus) {
        char *end;
        long n = strtol(cpus, &end, 10);
        if (end != cpus && *end == '\0' && n >= 1 && n <= 1024) omp_set_num_threads((int)n);
    }
    if (!job || rank != 0) return;
    const char *nodes = getenv("SLURM_JOB_NODELIST");
    const char *restarts = getenv("SLURM_RESTART_COUNT");
    printf("running on %s as job %s (restart %s)\n", nodes ? nodes : "?", job,
           restarts ? restarts : "0");
    fflush(stdout);
}

cnn_status_t cli_train(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--resume", NULL};
    cli_args_t a;
    cli_run_args_t r;
    int rank;
    MPI_Comm_rank(comm, &rank);
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    CNN_TRY(cli_run_args(&a, "train", train_usage, rank, &r));
    if (r.help) return CNN_OK;
    const char *prog = cli_get(&a, "--progress");
    CNN_TRY(cli_check_unused(&a));
    static const char *const modes[] = {"auto", "bar", "lines", "none"};
    int progress = -1;
    for (int i = 0; i < 4; i++)
        if (!prog || !strcmp(prog, modes[i])) {
            progress = i;
            break;
        }
    if (progress < 0)
        return cnn_error_set(CNN_EUSAGE, "--progress: '%s' must be auto, bar, lines or none", prog);

    /* from here on a stop signal is a request, in every phase */
    cli_install_stop_signals();
    cnn_config_t *cfg = malloc(sizeof *cfg);
    if (!cfg) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_status_t st = cnn_config_load(r.config, r.sets, r.nsets, cfg);
    if (st == CNN_OK) {
        slurm_setup(cfg, rank);
        cnn_train_opts_t opts = {.comm = comm, .out_dir = r.out, .resume = r.resume,
                                 .progress = (cnn_progress_t)progress};
        cnn_train_result_t res;
        st = cnn_train(cfg, &opts, &res);
    }
    free(cfg);
    return st;
}
