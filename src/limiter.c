/* limiter.c - waits for slots, holds leases, renews them, notices losses.
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
 * still ahead on its own clock, and takes the lease over for the full TTL in
 * the same moment; the safety timer stops it in time if the take-over is not
 * confirmed. Redis time maps onto the monotonic clock as a lower bound: a
 * script's answer carries Redis's TIME, read after the ask was sent, so
 * local(X) >= X + (sent - redis_now - 1), less the allowed rate drift for the
 * span from that answer to X. A late announcement, or one before any answer,
 * falls back to asking with the ticket (one more round trip).
 *
 * Waiting never blocks and never polls: a denied wait sleeps until a
 * "released" message for its account, or the retry hint from acquire.lua
 * (capped by fallback_ms, since pub/sub may drop messages), plus jitter.
 * An ask keeps one lease id for its whole wait, so a lost answer followed by
 * another ask cannot take two slots; a wait that gives up after an ask of
 * unknown outcome releases that id to be sure.
 *
 * This file must never start or stop checks itself: it tells its owner.
 */
#include "limiter.h"

#include "clock.h"
#include "idmap.h"
#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_LEN 96
#define LABEL_LEN 128
#define NOT_READY_RETRY_MS 100
#define DRIFT_PPM 1000         /* clock rate difference allowed between Redis and here */
#define CLOCK_MAX_SPAN_MS 60000 /* a mapping is trusted this far from its answer */

struct sfl_lease {
    sfl_limiter *lim;
    long long account;
    char id[ID_LEN];
    char label[LABEL_LEN];
    long long fence;
    int64_t local_deadline_ms;
    int64_t wait_ms;
    int lost;
    int gone;      /* Redis said it no longer holds the lease */
    int released;  /* owner let go; freed when no reply is owed */
    int release_sent; /* ... and the release went out behind every reply owed */
    int inflight;  /* renew replies owed */
    int retaking;  /* counted in lim->retaking */
    struct event *safety;
    sfl_lease_lost_fn *lost_fn;
    void *lost_arg;
    sfl_lease *prev, *next;
};

struct sfl_wait {
    sfl_limiter *lim;
    long long account;
    char id[ID_LEN];
    char label[LABEL_LEN];
    int64_t started_ms;
    int64_t asked_ms;    /* when the ask in flight was sent */
    int64_t deadline_ms; /* -1: none */
    sfl_wait_fn *fn;
    void *arg;
    struct event *timer;
    int inflight;
    int again;     /* a release came while an ask was in flight */
    int cancelled;
    int uncertain; /* an ask's answer was lost: the id may hold a slot */
    int asked;     /* an ask went out: the id may be queued as a ticket */
    int deferred;  /* its ask waits for a release of ours of the account */
    sfl_wait *prev, *next;
};

typedef struct renew_ctx {
    sfl_lease *lease;
    int64_t sent_ms;
} renew_ctx;

struct sfl_limiter {
    struct event_base *base;
    sfl_store *store;
    sfl_limiter_opts opts;
    char *node_id;
    char channel[128];
    sfl_lease *leases;
    int nleases;
    sfl_wait *waits;
    struct try_ctx *tries; /* in flight */
    int retaking; /* re-takes owed after a reconnect: new asks wait for them */
    struct event *renew_timer;
    sfl_idmap *known; /* account -> long long: the limit last seen */
    struct pending_release *to_release;
    int releases_owed;
    struct release_ctx *sent_head, *sent_tail; /* releases sent, in order, unanswered */
    void (*release_seen)(const sfl_handoff *h, void *arg);
    void *release_seen_arg;
    /* Redis time -> local: local(X) >= X + clock_off - drift(X - clock_at). */
    int clock_known;
    int64_t clock_off, clock_at;
    sfl_limiter_stats stats;
};

typedef struct pending_release {
    long long account;
    char id[ID_LEN];
    struct pending_release *next;
} pending_release;

/*--- Helpers ---------------------------------------------------------------*/

/* Lease ids and jitter come from splitmix64 (a bijection of a 64-bit
 * counter), reseeded from the system with every limiter made: one getrandom
 * per limiter, not one per ask. Ids are also prefixed with the node id. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void sfl_account_key(char *buf, size_t len, const char *ns, long long account, const char *suffix)
{
    snprintf(buf, len, "%s:{a:%lld}:%s", ns, account, suffix);
}

static long long rep_int(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

static const char *rep_str(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_STRING)
        return "";
    return r->element[i]->str;
}

static void timer_in(struct event *ev, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* The keys of one account, in the order every lease script takes them. */
#define NKEYS 6
static void account_keys(const sfl_limiter *lim, long long account, char keys[NKEYS][160])
{
    static const char *const suffix[NKEYS] = {"leases", "holders", "conf",
                                              "fence",  "waiters", "waiters:exp"};
    for (int i = 0; i < NKEYS; i++)
        sfl_account_key(keys[i], 160, sfl_store_ns(lim->store), account, suffix[i]);
}

void sfl_limiter_hint_limit(sfl_limiter *lim, long long account, long long max_streams)
{
    long long *k = sfl_idmap_get(lim->known, account);
    if (!k) {
        k = malloc(sizeof(*k));
        if (!k || sfl_idmap_put(lim->known, account, k) < 0) {
            free(k);
            return; /* only a hint */
        }
    }
    *k = max_streams;
}

long long sfl_limiter_known_limit(const sfl_limiter *lim, long long account)
{
    long long *k = sfl_idmap_get(lim->known, account);
    return k ? *k : -1;
}

/* Sends acquire.lua or renew.lua for (account, id). */
static int send_lease_script(sfl_limiter *lim, const char *script, long long account,
                             const char *id, const char *label, int64_t ticket_ttl,
                             sfl_store_reply_fn *fn, void *arg)
{
    char keys[NKEYS][160];
    account_keys(lim, account, keys);
    const char *kv[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        kv[i] = keys[i];
    char ttl[24], known[24], recovery[24], ticket[24], acc[24], handoff[24];
    snprintf(ttl, sizeof(ttl), "%" PRId64, lim->opts.ttl_ms);
    snprintf(known, sizeof(known), "%lld", sfl_limiter_known_limit(lim, account));
    snprintf(recovery, sizeof(recovery), "%" PRId64, lim->opts.recovery_ms);
    snprintf(ticket, sizeof(ticket), "%" PRId64, ticket_ttl);
    snprintf(acc, sizeof(acc), "%lld", account);
    snprintf(handoff, sizeof(handoff), "%" PRId64, lim->opts.handoff_ms);
    const char *av[10] = {id,       ttl,    lim->node_id, label, known,
                          recovery, ticket, lim->channel, acc,   handoff};
    if (strcmp(script, "renew") == 0)
        return sfl_store_eval(lim->store, script, 4, kv, 6, av, fn, arg);
    return sfl_store_eval(lim->store, script, NKEYS, kv, 10, av, fn, arg);
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

/* The answer of an acquire/renew sent at sent_ms: granted and renewed ones
 * give deadline = now + ttl, denials of acquire.lua give now last. */
static void clock_from_reply(sfl_limiter *lim, int64_t sent_ms, const redisReply *r)
{
    long long status = rep_int(r, 0);
    if ((status == 1 || status == 2) && r->elements >= 3)
        clock_sample(lim, sent_ms, rep_int(r, 2) - lim->opts.ttl_ms);
    else if (status == 0 && r->elements >= 7)
        clock_sample(lim, sent_ms, rep_int(r, 6));
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

/*--- Releases --------------------------------------------------------------*/

/* An ask for an account goes out only after the releases of it that this
 * node sent before: the release runs and announces its hand-off without
 * waiting for an ask queued behind it on the same connection (Redis answers
 * a whole pipeline before it writes), and an ask right after our own release
 * would only queue behind the ticket the slot went to. */
typedef struct release_ctx {
    sfl_limiter *lim;
    long long account;
    struct release_ctx *next;
} release_ctx;

static int release_in_flight(const sfl_limiter *lim, long long account)
{
    for (const release_ctx *c = lim->sent_head; c; c = c->next)
        if (c->account == account)
            return 1;
    return 0;
}

static void resume_deferred(sfl_limiter *lim, long long account);
static void wait_attempt(sfl_wait *w);

static void release_answered(sfl_limiter *lim, const redisReply *r)
{
    lim->releases_owed--;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        lim->stats.released++;
}

static void on_release_reply(sfl_store *st, redisReply *r, void *arg)
{
    release_ctx *c = arg;
    sfl_limiter *lim = c->lim;
    UNUSED(st);
    release_answered(lim, r);
    /* Answers come in the order sent: c is the head. */
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
    long long account = c->account;
    free(c);
    /* Also when the connection is gone (r NULL): a deferred ask then fails
     * as one in flight would, and its owner tries again later. */
    resume_deferred(lim, account);
}

static void on_release_reply_untracked(sfl_store *st, redisReply *r, void *arg)
{
    UNUSED(st);
    release_answered(arg, r);
}

/* 1 if the release went out now, 0 if it waits for Redis to come back. */
static int release_id(sfl_limiter *lim, long long account, const char *id)
{
    char keys[NKEYS][160];
    account_keys(lim, account, keys);
    const char *kv[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        kv[i] = keys[i];
    char acc[24], handoff[24];
    snprintf(acc, sizeof(acc), "%lld", account);
    snprintf(handoff, sizeof(handoff), "%" PRId64, lim->opts.handoff_ms);
    const char *av[4] = {id, lim->channel, acc, handoff};
    release_ctx *c = malloc(sizeof(*c));
    int rc;
    lim->releases_owed++;
    if (c) {
        *c = (release_ctx){lim, account, NULL};
        rc = sfl_store_eval(lim->store, "release", NKEYS, kv, 4, av, on_release_reply, c);
        if (rc == 0) {
            if (lim->sent_tail)
                lim->sent_tail->next = c;
            else
                lim->sent_head = c;
            lim->sent_tail = c;
            return 1;
        }
        free(c);
    } else {
        rc = sfl_store_eval(lim->store, "release", NKEYS, kv, 4, av, on_release_reply_untracked,
                            lim);
        if (rc == 0)
            return 1;
    }
    lim->releases_owed--;
    /* Redis is away: give it back when it returns (or let the TTL do it). */
    pending_release *p = calloc(1, sizeof(*p));
    if (!p)
        return 0;
    p->account = account;
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->next = lim->to_release;
    lim->to_release = p;
    return 0;
}

static void flush_releases(sfl_limiter *lim)
{
    pending_release *p = lim->to_release;
    lim->to_release = NULL;
    while (p) {
        pending_release *next = p->next;
        release_id(lim, p->account, p->id);
        free(p);
        p = next;
    }
}

/*--- Leases ----------------------------------------------------------------*/

static void lease_unlink(sfl_lease *l)
{
    sfl_limiter *lim = l->lim;
    if (l->prev)
        l->prev->next = l->next;
    else if (lim->leases == l)
        lim->leases = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    lim->nleases--;
}

static void lease_free(sfl_lease *l)
{
    if (l->safety)
        event_free(l->safety);
    free(l);
}

static void lease_lose(sfl_lease *l, const char *why)
{
    if (l->lost || l->released)
        return;
    l->lost = 1;
    evtimer_del(l->safety);
    l->lim->stats.lost++;
    sfl_warn("lease %s of account %lld lost: %s", l->id, l->account, why);
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
    timer_in(l->safety, l->local_deadline_ms - l->lim->opts.safety_ms - sfl_mono_ms());
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
    if (r && r->type == REDIS_REPLY_ARRAY)
        clock_from_reply(lim, sent, r);
    if (l->released) {
        if (l->inflight == 0) {
            /* A re-take (or take-over) may have recreated it after a release
             * that had to wait for Redis: give it back again. A release sent
             * behind it on the same connection already took it. */
            if (r && rep_int(r, 0) > 0 && !l->release_sent)
                release_id(lim, l->account, l->id);
            lease_free(l);
        }
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        lim->stats.renew_failed++;
        if (r && r->type == REDIS_REPLY_ERROR)
            sfl_warn("renew of %s: %s", l->id, r->str);
        retake_done(l);
        return; /* the safety timer decides */
    }
    long long status = rep_int(r, 0);
    if (status == 1 || status == 2) {
        if (l->lost) {
            /* Declared lost meanwhile; its check is being stopped. Do not
             * keep a slot nobody uses. */
            release_id(lim, l->account, l->id);
        } else {
            if (status == 2) {
                lim->stats.retaken++;
                sfl_info("lease %s of account %lld re-taken (fence %lld)", l->id, l->account,
                         rep_int(r, 1));
            }
            lease_confirm(l, sent, rep_int(r, 1));
            sfl_limiter_hint_limit(lim, l->account, rep_int(r, 4));
        }
    } else {
        lim->stats.renew_failed++;
        char why[96];
        snprintf(why, sizeof(why), "gone from Redis and no room to re-take (%s)",
                 r->elements > 4 ? rep_str(r, 4) : rep_str(r, 1)); /* acquire.lua or renew.lua */
        retake_done(l);
        l->gone = 1;
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
    if (send_lease_script(l->lim, "renew", l->account, l->id, l->label, 0, on_renew_reply, ctx) <
        0) {
        free(ctx);
        retake_done(l);
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
    lease_unlink(l);
    evtimer_del(l->safety);
    retake_done(l);
    l->released = 1;
    l->release_sent = release_id(lim, l->account, l->id);
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

long long sfl_lease_fence(const sfl_lease *l)
{
    return l->fence;
}

int sfl_lease_is_lost(const sfl_lease *l)
{
    return l->lost;
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
static sfl_lease *lease_new(sfl_limiter *lim, long long account, const char *id,
                            const char *label)
{
    sfl_lease *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->lim = lim;
    l->account = account;
    snprintf(l->id, sizeof(l->id), "%s", id);
    snprintf(l->label, sizeof(l->label), "%s", label);
    l->safety = evtimer_new(lim->base, on_safety, l);
    if (!l->safety) {
        free(l);
        return NULL;
    }
    l->next = lim->leases;
    if (lim->leases)
        lim->leases->prev = l;
    lim->leases = l;
    lim->nleases++;
    lim->stats.acquired++;
    return l;
}

/* A granted acquire.lua answer becomes a held lease. The local deadline
 * counts from asked_ms, when the ask was sent. NULL when out of memory. */
static sfl_lease *lease_add(sfl_limiter *lim, long long account, const char *id,
                            const char *label, int64_t asked_ms, const redisReply *r)
{
    sfl_lease *l = lease_new(lim, account, id, label);
    if (!l)
        return NULL;
    lease_confirm(l, asked_ms, rep_int(r, 1));
    sfl_limiter_hint_limit(lim, account, rep_int(r, 4));
    return l;
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
    sfl_lease *l = lease_new(lim, h->account, h->ticket, label ? label : "");
    renew_ctx *ctx = malloc(sizeof(*ctx));
    if (!l || !ctx) {
        if (l) {
            lease_unlink(l);
            lease_free(l);
            lim->stats.acquired--;
        }
        free(ctx);
        return NULL;
    }
    l->fence = h->fence;
    l->local_deadline_ms = local;
    l->wait_ms = wait_since_ms >= 0 ? now - wait_since_ms : 0;
    timer_in(l->safety, local - margin - now);
    /* The take-over: acquire.lua with the ticket as lease id makes it a full
     * lease (its answer is handled as a renewal's); it never queues. */
    ctx->lease = l;
    ctx->sent_ms = now;
    if (send_lease_script(lim, "acquire", h->account, h->ticket, l->label, 0, on_renew_reply,
                          ctx) < 0) {
        free(ctx);
        lease_unlink(l);
        lease_free(l);
        lim->stats.acquired--;
        return NULL;
    }
    l->inflight++;
    lim->stats.claimed++;
    return l;
}

/*--- One-shot tries --------------------------------------------------------*/

void sfl_limiter_new_id(const sfl_limiter *lim, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%016" PRIx64, lim->node_id, rng_next());
}

typedef struct try_ctx {
    sfl_limiter *lim;
    long long account;
    char id[ID_LEN];
    char label[LABEL_LEN];
    int64_t asked_ms;
    sfl_try_fn *fn; /* NULL once cancelled */
    void *arg;
    int deferred; /* not sent yet: a release of ours of the account is owed */
    struct try_ctx *prev, *next;
} try_ctx;

static void try_unlink(try_ctx *t)
{
    sfl_limiter *lim = t->lim;
    if (t->prev)
        t->prev->next = t->next;
    else if (lim->tries == t)
        lim->tries = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

void sfl_limiter_withdraw(sfl_limiter *lim, long long account, const char *id)
{
    release_id(lim, account, id);
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
        release_id(lim, t->account, t->id);
        free(t);
        return;
    }
    sfl_try_result res = {.status = SFL_TRY_FAILED, .limit = -1};
    long long status = r && r->type == REDIS_REPLY_ARRAY ? rep_int(r, 0) : -2;
    if (status != -2)
        clock_from_reply(lim, t->asked_ms, r);
    if (status == 1) {
        res.lease = lease_add(lim, t->account, t->id, t->label, t->asked_ms, r);
        if (res.lease) {
            res.status = SFL_TRY_GRANTED;
            res.lease->wait_ms = sfl_mono_ms() - t->asked_ms;
            res.in_use = rep_int(r, 3);
            res.limit = rep_int(r, 4);
        } else {
            release_id(lim, t->account, t->id);
        }
    } else if (status == 0) {
        lim->stats.denied++;
        res.status = SFL_TRY_DENIED;
        res.retry_ms = rep_int(r, 1);
        res.in_use = rep_int(r, 2);
        res.limit = rep_int(r, 3);
        sfl_limiter_hint_limit(lim, t->account, res.limit);
    } else if (status == -1) {
        res.status = SFL_TRY_UNKNOWN_ACCOUNT;
    } else {
        if (r && r->type == REDIS_REPLY_ERROR) {
            sfl_warn("acquire for account %lld: %s", t->account, r->str);
            res.error = r->str;
        }
        /* The answer is lost: the ask may have taken a slot. Give it back. */
        release_id(lim, t->account, t->id);
    }
    t->fn(&res, t->arg);
    free(t);
}

static int try_send(try_ctx *t)
{
    t->asked_ms = sfl_mono_ms();
    return send_lease_script(t->lim, "acquire", t->account, t->id, t->label,
                             t->lim->opts.ticket_ttl_ms, on_try_reply, t);
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
        release_id(lim, t->account, t->id); /* its ticket, from an earlier ask */
    } else {
        sfl_try_result res = {.status = SFL_TRY_FAILED, .limit = -1};
        t->fn(&res, t->arg);
    }
    free(t);
}

static void resume_deferred(sfl_limiter *lim, long long account)
{
    if (release_in_flight(lim, account))
        return;
    for (sfl_wait *w = lim->waits; w; w = w->next)
        if (w->deferred && w->account == account) {
            w->deferred = 0;
            wait_attempt(w); /* sends or sleeps; never calls back */
        }
    /* A callback may change the list, and a withdrawal owe a release. */
    while (!release_in_flight(lim, account)) {
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
    t->deferred = release_in_flight(lim, account);
    if (!t->deferred && try_send(t) < 0) {
        free(t);
        return -1;
    }
    t->next = lim->tries;
    if (lim->tries)
        lim->tries->prev = t;
    lim->tries = t;
    return 0;
}

void sfl_limiter_on_release_seen(sfl_limiter *lim,
                                 void (*fn)(const sfl_handoff *h, void *arg), void *arg)
{
    lim->release_seen = fn;
    lim->release_seen_arg = arg;
}

/*--- Waits -----------------------------------------------------------------*/

static void wait_unlink(sfl_wait *w)
{
    sfl_limiter *lim = w->lim;
    if (w->prev)
        w->prev->next = w->next;
    else if (lim->waits == w)
        lim->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
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
    /* Not granted: withdraw the ticket, or a release would hand the slot to
     * a wait that is gone (and it would sit idle until the hand-off time). */
    if (status != SFL_WAIT_GRANTED && (w->asked || w->uncertain))
        release_id(w->lim, w->account, w->id);
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
    timer_in(w->timer, ms);
}

static void on_acquire_reply(sfl_store *st, redisReply *r, void *arg)
{
    sfl_wait *w = arg;
    sfl_limiter *lim = w->lim;
    UNUSED(st);
    w->inflight = 0;
    if (w->cancelled) {
        release_id(lim, w->account, w->id); /* a slot, or a queued ticket */
        wait_free(w);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR)
            sfl_warn("acquire for account %lld: %s", w->account, r->str);
        w->uncertain = 1;
        wait_sleep(w, NOT_READY_RETRY_MS);
        return;
    }
    clock_from_reply(lim, w->asked_ms, r);
    long long status = rep_int(r, 0);
    if (status == 1) {
        sfl_lease *l = lease_add(lim, w->account, w->id, w->label, w->asked_ms, r);
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
    if (status == -1) {
        wait_finish(w, SFL_WAIT_UNKNOWN_ACCOUNT, NULL);
        return;
    }
    lim->stats.denied++;
    w->uncertain = 0;
    sfl_limiter_hint_limit(lim, w->account, rep_int(r, 3));
    if (w->again) {
        w->again = 0;
        wait_attempt(w);
        return;
    }
    int64_t hint = rep_int(r, 1);
    if (hint > lim->opts.fallback_ms)
        hint = lim->opts.fallback_ms;
    int64_t jitter = (int64_t)(rng_next() % (uint64_t)(hint / 10 + 5));
    wait_sleep(w, hint + jitter);
}

static void wait_attempt(sfl_wait *w)
{
    sfl_limiter *lim = w->lim;
    if (w->inflight) {
        w->again = 1;
        return;
    }
    if (release_in_flight(lim, w->account)) {
        w->deferred = 1; /* resume_deferred asks */
        return;
    }
    if (!sfl_store_ready(lim->store) || lim->retaking > 0) {
        /* Held leases come back first; on_ready kicks the waits again. */
        wait_sleep(w, NOT_READY_RETRY_MS * 5);
        return;
    }
    w->asked_ms = sfl_mono_ms();
    if (send_lease_script(lim, "acquire", w->account, w->id, w->label, lim->opts.ticket_ttl_ms,
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
    w->next = lim->waits;
    if (lim->waits)
        lim->waits->prev = w;
    lim->waits = w;
    timer_in(w->timer, 0); /* first ask from the loop, never from inside this call */
    return w;
}

void sfl_wait_cancel(sfl_wait *w)
{
    if (!w)
        return;
    wait_unlink(w);
    evtimer_del(w->timer);
    if (w->inflight) {
        w->cancelled = 1; /* freed when the answer comes */
        return;
    }
    if (w->asked || w->uncertain)
        release_id(w->lim, w->account, w->id);
    wait_free(w);
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
            timer_in(w->timer, 0);
}

void sfl_limiter_on_ready(sfl_limiter *lim)
{
    lim->clock_known = 0; /* maybe another Redis, with another clock */
    flush_releases(lim);
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
                timer_in(w->timer, 0);
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

void sfl_limiter_on_released(sfl_limiter *lim, const char *msg)
{
    /* "<account>": a slot is free for anyone; "<account> <ticket> <deadline>
     * <fence>": it was handed to that ticket, and only its owner needs to
     * act: start on it if the deadline allows, else ask. */
    char *end;
    sfl_handoff h = {.account = strtoll(msg, &end, 10)};
    if (end == msg)
        return;
    char ticket[ID_LEN];
    if (*end == ' ') {
        const char *t = end + 1;
        size_t n = strcspn(t, " ");
        if (n == 0 || n >= sizeof(ticket))
            return;
        memcpy(ticket, t, n);
        ticket[n] = '\0';
        h.ticket = ticket;
        if (t[n] == ' ' && sscanf(t + n + 1, "%" SCNd64 " %lld", &h.deadline_ms, &h.fence) != 2)
            h.deadline_ms = 0;
    }
    for (sfl_wait *w = lim->waits; w; w = w->next) {
        if (w->account != h.account || (h.ticket && strcmp(h.ticket, w->id) != 0))
            continue;
        sfl_lease *l = NULL;
        if (h.ticket && !w->inflight && !w->cancelled)
            l = sfl_limiter_claim(lim, &h, w->label, w->started_ms);
        if (l) {
            w->uncertain = 0;
            wait_finish(w, SFL_WAIT_GRANTED, l);
            break; /* one wait per ticket; the list may have changed */
        }
        wait_attempt(w);
    }
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
    lim->known = sfl_idmap_new();
    lim->node_id = strdup(opts->node_id ? opts->node_id : "node");
    snprintf(lim->channel, sizeof(lim->channel), "%s:released", sfl_store_ns(store));
    lim->renew_timer = event_new(base, -1, EV_PERSIST, on_renew_tick, lim);
    if (!lim->node_id || !lim->renew_timer || !lim->known) {
        sfl_limiter_free(lim);
        return NULL;
    }
    timer_in(lim->renew_timer, lim->opts.renew_ms);
    return lim;
}

void sfl_limiter_release_all(sfl_limiter *lim)
{
    while (lim->waits)
        sfl_wait_cancel(lim->waits);
    while (lim->leases)
        sfl_lease_release(lim->leases);
}

static void free_value(long long id, void *value, void *arg)
{
    UNUSED(id);
    UNUSED(arg);
    free(value);
}

void sfl_limiter_free(sfl_limiter *lim)
{
    if (!lim)
        return;
    while (lim->waits) {
        sfl_wait *w = lim->waits;
        wait_unlink(w);
        wait_free(w);
    }
    while (lim->leases) {
        sfl_lease *l = lim->leases;
        lease_unlink(l);
        lease_free(l);
    }
    while (lim->to_release) {
        pending_release *p = lim->to_release;
        lim->to_release = p->next;
        free(p);
    }
    if (lim->renew_timer)
        event_free(lim->renew_timer);
    if (lim->known) {
        sfl_idmap_each(lim->known, free_value, NULL);
        sfl_idmap_free(lim->known);
    }
    free(lim->node_id);
    free(lim);
}

int sfl_limiter_pending_releases(const sfl_limiter *lim)
{
    int n = lim->releases_owed;
    for (pending_release *p = lim->to_release; p; p = p->next)
        n++;
    return n;
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
