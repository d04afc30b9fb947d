/* datafile.h - the writer of data files (docs/data-format.md) that
 * `mpicnn pack` uses.
 *
 * The images and labels are written by every rank in parallel, each its
 * own contiguous slab, through HDF5's MPI-IO driver; rank 0 then reopens
 * the file alone and adds the small objects (/classes, /normalization, the
 * root attributes) with the serial writer of h5io.h, and seals the two big
 * datasets (seal_slab_datasets in datafile.c: it reads them back and
 * checks them against what the ranks decoded; that is where each gets its
 * checksum). */
#ifndef MPICNN_DATAFILE_H
#define MPICNN_DATAFILE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicnn/fs.h"
#include "mpicnn/status.h"

/* Root attribute `format` and `format_version` of a data file. */
#define CNN_DATA_FORMAT "mpicnn-data"
#define CNN_DATA_FORMAT_VERSION 1

/* Bytes of one chunk of /images (at most; at least one image). */
#define CNN_DATA_CHUNK_BYTES ((size_t)1 << 20)

typedef struct {
    size_t n;                  /* images in the file */
    int c, h, w;               /* shape of one image */
    size_t first, count;       /* this rank's slab: images first .. first+count-1 */
    const uint8_t *images;     /* (count, c, h, w) of this rank */
    const int32_t *labels;     /* (count) of this rank */
    const uint64_t *sums;      /* (c + 1): per-channel pixel sums over the whole
                                  file, then the sum of all labels (same on every
                                  rank), to check what was stored */
    /* rank 0 only */
    int nclasses;
    const char *const *classes;  /* (nclasses) */
    const float *mean, *std;     /* (c) */
    const char *source, *options, *resize, *fit, *channels;
    int64_t skipped;
} cnn_datafile_t;

/* /images chunk rows: max(1, floor(CNN_DATA_CHUNK_BYTES / (c*h*w))), at
 * most n (and at least 1). */
size_t cnn_datafile_chunk_images(size_t n, int c, int h, int w);

/* Collective over comm: writes d into the temp file `tmp` (the same path
 * on every rank; rank 0 made it with cnn_afile_begin and passes `out`,
 * other ranks NULL). Rank 0 leaves the file closed and complete but not
 * committed: the caller commits or aborts out. Every rank returns the
 * same status. */
cnn_status_t cnn_datafile_write(MPI_Comm comm, const char *tmp, cnn_afile_t *out,
                                const cnn_datafile_t *d);

#endif
