/* bench_redis.c - the benchmarks' own synchronous Redis connection (hiredis
 * sync): setting accounts up, reading INFO, scanning and cleaning keys.
 *
 * Only the harness side talks to Redis this way; whatever is measured goes
 * through the core library (store, limiter, queue) or the sflimit binary.
 * Bulk writes are pipelined: every command is appended, then every reply is
 * read, so 10 000 accounts cost one round trip per buffer, not 30 000.
 */
#include "bench.h"

#include "addr.h"
#include "conf.h"
#include "keys.h"
#include "limiter.h"
#include "log.h"
#include "routes.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

redisContext *bench_redis_open(const char *url, char *err, size_t errlen)
{
    sfl_redis_url u = {0};
    redisContext *c = NULL;
    if (sfl_redis_url_parse(url, &u, err, errlen) < 0)
        return NULL;
    struct timeval tv = {2, 0};
    c = u.unix_path ? redisConnectUnixWithTimeout(u.unix_path, tv)
                    : redisConnectWithTimeout(u.host, u.port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        c = NULL;
        goto done;
    }
    const char *what = NULL;
    redisReply *r = NULL;
    if (u.password) {
        what = "AUTH";
        r = u.user ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                   : redisCommand(c, "AUTH %s", u.password);
    }
    if (u.db && (!what || (r && r->type != REDIS_REPLY_ERROR))) {
        if (r)
            freeReplyObject(r);
        what = "SELECT";
        r = redisCommand(c, "SELECT %d", u.db);
    }
    if (what && (!r || r->type == REDIS_REPLY_ERROR)) {
        snprintf(err, errlen, "%s: %s", what, r ? r->str : c->errstr);
        redisFree(c);
        c = NULL;
    }
    if (r)
        freeReplyObject(r);
done:
    sfl_redis_url_clear(&u);
    return c;
}

void bench_redis_shown(const char *url, char *buf, size_t len)
{
    snprintf(buf, len, "%s", url);
    sfl_redact(buf);
}

int bench_redis_do(redisContext *c, char *err, size_t errlen, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", argv[0], r ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    return rc;
}

int bench_redis_append(redisContext *c, int argc, const char **argv)
{
    return redisAppendCommandArgv(c, argc, argv, NULL) == REDIS_OK ? 0 : -1;
}

int bench_redis_drain(redisContext *c, size_t n, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            snprintf(err, errlen, "pipeline: %s", c->errstr);
            return -1; /* the connection is unusable now */
        }
        if (r->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(err, errlen, "pipeline: %s", r->str);
            rc = -1;
        }
        freeReplyObject(r);
    }
    return rc;
}

long long bench_info_field(const char *text, const char *field)
{
    const char *s = strstr(text, field);
    return s ? strtoll(s + strlen(field), NULL, 10) : 0;
}

long long bench_used_memory(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO memory");
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING && strstr(r->str, "used_memory:"))
        v = bench_info_field(r->str, "\nused_memory:");
    if (r)
        freeReplyObject(r);
    return v;
}

long long bench_memory_usage(redisContext *c, const char *key)
{
    const char *argv[5] = {"MEMORY", "USAGE", key, "SAMPLES", "0"};
    redisReply *r = redisCommandArgv(c, 5, argv, NULL);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

int bench_redis_scan(redisContext *c, const char *pattern,
                     void (*fn)(const char *key, size_t len, void *arg), void *arg)
{
    char cursor[32] = "0";
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *r = redisCommandArgv(c, 6, argv, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            if (keys->element[i]->type == REDIS_REPLY_STRING)
                fn(keys->element[i]->str, keys->element[i]->len, arg);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int bench_accounts_write(redisContext *c, const long long *ids, const int *limits, size_t n,
                         char *err, size_t errlen)
{
    size_t owed = 0;
    for (size_t i = 0; i < n; i++) {
        char id[24], lim[24];
        snprintf(id, sizeof(id), "%lld", ids[i]);
        snprintf(lim, sizeof(lim), "%d", limits[i]);
        sfl_account_keys k;
        sfl_account_keys_init(&k, BENCH_NS, ids[i]);
        const char *conf = k.argv[SFL_KEY_CONF];
        const char *hset[] = {"HSET",     conf, "max_streams",      lim, "updated_ms", "0",
                              "epoch_ms", "0",  "recover_until_ms", "0"};
        const char *sadd[] = {"SADD", BENCH_NS ":accounts", id};
        const char *del[] = {"DEL",
                             k.argv[SFL_KEY_LEASES],
                             k.argv[SFL_KEY_HOLDERS],
                             k.argv[SFL_KEY_FENCE],
                             k.argv[SFL_KEY_WAITERS],
                             k.argv[SFL_KEY_WAITERS_EXP]};
        if (bench_redis_append(c, 10, hset) < 0 || bench_redis_append(c, 3, sadd) < 0 ||
            bench_redis_append(c, 6, del) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        owed += 3;
        if (owed >= 3000) {
            if (bench_redis_drain(c, owed, err, errlen) < 0)
                return -1;
            owed = 0;
        }
    }
    return bench_redis_drain(c, owed, err, errlen);
}

/* One account of several logins: each login's conf, the id, and one DEL of
 * every login's leases, holders, fence and the account's waiters. Appended,
 * not read; how many replies are owed goes to *owed. 0, or -1 (out of memory). */
static int append_route(redisContext *c, const sfl_route *rt, size_t *owed)
{
    int rc = -1;
    size_t nkeys = 3 * rt->nlogins + 2;
    char(*keys)[SFL_KEY_LEN] = calloc(nkeys, sizeof(*keys));
    const char **del = calloc(1 + nkeys, sizeof(*del));
    if (!keys || !del)
        goto done;
    char id[24];
    snprintf(id, sizeof(id), "%lld", rt->account);
    del[0] = "DEL";
    size_t k = 0;
    for (size_t i = 0; i < rt->nlogins; i++) {
        const sfl_login *lg = rt->logins[i];
        char conf[SFL_KEY_LEN], lim[24];
        snprintf(conf, sizeof(conf), "%sconf", lg->prefix);
        snprintf(lim, sizeof(lim), "%lld", lg->max_streams);
        const char *hset[] = {"HSET",     conf, "max_streams",      lim, "updated_ms", "0",
                              "epoch_ms", "0",  "recover_until_ms", "0"};
        if (bench_redis_append(c, 10, hset) < 0)
            goto done;
        (*owed)++;
        snprintf(keys[k++], SFL_KEY_LEN, "%sleases", lg->prefix);
        snprintf(keys[k++], SFL_KEY_LEN, "%sholders", lg->prefix);
        snprintf(keys[k++], SFL_KEY_LEN, "%sfence", lg->prefix);
    }
    snprintf(keys[k++], SFL_KEY_LEN, "%swaiters", rt->waiters);
    snprintf(keys[k++], SFL_KEY_LEN, "%swaiters:exp", rt->waiters);
    for (size_t i = 0; i < k; i++)
        del[1 + i] = keys[i];
    const char *sadd[] = {"SADD", BENCH_NS ":accounts", id};
    if (bench_redis_append(c, 3, sadd) < 0 || bench_redis_append(c, (int)(1 + k), del) < 0)
        goto done;
    *owed += 2;
    rc = 0;
done:
    free(keys);
    free(del);
    return rc;
}

int bench_logins_write(redisContext *c, const sfl_account_conf *accs, size_t n, char *err,
                       size_t errlen)
{
    int rc = -1;
    size_t owed = 0;
    sfl_routes *r = sfl_routes_new(BENCH_NS);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (sfl_routes_set(r, accs, n, err, errlen) < 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const sfl_route *rt = sfl_routes_get(r, accs[i].id);
        if (!rt || append_route(c, rt, &owed) < 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        if (owed >= 3000) {
            if (bench_redis_drain(c, owed, err, errlen) < 0)
                goto done;
            owed = 0;
        }
    }
    rc = bench_redis_drain(c, owed, err, errlen);
done:
    sfl_routes_free(r);
    return rc;
}

int bench_accounts_clean(redisContext *c, const long long *ids, size_t n, char *err, size_t errlen)
{
    size_t owed = 0;
    for (size_t i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%lld", ids[i]);
        sfl_account_keys k;
        sfl_account_keys_init(&k, BENCH_NS, ids[i]);
        const char *del[1 + SFL_ACCOUNT_NKEYS] = {"DEL"};
        for (size_t j = 0; j < SFL_ACCOUNT_NKEYS; j++)
            del[1 + j] = k.argv[j];
        const char *srem[] = {"SREM", BENCH_NS ":accounts", id};
        if (bench_redis_append(c, 1 + SFL_ACCOUNT_NKEYS, del) < 0 ||
            bench_redis_append(c, 3, srem) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        owed += 2;
        if (owed >= 2000) {
            if (bench_redis_drain(c, owed, err, errlen) < 0)
                return -1;
            owed = 0;
        }
    }
    return bench_redis_drain(c, owed, err, errlen);
}

/*--- What an idle keyspace holds -------------------------------------------*/

static void classify(const char *key, size_t len, void *arg)
{
    bench_keyspace *k = arg;
    const char *acc = BENCH_NS ":{a:";
    size_t alen = strlen(acc);
    if (strcmp(key, BENCH_NS ":accounts") == 0) {
        k->accounts_set++;
        return;
    }
    if (len > alen && strncmp(key, acc, alen) == 0) {
        const char *close = strstr(key + alen, "}:");
        if (close && strcmp(close + 2, "conf") == 0) {
            k->conf++;
            return;
        }
        if (k->stray < BENCH_KEYSPACE_SHOWN)
            snprintf(k->shown[k->stray], sizeof(k->shown[0]), "%s", key);
        k->stray++;
        return;
    }
    k->other++;
}

int bench_keyspace_get(redisContext *c, bench_keyspace *out)
{
    memset(out, 0, sizeof(*out));
    return bench_redis_scan(c, BENCH_NS ":*", classify, out);
}
