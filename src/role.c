/* role.c - a role one node plays at a time, through lua/role.lua (role.h). */
#include "role.h"

#include "clock.h"
#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct role_ask role_ask;

struct sfl_role {
    sfl_store *store;
    char key[160];
    char node[96];
    int64_t ttl_ms;
    sfl_role_fn *fn;
    void *arg;
    struct event *timer;
    int holder;         /* the last answer said this node holds it */
    int64_t held_until; /* local monotonic */
    role_ask *asking;   /* an ask in flight, or NULL */
};

struct role_ask {
    sfl_role *r; /* NULL: a give-up, or the role was freed meanwhile */
    int64_t sent_ms;
};

static void on_answer(sfl_store *st, redisReply *rep, void *arg)
{
    role_ask *a = arg;
    sfl_role *r = a->r;
    UNUSED(st);
    if (r) {
        r->asking = NULL;
        int held = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
        if (held)
            r->held_until = a->sent_ms + r->ttl_ms; /* Redis may let it go that long after */
        if (held != r->holder) {
            sfl_info("role %s: %s", r->key, held ? "taken" : "held by another node");
            r->holder = held;
            if (r->fn)
                r->fn(held, r->arg);
        }
    }
    free(a);
}

static void ask(sfl_role *r, int64_t ttl_ms)
{
    if ((ttl_ms > 0 && r->asking) || !sfl_store_ready(r->store))
        return;
    role_ask *a = malloc(sizeof(*a));
    if (!a)
        return;
    *a = (role_ask){ttl_ms > 0 ? r : NULL, sfl_mono_ms()};
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    const char *keys[1] = {r->key};
    const char *args[2] = {r->node, ttl};
    if (sfl_store_eval(r->store, "role", 1, keys, 2, args, on_answer, a) < 0) {
        free(a);
        return;
    }
    if (ttl_ms > 0)
        r->asking = a;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    sfl_role *r = arg;
    UNUSED(fd);
    UNUSED(what);
    sfl_timer_in(r->timer, r->ttl_ms / 3);
    ask(r, r->ttl_ms);
}

sfl_role *sfl_role_new(struct event_base *base, sfl_store *store, const char *name,
                       const char *node_id, int64_t ttl_ms, sfl_role_fn *fn, void *arg)
{
    sfl_role *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->store = store;
    snprintf(r->key, sizeof(r->key), "%s:role:%s", sfl_store_ns(store), name);
    snprintf(r->node, sizeof(r->node), "%s", node_id);
    r->ttl_ms = ttl_ms < 300 ? 300 : ttl_ms;
    r->fn = fn;
    r->arg = arg;
    if (!(r->timer = evtimer_new(base, on_timer, r))) {
        free(r);
        return NULL;
    }
    sfl_timer_in(r->timer, 0);
    return r;
}

void sfl_role_free(sfl_role *r)
{
    if (!r)
        return;
    if (r->asking)
        r->asking->r = NULL; /* its answer finds nobody */
    if (r->holder)
        ask(r, 0); /* give it up: another node need not wait a TTL */
    event_free(r->timer);
    free(r);
}

void sfl_role_kick(sfl_role *r)
{
    if (r)
        sfl_timer_in(r->timer, 0);
}

int sfl_role_held(const sfl_role *r)
{
    return r && r->holder && sfl_mono_ms() < r->held_until;
}
