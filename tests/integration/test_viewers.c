/* test_viewers.c - issue #14 ("viewers first") against the real binaries:
 * `sflimit node`s syncing accounts from the fake Dispatcharr and polling
 * its proxy for viewers, a real redis-server, and the fake provider whose
 * own counts are the ground truth. A viewer is a real connection held to
 * the provider (th_viewer_start) and described to the fake Dispatcharr
 * (th_viewers_live) as the channel its proxy plays.
 *
 * What must hold: a login's checks and its viewers together stay within
 * its limit at the provider; while Dispatcharr cannot be read for longer
 * than max_age_ms no new check starts on the logins it governs (running
 * ones finish, other logins go on), and they start again once it answers;
 * when the node that polls dies, another takes the role and the figures
 * come fresh again. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "viewers-test-token"
#define API_KEY "Key-viewers-5e1f-distinctive"
#define TTL_MS 3000 /* TH_LEASE's ttl_ms: the poller role's TTL too */
#define POLL_MS 200
#define MAX_AGE_MS 1500
#define ACCOUNT 7 /* the Dispatcharr account; its one profile is login d70 */
#define PROFILE 70
#define PLAIN 1 /* an account of the node's config, not Dispatcharr's */
#define CONF_KEY "sfl:{a:7}:conf"
#define ROLE_KEY "sfl:role:dispatcharr"
#define MAX_NODES 2

typedef struct vnode {
    char id[16];
    pid_t pid;
    int port;
    char conf[256];
    char err[256];
} vnode;

static sfl_test_redis redis;
static sfl_test_provider provider;
static sfl_test_dispatcharr fake;
static char dir[128];
static vnode nodes[MAX_NODES];
static th_viewer viewer;
static int spawns;

static void setup(void)
{
    th_clear_env();
    memset(nodes, 0, sizeof(nodes));
    memset(&fake, 0, sizeof(fake));
    memset(&provider, 0, sizeof(provider));
    memset(&viewer, 0, sizeof(viewer));
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void node_reap(vnode *nd)
{
    if (nd->pid > 0) {
        kill(nd->pid, SIGKILL);
        waitpid(nd->pid, NULL, 0);
    }
    nd->pid = 0;
}

static void teardown(void)
{
    for (int i = 0; i < MAX_NODES; i++)
        node_reap(&nodes[i]);
    th_viewer_stop(&viewer);
    th_dispatcharr_stop(&fake);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(viewers, .init = setup, .fini = teardown, .timeout = 90);

/*--- The parties ------------------------------------------------------------*/

/* The fake Dispatcharr with one XC account (ACCOUNT) of one profile
 * (PROFILE, max_streams max) whose URLs are the provider's user u1. */
static void fake_start(long long max)
{
    char accounts[1024];
    snprintf(accounts, sizeof(accounts),
             "[{\"id\": %d, \"name\": \"Viewed\", \"server_url\": \"http://127.0.0.1:%d\",\n"
             "  \"max_streams\": %lld, \"is_active\": true, \"account_type\": \"XC\",\n"
             "  \"username\": \"u1\", \"password\": \"p1\", \"server_group\": null,\n"
             "  \"status\": \"success\", \"profiles\": [\n"
             "   {\"id\": %d, \"name\": \"Viewed Default\", \"max_streams\": %lld,\n"
             "    \"is_active\": true, \"is_default\": true, \"current_viewers\": 0,\n"
             "    \"search_pattern\": \"^(.*)$\", \"replace_pattern\": \"$1\",\n"
             "    \"custom_properties\": null}]}]\n",
             ACCOUNT, provider.port, max, PROFILE, max);
    th_dispatcharr_start(&fake, dir, accounts, NULL, API_KEY, NULL);
}

/* What Dispatcharr's proxy plays from now on: n channels of PROFILE, as
 * user u1 of the provider. */
static void fake_viewers(int n)
{
    th_viewers v;
    char buf[16384];
    th_viewers_init(&v);
    for (int i = 0; i < n; i++)
        th_viewers_live(&v, &(th_live){.profile = PROFILE,
                                       .stream = 500 + i,
                                       .user = "u1",
                                       .pass = "p1",
                                       .provider_port = provider.port,
                                       .clients = 1 + i});
    th_dispatcharr_viewers(&fake, th_viewers_json(&v, buf, sizeof(buf)));
    th_viewers_free(&v);
}

/* Starts node i as v<i+1>, with the Dispatcharr sync (every second) and
 * viewers (POLL_MS, MAX_AGE_MS), on a free loopback port; accounts: the
 * config's own (NULL: none). Waits for /healthz 200 and its registry key. */
static void node_start(int i, const char *accounts, int global_limit)
{
    vnode *nd = &nodes[i];
    snprintf(nd->id, sizeof(nd->id), "v%d", i + 1);
    for (int attempt = 0; attempt < 5; attempt++) {
        char extra[1024], name[32];
        nd->port = th_free_port();
        snprintf(extra, sizeof(extra),
                 ",\n \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"%s\"},\n"
                 " \"node\": {\"shutdown_grace\": 2},\n"
                 " \"dispatcharr\": {\"url\": \"http://127.0.0.1:%d\", \"api_key\": \"%s\",\n"
                 "                 \"sync_interval\": 1, \"viewers\": true,\n"
                 "                 \"poll_ms\": %d, \"max_age_ms\": %d}",
                 nd->port, TOKEN, fake.port, API_KEY, POLL_MS, MAX_AGE_MS);
        snprintf(name, sizeof(name), "%s.json", nd->id);
        th_write_config(dir,
                        &(th_config){.redis_url = redis.url,
                                     .node_id = nd->id,
                                     .accounts = accounts,
                                     .global_limit = global_limit,
                                     .acquire_timeout = 60,
                                     .extra = extra,
                                     .file = name},
                        nd->conf, sizeof(nd->conf));
        snprintf(nd->err, sizeof(nd->err), "%s/v%d.%d.err", dir, i + 1, spawns++);
        nd->pid = th_node_start(nd->conf, nd->port, nd->err, &redis, nd->id);
        if (nd->pid)
            return;
    }
    cr_assert_fail("node %s never got a port", nd->id);
}

/* The end of a node's stderr, for a message (a static buffer). */
static const char *node_log(const vnode *nd)
{
    static char buf[6000];
    char *log = th_read_file(nd->err);
    size_t n = log ? strlen(log) : 0;
    snprintf(buf, sizeof(buf), "%s", log ? log + (n > 5000 ? n - 5000 : 0) : "");
    free(log);
    return buf;
}

/*--- The provider's counts ----------------------------------------------------*/

static long long user_stat(const char *user, const char *what)
{
    char path[128];
    snprintf(path, sizeof(path), "users.%s.%s", user, what);
    return th_provider_stat(&provider, path);
}

typedef struct user_want {
    const char *user, *what;
    long long want;
} user_want;

static int user_stat_is(void *arg)
{
    const user_want *u = arg;
    return user_stat(u->user, u->what) == u->want;
}

/*--- The figure in Redis ------------------------------------------------------*/

/* The login's others' figure as Redis holds it, and Redis's time. */
typedef struct figure {
    long long external; /* -1: none */
    long long at_ms;    /* external_at_ms, 0: none */
    long long max_age_ms;
    long long now_ms;
    char source[32];
} figure;

static figure figure_read(void)
{
    figure f = {-1, 0, 0, 0, ""};
    redisReply *r = th_redis(&redis, "HMGET " CONF_KEY " external external_at_ms max_age_ms "
                                     "external_source");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 4);
    if (r->element[0]->type == REDIS_REPLY_STRING)
        f.external = strtoll(r->element[0]->str, NULL, 10);
    if (r->element[1]->type == REDIS_REPLY_STRING)
        f.at_ms = strtoll(r->element[1]->str, NULL, 10);
    if (r->element[2]->type == REDIS_REPLY_STRING)
        f.max_age_ms = strtoll(r->element[2]->str, NULL, 10);
    if (r->element[3]->type == REDIS_REPLY_STRING)
        snprintf(f.source, sizeof(f.source), "%s", r->element[3]->str);
    freeReplyObject(r);
    r = th_redis(&redis, "TIME");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    f.now_ms =
        strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return f;
}

static long long figure_age(const figure *f)
{
    return f->at_ms > 0 ? f->now_ms - f->at_ms : -1;
}

/* The figure says want and is fresh (younger than MAX_AGE_MS). */
static int figure_fresh_is(void *arg)
{
    figure f = figure_read();
    return f.external == *(const long long *)arg && f.at_ms > 0 && figure_age(&f) < MAX_AGE_MS;
}

static int figure_stale(void *arg)
{
    (void)arg;
    figure f = figure_read();
    return f.at_ms > 0 && figure_age(&f) > MAX_AGE_MS;
}

/* Waits until the figure is want and fresh, or fails with what it is. */
static void wait_figure(long long want, int timeout_ms, const vnode *nd)
{
    if (!th_until(figure_fresh_is, &want, timeout_ms)) {
        figure f = figure_read();
        cr_assert_fail("login d%d: no fresh figure of %lld within %d ms: external %lld, age %lld "
                       "ms, source '%s', max_age_ms %lld; keys of the conf: %s; node %s's "
                       "stderr:\n%s",
                       PROFILE, want, timeout_ms, f.external, figure_age(&f), f.source,
                       f.max_age_ms, CONF_KEY, nd->id, node_log(nd));
    }
}

/*--- The node's API -----------------------------------------------------------*/

static th_http_resp api(const vnode *nd, const char *method, const char *path, const char *body,
                        int want)
{
    th_http_resp r;
    cr_assert_eq(th_http(nd->port, TOKEN, method, path, body, &r), 0, "%s %s: no answer", method,
                 path);
    cr_assert_eq(r.status, want, "%s %s: %d, want %d: %s", method, path, r.status, want, r.body);
    return r;
}

/* The login's entry of GET /v1/accounts (into r->json; th_http_free r). */
static const cJSON *api_login(const vnode *nd, th_http_resp *r)
{
    *r = api(nd, "GET", "/v1/accounts", NULL, 200);
    const cJSON *acc;
    cJSON_ArrayForEach(acc, cJSON_GetObjectItem(r->json, "accounts"))
    {
        if (cJSON_GetNumberValue(cJSON_GetObjectItem(acc, "id")) != ACCOUNT)
            continue;
        const cJSON *logins = cJSON_GetObjectItem(acc, "logins");
        cr_assert(cJSON_IsArray(logins) && cJSON_GetArraySize(logins) == 1,
                  "account %d: not one login in %s", ACCOUNT, r->body);
        return cJSON_GetArrayItem(logins, 0);
    }
    cr_assert_fail("GET /v1/accounts has no account %d: %s", ACCOUNT, r->body);
    return NULL;
}

static double num_member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    char *text = cJSON_PrintUnformatted(o);
    cr_assert(cJSON_IsNumber(v), "\"%s\" is not a number in %s", name, text);
    free(text);
    return v->valuedouble;
}

/* GET /v1/accounts of nd says the login's figure is external, from
 * Dispatcharr, and fresh (stale 0) or stale (1). */
static void expect_api_figure(const vnode *nd, long long external, int stale)
{
    th_http_resp r;
    const cJSON *l = api_login(nd, &r);
    char *text = cJSON_PrintUnformatted(l);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(l, "id"));
    cr_assert(id && strcmp(id, "d70") == 0, "node %s: the login is not d70: %s", nd->id, text);
    cr_assert_eq(num_member(l, "external"), external, "node %s: %s", nd->id, text);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "external_source")), "dispatcharr",
                     "node %s: %s", nd->id, text);
    cr_assert_eq(num_member(l, "max_age_ms"), MAX_AGE_MS, "node %s: %s", nd->id, text);
    const cJSON *st = cJSON_GetObjectItem(l, "stale");
    cr_assert(cJSON_IsBool(st), "node %s: no boolean \"stale\": %s", nd->id, text);
    cr_assert_eq(cJSON_IsTrue(st), stale, "node %s: stale is not %s: %s", nd->id,
                 stale ? "true" : "false", text);
    double age = num_member(l, "external_age_ms");
    if (stale)
        cr_assert_gt(age, MAX_AGE_MS, "node %s: stale, yet aged %g ms: %s", nd->id, age, text);
    else
        cr_assert(age >= 0 && age < MAX_AGE_MS, "node %s: fresh, yet aged %g ms: %s", nd->id, age,
                  text);
    free(text);
    th_http_free(&r);
}

/* POST /v1/checks of the streams body; the batch id goes to batch. */
static void post_checks(const vnode *nd, const char *body, char *batch, size_t len)
{
    th_http_resp r = api(nd, "POST", "/v1/checks", body, 202);
    const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "batch"));
    cr_assert_not_null(b, "no batch id: %s", r.body);
    snprintf(batch, len, "%s", b);
    th_http_free(&r);
}

/* GET /v1/checks/BATCH (th_http_free r). */
static th_http_resp batch_get(const vnode *nd, const char *batch)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/checks/%s", batch);
    return api(nd, "GET", path, NULL, 200);
}

static int batch_done_count(const vnode *nd, const char *batch)
{
    th_http_resp r = batch_get(nd, batch);
    int done = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "done"));
    th_http_free(&r);
    return done;
}

typedef struct batch_want {
    const vnode *nd;
    const char *batch;
    int want;
} batch_want;

static int batch_has(void *arg)
{
    const batch_want *b = arg;
    return batch_done_count(b->nd, b->batch) >= b->want;
}

/* One stream of the provider as USER/PASS (hold_ms > 0: ?hold_ms=N) into
 * the body being built at b (a JSON array's members). */
static void stream_add(char *b, size_t len, long long id, long long account, const char *user,
                       const char *pass, int hold_ms)
{
    size_t n = strlen(b);
    char query[32] = "";
    if (hold_ms > 0)
        snprintf(query, sizeof(query), "?hold_ms=%d", hold_ms);
    int k = snprintf(b + n, len - n,
                     "%s{\"id\": %lld, \"name\": \"S%lld\", \"url\": "
                     "\"http://127.0.0.1:%d/live/%s/%s/%lld.ts%s\", \"m3u_account\": %lld}",
                     n > 1 ? ", " : "", id, id, provider.port, user, pass, id, query, account);
    cr_assert_lt((size_t)k, len - n, "streams body too long");
}

/* started_at ("2026-01-02T03:04:05.678Z", UTC) as ms since the epoch. */
static long long started_ms(const cJSON *o)
{
    const char *at = th_str_of(o, "started_at");
    struct tm tm = {0};
    int ms = 0;
    cr_assert(at && sscanf(at, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                           &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) == 7,
              "stream %lld: started_at is not an ISO time with ms: %s", th_id_of(o),
              at ? at : "null");
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000 + ms;
}

/* The result of stream id in a batch answer; fails unless exactly one. */
static const cJSON *result_of(const th_http_resp *r, long long id)
{
    const cJSON *found = NULL, *o;
    int n = 0;
    cJSON_ArrayForEach(o, cJSON_GetObjectItem(r->json, "results"))
    {
        if (th_id_of(o) == id) {
            found = o;
            n++;
        }
    }
    cr_assert_eq(n, 1, "stream %lld: %d results in %s", id, n, r->body);
    return found;
}

static void expect_ok(const cJSON *o, const char *login)
{
    const char *st = th_str_of(o, "status"), *e = th_str_of(o, "error");
    cr_assert(th_has_status(o, "OK"), "stream %lld: status %s, not OK (error: %s)", th_id_of(o),
              st ? st : "null", e ? e : "null");
    const char *l = th_str_of(o, "login");
    cr_assert(l && strcmp(l, login) == 0, "stream %lld: login %s, want %s", th_id_of(o),
              l ? l : "null", login);
}

/*--- A viewer on a login of 2 -----------------------------------------------------*/

/* A login of 2 with one viewer playing (a real connection the provider
 * counts, and the channel Dispatcharr's proxy plays on its profile): a
 * batch of four streams of 1 s, on a node that would run four at once,
 * runs one check at a time on it. The provider never sees more than 2 on
 * the login, refuses nothing, and every check is OK. */
Test(viewers, one_viewer_leaves_one_slot_of_two)
{
    const char *users[] = {"u1:p1:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    fake_start(2);
    cr_assert_eq(th_viewer_start(&viewer, provider.port, "u1", "p1", 500), 200,
                 "the viewer was not let in");
    user_want one = {"u1", "current", 1};
    cr_assert(th_until(user_stat_is, &one, 5000), "the provider does not count the viewer");
    fake_viewers(1);

    node_start(0, NULL, 4);
    wait_figure(1, 15000, &nodes[0]);
    expect_api_figure(&nodes[0], 1, 0);

    char body[4096] = "[", batch[128];
    for (long long id = 1; id <= 4; id++)
        stream_add(body, sizeof(body) - 2, id, ACCOUNT, "u1", "p1", 0);
    strcat(body, "]");
    post_checks(&nodes[0], body, batch, sizeof(batch));
    batch_want all = {&nodes[0], batch, 4};
    cr_assert(th_until(batch_has, &all, 30000), "the batch did not finish in 30 s; stderr:\n%s",
              node_log(&nodes[0]));

    /* The provider's own counts: the viewer and one check, never two checks. */
    long long max_seen = user_stat("u1", "max_seen"), refused = user_stat("u1", "refused");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0,
                 "the provider saw the login over its limit (max_seen %lld, refused %lld)",
                 max_seen, refused);
    cr_assert_eq(refused, 0, "the provider refused %lld request(s) of u1", refused);
    cr_assert_eq(max_seen, 2, "u1 peaked at %lld connections, want the viewer + one check",
                 max_seen);
    cr_assert_eq(user_stat("u1", "requests"), 5, "the viewer and four checks");
    cr_assert(th_viewer_alive(&viewer), "the provider ended the viewer");

    /* sfl's own view: one check at a time on the login (ends on the node's
     * clock; 5 ms for the rounding of two ms figures). */
    th_http_resp r = batch_get(&nodes[0], batch);
    long long start[4], end[4];
    for (int i = 0; i < 4; i++) {
        const cJSON *o = result_of(&r, i + 1);
        expect_ok(o, "d70");
        start[i] = started_ms(o);
        end[i] = start[i] + (long long)th_num_of(o, "duration_ms");
    }
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++)
            cr_assert(k == i || start[k] >= end[i] - 5 || end[k] <= start[i] + 5,
                      "checks of streams %d [%lld, %lld] and %d [%lld, %lld] overlap on a login "
                      "of 2 with a viewer",
                      i + 1, start[i], end[i], k + 1, start[k], end[k]);
    th_http_free(&r);
}

/*--- Dispatcharr unreachable ----------------------------------------------------*/

/* Dispatcharr stops answering while a check runs on its login (a login of
 * 2, no viewers). The figure goes stale after MAX_AGE_MS; the running
 * check finishes OK; streams of the governed account queued after that get
 * no grant (the provider sees no request for them) while an account of
 * the node's config goes on being checked; once Dispatcharr answers again
 * the waiting streams are checked. */
Test(viewers, dispatcharr_unreachable_stops_only_its_logins)
{
    const char *users[] = {"u1:p1:2", "u2:p2:1", NULL};
    th_provider_start(&provider, users, 600, NULL);
    fake_start(2);
    fake_viewers(0);
    node_start(0, "[{\"id\": 1, \"name\": \"Plain\", \"max_streams\": 1}]", 6);
    wait_figure(0, 15000, &nodes[0]);
    expect_api_figure(&nodes[0], 0, 0);

    /* A long check on the governed login, running when Dispatcharr goes. */
    char body[4096] = "[", first[128], second[128];
    stream_add(body, sizeof(body) - 2, 1, ACCOUNT, "u1", "p1", 4000);
    strcat(body, "]");
    post_checks(&nodes[0], body, first, sizeof(first));
    user_want running = {"u1", "current", 1};
    cr_assert(th_until(user_stat_is, &running, 10000), "stream 1 did not start; stderr:\n%s",
              node_log(&nodes[0]));

    th_dispatcharr_pause(&fake);
    int64_t paused = th_now_ms();
    cr_assert(th_until(figure_stale, NULL, MAX_AGE_MS + 3000),
              "the figure is not stale %d ms after Dispatcharr stopped answering",
              MAX_AGE_MS + 3000);
    int64_t stale_after = th_now_ms() - paused;
    cr_log_info("the figure went stale %lld ms after the pause", (long long)stale_after);
    cr_assert_leq(stale_after, MAX_AGE_MS + POLL_MS + 500,
                  "stale only %lld ms after Dispatcharr stopped answering", (long long)stale_after);
    expect_api_figure(&nodes[0], 0, 1);
    cr_assert_eq(user_stat("u1", "requests"), 1);

    /* Now two more streams of the governed account, three of the plain one. */
    strcpy(body, "[");
    stream_add(body, sizeof(body) - 2, 2, ACCOUNT, "u1", "p1", 0);
    stream_add(body, sizeof(body) - 2, 3, ACCOUNT, "u1", "p1", 0);
    for (long long id = 11; id <= 13; id++)
        stream_add(body, sizeof(body) - 2, id, PLAIN, "u2", "p2", 0);
    strcat(body, "]");
    post_checks(&nodes[0], body, second, sizeof(second));

    /* The running check finishes, the plain account's three are checked. */
    batch_want first_done = {&nodes[0], first, 1}, plain_done = {&nodes[0], second, 3};
    cr_assert(th_until(batch_has, &first_done, 15000),
              "the check running when Dispatcharr went did not finish; stderr:\n%s",
              node_log(&nodes[0]));
    cr_assert(th_until(batch_has, &plain_done, 15000),
              "the plain account's streams were not checked while Dispatcharr was away "
              "(%d done); stderr:\n%s",
              batch_done_count(&nodes[0], second), node_log(&nodes[0]));
    /* A fixed wait, on purpose: to show that the governed streams do not
     * start while Dispatcharr is still away, with the login's slots free. */
    usleep(1000 * 1000);
    int64_t away = th_now_ms() - paused;
    th_http_resp r = batch_get(&nodes[0], first);
    const cJSON *running_one = result_of(&r, 1);
    expect_ok(running_one, "d70");
    cr_assert_geq(th_num_of(running_one, "duration_ms"), 3900,
                  "the check running when Dispatcharr went was cut short");
    th_http_free(&r);
    r = batch_get(&nodes[0], second);
    int done = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "done"));
    long long u1_requests = user_stat("u1", "requests");
    cr_assert_eq(u1_requests, 1,
                 "%lld ms into Dispatcharr's absence (stale for %lld ms) the provider had %lld "
                 "request(s) of the governed login u1, want only the check that was running",
                 (long long)away, (long long)(away - stale_after), u1_requests);
    cr_assert_eq(done, 3, "%d streams of the second batch done while Dispatcharr was away: %s",
                 done, r.body);
    for (long long id = 11; id <= 13; id++) {
        const cJSON *o = result_of(&r, id);
        expect_ok(o, "1");
    }
    th_http_free(&r);
    cr_assert_eq(user_stat("u2", "requests"), 3);
    cr_assert_eq(user_stat("u2", "max_seen"), 1);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:7}:leases"), 0, "a lease on the stale login");

    /* Dispatcharr is back: the figure comes fresh, the two are checked. */
    th_dispatcharr_resume(&fake);
    int64_t resumed = th_now_ms();
    batch_want all = {&nodes[0], second, 5};
    cr_assert(th_until(batch_has, &all, 20000),
              "the governed streams were not checked once Dispatcharr was back (%d of 5 "
              "done); stderr:\n%s",
              batch_done_count(&nodes[0], second), node_log(&nodes[0]));
    cr_log_info("the waiting streams were done %lld ms after Dispatcharr came back",
                (long long)(th_now_ms() - resumed));
    r = batch_get(&nodes[0], second);
    for (long long id = 2; id <= 3; id++)
        expect_ok(result_of(&r, id), "d70");
    th_http_free(&r);
    cr_assert_eq(user_stat("u1", "requests"), 3);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert_eq(th_provider_stat(&provider, "refused"), 0);
    wait_figure(0, 5000, &nodes[0]);
    expect_api_figure(&nodes[0], 0, 0);
}

/*--- The poller dies ---------------------------------------------------------------*/

typedef struct handover {
    int survivor;          /* index of the node left */
    int64_t taken_ms;      /* kill -> the survivor holds the role; -1: never */
    int64_t fresh_ms;      /* kill -> the figure fresh again; -1: never */
    long long max_age;     /* the oldest the figure was, from the kill to fresh again */
    long long age_at_kill; /* the figure's age when the holder was killed */
} handover;

static int role_held(void *arg)
{
    (void)arg;
    return th_redis_int(&redis, "EXISTS " ROLE_KEY) == 1;
}

/* Two nodes; the one holding the poller role is killed with SIGKILL, and
 * Redis is sampled every 10 ms until the other holds the role and the
 * figure (1 viewer) is fresh again, or 3 TTLs + MAX_AGE_MS pass. */
static handover kill_the_poller(void)
{
    const char *users[] = {"u1:p1:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    fake_start(2);
    cr_assert_eq(th_viewer_start(&viewer, provider.port, "u1", "p1", 500), 200);
    fake_viewers(1);
    node_start(0, NULL, 2);
    node_start(1, NULL, 2);
    wait_figure(1, 15000, &nodes[0]);
    cr_assert(th_until(role_held, NULL, 5000), "no node holds %s", ROLE_KEY);
    /* Both nodes know the login. */
    expect_api_figure(&nodes[0], 1, 0);
    expect_api_figure(&nodes[1], 1, 0);

    redisReply *rep = th_redis(&redis, "GET " ROLE_KEY);
    cr_assert_eq(rep->type, REDIS_REPLY_STRING);
    int holder = strcmp(rep->str, "v1") == 0 ? 0 : strcmp(rep->str, "v2") == 0 ? 1 : -1;
    cr_assert_neq(holder, -1, "%s is held by '%s', not a node of this test", ROLE_KEY, rep->str);
    freeReplyObject(rep);
    long long pttl = th_redis_int(&redis, "PTTL " ROLE_KEY);
    cr_assert(pttl > 0 && pttl <= TTL_MS, "the role's PTTL is %lld, want (0, %d]", pttl, TTL_MS);

    handover h = {.survivor = 1 - holder, .taken_ms = -1, .fresh_ms = -1};
    figure f = figure_read();
    h.age_at_kill = figure_age(&f);
    h.max_age = h.age_at_kill;
    long long killed_redis_ms = f.now_ms;
    kill(nodes[holder].pid, SIGKILL);
    int64_t killed = th_now_ms();
    waitpid(nodes[holder].pid, NULL, 0);
    nodes[holder].pid = 0;
    const char *other = nodes[h.survivor].id;
    while (th_now_ms() - killed < 3 * TTL_MS + MAX_AGE_MS) {
        f = figure_read();
        if (figure_age(&f) > h.max_age)
            h.max_age = figure_age(&f);
        if (h.taken_ms < 0) {
            rep = th_redis(&redis, "GET " ROLE_KEY);
            if (rep->type == REDIS_REPLY_STRING && strcmp(rep->str, other) == 0)
                h.taken_ms = th_now_ms() - killed;
            freeReplyObject(rep);
        }
        if (h.taken_ms >= 0 && f.at_ms > killed_redis_ms && figure_age(&f) < MAX_AGE_MS) {
            /* Written after the kill: by the survivor. */
            h.fresh_ms = th_now_ms() - killed;
            break;
        }
        usleep(10000);
    }
    cr_log_info("kill -9 of the poller %s: %s took the role after %lld ms, the figure was fresh "
                "again after %lld ms; its age: %lld ms at the kill, %lld ms at most "
                "(max_age_ms %d, role TTL %d ms)",
                nodes[holder].id, other, (long long)h.taken_ms, (long long)h.fresh_ms,
                h.age_at_kill, h.max_age, MAX_AGE_MS, TTL_MS);
    return h;
}

/* kill -9 of the node that polls: the other takes the role (within the
 * design's bound: the key lives a TTL from the last renewal, a third of a
 * TTL before the kill at most, and the other asks every third), the figure
 * comes fresh again and keeps advancing, it follows the viewers (the
 * survivor really polls), and the survivor's GET /v1/accounts says so. */
Test(viewers, poller_killed_another_takes_the_role)
{
    handover h = kill_the_poller();
    const vnode *nd = &nodes[h.survivor];
    cr_assert_geq(h.taken_ms, 0, "node %s never took the role in %d ms; its stderr:\n%s", nd->id,
                  3 * TTL_MS + MAX_AGE_MS, node_log(nd));
    cr_assert_leq(h.taken_ms, TTL_MS + TTL_MS / 3 + 500,
                  "node %s took the role %lld ms after the kill", nd->id, (long long)h.taken_ms);
    cr_assert_geq(h.fresh_ms, 0, "the figure never came fresh again; %s's stderr:\n%s", nd->id,
                  node_log(nd));
    cr_assert_leq(h.fresh_ms - h.taken_ms, POLL_MS + 500,
                  "the figure came fresh %lld ms after the role was taken",
                  (long long)(h.fresh_ms - h.taken_ms));
    expect_api_figure(nd, 1, 0);

    /* It keeps advancing: every sample over 2 s fresh, each later than the
     * one before. */
    figure prev = figure_read();
    for (int i = 0; i < 8; i++) {
        usleep(250 * 1000);
        figure f = figure_read();
        cr_assert_lt(figure_age(&f), MAX_AGE_MS, "sample %d: the figure is %lld ms old", i,
                     figure_age(&f));
        cr_assert_gt(f.at_ms, prev.at_ms, "sample %d: external_at_ms did not advance (%lld)", i,
                     f.at_ms);
        prev = f;
    }
    /* The survivor polls: the viewer goes, the figure follows. */
    th_viewer_stop(&viewer);
    fake_viewers(0);
    wait_figure(0, POLL_MS + 2000, nd);
    expect_api_figure(nd, 0, 0);
    long long holder = th_redis_int(&redis, "EXISTS " ROLE_KEY);
    cr_assert_eq(holder, 1);
}

/* The "figures stay fresh": across the poller's death the figure
 * never grows older than max_age_ms, so the logins Dispatcharr governs
 * never stop granting because a node died. */
Test(viewers, poller_killed_figures_stay_fresh)
{
    handover h = kill_the_poller();
    cr_assert_geq(h.taken_ms, 0, "node %s never took the role", nodes[h.survivor].id);
    cr_assert_leq(h.max_age, MAX_AGE_MS,
                  "the figure grew %lld ms old (max_age_ms %d) while the role moved: "
                  "%s took it %lld ms after the kill (role TTL %d ms); the login granted "
                  "nothing for about %lld ms",
                  h.max_age, MAX_AGE_MS, nodes[h.survivor].id, (long long)h.taken_ms, TTL_MS,
                  h.max_age - MAX_AGE_MS);
}

/*--- Xtream Codes panels ------------------------------------------------------*/

/* Account 9's one login x1 (2 slots) is counted by its panel: the fake
 * provider's player_api.php for user u2, polled every second. */
static void panel_account(char *buf, size_t len)
{
    snprintf(buf, len,
             "[{\"id\": 9, \"name\": \"Panel\", \"logins\": [{\"id\": \"x1\", \"max_streams\": 2,"
             " \"xtream\": {\"url\": \"http://127.0.0.1:%d\", \"username\": \"u2\","
             " \"password\": \"p2-Secret-panel\", \"poll_s\": 1, \"max_age_ms\": 3000}}]}]",
             provider.port);
}

static long long conf9(const char *field)
{
    redisReply *r = th_redis(&redis, "HGET sfl:{a:9}:conf %s", field);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

static int panel_figure_is(void *arg)
{
    return conf9("external") == *(const long long *)arg && conf9("external_at_ms") > 0;
}

/* active_cons "1" (a real viewer on u2) on a login of 2: the panel's figure
 * lands, and four streams of 1 s run one at a time beside the viewer; the
 * provider never sees u2 over 2. */
Test(viewers, panel_counts_a_viewer_on_its_login)
{
    const char *users[] = {"u1:p1:2", "u2:p2-Secret-panel:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    fake_start(2);
    cr_assert_eq(th_viewer_start(&viewer, provider.port, "u2", "p2-Secret-panel", 600), 200);
    char accounts[1024];
    panel_account(accounts, sizeof(accounts));
    node_start(0, accounts, 4);
    long long one = 1;
    cr_assert(th_until(panel_figure_is, &one, 15000), "the panel's figure never landed: %lld",
              conf9("external"));

    char body[4096] = "[", batch[128];
    for (long long id = 1; id <= 4; id++)
        stream_add(body, sizeof(body) - 2, id, 9, "u2", "p2-Secret-panel", 0);
    strcat(body, "]");
    post_checks(&nodes[0], body, batch, sizeof(batch));
    batch_want all = {&nodes[0], batch, 4};
    cr_assert(th_until(batch_has, &all, 40000), "the batch did not finish; stderr:\n%s",
              node_log(&nodes[0]));
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0, "u2 went over 2 (max_seen %lld)",
                 user_stat("u2", "max_seen"));
    cr_assert_eq(user_stat("u2", "refused"), 0);
    cr_assert_eq(user_stat("u2", "max_seen"), 2, "the viewer and one check");
    th_http_resp r = batch_get(&nodes[0], batch);
    for (int i = 1; i <= 4; i++)
        expect_ok(result_of(&r, i), "x1");
    th_http_free(&r);
    cr_assert_gt(th_provider_stat(&provider, "users.u2.panel_requests"), 0);
    char *log = th_read_file(nodes[0].err);
    cr_assert(log && !strstr(log, "p2-Secret-panel"), "the node logged the panel's password");
    free(log);
    redisReply *k = th_redis(&redis, "HGETALL sfl:{a:9}:conf");
    for (size_t i = 0; k->type == REDIS_REPLY_ARRAY && i < k->elements; i++)
        cr_assert(!strstr(k->element[i]->str, "p2-Secret"), "Redis holds the panel's password");
    freeReplyObject(k);
}

/* A panel that says Expired closes the login: no check starts on it (the
 * provider sees no request), the node says so naming the login and not the
 * password, and status shows the source's word. */
Test(viewers, expired_panel_closes_its_login)
{
    const char *users[] = {"u1:p1:2", "u2:p2-Secret-panel:2", NULL};
    const char *args[] = {"--panel", "u2:status=Expired", NULL};
    th_provider_start_args(&provider, users, 1000, NULL, args);
    fake_start(2);
    char accounts[1024];
    panel_account(accounts, sizeof(accounts));
    node_start(0, accounts, 4);
    long long full = 2;
    cr_assert(th_until(panel_figure_is, &full, 15000), "the closed login is not counted full: %lld",
              conf9("external"));

    char body[1024] = "[", batch[128];
    stream_add(body, sizeof(body) - 2, 1, 9, "u2", "p2-Secret-panel", 0);
    strcat(body, "]");
    post_checks(&nodes[0], body, batch, sizeof(batch));
    usleep(2500 * 1000);
    cr_assert_eq(user_stat("u2", "requests"), 0, "a check started on an expired login");
    char *log = th_read_file(nodes[0].err);
    cr_assert(log && strstr(log, "login x1: the panel says status Expired"), "stderr:\n%s",
              log ? log : "");
    cr_assert(!strstr(log, "p2-Secret-panel"), "the node logged the panel's password");
    free(log);
    th_http_resp r = api(&nodes[0], "GET", "/v1/accounts", NULL, 200);
    cr_assert(strstr(r.body, "\"external_source\":\"xtream: status Expired\""), "%s", r.body);
    cr_assert(!strstr(r.body, "p2-Secret"), "the API shows the password");
    th_http_free(&r);
}

/* A panel login without username and password takes them from its rewrite's
 * /live/USER/PASS/: the panel is asked as u2, and its figure lands. */
Test(viewers, panel_credentials_from_the_login_rewrite)
{
    const char *users[] = {"u1:p1:2", "u2:p2-Secret-panel:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    fake_start(2);
    cr_assert_eq(th_viewer_start(&viewer, provider.port, "u2", "p2-Secret-panel", 600), 200);
    char accounts[1024];
    snprintf(accounts, sizeof(accounts),
             "[{\"id\": 9, \"logins\": [{\"id\": \"x1\", \"max_streams\": 2,"
             " \"search\": \"/live/u1/p1/\", \"replace\": \"/live/u2/p2-Secret-panel/\","
             " \"xtream\": {\"url\": \"http://127.0.0.1:%d\", \"poll_s\": 1}}]}]",
             provider.port);
    node_start(0, accounts, 4);
    long long one = 1;
    cr_assert(th_until(panel_figure_is, &one, 15000), "the panel's figure never landed: %lld",
              conf9("external"));
    cr_assert_gt(th_provider_stat(&provider, "users.u2.panel_requests"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.panel_requests"), 0);
}
