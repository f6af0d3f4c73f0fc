/* sseout — see sseout.h for the model. Everything here is arithmetic on
 * lengths and a backwards search for the last bytes seen. */
#include "sseout.h"

#include <string.h>

void sseout_init(sseout *o, size_t max)
{
    memset(o, 0, sizeof *o);
    o->max = max;
}

void sseout_restart(sseout *o)
{
    /* seen and tail stay: they describe the old attempt's text, which is
     * what the script compares with until the new attempt writes */
    o->offset = 0;
    o->lost = 0;
    o->stale = 1;
}

void sseout_args(const sseout *o, size_t *seen, const char **tail, size_t *tail_len, int *whole)
{
    *seen = o->seen;
    *tail = o->tail;
    *tail_len = o->tail_len;
    *whole = o->stale;
}

size_t sseout_utf8_partial(const char *s, size_t n)
{
    for (size_t i = 1; i <= 3 && i <= n; i++) {
        unsigned char c = (unsigned char)s[n - i];
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: look further back */
        if (c < 0xC0)
            return 0; /* ASCII (or a stray byte): nothing pending */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        return need > i ? i : 0;
    }
    return 0;
}

/* Appends data[0..n) to the remembered last bytes. */
static void keep_tail(sseout *o, const char *data, size_t n)
{
    if (n >= SSEOUT_TAIL) {
        memcpy(o->tail, data + n - SSEOUT_TAIL, SSEOUT_TAIL);
        o->tail_len = SSEOUT_TAIL;
        return;
    }
    size_t keep = o->tail_len < SSEOUT_TAIL - n ? o->tail_len : SSEOUT_TAIL - n;
    memmove(o->tail, o->tail + o->tail_len - keep, keep);
    memcpy(o->tail + keep, data, n);
    o->tail_len = keep + n;
}

/* Index of the last occurrence of nd in h, or -1. Backwards, because the
 * newest match is the one wanted and is usually near the end. */
static long find_last(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (!nn || nn > hn)
        return -1;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn))
            return (long)i;
    return -1;
}

/* The longest k with tail[tl-k, tl) == data[0, k): how far data starts
 * inside the bytes seen last. */
static size_t overlap(const char *tail, size_t tl, const char *data, size_t n)
{
    for (size_t k = tl < n ? tl : n; k > 0; k--)
        if (!memcmp(tail + tl - k, data, k))
            return k;
    return 0;
}

void sseout_live(sseout *o, size_t n, int mode, size_t from, const char *data, size_t len,
                 sseout_emit_fn emit, void *ud)
{
    if (mode == SSEOUT_SAME)
        return;
    if (o->stale) {
        /* the new attempt wrote: the script sent its text whole */
        o->stale = 0;
        o->seen = 0;
        o->tail_len = 0;
        if (from == 0)
            mode = SSEOUT_APPENDED;
    }
    if (o->max && n > o->max)
        o->max = 0; /* not the max the worker uses after all */
    if (mode == SSEOUT_APPENDED && from == o->seen && o->max && n == o->max && o->seen <= n / 2) {
        /* the text reached max: taken as cut in the middle, its head
         * continues what was sent and its tail follows a loss */
        size_t half = n / 2 - o->seen;
        if (half)
            emit(ud, o->offset, data, half, 0);
        o->offset += half;
        if (len > half)
            emit(ud, o->offset, data + half, len - half, 1);
        o->offset += len - half;
        o->lost = 1;
        o->seen = n;
        keep_tail(o, data, len);
        return;
    }
    if (mode == SSEOUT_APPENDED && from == o->seen) {
        /* hold back a character cut in two: it completes next time */
        size_t k = len - sseout_utf8_partial(data, len);
        if (k)
            emit(ud, o->offset, data, k, 0);
        o->offset += k;
        o->seen += k;
        keep_tail(o, data, k);
        return;
    }
    /* Rewritten: data is the end of the text. What follows the last bytes
     * seen is new; without them, something was lost in between. */
    long p = o->tail_len >= SSEOUT_MIN_MATCH ? find_last(data, len, o->tail, o->tail_len) : -1;
    if (p >= 0) {
        size_t start = (size_t)p + o->tail_len;
        if (start < len)
            emit(ud, o->offset, data + start, len - start, 0);
        o->offset += len - start;
    } else if (len) {
        /* It may start inside the bytes seen last: what it shares with
         * them is not sent twice (and when that is chance, those few new
         * bytes go with the ones lost, which the flag owns up to) */
        size_t k = overlap(o->tail, o->tail_len, data, len);
        if (k < len)
            emit(ud, o->offset, data + k, len - k, 1);
        o->offset += len - k;
        o->lost = 1;
    }
    o->seen = n;
    o->tail_len = 0;
    keep_tail(o, data, len);
}

void sseout_final(sseout *o, const char *kept, size_t len, uint64_t total, long cut_at,
                  sseout_emit_fn emit, void *ud)
{
    /* kept = head [0, cut) + tail [cut, len); the tail starts at output
     * position tail_start */
    int has_cut = cut_at >= 0 && (size_t)cut_at <= len;
    size_t cut = has_cut ? (size_t)cut_at : len;
    uint64_t tail_start = has_cut && total >= len - cut ? total - (len - cut) : cut;
    size_t at = len;
    int found = 0, jump = 0;

    if (!o->lost) {
        /* the position is exact: find it in kept and check the bytes before */
        int ok = 1;
        if (o->offset <= cut)
            at = (size_t)o->offset;
        else if (has_cut && o->offset >= tail_start && o->offset - tail_start <= len - cut)
            at = cut + (size_t)(o->offset - tail_start);
        else
            ok = 0;
        if (ok) {
            size_t seg = has_cut && at > cut ? cut : 0;
            size_t m = o->tail_len < at - seg ? o->tail_len : at - seg;
            found = !memcmp(kept + at - m, o->tail + o->tail_len - m, m);
        }
    }
    if (!found && o->tail_len >= SSEOUT_MIN_MATCH) {
        long p = find_last(kept, len, o->tail, o->tail_len);
        if (p >= 0) {
            at = (size_t)p + o->tail_len;
            found = 1;
            /* unless a loss was already said, the offsets sent were off
             * (a cut not seen as one): the next piece says so */
            jump = !o->lost;
        }
    }
    if (!found) {
        /* what was sent is not in the final text: send its tail part
         * (less what it shares with the bytes sent last), or all of it
         * when nothing was cut */
        at = has_cut ? cut : 0;
        jump = o->offset > 0;
        if (has_cut && o->offset > 0)
            at += overlap(o->tail, o->tail_len, kept + cut, len - cut);
    }
    if (has_cut && at <= cut) {
        if (at < cut)
            emit(ud, at, kept + at, cut - at, jump);
        if (cut < len)
            emit(ud, tail_start, kept + cut, len - cut, tail_start > cut);
    } else if (at < len) {
        emit(ud, has_cut ? tail_start + (at - cut) : at, kept + at, len - at, jump);
    }
    o->offset = has_cut ? total : len;
    o->seen = len;
    o->tail_len = 0;
    keep_tail(o, kept, len);
}
