/* str.h - small string helpers shared by the modules that read text. */
#ifndef MPICNN_STR_H
#define MPICNN_STR_H

#include <stddef.h>
#include <stdint.h>

/* Cuts the white space (isspace) off both ends of s in place: writes a
 * '\0' after the last other character and returns a pointer to the first
 * one, inside s (not to be freed on its own). */
char *cnn_str_trim(char *s);

/* A size in bytes as "512 B", "3.0 KB", "24.1 GB" (binary units) into
 * buf; returns buf. UINT64_MAX (CNN_MEM_UNLIMITED) or SIZE_MAX prints as
 * "more than 16 EB". */
const char *cnn_mem_str(uint64_t bytes, char *buf, size_t len);

#endif
