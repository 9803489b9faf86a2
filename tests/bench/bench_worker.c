/* bench_worker.c - one process of the lease benchmark: W workers on one
 * libevent loop, each cycling wait -> hold -> release -> wait on one account.
 *
 * Connections: every worker has its OWN store + limiter (two Redis
 * connections: commands and the sfl:released subscription) and its own node
 * id "b<proc>w<worker>", as independent checker nodes would. The thing under
 * test is fairness and hand-off BETWEEN nodes (tickets are per wait, slots
 * are handed to the oldest ticket and announced to its node); one limiter
 * shared by W workers would hide exactly that, turning cross-node hand-offs
 * into local ones. The cost - 2 x P x W connections, and every announcement
 * delivered to P x W subscribers - is what a cluster of that many nodes pays
 * too, and it stays small at the sizes this is run with (16 workers: 32
 * connections).
 *
 * Records: every grant appends {worker, ask, grant} to this process's shared
 * area (from go on, warm-up included); the release time is filled in just
 * BEFORE sfl_lease_release. Times are CLOCK_MONOTONIC ns, one clock for all
 * processes of the machine. Store/limiter counters are summed at the start
 * and at the end of the window.
 *
 * Logins: with --logins N > 1 every limiter is given the account's logins
 * (sfl_limiter_set_accounts), as a node is by its config, so every ask
 * goes over all of them in route order; with 1 it is given nothing and
 * the account keeps the one login, and the keys, it had before logins.
 *
 * Workers use only the public limiter API, as the node does: the benchmark
 * must never change what it measures.
 */
#include "bench.h"

#include "conf.h"
#include "history.h"
#include "limiter.h"
#include "log.h"
#include "store.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DRAIN_DEADLINE_MS 5000
#define SETTLE_MS 100 /* after every store is ready: subscriptions confirmed */
#define RETRY_MS 100  /* after a wait that ended without a grant */

typedef struct bproc bproc;

typedef struct bworker {
    bproc *p;
    int index;    /* global */
    uint64_t rng; /* --jitter-ms draws */
    char node[32];
    sfl_store *st;
    sfl_limiter *lim;
    sfl_history *hist; /* --history-ms: as a node's; NULL: off */
    int ready;
    int ping_owed;
    sfl_wait *wait;
    sfl_lease *lease;
    bench_rec *rec; /* the record of the held lease, NULL if not recorded */
    int64_t ask_ns;
    int64_t announce_ns; /* first announcement naming this node since the ask */
    size_t node_len;
    struct event *hold;
} bworker;

enum { PH_CONNECT, PH_RUN, PH_DRAIN, PH_DONE };

struct bproc {
    const bench_lease_opts *o;
    bench_shm *h;
    bench_proc_area *area;
    struct event_base *base;
    bworker *w;
    int nw;
    int phase;
    int64_t phase_deadline_ns;
    int64_t settled_ns; /* PH_CONNECT: when every store was ready, 0 before */
    struct event *tick, *start_ev, *stop_ev;
};

static void timer_at(struct event *ev, int64_t at_ns)
{
    int64_t d = at_ns - bench_now_ns();
    if (d < 0)
        d = 0;
    struct timeval tv = {(time_t)(d / 1000000000), (suseconds_t)(d % 1000000000 / 1000)};
    evtimer_add(ev, &tv);
}

static void timer_in_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    evtimer_add(ev, &tv);
}

static void proc_fail(bproc *p, const char *fmt, const char *detail)
{
    if (!p->area->failed) {
        p->area->failed = 1;
        snprintf(p->area->err, sizeof(p->area->err), fmt, detail ? detail : "");
    }
    p->phase = PH_DONE;
    event_base_loopbreak(p->base);
}

static void on_ready(sfl_store *st, void *arg)
{
    bworker *w = arg;
    UNUSED(st);
    w->ready = 1;
    sfl_limiter_on_ready(w->lim);
}

static void on_down(sfl_store *st, const char *why, void *arg)
{
    bworker *w = arg;
    UNUSED(st);
    UNUSED(why);
    sfl_limiter_on_down(w->lim);
}

static void on_message(sfl_store *st, const char *channel, const char *msg, void *arg)
{
    bworker *w = arg;
    UNUSED(st);
    UNUSED(channel); /* BENCH_NS:released and BENCH_NS:released:<node> */
    /* "<account> <ticket>", the ticket "<node>:<hex>": a slot handed to this
     * node. Timed for the hand-off split, then handed on untouched. */
    const char *sp = strchr(msg, ' ');
    if (sp && w->wait && !w->announce_ns && strncmp(sp + 1, w->node, w->node_len) == 0 &&
        sp[1 + w->node_len] == ':')
        w->announce_ns = bench_now_ns();
    sfl_limiter_on_released(w->lim, msg);
}

static void worker_ask(bworker *w);

static void on_lost(sfl_lease *lease, const char *why, void *arg)
{
    bworker *w = arg;
    UNUSED(lease);
    UNUSED(why);
    w->p->area->lost++; /* still released when its hold ends */
}

static void on_grant(sfl_wait *wt, sfl_wait_status status, sfl_lease *lease, void *arg)
{
    bworker *w = arg;
    bproc *p = w->p;
    int64_t now = bench_now_ns();
    UNUSED(wt);
    w->wait = NULL;
    if (status != SFL_WAIT_GRANTED) {
        p->area->not_granted++;
        timer_in_ms(w->hold, RETRY_MS);
        return;
    }
    w->lease = lease;
    sfl_lease_on_lost(lease, on_lost, w);
    bench_proc_area *a = p->area;
    if (a->count < a->cap) {
        w->rec = &a->recs[a->count++];
        *w->rec = (bench_rec){.ask_ns = w->ask_ns,
                              .grant_ns = now,
                              .announce_ns = w->announce_ns,
                              .worker = w->index};
    } else {
        a->overflow = 1;
        w->rec = NULL;
    }
    if (p->o->hold_ms == 0) {
        struct timeval zero = {0, 0};
        evtimer_add(w->hold, &zero); /* the next loop turn */
    } else {
        int64_t j = p->o->jitter_ms;
        int64_t ms = p->o->hold_ms;
        if (j > 0) {
            w->rng ^= w->rng << 13; /* xorshift64 */
            w->rng ^= w->rng >> 7;
            w->rng ^= w->rng << 17;
            ms += (int64_t)(w->rng % (uint64_t)(2 * j + 1)) - j;
        }
        timer_in_ms(w->hold, ms);
    }
}

static void worker_let_go(bworker *w)
{
    if (!w->lease)
        return;
    int64_t now = bench_now_ns();
    if (w->rec)
        w->rec->release_ns = now; /* before the call, as the definition says */
    sfl_lease_release(w->lease);
    w->lease = NULL;
    w->rec = NULL;
}

/* The hold is over (or a retry is due). */
static void on_hold(evutil_socket_t fd, short what, void *arg)
{
    bworker *w = arg;
    UNUSED(fd);
    UNUSED(what);
    worker_let_go(w);
    worker_ask(w);
}

static void worker_ask(bworker *w)
{
    bproc *p = w->p;
    if (p->phase != PH_RUN)
        return;
    w->ask_ns = bench_now_ns();
    w->announce_ns = 0;
    w->wait = sfl_limiter_wait(w->lim, p->o->account, "bench", -1, on_grant, w);
    if (!w->wait)
        proc_fail(p, "sfl_limiter_wait failed (out of memory)%s", NULL);
}

static void sum_stats(bproc *p, uint64_t *cmds, uint64_t *denied)
{
    *cmds = 0;
    *denied = 0;
    for (int i = 0; i < p->nw; i++) {
        sfl_store_stats ss;
        sfl_limiter_stats ls;
        sfl_store_get_stats(p->w[i].st, &ss);
        sfl_limiter_get_stats(p->w[i].lim, &ls);
        *cmds += ss.commands;
        *denied += ls.denied;
    }
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    bproc *p = arg;
    UNUSED(fd);
    UNUSED(what);
    sum_stats(p, &p->area->cmds_start, &p->area->denied_start);
}

static void on_ping(sfl_store *st, struct redisReply *r, void *arg)
{
    bworker *w = arg;
    UNUSED(st);
    UNUSED(r);
    w->ping_owed = 0;
}

/* End of the window: stop asking, give everything back. A PING behind the
 * last acquire tells when every answer owed has come (replies come in
 * order), so a cancelled wait granted meanwhile has been given back too. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    bproc *p = arg;
    UNUSED(fd);
    UNUSED(what);
    sum_stats(p, &p->area->cmds_end, &p->area->denied_end);
    p->phase = PH_DRAIN;
    p->phase_deadline_ns = bench_now_ns() + (int64_t)DRAIN_DEADLINE_MS * 1000000;
    timer_in_ms(p->tick, 5);
    for (int i = 0; i < p->nw; i++) {
        bworker *w = &p->w[i];
        evtimer_del(w->hold);
        if (w->wait) {
            sfl_wait_cancel(w->wait);
            w->wait = NULL;
        }
        worker_let_go(w);
        const char *ping[] = {"PING"};
        w->ping_owed = sfl_store_command(w->st, on_ping, w, 1, ping) == 0;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    bproc *p = arg;
    UNUSED(fd);
    UNUSED(what);
    int64_t now = bench_now_ns();
    int done = 1;
    if (p->phase == PH_CONNECT) {
        for (int i = 0; i < p->nw; i++)
            done &= p->w[i].ready;
        if (done && !p->settled_ns)
            p->settled_ns = now;
        if (done && now - p->settled_ns >= (int64_t)SETTLE_MS * 1000000) {
            event_base_loopbreak(p->base);
            return;
        }
        if (now > p->phase_deadline_ns) {
            for (int i = 0; i < p->nw; i++)
                if (!p->w[i].ready) {
                    proc_fail(p, "redis not ready: %s", sfl_store_errstr(p->w[i].st));
                    return;
                }
        }
    } else if (p->phase == PH_DRAIN) {
        for (int i = 0; i < p->nw; i++)
            done &= !p->w[i].ping_owed && sfl_limiter_pending_releases(p->w[i].lim) == 0;
        if (done || now > p->phase_deadline_ns) {
            if (!done)
                proc_fail(p, "releases not confirmed at the end%s", NULL);
            p->phase = PH_DONE;
            event_base_loopbreak(p->base);
        }
    }
}

/* The worker's history as a node with history.flush_ms = --history-ms
 * keeps it (7 days, 20 results per stream: no stream here). */
static sfl_history *history_new(bproc *p, bworker *w)
{
    sfl_conf *c = sfl_conf_new();
    if (!c)
        return NULL;
    free(c->redis_namespace);
    c->redis_namespace = strdup(BENCH_NS);
    c->history_flush_ms = p->o->history_ms;
    sfl_history *h = c->redis_namespace ? sfl_history_new(p->base, w->st, w->lim, c) : NULL;
    sfl_conf_free(c);
    return h;
}

static void proc_free(bproc *p)
{
    /* Stores first: their pending callbacks still reach the limiters. */
    for (int i = 0; i < p->nw; i++)
        sfl_store_free(p->w[i].st);
    for (int i = 0; i < p->nw; i++) {
        sfl_history_free(p->w[i].hist);
        sfl_limiter_free(p->w[i].lim);
        if (p->w[i].hold)
            event_free(p->w[i].hold);
    }
    free(p->w);
    if (p->tick)
        event_free(p->tick);
    if (p->start_ev)
        event_free(p->start_ev);
    if (p->stop_ev)
        event_free(p->stop_ev);
    if (p->base)
        event_base_free(p->base);
}

int bench_worker_main(const bench_lease_opts *o, const sfl_account_conf *acc, bench_shm *h,
                      int index, int go_fd)
{
    bproc p = {.o = o, .h = h, .area = &h->procs[index], .nw = o->workers};
    int rc = 1;
    p.base = event_base_new();
    p.w = calloc((size_t)p.nw, sizeof(*p.w));
    if (!p.base || !p.w) {
        snprintf(p.area->err, sizeof(p.area->err), "out of memory");
        p.area->failed = 1;
        goto done;
    }
    p.tick = event_new(p.base, -1, EV_PERSIST, on_tick, &p);
    p.start_ev = evtimer_new(p.base, on_start, &p);
    p.stop_ev = evtimer_new(p.base, on_stop, &p);
    if (!p.tick || !p.start_ev || !p.stop_ev) {
        proc_fail(&p, "out of memory%s", NULL);
        goto done;
    }
    for (int i = 0; i < p.nw; i++) {
        bworker *w = &p.w[i];
        char err[sizeof(p.area->err) - 16]; /* room for the "logins: " of proc_fail */
        w->p = &p;
        w->index = index * o->workers + i;
        w->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->index + 1) ^ (uint64_t)getpid();
        snprintf(w->node, sizeof(w->node), "b%dw%d", index, i);
        w->node_len = strlen(w->node);
        char own[96];
        snprintf(own, sizeof(own), BENCH_NS ":released:%s", w->node);
        const char *const channels[] = {BENCH_NS ":released", own, NULL};
        sfl_store_opts so = {.url = o->redis_url,
                             .ns = BENCH_NS,
                             .connect_timeout_ms = 2000,
                             .recovery_ms = 15000,
                             .epoch_mode = SFL_EPOCH_FRESH, /* the bench's own new Redis */
                             .channels = channels,
                             .on_ready = on_ready,
                             .on_down = on_down,
                             .on_message = on_message,
                             .arg = w};
        w->st = sfl_store_new(p.base, &so, err, sizeof(err));
        if (!w->st) {
            proc_fail(&p, "%s", err);
            goto done;
        }
        sfl_limiter_opts lo = {.node_id = w->node,
                               .ttl_ms = 5000,
                               .renew_ms = 1500,
                               .safety_ms = 1000,
                               .recovery_ms = 5000,
                               .fallback_ms = 1000,
                               /* holds of 0-20 ms: done before a take-over is due */
                               .short_holds = 1};
        w->lim = sfl_limiter_new(p.base, w->st, &lo);
        w->hold = evtimer_new(p.base, on_hold, w);
        if (!w->lim || !w->hold) {
            proc_fail(&p, "out of memory%s", NULL);
            goto done;
        }
        if (acc && sfl_limiter_set_accounts(w->lim, acc, 1, err, sizeof(err)) < 0) {
            proc_fail(&p, "logins: %s", err);
            goto done;
        }
        if (o->history_ms > 0 && !(w->hist = history_new(&p, w))) {
            proc_fail(&p, "out of memory%s", NULL);
            goto done;
        }
        sfl_store_start(w->st);
    }

    /* Connect every worker, then wait for the parent's go. */
    p.phase = PH_CONNECT;
    p.phase_deadline_ns = bench_now_ns() + (int64_t)BENCH_CONNECT_DEADLINE_MS * 1000000;
    timer_in_ms(p.tick, 10);
    event_base_dispatch(p.base);
    if (p.area->failed)
        goto done;
    atomic_fetch_add(&h->ready, 1);
    char c;
    while (read(go_fd, &c, 1) < 0 && errno == EINTR)
        ;
    if (atomic_load(&h->abort))
        goto done;

    p.phase = PH_RUN;
    evtimer_del(p.tick);
    timer_at(p.start_ev, h->start_ns);
    timer_at(p.stop_ev, h->end_ns);
    for (int i = 0; i < p.nw; i++)
        worker_ask(&p.w[i]);
    event_base_dispatch(p.base);
    rc = p.area->failed ? 1 : 0;
done:
    proc_free(&p);
    return rc;
}
