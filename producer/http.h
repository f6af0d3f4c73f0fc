/* http — bx's HTTP client: one libcurl easy handle per client, kept
 * between requests so that its connection is reused (keep-alive), the
 * token in every request, and errors worded for a person at a terminal.
 * bx load drives many handles at once through http_prepare. */
#ifndef BX_HTTP_H
#define BX_HTTP_H

#include <stddef.h>
#include <curl/curl.h>

typedef struct bx_http bx_http;

/* One answer. body is NUL-terminated (so JSON and text can be read in
 * place) and owned by the response: release it with http_resp_release. */
typedef struct http_resp {
    long status;                  /* HTTP status; 0 when no answer came */
    char *body;                   /* malloc'd, NUL-terminated, or NULL */
    size_t len;                   /* bytes in body, without the NUL */
    size_t cap;
    char ctype[128];              /* Content-Type of the answer, or "" */
    char curl_err[CURL_ERROR_SIZE]; /* libcurl's detail when no answer came */
} http_resp;

/* base_url is copied (trailing slashes dropped); token is copied, may be
 * NULL or "" (then no Authorization header is sent). timeout_ms bounds a
 * whole request (not a stream); 0 = 30 s. NULL with err on failure. */
bx_http *http_new(const char *base_url, const char *token, long timeout_ms, char *err,
                  size_t errlen);
void http_free(bx_http *h);

/* Verifies an https API against the CA certificates in file (PEM; a
 * self-signed server certificate is its own CA) instead of the system's.
 * Copied; NULL or "" = the system's. 0, or -1 on OOM. */
int http_set_ca_file(bx_http *h, const char *file);

/* The base URL, borrowed from h. */
const char *http_base(const bx_http *h);

/* Sends METHOD base_url+path (path starts with '/' and may hold a query)
 * with an optional JSON body (NULL = none). Returns 0 when the server
 * answered, whatever the status (r filled; the caller releases r), or -1
 * with a message such as "cannot reach http://...: Connection refused"
 * in err when it did not. */
int http_do(bx_http *h, const char *method, const char *path, const char *body, size_t body_len,
            http_resp *r, char *err, size_t errlen);

/* A streaming GET (Server-Sent Events): on a 2xx answer every chunk of
 * the body goes to on_data as it arrives, instead of into r->body; on
 * any other status the body is collected into r as http_do does.
 * on_data returns 0 to go on, non-zero to stop. tick (may be NULL) is
 * called at least once a second and stops the stream the same way.
 * Returns 0 when the server answered and the stream ended (closed by the
 * server, or stopped by a callback: *stopped says which), -1 with err
 * when the connection failed. No overall timeout applies. */
typedef int (*http_data_fn)(void *arg, const char *data, size_t len);
typedef int (*http_tick_fn)(void *arg);
int http_stream(bx_http *h, const char *path, http_data_fn on_data, http_tick_fn tick, void *arg,
                http_resp *r, int *stopped, char *err, size_t errlen);

/* For curl multi users: configures the easy handle e, which the caller
 * owns, like the requests of h, with the answer going into r. *hdrs
 * receives a header list the caller frees with curl_slist_free_all after
 * the transfer. body is not copied: it must outlive the transfer. */
int http_prepare(bx_http *h, CURL *e, const char *method, const char *path, const char *body,
                 size_t body_len, http_resp *r, struct curl_slist **hdrs);

/* After a transfer on e (set up by http_prepare) ended with rc: 0 when
 * an answer came (r->status set), or -1 with the message in err. */
int http_finish(bx_http *h, CURL *e, CURLcode rc, http_resp *r, char *err, size_t errlen);

/* Frees r's body; r can be reused. */
void http_resp_release(http_resp *r);

/* Percent-encodes s for a query string: new malloc'd string, or NULL. */
char *http_escape(const char *s);

#endif
