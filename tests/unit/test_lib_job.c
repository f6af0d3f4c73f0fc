/* Unit tests of lib/job: the strict request validator and the message codec. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

static char err[512];

static int req(bx_job *j, const char *body)
{
    err[0] = 0;
    return job_from_request(j, body, strlen(body), err, sizeof err);
}

static int msg(bx_job *j, const char *body)
{
    err[0] = 0;
    return job_from_message(j, body, strlen(body), err, sizeof err);
}

/* The request must be refused, with an error that mentions needle. */
static void expect_bad(const char *body, const char *needle)
{
    bx_job j;
    memset(&j, 0x5a, sizeof j); /* decoding must not depend on a zeroed struct */
    if (req(&j, body) != -1) {
        job_release(&j);
        fail_msg("accepted: %s", body);
    }
    if (!strstr(err, needle))
        fail_msg("error for %s is '%s', which does not mention '%s'", body, err, needle);
    assert_null(j.doc);
    job_release(&j); /* harmless after a failure */
}

static void expect_bad_msg(const char *body, const char *needle)
{
    bx_job j;
    if (msg(&j, body) != -1) {
        job_release(&j);
        fail_msg("message accepted: %s", body);
    }
    if (!strstr(err, needle))
        fail_msg("error for message %s is '%s', which does not mention '%s'", body, err, needle);
}

static void test_minimal(void **state)
{
    (void)state;
    bx_job j;
    assert_int_equal(req(&j, "{\"command\":\"echo hi\"}"), 0);
    assert_non_null(j.doc);
    assert_string_equal(j.command, "echo hi");
    assert_null(j.id);
    assert_null(j.env);
    assert_null(j.cwd);
    assert_null(j.stdin_data);
    assert_int_equal(j.stdin_len, 0);
    assert_int_equal(j.timeout_s, 0);
    assert_int_equal(j.max_output_bytes, 0);
    assert_string_equal(j.queue, "default");
    assert_int_equal(j.priority, 0);
    assert_int_equal(j.max_retries, 0);
    assert_true(j.retry_backoff_s == 1.0);
    assert_null(j.retry_on);
    assert_null(j.idempotency_key);
    assert_null(j.lock);
    assert_null(j.labels);
    assert_int_equal(j.attempt, 1);
    assert_null(j.request_id);
    assert_null(j.traceparent);
    job_release(&j);
    assert_null(j.doc);
    job_release(&j); /* twice is harmless */
    job_release(NULL);
}

static const char full_body[] =
    "{\"command\":\"cat; echo $FOO\","
    "\"env\":{\"FOO\":\"bar\",\"EMPTY\":\"\"},"
    "\"cwd\":\"/tmp\","
    "\"stdin\":\"line1\\nline2\","
    "\"timeout_s\":1.5,"
    "\"max_output_bytes\":4096,"
    "\"queue\":\"gpu-2_x\","
    "\"priority\":9,"
    "\"max_retries\":3,"
    "\"retry_backoff_s\":0.25,"
    "\"retry_on\":[1,2,255],"
    "\"idempotency_key\":\"key-1\","
    "\"lock\":\"db-migrate\","
    "\"labels\":{\"team\":\"infra\",\"env-name\":\"prod\"}}";

static void check_full(const bx_job *j)
{
    assert_string_equal(j->command, "cat; echo $FOO");
    assert_non_null(j->env);
    assert_int_equal(json_object_size(j->env), 2);
    assert_string_equal(json_string_value(json_object_get(j->env, "FOO")), "bar");
    assert_string_equal(json_string_value(json_object_get(j->env, "EMPTY")), "");
    assert_string_equal(j->cwd, "/tmp");
    assert_int_equal(j->stdin_len, 11);
    assert_memory_equal(j->stdin_data, "line1\nline2", 11);
    assert_int_equal(j->timeout_s, 2); /* rounded up, never down */
    assert_int_equal(j->max_output_bytes, 4096);
    assert_string_equal(j->queue, "gpu-2_x");
    assert_int_equal(j->priority, 9);
    assert_int_equal(j->max_retries, 3);
    assert_true(j->retry_backoff_s == 0.25);
    assert_true(json_is_array(j->retry_on));
    assert_int_equal(json_array_size(j->retry_on), 3);
    assert_int_equal(json_integer_value(json_array_get(j->retry_on, 2)), 255);
    assert_string_equal(j->idempotency_key, "key-1");
    assert_string_equal(j->lock, "db-migrate");
    assert_string_equal(json_string_value(json_object_get(j->labels, "team")), "infra");
    assert_string_equal(json_string_value(json_object_get(j->labels, "env-name")), "prod");
}

static void test_every_field(void **state)
{
    (void)state;
    bx_job j;
    assert_int_equal(req(&j, full_body), 0);
    check_full(&j);
    job_release(&j);
    /* boundaries that are still valid */
    assert_int_equal(req(&j, "{\"command\":\"x\",\"priority\":0,\"timeout_s\":0,\"max_retries\":100,"
                             "\"retry_backoff_s\":0,\"retry_on\":[],\"env\":{},\"labels\":{},"
                             "\"stdin\":\"\",\"max_output_bytes\":1}"),
                     0);
    assert_int_equal(j.priority, 0);
    assert_int_equal(j.max_retries, 100);
    assert_non_null(j.stdin_data);
    assert_int_equal(j.stdin_len, 0);
    job_release(&j);
    assert_int_equal(req(&j, "{\"timeout_s\":30,\"command\":\"x\"}"), 0); /* order is free */
    assert_int_equal(j.timeout_s, 30);
    job_release(&j);
}

static void test_unknown_field(void **state)
{
    (void)state;
    expect_bad("{\"command\":\"x\",\"comand\":\"y\"}", "'comand'");
    expect_bad("{\"command\":\"x\",\"Priority\":1}", "'Priority'");
    expect_bad("{\"command\":\"x\",\"\":1}", "unknown field ''");
    expect_bad("{\"command\":\"x\",\"nothing\":null}", "'nothing'"); /* even when null */
    /* a very long unknown name is cut, but the error stays well-formed */
    char body[2048];
    char name[1000];
    memset(name, 'z', sizeof name - 1);
    name[sizeof name - 1] = 0;
    snprintf(body, sizeof body, "{\"command\":\"x\",\"%s\":1}", name);
    expect_bad(body, "unknown field 'zzzz");
}

static void test_command_required(void **state)
{
    (void)state;
    expect_bad("{}", "'command'");
    expect_bad("{\"cwd\":\"/\"}", "'command'");
    expect_bad("{\"command\":null}", "'command'");
    expect_bad("{\"command\":\"\"}", "'command'");
    expect_bad("{\"command\":\"a\\u0000b\"}", "'command'");
}

static void test_command_size(void **state)
{
    (void)state;
    size_t n = JOB_COMMAND_MAX;
    char *body = malloc(n + 64);
    bx_job j;
    /* exactly 64 KiB is fine */
    memcpy(body, "{\"command\":\"", 12);
    memset(body + 12, 'a', n);
    strcpy(body + 12 + n, "\"}");
    assert_int_equal(req(&j, body), 0);
    assert_int_equal(strlen(j.command), n);
    job_release(&j);
    /* one byte more is not */
    memset(body + 12, 'a', n + 1);
    strcpy(body + 12 + n + 1, "\"}");
    expect_bad(body, "'command'");
    /* and the limit counts bytes, not characters: 32768 two-byte é + 1 */
    char *b2 = malloc(2 * n + 64), *p = b2;
    p += sprintf(p, "{\"command\":\"");
    for (size_t i = 0; i < n / 2; i++)
        *p++ = '\xc3', *p++ = '\xa9';
    strcpy(p, "x\"}");
    expect_bad(b2, "'command'");
    free(b2);
    free(body);
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"command", "1"},          {"command", "[\"ls\"]"},     {"command", "true"},
        {"env", "\"A=B\""},        {"env", "[]"},               {"env", "{\"A\":1}"},
        {"env", "{\"A\":null}"},   {"env", "{\"A\":{}}"},       {"cwd", "5"},
        {"cwd", "{}"},             {"stdin", "5"},              {"stdin", "[]"},
        {"timeout_s", "\"10\""},   {"timeout_s", "true"},       {"max_output_bytes", "1.5"},
        {"max_output_bytes", "\"1\""}, {"queue", "3"},         {"queue", "[]"},
        {"priority", "\"1\""},     {"priority", "1.5"},         {"priority", "true"},
        {"max_retries", "true"},   {"max_retries", "2.0"},      {"retry_backoff_s", "\"1\""},
        {"retry_on", "\"1\""},     {"retry_on", "1"},           {"retry_on", "[\"a\"]"},
        {"retry_on", "[1.5]"},     {"idempotency_key", "1"},    {"lock", "[]"},
        {"lock", "false"},         {"labels", "[]"},            {"labels", "{\"k\":1}"},
        {"labels", "\"k:v\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256], needle[64];
        if (!strcmp(cases[i][0], "command"))
            snprintf(body, sizeof body, "{\"command\":%s}", cases[i][1]);
        else
            snprintf(body, sizeof body, "{\"command\":\"x\",\"%s\":%s}", cases[i][0], cases[i][1]);
        snprintf(needle, sizeof needle, "'%s'", cases[i][0]);
        expect_bad(body, needle);
    }
}

static void test_ranges(void **state)
{
    (void)state;
    expect_bad("{\"command\":\"x\",\"priority\":10}", "'priority'");
    expect_bad("{\"command\":\"x\",\"priority\":-1}", "'priority'");
    expect_bad("{\"command\":\"x\",\"timeout_s\":-1}", "'timeout_s'");
    expect_bad("{\"command\":\"x\",\"timeout_s\":1e300}", "'timeout_s'");
    expect_bad("{\"command\":\"x\",\"max_output_bytes\":0}", "'max_output_bytes'");
    expect_bad("{\"command\":\"x\",\"max_retries\":-1}", "'max_retries'");
    expect_bad("{\"command\":\"x\",\"max_retries\":101}", "'max_retries'");
    expect_bad("{\"command\":\"x\",\"retry_backoff_s\":-0.5}", "'retry_backoff_s'");
    expect_bad("{\"command\":\"x\",\"retry_on\":[256]}", "'retry_on'");
    expect_bad("{\"command\":\"x\",\"retry_on\":[-1]}", "'retry_on'");
    expect_bad("{\"command\":\"x\",\"cwd\":\"\"}", "'cwd'");
    expect_bad("{\"command\":\"x\",\"cwd\":\"/a\\u0000b\"}", "'cwd'");
    expect_bad("{\"command\":\"x\",\"idempotency_key\":\"\"}", "'idempotency_key'");
    char body[512], name[JOB_NAME_MAX + 2];
    memset(name, 'k', JOB_NAME_MAX + 1);
    name[JOB_NAME_MAX + 1] = 0;
    snprintf(body, sizeof body, "{\"command\":\"x\",\"lock\":\"%s\"}", name);
    expect_bad(body, "'lock'");
    name[JOB_NAME_MAX] = 0; /* 200 is fine */
    snprintf(body, sizeof body, "{\"command\":\"x\",\"lock\":\"%s\"}", name);
    bx_job j;
    assert_int_equal(req(&j, body), 0);
    job_release(&j);
}

static void test_queue_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "a b", "a.b", "a/b", "a:b", "a*", "#", "caf\xc3\xa9",
                                      "a\\u0000b", "a\\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"command\":\"x\",\"queue\":\"%s\"}", bad[i]);
        expect_bad(body, "'queue'");
    }
    char body[256], q[JOB_QUEUE_MAX + 2];
    memset(q, 'q', JOB_QUEUE_MAX + 1);
    q[JOB_QUEUE_MAX + 1] = 0;
    snprintf(body, sizeof body, "{\"command\":\"x\",\"queue\":\"%s\"}", q);
    expect_bad(body, "'queue'");
    q[JOB_QUEUE_MAX] = 0;
    snprintf(body, sizeof body, "{\"command\":\"x\",\"queue\":\"%s\"}", q);
    bx_job j;
    assert_int_equal(req(&j, body), 0);
    assert_string_equal(j.queue, q);
    job_release(&j);
}

static void test_map_keys(void **state)
{
    (void)state;
    expect_bad("{\"command\":\"x\",\"env\":{\"A=B\":\"1\"}}", "'env'");
    expect_bad("{\"command\":\"x\",\"env\":{\"=\":\"1\"}}", "'env'");
    expect_bad("{\"command\":\"x\",\"env\":{\"\":\"1\"}}", "'env'");
    expect_bad("{\"command\":\"x\",\"env\":{\"A\":\"a\\u0000b\"}}", "'env'");
    expect_bad("{\"command\":\"x\",\"labels\":{\"a.b\":\"1\"}}", "'labels'");
    expect_bad("{\"command\":\"x\",\"labels\":{\"$where\":\"1\"}}", "'labels'");
    expect_bad("{\"command\":\"x\",\"labels\":{\"a:b\":\"1\"}}", "'labels'");
    expect_bad("{\"command\":\"x\",\"labels\":{\"\":\"1\"}}", "'labels'");
    /* jansson refuses NUL in keys even with JSON_ALLOW_NUL: still an error */
    bx_job j;
    assert_int_equal(req(&j, "{\"command\":\"x\",\"env\":{\"A\\u0000B\":\"1\"}}"), -1);
    /* '=' in an env value and '.' in a label value are fine */
    assert_int_equal(req(&j, "{\"command\":\"x\",\"env\":{\"A\":\"b=c\"},\"labels\":{\"v\":\"1.2\"}}"), 0);
    job_release(&j);
    /* at most 256 entries */
    char *body = malloc(300 * 16 + 64), *p = body;
    p += sprintf(p, "{\"command\":\"x\",\"labels\":{");
    for (int i = 0; i < 257; i++)
        p += sprintf(p, "%s\"k%d\":\"v\"", i ? "," : "", i);
    strcpy(p, "}}");
    expect_bad(body, "'labels'");
    free(body);
}

static void test_nulls_are_absent(void **state)
{
    (void)state;
    bx_job j;
    assert_int_equal(req(&j, "{\"command\":\"x\",\"env\":null,\"cwd\":null,\"stdin\":null,"
                             "\"timeout_s\":null,\"max_output_bytes\":null,\"queue\":null,"
                             "\"priority\":null,\"max_retries\":null,\"retry_backoff_s\":null,"
                             "\"retry_on\":null,\"idempotency_key\":null,\"lock\":null,"
                             "\"labels\":null}"),
                     0);
    assert_null(j.env);
    assert_null(j.cwd);
    assert_null(j.stdin_data);
    assert_string_equal(j.queue, "default");
    assert_int_equal(j.priority, 0);
    assert_true(j.retry_backoff_s == 1.0);
    assert_null(j.labels);
    /* the nulls are gone from the doc: what is encoded is what is meant */
    assert_int_equal(json_object_size(j.doc), 1);
    job_release(&j);
}

static void test_server_fields(void **state)
{
    (void)state;
    static const char *const sf[][2] = {
        {"id", "\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\""},
        {"attempt", "2"},
        {"submitted_at", "\"2023-11-14T22:13:20.123Z\""},
        {"submitted_ms", "1700000000123"},
        {"request_id", "\"r1\""},
        {"traceparent", "\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\""},
        {"attempts", "[]"},
    };
    for (size_t i = 0; i < sizeof sf / sizeof sf[0]; i++) {
        char body[256], needle[64];
        snprintf(body, sizeof body, "{\"command\":\"x\",\"%s\":%s}", sf[i][0], sf[i][1]);
        snprintf(needle, sizeof needle, "unknown field '%s'", sf[i][0]);
        expect_bad(body, needle);
    }
    /* the same fields are fine in a message */
    bx_job j;
    assert_int_equal(msg(&j, "{\"command\":\"x\",\"id\":\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\","
                             "\"attempt\":2,\"submitted_at\":\"2023-11-14T22:13:20.123Z\","
                             "\"submitted_ms\":1700000000123,\"request_id\":\"r1\","
                             "\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\","
                             "\"attempts\":[{\"attempt\":1,\"state\":\"failed\"}],\"queue\":\"default\"}"),
                     0);
    assert_string_equal(j.id, "0190c3a2-7b1e-7c2d-8e3f-0123456789ab");
    assert_int_equal(j.attempt, 2);
    assert_int_equal(j.submitted_ms, 1700000000123LL);
    assert_string_equal(j.request_id, "r1");
    assert_string_equal(j.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    job_release(&j);
}

static void test_message_errors(void **state)
{
    (void)state;
    expect_bad_msg("{\"command\":\"x\",\"attempt\":1}", "'id'");
    expect_bad_msg("{\"command\":\"x\",\"id\":\"nope\",\"attempt\":1}", "'id'");
    expect_bad_msg("{\"command\":\"x\",\"id\":\"0190C3A2-7B1E-7C2D-8E3F-0123456789AB\",\"attempt\":1}", "'id'");
    expect_bad_msg("{\"command\":\"x\",\"id\":\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\"}", "'attempt'");
    expect_bad_msg("{\"command\":\"x\",\"id\":\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\",\"attempt\":0}", "'attempt'");
    expect_bad_msg("{\"command\":\"x\",\"id\":\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\",\"attempt\":\"1\"}", "'attempt'");
    expect_bad_msg("{\"id\":\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\",\"attempt\":1}", "'command'");
    expect_bad_msg("{\"command\":\"x\",\"id\":\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\",\"attempt\":1,\"x\":1}", "'x'");
    expect_bad_msg("{\"command\":\"x\",\"id\":\"0190c3a2-7b1e-7c2d-8e3f-0123456789ab\",\"attempt\":1,\"priority\":12}", "'priority'");
    expect_bad_msg("not json", "JSON");
    expect_bad_msg("[1]", "object");
}

static void test_roundtrip(void **state)
{
    (void)state;
    bx_job j, m;
    size_t len = 0;
    assert_int_equal(req(&j, full_body), 0);
    job_assign(&j, "0190c3a2-7b1e-7c2d-8e3f-0123456789ab", 1700000000123LL, "req-42");
    assert_string_equal(j.id, "0190c3a2-7b1e-7c2d-8e3f-0123456789ab");
    assert_int_equal(j.attempt, 1);
    assert_int_equal(j.submitted_ms, 1700000000123LL);
    assert_string_equal(j.request_id, "req-42");
    assert_string_equal(json_string_value(json_object_get(j.doc, "submitted_at")),
                        "2023-11-14T22:13:20.123Z");
    check_full(&j); /* assigning keeps the views valid */
    char *body = job_encode(&j, &len);
    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    assert_int_equal(msg(&m, body), 0);
    check_full(&m);
    assert_string_equal(m.id, j.id);
    assert_int_equal(m.attempt, 1);
    assert_int_equal(m.submitted_ms, 1700000000123LL);
    assert_string_equal(m.request_id, "req-42");
    assert_null(m.traceparent);
    assert_true(json_equal(j.doc, m.doc));
    /* the message of a message is the same message */
    size_t len2;
    char *body2 = job_encode(&m, &len2);
    assert_int_equal(len2, len);
    assert_string_equal(body2, body);
    free(body2);
    /* a retry's attempt survives the trip too */
    job_set_attempt(&m, 3);
    assert_int_equal(m.attempt, 3);
    body2 = job_encode(&m, &len2);
    bx_job r;
    assert_int_equal(msg(&r, body2), 0);
    assert_int_equal(r.attempt, 3);
    job_release(&r);
    free(body2);
    free(body);
    job_release(&m);
    job_release(&j);
}

static void test_roundtrip_minimal_and_nul_stdin(void **state)
{
    (void)state;
    bx_job j, m;
    static const char body[] = "{\"command\":\"wc -c\",\"stdin\":\"a\\u0000b\\u0000\\u00ff\\n\"}";
    assert_int_equal(req(&j, body), 0);
    assert_int_equal(j.stdin_len, 7); /* a NUL b NUL, ÿ as 2 bytes, newline */
    job_assign(&j, "0190c3a2-7b1e-7c2d-8e3f-0123456789ab", 0, NULL);
    assert_null(j.request_id);
    assert_string_equal(j.queue, "default");
    assert_string_equal(json_string_value(json_object_get(j.doc, "queue")), "default");
    assert_string_equal(json_string_value(json_object_get(j.doc, "submitted_at")),
                        "1970-01-01T00:00:00.000Z");
    size_t len;
    char *enc = job_encode(&j, &len);
    assert_non_null(enc);
    assert_int_equal(msg(&m, enc), 0);
    assert_int_equal(m.stdin_len, j.stdin_len);
    assert_memory_equal(m.stdin_data, "a\0b\0\xc3\xbf\n", 7);
    assert_int_equal(m.attempt, 1);
    assert_string_equal(m.queue, "default");
    assert_true(json_equal(j.doc, m.doc));
    free(enc);
    job_release(&m);
    job_release(&j);
}

/* Whatever request id the API passes, the message it publishes decodes. */
static void test_request_id_bounds(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 128, 129, 300};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char rid[301];
        memset(rid, 'r', lens[i]);
        rid[lens[i]] = 0;
        bx_job j, m;
        assert_int_equal(req(&j, "{\"command\":\"x\"}"), 0);
        job_assign(&j, "0190c3a2-7b1e-7c2d-8e3f-0123456789ab", 1, rid);
        char *enc = job_encode(&j, NULL);
        if (msg(&m, enc))
            fail_msg("request id of %zu bytes: message refused: %s", lens[i], err);
        if (lens[i] == 0) {
            assert_null(m.request_id);
        } else {
            size_t want = lens[i] < 128 ? lens[i] : 128;
            assert_int_equal(strlen(m.request_id), want);
            assert_memory_equal(m.request_id, rid, want);
        }
        free(enc);
        job_release(&m);
        job_release(&j);
    }
}

static void test_bad_json(void **state)
{
    (void)state;
    expect_bad("", "JSON");
    expect_bad("{", "JSON");
    expect_bad("{\"command\":\"x\",}", "JSON");
    expect_bad("{\"command\":\"x\"} trailing", "JSON");
    expect_bad("{\"command\":\"\xff\"}", "JSON"); /* not UTF-8 */
    expect_bad("{\"command\":\"x\",\"command\":\"y\"}", "JSON"); /* duplicate key */
    expect_bad("[]", "object");
    expect_bad("[{\"command\":\"x\"}]", "object");
    /* jansson refuses a scalar at the top level itself: either message is fine */
    expect_bad("\"command\"", "JSON");
    expect_bad("42", "JSON");
    expect_bad("null", "JSON");
    /* the length given is what is parsed, not up to a NUL */
    bx_job j;
    const char b[] = "{\"command\":\"x\"}GARBAGE";
    err[0] = 0;
    assert_int_equal(job_from_request(&j, b, 15, err, sizeof err), 0);
    job_release(&j);
    assert_int_equal(job_from_request(&j, b, 14, err, sizeof err), -1);
    /* a tiny error buffer is never overrun */
    char small[8];
    assert_int_equal(job_from_request(&j, "{\"zzzzzzzzzz\":1}", 16, small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* Nesting is refused before it is parsed, in requests and messages
 * alike; brackets inside strings do not count. */
static void test_depth(void **state)
{
    (void)state;
    char deep[256], ok[256];
    /* {"command":"x","env": then 16 more levels: 17 in all */
    int n = snprintf(deep, sizeof deep, "{\"command\":\"x\",\"retry_on\":");
    for (int i = 0; i < JOB_DEPTH_MAX; i++)
        deep[n++] = '[';
    for (int i = 0; i < JOB_DEPTH_MAX; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof deep - (size_t)n, "}");
    expect_bad(deep, "deeper than 16 levels");
    expect_bad_msg(deep, "deeper than 16 levels");
    /* exactly the limit is a type error, not a depth one */
    n = snprintf(ok, sizeof ok, "{\"command\":\"x\",\"retry_on\":");
    for (int i = 0; i < JOB_DEPTH_MAX - 1; i++)
        ok[n++] = '[';
    for (int i = 0; i < JOB_DEPTH_MAX - 1; i++)
        ok[n++] = ']';
    snprintf(ok + n, sizeof ok - (size_t)n, "}");
    expect_bad(ok, "retry_on");
    bx_job j;
    assert_int_equal(req(&j, "{\"command\":\"echo [[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{ \\\"[[[[[[[[[[[[[[[[[[[\"}"), 0);
    job_release(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_unknown_field),
        cmocka_unit_test(test_command_required),
        cmocka_unit_test(test_command_size),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_queue_names),
        cmocka_unit_test(test_map_keys),
        cmocka_unit_test(test_nulls_are_absent),
        cmocka_unit_test(test_server_fields),
        cmocka_unit_test(test_message_errors),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_roundtrip_minimal_and_nul_stdin),
        cmocka_unit_test(test_request_id_bounds),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
