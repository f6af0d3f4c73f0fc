/* Unit tests of worker/jobstate's scripts against the real Redis at
 * BX_REDIS_URL (default redis://127.0.0.1:6379/0), in a namespace of
 * their own that is deleted at the end: takeover of an expired attempt,
 * the fence that keeps the old attempt's writes out, giving a job back,
 * and the sweeper. Leases are expired by deleting their key. */
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
#include "jobstate.h"
#include "names.h"
#include "rds.h"
#include "redis_fixture.h"

#define LEASE_MS 30000
#define MAX_STARTS 5

static int group_setup(void **state) { return redis_fixture_setup(state, "test_jobstate"); }

static int group_teardown(void **state) { return redis_fixture_teardown(state); }

static begin_result begin(bx_redis *r, const char *id, int attempt, const char *owner, int from,
                          int *stored, char **sdoc)
{
    char doc[256];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"state\":\"running\",\"attempt\":%d,\"worker\":\"%s\"}",
             id, attempt, owner);
    return jobstate_begin(r, ns, id, attempt, owner, LEASE_MS, NULL, doc, strlen(doc), MAX_STARTS,
                          from, stored, sdoc, err, sizeof err);
}

static int finish(bx_redis *r, const char *id, const char *state, int attempt, const char *owner)
{
    char doc[256];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"state\":\"%s\",\"attempt\":%d,\"worker\":\"%s\"}",
             id, state, attempt, owner);
    return jobstate_finish(r, ns, id, state, attempt, owner, NULL, doc, strlen(doc), 60, err,
                           sizeof err);
}

/* The lease expires: its worker stopped renewing it. */
static void expire_lease(bx_redis *r, const char *id)
{
    char k[NAME_MAX_LEN];
    name_key(k, sizeof k, ns, "lease", id);
    freeReplyObject(rds_cmd(r, err, sizeof err, "DEL %s", k));
}

static void expect_status(bx_redis *r, const char *id, const char *st, int attempt)
{
    char *state = NULL;
    int at = 0;
    char *doc = status_get(r, ns, id, &state, &at, err, sizeof err);
    assert_non_null(doc);
    assert_string_equal(state, st);
    assert_int_equal(at, attempt);
    free(doc);
    free(state);
}

static int in_index(bx_redis *r, const char *id)
{
    char k[NAME_MAX_LEN];
    name_key(k, sizeof k, ns, "index", "running");
    redisReply *rep = rds_cmd(r, err, sizeof err, "ZSCORE %s %s", k, id);
    int in = rep && rep->type != REDIS_REPLY_NIL;
    freeReplyObject(rep);
    return in;
}

static void test_takeover_fences_the_old_attempt(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-takeover";
    int stored = 0;
    char *sdoc = NULL;
    assert_int_equal(begin(r, id, 1, "A", 0, NULL, NULL), BEGIN_OK);
    assert_true(in_index(r, id));
    /* held: another copy waits */
    assert_int_equal(begin(r, id, 1, "B", 0, &stored, &sdoc), BEGIN_LEASED);
    expire_lease(r, id);
    /* expired: not run again as attempt 1 */
    assert_int_equal(begin(r, id, 1, "B", 0, &stored, &sdoc), BEGIN_EXPIRED);
    assert_int_equal(stored, 1);
    assert_non_null(sdoc);
    assert_non_null(strstr(sdoc, "\"worker\":\"A\""));
    free(sdoc);
    assert_int_equal(begin(r, id, 2, "B", 1, NULL, NULL), BEGIN_OK);
    expect_status(r, id, "running", 2);
    /* A wakes up: its renewal learns it was superseded */
    jobstate_item it = {.id = id, .attempt = 1};
    assert_int_equal(jobstate_tick(r, ns, "A", LEASE_MS, &it, 1, err, sizeof err), 0);
    assert_true(it.lost);
    assert_true(it.superseded);
    /* its result, and its retry, are fenced out */
    assert_int_equal(finish(r, id, ST_SUCCEEDED, 1, "A"), 2);
    assert_int_equal(finish(r, id, ST_QUEUED, 2, "A"), 2);
    expect_status(r, id, "running", 2);
    assert_true(in_index(r, id));
    /* B's lease and renewal are untouched */
    jobstate_item itb = {.id = id, .attempt = 2};
    assert_int_equal(jobstate_tick(r, ns, "B", LEASE_MS, &itb, 1, err, sizeof err), 0);
    assert_false(itb.lost);
    assert_false(itb.superseded);
    assert_int_equal(finish(r, id, ST_SUCCEEDED, 2, "B"), 1);
    expect_status(r, id, "succeeded", 2);
    assert_false(in_index(r, id));
    /* a late copy of the message is done */
    assert_int_equal(begin(r, id, 1, "C", 0, NULL, NULL), BEGIN_DONE);
}

static void test_takeover_race_has_one_winner(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-race";
    int stored = 0;
    char *sdoc = NULL;
    assert_int_equal(begin(r, id, 1, "A", 0, NULL, NULL), BEGIN_OK);
    expire_lease(r, id);
    assert_int_equal(begin(r, id, 1, "B", 0, &stored, &sdoc), BEGIN_EXPIRED);
    free(sdoc);
    assert_int_equal(begin(r, id, 1, "C", 0, &stored, &sdoc), BEGIN_EXPIRED);
    free(sdoc);
    assert_int_equal(begin(r, id, 2, "B", 1, NULL, NULL), BEGIN_OK);
    assert_int_equal(begin(r, id, 2, "C", 1, NULL, NULL), BEGIN_LEASED);
    expect_status(r, id, "running", 2);
}

static void test_old_copy_takes_over_the_newest_attempt(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-old-copy";
    int stored = 0;
    char *sdoc = NULL;
    assert_int_equal(begin(r, id, 1, "A", 0, NULL, NULL), BEGIN_OK);
    expire_lease(r, id);
    assert_int_equal(begin(r, id, 1, "B", 0, &stored, &sdoc), BEGIN_EXPIRED);
    free(sdoc);
    assert_int_equal(begin(r, id, 2, "B", 1, NULL, NULL), BEGIN_OK);
    expire_lease(r, id); /* B dies too; the message still says attempt 1 */
    assert_int_equal(begin(r, id, 1, "C", 0, &stored, &sdoc), BEGIN_EXPIRED);
    assert_int_equal(stored, 2);
    free(sdoc);
    assert_int_equal(begin(r, id, 3, "C", 2, NULL, NULL), BEGIN_OK);
    expect_status(r, id, "running", 3);
}

static void test_takeovers_are_bounded_by_poison(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-poison";
    int stored = 0, attempt = 1;
    char *sdoc = NULL;
    assert_int_equal(begin(r, id, 1, "W0", 0, NULL, NULL), BEGIN_OK);
    for (int i = 1; i < MAX_STARTS; i++) {
        char owner[16];
        snprintf(owner, sizeof owner, "W%d", i);
        expire_lease(r, id);
        assert_int_equal(begin(r, id, 1, owner, 0, &stored, &sdoc), BEGIN_EXPIRED);
        free(sdoc);
        assert_int_equal(begin(r, id, stored + 1, owner, stored, NULL, NULL), BEGIN_OK);
        attempt = stored + 1;
    }
    expire_lease(r, id);
    assert_int_equal(begin(r, id, 1, "Wlast", 0, &stored, &sdoc), BEGIN_EXPIRED);
    free(sdoc);
    assert_int_equal(stored, attempt);
    assert_int_equal(begin(r, id, stored + 1, "Wlast", stored, NULL, NULL), BEGIN_POISON);
}

static void test_give_back_queues_the_same_attempt(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-given-back";
    assert_int_equal(begin(r, id, 1, "A", 0, NULL, NULL), BEGIN_OK);
    assert_int_equal(jobstate_release(r, ns, id, "A", NULL, 1, "{\"state\":\"queued\"}", err,
                                      sizeof err),
                     0);
    expect_status(r, id, "queued", 1);
    assert_false(in_index(r, id));
    /* the next worker runs the same attempt, not a takeover */
    assert_int_equal(begin(r, id, 1, "B", 0, NULL, NULL), BEGIN_OK);
    expect_status(r, id, "running", 1);
    /* giving back uncounts the begin: many drains never make it poison */
    for (int i = 0; i < MAX_STARTS + 2; i++) {
        assert_int_equal(jobstate_release(r, ns, id, "B", NULL, 1, "{\"state\":\"queued\"}", err,
                                          sizeof err),
                         0);
        assert_int_equal(begin(r, id, 1, "B", 0, NULL, NULL), BEGIN_OK);
    }
    /* someone else's release changes nothing */
    assert_int_equal(jobstate_release(r, ns, id, "X", NULL, 1, "{}", err, sizeof err), 0);
    expect_status(r, id, "running", 1);
}

static void test_sweeper_marks_lost_and_lost_is_not_final(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-lost", *alive = "job-alive";
    jobstate_stale *v = NULL;
    size_t n = 0;
    assert_int_equal(begin(r, id, 1, "A", 0, NULL, NULL), BEGIN_OK);
    assert_int_equal(begin(r, alive, 1, "A", 0, NULL, NULL), BEGIN_OK);
    expire_lease(r, id);
    /* the lease deadline is in the future: nothing is due yet */
    assert_int_equal(jobstate_sweep(r, ns, "S", 100, 1000, 10, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    jobstate_stale_free(v, n);
    /* lost_after 0 and a deadline in the past: due */
    char k[NAME_MAX_LEN];
    name_key(k, sizeof k, ns, "index", "running");
    freeReplyObject(rds_cmd(r, err, sizeof err, "ZADD %s 1 %s 1 %s", k, id, alive));
    usleep(150 * 1000); /* the sweeper lock of the first sweep (100 ms) */
    assert_int_equal(jobstate_sweep(r, ns, "S", 100, 0, 10, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1); /* the live lease moved job-alive on */
    assert_string_equal(v[0].id, id);
    assert_false(v[0].lost);
    assert_int_equal(v[0].attempt, 1);
    /* one sweeper at a time */
    jobstate_stale *w = NULL;
    size_t m = 0;
    assert_int_equal(jobstate_sweep(r, ns, "T", 100, 0, 10, &w, &m, err, sizeof err), 0);
    assert_int_equal(m, 0);
    jobstate_stale_free(w, m);
    const char *lost = "{\"id\":\"job-lost\",\"state\":\"lost\",\"attempt\":1}";
    assert_int_equal(jobstate_mark_lost(r, ns, id, 1, lost, 60, err, sizeof err), 1);
    assert_int_equal(jobstate_mark_lost(r, ns, id, 1, lost, 60, err, sizeof err), 0);
    jobstate_stale_free(v, n);
    expect_status(r, id, "lost", 1);
    /* the late result of the lost attempt itself still wins */
    assert_int_equal(finish(r, id, ST_SUCCEEDED, 1, "A"), 1);
    expect_status(r, id, "succeeded", 1);
    assert_false(in_index(r, id));

    /* and a copy that comes back takes a lost job over */
    const char *id2 = "job-lost-2";
    int stored = 0;
    char *sdoc = NULL;
    assert_int_equal(begin(r, id2, 1, "A", 0, NULL, NULL), BEGIN_OK);
    expire_lease(r, id2);
    assert_int_equal(jobstate_mark_lost(r, ns, id2, 1, lost, 60, err, sizeof err), 1);
    assert_int_equal(jobstate_unindex(r, ns, id2, 1, err, sizeof err), 0);
    assert_false(in_index(r, id2));
    assert_int_equal(begin(r, id2, 1, "B", 0, &stored, &sdoc), BEGIN_EXPIRED);
    assert_non_null(strstr(sdoc, "\"lost\""));
    free(sdoc);
    assert_int_equal(begin(r, id2, 2, "B", 1, NULL, NULL), BEGIN_OK);
    assert_true(in_index(r, id2));
    /* unindexing a lost event never drops a running job */
    assert_int_equal(jobstate_unindex(r, ns, id2, 1, err, sizeof err), 0);
    assert_true(in_index(r, id2));
}

/* The same finish sent twice (its reply lost to our timeout while Redis
 * was paused, and the first one run after all) is ours: a retry's queued
 * status must not take its own first write for a newer attempt, which
 * made the worker drop the retry's message (make chaos: two jobs left
 * queued for ever). A real newer attempt is still fenced out. */
static void test_finish_sent_twice_is_ours(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-finish-twice";
    char doc[256];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"state\":\"queued\",\"attempt\":2}", id);
    assert_int_equal(begin(r, id, 1, "A", 0, NULL, NULL), BEGIN_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(jobstate_finish(r, ns, id, "queued", 2, "A", NULL, doc, strlen(doc), 60, err,
                                         sizeof err),
                         1);
    expect_status(r, id, "queued", 2);
    /* attempt 2 runs on B: A's old write is fenced out now */
    assert_int_equal(begin(r, id, 2, "B", 0, NULL, NULL), BEGIN_OK);
    assert_int_equal(jobstate_finish(r, ns, id, "queued", 2, "A", NULL, doc, strlen(doc), 60, err,
                                     sizeof err),
                     2);
    expect_status(r, id, "running", 2);
    /* a final result sent twice: written, then still ours */
    assert_int_equal(finish(r, id, "succeeded", 2, "B"), 1);
    assert_int_equal(finish(r, id, "succeeded", 2, "B"), 1);
    /* another final result of the same attempt: refused */
    assert_int_equal(finish(r, id, "failed", 2, "B"), 0);
    expect_status(r, id, "succeeded", 2);
}

/* Every change of state is published on the job's status key, for the
 * API's event streams (api/ssesub.h): begin, give back, finish, lost. */
static void test_changes_are_published(void **state)
{
    bx_redis *r = *state;
    const char *id = "job-published";
    char key[NAME_MAX_LEN];
    name_key(key, sizeof key, ns, "job", id);
    bx_redis *sub = rds_new(redis_url(), err, sizeof err);
    assert_non_null(sub);
    redisContext *c = rds_ctx(sub, err, sizeof err);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "SUBSCRIBE %s", key);
    assert_non_null(rep);
    freeReplyObject(rep);

    assert_int_equal(begin(r, id, 1, "A", 0, NULL, NULL), BEGIN_OK);
    assert_int_equal(jobstate_release(r, ns, id, "A", NULL, 1, "{\"state\":\"queued\"}", err,
                                      sizeof err),
                     0);
    assert_int_equal(begin(r, id, 1, "B", 0, NULL, NULL), BEGIN_OK);
    expire_lease(r, id); /* B stopped renewing it: the sweeper may call it lost */
    assert_int_equal(jobstate_mark_lost(r, ns, id, 1, "{\"state\":\"lost\"}", 60, err, sizeof err),
                     1);
    assert_int_equal(finish(r, id, "succeeded", 1, "B"), 1);
    const char *want[] = {"running", "queued", "running", "lost", "succeeded"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        rep = NULL;
        assert_int_equal(redisGetReply(c, (void **)&rep), REDIS_OK);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        assert_int_equal(rep->elements, 3);
        assert_string_equal(rep->element[0]->str, "message");
        assert_string_equal(rep->element[1]->str, key);
        assert_string_equal(rep->element[2]->str, want[i]);
        freeReplyObject(rep);
    }
    rds_free(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takeover_fences_the_old_attempt),
        cmocka_unit_test(test_takeover_race_has_one_winner),
        cmocka_unit_test(test_old_copy_takes_over_the_newest_attempt),
        cmocka_unit_test(test_takeovers_are_bounded_by_poison),
        cmocka_unit_test(test_give_back_queues_the_same_attempt),
        cmocka_unit_test(test_sweeper_marks_lost_and_lost_is_not_final),
        cmocka_unit_test(test_changes_are_published),
        cmocka_unit_test(test_finish_sent_twice_is_ours),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
