/* rundir.c - a run directory's lock, status file and fresh-start check
 * (rundir.h). */
#include "mpicnn/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mpicnn/fs.h"
#include "mpicnn/train.h"

#define PATHLEN 4200
#define LINELEN 256

struct cnn_rundir_lock {
    char path[PATHLEN]; /* DIR/lock or DIR/lock.held */
    int fd;             /* holds the fcntl lock; -1 for the fallback */
};

/* The current time, UTC, ISO 8601 ("2026-01-31T23:59:59Z"). */
static void utc_now(char *buf, size_t len, const char *fmt)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, fmt, &tm);
}

/* "HOST PID JOB START\n": who holds the lock. */
static void holder_line(char *buf, size_t len)
{
    char host[64], start[32];
    const char *job = getenv("SLURM_JOB_ID");
    cnn_fs_host_name(host, sizeof host);
    utc_now(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ");
    snprintf(buf, len, "%s %ld %s %s\n", host, (long)getpid(), job && *job ? job : "-", start);
}

/* Reads the holder line of the lock file at path into buf ("" if none). */
static void read_holder(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}

/* The busy error: the holder named from its line. */
static cnn_status_t busy(const char *dir, const char *path, const char *line)
{
    char host[64], job[64], start[64];
    long pid;
    if (sscanf(line, "%63s %ld %63s %63s", host, &pid, job, start) == 4)
        return cnn_error_set(CNN_EBUSY,
                             "%s is in use by another run: host %s, pid %ld, SLURM job %s, since "
                             "%s (%s); wait for it to end (--lock-wait SECONDS), or choose another "
                             "--out", dir, host, pid, job, start, path);
    return cnn_error_set(CNN_EBUSY, "%s is in use by another run (%s); wait for it to end "
                         "(--lock-wait SECONDS), or choose another --out", dir, path);
}

/* 1 if the holder line names a process of this host that is gone. */
static int holder_stale(const char *line)
{
    char host[64], me[64];
    long pid;
    if (sscanf(line, "%63s %ld", host, &pid) != 2 || pid <= 0) return 0;
    cnn_fs_host_name(me, sizeof me);
    return !strcmp(host, me) && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* "cannot write PATH: why", as the atomic writer words it (fs.h). */
static cnn_status_t cannot_write(const char *path, int err)
{
    return cnn_error_set(CNN_EIO, "cannot write %s: %s", path,
                         err == ENOSPC ? "disk full" : strerror(err));
}

/* Writes the holder line into the open lock file. */
static cnn_status_t write_holder(int fd, const char *path)
{
    char line[LINELEN];
    holder_line(line, sizeof line);
    if (ftruncate(fd, 0) != 0 || cnn_fs_write_all(fd, line, strlen(line)) != 0)
        return cannot_write(path, errno);
    return CNN_OK;
}

/* One try at the fcntl lock: CNN_OK (held), CNN_EBUSY, or *unsupported
 * = 1 when the file system has no working locks. */
static cnn_status_t try_fcntl(cnn_rundir_lock_t *l, const char *dir, int *unsupported)
{
    *unsupported = 0;
    if (l->fd < 0 && (l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666)) < 0)
        return cannot_write(l->path, errno);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(l->fd, F_SETLK, &fl) == 0) return write_holder(l->fd, l->path);
    int err = errno;
    if (err == EACCES || err == EAGAIN) {
        char line[LINELEN];
        read_holder(l->path, line, sizeof line);
        return busy(dir, l->path, line);
    }
    if (err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS || err == EINVAL) {
        *unsupported = 1;
        return CNN_OK;
    }
    return cnn_fs_error(l->path, "cannot lock", err);
}

/* One try at the O_EXCL lock file; a stale one of this host is replaced. */
static cnn_status_t try_excl(cnn_rundir_lock_t *l, const char *dir)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            cnn_status_t st = write_holder(fd, l->path);
            if (close(fd) != 0 && st == CNN_OK) st = cnn_fs_error(l->path, "close", errno);
            if (st != CNN_OK) unlink(l->path);
            return st;
        }
        if (errno != EEXIST) return cannot_write(l->path, errno);
        char line[LINELEN];
        read_holder(l->path, line, sizeof line);
        if (!holder_stale(line)) return busy(dir, l->path, line);
        unlink(l->path);
    }
    return busy(dir, l->path, "");
}

/* MPICNN_LOCK: 0 auto (fcntl, else the fallback), 1 fcntl, 2 excl. */
static cnn_status_t lock_mode(int *mode)
{
    const char *m = getenv("MPICNN_LOCK");
    *mode = 0;
    if (!m || !*m || !strcmp(m, "auto")) return CNN_OK;
    if (!strcmp(m, "fcntl")) *mode = 1;
    else if (!strcmp(m, "excl")) *mode = 2;
    else
        return cnn_error_set(CNN_EUSAGE, "MPICNN_LOCK=%s: expected auto, fcntl or excl", m);
    return CNN_OK;
}

/* One try with the lock kind l is set up for (switching to the fallback
 * when fcntl locks do not work and the mode allows). */
static cnn_status_t try_lock(cnn_rundir_lock_t *l, const char *dir, int mode)
{
    if (l->fd == -2) return try_excl(l, dir);
    int unsupported;
    cnn_status_t st = try_fcntl(l, dir, &unsupported);
    if (st != CNN_OK || !unsupported) return st;
    if (mode == 1)
        return cnn_error_set(CNN_EIO, "%s: the file system does not support fcntl() locks "
                             "(MPICNN_LOCK=fcntl)", l->path);
    close(l->fd);
    l->fd = -2;
    snprintf(l->path, sizeof l->path, "%s/%s", dir, CNN_RUNDIR_LOCK_HELD);
    return try_excl(l, dir);
}

cnn_status_t cnn_rundir_lock(const char *dir, double wait_seconds, cnn_rundir_lock_t **out)
{
    int mode;
    *out = NULL;
    CNN_TRY(lock_mode(&mode));
    cnn_rundir_lock_t *l = calloc(1, sizeof *l);
    if (!l) return cnn_error_set(CNN_ENOMEM, "out of memory");
    l->fd = mode == 2 ? -2 : -1; /* -2: the O_EXCL file */
    snprintf(l->path, sizeof l->path, "%s/%s", dir,
             mode == 2 ? CNN_RUNDIR_LOCK_HELD : CNN_RUNDIR_LOCK);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cnn_status_t st;
    for (;;) {
        st = try_lock(l, dir, mode);
        if (st != CNN_EBUSY) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited = (double)(now.tv_sec - t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t0.tv_nsec);
        if (waited >= wait_seconds) break;
        if (cnn_train_stop_requested()) {
            st = cnn_error_set(CNN_ESTOPPED, "stopped by a signal while waiting for the lock on "
                               "%s: nothing was written; resubmit to continue", dir);
            break;
        }
        const struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (st != CNN_OK) {
        if (l->fd >= 0) close(l->fd);
        free(l);
        return st;
    }
    *out = l;
    return CNN_OK;
}

void cnn_rundir_unlock(cnn_rundir_lock_t *l)
{
    if (!l) return;
    if (l->fd >= 0) close(l->fd); /* drops the fcntl lock */
    else unlink(l->path);
    free(l);
}

/* Writes line (with its newline) to DIR/status through the atomic writer. */
static cnn_status_t write_status(const char *dir, const char *line)
{
    char path[PATHLEN];
    snprintf(path, sizeof path, "%s/%s", dir, CNN_RUNDIR_STATUS);
    cnn_afile_t *f;
    FILE *s;
    CNN_TRY(cnn_afile_open(path, &f, &s));
    if (fputs(line, s) == EOF) {
        cnn_status_t st = cnn_fs_error(path, "write", errno);
        cnn_afile_abort(f);
        return st;
    }
    return cnn_afile_commit(f);
}

cnn_status_t cnn_rundir_status_running(const char *dir)
{
    char line[LINELEN], host[64], start[32];
    cnn_fs_host_name(host, sizeof host);
    utc_now(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ");
    snprintf(line, sizeof line, "running %s %ld %s\n", host, (long)getpid(), start);
    char path[PATHLEN];
    snprintf(path, sizeof path, "%s/%s", dir, CNN_RUNDIR_STATUS);
    CNN_TRY(cnn_afile_clean_stale(path, NULL));
    return write_status(dir, line);
}

cnn_status_t cnn_rundir_status_end(const char *dir, cnn_status_t st, const char *message)
{
    char line[1200];
    if (st == CNN_OK) snprintf(line, sizeof line, "finished\n");
    else if (st == CNN_ESTOPPED) snprintf(line, sizeof line, "stopped-resumable\n");
    else {
        int n = snprintf(line, sizeof line, "failed %d %s", cnn_status_exit_code(st),
                         message && *message ? message : cnn_status_name(st));
        if (n < 0 || (size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
        for (int i = 0; i < n; i++)
            if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
        line[n] = '\n';
        line[n + 1] = '\0';
    }
    return write_status(dir, line);
}

/* Moves the existing names[0..nmove) of dir into a new DIR/old-<time>. */
static cnn_status_t move_aside(const char *dir, const char *const *names, int nmove, char *moved,
                               size_t len)
{
    char stamp[32], from[PATHLEN], to[PATHLEN + 64];
    utc_now(stamp, sizeof stamp, "%Y%m%d-%H%M%S");
    for (int k = 0;; k++) {
        if (k) snprintf(moved, len, "%s/old-%s-%d", dir, stamp, k);
        else snprintf(moved, len, "%s/old-%s", dir, stamp);
        if (mkdir(moved, 0777) == 0) break;
        if (errno != EEXIST || k == 99)
            return cnn_fs_error(moved, "cannot create directory", errno);
    }
    for (int i = 0; i < nmove; i++) {
        snprintf(from, sizeof from, "%s/%s", dir, names[i]);
        snprintf(to, sizeof to, "%s/%s", moved, names[i]);
        if (access(from, F_OK) == 0 && cnn_fs_move(from, to) != 0)
            return cnn_fs_error(from, "--force: cannot move it aside", errno);
    }
    return cnn_fs_fsync_dir(dir);
}

cnn_status_t cnn_rundir_check_fresh(const char *dir, const char *const *names, int n, int nmove,
                                    int force, char *moved, size_t len)
{
    char path[PATHLEN], found[512] = "";
    moved[0] = '\0';
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (access(path, F_OK) != 0) continue;
        size_t k = strlen(found);
        snprintf(found + k, sizeof found - k, "%s%s", k ? ", " : "", names[i]);
    }
    if (!found[0]) return CNN_OK;
    if (!force)
        return cnn_error_set(CNN_EUSAGE,
                             "%s already holds a run (%s): add --resume to continue it, --force "
                             "to move its files aside into %s/old-<time>/, or choose another --out",
                             dir, found, dir);
    return move_aside(dir, names, nmove, moved, len);
}
