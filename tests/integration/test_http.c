/* test_http.c - the HTTP API of `sflimit node` (DESIGN §7) as a client sees
 * it: the real binary as a child, a real redis-server, and the harness's
 * blocking HTTP client (no curl). Redis is the ground truth: every answer
 * is checked against the keys it should (or should not) have changed. */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "s3cret-http-test-token"
#define TTL_MS 3000

static sfl_test_redis redis;
static char dir[128];
static pid_t node_pid;
static int node_port;
static char node_err[256]; /* the node's stderr */
static int spawns;
/* Config sections a test may change before node_start (NULL: the defaults). */
static const char *conf_check;      /* the "check" object */
static const char *conf_concurrent; /* the "concurrent_streams" object */
static const char *conf_node;       /* the "node" object */
static const char *conf_http;       /* more members of "http", ", \"k\": v" */

static void setup(void)
{
    node_pid = 0;
    node_port = 0;
    conf_check = conf_concurrent = conf_node = conf_http = NULL;
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    if (node_pid > 0 && waitpid(node_pid, NULL, WNOHANG) == 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    node_pid = 0;
    th_redis_stop(&redis);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 120);

/*--- Requests (the harness's blocking HTTP client) -------------------------*/

typedef th_http_resp resp;

static void resp_free(resp *r)
{
    th_http_free(r);
}

static resp call_as(const char *token, const char *method, const char *path, const char *body)
{
    resp r;
    cr_assert_eq(th_http(node_port, token, method, path, body, &r), 0,
                 "%s %s: no HTTP answer from the node on port %d", method, path, node_port);
    return r;
}

static resp call(const char *method, const char *path, const char *body)
{
    return call_as(TOKEN, method, path, body);
}

static const char *jstr(const resp *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->json, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\" in %s", key,
              obj ? cJSON_PrintUnformatted(obj) : "(not JSON)");
    return v->valuedouble;
}

/* The value of an unlabelled sample of a /metrics body; the test fails if
 * there is none. */
static long long metric(const char *body, const char *name)
{
    char head[128];
    snprintf(head, sizeof(head), "\n%s ", name);
    const char *at = strstr(body, head);
    cr_assert_not_null(at, "/metrics has no sample %s:\n%s", name, body);
    return atoll(at + strlen(head));
}

/* Every one of the n lines is in a /metrics body. */
static void expect_lines(const char *body, const char *const *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(strstr(body, lines[i]), "/metrics lacks \"%s\":\n%s", lines[i], body);
}

/* Asserts a 400 (or code) whose {"error": ...} mentions `names`. */
static void expect_error(resp *r, int code, const char *names, const char *what)
{
    cr_assert_eq(r->status, code, "%s: status %d, expected %d: %s", what, r->status, code, r->body);
    const char *err = jstr(r, "error");
    cr_assert_not_null(err, "%s: no {\"error\": ...} in %s", what, r->body);
    cr_assert(strstr(err, names), "%s: error \"%s\" does not name %s", what, err, names);
}

/*--- The node --------------------------------------------------------------*/

static void write_config(const char *listen, const char *token, char *path, size_t len)
{
    char text[2048], tok[128] = "";
    if (token)
        snprintf(tok, sizeof(tok), ", \"token\": \"%s\"", token);
    snprintf(text, sizeof(text),
             "{\"node_id\": \"h1\",\n"
             " \"redis\": {\"url\": \"%s\"},\n"
             " \"http\": {\"listen\": \"%s\"%s%s},\n"
             " \"lease\": {\"ttl_ms\": %d, \"renew_ms\": 1000, \"safety_ms\": 500%s},\n"
             " \"concurrent_streams\": %s,\n"
             " \"node\": %s,\n"
             " \"check\": %s}\n",
             redis.url, listen, tok, conf_http ? conf_http : "", TTL_MS, th_wrap_lease(),
             conf_concurrent ? conf_concurrent : "{}",
             conf_node ? conf_node : "{\"shutdown_grace\": 5}",
             conf_check ? conf_check
                        : "{\"command\": [\"true\"], \"parser\": \"none\", \"timeout\": 10}");
    th_write_file(dir, "sflimit.json", text, path, len);
}

static pid_t spawn_node(const char *config)
{
    snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, spawns++);
    const char *argv[] = {SFL_BIN, "node", "-c", config, NULL};
    return th_spawn((char *const *)argv, NULL, node_err);
}

static char *node_log(void)
{
    char *text = th_read_file(node_err);
    return text ? text : strdup("");
}

/* Starts the node on a free loopback port with TOKEN and waits for
 * GET /healthz 200 (and its registry key: its startup writes are done). */
static void node_start(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char listen[64], config[256];
        node_port = th_free_port();
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", node_port);
        write_config(listen, TOKEN, config, sizeof(config));
        snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, spawns++);
        node_pid = th_node_start(config, node_port, node_err, &redis, "h1");
        if (node_pid)
            return;
    }
    cr_assert_fail("the node never got a port");
}

static long long zcard(long long account)
{
    return th_redis_int(&redis, "ZCARD sfl:{a:%lld}:leases", account);
}

typedef struct zc {
    long long account, want;
} zc;

static int zcard_is(void *arg)
{
    zc *z = arg;
    return zcard(z->account) == z->want;
}

static int zcard_not(void *arg)
{
    zc *z = arg;
    return zcard(z->account) != z->want;
}

/* Every key in Redis, sorted, one a line (caller frees). */
static char *keys_snapshot(void)
{
    redisReply *r = th_redis(&redis, "KEYS *");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++)
        for (size_t j = i + 1; j < r->elements; j++)
            if (strcmp(r->element[i]->str, r->element[j]->str) > 0) {
                redisReply *t = r->element[i];
                r->element[i] = r->element[j];
                r->element[j] = t;
            }
    size_t len = 1;
    for (size_t i = 0; i < r->elements; i++)
        len += r->element[i]->len + 1;
    char *out = calloc(1, len);
    for (size_t i = 0; i < r->elements; i++) {
        strcat(out, r->element[i]->str);
        strcat(out, "\n");
    }
    freeReplyObject(r);
    return out;
}

static char *hget(const char *key, const char *field)
{
    redisReply *r = th_redis(&redis, "HGET %s %s", key, field);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

static char *post_lease(long long account, int wait_ms, int expect_status)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"account\": %lld, \"wait_ms\": %d}", account, wait_ms);
    resp r = call("POST", "/v1/leases", body);
    cr_assert_eq(r.status, expect_status, "POST /v1/leases %s: %d %s", body, r.status, r.body);
    char *id = NULL;
    if (expect_status == 200) {
        cr_assert_not_null(jstr(&r, "lease_id"), "no lease_id: %s", r.body);
        id = strdup(jstr(&r, "lease_id"));
    }
    resp_free(&r);
    return id;
}

static int status_of(const char *method, const char *path, const char *body)
{
    resp r = call(method, path, body);
    int st = r.status;
    resp_free(&r);
    return st;
}

/*--- /healthz and the token ------------------------------------------------*/

Test(http, healthz_open_and_token_guards_the_rest)
{
    th_account(&redis, 3, 2);
    th_account(&redis, 4, 5);
    node_start();

    resp r = call_as(NULL, "GET", "/healthz", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(&r, "status"), "ok");
    cr_assert_str_eq(jstr(&r, "redis"), "up");
    cr_assert_str_eq(jstr(&r, "node"), "h1");
    resp_free(&r);

    const char *wrong[] = {NULL, "nope", TOKEN "x", "s3cret-http-test-toke", ""};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        r = call_as(wrong[i], "GET", "/v1/accounts", NULL);
        cr_assert_eq(r.status, 401, "token \"%s\": %d %s", wrong[i] ? wrong[i] : "(none)", r.status,
                     r.body);
        cr_assert_not_null(jstr(&r, "error"));
        cr_assert_null(strstr(r.body, "max_streams"), "a 401 leaked the accounts");
        resp_free(&r);
    }
    r = call_as(NULL, "GET", "/metrics", NULL);
    cr_assert_eq(r.status, 401, "/metrics without a token: %d", r.status);
    resp_free(&r);

    r = call("GET", "/v1/accounts", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *list = cJSON_GetObjectItem(r.json, "accounts");
    cr_assert(cJSON_IsArray(list), "no accounts array: %s", r.body);
    cr_assert_eq(cJSON_GetArraySize(list), 2, "%s", r.body);
    int seen = 0;
    cJSON *a;
    cJSON_ArrayForEach(a, list)
    {
        long long id = (long long)jnum(a, "id");
        cr_assert(id == 3 || id == 4, "unexpected account %lld", id);
        cr_assert_eq((long long)jnum(a, "max_streams"), id == 3 ? 2 : 5);
        cr_assert_eq((long long)jnum(a, "in_use"), 0);
        cr_assert_eq((long long)jnum(a, "held_here"), 0);
        cr_assert(cJSON_IsArray(cJSON_GetObjectItem(a, "holders")));
        seen |= id == 3 ? 1 : 2;
    }
    cr_assert_eq(seen, 3);
    resp_free(&r);

    /* The nodes alive: this one, from its registry key. */
    r = call_as(NULL, "GET", "/v1/nodes", NULL);
    cr_assert_eq(r.status, 401, "/v1/nodes without a token: %d", r.status);
    resp_free(&r);
    r = call("GET", "/v1/nodes", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    list = cJSON_GetObjectItem(r.json, "nodes");
    cr_assert_eq(cJSON_GetArraySize(list), 1, "%s", r.body);
    cJSON *n = cJSON_GetArrayItem(list, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(n, "id")->valuestring, "h1");
    cr_assert_str_eq(cJSON_GetObjectItem(n, "state")->valuestring, "running");
    cr_assert_eq((long long)jnum(n, "global_limit"), 10);
    cr_assert_eq((long long)jnum(n, "pid"), (long long)node_pid);
    resp_free(&r);
}

/*--- Sidecar leases --------------------------------------------------------*/

Test(http, sidecar_leases_grant_wait_release_and_expire)
{
    th_account(&redis, 3, 2);
    node_start();

    resp a = call("POST", "/v1/leases", "{\"account\": 3, \"wait_ms\": 1000}");
    resp b = call("POST", "/v1/leases", "{\"account\": 3, \"wait_ms\": 1000}");
    cr_assert_eq(a.status, 200, "%s", a.body);
    cr_assert_eq(b.status, 200, "%s", b.body);
    char ida[128], idb[128];
    cr_assert(jstr(&a, "lease_id") && jstr(&b, "lease_id"));
    snprintf(ida, sizeof(ida), "%s", jstr(&a, "lease_id"));
    snprintf(idb, sizeof(idb), "%s", jstr(&b, "lease_id"));
    cr_assert_str_neq(ida, idb);
    cr_assert_gt(jnum(a.json, "fence"), 0);
    cr_assert_neq(jnum(a.json, "fence"), jnum(b.json, "fence"), "two grants, one fence");
    cr_assert_eq((long long)jnum(a.json, "ttl_ms"), TTL_MS);
    resp_free(&a);
    resp_free(&b);
    cr_assert_eq(zcard(3), 2);

    /* Full: a third waits its 500 ms, then 408. */
    resp c = call("POST", "/v1/leases", "{\"account\": 3, \"wait_ms\": 500}");
    cr_assert_eq(c.status, 408, "third lease at limit 2: %d %s", c.status, c.body);
    cr_assert_geq(c.ms, 500, "408 after %lld ms, before wait_ms", (long long)c.ms);
    cr_assert_lt(c.ms, 5000, "408 after %lld ms", (long long)c.ms);
    resp_free(&c);
    cr_assert_eq(zcard(3), 2, "a timed-out ask changed the holders");

    /* Give one back: exactly one freed, the other still there. */
    char path[256];
    snprintf(path, sizeof(path), "/v1/leases/%s", ida);
    resp d = call("DELETE", path, NULL);
    cr_assert_eq(d.status, 200, "%s", d.body);
    cr_assert_str_eq(jstr(&d, "status"), "released");
    resp_free(&d);
    zc two = {3, 2};
    th_until(zcard_not, &two, 3000);
    cr_assert_eq(zcard(3), 1, "DELETE of one lease should free exactly one slot");
    cr_assert_eq(th_redis_int(&redis, "ZSCORE sfl:{a:3}:leases %s", idb) > 0, 1,
                 "the lease left in Redis is not the one still held");
    cr_assert_eq(status_of("DELETE", path, NULL), 404, "second DELETE of the same lease");

    /* Renew the other, then stop renewing it: a crashed client. */
    snprintf(path, sizeof(path), "/v1/leases/%s/renew", idb);
    resp rn = call("POST", path, NULL);
    cr_assert_eq(rn.status, 200, "renew: %d %s", rn.status, rn.body);
    cr_assert_str_eq(jstr(&rn, "status"), "renewed");
    resp_free(&rn);
    int64_t renewed = th_now_ms();
    zc zero = {3, 0};
    int gone = th_until(zcard_is, &zero, 2 * TTL_MS + 2000);
    int64_t after = th_now_ms() - renewed;
    cr_assert(gone, "the node kept a lease %lld ms after its client stopped renewing",
              (long long)after);
    cr_assert_geq(after, TTL_MS - 1000,
                  "released %lld ms after the last renew: the client TTL is %d ms",
                  (long long)after, TTL_MS);
    cr_assert_eq(status_of("POST", path, NULL), 404, "renew of a lease the node gave up");
    char *log = node_log();
    cr_assert(strstr(log, "no renew from its client"), "no warning about the gone client:\n%s",
              log);
    free(log);
}

/* A client that hangs up while its POST /v1/leases waits gets nothing, and
 * leaves nothing behind: no lease, and no queued ticket that would take the
 * next free slot. */
Test(http, disconnected_waiter_leaves_no_lease)
{
    th_account(&redis, 21, 1);
    node_start();
    char *hold = post_lease(21, 1000, 200);
    cr_assert_eq(zcard(21), 1);

    const char *ask = "{\"account\": 21, \"wait_ms\": 6000}";
    int fd = th_http_send(node_port, "POST", "/v1/leases", TOKEN, ask, strlen(ask));
    cr_assert_geq(fd, 0);
    /* Wait until the node has queued the ask in Redis, then hang up. */
    int64_t until = th_now_ms() + 5000;
    while (th_redis_int(&redis, "ZCARD sfl:{a:21}:waiters") < 1 && th_now_ms() < until)
        usleep(10000);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:21}:waiters"), 1,
                 "the waiting ask never queued in Redis");
    close(fd);
    /* Kept fixed: 200 ms after the hang-up in which no lease may appear for
     * the gone client (only the holder holds). There is no event to wait
     * for: evhttp stops reading a connection once its request is read, so
     * the node learns of the hang-up only when it answers (libevent#78). */
    usleep(200000);

    cr_assert_eq(zcard(21), 1, "only the holder should hold");
    char path[256];
    snprintf(path, sizeof(path), "/v1/leases/%s", hold);
    cr_assert_eq(status_of("DELETE", path, NULL), 200);
    free(hold);
    /* One Redis round trip; a slot handed to the gone client instead stays
     * taken until the node's client TTL runs out. */
    zc zero = {21, 0};
    int64_t t0 = th_now_ms();
    int freed = th_until(zcard_is, &zero, 1000);
    if (!freed) {
        redisReply *h = th_redis(&redis, "HGETALL sfl:{a:21}:holders");
        cr_assert_fail("the slot freed by DELETE is still taken %lld ms later: it went to the "
                       "client that had hung up (ZCARD %lld, holder %s %s)",
                       (long long)(th_now_ms() - t0), zcard(21),
                       h->elements > 0 ? h->element[0]->str : "?",
                       h->elements > 1 ? h->element[1]->str : "?");
    }
    /* Nothing may be granted to the gone client in the next seconds. */
    int64_t end = th_now_ms() + 2500;
    while (th_now_ms() < end) {
        long long n = zcard(21);
        cr_assert_eq(n, 0, "a lease appeared for a client that had hung up (ZCARD %lld)", n);
        usleep(20000);
    }
    /* And the slot is free for the next client at once. */
    resp r = call("POST", "/v1/leases", "{\"account\": 21, \"wait_ms\": 2000}");
    cr_assert_eq(r.status, 200, "the next client: %d %s", r.status, r.body);
    cr_assert_lt(r.ms, 1500, "the next client waited %lld ms for a free slot", (long long)r.ms);
    resp_free(&r);
    cr_assert_eq(zcard(21), 1);
    char *log = node_log();
    cr_assert_null(strstr(log, "no renew from its client"),
                   "a lease was granted to the gone client and expired:\n%s", log);
    free(log);
    r = call("GET", "/metrics", NULL);
    cr_assert(strstr(r.body, "\nsfl_sidecar_leases 1\n"), "sidecar leases:\n%s", r.body);
    resp_free(&r);
}

/*--- Bad requests ----------------------------------------------------------*/

Test(http, bad_requests_get_400_and_change_nothing)
{
    th_account(&redis, 5, 2);
    node_start();
    char *before = keys_snapshot();

    static const struct {
        const char *method, *path, *body, *names;
    } bad[] = {
        {"POST", "/v1/leases", "{\"account\": 5, \"wait_ms\": ", "body"},
        {"POST", "/v1/leases", "not json at all", "body"},
        {"POST", "/v1/leases", "[5]", "body"},
        {"POST", "/v1/leases", "", "body"},
        {"POST", "/v1/leases", "{\"account\": \"x\"}", "account"},
        {"POST", "/v1/leases", "{\"account\": 5.5}", "account"},
        {"POST", "/v1/leases", "{\"account\": -1}", "account"},
        {"POST", "/v1/leases", "{\"account\": 5, \"wait_ms\": -1}", "wait_ms"},
        {"POST", "/v1/leases", "{\"account\": 5, \"wait_ms\": \"1000\"}", "wait_ms"},
        {"POST", "/v1/leases", "{\"account\": 5, \"wait_ms\": 100, \"bogus\": 1}", "bogus"},
        {"POST", "/v1/leases", "{\"wait_ms\": 100}", "account"},
        {"PUT", "/v1/accounts/abc", "{\"max_streams\": 3}", "account id"},
        {"PUT", "/v1/accounts/-5", "{\"max_streams\": 3}", "account id"},
        {"PUT", "/v1/accounts/5", "{\"max_streams\": -1}", "max_streams"},
        {"PUT", "/v1/accounts/5", "{\"max_streams\": \"3\"}", "max_streams"},
        {"PUT", "/v1/accounts/5", "{\"name\": \"X\"}", "max_streams"},
        {"PUT", "/v1/accounts/5", "{\"max_streams\": 3, \"name\": 7}", "name"},
        {"PUT", "/v1/accounts/5", "{\"max_streams\": 3, \"limit\": 7}", "limit"},
        {"PUT", "/v1/accounts/77", "{\"max_streams\": 3,", "body"},
        {"POST", "/v1/checks", "{\"streams\": [{\"id\": 1}]}", "url"},
        {"POST", "/v1/checks", "[]", "body"},
        {"POST", "/v1/checks", "[{\"id\": \"one\", \"url\": \"http://x/1.ts\"}]", "id"},
        {"GET", "/v1/checks/bad%20id", NULL, "batch id"},
        {"GET", "/v1/results?limit=0", NULL, "limit"},
        {"GET", "/v1/results?limit=101", NULL, "limit"},
        {"GET", "/v1/results?limit=ten", NULL, "limit"},
        {"GET", "/v1/results?bogus=1", NULL, "bogus"},
        {"PUT", "/v1/accounts/9007199254740993", "{\"max_streams\": 3}", "account id"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char what[256];
        snprintf(what, sizeof(what), "%s %s %s", bad[i].method, bad[i].path,
                 bad[i].body ? bad[i].body : "");
        resp r = call(bad[i].method, bad[i].path, bad[i].body);
        expect_error(&r, 400, bad[i].names, what);
        resp_free(&r);
    }

    /* Over 1 MiB: 413. */
    size_t big = 1024 * 1024 + 512;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, "{\"account\": 5,", 14);
    huge[big - 1] = '}';
    huge[big] = '\0';
    resp r = call("POST", "/v1/leases", huge);
    cr_assert_eq(r.status, 413, "a %zu-byte body: %d %s", big, r.status, r.body);
    resp_free(&r);
    free(huge);

    /* Unknown routes 404, wrong methods 405. */
    const struct {
        const char *method, *path;
        int code;
    } routes[] = {
        {"GET", "/v1/nothing", 404},    {"GET", "/v2/accounts", 404},
        {"GET", "/v1/leases/x/y", 404}, {"DELETE", "/v1/accounts", 405},
        {"POST", "/v1/accounts", 405},  {"GET", "/v1/leases", 405},
        {"GET", "/v1/accounts/5", 405}, {"PUT", "/metrics", 405},
        {"POST", "/healthz", 405},      {"GET", "/v1/leases/x/renew", 405},
        {"PUT", "/v1/checks", 405},     {"DELETE", "/v1/checks/abc", 405},
        {"POST", "/v1/nodes", 405},     {"DELETE", "/v1/results", 405},
        {"GET", "/v1/nodes/h1", 404},   {"PUT", "/", 405},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        r = call(routes[i].method, routes[i].path, NULL);
        cr_assert_eq(r.status, routes[i].code, "%s %s: %d, expected %d: %s", routes[i].method,
                     routes[i].path, r.status, routes[i].code, r.body);
        cr_assert_not_null(jstr(&r, "error"), "%s %s: no {\"error\"}: %s", routes[i].method,
                           routes[i].path, r.body);
        resp_free(&r);
    }

    char *after = keys_snapshot();
    cr_assert_str_eq(after, before, "bad requests changed the keys in Redis");
    free(before);
    free(after);
    char *max = hget("sfl:{a:5}:conf", "max_streams");
    cr_assert_str_eq(max ? max : "(none)", "2", "a refused PUT changed max_streams");
    free(max);
    cr_assert_eq(zcard(5), 0);
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:77}:conf"), 0);

    cr_assert(th_alive(node_pid), "the node died on bad requests");
    r = call_as(NULL, "GET", "/healthz", NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    r = call("GET", "/metrics", NULL);
    cr_assert(strstr(r.body, "\nsfl_sidecar_leases 0\n"), "%s", r.body);
    resp_free(&r);
}

/*--- PUT /v1/accounts/{id} -------------------------------------------------*/

Test(http, put_account_writes_the_limit)
{
    th_account(&redis, 6, 1);
    node_start();
    resp r = call("PUT", "/v1/accounts/6", "{\"max_streams\": 3, \"name\": \"X\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq((long long)jnum(r.json, "max_streams"), 3);
    cr_assert_eq((long long)jnum(r.json, "id"), 6);
    resp_free(&r);
    char *max = hget("sfl:{a:6}:conf", "max_streams");
    char *name = hget("sfl:{a:6}:conf", "name");
    cr_assert_str_eq(max ? max : "(none)", "3");
    cr_assert_str_eq(name ? name : "(none)", "X");
    free(max);
    free(name);

    /* A new account through the API shows up in /v1/accounts. */
    r = call("PUT", "/v1/accounts/9", "{\"max_streams\": 4, \"name\": \"Nine\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    cr_assert_eq(th_redis_int(&redis, "SISMEMBER sfl:accounts 9"), 1);
    r = call("GET", "/v1/accounts", NULL);
    int found = 0;
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(r.json, "accounts"))
    {
        if ((long long)jnum(a, "id") != 9)
            continue;
        found = 1;
        cr_assert_eq((long long)jnum(a, "max_streams"), 4);
        cr_assert_str_eq(cJSON_GetObjectItem(a, "name")->valuestring, "Nine");
    }
    cr_assert(found, "account 9 missing from %s", r.body);
    resp_free(&r);
}

/*--- /metrics --------------------------------------------------------------*/

Test(http, metrics_in_prometheus_text)
{
    th_account(&redis, 3, 2);
    node_start();
    char *id = post_lease(3, 1000, 200);
    resp r = call("GET", "/metrics", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.raw, "Content-Type: text/plain"), "%s", r.raw);
    const char *want[] = {
        "# HELP sfl_account_limit ",
        "# TYPE sfl_account_limit gauge\n",
        "\nsfl_account_limit{account=\"3\"} 2\n",
        "\nsfl_account_in_use{account=\"3\"} 1\n",
        "\nsfl_redis_up 1\n",
        "\nsfl_sidecar_leases 1\n",
        "\nsfl_leases_held{account=\"3\"} 1\n", /* held by a sidecar client only */
        "# TYPE sfl_checks_total counter\n",
        "\nsfl_checks_total{status=\"OK\"} 0\n",
        "# TYPE sfl_lease_wait_seconds histogram\n",
        "\nsfl_lease_wait_seconds_bucket{le=\"+Inf\"} 0\n",
        "\nsfl_lease_wait_seconds_count 0\n",
        "\nsfl_queue_depth 0\n",
        "# TYPE sfl_leases_held gauge\n",
        "# TYPE sfl_leases_acquired_total counter\n",
        "\nsfl_leases_acquired_total 1\n",
        "# TYPE sfl_leases_denied_total counter\n",
        "\nsfl_leases_denied_total 0\n",
        "# TYPE sfl_leases_lost_total counter\n",
        "\nsfl_leases_lost_total 0\n",
        "# TYPE sfl_lease_renewals_failed_total counter\n",
        "\nsfl_lease_renewals_failed_total 0\n",
        "# TYPE sfl_queue_depth gauge\n",
        "# TYPE sfl_redis_up gauge\n",
    };
    expect_lines(r.body, want, sizeof(want) / sizeof(want[0]));
    /* Every family has its HELP and TYPE. */
    const char *families[] = {"sfl_account_limit",       "sfl_account_in_use",
                              "sfl_leases_held",         "sfl_leases_acquired_total",
                              "sfl_leases_handed_total", "sfl_leases_denied_total",
                              "sfl_leases_lost_total",   "sfl_lease_renewals_failed_total",
                              "sfl_lease_wait_seconds",  "sfl_checks_total",
                              "sfl_queue_depth",         "sfl_redis_up"};
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char help[96];
        snprintf(help, sizeof(help), "# HELP %s ", families[i]);
        cr_assert(strstr(r.body, help), "no HELP for %s:\n%s", families[i], r.body);
    }
    /* Every sample line has a number after its name and labels. */
    char *copy = strdup(r.body);
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *sp = strrchr(line, ' ');
        cr_assert_not_null(sp, "bad sample line: %s", line);
        char *end;
        strtod(sp + 1, &end);
        cr_assert(*end == '\0' || strcmp(sp + 1, "NaN") == 0, "bad value in: %s", line);
    }
    free(copy);
    resp_free(&r);

    /* Fill the account, and one more ask times out: the counters move. */
    char *id2 = post_lease(3, 1000, 200);
    free(post_lease(3, 200, 408));
    r = call("GET", "/metrics", NULL);
    const char *after[] = {
        "\nsfl_account_in_use{account=\"3\"} 2\n",
        "\nsfl_leases_acquired_total 2\n",
        "\nsfl_sidecar_leases 2\n",
        "\nsfl_leases_held{account=\"3\"} 2\n",
    };
    expect_lines(r.body, after, sizeof(after) / sizeof(after[0]));
    cr_assert_geq(metric(r.body, "sfl_leases_denied_total"), 1,
                  "a 408 was not counted as denied:\n%s", r.body);
    resp_free(&r);
    free(id);
    free(id2);
}

/*--- POST /v1/checks -------------------------------------------------------*/

Test(http, checks_batch_runs_to_completion)
{
    th_account(&redis, 3, 2);
    node_start();
    resp r =
        call("POST", "/v1/checks",
             "[{\"id\": 101, \"name\": \"one\", \"url\": \"http://127.0.0.1:9/live/u/p/101.ts\","
             " \"m3u_account\": 3},"
             " {\"id\": 102, \"name\": \"two\", \"url\": \"http://127.0.0.1:9/live/u/p/102.ts\","
             " \"m3u_account\": 3},"
             " {\"id\": 103, \"url\": \"http://127.0.0.1:9/live/u/p/103.ts\"}]");
    cr_assert_eq(r.status, 202, "%d %s", r.status, r.body);
    cr_assert_not_null(jstr(&r, "batch"), "%s", r.body);
    char path[200], batch[100];
    snprintf(batch, sizeof(batch), "%s", jstr(&r, "batch"));
    snprintf(path, sizeof(path), "/v1/checks/%s", batch);
    resp_free(&r);

    r = call("GET", "/v1/results", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);

    int64_t until = th_now_ms() + 30000;
    resp b = {0};
    for (;;) {
        b = call("GET", path, NULL);
        cr_assert_eq(b.status, 200, "%s: %d %s", path, b.status, b.body);
        cr_assert_eq((long long)jnum(b.json, "total"), 3);
        if (jnum(b.json, "done") >= 3 || th_now_ms() > until)
            break;
        resp_free(&b);
        usleep(100000);
    }
    cr_assert_eq((long long)jnum(b.json, "done"), 3, "batch not done in 30 s: %s", b.body);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(b.json, "finished")), "%s", b.body);
    cJSON *results = cJSON_GetObjectItem(b.json, "results");
    cr_assert_eq(cJSON_GetArraySize(results), 3, "%s", b.body);
    int ids = 0;
    cJSON *one;
    cJSON_ArrayForEach(one, results)
    {
        cr_assert_str_eq(cJSON_GetObjectItem(one, "status")->valuestring, "OK", "%s", b.body);
        long long id = (long long)jnum(one, "stream_id");
        cr_assert(id >= 101 && id <= 103, "stream_id %lld", id);
        ids |= 1 << (id - 101);
    }
    cr_assert_eq(ids, 7, "results do not cover streams 101..103: %s", b.body);
    resp_free(&b);

    zc zero = {3, 0};
    cr_assert(th_until(zcard_is, &zero, 3000), "check leases were not released");
    r = call("GET", "/metrics", NULL);
    const char *want[] = {
        "\nsfl_checks_total{status=\"OK\"} 3\n",
        "\nsfl_checks_total{status=\"Error\"} 0\n",
        "\nsfl_lease_wait_seconds_bucket{le=\"+Inf\"} 3\n",
        "\nsfl_lease_wait_seconds_count 3\n",
        "\nsfl_leases_held{account=\"3\"} 0\n",
        "\nsfl_leases_acquired_total 2\n",
        "\nsfl_queue_depth 0\n",
        "\nsfl_queue_pending 0\n",
    };
    expect_lines(r.body, want, sizeof(want) / sizeof(want[0]));
    resp_free(&r);

    /* The recent results: all three, newest first, of this batch, without
     * the stream URLs (they carry credentials). */
    r = call("GET", "/v1/results", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    results = cJSON_GetObjectItem(r.json, "results");
    cr_assert_eq(cJSON_GetArraySize(results), 3, "%s", r.body);
    cr_assert_null(strstr(r.body, "stream_url"), "%s", r.body);
    cr_assert_null(strstr(r.body, "/live/u/p/"), "a stream URL in the recent results: %s", r.body);
    cJSON_ArrayForEach(one, results)
    {
        cr_assert_str_eq(cJSON_GetObjectItem(one, "batch")->valuestring, batch);
        cr_assert_str_eq(cJSON_GetObjectItem(one, "node")->valuestring, "h1");
        cr_assert_str_eq(cJSON_GetObjectItem(one, "status")->valuestring, "OK");
    }
    resp_free(&r);
    r = call("GET", "/v1/results?limit=1", NULL);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 1, "%s", r.body);
    resp_free(&r);

    r = call("GET", "/v1/checks/unknownbatch", NULL);
    expect_error(&r, 404, "unknownbatch", "GET /v1/checks/unknownbatch");
    resp_free(&r);

    r = call("POST", "/v1/checks",
             "[{\"id\": 1, \"url\": \"http://x/1.ts\"}, {\"id\": 2, \"name\": \"no url\"}]");
    expect_error(&r, 400, "url", "a stream without url");
    cr_assert(strstr(jstr(&r, "error"), "[1]"), "the error does not say which stream: %s",
              jstr(&r, "error"));
    resp_free(&r);
}

/*--- Startup and shutdown --------------------------------------------------*/

/* Streams of a full account wait on this node's ticket: when a check ends,
 * its release hands the slot to that ticket, and the next check starts on
 * the announcement (sfl_leases_handed_total), without asking first. */
Test(http, next_check_starts_on_the_handoff)
{
    th_account(&redis, 5, 1);
    conf_check = "{\"command\": [\"sleep\", \"0.3\"], \"parser\": \"none\", \"timeout\": 10}";
    conf_concurrent = "{\"stagger_delay\": 0}"; /* a stagger gate would pass the slot on */
    node_start();
    resp r = call("POST", "/v1/checks",
                  "[{\"id\": 1, \"url\": \"http://127.0.0.1:9/1.ts\", \"m3u_account\": 5},"
                  " {\"id\": 2, \"url\": \"http://127.0.0.1:9/2.ts\", \"m3u_account\": 5},"
                  " {\"id\": 3, \"url\": \"http://127.0.0.1:9/3.ts\", \"m3u_account\": 5}]");
    cr_assert_eq(r.status, 202, "%d %s", r.status, r.body);
    char path[200];
    snprintf(path, sizeof(path), "/v1/checks/%s", jstr(&r, "batch"));
    resp_free(&r);
    int64_t until = th_now_ms() + 30000;
    int done = 0;
    while (!done && th_now_ms() < until) {
        r = call("GET", path, NULL);
        done = jnum(r.json, "done") >= 3;
        resp_free(&r);
        if (!done)
            usleep(100000);
    }
    cr_assert(done, "the batch did not finish in 30 s");
    r = call("GET", "/metrics", NULL);
    cr_assert(strstr(r.body, "\nsfl_leases_acquired_total 3\n"), "%s", r.body);
    long long n = metric(r.body, "sfl_leases_handed_total");
    cr_assert(n >= 1 && n <= 2, "%lld of the 2 waiting checks started on a hand-off:\n%s", n,
              r.body);
    resp_free(&r);
}

Test(http, non_loopback_without_token_exits_2)
{
    char listen[64], config[256];
    snprintf(listen, sizeof(listen), "0.0.0.0:%d", th_free_port());
    write_config(listen, NULL, config, sizeof(config));
    node_pid = spawn_node(config);
    int st = th_wait(node_pid, 20000);
    cr_assert_neq(st, -1, "the node kept running on 0.0.0.0 without a token");
    node_pid = 0;
    cr_assert_eq(th_exit_code(st), 2);
    char *log = node_log();
    cr_assert(strstr(log, "http.token"), "stderr does not mention the token: %s", log);
    free(log);
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:node:h1"), 0, "it registered anyway");
}

Test(http, sigterm_releases_sidecar_leases_and_exits_0)
{
    th_account(&redis, 3, 2);
    node_start();
    char *a = post_lease(3, 1000, 200);
    char *b = post_lease(3, 1000, 200);
    cr_assert_eq(zcard(3), 2);
    kill(node_pid, SIGTERM);
    int st = th_wait(node_pid, 20000);
    cr_assert_neq(st, -1, "the node did not stop within 20 s of SIGTERM");
    node_pid = 0;
    cr_assert_eq(th_exit_code(st), 0);
    cr_assert_eq(zcard(3), 0, "sidecar leases outlived the node");
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:node:h1"), 0, "the node is still registered");
    free(a);
    free(b);
}

/*--- Sidecar leases: renewals, and a lease lost in Redis -------------------*/

static void renew_ok(const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/leases/%s/renew", id);
    resp r = call("POST", path, NULL);
    cr_assert_eq(r.status, 200, "renew %s: %d %s", id, r.status, r.body);
    resp_free(&r);
}

/* A client that keeps renewing keeps its slot well past the lease TTL; when
 * Redis loses the lease and the account has no room to take it back, the
 * next renew is a 409 (stop using the stream), then the id is unknown. */
Test(http, renewed_sidecar_lease_outlives_ttl_and_a_lost_one_is_409)
{
    th_account(&redis, 8, 1);
    node_start();
    char *id = post_lease(8, 1000, 200);
    int64_t t0 = th_now_ms();
    /* Kept fixed: renewing every 0.5 s for more than two TTLs, to show that
     * the lease does not go away while its client renews it. */
    while (th_now_ms() - t0 < 2 * TTL_MS + 500) {
        renew_ok(id);
        cr_assert_eq(zcard(8), 1, "the lease went away %lld ms in, while renewed",
                     (long long)(th_now_ms() - t0));
        cr_assert_eq(th_redis_int(&redis, "ZSCORE sfl:{a:8}:leases %s", id) > 0, 1);
        usleep(500000);
    }

    /* Redis loses the lease and someone else takes the only slot. */
    redisReply *t = th_redis(&redis, "TIME");
    long long now_ms =
        strtoll(t->element[0]->str, NULL, 10) * 1000 + strtoll(t->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(t);
    freeReplyObject(th_redis(&redis, "ZREM sfl:{a:8}:leases %s", id));
    freeReplyObject(th_redis(&redis, "HDEL sfl:{a:8}:holders %s", id));
    freeReplyObject(th_redis(&redis, "ZADD sfl:{a:8}:leases %lld intruder", now_ms + 60000));

    /* The node notices on its next renew (every second). */
    char path[256];
    snprintf(path, sizeof(path), "/v1/leases/%s/renew", id);
    int64_t until = th_now_ms() + 5000;
    int st = 200;
    while (st == 200 && th_now_ms() < until) {
        resp r = call("POST", path, NULL);
        st = r.status;
        if (st == 409)
            cr_assert(strstr(jstr(&r, "error"), "lost"), "%s", r.body);
        resp_free(&r);
        usleep(100000);
    }
    cr_assert_eq(st, 409, "renew of a lease Redis lost: %d", st);
    cr_assert_eq(status_of("POST", path, NULL), 404, "the lost lease is forgotten after its 409");
    cr_assert_eq(th_redis_int(&redis, "ZSCORE sfl:{a:8}:leases %s", id), 0,
                 "the lost lease came back");
    resp r = call("GET", "/metrics", NULL);
    cr_assert(strstr(r.body, "\nsfl_leases_lost_total 1\n"), "%s", r.body);
    cr_assert(strstr(r.body, "\nsfl_sidecar_leases 0\n"), "%s", r.body);
    cr_assert_geq(metric(r.body, "sfl_lease_renewals_failed_total"), 1,
                  "a failed renewal not counted:\n%s", r.body);
    resp_free(&r);
    cr_assert(th_alive(node_pid));
    free(id);
}

/*--- /metrics: queue depth, Redis down -------------------------------------*/

/* One check at a time (global_limit 1, lookahead 1): of 6 streams the node
 * takes 2, the queue holds the other 4. */
Test(http, metrics_queue_depth_counts_what_no_node_took)
{
    conf_concurrent = "{\"global_limit\": 1}";
    conf_node = "{\"shutdown_grace\": 1, \"lookahead\": 1}";
    conf_check = "{\"command\": [\"sleep\", \"20\"], \"parser\": \"none\", \"timeout\": 30}";
    node_start();
    resp r =
        call("POST", "/v1/checks",
             "[{\"id\": 1, \"url\": \"http://x/1.ts\"}, {\"id\": 2, \"url\": \"http://x/2.ts\"},"
             " {\"id\": 3, \"url\": \"http://x/3.ts\"}, {\"id\": 4, \"url\": \"http://x/4.ts\"},"
             " {\"id\": 5, \"url\": \"http://x/5.ts\"}, {\"id\": 6, \"url\": \"http://x/6.ts\"}]");
    cr_assert_eq(r.status, 202, "%d %s", r.status, r.body);
    resp_free(&r);
    int64_t until = th_now_ms() + 10000;
    int seen = 0;
    while (!seen && th_now_ms() < until) {
        r = call("GET", "/metrics", NULL);
        seen =
            strstr(r.body, "\nsfl_checks_running 1\n") && strstr(r.body, "\nsfl_queue_pending 2\n");
        if (!seen)
            resp_free(&r);
        usleep(50000);
    }
    cr_assert(seen, "the node never ran one check with one more taken");
    cr_assert(strstr(r.body, "\nsfl_queue_depth 4\n"), "4 of 6 entries undelivered:\n%s", r.body);
    cr_assert(strstr(r.body, "\nsfl_node_queued 1\n"), "%s", r.body);
    resp_free(&r);
}

/* Redis away: /healthz 503 "down", sfl_redis_up 0, the node alive; Redis
 * back: 200 and 1 again. */
Test(http, redis_down_shows_in_healthz_and_metrics)
{
    node_start();
    th_redis_stop(&redis);
    int64_t until = th_now_ms() + 10000;
    resp r = {0};
    for (;;) {
        r = call_as(NULL, "GET", "/healthz", NULL);
        if (r.status == 503 || th_now_ms() > until)
            break;
        resp_free(&r);
        usleep(50000);
    }
    cr_assert_eq(r.status, 503, "healthz with Redis gone: %d %s", r.status, r.body);
    cr_assert_str_eq(jstr(&r, "redis"), "down");
    resp_free(&r);
    r = call("GET", "/metrics", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\nsfl_redis_up 0\n"), "%s", r.body);
    resp_free(&r);
    r = call("GET", "/v1/accounts", NULL);
    expect_error(&r, 503, "Redis", "GET /v1/accounts with Redis gone");
    resp_free(&r);
    cr_assert(th_alive(node_pid), "the node died with Redis");

    th_redis_restart(&redis);
    until = th_now_ms() + 15000;
    for (;;) {
        r = call("GET", "/metrics", NULL);
        if (strstr(r.body, "\nsfl_redis_up 1\n") || th_now_ms() > until)
            break;
        resp_free(&r);
        usleep(100000);
    }
    cr_assert(strstr(r.body, "\nsfl_redis_up 1\n"), "Redis back, still down:\n%s", r.body);
    resp_free(&r);
    r = call_as(NULL, "GET", "/healthz", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
}

/* POST /v1/leases tells an outage from a full account: 408 while Redis
 * answers "full", 503 naming Redis when Redis is gone, whether it went away
 * during the wait or was gone before the ask. */
Test(http, lease_ask_while_redis_is_down_is_503)
{
    th_account(&redis, 3, 1);
    node_start();
    char *held = post_lease(3, 1000, 200);
    resp r = call("POST", "/v1/leases", "{\"account\": 3, \"wait_ms\": 300}");
    expect_error(&r, 408, "wait_ms", "a full account");
    resp_free(&r);

    const char *ask = "{\"account\": 3, \"wait_ms\": 1500}";
    int fd = th_http_send(node_port, "POST", "/v1/leases", TOKEN, ask, strlen(ask));
    cr_assert_geq(fd, 0);
    usleep(300000);
    th_redis_stop(&redis);
    cr_assert_eq(th_http_read(fd, &r), 0, "no answer to a wait Redis left during");
    expect_error(&r, 503, "Redis", "Redis gone during the wait");
    resp_free(&r);

    int64_t until = th_now_ms() + 10000;
    int st = 0;
    while (st != 503 && th_now_ms() < until) {
        r = call_as(NULL, "GET", "/healthz", NULL);
        st = r.status;
        resp_free(&r);
        if (st != 503)
            usleep(50000);
    }
    cr_assert_eq(st, 503, "/healthz never saw Redis gone");
    r = call("POST", "/v1/leases", "{\"account\": 3, \"wait_ms\": 2000}");
    expect_error(&r, 503, "Redis", "Redis gone before the ask");
    cr_assert_lt(r.ms, 1000, "the 503 came after %lld ms: it should not wait", (long long)r.ms);
    resp_free(&r);
    cr_assert(th_alive(node_pid));
    free(held);
}

/*--- sflimit status --------------------------------------------------------*/

/* Runs `sflimit status ARGS -c sflimit.json`; returns stdout (caller frees). */
static char *run_status(const char *a1, const char *a2)
{
    char out[256], err[256], config[256];
    snprintf(config, sizeof(config), "%s/sflimit.json", dir);
    snprintf(out, sizeof(out), "%s/status%d.out", dir, spawns);
    snprintf(err, sizeof(err), "%s/status%d.err", dir, spawns++);
    const char *argv[] = {SFL_BIN, "status", "-c", config, a1, a2, NULL};
    int st = th_wait(th_spawn((char *const *)argv, out, err), 20000);
    cr_assert_neq(st, -1, "sflimit status did not end");
    char *text = th_read_file(out), *etext = th_read_file(err);
    cr_assert_eq(th_exit_code(st), 0, "sflimit status: exit %d, stderr:\n%s", th_exit_code(st),
                 etext);
    free(etext);
    return text;
}

/* What `status --watch` has drawn, for th_until. Renews the sidecar leases
 * in keep every second meanwhile (the node drops those not renewed). */
typedef struct watch_arg {
    const char *path;    /* its stdout */
    const char *keep[2]; /* lease ids; NULL: none */
    int64_t renewed;
    int frames;   /* 1 once it has drawn this many frames, with account 3's line whole */
    int released; /* ... and that line shows 1 in use, no waiter, no rec-2 */
} watch_arg;

static int watch_shows(void *arg)
{
    watch_arg *w = arg;
    if (th_now_ms() - w->renewed >= 1000) {
        for (int i = 0; i < 2; i++)
            if (w->keep[i])
                renew_ok(w->keep[i]);
        w->renewed = th_now_ms();
    }
    char *text = th_read_file(w->path);
    int frames = 0;
    for (const char *p = text; p && (p = strstr(p, "\033[H\033[J")); p++)
        frames++;
    const char *last = NULL;
    for (const char *p = text ? strstr(text, "\n3 ") : NULL; p; p = strstr(p + 1, "\n3 "))
        last = p;
    const char *end = last ? strchr(last + 1, '\n') : NULL;
    int yes = frames >= w->frames && end;
    if (yes && w->released) {
        char line[512], name[64];
        long long lim, use, wait;
        snprintf(line, sizeof(line), "%.*s", (int)(end - last - 1), last + 1);
        yes = sscanf(line, "3 %63[^0-9] %lld %lld %lld", name, &lim, &use, &wait) == 4 &&
              use == 1 && wait == 0 && !strstr(line, "rec-2");
    }
    free(text);
    return yes;
}

/* Account 3 "Prov A" (limit 2) full with two sidecar leases and a third
 * client waiting; account 4 idle. The table, its --json twin of
 * GET /v1/accounts, and --watch redrawing as a lease goes. */
Test(http, status_table_json_and_watch)
{
    node_start();
    resp r = call("PUT", "/v1/accounts/3", "{\"max_streams\": 2, \"name\": \"Prov A\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    th_account(&redis, 4, 5);
    r = call("POST", "/v1/leases", "{\"account\": 3, \"wait_ms\": 15000, \"label\": \"rec-1\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    char id1[128];
    snprintf(id1, sizeof(id1), "%s", jstr(&r, "lease_id"));
    resp_free(&r);
    r = call("POST", "/v1/leases", "{\"account\": 3, \"wait_ms\": 1000, \"label\": \"rec-2\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    char id2[128];
    snprintf(id2, sizeof(id2), "%s", jstr(&r, "lease_id"));
    resp_free(&r);
    const char *ask = "{\"account\": 3, \"wait_ms\": 60000, \"label\": \"late\"}";
    int waiter = th_http_send(node_port, "POST", "/v1/leases", TOKEN, ask, strlen(ask));
    cr_assert_geq(waiter, 0);
    int64_t until = th_now_ms() + 5000;
    while (th_redis_int(&redis, "ZCARD sfl:{a:3}:waiters:exp") < 1 && th_now_ms() < until)
        usleep(10000);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:3}:waiters:exp"), 1);
    renew_ok(id1);
    renew_ok(id2);

    /* The table: header, one line per account, holders as node/stream age. */
    char *table = run_status(NULL, NULL);
    cr_assert(strncmp(table, "ACCOUNT  NAME", 13) == 0, "no header:\n%s", table);
    cr_assert(strstr(table, "LIMIT") && strstr(table, "IN USE") && strstr(table, "WAITING") &&
                  strstr(table, "HOLDERS"),
              "header lacks a column:\n%s", table);
    char *line3 = strstr(table, "\n3 "), *line4 = strstr(table, "\n4 ");
    cr_assert(line3 && line4, "no line for accounts 3 and 4:\n%s", table);
    line4++; /* its '\n' ends line 3 */
    *strchr(line3 + 1, '\n') = '\0';
    long long lim, use, wait;
    char name[64];
    cr_assert_eq(sscanf(line3, "\n3 %63[^0-9] %lld %lld %lld", name, &lim, &use, &wait), 4,
                 "account 3's line: %s", line3);
    cr_assert(strncmp(name, "Prov A", 6) == 0, "name: %s", name);
    cr_assert_eq(lim, 2);
    cr_assert_eq(use, 2);
    cr_assert_eq(wait, 1, "the waiting client: %s", line3);
    const char *h1 = strstr(line3, " h1/rec-1 "), *h2 = strstr(line3, " h1/rec-2 ");
    cr_assert(h1 && h2, "holders node/stream: %s", line3);
    double age = strtod(h1 + strlen(" h1/rec-1 "), NULL);
    cr_assert(age >= 0 && age < 60, "age of rec-1: %s", line3);
    cr_assert_eq(sscanf(line4, "4 %lld %lld %lld", &lim, &use, &wait), 3,
                 "account 4's line (no name): %s", line4);
    cr_assert(lim == 5 && use == 0 && wait == 0, "account 4's line: %s", line4);
    free(table);

    /* --json: the shape of GET /v1/accounts (without the node's own fields).
     * Renewed again first: the client TTL is 3 s, and under memcheck the
     * table's `sflimit status` alone can take half of it. */
    renew_ok(id1);
    renew_ok(id2);
    char *json = run_status("--json", NULL);
    cJSON *doc = cJSON_Parse(json);
    cr_assert_not_null(doc, "not JSON: %s", json);
    r = call("GET", "/v1/accounts", NULL);
    cJSON *mine = cJSON_GetObjectItem(doc, "accounts"),
          *api = cJSON_GetObjectItem(r.json, "accounts");
    cr_assert_eq(cJSON_GetArraySize(mine), 2, "%s", json);
    cr_assert_eq(cJSON_GetArraySize(api), 2, "%s", r.body);
    for (int i = 0; i < 2; i++) {
        cJSON *a = cJSON_GetArrayItem(mine, i), *b = cJSON_GetArrayItem(api, i);
        const char *fields[] = {"id", "max_streams", "in_use", "waiting"};
        for (size_t f = 0; f < 4; f++)
            cr_assert_eq(jnum(a, fields[f]), jnum(b, fields[f]), "%s differs: %s vs %s", fields[f],
                         json, r.body);
        cr_assert_str_eq(cJSON_GetObjectItem(a, "name")->valuestring,
                         cJSON_GetObjectItem(b, "name")->valuestring);
        cJSON *ha = cJSON_GetObjectItem(a, "holders");
        cr_assert_eq(cJSON_GetArraySize(ha), cJSON_GetArraySize(cJSON_GetObjectItem(b, "holders")));
        cJSON *h;
        cJSON_ArrayForEach(h, ha)
        {
            cr_assert_str_eq(cJSON_GetObjectItem(h, "node")->valuestring, "h1");
            cr_assert(cJSON_IsString(cJSON_GetObjectItem(h, "stream")));
            cr_assert_geq(jnum(h, "age_ms"), 0);
            cr_assert_gt(jnum(h, "fence"), 0);
        }
    }
    cr_assert_eq((long long)jnum(cJSON_GetArrayItem(mine, 0), "in_use"), 2);
    cr_assert_eq((long long)jnum(cJSON_GetArrayItem(mine, 0), "waiting"), 1);
    resp_free(&r);
    cJSON_Delete(doc);
    free(json);

    /* --watch: redraws every second; a lease given back shows up. */
    char out[256], err[256], config[256];
    snprintf(config, sizeof(config), "%s/sflimit.json", dir);
    snprintf(out, sizeof(out), "%s/watch.out", dir);
    snprintf(err, sizeof(err), "%s/watch.err", dir);
    const char *argv[] = {SFL_BIN, "status", "--watch", "-c", config, NULL};
    renew_ok(id1); /* the status runs above may have been slow (valgrind) */
    renew_ok(id2);
    pid_t watch = th_spawn((char *const *)argv, out, err);
    watch_arg w = {.path = out, .keep = {id1, id2}, .renewed = th_now_ms(), .frames = 1};
    cr_assert(th_until(watch_shows, &w, 15000), "status --watch drew no frame with account 3");
    int64_t first_seen = th_now_ms();
    renew_ok(id1);
    close(waiter); /* the waiting client gives up */
    char path[256];
    snprintf(path, sizeof(path), "/v1/leases/%s", id2);
    cr_assert_eq(status_of("DELETE", path, NULL), 200);
    w.keep[1] = NULL;
    w.frames = 3;
    th_until(watch_shows, &w, 15000);
    int64_t third_after = th_now_ms() - first_seen;
    w.released = 1;
    th_until(watch_shows, &w, 15000);
    renew_ok(id1);
    kill(watch, SIGINT);
    int st = th_wait(watch, 5000);
    cr_assert_neq(st, -1, "status --watch did not stop on SIGINT");
    cr_assert_eq(th_exit_code(st), 0, "status --watch: exit %d", th_exit_code(st));
    char *text = th_read_file(out);
    int frames = 0;
    for (const char *p = text; (p = strstr(p, "\033[H\033[J")); p++)
        frames++;
    cr_assert_geq(frames, 3, "%d redraws:\n%s", frames, text);
    cr_assert_leq(third_after, 3500,
                  "the third frame came %lld ms after the first: not one a second",
                  (long long)third_after);
    const char *first = strstr(text, "\n3 "), *last = NULL;
    for (const char *p = first; p; p = strstr(p + 1, "\n3 "))
        last = p;
    cr_assert(first && last && first != last, "account 3 not redrawn:\n%s", text);
    cr_assert(strstr(first, " h1/rec-2 ") && strstr(first, " h1/rec-2 ") < strchr(first + 1, '\n'),
              "the first frame lacks rec-2:\n%s", text);
    char lastline[512];
    snprintf(lastline, sizeof(lastline), "%.*s", (int)(strchrnul(last + 1, '\n') - last - 1),
             last + 1);
    cr_assert_eq(sscanf(lastline, "3 %63[^0-9] %lld %lld %lld", name, &lim, &use, &wait), 4, "%s",
                 lastline);
    cr_assert_eq(use, 1, "the last frame still shows 2 in use: %s", lastline);
    cr_assert_eq(wait, 0, "the last frame still shows a waiter: %s", lastline);
    cr_assert_null(strstr(lastline, "rec-2"), "the last frame still shows rec-2: %s", lastline);
    free(text);
}

/* http.max_body sets the 413 bound: with 4096, a 5000-byte body is refused
 * unread and a 3000-byte one of the same request is served. */
Test(http, max_body_from_config)
{
    conf_http = ", \"max_body\": 4096";
    th_account(&redis, 5, 1);
    node_start();
    const struct {
        size_t size;
        int too_big;
    } cases[] = {{5000, 1}, {3000, 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cases[i].size;
        char *body = malloc(n + 1);
        cr_assert_not_null(body);
        memset(body, ' ', n);
        const char *ask = "{\"account\": 5, \"wait_ms\": 20000, \"label\": \"big\"";
        memcpy(body, ask, strlen(ask));
        body[n - 1] = '}';
        body[n] = '\0';
        resp r = call("POST", "/v1/leases", body);
        if (cases[i].too_big)
            cr_expect_eq(r.status, 413, "a %zu-byte body over max_body 4096: %d %s", n, r.status,
                         r.body);
        else
            cr_expect_eq(r.status, 200, "a %zu-byte body under max_body 4096: %d %s", n, r.status,
                         r.body);
        resp_free(&r);
        free(body);
    }
    cr_expect_eq(zcard(5), 1, "exactly the served ask holds a lease");
    cr_assert(th_alive(node_pid));
}
