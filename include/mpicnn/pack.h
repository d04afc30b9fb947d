/* pack.h - `mpicnn pack`: a data set converted into one HDF5 data file.
 *
 * The sources are an image folder DIR/<class>/<image> (PNG or JPEG, told
 * apart by their magic bytes), an IDX images + labels pair, or CIFAR-10 /
 * CIFAR-100 binary batches. The ranks of the communicator split the
 * images into contiguous ranges in the source's order, decode and convert
 * their own, and write their own slabs of one file through parallel HDF5
 * (the MPI-IO driver). The data in the file (/images, /labels, /classes,
 * /normalization and the attributes) are the same bytes whatever the
 * number of ranks. The layout is docs/data-format.md.
 *
 * The file is written through the atomic writer of fs.h: it appears under
 * its final name only when complete; a failed or killed pack leaves at
 * most a temp file `.NAME.tmp.HOST.PID` (removed by the next pack of the
 * same name on that host).
 *
 * MPICNN_FAULT (fault.h) counts each image as a step here: kill@K kills
 * the rank that decodes image K (1-based, in source order) as it starts
 * on it, which the tests use to show a killed pack. */
#ifndef MPICNN_PACK_H
#define MPICNN_PACK_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicnn/datafile.h"
#include "mpicnn/status.h"

typedef enum {
    CNN_PACK_FOLDER = 0, /* inputs[0] = DIR */
    CNN_PACK_IDX,        /* inputs[0] = images file, labels = labels file */
    CNN_PACK_CIFAR10,    /* inputs = batch files, in order */
    CNN_PACK_CIFAR100
} cnn_pack_source_t;

typedef enum { CNN_PACK_STRETCH = 0, CNN_PACK_CROP } cnn_pack_fit_t;

typedef struct {
    cnn_pack_source_t source;
    const char *const *inputs; /* ninputs paths (borrowed) */
    int ninputs;
    const char *labels;        /* IDX labels file, else NULL */
    int coarse;                /* CIFAR-100: the 20 superclasses */
    const char *out;           /* the data file to write */
    int resize_h, resize_w;    /* 0, 0: keep the images' size (all must agree) */
    cnn_pack_fit_t fit;        /* with resize: stretch, or centre-crop to the aspect first */
    int channels;              /* 1 or 3; 0: 3 if any image has colour, else 1 */
    int skip_bad;              /* 1: skip (and list) bad files; 0: the first one fails */
    const char *classes_from;  /* a data file whose /classes number ours, or NULL */
    const char *options;       /* the options as given, stored as the `options` attribute */
    uint64_t max_bytes;        /* this rank's memory budget (memlimit.h); 0 or
                                  UINT64_MAX: none */
    const char *max_why;       /* where the budget comes from, for messages */
} cnn_pack_opts_t;

typedef struct {
    size_t n;            /* images in the file */
    int c, h, w;         /* their shape */
    int nclasses;
    size_t nskipped;     /* bad files and entries skipped (every rank) */
    char *skipped;       /* rank 0: one line "PATH: why\n" per skipped entry, in
                            source order (malloc'd, NULL if none); other ranks NULL */
    float mean[3], std[3]; /* the stored /normalization (c values) */
} cnn_pack_report_t;

/* Collective over comm: packs the source of o into o->out. Every rank
 * gets the same status (cnn_dist_agree) and *rep (rep->skipped only on
 * rank 0). Errors: CNN_EUSAGE for inconsistent options; CNN_EDATA for a
 * bad source (naming the file: a missing folder, no class folder, a bad
 * image when !skip_bad, images of different sizes without a resize, no
 * image at all, a class --classes-from's file lacks), CNN_EIO for the
 * output, CNN_ECOMM, CNN_ENOMEM. On failure no file is left under
 * o->out's name (an existing one is left as it was). */
cnn_status_t cnn_pack(MPI_Comm comm, const cnn_pack_opts_t *o, cnn_pack_report_t *rep);

/* Frees rep->skipped and zeroes *rep. NULL is a no-op. */
void cnn_pack_report_free(cnn_pack_report_t *rep);

#endif
