/* tokhash — SHA-256 of API tokens (libcrypto), new random tokens. */
#include "tokhash.h"

#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

int tokhash_digest(const char *tok, size_t n, unsigned char out[TOKHASH_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(tok, n, out, &len, EVP_sha256(), NULL) != 1 || len != TOKHASH_LEN)
        return -1;
    return 0;
}

int tokhash_text(const char *tok, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[TOKHASH_LEN];
    if (tokhash_digest(tok, n, d))
        return -1;
    memcpy(out, TOKHASH_PREFIX, 7);
    for (int i = 0; i < TOKHASH_LEN; i++) {
        out[7 + 2 * i] = hex[d[i] >> 4];
        out[8 + 2 * i] = hex[d[i] & 15];
    }
    out[TOKHASH_TEXT_LEN] = 0;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tokhash_parse(const char *s, size_t n, unsigned char out[TOKHASH_LEN])
{
    if (n != TOKHASH_TEXT_LEN || memcmp(s, TOKHASH_PREFIX, 7))
        return -1;
    for (int i = 0; i < TOKHASH_LEN; i++) {
        int hi = hexval(s[7 + 2 * i]), lo = hexval(s[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int tokhash_new(char *out)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[33]; /* 32 random bytes, and a zero to fill the last group */
    if (getrandom(r, 32, 0) != 32)
        return -1;
    r[32] = 0;
    int o = 0;
    for (int i = 0; i < 33; i += 3) {
        unsigned v = (unsigned)r[i] << 16 | (unsigned)r[i + 1] << 8 | r[i + 2];
        for (int k = 18; k >= 0 && o < TOKHASH_TOKEN_LEN; k -= 6)
            out[o++] = b64url[(v >> k) & 63];
    }
    out[TOKHASH_TOKEN_LEN] = 0;
    explicit_bzero(r, sizeof r);
    return 0;
}

int tokhash_equal(const unsigned char a[TOKHASH_LEN], const unsigned char b[TOKHASH_LEN])
{
    return CRYPTO_memcmp(a, b, TOKHASH_LEN) == 0;
}
