/* dispatcharr.c - GETs of Dispatcharr's API (DISPATCHARR.md): the accounts
 * (read by dispatcharr_limits.c, pure), the proxy's viewers (viewers.c).
 *
 *   - one evhttp connection on the caller's loop, kept alive between GETs,
 *     with the access token cached in the client. A GET is a small state
 *     machine of at most four requests (login, the GET, and on a 401 one
 *     refresh and one retry); the login route is throttled to 3 a
 *     minute by Dispatcharr, so it is only used when there is no token or a
 *     refresh was refused. Each request has its own deadline timer, on top of
 *     evhttp's inactivity timeout, so a server that trickles bytes cannot hold
 *     a fetch forever.
 *
 * Servers close connections: an HTTP/1.0 server after every answer, any
 * server after "Connection: close", a proxy when a keep-alive connection
 * sat idle between two syncs. A connection is therefore never reused once
 * it may be closed, and it is replaced before the next request is sent:
 *
 *   - evhttp's close callback marks it (the server closed it while idle, or
 *     a request on it failed);
 *   - an answer that says the server will close marks it: "Connection:
 *     close", or HTTP/1.0 without "Connection: keep-alive" (evhttp 2.1 only
 *     reads the header, so it would keep an HTTP/1.0 connection as idle);
 *   - before an idle connection is reused, its socket is peeked: an EOF the
 *     loop has not read yet (it was busy when the server closed) marks it;
 *   - a login always goes on a new connection.
 *
 * A close can still cross a request on the wire. A GET, and the token
 * refresh, whose connection is closed before any answer began are sent
 * once more on a new connection: the GET changes nothing, and a refresh is
 * not throttled and sent twice only issues a second access token (with
 * refresh-token rotation a second refresh may be refused, which falls back
 * to the one login it would have cost anyway). A login is never sent twice:
 * the server may have counted the first against its throttle, so its
 * failure ends the fetch.
 *
 * It knows nothing of Redis: writing what it fetched is the sync's
 * (dispatcharr_sync.c); it must never include accounts.h or store.h, nor
 * print. It logs its steps at debug level and, as a warning, profiles that
 * share a login but disagree on its max_streams. https:// runs over tls.c
 * (certificates verified), with a new SSL object for every new connection.
 *
 * evhttp callbacks only record what happened and wake the op through an
 * event: every decision, every new request and every user callback runs from
 * a clean stack of our own, never inside libevent's HTTP code. So a user
 * callback may free the client, and the connection is only ever freed from
 * our own code.
 *
 * Credentials (password, access and refresh tokens, API key) are never
 * logged and never put into an error: errors carry host, port, route and
 * status only, and anything taken from a server's answer is scrubbed of
 * every secret the client knows before it is shown.
 */
#include "dispatcharr.h"

#include "dispatcharr_limits.h"

#include "clock.h"
#include "conf.h"
#include "json.h"
#include "log.h"
#include "tls.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the answer's HTTP version: no getter in evhttp 2.1 */
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define ROUTE_TOKEN "/api/accounts/token/"
#define ROUTE_REFRESH "/api/accounts/token/refresh/"
#define ROUTE_ACCOUNTS "/api/m3u/accounts/"
#define DC_MAX_BODY (16u << 20)

/*--- The client: types --------------------------------------------------------*/

typedef enum { STEP_LOGIN, STEP_REFRESH, STEP_GET } dc_step;

typedef struct fetch_op fetch_op;

struct sfl_dispatcharr {
    struct event_base *base;
    struct evdns_base *dns; /* NULL when the host is a literal address */
    struct ssl_ctx_st *tls; /* https://; NULL for http:// */
    char *host;             /* to connect to: no brackets */
    char *host_header;      /* as in the URL, with ":port" when not 80 */
    int port;
    char *prefix; /* the URL's path without trailing '/': "" or "/dispatcharr" */
    char *username, *password, *api_key;
    char *access, *refresh; /* cached tokens, NULL when none */
    int64_t timeout_ms;
    struct evhttp_connection *conn;
    int conn_stale; /* closed, or may be: a new connection for the next request */
    fetch_op *op;   /* the fetch in flight, NULL when idle */
    char errstr[256];
};

struct fetch_op {
    sfl_dispatcharr *dc; /* NULL once detached for delivery */
    sfl_dispatcharr_body_fn *fn;
    void *arg;
    char route[96];                /* of the GET: ROUTE_ACCOUNTS, "/proxy/ts/status", ... */
    char what[104];                /* "GET <route>", for messages */
    sfl_dispatcharr_drop_fn *drop; /* instead of fn when the client is freed first */
    struct event *wake;            /* runs on_wake from a clean stack */
    struct event *deadline;        /* this request's hard deadline */
    struct evhttp_request *req;    /* in flight; owned by evhttp */
    dc_step step;
    int retried;   /* the GET was already answered 401 once */
    int resent;    /* this request was sent again after a close before its answer */
    int answering; /* the headers of an answer to this request arrived */
    int fresh;     /* the access token came from this fetch's login or refresh */
    int answered;  /* a response (or transport failure) is waiting in code/body */
    int done;      /* deliver on the next wake */
    int code;      /* HTTP status; 0 = transport failure */
    int http_err;  /* enum evhttp_request_error + 1, 0 = none reported */
    int sock_err;  /* errno seen at a transport failure */
    int connected; /* the connection of this request was established (or closed) */
    int64_t sent_ms;
    char retry_after[16];
    struct evbuffer *body;
    char err[400];
};

/*--- The client: helpers -------------------------------------------------------*/

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* Frees a secret after overwriting it. */
static void wipe(char **s)
{
    if (*s) {
        volatile char *p = *s;
        while (*p)
            *p++ = '\0';
        free(*s);
        *s = NULL;
    }
}

/* Replaces every occurrence of every secret the client knows by "***". */
static void scrub(const sfl_dispatcharr *dc, char *s)
{
    const char *secrets[] = {dc->password, dc->api_key, dc->access, dc->refresh};
    for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++) {
        size_t n = secrets[k] ? strlen(secrets[k]) : 0;
        if (n < 3)
            continue;
        for (char *p = strstr(s, secrets[k]); p; p = strstr(p + 3, secrets[k])) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + n, strlen(p + n) + 1);
        }
    }
    sfl_redact(s);
}

static const char *route_of(const fetch_op *op)
{
    return op->step == STEP_LOGIN     ? "POST " ROUTE_TOKEN
           : op->step == STEP_REFRESH ? "POST " ROUTE_REFRESH
                                      : op->what;
}

/* ": <detail>" from a DRF error body ({"detail": "..."}), or "". */
static void detail_of(const fetch_op *op, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t n = evbuffer_get_length(op->body);
    if (n == 0 || n > 65536)
        return;
    cJSON *doc = cJSON_ParseWithLength((const char *)evbuffer_pullup(op->body, -1), n);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "detail");
    if (cJSON_IsString(d)) {
        snprintf(buf, len, ": %.120s", d->valuestring);
        for (char *p = buf; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
    }
    cJSON_Delete(doc);
}

static void op_free(fetch_op *op)
{
    if (!op)
        return;
    if (op->wake)
        event_free(op->wake);
    if (op->deadline)
        event_free(op->deadline);
    if (op->body)
        evbuffer_free(op->body);
    free(op);
}

static void op_finish(fetch_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends the fetch: fmt NULL = success. The callback runs on the next wake. */
static void op_finish(fetch_op *op, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(op->err, sizeof(op->err), fmt, ap);
        va_end(ap);
        scrub(op->dc, op->err);
    }
    op->done = 1;
    event_active(op->wake, 0, 0);
}

/*--- The client: requests -------------------------------------------------------*/

static void on_http_error(enum evhttp_request_error e, void *arg)
{
    fetch_op *op = arg;
    op->http_err = (int)e + 1;
    op->sock_err = errno;
}

/* 1 when "Connection" (a comma-separated list) holds token. */
static int has_token(const char *list, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t end = len;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end == n && strncasecmp(p, token, n) == 0)
            return 1;
        p += len;
    }
    return 0;
}

/* Whether the server keeps the connection open after this answer: HTTP/1.1
 * unless "Connection: close", HTTP/1.0 only with "Connection: keep-alive". */
static int answer_keeps_connection(const struct evhttp_request *req)
{
    const char *c = evhttp_find_header(
        evhttp_request_get_input_headers((struct evhttp_request *)req), "Connection");
    if (c && has_token(c, "close"))
        return 0;
    if (req->major < 1 || (req->major == 1 && req->minor == 0))
        return c && has_token(c, "keep-alive");
    return 1;
}

/* The headers of an answer arrived: from here on the server has answered. */
static int on_http_headers(struct evhttp_request *req, void *arg)
{
    fetch_op *op = arg;
    UNUSED(req);
    op->answering = 1;
    return 0;
}

/* evhttp's answer (req NULL or code 0: transport failure). Records and wakes. */
static void on_http_done(struct evhttp_request *req, void *arg)
{
    fetch_op *op = arg;
    op->req = NULL;
    evtimer_del(op->deadline);
    op->answered = 1;
    op->code = req ? evhttp_request_get_response_code(req) : 0;
    evbuffer_drain(op->body, evbuffer_get_length(op->body));
    op->retry_after[0] = '\0';
    if (req && op->code > 0) {
        op->connected = 1;
        if (!answer_keeps_connection(req))
            op->dc->conn_stale = 1;
        evbuffer_add_buffer(op->body, evhttp_request_get_input_buffer(req));
        const char *ra = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
        if (ra)
            snprintf(op->retry_after, sizeof(op->retry_after), "%.10s", ra);
    } else {
        op->dc->conn_stale = 1;
    }
    event_active(op->wake, 0, 0);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    fetch_op *op = arg;
    sfl_dispatcharr *dc = op->dc;
    UNUSED(fd);
    UNUSED(what);
    if (op->req) {
        evhttp_cancel_request(op->req); /* our callback is not called */
        op->req = NULL;
    }
    dc->conn_stale = 1;
    if (op->connected)
        op_finish(op, "no answer from Dispatcharr at %s:%d within %lld ms (%s)", dc->host, dc->port,
                  (long long)dc->timeout_ms, route_of(op));
    else
        op_finish(op, "cannot connect to Dispatcharr at %s:%d: no connection within %lld ms",
                  dc->host, dc->port, (long long)dc->timeout_ms);
}

/* evhttp calls this only for a connection that had been established, when
 * it closes: the server closed it (while idle, or during a request), a
 * request on it failed, or we free it. Never reused afterwards. */
static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
    sfl_dispatcharr *dc = arg;
    UNUSED(conn);
    dc->conn_stale = 1;
    if (dc->op && dc->op->req)
        dc->op->connected = 1;
}

/* 1 when the idle connection's socket shows the server closed it (or sent
 * something unasked) and the loop has not read it yet. */
static int conn_closed_unseen(struct evhttp_connection *conn)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return 0; /* not connected: evhttp connects afresh */
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int ensure_conn(sfl_dispatcharr *dc)
{
    if (dc->conn && !dc->conn_stale && conn_closed_unseen(dc->conn)) {
        sfl_debug("dispatcharr: the server closed the idle connection");
        dc->conn_stale = 1;
    }
    if (dc->conn && dc->conn_stale) {
        evhttp_connection_free(dc->conn);
        dc->conn = NULL;
    }
    dc->conn_stale = 0;
    if (dc->conn)
        return 0;
    struct bufferevent *bev = dc->tls ? sfl_tls_bev(dc->base, dc->tls, dc->host) : NULL;
    if (!(dc->tls && !bev))
        dc->conn = evhttp_connection_base_bufferevent_new(dc->base, dc->dns, bev, dc->host,
                                                          (unsigned short)dc->port);
    if (!dc->conn)
        return -1;
    struct timeval tv = {dc->timeout_ms / 1000, (dc->timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(dc->conn, &tv);
    evhttp_connection_set_retries(dc->conn, 0);
    evhttp_connection_set_max_body_size(dc->conn, DC_MAX_BODY);
    evhttp_connection_set_closecb(dc->conn, on_conn_close, dc);
    return 0;
}

/* Sends the request of op->step. 0, or -1 with the fetch finished. */
static int op_send(fetch_op *op, dc_step step)
{
    sfl_dispatcharr *dc = op->dc;
    op->step = step;
    op->resent = 0;
    op->answering = 0;
    op->answered = 0;
    op->code = 0;
    op->http_err = 0;
    op->sock_err = 0;
    op->connected = 0;
    op->sent_ms = sfl_mono_ms();
    if (step == STEP_LOGIN && dc->conn)
        dc->conn_stale = 1; /* never resent: not where a close may be on its way */
    char *body = NULL;
    if (step != STEP_GET) {
        cJSON *o = cJSON_CreateObject();
        int ok = o != NULL;
        if (step == STEP_LOGIN)
            ok = ok && cJSON_AddStringToObject(o, "username", dc->username) &&
                 cJSON_AddStringToObject(o, "password", dc->password);
        else
            ok = ok && cJSON_AddStringToObject(o, "refresh", dc->refresh);
        body = ok ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!body) {
            op_finish(op, "out of memory");
            return -1;
        }
    }
    struct evhttp_request *req = NULL;
    if (ensure_conn(dc) < 0 || !(req = evhttp_request_new(on_http_done, op))) {
        wipe(&body);
        op_finish(op, "cannot create a connection to Dispatcharr at %s:%d", dc->host, dc->port);
        return -1;
    }
    evhttp_request_set_error_cb(req, on_http_error);
    evhttp_request_set_header_cb(req, on_http_headers);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char auth[1024];
    int hok = evhttp_add_header(h, "Host", dc->host_header) == 0 &&
              evhttp_add_header(h, "Accept", "application/json") == 0 &&
              evhttp_add_header(h, "User-Agent", "sflimit") == 0;
    if (step == STEP_GET) {
        if (dc->api_key) {
            hok = hok && evhttp_add_header(h, "X-API-Key", dc->api_key) == 0;
        } else {
            snprintf(auth, sizeof(auth), "Bearer %s", dc->access);
            hok = hok && evhttp_add_header(h, "Authorization", auth) == 0;
            memset(auth, 0, sizeof(auth));
        }
    } else {
        hok = hok && evhttp_add_header(h, "Content-Type", "application/json") == 0 &&
              evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body)) == 0;
    }
    wipe(&body);
    if (!hok) {
        evhttp_request_free(req);
        op_finish(op, "out of memory");
        return -1;
    }
    char uri[512];
    const char *route = step == STEP_LOGIN     ? ROUTE_TOKEN
                        : step == STEP_REFRESH ? ROUTE_REFRESH
                                               : op->route;
    snprintf(uri, sizeof(uri), "%s%s", dc->prefix, route);
    sfl_debug("dispatcharr: %s", route_of(op));
    op->req = req;
    if (evhttp_make_request(dc->conn, req, step == STEP_GET ? EVHTTP_REQ_GET : EVHTTP_REQ_POST,
                            uri) < 0) {
        op->req = NULL; /* freed by evhttp */
        dc->conn_stale = 1;
        op_finish(op, "cannot send %s to Dispatcharr at %s:%d", route_of(op), dc->host, dc->port);
        return -1;
    }
    struct timeval tv = {dc->timeout_ms / 1000, (dc->timeout_ms % 1000) * 1000};
    evtimer_add(op->deadline, &tv);
    return 0;
}

/*--- The client: the state machine ----------------------------------------------*/

/* A transport failure (no HTTP status): says what happened. evhttp reports
 * a refused or timed-out connect through the request callback alone, with
 * errno already spent; other connect errors come with EVREQ_HTTP_EOF and
 * their errno. Whether the connection had been established tells them
 * apart from a server that went away mid-answer. */
static void op_transport_error(fetch_op *op)
{
    sfl_dispatcharr *dc = op->dc;
    const char *route = route_of(op);
    int e = op->http_err - 1;
    struct bufferevent *bev = dc->conn ? evhttp_connection_get_bufferevent(dc->conn) : NULL;
    int dns = bev ? bufferevent_socket_get_dns_error(bev) : 0;
    char tls[200];
    if (dns) {
        op_finish(op, "cannot resolve %s: %s", dc->host, evutil_gai_strerror(dns));
    } else if (dc->tls && sfl_tls_error(bev, dc->host, tls, sizeof(tls))) {
        op_finish(op, "cannot connect to Dispatcharr at %s:%d: %s", dc->host, dc->port, tls);
    } else if (e == EVREQ_HTTP_DATA_TOO_LONG) {
        op_finish(op, "the answer to %s is larger than %u bytes", route, DC_MAX_BODY);
    } else if (e == EVREQ_HTTP_INVALID_HEADER) {
        op_finish(op, "Dispatcharr at %s:%d sent an invalid HTTP answer to %s", dc->host, dc->port,
                  route);
    } else if (!op->connected && op->http_err == 0) {
        if (sfl_mono_ms() - op->sent_ms >= dc->timeout_ms - 100)
            op_finish(op, "cannot connect to Dispatcharr at %s:%d: no connection within %lld ms",
                      dc->host, dc->port, (long long)dc->timeout_ms);
        else
            op_finish(op, "cannot connect to Dispatcharr at %s:%d: connection refused", dc->host,
                      dc->port);
    } else if (!op->connected) {
        op_finish(op, "cannot connect to Dispatcharr at %s:%d: %s", dc->host, dc->port,
                  op->sock_err ? strerror(op->sock_err) : "connection failed");
    } else if (e == EVREQ_HTTP_TIMEOUT) {
        op_finish(op, "no answer from Dispatcharr at %s:%d within %lld ms (%s)", dc->host, dc->port,
                  (long long)dc->timeout_ms, route);
    } else {
        op_finish(op, "Dispatcharr at %s:%d closed the connection during %s%s", dc->host, dc->port,
                  route, op->resent ? " (sent twice, on two connections)" : "");
    }
}

/* Copies a string member of the answer into *dst (wiping the old value). */
static int take_token(cJSON *doc, const char *name, char **dst)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);
    if (!cJSON_IsString(v) || !*v->valuestring)
        return -1;
    char *copy = strdup(v->valuestring);
    if (!copy)
        return -1;
    wipe(dst);
    *dst = copy;
    return 0;
}

static void on_login_answer(fetch_op *op)
{
    sfl_dispatcharr *dc = op->dc;
    char detail[160];
    detail_of(op, detail, sizeof(detail));
    if (op->code == 429) {
        op_finish(op,
                  "login refused: Dispatcharr throttles logins (3 a minute), HTTP 429 from "
                  "%s%s%s%s",
                  route_of(op), op->retry_after[0] ? "; retry after " : "", op->retry_after,
                  op->retry_after[0] ? " s" : "");
        return;
    }
    if (op->code == 400 || op->code == 401 || op->code == 403) {
        op_finish(op,
                  "login failed: Dispatcharr rejected the username or password (HTTP %d from "
                  "%s%s)",
                  op->code, route_of(op), detail);
        return;
    }
    if (op->code < 200 || op->code > 299) {
        op_finish(op, "login failed: HTTP %d from %s%s", op->code, route_of(op), detail);
        return;
    }
    size_t n = evbuffer_get_length(op->body);
    cJSON *doc = cJSON_ParseWithLength((const char *)evbuffer_pullup(op->body, -1), n);
    int ok = doc && take_token(doc, "access", &dc->access) == 0;
    if (ok && take_token(doc, "refresh", &dc->refresh) < 0)
        wipe(&dc->refresh); /* none: a 401 will log in again */
    cJSON_Delete(doc);
    evbuffer_drain(op->body, n); /* it held the tokens */
    if (!ok) {
        op_finish(op, "login: the answer to %s has no access token", route_of(op));
        return;
    }
    sfl_debug("dispatcharr: logged in");
    op->fresh = 1;
    op_send(op, STEP_GET);
}

static void on_refresh_answer(fetch_op *op)
{
    sfl_dispatcharr *dc = op->dc;
    if (op->code == 400 || op->code == 401 || op->code == 403) {
        /* The refresh token expired or was revoked: log in, once. */
        sfl_debug("dispatcharr: refresh refused (HTTP %d); logging in", op->code);
        wipe(&dc->access);
        wipe(&dc->refresh);
        op_send(op, STEP_LOGIN);
        return;
    }
    if (op->code < 200 || op->code > 299) {
        char detail[160];
        detail_of(op, detail, sizeof(detail));
        op_finish(op, "token refresh failed: HTTP %d from %s%s", op->code, route_of(op), detail);
        return;
    }
    size_t n = evbuffer_get_length(op->body);
    cJSON *doc = cJSON_ParseWithLength((const char *)evbuffer_pullup(op->body, -1), n);
    int ok = doc && take_token(doc, "access", &dc->access) == 0;
    if (ok)
        take_token(doc, "refresh", &dc->refresh); /* only when rotated */
    cJSON_Delete(doc);
    evbuffer_drain(op->body, n);
    if (!ok) {
        op_finish(op, "token refresh: the answer to %s has no access token", route_of(op));
        return;
    }
    sfl_debug("dispatcharr: token refreshed");
    op->fresh = 1;
    op_send(op, STEP_GET);
}

/* Profiles that are one provider login but say different max_streams: the
 * login got the smallest (dispatcharr_limits.h); the operator should make
 * them agree. Ids and numbers only, never a credential. */
static void log_conflicts(const sfl_dispatcharr_conflict *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char who[64];
        if (c[i].why[0]) {
            sfl_warn("dispatcharr: profile %lld of account %lld left out: sfl cannot run its "
                     "search_pattern/replace_pattern (%s)",
                     c[i].profile_id, c[i].account_id, c[i].why);
            continue;
        }
        if (c[i].profile_id >= 0)
            snprintf(who, sizeof(who), "profile %lld", c[i].profile_id);
        else
            snprintf(who, sizeof(who), "the account's own limit");
        sfl_warn("dispatcharr: login %s is shared, but %s of account %lld says max_streams "
                 "%lld%s; the smallest of the login's, %lld, counts",
                 c[i].login, who, c[i].account_id, c[i].max_streams,
                 c[i].max_streams == 0 ? " (unlimited)" : "", c[i].used);
    }
}

static void on_get_answer(fetch_op *op)
{
    sfl_dispatcharr *dc = op->dc;
    char detail[160];
    if (op->code == 401 && !dc->api_key && !op->retried && !op->fresh) {
        /* The cached access token most likely expired: refresh, or log in
         * when there is nothing to refresh with; then one retry. */
        op->retried = 1;
        wipe(&dc->access);
        op_send(op, dc->refresh ? STEP_REFRESH : STEP_LOGIN);
        return;
    }
    if (op->code == 401 || op->code == 403) {
        detail_of(op, detail, sizeof(detail));
        if (dc->api_key) {
            op_finish(op, "API key rejected (HTTP %d from %s%s)", op->code, route_of(op), detail);
        } else {
            wipe(&dc->access);
            op_finish(op, "token rejected (HTTP %d from %s%s)%s", op->code, route_of(op), detail,
                      op->code == 403 ? "; does the user have access to M3U accounts?"
                      : op->fresh     ? " right after a new token was issued"
                                      : "");
        }
        return;
    }
    if (op->code < 200 || op->code > 299) {
        detail_of(op, detail, sizeof(detail));
        op_finish(op, "HTTP %d from %s%s", op->code, route_of(op), detail);
        return;
    }
    op_finish(op, NULL); /* the body goes to fn */
}

/* The connection of an established request was closed (EOF or reset)
 * before the headers of an answer came, the request may be sent again (not
 * a login) and was not sent again already. */
static int closed_before_answer(const fetch_op *op)
{
    return op->step != STEP_LOGIN && !op->resent && op->connected && !op->answering &&
           op->http_err == (int)EVREQ_HTTP_EOF + 1;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    fetch_op *op = arg;
    UNUSED(fd);
    UNUSED(what);
    if (op->done) {
        /* Detach first: fn may free the client or start the next fetch. */
        op->dc->op = NULL;
        op->dc = NULL;
        if (op->err[0])
            op->fn(NULL, 0, op->err, op->arg);
        else
            op->fn((const char *)evbuffer_pullup(op->body, -1), evbuffer_get_length(op->body), NULL,
                   op->arg);
        op_free(op);
        return;
    }
    if (!op->answered)
        return;
    op->answered = 0;
    if (op->code == 0) {
        if (closed_before_answer(op)) {
            /* A GET or a refresh, once: see the top of this file. */
            sfl_debug("dispatcharr: the connection closed before an answer to %s; sending it "
                      "again on a new connection",
                      route_of(op));
            op->dc->conn_stale = 1;
            if (op_send(op, op->step) == 0)
                op->resent = 1;
            return;
        }
        op_transport_error(op);
        return;
    }
    sfl_debug("dispatcharr: %s -> HTTP %d", route_of(op), op->code);
    switch (op->step) {
    case STEP_LOGIN:
        on_login_answer(op);
        break;
    case STEP_REFRESH:
        on_refresh_answer(op);
        break;
    case STEP_GET:
        on_get_answer(op);
        break;
    }
}

/*--- The client: public --------------------------------------------------------*/

sfl_dispatcharr *sfl_dispatcharr_new(struct event_base *base, const sfl_conf *conf, char *err,
                                     size_t errlen)
{
    sfl_dispatcharr *dc = NULL;
    struct evhttp_uri *uri = NULL;
    const char *url = conf ? conf->dispatcharr_url : NULL;
    if (!url || !*url) {
        snprintf(err, errlen, "dispatcharr.url is not set");
        return NULL;
    }
    uri = evhttp_uri_parse_with_flags(url, 0);
    const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
    const char *host = uri ? evhttp_uri_get_host(uri) : NULL;
    int https = scheme && strcmp(scheme, "https") == 0, defport = https ? 443 : 80;
    if (!scheme || (!https && strcmp(scheme, "http") != 0) || !host || !*host) {
        snprintf(err, errlen, "dispatcharr.url: expected http(s)://HOST[:PORT][/PATH]");
        goto fail;
    }
    if (evhttp_uri_get_userinfo(uri)) {
        snprintf(err, errlen,
                 "dispatcharr.url: credentials in the URL are not supported; use "
                 "dispatcharr.username and dispatcharr.password, or dispatcharr.api_key");
        goto fail;
    }
    if (evhttp_uri_get_query(uri) || evhttp_uri_get_fragment(uri)) {
        snprintf(err, errlen, "dispatcharr.url: a query or fragment is not supported");
        goto fail;
    }
    int has_key = conf->dispatcharr_api_key && *conf->dispatcharr_api_key;
    int has_login = conf->dispatcharr_username && *conf->dispatcharr_username &&
                    conf->dispatcharr_password && *conf->dispatcharr_password;
    if (!has_key && !has_login) {
        snprintf(err, errlen,
                 "dispatcharr.url is set but neither dispatcharr.api_key nor "
                 "dispatcharr.username and dispatcharr.password are");
        goto fail;
    }
    dc = calloc(1, sizeof(*dc));
    if (!dc)
        goto oom;
    dc->base = base;
    dc->timeout_ms = SFL_DISPATCHARR_TIMEOUT_MS;
    dc->port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : defport;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
        dc->host = strndup(host + 1, hl - 2);
    else
        dc->host = strdup(host);
    char hh[300];
    if (evhttp_uri_get_port(uri) > 0 && dc->port != defport)
        snprintf(hh, sizeof(hh), "%s:%d", host, dc->port);
    else
        snprintf(hh, sizeof(hh), "%s", host);
    dc->host_header = strdup(hh);
    const char *path = evhttp_uri_get_path(uri);
    size_t pl = path ? strlen(path) : 0;
    while (pl > 0 && path[pl - 1] == '/')
        pl--;
    dc->prefix = strndup(path ? path : "", pl);
    if (!dc->host || !dc->host_header || !dc->prefix)
        goto oom;
    if (has_key) {
        if (!(dc->api_key = dup_or_null(conf->dispatcharr_api_key)))
            goto oom;
    } else if (!(dc->username = dup_or_null(conf->dispatcharr_username)) ||
               !(dc->password = dup_or_null(conf->dispatcharr_password))) {
        goto oom;
    }
    if (https && !(dc->tls = sfl_tls_ctx_new(conf->dispatcharr_ca_file, err, errlen)))
        goto fail;
    unsigned char addr[16];
    if (evutil_inet_pton(AF_INET, dc->host, addr) != 1 &&
        evutil_inet_pton(AF_INET6, dc->host, addr) != 1) {
        dc->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!dc->dns) {
            snprintf(err, errlen, "cannot set up name resolution for %s", dc->host);
            goto fail;
        }
    }
    evhttp_uri_free(uri);
    return dc;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    evhttp_uri_free(uri);
    sfl_dispatcharr_free(dc);
    return NULL;
}

void sfl_dispatcharr_free(sfl_dispatcharr *dc)
{
    if (!dc)
        return;
    fetch_op *op = dc->op;
    if (dc->conn)
        evhttp_connection_free(dc->conn); /* frees a request in flight, no callback */
    if (op) {
        if (op->drop)
            op->drop(op->arg);
        op_free(op);
    }
    if (dc->dns)
        evdns_base_free(dc->dns, 0);
    sfl_tls_ctx_free(dc->tls);
    free(dc->host);
    free(dc->host_header);
    free(dc->prefix);
    free(dc->username);
    wipe(&dc->password);
    wipe(&dc->api_key);
    wipe(&dc->access);
    wipe(&dc->refresh);
    free(dc);
}

void sfl_dispatcharr_set_timeout_ms(sfl_dispatcharr *dc, int64_t ms)
{
    dc->timeout_ms = ms > 0 ? ms : SFL_DISPATCHARR_TIMEOUT_MS;
    if (dc->conn) {
        struct timeval tv = {dc->timeout_ms / 1000, (dc->timeout_ms % 1000) * 1000};
        evhttp_connection_set_timeout_tv(dc->conn, &tv);
    }
}

const char *sfl_dispatcharr_errstr(const sfl_dispatcharr *dc)
{
    return dc->errstr;
}

int sfl_dispatcharr_get(sfl_dispatcharr *dc, const char *route, sfl_dispatcharr_body_fn *fn,
                        sfl_dispatcharr_drop_fn *drop, void *arg)
{
    if (dc->op) {
        snprintf(dc->errstr, sizeof(dc->errstr), "a Dispatcharr request is already in flight");
        return -1;
    }
    fetch_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->wake = event_new(dc->base, -1, 0, on_wake, op)) ||
        !(op->deadline = evtimer_new(dc->base, on_deadline, op)) || !(op->body = evbuffer_new())) {
        op_free(op);
        snprintf(dc->errstr, sizeof(dc->errstr), "out of memory");
        return -1;
    }
    op->dc = dc;
    op->fn = fn;
    op->arg = arg;
    op->drop = drop;
    snprintf(op->route, sizeof(op->route), "%s", route);
    snprintf(op->what, sizeof(op->what), "GET %s", route);
    dc->op = op;
    /* A failure to send finishes the op; fn still comes from the loop. */
    op_send(op, dc->api_key || dc->access ? STEP_GET : STEP_LOGIN);
    return 0;
}

/* The accounts fetch: a GET of the accounts, read by dispatcharr_limits.c. */
typedef struct accounts_get {
    sfl_dispatcharr_fetch_fn *fn;
    sfl_dispatcharr_drop_fn *drop;
    void *arg;
} accounts_get;

static void on_accounts_body(const char *body, size_t len, const char *err, void *arg)
{
    accounts_get *g = arg;
    sfl_account_conf *accs = NULL;
    sfl_dispatcharr_conflict *conf = NULL;
    size_t n = 0, nconf = 0;
    char why[300], msg[420];
    if (!err && sfl_dispatcharr_limits_from_json(body, len, &accs, &n, &conf, &nconf, why,
                                                 sizeof(why)) < 0) {
        snprintf(msg, sizeof(msg), "unexpected answer to GET " ROUTE_ACCOUNTS ": %s", why);
        err = msg;
    }
    log_conflicts(conf, nconf);
    g->fn(err ? NULL : accs, err ? 0 : n, err, g->arg);
    free(conf);
    sfl_dispatcharr_accounts_free(accs, n);
    free(g);
}

static void on_accounts_drop(void *arg)
{
    accounts_get *g = arg;
    if (g->drop)
        g->drop(g->arg);
    free(g);
}

int sfl_dispatcharr_fetch_owned(sfl_dispatcharr *dc, sfl_dispatcharr_fetch_fn *fn,
                                sfl_dispatcharr_drop_fn *drop, void *arg)
{
    accounts_get *g = malloc(sizeof(*g));
    if (g)
        *g = (accounts_get){fn, drop, arg};
    else
        snprintf(dc->errstr, sizeof(dc->errstr), "out of memory");
    if (g && sfl_dispatcharr_get(dc, ROUTE_ACCOUNTS, on_accounts_body, on_accounts_drop, g) == 0)
        return 0;
    free(g);
    return -1;
}

int sfl_dispatcharr_fetch(sfl_dispatcharr *dc, sfl_dispatcharr_fetch_fn *fn, void *arg)
{
    return sfl_dispatcharr_fetch_owned(dc, fn, NULL, arg);
}
