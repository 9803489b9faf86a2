/* viewers.c - one node polls Dispatcharr's viewers; Redis counts them on
 * their logins (viewers.h).
 *
 * A poll is two GETs on a client of its own (the sync's may be busy), then
 * one others.lua per governed login. A poll that fails writes nothing: the
 * figures age and, past max_age_ms, their logins stop granting. The answers
 * carry provider URLs with credentials: nothing of them is logged or kept. */
#include "viewers.h"

#include "clock.h"
#include "conf.h"
#include "dispatcharr.h"
#include "lease_script.h"
#include "log.h"
#include "role.h"
#include "routes.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vlogin {
    char prefix[SFL_KEY_PREFIX_LEN];
    char id[SFL_LOGIN_ID_LEN];
    long long *profiles;
    size_t nprofiles;
} vlogin;

struct sfl_viewers {
    struct event_base *base;
    sfl_store *store;
    sfl_dispatcharr *dc;
    int64_t poll_ms, max_age_ms;
    sfl_role *role; /* the poller's: only its holder polls */
    struct event *poll_timer;
    int polling;   /* a poll in flight */
    char *ts_body; /* /proxy/ts/status, kept until /proxy/stats/ comes */
    size_t ts_len;
    vlogin *logins;
    size_t nlogins;
    int64_t last_warn_ms; /* failures are said once in a while, not every poll */
    sfl_others_seen seen; /* told of each figure written (history), or fn NULL */
};

/*--- Counting (pure) ---------------------------------------------------------*/

static int profile_of(const cJSON *o, long long *out)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "m3u_profile_id");
    if (cJSON_IsNumber(p)) {
        *out = (long long)p->valuedouble;
        return 0;
    }
    if (cJSON_IsString(p) && p->valuestring[0]) {
        char *end;
        *out = strtoll(p->valuestring, &end, 10);
        return *end ? -1 : 0;
    }
    return -1;
}

static int holds_connection(const cJSON *channel)
{
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(channel, "state"));
    return !state || (strcmp(state, "error") != 0 && strcmp(state, "stopped") != 0);
}

/* The count of profile in the two parsed answers; -1 if not their shape. */
static long long count_in(const cJSON *ts, const cJSON *st, long long profile)
{
    const cJSON *channels = cJSON_GetObjectItemCaseSensitive(ts, "channels");
    if (!cJSON_IsArray(channels) || !cJSON_IsObject(st))
        return -1;
    long long n = 0, p;
    const cJSON *c;
    cJSON_ArrayForEach(c, channels)
    {
        if (profile_of(c, &p) == 0 && p == profile && holds_connection(c))
            n++;
    }
    static const char *const sessions[] = {"vod", "catchup"};
    for (size_t k = 0; k < 2; k++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(st, sessions[k]);
        if (!cJSON_IsArray(list))
            continue;
        cJSON_ArrayForEach(c, list)
        {
            if (profile_of(c, &p) == 0 && p == profile)
                n++;
        }
    }
    return n;
}

long long sfl_viewers_count(const char *ts_status, size_t ts_len, const char *stats,
                            size_t stats_len, long long profile)
{
    cJSON *ts = cJSON_ParseWithLength(ts_status, ts_len);
    cJSON *st = cJSON_ParseWithLength(stats, stats_len);
    long long n = count_in(ts, st, profile);
    cJSON_Delete(ts);
    cJSON_Delete(st);
    return n;
}

/*--- Polling -----------------------------------------------------------------*/

static void warn_once_in_a_while(sfl_viewers *v, const char *what, const char *err)
{
    int64_t now = sfl_mono_ms();
    if (v->last_warn_ms && now - v->last_warn_ms < 30000)
        return;
    v->last_warn_ms = now;
    sfl_warn("viewers: %s: %s; the logins it governs grant nothing once their figure is "
             "%lld ms old",
             what, err, (long long)v->max_age_ms);
}

/* Both answers are in: parsed once, then one others.lua per login. */
static void write_figures(sfl_viewers *v, const char *stats, size_t len)
{
    cJSON *ts = cJSON_ParseWithLength(v->ts_body, v->ts_len);
    cJSON *st = cJSON_ParseWithLength(stats, len);
    for (size_t i = 0; i < v->nlogins; i++) {
        const vlogin *l = &v->logins[i];
        long long n = 0;
        for (size_t k = 0; k < l->nprofiles && n >= 0; k++) {
            long long c = count_in(ts, st, l->profiles[k]);
            n = c < 0 ? -1 : n + c;
        }
        if (n < 0) {
            warn_once_in_a_while(v, "Dispatcharr's proxy",
                                 "an answer that is not the JSON "
                                 "expected");
            break;
        }
        sfl_lease_script_others_seen(v->store, l->prefix, l->id, n, "dispatcharr", v->max_age_ms,
                                     "others", &v->seen);
    }
    cJSON_Delete(ts);
    cJSON_Delete(st);
}

static void on_stats(const char *body, size_t len, const char *err, void *arg)
{
    sfl_viewers *v = arg;
    v->polling = 0;
    if (err)
        warn_once_in_a_while(v, "GET /proxy/stats/", err);
    else if (sfl_role_held(v->role))
        write_figures(v, body, len);
    free(v->ts_body);
    v->ts_body = NULL;
}

static void on_ts_status(const char *body, size_t len, const char *err, void *arg)
{
    sfl_viewers *v = arg;
    if (err || !(v->ts_body = malloc(len ? len : 1))) {
        v->polling = 0;
        warn_once_in_a_while(v, "GET /proxy/ts/status", err ? err : "out of memory");
        return;
    }
    memcpy(v->ts_body, body, len);
    v->ts_len = len;
    if (sfl_dispatcharr_get(v->dc, "/proxy/stats/", on_stats, NULL, v) < 0) {
        v->polling = 0;
        free(v->ts_body);
        v->ts_body = NULL;
    }
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    sfl_viewers *v = arg;
    UNUSED(fd);
    UNUSED(what);
    if (!sfl_role_held(v->role))
        return; /* on_role starts polling again when it is ours */
    sfl_timer_in(v->poll_timer, v->poll_ms);
    if (v->polling || v->nlogins == 0 || !sfl_store_ready(v->store))
        return;
    if (sfl_dispatcharr_get(v->dc, "/proxy/ts/status", on_ts_status, NULL, v) == 0)
        v->polling = 1;
}

static void on_role(int held, void *arg)
{
    sfl_viewers *v = arg;
    if (held && !evtimer_pending(v->poll_timer, NULL))
        sfl_timer_in(v->poll_timer, 0);
}

/*--- Life --------------------------------------------------------------------*/

sfl_viewers *sfl_viewers_new(struct event_base *base, sfl_store *store, const sfl_conf *conf,
                             const char *node_id, char *err, size_t errlen)
{
    sfl_viewers *v = calloc(1, sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    v->base = base;
    v->store = store;
    v->poll_ms = conf->dispatcharr_poll_ms;
    v->max_age_ms = conf->dispatcharr_max_age_ms;
    /* A dead poller's successor must be polling before the figures go
     * stale: the key outlives its holder by up to a TTL, the others ask
     * every third of one, and the first poll takes up to poll_ms. So
     * TTL + TTL/3 + poll_ms < max_age_ms, with a poll to spare. */
    int64_t ttl = (conf->dispatcharr_max_age_ms - 2 * conf->dispatcharr_poll_ms) * 3 / 4;
    v->poll_timer = evtimer_new(base, on_poll_timer, v);
    v->role = sfl_role_new(base, store, "dispatcharr", node_id, ttl, on_role, v);
    if (!v->poll_timer || !v->role || !(v->dc = sfl_dispatcharr_new(base, conf, err, errlen))) {
        if (!v->poll_timer || !v->role)
            snprintf(err, errlen, "out of memory");
        sfl_viewers_free(v);
        return NULL;
    }
    return v;
}

static void logins_clear(sfl_viewers *v)
{
    for (size_t i = 0; i < v->nlogins; i++)
        free(v->logins[i].profiles);
    free(v->logins);
    v->logins = NULL;
    v->nlogins = 0;
}

void sfl_viewers_free(sfl_viewers *v)
{
    if (!v)
        return;
    sfl_role_free(v->role); /* gives it up: another node need not wait a TTL */
    sfl_dispatcharr_free(v->dc);
    if (v->poll_timer)
        event_free(v->poll_timer);
    free(v->ts_body);
    logins_clear(v);
    free(v);
}

void sfl_viewers_set_logins(sfl_viewers *v, sfl_routes *routes, const sfl_account_conf *accs,
                            size_t n)
{
    logins_clear(v);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += accs[i].nlogins;
    if (total == 0 || !(v->logins = calloc(total, sizeof(*v->logins))))
        return;
    for (size_t i = 0; i < n; i++) {
        const sfl_route *rt = sfl_routes_get(routes, accs[i].id);
        for (size_t k = 0; rt && k < accs[i].nlogins; k++) {
            const sfl_login_conf *lc = &accs[i].logins[k];
            const sfl_login *lg = sfl_route_login(rt, lc->id, NULL);
            int seen = 0; /* a login shared by accounts is counted once */
            for (size_t j = 0; lg && j < v->nlogins && !seen; j++)
                seen = strcmp(v->logins[j].prefix, lg->prefix) == 0;
            if (!lg || seen || lc->nprofiles == 0)
                continue;
            vlogin *vl = &v->logins[v->nlogins];
            if (!(vl->profiles = malloc(lc->nprofiles * sizeof(*vl->profiles))))
                continue;
            memcpy(vl->profiles, lc->profiles, lc->nprofiles * sizeof(*vl->profiles));
            vl->nprofiles = lc->nprofiles;
            snprintf(vl->prefix, sizeof(vl->prefix), "%s", lg->prefix);
            snprintf(vl->id, sizeof(vl->id), "%s", lg->id);
            v->nlogins++;
        }
    }
}

void sfl_viewers_on_seen(sfl_viewers *v, const sfl_others_seen *seen)
{
    if (v)
        v->seen = *seen;
}

void sfl_viewers_on_ready(sfl_viewers *v)
{
    if (v)
        sfl_role_kick(v->role);
}

int sfl_viewers_polling(const sfl_viewers *v)
{
    return v && sfl_role_held(v->role);
}
