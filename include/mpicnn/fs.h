/* fs.h - files and directories: the one atomic writer, the one opener of
 * input files, mkdir -p, and the fsync of a directory.
 *
 * Every file mpicnn writes (models, checkpoints, CSV, PNG, sweep reports)
 * goes through cnn_afile_*: the content is written to a temp file in the
 * same directory, named ".BASE.tmp.HOST.PID" so that a run can tell its
 * own temp files (and those of dead processes on its host) from another
 * run's; commit fsyncs it, renames it over the final name and fsyncs the
 * directory. A reader therefore sees the old file or the new one, never a
 * part, and a crash leaves at most a temp file behind. */
#ifndef MPICNN_FS_H
#define MPICNN_FS_H

#include <stdio.h>

#include "mpicnn/status.h"

typedef struct cnn_afile cnn_afile_t;

/* Starts an atomic write of `path`: creates the temp file (mode 0666 less
 * the umask) and opens it for writing. *out is owned by the caller and
 * released by cnn_afile_commit or cnn_afile_abort. CNN_EIO names path
 * ("cannot write PATH: why") and leaves the cause in errno; CNN_EUSAGE
 * for "" or a path ending in '/'; CNN_ENOMEM. */
cnn_status_t cnn_afile_begin(const char *path, cnn_afile_t **out);

/* The temp file's descriptor, open for writing. Owned by the writer: do
 * not close it. */
int cnn_afile_fd(const cnn_afile_t *f);

/* A stdio stream on the temp file (made on first call). Owned by the
 * writer: do not fclose it. NULL if fdopen fails. */
FILE *cnn_afile_stream(cnn_afile_t *f);

/* cnn_afile_begin and cnn_afile_stream in one, for text outputs: *f is
 * the stream (owned by *out). On failure nothing is left behind, *out is
 * NULL and the status is CNN_EIO "PATH: cannot create: why" (or
 * CNN_ENOMEM, CNN_EUSAGE as cnn_afile_begin). */
cnn_status_t cnn_afile_open(const char *path, cnn_afile_t **out, FILE **f);

/* Copies the rest of the open file `in` (named `src` in messages) into the
 * temp file. CNN_EIO names src for a read error, the final path for a
 * write error. */
cnn_status_t cnn_afile_copy_from(cnn_afile_t *f, FILE *in, const char *src);

/* The temp file's path, for writers that fill it by name (HDF5): they must
 * have closed it again before commit. Owned by the writer. */
const char *cnn_afile_tmp_path(const cnn_afile_t *f);

/* The final path. Owned by the writer. */
const char *cnn_afile_path(const cnn_afile_t *f);

/* Writes n bytes to the temp file (retrying short writes and EINTR). */
cnn_status_t cnn_afile_write(cnn_afile_t *f, const void *buf, size_t n);

/* Flushes the stream, fsyncs and closes the temp file, renames it to the
 * final path and fsyncs the directory. Always releases f (NULL is
 * CNN_EINTERNAL); on failure the temp file is removed and the final path
 * is untouched. CNN_EIO: "cannot write PATH: step: why" ("disk full" for
 * ENOSPC). */
cnn_status_t cnn_afile_commit(cnn_afile_t *f);

/* Closes and removes the temp file and releases f. NULL is a no-op. */
void cnn_afile_abort(cnn_afile_t *f);

/* Removes the temp files of `path` that this host's dead processes (or
 * this process) left behind; another live process's are kept. *nremoved
 * (may be NULL) counts them. A missing directory is no error. */
cnn_status_t cnn_afile_clean_stale(const char *path, int *nremoved);

/* mkdir -p: creates dir and its missing parents (mode 0777 less the
 * umask). An existing directory is fine. CNN_EUSAGE for "", CNN_EIO
 * naming the part that could not be made. */
cnn_status_t cnn_fs_mkdir_p(const char *dir);

/* Moves `from` to `to` with rename(2), the one call of it in mpicnn: the atomic
 * writer's commit and moving files aside both go through it. 0 or -1
 * with errno. */
int cnn_fs_move(const char *from, const char *to);

/* fsync of a directory, so that a rename or a new entry in it is durable.
 * File systems that cannot fsync a directory (EINVAL) are fine. */
cnn_status_t cnn_fs_fsync_dir(const char *dir);

/* Appends n bytes to an open descriptor, retrying short writes and EINTR;
 * 0 or -1 with errno. */
int cnn_fs_write_all(int fd, const void *buf, size_t n);

/* Opens `path` for reading as an input file (data, model, checkpoint,
 * config, image). Only a regular file is accepted: the open itself uses
 * O_NONBLOCK, so a FIFO or a device cannot block it (an open of a FIFO
 * waits for a writer, and only SIGKILL would end the wait), then fstat
 * refuses anything else before a byte is read. O_NONBLOCK is cleared
 * again, and the descriptor is close-on-exec. On success *fd is the
 * caller's to close and *size (may be NULL) the file's size in bytes.
 * On failure *fd is -1 and the status is `bad` (CNN_EDATA for data,
 * models and checkpoints, CNN_ECONFIG for a config file) with
 * "PATH: cannot open: why" or "PATH: is a FIFO, not KIND" (a directory,
 * a socket, a character or block device), KIND saying what was expected
 * ("an IDX file"); CNN_ENOMEM is not possible. */
cnn_status_t cnn_fs_open_input(const char *path, cnn_status_t bad, const char *kind, int *fd,
                               long long *size);

/* cnn_fs_open_input as a stdio stream ("rb"), the caller's to fclose. */
cnn_status_t cnn_fs_fopen_input(const char *path, cnn_status_t bad, const char *kind, FILE **f,
                                long long *size);

/* This host's name, cut at the first dot, with no '/' in it: the HOST of
 * temp file names, and of run directory lock holders (rundir.h). */
void cnn_fs_host_name(char *buf, size_t len);

/* "PATH: what: why" as CNN_EIO, with "disk full" for ENOSPC. */
cnn_status_t cnn_fs_error(const char *path, const char *what, int err);

#endif
