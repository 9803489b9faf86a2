/* worker.c - streams in, one result each out.
 *
 * Glue between the scheduler (when may a check start), the limiter's
 * leases and the checks: a started job gets its lease's lost-callback wired
 * to stop the check (status LeaseLost); when a check ends, its lease is
 * released and its global slot given back, in that order, before the result
 * is reported. Scheduler drops (NoSlot, Cancelled, unknown account) become
 * results too, so every stream gets exactly one.
 */
#include "worker.h"

#include "app.h"
#include "conf.h"
#include "history.h"
#include "learned.h"
#include "limiter.h"
#include "list.h"
#include "log.h"
#include "routes.h"
#include "runner.h"
#include "scheduler.h"
#include "streams.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wjob {
    struct sfl_worker *w;
    const sfl_stream *stream;
    void *ctx;
    sfl_lease *lease;
    sfl_check *check;
    int preempted;            /* times it gave way to viewers: the third is its result */
    int refused;              /* times the provider refused it: the third is its result */
    cJSON *last;              /* refused, waiting to queue again: its result so far */
    struct event *later;      /* ... and when it queues again */
    struct wjob *prev, *next; /* started ones, or refused ones waiting, for cancel */
} wjob;

#define PREEMPT_TRIES 3
#define REFUSE_TRIES 3

struct sfl_worker {
    sfl_app *app;
    sfl_runner *runner;
    sfl_sched *sched;
    sfl_check_env env;
    sfl_worker_done_fn *fn;
    void *arg;
    sfl_worker_wait_fn *wait_fn;
    void *wait_arg;
    wjob *running;
    wjob *delayed; /* refused, queued again after learned.recheck_after */
    size_t ndelayed;
    int cancelled;
};

static void job_unlink(wjob *j)
{
    SFL_LIST_UNLINK(j->w->running, j);
}

static void job_finish(wjob *j, cJSON *result, sfl_status st, int started)
{
    sfl_worker *w = j->w;
    w->fn(j->ctx, j->stream, result, st, started, w->arg);
    free(j);
}

static sfl_status status_of(cJSON *result)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(result, "status"));
    for (int i = 0; i < SFL_STATUS_COUNT; i++)
        if (s && strcmp(s, sfl_status_name(i)) == 0)
            return i;
    return SFL_STATUS_ERROR;
}

/* A refused job out of the delayed list; its result so far is returned. */
static cJSON *undelay(wjob *j)
{
    sfl_worker *w = j->w;
    SFL_LIST_UNLINK(w->delayed, j);
    w->ndelayed--;
    event_free(j->later);
    j->later = NULL;
    cJSON *last = j->last;
    j->last = NULL;
    return last;
}

/* A refused stream's wait is over: it queues again. */
static void on_later(evutil_socket_t fd, short what, void *arg)
{
    wjob *j = arg;
    sfl_worker *w = j->w;
    UNUSED(fd);
    UNUSED(what);
    cJSON *last = undelay(j);
    char label[64];
    snprintf(label, sizeof(label), "%lld", j->stream->id);
    if (w->cancelled ||
        sfl_sched_add(w->sched, j, j->stream->account, j->stream->priority, label) < 0) {
        job_finish(j, last, SFL_STATUS_REFUSED, 1);
        return;
    }
    cJSON_Delete(last);
}

/* Refused streams waiting to queue again are queued streams: Cancelled,
 * not started (a node that drains leaves them to the others). */
static void finish_delayed(sfl_worker *w)
{
    while (w->delayed) {
        wjob *j = w->delayed;
        cJSON_Delete(undelay(j));
        job_finish(
            j, sfl_result_new(j->stream, w->app->conf->node_id, SFL_STATUS_CANCELLED, "cancelled"),
            SFL_STATUS_CANCELLED, 0);
    }
}

/* What the check taught about its login's real limit (learned.h). */
static void tell_learned(sfl_worker *w, const sfl_lease *lease, sfl_status st, const cJSON *result)
{
    sfl_routes *routes = sfl_limiter_routes(w->app->lim);
    const sfl_route *rt = routes ? sfl_routes_get(routes, sfl_lease_account(lease)) : NULL;
    size_t idx;
    const sfl_login *lg = rt ? sfl_route_login(rt, sfl_lease_login(lease), &idx) : NULL;
    if (!lg)
        return;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(result, "http_code");
    sfl_learned_check(w->app->store, w->app->conf, lg->id, lg->prefix,
                      st == SFL_STATUS_REFUSED ? SFL_LEARN_REFUSED : SFL_LEARN_OK,
                      cJSON_IsNumber(code) ? (int)code->valuedouble : 0);
}

static void on_later(evutil_socket_t fd, short what, void *arg);

static void on_check_done(sfl_check *c, cJSON *result, void *arg)
{
    wjob *j = arg;
    sfl_worker *w = j->w;
    UNUSED(c);
    j->check = NULL;
    job_unlink(j);
    sfl_status st = status_of(result);
    if (j->lease) {
        sfl_history_check(w->app->hist, j->stream->account, sfl_lease_login(j->lease), st);
        /* Before the release: the script counts this check among the
         * holders, and the freed slot goes out under the new limit. */
        if (st == SFL_STATUS_REFUSED || st == SFL_STATUS_OK)
            tell_learned(w, j->lease, st, result);
        sfl_lease_release(j->lease);
        j->lease = NULL;
    }
    sfl_sched_done(w->sched, j->stream->account);
    if (st == SFL_STATUS_REFUSED && ++j->refused < REFUSE_TRIES && !w->cancelled &&
        (j->later = evtimer_new(w->app->base, on_later, j)) != NULL) {
        /* Never again at once: after learned.recheck_after it queues
         * behind the account's other streams and waits for a slot under
         * the lowered limit, like any other. */
        double after = w->app->conf->learn_recheck_after;
        struct timeval tv = {(time_t)after, (suseconds_t)((after - floor(after)) * 1e6)};
        j->last = result;
        SFL_LIST_PUSH(w->delayed, j);
        w->ndelayed++;
        evtimer_add(j->later, &tv);
        sfl_info("stream %lld was refused by the provider (%d of %d); checked again later",
                 j->stream->id, j->refused, REFUSE_TRIES);
        return;
    }
    if (st == SFL_STATUS_PREEMPTED && ++j->preempted < PREEMPT_TRIES && !w->cancelled) {
        /* Viewers came first: checked again later, without spending a
         * retry; it queues behind the account's other streams. */
        char label[64];
        snprintf(label, sizeof(label), "%lld", j->stream->id);
        if (sfl_sched_add(w->sched, j, j->stream->account, j->stream->priority, label) == 0) {
            sfl_info("stream %lld gave way to viewers (%d of %d); checked again later",
                     j->stream->id, j->preempted, PREEMPT_TRIES);
            cJSON_Delete(result);
            return;
        }
    }
    job_finish(j, result, st, 1);
}

static void on_lease_lost(sfl_lease *lease, const char *why, void *arg)
{
    wjob *j = arg;
    UNUSED(why);
    if (j->check)
        sfl_check_stop(j->check, sfl_lease_is_preempted(lease) ? SFL_STATUS_PREEMPTED
                                                               : SFL_STATUS_LEASE_LOST);
}

static void on_start(void *jp, long long account, sfl_lease *lease, int64_t wait_ms, void *arg)
{
    wjob *j = jp;
    sfl_worker *w = arg;
    if (w->wait_fn)
        w->wait_fn(j->stream, wait_ms, 1, w->wait_arg);
    if (lease)
        sfl_history_wait(w->app->hist, account, sfl_lease_login(lease), wait_ms);
    j->lease = lease;
    if (lease)
        sfl_lease_on_lost(lease, on_lease_lost, j);
    char err[256];
    j->check =
        sfl_check_start(&w->env, j->stream, lease, wait_ms, on_check_done, j, err, sizeof(err));
    if (!j->check) {
        if (lease)
            sfl_lease_release(lease);
        sfl_sched_done(w->sched, account);
        job_finish(j, sfl_result_new(j->stream, w->app->conf->node_id, SFL_STATUS_ERROR, err),
                   SFL_STATUS_ERROR, 0);
        return;
    }
    SFL_LIST_PUSH(w->running, j);
}

static void on_drop(void *jp, long long account, sfl_drop_reason why, const char *detail,
                    int64_t waited_ms, void *arg)
{
    wjob *j = jp;
    sfl_worker *w = arg;
    char err[400];
    sfl_status st = SFL_STATUS_CANCELLED;
    const char *msg = "cancelled";
    if (why == SFL_DROP_NOSLOT) {
        if (w->wait_fn)
            w->wait_fn(j->stream, waited_ms, 0, w->wait_arg);
        sfl_history_wait(w->app->hist, account, NULL, waited_ms);
        st = SFL_STATUS_NOSLOT;
        snprintf(err, sizeof(err), "no slot of account %lld within %g s%s%s", account,
                 w->app->conf->acquire_timeout, detail ? "; Redis said: " : "",
                 detail ? detail : "");
        msg = err;
    } else if (why == SFL_DROP_UNKNOWN_ACCOUNT) {
        st = SFL_STATUS_ERROR;
        snprintf(err, sizeof(err),
                 "account %lld has no max_streams in Redis or the config, or logins this node "
                 "was not given",
                 account);
        msg = err;
    }
    job_finish(j, sfl_result_new(j->stream, w->app->conf->node_id, st, msg), st, 0);
}

sfl_worker *sfl_worker_new(sfl_app *app, sfl_worker_done_fn *fn, void *arg)
{
    sfl_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    const sfl_conf *conf = app->conf;
    w->app = app;
    w->fn = fn;
    w->arg = arg;
    w->runner = sfl_runner_new(app->base);
    w->env = (sfl_check_env){app->base, w->runner, conf, sfl_limiter_routes(app->lim)};
    sfl_sched_opts so = {
        .global_limit = conf->concurrent_enabled ? conf->global_limit : 1,
        .stagger_ms = (int64_t)llround(conf->stagger_delay * 1000),
        .handoff_ms = conf->lease_handoff_ms,
        .acquire_timeout_ms = (int64_t)llround(conf->acquire_timeout * 1000),
    };
    sfl_sched_hooks hooks = {on_start, on_drop, w};
    w->sched = sfl_sched_new(app->base, app->lim, &so, &hooks);
    if (!w->runner || !w->sched) {
        sfl_worker_free(w);
        return NULL;
    }
    return w;
}

void sfl_worker_on_wait(sfl_worker *w, sfl_worker_wait_fn *fn, void *arg)
{
    w->wait_fn = fn;
    w->wait_arg = arg;
}

void sfl_worker_free(sfl_worker *w)
{
    if (!w)
        return;
    sfl_runner_free(w->runner); /* kills and reaps, no callbacks */
    while (w->running) {
        wjob *j = w->running;
        job_unlink(j);
        if (j->lease)
            sfl_lease_release(j->lease);
        free(j);
    }
    while (w->delayed) {
        wjob *j = w->delayed;
        cJSON_Delete(undelay(j));
        free(j);
    }
    sfl_sched_free(w->sched);
    free(w);
}

int sfl_worker_add(sfl_worker *w, const sfl_stream *stream, void *ctx)
{
    if (w->cancelled)
        return -1;
    wjob *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    j->w = w;
    j->stream = stream;
    j->ctx = ctx;
    char label[64];
    snprintf(label, sizeof(label), "%lld", stream->id);
    if (sfl_sched_add(w->sched, j, stream->account, stream->priority, label) < 0) {
        free(j);
        return -1;
    }
    return 0;
}

void sfl_worker_cancel(sfl_worker *w)
{
    w->cancelled = 1;
    sfl_sched_cancel(w->sched);
    finish_delayed(w);
    for (wjob *j = w->running; j; j = j->next)
        if (j->check)
            sfl_check_stop(j->check, SFL_STATUS_CANCELLED);
}

void sfl_worker_drain(sfl_worker *w)
{
    w->cancelled = 1;
    sfl_sched_cancel(w->sched);
    finish_delayed(w);
}

void sfl_worker_kick(sfl_worker *w)
{
    sfl_sched_kick(w->sched);
}

int sfl_worker_running(const sfl_worker *w)
{
    return sfl_sched_running(w->sched);
}

size_t sfl_worker_queued(const sfl_worker *w)
{
    return sfl_sched_queued(w->sched) + w->ndelayed;
}

sfl_sched *sfl_worker_sched(const sfl_worker *w)
{
    return w->sched;
}
