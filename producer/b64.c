#include "b64.h"

#include <stdlib.h>

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int b64_decode(const char *s, size_t n, char **out, size_t *outlen)
{
    unsigned char *o = malloc(n / 4 * 3 + 3);
    *out = NULL;
    *outlen = 0;
    if (!o)
        return -1;
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad = 1;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) /* nothing but padding may follow padding */
            goto fail;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6) /* one lone character cannot encode a byte */
        goto fail;
    *out = (char *)o;
    *outlen = k;
    return 0;
fail:
    free(o);
    return -1;
}
