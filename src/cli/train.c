/* train.c - `mpicnn train CONFIG [--set section.key=value ...] [--out DIR]
 * [--resume | --auto-resume | --force] [--lock-wait SECONDS]`. */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mpicnn/train.h"

static const char train_usage[] =
    "usage: mpicnn train CONFIG [--set section.key=value ...] [--out DIR]\n"
    "                    [--resume | --auto-resume | --force] [--lock-wait SECONDS]\n"
    "                    [--progress auto|bar|lines|none]\n"
    "  Trains the net CONFIG describes (docs/config.md), data-parallel over the\n"
    "  ranks of mpirun. Writes DIR/model.h5 (best model), DIR/checkpoint.h5\n"
    "  (latest state) and DIR/metrics.csv. DIR defaults to runs/<config name>.\n"
    "  --resume continues from DIR/checkpoint.h5; a DIR holding a run is refused\n"
    "  without it. --auto-resume continues if DIR holds a checkpoint and starts\n"
    "  afresh if not (batch jobs). --force moves an old run's files into\n"
    "  DIR/old-<time>/. One run at a time holds DIR (DIR/lock): another exits\n"
    "  with code 9 at once, or after waiting up to --lock-wait SECONDS for the\n"
    "  holder to end. DIR/status says how the run ended (docs/reliability.md).\n"
    "  SIGUSR1, SIGTERM or SIGINT checkpoint at the next step and exit with\n"
    "  code 75 (docs/slurm.md). In a SLURM job with train.threads = 0 and no\n"
    "  OMP_NUM_THREADS, the thread count is SLURM_CPUS_PER_TASK. --progress: a\n"
    "  live bar (auto: when stdout is a terminal; mpirun gives ranks a terminal\n"
    "  even when its own output goes to a file, so batch jobs should say lines),\n"
    "  a line every train.log_every steps, or epoch lines only.\n";

static void on_stop_signal(int sig)
{
    (void)sig;
    cnn_train_request_stop();
}

static char pipe_note[160]; /* made before the handler can run */
static volatile sig_atomic_t stdout_dropped;

/* SIGPIPE: if standard output is a pipe whose reader is gone (`| head`),
 * say so once and point it at /dev/null, so that the run goes on and its
 * later output goes nowhere. Only async-signal-safe calls. A SIGPIPE from
 * any other descriptor is ignored: its write returns EPIPE. */
static void on_sigpipe(int sig)
{
    (void)sig;
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
    if (stdout_dropped || poll(&p, 1, 0) != 1 || !(p.revents & POLLERR)) return;
    stdout_dropped = 1;
    const int err = errno;
    if (write(STDERR_FILENO, pipe_note, strlen(pipe_note)) < 0) {
        /* stderr is gone as well: nothing to say it with */
    }
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    errno = err;
}

void cli_install_stop_signals(void)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    snprintf(pipe_note, sizeof pipe_note,
             "mpicnn: rank %d: note: standard output was closed (broken pipe): the terminal "
             "output is dropped from here on; the run goes on\n", rank);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Under SLURM: one line on rank 0 saying where the run is, and the thread
 * count from SLURM_CPUS_PER_TASK when neither the config (train.threads =
 * 0) nor OMP_NUM_THREADS sets one. Nothing else depends on SLURM. */
static void slurm_setup(const cnn_config_t *cfg, MPI_Comm comm)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
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
    static const char *const sw[] = {"--help", "--resume", "--auto-resume", "--force", NULL};
    /* what a run leaves in DIR (refused without --resume), then what
     * --force moves aside with it */
    static const char *const outputs[] = {"checkpoint.h5", "model.h5", "metrics.csv", "plots",
                                          "status"};
    cli_args_t a;
    cli_run_args_t r;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    CNN_TRY(cli_run_args(&a, "train", train_usage, comm, &r));
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

    cnn_config_t *cfg;
    cnn_status_t st = cli_run_config(&r, &cfg);
    cli_rundir_t rd;
    if (st == CNN_OK) {
        slurm_setup(cfg, comm);
        st = cli_rundir_open(comm, &r, outputs, 3, 5, &rd);
    }
    if (st == CNN_OK) {
        cnn_train_opts_t opts = {.comm = comm, .out_dir = r.out, .resume = r.resume,
                                 .progress = (cnn_progress_t)progress};
        cnn_train_result_t res;
        st = cli_rundir_close(&rd, cnn_train(cfg, &opts, &res));
    }
    free(cfg);
    return st;
}
