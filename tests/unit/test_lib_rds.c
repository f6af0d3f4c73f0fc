/* Unit tests of lib/rds against the real Redis at BX_REDIS_URL (default
 * redis://127.0.0.1:6379/0), in a namespace of their own that is deleted
 * at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "id.h"
#include "names.h"
#include "rds.h"
#include "redis_fixture.h"

static int group_setup(void **state) { return redis_fixture_setup(state, "test_lib_rds"); }

static int group_teardown(void **state) { return redis_fixture_teardown(state); }

static int put(bx_redis *r, const char *id, const char *st, int attempt, int ttl)
{
    char doc[256];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"state\":\"%s\",\"attempt\":%d}", id, st, attempt);
    err[0] = 0;
    return status_put(r, ns, id, st, attempt, doc, strlen(doc), ttl, err, sizeof err);
}

/* Asserts the stored status; returns nothing, frees what it got. */
static void expect_status(bx_redis *r, const char *id, const char *st, int attempt)
{
    char *state = (char *)"unset";
    int at = -7;
    err[0] = 'x';
    char *doc = status_get(r, ns, id, &state, &at, err, sizeof err);
    if (!doc)
        fail_msg("status_get(%s): no doc (err '%s')", id, err);
    assert_string_equal(state, st);
    assert_int_equal(at, attempt);
    char want[256];
    snprintf(want, sizeof want, "{\"id\":\"%s\",\"state\":\"%s\",\"attempt\":%d}", id, st, attempt);
    assert_string_equal(doc, want);
    free(doc);
    free(state);
}

static long long key_ttl(bx_redis *r, const char *id)
{
    char key[NAME_MAX_LEN];
    name_key(key, sizeof key, ns, "job", id);
    redisReply *rep = rds_cmd(r, err, sizeof err, "TTL %s", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    long long t = rep->integer;
    freeReplyObject(rep);
    return t;
}

static void test_roundtrip(void **state)
{
    bx_redis *r = *state;
    char id[ID_LEN];
    id_new(id);
    /* nothing yet: NULL with an empty err */
    char *st = (char *)"unset";
    int at = -7;
    err[0] = 'x';
    assert_null(status_get(r, ns, id, &st, &at, err, sizeof err));
    assert_string_equal(err, "");
    assert_null(st);
    assert_int_equal(put(r, id, ST_QUEUED, 1, 60), 1);
    expect_status(r, id, ST_QUEUED, 1);
    assert_int_equal(key_ttl(r, id), -1); /* live states never expire */
    assert_int_equal(put(r, id, ST_RUNNING, 1, 60), 1);
    expect_status(r, id, ST_RUNNING, 1);
    /* out-params may be NULL */
    char *doc = status_get(r, ns, id, NULL, NULL, err, sizeof err);
    assert_non_null(doc);
    free(doc);
    /* the key is the one names.h makes */
    char key[NAME_MAX_LEN];
    name_key(key, sizeof key, ns, "job", id);
    redisReply *rep = rds_cmd(r, err, sizeof err, "HGET %s state", key);
    assert_non_null(rep);
    assert_string_equal(rep->str, "running");
    freeReplyObject(rep);
}

static void test_binary_doc(void **state)
{
    bx_redis *r = *state;
    char id[ID_LEN];
    id_new(id);
    static const char doc[] = "{\"x\":\"a\0b\"}"; /* a NUL must not cut the doc short */
    assert_int_equal(status_put(r, ns, id, ST_QUEUED, 1, doc, sizeof doc - 1, 0, err, sizeof err), 1);
    char key[NAME_MAX_LEN];
    name_key(key, sizeof key, ns, "job", id);
    redisReply *rep = rds_cmd(r, err, sizeof err, "HSTRLEN %s doc", key);
    assert_non_null(rep);
    assert_int_equal(rep->integer, sizeof doc - 1);
    freeReplyObject(rep);
}

static void test_lower_attempt_refused(void **state)
{
    bx_redis *r = *state;
    char id[ID_LEN];
    id_new(id);
    assert_int_equal(put(r, id, ST_RUNNING, 3, 60), 1);
    assert_int_equal(put(r, id, ST_RUNNING, 2, 60), 0);
    assert_int_equal(put(r, id, ST_QUEUED, 1, 60), 0);
    assert_int_equal(put(r, id, ST_SUCCEEDED, 2, 60), 0); /* even a terminal one */
    expect_status(r, id, ST_RUNNING, 3);
    /* "queued" is where an attempt starts: a late one (the API's write,
     * held up while Redis was paused) never takes a running attempt back */
    assert_int_equal(put(r, id, ST_QUEUED, 3, 60), 0);
    expect_status(r, id, ST_RUNNING, 3);
    assert_int_equal(put(r, id, ST_QUEUED, 4, 60), 1);
    assert_int_equal(put(r, id, ST_QUEUED, 4, 60), 1); /* the same write again */
    assert_int_equal(put(r, id, ST_RUNNING, 4, 60), 1);
    expect_status(r, id, ST_RUNNING, 4);
}

static void test_terminal_final(void **state)
{
    bx_redis *r = *state;
    static const char *const term[] = {ST_SUCCEEDED, ST_FAILED, ST_TIMED_OUT, ST_CANCELLED,
                                       ST_REJECTED};
    for (size_t i = 0; i < sizeof term / sizeof term[0]; i++) {
        char id[ID_LEN];
        id_new(id);
        assert_int_equal(put(r, id, ST_RUNNING, 1, 60), 1);
        assert_int_equal(put(r, id, term[i], 1, 60), 1);
        /* a late "running" of the same attempt, or another terminal, changes nothing */
        assert_int_equal(put(r, id, ST_RUNNING, 1, 60), 0);
        assert_int_equal(put(r, id, ST_QUEUED, 1, 60), 0);
        assert_int_equal(put(r, id, i ? ST_SUCCEEDED : ST_FAILED, 1, 60), 0);
        expect_status(r, id, term[i], 1);
    }
}

static void test_higher_attempt_overrides(void **state)
{
    bx_redis *r = *state;
    char id[ID_LEN];
    id_new(id);
    assert_int_equal(put(r, id, ST_FAILED, 1, 60), 1);
    long long t = key_ttl(r, id);
    assert_true(t > 0 && t <= 60);
    /* the retry: queued again as attempt 2, and it no longer expires */
    assert_int_equal(put(r, id, ST_QUEUED, 2, 60), 1);
    expect_status(r, id, ST_QUEUED, 2);
    assert_int_equal(key_ttl(r, id), -1);
    assert_int_equal(put(r, id, ST_FAILED, 1, 60), 0); /* the old attempt's late result */
    assert_int_equal(put(r, id, ST_SUCCEEDED, 2, 60), 1);
    expect_status(r, id, ST_SUCCEEDED, 2);
    assert_int_equal(put(r, id, ST_SUCCEEDED, 3, 60), 1); /* skipping ahead is allowed */
    expect_status(r, id, ST_SUCCEEDED, 3);
}

static void test_terminal_ttl(void **state)
{
    bx_redis *r = *state;
    char id[ID_LEN];
    id_new(id);
    assert_int_equal(put(r, id, ST_RUNNING, 1, 100), 1);
    assert_int_equal(key_ttl(r, id), -1);
    assert_int_equal(put(r, id, ST_SUCCEEDED, 1, 100), 1);
    long long t = key_ttl(r, id);
    assert_true(t > 0 && t <= 100);
    /* ttl 0 keeps it */
    id_new(id);
    assert_int_equal(put(r, id, ST_CANCELLED, 1, 0), 1);
    assert_int_equal(key_ttl(r, id), -1);
    /* and it really expires */
    id_new(id);
    assert_int_equal(put(r, id, ST_REJECTED, 1, 1), 1);
    t = key_ttl(r, id);
    assert_true(t > 0 && t <= 1);
    char *doc = NULL;
    for (int i = 0; i < 40; i++) { /* at most 4 s */
        usleep(100000);
        err[0] = 'x';
        doc = status_get(r, ns, id, NULL, NULL, err, sizeof err);
        if (!doc)
            break;
        free(doc);
    }
    assert_null(doc);
    assert_string_equal(err, "");
}

static void test_rds_new_bad_url(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "http://127.0.0.1:6379/0", "redis:/127.0.0.1", "redis://", "redis://:6379/0",
        "redis://h:0", "redis://h:99999", "redis://h:abc", "redis://h:-1", "redis://pw@", "redis://h:4294973591",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        bx_redis *r = rds_new(bad[i], err, sizeof err);
        if (r) {
            rds_free(r);
            fail_msg("rds_new accepted '%s'", bad[i]);
        }
        assert_true(strlen(err) > 0);
    }
    /* good ones, which connect lazily: none of these is contacted */
    static const char *const good[] = {"redis://127.0.0.1:6379/0", "redis://localhost",
                                       "redis://:secret@h:7000/3", "redis://h:6379"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        bx_redis *r = rds_new(good[i], err, sizeof err);
        if (!r)
            fail_msg("rds_new refused '%s': %s", good[i], err);
        rds_free(r);
    }
    rds_free(NULL);
}

static void test_server_down(void **state)
{
    (void)state;
    bx_redis *r = rds_new("redis://127.0.0.1:1/0", err, sizeof err);
    assert_non_null(r); /* lazy: a down server is no error yet */
    int64_t t0 = clock_mono_ms();
    err[0] = 0;
    assert_null(rds_ctx(r, err, sizeof err));
    assert_true(strlen(err) > 0);
    err[0] = 0;
    assert_null(rds_cmd(r, err, sizeof err, "PING"));
    assert_true(strlen(err) > 0);
    err[0] = 0;
    assert_int_equal(status_put(r, ns, "0190c3a2-7b1e-7c2d-8e3f-0123456789ab", ST_QUEUED, 1,
                                "{}", 2, 0, err, sizeof err),
                     -1);
    assert_true(strlen(err) > 0);
    err[0] = 0;
    char *st = (char *)"unset";
    assert_null(status_get(r, ns, "0190c3a2-7b1e-7c2d-8e3f-0123456789ab", &st, NULL, err,
                           sizeof err));
    assert_true(strlen(err) > 0); /* a failure, unlike "no such job" */
    assert_null(st);
    assert_true(clock_mono_ms() - t0 < 10000); /* refused at once, no long waits */
    rds_free(r);
}

/* An error reply comes back as NULL with Redis's text. */
static void test_error_reply(void **state)
{
    bx_redis *r = *state;
    err[0] = 0;
    assert_null(rds_cmd(r, err, sizeof err, "NOSUCHCOMMAND"));
    assert_non_null(strstr(err, "redis"));
    /* the connection is still good afterwards */
    redisReply *rep = rds_cmd(r, err, sizeof err, "PING");
    assert_non_null(rep);
    freeReplyObject(rep);
    /* a key of the wrong type makes status_get fail, not report "no job" */
    char key[NAME_MAX_LEN];
    name_key(key, sizeof key, ns, "job", "wrongtype");
    rep = rds_cmd(r, err, sizeof err, "SET %s x", key);
    freeReplyObject(rep);
    err[0] = 0;
    assert_null(status_get(r, ns, "wrongtype", NULL, NULL, err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_int_equal(status_put(r, ns, "wrongtype", ST_QUEUED, 1, "{}", 2, 0, err, sizeof err), -1);
}

/* A connection that breaks (here: killed by CLIENT KILL) is replaced on
 * the next command without the caller noticing. */
static void test_reconnect(void **state)
{
    (void)state;
    bx_redis *r = rds_new(redis_url(), err, sizeof err);
    assert_non_null(r);
    redisReply *rep = rds_cmd(r, err, sizeof err, "CLIENT ID");
    assert_non_null(rep);
    long long cid = rep->integer;
    freeReplyObject(rep);
    bx_redis *k = rds_new(redis_url(), err, sizeof err);
    rep = rds_cmd(k, err, sizeof err, "CLIENT KILL ID %lld", cid);
    assert_non_null(rep);
    freeReplyObject(rep);
    rds_free(k);
    rep = rds_cmd(r, err, sizeof err, "PING");
    if (!rep)
        fail_msg("no reconnect: %s", err);
    assert_string_equal(rep->str, "PONG");
    freeReplyObject(rep);
    rds_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_binary_doc),
        cmocka_unit_test(test_lower_attempt_refused),
        cmocka_unit_test(test_terminal_final),
        cmocka_unit_test(test_higher_attempt_overrides),
        cmocka_unit_test(test_terminal_ttl),
        cmocka_unit_test(test_rds_new_bad_url),
        cmocka_unit_test(test_server_down),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_reconnect),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
