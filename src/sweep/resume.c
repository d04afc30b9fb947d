/* resume.c - --resume of a sweep journaled by a version of mpicnn with
 * fewer config keys.
 *
 * The journal names each trial by the hash of its resolved config text
 * (every key, defaults included) and the grid by the hash of those. A
 * version that adds a config key prints one more line in every text, so
 * every hash changes and the journal would look like another sweep's. So
 * a new sweep also writes DIR/sweep.ini, the resolved config it started
 * with. On --resume, if the header does not match, that text is parsed
 * again (a key it lacks takes its default) and compared with this run's
 * resolved config; if they are equal, the keys the old text lacks are
 * left out of each trial's text again and the hashes come out as the
 * older version computed them. The journal goes on with those hashes, and
 * sweep.ini is never rewritten, so a later version can do the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/fs.h"
#include "sweep_impl.h"

cnn_status_t sweep_config_save(const sweep_t *s)
{
    char path[CNN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", s->dir, SWEEP_CONFIG_NAME);
    char *text = cnn_config_to_string(s->cfg);
    if (!text) return cnn_error_set(CNN_ENOMEM, "cannot write %s: out of memory", path);
    cnn_afile_clean_stale(path, NULL);
    cnn_afile_t *af = NULL;
    cnn_status_t st = cnn_afile_begin(path, &af);
    if (st == CNN_OK) st = cnn_afile_write(af, text, strlen(text));
    if (st == CNN_OK) st = cnn_afile_commit(af);
    else cnn_afile_abort(af);
    free(text);
    return st;
}

/* ------------------------------------------------------------------ */
/* keys of a resolved config text                                      */

#define ID_MAX 512

/* The line at p (without its '\n') into line[len]; returns the next. */
static const char *next_line(const char *p, char *line, size_t len)
{
    size_t n = strcspn(p, "\n");
    snprintf(line, len, "%.*s", (int)(n < len ? n : len - 1), p);
    return p[n] ? p + n + 1 : p + n;
}

/* What the line is: 1 a section header "[sec]" (sec updated, id
 * "[sec]"), 2 a key line "key = value" (id "[sec]key"), 0 anything else. */
static int line_id(const char *line, char sec[ID_MAX], char id[ID_MAX])
{
    if (line[0] == '[') {
        snprintf(sec, ID_MAX, "%.*s", (int)strcspn(line + 1, "]"), line + 1);
        snprintf(id, ID_MAX, "[%s]", sec);
        return 1;
    }
    const char *eq = strstr(line, " = ");
    if (!eq || eq == line) return 0;
    snprintf(id, ID_MAX, "[%s]%.*s", sec, (int)(eq - line), line);
    return 2;
}

/* 1 if text has a section or key with this id. */
static int has_id(const char *text, const char *want)
{
    char line[4096], sec[ID_MAX] = "", id[ID_MAX];
    for (const char *p = text; *p;) {
        p = next_line(p, line, sizeof line);
        if (line_id(line, sec, id) && !strcmp(id, want)) return 1;
    }
    return 0;
}

/* The sections and keys of a newer text that an older one lacks. */
typedef struct {
    int n;
    char (*id)[ID_MAX];
} new_keys_t;

static int is_new(const new_keys_t *nk, const char *id)
{
    for (int i = 0; i < nk->n; i++)
        if (!strcmp(nk->id[i], id)) return 1;
    return 0;
}

/* The ids of `now` missing from `old`: whole sections, and keys of the
 * sections both have. */
static cnn_status_t find_new_keys(const char *now, const char *old, new_keys_t *nk)
{
    char line[4096], sec[ID_MAX] = "", id[ID_MAX];
    int cap = 0, in_new = 0;
    for (const char *p = now; *p;) {
        p = next_line(p, line, sizeof line);
        const int kind = line_id(line, sec, id);
        if (kind == 0 || (kind == 2 && in_new)) continue;
        const int missing = !has_id(old, id);
        if (kind == 1) in_new = missing;
        if (!missing) continue;
        if (nk->n == cap) {
            cap = cap ? 2 * cap : 8;
            char(*grown)[ID_MAX] = realloc(nk->id, sizeof *nk->id * (size_t)cap);
            if (!grown) return cnn_error_set(CNN_ENOMEM, "out of memory resuming the sweep");
            nk->id = grown;
        }
        snprintf(nk->id[nk->n++], ID_MAX, "%s", id);
    }
    return CNN_OK;
}

/* sweep_text_edit_fn: text without the sections and keys of ctx (a
 * new_keys_t), and without the blank line before a section left out. */
static char *drop_new_keys(const char *text, const void *ctx)
{
    const new_keys_t *nk = ctx;
    char *out = malloc(strlen(text) + 1), *o = out;
    char line[4096], sec[ID_MAX] = "", id[ID_MAX];
    int in_new = 0, held_blank = 0;
    if (!out) return NULL;
    for (const char *p = text; *p;) {
        const char *start = p;
        p = next_line(p, line, sizeof line);
        const size_t n = (size_t)(p - start);
        const int kind = line_id(line, sec, id);
        if (kind == 0 && line[0] == '\0' && !held_blank) {
            held_blank = 1; /* kept unless a section left out follows */
            continue;
        }
        if (kind == 1) in_new = is_new(nk, id);
        const int drop = in_new || (kind == 2 && is_new(nk, id));
        if (held_blank && !(kind == 1 && drop)) *o++ = '\n';
        held_blank = 0;
        if (!drop) {
            memcpy(o, start, n);
            o += n;
        }
    }
    if (held_blank) *o++ = '\n';
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------ */

/* The older version's hashes of every trial into hash[] and its journal
 * header into header[len]. */
static cnn_status_t older_hashes(const sweep_t *s, const new_keys_t *nk, uint64_t *hash,
                                 char *header, size_t len)
{
    cnn_config_t *work = malloc(sizeof *work);
    if (!work) return cnn_error_set(CNN_ENOMEM, "out of memory resuming the sweep");
    cnn_status_t st = CNN_OK;
    for (int p = 0; p < s->n && st == CNN_OK; p++)
        st = sweep_point_hash(s->grid, p, s->cfg, work, drop_new_keys, nk, &hash[p]);
    free(work);
    if (st == CNN_OK) sweep_journal_header(header, len, s->n, sweep_grid_hash(hash, s->n));
    return st;
}

/* *same = 1 if the text `saved`, resolved again, is this run's config
 * `now`. A text this version cannot parse is not the same. */
static cnn_status_t same_config(const char *saved, const char *name, const char *now, int *same)
{
    *same = 0;
    cnn_config_t *old = malloc(sizeof *old);
    if (!old) return cnn_error_set(CNN_ENOMEM, "out of memory resuming the sweep");
    if (cnn_config_parse_string(saved, name, NULL, 0, old) != CNN_OK) {
        cnn_error_clear();
        free(old);
        return CNN_OK;
    }
    char *again = cnn_config_to_string(old);
    free(old);
    if (!again) return cnn_error_set(CNN_ENOMEM, "out of memory resuming the sweep");
    *same = strcmp(again, now) == 0;
    free(again);
    return CNN_OK;
}

cnn_status_t sweep_config_match_older(sweep_t *s, int *matched)
{
    char path[CNN_PATH_MAX + 32], header[sizeof s->header];
    char *saved = NULL, *now = NULL;
    size_t len = 0;
    new_keys_t nk = {0, NULL};
    uint64_t *hash = NULL;
    int same = 0;
    *matched = 0;
    snprintf(path, sizeof path, "%s/%s", s->dir, SWEEP_CONFIG_NAME);
    cnn_status_t st = sweep_read_file(path, "cannot open", &saved, &len);
    if (st != CNN_OK) {
        /* a sweep from before sweep.ini existed: nothing to match with */
        cnn_error_clear();
        st = CNN_OK;
        goto done;
    }
    if (!(now = cnn_config_to_string(s->cfg)) || !(hash = malloc(sizeof *hash * (size_t)s->n))) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory resuming the sweep");
        goto done;
    }
    if ((st = same_config(saved, path, now, &same)) != CNN_OK || !same) goto done;
    if ((st = find_new_keys(now, saved, &nk)) != CNN_OK || nk.n == 0) goto done;
    if ((st = older_hashes(s, &nk, hash, header, sizeof header)) != CNN_OK) goto done;
    if (sweep_journal_has_header(s->journal, header)) {
        memcpy(s->grid->hash, hash, sizeof *hash * (size_t)s->n);
        memcpy(s->header, header, sizeof header);
        *matched = 1;
    }
done:
    free(saved);
    free(now);
    free(nk.id);
    free(hash);
    return st;
}
