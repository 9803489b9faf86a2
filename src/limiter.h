/* limiter.h - leases of provider accounts, held through Redis.
 *
 * A wait asks for one slot of an account until it is granted or its time is
 * up; a lease is a granted slot that the limiter renews until it is released
 * or lost. The limiter is driven by the store's events, which its owner
 * forwards (sfl_limiter_on_ready / on_down / on_released). */
#ifndef SFL_LIMITER_H
#define SFL_LIMITER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct sfl_store sfl_store;
typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_routes sfl_routes;
typedef struct sfl_limiter sfl_limiter;
typedef struct sfl_lease sfl_lease;
typedef struct sfl_wait sfl_wait;

typedef struct sfl_limiter_opts {
    const char *node_id;
    int64_t ttl_ms;        /* lease TTL in Redis */
    int64_t renew_ms;      /* renewal period */
    int64_t safety_ms;     /* stop a check this long before its local deadline */
    int64_t recovery_ms;   /* window opened when the epoch marker is missing; default ttl_ms */
    int64_t fallback_ms;   /* longest wait between two asks when denied (pub/sub can drop
                              messages); default 1000 */
    int64_t ticket_ttl_ms; /* a waiting ticket lives this long unless asked again; default
                              3 * fallback_ms + 1000 */
    int64_t handoff_ms;    /* a slot handed to a ticket is held this long for its node to
                              take it over (it starts on the announcement and takes the
                              lease over at once): a dead node's ticket keeps a freed
                              slot no longer than this; default SFL_HANDOFF_MS */
    int short_holds;       /* holders may give a slot back within a third of a hand-off's
                              hold (the lease benchmark's): a slot claimed on a hand-off
                              is taken over only that far into the hold, so such a
                              holder needs no take-over. 0 (checks, exec, the sidecar
                              API: seconds and more): at once, with the whole hold left
                              for the take-over's round trip */
} sfl_limiter_opts;

#define SFL_HANDOFF_MS 250

typedef enum {
    SFL_WAIT_GRANTED = 0,
    SFL_WAIT_TIMEOUT,         /* no slot in time */
    SFL_WAIT_UNKNOWN_ACCOUNT, /* Redis has no max_streams for it and none was hinted */
} sfl_wait_status;

/* lease is set only when granted; it then belongs to the caller, who must
 * sfl_lease_release it. The sfl_wait is freed after the callback returns. */
typedef void sfl_wait_fn(sfl_wait *w, sfl_wait_status status, sfl_lease *lease, void *arg);
/* The lease can no longer be trusted: stop what it protects, then release it
 * (releasing it from inside this callback is allowed). */
typedef void sfl_lease_lost_fn(sfl_lease *lease, const char *why, void *arg);

sfl_limiter *sfl_limiter_new(struct event_base *base, sfl_store *store,
                             const sfl_limiter_opts *opts);
/* Held leases are forgotten (not released: they expire); call
 * sfl_limiter_release_all first for a clean stop. Free the store first: its
 * pending callbacks still reach the limiter. NULL is a no-op. */
void sfl_limiter_free(sfl_limiter *lim);

/* Forward the store's events here. */
void sfl_limiter_on_ready(sfl_limiter *lim);
void sfl_limiter_on_down(sfl_limiter *lim);
void sfl_limiter_on_released(sfl_limiter *lim, const char *msg);

/* The accounts' logins (routes.h): which logins a check of each goes
 * through, with their limits (used to restore conf if Redis lost it).
 * Accounts not set here have one login, the account id. 0, or -1 with err
 * (sfl_routes_set). */
int sfl_limiter_set_accounts(sfl_limiter *lim, const sfl_account_conf *accs, size_t n, char *err,
                             size_t errlen);
/* The route table, for whoever turns a lease into a URL or shows logins. */
sfl_routes *sfl_limiter_routes(const sfl_limiter *lim);
/* The limit this node believes an account of one login has (from an answer,
 * say): used to restore conf if Redis lost it. Ignored for an account of
 * several logins (set them with sfl_limiter_set_accounts). */
void sfl_limiter_hint_limit(sfl_limiter *lim, long long account, long long max_streams);
/* The account's limit as this node knows it: the sum of its logins' (0 if
 * one is unlimited); -1 if one was never seen. */
long long sfl_limiter_known_limit(const sfl_limiter *lim, long long account);

/* Waits for one slot of account; timeout_ms < 0 waits forever. label names
 * the holder in Redis (a stream id or name, never a URL). The callback is
 * always called from the loop, never from inside this call. */
sfl_wait *sfl_limiter_wait(sfl_limiter *lim, long long account, const char *label,
                           int64_t timeout_ms, sfl_wait_fn *fn, void *arg);
/* No callback after this; a slot granted meanwhile is given back. */
void sfl_wait_cancel(sfl_wait *w);

/* One ask, no waiting: for a caller that runs its own queue (the scheduler). */
typedef enum {
    SFL_TRY_GRANTED = 0,
    SFL_TRY_DENIED,          /* full (or recovering): retry_ms says when to ask again */
    SFL_TRY_UNKNOWN_ACCOUNT, /* no max_streams in Redis, none hinted */
    SFL_TRY_FAILED,          /* no answer (Redis went away) or an error */
} sfl_try_status;

typedef struct sfl_try_result {
    sfl_try_status status;
    sfl_lease *lease; /* GRANTED: the caller's, to sfl_lease_release */
    int64_t retry_ms; /* DENIED */
    long long in_use;
    long long limit;
    const char *error; /* FAILED: a Redis error; UNKNOWN_ACCOUNT: why. Valid during the callback */
} sfl_try_result;

typedef void sfl_try_fn(const sfl_try_result *res, void *arg);
/* Sends one acquire with lease id `id` (NULL: a new one). A denied ask
 * leaves id queued as the node's ticket for the account: ask again with the
 * SAME id to keep its place (and to take over a slot handed to it); use a
 * new id after a grant, to queue behind the others. fn is called exactly
 * once, from the loop. -1 when Redis is not ready or held leases are still
 * being re-taken after a reconnect (fn not called): ask again later. While a
 * release of the account by this limiter is unanswered, the ask is held back
 * until it is (waits likewise); a release still kept for the end of this
 * loop turn (sfl_lease_release) makes the ask itself, in its own script. */
int sfl_limiter_try(sfl_limiter *lim, long long account, const char *label, const char *id,
                    sfl_try_fn *fn, void *arg);
/* Tries in flight whose arg is arg will not call back (a granted slot is
 * given back): for an owner that goes away before Redis answers. */
void sfl_limiter_cancel_tries(sfl_limiter *lim, void *arg);
/* Withdraws a ticket (and any slot already handed to it, which goes on to
 * the next ticket): for an owner that stops waiting. Queued if Redis is away. */
void sfl_limiter_withdraw(sfl_limiter *lim, long long account, const char *id);
/* A fresh lease id / ticket "<node_id>:<16 hex>". */
void sfl_limiter_new_id(const sfl_limiter *lim, char *buf, size_t len);
/* A release announced on sfl:released: "<account>" (a slot is free) or
 * "<account> <ticket> <deadline_ms> <fence>" (the slot was handed to ticket:
 * it is a lease of that id until deadline_ms, Redis time). */
typedef struct sfl_handoff {
    long long account;
    const char *ticket;  /* NULL: the slot is free for anyone */
    const char *login;   /* the login of the slot; NULL: the account's first */
    int64_t deadline_ms; /* Redis time; 0 if the message had none */
    long long fence;
} sfl_handoff;
/* fn is told of every release announced for an account (after the waits,
 * which take hand-offs to their own tickets themselves). */
void sfl_limiter_on_release_seen(sfl_limiter *lim, void (*fn)(const sfl_handoff *h, void *arg),
                                 void *arg);
/* Starts the lease of a slot handed to h->ticket without asking first: the
 * limiter maps the hand-off's Redis deadline onto its own clock (a lower
 * bound, learnt from the Redis time in its own scripts' answers) and, if
 * enough of it is left, returns a lease that is good at once and takes it
 * over for the full TTL in the background (lost if that fails). NULL when the
 * deadline cannot be shown to be far enough ahead (a late announcement, no
 * answer from Redis yet since the last connect) or Redis is away: ask with
 * the ticket instead (sfl_limiter_try), which takes the slot over if it is
 * still held for the ticket. wait_since_ms (monotonic) is when the owner
 * began to wait, for sfl_lease_wait_ms; -1 if unknown. The take-over goes
 * out at once, or a third of the way into the hold (short_holds). */
sfl_lease *sfl_limiter_claim(sfl_limiter *lim, const sfl_handoff *h, const char *label,
                             int64_t wait_since_ms);

void sfl_lease_on_lost(sfl_lease *lease, sfl_lease_lost_fn *fn, void *arg);
/* Gives the slot back (queued if Redis is down) and frees the lease. */
void sfl_lease_release(sfl_lease *lease);
const char *sfl_lease_id(const sfl_lease *lease);
long long sfl_lease_account(const sfl_lease *lease);
/* The id of the login the lease holds a slot of. */
const char *sfl_lease_login(const sfl_lease *lease);
long long sfl_lease_fence(const sfl_lease *lease);
int sfl_lease_is_lost(const sfl_lease *lease);
/* Lost because others' connections (viewers) need its slot: the owner's
 * check gives way (status Preempted) rather than failing. */
int sfl_lease_is_preempted(const sfl_lease *lease);
/* After a loss: how long the owner may take to stop its check, so that it is
 * dead before Redis could hand the slot on. Half the time left to the local
 * deadline; 0 (kill at once) when Redis said the lease is gone, since its slot
 * may already be someone else's. */
int64_t sfl_lease_stop_within_ms(const sfl_lease *lease);
/* ms from the first ask of the wait to the grant. */
int64_t sfl_lease_wait_ms(const sfl_lease *lease);

/* Releases every held lease and cancels every wait. */
void sfl_limiter_release_all(sfl_limiter *lim);
/* What is still owed to Redis or by it before every slot and ticket of
 * this node is given back: releases unanswered or waiting for Redis, and
 * asks whose answer may yet grant a slot (a try, or a cancelled wait in
 * flight: the answer gives it back). 0 when a process may exit. */
int sfl_limiter_pending_releases(const sfl_limiter *lim);
int sfl_limiter_held(const sfl_limiter *lim);
/* Leases held here for one account. */
int sfl_limiter_held_for(const sfl_limiter *lim, long long account);
/* Calls fn once per account with leases held here (scheduler's and sidecar
 * clients' alike), with their count. */
void sfl_limiter_each_held(const sfl_limiter *lim,
                           void (*fn)(long long account, int held, void *arg), void *arg);

/*--- Events, for an observer (history.c) ----------------------------------*/

typedef enum {
    SFL_LIM_GRANT = 0, /* a lease began: an ask granted, or a hand-off claimed */
    SFL_LIM_DENY,      /* an ask was denied (its ticket queued) */
    SFL_LIM_LOST,      /* a held lease was lost (its owner stops what it protects) */
    SFL_LIM_RELEASE,   /* a lease was given back (lost or not): it is no longer held */
    SFL_LIM_WAIT,      /* a wait (sfl_limiter_wait) ended, granted or not: wait_ms */
} sfl_limiter_event_kind;

typedef struct sfl_limiter_event {
    sfl_limiter_event_kind kind;
    long long account;
    const char *login;    /* GRANT, LOST, RELEASE, a granted WAIT: the lease's login; else NULL
                             (the account's logins: sfl_limiter_routes) */
    const char *lease_id; /* GRANT, LOST, RELEASE, a granted WAIT; NULL otherwise */
    long long in_use;     /* GRANT, DENY: the account's in use as the answer gave it; -1 unknown
                             (a claimed hand-off) */
    long long limit;      /* GRANT, DENY: as the answer gave it; -1 unknown */
    long long position;   /* DENY: the ticket's place in the queue (1 = next), 0 if none */
    int64_t wait_ms;      /* WAIT: from the wait's start to its end; -1 otherwise, and for a
                             wait that ended on an account without a limit (no real wait) */
    int granted;          /* WAIT: 1 if it ended with a lease */
} sfl_limiter_event;

/* Called from the limiter at each event, from the loop; the event and its
 * strings are valid during the call only. The observer must not call back
 * into the limiter. */
typedef void sfl_limiter_event_fn(const sfl_limiter_event *ev, void *arg);
/* One observer (fn NULL: none). */
void sfl_limiter_on_event(sfl_limiter *lim, sfl_limiter_event_fn *fn, void *arg);

typedef struct sfl_limiter_stats {
    uint64_t acquired, denied, lost, renew_failed, retaken, released;
    uint64_t claimed;          /* of acquired: started on a hand-off announcement (no ask) */
    uint64_t asked_in_release; /* asks made by the script of a release of ours (release.lua) */
} sfl_limiter_stats;
void sfl_limiter_get_stats(const sfl_limiter *lim, sfl_limiter_stats *out);

#endif
