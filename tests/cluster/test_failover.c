/* test_failover.c - Redis Sentinel: a master, a replica and three sentinels
 * (ha.c), sflimit on a redis-sentinel:// URL.
 *
 * - The sentinel list is asked in turn: a first sentinel that is dead, or
 *   one that accepts the connection and never answers, is skipped.
 * - Every command that talks to Redis works through the sentinels.
 * - ROLE is checked on any URL: a replica is refused with a clear message.
 * - kill -9 of the master while three nodes check a 30-stream batch: no
 *   provider violation (the provider's own count), every stream exactly one
 *   result, and the cluster grants again within down-after-milliseconds +
 *   failover-timeout + one lease TTL (the figure is printed; the
 *   distribution over 10 runs is tests/bench/bench_failover.c's). The same
 *   with the old master brought back: it returns as a replica.
 */
#include "ha.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static th_ha ha;
static sfl_test_redis plain[2];

static void fini(void)
{
    th_ha_stop(&ha);
    th_ha_failover_cleanup();
    th_redis_stop(&plain[0]);
    th_redis_stop(&plain[1]);
}

TestSuite(failover, .init = th_clear_env, .fini = fini, .timeout = 300);

/* Runs sflimit with argv (NULL-terminated, after the binary) and returns its
 * exit code; its stdout goes to r->out. */
static int run(th_run *r, const char *dir, const char *const *args, int timeout_ms)
{
    const char *argv[32] = {SFL_BIN};
    int k = 1;
    for (int i = 0; args[i] && k < 31; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    th_run_start(r, dir, argv);
    return th_exit_code(th_run_wait(r, timeout_ms));
}

/* A socket that accepts connections (the kernel does, from its backlog) and
 * never answers: a sentinel that hangs. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* The first sentinel hangs, the second is dead: the others still name the
 * master, and `accounts set` writes there. */
Test(failover, first_sentinels_down)
{
    th_ha_start(&ha, 1000, 3000);
    th_ha_kill_sentinel(&ha, 0);
    int hang_port;
    int hang = silent_listener(&hang_port);
    char url[300], text[512], conf[256];
    snprintf(url, sizeof(url),
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d,"
             "127.0.0.1:%d/%s",
             hang_port, ha.sentinel_port[0], ha.sentinel_port[1], ha.sentinel_port[2],
             TH_HA_MASTER);
    snprintf(text, sizeof(text), "{\"redis\": {\"url\": \"%s\", \"connect_timeout_ms\": 500}}",
             url);
    th_write_file(ha.dir, "sflimit.json", text, conf, sizeof(conf));
    th_run r;
    int64_t t0 = th_now_ms();
    int rc = run(&r, ha.dir, (const char *const[]){"accounts", "set", "9", "1", "-c", conf, NULL},
                 30000);
    int64_t took = th_now_ms() - t0;
    close(hang);
    cr_assert_eq(rc, 0, "accounts set through %s: exit %d: %s", url, rc, th_run_stderr(&r));
    sfl_test_redis m = {.port = ha.server_port[0]};
    cr_assert_eq(th_account_limit(&m, 9), 1, "the master has no limit for account 9");
    fprintf(stderr, "failover: first two sentinels down (one silent): accounts set took %lld ms\n",
            (long long)took);
    /* A list of dead sentinels only: a clear failure, not a hang. */
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d/%s", ha.sentinel_port[0],
             TH_HA_MASTER);
    rc = run(&r, ha.dir, (const char *const[]){"status", "--redis", url, "-c", conf, NULL}, 60000);
    cr_assert_eq(rc, 1, "status with no live sentinel: exit %d", rc);
    cr_assert_not_null(strstr(th_run_stderr(&r), "no sentinel named master"), "%s",
                       th_run_stderr(&r));
}

static int has_line(const char *path, const char *needle)
{
    char *text = th_read_file(path);
    int yes = text && strstr(text, needle);
    free(text);
    return yes;
}

/* accounts, status, exec, check, node and submit, all on the sentinel URL. */
Test(failover, every_command)
{
    th_ha_start(&ha, 1000, 3000);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s", ha.dir);
    sfl_test_provider prov;
    const char *users[] = {"u9:p9:1", NULL};
    th_provider_start(&prov, users, 300, NULL);
    char conf[256];
    th_config tc = {.redis_url = ha.url,
                    .accounts = "[{\"id\": 9, \"name\": \"nine\", \"max_streams\": 1}]",
                    .extra = ", \"http\": {\"listen\": \"127.0.0.1:0\"}"};
    th_write_config(dir, &tc, conf, sizeof(conf));
    th_run r;
    int rc =
        run(&r, dir, (const char *const[]){"accounts", "set", "9", "1", "-c", conf, NULL}, 30000);
    cr_assert_eq(rc, 0, "accounts set: %s", th_run_stderr(&r));
    rc = run(&r, dir, (const char *const[]){"accounts", "list", "-c", conf, NULL}, 30000);
    cr_assert_eq(rc, 0, "accounts list: %s", th_run_stderr(&r));
    cr_assert(has_line(r.out, "9"), "accounts list does not show account 9");
    rc = run(&r, dir, (const char *const[]){"accounts", "sync", "-c", conf, NULL}, 30000);
    cr_assert_eq(rc, 0, "accounts sync: %s", th_run_stderr(&r));
    rc = run(&r, dir, (const char *const[]){"status", "--json", "-c", conf, NULL}, 30000);
    cr_assert_eq(rc, 0, "status: %s", th_run_stderr(&r));
    cr_assert(has_line(r.out, "\"max_streams\":1") || has_line(r.out, "\"max_streams\": 1"),
              "status shows no account 9");
    rc = run(&r, dir, (const char *const[]){"exec", "-a", "9", "-c", conf, "--", "true", NULL},
             60000);
    cr_assert_eq(rc, 0, "exec: %s", th_run_stderr(&r));

    th_streams b;
    th_streams_init(&b);
    th_streams_add(&b, prov.port, 1, NULL, 9, "u9", "p9");
    th_streams_add(&b, prov.port, 2, NULL, 9, "u9", "p9");
    char streams[256];
    th_streams_write(&b, dir, "streams.json", streams, sizeof(streams));
    rc = run(&r, dir, (const char *const[]){"check", "-c", conf, streams, NULL}, 60000);
    cr_assert_eq(rc, 0, "check: %s", th_run_stderr(&r));
    th_results res;
    th_results_read(&res, r.out);
    cr_assert_eq(res.n, 2, "check: %d results", res.n);
    cr_assert_eq(th_count_status(&res, "OK"), 2, "check: not every result OK");
    th_results_free(&res);

    th_run node;
    const char *nargv[] = {SFL_BIN, "node", "-c", conf, NULL};
    th_run_start(&node, dir, nargv);
    char results[256];
    snprintf(results, sizeof(results), "%s/submitted.jsonl", dir);
    rc = run(&r, dir,
             (const char *const[]){"submit", "--wait", "-c", conf, streams, "-o", results, NULL},
             60000);
    kill(node.pid, SIGTERM);
    th_run_wait(&node, 30000);
    cr_assert_eq(rc, 0, "submit: %s", th_run_stderr(&r));
    th_results_read(&res, results);
    cr_assert_eq(res.n, 2, "submit: %d results", res.n);
    cr_assert_eq(th_count_status(&res, "OK"), 2, "submit: not every result OK");
    th_results_free(&res);
    cr_assert_eq(th_provider_stat(&prov, "violations"), 0);
    th_provider_stop(&prov);
}

/* A plain redis:// URL that names a replica: refused with a clear message. */
Test(failover, replica_url_refused)
{
    th_redis_start(&plain[0], NULL);
    char port[16];
    snprintf(port, sizeof(port), "%d", plain[0].port);
    const char *extra[] = {"--replicaof", "127.0.0.1", port, NULL};
    th_redis_start(&plain[1], extra);
    char dir[128], text[256], conf[256];
    th_tmpdir(dir, sizeof(dir));
    snprintf(text, sizeof(text), "{\"redis\": {\"url\": \"%s\", \"connect_timeout_ms\": 500}}",
             plain[1].url);
    th_write_file(dir, "sflimit.json", text, conf, sizeof(conf));
    th_run r;
    int rc = run(&r, dir, (const char *const[]){"status", "-c", conf, NULL}, 60000);
    cr_assert_eq(rc, 1, "status on a replica: exit %d", rc);
    char want[96];
    snprintf(want, sizeof(want), "is a replica of 127.0.0.1:%d", plain[0].port);
    cr_assert_not_null(strstr(th_run_stderr(&r), want), "no \"%s\" in: %s", want,
                       th_run_stderr(&r));
    /* The master itself is fine. */
    snprintf(text, sizeof(text), "{\"redis\": {\"url\": \"%s\"}}", plain[0].url);
    th_write_file(dir, "master.json", text, conf, sizeof(conf));
    rc = run(&r, dir, (const char *const[]){"status", "-c", conf, NULL}, 30000);
    cr_assert_eq(rc, 0, "status on the master: %s", th_run_stderr(&r));
}

static th_ha_opts failover_opts(void)
{
    return (th_ha_opts){.down_after_ms = 1000,
                        .failover_timeout_ms = 3000,
                        .ttl_ms = 6000,
                        .renew_ms = 1000,
                        .safety_ms = 1000,
                        .hold_ms = 1000,
                        .kill_after_reqs = 12};
}

static void judge(const th_ha_opts *o, const th_ha_result *res, const char *name)
{
    int64_t bound = o->down_after_ms + o->failover_timeout_ms + o->ttl_ms;
    fprintf(stderr,
            "failover: %s: master killed at %lld ms; sentinels switched after %lld ms; "
            "granting again after %lld ms (bound %lld = down-after %d + failover-timeout %d + "
            "TTL %d); makespan %lld ms; %d/%d results, %d OK%s%s; provider violations %lld; "
            "%d subscribed connections on the new master\n",
            name, (long long)res->killed_at_ms, (long long)res->switch_ms,
            (long long)res->regrant_ms, (long long)bound, o->down_after_ms, o->failover_timeout_ms,
            o->ttl_ms, (long long)res->makespan_ms, res->nresults, res->nstreams, res->ok,
            res->statuses[0] ? "; others: " : "", res->statuses, res->violations, res->subscribed);
    cr_expect_eq(res->violations, 0, "the provider saw %lld violation(s) (files in %s)",
                 res->violations, res->dir);
    cr_expect(res->one_each, "not exactly one result per stream: %d results for %d streams (%s)",
              res->nresults, res->nstreams, res->dir);
    cr_expect_eq(res->nresults, res->nstreams);
    cr_expect_gt(res->switch_ms, 0, "the sentinels never named a new master (%s)", res->dir);
    cr_expect_gt(res->regrant_ms, 0, "no check started after the kill (%s)", res->dir);
    /* The nodes' subscriptions moved with their command connections. */
    cr_expect_geq(res->subscribed, 3, "%d subscribed connection(s) on the new master (%s)",
                  res->subscribed, res->dir);
    cr_expect_leq(res->regrant_ms, bound, "granting again took %lld ms, over %lld (%s)",
                  (long long)res->regrant_ms, (long long)bound, res->dir);
}

Test(failover, master_killed_mid_batch)
{
    th_ha_opts o = failover_opts();
    th_ha_result res;
    th_ha_failover_run(&o, &res);
    judge(&o, &res, "master_killed_mid_batch");
}

Test(failover, old_master_comes_back_as_replica)
{
    th_ha_opts o = failover_opts();
    o.restart_old = 1;
    th_ha_result res;
    th_ha_failover_run(&o, &res);
    judge(&o, &res, "old_master_comes_back_as_replica");
    cr_expect(res.old_is_replica, "the old master did not come back as a replica of the new (%s)",
              res.dir);
}
