/* routes.c - accounts to logins, logins to keys (routes.h).
 *
 * Every change rebuilds the whole table from the accounts set so far: logins
 * are found by sorting (login id, account) pairs, groups by union-find over
 * the accounts a login joins. A change is rare (start, a sync, a PUT); a
 * lookup is one hash probe. */
#include "routes.h"

#include "conf.h"
#include "idmap.h"
#include "log.h"
#include "rewrite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sfl_routes {
    char ns[64];
    sfl_idmap *map;     /* account -> sfl_route */
    sfl_login **logins; /* every login, owned */
    size_t nlogins;
    sfl_account_conf *specs; /* what was set, deep copies */
    size_t nspecs;
};

/*--- One route -------------------------------------------------------------*/

static void route_free(sfl_route *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; rt->rw && i < rt->nlogins; i++)
        sfl_rewrite_free(rt->rw[i]);
    free(rt->rw);
    free(rt->logins);
    free(rt);
}

static void route_free_cb(long long id, void *value, void *arg)
{
    (void)id;
    (void)arg;
    route_free(value);
}

static void logins_free(sfl_login **l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(l[i]->accounts);
        free(l[i]);
    }
    free(l);
}

static void set_prefixes(const char *ns, sfl_route *rt)
{
    if (rt->account == rt->group)
        snprintf(rt->waiters, sizeof(rt->waiters), "%s:{a:%lld}:", ns, rt->group);
    else
        snprintf(rt->waiters, sizeof(rt->waiters), "%s:{a:%lld}:a:%lld:", ns, rt->group,
                 rt->account);
}

/*--- Building --------------------------------------------------------------*/

typedef struct pair {
    const char *login; /* id */
    long long id;      /* the account's */
    size_t acc;        /* index into the build's accounts */
    size_t pos;        /* place in that account's route */
} pair;

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    int c = strcmp(x->login, y->login);
    if (c)
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* One account as the build sees it. */
typedef struct build_acc {
    long long id;
    int configured;
    const sfl_account_conf *spec; /* NULL: made on first use */
    char implicit[SFL_LOGIN_ID_LEN];
    size_t nlogins;
    size_t parent; /* union-find */
    sfl_route *rt;
} build_acc;

static size_t uf_find(build_acc *a, size_t i)
{
    while (a[i].parent != i) {
        a[i].parent = a[a[i].parent].parent;
        i = a[i].parent;
    }
    return i;
}

static void uf_union(build_acc *a, size_t i, size_t j)
{
    i = uf_find(a, i);
    j = uf_find(a, j);
    if (i == j)
        return;
    if (a[j].id < a[i].id)
        a[i].parent = j;
    else
        a[j].parent = i;
}

static const char *login_id_of(const build_acc *b, size_t pos)
{
    return b->spec && b->spec->nlogins ? b->spec->logins[pos].id : b->implicit;
}

static long long login_max_of(const build_acc *b, size_t pos)
{
    if (!b->spec)
        return -1;
    return b->spec->nlogins ? b->spec->logins[pos].max_streams : b->spec->max_streams;
}

/* The known limit a login had before the rebuild, -1 if none. */
static long long old_known(const sfl_routes *r, const char *id)
{
    for (size_t i = 0; i < r->nlogins; i++)
        if (strcmp(r->logins[i]->id, id) == 0)
            return r->logins[i]->known;
    return -1;
}

typedef struct collect {
    build_acc *accs;
    size_t n;
    const sfl_routes *r;
} collect;

static void collect_implicit(long long id, void *value, void *arg)
{
    collect *c = arg;
    sfl_route *rt = value;
    if (rt->configured)
        return;
    for (size_t i = 0; i < c->r->nspecs; i++)
        if (c->r->specs[i].id == id)
            return;
    c->accs[c->n++] = (build_acc){.id = id, .nlogins = 1};
}

/* Builds the whole table from specs (and the routes made on first use) into
 * map/logins. -1 with err when a rewrite does not compile or memory runs out. */
static int build(const sfl_routes *r, sfl_idmap **map_out, sfl_login ***logins_out,
                 size_t *nlogins_out, char *err, size_t errlen)
{
    size_t nold = r->map ? sfl_idmap_count(r->map) : 0;
    size_t cap = r->nspecs + nold;
    build_acc *accs = calloc(cap ? cap : 1, sizeof(*accs));
    collect c = {accs, 0, r};
    sfl_idmap *map = sfl_idmap_new();
    pair *pairs = NULL;
    sfl_login **logins = NULL;
    size_t npairs = 0, nlogins = 0;
    int rc = -1;
    if (!accs || !map)
        goto oom;
    for (size_t i = 0; i < r->nspecs; i++) {
        const sfl_account_conf *s = &r->specs[i];
        accs[c.n++] = (build_acc){
            .id = s->id, .configured = 1, .spec = s, .nlogins = s->nlogins ? s->nlogins : 1};
    }
    if (r->map)
        sfl_idmap_each(r->map, collect_implicit, &c);
    for (size_t i = 0; i < c.n; i++) {
        accs[i].parent = i;
        snprintf(accs[i].implicit, sizeof(accs[i].implicit), "%lld", accs[i].id);
        npairs += accs[i].nlogins;
    }
    pairs = calloc(npairs ? npairs : 1, sizeof(*pairs));
    logins = calloc(npairs ? npairs : 1, sizeof(*logins));
    if (!pairs || !logins)
        goto oom;
    npairs = 0;
    for (size_t i = 0; i < c.n; i++)
        for (size_t p = 0; p < accs[i].nlogins; p++)
            pairs[npairs++] = (pair){login_id_of(&accs[i], p), accs[i].id, i, p};
    qsort(pairs, npairs, sizeof(*pairs), pair_cmp);
    /* Routes, then one login per run of equal ids. */
    for (size_t i = 0; i < c.n; i++) {
        sfl_route *rt = calloc(1, sizeof(*rt));
        if (!rt || sfl_idmap_put(map, accs[i].id, rt) < 0) {
            free(rt);
            goto oom;
        }
        accs[i].rt = rt;
        rt->account = accs[i].id;
        rt->configured = accs[i].configured;
        rt->nlogins = accs[i].nlogins;
        rt->logins = calloc(rt->nlogins, sizeof(*rt->logins));
        rt->rw = calloc(rt->nlogins, sizeof(*rt->rw));
        if (!rt->logins || !rt->rw)
            goto oom;
    }
    for (size_t i = 0; i < npairs;) {
        size_t j = i;
        while (j < npairs && strcmp(pairs[j].login, pairs[i].login) == 0)
            j++;
        sfl_login *lg = calloc(1, sizeof(*lg));
        if (!lg)
            goto oom;
        logins[nlogins++] = lg;
        snprintf(lg->id, sizeof(lg->id), "%s", pairs[i].login);
        lg->max_streams = -1;
        lg->accounts = calloc(j - i, sizeof(*lg->accounts));
        if (!lg->accounts)
            goto oom;
        for (size_t k = i; k < j; k++) {
            const build_acc *b = &accs[pairs[k].acc];
            long long m = login_max_of(b, pairs[k].pos);
            if (m >= 0 && lg->max_streams >= 0 && m != lg->max_streams) {
                long long smaller = m == 0                                        ? lg->max_streams
                                    : lg->max_streams == 0 || m < lg->max_streams ? m
                                                                                  : lg->max_streams;
                sfl_warn("login %s: max_streams %lld in account %lld, %lld elsewhere: %lld counts",
                         lg->id, m, b->id, lg->max_streams, smaller);
                m = smaller;
            }
            if (m >= 0)
                lg->max_streams = m;
            if (b->spec && b->spec->nlogins) {
                const sfl_login_conf *lc = &b->spec->logins[pairs[k].pos];
                if (lc->reserve > lg->reserve)
                    lg->reserve = lc->reserve;
                if (lc->cooldown_ms > lg->cooldown_ms)
                    lg->cooldown_ms = lc->cooldown_ms;
                if (lc->max_age_ms > 0 && (lg->max_age_ms == 0 || lc->max_age_ms < lg->max_age_ms))
                    lg->max_age_ms = lc->max_age_ms;
            }
            lg->accounts[lg->naccounts++] = b->id;
            b->rt->logins[pairs[k].pos] = lg;
            if (k > i)
                uf_union(accs, pairs[i].acc, pairs[k].acc);
        }
        lg->known = lg->max_streams >= 0 ? lg->max_streams : old_known(r, lg->id);
        i = j;
    }
    /* Groups, key prefixes, rewrites. */
    for (size_t i = 0; i < c.n; i++) {
        sfl_route *rt = accs[i].rt;
        rt->group = accs[uf_find(accs, i)].id;
        set_prefixes(r->ns, rt);
        const sfl_account_conf *s = accs[i].spec;
        for (size_t p = 0; s && p < s->nlogins; p++) {
            if (!s->logins[p].search)
                continue;
            char why[160];
            rt->rw[p] =
                sfl_rewrite_new(s->logins[p].search, s->logins[p].replace, why, sizeof(why));
            if (!rt->rw[p]) {
                snprintf(err, errlen, "account %lld, login %s: %s", s->id, s->logins[p].id, why);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < c.n; i++) {
        sfl_route *rt = accs[i].rt;
        sfl_route *root = sfl_idmap_get(map, rt->group);
        for (size_t p = 0; p < rt->nlogins; p++) {
            sfl_login *lg = rt->logins[p];
            if (root && root->logins[0] == lg)
                snprintf(lg->prefix, sizeof(lg->prefix), "%s:{a:%lld}:", r->ns, rt->group);
            else
                snprintf(lg->prefix, sizeof(lg->prefix), "%s:{a:%lld}:l:%s:", r->ns, rt->group,
                         lg->id);
        }
    }
    *map_out = map;
    *logins_out = logins;
    *nlogins_out = nlogins;
    map = NULL;
    logins = NULL;
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (map)
        sfl_idmap_each(map, route_free_cb, NULL);
    if (logins)
        logins_free(logins, nlogins);
    logins = NULL;
done:
    sfl_idmap_free(map);
    free(logins);
    free(pairs);
    free(accs);
    return rc;
}

/*--- The table -------------------------------------------------------------*/

sfl_routes *sfl_routes_new(const char *ns)
{
    sfl_routes *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->ns, sizeof(r->ns), "%s", ns);
    r->map = sfl_idmap_new();
    if (!r->map) {
        free(r);
        return NULL;
    }
    return r;
}

static void specs_free(sfl_account_conf *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sfl_account_conf_clear(&s[i]);
    free(s);
}

void sfl_routes_free(sfl_routes *r)
{
    if (!r)
        return;
    sfl_idmap_each(r->map, route_free_cb, NULL);
    sfl_idmap_free(r->map);
    logins_free(r->logins, r->nlogins);
    specs_free(r->specs, r->nspecs);
    free(r);
}

int sfl_routes_set(sfl_routes *r, const sfl_account_conf *accs, size_t n, char *err, size_t errlen)
{
    sfl_account_conf *specs = calloc(r->nspecs + n + 1, sizeof(*specs));
    size_t ns = 0;
    if (!specs)
        goto oom;
    for (size_t i = 0; i < r->nspecs; i++) {
        int replaced = 0;
        for (size_t j = 0; j < n && !replaced; j++)
            replaced = accs[j].id == r->specs[i].id;
        if (!replaced && sfl_account_conf_copy(&specs[ns++], &r->specs[i]) < 0)
            goto oom;
    }
    for (size_t j = 0; j < n; j++) {
        int dup = 0;
        for (size_t k = j + 1; k < n && !dup; k++)
            dup = accs[k].id == accs[j].id; /* the last entry of an id wins */
        if (!dup && sfl_account_conf_copy(&specs[ns++], &accs[j]) < 0)
            goto oom;
    }
    sfl_account_conf *old_specs = r->specs;
    size_t old_n = r->nspecs;
    r->specs = specs;
    r->nspecs = ns;
    sfl_idmap *map;
    sfl_login **logins;
    size_t nlogins;
    if (build(r, &map, &logins, &nlogins, err, errlen) < 0) {
        r->specs = old_specs;
        r->nspecs = old_n;
        specs_free(specs, ns);
        return -1;
    }
    specs_free(old_specs, old_n);
    sfl_idmap_each(r->map, route_free_cb, NULL);
    sfl_idmap_free(r->map);
    logins_free(r->logins, r->nlogins);
    r->map = map;
    r->logins = logins;
    r->nlogins = nlogins;
    return 0;
oom:
    if (specs)
        specs_free(specs, ns);
    snprintf(err, errlen, "out of memory");
    return -1;
}

const sfl_route *sfl_routes_get(sfl_routes *r, long long account)
{
    sfl_route *rt = sfl_idmap_get(r->map, account);
    if (rt)
        return rt;
    /* First use of an account nobody set: one login, the account id. */
    rt = calloc(1, sizeof(*rt));
    sfl_login *lg = calloc(1, sizeof(*lg));
    sfl_login **all = realloc(r->logins, (r->nlogins + 1) * sizeof(*all));
    if (all)
        r->logins = all;
    if (!rt || !lg || !all || !(rt->logins = calloc(1, sizeof(*rt->logins))) ||
        !(rt->rw = calloc(1, sizeof(*rt->rw))) || !(lg->accounts = malloc(sizeof(long long))) ||
        sfl_idmap_put(r->map, account, rt) < 0) {
        if (lg)
            free(lg->accounts);
        free(lg);
        route_free(rt);
        return NULL;
    }
    snprintf(lg->id, sizeof(lg->id), "%lld", account);
    lg->max_streams = -1;
    lg->known = -1;
    lg->accounts[0] = account;
    lg->naccounts = 1;
    snprintf(lg->prefix, sizeof(lg->prefix), "%s:{a:%lld}:", r->ns, account);
    r->logins[r->nlogins++] = lg;
    rt->account = rt->group = account;
    rt->logins[0] = lg;
    rt->nlogins = 1;
    set_prefixes(r->ns, rt);
    return rt;
}

const sfl_login *sfl_route_login(const sfl_route *rt, const char *id, size_t *idx)
{
    for (size_t i = 0; rt && i < rt->nlogins; i++)
        if (strcmp(rt->logins[i]->id, id) == 0) {
            if (idx)
                *idx = i;
            return rt->logins[i];
        }
    return NULL;
}

void sfl_routes_hint(sfl_routes *r, long long account, size_t idx, long long limit)
{
    sfl_route *rt = sfl_idmap_get(r->map, account);
    if (rt && idx < rt->nlogins && limit >= 0)
        rt->logins[idx]->known = limit;
}

typedef struct each_ctx {
    void (*fn)(const sfl_route *rt, void *arg);
    void *arg;
} each_ctx;

static void each_cb(long long id, void *value, void *arg)
{
    each_ctx *c = arg;
    (void)id;
    c->fn(value, c->arg);
}

void sfl_routes_each(const sfl_routes *r, void (*fn)(const sfl_route *rt, void *arg), void *arg)
{
    each_ctx c = {fn, arg};
    sfl_idmap_each(r->map, each_cb, &c);
}

char *sfl_route_url(const sfl_route *rt, size_t idx, const char *url)
{
    if (idx < rt->nlogins && rt->rw[idx])
        return sfl_rewrite_apply(rt->rw[idx], url);
    return strdup(url);
}

int sfl_login_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n < SFL_LOGIN_ID_LEN &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}
