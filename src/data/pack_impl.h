/* pack_impl.h - the parts of `mpicnn pack` (pack.h) shared by its files:
 * pack_list.c makes the catalog (which images, in which order, with which
 * labels and class names); pack.c decodes, converts and writes them. */
#ifndef MPICNN_PACK_IMPL_H
#define MPICNN_PACK_IMPL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicnn/data.h"
#include "mpicnn/pack.h"

/* A growing text of "PATH: why\n" lines. */
typedef struct {
    char *text;
    size_t len, cap, lines;
} pack_notes_t;

/* Appends one line; CNN_ENOMEM if it cannot grow. */
cnn_status_t pack_note(pack_notes_t *nt, const char *line);
void pack_notes_free(pack_notes_t *nt);

/* What is packed, in order: the same on every rank. */
typedef struct {
    size_t n;            /* images */
    char **paths;        /* folder: (n) image files (owned); else NULL */
    int32_t *labels;     /* (n) */
    cnn_dataset_t *ds;   /* IDX / CIFAR: the images, CHW (owned); else NULL */
    int nclasses;
    char **classes;      /* (nclasses) names (owned) */
    char *source;        /* the `source` attribute text (owned) */
} pack_catalog_t;

void pack_catalog_free(pack_catalog_t *cat);

/* Collective: the catalog of o's source on every rank. A folder is listed
 * by rank 0 and broadcast; entries it skips (o->skip_bad) are noted in
 * *skipped on rank 0. With o->classes_from the labels are renumbered to
 * that file's classes, which the catalog then has. Same status on every
 * rank. */
cnn_status_t pack_catalog_make(MPI_Comm comm, const cnn_pack_opts_t *o, pack_catalog_t *cat,
                               pack_notes_t *skipped);

#endif
