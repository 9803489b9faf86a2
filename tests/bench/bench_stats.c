/* bench_stats.c - the lease benchmark's figures, from the merged records of
 * every process.
 *
 * Definitions (they are what the report's numbers mean):
 *  - a cycle is a grant whose grant time lies in the measured window;
 *  - wait = grant time - ask time, over those grants;
 *  - hand-off: all grant times and all release times of the run are sorted;
 *    the run starts with no slot held, so with limit L the k-th release
 *    (from 0) frees the slot that the (k+L)-th grant takes, and hand-off k =
 *    grant[k+L] - release[k]. Reported over the k whose release lies in the
 *    window. Under saturation it is the time from "let go" to "the next
 *    holder knows it holds"; when nobody waits it also holds the idle time.
 *    A negative value would mean more than L holders at once;
 *  - same worker: the share of those hand-offs whose grant went to the
 *    worker that made the release (it asked again and got the slot back: no
 *    hand-off between nodes at all);
 *  - max concurrent: the grant/release timeline of the whole run, +1 on a
 *    grant, -1 on a release, a release first when both share a time.
 *  - the hand-offs whose next holder saw an announcement naming its ticket
 *    are also split at that moment: release -> announcement (release
 *    script, PUBLISH, delivery) and announcement -> grant (take-over ask).
 * Release times are taken just before sfl_lease_release and grant times in
 * the grant callback, so every holding interval seen here lies inside the
 * interval in which Redis counted the lease.
 *
 * Pure computation: no I/O, nothing printed.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return NAN;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

double bench_jain(const long long *x, size_t n)
{
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)x[i];
        sq += (double)x[i] * (double)x[i];
    }
    if (n == 0 || sq == 0)
        return 1.0;
    return sum * sum / ((double)n * sq);
}

/* One timeline event: the time, and +1 (grant) or -1 (release). */
typedef struct tl_event {
    int64_t t;
    int delta;
} tl_event;

static int cmp_event(const void *a, const void *b)
{
    const tl_event *x = a, *y = b;
    if (x->t != y->t)
        return (x->t > y->t) - (x->t < y->t);
    return (x->delta > y->delta) - (x->delta < y->delta); /* -1 (release) first */
}

static int cmp_rec_grant(const void *a, const void *b)
{
    const bench_rec *x = *(const bench_rec *const *)a, *y = *(const bench_rec *const *)b;
    return (x->grant_ns > y->grant_ns) - (x->grant_ns < y->grant_ns);
}

static int cmp_rec_release(const void *a, const void *b)
{
    const bench_rec *x = *(const bench_rec *const *)a, *y = *(const bench_rec *const *)b;
    return (x->release_ns > y->release_ns) - (x->release_ns < y->release_ns);
}

static int max_concurrent(const bench_rec *recs, size_t n)
{
    tl_event *ev = malloc((2 * n + 1) * sizeof(*ev));
    if (!ev)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        ev[m++] = (tl_event){recs[i].grant_ns, +1};
        if (recs[i].release_ns)
            ev[m++] = (tl_event){recs[i].release_ns, -1};
    }
    qsort(ev, m, sizeof(*ev), cmp_event);
    int cur = 0, best = 0;
    for (size_t i = 0; i < m; i++) {
        cur += ev[i].delta;
        if (cur > best)
            best = cur;
    }
    free(ev);
    return best;
}

/* Two releases closer than this count as together (releases_close). */
#define RELEASES_CLOSE_NS 1000000

int bench_figures_compute(const bench_rec *recs, size_t n, int nworkers, long long limit,
                          int64_t start_ns, int64_t end_ns, bench_figures *out)
{
    int rc = -1;
    const bench_rec **grants = malloc((n + 1) * sizeof(*grants));
    const bench_rec **releases = malloc((n + 1) * sizeof(*releases));
    double *waits = malloc((n + 1) * sizeof(*waits));
    double *handoffs = malloc((n + 1) * sizeof(*handoffs));
    double *announce = malloc((n + 1) * sizeof(*announce));
    double *takeover = malloc((n + 1) * sizeof(*takeover));
    double *alone = malloc((n + 1) * sizeof(*alone));
    long long *per_worker = calloc((size_t)nworkers + 1, sizeof(*per_worker));
    if (!grants || !releases || !waits || !handoffs || !announce || !takeover || !alone ||
        !per_worker)
        goto done;

    *out = (bench_figures){0};
    size_t ng = 0, nr = 0, nw = 0, nh = 0, na = 0, nal = 0;
    for (size_t i = 0; i < n; i++) {
        const bench_rec *r = &recs[i];
        grants[ng++] = r;
        if (r->release_ns)
            releases[nr++] = r;
        if (r->grant_ns >= start_ns && r->grant_ns < end_ns) {
            waits[nw++] = (double)(r->grant_ns - r->ask_ns) / 1e6;
            if (r->worker >= 0 && r->worker < nworkers)
                per_worker[r->worker]++;
        }
    }
    qsort(grants, ng, sizeof(*grants), cmp_rec_grant);
    qsort(releases, nr, sizeof(*releases), cmp_rec_release);
    qsort(waits, nw, sizeof(*waits), cmp_double);

    long long same = 0, close = 0, measured = 0;
    for (size_t k = 0; k < nr; k++) {
        int64_t rel = releases[k]->release_ns;
        if (rel < start_ns || rel >= end_ns || k == 0)
            continue;
        measured++;
        close += rel - releases[k - 1]->release_ns < RELEASES_CLOSE_NS;
    }
    for (size_t k = 0; k < nr && k + (size_t)limit < ng; k++) {
        int64_t rel = releases[k]->release_ns;
        if (rel < start_ns || rel >= end_ns)
            continue;
        const bench_rec *next = grants[k + (size_t)limit];
        double h = (double)(next->grant_ns - rel) / 1e6;
        if (h < 0)
            out->negative_handoffs++;
        same += next->worker == releases[k]->worker;
        handoffs[nh++] = h;
        if ((k == 0 || rel - releases[k - 1]->release_ns >= RELEASES_CLOSE_NS) &&
            (k + 1 == nr || releases[k + 1]->release_ns - rel >= RELEASES_CLOSE_NS))
            alone[nal++] = h;
        if (next->announce_ns > rel && next->announce_ns <= next->grant_ns) {
            announce[na] = (double)(next->announce_ns - rel) / 1e6;
            takeover[na++] = (double)(next->grant_ns - next->announce_ns) / 1e6;
        }
    }
    qsort(handoffs, nh, sizeof(*handoffs), cmp_double);
    qsort(announce, na, sizeof(*announce), cmp_double);
    qsort(takeover, na, sizeof(*takeover), cmp_double);
    qsort(alone, nal, sizeof(*alone), cmp_double);

    out->cycles = (long long)nw;
    out->cycles_per_s = (double)nw / ((double)(end_ns - start_ns) / 1e9);
    out->handoffs = (long long)nh;
    out->handoff_same_worker = nh ? (double)same / (double)nh : NAN;
    out->releases_close = measured ? (double)close / (double)measured : NAN;
    out->handoff_alone_p50 = bench_percentile(alone, nal, 50);
    out->handoff_p50 = bench_percentile(handoffs, nh, 50);
    out->handoff_p90 = bench_percentile(handoffs, nh, 90);
    out->handoff_p99 = bench_percentile(handoffs, nh, 99);
    out->announced = (long long)na;
    out->announce_p50 = bench_percentile(announce, na, 50);
    out->announce_p90 = bench_percentile(announce, na, 90);
    out->takeover_p50 = bench_percentile(takeover, na, 50);
    out->takeover_p90 = bench_percentile(takeover, na, 90);
    out->wait_p50 = bench_percentile(waits, nw, 50);
    out->wait_p99 = bench_percentile(waits, nw, 99);
    out->wait_max = nw ? waits[nw - 1] : NAN;
    out->jain = bench_jain(per_worker, (size_t)nworkers);
    out->max_concurrent = max_concurrent(recs, n);
    if (out->max_concurrent < 0)
        goto done;
    rc = 0;
done:
    free(grants);
    free(releases);
    free(waits);
    free(handoffs);
    free(announce);
    free(takeover);
    free(alone);
    free(per_worker);
    return rc;
}
