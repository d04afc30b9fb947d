/* csv.c - number lists in text files. */
#include "mpicnn/csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/fs.h"

cnn_status_t cnn_csv_parse64(const char *text, size_t len, const char *what,
                             const char *name, double **out, size_t *n)
{
    size_t cap = 64, count = 0;
    int line = 1;
    double *v = malloc(cap * sizeof *v);
    if (!v) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", what);
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        if (c == '\n') {
            line++;
            i++;
            continue;
        }
        if (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == ';') {
            i++;
            continue;
        }
        if (c == '#') {
            while (i < len && text[i] != '\n') i++;
            continue;
        }
        /* one token: up to the next separator */
        size_t j = i;
        while (j < len && !strchr(",; \t\r\n#", text[j]) && text[j] != '\0') j++;
        char tok[64];
        size_t tl = j - i;
        if (j < len && text[j] == '\0') {
            free(v);
            return cnn_error_set(CNN_EDATA, "%s %s: line %d: unexpected NUL byte",
                                 what, name, line);
        }
        if (tl >= sizeof tok) {
            free(v);
            return cnn_error_set(CNN_EDATA, "%s %s: line %d: token too long to be a number",
                                 what, name, line);
        }
        memcpy(tok, text + i, tl);
        tok[tl] = '\0';
        char *end;
        errno = 0;
        double d = strtod(tok, &end);
        if (end == tok || *end != '\0' || !isfinite(d) || fabs(d) > 3.4e38) {
            free(v);
            return cnn_error_set(CNN_EDATA,
                                 "%s %s: line %d: '%s' is not a finite number", what,
                                 name, line, tok);
        }
        if (count == cap) {
            cap *= 2;
            double *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                return cnn_error_set(CNN_ENOMEM, "%s: out of memory", what);
            }
            v = nv;
        }
        v[count++] = d;
        i = j;
    }
    *out = v;
    *n = count;
    return CNN_OK;
}

/* The n doubles d as floats into a new *out; frees d either way. */
static cnn_status_t narrow(double *d, size_t n, const char *what, float **out)
{
    float *v = malloc(n ? n * sizeof *v : 1);
    if (!v) {
        free(d);
        return cnn_error_set(CNN_ENOMEM, "%s: out of memory", what);
    }
    for (size_t i = 0; i < n; i++) v[i] = (float)d[i];
    free(d);
    *out = v;
    return CNN_OK;
}

cnn_status_t cnn_csv_parse(const char *text, size_t len, const char *what,
                           const char *name, float **out, size_t *n)
{
    double *d;
    CNN_TRY(cnn_csv_parse64(text, len, what, name, &d, n));
    return narrow(d, *n, what, out);
}

/* The bytes of file `path` into a malloc'd *text of *tlen bytes. */
static cnn_status_t read_text(const char *path, const char *what, char **text, size_t *tlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cnn_error_set(CNN_EDATA, "%s %s: cannot open: %s", what, path,
                             strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return cnn_error_set(CNN_ENOMEM, "%s %s: out of memory", what, path);
    }
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *nb = cap > ((size_t)1 << 31) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return cnn_error_set(CNN_EDATA, "%s %s: file too large", what, path);
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return cnn_error_set(CNN_EDATA, "%s %s: read error", what, path);
    }
    *text = buf;
    *tlen = len;
    return CNN_OK;
}

cnn_status_t cnn_csv_read64(const char *path, const char *what, double **out, size_t *n)
{
    char *buf = NULL;
    size_t len = 0;
    CNN_TRY(read_text(path, what, &buf, &len));
    cnn_status_t st = cnn_csv_parse64(buf, len, what, path, out, n);
    free(buf);
    return st;
}

cnn_status_t cnn_csv_read(const char *path, const char *what, float **out, size_t *n)
{
    double *d;
    CNN_TRY(cnn_csv_read64(path, what, &d, n));
    return narrow(d, *n, what, out);
}

cnn_status_t cnn_csv_write(const char *path, const float *v, size_t n)
{
    cnn_afile_t *out;
    FILE *f;
    CNN_TRY(cnn_afile_open(path, &out, &f));
    for (size_t i = 0; i < n; i++) fprintf(f, "%.9g\n", (double)v[i]);
    return cnn_afile_commit(out);
}

cnn_status_t cnn_csv_write64(const char *path, const double *v, size_t n)
{
    cnn_afile_t *out;
    FILE *f;
    CNN_TRY(cnn_afile_open(path, &out, &f));
    for (size_t i = 0; i < n; i++) fprintf(f, "%.17g\n", v[i]);
    return cnn_afile_commit(out);
}
