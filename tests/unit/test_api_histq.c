/* Unit tests of api/histq: the history query and RFC 3339 times. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "histq.h"

#define ID "0190c3a2-7b1e-7c2d-8e3f-0123456789ab"
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_defaults(void **state)
{
    (void)state;
    histq h;
    char err[256];
    assert_int_equal(histq_parse(NULL, 0, &h, err, sizeof err), 0);
    assert_int_equal(h.q.limit, HISTQ_LIMIT_DEFAULT);
    assert_null(h.q.state);
    assert_null(h.q.queue);
    assert_null(h.q.label_key);
    assert_null(h.q.before);
    assert_null(h.q.since);
    assert_null(h.q.until);
}

static void test_all(void **state)
{
    (void)state;
    histq h;
    char err[256];
    histq_kv kv[] = {{"state", "failed"}, {"queue", "gpu"},  {"label", "team:a:b"},
                     {"before", ID},       {"limit", "1000"}, {"since", "2026-11-23T11:46:35Z"},
                     {"until", "2026-11-24"}};
    assert_int_equal(histq_parse(kv, N(kv), &h, err, sizeof err), 0);
    assert_string_equal(h.q.state, "failed");
    assert_string_equal(h.q.queue, "gpu");
    assert_string_equal(h.q.label_key, "team");
    assert_string_equal(h.q.label_value, "a:b"); /* split at the first ':' */
    assert_string_equal(h.q.before, ID);
    assert_int_equal(h.q.limit, 1000);
    assert_string_equal(h.q.since, "2026-11-23T11:46:35.000Z");
    assert_string_equal(h.q.until, "2026-11-24T00:00:00.000Z");
}

/* Each bad parameter is refused with a message naming it. */
static void expect_bad(const char *k, const char *v, const char *name)
{
    histq h;
    char err[256] = "";
    histq_kv kv[] = {{k, v}};
    assert_int_equal(histq_parse(kv, 1, &h, err, sizeof err), -1);
    char want[64];
    snprintf(want, sizeof want, "'%s'", name);
    assert_non_null(strstr(err, want));
}

static void test_bad(void **state)
{
    (void)state;
    expect_bad("limit", "0", "limit");
    expect_bad("limit", "1001", "limit");
    expect_bad("limit", "-5", "limit");
    expect_bad("limit", "10x", "limit");
    expect_bad("limit", "", "limit");
    expect_bad("limit", NULL, "limit");
    expect_bad("limit", "99999999999999999999", "limit");
    expect_bad("state", "done", "state");
    expect_bad("before", "not-an-id", "before");
    expect_bad("label", "novalue", "label");
    expect_bad("label", ":v", "label");
    expect_bad("label", "k:", "label");
    expect_bad("label", "a.b:v", "label");
    expect_bad("label", "$where:v", "label");
    expect_bad("since", "yesterday", "since");
    expect_bad("until", "2026-13-01", "until");
    expect_bad("until", "2026-02-30T00:00:00Z", "until");
    expect_bad("since", "2026-11-23T11:46:35", "since"); /* no zone */
    expect_bad("bogus", "1", "bogus");
    expect_bad("", "1", "");
    char longq[100];
    memset(longq, 'q', 80);
    longq[80] = 0;
    expect_bad("queue", longq, "queue");
}

static void test_twice(void **state)
{
    (void)state;
    histq h;
    char err[256];
    histq_kv kv[] = {{"state", "failed"}, {"state", "queued"}};
    assert_int_equal(histq_parse(kv, 2, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "'state'"));
    assert_non_null(strstr(err, "twice"));
}

static void test_times(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(clock_parse_rfc3339("2026-11-23T11:46:35.123Z", &ms), 0);
    char out[CLOCK_RFC3339_LEN];
    clock_rfc3339(ms, out);
    assert_string_equal(out, "2026-11-23T11:46:35.123Z");
    assert_int_equal(clock_parse_rfc3339("2026-11-23T12:46:35.123+01:00", &ms), 0);
    clock_rfc3339(ms, out);
    assert_string_equal(out, "2026-11-23T11:46:35.123Z");
    assert_int_equal(clock_parse_rfc3339("2026-11-23T06:16:35.5-05:30", &ms), 0);
    clock_rfc3339(ms, out);
    assert_string_equal(out, "2026-11-23T11:46:35.500Z");
    assert_int_equal(clock_parse_rfc3339("2026-11-23t11:46:35.123456z", &ms), 0);
    clock_rfc3339(ms, out);
    assert_string_equal(out, "2026-11-23T11:46:35.123Z");
    assert_int_equal(clock_parse_rfc3339("2024-02-29", &ms), 0); /* leap day */
    assert_int_equal(clock_parse_rfc3339("2023-02-29", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2026-11-23T11:46:35.Z", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2026-11-23T24:00:00Z", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2026-11-23T11:46:35Zjunk", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2026-11-23T11:46Z", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("1969-12-31T23:59:59Z", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("", &ms), -1);
    assert_int_equal(clock_parse_rfc3339(NULL, &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_all),   cmocka_unit_test(test_bad),
        cmocka_unit_test(test_twice),    cmocka_unit_test(test_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
