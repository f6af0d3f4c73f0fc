/* slowconn — a list of the open connections, each with the time its
 * current request started, and a thread that shuts down the late ones. */
#include "slowconn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "log.h"

typedef struct sc_conn {
    struct sc_conn *prev, *next;
    int fd;
    atomic_int reading;       /* 1 until the request arrived whole */
    atomic_llong since_ms;    /* monotonic: when the request started */
    int shut;                 /* shut down by the watchdog already */
} sc_conn;

struct slowconn {
    pthread_mutex_t mu; /* the list, and the watchdog's sleep */
    pthread_cond_t cv;
    pthread_t thread;
    int stopping;
    sc_conn head; /* the list's sentinel */
    int64_t timeout_ms;
};

static int64_t tick_ms(int64_t timeout_ms)
{
    int64_t t = timeout_ms / 4;
    return t < 50 ? 50 : t > 1000 ? 1000 : t;
}

/* Shuts down, without closing (the descriptor stays libmicrohttpd's until
 * it reports the connection closed), each connection past its deadline.
 * Under mu. */
static unsigned sweep(slowconn *w, int64_t now)
{
    unsigned n = 0;
    for (sc_conn *c = w->head.next; c != &w->head; c = c->next) {
        if (c->shut || !atomic_load(&c->reading) || now - atomic_load(&c->since_ms) <= w->timeout_ms)
            continue;
        shutdown(c->fd, SHUT_RDWR);
        c->shut = 1;
        n++;
    }
    return n;
}

static void *watchdog(void *arg)
{
    slowconn *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + tick_ms(w->timeout_ms) * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (w->stopping)
            break;
        unsigned n = sweep(w, clock_mono_ms());
        if (n)
            LOGW("event=slow_requests_closed n=%u timeout_s=%lld", n, (long long)(w->timeout_ms / 1000));
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

slowconn *slowconn_new(unsigned timeout_s, char *err, size_t errlen)
{
    slowconn *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->head.prev = w->head.next = &w->head;
    w->timeout_ms = (int64_t)timeout_s * 1000;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&w->thread, NULL, watchdog, w);
    if (e) {
        snprintf(err, errlen, "cannot start the slow request watchdog: %s", strerror(e));
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void slowconn_free(slowconn *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    /* none left once the daemon stopped; freed all the same */
    for (sc_conn *c = w->head.next, *next; c != &w->head; c = next) {
        next = c->next;
        free(c);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void slowconn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe)
{
    slowconn *w = cls;
    sc_conn *c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(c = calloc(1, sizeof *c)))
            return; /* not timed: the idle timeout still applies */
        c->fd = ci->connect_fd;
        atomic_store(&c->reading, 1);
        atomic_store(&c->since_ms, clock_mono_ms());
        pthread_mutex_lock(&w->mu);
        c->prev = w->head.prev;
        c->next = &w->head;
        w->head.prev->next = c;
        w->head.prev = c;
        pthread_mutex_unlock(&w->mu);
        *socket_context = c;
        return;
    }
    /* closed: libmicrohttpd closes the descriptor after this returns, so
     * the watchdog never shuts down a descriptor number reused since */
    if (!c)
        return;
    pthread_mutex_lock(&w->mu);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    pthread_mutex_unlock(&w->mu);
    free(c);
    *socket_context = NULL;
}

static sc_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void slowconn_handling(struct MHD_Connection *conn)
{
    sc_conn *c = conn_of(conn);
    if (c)
        atomic_store(&c->reading, 0);
}

void slowconn_idle(struct MHD_Connection *conn)
{
    sc_conn *c = conn_of(conn);
    if (!c)
        return;
    atomic_store(&c->since_ms, clock_mono_ms());
    atomic_store(&c->reading, 1);
}
