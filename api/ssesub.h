/* ssesub — the event hub's own Redis connection in subscribe mode: every
 * script that changes a job's state also PUBLISHes the new state on a
 * channel named as the job's status key ("<ns>:job:<id>"), so the hub
 * learns of a change when it happens instead of at its next poll.
 *
 * Only the hub's thread uses it. Subscriptions are buffered and sent by
 * ssesub_flush; when the connection breaks they are all gone, and
 * ssesub_epoch changes so that the hub knows to subscribe again. While
 * Redis is away the hub simply polls on its period, as before. */
#ifndef BX_API_SSESUB_H
#define BX_API_SSESUB_H

#include <stddef.h>

typedef struct ssesub ssesub;

/* NULL + err only on a bad URL or out of memory (connects lazily). */
ssesub *ssesub_new(const char *redis_url, char *err, size_t errlen);
void ssesub_free(ssesub *s);

/* The socket to poll for notifications, or -1 when not connected. */
int ssesub_fd(const ssesub *s);
/* Changes with every new connection; 0 while there is none. */
unsigned ssesub_epoch(const ssesub *s);

/* Queues a SUBSCRIBE (on) or UNSUBSCRIBE of channel. */
void ssesub_want(ssesub *s, const char *channel, int on);
/* Connects if needed (at most once a second) and sends what is queued.
 * 0, or -1 + err (not connected: the queue is dropped, the epoch moves
 * on at the next connection). */
int ssesub_flush(ssesub *s, char *err, size_t errlen);
/* Reads what the socket holds and calls fn once per message with its
 * channel. 0, or -1 + err when the connection broke. */
int ssesub_read(ssesub *s, void (*fn)(void *ud, const char *channel), void *ud, char *err,
                size_t errlen);

#endif
