/* wait.c - asking for slots: waits that ask until granted or out of time,
 * one-shot tries, and hand-offs announced to them.
 *
 * Waiting never blocks and never polls: a denied wait sleeps until a
 * "released" message for its account, or the retry hint from acquire.lua
 * (capped by fallback_ms, since pub/sub may drop messages), plus jitter.
 * An ask keeps one lease id for its whole wait, so a lost answer followed by
 * another ask cannot take two slots; a wait that gives up after an ask of
 * unknown outcome releases that id to be sure. An ask for an account goes
 * out only after this node's releases of it have been answered (see
 * limiter.c, "Releases").
 *
 * A wait that starts in the loop turn of a release of ours of its account
 * (a node giving a slot back and asking for the next) has its first ask
 * made by that release's script (limiter.c, release_later): one script
 * instead of two, answered as acquire.lua answers.
 *
 * A granted slot becomes a lease of limiter.c (sfl_limiter_lease_add); this
 * file never renews or releases a held lease itself. */
#include "limiter_int.h"

#include "clock.h"
#include "list.h"
#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void wait_attempt(sfl_wait *w);

/*--- One-shot tries --------------------------------------------------------*/

void sfl_limiter_new_id(const sfl_limiter *lim, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%016" PRIx64, lim->node_id, sfl_limiter_rand());
}

static void try_unlink(try_ctx *t)
{
    SFL_LIST_UNLINK(t->lim->tries, t);
}

void sfl_limiter_withdraw(sfl_limiter *lim, long long account, const char *id)
{
    sfl_limiter_release_id(lim, account, NULL, id);
}

void sfl_limiter_cancel_tries(sfl_limiter *lim, void *arg)
{
    for (try_ctx *t = lim->tries; t; t = t->next)
        if (t->arg == arg)
            t->fn = NULL;
}

static void on_try_reply(sfl_store *st, redisReply *r, void *arg)
{
    try_ctx *t = arg;
    sfl_limiter *lim = t->lim;
    UNUSED(st);
    try_unlink(t);
    if (!t->fn) {
        /* Its asker is gone: whatever the answer, give the id back. */
        sfl_limiter_release_id(lim, t->account, NULL, t->id);
        free(t);
        return;
    }
    sfl_try_result res = {.status = SFL_TRY_FAILED, .limit = -1};
    sfl_lease_answer a;
    sfl_lease_answer_decode(r, &a);
    sfl_limiter_clock_from_answer(lim, t->asked_ms, &a);
    if (a.status == SFL_ANSWER_GRANTED) {
        res.lease = sfl_limiter_lease_add(lim, t->account, t->id, t->label, t->asked_ms, &a);
        if (res.lease) {
            res.status = SFL_TRY_GRANTED;
            res.lease->wait_ms = sfl_mono_ms() - t->asked_ms;
            res.in_use = a.in_use;
            res.limit = a.limit;
        } else {
            sfl_limiter_release_id(lim, t->account, NULL, t->id);
        }
    } else if (a.status == SFL_ANSWER_DENIED) {
        lim->stats.denied++;
        sfl_limiter_emit_ask(lim, SFL_LIM_DENY, t->account, &a, -1, NULL);
        res.status = SFL_TRY_DENIED;
        res.retry_ms = a.retry_ms;
        res.in_use = a.in_use;
        res.limit = a.limit;
        sfl_limiter_hint_limit(lim, t->account, res.limit);
    } else if (a.status == SFL_ANSWER_UNKNOWN) {
        res.status = SFL_TRY_UNKNOWN_ACCOUNT;
        res.error = a.reason;
    } else {
        if (a.error) {
            sfl_warn("acquire for account %lld: %s", t->account, a.error);
            res.error = a.error;
        }
        /* The answer is lost: the ask may have taken a slot. Give it back. */
        sfl_limiter_release_id(lim, t->account, NULL, t->id);
    }
    t->fn(&res, t->arg);
    free(t);
}

static int try_send(try_ctx *t)
{
    t->asked_ms = sfl_mono_ms();
    return sfl_limiter_send(t->lim, t->account, NULL, t->id, t->label, t->lim->opts.ticket_ttl_ms,
                            on_try_reply, t);
}

/* A deferred try whose release was answered: sent now, or failed. */
static void try_resume(try_ctx *t)
{
    sfl_limiter *lim = t->lim;
    t->deferred = 0;
    if (t->fn && sfl_store_ready(lim->store) && lim->retaking == 0 && try_send(t) == 0)
        return;
    try_unlink(t);
    if (!t->fn) {
        sfl_limiter_release_id(lim, t->account, NULL, t->id); /* its ticket, from an earlier ask */
    } else {
        sfl_try_result res = {.status = SFL_TRY_FAILED, .limit = -1};
        t->fn(&res, t->arg);
    }
    free(t);
}

void sfl_limiter_try_next_answer(try_ctx *t, redisReply *r, int sent)
{
    if (sent && !(r && r->type == REDIS_REPLY_INTEGER)) {
        on_try_reply(t->lim->store, r, t); /* acquire.lua's answer, or none */
        return;
    }
    /* The release made no ask (the lease was gone, or no conf), or was not
     * sent: the try asks the usual way, behind any other release owed, from
     * sfl_limiter_resume_deferred, which the caller runs next. */
    t->deferred = 1;
}

void sfl_limiter_try_forget(try_ctx *t)
{
    try_unlink(t);
    free(t);
}

void sfl_limiter_resume_deferred(sfl_limiter *lim, long long account)
{
    if (sfl_limiter_release_in_flight(lim, account))
        return;
    for (sfl_wait *w = lim->waits; w; w = w->next)
        if (w->deferred && w->account == account) {
            w->deferred = 0;
            wait_attempt(w); /* sends or sleeps; never calls back */
        }
    /* A callback may change the list, and a withdrawal owe a release. */
    while (!sfl_limiter_release_in_flight(lim, account)) {
        try_ctx *t = lim->tries;
        while (t && !(t->deferred && t->account == account))
            t = t->next;
        if (!t)
            break;
        try_resume(t);
    }
}

int sfl_limiter_try(sfl_limiter *lim, long long account, const char *label, const char *id,
                    sfl_try_fn *fn, void *arg)
{
    if (!sfl_store_ready(lim->store) || lim->retaking > 0)
        return -1;
    try_ctx *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->lim = lim;
    t->account = account;
    t->fn = fn;
    t->arg = arg;
    if (id)
        snprintf(t->id, sizeof(t->id), "%s", id);
    else
        sfl_limiter_new_id(lim, t->id, sizeof(t->id));
    snprintf(t->label, sizeof(t->label), "%s", label ? label : "");
    if (sfl_limiter_release_take_try(lim, t)) {
        /* Our release of the account, going out this turn, asks for it. */
        SFL_LIST_PUSH(lim->tries, t);
        return 0;
    }
    t->deferred = sfl_limiter_release_in_flight(lim, account);
    if (!t->deferred && try_send(t) < 0) {
        free(t);
        return -1;
    }
    SFL_LIST_PUSH(lim->tries, t);
    return 0;
}

void sfl_limiter_on_release_seen(sfl_limiter *lim, void (*fn)(const sfl_handoff *h, void *arg),
                                 void *arg)
{
    lim->release_seen = fn;
    lim->release_seen_arg = arg;
}

/*--- Waits -----------------------------------------------------------------*/

static void wait_unlink(sfl_wait *w)
{
    SFL_LIST_UNLINK(w->lim->waits, w);
}

static void wait_free(sfl_wait *w)
{
    if (w->timer)
        event_free(w->timer);
    free(w);
}

/* Ends a wait: the callback, then the wait is gone. */
static void wait_finish(sfl_wait *w, sfl_wait_status status, sfl_lease *lease)
{
    wait_unlink(w);
    evtimer_del(w->timer);
    sfl_limiter_emit_ask(w->lim, SFL_LIM_WAIT, w->account, NULL,
                         status == SFL_WAIT_UNKNOWN_ACCOUNT ? -1 : sfl_mono_ms() - w->started_ms,
                         lease);
    /* Not granted: withdraw the ticket, or a release would hand the slot to
     * a wait that is gone (and it would sit idle until the hand-off time). */
    if (status != SFL_WAIT_GRANTED && (w->asked || w->uncertain))
        sfl_limiter_release_id(w->lim, w->account, NULL, w->id);
    w->fn(w, status, lease, w->arg);
    wait_free(w);
}

/* Sleeps until min(ms, the wait's deadline). */
static void wait_sleep(sfl_wait *w, int64_t ms)
{
    if (w->deadline_ms >= 0) {
        int64_t left = w->deadline_ms - sfl_mono_ms();
        if (ms > left)
            ms = left;
    }
    sfl_timer_in(w->timer, ms);
}

static void on_acquire_reply(sfl_store *st, redisReply *r, void *arg)
{
    sfl_wait *w = arg;
    sfl_limiter *lim = w->lim;
    UNUSED(st);
    w->inflight = 0;
    if (w->cancelled) {
        sfl_limiter_release_id(lim, w->account, NULL, w->id); /* a slot, or a queued ticket */
        lim->waits_abandoned--;
        wait_free(w);
        return;
    }
    sfl_lease_answer a;
    sfl_lease_answer_decode(r, &a);
    if (a.status == SFL_ANSWER_NONE || a.status == SFL_ANSWER_RETAKEN) {
        if (a.error)
            sfl_warn("acquire for account %lld: %s", w->account, a.error);
        w->uncertain = 1;
        wait_sleep(w, NOT_READY_RETRY_MS);
        return;
    }
    sfl_limiter_clock_from_answer(lim, w->asked_ms, &a);
    if (a.status == SFL_ANSWER_GRANTED) {
        sfl_lease *l = sfl_limiter_lease_add(lim, w->account, w->id, w->label, w->asked_ms, &a);
        if (!l) {
            w->uncertain = 1;
            wait_sleep(w, NOT_READY_RETRY_MS);
            return;
        }
        l->wait_ms = sfl_mono_ms() - w->started_ms;
        w->uncertain = 0;
        wait_finish(w, SFL_WAIT_GRANTED, l);
        return;
    }
    if (a.status == SFL_ANSWER_UNKNOWN) {
        wait_finish(w, SFL_WAIT_UNKNOWN_ACCOUNT, NULL);
        return;
    }
    lim->stats.denied++;
    sfl_limiter_emit_ask(lim, SFL_LIM_DENY, w->account, &a, -1, NULL);
    w->uncertain = 0;
    sfl_limiter_hint_limit(lim, w->account, a.limit);
    if (w->again) {
        w->again = 0;
        wait_attempt(w);
        return;
    }
    int64_t hint = a.retry_ms;
    if (hint > lim->opts.fallback_ms)
        hint = lim->opts.fallback_ms;
    int64_t jitter = (int64_t)(sfl_limiter_rand() % (uint64_t)(hint / 10 + 5));
    wait_sleep(w, hint + jitter);
}

static void wait_attempt(sfl_wait *w)
{
    sfl_limiter *lim = w->lim;
    if (w->inflight) {
        w->again = 1;
        return;
    }
    if (sfl_limiter_release_in_flight(lim, w->account)) {
        w->deferred = 1; /* sfl_limiter_resume_deferred asks */
        return;
    }
    if (!sfl_store_ready(lim->store) || lim->retaking > 0) {
        /* Held leases come back first; on_ready kicks the waits again. */
        wait_sleep(w, NOT_READY_RETRY_MS * 5);
        return;
    }
    w->asked_ms = sfl_mono_ms();
    if (sfl_limiter_send(lim, w->account, NULL, w->id, w->label, lim->opts.ticket_ttl_ms,
                         on_acquire_reply, w) < 0) {
        wait_sleep(w, NOT_READY_RETRY_MS);
        return;
    }
    w->inflight = 1;
    w->asked = 1;
    w->again = 0;
}

static void on_wait_timer(evutil_socket_t fd, short what, void *arg)
{
    sfl_wait *w = arg;
    UNUSED(fd);
    UNUSED(what);
    if (w->deadline_ms >= 0 && sfl_mono_ms() >= w->deadline_ms && !w->inflight) {
        wait_finish(w, SFL_WAIT_TIMEOUT, NULL);
        return;
    }
    wait_attempt(w);
}

sfl_wait *sfl_limiter_wait(sfl_limiter *lim, long long account, const char *label,
                           int64_t timeout_ms, sfl_wait_fn *fn, void *arg)
{
    sfl_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->lim = lim;
    w->account = account;
    w->fn = fn;
    w->arg = arg;
    w->started_ms = sfl_mono_ms();
    w->deadline_ms = timeout_ms < 0 ? -1 : w->started_ms + timeout_ms;
    sfl_limiter_new_id(lim, w->id, sizeof(w->id));
    snprintf(w->label, sizeof(w->label), "%s", label ? label : "");
    w->timer = evtimer_new(lim->base, on_wait_timer, w);
    if (!w->timer) {
        free(w);
        return NULL;
    }
    SFL_LIST_PUSH(lim->waits, w);
    if (sfl_store_ready(lim->store) && lim->retaking == 0 && sfl_limiter_release_take_ask(lim, w)) {
        /* Our release of the account, going out this turn, asks for it. */
        w->inflight = 1;
        w->asked = 1;
        w->asked_ms = sfl_mono_ms();
        return w;
    }
    sfl_timer_in(w->timer, 0); /* first ask from the loop, never from inside this call */
    return w;
}

void sfl_limiter_wait_next_answer(sfl_wait *w, redisReply *r, int sent)
{
    if (sent && !(r && r->type == REDIS_REPLY_INTEGER)) {
        on_acquire_reply(w->lim->store, r, w); /* acquire.lua's answer, or none */
        return;
    }
    /* The release made no ask (the lease was gone, or no conf), or was not
     * sent: the wait asks the usual way. */
    w->inflight = 0;
    if (w->cancelled) {
        w->lim->waits_abandoned--;
        wait_free(w); /* nothing was queued for it */
        return;
    }
    wait_attempt(w);
}

void sfl_wait_cancel(sfl_wait *w)
{
    if (!w)
        return;
    wait_unlink(w);
    evtimer_del(w->timer);
    if (w->inflight) {
        w->cancelled = 1; /* freed when the answer comes */
        w->lim->waits_abandoned++;
        return;
    }
    if (w->asked || w->uncertain)
        sfl_limiter_release_id(w->lim, w->account, NULL, w->id);
    wait_free(w);
}

/*--- Hand-offs and teardown -------------------------------------------------*/

void sfl_limiter_waits_on_handoff(sfl_limiter *lim, const sfl_handoff *h)
{
    for (sfl_wait *w = lim->waits; w; w = w->next) {
        if (w->account != h->account || (h->ticket && strcmp(h->ticket, w->id) != 0))
            continue;
        sfl_lease *l = NULL;
        if (h->ticket && !w->inflight && !w->cancelled)
            l = sfl_limiter_claim(lim, h, w->label, w->started_ms);
        if (l) {
            w->uncertain = 0;
            wait_finish(w, SFL_WAIT_GRANTED, l);
            break; /* one wait per ticket; the list may have changed */
        }
        wait_attempt(w);
    }
}

void sfl_limiter_waits_free(sfl_limiter *lim)
{
    while (lim->waits) {
        sfl_wait *w = lim->waits;
        wait_unlink(w);
        wait_free(w);
    }
}
