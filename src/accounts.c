/* accounts.c - account limits in Redis: writing them, reading them back.
 *
 * Redis is where every node reads limits from (DESIGN §4): this file writes
 * them (conf.lua; a new account grants at once, unless the whole Redis is in
 * its recovery window: epoch.h) and reads them back with their live holders
 * (status.lua, for each login of each account described.c reads). The same
 * JSON document serves `sflimit status --json` and the node's
 * GET /v1/accounts.
 *
 * A library: no argv, no printing (a changed limit is logged), no exit
 * codes. The commands that show and set limits are in cmd_accounts.c; the
 * sync from Dispatcharr is in dispatcharr_sync.c.
 */
#include "accounts.h"

#include "conf.h"
#include "described.h"
#include "keys.h"
#include "learned.h"
#include "log.h"
#include "routes.h"
#include "store.h"
#include "text.h"

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
    char login[SFL_LOGIN_ID_LEN]; /* "" when the account has one login */
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
        char who[96];
        if (w->login[0])
            snprintf(who, sizeof(who), "account %lld, login %s", w->id, w->login);
        else
            snprintf(who, sizeof(who), "account %lld", w->id);
        if (prev >= 0 && prev != w->max)
            sfl_info("%s: max_streams was %lld in Redis, now %lld", who, prev, w->max);
        /* The recovery window is the whole Redis's (store.c logs why): said
         * here only for a new account, whose wait is otherwise a surprise. */
        if (prev < 0 && r->element[1]->integer > 0)
            sfl_info("%s: new leases wait %lld ms (this Redis's recovery window)", who,
                     r->element[1]->integer);
    }
    write_step(w->op, r, "writing account limits");
    free(w);
}

static void on_sadd_reply(sfl_store *st, redisReply *r, void *arg)
{
    UNUSED(st);
    write_step(arg, r, "adding accounts");
}

/* conf.lua for one login's conf; 0 sent, -1 not. */
static int write_login(sfl_store *st, write_op *op, const sfl_route *rt, size_t i, const char *name,
                       const char *rec)
{
    const sfl_login *lg = rt->logins[i];
    char key[SFL_KEY_LEN], epoch[SFL_KEY_LEN], max[24], reserve[24], cooldown[24], max_age[24];
    snprintf(key, sizeof(key), "%sconf", lg->prefix);
    sfl_epoch_key(epoch, sizeof(epoch), sfl_store_ns(st));
    snprintf(max, sizeof(max), "%lld", lg->max_streams);
    snprintf(reserve, sizeof(reserve), "%lld", lg->reserve);
    snprintf(cooldown, sizeof(cooldown), "%lld", lg->cooldown_ms);
    snprintf(max_age, sizeof(max_age), "%lld", lg->max_age_ms);
    const char *keys[2] = {key, epoch};
    const char *args[6] = {max, name, rec, reserve, cooldown, max_age};
    write_one *w = malloc(sizeof(*w));
    if (!w)
        return -1;
    *w = (write_one){.op = op, .id = rt->account, .max = lg->max_streams};
    if (rt->nlogins > 1 || lg->naccounts > 1)
        snprintf(w->login, sizeof(w->login), "%s", lg->id);
    op->owed++;
    if (sfl_store_eval(st, "conf", 2, keys, 6, args, on_conf_reply, w) < 0) {
        op->owed--;
        free(w);
        return -1;
    }
    return 0;
}

typedef struct describe_ctx {
    write_op *op;
    long long id;
} describe_ctx;

static void on_describe_reply(sfl_store *st, redisReply *r, void *arg)
{
    describe_ctx *d = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        sfl_warn("account %lld: Redis describes logins for it that this config does not give "
                 "(sflimit status shows them); a node that takes it for one login is refused "
                 "until the configs agree, or a PUT /v1/accounts/%lld replaces them",
                 d->id, d->id);
    write_step(d->op, r, "describing account logins");
    free(d);
}

/* account.lua: the route of an account of several logins (or of one under
 * a group's keys) in its own conf, for status readers and as a fence
 * against nodes that take it for a lone login. 0 sent, -1 not. */
static int describe(sfl_store *st, write_op *op, const sfl_route *rt, const char *name,
                    const char *base, int replace)
{
    char key[SFL_KEY_LEN], group[24] = "";
    snprintf(key, sizeof(key), "%sconf", base);
    if (rt->group != rt->account)
        snprintf(group, sizeof(group), "%lld", rt->group);
    char *logins = NULL, self[24];
    snprintf(self, sizeof(self), "%lld", rt->account);
    /* Described unless it is one login named after it under its own keys. */
    if (rt->nlogins > 1 || strcmp(rt->logins[0]->prefix, base) != 0 ||
        strcmp(rt->logins[0]->id, self) != 0 || rt->logins[0]->reserve > 0 ||
        rt->logins[0]->cooldown_ms > 0) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t k = 0; arr && k < rt->nlogins; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", rt->logins[k]->id);
            cJSON_AddNumberToObject(o, "max_streams", (double)rt->logins[k]->max_streams);
            cJSON_AddNumberToObject(o, "reserve", (double)rt->logins[k]->reserve);
            cJSON_AddNumberToObject(o, "cooldown_ms", (double)rt->logins[k]->cooldown_ms);
            cJSON_AddStringToObject(o, "keys", rt->logins[k]->prefix);
            cJSON_AddItemToArray(arr, o);
        }
        logins = arr ? cJSON_PrintUnformatted(arr) : NULL;
        cJSON_Delete(arr);
        if (!logins)
            return -1;
    }
    const char *keys[1] = {key};
    const char *args[5] = {name ? name : "", logins ? logins : "", logins ? rt->waiters : "", group,
                           replace ? "replace" : ""};
    describe_ctx *d = malloc(sizeof(*d));
    int rc = -1;
    if (d) {
        *d = (describe_ctx){op, rt->account};
        op->owed++;
        rc = sfl_store_eval(st, "account", 1, keys, 5, args, on_describe_reply, d);
        if (rc < 0) {
            op->owed--;
            free(d);
        }
    }
    cJSON_free(logins);
    return rc;
}

int sfl_accounts_write(sfl_store *st, sfl_routes *routes, const sfl_account_conf *acc, size_t n,
                       int64_t recovery_ms, unsigned flags, sfl_accounts_done_fn *fn, void *arg)
{
    if (!sfl_store_ready(st))
        return -1;
    sfl_routes *own = NULL;
    char err[256];
    if (!routes) {
        /* The logins of just these accounts. */
        own = sfl_routes_new(sfl_store_ns(st));
        if (!own || sfl_routes_set(own, acc, n, err, sizeof(err)) < 0) {
            sfl_routes_free(own);
            return -1;
        }
        routes = own;
    }
    write_op *op = calloc(1, sizeof(*op));
    if (!op) {
        sfl_routes_free(own);
        return -1;
    }
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
        char id[24], base[SFL_KEY_PREFIX_LEN];
        snprintf(id, sizeof(id), "%lld", acc[i].id);
        snprintf(base, sizeof(base), "%s:{a:%lld}:", ns, acc[i].id);
        const sfl_route *rt = sfl_routes_get(routes, acc[i].id);
        int ok = rt != NULL;
        /* Each login's limit in its conf; the account's name where its own
         * conf is (its first login's, unless it shares a group's keys). */
        for (size_t k = 0; ok && k < rt->nlogins; k++) {
            const char *name =
                strcmp(rt->logins[k]->prefix, base) == 0 && acc[i].name ? acc[i].name : "";
            ok = write_login(st, op, rt, k, name, rec) == 0;
            if (ok && (flags & SFL_ACCOUNTS_FORGET))
                sfl_learned_reset(st, rt->logins[k]->id, rt->logins[k]->prefix);
        }
        if (ok)
            ok = describe(st, op, rt, acc[i].name, base, (flags & SFL_ACCOUNTS_REPLACE) != 0) == 0;
        const char *sadd[3] = {"SADD", setkey, id};
        op->owed++;
        if (!ok || sfl_store_command(st, on_sadd_reply, op, 3, sadd) < 0) {
            op->owed--;
            op->ok = 0;
            snprintf(op->err, sizeof(op->err), "Redis went away while writing account limits");
        }
    }
    sfl_routes_free(own);
    write_done_one(op);
    return 0;
}

/*--- Reading accounts ------------------------------------------------------*/

typedef struct fetch_op {
    sfl_store *st;
    sfl_accounts_fetch_fn *fn;
    void *arg;
    cJSON *doc;
    cJSON *list;
    int owed;
    int failed;
} fetch_op;

/* One account: its description (account.lua), then status.lua per login. */
typedef struct fetch_one {
    fetch_op *op;
    cJSON *entry;
    cJSON *logins; /* entry's "logins": one object per login, filled by its status */
    int owed;      /* status answers still to come */
} fetch_one;

typedef struct fetch_login {
    fetch_one *f;
    cJSON *login;
    int owed; /* answers to come: status.lua's and the conf's others' figure */
    double now, external, at, max_age;
    char source[32];
    /* What its panel said and what it learned (learn.lua); -1: none. */
    double panel_max, learned, learned_at, panel_at;
    int probing;
    char exp_date[24], panel_status[40], reason[200];
} fetch_login;

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
        /* age_ms is ours: computed, or absent (a holder written by hand may
         * carry any, even twice). */
        if (cJSON_IsNumber(since))
            set_member(h, "age_ms", cJSON_CreateNumber(now - since->valuedouble));
        else
            drop_member(h, "age_ms");
        drop_member(h, "since_ms");
        set_member(h, "lease",
                   cJSON_CreateString(lease->type == REDIS_REPLY_STRING ? lease->str : ""));
        set_member(h, "expires_in_ms",
                   cJSON_CreateNumber((double)rep_int(r->element[i + 1]) - now));
        cJSON_AddItemToArray(holders, h);
    }
    return 0;
}

static double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The account as the sum of its logins: max_streams (0 if one is unlimited,
 * -1 if one has no conf), in_use, recovering_ms (the longest), waiting and
 * every holder, each naming its login. */
static void account_total(fetch_one *f)
{
    double max = 0, in_use = 0, recovering = 0, waiting = 0, eff = 0;
    int unlimited = 0, unknown = 0, eff_unlimited = 0, expiring = 0;
    cJSON *holders = cJSON_CreateArray();
    const cJSON *l;
    cJSON_ArrayForEach(l, f->logins)
    {
        double m = num_of(l, "max_streams"), e = num_of(l, "effective_limit");
        eff_unlimited |= e == 0;
        eff += e;
        const cJSON *panel = cJSON_GetObjectItemCaseSensitive(l, "panel");
        expiring |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(panel, "expiring"));
        unlimited |= m == 0;
        unknown |= m < 0;
        max += m;
        in_use += num_of(l, "in_use");
        if (num_of(l, "recovering_ms") > recovering)
            recovering = num_of(l, "recovering_ms");
        waiting = num_of(l, "waiting");
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(l, "holders"))
        {
            cJSON *copy = cJSON_Duplicate(h, 1);
            if (copy) {
                set_member(copy, "login",
                           cJSON_CreateString(
                               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "id"))));
                cJSON_AddItemToArray(holders, copy);
            }
        }
    }
    set_member(f->entry, "max_streams", cJSON_CreateNumber(unknown ? -1 : unlimited ? 0 : max));
    set_member(f->entry, "effective_limit",
               cJSON_CreateNumber(unknown         ? -1
                                  : eff_unlimited ? 0
                                                  : eff));
    set_member(f->entry, "expiring", cJSON_CreateBool(expiring));
    set_member(f->entry, "in_use", cJSON_CreateNumber(in_use));
    set_member(f->entry, "recovering_ms", cJSON_CreateNumber(recovering));
    set_member(f->entry, "waiting", cJSON_CreateNumber(waiting));
    set_member(f->entry, "holders", holders ? holders : cJSON_CreateArray());
    cJSON *e;
    cJSON_ArrayForEach(e, f->logins)
    {
        drop_member(e, "name"); /* the account's, as its tickets are */
        drop_member(e, "waiting");
    }
    cJSON_AddItemToObject(f->entry, "logins", f->logins);
    f->logins = NULL;
}

static void fetch_one_done(fetch_one *f)
{
    if (--f->owed > 0)
        return;
    account_total(f);
    fetch_step(f->op);
    free(f);
}

#define EXPIRING_S (7 * 86400) /* a plan that ends within this is flagged */

/* The login's effective limit (what grants go by: max_streams capped by the
 * panel's max_connections and by what refusals taught, as prelude.lua's
 * effective_limit), its panel's plan and what it learned. */
static void add_learned(fetch_login *fl)
{
    cJSON *l = fl->login;
    double eff = sfl_effective_limit(num_of(l, "max_streams"), fl->panel_max, fl->learned);
    cJSON_AddNumberToObject(l, "effective_limit", eff);
    if (fl->panel_at > 0) {
        cJSON *p = cJSON_AddObjectToObject(l, "panel");
        if (p) {
            if (fl->panel_max >= 0)
                cJSON_AddNumberToObject(p, "max_connections", fl->panel_max);
            else
                cJSON_AddNullToObject(p, "max_connections");
            cJSON_AddStringToObject(p, "status", fl->panel_status);
            if (fl->exp_date[0]) {
                double exp = strtod(fl->exp_date, NULL), left = exp - fl->now / 1000;
                cJSON_AddNumberToObject(p, "exp_date", exp);
                cJSON_AddNumberToObject(p, "expires_in_s", left);
                cJSON_AddBoolToObject(p, "expiring", left < EXPIRING_S);
            } else {
                cJSON_AddNullToObject(p, "exp_date");
                cJSON_AddBoolToObject(p, "expiring", 0);
            }
            cJSON_AddNumberToObject(p, "age_ms", fl->now - fl->panel_at);
        }
    } else {
        cJSON_AddNullToObject(l, "panel");
    }
    if (fl->learned > 0 || fl->reason[0]) {
        cJSON *o = cJSON_AddObjectToObject(l, "learned");
        if (o) {
            if (fl->learned > 0)
                cJSON_AddNumberToObject(o, "limit", fl->learned);
            else
                cJSON_AddNullToObject(o, "limit");
            cJSON_AddBoolToObject(o, "probing", fl->probing);
            cJSON_AddStringToObject(o, "reason", fl->reason);
            cJSON_AddNumberToObject(o, "age_ms", fl->learned_at > 0 ? fl->now - fl->learned_at : 0);
        }
    } else {
        cJSON_AddNullToObject(l, "learned");
    }
}

/* Both answers of a login are in: its others' figure goes with its status;
 * external_age_ms is counted on Redis's time of the status answer, and is
 * null when no source ever wrote a figure. */
static void login_done(fetch_login *fl)
{
    if (--fl->owed > 0)
        return;
    cJSON *l = fl->login;
    if (fl->now > 0) {
        cJSON_AddNumberToObject(l, "external", fl->external);
        if (fl->at > 0)
            cJSON_AddNumberToObject(l, "external_age_ms", fl->now - fl->at);
        else
            cJSON_AddNullToObject(l, "external_age_ms");
        if (fl->source[0])
            cJSON_AddStringToObject(l, "external_source", fl->source);
        else
            cJSON_AddNullToObject(l, "external_source");
        cJSON_AddNumberToObject(l, "max_age_ms", fl->max_age);
        cJSON_AddBoolToObject(l, "stale",
                              fl->max_age > 0 && (fl->at <= 0 || fl->now - fl->at > fl->max_age));
    }
    if (fl->now > 0)
        add_learned(fl);
    fetch_one_done(fl->f);
    free(fl);
}

static void on_others_reply(sfl_store *st, redisReply *r, void *arg)
{
    fetch_login *fl = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 4) {
        double *v[3] = {&fl->external, &fl->at, &fl->max_age};
        for (size_t i = 0; i < 3; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                *v[i] = strtod(r->element[i]->str, NULL);
        if (r->element[3]->type == REDIS_REPLY_STRING)
            sfl_text_escape(r->element[3]->str, fl->source, sizeof(fl->source));
    }
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 12) {
        double *v[4] = {&fl->panel_max, &fl->learned, &fl->learned_at, &fl->panel_at};
        size_t at[4] = {4, 7, 9, 10};
        for (size_t i = 0; i < 4; i++)
            if (r->element[at[i]]->type == REDIS_REPLY_STRING)
                *v[i] = strtod(r->element[at[i]]->str, NULL);
        char *t[3] = {fl->exp_date, fl->panel_status, fl->reason};
        size_t tl[3] = {sizeof(fl->exp_date), sizeof(fl->panel_status), sizeof(fl->reason)};
        size_t ti[3] = {5, 6, 8};
        for (size_t i = 0; i < 3; i++)
            if (r->element[ti[i]]->type == REDIS_REPLY_STRING)
                sfl_text_escape(r->element[ti[i]]->str, t[i], tl[i]);
        fl->probing = r->element[11]->type == REDIS_REPLY_STRING;
    }
    login_done(fl);
}

static void on_status_reply(sfl_store *st, redisReply *r, void *arg)
{
    fetch_login *fl = arg;
    UNUSED(st);
    if (sfl_accounts_status_decode(r, fl->login) < 0)
        fl->f->op->failed = 1;
    else
        fl->now = (double)rep_int(r->element[4]);
    login_done(fl);
}

/* status.lua for one login of the account (u: where its keys are; the
 * account's tickets at waiters). 0 sent. */
static int status_login(sfl_store *st, fetch_one *f, const char *id, const sfl_described_use *u,
                        const char *waiters)
{
    const char *prefix = u->prefix;
    char keys[5][SFL_KEY_LEN];
    snprintf(keys[0], sizeof(keys[0]), "%sleases", prefix);
    snprintf(keys[1], sizeof(keys[1]), "%sholders", prefix);
    snprintf(keys[2], sizeof(keys[2]), "%sconf", prefix);
    snprintf(keys[3], sizeof(keys[3]), "%swaiters:exp", waiters);
    sfl_epoch_key(keys[4], sizeof(keys[4]), sfl_store_ns(st));
    const char *kv[5] = {keys[0], keys[1], keys[2], keys[3], keys[4]};
    fetch_login *fl = malloc(sizeof(*fl));
    cJSON *login = cJSON_CreateObject();
    if (!fl || !login) {
        free(fl);
        cJSON_Delete(login);
        return -1;
    }
    cJSON_AddStringToObject(login, "id", id);
    cJSON_AddNumberToObject(login, "reserve", u->reserve);
    cJSON_AddNumberToObject(login, "cooldown_ms", u->cooldown_ms);
    cJSON_AddItemToArray(f->logins, login);
    *fl = (fetch_login){
        .f = f, .login = login, .owed = 1, .panel_max = -1, .learned = -1, .learned_at = -1};
    f->owed++;
    if (sfl_store_eval(st, "status", 5, kv, 0, NULL, on_status_reply, fl) < 0) {
        f->owed--;
        free(fl);
        return -1;
    }
    const char *hmget[14] = {"HMGET",        keys[2],           "external",       "external_at_ms",
                             "max_age_ms",   "external_source", "panel_max",      "panel_exp_date",
                             "panel_status", "learned_limit",   "learned_reason", "learned_at_ms",
                             "panel_at_ms",  "learned_probe"};
    fl->owed++;
    if (sfl_store_command(st, on_others_reply, fl, 14, hmget) < 0)
        fl->owed--;
    return 0;
}

/* What Redis describes came: an entry per account, status.lua per login. */
static void on_described(const sfl_described *d, const char *err, void *arg)
{
    fetch_op *op = arg;
    UNUSED(err); /* fetch_step says it */
    if (!d)
        op->failed = 1;
    for (size_t i = 0; d && i < d->naccounts; i++) {
        const sfl_described_account *a = &d->accounts[i];
        fetch_one *f = calloc(1, sizeof(*f));
        if (!f) {
            op->failed = 1;
            break;
        }
        f->op = op;
        f->entry = cJSON_CreateObject();
        cJSON_AddNumberToObject(f->entry, "id", (double)a->id);
        cJSON_AddStringToObject(f->entry, "name", a->name);
        cJSON_AddItemToArray(op->list, f->entry);
        f->logins = cJSON_CreateArray(); /* added to entry last, by account_total */
        f->owed = 1;                     /* held while sending */
        op->owed++;
        for (size_t k = 0; k < a->nlogins; k++) {
            const sfl_described_use *u = &a->logins[k];
            if (status_login(op->st, f, d->logins[u->login].id, u, a->waiters) < 0)
                op->failed = 1;
        }
        fetch_one_done(f);
    }
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
    op->st = st;
    if (sfl_described_read(st, on_described, op) < 0) {
        cJSON_Delete(op->doc);
        free(op);
        return -1;
    }
    return 0;
}
