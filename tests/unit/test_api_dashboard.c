/* Unit tests of the dashboard's routes and its built-in files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "handlers_dashboard.h"
#include "route.h"

static void test_routes(void **state)
{
    (void)state;
    route r;
    assert_int_equal(route_match("/", &r), R_DASHBOARD);
    assert_string_equal(r.job_id, "");
    assert_int_equal(route_match("/ui/app.js", &r), R_DASHBOARD);
    assert_string_equal(r.job_id, "app.js");
    assert_false(r.job_id_valid);
    static const char *const bad[] = {"/ui", "/ui/", "/ui/a/b", "/ui/../x", "//", "/index.html", "/UI/app.js"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(route_match(bad[i], &r), R_NONE);
    /* no token to fetch the page: it asks for one itself */
    assert_int_equal(route_scope(R_DASHBOARD, "GET"), 0);
    assert_true(route_method_ok(R_DASHBOARD, "GET"));
    assert_true(route_method_ok(R_DASHBOARD, "HEAD"));
    assert_false(route_method_ok(R_DASHBOARD, "POST"));
}

static void test_files(void **state)
{
    (void)state;
    dashboard_asset a;
    assert_int_equal(dashboard_find("", &a), 0);
    assert_true(a.len > 100);
    assert_true(!strncmp(a.data, "<!doctype html>", 15));
    assert_true(!strncmp(a.content_type, "text/html", 9));
    assert_non_null(memmem(a.data, a.len, "</html>", 7));
    assert_int_equal(dashboard_find("app.js", &a), 0);
    assert_true(!strncmp(a.content_type, "text/javascript", 15));
    assert_non_null(memmem(a.data, a.len, "'use strict';", 13));
    assert_int_equal(dashboard_find("style.css", &a), 0);
    assert_true(!strncmp(a.content_type, "text/css", 8));
    assert_int_equal(dashboard_find("nope.js", &a), -1);
    assert_int_equal(dashboard_find("index.html", &a), -1);
    assert_int_equal(dashboard_find(NULL, &a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
