/* fuzz_idx.c - the IDX loader on arbitrary bytes: the first byte says
 * where the input splits into an images file and a labels file (either
 * may be gzip). Every outcome must be a status, never a crash. */
#include <string.h>

#include "fuzz_util.h"
#include "mpicnn/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t cut = 1 + (size - 1) * data[0] / 256;
    char img[256], lab[256];
    if (fuzz_file("img", data + 1, cut - 1, img, sizeof img) ||
        fuzz_file("lab", data + cut, size - cut, lab, sizeof lab))
        return 0;
    cnn_dataset_t *ds = NULL;
    if (cnn_idx_load(img, lab, &ds) == CNN_OK) {
        /* a loaded set is consistent */
        for (size_t i = 0; i < ds->n; i++)
            if (ds->labels[i] < 0 || ds->labels[i] >= ds->nclasses) __builtin_trap();
        cnn_dataset_free(ds);
    } else if (ds) {
        __builtin_trap(); /* failure must leave *out NULL */
    }
    remove(img);
    remove(lab);
    return 0;
}
