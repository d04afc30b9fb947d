/* pack_list.c - the catalog of a pack: the images of an image folder (in
 * sorted order, listed by rank 0), of an IDX pair or of CIFAR batches,
 * their labels and class names, renumbered by --classes-from.
 *
 * An image folder is read two levels deep only, DIR/<class>/<image>, so a
 * symlink loop cannot make the walk run away: a link that loops fails
 * stat() with ELOOP and is reported as a bad entry like any other. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mpicnn/dist.h"
#include "mpicnn/h5io.h"
#include "pack_impl.h"

/* Most class names read from a --classes-from file. */
#define CLASSES_MAX 100000
/* Longest path of an entry of the folder. */
#define PATH_LEN 4096

typedef struct {
    char **v;
    size_t n, cap;
} strvec_t;

static void strvec_free(strvec_t *s)
{
    cnn_h5_strings_free(s->v, s->n);
    memset(s, 0, sizeof *s);
}

static cnn_status_t strvec_push(strvec_t *s, const char *str)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return cnn_error_set(CNN_ENOMEM, "out of memory listing files");
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str))) return cnn_error_set(CNN_ENOMEM, "out of memory listing files");
    s->n++;
    return CNN_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cnn_status_t pack_note(pack_notes_t *nt, const char *line)
{
    const size_t k = strlen(line);
    if (nt->len + k + 2 > nt->cap) {
        size_t cap = nt->cap ? 2 * nt->cap : 4096;
        while (cap < nt->len + k + 2) cap *= 2;
        char *t = realloc(nt->text, cap);
        if (!t) return cnn_error_set(CNN_ENOMEM, "out of memory noting skipped files");
        nt->text = t;
        nt->cap = cap;
    }
    memcpy(nt->text + nt->len, line, k);
    nt->len += k;
    nt->text[nt->len++] = '\n';
    nt->text[nt->len] = '\0';
    nt->lines++;
    return CNN_OK;
}

void pack_notes_free(pack_notes_t *nt)
{
    if (!nt) return;
    free(nt->text);
    memset(nt, 0, sizeof *nt);
}

void pack_catalog_free(pack_catalog_t *cat)
{
    if (!cat) return;
    cnn_h5_strings_free(cat->paths, cat->paths ? cat->n : 0);
    free(cat->labels);
    cnn_dataset_free(cat->ds);
    cnn_h5_strings_free(cat->classes, (size_t)cat->nclasses);
    free(cat->source);
    memset(cat, 0, sizeof *cat);
}

/* ---- the folder walk (rank 0) ------------------------------------------- */

/* The names in dir (no ".", "..", or hidden names), sorted bytewise. */
static cnn_status_t list_dir(const char *dir, strvec_t *names, int *err)
{
    DIR *d = opendir(dir);
    *err = 0;
    if (!d) {
        *err = errno;
        return CNN_OK;
    }
    cnn_status_t st = CNN_OK;
    struct dirent *e;
    errno = 0;
    while (st == CNN_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') st = strvec_push(names, e->d_name);
        errno = 0;
    }
    if (st == CNN_OK && errno) *err = errno;
    closedir(d);
    if (names->n > 1) qsort(names->v, names->n, sizeof *names->v, cmp_str);
    return st;
}

static int image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

/* A bad entry: an error, or a note when bad entries are skipped. */
static cnn_status_t bad_entry(const cnn_pack_opts_t *o, pack_notes_t *skipped, const char *path,
                              const char *why)
{
    if (!o->skip_bad)
        return cnn_error_set(CNN_EDATA, "%s: %s (--on-bad skip would skip it)", path, why);
    char line[PATH_LEN + 256];
    snprintf(line, sizeof line, "%s: %s", path, why);
    return pack_note(skipped, line);
}

/* dir/name into buf (PATH_LEN bytes). */
static cnn_status_t join_path(char *buf, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, PATH_LEN, "%s/%s", dir, name) >= PATH_LEN)
        return cnn_error_set(CNN_EDATA, "%s/%s: the path is too long", dir, name);
    return CNN_OK;
}

static const char *errno_text(int err)
{
    return err == ELOOP ? "a symlink loop (too many levels of symbolic links)" : strerror(err);
}

/* The images of one class folder, appended to paths/labels. */
static cnn_status_t walk_class(const cnn_pack_opts_t *o, const char *cdir, int label,
                               strvec_t *paths, int32_t **labels, size_t *lcap,
                               pack_notes_t *skipped)
{
    strvec_t names = {0};
    int err;
    char path[PATH_LEN];
    const size_t before = paths->n;
    cnn_status_t st = list_dir(cdir, &names, &err);
    if (st == CNN_OK && err) st = bad_entry(o, skipped, cdir, errno_text(err));
    for (size_t i = 0; st == CNN_OK && i < names.n; i++) {
        struct stat sb;
        if ((st = join_path(path, cdir, names.v[i])) != CNN_OK) break;
        if (stat(path, &sb) != 0)
            st = bad_entry(o, skipped, path, errno_text(errno));
        else if (S_ISDIR(sb.st_mode))
            st = bad_entry(o, skipped, path, "a folder inside a class folder (only "
                           "DIR/<class>/<image> is read)");
        else if (!S_ISREG(sb.st_mode))
            st = bad_entry(o, skipped, path, "not a regular file");
        else if (!image_name(names.v[i]))
            st = bad_entry(o, skipped, path, "not an image file name (.png, .jpg, .jpeg)");
        else if ((st = strvec_push(paths, path)) == CNN_OK) {
            if (paths->n > *lcap) {
                *lcap = paths->cap;
                int32_t *l = realloc(*labels, *lcap * sizeof *l);
                if (!l) st = cnn_error_set(CNN_ENOMEM, "out of memory listing files");
                else *labels = l;
            }
            if (st == CNN_OK) (*labels)[paths->n - 1] = label;
        }
    }
    if (st == CNN_OK && !err && paths->n == before)
        st = bad_entry(o, skipped, cdir, "empty class folder: no images");
    strvec_free(&names);
    return st;
}

/* The class folders of dir (sorted), and their images. */
static cnn_status_t walk_folder(const cnn_pack_opts_t *o, pack_catalog_t *cat,
                                pack_notes_t *skipped)
{
    const char *dir = o->inputs[0];
    strvec_t top = {0}, classes = {0}, paths = {0};
    size_t lcap = 0;
    int err;
    struct stat sb;
    char path[PATH_LEN];
    if (stat(dir, &sb) != 0) return cnn_error_set(CNN_EDATA, "%s: %s", dir, errno_text(errno));
    if (!S_ISDIR(sb.st_mode))
        return cnn_error_set(CNN_EDATA, "%s: not a folder (an image folder is "
                             "DIR/<class>/*.png|jpg|jpeg; IDX input needs --labels, CIFAR "
                             "input --format)", dir);
    cnn_status_t st = list_dir(dir, &top, &err);
    if (st == CNN_OK && err) st = cnn_error_set(CNN_EDATA, "%s: %s", dir, strerror(err));
    for (size_t i = 0; st == CNN_OK && i < top.n; i++) {
        if ((st = join_path(path, dir, top.v[i])) != CNN_OK) break;
        if (stat(path, &sb) != 0) st = bad_entry(o, skipped, path, errno_text(errno));
        else if (!S_ISDIR(sb.st_mode))
            st = bad_entry(o, skipped, path, "not a class folder (images go in DIR/<class>/)");
        else st = strvec_push(&classes, top.v[i]);
    }
    if (st == CNN_OK && classes.n == 0)
        st = cnn_error_set(CNN_EDATA, "%s: no class folders (expected DIR/<class>/*.png|jpg|jpeg)",
                           dir);
    for (size_t k = 0; st == CNN_OK && k < classes.n; k++) {
        if ((st = join_path(path, dir, classes.v[k])) != CNN_OK) break;
        st = walk_class(o, path, (int)k, &paths, &cat->labels, &lcap, skipped);
    }
    if (st == CNN_OK) {
        cat->n = paths.n;
        cat->paths = paths.v;
        cat->nclasses = (int)classes.n;
        cat->classes = classes.v;
        paths = (strvec_t){0};
        classes = (strvec_t){0};
    }
    strvec_free(&top);
    strvec_free(&classes);
    strvec_free(&paths);
    return st;
}

/* ---- the catalog on every rank ------------------------------------------- */

/* Rank 0's folder catalog as one buffer: n, nclasses, labels, then the
 * class names and paths, each ending in NUL. */
static cnn_status_t pack_blob(const pack_catalog_t *cat, char **blob, uint64_t *size)
{
    size_t len = 2 * sizeof(uint64_t) + cat->n * sizeof(int32_t);
    for (int k = 0; k < cat->nclasses; k++) len += strlen(cat->classes[k]) + 1;
    for (size_t i = 0; i < cat->n; i++) len += strlen(cat->paths[i]) + 1;
    char *b = malloc(len), *p = b;
    if (!b) return cnn_error_set(CNN_ENOMEM, "out of memory sharing the file list");
    const uint64_t head[2] = {cat->n, (uint64_t)cat->nclasses};
    memcpy(p, head, sizeof head);
    p += sizeof head;
    memcpy(p, cat->labels, cat->n * sizeof(int32_t));
    p += cat->n * sizeof(int32_t);
    for (int k = 0; k < cat->nclasses; k++) p = stpcpy(p, cat->classes[k]) + 1;
    for (size_t i = 0; i < cat->n; i++) p = stpcpy(p, cat->paths[i]) + 1;
    *blob = b;
    *size = len;
    return CNN_OK;
}

static cnn_status_t unpack_blob(const char *b, pack_catalog_t *cat)
{
    uint64_t head[2];
    memcpy(head, b, sizeof head);
    b += sizeof head;
    cat->n = head[0];
    cat->nclasses = (int)head[1];
    cat->labels = malloc((cat->n ? cat->n : 1) * sizeof(int32_t));
    cat->classes = calloc((size_t)cat->nclasses, sizeof *cat->classes);
    cat->paths = calloc(cat->n ? cat->n : 1, sizeof *cat->paths);
    if (!cat->labels || !cat->classes || !cat->paths)
        return cnn_error_set(CNN_ENOMEM, "out of memory for the file list");
    memcpy(cat->labels, b, cat->n * sizeof(int32_t));
    b += cat->n * sizeof(int32_t);
    for (int k = 0; k < cat->nclasses; k++, b += strlen(b) + 1)
        if (!(cat->classes[k] = strdup(b))) return cnn_error_set(CNN_ENOMEM, "out of memory");
    for (size_t i = 0; i < cat->n; i++, b += strlen(b) + 1)
        if (!(cat->paths[i] = strdup(b))) return cnn_error_set(CNN_ENOMEM, "out of memory");
    return CNN_OK;
}

/* Rank 0 walks the folder; the others receive its catalog. */
static cnn_status_t share_folder(MPI_Comm comm, int rank, const cnn_pack_opts_t *o,
                                 pack_catalog_t *cat, pack_notes_t *skipped)
{
    char *blob = NULL;
    uint64_t size = 0;
    cnn_status_t st = CNN_OK;
    if (rank == 0 && (st = walk_folder(o, cat, skipped)) == CNN_OK)
        st = pack_blob(cat, &blob, &size);
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    CNN_MPI_CHECK(st, MPI_Bcast(&size, 1, MPI_UINT64_T, 0, comm), done);
    if (size > (uint64_t)1 << 31) {
        st = cnn_error_set(CNN_EDATA, "%s: the list of files is too long (%llu bytes)",
                           o->inputs[0], (unsigned long long)size);
        goto done;
    }
    if (rank != 0 && !(blob = malloc(size)))
        st = cnn_error_set(CNN_ENOMEM, "out of memory for the file list");
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    CNN_MPI_CHECK(st, MPI_Bcast(blob, (int)size, MPI_BYTE, 0, comm), done);
    if (rank != 0) st = unpack_blob(blob, cat);
done:
    free(blob);
    return st;
}

/* IDX or CIFAR: every rank loads the file(s). */
static cnn_status_t load_arrays(const cnn_pack_opts_t *o, pack_catalog_t *cat)
{
    if (o->source == CNN_PACK_IDX) CNN_TRY(cnn_idx_load(o->inputs[0], o->labels, &cat->ds));
    else
        CNN_TRY(cnn_cifar_load(o->inputs, o->ninputs, o->source == CNN_PACK_CIFAR10 ? 10 : 100,
                               o->coarse, &cat->ds));
    const cnn_dataset_t *ds = cat->ds;
    cat->n = ds->n;
    cat->nclasses = ds->nclasses;
    cat->labels = malloc((ds->n ? ds->n : 1) * sizeof *cat->labels);
    cat->classes = calloc((size_t)ds->nclasses, sizeof *cat->classes);
    if (!cat->labels || !cat->classes) return cnn_error_set(CNN_ENOMEM, "out of memory");
    memcpy(cat->labels, ds->labels, ds->n * sizeof *cat->labels);
    for (int k = 0; k < ds->nclasses; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        const char *name = ds->class_names && ds->class_names[k] ? ds->class_names[k] : num;
        if (!(cat->classes[k] = strdup(name))) return cnn_error_set(CNN_ENOMEM, "out of memory");
    }
    return CNN_OK;
}

/* The class names of a data file (checked to be one). */
static cnn_status_t read_train_classes(const char *path, char ***names, size_t *n)
{
    cnn_h5r_t *r = NULL;
    char *format = NULL;
    CNN_TRY(cnn_h5r_open(path, &r));
    cnn_status_t st = cnn_h5r_attr_str(r, "/", "format", &format);
    if (st == CNN_OK && strcmp(format, CNN_DATA_FORMAT) != 0)
        st = cnn_error_set(CNN_EDATA, "%s: not an mpicnn data file (format '%s', expected '%s')",
                           path, format, CNN_DATA_FORMAT);
    if (st == CNN_OK) st = cnn_h5r_strings(r, "/classes", CLASSES_MAX, names, n);
    free(format);
    cnn_h5r_close(r);
    if (st != CNN_OK) cnn_error_prefix("--classes-from");
    return st;
}

/* Renumbers the catalog's labels to the classes of o->classes_from. */
static cnn_status_t renumber(const cnn_pack_opts_t *o, pack_catalog_t *cat)
{
    char **train = NULL;
    size_t nt = 0;
    CNN_TRY(read_train_classes(o->classes_from, &train, &nt));
    cnn_status_t st = CNN_OK;
    int *map = malloc(((size_t)cat->nclasses + 1) * sizeof *map);
    if (!map) st = cnn_error_set(CNN_ENOMEM, "out of memory");
    for (int k = 0; st == CNN_OK && k < cat->nclasses; k++) {
        map[k] = -1;
        for (size_t j = 0; j < nt && map[k] < 0; j++)
            if (!strcmp(cat->classes[k], train[j])) map[k] = (int)j;
        if (map[k] < 0)
            st = cnn_error_set(CNN_EDATA, "%s: class '%s' is not one of the %zu classes of %s",
                               o->inputs[0], cat->classes[k], nt, o->classes_from);
    }
    if (st == CNN_OK) {
        for (size_t i = 0; i < cat->n; i++) cat->labels[i] = map[cat->labels[i]];
        cnn_h5_strings_free(cat->classes, (size_t)cat->nclasses);
        cat->classes = train;
        cat->nclasses = (int)nt;
        train = NULL;
    }
    free(map);
    cnn_h5_strings_free(train, nt);
    return st;
}

/* The `source` attribute: the kind of source and its paths. */
static cnn_status_t describe_source(const cnn_pack_opts_t *o, pack_catalog_t *cat)
{
    static const char *const kind[] = {"folder", "idx", "cifar10", "cifar100"};
    size_t len = 32 + (o->labels ? strlen(o->labels) + 1 : 0);
    for (int i = 0; i < o->ninputs; i++) len += strlen(o->inputs[i]) + 1;
    if (!(cat->source = malloc(len))) return cnn_error_set(CNN_ENOMEM, "out of memory");
    char *p = stpcpy(cat->source, kind[o->source]);
    if (o->source == CNN_PACK_CIFAR100) p = stpcpy(p, o->coarse ? "-coarse" : "-fine");
    for (int i = 0; i < o->ninputs; i++) p = stpcpy(stpcpy(p, " "), o->inputs[i]);
    if (o->labels) stpcpy(stpcpy(p, " "), o->labels);
    return CNN_OK;
}

cnn_status_t pack_catalog_make(MPI_Comm comm, const cnn_pack_opts_t *o, pack_catalog_t *cat,
                               pack_notes_t *skipped)
{
    int rank;
    cnn_status_t st = CNN_OK;
    memset(cat, 0, sizeof *cat);
    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), done);
    if (o->source == CNN_PACK_FOLDER) st = share_folder(comm, rank, o, cat, skipped);
    else st = cnn_dist_agree(comm, load_arrays(o, cat));
    if (st != CNN_OK) goto done;
    st = describe_source(o, cat);
    if (st == CNN_OK && o->classes_from) st = renumber(o, cat);
done:
    st = cnn_dist_agree(comm, st);
    if (st != CNN_OK) pack_catalog_free(cat);
    return st;
}
