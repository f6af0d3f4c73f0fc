/* Unit tests of api/statusbatch against the real Redis at BX_REDIS_URL
 * (default redis://127.0.0.1:6379/0), in a namespace of their own that is
 * deleted at the end: a pipelined write must do exactly what status_put
 * does, write by write. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "id.h"
#include "names.h"
#include "rds.h"
#include "redis_fixture.h"
#include "statusbatch.h"

static int group_setup(void **state) { return redis_fixture_setup(state, "test_api_statusbatch"); }

static int group_teardown(void **state) { return redis_fixture_teardown(state); }

static void doc_of(char *doc, size_t n, const char *id, const char *st, int attempt)
{
    snprintf(doc, n, "{\"id\":\"%.36s\",\"state\":\"%.16s\",\"attempt\":%d}", id, st, attempt);
}

/* One write through statusbatch, one through status_put, on two ids that
 * start alike: both must answer the same and leave the same status. */
static void same_as_status_put(bx_redis *r, const char *a, const char *b, const char *st,
                               int attempt, int ttl)
{
    char doc[256];
    doc_of(doc, sizeof doc, a, st, attempt);
    statusbatch_item it = {a, st, attempt, doc, strlen(doc), -7};
    assert_int_equal(statusbatch_put(r, ns, ttl, &it, 1, err, sizeof err), 0);
    doc_of(doc, sizeof doc, b, st, attempt);
    int want = status_put(r, ns, b, st, attempt, doc, strlen(doc), ttl, err, sizeof err);
    assert_int_equal(it.result, want);
    char *sa = NULL, *sb = NULL;
    int aa = -1, ab = -2;
    char *da = status_get(r, ns, a, &sa, &aa, err, sizeof err);
    char *db = status_get(r, ns, b, &sb, &ab, err, sizeof err);
    assert_non_null(da);
    assert_non_null(db);
    assert_string_equal(sa, sb);
    assert_int_equal(aa, ab);
    free(da);
    free(db);
    free(sa);
    free(sb);
    char ka[NAME_MAX_LEN], kb[NAME_MAX_LEN];
    name_key(ka, sizeof ka, ns, "job", a);
    name_key(kb, sizeof kb, ns, "job", b);
    redisReply *ta = rds_cmd(r, err, sizeof err, "TTL %s", ka);
    redisReply *tb = rds_cmd(r, err, sizeof err, "TTL %s", kb);
    assert_non_null(ta);
    assert_non_null(tb);
    assert_true((ta->integer > 0) == (tb->integer > 0));
    freeReplyObject(ta);
    freeReplyObject(tb);
}

static void test_fencing_matches(void **state)
{
    bx_redis *r = *state;
    char a[ID_LEN], b[ID_LEN];
    id_new(a);
    id_new(b);
    same_as_status_put(r, a, b, ST_QUEUED, 1, 60);    /* first write */
    same_as_status_put(r, a, b, ST_RUNNING, 1, 60);   /* forward */
    same_as_status_put(r, a, b, ST_QUEUED, 1, 60);    /* same attempt, not terminal: allowed */
    same_as_status_put(r, a, b, ST_FAILED, 1, 60);    /* terminal, expires */
    same_as_status_put(r, a, b, ST_RUNNING, 1, 60);   /* refused: terminal is final */
    same_as_status_put(r, a, b, ST_QUEUED, 2, 60);    /* a retry: higher attempt wins */
    same_as_status_put(r, a, b, ST_SUCCEEDED, 1, 60); /* refused: lower attempt */
    same_as_status_put(r, a, b, ST_SUCCEEDED, 2, 0);  /* terminal, kept (ttl 0) */
}

static void test_many(void **state)
{
    bx_redis *r = *state;
    enum { N = 300 };
    char ids[N][ID_LEN], docs[N][160];
    statusbatch_item it[N];
    for (int i = 0; i < N; i++) {
        id_new(ids[i]);
        doc_of(docs[i], sizeof docs[i], ids[i], ST_QUEUED, 1);
        it[i] = (statusbatch_item){ids[i], ST_QUEUED, 1, docs[i], strlen(docs[i]), -7};
    }
    /* one of them is already further along: its write is refused alone */
    char d[160];
    doc_of(d, sizeof d, ids[7], ST_CANCELLED, 1);
    assert_int_equal(status_put(r, ns, ids[7], ST_CANCELLED, 1, d, strlen(d), 60, err, sizeof err), 1);
    assert_int_equal(statusbatch_put(r, ns, 60, it, N, err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(it[i].result, i == 7 ? 0 : 1);
        char *st = NULL;
        char *doc = status_get(r, ns, ids[i], &st, NULL, err, sizeof err);
        assert_non_null(doc);
        assert_string_equal(st, i == 7 ? ST_CANCELLED : ST_QUEUED);
        free(doc);
        free(st);
    }
    assert_int_equal(statusbatch_put(r, ns, 60, it, 0, err, sizeof err), 0);
}

static void test_server_down(void **state)
{
    (void)state;
    bx_redis *down = rds_new("redis://127.0.0.1:1/0", err, sizeof err);
    assert_non_null(down);
    char id[ID_LEN];
    id_new(id);
    statusbatch_item it[2] = {{id, ST_QUEUED, 1, "{}", 2, 5}, {id, ST_QUEUED, 1, "{}", 2, 5}};
    err[0] = 0;
    assert_int_equal(statusbatch_put(down, ns, 60, it, 2, err, sizeof err), -1);
    assert_int_equal(it[0].result, -1);
    assert_int_equal(it[1].result, -1);
    assert_true(err[0] != 0);
    rds_free(down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fencing_matches),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_server_down),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
