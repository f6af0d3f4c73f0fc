/* outbuf — bounded capture of one output stream.
 *
 * Keeps the first max/2 bytes (the head) and the last max - max/2 bytes
 * (the tail, a ring), and counts every byte. Memory never exceeds max
 * however much is appended: both parts grow on demand up to their share
 * and no further. What is dropped is always the middle, so the kept bytes
 * are head + tail, and cut_at (the offset of the cut in them) is the head
 * length. Bytes are bytes: NUL and invalid UTF-8 are kept as written.
 *
 * Not thread-safe; the struct is public so that it can be embedded. */
#ifndef BX_OUTBUF_H
#define BX_OUTBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct outbuf {
    size_t max;        /* bytes kept at most: head_max + tail_max */
    size_t head_max;   /* max / 2 */
    size_t tail_max;   /* max - max / 2 */
    char *head;        /* the first head_len bytes written */
    size_t head_len;   /* <= head_cap <= head_max */
    size_t head_cap;
    char *tail;        /* ring of tail_cap bytes, <= tail_max */
    size_t tail_cap;
    size_t tail_len;   /* bytes in the ring */
    size_t tail_start; /* index of the oldest byte in the ring; 0 until it wraps */
    uint64_t total;    /* every byte appended, kept or not */
    int oom;           /* 1 once an allocation failed: some bytes were not kept */
} outbuf;

void outbuf_init(outbuf *ob, size_t max);
/* Frees the buffers; ob can be initialised again. */
void outbuf_release(outbuf *ob);

/* Appends n bytes (counted in total even if they are not kept).
 * 0, or -1 when memory ran out (ob->oom is then set; ob stays usable). */
int outbuf_append(outbuf *ob, const char *data, size_t n);

/* The kept bytes so far, head then tail: a new malloc'd buffer the
 * caller frees, NUL-terminated for convenience (the NUL is not counted in
 * *kept_len), exactly max bytes once total > max. *cut_at is the offset in
 * it where the dropped middle was, -1 when nothing was dropped. Usable at
 * any time (while the command runs, it is "what was produced so far").
 * Any out-parameter but kept may be NULL. 0, or -1 on ENOMEM. */
int outbuf_result(const outbuf *ob, char **kept, size_t *kept_len, uint64_t *total,
                  long *cut_at);

/* Zero-copy view of the kept bytes in order: fills up to 3 iovecs
 * (head, then the ring in one or two pieces), returns how many. The
 * pointers are borrowed and valid until the next append or release. */
int outbuf_iov(const outbuf *ob, struct iovec iov[3]);

size_t outbuf_kept(const outbuf *ob);    /* head_len + tail_len */
int outbuf_truncated(const outbuf *ob);  /* 1 when total > kept */

#endif
