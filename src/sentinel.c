/* sentinel.c - asks Redis Sentinel where the master is.
 *
 * A redis-sentinel:// URL names sentinels and a master; the store asks this
 * file for the master's address before every (re)connect, and connects
 * there. One query at a time: connect to a sentinel, AUTH with
 * redis.sentinel_password when there is one, SENTINEL
 * get-master-addr-by-name MASTER. A sentinel that refuses the connection,
 * says nothing within timeout_ms, answers an error or does not know the
 * master is skipped, and the next one is asked; the first answer wins, and
 * the sentinel that gave it is asked first next time. Each query uses a
 * short-lived connection of its own: sentinels are asked rarely (connects
 * and failovers), and a connection kept open would need its own liveness
 * checks.
 *
 * A second, long-lived connection is subscribed to +switch-master on one
 * sentinel, so a failover is followed as soon as the sentinels decide it
 * (rather than when the old master's connections time out). When that
 * connection is lost, the next sentinel in the list is tried, with backoff.
 * It only speeds things up: the store asks again on every disconnect, and
 * confirms with ROLE that what it reached is a master.
 *
 * Never: trust an answer without the store's ROLE check (a sentinel may be
 * behind), call back from inside sfl_sentinel_resolve, or free a hiredis
 * context from inside one of its own callbacks. These connections are few
 * and rare, so they use hiredis's own libevent adapter.
 */
#include "sentinel.h"

#include "addr.h"
#include "clock.h"
#include "log.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_BACKOFF_MIN_MS 100
#define WATCH_BACKOFF_MAX_MS 2000

struct sfl_sentinel {
    struct event_base *base;
    sfl_sentinel_opts opts;
    sfl_redis_addr *addrs;
    int n;
    char *master;
    char *password;

    /* The query. */
    int querying;
    int first; /* the sentinel asked first: the last one that answered */
    int tried; /* sentinels asked by this query so far */
    int at;    /* the one being asked */
    redisAsyncContext *qac;
    struct event *qtimer; /* its timeout */
    struct event *qstep;  /* moves on (or answers) outside hiredis's callbacks */
    char qerr[256];       /* the last sentinel's failure, for on_found */
    char found_host[256];
    int found_port;

    /* The +switch-master subscription. */
    int watching;
    int wat;        /* the sentinel it is on */
    int wconnected; /* subscribed */
    int wbackoff_ms;
    redisAsyncContext *wac;
    struct event *wtimer; /* connect timeout while connecting; next try while down */
};

/*--- The query -------------------------------------------------------------*/

static void query_fail(sfl_sentinel *s, const char *fmt, const char *detail)
{
    char what[200];
    snprintf(what, sizeof(what), fmt, detail ? detail : "");
    snprintf(s->qerr, sizeof(s->qerr), "sentinel %s:%d: %s", s->addrs[s->at].host,
             s->addrs[s->at].port, what);
    sfl_debug("redis: %s", s->qerr);
}

/* Forgets the query's connection (the caller frees it or hiredis does),
 * and moves on from the loop. */
static void query_next(sfl_sentinel *s)
{
    s->qac = NULL;
    evtimer_del(s->qtimer);
    event_active(s->qstep, EV_TIMEOUT, 1);
}

static void on_query_connect(const redisAsyncContext *ac, int status)
{
    sfl_sentinel *s = ac->data;
    if (ac != s->qac || status == REDIS_OK)
        return;
    query_fail(s, "connect: %s", ac->errstr);
    query_next(s); /* hiredis frees ac after this returns */
}

static void on_query_disconnect(const redisAsyncContext *ac, int status)
{
    sfl_sentinel *s = ac->data;
    UNUSED(status);
    if (ac != s->qac)
        return;
    query_fail(s, "disconnected: %s", ac->errstr[0] ? ac->errstr : "closed");
    query_next(s);
}

static void on_query_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    sfl_sentinel *s = ac->data;
    redisReply *rep = reply;
    UNUSED(privdata);
    if (!rep || ac != s->qac || rep->type != REDIS_REPLY_ERROR)
        return;
    query_fail(s, "AUTH (redis.sentinel_password): %s", rep->str);
    redisAsyncDisconnect(ac);
    query_next(s);
}

static void on_query_answer(redisAsyncContext *ac, void *reply, void *privdata)
{
    sfl_sentinel *s = ac->data;
    redisReply *rep = reply;
    UNUSED(privdata);
    if (!rep || ac != s->qac)
        return;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len > 0 &&
        rep->element[0]->len < sizeof(s->found_host) && atoi(rep->element[1]->str) > 0 &&
        atoi(rep->element[1]->str) < 65536) {
        memcpy(s->found_host, rep->element[0]->str, rep->element[0]->len + 1);
        s->found_port = atoi(rep->element[1]->str);
        s->first = s->at;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        query_fail(s, "%s", rep->str);
    } else if (rep->type == REDIS_REPLY_NIL) {
        query_fail(s, "does not know master \"%s\"", s->master);
    } else {
        query_fail(s, "unexpected answer to SENTINEL get-master-addr-by-name%s", NULL);
    }
    redisAsyncDisconnect(ac);
    query_next(s);
}

static void query_ask(sfl_sentinel *s)
{
    s->at = (s->first + s->tried) % s->n;
    s->tried++;
    const sfl_redis_addr *a = &s->addrs[s->at];
    redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
    if (!ac || ac->err) {
        query_fail(s, "connect: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        query_next(s);
        return;
    }
    if (redisLibeventAttach(ac, s->base) != REDIS_OK) {
        redisAsyncFree(ac);
        query_fail(s, "connect: %s", "out of memory");
        query_next(s);
        return;
    }
    ac->data = s;
    s->qac = ac;
    redisAsyncSetConnectCallback(ac, on_query_connect);
    redisAsyncSetDisconnectCallback(ac, on_query_disconnect);
    if (s->password)
        redisAsyncCommand(ac, on_query_auth, NULL, "AUTH %s", s->password);
    redisAsyncCommand(ac, on_query_answer, NULL, "SENTINEL get-master-addr-by-name %s", s->master);
    sfl_timer_in(s->qtimer, s->opts.timeout_ms);
}

static void on_query_timeout(evutil_socket_t fd, short what, void *arg)
{
    sfl_sentinel *s = arg;
    UNUSED(fd);
    UNUSED(what);
    redisAsyncContext *ac = s->qac;
    if (!ac)
        return;
    char ms[32];
    snprintf(ms, sizeof(ms), "%lld", (long long)s->opts.timeout_ms);
    query_fail(s, "no answer within %s ms (redis.connect_timeout_ms)", ms);
    s->qac = NULL;
    redisAsyncFree(ac); /* its callbacks see qac != ac */
    query_next(s);
}

/* After each sentinel: the answer, or the next sentinel, or the end. */
static void on_query_step(evutil_socket_t fd, short what, void *arg)
{
    sfl_sentinel *s = arg;
    UNUSED(fd);
    UNUSED(what);
    if (!s->querying)
        return;
    if (s->found_port > 0 || s->tried >= s->n) {
        s->querying = 0;
        char host[256], why[300];
        int port = s->found_port;
        snprintf(host, sizeof(host), "%s", s->found_host);
        snprintf(why, sizeof(why), "no sentinel named master \"%s\" (last: %s)", s->master,
                 s->qerr);
        if (port > 0)
            sfl_debug("redis: sentinel %s:%d: master \"%s\" is %s:%d", s->addrs[s->first].host,
                      s->addrs[s->first].port, s->master, host, port);
        s->opts.on_found(port > 0 ? host : NULL, port, port > 0 ? NULL : why, s->opts.arg);
        return;
    }
    query_ask(s);
}

void sfl_sentinel_resolve(sfl_sentinel *s)
{
    if (s->querying)
        return;
    s->querying = 1;
    s->tried = 0;
    s->found_port = 0;
    s->found_host[0] = '\0';
    s->qerr[0] = '\0';
    event_active(s->qstep, EV_TIMEOUT, 1);
}

/*--- The +switch-master subscription ---------------------------------------*/

static void watch_later(sfl_sentinel *s)
{
    s->wac = NULL;
    s->wconnected = 0;
    s->wat = (s->wat + 1) % s->n;
    int b = s->wbackoff_ms ? s->wbackoff_ms : WATCH_BACKOFF_MIN_MS;
    s->wbackoff_ms = b * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : b * 2;
    sfl_timer_in(s->wtimer, b);
}

static void on_watch_connect(const redisAsyncContext *ac, int status)
{
    sfl_sentinel *s = ac->data;
    if (ac != s->wac || status == REDIS_OK)
        return; /* connected: the timer waits for the subscription */
    watch_later(s);
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status)
{
    sfl_sentinel *s = ac->data;
    UNUSED(status);
    if (ac == s->wac)
        watch_later(s);
}

/* "+switch-master" messages read "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT". */
static void on_watch_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    sfl_sentinel *s = ac->data;
    redisReply *rep = reply;
    UNUSED(privdata);
    if (!rep || ac != s->wac || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(rep->element[0]->str, "subscribe") == 0) {
        s->wbackoff_ms = 0;
        s->wconnected = 1;
        evtimer_del(s->wtimer); /* the connect timeout */
        sfl_debug("redis: following failovers through sentinel %s:%d", s->addrs[s->wat].host,
                  s->addrs[s->wat].port);
        return;
    }
    if (strcmp(rep->element[0]->str, "message") != 0 || rep->element[2]->type != REDIS_REPLY_STRING)
        return;
    char name[160], oldh[256], newh[256];
    int oldp, newp;
    if (sscanf(rep->element[2]->str, "%159s %255s %d %255s %d", name, oldh, &oldp, newh, &newp) !=
            5 ||
        strcmp(name, s->master) != 0 || newp <= 0 || newp > 65535)
        return;
    sfl_warn("redis: sentinels switched master \"%s\" from %s:%d to %s:%d", name, oldh, oldp, newh,
             newp);
    s->opts.on_switch(newh, newp, s->opts.arg);
}

static void on_watch_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    sfl_sentinel *s = ac->data;
    redisReply *rep = reply;
    UNUSED(privdata);
    if (rep && ac == s->wac && rep->type == REDIS_REPLY_ERROR) {
        sfl_warn("redis: sentinel %s:%d: AUTH (redis.sentinel_password): %s", s->addrs[s->wat].host,
                 s->addrs[s->wat].port, rep->str);
        redisAsyncDisconnect(ac);
    }
}

static void watch_connect(sfl_sentinel *s)
{
    const sfl_redis_addr *a = &s->addrs[s->wat];
    redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
    if (!ac || ac->err || redisLibeventAttach(ac, s->base) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        watch_later(s);
        return;
    }
    ac->data = s;
    s->wac = ac;
    s->wconnected = 0;
    redisAsyncSetConnectCallback(ac, on_watch_connect);
    redisAsyncSetDisconnectCallback(ac, on_watch_disconnect);
    if (s->password)
        redisAsyncCommand(ac, on_watch_auth, NULL, "AUTH %s", s->password);
    redisAsyncCommand(ac, on_watch_message, NULL, "SUBSCRIBE +switch-master");
    sfl_timer_in(s->wtimer, s->opts.timeout_ms); /* until subscribed */
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
    sfl_sentinel *s = arg;
    UNUSED(fd);
    UNUSED(what);
    redisAsyncContext *ac = s->wac;
    if (ac && !s->wconnected) { /* no subscription in time */
        watch_later(s);
        redisAsyncFree(ac); /* its callbacks see wac != ac */
        return;
    }
    if (!ac)
        watch_connect(s);
}

void sfl_sentinel_watch(sfl_sentinel *s)
{
    if (s->watching)
        return;
    s->watching = 1;
    s->wat = s->first;
    watch_connect(s);
}

/*--- Lifecycle -------------------------------------------------------------*/

sfl_sentinel *sfl_sentinel_new(struct event_base *base, const sfl_sentinel_opts *opts, char *err,
                               size_t errlen)
{
    sfl_sentinel *s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->base = base;
    s->opts = *opts;
    if (s->opts.timeout_ms <= 0)
        s->opts.timeout_ms = 2000;
    s->n = opts->nsentinels;
    s->addrs = calloc((size_t)(s->n > 0 ? s->n : 1), sizeof(*s->addrs));
    s->master = strdup(opts->master ? opts->master : "");
    if (!s->addrs || !s->master || s->n <= 0)
        goto oom;
    for (int i = 0; i < s->n; i++) {
        s->addrs[i].port = opts->sentinels[i].port;
        if (!(s->addrs[i].host = strdup(opts->sentinels[i].host)))
            goto oom;
    }
    if (opts->password && *opts->password && !(s->password = strdup(opts->password)))
        goto oom;
    s->opts.sentinels = NULL;
    s->opts.master = NULL;
    s->opts.password = NULL;
    s->qtimer = evtimer_new(base, on_query_timeout, s);
    s->qstep = event_new(base, -1, 0, on_query_step, s);
    s->wtimer = evtimer_new(base, on_watch_timer, s);
    if (!s->qtimer || !s->qstep || !s->wtimer)
        goto oom;
    return s;
oom:
    snprintf(err, errlen, "out of memory");
    sfl_sentinel_free(s);
    return NULL;
}

void sfl_sentinel_free(sfl_sentinel *s)
{
    if (!s)
        return;
    redisAsyncContext *q = s->qac, *w = s->wac;
    s->qac = s->wac = NULL;
    s->querying = 0;
    if (q)
        redisAsyncFree(q);
    if (w)
        redisAsyncFree(w);
    if (s->qtimer)
        event_free(s->qtimer);
    if (s->qstep)
        event_free(s->qstep);
    if (s->wtimer)
        event_free(s->wtimer);
    for (int i = 0; s->addrs && i < s->n; i++)
        free(s->addrs[i].host);
    free(s->addrs);
    free(s->master);
    free(s->password);
    free(s);
}
