/* Unit tests of lib/store against the real MongoDB server at BX_MONGO_URL
 * (default mongodb://127.0.0.1:27017/; tests/run.sh points it at the
 * FerretDB it reuses or starts). Starts nothing itself: an unreachable
 * server fails the run with a message saying so. Works in a database of
 * its own, dropped at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "clock.h"
#include "id.h"
#include "store.h"

static char db[64];
static char err[512];
static bx_store *st;

static const char *mongo_url(void)
{
    const char *u = getenv("BX_MONGO_URL");
    return u && *u ? u : "mongodb://127.0.0.1:27017/";
}

/* A result event as the worker publishes it; new reference. */
static json_t *ev_new(const char *id, int attempt, const char *state, const char *queue)
{
    return json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:{s:s},s:i,s:s,s:b,s:n,s:f,s:[i,s]}",
                     "id", id, "command", "echo hi", "queue", queue, "priority", 0,
                     "attempt", attempt, "state", state, "submitted_at",
                     "2026-11-23T11:46:35.123Z", "labels", "team", "a", "exit_code", 0,
                     "stdout", "hi \xc3\xa9\n", "stdout_truncated", 0, "reason", "ratio", 0.5,
                     "list", 1, "two");
}

static int upsert1(json_t *ev)
{
    json_t *one[1] = {ev};
    return store_upsert(st, one, 1, err, sizeof err);
}

static json_t *get_ok(const char *id)
{
    json_t *doc = store_get(st, id, err, sizeof err);
    if (!doc)
        fail_msg("store_get(%s): '%s'", id, err);
    return doc;
}

static int attempt_of(const char *id)
{
    json_t *doc = get_ok(id);
    int a = (int)json_integer_value(json_object_get(doc, "attempt"));
    json_decref(doc);
    return a;
}

static const char *state_of(const char *id, char *buf, size_t n)
{
    json_t *doc = get_ok(id);
    snprintf(buf, n, "%s", json_string_value(json_object_get(doc, "state")));
    json_decref(doc);
    return buf;
}

static void drop_db(void)
{
    mongoc_client_t *c = mongoc_client_new(mongo_url());
    if (!c)
        return;
    mongoc_database_t *d = mongoc_client_get_database(c, db);
    mongoc_database_drop(d, NULL);
    mongoc_database_destroy(d);
    mongoc_client_destroy(c);
}

static int group_setup(void **state)
{
    (void)state;
    const char *ns = getenv("BX_NAMESPACE");
    snprintf(db, sizeof db, "%s_store_%ld", ns && *ns ? ns : "test", (long)getpid());
    st = store_new(mongo_url(), db, err, sizeof err);
    if (!st) {
        fprintf(stderr, "store_new(%s): %s\n", mongo_url(), err);
        return -1;
    }
    if (store_ping(st, err, sizeof err) < 0) {
        fprintf(stderr,
                "MongoDB is unreachable at BX_MONGO_URL=%s (%s): start one (tests/run.sh does)\n",
                mongo_url(), err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    store_free(st);
    drop_db();
    return 0;
}

static void test_new_rejects_bad_input(void **state)
{
    (void)state;
    assert_null(store_new("http://nope", "x", err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(store_new(mongo_url(), "has.dot", err, sizeof err));
    assert_null(store_new(mongo_url(), "", err, sizeof err));
    store_free(NULL);
}

static void test_indexes_idempotent(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (store_ensure_indexes(st, err, sizeof err) != 0)
            fail_msg("store_ensure_indexes, call %d: %s", i + 1, err);
}

static void test_round_trip(void **state)
{
    (void)state;
    char id[ID_LEN];
    id_new(id);
    json_t *ev = ev_new(id, 1, "succeeded", "default");
    assert_int_equal(upsert1(ev), 0);
    json_t *doc = get_ok(id);
    /* the API's shape: "id" first, no "_id", every field and type kept */
    assert_string_equal(json_object_iter_key(json_object_iter(doc)), "id");
    assert_null(json_object_get(doc, "_id"));
    assert_true(json_equal(doc, ev));
    assert_true(json_is_integer(json_object_get(doc, "attempt")));
    assert_true(json_is_real(json_object_get(doc, "ratio")));
    assert_true(json_is_null(json_object_get(doc, "reason")));
    assert_true(json_is_false(json_object_get(doc, "stdout_truncated")));
    json_decref(doc);
    /* a big integer stays exact */
    json_object_set_new(ev, "stdout_bytes", json_integer(5000000000LL));
    assert_int_equal(upsert1(ev), 0);
    doc = get_ok(id);
    assert_int_equal(json_integer_value(json_object_get(doc, "stdout_bytes")), 5000000000LL);
    json_decref(doc);
    json_decref(ev);
}

static void test_get_absent(void **state)
{
    (void)state;
    char id[ID_LEN];
    id_new(id);
    strcpy(err, "junk");
    assert_null(store_get(st, id, err, sizeof err));
    assert_string_equal(err, "");
}

static void test_duplicate_is_one_record(void **state)
{
    (void)state;
    char id[ID_LEN];
    id_new(id);
    json_t *ev = ev_new(id, 1, "succeeded", "dupq");
    json_t *batch[3] = {ev, ev, ev};
    assert_int_equal(store_upsert(st, batch, 3, err, sizeof err), 0);
    assert_int_equal(upsert1(ev), 0); /* a redelivery, later */
    store_query q = {.queue = "dupq", .limit = 10};
    json_t *h = store_history(st, &q, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(json_array_size(json_object_get(h, "jobs")), 1);
    json_decref(h);
    json_decref(ev);
}

static void test_attempt_fence(void **state)
{
    (void)state;
    char id[ID_LEN], buf[32];
    id_new(id);
    json_t *a2 = ev_new(id, 2, "succeeded", "default");
    json_t *a1 = ev_new(id, 1, "failed", "default");
    json_t *a3 = ev_new(id, 3, "timed_out", "default");
    assert_int_equal(upsert1(a2), 0);
    assert_int_equal(upsert1(a1), 0); /* stale: done, not an error */
    assert_int_equal(attempt_of(id), 2);
    assert_string_equal(state_of(id, buf, sizeof buf), "succeeded");
    assert_int_equal(upsert1(a3), 0);
    assert_int_equal(attempt_of(id), 3);
    /* same attempt, new content: the last one wins */
    json_object_set_new(a3, "state", json_string("cancelled"));
    assert_int_equal(upsert1(a3), 0);
    assert_string_equal(state_of(id, buf, sizeof buf), "cancelled");
    json_decref(a1);
    json_decref(a2);
    json_decref(a3);
}

/* One batch mixing new ids, a stale one, a changed one and in-batch
 * duplicates: FerretDB ends an update command at its first failure, so
 * this catches a write path that would lose the rest of the batch. */
static void test_mixed_batch(void **state)
{
    (void)state;
    char ids[6][ID_LEN];
    for (int i = 0; i < 6; i++)
        id_new(ids[i]);
    json_t *pre_hi = ev_new(ids[0], 5, "succeeded", "mix");
    json_t *pre_lo = ev_new(ids[1], 1, "failed", "mix");
    json_t *pre[2] = {pre_hi, pre_lo};
    assert_int_equal(store_upsert(st, pre, 2, err, sizeof err), 0);

    json_t *b[8] = {
        ev_new(ids[0], 4, "failed", "mix"),    /* stale: 5 is stored */
        ev_new(ids[2], 1, "succeeded", "mix"), /* new */
        ev_new(ids[1], 2, "succeeded", "mix"), /* higher: replaces */
        ev_new(ids[3], 1, "failed", "mix"),    /* in-batch: 1, 3, 2 -> 3 */
        ev_new(ids[3], 3, "succeeded", "mix"),
        ev_new(ids[3], 2, "timed_out", "mix"),
        ev_new(ids[4], 1, "succeeded", "mix"), /* new */
        ev_new(ids[5], 1, "succeeded", "mix"), /* new, after everything */
    };
    assert_int_equal(store_upsert(st, b, 8, err, sizeof err), 0);
    assert_int_equal(attempt_of(ids[0]), 5);
    assert_int_equal(attempt_of(ids[1]), 2);
    assert_int_equal(attempt_of(ids[2]), 1);
    assert_int_equal(attempt_of(ids[3]), 3);
    assert_int_equal(attempt_of(ids[4]), 1);
    assert_int_equal(attempt_of(ids[5]), 1);
    for (int i = 0; i < 8; i++)
        json_decref(b[i]);
    json_decref(pre_hi);
    json_decref(pre_lo);
}

static void test_unstorable_events(void **state)
{
    (void)state;
    char id[ID_LEN];
    id_new(id);
    json_t *ok = ev_new(id, 1, "succeeded", "bad");
    json_t *dot = json_deep_copy(ok), *dollar = json_deep_copy(ok), *noid = json_deep_copy(ok),
           *under = json_deep_copy(ok);
    json_object_set_new(json_object_get(dot, "labels"), "a.b", json_string("x"));
    json_object_set_new(json_object_get(dollar, "labels"), "$where", json_string("x"));
    json_object_del(noid, "id");
    json_object_set_new(under, "_id", json_string("x"));
    json_t *cases[4] = {dot, dollar, noid, under};
    for (int i = 0; i < 4; i++) {
        json_t *b[2] = {ok, cases[i]};
        err[0] = 0;
        assert_int_equal(store_upsert(st, b, 2, err, sizeof err), -1);
        assert_true(strlen(err) > 0);
        json_decref(cases[i]);
    }
    /* nothing of a rejected batch was written */
    strcpy(err, "junk");
    assert_null(store_get(st, id, err, sizeof err));
    assert_string_equal(err, "");
    assert_int_equal(store_upsert(st, &ok, 1, err, sizeof err), 0);
    json_decref(ok);
}

/* 25 jobs in queue "hist", ids in submission order. */
static char hist_ids[25][ID_LEN];
static void seed_history(void)
{
    static int done;
    if (done)
        return;
    json_t *b[25];
    for (int i = 0; i < 25; i++) {
        char ts[40];
        id_new(hist_ids[i]);
        usleep(1000); /* distinct ms, so the ids sort as made */
        b[i] = ev_new(hist_ids[i], 1, i % 5 == 0 ? "failed" : "succeeded", "hist");
        snprintf(ts, sizeof ts, "2026-01-01T00:00:%02d.000Z", i);
        json_object_set_new(b[i], "submitted_at", json_string(ts));
        json_object_set_new(json_object_get(b[i], "labels"), "n", json_string(i % 2 ? "odd" : "even"));
    }
    assert_int_equal(store_upsert(st, b, 25, err, sizeof err), 0);
    for (int i = 0; i < 25; i++)
        json_decref(b[i]);
    done = 1;
}

static size_t page(const store_query *q, char *next, size_t nextlen, int *first_idx)
{
    json_t *h = store_history(st, q, err, sizeof err);
    if (!h)
        fail_msg("store_history: %s", err);
    json_t *jobs = json_object_get(h, "jobs");
    json_t *n = json_object_get(h, "next");
    size_t k = json_array_size(jobs);
    *first_idx = -1;
    if (k) {
        const char *id = json_string_value(json_object_get(json_array_get(jobs, 0), "id"));
        for (int i = 0; i < 25; i++)
            if (!strcmp(id, hist_ids[i]))
                *first_idx = i;
        /* newest first */
        for (size_t i = 1; i < k; i++)
            assert_true(strcmp(json_string_value(json_object_get(json_array_get(jobs, i - 1), "id")),
                               json_string_value(json_object_get(json_array_get(jobs, i), "id"))) > 0);
        assert_null(json_object_get(json_array_get(jobs, 0), "_id"));
    }
    if (json_is_string(n)) {
        snprintf(next, nextlen, "%s", json_string_value(n));
        /* next is the last id of this page */
        assert_string_equal(next, json_string_value(json_object_get(json_array_get(jobs, k - 1), "id")));
    } else {
        assert_true(json_is_null(n));
        next[0] = 0;
    }
    json_decref(h);
    return k;
}

static void test_history_paging(void **state)
{
    (void)state;
    char next[ID_LEN];
    int first;
    seed_history();
    store_query q = {.queue = "hist", .limit = 10};
    assert_int_equal(page(&q, next, sizeof next, &first), 10);
    assert_int_equal(first, 24);
    assert_string_equal(next, hist_ids[15]);
    q.before = next;
    char n2[ID_LEN];
    assert_int_equal(page(&q, n2, sizeof n2, &first), 10);
    assert_int_equal(first, 14);
    q.before = n2;
    char n3[ID_LEN];
    assert_int_equal(page(&q, n3, sizeof n3, &first), 5);
    assert_int_equal(first, 4);
    assert_string_equal(n3, "");
    /* exactly a page left: no next */
    store_query q2 = {.queue = "hist", .limit = 25};
    assert_int_equal(page(&q2, next, sizeof next, &first), 25);
    assert_string_equal(next, "");
}

static void test_history_filters(void **state)
{
    (void)state;
    char next[ID_LEN];
    int first;
    seed_history();
    store_query q = {.queue = "hist", .state = "failed", .limit = 100};
    assert_int_equal(page(&q, next, sizeof next, &first), 5);
    assert_int_equal(first, 20);
    store_query ql = {.queue = "hist", .label_key = "n", .label_value = "odd", .limit = 100};
    assert_int_equal(page(&ql, next, sizeof next, &first), 12);
    assert_int_equal(first, 23);
    store_query qt = {.queue = "hist", .since = "2026-01-01T00:00:10.000Z",
                      .until = "2026-01-01T00:00:20.000Z", .limit = 100};
    assert_int_equal(page(&qt, next, sizeof next, &first), 10);
    assert_int_equal(first, 19);
    store_query qn = {.queue = "no-such-queue", .limit = 5};
    assert_int_equal(page(&qn, next, sizeof next, &first), 0);
}

static void test_history_bad_query(void **state)
{
    (void)state;
    store_query q = {.limit = 0};
    assert_null(store_history(st, &q, err, sizeof err));
    q.limit = 1001;
    assert_null(store_history(st, &q, err, sizeof err));
    store_query ql = {.label_key = "a.b", .label_value = "x", .limit = 5};
    assert_null(store_history(st, &ql, err, sizeof err));
    assert_true(strlen(err) > 0);
}

/* API threads read while the recorder writes: one pool, no data races
 * (run it under TSan/helgrind to check more than "no crash"). */
static void *reader(void *arg)
{
    char e[256];
    (void)arg;
    for (int i = 0; i < 20; i++) {
        store_query q = {.queue = "hist", .limit = 5};
        json_t *h = store_history(st, &q, e, sizeof e);
        if (!h)
            return (void *)1;
        json_decref(h);
        json_t *d = store_get(st, hist_ids[i], e, sizeof e);
        if (!d)
            return (void *)1;
        json_decref(d);
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    pthread_t t[4];
    seed_history();
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, NULL), 0);
    for (int i = 0; i < 10; i++) {
        char id[ID_LEN];
        id_new(id);
        json_t *ev = ev_new(id, 1, "succeeded", "conc");
        assert_int_equal(upsert1(ev), 0);
        json_decref(ev);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
}

/* A server that is down: every call fails with a message, none hangs
 * for long, none crashes. */
static void test_server_down(void **state)
{
    (void)state;
    char e[512], id[ID_LEN];
    bx_store *d = store_new("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", "down", e,
                            sizeof e);
    assert_non_null(d);
    int64_t t0 = clock_mono_ms();
    assert_int_equal(store_ping(d, e, sizeof e), -1);
    assert_true(strlen(e) > 0);
    id_new(id);
    json_t *ev = ev_new(id, 1, "succeeded", "down");
    assert_int_equal(store_upsert(d, &ev, 1, e, sizeof e), -1);
    e[0] = 0;
    assert_null(store_get(d, id, e, sizeof e));
    assert_true(strlen(e) > 0);
    store_query q = {.limit = 5};
    assert_null(store_history(d, &q, e, sizeof e));
    assert_int_equal(store_ensure_indexes(d, e, sizeof e), -1);
    assert_true(clock_mono_ms() - t0 < 10000);
    json_decref(ev);
    store_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_input),
        cmocka_unit_test(test_indexes_idempotent),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_get_absent),
        cmocka_unit_test(test_duplicate_is_one_record),
        cmocka_unit_test(test_attempt_fence),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_unstorable_events),
        cmocka_unit_test(test_history_paging),
        cmocka_unit_test(test_history_filters),
        cmocka_unit_test(test_history_bad_query),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_server_down),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
