/* fuzz_csv.c - the number-list reader of `mpicnn op` on arbitrary bytes. */
#include <math.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "mpicnn/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    float *v = NULL;
    size_t n = 0;
    if (cnn_csv_parse((const char *)data, size, "--x", "fuzz", &v, &n) == CNN_OK) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(v[i])) __builtin_trap(); /* only finite numbers pass */
        free(v);
    }
    return 0;
}
