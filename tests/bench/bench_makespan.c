/* bench_makespan.c - how long K real `sflimit node` processes take to check
 * a batch, against the best any scheduler could do.
 *
 * Phases:
 *  1. refuse a Redis where nodes are registered (<ns>:node:*): the queue is
 *     cleared next. Write A accounts (limits 1..4, seeded) straight into
 *     Redis with no recovery window; delete <ns>:jobs (and its group);
 *  2. start K `sflimit node` processes, each with its own config in a
 *     scratch directory (check command `sleep D/1000`, parser none, no
 *     retries, stagger 0, global_limit G, lease TTL 5 s, HTTP on a free
 *     loopback port) and wait until every one is registered and subscribed
 *     to <ns>:jobs:new (PUBSUB NUMSUB), so the submit's wake-up reaches all;
 *  3. submit the N streams through the library (sfl_queue_submit, what
 *     `sflimit submit` does) and follow the batch: its progress messages
 *     (<ns>:batch:<id>, the done count) and a slow poll of the batch hash.
 *     makespan = from just before the submit to the message saying done == N;
 *  4. read every result back: statuses, and from started_at/duration_ms the
 *     checks running at once per account (an independent look at the
 *     promise, to 2 ms) and over all nodes;
 *  5. SIGTERM the nodes, wait for them, delete what the run wrote.
 *
 * lower_bound = max(max_a ceil(n_a/limit_a) x D, ceil(N/(K x G)) x D): no
 * schedule can beat either the busiest account or the total capacity. The
 * ratio says what the queue, the leases and the nodes cost on top. Check
 * durations include fork/exec of `sleep`, so a ratio of exactly 1 is out of
 * reach by a few ms per round.
 */
#include "bench.h"

#include "log.h"
#include "queue.h"
#include "store.h"
#include "streams.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NODE_READY_DEADLINE_MS 15000
#define NODE_STOP_GRACE_MS 15000
#define POLL_MS 250        /* batch hash poll, behind the progress messages */
#define OVERLAP_SLACK_MS 2 /* started_at has ms resolution */
#define LEASE_TTL_MS 5000

/*--- Following the batch ---------------------------------------------------*/

typedef struct mk_run {
    const bench_makespan_opts *o;
    struct event_base *base;
    sfl_store *st;
    const sfl_streams *streams;
    char batch[64];
    char hash[160];
    int sent, submitted, finished;
    int64_t t0_ns, t_end_ns;
    int64_t t0_wall_ms;
    struct event *poll_ev, *deadline_ev;
    char err[256];
} mk_run;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_done(mk_run *r, long long done)
{
    if (r->finished || done < r->o->streams)
        return;
    r->t_end_ns = bench_now_ns();
    r->finished = 1;
    event_base_loopbreak(r->base);
}

static void run_fail(mk_run *r, const char *what, const char *detail)
{
    snprintf(r->err, sizeof(r->err), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    event_base_loopbreak(r->base);
}

static void on_submitted(int ok, const char *err, void *arg)
{
    mk_run *r = arg;
    if (!ok) {
        run_fail(r, "submit", err);
        return;
    }
    r->submitted = 1;
    struct timeval tv = {0, POLL_MS * 1000};
    evtimer_add(r->poll_ev, &tv);
}

static void on_ready(sfl_store *st, void *arg)
{
    mk_run *r = arg;
    if (r->sent)
        return; /* a reconnect: the poll goes on */
    r->sent = 1;
    r->t0_wall_ms = wall_ms();
    r->t0_ns = bench_now_ns();
    int64_t ttl = 3600 * 1000;
    if (sfl_queue_submit(st, r->batch, r->streams, ttl, on_submitted, r) < 0)
        run_fail(r, "submit", "out of memory");
}

static void on_message(sfl_store *st, const char *channel, const char *msg, void *arg)
{
    UNUSED(st);
    UNUSED(channel);
    run_done(arg, strtoll(msg, NULL, 10)); /* result.lua publishes the done count */
}

static void on_done_field(sfl_store *st, redisReply *reply, void *arg)
{
    UNUSED(st);
    if (reply && reply->type == REDIS_REPLY_STRING)
        run_done(arg, strtoll(reply->str, NULL, 10));
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    mk_run *r = arg;
    UNUSED(fd);
    UNUSED(what);
    const char *hget[3] = {"HGET", r->hash, "done"};
    sfl_store_command(r->st, on_done_field, r, 3, hget);
    struct timeval tv = {0, POLL_MS * 1000};
    evtimer_add(r->poll_ev, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    run_fail(arg, "the batch did not finish in time", NULL);
}

/* Submits and follows the batch. 0 when every stream has a result. */
static int run_batch(mk_run *r, double timeout_s)
{
    int rc = -1;
    char err[256];
    r->base = event_base_new();
    const char *const channels[] = {r->hash, NULL};
    sfl_store_opts so = {.url = r->o->redis_url,
                         .ns = BENCH_NS,
                         .connect_timeout_ms = 2000,
                         .recovery_ms = 15000,
                         .epoch_mode = SFL_EPOCH_FRESH, /* the bench's own new Redis */
                         .channels = channels,
                         .on_ready = on_ready,
                         .on_message = on_message,
                         .arg = r};
    if (!r->base || !(r->st = sfl_store_new(r->base, &so, err, sizeof(err)))) {
        snprintf(r->err, sizeof(r->err), "%s", r->base ? err : "out of memory");
        goto done;
    }
    r->poll_ev = evtimer_new(r->base, on_poll, r);
    r->deadline_ev = evtimer_new(r->base, on_deadline, r);
    if (!r->poll_ev || !r->deadline_ev) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        goto done;
    }
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)(fmod(timeout_s, 1.0) * 1e6)};
    evtimer_add(r->deadline_ev, &tv);
    sfl_store_start(r->st);
    event_base_dispatch(r->base);
    rc = r->finished ? 0 : -1;
done:
    sfl_store_free(r->st);
    r->st = NULL;
    if (r->poll_ev)
        event_free(r->poll_ev);
    if (r->deadline_ev)
        event_free(r->deadline_ev);
    if (r->base)
        event_base_free(r->base);
    return rc;
}

/*--- The results -----------------------------------------------------------*/

typedef struct mk_figures {
    long long results, ok;
    char first_bad[200];         /* status and error of the first result not OK */
    int accounts_over_limit;     /* more checks at once than the limit (within the slack) */
    int max_running;             /* checks at once over all nodes */
    double busy_s;               /* sum of check durations */
    double first_start_s;        /* from the submit */
    double critical_end_s;       /* the busiest account's last check end, from the submit */
    double critical_idle_s;      /* its slot-seconds unused before its last start */
    int64_t critical_last_start; /* ms from the submit */
    double wait_p50_ms, wait_p90_ms, wait_max_ms; /* lease_wait_ms of the results */
    long long *per_node;                          /* results per node index */
} mk_figures;

typedef struct mk_event {
    int account; /* index; -1 for the all-nodes timeline */
    int64_t t;
    int delta;
} mk_event;

static int cmp_event(const void *a, const void *b)
{
    const mk_event *x = a, *y = b;
    if (x->account != y->account)
        return (x->account > y->account) - (x->account < y->account);
    if (x->t != y->t)
        return (x->t > y->t) - (x->t < y->t);
    return (x->delta > y->delta) - (x->delta < y->delta); /* an end first */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "2024-05-01T12:00:00.123Z" -> ms since the epoch; -1 if malformed. */
static int64_t parse_iso_ms(const char *s)
{
    struct tm tm;
    int ms;
    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* The results, one JSON line each, into dir/results.jsonl (--keep). */
static void keep_results(const redisReply *rep, const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/results.jsonl", dir);
    FILE *out = fopen(path, "w");
    if (!out)
        return;
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING)
            fprintf(out, "%s\n", rep->element[i]->str);
    fclose(out);
}

static int analyse(redisContext *c, const mk_run *r, const bench_workload *w, int critical,
                   const char *keep_dir, mk_figures *f)
{
    int rc = -1;
    char key[200];
    sfl_queue_key(key, sizeof(key), BENCH_NS, r->batch, "results");
    redisReply *rep = redisCommand(c, "LRANGE %s 0 -1", key);
    size_t n = rep && rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
    mk_event *ev = calloc(4 * n + 1, sizeof(*ev));
    double *waits = calloc(n + 1, sizeof(*waits));
    size_t nev = 0, nwaits = 0;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || !ev || !waits)
        goto done;
    if (keep_dir)
        keep_results(rep, keep_dir);
    f->first_start_s = INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            continue;
        cJSON *res = cJSON_Parse(rep->element[i]->str);
        if (!res)
            continue;
        f->results++;
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(res, "status"));
        if (status && strcmp(status, "OK") == 0) {
            f->ok++;
        } else if (!f->first_bad[0]) {
            const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(res, "error"));
            snprintf(f->first_bad, sizeof(f->first_bad), "%s: %s", status ? status : "?",
                     e ? e : "");
        }
        const char *node = cJSON_GetStringValue(cJSON_GetObjectItem(res, "node"));
        int ni = node && strncmp(node, "bm", 2) == 0 ? atoi(node + 2) : -1;
        if (ni >= 0 && ni < r->o->nodes)
            f->per_node[ni]++;
        const cJSON *wait = cJSON_GetObjectItem(res, "lease_wait_ms");
        if (cJSON_IsNumber(wait))
            waits[nwaits++] = wait->valuedouble;
        const cJSON *acc = cJSON_GetObjectItem(res, "m3u_account");
        const cJSON *dur = cJSON_GetObjectItem(res, "duration_ms");
        int64_t start = parse_iso_ms(cJSON_GetStringValue(cJSON_GetObjectItem(res, "started_at")));
        long long a = cJSON_IsNumber(acc) ? (long long)acc->valuedouble - w->base : -1;
        if (start >= 0 && cJSON_IsNumber(dur) && a >= 0 && a < w->naccounts) {
            int64_t s = start - r->t0_wall_ms, e = s + (int64_t)dur->valuedouble;
            f->busy_s += dur->valuedouble / 1000.0;
            if (s / 1000.0 < f->first_start_s)
                f->first_start_s = s / 1000.0;
            if (a == critical && e / 1000.0 > f->critical_end_s)
                f->critical_end_s = e / 1000.0;
            if (a == critical && s > f->critical_last_start)
                f->critical_last_start = s;
            ev[nev++] = (mk_event){(int)a, s, +1};
            ev[nev++] = (mk_event){(int)a, e - OVERLAP_SLACK_MS, -1};
            ev[nev++] = (mk_event){-1, s, +1};
            ev[nev++] = (mk_event){-1, e - OVERLAP_SLACK_MS, -1};
        }
        cJSON_Delete(res);
    }
    qsort(ev, nev, sizeof(*ev), cmp_event);
    /* Per account (and over all nodes): checks at once. For the busiest
     * account also the slots it left unused while streams of it were still
     * to start: time lost to intake or hand-offs, not to its limit. */
    int cur = 0, peak = 0;
    int64_t prev_t = 0;
    for (size_t i = 0; i < nev; i++) {
        if (i == 0 || ev[i].account != ev[i - 1].account)
            cur = peak = 0;
        if (ev[i].account == critical && ev[i].t <= f->critical_last_start) {
            int free_slots = w->limit[critical] - cur;
            if (free_slots > 0 && ev[i].t > prev_t)
                f->critical_idle_s += (double)free_slots * (double)(ev[i].t - prev_t) / 1000.0;
            prev_t = ev[i].t;
        }
        cur += ev[i].delta;
        if (cur > peak) {
            peak = cur;
            if (ev[i].account < 0)
                f->max_running = peak;
            else if (peak == w->limit[ev[i].account] + 1)
                f->accounts_over_limit++;
        }
    }
    qsort(waits, nwaits, sizeof(*waits), cmp_double);
    f->wait_p50_ms = bench_percentile(waits, nwaits, 50);
    f->wait_p90_ms = bench_percentile(waits, nwaits, 90);
    f->wait_max_ms = nwaits ? waits[nwaits - 1] : NAN;
    if (isinf(f->first_start_s))
        f->first_start_s = NAN;
    rc = 0;
done:
    if (rep)
        freeReplyObject(rep);
    free(ev);
    free(waits);
    return rc;
}

/*--- Nodes -----------------------------------------------------------------*/

static void count_key(const char *key, size_t len, void *arg)
{
    UNUSED(key);
    UNUSED(len);
    (*(int *)arg)++;
}

/* Every node registered and subscribed to the new-work channel? */
static int nodes_ready(redisContext *c, int k)
{
    int registered = 0;
    if (bench_redis_scan(c, BENCH_NS ":node:bm*", count_key, &registered) < 0)
        return 0;
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB %s", BENCH_NS ":jobs:new");
    long long subscribed = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                                   r->element[1]->type == REDIS_REPLY_INTEGER
                               ? r->element[1]->integer
                               : 0;
    if (r)
        freeReplyObject(r);
    return registered >= k && subscribed >= k;
}

static int start_nodes(const bench_makespan_opts *o, const char *sflimit, const char *dir,
                       bench_child *nodes, int *started, redisContext *c, char *err, size_t errlen)
{
    char sleep_s[32];
    snprintf(sleep_s, sizeof(sleep_s), "%.3f", (double)o->check_ms / 1000.0);
    const char *const command[] = {"sleep", sleep_s, NULL};
    for (int k = 0; k < o->nodes; k++) {
        char id[16], cfg[128], log[128];
        snprintf(id, sizeof(id), "bm%d", k);
        snprintf(cfg, sizeof(cfg), "%s/%s.json", dir, id);
        snprintf(log, sizeof(log), "%s/%s.log", dir, id);
        bench_config bc = {.node_id = id,
                           .redis_url = o->redis_url,
                           .global_limit = o->global_limit,
                           .command = command,
                           .check_timeout = (double)o->check_ms / 1000.0 + 30,
                           .lease_ttl_ms = LEASE_TTL_MS};
        if (bench_config_write(cfg, &bc, err, errlen) < 0)
            return -1;
        const char *argv[] = {sflimit, "node", "-c", cfg, "--redis", o->redis_url, NULL};
        if (bench_child_start(&nodes[k], argv, NULL, log, err, errlen) < 0)
            return -1;
        (*started)++;
    }
    int64_t deadline = bench_now_ns() + (int64_t)NODE_READY_DEADLINE_MS * 1000000;
    while (!nodes_ready(c, o->nodes)) {
        for (int k = 0; k < o->nodes; k++)
            if (bench_child_wait(&nodes[k], 0) == 0) {
                snprintf(err, errlen, "node bm%d exited at start (see %s/bm%d.log)", k, dir, k);
                return -1;
            }
        if (bench_now_ns() > deadline) {
            snprintf(err, errlen, "nodes not registered and subscribed within %d ms (logs in %s)",
                     NODE_READY_DEADLINE_MS, dir);
            return -1;
        }
        usleep(20000);
    }
    return 0;
}

/* SIGTERM to all at once (they hand work back in parallel), then each waited for. */
static int stop_nodes(bench_child *nodes, int started)
{
    int clean = 1;
    for (int k = 0; k < started; k++)
        if (nodes[k].pid && !nodes[k].reaped)
            kill(nodes[k].pid, SIGTERM);
    for (int k = 0; k < started; k++) {
        bench_child_finish(&nodes[k], NODE_STOP_GRACE_MS);
        if (!WIFEXITED(nodes[k].status) || WEXITSTATUS(nodes[k].status) != 0) {
            fprintf(stderr, "sflimit-bench makespan: node bm%d did not exit cleanly (status %d)\n",
                    k, nodes[k].status);
            clean = 0;
        }
    }
    return clean;
}

/*--- The run ---------------------------------------------------------------*/

static void report(const bench_makespan_opts *o, const bench_workload *w, int critical,
                   double makespan, double account_bound, double capacity_bound,
                   const mk_figures *f)
{
    double lower = account_bound > capacity_bound ? account_bound : capacity_bound;
    double ratio = makespan / lower;
    printf("{\"nodes\":%d,\"accounts\":%d,\"streams\":%lld,\"check_ms\":%" PRId64
           ",\"global_limit\":%d,\"seed\":%" PRIu64 ",",
           o->nodes, o->accounts, o->streams, o->check_ms, o->global_limit, o->seed);
    printf("\"makespan_s\":%.3f,\"lower_bound_s\":%.3f,\"ratio\":%.4f,", makespan, lower, ratio);
    printf("\"account_bound_s\":%.3f,\"capacity_bound_s\":%.3f,", account_bound, capacity_bound);
    printf("\"results\":%lld,\"ok\":%lld,\"accounts_over_limit\":%d,\"max_running\":%d,",
           f->results, f->ok, f->accounts_over_limit, f->max_running);
    printf("\"mean_running\":%.2f,\"first_start_s\":%.3f,", f->busy_s / makespan, f->first_start_s);
    printf("\"critical_account\":%lld,\"critical_limit\":%d,\"critical_streams\":%zu,"
           "\"critical_end_s\":%.3f,\"critical_idle_slot_s\":%.3f,",
           w->ids[critical], w->limit[critical], w->per_account[critical], f->critical_end_s,
           f->critical_idle_s);
    printf("\"lease_wait_ms_p50\":%.1f,\"lease_wait_ms_p90\":%.1f,\"lease_wait_ms_max\":%.1f,",
           f->wait_p50_ms, f->wait_p90_ms, f->wait_max_ms);
    printf("\"per_node\":[");
    for (int k = 0; k < o->nodes; k++)
        printf("%s%lld", k ? "," : "", f->per_node[k]);
    printf("]}\n");
    fflush(stdout);

    long long sum_limits = 0;
    for (int i = 0; i < w->naccounts; i++)
        sum_limits += w->limit[i];
    fprintf(stderr,
            "makespan: %d nodes x global_limit %d, %d accounts (limits sum %lld), %lld streams "
            "of %" PRId64 " ms\n"
            "  makespan      %.3f s   lower bound %.3f s (accounts %.3f, capacity %.3f)   "
            "ratio %.4f\n"
            "  busiest acct  %lld: %zu streams, limit %d, last check ended at %.3f s; its\n"
            "                slots unused before its last start: %.3f slot-s\n"
            "  running       mean %.2f, max %d (capacity %d); first start at %.3f s\n"
            "  lease wait ms p50 %.1f  p90 %.1f  max %.1f\n"
            "  results       %lld, OK %lld%s%s; accounts over their limit: %d\n",
            o->nodes, o->global_limit, o->accounts, sum_limits, o->streams, o->check_ms, makespan,
            lower, account_bound, capacity_bound, ratio, w->ids[critical], w->per_account[critical],
            w->limit[critical], f->critical_end_s, f->critical_idle_s, f->busy_s / makespan,
            f->max_running, o->nodes * o->global_limit, f->first_start_s, f->wait_p50_ms,
            f->wait_p90_ms, f->wait_max_ms, f->results, f->ok,
            f->first_bad[0] ? "; first not OK: " : "", f->first_bad, f->accounts_over_limit);
}

static void clean_redis(redisContext *c, const bench_workload *w, const mk_run *r,
                        const bench_makespan_opts *o)
{
    char err[256], hash[200], results[200];
    sfl_queue_key(hash, sizeof(hash), BENCH_NS, r->batch, NULL);
    sfl_queue_key(results, sizeof(results), BENCH_NS, r->batch, "results");
    const char *del[] = {"DEL", hash, results, BENCH_NS ":jobs"};
    if (bench_redis_do(c, err, sizeof(err), 4, del) < 0 ||
        bench_accounts_clean(c, w->ids, (size_t)w->naccounts, err, sizeof(err)) < 0)
        fprintf(stderr, "sflimit-bench makespan: cleaning Redis: %s\n", err);
    for (int k = 0; k < o->nodes; k++) {
        char key[64];
        snprintf(key, sizeof(key), BENCH_NS ":node:bm%d", k);
        const char *dn[] = {"DEL", key}; /* a node killed does not unregister */
        bench_redis_do(c, err, sizeof(err), 2, dn);
    }
}

int bench_makespan_run(const bench_makespan_opts *o)
{
    int rc = BENCH_EXIT_FAIL;
    char err[512], sflimit[4096], dir[64] = "";
    bench_workload *w = NULL;
    sfl_streams *streams = NULL;
    bench_child *nodes = NULL;
    int started = 0, dirty = 0;
    mk_run run = {.o = o};
    mk_figures f = {0};

    signal(SIGPIPE, SIG_IGN);
    if (bench_sflimit_path(o->sflimit, sflimit, sizeof(sflimit)) < 0) {
        fprintf(stderr, "sflimit-bench makespan: %s: not an executable (see --sflimit)\n", sflimit);
        return BENCH_EXIT_USAGE;
    }
    /* The nodes must take their ids and addresses from their configs. */
    unsetenv("SFL_NODE_ID");
    unsetenv("SFL_HTTP_LISTEN");
    unsetenv("SFL_REDIS_URL");
    redisContext *c = bench_redis_open(o->redis_url, err, sizeof(err));
    if (!c) {
        char shown[512];
        bench_redis_shown(o->redis_url, shown, sizeof(shown));
        fprintf(stderr, "sflimit-bench makespan: --redis %s: %s\n", shown, err);
        return BENCH_EXIT_FAIL;
    }
    int live = 0;
    if (bench_redis_scan(c, BENCH_NS ":node:*", count_key, &live) < 0 || live > 0) {
        fprintf(stderr,
                "sflimit-bench makespan: %s on this Redis: the benchmark clears the shared "
                "queue; give it a Redis of its own\n",
                live ? "sflimit nodes are registered" : "cannot scan for nodes");
        goto done;
    }
    w = bench_workload_new(o->accounts, (size_t)o->streams, o->seed, o->account_base);
    streams = w ? bench_workload_streams(w) : NULL;
    nodes = calloc((size_t)o->nodes, sizeof(*nodes));
    f.per_node = calloc((size_t)o->nodes, sizeof(*f.per_node));
    if (!w || !streams || !nodes || !f.per_node) {
        fprintf(stderr, "sflimit-bench makespan: out of memory\n");
        goto done;
    }
    const char *deljobs[] = {"DEL", BENCH_NS ":jobs"};
    dirty = 1;
    if (bench_accounts_write(c, w->ids, w->limit, (size_t)w->naccounts, err, sizeof(err)) < 0 ||
        bench_redis_do(c, err, sizeof(err), 2, deljobs) < 0) {
        fprintf(stderr, "sflimit-bench makespan: setup: %s\n", err);
        goto done;
    }
    if (bench_tmpdir_make(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "sflimit-bench makespan: mkdtemp: %s\n", strerror(errno));
        dir[0] = '\0';
        goto done;
    }
    if (start_nodes(o, sflimit, dir, nodes, &started, c, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit-bench makespan: %s\n", err);
        goto done;
    }

    double d = (double)o->check_ms / 1000.0;
    int critical;
    double account_bound = bench_workload_account_bound(w, d, &critical);
    double capacity_bound =
        ceil((double)o->streams / ((double)o->nodes * (double)o->global_limit)) * d;
    double lower = account_bound > capacity_bound ? account_bound : capacity_bound;
    double timeout = o->timeout > 0 ? o->timeout : 3 * lower + 60;

    sfl_queue_new_batch_id(run.batch, sizeof(run.batch));
    sfl_queue_key(run.hash, sizeof(run.hash), BENCH_NS, run.batch, NULL);
    run.streams = streams;
    if (run_batch(&run, timeout) < 0) {
        fprintf(stderr, "sflimit-bench makespan: batch %s: %s (node logs in %s)\n", run.batch,
                run.err, dir);
        goto stop;
    }
    double makespan = (double)(run.t_end_ns - run.t0_ns) / 1e9;
    if (analyse(c, &run, w, critical, o->keep ? dir : NULL, &f) < 0) {
        fprintf(stderr, "sflimit-bench makespan: cannot read the results back\n");
        goto stop;
    }
    report(o, w, critical, makespan, account_bound, capacity_bound, &f);
    rc = BENCH_EXIT_OK;
    if (f.results != o->streams || f.ok != o->streams || f.accounts_over_limit > 0)
        rc = BENCH_EXIT_FAIL;
    if (o->max_ratio > 0 && makespan / lower > o->max_ratio) {
        fprintf(stderr, "sflimit-bench makespan: ratio %.4f above --max-ratio %.4f\n",
                makespan / lower, o->max_ratio);
        rc = BENCH_EXIT_FAIL;
    }
stop:
    if (!stop_nodes(nodes, started))
        rc = BENCH_EXIT_FAIL;
    started = 0;
done:
    if (nodes)
        stop_nodes(nodes, started);
    if (dirty)
        clean_redis(c, w, &run, o);
    if (dir[0] && !o->keep && rc == BENCH_EXIT_OK)
        bench_tmpdir_remove(dir);
    else if (dir[0])
        fprintf(stderr, "sflimit-bench makespan: configs and node logs kept in %s\n", dir);
    free(f.per_node);
    free(nodes);
    sfl_streams_free(streams);
    bench_workload_free(w);
    redisFree(c);
    return rc;
}
