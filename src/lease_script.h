/* lease_script.h - the lease scripts (lua/acquire.lua, renew.lua,
 * release.lua) as the limiter calls them: their keys and arguments built in
 * one place, their answers decoded once, into one struct.
 *
 * acquire.lua and renew.lua answer in one shape: {1|2, fence, deadline_ms,
 * in_use, limit} for a grant, a take-over or a renewal (2: re-taken, a new
 * fence); {0, retry_ms, in_use, limit, reason, position, now_ms} for a
 * denial or a loss; {-1, reason} when Redis knows no limit and none was
 * hinted. release.lua answers 1 (held, now given back) or 0. */
#ifndef SFL_LEASE_SCRIPT_H
#define SFL_LEASE_SCRIPT_H

#include <stdint.h>

#include "routes.h"
#include "store.h"

struct redisReply;

typedef enum {
    SFL_ANSWER_NONE = -2,    /* no answer (disconnected), an error, or a shape not ours */
    SFL_ANSWER_UNKNOWN = -1, /* no limit known for the account */
    SFL_ANSWER_DENIED = 0,   /* acquire: no slot now (ticket queued); renew: lease lost */
    SFL_ANSWER_GRANTED = 1,  /* granted, taken over, or renewed */
    SFL_ANSWER_RETAKEN = 2,  /* renew: the lease had gone and was taken again */
} sfl_answer_status;

typedef struct sfl_lease_answer {
    sfl_answer_status status;
    long long fence;       /* granted, retaken */
    long long deadline_ms; /* granted, retaken: Redis time */
    long long in_use;
    long long limit;    /* -1 when not given */
    long long login;    /* acquire granted: the index of the login in the account's route (0 =
                           first); -1 when not given (renew's answers, older scripts) */
    long long retry_ms; /* denied: when a slot may be free again */
    long long position; /* denied: the ticket's place in the queue (1 = next), 0 if none */
    long long now_ms;   /* denied: Redis time of the answer; -1 when not given */
    char reason[48];    /* denied, unknown: "full", "recovering", "unknown account" */
    const char *error;  /* NONE: Redis's error text (valid during the callback), or NULL */
} sfl_lease_answer;

/* Decodes an acquire.lua or renew.lua answer. Pure; r may be NULL. Elements
 * of an unexpected type read as 0 / "". Always fills a (status NONE when r
 * is not an answer of these scripts). */
void sfl_lease_answer_decode(const struct redisReply *r, sfl_lease_answer *a);

/* What an acquire or renew says besides the account. */
typedef struct sfl_lease_call {
    const char *id;      /* lease id, or the ticket that waits */
    const char *node;    /* node id */
    const char *label;   /* stream label, never a URL */
    const char *channel; /* hand-off announcements: <channel>:<node> */
    int64_t ttl_ms;
    long long known_limit; /* the limit this node last saw, -1 if none */
    int64_t recovery_ms;   /* window opened when the epoch marker is missing */
    int64_t ticket_ttl_ms; /* acquire: queue a denied ask this long; 0 = do not queue */
    int64_t handoff_ms;    /* how long a handed slot is held for its node */
} sfl_lease_call;

/* Each sends its script with the store's calling rules (0 sent, -1 not:
 * Redis away or out of memory; fn not called then). acquire asks over all of
 * the route's logins; renew and release act on its login `login` (an index
 * into rt->logins). */
int sfl_lease_script_acquire(sfl_store *st, const sfl_route *rt, const sfl_lease_call *c,
                             sfl_store_reply_fn *fn, void *arg);
int sfl_lease_script_renew(sfl_store *st, const sfl_route *rt, size_t login,
                           const sfl_lease_call *c, sfl_store_reply_fn *fn, void *arg);
/* Gives back id (a lease, or a queued ticket) on that login; a freed slot
 * goes to the oldest ticket of the accounts that use the login (routes
 * names them), held handoff_ms, announced on <channel>:<node>. With next
 * (NULL: none), the same script also makes the node's next ask of the
 * account (next->id, ticket_ttl_ms, ttl_ms, node, label, recovery_ms): when
 * the lease was held, it answers as acquire.lua would (granted, or denied
 * with the ticket queued; sfl_lease_answer_decode reads it, and
 * sfl_lease_released tells whether the lease was given back); otherwise 0
 * or 1, and the next ask was not made. */
int sfl_lease_script_release(sfl_store *st, sfl_routes *routes, const sfl_route *rt, size_t login,
                             const char *id, const char *channel, int64_t handoff_ms,
                             const sfl_lease_call *next, sfl_store_reply_fn *fn, void *arg);
/* 1 if a release.lua answer says the lease was held and is given back. */
int sfl_lease_released(const struct redisReply *r);

/* others.lua for the login whose keys start with prefix: count others'
 * connections as source saw them (mode "others", "total" or "closed": see
 * the script), good for max_age_ms; preemptions go out on <ns>:released.
 * Fire and forget (an error answer is logged). 0 sent, -1 not. */
int sfl_lease_script_others(sfl_store *st, const char *prefix, long long count, const char *source,
                            long long max_age_ms, const char *mode);

/* Told of the figure others.lua wrote for a login (its "external": others'
 * connections as admission counts them), for history.c. */
typedef struct sfl_others_seen {
    void (*fn)(const char *login, long long external, void *arg);
    void *arg;
} sfl_others_seen;
/* As sfl_lease_script_others, and seen->fn (when seen and fn are set) is
 * called with login and the figure written, once Redis answers. */
int sfl_lease_script_others_seen(sfl_store *st, const char *prefix, const char *login,
                                 long long count, const char *source, long long max_age_ms,
                                 const char *mode, const sfl_others_seen *seen);

#endif
