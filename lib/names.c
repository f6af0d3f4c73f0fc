#include "names.h"

#include <stdio.h>

void name_jobs_exchange(char *out, size_t n, const char *ns) { snprintf(out, n, "%s.jobs", ns); }
void name_jobs_queue(char *out, size_t n, const char *ns, const char *queue)
{
    snprintf(out, n, "%s.jobs.%s", ns, queue);
}
void name_events_exchange(char *out, size_t n, const char *ns) { snprintf(out, n, "%s.events", ns); }
void name_results_queue(char *out, size_t n, const char *ns) { snprintf(out, n, "%s.results", ns); }
void name_dead_exchange(char *out, size_t n, const char *ns) { snprintf(out, n, "%s.dlx", ns); }
void name_dead_queue(char *out, size_t n, const char *ns) { snprintf(out, n, "%s.dead", ns); }
void name_retry_exchange(char *out, size_t n, const char *ns) { snprintf(out, n, "%s.retry", ns); }
void name_key(char *out, size_t n, const char *ns, const char *kind, const char *rest)
{
    snprintf(out, n, "%s:%s:%s", ns, kind, rest);
}
