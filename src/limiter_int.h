/* limiter_int.h - the limiter's insides, shared by its two files and no one
 * else: limiter.c (leases: holding, renewing, releasing, losing; the store's
 * events; Redis time on the local clock) and wait.c (asking for slots:
 * waits, one-shot tries, hand-offs to them). Everyone else uses limiter.h. */
#ifndef SFL_LIMITER_INT_H
#define SFL_LIMITER_INT_H

#include "limiter.h"

#include "lease_script.h"
#include "routes.h"

#include <stdint.h>

struct event;
typedef struct sfl_idmap sfl_idmap;

#define ID_LEN 96
#define LABEL_LEN 128
#define NOT_READY_RETRY_MS 100
struct sfl_lease {
    sfl_limiter *lim;
    long long account;
    char login[SFL_LOGIN_ID_LEN]; /* the login it holds a slot of */
    char id[ID_LEN];
    char label[LABEL_LEN];
    long long fence;
    int64_t local_deadline_ms;
    int64_t wait_ms;
    int lost;
    int gone;         /* Redis said it no longer holds the lease */
    int preempted;    /* ... because others' connections need the slot (others.lua) */
    int released;     /* owner let go; freed when no reply is owed */
    int release_sent; /* ... and the release went out behind every reply owed */
    int inflight;     /* renew replies owed */
    int retaking;     /* counted in lim->retaking */
    struct event *safety;
    struct event *takeover; /* a hand-off's take-over, due later (NULL: none) */
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
    int again; /* a release came while an ask was in flight */
    int cancelled;
    int uncertain; /* an ask's answer was lost: the id may hold a slot */
    int asked;     /* an ask went out: the id may be queued as a ticket */
    int deferred;  /* its ask waits for a release of ours of the account */
    sfl_wait *prev, *next;
};

/* An ask of sfl_limiter_try (the scheduler's): in flight, held back
 * behind a release of its account (deferred), or riding in a release that
 * goes out at the end of the loop turn (release.lua's next ask). */
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

struct sfl_limiter {
    struct event_base *base;
    sfl_store *store;
    sfl_limiter_opts opts;
    char *node_id;
    char channel[128];
    sfl_lease *leases;
    int nleases;
    sfl_wait *waits;
    try_ctx *tries;      /* in flight, deferred or riding in a release */
    int waits_abandoned; /* cancelled waits whose ask is still in flight */
    int retaking;        /* re-takes owed after a reconnect: new asks wait for them */
    struct event *renew_timer;
    sfl_routes *routes; /* accounts -> logins -> keys, and each login's limit last seen */
    struct pending_release *to_release;
    int releases_owed;
    struct release_ctx *sent_head, *sent_tail; /* releases sent, in order, unanswered */
    struct event *flush;                       /* sends the releases kept back for the loop turn */
    void (*release_seen)(const sfl_handoff *h, void *arg);
    void *release_seen_arg;
    /* Redis time -> local: local(X) >= X + clock_off - drift(X - clock_at). */
    int clock_known;
    int64_t clock_off, clock_at;
    sfl_limiter_stats stats;
    sfl_limiter_event_fn *event_fn; /* the observer (limiter_events.c), or NULL */
    void *event_arg;
};

/*--- limiter.c and release.c, for wait.c -------------------------------------*/

/* The next number of the limiter's id and jitter sequence. */
uint64_t sfl_limiter_rand(void);
/* Sends acquire.lua over the account's logins (ticket_ttl > 0: a denial
 * queues the id), or with login set renew.lua on that login of the account,
 * for id; 0 or -1 as sfl_store_eval (-1 too when the login is no longer in
 * the account's route). */
int sfl_limiter_send(sfl_limiter *lim, long long account, const char *login, const char *id,
                     const char *label, int64_t ticket_ttl, sfl_store_reply_fn *fn, void *arg);
/* Learns Redis time from an answer to a script sent at local sent_ms. */
void sfl_limiter_clock_from_answer(sfl_limiter *lim, int64_t sent_ms, const sfl_lease_answer *a);
/* 1 while a release of account sent by this limiter is unanswered. */
int sfl_limiter_release_in_flight(const sfl_limiter *lim, long long account);
/* Gives back id (a lease or a ticket) on that login of the account, or on
 * every login of it when login is NULL (a ticket may hold a slot handed to
 * it on any): 1 sent now, 0 queued until Redis is back. */
int sfl_limiter_release_id(sfl_limiter *lim, long long account, const char *login, const char *id);
/* A granted acquire answer becomes a held lease, its local deadline counted
 * from asked_ms. NULL when out of memory. */
sfl_lease *sfl_limiter_lease_add(sfl_limiter *lim, long long account, const char *id,
                                 const char *label, int64_t asked_ms, const sfl_lease_answer *a);

/*--- release.c, for limiter.c -------------------------------------------------*/

/* The event that sends releases kept for the loop turn: 0, or -1. */
int sfl_limiter_releases_init(sfl_limiter *lim);
/* Frees what no answer will come for (sfl_limiter_free). */
void sfl_limiter_releases_free(sfl_limiter *lim);
/* Keeps l's release for the end of the loop turn, where a wait of its
 * account started meanwhile rides in it: 1 if kept (counted in flight from
 * now), 0 if it must go by sfl_limiter_release_id. */
int sfl_limiter_release_later(sfl_limiter *lim, const sfl_lease *l);
/* Sends the releases that waited for Redis to come back. */
void sfl_limiter_flush_releases(sfl_limiter *lim);

/* A release of w's (t's) account that goes out at the end of this loop
 * turn makes its ask too (release.lua's next ask): 1 if one took it (its
 * answer comes to sfl_limiter_wait_next_answer, sfl_limiter_try_next_answer),
 * 0 if none can. */
int sfl_limiter_release_take_ask(sfl_limiter *lim, sfl_wait *w);
int sfl_limiter_release_take_try(sfl_limiter *lim, try_ctx *t);

/*--- wait.c, for limiter.c ---------------------------------------------------*/

/* The answer to a wait's ask made by a release (sent 1), or the release
 * that was to make it not sent (sent 0, r NULL); frees a cancelled wait. */
void sfl_limiter_wait_next_answer(sfl_wait *w, struct redisReply *r, int sent);
/* The same for a try (not made: held back for sfl_limiter_resume_deferred,
 * which the caller runs next); a try whose release is dropped unsent at
 * teardown is freed by sfl_limiter_try_forget (no callback). */
void sfl_limiter_try_next_answer(try_ctx *t, struct redisReply *r, int sent);
void sfl_limiter_try_forget(try_ctx *t);

/* Sends the asks held back behind a release of account, once none is owed. */
void sfl_limiter_resume_deferred(sfl_limiter *lim, long long account);
/* A release announced for h->account: the wait whose ticket got the slot
 * starts on it (or asks), the others of the account ask again. */
void sfl_limiter_waits_on_handoff(sfl_limiter *lim, const sfl_handoff *h);
/* Frees every wait without a callback (sfl_limiter_free). */
void sfl_limiter_waits_free(sfl_limiter *lim);

/*--- limiter_events.c, for both ---------------------------------------------*/

/* Tells the observer, if any, of kind on lease l (GRANT, LOST, RELEASE);
 * a: the answer that granted it, or NULL. */
void sfl_limiter_emit_lease(sfl_limiter *lim, sfl_limiter_event_kind kind, const sfl_lease *l,
                            const sfl_lease_answer *a);
/* ... of an ask of account denied with answer a (DENY), or of a wait's end
 * (WAIT: a NULL, wait_ms, and the lease it got or NULL). */
void sfl_limiter_emit_ask(sfl_limiter *lim, sfl_limiter_event_kind kind, long long account,
                          const sfl_lease_answer *a, int64_t wait_ms, const sfl_lease *granted);

#endif
