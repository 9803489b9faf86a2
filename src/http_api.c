/* http_api.c - the node's HTTP API (DESIGN §7), plus two read-only routes
 * the dashboard polls: GET /v1/nodes (the nodes alive, from their registry
 * keys) and GET /v1/results (the newest results of the newest batches),
 * whose data dashboard_data.c reads.
 *
 * evhttp with one generic callback and a small router. Every request ends
 * in exactly one reply, possibly later (routes that ask Redis keep the
 * request until the answer comes; if the client goes away first, the
 * pending work is cancelled and the request never touched again).
 *
 * Rules: JSON in and out; a bad request is a 400 naming what is wrong and
 * changes nothing; bodies over 1 MiB are a 413 (evhttp); unknown routes 404,
 * wrong methods 405. With http.token set, every route but /healthz needs
 * "Authorization: Bearer <token>", compared in constant time; a listen
 * address other than loopback without a token is refused at start.
 * Connections are counted and limited by http_conns.c (http.max_connections,
 * sized to the descriptor limit by default; http.request_timeout); silence
 * is evhttp's timeout (http.idle_timeout).
 */
#include "http_api.h"

#include "accounts.h"
#include "addr.h"
#include "app.h"
#include "conf.h"
#include "dashboard.h"
#include "dashboard_data.h"
#include "http_conns.h"
#include "limiter.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "sidecar.h"
#include "store.h"
#include "streams.h"
#include "text.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

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
    long long xinfo_lag, xinfo_pending;
    char batch[64];
    int64_t ttl_ms;
} pending;

/*--- Replies ---------------------------------------------------------------*/

static const char *reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Every answer is valid UTF-8, whatever its strings came from (a request
 * path, a name written into Redis by hand, a stored result): cJSON copies
 * bytes >= 0x80 as they are, so those that are not UTF-8 become U+FFFD. */
static void reply_json(struct evhttp_request *req, int code, cJSON *doc)
{
    char *printed = cJSON_PrintUnformatted(doc);
    char *text = printed ? sfl_text_utf8_valid(printed, strlen(printed), NULL) : NULL;
    free(printed);
    struct evbuffer *buf = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (text && buf)
        evbuffer_add_printf(buf, "%s\n", text);
    evhttp_send_reply(req, code, reason(code), buf);
    if (buf)
        evbuffer_free(buf);
    free(text);
}

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sfl_redact(msg);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", msg);
    reply_json(req, code, doc);
    cJSON_Delete(doc);
}

/*--- Pending requests ------------------------------------------------------*/

static void on_conn_gone(struct evhttp_connection *conn, void *arg)
{
    pending *p = arg;
    UNUSED(conn);
    p->gone = 1;
    p->req = NULL;
    if (p->ask) {
        sfl_sidecar_cancel(p->ask);
        p->ask = NULL;
    }
}

static pending *pending_new(sfl_http *h, struct evhttp_request *req)
{
    pending *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->h = h;
    p->req = req;
    sfl_http_conns_watch(h->conns, req, on_conn_gone, p);
    return p;
}

/* Detaches from the connection, frees. The caller has replied (or not, if gone). */
static void pending_free(pending *p)
{
    if (!p->gone && p->req)
        sfl_http_conns_watch(p->h->conns, p->req, NULL, NULL);
    cJSON_Delete(p->doc);
    if (p->text)
        evbuffer_free(p->text);
    free(p);
}

/*--- Request bodies ------------------------------------------------------*/

/* The request body as a NUL-terminated string (caller frees), or NULL. */
static char *body_text(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *text = malloc(n + 1);
    if (!text)
        return NULL;
    evbuffer_copyout(in, text, n);
    text[n] = '\0';
    *len = n;
    return text;
}

/*--- GET /v1/accounts ------------------------------------------------------*/

static void on_accounts(cJSON *doc, const char *err, void *arg)
{
    pending *p = arg;
    if (!p->gone) {
        if (!doc) {
            reply_error(p->req, 503, "%s", err);
        } else {
            cJSON *list = cJSON_GetObjectItem(doc, "accounts");
            if (p->h->node.local_accounts)
                p->h->node.local_accounts(list, p->h->node.arg);
            reply_json(p->req, 200, doc);
        }
    }
    pending_free(p);
}

static void route_accounts(sfl_http *h, struct evhttp_request *req)
{
    pending *p = pending_new(h, req);
    if (!p || sfl_accounts_fetch(h->node.app->store, on_accounts, p) < 0) {
        if (p)
            pending_free(p);
        reply_error(req, 503, "Redis is not reachable");
    }
}

/*--- PUT /v1/accounts/{id} -------------------------------------------------*/

typedef struct put_ctx {
    pending *p;
    sfl_account_conf acc;
    char *name;
} put_ctx;

static void on_account_written(int ok, const char *err, void *arg)
{
    put_ctx *c = arg;
    pending *p = c->p;
    if (!p->gone) {
        if (!ok) {
            reply_error(p->req, 503, "%s", err);
        } else {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddNumberToObject(doc, "id", (double)c->acc.id);
            cJSON_AddNumberToObject(doc, "max_streams", (double)c->acc.max_streams);
            if (c->name)
                cJSON_AddStringToObject(doc, "name", c->name);
            reply_json(p->req, 200, doc);
            cJSON_Delete(doc);
        }
    }
    pending_free(p);
    free(c->name);
    free(c);
}

static void route_put_account(sfl_http *h, struct evhttp_request *req, long long id)
{
    char err[256];
    sfl_http_account_put put;
    size_t len;
    char *text = body_text(req, &len);
    if (!text) {
        reply_error(req, 503, "out of memory");
        return;
    }
    int bad = sfl_http_parse_account_body(text, len, &put, err, sizeof(err)) < 0;
    free(text);
    long long max = put.max_streams;
    if (bad) {
        reply_error(req, 400, "%s", err);
    } else {
        put_ctx *c = calloc(1, sizeof(*c));
        pending *p = c ? pending_new(h, req) : NULL;
        if (c && put.has_name)
            c->name = strdup(put.name);
        if (!p) {
            free(c ? c->name : NULL);
            free(c);
            reply_error(req, 503, "out of memory");
        } else {
            c->p = p;
            c->acc = (sfl_account_conf){id, c->name, max};
            sfl_limiter_hint_limit(h->node.app->lim, id, max);
            if (sfl_accounts_write(h->node.app->store, &c->acc, 1, h->node.app->recovery_ms,
                                   on_account_written, c) < 0) {
                pending_free(p);
                free(c->name);
                free(c);
                reply_error(req, 503, "Redis is not reachable");
            }
        }
    }
}

/*--- POST /v1/checks, GET /v1/checks/{batch} -------------------------------*/

static void on_submitted(int ok, const char *err, void *arg)
{
    pending *p = arg;
    if (!p->gone) {
        if (!ok) {
            reply_error(p->req, 503, "%s", err);
        } else {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "batch", p->batch);
            reply_json(p->req, 202, doc);
            cJSON_Delete(doc);
        }
    }
    pending_free(p);
}

static void route_post_checks(sfl_http *h, struct evhttp_request *req)
{
    size_t len;
    char *text = body_text(req, &len);
    char err[512];
    if (!text) {
        reply_error(req, 503, "out of memory");
        return;
    }
    const sfl_conf *conf = h->node.app->conf;
    sfl_streams *streams = sfl_http_parse_checks_body(text, len, conf->check_schemes,
                                                      conf->check_nschemes, err, sizeof(err));
    free(text);
    if (!streams) {
        reply_error(req, 400, "%s", err);
        return;
    }
    pending *p = pending_new(h, req);
    if (!p) {
        sfl_streams_free(streams);
        reply_error(req, 503, "out of memory");
        return;
    }
    sfl_queue_new_batch_id(p->batch, sizeof(p->batch));
    int64_t ttl = (int64_t)llround(h->node.app->conf->node_batch_ttl * 1000);
    if (sfl_queue_submit(h->node.app->store, p->batch, streams, ttl, on_submitted, p) < 0) {
        pending_free(p);
        reply_error(req, 503, "Redis is not reachable");
    }
    sfl_streams_free(streams);
}

static void on_batch_results(sfl_store *st, redisReply *r, void *arg)
{
    pending *p = arg;
    UNUSED(st);
    if (!p->gone) {
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            reply_error(p->req, 503, "no answer from Redis");
        } else {
            cJSON *list = cJSON_AddArrayToObject(p->doc, "results");
            for (size_t i = 0; i < r->elements; i++) {
                cJSON *one = r->element[i]->type == REDIS_REPLY_STRING
                                 ? cJSON_Parse(r->element[i]->str)
                                 : NULL;
                /* Sent as stored, not re-printed: cJSON's printer would round
                 * stream ids past ~4.5e15 (see sfl_stream_json_add_id). */
                if (one)
                    cJSON_AddItemToArray(list, cJSON_CreateRaw(r->element[i]->str));
                cJSON_Delete(one);
            }
            reply_json(p->req, 200, p->doc);
        }
    }
    pending_free(p);
}

static void on_batch_hash(sfl_store *st, redisReply *r, void *arg)
{
    pending *p = arg;
    if (p->gone) {
        pending_free(p);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        reply_error(p->req, 503, "no answer from Redis");
        pending_free(p);
        return;
    }
    if (r->element[0]->type != REDIS_REPLY_STRING) {
        reply_error(p->req, 404, "no batch %s (unknown, or expired)", p->batch);
        pending_free(p);
        return;
    }
    long long total = strtoll(r->element[0]->str, NULL, 10);
    long long done =
        r->element[1]->type == REDIS_REPLY_STRING ? strtoll(r->element[1]->str, NULL, 10) : 0;
    p->doc = cJSON_CreateObject();
    cJSON_AddStringToObject(p->doc, "batch", p->batch);
    cJSON_AddNumberToObject(p->doc, "total", (double)total);
    cJSON_AddNumberToObject(p->doc, "done", (double)done);
    cJSON_AddBoolToObject(p->doc, "finished", done >= total);
    if (r->element[2]->type == REDIS_REPLY_STRING)
        cJSON_AddStringToObject(p->doc, "created", r->element[2]->str);
    char key[200];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), p->batch, "results");
    const char *argv[4] = {"LRANGE", key, "0", "-1"};
    if (sfl_store_command(st, on_batch_results, p, 4, argv) < 0) {
        reply_error(p->req, 503, "Redis is not reachable");
        pending_free(p);
    }
}

static void route_get_batch(sfl_http *h, struct evhttp_request *req, const char *batch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(batch[i] == '-' || (batch[i] >= '0' && batch[i] <= '9') ||
              (batch[i] >= 'a' && batch[i] <= 'z') || (batch[i] >= 'A' && batch[i] <= 'Z'))) {
            reply_error(req, 400, "batch id: only letters, digits and '-'");
            return;
        }
    if (n == 0 || n >= 64) {
        reply_error(req, 400, "batch id: 1 to 63 characters");
        return;
    }
    pending *p = pending_new(h, req);
    if (!p) {
        reply_error(req, 503, "out of memory");
        return;
    }
    memcpy(p->batch, batch, n);
    p->batch[n] = '\0';
    char key[200];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(h->node.app->store), p->batch, NULL);
    const char *argv[5] = {"HMGET", key, "total", "done", "created"};
    if (sfl_store_command(h->node.app->store, on_batch_hash, p, 5, argv) < 0) {
        pending_free(p);
        reply_error(req, 503, "Redis is not reachable");
    }
}

/*--- Sidecar leases --------------------------------------------------------*/

static void on_sidecar(sfl_sidecar_status st, const char *id, long long fence, void *arg)
{
    pending *p = arg;
    p->ask = NULL;
    /* evhttp stops reading once a request is in, so a client that hung up
     * while waiting is only seen here: peek at its socket. */
    if (!p->gone && p->req) {
        struct bufferevent *bev =
            evhttp_connection_get_bufferevent(evhttp_request_get_connection(p->req));
        char c;
        if (bev && recv(bufferevent_getfd(bev), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
            p->gone = 1;
    }
    if (p->gone) {
        /* The client left while we waited: nobody will renew it. */
        if (st == SFL_SIDECAR_GRANTED)
            sfl_sidecar_release(p->h->sidecar, id);
        pending_free(p);
        return;
    }
    if (st == SFL_SIDECAR_GRANTED) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "lease_id", id);
        cJSON_AddNumberToObject(doc, "fence", (double)fence);
        cJSON_AddNumberToObject(doc, "ttl_ms", (double)p->ttl_ms);
        reply_json(p->req, 200, doc);
        cJSON_Delete(doc);
    } else if (st == SFL_SIDECAR_TIMEOUT && !sfl_store_ready(p->h->node.app->store)) {
        /* Not a full account: nobody could say. */
        reply_error(p->req, 503, "Redis is not reachable: no slot within wait_ms");
    } else if (st == SFL_SIDECAR_TIMEOUT) {
        reply_error(p->req, 408, "no slot within wait_ms");
    } else {
        reply_error(p->req, 404, "account has no max_streams in Redis");
    }
    pending_free(p);
}

static void route_post_lease(sfl_http *h, struct evhttp_request *req)
{
    char err[256];
    sfl_http_lease_ask ask;
    size_t len;
    char *text = body_text(req, &len);
    if (!text) {
        reply_error(req, 503, "out of memory");
        return;
    }
    int bad = sfl_http_parse_lease_body(text, len, &ask, err, sizeof(err)) < 0;
    free(text);
    if (bad) {
        reply_error(req, 400, "%s", err);
    } else if (!sfl_store_ready(h->node.app->store)) {
        reply_error(req, 503, "Redis is not reachable");
    } else {
        pending *p = pending_new(h, req);
        if (p) {
            p->ttl_ms = h->node.app->conf->lease_ttl_ms;
            p->ask =
                sfl_sidecar_acquire(h->sidecar, ask.account, ask.wait_ms, ask.label, on_sidecar, p);
        }
        if (!p || !p->ask) {
            if (p)
                pending_free(p);
            reply_error(req, 503, "out of memory");
        }
    }
}

static void route_lease(sfl_http *h, struct evhttp_request *req, enum evhttp_cmd_type method,
                        const char *id, size_t n, int renew)
{
    char lid[128];
    if (n == 0 || n >= sizeof(lid)) {
        reply_error(req, 400, "lease id: 1 to 127 characters");
        return;
    }
    memcpy(lid, id, n);
    lid[n] = '\0';
    int rc;
    if (renew && method == EVHTTP_REQ_POST) {
        rc = sfl_sidecar_renew(h->sidecar, lid);
    } else if (!renew && method == EVHTTP_REQ_DELETE) {
        rc = sfl_sidecar_release(h->sidecar, lid);
    } else {
        reply_error(req, 405, renew ? "use POST to renew" : "use DELETE to give a lease back");
        return;
    }
    if (rc == -1) {
        reply_error(req, 404, "no lease %s held for a client here", lid);
        return;
    }
    if (rc == -2) {
        reply_error(req, 409, "lease %s was lost; stop using its stream", lid);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "lease_id", lid);
    cJSON_AddStringToObject(doc, "status", renew ? "renewed" : "released");
    if (renew)
        cJSON_AddNumberToObject(doc, "ttl_ms", (double)h->node.app->conf->lease_ttl_ms);
    reply_json(req, 200, doc);
    cJSON_Delete(doc);
}

/*--- GET /v1/nodes, GET /v1/results: what the dashboard shows --------------*/

static void on_dashboard_data(cJSON *doc, const char *error, void *arg)
{
    pending *p = arg;
    if (!p->gone) {
        if (doc)
            reply_json(p->req, 200, doc);
        else
            reply_error(p->req, 503, "%s", error);
    }
    pending_free(p);
}

static void route_nodes(sfl_http *h, struct evhttp_request *req)
{
    pending *p = pending_new(h, req);
    if (!p) {
        reply_error(req, 503, "out of memory");
        return;
    }
    if (sfl_dashboard_nodes(h->node.app->store, on_dashboard_data, p) < 0) {
        pending_free(p);
        reply_error(req, 503, "Redis is not reachable");
    }
}

static void route_results(sfl_http *h, struct evhttp_request *req)
{
    long long limit = 20;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    memset(&params, 0, sizeof(params)); /* evhttp_parse_query_str sets it up */
    if (query && evhttp_parse_query_str(query, &params) < 0) {
        reply_error(req, 400, "query: not a valid query string");
        return;
    }
    for (struct evkeyval *kv = params.tqh_first; kv; kv = kv->next.tqe_next) {
        size_t n = strlen(kv->value);
        if (strcmp(kv->key, "limit") != 0) {
            reply_error(req, 400, "%.64s: unknown parameter (only limit)", kv->key);
            evhttp_clear_headers(&params);
            return;
        }
        if (sfl_http_parse_id(kv->value, n, &limit) < 0 || limit < 1 ||
            limit > SFL_RECENT_RESULTS_MAX) {
            reply_error(req, 400, "limit: expected an integer from 1 to %d",
                        SFL_RECENT_RESULTS_MAX);
            evhttp_clear_headers(&params);
            return;
        }
    }
    evhttp_clear_headers(&params);
    pending *p = pending_new(h, req);
    if (!p) {
        reply_error(req, 503, "out of memory");
        return;
    }
    if (sfl_dashboard_results(h->node.app->store, (int)limit, on_dashboard_data, p) < 0) {
        pending_free(p);
        reply_error(req, 503, "Redis is not reachable");
    }
}

/*--- GET /metrics ----------------------------------------------------------*/

/* One gauge sample per account of GET /v1/accounts' list, from its field. */
static void account_gauge(struct evbuffer *out, cJSON *list, const char *name, const char *help,
                          const char *field)
{
    sfl_metrics_family(out, name, "gauge", help);
    cJSON *a;
    cJSON_ArrayForEach(a, list)
    {
        char labels[64];
        snprintf(labels, sizeof(labels), "account=\"%.0f\"",
                 cJSON_GetObjectItem(a, "id")->valuedouble);
        sfl_metrics_sample(out, name, labels, cJSON_GetObjectItem(a, field)->valuedouble);
    }
}

static void metrics_finish(pending *p)
{
    if (--p->owed > 0)
        return;
    if (!p->gone) {
        struct evbuffer *out = p->text;
        sfl_http *h = p->h;
        cJSON *list = p->doc ? cJSON_GetObjectItem(p->doc, "accounts") : NULL;
        if (list) {
            account_gauge(out, list, "sfl_account_limit",
                          "max_streams of the account in Redis (0 = unlimited)", "max_streams");
            account_gauge(out, list, "sfl_account_in_use",
                          "leases of the account held now, all nodes", "in_use");
        }
        if (p->xinfo_lag >= 0) {
            sfl_metrics_family(out, "sfl_queue_depth", "gauge",
                               "shared queue entries not yet delivered to any node");
            sfl_metrics_sample(out, "sfl_queue_depth", "", (double)p->xinfo_lag);
            sfl_metrics_family(out, "sfl_queue_pending", "gauge",
                               "shared queue entries delivered and not yet acknowledged");
            sfl_metrics_sample(out, "sfl_queue_pending", "", (double)p->xinfo_pending);
        }
        if (h->node.metrics)
            h->node.metrics(out, h->node.arg);
        sfl_metrics_family(out, "sfl_sidecar_leases", "gauge", "leases held for HTTP clients");
        sfl_metrics_sample(out, "sfl_sidecar_leases", "", sfl_sidecar_count(h->sidecar));
        sfl_metrics_family(out, "sfl_redis_up", "gauge", "1 when the node's Redis is reachable");
        sfl_metrics_sample(out, "sfl_redis_up", "", sfl_store_ready(h->node.app->store));
        evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type",
                          "text/plain; version=0.0.4");
        evhttp_send_reply(p->req, 200, "OK", out);
    }
    pending_free(p);
}

static void on_metrics_accounts(cJSON *doc, const char *err, void *arg)
{
    pending *p = arg;
    UNUSED(err);
    if (doc)
        p->doc = cJSON_Duplicate(doc, 1);
    metrics_finish(p);
}

static void on_metrics_depth(int ok, long long depth, long long pend, void *arg)
{
    pending *p = arg;
    if (ok) {
        p->xinfo_lag = depth;
        p->xinfo_pending = pend;
    }
    metrics_finish(p);
}

static void route_metrics(sfl_http *h, struct evhttp_request *req)
{
    pending *p = pending_new(h, req);
    if (!p || !(p->text = evbuffer_new())) {
        if (p)
            pending_free(p);
        reply_error(req, 503, "out of memory");
        return;
    }
    p->xinfo_lag = -1;
    p->owed = 1;
    sfl_store *st = h->node.app->store;
    if (sfl_store_ready(st)) {
        p->owed++;
        if (sfl_accounts_fetch(st, on_metrics_accounts, p) < 0)
            p->owed--;
        p->owed++;
        if (sfl_queue_depth(st, on_metrics_depth, p) < 0)
            p->owed--;
    }
    metrics_finish(p);
}

/*--- Router ----------------------------------------------------------------*/

static int authorized(const sfl_http *h, struct evhttp_request *req)
{
    if (!h->token)
        return 1;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *given = auth + 7;
    size_t n = strlen(h->token), m = strlen(given);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(h->token[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

/* 1 if path is prefix + one segment (returned in seg/n) + optional suffix. */
static int match(const char *path, const char *prefix, const char *suffix, const char **seg,
                 size_t *n)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0)
        return 0;
    const char *s = path + pl;
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    const char *rest = s + len;
    if (suffix ? strcmp(rest, suffix) != 0 : *rest != '\0')
        return 0;
    *seg = s;
    *n = len;
    return 1;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sfl_http *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *seg;
    size_t n;
    sfl_http_conns_request(h->conns, req);
    if (!path || !*path) {
        reply_error(req, 400, "bad request line");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
            reply_error(req, 405, "GET /healthz");
            return;
        }
        cJSON *doc = cJSON_CreateObject();
        int ok = h->node.health(doc, h->node.arg);
        reply_json(req, ok ? 200 : 503, doc);
        cJSON_Delete(doc);
        return;
    }
    /* The page holds no data (its calls carry the token), so a browser can load it. */
    if (strcmp(path, "/") != 0 && !authorized(h, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        reply_error(req, 401, "missing or wrong bearer token");
        return;
    }
    if (strcmp(path, "/") == 0) {
        if (m != EVHTTP_REQ_GET) {
            reply_error(req, 405, "GET /");
            return;
        }
        struct evbuffer *buf = evbuffer_new();
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/html; charset=utf-8");
        evbuffer_add(buf, sfl_dashboard_html, sfl_dashboard_html_len);
        evhttp_send_reply(req, 200, "OK", buf);
        evbuffer_free(buf);
    } else if (strcmp(path, "/metrics") == 0) {
        if (m != EVHTTP_REQ_GET)
            reply_error(req, 405, "GET /metrics");
        else
            route_metrics(h, req);
    } else if (strcmp(path, "/v1/accounts") == 0) {
        if (m != EVHTTP_REQ_GET)
            reply_error(req, 405, "GET /v1/accounts");
        else
            route_accounts(h, req);
    } else if (match(path, "/v1/accounts/", NULL, &seg, &n)) {
        long long id;
        if (m != EVHTTP_REQ_PUT)
            reply_error(req, 405, "PUT /v1/accounts/{id}");
        else if (sfl_http_parse_id(seg, n, &id) < 0)
            reply_error(req, 400, "account id: expected an integer from 0 to 999999999999999");
        else
            route_put_account(h, req, id);
    } else if (strcmp(path, "/v1/nodes") == 0) {
        if (m != EVHTTP_REQ_GET)
            reply_error(req, 405, "GET /v1/nodes");
        else
            route_nodes(h, req);
    } else if (strcmp(path, "/v1/results") == 0) {
        if (m != EVHTTP_REQ_GET)
            reply_error(req, 405, "GET /v1/results");
        else
            route_results(h, req);
    } else if (strcmp(path, "/v1/checks") == 0) {
        if (m != EVHTTP_REQ_POST)
            reply_error(req, 405, "POST /v1/checks");
        else
            route_post_checks(h, req);
    } else if (match(path, "/v1/checks/", NULL, &seg, &n)) {
        if (m != EVHTTP_REQ_GET)
            reply_error(req, 405, "GET /v1/checks/{batch}");
        else
            route_get_batch(h, req, seg, n);
    } else if (strcmp(path, "/v1/leases") == 0) {
        if (m != EVHTTP_REQ_POST)
            reply_error(req, 405, "POST /v1/leases");
        else
            route_post_lease(h, req);
    } else if (match(path, "/v1/leases/", "/renew", &seg, &n)) {
        route_lease(h, req, m, seg, n, 1);
    } else if (match(path, "/v1/leases/", NULL, &seg, &n)) {
        route_lease(h, req, m, seg, n, 0);
    } else {
        reply_error(req, 404, "no route %s", path);
    }
}

/*--- Lifecycle -------------------------------------------------------------*/

/* http.max_connections when the config leaves it to the descriptor limit. */
#define HTTP_MAX_CONNECTIONS 1024

static int is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return 1;
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

sfl_http *sfl_http_new(const sfl_http_node *node, const char *listen, char *err, size_t errlen,
                       int *usage)
{
    const sfl_conf *conf = node->app->conf;
    const char *token = conf->http_token;
    char host[256];
    int port;
    *usage = 0;
    if (!listen)
        listen = conf->http_listen;
    if (sfl_listen_parse(listen, host, sizeof(host), &port, err, errlen) < 0) {
        *usage = 1;
        return NULL;
    }
    if (!is_loopback(host) && !(token && *token)) {
        snprintf(err, errlen,
                 "http.listen: %s is not a loopback address and http.token is not set: "
                 "refusing to serve leases to the network without a token",
                 listen);
        *usage = 1;
        return NULL;
    }
    sfl_http *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->node = *node;
    h->http = evhttp_new(node->app->base);
    h->sidecar = sfl_sidecar_new(node->app->base, node->app->lim, conf->lease_ttl_ms);
    if (token && *token)
        h->token = strdup(token);
    if (!h->http || !h->sidecar || (token && *token && !h->token)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    evhttp_set_max_body_size(h->http, (ev_ssize_t)conf->http_max_body);
    evhttp_set_max_headers_size(h->http, 16 * 1024);
    /* Silence on a connection, reading or writing. A request with the
     * handler is not read meanwhile: a sidecar ask may wait an hour. */
    double idle = conf->http_idle_timeout;
    struct timeval tv = {(time_t)idle, (suseconds_t)((idle - floor(idle)) * 1e6)};
    evhttp_set_timeout_tv(h->http, &tv);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(h->http, on_request, h);
    h->sock = evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
    if (!h->sock) {
        snprintf(err, errlen, "http.listen: cannot listen on %s (in use, or no such address)",
                 listen);
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(h->sock), (struct sockaddr *)&ss, &len) == 0)
        h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    struct rlimit rl;
    long long nofile = getrlimit(RLIMIT_NOFILE, &rl) < 0 ? 1024
                       : rl.rlim_cur == RLIM_INFINITY    ? 1 << 20
                                                         : (long long)rl.rlim_cur;
    h->max_connections = sfl_http_conns_room(nofile, conf->global_limit, conf->http_max_connections,
                                             HTTP_MAX_CONNECTIONS);
    sfl_http_conns_opts co = {h->max_connections, conf->http_request_timeout};
    h->conns = sfl_http_conns_new(node->app->base, h->http, h->sock, &co, err, errlen);
    if (!h->conns)
        goto fail;
    return h;
fail:
    sfl_http_free(h);
    return NULL;
}

void sfl_http_free(sfl_http *h)
{
    if (!h)
        return;
    sfl_http_conns_stop(h->conns);
    if (h->http)
        evhttp_free(h->http); /* closes the connections */
    sfl_http_conns_free(h->conns);
    sfl_sidecar_free(h->sidecar);
    free(h->token);
    free(h);
}

int sfl_http_port(const sfl_http *h)
{
    return h->port;
}

int sfl_http_max_connections(const sfl_http *h)
{
    return h->max_connections;
}

int sfl_http_sidecar_leases(const sfl_http *h)
{
    return sfl_sidecar_count(h->sidecar);
}
