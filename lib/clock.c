#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_rfc3339(int64_t wall_ms, char out[CLOCK_RFC3339_LEN])
{
    /* floor division: before the epoch, -1 ms is 23:59:59.999 of the day before */
    int64_t sec = wall_ms / 1000, ms = wall_ms % 1000;
    if (ms < 0) {
        ms += 1000;
        sec--;
    }
    time_t s = (time_t)sec;
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[64]; /* roomy enough for any int the compiler can imagine */
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
    memcpy(out, buf, CLOCK_RFC3339_LEN - 1);
    out[CLOCK_RFC3339_LEN - 1] = 0;
}
