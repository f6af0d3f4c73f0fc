/* log — syslog always, stderr too in the foreground. The stderr line gets
 * a timestamp and the ident because, unlike syslog, nothing else adds them.
 *
 * Where no syslog daemon listens (a container has no /dev/log), glibc's
 * syslog() tries to connect again on every line: a socket, a connect and
 * a close for each, a fifth of the API's CPU per request. So whether the
 * daemon is there is checked at most once a second, and lines go to
 * syslog only while it is. */
#include "log.h"

#include <fcntl.h>
#include <paths.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"

#define SYSLOG_PROBE_MS 1000

static const char *log_ident = "bx";
static int log_stderr = 1;
static long log_pid; /* our processes never fork without exec */
static int log_facility_saved;
static char log_path[4096]; /* log_set_file's, or "" */
static atomic_int syslog_up;
static atomic_llong syslog_probed_ms;

/* 1 when something accepts a connection on the syslog socket. */
static int syslog_listens(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", _PATH_LOG);
    int types[] = {SOCK_DGRAM, SOCK_STREAM}; /* as glibc: a stream socket when not datagram */
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return 0;
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return 1;
    }
    return 0;
}

/* Whether to hand a line to syslog: the last probe's answer, the probe
 * repeated by one thread at most once a second. */
static int syslog_usable(void)
{
    long long now = (long long)clock_mono_ms(), last = atomic_load(&syslog_probed_ms);
    if (now - last >= SYSLOG_PROBE_MS && atomic_compare_exchange_strong(&syslog_probed_ms, &last, now))
        atomic_store(&syslog_up, syslog_listens());
    return atomic_load(&syslog_up);
}

void log_open(const char *ident, int facility, int to_stderr)
{
    log_ident = ident;
    log_stderr = to_stderr;
    log_pid = (long)getpid();
    log_facility_saved = facility;
    openlog(ident, LOG_PID | LOG_NDELAY, facility);
    atomic_store(&syslog_up, syslog_listens());
    atomic_store(&syslog_probed_ms, (long long)clock_mono_ms());
}

void log_close(void) { closelog(); }

static int open_onto_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (fd != 2 && dup2(fd, 2) < 0) {
        close(fd);
        return -1;
    }
    if (fd != 2)
        close(fd);
    return 0;
}

int log_set_file(const char *path)
{
    if (snprintf(log_path, sizeof log_path, "%s", path) >= (int)sizeof log_path) {
        log_path[0] = 0;
        return -1;
    }
    return open_onto_stderr(log_path);
}

int log_reopen(void)
{
    closelog();
    openlog(log_ident, LOG_PID | LOG_NDELAY, log_facility_saved);
    atomic_store(&syslog_up, syslog_listens());
    atomic_store(&syslog_probed_ms, (long long)clock_mono_ms());
    return log_path[0] ? open_onto_stderr(log_path) : 0;
}

static const char *level_name(int level)
{
    switch (level) {
    case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: case LOG_ERR: return "error";
    case LOG_WARNING: return "warning";
    case LOG_NOTICE: case LOG_INFO: return "info";
    default: return "debug";
    }
}

void log_msg(int level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (syslog_usable())
        syslog(level, "level=%s %s", level_name(level), line);
    if (log_stderr) {
        char ts[CLOCK_RFC3339_LEN];
        clock_rfc3339(clock_wall_ms(), ts);
        /* one write per line so lines of concurrent threads never interleave */
        char out[2200];
        int n = snprintf(out, sizeof out, "%s %s[%ld] level=%s %s\n", ts, log_ident,
                         log_pid ? log_pid : (long)getpid(), level_name(level), line);
        if (n > (int)sizeof out - 1)
            n = (int)sizeof out - 1, out[n - 1] = '\n';
        ssize_t w = write(2, out, (size_t)n);
        (void)w;
    }
}

const char *log_q(const char *s)
{
    static _Thread_local char bufs[8][512];
    static _Thread_local unsigned next;
    char *b = bufs[next++ % 8];
    size_t o = 0;
    if (!s)
        return "-";
    b[o++] = '"';
    for (; *s && o < sizeof bufs[0] - 10; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            b[o++] = '\\';
            b[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(b + o, 5, "\\x%02x", ch);
        } else {
            b[o++] = (char)ch;
        }
    }
    if (*s)
        b[o++] = '.', b[o++] = '.', b[o++] = '.';
    b[o++] = '"';
    b[o] = 0;
    return b;
}

char *log_redact_url(const char *url, char *out, size_t outlen)
{
    if (!outlen)
        return out;
    if (!url) {
        snprintf(out, outlen, "-");
        return out;
    }
    /* The credentials end at the last '@', wherever it is: a password
     * holding an unescaped '/', '?' or '@' is still hidden whole, and a
     * later '@' that is no credential costs only some of the host. */
    const char *at = strrchr(url, '@');
    if (!at) {
        snprintf(out, outlen, "%s", url);
        return out;
    }
    const char *scheme = strstr(url, "://");
    size_t keep = scheme && scheme < at ? (size_t)(scheme + 3 - url) : 0;
    snprintf(out, outlen, "%.*s***%s", (int)keep, url, at);
    return out;
}

const char *log_url(const char *url)
{
    static _Thread_local char bufs[4][512];
    static _Thread_local unsigned next;
    char *b = bufs[next++ % 4];
    return log_redact_url(url, b, sizeof bufs[0]);
}
