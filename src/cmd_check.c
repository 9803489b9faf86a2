/* cmd_check.c - `sflimit check [STREAMS.json | -]`: StreamFlow's job, through
 * leases shared in Redis.
 *
 * Reads and validates the config and the streams first, each URL's scheme
 * against check.schemes too (exit 2 on any error, nothing written to
 * Redis), then writes the config's account limits, queues every stream in
 * the scheduler and writes one JSON line per stream as it ends. Every
 * stream gets exactly one result: checked ones their status, the others
 * NoSlot, Cancelled or Error.
 *
 * SIGINT/SIGTERM: nothing new starts, running checks are stopped, queued
 * streams get Cancelled, every lease is released, exit 130/143.
 * Logs keep the seed's lines so existing log watchers go on working.
 */
#include "cmd_check.h"

#include "accounts.h"
#include "app.h"
#include "check.h"
#include "cli.h"
#include "clock.h"
#include "conf.h"
#include "history.h"
#include "keys.h"
#include "limiter.h"
#include "log.h"
#include "runner.h"
#include "scheduler.h"
#include "store.h"
#include "streams.h"
#include "worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct batch {
    sfl_app app;
    sfl_worker *worker;
    sfl_streams *streams;
    size_t total, done, statuses[SFL_STATUS_COUNT];
    FILE *out;
    const char *out_path;
    int quiet, progress;
    int started;  /* streams handed to the worker */
    int stopping; /* signal number, or -1 after an output error */
    int64_t t0;
    long long *accounts; /* distinct limited accounts */
    size_t naccounts;
    long long *limits;
    size_t *counts; /* streams per account, beside accounts */
    size_t custom;  /* streams of no account */
    size_t limits_owed;
    struct event *tick;
} batch;

static void maybe_finish(batch *b);
static void progress_draw(batch *b, int final);

/*--- Results ---------------------------------------------------------------*/

static void emit(batch *b, cJSON *result, sfl_status status)
{
    b->done++;
    b->statuses[status]++;
    sfl_history_stream_result(b->app.hist, result);
    char *line = cJSON_PrintUnformatted(result);
    cJSON_Delete(result);
    if (line && b->stopping != -1) {
        if (fprintf(b->out, "%s\n", line) < 0 || fflush(b->out) != 0) {
            sfl_error("cannot write results to %s: %s; stopping", b->out_path, strerror(errno));
            b->stopping = -1;
            b->app.rc = SFL_EXIT_FAIL;
            sfl_worker_cancel(b->worker);
        }
    }
    free(line);
    progress_draw(b, 0);
    maybe_finish(b);
}

static void on_result(void *ctx, const sfl_stream *stream, cJSON *result, sfl_status status,
                      int started, void *arg)
{
    UNUSED(ctx);
    UNUSED(stream);
    UNUSED(started);
    emit(arg, result, status);
}

/*--- Progress --------------------------------------------------------------*/

typedef struct waiting_ctx {
    char *buf;
    size_t len, used;
} waiting_ctx;

static void add_waiting(const sfl_sched_account *a, void *arg)
{
    waiting_ctx *w = arg;
    if (a->queued == 0 || w->used + 40 >= w->len)
        return;
    if (a->account == SFL_CUSTOM_ACCOUNT)
        w->used += snprintf(w->buf + w->used, w->len - w->used, " custom:%zu", a->queued);
    else
        w->used += snprintf(w->buf + w->used, w->len - w->used, " %lld:%zu", a->account, a->queued);
}

static void progress_draw(batch *b, int final)
{
    if (!b->progress || !b->worker)
        return;
    char waiting[200] = "";
    waiting_ctx w = {waiting, sizeof(waiting), 0};
    sfl_sched_each_account(sfl_worker_sched(b->worker), add_waiting, &w);
    double el = (sfl_mono_ms() - b->t0) / 1000.0;
    char eta[32] = "";
    if (b->done > 0 && b->done < b->total)
        snprintf(eta, sizeof(eta), " ETA %.0fs", el / b->done * (b->total - b->done));
    int width = 24, fill = b->total ? (int)(width * b->done / b->total) : width;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r\033[K[%s] %zu/%zu done, %d running%s%s%s%s", bar, b->done, b->total,
            sfl_worker_running(b->worker), waiting[0] ? ", waiting (account:n)" : "", waiting, eta,
            final ? "\n" : "");
    fflush(stderr);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    progress_draw(arg, 0);
}

/*--- Start and end ---------------------------------------------------------*/

static void maybe_finish(batch *b)
{
    if (b->done < b->total || sfl_app_finishing(&b->app))
        return;
    progress_draw(b, 1);
    sfl_info("Completed smart parallel check of %zu/%zu streams (OK %zu, Timeout %zu, Error %zu, "
             "LeaseLost %zu, NoSlot %zu, Cancelled %zu, Refused %zu) in %.1f s",
             b->statuses[SFL_STATUS_OK] + b->statuses[SFL_STATUS_TIMEOUT] +
                 b->statuses[SFL_STATUS_ERROR] + b->statuses[SFL_STATUS_LEASE_LOST],
             b->total, b->statuses[SFL_STATUS_OK], b->statuses[SFL_STATUS_TIMEOUT],
             b->statuses[SFL_STATUS_ERROR], b->statuses[SFL_STATUS_LEASE_LOST],
             b->statuses[SFL_STATUS_NOSLOT], b->statuses[SFL_STATUS_CANCELLED],
             b->statuses[SFL_STATUS_REFUSED], (sfl_mono_ms() - b->t0) / 1000.0);
    if (b->stopping > 0)
        b->app.rc = 128 + b->stopping;
    sfl_app_finish(&b->app, SFL_APP_RELEASE_WAIT_MS);
}

static void queue_all(batch *b)
{
    /* The seed's log lines. */
    char grouped[1024];
    size_t used = snprintf(grouped, sizeof(grouped), "{");
    for (size_t i = 0; i < b->naccounts && used < sizeof(grouped) - 40; i++)
        used += snprintf(grouped + used, sizeof(grouped) - used, "%s%lld: %zu", i ? ", " : "",
                         b->accounts[i], b->counts[i]);
    size_t custom = b->custom;
    if (custom && used < sizeof(grouped) - 40)
        used += snprintf(grouped + used, sizeof(grouped) - used, "%scustom: %zu",
                         b->naccounts ? ", " : "", custom);
    snprintf(grouped + used, sizeof(grouped) - used, "}");
    sfl_info("Streams grouped by account: %s", grouped);
    for (size_t i = 0; i < b->naccounts; i++) {
        size_t n = b->counts[i];
        if (b->limits[i] >= 0)
            sfl_info("  Account %lld: %zu streams, limit=%lld", b->accounts[i], n, b->limits[i]);
        else
            sfl_info("  Account %lld: %zu streams, limit unknown (not in Redis or the config)",
                     b->accounts[i], n);
    }
    b->started = 1;
    for (size_t k = 0; k < b->total; k++)
        if (sfl_worker_add(b->worker, &b->streams->v[k], NULL) < 0)
            emit(b,
                 sfl_result_new(&b->streams->v[k], b->app.conf->node_id, SFL_STATUS_ERROR,
                                "out of memory"),
                 SFL_STATUS_ERROR);
}

typedef struct limit_ctx {
    batch *b;
    size_t i;
} limit_ctx;

static void on_limit(sfl_store *st, redisReply *r, void *arg)
{
    limit_ctx *lc = arg;
    batch *b = lc->b;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_STRING)
        b->limits[lc->i] = strtoll(r->str, NULL, 10);
    if (b->limits[lc->i] >= 0)
        sfl_limiter_hint_limit(b->app.lim, b->accounts[lc->i], b->limits[lc->i]);
    free(lc);
    if (--b->limits_owed == 0 && !b->started && !b->stopping)
        queue_all(b);
}

/* Reads every account's limit for the log lines, then queues the streams. */
static void read_limits(batch *b)
{
    b->limits_owed = 1;
    for (size_t i = 0; i < b->naccounts; i++) {
        if (sfl_conf_account(b->app.conf, b->accounts[i])) {
            /* Configured: its logins' limits, as just written. */
            b->limits[i] = sfl_limiter_known_limit(b->app.lim, b->accounts[i]);
            continue;
        }
        char key[160];
        sfl_account_key(key, sizeof(key), sfl_store_ns(b->app.store), b->accounts[i], "conf");
        const char *argv[3] = {"HGET", key, "max_streams"};
        limit_ctx *lc = malloc(sizeof(*lc));
        if (!lc)
            continue;
        *lc = (limit_ctx){b, i};
        b->limits_owed++;
        if (sfl_store_command(b->app.store, on_limit, lc, 3, argv) < 0) {
            b->limits_owed--;
            free(lc);
        }
    }
    if (--b->limits_owed == 0 && !b->started && !b->stopping)
        queue_all(b);
}

static void on_accounts_written(int ok, const char *err, void *arg)
{
    batch *b = arg;
    if (!ok)
        sfl_warn("%s", err);
    if (!b->started && sfl_store_ready(b->app.store))
        read_limits(b);
}

static void on_ready(sfl_app *app, void *arg)
{
    batch *b = arg;
    if (app->ready_count > 1) {
        sfl_worker_kick(b->worker);
        if (b->started)
            return;
    }
    if (app->conf->naccounts == 0 ||
        sfl_accounts_write(app->store, sfl_limiter_routes(app->lim), app->conf->accounts,
                           app->conf->naccounts, app->recovery_ms, 0, on_accounts_written, b) < 0)
        on_accounts_written(1, NULL, b);
}

static void on_signal(sfl_app *app, int sig, void *arg)
{
    batch *b = arg;
    UNUSED(app);
    if (b->stopping)
        return;
    sfl_warn("signal %d: cancelling; running checks are stopped and leases released", sig);
    b->stopping = sig;
    if (!b->started) {
        /* Nothing queued yet: every stream is Cancelled. */
        b->started = 1;
        for (size_t k = 0; k < b->total; k++)
            emit(b,
                 sfl_result_new(&b->streams->v[k], b->app.conf->node_id, SFL_STATUS_CANCELLED,
                                "cancelled"),
                 SFL_STATUS_CANCELLED);
        return;
    }
    sfl_worker_cancel(b->worker);
    maybe_finish(b);
}

/*--- Command ---------------------------------------------------------------*/

static const char usage[] =
    "usage: sflimit check [-c CONFIG] [--redis URL] [-o FILE] [--quiet] [STREAMS.json | -]\n"
    "\n"
    "Checks a batch of streams on this node; account limits are shared with every\n"
    "other node through Redis. Streams: a JSON array (or {\"streams\": [...]}) of\n"
    "{\"id\", \"name\", \"url\", \"m3u_account\", \"priority\"}; '-' or nothing reads stdin.\n"
    "Results: one JSON line per stream on stdout (or -o FILE). A progress bar goes\n"
    "to stderr when it is a terminal (--quiet hides it).\n"
    "Exit: 0 when every stream has a result, 130/143 when interrupted, 1 on a\n"
    "runtime failure, 2 for usage, config or input errors.\n";

static int cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, c = *(const long long *)y;
    return a < c ? -1 : a > c;
}

static int collect_accounts(batch *b)
{
    b->accounts = calloc(b->total + 1, sizeof(long long));
    b->limits = calloc(b->total + 1, sizeof(long long));
    if (!b->accounts || !b->limits)
        return -1;
    for (size_t k = 0; k < b->total; k++)
        if (b->streams->v[k].account != SFL_CUSTOM_ACCOUNT)
            b->accounts[b->naccounts++] = b->streams->v[k].account;
    qsort(b->accounts, b->naccounts, sizeof(long long), cmp_ll);
    size_t n = 0;
    for (size_t i = 0; i < b->naccounts; i++)
        if (n == 0 || b->accounts[n - 1] != b->accounts[i])
            b->accounts[n++] = b->accounts[i];
    b->naccounts = n;
    for (size_t i = 0; i < n; i++)
        b->limits[i] = -1;
    b->counts = calloc(n + 1, sizeof(size_t));
    if (!b->counts)
        return -1;
    for (size_t k = 0; k < b->total; k++) {
        long long id = b->streams->v[k].account;
        if (id == SFL_CUSTOM_ACCOUNT) {
            b->custom++;
            continue;
        }
        const long long *at = bsearch(&id, b->accounts, n, sizeof(long long), cmp_ll);
        b->counts[at - b->accounts]++;
    }
    return 0;
}

int sfl_cmd_check(int argc, char **argv)
{
    enum { OPT_REDIS = 1000, OPT_QUIET };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"redis", required_argument, NULL, OPT_REDIS},
        {"output", required_argument, NULL, 'o'}, {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *redis = NULL, *out_path = NULL;
    batch b = {.app.rc = SFL_EXIT_OK};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case OPT_REDIS:
            redis = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case OPT_QUIET:
            b.quiet = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return SFL_EXIT_OK;
        default:
            fputs(usage, stderr);
            return SFL_EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "sflimit: check: one streams file at most, got '%s' too\n",
                argv[optind + 1]);
        return SFL_EXIT_USAGE;
    }
    const char *in = optind < argc ? argv[optind] : "-";
    if (strcmp(in, "-") == 0 && isatty(STDIN_FILENO)) {
        fprintf(stderr, "sflimit: check: give a streams file, or pipe streams into stdin\n%s",
                usage);
        return SFL_EXIT_USAGE;
    }
    sfl_conf *conf = sfl_cli_conf(config, redis);
    if (!conf)
        return SFL_EXIT_USAGE;
    char err[512];
    b.streams = sfl_streams_load(in, err, sizeof(err));
    if (!b.streams ||
        sfl_streams_allowed(b.streams, conf->check_schemes, conf->check_nschemes,
                            strcmp(in, "-") == 0 ? "(stdin)" : in, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        sfl_streams_free(b.streams);
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    b.out = stdout;
    b.out_path = out_path ? out_path : "stdout";
    if (out_path && !(b.out = fopen(out_path, "w"))) {
        fprintf(stderr, "sflimit: -o %s: %s\n", out_path, strerror(errno));
        sfl_streams_free(b.streams);
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    b.total = b.streams->n;
    b.t0 = sfl_mono_ms();
    sfl_info("Starting smart parallel check of %zu streams", b.total);
    if (b.total == 0) {
        sfl_info("Completed smart parallel check of 0/0 streams");
        goto close_only;
    }
    if (collect_accounts(&b) < 0) {
        fprintf(stderr, "sflimit: out of memory\n");
        b.app.rc = SFL_EXIT_FAIL;
        goto close_only;
    }
    if (sfl_app_open(&b.app, conf, 1, NULL, err, sizeof(err)) < 0) {
        conf = NULL; /* closed by sfl_app_open */
        fprintf(stderr, "sflimit: %s\n", err);
        b.app.rc = SFL_EXIT_FAIL;
        goto close_only;
    }
    conf = NULL;
    b.progress = !b.quiet && isatty(STDERR_FILENO);
    b.worker = sfl_worker_new(&b.app, on_result, &b);
    b.tick = event_new(b.app.base, -1, EV_PERSIST, on_tick, &b);
    if (!b.worker || !b.tick) {
        fprintf(stderr, "sflimit: out of memory\n");
        b.app.rc = SFL_EXIT_FAIL;
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    if (b.progress) {
        struct timeval tv = {0, 250000};
        evtimer_add(b.tick, &tv);
    }
    b.app.on_ready = on_ready;
    b.app.on_signal = on_signal;
    b.app.arg = &b;
    sfl_app_run(&b.app, 0);
done:
    if (b.worker && sfl_worker_running(b.worker) > 0)
        sfl_warn("%d check(s) still running at exit: killed", sfl_worker_running(b.worker));
    sfl_worker_free(b.worker);
    if (b.app.lim)
        sfl_limiter_release_all(b.app.lim);
    if (b.tick)
        event_free(b.tick);
    sfl_app_close(&b.app);
close_only:
    sfl_conf_free(conf);
    if (b.out && b.out != stdout && fclose(b.out) != 0 && b.app.rc == 0) {
        fprintf(stderr, "sflimit: -o %s: %s\n", out_path, strerror(errno));
        b.app.rc = SFL_EXIT_FAIL;
    }
    free(b.accounts);
    free(b.limits);
    free(b.counts);
    sfl_streams_free(b.streams);
    return b.app.rc;
}
