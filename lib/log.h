/* log — one line of key=value pairs to syslog, and to stderr in the
 * foreground. Values with spaces or quotes are the caller's to quote with
 * log_q(). Messages follow git's wording: lowercase, what failed first. */
#ifndef BX_LOG_H
#define BX_LOG_H

#include <stddef.h>
#include <syslog.h>

/* ident is kept (not copied): pass a string literal. */
void log_open(const char *ident, int facility, int to_stderr);
void log_close(void);
/* Sends the stderr log (fd 2) to path, appended, from now on: what a
 * process started with its stderr on a file should use when that file is
 * rotated. 0 / -1 (errno). */
int log_set_file(const char *path);
/* After a rotation (SIGHUP): reconnects to syslog and, when log_set_file
 * was called, opens its path again. 0 / -1 (errno; the old file stays). */
int log_reopen(void);
/* level is a syslog level (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Quotes s for a key=value line into one of a few rotating thread-local
 * buffers: valid until the 8th following call in the same thread. */
const char *log_q(const char *s);
/* url without its credentials, for a log line or an error message: the
 * whole userinfo becomes "***" (amqp's "guest:secret@host" gives
 * "***@host"; a Redis URL's lone "secret@" is a password too).
 * Into out (cut to outlen); returns out. */
char *log_redact_url(const char *url, char *out, size_t outlen);
/* The same into one of a few rotating thread-local buffers (as log_q). */
const char *log_url(const char *url);

#define LOGE(...) log_msg(LOG_ERR, __VA_ARGS__)
#define LOGW(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define LOGI(...) log_msg(LOG_INFO, __VA_ARGS__)
#define LOGD(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
