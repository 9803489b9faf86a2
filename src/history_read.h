/* history_read.h - reading a login's usage history back from Redis, and a
 * stream's last results: the documents GET /v1/history and GET
 * /v1/streams/{id}/history answer, which `sflimit status --history` prints.
 *
 * The Redis format (v1, written by the nodes: issue #18's contract) is
 *   <ns>:history:<login>:<YYYYMMDDHH>   HASH minute "0".."59" -> "v0,v1,..."
 * the positions below, trailing zeros left out; and
 *   <ns>:stream:<id>:history            LIST of result JSON, newest first. */
#ifndef SFL_HISTORY_READ_H
#define SFL_HISTORY_READ_H

#include <stddef.h>
#include <stdint.h>

#include "history_format.h"
#include "history_range.h"

typedef struct cJSON cJSON;
typedef struct sfl_store sfl_store;
struct redisReply;

#define SFL_HISTORY_BINS 19
#define SFL_HISTORY_REQUIRED 4 /* positions every value has */

/* One minute's value (len bytes, not necessarily NUL-terminated) into
 * v[SFL_HIST_NPOS], positions left out read 0 (more than SFL_HIST_NPOS are
 * ignored: a later format may add some). At least SFL_HISTORY_REQUIRED
 * positions, each a decimal integer, >= 0 (the limit >= -1). 0, or -1 with
 * err saying what is wrong. */
int sfl_history_decode(const char *csv, size_t len, long long v[SFL_HIST_NPOS], char *err,
                       size_t errlen);

/* The q-quantile (0 < q <= 1) of waits counted in bins (not cumulative):
 * the upper bound of its bin in ms (sfl_wait_bounds; a wait above the last
 * bound reads as the last); -1 when no wait is counted. */
double sfl_history_quantile_ms(const long long bins[SFL_HISTORY_BINS], double q);

/*--- The points of a range, summed up (pure) -------------------------------*/

typedef struct sfl_history_series sfl_history_series;

/* NULL when out of memory. */
sfl_history_series *sfl_history_series_new(const sfl_history_range *r);
/* NULL is a no-op. */
void sfl_history_series_free(sfl_history_series *s);
/* Adds one minute (minute_s: its first second); one outside the range is
 * left out. */
void sfl_history_series_add(sfl_history_series *s, int64_t minute_s,
                            const long long v[SFL_HIST_NPOS]);
/* Adds every minute of one hour key's HGETALL answer (hour_s: the hour's
 * first second; key: its name, for messages). 0, or -1 with err naming the
 * key and field when the answer is not such a hash (the minutes before it
 * may have been added). */
int sfl_history_series_add_hash(sfl_history_series *s, int64_t hour_s, const struct redisReply *r,
                                const char *key, char *err, size_t errlen);
/* The limit of the newest minute that knew one, or -1. */
long long sfl_history_series_last_limit(const sfl_history_series *s);
/* Adds "from", "to", "step_s" and "points" (the spec's shape: a point per
 * step, oldest first) to doc. 0, or -1 when out of memory. */
int sfl_history_series_json(const sfl_history_series *s, cJSON *doc);

/*--- Reading Redis ---------------------------------------------------------*/

/* Called exactly once, from the loop: doc (the caller's only during the
 * call), or NULL with the reason: garbled 1 when a key holds something else
 * than the format (the data is at fault, not the connection), else 0 (Redis
 * did not answer, out of memory). */
typedef void sfl_history_fn(cJSON *doc, int garbled, const char *err, void *arg);

typedef struct sfl_history_query {
    const char *login;         /* its id */
    const char *conf_key;      /* its conf hash, for limit_now; NULL: the last limit recorded */
    const long long *accounts; /* the accounts that use it ("accounts") */
    size_t naccounts;
    sfl_history_range range;
    int64_t now_s; /* hours past any retention (366 days) or ahead are not asked for */
} sfl_history_query;

/* {"login", "accounts", "from", "to", "step_s", "limit_now", "points"}: every
 * hour key of the range in one pipeline (one HGETALL each) and the login's
 * conf. The query is copied. -1 (fn not called) when Redis is not ready. */
int sfl_history_read(sfl_store *st, const sfl_history_query *q, sfl_history_fn *fn, void *arg);

/* The effective limit a login's conf gives (prelude.lua's effective_limit):
 * max_streams capped by panel_max and learned_limit when they are > 0; -1
 * when max_streams is not a number. Strings may be NULL. */
long long sfl_history_effective_limit(const char *max_streams, const char *panel_max,
                                      const char *learned);

/* {"stream_id", "results": [up to limit, newest first]} (LRANGE); elements
 * that are not JSON objects are left out. -1 (fn not called) when Redis is
 * not ready. */
int sfl_history_stream_read(sfl_store *st, long long stream_id, int limit, sfl_history_fn *fn,
                            void *arg);

#endif
