/* xtream.c - one node per login asks its panel how many connections the
 * login has (xtream.h), and what its plan allows (max_connections, written
 * through learned.c as a cap on the login's effective limit). A request
 * that fails writes nothing: the figure ages and, past max_age_ms, the
 * login grants nothing.
 *
 * An https:// panel is asked over TLS (tls.c: its certificate verified by
 * the system's CAs and xtream.ca_file). evhttp would reopen a closed
 * connection on the same SSL object, which cannot serve a second one, so a
 * TLS panel gets a new connection for every poll. */
#include "xtream.h"

#include "clock.h"
#include "conf.h"
#include "learned.h"
#include "lease_script.h"
#include "log.h"
#include "role.h"
#include "routes.h"
#include "store.h"
#include "text.h"
#include "tls.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PANEL_TIMEOUT_S 10

typedef struct panel {
    struct sfl_xtream *x;
    char login[SFL_LOGIN_ID_LEN];
    char prefix[SFL_KEY_PREFIX_LEN];
    char host[256];
    int port;
    char *uri; /* path and query, with the credentials: never logged */
    long long poll_ms, max_age_ms;
    sfl_role *role;
    struct event *timer;
    struct evhttp_connection *conn;
    struct ssl_ctx_st *tls; /* https://, else NULL */
    int asking;             /* a request in flight */
    char said[64];          /* the last refusal logged ("" = none) */
    int64_t warned_ms;      /* the last failure logged */
} panel;

struct sfl_xtream {
    struct event_base *base;
    sfl_store *store;
    panel *panels;
    size_t n;
    sfl_others_seen seen; /* told of each figure written (history), or fn NULL */
};

/*--- The answer (pure) --------------------------------------------------------*/

/* A count that panels send as a string or a number; -1 if neither. */
static long long count_of(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return v->valuedouble >= 0 ? (long long)v->valuedouble : -1;
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        long long n = strtoll(v->valuestring, &end, 10);
        return *end || n < 0 ? -1 : n;
    }
    return -1;
}

int sfl_xtream_read(const char *body, size_t len, long long *cons, char *why, size_t whylen)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *ui = cJSON_GetObjectItemCaseSensitive(doc, "user_info");
    int rc = -1;
    if (!cJSON_IsObject(ui))
        goto done;
    long long auth = count_of(cJSON_GetObjectItemCaseSensitive(ui, "auth"));
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ui, "status"));
    if (auth == 0) {
        snprintf(why, whylen, "auth 0");
        rc = 0;
    } else if (status && strcmp(status, "Active") != 0) {
        char shown[40];
        sfl_text_escape(status, shown, sizeof(shown));
        snprintf(why, whylen, "status %s", shown);
        rc = 0;
    } else if ((*cons = count_of(cJSON_GetObjectItemCaseSensitive(ui, "active_cons"))) >= 0) {
        rc = 1;
    }
done:
    cJSON_Delete(doc);
    return rc;
}

int sfl_xtream_read_plan(const char *body, size_t len, sfl_xtream_plan *plan)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *ui = cJSON_GetObjectItemCaseSensitive(doc, "user_info");
    memset(plan, 0, sizeof(*plan));
    plan->max_connections = -1;
    int rc = -1;
    if (cJSON_IsObject(ui) && count_of(cJSON_GetObjectItemCaseSensitive(ui, "auth")) != 0) {
        plan->max_connections = count_of(cJSON_GetObjectItemCaseSensitive(ui, "max_connections"));
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(ui, "exp_date");
        long long e = count_of(exp);
        if (e >= 0)
            snprintf(plan->exp_date, sizeof(plan->exp_date), "%lld", e);
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ui, "status"));
        if (st)
            sfl_text_escape(st, plan->status, sizeof(plan->status));
        rc = 0;
    }
    cJSON_Delete(doc);
    return rc;
}

/*--- Asking ------------------------------------------------------------------*/

static void failed(panel *p, const char *what)
{
    int64_t now = sfl_mono_ms();
    if (p->warned_ms && now - p->warned_ms < 5 * p->poll_ms)
        return;
    p->warned_ms = now;
    sfl_warn("xtream: login %s: %s from %s:%d; it grants nothing once its figure is %lld ms old",
             p->login, what, p->host, p->port, p->max_age_ms);
}

static void on_answer(struct evhttp_request *req, void *arg)
{
    panel *p = arg;
    p->asking = 0;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code != 200) {
        char what[240];
        snprintf(what, sizeof(what), code ? "HTTP %d" : "no answer", code);
        if (!code && p->tls && p->conn)
            sfl_tls_error(evhttp_connection_get_bufferevent(p->conn), p->host, what, sizeof(what));
        failed(p, what);
        return;
    }
    if (!sfl_role_held(p->role))
        return;
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(b);
    long long cons = 0;
    char why[64];
    const char *body = (const char *)evbuffer_pullup(b, -1);
    int rc = sfl_xtream_read(body, len, &cons, why, sizeof(why));
    sfl_xtream_plan plan;
    if (sfl_xtream_read_plan(body, len, &plan) == 0)
        sfl_learned_panel(p->x->store, p->login, p->prefix, plan.max_connections, plan.exp_date,
                          plan.status);
    if (rc < 0) {
        failed(p, "an answer that is not player_api.php's");
    } else if (rc == 0) {
        if (strcmp(p->said, why) != 0)
            sfl_error("xtream: login %s: the panel says %s: no check starts on it", p->login, why);
        snprintf(p->said, sizeof(p->said), "%s", why);
        char source[96];
        snprintf(source, sizeof(source), "xtream: %s", why);
        sfl_lease_script_others(p->x->store, p->prefix, 0, source, p->max_age_ms, "closed");
    } else {
        if (p->said[0])
            sfl_info("xtream: login %s: usable again", p->login);
        p->said[0] = '\0';
        sfl_lease_script_others_seen(p->x->store, p->prefix, p->login, cons, "xtream",
                                     p->max_age_ms, "total", &p->x->seen);
    }
}

static void ask(panel *p)
{
    if (p->conn && p->tls) {
        evhttp_connection_free(p->conn); /* idle: p->asking is 0 */
        p->conn = NULL;
    }
    if (!p->conn) {
        struct bufferevent *bev = p->tls ? sfl_tls_bev(p->x->base, p->tls, p->host) : NULL;
        if (p->tls && !bev)
            return;
        p->conn = evhttp_connection_base_bufferevent_new(p->x->base, NULL, bev, p->host,
                                                         (unsigned short)p->port);
        if (!p->conn)
            return;
        evhttp_connection_set_timeout(p->conn, PANEL_TIMEOUT_S);
    }
    struct evhttp_request *req = evhttp_request_new(on_answer, p);
    if (!req)
        return;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", p->host);
    evhttp_add_header(h, "User-Agent", "sflimit");
    if (evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, p->uri) == 0)
        p->asking = 1;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    panel *p = arg;
    UNUSED(fd);
    UNUSED(what);
    if (!sfl_role_held(p->role))
        return; /* on_role starts it again when the role is ours */
    sfl_timer_in(p->timer, p->poll_ms);
    if (!p->asking && sfl_store_ready(p->x->store))
        ask(p);
}

static void on_role(int held, void *arg)
{
    panel *p = arg;
    if (held && !evtimer_pending(p->timer, NULL))
        sfl_timer_in(p->timer, 0);
}

/*--- Life --------------------------------------------------------------------*/

/* The panel of login l at prefix: host, port and the request's URI. 0, or
 * -1 (the URL is not http(s)://host[:port][/path], or its CA file cannot be
 * loaded: logged). */
static int panel_init(sfl_xtream *x, panel *p, const sfl_login_conf *l, const char *prefix,
                      const char *node_id)
{
    p->x = x;
    snprintf(p->login, sizeof(p->login), "%s", l->id);
    snprintf(p->prefix, sizeof(p->prefix), "%s", prefix);
    p->poll_ms = l->xtream_poll_ms > 0 ? l->xtream_poll_ms : 60000;
    p->max_age_ms = l->max_age_ms > 0 ? l->max_age_ms : 3 * p->poll_ms;
    struct evhttp_uri *u = evhttp_uri_parse(l->xtream_url);
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    if (!host) {
        evhttp_uri_free(u);
        return -1;
    }
    snprintf(p->host, sizeof(p->host), "%s", host);
    int https = evhttp_uri_get_scheme(u) && strcmp(evhttp_uri_get_scheme(u), "https") == 0;
    p->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : https ? 443 : 80;
    char err[256];
    if (https && !(p->tls = sfl_tls_ctx_new(l->xtream_ca_file, err, sizeof(err)))) {
        sfl_error("xtream: login %s: %s", l->id, err);
        evhttp_uri_free(u);
        return -1;
    }
    const char *path = evhttp_uri_get_path(u);
    size_t plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    char *user = evhttp_uriencode(l->xtream_username, -1, 0);
    char *pass = evhttp_uriencode(l->xtream_password, -1, 0);
    size_t len = plen + (user ? strlen(user) : 0) + (pass ? strlen(pass) : 0) + 64;
    p->uri = user && pass ? malloc(len) : NULL;
    if (p->uri)
        snprintf(p->uri, len, "%.*s/player_api.php?username=%s&password=%s", (int)plen,
                 path ? path : "", user, pass);
    free(user);
    if (pass) {
        memset(pass, 0, strlen(pass));
        free(pass);
    }
    evhttp_uri_free(u);
    char role[96];
    snprintf(role, sizeof(role), "xtream:%s", l->id);
    /* Its successor polls before the figure is max_age_ms old. */
    int64_t ttl = (p->max_age_ms - 2 * p->poll_ms) * 3 / 4;
    if (ttl > 15000)
        ttl = 15000;
    p->timer = evtimer_new(x->base, on_timer, p);
    p->role = sfl_role_new(x->base, x->store, role, node_id, ttl, on_role, p);
    return p->uri && p->timer && p->role ? 0 : -1;
}

static void panel_clear(panel *p)
{
    sfl_role_free(p->role);
    if (p->timer)
        event_free(p->timer);
    if (p->conn)
        evhttp_connection_free(p->conn); /* a request in flight: no callback */
    sfl_tls_ctx_free(p->tls);
    if (p->uri) {
        memset(p->uri, 0, strlen(p->uri));
        free(p->uri);
    }
}

sfl_xtream *sfl_xtream_new(struct event_base *base, sfl_store *store, sfl_routes *routes,
                           const sfl_account_conf *accs, size_t n, const char *node_id)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < accs[i].nlogins; k++)
            total += accs[i].logins[k].xtream_url != NULL;
    if (total == 0)
        return NULL;
    sfl_xtream *x = calloc(1, sizeof(*x));
    if (!x || !(x->panels = calloc(total, sizeof(*x->panels)))) {
        free(x);
        return NULL;
    }
    x->base = base;
    x->store = store;
    for (size_t i = 0; i < n; i++) {
        const sfl_route *rt = sfl_routes_get(routes, accs[i].id);
        for (size_t k = 0; rt && k < accs[i].nlogins; k++) {
            const sfl_login_conf *l = &accs[i].logins[k];
            const sfl_login *lg = sfl_route_login(rt, l->id, NULL);
            int seen = 0; /* a login shared by accounts has one panel */
            for (size_t j = 0; lg && j < x->n && !seen; j++)
                seen = strcmp(x->panels[j].prefix, lg->prefix) == 0;
            if (!l->xtream_url || !lg || seen)
                continue;
            panel *p = &x->panels[x->n++];
            if (panel_init(x, p, l, lg->prefix, node_id) < 0)
                sfl_error("xtream: login %s: cannot poll its panel (its url, or memory)", l->id);
        }
    }
    return x;
}

void sfl_xtream_free(sfl_xtream *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++)
        panel_clear(&x->panels[i]);
    free(x->panels);
    free(x);
}

void sfl_xtream_on_seen(sfl_xtream *x, const sfl_others_seen *seen)
{
    if (x)
        x->seen = *seen;
}

void sfl_xtream_on_ready(sfl_xtream *x)
{
    for (size_t i = 0; x && i < x->n; i++)
        sfl_role_kick(x->panels[i].role);
}
