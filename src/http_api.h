/* http_api.h - the node's HTTP API (DESIGN §7) on libevent's evhttp. */
#ifndef SFL_HTTP_API_H
#define SFL_HTTP_API_H

#include <stddef.h>

struct event_base;
typedef struct cJSON cJSON;
typedef struct sfl_http sfl_http;

/* What the API asks of the node it serves. */
typedef struct sfl_http_node {
    /* Fills a /healthz document; returns 1 when healthy (200), 0 for 503. */
    int (*health)(cJSON *doc, void *arg);
    void *arg;
} sfl_http_node;

/* Binds listen ("HOST:PORT"); token NULL = no auth. A non-loopback address
 * without a token is refused (DESIGN §7): NULL with err, *usage set to 1. */
sfl_http *sfl_http_new(struct event_base *base, const char *listen, const char *token,
                       const sfl_http_node *node, char *err, size_t errlen, int *usage);
void sfl_http_free(sfl_http *h);
/* The port actually bound (listen may say 0). */
int sfl_http_port(const sfl_http *h);

#endif
