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

#include "event.h"
#include "id.h"

/* Reads exactly n digits at *p, advancing it. -1 when they are not there. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int histq_time(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off_min = 0;
    if (!s || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || y < 1970)
        return -1;
    if (*p) {
        if (*p != 'T' && *p != 't')
            return -1;
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
            digits(&p, 2, &sec))
            return -1;
        if (h > 23 || mi > 59 || sec > 60) /* 60: a leap second, counted as the next */
            return -1;
        if (*p == '.') {
            p++;
            int nd = 0;
            for (; isdigit((unsigned char)*p); p++, nd++)
                if (nd < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
            if (nd == 0)
                return -1;
            for (; nd < 3; nd++)
                frac_ms *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
                return -1;
            off_min = sign * (oh * 60 + om);
        } else {
            return -1;
        }
        if (*p)
            return -1;
    }
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac_ms;
    /* RFC 3339 has four-digit years: later times cannot be written back */
    return *ms < 0 || *ms > 253402300799999LL ? -1 : 0;
}

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
            if (histq_time(v, &ms))
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
