/* fuzz_utf8 — what decides how a command's output is stored. The UTF-8
 * check is compared with two others: a table of RFC 3629's well-formed
 * byte sequences, and jansson's own (what must accept every string we
 * hand it unchecked). base64 must give back every byte it was given and
 * refuse what it cannot decode. */
/* fuzz-sources: lib/utf8.c */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "utf8.h"

/* RFC 3629 section 4, the well-formed sequences, byte ranges spelled out;
 * NUL refused as utf8_valid_nonul does. */
static int ref_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;
        if (c == 0)
            return 0;
        if (c <= 0x7f) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c == 0xe0)
            len = 3, lo = 0xa0;
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
            len = 3;
        else if (c == 0xed)
            len = 3, hi = 0x9f;
        else if (c == 0xf0)
            len = 4, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3)
            len = 4;
        else if (c == 0xf4)
            len = 4, hi = 0x8f;
        else
            return 0;
        if (n - i < len)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += len;
    }
    return 1;
}

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static void check_utf8(const uint8_t *data, size_t size)
{
    int v = utf8_valid_nonul((const char *)data, size);
    FUZZ_CHECK(v == 0 || v == 1, "returned %d", v);
    FUZZ_CHECK(v == ref_valid(data, size), "utf8_valid_nonul says %d, RFC 3629 says %d", v, !v);
    if (!memchr(data, 0, size)) {
        json_t *j = json_stringn((const char *)data, size);
        FUZZ_CHECK(v == (j != NULL), "utf8_valid_nonul says %d, jansson %d", v, j != NULL);
        json_decref(j);
    }
}

static void check_encode(const uint8_t *data, size_t size)
{
    size_t elen = 0, dlen = 0;
    char *e = base64_encode(data, size, &elen);
    FUZZ_CHECK(e, "encode failed");
    FUZZ_CHECK(elen == (size + 2) / 3 * 4 && strlen(e) == elen, "encoded length %zu for %zu", elen,
               size);
    for (size_t i = 0; i < elen; i++)
        FUZZ_CHECK(is_b64(e[i]) || (e[i] == '=' && i + 2 >= elen), "byte %zu is '%c'", i, e[i]);
    char *d = base64_decode(e, elen, &dlen);
    FUZZ_CHECK(d, "its own encoding does not decode");
    FUZZ_CHECK(dlen == size && !memcmp(d, data, size), "decoding changed the bytes");
    FUZZ_CHECK(d[dlen] == 0, "decoded bytes not NUL-terminated");
    free(d);
    free(e);
}

static void check_decode(const uint8_t *data, size_t size)
{
    size_t dlen = 0, elen = 0, dlen2 = 0;
    char *d = base64_decode((const char *)data, size, &dlen);
    if (!d)
        return;
    FUZZ_CHECK(size % 4 == 0, "accepted %zu characters", size);
    FUZZ_CHECK(dlen <= size / 4 * 3 && dlen + 2 >= size / 4 * 3, "%zu bytes from %zu", dlen, size);
    for (size_t i = 0; i < size; i++)
        FUZZ_CHECK(is_b64((char)data[i]) || (data[i] == '=' && i + 2 >= size),
                   "accepted byte %#x at %zu", data[i], i);
    /* padding aside, encoding what was decoded gives the same text back
     * except for the unused low bits of the last group */
    char *e = base64_encode(d, dlen, &elen);
    FUZZ_CHECK(e && elen == size, "re-encoded to %zu characters from %zu", elen, size);
    size_t stable = size >= 4 ? size - 4 : 0;
    FUZZ_CHECK(!memcmp(e, data, stable), "re-encoding differs before the last group");
    char *d2 = base64_decode(e, elen, &dlen2);
    FUZZ_CHECK(d2 && dlen2 == dlen && !memcmp(d, d2, dlen), "round trip changed the bytes");
    free(d2);
    free(e);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_utf8(data, size);
    check_encode(data, size);
    check_decode(data, size);
    return 0;
}
