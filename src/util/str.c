/* str.c - small string helpers (str.h). */
#include "mpicnn/str.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

char *cnn_str_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

const char *cnn_mem_str(uint64_t bytes, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
    if (bytes == UINT64_MAX || bytes == SIZE_MAX) {
        snprintf(buf, len, "more than 16 EB");
        return buf;
    }
    int u = 0;
    double v = (double)bytes;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}
