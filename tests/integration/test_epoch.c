/* test_epoch.c - the namespace's epoch marker (lua/epoch.lua, DESIGN §1) as
 * a user meets it: real sflimit commands, real redis-server processes (a
 * master and its replica for the failover), the fake provider as ground
 * truth where a slot could be given twice.
 *
 * What must hold: on a Redis whose marker is intact, a new account grants at
 * once, whoever writes it (accounts set, a config); a Redis without the
 * marker opens one recovery window for every account, once; `init` skips it
 * on a Redis no check has used; a restart with persistence, a FLUSHALL and a
 * replica taking over (Redis processes that may lack the newest leases)
 * open it again, and nobody new gets a slot a running check still holds.
 *
 * "At once" is checked against a lease TTL of 20 s (a grant well inside
 * half of it), never against a tight clock; "waited" is a lower bound. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LONG_TTL_MS 20000
#define SHORT_TTL_MS 4000

static sfl_test_redis redis, replica;
static sfl_test_provider provider;
static char dir[128];
static int nrun;

static void setup(void)
{
    th_tmpdir(dir, sizeof(dir));
    nrun = 0;
}

static void teardown(void)
{
    th_provider_stop(&provider);
    th_redis_stop(&replica);
    th_redis_stop(&redis);
}

TestSuite(epoch, .init = setup, .fini = teardown, .timeout = 180);

/* A config for url with lease TTL ttl_ms (under a wrapper, a longer hand-off
 * hold: th_wrap_lease) and accounts (a JSON array, or NULL). */
static void write_config(const char *url, int ttl_ms, const char *accounts, char *path, size_t len)
{
    char text[1024], name[32];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"t\", \"redis\": {\"url\": \"%s\"},\n"
             " \"lease\": {\"ttl_ms\": %d, \"renew_ms\": %d, \"safety_ms\": %d%s}%s%s}\n",
             url, ttl_ms, ttl_ms / 4, ttl_ms / 4, th_wrap_lease(),
             accounts ? ", \"accounts\": " : "", accounts ? accounts : "");
    snprintf(name, sizeof(name), "config%d.json", nrun++);
    th_write_file(dir, name, text, path, len);
}

typedef struct ran {
    int code;
    char *out, *err;
    int64_t took_ms;
} ran;

/* Runs `sflimit ARGS...` (NULL-terminated) to its end. */
static ran run(const char *const *args)
{
    char out[200], err[200];
    int n = nrun++;
    snprintf(out, sizeof(out), "%s/out%d", dir, n);
    snprintf(err, sizeof(err), "%s/err%d", dir, n);
    const char *argv[32] = {SFL_BIN};
    int k = 1;
    for (int i = 0; args[i] && k < 31; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    int64_t t0 = th_now_ms();
    int st = th_wait(th_spawn((char *const *)argv, out, err), 90000);
    ran r = {th_exit_code(st), th_read_file(out), th_read_file(err), th_now_ms() - t0};
    cr_assert_neq(st, -1, "sflimit %s did not end", args[0]);
    if (!r.out)
        r.out = strdup("");
    if (!r.err)
        r.err = strdup("");
    return r;
}

static void ran_free(ran *r)
{
    free(r->out);
    free(r->err);
}

static long long epoch_int(const sfl_test_redis *r, const char *field)
{
    return th_redis_int(r, "HGET sfl:epoch %s", field);
}

static void expect_epoch_reason(const sfl_test_redis *r, const char *want)
{
    redisReply *rep = th_redis(r, "HGET sfl:epoch reason");
    cr_assert_eq(rep->type, REDIS_REPLY_STRING, "no epoch marker");
    cr_assert_str_eq(rep->str, want, "the marker's reason");
    freeReplyObject(rep);
}

/* `exec -a account -- true` with config: exits 0, in how many ms. */
static int64_t exec_true(const char *config, const char *account)
{
    const char *args[] = {"exec",      "-c", config, "-a",   account,
                          "--timeout", "60", "--",   "true", NULL};
    ran r = run(args);
    cr_assert_eq(r.code, 0, "exec -a %s exited %d:\n%s", account, r.code, r.err);
    int64_t took = r.took_ms;
    ran_free(&r);
    return took;
}

/* redis, and replica following it. */
static void start_master_and_replica(void)
{
    th_redis_start(&redis, NULL);
    char port[16];
    snprintf(port, sizeof(port), "%d", redis.port);
    const char *const follow[] = {"--replicaof", "127.0.0.1", port, NULL};
    th_redis_start(&replica, follow);
}

/*--- An intact Redis: new accounts grant at once ---------------------------*/

/* `accounts set 9 1` then `exec -a 9 -- true` on a Redis in use, and an
 * account new from a config: neither waits a TTL. */
Test(epoch, new_account_in_a_redis_in_use_grants_at_once)
{
    th_redis_start(&redis, NULL);
    th_account(&redis, 1, 1); /* a Redis in use: its marker is there */
    char config[256];
    write_config(redis.url, LONG_TTL_MS, "[{\"id\": 12, \"max_streams\": 1}]", config,
                 sizeof(config));
    const char *set[] = {"accounts", "set", "9", "1", "-c", config, NULL};
    ran s = run(set);
    cr_assert_eq(s.code, 0, "accounts set: %s", s.err);
    cr_assert_null(strstr(s.err, "wait"), "a new account in a Redis in use waits:\n%s", s.err);
    ran_free(&s);
    int64_t set_then_exec = exec_true(config, "9");
    int64_t from_config = exec_true(config, "12");
    cr_assert_lt(set_then_exec, LONG_TTL_MS / 2, "exec -a 9 took %lld ms (TTL %d)",
                 (long long)set_then_exec, LONG_TTL_MS);
    cr_assert_lt(from_config, LONG_TTL_MS / 2, "exec -a 12 (from the config) took %lld ms",
                 (long long)from_config);
    cr_assert_eq(epoch_int(&redis, "recover_until_ms"), 0, "the marker was given a window");
    cr_log_info("new account: accounts set then exec %lld ms, config account exec %lld ms "
                "(TTL %d ms)",
                (long long)set_then_exec, (long long)from_config, LONG_TTL_MS);
}

/*--- A Redis without the marker ---------------------------------------------*/

/* A new Redis: the first limit written opens the window, once, for every
 * account; one written a second later ends its wait at the same time; an
 * account added after the window grants at once. Reading commands and a
 * refused one leave Redis as it was. */
Test(epoch, new_redis_waits_one_window_for_every_account)
{
    th_redis_start(&redis, NULL);
    char config[256];
    write_config(redis.url, SHORT_TTL_MS, NULL, config, sizeof(config));
    const char *status[] = {"status", "-c", config, NULL};
    ran st = run(status);
    cr_assert_eq(st.code, 0, "status: %s", st.err);
    cr_assert(strstr(st.err, "sflimit init"), "no word of the first wait, or how to skip it:\n%s",
              st.err);
    ran_free(&st);
    const char *bad[] = {"exec", "-c", config, "-a", "5", "--", "true", NULL};
    ran b = run(bad);
    cr_assert_eq(b.code, 2, "exec of an account with no limit: %d", b.code);
    ran_free(&b);
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), 0, "reading and a refused exec wrote to Redis");

    const char *set1[] = {"accounts", "set", "1", "1", "-c", config, NULL};
    int64_t t0 = th_now_ms();
    ran s1 = run(set1);
    cr_assert_eq(s1.code, 0, "%s", s1.err);
    ran_free(&s1);
    usleep(1000 * 1000);
    const char *set2[] = {"accounts", "set", "2", "1", "-c", config, NULL};
    ran s2 = run(set2);
    cr_assert_eq(s2.code, 0, "%s", s2.err);
    ran_free(&s2);
    exec_true(config, "2");
    int64_t second = th_now_ms() - t0;
    /* The window is the first write's: both accounts wait it out, the
     * second no longer than the first (it is not a window of its own). */
    cr_assert_geq(second, SHORT_TTL_MS - 300,
                  "account 2 granted %lld ms after the first write, "
                  "inside the %d ms window",
                  (long long)second, SHORT_TTL_MS);
    expect_epoch_reason(&redis, "missing");
    long long until = epoch_int(&redis, "recover_until_ms");
    long long created = epoch_int(&redis, "created_ms");
    cr_assert_geq(until - created, SHORT_TTL_MS - 50, "a window of %lld ms", until - created);
    cr_assert_leq(until - created, SHORT_TTL_MS + 50, "account 2 opened a window of its own");
    const char *set3[] = {"accounts", "set", "3", "1", "-c", config, NULL};
    ran s3 = run(set3);
    cr_assert_eq(s3.code, 0, "%s", s3.err);
    ran_free(&s3);
    cr_assert_eq(epoch_int(&redis, "recover_until_ms"), until, "a later account reopened it");
    exec_true(config, "3");
}

/* `sflimit init` on a new Redis: no window at all; a second init has
 * nothing to do; `accounts set --fresh` does the same for its Redis. */
Test(epoch, init_skips_the_first_wait)
{
    th_redis_start(&redis, NULL);
    char config[256];
    write_config(redis.url, LONG_TTL_MS, NULL, config, sizeof(config));
    const char *init[] = {"init", "-c", config, NULL};
    ran i1 = run(init);
    cr_assert_eq(i1.code, 0, "init: %s", i1.err);
    cr_assert(strstr(i1.out, "epoch marker made"), "init said: %s", i1.out);
    ran_free(&i1);
    ran i2 = run(init);
    cr_assert_eq(i2.code, 0, "init again: %s", i2.err);
    cr_assert(strstr(i2.out, "nothing to do"), "init again said: %s", i2.out);
    ran_free(&i2);
    const char *set[] = {"accounts", "set", "4", "1", "-c", config, NULL};
    ran s = run(set);
    cr_assert_eq(s.code, 0, "%s", s.err);
    ran_free(&s);
    int64_t took = exec_true(config, "4");
    cr_assert_lt(took, LONG_TTL_MS / 2, "exec after init took %lld ms", (long long)took);

    th_redis_stop(&redis);
    th_redis_start(&redis, NULL);
    write_config(redis.url, LONG_TTL_MS, NULL, config, sizeof(config));
    const char *fresh[] = {"accounts", "set", "5", "1", "--fresh", "-c", config, NULL};
    ran f = run(fresh);
    cr_assert_eq(f.code, 0, "%s", f.err);
    ran_free(&f);
    expect_epoch_reason(&redis, "init");
    took = exec_true(config, "5");
    cr_assert_lt(took, LONG_TTL_MS / 2, "exec after --fresh took %lld ms", (long long)took);
}

/* A window opened because the marker was missing is closed by init; one
 * opened because Redis restarted (it may have lost the last writes) is not,
 * unless --force. The restart is real: appendonly, kill -9, start again. */
Test(epoch, restart_with_persistence_opens_the_window)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    th_redis_start(&redis, aof);
    char config[256];
    write_config(redis.url, LONG_TTL_MS, NULL, config, sizeof(config));
    const char *set[] = {"accounts", "set", "6", "1", "-c", config, NULL};
    ran s = run(set);
    cr_assert_eq(s.code, 0, "%s", s.err);
    ran_free(&s);
    cr_assert_gt(epoch_int(&redis, "recover_until_ms"), 0, "the first write opened no window");
    const char *init[] = {"init", "-c", config, NULL};
    ran i1 = run(init);
    cr_assert_eq(i1.code, 0, "init: %s", i1.err);
    cr_assert(strstr(i1.out, "closed"), "init said: %s", i1.out);
    ran_free(&i1);
    exec_true(config, "6");

    th_redis_restart(&redis);
    cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:6}:conf"), 1, "the AOF kept nothing");
    ran i2 = run(init);
    cr_assert_eq(i2.code, 1, "init after a restart: exit %d, %s", i2.code, i2.out);
    cr_assert(strstr(i2.err, "Redis restarted"), "init said: %s", i2.err);
    ran_free(&i2);
    expect_epoch_reason(&redis, "restart");
    const char *json[] = {"status", "--json", "-c", config, NULL};
    ran st = run(json);
    cr_assert_eq(st.code, 0, "%s", st.err);
    cJSON *doc = cJSON_Parse(st.out);
    cJSON *acc = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "accounts"), 0);
    cr_assert_gt(cJSON_GetNumberValue(cJSON_GetObjectItem(acc, "recovering_ms")), 0,
                 "status shows no recovery window: %s", st.out);
    cJSON_Delete(doc);
    ran_free(&st);
    const char *force[] = {"init", "--force", "-c", config, NULL};
    ran f = run(force);
    cr_assert_eq(f.code, 0, "init --force: %s", f.err);
    ran_free(&f);
    int64_t took = exec_true(config, "6");
    cr_assert_lt(took, LONG_TTL_MS / 2, "exec after init --force took %lld ms", (long long)took);
}

/* FLUSHALL while a check holds the only slot: the check's renewal re-takes
 * it (and makes the marker again, with a window); a second exec started
 * after the flush must not get the slot while the first still runs. The
 * provider counts the connections. */
Test(epoch, flushall_while_a_check_runs_gives_nothing_away)
{
    th_redis_start(&redis, NULL);
    const char *users[] = {"u1:p1:1", NULL};
    th_provider_start(&provider, users, 6000, NULL);
    th_account(&redis, 1, 1);
    char config[256];
    write_config(redis.url, SHORT_TTL_MS, "[{\"id\": 1, \"max_streams\": 1}]", config,
                 sizeof(config));
    char url[128], out[200];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/live/u1/p1/1.ts", provider.port);
    snprintf(out, sizeof(out), "%s/first.err", dir);
    const char *first[] = {SFL_BIN, "exec", "-c", config,      "-a", "1", "--",
                           "curl",  "-sS",  "-o", "/dev/null", url,  NULL};
    pid_t p1 = th_spawn((char *const *)first, NULL, out);
    long long one = 1;
    int64_t until = th_now_ms() + 20000;
    while (th_provider_stat(&provider, "users.u1.current") < one && th_now_ms() < until)
        usleep(20000);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.current"), 1, "the first never connected");
    redisReply *fl = th_redis(&redis, "FLUSHALL");
    freeReplyObject(fl);
    snprintf(out, sizeof(out), "%s/second.err", dir);
    const char *second[] = {SFL_BIN, "exec", "-c", config,      "-a", "1", "--",
                            "curl",  "-sS",  "-o", "/dev/null", url,  NULL};
    pid_t p2 = th_spawn((char *const *)second, NULL, out);
    int s1 = th_wait(p1, 60000), s2 = th_wait(p2, 60000);
    cr_assert_eq(th_exit_code(s1), 0, "the first exec: %d", th_exit_code(s1));
    cr_assert_eq(th_exit_code(s2), 0, "the second exec: %d", th_exit_code(s2));
    cr_assert_eq(th_provider_stat(&provider, "users.u1.total"), 2);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.max_seen"), 1,
                 "two connections at once on a login of 1 after FLUSHALL");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    expect_epoch_reason(&redis, "missing");
}

/* A replica promoted (REPLICAOF NO ONE: what Sentinel does in a failover)
 * may lack the newest grants: the first sflimit to connect to it opens the
 * window, and says why. */
Test(epoch, replica_taking_over_opens_the_window)
{
    start_master_and_replica();
    char config[256];
    write_config(redis.url, LONG_TTL_MS, NULL, config, sizeof(config));
    const char *init[] = {"init", "-c", config, NULL};
    ran i1 = run(init);
    cr_assert_eq(i1.code, 0, "init: %s", i1.err);
    ran_free(&i1);
    int64_t until = th_now_ms() + 20000;
    while (!th_redis_int(&replica, "EXISTS sfl:epoch") && th_now_ms() < until)
        usleep(20000);
    cr_assert_eq(th_redis_int(&replica, "EXISTS sfl:epoch"), 1, "the marker never replicated");
    redisReply *r = th_redis(&replica, "REPLICAOF NO ONE");
    freeReplyObject(r);
    char rconfig[256];
    write_config(replica.url, LONG_TTL_MS, NULL, rconfig, sizeof(rconfig));
    const char *rinit[] = {"init", "-c", rconfig, NULL};
    ran i2 = run(rinit);
    cr_assert_eq(i2.code, 1, "init on the promoted replica: exit %d, %s", i2.code, i2.out);
    cr_assert(strstr(i2.err, "failover"), "init said: %s", i2.err);
    ran_free(&i2);
    expect_epoch_reason(&replica, "failover");
    long long left = epoch_int(&replica, "recover_until_ms") - epoch_int(&replica, "opened_ms");
    cr_assert_eq(left, LONG_TTL_MS, "a window of %lld ms, not one TTL", left);
}

/* The failover the marker is for: the replica has stopped following (its
 * link cut: REPLICAOF NO ONE, as a partition and a promotion would leave
 * it) when a check takes the only slot on the master; the master dies and
 * the replica, which never got that lease, serves instead. A check started on the promoted replica
 * must not get the slot while the first one's connection is still open at
 * the provider: the window (one TTL from the first connect) outlasts the
 * first check, which cannot renew and stops before its lease's deadline. */
Test(epoch, lagging_replica_taking_over_gives_nothing_away)
{
    start_master_and_replica();
    const char *users[] = {"u1:p1:1", NULL};
    th_provider_start(&provider, users, 10000, NULL);
    th_account(&redis, 1, 1);
    int64_t until = th_now_ms() + 20000;
    while (!th_redis_int(&replica, "EXISTS sfl:{a:1}:conf") && th_now_ms() < until)
        usleep(20000);
    cr_assert_eq(th_redis_int(&replica, "EXISTS sfl:{a:1}:conf"), 1, "nothing replicated");
    redisReply *r = th_redis(&replica, "REPLICAOF NO ONE");
    freeReplyObject(r);

    char config[256], rconfig[256], url[128], err1[200], err2[200];
    write_config(redis.url, SHORT_TTL_MS, NULL, config, sizeof(config));
    write_config(replica.url, SHORT_TTL_MS, NULL, rconfig, sizeof(rconfig));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/live/u1/p1/1.ts", provider.port);
    snprintf(err1, sizeof(err1), "%s/first.err", dir);
    snprintf(err2, sizeof(err2), "%s/second.err", dir);
    const char *first[] = {SFL_BIN, "exec", "-c", config,      "-a", "1", "--",
                           "curl",  "-sS",  "-o", "/dev/null", url,  NULL};
    pid_t p1 = th_spawn((char *const *)first, NULL, err1);
    until = th_now_ms() + 20000;
    while (th_provider_stat(&provider, "users.u1.current") < 1 && th_now_ms() < until)
        usleep(20000);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.current"), 1, "the first never connected");
    th_redis_stop(&redis);
    cr_assert_eq(th_redis_int(&replica, "ZCARD sfl:{a:1}:leases"), 0,
                 "the replica has the lease: it did not lag");
    const char *second[] = {SFL_BIN, "exec", "-c", rconfig,     "-a", "1", "--",
                            "curl",  "-sS",  "-o", "/dev/null", url,  NULL};
    pid_t p2 = th_spawn((char *const *)second, NULL, err2);
    int s1 = th_wait(p1, 60000), s2 = th_wait(p2, 60000);
    cr_assert_neq(s1, -1, "the first exec did not end");
    cr_assert_eq(th_exit_code(s2), 0, "the second exec: %d", th_exit_code(s2));
    cr_assert_eq(th_provider_stat(&provider, "users.u1.max_seen"), 1,
                 "two connections at once on a login of 1 after the failover");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    expect_epoch_reason(&replica, "failover");
    cr_log_info("lagging replica: first exec exit %d (its Redis died), second exit %d, "
                "provider max_seen %lld",
                th_exit_code(s1), th_exit_code(s2),
                th_provider_stat(&provider, "users.u1.max_seen"));
}

/* The window lasts the longest lease TTL of the processes that take
 * leases (the marker keeps it), whoever opens it: a `status` with a short
 * TTL of its own, first to reach a restarted Redis, still opens a window
 * that outlasts the 20 s leases an exec took before. */
Test(epoch, window_outlasts_the_longest_lease_ttl)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    th_redis_start(&redis, aof);
    th_account(&redis, 6, 1);
    char lconf[256], sconf[256];
    write_config(redis.url, LONG_TTL_MS, NULL, lconf, sizeof(lconf));
    write_config(redis.url, SHORT_TTL_MS, NULL, sconf, sizeof(sconf));
    exec_true(lconf, "6");
    cr_assert_eq(epoch_int(&redis, "ttl_ms"), LONG_TTL_MS, "the exec's TTL was not kept");
    const char *status[] = {"status", "-c", sconf, NULL};
    ran s1 = run(status);
    cr_assert_eq(s1.code, 0, "%s", s1.err);
    ran_free(&s1);
    cr_assert_eq(epoch_int(&redis, "ttl_ms"), LONG_TTL_MS, "a status changed the kept TTL");
    th_redis_restart(&redis);
    ran s2 = run(status);
    cr_assert_eq(s2.code, 0, "%s", s2.err);
    ran_free(&s2);
    expect_epoch_reason(&redis, "restart");
    long long window = epoch_int(&redis, "recover_until_ms") - epoch_int(&redis, "opened_ms");
    cr_assert_eq(window, LONG_TTL_MS, "a window of %lld ms after a restart; the leases lived %d",
                 window, LONG_TTL_MS);
}

/* The fourth path that writes limits, the HTTP API: a node on a Redis in
 * use, `PUT /v1/accounts/15`, then `POST /v1/leases` for it: granted well
 * inside the 20 s TTL (no window for a new account). */
Test(epoch, account_put_over_http_grants_at_once)
{
    th_redis_start(&redis, NULL);
    th_epoch_init(&redis);
    pid_t node = 0;
    int port = 0;
    char err[200];
    for (int attempt = 0; attempt < 5 && !node; attempt++) {
        char text[1024], path[256];
        port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"n1\", \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"tok\"},\n"
                 " \"lease\": {\"ttl_ms\": %d, \"renew_ms\": %d, \"safety_ms\": %d%s}}\n",
                 redis.url, port, LONG_TTL_MS, LONG_TTL_MS / 4, LONG_TTL_MS / 4, th_wrap_lease());
        th_write_file(dir, "node.json", text, path, sizeof(path));
        snprintf(err, sizeof(err), "%s/node%d.err", dir, attempt);
        node = th_node_start(path, port, err, NULL, NULL);
    }
    cr_assert_gt(node, 0, "the node never became healthy");
    th_http_resp put;
    cr_assert_eq(th_http(port, "tok", "PUT", "/v1/accounts/15", "{\"max_streams\": 1}", &put), 0);
    cr_assert_eq(put.status, 200, "PUT: %d %s", put.status, put.body);
    th_http_free(&put);
    int64_t t0 = th_now_ms();
    th_http_resp lease;
    cr_assert_eq(th_http(port, "tok", "POST", "/v1/leases",
                         "{\"account\": 15, \"wait_ms\": 60000, \"label\": \"put\"}", &lease),
                 0);
    int64_t took = th_now_ms() - t0;
    kill(node, SIGKILL);
    waitpid(node, NULL, 0);
    cr_assert_eq(lease.status, 200, "POST /v1/leases: %d %s", lease.status, lease.body);
    th_http_free(&lease);
    cr_assert_lt(took, LONG_TTL_MS / 2, "the lease of an account PUT over HTTP took %lld ms",
                 (long long)took);
    cr_log_info("PUT /v1/accounts/15 then POST /v1/leases: %lld ms (TTL %d)", (long long)took,
                LONG_TTL_MS);
}

/* A Redis that may evict keys could drop a lease or the marker without a
 * sign: every sflimit connecting to it says so, naming the setting. */
Test(epoch, evicting_redis_is_named)
{
    static const char *const lru[] = {"--maxmemory-policy", "allkeys-lru", NULL};
    th_redis_start(&redis, lru);
    char config[256];
    write_config(redis.url, LONG_TTL_MS, NULL, config, sizeof(config));
    const char *status[] = {"status", "-c", config, NULL};
    ran s = run(status);
    cr_assert_eq(s.code, 0, "%s", s.err);
    cr_assert(strstr(s.err, "maxmemory-policy is allkeys-lru"), "no word of eviction:\n%s", s.err);
    ran_free(&s);
    th_redis_stop(&redis);
    th_redis_start(&redis, NULL);
    write_config(redis.url, LONG_TTL_MS, NULL, config, sizeof(config));
    ran quiet = run(status);
    cr_assert_eq(quiet.code, 0, "%s", quiet.err);
    cr_assert_null(strstr(quiet.err, "maxmemory-policy"), "noeviction named:\n%s", quiet.err);
    ran_free(&quiet);
}

/*--- Fencing tokens across a failover --------------------------------------*/

/* `exec -a account -- sh -c 'echo $SFL_FENCE'` with config: the token of
 * its grant. */
static long long exec_fence(const char *config, const char *account)
{
    const char *args[] = {"exec", "-c", config, "-a", account,           "--timeout",
                          "60",   "--", "sh",   "-c", "echo $SFL_FENCE", NULL};
    ran r = run(args);
    cr_assert_eq(r.code, 0, "exec -a %s exited %d:\n%s", account, r.code, r.err);
    long long fence = atoll(r.out);
    cr_assert_gt(fence, 0, "no token printed: '%s'", r.out);
    ran_free(&r);
    return fence;
}

/* A login's tokens only grow, also across a failover that lost grants. The
 * replica stops following (REPLICAOF NO ONE) after the first grant; the
 * master gives three more, whose tokens the promoted replica never hears
 * of, then dies. The first grant on the promoted replica, after its
 * window, gets a token above every one the master gave: the replica's
 * counter, one grant behind, would give the second token again. */
Test(epoch, fence_grows_across_a_failover_that_lost_grants)
{
    start_master_and_replica();
    char config[256], rconfig[256];
    write_config(redis.url, SHORT_TTL_MS, NULL, config, sizeof(config));
    write_config(replica.url, SHORT_TTL_MS, NULL, rconfig, sizeof(rconfig));
    const char *init[] = {"init", "-c", config, NULL};
    ran i = run(init);
    cr_assert_eq(i.code, 0, "init: %s", i.err);
    ran_free(&i);
    th_account(&redis, 1, 1);

    long long first = exec_fence(config, "1");
    int64_t until = th_now_ms() + 20000;
    while (th_redis_int(&replica, "GET sfl:{a:1}:fence") != first && th_now_ms() < until)
        usleep(20000);
    cr_assert_eq(th_redis_int(&replica, "GET sfl:{a:1}:fence"), first,
                 "the first token never replicated");
    freeReplyObject(th_redis(&replica, "REPLICAOF NO ONE"));
    long long last = first;
    for (int k = 0; k < 3; k++) {
        long long f = exec_fence(config, "1");
        cr_assert_gt(f, last, "token %lld after %lld on one Redis", f, last);
        last = f;
    }
    cr_assert_eq(th_redis_int(&replica, "GET sfl:{a:1}:fence"), first,
                 "the replica heard of the later grants: nothing was lost");
    th_redis_stop(&redis);

    long long after = exec_fence(rconfig, "1");
    expect_epoch_reason(&replica, "failover");
    cr_log_info("fence across a failover: master gave %lld..%lld, the promoted replica %lld", first,
                last, after);
    cr_assert_gt(after, last,
                 "the promoted replica gave token %lld, not above the master's last %lld", after,
                 last);
}
