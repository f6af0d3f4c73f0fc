/* Unit tests of api/route: paths, methods, scopes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "route.h"

#define ID "0190c3a2-7b1e-7c2d-8e3f-0123456789ab"

static void test_paths(void **state)
{
    (void)state;
    route r;
    assert_int_equal(route_match("/healthz", &r), R_HEALTHZ);
    assert_int_equal(route_match("/readyz", &r), R_READYZ);
    assert_int_equal(route_match("/metrics", &r), R_METRICS);
    assert_int_equal(route_match("/v1/workers", &r), R_WORKERS);
    assert_int_equal(route_match("/v1/jobs", &r), R_JOBS);
    assert_int_equal(route_match("/v1/jobs/" ID, &r), R_JOB);
    assert_string_equal(r.job_id, ID);
    assert_true(r.job_id_valid);
    assert_int_equal(route_match("/v1/jobs/" ID "/output", &r), R_JOB_OUTPUT);
    assert_string_equal(r.job_id, ID);
    assert_true(r.job_id_valid);
    assert_int_equal(route_match("/v1/jobs/" ID "/events", &r), R_JOB_EVENTS);
    assert_true(r.job_id_valid);
}

static void test_not_found(void **state)
{
    (void)state;
    route r;
    static const char *const bad[] = {"", "/v1", "/v1/", "/v1/jobs/", "/v1/jobsx",
                                      "/v1/jobs//output", "/v1/jobs/" ID "/", "/v1/jobs/" ID "/outputs",
                                      "/v1/jobs/" ID "/output/x", "/healthz/", "/HEALTHZ", "/v2/jobs",
                                      "/v1/workers/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(route_match(bad[i], &r), R_NONE);
        assert_string_equal(r.job_id, "");
    }
    assert_int_equal(route_match(NULL, &r), R_NONE);
}

static void test_bad_ids(void **state)
{
    (void)state;
    route r;
    /* a malformed id still routes (the handler answers 400, not 404) */
    assert_int_equal(route_match("/v1/jobs/nope", &r), R_JOB);
    assert_false(r.job_id_valid);
    assert_string_equal(r.job_id, "nope");
    assert_int_equal(route_match("/v1/jobs/0190C3A2-7B1E-7C2D-8E3F-0123456789AB", &r), R_JOB);
    assert_false(r.job_id_valid); /* uppercase is not canonical */
    assert_int_equal(route_match("/v1/jobs/" ID "0/output", &r), R_JOB_OUTPUT);
    assert_false(r.job_id_valid);
    char longp[300] = "/v1/jobs/";
    memset(longp + 9, 'a', 200);
    longp[209] = 0;
    assert_int_equal(route_match(longp, &r), R_JOB);
    assert_false(r.job_id_valid);
    assert_int_equal(strlen(r.job_id), ROUTE_ID_MAX); /* cut, never overflowed */
}

static void test_methods(void **state)
{
    (void)state;
    assert_true(route_method_ok(R_JOBS, "GET"));
    assert_true(route_method_ok(R_JOBS, "HEAD"));
    assert_true(route_method_ok(R_JOBS, "POST"));
    assert_false(route_method_ok(R_JOBS, "DELETE"));
    assert_false(route_method_ok(R_JOBS, "PUT"));
    assert_true(route_method_ok(R_JOB, "GET"));
    assert_true(route_method_ok(R_JOB, "DELETE"));
    assert_false(route_method_ok(R_JOB, "POST"));
    assert_false(route_method_ok(R_JOB, "PATCH"));
    assert_true(route_method_ok(R_JOB_OUTPUT, "GET"));
    assert_false(route_method_ok(R_JOB_OUTPUT, "DELETE"));
    assert_true(route_method_ok(R_HEALTHZ, "GET"));
    assert_false(route_method_ok(R_HEALTHZ, "POST"));
    assert_false(route_method_ok(R_NONE, "GET"));
    assert_false(route_method_ok(R_JOBS, NULL));
    assert_false(route_method_ok(R_JOBS, "get")); /* methods are case-sensitive */
    assert_string_equal(route_allow(R_JOBS), "GET, HEAD, POST");
    assert_string_equal(route_allow(R_JOB), "GET, HEAD, DELETE");
    assert_string_equal(route_allow(R_READYZ), "GET, HEAD");
}

static void test_scopes(void **state)
{
    (void)state;
    assert_int_equal(route_scope(R_JOBS, "POST"), SCOPE_SUBMIT);
    assert_int_equal(route_scope(R_JOBS, "GET"), SCOPE_READ);
    assert_int_equal(route_scope(R_JOB, "GET"), SCOPE_READ);
    assert_int_equal(route_scope(R_JOB, "HEAD"), SCOPE_READ);
    assert_int_equal(route_scope(R_JOB, "DELETE"), SCOPE_CANCEL);
    assert_int_equal(route_scope(R_JOB_OUTPUT, "GET"), SCOPE_READ);
    assert_int_equal(route_scope(R_WORKERS, "GET"), SCOPE_READ);
    assert_int_equal(route_scope(R_HEALTHZ, "GET"), 0);
    assert_int_equal(route_scope(R_READYZ, "GET"), 0);
    assert_int_equal(route_scope(R_METRICS, "GET"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),   cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_bad_ids), cmocka_unit_test(test_methods),
        cmocka_unit_test(test_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
