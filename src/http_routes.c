/* http_routes.c - what each route of the node's HTTP API does (DESIGN §7):
 * accounts (read, and their limits written), checks (a batch onto the
 * shared queue, its progress read back), sidecar leases, the dashboard's
 * nodes and recent results, and the Prometheus metrics. The server around
 * them (replies, pending requests, auth, the router) is http_api.c.
 *
 * Each route ends in exactly one reply, at once or when Redis answers;
 * a bad request is a 400 naming what is wrong and changes nothing.
 */
#include "http_api_int.h"

#include "accounts.h"
#include "app.h"
#include "conf.h"
#include "dashboard_data.h"
#include "http_body.h"
#include "limiter.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "routes.h"
#include "store.h"
#include "streams.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*--- GET /v1/accounts ------------------------------------------------------*/

/* The holders' stream names are in (or could not be read). */
static void on_accounts_named(void *arg)
{
    pending *p = arg;
    if (!p->gone)
        sfl_http_reply_json(p->req, 200, p->doc);
    sfl_http_pending_free(p);
}

static void on_accounts(cJSON *doc, const char *err, void *arg)
{
    pending *p = arg;
    if (!p->gone) {
        if (!doc) {
            sfl_http_reply_error(p->req, 503, "%s", err);
        } else {
            cJSON *list = cJSON_GetObjectItem(doc, "accounts");
            if (p->h->node.local_accounts)
                p->h->node.local_accounts(list, p->h->node.arg);
            /* doc is the fetch's: the names are read into a copy. */
            p->doc = cJSON_Duplicate(doc, 1);
            list = cJSON_GetObjectItem(p->doc, "accounts");
            if (p->doc &&
                sfl_dashboard_stream_names(p->h->node.app->store, list, on_accounts_named, p) == 0)
                return;
            sfl_http_reply_json(p->req, 200, p->doc ? p->doc : doc);
        }
    }
    sfl_http_pending_free(p);
}

void sfl_http_route_accounts(sfl_http *h, struct evhttp_request *req)
{
    pending *p = sfl_http_pending_new(h, req);
    if (!p || sfl_accounts_fetch(h->node.app->store, on_accounts, p) < 0) {
        if (p)
            sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
}

/*--- PUT /v1/accounts/{id} -------------------------------------------------*/

typedef struct put_ctx {
    pending *p;
    sfl_account_conf acc; /* owned */
} put_ctx;

static void on_account_written(int ok, const char *err, void *arg)
{
    put_ctx *c = arg;
    pending *p = c->p;
    if (!p->gone) {
        if (!ok) {
            sfl_http_reply_error(p->req, 503, "%s", err);
        } else {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddNumberToObject(doc, "id", (double)c->acc.id);
            cJSON_AddNumberToObject(doc, "max_streams", (double)c->acc.max_streams);
            if (c->acc.name)
                cJSON_AddStringToObject(doc, "name", c->acc.name);
            cJSON *logins = c->acc.nlogins ? cJSON_AddArrayToObject(doc, "logins") : NULL;
            for (size_t i = 0; logins && i < c->acc.nlogins; i++) {
                cJSON *l = cJSON_CreateObject();
                cJSON_AddStringToObject(l, "id", c->acc.logins[i].id);
                cJSON_AddNumberToObject(l, "max_streams", (double)c->acc.logins[i].max_streams);
                cJSON_AddItemToArray(logins, l);
            }
            sfl_http_reply_json(p->req, 200, doc);
            cJSON_Delete(doc);
        }
    }
    sfl_http_pending_free(p);
    sfl_account_conf_clear(&c->acc);
    free(c);
}

void sfl_http_route_put_account(sfl_http *h, struct evhttp_request *req, long long id)
{
    char err[256];
    sfl_http_account_put put;
    size_t len;
    char *text = sfl_http_body_text(req, &len);
    if (!text) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    int bad = sfl_http_parse_account_body(text, len, &put, err, sizeof(err)) < 0;
    free(text);
    if (bad) {
        sfl_http_account_put_clear(&put);
        sfl_http_reply_error(req, 400, "%s", err);
        return;
    }
    if (put.nlogins == 0) {
        /* {"max_streams"} makes the account one login: not behind the back
         * of the logins this node routes it through. */
        const sfl_route *rt = sfl_routes_get(sfl_limiter_routes(h->node.app->lim), id);
        char self[24];
        snprintf(self, sizeof(self), "%lld", id);
        if (rt && rt->configured && (rt->nlogins > 1 || strcmp(rt->logins[0]->id, self) != 0)) {
            sfl_http_reply_error(
                req, 400, "account %lld has logins: PUT {\"logins\": [...]} to change them", id);
            return;
        }
    }
    put_ctx *c = calloc(1, sizeof(*c));
    pending *p = c ? sfl_http_pending_new(h, req) : NULL;
    if (c) {
        c->acc = (sfl_account_conf){.id = id,
                                    .name = put.has_name ? strdup(put.name) : NULL,
                                    .max_streams = put.max_streams,
                                    .logins = put.logins,
                                    .nlogins = put.nlogins};
        put.logins = NULL;
        put.nlogins = 0;
    }
    sfl_http_account_put_clear(&put);
    if (!p || (put.has_name && !c->acc.name)) {
        if (p)
            sfl_http_pending_free(p);
        if (c)
            sfl_account_conf_clear(&c->acc);
        free(c);
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    c->p = p;
    /* This node routes the account through its new logins at once; the
     * others when they are given them (config, sync) — until then they use
     * its first login only, or none if it moved to a group's keys. */
    sfl_app *app = h->node.app;
    if (sfl_limiter_set_accounts(app->lim, &c->acc, 1, err, sizeof(err)) < 0 ||
        sfl_accounts_write(app->store, sfl_limiter_routes(app->lim), &c->acc, 1, app->recovery_ms,
                           SFL_ACCOUNTS_REPLACE | SFL_ACCOUNTS_FORGET, on_account_written, c) < 0) {
        sfl_http_pending_free(p);
        sfl_account_conf_clear(&c->acc);
        free(c);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
}

/*--- POST /v1/checks, GET /v1/checks/{batch} -------------------------------*/

static void on_submitted(int ok, const char *err, void *arg)
{
    pending *p = arg;
    if (!p->gone) {
        if (!ok) {
            sfl_http_reply_error(p->req, 503, "%s", err);
        } else {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "batch", p->batch);
            sfl_http_reply_json(p->req, 202, doc);
            cJSON_Delete(doc);
        }
    }
    sfl_http_pending_free(p);
}

void sfl_http_route_post_checks(sfl_http *h, struct evhttp_request *req)
{
    size_t len;
    char *text = sfl_http_body_text(req, &len);
    char err[512];
    if (!text) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    const sfl_conf *conf = h->node.app->conf;
    sfl_streams *streams = sfl_http_parse_checks_body(text, len, conf->check_schemes,
                                                      conf->check_nschemes, err, sizeof(err));
    free(text);
    if (!streams) {
        sfl_http_reply_error(req, 400, "%s", err);
        return;
    }
    pending *p = sfl_http_pending_new(h, req);
    if (!p) {
        sfl_streams_free(streams);
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    sfl_queue_new_batch_id(p->batch, sizeof(p->batch));
    int64_t ttl = (int64_t)llround(h->node.app->conf->node_batch_ttl * 1000);
    if (sfl_queue_submit(h->node.app->store, p->batch, streams, ttl, on_submitted, p) < 0) {
        sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
    sfl_streams_free(streams);
}

static void on_batch_results(sfl_store *st, redisReply *r, void *arg)
{
    pending *p = arg;
    UNUSED(st);
    if (!p->gone) {
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            sfl_http_reply_error(p->req, 503, "no answer from Redis");
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
            sfl_http_reply_json(p->req, 200, p->doc);
        }
    }
    sfl_http_pending_free(p);
}

static void on_batch_hash(sfl_store *st, redisReply *r, void *arg)
{
    pending *p = arg;
    if (p->gone) {
        sfl_http_pending_free(p);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        sfl_http_reply_error(p->req, 503, "no answer from Redis");
        sfl_http_pending_free(p);
        return;
    }
    if (r->element[0]->type != REDIS_REPLY_STRING) {
        sfl_http_reply_error(p->req, 404, "no batch %s (unknown, or expired)", p->batch);
        sfl_http_pending_free(p);
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
        sfl_http_reply_error(p->req, 503, "Redis is not reachable");
        sfl_http_pending_free(p);
    }
}

void sfl_http_route_get_batch(sfl_http *h, struct evhttp_request *req, const char *batch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(batch[i] == '-' || (batch[i] >= '0' && batch[i] <= '9') ||
              (batch[i] >= 'a' && batch[i] <= 'z') || (batch[i] >= 'A' && batch[i] <= 'Z'))) {
            sfl_http_reply_error(req, 400, "batch id: only letters, digits and '-'");
            return;
        }
    if (n == 0 || n >= 64) {
        sfl_http_reply_error(req, 400, "batch id: 1 to 63 characters");
        return;
    }
    pending *p = sfl_http_pending_new(h, req);
    if (!p) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    memcpy(p->batch, batch, n);
    p->batch[n] = '\0';
    char key[200];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(h->node.app->store), p->batch, NULL);
    const char *argv[5] = {"HMGET", key, "total", "done", "created"};
    if (sfl_store_command(h->node.app->store, on_batch_hash, p, 5, argv) < 0) {
        sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
}

/*--- Sidecar leases --------------------------------------------------------*/

static void on_sidecar(sfl_sidecar_status st, const char *id, long long fence, const char *login,
                       void *arg)
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
        sfl_http_pending_free(p);
        return;
    }
    if (st == SFL_SIDECAR_GRANTED) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "lease_id", id);
        cJSON_AddNumberToObject(doc, "fence", (double)fence);
        cJSON_AddStringToObject(doc, "login", login ? login : "");
        cJSON_AddNumberToObject(doc, "ttl_ms", (double)p->ttl_ms);
        sfl_http_reply_json(p->req, 200, doc);
        cJSON_Delete(doc);
    } else if (st == SFL_SIDECAR_TIMEOUT && !sfl_store_ready(p->h->node.app->store)) {
        /* Not a full account: nobody could say. */
        sfl_http_reply_error(p->req, 503, "Redis is not reachable: no slot within wait_ms");
    } else if (st == SFL_SIDECAR_TIMEOUT) {
        sfl_http_reply_error(p->req, 408, "no slot within wait_ms");
    } else {
        sfl_http_reply_error(p->req, 404, "account has no max_streams in Redis");
    }
    sfl_http_pending_free(p);
}

void sfl_http_route_post_lease(sfl_http *h, struct evhttp_request *req)
{
    char err[256];
    sfl_http_lease_ask ask;
    size_t len;
    char *text = sfl_http_body_text(req, &len);
    if (!text) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    int bad = sfl_http_parse_lease_body(text, len, &ask, err, sizeof(err)) < 0;
    free(text);
    if (bad) {
        sfl_http_reply_error(req, 400, "%s", err);
    } else if (!sfl_store_ready(h->node.app->store)) {
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    } else {
        pending *p = sfl_http_pending_new(h, req);
        if (p) {
            p->ttl_ms = h->node.app->conf->lease_ttl_ms;
            p->ask =
                sfl_sidecar_acquire(h->sidecar, ask.account, ask.wait_ms, ask.label, on_sidecar, p);
        }
        if (!p || !p->ask) {
            if (p)
                sfl_http_pending_free(p);
            sfl_http_reply_error(req, 503, "out of memory");
        }
    }
}

void sfl_http_route_lease(sfl_http *h, struct evhttp_request *req, enum evhttp_cmd_type method,
                          const char *id, size_t n, int renew)
{
    char lid[128];
    if (n == 0 || n >= sizeof(lid)) {
        sfl_http_reply_error(req, 400, "lease id: 1 to 127 characters");
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
        sfl_http_reply_error(req, 405,
                             renew ? "use POST to renew" : "use DELETE to give a lease back");
        return;
    }
    if (rc == -1) {
        sfl_http_reply_error(req, 404, "no lease %s held for a client here", lid);
        return;
    }
    if (rc == -2) {
        sfl_http_reply_error(req, 409, "lease %s was lost; stop using its stream", lid);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "lease_id", lid);
    cJSON_AddStringToObject(doc, "status", renew ? "renewed" : "released");
    if (renew)
        cJSON_AddNumberToObject(doc, "ttl_ms", (double)h->node.app->conf->lease_ttl_ms);
    sfl_http_reply_json(req, 200, doc);
    cJSON_Delete(doc);
}

/*--- GET /v1/nodes, GET /v1/results: what the dashboard shows --------------*/

static void on_dashboard_data(cJSON *doc, const char *error, void *arg)
{
    pending *p = arg;
    if (!p->gone) {
        if (doc)
            sfl_http_reply_json(p->req, 200, doc);
        else
            sfl_http_reply_error(p->req, 503, "%s", error);
    }
    sfl_http_pending_free(p);
}

void sfl_http_route_nodes(sfl_http *h, struct evhttp_request *req)
{
    pending *p = sfl_http_pending_new(h, req);
    if (!p) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    if (sfl_dashboard_nodes(h->node.app->store, on_dashboard_data, p) < 0) {
        sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
}

void sfl_http_route_results(sfl_http *h, struct evhttp_request *req)
{
    long long limit = 20;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    memset(&params, 0, sizeof(params)); /* evhttp_parse_query_str sets it up */
    if (query && evhttp_parse_query_str(query, &params) < 0) {
        sfl_http_reply_error(req, 400, "query: not a valid query string");
        return;
    }
    for (struct evkeyval *kv = params.tqh_first; kv; kv = kv->next.tqe_next) {
        size_t n = strlen(kv->value);
        if (strcmp(kv->key, "limit") != 0) {
            sfl_http_reply_error(req, 400, "%.64s: unknown parameter (only limit)", kv->key);
            evhttp_clear_headers(&params);
            return;
        }
        if (sfl_http_parse_id(kv->value, n, &limit) < 0 || limit < 1 ||
            limit > SFL_RECENT_RESULTS_MAX) {
            sfl_http_reply_error(req, 400, "limit: expected an integer from 1 to %d",
                                 SFL_RECENT_RESULTS_MAX);
            evhttp_clear_headers(&params);
            return;
        }
    }
    evhttp_clear_headers(&params);
    pending *p = sfl_http_pending_new(h, req);
    if (!p) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    if (sfl_dashboard_results(h->node.app->store, (int)limit, on_dashboard_data, p) < 0) {
        sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
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

/* The same per login, labelled with its account and its id. */
static void login_gauge(struct evbuffer *out, cJSON *list, const char *name, const char *help,
                        const char *field)
{
    sfl_metrics_family(out, name, "gauge", help);
    cJSON *a, *l;
    cJSON_ArrayForEach(a, list)
    {
        cJSON_ArrayForEach(l, cJSON_GetObjectItem(a, "logins"))
        {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(l, "id"));
            const cJSON *v = cJSON_GetObjectItem(l, field);
            if (!id || !(cJSON_IsNumber(v) || cJSON_IsBool(v)))
                continue;
            char labels[160];
            snprintf(labels, sizeof(labels), "account=\"%.0f\",login=\"%s\"",
                     cJSON_GetObjectItem(a, "id")->valuedouble, id);
            sfl_metrics_sample(out, name, labels,
                               cJSON_IsBool(v) ? cJSON_IsTrue(v) : v->valuedouble);
        }
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
            login_gauge(out, list, "sfl_login_limit",
                        "max_streams of a provider login of the account (0 = unlimited)",
                        "max_streams");
            login_gauge(out, list, "sfl_login_effective_limit",
                        "the limit grants go by: max_streams capped by the panel's "
                        "max_connections and by what refusals taught (0 = unlimited)",
                        "effective_limit");
            login_gauge(out, list, "sfl_login_in_use",
                        "leases of the login held now, all nodes and accounts", "in_use");
            login_gauge(out, list, "sfl_login_external",
                        "connections others hold on the login (viewers), as its source last "
                        "saw them",
                        "external");
            login_gauge(out, list, "sfl_login_stale",
                        "1 while the login's others' figure is older than its max_age_ms: no "
                        "new grants",
                        "stale");
        }
        if (p->queue_depth >= 0) {
            sfl_metrics_family(out, "sfl_queue_depth", "gauge",
                               "shared queue entries not yet delivered to any node");
            sfl_metrics_sample(out, "sfl_queue_depth", "", (double)p->queue_depth);
            sfl_metrics_family(out, "sfl_queue_pending", "gauge",
                               "shared queue entries delivered and not yet acknowledged");
            sfl_metrics_sample(out, "sfl_queue_pending", "", (double)p->queue_pending);
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
    sfl_http_pending_free(p);
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
        p->queue_depth = depth;
        p->queue_pending = pend;
    }
    metrics_finish(p);
}

void sfl_http_route_metrics(sfl_http *h, struct evhttp_request *req)
{
    pending *p = sfl_http_pending_new(h, req);
    if (!p || !(p->text = evbuffer_new())) {
        if (p)
            sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    p->queue_depth = -1;
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
