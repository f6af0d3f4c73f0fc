/* cli — what every bx subcommand shares: the client, the output mode,
 * the exit codes, calling the API and saying what went wrong, and reading
 * a job's status document (event.h) for a person. */
#ifndef BX_CLI_H
#define BX_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "http.h"

/* Exit codes. --wait and bx wait exit with the job's own code instead,
 * or 128+N when signal N killed it. */
#define EX_OK 0
#define EX_USAGE 1
#define EX_SERVER 2       /* no answer, or the server said no */
#define EX_TIMED_OUT 124  /* the job timed out, or bx gave up waiting */
#define EX_CANCELLED 125  /* the job was cancelled or rejected */

typedef struct bx_cli {
    bx_http *http;
    int json;              /* --json: print the API's JSON, not a summary */
    char token_note[512];  /* why no token was sent, for the 401 message */
} bx_cli;

/* "bx: " + the message, to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sends a request. 0 when the server answered (whatever the status): r
 * holds the answer and *doc (may be NULL if unwanted) the decoded JSON
 * body, a new reference or NULL when the body is not JSON. On no answer,
 * prints why and returns EX_SERVER. */
int cli_request(bx_cli *c, const char *method, const char *path, const char *body,
                size_t body_len, http_resp *r, json_t **doc);

/* Says what the server answered to a failed call ("bx: WHAT: message"),
 * with the hints a person needs for 401 and 403. Returns EX_SERVER. */
int cli_http_error(bx_cli *c, const char *what, const http_resp *r, json_t *doc);

/* cli_request, then cli_http_error unless the status is 2xx. 0 with *doc
 * (a new reference: the decoded JSON body) on 2xx, else EX_SERVER. With
 * c->json and print_json, also prints the raw body on 2xx. */
int cli_call(bx_cli *c, const char *method, const char *path, const char *body, size_t body_len,
             const char *what, int print_json, json_t **doc);

/* The error message of an API error document, borrowed, or NULL. */
const char *cli_error_message(json_t *doc);

/* 1 when id looks like a job id; else says so and returns 0. */
int cli_check_id(const char *id);

/* Numbers from the command line: 0, or -1 after saying what is wrong
 * with the value of option opt. */
int cli_parse_long(const char *opt, const char *s, long min, long max, long *out);
int cli_parse_double(const char *opt, const char *s, double min, double max, double *out);
/* A size such as 1048576, 64k, 16M, 1G. */
int cli_parse_size(const char *opt, const char *s, long *out);
/* Splits "K=V" (key non-empty) into k (copied, up to kn) and *v
 * (borrowed from s). -1 after saying what is wrong. */
int cli_parse_kv(const char *opt, const char *s, char *k, size_t kn, const char **v);

/* The exit code a job's terminal status calls for: its exit code, 128+N
 * for signal N, EX_TIMED_OUT, EX_CANCELLED. */
int cli_job_exit(json_t *st);

/* A job's stream ("stdout"/"stderr") from a status document, decoded
 * from base64 when <stream>_encoding says so, written to fd. 0, or -1
 * when it cannot be decoded or written. */
int cli_write_stream(json_t *st, const char *stream, int fd);

/* Writes len bytes to fd, all of them. 0 or -1. */
int cli_write_all(int fd, const char *buf, size_t len);

/* 12ms, 1.50s, 2m03s, 1h02m */
void cli_fmt_duration(int64_t ms, char *out, size_t n);
/* What ended the job, for a table: "0", "4", "SIGKILL", "timeout", "-". */
void cli_fmt_exit(json_t *st, char *out, size_t n);

/* Milliseconds since the epoch of an RFC 3339 time, or -1. */
int64_t cli_parse_time(const char *s);

/* json_string_value of o[key], or NULL. */
const char *cli_str(json_t *o, const char *key);

#endif
