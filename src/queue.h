/* queue.h - the shared queue of work (DESIGN §8): a Redis stream that every
 * node reads from, and the batches its results go to. */
#ifndef SFL_QUEUE_H
#define SFL_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sfl_store sfl_store;
typedef struct sfl_stream sfl_stream;
typedef struct sfl_streams sfl_streams;
struct redisReply;

#define SFL_QUEUE_GROUP "sfl-nodes"

/* One entry taken from the stream. */
typedef struct sfl_queue_entry {
    char id[48]; /* stream entry id */
    char batch[64];
    sfl_streams *stream; /* exactly one stream; NULL if the entry was malformed */
    char error[160];     /* why it was malformed */
} sfl_queue_entry;

/* entries (n of them) belong to the callee: free each with
 * sfl_queue_entry_clear, then the array with free(). n == 0 and
 * entries == NULL on an empty answer; ok == 0 when Redis did not answer. */
typedef void sfl_queue_entries_fn(int ok, sfl_queue_entry *entries, size_t n, void *arg);
typedef void sfl_queue_done_fn(int ok, const char *err, void *arg);

void sfl_queue_entry_clear(sfl_queue_entry *e);

/* Creates the consumer group (from the stream's start; exists already: fine). */
int sfl_queue_ensure_group(sfl_store *st, sfl_queue_done_fn *fn, void *arg);
/* Up to count new entries for consumer (XREADGROUP, never blocking). */
int sfl_queue_read(sfl_store *st, const char *consumer, size_t count, sfl_queue_entries_fn *fn,
                   void *arg);
/* Up to count entries idle at least min_idle_ms (their node is gone): XAUTOCLAIM. */
int sfl_queue_claim(sfl_store *st, const char *consumer, int64_t min_idle_ms, size_t count,
                    sfl_queue_entries_fn *fn, void *arg);
/* The entries of an XREADGROUP answer (claim 0: [[key, [entry...]]]) or an
 * XAUTOCLAIM answer (claim 1: [cursor, [entry...], ...]), each entry
 * [id, [field, value, ...]] with fields "batch" and "stream" (one stream's
 * JSON). A malformed entry comes back with stream NULL and error set; an
 * element that is not an entry is skipped. Pure: r is only read during the
 * call. *entries as for sfl_queue_entries_fn (NULL when *n is 0, also when
 * out of memory). 0, or -1 when r is NULL or an error reply. */
int sfl_queue_decode_entries(const struct redisReply *r, int claim, sfl_queue_entry **entries,
                             size_t *n);
/* Resets the idle time of entries this consumer works on (XCLAIM JUSTID), so
 * nobody claims live work; with idle_ms > 0 instead marks them idle that long,
 * so another node claims them at once (a node handing work back). Fire and
 * forget. */
void sfl_queue_touch(sfl_store *st, const char *consumer, const char *const *ids, size_t n,
                     int64_t idle_ms);
/* Stores a result in its batch (result.lua: once per stream id), then XACKs
 * and XDELs the entry, all in one script. fn(ok) once it is answered. */
int sfl_queue_store_result(sfl_store *st, const char *batch, long long stream_id, const char *json,
                           int64_t ttl_ms, const char *entry_id, sfl_queue_done_fn *fn, void *arg);
/* XACK, then XDEL, without a result (a malformed entry). Fire and forget. */
void sfl_queue_ack(sfl_store *st, const char *entry_id);

/* A consumer with nothing pending, idle this many claim times, is gone even
 * while its node's registry entry is there. */
#define SFL_QUEUE_GONE_IDLES 3

/* One consumer of the group, as XINFO CONSUMERS lists it. */
typedef struct sfl_queue_consumer {
    char name[128];
    long long pending; /* entries delivered to it, not acknowledged */
    long long idle_ms; /* since it was last given an entry (Redis 7.0) */
} sfl_queue_consumer;

/* The consumers of an XINFO CONSUMERS answer ([[name, N, pending, N, idle,
 * N, ...], ...]); one without a name, pending or idle, or with a name that
 * is empty, too long or holds a NUL, is skipped. Pure: r is only read.
 * *out is the caller's to free (NULL when *n is 0, also out of memory).
 * 0, or -1 when r is NULL or not an array (an error: no such group). */
int sfl_queue_decode_consumers(const struct redisReply *r, sfl_queue_consumer **out, size_t *n);

/* consumer has left the group; valid during the call. */
typedef void sfl_queue_reaped_fn(const char *consumer, void *arg);
/* Removes consumers of stopped nodes from the group: XINFO CONSUMERS, then
 * reap.lua for each consumer other than self with nothing pending and idle
 * at least claim_idle_ms, which removes it (atomically, and only with
 * nothing pending) when its node's registry entry (<ns>:node:<name>) is gone
 * or it has been idle SFL_QUEUE_GONE_IDLES claim times. fn (may be NULL)
 * once per consumer removed. 0, or -1 when Redis is not there. */
int sfl_queue_reap(sfl_store *st, const char *self, int64_t claim_idle_ms, sfl_queue_reaped_fn *fn,
                   void *arg);
/* A stopping node leaves the group, if it holds nothing pending (reap.lua);
 * entries it handed back stay pending under its name until another node
 * claims them, and sfl_queue_reap of the others removes it then. */
int sfl_queue_leave(sfl_store *st, const char *consumer, sfl_queue_reaped_fn *fn, void *arg);

/* How many batch ids <ns>:batches keeps. */
#define SFL_QUEUE_RECENT_BATCHES 20

/* <ns>:stream:names: stream id -> name of every stream queued lately (a
 * HASH; the dashboard names holders by it), kept a week after the last
 * batch. */
#define SFL_QUEUE_NAMES "stream:names"
#define SFL_QUEUE_NAMES_TTL_MS (7LL * 86400 * 1000)

/* Puts a batch on the queue: the batch hash (total, created_ms), its id at
 * the head of <ns>:batches (the newest SFL_QUEUE_RECENT_BATCHES, a list with
 * the batch's TTL), the names of its streams in <ns>:stream:names, one entry
 * per stream, and a "new jobs" message. fn once everything is answered. */
int sfl_queue_submit(sfl_store *st, const char *batch, const sfl_streams *streams, int64_t ttl_ms,
                     sfl_queue_done_fn *fn, void *arg);
/* Puts streams of batch on the queue again (some of a batch whose hash
 * survived while their entries were lost): one entry per stream and a "new
 * jobs" message, as sfl_queue_submit sends them; the batch hash and the
 * recent batches are left as they are. fn once everything is answered.
 * -1 when Redis is not there (fn is not called). */
int sfl_queue_requeue(sfl_store *st, const char *batch, const sfl_streams *streams,
                      sfl_queue_done_fn *fn, void *arg);

/* One page of sfl_queue_queued: ok 0 when Redis did not answer or failed;
 * next, the id to read the next page after, NULL at the queue's end; ids,
 * the stream ids of the batch's entries in the page that a node will still
 * check. All valid during the call. */
typedef void sfl_queue_queued_fn(int ok, const char *next, const long long *ids, size_t n,
                                 void *arg);
/* Reads up to count entries of the queue after entry id after (NULL or "":
 * from its start) with queued.lua: the stream ids of batch's entries not
 * yet delivered or pending (delivered, not acknowledged: a node has it, or
 * claims it once idle). A page is one script call. fn exactly once when 0
 * is returned; -1 when Redis is not there. */
int sfl_queue_queued(sfl_store *st, const char *batch, const char *after, size_t count,
                     sfl_queue_queued_fn *fn, void *arg);
/* Writes a new batch id ("<yyyymmdd>-<12 hex>"). */
void sfl_queue_new_batch_id(char *buf, size_t len);

/* Reads XINFO GROUPS of the jobs stream: for our group, the entries not yet
 * delivered (*lag; -1 when Redis cannot tell, which it answers with nil once
 * entries were deleted behind the group's last delivered one) and delivered
 * but not acknowledged (*pending). 0, or -1 when r holds no such group.
 * Pure; r is only read. */
int sfl_queue_decode_groups(const struct redisReply *r, long long *lag, long long *pending);

/* ok 0: Redis did not answer, or there is no group yet; depth and pending
 * are then meaningless. */
typedef void sfl_queue_depth_fn(int ok, long long depth, long long pending, void *arg);
/* The queue's entries not yet delivered to any node (depth) and delivered
 * but not acknowledged (pending): XINFO GROUPS's lag, or XLEN - pending when
 * Redis cannot tell the lag (the stream holds only pending and undelivered
 * entries: the rest are deleted with their ack). fn exactly once when 0 is
 * returned; -1 when Redis is not there. */
int sfl_queue_depth(sfl_store *st, sfl_queue_depth_fn *fn, void *arg);

/* Key and channel names under the namespace. */
void sfl_queue_key(char *buf, size_t len, const char *ns, const char *batch, const char *suffix);

#endif
