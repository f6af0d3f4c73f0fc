/* clock — wall time for records, monotonic time for deadlines. */
#ifndef BX_CLOCK_H
#define BX_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void); /* ms since the epoch */
int64_t clock_mono_ms(void); /* ms on CLOCK_MONOTONIC */
/* RFC 3339 in UTC with milliseconds: 2026-11-23T11:46:35.123Z */
#define CLOCK_RFC3339_LEN 25
void clock_rfc3339(int64_t wall_ms, char out[CLOCK_RFC3339_LEN]);

/* Parses an RFC 3339 time ("2026-11-23T11:46:35Z", fractions and
 * "+01:00" offsets allowed, or a bare date "2026-11-23" for midnight UTC)
 * into ms since the epoch. 0, or -1 when s is not such a time. */
int clock_parse_rfc3339(const char *s, int64_t *ms);

#endif
