/* fuzz_cifar.c - the CIFAR loader on arbitrary bytes; the first byte
 * picks CIFAR-10, CIFAR-100 fine or CIFAR-100 coarse. */
#include "fuzz_util.h"
#include "mpicnn/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char path[256];
    if (fuzz_file("cifar", data + 1, size - 1, path, sizeof path)) return 0;
    const char *paths[1] = {path};
    int variant = data[0] % 3 == 0 ? 10 : 100, coarse = data[0] % 3 == 2;
    cnn_dataset_t *ds = NULL;
    if (cnn_cifar_load(paths, 1, variant, coarse, &ds) == CNN_OK) {
        for (size_t i = 0; i < ds->n; i++)
            if (ds->labels[i] < 0 || ds->labels[i] >= ds->nclasses) __builtin_trap();
        cnn_dataset_free(ds);
    }
    remove(path);
    return 0;
}
