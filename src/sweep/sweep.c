/* sweep.c - grid expansion and the sweep runner.
 *
 * Who does what (docs/sweeps.md has the long version):
 *   - every rank expands the same grid and joins one group of
 *     sweep.ranks_per_trial ranks (MPI_Comm_split on rank / R);
 *   - rank 0 reads the journal between rounds, decides which trials a
 *     round runs (all of them in a grid, the survivors in successive
 *     halving, minus those already journaled) and broadcasts the list;
 *   - within a round, each group leader takes list positions from an
 *     atomic counter in a one-sided window on rank 0 (MPI_Fetch_and_op),
 *     so a group that finishes takes the next trial at once and rank 0
 *     trains like any other leader: nobody has to answer requests;
 *   - the leader appends the trial's result to the journal under an
 *     fcntl lock and fsyncs it before taking the next one;
 *   - at the end rank 0 ranks the trials, writes sweep.csv and
 *     best/model.h5, and all ranks score the best model on the test set. */
#include "mpicnn/sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mpicnn/dataprep.h"
#include "mpicnn/dist.h"
#include "mpicnn/evaluate.h"
#include "mpicnn/fs.h"
#include "mpicnn/h5io.h"
#include "mpicnn/loss.h"
#include "mpicnn/model.h"
#include "mpicnn/net.h"
#include "mpicnn/train.h"

/* ------------------------------------------------------------------ */
/* the grid                                                            */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    return s;
}

void cnn_sweep_grid_free(cnn_sweep_grid_t *g)
{
    if (!g) return;
    free(g->value);
    free(g->hash);
    free(g->text);
    free(g);
}

/* Applies the values row[0..nkeys) of the keys to cfg. */
static cnn_status_t apply_row(const cnn_sweep_grid_t *g, const char *const *row,
                              cnn_config_t *cfg)
{
    char a[CNN_SWEEP_KEY_MAX + CNN_SWEEP_VALUES_MAX + 2];
    for (int k = 0; k < g->nkeys; k++) {
        snprintf(a, sizeof a, "%s=%s", g->key[k], row[k]);
        CNN_TRY(cnn_config_set(cfg, a));
    }
    return CNN_OK;
}

static void label_row(const cnn_sweep_grid_t *g, const char *const *row, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0) return;
    buf[0] = '\0';
    if (g->nkeys == 0) snprintf(buf, len, "(base config)");
    for (int k = 0; k < g->nkeys && used < len; k++) {
        int n = snprintf(buf + used, len - used, "%s%s=%s", k ? " " : "", g->key[k], row[k]);
        if (n < 0) break;
        used += (size_t)n;
    }
}

cnn_status_t cnn_sweep_grid(const cnn_config_t *cfg, cnn_sweep_grid_t **out)
{
    cnn_status_t st = CNN_OK;
    const cnn_sweep_config_t *sw = &cfg->sweep;
    cnn_config_t *work = malloc(sizeof *work);
    cnn_sweep_grid_t *g = calloc(1, sizeof *g);
    const char **vals[CNN_MAX_SWEEP] = {0};
    int nvals[CNN_MAX_SWEEP] = {0}, idx[CNN_MAX_SWEEP] = {0};
    char label[2048];
    *out = NULL;
    if (!work || !g) goto nomem;

    /* keys and values live in one block: "key\0v1\0v2\0..." per key */
    size_t total = 1;
    for (int k = 0; k < sw->nparams; k++)
        total += strlen(sw->params[k].key) + strlen(sw->params[k].values) + 2;
    if (!(g->text = malloc(total))) goto nomem;
    char *p = g->text;
    g->nkeys = sw->nparams;
    long product = 1;
    for (int k = 0; k < sw->nparams; k++) {
        const cnn_sweep_param_t *sp = &sw->params[k];
        strcpy(p, sp->key);
        g->key[k] = p;
        p += strlen(p) + 1;
        strcpy(p, sp->values);
        char *list = p;
        p += strlen(p) + 1;
        int n = 1;
        for (const char *c = list; *c; c++) n += *c == ',';
        if (!(vals[k] = malloc(sizeof(char *) * (size_t)n))) goto nomem;
        n = 0;
        for (char *item = list;;) {
            char *comma = strchr(item, ',');
            if (comma) *comma = '\0';
            vals[k][n++] = trim(item);
            if (!comma) break;
            item = comma + 1;
        }
        nvals[k] = n;
        product *= n;
        if (product > CNN_SWEEP_MAX_POINTS) {
            st = cnn_error_set(CNN_ECONFIG,
                               "%s: [sweep] the grid has more than %d points (the product of "
                               "the value counts): sweep fewer values",
                               cfg->source, CNN_SWEEP_MAX_POINTS);
            goto fail;
        }
    }
    g->value = malloc(sizeof(char *) * (size_t)(product * g->nkeys + 1));
    g->hash = malloc(sizeof(uint64_t) * (size_t)product);
    if (!g->value || !g->hash) goto nomem;

    /* odometer: the last key turns fastest */
    for (long i = 0; i < product; i++) {
        const char **row = g->value + (size_t)g->npoints * g->nkeys;
        for (int k = 0; k < g->nkeys; k++) row[k] = vals[k][idx[k]];
        *work = *cfg;
        uint64_t h;
        st = apply_row(g, row, work);
        if (st == CNN_ENOMEM) goto fail;
        if (st == CNN_OK) {
            char *text = cnn_config_to_string(work);
            if (!text) goto nomem;
            h = cnn_config_hash(text);
            free(text);
        } else {
            /* the trial will fail with this error; keep it, named by its values */
            st = CNN_OK;
            cnn_error_clear();
            label[0] = '!';
            label_row(g, row, label + 1, sizeof label - 1);
            h = cnn_config_hash(label);
        }
        int dup = 0;
        for (int j = 0; j < g->npoints && !dup; j++) dup = g->hash[j] == h;
        if (!dup) g->hash[g->npoints++] = h;
        for (int k = g->nkeys - 1; k >= 0; k--) {
            if (++idx[k] < nvals[k]) break;
            idx[k] = 0;
        }
    }
    *out = g;
    g = NULL;
    goto done;
nomem:
    st = cnn_error_set(CNN_ENOMEM, "out of memory expanding the sweep grid");
fail:
    cnn_sweep_grid_free(g);
done:
    for (int k = 0; k < CNN_MAX_SWEEP; k++) free(vals[k]);
    free(work);
    return st;
}

cnn_status_t cnn_sweep_point_config(const cnn_sweep_grid_t *g, int p, cnn_config_t *cfg)
{
    if (p < 0 || p >= g->npoints)
        return cnn_error_set(CNN_EINTERNAL, "sweep point %d of %d", p, g->npoints);
    return apply_row(g, g->value + (size_t)p * g->nkeys, cfg);
}

void cnn_sweep_point_label(const cnn_sweep_grid_t *g, int p, char *buf, size_t len)
{
    if (p < 0 || p >= g->npoints) {
        if (len) snprintf(buf, len, "?");
        return;
    }
    label_row(g, g->value + (size_t)p * g->nkeys, buf, len);
}

/* ------------------------------------------------------------------ */
/* files                                                               */

#define REASON_MAX 480
#define JOURNAL_NAME "sweep.journal"

static cnn_status_t io_error(const char *path, const char *what, int err)
{
    return cnn_error_set(CNN_EIO, "%s: %s: %s", path, what,
                         err == ENOSPC ? "disk full" : strerror(err));
}

static cnn_status_t make_dir(const char *dir)
{
    char buf[CNN_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return io_error(buf, "cannot create directory", errno);
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return io_error(buf, "cannot create directory", errno);
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cnn_error_set(CNN_EIO, "%s: not a directory", buf);
    return CNN_OK;
}

/* Makes a rename or a new file in dir durable. */
static cnn_status_t fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return io_error(dir, "cannot open directory", errno);
    int rc = fsync(fd), err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) return io_error(dir, "fsync of the directory", err);
    return CNN_OK;
}

/* Writes all of buf to fd. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Closes a temp file written through f, fsyncs it and renames it over
 * path; then fsyncs dir. Removes tmp on failure. */
static cnn_status_t commit_tmp(FILE *f, const char *tmp, const char *path, const char *dir)
{
    int bad = ferror(f);
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    int err = errno;
    bad |= fclose(f) != 0;
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        remove(tmp);
        return io_error(path, "write failed", err);
    }
    return fsync_dir(dir);
}

/* The temp file for dir/base, as h5io names them (`<dir>/.<base>.tmp.<pid>`)
 * so that cnn_h5_clean_stale() finds what a crash leaves. */
static void tmp_name(char *buf, size_t len, const char *dir, const char *base)
{
    snprintf(buf, len, "%s/.%s.tmp.%ld", dir, base, (long)getpid());
}

/* Copies src to dir/base atomically (temp file, fsync, rename, fsync of
 * the directory). */
static cnn_status_t copy_atomic(const char *src, const char *dir, const char *base)
{
    char tmp[CNN_PATH_MAX + 96], dst[CNN_PATH_MAX + 64];
    snprintf(dst, sizeof dst, "%s/%s", dir, base);
    cnn_afile_clean_stale(dst, NULL);
    tmp_name(tmp, sizeof tmp, dir, base);
    FILE *in = fopen(src, "rb");
    if (!in) return io_error(src, "cannot open", errno);
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        int err = errno;
        fclose(in);
        return io_error(tmp, "cannot create", err);
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) break;
    int bad_in = ferror(in);
    fclose(in);
    if (bad_in) {
        fclose(out);
        remove(tmp);
        return cnn_error_set(CNN_EIO, "%s: read failed", src);
    }
    return commit_tmp(out, tmp, dst, dir);
}

/* ------------------------------------------------------------------ */
/* the journal                                                         */

/* One finished trial run (a trial in one round). */
typedef struct {
    int trial, round;
    uint64_t point;       /* the grid's hash of the trial, to catch a changed grid */
    int ok;
    int code;             /* cnn_status_t of a failure, 0 if ok */
    double val_acc, val_loss;
    int best_epoch, epochs_run, stopped_early;
    double seconds;       /* wall time of the run */
    int group, ranks;
    char reason[REASON_MAX];
} record_t;

typedef struct {
    record_t *rec;
    int n, cap;
} journal_t;

static const char *const jfields[] = {"trial", "round", "point", "status", "code", "val_acc",
                                      "val_loss", "best_epoch", "epochs", "stopped_early",
                                      "seconds", "group", "ranks", "reason"};
#define NJFIELDS ((int)(sizeof jfields / sizeof jfields[0]))

static void journal_header(char *buf, size_t len, int ntrials, uint64_t grid_hash)
{
    snprintf(buf, len, "# mpicnn sweep journal v1\ttrials=%d\tgrid=%016llx\n", ntrials,
             (unsigned long long)grid_hash);
}

/* The journal line of rec (tabs and newlines in the reason made spaces). */
static void journal_line(const record_t *rec, char *buf, size_t len)
{
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "%s", rec->reason);
    for (char *c = reason; *c; c++)
        if (*c == '\t' || *c == '\n' || *c == '\r') *c = ' ';
    snprintf(buf, len,
             "trial=%d\tround=%d\tpoint=%016llx\tstatus=%s\tcode=%d\tval_acc=%.6f\t"
             "val_loss=%.6f\tbest_epoch=%d\tepochs=%d\tstopped_early=%d\tseconds=%.3f\t"
             "group=%d\tranks=%d\treason=%s\n",
             rec->trial, rec->round, (unsigned long long)rec->point, rec->ok ? "ok" : "failed",
             rec->code, rec->val_acc, rec->val_loss, rec->best_epoch, rec->epochs_run,
             rec->stopped_early, rec->seconds, rec->group, rec->ranks, reason);
}

/* Appends one line: O_APPEND, under an exclusive fcntl lock so that
 * leaders on different hosts of a network file system do not interleave,
 * then fsync. */
static cnn_status_t journal_append(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0) return io_error(path, "cannot open the journal", errno);
    struct flock lk;
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    int rc;
    while ((rc = fcntl(fd, F_SETLKW, &lk)) != 0 && errno == EINTR) continue;
    /* a file system without locks (ENOLCK) still has atomic O_APPEND locally */
    cnn_status_t st = CNN_OK;
    if (write_all(fd, line, strlen(line)) != 0)
        st = io_error(path, "cannot append to the journal", errno);
    else if (fsync(fd) != 0) st = io_error(path, "fsync of the journal", errno);
    if (rc == 0) {
        lk.l_type = F_UNLCK;
        fcntl(fd, F_SETLK, &lk);
    }
    if (close(fd) != 0 && st == CNN_OK) st = io_error(path, "cannot close the journal", errno);
    return st;
}

static cnn_status_t parse_field(const char *path, int line, const char *name, const char *v,
                                record_t *r)
{
    char *end = NULL;
    errno = 0;
    if (!strcmp(name, "status")) {
        if (strcmp(v, "ok") && strcmp(v, "failed")) goto bad;
        r->ok = !strcmp(v, "ok");
        return CNN_OK;
    }
    if (!strcmp(name, "reason")) {
        snprintf(r->reason, sizeof r->reason, "%s", v);
        return CNN_OK;
    }
    if (!strcmp(name, "point")) {
        r->point = strtoull(v, &end, 16);
    } else if (!strcmp(name, "val_acc") || !strcmp(name, "val_loss") || !strcmp(name, "seconds")) {
        double d = strtod(v, &end);
        if (!strcmp(name, "val_acc")) r->val_acc = d;
        else if (!strcmp(name, "val_loss")) r->val_loss = d;
        else r->seconds = d;
    } else {
        long x = strtol(v, &end, 10);
        if (x < -1000000000L || x > 1000000000L) goto bad;
        int *dst = !strcmp(name, "trial")        ? &r->trial
                   : !strcmp(name, "round")      ? &r->round
                   : !strcmp(name, "code")       ? &r->code
                   : !strcmp(name, "best_epoch") ? &r->best_epoch
                   : !strcmp(name, "epochs")     ? &r->epochs_run
                   : !strcmp(name, "group")      ? &r->group
                   : !strcmp(name, "ranks")      ? &r->ranks
                                                 : &r->stopped_early;
        *dst = (int)x;
    }
    if (end == v || *end || errno == ERANGE) goto bad;
    return CNN_OK;
bad:
    return cnn_error_set(CNN_EDATA, "%s:%d: bad %s '%s'", path, line, name, v);
}

/* Reads the journal (rank 0). A last line without its newline (a write
 * cut short by a crash) is dropped and, if `repair`, cut off the file so
 * that the next append starts a fresh line. Every record must name a
 * trial of the grid with the grid's hash. */
static cnn_status_t journal_read(const char *path, const char *header, const uint64_t *hashes,
                                 int ntrials, int repair, journal_t *j)
{
    cnn_status_t st = CNN_OK;
    char *buf = NULL;
    j->n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return io_error(path, "cannot open the journal", errno);
    size_t cap = 1 << 16, len = 0, n;
    if (!(buf = malloc(cap + 1))) goto nomem;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) goto nomem;
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        st = cnn_error_set(CNN_EIO, "%s: read failed", path);
        goto done;
    }
    buf[len] = '\0';
    size_t whole = len;
    while (whole > 0 && buf[whole - 1] != '\n') whole--;
    if (whole < len && repair && truncate(path, (off_t)whole) != 0) {
        st = io_error(path, "cannot cut the unfinished last line", errno);
        goto done;
    }
    buf[whole] = '\0';
    size_t hl = strlen(header);
    if (whole < hl || strncmp(buf, header, hl) != 0) {
        st = cnn_error_set(CNN_EUSAGE,
                           "%s was written by a different sweep (another config, --set, grid "
                           "or number of trials): resume with the same config, or choose "
                           "another --out", path);
        goto done;
    }
    int lineno = 1;
    for (char *line = buf + hl; *line; lineno++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        if (j->n == j->cap) {
            int nc = j->cap ? 2 * j->cap : 64;
            record_t *nr = realloc(j->rec, sizeof(record_t) * (size_t)nc);
            if (!nr) goto nomem;
            j->rec = nr;
            j->cap = nc;
        }
        record_t *r = &j->rec[j->n];
        memset(r, 0, sizeof *r);
        char *field = line;
        for (int i = 0; i < NJFIELDS; i++) {
            char *tab = i < NJFIELDS - 1 ? strchr(field, '\t') : NULL;
            if (tab) *tab = '\0';
            size_t nl_ = strlen(jfields[i]);
            if (strncmp(field, jfields[i], nl_) || field[nl_] != '=' ||
                (!tab && i < NJFIELDS - 1)) {
                st = cnn_error_set(CNN_EDATA, "%s:%d: expected the field '%s='", path, lineno + 1,
                                   jfields[i]);
                goto done;
            }
            if ((st = parse_field(path, lineno + 1, jfields[i], field + nl_ + 1, r)) != CNN_OK)
                goto done;
            if (tab) field = tab + 1;
        }
        if (r->trial < 0 || r->trial >= ntrials || r->round < 0 || r->point != hashes[r->trial]) {
            st = cnn_error_set(CNN_EUSAGE,
                               "%s:%d: trial %d is not this grid's trial %d: the config changed "
                               "since the journal was written; choose another --out",
                               path, lineno + 1, r->trial, r->trial);
            goto done;
        }
        j->n++;
        line = nl + 1;
    }
    goto done;
nomem:
    st = cnn_error_set(CNN_ENOMEM, "out of memory reading %s", path);
done:
    free(buf);
    fclose(f);
    return st;
}

/* ------------------------------------------------------------------ */
/* rounds                                                              */

typedef struct {
    const cnn_config_t *cfg;
    const cnn_sweep_opts_t *opts;
    MPI_Comm comm, group;     /* group: MPI_COMM_NULL on a rank without one */
    int rank, size, grank, gid, ngroups, R;
    cnn_sweep_grid_t *grid;
    int n;                    /* trials */
    int nrounds;
    cnn_data_t data;
    int have_data;            /* data loaded once; 0 when data.* keys are swept */
    cnn_config_t *tcfg;       /* scratch: the trial's config */
    char dir[CNN_PATH_MAX], journal[CNN_PATH_MAX + 32], header[128];
    uint64_t grid_hash;
    journal_t j;              /* rank 0 */
    /* rank 0's plan, recomputed from the journal (see plan()) */
    int *member;              /* (n) 1: in the current round */
    int *reached;             /* (n) the last round the trial took part in */
    const record_t **last;    /* (n) its latest record, or NULL */
    double *seconds;          /* (n) summed over its records */
    int *order;               /* (n) scratch */
    int *pending;             /* (n) the trials a round runs */
    int nrun, nskipped;
} sweep_t;

static int round_target(const sweep_t *s, int r)
{
    const int E = s->cfg->train.epochs;
    if (s->cfg->sweep.mode != CNN_SWEEP_HALVING) return E;
    long t = (long)(r + 1) * s->cfg->sweep.halving_epochs;
    return t < E ? (int)t : E;
}

/* Sort key of a trial: later rounds first, then succeeded, higher
 * val_acc (NaN last), lower index. */
typedef struct {
    int reached, ok;
    double val;
    int trial;
} rank_key_t;

static int cmp_keys(const void *pa, const void *pb)
{
    const rank_key_t *a = pa, *b = pb;
    if (a->reached != b->reached) return b->reached - a->reached;
    if (a->ok != b->ok) return b->ok - a->ok;
    if (a->val != b->val) return a->val > b->val ? -1 : 1;
    return a->trial - b->trial;
}

/* Sorts idx[0..n) best first. */
static cnn_status_t rank_trials(const sweep_t *s, int *idx, int n)
{
    rank_key_t *k = malloc(sizeof *k * (size_t)(n + 1));
    if (!k) return cnn_error_set(CNN_ENOMEM, "out of memory ranking the trials");
    for (int i = 0; i < n; i++) {
        const record_t *r = s->last[idx[i]];
        k[i].reached = s->reached[idx[i]];
        k[i].ok = r && r->ok;
        k[i].val = k[i].ok && !isnan(r->val_acc) ? r->val_acc : -1.0;
        k[i].trial = idx[i];
    }
    qsort(k, (size_t)n, sizeof *k, cmp_keys);
    for (int i = 0; i < n; i++) idx[i] = k[i].trial;
    free(k);
    return CNN_OK;
}

/* From the journal alone: who takes part in round r (member), each
 * trial's latest record up to round r (last), the last round it took
 * part in (reached) and its time so far. Round 0 has every trial; round
 * q+1 the best ceil(|round q| * halving_keep) of round q that succeeded. */
static cnn_status_t plan(sweep_t *s, int r)
{
    for (int t = 0; t < s->n; t++) {
        s->member[t] = 1;
        s->reached[t] = 0;
        s->last[t] = NULL;
        s->seconds[t] = 0.0;
    }
    for (int i = 0; i < s->j.n; i++)
        if (s->j.rec[i].round <= r) s->seconds[s->j.rec[i].trial] += s->j.rec[i].seconds;
    for (int q = 0;; q++) {
        for (int i = 0; i < s->j.n; i++) {
            const record_t *rec = &s->j.rec[i];
            if (rec->round == q && s->member[rec->trial]) s->last[rec->trial] = rec;
        }
        if (q == r) break;
        int m = 0;
        for (int t = 0; t < s->n; t++)
            if (s->member[t]) s->order[m++] = t;
        CNN_TRY(rank_trials(s, s->order, m));
        int keep = (int)ceil(m * s->cfg->sweep.halving_keep - 1e-9);
        if (keep < 1) keep = 1;
        for (int t = 0; t < s->n; t++) s->member[t] = 0;
        for (int i = 0; i < keep && i < m; i++) {
            const int t = s->order[i];
            if (s->last[t] && s->last[t]->ok) {
                s->member[t] = 1;
                s->reached[t] = q + 1;
            }
        }
    }
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* one trial                                                           */

static int trial_failure_is_fatal(cnn_status_t st)
{
    /* the trial's own fault goes in the journal; the machine's ends the sweep */
    return st == CNN_EIO || st == CNN_ECOMM || st == CNN_EINTERNAL || st == CNN_ESTOPPED;
}

/* Trains trial t for round r on the group. Returns a fatal status only;
 * a failed trial is journaled as failed. */
static cnn_status_t run_trial(sweep_t *s, int t, int r, int resume)
{
    const int target = round_target(s, r);
    char dir[CNN_PATH_MAX + 32], tag[48], label[1024];
    snprintf(dir, sizeof dir, "%s/trials/%d", s->dir, t);
    snprintf(tag, sizeof tag, "trial %d: ", t);
    cnn_train_result_t res;
    memset(&res, 0, sizeof res);
    res.val_acc = res.val_loss = NAN;

    *s->tcfg = *s->cfg;
    cnn_status_t st = cnn_sweep_point_config(s->grid, t, s->tcfg);
    if (st == CNN_OK && target != s->cfg->train.epochs) {
        char a[64];
        snprintf(a, sizeof a, "train.epochs=%d", target);
        st = cnn_config_set(s->tcfg, a);
    }
    if (st != CNN_OK) cnn_error_prefix("trial %d", t);
    st = cnn_dist_agree(s->group, st);
    const double t0 = MPI_Wtime();
    if (st == CNN_OK) {
        cnn_train_opts_t o = {.comm = s->group, .out_dir = dir, .resume = resume, .quiet = 1,
                              .progress = CNN_PROGRESS_NONE,
                              .data = s->have_data ? &s->data : NULL, .tag = tag,
                              .skip_test = 1};
        st = cnn_train(s->tcfg, &o, &res);
    }
    const double secs = MPI_Wtime() - t0;
    if (trial_failure_is_fatal(st)) return st;
    if (s->grank != 0) return CNN_OK;

    record_t rec;
    memset(&rec, 0, sizeof rec);
    rec.trial = t;
    rec.round = r;
    rec.point = s->grid->hash[t];
    rec.ok = st == CNN_OK;
    rec.code = (int)st;
    rec.val_acc = res.val_acc;
    rec.val_loss = res.val_loss;
    rec.best_epoch = res.best_epoch;
    rec.epochs_run = res.epochs_run;
    rec.stopped_early = res.stopped_early;
    rec.seconds = secs;
    rec.group = s->gid;
    rec.ranks = s->R;
    if (st != CNN_OK)
        snprintf(rec.reason, sizeof rec.reason, "%s: %s", cnn_status_name(st), cnn_error_message());
    char line[REASON_MAX + 512];
    journal_line(&rec, line, sizeof line);
    cnn_status_t jst = journal_append(s->journal, line);
    if (!s->opts->quiet) {
        char round[48] = "";
        if (s->nrounds > 1)
            snprintf(round, sizeof round, "round %d/%d, ", r + 1, s->nrounds);
        cnn_sweep_point_label(s->grid, t, label, sizeof label);
        if (rec.ok)
            printf("%strial %d/%d [%s] val %.4f (epoch %d of %d) %.1f s on %d rank%s (group %d)\n",
                   round, t, s->n, label, rec.val_acc, rec.best_epoch, rec.epochs_run, secs,
                   s->R, s->R > 1 ? "s" : "", s->gid);
        else
            printf("%strial %d/%d [%s] FAILED after %.1f s (group %d): %s\n", round, t, s->n,
                   label, secs, s->gid, rec.reason);
        fflush(stdout);
    }
    return jst;
}

/* A barrier that sleeps instead of spinning: a group that runs out of
 * trials waits here for the others, possibly for as long as a trial, and
 * should leave its cores to them (or to whoever shares the node). */
static cnn_status_t idle_barrier(MPI_Comm comm)
{
    cnn_status_t st = CNN_OK;
    MPI_Request req = MPI_REQUEST_NULL;
    int done = 0;
    CNN_MPI_CHECK(st, MPI_Ibarrier(comm, &req), error);
    for (;;) {
        CNN_MPI_CHECK(st, MPI_Test(&req, &done, MPI_STATUS_IGNORE), error);
        if (done) break;
        const struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
error:
    return st;
}

/* Runs the trials pending[0..npending) of round r: leaders draw list
 * positions from a counter on rank 0 until the list is used up. */
static cnn_status_t run_round(sweep_t *s, int r, int npending)
{
    cnn_status_t st = CNN_OK, local = CNN_OK;
    MPI_Win win = MPI_WIN_NULL;
    int64_t *counter = NULL;
    CNN_MPI_CHECK(st, MPI_Win_allocate(s->rank == 0 ? (MPI_Aint)sizeof(int64_t) : 0,
                                       (int)sizeof(int64_t), MPI_INFO_NULL, s->comm, &counter,
                                       &win), error);
    CNN_MPI_CHECK(st, MPI_Win_set_errhandler(win, MPI_ERRORS_RETURN), error);
    if (s->rank == 0) {
        CNN_MPI_CHECK(st, MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win), error);
        *counter = 0;
        CNN_MPI_CHECK(st, MPI_Win_unlock(0, win), error);
    }
    CNN_MPI_CHECK(st, MPI_Barrier(s->comm), error);

    while (s->group != MPI_COMM_NULL) {
        int msg[2] = {-1, 0}; /* trial, resume from its checkpoint */
        if (s->grank == 0 && local == CNN_OK && !cnn_train_stop_requested()) {
            const int64_t one = 1;
            int64_t pos = 0;
            CNN_MPI_CHECK(local, MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win), next);
            CNN_MPI_CHECK(local, MPI_Fetch_and_op(&one, &pos, MPI_INT64_T, 0, 0, MPI_SUM, win),
                          next);
            CNN_MPI_CHECK(local, MPI_Win_unlock(0, win), next);
            if (pos < npending) {
                char ck[CNN_PATH_MAX + 64];
                msg[0] = s->pending[pos];
                snprintf(ck, sizeof ck, "%s/trials/%d/checkpoint.h5", s->dir, msg[0]);
                msg[1] = access(ck, F_OK) == 0;
            }
        }
    next:
        CNN_MPI_CHECK(local, MPI_Bcast(msg, 2, MPI_INT, 0, s->group), done);
        if (msg[0] < 0) break;
        if (local == CNN_OK) local = run_trial(s, msg[0], r, msg[1]);
        if (local == CNN_OK && s->grank == 0) s->nrun++;
    }
done:
    /* every rank gets here, failed or not, so the barrier always matches */
    st = idle_barrier(s->comm);
    if (local != CNN_OK) st = local;
error:
    if (win != MPI_WIN_NULL) {
        cnn_status_t fst = CNN_OK;
        CNN_MPI_CHECK(fst, MPI_Win_free(&win), freed);
    freed:
        if (st == CNN_OK) st = fst;
    }
    return cnn_dist_agree(s->comm, st);
}

/* ------------------------------------------------------------------ */
/* results                                                             */

/* A CSV field, quoted when it needs to be. */
static void csv_field(FILE *f, const char *v)
{
    if (!strpbrk(v, ",\"\n\r")) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (; *v; v++) {
        if (*v == '"') fputc('"', f);
        fputc(*v, f);
    }
    fputc('"', f);
}

/* sweep.csv: one row per trial, in ranked order (rank 0). */
static cnn_status_t write_csv(const sweep_t *s, const int *order)
{
    char path[CNN_PATH_MAX + 32], tmp[CNN_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/sweep.csv", s->dir);
    cnn_afile_clean_stale(path, NULL);
    tmp_name(tmp, sizeof tmp, s->dir, "sweep.csv");
    FILE *f = fopen(tmp, "w");
    if (!f) return io_error(tmp, "cannot create", errno);
    fprintf(f, "rank,trial");
    for (int k = 0; k < s->grid->nkeys; k++) {
        fputc(',', f);
        csv_field(f, s->grid->key[k]);
    }
    fprintf(f, ",status,val_acc,best_epoch,epochs_run,seconds,ranks,group,rounds,reason\n");
    for (int i = 0; i < s->n; i++) {
        const int t = order[i];
        const record_t *rec = s->last[t];
        fprintf(f, "%d,%d", i + 1, t);
        for (int k = 0; k < s->grid->nkeys; k++) {
            fputc(',', f);
            csv_field(f, s->grid->value[(size_t)t * s->grid->nkeys + k]);
        }
        if (!rec) {
            fprintf(f, ",not run,,,,,,,0,\n");
            continue;
        }
        fprintf(f, ",%s,", rec->ok ? "ok" : "failed");
        if (rec->ok && !isnan(rec->val_acc)) fprintf(f, "%.6f", rec->val_acc);
        fprintf(f, ",%d,%d,%.3f,%d,%d,%d,", rec->best_epoch, rec->epochs_run, s->seconds[t],
                rec->ranks, rec->group, s->reached[t] + 1);
        csv_field(f, rec->reason);
        fputc('\n', f);
    }
    return commit_tmp(f, tmp, path, s->dir);
}

/* The ranked table on the terminal (rank 0). */
static void print_table(const sweep_t *s, const int *order)
{
    const cnn_sweep_grid_t *g = s->grid;
    int w[CNN_MAX_SWEEP];
    for (int k = 0; k < g->nkeys; k++) {
        w[k] = (int)strlen(g->key[k]);
        for (int t = 0; t < s->n; t++) {
            const int l = (int)strlen(g->value[(size_t)t * g->nkeys + k]);
            if (l > w[k]) w[k] = l;
        }
        if (w[k] > 28) w[k] = 28;
    }
    printf("\n%4s %5s", "rank", "trial");
    for (int k = 0; k < g->nkeys; k++) printf("  %-*.*s", w[k], w[k], g->key[k]);
    printf("  %-7s %7s %5s %6s %8s %5s\n", "status", "val_acc", "best", "epochs", "seconds",
           "group");
    for (int i = 0; i < s->n; i++) {
        const int t = order[i];
        const record_t *rec = s->last[t];
        printf("%4d %5d", i + 1, t);
        for (int k = 0; k < g->nkeys; k++)
            printf("  %-*.*s", w[k], w[k], g->value[(size_t)t * g->nkeys + k]);
        if (!rec) {
            printf("  not run\n");
            continue;
        }
        if (rec->ok)
            printf("  %-7s %7.4f %5d %6d %8.1f %5d\n", "ok", rec->val_acc, rec->best_epoch,
                   rec->epochs_run, s->seconds[t], rec->group);
        else
            printf("  %-7s %7s %5s %6d %8.1f %5d  %.100s\n", "failed", "-", "-", rec->epochs_run,
                   s->seconds[t], rec->group, rec->reason);
    }
}

/* The best trial's model on the test set, on every rank of comm. */
static cnn_status_t score_best(sweep_t *s, int best, cnn_sweep_result_t *res)
{
    char path[CNN_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/trials/%d/model.h5", s->dir, best);
    cnn_model_meta_t meta;
    memset(&meta, 0, sizeof meta);
    cnn_data_t own;
    memset(&own, 0, sizeof own);
    cnn_net_t *net = NULL;
    cnn_config_t *mcfg = malloc(sizeof *mcfg);
    const cnn_dataset_t *test = NULL;
    cnn_status_t st = mcfg ? CNN_OK : cnn_error_set(CNN_ENOMEM, "out of memory");
    if (st == CNN_OK) st = cnn_model_load_meta(path, &meta);
    if (st == CNN_OK && !meta.config)
        st = cnn_error_set(CNN_EDATA, "%s: the model has no config attribute", path);
    if (st == CNN_OK) st = cnn_config_parse_string(meta.config, path, NULL, 0, mcfg);
    if (st == CNN_OK) {
        const cnn_shape_t in = {mcfg->train.batch_size, meta.c, meta.h, meta.w};
        st = cnn_net_create(mcfg->layers, mcfg->nlayers, in, mcfg->train.threads, &net);
    }
    if (st == CNN_OK) st = cnn_model_load_weights(path, net);
    if (st == CNN_OK && s->have_data) test = s->data.test;
    else if (st == CNN_OK && (st = cnn_data_prepare(mcfg, 0, &own)) == CNN_OK) test = own.test;
    if ((st = cnn_dist_agree(s->comm, st)) != CNN_OK || !test) goto done;
    const cnn_loss_t *loss = mcfg->train.loss == CNN_LOSS_HINGE ? &cnn_loss_hinge
                                                                 : &cnn_loss_softmax_ce;
    cnn_eval_t ev;
    st = cnn_evaluate(s->comm, net, test, meta.mean, meta.std, loss, 0, NULL, &ev);
    if (st == CNN_OK) {
        res->test_acc = ev.acc;
        res->test_correct = ev.correct;
        res->test_total = ev.total;
    }
done:
    cnn_net_free(net);
    cnn_data_free(&own);
    cnn_model_meta_free(&meta);
    free(mcfg);
    return st;
}

/* ------------------------------------------------------------------ */
/* set-up                                                              */

/* Rank 0: the sweep directory and the journal (new, or checked for
 * --resume). */
static cnn_status_t open_journal(sweep_t *s)
{
    CNN_TRY(make_dir(s->dir));
    const int exists = access(s->journal, F_OK) == 0;
    if (exists && !s->opts->resume)
        return cnn_error_set(CNN_EUSAGE,
                             "%s already holds a sweep (%s): add --resume to continue it, or "
                             "choose another --out", s->dir, JOURNAL_NAME);
    if (!exists && s->opts->resume)
        return cnn_error_set(CNN_EUSAGE, "--resume: %s does not exist", s->journal);
    if (exists)
        return journal_read(s->journal, s->header, s->grid->hash, s->n, 1, &s->j);
    int fd = open(s->journal, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0) return io_error(s->journal, "cannot create", errno);
    cnn_status_t st = CNN_OK;
    if (write_all(fd, s->header, strlen(s->header)) != 0 || fsync(fd) != 0)
        st = io_error(s->journal, "write failed", errno);
    if (close(fd) != 0 && st == CNN_OK) st = io_error(s->journal, "write failed", errno);
    if (st == CNN_OK) st = fsync_dir(s->dir);
    return st;
}

static void print_intro(const sweep_t *s)
{
    const cnn_sweep_grid_t *g = s->grid;
    printf("sweep %s: %d trial%s", s->cfg->source, s->n, s->n == 1 ? "" : "s");
    if (g->nkeys) {
        printf(" (");
        for (int k = 0; k < g->nkeys; k++) printf("%s%s", k ? " x " : "", g->key[k]);
        printf(")");
    }
    printf("; %d group%s of %d rank%s; writing %s\n", s->ngroups, s->ngroups == 1 ? "" : "s",
           s->R, s->R == 1 ? "" : "s", s->dir);
    if (s->ngroups * s->R < s->size)
        printf("warning: sweep.ranks_per_trial = %d does not divide %d ranks: rank%s %d..%d "
               "idle\n", s->R, s->size, s->size - s->ngroups * s->R > 1 ? "s" : "",
               s->ngroups * s->R, s->size - 1);
    if (s->nrounds > 1) {
        printf("successive halving: %d rounds, keeping %.3g of the trials after each:",
               s->nrounds, s->cfg->sweep.halving_keep);
        int m = s->n;
        for (int r = 0; r < s->nrounds; r++) {
            printf("%s %d to %d epoch%s", r ? "," : "", m, round_target(s, r),
                   round_target(s, r) == 1 ? "" : "s");
            int keep = (int)ceil(m * s->cfg->sweep.halving_keep - 1e-9);
            m = keep < 1 ? 1 : keep;
        }
        printf("\n");
    }
    if (s->cfg->data.validation <= 0)
        printf("warning: no validation split (data.validation = 0): trials cannot be "
               "ranked by validation accuracy\n");
    fflush(stdout);
}

static void sweep_free(sweep_t *s)
{
    cnn_sweep_grid_free(s->grid);
    cnn_data_free(&s->data);
    free(s->tcfg);
    free(s->j.rec);
    free(s->member);
    free(s->reached);
    free(s->last);
    free(s->seconds);
    free(s->order);
    free(s->pending);
}

/* ------------------------------------------------------------------ */

/* The grid, the groups, the journal and the data; collective. */
static cnn_status_t sweep_setup(sweep_t *s)
{
    const cnn_config_t *cfg = s->cfg;
    cnn_status_t st = CNN_OK;
    CNN_TRY(cnn_dist_prepare(s->comm));
    CNN_MPI_CHECK(st, MPI_Comm_rank(s->comm, &s->rank), error);
    CNN_MPI_CHECK(st, MPI_Comm_size(s->comm, &s->size), error);
    snprintf(s->dir, sizeof s->dir, "%s", s->opts->out_dir);
    snprintf(s->journal, sizeof s->journal, "%s/%s", s->dir, JOURNAL_NAME);

    /* the grid, the same on every rank */
    st = cnn_sweep_grid(cfg, &s->grid);
    if (st == CNN_OK) {
        const size_t n = (size_t)s->grid->npoints;
        s->n = (int)n;
        s->tcfg = malloc(sizeof *s->tcfg);
        s->member = malloc(sizeof(int) * n);
        s->reached = malloc(sizeof(int) * n);
        s->last = malloc(sizeof(record_t *) * n);
        s->seconds = malloc(sizeof(double) * n);
        s->order = malloc(sizeof(int) * n);
        s->pending = malloc(sizeof(int) * n);
        if (!s->tcfg || !s->member || !s->reached || !s->last || !s->seconds || !s->order ||
            !s->pending)
            st = cnn_error_set(CNN_ENOMEM, "out of memory setting up the sweep");
    }
    s->R = cfg->sweep.ranks_per_trial;
    if (st == CNN_OK && s->R > s->size)
        st = cnn_error_set(CNN_ECONFIG,
                           "%s: sweep.ranks_per_trial = %d needs at least %d ranks; this run "
                           "has %d", cfg->source, s->R, s->R, s->size);
    CNN_TRY(cnn_dist_agree(s->comm, st));
    s->ngroups = s->size / s->R;
    s->nrounds = 1;
    if (cfg->sweep.mode == CNN_SWEEP_HALVING)
        s->nrounds =
            (cfg->train.epochs + cfg->sweep.halving_epochs - 1) / cfg->sweep.halving_epochs;
    uint64_t h = 14695981039346656037ULL;
    for (int t = 0; t < s->n; t++)
        for (int b = 0; b < 64; b += 8)
            h = (h ^ ((s->grid->hash[t] >> b) & 0xff)) * 1099511628211ULL;
    s->grid_hash = h;
    journal_header(s->header, sizeof s->header, s->n, s->grid_hash);

    /* groups: ranks [gR, gR + R) train together; the rest (size % R) idle */
    const int color = s->rank < s->ngroups * s->R ? s->rank / s->R : MPI_UNDEFINED;
    CNN_MPI_CHECK(st, MPI_Comm_split(s->comm, color, s->rank, &s->group), error);
    s->gid = color == MPI_UNDEFINED ? -1 : color;
    if (s->group != MPI_COMM_NULL) {
        st = cnn_dist_prepare(s->group);
        if (st == CNN_OK) CNN_MPI_CHECK(st, MPI_Comm_rank(s->group, &s->grank), error);
    }
    if (st == CNN_OK && s->rank == 0) st = open_journal(s);
    CNN_TRY(cnn_dist_agree(s->comm, st));

    /* the data once per rank, unless trials differ in it */
    int swept_data = 0;
    for (int k = 0; k < s->grid->nkeys; k++) swept_data |= !strncmp(s->grid->key[k], "data.", 5);
    if (!swept_data) {
        st = cnn_data_prepare(cfg, 1, &s->data);
        s->have_data = st == CNN_OK;
        CNN_TRY(cnn_dist_agree(s->comm, st));
    }
    if (s->rank == 0 && !s->opts->quiet) print_intro(s);
error:
    return st;
}

/* Rank 0: the trials round r runs, into s->pending; counts in hdr
 * (pending, taking part). */
static cnn_status_t plan_round(sweep_t *s, int r, int hdr[2])
{
    if (r > 0) CNN_TRY(journal_read(s->journal, s->header, s->grid->hash, s->n, 0, &s->j));
    CNN_TRY(plan(s, r));
    int skipped = 0;
    hdr[0] = hdr[1] = 0;
    for (int t = 0; t < s->n; t++) {
        if (!s->member[t]) continue;
        hdr[1]++;
        const record_t *l = s->last[t];
        if (!l || (l->round < r && !l->stopped_early)) s->pending[hdr[0]++] = t;
        else if (l->round == r) skipped++;
    }
    s->nskipped += skipped;
    if (!s->opts->quiet && hdr[1] > 0) {
        const int target = round_target(s, r);
        if (s->nrounds > 1)
            printf("round %d/%d: %d trial%s to %d epoch%s\n", r + 1, s->nrounds, hdr[1],
                   hdr[1] == 1 ? "" : "s", target, target == 1 ? "" : "s");
        if (skipped)
            printf("resuming: %d of %d trial%s already finished, skipping them; %d to run\n",
                   skipped, hdr[1], hdr[1] == 1 ? "" : "s", hdr[0]);
        fflush(stdout);
    }
    return CNN_OK;
}

/* Every round: rank 0 plans it, everyone runs it. */
static cnn_status_t run_rounds(sweep_t *s)
{
    cnn_status_t st = CNN_OK;
    for (int r = 0; r < s->nrounds; r++) {
        int hdr[2] = {0, 0};
        if (s->rank == 0) st = plan_round(s, r, hdr);
        CNN_TRY(cnn_dist_agree(s->comm, st));
        CNN_MPI_CHECK(st, MPI_Bcast(hdr, 2, MPI_INT, 0, s->comm), error);
        if (hdr[1] == 0) break; /* every trial failed */
        if (hdr[0] == 0) continue;
        CNN_MPI_CHECK(st, MPI_Bcast(s->pending, hdr[0], MPI_INT, 0, s->comm), error);
        st = run_round(s, r, hdr[0]);
        if (st == CNN_ESTOPPED)
            return cnn_error_set(CNN_ESTOPPED,
                                 "stopped by a signal; the trials in flight checkpointed: run "
                                 "the same sweep with --resume --out %s to continue", s->dir);
        CNN_TRY(st);
    }
error:
    return st;
}

/* Rank 0: the final ranking (into s->order), sweep.csv and best/model.h5.
 * best[0] = the best trial or -1, best[1] = the status of the first failed
 * trial. */
static cnn_status_t write_results(sweep_t *s, cnn_sweep_result_t *res, int best[2])
{
    CNN_TRY(journal_read(s->journal, s->header, s->grid->hash, s->n, 0, &s->j));
    CNN_TRY(plan(s, s->nrounds - 1));
    for (int t = 0; t < s->n; t++) s->order[t] = t;
    CNN_TRY(rank_trials(s, s->order, s->n));
    for (int t = 0; t < s->n; t++) {
        const record_t *l = s->last[t];
        if (l && l->ok) res->nok++;
        else if (l) res->nfailed++;
        if (l && !l->ok && !best[1]) best[1] = l->code ? l->code : CNN_EINTERNAL;
    }
    if (s->last[s->order[0]] && s->last[s->order[0]]->ok) {
        best[0] = s->order[0];
        res->best_val_acc = s->last[best[0]]->val_acc;
    }
    CNN_TRY(write_csv(s, s->order));
    if (best[0] < 0) return CNN_OK;
    char src[CNN_PATH_MAX + 64], bdir[CNN_PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/trials/%d/model.h5", s->dir, best[0]);
    snprintf(bdir, sizeof bdir, "%s/best", s->dir);
    CNN_TRY(make_dir(bdir));
    return copy_atomic(src, bdir, "model.h5");
}

static void print_summary(const sweep_t *s, const cnn_sweep_result_t *res)
{
    print_table(s, s->order);
    printf("\n%d trial%s: %d ok, %d failed; %.1f s\n", s->n, s->n == 1 ? "" : "s", res->nok,
           res->nfailed, res->seconds);
    printf("results: %s/sweep.csv\n", s->dir);
    if (res->best >= 0) {
        char label[1024];
        cnn_sweep_point_label(s->grid, res->best, label, sizeof label);
        printf("best: trial %d [%s] val accuracy %.4f\n", res->best, label, res->best_val_acc);
        if (!isnan(res->test_acc))
            printf("best trial's test accuracy: %.4f (%ld/%ld)\n", res->test_acc,
                   res->test_correct, res->test_total);
        else
            printf("best trial's test accuracy: no test set\n");
        printf("model: %s/best/model.h5\n", s->dir);
    }
    fflush(stdout);
}

/* The results on every rank, the best model scored, the summary. */
static cnn_status_t finish(sweep_t *s, cnn_sweep_result_t *res, double t_start)
{
    cnn_status_t st = CNN_OK;
    int best[2] = {-1, 0};
    if (s->rank == 0) st = write_results(s, res, best);
    CNN_TRY(cnn_dist_agree(s->comm, st));
    /* every rank reports the same */
    int c[5] = {best[0], best[1], res->nok, res->nfailed, s->nskipped};
    CNN_MPI_CHECK(st, MPI_Bcast(c, 5, MPI_INT, 0, s->comm), error);
    CNN_MPI_CHECK(st, MPI_Bcast(&res->best_val_acc, 1, MPI_DOUBLE, 0, s->comm), error);
    CNN_MPI_CHECK(st, MPI_Allreduce(&s->nrun, &res->nrun, 1, MPI_INT, MPI_SUM, s->comm), error);
    res->best = c[0];
    res->nok = c[2];
    res->nfailed = c[3];
    res->nskipped = c[4];
    res->ntrials = s->n;
    if (res->best >= 0) CNN_TRY(score_best(s, res->best, res));
    res->seconds = MPI_Wtime() - t_start;
    if (s->rank == 0 && !s->opts->quiet) print_summary(s, res);
    if (res->best < 0)
        st = cnn_error_set(c[1] ? (cnn_status_t)c[1] : CNN_EINTERNAL,
                           "no trial succeeded (%s/sweep.csv gives the reasons)", s->dir);
error:
    return st;
}

cnn_status_t cnn_sweep_run(const cnn_config_t *cfg, const cnn_sweep_opts_t *opts,
                           cnn_sweep_result_t *res)
{
    const double t_start = MPI_Wtime();
    sweep_t s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.opts = opts;
    s.comm = opts->comm;
    s.group = MPI_COMM_NULL;
    memset(res, 0, sizeof *res);
    res->best = -1;
    res->best_val_acc = res->test_acc = NAN;

    cnn_status_t st = sweep_setup(&s);
    if (st == CNN_OK) st = run_rounds(&s);
    if (st == CNN_OK) st = finish(&s, res, t_start);
    if (s.group != MPI_COMM_NULL) {
        cnn_status_t fst = CNN_OK;
        CNN_MPI_CHECK(fst, MPI_Comm_free(&s.group), freed);
    freed:
        if (st == CNN_OK) st = fst;
    }
    sweep_free(&s);
    return st;
}
