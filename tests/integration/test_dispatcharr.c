/* test_dispatcharr.c - `sflimit accounts sync` against the fake Dispatcharr
 * (tests/tools/fake_dispatcharr.c) and a real redis-server, and the client
 * itself on a loop in this process: what lands in Redis, how many logins it
 * costs, what it says when Dispatcharr misbehaves, and that no credential
 * ever shows in its output. */
#include "harness.h"

#include "conf.h"
#include "dispatcharr.h"
#include "log.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PASSWORD "Pw-7f3a-Zq9-distinctive"
#define API_KEY "Key-c0ffee-distinctive-42"

static sfl_test_redis redis;
static char dir[128];
static sfl_test_dispatcharr fake;

/* The figure: account 7 has two active profiles of 1 and an
 * inactive one of 5, so it really has 2; account 8 is inactive; account 9
 * has no profiles and counts its own 4. */
static const char accounts_json[] =
    "[\n"
    " {\"id\": 7, \"name\": \"Provider A\", \"server_url\": \"http://p.example\", \"max_streams\": "
    "1,\n"
    "  \"is_active\": true, \"account_type\": \"XC\", \"username\": \"xc\", \"status\": "
    "\"success\",\n"
    "  \"profiles\": [\n"
    "   {\"id\": 70, \"name\": \"Provider A Default\", \"max_streams\": 1, \"is_active\": true,\n"
    "    \"is_default\": true, \"current_viewers\": 0, \"search_pattern\": \"\",\n"
    "    \"replace_pattern\": \"\", \"custom_properties\": null},\n"
    "   {\"id\": 71, \"name\": \"second login\", \"max_streams\": 1, \"is_active\": true,\n"
    "    \"is_default\": false, \"current_viewers\": 0, \"search_pattern\": \"a\",\n"
    "    \"replace_pattern\": \"b\", \"custom_properties\": null},\n"
    "   {\"id\": 72, \"name\": \"old login\", \"max_streams\": 5, \"is_active\": false,\n"
    "    \"is_default\": false, \"current_viewers\": 0, \"search_pattern\": \"a\",\n"
    "    \"replace_pattern\": \"c\", \"custom_properties\": null}]},\n"
    " {\"id\": 8, \"name\": \"Switched off\", \"max_streams\": 3, \"is_active\": false, "
    "\"profiles\": []},\n"
    " {\"id\": 9, \"name\": \"Bare\", \"max_streams\": 4, \"is_active\": true}\n"
    "]\n";

static void setup(void)
{
    setenv("SFL_LOG_LEVEL", "debug", 1); /* the most the children will ever say */
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    memset(&fake, 0, sizeof(fake));
}

static pid_t node_pid;

static void teardown(void)
{
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
        node_pid = 0;
    }
    th_dispatcharr_stop(&fake);
    th_redis_stop(&redis);
}

TestSuite(dispatcharr, .init = setup, .fini = teardown, .timeout = 120);

/*--- Helpers ----------------------------------------------------------------*/

/* Starts the fake with the figure's accounts; extra: more arguments. */
static void fake_start(const char *const *extra)
{
    th_dispatcharr_start(&fake, dir, accounts_json, PASSWORD, API_KEY, extra);
}

static char *fake_call(const char *method, const char *path)
{
    return th_dispatcharr_call(&fake, method, path);
}

/* A counter of GET /fixture/stats: logins, refreshes, accounts_gets, ... */
static long stat_of(const char *name)
{
    return th_dispatcharr_stat(&fake, name);
}

/* Writes a config for the fake (port: where to send; 0 = the fake's). */
static void write_config(char *path, size_t len, int port, int use_key, const char *password)
{
    char text[1024], auth[256];
    if (use_key)
        snprintf(auth, sizeof(auth), "\"api_key\": \"%s\"", API_KEY);
    else
        snprintf(auth, sizeof(auth), "\"username\": \"admin\", \"password\": \"%s\"", password);
    snprintf(text, sizeof(text),
             "{\"node_id\": \"t\", \"redis\": {\"url\": \"%s\"},\n"
             " \"dispatcharr\": {\"url\": \"http://127.0.0.1:%d\", %s}}\n",
             redis.url, port ? port : fake.port, auth);
    th_write_file(dir, "sflimit.json", text, path, len);
}

typedef struct run_result {
    int code;
    char *out, *err;
    int64_t ms;
} run_result;

/* Runs `sflimit accounts sync -c config`; the caller frees out and err. */
static run_result run_sync(const char *config)
{
    const char *argv[] = {SFL_BIN, "accounts", "sync", "-c", config, NULL};
    int64_t t0 = th_now_ms();
    th_run run;
    th_run_start(&run, dir, argv);
    int st = th_run_wait(&run, 60000); /* fails the test if it does not end */
    run_result r = {th_exit_code(st), th_read_file(run.out), th_read_file(run.err),
                    th_now_ms() - t0};
    cr_assert(r.out && r.err);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

static void assert_no_secret(const run_result *r)
{
    /* The fake's tokens start with "acc." and "rfr.". */
    const char *secrets[] = {PASSWORD, API_KEY, "Wrong-Pw-Also-Secret", "acc.", "rfr."};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        cr_assert_null(strstr(r->out, secrets[i]), "stdout shows %s:\n%s", secrets[i], r->out);
        cr_assert_null(strstr(r->err, secrets[i]), "stderr shows %s:\n%s", secrets[i], r->err);
    }
}

/* 1 if any string in the reply (at any depth) contains secret. */
static int reply_holds(const redisReply *r, const char *secret)
{
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return strstr(r->str, secret) != NULL;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (reply_holds(r->element[i], secret))
            return 1;
    return 0;
}

/* No key name and no value anywhere in Redis holds secret. */
static void assert_not_in_redis(const char *secret)
{
    redisReply *keys = th_redis(&redis, "KEYS *");
    cr_assert_eq(keys->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        cr_assert_null(strstr(k, secret), "a key name holds a secret: %s", k);
        redisReply *type = th_redis(&redis, "TYPE %s", k);
        const char *t = type->str;
        redisReply *v = strcmp(t, "string") == 0   ? th_redis(&redis, "GET %s", k)
                        : strcmp(t, "hash") == 0   ? th_redis(&redis, "HGETALL %s", k)
                        : strcmp(t, "set") == 0    ? th_redis(&redis, "SMEMBERS %s", k)
                        : strcmp(t, "zset") == 0   ? th_redis(&redis, "ZRANGE %s 0 -1", k)
                        : strcmp(t, "list") == 0   ? th_redis(&redis, "LRANGE %s 0 -1", k)
                        : strcmp(t, "stream") == 0 ? th_redis(&redis, "XRANGE %s - +", k)
                                                   : NULL;
        cr_assert_not_null(v, "key %s of type %s not looked at", k, t);
        cr_assert_not(reply_holds(v, secret), "%s holds a secret", k);
        freeReplyObject(v);
        freeReplyObject(type);
    }
    freeReplyObject(keys);
}

/*--- Sync through the command -----------------------------------------------*/

/* The figure: 2 in Redis for the account with two active profiles of
 * 1 (and an inactive one of 5), one login for the whole sync, and the
 * password nowhere in what the command printed, even at debug level. */
Test(dispatcharr, sync_sums_active_profiles_with_one_login)
{
    fake_start(NULL);
    char config[256];
    write_config(config, sizeof(config), 0, 0, PASSWORD);
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 0, "exit %d, stderr:\n%s", r.code, r.err);
    cr_assert_eq(th_account_limit(&redis, 7), 2, "account 7 has two active profiles of 1");
    cr_assert_eq(th_account_limit(&redis, 9), 4, "account 9 has no profiles: its own limit");
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:8}:conf"), 0, "inactive account 8 written");
    cr_assert_eq(th_redis_int(&redis, "SISMEMBER sfl:accounts 7"), 1);
    cr_assert_str_eq(r.out, "account 7 (Provider A): max_streams 2 (new)\n"
                            "account 9 (Bare): max_streams 4 (new)\n");
    cr_assert_eq(stat_of("logins"), 1, "exactly one login for the whole sync");
    cr_assert_eq(stat_of("refreshes"), 0);
    cr_assert_eq(stat_of("accounts_gets"), 1);
    assert_no_secret(&r);
    cr_assert_gt(th_redis_int(&redis, "DBSIZE"), 0);
    assert_not_in_redis(PASSWORD);
    assert_not_in_redis("acc.");
    assert_not_in_redis("rfr.");
    run_free(&r);
}

/* What Redis had before is reported: was / unchanged / new. */
Test(dispatcharr, sync_reports_previous_limits)
{
    fake_start(NULL);
    th_account(&redis, 7, 1);
    th_account(&redis, 9, 4);
    char config[256];
    write_config(config, sizeof(config), 0, 0, PASSWORD);
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert_str_eq(r.out, "account 7 (Provider A): max_streams 2 (was 1)\n"
                            "account 9 (Bare): max_streams 4 (unchanged)\n");
    /* Its first login keeps the account's conf (1 before, 1 now); the second
     * is new, and in a Redis in use (its epoch marker intact) waits nothing. */
    cr_assert_eq(th_redis_int(&redis, "HGET sfl:{a:7}:l:d71:conf max_streams"), 1);
    cr_assert_null(strstr(r.err, "wait"), "a new login in a Redis in use waits: %s", r.err);
    cr_assert_null(strstr(r.err, "account 7: max_streams was"), "%s", r.err);
    cr_assert_eq(th_account_limit(&redis, 7), 2);
    run_free(&r);
}

/* Two accounts whose default profiles are one XC login (same host, same
 * username) but say 2 and 1: one login, the smaller counts for both, and the
 * command warns, naming ids only, never the login's password. */
static const char shared_login_json[] =
    "[{\"id\": 10, \"name\": \"Shared A\", \"server_url\": \"http://p.example\", "
    "\"max_streams\": 2, \"is_active\": true, \"account_type\": \"XC\", \"username\": \"xc\", "
    "\"password\": \"Xc-Secret-9\", \"server_group\": null, \"profiles\": [{\"id\": 100, "
    "\"max_streams\": 2, \"is_active\": true, \"is_default\": true, \"search_pattern\": "
    "\"^(.*)$\", \"replace_pattern\": \"$1\"}]},\n"
    " {\"id\": 11, \"name\": \"Shared B\", \"server_url\": \"http://P.example:80/\", "
    "\"max_streams\": 1, \"is_active\": true, \"account_type\": \"XC\", \"username\": \"XC\", "
    "\"password\": \"Xc-Secret-9\", \"server_group\": null, \"profiles\": [{\"id\": 101, "
    "\"max_streams\": 1, \"is_active\": true, \"is_default\": true, \"search_pattern\": "
    "\"^(.*)$\", \"replace_pattern\": \"$1\"}]}]\n";

Test(dispatcharr, sync_warns_of_a_shared_login_that_disagrees)
{
    th_dispatcharr_start(&fake, dir, shared_login_json, PASSWORD, API_KEY, NULL);
    char config[256];
    write_config(config, sizeof(config), 0, 1, NULL);
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 0, "exit %d, stderr:\n%s", r.code, r.err);
    cr_assert_eq(th_account_limit(&redis, 10), 1, "the shared login's smaller limit counts");
    cr_assert_eq(th_account_limit(&redis, 11), 1);
    cr_assert(strstr(r.err, "login d100 is shared, but profile 100 of account 10 says "
                            "max_streams 2; the smallest of the login's, 1, counts"),
              "stderr:\n%s", r.err);
    cr_assert_null(strstr(r.err, "profile 101"), "profile 101 agrees:\n%s", r.err);
    cr_assert_null(strstr(r.err, "Xc-Secret-9"), "stderr shows the login's password:\n%s", r.err);
    cr_assert_null(strstr(r.out, "Xc-Secret-9"));
    assert_not_in_redis("Xc-Secret-9");
    run_free(&r);
}

Test(dispatcharr, api_key_does_no_login)
{
    fake_start(NULL);
    char config[256];
    write_config(config, sizeof(config), 0, 1, NULL);
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert_eq(th_account_limit(&redis, 7), 2);
    cr_assert_eq(stat_of("logins"), 0, "an API key needs no login");
    cr_assert_eq(stat_of("accounts_gets"), 1);
    cr_assert_eq(stat_of("unauthorized"), 0);
    assert_no_secret(&r);
    assert_not_in_redis(API_KEY);
    run_free(&r);
}

/*--- Failures change nothing ------------------------------------------------*/

/* Runs a sync that must fail: exit 1, a "sflimit: dispatcharr: " line with
 * want in it, Redis exactly as before, no secret shown. */
static void expect_failure(const char *config, const char *want)
{
    th_account(&redis, 7, 1);
    long long before = th_redis_int(&redis, "DBSIZE");
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 1, "exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err);
    cr_assert(strstr(r.err, "sflimit: dispatcharr: "), "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, want), "stderr lacks \"%s\":\n%s", want, r.err);
    cr_assert_str_eq(r.out, "", "printed accounts on failure");
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), before, "the failed sync changed Redis");
    cr_assert_eq(th_account_limit(&redis, 7), 1);
    assert_no_secret(&r);
    run_free(&r);
}

Test(dispatcharr, token_rejected_exits_1)
{
    const char *extra[] = {"--mode", "unauthorized", NULL};
    fake_start(extra);
    char config[256];
    write_config(config, sizeof(config), 0, 0, PASSWORD);
    expect_failure(config, "token rejected (HTTP 401 from GET /api/m3u/accounts/");
    cr_assert_eq(stat_of("logins"), 1, "a rejected fresh token must not cause more logins");
}

Test(dispatcharr, api_key_rejected_exits_1)
{
    const char *extra[] = {"--mode", "unauthorized", NULL};
    fake_start(extra);
    char config[256];
    write_config(config, sizeof(config), 0, 1, NULL);
    expect_failure(config, "API key rejected (HTTP 401");
    cr_assert_eq(stat_of("logins"), 0);
}

Test(dispatcharr, wrong_password_exits_1)
{
    fake_start(NULL);
    char config[256];
    write_config(config, sizeof(config), 0, 0, "Wrong-Pw-Also-Secret");
    expect_failure(config, "login failed: Dispatcharr rejected the username or password");
}

Test(dispatcharr, malformed_json_exits_1)
{
    const char *extra[] = {"--mode", "malformed", NULL};
    fake_start(extra);
    char config[256];
    write_config(config, sizeof(config), 0, 0, PASSWORD);
    expect_failure(config, "not valid JSON");
}

Test(dispatcharr, not_an_array_exits_1)
{
    const char *extra[] = {"--mode", "not-array", NULL};
    fake_start(extra);
    char config[256];
    write_config(config, sizeof(config), 0, 0, PASSWORD);
    expect_failure(config, "expected a JSON array of accounts, got an object");
}

Test(dispatcharr, connection_refused_exits_1)
{
    /* A port nothing listens on: bound, never listened to, closed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    int port = ntohs(a.sin_port);
    close(fd);
    char config[256];
    write_config(config, sizeof(config), port, 0, PASSWORD);
    expect_failure(config, "connection refused");
}

Test(dispatcharr, slow_server_times_out)
{
    const char *extra[] = {"--mode", "slow", "--slow-ms", "60000", NULL};
    fake_start(extra);
    char config[256];
    write_config(config, sizeof(config), 0, 0, PASSWORD);
    int64_t t0 = th_now_ms();
    expect_failure(config, "no answer from Dispatcharr at 127.0.0.1:");
    int64_t ms = th_now_ms() - t0;
    cr_assert_geq(ms, SFL_DISPATCHARR_TIMEOUT_MS - 200, "gave up after %lld ms", (long long)ms);
    cr_assert_lt(ms, SFL_DISPATCHARR_TIMEOUT_MS + 5000, "took %lld ms", (long long)ms);
}

/* Without dispatcharr.url, sync still writes the config's accounts. */
Test(dispatcharr, without_url_the_config_accounts_are_synced)
{
    char config[256], text[512];
    snprintf(text, sizeof(text),
             "{\"redis\": {\"url\": \"%s\"}, \"accounts\": [{\"id\": 3, \"max_streams\": 2}]}\n",
             redis.url);
    th_write_file(dir, "sflimit.json", text, config, sizeof(config));
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert_eq(th_account_limit(&redis, 3), 2);
    run_free(&r);
}

/*--- The client on a loop: what the node's periodic sync relies on ------------*/

/* Five fetches in a row cost one login (the route allows 3 a minute); an
 * expired access token costs one refresh, not a login. */
Test(dispatcharr, client_caches_token_and_refreshes)
{
    fake_start(NULL);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    th_fetch r;
    for (int i = 0; i < 5; i++) {
        th_fetch_once(base, dc, &r);
        cr_assert_str_eq(r.err, "", "fetch %d: %s", i, r.err);
        cr_assert_eq(r.max7, 2);
        cr_assert_eq(r.n, 2);
    }
    cr_assert_eq(stat_of("logins"), 1);
    cr_assert_eq(stat_of("accounts_gets"), 5);

    free(fake_call("POST", "/fixture/expire"));
    th_fetch_once(base, dc, &r);
    cr_assert_str_eq(r.err, "", "%s", r.err);
    cr_assert_eq(r.max7, 2);
    cr_assert_eq(stat_of("refreshes"), 1, "an expired token is refreshed");
    cr_assert_eq(stat_of("logins"), 1, "an expired token must not cost a login");
    cr_assert_eq(stat_of("accounts_gets"), 7, "one 401 and one retry");

    /* A second fetch while one is in flight is refused, the first goes on. */
    th_fetch r2 = {0};
    cr_assert_eq(sfl_dispatcharr_fetch(dc, th_fetch_cb, &r), 0);
    cr_assert_eq(sfl_dispatcharr_fetch(dc, th_fetch_cb, &r2), -1);
    cr_assert(strstr(sfl_dispatcharr_errstr(dc), "in flight"));
    cr_assert(th_loop_until(base, th_fetch_done, &r, 15000));
    cr_assert_eq(r2.calls, 0);
    sfl_dispatcharr_free(dc);
    event_base_free(base);
}

/* A refused refresh (refresh token expired too) logs in again, once. */
Test(dispatcharr, client_logs_in_again_when_refresh_is_refused)
{
    const char *extra[] = {"--refresh-ttl-s", "0", NULL};
    fake_start(extra);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    th_fetch r;
    th_fetch_once(base, dc, &r);
    cr_assert_str_eq(r.err, "", "%s", r.err);
    free(fake_call("POST", "/fixture/expire"));
    th_fetch_once(base, dc, &r);
    cr_assert_str_eq(r.err, "", "%s", r.err);
    cr_assert_eq(r.max7, 2);
    cr_assert_eq(stat_of("refreshes"), 1);
    cr_assert_eq(stat_of("logins"), 2);
    sfl_dispatcharr_free(dc);
    event_base_free(base);
}

static int accounts_asked(void *arg)
{
    (void)arg;
    return stat_of("accounts_gets") >= 1;
}

/* Freeing the client with a fetch in flight drops it: no callback, no leak
 * (valgrind), and the loop can go on. */
Test(dispatcharr, client_free_drops_fetch_in_flight)
{
    const char *extra[] = {"--mode", "slow", "--slow-ms", "2000", NULL};
    fake_start(extra);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    th_fetch r = {0};
    cr_assert_eq(sfl_dispatcharr_fetch(dc, th_fetch_cb, &r), 0);
    /* In flight: the fake holds the accounts request (after the login). */
    cr_assert(th_loop_until(base, accounts_asked, NULL, 5000), "the fetch never reached the fake");
    sfl_dispatcharr_free(dc);
    /* Kept fixed: 200 ms of loop in which no callback may come. */
    th_loop_for(base, 200);
    cr_assert_eq(r.calls, 0);
    event_base_free(base);
}

/*--- The node's periodic sync -------------------------------------------------*/

static char node_err[256];

/* Starts `sflimit node` syncing from the fake every 0.3 s (password login). */
static void node_start_syncing(void)
{
    char text[1024], config[256];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"syncer\", \"redis\": {\"url\": \"%s\"},\n"
             " \"http\": {\"listen\": \"127.0.0.1:0\"},\n"
             " \"dispatcharr\": {\"url\": \"http://127.0.0.1:%d\", \"username\": \"admin\",\n"
             "                 \"password\": \"%s\", \"sync_interval\": 0.3}}\n",
             redis.url, fake.port, PASSWORD);
    th_write_file(dir, "node.json", text, config, sizeof(config));
    snprintf(node_err, sizeof(node_err), "%s/node.err", dir);
    const char *argv[] = {SFL_BIN, "node", "-c", config, NULL};
    node_pid = th_spawn((char *const *)argv, NULL, node_err);
}

static void node_stop(void)
{
    kill(node_pid, SIGTERM);
    int st = th_wait(node_pid, 20000);
    if (st == -1) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    node_pid = 0;
    cr_assert_neq(st, -1, "the node did not stop on SIGTERM");
}

static int gets_at_least_4(void *arg)
{
    (void)arg;
    return stat_of("accounts_gets") >= 4;
}

/* Every sync_interval the node fetches again with the token it has: four
 * syncs, one login; the limits land in Redis, the log says what changed and
 * never shows a credential, and Redis holds none. */
Test(dispatcharr, node_syncs_every_interval_with_one_login)
{
    fake_start(NULL);
    th_account(&redis, 7, 1);
    node_start_syncing();
    cr_assert(th_until(gets_at_least_4, NULL, 15000), "fewer than 4 syncs in 15 s");
    node_stop();
    cr_assert_eq(stat_of("logins"), 1, "one login for every sync of the node");
    cr_assert_eq(th_account_limit(&redis, 7), 2, "account 7 has two active profiles of 1");
    cr_assert_eq(th_account_limit(&redis, 9), 4);
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:8}:conf"), 0, "inactive account 8 written");
    char *log = th_read_file(node_err);
    cr_assert_not_null(log);
    cr_assert_null(strstr(log, "new leases wait"), "a synced login waits in a Redis in use: %s",
                   log);
    cr_assert(strstr(log, "dispatcharr sync: 2 account(s), 2 changed"), "%s", log);
    cr_assert(strstr(log, "dispatcharr sync: 2 account(s), 0 changed"), "%s", log);
    run_result r = {0, strdup(""), log, 0};
    assert_no_secret(&r);
    run_free(&r);
    assert_not_in_redis(PASSWORD);
    assert_not_in_redis("acc.");
    assert_not_in_redis("rfr.");
}

/* A sync that fails (malformed JSON) is logged and changes nothing; the
 * node keeps running and trying. */
Test(dispatcharr, node_sync_failure_changes_nothing)
{
    const char *extra[] = {"--mode", "malformed", NULL};
    fake_start(extra);
    th_account(&redis, 7, 1);
    node_start_syncing();
    cr_assert(th_until(gets_at_least_4, NULL, 15000), "fewer than 4 syncs in 15 s");
    cr_assert(th_alive(node_pid), "the node died of a bad sync");
    node_stop();
    cr_assert_eq(th_account_limit(&redis, 7), 1, "a failed sync changed account 7");
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:9}:conf"), 0, "a failed sync wrote 9");
    char *log = th_read_file(node_err);
    cr_assert_not_null(log);
    const char *warn = strstr(log, "WARN - dispatcharr sync: dispatcharr: ");
    cr_assert(warn && strstr(warn, "not valid JSON") && strstr(warn, "; limits unchanged\n"),
              "no clear warning about the bad answer:\n%s", log);
    cr_assert_null(strstr(log, " changed\n"), "a failed sync reported changes:\n%s", log);
    run_result r = {0, strdup(""), log, 0};
    assert_no_secret(&r);
    run_free(&r);
}
