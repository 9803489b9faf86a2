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
int sfl_http_sidecar_leases(const sfl_http *h);

/*--- Request bodies ----------------------------------------------------------*/

/* What the routes make of a request body, as pure functions (no I/O, no
 * global state; the body, len bytes not necessarily NUL-terminated, is only
 * read during the call). Each returns 0, or -1 with the message of the 400
 * reply in err (naming "body" or the field). A JSON object body must be one
 * object and nothing after it, with no unknown and no repeated members. */

/* POST /v1/leases: {"account": N, "wait_ms": N, "label": "..."}. */
typedef struct sfl_http_lease_ask {
    long long account; /* 0 .. 999999999999999, required */
    long long wait_ms; /* 0 .. 3600000, default 30000 */
    char label[101];   /* default "sidecar" */
} sfl_http_lease_ask;
int sfl_http_parse_lease_body(const char *body, size_t len, sfl_http_lease_ask *out, char *err,
                              size_t errlen);

/* PUT /v1/accounts/{id}: {"max_streams": N, "name": "..." or null}. */
typedef struct sfl_http_account_put {
    long long max_streams; /* 0 (unlimited) .. 1000000, required */
    int has_name;          /* name given as a string */
    char name[201];
} sfl_http_account_put;
int sfl_http_parse_account_body(const char *body, size_t len, sfl_http_account_put *out,
                                char *err, size_t errlen);

/* POST /v1/checks: a streams document (sfl_streams_parse, named "body") with
 * at least one stream. The caller frees the batch; NULL with err. */
sfl_streams *sfl_http_parse_checks_body(const char *body, size_t len, char *err, size_t errlen);

#endif
