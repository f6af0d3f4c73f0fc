/* rconn — one Redis connection per thread (hiredis is not thread-safe),
 * created on a thread's first use, freed when the thread exits, and any
 * left over freed by rconn_shutdown. */
#ifndef BX_API_RCONN_H
#define BX_API_RCONN_H

#include <stddef.h>

#include "rds.h"

/* Checks url (no connection is made). 0, or -1 + err. */
int rconn_init(const char *url, char *err, size_t errlen);
/* This thread's connection (borrowed); NULL only when out of memory. */
bx_redis *rconn_get(void);
/* Frees every connection; call once no other thread uses one. */
void rconn_shutdown(void);

#endif
