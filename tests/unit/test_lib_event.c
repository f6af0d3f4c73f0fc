/* Unit tests of lib/event: states, the status document, output encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "utf8.h"

#define ID "0190c3a2-7b1e-7c2d-8e3f-0123456789ab"

static void test_states(void **state)
{
    (void)state;
    static const char *const term[] = {ST_SUCCEEDED, ST_FAILED, ST_TIMED_OUT, ST_CANCELLED,
                                       ST_REJECTED};
    for (size_t i = 0; i < sizeof term / sizeof term[0]; i++) {
        assert_true(state_is_terminal(term[i]));
        assert_true(state_is_valid(term[i]));
    }
    assert_false(state_is_terminal(ST_QUEUED));
    assert_false(state_is_terminal(ST_RUNNING));
    assert_true(state_is_valid(ST_QUEUED));
    assert_true(state_is_valid(ST_RUNNING));
    assert_string_equal(ST_TIMED_OUT, "timed_out");
    static const char *const bad[] = {"", "done", "Succeeded", "succeeded ", "queue", "runnin",
                                      "failed\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(state_is_terminal(bad[i]));
        assert_false(state_is_valid(bad[i]));
    }
    assert_false(state_is_terminal(NULL));
    assert_false(state_is_valid(NULL));
}

static void load_job(bx_job *j, const char *body)
{
    char err[256];
    if (job_from_request(j, body, strlen(body), err, sizeof err))
        fail_msg("job refused: %s", err);
    job_assign(j, ID, 1700000000123LL, "req-1");
}

static void test_event_new(void **state)
{
    (void)state;
    bx_job j;
    load_job(&j, "{\"command\":\"echo $SECRET\",\"env\":{\"SECRET\":\"hunter2\"},"
                 "\"stdin\":\"password\",\"cwd\":\"/srv\",\"queue\":\"q1\",\"priority\":4,"
                 "\"labels\":{\"team\":\"a\"},\"lock\":\"L\",\"idempotency_key\":\"K\","
                 "\"max_retries\":2,\"timeout_s\":7,\"max_output_bytes\":10,"
                 "\"retry_backoff_s\":2}");
    json_t *ev = event_new(&j, ST_QUEUED);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "state")), "queued");
    assert_string_equal(json_string_value(json_object_get(ev, "id")), ID);
    assert_string_equal(json_string_value(json_object_get(ev, "command")), "echo $SECRET");
    assert_string_equal(json_string_value(json_object_get(ev, "queue")), "q1");
    assert_int_equal(json_integer_value(json_object_get(ev, "priority")), 4);
    assert_int_equal(json_integer_value(json_object_get(ev, "attempt")), 1);
    assert_int_equal(json_integer_value(json_object_get(ev, "max_retries")), 2);
    assert_string_equal(json_string_value(json_object_get(ev, "lock")), "L");
    assert_string_equal(json_string_value(json_object_get(ev, "idempotency_key")), "K");
    assert_string_equal(json_string_value(json_object_get(ev, "request_id")), "req-1");
    assert_string_equal(json_string_value(json_object_get(ev, "submitted_at")),
                        "2023-11-14T22:13:20.123Z");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "labels"), "team")), "a");
    /* env and stdin may hold secrets: never in a status */
    assert_null(json_object_get(ev, "env"));
    assert_null(json_object_get(ev, "stdin"));
    char *text = json_dumps(ev, JSON_COMPACT);
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "password"));
    free(text);
    /* the event is its own: changing it leaves the job alone */
    json_object_set_new(ev, "attempt", json_integer(9));
    json_object_del(ev, "labels");
    assert_int_equal(j.attempt, 1);
    assert_non_null(json_object_get(j.doc, "labels"));
    json_decref(ev);
    /* and it outlives the job */
    ev = event_new(&j, ST_RUNNING);
    job_release(&j);
    assert_string_equal(json_string_value(json_object_get(ev, "state")), "running");
    assert_string_equal(json_string_value(json_object_get(ev, "id")), ID);
    json_decref(ev);
}

static void test_event_set_time(void **state)
{
    (void)state;
    json_t *ev = json_object();
    event_set_time(ev, "started_at", 0);
    event_set_time(ev, "finished_at", 1700000000123LL);
    assert_string_equal(json_string_value(json_object_get(ev, "started_at")), "1970-01-01T00:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(ev, "finished_at")), "2023-11-14T22:13:20.123Z");
    event_set_time(ev, "finished_at", 1700000000999LL); /* replaces */
    assert_string_equal(json_string_value(json_object_get(ev, "finished_at")), "2023-11-14T22:13:20.999Z");
    json_decref(ev);
}

static const char *sget(json_t *ev, const char *k) { return json_string_value(json_object_get(ev, k)); }

/* The stored output decodes back to exactly the bytes given. */
static void check_output(json_t *ev, const char *name, const void *bytes, size_t n, const char *enc)
{
    char k[64];
    snprintf(k, sizeof k, "%s_encoding", name);
    assert_string_equal(sget(ev, k), enc);
    json_t *v = json_object_get(ev, name);
    assert_true(json_is_string(v));
    if (!strcmp(enc, "utf-8")) {
        assert_int_equal(json_string_length(v), n);
        assert_memory_equal(json_string_value(v), bytes, n);
    } else {
        size_t dl;
        char *d = base64_decode(json_string_value(v), json_string_length(v), &dl);
        assert_non_null(d);
        assert_int_equal(dl, n);
        if (n)
            assert_memory_equal(d, bytes, n);
        free(d);
    }
    /* and survives a trip through JSON text, as it does through Redis */
    char *text = json_dumps(ev, JSON_COMPACT);
    assert_non_null(text);
    json_t *back = json_loads(text, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(back, ev));
    json_decref(back);
    free(text);
}

static void test_output_utf8(void **state)
{
    (void)state;
    json_t *ev = json_object();
    static const char out[] = "hello \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n\"quoted\"\t\x01";
    event_set_output(ev, "stdout", out, sizeof out - 1, sizeof out - 1, -1);
    check_output(ev, "stdout", out, sizeof out - 1, "utf-8");
    assert_int_equal(json_integer_value(json_object_get(ev, "stdout_bytes")), sizeof out - 1);
    assert_true(json_is_false(json_object_get(ev, "stdout_truncated")));
    assert_null(json_object_get(ev, "stdout_cut_at"));
    /* empty output is an empty string, not missing */
    event_set_output(ev, "stderr", "", 0, 0, -1);
    check_output(ev, "stderr", "", 0, "utf-8");
    assert_int_equal(json_integer_value(json_object_get(ev, "stderr_bytes")), 0);
    /* stdout untouched by stderr */
    check_output(ev, "stdout", out, sizeof out - 1, "utf-8");
    json_decref(ev);
}

static void test_output_binary(void **state)
{
    (void)state;
    static const struct {
        const char *b;
        size_t n;
    } cases[] = {
        {"\xff", 1},
        {"abc\x00" "def", 7},
        {"\x00", 1},
        {"ok\xc3", 3},              /* a character cut at the end */
        {"\xed\xa0\x80", 3},        /* a surrogate */
        {"\xc0\x80", 2},            /* overlong NUL */
        {"caf\xe9 latin-1", 12},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *ev = json_object();
        event_set_output(ev, "stderr", cases[i].b, cases[i].n, cases[i].n, -1);
        check_output(ev, "stderr", cases[i].b, cases[i].n, "base64");
        json_decref(ev);
    }
    /* every byte value */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i);
    json_t *ev = json_object();
    event_set_output(ev, "stdout", (const char *)all, sizeof all, 1000000, -1);
    check_output(ev, "stdout", all, sizeof all, "base64");
    /* switching back to text sets the encoding back too */
    event_set_output(ev, "stdout", "text", 4, 4, -1);
    check_output(ev, "stdout", "text", 4, "utf-8");
    json_decref(ev);
}

static void test_output_truncated(void **state)
{
    (void)state;
    json_t *ev = json_object();
    event_set_output(ev, "stdout", "headtail", 8, 5000000000ULL, 4);
    check_output(ev, "stdout", "headtail", 8, "utf-8");
    assert_true(json_is_true(json_object_get(ev, "stdout_truncated")));
    assert_int_equal(json_integer_value(json_object_get(ev, "stdout_cut_at")), 4);
    assert_int_equal(json_integer_value(json_object_get(ev, "stdout_bytes")), 5000000000LL);
    /* a cut at 0 (only the tail kept) is still a cut */
    event_set_output(ev, "stderr", "\xff\xfe", 2, 10, 0);
    check_output(ev, "stderr", "\xff\xfe", 2, "base64");
    assert_true(json_is_true(json_object_get(ev, "stderr_truncated")));
    assert_int_equal(json_integer_value(json_object_get(ev, "stderr_cut_at")), 0);
    /* setting it again without a cut removes the cut */
    event_set_output(ev, "stdout", "all", 3, 3, -1);
    assert_true(json_is_false(json_object_get(ev, "stdout_truncated")));
    assert_null(json_object_get(ev, "stdout_cut_at"));
    assert_int_equal(json_integer_value(json_object_get(ev, "stdout_bytes")), 3);
    assert_true(json_is_true(json_object_get(ev, "stderr_truncated"))); /* stderr kept its own */
    json_decref(ev);
}

static json_t *dec(const char *body, char *err, size_t errlen)
{
    err[0] = 0;
    return event_decode(body, strlen(body), err, errlen);
}

static void test_event_decode(void **state)
{
    (void)state;
    char err[256];
    json_t *ev = dec("{\"id\":\"" ID "\",\"state\":\"succeeded\",\"attempt\":1,\"exit_code\":0,"
                     "\"stdout\":\"x\"}", err, sizeof err);
    assert_non_null(ev);
    assert_string_equal(sget(ev, "state"), "succeeded");
    json_decref(ev);
    static const char *const bad[][2] = {
        {"", "JSON"},
        {"{", "JSON"},
        {"nope", "JSON"},
        {"{\"id\":\"" ID "\",\"state\":\"failed\",\"attempt\":1,\"attempt\":2}", "JSON"},
        {"[]", "'id'"},
        {"{}", "'id'"},
        {"{\"state\":\"failed\",\"attempt\":1}", "'id'"},
        {"{\"id\":\"x\",\"state\":\"failed\",\"attempt\":1}", "'id'"},
        {"{\"id\":1,\"state\":\"failed\",\"attempt\":1}", "'id'"},
        {"{\"id\":\"" ID "\",\"attempt\":1}", "'state'"},
        {"{\"id\":\"" ID "\",\"state\":\"done\",\"attempt\":1}", "'state'"},
        {"{\"id\":\"" ID "\",\"state\":7,\"attempt\":1}", "'state'"},
        {"{\"id\":\"" ID "\",\"state\":\"failed\"}", "'attempt'"},
        {"{\"id\":\"" ID "\",\"state\":\"failed\",\"attempt\":0}", "'attempt'"},
        {"{\"id\":\"" ID "\",\"state\":\"failed\",\"attempt\":-3}", "'attempt'"},
        {"{\"id\":\"" ID "\",\"state\":\"failed\",\"attempt\":\"1\"}", "'attempt'"},
        {"{\"id\":\"" ID "\",\"state\":\"failed\",\"attempt\":1.0}", "'attempt'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ev = dec(bad[i][0], err, sizeof err);
        if (ev) {
            json_decref(ev);
            fail_msg("event_decode accepted %s", bad[i][0]);
        }
        if (!strstr(err, bad[i][1]))
            fail_msg("error for %s is '%s', which does not mention %s", bad[i][0], err, bad[i][1]);
    }
    /* the length bounds what is parsed */
    const char b[] = "{\"id\":\"" ID "\",\"state\":\"queued\",\"attempt\":2}XYZ";
    ev = event_decode(b, sizeof b - 4, err, sizeof err);
    assert_non_null(ev);
    json_decref(ev);
}

/* What a worker builds is what the recorder decodes. */
static void test_event_roundtrip(void **state)
{
    (void)state;
    bx_job j;
    load_job(&j, "{\"command\":\"printf '\\\\377'\",\"labels\":{\"a\":\"b\"}}");
    json_t *ev = event_new(&j, ST_FAILED);
    event_set_time(ev, "started_at", 1700000000000LL);
    event_set_time(ev, "finished_at", 1700000001500LL);
    json_object_set_new(ev, "duration_ms", json_integer(1500));
    json_object_set_new(ev, "exit_code", json_integer(3));
    event_set_output(ev, "stdout", "\xff", 1, 1, -1);
    event_set_output(ev, "stderr", "oops\n", 5, 5, -1);
    char *text = json_dumps(ev, JSON_COMPACT);
    char err[256];
    json_t *back = dec(text, err, sizeof err);
    assert_non_null(back);
    assert_true(json_equal(back, ev));
    assert_string_equal(sget(back, "stdout_encoding"), "base64");
    assert_string_equal(sget(back, "stdout"), "/w==");
    json_decref(back);
    free(text);
    json_decref(ev);
    job_release(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_event_new),
        cmocka_unit_test(test_event_set_time),
        cmocka_unit_test(test_output_utf8),
        cmocka_unit_test(test_output_binary),
        cmocka_unit_test(test_output_truncated),
        cmocka_unit_test(test_event_decode),
        cmocka_unit_test(test_event_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
