/* amqp_raw — RabbitMQ's own rates with rabbitmq-c, the ceiling for every
 * bashexec process that publishes or consumes:
 *
 *   1. publish waiting for each confirm (what an API that confirms one
 *      message at a time on one channel could reach),
 *   2. publish with up to -w confirms in flight,
 *   3. consume + ack one by one with prefetch -p (what a consumer could).
 *
 *   amqp_raw [-u AMQP_URL] -q QUEUE [-n N_EACH] [-N N_WINDOW] [-w WINDOW]
 *            [-p PREFETCH] [-s SIZE] [-x EXCHANGE -k KEY -f FILE]
 *
 * Messages are persistent, SIZE bytes, to a durable queue of its own
 * (QUEUE, deleted at the end). Prints one JSON line.
 *
 * With -x (feed mode) it instead publishes each line of FILE (one JSON
 * document a line) persistently to EXCHANGE with routing key KEY, with
 * WINDOW confirms in flight, and prints when the last was confirmed;
 * tests/bench uses that to hand bx-recorder its result events. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "benchdoc.h"

#define CH_PUB 1
#define CH_SUB 2

static amqp_connection_state_t conn;
/* messages published on CH_PUB so far: confirm tags count on across calls */
static uint64_t pub_seq;

static int rpc_check(const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        fprintf(stderr, "amqp_raw: %s: %s\n", what, amqp_error_string2(r.library_error));
    else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *c = r.reply.decoded;
        fprintf(stderr, "amqp_raw: %s: channel closed: %.*s\n", what, (int)c->reply_text.len,
                (char *)c->reply_text.bytes);
    } else
        fprintf(stderr, "amqp_raw: %s: server error (method 0x%x)\n", what, r.reply.id);
    return -1;
}

static int connect_url(const char *url_in)
{
    char *url = strdup(url_in);
    struct amqp_connection_info ci;
    if (!url || amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_raw: bad AMQP URL\n");
        free(url);
        return -1;
    }
    /* "amqp://host:port/" names the default vhost "/", not "" */
    if (!ci.vhost || !ci.vhost[0])
        ci.vhost = "/";
    conn = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(conn);
    int rc = -1;
    if (!s || amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_raw: cannot connect to %s:%d\n", ci.host, ci.port);
        goto out;
    }
    amqp_rpc_reply_t r = amqp_login(conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                                    ci.user, ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "amqp_raw: login failed\n");
        goto out;
    }
    amqp_channel_open(conn, CH_PUB);
    if (rpc_check("channel.open"))
        goto out;
    amqp_channel_open(conn, CH_SUB);
    if (rpc_check("channel.open"))
        goto out;
    amqp_confirm_select(conn, CH_PUB);
    if (rpc_check("confirm.select"))
        goto out;
    rc = 0;
out:
    free(url);
    return rc;
}

/* Confirm bookkeeping: which of the published messages are confirmed.
 * The channel numbers its publishes from 1 for its whole life; message i
 * (1..n) of this batch has tag base + i. */
typedef struct confirms {
    unsigned char *done; /* [1..n] */
    uint64_t base;
    uint64_t n, low;     /* every tag <= low is confirmed */
    uint64_t count;      /* confirmed so far */
    uint64_t nacks;
} confirms;

static void confirm_mark(confirms *c, uint64_t tag, int multiple, int ack)
{
    if (!ack)
        c->nacks++;
    if (tag <= c->base)
        return;
    tag -= c->base;
    if (tag > c->n)
        return;
    uint64_t from = multiple ? c->low + 1 : tag;
    for (uint64_t t = from; t <= tag; t++)
        if (!c->done[t]) {
            c->done[t] = 1;
            c->count++;
        }
    while (c->low < c->n && c->done[c->low + 1])
        c->low++;
}

/* Handles one frame: blocking when block, else only one already there.
 * Returns 1 if one was handled, 0 if none was there, -1 on error. */
static int read_frame(confirms *c, int block)
{
    amqp_frame_t f;
    struct timeval zero = {0, 0}, ten = {10, 0};
    int rc = amqp_simple_wait_frame_noblock(conn, &f, block ? &ten : &zero);
    if (rc == AMQP_STATUS_TIMEOUT) {
        if (block) {
            fprintf(stderr, "amqp_raw: no confirm within 10 s\n");
            return -1;
        }
        return 0;
    }
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_raw: reading: %s\n", amqp_error_string2(rc));
        return -1;
    }
    if (f.frame_type != AMQP_FRAME_METHOD)
        return 1;
    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f.payload.method.decoded;
        confirm_mark(c, a->delivery_tag, a->multiple, 1);
        return 1;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *a = f.payload.method.decoded;
        confirm_mark(c, a->delivery_tag, a->multiple, 0);
        return 1;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        fprintf(stderr, "amqp_raw: the server closed the channel\n");
        return -1;
    default:
        return 1;
    }
}

static int publish(const char *exchange, const char *key, const void *body, size_t len)
{
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p.content_type = amqp_cstring_bytes("application/json");
    amqp_bytes_t b = {len, (void *)body};
    int rc = amqp_basic_publish(conn, CH_PUB, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(key), 0, 0, &p, b);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_raw: publish: %s\n", amqp_error_string2(rc));
        return -1;
    }
    pub_seq++;
    return 0;
}

/* Publishes n bodies (body(i) gives the i-th), at most window unconfirmed
 * at any time; returns the seconds it took, or -1. */
typedef const char *(*body_fn)(void *ud, uint64_t i, size_t *len);

static double publish_window(const char *exchange, const char *key, uint64_t n, uint64_t window,
                             body_fn body, void *ud, uint64_t *nacks)
{
    confirms c = {calloc(n + 1, 1), pub_seq, n, 0, 0, 0};
    double secs = -1;
    if (!c.done) {
        fprintf(stderr, "amqp_raw: out of memory\n");
        return -1;
    }
    int64_t t0 = bench_now_ns();
    uint64_t sent = 0;
    while (c.count < n) {
        while (sent < n && sent - c.count < window) {
            size_t len;
            const char *b = body(ud, sent, &len);
            if (publish(exchange, key, b, len))
                goto out;
            sent++;
            /* take in the confirms that are already there, without waiting */
            int r;
            while ((r = read_frame(&c, 0)) > 0)
                ;
            if (r < 0)
                goto out;
        }
        if (c.count < n && read_frame(&c, 1) < 0)
            goto out;
    }
    secs = (double)(bench_now_ns() - t0) / 1e9;
    *nacks = c.nacks;
out:
    free(c.done);
    return secs;
}

static const char *fixed_body(void *ud, uint64_t i, size_t *len)
{
    (void)i;
    *len = strlen(ud);
    return ud;
}

typedef struct lines {
    char **v;
    size_t *len;
    size_t n;
} lines;

static const char *line_body(void *ud, uint64_t i, size_t *len)
{
    lines *l = ud;
    *len = l->len[i];
    return l->v[i];
}

static int feed(const char *exchange, const char *key, const char *file, uint64_t window)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        return 1;
    }
    lines l = {0};
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t r;
    int rc = 1;
    while ((r = getline(&line, &lcap, f)) > 0) {
        while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r'))
            line[--r] = 0;
        if (!r)
            continue;
        if (l.n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **v = realloc(l.v, cap * sizeof *v);
            size_t *ln = v ? realloc(l.len, cap * sizeof *ln) : NULL;
            if (v)
                l.v = v;
            if (!v || !ln)
                goto out;
            l.len = ln;
        }
        if (!(l.v[l.n] = strdup(line)))
            goto out;
        l.len[l.n++] = (size_t)r;
    }
    uint64_t nacks = 0;
    int64_t wall0 = bench_wall_ms();
    double secs = publish_window(exchange, key, l.n, window, line_body, &l, &nacks);
    if (secs < 0)
        goto out;
    printf("{\"published\":%zu,\"nacks\":%llu,\"seconds\":%.4f,\"start_wall_ms\":%lld}\n", l.n,
           (unsigned long long)nacks, secs, (long long)wall0);
    rc = nacks ? 1 : 0;
out:
    if (rc && !l.n)
        fprintf(stderr, "amqp_raw: nothing to publish in %s\n", file);
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    free(l.len);
    free(line);
    fclose(f);
    return rc;
}

/* Consumes n messages from queue, acking each one, prefetch at most. */
static double consume(const char *queue, uint64_t n, uint16_t prefetch)
{
    amqp_basic_qos(conn, CH_SUB, 0, prefetch, 0);
    if (rpc_check("basic.qos"))
        return -1;
    amqp_basic_consume(conn, CH_SUB, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (rpc_check("basic.consume"))
        return -1;
    int64_t t0 = bench_now_ns();
    uint64_t got = 0;
    while (got < n) {
        amqp_envelope_t env;
        struct timeval tv = {10, 0};
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            if (amqp_basic_ack(conn, CH_SUB, env.delivery_tag, 0) != AMQP_STATUS_OK) {
                fprintf(stderr, "amqp_raw: basic.ack failed\n");
                amqp_destroy_envelope(&env);
                return -1;
            }
            amqp_destroy_envelope(&env);
            got++;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* a frame that is not a delivery (e.g. a late confirm) */
            amqp_frame_t f;
            if (amqp_simple_wait_frame(conn, &f) != AMQP_STATUS_OK)
                return -1;
            continue;
        }
        fprintf(stderr, "amqp_raw: consume stopped after %llu of %llu messages\n",
                (unsigned long long)got, (unsigned long long)n);
        return -1;
    }
    return (double)(bench_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    const char *url = "amqp://guest:guest@127.0.0.1:5672/", *queue = NULL;
    const char *exchange = NULL, *key = "", *file = NULL;
    long n_each = 3000, n_window = 20000, window = 1000, prefetch = 100, size = 300;
    int o;
    while ((o = getopt(argc, argv, "u:q:n:N:w:p:s:x:k:f:")) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'q': queue = optarg; break;
        case 'n': n_each = strtol(optarg, NULL, 10); break;
        case 'N': n_window = strtol(optarg, NULL, 10); break;
        case 'w': window = strtol(optarg, NULL, 10); break;
        case 'p': prefetch = strtol(optarg, NULL, 10); break;
        case 's': size = strtol(optarg, NULL, 10); break;
        case 'x': exchange = optarg; break;
        case 'k': key = optarg; break;
        case 'f': file = optarg; break;
        default: goto usage;
        }
    }
    if ((!queue && !exchange) || (exchange && !file) || n_each < 1 || n_window < 1 ||
        window < 1 || prefetch < 1 || prefetch > 65535 || size < 1 || size > 1 << 20)
        goto usage;
    if (connect_url(url))
        return 1;
    if (exchange) {
        int rc = feed(exchange, key, file, (uint64_t)window);
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(conn);
        return rc;
    }

    int rc = 1;
    char *body = malloc((size_t)size + 1);
    if (!body)
        goto out;
    /* a job-like JSON body padded to size bytes */
    int h = snprintf(body, (size_t)size + 1, "{\"command\":\"true\",\"queue\":\"bench\",\"pad\":\"");
    for (long i = h > 0 ? h : 0; i < size; i++)
        body[i] = 'x';
    if (size >= 2) {
        body[size - 2] = '"';
        body[size - 1] = '}';
    }
    body[size] = 0;

    amqp_queue_declare(conn, CH_PUB, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
    if (rpc_check("queue.declare"))
        goto out;
    uint64_t nacks1 = 0, nacks2 = 0;
    double s_each = publish_window("", queue, (uint64_t)n_each, 1, fixed_body, body, &nacks1);
    if (s_each < 0)
        goto out;
    amqp_queue_purge(conn, CH_PUB, amqp_cstring_bytes(queue));
    if (rpc_check("queue.purge"))
        goto out;
    double s_win =
        publish_window("", queue, (uint64_t)n_window, (uint64_t)window, fixed_body, body, &nacks2);
    if (s_win < 0)
        goto out;
    double s_con = consume(queue, (uint64_t)n_window, (uint16_t)prefetch);
    if (s_con < 0)
        goto out;
    printf("{\"size\":%ld,\"confirm_each\":{\"n\":%ld,\"per_s\":%.1f},"
           "\"confirm_window\":{\"n\":%ld,\"window\":%ld,\"per_s\":%.1f},"
           "\"consume_ack\":{\"n\":%ld,\"prefetch\":%ld,\"per_s\":%.1f},\"nacks\":%llu}\n",
           size, n_each, (double)n_each / s_each, n_window, window, (double)n_window / s_win,
           n_window, prefetch, (double)n_window / s_con, (unsigned long long)(nacks1 + nacks2));
    rc = 0;
out:
    /* the queue goes whatever happened: nothing of ours stays behind */
    amqp_queue_delete(conn, CH_PUB, amqp_cstring_bytes(queue), 0, 0);
    amqp_get_rpc_reply(conn);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    free(body);
    return rc;
usage:
    fprintf(stderr,
            "usage: amqp_raw [-u URL] -q QUEUE [-n N_EACH] [-N N_WINDOW] [-w WINDOW] "
            "[-p PREFETCH] [-s SIZE]\n"
            "       amqp_raw [-u URL] -x EXCHANGE [-k KEY] -f FILE [-w WINDOW]\n");
    return 2;
}
