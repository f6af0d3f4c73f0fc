/* event — the status/result document shared by Redis, RabbitMQ and MongoDB. */
#include "event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "id.h"
#include "utf8.h"

static const char *const terminal[] = {ST_SUCCEEDED, ST_FAILED, ST_TIMED_OUT, ST_CANCELLED, ST_REJECTED,
                                       ST_LOST};

int state_is_terminal(const char *state)
{
    for (size_t i = 0; state && i < sizeof terminal / sizeof terminal[0]; i++)
        if (!strcmp(state, terminal[i]))
            return 1;
    return 0;
}

int state_is_valid(const char *state)
{
    return state && (state_is_terminal(state) || !strcmp(state, ST_QUEUED) || !strcmp(state, ST_RUNNING));
}

/* The job's fields a status shows. env and stdin stay out: they may hold
 * secrets, and the status is readable by every token with "read". */
static const char *const shown[] = {"id", "command", "queue", "priority", "labels", "lock",
                                    "idempotency_key", "request_id", "traceparent", "attempt",
                                    "max_retries", "timeout_s", "max_output_bytes", "cwd",
                                    "submitted_at", "attempts"};

json_t *event_new(const bx_job *j, const char *state)
{
    json_t *ev = json_object();
    if (!ev)
        return NULL;
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        json_t *v = json_object_get(j->doc, shown[i]);
        if (v)
            json_object_set(ev, shown[i], v);
    }
    json_object_set_new(ev, "state", json_string(state));
    return ev;
}

void event_set_time(json_t *ev, const char *key, int64_t wall_ms)
{
    char ts[CLOCK_RFC3339_LEN];
    clock_rfc3339(wall_ms, ts);
    json_object_set_new(ev, key, json_string(ts));
}

void event_set_output(json_t *ev, const char *name, const char *kept, size_t kept_len,
                      uint64_t total, long cut_at)
{
    char key[64];
    json_t *text;
    const char *enc = "utf-8";
    if (utf8_valid_nonul(kept, kept_len)) {
        text = json_stringn_nocheck(kept, kept_len);
    } else {
        char *b64 = base64_encode(kept, kept_len, NULL);
        text = b64 ? json_string_nocheck(b64) : json_null();
        free(b64);
        enc = "base64";
    }
    json_object_set_new(ev, name, text);
    snprintf(key, sizeof key, "%s_encoding", name);
    json_object_set_new(ev, key, json_string(enc));
    snprintf(key, sizeof key, "%s_bytes", name);
    json_object_set_new(ev, key, json_integer((json_int_t)total));
    snprintf(key, sizeof key, "%s_truncated", name);
    json_object_set_new(ev, key, json_boolean(cut_at >= 0));
    snprintf(key, sizeof key, "%s_cut_at", name);
    if (cut_at >= 0)
        json_object_set_new(ev, key, json_integer(cut_at));
    else
        json_object_del(ev, key);
}

json_t *event_decode(const char *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *ev = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!ev) {
        snprintf(err, errlen, "event is not valid JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(ev) || !id_valid(json_string_value(json_object_get(ev, "id")))) {
        snprintf(err, errlen, "event lacks a valid 'id'");
        goto fail;
    }
    if (!state_is_valid(json_string_value(json_object_get(ev, "state")))) {
        snprintf(err, errlen, "event lacks a valid 'state'");
        goto fail;
    }
    json_t *a = json_object_get(ev, "attempt");
    if (!json_is_integer(a) || json_integer_value(a) < 1) {
        snprintf(err, errlen, "event lacks a valid 'attempt'");
        goto fail;
    }
    return ev;
fail:
    json_decref(ev);
    return NULL;
}
