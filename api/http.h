/* http — bx-api's HTTP server (libmicrohttpd): a thread pool polling with
 * epoll, one request context per request, routing and authentication
 * before any handler runs, and replies that always carry the request id.
 *
 * A handler that must wait for RabbitMQ does not hold its thread: it
 * suspends the connection (http_wait) and the publisher resumes it, so a
 * few threads serve thousands of requests waiting for confirms. */
#ifndef BX_API_HTTP_H
#define BX_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "app.h"
#include "auth.h"
#include "id.h"
#include "publisher.h"
#include "route.h"

#define HTTP_REQUEST_ID_MAX 128
#define HTTP_MAX_HEADERS 4

typedef struct http_req http_req;
typedef void (*http_cont_fn)(http_req *req);

struct http_req {
    api_app *app;
    struct MHD_Connection *conn;
    route r;
    const char *method; /* MHD's, valid for the request */
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    char token_name[AUTH_NAME_MAX + 1];
    int64_t t0_ms; /* monotonic, at the first call */
    /* body (POST) */
    char *body;
    size_t body_len, body_cap;
    int receiving, too_large;
    /* waiting for a publish */
    int waiting;
    pub_msg *msg;
    http_cont_fn cont;
    int pub_ok;
    char pub_err[256];
    /* extra response headers, copied */
    int nheaders;
    char hname[HTTP_MAX_HEADERS][32];
    char hvalue[HTTP_MAX_HEADERS][160];
    int replied;
    int gone; /* the connection closed before the reply: replies do nothing */
    /* what handlers keep across a wait; freed with the request */
    char job_id[ID_LEN];
    char *doc; /* JSON text */
    size_t doc_len;
    char *idem_key; /* Redis key of the idempotency key we set, or NULL */
    char queue[72];
};

typedef struct http_server http_server;

/* Serves on listen_fd (bound and listening; the server owns it once
 * started, the caller still does on failure) with threads threads.
 * NULL + err. */
http_server *http_start(api_app *app, int listen_fd, unsigned threads, char *err, size_t errlen);
/* Stops accepting connections and closes the listening socket, so that
 * new ones are refused; requests on open ones still run. */
void http_quiesce(http_server *s);
/* Closes every connection and frees. */
void http_stop(http_server *s);

/* Replies. Each queues the response once; body is taken (malloc'd). */
void http_reply(http_req *req, unsigned status, const char *content_type, char *body, size_t len);
void http_reply_text(http_req *req, unsigned status, const char *json); /* copies, JSON */
void http_reply_json(http_req *req, unsigned status, const json_t *doc); /* borrowed */
void http_reply_error(http_req *req, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Queues a reply whose body reader writes until it returns the end (a
 * MHD_ContentReaderCallback; chunked, of unknown size). free_fn(cls) runs
 * once MHD is done with it, or before this returns when nothing could be
 * queued. 0, or -1 when not queued. */
int http_reply_stream(http_req *req, unsigned status, const char *content_type,
                      MHD_ContentReaderCallback reader, void *cls,
                      MHD_ContentReaderFreeCallback free_fn);
/* Adds a header to the coming reply (value copied, cut to 159 bytes). */
void http_add_header(http_req *req, const char *name, const char *value);

/* A query parameter, decoded; NULL when absent. */
const char *http_query(http_req *req, const char *key);
/* Every query parameter: calls fn for each (value may be NULL). */
void http_query_each(http_req *req, void (*fn)(void *ud, const char *k, const char *v), void *ud);

/* Publishes m and calls cont(req) once RabbitMQ answered (req->pub_ok,
 * req->pub_err), on a pool thread, without holding one meanwhile. Takes
 * m. The handler returns right after calling this. */
void http_wait(http_req *req, pub_msg *m, http_cont_fn cont);

#endif
