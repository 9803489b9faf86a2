/* history.h - what this process saw of each login, per minute, and each
 * stream's last results, written to Redis (issue #18; format v1 in README,
 * "History").
 *
 * Per login and minute (UTC, this host's wall clock) the positions below
 * are gathered in memory and sent every history.flush_ms as deltas, one
 * lua/history.lua call per (login, hour) with data, and once more at a
 * clean stop (sfl_history_flush). Leases, grants, denials and losses come
 * from the limiter's observer (limiter.h, "Events"); checks and their
 * waits from the worker; others' connections from the sources' writes. */
#ifndef SFL_HISTORY_H
#define SFL_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "history_format.h"

struct event_base;
struct cJSON;
typedef struct sfl_conf sfl_conf;
typedef struct sfl_store sfl_store;
typedef struct sfl_limiter sfl_limiter;
typedef struct sfl_history sfl_history;

/* Starts gathering when conf->history_enabled (NULL otherwise, and when out
 * of memory: every call below takes NULL and does nothing). base, store and
 * lim (may be NULL: no lease events) must outlive it; conf's history.*,
 * redis.namespace and node_id are copied. The observer of lim is taken. */
sfl_history *sfl_history_new(struct event_base *base, sfl_store *store, sfl_limiter *lim,
                             const sfl_conf *conf);
/* Drops what was not sent. NULL is a no-op. */
void sfl_history_free(sfl_history *h);

/* Sends what was gathered up to now (also what the leases held meanwhile).
 * Number of history.lua calls sent; 0 when there was nothing, or Redis is
 * away (kept then, the oldest minutes dropped past a bound). */
int sfl_history_flush(sfl_history *h);
/* history.lua calls sent and not answered yet. */
int sfl_history_pending(const sfl_history *h);

/* A check that held a lease of login ended with status (an sfl_status of
 * check.h), an intermediate one (Preempted, Refused) too. */
void sfl_history_check(sfl_history *h, long long account, const char *login, int status);
/* A check's wait for a slot of account ended after wait_ms: granted on
 * login, or not (login NULL: counted on the account's first login). */
void sfl_history_wait(sfl_history *h, long long account, const char *login, int64_t wait_ms);
/* Others' connections seen on login (viewers, a panel's count). */
void sfl_history_others(sfl_history *h, const char *login, long long count);

/* Pushes a result's fields (never its URL) to <ns>:stream:<id>:history
 * (lua/stream_history.lua), kept to history.stream_results and expiring
 * after the retention. Sent at once, so that it goes in the same round trip
 * as whatever the caller sends in this loop turn. 0 sent, -1 not (no
 * stream_id, stream_results 0, Redis away). */
int sfl_history_stream_result(sfl_history *h, const struct cJSON *result);

#endif
