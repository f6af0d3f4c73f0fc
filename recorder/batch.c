/* batch — see batch.h. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

int batch_init(batch *b, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->evs = calloc(cap ? cap : 1, sizeof *b->evs);
    if (!b->evs)
        return -1;
    b->cap = cap ? cap : 1;
    return 0;
}

void batch_release(batch *b)
{
    batch_clear(b);
    free(b->evs);
    b->evs = NULL;
    b->cap = 0;
}

void batch_add(batch *b, json_t *ev, uint64_t tag, size_t bytes, int64_t now_ms)
{
    if (b->n == 0 && b->ack_tag == 0)
        b->first_ms = now_ms;
    b->evs[b->n++] = ev;
    b->bytes += bytes;
    if (tag > b->ack_tag)
        b->ack_tag = tag;
}

void batch_drop(batch *b, size_t i)
{
    json_decref(b->evs[i]);
    memmove(&b->evs[i], &b->evs[i + 1], (b->n - i - 1) * sizeof *b->evs);
    b->n--;
}

int batch_full(const batch *b)
{
    return b->n >= b->cap || b->bytes >= BATCH_MAX_BYTES;
}

int64_t batch_due_in(const batch *b, int batch_ms, int64_t now_ms)
{
    if (b->n == 0)
        return -1;
    return b->first_ms + batch_ms - now_ms;
}

void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        json_decref(b->evs[i]);
    b->n = 0;
    b->bytes = 0;
    b->ack_tag = 0;
    b->first_ms = 0;
}
