/* batch — the events the recorder holds between receiving them and
 * MongoDB acknowledging them: the decoded documents (owned), the highest
 * delivery tag to ack once they are stored, and when the batch started. */
#ifndef BX_BATCH_H
#define BX_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Above this many body bytes a batch is written even if not full, which
 * bounds the recorder's memory and one bulk write's size. */
#define BATCH_MAX_BYTES (32u * 1024 * 1024)

typedef struct batch {
    json_t **evs;      /* owned references, evs[0..n) */
    size_t n, cap;     /* cap = the most events it holds (BX_RECORDER_BATCH) */
    size_t bytes;      /* sum of the message bodies */
    uint64_t ack_tag;  /* highest delivery tag held; 0 = none */
    int64_t first_ms;  /* monotonic time of the first event; the deadline counts from it */
} batch;

/* 0, or -1 on OOM. cap >= 1. */
int batch_init(batch *b, size_t cap);
void batch_release(batch *b);

/* Takes ev (a new reference) with its delivery tag and body size. The
 * caller checks batch_full first: adding to a full batch is a bug. */
void batch_add(batch *b, json_t *ev, uint64_t tag, size_t bytes, int64_t now_ms);
/* Drops ev i (stored elsewhere, e.g. dead-lettered) but keeps the tag:
 * it is acked with the others. */
void batch_drop(batch *b, size_t i);
/* 1 when it must be written now: cap events or BATCH_MAX_BYTES reached. */
int batch_full(const batch *b);
/* ms until the batch must be written (<= 0: now); -1 when it is empty. */
int64_t batch_due_in(const batch *b, int batch_ms, int64_t now_ms);
/* Empties it (after the ack, or when the connection that delivered it is gone). */
void batch_clear(batch *b);

#endif
