/* http_api.c - the node's HTTP server (DESIGN §7): replies, requests kept
 * while Redis answers, auth, the router and the server's lifecycle. What
 * each route does is http_routes.c's (with two read-only routes for the
 * dashboard: GET /v1/nodes and GET /v1/results) and http_history.c's
 * (GET /v1/history, GET /v1/streams/{id}/history); they share
 * http_api_int.h.
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
#include "http_api_int.h"

#include "addr.h"
#include "app.h"
#include "conf.h"
#include "dashboard.h"
#include "http_conns.h"
#include "log.h"
#include "sidecar.h"
#include "text.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

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
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Every answer is valid UTF-8, whatever its strings came from (a request
 * path, a name written into Redis by hand, a stored result): cJSON copies
 * bytes >= 0x80 as they are, so those that are not UTF-8 become U+FFFD. */
void sfl_http_reply_json(struct evhttp_request *req, int code, cJSON *doc)
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

void sfl_http_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void sfl_http_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sfl_redact(msg);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", msg);
    sfl_http_reply_json(req, code, doc);
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

pending *sfl_http_pending_new(sfl_http *h, struct evhttp_request *req)
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
void sfl_http_pending_free(pending *p)
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
char *sfl_http_body_text(struct evhttp_request *req, size_t *len)
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
        sfl_http_reply_error(req, 400, "bad request line");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
            sfl_http_reply_error(req, 405, "GET /healthz");
            return;
        }
        cJSON *doc = cJSON_CreateObject();
        int ok = h->node.health(doc, h->node.arg);
        sfl_http_reply_json(req, ok ? 200 : 503, doc);
        cJSON_Delete(doc);
        return;
    }
    /* The page holds no data (its calls carry the token), so a browser can load it. */
    if (strcmp(path, "/") != 0 && !authorized(h, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        sfl_http_reply_error(req, 401, "missing or wrong bearer token");
        return;
    }
    if (strcmp(path, "/") == 0) {
        if (m != EVHTTP_REQ_GET) {
            sfl_http_reply_error(req, 405, "GET /");
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
            sfl_http_reply_error(req, 405, "GET /metrics");
        else
            sfl_http_route_metrics(h, req);
    } else if (strcmp(path, "/v1/accounts") == 0) {
        if (m != EVHTTP_REQ_GET)
            sfl_http_reply_error(req, 405, "GET /v1/accounts");
        else
            sfl_http_route_accounts(h, req);
    } else if (match(path, "/v1/accounts/", NULL, &seg, &n)) {
        long long id;
        if (m != EVHTTP_REQ_PUT)
            sfl_http_reply_error(req, 405, "PUT /v1/accounts/{id}");
        else if (sfl_http_parse_id(seg, n, &id) < 0)
            sfl_http_reply_error(req, 400,
                                 "account id: expected an integer from 0 to 999999999999999");
        else
            sfl_http_route_put_account(h, req, id);
    } else if (strcmp(path, "/v1/nodes") == 0) {
        if (m != EVHTTP_REQ_GET)
            sfl_http_reply_error(req, 405, "GET /v1/nodes");
        else
            sfl_http_route_nodes(h, req);
    } else if (strcmp(path, "/v1/results") == 0) {
        if (m != EVHTTP_REQ_GET)
            sfl_http_reply_error(req, 405, "GET /v1/results");
        else
            sfl_http_route_results(h, req);
    } else if (strcmp(path, "/v1/history") == 0) {
        if (m != EVHTTP_REQ_GET)
            sfl_http_reply_error(req, 405, "GET /v1/history");
        else
            sfl_http_route_history(h, req);
    } else if (match(path, "/v1/streams/", "/history", &seg, &n)) {
        if (m != EVHTTP_REQ_GET)
            sfl_http_reply_error(req, 405, "GET /v1/streams/{id}/history");
        else
            sfl_http_route_stream_history(h, req, seg, n);
    } else if (strcmp(path, "/v1/checks") == 0) {
        if (m != EVHTTP_REQ_POST)
            sfl_http_reply_error(req, 405, "POST /v1/checks");
        else
            sfl_http_route_post_checks(h, req);
    } else if (match(path, "/v1/checks/", NULL, &seg, &n)) {
        if (m != EVHTTP_REQ_GET)
            sfl_http_reply_error(req, 405, "GET /v1/checks/{batch}");
        else
            sfl_http_route_get_batch(h, req, seg, n);
    } else if (strcmp(path, "/v1/leases") == 0) {
        if (m != EVHTTP_REQ_POST)
            sfl_http_reply_error(req, 405, "POST /v1/leases");
        else
            sfl_http_route_post_lease(h, req);
    } else if (match(path, "/v1/leases/", "/renew", &seg, &n)) {
        sfl_http_route_lease(h, req, m, seg, n, 1);
    } else if (match(path, "/v1/leases/", NULL, &seg, &n)) {
        sfl_http_route_lease(h, req, m, seg, n, 0);
    } else {
        sfl_http_reply_error(req, 404, "no route %s", path);
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
        /* Name the variable too: in a container it is the usual way in, and
         * an empty one (compose's ${SFL_HTTP_TOKEN:-}) counts as not set. */
        const char *env = getenv("SFL_HTTP_TOKEN");
        snprintf(err, errlen,
                 "http.listen: %s is not a loopback address and no token is set%s: set "
                 "SFL_HTTP_TOKEN (or http.token) to the API's bearer token, or listen on "
                 "127.0.0.1; refusing to serve leases to the network without a token",
                 listen, env && !*env ? " (SFL_HTTP_TOKEN is empty)" : "");
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
