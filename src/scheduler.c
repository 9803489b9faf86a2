/* scheduler.c - the node's local scheduler (DESIGN §2).
 *
 * Jobs wait in one priority queue per account; accounts with runnable work
 * sit in a round-robin ring. The scheduler asks Redis for a slot (one
 * sfl_limiter_try) only for an account at the head of the ring and only
 * while a global slot is free: asks in flight + checks running never exceed
 * global_limit, so a grant can always start at once and no lease is held
 * idle. With a stagger delay, one ask at a time (any grant closes the gate).
 *
 * A denied account leaves the ring and sleeps until a release announced for
 * it or the retry hint (capped by fallback_ms, plus jitter); the next account
 * is asked at once, so a full account never holds up another (the seed
 * blocked on the first full account in input order).
 *
 * Across nodes, a denied ask leaves one ticket per account and node in
 * Redis, and slots go to tickets in arrival order (acquire.lua,
 * release.lua). The account keeps asking with the same ticket until it is
 * granted, then takes a new one, so its next need queues behind the other
 * nodes: a node with one stream never starves behind a node with a hundred.
 *
 * NoSlot: an account's clock starts at its first denial after its last
 * grant; if acquire_timeout passes with no grant, its queued jobs are
 * dropped with SFL_DROP_NOSLOT. An account that keeps getting slots never
 * times out, however long its queue.
 *
 * This file never runs checks and never releases leases: the hooks do.
 */
#include "scheduler.h"

#include "clock.h"
#include "idmap.h"
#include "limiter.h"
#include "log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOT_READY_MS 200

typedef struct qjob {
    void *job;
    int priority;
    uint64_t seq;
    int64_t added_ms;
    char label[64];
} qjob;

typedef struct acct {
    sfl_sched *s;
    long long id;
    qjob *heap;
    size_t n, cap;
    int running;
    int asking;
    int again; /* a slot was announced for it while its ask was in flight */
    int parked;
    int in_ring;
    int64_t stalled_since; /* -1: not stalled */
    char ticket[96];       /* the lease id asked with while waiting: our place in Redis's queue */
    char error[200];       /* the last Redis error answering this account's asks */
    struct event *wake;
    struct acct *prev, *next; /* ring */
} acct;

struct sfl_sched {
    struct event_base *base;
    sfl_limiter *lim;
    sfl_sched_opts opts;
    sfl_sched_hooks hooks;
    sfl_idmap *accounts;
    acct *ring; /* head */
    int running;
    int asking;
    int cancelled;
    size_t queued;
    uint64_t seq;
    int64_t last_start_ms;
    struct event *gate; /* stagger */
};

static void pump(sfl_sched *s);

/*--- Per-account priority queue (binary heap) ------------------------------*/

static int before(const qjob *a, const qjob *b)
{
    return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
}

static int heap_push(acct *a, const qjob *j)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        qjob *v = realloc(a->heap, cap * sizeof(*v));
        if (!v)
            return -1;
        a->heap = v;
        a->cap = cap;
    }
    size_t i = a->n++;
    while (i > 0 && before(j, &a->heap[(i - 1) / 2])) {
        a->heap[i] = a->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    a->heap[i] = *j;
    return 0;
}

static qjob heap_pop(acct *a)
{
    qjob top = a->heap[0];
    qjob last = a->heap[--a->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= a->n)
            break;
        if (c + 1 < a->n && before(&a->heap[c + 1], &a->heap[c]))
            c++;
        if (!before(&a->heap[c], &last))
            break;
        a->heap[i] = a->heap[c];
        i = c;
    }
    if (a->n > 0)
        a->heap[i] = last;
    return top;
}

/*--- The ring of accounts with runnable work -------------------------------*/

static void ring_push(acct *a)
{
    sfl_sched *s = a->s;
    if (a->in_ring || a->n == 0 || a->asking || a->parked)
        return;
    a->in_ring = 1;
    if (!s->ring) {
        a->prev = a->next = a;
        s->ring = a;
        return;
    }
    a->next = s->ring;
    a->prev = s->ring->prev;
    s->ring->prev->next = a;
    s->ring->prev = a;
}

static acct *ring_pop(sfl_sched *s)
{
    acct *a = s->ring;
    if (!a)
        return NULL;
    if (a->next == a) {
        s->ring = NULL;
    } else {
        a->prev->next = a->next;
        a->next->prev = a->prev;
        s->ring = a->next;
    }
    a->prev = a->next = NULL;
    a->in_ring = 0;
    return a;
}

static void ring_remove(acct *a)
{
    sfl_sched *s = a->s;
    if (!a->in_ring)
        return;
    if (s->ring == a) {
        ring_pop(s);
        return;
    }
    a->prev->next = a->next;
    a->next->prev = a->prev;
    a->prev = a->next = NULL;
    a->in_ring = 0;
}

/*--- Accounts --------------------------------------------------------------*/

/* The account no longer waits: its ticket leaves Redis's queue, so no slot
 * is handed to a node that will not take it. With an ask of the ticket in
 * flight (or held back behind a release of ours), the ask is given up to
 * the limiter, which gives the id back once the answer is in (the ticket
 * the ask queued again, or the slot it got) and sends no held-back ask.
 * Merely forgotten, the ticket that ask queues again would stay, and our
 * next release of the account would hand it a slot nobody takes. */
static void drop_ticket(acct *a)
{
    sfl_sched *s = a->s;
    if (a->asking) {
        sfl_limiter_cancel_tries(s->lim, a);
        a->asking = 0;
        s->asking--;
    } else if (a->ticket[0]) {
        sfl_limiter_withdraw(s->lim, a->id, a->ticket);
    }
    a->ticket[0] = '\0';
}

static void drop_all(acct *a, sfl_drop_reason why)
{
    sfl_sched *s = a->s;
    ring_remove(a);
    drop_ticket(a);
    while (a->n > 0) {
        qjob j = heap_pop(a);
        s->queued--;
        s->hooks.drop(j.job, a->id, why, a->error[0] ? a->error : NULL, sfl_mono_ms() - j.added_ms,
                      s->hooks.arg);
    }
}

static void unpark(acct *a)
{
    if (!a->parked)
        return;
    a->parked = 0;
    evtimer_del(a->wake);
    ring_push(a);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    acct *a = arg;
    sfl_sched *s = a->s;
    UNUSED(fd);
    UNUSED(what);
    if (a->stalled_since >= 0 && sfl_mono_ms() - a->stalled_since >= s->opts.acquire_timeout_ms) {
        a->parked = 0;
        a->stalled_since = -1;
        sfl_info("Account %lld: no slot within %.1f s; %zu stream(s) get NoSlot%s%s", a->id,
                 s->opts.acquire_timeout_ms / 1000.0, a->n, a->error[0] ? "; last error: " : "",
                 a->error);
        drop_all(a, SFL_DROP_NOSLOT);
    } else {
        unpark(a);
    }
    pump(s);
}

static void park(acct *a, int64_t ms)
{
    sfl_sched *s = a->s;
    if (a->stalled_since >= 0) {
        int64_t left = a->stalled_since + s->opts.acquire_timeout_ms - sfl_mono_ms();
        if (ms > left)
            ms = left;
    }
    a->parked = 1;
    sfl_timer_in(a->wake, ms);
}

static acct *acct_get(sfl_sched *s, long long id)
{
    acct *a = sfl_idmap_get(s->accounts, id);
    if (a)
        return a;
    a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->s = s;
    a->id = id;
    a->stalled_since = -1;
    a->wake = evtimer_new(s->base, on_wake, a);
    if (!a->wake || sfl_idmap_put(s->accounts, id, a) < 0) {
        if (a->wake)
            event_free(a->wake);
        free(a);
        return NULL;
    }
    return a;
}

/*--- Asking and starting ---------------------------------------------------*/

static void start_head(acct *a, sfl_lease *lease)
{
    sfl_sched *s = a->s;
    qjob j = heap_pop(a);
    s->queued--;
    a->running++;
    s->running++;
    s->last_start_ms = sfl_mono_ms();
    ring_push(a);
    s->hooks.start(j.job, a->id, lease, s->last_start_ms - j.added_ms, s->hooks.arg);
}

/* The account got a slot (an answer or a hand-off): its head job starts. */
static void start_granted(acct *a, sfl_lease *lease)
{
    if (a->parked) {
        a->parked = 0;
        evtimer_del(a->wake);
    }
    a->stalled_since = -1;
    a->error[0] = '\0';
    a->ticket[0] = '\0'; /* the next need queues behind the other nodes */
    start_head(a, lease);
}

static void on_try(const sfl_try_result *res, void *arg)
{
    acct *a = arg;
    sfl_sched *s = a->s;
    a->asking = 0;
    s->asking--;
    if (s->cancelled || a->n == 0) {
        if (res->lease)
            sfl_lease_release(res->lease); /* also withdraws the ticket */
        else
            drop_ticket(a);
        a->ticket[0] = '\0';
        pump(s);
        return;
    }
    switch (res->status) {
    case SFL_TRY_GRANTED:
        start_granted(a, res->lease);
        break;
    case SFL_TRY_DENIED: {
        if (a->stalled_since < 0)
            a->stalled_since = sfl_mono_ms();
        if (a->again) {
            /* The denial crossed a release announced for it: ask again now. */
            a->again = 0;
            ring_push(a);
            break;
        }
        int64_t ms = res->retry_ms < s->opts.fallback_ms ? res->retry_ms : s->opts.fallback_ms;
        park(a, ms + (int64_t)(sfl_random64() % (uint64_t)(ms / 10 + 5)));
        break;
    }
    case SFL_TRY_UNKNOWN_ACCOUNT:
        if (res->error && strncmp(res->error, "moved", 5) == 0)
            sfl_error("Account %lld: Redis says its logins are %s, which this node was not "
                      "given (config or Dispatcharr sync): its streams are not checked here",
                      a->id, res->error);
        else
            sfl_error("Account %lld has no max_streams in Redis and none in the config: its "
                      "streams are not checked",
                      a->id);
        drop_all(a, SFL_DROP_UNKNOWN_ACCOUNT);
        break;
    case SFL_TRY_FAILED:
        a->ticket[0] = '\0'; /* the limiter gave that id back */
        if (res->error) {
            /* Redis answered with an error (a key of the wrong type in the
             * namespace, a script that cannot run): it counts as no slot. */
            if (!a->error[0])
                sfl_error("Account %lld: Redis error on its keys ({a:%lld}): %s", a->id, a->id,
                          res->error);
            snprintf(a->error, sizeof(a->error), "%s", res->error);
            if (a->stalled_since < 0)
                a->stalled_since = sfl_mono_ms();
            park(a, s->opts.fallback_ms);
        } else {
            park(a, NOT_READY_MS); /* no answer: Redis is away, the store reconnects */
        }
        break;
    }
    pump(s);
}

static void on_gate(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    pump(arg);
}

static void pump(sfl_sched *s)
{
    while (!s->cancelled && s->ring && s->running + s->asking < s->opts.global_limit) {
        if (s->opts.stagger_ms > 0) {
            if (s->asking > 0)
                return; /* a grant would close the gate: one ask at a time */
            int64_t wait = s->last_start_ms + s->opts.stagger_ms - sfl_mono_ms();
            if (s->last_start_ms > 0 && wait > 0) {
                if (!evtimer_pending(s->gate, NULL))
                    sfl_timer_in(s->gate, wait);
                return;
            }
        }
        acct *a = ring_pop(s);
        if (a->id == SFL_CUSTOM_ACCOUNT) {
            start_head(a, NULL);
            continue;
        }
        if (!a->ticket[0])
            sfl_limiter_new_id(s->lim, a->ticket, sizeof(a->ticket));
        if (sfl_limiter_try(s->lim, a->id, a->heap[0].label, a->ticket, on_try, a) < 0) {
            park(a, NOT_READY_MS); /* Redis away or leases being re-taken */
            continue;
        }
        a->again = 0;
        a->asking = 1;
        s->asking++;
    }
}

/*--- API -------------------------------------------------------------------*/

static void on_release_seen(const sfl_handoff *h, void *arg);

sfl_sched *sfl_sched_new(struct event_base *base, sfl_limiter *lim, const sfl_sched_opts *opts,
                         const sfl_sched_hooks *hooks)
{
    sfl_sched *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base = base;
    s->lim = lim;
    s->opts = *opts;
    if (s->opts.global_limit < 1)
        s->opts.global_limit = 1;
    if (s->opts.fallback_ms <= 0)
        s->opts.fallback_ms = 1000;
    if (s->opts.handoff_ms <= 0)
        s->opts.handoff_ms = SFL_HANDOFF_MS;
    s->hooks = *hooks;
    s->accounts = sfl_idmap_new();
    s->gate = evtimer_new(base, on_gate, s);
    if (!s->accounts || !s->gate) {
        sfl_sched_free(s);
        return NULL;
    }
    sfl_limiter_on_release_seen(lim, on_release_seen, s);
    return s;
}

static void acct_free(long long id, void *value, void *arg)
{
    acct *a = value;
    UNUSED(id);
    UNUSED(arg);
    drop_ticket(a); /* an ask in flight: its id is given back on the answer */
    event_free(a->wake);
    free(a->heap);
    free(a);
}

void sfl_sched_free(sfl_sched *s)
{
    if (!s)
        return;
    if (s->accounts) {
        sfl_idmap_each(s->accounts, acct_free, s);
        sfl_idmap_free(s->accounts);
    }
    if (s->gate)
        event_free(s->gate);
    free(s);
}

int sfl_sched_add(sfl_sched *s, void *job, long long account, int priority, const char *label)
{
    if (s->cancelled)
        return -1;
    acct *a = acct_get(s, account);
    if (!a)
        return -1;
    qjob j = {.job = job, .priority = priority, .seq = s->seq++, .added_ms = sfl_mono_ms()};
    snprintf(j.label, sizeof(j.label), "%s", label ? label : "");
    if (heap_push(a, &j) < 0)
        return -1;
    s->queued++;
    ring_push(a);
    /* Start from the loop, never from inside this call. */
    if (!evtimer_pending(s->gate, NULL))
        sfl_timer_in(s->gate, 0);
    return 0;
}

void sfl_sched_done(sfl_sched *s, long long account)
{
    acct *a = sfl_idmap_get(s->accounts, account);
    if (a && a->running > 0)
        a->running--;
    if (s->running > 0)
        s->running--;
    /* A parked account of ours is not woken here: our release hands the
     * slot to the oldest ticket, and its owner is told (maybe us). */
    pump(s);
}

static void cancel_one(long long id, void *value, void *arg)
{
    acct *a = value;
    UNUSED(id);
    UNUSED(arg);
    evtimer_del(a->wake);
    a->parked = 0;
    drop_all(a, SFL_DROP_CANCELLED);
}

void sfl_sched_cancel(sfl_sched *s)
{
    s->cancelled = 1;
    evtimer_del(s->gate);
    sfl_idmap_each(s->accounts, cancel_one, NULL);
}

static void kick_one(long long id, void *value, void *arg)
{
    UNUSED(id);
    UNUSED(arg);
    acct *a = value;
    unpark(a);
}

void sfl_sched_kick(sfl_sched *s)
{
    sfl_idmap_each(s->accounts, kick_one, NULL);
    pump(s);
}

/* Whether a check could start now, as pump would start one. */
static int can_start_now(const sfl_sched *s)
{
    if (s->running + s->asking >= s->opts.global_limit)
        return 0;
    if (s->opts.stagger_ms <= 0 || s->last_start_ms <= 0)
        return 1;
    return s->asking == 0 && sfl_mono_ms() >= s->last_start_ms + s->opts.stagger_ms;
}

/* Whether an ask could go out well within the time a handed slot is kept. */
static int can_take_soon(const sfl_sched *s)
{
    if (s->running + s->asking >= s->opts.global_limit)
        return 0;
    if (s->opts.stagger_ms <= 0 || s->last_start_ms <= 0)
        return 1;
    int64_t gate = s->last_start_ms + s->opts.stagger_ms - sfl_mono_ms();
    return gate < s->opts.handoff_ms / 2;
}

/* A slot of the account was freed (no ticket) or handed to a ticket. */
static void on_release_seen(const sfl_handoff *h, void *arg)
{
    sfl_sched *s = arg;
    acct *a = sfl_idmap_get(s->accounts, h->account);
    if (!a || (h->ticket && strcmp(h->ticket, a->ticket) != 0))
        return;
    if (a->asking) {
        a->again = 1; /* its answer may be a denial from before the release */
        return;
    }
    if (h->ticket && a->n > 0 && !s->cancelled && can_start_now(s)) {
        /* Start on the announcement; the limiter takes the slot over. */
        sfl_lease *l = sfl_limiter_claim(s->lim, h, a->heap[0].label, a->stalled_since);
        if (l) {
            start_granted(a, l);
            pump(s);
            return;
        }
    }
    if (h->ticket && !can_take_soon(s)) {
        /* The slot is held for our ticket, but every global slot here is
         * busy, or the stagger gate stays shut longer than the slot is kept:
         * pass it on to the next node in line rather than keep it idle. The
         * account asks again (at the back) when it can start. */
        drop_ticket(a);
    }
    if (a->parked) {
        unpark(a);
        pump(s);
    }
}

size_t sfl_sched_queued(const sfl_sched *s)
{
    return s->queued;
}

int sfl_sched_running(const sfl_sched *s)
{
    return s->running;
}

typedef struct each_ctx {
    void (*fn)(const sfl_sched_account *a, void *arg);
    void *arg;
} each_ctx;

static void each_one(long long id, void *value, void *arg)
{
    each_ctx *c = arg;
    acct *a = value;
    sfl_sched_account info = {id, a->n, a->running, a->parked};
    c->fn(&info, c->arg);
}

void sfl_sched_each_account(const sfl_sched *s, void (*fn)(const sfl_sched_account *a, void *arg),
                            void *arg)
{
    each_ctx c = {fn, arg};
    sfl_idmap_each(s->accounts, each_one, &c);
}
