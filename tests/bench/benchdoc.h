/* benchdoc — what the benchmark programs share: a clock, UUIDv7 ids and
 * result-like documents (the terminal status of a `true` job, with the
 * fields of lib/event.h), so that the raw MongoDB insert and the events
 * fed to bx-recorder are the same documents. Header-only: each program
 * is one .c file built by tests/bench/run.sh. */
#ifndef BENCH_BENCHDOC_H
#define BENCH_BENCHDOC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t bench_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A lowercase canonical UUIDv7: 48 bits of milliseconds, then a counter
 * in rand_a so that ids made in the same millisecond still sort in the
 * order they were made, then random bits. out has 37 bytes. */
static inline void bench_uuid7(char out[37])
{
    static uint64_t last_ms, seq, salt;
    if (!salt)
        salt = ((uint64_t)getpid() << 32) ^ (uint64_t)bench_now_ns();
    uint64_t ms = (uint64_t)bench_wall_ms();
    if (ms == last_ms)
        seq++;
    else
        seq = 0, last_ms = ms;
    salt = salt * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (unsigned char)(seq & 0xff);
    for (int i = 8; i < 16; i++)
        b[i] = (unsigned char)(salt >> (8 * (i - 8)));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = 0;
}

static inline void bench_rfc3339(char out[32], int64_t wall_ms)
{
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(wall_ms % 1000));
}

/* The terminal status document of a finished `true` job with id and the
 * label bench_tag=tag: compact JSON in buf (about 700 bytes). Returns its
 * length, or 0 if buf is too small. */
static inline size_t bench_result_doc(char *buf, size_t n, const char *id, const char *tag)
{
    char rid[37], t0[32], t1[32], t2[32];
    int64_t now = bench_wall_ms();
    bench_uuid7(rid);
    bench_rfc3339(t0, now - 3);
    bench_rfc3339(t1, now - 2);
    bench_rfc3339(t2, now);
    int len = snprintf(
        buf, n,
        "{\"id\":\"%s\",\"command\":\"true\",\"queue\":\"default\",\"priority\":0,"
        "\"labels\":{\"bench_tag\":\"%s\"},\"request_id\":\"%s\",\"attempt\":1,"
        "\"max_retries\":0,\"state\":\"succeeded\",\"submitted_at\":\"%s\","
        "\"queued_at\":\"%s\",\"started_at\":\"%s\",\"finished_at\":\"%s\","
        "\"duration_ms\":2,\"worker\":\"bench-host-w1\",\"exit_code\":0,"
        "\"stdout\":\"\",\"stdout_encoding\":\"utf-8\",\"stdout_bytes\":0,"
        "\"stdout_truncated\":false,\"stderr\":\"\",\"stderr_encoding\":\"utf-8\","
        "\"stderr_bytes\":0,\"stderr_truncated\":false}",
        id, tag, rid, t0, t0, t1, t2);
    return len > 0 && (size_t)len < n ? (size_t)len : 0;
}

#endif
