/* Unit tests of api/publisher against the real RabbitMQ at BX_AMQP_URL
 * (default amqp://guest:guest@127.0.0.1:5672/), in a namespace of their
 * own whose exchanges and queues are deleted at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>

#include "amqpc.h"
#include "clock.h"
#include "id.h"
#include "names.h"
#include "publisher.h"

/* far longer than RabbitMQ takes to confirm a round, even on a busy
 * machine: a confirm that is lost never comes, however long */
#define CONFIRM_TIMEOUT_MS 3000

static char ns[64];
static char err[512];

static const char *amqp_url(void)
{
    const char *u = getenv("BX_AMQP_URL");
    return u && *u ? u : "amqp://guest:guest@127.0.0.1:5672/";
}

static void delete_namespace(void)
{
    char e[256], name[NAME_MAX_LEN];
    bx_amqp *a = amqpc_connect(amqp_url(), "test_api_publisher", e, sizeof e);
    if (!a) { /* amqpc_connect opened channel 1 */
        fprintf(stderr, "cannot delete namespace %s: %s\n", ns, e);
        amqpc_free(a);
        return;
    }
    amqp_connection_state_t c = amqpc_state(a);
    void (*queue_names[])(char *, size_t, const char *) = {name_dead_queue, name_results_queue};
    for (size_t i = 0; i < sizeof queue_names / sizeof queue_names[0]; i++) {
        queue_names[i](name, sizeof name, ns);
        amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
    }
    name_jobs_queue(name, sizeof name, ns, "q");
    amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
    void (*ex_names[])(char *, size_t, const char *) = {name_jobs_exchange, name_events_exchange,
                                                        name_dead_exchange, name_retry_exchange};
    for (size_t i = 0; i < sizeof ex_names / sizeof ex_names[0]; i++) {
        ex_names[i](name, sizeof name, ns);
        amqp_exchange_delete(c, 1, amqp_cstring_bytes(name), 0);
    }
    amqpc_free(a);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(ns, sizeof ns, "test_api_publisher_%ld_%lld", (long)getpid(), (long long)clock_wall_ms());
    bx_amqp *a = amqpc_connect(amqp_url(), "test_api_publisher", err, sizeof err);
    if (!a) {
        fprintf(stderr, "rabbitmq at %s does not answer: %s\n", amqp_url(), err);
        return -1;
    }
    amqpc_free(a);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    delete_namespace();
    return 0;
}

static publisher *start(void)
{
    publisher *p = publisher_new(amqp_url(), ns, NULL, 0, CONFIRM_TIMEOUT_MS, 0, err, sizeof err);
    assert_non_null(p);
    for (int i = 0; i < 500 && !publisher_connected(p); i++)
        usleep(10000);
    assert_true(publisher_connected(p));
    return p;
}

static atomic_int done_count;

static void on_done(void *ud)
{
    (void)ud;
    atomic_fetch_add(&done_count, 1);
}

/* Rounds of as many messages as the publisher publishes before it reads
 * confirms (DRAIN_EVERY), each submitted at once and awaited, as under
 * many concurrent HTTP clients: the publisher often takes a whole round
 * as one batch, reads confirms right after the last publish, and the
 * confirms found then must count. Every message must be confirmed
 * without waiting for its deadline, and the connection must stay up. */
static void test_rounds_all_confirmed(void **state)
{
    (void)state;
    enum { ROUNDS = 150, PER_ROUND = 64 };
    pub_msg *msgs[PER_ROUND];
    publisher *p = start();
    char body[300];
    memset(body, 'x', sizeof body);
    for (int r = 0; r < ROUNDS; r++) {
        atomic_store(&done_count, 0);
        for (int i = 0; i < PER_ROUND; i++) {
            char id[ID_LEN];
            id_new(id);
            char *b = malloc(sizeof body);
            assert_non_null(b);
            memcpy(b, body, sizeof body);
            msgs[i] = pub_msg_new(PUB_JOB, "q", b, sizeof body, 0, id, NULL, NULL);
            assert_non_null(msgs[i]);
        }
        for (int i = 0; i < PER_ROUND; i++)
            if (publisher_submit(p, msgs[i], on_done, NULL, err, sizeof err))
                fail_msg("round %d: submit %d failed: %s", r, i, err);
        int64_t until = clock_mono_ms() + CONFIRM_TIMEOUT_MS + 2000;
        while (atomic_load(&done_count) < PER_ROUND && clock_mono_ms() < until)
            usleep(200);
        assert_int_equal(atomic_load(&done_count), PER_ROUND);
        for (int i = 0; i < PER_ROUND; i++) {
            char e[256];
            if (pub_msg_result(msgs[i], e, sizeof e))
                fail_msg("round %d: message %d failed: %s", r, i, e);
            pub_msg_free(msgs[i]);
        }
    }
    pub_stats st;
    publisher_stats(p, &st);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.confirmed, ROUNDS * PER_ROUND);
    publisher_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounds_all_confirmed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
