/* ha.c - a master, a replica and three sentinels on loopback, and the
 * failover scenario built on them.
 *
 * The sentinels are `redis-server CONFIG --sentinel` (Debian's
 * redis-sentinel package is the same binary under another name), each with
 * a config file of its own in the run's directory (a sentinel rewrites it).
 * Start-up waits until every sentinel has found the replica and the two
 * others: before that a kill of the master would not be followed. Every
 * process started here gets PR_SET_PDEATHSIG, so a test that fails (or a
 * Criterion worker that ends) leaves nothing running.
 *
 * The scenario measures, with the fake provider's own counters as ground
 * truth, how long after a kill -9 of the master the cluster grants again:
 * a new check reaches the provider only after a node was granted a lease by
 * the new master.
 */
#include "ha.h"

#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*--- Processes -------------------------------------------------------------*/

static pid_t spawn(const char *const *argv, const char *log)
{
    return th_spawn_tied((char *const *)argv, log, log);
}

static void stop_pid(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

/* One command on 127.0.0.1:port with a short timeout; NULL when it does
 * not answer. The caller frees the reply. */
static redisReply *cmd_at(int port, const char *fmt, ...)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* A field of a SENTINEL MASTER answer (flat field/value array). */
static const char *field_of(const redisReply *r, const char *name)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->str;
    return NULL;
}

/*--- Servers and sentinels -------------------------------------------------*/

static void server_launch(th_ha *h, int i, int replica_of)
{
    char port[16], log[200], db[32], master[16];
    snprintf(port, sizeof(port), "%d", h->server_port[i]);
    snprintf(log, sizeof(log), "%s/server%d.log", h->dir, i);
    snprintf(db, sizeof(db), "dump%d.rdb", i);
    snprintf(master, sizeof(master), "%d", replica_of);
    const char *argv[32] = {"redis-server",
                            "--port",
                            port,
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--dir",
                            h->dir,
                            "--dbfilename",
                            db,
                            "--repl-diskless-sync",
                            "yes",
                            "--repl-diskless-sync-delay",
                            "0",
                            "--loglevel",
                            "notice"};
    int k = 19;
    if (replica_of > 0) {
        argv[k++] = "--replicaof";
        argv[k++] = "127.0.0.1";
        argv[k++] = master;
    }
    argv[k] = NULL;
    h->server_pid[i] = spawn(argv, log);
    int64_t until = th_now_ms() + 10000;
    while (th_now_ms() < until) {
        redisReply *r = cmd_at(h->server_port[i], "PING");
        int up = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (up)
            return;
        usleep(20000);
    }
    cr_assert_fail("redis-server %d did not answer on port %d (log %s)", i, h->server_port[i], log);
}

static void sentinel_launch(th_ha *h, int i)
{
    char conf[200], log[200], text[1024];
    snprintf(conf, sizeof(conf), "%s/sentinel%d.conf", h->dir, i);
    snprintf(log, sizeof(log), "%s/sentinel%d.log", h->dir, i);
    snprintf(text, sizeof(text),
             "port %d\nbind 127.0.0.1\ndir %s\n"
             "sentinel monitor %s 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds %s %d\n"
             "sentinel failover-timeout %s %d\n"
             "sentinel parallel-syncs %s 1\n",
             h->sentinel_port[i], h->dir, TH_HA_MASTER, h->server_port[0], TH_HA_MASTER,
             h->down_after_ms, TH_HA_MASTER, h->failover_timeout_ms, TH_HA_MASTER);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f, "cannot write %s", conf);
    fputs(text, f);
    fclose(f);
    const char *argv[] = {"redis-server", conf, "--sentinel", NULL};
    h->sentinel_pid[i] = spawn(argv, log);
}

/* 1 when every sentinel knows the replica and the two others. */
static int sentinels_ready(const th_ha *h)
{
    for (int i = 0; i < TH_HA_SENTINELS; i++) {
        redisReply *r = cmd_at(h->sentinel_port[i], "SENTINEL MASTER %s", TH_HA_MASTER);
        const char *slaves = field_of(r, "num-slaves");
        const char *others = field_of(r, "num-other-sentinels");
        int ok = slaves && others && atoi(slaves) >= 1 && atoi(others) >= TH_HA_SENTINELS - 1;
        if (r)
            freeReplyObject(r);
        if (!ok)
            return 0;
    }
    return 1;
}

void th_ha_start(th_ha *h, int down_after_ms, int failover_timeout_ms)
{
    memset(h, 0, sizeof(*h));
    th_tmpdir(h->dir, sizeof(h->dir));
    h->down_after_ms = down_after_ms;
    h->failover_timeout_ms = failover_timeout_ms;
    for (int i = 0; i < 2; i++)
        h->server_port[i] = th_free_port();
    server_launch(h, 0, 0);
    server_launch(h, 1, h->server_port[0]);
    size_t n = (size_t)snprintf(h->url, sizeof(h->url), "redis-sentinel://");
    for (int i = 0; i < TH_HA_SENTINELS; i++) {
        h->sentinel_port[i] = th_free_port();
        sentinel_launch(h, i);
        n += (size_t)snprintf(h->url + n, sizeof(h->url) - n, "%s127.0.0.1:%d", i ? "," : "",
                              h->sentinel_port[i]);
    }
    snprintf(h->url + n, sizeof(h->url) - n, "/%s", TH_HA_MASTER);
    int64_t until = th_now_ms() + 30000;
    while (th_now_ms() < until && !sentinels_ready(h))
        usleep(100000);
    cr_assert(sentinels_ready(h), "the sentinels did not find each other and the replica (%s)",
              h->dir);
    /* And the replica has its first sync. */
    until = th_now_ms() + 10000;
    int mp = 0;
    while (th_now_ms() < until && strcmp(th_ha_role(h, 1, &mp), "slave") != 0)
        usleep(50000);
}

void th_ha_stop(th_ha *h)
{
    for (int i = 0; i < TH_HA_SENTINELS; i++)
        stop_pid(&h->sentinel_pid[i]);
    for (int i = 0; i < 2; i++)
        stop_pid(&h->server_pid[i]);
}

void th_ha_kill_server(th_ha *h, int i)
{
    stop_pid(&h->server_pid[i]);
}

void th_ha_restart_server(th_ha *h, int i)
{
    stop_pid(&h->server_pid[i]);
    server_launch(h, i, 0);
}

void th_ha_kill_sentinel(th_ha *h, int i)
{
    stop_pid(&h->sentinel_pid[i]);
}

int th_ha_master_port(const th_ha *h)
{
    for (int i = 0; i < TH_HA_SENTINELS; i++) {
        if (h->sentinel_pid[i] <= 0)
            continue;
        redisReply *r =
            cmd_at(h->sentinel_port[i], "SENTINEL get-master-addr-by-name %s", TH_HA_MASTER);
        int port = 0;
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
            port = atoi(r->element[1]->str);
        if (r)
            freeReplyObject(r);
        if (port > 0)
            return port;
    }
    return 0;
}

int th_ha_server_of(const th_ha *h, int port)
{
    for (int i = 0; i < 2; i++)
        if (h->server_port[i] == port)
            return i;
    return -1;
}

const char *th_ha_role(const th_ha *h, int i, int *master_port)
{
    static char role[16];
    role[0] = '\0';
    redisReply *r = cmd_at(h->server_port[i], "ROLE");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(role, sizeof(role), "%s", r->element[0]->str);
        if (master_port && strcmp(role, "slave") == 0 && r->elements >= 3)
            *master_port = (int)r->element[2]->integer;
    }
    if (r)
        freeReplyObject(r);
    return role;
}

/*--- The failover scenario -------------------------------------------------*/

#define NNODES 3
#define NACC 5

static const long long acc_limit[NACC] = {1, 2, 3, 1, 0};

typedef struct scenario {
    th_ha ha;
    sfl_test_provider prov;
    pid_t node[NNODES];
    pid_t submit;
} scenario;

static scenario sc; /* static: reachable from th_ha_failover_cleanup after a failed assertion */

static void write_node_conf(const scenario *s, const th_ha_opts *o, int i, char *path, size_t len)
{
    char text[2048], name[32];
    size_t n = (size_t)snprintf(
        text, sizeof(text),
        "{\"node_id\": \"node%d\",\n"
        " \"redis\": {\"url\": \"%s\", \"connect_timeout_ms\": 1000},\n"
        " \"concurrent_streams\": {\"enabled\": true, \"global_limit\": 4, \"stagger_delay\": 0},\n"
        " \"lease\": {\"ttl_ms\": %d, \"renew_ms\": %d, \"safety_ms\": %d},\n"
        " \"node\": {\"claim_idle\": 4, \"shutdown_grace\": 1},\n \"accounts\": [",
        i + 1, s->ha.url, o->ttl_ms, o->renew_ms, o->safety_ms);
    for (int a = 0; a < NACC; a++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "%s{\"id\": %d, \"name\": \"acc%d\", \"max_streams\": %lld}",
                              a ? ", " : "", a + 1, a + 1, acc_limit[a]);
    snprintf(text + n, sizeof(text) - n,
             "],\n \"check\": {\"command\": [\"curl\", \"-sS\", \"-f\", \"--max-time\", \"30\", "
             "\"-o\", \"/dev/null\", \"{url}\"], \"parser\": \"none\", \"timeout\": 60},\n"
             " \"stream_analysis\": {\"retries\": 0},\n"
             " \"http\": {\"listen\": \"127.0.0.1:%d\"}}\n",
             th_free_port());
    snprintf(name, sizeof(name), "node%d.json", i + 1);
    th_write_file(s->ha.dir, name, text, path, len);
}

static int nodes_registered(const scenario *s)
{
    sfl_test_redis r = {.port = th_ha_master_port(&s->ha)};
    if (r.port <= 0)
        return 0;
    for (int i = 0; i < NNODES; i++) {
        redisReply *rep = cmd_at(r.port, "EXISTS sfl:node:node%d", i + 1);
        int yes = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
        if (rep)
            freeReplyObject(rep);
        if (!yes)
            return 0;
    }
    return 1;
}

/* How many clients of the server on port are subscribed to channels (the
 * nodes' pub/sub connections): CLIENT LIST's sub=N with N > 0. */
static int subscribed_at(int port)
{
    redisReply *r = cmd_at(port, "CLIENT LIST");
    int n = 0;
    for (const char *p = r && r->type == REDIS_REPLY_STRING ? r->str : ""; (p = strstr(p, " sub="));
         p += 5)
        n += atoi(p + 5) > 0;
    if (r)
        freeReplyObject(r);
    return n;
}

static void scenario_down(scenario *s)
{
    stop_pid(&s->submit);
    for (int i = 0; i < NNODES; i++)
        stop_pid(&s->node[i]);
    th_provider_stop(&s->prov);
    th_ha_stop(&s->ha);
}

static void read_results(const char *path, const th_ha_result *out, th_ha_result *res, int ids0)
{
    th_results r;
    th_results_read(&r, path);
    res->nresults = r.n;
    res->one_each = 1;
    for (int k = 0; k < out->nstreams; k++) {
        int seen = 0;
        for (int j = 0; j < r.n; j++)
            seen += th_id_of(r.v[j]) == ids0 + k;
        if (seen != 1)
            res->one_each = 0;
    }
    size_t n = 0;
    for (int j = 0; j < r.n; j++) {
        const char *st = th_str_of(r.v[j], "status");
        if (st && strcmp(st, "OK") == 0)
            res->ok++;
        else if (n + 40 < sizeof(res->statuses))
            n += (size_t)snprintf(res->statuses + n, sizeof(res->statuses) - n, "%lld:%s ",
                                  th_id_of(r.v[j]), st ? st : "?");
    }
    th_results_free(&r);
}

void th_ha_failover_cleanup(void)
{
    scenario_down(&sc);
}

void th_ha_failover_run(const th_ha_opts *o, th_ha_result *out)
{
    scenario_down(&sc);
    memset(&sc, 0, sizeof(sc));
    memset(out, 0, sizeof(*out));
    th_clear_env();
    th_ha_start(&sc.ha, o->down_after_ms, o->failover_timeout_ms);
    snprintf(out->dir, sizeof(out->dir), "%s", sc.ha.dir);
    const char *users[NACC + 1] = {"u1:p1:1", "u2:p2:2", "u3:p3:3", "u4:p4:1", "u5:p5:0", NULL};
    th_provider_start(&sc.prov, users, o->hold_ms, NULL);

    sfl_test_redis master = {.port = sc.ha.server_port[0]};
    for (int a = 0; a < NACC; a++)
        th_account(&master, a + 1, acc_limit[a]);

    char conf[256], log[256];
    for (int i = 0; i < NNODES; i++) {
        write_node_conf(&sc, o, i, conf, sizeof(conf));
        snprintf(log, sizeof(log), "%s/node%d.log", sc.ha.dir, i + 1);
        const char *argv[] = {SFL_BIN, "node", "-c", conf, NULL};
        sc.node[i] = spawn(argv, log);
    }
    int64_t until = th_now_ms() + 20000;
    while (th_now_ms() < until && !nodes_registered(&sc))
        usleep(50000);
    cr_assert(nodes_registered(&sc), "the nodes did not register through the sentinels (%s)",
              sc.ha.dir);

    /* 30 streams, 6 per account, interleaved. */
    const int ids0 = 1000;
    th_streams b;
    th_streams_init(&b);
    char sid[8];
    for (int k = 0; k < 6; k++)
        for (int a = 0; a < NACC; a++) {
            char user[8], pass[8];
            snprintf(user, sizeof(user), "u%d", a + 1);
            snprintf(pass, sizeof(pass), "p%d", a + 1);
            snprintf(sid, sizeof(sid), "s%d", b.count);
            th_streams_add(&b, sc.prov.port, ids0 + b.count, sid, a + 1, user, pass);
        }
    out->nstreams = b.count;
    char streams[256], results[256], sconf[256], text[512];
    th_streams_write(&b, sc.ha.dir, "streams.json", streams, sizeof(streams));
    snprintf(results, sizeof(results), "%s/results.jsonl", sc.ha.dir);
    snprintf(text, sizeof(text), "{\"node_id\": \"submitter\", \"redis\": {\"url\": \"%s\"}}\n",
             sc.ha.url);
    th_write_file(sc.ha.dir, "submit.json", text, sconf, sizeof(sconf));
    snprintf(log, sizeof(log), "%s/submit.log", sc.ha.dir);
    const char *sargv[] = {SFL_BIN, "submit", "--wait", "-c", sconf, streams, "-o", results, NULL};
    int64_t t0 = th_now_ms();
    sc.submit = spawn(sargv, log);

    until = th_now_ms() + 60000;
    while (th_now_ms() < until && th_provider_stat(&sc.prov, "requests") < o->kill_after_reqs)
        usleep(10000);
    cr_assert_geq(th_provider_stat(&sc.prov, "requests"), o->kill_after_reqs,
                  "the batch did not start (%s)", sc.ha.dir);

    int old = th_ha_server_of(&sc.ha, th_ha_master_port(&sc.ha));
    cr_assert_geq(old, 0, "the sentinels name no master (%s)", sc.ha.dir);
    int64_t tk = th_now_ms();
    th_ha_kill_server(&sc.ha, old);
    out->killed_at_ms = tk - t0;

    /* Checks granted before the kill reach the provider within a few ms:
     * count from 300 ms after it. */
    usleep(300000);
    long long r0 = th_provider_stat(&sc.prov, "requests");
    int restarted = 0;
    until = th_now_ms() + 120000;
    while (th_now_ms() < until && (out->regrant_ms == 0 || out->switch_ms == 0)) {
        int64_t now = th_now_ms();
        if (out->regrant_ms == 0 && th_provider_stat(&sc.prov, "requests") > r0)
            out->regrant_ms = now - tk;
        if (out->switch_ms == 0) {
            int p = th_ha_master_port(&sc.ha);
            if (p > 0 && p != sc.ha.server_port[old])
                out->switch_ms = now - tk;
        }
        if (o->restart_old && out->switch_ms > 0 && !restarted) {
            th_ha_restart_server(&sc.ha, old);
            restarted = 1;
        }
        usleep(10000);
    }
    if (o->restart_old && !restarted && out->switch_ms > 0) {
        th_ha_restart_server(&sc.ha, old);
        restarted = 1;
    }

    int st = th_wait(sc.submit, 180000);
    sc.submit = 0;
    out->makespan_ms = th_now_ms() - t0;
    cr_assert_neq(st, -1, "submit --wait did not end in 180 s (%s)", sc.ha.dir);
    read_results(results, out, out, ids0);
    out->violations = th_provider_stat(&sc.prov, "violations");
    out->subscribed = subscribed_at(th_ha_master_port(&sc.ha));

    if (o->restart_old && restarted) {
        int newp = th_ha_master_port(&sc.ha);
        until = th_now_ms() + 30000;
        while (th_now_ms() < until && !out->old_is_replica) {
            int mp = 0;
            out->old_is_replica = strcmp(th_ha_role(&sc.ha, old, &mp), "slave") == 0 && mp == newp;
            if (!out->old_is_replica)
                usleep(100000);
        }
    }
    scenario_down(&sc);
}
