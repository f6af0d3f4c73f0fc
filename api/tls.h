/* tls — the API's certificate and key, read for libmicrohttpd's GnuTLS.
 *
 * The key must be the service's own: a key file others may read is
 * refused (world-readable) or warned about (group-readable, as Debian's
 * ssl-cert group does on purpose). */
#ifndef BX_API_TLS_H
#define BX_API_TLS_H

#include <stddef.h>

typedef struct tls_pem {
    char *cert; /* PEM text, NUL-terminated */
    char *key;
} tls_pem;

/* Reads both files into p. 0, or -1 + err (nothing to free then). */
int tls_load(tls_pem *p, const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Wipes the key and frees. */
void tls_release(tls_pem *p);

#endif
