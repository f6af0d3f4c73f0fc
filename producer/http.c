/* http — libcurl easy handles for bx. The caller has run
 * curl_global_init once before http_new. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "id.h"

#define HTTP_CONNECT_TIMEOUT_MS 5000L
#define HTTP_DEFAULT_TIMEOUT_MS 30000L

struct bx_http {
    CURL *e;            /* kept across requests: its connection stays open */
    char *base;         /* without trailing '/' */
    char *auth;         /* "Authorization: Bearer TOKEN", or NULL */
    char *ca_file;      /* CA bundle for https, or NULL = the system's */
    long timeout_ms;    /* a whole request; streams have none */
    /* the stream in progress (http_stream) */
    http_data_fn on_data;
    http_tick_fn tick;
    void *arg;
    int stopped;
};

bx_http *http_new(const char *base_url, const char *token, long timeout_ms, char *err,
                  size_t errlen)
{
    bx_http *h = calloc(1, sizeof *h);
    if (!h)
        goto oom;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    if (strncmp(base_url, "http://", 7) && strncmp(base_url, "https://", 8)) {
        snprintf(err, errlen, "API URL '%s' is not an http:// or https:// URL", base_url);
        goto fail;
    }
    if (!(h->base = strndup(base_url, n)))
        goto oom;
    if (token && *token) {
        for (const char *p = token; *p; p++)
            if ((unsigned char)*p < 0x21 || *p == 0x7f) {
                /* a header cannot hold it, and a space or newline here is
                 * always a mistake (a file with two lines, say) */
                snprintf(err, errlen, "the API token holds a space or control character");
                goto fail;
            }
        size_t alen = strlen(token) + 32;
        if (!(h->auth = malloc(alen)))
            goto oom;
        snprintf(h->auth, alen, "Authorization: Bearer %s", token);
    }
    h->timeout_ms = timeout_ms > 0 ? timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    if (!(h->e = curl_easy_init())) {
        snprintf(err, errlen, "cannot start libcurl");
        goto fail;
    }
    return h;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    http_free(h);
    return NULL;
}

void http_free(bx_http *h)
{
    if (!h)
        return;
    if (h->e)
        curl_easy_cleanup(h->e);
    free(h->base);
    free(h->ca_file);
    if (h->auth) {
        /* the token should not linger in freed memory */
        memset(h->auth, 0, strlen(h->auth));
        free(h->auth);
    }
    free(h);
}

int http_set_ca_file(bx_http *h, const char *file)
{
    free(h->ca_file);
    h->ca_file = NULL;
    if (file && *file && !(h->ca_file = strdup(file)))
        return -1;
    return 0;
}

const char *http_base(const bx_http *h) { return h->base; }

void http_resp_release(http_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}

static void resp_reset(http_resp *r)
{
    http_resp_release(r);
    r->status = 0;
    r->ctype[0] = 0;
    r->curl_err[0] = 0;
}

/* Appends to r->body, keeping it NUL-terminated. -1 on OOM. */
static int resp_append(http_resp *r, const char *data, size_t len)
{
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return -1;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = 0;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    http_resp *r = userp;
    size_t n = size * nmemb;
    return resp_append(r, data, n) ? 0 : n;
}

/* The stream's write callback: 2xx chunks go to the caller, the rest
 * (an error document) into the response. */
typedef struct stream_ctx {
    bx_http *h;
    http_resp *r;
} stream_ctx;

static size_t on_stream(char *data, size_t size, size_t nmemb, void *userp)
{
    stream_ctx *s = userp;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(s->h->e, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299)
        return resp_append(s->r, data, n) ? 0 : n;
    if (s->h->on_data(s->h->arg, data, n)) {
        s->h->stopped = 1;
        return 0; /* CURLE_WRITE_ERROR, which http_stream takes as a stop */
    }
    return n;
}

static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    bx_http *h = userp;
    if (h->tick && h->tick(h->arg)) {
        h->stopped = 1;
        return 1;
    }
    return 0;
}

/* Keeps the token and the content type of the answer. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    http_resp *r = userp;
    size_t n = size * nmemb;
    if (n > 13 && !strncasecmp(data, "content-type:", 13)) {
        const char *v = data + 13;
        size_t vl = n - 13;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof r->ctype)
            vl = sizeof r->ctype - 1;
        memcpy(r->ctype, v, vl);
        r->ctype[vl] = 0;
    }
    return n;
}

int http_prepare(bx_http *h, CURL *e, const char *method, const char *path, const char *body,
                 size_t body_len, http_resp *r, struct curl_slist **hdrs)
{
    char url[4096];
    if ((size_t)snprintf(url, sizeof url, "%s%s", h->base, path) >= sizeof url)
        return -1;
    resp_reset(r);
    curl_easy_reset(e); /* keeps the connection, drops the last request's options */
    struct curl_slist *l = NULL, *t;
    char rid[ID_LEN], rid_h[ID_LEN + 16];
    id_new(rid);
    snprintf(rid_h, sizeof rid_h, "X-Request-Id: %s", rid);
    if (!(t = curl_slist_append(l, rid_h)))
        goto fail;
    l = t;
    if (!(t = curl_slist_append(l, "Accept: application/json")))
        goto fail;
    l = t;
    if (h->auth) {
        if (!(t = curl_slist_append(l, h->auth)))
            goto fail;
        l = t;
    }
    if (body) {
        if (!(t = curl_slist_append(l, "Content-Type: application/json")))
            goto fail;
        l = t;
    }
    /* no "Expect: 100-continue" round trip before a large submit */
    if (!(t = curl_slist_append(l, "Expect:")))
        goto fail;
    l = t;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bx/1");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, HTTP_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err);
    if (h->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, body ? "POST" : "GET"))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    *hdrs = l;
    return 0;
fail:
    curl_slist_free_all(l);
    return -1;
}

int http_finish(bx_http *h, CURL *e, CURLcode rc, http_resp *r, char *err, size_t errlen)
{
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        return 0;
    }
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        /* "Connection refused" says more than libcurl's sentence about it */
        snprintf(err, errlen, "cannot reach %s: %s", h->base,
                 os_errno ? strerror((int)os_errno) : (r->curl_err[0] ? r->curl_err
                                                                       : curl_easy_strerror(rc)));
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(err, errlen, "cannot reach %s: unknown host", h->base);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(err, errlen, "no answer from %s: %s", h->base,
                 r->curl_err[0] ? r->curl_err : "timed out");
        break;
    case CURLE_OUT_OF_MEMORY:
        snprintf(err, errlen, "out of memory");
        break;
    default:
        snprintf(err, errlen, "request to %s failed: %s", h->base,
                 r->curl_err[0] ? r->curl_err : curl_easy_strerror(rc));
    }
    return -1;
}

int http_do(bx_http *h, const char *method, const char *path, const char *body, size_t body_len,
            http_resp *r, char *err, size_t errlen)
{
    struct curl_slist *hdrs = NULL;
    if (http_prepare(h, h->e, method, path, body, body_len, r, &hdrs)) {
        snprintf(err, errlen, "out of memory (or a path too long)");
        return -1;
    }
    CURLcode rc = curl_easy_perform(h->e);
    int ret = http_finish(h, h->e, rc, r, err, errlen);
    curl_easy_setopt(h->e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    return ret;
}

int http_stream(bx_http *h, const char *path, http_data_fn on_data, http_tick_fn tick, void *arg,
                http_resp *r, int *stopped, char *err, size_t errlen)
{
    struct curl_slist *hdrs = NULL, *t;
    *stopped = 0;
    if (http_prepare(h, h->e, "GET", path, NULL, 0, r, &hdrs) ||
        !(t = curl_slist_append(hdrs, "Accept: text/event-stream"))) {
        curl_slist_free_all(hdrs);
        snprintf(err, errlen, "out of memory (or a path too long)");
        return -1;
    }
    hdrs = t;
    stream_ctx s = {h, r};
    h->on_data = on_data;
    h->tick = tick;
    h->arg = arg;
    h->stopped = 0;
    curl_easy_setopt(h->e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h->e, CURLOPT_TIMEOUT_MS, 0L); /* a stream lasts as long as the job */
    curl_easy_setopt(h->e, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h->e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h->e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h->e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h->e, CURLOPT_XFERINFODATA, h);
    CURLcode rc = curl_easy_perform(h->e);
    int ret;
    if (h->stopped && (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK)) {
        curl_easy_getinfo(h->e, CURLINFO_RESPONSE_CODE, &r->status);
        *stopped = 1;
        ret = 0;
    } else {
        ret = http_finish(h, h->e, rc, r, err, errlen);
    }
    curl_easy_setopt(h->e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    h->on_data = NULL;
    h->tick = NULL;
    h->arg = NULL;
    return ret;
}

char *http_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = 0;
    return out;
}
