/* fuzz_config.c - the INI config parser (and its resolved-text round
 * trip) on arbitrary text. */
#include <stdlib.h>
#include <string.h>

#include "mpicnn/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cnn_config_t cfg, again;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (cnn_config_parse_string(text, "fuzz.ini", NULL, 0, &cfg) == CNN_OK) {
        /* what parses prints back to text that parses to the same config */
        char *resolved = cnn_config_to_string(&cfg);
        if (resolved) {
            if (cnn_config_parse_string(resolved, "fuzz.ini", NULL, 0, &again) != CNN_OK)
                __builtin_trap();
            char *twice = cnn_config_to_string(&again);
            if (twice && strcmp(resolved, twice)) __builtin_trap();
            free(twice);
            free(resolved);
        }
    }
    free(text);
    return 0;
}
