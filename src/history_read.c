/* history_read.c - a login's usage history and a stream's last results,
 * read back from Redis (history_read.h).
 *
 * A read is one pipeline: an HGETALL per UTC hour key the range touches
 * (sent back to back on the store's connection: one round trip however
 * many hours, never one per minute) and an HMGET of the login's conf for
 * its limit now. Each answer is summed into the range's steps as it comes
 * (the series: one slot per point, pure and unit-tested); when the last is
 * in, the document is built and handed over once.
 *
 * What Redis holds may have been written by another version or by hand: a
 * value that is not the format (history_read.h) fails the read with a
 * message naming the key and the field, never a crash and never a guess.
 * Positions a writer left out read 0; a minute nobody wrote is a minute of
 * zeros, and a step without any has nulls where nothing can be said.
 */
#include "history_read.h"

#include "keys.h"
#include "learned.h"
#include "metrics.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETENTION_MAX_S (366LL * 86400)

/*--- One minute's value ----------------------------------------------------*/

int sfl_history_decode(const char *csv, size_t len, long long v[SFL_HIST_NPOS], char *err,
                       size_t errlen)
{
    memset(v, 0, sizeof(long long) * SFL_HIST_NPOS);
    size_t i = 0;
    int pos = 0;
    for (;; pos++) {
        size_t start = i;
        int neg = i < len && csv[i] == '-';
        if (neg)
            i++;
        long long x = 0;
        size_t ndig = 0;
        for (; i < len && csv[i] >= '0' && csv[i] <= '9'; i++, ndig++) {
            if (x > (999999999999999999LL - (csv[i] - '0')) / 10) {
                snprintf(err, errlen, "position %d: number too large", pos);
                return -1;
            }
            x = x * 10 + (csv[i] - '0');
        }
        if (ndig == 0 || (i < len && csv[i] != ',')) {
            size_t end = i;
            while (end < len && csv[end] != ',')
                end++;
            snprintf(err, errlen, "position %d: \"%.*s\" is not an integer", pos,
                     (int)(end - start > 24 ? 24 : end - start), csv + start);
            return -1;
        }
        if (neg)
            x = -x;
        if (x < (pos == SFL_HIST_LIMIT ? -1 : 0)) {
            snprintf(err, errlen, "position %d: %lld is below %d", pos, x,
                     pos == SFL_HIST_LIMIT ? -1 : 0);
            return -1;
        }
        if (pos < SFL_HIST_NPOS)
            v[pos] = x;
        if (i >= len)
            break;
        i++; /* the comma */
    }
    if (pos + 1 < SFL_HISTORY_REQUIRED) {
        snprintf(err, errlen, "%d positions; at least %d expected", pos + 1, SFL_HISTORY_REQUIRED);
        return -1;
    }
    return 0;
}

double sfl_history_quantile_ms(const long long bins[SFL_HISTORY_BINS], double q)
{
    long long total = 0;
    for (int i = 0; i < SFL_HISTORY_BINS; i++)
        total += bins[i];
    if (total <= 0)
        return -1;
    long long rank = (long long)ceil(q * (double)total);
    if (rank < 1)
        rank = 1;
    long long cum = 0;
    int i = 0;
    for (; i < SFL_HISTORY_BINS - 1; i++) {
        cum += bins[i];
        if (cum >= rank)
            break;
    }
    if (i >= SFL_WAIT_BUCKETS)
        i = SFL_WAIT_BUCKETS - 1; /* above the last bound: at least that */
    return (double)llround(sfl_wait_bounds[i] * 1e6) / 1000.0;
}

long long sfl_history_effective_limit(const char *max_streams, const char *panel_max,
                                      const char *learned)
{
    char *end;
    if (!max_streams || !*max_streams)
        return -1;
    errno = 0;
    double limit = strtod(max_streams, &end);
    if (*end || errno || limit < 0)
        return -1;
    const char *text[2] = {panel_max, learned};
    double caps[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        caps[i] = text[i] ? strtod(text[i], &end) : 0;
        if (text[i] && *end)
            caps[i] = 0; /* tonumber() would give nil: no cap */
    }
    return (long long)floor(sfl_effective_limit(limit, caps[0], caps[1]));
}

/*--- The series ------------------------------------------------------------*/

typedef struct point {
    int minutes;                /* with a record */
    long long v[SFL_HIST_NPOS]; /* sums and maxima by position; v[PEAK] = max(start, peak) */
    long long limit;            /* of the newest minute that knew one, or -1 */
    int64_t limit_at;
} point;

struct sfl_history_series {
    sfl_history_range r;
    point *p;
    long long last_limit;
    int64_t last_limit_at;
};

static int is_max(int pos)
{
    return pos == SFL_HIST_PEAK || pos == SFL_HIST_LIMIT || pos == SFL_HIST_OTHERS_PEAK ||
           pos == SFL_HIST_WAITING_PEAK;
}

sfl_history_series *sfl_history_series_new(const sfl_history_range *r)
{
    sfl_history_series *s = calloc(1, sizeof(*s));
    if (!s || r->npoints < 1 || !(s->p = calloc((size_t)r->npoints, sizeof(point)))) {
        free(s);
        return NULL;
    }
    s->r = *r;
    s->last_limit = -1;
    for (int64_t i = 0; i < r->npoints; i++)
        s->p[i].limit = -1;
    return s;
}

void sfl_history_series_free(sfl_history_series *s)
{
    if (!s)
        return;
    free(s->p);
    free(s);
}

void sfl_history_series_add(sfl_history_series *s, int64_t minute_s,
                            const long long v[SFL_HIST_NPOS])
{
    if (minute_s < s->r.from_s || minute_s >= s->r.to_s)
        return;
    point *p = &s->p[(minute_s - s->r.from_s) / s->r.step_s];
    p->minutes++;
    for (int i = 0; i < SFL_HIST_NPOS; i++) {
        long long x = i == SFL_HIST_PEAK && v[SFL_HIST_START] > v[i] ? v[SFL_HIST_START] : v[i];
        if (i == SFL_HIST_LIMIT)
            continue;
        if (!is_max(i))
            p->v[i] += x;
        else if (x > p->v[i])
            p->v[i] = x;
    }
    if (v[SFL_HIST_LIMIT] >= 0 && (p->limit < 0 || minute_s > p->limit_at)) {
        p->limit = v[SFL_HIST_LIMIT];
        p->limit_at = minute_s;
    }
    if (v[SFL_HIST_LIMIT] >= 0 && (s->last_limit < 0 || minute_s > s->last_limit_at)) {
        s->last_limit = v[SFL_HIST_LIMIT];
        s->last_limit_at = minute_s;
    }
}

int sfl_history_series_add_hash(sfl_history_series *s, int64_t hour_s, const struct redisReply *r,
                                const char *key, char *err, size_t errlen)
{
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %.200s", key, r->str ? r->str : "error");
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        snprintf(err, errlen, "%s: not a hash of minutes", key);
        return -1;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *val = r->element[i + 1];
        char why[160];
        long long v[SFL_HIST_NPOS];
        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "%s: not a hash of minutes", key);
            return -1;
        }
        int minute = -1;
        if (f->len == 1 && f->str[0] >= '0' && f->str[0] <= '9')
            minute = f->str[0] - '0';
        else if (f->len == 2 && f->str[0] >= '1' && f->str[0] <= '5' && f->str[1] >= '0' &&
                 f->str[1] <= '9')
            minute = (f->str[0] - '0') * 10 + (f->str[1] - '0');
        if (minute < 0) {
            snprintf(err, errlen, "%s: field \"%.20s\" is not a minute (0 to 59)", key, f->str);
            return -1;
        }
        if (sfl_history_decode(val->str, val->len, v, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: minute %d: %s", key, minute, why);
            return -1;
        }
        sfl_history_series_add(s, hour_s + 60LL * minute, v);
    }
    return 0;
}

long long sfl_history_series_last_limit(const sfl_history_series *s)
{
    return s->last_limit;
}

static cJSON *add_num(cJSON *o, const char *name, double v)
{
    return cJSON_AddNumberToObject(o, name, v);
}

/* A number, or null when v < 0. */
static cJSON *add_or_null(cJSON *o, const char *name, double v)
{
    return v < 0 ? cJSON_AddNullToObject(o, name) : cJSON_AddNumberToObject(o, name, v);
}

static int point_json(const sfl_history_series *s, int64_t i, cJSON *list)
{
    const point *p = &s->p[i];
    int64_t t = s->r.from_s + i * s->r.step_s;
    int64_t span = s->r.to_s - t < s->r.step_s ? s->r.to_s - t : s->r.step_s;
    char iso[32];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(list, o))
        return cJSON_Delete(o), -1;
    sfl_history_iso(t, iso, sizeof(iso));
    int ok = cJSON_AddStringToObject(o, "t", iso) && add_num(o, "t_ms", (double)t * 1000) &&
             add_num(o, "minutes", p->minutes) &&
             add_num(o, "in_use_peak", (double)p->v[SFL_HIST_PEAK]);
    /* Lease-milliseconds over the step's milliseconds in the range. */
    double mean = (double)p->v[SFL_HIST_HELD_MS] / ((double)span * 1000.0);
    ok = ok && add_num(o, "in_use_mean", round(mean * 100) / 100) &&
         add_or_null(o, "limit", p->minutes ? (double)p->limit : -1) &&
         add_num(o, "others_peak", (double)p->v[SFL_HIST_OTHERS_PEAK]) &&
         add_or_null(o, "others_mean",
                     p->v[SFL_HIST_OTHERS_N] > 0 ? round((double)p->v[SFL_HIST_OTHERS_SUM] /
                                                         (double)p->v[SFL_HIST_OTHERS_N] * 100) /
                                                       100
                                                 : -1) &&
         add_num(o, "waiting_peak", (double)p->v[SFL_HIST_WAITING_PEAK]);
    static const struct {
        const char *name;
        int pos;
    } counts[] = {{"grants", SFL_HIST_GRANTS},   {"denials", SFL_HIST_DENIALS},
                  {"lost", SFL_HIST_LOST},       {"preempted", SFL_HIST_PREEMPTED},
                  {"refused", SFL_HIST_REFUSED}, {"checks", SFL_HIST_CHECKS},
                  {"waits", SFL_HIST_WAITS}};
    for (size_t k = 0; ok && k < sizeof(counts) / sizeof(counts[0]); k++)
        ok = add_num(o, counts[k].name, (double)p->v[counts[k].pos]) != NULL;
    const long long *bins = &p->v[SFL_HIST_WAIT_BIN0];
    ok = ok && add_or_null(o, "wait_p50_ms", sfl_history_quantile_ms(bins, 0.50)) &&
         add_or_null(o, "wait_p95_ms", sfl_history_quantile_ms(bins, 0.95));
    return ok ? 0 : -1;
}

int sfl_history_series_json(const sfl_history_series *s, cJSON *doc)
{
    char from[32], to[32];
    sfl_history_iso(s->r.from_s, from, sizeof(from));
    sfl_history_iso(s->r.to_s, to, sizeof(to));
    cJSON *list;
    if (!cJSON_AddStringToObject(doc, "from", from) || !cJSON_AddStringToObject(doc, "to", to) ||
        !add_num(doc, "step_s", (double)s->r.step_s) ||
        !(list = cJSON_AddArrayToObject(doc, "points")))
        return -1;
    for (int64_t i = 0; i < s->r.npoints; i++)
        if (point_json(s, i, list) < 0)
            return -1;
    return 0;
}

/*--- Reading a login's history ---------------------------------------------*/

typedef struct read_ctx read_ctx;

typedef struct hour_ask {
    read_ctx *c;
    int64_t hour_s;
    char key[200];
} hour_ask;

struct read_ctx {
    sfl_history_fn *fn;
    void *arg;
    sfl_history_series *s;
    char login[128];
    long long *accounts;
    size_t naccounts;
    hour_ask *hours;
    int owed;
    int failed;
    int garbled; /* the failure is a key not in the format */
    char err[512];
    long long conf_limit; /* -1: none read */
};

static void read_free(read_ctx *c)
{
    sfl_history_series_free(c->s);
    free(c->accounts);
    free(c->hours);
    free(c);
}

static void read_finish(read_ctx *c)
{
    if (--c->owed > 0)
        return;
    cJSON *doc = c->failed ? NULL : cJSON_CreateObject();
    cJSON *accs = NULL;
    int ok = doc && cJSON_AddStringToObject(doc, "login", c->login) &&
             (accs = cJSON_AddArrayToObject(doc, "accounts"));
    for (size_t i = 0; ok && i < c->naccounts; i++)
        ok = cJSON_AddItemToArray(accs, cJSON_CreateNumber((double)c->accounts[i]));
    long long now = c->conf_limit >= 0 ? c->conf_limit : sfl_history_series_last_limit(c->s);
    /* The spec's order: login, accounts, from, to, step_s, limit_now, points. */
    cJSON *tmp = ok ? cJSON_CreateObject() : NULL;
    ok = tmp && sfl_history_series_json(c->s, tmp) == 0;
    static const char *const moved[] = {"from", "to", "step_s", NULL, "points"};
    for (size_t i = 0; ok && i < sizeof(moved) / sizeof(moved[0]); i++)
        ok = moved[i]
                 ? cJSON_AddItemToObject(doc, moved[i], cJSON_DetachItemFromObject(tmp, moved[i]))
                 : add_or_null(doc, "limit_now", (double)now) != NULL;
    cJSON_Delete(tmp);
    if (ok)
        c->fn(doc, 0, NULL, c->arg);
    else
        c->fn(NULL, c->garbled, c->failed ? c->err : "out of memory", c->arg);
    cJSON_Delete(doc);
    read_free(c);
}

static void fail(read_ctx *c, const char *msg)
{
    if (!c->failed)
        snprintf(c->err, sizeof(c->err), "%s", msg);
    c->failed = 1;
}

static void on_hour(sfl_store *st, redisReply *r, void *arg)
{
    hour_ask *a = arg;
    read_ctx *c = a->c;
    char err[400];
    (void)st;
    if (!r)
        fail(c, "no answer from Redis while reading the history");
    else if (!c->failed &&
             sfl_history_series_add_hash(c->s, a->hour_s, r, a->key, err, sizeof(err)) < 0) {
        fail(c, err);
        c->garbled = 1;
    }
    read_finish(c);
}

static void on_conf(sfl_store *st, redisReply *r, void *arg)
{
    read_ctx *c = arg;
    (void)st;
    if (!r)
        fail(c, "no answer from Redis while reading the login's limit");
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        const char *f[3];
        for (int i = 0; i < 3; i++)
            f[i] = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
        c->conf_limit = sfl_history_effective_limit(f[0], f[1], f[2]);
    }
    read_finish(c);
}

int sfl_history_read(sfl_store *st, const sfl_history_query *q, sfl_history_fn *fn, void *arg)
{
    if (!sfl_store_ready(st))
        return -1;
    read_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->fn = fn;
    c->arg = arg;
    c->conf_limit = -1;
    snprintf(c->login, sizeof(c->login), "%s", q->login);
    /* Only hours some retention may still hold, and at least one. */
    int64_t lo = q->range.from_s, hi = q->range.to_s;
    if (lo < q->now_s - RETENTION_MAX_S)
        lo = q->now_s - RETENTION_MAX_S;
    if (hi > q->now_s + 86400)
        hi = q->now_s + 86400;
    if (lo >= hi) {
        lo = q->range.from_s;
        hi = lo + 1;
    }
    lo -= lo % 3600;
    size_t nhours = (size_t)((hi - lo + 3599) / 3600);
    c->s = sfl_history_series_new(&q->range);
    c->hours = calloc(nhours, sizeof(hour_ask));
    c->accounts = q->naccounts ? calloc(q->naccounts, sizeof(long long)) : NULL;
    if (!c->s || !c->hours || (q->naccounts && !c->accounts)) {
        read_free(c);
        return -1;
    }
    if (q->naccounts)
        memcpy(c->accounts, q->accounts, q->naccounts * sizeof(long long));
    c->naccounts = q->naccounts;
    const char *ns = sfl_store_ns(st);
    c->owed = 1;
    int sent = 0;
    for (size_t i = 0; i < nhours && !c->failed; i++) {
        hour_ask *a = &c->hours[i];
        a->c = c;
        a->hour_s = lo + 3600 * (int64_t)i;
        sfl_history_hour_key(a->key, sizeof(a->key), ns, q->login, a->hour_s);
        const char *argv[2] = {"HGETALL", a->key};
        if (sfl_store_command(st, on_hour, a, 2, argv) < 0)
            fail(c, "Redis went away while reading the history");
        else
            c->owed++, sent++;
    }
    if (q->conf_key && !c->failed) {
        const char *argv[5] = {"HMGET", q->conf_key, "max_streams", "panel_max", "learned_limit"};
        if (sfl_store_command(st, on_conf, c, 5, argv) < 0)
            fail(c, "Redis went away while reading the history");
        else
            c->owed++, sent++;
    }
    if (!sent) {
        read_free(c);
        return -1;
    }
    read_finish(c);
    return 0;
}

/*--- Reading a stream's last results ---------------------------------------*/

typedef struct stream_ctx {
    sfl_history_fn *fn;
    void *arg;
    long long id;
} stream_ctx;

static void on_stream(sfl_store *st, redisReply *r, void *arg)
{
    stream_ctx *c = arg;
    (void)st;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        c->fn(NULL, 0,
              r && r->type == REDIS_REPLY_ERROR ? r->str
                                                : "no answer from Redis while reading results",
              c->arg);
        free(c);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    char digits[24];
    snprintf(digits, sizeof(digits), "%lld", c->id);
    cJSON *list = NULL;
    int ok = doc && cJSON_AddRawToObject(doc, "stream_id", digits) &&
             (list = cJSON_AddArrayToObject(doc, "results"));
    for (size_t i = 0; ok && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        cJSON *one = e->type == REDIS_REPLY_STRING ? cJSON_Parse(e->str) : NULL;
        /* Sent as stored (ids past 2^53 keep their digits), if it is an object. */
        if (cJSON_IsObject(one))
            ok = cJSON_AddItemToArray(list, cJSON_CreateRaw(e->str));
        cJSON_Delete(one);
    }
    if (ok)
        c->fn(doc, 0, NULL, c->arg);
    else
        c->fn(NULL, 0, "out of memory", c->arg);
    cJSON_Delete(doc);
    free(c);
}

int sfl_history_stream_read(sfl_store *st, long long stream_id, int limit, sfl_history_fn *fn,
                            void *arg)
{
    stream_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    *c = (stream_ctx){fn, arg, stream_id};
    char key[200], stop[24];
    sfl_history_stream_key(key, sizeof(key), sfl_store_ns(st), stream_id);
    snprintf(stop, sizeof(stop), "%d", limit - 1);
    const char *argv[4] = {"LRANGE", key, "0", stop};
    if (sfl_store_command(st, on_stream, c, 4, argv) < 0) {
        free(c);
        return -1;
    }
    return 0;
}
