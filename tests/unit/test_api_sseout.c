/* Unit tests of api/sseout (which output bytes an event stream sends) and
 * sse_format. The worker's stored text is modelled here as it is built:
 * everything while it fits in max bytes, then the first max/2 and the
 * last max - max/2; the live script's answer is computed in C the same
 * way api/sse.c's Lua does it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "sseout.h"

#define MAXP 4096
#ifndef ROUNDS
#define ROUNDS 300
#endif

typedef struct piece {
    uint64_t offset;
    char *data;
    size_t n;
    int truncated;
} piece;

typedef struct recorder {
    piece p[MAXP];
    size_t n;
} recorder;

static void on_emit(void *ud, uint64_t offset, const char *data, size_t n, int truncated)
{
    recorder *r = ud;
    assert_true(r->n < MAXP);
    assert_true(n > 0); /* never an empty event */
    piece *p = &r->p[r->n++];
    p->offset = offset;
    p->data = malloc(n);
    memcpy(p->data, data, n);
    p->n = n;
    p->truncated = truncated;
}

static void rec_free(recorder *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->p[i].data);
    r->n = 0;
}

/* What the worker stores for output full[0..total) with max kept bytes:
 * into kept (caller's buffer); returns its length, *cut the cut (-1). */
static size_t stored(const char *full, size_t total, size_t max, char *kept, long *cut)
{
    if (total <= max) {
        memcpy(kept, full, total);
        *cut = -1;
        return total;
    }
    size_t h = max / 2, t = max - h;
    memcpy(kept, full, h);
    memcpy(kept + h, full + total - t, t);
    *cut = (long)h;
    return max;
}

/* The live script, in C. */
static void look(sseout *o, const char *v, size_t n, recorder *r)
{
    size_t prev, tl;
    const char *tail;
    int whole, mode;
    size_t from = n;
    sseout_args(o, &prev, &tail, &tl, &whole);
    char t[SSEOUT_TAIL];
    memcpy(t, tail, tl);
    if (n == prev && (tl == 0 || !memcmp(v + n - tl, t, tl))) {
        mode = SSEOUT_SAME;
    } else if (whole) {
        mode = SSEOUT_REWRITTEN;
        from = 0;
    } else if (n > prev && (tl == 0 || !memcmp(v + prev - tl, t, tl))) {
        mode = SSEOUT_APPENDED;
        from = prev;
    } else {
        mode = SSEOUT_REWRITTEN;
        from = n < prev ? 0 : n / 2;
    }
    sseout_live(o, n, mode, from, v + from, mode == SSEOUT_SAME ? 0 : n - from, on_emit, r);
}

/* Every byte sent, laid out at its offset, for pieces at exact offsets. */
static void assert_exact(const recorder *r, const char *full, size_t total)
{
    for (size_t i = 0; i < r->n; i++) {
        const piece *p = &r->p[i];
        assert_true(p->offset + p->n <= total);
        assert_memory_equal(p->data, full + p->offset, p->n);
    }
}

static void test_grows_without_cut(void **state)
{
    (void)state;
    const char *full = "line 1\nline 2\nline 3\nand a last one without newline";
    size_t total = strlen(full);
    sseout o;
    recorder r = {.n = 0};
    sseout_init(&o, 0);
    look(&o, full, 0, &r); /* nothing yet */
    assert_int_equal(r.n, 0);
    look(&o, full, 7, &r);
    look(&o, full, 7, &r); /* unchanged: nothing */
    look(&o, full, 21, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.p[0].offset, 0);
    assert_int_equal(r.p[1].offset, 7);
    assert_int_equal(r.p[1].n, 14);
    /* the job ends before the worker stored the rest: the final doc has it */
    sseout_final(&o, full, total, total, -1, on_emit, &r);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.p[2].offset, 21);
    assert_int_equal(r.p[2].n, total - 21);
    assert_false(r.p[2].truncated);
    assert_exact(&r, full, total);
    /* a repeated final sends nothing more */
    sseout_final(&o, full, total, total, -1, on_emit, &r);
    assert_int_equal(r.n, 3);
    rec_free(&r);
}

static void test_final_only(void **state)
{
    (void)state;
    const char *full = "all at once\n";
    sseout o;
    recorder r = {.n = 0};
    sseout_init(&o, 0);
    sseout_final(&o, full, strlen(full), strlen(full), -1, on_emit, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.p[0].offset, 0);
    assert_int_equal(r.p[0].n, strlen(full));
    rec_free(&r);
    /* empty output: no event at all */
    sseout_init(&o, 0);
    sseout_final(&o, "", 0, 0, -1, on_emit, &r);
    assert_int_equal(r.n, 0);
}

static void test_utf8_held_back(void **state)
{
    (void)state;
    const char *full = "caf\xc3\xa9 \xe2\x82\xac!"; /* "café €!" */
    size_t total = strlen(full);
    sseout o;
    recorder r = {.n = 0};
    sseout_init(&o, 0);
    look(&o, full, 4, &r); /* "caf" + the first byte of é */
    assert_int_equal(r.n, 1);
    assert_int_equal(r.p[0].n, 3);
    look(&o, full, 8, &r); /* é, space, 2 of the 3 bytes of € */
    assert_int_equal(r.n, 2);
    assert_int_equal(r.p[1].offset, 3);
    assert_int_equal(r.p[1].n, 3);
    look(&o, full, total, &r);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.p[2].offset, 6);
    assert_int_equal(r.p[2].n, 4);
    assert_exact(&r, full, total);
    rec_free(&r);

    assert_int_equal(sseout_utf8_partial("ab", 2), 0);
    assert_int_equal(sseout_utf8_partial("a\xc3", 2), 1);
    assert_int_equal(sseout_utf8_partial("\xe2\x82", 2), 2);
    assert_int_equal(sseout_utf8_partial("\xe2\x82\xac", 3), 0);
    assert_int_equal(sseout_utf8_partial("\xf0\x9f\x98", 3), 3);
    assert_int_equal(sseout_utf8_partial("\xf0\x9f\x98\x80", 4), 0);
    assert_int_equal(sseout_utf8_partial("", 0), 0);
}

/* Numbered lines: every window of the text is distinct, as real output
 * mostly is. */
static size_t numbered(char *buf, size_t cap, int lines)
{
    size_t o = 0;
    for (int i = 0; i < lines && o + 32 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "line %06d of the output\n", i);
    return o;
}

static void test_cut_small_steps(void **state)
{
    /* The text outgrows max; each look sees less new output than half of
     * max, so the last bytes seen are always found again: nothing lost. */
    (void)state;
    static char full[200000], kept[2048];
    size_t total = numbered(full, sizeof full, 2000), max = 2000;
    sseout o;
    recorder r = {.n = 0};
    long cut;
    sseout_init(&o, 0);
    int lost = 0;
    for (size_t t = 0; t <= total; t += 137) {
        size_t n = stored(full, t, max, kept, &cut);
        look(&o, kept, n, &r);
    }
    for (size_t i = 0; i < r.n; i++)
        lost |= r.p[i].truncated;
    size_t n = stored(full, total, max, kept, &cut);
    size_t live = r.n;
    sseout_final(&o, kept, n, total, cut, on_emit, &r);
    /* When the cut first happened, the look could not tell: that piece
     * hides a gap. From then on every piece continues the one before. */
    uint64_t sent = 0;
    for (size_t i = 0; i < r.n; i++)
        sent += r.p[i].n;
    assert_false(lost);
    assert_true(r.n >= live);
    /* The final pieces are exact, and the last byte sent is the last one */
    const piece *last = &r.p[r.n - 1];
    if (r.n > live) {
        assert_memory_equal(last->data, full + last->offset, last->n);
        assert_int_equal(last->offset + last->n, total);
    } else {
        assert_memory_equal(last->data + last->n - 16, full + total - 16, 16);
    }
    rec_free(&r);
}

static void test_cut_big_jump(void **state)
{
    /* Between two looks more than half of max was written: the bytes
     * seen last are gone, the new piece says truncated, and the final
     * pieces are at exact offsets. */
    (void)state;
    static char full[200000], kept[2048];
    size_t total = numbered(full, sizeof full, 3000), max = 1000;
    sseout o;
    recorder r = {.n = 0};
    long cut;
    sseout_init(&o, 0);
    size_t n = stored(full, 300, max, kept, &cut);
    look(&o, kept, n, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.p[0].offset, 0);
    n = stored(full, 5000, max, kept, &cut);
    look(&o, kept, n, &r); /* transition: the grown text looks appended */
    n = stored(full, 20000, max, kept, &cut);
    look(&o, kept, n, &r);
    assert_int_equal(r.n, 3);
    assert_true(r.p[2].truncated);
    /* the second half of the text, less what its start may share by
     * chance with the end of the bytes seen before */
    assert_true(r.p[2].n <= max - max / 2 && r.p[2].n > max / 2 - SSEOUT_TAIL);
    assert_memory_equal(r.p[2].data, full + 20000 - r.p[2].n, r.p[2].n);
    /* 100 bytes later: found again, continues without a loss */
    n = stored(full, 20100, max, kept, &cut);
    look(&o, kept, n, &r);
    assert_int_equal(r.n, 4);
    assert_false(r.p[3].truncated);
    assert_int_equal(r.p[3].n, 100);
    assert_memory_equal(r.p[3].data, full + 20000, 100);
    /* the end: exact offset of the rest */
    n = stored(full, total, max, kept, &cut);
    sseout_final(&o, kept, n, total, cut, on_emit, &r);
    const piece *last = &r.p[r.n - 1];
    assert_int_equal(last->offset + last->n, total);
    assert_memory_equal(last->data, full + last->offset, last->n);
    rec_free(&r);
}

static void test_cut_known_max(void **state)
{
    /* The look that first sees the text at max: its head part continues,
     * its tail part says truncated. */
    (void)state;
    static char full[10000], kept[512];
    size_t total = numbered(full, sizeof full, 200), max = 400;
    long cut;
    sseout o;
    recorder r = {.n = 0};
    sseout_init(&o, max);
    size_t n = stored(full, 50, max, kept, &cut);
    look(&o, kept, n, &r);
    n = stored(full, 3000, max, kept, &cut);
    look(&o, kept, n, &r);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.p[1].offset, 50);
    assert_int_equal(r.p[1].n, 150);
    assert_false(r.p[1].truncated);
    assert_true(r.p[2].truncated);
    assert_memory_equal(r.p[2].data, full + 3000 - 200, 200);
    n = stored(full, total, max, kept, &cut);
    sseout_final(&o, kept, n, total, cut, on_emit, &r);
    const piece *last = &r.p[r.n - 1];
    assert_int_equal(last->offset + last->n, total);
    assert_memory_equal(last->data, full + last->offset, last->n);
    rec_free(&r);
}

static void test_final_cut_nothing_seen(void **state)
{
    (void)state;
    static char full[10000], kept[512];
    size_t total = numbered(full, sizeof full, 200), max = 400;
    long cut;
    size_t n = stored(full, total, max, kept, &cut);
    sseout o;
    recorder r = {.n = 0};
    sseout_init(&o, 0);
    sseout_final(&o, kept, n, total, cut, on_emit, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.p[0].offset, 0);
    assert_int_equal(r.p[0].n, 200);
    assert_false(r.p[0].truncated);
    assert_int_equal(r.p[1].offset, total - 200);
    assert_int_equal(r.p[1].n, 200);
    assert_true(r.p[1].truncated);
    assert_exact(&r, full, total);
    rec_free(&r);
}

static void test_final_cut_head_seen(void **state)
{
    /* Part of the head was sent live; the final sends the rest of the
     * head, then the tail with truncated. */
    (void)state;
    static char full[10000], kept[512];
    size_t total = numbered(full, sizeof full, 200), max = 400;
    long cut;
    sseout o;
    recorder r = {.n = 0};
    sseout_init(&o, 0);
    size_t n = stored(full, 150, max, kept, &cut);
    look(&o, kept, n, &r);
    n = stored(full, total, max, kept, &cut);
    sseout_final(&o, kept, n, total, cut, on_emit, &r);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.p[1].offset, 150);
    assert_int_equal(r.p[1].n, 50);
    assert_false(r.p[1].truncated);
    assert_int_equal(r.p[2].offset, total - 200);
    assert_true(r.p[2].truncated);
    assert_exact(&r, full, total);
    rec_free(&r);
}

static void test_restart(void **state)
{
    /* A retry: the old attempt's text is not sent again; the new one's is
     * sent from offset 0 once its worker wrote it. */
    (void)state;
    const char *a1 = "attempt one says hello and fails\n";
    const char *a2 = "second try\n";
    sseout o;
    recorder r = {.n = 0};
    sseout_init(&o, 0);
    look(&o, a1, strlen(a1), &r);
    assert_int_equal(r.n, 1);
    sseout_restart(&o);
    look(&o, a1, strlen(a1), &r); /* still the old text */
    assert_int_equal(r.n, 1);
    look(&o, a2, strlen(a2), &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.p[1].offset, 0);
    assert_int_equal(r.p[1].n, strlen(a2));
    assert_false(r.p[1].truncated);
    sseout_final(&o, a2, strlen(a2), strlen(a2), -1, on_emit, &r);
    assert_int_equal(r.n, 2);
    rec_free(&r);

    /* the new attempt ends before it wrote live output */
    sseout_init(&o, 0);
    look(&o, a1, strlen(a1), &r);
    sseout_restart(&o);
    sseout_final(&o, a2, strlen(a2), strlen(a2), -1, on_emit, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.p[1].offset, 0);
    assert_memory_equal(r.p[1].data, a2, strlen(a2));
    rec_free(&r);
}

static void test_random(void **state)
{
    /* Random write sizes and look times, several max values: every piece
     * not marked truncated continues exactly where the previous one
     * ended, the text is the command's, and the last byte is sent. */
    (void)state;
    static char full[400000], kept[8192];
    size_t total = numbered(full, sizeof full, 12000);
    srand(getenv("SSEOUT_SEED") ? (unsigned)atoi(getenv("SSEOUT_SEED")) : 42);
    for (int round = 0; round < ROUNDS; round++) {
        size_t max = 64 + (size_t)(rand() % 4000);
        size_t end = (size_t)rand() % total;
        int known = round % 2; /* the tracker knows max in half the rounds */
        sseout o;
        recorder r = {.n = 0};
        long cut;
        sseout_init(&o, known ? max : 0);
        for (size_t t = 0; t < end;) {
            t += (size_t)(rand() % (rand() % 4 ? 200 : 5000));
            if (t > end)
                t = end;
            size_t n = stored(full, t, max, kept, &cut);
            look(&o, kept, n, &r);
        }
        size_t n = stored(full, end, max, kept, &cut), live = r.n;
        int lost = 0;
        for (size_t i = 0; i < live; i++)
            lost |= r.p[i].truncated;
        sseout_final(&o, kept, n, end, cut, on_emit, &r);
        uint64_t next = 0;
        for (size_t i = 0; i < r.n; i++) {
            const piece *p = &r.p[i];
            /* the data is the command's: found at or after its offset */
            assert_true(p->offset + p->n <= end);
            if (!p->truncated) {
                assert_int_equal(p->offset, next);
            } else {
                assert_true(p->offset >= next);
            }
            next = p->offset + p->n;
        }
        if (end) {
            /* The last byte is sent; at its exact offset unless a live
             * look sent it after a loss (offsets are lower bounds then,
             * and the final has nothing left to send). Without max, the
             * look that saw the first cut may hide it (sseout.h). */
            const piece *last = &r.p[r.n - 1];
            if (known || r.n > live)
                assert_memory_equal(last->data, full + end - last->n, last->n);
            if (known && (!lost || r.n > live))
                assert_int_equal(last->offset + last->n, end);
            if (!known && r.n > live)
                assert_int_equal(last->offset + last->n, end);
        }
        if (end <= max)
            assert_exact(&r, full, end);
        rec_free(&r);
    }
}

static void test_format(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(sse_format(&buf, &len, &cap, "state", "{\"a\":1}", 7), 0);
    assert_int_equal(sse_format(&buf, &len, &cap, "x", "one\ntwo", 7), 0);
    assert_int_equal(sse_format(&buf, &len, &cap, "y", "", 0), 0);
    const char *want = "event: state\ndata: {\"a\":1}\n\n"
                       "event: x\ndata: one\ndata: two\n\n"
                       "event: y\ndata: \n\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_without_cut),
        cmocka_unit_test(test_final_only),
        cmocka_unit_test(test_utf8_held_back),
        cmocka_unit_test(test_cut_small_steps),
        cmocka_unit_test(test_cut_big_jump),
        cmocka_unit_test(test_cut_known_max),
        cmocka_unit_test(test_final_cut_nothing_seen),
        cmocka_unit_test(test_final_cut_head_seen),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
