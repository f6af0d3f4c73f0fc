/* Unit tests of worker/outbuf: head + tail capture, against a naive model
 * that keeps every byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "outbuf.h"

/* What outbuf must keep of the whole stream all[0..n): exactly head + tail. */
static void check_against(const outbuf *ob, const char *all, size_t n)
{
    char *kept = NULL;
    size_t klen = 0;
    uint64_t total = 0;
    long cut = 0;
    assert_int_equal(outbuf_result(ob, &kept, &klen, &total, &cut), 0);
    assert_int_equal(total, n);
    size_t max = ob->max, hmax = max / 2, tmax = max - max / 2;
    if (n <= max) {
        assert_int_equal(klen, n);
        assert_int_equal(cut, -1);
        assert_memory_equal(kept, all, n);
        assert_int_equal(outbuf_truncated(ob), 0);
    } else {
        assert_int_equal(klen, max);
        assert_int_equal(cut, (long)hmax);
        assert_memory_equal(kept, all, hmax);
        assert_memory_equal(kept + hmax, all + n - tmax, tmax);
        assert_int_equal(outbuf_truncated(ob), 1);
    }
    assert_int_equal(kept[klen], '\0');
    /* Memory is bounded by max. */
    assert_true(ob->head_cap + ob->tail_cap <= max);
    /* The iovec view says the same. */
    struct iovec iov[3];
    int k = outbuf_iov(ob, iov);
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        assert_memory_equal(kept + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    assert_int_equal(off, klen);
    assert_int_equal(outbuf_kept(ob), klen);
    free(kept);
}

static void test_small_no_cut(void **state)
{
    (void)state;
    outbuf ob;
    outbuf_init(&ob, 100);
    assert_int_equal(outbuf_append(&ob, "hello ", 6), 0);
    assert_int_equal(outbuf_append(&ob, "world", 5), 0);
    check_against(&ob, "hello world", 11);
    outbuf_release(&ob);
}

static void test_exact_max(void **state)
{
    (void)state;
    outbuf ob;
    outbuf_init(&ob, 10);
    outbuf_append(&ob, "0123456789", 10);
    check_against(&ob, "0123456789", 10);
    outbuf_append(&ob, "A", 1);
    check_against(&ob, "0123456789A", 11);
    char *kept;
    size_t len;
    long cut;
    outbuf_result(&ob, &kept, &len, NULL, &cut);
    assert_string_equal(kept, "01234" "6789A");
    assert_int_equal(cut, 5);
    free(kept);
    outbuf_release(&ob);
}

static void test_zero_and_one(void **state)
{
    (void)state;
    outbuf ob;
    outbuf_init(&ob, 0);
    outbuf_append(&ob, "abc", 3);
    check_against(&ob, "abc", 3);
    outbuf_release(&ob);
    outbuf_init(&ob, 1);
    outbuf_append(&ob, "abc", 3);
    check_against(&ob, "abc", 3);
    outbuf_release(&ob);
    outbuf_init(&ob, 0);
    check_against(&ob, "", 0);
    outbuf_release(&ob);
}

static void test_binary_bytes_kept(void **state)
{
    (void)state;
    const char data[] = {'a', '\0', (char)0xff, (char)0xfe, '\0', (char)0xc3, 'z'};
    outbuf ob;
    outbuf_init(&ob, 64);
    outbuf_append(&ob, data, sizeof data);
    check_against(&ob, data, sizeof data);
    outbuf_release(&ob);
}

/* Many sizes and chunkings against the model. */
static void test_model_random(void **state)
{
    (void)state;
    const size_t maxes[] = {2, 3, 7, 10, 64, 999, 1000, 4096, 5000, 70000};
    const size_t N = 300000;
    char *all = malloc(N);
    assert_non_null(all);
    unsigned seed = 12345;
    for (size_t i = 0; i < N; i++) {
        seed = seed * 1103515245 + 12345;
        all[i] = (char)(seed >> 16);
    }
    for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++) {
        for (int trial = 0; trial < 4; trial++) {
            outbuf ob;
            outbuf_init(&ob, maxes[m]);
            size_t off = 0;
            while (off < N) {
                seed = seed * 1103515245 + 12345;
                size_t chunk;
                switch (trial) {
                case 0: chunk = 1; break;
                case 1: chunk = (seed >> 8) % 97 + 1; break;
                case 2: chunk = (seed >> 8) % 20000 + 1; break;
                default: chunk = (seed >> 8) % (maxes[m] * 2 + 3) + 1; break;
                }
                if (trial == 0 && off > 20000)
                    chunk = N - off; /* byte-at-a-time for a while, then the rest */
                if (chunk > N - off)
                    chunk = N - off;
                assert_int_equal(outbuf_append(&ob, all + off, chunk), 0);
                off += chunk;
                if ((seed & 0xff) == 0 || off == N)
                    check_against(&ob, all, off);
            }
            outbuf_release(&ob);
        }
    }
    free(all);
}

static void test_3mb_into_1000(void **state)
{
    (void)state;
    const size_t N = 3000000;
    char *all = malloc(N);
    assert_non_null(all);
    for (size_t i = 0; i < N; i++)
        all[i] = (char)('a' + i % 26);
    outbuf ob;
    outbuf_init(&ob, 1000);
    for (size_t off = 0; off < N; off += 65536)
        outbuf_append(&ob, all + off, N - off < 65536 ? N - off : 65536);
    check_against(&ob, all, N);
    assert_true(ob.head_cap <= 500 && ob.tail_cap <= 500);
    outbuf_release(&ob);
    free(all);
}

static void test_release_reinit(void **state)
{
    (void)state;
    outbuf ob;
    outbuf_init(&ob, 8);
    outbuf_append(&ob, "abcdefghijkl", 12);
    outbuf_release(&ob);
    assert_int_equal(ob.total, 0);
    assert_null(ob.head);
    outbuf_append(&ob, "xy", 2);
    check_against(&ob, "xy", 2);
    outbuf_release(&ob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_no_cut),
        cmocka_unit_test(test_exact_max),
        cmocka_unit_test(test_zero_and_one),
        cmocka_unit_test(test_binary_bytes_kept),
        cmocka_unit_test(test_model_random),
        cmocka_unit_test(test_3mb_into_1000),
        cmocka_unit_test(test_release_reinit),
    };
    return cmocka_run_group_tests_name("outbuf", tests, NULL, NULL);
}
