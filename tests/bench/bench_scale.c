/* bench_scale.c - what A accounts and N queued streams cost one node: the
 * `sflimit check` process (memory, time to load, CPU per start) and Redis
 * (bytes per account, per held lease, and nothing once accounts are idle).
 *
 * Phases:
 *  1. Redis, idle: a first store connects (so the scripts are loaded and
 *     their cache is in every figure after), then goes; used_memory m0; the
 *     A confs written (limits 1..4, seeded, no recovery window); m_conf.
 *     conf bytes per account = (m_conf - m0) / A, with MEMORY USAGE of one
 *     conf key beside it (used_memory is an allocator total: a few KB of
 *     noise, which only shows at small A);
 *  2. Redis, busy: a store and a limiter (the library, as a node has them)
 *     take one lease of every account; bytes per held lease = (used_memory
 *     with them - used_memory with the store connected, before) / leases;
 *  3. Redis, idle again: the store and limiter are dropped WITHOUT releasing,
 *     as a crashed node would. The leases expire after their TTL, and the
 *     keys of each account but its conf must go by themselves: <ns>:* is
 *     scanned until only confs and <ns>:accounts remain (stray keys are
 *     reported, and fail the run). idle bytes per account = (used_memory
 *     then - m_conf) / A, ideally 0;
 *  4. the node: `sflimit check` (the real binary) with a config listing the A
 *     accounts, N streams in a file, check command `true`, parser none.
 *     Measured from outside: peak RSS (VmHWM sampled while it runs, and
 *     wait4's ru_maxrss), the time to the "Streams grouped" log line (the
 *     batch read, accounts written, limits read, streams queued: the load),
 *     the total time, and the process's own CPU time (children apart: they
 *     are `true`), per stream started. Every result line is counted;
 *  5. its keys must expire as in 3. Then everything written is deleted.
 */
#include "bench.h"

#include "keys.h"
#include "limiter.h"
#include "log.h"
#include "store.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEASE_TTL_MS 5000
#define IDLE_KEY_GRACE_MS 10000 /* README: idle keys expire 10 s after the last deadline */
#define EXPIRY_MARGIN_MS 20000
#define HOLD_DEADLINE_MS 120000
#define SAMPLE_MS 50

/*--- Phase 2: holding one lease of every account ---------------------------*/

typedef struct sc_hold {
    const bench_workload *w;
    struct event_base *base;
    sfl_store *st;
    sfl_limiter *lim;
    int ready;
    int answered, granted;
    char err[256];
} sc_hold;

static void hold_on_ready(sfl_store *st, void *arg)
{
    sc_hold *h = arg;
    UNUSED(st);
    if (h->lim)
        sfl_limiter_on_ready(h->lim);
    if (!h->ready) {
        h->ready = 1;
        event_base_loopbreak(h->base);
    }
}

static void hold_on_down(sfl_store *st, const char *why, void *arg)
{
    sc_hold *h = arg;
    UNUSED(st);
    if (h->lim)
        sfl_limiter_on_down(h->lim);
    snprintf(h->err, sizeof(h->err), "redis went away: %s", why);
}

static void hold_on_grant(sfl_wait *wt, sfl_wait_status status, sfl_lease *lease, void *arg)
{
    sc_hold *h = arg;
    UNUSED(wt);
    UNUSED(lease); /* the limiter keeps it; abandoned with the limiter */
    h->answered++;
    if (status == SFL_WAIT_GRANTED)
        h->granted++;
    if (h->answered == h->w->naccounts)
        event_base_loopbreak(h->base);
}

static void on_hold_deadline(evutil_socket_t fd, short what, void *arg)
{
    sc_hold *h = arg;
    UNUSED(fd);
    UNUSED(what);
    snprintf(h->err, sizeof(h->err), "timed out");
    event_base_loopbreak(h->base);
}

/* A store (and with_limiter, a limiter) connected and ready. 0 or -1. */
static int hold_open(sc_hold *h, const char *url, int with_limiter)
{
    char err[256];
    h->ready = 0;
    sfl_store_opts so = {.url = url,
                         .ns = BENCH_NS,
                         .connect_timeout_ms = 2000,
                         .recovery_ms = 15000,
                         .epoch_mode = SFL_EPOCH_FRESH, /* the bench's own new Redis */
                         .on_ready = hold_on_ready,
                         .on_down = hold_on_down,
                         .arg = h};
    if (!(h->st = sfl_store_new(h->base, &so, err, sizeof(err)))) {
        snprintf(h->err, sizeof(h->err), "%s", err);
        return -1;
    }
    if (with_limiter) {
        sfl_limiter_opts lo = {.node_id = "bscale",
                               .ttl_ms = LEASE_TTL_MS,
                               .renew_ms = LEASE_TTL_MS / 3,
                               .safety_ms = 1000,
                               .recovery_ms = LEASE_TTL_MS,
                               .fallback_ms = 1000};
        if (!(h->lim = sfl_limiter_new(h->base, h->st, &lo))) {
            snprintf(h->err, sizeof(h->err), "out of memory");
            return -1;
        }
    }
    sfl_store_start(h->st);
    struct event *deadline = evtimer_new(h->base, on_hold_deadline, h);
    struct timeval tv = {10, 0};
    if (deadline)
        evtimer_add(deadline, &tv);
    event_base_dispatch(h->base);
    if (deadline)
        event_free(deadline);
    if (!h->ready && !h->err[0])
        snprintf(h->err, sizeof(h->err), "store not ready: %s", sfl_store_errstr(h->st));
    return h->ready ? 0 : -1;
}

/* Drops the store first (its pending callbacks still reach the limiter),
 * then the limiter, which forgets its leases: nothing is released. */
static void hold_abandon(sc_hold *h)
{
    sfl_store_free(h->st);
    h->st = NULL;
    sfl_limiter_free(h->lim);
    h->lim = NULL;
}

static int hold_all(sc_hold *h)
{
    for (int i = 0; i < h->w->naccounts; i++)
        if (!sfl_limiter_wait(h->lim, h->w->ids[i], "bench", HOLD_DEADLINE_MS, hold_on_grant, h)) {
            snprintf(h->err, sizeof(h->err), "out of memory");
            return -1;
        }
    struct event *deadline = evtimer_new(h->base, on_hold_deadline, h);
    struct timeval tv = {HOLD_DEADLINE_MS / 1000 + 5, 0};
    if (deadline)
        evtimer_add(deadline, &tv);
    event_base_dispatch(h->base);
    if (deadline)
        event_free(deadline);
    return h->granted == h->w->naccounts ? 0 : -1;
}

/*--- Phases 3 and 5: idle keys ---------------------------------------------*/

/* Scans until only confs and <ns>:accounts are left, or the deadline.
 * Returns the last keyspace seen; *took_s: when it was clean (NaN if never). */
static void wait_idle(redisContext *c, int64_t deadline_ms, bench_keyspace *ks, double *took_s)
{
    int64_t t0 = bench_now_ns();
    *took_s = NAN;
    for (;;) {
        if (bench_keyspace_get(c, ks) == 0 && ks->stray == 0) {
            *took_s = (double)(bench_now_ns() - t0) / 1e9;
            return;
        }
        if (bench_now_ns() - t0 > deadline_ms * 1000000)
            return;
        usleep(250000);
    }
}

/*--- Phase 4: the check batch ----------------------------------------------*/

typedef struct sc_check {
    double load_s;   /* to the "Streams grouped" line */
    double queued_s; /* to the last "  Account <id>: <n> streams, limit ..." line, after
                        which the streams go to the scheduler */
    double total_s;
    long long lines, ok;
    char completed[400]; /* the batch's last "Completed ..." log line */
    char last_err[400];  /* the last ERROR/WARN line */
} sc_check;

static void scan_line(sc_check *k, const char *line, int64_t t0)
{
    if (isnan(k->load_s) && strstr(line, "Streams grouped"))
        k->load_s = (double)(bench_now_ns() - t0) / 1e9;
    if (strstr(line, "  Account ") && strstr(line, " streams, limit"))
        k->queued_s = (double)(bench_now_ns() - t0) / 1e9;
    if (strstr(line, "Completed smart parallel check"))
        snprintf(k->completed, sizeof(k->completed), "%s", line);
    if (strstr(line, " ERROR ") || strstr(line, " WARN "))
        snprintf(k->last_err, sizeof(k->last_err), "%s", line);
}

static int run_check(const char *sflimit, const char *dir, const char *url, bench_child *ch,
                     sc_check *k, char *err, size_t errlen)
{
    char cfg[128], streams[128], results[128];
    snprintf(cfg, sizeof(cfg), "%s/check.json", dir);
    snprintf(streams, sizeof(streams), "%s/streams.json", dir);
    snprintf(results, sizeof(results), "%s/results.jsonl", dir);
    const char *argv[] = {sflimit, "check", "-c",      cfg,     "--redis", url,
                          "-o",    results, "--quiet", streams, NULL};
    k->load_s = k->queued_s = NAN;
    int64_t t0 = bench_now_ns();
    if (bench_child_start(ch, argv, NULL, NULL, err, errlen) < 0)
        return -1;
    char buf[8192];
    size_t used = 0;
    for (;;) {
        struct pollfd p = {ch->err_fd, POLLIN, 0};
        int n = poll(&p, 1, SAMPLE_MS);
        bench_child_sample(ch);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        ssize_t got = read(ch->err_fd, buf + used, sizeof(buf) - 1 - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        used += (size_t)got;
        buf[used] = '\0';
        char *start = buf, *nl;
        while ((nl = strchr(start, '\n'))) {
            *nl = '\0';
            scan_line(k, start, t0);
            start = nl + 1;
        }
        used = strlen(start);
        memmove(buf, start, used);
        if (used == sizeof(buf) - 1)
            used = 0; /* a line longer than the buffer: not one we look for */
    }
    bench_child_wait(ch, -1);
    k->total_s = (double)(bench_now_ns() - t0) / 1e9;
    bench_child_close(ch);

    FILE *f = fopen(results, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", results, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        k->lines++;
        k->ok += strstr(line, "\"status\":\"OK\"") != NULL;
    }
    free(line);
    fclose(f);
    return 0;
}

/*--- The run ---------------------------------------------------------------*/

typedef struct sc_figures {
    long long m0, m_conf, m_conn, m_held, m_idle, m_after;
    long long conf_key_bytes, accounts_set_bytes;
    int granted;
    bench_keyspace idle, after;
    double idle_clean_s, after_clean_s;
} sc_figures;

static double per(long long a, long long b, long long n)
{
    return a < 0 || b < 0 || n <= 0 ? NAN : (double)(a - b) / (double)n;
}

static void json_num(const char *name, double v, const char *fmt)
{
    if (isnan(v)) {
        printf("\"%s\":null,", name);
        return;
    }
    printf("\"%s\":", name);
    printf(fmt, v);
    putchar(',');
}

static void report(const bench_scale_opts *o, const sc_figures *r, const bench_child *ch,
                   const sc_check *k)
{
    double n = (double)o->streams;
    double run_s = k->total_s - (isnan(k->queued_s) ? k->load_s : k->queued_s);
    long peak = ch->maxrss_kb > ch->vmhwm_kb ? ch->maxrss_kb : ch->vmhwm_kb;
    printf("{\"accounts\":%d,\"streams\":%lld,\"global_limit\":%d,\"seed\":%" PRIu64 ",",
           o->accounts, o->streams, o->global_limit, o->seed);
    printf("\"results\":%lld,\"ok\":%lld,\"exit\":%d,", k->lines, k->ok,
           WIFEXITED(ch->status) ? WEXITSTATUS(ch->status) : -1);
    printf("\"peak_rss_kb\":%ld,\"vmhwm_kb\":%ld,", peak, ch->vmhwm_kb);
    json_num("load_s", k->load_s, "%.3f");
    json_num("queued_s", k->queued_s, "%.3f");
    json_num("total_s", k->total_s, "%.3f");
    json_num("starts_per_s", n / run_s, "%.1f");
    json_num("cpu_s", ch->cpu_known ? ch->cpu_self_s : NAN, "%.2f");
    json_num("cpu_us_per_start", ch->cpu_known ? ch->cpu_self_s / n * 1e6 : NAN, "%.1f");
    json_num("children_cpu_s", ch->cpu_known ? ch->cpu_children_s : NAN, "%.2f");
    json_num("rss_bytes_per_stream", (double)peak * 1024 / n, "%.0f");
    json_num("redis_conf_bytes_per_account", per(r->m_conf, r->m0, o->accounts), "%.1f");
    printf("\"redis_conf_key_bytes\":%lld,", r->conf_key_bytes);
    json_num("redis_bytes_per_held_lease", per(r->m_held, r->m_conn, r->granted), "%.1f");
    json_num("redis_idle_bytes_per_account", per(r->m_idle, r->m_conf, o->accounts), "%.1f");
    json_num("redis_after_check_bytes_per_account", per(r->m_after, r->m_conf, o->accounts),
             "%.1f");
    json_num("idle_clean_s", r->idle_clean_s, "%.1f");
    json_num("after_check_clean_s", r->after_clean_s, "%.1f");
    printf("\"idle_stray_keys\":%lld,\"after_check_stray_keys\":%lld}\n", r->idle.stray,
           r->after.stray);
    fflush(stdout);

    fprintf(stderr,
            "scale: %d accounts, %lld streams, global_limit %d\n"
            "  sflimit check   exit %d, %lld results (%lld OK)\n"
            "                  peak RSS %ld kB (%.0f B/stream), load %.3f s (queued at %.3f "
            "s), total %.3f s, %.1f starts/s\n"
            "                  CPU %.2f s own (%.1f us per start), %.2f s in its checks\n"
            "  redis           conf %.1f B/account (MEMORY USAGE of one conf: %lld B; "
            "%s:accounts %lld B)\n"
            "                  %.1f B per held lease (%d held)\n"
            "                  idle after the leases expired: %.1f B/account, clean after "
            "%.1f s, %lld stray keys%s%s\n"
            "                  after the check: %.1f B/account, clean after %.1f s, %lld stray "
            "keys%s%s\n",
            o->accounts, o->streams, o->global_limit,
            WIFEXITED(ch->status) ? WEXITSTATUS(ch->status) : -1, k->lines, k->ok, peak,
            (double)peak * 1024 / n, k->load_s, k->queued_s, k->total_s, n / run_s, ch->cpu_self_s,
            ch->cpu_self_s / n * 1e6, ch->cpu_children_s, per(r->m_conf, r->m0, o->accounts),
            r->conf_key_bytes, BENCH_NS, r->accounts_set_bytes,
            per(r->m_held, r->m_conn, r->granted), r->granted,
            per(r->m_idle, r->m_conf, o->accounts), r->idle_clean_s, r->idle.stray,
            r->idle.stray ? ", e.g. " : "", r->idle.stray ? r->idle.shown[0] : "",
            per(r->m_after, r->m_conf, o->accounts), r->after_clean_s, r->after.stray,
            r->after.stray ? ", e.g. " : "", r->after.stray ? r->after.shown[0] : "");
    if (k->completed[0])
        fprintf(stderr, "  its log         %s\n", k->completed);
    if (k->last_err[0])
        fprintf(stderr, "  its last warning %s\n", k->last_err);
}

int bench_scale_run(const bench_scale_opts *o)
{
    int rc = BENCH_EXIT_FAIL;
    char err[512], sflimit[4096], dir[64] = "", path[128];
    bench_workload *w = NULL;
    sc_hold h = {0};
    sc_figures r = {.m_after = -1, .m_idle = -1, .m_held = -1};
    sc_check k = {0};
    bench_child ch = {0};
    int dirty = 0;
    int64_t idle_deadline_ms = LEASE_TTL_MS + IDLE_KEY_GRACE_MS + EXPIRY_MARGIN_MS;

    signal(SIGPIPE, SIG_IGN);
    if (bench_sflimit_path(o->sflimit, sflimit, sizeof(sflimit)) < 0) {
        fprintf(stderr, "sflimit-bench scale: %s: not an executable (see --sflimit)\n", sflimit);
        return BENCH_EXIT_USAGE;
    }
    unsetenv("SFL_NODE_ID");
    unsetenv("SFL_REDIS_URL");
    redisContext *c = bench_redis_open(o->redis_url, err, sizeof(err));
    if (!c) {
        char shown[512];
        bench_redis_shown(o->redis_url, shown, sizeof(shown));
        fprintf(stderr, "sflimit-bench scale: --redis %s: %s\n", shown, err);
        return BENCH_EXIT_FAIL;
    }
    w = bench_workload_new(o->accounts, (size_t)o->streams, o->seed, o->account_base);
    h.w = w;
    h.base = event_base_new();
    if (!w || !h.base) {
        fprintf(stderr, "sflimit-bench scale: out of memory\n");
        goto done;
    }
    if (bench_tmpdir_make(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "sflimit-bench scale: mkdtemp: %s\n", strerror(errno));
        dir[0] = '\0';
        goto done;
    }
    const char *const command[] = {"true", NULL};
    bench_config bc = {.node_id = "bscale",
                       .redis_url = o->redis_url,
                       .global_limit = o->global_limit,
                       .command = command,
                       .check_timeout = 30,
                       .lease_ttl_ms = LEASE_TTL_MS,
                       .accounts = w};
    snprintf(path, sizeof(path), "%s/check.json", dir);
    if (bench_config_write(path, &bc, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit-bench scale: %s\n", err);
        goto done;
    }
    snprintf(path, sizeof(path), "%s/streams.json", dir);
    if (bench_workload_write_streams(w, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit-bench scale: %s\n", err);
        goto done;
    }

    /* 1. Idle accounts. */
    dirty = 1;
    if (bench_accounts_clean(c, w->ids, (size_t)w->naccounts, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit-bench scale: %s\n", err);
        goto done;
    }
    if (hold_open(&h, o->redis_url, 0) < 0) {
        fprintf(stderr, "sflimit-bench scale: %s\n", h.err);
        goto done;
    }
    hold_abandon(&h); /* the scripts stay loaded */
    r.m0 = bench_used_memory(c);
    if (bench_accounts_write(c, w->ids, w->limit, (size_t)w->naccounts, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit-bench scale: %s\n", err);
        goto done;
    }
    r.m_conf = bench_used_memory(c);
    char key[160];
    sfl_account_key(key, sizeof(key), BENCH_NS, w->ids[0], "conf");
    r.conf_key_bytes = bench_memory_usage(c, key);
    r.accounts_set_bytes = bench_memory_usage(c, BENCH_NS ":accounts");

    /* 2. One lease of every account held. */
    if (hold_open(&h, o->redis_url, 1) < 0) {
        fprintf(stderr, "sflimit-bench scale: %s\n", h.err);
        goto done;
    }
    r.m_conn = bench_used_memory(c);
    if (hold_all(&h) < 0) {
        fprintf(stderr, "sflimit-bench scale: %d of %d leases granted%s%s\n", h.granted,
                w->naccounts, h.err[0] ? ": " : "", h.err);
        hold_abandon(&h);
        goto done;
    }
    r.granted = h.granted;
    r.m_held = bench_used_memory(c);

    /* 3. Dropped without a release; everything but the confs must expire. */
    hold_abandon(&h);
    wait_idle(c, idle_deadline_ms, &r.idle, &r.idle_clean_s);
    r.m_idle = bench_used_memory(c);

    /* 4. The node. */
    if (run_check(sflimit, dir, o->redis_url, &ch, &k, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit-bench scale: sflimit check: %s\n", err);
        goto done;
    }

    /* 5. Its keys expire too. */
    wait_idle(c, idle_deadline_ms, &r.after, &r.after_clean_s);
    r.m_after = bench_used_memory(c);

    report(o, &r, &ch, &k);
    rc = BENCH_EXIT_OK;
    if (!WIFEXITED(ch.status) || WEXITSTATUS(ch.status) != 0 || k.lines != o->streams ||
        k.ok != o->streams) {
        fprintf(stderr, "sflimit-bench scale: sflimit check: %lld results, %lld OK, status %d\n",
                k.lines, k.ok, ch.status);
        rc = BENCH_EXIT_FAIL;
    }
    if (r.idle.stray || r.after.stray || isnan(k.load_s))
        rc = BENCH_EXIT_FAIL;
done:
    if (ch.pid && !ch.reaped)
        bench_child_stop(&ch, 5000);
    bench_child_close(&ch);
    hold_abandon(&h);
    if (h.base)
        event_base_free(h.base);
    if (dirty && bench_accounts_clean(c, w->ids, (size_t)w->naccounts, err, sizeof(err)) < 0)
        fprintf(stderr, "sflimit-bench scale: cleaning Redis: %s\n", err);
    if (dir[0] && !o->keep && rc == BENCH_EXIT_OK)
        bench_tmpdir_remove(dir);
    else if (dir[0])
        fprintf(stderr, "sflimit-bench scale: config, streams and results kept in %s\n", dir);
    bench_workload_free(w);
    redisFree(c);
    return rc;
}
