/* journal.c - DIR/sweep.journal: a header line, then one line per
 * finished trial run, appended with O_APPEND under an fcntl lock and
 * fsync'd by the group leader that ran it. It is only ever appended to
 * (and a line a crash cut short is cut off), never replaced. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicnn/fs.h"
#include "sweep_impl.h"

static const char *const jfields[] = {"trial", "round", "point", "status", "code", "val_acc",
                                      "val_loss", "best_epoch", "epochs", "stopped_early",
                                      "seconds", "group", "ranks", "reason"};
#define NJFIELDS ((int)(sizeof jfields / sizeof jfields[0]))

void sweep_journal_header(char *buf, size_t len, int ntrials, uint64_t grid_hash)
{
    snprintf(buf, len, "# mpicnn sweep journal v1\ttrials=%d\tgrid=%016llx\n", ntrials,
             (unsigned long long)grid_hash);
}

cnn_status_t sweep_journal_create(const char *path, const char *dir, const char *header)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0) return cnn_fs_error(path, "cannot create", errno);
    cnn_status_t st = CNN_OK;
    if (cnn_fs_write_all(fd, header, strlen(header)) != 0 || fsync(fd) != 0)
        st = cnn_fs_error(path, "write failed", errno);
    if (close(fd) != 0 && st == CNN_OK) st = cnn_fs_error(path, "write failed", errno);
    if (st == CNN_OK) st = cnn_fs_fsync_dir(dir);
    return st;
}

int sweep_journal_has_header(const char *path, const char *header)
{
    char line[256];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    const int ok = fgets(line, sizeof line, f) && strcmp(line, header) == 0;
    fclose(f);
    return ok;
}

/* The journal line of rec (tabs and newlines in the reason made spaces). */
static void journal_line(const sweep_record_t *rec, char *buf, size_t len)
{
    char reason[SWEEP_REASON_MAX];
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

/* O_APPEND, under an exclusive fcntl lock so that leaders on different
 * hosts of a network file system do not interleave, then fsync. */
cnn_status_t sweep_journal_append(const char *path, const sweep_record_t *rec)
{
    char line[SWEEP_REASON_MAX + 512];
    journal_line(rec, line, sizeof line);
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0) return cnn_fs_error(path, "cannot open the journal", errno);
    struct flock lk;
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    int rc;
    while ((rc = fcntl(fd, F_SETLKW, &lk)) != 0 && errno == EINTR) continue;
    /* a file system without locks (ENOLCK) still has atomic O_APPEND locally */
    cnn_status_t st = CNN_OK;
    if (cnn_fs_write_all(fd, line, strlen(line)) != 0)
        st = cnn_fs_error(path, "cannot append to the journal", errno);
    else if (fsync(fd) != 0) st = cnn_fs_error(path, "fsync of the journal", errno);
    if (rc == 0) {
        lk.l_type = F_UNLCK;
        fcntl(fd, F_SETLK, &lk);
    }
    if (close(fd) != 0 && st == CNN_OK)
        st = cnn_fs_error(path, "cannot close the journal", errno);
    return st;
}

/* The int field `name` of r. */
static int *int_field(sweep_record_t *r, const char *name)
{
    return !strcmp(name, "trial")        ? &r->trial
           : !strcmp(name, "round")      ? &r->round
           : !strcmp(name, "code")       ? &r->code
           : !strcmp(name, "best_epoch") ? &r->best_epoch
           : !strcmp(name, "epochs")     ? &r->epochs_run
           : !strcmp(name, "group")      ? &r->group
           : !strcmp(name, "ranks")      ? &r->ranks
                                         : &r->stopped_early;
}

static cnn_status_t parse_field(const char *path, int line, const char *name, const char *v,
                                sweep_record_t *r)
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
        *int_field(r, name) = (int)x;
    }
    if (end == v || *end || errno == ERANGE) goto bad;
    return CNN_OK;
bad:
    return cnn_error_set(CNN_EDATA, "%s:%d: bad %s '%s'", path, line, name, v);
}

cnn_status_t sweep_read_file(const char *path, const char *what, char **buf, size_t *len)
{
    cnn_status_t st = CNN_OK;
    size_t cap = 1 << 16, n;
    *len = 0;
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cnn_fs_error(path, what, errno);
    if (!(*buf = malloc(cap + 1))) goto nomem;
    while ((n = fread(*buf + *len, 1, cap - *len, f)) > 0) {
        *len += n;
        if (*len == cap) {
            char *nb = realloc(*buf, 2 * cap + 1);
            if (!nb) goto nomem;
            *buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f)) st = cnn_fs_error(path, "read failed", errno ? errno : EIO);
    else (*buf)[*len] = '\0';
    goto done;
nomem:
    st = cnn_error_set(CNN_ENOMEM, "out of memory reading %s", path);
done:
    fclose(f);
    return st;
}

/* Parses the record `line` (line number lineno of path) into *r and
 * checks that it names a trial of this grid. */
static cnn_status_t parse_record(const char *path, int lineno, char *line,
                                 const uint64_t *hashes, int ntrials, sweep_record_t *r)
{
    memset(r, 0, sizeof *r);
    char *field = line;
    for (int i = 0; i < NJFIELDS; i++) {
        char *tab = i < NJFIELDS - 1 ? strchr(field, '\t') : NULL;
        if (tab) *tab = '\0';
        size_t nl = strlen(jfields[i]);
        if (strncmp(field, jfields[i], nl) || field[nl] != '=' || (!tab && i < NJFIELDS - 1))
            return cnn_error_set(CNN_EDATA, "%s:%d: expected the field '%s='", path, lineno,
                                 jfields[i]);
        CNN_TRY(parse_field(path, lineno, jfields[i], field + nl + 1, r));
        if (tab) field = tab + 1;
    }
    if (r->trial < 0 || r->trial >= ntrials || r->round < 0 || r->point != hashes[r->trial])
        return cnn_error_set(CNN_ECONFIG,
                             "%s:%d: trial %d is not this grid's trial %d: the config changed "
                             "since the journal was written; choose another --out",
                             path, lineno, r->trial, r->trial);
    return CNN_OK;
}

/* Makes room for one more record in j. */
static cnn_status_t grow(sweep_journal_t *j, const char *path)
{
    if (j->n < j->cap) return CNN_OK;
    int nc = j->cap ? 2 * j->cap : 64;
    sweep_record_t *nr = realloc(j->rec, sizeof(sweep_record_t) * (size_t)nc);
    if (!nr) return cnn_error_set(CNN_ENOMEM, "out of memory reading %s", path);
    j->rec = nr;
    j->cap = nc;
    return CNN_OK;
}

cnn_status_t sweep_journal_read(const char *path, const char *header, const uint64_t *hashes,
                                int ntrials, int repair, sweep_journal_t *j)
{
    char *buf = NULL;
    size_t len = 0;
    j->n = 0;
    cnn_status_t st = sweep_read_file(path, "cannot open the journal", &buf, &len);
    if (st != CNN_OK) goto done;
    size_t whole = len;
    while (whole > 0 && buf[whole - 1] != '\n') whole--;
    if (whole < len && repair && truncate(path, (off_t)whole) != 0) {
        st = cnn_fs_error(path, "cannot cut the unfinished last line", errno);
        goto done;
    }
    buf[whole] = '\0';
    size_t hl = strlen(header);
    if (whole < hl || strncmp(buf, header, hl) != 0) {
        st = cnn_error_set(CNN_ECONFIG,
                           "%s was written by a different sweep (another config, --set, grid "
                           "or number of trials): resume with the same config, or choose "
                           "another --out", path);
        goto done;
    }
    int lineno = 2;
    for (char *line = buf + hl; *line && st == CNN_OK; lineno++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        if ((st = grow(j, path)) == CNN_OK &&
            (st = parse_record(path, lineno, line, hashes, ntrials, &j->rec[j->n])) == CNN_OK)
            j->n++;
        line = nl + 1;
    }
done:
    free(buf);
    return st;
}
