/* fake_dispatcharr.c - a stand-in for Dispatcharr's REST API, for tests.
 *
 * It serves the routes sfl uses, with the shapes and the behaviour of
 * Dispatcharr (DISPATCHARR.md), and counts what it was asked so that tests
 * can assert on the client's manners rather than only on its results:
 *
 *   POST /api/accounts/token/          {"username","password"} -> {"access","refresh"}
 *                                      throttled: --login-limit a minute (3), then 429
 *   POST /api/accounts/token/refresh/  {"refresh"} -> {"access"}
 *   GET  /api/m3u/accounts/            the --accounts file, as-is, to a valid
 *                                      "Authorization: Bearer <access>", or the
 *                                      --api-key as "X-API-Key: K" or
 *                                      "Authorization: ApiKey K"; else 401
 *   GET  /proxy/ts/status              the live channels of Dispatcharr's proxy:
 *                                      {"channels": [...], "count": N}
 *   GET  /proxy/stats/                 {"live": [...], "vod": [...],
 *                                      "catchup": [...], "timestamp": T}
 *
 * The two viewer routes are authenticated exactly as the account list is
 * (the same credentials, the same 401s, --mode unauthorized too). What they
 * answer is the --viewers file, read again on every request so that a test
 * makes viewers come and go by replacing it (write a temporary file, rename
 * it over): a JSON object
 *
 *   {"ts_status": <the whole /proxy/ts/status answer>,
 *    "stats": <the whole /proxy/stats/ answer>,
 *    "ts_status_code": N, "stats_code": N}
 *
 * where every member is optional. A missing answer (or file, or no
 * --viewers at all) is the empty one: {"channels": [], "count": 0} and
 * {"live": [], "vod": [], "catchup": [], "timestamp": 0}. An answer given as
 * a JSON string is sent as its bytes, unparsed (a malformed answer); a
 * *_code member (100-599) is the HTTP status to send instead of 200, with
 * the same body. A file that is not a JSON object gets 500 on both routes. The
 * fixture serves what it is given, checking nothing of its shape: the test
 * describes what Dispatcharr knows (each channel its "m3u_profile_id",
 * "url" with the provider's credentials, "client_count", "clients"...).
 *
 * and for the tests themselves:
 *
 *   GET  /fixture/stats   {"logins", "logins_ok", "throttled", "refreshes",
 *                          "accounts_gets", "unauthorized", "connections",
 *                          "dropped", "ts_status_gets", "stats_gets"}
 *   POST /fixture/expire  every access token expires now (the refresh path)
 *   POST /fixture/reload  reads the --accounts file again (a limit changed)
 *
 * Access tokens expire after --token-ttl-s (1800, Dispatcharr's 30 min),
 * refresh tokens after --refresh-ttl-s (86400); an expired or unknown token
 * gets 401 as SimpleJWT answers it. Every login attempt counts against the
 * throttle, as DRF's throttle counts requests, not successes.
 *
 * --mode changes what GET /api/m3u/accounts/ does once authenticated:
 * ok (the file), unauthorized (401 whatever the credentials, on the viewer
 * routes too), malformed (the first half of the file: not valid JSON),
 * not-array (the file wrapped in a paginated object), slow (the answer after
 * --slow-ms, default 60000).
 *
 * How it treats connections, for clients that must survive servers that
 * close them (every route, the fixture ones too):
 *
 *   --connection keep-alive  HTTP/1.1, persistent connections (the default)
 *   --connection close       HTTP/1.1 answers with "Connection: close", and
 *                            the connection closed after each
 *   --connection http10      an HTTP/1.0 server: the status line says
 *                            HTTP/1.0, no Content-Length (the body ends
 *                            where the connection does), one answer per
 *                            connection, whatever the client asked for
 *   --idle-close-ms N        a connection that has sent no request for N ms
 *                            is closed, as a proxy in front of Dispatcharr
 *                            does with idle keep-alive connections
 *   --tls CERT,KEY           https: TLS (libevent_openssl) with that PEM
 *                            certificate chain and key
 *   --drop-logins N, --drop-refreshes N, --drop-gets N
 *                            the first N login requests (token refreshes,
 *                            account list GETs) are counted, then their
 *                            connection is closed without an answer
 *
 * "connections" counts the connections API requests came on (the
 * /fixture/ routes are left out: a test asking for the stats must not
 * change them). "ts_status_gets" and "stats_gets" count every request of
 * their route, authorized or not, as "accounts_gets" does.
 *
 * Dispatcharr unreachable: the harness stops this process (SIGSTOP) and
 * continues it (SIGCONT). Stopped, it answers nothing: connections are
 * still accepted by the kernel's backlog and then hang, as with a host
 * that is gone behind a proxy; continued, it answers what it was sent
 * meanwhile. Nothing here needs to know.
 *
 * It never prints anything beyond the listening line: tests read its
 * stderr. Every evhttp handler ends in exactly one evhttp_send_reply or
 * evhttp_send_error; slow answers are sent from a timer, and evhttp frees a
 * request whose client left in the meantime when it is answered. */
#include "clock.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the answer's HTTP version, for --connection http10 */
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*--- Data types -------------------------------------------------------------*/

typedef enum { MODE_OK, MODE_UNAUTHORIZED, MODE_MALFORMED, MODE_SLOW, MODE_NOT_ARRAY } fd_mode;

typedef enum { CONN_KEEP_ALIVE, CONN_CLOSE, CONN_HTTP10 } fd_conn;

typedef struct fd_token {
    char value[40];
    int refresh; /* 0 = access token */
    int64_t expires_ms;
} fd_token;

typedef struct fd_slow {
    struct fd_server *srv;
    struct evhttp_request *req;
    struct event *timer;
    struct fd_slow *next;
} fd_slow;

typedef struct fd_server {
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint, *sigterm;
    SSL_CTX *tls; /* --tls, else NULL */
    const char *username, *password, *api_key;
    const char *accounts_path;
    const char *viewers_path; /* NULL: the viewer routes answer empty */
    char *accounts;           /* the file's bytes */
    size_t accounts_len;
    fd_mode mode;
    fd_conn conn;
    long token_ttl_s, refresh_ttl_s, slow_ms, login_limit, idle_close_ms;
    long drop_logins, drop_refreshes, drop_gets;
    struct evhttp_connection **live; /* connections seen and not closed yet */
    size_t nlive, caplive;
    fd_token *tokens;
    size_t ntokens, captokens;
    int64_t *login_times; /* the last login_limit attempts, for the throttle */
    size_t nlogin_times;
    fd_slow *slow;
    long logins, logins_ok, throttled, refreshes, accounts_gets, unauthorized;
    long connections, dropped, ts_status_gets, stats_gets;
} fd_server;

/*--- Replies ----------------------------------------------------------------*/

static void reply_json(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (out)
        evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, code, reason, out);
    if (out)
        evbuffer_free(out);
}

static void reply_raw(struct evhttp_request *req, const char *body, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (out)
        evbuffer_add(out, body, len);
    evhttp_send_reply(req, 200, "OK", out);
    if (out)
        evbuffer_free(out);
}

static void reply_unauthorized(struct evhttp_request *req, const char *detail, int token)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"detail\": \"%s\"%s}", detail,
             token ? ", \"code\": \"token_not_valid\"" : "");
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"api\"");
    reply_json(req, 401, "Unauthorized", body);
}

/*--- Tokens -----------------------------------------------------------------*/

static const fd_token *token_issue(fd_server *srv, int refresh)
{
    if (srv->ntokens == srv->captokens) {
        size_t cap = srv->captokens ? srv->captokens * 2 : 16;
        fd_token *t = realloc(srv->tokens, cap * sizeof(*t));
        if (!t)
            return NULL;
        srv->tokens = t;
        srv->captokens = cap;
    }
    fd_token *t = &srv->tokens[srv->ntokens++];
    snprintf(t->value, sizeof(t->value), "%s.%016" PRIx64, refresh ? "rfr" : "acc", sfl_random64());
    t->refresh = refresh;
    t->expires_ms = sfl_mono_ms() + (refresh ? srv->refresh_ttl_s : srv->token_ttl_s) * 1000;
    return t;
}

/* 1 valid, 0 unknown, -1 expired. */
static int token_check(const fd_server *srv, const char *value, int refresh)
{
    for (size_t i = 0; value && i < srv->ntokens; i++)
        if (srv->tokens[i].refresh == refresh && strcmp(srv->tokens[i].value, value) == 0)
            return srv->tokens[i].expires_ms > sfl_mono_ms() ? 1 : -1;
    return 0;
}

/* The JSON body of a POST; NULL when it is not a JSON object. */
static cJSON *request_json(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    cJSON *doc = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, -1), n);
    if (doc && !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    return doc;
}

static const char *json_str(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*--- Connections -------------------------------------------------------------*/

static void on_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    fd_server *srv = arg;
    for (size_t i = 0; i < srv->nlive; i++) {
        if (srv->live[i] == evcon) {
            srv->live[i] = srv->live[--srv->nlive];
            return;
        }
    }
}

/* Counts the request's connection the first time a request comes on it. */
static void conn_seen(fd_server *srv, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    for (size_t i = 0; evcon && i < srv->nlive; i++)
        if (srv->live[i] == evcon)
            return;
    srv->connections++;
    if (!evcon)
        return;
    if (srv->nlive == srv->caplive) {
        size_t cap = srv->caplive ? srv->caplive * 2 : 16;
        struct evhttp_connection **l = realloc(srv->live, cap * sizeof(*l));
        if (!l)
            return;
        srv->live = l;
        srv->caplive = cap;
    }
    srv->live[srv->nlive++] = evcon;
    evhttp_connection_set_closecb(evcon, on_conn_closed, srv);
}

/* Shapes the answer's connection handling as --connection says. */
static void conn_prepare(const fd_server *srv, struct evhttp_request *req)
{
    if (srv->conn == CONN_CLOSE) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    } else if (srv->conn == CONN_HTTP10) {
        /* evhttp answers in the request's version: an HTTP/1.0 request
         * without keep-alive gets "HTTP/1.0", no Content-Length, and its
         * connection closed once the answer is written. */
        evhttp_remove_header(evhttp_request_get_input_headers(req), "Connection");
        req->major = 1;
        req->minor = 0;
    }
}

/* Closes the request's connection without an answer: the client reads EOF
 * where the status line should be. The reply that follows fails to be
 * written, and evhttp frees the connection and the request. */
static void drop_connection(fd_server *srv, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    srv->dropped++;
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    evhttp_send_error(req, 500, "dropped");
}

/* 1 when the request carries valid credentials: a live access token as
 * "Authorization: Bearer T", or the API key as "X-API-Key: K" or
 * "Authorization: ApiKey K". Otherwise answers 401 as DRF does and returns
 * 0: the caller must not answer again. --mode unauthorized refuses all. */
static int authorized(fd_server *srv, struct evhttp_request *req)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(h, "Authorization");
    const char *key = evhttp_find_header(h, "X-API-Key");
    int ok = 0;
    if (srv->mode == MODE_UNAUTHORIZED) {
        ok = 0;
    } else if (srv->api_key && key) {
        ok = strcmp(key, srv->api_key) == 0;
    } else if (auth && strncmp(auth, "ApiKey ", 7) == 0) {
        ok = srv->api_key && strcmp(auth + 7, srv->api_key) == 0;
    } else if (auth && strncmp(auth, "Bearer ", 7) == 0) {
        ok = token_check(srv, auth + 7, 0) == 1;
    }
    if (ok)
        return 1;
    srv->unauthorized++;
    if (!auth && !key)
        reply_unauthorized(req, "Authentication credentials were not provided.", 0);
    else
        reply_unauthorized(req, "Given token not valid for any token type", 1);
    return 0;
}

/*--- Routes -----------------------------------------------------------------*/

static void on_login(fd_server *srv, struct evhttp_request *req)
{
    srv->logins++;
    if (srv->drop_logins > 0) {
        srv->drop_logins--;
        drop_connection(srv, req);
        return;
    }
    int64_t now = sfl_mono_ms();
    size_t recent = 0;
    for (size_t i = 0; i < srv->nlogin_times; i++)
        if (now - srv->login_times[i] < 60000)
            srv->login_times[recent++] = srv->login_times[i];
    srv->nlogin_times = recent;
    if ((long)recent >= srv->login_limit) {
        srv->throttled++;
        long wait_s = (long)((60000 - (now - srv->login_times[0]) + 999) / 1000);
        char ra[24], body[128];
        snprintf(ra, sizeof(ra), "%ld", wait_s);
        snprintf(body, sizeof(body),
                 "{\"detail\": \"Request was throttled. Expected available in %ld seconds.\"}",
                 wait_s);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
        reply_json(req, 429, "Too Many Requests", body);
        return;
    }
    srv->login_times[srv->nlogin_times++] = now;
    cJSON *doc = request_json(req);
    const char *user = json_str(doc, "username"), *pass = json_str(doc, "password");
    if (!user || !pass) {
        reply_json(req, 400, "Bad Request",
                   "{\"username\": [\"This field is required.\"], "
                   "\"password\": [\"This field is required.\"]}");
    } else if (!srv->username || !srv->password || strcmp(user, srv->username) != 0 ||
               strcmp(pass, srv->password) != 0) {
        reply_unauthorized(req, "No active account found with the given credentials", 0);
    } else {
        const fd_token *a = token_issue(srv, 0);
        char access[40];
        snprintf(access, sizeof(access), "%s", a ? a->value : "");
        const fd_token *r = a ? token_issue(srv, 1) : NULL;
        if (!r) {
            evhttp_send_error(req, 500, "out of memory");
        } else {
            char body[160];
            snprintf(body, sizeof(body), "{\"access\": \"%s\", \"refresh\": \"%s\"}", access,
                     r->value);
            srv->logins_ok++;
            reply_json(req, 200, "OK", body);
        }
    }
    cJSON_Delete(doc);
}

static void on_refresh(fd_server *srv, struct evhttp_request *req)
{
    srv->refreshes++;
    if (srv->drop_refreshes > 0) {
        srv->drop_refreshes--;
        drop_connection(srv, req);
        return;
    }
    cJSON *doc = request_json(req);
    const char *refresh = json_str(doc, "refresh");
    if (!refresh) {
        reply_json(req, 400, "Bad Request", "{\"refresh\": [\"This field is required.\"]}");
    } else if (token_check(srv, refresh, 1) != 1) {
        reply_unauthorized(req, "Token is invalid or expired", 1);
    } else {
        const fd_token *a = token_issue(srv, 0);
        char body[96];
        snprintf(body, sizeof(body), "{\"access\": \"%s\"}", a ? a->value : "");
        if (a)
            reply_json(req, 200, "OK", body);
        else
            evhttp_send_error(req, 500, "out of memory");
    }
    cJSON_Delete(doc);
}

static void send_accounts(fd_server *srv, struct evhttp_request *req)
{
    if (srv->mode == MODE_MALFORMED) {
        reply_raw(req, srv->accounts, srv->accounts_len / 2);
    } else if (srv->mode == MODE_NOT_ARRAY) {
        struct evbuffer *out = evbuffer_new();
        if (out)
            evbuffer_add_printf(out,
                                "{\"count\": 1, \"next\": null, \"previous\": null, "
                                "\"results\": %.*s}",
                                (int)srv->accounts_len, srv->accounts);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, 200, "OK", out);
        if (out)
            evbuffer_free(out);
    } else {
        reply_raw(req, srv->accounts, srv->accounts_len);
    }
}

static void slow_free(fd_slow *s)
{
    fd_slow **pp = &s->srv->slow;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    event_free(s->timer);
    free(s);
}

static void on_slow_timer(evutil_socket_t fd, short what, void *arg)
{
    fd_slow *s = arg;
    UNUSED(fd);
    UNUSED(what);
    fd_server *srv = s->srv;
    struct evhttp_request *req = s->req;
    slow_free(s);
    srv->mode = MODE_OK; /* only the content is slow, not its shape */
    send_accounts(srv, req);
    srv->mode = MODE_SLOW;
}

static void on_accounts(fd_server *srv, struct evhttp_request *req)
{
    srv->accounts_gets++;
    if (srv->drop_gets > 0) {
        srv->drop_gets--;
        drop_connection(srv, req);
        return;
    }
    if (!authorized(srv, req))
        return;
    if (srv->mode != MODE_SLOW) {
        send_accounts(srv, req);
        return;
    }
    fd_slow *s = calloc(1, sizeof(*s));
    if (!s || !(s->timer = evtimer_new(srv->base, on_slow_timer, s))) {
        free(s);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    s->srv = srv;
    s->req = req;
    s->next = srv->slow;
    srv->slow = s;
    struct timeval tv = {srv->slow_ms / 1000, (srv->slow_ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/*--- Viewers ----------------------------------------------------------------*/

static char *read_all(const char *path, size_t *len);

typedef enum { VIEW_TS_STATUS, VIEW_STATS } fd_view;

static const struct {
    const char *member, *code_member, *empty;
} views[] = {
    [VIEW_TS_STATUS] = {"ts_status", "ts_status_code", "{\"channels\": [], \"count\": 0}"},
    [VIEW_STATS] = {"stats", "stats_code",
                    "{\"live\": [], \"vod\": [], \"catchup\": [], \"timestamp\": 0}"},
};

/* Answers one viewer route from the --viewers file as it is now. */
static void send_viewers(fd_server *srv, struct evhttp_request *req, fd_view which)
{
    size_t len = 0;
    char *text = srv->viewers_path ? read_all(srv->viewers_path, &len) : NULL;
    if (!text && srv->viewers_path && errno != ENOENT) {
        reply_json(req, 500, "Internal Server Error",
                   "{\"detail\": \"fixture: cannot read the viewers file\"}");
        return;
    }
    int have_file = text != NULL;
    cJSON *doc = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    if (have_file && !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        reply_json(req, 500, "Internal Server Error",
                   "{\"detail\": \"fixture: the viewers file is not a JSON object\"}");
        return;
    }
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(doc, views[which].member);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(doc, views[which].code_member);
    int status = 200;
    if (cJSON_IsNumber(code) && code->valuedouble >= 100 && code->valuedouble <= 599)
        status = (int)code->valuedouble;
    char *printed = NULL;
    const char *body = views[which].empty;
    if (cJSON_IsString(answer))
        body = answer->valuestring;
    else if (answer && !(body = printed = cJSON_PrintUnformatted(answer)))
        body = views[which].empty;
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (out)
        evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, status, NULL, out); /* NULL: evhttp's reason phrase */
    if (out)
        evbuffer_free(out);
    cJSON_free(printed);
    cJSON_Delete(doc);
}

static void on_ts_status(fd_server *srv, struct evhttp_request *req)
{
    srv->ts_status_gets++;
    if (authorized(srv, req))
        send_viewers(srv, req, VIEW_TS_STATUS);
}

static void on_proxy_stats(fd_server *srv, struct evhttp_request *req)
{
    srv->stats_gets++;
    if (authorized(srv, req))
        send_viewers(srv, req, VIEW_STATS);
}

/*--- Fixture routes ---------------------------------------------------------*/

static void on_stats(fd_server *srv, struct evhttp_request *req)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"logins\": %ld, \"logins_ok\": %ld, \"throttled\": %ld, \"refreshes\": %ld, "
             "\"accounts_gets\": %ld, \"unauthorized\": %ld, \"connections\": %ld, "
             "\"dropped\": %ld, \"ts_status_gets\": %ld, \"stats_gets\": %ld}",
             srv->logins, srv->logins_ok, srv->throttled, srv->refreshes, srv->accounts_gets,
             srv->unauthorized, srv->connections, srv->dropped, srv->ts_status_gets,
             srv->stats_gets);
    reply_json(req, 200, "OK", body);
}

static void on_expire(fd_server *srv, struct evhttp_request *req)
{
    int64_t now = sfl_mono_ms();
    for (size_t i = 0; i < srv->ntokens; i++)
        if (!srv->tokens[i].refresh)
            srv->tokens[i].expires_ms = now;
    reply_json(req, 200, "OK", "{}");
}

static void on_reload(fd_server *srv, struct evhttp_request *req)
{
    size_t len;
    char *text = read_all(srv->accounts_path, &len);
    if (!text) {
        reply_json(req, 500, "Internal Server Error", "{\"detail\": \"cannot read the file\"}");
        return;
    }
    free(srv->accounts);
    srv->accounts = text;
    srv->accounts_len = len;
    reply_json(req, 200, "OK", "{}");
}

static void on_request(struct evhttp_request *req, void *arg)
{
    fd_server *srv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path && strncmp(path, "/fixture/", 9) != 0)
        conn_seen(srv, req);
    conn_prepare(srv, req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    static const struct {
        const char *path;
        enum evhttp_cmd_type method;
        void (*fn)(fd_server *, struct evhttp_request *);
    } routes[] = {
        {"/api/accounts/token/", EVHTTP_REQ_POST, on_login},
        {"/api/accounts/token/refresh/", EVHTTP_REQ_POST, on_refresh},
        {"/api/m3u/accounts/", EVHTTP_REQ_GET, on_accounts},
        {"/proxy/ts/status", EVHTTP_REQ_GET, on_ts_status},
        {"/proxy/stats/", EVHTTP_REQ_GET, on_proxy_stats},
        {"/fixture/stats", EVHTTP_REQ_GET, on_stats},
        {"/fixture/expire", EVHTTP_REQ_POST, on_expire},
        {"/fixture/reload", EVHTTP_REQ_POST, on_reload},
    };
    for (size_t i = 0; path && i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (m != routes[i].method) {
            reply_json(req, 405, "Method Not Allowed", "{\"detail\": \"Method not allowed.\"}");
            return;
        }
        routes[i].fn(srv, req);
        return;
    }
    reply_json(req, 404, "Not Found", "{\"detail\": \"Not found.\"}");
}

/*--- Server -----------------------------------------------------------------*/

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    fd_server *srv = arg;
    UNUSED(sig);
    UNUSED(what);
    event_base_loopbreak(srv->base);
}

static int write_port_file(const char *path, int port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void server_free(fd_server *srv)
{
    while (srv->slow)
        slow_free(srv->slow); /* their requests go with evhttp_free */
    srv->nlive = 0;           /* evhttp_free closes them */
    if (srv->http)
        evhttp_free(srv->http);
    if (srv->sigint)
        event_free(srv->sigint);
    if (srv->sigterm)
        event_free(srv->sigterm);
    if (srv->base)
        event_base_free(srv->base);
    SSL_CTX_free(srv->tls);
    free(srv->tokens);
    free(srv->live);
    free(srv->login_times);
    free(srv->accounts);
}

/* --tls: every accepted connection speaks TLS, with an SSL object of its own. */
static struct bufferevent *on_tls_bev(struct event_base *base, void *arg)
{
    fd_server *srv = arg;
    SSL *ssl = SSL_new(srv->tls);
    struct bufferevent *bev =
        ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (!bev)
        SSL_free(ssl);
    return bev;
}

/* "CERT,KEY" into srv->tls. 0, or -1 (said on stderr). */
static int tls_setup(fd_server *srv, const char *arg)
{
    char cert[512];
    const char *comma = strchr(arg, ',');
    if (!comma || (size_t)(comma - arg) >= sizeof(cert)) {
        fprintf(stderr, "bad --tls %s (want CERT,KEY)\n", arg);
        return -1;
    }
    snprintf(cert, sizeof(cert), "%.*s", (int)(comma - arg), arg);
    SSL_CTX_free(srv->tls);
    srv->tls = SSL_CTX_new(TLS_server_method());
    if (!srv->tls || SSL_CTX_use_certificate_chain_file(srv->tls, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(srv->tls, comma + 1, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "--tls: cannot load %s and %s\n", cert, comma + 1);
        return -1;
    }
    return 0;
}

static int server_start(fd_server *srv, const char *host, int port, const char *port_file)
{
    srv->base = event_base_new();
    if (!srv->base || !(srv->http = evhttp_new(srv->base)))
        return -1;
    srv->sigint = evsignal_new(srv->base, SIGINT, on_signal, srv);
    srv->sigterm = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    if (!srv->sigint || !srv->sigterm || event_add(srv->sigint, NULL) != 0 ||
        event_add(srv->sigterm, NULL) != 0)
        return -1;
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, on_request, srv);
    if (srv->tls)
        evhttp_set_bevcb(srv->http, on_tls_bev, srv);
    if (srv->idle_close_ms > 0) {
        /* evhttp's read timeout of a server connection runs while it waits
         * for the next request: an idle keep-alive connection is closed. */
        struct timeval tv = {srv->idle_close_ms / 1000, (srv->idle_close_ms % 1000) * 1000};
        evhttp_set_timeout_tv(srv->http, &tv);
    }
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!bound) {
        fprintf(stderr, "cannot listen on %s:%d\n", host, port);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) != 0)
        return -1;
    port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (port_file && write_port_file(port_file, port) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", port_file, strerror(errno));
        return -1;
    }
    fprintf(stderr, "listening on %s:%d\n", host, port);
    return 0;
}

/*--- Command line -------------------------------------------------------------*/

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sfl-fake-dispatcharr --accounts FILE [--port-file FILE] [--listen HOST:PORT]\n"
            "           [--username U --password P] [--api-key K] [--viewers FILE]\n"
            "           [--mode ok|unauthorized|malformed|slow|not-array] [--slow-ms N]\n"
            "           [--token-ttl-s N] [--refresh-ttl-s N] [--login-limit N]\n"
            "           [--connection keep-alive|close|http10] [--idle-close-ms N]\n"
            "           [--drop-logins N] [--drop-refreshes N] [--drop-gets N]\n"
            "           [--tls CERT,KEY]\n"
            "routes: POST /api/accounts/token/, POST /api/accounts/token/refresh/,\n"
            "        GET /api/m3u/accounts/, GET /proxy/ts/status, GET /proxy/stats/,\n"
            "        GET /fixture/stats, POST /fixture/expire, POST /fixture/reload\n"
            "--viewers: {\"ts_status\": {...}, \"stats\": {...}}, read on every request\n");
}

static long parse_num(const char *s, long max)
{
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < 0 || n > max)
        return -1;
    return n;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            char *b = realloc(buf, cap = cap * 2 + 8192);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    enum {
        OPT_LISTEN = 1,
        OPT_PORT_FILE,
        OPT_USER,
        OPT_PASS,
        OPT_KEY,
        OPT_ACCOUNTS,
        OPT_VIEWERS,
        OPT_MODE,
        OPT_TTL,
        OPT_RTTL,
        OPT_SLOW,
        OPT_LIMIT,
        OPT_CONN,
        OPT_IDLE,
        OPT_DROP_LOGINS,
        OPT_DROP_REFRESHES,
        OPT_DROP_GETS,
        OPT_TLS,
        OPT_HELP
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"username", required_argument, NULL, OPT_USER},
        {"password", required_argument, NULL, OPT_PASS},
        {"api-key", required_argument, NULL, OPT_KEY},
        {"accounts", required_argument, NULL, OPT_ACCOUNTS},
        {"viewers", required_argument, NULL, OPT_VIEWERS},
        {"mode", required_argument, NULL, OPT_MODE},
        {"token-ttl-s", required_argument, NULL, OPT_TTL},
        {"refresh-ttl-s", required_argument, NULL, OPT_RTTL},
        {"slow-ms", required_argument, NULL, OPT_SLOW},
        {"login-limit", required_argument, NULL, OPT_LIMIT},
        {"connection", required_argument, NULL, OPT_CONN},
        {"idle-close-ms", required_argument, NULL, OPT_IDLE},
        {"drop-logins", required_argument, NULL, OPT_DROP_LOGINS},
        {"drop-refreshes", required_argument, NULL, OPT_DROP_REFRESHES},
        {"drop-gets", required_argument, NULL, OPT_DROP_GETS},
        {"tls", required_argument, NULL, OPT_TLS},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    static const char *const modes[] = {"ok", "unauthorized", "malformed", "slow", "not-array"};
    static const char *const conns[] = {"keep-alive", "close", "http10"};
    fd_server srv = {
        .token_ttl_s = 1800, .refresh_ttl_s = 86400, .slow_ms = 60000, .login_limit = 3};
    char host[128] = "127.0.0.1";
    int port = 0, rc = 2, opt;
    const char *port_file = NULL, *accounts = NULL;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN: {
            const char *colon = strrchr(optarg, ':');
            long p = colon ? parse_num(colon + 1, 65535) : -1;
            if (p < 0 || colon == optarg || (size_t)(colon - optarg) >= sizeof(host)) {
                fprintf(stderr, "bad --listen %s (want HOST:PORT)\n", optarg);
                goto done;
            }
            snprintf(host, sizeof(host), "%.*s", (int)(colon - optarg), optarg);
            port = (int)p;
            break;
        }
        case OPT_PORT_FILE:
            port_file = optarg;
            break;
        case OPT_USER:
            srv.username = optarg;
            break;
        case OPT_PASS:
            srv.password = optarg;
            break;
        case OPT_KEY:
            srv.api_key = optarg;
            break;
        case OPT_ACCOUNTS:
            accounts = optarg;
            break;
        case OPT_VIEWERS:
            srv.viewers_path = optarg;
            break;
        case OPT_MODE: {
            size_t i = 0;
            while (i < sizeof(modes) / sizeof(modes[0]) && strcmp(optarg, modes[i]) != 0)
                i++;
            if (i == sizeof(modes) / sizeof(modes[0])) {
                fprintf(stderr, "bad --mode %s\n", optarg);
                goto done;
            }
            srv.mode = (fd_mode)i;
            break;
        }
        case OPT_CONN: {
            size_t i = 0;
            while (i < sizeof(conns) / sizeof(conns[0]) && strcmp(optarg, conns[i]) != 0)
                i++;
            if (i == sizeof(conns) / sizeof(conns[0])) {
                fprintf(stderr, "bad --connection %s\n", optarg);
                goto done;
            }
            srv.conn = (fd_conn)i;
            break;
        }
        case OPT_TTL:
        case OPT_RTTL:
        case OPT_SLOW:
        case OPT_LIMIT:
        case OPT_IDLE:
        case OPT_DROP_LOGINS:
        case OPT_DROP_REFRESHES:
        case OPT_DROP_GETS: {
            long v = parse_num(optarg, INT_MAX / 1000);
            if (v < 0 || (opt == OPT_LIMIT && v == 0)) {
                fprintf(stderr, "bad number %s\n", optarg);
                goto done;
            }
            *(opt == OPT_TTL              ? &srv.token_ttl_s
              : opt == OPT_RTTL           ? &srv.refresh_ttl_s
              : opt == OPT_SLOW           ? &srv.slow_ms
              : opt == OPT_IDLE           ? &srv.idle_close_ms
              : opt == OPT_DROP_LOGINS    ? &srv.drop_logins
              : opt == OPT_DROP_REFRESHES ? &srv.drop_refreshes
              : opt == OPT_DROP_GETS      ? &srv.drop_gets
                                          : &srv.login_limit) = v;
            break;
        }
        case OPT_TLS:
            if (tls_setup(&srv, optarg) < 0)
                goto done;
            break;
        case OPT_HELP:
            usage(stdout);
            rc = 0;
            goto done;
        default:
            usage(stderr);
            goto done;
        }
    }
    if (!accounts || optind != argc) {
        usage(stderr);
        goto done;
    }
    srv.accounts_path = accounts;
    if (!(srv.accounts = read_all(accounts, &srv.accounts_len))) {
        fprintf(stderr, "cannot read %s: %s\n", accounts, strerror(errno));
        goto done;
    }
    if (!(srv.login_times = calloc((size_t)srv.login_limit, sizeof(*srv.login_times))))
        goto done;
    signal(SIGPIPE, SIG_IGN);
    rc = 1;
    if (server_start(&srv, host, port, port_file) < 0)
        goto done;
    event_base_dispatch(srv.base);
    rc = 0;
done:
    server_free(&srv);
    return rc;
}
