/* grid.c - the grid of a config's [sweep] section (sweep.h): the cross
 * product of the value lists, deduplicated by the hash of each point's
 * resolved config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/rng.h"
#include "mpicnn/str.h"
#include "sweep_impl.h"

void cnn_sweep_grid_free(cnn_sweep_grid_t *g)
{
    if (!g) return;
    free(g->value);
    free(g->hash);
    free(g->text);
    free(g);
}

/* Applies the values row[0..nkeys) of the keys to cfg. */
static cnn_status_t apply_row(const cnn_sweep_grid_t *g, const char *const *row,
                              cnn_config_t *cfg)
{
    char a[CNN_SWEEP_KEY_MAX + CNN_SWEEP_VALUES_MAX + 2];
    for (int k = 0; k < g->nkeys; k++) {
        snprintf(a, sizeof a, "%s=%s", g->key[k], row[k]);
        CNN_TRY(cnn_config_set(cfg, a));
    }
    return CNN_OK;
}

static void label_row(const cnn_sweep_grid_t *g, const char *const *row, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0) return;
    buf[0] = '\0';
    if (g->nkeys == 0) snprintf(buf, len, "(base config)");
    for (int k = 0; k < g->nkeys && used < len; k++) {
        int n = snprintf(buf + used, len - used, "%s%s=%s", k ? " " : "", g->key[k], row[k]);
        if (n < 0) break;
        used += (size_t)n;
    }
}

/* The hash of the point row applied to a copy of base; see
 * sweep_point_hash(). */
static cnn_status_t row_hash(const cnn_sweep_grid_t *g, const char *const *row,
                             const cnn_config_t *base, cnn_config_t *work,
                             sweep_text_edit_fn edit, const void *ctx, uint64_t *h)
{
    *work = *base;
    cnn_status_t st = apply_row(g, row, work);
    if (st == CNN_ENOMEM) return st;
    if (st != CNN_OK) {
        /* the trial will fail with this error; keep it, named by its values */
        char label[2048];
        cnn_error_clear();
        label[0] = '!';
        label_row(g, row, label + 1, sizeof label - 1);
        *h = cnn_config_hash(label);
        return CNN_OK;
    }
    char *text = cnn_config_to_string(work);
    if (text && edit) {
        char *edited = edit(text, ctx);
        free(text);
        text = edited;
    }
    if (!text) return cnn_error_set(CNN_ENOMEM, "out of memory expanding the sweep grid");
    *h = cnn_config_hash(text);
    free(text);
    return CNN_OK;
}

cnn_status_t sweep_point_hash(const cnn_sweep_grid_t *g, int p, const cnn_config_t *base,
                              cnn_config_t *work, sweep_text_edit_fn edit, const void *ctx,
                              uint64_t *h)
{
    return row_hash(g, g->value + (size_t)p * g->nkeys, base, work, edit, ctx, h);
}

uint64_t sweep_grid_hash(const uint64_t *hash, int n)
{
    uint64_t h = CNN_FNV1A_INIT;
    for (int t = 0; t < n; t++) {
        unsigned char b[8];
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hash[t] >> (8 * i));
        h = cnn_fnv1a(h, b, sizeof b);
    }
    return h;
}

/* Copies the keys and value lists of sw into g->text, one block of
 * "key\0v1, v2, ...\0" per key, and points vals[k][0..nvals[k]) at the
 * trimmed values of key k. *product is the number of points, or an error
 * above CNN_SWEEP_MAX_POINTS. */
static cnn_status_t split_values(const cnn_config_t *cfg, cnn_sweep_grid_t *g,
                                 const char **vals[], int nvals[], long *product)
{
    const cnn_sweep_config_t *sw = &cfg->sweep;
    size_t total = 1;
    for (int k = 0; k < sw->nparams; k++)
        total += strlen(sw->params[k].key) + strlen(sw->params[k].values) + 2;
    if (!(g->text = malloc(total))) return CNN_ENOMEM;
    char *p = g->text;
    g->nkeys = sw->nparams;
    *product = 1;
    for (int k = 0; k < sw->nparams; k++) {
        const cnn_sweep_param_t *sp = &sw->params[k];
        strcpy(p, sp->key);
        g->key[k] = p;
        p += strlen(p) + 1;
        strcpy(p, sp->values);
        char *list = p;
        p += strlen(p) + 1;
        int n = 1;
        for (const char *c = list; *c; c++) n += *c == ',';
        if (!(vals[k] = malloc(sizeof(char *) * (size_t)n))) return CNN_ENOMEM;
        n = 0;
        for (char *item = list;;) {
            char *comma = strchr(item, ',');
            if (comma) *comma = '\0';
            vals[k][n++] = cnn_str_trim(item);
            if (!comma) break;
            item = comma + 1;
        }
        nvals[k] = n;
        *product *= n;
        if (*product > CNN_SWEEP_MAX_POINTS)
            return cnn_error_set(CNN_ECONFIG,
                                 "%s: [sweep] the grid has more than %d points (the product of "
                                 "the value counts): sweep fewer values",
                                 cfg->source, CNN_SWEEP_MAX_POINTS);
    }
    return CNN_OK;
}

/* Walks the product points in odometer order (the last key turns
 * fastest) and keeps each point whose hash no earlier point has. */
static cnn_status_t expand(const cnn_config_t *cfg, cnn_sweep_grid_t *g, const char **vals[],
                           const int nvals[], long product, cnn_config_t *work)
{
    int idx[CNN_MAX_SWEEP] = {0};
    for (long i = 0; i < product; i++) {
        const char **row = g->value + (size_t)g->npoints * g->nkeys;
        for (int k = 0; k < g->nkeys; k++) row[k] = vals[k][idx[k]];
        uint64_t h = 0;
        CNN_TRY(row_hash(g, row, cfg, work, NULL, NULL, &h));
        int dup = 0;
        for (int j = 0; j < g->npoints && !dup; j++) dup = g->hash[j] == h;
        if (!dup) g->hash[g->npoints++] = h;
        for (int k = g->nkeys - 1; k >= 0; k--) {
            if (++idx[k] < nvals[k]) break;
            idx[k] = 0;
        }
    }
    return CNN_OK;
}

cnn_status_t cnn_sweep_grid(const cnn_config_t *cfg, cnn_sweep_grid_t **out)
{
    cnn_status_t st = CNN_OK;
    cnn_config_t *work = malloc(sizeof *work);
    cnn_sweep_grid_t *g = calloc(1, sizeof *g);
    const char **vals[CNN_MAX_SWEEP] = {0};
    int nvals[CNN_MAX_SWEEP] = {0};
    long product = 0;
    *out = NULL;
    if (!work || !g) goto nomem;
    st = split_values(cfg, g, vals, nvals, &product);
    if (st == CNN_ENOMEM) goto nomem;
    if (st != CNN_OK) goto fail;
    g->value = malloc(sizeof(char *) * (size_t)(product * g->nkeys + 1));
    g->hash = malloc(sizeof(uint64_t) * (size_t)product);
    if (!g->value || !g->hash) goto nomem;
    if ((st = expand(cfg, g, vals, nvals, product, work)) != CNN_OK) goto fail;
    *out = g;
    g = NULL;
    goto done;
nomem:
    st = cnn_error_set(CNN_ENOMEM, "out of memory expanding the sweep grid");
fail:
    cnn_sweep_grid_free(g);
done:
    for (int k = 0; k < CNN_MAX_SWEEP; k++) free(vals[k]);
    free(work);
    return st;
}

cnn_status_t cnn_sweep_point_config(const cnn_sweep_grid_t *g, int p, cnn_config_t *cfg)
{
    if (p < 0 || p >= g->npoints)
        return cnn_error_set(CNN_EINTERNAL, "sweep point %d of %d", p, g->npoints);
    return apply_row(g, g->value + (size_t)p * g->nkeys, cfg);
}

void cnn_sweep_point_label(const cnn_sweep_grid_t *g, int p, char *buf, size_t len)
{
    if (p < 0 || p >= g->npoints) {
        if (len) snprintf(buf, len, "?");
        return;
    }
    label_row(g, g->value + (size_t)p * g->nkeys, buf, len);
}
