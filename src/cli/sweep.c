/* sweep.c - `mpicnn sweep CONFIG [--set section.key=value ...] [--out DIR]
 * [--resume | --auto-resume | --force] [--lock-wait SECONDS] [--quiet]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/sweep.h"

static const char sweep_usage[] =
    "usage: mpicnn sweep CONFIG [--set section.key=value ...] [--out DIR]\n"
    "                    [--resume | --auto-resume | --force] [--lock-wait SECONDS]\n"
    "                    [--quiet]\n"
    "  Trains every combination of the values in the config's [sweep] section\n"
    "  (docs/sweeps.md). The ranks of mpirun form groups of sweep.ranks_per_trial;\n"
    "  each group trains one trial at a time and takes the next when it is done.\n"
    "  sweep.mode = halving trains all trials for sweep.halving_epochs, keeps the\n"
    "  best sweep.halving_keep of them and continues those, until train.epochs.\n"
    "  Writes DIR/trials/<n>/ (each trial's run), DIR/sweep.journal (one line per\n"
    "  finished trial), DIR/sweep.csv (ranked results) and DIR/best/model.h5, and\n"
    "  reports the best trial's test accuracy. DIR defaults to runs/<config name>.\n"
    "  --resume skips the journaled trials and continues the others (from their\n"
    "  checkpoints); a DIR holding a sweep is refused without it. --auto-resume\n"
    "  resumes if DIR holds a journal and starts afresh if not. --force moves an\n"
    "  old sweep's files into DIR/old-<time>/. One sweep at a time holds DIR\n"
    "  (DIR/lock): another exits with code 9 at once, or after waiting up to\n"
    "  --lock-wait SECONDS. DIR/status says how the sweep ended.\n"
    "  SIGUSR1, SIGTERM or SIGINT checkpoint the trials in flight\n"
    "  and exit with code 75. --quiet prints nothing but errors.\n";

cnn_status_t cli_sweep(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--resume", "--auto-resume", "--force", "--quiet",
                                     NULL};
    /* what a sweep leaves in DIR (refused without --resume), then what
     * --force moves aside with it */
    static const char *const outputs[] = {"sweep.journal", "sweep.csv", "sweep.ini", "trials",
                                          "best", "status"};
    cli_args_t a;
    cli_run_args_t r;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    CNN_TRY(cli_run_args(&a, "sweep", sweep_usage, comm, &r));
    if (r.help) return CNN_OK;
    const int quiet = cli_has(&a, "--quiet");
    CNN_TRY(cli_check_unused(&a));

    cnn_config_t *cfg;
    cnn_status_t st = cli_run_config(&r, &cfg);
    cli_rundir_t rd;
    if (st == CNN_OK) st = cli_rundir_open(comm, &r, outputs, 5, 6, &rd);
    if (st == CNN_OK) {
        cnn_sweep_opts_t opts = {.comm = comm, .out_dir = r.out, .resume = r.resume,
                                 .quiet = quiet};
        cnn_sweep_result_t res;
        st = cli_rundir_close(&rd, cnn_sweep_run(cfg, &opts, &res));
    }
    free(cfg);
    return st;
}
