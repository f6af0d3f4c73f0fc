/* http — libmicrohttpd glue: request contexts, routing, authentication,
 * bodies, replies, and suspending connections that wait for RabbitMQ. */
#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "audit.h"
#include "clock.h"
#include "handlers_dashboard.h"
#include "handlers_health.h"
#include "handlers_events.h"
#include "handlers_jobs.h"
#include "log.h"
#include "slowconn.h"
#include "tls.h"

/* Per connection, libmicrohttpd's pool holds the request line and headers
 * (beyond it: 414 or 431) and the read and write buffers. */
#define HTTP_CONN_MEMORY (32 * 1024)

struct http_server {
    struct MHD_Daemon *d;
    int quiesced;  /* the listening socket is closed: new connections are refused */
    slowconn *slow;
    tls_pem tls; /* kept while the daemon runs */
};

/* --- replies --------------------------------------------------------------- */

void http_add_header(http_req *req, const char *name, const char *value)
{
    if (req->nheaders >= HTTP_MAX_HEADERS)
        return;
    snprintf(req->hname[req->nheaders], sizeof req->hname[0], "%s", name);
    snprintf(req->hvalue[req->nheaders], sizeof req->hvalue[0], "%s", value);
    req->nheaders++;
}

/* Adds the headers every reply carries and queues resp (which the
 * caller still destroys). 0 when queued. */
static int queue_reply(http_req *req, unsigned status, const char *content_type,
                       struct MHD_Response *resp)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    for (int i = 0; i < req->nheaders; i++)
        MHD_add_response_header(resp, req->hname[i], req->hvalue[i]);
    if (atomic_load(&req->app->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (MHD_queue_response(req->conn, status, resp) != MHD_YES)
        return -1;
    req->replied = 1;
    unsigned cls = status / 100;
    if (cls >= 1 && cls <= 5)
        atomic_fetch_add(&req->app->responses[cls], 1);
    return 0;
}

void http_reply(http_req *req, unsigned status, const char *content_type, char *body, size_t len)
{
    if (req->replied || req->gone) {
        free(body);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return; /* MHD closes the connection when the handler queued nothing */
    }
    queue_reply(req, status, content_type, resp);
    MHD_destroy_response(resp);
}

int http_reply_stream(http_req *req, unsigned status, const char *content_type,
                      MHD_ContentReaderCallback reader, void *cls,
                      MHD_ContentReaderFreeCallback free_fn)
{
    if (req->replied || req->gone) {
        free_fn(cls);
        return -1;
    }
    /* 16 KiB blocks: what one call of the reader may fill */
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, cls, free_fn);
    if (!resp) {
        free_fn(cls);
        return -1;
    }
    int rc = queue_reply(req, status, content_type, resp);
    MHD_destroy_response(resp); /* calls free_fn when it was not queued */
    return rc;
}

void http_reply_text(http_req *req, unsigned status, const char *json)
{
    size_t n = strlen(json);
    char *b = malloc(n + 1);
    if (b)
        memcpy(b, json, n + 1);
    http_reply(req, status, "application/json", b, b ? n : 0);
}

void http_reply_json(http_req *req, unsigned status, const json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT);
    if (!s) {
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    http_reply(req, status, "application/json", s, strlen(s));
}

void http_reply_error(http_req *req, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (!e) {
        /* the message was not valid UTF-8 (it quotes input): say less */
        e = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", "invalid input");
    }
    char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    http_reply(req, status, "application/json", s, s ? strlen(s) : 0);
}

/* --- query ----------------------------------------------------------------- */

const char *http_query(http_req *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

struct each_ctx {
    void (*fn)(void *, const char *, const char *);
    void *ud;
};

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    struct each_ctx *e = cls;
    e->fn(e->ud, k, v);
    return MHD_YES;
}

void http_query_each(http_req *req, void (*fn)(void *ud, const char *k, const char *v), void *ud)
{
    struct each_ctx e = {fn, ud};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, each_arg, &e);
}

/* --- waiting for RabbitMQ -------------------------------------------------- */

/* The publisher's callback: the last thing it does with req is resume
 * it; the pool thread then runs the continuation. */
static void on_published(void *ud)
{
    http_req *req = ud;
    MHD_resume_connection(req->conn);
}

void http_wait(http_req *req, pub_msg *m, http_cont_fn cont)
{
    req->msg = m;
    req->cont = cont;
    req->waiting = 1;
    req->pub_ok = 0;
    req->pub_err[0] = 0;
    /* Suspend before submitting: the confirm may come before we return,
     * and a resume must find the connection already suspended. */
    MHD_suspend_connection(req->conn);
    if (!m) {
        snprintf(req->pub_err, sizeof req->pub_err, "out of memory");
        MHD_resume_connection(req->conn);
        return;
    }
    if (publisher_submit(req->app->pub, m, on_published, req, req->pub_err, sizeof req->pub_err)) {
        req->msg = NULL;
        pub_msg_free(m);
        MHD_resume_connection(req->conn);
    }
}

static void finish_wait(http_req *req)
{
    req->waiting = 0;
    if (req->msg) {
        req->pub_ok = pub_msg_result(req->msg, req->pub_err, sizeof req->pub_err) == 0;
        pub_msg_free(req->msg);
        req->msg = NULL;
    }
    req->cont(req);
    if (!req->replied && !req->waiting)
        http_reply_error(req, 500, "internal", "no reply");
}

/* --- requests -------------------------------------------------------------- */

static int request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] <= ' ' || s[n] > '~' || s[n] == '"' || s[n] == '\\')
            return 0;
    return n >= 1 && n <= HTTP_REQUEST_ID_MAX;
}

/* The client's X-Request-Id, or a new one. -1 when the client's is not
 * fit to pass on (a new one is set all the same, for the reply). */
static int set_request_id(http_req *req)
{
    const char *rid = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid)) {
        snprintf(req->request_id, sizeof req->request_id, "%s", rid);
        return 0;
    }
    id_new(req->request_id);
    return rid ? -1 : 0;
}

/* Routes, checks the method and the token. 0 when the handler may run,
 * -1 when a reply is queued. */
static int admit(http_req *req)
{
    if (req->r.id == R_NONE) {
        http_reply_error(req, 404, "not_found", "no such path");
        return -1;
    }
    if (!route_method_ok(req->r.id, req->method)) {
        http_add_header(req, "Allow", route_allow(req->r.id));
        http_reply_error(req, 405, "method_not_allowed", "method %s is not allowed here (allowed: %s)",
                         req->method, route_allow(req->r.id));
        return -1;
    }
    unsigned scope = route_scope(req->r.id, req->method);
    if (!scope)
        return 0;
    return access_admit(req, scope);
}

static void dispatch(http_req *req)
{
    switch (req->r.id) {
    case R_HEALTHZ:
        handle_healthz(req);
        break;
    case R_READYZ:
        handle_readyz(req);
        break;
    case R_METRICS:
        handle_metrics(req);
        break;
    case R_JOBS:
        if (!strcmp(req->method, "POST"))
            handle_submit(req);
        else
            handle_list(req);
        break;
    case R_JOB:
        if (!strcmp(req->method, "DELETE"))
            handle_cancel(req);
        else
            handle_get(req);
        break;
    case R_JOB_OUTPUT:
        handle_output(req);
        break;
    case R_JOB_EVENTS:
        handle_events(req);
        break;
    case R_WORKERS:
        handle_workers(req);
        break;
    case R_DASHBOARD:
        handle_dashboard(req);
        break;
    case R_NONE:
        break;
    }
    if (!req->replied && !req->waiting)
        http_reply_error(req, 500, "internal", "no reply");
}

static int body_append(http_req *req, const char *data, size_t n)
{
    if (req->too_large || req->body_len + n > API_BODY_MAX) {
        req->too_large = 1;
        return 0;
    }
    if (req->body_len + n + 1 > req->body_cap) {
        size_t nc = req->body_cap ? req->body_cap : 4096;
        while (nc < req->body_len + n + 1)
            nc *= 2;
        char *nb = realloc(req->body, nc);
        if (!nb)
            return -1;
        req->body = nb;
        req->body_cap = nc;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = 0;
    return 0;
}

/* MHD calls this once with the headers, once per piece of body, and once
 * more at the end (with *upload_size == 0): the reply waits for that last
 * call, because libmicrohttpd closes a connection whose reply was queued
 * before the request was read whole, and keep-alive is what makes the
 * throughput. Only a body announced too large is refused up front. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    api_app *app = cls;
    http_req *req = *con_cls;
    if (!req) {
        if (!(req = calloc(1, sizeof *req)))
            return MHD_NO;
        *con_cls = req;
        atomic_fetch_add(&app->inflight, 1);
        req->app = app;
        req->conn = c;
        req->method = method;
        req->t0_ms = clock_mono_ms();
        route_match(url, &req->r);
        req->receiving = req->r.id == R_JOBS && !strcmp(method, "POST");
        if (req->receiving) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > API_BODY_MAX) {
                /* libmicrohttpd sends this at once and closes the
                 * connection without reading the body */
                set_request_id(req);
                http_reply_error(req, 413, "too_large", "the body is larger than %d bytes", API_BODY_MAX);
                audit_refused(req, 413, "the announced body is over the limit (unread, before authentication)");
                slowconn_handling(c);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (req->receiving && !req->replied && body_append(req, upload, *upload_size))
            return MHD_NO; /* out of memory: drop the connection */
        /* A body of unannounced length (chunked) past the limit: a reply
         * cannot be queued in the middle of a body, and reading the rest
         * could last for ever, so the connection closes without one. */
        if (req->too_large && !req->replied) {
            set_request_id(req);
            audit_refused(req, 413, "the body grew over the limit: connection closed");
            return MHD_NO;
        }
        *upload_size = 0; /* else a body nobody asked for */
        return MHD_YES;
    }
    slowconn_handling(c);
    if (req->replied)
        return MHD_YES;
    if (req->waiting) {
        finish_wait(req);
        return MHD_YES;
    }
    if (set_request_id(req)) {
        http_reply_error(req, 400, "bad_request", "header 'X-Request-Id' must be 1 to %d printable characters", HTTP_REQUEST_ID_MAX);
        return MHD_YES;
    }
    if (admit(req))
        return MHD_YES;
    if (req->too_large) {
        http_reply_error(req, 413, "too_large", "the body is larger than %d bytes", API_BODY_MAX);
        audit_refused(req, 413, "the body is over the limit");
    } else
        dispatch(req);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)why;
    api_app *app = cls;
    http_req *req = *con_cls;
    slowconn_idle(c);
    if (!req)
        return;
    *con_cls = NULL;
    if (req->waiting) {
        /* The client left while we waited for RabbitMQ (libmicrohttpd
         * resumed the connection and found it closed). The outcome must
         * still be logged, and a failed submission undone. */
        req->gone = 1;
        finish_wait(req);
    }
    pub_msg_free(req->msg);
    free(req->body);
    free(req->doc);
    free(req->idem_key);
    free(req);
    atomic_fetch_sub(&app->inflight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    LOGW("event=http_error msg=%s", log_q(msg));
}

http_server *http_start(api_app *app, int listen_fd, unsigned threads, char *err, size_t errlen)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const bx_cfg *cfg = app->cfg;
    unsigned timeout_s = cfg->api_timeout_s > 0 ? (unsigned)cfg->api_timeout_s : 60;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    int tls = cfg->tls_cert && *cfg->tls_cert;
    if (tls) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            snprintf(err, errlen, "BX_TLS_CERT is set but this libmicrohttpd has no TLS support");
            goto fail;
        }
        if (tls_load(&s->tls, cfg->tls_cert, cfg->tls_key, err, errlen))
            goto fail;
        flags |= MHD_USE_TLS;
    } else if (cfg->tls_key && *cfg->tls_key) {
        snprintf(err, errlen, "BX_TLS_KEY is set but BX_TLS_CERT is not");
        goto fail;
    }
    if (!(s->slow = slowconn_new(timeout_s, err, errlen)))
        goto fail;
    /* TLS 1.2 and 1.3 only, GnuTLS's usual ciphers */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls.cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls.key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem no_opts[] = {{MHD_OPTION_END, 0, NULL}};
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, app,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, /* first, to catch what the others say */
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
        MHD_OPTION_NOTIFY_CONNECTION, slowconn_notify, s->slow,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)20000,
        MHD_OPTION_ARRAY, tls ? tls_opts : no_opts,
        MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot start the http server (libmicrohttpd refused its options%s)",
                 tls ? " or the TLS certificate and key" : "");
        goto fail;
    }
    return s;
fail:
    slowconn_free(s->slow);
    tls_release(&s->tls);
    free(s);
    return NULL;
}

void http_quiesce(http_server *s)
{
    if (!s || s->quiesced)
        return;
    /* Closed at once rather than at the end: connections made meanwhile
     * are refused and go elsewhere, instead of waiting in the backlog for
     * a server that will never accept them. */
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    s->quiesced = 1;
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d); /* closes the listening socket unless quiesced */
    slowconn_free(s->slow); /* after the daemon: it reports each connection closed */
    tls_release(&s->tls);
    free(s);
}
