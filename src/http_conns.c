/* http_conns.c - the connections of the node's HTTP server: how many, for
 * how long, and what happens when descriptors run out.
 *
 * libevent 2.1's evhttp has no connection limit (evhttp_set_max_connections
 * came with 2.2), keeps a connection for as long as it is not silent for its
 * whole timeout (a byte now and then keeps it), and its listener, when
 * accept() fails for want of descriptors, logs "Error from accept() call" and
 * tries again at once: the listening socket stays readable, so the loop
 * spins and the log grows by the million. This file adds, with public API
 * only:
 *
 *  - A count of open connections: evhttp_set_bevcb is called once per
 *    accepted connection, inside the accept, before evhttp builds its
 *    evhttp_connection; a deferred event (same loop turn, before any I/O on
 *    the new socket) finds that connection as the argument evhttp gave the
 *    bufferevent's callbacks (bufferevent_getcb), checked against
 *    evhttp_connection_get_bufferevent, and takes its close callback. evhttp
 *    calls it from evhttp_connection_free, however the connection ends.
 *  - The limit (http.max_connections): one connection too many closes the
 *    oldest one with no request in progress (idle, or still sending one),
 *    so that nobody can hold the server by opening connections and saying
 *    nothing. When every connection has a request in progress, a second
 *    listener on the same socket takes evhttp's place and closes new
 *    connections at once (a 503 is tried first).
 *  - A request deadline (http.request_timeout): a connection must deliver a
 *    whole request within that time of its first byte (of its opening, for
 *    the first request). Silence is evhttp's own timeout (http.idle_timeout).
 *  - Accept errors (EMFILE, ENFILE, ENOBUFS...) turn both listeners off for
 *    ACCEPT_PAUSE_MS, and every message is summed up once per LOG_INTERVAL_MS.
 *  - At most ACCEPT_BATCH accepts per loop turn: a flood cannot starve the
 *    connections already in, nor the rest of the node.
 *
 * Never: close a connection from inside evhttp's own callbacks for it (only
 * from this file's events and from the accept of another), or keep a
 * pointer to a connection past its close callback.
 */
#include "http_conns.h"

#include "clock.h"
#include "list.h"
#include "log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 16     /* connections taken per loop turn */
#define REFUSE_BATCH 64     /* connections refused per loop turn */
#define ACCEPT_PAUSE_MS 100 /* after an accept error */
#define LOG_INTERVAL_MS 10000
#define LOWERED_MS 10000 /* a limit lowered by an accept error holds this long */
#define MIN_CONNECTIONS 8
#define YOUNG_MS 20 /* an idle connection younger than this is not closed for room */

static const char refusal[] = "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 33\r\n"
                              "Connection: close\r\n"
                              "\r\n"
                              "{\"error\":\"too many connections\"}\n";

typedef enum {
    CONN_NEW,  /* accepted this turn; evhttp's connection not known yet */
    CONN_IDLE, /* no request in progress: may be closed to make room */
    CONN_BUSY, /* a request is with the handler */
} conn_state;

typedef enum { LISTEN_NONE, LISTEN_ACCEPT, LISTEN_REFUSE } listen_mode;

typedef struct conn {
    sfl_http_conns *cs;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL while CONN_NEW */
    struct event *deadline;
    struct evbuffer_cb_entry *input_cb;
    conn_state state;
    unsigned gen;    /* cs->gen when it last became idle */
    int64_t idle_ms; /* and the time */
    int refuse;      /* over the limit with nobody idle: closed once known */
    void (*gone)(struct evhttp_connection *, void *);
    void *gone_arg;
    struct conn *prev, *next;
} conn;

/* What is logged, each kind at most once per LOG_INTERVAL_MS (the first at
 * once, the rest summed up at the end of the interval). */
typedef enum { NOTE_ACCEPT, NOTE_LIMIT, NOTE_DEADLINE, NOTE_KINDS } note_kind;

typedef struct note {
    unsigned long long n, n2; /* events since the last message (n2: refusals, for NOTE_LIMIT) */
    int last_errno;
    int logged;
    int64_t last_ms;
} note;

struct sfl_http_conns {
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *lev;     /* evhttp's, of the bound socket */
    struct evconnlistener *refuser; /* ours, on the same socket */
    struct event *bind_ev, *resume_ev, *log_ev;
    sfl_http_conns_opts opts;
    conn *fresh;                 /* CONN_NEW */
    conn *idle_head, *idle_tail; /* CONN_IDLE, least recently active first */
    conn *busy;                  /* CONN_BUSY */
    int open;                    /* all of them */
    int lowered;                 /* the limit after an accept error, until lowered_until_ms */
    int64_t lowered_until_ms;
    int turn;     /* accepted (or refused) this loop turn */
    unsigned gen; /* accept turns so far (on_bind runs and accept errors) */
    int paused;   /* after an accept error, until resume_ev */
    int stopping;
    listen_mode mode;
    note notes[NOTE_KINDS];
    int64_t log_due_ms;                 /* when log_ev goes off; 0: not armed */
    struct sfl_http_conns *next_server; /* every server of the process */
};

/* The listeners' error callback gets evhttp's argument, not ours: the
 * servers are found by their listener. One loop, one thread. */
static sfl_http_conns *servers;

static void listen_update(sfl_http_conns *cs);
static void set_mode(sfl_http_conns *cs, listen_mode m);
static int limit_of(const sfl_http_conns *cs);

/*--- Counting and sizing ---------------------------------------------------*/

int sfl_http_conns_room(long long nofile, int global_limit, long long asked, int max_default)
{
    long long room =
        nofile - SFL_HTTP_FDS_RESERVED - (long long)SFL_HTTP_FDS_PER_CHECK * global_limit;
    if (room < MIN_CONNECTIONS)
        room = MIN_CONNECTIONS;
    long long want = asked > 0 ? asked : max_default;
    return (int)(want < room ? want : room);
}

/*--- Messages, once per interval -------------------------------------------*/

static void note_say(sfl_http_conns *cs, note_kind kind)
{
    note *t = &cs->notes[kind];
    unsigned long long n = t->n, n2 = t->n2;
    t->n = t->n2 = 0;
    t->logged = 1;
    t->last_ms = sfl_mono_ms();
    if (kind == NOTE_ACCEPT && n) {
        struct rlimit rl;
        long long nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long long)rl.rlim_cur : -1;
        sfl_warn("http: accept failed %llu time(s) (%s; %d connection(s) open, descriptor "
                 "limit %lld): at most %d connection(s) for %d s, the oldest idle one closed "
                 "for a new one, or no accepting for %d ms when none is idle",
                 n, strerror(t->last_errno), cs->open, nofile, cs->lowered, LOWERED_MS / 1000,
                 ACCEPT_PAUSE_MS);
    } else if (kind == NOTE_LIMIT && (n || n2)) {
        int limit = limit_of(cs);
        char why[96] = "";
        if (limit < cs->opts.max_connections)
            snprintf(why, sizeof(why), ", lowered from %d for want of descriptors",
                     cs->opts.max_connections);
        sfl_warn("http: %d connection(s) open, limit %d (http.max_connections%s): %llu idle "
                 "one(s) closed to make room, %llu new one(s) closed at once (none idle to give "
                 "way)",
                 cs->open, limit, why, n, n2);
    } else if (kind == NOTE_DEADLINE && n) {
        sfl_info("http: %llu connection(s) closed for not sending a whole request within "
                 "http.request_timeout (%g s)",
                 n, cs->opts.request_timeout);
    }
}

/* The log timer for due (monotonic ms), unless it goes off sooner already. */
static void log_timer_at(sfl_http_conns *cs, int64_t due)
{
    if (!cs->log_ev || (cs->log_due_ms && cs->log_due_ms <= due))
        return;
    cs->log_due_ms = due;
    sfl_timer_in(cs->log_ev, due - sfl_mono_ms());
}

/* Says what is due (everything, with all); the timer comes back for the rest. */
static void notes_flush(sfl_http_conns *cs, int all)
{
    int64_t now = sfl_mono_ms();
    for (int k = 0; k < NOTE_KINDS; k++) {
        note *t = &cs->notes[k];
        if (!t->n && !t->n2)
            continue;
        int64_t due = t->logged ? t->last_ms + LOG_INTERVAL_MS : now;
        if (all || due <= now)
            note_say(cs, (note_kind)k);
        else
            log_timer_at(cs, due);
    }
}

/* An event of this kind happened (its count already added): said now if
 * its kind was not said within the interval, else at the interval's end. */
static void log_note(sfl_http_conns *cs, note_kind kind)
{
    note *t = &cs->notes[kind];
    if (!t->logged || sfl_mono_ms() - t->last_ms >= LOG_INTERVAL_MS)
        note_say(cs, kind);
    else
        log_timer_at(cs, t->last_ms + LOG_INTERVAL_MS);
}

static void on_log_timer(evutil_socket_t fd, short what, void *arg)
{
    sfl_http_conns *cs = arg;
    UNUSED(fd);
    UNUSED(what);
    cs->log_due_ms = 0;
    notes_flush(cs, 0);
}

/*--- The limit ------------------------------------------------------------*/

/* http.max_connections, or less for a while after descriptors ran out. */
static int limit_of(const sfl_http_conns *cs)
{
    if (cs->lowered && sfl_mono_ms() < cs->lowered_until_ms)
        return cs->lowered;
    return cs->opts.max_connections;
}

/*--- The idle queue --------------------------------------------------------*/

static void idle_append(sfl_http_conns *cs, conn *k)
{
    k->state = CONN_IDLE;
    k->gen = cs->gen;
    k->idle_ms = sfl_mono_ms();
    k->next = NULL;
    k->prev = cs->idle_tail;
    if (cs->idle_tail)
        cs->idle_tail->next = k;
    else
        cs->idle_head = k;
    cs->idle_tail = k;
}

static void idle_unlink(sfl_http_conns *cs, conn *k)
{
    if (k == cs->idle_tail)
        cs->idle_tail = k->prev;
    SFL_LIST_UNLINK(cs->idle_head, k);
}

/* The connection to close to make room: the least recently active idle
 * one, if it became idle two accept turns or YOUNG_MS ago or more. Younger
 * ones are spared: a connection taken in one turn is read in the next, and
 * the accepts of that next turn must not close it first. */
static conn *idle_victim(const sfl_http_conns *cs)
{
    conn *k = cs->idle_head;
    if (k && (cs->gen - k->gen >= 2 || sfl_mono_ms() - k->idle_ms >= YOUNG_MS))
        return k;
    return NULL;
}

/* Out of whichever list holds k. */
static void conn_unlink(conn *k)
{
    sfl_http_conns *cs = k->cs;
    if (k->state == CONN_NEW)
        SFL_LIST_UNLINK(cs->fresh, k);
    else if (k->state == CONN_IDLE)
        idle_unlink(cs, k);
    else
        SFL_LIST_UNLINK(cs->busy, k);
}

static void conn_free(conn *k)
{
    if (k->deadline)
        event_free(k->deadline);
    free(k);
}

/*--- Connections -----------------------------------------------------------*/

/* evhttp closes it; on_close follows from inside. */
static void conn_close(conn *k)
{
    evhttp_connection_free(k->evcon);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    conn *k = arg;
    sfl_http_conns *cs = k->cs;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (k->input_cb)
        evbuffer_remove_cb_entry(bufferevent_get_input(k->bev), k->input_cb);
    conn_unlink(k);
    cs->open--;
    if (k->gone)
        k->gone(evcon, k->gone_arg);
    conn_free(k);
    listen_update(cs);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    conn *k = arg;
    UNUSED(fd);
    UNUSED(what);
    if (k->state != CONN_IDLE)
        return;
    k->cs->notes[NOTE_DEADLINE].n++;
    log_note(k->cs, NOTE_DEADLINE);
    conn_close(k);
}

static void arm_deadline(conn *k)
{
    sfl_timer_in(k->deadline, (int64_t)llround(k->cs->opts.request_timeout * 1000));
}

/* Bytes came in: the first of a request starts its deadline. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    conn *k = arg;
    UNUSED(buf);
    if (info->n_added > 0 && k->state == CONN_IDLE && !evtimer_pending(k->deadline, NULL))
        arm_deadline(k);
}

/* The connection evhttp made around bev: the argument of the callbacks it
 * set on it, if that connection says bev is its own; NULL when evhttp has
 * dropped it already. */
static struct evhttp_connection *evcon_of(struct bufferevent *bev)
{
    bufferevent_data_cb readcb = NULL;
    void *arg = NULL;
    bufferevent_getcb(bev, &readcb, NULL, NULL, &arg);
    if (!readcb || !arg)
        return NULL;
    struct evhttp_connection *evcon = arg;
    return evhttp_connection_get_bufferevent(evcon) == bev ? evcon : NULL;
}

/* The deferred half of an accept: each new connection's evhttp_connection. */
static void on_bind(evutil_socket_t fd, short what, void *arg)
{
    sfl_http_conns *cs = arg;
    UNUSED(fd);
    UNUSED(what);
    cs->turn = 0;
    while (cs->fresh) {
        conn *k = cs->fresh;
        struct bufferevent *bev = k->bev;
        struct evhttp_connection *evcon = evcon_of(bev);
        SFL_LIST_UNLINK(cs->fresh, k);
        if (!evcon) {
            cs->open--;
            conn_free(k);
            bufferevent_decref(bev); /* evhttp freed its part already */
            continue;
        }
        k->evcon = evcon;
        evhttp_connection_set_closecb(evcon, on_close, k);
        k->input_cb = evbuffer_add_cb(bufferevent_get_input(bev), on_input, k);
        idle_append(cs, k);
        bufferevent_decref(bev); /* evhttp's connection holds it */
        if (k->refuse) {
            ssize_t w = send(bufferevent_getfd(bev), refusal, sizeof(refusal) - 1,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            conn_close(k);
            continue;
        }
        arm_deadline(k);
    }
    cs->gen++;
    listen_update(cs);
}

/* evhttp's bevcb: a connection was just accepted (its fd comes later). */
static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
    sfl_http_conns *cs = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0); /* evhttp closes the fd */
    conn *k = bev ? calloc(1, sizeof(*k)) : NULL;
    if (k)
        k->deadline = evtimer_new(base, on_deadline, k);
    if (!k || !k->deadline) {
        if (k)
            conn_free(k);
        return bev; /* out of memory: evhttp serves it, uncounted */
    }
    k->cs = cs;
    k->bev = bev;
    k->state = CONN_NEW;
    bufferevent_incref(bev); /* until on_bind, whatever evhttp does */
    SFL_LIST_PUSH(cs->fresh, k);
    cs->open++;
    if (cs->open > limit_of(cs)) {
        conn *victim = idle_victim(cs);
        if (victim) {
            cs->notes[NOTE_LIMIT].n++;
            conn_close(victim);
        } else {
            cs->notes[NOTE_LIMIT].n2++;
            k->refuse = 1;
        }
        log_note(cs, NOTE_LIMIT);
    }
    /* Stop the accept loop for this turn when enough came in; on_bind
     * turns the right listener back on. */
    if (++cs->turn >= ACCEPT_BATCH || k->refuse)
        set_mode(cs, LISTEN_NONE);
    event_active(cs->bind_ev, EV_TIMEOUT, 1);
    return bev;
}

/*--- Listening -------------------------------------------------------------*/

static void set_mode(sfl_http_conns *cs, listen_mode m)
{
    if (cs->mode == m)
        return;
    if (m == LISTEN_ACCEPT)
        evconnlistener_enable(cs->lev);
    else
        evconnlistener_disable(cs->lev);
    if (m == LISTEN_REFUSE)
        evconnlistener_enable(cs->refuser);
    else
        evconnlistener_disable(cs->refuser);
    cs->mode = m;
}

/* evhttp's listener while there is room or someone idle to make room;
 * the refuser when every connection has a request in progress. */
static void listen_update(sfl_http_conns *cs)
{
    if (cs->stopping || cs->paused || cs->fresh)
        return; /* on_bind or on_resume decides */
    int full = cs->open >= limit_of(cs) && !cs->idle_head;
    set_mode(cs, full ? LISTEN_REFUSE : LISTEN_ACCEPT);
}

/* The refuser's accept: a 503 if the socket takes it, then closed. */
static void on_refuse(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    sfl_http_conns *cs = arg;
    UNUSED(lev);
    UNUSED(sa);
    UNUSED(socklen);
    ssize_t w = send(fd, refusal, sizeof(refusal) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
    cs->notes[NOTE_LIMIT].n2++;
    log_note(cs, NOTE_LIMIT);
    if (++cs->turn >= REFUSE_BATCH) {
        set_mode(cs, LISTEN_NONE);
        event_active(cs->bind_ev, EV_TIMEOUT, 1);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    sfl_http_conns *cs = arg;
    UNUSED(fd);
    UNUSED(what);
    cs->paused = 0;
    listen_update(cs);
}

/* accept() failed (not EAGAIN, EINTR or ECONNABORTED): most likely out of
 * descriptors, taken by something else than connections (checks' pipes).
 * libevent would try again at once, forever. Instead the connections get
 * one descriptor fewer than they hold now, for LOWERED_MS: the oldest idle
 * one closes to free one for the connection waiting (and each accept past
 * the lowered limit closes another), or, none idle, the listeners pause for
 * ACCEPT_PAUSE_MS. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = errno;
    UNUSED(arg);
    sfl_http_conns *cs = servers;
    while (cs && cs->lev != lev && cs->refuser != lev)
        cs = cs->next_server;
    if (!cs) {
        evconnlistener_disable(lev); /* not ours any more: never spin */
        return;
    }
    /* open connections and no descriptor for one more: one fewer, so that
     * each accept finds the descriptor the previous one freed. */
    cs->lowered = cs->open > 2 ? cs->open - 1 : 1;
    cs->lowered_until_ms = sfl_mono_ms() + LOWERED_MS;
    cs->notes[NOTE_ACCEPT].n++;
    cs->notes[NOTE_ACCEPT].last_errno = err;
    log_note(cs, NOTE_ACCEPT);
    cs->gen++; /* an accept turn, if a failed one: the idle age */
    conn *victim = idle_victim(cs);
    if (victim) {
        cs->notes[NOTE_LIMIT].n++;
        conn_close(victim); /* on_close: listen_update */
        return;
    }
    set_mode(cs, LISTEN_NONE);
    cs->paused = 1;
    sfl_timer_in(cs->resume_ev, ACCEPT_PAUSE_MS);
}

/*--- Requests --------------------------------------------------------------*/

static conn *find(sfl_http_conns *cs, struct evhttp_connection *evcon)
{
    for (conn *k = cs->idle_tail; k; k = k->prev)
        if (k->evcon == evcon)
            return k;
    for (conn *k = cs->busy; k; k = k->next)
        if (k->evcon == evcon)
            return k;
    return NULL;
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    conn *k = arg;
    sfl_http_conns *cs = k->cs;
    UNUSED(req);
    if (k->state != CONN_BUSY)
        return;
    SFL_LIST_UNLINK(cs->busy, k);
    idle_append(cs, k); /* its next request's first byte arms the deadline */
    listen_update(cs);
}

void sfl_http_conns_request(sfl_http_conns *cs, struct evhttp_request *req)
{
    conn *k = find(cs, evhttp_request_get_connection(req));
    if (!k || k->state != CONN_IDLE)
        return;
    idle_unlink(cs, k);
    k->state = CONN_BUSY;
    SFL_LIST_PUSH(cs->busy, k);
    evtimer_del(k->deadline);
    evhttp_request_set_on_complete_cb(req, on_complete, k);
}

void sfl_http_conns_watch(sfl_http_conns *cs, struct evhttp_request *req,
                          void (*fn)(struct evhttp_connection *, void *), void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    conn *k = find(cs, evcon);
    if (!k) { /* not counted (out of memory at its accept) */
        evhttp_connection_set_closecb(evcon, fn, arg);
        return;
    }
    k->gone = fn;
    k->gone_arg = arg;
}

/*--- Lifecycle -------------------------------------------------------------*/

sfl_http_conns *sfl_http_conns_new(struct event_base *base, struct evhttp *http,
                                   struct evhttp_bound_socket *sock, const sfl_http_conns_opts *o,
                                   char *err, size_t errlen)
{
    sfl_http_conns *cs = calloc(1, sizeof(*cs));
    if (!cs)
        goto oom;
    cs->base = base;
    cs->http = http;
    cs->opts = *o;
    if (cs->opts.max_connections < 1)
        cs->opts.max_connections = 1;
    cs->lev = evhttp_bound_socket_get_listener(sock);
    cs->refuser = evconnlistener_new(base, on_refuse, cs, LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
                                     0, evconnlistener_get_fd(cs->lev));
    cs->bind_ev = event_new(base, -1, 0, on_bind, cs);
    cs->resume_ev = evtimer_new(base, on_resume, cs);
    cs->log_ev = evtimer_new(base, on_log_timer, cs);
    if (!cs->refuser || !cs->bind_ev || !cs->resume_ev || !cs->log_ev)
        goto oom;
    cs->mode = LISTEN_ACCEPT; /* evhttp's listener is on, ours off */
    evconnlistener_set_error_cb(cs->lev, on_accept_error);
    evconnlistener_set_error_cb(cs->refuser, on_accept_error);
    evhttp_set_bevcb(http, on_accept, cs);
    cs->next_server = servers;
    servers = cs;
    return cs;
oom:
    snprintf(err, errlen, "out of memory");
    if (cs) {
        cs->stopping = 1;
        sfl_http_conns_stop(cs);
        free(cs);
    }
    return NULL;
}

void sfl_http_conns_stop(sfl_http_conns *cs)
{
    if (!cs)
        return;
    for (sfl_http_conns **p = &servers; *p; p = &(*p)->next_server)
        if (*p == cs) {
            *p = cs->next_server;
            break;
        }
    cs->stopping = 1;
    if (cs->log_ev)
        notes_flush(cs, 1);
    struct event **evs[] = {&cs->bind_ev, &cs->resume_ev, &cs->log_ev};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    if (cs->refuser)
        evconnlistener_free(cs->refuser); /* not LEV_OPT_CLOSE_ON_FREE: the socket is evhttp's */
    cs->refuser = NULL;
    if (cs->lev)
        evconnlistener_set_error_cb(cs->lev, NULL);
}

void sfl_http_conns_free(sfl_http_conns *cs)
{
    if (!cs)
        return;
    /* Accepted, never bound (the loop stopped in between): evhttp_free
     * dropped their connections; our reference is the last. */
    while (cs->fresh) {
        conn *k = cs->fresh;
        SFL_LIST_UNLINK(cs->fresh, k);
        bufferevent_decref(k->bev);
        conn_free(k);
    }
    /* evhttp_free closed the others through on_close. */
    free(cs);
}
