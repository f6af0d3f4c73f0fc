/* id — UUIDv7 (RFC 9562): 48 bits of ms time, then random bits. Within one
 * ms a per-thread counter in rand_a keeps ids from one thread ordered. */
#include "id.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"

void id_new(char out[ID_LEN])
{
    static _Thread_local int64_t last_ms;
    static _Thread_local unsigned seq;
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        memset(b, 0x5a, sizeof b); /* never on Linux >= 3.17 with a seeded pool */
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
    snprintf(out, ID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
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
