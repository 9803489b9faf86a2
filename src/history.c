/* history.c - gathers, per login and minute, what this process saw of its
 * leases and checks, and sends it to Redis as deltas; pushes each stream's
 * results to its own short list.
 *
 * Why so: the issue wants usage over days at no extra round trip per
 * lease. So nothing here talks to Redis on an event: events only add to a
 * record in memory (one per login and wall-clock minute, the positions of
 * history.h), and every history.flush_ms the records go out, one
 * lua/history.lua call per (login, hour), pipelined in one loop turn; the
 * script adds the sums and keeps the larger of the maxima, so that several
 * processes and several flushes of one minute add up. A flush that finds
 * nothing sends nothing.
 *
 * held_ms and start come from this process's own leases: each live lease
 * knows its login and up to when its time was counted. Before any event
 * the clock is advanced minute by minute: the time each live lease held in
 * the minute that ends is counted there, and each counts once in the next
 * minute's start. A flush counts the time up to now. Minutes follow the
 * wall clock, floored; a clock stepped back is not followed (events stay in
 * the latest minute seen).
 *
 * Memory is bounded: records are dropped after a flush that sent them, and
 * while Redis is away the minutes older than KEEP_MINUTES (or beyond
 * MAX_RECORDS) are dropped, oldest first, with a warning.
 *
 * This file must never delay or change a lease: it only listens. */
#include "history.h"

#include "check.h"
#include "clock.h"
#include "conf.h"
#include "keys.h"
#include "limiter.h"
#include "log.h"
#include "metrics.h"
#include "routes.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEEP_MINUTES 120  /* unsent minutes older than this are dropped */
#define MAX_RECORDS 20000 /* ... and never more records than this */
#define MAX_ADVANCE 180   /* minutes walked one by one; a longer gap is jumped */
#define ID_MAX 96

typedef struct record {
    char login[SFL_LOGIN_ID_LEN];
    int64_t minute; /* wall-clock ms / 60000 */
    long long v[SFL_HIST_NPOS];
} record;

typedef struct live {
    char id[ID_MAX];
    char login[SFL_LOGIN_ID_LEN];
    long long account;
    int64_t counted_ms; /* its held time is counted up to here (wall clock) */
} live;

struct sfl_history {
    struct event_base *base;
    sfl_store *store;
    sfl_limiter *lim;
    char ns[128];
    int64_t retention_ms;
    int stream_results;
    struct event *timer;
    record *recs;
    size_t nrecs, caprecs;
    live *lives;
    size_t nlives, caplives;
    int64_t minute; /* the latest minute seen; 0 before the first event */
    int pending;
    int warned;
};

/*--- Records ---------------------------------------------------------------*/

typedef struct find_login {
    const char *id;
    long long known;
} find_login;

static void find_in_route(const sfl_route *rt, void *arg)
{
    find_login *f = arg;
    const sfl_login *lg = f->known < 0 ? sfl_route_login(rt, f->id, NULL) : NULL;
    if (lg)
        f->known = lg->known;
}

/* The limit this process knows for login (of account's route; account < 0:
 * of whichever route has it, never making one): -1 if none. */
static long long known_limit(const sfl_history *h, long long account, const char *login)
{
    sfl_routes *routes = h->lim ? sfl_limiter_routes(h->lim) : NULL;
    if (!routes)
        return -1;
    if (account < 0) {
        find_login f = {login, -1};
        sfl_routes_each(routes, find_in_route, &f);
        return f.known;
    }
    const sfl_route *rt = sfl_routes_get(routes, account);
    const sfl_login *lg = rt ? sfl_route_login(rt, login, NULL) : NULL;
    return lg ? lg->known : -1;
}

/* The record of (login, minute), made if missing; NULL when out of memory. */
static record *rec_at(sfl_history *h, long long account, const char *login, int64_t minute)
{
    for (size_t i = h->nrecs; i-- > 0;)
        if (h->recs[i].minute == minute && strcmp(h->recs[i].login, login) == 0)
            return &h->recs[i];
    if (h->nrecs == MAX_RECORDS)
        return NULL;
    if (h->nrecs == h->caprecs) {
        size_t cap = h->caprecs ? 2 * h->caprecs : 16;
        record *n = realloc(h->recs, cap * sizeof(*n));
        if (!n)
            return NULL;
        h->recs = n;
        h->caprecs = cap;
    }
    record *r = &h->recs[h->nrecs++];
    memset(r, 0, sizeof(*r));
    snprintf(r->login, sizeof(r->login), "%s", login);
    r->minute = minute;
    r->v[SFL_HIST_LIMIT] = known_limit(h, account, login);
    return r;
}

static record *rec_now(sfl_history *h, long long account, const char *login)
{
    return rec_at(h, account, login, h->minute);
}

static void vmax(long long *v, long long x)
{
    if (x > *v)
        *v = x;
}

/* The time lease l held from its last count up to at_ms, into the current
 * minute (at_ms never lies past its end: advance() cuts there). */
static void count_held(sfl_history *h, live *l, int64_t at_ms)
{
    if (at_ms <= l->counted_ms)
        return;
    record *r = rec_now(h, l->account, l->login);
    if (r)
        r->v[SFL_HIST_HELD_MS] += at_ms - l->counted_ms;
    l->counted_ms = at_ms;
}

/* Moves the current minute up to now's, minute by minute: the held time of
 * each live lease is counted in the minute it falls in, and each is one of
 * the next minute's start. Returns now (wall clock, ms). */
static int64_t advance(sfl_history *h)
{
    int64_t now = sfl_wall_ms(), m = now / 60000;
    if (h->minute == 0 || m - h->minute > MAX_ADVANCE) {
        /* The first event, or a gap too long to walk (a suspended host, a
         * clock stepped far ahead): the leases' time before it is not counted. */
        h->minute = m;
        for (size_t i = 0; i < h->nlives; i++) {
            h->lives[i].counted_ms = now;
            record *r = rec_now(h, h->lives[i].account, h->lives[i].login);
            if (r)
                r->v[SFL_HIST_START]++;
        }
        return now;
    }
    while (h->minute < m) {
        int64_t boundary = (h->minute + 1) * 60000;
        for (size_t i = 0; i < h->nlives; i++)
            count_held(h, &h->lives[i], boundary);
        h->minute++;
        for (size_t i = 0; i < h->nlives; i++) {
            record *r = rec_now(h, h->lives[i].account, h->lives[i].login);
            if (r)
                r->v[SFL_HIST_START]++;
        }
    }
    return now;
}

static int live_count(const sfl_history *h, const char *login)
{
    int n = 0;
    for (size_t i = 0; i < h->nlives; i++)
        n += strcmp(h->lives[i].login, login) == 0;
    return n;
}

static live *live_find(sfl_history *h, const char *id)
{
    for (size_t i = 0; i < h->nlives; i++)
        if (strcmp(h->lives[i].id, id) == 0)
            return &h->lives[i];
    return NULL;
}

static void live_add(sfl_history *h, long long account, const char *login, const char *id,
                     int64_t now)
{
    if (h->nlives == h->caplives) {
        size_t cap = h->caplives ? 2 * h->caplives : 8;
        live *n = realloc(h->lives, cap * sizeof(*n));
        if (!n)
            return; /* its held time goes uncounted */
        h->lives = n;
        h->caplives = cap;
    }
    live *l = &h->lives[h->nlives++];
    snprintf(l->id, sizeof(l->id), "%s", id);
    snprintf(l->login, sizeof(l->login), "%s", login);
    l->account = account;
    l->counted_ms = now;
}

/*--- Events ----------------------------------------------------------------*/

/* Calls fn on the record of every login of account's route. */
static void each_login(sfl_history *h, long long account, void (*fn)(record *r, const void *arg),
                       const void *arg)
{
    sfl_routes *routes = h->lim ? sfl_limiter_routes(h->lim) : NULL;
    const sfl_route *rt = routes ? sfl_routes_get(routes, account) : NULL;
    for (size_t i = 0; rt && i < rt->nlogins; i++) {
        record *r = rec_now(h, account, rt->logins[i]->id);
        if (r)
            fn(r, arg);
    }
}

static void on_denied(record *r, const void *arg)
{
    const sfl_limiter_event *ev = arg;
    r->v[SFL_HIST_DENIALS]++;
    vmax(&r->v[SFL_HIST_WAITING_PEAK], ev->position);
}

static void add_wait(record *r, int64_t wait_ms)
{
    double s = (double)wait_ms / 1000.0;
    int bin = SFL_WAIT_BUCKETS;
    for (int i = 0; i < SFL_WAIT_BUCKETS; i++)
        if (s <= sfl_wait_bounds[i]) {
            bin = i;
            break;
        }
    r->v[SFL_HIST_WAITS]++;
    r->v[SFL_HIST_WAIT_BIN0 + bin]++;
}

static void on_event(const sfl_limiter_event *ev, void *arg)
{
    sfl_history *h = arg;
    int64_t now = advance(h);
    record *r;
    live *l;
    switch (ev->kind) {
    case SFL_LIM_GRANT:
        live_add(h, ev->account, ev->login, ev->lease_id, now);
        if (!(r = rec_now(h, ev->account, ev->login)))
            return;
        r->v[SFL_HIST_GRANTS]++;
        vmax(&r->v[SFL_HIST_PEAK], ev->in_use);
        vmax(&r->v[SFL_HIST_PEAK], live_count(h, ev->login));
        vmax(&r->v[SFL_HIST_LIMIT], ev->limit);
        break;
    case SFL_LIM_DENY:
        each_login(h, ev->account, on_denied, ev);
        break;
    case SFL_LIM_LOST:
        if ((r = rec_now(h, ev->account, ev->login)))
            r->v[SFL_HIST_LOST]++;
        break;
    case SFL_LIM_RELEASE:
        if ((l = live_find(h, ev->lease_id))) {
            count_held(h, l, now);
            *l = h->lives[--h->nlives];
        }
        break;
    case SFL_LIM_WAIT:
        sfl_history_wait(h, ev->account, ev->login, ev->wait_ms);
        break;
    }
}

void sfl_history_check(sfl_history *h, long long account, const char *login, int status)
{
    if (!h || !login || !login[0])
        return;
    advance(h);
    record *r = rec_now(h, account, login);
    if (!r)
        return;
    r->v[SFL_HIST_CHECKS]++;
    if (status == SFL_STATUS_PREEMPTED)
        r->v[SFL_HIST_PREEMPTED]++;
    else if (status == SFL_STATUS_REFUSED)
        r->v[SFL_HIST_REFUSED]++;
}

void sfl_history_wait(sfl_history *h, long long account, const char *login, int64_t wait_ms)
{
    if (!h || wait_ms < 0)
        return;
    advance(h);
    if (login && login[0]) {
        record *r = rec_now(h, account, login);
        if (r)
            add_wait(r, wait_ms);
        return;
    }
    /* Not granted: on the account's first login. */
    sfl_routes *routes = h->lim ? sfl_limiter_routes(h->lim) : NULL;
    const sfl_route *rt = routes ? sfl_routes_get(routes, account) : NULL;
    if (rt && rt->nlogins > 0) {
        record *r = rec_now(h, account, rt->logins[0]->id);
        if (r)
            add_wait(r, wait_ms);
    }
}

void sfl_history_others(sfl_history *h, const char *login, long long count)
{
    if (!h || !login || count < 0)
        return;
    advance(h);
    /* No account here: a new record takes the limit from whichever route
     * has the login (-1 if none). */
    record *r = rec_at(h, -1, login, h->minute);
    if (!r)
        return;
    vmax(&r->v[SFL_HIST_OTHERS_PEAK], count);
    r->v[SFL_HIST_OTHERS_SUM] += count;
    r->v[SFL_HIST_OTHERS_N]++;
}

/*--- Flushing --------------------------------------------------------------*/

static void on_history_reply(sfl_store *st, redisReply *r, void *arg)
{
    sfl_history *h = arg;
    UNUSED(st);
    h->pending--;
    if (r && r->type == REDIS_REPLY_ERROR)
        sfl_warn("history: %s", r->str);
}

/* A record as its csv: positions 0..3 always, then up to the last non-zero. */
static void rec_csv(const record *r, char *buf, size_t len)
{
    int last = SFL_HIST_LIMIT;
    for (int i = SFL_HIST_NPOS - 1; i > SFL_HIST_LIMIT; i--)
        if (r->v[i] != 0) {
            last = i;
            break;
        }
    size_t o = 0;
    for (int i = 0; i <= last && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", r->v[i]);
}

static int rec_order(const void *a, const void *b)
{
    const record *x = a, *y = b;
    int c = strcmp(x->login, y->login);
    if (c)
        return c;
    return x->minute < y->minute ? -1 : x->minute > y->minute;
}

/* Sends recs[from, to) (one login, one hour): 0 sent, -1 not. */
static int send_hour(sfl_history *h, size_t from, size_t to)
{
    char key[SFL_KEY_LEN], at[24];
    int64_t hour_start = h->recs[from].minute / 60 * 60;
    sfl_history_hour_key(key, sizeof(key), h->ns, h->recs[from].login, h->recs[from].minute * 60);
    snprintf(at, sizeof(at), "%" PRId64, (hour_start + 60) * 60000 + h->retention_ms);
    size_t n = to - from;
    const char **args = malloc((1 + 2 * n) * sizeof(*args));
    char(*text)[4 + SFL_HIST_NPOS * 21] = malloc(n * sizeof(*text));
    char(*min)[4] = malloc(n * sizeof(*min));
    int rc = -1;
    if (!args || !text || !min)
        goto done;
    args[0] = at;
    for (size_t i = 0; i < n; i++) {
        snprintf(min[i], sizeof(min[i]), "%d", (int)(h->recs[from + i].minute % 60));
        rec_csv(&h->recs[from + i], text[i], sizeof(text[i]));
        args[1 + 2 * i] = min[i];
        args[2 + 2 * i] = text[i];
    }
    const char *keys[1] = {key};
    rc = sfl_store_eval(h->store, "history", 1, keys, (int)(1 + 2 * n), args, on_history_reply, h);
    if (rc == 0)
        h->pending++;
done:
    free(args);
    free(text);
    free(min);
    return rc;
}

/* Unsent records past the bounds go, oldest first. */
static void drop_old(sfl_history *h)
{
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < h->nrecs; i++) {
        if (h->minute - h->recs[i].minute > KEEP_MINUTES) {
            dropped++;
            continue;
        }
        h->recs[kept++] = h->recs[i];
    }
    h->nrecs = kept;
    if (dropped && !h->warned) {
        h->warned = 1;
        sfl_warn("history: Redis away: minutes older than %d dropped", KEEP_MINUTES);
    }
}

int sfl_history_flush(sfl_history *h)
{
    if (!h)
        return 0;
    int64_t now = advance(h);
    for (size_t i = 0; i < h->nlives; i++)
        count_held(h, &h->lives[i], now);
    if (h->nrecs == 0)
        return 0;
    if (!sfl_store_ready(h->store)) {
        drop_old(h);
        return 0;
    }
    qsort(h->recs, h->nrecs, sizeof(*h->recs), rec_order);
    int calls = 0;
    size_t kept = 0, i = 0;
    while (i < h->nrecs) {
        size_t j = i + 1;
        while (j < h->nrecs && strcmp(h->recs[j].login, h->recs[i].login) == 0 &&
               h->recs[j].minute / 60 == h->recs[i].minute / 60)
            j++;
        if (send_hour(h, i, j) == 0) {
            calls++;
        } else {
            for (size_t k = i; k < j; k++)
                h->recs[kept++] = h->recs[k]; /* kept for the next flush */
        }
        i = j;
    }
    h->nrecs = kept;
    h->warned = h->warned && kept > 0;
    return calls;
}

int sfl_history_pending(const sfl_history *h)
{
    return h ? h->pending : 0;
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    sfl_history_flush(arg);
}

/*--- Per stream --------------------------------------------------------------*/

static const char *const stream_fields[] = {
    "stream_id",  "stream_name",  "status",        "video_codec", "audio_codec", "resolution",
    "fps",        "bitrate_kbps", "lease_wait_ms", "duration_ms", "login",       "node",
    "started_at", "error",        "http_code",     NULL};

static void on_stream_reply(sfl_store *st, redisReply *r, void *arg)
{
    UNUSED(st);
    UNUSED(arg);
    if (r && r->type == REDIS_REPLY_ERROR)
        sfl_warn("stream history: %s", r->str);
}

int sfl_history_stream_result(sfl_history *h, const cJSON *result)
{
    if (!h || h->stream_results <= 0 || !result)
        return -1;
    /* The id is raw digits (streams.c keeps ids past 2^53 exact), or a number. */
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(result, "stream_id");
    long long sid;
    char *end;
    if (cJSON_IsRaw(id) && id->valuestring && id->valuestring[0]) {
        errno = 0;
        sid = strtoll(id->valuestring, &end, 10);
        if (*end || errno)
            return -1;
    } else if (cJSON_IsNumber(id)) {
        sid = (long long)id->valuedouble;
    } else {
        return -1;
    }
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return -1;
    for (size_t i = 0; stream_fields[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(result, stream_fields[i]);
        cJSON *c = v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
        if (!c || !cJSON_AddItemToObject(e, stream_fields[i], c)) {
            cJSON_Delete(c);
            cJSON_Delete(e);
            return -1;
        }
    }
    char *json = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    if (!json)
        return -1;
    char key[SFL_KEY_LEN], keep[16], ttl[24];
    sfl_history_stream_key(key, sizeof(key), h->ns, sid);
    snprintf(keep, sizeof(keep), "%d", h->stream_results);
    snprintf(ttl, sizeof(ttl), "%" PRId64, h->retention_ms);
    const char *keys[1] = {key};
    const char *args[3] = {json, keep, ttl};
    int rc = sfl_store_eval(h->store, "stream_history", 1, keys, 3, args, on_stream_reply, NULL);
    free(json);
    return rc;
}

/*--- Lifecycle -------------------------------------------------------------*/

sfl_history *sfl_history_new(struct event_base *base, sfl_store *store, sfl_limiter *lim,
                             const sfl_conf *conf)
{
    if (!conf->history_enabled)
        return NULL;
    sfl_history *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base = base;
    h->store = store;
    h->lim = lim;
    snprintf(h->ns, sizeof(h->ns), "%s", conf->redis_namespace);
    h->retention_ms = (int64_t)conf->history_retention_days * 86400000;
    h->stream_results = conf->history_stream_results;
    h->timer = event_new(base, -1, EV_PERSIST, on_flush_timer, h);
    if (!h->timer) {
        free(h);
        return NULL;
    }
    sfl_timer_in(h->timer, conf->history_flush_ms);
    if (lim)
        sfl_limiter_on_event(lim, on_event, h);
    return h;
}

void sfl_history_free(sfl_history *h)
{
    if (!h)
        return;
    if (h->lim)
        sfl_limiter_on_event(h->lim, NULL, NULL);
    event_free(h->timer);
    free(h->recs);
    free(h->lives);
    free(h);
}
