/* histq — the query of GET /v1/jobs: parsed strictly (an unknown or bad
 * parameter is a 400 naming it) into a store_query. Pure, unit-tested. */
#ifndef BX_API_HISTQ_H
#define BX_API_HISTQ_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "job.h"
#include "store.h"

#define HISTQ_LIMIT_DEFAULT 50
#define HISTQ_LIMIT_MAX 1000

/* One decoded query parameter; both strings borrowed. v may be NULL
 * ("?state" without '='). */
typedef struct histq_kv {
    const char *k;
    const char *v;
} histq_kv;

/* q's strings point into kv or into the buffers below: keep both alive
 * while q is used. */
typedef struct histq {
    store_query q;
    char label_key[JOB_NAME_MAX + 1];
    char since[CLOCK_RFC3339_LEN];
    char until[CLOCK_RFC3339_LEN];
} histq;

/* Parses n parameters into h. 0, or -1 with a message naming the
 * parameter in err. */
int histq_parse(const histq_kv *kv, size_t n, histq *h, char *err, size_t errlen);

#endif
