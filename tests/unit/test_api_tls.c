/* Unit tests of api/tls: reading the certificate and key, and refusing a
 * key file every user may read. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls.h"

static char dir[64], cert[128], key[128];

static void put(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/bx-tls-test.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    put(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0644);
    put(key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", 0600);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(cert);
    unlink(key);
    rmdir(dir);
    return 0;
}

static void test_reads_both(void **state)
{
    (void)state;
    tls_pem p;
    char err[256] = "";
    assert_int_equal(tls_load(&p, cert, key, err, sizeof err), 0);
    assert_non_null(strstr(p.cert, "BEGIN CERTIFICATE"));
    assert_non_null(strstr(p.key, "BEGIN PRIVATE KEY"));
    tls_release(&p);
    assert_null(p.cert);
    assert_null(p.key);
    /* group-readable: loaded (with a warning in the log) */
    assert_int_equal(chmod(key, 0640), 0);
    assert_int_equal(tls_load(&p, cert, key, err, sizeof err), 0);
    tls_release(&p);
    assert_int_equal(chmod(key, 0600), 0);
}

static void test_refuses(void **state)
{
    (void)state;
    tls_pem p;
    char err[256] = "";
    assert_int_equal(chmod(key, 0604), 0);
    assert_int_equal(tls_load(&p, cert, key, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by every user"));
    assert_null(p.cert);
    assert_null(p.key);
    assert_int_equal(chmod(key, 0600), 0);

    assert_int_equal(tls_load(&p, cert, "", err, sizeof err), -1);
    assert_non_null(strstr(err, "BX_TLS_KEY"));
    assert_int_equal(tls_load(&p, "/nonexistent/c.pem", key, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/c.pem"));
    assert_int_equal(tls_load(&p, cert, dir, err, sizeof err), -1); /* a directory */
    assert_non_null(strstr(err, "not a file"));
    char empty[160];
    snprintf(empty, sizeof empty, "%s/empty.pem", dir);
    put(empty, "", 0600);
    assert_int_equal(tls_load(&p, cert, empty, err, sizeof err), -1);
    unlink(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_both),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
