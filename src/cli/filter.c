/* filter.c - `mpicnn filter IN.png OUT.png --kernel NAME|FILE`: a classic
 * image filter run through the conv layer (see mpicnn/filter.h). */
#include <stdio.h>

#include "cli.h"
#include "mpicnn/filter.h"
#include "mpicnn/png.h"

static const char filter_usage[] =
    "usage: mpicnn filter IN.png OUT.png --kernel NAME|FILE\n"
    "  Filters each colour channel of an 8-bit gray, RGB or RGBA PNG with one\n"
    "  kernel through the conv layer (zero padding, same size out; alpha is\n"
    "  copied). The kernel is applied like the conv layer's weights, as a\n"
    "  cross-correlation (not flipped). Results are rounded and clamped to 0..255.\n"
    "  --kernel box[:N]  N x N mean, N odd in 1..99 (default 3)\n"
    "           sharpen  [0,-1,0; -1,5,-1; 0,-1,0]\n"
    "           edge     |Laplacian| with [0,1,0; 1,-4,1; 0,1,0]\n"
    "           sobel    gradient magnitude sqrt(h^2+v^2) of the central differences\n"
    "           FILE     a CSV file of N x N numbers (N odd), row-major\n";

cnn_status_t cli_filter(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", NULL};
    cli_args_t a;
    cnn_image_t in = {0}, out = {0};
    cnn_filter_t *f = NULL;
    const char *spec;
    cnn_status_t st;
    (void)comm; /* rank 0 alone runs this command */

    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help")) {
        fputs(filter_usage, stdout);
        return CNN_OK;
    }
    if (a.npos != 2) {
        fputs(filter_usage, stderr);
        return cnn_error_set(CNN_EUSAGE, "filter: expected IN.png and OUT.png, got %d argument%s",
                             a.npos, a.npos == 1 ? "" : "s");
    }
    CNN_TRY(cli_need(&a, "--kernel", &spec));
    CNN_TRY(cli_check_unused(&a));
    CNN_TRY(cnn_filter_create(spec, &f));
    if ((st = cnn_png_read(a.pos[0], &in)) != CNN_OK) goto done;
    if ((st = cnn_filter_apply(f, &in, &out)) != CNN_OK) goto done;
    st = cnn_png_write(a.pos[1], out.pixels, out.w, out.h, out.channels);
done:
    cnn_image_free(&in);
    cnn_image_free(&out);
    cnn_filter_free(f);
    return st;
}
