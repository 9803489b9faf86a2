/* cmd_node.c - `sflimit node`: one host's checker daemon.
 *
 * Takes work from the shared queue (queue.c) no faster than it can start
 * it (global_limit running plus node.lookahead waiting), runs it through
 * the worker (scheduler, leases, checks), stores each result in its batch
 * and only then acknowledges the entry. An entry whose URL check.schemes
 * does not allow (from an older node, or added by hand) is never run: it
 * gets an Error result naming why. Entries it holds are kept fresh
 * (their idle time reset) so nobody claims live work; entries a dead node
 * held go idle and this node claims them. Storing a result also deletes its
 * entry from the queue. Every claim time it removes from the queue's group
 * the consumers of stopped nodes that hold nothing pending (queue.c). It
 * announces itself in <ns>:node:<id> (short TTL) and serves the HTTP API.
 *
 * SIGTERM/SIGINT: take nothing new, hand queued entries back at once (marked
 * idle, so another node claims them now), give running checks
 * node.shutdown_grace seconds, then stop them and hand those back too;
 * release every lease; exit 0. SIGHUP re-reads the config's account limits.
 * Results that cannot be stored while Redis is away are kept and stored
 * when it returns.
 */
#include "cmd_node.h"

#include "accounts.h"
#include "app.h"
#include "check.h"
#include "cli.h"
#include "clock.h"
#include "conf.h"
#include "dispatcharr_sync.h"
#include "history.h"
#include "http_api.h"
#include "limiter.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "node_view.h"
#include "queue.h"
#include "scheduler.h"
#include "sources.h"
#include "store.h"
#include "streams.h"
#include "worker.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define REGISTRY_MS 2000
#define REGISTRY_TTL_MS 10000
#define PULL_FALLBACK_MS 2000

/* A queue entry this node holds, from intake to acknowledgement. */
typedef struct nentry {
    struct node *n;
    sfl_queue_entry e;
    char *result; /* JSON waiting to be stored (Redis away), or NULL */
    int storing;
    struct nentry *prev, *next;
} nentry;

typedef struct node {
    sfl_app app;
    sfl_worker *worker;
    sfl_http *http;
    nentry *held;
    size_t nheld;
    size_t capacity;
    int group_ready;
    int reading;
    int stopping;
    int exit_code;
    char started_at[32];
    sfl_node_view view; /* what it shows of itself: /healthz, /metrics (node_view.c) */
    struct event *sigint, *sigterm, *sighup;
    struct event *pull_timer, *claim_timer, *touch_timer, *registry_timer, *reap_timer;
    struct event *grace_timer, *exit_timer, *sync_timer;
    sfl_dispatcharr_sync *sync; /* periodic limit sync, when dispatcharr.sync_interval is set */
    sfl_sources *sources;       /* others' connections: viewers, panels (NULL: none) */
} node;

static void pull(node *n);
static void maybe_exit(node *n);

static int64_t claim_idle_ms(const node *n)
{
    return (int64_t)llround(n->app.conf->node_claim_idle * 1000);
}

/*--- Held entries ----------------------------------------------------------*/

static void entry_forget(nentry *h)
{
    node *n = h->n;
    SFL_LIST_UNLINK(n->held, h);
    n->nheld--;
    sfl_queue_entry_clear(&h->e);
    free(h->result);
    free(h);
}

static int entry_held(const node *n, const char *id)
{
    for (nentry *h = n->held; h; h = h->next)
        if (strcmp(h->e.id, id) == 0)
            return 1;
    return 0;
}

/* Marks entries idle enough for any node to claim, and says so. */
static void hand_back_ids(node *n, const char *const *ids, size_t count)
{
    if (!count || !n->app.store || !sfl_store_ready(n->app.store))
        return; /* they go idle by themselves */
    sfl_queue_touch(n->app.store, n->app.conf->node_id, ids, count, claim_idle_ms(n) * 10);
    char channel[160];
    sfl_queue_key(channel, sizeof(channel), n->app.conf->redis_namespace, NULL, "jobs:new");
    const char *pub[3] = {"PUBLISH", channel, "handback"};
    sfl_store_command(n->app.store, NULL, NULL, 3, pub);
}

/* Another node may take it at once. */
static void entry_hand_back(nentry *h)
{
    node *n = h->n;
    const char *ids[1] = {h->e.id};
    hand_back_ids(n, ids, 1);
    entry_forget(h);
}

static void store_result(nentry *h);

static void on_stored(int ok, const char *err, void *arg)
{
    nentry *h = arg;
    node *n = h->n;
    h->storing = 0;
    if (!ok) {
        sfl_warn("cannot store the result of stream %lld (batch %s): %s; kept for later",
                 h->e.stream->v[0].id, h->e.batch, err);
        return; /* retried on the next connect */
    }
    entry_forget(h);
    if (n->stopping)
        maybe_exit(n);
    else
        pull(n);
}

static void store_result(nentry *h)
{
    node *n = h->n;
    if (h->storing || !h->result)
        return;
    int64_t ttl = (int64_t)llround(n->app.conf->node_batch_ttl * 1000);
    h->storing = 1;
    if (sfl_queue_store_result(n->app.store, h->e.batch, h->e.stream->v[0].id, h->result, ttl,
                               h->e.id, on_stored, h) < 0)
        h->storing = 0; /* Redis away: stored on the next connect */
}

static void on_result(void *ctx, const sfl_stream *stream, cJSON *result, sfl_status status,
                      int started, void *arg)
{
    nentry *h = ctx;
    node *n = arg;
    UNUSED(stream);
    if (n->stopping && status == SFL_STATUS_CANCELLED) {
        /* Not checked here after all: another node will. */
        cJSON_Delete(result);
        entry_hand_back(h);
        maybe_exit(n);
        return;
    }
    UNUSED(started);
    n->view.checks[status]++;
    sfl_history_stream_result(n->app.hist, result); /* pipelined with store_result below */
    h->result = cJSON_PrintUnformatted(result);
    cJSON_Delete(result);
    if (!h->result) {
        entry_hand_back(h);
        return;
    }
    store_result(h);
}

/* A wait goes into the histogram when it ends: at the grant, or at NoSlot
 * with the time waited in vain (the longest waits). */
static void on_wait(const sfl_stream *stream, int64_t wait_ms, int granted, void *arg)
{
    node *n = arg;
    UNUSED(stream);
    UNUSED(granted);
    sfl_histogram_observe(&n->view.lease_wait, (double)wait_ms / 1000.0);
}

/* What a source of others' connections wrote for a login goes into its
 * history (this node polls that source). */
static void on_others_seen(const char *login, long long external, void *arg)
{
    sfl_history_others(arg, login, external);
}

/*--- Intake ----------------------------------------------------------------*/

static void on_entries(int ok, sfl_queue_entry *entries, size_t count, void *arg)
{
    node *n = arg;
    n->reading = 0;
    size_t asked = n->capacity > n->nheld ? n->capacity - n->nheld : 0;
    for (size_t i = 0; i < count; i++) {
        sfl_queue_entry *e = &entries[i];
        if (!e->stream) {
            sfl_error("queue: dropping a malformed entry: %s", e->error);
            if (e->id[0])
                sfl_queue_ack(n->app.store, e->id);
            continue;
        }
        if (entry_held(n, e->id) || n->stopping || !n->worker) {
            if (n->stopping && !entry_held(n, e->id)) {
                const char *ids[1] = {e->id};
                hand_back_ids(n, ids, 1);
            }
            sfl_queue_entry_clear(e);
            continue;
        }
        nentry *h = calloc(1, sizeof(*h));
        if (!h) {
            sfl_queue_entry_clear(e);
            continue;
        }
        h->n = n;
        h->e = *e;
        SFL_LIST_PUSH(n->held, h);
        n->nheld++;
        const sfl_stream *s = &h->e.stream->v[0];
        char why[400], msg[480];
        if (sfl_url_allowed(s->url, n->app.conf->check_schemes, n->app.conf->check_nschemes, why,
                            sizeof(why)) < 0) {
            /* Put there by an older node or by hand: never run, but its
             * batch still gets a result for it. */
            snprintf(msg, sizeof(msg), "not checked: URL %s", why);
            sfl_warn("queue: stream %lld (batch %s): %s", s->id, h->e.batch, msg);
            on_result(h, s, sfl_result_new(s, n->app.conf->node_id, SFL_STATUS_ERROR, msg),
                      SFL_STATUS_ERROR, 0, n);
        } else if (sfl_worker_add(n->worker, s, h) < 0) {
            entry_hand_back(h);
        }
    }
    free(entries);
    /* A full answer: more may be waiting. */
    if (ok && count > 0 && count >= asked)
        pull(n);
}

static void pull(node *n)
{
    if (n->stopping || n->reading || !n->group_ready || !sfl_store_ready(n->app.store))
        return;
    if (n->nheld >= n->capacity)
        return;
    if (sfl_queue_read(n->app.store, n->app.conf->node_id, n->capacity - n->nheld, on_entries, n) ==
        0)
        n->reading = 1;
}

static void on_pull_timer(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    pull(arg);
}

static void on_claim_timer(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    UNUSED(fd);
    UNUSED(what);
    if (n->stopping || n->reading || !n->group_ready || !sfl_store_ready(n->app.store) ||
        n->nheld >= n->capacity)
        return;
    if (sfl_queue_claim(n->app.store, n->app.conf->node_id, claim_idle_ms(n),
                        n->capacity - n->nheld, on_entries, n) == 0)
        n->reading = 1;
}

static void on_touch_timer(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    UNUSED(fd);
    UNUSED(what);
    if (!n->nheld || !sfl_store_ready(n->app.store))
        return;
    const char **ids = calloc(n->nheld, sizeof(char *));
    size_t k = 0;
    for (nentry *h = n->held; ids && h; h = h->next)
        ids[k++] = h->e.id;
    if (ids)
        sfl_queue_touch(n->app.store, n->app.conf->node_id, ids, k, 0);
    free(ids);
}

static void on_reaped(const char *consumer, void *arg)
{
    UNUSED(arg);
    sfl_info("queue: consumer %s removed from the group (node gone or idle, nothing pending)",
             consumer);
}

static void on_reap_timer(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    UNUSED(fd);
    UNUSED(what);
    if (n->stopping || !n->group_ready || !sfl_store_ready(n->app.store))
        return;
    sfl_queue_reap(n->app.store, n->app.conf->node_id, claim_idle_ms(n), on_reaped, n);
}

/*--- Registry and health ---------------------------------------------------*/

static void on_registry_timer(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    UNUSED(fd);
    UNUSED(what);
    if (!sfl_store_ready(n->app.store))
        return;
    char key[160], pid[24], running[24], held[24], leases[24], limit[24], ttl[24];
    snprintf(key, sizeof(key), "%s:node:%s", n->app.conf->redis_namespace, n->app.conf->node_id);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(running, sizeof(running), "%d", sfl_worker_running(n->worker));
    snprintf(held, sizeof(held), "%zu", n->nheld);
    snprintf(leases, sizeof(leases), "%d", sfl_limiter_held(n->app.lim));
    snprintf(limit, sizeof(limit), "%d", n->app.conf->global_limit);
    snprintf(ttl, sizeof(ttl), "%d", REGISTRY_TTL_MS);
    const char *hset[16] = {
        "HSET",         key,   "started_at", n->started_at,
        "pid",          pid,   "running",    running,
        "held",         held,  "leases",     leases,
        "global_limit", limit, "state",      n->stopping ? "stopping" : "running"};
    const char *expire[3] = {"PEXPIRE", key, ttl};
    sfl_store_command(n->app.store, NULL, NULL, 16, hset);
    sfl_store_command(n->app.store, NULL, NULL, 3, expire);
}

/*--- Connection events -----------------------------------------------------*/

static void on_group(int ok, const char *err, void *arg)
{
    node *n = arg;
    if (!ok) {
        sfl_warn("queue: cannot create the consumer group: %s", err);
        return;
    }
    n->group_ready = 1;
    pull(n);
}

static void on_accounts_written(int ok, const char *err, void *arg)
{
    UNUSED(arg);
    if (!ok)
        sfl_warn("%s", err);
}

static void on_sync_timer(evutil_socket_t fd, short what, void *arg);

static void on_ready(sfl_app *app, void *arg)
{
    node *n = arg;
    if (app->ready_count == 1)
        sfl_info("node %s: connected to Redis; taking work from the shared queue",
                 app->conf->node_id);
    else
        sfl_worker_kick(n->worker);
    if (app->conf->naccounts > 0)
        sfl_accounts_write(app->store, sfl_limiter_routes(app->lim), app->conf->accounts,
                           app->conf->naccounts, app->recovery_ms, 0, on_accounts_written, n);
    /* The stream and its group may be gone with a restarted Redis. */
    n->group_ready = 0;
    n->reading = 0;
    sfl_queue_ensure_group(app->store, on_group, n);
    sfl_sources_on_ready(n->sources);
    if (app->ready_count == 1 && sfl_sources_want_sync(n->sources))
        on_sync_timer(-1, 0, n); /* the viewers need the logins now, not in an interval */
    for (nentry *h = n->held; h; h = h->next)
        store_result(h);
    on_registry_timer(-1, 0, n);
}

static void on_claim_timer(evutil_socket_t fd, short what, void *arg);

/* "<batch>": new entries; "handback": a stopping node gave entries back. */
static void on_message(sfl_app *app, const char *channel, const char *msg, void *arg)
{
    UNUSED(app);
    UNUSED(channel);
    if (strcmp(msg, "handback") == 0)
        on_claim_timer(-1, 0, arg);
    else
        pull(arg);
}

/*--- Dispatcharr sync ------------------------------------------------------*/

static void on_synced(const sfl_account_conf *accs, const long long *was, size_t count,
                      const char *err, void *arg)
{
    node *n = arg;
    if (err) {
        sfl_warn("dispatcharr sync: %s; limits unchanged", err);
        return;
    }
    char why[256];
    if (sfl_limiter_set_accounts(n->app.lim, accs, count, why, sizeof(why)) < 0)
        sfl_warn("dispatcharr sync: %s; logins unchanged", why);
    else
        sfl_sources_synced(n->sources, sfl_limiter_routes(n->app.lim), accs, count);
    size_t changed = 0;
    for (size_t i = 0; i < count; i++)
        changed += was[i] != accs[i].max_streams;
    sfl_info("dispatcharr sync: %zu account(s), %zu changed", count, changed);
}

static void on_sync_timer(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    UNUSED(fd);
    UNUSED(what);
    if (n->stopping || !sfl_store_ready(n->app.store))
        return;
    if (sfl_dispatcharr_sync_run(n->sync, n->app.store, n->app.recovery_ms, on_synced, n) < 0)
        sfl_debug("dispatcharr sync skipped: %s", sfl_dispatcharr_sync_errstr(n->sync));
}

/*--- Stopping --------------------------------------------------------------*/

static void finish(node *n)
{
    if (sfl_store_ready(n->app.store)) {
        char key[160];
        snprintf(key, sizeof(key), "%s:node:%s", n->app.conf->redis_namespace,
                 n->app.conf->node_id);
        const char *del[2] = {"DEL", key};
        sfl_store_command(n->app.store, NULL, NULL, 2, del);
        /* Out of the queue's group now, unless work handed back is still
         * pending here: then the others remove it once they claimed that. */
        sfl_queue_leave(n->app.store, n->app.conf->node_id, NULL, NULL);
    }
    /* Sidecar clients' leases first (the server owns them), then ours; the
     * exit timer waits for Redis to confirm the releases. */
    sfl_http_free(n->http);
    n->http = NULL;
    sfl_limiter_release_all(n->app.lim);
    sfl_timer_in(n->exit_timer, 0);
}

static void maybe_exit(node *n)
{
    if (!n->stopping || sfl_worker_running(n->worker) > 0)
        return;
    for (nentry *h = n->held; h; h = h->next)
        if (h->result)
            return; /* results still to store */
    finish(n);
}

static void on_exit_timer(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    UNUSED(fd);
    UNUSED(what);
    /* Give the last commands (releases, acks) a moment, never long. */
    sfl_app_finish(&n->app, SFL_APP_RELEASE_WAIT_MS);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    node *n = arg;
    UNUSED(fd);
    UNUSED(what);
    if (sfl_worker_running(n->worker) > 0) {
        sfl_warn("node: shutdown grace over; stopping %d running check(s), their streams go "
                 "back to the queue",
                 sfl_worker_running(n->worker));
        sfl_worker_cancel(n->worker);
    }
    /* Results Redis would not take: the entries will be claimed again. */
    nentry *next;
    for (nentry *h = n->held; h; h = next) {
        next = h->next;
        if (h->result && !h->storing)
            entry_forget(h);
    }
    maybe_exit(n);
    if (!evtimer_pending(n->exit_timer, NULL))
        sfl_timer_in(n->exit_timer, 5000); /* whatever happens */
}

/* Takes no new work, hands back what waits, gives running checks the grace. */
static void node_stop(node *n, const char *why)
{
    n->stopping = 1;
    sfl_info("node %s: %s: taking no new work; %d check(s) running get %g s to finish",
             n->app.conf->node_id, why, sfl_worker_running(n->worker),
             n->app.conf->node_shutdown_grace);
    sfl_worker_drain(n->worker);
    sfl_timer_in(n->grace_timer, (int64_t)llround(n->app.conf->node_shutdown_grace * 1000));
    on_registry_timer(-1, 0, n);
    maybe_exit(n);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    node *n = arg;
    UNUSED(what);
    if (n->stopping) {
        sfl_warn("node: second signal; stopping now");
        n->app.conf->node_shutdown_grace = 0;
        sfl_timer_in(n->grace_timer, 0);
        return;
    }
    char why[32];
    snprintf(why, sizeof(why), "signal %d", (int)sig);
    node_stop(n, why);
}

/* Redis keeps refusing the password (or wants one): the config is wrong, and
 * a supervisor restarting the node with a fixed one is the way out. */
static void on_auth_refused(sfl_app *app, void *arg)
{
    node *n = arg;
    int64_t since;
    int tries = sfl_store_auth_refused(app->store, &since);
    sfl_error("node %s: Redis refused authentication %d time(s) in a row over %.1f s, stopping "
              "(exit 1): %s",
              app->conf->node_id, tries, (double)(sfl_mono_ms() - since) / 1000.0,
              sfl_store_errstr(app->store));
    n->exit_code = SFL_EXIT_FAIL;
    if (!n->stopping)
        node_stop(n, "Redis refused authentication");
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    node *n = arg;
    UNUSED(sig);
    UNUSED(what);
    char err[512];
    sfl_conf *c = sfl_conf_load(n->app.conf->path, err, sizeof(err));
    if (!c) {
        sfl_error("SIGHUP: config not reloaded: %s", err);
        return;
    }
    if (sfl_limiter_set_accounts(n->app.lim, c->accounts, c->naccounts, err, sizeof(err)) < 0) {
        sfl_error("SIGHUP: config not reloaded: %s", err);
        sfl_conf_free(c);
        return;
    }
    if (c->naccounts > 0 &&
        sfl_accounts_write(n->app.store, sfl_limiter_routes(n->app.lim), c->accounts, c->naccounts,
                           n->app.recovery_ms, 0, on_accounts_written, n) < 0)
        sfl_warn("SIGHUP: Redis is away; limits will be written on reconnect");
    /* Keep the new accounts for the next connect. */
    sfl_account_conf *old = n->app.conf->accounts;
    size_t nold = n->app.conf->naccounts;
    n->app.conf->accounts = c->accounts;
    n->app.conf->naccounts = c->naccounts;
    c->accounts = old;
    c->naccounts = nold;
    sfl_conf_free(c);
    sfl_sources_configured(n->sources, sfl_limiter_routes(n->app.lim), n->app.conf->accounts,
                           n->app.conf->naccounts);
    sfl_info("SIGHUP: account limits reloaded (%zu accounts)", n->app.conf->naccounts);
}

/*--- Descriptors -----------------------------------------------------------*/

/* The soft RLIMIT_NOFILE up to the hard one (to fs.nr_open when the hard one
 * is unlimited): connections, checks' pipes and Redis share it. The limit
 * in force, and the one found (*was). */
static long long raise_nofile(long long *was)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        *was = -1;
        return -1;
    }
    *was = (long long)rl.rlim_cur;
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY) {
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        unsigned long long n = 0;
        if (!f || fscanf(f, "%llu", &n) != 1 || n == 0)
            n = 1 << 20;
        if (f)
            fclose(f);
        want = (rlim_t)n;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = want;
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur;
}

/*--- Command ---------------------------------------------------------------*/

static const char usage[] =
    "usage: sflimit node [-c CONFIG] [--redis URL] [--listen HOST:PORT]\n"
    "\n"
    "Runs this host's checker daemon: takes streams from the shared queue\n"
    "(put there by `sflimit submit` or POST /v1/checks), checks them under\n"
    "account leases shared with every other node through Redis, and stores the\n"
    "results in their batches. Serves the HTTP API on http.listen.\n"
    "SIGTERM/SIGINT: stop taking work, let running checks finish for\n"
    "node.shutdown_grace seconds, hand the rest back to the queue, exit 0.\n"
    "SIGHUP: re-read the config's account limits.\n";

static void free_events(node *n)
{
    struct event **evs[] = {&n->sigint,      &n->sigterm,     &n->sighup,         &n->pull_timer,
                            &n->claim_timer, &n->touch_timer, &n->registry_timer, &n->grace_timer,
                            &n->exit_timer,  &n->sync_timer,  &n->reap_timer};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
}

int sfl_cmd_node(int argc, char **argv)
{
    enum { OPT_REDIS = 1000, OPT_LISTEN };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"redis", required_argument, NULL, OPT_REDIS},
                                         {"listen", required_argument, NULL, OPT_LISTEN},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *redis = NULL, *listen = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case OPT_REDIS:
            redis = optarg;
            break;
        case OPT_LISTEN:
            listen = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return SFL_EXIT_OK;
        default:
            fputs(usage, stderr);
            return SFL_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sflimit: node: unexpected argument '%s'\n%s", argv[optind], usage);
        return SFL_EXIT_USAGE;
    }
    sfl_conf *conf = sfl_cli_conf(config, redis);
    if (!conf)
        return SFL_EXIT_USAGE;
    if (listen) {
        free(conf->http_listen);
        conf->http_listen = strdup(listen);
        char err[256];
        if (!conf->http_listen || sfl_conf_validate(conf, err, sizeof(err)) < 0) {
            fprintf(stderr, "sflimit: --listen: %s\n", conf->http_listen ? err : "out of memory");
            sfl_conf_free(conf);
            return SFL_EXIT_USAGE;
        }
    }

    long long nofile_was, nofile = raise_nofile(&nofile_was);
    node n = {.exit_code = SFL_EXIT_OK};
    char err[512];
    char channel[160];
    sfl_queue_key(channel, sizeof(channel), conf->redis_namespace, NULL, "jobs:new");
    const char *channels[2] = {channel, NULL};
    if (sfl_app_open(&n.app, conf, 1, channels, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        return SFL_EXIT_FAIL;
    }
    n.view = (sfl_node_view){.app = &n.app,
                             .stopping = &n.stopping,
                             .held_entries = &n.nheld,
                             .started_mono = sfl_mono_ms()};
    sfl_wall_iso(n.started_at, sizeof(n.started_at));
    int lookahead =
        n.app.conf->node_lookahead > 0 ? n.app.conf->node_lookahead : n.app.conf->global_limit;
    n.capacity =
        (size_t)(n.app.conf->concurrent_enabled ? n.app.conf->global_limit : 1) + (size_t)lookahead;
    n.worker = sfl_worker_new(&n.app, on_result, &n);
    if (n.worker)
        sfl_worker_on_wait(n.worker, on_wait, &n);
    n.view.worker = n.worker;
    sfl_http_node hn = {&n.app, sfl_node_view_health, sfl_node_view_accounts, sfl_node_view_metrics,
                        &n.view};
    int usage_error = 0;
    if (n.worker)
        n.http = sfl_http_new(&hn, NULL, err, sizeof(err), &usage_error);
    if (!n.worker || !n.http) {
        fprintf(stderr, "sflimit: %s\n", n.worker ? err : "out of memory");
        n.exit_code = usage_error ? SFL_EXIT_USAGE : SFL_EXIT_FAIL;
        goto done;
    }
    struct event_base *base = n.app.base;
    n.sigint = evsignal_new(base, SIGINT, on_stop_signal, &n);
    n.sigterm = evsignal_new(base, SIGTERM, on_stop_signal, &n);
    n.sighup = evsignal_new(base, SIGHUP, on_sighup, &n);
    n.pull_timer = event_new(base, -1, EV_PERSIST, on_pull_timer, &n);
    n.claim_timer = event_new(base, -1, EV_PERSIST, on_claim_timer, &n);
    n.touch_timer = event_new(base, -1, EV_PERSIST, on_touch_timer, &n);
    n.registry_timer = event_new(base, -1, EV_PERSIST, on_registry_timer, &n);
    n.reap_timer = event_new(base, -1, EV_PERSIST, on_reap_timer, &n);
    n.grace_timer = evtimer_new(base, on_grace, &n);
    n.exit_timer = evtimer_new(base, on_exit_timer, &n);
    if (!n.sigint || !n.sigterm || !n.sighup || !n.pull_timer || !n.claim_timer || !n.touch_timer ||
        !n.registry_timer || !n.reap_timer || !n.grace_timer || !n.exit_timer) {
        fprintf(stderr, "sflimit: out of memory\n");
        n.exit_code = SFL_EXIT_FAIL;
        goto done;
    }
    evsignal_add(n.sigint, NULL);
    evsignal_add(n.sigterm, NULL);
    evsignal_add(n.sighup, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfl_timer_in(n.pull_timer, PULL_FALLBACK_MS);
    sfl_timer_in(n.claim_timer, claim_idle_ms(&n) / 2);
    sfl_timer_in(n.touch_timer, claim_idle_ms(&n) / 3);
    sfl_timer_in(n.registry_timer, REGISTRY_MS);
    sfl_timer_in(n.reap_timer, claim_idle_ms(&n));
    if (n.app.conf->dispatcharr_url && n.app.conf->dispatcharr_sync_interval > 0) {
        n.sync = sfl_dispatcharr_sync_new(base, n.app.conf, err, sizeof(err));
        n.sync_timer = event_new(base, -1, EV_PERSIST, on_sync_timer, &n);
        if (!n.sync || !n.sync_timer) {
            fprintf(stderr, "sflimit: dispatcharr: %s\n", n.sync ? "out of memory" : err);
            n.exit_code = SFL_EXIT_USAGE;
            goto done;
        }
        sfl_timer_in(n.sync_timer, (int64_t)llround(n.app.conf->dispatcharr_sync_interval * 1000));
    }
    n.sources = sfl_sources_new(base, n.app.store, sfl_limiter_routes(n.app.lim), n.app.conf, err,
                                sizeof(err));
    if (!n.sources && err[0]) {
        fprintf(stderr, "sflimit: %s\n", err);
        n.exit_code = SFL_EXIT_USAGE;
        goto done;
    }
    if (n.app.hist)
        sfl_sources_on_seen(n.sources, on_others_seen, n.app.hist);
    n.app.on_ready = on_ready;
    n.app.on_message = on_message;
    n.app.on_auth_refused = on_auth_refused;
    n.app.arg = &n;
    const char *listen_at = n.app.conf->http_listen;
    const char *colon = strrchr(listen_at, ':');
    int max_conns = sfl_http_max_connections(n.http);
    if (n.app.conf->http_max_connections > max_conns)
        sfl_warn("http.max_connections %lld is more than the descriptor limit (%lld) leaves "
                 "once the checks and Redis have theirs: %d",
                 (long long)n.app.conf->http_max_connections, nofile, max_conns);
    sfl_info("node %s: http on %.*s:%d (at most %d connections), capacity %zu (global_limit %d "
             "+ lookahead %d), descriptors %lld%s",
             n.app.conf->node_id, colon ? (int)(colon - listen_at) : (int)strlen(listen_at),
             listen_at, sfl_http_port(n.http), max_conns, n.capacity, n.app.conf->global_limit,
             lookahead, nofile, nofile > nofile_was ? " (soft limit raised to the hard one)" : "");
    sfl_app_start(&n.app, 0);
    event_base_dispatch(base);
    sfl_info("node %s: stopped (checks: OK %" PRIu64 ", Timeout %" PRIu64 ", Error %" PRIu64
             ", LeaseLost %" PRIu64 ", NoSlot %" PRIu64 ")",
             n.app.conf->node_id, n.view.checks[SFL_STATUS_OK], n.view.checks[SFL_STATUS_TIMEOUT],
             n.view.checks[SFL_STATUS_ERROR], n.view.checks[SFL_STATUS_LEASE_LOST],
             n.view.checks[SFL_STATUS_NOSLOT]);
done:
    /* Teardown order: nothing may call back into freed state. Another
     * SIGTERM/SIGINT now (an impatient supervisor) must not kill the node
     * half-way through handing back its work. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    n.stopping = 1;
    free_events(&n);
    sfl_http_free(n.http);
    sfl_worker_free(n.worker); /* kills what still runs, cancels tries in flight */
    n.worker = NULL;
    sfl_dispatcharr_sync_free(n.sync);
    sfl_sources_free(n.sources); /* gives the poller roles up while Redis is there */
    sfl_app_disconnect(&n.app);  /* pending callbacks see held entries still alive */
    while (n.held)
        entry_forget(n.held);
    sfl_app_close(&n.app);
    return n.exit_code;
}
