/* dispatcharr_sync.c - account limits from Dispatcharr, written to Redis.
 *
 * One run: fetch the accounts (dispatcharr.c, which computes each limit),
 * read the limit Redis had for each (so the caller can say what changed),
 * then write them all with sfl_accounts_write(). A fetch that fails writes
 * nothing: a half-read answer must never become limits in Redis.
 *
 * The sync object only owns the Dispatcharr client, whose cached token makes
 * a periodic sync cost one request. A run owns its own state (sync_op): it
 * belongs to the client while fetching (freed through the fetch's drop
 * callback if the client goes first) and to the store's callbacks after,
 * and never points back at the sync object, so the sync may be freed at any
 * time, even from inside the run's callback.
 *
 * Sits between the libraries: it uses dispatcharr.c (which knows nothing of
 * Redis) and accounts.c (which knows nothing of Dispatcharr). It never
 * prints: the command and the node say what happened.
 */
#include "dispatcharr_sync.h"

#include "accounts.h"
#include "conf.h"
#include "dispatcharr.h"
#include "keys.h"
#include "log.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sfl_dispatcharr_sync {
    sfl_dispatcharr *dc;
    int64_t max_age_ms; /* dispatcharr.viewers: every synced login is governed; else 0 */
    char errstr[256];
};

typedef struct sync_op {
    sfl_store *st;
    int64_t recovery_ms;
    sfl_dispatcharr_sync_fn *fn;
    void *arg;
    int64_t max_age_ms;
    sfl_account_conf *accs;
    long long *was;
    size_t n;
    size_t owed;
    int failed;
} sync_op;

/*--- One run ---------------------------------------------------------------*/

static void op_free(void *arg)
{
    sync_op *op = arg;
    if (!op)
        return;
    sfl_dispatcharr_accounts_free(op->accs, op->n);
    free(op->was);
    free(op);
}

static void op_fail(sync_op *op, const char *err)
{
    op->fn(NULL, NULL, 0, err, op->arg);
    op_free(op);
}

static void on_written(int ok, const char *err, void *arg)
{
    sync_op *op = arg;
    if (!ok) {
        op_fail(op, err);
        return;
    }
    op->fn(op->accs, op->was, op->n, NULL, op->arg);
    op_free(op);
}

static void op_write(sync_op *op)
{
    if (op->failed) {
        op_fail(op, "no answer from Redis while reading the current limits");
        return;
    }
    if (sfl_accounts_write(op->st, NULL, op->accs, op->n, op->recovery_ms, 0, on_written, op) < 0)
        op_fail(op, "Redis went away before the limits were written");
}

typedef struct limit_read {
    sync_op *op;
    size_t i;
} limit_read;

static void on_hget(sfl_store *st, redisReply *r, void *arg)
{
    limit_read *rd = arg;
    sync_op *op = rd->op;
    UNUSED(st);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        op->failed = 1;
    } else if (r->element[1]->type == REDIS_REPLY_STRING) {
        /* An account of several logins (account.lua): the sum of theirs. */
        cJSON *logins = cJSON_Parse(r->element[1]->str);
        long long sum = cJSON_IsArray(logins) ? 0 : -1;
        int unlimited = 0;
        const cJSON *l, *list = cJSON_IsArray(logins) ? logins : NULL;
        cJSON_ArrayForEach(l, list)
        {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(l, "max_streams");
            if (!cJSON_IsNumber(m) || m->valuedouble < 0) {
                sum = -1;
                break;
            }
            unlimited |= m->valuedouble == 0;
            sum += (long long)m->valuedouble;
        }
        cJSON_Delete(logins);
        op->was[rd->i] = sum < 0 ? -1 : unlimited ? 0 : sum;
    } else if (r->element[0]->type == REDIS_REPLY_STRING) {
        const char *txt = r->element[0]->str;
        char *end;
        long long v = strtoll(txt, &end, 10);
        op->was[rd->i] = *txt && !*end && v >= 0 ? v : -1;
    }
    free(rd);
    if (--op->owed == 0)
        op_write(op);
}

static void on_fetched(const sfl_account_conf *accs, size_t n, const char *err, void *arg)
{
    sync_op *op = arg;
    if (err) {
        char msg[480];
        snprintf(msg, sizeof(msg), "dispatcharr: %s", err);
        op_fail(op, msg);
        return;
    }
    if (n == 0) {
        op->fn(NULL, NULL, 0, NULL, op->arg);
        op_free(op);
        return;
    }
    op->accs = calloc(n, sizeof(*op->accs));
    op->was = malloc(n * sizeof(*op->was));
    if (!op->accs || !op->was) {
        op_fail(op, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        op->was[i] = -1;
        op->n = i + 1;
        if (sfl_account_conf_copy(&op->accs[i], &accs[i]) < 0) {
            op_fail(op, "out of memory");
            return;
        }
        /* Dispatcharr's viewers count on its logins: a figure older than
         * this stops their grants (viewers.c polls). */
        for (size_t k = 0; k < op->accs[i].nlogins; k++)
            op->accs[i].logins[k].max_age_ms = op->max_age_ms;
    }
    op->owed = 1; /* held until every read is sent */
    for (size_t i = 0; i < n && !op->failed; i++) {
        char key[160];
        sfl_account_key(key, sizeof(key), sfl_store_ns(op->st), op->accs[i].id, "conf");
        const char *argv[4] = {"HMGET", key, "max_streams", "logins"};
        limit_read *rd = malloc(sizeof(*rd));
        if (!rd) {
            op->failed = 1;
            break;
        }
        *rd = (limit_read){op, i};
        op->owed++;
        if (sfl_store_command(op->st, on_hget, rd, 4, argv) < 0) {
            op->owed--;
            op->failed = 1;
            free(rd);
        }
    }
    if (--op->owed == 0)
        op_write(op);
}

/*--- The sync --------------------------------------------------------------*/

sfl_dispatcharr_sync *sfl_dispatcharr_sync_new(struct event_base *base, const sfl_conf *conf,
                                               char *err, size_t errlen)
{
    sfl_dispatcharr_sync *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->max_age_ms = conf->dispatcharr_viewers ? conf->dispatcharr_max_age_ms : 0;
    s->dc = sfl_dispatcharr_new(base, conf, err, errlen);
    if (!s->dc) {
        free(s);
        return NULL;
    }
    return s;
}

void sfl_dispatcharr_sync_free(sfl_dispatcharr_sync *s)
{
    if (!s)
        return;
    sfl_dispatcharr_free(s->dc); /* a run still fetching: op_free through the drop */
    free(s);
}

int sfl_dispatcharr_sync_run(sfl_dispatcharr_sync *s, sfl_store *st, int64_t recovery_ms,
                             sfl_dispatcharr_sync_fn *fn, void *arg)
{
    sync_op *op = calloc(1, sizeof(*op));
    if (!op) {
        snprintf(s->errstr, sizeof(s->errstr), "out of memory");
        return -1;
    }
    *op = (sync_op){
        .st = st, .recovery_ms = recovery_ms, .fn = fn, .arg = arg, .max_age_ms = s->max_age_ms};
    if (sfl_dispatcharr_fetch_owned(s->dc, on_fetched, op_free, op) < 0) {
        snprintf(s->errstr, sizeof(s->errstr), "%s", sfl_dispatcharr_errstr(s->dc));
        free(op);
        return -1;
    }
    return 0;
}

const char *sfl_dispatcharr_sync_errstr(const sfl_dispatcharr_sync *s)
{
    return s->errstr;
}
