/* fuzz_event — the result event. Any bytes as a result event on
 * RabbitMQ (what bx-recorder decodes), and any bytes as a command's
 * output: whatever a command writes must come back byte for byte from the
 * stored document, as text when it is UTF-8 without NUL, else as base64. */
/* fuzz-sources: lib/event.c lib/job.c lib/utf8.c lib/clock.c lib/id.c */
#include <jansson.h>
#include <string.h>

#include "event.h"
#include "fuzz.h"
#include "id.h"
#include "utf8.h"

#define FUZZ_ID "0190b3a2-7c4e-7d2a-8f00-123456789abc"

/* An accepted event must survive its own serialization unchanged: the
 * recorder stores what it decoded, and the API serves it again. */
static void decode_any(const char *body, size_t size)
{
    char err[512] = "";
    json_t *ev = event_decode(body, size, err, sizeof err);
    if (!ev) {
        FUZZ_CHECK(err[0], "refused without a reason");
        return;
    }
    FUZZ_CHECK(json_is_object(ev), "not an object");
    FUZZ_CHECK(id_valid(json_string_value(json_object_get(ev, "id"))), "bad id");
    FUZZ_CHECK(state_is_valid(json_string_value(json_object_get(ev, "state"))), "bad state");
    FUZZ_CHECK(json_integer_value(json_object_get(ev, "attempt")) >= 1, "bad attempt");
    char *s = json_dumps(ev, JSON_COMPACT);
    FUZZ_CHECK(s, "an accepted event does not serialize");
    json_t *back = event_decode(s, strlen(s), err, sizeof err);
    FUZZ_CHECK(back, "re-decoding refused: %s\n%s", err, s);
    FUZZ_CHECK(json_equal(ev, back), "event changed on re-decoding");
    json_decref(back);
    free(s);
    json_decref(ev);
}

/* Sets name from out[0..n), serializes the event as the worker publishes
 * it, decodes it as the recorder does, and checks every output field. */
static void output_round_trip(const char *name, const char *out, size_t n, uint64_t total,
                              long cut_at)
{
    char err[512] = "", key[64];
    json_t *ev = json_pack("{s:s, s:s, s:i}", "id", FUZZ_ID, "state", ST_SUCCEEDED, "attempt", 1);
    FUZZ_CHECK(ev, "json_pack failed");
    /* a first call with a cut, then the real one: a stale cut_at must go */
    event_set_output(ev, name, "x", 1, 7, 0);
    event_set_output(ev, name, out, n, total, cut_at);
    char *s = json_dumps(ev, JSON_COMPACT);
    FUZZ_CHECK(s, "event with output does not serialize");
    json_t *back = event_decode(s, strlen(s), err, sizeof err);
    FUZZ_CHECK(back, "event with output refused: %s", err);

    snprintf(key, sizeof key, "%s_encoding", name);
    const char *enc = json_string_value(json_object_get(back, key));
    FUZZ_CHECK(enc, "no %s", key);
    json_t *text = json_object_get(back, name);
    FUZZ_CHECK(json_is_string(text), "no %s text", name);
    const char *t = json_string_value(text);
    size_t tl = json_string_length(text);
    if (!strcmp(enc, "utf-8")) {
        FUZZ_CHECK(utf8_valid_nonul(out, n), "invalid output sent as utf-8");
        FUZZ_CHECK(tl == n && !memcmp(t, out, n), "utf-8 output changed");
    } else {
        FUZZ_CHECK(!strcmp(enc, "base64"), "encoding '%s'", enc);
        FUZZ_CHECK(!utf8_valid_nonul(out, n), "valid utf-8 sent as base64");
        size_t dl = 0;
        char *d = base64_decode(t, tl, &dl);
        FUZZ_CHECK(d, "base64 output does not decode");
        FUZZ_CHECK(dl == n && !memcmp(d, out, n), "base64 output changed");
        free(d);
    }
    snprintf(key, sizeof key, "%s_bytes", name);
    FUZZ_CHECK((uint64_t)json_integer_value(json_object_get(back, key)) == total, "%s wrong", key);
    snprintf(key, sizeof key, "%s_truncated", name);
    FUZZ_CHECK(json_is_boolean(json_object_get(back, key)) &&
                   json_is_true(json_object_get(back, key)) == (cut_at >= 0),
               "%s wrong", key);
    snprintf(key, sizeof key, "%s_cut_at", name);
    json_t *c = json_object_get(back, key);
    if (cut_at >= 0)
        FUZZ_CHECK(json_integer_value(c) == cut_at, "%s wrong", key);
    else
        FUZZ_CHECK(!c, "%s left from an earlier call", key);
    json_decref(back);
    free(s);
    json_decref(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_any((const char *)data, size);
    /* The first byte, when there is one, picks the stream and whether the
     * output was cut; all the bytes are the output, so the seeds of the
     * decoder serve here too. */
    unsigned sel = size ? data[0] : 0;
    const char *name = sel & 1 ? "stderr" : "stdout";
    long cut_at = sel & 2 ? (long)(size / 2) : -1;
    uint64_t total = cut_at >= 0 ? (uint64_t)size + 1000 : (uint64_t)size;
    output_round_trip(name, (const char *)data, size, total, cut_at);
    return 0;
}
