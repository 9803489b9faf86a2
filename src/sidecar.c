/* sidecar.c - leases a node holds on behalf of HTTP clients.
 *
 * A program that is not sflimit (a player, a recorder) can share a
 * provider's limit through the node: POST /v1/leases waits for a slot, the
 * node holds and renews the lease in Redis, and the client proves it is
 * alive by calling renew within the client TTL. A client that stops calling
 * (it crashed) loses the lease; so does every client at shutdown. A lease
 * lost in Redis (the node could not renew) is reported on the client's next
 * renew, and the client must stop using its stream.
 */
#include "sidecar.h"

#include "clock.h"
#include "limiter.h"
#include "list.h"
#include "log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct held {
    sfl_sidecar *s;
    sfl_lease *lease;
    struct event *client_deadline;
    int lost;
    struct held *prev, *next;
} held;

struct sfl_sidecar_ask {
    sfl_sidecar *s;
    sfl_wait *wait;
    sfl_sidecar_fn *fn;
    void *arg;
    struct sfl_sidecar_ask *prev, *next;
};

struct sfl_sidecar {
    struct event_base *base;
    sfl_limiter *lim;
    int64_t client_ttl_ms;
    held *held;
    int nheld;
    sfl_sidecar_ask *asks;
};

static void arm(held *h)
{
    sfl_timer_in(h->client_deadline, h->s->client_ttl_ms);
}

static void held_free(held *h)
{
    sfl_sidecar *s = h->s;
    SFL_LIST_UNLINK(s->held, h);
    s->nheld--;
    sfl_lease_release(h->lease);
    event_free(h->client_deadline);
    free(h);
}

static void on_client_gone(evutil_socket_t fd, short what, void *arg)
{
    held *h = arg;
    UNUSED(fd);
    UNUSED(what);
    sfl_warn("sidecar lease %s: no renew from its client within %lld ms; released",
             sfl_lease_id(h->lease), (long long)h->s->client_ttl_ms);
    held_free(h);
}

static void on_lost(sfl_lease *lease, const char *why, void *arg)
{
    held *h = arg;
    UNUSED(lease);
    UNUSED(why);
    h->lost = 1;
}

static void ask_unlink(sfl_sidecar_ask *a)
{
    SFL_LIST_UNLINK(a->s->asks, a);
}

static void on_slot(sfl_wait *w, sfl_wait_status st, sfl_lease *lease, void *arg)
{
    sfl_sidecar_ask *a = arg;
    sfl_sidecar *s = a->s;
    UNUSED(w);
    ask_unlink(a);
    if (st != SFL_WAIT_GRANTED) {
        a->fn(st == SFL_WAIT_TIMEOUT ? SFL_SIDECAR_TIMEOUT : SFL_SIDECAR_UNKNOWN_ACCOUNT, NULL, 0,
              NULL, a->arg);
        free(a);
        return;
    }
    held *h = calloc(1, sizeof(*h));
    if (h)
        h->client_deadline = evtimer_new(s->base, on_client_gone, h);
    if (!h || !h->client_deadline) {
        free(h);
        sfl_lease_release(lease);
        a->fn(SFL_SIDECAR_TIMEOUT, NULL, 0, NULL, a->arg);
        free(a);
        return;
    }
    h->s = s;
    h->lease = lease;
    sfl_lease_on_lost(lease, on_lost, h);
    SFL_LIST_PUSH(s->held, h);
    s->nheld++;
    arm(h);
    a->fn(SFL_SIDECAR_GRANTED, sfl_lease_id(lease), sfl_lease_fence(lease), sfl_lease_login(lease),
          a->arg);
    free(a);
}

sfl_sidecar *sfl_sidecar_new(struct event_base *base, sfl_limiter *lim, int64_t client_ttl_ms)
{
    sfl_sidecar *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base = base;
    s->lim = lim;
    s->client_ttl_ms = client_ttl_ms;
    return s;
}

void sfl_sidecar_free(sfl_sidecar *s)
{
    if (!s)
        return;
    while (s->asks)
        sfl_sidecar_cancel(s->asks);
    while (s->held)
        held_free(s->held);
    free(s);
}

sfl_sidecar_ask *sfl_sidecar_acquire(sfl_sidecar *s, long long account, int64_t wait_ms,
                                     const char *label, sfl_sidecar_fn *fn, void *arg)
{
    sfl_sidecar_ask *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->s = s;
    a->fn = fn;
    a->arg = arg;
    a->wait = sfl_limiter_wait(s->lim, account, label, wait_ms, on_slot, a);
    if (!a->wait) {
        free(a);
        return NULL;
    }
    SFL_LIST_PUSH(s->asks, a);
    return a;
}

void sfl_sidecar_cancel(sfl_sidecar_ask *a)
{
    ask_unlink(a);
    sfl_wait_cancel(a->wait);
    free(a);
}

static held *find(const sfl_sidecar *s, const char *id)
{
    for (held *h = s->held; h; h = h->next)
        if (strcmp(sfl_lease_id(h->lease), id) == 0)
            return h;
    return NULL;
}

int sfl_sidecar_renew(sfl_sidecar *s, const char *id)
{
    held *h = find(s, id);
    if (!h)
        return -1;
    if (h->lost) {
        held_free(h);
        return -2;
    }
    arm(h);
    return 0;
}

int sfl_sidecar_release(sfl_sidecar *s, const char *id)
{
    held *h = find(s, id);
    if (!h)
        return -1;
    held_free(h);
    return 0;
}

int sfl_sidecar_count(const sfl_sidecar *s)
{
    return s->nheld;
}
