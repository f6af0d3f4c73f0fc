/* id — UUIDv7 job and request ids: time-ordered, so that history pages
 * by id and sorting by id is sorting by submission time. */
#ifndef BX_ID_H
#define BX_ID_H

#include <stdint.h>

#define ID_LEN 37 /* 36 characters and the NUL */
void id_new(char out[ID_LEN]);
/* A new W3C trace context "traceparent": version 00, a random trace id
 * and parent (span) id, flags 01 (sampled). */
#define ID_TRACEPARENT_LEN 56 /* 55 characters and the NUL */
void id_traceparent(char out[ID_TRACEPARENT_LEN]);
/* 1 when s is a UUID in canonical lowercase form, else 0. */
int id_valid(const char *s);

#endif
