/* rec — the recorder: consumes result events from "<ns>.results",
 * writes them to MongoDB in batches and acks each batch only after
 * MongoDB acknowledged it. Undecodable or unstorable events go to
 * "<ns>.dlx" with an x-reason header. */
#ifndef BX_REC_H
#define BX_REC_H

#include <signal.h>

#include "cfg.h"
#include "store.h"

/* Runs until *stop is set (by a signal handler), then writes and acks
 * what it holds (one attempt, none while MongoDB is down: what is not
 * acked RabbitMQ delivers again), closes and returns 0.
 * store is borrowed. Never gives up on a service that is down: it logs
 * and retries with backoff. */
int rec_run(const bx_cfg *cfg, bx_store *store, volatile sig_atomic_t *stop);

/* The next retry delay after cur_ms: doubled, from 100 ms to 5 s. */
int rec_backoff_next(int cur_ms);

#endif
