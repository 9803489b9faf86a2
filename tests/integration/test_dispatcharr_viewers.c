/* test_dispatcharr_viewers.c - the fixtures of issue #14 ("viewers first"),
 * tested on their own before sfl leans on them: the fake Dispatcharr's
 * viewer routes (GET /proxy/ts/status, GET /proxy/stats/) answer as
 * documented in tests/tools/fake_dispatcharr.c, to the same credentials as
 * the account list, from a file the test rewrites while it runs; pausing it
 * makes it a host that answers nothing until resumed; and a harness viewer
 * (th_viewer_*) is one real connection that the fake provider counts for as
 * long as it is held, and no longer. */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PASSWORD "Pw-viewers-7c1e-distinctive"
#define API_KEY "Key-viewers-beef-distinctive"
#define KEY_HEADER "X-API-Key: " API_KEY

#define EMPTY_TS "{\"channels\": [], \"count\": 0}"
#define EMPTY_STATS "{\"live\": [], \"vod\": [], \"catchup\": [], \"timestamp\": 0}"

static char dir[128];
static sfl_test_dispatcharr fake;
static sfl_test_provider provider;
static th_viewer viewers[3];

static void setup(void)
{
    th_tmpdir(dir, sizeof(dir));
    memset(&fake, 0, sizeof(fake));
    memset(&provider, 0, sizeof(provider));
    memset(viewers, 0, sizeof(viewers));
}

static void teardown(void)
{
    for (size_t i = 0; i < sizeof(viewers) / sizeof(viewers[0]); i++)
        th_viewer_stop(&viewers[i]);
    th_dispatcharr_stop(&fake);
    th_provider_stop(&provider);
}

TestSuite(dispatcharr_viewers, .init = setup, .fini = teardown, .timeout = 60);

/*--- Helpers ----------------------------------------------------------------*/

static void fake_start(const char *const *extra)
{
    th_dispatcharr_start(&fake, dir, "[]", PASSWORD, API_KEY, extra);
}

/* GET path with header; asserts an HTTP answer of status want and returns
 * it (th_http_free). */
static th_http_resp get(const char *path, const char *header, int want)
{
    th_http_resp r;
    cr_assert_eq(th_dispatcharr_get(&fake, path, header, &r), 0, "no answer to GET %s", path);
    cr_assert_eq(r.status, want, "GET %s with '%s': %d, want %d:\n%s", path,
                 header ? header : "(none)", r.status, want, r.raw);
    return r;
}

/* GET path with the API key: asserts 200 and exactly this body. */
static void assert_body(const char *path, const char *body)
{
    th_http_resp r = get(path, KEY_HEADER, 200);
    cr_assert_str_eq(r.body, body, "GET %s", path);
    th_http_free(&r);
}

static const cJSON *member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert_not_null(v, "no \"%s\"", name);
    return v;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = member(o, name);
    cr_assert(cJSON_IsNumber(v), "\"%s\" is not a number", name);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = member(o, name);
    cr_assert(cJSON_IsString(v), "\"%s\" is not a string", name);
    return v->valuestring;
}

/* An access token of the fake's login route. */
static char *login(void)
{
    th_http_resp r;
    char body[256];
    snprintf(body, sizeof(body), "{\"username\": \"admin\", \"password\": \"%s\"}", PASSWORD);
    cr_assert_eq(th_http(fake.port, NULL, "POST", "/api/accounts/token/", body, &r), 0);
    cr_assert_eq(r.status, 200, "login: %s", r.raw);
    char *access = strdup(str(r.json, "access"));
    th_http_free(&r);
    return access;
}

/*--- The routes ---------------------------------------------------------------*/

/* No viewers file yet: both routes answer the empty documents, and each
 * request is counted on its own route. */
Test(dispatcharr_viewers, empty_answers_without_a_file)
{
    fake_start(NULL);
    assert_body("/proxy/ts/status", EMPTY_TS);
    assert_body("/proxy/ts/status", EMPTY_TS);
    assert_body("/proxy/stats/", EMPTY_STATS);
    cr_assert_eq(th_dispatcharr_stat(&fake, "ts_status_gets"), 2);
    cr_assert_eq(th_dispatcharr_stat(&fake, "stats_gets"), 1);
    cr_assert_eq(th_dispatcharr_stat(&fake, "accounts_gets"), 0);
    cr_assert_eq(th_dispatcharr_stat(&fake, "unauthorized"), 0);
}

/* The credentials of GET /api/m3u/accounts/, and only those: the API key
 * in either header, a live access token; 401 without, with a wrong key or
 * token, with an expired one, and under --mode unauthorized. */
Test(dispatcharr_viewers, routes_authenticate_as_the_account_list)
{
    fake_start(NULL);
    const char *const paths[] = {"/proxy/ts/status", "/proxy/stats/", "/api/m3u/accounts/"};
    char *access = login();
    char bearer[128];
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", access);
    for (size_t i = 0; i < 3; i++) {
        th_http_resp r = get(paths[i], NULL, 401);
        cr_assert_str_eq(str(r.json, "detail"), "Authentication credentials were not provided.");
        th_http_free(&r);
        r = get(paths[i], "X-API-Key: not-the-key", 401);
        th_http_free(&r);
        r = get(paths[i], "Authorization: Bearer acc.0000000000000000", 401);
        cr_assert_str_eq(str(r.json, "code"), "token_not_valid");
        th_http_free(&r);
        r = get(paths[i], KEY_HEADER, 200);
        th_http_free(&r);
        r = get(paths[i], "Authorization: ApiKey " API_KEY, 200);
        th_http_free(&r);
        r = get(paths[i], bearer, 200);
        th_http_free(&r);
    }
    free(th_dispatcharr_call(&fake, "POST", "/fixture/expire"));
    th_http_resp r = get("/proxy/ts/status", bearer, 401);
    th_http_free(&r);
    r = get("/proxy/stats/", bearer, 401);
    th_http_free(&r);
    cr_assert_eq(th_dispatcharr_stat(&fake, "ts_status_gets"), 7);
    cr_assert_eq(th_dispatcharr_stat(&fake, "stats_gets"), 7);
    cr_assert_eq(th_dispatcharr_stat(&fake, "unauthorized"), 3 * 3 + 2);
    free(access);

    th_dispatcharr_stop(&fake);
    const char *unauthorized[] = {"--mode", "unauthorized", NULL};
    fake_start(unauthorized);
    r = get("/proxy/ts/status", KEY_HEADER, 401);
    th_http_free(&r);
    r = get("/proxy/stats/", KEY_HEADER, 401);
    th_http_free(&r);
}

/* The file is read on every request: what the builder wrote is what the
 * routes answer (the shapes of Dispatcharr, a provider URL with its
 * credentials, at most 10 clients listed), a rewrite changes the next
 * answer, and removing it brings the empty answers back. */
Test(dispatcharr_viewers, answers_follow_the_file)
{
    fake_start(NULL);
    th_viewers v;
    char buf[16384];
    th_viewers_init(&v);
    th_viewers_live(&v, &(th_live){.profile = 70,
                                   .stream = 5,
                                   .user = "viewer-login",
                                   .pass = "Pw-in-url-secret",
                                   .clients = 12});
    th_viewers_live(&v, &(th_live){.stream = 6, .state = "waiting_for_clients"});
    th_viewers_vod(&v, &(th_session){.profile = 71, .client_ip = "192.0.2.7"});
    th_viewers_catchup(&v, &(th_session){.profile = 70, .stream = 9});
    th_dispatcharr_viewers(&fake, th_viewers_json(&v, buf, sizeof(buf)));
    th_viewers_free(&v);

    th_http_resp r = get("/proxy/ts/status", KEY_HEADER, 200);
    cr_assert_eq(num(r.json, "count"), 2);
    const cJSON *channels = member(r.json, "channels");
    cr_assert_eq(cJSON_GetArraySize(channels), 2);
    const cJSON *c0 = cJSON_GetArrayItem(channels, 0), *c1 = cJSON_GetArrayItem(channels, 1);
    cr_assert_eq(strlen(str(c0, "channel_id")), 36, "a uuid");
    cr_assert_str_eq(str(c0, "state"), "active");
    cr_assert_eq(num(c0, "m3u_profile_id"), 70);
    cr_assert_eq(num(c0, "stream_id"), 5);
    cr_assert_str_eq(str(c0, "url"),
                     "http://provider.invalid/live/viewer-login/Pw-in-url-secret/5.ts");
    cr_assert_eq(num(c0, "client_count"), 12);
    cr_assert_eq(cJSON_GetArraySize(member(c0, "clients")), 10, "at most 10 clients listed");
    cr_assert_gt(num(c0, "started_at"), 1e9);
    cr_assert_gt(num(c0, "uptime"), 0);
    cr_assert_gt(num(c0, "avg_bitrate_kbps"), 0);
    cr_assert_null(cJSON_GetObjectItem(c1, "m3u_profile_id"), "profile 0: left out");
    cr_assert_str_eq(str(c1, "state"), "waiting_for_clients");
    cr_assert_eq(num(c1, "client_count"), 0);
    th_http_free(&r);

    r = get("/proxy/stats/", KEY_HEADER, 200);
    cr_assert_eq(cJSON_GetArraySize(member(r.json, "live")), 2);
    const cJSON *vod = cJSON_GetArrayItem(member(r.json, "vod"), 0);
    const cJSON *cu = cJSON_GetArrayItem(member(r.json, "catchup"), 0);
    cr_assert(vod && cu);
    cr_assert_eq(num(vod, "m3u_profile_id"), 71);
    cr_assert_str_eq(str(vod, "content_type"), "movie");
    cr_assert_str_eq(str(vod, "client_ip"), "192.0.2.7");
    cr_assert_eq(strlen(str(vod, "session_id")), 36);
    cr_assert_eq(num(cu, "m3u_profile_id"), 70);
    cr_assert_eq(num(cu, "stream_id"), 9);
    cr_assert_str_eq(str(cu, "content_type"), "catchup");
    cr_assert_gt(num(r.json, "timestamp"), 1e9);
    th_http_free(&r);

    /* The viewers go: the next answers say so. */
    th_viewers_init(&v);
    th_dispatcharr_viewers(&fake, th_viewers_json(&v, buf, sizeof(buf)));
    th_viewers_free(&v);
    r = get("/proxy/ts/status", KEY_HEADER, 200);
    cr_assert_eq(num(r.json, "count"), 0);
    cr_assert_eq(cJSON_GetArraySize(member(r.json, "channels")), 0);
    th_http_free(&r);
    th_dispatcharr_viewers(&fake, NULL);
    assert_body("/proxy/ts/status", EMPTY_TS);
    assert_body("/proxy/stats/", EMPTY_STATS);
    cr_assert_eq(th_dispatcharr_stat(&fake, "ts_status_gets"), 3);
    cr_assert_eq(th_dispatcharr_stat(&fake, "stats_gets"), 2);
}

/* How a test makes Dispatcharr misbehave through the file: an answer given
 * as a string is sent unparsed, a *_code member changes the status, and a
 * file that is not a JSON object gets 500 on both routes. */
Test(dispatcharr_viewers, misbehaving_answers)
{
    fake_start(NULL);
    th_dispatcharr_viewers(&fake, "{\"ts_status\": \"{\\\"channels\\\": [\", \"stats_code\": 503}");
    assert_body("/proxy/ts/status", "{\"channels\": [");
    th_http_resp r = get("/proxy/stats/", KEY_HEADER, 503);
    cr_assert_str_eq(r.body, EMPTY_STATS);
    th_http_free(&r);
    th_dispatcharr_viewers(&fake, "[1, 2");
    r = get("/proxy/ts/status", KEY_HEADER, 500);
    th_http_free(&r);
    r = get("/proxy/stats/", KEY_HEADER, 500);
    th_http_free(&r);
}

/*--- Dispatcharr unreachable ---------------------------------------------------*/

/* Paused, the fake accepts a connection (the kernel's backlog) and answers
 * nothing; the viewers file can still change meanwhile; resumed, it answers
 * the request that waited, from the file as it is then. Stopping it while
 * paused ends it at once. */
Test(dispatcharr_viewers, paused_hangs_until_resumed)
{
    fake_start(NULL);
    th_dispatcharr_pause(&fake);
    cr_assert(fake.paused);
    cr_assert(th_alive(fake.pid), "a stopped process is alive");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)fake.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
              "a paused fake still accepts connections: %s", strerror(errno));
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET /proxy/ts/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n\r\n",
                     KEY_HEADER);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    /* A fixed wait, on purpose: to show that no answer comes within it. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 1500), 0, "a paused fake answered");

    th_viewers v;
    char buf[4096];
    th_viewers_init(&v);
    th_viewers_live(&v, &(th_live){.profile = 3, .stream = 1, .clients = 1});
    th_dispatcharr_viewers(&fake, th_viewers_json(&v, buf, sizeof(buf)));
    th_viewers_free(&v);

    th_dispatcharr_resume(&fake);
    cr_assert_not(fake.paused);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    th_http_resp r;
    cr_assert_eq(th_http_read(fd, &r), 0, "no answer once resumed"); /* closes fd */
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_eq(num(r.json, "count"), 1, "the file as it was when answered: %s", r.body);
    th_http_free(&r);
    cr_assert_eq(th_dispatcharr_stat(&fake, "ts_status_gets"), 1);

    th_dispatcharr_pause(&fake);
    pid_t pid = fake.pid;
    int64_t t0 = th_now_ms();
    th_dispatcharr_stop(&fake);
    cr_assert_lt(th_now_ms() - t0, 5000, "stopping a paused fake took too long");
    cr_assert_eq(fake.pid, 0);
    cr_assert_not(fake.paused);
    cr_assert(kill(pid, 0) == -1 && errno == ESRCH, "the paused fake was not reaped");
}

/*--- Viewers as real connections ------------------------------------------------*/

typedef struct provider_current {
    const char *user;
    long long want;
} provider_current;

static int current_is(void *arg)
{
    const provider_current *c = arg;
    char path[128];
    snprintf(path, sizeof(path), "users.%s.current", c->user);
    return th_provider_stat(&provider, path) == c->want;
}

static long long user_stat(const char *user, const char *what)
{
    char path[128];
    snprintf(path, sizeof(path), "users.%s.%s", user, what);
    return th_provider_stat(&provider, path);
}

/* A held viewer is one connection the provider counts as long as it is
 * held, past the provider's --hold-ms; one over the login's limit is
 * refused there; each counts down when stopped, and max_seen keeps the
 * most. The password goes percent-encoded. */
Test(dispatcharr_viewers, provider_counts_a_held_viewer)
{
    const char *users[] = {"alice:pw a:1:2", NULL};
    th_provider_start(&provider, users, 200, NULL);
    th_viewer_stop(&viewers[0]); /* zeroed: a no-op */
    cr_assert_eq(th_viewer_start(&viewers[0], provider.port, "alice", "pw a:1", 101), 200);
    cr_assert(viewers[0].held);
    provider_current one = {"alice", 1}, two = {"alice", 2}, none = {"alice", 0};
    cr_assert(th_until(current_is, &one, 5000), "the viewer is not counted");
    /* A fixed wait, on purpose: five times the provider's --hold-ms, to
     * show that the viewer is not let go when it ends. */
    usleep(1000 * 1000);
    cr_assert(th_viewer_alive(&viewers[0]), "the provider ended the viewer");
    cr_assert_gt(viewers[0].bytes, 0, "the provider streams to it");
    cr_assert_eq(user_stat("alice", "current"), 1);

    cr_assert_eq(th_viewer_start(&viewers[1], provider.port, "alice", "pw a:1", 102), 200);
    cr_assert(th_until(current_is, &two, 5000));
    cr_assert_eq(th_viewer_start(&viewers[2], provider.port, "alice", "pw a:1", 103), 403,
                 "a third viewer of a login of 2");
    cr_assert_not(viewers[2].held);
    cr_assert_eq(user_stat("alice", "current"), 2);
    cr_assert_eq(user_stat("alice", "max_seen"), 2);

    th_viewer_stop(&viewers[0]);
    cr_assert_not(th_viewer_alive(&viewers[0]));
    cr_assert(th_until(current_is, &one, 5000), "a stopped viewer is still counted");
    th_viewer_stop(&viewers[1]);
    th_viewer_stop(&viewers[1]);
    cr_assert(th_until(current_is, &none, 5000), "a stopped viewer is still counted");
    cr_assert_eq(user_stat("alice", "max_seen"), 2);
    cr_assert_eq(user_stat("alice", "total"), 2);
}

static int viewer_gone(void *arg)
{
    return !th_viewer_alive(arg);
}

/* A viewer whose provider goes away says so. */
Test(dispatcharr_viewers, viewer_says_when_the_provider_ends_it)
{
    const char *users[] = {"bob:pw:0", NULL};
    th_provider_start(&provider, users, 200, NULL);
    cr_assert_eq(th_viewer_start(&viewers[0], provider.port, "bob", "pw", 7), 200);
    cr_assert(th_viewer_alive(&viewers[0]));
    th_provider_stop(&provider);
    cr_assert(th_until(viewer_gone, &viewers[0], 5000), "the viewer did not see its provider go");
    cr_assert(viewers[0].ended);
    cr_assert_eq(th_viewer_start(&viewers[1], provider.port, "bob", "pw", 7), 0, "no provider");
}
