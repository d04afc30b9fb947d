/* knn.h - k-nearest-neighbour classification, as a baseline for the CNN.
 *
 * Images: squared L2 distance on the raw pixel bytes (0..255). Distances
 * are computed EXACTLY: with the GEMM identity
 *     ||a - b||^2 = ||a'||^2 + ||b'||^2 - 2 a'.b',   a' = a - 128, b' = b - 128
 * the centred values are integers in [-128, 127], so every partial sum of
 * a dot product over at most 1024 of them is an integer below 2^24 and a
 * float GEMM (cnn_sgemm) gets it without rounding; longer vectors are cut
 * into chunks of 1024 whose dot products are summed in double (exact up
 * to 2^53). Exact distances make ties real ties, resolved the same way
 * whatever the blocking, the thread count or the number of ranks.
 *
 * Neighbour order: by distance, then by the smaller (global) training
 * index. Vote among the k nearest: the label with the most votes; a tie
 * goes to the label whose votes have the smaller summed distance, and
 * then to the smaller label.
 *
 * Distribution (cnn_knn_classify): every rank holds the whole training
 * and test sets but searches only its contiguous shard of the training
 * set (cnn_sampler_eval_range), with OpenMP over blocks of test images.
 * Rank 0 gathers each rank's k candidates per test image (MPI_Gather of
 * fixed-size arrays), keeps the k best and votes.
 *
 * Points (the decision-region plot): 2-D points with up to 10 classes
 * named by short string labels, the same neighbour order and vote (on
 * the class indices), in double precision. */
#ifndef MPICNN_KNN_H
#define MPICNN_KNN_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicnn/memlimit.h"
#include "mpicnn/status.h"

#define CNN_KNN_MAX_K 1000
#define CNN_KNN_POINT_CLASSES 10 /* classes in points mode (palette) */
#define CNN_KNN_LABEL_MAX 31     /* characters of a points-mode label */
#define CNN_KNN_MAX_PLOT 4096    /* largest plot side in pixels */

/* One neighbour. An empty slot (fewer than k training samples) has
 * dist = +inf, index = INT64_MAX and label = -1. */
typedef struct {
    double dist;     /* squared L2 distance (exact for images) */
    int64_t index;   /* global index of the training sample */
    int32_t label;   /* its label */
} cnn_knn_cand_t;

/* The local search. train is (ntrain, dim) bytes with labels (ntrain);
 * only rows [lo, hi) are searched, and their index in `train` is the
 * index reported. test is (ntest, dim). best (ntest, k), written by this
 * call, gets for each test image its k nearest of the searched rows,
 * sorted by (dist, index); slots beyond hi - lo are empty. Uses OpenMP's
 * default thread count; the BLAS should be single-threaded
 * (cnn_blas_single_thread()). Errors: CNN_EUSAGE for k outside
 * 1..CNN_KNN_MAX_K, dim 0 or lo > hi; CNN_ENOMEM (work buffers). */
cnn_status_t cnn_knn_search(const uint8_t *train, const int32_t *labels, size_t lo,
                            size_t hi, const uint8_t *test, size_t ntest, size_t dim,
                            int k, cnn_knn_cand_t *best);

/* The vote over one image's candidates c (k, sorted, empty slots allowed;
 * rule above). Returns the label, or -1 if every slot is empty. */
int32_t cnn_knn_vote(const cnn_knn_cand_t *c, int k);

/* Collective over comm: classifies the ntest test images. Every rank
 * passes the same train (ntrain, dim), labels (ntrain) and test (ntest,
 * dim); rank r searches training rows [ntrain*r/P, ntrain*(r+1)/P).
 * On rank 0, pred (ntest) gets the predicted labels; on other ranks pred
 * is not touched and may be NULL. The result does not depend on the
 * number of ranks or threads. A failure on any rank (memory, MPI) is
 * agreed on, so every rank returns an error together (cnn_dist_agree).
 * Errors: as cnn_knn_search, and CNN_ECOMM. */
cnn_status_t cnn_knn_classify(MPI_Comm comm, const uint8_t *train, const int32_t *labels,
                              size_t ntrain, const uint8_t *test, size_t ntest, size_t dim,
                              int k, int32_t *pred);

/* What cnn_knn_classify allocates on `rank` of `nranks` for these sizes,
 * with OpenMP's default thread count, as two plan items (memlimit.h):
 * the search's blocks and the candidates. A size that overflows is
 * SIZE_MAX. For checking against a budget before the search. */
void cnn_knn_plan(size_t ntrain, size_t ntest, size_t dim, int k, int rank, int nranks,
                  cnn_mem_item_t items[2]);

/* ---- points mode ----------------------------------------------------- */

/* The classes of a points file: class i is named names[i], the label as
 * first written in the file ("" for an index no point has). */
typedef struct {
    int n; /* 1..CNN_KNN_POINT_CLASSES */
    char names[CNN_KNN_POINT_CLASSES][CNN_KNN_LABEL_MAX + 1];
} cnn_knn_classes_t;

/* Reads a CSV of one point a line, "x,y,label": fields separated by
 * commas or semicolons, or, on a line with neither, by spaces or tabs;
 * an optional first line whose first field is not a number, such as
 * "x,y,label", is a header and skipped; '#' starts a comment. x and y are
 * numbers (read as floats, as `mpicnn op` reads numbers); a label is any
 * string of 1 to CNN_KNN_LABEL_MAX characters without a comma, semicolon
 * or '#' (and without spaces when spaces separate the fields), taken as
 * written after trimming. Labels name the classes: if every label is an
 * integer in 0..9 (such as "3"), class = that integer; otherwise the
 * distinct labels are classes 0, 1, ... in order of first appearance, at
 * most CNN_KNN_POINT_CLASSES of them. On success *xy (n, 2) and *labels
 * (n, class indices) are malloc'd and owned by the caller, and *classes
 * (if not NULL) names the classes. Errors (naming the file, and the line
 * for a bad row): CNN_EDATA for a missing file, a non-number, a row
 * without exactly three fields, a bad label, more than
 * CNN_KNN_POINT_CLASSES labels, or no rows; CNN_ENOMEM. On failure both
 * pointers are NULL. */
cnn_status_t cnn_knn_points_read(const char *path, double **xy, int32_t **labels,
                                 size_t *n, cnn_knn_classes_t *classes);

/* Predicts the labels (nq) of the query points q (nq, 2) from the n points
 * xy (n, 2) with labels (n), brute force with OpenMP. Errors: CNN_EUSAGE
 * for a bad k or n = 0, CNN_ENOMEM. */
cnn_status_t cnn_knn_points_predict(const double *xy, const int32_t *labels, size_t n,
                                    const double *q, size_t nq, int k, int32_t *pred);

/* The square view of a plot: the points' bounding box, centred, with the
 * larger of its sides plus 10% margin on each side, and the same scale on
 * both axes (so distances look right: for k = 1 the regions are the
 * Voronoi cells). Pixel (row, col) covers x in [x0 + col*scale,
 * x0 + (col+1)*scale) and y in (y1 - (row+1)*scale, y1 - row*scale]: row
 * 0 is at the top, y grows upwards. Each pixel is classified at its
 * centre. */
typedef struct {
    int size;        /* pixels a side */
    double x0, y1;   /* left and top edges, in data units */
    double scale;    /* data units per pixel */
} cnn_knn_view_t;

/* The view of n >= 1 points xy (n, 2) in a size x size image. */
cnn_knn_view_t cnn_knn_view(const double *xy, size_t n, int size);

/* The pixel (row, col) that contains data point (x, y), clamped into the
 * image. */
void cnn_knn_view_pixel(const cnn_knn_view_t *v, double x, double y, int *row, int *col);

/* Class colour: the strong one for points (strong = 1) or the light one
 * for regions (strong = 0), into rgb[3]. cls in 0..9 (Tableau 10). */
void cnn_knn_palette(int cls, int strong, uint8_t rgb[3]);

/* The name of class cls's colour ("blue", ...), or "white" outside 0..9.
 * Static. */
const char *cnn_knn_palette_name(int cls);

/* Renders the decision regions of the k-NN classifier of the points into
 * rgb (size, size, 3) of view v: each pixel in the light colour of the
 * class predicted at its centre. With draw_points, each point is then
 * drawn on top, in order, as a disc in its class's strong colour with a
 * dark outline, centred on the point's pixel. The caller owns rgb.
 * Errors: as cnn_knn_points_predict. */
cnn_status_t cnn_knn_render(const double *xy, const int32_t *labels, size_t n, int k,
                            const cnn_knn_view_t *v, int draw_points, uint8_t *rgb);

/* Renders (with points, view cnn_knn_view(xy, n, size)) and writes the RGB
 * PNG `path` atomically (cnn_png_write). Errors: CNN_EUSAGE for size
 * outside 16..CNN_KNN_MAX_PLOT, as cnn_knn_render, and cnn_png_write's. */
cnn_status_t cnn_knn_plot(const char *path, const double *xy, const int32_t *labels,
                          size_t n, int k, int size);

#endif
