/* bench_lease.c - the lease benchmark's parent: P processes x W workers
 * (bench_worker.c) cycling on one account, wait -> hold H ms -> release.
 *
 * Phases, all on CLOCK_MONOTONIC (one clock for every process here):
 *  1. the parent writes the account's limit straight into Redis (hiredis
 *     sync) and clears its leases, holders and waiters: no recovery window.
 *     With --logins N > 1 the account is N logins sharing the limit (routes.h
 *     names their keys): each login's limit is written and its keys cleared,
 *     and every worker's limiter is given the logins;
 *  2. each child connects all its workers, says "ready" in shared memory and
 *     blocks on a pipe; when all are ready the parent fixes go/start/end
 *     times and closes the pipe: everyone starts together;
 *  3. children record every cycle from go on (the warm-up too: hand-offs are
 *     numbered from the first grant, see bench_stats.c) into a shared mmap
 *     area, one per process; the parent reads INFO at start and end of the
 *     window (total_commands_processed counts the calls scripts make too);
 *  4. at end the children stop asking, release what they hold, drain the
 *     releases and exit; the parent merges the records and prints one JSON
 *     line on stdout and a summary on stderr.
 */
#include "bench.h"

#include "conf.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RECS_PER_SEC 150000 /* record capacity per process and second of the run */

sfl_account_conf *bench_lease_account_new(const bench_lease_opts *o)
{
    int n = o->logins; /* 2..limit, checked by the parser */
    if (n <= 1)
        return NULL;
    sfl_account_conf *acc = calloc(1, sizeof(*acc));
    if (!acc)
        return NULL;
    acc->id = o->account;
    acc->max_streams = o->limit;
    acc->logins = calloc((size_t)n, sizeof(*acc->logins));
    if (!acc->logins)
        goto fail;
    acc->nlogins = (size_t)n;
    for (int i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof(id), "l%d", i + 1);
        acc->logins[i].id = strdup(id);
        acc->logins[i].max_streams = o->limit / n + (i < o->limit % n);
        if (!acc->logins[i].id)
            goto fail;
    }
    return acc;
fail:
    bench_lease_account_free(acc);
    return NULL;
}

void bench_lease_account_free(sfl_account_conf *acc)
{
    if (!acc)
        return;
    sfl_account_conf_clear(acc);
    free(acc);
}

/* The account's limit, straight into Redis; its leases, holders, fence and
 * waiters cleared: no recovery window, nobody ahead. acc: its logins (each
 * its share of the limit), or NULL: none, the keys it had before logins. */
static int account_setup(redisContext *c, const bench_lease_opts *o, const sfl_account_conf *acc,
                         char *err, size_t errlen)
{
    if (acc)
        return bench_logins_write(c, acc, 1, err, errlen);
    int limit = (int)o->limit; /* 1..1000000, checked by the parser */
    return bench_accounts_write(c, &o->account, &limit, 1, err, errlen);
}

/* Server-side counters: total_commands_processed, from commandstats the
 * calls of a few commands, and the server's CPU time (user + system, s).
 * -1 on failure. */
typedef struct server_counts {
    long long total, evalsha, eval, publish;
    double cpu_s;
} server_counts;

static double info_double(const char *info, const char *field)
{
    const char *p = strstr(info, field);
    return p ? strtod(p + strlen(field), NULL) : NAN;
}

static int server_counts_get(redisContext *c, server_counts *out)
{
    redisReply *r = redisCommand(c, "INFO all");
    if (!r || r->type != REDIS_REPLY_STRING || !strstr(r->str, "total_commands_processed:")) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    out->total = bench_info_field(r->str, "total_commands_processed:");
    out->evalsha = bench_info_field(r->str, "cmdstat_evalsha:calls=");
    out->eval = bench_info_field(r->str, "cmdstat_eval:calls=");
    out->publish = bench_info_field(r->str, "cmdstat_publish:calls=");
    out->cpu_s = info_double(r->str, "used_cpu_user:") + info_double(r->str, "used_cpu_sys:");
    freeReplyObject(r);
    return 0;
}

static void sleep_until(int64_t at_ns)
{
    struct timespec ts = {(time_t)(at_ns / 1000000000), (long)(at_ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void json_num(const char *name, double v, int last)
{
    if (isnan(v))
        printf("\"%s\":null%s", name, last ? "" : ",");
    else
        printf("\"%s\":%.3f%s", name, v, last ? "" : ",");
}

static void report(const bench_lease_opts *o, const bench_figures *f, double cmds_per_cycle,
                   const server_counts *d, uint64_t client_cmds, uint64_t denied, uint64_t lost,
                   uint64_t not_granted, double client_cpu_us)
{
    int n = o->procs * o->workers;
    printf("{\"procs\":%d,\"workers\":%d,\"limit\":%lld,\"logins\":%d,\"hold_ms\":%" PRId64
           ",\"jitter_ms\":%" PRId64 ",\"cycles\":%lld,",
           o->procs, n, o->limit, o->logins, o->hold_ms, o->jitter_ms, f->cycles);
    printf("\"cycles_per_s\":%.1f,", f->cycles_per_s);
    json_num("handoff_ms_p50", f->handoff_p50, 0);
    json_num("handoff_ms_p90", f->handoff_p90, 0);
    json_num("handoff_ms_p99", f->handoff_p99, 0);
    json_num("wait_ms_p50", f->wait_p50, 0);
    json_num("wait_ms_p99", f->wait_p99, 0);
    json_num("wait_ms_max", f->wait_max, 0);
    printf("\"jain_fairness\":%.4f,\"max_concurrent_seen\":%d,", f->jain, f->max_concurrent);
    json_num("handoff_same_worker", f->handoff_same_worker, 0);
    json_num("releases_close", f->releases_close, 0);
    json_num("handoff_ms_p50_alone", f->handoff_alone_p50, 0);
    /* NaN when INFO could not be read (then cmds_per_cycle is NaN too). */
    json_num("redis_cpu_us_per_cycle",
             isnan(cmds_per_cycle) ? NAN : d->cpu_s * 1e6 / (double)f->cycles, 0);
    json_num("redis_commands_per_cycle", cmds_per_cycle, 1);
    printf("}\n");
    fflush(stdout);

    double c = f->cycles > 0 ? (double)f->cycles : NAN;
    fprintf(stderr,
            "lease: %d procs x %d workers (%d nodes), limit %lld over %d login%s, hold %" PRId64
            " ms, %.1f s measured\n"
            "  cycles        %lld (%.1f/s)\n"
            "  hand-off ms   p50 %.3f  p90 %.3f  p99 %.3f  (%lld hand-offs%s)\n"
            "                %.1f %% of them back to the worker that released\n"
            "                %.1f %% of releases < 1 ms after the one before; p50 %.3f over\n"
            "                the releases alone (none within 1 ms)\n"
            "    of which    release->announcement p50 %.3f p90 %.3f, announcement->grant\n"
            "                p50 %.3f p90 %.3f (over the %lld announced ones)\n"
            "  wait ms       p50 %.3f  p99 %.3f  max %.3f\n"
            "  fairness      jain %.4f   max holders seen %d (limit %lld)%s\n"
            "  redis/cycle   %.2f server commands (script-internal calls included), of which\n"
            "                evalsha %.2f, eval %.2f, publish %.2f; client-sent %.2f;\n"
            "                denied asks %.2f\n"
            "  cpu/cycle     redis-server %.1f us (user + system, in the window);\n"
            "                benchmark processes %.1f us (whole run, warm-up included)\n",
            o->procs, o->workers, n, o->limit, o->logins, o->logins == 1 ? "" : "s", o->hold_ms,
            o->seconds, f->cycles, f->cycles_per_s, f->handoff_p50, f->handoff_p90, f->handoff_p99,
            f->handoffs, f->negative_handoffs ? ", SOME NEGATIVE" : "",
            100 * f->handoff_same_worker, 100 * f->releases_close, f->handoff_alone_p50,
            f->announce_p50, f->announce_p90, f->takeover_p50, f->takeover_p90, f->announced,
            f->wait_p50, f->wait_p99, f->wait_max, f->jain, f->max_concurrent, o->limit,
            f->max_concurrent > o->limit ? "  LIMIT EXCEEDED" : "", cmds_per_cycle,
            (double)d->evalsha / c, (double)d->eval / c, (double)d->publish / c,
            (double)client_cmds / c, (double)denied / c, d->cpu_s * 1e6 / c, client_cpu_us);
    if (lost || not_granted)
        fprintf(stderr, "  leases lost %" PRIu64 ", waits ended without a grant %" PRIu64 "\n",
                lost, not_granted);
}

int bench_lease_run(const bench_lease_opts *o)
{
    int rc = BENCH_EXIT_FAIL;
    char err[256];
    pid_t *pids = NULL;
    bench_shm *h = MAP_FAILED;
    size_t hsize = sizeof(bench_shm) + (size_t)o->procs * sizeof(bench_proc_area);
    size_t cap = (size_t)((o->warmup + o->seconds + 5) * RECS_PER_SEC);
    int go[2] = {-1, -1};
    int forked = 0;
    bench_rec *all = NULL;
    sfl_account_conf *acc = NULL;

    signal(SIGPIPE, SIG_IGN);
    redisContext *rc_sync = bench_redis_open(o->redis_url, err, sizeof(err));
    if (!rc_sync) {
        char shown[512];
        bench_redis_shown(o->redis_url, shown, sizeof(shown));
        fprintf(stderr, "sflimit-bench lease: --redis %s: %s\n", shown, err);
        return BENCH_EXIT_FAIL;
    }
    if (o->logins > 1 && !(acc = bench_lease_account_new(o))) {
        fprintf(stderr, "sflimit-bench lease: out of memory\n");
        goto done;
    }
    if (account_setup(rc_sync, o, acc, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit-bench lease: account setup: %s\n", err);
        goto done;
    }
    h = mmap(NULL, hsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pids = calloc((size_t)o->procs, sizeof(*pids));
    if (h == MAP_FAILED || !pids || pipe(go) < 0) {
        fprintf(stderr, "sflimit-bench lease: %s\n", strerror(errno));
        goto done;
    }
    memset(h, 0, hsize);
    for (int i = 0; i < o->procs; i++) {
        bench_proc_area *a = &h->procs[i];
        a->cap = cap;
        a->recs = mmap(NULL, cap * sizeof(bench_rec), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (a->recs == MAP_FAILED) {
            a->recs = NULL;
            fprintf(stderr, "sflimit-bench lease: mmap: %s\n", strerror(errno));
            goto done;
        }
    }

    fflush(NULL);
    for (int i = 0; i < o->procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            fprintf(stderr, "sflimit-bench lease: fork: %s\n", strerror(errno));
            goto done;
        }
        if (pids[i] == 0) {
            close(go[1]);
            int code = bench_worker_main(o, acc, h, i, go[0]);
            /* The parent's, freed here too so leak checkers see a clean child. */
            free(pids);
            bench_lease_account_free(acc);
            redisFree(rc_sync);
            _exit(code);
        }
        forked++;
    }
    close(go[0]);
    go[0] = -1;

    /* Everyone connected? */
    int64_t deadline = bench_now_ns() + (int64_t)(BENCH_CONNECT_DEADLINE_MS + 2000) * 1000000;
    while (atomic_load(&h->ready) < o->procs && bench_now_ns() < deadline) {
        int failed = 0;
        for (int i = 0; i < o->procs; i++)
            failed |= h->procs[i].failed;
        if (failed)
            break;
        usleep(2000);
    }
    if (atomic_load(&h->ready) < o->procs)
        atomic_store(&h->abort, 1);
    h->go_ns = bench_now_ns();
    h->start_ns = h->go_ns + (int64_t)(o->warmup * 1e9);
    h->end_ns = h->start_ns + (int64_t)(o->seconds * 1e9);
    atomic_thread_fence(memory_order_release);
    close(go[1]); /* go */
    go[1] = -1;

    server_counts before = {0}, after = {0};
    int counted = 0;
    if (!atomic_load(&h->abort)) {
        sleep_until(h->start_ns);
        counted = server_counts_get(rc_sync, &before) == 0;
        sleep_until(h->end_ns);
        counted &= server_counts_get(rc_sync, &after) == 0;
    }

    int children_ok = 1;
    for (int i = 0; i < forked; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        bench_proc_area *a = &h->procs[i];
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || a->failed) {
            children_ok = 0;
            fprintf(stderr, "sflimit-bench lease: process %d failed: %s\n", i,
                    a->failed ? a->err : "exited abnormally");
        }
        if (a->overflow) {
            children_ok = 0;
            fprintf(stderr, "sflimit-bench lease: process %d: more than %zu cycles\n", i, a->cap);
        }
    }
    forked = 0;
    if (!children_ok || atomic_load(&h->abort))
        goto done;

    size_t total = 0;
    uint64_t client_cmds = 0, denied = 0, lost = 0, not_granted = 0;
    for (int i = 0; i < o->procs; i++) {
        bench_proc_area *a = &h->procs[i];
        total += a->count;
        client_cmds += a->cmds_end - a->cmds_start;
        denied += a->denied_end - a->denied_start;
        lost += a->lost;
        not_granted += a->not_granted;
    }
    all = malloc((total + 1) * sizeof(*all));
    if (!all)
        goto done;
    size_t k = 0;
    for (int i = 0; i < o->procs; i++) {
        memcpy(all + k, h->procs[i].recs, h->procs[i].count * sizeof(*all));
        k += h->procs[i].count;
    }
    bench_figures f;
    if (bench_figures_compute(all, total, o->procs * o->workers, o->limit, h->start_ns, h->end_ns,
                              &f) < 0)
        goto done;
    /* The "before" INFO is counted in "after"; the "after" one is not. */
    server_counts d = {after.total - before.total - 1, after.evalsha - before.evalsha,
                       after.eval - before.eval, after.publish - before.publish,
                       after.cpu_s - before.cpu_s};
    double per_cycle = counted && f.cycles > 0 ? (double)d.total / (double)f.cycles : NAN;
    /* The children's CPU time, over every grant they recorded. */
    struct rusage ru;
    double client_cpu_us = NAN;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0 && total > 0)
        client_cpu_us = ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e6 +
                        (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec;
    client_cpu_us /= (double)total;
    report(o, &f, per_cycle, &d, client_cmds, denied, lost, not_granted, client_cpu_us);
    rc = f.max_concurrent > o->limit ? BENCH_EXIT_FAIL : BENCH_EXIT_OK;
done:
    for (int i = 0; i < forked; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    if (go[0] >= 0)
        close(go[0]);
    if (go[1] >= 0)
        close(go[1]);
    if (h != MAP_FAILED) {
        for (int i = 0; i < o->procs; i++)
            if (h->procs[i].recs)
                munmap(h->procs[i].recs, h->procs[i].cap * sizeof(bench_rec));
        munmap(h, hsize);
    }
    free(all);
    free(pids);
    bench_lease_account_free(acc);
    redisFree(rc_sync);
    return rc;
}
