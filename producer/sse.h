/* sse — a Server-Sent Events parser (the WHATWG event-stream format):
 * bytes in, in whatever pieces the network gives them; one callback per
 * event out. Lines end in LF, CRLF or CR; "event:" names the event,
 * "data:" lines join with '\n', ':' lines are comments (keep-alives),
 * a blank line dispatches. */
#ifndef BX_SSE_H
#define BX_SSE_H

#include <stddef.h>

/* event is "message" when the stream named none; data is NUL-terminated
 * and borrowed for the call. Returns 0 to go on, non-zero to stop. */
typedef int (*sse_event_fn)(void *arg, const char *event, const char *data, size_t len);

typedef struct sse_parser {
    sse_event_fn fn;
    void *arg;
    char *line;        /* the partial line, malloc'd */
    size_t line_len, line_cap;
    char *data;        /* the event's data so far, malloc'd */
    size_t data_len, data_cap;
    int has_data;      /* a data: line came (it may be empty) */
    char event[64];    /* the event's name, or "" */
    int last_cr;       /* the last byte was CR: a following LF ends nothing */
    size_t max_event;  /* a bigger event is an error; 0 = 16 MiB */
} sse_parser;

void sse_init(sse_parser *p, sse_event_fn fn, void *arg);
void sse_release(sse_parser *p);

/* Feeds bytes. Returns 0, 1 when the callback asked to stop, or -1 on
 * OOM or an event above max_event. */
int sse_feed(sse_parser *p, const char *buf, size_t len);

#endif
