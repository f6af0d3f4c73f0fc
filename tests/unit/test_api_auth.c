/* Unit tests of api/auth: the tokens file and token checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"

static const char good[] =
    "# name token scopes\n"
    "\n"
    "ci\tci-token-0123456789   submit,read   # trailing comment\n"
    "ops ops-token-0123456789 admin\r\n"
    "   reader reader-token-01 read\n"
    "canceller can-token-01 cancel";

static auth_table *parse(const char *s, char *err)
{
    return auth_parse(s, strlen(s), err, 256);
}

static void test_parse(void **state)
{
    (void)state;
    char err[256] = "", name[AUTH_NAME_MAX + 1];
    auth_table *t = parse(good, err);
    assert_non_null(t);
    assert_int_equal(auth_count(t), 4);
    assert_int_equal(auth_check(t, "Bearer ci-token-0123456789", SCOPE_SUBMIT, name), AUTH_OK);
    assert_string_equal(name, "ci");
    assert_int_equal(auth_check(t, "Bearer ci-token-0123456789", SCOPE_READ, name), AUTH_OK);
    assert_int_equal(auth_check(t, "Bearer ci-token-0123456789", SCOPE_CANCEL, name), AUTH_FORBIDDEN);
    assert_string_equal(name, "ci");
    assert_int_equal(auth_check(t, "Bearer ops-token-0123456789", SCOPE_CANCEL, name), AUTH_OK);
    assert_string_equal(name, "ops");
    assert_int_equal(auth_check(t, "Bearer ops-token-0123456789", SCOPE_SUBMIT, NULL), AUTH_OK);
    assert_int_equal(auth_check(t, "Bearer reader-token-01", SCOPE_READ, name), AUTH_OK);
    assert_int_equal(auth_check(t, "Bearer reader-token-01", SCOPE_SUBMIT, name), AUTH_FORBIDDEN);
    assert_int_equal(auth_check(t, "Bearer can-token-01", SCOPE_CANCEL, name), AUTH_OK);
    assert_int_equal(auth_check(t, "Bearer can-token-01", SCOPE_READ, name), AUTH_FORBIDDEN);
    auth_table_free(t);
}

static void test_headers(void **state)
{
    (void)state;
    char err[256];
    auth_table *t = parse(good, err);
    assert_non_null(t);
    assert_int_equal(auth_check(t, NULL, SCOPE_READ, NULL), AUTH_MISSING);
    assert_int_equal(auth_check(t, "", SCOPE_READ, NULL), AUTH_MISSING);
    assert_int_equal(auth_check(t, "Bearer", SCOPE_READ, NULL), AUTH_MISSING);
    assert_int_equal(auth_check(t, "Bearer ", SCOPE_READ, NULL), AUTH_MISSING);
    assert_int_equal(auth_check(t, "Basic Y2k6eA==", SCOPE_READ, NULL), AUTH_MISSING);
    assert_int_equal(auth_check(t, "bearer reader-token-01", SCOPE_READ, NULL), AUTH_OK);
    assert_int_equal(auth_check(t, "Bearer  reader-token-01 ", SCOPE_READ, NULL), AUTH_OK);
    assert_int_equal(auth_check(t, "Bearer reader-token-0", SCOPE_READ, NULL), AUTH_INVALID);
    assert_int_equal(auth_check(t, "Bearer reader-token-011", SCOPE_READ, NULL), AUTH_INVALID);
    assert_int_equal(auth_check(t, "Bearer READER-TOKEN-01", SCOPE_READ, NULL), AUTH_INVALID);
    assert_int_equal(auth_check(t, "Bearer reader-token-01reader-token-01", SCOPE_READ, NULL), AUTH_INVALID);
    /* a name is not a token */
    assert_int_equal(auth_check(t, "Bearer reader", SCOPE_READ, NULL), AUTH_INVALID);
    auth_table_free(t);
}

static void expect_bad(const char *text, const char *needle)
{
    char err[256] = "";
    auth_table *t = parse(text, err);
    assert_null(t);
    assert_non_null(strstr(err, needle));
}

static void test_bad(void **state)
{
    (void)state;
    expect_bad("a tok\n", "line 1");
    expect_bad("# ok\na tok read extra\n", "line 2");
    expect_bad("a tok reed\n", "bad scopes");
    expect_bad("a tok read,\n", "bad scopes");
    expect_bad("a tok ,read\n", "bad scopes");
    expect_bad("a tok read,,submit\n", "bad scopes");
    expect_bad("a tok1 read\nb tok1 submit\n", "repeated");
    char longtok[400];
    memset(longtok, 'x', sizeof longtok);
    memcpy(longtok, "a ", 2);
    strcpy(longtok + 300, " read\n");
    expect_bad(longtok, "too long");
}

static void test_empty(void **state)
{
    (void)state;
    char err[256];
    auth_table *t = parse("# nobody yet\n\n", err);
    assert_non_null(t);
    assert_int_equal(auth_count(t), 0);
    assert_int_equal(auth_check(t, "Bearer anything", SCOPE_READ, NULL), AUTH_INVALID);
    auth_table_free(t);
    assert_int_equal(auth_check(NULL, "Bearer anything", SCOPE_READ, NULL), AUTH_INVALID);
}

static void test_store_reload(void **state)
{
    (void)state;
    char path[] = "/tmp/test_api_auth.XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("one tok-one read\n", f);
    fclose(f);
    auth_table *t = auth_load(path, err, sizeof err);
    assert_non_null(t);
    auth_store *s = auth_store_new(t);
    assert_non_null(s);
    assert_int_equal(auth_store_check(s, "Bearer tok-one", SCOPE_READ, NULL), AUTH_OK);
    f = fopen(path, "w");
    fputs("two tok-two read,submit\n", f);
    fclose(f);
    assert_int_equal(auth_store_reload(s, path, err, sizeof err), 1);
    assert_int_equal(auth_store_check(s, "Bearer tok-one", SCOPE_READ, NULL), AUTH_INVALID);
    assert_int_equal(auth_store_check(s, "Bearer tok-two", SCOPE_SUBMIT, NULL), AUTH_OK);
    /* a broken file keeps the old tokens */
    f = fopen(path, "w");
    fputs("broken\n", f);
    fclose(f);
    assert_int_equal(auth_store_reload(s, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(auth_store_check(s, "Bearer tok-two", SCOPE_SUBMIT, NULL), AUTH_OK);
    unlink(path);
    assert_int_equal(auth_store_reload(s, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    auth_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse), cmocka_unit_test(test_headers),
        cmocka_unit_test(test_bad),   cmocka_unit_test(test_empty),
        cmocka_unit_test(test_store_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
