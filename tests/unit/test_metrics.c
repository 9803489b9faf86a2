/* test_metrics.c - the lease-wait histogram's buckets and its Prometheus
 * text: edges that cover 0.01 s to 300 s with no step wider than x2.5, each
 * observation counted in the first bucket whose edge is at or above it
 * (le is inclusive), cumulative counts, sum and count. */
#include "metrics.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(metrics);

Test(metrics, bucket_edges_cover_10ms_to_300s_in_steps_of_at_most_2_5)
{
    cr_assert_leq(sfl_wait_bounds[0], 0.01, "the first edge %g is above 10 ms", sfl_wait_bounds[0]);
    cr_assert_geq(sfl_wait_bounds[SFL_WAIT_BUCKETS - 1], 300.0, "the last edge %g is below 300 s",
                  sfl_wait_bounds[SFL_WAIT_BUCKETS - 1]);
    for (int i = 1; i < SFL_WAIT_BUCKETS; i++) {
        double lo = sfl_wait_bounds[i - 1], hi = sfl_wait_bounds[i];
        cr_assert_gt(hi, lo, "edges not increasing at %d: %g, %g", i, lo, hi);
        cr_assert_leq(hi / lo, 2.5 + 1e-9, "a gap of x%.2f from %g to %g", hi / lo, lo, hi);
    }
}

/* The case: a true p90 of 18 s read from the buckets. Linear
 * interpolation inside the bucket holding the 90th observation (as
 * histogram_quantile does) must come within one bucket of the truth. */
Test(metrics, p90_of_18s_reads_within_its_bucket)
{
    sfl_histogram h = {0};
    for (int i = 0; i < 90; i++)
        sfl_histogram_observe(&h, 18.0 * (i + 1) / 90.0); /* 0.2 .. 18 s */
    for (int i = 0; i < 10; i++)
        sfl_histogram_observe(&h, 60.0);
    double rank = 0.9 * (double)h.count, lo = 0;
    int b = 0;
    while (b < SFL_WAIT_BUCKETS && (double)h.bucket[b] < rank)
        lo = sfl_wait_bounds[b++];
    cr_assert_lt(b, SFL_WAIT_BUCKETS);
    double below = b > 0 ? (double)h.bucket[b - 1] : 0;
    double q = lo + (sfl_wait_bounds[b] - lo) * (rank - below) / ((double)h.bucket[b] - below);
    cr_assert(lo < 18.0 && sfl_wait_bounds[b] >= 18.0, "18 s is not in (%g, %g]", lo,
              sfl_wait_bounds[b]);
    cr_assert_leq(sfl_wait_bounds[b] / lo, 2.5 + 1e-9);
    cr_assert(q > lo && q <= sfl_wait_bounds[b], "p90 read as %g s, true 18 s", q);
}

/* Each observation lands in exactly the buckets at or above its edge. */
typedef struct place {
    double seconds;
    double first_edge; /* the smallest edge >= seconds; 0: above every edge */
} place;

ParameterizedTestParameters(metrics, observation_lands_in_its_bucket)
{
    static place cases[] = {
        {0.0, 0.001},    {0.0009, 0.001}, {0.001, 0.001}, {0.0011, 0.0025}, {0.01, 0.01},
        {0.0101, 0.025}, {0.2, 0.25},     {0.25, 0.25},   {1.0, 1.0},       {2.6, 5.0},
        {3.2, 5.0},      {10.0, 10.0},    {18.0, 20.0},   {25.0, 30.0},     {30.0, 30.0},
        {61.0, 120.0},   {299.9, 300.0},  {300.0, 300.0}, {300.5, 0},       {1e9, 0},
    };
    return cr_make_param_array(place, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(place *c, metrics, observation_lands_in_its_bucket)
{
    sfl_histogram h = {0};
    sfl_histogram_observe(&h, c->seconds);
    cr_assert_eq(h.count, 1);
    cr_assert_float_eq(h.sum, c->seconds, 1e-12);
    for (int i = 0; i < SFL_WAIT_BUCKETS; i++) {
        int want = c->first_edge > 0 && sfl_wait_bounds[i] >= c->first_edge - 1e-12;
        cr_assert_eq(h.bucket[i], (uint64_t)want, "%g s: bucket le=%g holds %llu", c->seconds,
                     sfl_wait_bounds[i], (unsigned long long)h.bucket[i]);
    }
    if (c->first_edge > 0) {
        int found = 0;
        for (int i = 0; i < SFL_WAIT_BUCKETS; i++)
            found |= sfl_wait_bounds[i] == c->first_edge;
        cr_assert(found, "%g is not an edge", c->first_edge);
    }
}

/* The text: one _bucket line per edge in increasing order, then +Inf, _sum
 * and _count; counts cumulative and never decreasing. */
Test(metrics, histogram_text_is_cumulative)
{
    sfl_histogram h = {0};
    const double v[] = {0.004, 0.3, 3.0, 3.1, 18.0, 400.0};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        sfl_histogram_observe(&h, v[i]);
    struct evbuffer *out = evbuffer_new();
    sfl_metrics_histogram(out, "sfl_w", "waits", &h);
    size_t len = evbuffer_get_length(out);
    char *text = calloc(1, len + 1);
    evbuffer_remove(out, text, len);
    evbuffer_free(out);
    cr_assert(strstr(text, "# TYPE sfl_w histogram\n"), "%s", text);
    double prev_edge = 0, prev_count = 0;
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        double edge, count;
        if (strstr(line, "+Inf"))
            continue; /* sscanf would read it as inf */
        if (sscanf(line, "sfl_w_bucket{le=\"%lf\"} %lf", &edge, &count) == 2) {
            cr_assert_eq(edge, sfl_wait_bounds[lines], "line %d: le=%g", lines, edge);
            cr_assert_gt(edge, prev_edge);
            cr_assert_geq(count, prev_count, "counts fall at le=%g", edge);
            prev_edge = edge;
            prev_count = count;
            lines++;
        }
    }
    cr_assert_eq(lines, SFL_WAIT_BUCKETS);
    cr_assert_eq(prev_count, 5, "observations up to the last edge: %g", prev_count);
    free(text);
    out = evbuffer_new();
    sfl_metrics_histogram(out, "sfl_w", "waits", &h);
    len = evbuffer_get_length(out);
    text = calloc(1, len + 1);
    evbuffer_remove(out, text, len);
    evbuffer_free(out);
    cr_assert(strstr(text, "\nsfl_w_bucket{le=\"+Inf\"} 6\n"), "%s", text);
    cr_assert(strstr(text, "\nsfl_w_bucket{le=\"5\"} 4\n"), "%s", text);
    cr_assert(strstr(text, "\nsfl_w_bucket{le=\"2.5\"} 2\n"), "%s", text);
    cr_assert(strstr(text, "\nsfl_w_sum 424.404\n"), "%s", text);
    cr_assert(strstr(text, "\nsfl_w_count 6\n"), "%s", text);
    free(text);
}
