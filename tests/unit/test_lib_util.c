/* Unit tests of the small lib modules: id, clock, utf8/base64, cfg, names. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "clock.h"
#include "id.h"
#include "log.h"
#include "names.h"
#include "utf8.h"

/* ---- a clock the tests can stop --------------------------------------- */

/* This definition interposes libc's for the whole test binary (libbx is
 * linked statically), so a test can freeze the wall clock. */
static int64_t frozen_wall_ms = -1;

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (id == CLOCK_REALTIME && frozen_wall_ms >= 0) {
        ts->tv_sec = (time_t)(frozen_wall_ms / 1000);
        ts->tv_nsec = (long)(frozen_wall_ms % 1000) * 1000000L;
        return 0;
    }
    return (int)syscall(SYS_clock_gettime, id, ts);
}

/* ---- id ---------------------------------------------------------------- */

static void id_form_ok(const char *s)
{
    assert_true(id_valid(s));
    assert_int_equal(s[14], '7');               /* version 7 */
    assert_non_null(strchr("89ab", s[19]));     /* RFC 9562 variant */
}

static void test_id_sequence(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char ids[N][ID_LEN];
    for (int i = 0; i < N; i++) {
        id_new(ids[i]);
        id_form_ok(ids[i]);
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("id %d '%s' does not sort after '%s'", i, ids[i], ids[i - 1]);
    }
    /* strictly increasing implies unique; check uniqueness on its own too */
    for (int i = 0; i < N; i++)
        for (int k = i + 1; k < N; k++)
            assert_string_not_equal(ids[i], ids[k]);
}

/* Many ids within one millisecond must stay ordered: the 12-bit counter
 * must not wrap around. 200000 ids take a few hundred ms at most. */
static void test_id_burst_ordered(void **state)
{
    (void)state;
    char prev[ID_LEN], cur[ID_LEN];
    id_new(prev);
    for (int i = 0; i < 200000; i++) {
        id_new(cur);
        if (strcmp(prev, cur) >= 0)
            fail_msg("id '%s' does not sort after '%s' (i=%d)", cur, prev, i);
        memcpy(prev, cur, sizeof prev);
    }
}

static int64_t id_ms(const char *id)
{
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = 0;
    return strtoll(hex, NULL, 16);
}

/* With the clock stopped, 10000 ids (more than the 12-bit counter holds)
 * stay ordered, and the clock going back does not reorder them either.
 * The ids are made in a thread of their own because id_new's state is
 * per thread: this thread's later ids must not inherit the year 2100. */
enum { FROZEN_N = 10000 };
static char frozen_ids[FROZEN_N][ID_LEN];

static void *frozen_maker(void *arg)
{
    (void)arg;
    for (int i = 0; i < FROZEN_N; i++) {
        if (i == FROZEN_N / 2)
            frozen_wall_ms -= 60000; /* a clock step back */
        id_new(frozen_ids[i]);
    }
    return NULL;
}

static void test_id_frozen_clock(void **state)
{
    (void)state;
    const int64_t t = 4102444800000LL; /* 2100-01-01 */
    frozen_wall_ms = t;
    assert_int_equal(clock_wall_ms(), t);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, frozen_maker, NULL), 0);
    pthread_join(th, NULL);
    frozen_wall_ms = -1;
    assert_int_equal(id_ms(frozen_ids[0]), t);
    for (int i = 0; i < FROZEN_N; i++) {
        id_form_ok(frozen_ids[i]);
        if (i && strcmp(frozen_ids[i - 1], frozen_ids[i]) >= 0)
            fail_msg("id '%s' does not sort after '%s' (i=%d)", frozen_ids[i], frozen_ids[i - 1], i);
    }
    /* borrowing ahead is bounded: 10000 ids need at most a few ms */
    assert_true(id_ms(frozen_ids[FROZEN_N - 1]) <= t + 4);
}

static void test_id_time_prefix(void **state)
{
    (void)state;
    char id[ID_LEN];
    int64_t before = clock_wall_ms();
    id_new(id);
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = 0;
    int64_t ms = strtoll(hex, NULL, 16);
    /* the id's time is >= the clock before (it may run ahead a little
     * when many ids were made within one ms) */
    assert_true(ms >= before);
    assert_true(ms < before + 60000);
}

static void test_id_valid_rejects(void **state)
{
    (void)state;
    assert_true(id_valid("0190c3a2-7b1e-7c2d-8e3f-0123456789ab"));
    assert_false(id_valid(NULL));
    assert_false(id_valid(""));
    assert_false(id_valid("0190c3a2-7b1e-7c2d-8e3f-0123456789a"));   /* 35 */
    assert_false(id_valid("0190c3a2-7b1e-7c2d-8e3f-0123456789abc")); /* 37 */
    assert_false(id_valid("0190C3A2-7B1E-7C2D-8E3F-0123456789AB")); /* upper case */
    assert_false(id_valid("0190c3a27-b1e-7c2d-8e3f-0123456789ab")); /* hyphen moved */
    assert_false(id_valid("0190c3a2-7b1e-7c2d-8e3f-0123456789ag")); /* not hex */
    assert_false(id_valid("0190c3a2_7b1e_7c2d_8e3f_0123456789ab"));
    assert_false(id_valid("0190c3a2-7b1e-7c2d-8e3f-0123456789a\n"));
    assert_false(id_valid("{0190c3a2-7b1e-7c2d-8e3f-0123456789}"));
}

/* ---- clock ------------------------------------------------------------- */

static void rfc(int64_t ms, const char *want)
{
    char out[CLOCK_RFC3339_LEN];
    memset(out, 'x', sizeof out);
    clock_rfc3339(ms, out);
    assert_int_equal(strlen(out), CLOCK_RFC3339_LEN - 1);
    assert_string_equal(out, want);
}

static void test_clock_rfc3339(void **state)
{
    (void)state;
    rfc(0, "1970-01-01T00:00:00.000Z");
    rfc(1, "1970-01-01T00:00:00.001Z");
    rfc(999, "1970-01-01T00:00:00.999Z");
    rfc(1000, "1970-01-01T00:00:01.000Z");
    rfc(1700000000123LL, "2023-11-14T22:13:20.123Z");
    rfc(951782400000LL, "2000-02-29T00:00:00.000Z");
    rfc(1709164799999LL, "2024-02-28T23:59:59.999Z");
    rfc(253402300799999LL, "9999-12-31T23:59:59.999Z");
    /* before the epoch: floor, not truncation toward zero */
    rfc(-1, "1969-12-31T23:59:59.999Z");
    rfc(-1000, "1969-12-31T23:59:59.000Z");
    rfc(-1001, "1969-12-31T23:59:58.999Z");
}

static void test_clock_now(void **state)
{
    (void)state;
    int64_t w = clock_wall_ms();
    assert_true(w > 1600000000000LL); /* after 2020 */
    int64_t m1 = clock_mono_ms();
    usleep(5000);
    int64_t m2 = clock_mono_ms();
    assert_true(m2 >= m1 + 4);
    assert_true(m2 < m1 + 5000);
}

/* ---- utf8 -------------------------------------------------------------- */

#define U(lit) utf8_valid_nonul(lit, sizeof(lit) - 1)

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(utf8_valid_nonul("", 0));
    assert_true(utf8_valid_nonul(NULL, 0));
    assert_true(U("hello, world\n\t"));
    assert_true(U("\x7f"));
    assert_true(U("\xc2\x80"));             /* U+0080, smallest 2-byte */
    assert_true(U("caf\xc3\xa9"));          /* é */
    assert_true(U("\xdf\xbf"));             /* U+07FF */
    assert_true(U("\xe0\xa0\x80"));         /* U+0800, smallest 3-byte */
    assert_true(U("\xe2\x82\xac"));         /* € */
    assert_true(U("\xed\x9f\xbf"));         /* U+D7FF, just below surrogates */
    assert_true(U("\xee\x80\x80"));         /* U+E000, just above */
    assert_true(U("\xef\xbf\xbf"));         /* U+FFFF */
    assert_true(U("\xf0\x90\x80\x80"));     /* U+10000, smallest 4-byte */
    assert_true(U("\xf0\x9f\x98\x80"));     /* 😀 */
    assert_true(U("\xf4\x8f\xbf\xbf"));     /* U+10FFFF, the last one */
    assert_true(U("a\xf0\x9f\x98\x80z\xc3\xa9"));
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    assert_false(U("\0"));
    assert_false(U("ab\0cd"));
    assert_false(U("abc\0"));
    /* overlongs */
    assert_false(U("\xc0\x80"));
    assert_false(U("\xc0\xaf"));
    assert_false(U("\xc1\xbf"));
    assert_false(U("\xe0\x80\x80"));
    assert_false(U("\xe0\x9f\xbf"));
    assert_false(U("\xf0\x80\x80\x80"));
    assert_false(U("\xf0\x8f\xbf\xbf"));
    /* surrogates */
    assert_false(U("\xed\xa0\x80"));
    assert_false(U("\xed\xbf\xbf"));
    assert_false(U("\xed\xa0\xbd\xed\xb8\x80")); /* CESU-8 pair */
    /* beyond U+10FFFF, bytes that never occur */
    assert_false(U("\xf4\x90\x80\x80"));
    assert_false(U("\xf5\x80\x80\x80"));
    assert_false(U("\xf8\x88\x80\x80\x80"));
    assert_false(U("\xfe"));
    assert_false(U("\xff"));
    /* lone and missing continuation bytes */
    assert_false(U("\x80"));
    assert_false(U("a\xbf"));
    assert_false(U("\xc3\x28"));
    assert_false(U("\xe2\x28\xa1"));
    assert_false(U("\xf0\x9f\x28\x80"));
    /* truncated at the end */
    assert_false(U("\xc3"));
    assert_false(U("\xe2\x82"));
    assert_false(U("\xf0\x9f\x98"));
    assert_false(U("ok\xf0"));
    /* the length bounds the check, not a NUL */
    assert_false(utf8_valid_nonul("\xc3\xa9", 1));
    assert_false(utf8_valid_nonul("\xf0\x9f\x98\x80", 3));
    assert_true(utf8_valid_nonul("ab\xff", 2));
}

/* ---- base64 ------------------------------------------------------------ */

static void test_base64_vectors(void **state)
{
    (void)state;
    static const char *const v[][2] = {
        {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},       {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = 12345;
        char *e = base64_encode(v[i][0], strlen(v[i][0]), &n);
        assert_non_null(e);
        assert_string_equal(e, v[i][1]);
        assert_int_equal(n, strlen(v[i][1]));
        free(e);
        n = 12345;
        char *d = base64_decode(v[i][1], strlen(v[i][1]), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(v[i][0]));
        assert_memory_equal(d, v[i][0], n);
        assert_int_equal(d[n], 0); /* NUL-terminated for convenience */
        free(d);
    }
    char *e = base64_encode("\xff\xfe\xfd\x00\x01", 5, NULL);
    assert_string_equal(e, "//79AAE=");
    free(e);
}

static void test_base64_roundtrip(void **state)
{
    (void)state;
    unsigned char buf[64];
    for (size_t n = 0; n <= 64; n++) {
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)(n * 37 + i * 101 + (i & 1 ? 0 : 0x80)); /* all sorts */
        size_t elen = 0, dlen = 99999;
        char *e = base64_encode(buf, n, &elen);
        assert_non_null(e);
        assert_int_equal(elen, (n + 2) / 3 * 4);
        assert_int_equal(strlen(e), elen);
        char *d = base64_decode(e, elen, &dlen);
        assert_non_null(d);
        assert_int_equal(dlen, n);
        if (n)
            assert_memory_equal(d, buf, n);
        free(e);
        free(d);
    }
    /* every byte value */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    size_t elen, dlen;
    char *e = base64_encode(all, sizeof all, &elen);
    char *d = base64_decode(e, elen, &dlen);
    assert_non_null(d);
    assert_int_equal(dlen, sizeof all);
    assert_memory_equal(d, all, sizeof all);
    free(e);
    free(d);
}

static void test_base64_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Z", "Zg", "Zg=", "Zm9vY",  /* not a multiple of 4 */
        "Zg=a", "Z===", "====", "Zm==Zm9v", "Zg==Zg==", /* misplaced padding */
        "Zm9v!A==", "Zm 9", "Zm9v\n", "Zm-_", "Zm9\x80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 7;
        char *d = base64_decode(bad[i], strlen(bad[i]), &n);
        if (d) {
            free(d);
            fail_msg("base64_decode accepted '%s'", bad[i]);
        }
    }
    assert_null(base64_decode("Zm\0v", 4, NULL)); /* embedded NUL */
    size_t n = 9;
    char *d = base64_decode("", 0, &n);
    assert_non_null(d);
    assert_int_equal(n, 0);
    free(d);
}

/* ---- names ------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    char b[NAME_MAX_LEN];
    name_jobs_exchange(b, sizeof b, "t1");
    assert_string_equal(b, "t1.jobs");
    name_jobs_queue(b, sizeof b, "t1", "gpu");
    assert_string_equal(b, "t1.jobs.gpu");
    name_events_exchange(b, sizeof b, "t1");
    assert_string_equal(b, "t1.events");
    name_results_queue(b, sizeof b, "t1");
    assert_string_equal(b, "t1.results");
    name_dead_exchange(b, sizeof b, "t1");
    assert_string_equal(b, "t1.dlx");
    name_dead_queue(b, sizeof b, "t1");
    assert_string_equal(b, "t1.dead");
    name_retry_exchange(b, sizeof b, "t1");
    assert_string_equal(b, "t1.retry");
    name_key(b, sizeof b, "t1", "job", "abc");
    assert_string_equal(b, "t1:job:abc");
    char small[8];
    name_key(small, sizeof small, "namespace", "job", "abc"); /* truncates, never overflows */
    assert_string_equal(small, "namespa");
}

/* ---- cfg --------------------------------------------------------------- */

static const char *const cfg_vars[] = {
    "BX_AMQP_URL", "BX_REDIS_URL", "BX_MONGO_URL", "BX_NAMESPACE", "BX_API_LISTEN",
    "BX_API_TOKENS_FILE", "BX_QUEUES", "BX_SHELL", "BX_RUN_DIR", "BX_API_URL", "BX_API_TOKEN",
    "BX_WORKER_ID", "BX_CONCURRENCY", "BX_LOG_FACILITY", "BX_FOREGROUND", "BX_STATUS_TTL_S",
    "BX_LEASE_MS", "BX_MAX_OUTPUT_BYTES", "BX_MAX_OUTPUT_CAP", "BX_DEFAULT_TIMEOUT_S",
    "BX_KILL_GRACE_MS", "BX_SHUTDOWN_GRACE_S", "BX_RECORDER_BATCH", "BX_RECORDER_BATCH_MS",
    "BX_MAX_QUEUE_DEPTH",
};

static int cfg_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cfg_vars / sizeof cfg_vars[0]; i++)
        unsetenv(cfg_vars[i]);
    return 0;
}

static int load(bx_cfg *c, char *err, size_t errlen, ...)
{
    char *argv[32] = {"prog"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; argc < 31 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    err[0] = 0;
    return cfg_load(c, argc, argv, err, errlen);
}

static void test_cfg_defaults(void **state)
{
    (void)state;
    bx_cfg c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, NULL), 0);
    assert_string_equal(c.amqp_url, "amqp://guest:guest@127.0.0.1:5672/");
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(c.mongo_url, "mongodb://127.0.0.1:27017/");
    assert_string_equal(c.ns, "bx");
    assert_string_equal(c.api_listen, "127.0.0.1:8080");
    assert_string_equal(c.queues, "default");
    assert_string_equal(c.shell, "/bin/bash");
    assert_string_equal(c.run_dir, ".run");
    assert_string_equal(c.api_tokens_file, ".run/api-tokens");
    assert_string_equal(c.api_url, "http://127.0.0.1:8080");
    assert_string_equal(c.api_token, ".run/api-token");
    char host[256] = "", want[300];
    gethostname(host, sizeof host - 1);
    snprintf(want, sizeof want, "%s-%ld", host, (long)getpid());
    assert_string_equal(c.worker_id, want);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c.concurrency, cpus > 0 ? cpus : 1);
    assert_int_equal(c.log_facility, LOG_USER);
    assert_int_equal(c.foreground, 1);
    assert_int_equal(c.status_ttl_s, 86400);
    assert_int_equal(c.lease_ms, 30000);
    assert_int_equal(c.max_output_bytes, 1048576);
    assert_int_equal(c.max_output_cap, 16777216);
    assert_int_equal(c.default_timeout_s, 0);
    assert_int_equal(c.grace_ms, 2000);
    assert_int_equal(c.shutdown_grace_s, 30);
    assert_int_equal(c.batch_max, 500);
    assert_int_equal(c.batch_ms, 20);
    assert_int_equal(c.max_queue_depth, 0);
    cfg_release(&c);
}

static void test_cfg_env(void **state)
{
    (void)state;
    bx_cfg c;
    char err[256];
    setenv("BX_CONCURRENCY", "5", 1);
    setenv("BX_NAMESPACE", "envns", 1);
    setenv("BX_RUN_DIR", "/tmp/somewhere", 1);
    setenv("BX_LOG_FACILITY", "16", 1); /* LOG_LOCAL0 >> 3 */
    setenv("BX_MAX_OUTPUT_BYTES", "99", 1);
    setenv("BX_SHELL", "", 1); /* empty is as if unset */
    assert_int_equal(load(&c, err, sizeof err, NULL), 0);
    assert_int_equal(c.concurrency, 5);
    assert_string_equal(c.ns, "envns");
    assert_string_equal(c.run_dir, "/tmp/somewhere");
    assert_string_equal(c.api_tokens_file, "/tmp/somewhere/api-tokens");
    assert_string_equal(c.api_token, "/tmp/somewhere/api-token");
    assert_int_equal(c.log_facility, LOG_LOCAL0);
    assert_int_equal(c.max_output_bytes, 99);
    assert_string_equal(c.shell, "/bin/bash");
    cfg_release(&c);
}

static void test_cfg_flags(void **state)
{
    (void)state;
    bx_cfg c;
    char err[256];
    setenv("BX_CONCURRENCY", "5", 1);
    setenv("BX_NAMESPACE", "envns", 1);
    /* a flag wins over the environment, in both spellings */
    assert_int_equal(load(&c, err, sizeof err, "--concurrency", "3", NULL), 0);
    assert_int_equal(c.concurrency, 3);
    assert_string_equal(c.ns, "envns");
    cfg_release(&c);
    assert_int_equal(load(&c, err, sizeof err, "--concurrency=3", "--namespace=flagns", NULL), 0);
    assert_int_equal(c.concurrency, 3);
    assert_string_equal(c.ns, "flagns");
    cfg_release(&c);
    /* the last of a repeated flag wins; '=' inside a value is kept */
    assert_int_equal(load(&c, err, sizeof err, "--queues", "a,b", "--queues=c=d",
                          "--api-tokens-file", "/x/tok", "--worker-id", "w1", NULL), 0);
    assert_string_equal(c.queues, "c=d");
    assert_string_equal(c.api_tokens_file, "/x/tok");
    assert_string_equal(c.worker_id, "w1");
    cfg_release(&c);
    /* the per-stream default never exceeds the cap */
    assert_int_equal(load(&c, err, sizeof err, "--max-output-bytes", "5000", "--max-output-cap",
                          "4000", NULL), 0);
    assert_int_equal(c.max_output_bytes, 4000);
    assert_int_equal(c.max_output_cap, 4000);
    cfg_release(&c);
}

static void expect_cfg_error(const char *needle, ...)
{
    char *argv[16] = {"prog"};
    int argc = 1;
    va_list ap;
    va_start(ap, needle);
    for (char *a; argc < 15 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    bx_cfg c;
    char err[256] = "";
    assert_int_equal(cfg_load(&c, argc, argv, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    cfg_release(&c); /* on -1 the caller still releases */
}

static void test_cfg_errors(void **state)
{
    (void)state;
    expect_cfg_error("--nope", "--nope", "1", NULL);
    expect_cfg_error("--nope", "--concurrency", "2", "--nope=1", NULL);
    expect_cfg_error("abc", "--concurrency", "abc", NULL);
    expect_cfg_error("3x", "--concurrency=3x", NULL);
    expect_cfg_error("'0'", "--concurrency", "0", NULL);         /* below the minimum */
    expect_cfg_error("99999", "--concurrency", "99999", NULL);   /* above the maximum */
    expect_cfg_error("''", "--lease-ms=", NULL);                 /* empty number */
    expect_cfg_error("99999999999999999999", "--status-ttl-s", "99999999999999999999", NULL);
    expect_cfg_error("--concurrency", "--concurrency", NULL);    /* no value */
    expect_cfg_error("stray", "stray", NULL);
    expect_cfg_error("-c", "-c", "3", NULL);
    /* a string value goes through set() before the bad number: no leak */
    expect_cfg_error("x", "--namespace", "n", "--foreground", "x", NULL);
    setenv("BX_LEASE_MS", "soon", 1);
    expect_cfg_error("BX_LEASE_MS", NULL);
    unsetenv("BX_LEASE_MS");
}

static void test_cfg_release(void **state)
{
    (void)state;
    bx_cfg c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, "--namespace", "a", "--namespace", "b", NULL), 0);
    cfg_release(&c);
    assert_null(c.ns);
    assert_null(c.amqp_url);
    assert_null(c.worker_id);
    assert_null(c.api_token);
    cfg_release(&c); /* twice is harmless */
    memset(&c, 0, sizeof c);
    cfg_release(&c); /* on a zeroed struct too */
}

/* ---- log: credentials never reach a log line ---------------------------- */

static void expect_redacted(const char *url, const char *want)
{
    char out[256];
    assert_string_equal(log_redact_url(url, out, sizeof out), want);
    assert_string_equal(log_url(url), want);
}

static void test_log_redact_url(void **state)
{
    (void)state;
    expect_redacted("amqp://guest:guest@127.0.0.1:5672/", "amqp://***@127.0.0.1:5672/");
    expect_redacted("redis://:hunter2@h:6379/0", "redis://***@h:6379/0");
    expect_redacted("redis://hunter2@h/0", "redis://***@h/0"); /* rds.c's lone password */
    expect_redacted("mongodb://u:p%40ss@a:1,b:2/db?authSource=admin", "mongodb://***@a:1,b:2/db?authSource=admin");
    /* unescaped '/', '?', '@' in a password: hidden all the same */
    expect_redacted("amqp://u:pa/ss?x@h/", "amqp://***@h/");
    expect_redacted("amqp://u:p@ss@h/", "amqp://***@h/");
    /* nothing to hide */
    expect_redacted("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0");
    expect_redacted("mongodb://h/", "mongodb://h/");
    /* no scheme: the userinfo still goes */
    expect_redacted("guest:secret@h:5672", "***@h:5672");
    expect_redacted("", "");
    char out[256];
    assert_string_equal(log_redact_url(NULL, out, sizeof out), "-");
    /* a short buffer cuts, never overruns, never shows the password */
    char small[12];
    log_redact_url("amqp://u:secretsecret@host/", small, sizeof small);
    assert_string_equal(small, "amqp://***@");
    /* the rotating buffers stay valid for a few calls */
    const char *a = log_url("amqp://a:1@x/"), *b = log_url("amqp://b:2@y/");
    assert_string_equal(a, "amqp://***@x/");
    assert_string_equal(b, "amqp://***@y/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_sequence),
        cmocka_unit_test(test_id_burst_ordered),
        cmocka_unit_test(test_id_frozen_clock),
        cmocka_unit_test(test_id_time_prefix),
        cmocka_unit_test(test_id_valid_rejects),
        cmocka_unit_test(test_clock_rfc3339),
        cmocka_unit_test(test_clock_now),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_roundtrip),
        cmocka_unit_test(test_base64_rejects),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_log_redact_url),
        cmocka_unit_test_setup(test_cfg_defaults, cfg_setup),
        cmocka_unit_test_setup(test_cfg_env, cfg_setup),
        cmocka_unit_test_setup(test_cfg_flags, cfg_setup),
        cmocka_unit_test_setup(test_cfg_errors, cfg_setup),
        cmocka_unit_test_setup(test_cfg_release, cfg_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
