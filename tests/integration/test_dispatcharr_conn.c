/* test_dispatcharr_conn.c - the Dispatcharr client against servers that
 * close connections: an HTTP/1.0 server (one answer per connection), one
 * that says "Connection: close", a proxy that closes idle keep-alive
 * connections between the node's syncs, and connections closed before an
 * answer came. Through `sflimit accounts sync`, `sflimit node` and the
 * client on a loop in this process, against the fake Dispatcharr
 * (tests/tools/fake_dispatcharr.c) and a real redis-server. What is
 * counted: logins (the route is throttled to 3 a minute, a login is never
 * sent twice), requests, and the connections they came on. */
#include "harness.h"

#include "conf.h"
#include "dispatcharr.h"
#include "log.h"

#include <criterion/criterion.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PASSWORD "Pw-5e1d-Kc8-distinctive"

static sfl_test_redis redis;
static sfl_test_dispatcharr fake;
static char dir[128];
static pid_t node_pid;

/* Account 7: two active profiles of 1, so 2; account 9: no profiles, its own 4. */
#define ACCOUNT_7                                                                                  \
    "{\"id\": 7, \"name\": \"Provider A\", \"max_streams\": 1, \"is_active\": true,\n"             \
    " \"profiles\": [{\"id\": 70, \"max_streams\": 1, \"is_active\": true},\n"                     \
    "              {\"id\": 71, \"max_streams\": 1, \"is_active\": true}]}"
static const char accounts_json[] =
    "[" ACCOUNT_7 ",\n {\"id\": 9, \"name\": \"Bare\", \"max_streams\": 4, \"is_active\": true}]\n";
static const char accounts_9_is_6[] =
    "[" ACCOUNT_7 ",\n {\"id\": 9, \"name\": \"Bare\", \"max_streams\": 6, \"is_active\": true}]\n";

static void setup(void)
{
    setenv("SFL_LOG_LEVEL", "debug", 1); /* the most the children will ever say */
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    memset(&fake, 0, sizeof(fake));
    node_pid = 0;
}

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

TestSuite(dispatcharr_conn, .init = setup, .fini = teardown, .timeout = 120);

/*--- Helpers ----------------------------------------------------------------*/

static void fake_start(const char *const *extra)
{
    th_dispatcharr_start(&fake, dir, accounts_json, PASSWORD, NULL, extra);
}

static long stat_of(const char *name)
{
    return th_dispatcharr_stat(&fake, name);
}

/* Neither the password nor a token of the fake ("acc.", "rfr.") in text. */
static void assert_no_secret(const char *what, const char *text)
{
    const char *secrets[] = {PASSWORD, "acc.", "rfr."};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        cr_assert_null(strstr(text, secrets[i]), "%s shows %s:\n%s", what, secrets[i], text);
}

/* A config with a password login; sync_interval 0: none. */
static void write_config(char *path, size_t len, double sync_interval)
{
    char text[1024], interval[48] = "";
    if (sync_interval > 0)
        snprintf(interval, sizeof(interval), ", \"sync_interval\": %g", sync_interval);
    snprintf(text, sizeof(text),
             "{\"node_id\": \"t\", \"redis\": {\"url\": \"%s\"},\n"
             " \"http\": {\"listen\": \"127.0.0.1:0\"},\n"
             " \"dispatcharr\": {\"url\": \"http://127.0.0.1:%d\", \"username\": \"admin\",\n"
             "                 \"password\": \"%s\"%s}}\n",
             redis.url, fake.port, PASSWORD, interval);
    th_write_file(dir, "sflimit.json", text, path, len);
}

/*--- `sflimit accounts sync` ----------------------------------------------------*/

/* One sync with a password login against the fake started with extra:
 * exit 0, the limits in Redis, one login, one GET, each request on a
 * connection of its own (the fake closed each after its answer), and no
 * request sent on a connection the server had closed. */
static void sync_one_answer_per_connection(const char *const *extra)
{
    fake_start(extra);
    char config[256], out[256], err[256];
    write_config(config, sizeof(config), 0);
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(err, sizeof(err), "%s/err", dir);
    const char *argv[] = {SFL_BIN, "accounts", "sync", "-c", config, NULL};
    int st = th_wait(th_spawn((char *const *)argv, out, err), 60000);
    cr_assert_neq(st, -1, "sflimit accounts sync did not end");
    char *o = th_read_file(out), *e = th_read_file(err);
    cr_assert(o && e);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d, stderr:\n%s", st, e);
    cr_assert_str_eq(o, "account 7 (Provider A): max_streams 2 (new)\n"
                        "account 9 (Bare): max_streams 4 (new)\n");
    cr_assert_eq(th_account_limit(&redis, 7), 2);
    cr_assert_eq(th_account_limit(&redis, 9), 4);
    cr_assert_eq(stat_of("logins"), 1, "exactly one login request");
    cr_assert_eq(stat_of("accounts_gets"), 1);
    cr_assert_eq(stat_of("connections"), 2, "the login and the GET each on a connection");
    cr_assert_null(strstr(e, "closed the connection"), "%s", e);
    cr_assert_null(strstr(e, "again on a new connection"), "a request went to a closed one:\n%s",
                   e);
    assert_no_secret("stdout", o);
    assert_no_secret("stderr", e);
    free(o);
    free(e);
}

/* An HTTP/1.0 server: "HTTP/1.0 200 OK", no Content-Length, one answer per
 * connection. */
Test(dispatcharr_conn, sync_against_http10_server)
{
    const char *extra[] = {"--connection", "http10", NULL};
    sync_one_answer_per_connection(extra);
}

Test(dispatcharr_conn, sync_against_connection_close)
{
    const char *extra[] = {"--connection", "close", NULL};
    sync_one_answer_per_connection(extra);
}

/*--- The node's periodic sync ---------------------------------------------------*/

static int gets_at_least_4(void *arg)
{
    (void)arg;
    return stat_of("accounts_gets") >= 4;
}

static int account_9_is_6(void *arg)
{
    (void)arg;
    return th_account_limit(&redis, 9) == 6;
}

/* `sflimit node` syncing every 2 s from the fake started with extra, until
 * it has fetched the accounts 4 times; then a limit changed in Dispatcharr
 * must land in Redis. One login for all of it, no sync failed, and
 * connections == GETs + extra_conns (what the fake's closing costs). */
static void node_keeps_syncing(const char *const *extra, long extra_conns)
{
    fake_start(extra);
    char config[256], log_path[256];
    write_config(config, sizeof(config), 2);
    snprintf(log_path, sizeof(log_path), "%s/node.err", dir);
    const char *argv[] = {SFL_BIN, "node", "-c", config, NULL};
    node_pid = th_spawn((char *const *)argv, NULL, log_path);

    cr_assert(th_until(gets_at_least_4, NULL, 40000), "fewer than 4 account fetches in 40 s");
    th_dispatcharr_set_accounts(&fake, accounts_9_is_6);
    cr_assert(th_until(account_9_is_6, NULL, 20000), "the new limit of 9 never reached Redis");
    cr_assert(th_alive(node_pid), "the node died");
    kill(node_pid, SIGTERM);
    int st = th_wait(node_pid, 20000);
    cr_assert_neq(st, -1, "the node did not stop on SIGTERM");
    node_pid = 0;

    long gets = stat_of("accounts_gets"), conns = stat_of("connections");
    cr_assert_eq(stat_of("logins"), 1, "one login for every sync of the node");
    cr_assert_eq(stat_of("refreshes"), 0);
    cr_assert_eq(stat_of("unauthorized"), 0);
    cr_assert_eq(conns, gets + extra_conns, "%ld connections for %ld GETs", conns, gets);
    cr_assert_eq(th_account_limit(&redis, 7), 2);
    char *log = th_read_file(log_path);
    cr_assert_not_null(log);
    cr_assert_null(strstr(log, "WARN - dispatcharr sync"), "a sync failed:\n%s", log);
    cr_assert_null(strstr(log, "limits unchanged"), "a sync failed:\n%s", log);
    cr_assert(strstr(log, "dispatcharr sync: 2 account(s), 2 changed"), "%s", log);
    cr_assert(strstr(log, "account 9: max_streams was 4 in Redis, now 6"), "%s", log);
    assert_no_secret("the node's log", log);
    free(log);
}

/* A proxy closes keep-alive connections idle for 1 s: each sync finds its
 * connection closed (so each GET comes on a new one). */
Test(dispatcharr_conn, node_keeps_syncing_when_idle_connections_are_closed)
{
    const char *extra[] = {"--idle-close-ms", "1000", NULL};
    node_keeps_syncing(extra, 0);
}

/* An HTTP/1.0 server: the login and every GET on a connection of its own. */
Test(dispatcharr_conn, node_keeps_syncing_against_http10_server)
{
    const char *extra[] = {"--connection", "http10", NULL};
    node_keeps_syncing(extra, 1);
}

/*--- The client on a loop ---------------------------------------------------------*/

static void fetch_ok(struct event_base *base, sfl_dispatcharr *dc, const char *what)
{
    th_fetch r;
    th_fetch_once(base, dc, &r);
    cr_assert_str_eq(r.err, "", "%s: %s", what, r.err);
    cr_assert_eq(r.max7, 2, "%s", what);
    cr_assert_eq(r.n, 2, "%s", what);
}

/* HTTP/1.0 all the way through an expired token: login, GET, GET (401),
 * refresh, GET, each on its own connection; one login. */
Test(dispatcharr_conn, client_http10_through_a_refresh)
{
    const char *extra[] = {"--connection", "http10", NULL};
    fake_start(extra);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    fetch_ok(base, dc, "first fetch");
    free(th_dispatcharr_call(&fake, "POST", "/fixture/expire"));
    fetch_ok(base, dc, "fetch with an expired token");
    cr_assert_eq(stat_of("logins"), 1);
    cr_assert_eq(stat_of("refreshes"), 1);
    cr_assert_eq(stat_of("accounts_gets"), 3);
    cr_assert_eq(stat_of("connections"), 5);
    sfl_dispatcharr_free(dc);
    event_base_free(base);
}

/* This process's log lines (stderr) go to dir/client.log, debug and up,
 * until log_capture_end(), which returns what was logged (caller frees). */
static int saved_stderr = -1;

static void log_capture_start(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/client.log", dir);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved_stderr >= 0 && fd >= 0 && dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    sfl_log_set_level(SFL_LOG_DEBUG);
}

static char *log_capture_end(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/client.log", dir);
    sfl_log_set_level(SFL_LOG_WARN);
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    char *text = th_read_file(path);
    cr_assert_not_null(text);
    return text;
}

/* The server closes the idle connection while the loop is busy elsewhere
 * (the client has not read the EOF yet): the client sees it before it
 * sends the next request, which goes on a new connection, with the token
 * it has. */
Test(dispatcharr_conn, client_notices_idle_close_it_did_not_read)
{
    const char *extra[] = {"--idle-close-ms", "200", NULL};
    fake_start(extra);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    fetch_ok(base, dc, "first fetch");
    usleep(600 * 1000); /* the loop does not run: the close goes unread */
    log_capture_start();
    th_fetch r;
    th_fetch_once(base, dc, &r);
    char *log = log_capture_end();
    cr_assert_str_eq(r.err, "", "fetch after the idle close: %s", r.err);
    cr_assert_eq(r.max7, 2);
    cr_assert(strstr(log, "the server closed the idle connection"), "%s", log);
    cr_assert_null(strstr(log, "again on a new connection"), "sent on the closed connection:\n%s",
                   log);
    assert_no_secret("the client's log", log);
    free(log);
    th_loop_for(base, 400); /* ... and again, with the loop running */
    fetch_ok(base, dc, "third fetch");
    cr_assert_eq(stat_of("logins"), 1);
    cr_assert_eq(stat_of("accounts_gets"), 3);
    cr_assert_eq(stat_of("connections"), 3);
    sfl_dispatcharr_free(dc);
    event_base_free(base);
}

/* A GET whose connection is closed before any answer is sent once more, on
 * a new connection; a second close is an error (one retry, not a loop). */
Test(dispatcharr_conn, client_retries_a_get_once)
{
    const char *extra[] = {"--drop-gets", "3", NULL};
    fake_start(extra);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    th_fetch r;
    th_fetch_once(base, dc, &r);
    cr_assert(strstr(r.err, "closed the connection during GET /api/m3u/accounts/"), "%s", r.err);
    assert_no_secret("the error", r.err);
    cr_assert_eq(stat_of("accounts_gets"), 2, "one GET and one retry");
    fetch_ok(base, dc, "third GET dropped, its retry answered");
    cr_assert_eq(stat_of("accounts_gets"), 4);
    cr_assert_eq(stat_of("dropped"), 3);
    cr_assert_eq(stat_of("logins"), 1);
    sfl_dispatcharr_free(dc);
    event_base_free(base);
}

/* The token refresh is sent once more too (it is not throttled, and
 * sending it twice only issues a second access token). */
Test(dispatcharr_conn, client_retries_a_refresh_once)
{
    const char *extra[] = {"--drop-refreshes", "1", NULL};
    fake_start(extra);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    fetch_ok(base, dc, "first fetch");
    free(th_dispatcharr_call(&fake, "POST", "/fixture/expire"));
    fetch_ok(base, dc, "fetch with an expired token, refresh dropped once");
    cr_assert_eq(stat_of("refreshes"), 2);
    cr_assert_eq(stat_of("logins"), 1);
    sfl_dispatcharr_free(dc);
    event_base_free(base);
}

/* A login whose connection is closed before the answer is never sent
 * again: the server may have counted it against its throttle. The fetch
 * fails; the next one logs in. */
Test(dispatcharr_conn, client_never_repeats_a_login)
{
    const char *extra[] = {"--drop-logins", "1", NULL};
    fake_start(extra);
    struct event_base *base = event_base_new();
    sfl_dispatcharr *dc = th_dispatcharr_client(base, &fake, PASSWORD);
    th_fetch r;
    th_fetch_once(base, dc, &r);
    cr_assert(strstr(r.err, "closed the connection during POST /api/accounts/token/"), "%s", r.err);
    assert_no_secret("the error", r.err);
    th_loop_for(base, 300);
    cr_assert_eq(stat_of("logins"), 1, "the login was sent again");
    cr_assert_eq(stat_of("accounts_gets"), 0);
    fetch_ok(base, dc, "the next fetch");
    cr_assert_eq(stat_of("logins"), 2);
    sfl_dispatcharr_free(dc);
    event_base_free(base);
}
