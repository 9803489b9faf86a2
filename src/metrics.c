/* metrics.c - Prometheus text format (version 0.0.4) writers.
 *
 * No registry, no global state: the node walks its own counters when
 * /metrics is asked for and writes them here. Label values are escaped;
 * nothing that could carry a credential (a URL) is ever a label.
 */
#include "metrics.h"

#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const double sfl_wait_bounds[SFL_WAIT_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300};

void sfl_histogram_observe(sfl_histogram *h, double seconds)
{
    for (int i = 0; i < SFL_WAIT_BUCKETS; i++)
        if (seconds <= sfl_wait_bounds[i])
            h->bucket[i]++;
    h->count++;
    h->sum += seconds;
}

void sfl_metrics_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void sfl_metrics_sample(struct evbuffer *out, const char *name, const char *labels, double v)
{
    char num[64];
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(num, sizeof(num), "%.0f", v);
    else
        snprintf(num, sizeof(num), "%.6g", v);
    if (labels && *labels)
        evbuffer_add_printf(out, "%s{%s} %s\n", name, labels, num);
    else
        evbuffer_add_printf(out, "%s %s\n", name, num);
}

void sfl_metrics_histogram(struct evbuffer *out, const char *name, const char *help,
                           const sfl_histogram *h)
{
    sfl_metrics_family(out, name, "histogram", help);
    char sample[160], labels[48];
    snprintf(sample, sizeof(sample), "%s_bucket", name);
    for (int i = 0; i < SFL_WAIT_BUCKETS; i++) {
        snprintf(labels, sizeof(labels), "le=\"%g\"", sfl_wait_bounds[i]);
        sfl_metrics_sample(out, sample, labels, (double)h->bucket[i]);
    }
    sfl_metrics_sample(out, sample, "le=\"+Inf\"", (double)h->count);
    snprintf(sample, sizeof(sample), "%s_sum", name);
    sfl_metrics_sample(out, sample, "", h->sum);
    snprintf(sample, sizeof(sample), "%s_count", name);
    sfl_metrics_sample(out, sample, "", (double)h->count);
}

void sfl_metrics_escape(const char *value, char *buf, size_t len)
{
    size_t n = 0;
    for (const char *p = value; *p && n + 3 < len; p++) {
        if (*p == '\\' || *p == '"') {
            buf[n++] = '\\';
            buf[n++] = *p;
        } else if (*p == '\n') {
            buf[n++] = '\\';
            buf[n++] = 'n';
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
}
