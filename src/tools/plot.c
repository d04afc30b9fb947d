/* plot.c - image grids drawn into RGB canvases, and gnuplot charts. See
 * mpicnn/plot.h for the layouts. */
#include "mpicnn/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mpicnn/fs.h"

extern char **environ;

#define M CNN_PLOT_MARGIN
#define G CNN_PLOT_GAP
#define L CNN_PLOT_LINE
#define T CNN_PLOT_TITLE
#define PATH_BUF 4352

/* ---- canvas and font ---------------------------------------------------- */

/* The classic 5x7 font, printable ASCII 0x20..0x7e: five column bytes per
 * glyph, bit 0 the top row. */
static const uint8_t font5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5f, 0x00, 0x00}, /* space ! */
    {0x00, 0x07, 0x00, 0x07, 0x00}, {0x14, 0x7f, 0x14, 0x7f, 0x14}, /* " # */
    {0x24, 0x2a, 0x7f, 0x2a, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62}, /* $ % */
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, /* & ' */
    {0x00, 0x1c, 0x22, 0x41, 0x00}, {0x00, 0x41, 0x22, 0x1c, 0x00}, /* ( ) */
    {0x14, 0x08, 0x3e, 0x08, 0x14}, {0x08, 0x08, 0x3e, 0x08, 0x08}, /* * + */
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, /* , - */
    {0x00, 0x60, 0x60, 0x00, 0x00}, {0x20, 0x10, 0x08, 0x04, 0x02}, /* . / */
    {0x3e, 0x51, 0x49, 0x45, 0x3e}, {0x00, 0x42, 0x7f, 0x40, 0x00}, /* 0 1 */
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4b, 0x31}, /* 2 3 */
    {0x18, 0x14, 0x12, 0x7f, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39}, /* 4 5 */
    {0x3c, 0x4a, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03}, /* 6 7 */
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1e}, /* 8 9 */
    {0x00, 0x36, 0x36, 0x00, 0x00}, {0x00, 0x56, 0x36, 0x00, 0x00}, /* : ; */
    {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14}, /* < = */
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, /* > ? */
    {0x32, 0x49, 0x79, 0x41, 0x3e}, {0x7e, 0x11, 0x11, 0x11, 0x7e}, /* @ A */
    {0x7f, 0x49, 0x49, 0x49, 0x36}, {0x3e, 0x41, 0x41, 0x41, 0x22}, /* B C */
    {0x7f, 0x41, 0x41, 0x22, 0x1c}, {0x7f, 0x49, 0x49, 0x49, 0x41}, /* D E */
    {0x7f, 0x09, 0x09, 0x09, 0x01}, {0x3e, 0x41, 0x49, 0x49, 0x7a}, /* F G */
    {0x7f, 0x08, 0x08, 0x08, 0x7f}, {0x00, 0x41, 0x7f, 0x41, 0x00}, /* H I */
    {0x20, 0x40, 0x41, 0x3f, 0x01}, {0x7f, 0x08, 0x14, 0x22, 0x41}, /* J K */
    {0x7f, 0x40, 0x40, 0x40, 0x40}, {0x7f, 0x02, 0x0c, 0x02, 0x7f}, /* L M */
    {0x7f, 0x04, 0x08, 0x10, 0x7f}, {0x3e, 0x41, 0x41, 0x41, 0x3e}, /* N O */
    {0x7f, 0x09, 0x09, 0x09, 0x06}, {0x3e, 0x41, 0x51, 0x21, 0x5e}, /* P Q */
    {0x7f, 0x09, 0x19, 0x29, 0x46}, {0x46, 0x49, 0x49, 0x49, 0x31}, /* R S */
    {0x01, 0x01, 0x7f, 0x01, 0x01}, {0x3f, 0x40, 0x40, 0x40, 0x3f}, /* T U */
    {0x1f, 0x20, 0x40, 0x20, 0x1f}, {0x3f, 0x40, 0x38, 0x40, 0x3f}, /* V W */
    {0x63, 0x14, 0x08, 0x14, 0x63}, {0x07, 0x08, 0x70, 0x08, 0x07}, /* X Y */
    {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7f, 0x41, 0x41, 0x00}, /* Z [ */
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7f, 0x00}, /* \ ] */
    {0x04, 0x02, 0x01, 0x02, 0x04}, {0x40, 0x40, 0x40, 0x40, 0x40}, /* ^ _ */
    {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78}, /* ` a */
    {0x7f, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, /* b c */
    {0x38, 0x44, 0x44, 0x48, 0x7f}, {0x38, 0x54, 0x54, 0x54, 0x18}, /* d e */
    {0x08, 0x7e, 0x09, 0x01, 0x02}, {0x08, 0x14, 0x54, 0x54, 0x3c}, /* f g */
    {0x7f, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7d, 0x40, 0x00}, /* h i */
    {0x20, 0x40, 0x44, 0x3d, 0x00}, {0x7f, 0x10, 0x28, 0x44, 0x00}, /* j k */
    {0x00, 0x41, 0x7f, 0x40, 0x00}, {0x7c, 0x04, 0x18, 0x04, 0x78}, /* l m */
    {0x7c, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, /* n o */
    {0x7c, 0x14, 0x14, 0x14, 0x08}, {0x08, 0x14, 0x14, 0x18, 0x7c}, /* p q */
    {0x7c, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20}, /* r s */
    {0x04, 0x3f, 0x44, 0x40, 0x20}, {0x3c, 0x40, 0x40, 0x20, 0x7c}, /* t u */
    {0x1c, 0x20, 0x40, 0x20, 0x1c}, {0x3c, 0x40, 0x30, 0x40, 0x3c}, /* v w */
    {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0c, 0x50, 0x50, 0x50, 0x3c}, /* x y */
    {0x44, 0x64, 0x54, 0x4c, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, /* z { */
    {0x00, 0x00, 0x7f, 0x00, 0x00}, {0x00, 0x41, 0x36, 0x08, 0x00}, /* | } */
    {0x08, 0x04, 0x08, 0x10, 0x08},                                 /* ~ */
};

static const uint8_t INK[3] = {40, 40, 40}, RED[3] = {200, 30, 30};

cnn_status_t cnn_canvas_create(int w, int h, cnn_canvas_t *cv)
{
    memset(cv, 0, sizeof *cv);
    if (w < 1 || h < 1 || w > CNN_PLOT_MAX_SIDE || h > CNN_PLOT_MAX_SIDE)
        return cnn_error_set(CNN_EUSAGE, "plot: a %d x %d picture is outside 1..%d pixels a side",
                             w, h, CNN_PLOT_MAX_SIDE);
    cv->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!cv->rgb) return cnn_error_set(CNN_ENOMEM, "plot: out of memory for %d x %d pixels", w, h);
    memset(cv->rgb, 255, (size_t)w * (size_t)h * 3);
    cv->w = w;
    cv->h = h;
    return CNN_OK;
}

void cnn_canvas_free(cnn_canvas_t *cv)
{
    if (!cv) return;
    free(cv->rgb);
    memset(cv, 0, sizeof *cv);
}

static void put(cnn_canvas_t *cv, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h) return;
    memcpy(cv->rgb + ((size_t)y * (size_t)cv->w + (size_t)x) * 3, rgb, 3);
}

int cnn_plot_text_width(const char *text)
{
    const size_t n = text ? strlen(text) : 0;
    return n ? (int)n * CNN_PLOT_CHAR - 1 : 0;
}

void cnn_canvas_text(cnn_canvas_t *cv, int x, int y, const char *text, const uint8_t rgb[3])
{
    for (const char *p = text; p && *p; p++, x += CNN_PLOT_CHAR) {
        const unsigned char ch = (unsigned char)*p;
        const uint8_t *g = font5x7[(ch >= 0x20 && ch <= 0x7e ? ch : '?') - 0x20];
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 7; row++)
                if (g[col] >> row & 1) put(cv, x + col, y + row, rgb);
    }
}

/* Draws text in the line whose top is y (2 px of leading above). */
static void line_text(cnn_canvas_t *cv, int x, int y, const char *text, const uint8_t rgb[3])
{
    cnn_canvas_text(cv, x, y + 2, text, rgb);
}

/* ---- value tiles -------------------------------------------------------- */

/* viridis at nine stops */
static void viridis(float t, uint8_t rgb[3])
{
    static const uint8_t stop[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},
                                       {44, 113, 142}, {33, 144, 141}, {39, 173, 129},
                                       {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
    const float u = t * 8.0f;
    int i = (int)u;
    if (i > 7) i = 7;
    const float f = u - (float)i;
    for (int k = 0; k < 3; k++)
        rgb[k] = (uint8_t)lrintf((1.0f - f) * stop[i][k] + f * stop[i + 1][k]);
}

/* v normalised over [lo, hi] into 0..1; mid-gray for an empty range. */
static float unit(float v, float lo, float hi)
{
    if (!(hi > lo)) return 0.5f;
    const float t = (v - lo) / (hi - lo);
    return t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f; /* NaN -> 0 */
}

static void range(const float *v, size_t n, float *lo, float *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
}

/* Draws planes (1: gray or viridis, 3: RGB) of an (h, w) value map with
 * `stride` floats between planes at (x, y), s pixels per value. */
static void draw_values(cnn_canvas_t *cv, int x, int y, const float *v, int planes,
                        size_t stride, int h, int w, int s, float lo, float hi, int cmap)
{
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            uint8_t rgb[3];
            const size_t i = (size_t)r * (size_t)w + (size_t)c;
            if (planes == 3) {
                for (int k = 0; k < 3; k++)
                    rgb[k] = (uint8_t)lrintf(255.0f * unit(v[i + (size_t)k * stride], lo, hi));
            } else if (cmap) {
                viridis(unit(v[i], lo, hi), rgb);
            } else {
                rgb[0] = rgb[1] = rgb[2] = (uint8_t)lrintf(255.0f * unit(v[i], lo, hi));
            }
            for (int dy = 0; dy < s; dy++)
                for (int dx = 0; dx < s; dx++) put(cv, x + c * s + dx, y + r * s + dy, rgb);
        }
}

/* An image (c, h, w) of bytes at (x, y), s pixels per pixel: RGB if c is
 * 3, else channel 0 as gray. */
static void draw_bytes(cnn_canvas_t *cv, int x, int y, const uint8_t *img, int c, int h, int w,
                       int s)
{
    const size_t plane = (size_t)h * (size_t)w;
    for (int r = 0; r < h; r++)
        for (int col = 0; col < w; col++) {
            const size_t i = (size_t)r * (size_t)w + (size_t)col;
            uint8_t rgb[3];
            for (int k = 0; k < 3; k++) rgb[k] = img[i + (c == 3 ? (size_t)k * plane : 0)];
            for (int dy = 0; dy < s; dy++)
                for (int dx = 0; dx < s; dx++) put(cv, x + col * s + dx, y + r * s + dy, rgb);
        }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static int maxi(int a, int b) { return a > b ? a : b; }

/* Scale that makes `side` pixels at least `target`, within 1..cap. */
static int scale_for(int side, int target, int cap)
{
    return clampi((target + side - 1) / side, 1, cap);
}

/* A canvas of content width cw (at least the title) and height ch, with
 * the margins and the title line; the title drawn. */
static cnn_status_t frame(long cw, long ch, const char *title, cnn_canvas_t *out)
{
    const long w = 2L * M + (cw > cnn_plot_text_width(title) ? cw : cnn_plot_text_width(title));
    const long h = 2L * M + T + ch;
    if (w > CNN_PLOT_MAX_SIDE || h > CNN_PLOT_MAX_SIDE)
        return cnn_error_set(CNN_EUSAGE, "plot: the picture would be %ld x %ld pixels (at most %d "
                             "a side)", w, h, CNN_PLOT_MAX_SIDE);
    CNN_TRY(cnn_canvas_create((int)w, (int)h, out));
    line_text(out, M, M - 2, title, INK);
    return CNN_OK;
}

/* ---- pictures ----------------------------------------------------------- */

cnn_status_t cnn_plot_filters(const float *w, int K, int C, int KH, int KW, const char *title,
                              cnn_canvas_t *out)
{
    memset(out, 0, sizeof *out);
    if (!w || K < 1 || C < 1 || KH < 1 || KW < 1 || K > 4096 || C > 4096 || KH > 512 || KW > 512)
        return cnn_error_set(CNN_EUSAGE, "plot: bad filter shape (%d,%d,%d,%d)", K, C, KH, KW);
    const int S = clampi(48 / maxi(KH, KW), 2, 16), tw = KW * S, th = KH * S;
    const int joint = C == 1 || C == 3; /* one tile per filter */
    const int cols = joint ? (K < 8 ? K : 8) : C, rows = joint ? (K + cols - 1) / cols : K;
    CNN_TRY(frame((long)cols * tw + (cols - 1L) * G, (long)rows * th + (rows - 1L) * G, title,
                  out));
    const size_t fsize = (size_t)C * (size_t)KH * (size_t)KW, plane = (size_t)KH * (size_t)KW;
    for (int k = 0; k < K; k++) {
        const float *f = w + (size_t)k * fsize;
        float lo, hi;
        range(f, fsize, &lo, &hi);
        for (int c = 0; c < (joint ? 1 : C); c++) {
            const int col = joint ? k % cols : c, row = joint ? k / cols : k;
            draw_values(out, M + col * (tw + G), M + T + row * (th + G), f + (size_t)c * plane,
                        joint ? C : 1, plane, KH, KW, S, lo, hi, 0);
        }
    }
    return CNN_OK;
}

cnn_status_t cnn_plot_activations(const float *act, int n, int C, int H, int W,
                                  const uint8_t *images, int ic, int ih, int iw,
                                  const char *const *captions, const char *title,
                                  cnn_canvas_t *out)
{
    memset(out, 0, sizeof *out);
    if (!act || !images || n < 1 || C < 1 || H < 1 || W < 1 || ic < 1 || ih < 1 || iw < 1 ||
        n > 1024 || C > 65536 || H > 4096 || W > 4096 || ih > 4096 || iw > 4096)
        return cnn_error_set(CNN_EUSAGE, "plot: bad activation shape (%d,%d,%d,%d)", n, C, H, W);
    const int S = scale_for(maxi(H, W), 40, 16), Si = scale_for(maxi(ih, iw), 40, 16);
    const int cols = C < (H == 1 && W == 1 ? 16 : 8) ? C : (H == 1 && W == 1 ? 16 : 8);
    const int rows = (C + cols - 1) / cols, tw = W * S, th = H * S;
    const long gw = (long)cols * tw + (cols - 1L) * G, gh = (long)rows * th + (rows - 1L) * G;
    const long bw = (long)iw * Si + M + gw, bh = L + (gh > (long)ih * Si ? gh : (long)ih * Si);
    long cw = bw;
    for (int i = 0; captions && i < n; i++)
        if (cnn_plot_text_width(captions[i]) > cw) cw = cnn_plot_text_width(captions[i]);
    CNN_TRY(frame(cw, n * bh + (n - 1L) * M, title, out));

    const size_t map = (size_t)H * (size_t)W, img = (size_t)ic * (size_t)ih * (size_t)iw;
    for (int c = 0; c < C; c++) {
        /* one range per channel over all images */
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            float a, b;
            range(act + ((size_t)i * (size_t)C + (size_t)c) * map, map, &a, &b);
            lo = fminf(lo, a);
            hi = fmaxf(hi, b);
        }
        for (int i = 0; i < n; i++) {
            const int y = M + T + i * (int)(bh + M) + L + (c / cols) * (th + G);
            const int x = M + iw * Si + M + (c % cols) * (tw + G);
            draw_values(out, x, y, act + ((size_t)i * (size_t)C + (size_t)c) * map, 1, 0, H, W,
                        S, lo, hi, 1);
        }
    }
    for (int i = 0; i < n; i++) {
        const int y = M + T + i * (int)(bh + M);
        if (captions && captions[i]) line_text(out, M, y, captions[i], INK);
        draw_bytes(out, M, y + L, images + (size_t)i * img, ic, ih, iw, Si);
    }
    return CNN_OK;
}

cnn_status_t cnn_plot_image_grid(const uint8_t *images, int n, int c, int h, int w,
                                 const char *const *line1, const char *const *line2,
                                 const char *title, cnn_canvas_t *out)
{
    memset(out, 0, sizeof *out);
    if (n < 0 || n > 4096 || (n > 0 && (!images || c < 1 || h < 1 || w < 1 || h > 4096 ||
                                        w > 4096)))
        return cnn_error_set(CNN_EUSAGE, "plot: bad image grid (%d images of %dx%dx%d)", n, c, h,
                             w);
    if (n == 0) return frame(0, 0, title, out);
    const int S = scale_for(maxi(h, w), 72, 8);
    int cell_w = w * S;
    for (int i = 0; i < n; i++) {
        cell_w = maxi(cell_w, cnn_plot_text_width(line1 ? line1[i] : NULL));
        cell_w = maxi(cell_w, cnn_plot_text_width(line2 ? line2[i] : NULL));
    }
    const int cell_h = h * S + 2 * L, cols = n < 6 ? n : 6, rows = (n + cols - 1) / cols;
    CNN_TRY(frame((long)cols * cell_w + (cols - 1L) * M, (long)rows * cell_h + (rows - 1L) * M,
                  title, out));
    const size_t img = (size_t)c * (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++) {
        const int x = M + (i % cols) * (cell_w + M), y = M + T + (i / cols) * (cell_h + M);
        draw_bytes(out, x + (cell_w - w * S) / 2, y, images + (size_t)i * img, c, h, w, S);
        const char *t1 = line1 ? line1[i] : NULL, *t2 = line2 ? line2[i] : NULL;
        if (t1) line_text(out, x + (cell_w - cnn_plot_text_width(t1)) / 2, y + h * S, t1, INK);
        if (t2) line_text(out, x + (cell_w - cnn_plot_text_width(t2)) / 2, y + h * S + L, t2, RED);
    }
    return CNN_OK;
}

/* ---- gnuplot ------------------------------------------------------------ */

int cnn_gnuplot_found(const char *program)
{
    struct stat sb;
    if (!program || !*program) return 0;
    if (strchr(program, '/'))
        return stat(program, &sb) == 0 && S_ISREG(sb.st_mode) && access(program, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        char full[PATH_BUF];
        if (len + strlen(program) + 2 < sizeof full) {
            snprintf(full, sizeof full, "%.*s/%s", (int)len, len ? p : ".", program);
            if (!len) snprintf(full, sizeof full, "./%s", program);
            if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode) && access(full, X_OK) == 0) return 1;
        }
        if (!end) return 0;
        p = end + 1;
    }
}

/* The last lines of the log, newlines as " | ", into buf. */
static void log_tail(const char *log, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(log, "r");
    if (!f) return;
    char raw[600];
    size_t n = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > (long)sizeof raw - 1) fseek(f, size - (long)sizeof raw + 1, SEEK_SET);
        else fseek(f, 0, SEEK_SET);
        n = fread(raw, 1, sizeof raw - 1, f);
    }
    fclose(f);
    while (n && (raw[n - 1] == '\n' || raw[n - 1] == ' ')) n--;
    raw[n] = '\0';
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < len; i++) {
        if (raw[i] == '\n') {
            memcpy(buf + o, " | ", 3);
            o += 3;
        } else if (raw[i] != '\r') {
            buf[o++] = raw[i];
        }
    }
    buf[o] = '\0';
}

cnn_status_t cnn_gnuplot_run(const char *program, const char *script, const char *log)
{
    if (!cnn_gnuplot_found(program))
        return cnn_error_set(CNN_EUNAVAIL, "%s: not found%s", program ? program : "(null)",
                             program && strchr(program, '/') ? "" : " in PATH");
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return cnn_error_set(CNN_ENOMEM, "plot: out of memory");
    int e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!e) e = posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!e) e = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = 0;
    char *argv[] = {(char *)program, (char *)script, NULL};
    if (!e) e = posix_spawnp(&pid, program, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e)
        return cnn_error_set(e == ENOENT || e == EACCES ? CNN_EUNAVAIL : CNN_EIO,
                             "cannot start %s: %s", program, strerror(e));
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return cnn_error_set(CNN_EIO, "%s: waitpid: %s", program, strerror(errno));
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) return CNN_OK;
    char tail[700], how[32];
    log_tail(log, tail, sizeof tail);
    if (WIFEXITED(ws)) snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(ws));
    else snprintf(how, sizeof how, "signal %d", WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    return cnn_error_set(CNN_EIO, "%s %s failed (%s): %s", program, script, how,
                         tail[0] ? tail : "(no output)");
}

/* A gnuplot string literal: single quotes, '' for a quote, no newlines. */
static void gp_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; s && *s; s++) {
        if (*s == '\'') fputs("''", f);
        else fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
    }
    fputc('\'', f);
}

/* The work files of one chart: NAME.dat, NAME.gp, NAME.log, NAME.png. */
typedef struct {
    char dat[PATH_BUF], gp[PATH_BUF], log[PATH_BUF], png[PATH_BUF];
} work_t;

static cnn_status_t work_paths(const char *dir, const char *name, work_t *w)
{
    if (strlen(dir) + strlen(name) + 8 > PATH_BUF)
        return cnn_error_set(CNN_EUSAGE, "plot: path too long: %s", dir);
    snprintf(w->dat, sizeof w->dat, "%s/%s.dat", dir, name);
    snprintf(w->gp, sizeof w->gp, "%s/%s.gp", dir, name);
    snprintf(w->log, sizeof w->log, "%s/%s.log", dir, name);
    snprintf(w->png, sizeof w->png, "%s/%s.png", dir, name);
    return CNN_OK;
}

static cnn_status_t close_file(FILE *f, const char *path)
{
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    return bad ? cnn_error_set(CNN_EIO, "%s: write failed", path) : CNN_OK;
}

/* pngcairo when this gnuplot has it (anti-aliased), else libgd's png. */
static void gp_terminal(FILE *f, int w, int h, const char *png)
{
    fprintf(f,
            "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
            "    set terminal pngcairo size %d,%d noenhanced font 'sans,10'\n"
            "} else {\n"
            "    set terminal png size %d,%d noenhanced\n"
            "}\n"
            "set output ",
            w, h, w, h);
    gp_str(f, png);
    fputc('\n', f);
}

/* Copies the picture gnuplot drew (w->png) to `png` through the atomic
 * writer, so that `png` is the old picture or the complete new one. The
 * work file is unlinked once open (its data stay readable through `in`),
 * which also serves a `png` that is the work file itself. */
static cnn_status_t place_picture(const char *program, const work_t *w, const char *png)
{
    FILE *in = fopen(w->png, "rb");
    struct stat sb;
    if (!in || fstat(fileno(in), &sb) != 0 || sb.st_size == 0) {
        if (in) fclose(in);
        return cnn_error_set(CNN_EIO, "%s ran but wrote no picture (%s)", program, w->png);
    }
    remove(w->png);
    cnn_afile_t *out;
    cnn_status_t st = cnn_afile_begin(png, &out);
    if (st == CNN_OK) st = cnn_afile_copy_from(out, in, w->png);
    fclose(in);
    if (st != CNN_OK) {
        cnn_afile_abort(out);
        return st;
    }
    return cnn_afile_commit(out);
}

/* Runs the chart's script and puts its PNG in place at `png`; removes the
 * work files on success. */
static cnn_status_t run_chart(const char *program, const work_t *w, const char *png)
{
    CNN_TRY(cnn_gnuplot_run(program, w->gp, w->log));
    CNN_TRY(place_picture(program, w, png));
    remove(w->dat);
    remove(w->gp);
    remove(w->log);
    return CNN_OK;
}

static void gp_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, " %.9g", v);
    else fputs(" NaN", f);
}

cnn_status_t cnn_plot_learning_curves(const char *program, const char *workdir,
                                      const double *rows, int nrows, const char *title,
                                      const char *png)
{
    if (nrows < 1) return cnn_error_set(CNN_EDATA, "plot: no epochs to draw");
    work_t w;
    CNN_TRY(work_paths(workdir, "curves", &w));
    /* columns 1..4 of the history: train_loss, train_acc, val_loss,
     * val_acc; which have a finite value? */
    int has[5] = {0};
    double x0 = INFINITY, x1 = -INFINITY;
    for (int i = 0; i < nrows; i++) {
        const double *r = rows + (size_t)i * 8;
        x0 = fmin(x0, r[0]);
        x1 = fmax(x1, r[0]);
        for (int k = 1; k <= 4; k++) has[k] |= isfinite(r[k]) != 0;
    }
    if (!isfinite(x0) || !isfinite(x1)) return cnn_error_set(CNN_EDATA, "plot: bad epoch numbers");
    FILE *f = fopen(w.dat, "w");
    if (!f) return cnn_error_set(CNN_EIO, "%s: cannot create: %s", w.dat, strerror(errno));
    fprintf(f, "# epoch train_loss train_acc val_loss val_acc\n");
    for (int i = 0; i < nrows; i++) {
        for (int k = 0; k <= 4; k++) gp_num(f, rows[(size_t)i * 8 + k]);
        fputc('\n', f);
    }
    CNN_TRY(close_file(f, w.dat));

    if (!(f = fopen(w.gp, "w"))) return cnn_error_set(CNN_EIO, "%s: cannot create", w.gp);
    gp_terminal(f, 960, 400, w.png);
    fprintf(f, "set multiplot layout 1,2 title ");
    gp_str(f, title);
    fprintf(f, "\nset grid\nset xlabel 'epoch'\nset xrange [%.9g:%.9g]\n", x0 - 0.5, x1 + 0.5);
    if (x1 - x0 <= 20) fprintf(f, "set xtics 1\n");
    static const char *const what[2] = {"loss", "accuracy"};
    for (int p = 0; p < 2; p++) {
        /* columns in the .dat file: train = 2 + p, validation = 4 + p */
        fprintf(f, "set ylabel '%s'\nset key %s right\n", what[p], p ? "bottom" : "top");
        if (p) fprintf(f, "set yrange [*:1]\n");
        if (!has[1 + p] && !has[3 + p]) {
            fprintf(f, "set yrange [0:1]\nset label 1 'no values' at graph 0.5,0.5 center\n"
                       "plot 2 notitle\nunset label 1\n");
            continue;
        }
        fprintf(f, "plot ");
        for (int v = 0; v < 2; v++) {
            const int col = 1 + p + 2 * v; /* history column; +1 in the .dat file */
            if (!has[col]) continue;
            if (v && has[1 + p]) fprintf(f, ", ");
            gp_str(f, w.dat);
            fprintf(f, " using 1:%d with linespoints lw 2 pt %d ps 0.7 lc rgb '%s' title '%s %s'",
                    col + 1, v ? 5 : 7, v ? "#ff7f0e" : "#1f77b4", v ? "validation" : "train",
                    what[p]);
        }
        fputc('\n', f);
    }
    fprintf(f, "unset multiplot\n");
    CNN_TRY(close_file(f, w.gp));
    return run_chart(program, &w, png);
}

int cnn_plot_confusion_side(int K) { return clampi(240 + 48 * clampi(K, 0, 100), 480, 1600); }

cnn_status_t cnn_plot_confusion(const char *program, const char *workdir, const long *conf,
                                int K, const char *const *names, const char *title,
                                const char *png)
{
    if (K < 1 || K > 1000) return cnn_error_set(CNN_EDATA, "plot: %d classes in the confusion matrix", K);
    work_t w;
    CNN_TRY(work_paths(workdir, "confusion", &w));
    FILE *f = fopen(w.dat, "w");
    if (!f) return cnn_error_set(CNN_EIO, "%s: cannot create: %s", w.dat, strerror(errno));
    /* x = predicted, y = true, the share of the row, the count */
    fprintf(f, "# predicted true share count\n");
    for (int y = 0; y < K; y++) {
        long row = 0;
        for (int x = 0; x < K; x++) row += conf[(size_t)y * K + x];
        for (int x = 0; x < K; x++) {
            const long v = conf[(size_t)y * K + x];
            fprintf(f, "%d %d %.6f %ld\n", x, y, row > 0 ? (double)v / (double)row : 0.0, v);
        }
        fputc('\n', f);
    }
    CNN_TRY(close_file(f, w.dat));

    if (!(f = fopen(w.gp, "w"))) return cnn_error_set(CNN_EIO, "%s: cannot create", w.gp);
    const int side = cnn_plot_confusion_side(K);
    gp_terminal(f, side, side, w.png);
    fprintf(f, "set title ");
    gp_str(f, title);
    fprintf(f, "\nset xlabel 'predicted class'\nset ylabel 'true class'\nset size ratio -1\n"
               "set xrange [-0.5:%g]\nset yrange [%g:-0.5]\nset tics scale 0\n"
               "set cbrange [0:1]\nset cblabel 'share of the true class'\n"
               "set palette defined (0 '#ffffff', 0.25 '#c6dbef', 0.5 '#6baed6', "
               "0.75 '#2171b5', 1 '#08306b')\nunset key\n",
            K - 0.5, K - 0.5);
    if (K > 30) fprintf(f, "set xtics font ',7'\nset ytics font ',7'\n");
    for (int axis = 0; axis < 2; axis++) {
        fprintf(f, "set %ctics (", axis ? 'y' : 'x');
        for (int k = 0; k < K; k++) {
            char num[16];
            snprintf(num, sizeof num, "%d", k);
            if (k) fputs(", ", f);
            gp_str(f, names && names[k] ? names[k] : num);
            fprintf(f, " %d", k);
        }
        fprintf(f, ")%s\n", axis ? "" : " rotate by 45 right");
    }
    fprintf(f, "plot ");
    gp_str(f, w.dat);
    fprintf(f, " using 1:2:3 with image");
    if (K <= 30)
        for (int dark = 0; dark < 2; dark++) {
            fprintf(f, ", \\\n    ");
            gp_str(f, w.dat);
            fprintf(f, " using 1:2:($3 %s 0.5 ? stringcolumn(4) : '') with labels tc rgb '%s'",
                    dark ? ">" : "<=", dark ? "white" : "black");
        }
    fputc('\n', f);
    CNN_TRY(close_file(f, w.gp));
    return run_chart(program, &w, png);
}
