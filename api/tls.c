/* tls — reading PEM files, and the key file's permissions. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define PEM_MAX (1024 * 1024) /* a certificate chain is a few KiB */

/* The whole of path, NUL-terminated; NULL + err. is_key: check who else
 * may read it, on the descriptor read (no race with a rename). */
static char *read_pem(const char *path, int is_key, char *err, size_t errlen)
{
    const char *what = is_key ? "key" : "certificate";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open TLS %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st = {0};
    char *buf = NULL;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > PEM_MAX) {
        snprintf(err, errlen, "TLS %s '%s' is not a file of 1 byte to 1 MiB", what, path);
        goto fail;
    }
    if (is_key && (st.st_mode & S_IROTH)) {
        snprintf(err, errlen, "TLS key '%s' is readable by every user (mode %04o): chmod 600 it",
                 path, (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    if (is_key && (st.st_mode & S_IRGRP))
        LOGW("event=tls_key_group_readable file=%s mode=%04o msg=\"members of its group can read the API's key\"",
             log_q(path), (unsigned)(st.st_mode & 07777));
    size_t n = (size_t)st.st_size, got = 0;
    if (!(buf = malloc(n + 1))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "cannot read TLS %s '%s': %s", what, path, r ? strerror(errno) : "short read");
            goto fail;
        }
        got += (size_t)r;
    }
    buf[n] = 0;
    close(fd);
    return buf;
fail:
    if (buf) {
        memset(buf, 0, (size_t)st.st_size);
        free(buf);
    }
    close(fd);
    return NULL;
}

int tls_load(tls_pem *p, const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!key_file || !*key_file) {
        snprintf(err, errlen, "BX_TLS_CERT is set but BX_TLS_KEY is not");
        return -1;
    }
    if (!(p->cert = read_pem(cert_file, 0, err, errlen)) || !(p->key = read_pem(key_file, 1, err, errlen))) {
        tls_release(p);
        return -1;
    }
    return 0;
}

void tls_release(tls_pem *p)
{
    if (p->key) {
        memset(p->key, 0, strlen(p->key));
        free(p->key);
    }
    free(p->cert);
    p->cert = p->key = NULL;
}
