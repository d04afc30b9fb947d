/* pack.c - `mpicnn pack SOURCE --out FILE.h5 [options]`: a data set
 * converted into one HDF5 data file (pack.h, docs/data-format.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/pack.h"
#include "mpicnn/png.h"

static const char pack_usage[] =
    "usage: mpicnn pack DIR --out FILE.h5 [options]\n"
    "       mpicnn pack IMAGES.idx[.gz] --labels LABELS.idx[.gz] --out FILE.h5 [options]\n"
    "       mpicnn pack data_batch_*.bin --format cifar10|cifar100 [--coarse] --out FILE.h5\n"
    "  Converts a data set into one HDF5 data file (docs/data-format.md), the ranks\n"
    "  (mpirun -np N) decoding and writing their shares; the file does not depend on N.\n"
    "  DIR holds DIR/<class>/*.png|jpg|jpeg: classes are the sorted folder names.\n"
    "  --resize HxW          scale every image (area average when shrinking, bilinear\n"
    "                        when enlarging); without it all images must have one size\n"
    "  --fit stretch|crop    crop: centre-crop to the target's aspect first (default stretch)\n"
    "  --channels 1|3        grey or colour (default: 3 if any image has colour, else 1)\n"
    "  --on-bad skip|fail    skip (and list) bad files, or fail on the first (default fail)\n"
    "  --classes-from TRAIN.h5  number the classes as that data file does\n"
    "  --coarse              CIFAR-100: the 20 superclasses\n"
    "  --max-memory MB: stop (exit 8) when this rank's share of the decoded images\n"
    "  would need more than MB (they are held twice, decoded and as the written\n"
    "  slab); with --resize or an IDX/CIFAR source that is known, and refused,\n"
    "  before any image is decoded; default 80% of the node's limit (cgroup,\n"
    "  MemAvailable, Slurm) over the ranks on the node.\n";

/* "HxW" into h, w (1 .. CNN_PNG_MAX_SIDE each). */
static cnn_status_t parse_size(const char *s, int *h, int *w)
{
    char *end;
    long a = strtol(s, &end, 10), b = 0;
    if (end != s && (*end == 'x' || *end == 'X')) {
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t) b = 0;
    }
    if (*end || a < 1 || b < 1 || a > CNN_PNG_MAX_SIDE || b > CNN_PNG_MAX_SIDE)
        return cnn_error_set(CNN_EUSAGE, "--resize: expected HxW with 1..%d pixels a side, "
                             "e.g. 32x32, got '%s'", CNN_PNG_MAX_SIDE, s);
    *h = (int)a;
    *w = (int)b;
    return CNN_OK;
}

/* The source kind from --format and --labels. */
static cnn_status_t parse_source(cli_args_t *a, cnn_pack_opts_t *o)
{
    const char *fmt = cli_get(a, "--format");
    o->labels = cli_get(a, "--labels");
    o->coarse = cli_has(a, "--coarse");
    if (fmt && !strcmp(fmt, "cifar10")) o->source = CNN_PACK_CIFAR10;
    else if (fmt && !strcmp(fmt, "cifar100")) o->source = CNN_PACK_CIFAR100;
    else if (fmt) return cnn_error_set(CNN_EUSAGE, "--format: expected cifar10 or cifar100, got '%s'", fmt);
    else o->source = o->labels ? CNN_PACK_IDX : CNN_PACK_FOLDER;
    if (o->labels && fmt)
        return cnn_error_set(CNN_EUSAGE, "pack: --labels is for IDX input, --format for CIFAR");
    if (o->coarse && o->source != CNN_PACK_CIFAR100)
        return cnn_error_set(CNN_EUSAGE, "pack: --coarse applies to --format cifar100 only");
    return CNN_OK;
}

static cnn_status_t parse_options(cli_args_t *a, MPI_Comm comm, cnn_membudget_t *budget,
                                  cnn_pack_opts_t *o)
{
    const char *v;
    CNN_TRY(cli_max_memory(a, comm, budget));
    o->max_bytes = budget->bytes;
    o->max_why = budget->why;
    CNN_TRY(parse_source(a, o));
    CNN_TRY(cli_need(a, "--out", &o->out));
    if ((v = cli_get(a, "--resize"))) CNN_TRY(parse_size(v, &o->resize_h, &o->resize_w));
    if ((v = cli_get(a, "--fit"))) {
        if (!strcmp(v, "crop")) o->fit = CNN_PACK_CROP;
        else if (strcmp(v, "stretch"))
            return cnn_error_set(CNN_EUSAGE, "--fit: expected stretch or crop, got '%s'", v);
    }
    if ((v = cli_get(a, "--channels"))) {
        long c;
        CNN_TRY(cli_int("--channels", v, 1, 3, &c));
        if (c == 2) return cnn_error_set(CNN_EUSAGE, "--channels: expected 1 or 3, got 2");
        o->channels = (int)c;
    }
    if ((v = cli_get(a, "--on-bad"))) {
        if (!strcmp(v, "skip")) o->skip_bad = 1;
        else if (strcmp(v, "fail"))
            return cnn_error_set(CNN_EUSAGE, "--on-bad: expected skip or fail, got '%s'", v);
    }
    o->classes_from = cli_get(a, "--classes-from");
    return cli_check_unused(a);
}

/* The flags as given, but --out and --max-memory (neither changes the
 * file's data), for the file's `options` attribute. */
static char *options_text(const cli_args_t *a)
{
    size_t len = 1;
    for (int i = 0; i < a->nflags; i++)
        len += strlen(a->name[i]) + (a->value[i] ? strlen(a->value[i]) + 1 : 0) + 1;
    char *s = malloc(len), *p = s;
    if (!s) return NULL;
    *p = '\0';
    for (int i = 0; i < a->nflags; i++) {
        if (!strcmp(a->name[i], "--out") || !strcmp(a->name[i], "--max-memory")) continue;
        p += sprintf(p, "%s%s", p == s ? "" : " ", a->name[i]);
        if (a->value[i]) p += sprintf(p, " %s", a->value[i]);
    }
    return s;
}

static void print_report(const cnn_pack_opts_t *o, const cnn_pack_report_t *r, double secs)
{
    printf("packed %zu images (%d x %d x %d, channels x height x width) of %d classes into %s "
           "in %.2f s (%.0f images/s)\n", r->n, r->c, r->h, r->w, r->nclasses, o->out, secs,
           secs > 0 ? (double)r->n / secs : 0.0);
    if (r->nskipped) {
        printf("skipped %zu bad entr%s:\n", r->nskipped, r->nskipped == 1 ? "y" : "ies");
        for (const char *p = r->skipped; p && *p;) {
            size_t k = strcspn(p, "\n");
            printf("  %.*s\n", (int)k, p);
            p += k + (p[k] == '\n');
        }
    }
}

cnn_status_t cli_pack(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", "--coarse", NULL};
    cli_args_t a;
    int rank;
    cnn_pack_opts_t o = {0};
    cnn_pack_report_t rep;
    cnn_membudget_t budget;
    MPI_Comm_rank(comm, &rank);
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        if (rank == 0) fputs(pack_usage, stdout);
        return CNN_OK;
    }
    if (a.npos < 1) {
        if (rank == 0) fputs(pack_usage, stderr);
        return cnn_error_set(CNN_EUSAGE, "pack: expected a folder, an IDX file or CIFAR batches");
    }
    char *options = options_text(&a);
    if (!options) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_status_t st = parse_options(&a, comm, &budget, &o);
    o.inputs = a.pos;
    o.ninputs = a.npos;
    o.options = options;
    const double t0 = MPI_Wtime();
    if (st == CNN_OK) st = cnn_pack(comm, &o, &rep);
    if (st == CNN_OK && rank == 0) print_report(&o, &rep, MPI_Wtime() - t0);
    if (st == CNN_OK) cnn_pack_report_free(&rep);
    free(options);
    return st;
}
