/* sseout — which bytes of a job's output stream an event stream sends
 * next. Pure: no I/O, unit-tested.
 *
 * The worker stores the output a running job produced so far as one
 * Redis string per stream, rewritten every second, that holds the kept
 * bytes only: all of them until the stream outgrows max_output_bytes,
 * then its head (fixed) and its tail (sliding), the middle dropped. No
 * total is stored beside it, so the tracker recognises what it has seen
 * by length and by the last SSEOUT_TAIL bytes:
 *
 *   - the text grew and still ends, at the old length, with the bytes
 *     seen last: what follows is new (the usual case, exact offsets);
 *   - it changed otherwise (the tail slid after a cut): the old last
 *     bytes are looked for in its second half and what follows them is
 *     new; when they are not there, bytes were lost between two looks,
 *     and the whole second half is sent with "truncated".
 *
 * Offsets are positions in the command's output: exact until a loss,
 * after one a lower bound (the API cannot know how much was dropped).
 * The terminal status carries the total and the cut, so sseout_final
 * sends the rest at exact offsets again. */
#ifndef BX_API_SSEOUT_H
#define BX_API_SSEOUT_H

#include <stddef.h>
#include <stdint.h>

#define SSEOUT_TAIL 64      /* last bytes of the seen text kept to recognise it */
#define SSEOUT_MIN_MATCH 16 /* fewer known bytes than this are not searched for */

/* What the live-output script answered (see sse.c). */
enum sseout_mode {
    SSEOUT_SAME = 0,      /* nothing changed */
    SSEOUT_APPENDED = 1,  /* data = text[seen..n) */
    SSEOUT_REWRITTEN = 2, /* data = text[from..n): the second half, or all */
};

typedef struct sseout {
    uint64_t offset;          /* output position of the next byte to send */
    size_t seen;              /* length of the stored text taken so far */
    char tail[SSEOUT_TAIL];   /* its last tail_len bytes */
    size_t tail_len;
    size_t max;               /* the worker's max_output_bytes for the job, 0 = unknown */
    int lost;                 /* bytes were lost: offset is a lower bound */
    int stale;                /* a new attempt began: the stored text is the old one's
                                 until it changes */
} sseout;

/* Called for each piece to send: data[0..n) at output position offset;
 * truncated when bytes before it were dropped. data is borrowed. */
typedef void (*sseout_emit_fn)(void *ud, uint64_t offset, const char *data, size_t n,
                               int truncated);

/* max: the worker's max_output_bytes for the job (0 = unknown). */
void sseout_init(sseout *o, size_t max);
/* A new attempt: its output starts at 0, but until its worker writes,
 * the stored text is still the previous attempt's and is not sent. */
void sseout_restart(sseout *o);

/* The script's arguments: the length seen, its last bytes (borrowed) and
 * whether any change must come back whole (after a restart). */
void sseout_args(const sseout *o, size_t *seen, const char **tail, size_t *tail_len, int *whole);

/* A look at the stored text: its length n now and what the script
 * returned (mode, and data = text[from..from+len)). */
void sseout_live(sseout *o, size_t n, int mode, size_t from, const char *data, size_t len,
                 sseout_emit_fn emit, void *ud);

/* The job ended: kept[0..len) is the stored output of its status, total
 * the bytes the command wrote, cut_at where its middle was dropped (-1:
 * nothing was). Sends what was not sent yet. */
void sseout_final(sseout *o, const char *kept, size_t len, uint64_t total, long cut_at,
                  sseout_emit_fn emit, void *ud);

/* Bytes at the end of s[0..n) that start a UTF-8 sequence not complete
 * yet (0..3): the next look will bring the rest. */
size_t sseout_utf8_partial(const char *s, size_t n);

#endif
