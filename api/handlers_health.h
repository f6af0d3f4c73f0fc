/* handlers_health — /healthz, /readyz and /metrics: no token needed. */
#ifndef BX_API_HANDLERS_HEALTH_H
#define BX_API_HANDLERS_HEALTH_H

#include "http.h"

void handle_healthz(http_req *req);
/* 200 when RabbitMQ (the publisher), Redis and MongoDB answer, else 503
 * naming those that do not. */
void handle_readyz(http_req *req);
/* Prometheus text format. */
void handle_metrics(http_req *req);

#endif
