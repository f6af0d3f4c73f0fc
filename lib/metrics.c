/* metrics — see metrics.h. One mutex per registry: the worker and the
 * recorder update from one thread and statusd reads from another, at a
 * few thousand updates a second at most, so an uncontended lock costs
 * nothing worth a lock-free design. Series are found by a linear scan
 * over their label values: a family has a handful of them. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum kind { M_COUNTER, M_GAUGE, M_HISTOGRAM };

#define METRICS_NAME_MAX 200 /* metric and label names */

typedef struct series {
    char *lv[METRICS_MAX_LABELS]; /* owned label values */
    double value;                 /* counter, gauge */
    double sum;                   /* histogram */
    unsigned long long count;     /* histogram */
    unsigned long long *buckets;  /* histogram: per bucket, not cumulative; owned */
    struct series *next;
} series;

struct metric_fam {
    metrics *m;
    enum kind kind;
    char *name, *help;
    char *ln[METRICS_MAX_LABELS]; /* label names; nlabels of them */
    int nlabels;
    double *bounds;               /* histogram */
    size_t nbounds;
    series *first, **tail;
    size_t nseries;
    metric_fam *next;
};

struct metrics {
    pthread_mutex_t mu;
    metric_fam *first, **tail;
};

const double METRICS_SECONDS_BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                          5,     10,   30,    60,   120, 300,  600, 1800, 3600};
const size_t METRICS_SECONDS_NBUCKETS = sizeof METRICS_SECONDS_BUCKETS / sizeof(double);

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        return NULL;
    }
    m->tail = &m->first;
    return m;
}

static void series_free(series *s)
{
    for (int i = 0; i < METRICS_MAX_LABELS; i++)
        free(s->lv[i]);
    free(s->buckets);
    free(s);
}

static void fam_free(metric_fam *f)
{
    if (!f)
        return;
    for (series *s = f->first, *nx; s; s = nx) {
        nx = s->next;
        series_free(s);
    }
    free(f->name);
    free(f->help);
    for (int i = 0; i < METRICS_MAX_LABELS; i++)
        free(f->ln[i]);
    free(f->bounds);
    free(f);
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    for (metric_fam *f = m->first, *nx; f; f = nx) {
        nx = f->next;
        fam_free(f);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names the same without
 * ':' and not starting with "__" (reserved for Prometheus itself). */
static int name_ok(const char *s, int label)
{
    if (!s || !*s || strlen(s) > METRICS_NAME_MAX || (label && s[0] == '_' && s[1] == '_'))
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (!label && c == ':') || (p > s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* The names of a family's samples: a histogram writes x_bucket, x_sum
 * and x_count, and another family taking one of them (or x) would make
 * an exposition Prometheus refuses. Fills out[0..n), returns n. */
static int sample_names(const metric_fam *f, char out[4][METRICS_NAME_MAX + 8])
{
    static const char *const suffix[] = {"", "_bucket", "_sum", "_count"};
    int n = f->kind == M_HISTOGRAM ? 4 : 1;
    for (int i = 0; i < n; i++)
        snprintf(out[i], sizeof out[i], "%s%s", f->name, suffix[i]);
    return n;
}

static int clashes(const metric_fam *f, const metric_fam *g)
{
    char a[4][METRICS_NAME_MAX + 8], b[4][METRICS_NAME_MAX + 8];
    int na = sample_names(f, a), nb = sample_names(g, b);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (!strcmp(a[i], b[j]))
                return 1;
    return 0;
}

static metric_fam *fam_new(metrics *m, enum kind kind, const char *name, const char *help,
                           const char *l1, const char *l2, const double *bounds, size_t nbounds,
                           char *err, size_t errlen)
{
    metric_fam *f = NULL;
    const char *ln[METRICS_MAX_LABELS] = {l1, l2};

    if (!m) {
        seterr(err, errlen, "no registry");
        return NULL;
    }
    if (!name_ok(name, 0)) {
        seterr(err, errlen, "metric name '%s' is not valid", name ? name : "(null)");
        return NULL;
    }
    if (!l1 && l2) {
        seterr(err, errlen, "metric '%s': a second label without a first", name);
        return NULL;
    }
    for (int i = 0; i < METRICS_MAX_LABELS; i++) {
        if (!ln[i])
            continue;
        if (!name_ok(ln[i], 1) || (kind == M_HISTOGRAM && !strcmp(ln[i], "le"))) {
            seterr(err, errlen, "metric '%s': label name '%s' is not valid", name, ln[i]);
            return NULL;
        }
    }
    if (l1 && l2 && !strcmp(l1, l2)) {
        seterr(err, errlen, "metric '%s': label '%s' given twice", name, l1);
        return NULL;
    }
    if (kind == M_HISTOGRAM) {
        if (!bounds || nbounds == 0 || nbounds > METRICS_MAX_BUCKETS) {
            seterr(err, errlen, "metric '%s': 1 to %d buckets", name, METRICS_MAX_BUCKETS);
            return NULL;
        }
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) {
                seterr(err, errlen, "metric '%s': bucket bounds must be finite and increasing",
                       name);
                return NULL;
            }
    }

    f = calloc(1, sizeof *f);
    if (!f)
        goto oom;
    f->m = m;
    f->kind = kind;
    f->tail = &f->first;
    if (!(f->name = strdup(name)) || !(f->help = strdup(help ? help : "")))
        goto oom;
    for (int i = 0; i < METRICS_MAX_LABELS && ln[i]; i++) {
        if (!(f->ln[i] = strdup(ln[i])))
            goto oom;
        f->nlabels++;
    }
    if (kind == M_HISTOGRAM) {
        if (!(f->bounds = malloc(nbounds * sizeof *f->bounds)))
            goto oom;
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }

    pthread_mutex_lock(&m->mu);
    for (metric_fam *g = m->first; g; g = g->next)
        if (clashes(f, g)) {
            pthread_mutex_unlock(&m->mu);
            seterr(err, errlen, "metric '%s' is already registered", name);
            fam_free(f);
            return NULL;
        }
    *m->tail = f;
    m->tail = &f->next;
    pthread_mutex_unlock(&m->mu);
    if (f->nlabels == 0)
        metric_touch(f, NULL, NULL);
    return f;
oom:
    fam_free(f);
    seterr(err, errlen, "out of memory");
    return NULL;
}

metric_fam *metrics_counter(metrics *m, const char *name, const char *help, const char *label1,
                            const char *label2, char *err, size_t errlen)
{
    return fam_new(m, M_COUNTER, name, help, label1, label2, NULL, 0, err, errlen);
}

metric_fam *metrics_gauge(metrics *m, const char *name, const char *help, const char *label1,
                          const char *label2, char *err, size_t errlen)
{
    return fam_new(m, M_GAUGE, name, help, label1, label2, NULL, 0, err, errlen);
}

metric_fam *metrics_histogram(metrics *m, const char *name, const char *help,
                              const double *bounds, size_t nbounds, const char *label1,
                              const char *label2, char *err, size_t errlen)
{
    return fam_new(m, M_HISTOGRAM, name, help, label1, label2, bounds, nbounds, err, errlen);
}

/* The series of f with these label values; made when create and absent.
 * NULL when absent (and not created: OOM, or too many series). Called
 * with the lock held. */
static series *find(metric_fam *f, const char *v1, const char *v2, int create)
{
    const char *v[METRICS_MAX_LABELS] = {v1 ? v1 : "", v2 ? v2 : ""};
    for (series *s = f->first; s; s = s->next) {
        int i = 0;
        while (i < f->nlabels && !strcmp(s->lv[i], v[i]))
            i++;
        if (i == f->nlabels)
            return s;
    }
    if (!create || f->nseries >= METRICS_MAX_SERIES)
        return NULL;
    series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    for (int i = 0; i < f->nlabels; i++)
        if (!(s->lv[i] = strdup(v[i]))) {
            series_free(s);
            return NULL;
        }
    if (f->kind == M_HISTOGRAM && !(s->buckets = calloc(f->nbounds, sizeof *s->buckets))) {
        series_free(s);
        return NULL;
    }
    *f->tail = s;
    f->tail = &s->next;
    f->nseries++;
    return s;
}

enum op { OP_ADD, OP_SET, OP_GAUGE_ADD, OP_OBSERVE, OP_TOUCH };

static void update(metric_fam *f, enum kind want, const char *v1, const char *v2, enum op op,
                   double v)
{
    if (!f || (want != f->kind && op != OP_TOUCH))
        return;
    if (op == OP_ADD && !(v >= 0)) /* also NaN */
        return;
    pthread_mutex_lock(&f->m->mu);
    series *s = find(f, v1, v2, 1);
    if (s) {
        switch (op) {
        case OP_ADD:
        case OP_GAUGE_ADD:
            s->value += v;
            break;
        case OP_SET:
            s->value = v;
            break;
        case OP_OBSERVE: {
            size_t i = 0;
            while (i < f->nbounds && !(v <= f->bounds[i]))
                i++;
            if (i < f->nbounds) /* the +Inf bucket is the count */
                s->buckets[i]++;
            s->count++;
            s->sum += v;
            break;
        }
        case OP_TOUCH:
            break;
        }
    }
    pthread_mutex_unlock(&f->m->mu);
}

void metric_add(metric_fam *f, const char *v1, const char *v2, double v)
{
    update(f, M_COUNTER, v1, v2, OP_ADD, v);
}

void metric_inc(metric_fam *f, const char *v1, const char *v2)
{
    update(f, M_COUNTER, v1, v2, OP_ADD, 1);
}

void metric_set(metric_fam *f, const char *v1, const char *v2, double v)
{
    update(f, M_GAUGE, v1, v2, OP_SET, v);
}

void metric_gauge_add(metric_fam *f, const char *v1, const char *v2, double v)
{
    update(f, M_GAUGE, v1, v2, OP_GAUGE_ADD, v);
}

void metric_observe(metric_fam *f, const char *v1, const char *v2, double v)
{
    update(f, M_HISTOGRAM, v1, v2, OP_OBSERVE, v);
}

void metric_touch(metric_fam *f, const char *v1, const char *v2)
{
    update(f, M_COUNTER, v1, v2, OP_TOUCH, 0);
}

double metric_value(metric_fam *f, const char *v1, const char *v2)
{
    double v = 0;
    if (!f)
        return 0;
    pthread_mutex_lock(&f->m->mu);
    series *s = find(f, v1, v2, 0);
    if (s)
        v = f->kind == M_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->m->mu);
    return v;
}

/* ---- rendering ---- */

char *metrics_fmt_value(double v, char *out, size_t n)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
    } else if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(out, n, "0"); /* also -0 */
    } else {
        /* The fewest digits that read back as the same double (as Go's
         * strconv.FormatFloat(v, 'g', -1, 64), which Prometheus uses),
         * but whole numbers below 1e15 without an exponent: a counter
         * at 3600 reads "3600", not "3.6e+03". */
        int prec = 1;
        for (; prec < 17; prec++) {
            snprintf(out, n, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
        char e[40]; /* the decimal exponent, exactly: log10 may round */
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        int exp10 = atoi(strchr(e, 'e') + 1);
        if (exp10 >= prec && exp10 < 15)
            prec = exp10 + 1;
        snprintf(out, n, "%.*g", prec, v);
    }
    return out;
}

/* HELP text escapes backslash and newline; label values also '"'. */
static void put_escaped(FILE *out, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* name[suffix]{labels[,le="..."]} */
static void put_sample_name(FILE *out, const metric_fam *f, const series *s, const char *suffix,
                            const char *le)
{
    fputs(f->name, out);
    fputs(suffix, out);
    if (f->nlabels == 0 && !le)
        return;
    fputc('{', out);
    for (int i = 0; i < f->nlabels; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->ln[i]);
        put_escaped(out, s->lv[i], 1);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    fputc('}', out);
}

static void put_family(FILE *out, const metric_fam *f)
{
    static const char *const type[] = {"counter", "gauge", "histogram"};
    char num[64], le[64];
    fprintf(out, "# HELP %s ", f->name);
    put_escaped(out, f->help, 0);
    fprintf(out, "\n# TYPE %s %s\n", f->name, type[f->kind]);
    for (const series *s = f->first; s; s = s->next) {
        if (f->kind != M_HISTOGRAM) {
            put_sample_name(out, f, s, "", NULL);
            fprintf(out, " %s\n", metrics_fmt_value(s->value, num, sizeof num));
            continue;
        }
        unsigned long long cum = 0;
        for (size_t i = 0; i < f->nbounds; i++) {
            cum += s->buckets[i];
            put_sample_name(out, f, s, "_bucket", metrics_fmt_value(f->bounds[i], le, sizeof le));
            fprintf(out, " %llu\n", cum);
        }
        put_sample_name(out, f, s, "_bucket", "+Inf");
        fprintf(out, " %llu\n", s->count);
        put_sample_name(out, f, s, "_sum", NULL);
        fprintf(out, " %s\n", metrics_fmt_value(s->sum, num, sizeof num));
        put_sample_name(out, f, s, "_count", NULL);
        fprintf(out, " %llu\n", s->count);
    }
}

int metrics_render(metrics *m, FILE *out)
{
    if (!m)
        return 0;
    pthread_mutex_lock(&m->mu);
    for (const metric_fam *f = m->first; f; f = f->next)
        put_family(out, f);
    pthread_mutex_unlock(&m->mu);
    return ferror(out) ? -1 : 0;
}

char *metrics_render_buf(metrics *m, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    int rc = metrics_render(m, f);
    if (fclose(f) || rc || !buf) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}
