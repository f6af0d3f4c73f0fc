/* id — UUIDv7 (RFC 9562): 48 bits of ms time, then random bits. Within one
 * ms a per-thread counter in rand_a keeps ids from one thread ordered.
 *
 * The API makes two ids and a trace context per submission: the random
 * bits come from a per-thread buffer that one getrandom refills every few
 * requests, and the text is written from a table, not by snprintf. */
#include "id.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"

/* n (<= sizeof pool) random bytes. Our processes never fork without
 * exec, so no two processes share a buffer. */
static void random_bytes(unsigned char *b, size_t n)
{
    static _Thread_local unsigned char pool[256];
    static _Thread_local size_t left;
    if (left < n) {
        if (getrandom(pool, sizeof pool, 0) != (ssize_t)sizeof pool)
            memset(pool, 0x5a, sizeof pool); /* never on Linux >= 3.17 with a seeded pool */
        left = sizeof pool;
    }
    memcpy(b, pool + sizeof pool - left, n);
    memset(pool + sizeof pool - left, 0, n); /* used once */
    left -= n;
}

static const char hex[] = "0123456789abcdef";

/* n bytes as 2n lowercase hex digits; returns the end. */
static char *put_hex(char *o, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    return o;
}

void id_traceparent(char out[ID_TRACEPARENT_LEN])
{
    unsigned char b[24];
    random_bytes(b, sizeof b);
    char *o = out;
    memcpy(o, "00-", 3);
    o = put_hex(o + 3, b, 16);
    *o++ = '-';
    o = put_hex(o, b + 16, 8);
    memcpy(o, "-01", 4);
}

void id_new(char out[ID_LEN])
{
    static _Thread_local int64_t last_ms;
    static _Thread_local unsigned seq;
    unsigned char b[16];
    random_bytes(b, sizeof b);
    int64_t ms = clock_wall_ms();
    if (ms <= last_ms) {
        ms = last_ms;
        if (++seq > 0xfff) { /* 12-bit counter full: borrow the next ms rather than wrap */
            ms++;
            seq = 0;
        }
    } else {
        seq = (unsigned)(b[6] & 0x03) << 8 | b[7]; /* start low so it can count up */
    }
    last_ms = ms;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (unsigned char)seq;
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    char *o = put_hex(out, b, 4);
    *o++ = '-';
    o = put_hex(o, b + 4, 2);
    *o++ = '-';
    o = put_hex(o, b + 6, 2);
    *o++ = '-';
    o = put_hex(o, b + 8, 2);
    *o++ = '-';
    o = put_hex(o, b + 10, 6);
    *o = 0;
}

int id_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}
