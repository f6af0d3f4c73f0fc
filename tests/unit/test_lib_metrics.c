/* Unit tests of lib/metrics.c: the exact text of the exposition format
 * (what promtool and Prometheus parse), label and help escaping,
 * histogram buckets, the checks at registration, and updates from one
 * thread while another renders. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(metrics *m)
{
    size_t len = 0;
    char *s = metrics_render_buf(m, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    return s;
}

static void test_counter_and_gauge_text(void **state)
{
    (void)state;
    char err[256];
    metrics *m = metrics_new();
    metric_fam *c = metrics_counter(m, "bx_test_events_total", "Events seen.", NULL, NULL, err,
                                    sizeof err);
    metric_fam *g = metrics_gauge(m, "bx_test_up", "1 when connected.", NULL, NULL, err,
                                  sizeof err);
    metric_fam *q = metrics_counter(m, "bx_test_jobs_total", "Jobs by queue and state.", "queue",
                                    "state", err, sizeof err);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(q);
    /* unlabelled series exist at 0 before any update; labelled ones
     * only once used (or touched) */
    char *s = render(m);
    assert_string_equal(s, "# HELP bx_test_events_total Events seen.\n"
                           "# TYPE bx_test_events_total counter\n"
                           "bx_test_events_total 0\n"
                           "# HELP bx_test_up 1 when connected.\n"
                           "# TYPE bx_test_up gauge\n"
                           "bx_test_up 0\n"
                           "# HELP bx_test_jobs_total Jobs by queue and state.\n"
                           "# TYPE bx_test_jobs_total counter\n");
    free(s);

    metric_inc(c, NULL, NULL);
    metric_add(c, NULL, NULL, 2.5);
    metric_add(c, NULL, NULL, -7); /* counters never go down */
    metric_add(c, NULL, NULL, NAN);
    metric_set(g, NULL, NULL, 1);
    metric_inc(q, "default", "succeeded");
    metric_inc(q, "default", "succeeded");
    metric_inc(q, "gpu", "failed");
    metric_touch(q, "default", "failed");
    metric_set(c, NULL, NULL, 100); /* wrong kind: ignored */
    metric_observe(g, NULL, NULL, 1);
    s = render(m);
    assert_string_equal(s, "# HELP bx_test_events_total Events seen.\n"
                           "# TYPE bx_test_events_total counter\n"
                           "bx_test_events_total 3.5\n"
                           "# HELP bx_test_up 1 when connected.\n"
                           "# TYPE bx_test_up gauge\n"
                           "bx_test_up 1\n"
                           "# HELP bx_test_jobs_total Jobs by queue and state.\n"
                           "# TYPE bx_test_jobs_total counter\n"
                           "bx_test_jobs_total{queue=\"default\",state=\"succeeded\"} 2\n"
                           "bx_test_jobs_total{queue=\"gpu\",state=\"failed\"} 1\n"
                           "bx_test_jobs_total{queue=\"default\",state=\"failed\"} 0\n");
    free(s);
    assert_true(metric_value(q, "default", "succeeded") == 2);
    assert_true(metric_value(q, "nope", "succeeded") == 0);
    assert_true(metric_value(c, NULL, NULL) == 3.5);

    metric_gauge_add(g, NULL, NULL, -3);
    assert_true(metric_value(g, NULL, NULL) == -2);
    metrics_free(m);
}

static void test_escaping(void **state)
{
    (void)state;
    char err[256];
    metrics *m = metrics_new();
    metric_fam *c = metrics_counter(m, "bx_test_total", "A \\ backslash\nand \"quotes\".", "cmd",
                                    NULL, err, sizeof err);
    assert_non_null(c);
    metric_inc(c, "say \"hi\" \\ bye\nnow", NULL);
    metric_inc(c, NULL, NULL); /* a missing value is "" */
    char *s = render(m);
    /* HELP escapes \ and newline, not quotes; label values all three */
    assert_string_equal(s, "# HELP bx_test_total A \\\\ backslash\\nand \"quotes\".\n"
                           "# TYPE bx_test_total counter\n"
                           "bx_test_total{cmd=\"say \\\"hi\\\" \\\\ bye\\nnow\"} 1\n"
                           "bx_test_total{cmd=\"\"} 1\n");
    free(s);
    metrics_free(m);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    char err[256];
    const double b[] = {0.1, 1, 2.5};
    metrics *m = metrics_new();
    metric_fam *h = metrics_histogram(m, "bx_test_run_seconds", "Run time.", b, 3, NULL, NULL,
                                      err, sizeof err);
    metric_fam *hl = metrics_histogram(m, "bx_test_wait_seconds", "Wait.", b, 1, "queue", NULL,
                                       err, sizeof err);
    assert_non_null(h);
    assert_non_null(hl);
    char *s = render(m);
    assert_string_equal(s, "# HELP bx_test_run_seconds Run time.\n"
                           "# TYPE bx_test_run_seconds histogram\n"
                           "bx_test_run_seconds_bucket{le=\"0.1\"} 0\n"
                           "bx_test_run_seconds_bucket{le=\"1\"} 0\n"
                           "bx_test_run_seconds_bucket{le=\"2.5\"} 0\n"
                           "bx_test_run_seconds_bucket{le=\"+Inf\"} 0\n"
                           "bx_test_run_seconds_sum 0\n"
                           "bx_test_run_seconds_count 0\n"
                           "# HELP bx_test_wait_seconds Wait.\n"
                           "# TYPE bx_test_wait_seconds histogram\n");
    free(s);
    metric_observe(h, NULL, NULL, 0.05);
    metric_observe(h, NULL, NULL, 0.1); /* on a bound: that bucket (le is <=) */
    metric_observe(h, NULL, NULL, 2);
    metric_observe(h, NULL, NULL, 1000);
    metric_observe(hl, "a\"b", NULL, 0.25);
    s = render(m);
    assert_string_equal(s, "# HELP bx_test_run_seconds Run time.\n"
                           "# TYPE bx_test_run_seconds histogram\n"
                           "bx_test_run_seconds_bucket{le=\"0.1\"} 2\n"
                           "bx_test_run_seconds_bucket{le=\"1\"} 2\n"
                           "bx_test_run_seconds_bucket{le=\"2.5\"} 3\n"
                           "bx_test_run_seconds_bucket{le=\"+Inf\"} 4\n"
                           "bx_test_run_seconds_sum 1002.15\n"
                           "bx_test_run_seconds_count 4\n"
                           "# HELP bx_test_wait_seconds Wait.\n"
                           "# TYPE bx_test_wait_seconds histogram\n"
                           "bx_test_wait_seconds_bucket{queue=\"a\\\"b\",le=\"0.1\"} 0\n"
                           "bx_test_wait_seconds_bucket{queue=\"a\\\"b\",le=\"+Inf\"} 1\n"
                           "bx_test_wait_seconds_sum{queue=\"a\\\"b\"} 0.25\n"
                           "bx_test_wait_seconds_count{queue=\"a\\\"b\"} 1\n");
    free(s);
    assert_true(metric_value(h, NULL, NULL) == 4);
    metrics_free(m);
}

static void test_shared_buckets(void **state)
{
    (void)state;
    char err[256];
    metrics *m = metrics_new();
    metric_fam *h = metrics_histogram(m, "bx_test_seconds", "S.", METRICS_SECONDS_BUCKETS,
                                      METRICS_SECONDS_NBUCKETS, NULL, NULL, err, sizeof err);
    assert_non_null(h);
    metric_observe(h, NULL, NULL, 0.004);
    char *s = render(m);
    assert_non_null(strstr(s, "bx_test_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(s, "bx_test_seconds_bucket{le=\"3600\"} 1\n"));
    free(s);
    metrics_free(m);
}

static void test_registration_checks(void **state)
{
    (void)state;
    char err[256];
    const double b[] = {1, 2}, bad[] = {2, 1}, inf[] = {1, INFINITY};
    metrics *m = metrics_new();
    assert_non_null(metrics_counter(m, "bx_a_total", "A.", NULL, NULL, err, sizeof err));
    assert_null(metrics_counter(m, "bx_a_total", "Again.", NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "already registered"));
    assert_null(metrics_gauge(m, "0bad", "x", NULL, NULL, err, sizeof err));
    assert_null(metrics_gauge(m, "bad-name", "x", NULL, NULL, err, sizeof err));
    assert_null(metrics_gauge(m, "bx_g", "x", "__reserved", NULL, err, sizeof err));
    assert_null(metrics_gauge(m, "bx_g", "x", "a:b", NULL, err, sizeof err));
    assert_null(metrics_gauge(m, "bx_g", "x", NULL, "second_only", err, sizeof err));
    assert_null(metrics_gauge(m, "bx_g", "x", "same", "same", err, sizeof err));
    assert_null(metrics_histogram(m, "bx_h", "x", b, 2, "le", NULL, err, sizeof err));
    assert_null(metrics_histogram(m, "bx_h", "x", bad, 2, NULL, NULL, err, sizeof err));
    assert_null(metrics_histogram(m, "bx_h", "x", inf, 2, NULL, NULL, err, sizeof err));
    assert_null(metrics_histogram(m, "bx_h", "x", b, 0, NULL, NULL, err, sizeof err));
    /* a histogram's own sample names are taken too, both ways */
    assert_non_null(metrics_histogram(m, "bx_h", "x", b, 2, NULL, NULL, err, sizeof err));
    assert_null(metrics_counter(m, "bx_h_count", "x", NULL, NULL, err, sizeof err));
    assert_non_null(metrics_gauge(m, "bx_k_sum", "x", NULL, NULL, err, sizeof err));
    assert_null(metrics_histogram(m, "bx_k", "x", b, 2, NULL, NULL, err, sizeof err));
    assert_non_null(metrics_gauge(m, "bx_g", "x", "a", "b", err, sizeof err));
    /* updates of a family that failed to register are no-ops */
    metric_inc(NULL, NULL, NULL);
    metric_observe(NULL, "x", NULL, 1);
    assert_true(metric_value(NULL, NULL, NULL) == 0);
    metrics_free(m);
    metrics_free(NULL);
}

static void test_series_cap(void **state)
{
    (void)state;
    char err[256], v[32];
    metrics *m = metrics_new();
    metric_fam *c = metrics_counter(m, "bx_cap_total", "x", "k", NULL, err, sizeof err);
    for (int i = 0; i < METRICS_MAX_SERIES + 50; i++) {
        snprintf(v, sizeof v, "v%d", i);
        metric_inc(c, v, NULL);
    }
    assert_true(metric_value(c, "v0", NULL) == 1);
    assert_true(metric_value(c, "v999", NULL) == 1);
    assert_true(metric_value(c, "v1000", NULL) == 0); /* dropped */
    metric_inc(c, "v0", NULL);                        /* existing ones still count */
    assert_true(metric_value(c, "v0", NULL) == 2);
    metrics_free(m);
}

static void test_fmt_value(void **state)
{
    (void)state;
    char b[64];
    assert_string_equal(metrics_fmt_value(0, b, sizeof b), "0");
    assert_string_equal(metrics_fmt_value(-0.0, b, sizeof b), "0");
    assert_string_equal(metrics_fmt_value(1, b, sizeof b), "1");
    assert_string_equal(metrics_fmt_value(0.1, b, sizeof b), "0.1");
    assert_string_equal(metrics_fmt_value(0.005, b, sizeof b), "0.005");
    assert_string_equal(metrics_fmt_value(123456789, b, sizeof b), "123456789");
    assert_string_equal(metrics_fmt_value(3600, b, sizeof b), "3600");
    assert_string_equal(metrics_fmt_value(1000000, b, sizeof b), "1000000");
    assert_string_equal(metrics_fmt_value(123456.5, b, sizeof b), "123456.5");
    assert_string_equal(metrics_fmt_value(1e20, b, sizeof b), "1e+20");
    assert_string_equal(metrics_fmt_value(1e-05, b, sizeof b), "1e-05");
    assert_string_equal(metrics_fmt_value(-2.5, b, sizeof b), "-2.5");
    assert_string_equal(metrics_fmt_value(INFINITY, b, sizeof b), "+Inf");
    assert_string_equal(metrics_fmt_value(-INFINITY, b, sizeof b), "-Inf");
    assert_string_equal(metrics_fmt_value(NAN, b, sizeof b), "NaN");
    /* 0.1 + 0.2 needs all 17 digits to read back the same */
    assert_true(strtod(metrics_fmt_value(0.1 + 0.2, b, sizeof b), NULL) == 0.1 + 0.2);
}

typedef struct {
    metric_fam *c, *h;
} pair;

static void *bump(void *arg)
{
    pair *p = arg;
    for (int i = 0; i < 20000; i++) {
        metric_inc(p->c, i % 2 ? "odd" : "even", NULL);
        metric_observe(p->h, NULL, NULL, i % 3);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char err[256];
    const double b[] = {0.5, 1.5};
    metrics *m = metrics_new();
    pair p = {metrics_counter(m, "bx_t_total", "x", "parity", NULL, err, sizeof err),
              metrics_histogram(m, "bx_t_seconds", "x", b, 2, NULL, NULL, err, sizeof err)};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, bump, &p), 0);
    for (int i = 0; i < 50; i++) /* renders while they update */
        free(render(m));
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_true(metric_value(p.c, "odd", NULL) == 20000);
    assert_true(metric_value(p.c, "even", NULL) == 20000);
    assert_true(metric_value(p.h, NULL, NULL) == 40000);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_text),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_shared_buckets),
        cmocka_unit_test(test_registration_checks),
        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_fmt_value),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
