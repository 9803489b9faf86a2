/* queue.c - the shared queue: one Redis stream (<ns>:jobs, consumer group
 * sfl-nodes) that every node reads, and batches (<ns>:batch:<id>) that
 * collect results.
 *
 * Delivery is at least once: a node reads only as many entries as it can
 * start soon, keeps their idle time fresh while it works on them (XCLAIM
 * JUSTID), stores the result and only then acknowledges. An entry left
 * pending by a dead node goes idle and another node takes it (XAUTOCLAIM).
 * A stream delivered twice is checked twice at worst, and result.lua keeps
 * the first result per stream id: effectively once in the batch.
 *
 * Reads never block (a blocking XREADGROUP would hold up the lease
 * renewals on the same connection); nodes are told of new work by a
 * message on <ns>:jobs:new and read again on a slow fallback timer.
 *
 * The stream keeps only work not done: result.lua stores a result, then
 * XACKs and XDELs its entry in the same script (an entry carries its
 * stream's URL, credentials included). XDEL rather than XTRIM MINID: it
 * removes exactly the entry whose result is stored, needs no look at the
 * pending list, and a stuck entry holds back nothing after it. Consumers
 * of stopped nodes leave the group (reap.lua) once they hold nothing
 * pending: XGROUP DELCONSUMER would drop their pending entries unacked.
 */
#include "queue.h"

#include "clock.h"
#include "log.h"
#include "store.h"
#include "streams.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sfl_queue_key(char *buf, size_t len, const char *ns, const char *batch, const char *suffix)
{
    if (batch)
        snprintf(buf, len, "%s:batch:%s%s%s", ns, batch, suffix ? ":" : "", suffix ? suffix : "");
    else
        snprintf(buf, len, "%s:%s", ns, suffix ? suffix : "");
}

void sfl_queue_new_batch_id(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(buf, len, "%04d%02d%02d-%012" PRIx64, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             (uint64_t)(sfl_random64() & 0xffffffffffffULL));
}

void sfl_queue_entry_clear(sfl_queue_entry *e)
{
    sfl_streams_free(e->stream);
    e->stream = NULL;
}

/*--- Small one-shot commands -----------------------------------------------*/

typedef struct done_ctx {
    sfl_queue_done_fn *fn;
    void *arg;
    int owed;
    int ok;
    char err[200];
} done_ctx;

static done_ctx *done_new(sfl_queue_done_fn *fn, void *arg)
{
    done_ctx *d = calloc(1, sizeof(*d));
    if (d) {
        d->fn = fn;
        d->arg = arg;
        d->ok = 1;
        d->owed = 1; /* held while sending */
    }
    return d;
}

static void done_step(done_ctx *d)
{
    if (--d->owed > 0)
        return;
    if (d->fn)
        d->fn(d->ok, d->ok ? NULL : d->err, d->arg);
    free(d);
}

static void on_done_reply(sfl_store *st, redisReply *r, void *arg)
{
    done_ctx *d = arg;
    UNUSED(st);
    if (!r || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)) {
        if (d->ok)
            snprintf(d->err, sizeof(d->err), "%s", r ? r->str : "no answer from Redis");
        d->ok = 0;
    }
    done_step(d);
}

static int done_send(done_ctx *d, sfl_store *st, int argc, const char **argv)
{
    d->owed++;
    if (sfl_store_command(st, on_done_reply, d, argc, argv) == 0)
        return 0;
    d->owed--;
    d->ok = 0;
    snprintf(d->err, sizeof(d->err), "Redis is not connected");
    return -1;
}

static void fire_and_forget(sfl_store *st, redisReply *r, void *arg)
{
    UNUSED(st);
    UNUSED(arg);
    if (r && r->type == REDIS_REPLY_ERROR)
        sfl_warn("queue: %s", r->str);
}

int sfl_queue_ensure_group(sfl_store *st, sfl_queue_done_fn *fn, void *arg)
{
    char key[160];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "jobs");
    const char *argv[6] = {"XGROUP", "CREATE", key, SFL_QUEUE_GROUP, "0", "MKSTREAM"};
    done_ctx *d = done_new(fn, arg);
    if (!d)
        return -1;
    done_send(d, st, 6, argv);
    done_step(d);
    return 0;
}

void sfl_queue_ack(sfl_store *st, const char *entry_id)
{
    char key[160];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "jobs");
    const char *ack[4] = {"XACK", key, SFL_QUEUE_GROUP, entry_id};
    const char *del[3] = {"XDEL", key, entry_id};
    if (sfl_store_command(st, fire_and_forget, NULL, 4, ack) == 0)
        sfl_store_command(st, fire_and_forget, NULL, 3, del);
}

void sfl_queue_touch(sfl_store *st, const char *consumer, const char *const *ids, size_t n,
                     int64_t idle_ms)
{
    char key[160], idle[24];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "jobs");
    snprintf(idle, sizeof(idle), "%" PRId64, idle_ms);
    for (size_t off = 0; off < n; off += 100) {
        const char *argv[110] = {"XCLAIM", key, SFL_QUEUE_GROUP, consumer, "0"};
        int k = 5;
        for (size_t i = off; i < n && i < off + 100; i++)
            argv[k++] = ids[i];
        if (idle_ms > 0) {
            argv[k++] = "IDLE";
            argv[k++] = idle;
        }
        argv[k++] = "JUSTID";
        sfl_store_command(st, fire_and_forget, NULL, k, argv);
    }
}

/*--- Reading entries -------------------------------------------------------*/

typedef struct read_ctx {
    sfl_queue_entries_fn *fn;
    void *arg;
    int claim; /* XAUTOCLAIM's answer shape */
} read_ctx;

static void parse_entry(const redisReply *e, sfl_queue_entry *out)
{
    memset(out, 0, sizeof(*out));
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING) {
        snprintf(out->error, sizeof(out->error), "not a stream entry");
        return;
    }
    snprintf(out->id, sizeof(out->id), "%s", e->element[0]->str);
    const redisReply *f = e->element[1];
    const char *stream = NULL;
    size_t stream_len = 0;
    const redisReply *batch = NULL;
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (k->len == 5 && memcmp(k->str, "batch", 5) == 0)
            batch = v;
        else if (k->len == 6 && memcmp(k->str, "stream", 6) == 0) {
            stream = v->str;
            stream_len = v->len;
        }
    }
    if (!batch || !batch->len || !stream) {
        snprintf(out->error, sizeof(out->error), "entry %s lacks a batch or a stream", out->id);
        return;
    }
    /* Cut short or at a NUL, results would go to another batch's key. */
    if (batch->len >= sizeof(out->batch) || memchr(batch->str, '\0', batch->len)) {
        snprintf(out->error, sizeof(out->error), "entry %s: batch id too long or holding a NUL",
                 out->id);
        return;
    }
    memcpy(out->batch, batch->str, batch->len + 1);
    /* The same validation as a streams file: one stream in an array. */
    char *text = malloc(stream_len + 3);
    if (!text) {
        snprintf(out->error, sizeof(out->error), "out of memory");
        return;
    }
    text[0] = '[';
    memcpy(text + 1, stream, stream_len);
    text[stream_len + 1] = ']';
    text[stream_len + 2] = '\0';
    char err[160];
    out->stream = sfl_streams_parse(text, stream_len + 2, out->id, err, sizeof(err));
    free(text);
    if (!out->stream)
        snprintf(out->error, sizeof(out->error), "%s", err);
    else if (out->stream->n != 1) {
        sfl_streams_free(out->stream);
        out->stream = NULL;
        snprintf(out->error, sizeof(out->error), "entry %s holds no stream", out->id);
    }
}

int sfl_queue_decode_entries(const redisReply *r, int claim, sfl_queue_entry **entries, size_t *n)
{
    *entries = NULL;
    *n = 0;
    if (!r || r->type == REDIS_REPLY_ERROR)
        return -1;
    const redisReply *list = NULL;
    if (claim && r->type == REDIS_REPLY_ARRAY && r->elements >= 2)
        list = r->element[1]; /* [cursor, entries, deleted] */
    else if (!claim && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 2)
        list = r->element[0]->element[1]; /* [[key, entries]] */
    if (list && list->type == REDIS_REPLY_ARRAY && list->elements > 0) {
        sfl_queue_entry *v = calloc(list->elements, sizeof(*v));
        size_t k = 0;
        for (size_t i = 0; v && i < list->elements; i++)
            if (list->element[i]->type == REDIS_REPLY_ARRAY)
                parse_entry(list->element[i], &v[k++]);
        if (k == 0) {
            free(v);
            v = NULL;
        }
        *entries = v;
        *n = k;
    }
    return 0;
}

static void on_read_reply(sfl_store *st, redisReply *r, void *arg)
{
    read_ctx *c = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_ERROR)
        sfl_warn("queue: %s", r->str);
    sfl_queue_entry *entries;
    size_t n;
    int ok = sfl_queue_decode_entries(r, c->claim, &entries, &n) == 0;
    c->fn(ok, entries, n, c->arg);
    free(c);
}

int sfl_queue_read(sfl_store *st, const char *consumer, size_t count, sfl_queue_entries_fn *fn,
                   void *arg)
{
    char key[160], cnt[24];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "jobs");
    snprintf(cnt, sizeof(cnt), "%zu", count);
    const char *argv[9] = {
        "XREADGROUP", "GROUP", SFL_QUEUE_GROUP, consumer, "COUNT", cnt, "STREAMS", key, ">"};
    read_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    *c = (read_ctx){fn, arg, 0};
    if (sfl_store_command(st, on_read_reply, c, 9, argv) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int sfl_queue_claim(sfl_store *st, const char *consumer, int64_t min_idle_ms, size_t count,
                    sfl_queue_entries_fn *fn, void *arg)
{
    char key[160], cnt[24], idle[24];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "jobs");
    snprintf(cnt, sizeof(cnt), "%zu", count);
    snprintf(idle, sizeof(idle), "%" PRId64, min_idle_ms);
    const char *argv[9] = {"XAUTOCLAIM", key, SFL_QUEUE_GROUP, consumer, idle, "0-0", "COUNT", cnt};
    read_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    *c = (read_ctx){fn, arg, 1};
    if (sfl_store_command(st, on_read_reply, c, 8, argv) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

/*--- Results and batches ---------------------------------------------------*/

static void on_result_reply(sfl_store *st, redisReply *r, void *arg)
{
    done_ctx *d = arg;
    UNUSED(st);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        d->ok = 0;
        snprintf(d->err, sizeof(d->err), "%s", r && r->str ? r->str : "no answer from Redis");
    }
    done_step(d);
}

int sfl_queue_store_result(sfl_store *st, const char *batch, long long stream_id, const char *json,
                           int64_t ttl_ms, const char *entry_id, sfl_queue_done_fn *fn, void *arg)
{
    const char *ns = sfl_store_ns(st);
    char hash[200], results[200], jobs[160], sid[24], ttl[24];
    sfl_queue_key(hash, sizeof(hash), ns, batch, NULL);
    sfl_queue_key(results, sizeof(results), ns, batch, "results");
    sfl_queue_key(jobs, sizeof(jobs), ns, NULL, "jobs");
    snprintf(sid, sizeof(sid), "%lld", stream_id);
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    const char *keys[3] = {hash, results, jobs};
    const char *args[6] = {sid, json, ttl, hash, SFL_QUEUE_GROUP, entry_id};
    done_ctx *d = done_new(fn, arg);
    if (!d)
        return -1;
    if (sfl_store_eval(st, "result", 3, keys, 6, args, on_result_reply, d) < 0) {
        free(d);
        return -1;
    }
    return 0;
}

/*--- A batch's entries still on the queue ----------------------------------*/

typedef struct queued_ctx {
    sfl_queue_queued_fn *fn;
    void *arg;
} queued_ctx;

static void on_queued_reply(sfl_store *st, redisReply *r, void *arg)
{
    queued_ctx *c = arg;
    UNUSED(st);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        if (r && r->type == REDIS_REPLY_ERROR)
            sfl_warn("queue: queued.lua: %s", r->str);
        c->fn(0, NULL, NULL, 0, c->arg);
        free(c);
        return;
    }
    long long *ids = malloc(r->elements * sizeof(*ids));
    size_t n = 0;
    for (size_t i = 1; ids && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_INTEGER)
            ids[n++] = r->element[i]->integer;
    const char *next = r->element[0]->len > 0 ? r->element[0]->str : NULL;
    c->fn(ids != NULL, next, ids, n, c->arg);
    free(ids);
    free(c);
}

int sfl_queue_queued(sfl_store *st, const char *batch, const char *after, size_t count,
                     sfl_queue_queued_fn *fn, void *arg)
{
    char jobs[160], from[64], cnt[24];
    sfl_queue_key(jobs, sizeof(jobs), sfl_store_ns(st), NULL, "jobs");
    if (after && *after)
        snprintf(from, sizeof(from), "(%s", after);
    else
        snprintf(from, sizeof(from), "-");
    snprintf(cnt, sizeof(cnt), "%zu", count ? count : 1);
    queued_ctx *c = malloc(sizeof(*c));
    if (!c)
        return -1;
    *c = (queued_ctx){fn, arg};
    const char *keys[1] = {jobs};
    const char *args[4] = {SFL_QUEUE_GROUP, batch, from, cnt};
    if (sfl_store_eval(st, "queued", 1, keys, 4, args, on_queued_reply, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

/* The batch's stream names into <ns>:stream:names (id -> name), where every
 * node's dashboard finds the name of a holder whose label is a stream id:
 * HSET in the pipeline that carries the batch (NAMES_PER_HSET pairs a
 * command), then PEXPIRE. Names only, never a URL. */
#define NAMES_PER_HSET 500

static int send_names(done_ctx *d, sfl_store *st, const sfl_streams *streams)
{
    char key[160], ttl[24];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, SFL_QUEUE_NAMES);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)SFL_QUEUE_NAMES_TTL_MS);
    const char **argv = malloc((2 + 2 * NAMES_PER_HSET) * sizeof(*argv));
    char(*ids)[24] = malloc(NAMES_PER_HSET * sizeof(*ids));
    int rc = 0, any = 0;
    if (!argv || !ids) {
        d->ok = 0;
        snprintf(d->err, sizeof(d->err), "out of memory");
        rc = -1;
        goto done;
    }
    argv[0] = "HSET";
    argv[1] = key;
    for (size_t i = 0; i < streams->n && rc == 0;) {
        int pairs = 0;
        for (; i < streams->n && pairs < NAMES_PER_HSET; i++) {
            const sfl_stream *s = &streams->v[i];
            if (!s->name || !*s->name)
                continue;
            snprintf(ids[pairs], sizeof(ids[0]), "%lld", s->id);
            argv[2 + 2 * pairs] = ids[pairs];
            argv[3 + 2 * pairs] = s->name;
            pairs++;
        }
        if (pairs > 0) {
            rc = done_send(d, st, 2 + 2 * pairs, argv);
            any = 1;
        }
    }
    if (rc == 0 && any) {
        const char *expire[3] = {"PEXPIRE", key, ttl};
        rc = done_send(d, st, 3, expire);
    }
done:
    free(argv);
    free(ids);
    return rc;
}

/* One entry per stream, then a "new jobs" message: each its own command,
 * pipelined. */
static void send_entries(done_ctx *d, sfl_store *st, const char *batch, const sfl_streams *streams)
{
    char jobs[160], channel[160];
    sfl_queue_key(jobs, sizeof(jobs), sfl_store_ns(st), NULL, "jobs");
    sfl_queue_key(channel, sizeof(channel), sfl_store_ns(st), NULL, "jobs:new");
    for (size_t i = 0; i < streams->n; i++) {
        char *json = sfl_stream_to_json(&streams->v[i]);
        if (!json) {
            d->ok = 0;
            snprintf(d->err, sizeof(d->err), "out of memory");
            break;
        }
        const char *xadd[7] = {"XADD", jobs, "*", "batch", batch, "stream", json};
        int rc = done_send(d, st, 7, xadd);
        free(json);
        if (rc < 0)
            break;
    }
    const char *pub[3] = {"PUBLISH", channel, batch};
    if (d->ok)
        done_send(d, st, 3, pub);
}

int sfl_queue_submit(sfl_store *st, const char *batch, const sfl_streams *streams, int64_t ttl_ms,
                     sfl_queue_done_fn *fn, void *arg)
{
    const char *ns = sfl_store_ns(st);
    char hash[200], recent[160], total[24], ttl[24], keep[24];
    sfl_queue_key(hash, sizeof(hash), ns, batch, NULL);
    sfl_queue_key(recent, sizeof(recent), ns, NULL, "batches");
    snprintf(keep, sizeof(keep), "%d", SFL_QUEUE_RECENT_BATCHES - 1);
    snprintf(total, sizeof(total), "%zu", streams->n);
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    char now[32];
    sfl_wall_iso(now, sizeof(now));
    done_ctx *d = done_new(fn, arg);
    if (!d)
        return -1;
    const char *hset[8] = {"HSET", hash, "total", total, "done", "0", "created", now};
    const char *expire[3] = {"PEXPIRE", hash, ttl};
    /* The newest batches, newest first: the queue's entries are gone once
     * done, so this is where the dashboard finds them. */
    const char *push[3] = {"LPUSH", recent, batch};
    const char *trim[4] = {"LTRIM", recent, "0", keep};
    const char *expire_recent[3] = {"PEXPIRE", recent, ttl};
    if (done_send(d, st, 8, hset) < 0 || done_send(d, st, 3, expire) < 0 ||
        done_send(d, st, 3, push) < 0 || done_send(d, st, 4, trim) < 0 ||
        done_send(d, st, 3, expire_recent) < 0) {
        done_step(d);
        return 0;
    }
    if (send_names(d, st, streams) < 0) {
        done_step(d);
        return 0;
    }
    send_entries(d, st, batch, streams);
    done_step(d);
    return 0;
}

int sfl_queue_requeue(sfl_store *st, const char *batch, const sfl_streams *streams,
                      sfl_queue_done_fn *fn, void *arg)
{
    if (!sfl_store_ready(st))
        return -1;
    done_ctx *d = done_new(fn, arg);
    if (!d)
        return -1;
    send_entries(d, st, batch, streams);
    done_step(d);
    return 0;
}

/*--- Consumers of stopped nodes --------------------------------------------*/

int sfl_queue_decode_consumers(const redisReply *r, sfl_queue_consumer **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    if (r->elements == 0)
        return 0;
    sfl_queue_consumer *v = calloc(r->elements, sizeof(*v));
    if (!v)
        return 0;
    size_t k = 0;
    for (size_t c = 0; c < r->elements; c++) {
        const redisReply *e = r->element[c];
        sfl_queue_consumer one = {.pending = -1, .idle_ms = -1};
        int named = 0;
        for (size_t i = 0; e->type == REDIS_REPLY_ARRAY && i + 1 < e->elements; i += 2) {
            const redisReply *f = e->element[i], *val = e->element[i + 1];
            if (f->type != REDIS_REPLY_STRING && f->type != REDIS_REPLY_STATUS)
                continue;
            if (strcmp(f->str, "name") == 0 && val->type == REDIS_REPLY_STRING) {
                /* Cut short or at a NUL it would name another consumer. */
                if (val->len == 0 || val->len >= sizeof(one.name) ||
                    memchr(val->str, '\0', val->len))
                    break;
                memcpy(one.name, val->str, val->len + 1);
                named = 1;
            } else if (strcmp(f->str, "pending") == 0 && val->type == REDIS_REPLY_INTEGER) {
                one.pending = val->integer;
            } else if (strcmp(f->str, "idle") == 0 && val->type == REDIS_REPLY_INTEGER) {
                one.idle_ms = val->integer;
            }
        }
        if (named && one.pending >= 0 && one.idle_ms >= 0)
            v[k++] = one;
    }
    if (k == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = k;
    return 0;
}

typedef struct reap_ctx {
    sfl_queue_reaped_fn *fn;
    void *arg;
    char name[128]; /* the consumer one script call is about */
    char self[128];
    int64_t claim_idle_ms;
} reap_ctx;

static void on_reap_script(sfl_store *st, redisReply *r, void *arg)
{
    reap_ctx *c = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_ERROR)
        sfl_warn("queue: reap.lua: %s", r->str);
    else if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 && c->fn)
        c->fn(c->name, c->arg);
    free(c);
}

/* reap.lua for one consumer; its own copy of c's callback. */
static void reap_one(sfl_store *st, const reap_ctx *from, const char *name, int64_t gone_idle_ms)
{
    const char *ns = sfl_store_ns(st);
    char jobs[160], node[300], idle[24];
    sfl_queue_key(jobs, sizeof(jobs), ns, NULL, "jobs");
    snprintf(node, sizeof(node), "%s:node:%s", ns, name); /* the node registry (cmd_node.c) */
    snprintf(idle, sizeof(idle), "%" PRId64, gone_idle_ms);
    reap_ctx *c = malloc(sizeof(*c));
    if (!c)
        return;
    *c = *from;
    snprintf(c->name, sizeof(c->name), "%s", name);
    const char *keys[2] = {jobs, node};
    const char *args[3] = {SFL_QUEUE_GROUP, name, idle};
    if (sfl_store_eval(st, "reap", 2, keys, 3, args, on_reap_script, c) < 0)
        free(c);
}

static void on_consumers(sfl_store *st, redisReply *r, void *arg)
{
    reap_ctx *c = arg;
    sfl_queue_consumer *v;
    size_t n;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) != 0)
        sfl_warn("queue: %s", r->str);
    if (r && sfl_queue_decode_consumers(r, &v, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            /* Nothing pending and quiet for a claim time: maybe stopped;
             * reap.lua decides, atomically. */
            if (v[i].pending == 0 && v[i].idle_ms >= c->claim_idle_ms &&
                strcmp(v[i].name, c->self) != 0)
                reap_one(st, c, v[i].name, c->claim_idle_ms * SFL_QUEUE_GONE_IDLES);
        free(v);
    }
    free(c);
}

int sfl_queue_reap(sfl_store *st, const char *self, int64_t claim_idle_ms, sfl_queue_reaped_fn *fn,
                   void *arg)
{
    char key[160];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "jobs");
    reap_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->fn = fn;
    c->arg = arg;
    c->claim_idle_ms = claim_idle_ms;
    snprintf(c->self, sizeof(c->self), "%s", self ? self : "");
    const char *argv[4] = {"XINFO", "CONSUMERS", key, SFL_QUEUE_GROUP};
    if (sfl_store_command(st, on_consumers, c, 4, argv) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int sfl_queue_leave(sfl_store *st, const char *consumer, sfl_queue_reaped_fn *fn, void *arg)
{
    if (!sfl_store_ready(st))
        return -1;
    reap_ctx c = {.fn = fn, .arg = arg};
    reap_one(st, &c, consumer, 0);
    return 0;
}

/*--- Queue depth -----------------------------------------------------------*/

int sfl_queue_decode_groups(const redisReply *r, long long *lag, long long *pending)
{
    for (size_t g = 0; r && r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        const redisReply *grp = r->element[g];
        int ours = 0;
        long long l = -1, p = 0;
        for (size_t i = 0; grp->type == REDIS_REPLY_ARRAY && i + 1 < grp->elements; i += 2) {
            const char *k = grp->element[i]->str;
            const redisReply *v = grp->element[i + 1];
            if (!k)
                continue;
            if (strcmp(k, "name") == 0 && v->str && strcmp(v->str, SFL_QUEUE_GROUP) == 0)
                ours = 1;
            else if (strcmp(k, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                l = v->integer;
            else if (strcmp(k, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                p = v->integer;
        }
        if (ours) {
            *lag = l;
            *pending = p;
            return 0;
        }
    }
    return -1;
}

typedef struct depth_ctx {
    sfl_queue_depth_fn *fn;
    void *arg;
    int owed;
    int ok;
    long long lag, pending, len;
} depth_ctx;

static void depth_step(depth_ctx *c)
{
    if (--c->owed > 0)
        return;
    long long depth = c->lag;
    if (c->ok && depth < 0) {
        /* Every entry delivered and acknowledged has been deleted (result.lua):
         * what the stream holds beyond the pending ones is undelivered. */
        depth = c->len - c->pending;
        if (depth < 0)
            depth = 0;
    }
    c->fn(c->ok, depth, c->pending, c->arg);
    free(c);
}

static void on_depth_groups(sfl_store *st, redisReply *r, void *arg)
{
    depth_ctx *c = arg;
    UNUSED(st);
    if (sfl_queue_decode_groups(r, &c->lag, &c->pending) < 0)
        c->ok = 0;
    depth_step(c);
}

static void on_depth_len(sfl_store *st, redisReply *r, void *arg)
{
    depth_ctx *c = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_INTEGER)
        c->len = r->integer;
    else
        c->ok = 0;
    depth_step(c);
}

int sfl_queue_depth(sfl_store *st, sfl_queue_depth_fn *fn, void *arg)
{
    char key[160];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "jobs");
    depth_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    *c = (depth_ctx){.fn = fn, .arg = arg, .owed = 1, .ok = 1, .lag = -1};
    const char *groups[3] = {"XINFO", "GROUPS", key};
    const char *len[2] = {"XLEN", key};
    if (sfl_store_command(st, on_depth_groups, c, 3, groups) < 0) {
        free(c);
        return -1;
    }
    /* Sent right after, so answered right after: both describe one moment. */
    c->owed++;
    if (sfl_store_command(st, on_depth_len, c, 2, len) < 0) {
        c->owed--;
        c->ok = 0;
    }
    return 0;
}
