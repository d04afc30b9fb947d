/* cifar.c - the CIFAR-10 / CIFAR-100 binary loader.
 *
 * A file is a run of fixed-size records: the label byte(s), then 3072
 * pixel bytes, already in CHW order (1024 red, 1024 green, 1024 blue, each
 * row-major 32x32). All files are sized first, so a bad size fails before
 * the images are allocated; the labels are checked as they are read. */
#include "mpicnn/data.h"
#include "mpicnn/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CIFAR_C 3
#define CIFAR_HW 32
#define CIFAR_PIXELS (CIFAR_C * CIFAR_HW * CIFAR_HW) /* 3072 */

/* Size of `path` in bytes, which must be a positive multiple of rec. */
static cnn_status_t cifar_records(const char *path, int variant, size_t rec,
                                  size_t *nrec)
{
    char kind[32];
    int fd;
    long long size;
    snprintf(kind, sizeof kind, "a CIFAR-%d batch", variant);
    CNN_TRY(cnn_fs_open_input(path, CNN_EDATA, kind, &fd, &size));
    close(fd);
    if (size == 0)
        return cnn_error_set(CNN_EDATA, "%s: empty file, expected a CIFAR-%d batch",
                             path, variant);
    if ((unsigned long long)size % rec != 0)
        return cnn_error_set(CNN_EDATA,
                             "%s: size %lld bytes is not a multiple of the "
                             "CIFAR-%d record size %zu (%d label byte%s + %d "
                             "pixel bytes)",
                             path, size, variant, rec,
                             (int)(rec - CIFAR_PIXELS),
                             rec - CIFAR_PIXELS == 1 ? "" : "s", CIFAR_PIXELS);
    *nrec = (size_t)((unsigned long long)size / rec);
    return CNN_OK;
}

/* Reads nrec records of `path` into images/labels (room for nrec each). */
static cnn_status_t cifar_read(const char *path, int variant, int coarse,
                               size_t nrec, uint8_t *images, int32_t *labels)
{
    const int nlab = variant == 10 ? 1 : 2;
    uint8_t lab[2];
    FILE *f;
    char kind[32];
    snprintf(kind, sizeof kind, "a CIFAR-%d batch", variant);
    CNN_TRY(cnn_fs_fopen_input(path, CNN_EDATA, kind, &f, NULL));
    for (size_t r = 0; r < nrec; r++) {
        uint8_t *img = images + r * CIFAR_PIXELS;
        if (fread(lab, 1, (size_t)nlab, f) != (size_t)nlab ||
            fread(img, 1, CIFAR_PIXELS, f) != CIFAR_PIXELS) {
            int err = ferror(f);
            int e = errno;
            fclose(f);
            if (err)
                return cnn_error_set(CNN_EDATA, "%s: read error at record %zu: %s",
                                     path, r, strerror(e));
            return cnn_error_set(CNN_EDATA,
                                 "%s: file ended at record %zu of %zu (did it "
                                 "change while being read?)",
                                 path, r, nrec);
        }
        if (variant == 10 && lab[0] >= 10) {
            fclose(f);
            return cnn_error_set(CNN_EDATA,
                                 "%s: record %zu: label %d is out of range, "
                                 "expected 0..9 (CIFAR-10)",
                                 path, r, lab[0]);
        }
        if (variant == 100 && (lab[0] >= 20 || lab[1] >= 100)) {
            int isfine = lab[0] < 20;
            fclose(f);
            return cnn_error_set(CNN_EDATA,
                                 "%s: record %zu: %s label %d is out of range, "
                                 "expected 0..%d (CIFAR-100)",
                                 path, r, isfine ? "fine" : "coarse",
                                 isfine ? lab[1] : lab[0], isfine ? 99 : 19);
        }
        labels[r] = variant == 10 ? lab[0] : (coarse ? lab[0] : lab[1]);
    }
    fclose(f);
    return CNN_OK;
}

cnn_status_t cnn_cifar_load(const char *const *paths, int npaths, int variant,
                            int coarse, cnn_dataset_t **out)
{
    cnn_status_t st = CNN_OK;
    cnn_dataset_t *ds = NULL;
    size_t *nrec = NULL, total = 0;

    *out = NULL;
    if (variant != 10 && variant != 100)
        return cnn_error_set(CNN_ECONFIG,
                             "CIFAR variant %d, expected 10 or 100", variant);
    if (npaths < 1 || !paths)
        return cnn_error_set(CNN_ECONFIG, "CIFAR-%d: no files given", variant);
    for (int i = 0; i < npaths; i++)
        if (!paths[i])
            return cnn_error_set(CNN_ECONFIG, "CIFAR-%d: file %d of %d is NULL",
                                 variant, i + 1, npaths);
    const size_t rec = (size_t)(variant == 10 ? 1 : 2) + CIFAR_PIXELS;

    nrec = malloc((size_t)npaths * sizeof *nrec);
    if (!nrec) return cnn_error_set(CNN_ENOMEM, "CIFAR: out of memory");
    for (int i = 0; i < npaths; i++) {
        st = cifar_records(paths[i], variant, rec, &nrec[i]);
        if (st != CNN_OK) goto done;
        if (nrec[i] > SIZE_MAX / CIFAR_PIXELS - total) {
            st = cnn_error_set(CNN_EDATA, "%s: too many images to hold in memory",
                               paths[i]);
            goto done;
        }
        total += nrec[i];
    }

    ds = calloc(1, sizeof *ds);
    if (!ds) {
        st = cnn_error_set(CNN_ENOMEM, "CIFAR: out of memory");
        goto done;
    }
    ds->images = malloc(total * CIFAR_PIXELS);
    ds->labels = malloc(total * sizeof *ds->labels);
    if (!ds->images || !ds->labels) {
        st = cnn_error_set(CNN_ENOMEM, "CIFAR: cannot allocate %zu images", total);
        goto done;
    }
    ds->n = total;
    ds->c = CIFAR_C;
    ds->h = CIFAR_HW;
    ds->w = CIFAR_HW;
    size_t at = 0;
    for (int i = 0; i < npaths; i++) {
        st = cifar_read(paths[i], variant, coarse, nrec[i],
                        ds->images + at * CIFAR_PIXELS, ds->labels + at);
        if (st != CNN_OK) goto done;
        at += nrec[i];
    }

    const char *set = variant == 10 ? "cifar10"
                      : coarse      ? "cifar100-coarse"
                                    : "cifar100-fine";
    int k = 0;
    const char *const *names = cnn_class_names(set, &k);
    st = cnn_dataset_set_class_names(ds, names, k);
    if (st != CNN_OK) goto done;
    *out = ds;
    ds = NULL;
done:
    cnn_dataset_free(ds);
    free(nrec);
    return st;
}
