/* fs.c - the atomic file writer, the input opener, mkdir -p, directory
 * fsync (fs.h). */
#include "mpicnn/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cnn_afile {
    char *path, *tmp, *dir;
    int fd;
    FILE *stream;
};

cnn_status_t cnn_fs_error(const char *path, const char *what, int err)
{
    return cnn_error_set(CNN_EIO, "%s: %s: %s%s%s", path, what,
                         err == ENOSPC ? "disk full (" : "", err ? strerror(err) : "I/O error",
                         err == ENOSPC ? ")" : "");
}

/* What a file that is not a regular file is, for the message. */
static const char *file_type(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "a special file";
}

cnn_status_t cnn_fs_open_input(const char *path, cnn_status_t bad, const char *kind, int *fd,
                               long long *size)
{
    struct stat sb;
    *fd = -1;
    if (size) *size = 0;
    int d;
    do d = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    while (d < 0 && errno == EINTR);
    if (d < 0) return cnn_error_set(bad, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(d, &sb) != 0) {
        const int e = errno;
        close(d);
        return cnn_error_set(bad, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        const char *type = file_type(sb.st_mode);
        close(d);
        return cnn_error_set(bad, "%s: is %s, not %s", path, type, kind);
    }
    const int fl = fcntl(d, F_GETFL);
    if (fl < 0 || fcntl(d, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        const int e = errno;
        close(d);
        return cnn_error_set(bad, "%s: cannot open: fcntl: %s", path, strerror(e));
    }
    *fd = d;
    if (size) *size = (long long)sb.st_size;
    return CNN_OK;
}

cnn_status_t cnn_fs_fopen_input(const char *path, cnn_status_t bad, const char *kind, FILE **f,
                                long long *size)
{
    int fd;
    *f = NULL;
    CNN_TRY(cnn_fs_open_input(path, bad, kind, &fd, size));
    *f = fdopen(fd, "rb");
    if (!*f) {
        const int e = errno;
        close(fd);
        return cnn_error_set(e == ENOMEM ? CNN_ENOMEM : bad, "%s: cannot open: %s", path,
                             strerror(e));
    }
    return CNN_OK;
}

/* "cannot write PATH: what: why", the writer's message for every step. */
static cnn_status_t write_error(const char *path, const char *what, int err)
{
    return cnn_error_set(CNN_EIO, "cannot write %s: %s: %s%s%s", path, what,
                         err == ENOSPC ? "disk full (" : "", err ? strerror(err) : "I/O error",
                         err == ENOSPC ? ")" : "");
}

int cnn_fs_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* dir and base of path ("." for a bare name); both malloc'd. */
static int split_path(const char *path, char **dir, char **base)
{
    const char *slash = strrchr(path, '/');
    *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    *base = strdup(slash ? slash + 1 : path);
    return *dir && *base ? 0 : -1;
}

/* The host name, cut at the first dot, with no '/' or '.' in it. */
void cnn_fs_host_name(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0) snprintf(buf, len, "localhost");
    buf[len - 1] = '\0';
    for (char *c = buf; *c; c++)
        if (*c == '.' || *c == '/') {
            *c = '\0';
            break;
        }
}

static void afile_free(cnn_afile_t *f)
{
    free(f->path);
    free(f->tmp);
    free(f->dir);
    free(f);
}

cnn_status_t cnn_afile_begin(const char *path, cnn_afile_t **out)
{
    char *base = NULL, host[64];
    cnn_afile_t *f = calloc(1, sizeof *f);
    *out = NULL;
    if (!f) return cnn_error_set(CNN_ENOMEM, "cannot write %s: out of memory", path);
    f->fd = -1;
    if (!*path || path[strlen(path) - 1] == '/') {
        free(f);
        return cnn_error_set(CNN_EUSAGE, "cannot write '%s': not a file name", path);
    }
    cnn_fs_host_name(host, sizeof host);
    f->path = strdup(path);
    if (!f->path || split_path(path, &f->dir, &base) != 0) goto nomem;
    size_t n = strlen(f->dir) + strlen(base) + strlen(host) + 40;
    if (!(f->tmp = malloc(n))) goto nomem;
    snprintf(f->tmp, n, "%s/.%s.tmp.%s.%ld", f->dir, base, host, (long)getpid());
    free(base);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (f->fd < 0) {
        int err = errno;
        free(f->tmp);
        f->tmp = NULL; /* nothing to remove */
        afile_free(f);
        cnn_error_set(CNN_EIO, "cannot write %s: %s", path,
                      err == ENOSPC ? "disk full" : strerror(err));
        errno = err; /* for callers that word the error their own way */
        return CNN_EIO;
    }
    *out = f;
    return CNN_OK;
nomem:
    free(base);
    afile_free(f);
    return cnn_error_set(CNN_ENOMEM, "cannot write %s: out of memory", path);
}

int cnn_afile_fd(const cnn_afile_t *f) { return f->fd; }
const char *cnn_afile_tmp_path(const cnn_afile_t *f) { return f->tmp; }
const char *cnn_afile_path(const cnn_afile_t *f) { return f->path; }

FILE *cnn_afile_stream(cnn_afile_t *f)
{
    if (!f->stream && f->fd >= 0) f->stream = fdopen(f->fd, "w");
    return f->stream;
}

cnn_status_t cnn_afile_write(cnn_afile_t *f, const void *buf, size_t n)
{
    if (f->stream && fflush(f->stream) != 0) return write_error(f->path, "write", errno);
    if (cnn_fs_write_all(f->fd, buf, n) != 0) return write_error(f->path, "write", errno);
    return CNN_OK;
}

cnn_status_t cnn_afile_open(const char *path, cnn_afile_t **out, FILE **f)
{
    *f = NULL;
    cnn_status_t st = cnn_afile_begin(path, out);
    if (st == CNN_EIO) return cnn_fs_error(path, "cannot create", errno);
    if (st != CNN_OK) return st;
    if (!(*f = cnn_afile_stream(*out))) {
        st = cnn_fs_error(path, "cannot create", errno);
        cnn_afile_abort(*out);
        *out = NULL;
    }
    return st;
}

cnn_status_t cnn_afile_copy_from(cnn_afile_t *f, FILE *in, const char *src)
{
    char buf[1 << 16];
    size_t n;
    cnn_status_t st = CNN_OK;
    while (st == CNN_OK && (n = fread(buf, 1, sizeof buf, in)) > 0) st = cnn_afile_write(f, buf, n);
    if (st == CNN_OK && ferror(in)) st = cnn_fs_error(src, "read", errno ? errno : EIO);
    return st;
}

/* Closes the stream or the descriptor; 0 or -1 with errno. */
static int afile_close(cnn_afile_t *f)
{
    int rc = 0;
    if (f->stream) rc = fclose(f->stream);
    else if (f->fd >= 0) rc = close(f->fd);
    f->stream = NULL;
    f->fd = -1;
    return rc;
}

void cnn_afile_abort(cnn_afile_t *f)
{
    if (!f) return;
    int err = errno;
    afile_close(f);
    if (f->tmp) unlink(f->tmp);
    afile_free(f);
    errno = err;
}

cnn_status_t cnn_afile_commit(cnn_afile_t *f)
{
    cnn_status_t st = CNN_OK;
    if (!f) return cnn_error_set(CNN_EINTERNAL, "cnn_afile_commit: no writer");
    if (f->stream && (ferror(f->stream) || fflush(f->stream) != 0)) {
        st = write_error(f->path, "write", errno ? errno : EIO);
        goto fail;
    }
    if (fsync(f->fd) != 0) {
        st = write_error(f->path, "fsync", errno);
        goto fail;
    }
    if (afile_close(f) != 0) {
        st = write_error(f->path, "close", errno);
        goto fail;
    }
    if (cnn_fs_move(f->tmp, f->path) != 0) {
        st = write_error(f->path, "rename", errno);
        goto fail;
    }
    st = cnn_fs_fsync_dir(f->dir);
    if (st != CNN_OK) cnn_error_prefix("cannot write %s", f->path);
    afile_free(f);
    return st;
fail:
    cnn_afile_abort(f);
    return st;
}

/* 1 if `name` is a temp file of `base` ("." base ".tmp." host "." pid)
 * that may be removed: written on this host by this process or by one
 * that no longer runs. The "." base ".tmp." pid of writers that did not
 * name the host yet (files of an older mpicnn) counts as of this host. */
static int stale_temp(const char *name, const char *base, const char *host)
{
    size_t bl = strlen(base), hl = strlen(host);
    if (name[0] != '.' || strncmp(name + 1, base, bl) != 0) return 0;
    name += 1 + bl;
    if (strncmp(name, ".tmp.", 5) != 0) return 0;
    name += 5;
    if (strncmp(name, host, hl) == 0 && name[hl] == '.') name += hl + 1;
    else if (strspn(name, "0123456789") != strlen(name)) return 0;
    char *end;
    long pid = strtol(name, &end, 10);
    if (*end != '\0' || pid <= 0) return 0;
    return pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

cnn_status_t cnn_afile_clean_stale(const char *path, int *nremoved)
{
    char *dir = NULL, *base = NULL, host[64];
    int count = 0;
    cnn_status_t st = CNN_OK;
    if (nremoved) *nremoved = 0;
    if (split_path(path, &dir, &base) != 0) {
        st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    cnn_fs_host_name(host, sizeof host);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT)
            st = cnn_error_set(CNN_EIO, "%s: cannot read directory %s: %s", path, dir,
                               strerror(errno));
        goto done;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (stale_temp(de->d_name, base, host) && unlinkat(dirfd(d), de->d_name, 0) == 0) count++;
    closedir(d);
done:
    if (nremoved) *nremoved = count;
    free(dir);
    free(base);
    return st;
}

cnn_status_t cnn_fs_mkdir_p(const char *dir)
{
    char buf[4096];
    if (!*dir) return cnn_error_set(CNN_EUSAGE, "empty directory name");
    int n = snprintf(buf, sizeof buf, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof buf)
        return cnn_error_set(CNN_EUSAGE, "directory name too long: %.64s...", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return cnn_fs_error(buf, "cannot create directory", errno);
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return cnn_fs_error(buf, "cannot create directory", errno);
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cnn_error_set(CNN_EIO, "%s: exists and is not a directory", buf);
    return CNN_OK;
}

cnn_status_t cnn_fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return cnn_fs_error(dir, "cannot open directory", errno);
    int rc = fsync(fd), err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) return cnn_fs_error(dir, "fsync of the directory", err);
    return CNN_OK;
}

int cnn_fs_move(const char *from, const char *to)
{
    return rename(from, to);
}
