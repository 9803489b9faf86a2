/* http_api.h - the node's HTTP API (DESIGN §7) on libevent's evhttp. */
#ifndef SFL_HTTP_API_H
#define SFL_HTTP_API_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
typedef struct cJSON cJSON;
typedef struct sfl_app sfl_app;
typedef struct sfl_http sfl_http;
typedef struct sfl_streams sfl_streams;

/* What the API asks of the node it serves. */
typedef struct sfl_http_node {
    sfl_app *app;
    /* Fills a /healthz document; returns 1 when healthy (200), 0 for 503. */
    int (*health)(cJSON *doc, void *arg);
    /* Adds "held_here" and "waiting_here" to each entry of an accounts array. */
    void (*local_accounts)(cJSON *accounts, void *arg);
    /* Writes the node's own metric families. */
    void (*metrics)(struct evbuffer *out, void *arg);
    void *arg;
} sfl_http_node;

/* Binds app->conf->http_listen (or listen, if not NULL). A non-loopback
 * address without http.token is refused (DESIGN §7): NULL with err and
 * *usage = 1. Sidecar leases live as long as the server. */
sfl_http *sfl_http_new(const sfl_http_node *node, const char *listen, char *err, size_t errlen,
                       int *usage);
/* Releases sidecar leases, closes the socket. NULL is a no-op. */
void sfl_http_free(sfl_http *h);
/* The port actually bound (listen may say 0). */
int sfl_http_port(const sfl_http *h);
/* Connections served at once: http.max_connections, or what the descriptor
 * limit leaves (http_conns.h) when that is less or the config says none. */
int sfl_http_max_connections(const sfl_http *h);
int sfl_http_sidecar_leases(const sfl_http *h);

#include "http_body.h" /* the request bodies, parsed */

#endif
