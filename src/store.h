/* store.h - sfl's connections to Redis: commands, scripts, and pub/sub
 * subscriptions (sfl:released, ...), on a libevent loop. */
#ifndef SFL_STORE_H
#define SFL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "epoch.h"

struct event_base;
struct redisReply;
typedef struct sfl_store sfl_store;

/* Called with the reply, or with reply == NULL when the command failed
 * (connection lost, timed out, or the store was freed). The reply is only
 * valid for the duration of the callback: copy out what you need. */
typedef void sfl_store_reply_fn(sfl_store *st, struct redisReply *reply, void *arg);

typedef struct sfl_store_opts {
    const char *url;               /* redis://..., redis-sentinel://..., unix://... (addr.h) */
    const char *password;          /* NULL, or wins over a password in the URL */
    const char *sentinel_password; /* redis-sentinel:// only: the sentinels' own, or NULL */
    const char *ns;                /* key namespace, "sfl" */
    int64_t connect_timeout_ms;    /* per connection attempt */
    int64_t command_timeout_ms;    /* a connection with a reply owed longer than this is dropped */
    int64_t recovery_ms;           /* the recovery window epoch.lua opens (one lease TTL; > 0) */
    sfl_epoch_mode epoch_mode;     /* how the first epoch check treats a missing marker */
    int takes_leases; /* recovery_ms is the TTL of leases this process takes: the marker keeps
                         the longest, and every window lasts at least that (epoch.lua) */
    const char *const *channels; /* NULL-terminated full channel names (copied) kept
                                    subscribed on a second connection; NULL: none */
    /* Connected, authenticated, scripts loaded, epoch checked. Called after
     * every (re)connect. */
    void (*on_ready)(sfl_store *st, void *arg);
    /* The command connection went away; reconnection is already scheduled. */
    void (*on_down)(sfl_store *st, const char *why, void *arg);
    /* Redis refused a try of the command connection for authentication
     * (AUTH answered an error, or NOAUTH); the next try is scheduled. */
    void (*on_refused)(sfl_store *st, const char *why, void *arg);
    /* A message on one of the channels (both NUL-terminated, valid during the call). */
    void (*on_message)(sfl_store *st, const char *channel, const char *msg, void *arg);
    void *arg;
} sfl_store_opts;

/* Parses the URL; connects only on sfl_store_start. NULL + err on a bad URL. */
sfl_store *sfl_store_new(struct event_base *base, const sfl_store_opts *opts, char *err,
                         size_t errlen);
/* Fails every pending command (callbacks get NULL) and closes. NULL is a no-op. */
void sfl_store_free(sfl_store *st);
/* Starts connecting (and reconnecting, with backoff and jitter, forever). */
void sfl_store_start(sfl_store *st);

/* 1 when the command connection is up and the scripts are loaded. */
int sfl_store_ready(const sfl_store *st);
/* The last connection error, for messages. */
const char *sfl_store_errstr(const sfl_store *st);
/* How many tries of the command connection in a row Redis refused for
 * authentication (0 after any other outcome), the first at *since_ms
 * (sfl_mono_ms; may be NULL). */
int sfl_store_auth_refused(const sfl_store *st, int64_t *since_ms);
const char *sfl_store_ns(const sfl_store *st);
/* What the last epoch check of the command connection found (epoch.h);
 * state UNKNOWN before the first. */
const sfl_epoch *sfl_store_epoch(const sfl_store *st);

/* Runs an embedded script (lua/<name>.lua) with EVALSHA; on NOSCRIPT it is
 * sent again as EVAL (which reloads it), once. Arguments are copied.
 * Returns 0 when sent (fn will be called exactly once), -1 when the store is
 * not ready (fn will not be called). */
int sfl_store_eval(sfl_store *st, const char *script, int nkeys, const char **keys, int nargs,
                   const char **args, sfl_store_reply_fn *fn, void *arg);
/* Any other command, argv style. Same contract as sfl_store_eval; fn may be
 * NULL (fire and forget: an error answer is logged). */
int sfl_store_command(sfl_store *st, sfl_store_reply_fn *fn, void *arg, int argc,
                      const char **argv);

/* Counters, for metrics and benchmarks. */
typedef struct sfl_store_stats {
    uint64_t commands, noscript_reloads, reconnects, timeouts;
} sfl_store_stats;
void sfl_store_get_stats(const sfl_store *st, sfl_store_stats *out);

#endif
