/* id — UUIDv7 job and request ids: time-ordered, so that history pages
 * by id and sorting by id is sorting by submission time. */
#ifndef BX_ID_H
#define BX_ID_H

#include <stdint.h>

#define ID_LEN 37 /* 36 characters and the NUL */
void id_new(char out[ID_LEN]);
/* 1 when s is a UUID in canonical lowercase form, else 0. */
int id_valid(const char *s);

#endif
