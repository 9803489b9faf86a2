/* http_conns.h - the connections of the node's HTTP server: a limit, a
 * request deadline, and accept errors that pause instead of spinning. */
#ifndef SFL_HTTP_CONNS_H
#define SFL_HTTP_CONNS_H

#include <stddef.h>

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_connection;
struct evhttp_request;
typedef struct sfl_http_conns sfl_http_conns;

typedef struct sfl_http_conns_opts {
    int max_connections;    /* open at once; past it the oldest idle one closes */
    double request_timeout; /* seconds from a request's first byte to its last */
} sfl_http_conns_opts;

/* Descriptors a node keeps out of the HTTP side's reach: its own (stdio, the
 * event loop, Redis, logs, Dispatcharr) plus, per check that may run at once,
 * the pipes it is started with. */
#define SFL_HTTP_FDS_RESERVED 64
#define SFL_HTTP_FDS_PER_CHECK 8
/* The limit for a descriptor limit of nofile and global_limit checks:
 * what the reserve leaves (at least 8), at most max_default when asked is
 * 0, else at most asked. */
int sfl_http_conns_room(long long nofile, int global_limit, long long asked, int max_default);

/* Counts and limits the connections of http, whose socket is sock (bound,
 * not yet accepting: call before the loop runs). Takes evhttp's bevcb and
 * the error callback of sock's listener. NULL with err when out of memory. */
sfl_http_conns *sfl_http_conns_new(struct event_base *base, struct evhttp *http,
                                   struct evhttp_bound_socket *sock, const sfl_http_conns_opts *o,
                                   char *err, size_t errlen);
/* Stops accepting and frees the timers and the second listener; the
 * connections stay evhttp's. Call before evhttp_free(). NULL is a no-op. */
void sfl_http_conns_stop(sfl_http_conns *cs);
/* After evhttp_free() (which closes the connections): frees the rest. NULL
 * is a no-op. */
void sfl_http_conns_free(sfl_http_conns *cs);

/* req reached the handler: until its reply is sent, its connection is
 * neither closed to make room nor at the deadline. */
void sfl_http_conns_request(sfl_http_conns *cs, struct evhttp_request *req);
/* fn(evcon, arg) once, if req's connection closes before fn is changed;
 * fn NULL: no longer. Use instead of evhttp_connection_set_closecb (this
 * file holds it). */
void sfl_http_conns_watch(sfl_http_conns *cs, struct evhttp_request *req,
                          void (*fn)(struct evhttp_connection *, void *), void *arg);

#endif
