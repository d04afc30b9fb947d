/* csv.h - flat arrays of numbers in text files, as numpy.savetxt writes
 * them (with or without delimiter=','). Used by `mpicnn op`. */
#ifndef MPICNN_CSV_H
#define MPICNN_CSV_H

#include <stddef.h>

#include "mpicnn/status.h"

/* Reads every number in `path` (separated by commas, spaces, tabs or
 * newlines; '#' starts a comment to the end of the line) in order.
 * `what` names the value in messages (e.g. "--x"). On success *out is a
 * malloc'd array of *n floats that the caller frees. Errors: CNN_EDATA for
 * a missing/unreadable file or a token that is not a finite number (the
 * message gives the line and the token), CNN_ENOMEM. */
cnn_status_t cnn_csv_read(const char *path, const char *what, float **out,
                          size_t *n);

/* Parses numbers from a string the same way (what/name for messages). */
cnn_status_t cnn_csv_parse(const char *text, size_t len, const char *what,
                           const char *name, float **out, size_t *n);

/* Writes n values, one per line with 9 significant digits, atomically
 * (fs.h): `path` is the old file or the complete new one. CNN_EIO names
 * the file if it cannot be created ("PATH: cannot create: why") or
 * written completely. */
cnn_status_t cnn_csv_write(const char *path, const float *v, size_t n);

/* The same in double: numbers unrounded (finite, within float32's range
 * as above), written with 17 significant digits (which read back to the
 * same double). */
cnn_status_t cnn_csv_parse64(const char *text, size_t len, const char *what,
                             const char *name, double **out, size_t *n);
cnn_status_t cnn_csv_read64(const char *path, const char *what, double **out, size_t *n);
cnn_status_t cnn_csv_write64(const char *path, const double *v, size_t n);

#endif
