/* memtrim — gives the heap a burst of work freed back to the system.
 *
 * glibc gives a thread its own malloc arena (up to 8 per core) and keeps
 * what a burst freed in them for the next one: after a load bx-api held
 * 10 MB of free heap in 9 arenas, idle. So the processes cap the arenas
 * and, once the work has stopped for a while, trim them. */
#ifndef BX_MEMTRIM_H
#define BX_MEMTRIM_H

#include <stdint.h>

/* At most this many arenas; call before any thread starts. */
#define MEMTRIM_ARENAS 2
/* How long the work must have stood still before the heap is trimmed. */
#define MEMTRIM_IDLE_MS 1000

void memtrim_setup(void);

typedef struct memtrim {
    uint64_t work;     /* the counter at the last tick */
    int64_t moved_ms;  /* when it last changed (monotonic) */
    int dirty;         /* work was done since the last trim */
} memtrim;

/* Call now and then (every tick of a loop) with a counter of work done
 * (requests answered, events stored, ...): trims the heap once when it
 * stood still for MEMTRIM_IDLE_MS after moving. 1 when it trimmed. */
int memtrim_tick(memtrim *t, uint64_t work, int64_t now_ms);

#endif
