/* config.c - the INI config. libinih splits lines into sections and
 * key = value pairs; two tables give each key its type, range, default
 * and where it applies: the fixed sections' keys below, and each layer
 * type's keys in its ops table (cnn_layer_key_t, layer.h). One setter
 * turns text into typed values. Parsing is three steps: collect every entry with
 * its origin (file line or --set), merge the overrides, then build the
 * struct and check what involves more than one key.
 *
 * libinih details this file relies on (Debian's libinih 55):
 *  - the handler gets no line number (INI_HANDLER_LINENO is 0), so our own
 *    reader hands inih one line per call and counts them;
 *  - inih reads at most 200 bytes a line; a longer line would be split, so
 *    the reader gives inih a truncated copy and the handler takes the value
 *    from the full line it kept;
 *  - an indented line would continue the previous value (multiline); the
 *    reader strips indentation, so every line stands alone;
 *  - section names are truncated at 50 bytes; the reader tracks sections
 *    itself. */
#include "mpicnn/config.h"
#include "mpicnn/fs.h"
#include "mpicnn/str.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "mpicnn/rng.h"

/* Enum fields are written through an int pointer by the setter. */
_Static_assert(sizeof(cnn_opt_kind_t) == sizeof(int), "enums are int-sized");

#define CONFIG_FILE_MAX (16L << 20) /* refuse config files above 16 MiB */
#define WHERE_MAX (CNN_PATH_MAX + 256)

/* ------------------------------------------------------------------ */
/* Key tables                                                           */

typedef enum {
    K_INT,    /* int, range lo..hi */
    K_LONG,   /* long, range lo..hi */
    K_U64,    /* uint64_t, any */
    K_REAL,   /* double, range */
    K_FLOAT,  /* float, range (checked after rounding to float) */
    K_BOOL,   /* int 0/1 */
    K_ENUM,   /* int index into choices */
    K_STR,    /* char[cap] */
    K_LIST,   /* items of char[cap], `stride` bytes apart; int count at off2 */
    K_LAYERS, /* net.layers: names into layers[i].name; count at off2 */
    K_VALID,  /* data.validation: double at off, is_fraction int at off2 */
    K_PAIR    /* "N" or "NxM": ints at off and off2 */
} kind_t;

enum {
    F_REQUIRED = 1u << 0, /* no default: must be given */
    F_IDX = 1u << 1,      /* only for data.format = idx (and required then) */
    F_CIFAR = 1u << 2,    /* only for cifar10/cifar100 */
    F_C100 = 1u << 3,     /* only for cifar100 */
    F_NONEMPTY = 1u << 4, /* a list that may not be empty */
    F_REQ_CIFAR = 1u << 5, /* required for the cifar formats */
    F_AUTO = 1u << 6,      /* K_REAL: also "auto", stored as CNN_CONFIG_AUTO */
    F_H5 = 1u << 7         /* only for data.format = hdf5 (and required then) */
};

typedef struct {
    const char *section, *name;
    kind_t kind;
    size_t off, off2;
    double lo, hi;
    int lo_open, hi_open;
    const char *const *choices; /* K_ENUM, NULL-terminated */
    size_t cap, stride;         /* K_STR, K_LIST, K_LAYERS */
    int max_items;              /* K_LIST, K_LAYERS */
    unsigned flags;
    const char *def;  /* default as text; NULL: required or derived */
    const char *what; /* K_STR / K_LIST: what is expected */
} keydef_t;

static const char *const formats[] = {"", "idx", "cifar10", "cifar100", "hdf5", NULL};
static const char *const loads[] = {"memory", "shard", "stream", NULL};
static const char *const labelsets[] = {"fine", "coarse", NULL};
static const char *const classnames[] = {"none", "fashion-mnist", "mnist",
                                         "cifar10", "cifar100-fine",
                                         "cifar100-coarse", "file", NULL};
static const int classnames_count[] = {0, 10, 10, 10, 100, 20, 0};
static const char *const optimizers[] = {"sgd", "momentum", "nesterov", "adam", "adamw",
                                         "lars", NULL};
static const char *const schedules[] = {"constant", "step", "exponential", "cosine",
                                        "multistep", NULL};
static const char *const units[] = {"epochs", "steps", NULL};
static const char *const scalings[] = {"none", "linear", NULL};
static const char *const losses[] = {"softmax_ce", "hinge", NULL};
static const char *const nanpolicies[] = {"stop", "skip", NULL};
static const char *const metrics[] = {"val_acc", "val_loss", NULL};
static const char *const modes[] = {"max", "min", NULL};
static const char *const sweepmodes[] = {"grid", "halving", NULL};

#define OFF(f) offsetof(cnn_config_t, f)
#define INTK(s, n, k, f, l, h, d)                                              \
    {.section = s, .name = n, .kind = k, .off = OFF(f), .lo = l, .hi = h, .def = d}
#define REALK(s, n, f, l, lopen, h, hopen, d)                                  \
    {.section = s, .name = n, .kind = K_REAL, .off = OFF(f), .lo = l,         \
     .lo_open = lopen, .hi = h, .hi_open = hopen, .def = d}
#define ENUMK(s, n, f, c, d)                                                   \
    {.section = s, .name = n, .kind = K_ENUM, .off = OFF(f), .choices = c, .def = d}
#define BOOLK(s, n, f, d) {.section = s, .name = n, .kind = K_BOOL, .off = OFF(f), .def = d}
#define PATHK(n, f, fl)                                                        \
    {.section = "data", .name = n, .kind = K_STR, .off = OFF(f),               \
     .cap = CNN_PATH_MAX, .flags = fl, .def = "", .what = "a path"}
#define FILESK(n, f, cnt, fl)                                                  \
    {.section = "data", .name = n, .kind = K_LIST, .off = OFF(f),              \
     .off2 = OFF(cnt), .cap = CNN_PATH_MAX, .stride = CNN_PATH_MAX,            \
     .max_items = CNN_MAX_FILES, .flags = fl, .def = "",                       \
     .what = "a comma-separated list of file names"}

/* The fixed sections' keys, in the order cnn_config_to_string() prints. */
static const keydef_t keys[] = {
    {.section = "data", .name = "format", .kind = K_ENUM, .off = OFF(data.format),
     .choices = formats, .flags = F_REQUIRED},
    PATHK("dir", data.dir, 0),
    PATHK("train_images", data.train_images, F_IDX),
    PATHK("train_labels", data.train_labels, F_IDX),
    PATHK("test_images", data.test_images, F_IDX),
    PATHK("test_labels", data.test_labels, F_IDX),
    FILESK("train_files", data.train_files, data.ntrain_files,
           F_CIFAR | F_REQ_CIFAR | F_NONEMPTY),
    FILESK("test_files", data.test_files, data.ntest_files, F_CIFAR),
    PATHK("train_file", data.train_file, F_H5),
    PATHK("test_file", data.test_file, F_H5),
    {.section = "data", .name = "labels", .kind = K_ENUM, .off = OFF(data.labels),
     .choices = labelsets, .flags = F_C100, .def = "fine"},
    {.section = "data", .name = "classes", .kind = K_LIST, .off = OFF(data.classes),
     .off2 = OFF(data.nclasses), .cap = CNN_NAME_MAX, .stride = CNN_NAME_MAX,
     .max_items = CNN_MAX_CLASSES, .def = "",
     .what = "a comma-separated list of class names or indices"},
    ENUMK("data", "class_names", data.class_names, classnames, NULL),
    {.section = "data", .name = "validation", .kind = K_VALID,
     .off = OFF(data.validation), .off2 = OFF(data.validation_is_fraction),
     .lo = 0, .hi = 1e9, .def = "0"},
    BOOLK("data", "normalize", data.normalize, "true"),
    ENUMK("data", "load", data.load, loads, "memory"),
    INTK("data", "cache_mb", K_INT, data.cache_mb, 1, 1048576, "64"),

    {.section = "net", .name = "layers", .kind = K_LAYERS, .off = OFF(layers),
     .off2 = OFF(nlayers), .cap = CNN_NAME_MAX, .stride = sizeof(cnn_layer_spec_t),
     .max_items = CNN_MAX_LAYERS, .flags = F_REQUIRED | F_NONEMPTY,
     .what = "a comma-separated list of layer names"},

    ENUMK("optimizer", "type", opt.type, optimizers, "sgd"),
    {.section = "optimizer", .name = "lr", .kind = K_REAL, .off = OFF(opt.lr),
     .lo = 0, .lo_open = 1, .hi = HUGE_VAL, .flags = F_REQUIRED},
    REALK("optimizer", "momentum", opt.momentum, 0, 0, 1, 1, "0.9"),
    REALK("optimizer", "beta1", opt.beta1, 0, 0, 1, 1, "0.9"),
    REALK("optimizer", "beta2", opt.beta2, 0, 0, 1, 1, "0.999"),
    REALK("optimizer", "eps", opt.eps, 0, 1, HUGE_VAL, 0, "1e-08"),
    REALK("optimizer", "weight_decay", opt.weight_decay, 0, 0, HUGE_VAL, 0, "0"),
    ENUMK("optimizer", "lr_schedule", opt.lr_schedule, schedules, "constant"),
    REALK("optimizer", "lr_decay", opt.lr_decay, 0, 1, 1, 0, "1"),
    INTK("optimizer", "lr_decay_every", K_LONG, opt.lr_decay_every, 1, (double)LONG_MAX, "1"),
    ENUMK("optimizer", "lr_decay_unit", opt.lr_decay_unit, units, "epochs"),
    ENUMK("optimizer", "lr_scaling", opt.lr_scaling, scalings, "none"),
    REALK("optimizer", "lr_warmup_epochs", opt.lr_warmup_epochs, 0, 0, 1e6, 0, "0"),
    {.section = "optimizer", .name = "lr_warmup_start", .kind = K_REAL,
     .off = OFF(opt.lr_warmup_start), .lo = 0, .hi = HUGE_VAL, .flags = F_AUTO, .def = "auto"},
    REALK("optimizer", "lr_min", opt.lr_min, 0, 0, HUGE_VAL, 0, "0"),
    {.section = "optimizer", .name = "milestones", .kind = K_LIST,
     .off = OFF(opt.milestone_items), .off2 = OFF(opt.nmilestones),
     .cap = CNN_MILESTONE_MAX, .stride = CNN_MILESTONE_MAX,
     .max_items = CNN_MAX_MILESTONES, .def = "",
     .what = "a comma-separated list of increasing epochs"},
    REALK("optimizer", "trust_coefficient", opt.trust_coefficient, 0, 1, HUGE_VAL, 0, "0.001"),

    {.section = "train", .name = "epochs", .kind = K_INT, .off = OFF(train.epochs),
     .lo = 1, .hi = 100000, .flags = F_REQUIRED},
    INTK("train", "batch_size", K_INT, train.batch_size, 1, 65536, "64"),
    {.section = "train", .name = "seed", .kind = K_U64, .off = OFF(train.seed), .def = "1"},
    ENUMK("train", "loss", train.loss, losses, "softmax_ce"),
    INTK("train", "threads", K_INT, train.threads, 0, 1024, "0"),
    INTK("train", "validate_every", K_LONG, train.validate_every, 0, (double)LONG_MAX, "0"),
    INTK("train", "log_every", K_LONG, train.log_every, 0, (double)LONG_MAX, "50"),
    ENUMK("train", "nan_policy", train.nan_policy, nanpolicies, "stop"),
    {.section = "train", .name = "watchdog_seconds", .kind = K_REAL,
     .off = OFF(train.watchdog_seconds), .lo = 0, .hi = HUGE_VAL, .flags = F_AUTO, .def = "auto"},
    INTK("train", "max_memory_mb", K_LONG, train.max_memory_mb, 0, 1e9, "0"),
    REALK("train", "label_smoothing", train.label_smoothing, 0, 0, 1, 1, "0"),
    BOOLK("train", "report_l2", train.report_l2, "false"),

    INTK("augment", "crop_pad", K_INT, augment.crop_pad, 0, 4096, "0"),
    BOOLK("augment", "flip", augment.flip, "false"),
    INTK("augment", "cutout", K_INT, augment.cutout, 0, 4096, "0"),

    BOOLK("early_stopping", "enabled", early_stopping.enabled, "false"),
    ENUMK("early_stopping", "metric", early_stopping.metric, metrics, "val_acc"),
    ENUMK("early_stopping", "mode", early_stopping.mode, modes, NULL),
    INTK("early_stopping", "patience", K_INT, early_stopping.patience, 1, 1000000, "5"),
    REALK("early_stopping", "min_delta", early_stopping.min_delta, 0, 0, HUGE_VAL, 0, "0"),

    INTK("checkpoint", "every_steps", K_LONG, checkpoint.every_steps, 0, (double)LONG_MAX, "0"),
    REALK("checkpoint", "every_minutes", checkpoint.every_minutes, 0, 0, HUGE_VAL, 0, "0"),

    ENUMK("sweep", "mode", sweep.mode, sweepmodes, "grid"),
    INTK("sweep", "ranks_per_trial", K_INT, sweep.ranks_per_trial, 1, 1048576, "1"),
    INTK("sweep", "halving_epochs", K_INT, sweep.halving_epochs, 1, 100000, "1"),
    REALK("sweep", "halving_keep", sweep.halving_keep, 0, 1, 1, 1, "0.5"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {"data", "net", "optimizer", "train", "augment",
                                       "early_stopping", "checkpoint", "sweep"};
#define NSECTIONS (sizeof sections / sizeof sections[0])

static const keydef_t *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Layer keys come from the layer types' tables (cnn_layer_key_t, with
 * offsets into cnn_layer_spec_t); this is the keydef_t of one. */
static keydef_t lkey_def(const cnn_layer_key_t *lk)
{
    static const kind_t kinds[] = {[CNN_LKEY_INT] = K_INT, [CNN_LKEY_PAIR] = K_PAIR,
                                   [CNN_LKEY_FLOAT] = K_FLOAT, [CNN_LKEY_BOOL] = K_BOOL,
                                   [CNN_LKEY_ENUM] = K_ENUM};
    return (keydef_t){.name = lk->name, .kind = kinds[lk->kind], .off = lk->off,
                      .off2 = lk->off2, .lo = lk->lo, .hi = lk->hi,
                      .lo_open = lk->lo_open, .hi_open = lk->hi_open, .def = lk->def,
                      .choices = lk->choices, .what = lk->name};
}

/* Does any layer type take a key of this name? */
static int is_layer_key(const char *name)
{
    for (const cnn_layer_ops_t *const *t = cnn_layer_all(); *t; t++)
        if (cnn_layer_key(*t, name)) return 1;
    return 0;
}

static int is_fixed_section(const char *s)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (strcmp(sections[i], s) == 0) return 1;
    return 0;
}

/* Does a [data] key apply to `format`? Other sections' keys always do. */
static int key_applies(const keydef_t *k, cnn_data_format_t format)
{
    if (k->flags & F_IDX) return format == CNN_FORMAT_IDX;
    if (k->flags & F_H5) return format == CNN_FORMAT_HDF5;
    if (k->flags & F_C100) return format == CNN_FORMAT_CIFAR100;
    if (k->flags & F_CIFAR)
        return format == CNN_FORMAT_CIFAR10 || format == CNN_FORMAT_CIFAR100;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Small string helpers                                                 */

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { b->failed = 1; return; }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->failed = 1; return; }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Shortest text that reads back (with strtod) as exactly v. */
static void fmt_real(char *buf, size_t len, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* Same for a float read back as (float)strtod. */
static void fmt_float(char *buf, size_t len, float v)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) return;
    }
}

/* ------------------------------------------------------------------ */
/* Typed values                                                         */

/* A "where: [section] key: problem" error. */
static cnn_status_t bad(const char *where, const char *sec, const char *key,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static cnn_status_t bad(const char *where, const char *sec, const char *key,
                        const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (key)
        return cnn_error_set(CNN_ECONFIG, "%s: [%s] %s: %s", where, sec, key, what);
    return cnn_error_set(CNN_ECONFIG, "%s: [%s]: %s", where, sec, what);
}

/* 0: ok; -1: not a decimal integer; 1: does not fit a long. */
static int parse_long(const char *s, long *v)
{
    if (!*s || isspace((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end) return -1;
    if (errno == ERANGE) return 1;
    *v = x;
    return 0;
}

/* 0: ok; -1: not a number; 1: not finite or out of double range. */
static int parse_real(const char *s, double *v)
{
    if (!*s || isspace((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end) return -1;
    if (errno == ERANGE || !isfinite(x)) return 1;
    *v = x;
    return 0;
}

static int in_range(const keydef_t *k, double x)
{
    int lo_ok = k->lo_open ? x > k->lo : x >= k->lo;
    int hi_ok = k->hi_open ? x < k->hi : x <= k->hi;
    return lo_ok && hi_ok;
}

/* "expected ..." text for key k. */
static void expected(const keydef_t *k, char *buf, size_t len)
{
    switch (k->kind) {
    case K_INT:
    case K_LONG:
        if (k->hi >= (double)INT_MAX)
            snprintf(buf, len, "an integer >= %.0f", k->lo);
        else
            snprintf(buf, len, "an integer in %.0f..%.0f", k->lo, k->hi);
        return;
    case K_U64: snprintf(buf, len, "an integer in 0..18446744073709551615"); return;
    case K_REAL:
    case K_FLOAT:
        if (isinf(k->hi))
            snprintf(buf, len, "a number %s %g%s", k->lo_open ? ">" : ">=", k->lo,
                     k->flags & F_AUTO ? " or auto" : "");
        else
            snprintf(buf, len, "a number in %c%g, %g%c", k->lo_open ? '(' : '[',
                     k->lo, k->hi, k->hi_open ? ')' : ']');
        return;
    case K_BOOL: snprintf(buf, len, "true, false, yes, no, on, off, 1 or 0"); return;
    case K_ENUM: {
        size_t n = 0;
        buf[0] = '\0';
        for (int i = 0; k->choices[i]; i++) {
            if (!k->choices[i][0]) continue;
            n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s",
                                  n ? " | " : "", k->choices[i]);
        }
        return;
    }
    case K_STR:
    case K_LIST:
    case K_LAYERS: snprintf(buf, len, "%s", k->what); return;
    case K_VALID:
        snprintf(buf, len, "an integer count in 0..%.0f or a fraction in (0, 1)", k->hi);
        return;
    case K_PAIR:
        snprintf(buf, len, "N or NxM with N, M in %.0f..%.0f", k->lo, k->hi);
        return;
    }
}

static int valid_layer_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
    return 1;
}

/* Splits the comma list v into items (trimmed) and stores them. */
static cnn_status_t set_list(char *base, const keydef_t *k, const char *v,
                             const char *where, const char *sec, const char *key,
                             const char *exp)
{
    char *copy = xstrdup(v);
    if (!copy) return cnn_error_set(CNN_ENOMEM, "out of memory parsing [%s] %s", sec, key);
    char *items = base + k->off;
    int n = 0;
    cnn_status_t st = CNN_OK;
    memset(items, 0, (size_t)k->max_items * k->stride); /* for layers: the whole spec */
    char *s = cnn_str_trim(copy);
    if (!*s) {
        if (k->flags & F_NONEMPTY) st = bad(where, sec, key, "empty list (expected %s)", exp);
        goto done;
    }
    for (char *p = s;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        char *item = cnn_str_trim(p);
        if (!*item) {
            st = bad(where, sec, key, "empty item in list '%s' (expected %s)", v, exp);
            goto done;
        }
        if (n == k->max_items) {
            st = bad(where, sec, key, "more than %d items (expected %s)", k->max_items, exp);
            goto done;
        }
        if (strlen(item) >= k->cap) {
            st = bad(where, sec, key, "'%.64s...' is longer than %zu characters (expected %s)",
                     item, k->cap - 1, exp);
            goto done;
        }
        if (k->kind == K_LAYERS) {
            if (!valid_layer_name(item)) {
                st = bad(where, sec, key, "'%s' is not a valid layer name (expected "
                         "letters, digits, '_' and '-')", item);
                goto done;
            }
            if (is_fixed_section(item)) {
                st = bad(where, sec, key, "'%s' is the name of a config section, "
                         "not a layer name", item);
                goto done;
            }
        }
        for (int j = 0; j < n; j++)
            if (strcmp(items + (size_t)j * k->stride, item) == 0) {
                st = bad(where, sec, key, "'%s' is listed twice", item);
                goto done;
            }
        memcpy(items + (size_t)n * k->stride, item, strlen(item) + 1);
        n++;
        if (!comma) break;
        p = comma + 1;
    }
done:
    if (st == CNN_OK) *(int *)(base + k->off2) = n;
    free(copy);
    return st;
}

/* Where a value comes from and what its key expects, for messages. */
typedef struct {
    const char *where, *sec, *key;
    char exp[256];
} origin_t;

static cnn_status_t set_int(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    long x = 0;
    int r = parse_long(v, &x);
    if (r < 0) return bad(o->where, o->sec, o->key, "'%s' is not an integer (expected %s)", v, o->exp);
    if (r > 0 || !in_range(k, (double)x))
        return bad(o->where, o->sec, o->key, "%s is out of range (expected %s)", v, o->exp);
    if (k->kind == K_INT) *(int *)(base + k->off) = (int)x;
    else *(long *)(base + k->off) = x;
    return CNN_OK;
}

static cnn_status_t set_u64(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    const char *p = v;
    while (isdigit((unsigned char)*p)) p++;
    if (p == v || *p)
        return bad(o->where, o->sec, o->key, "'%s' is not an unsigned integer (expected %s)", v,
                   o->exp);
    errno = 0;
    unsigned long long x = strtoull(v, NULL, 10);
    if (errno == ERANGE)
        return bad(o->where, o->sec, o->key, "%s is out of range (expected %s)", v, o->exp);
    *(uint64_t *)(base + k->off) = (uint64_t)x;
    return CNN_OK;
}

/* K_REAL and K_FLOAT */
static cnn_status_t set_real(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    double x = 0;
    if ((k->flags & F_AUTO) && strcmp(v, "auto") == 0) {
        *(double *)(base + k->off) = CNN_CONFIG_AUTO;
        return CNN_OK;
    }
    int r = parse_real(v, &x);
    if (r < 0) return bad(o->where, o->sec, o->key, "'%s' is not a number (expected %s)", v, o->exp);
    if (k->kind == K_FLOAT && r == 0) {
        float f = (float)x;
        if (!isfinite(f)) r = 1;
        x = (double)f; /* check the range of what is stored */
    }
    if (r > 0 || !in_range(k, x))
        return bad(o->where, o->sec, o->key, "%s is out of range (expected %s)", v, o->exp);
    if (k->kind == K_REAL) *(double *)(base + k->off) = x;
    else *(float *)(base + k->off) = (float)x;
    return CNN_OK;
}

static cnn_status_t set_bool(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0) { *(int *)(base + k->off) = 1; return CNN_OK; }
        if (strcmp(v, no[i]) == 0) { *(int *)(base + k->off) = 0; return CNN_OK; }
    }
    return bad(o->where, o->sec, o->key, "'%s' is not a boolean (expected %s)", v, o->exp);
}

static cnn_status_t set_enum(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    for (int i = 0; k->choices[i]; i++)
        if (k->choices[i][0] && strcmp(k->choices[i], v) == 0) {
            *(int *)(base + k->off) = i;
            return CNN_OK;
        }
    return bad(o->where, o->sec, o->key, "'%s' is not a valid choice (expected %s)", v, o->exp);
}

static cnn_status_t set_str(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    if (strlen(v) >= k->cap)
        return bad(o->where, o->sec, o->key, "value is longer than %zu characters (expected %s)",
                   k->cap - 1, o->exp);
    memcpy(base + k->off, v, strlen(v) + 1);
    return CNN_OK;
}

/* data.validation: an integer count, or a fraction in (0, 1) */
static cnn_status_t set_valid(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    long n = 0;
    double x = 0;
    int r = parse_long(v, &n);
    if (r == 0) {
        if (n < 0 || (double)n > k->hi)
            return bad(o->where, o->sec, o->key, "%s is out of range (expected %s)", v, o->exp);
        *(double *)(base + k->off) = (double)n;
        *(int *)(base + k->off2) = 0;
        return CNN_OK;
    }
    if (r > 0) return bad(o->where, o->sec, o->key, "%s is out of range (expected %s)", v, o->exp);
    r = parse_real(v, &x);
    if (r < 0) return bad(o->where, o->sec, o->key, "'%s' is not a number (expected %s)", v, o->exp);
    if (r > 0 || !(x > 0 && x < 1))
        return bad(o->where, o->sec, o->key, "%s is out of range (expected %s)", v, o->exp);
    *(double *)(base + k->off) = x;
    *(int *)(base + k->off2) = 1;
    return CNN_OK;
}

/* "N" or "NxM" */
static cnn_status_t set_pair(char *base, const keydef_t *k, const char *v, const origin_t *o)
{
    char tmp[64];
    long a = 0, b = 0;
    if (strlen(v) >= sizeof tmp)
        return bad(o->where, o->sec, o->key, "'%.32s...' is not a size (expected %s)", v, o->exp);
    strcpy(tmp, v);
    char *x = strchr(tmp, 'x');
    int r;
    if (x) {
        *x = '\0';
        r = parse_long(tmp, &a);
        if (r == 0) r = parse_long(x + 1, &b);
    } else {
        r = parse_long(tmp, &a);
        b = a;
    }
    if (r < 0) return bad(o->where, o->sec, o->key, "'%s' is not a size (expected %s)", v, o->exp);
    if (r > 0 || !in_range(k, (double)a) || !in_range(k, (double)b))
        return bad(o->where, o->sec, o->key, "%s is out of range (expected %s)", v, o->exp);
    *(int *)(base + k->off) = (int)a;
    *(int *)(base + k->off2) = (int)b;
    return CNN_OK;
}

/* Parses value v for key k (section `sec`, name `key` in messages) into
 * the struct at `base` (a cnn_config_t, or a cnn_layer_spec_t for layer
 * keys). `where` says where v came from. */
static cnn_status_t set_value(void *basep, const keydef_t *k, const char *v,
                              const char *where, const char *sec, const char *key)
{
    char *base = basep;
    origin_t o = {.where = where, .sec = sec, .key = key};
    expected(k, o.exp, sizeof o.exp);
    switch (k->kind) {
    case K_INT:
    case K_LONG: return set_int(base, k, v, &o);
    case K_U64: return set_u64(base, k, v, &o);
    case K_REAL:
    case K_FLOAT: return set_real(base, k, v, &o);
    case K_BOOL: return set_bool(base, k, v, &o);
    case K_ENUM: return set_enum(base, k, v, &o);
    case K_STR: return set_str(base, k, v, &o);
    case K_LIST:
    case K_LAYERS: return set_list(base, k, v, where, sec, key, o.exp);
    case K_VALID: return set_valid(base, k, v, &o);
    case K_PAIR: return set_pair(base, k, v, &o);
    }
    return cnn_error_set(CNN_EINTERNAL, "config: key %s has no kind", key);
}

/* Appends the text of key k's value in the struct at base to b. */
static void format_value(sbuf_t *b, const void *basep, const keydef_t *k)
{
    const char *base = basep;
    char num[64];
    switch (k->kind) {
    case K_INT: sb_printf(b, "%d", *(const int *)(base + k->off)); return;
    case K_LONG: sb_printf(b, "%ld", *(const long *)(base + k->off)); return;
    case K_U64:
        sb_printf(b, "%llu", (unsigned long long)*(const uint64_t *)(base + k->off));
        return;
    case K_REAL:
        if ((k->flags & F_AUTO) && *(const double *)(base + k->off) == CNN_CONFIG_AUTO) {
            sb_printf(b, "auto");
            return;
        }
        fmt_real(num, sizeof num, *(const double *)(base + k->off));
        sb_printf(b, "%s", num);
        return;
    case K_FLOAT:
        fmt_float(num, sizeof num, *(const float *)(base + k->off));
        sb_printf(b, "%s", num);
        return;
    case K_BOOL: sb_printf(b, "%s", *(const int *)(base + k->off) ? "true" : "false"); return;
    case K_ENUM: {
        int i = *(const int *)(base + k->off);
        int n = 0;
        while (k->choices[n]) n++;
        sb_printf(b, "%s", i >= 0 && i < n ? k->choices[i] : "?");
        return;
    }
    case K_STR: sb_printf(b, "%s", base + k->off); return;
    case K_LIST:
    case K_LAYERS: {
        int n = *(const int *)(base + k->off2);
        for (int i = 0; i < n; i++)
            sb_printf(b, "%s%s", i ? ", " : "", base + k->off + (size_t)i * k->stride);
        return;
    }
    case K_VALID:
        if (*(const int *)(base + k->off2)) {
            fmt_real(num, sizeof num, *(const double *)(base + k->off));
            sb_printf(b, "%s", num);
        } else {
            sb_printf(b, "%.0f", *(const double *)(base + k->off));
        }
        return;
    case K_PAIR: {
        int kh = *(const int *)(base + k->off), kw = *(const int *)(base + k->off2);
        if (kh == kw) sb_printf(b, "%d", kh);
        else sb_printf(b, "%dx%d", kh, kw);
        return;
    }
    }
}

/* ------------------------------------------------------------------ */
/* Collecting entries with libinih                                      */

typedef struct {
    char *section, *key, *value;
    int line;     /* file line; 0 for an override */
    int override; /* 1: set by --set (value replaced or added) */
} entry_t;

typedef struct {
    char *name;
    int line;
} header_t;

typedef struct {
    const char *name; /* the file, in messages */
    const char *text;
    size_t pos;
    int line;      /* physical line last handed to inih */
    char *raw;     /* that line in full, indentation stripped */
    size_t rawcap;
    int truncated; /* inih got a shortened copy of raw */
    const char *cursec; /* current section (a header's name), NULL before any */
    entry_t *e;
    int ne, cape;
    header_t *h;
    int nh, caph;
    cnn_status_t st; /* first error found while reading */
    int err_line;
} parse_t;

static void parse_free(parse_t *p)
{
    for (int i = 0; i < p->ne; i++) {
        free(p->e[i].section);
        free(p->e[i].key);
        free(p->e[i].value);
    }
    for (int i = 0; i < p->nh; i++) free(p->h[i].name);
    free(p->e);
    free(p->h);
    free(p->raw);
}

static const char *where_line(const parse_t *p, int line, char *buf)
{
    snprintf(buf, WHERE_MAX, "%s:%d", p->name, line);
    return buf;
}

static const char *where_entry(const parse_t *p, const entry_t *e, char *buf)
{
    if (e->override) snprintf(buf, WHERE_MAX, "--set %s.%s", e->section, e->key);
    else snprintf(buf, WHERE_MAX, "%s:%d", p->name, e->line);
    return buf;
}

static const header_t *find_header(const parse_t *p, const char *name)
{
    for (int i = 0; i < p->nh; i++)
        if (strcmp(p->h[i].name, name) == 0) return &p->h[i];
    return NULL;
}

/* Where a key that is missing from `sec` would go: the section's header
 * line if the file has one, else just the file. */
static const char *where_section(const parse_t *p, const char *sec, char *buf)
{
    const header_t *h = find_header(p, sec);
    if (h) return where_line(p, h->line, buf);
    snprintf(buf, WHERE_MAX, "%s", p->name);
    return buf;
}

static entry_t *find_entry(const parse_t *p, const char *sec, const char *key)
{
    for (int i = 0; i < p->ne; i++)
        if (strcmp(p->e[i].section, sec) == 0 && strcmp(p->e[i].key, key) == 0)
            return &p->e[i];
    return NULL;
}

static cnn_status_t add_entry(parse_t *p, const char *sec, const char *key,
                              const char *value, int line, int override)
{
    if (p->ne == p->cape) {
        int cap = p->cape ? 2 * p->cape : 64;
        entry_t *e = realloc(p->e, (size_t)cap * sizeof *e);
        if (!e) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", p->name);
        p->e = e;
        p->cape = cap;
    }
    entry_t *e = &p->e[p->ne];
    e->section = xstrdup(sec);
    e->key = xstrdup(key);
    e->value = xstrdup(value);
    e->line = line;
    e->override = override;
    p->ne++;
    if (!e->section || !e->key || !e->value)
        return cnn_error_set(CNN_ENOMEM, "%s: out of memory", p->name);
    return CNN_OK;
}

static void fail_at(parse_t *p, cnn_status_t st)
{
    p->st = st;
    p->err_line = p->line;
}

/* A "[name]" line (raw, indentation stripped): record the section. */
static void reader_header(parse_t *p, const char *t)
{
    char where[WHERE_MAX];
    const char *close = strchr(t, ']');
    if (!close) return; /* inih reports the syntax error */
    const char *rest = close + 1;
    while (isspace((unsigned char)*rest)) rest++;
    size_t n = (size_t)(close - t - 1);
    char *name = malloc(n + 1);
    if (!name) { fail_at(p, cnn_error_set(CNN_ENOMEM, "%s: out of memory", p->name)); return; }
    memcpy(name, t + 1, n);
    name[n] = '\0';
    if (*rest && *rest != ';' && *rest != '#') {
        fail_at(p, bad(where_line(p, p->line, where), name, NULL,
                       "text after the section header (expected [section] alone on its line)"));
        free(name);
        return;
    }
    const header_t *old = find_header(p, name);
    if (old) {
        fail_at(p, bad(where_line(p, p->line, where), name, NULL,
                       "duplicate section (first at line %d)", old->line));
        free(name);
        return;
    }
    if (p->nh == p->caph) {
        int cap = p->caph ? 2 * p->caph : 16;
        header_t *h = realloc(p->h, (size_t)cap * sizeof *h);
        if (!h) {
            free(name);
            fail_at(p, cnn_error_set(CNN_ENOMEM, "%s: out of memory", p->name));
            return;
        }
        p->h = h;
        p->caph = cap;
    }
    p->h[p->nh].name = name;
    p->h[p->nh].line = p->line;
    p->cursec = name;
    p->nh++;
}

/* inih's reader: one physical line per call (see the top of the file). */
static char *reader(char *str, int num, void *stream)
{
    parse_t *p = stream;
    if (p->st != CNN_OK || p->text[p->pos] == '\0' || num < 2) return NULL;
    const char *s = p->text + p->pos;
    size_t n = strcspn(s, "\n");
    p->pos += n + (s[n] == '\n');
    p->line++;
    if (n + 1 > p->rawcap) {
        char *r = realloc(p->raw, n + 1);
        if (!r) {
            fail_at(p, cnn_error_set(CNN_ENOMEM, "%s: out of memory", p->name));
            return NULL;
        }
        p->raw = r;
        p->rawcap = n + 1;
    }
    memcpy(p->raw, s, n);
    p->raw[n] = '\0';
    char *t = p->raw;
    if (p->line == 1 && strncmp(t, "\xEF\xBB\xBF", 3) == 0) t += 3;
    t = cnn_str_trim(t);
    memmove(p->raw, t, strlen(t) + 1);
    if (p->raw[0] == '[') reader_header(p, p->raw);
    size_t m = strlen(p->raw), room = (size_t)num - 2;
    p->truncated = m > room;
    if (m > room) m = room;
    memcpy(str, p->raw, m);
    str[m] = '\n';
    str[m + 1] = '\0';
    return str;
}

/* The value of the current raw line, as inih would have split it. */
static const char *raw_value(parse_t *p)
{
    char *v = p->raw + strcspn(p->raw, "=:");
    if (*v) v++;
    while (isspace((unsigned char)*v)) v++;
    for (char *c = v; *c; c++)
        if (*c == ';' && c > v && isspace((unsigned char)c[-1])) { *c = '\0'; break; }
    return cnn_str_trim(v);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_t *p = user;
    char where[WHERE_MAX];
    (void)section; /* inih truncates long names; p->cursec is exact */
    if (p->st != CNN_OK) return 0;
    if (p->truncated) value = raw_value(p);
    if (!p->cursec) {
        fail_at(p, bad(where_line(p, p->line, where), "", name,
                       "key outside any section (expected a [section] line first)"));
        return 0;
    }
    const entry_t *old = find_entry(p, p->cursec, name);
    if (old) {
        fail_at(p, bad(where_line(p, p->line, where), p->cursec, name,
                       "duplicate key (first set at line %d)", old->line));
        return 0;
    }
    if (value[0] == ';') {
        /* "key =;x" would be the value ";x", but the resolved text prints
         * "key = ;x", where ';' after a space starts a comment: refused, so
         * that every config that parses prints back to itself */
        fail_at(p, bad(where_line(p, p->line, where), p->cursec, name,
                       "a value may not start with ';' (the comment character)"));
        return 0;
    }
    cnn_status_t st = add_entry(p, p->cursec, name, value, p->line, 0);
    if (st != CNN_OK) { fail_at(p, st); return 0; }
    return 1;
}

/* Line `n` (1-based) of text, for a syntax error message. */
static void text_line(const char *text, int n, char *buf, size_t len)
{
    for (int i = 1; i < n && *text; i++) {
        text = strchr(text, '\n');
        if (!text) { buf[0] = '\0'; return; }
        text++;
    }
    size_t m = strcspn(text, "\r\n");
    if (m >= len) m = len - 1;
    memcpy(buf, text, m);
    buf[m] = '\0';
}

static cnn_status_t read_entries(parse_t *p, const char *text)
{
    p->text = text;
    int rc = ini_parse_stream(reader, p, handler, p);
    if (rc > 0 && (p->st == CNN_OK || rc < p->err_line)) {
        char line[64], where[WHERE_MAX];
        text_line(text, rc, line, sizeof line);
        return cnn_error_set(CNN_ECONFIG, "%s: syntax error in '%s' (expected [section], "
                             "key = value, or a comment starting with ; or #)",
                             where_line(p, rc, where), cnn_str_trim(line));
    }
    if (p->st != CNN_OK) return p->st;
    if (rc == -2) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", p->name);
    if (rc != 0) return cnn_error_set(CNN_EINTERNAL, "%s: ini_parse_stream returned %d", p->name, rc);
    return CNN_OK;
}

/* Merges "section.key=value" into the entries: replaces the file's value
 * or adds the key. Only sections that exist may be set. */
static cnn_status_t add_override(parse_t *p, const char *assignment)
{
    char *copy = xstrdup(assignment);
    if (!copy) return cnn_error_set(CNN_ENOMEM, "out of memory");
    cnn_status_t st = CNN_OK;
    char *eq = strchr(copy, '=');
    char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
    if (!eq || !dot) {
        st = cnn_error_set(CNN_ECONFIG, "--set %s: malformed override (expected "
                           "--set section.key=value)", assignment);
        goto done;
    }
    *eq = '\0';
    *dot = '\0';
    char *sec = cnn_str_trim(copy), *key = cnn_str_trim(dot + 1), *value = cnn_str_trim(eq + 1);
    if (!*sec || !*key) {
        st = cnn_error_set(CNN_ECONFIG, "--set %s: malformed override (expected "
                           "--set section.key=value)", assignment);
        goto done;
    }
    for (const char *c = value; *c; c++)
        if (*c == ';' && (c == value || isspace((unsigned char)c[-1]))) {
            /* in the resolved text that would start a comment */
            st = cnn_error_set(CNN_ECONFIG, "--set %s.%s: a value may not hold ';' at its "
                               "start or after a space (the comment character)", sec, key);
            goto done;
        }
    if (!is_fixed_section(sec) && !find_header(p, sec)) {
        st = cnn_error_set(CNN_ECONFIG, "--set %s.%s: [%s] %s: no such section in %s "
                           "(--set cannot add a section)", sec, key, sec, key, p->name);
        goto done;
    }
    entry_t *e = find_entry(p, sec, key);
    if (e) {
        char *v = xstrdup(value);
        if (!v) { st = cnn_error_set(CNN_ENOMEM, "out of memory"); goto done; }
        free(e->value);
        e->value = v;
        e->override = 1;
    } else {
        st = add_entry(p, sec, key, value, 0, 1);
    }
done:
    free(copy);
    return st;
}

/* ------------------------------------------------------------------ */
/* Building the struct                                                  */

static void key_list(sbuf_t *b, const char *sec)
{
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, sec) == 0)
            sb_printf(b, "%s%s", n++ ? ", " : "", keys[i].name);
}

static cnn_status_t unknown_key(const parse_t *p, const entry_t *e)
{
    char where[WHERE_MAX];
    sbuf_t b = {0};
    key_list(&b, e->section);
    cnn_status_t st = bad(where_entry(p, e, where), e->section, e->key,
                          "unknown key (expected one of: %s%s)",
                          b.s ? b.s : "", strcmp(e->section, "sweep") == 0
                                              ? ", or section.key = v1, v2, ..." : "");
    free(b.s);
    return st;
}

/* Keys of the fixed sections, in file order, then the overrides. */
static cnn_status_t apply_fixed(parse_t *p, cnn_config_t *cfg)
{
    char where[WHERE_MAX];
    for (int i = 0; i < p->ne; i++) {
        const entry_t *e = &p->e[i];
        if (!is_fixed_section(e->section)) continue;
        const keydef_t *k = find_key(e->section, e->key);
        if (!k && strcmp(e->section, "sweep") == 0 && strchr(e->key, '.')) {
            cnn_sweep_config_t *sw = &cfg->sweep;
            if (sw->nparams == CNN_MAX_SWEEP)
                return bad(where_entry(p, e, where), e->section, e->key,
                           "more than %d swept keys", CNN_MAX_SWEEP);
            if (strlen(e->key) >= CNN_SWEEP_KEY_MAX || strlen(e->value) >= CNN_SWEEP_VALUES_MAX)
                return bad(where_entry(p, e, where), e->section, e->key,
                           "too long (at most %d characters of key and %d of values)",
                           CNN_SWEEP_KEY_MAX - 1, CNN_SWEEP_VALUES_MAX - 1);
            strcpy(sw->params[sw->nparams].key, e->key);
            strcpy(sw->params[sw->nparams].values, e->value);
            sw->nparams++;
            continue;
        }
        if (!k) return unknown_key(p, e);
        CNN_TRY(set_value(cfg, k, e->value, where_entry(p, e, where), e->section, e->key));
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (!(keys[i].flags & F_REQUIRED) || find_entry(p, keys[i].section, keys[i].name))
            continue;
        char exp[256];
        expected(&keys[i], exp, sizeof exp);
        return bad(where_section(p, keys[i].section, where), keys[i].section,
                   keys[i].name, "missing required key (expected %s)", exp);
    }
    return CNN_OK;
}

/* "dense takes: type, units": what a layer type's section may hold */
static void layer_takes(const cnn_layer_ops_t *t, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s takes: type", t->type);
    for (int i = 0; i < t->nkeys && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, ", %s", t->keys[i].name);
    if (n < len) snprintf(buf + n, len - n, ", %s", cnn_layer_is_merge(t) ? "inputs" : "input");
}

/* The registered layer types as "a | b | ...", for messages. */
static void type_list(char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *const *t = cnn_layer_types(); *t && n < len; t++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " | " : "", *t);
}

/* The ops table of layer section `name`, whose type key is te (NULL if
 * the section has none). */
static cnn_status_t layer_type(parse_t *p, const header_t *h, const entry_t *te,
                               const char *name, const cnn_layer_ops_t **t)
{
    char where[WHERE_MAX], types[256];
    type_list(types, sizeof types);
    if (!te)
        return bad(where_line(p, h->line, where), name, "type",
                   "missing required key (expected %s)", types);
    *t = cnn_layer_find(te->value);
    if (!*t)
        return bad(where_entry(p, te, where), name, "type",
                   "'%s' is not a layer type (expected %s)", te->value, types);
    return CNN_OK;
}

/* Key e of the section of a layer of type t (whose type key is te) into
 * spec; marks its index in *given. */
static cnn_status_t layer_entry(parse_t *p, const entry_t *te, const entry_t *e,
                                const cnn_layer_ops_t *t, cnn_layer_spec_t *spec,
                                unsigned *given)
{
    char where[WHERE_MAX], takes[128];
    const char *name = spec->name;
    layer_takes(t, takes, sizeof takes);
    if (!is_layer_key(e->key))
        return bad(where_entry(p, e, where), name, e->key, "unknown key (%s)", takes);
    const cnn_layer_key_t *k = cnn_layer_key(t, e->key);
    if (!k) {
        char tw[WHERE_MAX + 32] = "";
        if (te->override) snprintf(tw, sizeof tw, "; type set by --set %s.type", name);
        return bad(where_entry(p, e, where), name, e->key,
                   "does not apply to a %s layer (%s%s)", t->type, takes, tw);
    }
    const keydef_t kd = lkey_def(k);
    CNN_TRY(set_value(spec, &kd, e->value, where_entry(p, e, where), name, e->key));
    *given |= 1u << (k - t->keys);
    return CNN_OK;
}

/* The keys of a layer of type t that its section (header h) did not give:
 * their defaults, or an error for a required one. */
static cnn_status_t layer_defaults(parse_t *p, const header_t *h, const cnn_layer_ops_t *t,
                                   unsigned given, cnn_layer_spec_t *spec)
{
    char where[WHERE_MAX];
    for (int j = 0; j < t->nkeys; j++) {
        const cnn_layer_key_t *k = &t->keys[j];
        if (given & (1u << j)) continue;
        if (!k->def) {
            char exp[256];
            const keydef_t kd = lkey_def(k);
            expected(&kd, exp, sizeof exp);
            return bad(where_line(p, h->line, where), spec->name, k->name,
                       "missing required key for a %s layer (expected %s)", t->type, exp);
        }
        CNN_TRY(cnn_config_layer_default(spec, k));
    }
    return CNN_OK;
}

/* ---- the graph: `input` and `inputs` ------------------------------------
 * Structural keys of every layer section besides `type`: `input` names a
 * one-input layer's input (default: the layer before in [net] layers, or
 * the net's input for the first), `inputs` a merge layer's 2 to
 * CNN_LAYER_INPUTS_MAX inputs. Names are the net's input or earlier
 * layers (`layers` is the order of evaluation). An `input` naming the
 * default is stored as the default (ninputs 0), so that the resolved
 * config prints only what differs and a chain prints as it always has. */

#define INPUTS_WHAT(n) "a comma-separated list of " n " layer names, or " CNN_NET_INPUT_NAME
static const keydef_t input_key = {
    .name = "input", .kind = K_LAYERS, .off = offsetof(cnn_layer_spec_t, inputs),
    .off2 = offsetof(cnn_layer_spec_t, ninputs), .cap = CNN_NAME_MAX, .stride = CNN_NAME_MAX,
    .max_items = 1, .flags = F_NONEMPTY,
    .what = "the name of an earlier layer, or " CNN_NET_INPUT_NAME " (the net's input)"};
static const keydef_t inputs_key = {
    .name = "inputs", .kind = K_LAYERS, .off = offsetof(cnn_layer_spec_t, inputs),
    .off2 = offsetof(cnn_layer_spec_t, ninputs), .cap = CNN_NAME_MAX, .stride = CNN_NAME_MAX,
    .max_items = CNN_LAYER_INPUTS_MAX, .flags = F_NONEMPTY, .what = INPUTS_WHAT("2 to 4")};

static int is_input_key(const char *key)
{
    return strcmp(key, "input") == 0 || strcmp(key, "inputs") == 0;
}

/* The default input of layer li: the layer before, or the net's input. */
static const char *default_input(const cnn_config_t *cfg, int li)
{
    return li > 0 ? cfg->layers[li - 1].name : CNN_NET_INPUT_NAME;
}

/* Each name of layer li's inputs is the net's input or an earlier layer. */
static cnn_status_t check_inputs(parse_t *p, const cnn_config_t *cfg, int li,
                                 const entry_t *e)
{
    char where[WHERE_MAX];
    const cnn_layer_spec_t *spec = &cfg->layers[li];
    for (int k = 0; k < spec->ninputs; k++) {
        const char *in = spec->inputs[k];
        if (strcmp(in, CNN_NET_INPUT_NAME) == 0) continue;
        int j = 0;
        while (j < cfg->nlayers && strcmp(cfg->layers[j].name, in) != 0) j++;
        if (j == cfg->nlayers)
            return bad(where_entry(p, e, where), spec->name, e->key, "'%s' is not a layer "
                       "named in [net] layers (expected %s)", in,
                       strcmp(e->key, "inputs") == 0 ? inputs_key.what : input_key.what);
        if (j >= li)
            return bad(where_entry(p, e, where), spec->name, e->key, "'%s' is %s: a layer "
                       "takes the net's input or layers before it in [net] layers, the order "
                       "of evaluation (a cycle otherwise)", in,
                       j == li ? "the layer itself" : "a later layer");
    }
    return CNN_OK;
}

/* Layer li's `input` or `inputs` (type t; in = its entry or NULL, given
 * the other, other) into its spec. */
static cnn_status_t layer_inputs(parse_t *p, cnn_config_t *cfg, int li, const header_t *h,
                                 const cnn_layer_ops_t *t, const entry_t *in,
                                 const entry_t *ins)
{
    char where[WHERE_MAX];
    cnn_layer_spec_t *spec = &cfg->layers[li];
    const int merge = cnn_layer_is_merge(t);
    if (merge && in)
        return bad(where_entry(p, in, where), spec->name, "input", "does not apply to an %s "
                   "layer, which takes several (inputs = A, B, ...)", t->type);
    if (merge && !ins)
        return bad(where_line(p, h->line, where), spec->name,
                   "inputs", "missing required key for a merge layer (%s; expected %s)",
                   t->type, inputs_key.what);
    if (!merge && ins)
        return bad(where_entry(p, ins, where), spec->name, "inputs", "does not apply to a %s "
                   "layer, which takes one input (input = NAME)", t->type);
    const entry_t *e = merge ? ins : in;
    if (!e) return CNN_OK; /* the default */
    CNN_TRY(set_value(spec, merge ? &inputs_key : &input_key, e->value,
                      where_entry(p, e, where), spec->name, e->key));
    if (merge && spec->ninputs < 2)
        return bad(where_entry(p, e, where), spec->name, e->key, "one input (expected %s)",
                   inputs_key.what);
    CNN_TRY(check_inputs(p, cfg, li, e));
    if (!merge && strcmp(spec->inputs[0], default_input(cfg, li)) == 0) {
        memset(spec->inputs, 0, sizeof spec->inputs);
        spec->ninputs = 0;
    }
    return CNN_OK;
}

static cnn_status_t build_layer(parse_t *p, cnn_config_t *cfg, int li)
{
    char where[WHERE_MAX];
    cnn_layer_spec_t *spec = &cfg->layers[li];
    const char *name = spec->name;
    const header_t *h = find_header(p, name);
    if (!h) {
        const entry_t *le = find_entry(p, "net", "layers");
        return bad(where_entry(p, le, where), "net", "layers",
                   "layer '%s' has no [%s] section", name, name);
    }
    const entry_t *te = find_entry(p, name, "type");
    const cnn_layer_ops_t *t;
    CNN_TRY(layer_type(p, h, te, name, &t));
    memcpy(spec->type, t->type, strlen(t->type) + 1);
    unsigned given = 0;
    for (int i = 0; i < p->ne; i++) {
        const entry_t *e = &p->e[i];
        if (strcmp(e->section, name) != 0 || e == te || is_input_key(e->key)) continue;
        CNN_TRY(layer_entry(p, te, e, t, spec, &given));
    }
    CNN_TRY(layer_inputs(p, cfg, li, h, t, find_entry(p, name, "input"),
                         find_entry(p, name, "inputs")));
    return layer_defaults(p, h, t, given, spec);
}

static cnn_status_t build_layers(parse_t *p, cnn_config_t *cfg)
{
    char where[WHERE_MAX];
    for (int i = 0; i < p->nh; i++) {
        const char *s = p->h[i].name;
        if (is_fixed_section(s)) continue;
        int found = 0;
        for (int j = 0; j < cfg->nlayers && !found; j++)
            found = strcmp(cfg->layers[j].name, s) == 0;
        if (!found)
            return bad(where_line(p, p->h[i].line, where), s, NULL,
                       "unknown section (neither a config section nor a layer "
                       "named in [net] layers)");
    }
    for (int i = 0; i < cfg->nlayers; i++) {
        if (strcmp(cfg->layers[i].name, CNN_NET_INPUT_NAME) == 0) {
            const entry_t *le = find_entry(p, "net", "layers");
            return bad(where_entry(p, le, where), "net", "layers", "'%s' names the net's "
                       "input (in input = and inputs =), not a layer", CNN_NET_INPUT_NAME);
        }
        CNN_TRY(build_layer(p, cfg, i));
    }
    return CNN_OK;
}

/* Number of classes a data format has, 0 if the config cannot tell. */
static int format_classes(const cnn_data_config_t *d)
{
    if (d->format == CNN_FORMAT_CIFAR10) return 10;
    if (d->format == CNN_FORMAT_CIFAR100) return d->labels == CNN_LABELS_FINE ? 100 : 20;
    return 0;
}

static cnn_status_t check_data(parse_t *p, cnn_config_t *cfg)
{
    char where[WHERE_MAX];
    cnn_data_config_t *d = &cfg->data;
    for (size_t i = 0; i < NKEYS; i++) {
        const keydef_t *k = &keys[i];
        if (strcmp(k->section, "data") != 0) continue;
        const entry_t *e = find_entry(p, "data", k->name);
        if (e && !key_applies(k, d->format))
            return bad(where_entry(p, e, where), "data", k->name,
                       "applies only to format = %s (format is %s)",
                       k->flags & F_IDX    ? "idx"
                       : k->flags & F_H5   ? "hdf5"
                       : k->flags & F_C100 ? "cifar100"
                                           : "cifar10 or cifar100",
                       formats[d->format]);
        int required = (k->flags & (F_IDX | F_H5 | F_REQ_CIFAR)) != 0;
        if (!e && required && key_applies(k, d->format)) {
            char exp[256];
            expected(k, exp, sizeof exp);
            return bad(where_section(p, "data", where), "data", k->name,
                       "missing required key for format = %s (expected %s)",
                       formats[d->format], exp);
        }
    }
    int nk = format_classes(d);
    const entry_t *ce = find_entry(p, "data", "class_names");
    if (!ce) {
        d->class_names = d->format == CNN_FORMAT_CIFAR10 ? CNN_CLASSNAMES_CIFAR10
                         : d->format == CNN_FORMAT_CIFAR100
                             ? (d->labels == CNN_LABELS_FINE ? CNN_CLASSNAMES_CIFAR100_FINE
                                                             : CNN_CLASSNAMES_CIFAR100_COARSE)
                         : d->format == CNN_FORMAT_HDF5 ? CNN_CLASSNAMES_FILE
                                                        : CNN_CLASSNAMES_NONE;
    } else if (d->class_names == CNN_CLASSNAMES_FILE && d->format != CNN_FORMAT_HDF5) {
        return bad(where_entry(p, ce, where), "data", "class_names",
                   "file applies only to format = hdf5 (format is %s)", formats[d->format]);
    } else if (nk && d->class_names != CNN_CLASSNAMES_NONE &&
               classnames_count[d->class_names] != nk) {
        return bad(where_entry(p, ce, where), "data", "class_names",
                   "%s names %d classes but the data has %d", classnames[d->class_names],
                   classnames_count[d->class_names], nk);
    }
    const entry_t *le = find_entry(p, "data", "classes");
    for (int i = 0; i < d->nclasses; i++) {
        const char *c = d->classes[i];
        long idx;
        int r = parse_long(c, &idx);
        int limit = nk ? nk : classnames_count[d->class_names];
        if (r == 0 && (idx < 0 || (limit && idx >= limit)))
            return bad(where_entry(p, le, where), "data", "classes",
                       "class index %s is out of range (expected 0..%d)", c, limit - 1);
        if (r != 0 && d->class_names == CNN_CLASSNAMES_NONE)
            return bad(where_entry(p, le, where), "data", "classes",
                       "'%s' is not a class index and class_names = none (expected "
                       "indices, or set class_names)", c);
    }
    return CNN_OK;
}

/* Each [sweep] section.key names a real key and each value is valid. */
static cnn_status_t check_sweep(parse_t *p, cnn_config_t *cfg)
{
    char where[WHERE_MAX];
    cnn_config_t *scratch = NULL;
    cnn_status_t st = CNN_OK;
    for (int i = 0; i < cfg->sweep.nparams && st == CNN_OK; i++) {
        const cnn_sweep_param_t *sp = &cfg->sweep.params[i];
        const entry_t *e = find_entry(p, "sweep", sp->key);
        const char *w = where_entry(p, e, where);
        char sec[CNN_SWEEP_KEY_MAX];
        strcpy(sec, sp->key);
        char *key = strchr(sec, '.');
        *key++ = '\0';
        const keydef_t *k = NULL;
        keydef_t lkd;
        cnn_layer_spec_t *spec = NULL;
        if (is_fixed_section(sec)) {
            if (strcmp(sec, "sweep") == 0) {
                st = bad(w, "sweep", sp->key, "[sweep] keys cannot be swept");
                break;
            }
            k = find_key(sec, key);
            if (!k) {
                st = bad(w, "sweep", sp->key, "'%s' names no config key", sp->key);
                break;
            }
            if (k->kind == K_LIST || k->kind == K_LAYERS) {
                st = bad(w, "sweep", sp->key, "a list-valued key cannot be swept");
                break;
            }
        } else {
            int li = -1;
            for (int j = 0; j < cfg->nlayers; j++)
                if (strcmp(cfg->layers[j].name, sec) == 0) li = j;
            if (li < 0) {
                st = bad(w, "sweep", sp->key, "'%s' is neither a config section nor a "
                         "layer named in [net] layers", sec);
                break;
            }
            if (strcmp(key, "type") == 0) {
                st = bad(w, "sweep", sp->key, "a layer's type cannot be swept");
                break;
            }
            const cnn_layer_key_t *lk = cnn_layer_key(cnn_layer_find(cfg->layers[li].type), key);
            if (!lk) {
                st = bad(w, "sweep", sp->key, "'%s' is not a key of %s, a %s layer", key,
                         sec, cfg->layers[li].type);
                break;
            }
            lkd = lkey_def(lk);
            k = &lkd;
            spec = &cfg->layers[li];
        }
        if (!scratch && !(scratch = malloc(sizeof *scratch))) {
            st = cnn_error_set(CNN_ENOMEM, "out of memory checking [sweep]");
            break;
        }
        *scratch = *cfg;
        cnn_layer_spec_t lspec;
        memset(&lspec, 0, sizeof lspec);
        if (spec) lspec = *spec;
        char values[CNN_SWEEP_VALUES_MAX];
        strcpy(values, sp->values);
        char *s = cnn_str_trim(values);
        for (char *q = s;;) {
            char *comma = strchr(q, ',');
            if (comma) *comma = '\0';
            char *v = cnn_str_trim(q);
            if (!*v) {
                st = bad(w, "sweep", sp->key, "empty value in '%s' (expected v1, v2, ...)",
                         sp->values);
                break;
            }
            st = set_value(spec ? (void *)&lspec : (void *)scratch, k, v, w, "sweep", sp->key);
            if (st != CNN_OK || !comma) break;
            q = comma + 1;
        }
    }
    free(scratch);
    return st;
}

/* optimizer.milestones as numbers: epochs in 1..100000, increasing. */
static cnn_status_t parse_milestones(parse_t *p, cnn_opt_config_t *o)
{
    char where[WHERE_MAX];
    const entry_t *e = find_entry(p, "optimizer", "milestones");
    for (int i = 0; i < o->nmilestones; i++) {
        const char *item = o->milestone_items[i];
        long m;
        if (parse_long(item, &m) != 0 || m < 1 || m > 100000)
            return bad(where_entry(p, e, where), "optimizer", "milestones",
                       "'%s' is not an epoch (expected a comma-separated list of increasing "
                       "epochs, each in 1..100000)", item);
        if (i > 0 && m <= o->milestones[i - 1])
            return bad(where_entry(p, e, where), "optimizer", "milestones",
                       "%ld follows %ld (expected a comma-separated list of increasing epochs)",
                       m, o->milestones[i - 1]);
        o->milestones[i] = m;
    }
    return CNN_OK;
}

/* What involves more than one key of [optimizer] and [train]. */
static cnn_status_t check_training(parse_t *p, cnn_config_t *cfg)
{
    char where[WHERE_MAX];
    CNN_TRY(parse_milestones(p, &cfg->opt));
    if (cfg->opt.lr_schedule == CNN_LR_MULTISTEP && cfg->opt.nmilestones == 0) {
        const entry_t *e = find_entry(p, "optimizer", "lr_schedule");
        return bad(where_entry(p, e, where), "optimizer", "lr_schedule",
                   "multistep needs [optimizer] milestones (a comma-separated list of "
                   "increasing epochs)");
    }
    if (cfg->train.loss != CNN_LOSS_SOFTMAX_CE && cfg->train.label_smoothing > 0) {
        const entry_t *e = find_entry(p, "train", "label_smoothing");
        return bad(where_entry(p, e, where), "train", "label_smoothing",
                   "applies only to loss = softmax_ce (expected 0 with loss = hinge)");
    }
    return CNN_OK;
}

static cnn_status_t build(parse_t *p, cnn_config_t *cfg)
{
    CNN_TRY(apply_fixed(p, cfg));
    CNN_TRY(build_layers(p, cfg));
    CNN_TRY(check_data(p, cfg));
    CNN_TRY(check_training(p, cfg));
    if (!find_entry(p, "early_stopping", "mode"))
        cfg->early_stopping.mode =
            cfg->early_stopping.metric == CNN_METRIC_VAL_ACC ? CNN_MODE_MAX : CNN_MODE_MIN;
    return check_sweep(p, cfg);
}

/* ------------------------------------------------------------------ */
/* Public API                                                           */

void cnn_config_defaults(cnn_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].def) /* constant text, checked by the tests */
            (void)set_value(cfg, &keys[i], keys[i].def, "default", keys[i].section,
                            keys[i].name);
}

cnn_status_t cnn_config_layer_set(cnn_layer_spec_t *spec, const cnn_layer_key_t *k,
                                  const char *value, const char *where)
{
    const keydef_t kd = lkey_def(k);
    return set_value(spec, &kd, value, where, spec->name, k->name);
}

cnn_status_t cnn_config_layer_default(cnn_layer_spec_t *spec, const cnn_layer_key_t *k)
{
    const char *def = k->def;
    char num[32];
    if (!def)
        return cnn_error_set(CNN_ECONFIG, "[%s] %s: required, it has no default",
                             spec->name, k->name);
    if (def[0] == '=') { /* the value of another key of the same layer */
        const cnn_layer_key_t *from = cnn_layer_key(cnn_layer_find(spec->type), def + 1);
        if (!from)
            return cnn_error_set(CNN_EINTERNAL, "[%s] %s: default '%s' names no key of a "
                                 "%s layer", spec->name, k->name, def, spec->type);
        snprintf(num, sizeof num, "%d", *(const int *)((const char *)spec + from->off));
        def = num;
    }
    const keydef_t kd = lkey_def(k);
    return set_value(spec, &kd, def, "default", spec->name, k->name);
}

cnn_status_t cnn_config_parse_string(const char *text, const char *name,
                                     const char *const *overrides, int noverrides,
                                     cnn_config_t *cfg)
{
    parse_t p = {.name = name};
    cnn_config_t *tmp = malloc(sizeof *tmp);
    cnn_status_t st;
    if (!tmp) return cnn_error_set(CNN_ENOMEM, "%s: out of memory", name);
    if (strlen(name) >= sizeof tmp->source) {
        st = cnn_error_set(CNN_ECONFIG, "%.64s...: config name longer than %d characters",
                           name, CNN_PATH_MAX - 1);
        goto done;
    }
    cnn_config_defaults(tmp);
    st = read_entries(&p, text);
    for (int i = 0; i < noverrides && st == CNN_OK; i++) st = add_override(&p, overrides[i]);
    if (st == CNN_OK) st = build(&p, tmp);
    if (st == CNN_OK) {
        strcpy(tmp->source, name);
        *cfg = *tmp;
    }
done:
    parse_free(&p);
    free(tmp);
    return st;
}

cnn_status_t cnn_config_load(const char *path, const char *const *overrides,
                             int noverrides, cnn_config_t *cfg)
{
    FILE *f;
    CNN_TRY(cnn_fs_fopen_input(path, CNN_ECONFIG, "a config file", &f, NULL));
    char *text = NULL;
    size_t len = 0, cap = 0;
    cnn_status_t st = CNN_OK;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *t = realloc(text, cap);
            if (!t) { st = cnn_error_set(CNN_ENOMEM, "%s: out of memory", path); goto done; }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (len > (size_t)CONFIG_FILE_MAX) {
            st = cnn_error_set(CNN_ECONFIG, "%s: config file larger than %ld bytes", path,
                               CONFIG_FILE_MAX);
            goto done;
        }
        if (n == 0) break;
    }
    if (ferror(f)) {
        st = cnn_error_set(CNN_ECONFIG, "%s: cannot read config file: %s", path,
                           strerror(errno));
        goto done;
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        st = cnn_error_set(CNN_ECONFIG, "%s: config file contains a NUL byte (not a text file?)",
                           path);
        goto done;
    }
    st = cnn_config_parse_string(text, path, overrides, noverrides, cfg);
done:
    fclose(f);
    free(text);
    return st;
}

cnn_status_t cnn_config_set(cnn_config_t *cfg, const char *assignment)
{
    char *text = cnn_config_to_string(cfg);
    if (!text) return cnn_error_set(CNN_ENOMEM, "out of memory applying --set %s", assignment);
    cnn_config_t *tmp = malloc(sizeof *tmp);
    char *name = malloc(WHERE_MAX);
    cnn_status_t st;
    if (!tmp || !name) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory applying --set %s", assignment);
        goto done;
    }
    /* Line numbers in messages refer to the resolved text, not the file. */
    snprintf(name, WHERE_MAX, "%.*s (resolved)", CNN_PATH_MAX - 16, cfg->source);
    st = cnn_config_parse_string(text, name, &assignment, 1, tmp);
    if (st == CNN_OK) {
        memcpy(tmp->source, cfg->source, sizeof tmp->source);
        *cfg = *tmp;
    }
done:
    free(text);
    free(tmp);
    free(name);
    return st;
}

static void print_section(sbuf_t *b, const cnn_config_t *cfg, const char *sec)
{
    sb_printf(b, "[%s]\n", sec);
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, sec) != 0 || !key_applies(&keys[i], cfg->data.format))
            continue;
        sb_printf(b, "%s = ", keys[i].name);
        format_value(b, cfg, &keys[i]);
        sb_printf(b, "\n");
    }
}

char *cnn_config_to_string(const cnn_config_t *cfg)
{
    sbuf_t b = {0};
    print_section(&b, cfg, "data");
    sb_printf(&b, "\n");
    print_section(&b, cfg, "net");
    for (int i = 0; i < cfg->nlayers; i++) {
        const cnn_layer_spec_t *s = &cfg->layers[i];
        sb_printf(&b, "\n[%s]\ntype = %s\n", s->name, s->type);
        if (s->ninputs > 0) { /* 0: the default, the layer before */
            const keydef_t *ik = s->ninputs > 1 ? &inputs_key : &input_key;
            const cnn_layer_ops_t *mt = cnn_layer_find(s->type);
            if (mt && cnn_layer_is_merge(mt)) ik = &inputs_key;
            sb_printf(&b, "%s = ", ik->name);
            format_value(&b, s, ik);
            sb_printf(&b, "\n");
        }
        const cnn_layer_ops_t *t = cnn_layer_find(s->type);
        for (int j = 0; t && j < t->nkeys; j++) {
            const keydef_t kd = lkey_def(&t->keys[j]);
            sb_printf(&b, "%s = ", kd.name);
            format_value(&b, s, &kd);
            sb_printf(&b, "\n");
        }
    }
    for (size_t i = 2; i < NSECTIONS; i++) {
        sb_printf(&b, "\n");
        print_section(&b, cfg, sections[i]);
    }
    for (int i = 0; i < cfg->sweep.nparams; i++)
        sb_printf(&b, "%s = %s\n", cfg->sweep.params[i].key, cfg->sweep.params[i].values);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

uint64_t cnn_config_hash(const char *s)
{
    return cnn_fnv1a(CNN_FNV1A_INIT, s, strlen(s));
}

#define CNN_PI 3.14159265358979323846

/* The schedule's factor on the rate (step, exponential, multistep). */
static double schedule_factor(const cnn_opt_config_t *o, double epochs_done, long steps_done)
{
    const double t = o->lr_decay_unit == CNN_LR_UNIT_EPOCHS ? epochs_done : (double)steps_done;
    const double every = (double)o->lr_decay_every;
    int passed = 0;
    switch (o->lr_schedule) {
    case CNN_LR_STEP: return pow(o->lr_decay, floor(t / every));
    case CNN_LR_EXPONENTIAL: return pow(o->lr_decay, t / every);
    case CNN_LR_MULTISTEP:
        while (passed < o->nmilestones && (double)o->milestones[passed] <= epochs_done) passed++;
        return pow(o->lr_decay, (double)passed);
    default: return 1.0;
    }
}

double cnn_config_lr(const cnn_config_t *cfg, double epochs_done, long steps_done,
                     long steps_per_epoch, int ranks)
{
    const cnn_opt_config_t *o = &cfg->opt;
    /* the global batch is P times one rank's: the linear scaling rule */
    const double P = o->lr_scaling == CNN_LR_SCALING_LINEAR && ranks > 1 ? (double)ranks : 1.0;
    const double start = o->lr_warmup_start == CNN_LR_WARMUP_START_AUTO ? o->lr
                                                                        : o->lr_warmup_start;
    const int warm = epochs_done < o->lr_warmup_epochs;
    if (o->lr_schedule == CNN_LR_COSINE) {
        const double L = o->lr * P;
        const double T = (double)cfg->train.epochs * (double)steps_per_epoch;
        const double x = T > 0 ? fmin((double)steps_done / T, 1.0) : 1.0;
        double lr = o->lr_min + (L - o->lr_min) * (1.0 + cos(CNN_PI * x)) / 2.0;
        if (warm) {
            const double a = start / L;
            lr *= a + (1.0 - a) * epochs_done / o->lr_warmup_epochs;
        }
        return lr;
    }
    /* in units of the unscaled rate: the factor F = P * warmup factor
     * grows from a = start / lr to P */
    double lr = o->lr;
    if (o->lr_schedule != CNN_LR_CONSTANT) lr = o->lr * schedule_factor(o, epochs_done, steps_done);
    double f = P;
    if (warm) {
        const double a = start / o->lr;
        f = a + (f - a) * epochs_done / o->lr_warmup_epochs;
    }
    if (f != 1.0) lr *= f;
    return lr;
}

cnn_status_t cnn_config_get_string(const cnn_config_t *cfg, const char *section_dot_key,
                                   char *buf, size_t len)
{
    char sec[CNN_SWEEP_KEY_MAX];
    const char *dot = strchr(section_dot_key, '.');
    size_t n = dot ? (size_t)(dot - section_dot_key) : 0;
    if (!dot || n == 0 || n >= sizeof sec || !dot[1])
        return cnn_error_set(CNN_ECONFIG, "'%s' is not a section.key name", section_dot_key);
    memcpy(sec, section_dot_key, n);
    sec[n] = '\0';
    const char *key = dot + 1;
    sbuf_t b = {0};
    int found = 0;
    sb_printf(&b, "%s", ""); /* so that an empty value still has a buffer */
    if (is_fixed_section(sec)) {
        const keydef_t *k = find_key(sec, key);
        if (k && key_applies(k, cfg->data.format)) {
            format_value(&b, cfg, k);
            found = 1;
        } else if (!k && strcmp(sec, "sweep") == 0) {
            for (int i = 0; i < cfg->sweep.nparams && !found; i++)
                if (strcmp(cfg->sweep.params[i].key, key) == 0) {
                    sb_printf(&b, "%s", cfg->sweep.params[i].values);
                    found = 1;
                }
        }
    } else {
        for (int i = 0; i < cfg->nlayers && !found; i++) {
            const cnn_layer_spec_t *s = &cfg->layers[i];
            if (strcmp(s->name, sec) != 0) continue;
            const cnn_layer_key_t *lk = cnn_layer_key(cnn_layer_find(s->type), key);
            found = 1;
            if (strcmp(key, "type") == 0) {
                sb_printf(&b, "%s", s->type);
            } else if (is_input_key(key)) { /* the resolved names */
                if (s->ninputs == 0) sb_printf(&b, "%s", default_input(cfg, i));
                else format_value(&b, s, &inputs_key);
            } else if (lk) {
                const keydef_t kd = lkey_def(lk);
                format_value(&b, s, &kd);
            } else {
                found = 0;
            }
        }
    }
    if (!found && !b.failed) {
        free(b.s);
        return cnn_error_set(CNN_ECONFIG, "[%s] %s: no such key in this config", sec, key);
    }
    cnn_status_t st = CNN_OK;
    if (b.failed) st = cnn_error_set(CNN_ENOMEM, "out of memory");
    else if (b.len >= len)
        st = cnn_error_set(CNN_EINTERNAL, "[%s] %s: value needs %zu bytes, buffer has %zu",
                           sec, key, b.len + 1, len);
    else memcpy(buf, b.s, b.len + 1);
    free(b.s);
    return st;
}
