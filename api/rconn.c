/* rconn — thread-local bx_redis. A registry besides the thread key lets
 * shutdown free connections of threads that never exit through pthreads
 * (the main thread), so a clean exit leaks nothing. */
#include "rconn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rconn_node {
    struct rconn_node *prev, *next;
    bx_redis *r;
} rconn_node;

static pthread_key_t rconn_key;
static pthread_mutex_t rconn_mu = PTHREAD_MUTEX_INITIALIZER;
static rconn_node *rconn_head;
static char *rconn_url;
static int rconn_ready;

static void unlink_node(rconn_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        rconn_head = n->next;
    if (n->next)
        n->next->prev = n->prev;
}

/* Runs at thread exit for a thread that used Redis. */
static void rconn_destroy(void *p)
{
    rconn_node *n = p;
    pthread_mutex_lock(&rconn_mu);
    unlink_node(n);
    pthread_mutex_unlock(&rconn_mu);
    rds_free(n->r);
    free(n);
}

int rconn_init(const char *url, char *err, size_t errlen)
{
    bx_redis *probe = rds_new(url, err, errlen);
    if (!probe)
        return -1;
    rds_free(probe);
    if (!(rconn_url = strdup(url)) || pthread_key_create(&rconn_key, rconn_destroy)) {
        free(rconn_url);
        rconn_url = NULL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rconn_ready = 1;
    return 0;
}

bx_redis *rconn_get(void)
{
    rconn_node *n = pthread_getspecific(rconn_key);
    if (n)
        return n->r;
    char err[256];
    n = calloc(1, sizeof *n);
    if (!n || !(n->r = rds_new(rconn_url, err, sizeof err))) {
        free(n);
        return NULL;
    }
    pthread_mutex_lock(&rconn_mu);
    n->next = rconn_head;
    if (rconn_head)
        rconn_head->prev = n;
    rconn_head = n;
    pthread_mutex_unlock(&rconn_mu);
    pthread_setspecific(rconn_key, n);
    return n->r;
}

void rconn_shutdown(void)
{
    if (!rconn_ready)
        return;
    pthread_mutex_lock(&rconn_mu);
    rconn_node *n = rconn_head;
    rconn_head = NULL;
    pthread_mutex_unlock(&rconn_mu);
    while (n) {
        rconn_node *next = n->next;
        rds_free(n->r);
        free(n);
        n = next;
    }
    pthread_setspecific(rconn_key, NULL); /* the calling thread's, now freed */
    pthread_key_delete(rconn_key);
    free(rconn_url);
    rconn_url = NULL;
    rconn_ready = 0;
}
