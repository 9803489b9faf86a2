/* release.c - giving slots back: the limiter's releases (release.lua),
 * in the order sent, and the asks of an account held back behind them.
 *
 * A release is one script; its answer frees nothing on the node (the lease
 * is gone from the node's side when its owner lets go, limiter.c). What
 * this file keeps is what Redis still owes: the releases sent and not yet
 * answered (an ask of their account waits for them, wait.c), and those
 * that could not go out (Redis away), sent when it is back.
 *
 * A lease's release may wait for the end of the loop turn
 * (sfl_limiter_release_later): a wait of its account that starts in the
 * same turn, as a node asks for its next slot right after giving one back,
 * then has its ask made by the release's own script (release.lua's next
 * ask), one script per contended cycle instead of two (issue #17). Nothing
 * of the promise moves: the ask is acquire.lua's rule in release.lua (the
 * freed slot to the oldest live ticket; the next ask, the youngest, gets it
 * only when nobody else waits), and its grant is timed from the send of the
 * release, as any grant from the send of its ask.
 *
 * Shares limiter_int.h with limiter.c and wait.c. */
#include "limiter_int.h"

#include "clock.h"
#include "lease_script.h"
#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending_release {
    long long account;
    char login[SFL_LOGIN_ID_LEN]; /* "" = every login of the account */
    char id[ID_LEN];
    struct pending_release *next;
} pending_release;

/* An ask for an account goes out only after the releases of it that this
 * node sent before: the release runs and announces its hand-off without
 * waiting for an ask queued behind it on the same connection (Redis answers
 * a whole pipeline before it writes), and an ask right after our own release
 * would only queue behind the ticket the slot went to. */
typedef struct release_ctx {
    sfl_limiter *lim;
    long long account;
    struct release_ctx *next;
    /* A lease's release, sent at the end of the loop turn
     * (sfl_limiter_release_later):
     * a wait of the account started meanwhile rides in it. */
    int unsent;
    size_t idx; /* the login, in the account's route */
    char id[ID_LEN];
    sfl_wait *ask;    /* the wait whose ask the release makes; NULL: none */
    try_ctx *try_ask; /* ... or the try (one of the two at most) */
} release_ctx;

int sfl_limiter_release_in_flight(const sfl_limiter *lim, long long account)
{
    for (const release_ctx *c = lim->sent_head; c; c = c->next)
        if (c->account == account)
            return 1;
    return 0;
}

static void release_answered(sfl_limiter *lim, const redisReply *r)
{
    lim->releases_owed--;
    if (sfl_lease_released(r))
        lim->stats.released++;
}

/* Takes c out of the list of releases sent. */
static void release_unlist(sfl_limiter *lim, release_ctx *c)
{
    release_ctx **pp = &lim->sent_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = c->next;
        if (lim->sent_tail == c)
            lim->sent_tail = prev;
    }
}

static void on_release_reply(sfl_store *st, redisReply *r, void *arg)
{
    release_ctx *c = arg;
    sfl_limiter *lim = c->lim;
    UNUSED(st);
    release_answered(lim, r);
    if (c->ask || c->try_ask) {
        /* The release made the wait's (try's) ask too: its answer first,
         * then the asks held back behind the release. */
        sfl_wait *w = c->ask;
        try_ctx *t = c->try_ask;
        long long account = c->account;
        release_unlist(lim, c);
        free(c);
        if (w)
            sfl_limiter_wait_next_answer(w, r, 1);
        else
            sfl_limiter_try_next_answer(t, r, 1);
        sfl_limiter_resume_deferred(lim, account);
        return;
    }
    release_unlist(lim, c);
    long long account = c->account;
    free(c);
    /* Also when the connection is gone (r NULL): a deferred ask then fails
     * as one in flight would, and its owner tries again later. */
    sfl_limiter_resume_deferred(lim, account);
}

static void on_release_reply_untracked(sfl_store *st, redisReply *r, void *arg)
{
    UNUSED(st);
    release_answered(arg, r);
}

/* Sends release.lua for id on login idx of the route; 0 sent, -1 not. */
static int release_send(sfl_limiter *lim, const sfl_route *rt, size_t idx, const char *id)
{
    release_ctx *c = malloc(sizeof(*c));
    int rc;
    lim->releases_owed++;
    if (c) {
        *c = (release_ctx){.lim = lim, .account = rt->account};
        rc = sfl_lease_script_release(lim->store, lim->routes, rt, idx, id, lim->channel,
                                      lim->opts.handoff_ms, NULL, on_release_reply, c);
        if (rc == 0) {
            if (lim->sent_tail)
                lim->sent_tail->next = c;
            else
                lim->sent_head = c;
            lim->sent_tail = c;
            return 0;
        }
        free(c);
    } else {
        rc = sfl_lease_script_release(lim->store, lim->routes, rt, idx, id, lim->channel,
                                      lim->opts.handoff_ms, NULL, on_release_reply_untracked, lim);
        if (rc == 0)
            return 0;
    }
    lim->releases_owed--;
    return -1;
}

/* 1 if the release went out now, 0 if it waits for Redis to come back. */
int sfl_limiter_release_id(sfl_limiter *lim, long long account, const char *login, const char *id)
{
    const sfl_route *rt = sfl_routes_get(lim->routes, account);
    size_t idx = 0;
    int sent = 0;
    if (rt && login && login[0]) {
        if (!sfl_route_login(rt, login, &idx)) {
            sfl_warn("lease %s: login %s is no longer one of account %lld's; it expires", id, login,
                     account);
            return 1;
        }
        sent = release_send(lim, rt, idx, id) == 0;
    } else if (rt) {
        sent = 1;
        for (size_t i = 0; i < rt->nlogins && sent; i++)
            sent = release_send(lim, rt, i, id) == 0;
    }
    if (sent)
        return 1;
    /* Redis is away: give it back when it returns (or let the TTL do it). */
    pending_release *p = calloc(1, sizeof(*p));
    if (!p)
        return 0;
    p->account = account;
    snprintf(p->login, sizeof(p->login), "%s", login ? login : "");
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->next = lim->to_release;
    lim->to_release = p;
    return 0;
}

/* A lease's release on an account of one login that no other account
 * shares goes out at the end of the loop turn (on_release_later), not at
 * once: a wait of the account that starts in the same turn (a node that
 * gives a slot back and asks for the next: the common case at high churn)
 * has its ask made by the same script (release.lua's next ask), one script
 * per contended cycle instead of two. It counts as in flight from now
 * (sfl_limiter_release_in_flight). 1 when taken, 0 when the release must
 * go the usual way. */
int sfl_limiter_release_later(sfl_limiter *lim, const sfl_lease *l)
{
    const sfl_route *rt = sfl_routes_get(lim->routes, l->account);
    size_t idx;
    if (!lim->flush || !rt || rt->nlogins != 1 || rt->logins[0]->naccounts > 1 ||
        !sfl_route_login(rt, l->login, &idx) || !sfl_store_ready(lim->store))
        return 0;
    release_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return 0;
    *c = (release_ctx){.lim = lim, .account = l->account, .unsent = 1, .idx = idx};
    snprintf(c->id, sizeof(c->id), "%s", l->id);
    if (lim->sent_tail)
        lim->sent_tail->next = c;
    else
        lim->sent_head = c;
    lim->sent_tail = c;
    lim->releases_owed++;
    event_active(lim->flush, EV_TIMEOUT, 0);
    return 1;
}

/* The release of account kept back for this turn that makes no ask yet,
 * or NULL. */
static release_ctx *unsent_without_ask(const sfl_limiter *lim, long long account)
{
    for (release_ctx *c = lim->sent_head; c; c = c->next)
        if (c->unsent && !c->ask && !c->try_ask && c->account == account)
            return c;
    return NULL;
}

int sfl_limiter_release_take_ask(sfl_limiter *lim, sfl_wait *w)
{
    release_ctx *c = unsent_without_ask(lim, w->account);
    if (c)
        c->ask = w;
    return c != NULL;
}

int sfl_limiter_release_take_try(sfl_limiter *lim, try_ctx *t)
{
    release_ctx *c = unsent_without_ask(lim, t->account);
    if (c)
        c->try_ask = t;
    return c != NULL;
}

/* The first release kept back, or NULL. */
static release_ctx *first_unsent(const sfl_limiter *lim)
{
    release_ctx *c = lim->sent_head;
    while (c && !c->unsent)
        c = c->next;
    return c;
}

/* The releases sfl_limiter_release_later kept back, sent in the order they
 * came. The list is walked again for each: a callback below may answer
 * (and free) releases sent before. */
static void on_release_later(evutil_socket_t fd, short what, void *arg)
{
    sfl_limiter *lim = arg;
    UNUSED(fd);
    UNUSED(what);
    release_ctx *c;
    while ((c = first_unsent(lim)) != NULL) {
        c->unsent = 0;
        sfl_wait *w = c->ask;
        if (w && w->cancelled) {
            sfl_limiter_wait_next_answer(w, NULL, 0); /* frees it: nothing was asked */
            c->ask = w = NULL;
        }
        const sfl_route *rt = sfl_routes_get(lim->routes, c->account);
        sfl_lease_call ask = {.node = lim->node_id,
                              .ttl_ms = lim->opts.ttl_ms,
                              .recovery_ms = lim->opts.recovery_ms,
                              .ticket_ttl_ms = lim->opts.ticket_ttl_ms};
        try_ctx *t = c->try_ask;
        if (w) {
            ask.id = w->id;
            ask.label = w->label;
            w->asked_ms = sfl_mono_ms();
        } else if (t) {
            ask.id = t->id;
            ask.label = t->label;
            t->asked_ms = sfl_mono_ms();
        }
        if (rt && c->idx < rt->nlogins &&
            sfl_lease_script_release(lim->store, lim->routes, rt, c->idx, c->id, lim->channel,
                                     lim->opts.handoff_ms, w || t ? &ask : NULL, on_release_reply,
                                     c) == 0) {
            lim->stats.asked_in_release += w || t;
            continue;
        }
        /* Not sent (Redis went, or the route changed): the usual way. */
        long long account = c->account;
        char id[ID_LEN], login[SFL_LOGIN_ID_LEN] = "";
        snprintf(id, sizeof(id), "%s", c->id);
        if (rt && c->idx < rt->nlogins)
            snprintf(login, sizeof(login), "%s", rt->logins[c->idx]->id);
        release_unlist(lim, c);
        lim->releases_owed--;
        free(c);
        sfl_limiter_release_id(lim, account, login[0] ? login : NULL, id);
        if (w)
            sfl_limiter_wait_next_answer(w, NULL, 0);
        else if (t)
            sfl_limiter_try_next_answer(t, NULL, 0);
        sfl_limiter_resume_deferred(lim, account);
    }
}

void sfl_limiter_flush_releases(sfl_limiter *lim)
{
    pending_release *p = lim->to_release;
    lim->to_release = NULL;
    while (p) {
        pending_release *next = p->next;
        sfl_limiter_release_id(lim, p->account, p->login[0] ? p->login : NULL, p->id);
        free(p);
        p = next;
    }
}

static void on_release_later(evutil_socket_t fd, short what, void *arg);

int sfl_limiter_releases_init(sfl_limiter *lim)
{
    lim->flush = event_new(lim->base, -1, 0, on_release_later, lim);
    return lim->flush ? 0 : -1;
}

void sfl_limiter_releases_free(sfl_limiter *lim)
{
    while (lim->to_release) {
        pending_release *p = lim->to_release;
        lim->to_release = p->next;
        free(p);
    }
    if (lim->flush)
        event_free(lim->flush);
    /* Releases kept back for this turn and never sent: nobody answers them. */
    for (release_ctx *c = lim->sent_head, *next; c; c = next) {
        next = c->next;
        if (c->unsent) {
            if (c->try_ask)
                sfl_limiter_try_forget(c->try_ask);
            free(c);
        }
    }
}

int sfl_limiter_pending_releases(const sfl_limiter *lim)
{
    int n = lim->releases_owed + lim->waits_abandoned;
    for (pending_release *p = lim->to_release; p; p = p->next)
        n++;
    /* An ask may still get a slot (or queue a ticket) that only its answer
     * gives back: each try, sent, held back or riding in a release. */
    for (const try_ctx *t = lim->tries; t; t = t->next)
        n++;
    return n;
}
