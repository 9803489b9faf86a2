/* sources.c - a node's sources of others' connections (sources.h). */
#include "sources.h"

#include "conf.h"
#include "lease_script.h"
#include "viewers.h"
#include "xtream.h"

#include <stdio.h>
#include <stdlib.h>

struct sfl_sources {
    struct event_base *base;
    sfl_store *store;
    char node[96];
    sfl_viewers *viewers; /* NULL without dispatcharr.viewers */
    sfl_xtream *xtream;   /* NULL without a login's xtream */
    sfl_others_seen seen; /* given to both (history), or fn NULL */
};

sfl_sources *sfl_sources_new(struct event_base *base, sfl_store *store, sfl_routes *routes,
                             const sfl_conf *conf, char *err, size_t errlen)
{
    err[0] = '\0';
    sfl_sources *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->store = store;
    snprintf(s->node, sizeof(s->node), "%s", conf->node_id);
    if (conf->dispatcharr_viewers &&
        !(s->viewers = sfl_viewers_new(base, store, conf, conf->node_id, err, errlen))) {
        free(s);
        return NULL;
    }
    s->xtream = sfl_xtream_new(base, store, routes, conf->accounts, conf->naccounts, s->node);
    if (!s->viewers && !s->xtream) {
        free(s);
        return NULL; /* none: err "" */
    }
    return s;
}

void sfl_sources_free(sfl_sources *s)
{
    if (!s)
        return;
    sfl_viewers_free(s->viewers);
    sfl_xtream_free(s->xtream);
    free(s);
}

void sfl_sources_on_ready(sfl_sources *s)
{
    if (!s)
        return;
    sfl_viewers_on_ready(s->viewers);
    sfl_xtream_on_ready(s->xtream);
}

int sfl_sources_want_sync(const sfl_sources *s)
{
    return s && s->viewers;
}

void sfl_sources_synced(sfl_sources *s, sfl_routes *routes, const sfl_account_conf *accs, size_t n)
{
    if (s && s->viewers)
        sfl_viewers_set_logins(s->viewers, routes, accs, n);
}

void sfl_sources_configured(sfl_sources *s, sfl_routes *routes, const sfl_account_conf *accs,
                            size_t n)
{
    if (!s)
        return;
    sfl_xtream_free(s->xtream);
    s->xtream = sfl_xtream_new(s->base, s->store, routes, accs, n, s->node);
    sfl_xtream_on_seen(s->xtream, &s->seen);
}

void sfl_sources_on_seen(sfl_sources *s,
                         void (*fn)(const char *login, long long external, void *arg), void *arg)
{
    if (!s)
        return;
    s->seen = (sfl_others_seen){fn, arg};
    sfl_viewers_on_seen(s->viewers, &s->seen);
    sfl_xtream_on_seen(s->xtream, &s->seen);
}
