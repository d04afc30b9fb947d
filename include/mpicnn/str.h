/* str.h - small string helpers shared by the modules that read text. */
#ifndef MPICNN_STR_H
#define MPICNN_STR_H

/* Cuts the white space (isspace) off both ends of s in place: writes a
 * '\0' after the last other character and returns a pointer to the first
 * one, inside s (not to be freed on its own). */
char *cnn_str_trim(char *s);

#endif
