/* Unit tests of what the recorder shows statusd (recorder/rec.c): its
 * metric families, its readiness, and the parsing of finished_at that
 * bx_recorder_lag_seconds needs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "metrics.h"
#include "rec.h"

static void test_parse_rfc3339(void **state)
{
    (void)state;
    char buf[CLOCK_RFC3339_LEN];
    assert_int_equal(rec_parse_rfc3339("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(rec_parse_rfc3339("2026-11-23T11:46:35.123Z"), 1795434395123LL);
    assert_int_equal(rec_parse_rfc3339("2026-11-23T11:46:35Z"), 1795434395000LL);
    assert_int_equal(rec_parse_rfc3339("2026-11-23T11:46:35.1Z"), 1795434395100LL);
    assert_int_equal(rec_parse_rfc3339("2026-11-23T11:46:35.123456Z"), 1795434395123LL);
    /* what clock_rfc3339 writes reads back */
    int64_t now = clock_wall_ms();
    clock_rfc3339(now, buf);
    assert_int_equal(rec_parse_rfc3339(buf), now);
    assert_int_equal(rec_parse_rfc3339(NULL), -1);
    assert_int_equal(rec_parse_rfc3339(""), -1);
    assert_int_equal(rec_parse_rfc3339("2026-11-23 11:46:35Z"), -1);
    assert_int_equal(rec_parse_rfc3339("2026-11-23T11:46:35.123+01:00"), -1);
}

static void test_obs_families_and_readiness(void **state)
{
    (void)state;
    char err[256];
    rec_obs o;
    metrics *m = metrics_new();
    assert_int_equal(rec_obs_init(&o, m, err, sizeof err), 0);
    char *text = metrics_render_buf(m, NULL);
    assert_non_null(text);
    /* every result is there at 0 before the first event */
    assert_non_null(strstr(text, "bx_recorder_events_total{result=\"stored\"} 0\n"));
    assert_non_null(strstr(text, "bx_recorder_events_total{result=\"stale\"} 0\n"));
    assert_non_null(strstr(text, "bx_recorder_events_total{result=\"dead_lettered\"} 0\n"));
    assert_non_null(strstr(text, "# TYPE bx_recorder_batch_size histogram\n"));
    assert_non_null(strstr(text, "# TYPE bx_recorder_write_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE bx_recorder_lag_seconds gauge\n"));
    assert_non_null(strstr(text, "bx_recorder_amqp_up 0\n"));
    assert_non_null(strstr(text, "bx_recorder_mongo_up 0\n"));
    free(text);

    statusd_check c[STATUSD_MAX_CHECKS];
    memset(c, 0, sizeof c);
    assert_int_equal(rec_obs_ready(&o, c, STATUSD_MAX_CHECKS), 2);
    assert_string_equal(c[0].name, "rabbitmq");
    assert_false(c[0].ok);
    assert_string_equal(c[0].detail, "not connected yet");
    assert_string_equal(c[1].name, "mongodb");
    assert_false(c[1].ok);

    metric_set(o.amqp_up, NULL, NULL, 1);
    metric_set(o.mongo_up, NULL, NULL, 1);
    memset(c, 0, sizeof c);
    rec_obs_ready(&o, c, STATUSD_MAX_CHECKS);
    assert_true(c[0].ok && c[1].ok);

    /* a second registry of the same names is refused, not doubled */
    rec_obs o2;
    assert_int_equal(rec_obs_init(&o2, m, err, sizeof err), -1);
    assert_non_null(strstr(err, "already registered"));
    rec_obs_release(&o2);
    rec_obs_release(&o);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rfc3339),
        cmocka_unit_test(test_obs_families_and_readiness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
