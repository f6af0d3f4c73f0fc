/* handlers_health — liveness, readiness, metrics. */
#include "handlers_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rconn.h"
#include "sse.h"

void handle_healthz(http_req *req) { http_reply_text(req, 200, "{\"status\":\"ok\"}"); }

void handle_readyz(http_req *req)
{
    char err[512];
    json_t *checks = json_object();
    char down[64] = "";
    if (!checks) {
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    if (publisher_connected(req->app->pub)) {
        json_object_set_new(checks, "rabbitmq", json_string("ok"));
    } else {
        json_object_set_new(checks, "rabbitmq", json_string("publisher not connected"));
        strcat(down, ", rabbitmq");
    }
    bx_redis *r = rconn_get();
    redisReply *rep = r ? rds_cmd(r, err, sizeof err, "PING") : NULL;
    if (rep) {
        json_object_set_new(checks, "redis", json_string("ok"));
        freeReplyObject(rep);
    } else {
        json_object_set_new(checks, "redis", json_string(r ? err : "out of memory"));
        strcat(down, ", redis");
    }
    if (!store_ping(req->app->store, err, sizeof err)) {
        json_object_set_new(checks, "mongodb", json_string("ok"));
    } else {
        json_object_set_new(checks, "mongodb", json_string(err));
        strcat(down, ", mongodb");
    }
    json_t *doc;
    if (down[0]) {
        char msg[96];
        snprintf(msg, sizeof msg, "not ready: %s down", down + 2);
        doc = json_pack("{s:{s:s,s:s},s:o}", "error", "code", "unavailable", "message", msg,
                        "checks", checks);
    } else {
        doc = json_pack("{s:s,s:o}", "status", "ready", "checks", checks);
    }
    if (!doc) {
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    http_reply_json(req, down[0] ? 503 : 200, doc);
    json_decref(doc);
}

void handle_metrics(http_req *req)
{
    api_app *a = req->app;
    pub_stats ps;
    publisher_stats(a->pub, &ps);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
#define COUNTER(name, help, v)                                                              \
    fprintf(f, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n",          \
            (unsigned long long)(v))
    COUNTER("bx_api_jobs_submitted_total", "Jobs accepted (202).", atomic_load(&a->jobs_submitted));
    COUNTER("bx_api_jobs_rejected_total", "Submissions refused as invalid or over a limit (400, 429).",
            atomic_load(&a->jobs_rejected));
    COUNTER("bx_api_jobs_unavailable_total", "Submissions answered 503: not durably queued.",
            atomic_load(&a->jobs_unavailable));
    COUNTER("bx_api_jobs_cancelled_total", "Queued jobs cancelled.", atomic_load(&a->jobs_cancelled));
    COUNTER("bx_api_amqp_published_total", "Messages published to RabbitMQ.", ps.published);
    COUNTER("bx_api_amqp_confirmed_total", "Messages RabbitMQ confirmed.", ps.confirmed);
    COUNTER("bx_api_amqp_failed_total", "Messages nacked, returned, timed out or lost.", ps.failed);
    COUNTER("bx_api_amqp_reconnects_total", "Times the RabbitMQ connection came back.", ps.reconnects);
#undef COUNTER
    fprintf(f, "# HELP bx_api_http_responses_total HTTP responses by status class.\n"
               "# TYPE bx_api_http_responses_total counter\n");
    for (int c = 1; c <= 5; c++)
        fprintf(f, "bx_api_http_responses_total{code=\"%dxx\"} %lu\n", c, atomic_load(&a->responses[c]));
    fprintf(f, "# HELP bx_api_requests_in_flight Requests being handled.\n"
               "# TYPE bx_api_requests_in_flight gauge\nbx_api_requests_in_flight %ld\n",
            atomic_load(&a->inflight));
    fprintf(f, "# HELP bx_api_event_streams Open GET /v1/jobs/{id}/events streams.\n"
               "# TYPE bx_api_event_streams gauge\nbx_api_event_streams %ld\n",
            sse_hub_streams(a->events));
    fprintf(f, "# HELP bx_api_amqp_connected 1 when the publisher is connected to RabbitMQ.\n"
               "# TYPE bx_api_amqp_connected gauge\nbx_api_amqp_connected %d\n", ps.connected);
    if (fclose(f) || !buf) {
        free(buf);
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    http_reply(req, 200, "text/plain; version=0.0.4", buf, len);
}
