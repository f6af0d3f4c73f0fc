/* sse — see sse.h. The stream comes from a server we trust only so far:
 * every buffer is bounded by max_event. */
#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SSE_MAX_EVENT_DEFAULT (16u << 20)

void sse_init(sse_parser *p, sse_event_fn fn, void *arg)
{
    memset(p, 0, sizeof *p);
    p->fn = fn;
    p->arg = arg;
}

void sse_release(sse_parser *p)
{
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

static int grow(char **buf, size_t *cap, size_t need, size_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max)
        return -1;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return -1;
    *buf = b;
    *cap = c;
    return 0;
}

static int dispatch(sse_parser *p)
{
    int rc = 0;
    if (p->has_data) {
        if (grow(&p->data, &p->data_cap, p->data_len + 1, SIZE_MAX))
            return -1;
        /* the data lines were joined with a '\n' after each: drop the last */
        if (p->data_len && p->data[p->data_len - 1] == '\n')
            p->data_len--;
        p->data[p->data_len] = 0;
        rc = p->fn(p->arg, p->event[0] ? p->event : "message", p->data, p->data_len) ? 1 : 0;
    }
    p->data_len = 0;
    p->has_data = 0;
    p->event[0] = 0;
    return rc;
}

/* One complete line, without its end. */
static int line(sse_parser *p, const char *s, size_t n)
{
    size_t max = p->max_event ? p->max_event : SSE_MAX_EVENT_DEFAULT;
    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return 0;
    const char *colon = memchr(s, ':', n);
    size_t fl = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl && *v == ' ')
        v++, vl--;
    if (fl == 4 && !memcmp(s, "data", 4)) {
        if (grow(&p->data, &p->data_cap, p->data_len + vl + 2, max))
            return -1;
        memcpy(p->data + p->data_len, v, vl);
        p->data_len += vl;
        p->data[p->data_len++] = '\n';
        p->has_data = 1;
    } else if (fl == 5 && !memcmp(s, "event", 5)) {
        if (vl >= sizeof p->event)
            vl = sizeof p->event - 1;
        memcpy(p->event, v, vl);
        p->event[vl] = 0;
    }
    /* id: and retry: matter to a browser reconnecting, not to us */
    return 0;
}

int sse_feed(sse_parser *p, const char *buf, size_t len)
{
    size_t max = p->max_event ? p->max_event : SSE_MAX_EVENT_DEFAULT;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n' && p->last_cr) {
            p->last_cr = 0;
            continue;
        }
        p->last_cr = c == '\r';
        if (c == '\n' || c == '\r') {
            int rc = line(p, p->line ? p->line : "", p->line_len);
            p->line_len = 0;
            if (rc)
                return rc;
            continue;
        }
        if (grow(&p->line, &p->line_cap, p->line_len + 1, max))
            return -1;
        p->line[p->line_len++] = c;
    }
    return 0;
}
