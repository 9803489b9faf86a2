/* dispatcharr_limits.c - accounts and their logins out of Dispatcharr's
 * answer (pure).
 *
 * The body of GET /api/m3u/accounts/ in, one sfl_account_conf per active
 * account out, with its logins in route order. A Dispatcharr profile is a
 * login (DISPATCHARR.md): its own max_streams, and a rewrite of a stream's
 * URL to its credentials. Dispatcharr tries the default profile first, then
 * the other active ones; it fetches them with no order_by, so their order is
 * the database's: sfl takes ascending profile id (creation order, what that
 * usually is, and stable from one sync to the next where the array's order
 * need not be).
 *
 * One provider login used by several profiles is one limit, so those
 * profiles get one login id (the smallest profile id's). Two rules find them:
 *  - Dispatcharr's own (apps/m3u/connection_pool.py, since v0.27): accounts
 *    of one server group (the account's "server_group", a ServerGroup id or
 *    null) whose profiles use the same credentials share a counter; the
 *    credentials' fingerprint is the username (trimmed, lower case) and the
 *    password (trimmed). For an XC account a profile's credentials are those
 *    its rewrite leads to, for an identity profile the account's. For an STD
 *    account Dispatcharr reads them out of a stream's URL, which this answer
 *    does not have; sfl takes its last resort, the account's username and
 *    password, for identity profiles only.
 *  - the provider's: XC profiles whose login, after the rewrite, is the same
 *    server host (lower case, no port) and username (trimmed, lower case),
 *    whatever their server group.
 * Where a profile's rewrite leads is dispatcharr_login.c's (pure, and only
 * for the identity and simple patterns: no regex engine here). A profile
 * whose login cannot be worked out (another regex, an STD account's
 * non-identity profile, a rewrite on an account with no password) keeps a
 * login of its own. Merging too much only lowers capacity; merging too
 * little can put a login over its limit, so keys lean to merging (lower
 * case, no port). Two profiles of one account that are one login are one
 * route, the first in route order.
 *
 * Every shape it relies on is checked, and a wrong one is an error naming
 * the JSON path: a half-read answer must never become limits in Redis. A
 * message shows a wrong value only where it cannot be a credential (server
 * URLs, usernames, passwords and patterns are described by kind). A name is
 * only shown, so an odd one is no reason to refuse the answer: its control
 * characters and bytes that are not UTF-8 are kept as visible escapes
 * (text.c), as every other entry refuses them. No I/O, no globals: the
 * client (dispatcharr.c), the unit tests and the fuzz target call it alike.
 */
#include "dispatcharr_limits.h"

#include "conf.h"
#include "dispatcharr_login.h"
#include "json.h"
#include "rewrite.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNT 9007199254740992LL /* 2^53: what a JSON number holds exactly */

/* One route of an account: an active profile, or the account's own limit. */
typedef struct route {
    long long pid; /* profile id; -1: the account's own max_streams */
    long long max;
    int is_default;
    const char *search, *replace; /* into the document; NULL: the URL as given */
    size_t acc;                   /* index in reader.accs */
    size_t j;                     /* index in the account's profiles array */
    size_t set;                   /* union-find parent (an index in reader.routes) */
    int xc;                       /* the account is an XC account */
    long long group;              /* its server group, -1: none */
    sfl_dispatcharr_login login;  /* host, user, pass; NULL where not known */
} route;

typedef struct parsed_acc {
    long long id, own;
    const char *name; /* into the document, or NULL */
    size_t idx;       /* index in the answer's array */
    size_t first, count;
} parsed_acc;

typedef struct dropped {
    long long account_id, profile_id;
    char why[112];
} dropped;

typedef struct reader {
    route *routes;
    size_t nroutes, rcap;
    dropped *dropped; /* profiles left out: a rewrite sfl cannot run */
    size_t ndropped;
    long long reading; /* the id of the account being read */
    parsed_acc *accs;
    size_t naccs;
    char *err;
    size_t errlen;
} reader;

/*--- Shapes ------------------------------------------------------------------*/

static int shape_error(char *err, size_t errlen, const char *path, const char *want,
                       const cJSON *got)
{
    char desc[64];
    if (got)
        sfl_json_describe(got, desc, sizeof(desc));
    else
        snprintf(desc, sizeof(desc), "nothing");
    snprintf(err, errlen, "%s: expected %s, got %s", path, want, desc);
    return -1;
}

static int oom(reader *r)
{
    snprintf(r->err, r->errlen, "out of memory");
    return -1;
}

/* A whole number >= 0 that a double holds exactly. */
static int json_count(const cJSON *v, long long *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > (double)MAX_COUNT || floor(v->valuedouble) != v->valuedouble)
        return -1;
    *out = (long long)v->valuedouble;
    return 0;
}

/* A bool field: absent means dflt; otherwise true or false. */
static int json_flag(const cJSON *obj, const char *key, int dflt, const char *path, int *out,
                     char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        char p[192];
        snprintf(p, sizeof(p), "%s.%s", path, key);
        return shape_error(err, errlen, p, "true or false", v);
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A string field that may hold a credential: absent or null -> NULL. A wrong
 * value is described by its kind, never its text or digits. */
static int json_text(const cJSON *obj, const char *key, const char *path, const char **out,
                     char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return 0;
    }
    snprintf(err, errlen, "%s.%s: expected a string, got %s", path, key,
             cJSON_IsNumber(v)   ? "a number"
             : cJSON_IsBool(v)   ? "true or false"
             : cJSON_IsArray(v)  ? "an array"
             : cJSON_IsObject(v) ? "an object"
                                 : "an unknown value");
    return -1;
}

/*--- Reading the answer ------------------------------------------------------*/

static route *new_route(reader *r)
{
    if (r->nroutes == r->rcap) {
        size_t cap = r->rcap ? r->rcap * 2 : 16;
        route *g = realloc(r->routes, cap * sizeof(*g));
        if (!g)
            return NULL;
        r->routes = g;
        r->rcap = cap;
    }
    route *rt = &r->routes[r->nroutes++];
    memset(rt, 0, sizeof(*rt));
    return rt;
}

/* Route order: the default profile first, then ascending profile id. */
static int by_route_order(const void *a, const void *b)
{
    const route *x = a, *y = b;
    if (x->is_default != y->is_default)
        return y->is_default - x->is_default;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

/* One active profile p (path names it) of account acc as a route. */
static int read_profile(reader *r, const cJSON *pr, const char *p, size_t acc, size_t j, int xc,
                        long long group, const char *url, const char *user, const char *pass)
{
    long long pid, m;
    char q[224];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(pr, "id");
    if (json_count(v, &pid) < 0) {
        snprintf(q, sizeof(q), "%s.id", p);
        return shape_error(r->err, r->errlen, q, "an integer >= 0", v);
    }
    v = cJSON_GetObjectItemCaseSensitive(pr, "max_streams");
    if (json_count(v, &m) < 0) {
        snprintf(q, sizeof(q), "%s.max_streams", p);
        return shape_error(r->err, r->errlen, q, "an integer >= 0", v);
    }
    int def;
    const char *search, *replace;
    if (json_flag(pr, "is_default", 0, p, &def, r->err, r->errlen) < 0 ||
        json_text(pr, "search_pattern", p, &search, r->err, r->errlen) < 0 ||
        json_text(pr, "replace_pattern", p, &replace, r->err, r->errlen) < 0)
        return -1;
    if (!sfl_dispatcharr_is_identity(search, replace)) {
        /* A pattern sfl cannot run is a login it cannot use: left out (and
         * reported), not a reason to refuse every other account's limits. */
        char why[112];
        sfl_rewrite *rw = sfl_rewrite_new(search, replace ? replace : "", why, sizeof(why));
        if (!rw) {
            dropped *d = realloc(r->dropped, (r->ndropped + 1) * sizeof(*d));
            if (!d)
                return oom(r);
            r->dropped = d;
            d[r->ndropped] = (dropped){r->reading, pid, ""};
            snprintf(d[r->ndropped++].why, sizeof(d->why), "%s", why);
            return 0;
        }
        sfl_rewrite_free(rw);
    }
    route *rt = new_route(r);
    if (!rt)
        return oom(r);
    *rt = (route){
        .pid = pid, .max = m, .is_default = def, .acc = acc, .j = j, .xc = xc, .group = group};
    if (!sfl_dispatcharr_is_identity(search, replace)) {
        rt->search = search;
        rt->replace = replace ? replace : "";
    }
    return sfl_dispatcharr_login_of(url, user, pass, xc, rt->search, rt->replace, &rt->login) < 0
               ? oom(r)
               : 0;
}

/* One account: 1 and its routes added when active, 0 when inactive, -1 on a
 * wrong shape. */
static int read_account(reader *r, const cJSON *a, size_t idx)
{
    char path[64], p[160];
    snprintf(path, sizeof(path), "[%zu]", idx);
    if (!cJSON_IsObject(a))
        return shape_error(r->err, r->errlen, path, "an account object", a);
    int active;
    if (json_flag(a, "is_active", 1, path, &active, r->err, r->errlen) < 0)
        return -1;
    if (!active)
        return 0;
    long long id, own, group = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "id");
    if (json_count(v, &id) < 0) {
        snprintf(p, sizeof(p), "%s.id", path);
        return shape_error(r->err, r->errlen, p, "an integer >= 0", v);
    }
    snprintf(path, sizeof(path), "[%zu] (account %lld)", idx, id);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "name");
    if (name && !cJSON_IsNull(name) && !cJSON_IsString(name)) {
        snprintf(p, sizeof(p), "%s.name", path);
        return shape_error(r->err, r->errlen, p, "a string", name);
    }
    v = cJSON_GetObjectItemCaseSensitive(a, "max_streams");
    if (json_count(v, &own) < 0) {
        snprintf(p, sizeof(p), "%s.max_streams", path);
        return shape_error(r->err, r->errlen, p, "an integer >= 0", v);
    }
    v = cJSON_GetObjectItemCaseSensitive(a, "server_group");
    if (v && !cJSON_IsNull(v) && json_count(v, &group) < 0) {
        snprintf(p, sizeof(p), "%s.server_group", path);
        return shape_error(r->err, r->errlen, p, "an integer >= 0 or null", v);
    }
    const char *type, *url, *user, *pass;
    if (json_text(a, "account_type", path, &type, r->err, r->errlen) < 0 ||
        json_text(a, "server_url", path, &url, r->err, r->errlen) < 0 ||
        json_text(a, "username", path, &user, r->err, r->errlen) < 0 ||
        json_text(a, "password", path, &pass, r->err, r->errlen) < 0)
        return -1;
    int xc = type && !strcmp(type, "XC");
    const cJSON *profiles = cJSON_GetObjectItemCaseSensitive(a, "profiles");
    if (profiles && !cJSON_IsNull(profiles) && !cJSON_IsArray(profiles)) {
        snprintf(p, sizeof(p), "%s.profiles", path);
        return shape_error(r->err, r->errlen, p, "an array", profiles);
    }
    size_t first = r->nroutes, j = 0;
    const cJSON *list = cJSON_IsArray(profiles) ? profiles : NULL, *pr;
    cJSON_ArrayForEach(pr, list)
    {
        snprintf(p, sizeof(p), "%s.profiles[%zu]", path, j);
        if (!cJSON_IsObject(pr))
            return shape_error(r->err, r->errlen, p, "a profile object", pr);
        int pactive;
        if (json_flag(pr, "is_active", 1, p, &pactive, r->err, r->errlen) < 0)
            return -1;
        r->reading = id;
        if (pactive && read_profile(r, pr, p, r->naccs, j, xc, group, url, user, pass) < 0)
            return -1;
        j++;
    }
    if (r->nroutes == first) {
        route *rt = new_route(r);
        if (!rt)
            return oom(r);
        *rt = (route){
            .pid = -1, .max = own, .acc = r->naccs, .j = SIZE_MAX, .xc = xc, .group = group};
        if (sfl_dispatcharr_login_of(url, user, pass, xc, NULL, NULL, &rt->login) < 0)
            return oom(r);
    }
    qsort(r->routes + first, r->nroutes - first, sizeof(route), by_route_order);
    r->accs[r->naccs++] = (parsed_acc){.id = id,
                                       .own = own,
                                       .name = cJSON_IsString(name) ? name->valuestring : NULL,
                                       .idx = idx,
                                       .first = first,
                                       .count = r->nroutes - first};
    return 1;
}

/*--- Shared logins -------------------------------------------------------------*/

static size_t find(route *rs, size_t i)
{
    while (rs[i].set != i) {
        rs[i].set = rs[rs[i].set].set;
        i = rs[i].set;
    }
    return i;
}

static void join(route *rs, size_t a, size_t b)
{
    a = find(rs, a);
    b = find(rs, b);
    if (a != b)
        rs[a > b ? a : b].set = a < b ? a : b;
}

static int by_pid(const void *a, const void *b)
{
    const route *x = *(route *const *)a, *y = *(route *const *)b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Dispatcharr's rule: server group, username, password. */
static int has_group_key(const route *r)
{
    return r->group >= 0 && r->login.user && r->login.pass;
}

static int by_group_key(const void *a, const void *b)
{
    const route *x = *(route *const *)a, *y = *(route *const *)b;
    if (x->group != y->group)
        return (x->group > y->group) - (x->group < y->group);
    int c = strcmp(x->login.user, y->login.user);
    return c ? c : strcmp(x->login.pass, y->login.pass);
}

/* The provider's rule: XC server host and username. */
static int has_server_key(const route *r)
{
    return r->xc && r->login.host && r->login.user;
}

static int by_server_key(const void *a, const void *b)
{
    const route *x = *(route *const *)a, *y = *(route *const *)b;
    int c = strcmp(x->login.host, y->login.host);
    return c ? c : strcmp(x->login.user, y->login.user);
}

/* Joins the routes that have a key and whose keys compare equal. */
static void join_by(route *rs, route **tmp, size_t n, int (*has)(const route *),
                    int (*cmp)(const void *, const void *))
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (has(&rs[i]))
            tmp[k++] = &rs[i];
    qsort(tmp, k, sizeof(*tmp), cmp);
    for (size_t i = 1; i < k; i++)
        if (cmp(&tmp[i - 1], &tmp[i]) == 0)
            join(rs, (size_t)(tmp[i - 1] - rs), (size_t)(tmp[i] - rs));
}

/* The smaller limit; 0 (unlimited) is the largest. */
static long long smaller(long long a, long long b)
{
    return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

/* What a set of routes that is one login gets. */
typedef struct login_set {
    long long min_pid; /* -1: no profile in it */
    long long min_acc; /* smallest account id of its account-level routes */
    long long max;
    int seen;
    size_t taken_by; /* 1 + the index of the last account given it */
} login_set;

static void set_id(const login_set *s, char *buf, size_t len)
{
    if (s->min_pid >= 0)
        snprintf(buf, len, "d%lld", s->min_pid);
    else
        snprintf(buf, len, "a%lld", s->min_acc);
}

/* Profile ids are unique in Dispatcharr: twice is a broken answer, and would
 * make two logins one. */
static int check_unique(reader *r, route **tmp)
{
    size_t k = 0;
    for (size_t i = 0; i < r->nroutes; i++)
        if (r->routes[i].pid >= 0)
            tmp[k++] = &r->routes[i];
    qsort(tmp, k, sizeof(*tmp), by_pid);
    for (size_t i = 1; i < k; i++) {
        if (tmp[i - 1]->pid != tmp[i]->pid)
            continue;
        const route *x = tmp[i - 1], *y = tmp[i];
        if (x->acc > y->acc || (x->acc == y->acc && x->j > y->j)) {
            const route *t = x;
            x = y;
            y = t;
        }
        const parsed_acc *ax = &r->accs[x->acc], *ay = &r->accs[y->acc];
        snprintf(r->err, r->errlen,
                 "[%zu] (account %lld).profiles[%zu].id: profile %lld again (first at [%zu] "
                 "(account %lld).profiles[%zu])",
                 ay->idx, ay->id, y->j, y->pid, ax->idx, ax->id, x->j);
        return -1;
    }
    return 0;
}

/* Every route's set resolved: sets[root] filled. */
static void resolve(reader *r, login_set *sets)
{
    for (size_t i = 0; i < r->nroutes; i++) {
        route *rt = &r->routes[i];
        login_set *s = &sets[find(r->routes, i)];
        long long acc = r->accs[rt->acc].id;
        if (!s->seen) {
            *s = (login_set){.min_pid = -1, .min_acc = -1, .max = rt->max, .seen = 1};
        }
        s->max = smaller(s->max, rt->max);
        if (rt->pid >= 0 && (s->min_pid < 0 || rt->pid < s->min_pid))
            s->min_pid = rt->pid;
        if (rt->pid < 0 && (s->min_acc < 0 || acc < s->min_acc))
            s->min_acc = acc;
    }
}

static int list_conflicts(reader *r, const login_set *sets, sfl_dispatcharr_conflict **out,
                          size_t *nout)
{
    size_t k = r->ndropped;
    for (size_t i = 0; i < r->nroutes; i++)
        k += r->routes[i].max != sets[find(r->routes, i)].max;
    if (k == 0)
        return 0;
    sfl_dispatcharr_conflict *c = calloc(k, sizeof(*c));
    if (!c)
        return oom(r);
    k = 0;
    for (size_t i = 0; i < r->nroutes; i++) {
        const route *rt = &r->routes[i];
        const login_set *s = &sets[find(r->routes, i)];
        if (rt->max == s->max)
            continue;
        set_id(s, c[k].login, sizeof(c[k].login));
        c[k].account_id = r->accs[rt->acc].id;
        c[k].profile_id = rt->pid;
        c[k].max_streams = rt->max;
        c[k].used = s->max;
        k++;
    }
    for (size_t i = 0; i < r->ndropped; i++, k++) {
        c[k].account_id = r->dropped[i].account_id;
        c[k].profile_id = r->dropped[i].profile_id;
        snprintf(c[k].why, sizeof(c[k].why), "%s", r->dropped[i].why);
    }
    *out = c;
    *nout = k;
    return 0;
}

/* The output entry of parsed account ai: its logins (one per set, the first
 * route of each in route order), their sum, its escaped name. */
static int build_account(reader *r, size_t ai, login_set *sets, sfl_account_conf *acc)
{
    const parsed_acc *pa = &r->accs[ai];
    acc->id = pa->id;
    /* A name with control characters (or bytes that are not UTF-8) is kept
     * escaped, "\x1b[31m" for ESC [31m: refusing the whole sync for one odd
     * name would leave every limit stale. */
    if (pa->name && !(acc->name = sfl_text_escape_dup(pa->name)))
        return oom(r);
    if (!(acc->logins = calloc(pa->count, sizeof(*acc->logins))))
        return oom(r);
    long long sum = 0;
    int unlimited = 0;
    for (size_t i = pa->first; i < pa->first + pa->count; i++) {
        login_set *s = &sets[find(r->routes, i)];
        if (s->taken_by == ai + 1)
            continue;
        s->taken_by = ai + 1;
        const route *rt = &r->routes[i];
        sfl_login_conf *l = &acc->logins[acc->nlogins++];
        char id[24];
        set_id(s, id, sizeof(id));
        l->max_streams = s->max;
        if (!(l->id = strdup(id)) || (rt->search && !(l->search = strdup(rt->search))) ||
            (rt->search && !(l->replace = strdup(rt->replace))))
            return oom(r);
        /* Every profile that is this login, in any account: their viewers
         * are its others' connections (viewers.c). */
        size_t set = find(r->routes, i);
        for (size_t j = 0; j < r->nroutes; j++)
            l->nprofiles += r->routes[j].pid >= 0 && find(r->routes, j) == set;
        if (l->nprofiles && !(l->profiles = calloc(l->nprofiles, sizeof(*l->profiles))))
            return oom(r);
        l->nprofiles = 0;
        for (size_t j = 0; j < r->nroutes; j++)
            if (r->routes[j].pid >= 0 && find(r->routes, j) == set)
                l->profiles[l->nprofiles++] = r->routes[j].pid;
        if (s->max == 0)
            unlimited = 1;
        else
            sum = sum > MAX_COUNT - s->max ? MAX_COUNT : sum + s->max;
    }
    acc->max_streams = unlimited ? 0 : sum;
    return 0;
}

/*--- The whole answer ----------------------------------------------------------*/

int sfl_dispatcharr_limits_from_json(const char *json, size_t len, sfl_account_conf **out,
                                     size_t *n, sfl_dispatcharr_conflict **conflicts,
                                     size_t *nconflicts, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (conflicts) {
        *conflicts = NULL;
        *nconflicts = 0;
    }
    cJSON *doc = sfl_json_parse(json, len, "accounts", err, errlen);
    if (!doc)
        return -1;
    reader r = {.err = err, .errlen = errlen};
    sfl_account_conf *accs = NULL;
    sfl_dispatcharr_conflict *conf = NULL;
    size_t got = 0, nconf = 0;
    route **tmp = NULL;
    login_set *sets = NULL;
    int rc = -1;
    if (!cJSON_IsArray(doc)) {
        shape_error(err, errlen, "accounts", "a JSON array of accounts", doc);
        goto done;
    }
    size_t total = (size_t)cJSON_GetArraySize(doc);
    if (total > 0 && !(r.accs = calloc(total, sizeof(*r.accs)))) {
        oom(&r);
        goto done;
    }
    size_t i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, doc)
    {
        if (read_account(&r, a, i++) < 0)
            goto done;
    }
    if (r.naccs == 0) { /* no active account: nothing more to do */
        rc = 0;
        goto done;
    }
    if (!(tmp = malloc(r.nroutes * sizeof(*tmp))) || !(sets = calloc(r.nroutes, sizeof(*sets))) ||
        !(accs = calloc(r.naccs, sizeof(*accs)))) {
        oom(&r);
        goto done;
    }
    if (check_unique(&r, tmp) < 0)
        goto done;
    for (i = 0; i < r.nroutes; i++)
        r.routes[i].set = i;
    join_by(r.routes, tmp, r.nroutes, has_group_key, by_group_key);
    join_by(r.routes, tmp, r.nroutes, has_server_key, by_server_key);
    resolve(&r, sets);
    for (got = 0; got < r.naccs; got++)
        if (build_account(&r, got, sets, &accs[got]) < 0) {
            got++; /* its partial entry is freed too */
            goto done;
        }
    if (conflicts && list_conflicts(&r, sets, &conf, &nconf) < 0)
        goto done;
    rc = 0;
done:
    for (i = 0; i < r.nroutes; i++)
        sfl_dispatcharr_login_clear(&r.routes[i].login);
    free(r.routes);
    free(r.dropped);
    free(r.accs);
    free(tmp);
    free(sets);
    cJSON_Delete(doc);
    if (rc < 0) {
        sfl_dispatcharr_accounts_free(accs, got);
        return -1;
    }
    *out = accs;
    *n = got;
    if (conflicts) {
        *conflicts = conf;
        *nconflicts = nconf;
    }
    return 0;
}

void sfl_dispatcharr_accounts_free(sfl_account_conf *accs, size_t n)
{
    if (!accs)
        return;
    for (size_t i = 0; i < n; i++)
        sfl_account_conf_clear(&accs[i]);
    free(accs);
}
