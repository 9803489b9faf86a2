/* test_history_read.c - reading history back (issue #18): GET /v1/history and
 * GET /v1/streams/{id}/history of a real `sflimit node`, and `sflimit
 * status --history`, against a real redis-server holding hour keys written
 * here by hand with HSET in the contract's format (v1: a hash per login and
 * UTC hour, minute -> "start,peak,held_ms,limit,..."), so that every figure
 * the API and the CLI give is known in advance.
 *
 * The node routes accounts 1 (logins p-main, p-alt) and 2 (p-alt) and 3 (one
 * login, "3"). The minutes written lie two hours back, in a range of their
 * own, so no clock edge moves them. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "hist-t0ken"

static sfl_test_redis redis;
static char dir[128], config[256], node_err[256];
static pid_t node_pid;
static int node_port;
static long long base; /* the hour two hours back: the minutes written are in it */
static char base_iso[32], end_iso[32];

static void iso(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "sfl:history:<login>:<YYYYMMDDHH>" of the hour holding t. */
static const char *hour_key(const char *login, long long t)
{
    static char key[128];
    time_t tt = (time_t)t;
    struct tm tm;
    char hour[16];
    gmtime_r(&tt, &tm);
    strftime(hour, sizeof(hour), "%Y%m%d%H", &tm);
    snprintf(key, sizeof(key), "sfl:history:%s:%s", login, hour);
    return key;
}

static void hset(const char *login, long long minute_t, const char *csv)
{
    redisReply *r = th_redis(&redis, "HSET %s %d %s", hour_key(login, minute_t),
                             (int)((minute_t % 3600) / 60), csv);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "HSET failed");
    freeReplyObject(r);
}

static void node_start(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[2048];
        node_port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"h1\",\n"
                 " \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"" TOKEN "\"},\n"
                 " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500%s},\n"
                 " \"check\": {\"command\": [\"true\"], \"parser\": \"none\"},\n"
                 " \"accounts\": [\n"
                 "  {\"id\": 1, \"name\": \"P\", \"logins\": [{\"id\": \"p-main\", "
                 "\"max_streams\": 1}, {\"id\": \"p-alt\", \"max_streams\": 2}]},\n"
                 "  {\"id\": 2, \"name\": \"Q\", \"logins\": [{\"id\": \"p-alt\", "
                 "\"max_streams\": 2}]},\n"
                 "  {\"id\": 3, \"name\": \"R\", \"max_streams\": 4}]}\n",
                 redis.url, node_port, th_wrap_lease());
        th_write_file(dir, "sflimit.json", text, config, sizeof(config));
        snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, attempt);
        node_pid = th_node_start(config, node_port, node_err, &redis, "h1");
        if (node_pid)
            return;
    }
    cr_assert_fail("the node never got a port");
}

static int alt_conf_written(void *arg)
{
    (void)arg;
    return th_redis_int(&redis, "HGET sfl:{a:1}:l:p-alt:conf max_streams") == 2;
}

static void setup(void)
{
    node_pid = 0;
    th_clear_env();
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    long long now = (long long)time(NULL);
    base = now - now % 3600 - 2 * 3600;
    iso(base, base_iso, sizeof(base_iso));
    iso(base + 3600, end_iso, sizeof(end_iso));
    node_start();
    cr_assert(th_until(alt_conf_written, NULL, 15000), "the node did not write p-alt's conf");
}

static void teardown(void)
{
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    th_redis_stop(&redis);
}

TestSuite(history_read, .init = setup, .fini = teardown, .timeout = 120);

/*--- Helpers ---------------------------------------------------------------*/

static th_http_resp get(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static th_http_resp get(const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    th_http_resp r;
    cr_assert_eq(th_http(node_port, TOKEN, "GET", path, NULL, &r), 0, "GET %s: no answer", path);
    return r;
}

static void expect_error(const char *path, int code, const char *piece)
{
    th_http_resp r = get("%s", path);
    cr_expect_eq(r.status, code, "GET %s: %d, want %d: %s", path, r.status, code, r.body);
    const char *err = cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "error"));
    cr_expect(err && strstr(err, piece), "GET %s: error \"%s\" lacks \"%s\"", path,
              err ? err : "(none)", piece);
    th_http_free(&r);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", k);
    return v->valuedouble;
}

static cJSON *point(const cJSON *doc, int i)
{
    cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "points"), i);
    cr_assert_not_null(p, "no point %d", i);
    return p;
}

/* Minutes 0-4 of the base hour on p-alt: a known load. Minute 2 has a wait
 * <= 100 ms and two <= 2.5 s; minute 3 has others' connections. */
static void write_load(void)
{
    hset("p-alt", base + 0, "1,1,60000,2,0,0,0,0,1,0,0,0,0,1,1");
    hset("p-alt", base + 60, "1,2,90000,2,0,0,0,1,1,2,0,0,0,1,0");
    hset("p-alt", base + 120, "2,2,120000,2,0,0,0,3,3,4,0,0,0,3,3,0,0,0,0,0,0,1,0,0,0,2");
    hset("p-alt", base + 180, "2,1,100000,2,3,6,2,0,0,0,1,1,0");
    hset("p-alt", base + 240, "1,1,30000,2");
}

/*--- GET /v1/history -------------------------------------------------------*/

Test(history_read, api_points_are_the_minutes_written)
{
    write_load();
    th_http_resp r = get("/v1/history?login=p-alt&from=%s&to=%s", base_iso, end_iso);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *d = r.json;
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(d, "login")), "p-alt");
    cJSON *accs = cJSON_GetObjectItem(d, "accounts");
    cr_expect_eq(cJSON_GetArraySize(accs), 2);
    cr_expect_eq(cJSON_GetArrayItem(accs, 0)->valuedouble, 1);
    cr_expect_eq(cJSON_GetArrayItem(accs, 1)->valuedouble, 2);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(d, "from")), base_iso);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(d, "to")), end_iso);
    cr_expect_eq(num(d, "step_s"), 60);
    cr_expect_eq(num(d, "limit_now"), 2, "p-alt's conf says 2");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "points")), 60);
    const double peaks[5] = {1, 2, 2, 2, 1}, means[5] = {1, 1.5, 2, 1.67, 0.5};
    for (int i = 0; i < 5; i++) {
        cJSON *p = point(d, i);
        cr_expect_eq(num(p, "t_ms"), (base + 60.0 * i) * 1000);
        cr_expect_eq(num(p, "minutes"), 1);
        cr_expect_eq(num(p, "in_use_peak"), peaks[i], "minute %d: peak %g", i,
                     num(p, "in_use_peak"));
        cr_expect_eq(num(p, "in_use_mean"), means[i], "minute %d: mean %g", i,
                     num(p, "in_use_mean"));
        cr_expect_eq(num(p, "limit"), 2);
    }
    cr_expect_eq(num(point(d, 2), "wait_p50_ms"), 2500);
    cr_expect_eq(num(point(d, 2), "waiting_peak"), 3);
    cr_expect_eq(num(point(d, 3), "others_mean"), 3);
    cr_expect_eq(num(point(d, 3), "lost"), 1);
    for (int i = 5; i < 60; i++) {
        cJSON *p = point(d, i);
        cr_expect_eq(num(p, "minutes"), 0, "minute %d recorded?", i);
        cr_expect(cJSON_IsNull(cJSON_GetObjectItem(p, "limit")), "minute %d: limit not null", i);
    }
    th_http_free(&r);

    /* Five-minute steps: the first sums the five minutes written. */
    r = get("/v1/history?login=p-alt&from=%s&to=%s&step=5m", base_iso, end_iso);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect_eq(num(r.json, "step_s"), 300);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 12);
    cJSON *p = point(r.json, 0);
    cr_expect_eq(num(p, "minutes"), 5);
    cr_expect_eq(num(p, "in_use_peak"), 2);
    cr_expect_eq(num(p, "in_use_mean"), 1.33, "400000 lease-ms over 300 s: %g",
                 num(p, "in_use_mean"));
    cr_expect_eq(num(p, "grants"), 5);
    cr_expect_eq(num(p, "denials"), 6);
    cr_expect_eq(num(p, "checks"), 5);
    cr_expect_eq(num(p, "waits"), 4);
    cr_expect_eq(num(p, "wait_p50_ms"), 2500);
    cr_expect_eq(num(point(r.json, 1), "minutes"), 0);
    th_http_free(&r);

    /* The limit now is the conf's effective one. */
    th_redis_int(&redis, "HSET sfl:{a:1}:l:p-alt:conf learned_limit 1");
    r = get("/v1/history?login=p-alt&from=%s&to=%s", base_iso, end_iso);
    cr_expect_eq(num(r.json, "limit_now"), 1, "learned_limit 1 caps max_streams 2");
    th_http_free(&r);
}

Test(history_read, api_reads_across_hours_and_defaults)
{
    /* Minute 59 of the hour before and minute 0 of the base hour: two keys. */
    hset("3", base - 60, "3,4,240000,4,0,0,0,0,2");
    hset("3", base, "4,3,240000,4,0,0,0,0,1");
    char from[32], to[32];
    iso(base - 120, from, sizeof(from));
    iso(base + 120, to, sizeof(to));
    th_http_resp r = get("/v1/history?login=3&from=%s&to=%s", from, to);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 4);
    cr_expect_eq(num(point(r.json, 0), "minutes"), 0);
    cr_expect_eq(num(point(r.json, 1), "in_use_peak"), 4);
    cr_expect_eq(num(point(r.json, 2), "in_use_peak"), 4, "max(start 4, peak 3)");
    cr_expect_eq(num(point(r.json, 1), "grants") + num(point(r.json, 2), "grants"), 3);
    cr_expect_eq(num(r.json, "limit_now"), 4);
    cJSON *accs = cJSON_GetObjectItem(r.json, "accounts");
    cr_expect(cJSON_GetArraySize(accs) == 1 && cJSON_GetArrayItem(accs, 0)->valuedouble == 3);
    th_http_free(&r);

    /* Defaults: the last hour in minutes; a relative from. */
    r = get("/v1/history?login=p-main");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect_eq(num(r.json, "step_s"), 60);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 60);
    cr_expect_eq(num(r.json, "limit_now"), 1);
    th_http_free(&r);
    r = get("/v1/history?login=p-main&from=-24h&step=1h");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 24);
    th_http_free(&r);
    r = get("/v1/history?login=p-main&from=-7d");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect_leq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 360);
    th_http_free(&r);
}

Test(history_read, api_refusals)
{
    expect_error("/v1/history", 400, "login: required");
    expect_error("/v1/history?login=", 400, "login: empty");
    expect_error("/v1/history?login=a%20b", 400, "login: expected");
    expect_error("/v1/history?login=p-alt&from=yesterday", 400, "from: \"yesterday\"");
    expect_error("/v1/history?login=p-alt&to=later", 400, "to: \"later\"");
    expect_error("/v1/history?login=p-alt&step=90", 400, "step: \"90\"");
    expect_error("/v1/history?login=p-alt&step=1x", 400, "step: \"1x\"");
    expect_error("/v1/history?login=p-alt&from=-1h&to=-2h", 400, "is not before to");
    expect_error("/v1/history?login=p-alt&from=-30d&step=1m", 400, "at most 10080");
    expect_error("/v1/history?login=p-alt&login=p-main", 400, "login: given twice");
    expect_error("/v1/history?login=p-alt&since=1h", 400, "since: unknown parameter");
    expect_error("/v1/history?login=nope", 404, "unknown login \"nope\"");
    expect_error("/v1/streams/x1/history", 400, "stream id");
    expect_error("/v1/streams/99999999999999999/history", 400, "stream id");
    expect_error("/v1/streams/1/history?limit=0", 400, "limit: expected");
    expect_error("/v1/streams/1/history?limit=1001", 400, "limit: expected");
    expect_error("/v1/streams/1/history?max=3", 400, "max: unknown parameter");
    th_http_resp r;
    cr_assert_eq(th_http(node_port, NULL, "GET", "/v1/history?login=p-alt", NULL, &r), 0);
    cr_expect_eq(r.status, 401, "no token: %d", r.status);
    th_http_free(&r);
    cr_assert_eq(th_http(node_port, TOKEN, "POST", "/v1/history?login=p-alt", "{}", &r), 0);
    cr_expect_eq(r.status, 405);
    th_http_free(&r);

    /* Garbage in a key: a 500 naming the key and the minute, no crash. */
    hset("p-alt", base + 120, "1,1,lots,2");
    char piece[256];
    snprintf(piece, sizeof(piece), "%s: minute 2: position 2", hour_key("p-alt", base));
    char path[256];
    snprintf(path, sizeof(path), "/v1/history?login=p-alt&from=%s&to=%s", base_iso, end_iso);
    expect_error(path, 500, piece);
    /* A key of another type. */
    freeReplyObject(th_redis(&redis, "SET %s x", hour_key("p-main", base)));
    snprintf(path, sizeof(path), "/v1/history?login=p-main&from=%s&to=%s", base_iso, end_iso);
    expect_error(path, 500, "WRONGTYPE");
    /* The node is still there. */
    r = get("/v1/history?login=3");
    cr_expect_eq(r.status, 200);
    th_http_free(&r);
}

/*--- GET /v1/streams/{id}/history ------------------------------------------*/

/* A login the node does not route but Redis describes (an account another
 * node or `accounts set` wrote): answered, with its accounts and limit from
 * Redis; the dashboard lists such logins too. */
Test(history_read, api_login_described_in_redis_only)
{
    const char *argv[] = {SFL_BIN, "accounts", "set", "77", "5", "--redis", redis.url, NULL};
    th_run run;
    th_run_start(&run, dir, argv);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 30000)), 0, "accounts set failed");
    /* The minute recorded a limit of 4; the account's limit is 5 now. */
    hset("77", base + 60, "0,2,60000,4,0,0,0,0,3");
    char path[256];
    snprintf(path, sizeof(path), "/v1/history?login=77&from=%lld&to=%lld", base, base + 3600);
    th_http_resp r = get("%s", path);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const cJSON *acc = cJSON_GetObjectItem(r.json, "accounts");
    cr_assert_eq(cJSON_GetArraySize(acc), 1, "%s", r.body);
    cr_expect_eq(cJSON_GetArrayItem(acc, 0)->valuedouble, 77);
    cr_expect_eq(num(r.json, "limit_now"), 5, "the limit Redis has now: %s", r.body);
    cr_expect_eq(num(point(r.json, 1), "limit"), 4, "%s", r.body);
    cr_expect_eq(num(point(r.json, 1), "in_use_peak"), 2, "%s", r.body);
    cr_expect_eq(num(point(r.json, 1), "grants"), 3, "%s", r.body);
    th_http_free(&r);
    expect_error("/v1/history?login=78", 404, "unknown login \"78\"");
}

Test(history_read, stream_results_newest_first)
{
    for (int i = 1; i <= 3; i++) {
        redisReply *x = th_redis(&redis,
                                 "LPUSH sfl:stream:101:history {\"stream_id\":101,\"status\":"
                                 "\"OK\",\"fps\":%d}",
                                 24 + i);
        freeReplyObject(x);
    }
    freeReplyObject(th_redis(&redis, "LPUSH sfl:stream:101:history not-json"));
    th_http_resp r = get("/v1/streams/101/history");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect_eq(num(r.json, "stream_id"), 101);
    cJSON *list = cJSON_GetObjectItem(r.json, "results");
    cr_assert_eq(cJSON_GetArraySize(list), 3, "the element that is not JSON left out: %s", r.body);
    cr_expect_eq(num(cJSON_GetArrayItem(list, 0), "fps"), 27, "newest first");
    cr_expect_eq(num(cJSON_GetArrayItem(list, 2), "fps"), 25);
    th_http_free(&r);
    r = get("/v1/streams/101/history?limit=3");
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 2,
                 "the 3 newest, one of them not JSON");
    th_http_free(&r);
    r = get("/v1/streams/-7/history");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect_eq(num(r.json, "stream_id"), -7);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 0);
    th_http_free(&r);
}

/*--- sflimit status --history ----------------------------------------------*/

typedef struct cli_out {
    int code;
    char *out, *err;
} cli_out;

static cli_out cli(const char *const *args)
{
    const char *argv[24] = {SFL_BIN, "status", "--history", "-c", config};
    size_t n = 5;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    th_run run;
    th_run_start(&run, dir, argv);
    cli_out o = {th_exit_code(th_run_wait(&run, 30000)), th_read_file(run.out),
                 th_read_file(run.err)};
    if (!o.out)
        o.out = strdup("");
    if (!o.err)
        o.err = strdup("");
    return o;
}

static void cli_free(cli_out *o)
{
    free(o->out);
    free(o->err);
}

Test(history_read, cli_json_is_the_api_shape)
{
    write_load();
    cli_out o = cli(
        (const char *[]){"--login", "p-alt", "--since", base_iso, "--step", "5m", "--json", NULL});
    cr_assert_eq(o.code, 0, "exit %d: %s", o.code, o.err);
    cJSON *doc = cJSON_Parse(o.out);
    cr_assert_not_null(doc, "not JSON: %s", o.out);
    cJSON *logins = cJSON_GetObjectItem(doc, "logins");
    cr_assert_eq(cJSON_GetArraySize(logins), 1);
    cJSON *l = cJSON_GetArrayItem(logins, 0);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "login")), "p-alt");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "from")), base_iso);
    cr_expect_eq(num(l, "step_s"), 300);
    cr_expect_eq(num(l, "limit_now"), 2);
    cJSON *p = point(l, 0);
    cr_expect_eq(num(p, "minutes"), 5);
    cr_expect_eq(num(p, "grants"), 5);
    cr_expect_eq(num(p, "in_use_mean"), 1.33);
    /* The same as the API's, point for point. */
    th_http_resp r = get("/v1/history?login=p-alt&from=%s&step=5m", base_iso);
    cr_assert_eq(r.status, 200);
    cJSON *api = cJSON_GetObjectItem(r.json, "points");
    cr_expect(cJSON_Compare(cJSON_GetArrayItem(api, 0), p, 1), "first points differ");
    th_http_free(&r);
    cJSON_Delete(doc);
    cli_free(&o);
}

Test(history_read, cli_table_every_login)
{
    write_load();
    /* Accounts Redis knows and the config does not: 9 is one login named
     * after it; 8's conf describes a login of its own. */
    th_redis_int(&redis, "SADD sfl:accounts 8 9");
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:8}:conf logins %s",
                             "[{\"id\":\"x-1\",\"max_streams\":1,\"keys\":\"sfl:{a:8}:\"}]"));
    hset("x-1", base + 60, "1,1,60000,1");
    cli_out o = cli((const char *[]){"--since", base_iso, "--step", "15m", NULL});
    cr_assert_eq(o.code, 0, "exit %d: %s", o.code, o.err);
    const char *want[] = {"login 3 (account 3)", "login 9 (account 9)",
                          "login p-alt (accounts 1, 2)  limit now 2", "login p-main (account 1)",
                          "login x-1 (account 8)"};
    const char *at = o.out;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *found = strstr(at, want[i]);
        cr_expect_not_null(found, "no \"%s\" (in login order) in:\n%s", want[i], o.out);
        if (found)
            at = found;
    }
    /* p-alt's first 15 minutes: peak 2 of 2, mean 400000 / 900000. */
    char row[64];
    iso(base, row, sizeof(row));
    row[10] = ' ';
    row[16] = '\0';
    const char *line = strstr(o.out, "login p-alt");
    line = line ? strstr(line, row) : NULL;
    cr_assert_not_null(line, "no row %s for p-alt:\n%s", row, o.out);
    cr_expect(strncmp(line + 17, "       2/2   0.44", 17) == 0, "row: %.90s", line);
    cr_expect_null(strstr(o.out, "\033["), "not a terminal: no sparkline, no escapes");
    cli_free(&o);
}

/* Every reader of what Redis describes takes the same logins from it:
 * GET /v1/accounts, GET /v1/history and status --history. An entry whose
 * id is not a login id is not a login (its history could not be asked
 * for); an account left with none is one login named after it. */
Test(history_read, described_logins_are_one_reading)
{
    th_redis_int(&redis, "SADD sfl:accounts 6 8");
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:8}:conf logins %s",
                             "[{\"id\":\"bad id\",\"keys\":\"sfl:{a:8}:l:bad:\"},"
                             "{\"id\":\"x-2\",\"reserve\":1,\"keys\":\"sfl:{a:8}:l:x-2:\"}]"));
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:8}:l:x-2:conf max_streams 3 panel_max 2"));
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:6}:conf logins %s",
                             "[{\"id\":\"no/such\",\"keys\":\"sfl:{a:6}:\"}]"));
    hset("x-2", base + 60, "0,1,60000,3");
    hset("6", base + 60, "0,1,60000,1");

    th_http_resp r = get("/v1/accounts");
    cr_assert_eq(r.status, 200, "%s", r.body);
    const char *want[][2] = {{"6", "6"}, {"8", "x-2"}};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *a, *found = NULL;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(r.json, "accounts"))
        {
            if (num(a, "id") == atof(want[i][0]))
                found = a;
        }
        cr_assert_not_null(found, "no account %s: %s", want[i][0], r.body);
        const cJSON *logins = cJSON_GetObjectItem(found, "logins");
        cr_expect_eq(cJSON_GetArraySize(logins), 1, "account %s: %s", want[i][0], r.body);
        const cJSON *l = cJSON_GetArrayItem(logins, 0);
        cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "id")), want[i][1]);
        cr_expect_eq(num(l, "reserve"), i == 1 ? 1 : 0);
        cr_expect_eq(num(l, "effective_limit"), i == 1 ? 2 : -1, "%s", r.body);
    }
    th_http_free(&r);

    /* x-2's history: its account, and its effective limit (panel_max caps 3). */
    r = get("/v1/history?login=x-2&from=%lld&to=%lld", base, base + 3600);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const cJSON *acc = cJSON_GetObjectItem(r.json, "accounts");
    cr_assert_eq(cJSON_GetArraySize(acc), 1, "%s", r.body);
    cr_expect_eq(cJSON_GetArrayItem(acc, 0)->valuedouble, 8);
    cr_expect_eq(num(r.json, "limit_now"), 2, "%s", r.body);
    th_http_free(&r);
    r = get("/v1/history?login=6&from=%lld&to=%lld", base, base + 3600);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);

    cli_out o = cli((const char *[]){"--since", base_iso, "--step", "15m", NULL});
    cr_assert_eq(o.code, 0, "exit %d: %s", o.code, o.err);
    cr_expect_not_null(strstr(o.out, "login 6 (account 6)"), "%s", o.out);
    cr_expect_not_null(strstr(o.out, "login x-2 (account 8)  limit now 2"), "%s", o.out);
    cr_expect_null(strstr(o.out, "bad id"), "%s", o.out);
    cr_expect_null(strstr(o.out, "no/such"), "%s", o.out);
    cli_free(&o);
}

Test(history_read, cli_refusals)
{
    const struct {
        const char *args[4];
        int code;
        const char *err;
    } c[] = {
        {{"--since", "yesterday", NULL}, 2, "--since: \"yesterday\""},
        {{"--step", "90", NULL}, 2, "--step: \"90\""},
        {{"--since", "30d", "--step", "1m"}, 2, "--step: "},
        {{"--login", "nope", NULL}, 2, "--login: unknown login \"nope\""},
        {{"--login", "a b", NULL}, 2, "--login: expected"},
        {{"--bogus", NULL}, 2, "bogus"},
        {{"extra", NULL}, 2, "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        const char *args[5] = {c[i].args[0], c[i].args[1], c[i].args[2], c[i].args[3], NULL};
        cli_out o = cli(args);
        cr_expect_eq(o.code, c[i].code, "case %zu: exit %d: %s", i, o.code, o.err);
        cr_expect_not_null(strstr(o.err, c[i].err), "case %zu: stderr lacks \"%s\":\n%s", i,
                           c[i].err, o.err);
        cr_expect_str_eq(o.out, "", "case %zu printed: %s", i, o.out);
        cli_free(&o);
    }
    /* Garbage in Redis: exit 1 naming the key. */
    hset("p-alt", base + 60, "1,2,x");
    cli_out o = cli((const char *[]){"--login", "p-alt", "--since", base_iso, NULL});
    cr_expect_eq(o.code, 1, "exit %d", o.code);
    cr_expect_not_null(strstr(o.err, hour_key("p-alt", base)), "%s", o.err);
    cli_free(&o);
}

/* On a terminal (a pseudo-terminal here) a sparkline follows each table:
 * the peak of each step against the top (the limit, 2), bold at the limit,
 * a blank for a step without a record. */
Test(history_read, cli_sparkline_on_a_terminal)
{
    write_load();
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0, "no pty");
    char tty[128], errf[256];
    cr_assert_eq(ptsname_r(master, tty, sizeof(tty)), 0);
    snprintf(errf, sizeof(errf), "%s/spark.err", dir);
    const char *argv[] = {SFL_BIN, "status",  "--history", "-c",     config, "--login",
                          "p-alt", "--since", base_iso,    "--step", "1m",   NULL};
    pid_t pid = th_spawn((char *const *)argv, tty, errf);
    cr_assert_eq(th_exit_code(th_wait(pid, 30000)), 0, "exit: %s", th_read_file(errf));
    char out[65536];
    size_t n = 0;
    ssize_t got;
    /* Everything written is in the pty; once the child is gone, EIO ends it. */
    while (n < sizeof(out) - 1 && (got = read(master, out + n, sizeof(out) - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(master);
    const char *line = strstr(out, "peak vs limit (\u2588 = 2): ");
    cr_assert_not_null(line, "no sparkline in:\n%s", out);
    line += strlen("peak vs limit (\u2588 = 2): ");
    const char *want = "\u2585\033[1m\u2588\033[0m\033[1m\u2588\033[0m\033[1m\u2588\033[0m\u2585 ";
    cr_expect(strncmp(line, want, strlen(want)) == 0, "sparkline starts: %.60s", line);
}

/*--- The writers' merge script, when the tree has it -----------------------*/

/* lua/history.lua (issue #18's writer) run by hand, prelude in front as the
 * build puts it: two flushes of the same minute (deltas), read back through
 * the API. Skipped while the tree has no such script. */
Test(history_read, writers_merge_reads_back)
{
    char *prelude = th_read_file(SFL_SOURCE_DIR "/lua/prelude.lua");
    char *merge = th_read_file(SFL_SOURCE_DIR "/lua/history.lua");
    if (!prelude || !merge) {
        free(prelude);
        free(merge);
        cr_skip_test("no lua/history.lua in this tree yet");
    }
    size_t n = strlen(prelude) + strlen(merge) + 2;
    char *script = malloc(n);
    cr_assert_not_null(script);
    snprintf(script, n, "%s\n%s", prelude, merge);
    char minute[8], expire[32];
    snprintf(minute, sizeof(minute), "%d", 7);
    snprintf(expire, sizeof(expire), "%lld", (base + 3600 + 86400) * 1000);
    const char *flushes[2] = {"1,1,30000,2,0,0,0,2,1,1,0,0,0,0,1,0,0,0,0,0,0,1",
                              "0,2,30000,2,0,0,0,1,1,0,0,0,0,2,1,0,0,0,0,0,0,0,0,0,0,1"};
    for (int i = 0; i < 2; i++) {
        redisReply *r = th_redis(&redis, "EVAL %s 1 %s %s %s %s", script, hour_key("p-alt", base),
                                 expire, minute, flushes[i]);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "history.lua: %s",
                  r && r->str ? r->str : "no integer answer");
        freeReplyObject(r);
    }
    free(script);
    free(prelude);
    free(merge);
    th_http_resp r = get("/v1/history?login=p-alt&from=%s&to=%s", base_iso, end_iso);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *p = point(r.json, 7);
    cr_expect_eq(num(p, "minutes"), 1);
    cr_expect_eq(num(p, "in_use_peak"), 2, "peak: the larger of 1 and 2");
    cr_expect_eq(num(p, "in_use_mean"), 1, "held_ms summed: 60000");
    cr_expect_eq(num(p, "waiting_peak"), 2);
    cr_expect_eq(num(p, "grants"), 2);
    cr_expect_eq(num(p, "denials"), 1);
    cr_expect_eq(num(p, "checks"), 2);
    cr_expect_eq(num(p, "waits"), 2);
    cr_expect_eq(num(p, "wait_p50_ms"), 100, "one wait <= 100 ms, one <= 2.5 s");
    cr_expect_eq(num(p, "wait_p95_ms"), 2500);
    th_http_free(&r);
}
