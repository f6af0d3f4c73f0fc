/* outbuf — bounded head + tail capture of one output stream. */
#include "outbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OUTBUF_MIN_CAP 4096

void outbuf_init(outbuf *ob, size_t max)
{
    memset(ob, 0, sizeof *ob);
    ob->max = max;
    ob->head_max = max / 2;
    ob->tail_max = max - max / 2;
}

void outbuf_release(outbuf *ob)
{
    free(ob->head);
    free(ob->tail);
    outbuf_init(ob, ob->max);
}

/* The capacity to grow to so that need bytes fit: doubling, at least
 * OUTBUF_MIN_CAP, never above limit. */
static size_t grow_cap(size_t cap, size_t need, size_t limit)
{
    size_t c = cap ? cap : OUTBUF_MIN_CAP;
    while (c < need && c < limit)
        c = c > limit / 2 ? limit : c * 2;
    if (c < need)
        c = need;
    return c > limit ? limit : c;
}

static int append_head(outbuf *ob, const char **data, size_t *n)
{
    size_t k = ob->head_max - ob->head_len;
    if (k > *n)
        k = *n;
    if (ob->head_len + k > ob->head_cap) {
        size_t cap = grow_cap(ob->head_cap, ob->head_len + k, ob->head_max);
        char *h = realloc(ob->head, cap);
        if (!h)
            return -1;
        ob->head = h;
        ob->head_cap = cap;
    }
    memcpy(ob->head + ob->head_len, *data, k);
    ob->head_len += k;
    *data += k;
    *n -= k;
    return 0;
}

static int append_tail(outbuf *ob, const char *data, size_t n)
{
    size_t tmax = ob->tail_max;
    if (n >= tmax) {
        /* Only the last tmax bytes of this chunk survive. */
        data += n - tmax;
        n = tmax;
    }
    if (ob->tail_len + n > ob->tail_cap && ob->tail_cap < tmax) {
        /* Not wrapped yet (tail_start is 0): a plain realloc keeps order. */
        size_t cap = grow_cap(ob->tail_cap, ob->tail_len + n, tmax);
        char *t = realloc(ob->tail, cap);
        if (!t)
            return -1;
        ob->tail = t;
        ob->tail_cap = cap;
    }
    size_t cap = ob->tail_cap;
    if (ob->tail_len + n <= cap && ob->tail_start == 0) {
        memcpy(ob->tail + ob->tail_len, data, n);
        ob->tail_len += n;
        return 0;
    }
    /* Ring at full size (cap == tmax): write at the end, wrapping, and
     * let the oldest bytes go. */
    size_t w = (ob->tail_start + ob->tail_len) % cap;
    size_t first = cap - w < n ? cap - w : n;
    memcpy(ob->tail + w, data, first);
    memcpy(ob->tail, data + first, n - first);
    if (ob->tail_len + n <= cap) {
        ob->tail_len += n;
    } else {
        ob->tail_start = (w + n) % cap;
        ob->tail_len = cap;
    }
    return 0;
}

int outbuf_append(outbuf *ob, const char *data, size_t n)
{
    ob->total += n;
    if (n == 0 || ob->oom)
        return ob->oom ? -1 : 0;
    if (ob->head_len < ob->head_max && append_head(ob, &data, &n) < 0)
        goto fail;
    if (n > 0 && ob->tail_max > 0 && append_tail(ob, data, n) < 0)
        goto fail;
    return 0;
fail:
    ob->oom = 1;
    errno = ENOMEM;
    return -1;
}

int outbuf_iov(const outbuf *ob, struct iovec iov[3])
{
    int k = 0;
    if (ob->head_len > 0)
        iov[k++] = (struct iovec){ob->head, ob->head_len};
    if (ob->tail_len > 0) {
        size_t first = ob->tail_cap - ob->tail_start;
        if (first > ob->tail_len)
            first = ob->tail_len;
        iov[k++] = (struct iovec){ob->tail + ob->tail_start, first};
        if (ob->tail_len > first)
            iov[k++] = (struct iovec){ob->tail, ob->tail_len - first};
    }
    return k;
}

size_t outbuf_kept(const outbuf *ob)
{
    return ob->head_len + ob->tail_len;
}

int outbuf_truncated(const outbuf *ob)
{
    return ob->total > (uint64_t)outbuf_kept(ob);
}

int outbuf_result(const outbuf *ob, char **kept, size_t *kept_len, uint64_t *total,
                  long *cut_at)
{
    size_t len = outbuf_kept(ob);
    char *buf = malloc(len + 1);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    struct iovec iov[3];
    int k = outbuf_iov(ob, iov);
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    buf[len] = '\0';
    *kept = buf;
    if (kept_len)
        *kept_len = len;
    if (total)
        *total = ob->total;
    if (cut_at)
        *cut_at = outbuf_truncated(ob) ? (long)ob->head_len : -1;
    return 0;
}
