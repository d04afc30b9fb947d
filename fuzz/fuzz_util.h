/* fuzz_util.h - helpers for the libFuzzer targets: the loaders read
 * files, so inputs are written to a private temp file first. */
#ifndef MPICNN_FUZZ_UTIL_H
#define MPICNN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes data to /dev/shm (or /tmp) as "<tag>.<pid>"; path into buf. */
static inline int fuzz_file(const char *tag, const uint8_t *data, size_t n, char *buf,
                            size_t len)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(buf, len, "%s/mpicnn-fuzz-%s.%ld", dir, tag, (long)getpid());
    FILE *f = fopen(buf, "wb");
    if (!f) return -1;
    if (n && fwrite(data, 1, n, f) != n) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

#endif
