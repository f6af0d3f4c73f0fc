/* utf8 — what JSON text can carry as is, and base64 for what it cannot. */
#ifndef BX_UTF8_H
#define BX_UTF8_H

#include <stddef.h>

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates) without NUL. */
int utf8_valid_nonul(const char *s, size_t n);
/* New malloc'd NUL-terminated base64 (RFC 4648, padded); *outlen if not NULL. */
char *base64_encode(const void *data, size_t n, size_t *outlen);
/* New malloc'd decoded bytes, or NULL on bad input. */
char *base64_decode(const char *s, size_t n, size_t *outlen);

#endif
