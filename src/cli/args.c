/* args.c - "--flag value" parsing with strict numbers. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int is_switch(const char *name, const char *const *switches)
{
    for (; switches && *switches; switches++)
        if (!strcmp(name, *switches)) return 1;
    return 0;
}

cnn_status_t cli_parse(int argc, char **argv, const char *const *switches,
                       cli_args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strncmp(s, "--", 2) == 0 && s[2] != '\0') {
            if (a->nflags == CLI_MAX_FLAGS)
                return cnn_error_set(CNN_EUSAGE, "too many flags");
            a->name[a->nflags] = s;
            if (is_switch(s, switches)) {
                a->value[a->nflags] = NULL;
            } else {
                const char *eq = strchr(s, '=');
                if (eq) /* --flag=value is not supported: say so plainly */
                    return cnn_error_set(CNN_EUSAGE, "write '%.*s VALUE', not '%s'",
                                         (int)(eq - s), s, s);
                /* a last flag without its value: cli_check_unused tells an
                 * unknown flag from a known one that lacks its value */
                if (i + 1 >= argc) a->novalue = a->nflags + 1;
                else a->value[a->nflags] = argv[++i];
            }
            a->nflags++;
        } else {
            if (a->npos == CLI_MAX_FLAGS)
                return cnn_error_set(CNN_EUSAGE, "too many arguments");
            a->pos[a->npos++] = s;
        }
    }
    return CNN_OK;
}

const char *cli_get(cli_args_t *a, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < a->nflags; i++)
        if (!strcmp(a->name[i], name)) {
            a->used[i] = 1;
            v = a->value[i];
        }
    return v;
}

int cli_get_all(cli_args_t *a, const char *name, const char **vals, int max)
{
    int n = 0;
    for (int i = 0; i < a->nflags; i++)
        if (!strcmp(a->name[i], name)) {
            a->used[i] = 1;
            if (n < max) vals[n] = a->value[i];
            n++;
        }
    return n;
}

int cli_has(cli_args_t *a, const char *name)
{
    int found = 0;
    for (int i = 0; i < a->nflags; i++)
        if (!strcmp(a->name[i], name)) {
            a->used[i] = 1;
            found = 1;
        }
    return found;
}

cnn_status_t cli_need(cli_args_t *a, const char *name, const char **out)
{
    *out = cli_get(a, name);
    if (a->novalue && !strcmp(a->name[a->novalue - 1], name))
        return cnn_error_set(CNN_EUSAGE, "%s needs a value", name);
    if (!*out) return cnn_error_set(CNN_EUSAGE, "missing required flag %s", name);
    return CNN_OK;
}

cnn_status_t cli_check_unused(const cli_args_t *a)
{
    for (int i = 0; i < a->nflags; i++)
        if (!a->used[i])
            return cnn_error_set(CNN_EUSAGE, "unknown or unused flag %s", a->name[i]);
    if (a->novalue) return cnn_error_set(CNN_EUSAGE, "%s needs a value", a->name[a->novalue - 1]);
    return CNN_OK;
}

cnn_status_t cli_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE)
        return cnn_error_set(CNN_EUSAGE, "%s: '%s' is not an integer", flag, s);
    if (v < lo || v > hi)
        return cnn_error_set(CNN_EUSAGE, "%s: %ld is out of range [%ld, %ld]", flag,
                             v, lo, hi);
    *out = v;
    return CNN_OK;
}

cnn_status_t cli_float(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v))
        return cnn_error_set(CNN_EUSAGE, "%s: '%s' is not a finite number", flag, s);
    *out = v;
    return CNN_OK;
}

cnn_status_t cli_dims(const char *flag, const char *s, int maxd, int *dims, int *nd)
{
    *nd = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno == ERANGE || v < 1 || v > INT_MAX / 2)
            return cnn_error_set(CNN_EUSAGE,
                                 "%s: '%s' is not a list of positive integers like 2,3,4,4",
                                 flag, s);
        if (*nd == maxd)
            return cnn_error_set(CNN_EUSAGE, "%s: '%s' has more than %d dimensions",
                                 flag, s, maxd);
        dims[(*nd)++] = (int)v;
        if (*end == ',' || *end == 'x') end++;
        else if (*end != '\0')
            return cnn_error_set(CNN_EUSAGE,
                                 "%s: '%s' is not a list of positive integers like 2,3,4,4",
                                 flag, s);
        p = end;
    }
    if (*nd == 0) return cnn_error_set(CNN_EUSAGE, "%s: empty shape", flag);
    return CNN_OK;
}
