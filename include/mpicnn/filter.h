/* filter.h - classic image filters run through the conv layer.
 *
 * A filter is one or two square kernels of odd size and a rule that turns
 * their responses into a pixel. Filtering an image runs it through a
 * one-layer network whose only layer is the same conv layer the trainer
 * uses (im2col + GEMM): each colour channel is filtered on its own, as a
 * batch of single-channel images, with zero padding and an output of the
 * same size as the input. Like the conv layer (and PyTorch), the kernel is
 * applied as a cross-correlation, without flipping:
 *     y[i][j] = sum over a,b of  k[a][b] * x[i + a - r][j + b - r],  r = size/2,
 * with x = 0 outside the image. All built-in kernels but the gradient pair
 * are symmetric, and the gradient is used only through its magnitude, so
 * flipping makes no difference for them; a CSV kernel that should act as
 * a true convolution must be written flipped (rows and columns reversed).
 *
 * Built-in kernels (the name given to cnn_filter_create):
 *   box:N    N x N mean, every weight 1/N^2, N odd in 1..99; "box" is box:3
 *   sharpen  [0,-1,0; -1,5,-1; 0,-1,0]
 *   edge     the 4-neighbour Laplacian [0,1,0; 1,-4,1; 0,1,0]; the output
 *            is its absolute value, so dark-to-light and light-to-dark
 *            edges both show up bright on black
 *   sobel    gradient magnitude sqrt(h^2 + v^2) of the central differences
 *            h = x[i][j+1] - x[i][j-1] and v = x[i+1][j] - x[i-1][j]
 *            (the name follows the issue; the textbook Sobel operator adds
 *            a [1,2,1] smoothing across the derivative)
 * Anything else that names a file is read as a CSV kernel (numbers
 * separated by commas, spaces or newlines, row-major): its count must be
 * the square of an odd number up to 99.
 *
 * Pixels are filtered as floats in 0..255 (not normalised), then rounded
 * to the nearest integer (halves up) and clamped to 0..255: negative
 * responses of sharpen and of CSV kernels become 0, edge takes the
 * absolute value first. An alpha channel is not filtered: it is copied. */
#ifndef MPICNN_FILTER_H
#define MPICNN_FILTER_H

#include "mpicnn/png.h"
#include "mpicnn/status.h"

#define CNN_FILTER_MAX_SIZE 99

typedef enum {
    CNN_FILTER_CLAMP,     /* one kernel: the response, clamped */
    CNN_FILTER_ABS,       /* one kernel: |response|, clamped */
    CNN_FILTER_MAGNITUDE  /* two kernels: sqrt(r0^2 + r1^2), clamped */
} cnn_filter_mode_t;

typedef struct {
    char name[64];           /* "box:5", "sharpen", ... or the CSV path
                                (truncated), for messages */
    int size;                /* kernel side, odd, 1..CNN_FILTER_MAX_SIZE */
    int nkernels;            /* 1, or 2 for CNN_FILTER_MAGNITUDE */
    cnn_filter_mode_t mode;
    float *weights;          /* (nkernels, size, size), as the conv layer's
                                W (K,1,KH,KW) (owned) */
} cnn_filter_t;

/* Makes the filter named by `spec`: a built-in name above, or the path of
 * a CSV kernel file. A spec that is neither a built-in name nor contains
 * '/' or '.' nor names an existing file is taken as a misspelt name.
 * Errors: CNN_EUSAGE for an unknown name or a bad box size (the message
 * names --kernel and lists the choices); CNN_EDATA for a CSV file that is
 * missing, unreadable, not numeric or whose count is not an odd square
 * (naming the file and the count); CNN_ENOMEM. On success *out is owned
 * by the caller (free with cnn_filter_free()); on failure it is NULL. */
cnn_status_t cnn_filter_create(const char *spec, cnn_filter_t **out);

/* Frees the filter and its weights. NULL is a no-op. */
void cnn_filter_free(cnn_filter_t *f);

/* Filters `in` (1..4 channels; the alpha channel of a 2- or 4-channel
 * image is copied) into *out, an image of the same size and channels
 * whose pixels the caller owns (free with cnn_image_free()). Uses
 * OpenMP's default thread count. Work memory is bounded (some tens of MB
 * whatever the image and kernel size): the image is cut into tiles, each
 * with its halo of r pixels (zeros outside the image). On failure *out is
 * all zero. Errors: CNN_EUSAGE for an empty image or a
 * channel count outside 1..4, CNN_ENOMEM. */
cnn_status_t cnn_filter_apply(const cnn_filter_t *f, const cnn_image_t *in,
                              cnn_image_t *out);

#endif
