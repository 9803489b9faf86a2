/* metrics.h - Prometheus text exposition, and the lease-wait histogram. */
#ifndef SFL_METRICS_H
#define SFL_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define SFL_WAIT_BUCKETS 18

/* Lease waits in seconds: cumulative buckets, as Prometheus wants them.
 * The edges (sfl_wait_bounds) run from 1 ms to 300 s in steps of x2 to
 * x2.5 (1, 2.5, 5 per decade, then 10, 20, 30, 60, 120, 300 s), so a
 * quantile read from them is never off by more than one such step. */
typedef struct sfl_histogram {
    uint64_t bucket[SFL_WAIT_BUCKETS]; /* counts <= bound[i] */
    uint64_t count;
    double sum;
} sfl_histogram;

extern const double sfl_wait_bounds[SFL_WAIT_BUCKETS];

void sfl_histogram_observe(sfl_histogram *h, double seconds);

/* Writers: one "# HELP"/"# TYPE" header per family, then samples. labels is
 * "" or `name="value",...` (already escaped with sfl_metrics_escape). */
void sfl_metrics_family(struct evbuffer *out, const char *name, const char *type, const char *help);
void sfl_metrics_sample(struct evbuffer *out, const char *name, const char *labels, double v);
void sfl_metrics_histogram(struct evbuffer *out, const char *name, const char *help,
                           const sfl_histogram *h);
/* Escapes a label value (backslash, quote, newline) into buf. */
void sfl_metrics_escape(const char *value, char *buf, size_t len);

#endif
