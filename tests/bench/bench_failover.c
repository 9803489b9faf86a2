/* bench_failover.c - `sflimit-bench-failover`: how long after a kill -9 of
 * the Redis master the cluster grants again (issue #16: within
 * down-after-milliseconds + failover + one lease TTL; the distribution
 * over 10 runs).
 *
 * A measurement, not a test: built only when asked (`cmake --build BUILD
 * --target sflimit-bench-failover`, with SFL_TESTS on: it links the test
 * harness and so Criterion) and never registered with ctest.
 *
 * Each run is the scenario of tests/cluster/test_failover.c's
 * master_killed_mid_batch (tests/harness/ha.c): a master, a replica and
 * three sentinels (down-after-milliseconds 1000, failover-timeout 3000),
 * three `sflimit node`s and `sflimit submit --wait` on the
 * redis-sentinel:// URL, 30 streams over five accounts, lease TTL 6 s;
 * once the fake provider has seen 12 checks, kill -9 of the master.
 * regrant_ms is from the kill to the provider's first new check (a node was
 * granted a lease by the new master); switch_ms to the sentinels naming
 * the new master.
 *
 * Prints one JSON line per run on stdout and a summary line (min, median,
 * p90, max of regrant_ms and switch_ms). Knob: SFL_BENCH_RUNS (10). A run
 * with a provider violation, a stream without exactly one result, or a
 * regrant over the bound fails the program (cr_expect), after all runs. */
#include "ha.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void summary(const char *name, int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp64);
    fprintf(stdout, "%s: min %lld, median %lld, p90 %lld, max %lld ms; all:", name, (long long)v[0],
            (long long)v[n / 2], (long long)v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1],
            (long long)v[n - 1]);
    for (int i = 0; i < n; i++)
        fprintf(stdout, " %lld", (long long)v[i]);
    fputc('\n', stdout);
}

Test(bench, failover, .timeout = 3600)
{
    const char *env = getenv("SFL_BENCH_RUNS");
    int runs = env && atoi(env) > 0 ? atoi(env) : 10;
    if (runs > 100)
        runs = 100;
    th_ha_opts o = {.down_after_ms = 1000,
                    .failover_timeout_ms = 3000,
                    .ttl_ms = 6000,
                    .renew_ms = 1000,
                    .safety_ms = 1000,
                    .hold_ms = 1000,
                    .kill_after_reqs = 12};
    int64_t bound = o.down_after_ms + o.failover_timeout_ms + o.ttl_ms;
    int64_t regrant[100], sw[100];
    int bad = 0;
    for (int i = 0; i < runs; i++) {
        th_ha_result r;
        th_ha_failover_run(&o, &r);
        regrant[i] = r.regrant_ms;
        sw[i] = r.switch_ms;
        fprintf(stdout,
                "{\"run\": %d, \"regrant_ms\": %lld, \"switch_ms\": %lld, \"killed_at_ms\": %lld, "
                "\"makespan_ms\": %lld, \"results\": %d, \"streams\": %d, \"ok\": %d, "
                "\"one_each\": %s, \"violations\": %lld, \"not_ok\": \"%s\"}\n",
                i + 1, (long long)r.regrant_ms, (long long)r.switch_ms, (long long)r.killed_at_ms,
                (long long)r.makespan_ms, r.nresults, r.nstreams, r.ok,
                r.one_each ? "true" : "false", r.violations, r.statuses);
        fflush(stdout);
        int ok = r.violations == 0 && r.one_each && r.regrant_ms > 0 && r.regrant_ms <= bound;
        cr_expect(ok, "run %d went wrong (files in %s)", i + 1, r.dir);
        bad += !ok;
    }
    fprintf(stdout,
            "failover over %d runs (bound %lld ms = down-after %d + failover-timeout %d "
            "+ TTL %d), %d run(s) wrong\n",
            runs, (long long)bound, o.down_after_ms, o.failover_timeout_ms, o.ttl_ms, bad);
    summary("regrant_ms", regrant, runs);
    summary("switch_ms", sw, runs);
}
