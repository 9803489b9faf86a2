/* lease_script.c - calling the lease scripts and reading their answers.
 *
 * The limiter speaks to Redis only through here: which keys a script takes
 * (keys.h, in the order lua/prelude.lua expects), which arguments, and what
 * its answer means. An answer is read by position exactly once, in
 * sfl_lease_answer_decode; everyone else reads the struct. Must never keep a
 * redisReply past the call that received it. */
#include "lease_script.h"

#include "keys.h"
#include "log.h"
#include "routes.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*--- Answers ---------------------------------------------------------------*/

static long long el_int(const redisReply *r, size_t i)
{
    if (i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

static void el_str(const redisReply *r, size_t i, char *buf, size_t len)
{
    const char *s = "";
    if (i < r->elements && r->element[i]->type == REDIS_REPLY_STRING)
        s = r->element[i]->str;
    snprintf(buf, len, "%s", s);
}

void sfl_lease_answer_decode(const redisReply *r, sfl_lease_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->status = SFL_ANSWER_NONE;
    a->limit = -1;
    a->now_ms = -1;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        a->error = r->str;
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return;
    long long status = el_int(r, 0);
    switch (status) {
    case 1:
    case 2:
        if (r->elements < 5)
            return;
        a->fence = el_int(r, 1);
        a->deadline_ms = el_int(r, 2);
        a->in_use = el_int(r, 3);
        a->limit = el_int(r, 4);
        a->login = r->elements > 5 ? el_int(r, 5) - 1 : -1;
        if (a->login < -1)
            a->login = -1;
        break;
    case 0:
        if (r->elements < 7)
            return;
        a->retry_ms = el_int(r, 1);
        a->in_use = el_int(r, 2);
        a->limit = el_int(r, 3);
        el_str(r, 4, a->reason, sizeof(a->reason));
        a->position = el_int(r, 5);
        a->now_ms = el_int(r, 6);
        break;
    case -1:
        el_str(r, 1, a->reason, sizeof(a->reason));
        break;
    default:
        return;
    }
    a->status = (sfl_answer_status)status;
}

int sfl_lease_released(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer == 1;
    /* An answer with a next ask (a grant of 7 elements, a denial of 8):
     * the release's own answer comes last. */
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return 0;
    long long status = el_int(r, 0);
    size_t n = status == 1 ? 7 : status == 0 ? 8 : 0;
    return n && r->elements == n && el_int(r, n - 1) == 1;
}

/*--- Calls -----------------------------------------------------------------*/

static const char *const login_suffixes[4] = {"leases", "holders", "conf", "fence"};

/* The keys and arguments of one call, on the heap when an account has many
 * logins. */
typedef struct call_buf {
    char (*keys)[SFL_KEY_LEN];
    const char **kv;
    char (*nums)[24];
    const char **av;
    int nkeys, nargs;
} call_buf;

static int call_buf_init(call_buf *b, int nkeys, int nargs)
{
    b->keys = calloc(nkeys, sizeof(*b->keys));
    b->kv = calloc(nkeys, sizeof(*b->kv));
    b->nums = calloc(nargs, sizeof(*b->nums));
    b->av = calloc(nargs, sizeof(*b->av));
    b->nkeys = b->nargs = 0;
    return b->keys && b->kv && b->nums && b->av ? 0 : -1;
}

static void call_buf_free(call_buf *b)
{
    free(b->keys);
    free(b->kv);
    free(b->nums);
    free(b->av);
}

static void add_key(call_buf *b, const char *prefix, const char *suffix)
{
    snprintf(b->keys[b->nkeys], SFL_KEY_LEN, "%s%s", prefix, suffix);
    b->kv[b->nkeys] = b->keys[b->nkeys];
    b->nkeys++;
}

static void add_login(call_buf *b, const char *prefix)
{
    for (int i = 0; i < 4; i++)
        add_key(b, prefix, login_suffixes[i]);
}

static void add_waiters(call_buf *b, const char *prefix)
{
    add_key(b, prefix, "waiters");
    add_key(b, prefix, "waiters:exp");
}

/* The namespace's epoch marker: every lease script's last key. */
static void add_epoch(call_buf *b, sfl_store *st)
{
    snprintf(b->keys[b->nkeys], SFL_KEY_LEN, "%s:epoch", sfl_store_ns(st));
    b->kv[b->nkeys] = b->keys[b->nkeys];
    b->nkeys++;
}

static void add_arg(call_buf *b, const char *s)
{
    b->av[b->nargs++] = s;
}

static void add_num(call_buf *b, long long v)
{
    snprintf(b->nums[b->nargs], sizeof(b->nums[0]), "%lld", v);
    add_arg(b, b->nums[b->nargs]);
}

/* acquire.lua's and renew.lua's first ten arguments (renew takes six). */
static void add_call_args(call_buf *b, long long account, long long known, const sfl_lease_call *c,
                          int nargs)
{
    add_arg(b, c->id);
    add_num(b, c->ttl_ms);
    add_arg(b, c->node);
    add_arg(b, c->label);
    add_num(b, known);
    add_num(b, c->recovery_ms);
    if (nargs > 6) {
        add_num(b, c->ticket_ttl_ms);
        add_arg(b, c->channel);
        add_num(b, account);
        add_num(b, c->handoff_ms);
    }
}

int sfl_lease_script_acquire(sfl_store *st, const sfl_route *rt, const sfl_lease_call *c,
                             sfl_store_reply_fn *fn, void *arg)
{
    int n = (int)rt->nlogins, nargs = n > 1 ? 10 + 2 * n : 10;
    call_buf b;
    if (call_buf_init(&b, 3 + 4 * n, nargs) < 0) {
        call_buf_free(&b);
        return -1;
    }
    add_login(&b, rt->logins[0]->prefix);
    add_waiters(&b, rt->waiters);
    for (int k = 1; k < n; k++)
        add_login(&b, rt->logins[k]->prefix);
    add_epoch(&b, st);
    add_call_args(&b, rt->account, rt->logins[0]->known, c, 10);
    for (int k = 0; n > 1 && k < n; k++) {
        add_arg(&b, rt->logins[k]->id);
        add_num(&b, rt->logins[k]->known);
    }
    int rc = sfl_store_eval(st, "acquire", b.nkeys, b.kv, b.nargs, b.av, fn, arg);
    call_buf_free(&b);
    return rc;
}

int sfl_lease_script_renew(sfl_store *st, const sfl_route *rt, size_t login,
                           const sfl_lease_call *c, sfl_store_reply_fn *fn, void *arg)
{
    call_buf b;
    if (login >= rt->nlogins || call_buf_init(&b, 7, 6) < 0) {
        if (login < rt->nlogins)
            call_buf_free(&b);
        return -1;
    }
    add_login(&b, rt->logins[login]->prefix);
    add_waiters(&b, rt->waiters);
    add_epoch(&b, st);
    add_call_args(&b, rt->account, rt->logins[login]->known, c, 6);
    int rc = sfl_store_eval(st, "renew", b.nkeys, b.kv, b.nargs, b.av, fn, arg);
    call_buf_free(&b);
    return rc;
}

int sfl_lease_script_release(sfl_store *st, sfl_routes *routes, const sfl_route *rt, size_t login,
                             const char *id, const char *channel, int64_t handoff_ms,
                             const sfl_lease_call *next, sfl_store_reply_fn *fn, void *arg)
{
    if (login >= rt->nlogins)
        return -1;
    const sfl_login *lg = rt->logins[login];
    int others = lg->naccounts > 1 ? (int)lg->naccounts - 1 : 0;
    call_buf b;
    if (call_buf_init(&b, 7 + 2 * others, 11 + others) < 0) {
        call_buf_free(&b);
        return -1;
    }
    add_login(&b, lg->prefix);
    add_waiters(&b, rt->waiters);
    add_arg(&b, id);
    add_arg(&b, channel);
    add_num(&b, rt->account);
    add_num(&b, handoff_ms);
    add_arg(&b, rt->nlogins > 1 || others ? lg->id : "");
    /* Copied first: sfl_routes_get may add a route, which moves nothing of
     * rt's but may grow the table. */
    for (size_t i = 0; others && i < lg->naccounts; i++) {
        long long acc = lg->accounts[i];
        if (acc == rt->account)
            continue;
        const sfl_route *o = sfl_routes_get(routes, acc);
        if (!o)
            continue;
        add_waiters(&b, o->waiters);
        add_num(&b, acc);
    }
    if (next) {
        /* The node's next ask of the account, after the others' ids. */
        add_arg(&b, next->id);
        add_num(&b, next->ticket_ttl_ms);
        add_num(&b, next->ttl_ms);
        add_arg(&b, next->node);
        add_arg(&b, next->label);
        add_num(&b, next->recovery_ms);
    }
    add_epoch(&b, st);
    int rc = sfl_store_eval(st, "release", b.nkeys, b.kv, b.nargs, b.av, fn, arg);
    call_buf_free(&b);
    return rc;
}

static void on_others_written(sfl_store *st, redisReply *r, void *arg)
{
    (void)st;
    if (r && r->type == REDIS_REPLY_ERROR)
        sfl_warn("writing others' connections (%s): %s", (const char *)arg, r->str);
}

typedef struct others_ctx {
    sfl_others_seen seen;
    const char *mode;
    char login[SFL_LOGIN_ID_LEN];
} others_ctx;

static void on_others_seen(sfl_store *st, redisReply *r, void *arg)
{
    others_ctx *c = arg;
    on_others_written(st, r, (void *)c->mode);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        c->seen.fn(c->login, r->element[0]->integer, c->seen.arg);
    free(c);
}

static int others_send(sfl_store *st, const char *prefix, long long count, const char *source,
                       long long max_age_ms, const char *mode, sfl_store_reply_fn *fn, void *arg);

int sfl_lease_script_others_seen(sfl_store *st, const char *prefix, const char *login,
                                 long long count, const char *source, long long max_age_ms,
                                 const char *mode, const sfl_others_seen *seen)
{
    if (!seen || !seen->fn || !login)
        return sfl_lease_script_others(st, prefix, count, source, max_age_ms, mode);
    others_ctx *c = malloc(sizeof(*c));
    if (!c)
        return sfl_lease_script_others(st, prefix, count, source, max_age_ms, mode);
    c->seen = *seen;
    c->mode = mode;
    snprintf(c->login, sizeof(c->login), "%s", login);
    if (others_send(st, prefix, count, source, max_age_ms, mode, on_others_seen, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int sfl_lease_script_others(sfl_store *st, const char *prefix, long long count, const char *source,
                            long long max_age_ms, const char *mode)
{
    /* mode is one of the callers' literals: it outlives the call. */
    return others_send(st, prefix, count, source, max_age_ms, mode, on_others_written,
                       (void *)mode);
}

static int others_send(sfl_store *st, const char *prefix, long long count, const char *source,
                       long long max_age_ms, const char *mode, sfl_store_reply_fn *fn, void *arg)
{
    char keys[3][SFL_KEY_LEN], n[24], age[24], channel[96];
    snprintf(keys[0], sizeof(keys[0]), "%sconf", prefix);
    snprintf(keys[1], sizeof(keys[1]), "%sleases", prefix);
    snprintf(keys[2], sizeof(keys[2]), "%sholders", prefix);
    snprintf(n, sizeof(n), "%lld", count);
    snprintf(age, sizeof(age), "%lld", max_age_ms);
    snprintf(channel, sizeof(channel), "%s:released", sfl_store_ns(st));
    const char *kv[3] = {keys[0], keys[1], keys[2]};
    const char *args[5] = {n, source, age, mode, channel};
    return sfl_store_eval(st, "others", 3, kv, 5, args, fn, arg);
}
