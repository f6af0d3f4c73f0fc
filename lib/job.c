/* job — one validator for both a client's request and a worker's message:
 * a message is a request plus the fields only the server may set. */
#include "job.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

typedef enum { F_STR, F_INT, F_NUM, F_STRMAP, F_INTLIST, F_LIMITS } ftype;

/* The keys of "limits": each a positive integer the worker caps by its own. */
static const char *const limit_keys[] = {"cpu_s", "as_mb", "nofile", "nproc", "fsize_mb"};

typedef struct field {
    const char *name;
    ftype type;
    int server; /* set by the server only: refused in a request */
    double min, max; /* numbers: range; strings: length */
} field;

static const field fields[] = {
    {"command", F_STR, 0, 1, JOB_COMMAND_MAX},
    {"env", F_STRMAP, 0, 0, 0},
    {"cwd", F_STR, 0, 1, 4096},
    {"stdin", F_STR, 0, 0, 1 << 20},
    {"timeout_s", F_NUM, 0, 0, 30 * 86400},
    {"max_output_bytes", F_INT, 0, 1, 1L << 40},
    {"queue", F_STR, 0, 1, JOB_QUEUE_MAX},
    {"priority", F_INT, 0, 0, 9},
    {"max_retries", F_INT, 0, 0, 100},
    {"retry_backoff_s", F_NUM, 0, 0, 86400},
    {"retry_on", F_INTLIST, 0, 0, 255},
    {"idempotency_key", F_STR, 0, 1, JOB_NAME_MAX},
    {"lock", F_STR, 0, 1, JOB_NAME_MAX},
    {"labels", F_STRMAP, 0, 0, 0},
    {"limits", F_LIMITS, 0, 0, 0},
    {"id", F_STR, 1, 36, 36},
    {"attempt", F_INT, 1, 1, 1000},
    {"submitted_at", F_STR, 1, 1, 64},
    {"submitted_ms", F_INT, 1, 0, 1e15},
    {"request_id", F_STR, 1, 1, 128},
    {"traceparent", F_STR, 1, 1, 128},
    {"attempts", F_INTLIST, 1, 0, 0}, /* earlier attempts' outcomes: checked loosely below */
};

/* 1 when any string inside v holds a NUL byte. */
static int has_nul(json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_string(v))
        return strlen(json_string_value(v)) != json_string_length(v);
    if (json_is_object(v)) {
        json_object_foreach(v, k, x) {
            if (has_nul(x))
                return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            if (has_nul(x))
                return 1;
        }
    }
    return 0;
}

static int bad(char *err, size_t errlen, const char *fmt, const char *name)
{
    snprintf(err, errlen, fmt, name);
    return -1;
}

static int queue_name_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return 0;
    return 1;
}

static int check_strmap(json_t *v, const char *name, int is_env, char *err, size_t errlen)
{
    const char *k;
    json_t *x;
    char msg[300];
    if (!json_is_object(v))
        return bad(err, errlen, "field '%s' must be an object of strings", name);
    if (json_object_size(v) > 256)
        return bad(err, errlen, "field '%s' has more than 256 entries", name);
    json_object_foreach(v, k, x) {
        if (!json_is_string(x) || json_string_length(x) > 65536 ||
            strlen(json_string_value(x)) != json_string_length(x)) {
            snprintf(msg, sizeof msg, "field '%s': value of '%.100s' must be a string without NUL of at most 64 KiB", name, k);
            return bad(err, errlen, "%s", msg);
        }
        size_t kl = strlen(k);
        int okkey = kl > 0 && kl <= JOB_NAME_MAX;
        if (is_env)
            okkey = okkey && !strchr(k, '=');
        else
            okkey = okkey && !strchr(k, '.') && k[0] != '$' && !strchr(k, ':');
        if (!okkey) {
            snprintf(msg, sizeof msg, "field '%s': bad key '%.100s'%s", name, k,
                     is_env ? " (non-empty, no '=')" : " (1-200 characters, no '.', ':' or leading '$')");
            return bad(err, errlen, "%s", msg);
        }
    }
    return 0;
}

static int check_field(const field *f, json_t *v, char *err, size_t errlen)
{
    char msg[200];
    switch (f->type) {
    case F_STR: {
        if (!json_is_string(v))
            return bad(err, errlen, "field '%s' must be a string", f->name);
        size_t n = json_string_length(v);
        if (n < f->min || n > f->max) {
            snprintf(msg, sizeof msg, "field '%s' must be %.0f to %.0f bytes long", f->name, f->min, f->max);
            return bad(err, errlen, "%s", msg);
        }
        if (strcmp(f->name, "stdin") && strlen(json_string_value(v)) != n)
            return bad(err, errlen, "field '%s' must not contain NUL", f->name);
        if (!strcmp(f->name, "queue") && !queue_name_ok(json_string_value(v)))
            return bad(err, errlen, "field '%s' may hold only letters, digits, '-' and '_'", f->name);
        return 0;
    }
    case F_INT:
    case F_NUM: {
        double d;
        if (f->type == F_INT ? !json_is_integer(v) : !json_is_number(v))
            return bad(err, errlen, f->type == F_INT ? "field '%s' must be an integer" : "field '%s' must be a number", f->name);
        d = json_number_value(v);
        if (!isfinite(d) || d < f->min || d > f->max) {
            snprintf(msg, sizeof msg, "field '%s' must be between %.0f and %.0f", f->name, f->min, f->max);
            return bad(err, errlen, "%s", msg);
        }
        return 0;
    }
    case F_LIMITS: {
        const char *k;
        json_t *x;
        if (!json_is_object(v))
            return bad(err, errlen, "field '%s' must be an object", f->name);
        json_object_foreach(v, k, x) {
            int known = 0;
            for (size_t i = 0; i < sizeof limit_keys / sizeof limit_keys[0]; i++)
                known |= !strcmp(k, limit_keys[i]);
            if (!known) {
                snprintf(msg, sizeof msg, "field 'limits': unknown limit '%.60s' (cpu_s, as_mb, nofile, nproc, fsize_mb)", k);
                return bad(err, errlen, "%s", msg);
            }
            if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > (1LL << 40)) {
                snprintf(msg, sizeof msg, "field 'limits': '%.60s' must be a positive integer", k);
                return bad(err, errlen, "%s", msg);
            }
        }
        return 0;
    }
    case F_STRMAP:
        return check_strmap(v, f->name, !strcmp(f->name, "env"), err, errlen);
    case F_INTLIST: {
        if (!json_is_array(v))
            return bad(err, errlen, "field '%s' must be an array", f->name);
        if (!strcmp(f->name, "attempts"))
            return has_nul(v) ? bad(err, errlen, "field '%s' must not contain NUL", f->name) : 0;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (!json_is_integer(x) || json_integer_value(x) < f->min || json_integer_value(x) > f->max)
                return bad(err, errlen, "field '%s' must be an array of exit codes (0-255)", f->name);
        }
        return 0;
    }
    }
    return 0;
}

static const char *str(json_t *doc, const char *k)
{
    return json_string_value(json_object_get(doc, k));
}

/* Fills the borrowed views of j from j->doc, which has been validated. */
static void job_bind(bx_job *j)
{
    json_t *d = j->doc, *v;
    j->id = str(d, "id");
    j->command = str(d, "command");
    j->env = json_object_get(d, "env");
    j->cwd = str(d, "cwd");
    if ((v = json_object_get(d, "stdin"))) {
        j->stdin_data = json_string_value(v);
        j->stdin_len = json_string_length(v);
    } else {
        j->stdin_data = NULL;
        j->stdin_len = 0;
    }
    v = json_object_get(d, "timeout_s");
    j->timeout_s = v ? (int)ceil(json_number_value(v)) : 0;
    j->max_output_bytes = (long)json_integer_value(json_object_get(d, "max_output_bytes"));
    j->queue = str(d, "queue") ? str(d, "queue") : "default";
    j->priority = (int)json_integer_value(json_object_get(d, "priority"));
    j->max_retries = (int)json_integer_value(json_object_get(d, "max_retries"));
    v = json_object_get(d, "retry_backoff_s");
    j->retry_backoff_s = v ? json_number_value(v) : 1.0;
    j->retry_on = json_object_get(d, "retry_on");
    j->idempotency_key = str(d, "idempotency_key");
    j->lock = str(d, "lock");
    j->labels = json_object_get(d, "labels");
    j->limits = json_object_get(d, "limits");
    v = json_object_get(d, "attempt");
    j->attempt = v ? (int)json_integer_value(v) : 1;
    j->submitted_ms = json_integer_value(json_object_get(d, "submitted_ms"));
    j->request_id = str(d, "request_id");
    j->traceparent = str(d, "traceparent");
}

/* 1 when arrays and objects in the JSON text nest deeper than max: told
 * before jansson builds (and recurses through) the tree. */
static int too_deep(const char *s, size_t len, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max)
                return 1;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return 0;
}

static int job_decode(bx_job *j, const char *body, size_t len, int server, char *err, size_t errlen)
{
    json_error_t je;
    memset(j, 0, sizeof *j);
    if (too_deep(body, len, JOB_DEPTH_MAX)) {
        snprintf(err, errlen, "body nests arrays and objects deeper than %d levels", JOB_DEPTH_MAX);
        return -1;
    }
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!doc) {
        snprintf(err, errlen, "body is not valid JSON: %s at line %d column %d", je.text, je.line, je.column);
        return -1;
    }
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "body must be a JSON object");
        goto fail;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v) {
        const field *f = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (!strcmp(fields[i].name, k))
                f = &fields[i];
        if (!f || (f->server && !server)) {
            char name[120];
            snprintf(name, sizeof name, "%.100s", k);
            bad(err, errlen, "unknown field '%s'", name);
            goto fail;
        }
        if (json_is_null(v) && !server)
            continue; /* null means "not given" */
        if (check_field(f, v, err, errlen))
            goto fail;
    }
    if (!json_is_string(json_object_get(doc, "command"))) {
        snprintf(err, errlen, "field 'command' is required");
        goto fail;
    }
    if (server && (!id_valid(str(doc, "id")) || !json_is_integer(json_object_get(doc, "attempt")))) {
        snprintf(err, errlen, "message lacks a valid 'id' or 'attempt'");
        goto fail;
    }
    /* drop the nulls so that every reader sees "absent" one way */
    void *tmp;
    json_object_foreach_safe(doc, tmp, k, v) {
        if (json_is_null(v))
            json_object_del(doc, k);
    }
    j->doc = doc;
    job_bind(j);
    return 0;
fail:
    json_decref(doc);
    return -1;
}

int job_from_request(bx_job *j, const char *body, size_t len, char *err, size_t errlen)
{
    return job_decode(j, body, len, 0, err, errlen);
}

int job_from_message(bx_job *j, const char *body, size_t len, char *err, size_t errlen)
{
    return job_decode(j, body, len, 1, err, errlen);
}

void job_assign(bx_job *j, const char *id, int64_t submitted_ms, const char *request_id)
{
    char ts[CLOCK_RFC3339_LEN];
    clock_rfc3339(submitted_ms, ts);
    json_object_set_new(j->doc, "id", json_string(id));
    json_object_set_new(j->doc, "attempt", json_integer(1));
    json_object_set_new(j->doc, "submitted_ms", json_integer(submitted_ms));
    json_object_set_new(j->doc, "submitted_at", json_string(ts));
    if (!json_object_get(j->doc, "queue"))
        json_object_set_new(j->doc, "queue", json_string("default"));
    /* kept within what job_from_message accepts (1-128 bytes), or the
     * worker would dead-letter a job the API already answered 202 for */
    if (request_id && *request_id)
        json_object_set_new(j->doc, "request_id", json_stringn(request_id, strnlen(request_id, 128)));
    job_bind(j);
}

char *job_encode(const bx_job *j, size_t *len)
{
    char *s = json_dumps(j->doc, JSON_COMPACT);
    if (s && len)
        *len = strlen(s);
    return s;
}

void job_set_attempt(bx_job *j, int attempt)
{
    json_object_set_new(j->doc, "attempt", json_integer(attempt));
    j->attempt = attempt;
}

void job_release(bx_job *j)
{
    if (!j)
        return;
    json_decref(j->doc);
    memset(j, 0, sizeof *j);
}
