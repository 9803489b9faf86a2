/* test_lease.c - the lease core on a real redis-server: the seed's limiter
 * tests (limit 1, limit 2, independent accounts, unlimited, 10 concurrent
 * acquirers), expiry, renewal, loss, idempotent release, SCRIPT FLUSH, a
 * Redis restart, and a many-process stress test that samples holders. */
#include "harness.h"
#include "keys.h"
#include "limiter.h"
#include "log.h"
#include "scheduler.h"
#include "scripts.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sfl_test_redis redis;
static struct event_base *base;

static void setup(void)
{
    th_redis_start(&redis, NULL);
    base = event_base_new();
}

static void teardown(void)
{
    event_base_free(base);
    th_redis_stop(&redis);
}

TestSuite(lease, .init = setup, .fini = teardown, .timeout = 120);

/*--- A client: store + limiter on the shared loop --------------------------*/

typedef struct tclient {
    sfl_store *st;
    sfl_limiter *lim;
    int ready;
    int hold; /* keep announcements back (a node that reads them late) */
    char held[4][192];
    int nheld;
} tclient;

static void tc_ready(sfl_store *st, void *arg)
{
    tclient *c = arg;
    (void)st;
    c->ready++;
    sfl_limiter_on_ready(c->lim);
}

static void tc_down(sfl_store *st, const char *why, void *arg)
{
    tclient *c = arg;
    (void)st;
    (void)why;
    sfl_limiter_on_down(c->lim);
}

static void tc_released(sfl_store *st, const char *channel, const char *msg, void *arg)
{
    tclient *c = arg;
    (void)st;
    (void)channel;
    if (c->hold && c->nheld < 4) {
        snprintf(c->held[c->nheld++], sizeof(c->held[0]), "%s", msg);
        return;
    }
    sfl_limiter_on_released(c->lim, msg);
}

/* Hands the announcements kept back to the limiter, and stops keeping them. */
static void tc_deliver(tclient *c)
{
    c->hold = 0;
    for (int i = 0; i < c->nheld; i++)
        sfl_limiter_on_released(c->lim, c->held[i]);
    c->nheld = 0;
}

static int tc_has_held(void *arg)
{
    return ((tclient *)arg)->nheld > 0;
}

static uint64_t tc_claimed(const tclient *c)
{
    sfl_limiter_stats st;
    sfl_limiter_get_stats(c->lim, &st);
    return st.claimed;
}

static int tc_is_ready(void *arg)
{
    return ((tclient *)arg)->ready > 0;
}

static int64_t tc_fallback_ms = 200; /* the next tc_new's longest sleep between asks */
static int64_t tc_handoff_ms = 0;    /* the next tc_new's hand-off hold (0: the default) */
/* The next tc_new's short_holds: these clients hold slots for ms, and the
 * hand-off tests follow a take-over a third of the way into the hold. */
static int tc_short_holds = 1;

static tclient *tc_new(const char *node, int64_t ttl, int64_t renew, int64_t safety)
{
    tclient *c = calloc(1, sizeof(*c));
    char err[256];
    char own[96];
    snprintf(own, sizeof(own), "sfl:released:%s", node);
    const char *const channels[] = {"sfl:released", own, NULL};
    sfl_store_opts so = {.url = redis.url,
                         .ns = "sfl",
                         .connect_timeout_ms = 1000,
                         .recovery_ms = ttl,
                         .takes_leases = 1,
                         .channels = channels,
                         .on_ready = tc_ready,
                         .on_down = tc_down,
                         .on_message = tc_released,
                         .arg = c};
    c->st = sfl_store_new(base, &so, err, sizeof(err));
    cr_assert_not_null(c->st, "%s", err);
    sfl_limiter_opts lo = {.node_id = node,
                           .ttl_ms = ttl,
                           .renew_ms = renew,
                           .safety_ms = safety,
                           .recovery_ms = ttl,
                           .fallback_ms = tc_fallback_ms,
                           .handoff_ms = tc_handoff_ms,
                           .short_holds = tc_short_holds};
    c->lim = sfl_limiter_new(base, c->st, &lo);
    sfl_store_start(c->st);
    cr_assert(th_loop_until(base, tc_is_ready, c, 5000), "store never became ready");
    return c;
}

static void tc_free(tclient *c)
{
    sfl_store_free(c->st);
    sfl_limiter_free(c->lim);
    free(c);
}

/*--- Slots -----------------------------------------------------------------*/

typedef struct slot {
    sfl_lease *lease;
    int status;
    int done;
    int lost;
} slot;

static void on_slot(sfl_wait *w, sfl_wait_status status, sfl_lease *lease, void *arg)
{
    slot *s = arg;
    (void)w;
    s->status = status;
    s->lease = lease;
    s->done = 1;
}

static void on_lost(sfl_lease *l, const char *why, void *arg)
{
    slot *s = arg;
    (void)l;
    (void)why;
    s->lost = 1;
}

static int slot_done(void *arg)
{
    return ((slot *)arg)->done;
}

static int slot_lost(void *arg)
{
    return ((slot *)arg)->lost;
}

static void ask(tclient *c, long long account, int64_t timeout, slot *s)
{
    memset(s, 0, sizeof(*s));
    s->status = -1;
    cr_assert_not_null(sfl_limiter_wait(c->lim, account, "t", timeout, on_slot, s));
}

static void got(slot *s, int timeout_ms)
{
    cr_assert(th_loop_until(base, slot_done, s, timeout_ms), "no answer to the wait");
    cr_assert_eq(s->status, SFL_WAIT_GRANTED, "wait ended with %d, not granted", s->status);
    sfl_lease_on_lost(s->lease, on_lost, s);
}

static long long in_use(long long account)
{
    return th_redis_int(&redis, "ZCARD sfl:{a:%lld}:leases", account);
}

/*--- Conditions to wait on -------------------------------------------------*/

/* arg: {account, count}. */
static int in_use_is(void *arg)
{
    const long long *want = arg;
    return in_use(want[0]) == want[1];
}

static int waiters_are(void *arg)
{
    const long long *want = arg; /* {account, count} */
    return th_redis_int(&redis, "ZCARD sfl:{a:%lld}:waiters", want[0]) == want[1];
}

/* arg: a NULL-terminated array of clients. 1 once Redis has answered every
 * release they sent (sfl_limiter_pending_releases). */
static int all_released(void *arg)
{
    for (tclient **c = arg; *c; c++)
        if (sfl_limiter_pending_releases((*c)->lim) > 0)
            return 0;
    return 1;
}

/* Redis's clock in ms: the one of every deadline and ticket expiry. */
static long long redis_now_ms(void)
{
    redisReply *t = th_redis(&redis, "TIME");
    long long now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    return now;
}

/* Milliseconds from Redis's now to the lease's deadline in Redis (-1 if
 * there is no such lease). */
static long long deadline_left(long long account, const char *id)
{
    long long now = redis_now_ms();
    redisReply *r = th_redis(&redis, "ZSCORE sfl:{a:%lld}:leases %s", account, id);
    long long left = r->type == REDIS_REPLY_STRING ? atoll(r->str) - now : -1;
    freeReplyObject(r);
    return left;
}

/* A member of a key: a lease or ticket in a ZSET, a holder in a HASH. */
typedef struct key_member {
    const char *key;
    const char *member;
} key_member;

/* 1 once the member's score (a deadline or an expiry, ms) is past on Redis's
 * clock, as the scripts see it (a score <= now has passed); 0 while it is
 * ahead or the member is not there. */
static int is_due(void *arg)
{
    const key_member *km = arg;
    redisReply *r = th_redis(&redis, "ZSCORE %s %s", km->key, km->member);
    int due = r->type == REDIS_REPLY_STRING && atoll(r->str) <= redis_now_ms();
    freeReplyObject(r);
    return due;
}

/* 1 while the member is a holder in the HASH. */
static int is_holder(void *arg)
{
    const key_member *km = arg;
    return th_redis_int(&redis, "HEXISTS %s %s", km->key, km->member) == 1;
}

/*--- The seed's limiter tests ----------------------------------------------*/

Test(lease, single_stream_limit)
{
    th_account(&redis, 1, 1);
    tclient *c = tc_new("n1", 5000, 1000, 500);
    slot a, b;
    ask(c, 1, 5000, &a);
    got(&a, 3000);
    ask(c, 1, 400, &b);
    cr_assert(th_loop_until(base, slot_done, &b, 3000));
    cr_assert_eq(b.status, SFL_WAIT_TIMEOUT, "a second slot of a limit-1 account was granted");
    cr_assert_eq(in_use(1), 1);
    sfl_lease_release(a.lease);
    ask(c, 1, 3000, &b);
    got(&b, 3000);
    cr_assert_eq(in_use(1), 1);
    sfl_lease_release(b.lease);
    long long none[2] = {1, 0};
    th_loop_until(base, in_use_is, none, 5000);
    cr_assert_eq(in_use(1), 0);
    tc_free(c);
}

Test(lease, multiple_stream_limit)
{
    th_account(&redis, 2, 2);
    tclient *c = tc_new("n1", 5000, 1000, 500);
    slot s[3];
    ask(c, 2, 5000, &s[0]);
    ask(c, 2, 5000, &s[1]);
    got(&s[0], 3000);
    got(&s[1], 3000);
    ask(c, 2, 300, &s[2]);
    cr_assert(th_loop_until(base, slot_done, &s[2], 3000));
    cr_assert_eq(s[2].status, SFL_WAIT_TIMEOUT, "a third slot of a limit-2 account was granted");
    cr_assert_eq(in_use(2), 2);
    sfl_lease_release(s[0].lease);
    ask(c, 2, 3000, &s[2]);
    got(&s[2], 3000);
    sfl_lease_release(s[1].lease);
    sfl_lease_release(s[2].lease);
    tc_free(c);
}

Test(lease, accounts_independent)
{
    th_account(&redis, 1, 1);
    th_account(&redis, 2, 1);
    tclient *c = tc_new("n1", 5000, 1000, 500);
    slot a, b;
    ask(c, 1, 3000, &a);
    got(&a, 3000);
    ask(c, 2, 3000, &b);
    got(&b, 3000); /* account 1 being full holds nobody else up */
    cr_assert_eq(in_use(1), 1);
    cr_assert_eq(in_use(2), 1);
    sfl_lease_release(a.lease);
    sfl_lease_release(b.lease);
    tc_free(c);
}

Test(lease, unlimited_account)
{
    th_account(&redis, 9, 0);
    tclient *c = tc_new("n1", 5000, 1000, 500);
    static slot s[100];
    for (int i = 0; i < 100; i++)
        ask(c, 9, 5000, &s[i]);
    for (int i = 0; i < 100; i++)
        got(&s[i], 5000);
    cr_assert_eq(in_use(9), 100, "unlimited leases are still recorded");
    for (int i = 0; i < 100; i++)
        sfl_lease_release(s[i].lease);
    long long none[2] = {9, 0};
    th_loop_until(base, in_use_is, none, 5000);
    cr_assert_eq(in_use(9), 0);
    tc_free(c);
}

Test(lease, unknown_account)
{
    tclient *c = tc_new("n1", 5000, 1000, 500);
    slot a;
    ask(c, 77, 3000, &a);
    cr_assert(th_loop_until(base, slot_done, &a, 3000));
    cr_assert_eq(a.status, SFL_WAIT_UNKNOWN_ACCOUNT);
    cr_assert_eq(in_use(77), 0);
    tc_free(c);
}

/* Ten acquirers on ten connections at limit 2: all get a slot in turn, never
 * more than two at once. */
typedef struct turn {
    tclient *c;
    slot s;
    int state; /* 0 waiting, 1 holding, 2 done */
    int64_t held_at;
} turn;

static int all_done(void *arg)
{
    turn *t = arg;
    for (int i = 0; i < 10; i++)
        if (t[i].state != 2)
            return 0;
    return 1;
}

Test(lease, concurrent_access)
{
    th_account(&redis, 3, 2);
    turn t[10];
    for (int i = 0; i < 10; i++) {
        char node[16];
        snprintf(node, sizeof(node), "n%d", i);
        t[i].c = tc_new(node, 5000, 1000, 500);
        t[i].state = 0;
        ask(t[i].c, 3, 20000, &t[i].s);
    }
    int max_holding = 0;
    int64_t until = th_now_ms() + 20000;
    while (!all_done(t) && th_now_ms() < until) {
        /* Kept fixed: the pace of the sampling, not a wait for a result (the
         * loop ends on all_done or its deadline). Every 5 ms the holders are
         * counted and in use checked: at most two, at any sample. */
        th_loop_for(base, 5);
        int holding = 0;
        for (int i = 0; i < 10; i++) {
            if (t[i].state == 0 && t[i].s.done) {
                cr_assert_eq(t[i].s.status, SFL_WAIT_GRANTED);
                t[i].state = 1;
                t[i].held_at = th_now_ms();
            }
            if (t[i].state == 1 && th_now_ms() - t[i].held_at >= 50) {
                sfl_lease_release(t[i].s.lease);
                t[i].state = 2;
            }
            holding += t[i].state == 1;
        }
        if (holding > max_holding)
            max_holding = holding;
        cr_assert_leq(in_use(3), 2);
    }
    cr_assert(all_done(t), "not every acquirer got its turn");
    cr_assert_eq(max_holding, 2, "max concurrent holders %d, expected exactly 2", max_holding);
    for (int i = 0; i < 10; i++)
        tc_free(t[i].c);
}

/*--- Expiry, renewal, loss, release ----------------------------------------*/

/* Runs a script by hand, as a node that then crashes would. */
static redisReply *script(const char *name, long long account, const char *lease, int ttl)
{
    const sfl_script *s = sfl_script_get(name);
    sfl_account_keys k;
    sfl_account_keys_init(&k, "sfl", account);
    const char *const *kv = k.argv;
    if (strcmp(name, "release") == 0)
        return th_redis(&redis, "EVAL %s 7 %s %s %s %s %s %s sfl:epoch %s sfl:released %lld 4000",
                        s->text, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], lease, account);
    if (strcmp(name, "renew") == 0)
        return th_redis(&redis, "EVAL %s 7 %s %s %s %s %s %s sfl:epoch %s %d crashed t -1 0",
                        s->text, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], lease, ttl);
    return th_redis(
        &redis, "EVAL %s 7 %s %s %s %s %s %s sfl:epoch %s %d crashed t -1 0 4000 sfl:released %lld",
        s->text, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], lease, ttl, account);
}

Test(lease, expiry_frees_slot)
{
    th_account(&redis, 4, 1);
    redisReply *r = script("acquire", 4, "crashed:1", 800);
    cr_assert_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    tclient *c = tc_new("n1", 5000, 1000, 500);
    slot a;
    int64_t t0 = th_now_ms();
    ask(c, 4, 10000, &a);
    got(&a, 10000);
    int64_t waited = th_now_ms() - t0;
    cr_assert_geq(waited, 500, "granted after %lld ms, before the crashed lease expired",
                  (long long)waited);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:4}:holders crashed:1"), 0,
                 "the expired holder entry was not reaped");
    sfl_lease_release(a.lease);
    tc_free(c);
}

Test(lease, renew_extends)
{
    th_account(&redis, 5, 1);
    tclient *c = tc_new("n1", 600, 150, 100);
    slot a, b;
    ask(c, 5, 3000, &a);
    got(&a, 3000);
    /* Kept fixed: more than three TTLs must pass, to show that renewals keep
     * the lease; there is no event to wait for, the point is that the loss
     * does not happen. */
    th_loop_for(base, 2000);
    cr_assert_eq(a.lost, 0, "the lease was lost although Redis answered every renewal");
    cr_assert_eq(in_use(5), 1);
    ask(c, 5, 300, &b);
    cr_assert(th_loop_until(base, slot_done, &b, 3000));
    cr_assert_eq(b.status, SFL_WAIT_TIMEOUT, "a renewed lease's slot was given away");
    sfl_lease_release(a.lease);
    tc_free(c);
}

Test(lease, renew_after_expiry_without_room_is_lost)
{
    th_account(&redis, 6, 1);
    redisReply *r = script("acquire", 6, "old", 200);
    cr_assert_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    key_member old = {"sfl:{a:6}:leases", "old"};
    th_until(is_due, &old, 5000);
    r = script("acquire", 6, "new", 5000);
    cr_assert_eq(r->element[0]->integer, 1, "the expired slot was not free");
    freeReplyObject(r);
    r = script("renew", 6, "old", 5000);
    cr_assert_eq(r->element[0]->integer, 0, "an expired lease came back although no room");
    cr_assert_str_eq(r->element[4]->str, "full");
    freeReplyObject(r);
    cr_assert_eq(in_use(6), 1);
    /* With room, the same renewal re-takes it. */
    r = script("release", 6, "new", 0);
    freeReplyObject(r);
    r = script("renew", 6, "old", 5000);
    cr_assert_eq(r->element[0]->integer, 2);
    freeReplyObject(r);
}

Test(lease, release_twice_is_harmless)
{
    th_account(&redis, 7, 2);
    redisReply *r = script("acquire", 7, "a", 5000);
    freeReplyObject(r);
    r = script("acquire", 7, "b", 5000);
    freeReplyObject(r);
    r = script("release", 7, "a", 0);
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    r = script("release", 7, "a", 0);
    cr_assert_eq(r->integer, 0, "a second release claimed to free a slot");
    freeReplyObject(r);
    cr_assert_eq(in_use(7), 1, "a double release freed someone else's slot");
}

Test(lease, idle_keys_expire_but_conf_stays)
{
    th_account(&redis, 8, 1);
    redisReply *r = script("acquire", 8, "a", 5000);
    freeReplyObject(r);
    long long ttl = th_redis_int(&redis, "PTTL sfl:{a:8}:leases");
    cr_assert(ttl > 5000 && ttl <= 16000, "leases key TTL %lld", ttl);
    cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:8}:holders"), 5000);
    cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:8}:fence"), 5000);
    cr_assert_eq(th_redis_int(&redis, "PTTL sfl:{a:8}:conf"), -1);
}

Test(lease, script_flush_is_survived)
{
    th_account(&redis, 10, 1);
    tclient *c = tc_new("n1", 1000, 250, 200);
    slot a, b;
    ask(c, 10, 3000, &a);
    got(&a, 3000);
    freeReplyObject(th_redis(&redis, "SCRIPT FLUSH"));
    /* Kept fixed: longer than the 1000 ms TTL, so that renewals after the
     * flush (each first met by NOSCRIPT) must have kept the lease: the loss
     * is what must not happen. */
    th_loop_for(base, 1500);
    cr_assert_eq(a.lost, 0, "a SCRIPT FLUSH cost the lease");
    sfl_store_stats stats;
    sfl_store_get_stats(c->st, &stats);
    cr_assert_gt(stats.noscript_reloads, 0);
    sfl_lease_release(a.lease);
    ask(c, 10, 3000, &b);
    got(&b, 3000);
    sfl_lease_release(b.lease);
    tc_free(c);
}

/* Redis restarts without persistence while a lease is held: the holder
 * reconnects and re-takes it; another node, waiting, must not get the slot
 * while the first still holds it (the recovery window). */
Test(lease, redis_restart_is_survived)
{
    th_account(&redis, 11, 1);
    tclient *h = tc_new("holder", 1500, 300, 300);
    tclient *o = tc_new("other", 1500, 300, 300);
    sfl_limiter_hint_limit(o->lim, 11, 1);
    slot a, b;
    ask(h, 11, 3000, &a);
    got(&a, 3000);
    th_redis_restart(&redis);
    ask(o, 11, -1, &b);
    /* Kept fixed: for 3 s (two TTLs) the slot must not be handed out while
     * its holder still runs; a grant is what must not happen. */
    int64_t until = th_now_ms() + 3000;
    while (th_now_ms() < until) {
        th_loop_for(base, 20);
        cr_assert(!b.done, "the slot was handed out while its holder still ran");
    }
    cr_assert_eq(a.lost, 0, "the holder lost its lease although Redis came back in time");
    cr_assert_eq(h->ready, 2, "the holder did not reconnect");
    cr_assert_eq(in_use(11), 1, "the holder's lease was not re-taken");
    sfl_lease_release(a.lease);
    got(&b, 5000);
    sfl_lease_release(b.lease);
    tc_free(h);
    tc_free(o);
}

/* Redis stops answering (SIGSTOP) for longer than the TTL: the holder must
 * declare the lease lost before its deadline could pass in Redis. */
Test(lease, frozen_redis_loses_lease_before_deadline)
{
    th_account(&redis, 12, 1);
    tclient *h = tc_new("holder", 1000, 250, 300);
    slot a;
    ask(h, 12, 3000, &a);
    got(&a, 3000);
    int64_t granted = th_now_ms();
    kill(redis.pid, SIGSTOP);
    th_loop_until(base, slot_lost, &a, 3000);
    int64_t lost_after = th_now_ms() - granted;
    kill(redis.pid, SIGCONT);
    cr_assert(a.lost, "the lease was never declared lost");
    cr_assert_lt(lost_after, 1000, "lost after %lld ms: past the 1000 ms TTL",
                 (long long)lost_after);
    sfl_lease_release(a.lease);
    tc_free(h);
}

/*--- Stress: processes x workers x cycles, holders sampled -----------------*/

typedef struct shared {
    atomic_int holding;
    atomic_int max_holding;
    atomic_int violations;
    atomic_int cycles;
} shared;

typedef struct worker {
    tclient *c;
    slot s;
    int cycles_left;
    int holding;
    shared *sh;
} worker;

static void worker_ask(worker *w);

static void worker_granted(sfl_wait *wt, sfl_wait_status status, sfl_lease *lease, void *arg)
{
    worker *w = arg;
    (void)wt;
    if (status != SFL_WAIT_GRANTED) {
        worker_ask(w);
        return;
    }
    int now = atomic_fetch_add(&w->sh->holding, 1) + 1;
    int m = atomic_load(&w->sh->max_holding);
    while (now > m && !atomic_compare_exchange_weak(&w->sh->max_holding, &m, now))
        ;
    if (now > 2)
        atomic_fetch_add(&w->sh->violations, 1);
    w->s.lease = lease;
    w->holding = 1;
}

static void worker_ask(worker *w)
{
    sfl_limiter_wait(w->c->lim, 13, "stress", -1, worker_granted, w);
}

static int stress_child(const char *url, shared *sh, int workers, int cycles)
{
    (void)url;
    base = event_base_new();
    worker w[8];
    for (int i = 0; i < workers; i++) {
        char node[32];
        snprintf(node, sizeof(node), "p%d-w%d", getpid(), i);
        w[i] = (worker){.c = tc_new(node, 3000, 1000, 500), .cycles_left = cycles, .sh = sh};
        worker_ask(&w[i]);
    }
    int64_t until = th_now_ms() + 60000;
    int busy = 1;
    while (busy && th_now_ms() < until) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        busy = 0;
        for (int i = 0; i < workers; i++) {
            if (w[i].holding) {
                atomic_fetch_sub(&sh->holding, 1);
                w[i].holding = 0;
                sfl_lease_release(w[i].s.lease);
                atomic_fetch_add(&sh->cycles, 1);
                if (--w[i].cycles_left > 0)
                    worker_ask(&w[i]);
            }
            busy |= w[i].cycles_left > 0;
        }
        usleep(200);
    }
    /* Exits only once Redis has answered its releases. */
    tclient *clients[9] = {0};
    for (int i = 0; i < workers; i++)
        clients[i] = w[i].c;
    int released = th_loop_until(base, all_released, clients, 5000);
    return busy || !released ? 1 : 0;
}

Test(lease, stress_never_exceeds_limit)
{
    th_account(&redis, 13, 2);
    shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(sh, 0, sizeof(*sh));
    enum { PROCS = 4, WORKERS = 4, CYCLES = 40 };
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0)
            _exit(stress_child(redis.url, sh, WORKERS, CYCLES));
    }
    long long max_zcard = 0;
    int64_t until = th_now_ms() + 90000;
    int running = PROCS;
    while (running > 0 && th_now_ms() < until) {
        long long z = in_use(13);
        if (z > max_zcard)
            max_zcard = z;
        running = 0;
        for (int p = 0; p < PROCS; p++)
            if (pids[p] > 0) {
                int st;
                if (waitpid(pids[p], &st, WNOHANG) == pids[p]) {
                    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "stress process failed");
                    pids[p] = 0;
                } else {
                    running++;
                }
            }
        usleep(2000);
    }
    cr_assert_eq(running, 0, "stress processes did not finish");
    cr_assert_eq(atomic_load(&sh->cycles), PROCS * WORKERS * CYCLES);
    cr_assert_eq(atomic_load(&sh->violations), 0, "%d times more than 2 holders at once",
                 atomic_load(&sh->violations));
    cr_assert_leq(atomic_load(&sh->max_holding), 2);
    cr_assert_eq(atomic_load(&sh->max_holding), 2, "the limit was never used fully");
    cr_assert_leq(max_zcard, 2);
}

/*--- Fair waiting: tickets and hand-off ------------------------------------*/

static long long reply_int(redisReply *r, size_t i)
{
    cr_assert(r->type == REDIS_REPLY_ARRAY && i < r->elements);
    return r->element[i]->integer;
}

/* Slots go to tickets in arrival order; release hands the slot straight to
 * the oldest ticket, whose node takes it over with the same id. */
Test(lease, release_hands_slot_to_oldest_ticket)
{
    th_account(&redis, 20, 1);
    redisReply *r = script("acquire", 20, "a:1", 5000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    r = script("acquire", 20, "b:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0);
    cr_assert_eq(reply_int(r, 5), 1, "b should be first in line");
    freeReplyObject(r);
    r = script("acquire", 20, "c:1", 5000);
    cr_assert_eq(reply_int(r, 5), 2, "c should be second in line");
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:20}:waiters"), 2);

    r = script("release", 20, "a:1", 0);
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(in_use(20), 1, "the slot was not handed on (or handed twice)");
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:20}:holders b:1"), 1,
                 "the slot did not go to the oldest ticket");
    /* c asks before b has taken over: still full. */
    r = script("acquire", 20, "c:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0, "a later ticket jumped the queue");
    freeReplyObject(r);
    /* b takes over the handed lease. */
    r = script("acquire", 20, "b:1", 5000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    cr_assert_eq(in_use(20), 1);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:20}:waiters"), 1, "c keeps its place");
}

/* A dead node's ticket expires: it does not hold the queue. */
Test(lease, expired_ticket_is_skipped)
{
    th_account(&redis, 21, 1);
    const sfl_script *s = sfl_script_get("acquire");
    freeReplyObject(script("acquire", 21, "a:1", 5000));
    /* a ticket that lives 100 ms (its node then dies) */
    freeReplyObject(th_redis(&redis,
                             "EVAL %s 7 sfl:{a:21}:leases sfl:{a:21}:holders sfl:{a:21}:conf "
                             "sfl:{a:21}:fence sfl:{a:21}:waiters sfl:{a:21}:waiters:exp "
                             "sfl:epoch dead:1 "
                             "5000 dead t -1 0 100 sfl:released 21",
                             s->text));
    freeReplyObject(script("acquire", 21, "live:1", 5000));
    key_member ticket = {"sfl:{a:21}:waiters:exp", "dead:1"};
    th_until(is_due, &ticket, 5000);
    freeReplyObject(script("release", 21, "a:1", 0));
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:21}:holders dead:1"), 0,
                 "an expired ticket got the slot");
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:21}:holders live:1"), 1);
}

/* Eight busy waiters cycle on one limit-1 account; a ninth client joins.
 * With tickets served in order, at most the eight tickets already queued
 * can be served before it: count the grants, not the milliseconds. */
typedef struct cycler {
    tclient *c;
    slot s;
    int holding;
    int64_t held_at;
    int grants;
} cycler;

Test(lease, newcomer_is_served_in_turn)
{
    th_account(&redis, 22, 1);
    enum { BUSY = 8 };
    cycler cy[BUSY];
    for (int i = 0; i < BUSY; i++) {
        char node[16];
        snprintf(node, sizeof(node), "busy%d", i);
        cy[i] = (cycler){.c = tc_new(node, 5000, 1000, 500)};
        ask(cy[i].c, 22, -1, &cy[i].s);
    }
    tclient *newcomer = tc_new("newcomer", 5000, 1000, 500);
    slot n;
    int asked = 0, grants_before = 0, total = 0;
    int64_t until = th_now_ms() + 30000;
    while (th_now_ms() < until && !(asked && n.done)) {
        /* Kept fixed: the pace at which the busy waiters are driven (the
         * loop ends when the newcomer is served, or at its deadline). */
        th_loop_for(base, 2);
        for (int i = 0; i < BUSY; i++) {
            if (!cy[i].holding && cy[i].s.done) {
                cr_assert_eq(cy[i].s.status, SFL_WAIT_GRANTED);
                cy[i].holding = 1;
                cy[i].held_at = th_now_ms();
                total++;
                if (asked && !n.done)
                    grants_before++;
            }
            if (cy[i].holding && th_now_ms() - cy[i].held_at >= 20) {
                sfl_lease_release(cy[i].s.lease);
                cy[i].holding = 0;
                ask(cy[i].c, 22, -1, &cy[i].s);
            }
        }
        if (!asked && total >= 2 * BUSY) {
            ask(newcomer, 22, -1, &n);
            asked = 1;
        }
    }
    cr_assert(asked && n.done, "the newcomer never got a slot");
    cr_assert_eq(n.status, SFL_WAIT_GRANTED);
    cr_assert_leq(grants_before, BUSY,
                  "%d grants went to others while the newcomer waited behind %d tickets",
                  grants_before, BUSY);
    sfl_lease_release(n.lease);
    tclient *clients[BUSY + 2] = {0};
    for (int i = 0; i < BUSY; i++) {
        if (cy[i].holding)
            sfl_lease_release(cy[i].s.lease);
        clients[i] = cy[i].c;
    }
    clients[BUSY] = newcomer;
    cr_assert(th_loop_until(base, all_released, clients, 5000), "a release went unanswered");
    for (int i = 0; i < BUSY; i++)
        tc_free(cy[i].c);
    tc_free(newcomer);
}

/* A wait that gives up must take its ticket with it: otherwise the next
 * release hands the slot to nobody, and it sits idle. */
Test(lease, timed_out_wait_withdraws_its_ticket)
{
    th_account(&redis, 23, 1);
    tclient *c = tc_new("n1", 5000, 1000, 500);
    slot a, b;
    ask(c, 23, 3000, &a);
    got(&a, 3000);
    ask(c, 23, 300, &b);
    cr_assert(th_loop_until(base, slot_done, &b, 3000));
    cr_assert_eq(b.status, SFL_WAIT_TIMEOUT);
    /* Only a script takes a ticket out, and none runs here but the
     * withdrawal: a ticket left queued would stay past the deadline. */
    long long no_ticket[2] = {23, 0};
    th_loop_until(base, waiters_are, no_ticket, 5000);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:23}:waiters"), 0,
                 "the timed-out wait left its ticket queued");
    sfl_lease_release(a.lease);
    /* A slot handed to a gone ticket would stay in use: nobody reaps it. */
    long long none[2] = {23, 0};
    th_loop_until(base, in_use_is, none, 5000);
    cr_assert_eq(in_use(23), 0, "the release handed the slot to a wait that was gone");
    tc_free(c);
}

/* A node dies with its ticket first in line: the slot freed for it is held
 * only for the short hand-off time (a live node takes a handed slot over
 * within milliseconds of the announcement), not for the ticket's lifetime.
 * The next live waiter gets the slot soon after. */
Test(lease, dead_waiters_ticket_holds_a_freed_slot_briefly)
{
    th_account(&redis, 24, 1);
    tclient *h = tc_new("holder", 5000, 1000, 500);
    tclient *l = tc_new("live", 5000, 1000, 500);
    slot a, b;
    ask(h, 24, 3000, &a);
    got(&a, 3000);
    /* The dead node's ticket lives 4 s (it asked, then crashed). */
    redisReply *r = script("acquire", 24, "dead:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    ask(l, 24, -1, &b);
    long long want[2] = {24, 2};
    cr_assert(th_loop_until(base, waiters_are, want, 3000), "the live node's ticket never queued");
    int64_t t0 = th_now_ms();
    sfl_lease_release(a.lease);
    key_member dead = {"sfl:{a:24}:holders", "dead:1"};
    th_loop_until(base, is_holder, &dead, 5000);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:24}:holders dead:1"), 1,
                 "the slot was not handed to the ticket first in line");
    cr_assert(!b.done, "the live node took a slot handed to the dead node's ticket");
    got(&b, 10000);
    int64_t waited = th_now_ms() - t0;
    cr_assert_lt(waited, 1000,
                 "the live waiter got the slot %lld ms after its release: the dead node's "
                 "ticket kept it",
                 (long long)waited);
    cr_assert_eq(in_use(24), 1);
    sfl_lease_release(b.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){h, l, NULL}, 5000),
              "the release went unanswered");
    tc_free(h);
    tc_free(l);
}

/* Key expiry is pushed out only when it falls short, and then from what the
 * keys hold: a key never expires before the latest deadline (or ticket) in
 * it, whatever TTL another writer left on it. */
Test(lease, keys_outlive_every_deadline_and_ticket)
{
    th_account(&redis, 25, 3);
    redisReply *r = script("acquire", 25, "long:1", 60000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    /* Another writer (an older version, an operator) shortened the TTLs. */
    freeReplyObject(th_redis(&redis, "PEXPIRE sfl:{a:25}:leases 2000"));
    freeReplyObject(th_redis(&redis, "PEXPIRE sfl:{a:25}:holders 2000"));
    freeReplyObject(th_redis(&redis, "PEXPIRE sfl:{a:25}:fence 2000"));
    r = script("acquire", 25, "short:1", 1000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    const char *keys[] = {"leases", "holders", "fence"};
    for (int i = 0; i < 3; i++) {
        long long ttl = th_redis_int(&redis, "PTTL sfl:{a:25}:%s", keys[i]);
        cr_assert(ttl > 60000, "%s expires in %lld ms, before the 60 s lease's deadline", keys[i],
                  ttl);
    }
    /* A queued ticket's keys get a TTL, longer than the ticket's life. */
    freeReplyObject(script("acquire", 25, "third:1", 5000));
    r = script("acquire", 25, "waiting:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    long long w = th_redis_int(&redis, "PTTL sfl:{a:25}:waiters");
    long long x = th_redis_int(&redis, "PTTL sfl:{a:25}:waiters:exp");
    cr_assert(w > 4000 && x > 4000, "ticket keys' TTLs %lld / %lld ms", w, x);
    /* A release hands the slot to the ticket; every key still has a TTL. */
    r = script("release", 25, "short:1", 0);
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:25}:holders waiting:1"), 1);
    const char *all[] = {"leases", "holders", "fence"};
    for (int i = 0; i < 3; i++)
        cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:25}:%s", all[i]), 60000);
    cr_assert_eq(th_redis_int(&redis, "PTTL sfl:{a:25}:conf"), -1);
}

/* A key made again by the call that writes into it (Redis deleted it when
 * it emptied: the last lease released, the last ticket served) gets its TTL
 * from what it holds, past the latest deadline (ticket expiry) in it by the
 * keep time (10 s), as every other key does. */
Test(lease, keys_made_again_outlive_their_data)
{
    th_account(&redis, 47, 1);
    redisReply *r = script("acquire", 47, "first:1", 5000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    r = script("release", 47, "first:1", 0);
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:47}:leases"), 0);
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:47}:holders"), 0);
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:47}:fence"), 1);
    /* The next lease makes the leases and holders keys again. */
    r = script("acquire", 47, "second:1", 20000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    const char *login[] = {"leases", "holders"};
    for (int i = 0; i < 2; i++) {
        long long ttl = th_redis_int(&redis, "PTTL sfl:{a:47}:%s", login[i]);
        cr_assert_gt(ttl, 20000 + 9000, "%s expires in %lld ms: not 10 s past the lease's 20 s",
                     login[i], ttl);
    }
    /* The first ticket makes the queue. */
    r = script("acquire", 47, "waiting:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    const char *queue[] = {"waiters", "waiters:exp"};
    for (int i = 0; i < 2; i++) {
        long long ttl = th_redis_int(&redis, "PTTL sfl:{a:47}:%s", queue[i]);
        cr_assert_gt(ttl, 4000 + 9000, "%s expires in %lld ms: not 10 s past the 4 s ticket's",
                     queue[i], ttl);
    }
    cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:47}:leases"), 20000);
    cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:47}:fence"), 0);
}

/* How many times Redis ran a command (INFO commandstats), scripts' calls
 * included. */
static long long command_calls(const char *name)
{
    redisReply *r = th_redis(&redis, "INFO commandstats");
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", name);
    const char *at = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, key) : NULL;
    long long n = at ? atoll(at + strlen(key)) : 0;
    freeReplyObject(r);
    return n;
}

/* A release with nobody queued announces nothing: every waiting node has a
 * ticket queued, so there is nobody to wake. */
Test(lease, release_with_nobody_queued_is_not_announced)
{
    th_account(&redis, 26, 1);
    freeReplyObject(script("acquire", 26, "a:1", 5000));
    long long before = command_calls("publish");
    redisReply *r = script("release", 26, "a:1", 0);
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(command_calls("publish"), before, "a release with nobody queued was announced");
    /* With a ticket queued, the release is announced (to its node). */
    freeReplyObject(script("acquire", 26, "b:1", 5000));
    freeReplyObject(script("acquire", 26, "c:1", 5000));
    before = command_calls("publish");
    freeReplyObject(script("release", 26, "b:1", 0));
    cr_assert_eq(command_calls("publish"), before + 1, "the hand-off was not announced");
}

/* A hand-off's hold that ends after the lease given back would have ended
 * gets the keys' TTL read and pushed past it (here an older writer, by
 * hand, kept them only just past that lease). A hold that ends before has
 * the TTL not read at all: that lease's writer kept the keys past its
 * deadline, so past the hold's. */
Test(lease, handoff_keeps_keys_past_its_hold)
{
    th_account(&redis, 49, 1);
    redisReply *r = script("acquire", 49, "short:1", 1000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    r = script("acquire", 49, "waiting:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    const char *login[] = {"leases", "holders", "fence"};
    for (int i = 0; i < 3; i++)
        freeReplyObject(th_redis(&redis, "PEXPIRE sfl:{a:49}:%s 1500", login[i]));
    r = script("release", 49, "short:1", 0); /* a hold of 4 s */
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:49}:holders waiting:1"), 1,
                 "the slot was not handed to the ticket");
    for (int i = 0; i < 3; i++) {
        long long ttl = th_redis_int(&redis, "PTTL sfl:{a:49}:%s", login[i]);
        cr_assert_gt(ttl, 4000 + 9000, "%s expires in %lld ms: not 10 s past the 4 s hold",
                     login[i], ttl);
    }

    th_account(&redis, 50, 1);
    r = script("acquire", 50, "long:1", 60000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    r = script("acquire", 50, "next:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    long long before = command_calls("pttl");
    r = script("release", 50, "long:1", 0);
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:50}:holders next:1"), 1,
                 "the slot was not handed to the ticket");
    cr_assert_eq(command_calls("pttl"), before,
                 "a hold inside the 60 s lease given back read the keys' TTL");
    cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:50}:leases"), 60000);
}

/*--- Starting on a hand-off ------------------------------------------------*/

/* The only waiting ticket of an account (its ZSET's first member), or "". */
static void first_ticket(long long account, char *buf, size_t len)
{
    redisReply *r = th_redis(&redis, "ZRANGE sfl:{a:%lld}:waiters 0 0", account);
    snprintf(buf, len, "%s", r->elements ? r->element[0]->str : "");
    freeReplyObject(r);
}

/* A hand-off, up to its announcement: on account (limit 1) h holds a and
 * releases it while w waits with b; the slot goes to w's ticket (copied into
 * ticket), and w keeps the announcement back until tc_deliver. */
typedef struct handoff {
    long long account;
    tclient *h, *w;
    slot a, b;
    char ticket[96];
} handoff;

static void handoff_until_announced(handoff *x, long long account, int64_t w_fallback_ms)
{
    x->account = account;
    th_account(&redis, account, 1);
    x->h = tc_new("holder", 5000, 1000, 500);
    tc_fallback_ms = w_fallback_ms;
    x->w = tc_new("waiter", 5000, 1000, 500);
    tc_fallback_ms = 200;
    ask(x->h, account, 3000, &x->a);
    got(&x->a, 3000);
    ask(x->w, account, -1, &x->b);
    long long want[2] = {account, 1};
    cr_assert(th_loop_until(base, waiters_are, want, 3000), "the waiter's ticket never queued");
    first_ticket(account, x->ticket, sizeof(x->ticket));
    x->w->hold = 1;
    sfl_lease_release(x->a.lease);
    cr_assert(th_loop_until(base, tc_has_held, x->w, 3000), "no hand-off was announced");
    cr_assert(!x->b.done, "granted before the announcement came");
}

/* 1 once the handed slot is a full lease (its deadline more than 2 s away,
 * not the hand-off's 250 ms): the waiter took it over. */
static int taken_over(void *arg)
{
    const handoff *x = arg;
    return deadline_left(x->account, x->ticket) > 2000;
}

static void handoff_free(handoff *x)
{
    if (x->b.done && x->b.status == SFL_WAIT_GRANTED)
        sfl_lease_release(x->b.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){x->h, x->w, NULL}, 5000),
              "a release went unanswered");
    tc_free(x->h);
    tc_free(x->w);
}

/* A waiter starts on the announcement of a slot handed to its ticket (no
 * ask first), and takes the slot over for its full TTL at once. */
Test(lease, handoff_starts_on_the_announcement)
{
    handoff x;
    handoff_until_announced(&x, 27, 200);
    tc_deliver(x.w);
    cr_assert(x.b.done && x.b.status == SFL_WAIT_GRANTED,
              "the wait was not granted on the announcement itself");
    cr_assert_eq(tc_claimed(x.w), 1);
    cr_assert_str_eq(sfl_lease_id(x.b.lease), x.ticket, "the lease is not the handed ticket");
    /* The take-over makes it a full lease: deadline a TTL away, not 250 ms. */
    th_loop_until(base, taken_over, &x, 3000);
    long long left = deadline_left(27, x.ticket);
    cr_assert_gt(left, 2000, "the handed slot was not taken over (deadline in %lld ms)", left);
    cr_assert(!sfl_lease_is_lost(x.b.lease));
    cr_assert_eq(in_use(27), 1);
    sfl_lease_release(x.b.lease);
    x.b.done = 0;
    long long none[2] = {27, 0};
    th_loop_until(base, in_use_is, none, 5000);
    cr_assert_eq(in_use(27), 0);
    handoff_free(&x);
}

/* A node that reads a hand-off only after the slot's hold ran out (it was
 * stalled) must not start on it: by then the slot may be someone else's.
 * It asks instead, and waits its turn. */
Test(lease, late_handoff_is_not_started_on)
{
    handoff x;
    handoff_until_announced(&x, 28, 10000); /* it does not ask again on its own meanwhile */
    tclient *o = tc_new("other", 5000, 1000, 500);
    slot c;
    /* The hold (250 ms) runs out; another node takes the freed slot. */
    key_member hold = {"sfl:{a:28}:leases", x.ticket};
    th_loop_until(base, is_due, &hold, 5000);
    ask(o, 28, 3000, &c);
    got(&c, 3000);
    cr_assert_eq(in_use(28), 1);
    tc_deliver(x.w);
    /* Kept fixed: 300 ms in which the waiter must not start on the late
     * hand-off; a start is what must not happen. */
    th_loop_for(base, 300);
    cr_assert(!x.b.done, "started on a hand-off whose hold had run out: two holders of a limit 1");
    cr_assert_eq(tc_claimed(x.w), 0);
    cr_assert_eq(in_use(28), 1);
    /* It asked instead, and gets the slot when the other node is done. */
    sfl_lease_release(c.lease);
    got(&x.b, 3000);
    cr_assert_eq(in_use(28), 1);
    handoff_free(&x);
    tc_free(o);
}

/* The slot's hold vanished before the take-over (here: removed by hand, as
 * a data loss would): the take-over is refused, and the lease is lost with
 * no time left to stop its check. */
Test(lease, handoff_whose_takeover_is_refused_is_lost_at_once)
{
    handoff x;
    handoff_until_announced(&x, 29, 200);
    freeReplyObject(th_redis(&redis, "ZREM sfl:{a:29}:leases %s", x.ticket));
    redisReply *r = script("acquire", 29, "thief:1", 5000);
    cr_assert_eq(reply_int(r, 0), 1);
    freeReplyObject(r);
    tc_deliver(x.w);
    cr_assert(x.b.done && x.b.status == SFL_WAIT_GRANTED);
    sfl_lease_on_lost(x.b.lease, on_lost, &x.b);
    cr_assert(th_loop_until(base, slot_lost, &x.b, 2000), "the refused take-over went unnoticed");
    cr_assert_eq(sfl_lease_stop_within_ms(x.b.lease), 0, "a refused take-over must stop at once");
    handoff_free(&x);
    cr_assert_eq(in_use(29), 1, "the thief's lease is the only one");
}

/* Redis stops answering just as a node starts on a hand-off: the take-over
 * never comes back, and the lease is declared lost, with its check's kill
 * due, before the hold's deadline in Redis (Redis's TIME and this test's
 * wall clock are the same clock). */
Test(lease, handoff_without_takeover_answer_is_lost_before_its_hold_ends)
{
    handoff x;
    handoff_until_announced(&x, 30, 200);
    long long account = 0, deadline = 0;
    cr_assert_eq(sscanf(x.w->held[0], "%lld %*s %lld", &account, &deadline), 2,
                 "announcement \"%s\"", x.w->held[0]);
    kill(redis.pid, SIGSTOP);
    tc_deliver(x.w);
    cr_assert(x.b.done && x.b.status == SFL_WAIT_GRANTED, "not started on the hand-off");
    sfl_lease_on_lost(x.b.lease, on_lost, &x.b);
    th_loop_until(base, slot_lost, &x.b, 3000);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long lost_at = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    long long stop_by = lost_at + sfl_lease_stop_within_ms(x.b.lease);
    kill(redis.pid, SIGCONT);
    cr_assert(x.b.lost, "the take-over went unanswered and the lease was never lost");
    cr_assert_lt(stop_by, deadline, "the check may run until %lld ms after the hold's end in Redis",
                 stop_by - deadline + 1);
    handoff_free(&x);
}

/* A check started on a hand-off and still running when the hand-off's hold
 * (250 ms) runs out: its take-over, sent a while after the start, made the
 * slot a full lease, so nobody else gets it. A take-over that never went out
 * would let the hold lapse and a second holder in on a limit of 1. */
Test(lease, handoff_held_past_its_hold_keeps_the_slot)
{
    handoff x;
    handoff_until_announced(&x, 31, 200);
    tc_deliver(x.w);
    cr_assert(x.b.done && x.b.status == SFL_WAIT_GRANTED, "not started on the hand-off");
    sfl_lease_on_lost(x.b.lease, on_lost, &x.b);
    /* Kept fixed: past the hold's 250 ms, the time a lapse would take. */
    th_loop_for(base, 600);
    cr_assert(!x.b.lost, "the handed lease was lost while its check ran");
    long long left = deadline_left(31, x.ticket);
    cr_assert_gt(left, 2000, "the handed slot was not taken over (deadline in %lld ms)", left);
    redisReply *r = script("acquire", 31, "thief:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0, "a second holder got the slot of a limit of 1");
    freeReplyObject(r);
    cr_assert_eq(in_use(31), 1);
    handoff_free(&x);
}

/* A slot handed to a ticket of a try (the scheduler's ask) and claimed on
 * the announcement as a check claims it (sfl_limiter_claim). */
typedef struct claim_ctx {
    sfl_limiter *lim;
    sfl_lease *lease;
    long long account;
    char ticket[96];
} claim_ctx;

typedef struct tried {
    int done;
    sfl_try_status status;
    sfl_lease *lease;
} tried;

static void on_tried(const sfl_try_result *res, void *arg)
{
    tried *t = arg;
    t->done = 1;
    t->status = res->status;
    t->lease = res->lease;
}

static int try_done(void *arg)
{
    return ((tried *)arg)->done;
}

static void on_seen_claim(const sfl_handoff *h, void *arg)
{
    claim_ctx *c = arg;
    if (!c->lease && h->ticket && strcmp(h->ticket, c->ticket) == 0)
        c->lease = sfl_limiter_claim(c->lim, h, "check", -1);
}

static int claimed(void *arg)
{
    return ((claim_ctx *)arg)->lease != NULL;
}

/* 1 once the handed slot's deadline is the claimer's TTL (5 s), not the
 * 20 s hold's: taken over. */
static int taken_over_from_hold(void *arg)
{
    const claim_ctx *c = arg;
    long long left = deadline_left(c->account, c->ticket);
    return left > 0 && left < 10000;
}

/* A check started on a hand-off (the scheduler's claim, on a limiter of
 * long holders) takes the slot over at once: it will run for seconds, and
 * the whole hold is left for the take-over's round trip. Here the hold is
 * 20 s, so a take-over a third of the way into it (short_holds: holders
 * that may be done by then) would come after some 6 s: the slot must be a
 * full lease within 3 s. */
Test(lease, check_claimed_on_a_handoff_takes_it_over_at_once)
{
    th_account(&redis, 51, 1);
    tc_handoff_ms = 20000;
    tclient *h = tc_new("holder", 5000, 1000, 500);
    tc_handoff_ms = 0;
    /* A limiter of long holders (short_holds 0: checks, exec, the sidecar
     * API), renewing every 4 s: a renewal, which takes a handed slot over
     * too, comes after the 3 s this test allows. */
    tc_short_holds = 0;
    tclient *w = tc_new("claimer", 5000, 4000, 500);
    tc_short_holds = 1;
    slot a;
    ask(h, 51, 3000, &a);
    got(&a, 3000);
    claim_ctx c = {.lim = w->lim, .account = 51};
    sfl_limiter_new_id(w->lim, c.ticket, sizeof(c.ticket));
    tried t = {0};
    cr_assert_eq(sfl_limiter_try(w->lim, 51, "check", c.ticket, on_tried, &t), 0);
    cr_assert(th_loop_until(base, try_done, &t, 3000), "the try was not answered");
    cr_assert_eq(t.status, SFL_TRY_DENIED, "the try on a full login was not denied");
    cr_assert_null(t.lease);
    sfl_limiter_on_release_seen(w->lim, on_seen_claim, &c);
    sfl_lease_release(a.lease);
    cr_assert(th_loop_until(base, claimed, &c, 3000), "the hand-off was not claimed");
    cr_assert_gt(deadline_left(51, c.ticket), 10000, "the slot was not held for the ticket");
    cr_assert(th_loop_until(base, taken_over_from_hold, &c, 3000),
              "not taken over within 3 s (deadline in %lld ms)", deadline_left(51, c.ticket));
    sfl_lease_release(c.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){h, w, NULL}, 5000),
              "a release went unanswered");
    cr_assert_eq(in_use(51), 0);
    tc_free(h);
    tc_free(w);
}

/* A check started on a hand-off and done before its take-over was due (the
 * common case at high churn) gives the slot back without one, and the
 * take-over does not come later to take a slot nobody holds. */
Test(lease, handoff_released_before_its_takeover_leaves_no_lease)
{
    handoff x;
    handoff_until_announced(&x, 32, 200);
    tc_deliver(x.w);
    cr_assert(x.b.done && x.b.status == SFL_WAIT_GRANTED, "not started on the hand-off");
    sfl_lease_release(x.b.lease);
    x.b.done = 0;
    long long none[2] = {32, 0};
    cr_assert(th_loop_until(base, in_use_is, none, 5000), "the released hand-off stayed held");
    /* Kept fixed: past the time its take-over would have been due (a third
     * of the hold), and past the hold itself. */
    th_loop_for(base, 600);
    cr_assert_eq(in_use(32), 0, "a lease came back after its release: a take-over went out late");
    redisReply *r = script("acquire", 32, "next:1", 5000);
    cr_assert_eq(reply_int(r, 0), 1, "the slot given back is not free");
    freeReplyObject(r);
    handoff_free(&x);
}

/*--- The next ask in the release (issue #17) --------------------------------*/

static uint64_t tc_commands(const tclient *c)
{
    sfl_store_stats st;
    sfl_store_get_stats(c->st, &st);
    return st.commands;
}

/* A node that gives its slot back and asks for the next in the same loop
 * turn sends one script: the release makes its ask. With another node
 * waiting, the slot goes to that node's (older) ticket and the ask is
 * queued behind it, never granted beside it: the limit of 1 holds, and the
 * releasing node gets the slot back only when the other gives it up. */
Test(lease, release_makes_the_next_ask_behind_the_waiting)
{
    th_account(&redis, 40, 1);
    tclient *a = tc_new("nexta", 5000, 1000, 500), *b = tc_new("nextb", 5000, 1000, 500);
    slot sa, sa2, sb;
    ask(a, 40, 3000, &sa);
    got(&sa, 3000);
    ask(b, 40, -1, &sb);
    long long one[2] = {40, 1};
    cr_assert(th_loop_until(base, waiters_are, one, 3000), "b's ticket never queued");
    uint64_t before = tc_commands(a);
    sfl_lease_release(sa.lease);
    ask(a, 40, 10000, &sa2);
    cr_assert(th_loop_until(base, slot_done, &sb, 3000), "b never got the freed slot");
    cr_assert_eq(sb.status, SFL_WAIT_GRANTED);
    sfl_lease_on_lost(sb.lease, on_lost, &sb);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){a, NULL}, 3000));
    cr_assert_eq(tc_commands(a) - before, 1, "release and next ask took %llu scripts, not 1",
                 (unsigned long long)(tc_commands(a) - before));
    cr_assert(!sa2.done, "the next ask was granted while b holds the only slot");
    cr_assert_eq(in_use(40), 1, "%lld leases on an account of 1", in_use(40));
    cr_assert(th_loop_until(base, waiters_are, one, 3000), "the next ask is not queued");
    char t[96];
    first_ticket(40, t, sizeof(t));
    cr_assert(strncmp(t, "nexta:", 6) == 0, "the ticket queued is %s, not a's", t);
    /* b gives the slot back: it goes to a's queued ask. */
    sfl_lease_release(sb.lease);
    got(&sa2, 3000);
    cr_assert_eq(in_use(40), 1);
    cr_assert_str_eq(sfl_lease_id(sa2.lease), t, "a holds another id than its ticket");
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:40}:waiters"), 0);
    sfl_lease_release(sa2.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){a, b, NULL}, 5000));
    cr_assert_eq(in_use(40), 0);
    tc_free(a);
    tc_free(b);
}

/* With nobody waiting, the release grants the next ask the slot it frees:
 * one script, a full lease of the node's TTL with a new fence, the old
 * lease gone from Redis; and it is renewed and released as any lease. */
Test(lease, release_grants_the_next_ask_when_nobody_waits)
{
    th_account(&redis, 41, 1);
    tclient *a = tc_new("nextg", 5000, 1000, 500);
    slot s1, s2;
    ask(a, 41, 3000, &s1);
    got(&s1, 3000);
    char old[96];
    snprintf(old, sizeof(old), "%s", sfl_lease_id(s1.lease));
    long long fence = sfl_lease_fence(s1.lease);
    uint64_t before = tc_commands(a);
    sfl_lease_release(s1.lease);
    ask(a, 41, 3000, &s2);
    got(&s2, 3000);
    cr_assert_eq(tc_commands(a) - before, 1, "release and next ask took %llu scripts, not 1",
                 (unsigned long long)(tc_commands(a) - before));
    cr_assert_gt(sfl_lease_fence(s2.lease), fence, "the new lease has no new fence");
    cr_assert_eq(in_use(41), 1);
    cr_assert_eq(deadline_left(41, old), -1, "the released lease is still in Redis");
    long long left = deadline_left(41, sfl_lease_id(s2.lease));
    cr_assert_gt(left, 4000, "the new lease's deadline is %lld ms away, not a TTL", left);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:41}:holders %s", sfl_lease_id(s2.lease)), 1);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:41}:waiters"), 0);
    cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:41}:leases"), 4000);
    /* Another node asks meanwhile: it is denied, and gets the slot only
     * after a gives it back. */
    tclient *b = tc_new("nextg2", 5000, 1000, 500);
    slot sb;
    ask(b, 41, 10000, &sb);
    long long one[2] = {41, 1};
    cr_assert(th_loop_until(base, waiters_are, one, 3000), "b's ticket never queued");
    cr_assert(!sb.done, "b was granted beside a's lease");
    sfl_lease_release(s2.lease);
    got(&sb, 3000);
    cr_assert_eq(in_use(41), 1);
    sfl_lease_release(sb.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){a, b, NULL}, 5000));
    tc_free(a);
    tc_free(b);
}

/* The scheduler's asks (sfl_limiter_try, with the ticket it keeps) ride in
 * a release too: a node whose global limit was full gives a slot back and
 * asks for the next of that account in the same loop turn. */
static uint64_t asked_in_release(const tclient *c)
{
    sfl_limiter_stats ls;
    sfl_limiter_get_stats(c->lim, &ls);
    return ls.asked_in_release;
}

Test(lease, release_makes_the_next_try_behind_the_waiting)
{
    th_account(&redis, 43, 1);
    tclient *a = tc_new("trya", 5000, 1000, 500), *b = tc_new("tryb", 5000, 1000, 500);
    slot sa, sb;
    ask(a, 43, 3000, &sa);
    got(&sa, 3000);
    ask(b, 43, -1, &sb);
    long long one[2] = {43, 1};
    cr_assert(th_loop_until(base, waiters_are, one, 3000), "b's ticket never queued");
    uint64_t before = tc_commands(a);
    tried t1 = {0};
    sfl_lease_release(sa.lease);
    cr_assert_eq(sfl_limiter_try(a->lim, 43, "next", "trya:ticket1", on_tried, &t1), 0);
    cr_assert(th_loop_until(base, try_done, &t1, 3000), "the try was never answered");
    cr_assert_eq(t1.status, SFL_TRY_DENIED, "the try was granted while b waited (status %d)",
                 t1.status);
    cr_assert_eq(tc_commands(a) - before, 1, "release and try took %llu scripts, not 1",
                 (unsigned long long)(tc_commands(a) - before));
    cr_assert_eq(asked_in_release(a), 1, "the try did not ride in the release");
    cr_assert(th_loop_until(base, slot_done, &sb, 3000), "b never got the freed slot");
    cr_assert_eq(sb.status, SFL_WAIT_GRANTED);
    sfl_lease_on_lost(sb.lease, on_lost, &sb);
    cr_assert_eq(in_use(43), 1, "%lld leases on an account of 1", in_use(43));
    char t[96];
    first_ticket(43, t, sizeof(t));
    cr_assert_str_eq(t, "trya:ticket1", "the ticket queued is %s, not the try's", t);
    /* b gives the slot back: it goes to the try's ticket, which asks again
     * with it (as the scheduler does on the announcement) and holds it. */
    sfl_lease_release(sb.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){b, NULL}, 3000));
    tried t2 = {0};
    cr_assert_eq(sfl_limiter_try(a->lim, 43, "next", "trya:ticket1", on_tried, &t2), 0);
    cr_assert(th_loop_until(base, try_done, &t2, 3000), "the second try was never answered");
    cr_assert_eq(t2.status, SFL_TRY_GRANTED, "the ticket's slot was not taken over");
    cr_assert_eq(in_use(43), 1);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:43}:waiters"), 0);
    sfl_lease_release(t2.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){a, b, NULL}, 5000));
    cr_assert_eq(in_use(43), 0);
    tc_free(a);
    tc_free(b);
}

/* With nobody waiting the riding try is granted the freed slot (one
 * script, a new lease); a try of another account does not ride, nor does a
 * try sent after the loop turn of the release. */
Test(lease, release_grants_the_next_try_when_nobody_waits)
{
    th_account(&redis, 44, 1);
    th_account(&redis, 45, 1);
    tclient *a = tc_new("tryg", 5000, 1000, 500);
    slot s1;
    ask(a, 44, 3000, &s1);
    got(&s1, 3000);
    char old[96];
    snprintf(old, sizeof(old), "%s", sfl_lease_id(s1.lease));
    uint64_t before = tc_commands(a);
    tried t1 = {0}, t2 = {0};
    sfl_lease_release(s1.lease);
    cr_assert_eq(sfl_limiter_try(a->lim, 45, "other", NULL, on_tried, &t2), 0);
    cr_assert_eq(sfl_limiter_try(a->lim, 44, "next", NULL, on_tried, &t1), 0);
    cr_assert(th_loop_until(base, try_done, &t1, 3000), "the try was never answered");
    cr_assert(th_loop_until(base, try_done, &t2, 3000), "the other try was never answered");
    cr_assert_eq(t1.status, SFL_TRY_GRANTED);
    cr_assert_eq(t2.status, SFL_TRY_GRANTED);
    cr_assert_eq(tc_commands(a) - before, 2, "%llu scripts for a release and two tries, not 2",
                 (unsigned long long)(tc_commands(a) - before));
    cr_assert_eq(asked_in_release(a), 1);
    cr_assert_eq(in_use(44), 1);
    cr_assert_eq(deadline_left(44, old), -1, "the released lease is still in Redis");
    cr_assert_gt(deadline_left(44, sfl_lease_id(t1.lease)), 4000);
    /* A release whose try comes in a later turn goes alone. */
    sfl_lease_release(t1.lease);
    th_loop_for(base, 50);
    tried t3 = {0};
    cr_assert_eq(sfl_limiter_try(a->lim, 44, "late", NULL, on_tried, &t3), 0);
    cr_assert(th_loop_until(base, try_done, &t3, 3000));
    cr_assert_eq(t3.status, SFL_TRY_GRANTED);
    cr_assert_eq(asked_in_release(a), 1, "a try of a later turn rode in the release");
    /* A release that finds its lease gone from Redis makes no ask: the try
     * riding in it then asks on its own, and is answered. */
    th_redis_int(&redis, "ZREM sfl:{a:44}:leases %s", sfl_lease_id(t3.lease));
    uint64_t sent = tc_commands(a);
    tried t4 = {0};
    sfl_lease_release(t3.lease);
    cr_assert_eq(sfl_limiter_try(a->lim, 44, "after", NULL, on_tried, &t4), 0);
    cr_assert(th_loop_until(base, try_done, &t4, 3000), "the try was never answered");
    cr_assert_eq(t4.status, SFL_TRY_GRANTED, "status %d", t4.status);
    cr_assert_eq(tc_commands(a) - sent, 2, "%llu scripts: the release, then the try",
                 (unsigned long long)(tc_commands(a) - sent));
    cr_assert_eq(in_use(44), 1);
    t3 = t4;
    sfl_lease_release(t3.lease);
    sfl_lease_release(t2.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){a, NULL}, 5000));
    cr_assert_eq(in_use(44), 0);
    cr_assert_eq(in_use(45), 0);
    tc_free(a);
}

/* On a login of 1 every release hands the one slot over: the lease given
 * back leaves after the hand-off's entry is in, so the leases and holders
 * keys are never emptied (Redis would delete them) and made again without
 * a TTL, which keep_keys would then push out on all five keys with every
 * hand-off. The keys keep a TTL past every deadline all along. */
Test(lease, handoff_on_a_login_of_one_keeps_its_keys)
{
    th_account(&redis, 46, 1);
    tclient *c[2] = {tc_new("keepa", 5000, 1000, 500), tc_new("keepb", 5000, 1000, 500)};
    slot s[2];
    ask(c[0], 46, 3000, &s[0]);
    got(&s[0], 3000);
    long long one[2] = {46, 1};
    long long before = command_calls("pexpireat");
    for (int i = 0; i < 10; i++) {
        int holder = i % 2, next = 1 - holder;
        ask(c[next], 46, 10000, &s[next]);
        cr_assert(th_loop_until(base, waiters_are, one, 3000), "cycle %d: no ticket queued", i);
        sfl_lease_release(s[holder].lease);
        got(&s[next], 3000);
        cr_assert_eq(in_use(46), 1, "cycle %d: %lld leases on a login of 1", i, in_use(46));
        long long ttl = th_redis_int(&redis, "PTTL sfl:{a:46}:leases");
        cr_assert_gt(ttl, 5000, "cycle %d: the leases key's TTL is %lld", i, ttl);
        cr_assert_gt(th_redis_int(&redis, "PTTL sfl:{a:46}:holders"), 5000, "cycle %d", i);
    }
    long long pushed = command_calls("pexpireat") - before;
    cr_assert_leq(pushed, 25, "%lld PEXPIREATs over 10 hand-offs: the keys were made again",
                  pushed);
    fprintf(stderr, "handoff_on_a_login_of_one: %lld PEXPIREATs over 10 hand-offs\n", pushed);
    sfl_lease_release(s[0].lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){c[0], c[1], NULL}, 5000));
    cr_assert_eq(in_use(46), 0);
    tc_free(c[0]);
    tc_free(c[1]);
}

/* release.lua's next ask by hand (the keys and arguments lease_script.c
 * sends): it is denied, never granted, when the login is full, or inside a
 * recovery window (the epoch marker missing: Redis lost its data), and the
 * release still frees the lease. */
static redisReply *release_next(long long account, const char *lease, const char *next)
{
    const sfl_script *s = sfl_script_get("release");
    sfl_account_keys k;
    sfl_account_keys_init(&k, "sfl", account);
    const char *const *kv = k.argv;
    return th_redis(&redis,
                    "EVAL %s 7 %s %s %s %s %s %s sfl:epoch %s sfl:released %lld 4000 '' %s 9000 "
                    "5000 crashed t 3000",
                    s->text, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], lease, account, next);
}

/* A release that hands its slot over and queues the next ask keeps the
 * queue's keys by the queue's own TTL, not by the leases key's: the two
 * are not kept together (a queue made again gets a TTL of its own), and a
 * queue left short would expire with the next ask's ticket in it. */
Test(lease, release_next_ask_keeps_the_queue_past_its_ticket)
{
    th_account(&redis, 48, 1);
    freeReplyObject(script("acquire", 48, "long:1", 60000)); /* the leases key: ~70 s */
    redisReply *r = script("acquire", 48, "w:1", 5000);      /* queued */
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    /* The queue's TTL well short of what the next ask's ticket (9 s) needs,
     * as another writer, or time, may leave it. */
    th_redis_int(&redis, "PEXPIRE sfl:{a:48}:waiters 3000");
    th_redis_int(&redis, "PEXPIRE sfl:{a:48}:waiters:exp 3000");
    r = release_next(48, "long:1", "next:1");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(reply_int(r, 0), 0, "the next ask was granted past w:1");
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:48}:holders w:1"), 1);
    cr_assert(th_redis_int(&redis, "ZSCORE sfl:{a:48}:waiters next:1") > 0);
    const char *queue[] = {"waiters", "waiters:exp"};
    for (int i = 0; i < 2; i++) {
        long long ttl = th_redis_int(&redis, "PTTL sfl:{a:48}:%s", queue[i]);
        cr_assert_gt(ttl, 9000 + 9000, "%s expires in %lld ms: not 10 s past the 9 s ticket's",
                     queue[i], ttl);
    }
}

Test(lease, release_next_ask_is_denied_when_full_or_recovering)
{
    th_account(&redis, 42, 2);
    freeReplyObject(script("acquire", 42, "x:1", 5000));
    freeReplyObject(script("acquire", 42, "x:2", 5000));
    freeReplyObject(script("acquire", 42, "x:3", 5000)); /* queued: x:2's slot goes to it */
    redisReply *r = release_next(42, "x:2", "x:4");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(reply_int(r, 0), 0, "the next ask was granted past an older ticket");
    cr_assert_eq(reply_int(r, r->elements - 1), 1, "the release says the lease was not held");
    freeReplyObject(r);
    cr_assert_eq(in_use(42), 2);
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:42}:holders x:3"), 1,
                 "the freed slot did not go to the oldest ticket");
    cr_assert_eq(th_redis_int(&redis, "ZSCORE sfl:{a:42}:waiters x:4") > 0, 1,
                 "the next ask was not queued");
    /* Redis lost its data: no marker. The next ask opens the window and is
     * denied in it, though the slot is free and nobody else waits. */
    th_redis_int(&redis, "DEL sfl:epoch sfl:{a:42}:waiters sfl:{a:42}:waiters:exp");
    r = release_next(42, "x:1", "x:5");
    cr_assert_eq(reply_int(r, 0), 0, "granted inside the recovery window");
    cr_assert_str_eq(r->element[4]->str, "recovering");
    freeReplyObject(r);
    cr_assert_eq(in_use(42), 1, "x:1 was not released, or x:5 was granted");
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:epoch"), 1, "the window was not opened");
    /* A lease no longer held: the release makes no ask (the caller asks). */
    r = release_next(42, "x:1", "x:6");
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, 0);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "ZSCORE sfl:{a:42}:waiters x:6"), 0);
    /* The account's keys moved to a group's (account.lua): the release is
     * done, the next ask not made there (acquire.lua tells the node). */
    th_redis_int(&redis, "DEL sfl:{a:42}:leases sfl:{a:42}:holders");
    th_redis_int(&redis, "HSET sfl:epoch recover_until_ms 0"); /* the window closed */
    redisReply *g = script("acquire", 42, "y:1", 5000);
    cr_assert_eq(reply_int(g, 0), 1);
    freeReplyObject(g);
    th_redis_int(&redis, "HSET sfl:{a:42}:conf group 7");
    r = release_next(42, "y:1", "y:2");
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "a next ask was answered on moved keys");
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(deadline_left(42, "y:2"), -1, "a lease was granted on keys that moved");
    cr_assert_eq(th_redis_int(&redis, "ZSCORE sfl:{a:42}:waiters y:2"), 0,
                 "a ticket was queued on keys that moved");
}

/* A ticket lives at least TICKET_MIN_MS (1 s, prelude.lua) whatever ttl its
 * ask gave: the queue is reaped only for tickets older than that. */
Test(lease, ticket_lives_at_least_a_second)
{
    th_account(&redis, 43, 1);
    const sfl_script *s = sfl_script_get("acquire");
    freeReplyObject(script("acquire", 43, "a:1", 5000));
    freeReplyObject(th_redis(&redis,
                             "EVAL %s 7 sfl:{a:43}:leases sfl:{a:43}:holders sfl:{a:43}:conf "
                             "sfl:{a:43}:fence sfl:{a:43}:waiters sfl:{a:43}:waiters:exp "
                             "sfl:epoch short:1 "
                             "5000 short t -1 0 100 sfl:released 43",
                             s->text));
    long long left = th_redis_int(&redis, "ZSCORE sfl:{a:43}:waiters:exp short:1") - redis_now_ms();
    cr_assert_gt(left, 900, "a ticket asked for 100 ms expires in %lld ms, not 1 s", left);
    /* Still queued, and served, half a second on. */
    usleep(500 * 1000);
    freeReplyObject(script("release", 43, "a:1", 0));
    cr_assert_eq(th_redis_int(&redis, "HEXISTS sfl:{a:43}:holders short:1"), 1);
}

/*--- Asks owed at exit ------------------------------------------------------*/

/* A process exits once sfl_limiter_pending_releases is 0 (app.c's finish):
 * until then, an ask it sent whose answer may grant a slot is owed as much
 * as a release, else the slot stays in Redis after the exit. */

static int denied_at_least(void *arg)
{
    const tclient *c = ((const void *const *)arg)[0];
    const uint64_t *n = ((const void *const *)arg)[1];
    sfl_limiter_stats ls;
    sfl_limiter_get_stats(c->lim, &ls);
    return ls.denied >= *n;
}

static int commands_above(void *arg)
{
    const tclient *c = ((const void *const *)arg)[0];
    const uint64_t *n = ((const void *const *)arg)[1];
    return tc_commands(c) > *n;
}

/* A try whose asker is gone (sfl_limiter_cancel_tries) is owed until its
 * answer is in and the slot it got given back; so is a try still asking. */
Test(lease, try_in_flight_is_owed_until_its_slot_is_given_back)
{
    th_account(&redis, 47, 1);
    tclient *c = tc_new("owedt", 5000, 1000, 500);
    tried t = {0};
    cr_assert_eq(sfl_limiter_try(c->lim, 47, "gone", NULL, on_tried, &t), 0);
    sfl_limiter_cancel_tries(c->lim, &t);
    cr_assert_gt(sfl_limiter_pending_releases(c->lim), 0,
                 "a try in flight is not owed: the process may exit before its grant");
    cr_assert(th_loop_until(base, all_released, (tclient *[]){c, NULL}, 5000));
    cr_assert_eq(t.done, 0, "a cancelled try was answered");
    cr_assert_eq(in_use(47), 0, "the cancelled try's slot is still in Redis");
    tried t2 = {0};
    cr_assert_eq(sfl_limiter_try(c->lim, 47, "kept", NULL, on_tried, &t2), 0);
    cr_assert_gt(sfl_limiter_pending_releases(c->lim), 0, "a try still asking is not owed");
    cr_assert(th_loop_until(base, try_done, &t2, 3000), "the try was never answered");
    cr_assert_eq(t2.status, SFL_TRY_GRANTED);
    sfl_lease_release(t2.lease);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){c, NULL}, 5000));
    cr_assert_eq(in_use(47), 0);
    tc_free(c);
}

/* A wait cancelled with its ask in flight (sflimit exec stopped while it
 * waits) is owed until the answer is in and the slot given back. */
Test(lease, cancelled_wait_in_flight_is_owed_until_its_slot_is_given_back)
{
    th_account(&redis, 48, 1);
    tclient *c = tc_new("owedw", 5000, 1000, 500);
    slot s = {0};
    uint64_t before = tc_commands(c);
    sfl_wait *w = sfl_limiter_wait(c->lim, 48, "t", 3000, on_slot, &s);
    cr_assert_not_null(w);
    cr_assert(th_loop_until(base, commands_above, (const void *[]){c, &before}, 3000),
              "the wait never asked");
    cr_assert_eq(s.done, 0, "the ask was answered in the loop turn that sent it");
    sfl_wait_cancel(w);
    cr_assert_gt(sfl_limiter_pending_releases(c->lim), 0,
                 "a cancelled wait's ask in flight is not owed");
    cr_assert(th_loop_until(base, all_released, (tclient *[]){c, NULL}, 5000));
    cr_assert_eq(s.done, 0, "a cancelled wait was called back");
    cr_assert_eq(in_use(48), 0, "the cancelled wait's slot is still in Redis");
    tc_free(c);
}

/* The scheduler stopped (sflimit check on an output error or a signal)
 * while an account's ask is in flight, in the loop turn of a release of
 * that account, as the worker ends a check: release, done, cancel. The ask
 * queues its ticket again, and the release hands that ticket the slot:
 * the ticket must still be given back, or the slot stays in Redis after
 * the exit with nobody to take it. */

typedef struct sjobs {
    int started, dropped;
    sfl_lease *lease;
} sjobs;

static void sj_start(void *job, long long account, sfl_lease *lease, int64_t wait_ms, void *arg)
{
    sjobs *j = arg;
    (void)job;
    (void)account;
    (void)wait_ms;
    j->started++;
    j->lease = lease;
}

static void sj_drop(void *job, long long account, sfl_drop_reason why, const char *detail,
                    int64_t waited_ms, void *arg)
{
    sjobs *j = arg;
    (void)job;
    (void)account;
    (void)detail;
    (void)waited_ms;
    cr_assert_eq(why, SFL_DROP_CANCELLED, "a job dropped for %d", why);
    j->dropped++;
}

static int sj_started(void *arg)
{
    return ((sjobs *)arg)->started > 0;
}

Test(lease, sched_cancel_with_an_ask_in_flight_gives_its_ticket_back)
{
    th_account(&redis, 49, 1);
    tclient *c = tc_new("schedc", 5000, 1000, 500);
    sjobs j = {0};
    /* Long sleeps after a denial: the test asks again itself (kick). */
    sfl_sched_opts so = {.global_limit = 10, .acquire_timeout_ms = 60000, .fallback_ms = 60000};
    sfl_sched_hooks hooks = {sj_start, sj_drop, &j};
    sfl_sched *s = sfl_sched_new(base, c->lim, &so, &hooks);
    cr_assert_not_null(s);
    int jobs[2];
    cr_assert_eq(sfl_sched_add(s, &jobs[0], 49, 0, "first"), 0);
    cr_assert_eq(sfl_sched_add(s, &jobs[1], 49, 0, "second"), 0);
    cr_assert(th_loop_until(base, sj_started, &j, 3000), "the first job never started");
    uint64_t one = 1;
    cr_assert(th_loop_until(base, denied_at_least, (const void *[]){c, &one}, 3000),
              "the second job's ask was never denied");
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:49}:waiters"), 1, "no ticket queued");
    /* The denied account asks again: its ask is in flight ... */
    uint64_t before = tc_commands(c);
    sfl_sched_kick(s);
    cr_assert_eq(tc_commands(c), before + 1, "the kick sent no ask");
    /* ... when the first job ends and the scheduler is stopped. */
    sfl_lease_release(j.lease);
    sfl_sched_done(s, 49);
    sfl_sched_cancel(s);
    cr_assert_eq(j.dropped, 1);
    cr_assert(th_loop_until(base, all_released, (tclient *[]){c, NULL}, 5000));
    /* The process would exit here. */
    sfl_sched_free(s);
    cr_assert_eq(in_use(49), 0, "%lld lease(s) left in Redis (the ticket's hand-off)", in_use(49));
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:49}:waiters"), 0, "a ticket left in Redis");
    tc_free(c);
}

/* Every path that gives a token (a grant, a hand-off, a re-take, a next ask
 * granted in a release) goes above the time the epoch window last opened
 * while the login's counter is below it: the grants a Redis that lost its
 * last writes forgot gave tokens no later than that. Here the counter is
 * set far below (5) and the marker says a window opened now and closed;
 * each path's token must be above that time. (test_epoch's
 * fence_grows_across_a_failover_that_lost_grants: a real failover.) */
static long long token_floor_setup(void)
{
    long long opened = redis_now_ms();
    th_redis_int(&redis, "HSET sfl:epoch opened_ms %lld recover_until_ms %lld", opened, opened);
    th_redis_int(&redis, "SET sfl:{a:60}:fence 5");
    return opened;
}

static long long holder_fence(const char *id)
{
    redisReply *r = th_redis(&redis, "HGET sfl:{a:60}:holders %s", id);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "no holder %s", id);
    cJSON *h = cJSON_Parse(r->str);
    cr_assert_not_null(h, "%s", r->str);
    long long fence = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(h, "fence"));
    cJSON_Delete(h);
    freeReplyObject(r);
    return fence;
}

Test(lease, tokens_go_above_the_last_window_opening)
{
    th_account(&redis, 60, 1);
    freeReplyObject(script("acquire", 60, "m:1", 5000)); /* the marker, the keys */
    freeReplyObject(script("release", 60, "m:1", 0));

    long long opened = token_floor_setup();
    redisReply *r = script("acquire", 60, "a:1", 5000);
    cr_assert_eq(reply_int(r, 0), 1, "not granted");
    cr_assert_gt(reply_int(r, 1), opened, "a grant's token is below the window's opening");
    freeReplyObject(r);

    r = script("acquire", 60, "b:1", 5000); /* full: b:1 queued */
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    opened = token_floor_setup();
    freeReplyObject(script("release", 60, "a:1", 0)); /* a:1's slot handed to b:1 */
    cr_assert_gt(holder_fence("b:1"), opened, "a hand-off's token is below the window's opening");

    /* b:1's lease gone (as a Redis that lost it): its renewal re-takes it. */
    th_redis_int(&redis, "ZREM sfl:{a:60}:leases b:1");
    th_redis_int(&redis, "HDEL sfl:{a:60}:holders b:1");
    opened = token_floor_setup();
    r = script("renew", 60, "b:1", 5000);
    cr_assert_eq(reply_int(r, 0), 2, "not re-taken");
    cr_assert_gt(reply_int(r, 1), opened, "a re-take's token is below the window's opening");
    freeReplyObject(r);

    /* Nobody waits: b:1's release grants the next ask itself. */
    opened = token_floor_setup();
    r = release_next(60, "b:1", "c:1");
    cr_assert_eq(reply_int(r, 0), 1, "the next ask was not granted");
    cr_assert_gt(reply_int(r, 1), opened, "a next ask's token is below the window's opening");
    freeReplyObject(r);

    /* c:1 expires with d:1 queued: the next ask (e:1) hands its slot to d:1. */
    th_redis_int(&redis, "ZADD sfl:{a:60}:leases %lld c:1", redis_now_ms() + 200);
    r = script("acquire", 60, "d:1", 5000);
    cr_assert_eq(reply_int(r, 0), 0);
    freeReplyObject(r);
    key_member c1 = {"sfl:{a:60}:leases", "c:1"};
    cr_assert(th_loop_until(base, is_due, &c1, 5000), "c:1 never came due");
    opened = token_floor_setup();
    freeReplyObject(script("acquire", 60, "e:1", 5000));
    cr_assert_gt(holder_fence("d:1"), opened,
                 "an expired slot's hand-off token is below the window's opening");
    cr_log_info("tokens above the window's opening: last %lld, opened %lld", holder_fence("d:1"),
                opened);
}
