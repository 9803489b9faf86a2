/* http_api.c - the node's HTTP API.
 *
 * evhttp, one generic callback, a route table. Every handler ends in
 * exactly one reply. When a token is configured, every route but /healthz
 * needs "Authorization: Bearer <token>", compared in constant time. A
 * listen address other than loopback without a token is refused: the API
 * can take and give leases.
 */
#include "http_api.h"

#include "conf.h"
#include "log.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_BODY (1024 * 1024)

struct sfl_http {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    char *token;
    sfl_http_node node;
    int port;
};

static void reply_json(struct evhttp_request *req, int code, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    struct evbuffer *buf = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (text && buf)
        evbuffer_add_printf(buf, "%s\n", text);
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", buf);
    if (buf)
        evbuffer_free(buf);
    free(text);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", msg);
    reply_json(req, code, doc);
    cJSON_Delete(doc);
}

/* Constant-time comparison of the bearer token. */
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

static void route_healthz(sfl_http *h, struct evhttp_request *req)
{
    cJSON *doc = cJSON_CreateObject();
    int ok = h->node.health(doc, h->node.arg);
    reply_json(req, ok ? 200 : 503, doc);
    cJSON_Delete(doc);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sfl_http *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (!path) {
        reply_error(req, 400, "bad request line");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
            reply_error(req, 405, "method not allowed: GET /healthz");
            return;
        }
        route_healthz(h, req);
        return;
    }
    if (!authorized(h, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        reply_error(req, 401, "missing or wrong bearer token");
        return;
    }
    reply_error(req, 404, "no such route");
}

static int is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return 1;
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

sfl_http *sfl_http_new(struct event_base *base, const char *listen, const char *token,
                       const sfl_http_node *node, char *err, size_t errlen, int *usage)
{
    char host[256];
    int port;
    *usage = 0;
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
    h->http = evhttp_new(base);
    if (token && *token)
        h->token = strdup(token);
    if (!h->http || (token && *token && !h->token)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    evhttp_set_max_body_size(h->http, MAX_BODY);
    evhttp_set_max_headers_size(h->http, 16 * 1024);
    evhttp_set_timeout(h->http, 30);
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
    return h;
fail:
    sfl_http_free(h);
    return NULL;
}

void sfl_http_free(sfl_http *h)
{
    if (!h)
        return;
    if (h->http)
        evhttp_free(h->http);
    free(h->token);
    free(h);
}

int sfl_http_port(const sfl_http *h)
{
    return h->port;
}
