/* Unit tests of the recorder's batch (recorder/batch.c) and its retry
 * backoff: what decides when a batch is written and what is acked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "batch.h"
#include "rec.h"

static json_t *ev(int i)
{
    return json_pack("{s:i}", "n", i);
}

static void test_fills_to_cap(void **state)
{
    (void)state;
    batch b;
    assert_int_equal(batch_init(&b, 3), 0);
    assert_int_equal(batch_due_in(&b, 20, 1000), -1); /* empty: no deadline */
    assert_false(batch_full(&b));
    batch_add(&b, ev(1), 7, 100, 1000);
    batch_add(&b, ev(2), 8, 100, 1005);
    assert_false(batch_full(&b));
    batch_add(&b, ev(3), 9, 100, 1010);
    assert_true(batch_full(&b));
    assert_int_equal(b.n, 3);
    assert_int_equal(b.bytes, 300);
    assert_int_equal(b.ack_tag, 9);
    batch_release(&b);
}

static void test_deadline_counts_from_first(void **state)
{
    (void)state;
    batch b;
    assert_int_equal(batch_init(&b, 10), 0);
    batch_add(&b, ev(1), 1, 10, 1000);
    batch_add(&b, ev(2), 2, 10, 1015);
    assert_int_equal(batch_due_in(&b, 20, 1015), 5);
    assert_true(batch_due_in(&b, 20, 1020) <= 0);
    batch_clear(&b);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.ack_tag, 0);
    batch_add(&b, ev(3), 3, 10, 5000); /* a new batch, a new deadline */
    assert_int_equal(batch_due_in(&b, 20, 5000), 20);
    batch_release(&b);
}

static void test_bytes_cap(void **state)
{
    (void)state;
    batch b;
    assert_int_equal(batch_init(&b, 500), 0);
    batch_add(&b, ev(1), 1, BATCH_MAX_BYTES - 1, 0);
    assert_false(batch_full(&b));
    batch_add(&b, ev(2), 2, 1, 0);
    assert_true(batch_full(&b));
    batch_release(&b);
}

static void test_drop_keeps_tag(void **state)
{
    (void)state;
    batch b;
    assert_int_equal(batch_init(&b, 4), 0);
    for (int i = 0; i < 3; i++)
        batch_add(&b, ev(i), (uint64_t)(10 + i), 1, 0);
    batch_drop(&b, 2); /* the last one, e.g. dead-lettered */
    batch_drop(&b, 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(json_integer_value(json_object_get(b.evs[0], "n")), 1);
    assert_int_equal(b.ack_tag, 12); /* still acked with the batch */
    batch_drop(&b, 0);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.ack_tag, 12);
    batch_release(&b);
}

static void test_backoff(void **state)
{
    (void)state;
    int ms = 0, seen[16];
    for (int i = 0; i < 10; i++)
        seen[i] = ms = rec_backoff_next(ms);
    assert_int_equal(seen[0], 100);
    assert_int_equal(seen[1], 200);
    assert_int_equal(seen[5], 3200);
    assert_int_equal(seen[6], 5000);
    assert_int_equal(seen[9], 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fills_to_cap),
        cmocka_unit_test(test_deadline_counts_from_first),
        cmocka_unit_test(test_bytes_cap),
        cmocka_unit_test(test_drop_keeps_tag),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
