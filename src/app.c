/* app.c - one command's runtime: loop, config, Redis, limiter, signals.
 *
 * Every command that talks to Redis needs the same few things in the same
 * order, and needs them torn down in the reverse order: the store's pending
 * callbacks may still reach the limiter, so the store goes first. This file
 * owns that order so that no command gets it wrong.
 *
 * It also owns what every command's run has in common: SIGINT and SIGTERM
 * as libevent signal events (so a handler runs from the loop, never from a
 * signal context), giving up on a Redis that cannot be reached (or that
 * keeps refusing the password), ending with a message and an exit code.
 * What a signal means, and every other message, stays with the command.
 */
#include "app.h"

#include "cli.h"
#include "clock.h"
#include "conf.h"
#include "embedded.h"
#include "history.h"
#include "limiter.h"
#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void on_store_ready(sfl_store *st, void *arg)
{
    sfl_app *app = arg;
    UNUSED(st);
    app->ready_count++;
    if (app->connect_deadline)
        evtimer_del(app->connect_deadline);
    if (app->lim)
        sfl_limiter_on_ready(app->lim);
    if (app->on_ready)
        app->on_ready(app, app->arg);
}

static void on_store_down(sfl_store *st, const char *why, void *arg)
{
    sfl_app *app = arg;
    UNUSED(st);
    sfl_warn("redis: %s; reconnecting", why);
    if (app->lim)
        sfl_limiter_on_down(app->lim);
}

/* How long authentication has been refused for the policy to call it
 * lasting: 0 when it is, else what is left (ms), or -1 when it is not
 * being refused. */
static int64_t auth_refused_left(const sfl_app *app)
{
    int64_t since;
    int tries = sfl_store_auth_refused(app->store, &since);
    if (tries == 0)
        return -1;
    int64_t left = since + SFL_APP_AUTH_TRIES * app->conf->connect_timeout_ms - sfl_mono_ms();
    if (left > 0)
        return left;
    return tries >= SFL_APP_AUTH_TRIES ? 0 : 100; /* a few more tries first */
}

static void on_auth_timer(evutil_socket_t fd, short what, void *arg)
{
    sfl_app *app = arg;
    UNUSED(fd);
    UNUSED(what);
    int64_t left = auth_refused_left(app);
    if (left == 0 && app->on_auth_refused) {
        sfl_app_fn *fn = app->on_auth_refused;
        app->on_auth_refused = NULL; /* once */
        fn(app, app->arg);
    } else if (left > 0) {
        sfl_timer_in(app->auth_timer, left);
    }
}

static void on_store_refused(sfl_store *st, const char *why, void *arg)
{
    sfl_app *app = arg;
    UNUSED(st);
    UNUSED(why);
    if (app->on_auth_refused && app->auth_timer && !evtimer_pending(app->auth_timer, NULL))
        on_auth_timer(-1, 0, app);
}

static void on_store_message(sfl_store *st, const char *channel, const char *msg, void *arg)
{
    sfl_app *app = arg;
    UNUSED(st);
    size_t n = strlen(app->released_channel);
    if (app->lim && strncmp(channel, app->released_channel, n) == 0 &&
        (channel[n] == '\0' || channel[n] == ':'))
        sfl_limiter_on_released(app->lim, msg);
    else if (app->on_message)
        app->on_message(app, channel, msg, app->arg);
}

static void on_connect_deadline(evutil_socket_t fd, short what, void *arg)
{
    sfl_app *app = arg;
    UNUSED(fd);
    UNUSED(what);
    if (app->ready_count == 0 && app->on_unreachable)
        app->on_unreachable(app, app->arg);
}

int sfl_app_open(sfl_app *app, sfl_conf *conf, int with_limiter, const char *const *channels,
                 char *err, size_t errlen)
{
    app->conf = conf;
    snprintf(app->released_channel, sizeof(app->released_channel), "%s:released",
             conf->redis_namespace);
    const char *subs[16];
    int nsubs = 0;
    char own[160]; /* slots handed to this node's tickets are announced here */
    snprintf(own, sizeof(own), "%s:%s", app->released_channel, conf->node_id);
    if (with_limiter) {
        subs[nsubs++] = app->released_channel;
        subs[nsubs++] = own;
    }
    for (int i = 0; channels && channels[i] && nsubs < 15; i++)
        subs[nsubs++] = channels[i];
    subs[nsubs] = NULL;
    app->base = event_base_new();
    if (!app->base) {
        snprintf(err, errlen, "cannot create the event loop");
        goto fail;
    }
    const char *url = conf->redis_url;
    app->recovery_ms = conf->lease_ttl_ms;
    if (strcmp(url, "embedded") == 0) {
        app->embedded = sfl_embedded_start(err, errlen);
        if (!app->embedded)
            goto fail;
        url = sfl_embedded_url(app->embedded);
        app->epoch_mode = SFL_EPOCH_FRESH; /* private and new: nobody can hold a lease in it */
    }
    sfl_store_opts so = {
        .url = url,
        .password = conf->redis_password,
        .sentinel_password = conf->redis_sentinel_password,
        .ns = conf->redis_namespace,
        .connect_timeout_ms = conf->connect_timeout_ms,
        .command_timeout_ms = conf->connect_timeout_ms,
        .recovery_ms = app->recovery_ms,
        .epoch_mode = app->epoch_mode,
        .takes_leases = with_limiter,
        .channels = subs,
        .on_ready = on_store_ready,
        .on_down = on_store_down,
        .on_refused = on_store_refused,
        .on_message = on_store_message,
        .arg = app,
    };
    app->store = sfl_store_new(app->base, &so, err, errlen);
    if (!app->store)
        goto fail;
    if (with_limiter) {
        sfl_limiter_opts lo = {
            .node_id = conf->node_id,
            .ttl_ms = conf->lease_ttl_ms,
            .renew_ms = conf->lease_renew_ms,
            .safety_ms = conf->lease_safety_ms,
            .recovery_ms = app->recovery_ms,
            .handoff_ms = conf->lease_handoff_ms,
        };
        app->lim = sfl_limiter_new(app->base, app->store, &lo);
        if (!app->lim) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (sfl_limiter_set_accounts(app->lim, conf->accounts, conf->naccounts, err, errlen) < 0)
            goto fail;
        /* Every process that takes leases records what it saw (NULL: history off). */
        app->hist = sfl_history_new(app->base, app->store, app->lim, conf);
    }
    app->connect_deadline = evtimer_new(app->base, on_connect_deadline, app);
    app->auth_timer = evtimer_new(app->base, on_auth_timer, app);
    if (!app->connect_deadline || !app->auth_timer) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return 0;
fail:
    sfl_app_close(app);
    return -1;
}

void sfl_app_start(sfl_app *app, int64_t connect_deadline_ms)
{
    if (connect_deadline_ms > 0) {
        struct timeval tv = {connect_deadline_ms / 1000, (connect_deadline_ms % 1000) * 1000};
        evtimer_add(app->connect_deadline, &tv);
    }
    sfl_store_start(app->store);
}

/*--- Running a command ------------------------------------------------------*/

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    sfl_app *app = arg;
    UNUSED(what);
    app->on_signal(app, (int)sig, app->arg);
}

static int catch_signal(sfl_app *app, struct event **ev, int sig)
{
    *ev = evsignal_new(app->base, sig, on_signal, app);
    return *ev && evsignal_add(*ev, NULL) == 0 ? 0 : -1;
}

int sfl_app_run(sfl_app *app, int64_t connect_deadline_ms)
{
    if (app->on_signal && (catch_signal(app, &app->sigint, SIGINT) < 0 ||
                           (!app->sigint_only && catch_signal(app, &app->sigterm, SIGTERM) < 0))) {
        sfl_app_fail(app, "out of memory");
        return app->rc;
    }
    sfl_app_start(app, connect_deadline_ms);
    event_base_dispatch(app->base);
    return app->rc;
}

void sfl_app_fail(sfl_app *app, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "sflimit: %s%s%s\n", app->cmd ? app->cmd : "", app->cmd ? ": " : "", msg);
    sfl_app_exit(app, SFL_EXIT_FAIL);
}

void sfl_app_exit(sfl_app *app, int rc)
{
    app->rc = rc;
    event_base_loopbreak(app->base);
}

void sfl_app_unreachable(sfl_app *app, void *arg)
{
    UNUSED(arg);
    sfl_app_fail(app, "cannot reach Redis: %s", sfl_store_errstr(app->store));
}

/*--- Ending ----------------------------------------------------------------*/

#define FINISH_POLL_MS 20

static void on_finish_timer(evutil_socket_t fd, short what, void *arg)
{
    sfl_app *app = arg;
    UNUSED(fd);
    UNUSED(what);
    int owed =
        (app->lim ? sfl_limiter_pending_releases(app->lim) : 0) + sfl_history_pending(app->hist);
    if (owed == 0 || !app->store || !sfl_store_ready(app->store) ||
        sfl_mono_ms() >= app->finish_until_ms) {
        event_base_loopbreak(app->base);
        return;
    }
    struct timeval tv = {0, FINISH_POLL_MS * 1000};
    evtimer_add(app->finish_timer, &tv);
}

void sfl_app_finish(sfl_app *app, int64_t max_wait_ms)
{
    if (app->finish_until_ms > 0)
        return;
    app->finish_until_ms = sfl_mono_ms() + (max_wait_ms > 0 ? max_wait_ms : 0);
    sfl_history_flush(app->hist);
    if (!app->finish_timer)
        app->finish_timer = evtimer_new(app->base, on_finish_timer, app);
    struct timeval now = {0, 0};
    if (!app->finish_timer || evtimer_add(app->finish_timer, &now) < 0)
        event_base_loopbreak(app->base);
}

int sfl_app_finishing(const sfl_app *app)
{
    return app->finish_until_ms > 0;
}

void sfl_app_disconnect(sfl_app *app)
{
    sfl_store *st = app->store;
    if (!st)
        return;
    sfl_store_free(st); /* callbacks may still use app->store: it stays set meanwhile */
    app->store = NULL;
}

void sfl_app_close(sfl_app *app)
{
    struct event **sigs[] = {&app->sigint, &app->sigterm};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (*sigs[i]) {
            event_free(*sigs[i]);
            *sigs[i] = NULL;
        }
    sfl_app_disconnect(app);
    sfl_history_free(app->hist); /* after the store: its pending replies reach it */
    app->hist = NULL;
    sfl_limiter_free(app->lim);
    app->lim = NULL;
    if (app->connect_deadline)
        event_free(app->connect_deadline);
    app->connect_deadline = NULL;
    if (app->auth_timer)
        event_free(app->auth_timer);
    app->auth_timer = NULL;
    if (app->finish_timer)
        event_free(app->finish_timer);
    app->finish_timer = NULL;
    if (app->base)
        event_base_free(app->base);
    app->base = NULL;
    sfl_embedded_stop(app->embedded);
    app->embedded = NULL;
    sfl_conf_free(app->conf);
    app->conf = NULL;
}
