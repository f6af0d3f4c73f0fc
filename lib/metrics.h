/* metrics — a small Prometheus registry: counters, gauges and histograms
 * with up to two labels, rendered in the text exposition format 0.0.4.
 *
 * A process makes one registry and its families at startup, updates them
 * from its own thread and has statusd render them from the HTTP thread:
 * every call takes the registry's mutex, so any thread may update or
 * render. A family handle stays valid until metrics_free.
 *
 * Updates never fail loudly: a NULL family (its creation failed) or a
 * new series beyond METRICS_MAX_SERIES is ignored, because a metric must
 * never stop a job. Only creation reports errors. */
#ifndef BX_METRICS_H
#define BX_METRICS_H

#include <stddef.h>
#include <stdio.h>

#define METRICS_MAX_LABELS 2
#define METRICS_MAX_BUCKETS 32
/* Series of one family (label value combinations): a guard against a
 * label fed unbounded values, which would grow memory and every scrape. */
#define METRICS_MAX_SERIES 1000

typedef struct metrics metrics;       /* the registry */
typedef struct metric_fam metric_fam; /* a family: one name, its series */

/* NULL on OOM. */
metrics *metrics_new(void);
/* Frees the registry and every family in it. NULL is fine. Nothing may
 * use the registry (no statusd) any more. */
void metrics_free(metrics *m);

/* Creates a family. name and help are copied; label1 and label2 are the
 * label names (NULL = fewer labels; label2 only with label1). A family
 * without labels has its one series at 0 from the start. Returns the
 * family (owned by m), or NULL with err: a name that is not a valid
 * Prometheus name, a name already registered, or OOM. */
metric_fam *metrics_counter(metrics *m, const char *name, const char *help, const char *label1,
                            const char *label2, char *err, size_t errlen);
metric_fam *metrics_gauge(metrics *m, const char *name, const char *help, const char *label1,
                          const char *label2, char *err, size_t errlen);
/* bounds: the buckets' upper bounds, strictly increasing and finite,
 * 1..METRICS_MAX_BUCKETS of them (copied); +Inf is added by itself.
 * A label may not be called "le". */
metric_fam *metrics_histogram(metrics *m, const char *name, const char *help,
                              const double *bounds, size_t nbounds, const char *label1,
                              const char *label2, char *err, size_t errlen);

/* Bucket bounds we use across processes, in seconds and in events. */
extern const double METRICS_SECONDS_BUCKETS[]; /* 5 ms .. 1 h */
extern const size_t METRICS_SECONDS_NBUCKETS;

/* v1, v2: the label values, in the order of the family's labels; NULL
 * or missing ones are "". Values are copied when a series is new. */

/* Counters: adds v (>= 0; a negative v is ignored: counters only grow). */
void metric_add(metric_fam *f, const char *v1, const char *v2, double v);
void metric_inc(metric_fam *f, const char *v1, const char *v2);
/* Gauges: sets, or adds (v may be negative). */
void metric_set(metric_fam *f, const char *v1, const char *v2, double v);
void metric_gauge_add(metric_fam *f, const char *v1, const char *v2, double v);
/* Histograms: counts one observation. */
void metric_observe(metric_fam *f, const char *v1, const char *v2, double v);
/* Makes the series exist (at 0) without changing it, so that a scrape
 * shows a label value before its first event (rate() needs the 0). */
void metric_touch(metric_fam *f, const char *v1, const char *v2);

/* The value of a counter or gauge series, a histogram's count; 0 when
 * the series does not exist. For readiness checks and tests. */
double metric_value(metric_fam *f, const char *v1, const char *v2);

/* Writes every family, in the order they were created, each series in
 * the order it appeared: "# HELP" and "# TYPE" once per family, label
 * values escaped, histograms as cumulative _bucket{le=...} with +Inf,
 * then _sum and _count. 0, or -1 when writing to out failed. */
int metrics_render(metrics *m, FILE *out);

/* The same into a new malloc'd buffer (NUL-terminated; *len without the
 * NUL): the caller frees it. NULL on OOM. */
char *metrics_render_buf(metrics *m, size_t *len);

/* Formats v as Prometheus does: shortest text that reads back the same
 * double, "+Inf", "-Inf", "NaN". Returns out. n >= 32. */
char *metrics_fmt_value(double v, char *out, size_t n);

#endif
