/* b64 — decoding the base64 (RFC 4648, standard alphabet, padded or not)
 * in which the API returns output that is not UTF-8 text. */
#ifndef BX_B64_H
#define BX_B64_H

#include <stddef.h>

/* Decodes n characters of s into a new malloc'd buffer (*out, *outlen);
 * whitespace is skipped. Returns 0, or -1 on a character outside the
 * alphabet or OOM (*out is then NULL). */
int b64_decode(const char *s, size_t n, char **out, size_t *outlen);

#endif
