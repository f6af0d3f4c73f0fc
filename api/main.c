/* bx-api — the HTTP API: validates jobs, writes their first status to
 * Redis, publishes them to RabbitMQ with confirms, answers status and
 * history. The main thread only waits for signals and deadlines; the
 * HTTP pool and the publisher thread do the work. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "app.h"
#include "cfg.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "memtrim.h"
#include "publisher.h"
#include "rconn.h"
#include "sse.h"
#include "store.h"

/* Exit codes, at startup only. */
enum { EXIT_CONFIG = 2, EXIT_TOKENS = 3, EXIT_LISTEN = 4, EXIT_START = 5 };

#define DRAIN_MS 10000  /* longest wait for requests in flight at shutdown */
#define TICK_MS 250

/* Binds and listens on "host:port" ("[v6]:port" too; port 0 = any free
 * one). The bound address goes to bound. fd, or -1 + err. */
static int listen_on(const char *addr, char *bound, size_t boundlen, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "listen address '%s' is not host:port", addr);
        return -1;
    }
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl >= sizeof host) {
        snprintf(err, errlen, "listen address '%s' is too long", addr);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int e = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
    if (e) {
        snprintf(err, errlen, "listen address '%s': %s", addr, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 4096))
            break;
        snprintf(err, errlen, "cannot listen on '%s': %s", addr, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
            port = ntohs(s4->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            port = ntohs(s6->sin6_port);
        }
    }
    snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    return fd;
}

static unsigned pool_size(void)
{
    /* Request threads block on Redis round trips, not on RabbitMQ (those
     * requests are suspended), so a few per core keep the cores busy. */
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    n *= 4;
    return (unsigned)(n < 4 ? 4 : n > 64 ? 64 : n);
}

int main(int argc, char **argv)
{
    bx_cfg cfg;
    char err[512], bound[300];
    int rc = EXIT_START, sfd = -1, lfd = -1;
    api_app app;
    http_server *srv = NULL;
    memset(&app, 0, sizeof app);

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cfg_usage("bx-api");
            return 0;
        }
    if (cfg_load(&cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "bx-api: %s\n", err);
        cfg_release(&cfg);
        return EXIT_CONFIG;
    }
    log_open("bx-api", cfg.log_facility, cfg.foreground);
    if (cfg.log_file[0] && log_set_file(cfg.log_file)) {
        fprintf(stderr, "bx-api: BX_LOG_FILE '%s': %s\n", cfg.log_file, strerror(errno));
        cfg_release(&cfg);
        return EXIT_CONFIG;
    }
    app.cfg = &cfg;
    memtrim_setup();

    /* Signals arrive through a signalfd read by this thread alone: block
     * them before any thread starts, so every thread inherits the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
        LOGE("event=start_failed err=%s", log_q(strerror(errno)));
        goto out;
    }

    auth_table *tokens = auth_load(cfg.api_tokens_file, err, sizeof err);
    if (!tokens) {
        LOGE("event=start_failed err=%s", log_q(err));
        rc = EXIT_TOKENS;
        goto out;
    }
    size_t ntokens = auth_count(tokens);
    if (!(app.auth = auth_store_new(tokens))) {
        LOGE("event=start_failed err=\"out of memory\"");
        goto out;
    }
    if (!ntokens)
        LOGW("event=no_tokens file=%s msg=\"every /v1 request will get 401\"", log_q(cfg.api_tokens_file));
    if (rconn_init(cfg.redis_url, err, sizeof err)) {
        LOGE("event=start_failed err=%s", log_q(err));
        rc = EXIT_CONFIG;
        goto out;
    }
    if (!(app.store = store_new(cfg.mongo_url, cfg.ns, err, sizeof err))) {
        LOGE("event=start_failed err=%s", log_q(err));
        rc = EXIT_CONFIG;
        goto out;
    }
    if (!(app.pub = publisher_new(cfg.amqp_url, cfg.ns, cfg.redis_url, cfg.status_ttl_s,
                                  API_CONFIRM_TIMEOUT_MS,
                                  cfg.max_queue_depth > 0 ? 1000 : 0, err, sizeof err))) {
        LOGE("event=start_failed err=%s", log_q(err));
        rc = EXIT_CONFIG;
        goto out;
    }
    if (!(app.events = sse_hub_new(&cfg, app.store, err, sizeof err))) {
        LOGE("event=start_failed err=%s", log_q(err));
        goto out;
    }
    if ((lfd = listen_on(cfg.api_listen, bound, sizeof bound, err, sizeof err)) < 0) {
        LOGE("event=start_failed err=%s", log_q(err));
        rc = EXIT_LISTEN;
        goto out;
    }
    unsigned threads = pool_size();
    if (!(srv = http_start(&app, lfd, threads, err, sizeof err))) {
        LOGE("event=start_failed err=%s", log_q(err));
        goto out;
    }
    lfd = -1; /* the server's now */
    LOGI("event=api_started listen=%s namespace=%s threads=%u tokens=%zu pid=%ld", bound,
         log_q(cfg.ns), threads, ntokens, (long)getpid());

    int stop_sig = 0;
    memtrim trim = {0};
    while (!stop_sig) {
        struct pollfd pf = {sfd, POLLIN, 0};
        if (poll(&pf, 1, TICK_MS) > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    /* after a rotation: the logs, then the tokens file */
                    if (log_reopen()) {
                        int e = errno;
                        LOGE("event=reload_failed what=log_file path=%s error=%s",
                             log_q(cfg.log_file), log_q(strerror(e)));
                    }
                    long n = auth_store_reload(app.auth, cfg.api_tokens_file, err, sizeof err);
                    if (n < 0)
                        LOGE("event=tokens_reload_failed err=%s msg=\"keeping the old tokens\"", log_q(err));
                    else
                        LOGI("event=tokens_reloaded tokens=%ld", n);
                } else {
                    stop_sig = (int)si.ssi_signo;
                }
            }
        }
        publisher_sweep(app.pub);
        uint64_t answered = 0;
        for (int i = 1; i <= 5; i++)
            answered += atomic_load(&app.responses[i]);
        memtrim_tick(&trim, answered, clock_mono_ms());
    }

    LOGI("event=api_stopping signal=%s inflight=%ld", strsignal(stop_sig), atomic_load(&app.inflight));
    atomic_store(&app.draining, 1);
    http_quiesce(srv);
    sse_hub_drain(app.events); /* event streams end: their clients reconnect elsewhere */
    int64_t until = clock_mono_ms() + DRAIN_MS;
    while (atomic_load(&app.inflight) > 0 && clock_mono_ms() < until) {
        publisher_sweep(app.pub);
        poll(NULL, 0, 20);
    }
    if (atomic_load(&app.inflight) > 0)
        LOGW("event=drain_timeout inflight=%ld", atomic_load(&app.inflight));
    /* Stopping the publisher resolves every message still waiting, so no
     * connection stays suspended when the server stops. */
    publisher_stop(app.pub, API_CONFIRM_TIMEOUT_MS);
    rc = 0;
out:
    /* no connection may stay suspended when the server stops */
    sse_hub_stop(app.events);
    http_stop(srv);
    sse_hub_free(app.events);
    if (lfd >= 0)
        close(lfd);
    publisher_free(app.pub);
    store_free(app.store);
    auth_store_free(app.auth);
    rconn_shutdown();
    if (sfd >= 0)
        close(sfd);
    if (rc == 0)
        LOGI("event=api_stopped");
    log_close();
    cfg_release(&cfg);
    return rc;
}
