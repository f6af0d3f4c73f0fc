/* memtrim — see memtrim.h. */
#include "memtrim.h"

#include <malloc.h>

void memtrim_setup(void)
{
    mallopt(M_ARENA_MAX, MEMTRIM_ARENAS);
}

int memtrim_tick(memtrim *t, uint64_t work, int64_t now_ms)
{
    if (work != t->work) {
        t->work = work;
        t->moved_ms = now_ms;
        t->dirty = 1;
        return 0;
    }
    if (!t->dirty || now_ms - t->moved_ms < MEMTRIM_IDLE_MS)
        return 0;
    t->dirty = 0;
    malloc_trim(0);
    return 1;
}
