/* glue.c - hiredis's async contexts on the libevent loop, for the store.
 *
 * Not hiredis's own adapter: the commands a loop turn queues leave in one
 * write at the end of the turn, and a connection costs no epoll_ctl per
 * command (the store's hot path: every acquire, renew and release). The
 * sentinel queries, rare, use hiredis's adapter.
 */
#include "glue.h"

#include "log.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>

/* hiredis's own libevent adapter arms a one-shot read event again after
 * every read and asks for writability before every write: four epoll_ctl
 * calls around each round trip, and every command waits a loop iteration
 * for its write. This glue keeps the read event armed (EV_PERSIST) and
 * writes whatever a loop turn queued once, when the turn's callbacks are
 * done (an event made active by hand, no system call), so the commands of
 * one turn still leave as one pipeline. It waits for writability only
 * while connecting and when the socket is full. */
typedef struct glue {
    redisAsyncContext *ac;
    struct event *rev, *wev, *flush;
    int flush_pending;
} glue;

static glue *glue_writing; /* whose write is running: one loop, one thread */

static void glue_write(glue *g)
{
    glue_writing = g;
    redisAsyncHandleWrite(g->ac); /* may free g (a write error disconnects) */
    glue_writing = NULL;
}

static void glue_on_read(evutil_socket_t fd, short what, void *arg)
{
    glue *g = arg;
    UNUSED(fd);
    UNUSED(what);
    redisAsyncHandleRead(g->ac);
}

static void glue_on_write(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    glue_write(arg);
}

static void glue_on_flush(evutil_socket_t fd, short what, void *arg)
{
    glue *g = arg;
    UNUSED(fd);
    UNUSED(what);
    g->flush_pending = 0;
    glue_write(g);
}

static void glue_add_read(void *arg)
{
    glue *g = arg;
    event_add(g->rev, NULL); /* already armed: nothing to do */
}

static void glue_del_read(void *arg)
{
    glue *g = arg;
    event_del(g->rev);
}

static void glue_add_write(void *arg)
{
    glue *g = arg;
    if (glue_writing == g || !(g->ac->c.flags & REDIS_CONNECTED)) {
        /* The socket took only part of it, or is still connecting. */
        event_add(g->wev, NULL);
        return;
    }
    if (!g->flush_pending) {
        g->flush_pending = 1;
        event_active(g->flush, EV_WRITE, 1);
    }
}

static void glue_del_write(void *arg)
{
    glue *g = arg;
    event_del(g->wev);
}

static void glue_cleanup(void *arg)
{
    glue *g = arg;
    if (glue_writing == g)
        glue_writing = NULL;
    event_free(g->rev);
    event_free(g->wev);
    event_free(g->flush);
    free(g);
}

int sfl_glue_attach(redisAsyncContext *ac, struct event_base *base)
{
    glue *g = calloc(1, sizeof(*g));
    if (!g)
        return -1;
    g->ac = ac;
    g->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, glue_on_read, g);
    g->wev = event_new(base, ac->c.fd, EV_WRITE, glue_on_write, g);
    g->flush = event_new(base, -1, 0, glue_on_flush, g);
    if (!g->rev || !g->wev || !g->flush || event_add(g->rev, NULL) < 0 ||
        event_add(g->wev, NULL) < 0) {
        if (g->rev)
            event_free(g->rev);
        if (g->wev)
            event_free(g->wev);
        if (g->flush)
            event_free(g->flush);
        free(g);
        return -1;
    }
    ac->ev.addRead = glue_add_read;
    ac->ev.delRead = glue_del_read;
    ac->ev.addWrite = glue_add_write;
    ac->ev.delWrite = glue_del_write;
    ac->ev.cleanup = glue_cleanup;
    ac->ev.data = g;
    return 0;
}
