/* names — every exchange, queue and key name comes from here, prefixed by
 * the namespace, so that two stacks (or two tests) never share one. */
#ifndef BX_NAMES_H
#define BX_NAMES_H

#include <stddef.h>

#define NAME_MAX_LEN 256
/* exchange "<ns>.jobs" (direct; routing key = queue name) */
void name_jobs_exchange(char *out, size_t n, const char *ns);
/* queue "<ns>.jobs.<queue>" (priority 0..9, dead-letters to <ns>.dead) */
void name_jobs_queue(char *out, size_t n, const char *ns, const char *queue);
/* exchange "<ns>.events" (fanout) and its queue "<ns>.results" */
void name_events_exchange(char *out, size_t n, const char *ns);
void name_results_queue(char *out, size_t n, const char *ns);
/* exchange "<ns>.dlx" (fanout) and queue "<ns>.dead" */
void name_dead_exchange(char *out, size_t n, const char *ns);
void name_dead_queue(char *out, size_t n, const char *ns);
/* exchange "<ns>.retry" (direct) and queue "<ns>.retry.<ms>": per-message
 * TTL, dead-lettering back to <ns>.jobs with the original routing key */
void name_retry_exchange(char *out, size_t n, const char *ns);
/* Redis keys "<ns>:<kind>:<rest>", e.g. kind "job", "lease", "cancel" */
void name_key(char *out, size_t n, const char *ns, const char *kind, const char *rest);

#endif
