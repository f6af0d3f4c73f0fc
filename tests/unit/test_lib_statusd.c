/* Unit tests of lib/statusd.c: a server on 127.0.0.1:0 answering
 * /metrics, /healthz, /readyz (ready and not), 404 and 405; the address
 * file; bad listen addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "statusd.h"

/* One HTTP/1.0 request to addr ("127.0.0.1:port"): the whole answer,
 * headers and body, as a new string. */
static char *http(const char *addr, const char *method, const char *path)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    const char *colon = strrchr(addr, ':');
    assert_non_null(colon);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method, path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = 0;
    close(fd);
    return buf;
}

static int status_of(const char *resp)
{
    int code = 0;
    sscanf(resp, "HTTP/1.%*d %d", &code);
    return code;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

typedef struct {
    int rabbit_ok, mongo_ok;
} deps;

static int ready_cb(void *ud, statusd_check *c, int max)
{
    deps *d = ud;
    assert_true(max >= 2);
    c[0].name = "rabbitmq";
    c[0].ok = d->rabbit_ok;
    if (!d->rabbit_ok)
        snprintf(c[0].detail, sizeof c[0].detail, "connection refused \"x\"\xff");
    c[1].name = "mongodb";
    c[1].ok = d->mongo_ok;
    return 2;
}

static void test_endpoints(void **state)
{
    (void)state;
    char err[256];
    metrics *m = metrics_new();
    metric_fam *c = metrics_counter(m, "bx_t_total", "T.", NULL, NULL, err, sizeof err);
    metric_inc(c, NULL, NULL);
    deps d = {1, 1};
    statusd_opts o = {.listen = "127.0.0.1:0", .reg = m, .ready = ready_cb, .ud = &d};
    statusd *s = statusd_start(&o, err, sizeof err);
    assert_non_null(s);
    const char *addr = statusd_addr(s);
    assert_true(strncmp(addr, "127.0.0.1:", 10) == 0);
    assert_true(atoi(addr + 10) > 0);

    char *r = http(addr, "GET", "/metrics");
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    assert_string_equal(body_of(r), "# HELP bx_t_total T.\n# TYPE bx_t_total counter\nbx_t_total 1\n");
    free(r);

    r = http(addr, "GET", "/healthz");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "{\"status\":\"ok\"}\n");
    free(r);

    r = http(addr, "GET", "/readyz");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "{\"ready\":true,\"status\":\"ready\","
                                    "\"checks\":{\"rabbitmq\":\"ok\",\"mongodb\":\"ok\"}}\n");
    free(r);

    d.rabbit_ok = 0;
    d.mongo_ok = 0;
    r = http(addr, "GET", "/readyz");
    assert_int_equal(status_of(r), 503);
    assert_string_equal(body_of(r),
                        "{\"ready\":false,\"status\":\"not ready\",\"down\":[\"rabbitmq\",\"mongodb\"],"
                        "\"error\":{\"code\":\"unavailable\",\"message\":\"not ready: rabbitmq, "
                        "mongodb down\"},\"checks\":{\"rabbitmq\":\"connection refused \\\"x\\\"?\","
                        "\"mongodb\":\"down\"}}\n");
    free(r);

    r = http(addr, "GET", "/nope");
    assert_int_equal(status_of(r), 404);
    free(r);
    r = http(addr, "POST", "/metrics");
    assert_int_equal(status_of(r), 405);
    free(r);
    r = http(addr, "HEAD", "/healthz");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "");
    free(r);

    /* the address file, removed again at stop */
    char dir[] = "/tmp/bx-statusd-XXXXXX", path[200], line[100] = "";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(statusd_write_addr(s, dir, "bx-test", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/metrics/bx-test.addr", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    line[strcspn(line, "\n")] = 0;
    assert_string_equal(line, addr);
    assert_int_equal(statusd_write_addr(s, dir, "a/b", err, sizeof err), -1);

    /* the same port again is taken */
    statusd_opts o2 = {.listen = addr};
    assert_null(statusd_start(&o2, err, sizeof err));

    statusd_stop(s);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/metrics", dir);
    rmdir(path);
    rmdir(dir);
    metrics_free(m);
    statusd_stop(NULL);
}

static void test_no_callback_no_registry(void **state)
{
    (void)state;
    char err[256];
    statusd_opts o = {.listen = ":0"};
    statusd *s = statusd_start(&o, err, sizeof err);
    assert_non_null(s);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%s", strrchr(statusd_addr(s), ':') + 1);
    char *r = http(addr, "GET", "/readyz");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "{\"ready\":true,\"status\":\"ready\",\"checks\":{}}\n");
    free(r);
    r = http(addr, "GET", "/metrics");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "");
    free(r);
    statusd_stop(s);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    char err[256];
    const char *bad[] = {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:8x",
                         "[::1:80", "no.such.host.invalid:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        statusd_opts o = {.listen = bad[i]};
        err[0] = 0;
        assert_null(statusd_start(&o, err, sizeof err));
        assert_true(err[0] != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_no_callback_no_registry),
        cmocka_unit_test(test_bad_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
