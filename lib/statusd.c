/* statusd — see statusd.h. We bind the socket ourselves and hand it to
 * libmicrohttpd, so that the address parsing (and port 0) is ours and
 * getsockname tells which port the kernel chose. */
#include "statusd.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>

struct statusd {
    struct MHD_Daemon *d;
    metrics *reg;
    statusd_ready_fn ready;
    void *ud;
    char addr[INET6_ADDRSTRLEN + 10]; /* "host:port" or "[v6]:port" */
    char *addr_file;                  /* written by statusd_write_addr; removed at stop */
};

/* Splits "host:port", "[v6]:port" or ":port" into host (NULL = every
 * address) and port. 0 / -1 + err. */
static int split_listen(const char *where, char *host, size_t hostlen, char *port,
                        size_t portlen, char *err, size_t errlen)
{
    const char *colon, *h = where;
    size_t hl;
    if (!where || !*where) {
        snprintf(err, errlen, "empty listen address");
        return -1;
    }
    if (where[0] == '[') {
        const char *rb = strchr(where, ']');
        if (!rb || rb[1] != ':') {
            snprintf(err, errlen, "listen address '%s': expected [v6]:port", where);
            return -1;
        }
        h = where + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(where, ':');
        if (!colon) {
            snprintf(err, errlen, "listen address '%s': expected host:port", where);
            return -1;
        }
        hl = (size_t)(colon - where);
    }
    const char *p = colon + 1;
    if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 || atoi(p) > 65535) {
        snprintf(err, errlen, "listen address '%s': bad port", where);
        return -1;
    }
    if (hl >= hostlen || strlen(p) >= portlen) {
        snprintf(err, errlen, "listen address '%s': too long", where);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    if (!strcmp(host, "*"))
        host[0] = 0;
    snprintf(port, portlen, "%s", p);
    return 0;
}

/* A listening socket at listen; its real address into s->addr. */
static int bind_listen(statusd *s, const char *where, char *err, size_t errlen)
{
    char host[256], port[8];
    struct addrinfo hints = {0}, *res = NULL;
    int fd = -1, rc, one = 1;

    if (split_listen(where, host, sizeof host, port, sizeof port, err, errlen))
        return -1;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res))) {
        snprintf(err, errlen, "listen address '%s': %s", where, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 64))
        goto fail;

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl))
        goto fail;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(s->addr, sizeof s->addr, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(s->addr, sizeof s->addr, "%s:%u", ip, ntohs(a->sin_port));
    }
    freeaddrinfo(res);
    return fd;
fail:
    snprintf(err, errlen, "listen address '%s': %s", where, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

/* Queues body (malloc'd, taken) as the answer. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r;
    if (body) {
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(body);
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *doc)
{
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!body)
        return reply(c, 500, "text/plain", strdup("out of memory\n"), 14);
    size_t len = strlen(body);
    char *nl = realloc(body, len + 2); /* a newline, for curl at a terminal */
    if (nl) {
        body = nl;
        body[len++] = '\n';
        body[len] = 0;
    }
    return reply(c, status, "application/json", body, len);
}

/* JSON text must be UTF-8: a detail from a library could be anything. */
static void ascii_only(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80 || (unsigned char)*s < 0x20)
            *s = '?';
}

static enum MHD_Result answer_readyz(statusd *s, struct MHD_Connection *c)
{
    statusd_check checks[STATUSD_MAX_CHECKS];
    int n = 0;
    memset(checks, 0, sizeof checks);
    if (s->ready) {
        n = s->ready(s->ud, checks, STATUSD_MAX_CHECKS);
        if (n < 0)
            n = 0;
        if (n > STATUSD_MAX_CHECKS)
            n = STATUSD_MAX_CHECKS;
    }
    json_t *doc = json_object(), *obj = json_object(), *down = json_array();
    char msg[256] = "";
    size_t mo = 0;
    if (!doc || !obj || !down) {
        json_decref(doc);
        json_decref(obj);
        json_decref(down);
        return reply_json(c, 500, NULL);
    }
    for (int i = 0; i < n; i++) {
        const char *name = checks[i].name ? checks[i].name : "?";
        checks[i].detail[sizeof checks[i].detail - 1] = 0;
        ascii_only(checks[i].detail);
        if (checks[i].ok) {
            json_object_set_new(obj, name, json_string("ok"));
            continue;
        }
        json_object_set_new(obj, name, json_string(checks[i].detail[0] ? checks[i].detail : "down"));
        json_array_append_new(down, json_string(name));
        if (mo < sizeof msg)
            mo += (size_t)snprintf(msg + mo, sizeof msg - mo, "%s%s", mo ? ", " : "", name);
    }
    int ready = json_array_size(down) == 0;
    json_object_set_new(doc, "ready", json_boolean(ready));
    json_object_set_new(doc, "status", json_string(ready ? "ready" : "not ready"));
    if (!ready) {
        char text[300];
        snprintf(text, sizeof text, "not ready: %s down", msg);
        json_object_set_new(doc, "down", down);
        json_object_set_new(doc, "error",
                            json_pack("{s:s,s:s}", "code", "unavailable", "message", text));
    } else {
        json_decref(down);
    }
    json_object_set_new(doc, "checks", obj);
    return reply_json(c, ready ? 200 : 503, doc);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    static int seen; /* the first call only says a request began */
    statusd *s = cls;
    (void)version;
    (void)upload_data;
    if (!*con_cls) {
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* not ours to read: answered below */
        return MHD_YES;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(c, 405, "text/plain", strdup("method not allowed\n"), 19);
    if (!strcmp(url, "/metrics")) {
        size_t len = 0;
        char *buf = metrics_render_buf(s->reg, &len);
        if (!buf)
            return reply(c, 500, "text/plain", strdup("out of memory\n"), 14);
        return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    }
    if (!strcmp(url, "/healthz"))
        return reply_json(c, 200, json_pack("{s:s}", "status", "ok"));
    if (!strcmp(url, "/readyz"))
        return answer_readyz(s, c);
    return reply_json(c, 404, json_pack("{s:{s:s,s:s}}", "error", "code", "not_found", "message",
                                        "try /metrics, /healthz or /readyz"));
}

statusd *statusd_start(const statusd_opts *o, char *err, size_t errlen)
{
    statusd *s = calloc(1, sizeof *s);
    int fd;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->reg = o->reg;
    s->ready = o->ready;
    s->ud = o->ud;
    if ((fd = bind_listen(s, o->listen, err, errlen)) < 0) {
        free(s);
        return NULL;
    }
    /* One polling thread is plenty for a scrape every few seconds; the
     * limits keep a flood of connections from costing the process more. */
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_access, s,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot start the status server at %s", s->addr);
        close(fd);
        free(s);
        return NULL;
    }
    return s;
}

void statusd_stop(statusd *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d); /* closes the listening socket too */
    if (s->addr_file) {
        /* only if it is still ours: a successor may have written its own */
        char line[sizeof s->addr + 2] = "";
        FILE *f = fopen(s->addr_file, "r");
        if (f) {
            if (fgets(line, sizeof line, f))
                line[strcspn(line, "\n")] = 0;
            fclose(f);
            if (!strcmp(line, s->addr))
                unlink(s->addr_file);
        }
        free(s->addr_file);
    }
    free(s);
}

const char *statusd_addr(const statusd *s)
{
    return s ? s->addr : "";
}

int statusd_write_addr(statusd *s, const char *run_dir, const char *name, char *err,
                       size_t errlen)
{
    char dir[4096], path[4200], tmp[4300];
    FILE *f;
    if (!run_dir || !*run_dir || !name || !*name || strchr(name, '/')) {
        snprintf(err, errlen, "bad address file name '%s'", name ? name : "");
        return -1;
    }
    if (snprintf(dir, sizeof dir, "%s/metrics", run_dir) >= (int)sizeof dir) {
        snprintf(err, errlen, "run dir too long");
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s.addr", dir, name);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (mkdir(dir, 0755) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
        return -1;
    }
    if (!(f = fopen(tmp, "w"))) {
        snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "%s\n", s->addr);
    if (fclose(f) || rename(tmp, path)) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    free(s->addr_file);
    s->addr_file = strdup(path); /* OOM: the file merely stays behind */
    return 0;
}
