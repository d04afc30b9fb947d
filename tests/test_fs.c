/* test_fs.c - the atomic writer, the input opener, mkdir -p and the
 * directory fsync (fs.h), and the RNG/hash module (rng.h), with its
 * CRC-32C.
 *
 * The writer: a commit puts the whole content in place and leaves no temp
 * file; an abort, or a commit that fails (the temp file or its directory
 * gone, the target a non-empty directory), leaves the old target as it
 * was. cnn_afile_clean_stale removes the temp files of this host's dead
 * processes and of this process, and keeps those of a live process and of
 * other hosts. Every test runs in its own mkdtemp directory. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mpicnn.h"

typedef struct {
    char dir[64];
    char path[128]; /* dir/out.csv */
} fx_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/mpicnn-test-fs-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/out.csv", fx->dir);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The content of path (at most 255 bytes) in buf; -1 if it cannot be read. */
static int read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return 0;
}

static void assert_content(const char *path, const char *want)
{
    char buf[256];
    if (read_file(path, buf, sizeof buf) != 0) fail_msg("%s: cannot read", path);
    assert_string_equal(buf, want);
}

/* Entries of dir other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void assert_msg_has(const char *needle)
{
    const char *msg = cnn_error_message();
    if (!strstr(msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

/* ---- the atomic writer -------------------------------------------------- */

static void test_commit(void **state)
{
    fx_t *fx = *state;
    write_file(fx->path, "old\n");
    cnn_afile_t *f = NULL;
    assert_int_equal(cnn_afile_begin(fx->path, &f), CNN_OK);
    assert_string_equal(cnn_afile_path(f), fx->path);
    /* the temp file is DIR/.out.csv.tmp.HOST.PID */
    char tmp[256], want[160];
    snprintf(tmp, sizeof tmp, "%s", cnn_afile_tmp_path(f));
    snprintf(want, sizeof want, "%s/.out.csv.tmp.", fx->dir);
    assert_int_equal(strncmp(tmp, want, strlen(want)), 0);
    snprintf(want, sizeof want, ".%ld", (long)getpid());
    assert_string_equal(tmp + strlen(tmp) - strlen(want), want);
    assert_true(exists(tmp));

    /* the stream and the descriptor write to the same file, in order */
    FILE *s = cnn_afile_stream(f);
    assert_non_null(s);
    assert_ptr_equal(cnn_afile_stream(f), s);
    fprintf(s, "a,b\n");
    assert_int_equal(cnn_afile_write(f, "1,2\n", 4), CNN_OK);
    fprintf(s, "3,4\n");
    assert_content(fx->path, "old\n"); /* untouched until the commit */

    assert_int_equal(cnn_afile_commit(f), CNN_OK);
    assert_content(fx->path, "a,b\n1,2\n3,4\n");
    assert_false(exists(tmp));
    assert_int_equal(dir_entries(fx->dir), 1);
}

static void test_commit_new_file(void **state)
{
    fx_t *fx = *state;
    cnn_afile_t *f = NULL;
    assert_int_equal(cnn_afile_begin(fx->path, &f), CNN_OK);
    assert_int_equal(cnn_afile_write(f, "x", 1), CNN_OK);
    assert_int_equal(cnn_afile_commit(f), CNN_OK);
    assert_content(fx->path, "x");
    assert_int_equal(dir_entries(fx->dir), 1);
    /* a bare file name is in the working directory */
    char cwd[256];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx->dir), 0);
    assert_int_equal(cnn_afile_begin("bare.txt", &f), CNN_OK);
    assert_int_equal(cnn_afile_commit(f), CNN_OK);
    assert_int_equal(chdir(cwd), 0);
    char p[160];
    snprintf(p, sizeof p, "%s/bare.txt", fx->dir);
    assert_content(p, "");
    assert_int_equal(dir_entries(fx->dir), 2);
}

static void test_abort(void **state)
{
    fx_t *fx = *state;
    write_file(fx->path, "old\n");
    cnn_afile_t *f = NULL;
    assert_int_equal(cnn_afile_begin(fx->path, &f), CNN_OK);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", cnn_afile_tmp_path(f));
    fprintf(cnn_afile_stream(f), "new\n");
    assert_int_equal(cnn_afile_write(f, "more\n", 5), CNN_OK);
    cnn_afile_abort(f);
    assert_content(fx->path, "old\n");
    assert_false(exists(tmp));
    assert_int_equal(dir_entries(fx->dir), 1);
    cnn_afile_abort(NULL);
}

/* The temp file disappears before the commit: the rename fails and the
 * old file stays. */
static void test_failed_commit_keeps_old(void **state)
{
    fx_t *fx = *state;
    write_file(fx->path, "old\n");
    cnn_afile_t *f = NULL;
    assert_int_equal(cnn_afile_begin(fx->path, &f), CNN_OK);
    fprintf(cnn_afile_stream(f), "new\n");
    assert_int_equal(unlink(cnn_afile_tmp_path(f)), 0);
    assert_int_equal(cnn_afile_commit(f), CNN_EIO);
    assert_msg_has(fx->path);
    assert_msg_has("rename");
    assert_content(fx->path, "old\n");
    assert_int_equal(dir_entries(fx->dir), 1);
}

/* The directory is removed between begin and commit. */
static void test_failed_commit_dir_removed(void **state)
{
    fx_t *fx = *state;
    char sub[96], path[128];
    snprintf(sub, sizeof sub, "%s/sub", fx->dir);
    snprintf(path, sizeof path, "%s/out.csv", sub);
    assert_int_equal(mkdir(sub, 0755), 0);
    cnn_afile_t *f = NULL;
    assert_int_equal(cnn_afile_begin(path, &f), CNN_OK);
    assert_int_equal(cnn_afile_write(f, "new\n", 4), CNN_OK);
    assert_int_equal(unlink(cnn_afile_tmp_path(f)), 0);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(cnn_afile_commit(f), CNN_EIO);
    assert_msg_has(path);
    assert_false(exists(sub));
    assert_int_equal(dir_entries(fx->dir), 0);
}

/* The target is a non-empty directory: the rename fails, the directory
 * and what it holds stay, the temp file goes. */
static void test_failed_commit_target_is_dir(void **state)
{
    fx_t *fx = *state;
    char keep[160];
    assert_int_equal(mkdir(fx->path, 0755), 0);
    snprintf(keep, sizeof keep, "%s/keep", fx->path);
    write_file(keep, "keep\n");
    cnn_afile_t *f = NULL;
    assert_int_equal(cnn_afile_begin(fx->path, &f), CNN_OK);
    fprintf(cnn_afile_stream(f), "new\n");
    assert_int_equal(cnn_afile_commit(f), CNN_EIO);
    assert_msg_has("cannot write");
    assert_msg_has(fx->path);
    assert_content(keep, "keep\n");
    assert_int_equal(dir_entries(fx->dir), 1);
}

static void test_begin_errors(void **state)
{
    fx_t *fx = *state;
    cnn_afile_t *f = (cnn_afile_t *)1;
    char p[192];
    /* no such directory: CNN_EIO naming the path, the cause in errno */
    snprintf(p, sizeof p, "%s/no/such/out.csv", fx->dir);
    assert_int_equal(cnn_afile_begin(p, &f), CNN_EIO);
    assert_null(f);
    assert_int_equal(errno, ENOENT);
    assert_msg_has(p);
    assert_msg_has("No such file or directory");
    /* a parent that is a regular file */
    write_file(fx->path, "x");
    snprintf(p, sizeof p, "%s/inner.csv", fx->path);
    assert_int_equal(cnn_afile_begin(p, &f), CNN_EIO);
    assert_int_equal(errno, ENOTDIR);
    assert_msg_has("Not a directory");
    /* not a file name */
    assert_int_equal(cnn_afile_begin("", &f), CNN_EUSAGE);
    snprintf(p, sizeof p, "%s/", fx->dir);
    assert_int_equal(cnn_afile_begin(p, &f), CNN_EUSAGE);
    assert_null(f);
    assert_int_equal(cnn_afile_commit(NULL), CNN_EINTERNAL);
    assert_int_equal(dir_entries(fx->dir), 1);
}

/* ---- stale temp files --------------------------------------------------- */

/* The host part of this process's temp names, as the writer makes it. */
static void this_host(const fx_t *fx, char *host, size_t len)
{
    cnn_afile_t *f = NULL;
    assert_int_equal(cnn_afile_begin(fx->path, &f), CNN_OK);
    const char *t = strstr(cnn_afile_tmp_path(f), ".tmp.") + 5;
    const char *dot = strrchr(t, '.');
    snprintf(host, len, "%.*s", (int)(dot - t), t);
    cnn_afile_abort(f);
}

/* The pid of a child that has exited and been reaped. */
static long dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(0);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    return (long)pid;
}

static void test_clean_stale(void **state)
{
    fx_t *fx = *state;
    char host[64], names[8][128], p[1152]; /* p: gcc sizes names[i] as all of names */
    this_host(fx, host, sizeof host);
    const long dead = dead_pid();
    /* removed: this host's dead process, this process */
    snprintf(names[0], sizeof names[0], ".out.csv.tmp.%s.%ld", host, dead);
    snprintf(names[1], sizeof names[1], ".out.csv.tmp.%s.%ld", host, (long)getpid());
    /* kept: a live process (pid 1), another host, another file, the
     * target, names that are no temp file of ours */
    snprintf(names[2], sizeof names[2], ".out.csv.tmp.%s.1", host);
    snprintf(names[3], sizeof names[3], ".out.csv.tmp.%s-other.%ld", host, dead);
    snprintf(names[4], sizeof names[4], ".other.csv.tmp.%s.%ld", host, dead);
    snprintf(names[5], sizeof names[5], "out.csv");
    snprintf(names[6], sizeof names[6], ".out.csv.tmp.%s.%ldx", host, dead);
    snprintf(names[7], sizeof names[7], ".out.csv.tmp.%s.", host);
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/%s", fx->dir, names[i]);
        write_file(p, "half a file");
    }
    int n = -1;
    assert_int_equal(cnn_afile_clean_stale(fx->path, &n), CNN_OK);
    assert_int_equal(n, 2);
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/%s", fx->dir, names[i]);
        if (exists(p) != (i >= 2)) fail_msg("%s: %s", names[i], i >= 2 ? "removed" : "kept");
    }
    assert_int_equal(cnn_afile_clean_stale(fx->path, &n), CNN_OK);
    assert_int_equal(n, 0);
    /* a missing directory is nothing to clean */
    snprintf(p, sizeof p, "%s/nodir/out.csv", fx->dir);
    assert_int_equal(cnn_afile_clean_stale(p, &n), CNN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cnn_afile_clean_stale(p, NULL), CNN_OK);
}

/* ---- directories -------------------------------------------------------- */

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ---- the input opener --------------------------------------------------- */

/* A regular file opens (blocking again, with its size); a FIFO, which a
 * plain open() would wait on forever, a directory and a missing file are
 * refused at once with the given status, naming what they are. */
static void test_open_input(void **state)
{
    fx_t *fx = *state;
    char p[192];
    int fd = 0;
    long long size = -1;
    FILE *f = NULL;
    write_file(fx->path, "12345");
    assert_int_equal(cnn_fs_open_input(fx->path, CNN_EDATA, "a CSV file", &fd, &size), CNN_OK);
    assert_true(fd >= 0);
    assert_true(size == 5);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    close(fd);
    assert_int_equal(cnn_fs_fopen_input(fx->path, CNN_EDATA, "a CSV file", &f, NULL), CNN_OK);
    char buf[8] = "";
    assert_int_equal(fread(buf, 1, sizeof buf, f), 5);
    fclose(f);

    snprintf(p, sizeof p, "%s/fifo", fx->dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(cnn_fs_open_input(p, CNN_EDATA, "an IDX file", &fd, &size), CNN_EDATA);
    assert_int_equal(fd, -1);
    assert_msg_has("/fifo: is a FIFO, not an IDX file");
    assert_int_equal(cnn_fs_fopen_input(p, CNN_ECONFIG, "a config file", &f, NULL), CNN_ECONFIG);
    assert_null(f);
    assert_int_equal(cnn_fs_open_input(fx->dir, CNN_EDATA, "an HDF5 file", &fd, NULL), CNN_EDATA);
    assert_msg_has(": is a directory, not an HDF5 file");
    snprintf(p, sizeof p, "%s/missing", fx->dir);
    assert_int_equal(cnn_fs_open_input(p, CNN_EDATA, "an IDX file", &fd, NULL), CNN_EDATA);
    assert_msg_has("/missing: cannot open: No such file or directory");
    assert_int_equal(cnn_fs_open_input("/dev/null", CNN_EDATA, "a PNG file", &fd, NULL),
                     CNN_EDATA);
    assert_msg_has("/dev/null: is a character device, not a PNG file");
}

static void test_mkdir_p(void **state)
{
    fx_t *fx = *state;
    char p[192];
    snprintf(p, sizeof p, "%s/a/b/c", fx->dir);
    assert_int_equal(cnn_fs_mkdir_p(p), CNN_OK);
    assert_true(is_dir(p));
    assert_int_equal(cnn_fs_mkdir_p(p), CNN_OK); /* existing: fine */
    snprintf(p, sizeof p, "%s/a/d/", fx->dir);   /* a trailing slash */
    assert_int_equal(cnn_fs_mkdir_p(p), CNN_OK);
    assert_true(is_dir(p));
    assert_int_equal(cnn_fs_mkdir_p(fx->dir), CNN_OK);

    assert_int_equal(cnn_fs_mkdir_p(""), CNN_EUSAGE);
    /* through a regular file, and a regular file itself */
    write_file(fx->path, "x");
    snprintf(p, sizeof p, "%s/x/y", fx->path);
    assert_int_equal(cnn_fs_mkdir_p(p), CNN_EIO);
    assert_msg_has(fx->path);
    assert_int_equal(cnn_fs_mkdir_p(fx->path), CNN_EIO);
    assert_msg_has("not a directory");
}

static void test_fsync_dir(void **state)
{
    fx_t *fx = *state;
    char p[160];
    assert_int_equal(cnn_fs_fsync_dir(fx->dir), CNN_OK);
    snprintf(p, sizeof p, "%s/missing", fx->dir);
    assert_int_equal(cnn_fs_fsync_dir(p), CNN_EIO);
    assert_msg_has(p);
}

static void test_fs_error(void **state)
{
    (void)state;
    assert_int_equal(cnn_fs_error("x.csv", "write", ENOSPC), CNN_EIO);
    assert_string_equal(cnn_error_message(), "x.csv: write: disk full (No space left on device)");
    assert_int_equal(cnn_fs_error("x.csv", "cannot create", ENOENT), CNN_EIO);
    assert_string_equal(cnn_error_message(), "x.csv: cannot create: No such file or directory");
}

/* ---- rng.h -------------------------------------------------------------- */

static void test_rng_below(void **state)
{
    (void)state;
    const uint64_t ms[] = {1, 2, 3, 7, 10, 1000, (1ULL << 63) + 1, UINT64_MAX};
    for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) {
        uint64_t s = 12345 + k;
        for (int i = 0; i < 10000; i++)
            if (cnn_rng_below(&s, ms[k]) >= ms[k])
                fail_msg("a value >= %llu", (unsigned long long)ms[k]);
    }
    /* every value of a small range comes up; the sequence is the seed's */
    uint64_t s = 7, t = 7;
    int seen[10] = {0};
    for (int i = 0; i < 1000; i++) seen[cnn_rng_below(&s, 10)]++;
    for (int v = 0; v < 10; v++) assert_true(seen[v] > 0);
    s = 7;
    for (int i = 0; i < 100; i++) assert_true(cnn_rng_below(&s, 1000) == cnn_rng_below(&t, 1000));
    /* splitmix64 of state 0: its published first output */
    uint64_t z = 0;
    assert_true(cnn_rng_next(&z) == 0xe220a8397b1dcdafULL);
}

static void test_fnv1a(void **state)
{
    (void)state;
    /* the FNV-1a 64 test vectors */
    assert_true(cnn_fnv1a(CNN_FNV1A_INIT, "", 0) == 0xcbf29ce484222325ULL);
    assert_true(cnn_fnv1a(CNN_FNV1A_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(cnn_fnv1a(CNN_FNV1A_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
    /* continuing from h is hashing the concatenation */
    uint64_t h = cnn_fnv1a(CNN_FNV1A_INIT, "foo", 3);
    assert_true(cnn_fnv1a(h, "bar", 3) == 0x85944171f73967e8ULL);
    /* the config hash is FNV-1a of the text */
    assert_true(cnn_config_hash("foobar") == 0x85944171f73967e8ULL);
}

static void test_crc32c(void **state)
{
    (void)state;
    /* the standard check value, and the iSCSI test vectors (RFC 3720 B.4) */
    assert_true(cnn_crc32c(0, "123456789", 9) == 0xE3069283u);
    assert_true(cnn_crc32c(0, "", 0) == 0);
    unsigned char b[48];
    memset(b, 0, 32);
    assert_true(cnn_crc32c(0, b, 32) == 0x8A9136AAu);
    memset(b, 0xff, 32);
    assert_true(cnn_crc32c(0, b, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    assert_true(cnn_crc32c(0, b, 32) == 0x46DD794Eu);
    /* continuing from crc is the CRC of the concatenation, at any split
     * and alignment (the 8-byte loop and the byte loop agree) */
    for (int i = 0; i < 48; i++) b[i] = (unsigned char)(i * 37 + 11);
    const uint32_t whole = cnn_crc32c(0, b, 48);
    for (size_t cut = 0; cut <= 48; cut++)
        assert_true(cnn_crc32c(cnn_crc32c(0, b, cut), b + cut, 48 - cut) == whole);
    assert_true(cnn_crc32c(0, b + 1, 47) == cnn_crc32c(cnn_crc32c(0, b + 1, 5), b + 6, 42));
    /* one flipped bit changes it */
    b[20] ^= 0x10;
    assert_true(cnn_crc32c(0, b, 48) != whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_new_file, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_abort, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_keeps_old, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_dir_removed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_target_is_dir, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_begin_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_clean_stale, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_input, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_p, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fsync_dir, fx_setup, fx_teardown),
        cmocka_unit_test(test_fs_error),
        cmocka_unit_test(test_rng_below),
        cmocka_unit_test(test_fnv1a),
        cmocka_unit_test(test_crc32c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
