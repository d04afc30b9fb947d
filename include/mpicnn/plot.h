/* plot.h - pictures of a trained net (`mpicnn plot`).
 *
 * Two kinds. Image grids (conv filters, activation maps, labelled test
 * images) are drawn pixel by pixel into an RGB canvas, with a built-in 5x7
 * bitmap font (printable ASCII) for the captions, and written with
 * cnn_png_write(). Charts with axes (learning curves, the confusion
 * matrix) are drawn by gnuplot, run as a subprocess on a script and data
 * files that these functions write into a work directory.
 *
 * Layout of the grids, in pixels (M = CNN_PLOT_MARGIN, G = CNN_PLOT_GAP,
 * L = CNN_PLOT_LINE, T = CNN_PLOT_TITLE). Every grid has a margin of M
 * all round and a title line of height T on top:
 *   width  = 2*M + max(content width, width of the title)
 *   height = 2*M + T + content height
 * The content per picture:
 *   filters      tiles of KW*S x KH*S, S = clamp(48 / max(KH,KW), 2, 16),
 *                G apart. C = 1 or 3: one tile per filter (gray / RGB),
 *                cols = min(K, 8), rows = ceil(K / cols). Any other C:
 *                one row per filter, one gray tile per input channel.
 *   activations  one block per image, M apart: a caption line (L), then
 *                the input image at scale Si, M pixels, and the grid of
 *                the C channel maps (tiles W*S x H*S, G apart, cols =
 *                min(C, 8), or min(C, 16) for 1x1 maps); S and Si =
 *                clamp(ceil(40 / max(side)), 1, 16) of the map and of the
 *                input. Content width is at least the widest caption.
 *   image grid   cells M apart of max(w*S, widest caption) x (h*S + 2*L),
 *                S = clamp(ceil(72 / max(h,w)), 1, 8), cols = min(n, 6);
 *                the image centred on top, two caption lines below.
 * Value tiles are normalised to 0..255 over a stated range and upscaled
 * with nearest neighbour. */
#ifndef MPICNN_PLOT_H
#define MPICNN_PLOT_H

#include <stdint.h>

#include "mpicnn/status.h"

#define CNN_PLOT_MARGIN 8
#define CNN_PLOT_GAP 2
#define CNN_PLOT_LINE 10      /* one line of the 5x7 font: 7 rows + 3 */
#define CNN_PLOT_TITLE 14     /* the title line and the space under it */
#define CNN_PLOT_CHAR 6       /* advance of one character: 5 columns + 1 */
#define CNN_PLOT_MAX_SIDE 8192 /* largest canvas side */

/* An RGB picture in memory. */
typedef struct {
    int w, h;
    uint8_t *rgb; /* (h, w, 3) (owned) */
} cnn_canvas_t;

/* Allocates a w x h canvas filled with white. CNN_EUSAGE if a side is
 * outside 1..CNN_PLOT_MAX_SIDE, CNN_ENOMEM. *cv is zeroed on failure.
 * Free with cnn_canvas_free(). */
cnn_status_t cnn_canvas_create(int w, int h, cnn_canvas_t *cv);

/* Frees cv->rgb and zeroes *cv. NULL is a no-op. */
void cnn_canvas_free(cnn_canvas_t *cv);

/* Draws `text` with its top-left corner at (x, y) in colour rgb, one
 * character every CNN_PLOT_CHAR pixels; pixels off the canvas are
 * clipped. Characters outside printable ASCII are drawn as '?'. */
void cnn_canvas_text(cnn_canvas_t *cv, int x, int y, const char *text, const uint8_t rgb[3]);

/* Width in pixels of `text` drawn by cnn_canvas_text(). */
int cnn_plot_text_width(const char *text);

/* The conv filters w (K, C, KH, KW) as a grid (layout above), each filter
 * normalised on its own over all its C*KH*KW values (a constant filter is
 * mid-gray). title is drawn on the first line. *out is a new canvas.
 * CNN_EUSAGE for a dimension < 1 or a picture over CNN_PLOT_MAX_SIDE;
 * CNN_ENOMEM. */
cnn_status_t cnn_plot_filters(const float *w, int K, int C, int KH, int KW, const char *title,
                              cnn_canvas_t *out);

/* Activation maps act (n, C, H, W) of n images, each channel's tiles drawn
 * with the viridis colour map normalised over that channel's values in
 * all n images (so the images compare). images (n, ic, ih, iw) are the
 * inputs as bytes (ic 1 gray or 3 RGB; any other ic shows channel 0);
 * captions[i] (may be NULL) is the caption line of image i. */
cnn_status_t cnn_plot_activations(const float *act, int n, int C, int H, int W,
                                  const uint8_t *images, int ic, int ih, int iw,
                                  const char *const *captions, const char *title,
                                  cnn_canvas_t *out);

/* A grid of n images (n, c, h, w) as bytes (c 1 gray or 3 RGB), each with
 * two caption lines below it: line1[i] in dark gray, line2[i] in red.
 * n may be 0: the picture is then the title alone. */
cnn_status_t cnn_plot_image_grid(const uint8_t *images, int n, int c, int h, int w,
                                 const char *const *line1, const char *const *line2,
                                 const char *title, cnn_canvas_t *out);

/* ---- gnuplot ----------------------------------------------------------- */

/* Runs `program` (a name looked up in PATH, or a path) on the script
 * `script`, with stdin from /dev/null and stdout and stderr into the file
 * `log`. CNN_EUNAVAIL if the program cannot be found or started;
 * CNN_EIO if it fails (exit status or signal), the message ending with
 * the last lines of its output. */
cnn_status_t cnn_gnuplot_run(const char *program, const char *script, const char *log);

/* 1 if `program` names an executable file (directly, or found in PATH). */
int cnn_gnuplot_found(const char *program);

/* Learning curves as a 960 x 400 PNG at `png`: train and validation loss
 * on the left, train and validation accuracy on the right, against the
 * epoch. rows (nrows, 8) are history rows (columns as
 * CNN_HISTORY_COLS); non-finite values are left out (a curve without a
 * single finite value is not drawn). Writes curves.dat, curves.gp and
 * curves.log into `workdir` and removes them on success (they are kept
 * on failure, for the message). png is replaced atomically. */
cnn_status_t cnn_plot_learning_curves(const char *program, const char *workdir,
                                      const double *rows, int nrows, const char *title,
                                      const char *png);

/* Side in pixels of the confusion-matrix PNG of K classes:
 * clamp(240 + 48*K, 480, 1600). */
int cnn_plot_confusion_side(int K);

/* The confusion matrix conf (K, K) (rows: true class, columns: predicted)
 * as a heat map at `png`, cnn_plot_confusion_side(K) pixels square: each
 * cell coloured by its share of the row (the recall of the class on the
 * diagonal), with its count written in it when K <= 30; names (K) label
 * the axes. Work files confusion.{dat,gp,log} as for the curves. */
cnn_status_t cnn_plot_confusion(const char *program, const char *workdir, const long *conf,
                                int K, const char *const *names, const char *title,
                                const char *png);

#endif
