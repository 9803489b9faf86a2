/* store.c - the node's connections to Redis.
 *
 * Two hiredis async connections on the libevent loop: one for commands and
 * scripts, one subscribed to the channels asked for (<ns>:released, ...). Both reconnect forever,
 * with exponential backoff and jitter, from a timer (never from inside a hiredis callback, and
 * never freeing a context hiredis is about to free itself).
 *
 * On every (re)connect the command connection sends AUTH/SELECT when the URL
 * asks for them and SCRIPT LOADs every embedded script, checking that Redis
 * answers with the sha1 computed at build time; only then is the store
 * "ready" - after one more step: it runs epoch.lua, which checks the
 * namespace's epoch marker (epoch.h: a Redis that restarted or failed over
 * opens the recovery window for every account) before any lease script can
 * run on the connection. Scripts run with EVALSHA; a NOSCRIPT answer (SCRIPT FLUSH, a
 * restarted Redis) resends the same call as EVAL, which reloads the script:
 * one retry, no extra round trip.
 *
 * hiredis 0.14 (Debian 12) has no command timeouts, so a watchdog drops a
 * connection that owes a reply for longer than command_timeout_ms (a frozen
 * or partitioned Redis would otherwise hold it for minutes of TCP retries).
 * Every pending callback then gets reply == NULL. The store never decides
 * anything about leases: a failed command is reported, the limiter judges.
 *
 * Both connections ask ROLE first and use only a master: a replica (a demoted
 * master, a URL that names the wrong server) is dropped and tried again.
 * With a redis-sentinel:// URL the address comes from the sentinels
 * (sentinel.c), asked again whenever a connection to the master we were told
 * of is lost, and both connections follow +switch-master, so they always end
 * on the same master.
 *
 * hiredis meets libevent through a small glue of our own (glue.c).
 */
#include "store.h"

#include "addr.h"
#include "clock.h"
#include "epoch.h"
#include "glue.h"
#include "log.h"
#include "scripts.h"
#include "sentinel.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define WATCHDOG_MS 100

typedef struct conn {
    sfl_store *st;
    redisAsyncContext *ac; /* NULL while down */
    int is_sub;
    int ready;
    int loads_pending; /* setup replies still owed before ready */
    int setup_failed;  /* Redis refused the setup (AUTH...): errstr says why */
    int auth_refused;  /* ...for authentication (AUTH answered an error, or NOAUTH) */
    int pending;       /* replies owed */
    int64_t last_progress_ms;
    int64_t connect_started_ms;
    int connected;
    int epoch_sent; /* epoch.lua sent on this connection (the last setup step) */
    int backoff_ms;
    struct event *retry_timer;
    int wants_master; /* waits for the sentinels' answer to connect */
    char at[280];     /* host:port (or socket path) of the last connect */
} conn;

struct sfl_store {
    struct event_base *base;
    sfl_store_opts opts;
    sfl_redis_url url;
    char *ns;
    char **channels; /* NULL-terminated */
    int nchannels;
    conn cmd, sub;
    struct event *watchdog;
    int freeing;
    char errstr[256];
    sfl_store_stats stats;
    sfl_epoch epoch; /* the last epoch.lua answer */
    int auth_streak; /* command connection tries refused for authentication in a row */
    int64_t auth_since_ms;
    sfl_sentinel *sentinel; /* redis-sentinel:// only */
    char master_at[280];    /* ...and the master it named, "" when it must be asked */
};

/* The privdata of the AUTH setup command, to tell its answer from the others. */
static const char auth_tag[] = "AUTH";

typedef struct req {
    sfl_store *st;
    sfl_store_reply_fn *fn;
    void *arg;
    const sfl_script *script;
    int argc;
    char **argv;
    size_t *argvlen;
} req;

static void conn_connect(conn *c);
static void conn_drop(conn *c, const char *why);
static void master_lost(conn *c);
static int master_wait(conn *c, char *host, size_t hostlen, int *port);
static void role_send(conn *c);

/*--- Requests --------------------------------------------------------------*/

/* A request keeps its arguments until the reply (a NOSCRIPT answer sends
 * them again as EVAL), in one allocation with the request itself. */
typedef struct req_builder {
    req *r;
    char *at; /* next free byte of the argument area */
} req_builder;

static void req_free(req *r)
{
    free(r);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int req_send(conn *c, req *r)
{
    if (!c->ac || !c->ready)
        return -1;
    if (redisAsyncCommandArgv(c->ac, on_reply, r, r->argc, (const char **)r->argv, r->argvlen) !=
        REDIS_OK)
        return -1;
    if (c->pending++ == 0)
        c->last_progress_ms = sfl_mono_ms();
    c->st->stats.commands++;
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    conn *c = ac->data;
    req *r = privdata;
    redisReply *rep = reply;
    if (c->pending > 0)
        c->pending--;
    c->last_progress_ms = sfl_mono_ms();

    if (rep && rep->type == REDIS_REPLY_ERROR && r->script &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0 && strcmp(r->argv[0], "EVALSHA") == 0) {
        /* The script cache was flushed: send the same call as EVAL. The
         * script text is the embedded one, which outlives the request. */
        r->argv[0] = (char *)"EVAL";
        r->argvlen[0] = 4;
        r->argv[1] = (char *)r->script->text;
        r->argvlen[1] = r->script->len;
        c->st->stats.noscript_reloads++;
        if (req_send(c, r) == 0)
            return;
        if (r->fn)
            r->fn(r->st, NULL, r->arg);
        req_free(r);
        return;
    }
    if (r->fn)
        r->fn(r->st, rep, r->arg);
    else if (rep && rep->type == REDIS_REPLY_ERROR)
        sfl_warn("redis: %s: %s", r->argv[0], rep->str);
    req_free(r);
}

/* bytes: the total length of the argc arguments. */
static int req_new(req_builder *b, sfl_store *st, sfl_store_reply_fn *fn, void *arg, int argc,
                   size_t bytes)
{
    size_t head = sizeof(req) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    req *r = malloc(head + bytes + (size_t)argc);
    if (!r)
        return -1;
    memset(r, 0, sizeof(*r));
    r->st = st;
    r->fn = fn;
    r->arg = arg;
    r->argc = argc;
    r->argvlen = (size_t *)(r + 1);
    r->argv = (char **)(r->argvlen + argc);
    b->r = r;
    b->at = (char *)r + head;
    return 0;
}

/* Copies argument i (the builder has room: req_new counted it). */
static void req_set(req_builder *b, int i, const char *s, size_t len)
{
    memcpy(b->at, s, len);
    b->at[len] = '\0';
    b->r->argv[i] = b->at;
    b->r->argvlen[i] = len;
    b->at += len + 1;
}

int sfl_store_command(sfl_store *st, sfl_store_reply_fn *fn, void *arg, int argc, const char **argv)
{
    if (!st->cmd.ready)
        return -1;
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += strlen(argv[i]);
    req_builder b;
    if (req_new(&b, st, fn, arg, argc, bytes) < 0)
        return -1;
    for (int i = 0; i < argc; i++)
        req_set(&b, i, argv[i], strlen(argv[i]));
    if (req_send(&st->cmd, b.r) < 0) {
        req_free(b.r);
        return -1;
    }
    return 0;
}

int sfl_store_eval(sfl_store *st, const char *script, int nkeys, const char **keys, int nargs,
                   const char **args, sfl_store_reply_fn *fn, void *arg)
{
    const sfl_script *s = sfl_script_get(script);
    if (!s || !st->cmd.ready)
        return -1;
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    size_t bytes = 7 + 40 + strlen(nk);
    for (int i = 0; i < nkeys; i++)
        bytes += strlen(keys[i]);
    for (int i = 0; i < nargs; i++)
        bytes += strlen(args[i]);
    req_builder b;
    if (req_new(&b, st, fn, arg, 3 + nkeys + nargs, bytes) < 0)
        return -1;
    b.r->script = s;
    req_set(&b, 0, "EVALSHA", 7);
    req_set(&b, 1, s->sha1, 40);
    req_set(&b, 2, nk, strlen(nk));
    for (int i = 0; i < nkeys; i++)
        req_set(&b, 3 + i, keys[i], strlen(keys[i]));
    for (int i = 0; i < nargs; i++)
        req_set(&b, 3 + nkeys + i, args[i], strlen(args[i]));
    if (req_send(&st->cmd, b.r) < 0) {
        req_free(b.r);
        return -1;
    }
    return 0;
}

/*--- Connections -----------------------------------------------------------*/

static void schedule_retry(conn *c)
{
    if (c->st->freeing)
        return;
    int b = c->backoff_ms ? c->backoff_ms : BACKOFF_MIN_MS;
    double jitter = 0.75 + (double)(sfl_random64() % 1000) / 2000.0;
    struct timeval tv = {0, 0};
    int64_t ms = (int64_t)(b * jitter);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(c->retry_timer, &tv);
    c->backoff_ms = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
}

/* The connection is gone (or going): forget the context, tell the owner. */
static void conn_lost(conn *c, const char *why)
{
    int was_ready = c->ready;
    int refused = c->auth_refused;
    c->auth_refused = 0;
    if (!c->is_sub) {
        if (refused && c->st->auth_streak++ == 0)
            c->st->auth_since_ms = sfl_mono_ms();
        else if (!refused)
            c->st->auth_streak = 0;
    }
    c->ac = NULL;
    c->ready = 0;
    c->connected = 0;
    c->pending = 0;
    c->loads_pending = 0;
    master_lost(c);
    snprintf(c->st->errstr, sizeof(c->st->errstr), "%s", why ? why : "connection lost");
    if (c->st->freeing)
        return;
    schedule_retry(c);
    if (!c->is_sub && was_ready && c->st->opts.on_down)
        c->st->opts.on_down(c->st, c->st->errstr, c->st->opts.arg);
    if (!c->is_sub && refused && c->st->opts.on_refused)
        c->st->opts.on_refused(c->st, c->st->errstr, c->st->opts.arg);
}

/* Drops a live context from outside hiredis's callbacks (watchdog, timeout). */
static void conn_drop(conn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    if (!ac)
        return;
    conn_lost(c, why);
    redisAsyncFree(ac); /* pending callbacks get NULL; on_disconnect sees ac != c->ac */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn *c = ac->data;
    if (ac != c->ac)
        return;
    if (status != REDIS_OK) {
        char why[200];
        snprintf(why, sizeof(why), "connect: %s", ac->errstr);
        conn_lost(c, why); /* hiredis frees the context after this returns */
        return;
    }
    c->connected = 1;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn *c = ac->data;
    if (ac != c->ac)
        return;
    char why[256];
    if (c->setup_failed) /* keep Redis's reason (WRONGPASS...), not "closed" */
        snprintf(why, sizeof(why), "%s", c->st->errstr);
    else
        snprintf(why, sizeof(why), "disconnected: %s", status == REDIS_OK ? "closed" : ac->errstr);
    c->setup_failed = 0;
    conn_lost(c, why);
}

static void epoch_send(conn *c);

static void setup_done(conn *c)
{
    if (--c->loads_pending > 0)
        return;
    if (!c->is_sub && !c->epoch_sent) {
        epoch_send(c);
        return;
    }
    c->ready = 1;
    c->backoff_ms = 0;
    if (c->is_sub)
        return;
    c->st->auth_streak = 0;
    c->st->stats.reconnects++;
    if (c->st->opts.on_ready)
        c->st->opts.on_ready(c->st, c->st->opts.arg);
}

/* Replies to AUTH, SELECT, SCRIPT LOAD and SUBSCRIBE. A wrong answer drops
 * the connection (it will be tried again: a password can be fixed live). */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    conn *c = ac->data;
    redisReply *rep = reply;
    const sfl_script *s = privdata == auth_tag ? NULL : privdata;
    if (c->pending > 0)
        c->pending--;
    c->last_progress_ms = sfl_mono_ms();
    if (!rep || ac != c->ac)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (c->setup_failed)
            return; /* the commands pipelined after a refused AUTH say NOAUTH */
        char why[200];
        snprintf(why, sizeof(why), "%s", rep->str);
        sfl_warn("redis: setup failed: %s", why);
        snprintf(c->st->errstr, sizeof(c->st->errstr), "%s", why);
        c->setup_failed = 1;
        c->auth_refused = privdata == auth_tag || strncmp(rep->str, "NOAUTH", 6) == 0 ||
                          strncmp(rep->str, "WRONGPASS", 9) == 0;
        redisAsyncDisconnect(ac); /* on_disconnect schedules the next try */
        return;
    }
    if (s && (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, s->sha1) != 0)) {
        sfl_error("redis: SCRIPT LOAD of %s answered %s, built-in sha1 is %s", s->name,
                  rep->type == REDIS_REPLY_STRING ? rep->str : "(not a string)", s->sha1);
        redisAsyncDisconnect(ac);
        return;
    }
    setup_done(c);
}

/* epoch.lua's answer: the last setup step of the command connection. */
static void on_epoch_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    conn *c = ac->data;
    redisReply *rep = reply;
    UNUSED(privdata);
    if (c->pending > 0)
        c->pending--;
    c->last_progress_ms = sfl_mono_ms();
    if (!rep || ac != c->ac)
        return;
    sfl_epoch e;
    if (sfl_epoch_decode(rep, &e) < 0) {
        snprintf(c->st->errstr, sizeof(c->st->errstr), "epoch check: %s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "an answer not epoch.lua's");
        sfl_warn("redis: setup failed: %s", c->st->errstr);
        c->setup_failed = 1;
        redisAsyncDisconnect(ac);
        return;
    }
    c->st->epoch = e;
    c->st->opts.epoch_mode = SFL_EPOCH_NORMAL; /* the first check only */
    sfl_epoch_log(&e, c->at);
    setup_done(c);
}

/* Checks the namespace's epoch marker (epoch.h). */
static void epoch_send(conn *c)
{
    sfl_store *st = c->st;
    const sfl_script *s = sfl_script_get("epoch");
    char key[256], window[24];
    snprintf(key, sizeof(key), "%s:epoch", st->ns);
    snprintf(window, sizeof(window), "%lld", (long long)st->opts.recovery_ms);
    /* A process that takes leases says how long they live (epoch.lua). */
    const char *ttl = st->opts.takes_leases ? window : "";
    const char *argv[7] = {"EVALSHA", s ? s->sha1 : "", "1",
                           key,       window,           sfl_epoch_mode_arg(st->opts.epoch_mode),
                           ttl};
    c->epoch_sent = 1;
    c->loads_pending = 1;
    if (!s || redisAsyncCommandArgv(c->ac, on_epoch_reply, NULL, 7, argv, NULL) != REDIS_OK) {
        snprintf(st->errstr, sizeof(st->errstr), "epoch check: could not send");
        redisAsyncDisconnect(c->ac);
        return;
    }
    if (c->pending++ == 0)
        c->last_progress_ms = sfl_mono_ms();
}

static void on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    conn *c = ac->data;
    redisReply *rep = reply;
    UNUSED(privdata);
    if (!rep || ac != c->ac)
        return;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return;
    const char *kind = rep->element[0]->str;
    if (kind && strcmp(kind, "subscribe") == 0) {
        if (c->pending > 0)
            c->pending--;
        c->last_progress_ms = sfl_mono_ms();
        if (!c->ready)
            setup_done(c);
        return;
    }
    if (kind && strcmp(kind, "message") == 0 && rep->element[1]->type == REDIS_REPLY_STRING &&
        rep->element[2]->type == REDIS_REPLY_STRING && c->st->opts.on_message)
        c->st->opts.on_message(c->st, rep->element[1]->str, rep->element[2]->str, c->st->opts.arg);
}

static void setup_send(conn *c, redisCallbackFn *fn, void *priv, int argc, const char **argv)
{
    if (redisAsyncCommandArgv(c->ac, fn, priv, argc, argv, NULL) == REDIS_OK) {
        c->loads_pending++;
        if (c->pending++ == 0)
            c->last_progress_ms = sfl_mono_ms();
    }
}

static void conn_connect(conn *c)
{
    sfl_store *st = c->st;
    redisAsyncContext *ac;
    char host[256];
    int port = st->url.port;
    snprintf(host, sizeof(host), "%s", st->url.host ? st->url.host : "");
    if (st->sentinel && master_wait(c, host, sizeof(host), &port) < 0)
        return; /* connects when the sentinels answer */
    if (st->url.unix_path) {
        snprintf(c->at, sizeof(c->at), "%s", st->url.unix_path);
        ac = redisAsyncConnectUnix(st->url.unix_path);
    } else {
        snprintf(c->at, sizeof(c->at), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
        ac = redisAsyncConnect(host, port);
    }
    if (!ac || ac->err) {
        char why[200];
        snprintf(why, sizeof(why), "connect: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        c->ac = NULL;
        conn_lost(c, why);
        return;
    }
    if (sfl_glue_attach(ac, st->base) < 0) {
        redisAsyncFree(ac);
        c->ac = NULL;
        conn_lost(c, "connect: out of memory");
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->connected = 0;
    c->pending = 0;
    c->loads_pending = 0;
    c->epoch_sent = 0;
    c->connect_started_ms = sfl_mono_ms();
    c->last_progress_ms = c->connect_started_ms;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);

    /* Queued now, written once the socket connects. */
    if (st->url.password) {
        const char *argv[3] = {"AUTH", st->url.user ? st->url.user : st->url.password,
                               st->url.password};
        setup_send(c, on_setup_reply, (void *)auth_tag, st->url.user ? 3 : 2, argv);
    }
    role_send(c);
    if (c->is_sub) {
        const char *argv[64] = {"SUBSCRIBE"};
        int n = 1;
        for (int i = 0; i < st->nchannels && n < 64; i++)
            argv[n++] = st->channels[i];
        if (redisAsyncCommandArgv(ac, on_message, NULL, n, argv, NULL) == REDIS_OK) {
            c->loads_pending += n - 1; /* one confirmation per channel */
            c->pending++;
        }
        return;
    }
    if (st->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", st->url.db);
        const char *argv[2] = {"SELECT", db};
        setup_send(c, on_setup_reply, NULL, 2, argv);
    }
    for (int i = 0; i < sfl_scripts_count; i++) {
        const sfl_script *s = &sfl_scripts[i];
        const char *argv[3] = {"SCRIPT", "LOAD", s->text};
        size_t lens[3] = {6, 4, s->len};
        if (redisAsyncCommandArgv(ac, on_setup_reply, (void *)s, 3, argv, lens) == REDIS_OK) {
            c->loads_pending++;
            c->pending++;
        }
    }
    if (c->loads_pending == 0) {
        c->loads_pending = 1;
        setup_done(c);
    }
}

/*--- A master, and only a master (ROLE, sentinels) -------------------------*/

/* The answer to ROLE, first on both connections: anything but a master is
 * dropped (and, with sentinels, the master asked for again). Errors (NOAUTH
 * after a refused AUTH...) are setup errors. */
static void on_role_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    conn *c = ac->data;
    redisReply *rep = reply;
    if (!rep || ac != c->ac || rep->type == REDIS_REPLY_ERROR) {
        on_setup_reply(ac, reply, privdata);
        return;
    }
    if (c->pending > 0)
        c->pending--;
    c->last_progress_ms = sfl_mono_ms();
    const char *role = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                               rep->element[0]->type == REDIS_REPLY_STRING
                           ? rep->element[0]->str
                           : "?";
    if (strcmp(role, "master") == 0) {
        setup_done(c);
        return;
    }
    char why[640];
    if (strcmp(role, "slave") == 0 && rep->elements >= 3 &&
        rep->element[1]->type == REDIS_REPLY_STRING && rep->element[2]->type == REDIS_REPLY_INTEGER)
        snprintf(why, sizeof(why), "redis %s is a replica of %s:%lld, not a master", c->at,
                 rep->element[1]->str, (long long)rep->element[2]->integer);
    else
        snprintf(why, sizeof(why), "redis %s is a %s, not a master", c->at, role);
    sfl_warn("redis: %s%s", why, c->st->sentinel ? "; asking the sentinels again" : "");
    snprintf(c->st->errstr, sizeof(c->st->errstr), "%.250s", why);
    c->setup_failed = 1;
    redisAsyncDisconnect(ac); /* on_disconnect schedules the next try */
}

static void role_send(conn *c)
{
    const char *argv[1] = {"ROLE"};
    setup_send(c, on_role_reply, NULL, 1, argv);
}

/* A connection to the master the sentinels named is gone (or never came):
 * ask them again at the next connect. One to an older master changes
 * nothing. */
static void master_lost(conn *c)
{
    if (c->st->sentinel && strcmp(c->at, c->st->master_at) == 0)
        c->st->master_at[0] = '\0';
}

/* The master's address into host/port: 0, or -1 when the sentinels must be
 * asked first (the connection is made when they answer). */
static int master_wait(conn *c, char *host, size_t hostlen, int *port)
{
    sfl_store *st = c->st;
    const char *colon = strrchr(st->master_at, ':');
    if (st->master_at[0] && colon) {
        int bracket = st->master_at[0] == '[';
        size_t n = (size_t)(colon - st->master_at) - (size_t)(bracket ? 2 : 0);
        snprintf(host, hostlen, "%.*s", (int)n, st->master_at + bracket);
        *port = atoi(colon + 1);
        return 0;
    }
    c->wants_master = 1;
    sfl_sentinel_resolve(st->sentinel);
    return -1;
}

static void master_set(sfl_store *st, const char *host, int port)
{
    snprintf(st->master_at, sizeof(st->master_at), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
             port);
}

/* Both connections on the master now named: one on another server is
 * dropped and comes back here; one waiting for a retry comes now. */
static void master_follow(sfl_store *st)
{
    conn *cs[2] = {&st->cmd, &st->sub};
    for (int i = 0; i < (st->nchannels > 0 ? 2 : 1); i++) {
        conn *c = cs[i];
        if (c->wants_master)
            continue;
        if (c->ac && strcmp(c->at, st->master_at) != 0) {
            char why[320];
            snprintf(why, sizeof(why), "master moved to %s", st->master_at);
            c->backoff_ms = 0;
            conn_drop(c, why);
        } else if (!c->ac && evtimer_pending(c->retry_timer, NULL)) {
            evtimer_del(c->retry_timer);
            c->backoff_ms = 0;
            schedule_retry(c);
        }
    }
}

static void on_master_found(const char *host, int port, const char *why, void *arg)
{
    sfl_store *st = arg;
    conn *cs[2] = {&st->cmd, &st->sub};
    if (host) {
        master_set(st, host, port);
        master_follow(st);
        sfl_sentinel_watch(st->sentinel);
    }
    for (int i = 0; i < 2; i++) {
        if (!cs[i]->wants_master)
            continue;
        cs[i]->wants_master = 0;
        if (host)
            conn_connect(cs[i]);
        else
            conn_lost(cs[i], why);
    }
}

static void on_master_switch(const char *host, int port, void *arg)
{
    sfl_store *st = arg;
    master_set(st, host, port);
    master_follow(st);
}

/* A resolver for a redis-sentinel:// URL. 0, or -1 with err set. */
static int master_resolver(sfl_store *st, char *err, size_t errlen)
{
    sfl_sentinel_opts so = {
        .sentinels = st->url.sentinels,
        .nsentinels = st->url.nsentinels,
        .master = st->url.master,
        .password = st->opts.sentinel_password,
        .timeout_ms = st->opts.connect_timeout_ms,
        .on_found = on_master_found,
        .on_switch = on_master_switch,
        .arg = st,
    };
    st->opts.sentinel_password = NULL;
    st->sentinel = sfl_sentinel_new(st->base, &so, err, errlen);
    return st->sentinel ? 0 : -1;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    conn_connect(arg);
}

/* Drops connections that owe a reply (or a connect) for too long. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    sfl_store *st = arg;
    UNUSED(fd);
    UNUSED(what);
    int64_t now = sfl_mono_ms();
    conn *cs[2] = {&st->cmd, &st->sub};
    for (int i = 0; i < 2; i++) {
        conn *c = cs[i];
        if (!c->ac)
            continue;
        if (!c->connected && now - c->connect_started_ms > st->opts.connect_timeout_ms) {
            st->stats.timeouts++;
            conn_drop(c, "connect timed out");
        } else if (c->pending > 0 && now - c->last_progress_ms > st->opts.command_timeout_ms) {
            st->stats.timeouts++;
            conn_drop(c, "no reply in time");
            /* A silent server leaves the subscription silent too: renew both. */
            if (c == &st->cmd && st->sub.ac)
                conn_drop(&st->sub, "command connection timed out");
        }
    }
}

/*--- Lifecycle -------------------------------------------------------------*/

sfl_store *sfl_store_new(struct event_base *base, const sfl_store_opts *opts, char *err,
                         size_t errlen)
{
    sfl_store *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->base = base;
    st->opts = *opts;
    if (st->opts.connect_timeout_ms <= 0)
        st->opts.connect_timeout_ms = 2000;
    if (st->opts.command_timeout_ms <= 0)
        st->opts.command_timeout_ms = st->opts.connect_timeout_ms;
    if (st->opts.recovery_ms <= 0) {
        /* No default: a window of 0 would let a Redis that lost its data
         * give running checks' slots away (SFL_EPOCH_FRESH says "no window"). */
        snprintf(err, errlen, "store: recovery_ms must be > 0 (one lease TTL)");
        free(st);
        return NULL;
    }
    if (sfl_redis_url_parse(opts->url, &st->url, err, errlen) < 0) {
        free(st);
        return NULL;
    }
    if (opts->password && *opts->password) {
        free(st->url.password);
        st->url.password = strdup(opts->password);
        if (!st->url.password)
            goto oom;
    }
    st->opts.password = NULL;
    if (st->url.embedded) {
        snprintf(err, errlen, "redis url: 'embedded' must be resolved before connecting");
        goto fail;
    }
    if (st->url.nsentinels > 0 && master_resolver(st, err, errlen) < 0)
        goto fail;
    st->opts.sentinel_password = NULL;
    st->ns = strdup(opts->ns ? opts->ns : "sfl");
    st->opts.ns = st->ns;
    st->opts.url = NULL;
    if (!st->ns)
        goto oom;
    while (opts->channels && opts->channels[st->nchannels])
        st->nchannels++;
    if (st->nchannels > 60) {
        snprintf(err, errlen, "too many channels");
        goto fail;
    }
    st->channels = calloc(st->nchannels + 1, sizeof(char *));
    if (!st->channels)
        goto oom;
    for (int i = 0; i < st->nchannels; i++)
        if (!(st->channels[i] = strdup(opts->channels[i])))
            goto oom;
    st->opts.channels = NULL;
    conn *cs[2] = {&st->cmd, &st->sub};
    for (int i = 0; i < 2; i++) {
        cs[i]->st = st;
        cs[i]->is_sub = i == 1;
        cs[i]->retry_timer = evtimer_new(base, on_retry, cs[i]);
        if (!cs[i]->retry_timer)
            goto oom;
    }
    st->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, st);
    if (!st->watchdog)
        goto oom;
    return st;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    sfl_store_free(st);
    return NULL;
}

void sfl_store_start(sfl_store *st)
{
    struct timeval tv = {0, WATCHDOG_MS * 1000};
    evtimer_add(st->watchdog, &tv);
    conn_connect(&st->cmd);
    if (st->nchannels > 0)
        conn_connect(&st->sub);
}

void sfl_store_free(sfl_store *st)
{
    if (!st)
        return;
    st->freeing = 1;
    conn *cs[2] = {&st->cmd, &st->sub};
    for (int i = 0; i < 2; i++) {
        redisAsyncContext *ac = cs[i]->ac;
        cs[i]->ac = NULL;
        cs[i]->ready = 0;
        if (ac)
            redisAsyncFree(ac);
        if (cs[i]->retry_timer)
            event_free(cs[i]->retry_timer);
    }
    if (st->watchdog)
        event_free(st->watchdog);
    sfl_sentinel_free(st->sentinel);
    sfl_redis_url_clear(&st->url);
    free(st->ns);
    for (int i = 0; st->channels && i < st->nchannels; i++)
        free(st->channels[i]);
    free(st->channels);
    free(st);
}

int sfl_store_ready(const sfl_store *st)
{
    return st->cmd.ready;
}

const char *sfl_store_errstr(const sfl_store *st)
{
    return st->errstr;
}

int sfl_store_auth_refused(const sfl_store *st, int64_t *since_ms)
{
    if (since_ms)
        *since_ms = st->auth_since_ms;
    return st->auth_streak;
}

const sfl_epoch *sfl_store_epoch(const sfl_store *st)
{
    return &st->epoch;
}

const char *sfl_store_ns(const sfl_store *st)
{
    return st->ns;
}

void sfl_store_get_stats(const sfl_store *st, sfl_store_stats *out)
{
    *out = st->stats;
}
