/* histq — strict parsing of the history query. Times are normalized to
 * the one form the records use (RFC 3339 UTC with milliseconds) so that
 * comparing them as strings is comparing them as times. */
#include "histq.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "event.h"
#include "id.h"

static int bad(char *err, size_t errlen, const char *name, const char *why)
{
    snprintf(err, errlen, "query parameter '%s' %s", name, why);
    return -1;
}

int histq_parse(const histq_kv *kv, size_t n, histq *h, char *err, size_t errlen)
{
    const char *seen[7] = {0};
    static const char *const names[7] = {"state", "queue", "label", "before", "since", "until",
                                         "limit"};
    memset(h, 0, sizeof *h);
    h->q.limit = HISTQ_LIMIT_DEFAULT;
    for (size_t i = 0; i < n; i++) {
        const char *k = kv[i].k ? kv[i].k : "", *v = kv[i].v;
        int which = -1;
        for (int j = 0; j < 7; j++)
            if (!strcmp(k, names[j]))
                which = j;
        if (which < 0) {
            char name[80];
            snprintf(name, sizeof name, "%.64s", k);
            return bad(err, errlen, name, "is unknown (state, queue, label, before, since, until, limit)");
        }
        if (seen[which])
            return bad(err, errlen, k, "is given twice");
        seen[which] = k;
        if (!v || !*v)
            return bad(err, errlen, k, "needs a value");
        switch (which) {
        case 0:
            if (!state_is_valid(v))
                return bad(err, errlen, k, "must be queued, running, succeeded, failed, timed_out, cancelled or rejected");
            h->q.state = v;
            break;
        case 1:
            if (strlen(v) > JOB_QUEUE_MAX)
                return bad(err, errlen, k, "is too long");
            h->q.queue = v;
            break;
        case 2: {
            const char *colon = strchr(v, ':');
            size_t kl = colon ? (size_t)(colon - v) : 0;
            if (!colon || kl == 0 || kl > JOB_NAME_MAX || !colon[1])
                return bad(err, errlen, k, "must be key:value");
            if (memchr(v, '.', kl) || v[0] == '$')
                return bad(err, errlen, k, "has a key with '.' or a leading '$'");
            memcpy(h->label_key, v, kl);
            h->label_key[kl] = 0;
            h->q.label_key = h->label_key;
            h->q.label_value = colon + 1;
            break;
        }
        case 3:
            if (!id_valid(v))
                return bad(err, errlen, k, "must be a job id");
            h->q.before = v;
            break;
        case 4:
        case 5: {
            int64_t ms;
            if (clock_parse_rfc3339(v, &ms))
                return bad(err, errlen, k, "must be an RFC 3339 time such as 2026-11-23T11:46:35Z");
            char *out = which == 4 ? h->since : h->until;
            clock_rfc3339(ms, out);
            if (which == 4)
                h->q.since = out;
            else
                h->q.until = out;
            break;
        }
        case 6: {
            char *end;
            errno = 0;
            long l = strtol(v, &end, 10);
            if (errno || *end || end == v || l < 1 || l > HISTQ_LIMIT_MAX)
                return bad(err, errlen, k, "must be an integer from 1 to 1000");
            h->q.limit = (int)l;
            break;
        }
        }
    }
    return 0;
}
