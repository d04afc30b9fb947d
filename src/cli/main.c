/* main.c - the mpicnn program: MPI set-up, subcommand dispatch, and the
 * one place where a status becomes a message and an exit code. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"

typedef struct {
    const char *name;
    cnn_status_t (*run)(int argc, char **argv, MPI_Comm comm);
    const char *summary;
    int collective; /* 0: rank 0 does the work, other ranks wait */
} command_t;

#define CLI_ENTRY(name, summary, collective) {#name, cli_##name, summary, collective},
static const command_t commands[] = {CLI_COMMANDS(CLI_ENTRY)};
#undef CLI_ENTRY
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: mpicnn COMMAND [ARGS]   (also under mpirun -np N)\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n'mpicnn COMMAND --help' describes a command.\n"
            "\nexit codes (docs/reliability.md):\n"
            "  %3d  success\n"
            "  %3d  internal error\n"
            "  %3d  usage error (command line)\n"
            "  %3d  bad data or input file\n"
            "  %3d  bad config\n"
            "  %3d  I/O failure (disk full, read-only, permission)\n"
            "  %3d  numerical failure (NaN/Inf)\n"
            "  %3d  communication failure or timeout\n"
            "  %3d  out of memory\n"
            "  %3d  the run directory is in use by another run (DIR/lock)\n"
            "  %3d  a program it needs is missing (gnuplot for mpicnn plot)\n"
            "  %3d  checkpointed after a signal: resubmit to continue\n"
            "\ntrain and sweep write how they ended to DIR/status: running HOST PID START,\n"
            "finished, stopped-resumable, or failed CODE MESSAGE.\n",
            CNN_EXIT_OK, CNN_EXIT_INTERNAL, CNN_EXIT_USAGE, CNN_EXIT_DATA,
            CNN_EXIT_CONFIG, CNN_EXIT_IO, CNN_EXIT_NUMERIC, CNN_EXIT_COMM,
            CNN_EXIT_NOMEM, CNN_EXIT_BUSY, CNN_EXIT_UNAVAILABLE, CNN_EXIT_REQUEUE);
}

int main(int argc, char **argv)
{
    int provided, rank = 0, code = CNN_EXIT_OK;
    /* FUNNELED: only this thread calls MPI. OpenMP's threads compute, and
     * the training watchdog's thread (watchdog.h) only reads a clock and
     * writes to stderr; it ends a stalled job with _exit(), never with an
     * MPI call, so no higher (and slower) thread level is needed. */
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "mpicnn: cannot initialise MPI\n");
        return CNN_EXIT_COMM;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cnn_h5_set_rank(rank); /* HDF5 readers' warnings: rank 0 only */
    cnn_blas_single_thread();

    cnn_status_t st = CNN_OK;
    const command_t *cmd = NULL;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (rank == 0) usage(argc < 2 ? stderr : stdout);
        if (argc < 2) st = cnn_error_set(CNN_EUSAGE, "no command given");
    } else if (!strcmp(argv[1], "--version")) {
        if (rank == 0) printf("mpicnn %s\n", PACKAGE_VERSION);
    } else {
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (!strcmp(argv[1], commands[i].name)) cmd = &commands[i];
        if (!cmd) {
            st = cnn_error_set(CNN_EUSAGE, "unknown command '%s' (see mpicnn --help)", argv[1]);
        } else if (cmd->collective || rank == 0) {
            st = cmd->run(argc - 1, argv + 1, MPI_COMM_WORLD);
        }
    }
    if (st != CNN_OK) {
        if (st != CNN_EUSAGE || rank == 0)
            fprintf(stderr, "mpicnn: rank %d: %s: %s\n", rank, cnn_status_name(st),
                    cnn_error_message());
        code = cnn_status_exit_code(st);
    }
    MPI_Finalize();
    return code;
}
