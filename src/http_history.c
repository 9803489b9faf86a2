/* http_history.c - the history routes of the node's HTTP API (issue #18):
 * GET /v1/history?login=ID&from=T&to=T&step=S, a login's use over time in
 * steps, and GET /v1/streams/{id}/history[?limit=N], a stream's last
 * results. The reading is history_read.c's; this file checks the request,
 * finds the login among the node's routes and answers.
 *
 * A login is one the node routes checks through (its config, or an account
 * it met since), or one Redis describes (an account another node put there:
 * the dashboard lists those too): any other is a 404, so that a typo is not
 * an empty chart.
 * Every bad parameter is a 400 naming it, before Redis is asked anything.
 * Each route ends in exactly one reply, at once or when Redis answers: 200,
 * 503 when Redis does not answer, 500 when what it holds is not the
 * history format (the message names the key and the field).
 */
#include "http_api_int.h"

#include "app.h"
#include "described.h"
#include "history_read.h"
#include "keys.h"
#include "limiter.h"
#include "routes.h"

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_RESULTS_MAX 1000 /* history.stream_results at most */
#define MAX_SAFE_INT 9007199254740991LL

/*--- Parameters ------------------------------------------------------------*/

/* The query's parameters among names (n of them) into values (NULL when
 * absent). 0, or -1 after a 400 naming the fault (not a query string, an
 * unknown or repeated parameter). */
static int query_params(struct evhttp_request *req, const char *const *names, size_t n,
                        char values[][128])
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    int rc = 0;
    memset(&params, 0, sizeof(params)); /* evhttp_parse_query_str sets it up */
    for (size_t i = 0; i < n; i++)
        values[i][0] = '\0';
    if (query && evhttp_parse_query_str(query, &params) < 0) {
        sfl_http_reply_error(req, 400, "query: not a valid query string");
        return -1;
    }
    unsigned seen = 0;
    for (struct evkeyval *kv = params.tqh_first; kv && rc == 0; kv = kv->next.tqe_next) {
        size_t i = 0;
        while (i < n && strcmp(kv->key, names[i]) != 0)
            i++;
        if (i == n) {
            char known[128] = "";
            for (size_t k = 0; k < n; k++)
                snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
                         k ? ", " : "", names[k]);
            sfl_http_reply_error(req, 400, "%.64s: unknown parameter (known: %s)", kv->key, known);
            rc = -1;
        } else if (seen & (1u << i)) {
            sfl_http_reply_error(req, 400, "%s: given twice", names[i]);
            rc = -1;
        } else if (strlen(kv->value) >= sizeof(values[i]) || !*kv->value) {
            sfl_http_reply_error(req, 400, "%s: %s", names[i], *kv->value ? "too long" : "empty");
            rc = -1;
        } else {
            seen |= 1u << i;
            snprintf(values[i], sizeof(values[i]), "%s", kv->value);
        }
    }
    evhttp_clear_headers(&params);
    return rc;
}

typedef struct find_login {
    const char *id;
    const sfl_login *found;
} find_login;

static void find_in_route(const sfl_route *rt, void *arg)
{
    find_login *f = arg;
    for (size_t i = 0; !f->found && i < rt->nlogins; i++)
        if (strcmp(rt->logins[i]->id, f->id) == 0)
            f->found = rt->logins[i];
}

/*--- GET /v1/history -------------------------------------------------------*/

/* A login this node does not route: looked for among those Redis describes
 * (described.h); its accounts from there, its limit from its conf. */
typedef struct unrouted {
    pending *p;
    sfl_history_query q;
    char login[SFL_LOGIN_ID_LEN];
} unrouted;

static void on_history(cJSON *doc, int garbled, const char *err, void *arg);

static void on_described(const sfl_described *d, const char *err, void *arg)
{
    unrouted *u = arg;
    pending *p = u->p;
    const sfl_described_login *l = d ? sfl_described_find(d->logins, d->nlogins, u->login) : NULL;
    if (p->gone) {
        sfl_http_pending_free(p);
    } else if (!d) {
        sfl_http_reply_error(p->req, 503, "%s", err);
        sfl_http_pending_free(p);
    } else if (!l) {
        sfl_http_reply_error(p->req, 404, "unknown login \"%s\"", u->login);
        sfl_http_pending_free(p);
    } else {
        char conf[SFL_KEY_LEN];
        snprintf(conf, sizeof(conf), "%sconf", l->prefix);
        u->q.conf_key = conf; /* the query is copied */
        u->q.accounts = l->accounts;
        u->q.naccounts = l->naccounts;
        if (sfl_history_read(p->h->node.app->store, &u->q, on_history, p) < 0) {
            sfl_http_reply_error(p->req, 503, "Redis is not reachable");
            sfl_http_pending_free(p);
        }
    }
    free(u);
}

static void ask_redis(sfl_http *h, struct evhttp_request *req, const sfl_history_query *q)
{
    unrouted *u = calloc(1, sizeof(*u));
    pending *p = u ? sfl_http_pending_new(h, req) : NULL;
    if (!p) {
        free(u);
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    u->p = p;
    u->q = *q;
    snprintf(u->login, sizeof(u->login), "%s", q->login);
    u->q.login = u->login;
    if (sfl_described_read(h->node.app->store, on_described, u) < 0) {
        free(u);
        sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
}

static void on_history(cJSON *doc, int garbled, const char *err, void *arg)
{
    pending *p = arg;
    if (!p->gone) {
        if (doc)
            sfl_http_reply_json(p->req, 200, doc);
        else
            sfl_http_reply_error(p->req, garbled ? 500 : 503, "%s", err);
    }
    sfl_http_pending_free(p);
}

void sfl_http_route_history(sfl_http *h, struct evhttp_request *req)
{
    static const char *const names[] = {"login", "from", "to", "step"};
    char v[4][128];
    if (query_params(req, names, 4, v) < 0)
        return;
    if (!v[0][0]) {
        sfl_http_reply_error(req, 400, "login: required (?login=ID)");
        return;
    }
    if (!sfl_login_id_valid(v[0])) {
        sfl_http_reply_error(req, 400,
                             "login: expected 1 to 64 letters, digits, '.', '_' or '-', got "
                             "\"%.80s\"",
                             v[0]);
        return;
    }
    sfl_history_ask ask = {
        .from = v[1][0] ? v[1] : NULL, .to = v[2][0] ? v[2] : NULL, .step = v[3][0] ? v[3] : NULL};
    sfl_history_query q = {.login = v[0], .now_s = (int64_t)time(NULL)};
    char err[512];
    if (sfl_history_range_make(&ask, q.now_s, &q.range, err, sizeof(err)) < 0) {
        sfl_http_reply_error(req, 400, "%s", err);
        return;
    }
    sfl_app *app = h->node.app;
    find_login f = {.id = v[0]};
    sfl_routes_each(sfl_limiter_routes(app->lim), find_in_route, &f);
    if (!f.found) {
        ask_redis(h, req, &q);
        return;
    }
    char conf[SFL_KEY_LEN];
    snprintf(conf, sizeof(conf), "%sconf", f.found->prefix);
    q.conf_key = conf;
    q.accounts = f.found->accounts;
    q.naccounts = f.found->naccounts;
    pending *p = sfl_http_pending_new(h, req);
    if (!p) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    if (sfl_history_read(app->store, &q, on_history, p) < 0) {
        sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
}

/*--- GET /v1/streams/{id}/history ------------------------------------------*/

/* An id as streams take them: an integer within +-(2^53 - 1), n bytes. */
static int stream_id(const char *s, size_t n, long long *out)
{
    size_t i = n > 0 && s[0] == '-';
    if (i >= n || n - i > 16)
        return -1;
    long long v = 0;
    for (size_t k = i; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return -1;
        v = v * 10 + (s[k] - '0');
    }
    if (v > MAX_SAFE_INT)
        return -1;
    *out = i ? -v : v;
    return 0;
}

void sfl_http_route_stream_history(sfl_http *h, struct evhttp_request *req, const char *id,
                                   size_t n)
{
    static const char *const names[] = {"limit"};
    char v[1][128];
    long long sid, limit = STREAM_RESULTS_MAX;
    if (stream_id(id, n, &sid) < 0) {
        sfl_http_reply_error(req, 400, "stream id: expected an integer from %lld to %lld",
                             -MAX_SAFE_INT, MAX_SAFE_INT);
        return;
    }
    if (query_params(req, names, 1, v) < 0)
        return;
    if (v[0][0] && (sfl_http_parse_id(v[0], strlen(v[0]), &limit) < 0 || limit < 1 ||
                    limit > STREAM_RESULTS_MAX)) {
        sfl_http_reply_error(req, 400, "limit: expected an integer from 1 to %d",
                             STREAM_RESULTS_MAX);
        return;
    }
    pending *p = sfl_http_pending_new(h, req);
    if (!p) {
        sfl_http_reply_error(req, 503, "out of memory");
        return;
    }
    if (sfl_history_stream_read(h->node.app->store, sid, (int)limit, on_history, p) < 0) {
        sfl_http_pending_free(p);
        sfl_http_reply_error(req, 503, "Redis is not reachable");
    }
}
