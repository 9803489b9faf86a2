/* accounts.c - account limits in Redis: writing them, reading them back.
 *
 * Redis is where every node reads limits from (DESIGN §4): this file writes
 * them (conf.lua, which also opens the recovery window when it creates a conf
 * that did not exist) and reads them back with their live holders
 * (status.lua). The same JSON document serves `sflimit status --json` and
 * the node's GET /v1/accounts.
 *
 * A library: no argv, no printing (a changed limit is logged), no exit
 * codes. The commands that show and set limits are in cmd_accounts.c; the
 * sync from Dispatcharr is in dispatcharr_sync.c.
 */
#include "accounts.h"

#include "conf.h"
#include "keys.h"
#include "log.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*--- Writing limits --------------------------------------------------------*/

typedef struct write_op {
    sfl_accounts_done_fn *fn;
    void *arg;
    int owed;
    int ok;
    char err[256];
} write_op;

typedef struct write_one {
    write_op *op;
    long long id;
    long long max;
} write_one;

static void write_done_one(write_op *op)
{
    if (--op->owed == 0) {
        op->fn(op->ok, op->ok ? NULL : op->err, op->arg);
        free(op);
    }
}

static void write_step(write_op *op, redisReply *r, const char *what)
{
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (op->ok)
            snprintf(op->err, sizeof(op->err), "%s: %s", what, r ? r->str : "no answer from Redis");
        op->ok = 0;
    }
    write_done_one(op);
}

static void on_conf_reply(sfl_store *st, redisReply *r, void *arg)
{
    write_one *w = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        long long prev = r->element[0]->integer;
        if (prev >= 0 && prev != w->max)
            sfl_info("account %lld: max_streams was %lld in Redis, now %lld", w->id, prev, w->max);
        if (r->element[1]->integer > 0)
            sfl_info("account %lld: new in this Redis; new leases wait %lld ms in case its "
                     "data was lost while checks ran",
                     w->id, r->element[1]->integer);
    }
    write_step(w->op, r, "writing account limits");
    free(w);
}

static void on_sadd_reply(sfl_store *st, redisReply *r, void *arg)
{
    UNUSED(st);
    write_step(arg, r, "adding accounts");
}

int sfl_accounts_write(sfl_store *st, const sfl_account_conf *acc, size_t n, int64_t recovery_ms,
                       sfl_accounts_done_fn *fn, void *arg)
{
    if (!sfl_store_ready(st))
        return -1;
    write_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = fn;
    op->arg = arg;
    op->ok = 1;
    op->owed = 1; /* held until every command is sent */
    const char *ns = sfl_store_ns(st);
    char rec[24];
    snprintf(rec, sizeof(rec), "%" PRId64, recovery_ms);
    char setkey[160];
    snprintf(setkey, sizeof(setkey), "%s:accounts", ns);
    for (size_t i = 0; i < n; i++) {
        char key[160], max[24], id[24];
        sfl_account_key(key, sizeof(key), ns, acc[i].id, "conf");
        snprintf(max, sizeof(max), "%lld", acc[i].max_streams);
        snprintf(id, sizeof(id), "%lld", acc[i].id);
        const char *keys[1] = {key};
        const char *args[3] = {max, acc[i].name ? acc[i].name : "", rec};
        write_one *w = malloc(sizeof(*w));
        if (w) {
            *w = (write_one){op, acc[i].id, acc[i].max_streams};
            op->owed++;
            if (sfl_store_eval(st, "conf", 1, keys, 3, args, on_conf_reply, w) < 0) {
                op->owed--;
                free(w);
                w = NULL;
            }
        }
        const char *sadd[3] = {"SADD", setkey, id};
        op->owed++;
        if (!w || sfl_store_command(st, on_sadd_reply, op, 3, sadd) < 0) {
            op->owed--;
            op->ok = 0;
            snprintf(op->err, sizeof(op->err), "Redis went away while writing account limits");
        }
    }
    write_done_one(op);
    return 0;
}

/*--- Reading accounts ------------------------------------------------------*/

typedef struct fetch_op {
    sfl_accounts_fetch_fn *fn;
    void *arg;
    cJSON *doc;
    cJSON *list;
    int owed;
    int failed;
} fetch_op;

typedef struct fetch_one {
    fetch_op *op;
    cJSON *entry;
} fetch_one;

static void fetch_step(fetch_op *op)
{
    if (--op->owed > 0)
        return;
    if (op->failed)
        op->fn(NULL, "no answer from Redis while reading accounts", op->arg);
    else
        op->fn(op->doc, NULL, op->arg);
    cJSON_Delete(op->doc);
    free(op);
}

/* An integer element of a script's answer; 0 when it is something else. */
static long long rep_int(const redisReply *e)
{
    return e->type == REDIS_REPLY_INTEGER ? e->integer : 0;
}

/* Deletes every member named key (a JSON text may give one twice). */
static void drop_member(cJSON *obj, const char *key)
{
    while (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
}

/* Sets obj[key] = item, replacing every member of that name. */
static void set_member(cJSON *obj, const char *key, cJSON *item)
{
    drop_member(obj, key);
    cJSON_AddItemToObject(obj, key, item);
}

int sfl_accounts_status_decode(const redisReply *r, cJSON *e)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 6)
        return -1;
    /* Differences in double: any two int64 from Redis subtract without overflow. */
    double now = (double)rep_int(r->element[4]);
    const redisReply *name = r->element[1];
    cJSON_AddStringToObject(e, "name", name->type == REDIS_REPLY_STRING ? name->str : "");
    cJSON_AddNumberToObject(e, "max_streams", (double)rep_int(r->element[0]));
    cJSON_AddNumberToObject(e, "in_use", (double)rep_int(r->element[2]));
    cJSON_AddNumberToObject(e, "recovering_ms", (double)rep_int(r->element[3]));
    cJSON_AddNumberToObject(e, "waiting", (double)rep_int(r->element[5]));
    cJSON *holders = cJSON_AddArrayToObject(e, "holders");
    for (size_t i = 6; holders && i + 2 < r->elements; i += 3) {
        const redisReply *lease = r->element[i], *info = r->element[i + 2];
        cJSON *h = info->type == REDIS_REPLY_STRING ? cJSON_Parse(info->str) : NULL;
        if (!cJSON_IsObject(h)) {
            cJSON_Delete(h);
            h = cJSON_CreateObject();
            if (!h)
                continue;
        }
        cJSON *since = cJSON_GetObjectItemCaseSensitive(h, "since_ms");
        if (cJSON_IsNumber(since)) {
            set_member(h, "age_ms", cJSON_CreateNumber(now - since->valuedouble));
        }
        drop_member(h, "since_ms");
        set_member(h, "lease",
                   cJSON_CreateString(lease->type == REDIS_REPLY_STRING ? lease->str : ""));
        set_member(h, "expires_in_ms",
                   cJSON_CreateNumber((double)rep_int(r->element[i + 1]) - now));
        cJSON_AddItemToArray(holders, h);
    }
    return 0;
}

static void on_status_reply(sfl_store *st, redisReply *r, void *arg)
{
    fetch_one *f = arg;
    UNUSED(st);
    if (sfl_accounts_status_decode(r, f->entry) < 0)
        f->op->failed = 1;
    fetch_step(f->op);
    free(f);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void on_members_reply(sfl_store *st, redisReply *r, void *arg)
{
    fetch_op *op = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        op->failed = 1;
        fetch_step(op);
        return;
    }
    long long *ids = calloc(r->elements + 1, sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; ids && i < r->elements; i++) {
        char *end;
        const char *s = r->element[i]->str;
        long long v = s ? strtoll(s, &end, 10) : -1;
        if (s && *s && !*end && v >= 0)
            ids[n++] = v;
    }
    qsort(ids, n, sizeof(*ids), cmp_ll);
    for (size_t i = 0; i < n; i++) {
        char keys[4][160];
        sfl_account_key(keys[0], 160, sfl_store_ns(st), ids[i], "leases");
        sfl_account_key(keys[1], 160, sfl_store_ns(st), ids[i], "holders");
        sfl_account_key(keys[2], 160, sfl_store_ns(st), ids[i], "conf");
        sfl_account_key(keys[3], 160, sfl_store_ns(st), ids[i], "waiters:exp");
        const char *kv[4] = {keys[0], keys[1], keys[2], keys[3]};
        fetch_one *f = malloc(sizeof(*f));
        if (!f) {
            op->failed = 1;
            break;
        }
        f->op = op;
        f->entry = cJSON_CreateObject();
        cJSON_AddNumberToObject(f->entry, "id", (double)ids[i]);
        cJSON_AddItemToArray(op->list, f->entry);
        op->owed++;
        if (sfl_store_eval(st, "status", 4, kv, 0, NULL, on_status_reply, f) < 0) {
            op->owed--;
            op->failed = 1;
            free(f);
            break;
        }
    }
    free(ids);
    fetch_step(op);
}

int sfl_accounts_fetch(sfl_store *st, sfl_accounts_fetch_fn *fn, void *arg)
{
    fetch_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = fn;
    op->arg = arg;
    op->doc = cJSON_CreateObject();
    op->list = cJSON_AddArrayToObject(op->doc, "accounts");
    op->owed = 1;
    char setkey[160];
    snprintf(setkey, sizeof(setkey), "%s:accounts", sfl_store_ns(st));
    const char *argv[2] = {"SMEMBERS", setkey};
    if (sfl_store_command(st, on_members_reply, op, 2, argv) < 0) {
        cJSON_Delete(op->doc);
        free(op);
        return -1;
    }
    return 0;
}
