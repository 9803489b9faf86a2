/* http_api_int.h - the node's HTTP server insides, shared by http_api.c
 * (the server: replies, pending requests, the router, auth, lifecycle) and
 * http_routes.c (what each route does). Everyone else uses http_api.h. */
#ifndef SFL_HTTP_API_INT_H
#define SFL_HTTP_API_INT_H

#include "http_api.h"

#include "http_conns.h"
#include "sidecar.h"

#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cJSON cJSON;
struct evbuffer;

struct sfl_http {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    sfl_http_conns *conns;
    int max_connections;
    char *token;
    sfl_http_node node;
    sfl_sidecar *sidecar;
    int port;
};

/* A request waiting for Redis (or a slot). If its connection closes first,
 * `gone` is set and the answer is dropped. */
typedef struct pending {
    sfl_http *h;
    struct evhttp_request *req;
    int gone;
    int route;
    sfl_sidecar_ask *ask;
    int owed;
    cJSON *doc;
    struct evbuffer *text;
    long long queue_depth, queue_pending;
    char batch[64];
    int64_t ttl_ms;
} pending;

/*--- http_api.c, for the routes ----------------------------------------------*/

/* The one answer of a request: JSON, made valid UTF-8 whatever its strings
 * came from. doc stays the caller's. */
void sfl_http_reply_json(struct evhttp_request *req, int code, cJSON *doc);
/* {"error": message}, credentials masked. */
void sfl_http_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A request kept until Redis (or a slot) answers; p->gone once its
 * connection closed. NULL when out of memory. */
pending *sfl_http_pending_new(sfl_http *h, struct evhttp_request *req);
/* Detaches from the connection and frees. The caller has replied (or not, if gone). */
void sfl_http_pending_free(pending *p);
/* The request body as a NUL-terminated string (caller frees), or NULL. */
char *sfl_http_body_text(struct evhttp_request *req, size_t *len);

/*--- http_routes.c, for the router -------------------------------------------*/

void sfl_http_route_accounts(sfl_http *h, struct evhttp_request *req);
void sfl_http_route_put_account(sfl_http *h, struct evhttp_request *req, long long id);
void sfl_http_route_post_checks(sfl_http *h, struct evhttp_request *req);
/* batch: n bytes, not NUL-terminated. */
void sfl_http_route_get_batch(sfl_http *h, struct evhttp_request *req, const char *batch, size_t n);
void sfl_http_route_post_lease(sfl_http *h, struct evhttp_request *req);
/* POST /v1/leases/{id}/renew (renew) or DELETE /v1/leases/{id}; id: n bytes. */
void sfl_http_route_lease(sfl_http *h, struct evhttp_request *req, enum evhttp_cmd_type method,
                          const char *id, size_t n, int renew);
void sfl_http_route_nodes(sfl_http *h, struct evhttp_request *req);
void sfl_http_route_results(sfl_http *h, struct evhttp_request *req);
void sfl_http_route_metrics(sfl_http *h, struct evhttp_request *req);

/*--- http_history.c, for the router ------------------------------------------*/

/* GET /v1/history?login=ID&from=T&to=T&step=S */
void sfl_http_route_history(sfl_http *h, struct evhttp_request *req);
/* GET /v1/streams/{id}/history[?limit=N]; id: n bytes. */
void sfl_http_route_stream_history(sfl_http *h, struct evhttp_request *req, const char *id,
                                   size_t n);

#endif
