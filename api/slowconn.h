/* slowconn — closes the API's connections whose request does not arrive
 * in time.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that
 * sends one header byte every second never trips it, and a few thousand
 * such clients would hold as many connections for ever. Here each
 * connection's current request (headers and body) must arrive whole
 * within timeout_s of the connection opening or of the previous reply;
 * a watchdog thread shuts down the socket of one that does not, and
 * libmicrohttpd then closes it as it would a client that left. A request
 * being handled (a suspended submit, an event stream) is not timed here. */
#ifndef BX_API_SLOWCONN_H
#define BX_API_SLOWCONN_H

#include <stddef.h>

#include <microhttpd.h>

typedef struct slowconn slowconn;

/* Starts the watchdog. NULL + err. */
slowconn *slowconn_new(unsigned timeout_s, char *err, size_t errlen);
/* Stops the watchdog and frees: after MHD_stop_daemon, which reports
 * every connection closed. */
void slowconn_free(slowconn *w);

/* The MHD_OPTION_NOTIFY_CONNECTION callback; cls is the slowconn. */
void slowconn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe);
/* The connection's request arrived whole: no deadline while it is handled. */
void slowconn_handling(struct MHD_Connection *c);
/* Its reply is done: the next request's clock starts now. */
void slowconn_idle(struct MHD_Connection *c);

#endif
