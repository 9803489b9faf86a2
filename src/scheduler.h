/* scheduler.h - decides when each queued check may start on this node. */
#ifndef SFL_SCHEDULER_H
#define SFL_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct sfl_limiter sfl_limiter;
typedef struct sfl_lease sfl_lease;
typedef struct sfl_sched sfl_sched;

/* Account id of custom streams (m3u_account null): never limited, no lease. */
#define SFL_CUSTOM_ACCOUNT (-1LL)

typedef enum {
    SFL_DROP_NOSLOT = 0,     /* no slot of the account within acquire_timeout */
    SFL_DROP_CANCELLED,      /* sfl_sched_cancel */
    SFL_DROP_UNKNOWN_ACCOUNT /* Redis has no limit for the account */
} sfl_drop_reason;

typedef struct sfl_sched_opts {
    int global_limit;           /* checks at once on this node (>= 1) */
    int64_t stagger_ms;         /* at least this long between two starts */
    int64_t acquire_timeout_ms; /* an account without a grant this long: its jobs get NoSlot */
    int64_t fallback_ms;        /* longest sleep of a denied account; default 1000 */
    int64_t handoff_ms;         /* how long a slot handed to us is kept; default 250 */
} sfl_sched_opts;

typedef struct sfl_sched_hooks {
    /* Start the check now. lease is NULL for custom streams, else the
     * caller's (release it when the check ends). Call sfl_sched_done after. */
    void (*start)(void *job, long long account, sfl_lease *lease, int64_t wait_ms, void *arg);
    /* The job will never start. detail: the last Redis error seen for the
     * account (valid during the call), or NULL. waited_ms: from its
     * sfl_sched_add to now. */
    void (*drop)(void *job, long long account, sfl_drop_reason why, const char *detail,
                 int64_t waited_ms, void *arg);
    void *arg;
} sfl_sched_hooks;

sfl_sched *sfl_sched_new(struct event_base *base, sfl_limiter *lim, const sfl_sched_opts *opts,
                         const sfl_sched_hooks *hooks);
/* Jobs still queued are forgotten (no callbacks). NULL is a no-op. */
void sfl_sched_free(sfl_sched *s);

/* Queues a job (an opaque pointer the hooks get back). Higher priority
 * first inside an account; FIFO among equals. label names the holder in
 * Redis. Nothing starts from inside this call. 0, or -1 out of memory. */
int sfl_sched_add(sfl_sched *s, void *job, long long account, int priority, const char *label);
/* A started job of account has ended: its global slot is free again. */
void sfl_sched_done(sfl_sched *s, long long account);
/* Drops every queued job (SFL_DROP_CANCELLED) and starts nothing more. */
void sfl_sched_cancel(sfl_sched *s);
/* The store became ready again: denied accounts may ask at once. */
void sfl_sched_kick(sfl_sched *s);

typedef struct sfl_sched_account {
    long long account;
    size_t queued;
    int running;
    int waiting; /* denied, sleeping until a release or a retry hint */
} sfl_sched_account;

/* Counts for progress displays. */
size_t sfl_sched_queued(const sfl_sched *s);
int sfl_sched_running(const sfl_sched *s);
/* Calls fn for each account the scheduler has seen. */
void sfl_sched_each_account(const sfl_sched *s, void (*fn)(const sfl_sched_account *a, void *arg),
                            void *arg);

#endif
