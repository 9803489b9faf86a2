/* limiter.c - holds leases, renews them, gives them back, notices losses.
 *
 * The promise (DESIGN §1) is kept here on the node's side:
 *  - each lease has a local deadline on the monotonic clock, counted from
 *    when the last successful acquire/renew was SENT (so it is never later
 *    than Redis's deadline, whatever the latency of the answer);
 *  - a per-lease safety timer fires safety_ms before that local deadline;
 *    if no renewal has moved the deadline by then, the lease is declared lost
 *    and its owner must stop the check before Redis could hand the slot on;
 *  - a renewal that finds the lease gone re-takes it only where there is
 *    room (renew.lua), else the lease is lost at once;
 *  - after a reconnect, held leases are renewed (re-taken) before any new
 *    slot is asked for.
 *
 * A slot handed to a waiting ticket (release.lua) is a lease of that ticket
 * until a short deadline in Redis time, announced with it. The node starts
 * on the announcement (sfl_limiter_claim) when it can show that deadline is
 * still ahead on its own clock, and takes the lease over for the full TTL:
 * at once (a check, an exec, a sidecar client hold slots for seconds and
 * more: the take-over gets the whole hold for its round trip), or, for a
 * limiter whose holders may be done sooner (opts.short_holds: the lease
 * benchmark's), a third of the way to its safety margin (TAKEOVER_PART): a
 * holder done by then gives the slot back without a take-over (one script
 * less per cycle at high churn), the take-over still having two thirds of
 * the time left. The safety timer stops the check in time if the
 * take-over is not confirmed, exactly as when it went out at once. Redis time maps onto the
 * monotonic clock as a lower bound: a script's answer carries Redis's TIME, read after the ask was
 * sent, so local(X) >= X + (sent - redis_now - 1), less the allowed rate drift for the span from
 * that answer to X. A late announcement, or one before any answer, falls back to asking with the
 * ticket (one more round trip).
 *
 * Asking for slots (waits, tries, hand-offs to them) is wait.c's; both
 * files share limiter_int.h.
 *
 * This file must never start or stop checks itself: it tells its owner.
 */
#include "limiter_int.h"

#include "clock.h"
#include "idmap.h"
#include "lease_script.h"
#include "list.h"
#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRIFT_PPM 1000          /* clock rate difference allowed between Redis and here */
#define CLOCK_MAX_SPAN_MS 60000 /* a mapping is trusted this far from its answer */

typedef struct renew_ctx {
    sfl_lease *lease;
    int64_t sent_ms;
} renew_ctx;

/*--- Helpers ---------------------------------------------------------------*/

/* Lease ids and jitter come from splitmix64 (a bijection of a 64-bit
 * counter), reseeded from the system with every limiter made: one getrandom
 * per limiter, not one per ask. Ids are also prefixed with the node id. */
static uint64_t rng_state;

uint64_t sfl_limiter_rand(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void sfl_limiter_hint_limit(sfl_limiter *lim, long long account, long long max_streams)
{
    const sfl_route *rt = sfl_routes_get(lim->routes, account);
    if (rt && rt->nlogins == 1)
        sfl_routes_hint(lim->routes, account, 0, max_streams);
}

long long sfl_limiter_known_limit(const sfl_limiter *lim, long long account)
{
    const sfl_route *rt = sfl_routes_get(lim->routes, account);
    if (!rt)
        return -1;
    long long sum = 0;
    for (size_t i = 0; i < rt->nlogins; i++) {
        if (rt->logins[i]->known < 0)
            return -1;
        if (rt->logins[i]->known == 0)
            return 0;
        sum += rt->logins[i]->known;
    }
    return sum;
}

int sfl_limiter_set_accounts(sfl_limiter *lim, const sfl_account_conf *accs, size_t n, char *err,
                             size_t errlen)
{
    return sfl_routes_set(lim->routes, accs, n, err, errlen);
}

sfl_routes *sfl_limiter_routes(const sfl_limiter *lim)
{
    return lim ? lim->routes : NULL;
}

int sfl_limiter_send(sfl_limiter *lim, long long account, const char *login, const char *id,
                     const char *label, int64_t ticket_ttl, sfl_store_reply_fn *fn, void *arg)
{
    const sfl_route *rt = sfl_routes_get(lim->routes, account);
    if (!rt)
        return -1;
    sfl_lease_call c = {.id = id,
                        .node = lim->node_id,
                        .label = label,
                        .channel = lim->channel,
                        .ttl_ms = lim->opts.ttl_ms,
                        .recovery_ms = lim->opts.recovery_ms,
                        .ticket_ttl_ms = ticket_ttl,
                        .handoff_ms = lim->opts.handoff_ms};
    if (login) {
        size_t idx;
        if (!sfl_route_login(rt, login, &idx))
            return -1;
        return sfl_lease_script_renew(lim->store, rt, idx, &c, fn, arg);
    }
    return sfl_lease_script_acquire(lim->store, rt, &c, fn, arg);
}

/*--- Redis time on the local clock -----------------------------------------*/

/* An answer to a script sent at local sent_ms carried Redis time redis_ms
 * (rounded down). The newest answer is kept, not the tightest: an older one
 * is wrong if Redis's clock was stepped since, and a round trip is slack
 * enough against a hold of hundreds of ms. */
static void clock_sample(sfl_limiter *lim, int64_t sent_ms, int64_t redis_ms)
{
    lim->clock_known = 1;
    lim->clock_off = sent_ms - redis_ms - 1;
    lim->clock_at = redis_ms;
}

/* The answer of an acquire/renew sent at sent_ms: grants and renewals give
 * deadline = now + ttl, denials and losses give now. */
void sfl_limiter_clock_from_answer(sfl_limiter *lim, int64_t sent_ms, const sfl_lease_answer *a)
{
    if (a->status == SFL_ANSWER_GRANTED || a->status == SFL_ANSWER_RETAKEN)
        clock_sample(lim, sent_ms, a->deadline_ms - lim->opts.ttl_ms);
    else if (a->status == SFL_ANSWER_DENIED && a->now_ms >= 0)
        clock_sample(lim, sent_ms, a->now_ms);
}

/* A lower bound of the local monotonic time at Redis time redis_ms; -1 if
 * none can be given (no answer since the last connect, or too far from it). */
static int64_t clock_local_at(const sfl_limiter *lim, int64_t redis_ms)
{
    int64_t span = redis_ms - lim->clock_at;
    if (!lim->clock_known || span < 0 || span > CLOCK_MAX_SPAN_MS)
        return -1;
    return redis_ms + lim->clock_off - span * DRIFT_PPM / 1000000 - 1;
}

/*--- Leases ----------------------------------------------------------------*/

static void lease_unlink(sfl_lease *l)
{
    SFL_LIST_UNLINK(l->lim->leases, l);
    l->lim->nleases--;
}

static void lease_free(sfl_lease *l)
{
    if (l->safety)
        event_free(l->safety);
    if (l->takeover)
        event_free(l->takeover);
    free(l);
}

static void lease_lose(sfl_lease *l, const char *why)
{
    if (l->lost || l->released)
        return;
    l->lost = 1;
    evtimer_del(l->safety);
    if (l->takeover)
        evtimer_del(l->takeover);
    l->lim->stats.lost++;
    sfl_limiter_emit_lease(l->lim, SFL_LIM_LOST, l, NULL);
    sfl_warn("lease %s of account %lld (login %s) lost: %s", l->id, l->account, l->login, why);
    if (l->lost_fn)
        l->lost_fn(l, why, l->lost_arg);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
    sfl_lease *l = arg;
    UNUSED(fd);
    UNUSED(what);
    char why[128];
    snprintf(why, sizeof(why), "no renewal confirmed; local deadline in %" PRId64 " ms",
             l->local_deadline_ms - sfl_mono_ms());
    lease_lose(l, why);
}

static void lease_confirm(sfl_lease *l, int64_t sent_ms, long long fence)
{
    l->local_deadline_ms = sent_ms + l->lim->opts.ttl_ms;
    l->fence = fence;
    if (l->takeover)
        evtimer_del(l->takeover); /* a renewal did it */
    sfl_timer_in(l->safety, l->local_deadline_ms - l->lim->opts.safety_ms - sfl_mono_ms());
}

/* The safety margin of a lease started on a hand-off, before its take-over
 * is confirmed: its deadline is only handoff_ms away, so safety_ms cannot
 * apply; a quarter of it leaves the owner an eighth to kill its check. */
static int64_t handoff_margin(const sfl_limiter *lim)
{
    int64_t m = lim->opts.handoff_ms / 4;
    return m < lim->opts.safety_ms ? m : lim->opts.safety_ms;
}

static void retake_done(sfl_lease *l);

static void on_renew_reply(sfl_store *st, redisReply *r, void *arg)
{
    renew_ctx *ctx = arg;
    sfl_lease *l = ctx->lease;
    sfl_limiter *lim = l->lim;
    int64_t sent = ctx->sent_ms;
    UNUSED(st);
    free(ctx);
    l->inflight--;
    sfl_lease_answer a;
    sfl_lease_answer_decode(r, &a);
    sfl_limiter_clock_from_answer(lim, sent, &a);
    int held = a.status == SFL_ANSWER_GRANTED || a.status == SFL_ANSWER_RETAKEN;
    if (l->released) {
        if (l->inflight == 0) {
            /* A re-take (or take-over) may have recreated it after a release
             * that had to wait for Redis: give it back again. A release sent
             * behind it on the same connection already took it. */
            if (held && !l->release_sent)
                sfl_limiter_release_id(lim, l->account, l->login, l->id);
            lease_free(l);
        }
        return;
    }
    if (a.status == SFL_ANSWER_NONE) {
        lim->stats.renew_failed++;
        if (a.error)
            sfl_warn("renew of %s: %s", l->id, a.error);
        retake_done(l);
        return; /* the safety timer decides */
    }
    if (held) {
        if (l->lost) {
            /* Declared lost meanwhile; its check is being stopped. Do not
             * keep a slot nobody uses. */
            sfl_limiter_release_id(lim, l->account, l->login, l->id);
        } else {
            if (a.status == SFL_ANSWER_RETAKEN) {
                lim->stats.retaken++;
                sfl_info("lease %s of account %lld re-taken (fence %lld)", l->id, l->account,
                         a.fence);
            }
            lease_confirm(l, sent, a.fence);
            const sfl_route *rt = sfl_routes_get(lim->routes, l->account);
            size_t idx;
            if (rt && a.login >= 0 && (size_t)a.login < rt->nlogins) {
                /* A take-over (acquire.lua) says where the slot is. A hand-off
                 * that lapsed may have been granted again on another login,
                 * while the check already opened the first login's URL: the
                 * slot it uses is no longer counted. Stop it. */
                int moved = strcmp(l->login, rt->logins[a.login]->id) != 0;
                snprintf(l->login, sizeof(l->login), "%s", rt->logins[a.login]->id);
                sfl_routes_hint(lim->routes, l->account, (size_t)a.login, a.limit);
                if (moved) {
                    retake_done(l);
                    l->gone = 1;
                    lease_lose(l, "its hand-off lapsed and the slot came on another login");
                    return;
                }
            } else if (sfl_route_login(rt, l->login, &idx)) {
                sfl_routes_hint(lim->routes, l->account, idx, a.limit);
            }
        }
    } else {
        lim->stats.renew_failed++;
        char why[96];
        snprintf(why, sizeof(why), "gone from Redis and no room to re-take (%s)", a.reason);
        retake_done(l);
        l->gone = 1;
        if (strcmp(a.reason, "preempted") == 0) {
            l->preempted = 1;
            snprintf(why, sizeof(why), "preempted: others' connections need its slot");
        }
        lease_lose(l, why); /* last: the owner may release l from its callback */
        return;
    }
    retake_done(l);
}

static void renew_one(sfl_lease *l)
{
    renew_ctx *ctx = malloc(sizeof(*ctx));
    if (!ctx)
        return;
    ctx->lease = l;
    ctx->sent_ms = sfl_mono_ms();
    if (sfl_limiter_send(l->lim, l->account, l->login, l->id, l->label, 0, on_renew_reply, ctx) <
        0) {
        free(ctx);
        retake_done(l);
        if (!sfl_route_login(sfl_routes_get(l->lim->routes, l->account), l->login, NULL)) {
            l->gone = 1;
            lease_lose(l, "its login is no longer one of the account's");
        }
        return;
    }
    l->inflight++;
}

static void on_renew_tick(evutil_socket_t fd, short what, void *arg)
{
    sfl_limiter *lim = arg;
    UNUSED(fd);
    UNUSED(what);
    if (!sfl_store_ready(lim->store))
        return;
    /* All renewals go out in this one loop turn: hiredis writes them as one
     * pipeline. */
    for (sfl_lease *l = lim->leases; l; l = l->next)
        if (!l->lost && l->inflight == 0)
            renew_one(l);
}

void sfl_lease_on_lost(sfl_lease *l, sfl_lease_lost_fn *fn, void *arg)
{
    l->lost_fn = fn;
    l->lost_arg = arg;
}

void sfl_lease_release(sfl_lease *l)
{
    if (!l)
        return;
    sfl_limiter *lim = l->lim;
    sfl_limiter_emit_lease(lim, SFL_LIM_RELEASE, l, NULL);
    lease_unlink(l);
    evtimer_del(l->safety);
    if (l->takeover)
        evtimer_del(l->takeover); /* never needed: the release frees the handed slot */
    retake_done(l);
    l->released = 1;
    l->release_sent = sfl_limiter_release_later(lim, l) ||
                      sfl_limiter_release_id(lim, l->account, l->login, l->id);
    if (l->inflight == 0)
        lease_free(l);
}

const char *sfl_lease_id(const sfl_lease *l)
{
    return l->id;
}

long long sfl_lease_account(const sfl_lease *l)
{
    return l->account;
}

const char *sfl_lease_login(const sfl_lease *l)
{
    return l->login;
}

long long sfl_lease_fence(const sfl_lease *l)
{
    return l->fence;
}

int sfl_lease_is_lost(const sfl_lease *l)
{
    return l->lost;
}

int sfl_lease_is_preempted(const sfl_lease *l)
{
    return l->preempted;
}

int64_t sfl_lease_stop_within_ms(const sfl_lease *l)
{
    if (l->gone)
        return 0;
    int64_t left = l->local_deadline_ms - sfl_mono_ms();
    return left > 0 ? left / 2 : 0;
}

int64_t sfl_lease_wait_ms(const sfl_lease *l)
{
    return l->wait_ms;
}

/* A new held lease, not yet timed. NULL when out of memory. */
static sfl_lease *lease_new(sfl_limiter *lim, long long account, const char *login, const char *id,
                            const char *label)
{
    sfl_lease *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->lim = lim;
    l->account = account;
    snprintf(l->login, sizeof(l->login), "%s", login);
    snprintf(l->id, sizeof(l->id), "%s", id);
    snprintf(l->label, sizeof(l->label), "%s", label);
    l->safety = evtimer_new(lim->base, on_safety, l);
    if (!l->safety) {
        free(l);
        return NULL;
    }
    SFL_LIST_PUSH(lim->leases, l);
    lim->nleases++;
    lim->stats.acquired++;
    return l;
}

/* A granted acquire.lua answer becomes a held lease. The local deadline
 * counts from asked_ms, when the ask was sent. NULL when out of memory. */
sfl_lease *sfl_limiter_lease_add(sfl_limiter *lim, long long account, const char *id,
                                 const char *label, int64_t asked_ms, const sfl_lease_answer *a)
{
    const sfl_route *rt = sfl_routes_get(lim->routes, account);
    size_t idx = a->login < 0 ? 0 : (size_t)a->login;
    if (!rt || idx >= rt->nlogins)
        return NULL; /* the caller gives the id back, on every login */
    sfl_lease *l = lease_new(lim, account, rt->logins[idx]->id, id, label);
    if (!l)
        return NULL;
    lease_confirm(l, asked_ms, a->fence);
    sfl_routes_hint(lim->routes, account, idx, a->limit);
    sfl_limiter_emit_lease(lim, SFL_LIM_GRANT, l, a);
    return l;
}

/* How far into the time a handed lease has before its safety margin its
 * take-over goes out: 1/TAKEOVER_PART of it. */
#define TAKEOVER_PART 3

/* The take-over: acquire.lua with the ticket as lease id makes it a full
 * lease (its answer is handled as a renewal's); it never queues. Not sent
 * while a renewal is in flight (its answer confirms the lease), nor while
 * Redis is away (sfl_limiter_on_ready re-takes every held lease). If it
 * cannot go out, the safety timer decides. */
static void on_takeover(evutil_socket_t fd, short what, void *arg)
{
    sfl_lease *l = arg;
    sfl_limiter *lim = l->lim;
    UNUSED(fd);
    UNUSED(what);
    if (l->lost || l->released || l->inflight > 0 || !sfl_store_ready(lim->store))
        return;
    renew_ctx *ctx = malloc(sizeof(*ctx));
    if (!ctx)
        return;
    ctx->lease = l;
    ctx->sent_ms = sfl_mono_ms();
    if (sfl_limiter_send(lim, l->account, NULL, l->id, l->label, 0, on_renew_reply, ctx) < 0) {
        free(ctx);
        return;
    }
    l->inflight++;
}

sfl_lease *sfl_limiter_claim(sfl_limiter *lim, const sfl_handoff *h, const char *label,
                             int64_t wait_since_ms)
{
    if (!h->ticket || h->deadline_ms <= 0 || !sfl_store_ready(lim->store) || lim->retaking > 0)
        return NULL;
    int64_t now = sfl_mono_ms(), margin = handoff_margin(lim);
    int64_t local = clock_local_at(lim, h->deadline_ms);
    if (local < 0 || local - now < 2 * margin)
        return NULL; /* late, or no mapping: the owner asks instead */
    const sfl_route *rt = sfl_routes_get(lim->routes, h->account);
    const sfl_login *lg = !rt        ? NULL
                          : h->login ? sfl_route_login(rt, h->login, NULL)
                                     : rt->logins[0];
    if (!lg)
        return NULL; /* a login this node does not route the account through: ask */
    sfl_lease *l = lease_new(lim, h->account, lg->id, h->ticket, label ? label : "");
    if (l)
        l->takeover = evtimer_new(lim->base, on_takeover, l);
    if (!l || !l->takeover) {
        if (l) {
            lease_unlink(l);
            lease_free(l);
            lim->stats.acquired--;
        }
        return NULL;
    }
    l->fence = h->fence;
    l->local_deadline_ms = local;
    l->wait_ms = wait_since_ms >= 0 ? now - wait_since_ms : 0;
    sfl_timer_in(l->safety, local - margin - now);
    sfl_timer_in(l->takeover, lim->opts.short_holds ? (local - margin - now) / TAKEOVER_PART : 0);
    lim->stats.claimed++;
    sfl_limiter_emit_lease(lim, SFL_LIM_GRANT, l, NULL);
    return l;
}

/*--- Store events ----------------------------------------------------------*/

static void retake_done(sfl_lease *l)
{
    if (!l->retaking)
        return;
    l->retaking = 0;
    sfl_limiter *lim = l->lim;
    if (--lim->retaking > 0)
        return;
    for (sfl_wait *w = lim->waits; w; w = w->next)
        if (!w->inflight)
            sfl_timer_in(w->timer, 0);
}

void sfl_limiter_on_ready(sfl_limiter *lim)
{
    lim->clock_known = 0; /* maybe another Redis, with another clock */
    sfl_limiter_flush_releases(lim);
    /* Re-take held leases before any new ask. */
    lim->retaking = 0;
    for (sfl_lease *l = lim->leases; l; l = l->next)
        if (!l->lost && l->inflight == 0) {
            l->retaking = 1;
            lim->retaking++;
        }
    sfl_lease *next;
    for (sfl_lease *l = lim->leases; l; l = next) {
        next = l->next;
        if (l->retaking)
            renew_one(l);
    }
    if (lim->retaking == 0)
        for (sfl_wait *w = lim->waits; w; w = w->next)
            if (!w->inflight)
                sfl_timer_in(w->timer, 0);
    /* No ask is held back now: the old connection answered every release
     * it carried (with NULL when it went), and each answer resumed them. */
}

void sfl_limiter_on_down(sfl_limiter *lim)
{
    lim->clock_known = 0;
    sfl_warn("redis connection lost; %d lease(s) held, stopped before their deadlines if it "
             "does not come back",
             lim->nleases);
}

/* "! <lease id>" (others.lua): viewers need that lease's slot; its check
 * stops at once. */
static void on_preempt(sfl_limiter *lim, const char *id)
{
    for (sfl_lease *l = lim->leases; l; l = l->next)
        if (strcmp(l->id, id) == 0 && !l->lost) {
            l->gone = 1;
            l->preempted = 1;
            lease_lose(l, "preempted: others' connections need its slot");
            return;
        }
}

void sfl_limiter_on_released(sfl_limiter *lim, const char *msg)
{
    if (msg[0] == '!' && msg[1] == ' ') {
        on_preempt(lim, msg + 2);
        return;
    }
    /* "<account>": a slot is free for anyone; "<account> <ticket> <deadline>
     * <fence> [<login>]": it was handed to that ticket (on that login of an
     * account of several), and only its owner needs to act: start on it if
     * the deadline allows, else ask. */
    char *end;
    sfl_handoff h = {.account = strtoll(msg, &end, 10)};
    if (end == msg)
        return;
    char ticket[ID_LEN], login[SFL_LOGIN_ID_LEN];
    if (*end == ' ') {
        const char *t = end + 1;
        size_t n = strcspn(t, " ");
        if (n == 0 || n >= sizeof(ticket))
            return;
        memcpy(ticket, t, n);
        ticket[n] = '\0';
        h.ticket = ticket;
        int got = 0;
        if (t[n] == ' ')
            got = sscanf(t + n + 1, "%" SCNd64 " %lld %64s", &h.deadline_ms, &h.fence, login);
        if (got < 2)
            h.deadline_ms = 0;
        if (got == 3)
            h.login = login;
    }
    sfl_limiter_waits_on_handoff(lim, &h);
    if (lim->release_seen)
        lim->release_seen(&h, lim->release_seen_arg);
}

/*--- Lifecycle -------------------------------------------------------------*/

sfl_limiter *sfl_limiter_new(struct event_base *base, sfl_store *store,
                             const sfl_limiter_opts *opts)
{
    sfl_limiter *lim = calloc(1, sizeof(*lim));
    if (!lim)
        return NULL;
    lim->base = base;
    lim->store = store;
    lim->opts = *opts;
    if (lim->opts.recovery_ms < 0)
        lim->opts.recovery_ms = lim->opts.ttl_ms;
    if (lim->opts.fallback_ms <= 0)
        lim->opts.fallback_ms = 1000;
    if (lim->opts.ticket_ttl_ms <= 0)
        lim->opts.ticket_ttl_ms = 3 * lim->opts.fallback_ms + 1000;
    if (lim->opts.handoff_ms <= 0)
        lim->opts.handoff_ms = SFL_HANDOFF_MS;
    rng_state ^= sfl_random64();
    lim->routes = sfl_routes_new(sfl_store_ns(store));
    lim->node_id = strdup(opts->node_id ? opts->node_id : "node");
    snprintf(lim->channel, sizeof(lim->channel), "%s:released", sfl_store_ns(store));
    lim->renew_timer = event_new(base, -1, EV_PERSIST, on_renew_tick, lim);
    if (!lim->node_id || !lim->renew_timer || !lim->routes || sfl_limiter_releases_init(lim) < 0) {
        sfl_limiter_free(lim);
        return NULL;
    }
    sfl_timer_in(lim->renew_timer, lim->opts.renew_ms);
    return lim;
}

void sfl_limiter_release_all(sfl_limiter *lim)
{
    while (lim->waits)
        sfl_wait_cancel(lim->waits);
    while (lim->leases)
        sfl_lease_release(lim->leases);
}

void sfl_limiter_free(sfl_limiter *lim)
{
    if (!lim)
        return;
    sfl_limiter_waits_free(lim);
    while (lim->leases) {
        sfl_lease *l = lim->leases;
        lease_unlink(l);
        lease_free(l);
    }
    sfl_limiter_releases_free(lim);
    if (lim->renew_timer)
        event_free(lim->renew_timer);
    sfl_routes_free(lim->routes);
    free(lim->node_id);
    free(lim);
}

int sfl_limiter_held(const sfl_limiter *lim)
{
    return lim->nleases;
}

int sfl_limiter_held_for(const sfl_limiter *lim, long long account)
{
    int n = 0;
    for (const sfl_lease *l = lim->leases; l; l = l->next)
        n += l->account == account && !l->lost;
    return n;
}

void sfl_limiter_each_held(const sfl_limiter *lim,
                           void (*fn)(long long account, int held, void *arg), void *arg)
{
    for (const sfl_lease *l = lim->leases; l; l = l->next) {
        if (l->lost)
            continue;
        int first = 1; /* the account's first live lease in the list */
        for (const sfl_lease *e = lim->leases; e != l && first; e = e->next)
            first = !(e->account == l->account && !e->lost);
        if (first)
            fn(l->account, sfl_limiter_held_for(lim, l->account), arg);
    }
}

void sfl_limiter_get_stats(const sfl_limiter *lim, sfl_limiter_stats *out)
{
    *out = lim->stats;
}
