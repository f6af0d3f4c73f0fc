/* tokhash — how an API token is kept in the tokens file: "sha256:" and the
 * SHA-256 of the token in lowercase hex. Tokens are random secrets of 256
 * bits (tokhash_new), so an unsalted hash is enough to make a stolen
 * tokens file useless: nobody can search a 2^256 space backwards, and a
 * salt or a slow hash only helps against guessable secrets such as
 * passwords. (GitHub and PyPI keep their tokens the same way.) */
#ifndef BX_TOKHASH_H
#define BX_TOKHASH_H

#include <stddef.h>

#define TOKHASH_LEN 32                            /* SHA-256 digest bytes */
#define TOKHASH_PREFIX "sha256:"
#define TOKHASH_TEXT_LEN (7 + 2 * TOKHASH_LEN)    /* "sha256:" + 64 hex */
#define TOKHASH_TOKEN_LEN 43                      /* a new token: base64url of 32 random bytes */

/* SHA-256 of tok[0..n) into out. 0, or -1 when libcrypto failed. */
int tokhash_digest(const char *tok, size_t n, unsigned char out[TOKHASH_LEN]);
/* "sha256:<hex>" of tok into out (TOKHASH_TEXT_LEN + 1 bytes). 0 / -1. */
int tokhash_text(const char *tok, size_t n, char *out);
/* Parses "sha256:<64 hex digits>" (s[0..n), lowercase or uppercase hex)
 * into out. 0, or -1 when s is not that. */
int tokhash_parse(const char *s, size_t n, unsigned char out[TOKHASH_LEN]);
/* A new random token (TOKHASH_TOKEN_LEN characters of [A-Za-z0-9_-],
 * from getrandom) into out (TOKHASH_TOKEN_LEN + 1 bytes). 0 / -1. */
int tokhash_new(char *out);
/* 1 when a and b are equal, in time independent of where they differ. */
int tokhash_equal(const unsigned char a[TOKHASH_LEN], const unsigned char b[TOKHASH_LEN]);

#endif
