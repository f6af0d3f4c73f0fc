/* Unit tests of api/auth: the tokens file (hashed tokens, options) and
 * token checks. */
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
#include "tokhash.h"

/* tmpl with each {tok} replaced by "sha256:<hex of tok>", into a static
 * buffer. */
static const char *hashed(const char *tmpl)
{
    static char out[8192];
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close) {
            char h[TOKHASH_TEXT_LEN + 1];
            assert_int_equal(tokhash_text(p + 1, (size_t)(close - p - 1), h), 0);
            memcpy(out + o, h, TOKHASH_TEXT_LEN);
            o += TOKHASH_TEXT_LEN;
            p = close + 1;
        } else {
            out[o++] = *p++;
        }
        assert_true(o < sizeof out - TOKHASH_TEXT_LEN);
    }
    out[o] = 0;
    return out;
}

static const char good[] =
    "# name token scopes\n"
    "\n"
    "ci\t{ci-token-0123456789}   submit,read   # trailing comment\n"
    "ops {ops-token-0123456789} admin\r\n"
    "   reader {reader-token-01} read\n"
    "canceller {can-token-01} cancel";

static auth_table *parse(const char *s, char *err)
{
    return auth_parse(s, strlen(s), err, 256);
}

static void test_parse(void **state)
{
    (void)state;
    char err[256] = "", name[AUTH_NAME_MAX + 1];
    auth_table *t = parse(hashed(good), err);
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
    /* the hash is not a token */
    char h[TOKHASH_TEXT_LEN + 16];
    tokhash_text("ci-token-0123456789", 19, h + 7);
    memcpy(h, "Bearer ", 7);
    assert_int_equal(auth_check(t, h, SCOPE_READ, NULL), AUTH_INVALID);
    auth_table_free(t);
}

static void test_headers(void **state)
{
    (void)state;
    char err[256];
    auth_table *t = parse(hashed(good), err);
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
    auth_table *t = parse(hashed(text), err);
    assert_null(t);
    if (!strstr(err, needle))
        fail_msg("'%s': error '%s' lacks '%s'", text, err, needle);
}

static void test_bad(void **state)
{
    (void)state;
    expect_bad("a {tok}\n", "line 1");
    expect_bad("# ok\na {tok} read extra\n", "line 2: want options as key=value");
    expect_bad("a {tok} reed\n", "bad scopes");
    expect_bad("a {tok} read,\n", "bad scopes");
    expect_bad("a {tok} ,read\n", "bad scopes");
    expect_bad("a {tok} read,,submit\n", "bad scopes");
    expect_bad("a {tok1} read\nb {tok1} submit\n", "line 2: the token of line 1 repeated");
    expect_bad("a {tok1} read\na {tok2} submit\n", "line 2: name 'a' repeated");
    expect_bad("a/b {tok} read\n", "a name is");
    expect_bad("a sha256:00 read\n", "must be sha256: and 64 hex digits");
    expect_bad("a {tok} read rate=5\n", "rate= of 'a'");
    expect_bad("a {tok} read rate=0/s\n", "rate= of 'a'");
    expect_bad("a {tok} read rate=1/s rate=2/s\n", "given twice");
    expect_bad("a {tok} read burst=3\n", "needs rate=");
    expect_bad("a {tok} read burst=x rate=1/s\n", "burst= of 'a'");
    expect_bad("a {tok} read colour=blue\n", "unknown option 'colour'");
    expect_bad("a {tok} read queues=\n", "has no value");
    expect_bad("a {tok} read queues=a,,b\n", "empty item");
    expect_bad("a {tok} read env=X\n", "limits nothing without command=");
    expect_bad("a {tok} read command=x env=BASH_ENV\n", "'BASH_ENV' would let a job");
    expect_bad("a {tok} read command=x env=LD_PRELOAD\n", "'LD_PRELOAD' would let a job");
    expect_bad("a {tok} read command=x env=PATH\n", "'PATH' would let a job");
    expect_bad("a {tok} read command=x env=1X\n", "not a variable name");
    expect_bad("a {tok} read command=\"x\n", "unterminated quote");
    expect_bad("a {tok} re\"ad\"\n", "quotes are for option values only, not the scopes");
    expect_bad("\"a\" {tok} read\n", "not the name");
    /* a token in the clear: refused, naming the line and the entry, never
     * quoting the token */
    char err[256] = "";
    assert_null(parse("# tokens\nci plain-secret-0123 submit,read\n", err));
    assert_non_null(strstr(err, "line 2: the token of 'ci' is not hashed"));
    assert_null(strstr(err, "plain-secret"));
    char nul[] = "a b read\0x\n";
    assert_null(auth_parse(nul, sizeof nul - 1, err, sizeof err));
    assert_non_null(strstr(err, "NUL byte"));
}

static void test_options(void **state)
{
    (void)state;
    char err[256] = "", why[512];
    auth_rate rate;
    auth_table *t = parse(hashed("ci {t1} submit queues=default,gpu rate=30/m burst=5\n"
                                 "deploy {t2} submit command=\"/srv/deploy *\" command=uptime env=TARGET,MODE\n"
                                 "hash {t3} submit command=\"echo '#1' \\\"q\\\"\"   # a comment\n"
                                 "free {t4} admin\n"),
                         err);
    if (!t)
        fail_msg("%s", err);
    const char *env1[] = {"TARGET"}, *env2[] = {"TARGET", "BASH_ENV"};
    assert_int_equal(auth_job_check(t, "ci", "rm -rf /", "gpu", NULL, 0, &rate, why, sizeof why), AUTH_JOB_OK);
    assert_true(rate.rate_per_s > 0.49 && rate.rate_per_s < 0.51);
    assert_int_equal(rate.burst, 5);
    assert_string_equal(rate.text, "30/m");
    assert_int_equal(auth_job_check(t, "ci", "true", "other", NULL, 0, &rate, why, sizeof why), AUTH_JOB_QUEUE);
    assert_non_null(strstr(why, "queue 'other'"));
    assert_non_null(strstr(why, "'default', 'gpu'"));
    assert_int_equal(auth_job_check(t, "deploy", "/srv/deploy web", "x", env1, 1, &rate, why, sizeof why),
                     AUTH_JOB_OK);
    assert_true(rate.rate_per_s == 0);
    assert_int_equal(auth_job_check(t, "deploy", "uptime", "x", NULL, 0, &rate, why, sizeof why), AUTH_JOB_OK);
    assert_int_equal(auth_job_check(t, "deploy", "uptime; id", "x", NULL, 0, &rate, why, sizeof why),
                     AUTH_JOB_COMMAND);
    assert_non_null(strstr(why, "'/srv/deploy *', 'uptime'"));
    assert_int_equal(auth_job_check(t, "deploy", "uptime", "x", env2, 2, &rate, why, sizeof why), AUTH_JOB_ENV);
    assert_non_null(strstr(why, "env 'BASH_ENV'"));
    assert_int_equal(auth_job_check(t, "hash", "echo '#1' \"q\"", "x", NULL, 0, &rate, why, sizeof why),
                     AUTH_JOB_OK);
    assert_int_equal(auth_job_check(t, "free", "anything", "any", env2, 2, &rate, why, sizeof why), AUTH_JOB_OK);
    assert_int_equal(auth_job_check(t, "gone", "x", "x", NULL, 0, &rate, why, sizeof why), AUTH_JOB_UNKNOWN);
    auth_table_free(t);
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

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_store_reload(void **state)
{
    (void)state;
    char path[] = "/tmp/test_api_auth.XXXXXX", err[256], why[256];
    auth_rate rate;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, hashed("one {tok-one} read\n"));
    auth_table *t = auth_load(path, err, sizeof err);
    assert_non_null(t);
    auth_store *s = auth_store_new(t);
    assert_non_null(s);
    assert_int_equal(auth_store_check(s, "Bearer tok-one", SCOPE_READ, NULL), AUTH_OK);
    write_file(path, hashed("two {tok-two} read,submit queues=q\n"));
    assert_int_equal(auth_store_reload(s, path, err, sizeof err), 1);
    assert_int_equal(auth_store_check(s, "Bearer tok-one", SCOPE_READ, NULL), AUTH_INVALID);
    assert_int_equal(auth_store_check(s, "Bearer tok-two", SCOPE_SUBMIT, NULL), AUTH_OK);
    assert_int_equal(auth_store_job_check(s, "two", "x", "p", NULL, 0, &rate, why, sizeof why), AUTH_JOB_QUEUE);
    /* a broken file keeps the old tokens */
    write_file(path, "broken\n");
    assert_int_equal(auth_store_reload(s, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(auth_store_check(s, "Bearer tok-two", SCOPE_SUBMIT, NULL), AUTH_OK);
    unlink(path);
    assert_int_equal(auth_store_reload(s, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    auth_store_free(s);
}

static void test_tokhash(void **state)
{
    (void)state;
    char h[TOKHASH_TEXT_LEN + 1], a[TOKHASH_TOKEN_LEN + 1], b[TOKHASH_TOKEN_LEN + 1];
    unsigned char d[TOKHASH_LEN], e[TOKHASH_LEN];
    /* FIPS 180-2's "abc" */
    assert_int_equal(tokhash_text("abc", 3, h), 0);
    assert_string_equal(h, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(tokhash_parse(h, strlen(h), d), 0);
    assert_int_equal(tokhash_digest("abc", 3, e), 0);
    assert_true(tokhash_equal(d, e));
    e[31] ^= 1;
    assert_false(tokhash_equal(d, e));
    assert_int_equal(tokhash_parse(h, strlen(h) - 1, d), -1);
    h[10] = 'g';
    assert_int_equal(tokhash_parse(h, strlen(h), d), -1);
    assert_int_equal(tokhash_new(a), 0);
    assert_int_equal(tokhash_new(b), 0);
    assert_int_equal(strlen(a), TOKHASH_TOKEN_LEN);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     TOKHASH_TOKEN_LEN);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),   cmocka_unit_test(test_headers),
        cmocka_unit_test(test_bad),     cmocka_unit_test(test_options),
        cmocka_unit_test(test_empty),   cmocka_unit_test(test_store_reload),
        cmocka_unit_test(test_tokhash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
