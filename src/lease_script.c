/* lease_script.c - calling the lease scripts and reading their answers.
 *
 * The limiter speaks to Redis only through here: which keys a script takes
 * (keys.h, in the order lua/prelude.lua expects), which arguments, and what
 * its answer means. An answer is read by position exactly once, in
 * sfl_lease_answer_decode; everyone else reads the struct. Must never keep a
 * redisReply past the call that received it. */
#include "lease_script.h"

#include "keys.h"

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

/*--- Calls -----------------------------------------------------------------*/

/* acquire.lua's ARGV; renew.lua takes the first six. */
static int send_call(sfl_store *st, const char *script, int nargs, long long account,
                     const sfl_lease_call *c, sfl_store_reply_fn *fn, void *arg)
{
    sfl_account_keys keys;
    sfl_account_keys_init(&keys, sfl_store_ns(st), account);
    char ttl[24], known[24], recovery[24], ticket[24], acc[24], handoff[24];
    snprintf(ttl, sizeof(ttl), "%" PRId64, c->ttl_ms);
    snprintf(known, sizeof(known), "%lld", c->known_limit);
    snprintf(recovery, sizeof(recovery), "%" PRId64, c->recovery_ms);
    snprintf(ticket, sizeof(ticket), "%" PRId64, c->ticket_ttl_ms);
    snprintf(acc, sizeof(acc), "%lld", account);
    snprintf(handoff, sizeof(handoff), "%" PRId64, c->handoff_ms);
    const char *av[10] = {c->id,    ttl,    c->node,    c->label, known,
                          recovery, ticket, c->channel, acc,      handoff};
    return sfl_store_eval(st, script, SFL_ACCOUNT_NKEYS, keys.argv, nargs, av, fn, arg);
}

int sfl_lease_script_acquire(sfl_store *st, long long account, const sfl_lease_call *c,
                             sfl_store_reply_fn *fn, void *arg)
{
    return send_call(st, "acquire", 10, account, c, fn, arg);
}

int sfl_lease_script_renew(sfl_store *st, long long account, const sfl_lease_call *c,
                           sfl_store_reply_fn *fn, void *arg)
{
    return send_call(st, "renew", 6, account, c, fn, arg);
}

int sfl_lease_script_release(sfl_store *st, long long account, const char *id, const char *channel,
                             int64_t handoff_ms, sfl_store_reply_fn *fn, void *arg)
{
    sfl_account_keys keys;
    sfl_account_keys_init(&keys, sfl_store_ns(st), account);
    char acc[24], handoff[24];
    snprintf(acc, sizeof(acc), "%lld", account);
    snprintf(handoff, sizeof(handoff), "%" PRId64, handoff_ms);
    const char *av[4] = {id, channel, acc, handoff};
    return sfl_store_eval(st, "release", SFL_ACCOUNT_NKEYS, keys.argv, 4, av, fn, arg);
}
