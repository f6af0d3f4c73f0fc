/* audit — the audit lines of refused submissions and cancels, and what
 * every audit line shares. */
#include "audit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

void audit_addr(const http_req *req, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    snprintf(out, n, "-");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)n);
}

const char *audit_action(const http_req *req)
{
    return req->method && !strcmp(req->method, "DELETE") ? "cancel" : "submit";
}

void audit_refused(http_req *req, unsigned status, const char *why)
{
    char addr[AUDIT_ADDR_MAX], extra[160] = "";
    audit_addr(req, addr, sizeof addr);
    /* a refused submission made no job; a refused cancel names one */
    const char *id = !strcmp(audit_action(req), "cancel") && req->r.job_id_valid ? req->r.job_id : NULL;
    int o = 0;
    if (id)
        o = snprintf(extra, sizeof extra, " id=%s", id);
    if (req->queue[0] && o >= 0 && (size_t)o < sizeof extra)
        snprintf(extra + o, sizeof extra - (size_t)o, " queue=%s", log_q(req->queue));
    LOGW("event=job_refused audit=%s outcome=refused status=%u token=%s request_id=%s addr=%s%s reason=%s",
         audit_action(req), status, req->token_name[0] ? log_q(req->token_name) : "-",
         log_q(req->request_id), addr, extra, log_q(why));
}
