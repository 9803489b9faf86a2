/* described.c - the accounts Redis knows and their logins, as Redis
 * describes them (DESIGN §10).
 *
 * <ns>:accounts holds the ids of the accounts any node or command wrote
 * (accounts.c). An account's conf (<ns>:{a:<id>}:conf) names it, and when
 * its checks go through other logins than one named after it under its own
 * keys, describes them (lua/account.lua): "logins", a JSON array of
 * {"id", "keys" (the login's key prefix), "max_streams", "reserve",
 * "cooldown_ms"}, and "waiters", where its tickets are. This is the one
 * place that reads that layout back; whoever shows accounts or logins of
 * other nodes builds on what it answers.
 *
 * Reads only. Entries of a description that are not a login (no valid id,
 * no key prefix that fits) are left out; an account left with none is one
 * login named after it, as if it had no description.
 */
#include "described.h"

#include "store.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct read_op read_op;

/* One account's HMGET, in flight. */
typedef struct account_ask {
    read_op *op;
    size_t i;    /* its index in op->d.accounts */
    cJSON *desc; /* its conf's "logins", parsed; NULL: none */
} account_ask;

struct read_op {
    sfl_described_fn *fn;
    void *arg;
    sfl_described d;
    account_ask *asks;
    char ns[SFL_KEY_PREFIX_LEN];
    int owed;
    int failed;
    char err[128];
};

static void fail(read_op *op, const char *err)
{
    if (!op->failed)
        snprintf(op->err, sizeof(op->err), "%s", err);
    op->failed = 1;
}

/*--- Lists of logins -------------------------------------------------------*/

sfl_described_login *sfl_described_find(const sfl_described_login *logins, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(logins[i].id, id) == 0)
            return (sfl_described_login *)&logins[i];
    return NULL;
}

sfl_described_login *sfl_described_add(sfl_described_login **logins, size_t *n, const char *id,
                                       const char *prefix, long long acc)
{
    sfl_described_login *l = sfl_described_find(*logins, *n, id);
    if (!l) {
        sfl_described_login *more = realloc(*logins, (*n + 1) * sizeof(*more));
        if (!more)
            return NULL;
        *logins = more;
        l = &more[(*n)++];
        memset(l, 0, sizeof(*l));
        snprintf(l->id, sizeof(l->id), "%s", id);
        snprintf(l->prefix, sizeof(l->prefix), "%s", prefix);
    }
    size_t at = 0;
    while (at < l->naccounts && l->accounts[at] < acc)
        at++;
    if (at < l->naccounts && l->accounts[at] == acc)
        return l;
    long long *a = realloc(l->accounts, (l->naccounts + 1) * sizeof(*a));
    if (!a)
        return NULL;
    memmove(a + at + 1, a + at, (l->naccounts - at) * sizeof(*a));
    a[at] = acc;
    l->accounts = a;
    l->naccounts++;
    return l;
}

void sfl_described_logins_free(sfl_described_login *logins, size_t n)
{
    for (size_t i = 0; logins && i < n; i++)
        free(logins[i].accounts);
    free(logins);
}

/*--- The logins, from the descriptions -------------------------------------*/

/* Adds a login to account a. 0, or -1 when out of memory. */
static int add_use(sfl_described *d, sfl_described_account *a, const char *id, const char *prefix,
                   const cJSON *entry)
{
    sfl_described_login *l = sfl_described_add(&d->logins, &d->nlogins, id, prefix, a->id);
    sfl_described_use *more = l ? realloc(a->logins, (a->nlogins + 1) * sizeof(*more)) : NULL;
    if (!more)
        return -1;
    a->logins = more;
    sfl_described_use *u = &a->logins[a->nlogins++];
    const cJSON *reserve = cJSON_GetObjectItemCaseSensitive(entry, "reserve");
    const cJSON *cooldown = cJSON_GetObjectItemCaseSensitive(entry, "cooldown_ms");
    *u = (sfl_described_use){.login = (size_t)(l - d->logins),
                             .reserve = cJSON_IsNumber(reserve) ? reserve->valuedouble : 0,
                             .cooldown_ms = cJSON_IsNumber(cooldown) ? cooldown->valuedouble : 0};
    snprintf(u->prefix, sizeof(u->prefix), "%s", prefix);
    return 0;
}

/* Account i's logins: its description's, or one named after it. 0, or -1
 * when out of memory. */
static int account_logins(read_op *op, size_t i)
{
    sfl_described *d = &op->d;
    sfl_described_account *a = &d->accounts[i];
    const cJSON *l, *list = cJSON_IsArray(op->asks[i].desc) ? op->asks[i].desc : NULL;
    cJSON_ArrayForEach(l, list)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "id"));
        const char *keys = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "keys"));
        if (id && keys && sfl_login_id_valid(id) && strlen(keys) < SFL_KEY_PREFIX_LEN &&
            add_use(d, a, id, keys, l) < 0)
            return -1;
    }
    if (a->nlogins > 0)
        return 0;
    /* One login, the account's id, under its own keys; so are its tickets. */
    char self[24], base[SFL_KEY_PREFIX_LEN];
    snprintf(self, sizeof(self), "%lld", a->id);
    sfl_account_key(base, sizeof(base), op->ns, a->id, "");
    free(a->waiters);
    a->waiters = strdup(base);
    return a->waiters ? add_use(d, a, self, base, NULL) : -1;
}

static void finish(read_op *op)
{
    if (--op->owed > 0)
        return;
    for (size_t i = 0; !op->failed && i < op->d.naccounts; i++)
        if (account_logins(op, i) < 0)
            fail(op, "out of memory while reading accounts");
    op->fn(op->failed ? NULL : &op->d, op->failed ? op->err : NULL, op->arg);
    for (size_t i = 0; i < op->d.naccounts; i++)
        cJSON_Delete(op->asks[i].desc);
    for (size_t i = 0; i < op->d.naccounts; i++) {
        free(op->d.accounts[i].name);
        free(op->d.accounts[i].waiters);
        free(op->d.accounts[i].logins);
    }
    free(op->d.accounts);
    sfl_described_logins_free(op->d.logins, op->d.nlogins);
    free(op->asks);
    free(op);
}

/*--- The reads -------------------------------------------------------------*/

static void on_conf(sfl_store *st, redisReply *r, void *arg)
{
    account_ask *k = arg;
    read_op *op = k->op;
    sfl_described_account *a = &op->d.accounts[k->i];
    (void)st;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        fail(op, "no answer from Redis while reading accounts");
    } else {
        const redisReply *name = r->element[0], *logins = r->element[1], *waiters = r->element[2];
        char base[SFL_KEY_PREFIX_LEN];
        sfl_account_key(base, sizeof(base), op->ns, a->id, "");
        a->name = strdup(name->type == REDIS_REPLY_STRING ? name->str : "");
        a->waiters = strdup(waiters->type == REDIS_REPLY_STRING ? waiters->str : base);
        if (logins->type == REDIS_REPLY_STRING)
            k->desc = cJSON_Parse(logins->str);
        if (!a->name || !a->waiters)
            fail(op, "out of memory while reading accounts");
    }
    finish(op);
}

static int cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return a < b ? -1 : a > b;
}

static void on_members(sfl_store *st, redisReply *r, void *arg)
{
    read_op *op = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fail(op, "no answer from Redis while reading accounts");
        finish(op);
        return;
    }
    size_t n = r->elements;
    op->d.accounts = calloc(n + 1, sizeof(*op->d.accounts));
    op->asks = calloc(n + 1, sizeof(*op->asks));
    long long *ids = calloc(n + 1, sizeof(*ids));
    if (!op->d.accounts || !op->asks || !ids) {
        fail(op, "out of memory while reading accounts");
        n = 0;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char *end;
        const char *s = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
        long long v = s ? strtoll(s, &end, 10) : -1;
        if (s && *s && !*end && v >= 0)
            ids[m++] = v;
    }
    qsort(ids, m, sizeof(*ids), cmp_ll);
    for (size_t i = 0; i < m && !op->failed; i++) {
        char key[SFL_KEY_LEN];
        sfl_account_key(key, sizeof(key), op->ns, ids[i], "conf");
        const char *argv[5] = {"HMGET", key, "name", "logins", "waiters"};
        op->d.accounts[i].id = ids[i];
        op->asks[i] = (account_ask){.op = op, .i = i};
        op->d.naccounts++;
        op->owed++;
        if (sfl_store_command(st, on_conf, &op->asks[i], 5, argv) < 0) {
            op->owed--;
            fail(op, "Redis went away while reading accounts");
        }
    }
    free(ids);
    finish(op);
}

int sfl_described_read(sfl_store *st, sfl_described_fn *fn, void *arg)
{
    read_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = fn;
    op->arg = arg;
    op->owed = 1;
    snprintf(op->ns, sizeof(op->ns), "%s", sfl_store_ns(st));
    char setkey[SFL_KEY_LEN];
    snprintf(setkey, sizeof(setkey), "%s:accounts", op->ns);
    const char *argv[2] = {"SMEMBERS", setkey};
    if (sfl_store_command(st, on_members, op, 2, argv) < 0) {
        free(op);
        return -1;
    }
    return 0;
}
