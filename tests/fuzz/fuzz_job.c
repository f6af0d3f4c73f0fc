/* fuzz_job — the job codec. Any bytes as a POST /v1/jobs body and as a
 * job message; then the round trip a real job makes: a request the API
 * accepts must, once assigned and encoded, be a message every worker
 * accepts unchanged (or the worker would dead-letter a job the API
 * answered 202 for), and its status document must be a valid event. */
/* fuzz-sources: lib/job.c lib/event.c lib/utf8.c lib/clock.c lib/id.c */
#include <jansson.h>
#include <string.h>

#include "event.h"
#include "fuzz.h"
#include "id.h"
#include "job.h"

#define FUZZ_ID "0190b3a2-7c4e-7d2a-8f00-123456789abc"

/* The fields job_bind derives from doc, compared between two decodings. */
static void same_job(const bx_job *a, const bx_job *b)
{
#define SAME_STR(f) \
    FUZZ_CHECK((!a->f && !b->f) || (a->f && b->f && !strcmp(a->f, b->f)), "field " #f " differs")
    SAME_STR(id);
    SAME_STR(command);
    SAME_STR(cwd);
    SAME_STR(queue);
    SAME_STR(idempotency_key);
    SAME_STR(lock);
    SAME_STR(request_id);
    SAME_STR(traceparent);
#undef SAME_STR
    FUZZ_CHECK(a->stdin_len == b->stdin_len, "stdin length %zu != %zu", a->stdin_len, b->stdin_len);
    FUZZ_CHECK(!a->stdin_len || !memcmp(a->stdin_data, b->stdin_data, a->stdin_len), "stdin differs");
    FUZZ_CHECK(a->timeout_s == b->timeout_s && a->max_output_bytes == b->max_output_bytes &&
                   a->priority == b->priority && a->max_retries == b->max_retries &&
                   a->retry_backoff_s == b->retry_backoff_s && a->attempt == b->attempt &&
                   a->submitted_ms == b->submitted_ms,
               "a number differs");
    FUZZ_CHECK(json_equal(a->doc, b->doc), "documents differ");
}

/* What every decoded job promises its readers. */
static void sane_job(const bx_job *j)
{
    FUZZ_CHECK(j->doc && json_is_object(j->doc), "no document");
    FUZZ_CHECK(j->command && *j->command && strlen(j->command) <= JOB_COMMAND_MAX, "bad command");
    FUZZ_CHECK(j->queue && *j->queue && strlen(j->queue) <= JOB_QUEUE_MAX, "bad queue");
    FUZZ_CHECK(j->priority >= 0 && j->priority <= 9, "priority %d", j->priority);
    FUZZ_CHECK(j->max_retries >= 0, "max_retries %d", j->max_retries);
    FUZZ_CHECK(j->timeout_s >= 0 && j->max_output_bytes >= 0, "negative limit");
    FUZZ_CHECK(!j->env || json_is_object(j->env), "env not an object");
    FUZZ_CHECK(!j->labels || json_is_object(j->labels), "labels not an object");
    FUZZ_CHECK(!j->lock || strlen(j->lock) <= JOB_NAME_MAX, "lock too long");
    FUZZ_CHECK(!j->idempotency_key || strlen(j->idempotency_key) <= JOB_NAME_MAX, "key too long");
    FUZZ_CHECK(!j->stdin_len || j->stdin_data, "stdin length without data");
}

/* enc must decode as a message equal to j; returns that message's own
 * encoding, which must be enc again (new, malloc'd). */
static void message_round_trip(const bx_job *j, const char *enc, size_t len)
{
    char err[512] = "";
    bx_job k;
    FUZZ_CHECK(job_from_message(&k, enc, len, err, sizeof err) == 0,
               "encoded job refused as a message: %s\nmessage: %s", err, enc);
    sane_job(&k);
    same_job(j, &k);
    size_t len2 = 0;
    char *enc2 = job_encode(&k, &len2);
    FUZZ_CHECK(enc2 && len2 == len && !memcmp(enc, enc2, len), "re-encoding differs:\n%s\n%s", enc,
               enc2 ? enc2 : "(null)");
    free(enc2);
    job_release(&k);
}

/* The status the API writes first must be a valid event. */
static void status_decodes(const bx_job *j)
{
    char err[512] = "";
    json_t *ev = event_new(j, ST_QUEUED);
    FUZZ_CHECK(ev, "event_new failed");
    char *s = json_dumps(ev, JSON_COMPACT);
    FUZZ_CHECK(s, "status does not serialize");
    json_t *back = event_decode(s, strlen(s), err, sizeof err);
    FUZZ_CHECK(back, "status refused: %s\nstatus: %s", err, s);
    FUZZ_CHECK(json_equal(ev, back), "status changed on decoding");
    json_decref(back);
    free(s);
    json_decref(ev);
}

static void from_request(const char *body, size_t size)
{
    static const char *const server_only[] = {"id", "attempt", "submitted_at", "submitted_ms",
                                              "request_id", "traceparent", "attempts"};
    char err[512] = "";
    bx_job j;
    if (job_from_request(&j, body, size, err, sizeof err)) {
        FUZZ_CHECK(!j.doc, "refused request left a document");
        FUZZ_CHECK(err[0], "refused without a reason");
        job_release(&j);
        return;
    }
    for (size_t i = 0; i < sizeof server_only / sizeof server_only[0]; i++)
        FUZZ_CHECK(!json_object_get(j.doc, server_only[i]), "request set server field '%s'",
                   server_only[i]);
    FUZZ_CHECK(!j.id && j.attempt == 1, "request has an id or an attempt");
    sane_job(&j);

    /* as the API does: assign, encode, publish */
    job_assign(&j, FUZZ_ID, 1763898395123, "fuzz-request-id");
    sane_job(&j);
    FUZZ_CHECK(j.id && id_valid(j.id) && j.attempt == 1, "assigned job lacks id or attempt");
    size_t len = 0;
    char *enc = job_encode(&j, &len);
    FUZZ_CHECK(enc && len == strlen(enc), "encoding failed");
    message_round_trip(&j, enc, len);
    free(enc);
    status_decodes(&j);

    /* as a worker retrying it does */
    job_set_attempt(&j, 2);
    enc = job_encode(&j, &len);
    FUZZ_CHECK(enc, "encoding failed");
    message_round_trip(&j, enc, len);
    free(enc);
    job_release(&j);
}

static void from_message(const char *body, size_t size)
{
    char err[512] = "";
    bx_job j;
    if (job_from_message(&j, body, size, err, sizeof err)) {
        FUZZ_CHECK(!j.doc, "refused message left a document");
        FUZZ_CHECK(err[0], "refused without a reason");
        return;
    }
    sane_job(&j);
    FUZZ_CHECK(j.id && id_valid(j.id), "message without a valid id");
    FUZZ_CHECK(j.attempt >= 1, "attempt %d", j.attempt);
    size_t len = 0;
    char *enc = job_encode(&j, &len);
    FUZZ_CHECK(enc, "encoding failed");
    message_round_trip(&j, enc, len);
    free(enc);
    status_decodes(&j);
    job_release(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    from_request((const char *)data, size);
    from_message((const char *)data, size);
    return 0;
}
