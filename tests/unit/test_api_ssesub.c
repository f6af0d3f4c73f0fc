/* Unit tests of api/ssesub against the real Redis at BX_REDIS_URL
 * (default redis://127.0.0.1:6379/0), in a namespace of their own that
 * is deleted at the end: the status script publishes every change it
 * makes on the job's status key, a subscription hears it and an
 * unsubscribed channel does not, and a connection Redis closes is noticed
 * and replaced by one of a new epoch. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
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
#include "ssesub.h"

typedef struct heard {
    int n;
    char last[NAME_MAX_LEN];
} heard;

static void on_msg(void *ud, const char *channel)
{
    heard *h = ud;
    h->n++;
    snprintf(h->last, sizeof h->last, "%s", channel);
}

/* Reads what arrives within ms; the number of reads that found data. */
static int pump(ssesub *s, heard *h, int ms)
{
    int64_t end = clock_mono_ms() + ms, reads = 0;
    for (;;) {
        int64_t left = end - clock_mono_ms();
        if (left <= 0)
            return (int)reads;
        struct pollfd pf = {ssesub_fd(s), POLLIN, 0};
        if (pf.fd < 0 || poll(&pf, 1, (int)left) <= 0)
            continue;
        assert_int_equal(ssesub_read(s, on_msg, h, err, sizeof err), 0);
        reads++;
    }
}

/* Until Redis confirmed what was sent (a confirmation is a read). */
static void settle(ssesub *s, heard *h)
{
    int64_t end = clock_mono_ms() + 2000;
    while (clock_mono_ms() < end) {
        struct pollfd pf = {ssesub_fd(s), POLLIN, 0};
        if (pf.fd >= 0 && poll(&pf, 1, 100) > 0) {
            assert_int_equal(ssesub_read(s, on_msg, h, err, sizeof err), 0);
            return;
        }
    }
    fail_msg("no confirmation from redis");
}

static int group_setup(void **state) { return redis_fixture_setup(state, "test_api_ssesub"); }

static int group_teardown(void **state) { return redis_fixture_teardown(state); }

static void put(bx_redis *r, const char *id, const char *st, int attempt, int want)
{
    char doc[128];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"state\":\"%s\"}", id, st);
    assert_int_equal(status_put(r, ns, id, st, attempt, doc, strlen(doc), 60, err, sizeof err), want);
}

static void test_subscribed_hears_changes(void **state)
{
    bx_redis *r = *state;
    char a[ID_LEN], b[ID_LEN], ka[NAME_MAX_LEN];
    id_new(a);
    id_new(b);
    name_key(ka, sizeof ka, ns, "job", a);
    ssesub *s = ssesub_new(redis_url(), err, sizeof err);
    assert_non_null(s);
    assert_int_equal(ssesub_epoch(s), 0);
    assert_int_equal(ssesub_flush(s, err, sizeof err), 0); /* connects */
    assert_int_not_equal(ssesub_epoch(s), 0);
    heard h = {0};
    ssesub_want(s, ka, 1);
    assert_int_equal(ssesub_flush(s, err, sizeof err), 0);
    settle(s, &h);
    assert_int_equal(h.n, 0); /* a confirmation is not a message */

    put(r, a, ST_QUEUED, 1, 1);
    put(r, b, ST_QUEUED, 1, 1); /* another job: another channel */
    put(r, a, ST_RUNNING, 1, 1);
    put(r, a, ST_SUCCEEDED, 1, 1);
    pump(s, &h, 300);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.last, ka);

    /* a refused write changes nothing and says nothing */
    h.n = 0;
    put(r, a, ST_RUNNING, 1, 0);
    pump(s, &h, 200);
    assert_int_equal(h.n, 0);

    /* unsubscribed: silence */
    ssesub_want(s, ka, 0);
    assert_int_equal(ssesub_flush(s, err, sizeof err), 0);
    settle(s, &h);
    put(r, a, ST_QUEUED, 2, 1);
    pump(s, &h, 200);
    assert_int_equal(h.n, 0);
    ssesub_free(s);
}

static void test_closed_connection_new_epoch(void **state)
{
    bx_redis *r = *state;
    ssesub *s = ssesub_new(redis_url(), err, sizeof err);
    assert_non_null(s);
    assert_int_equal(ssesub_flush(s, err, sizeof err), 0);
    unsigned first = ssesub_epoch(s);
    heard h = {0};
    char ch[NAME_MAX_LEN];
    name_key(ch, sizeof ch, ns, "job", "probe");
    ssesub_want(s, ch, 1);
    assert_int_equal(ssesub_flush(s, err, sizeof err), 0);
    settle(s, &h);
    /* Redis closes the connection (a restart, a kill): this one only, by
     * its address, not any other subscriber of the server */
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    assert_int_equal(getsockname(ssesub_fd(s), (struct sockaddr *)&me, &ml), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%d", inet_ntoa(me.sin_addr), ntohs(me.sin_port));
    redisReply *rep = rds_cmd(r, err, sizeof err, "CLIENT KILL ADDR %s", addr);
    assert_non_null(rep);
    freeReplyObject(rep);
    int64_t end = clock_mono_ms() + 2000;
    int rc = 0;
    while (rc == 0 && clock_mono_ms() < end) {
        struct pollfd pf = {ssesub_fd(s), POLLIN, 0};
        if (pf.fd >= 0 && poll(&pf, 1, 100) > 0)
            rc = ssesub_read(s, on_msg, &h, err, sizeof err);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(ssesub_epoch(s), 0);
    assert_int_equal(ssesub_fd(s), -1);
    /* no hammering: the next connection waits a second */
    assert_int_equal(ssesub_flush(s, err, sizeof err), -1);
    usleep(1100 * 1000);
    assert_int_equal(ssesub_flush(s, err, sizeof err), 0);
    assert_int_not_equal(ssesub_epoch(s), 0);
    assert_int_not_equal(ssesub_epoch(s), first);
    ssesub_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribed_hears_changes),
        cmocka_unit_test(test_closed_connection_new_epoch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
