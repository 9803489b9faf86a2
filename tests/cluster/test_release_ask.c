/* test_release_ask.c - the merged ask (issue #17) against the fake
 * provider's own connection count.
 *
 * When a node gives a lease back, the release waits for the end of the loop
 * turn (src/release.c, sfl_limiter_release_later); an ask of the same
 * account by the same node in that turn rides in the release's script
 * (lua/release.lua's "next ask": the freed slot to the oldest waiting
 * ticket, the node's own ticket queued behind every other, or granted when
 * nobody else waits). A `sflimit node` with several short streams of one
 * account queued locally does exactly that after each check: it gives the
 * slot back and asks for the next in the same turn.
 *
 * Here several nodes on loopback share one account whose only login has a
 * small limit, the provider enforcing the same limit (a connection over it
 * is refused and counted as a violation), and many short streams of that
 * account go through the shared queue (`sflimit submit --wait`). The
 * promise is judged by the provider, not by sfl: never more connections on
 * the login than its limit, no violation, one admitted connection per
 * stream. Then: one result per stream, all OK, no lease left in Redis, and
 * the nodes' `sfl_leases_asked_in_release_total` (GET /metrics) above 0,
 * which proves the path ran (a batch could pass without it).
 *
 * The third test kills -9 a node while it runs a check (so holds the slot):
 * its check dies with it, its lease expires, its queue entries are claimed
 * by the other node, and the provider still never sees the limit passed.
 *
 * Every process started here is killed by .fini, also after a failed
 * assertion. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ACCOUNT 7
#define MAX_NODES 3
#define HOLD_MS 300 /* each check holds its provider connection this long */
#define METRIC "sfl_leases_asked_in_release_total"

typedef struct rnode {
    char id[16];
    char conf[256];
    char err[256];
    int port;
    pid_t pid;
} rnode;

static sfl_test_redis redis;
static sfl_test_provider prov;
static char dir[128];
static rnode nodes[MAX_NODES];
static int nnodes;
static pid_t submit_pid;
static int spawns; /* names the nodes' stderr files */

static void kill_reap(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static void setup(void)
{
    th_clear_env();
    th_tmpdir(dir, sizeof(dir));
    memset(nodes, 0, sizeof(nodes));
    nnodes = 0;
    submit_pid = 0;
}

static void teardown(void)
{
    kill_reap(&submit_pid);
    for (int i = 0; i < MAX_NODES; i++)
        kill_reap(&nodes[i].pid);
    th_provider_stop(&prov);
    th_redis_stop(&redis);
}

TestSuite(release_ask, .init = setup, .fini = teardown, .timeout = 150);

/*--- The cluster -----------------------------------------------------------*/

/* Node i as ra<i+1> on a free loopback port; returns once /healthz answers
 * and it is registered in Redis. Its global limit is 1: a node runs one
 * check at a time and asks for the next only when it ends, in the loop turn
 * of its release (a node whose global limit has room asks at once, is
 * denied and waits for a hand-off: its release then carries no ask). With
 * more nodes than the account's limit, the account is what binds. */
static void node_start(int i, int limit)
{
    rnode *nd = &nodes[i];
    snprintf(nd->id, sizeof(nd->id), "ra%d", i + 1);
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[2048], name[48];
        nd->port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"%s\",\n"
                 " \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\"},\n"
                 " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500},\n"
                 " \"concurrent_streams\": {\"global_limit\": 1, \"stagger_delay\": 0},\n"
                 " \"node\": {\"claim_idle\": 2, \"shutdown_grace\": 1, \"lookahead\": 6},\n"
                 " \"accounts\": [{\"id\": %d, \"name\": \"acc%d\", \"max_streams\": %d}],\n"
                 " \"check\": {\"command\": [\"curl\", \"-sS\", \"-f\", \"--max-time\", "
                 "\"30\", \"-o\", \"/dev/null\", \"{url}\"], \"parser\": \"none\", "
                 "\"timeout\": 30},\n"
                 " \"stream_analysis\": {\"retries\": 0}}\n",
                 nd->id, redis.url, nd->port, ACCOUNT, ACCOUNT, limit);
        snprintf(name, sizeof(name), "%s.json", nd->id);
        th_write_file(dir, name, text, nd->conf, sizeof(nd->conf));
        snprintf(name, sizeof(name), "%s.%d.err", nd->id, spawns++);
        snprintf(nd->err, sizeof(nd->err), "%s/%s", dir, name);
        nd->pid = th_node_start(nd->conf, nd->port, nd->err, &redis, nd->id);
        if (nd->pid)
            return;
    }
    cr_assert_fail("node %s never got a port", nd->id);
}

/* Redis with the account's limit, the provider enforcing the same limit on
 * the account's one login (u7), and n nodes. */
static void cluster_up(int n, int limit)
{
    th_redis_start(&redis, NULL);
    th_account(&redis, ACCOUNT, limit);
    char user[48];
    snprintf(user, sizeof(user), "u%d:p%d:%d", ACCOUNT, ACCOUNT, limit);
    const char *users[] = {user, NULL};
    th_provider_start(&prov, users, HOLD_MS, NULL);
    nnodes = n;
    for (int i = 0; i < n; i++)
        node_start(i, limit);
}

/* n streams of the account, ids 1..n; the path goes to path. */
static void write_batch(int n, char *path, size_t len)
{
    th_streams b;
    th_streams_init(&b);
    char user[16], pass[16];
    snprintf(user, sizeof(user), "u%d", ACCOUNT);
    snprintf(pass, sizeof(pass), "p%d", ACCOUNT);
    for (int id = 1; id <= n; id++)
        th_streams_add(&b, prov.port, id, NULL, ACCOUNT, user, pass);
    th_streams_write(&b, dir, "streams.json", path, len);
}

/* `sflimit submit --wait` of the streams file into the shared queue, its
 * results to results. */
static void submit_start(const char *streams, const char *results)
{
    char conf[256], text[256], err[200];
    snprintf(text, sizeof(text), "{\"node_id\": \"submitter\", \"redis\": {\"url\": \"%s\"}}\n",
             redis.url);
    th_write_file(dir, "submit.json", text, conf, sizeof(conf));
    snprintf(err, sizeof(err), "%s/submit.err", dir);
    const char *argv[] = {SFL_BIN, "submit", "--wait", "-c", conf, "-o", results, streams, NULL};
    submit_pid = th_spawn((char *const *)argv, NULL, err);
}

static void submit_finish(int timeout_ms)
{
    int st = th_wait(submit_pid, timeout_ms);
    char path[200];
    snprintf(path, sizeof(path), "%s/submit.err", dir);
    char *log = th_read_file(path);
    cr_assert_neq(st, -1, "submit --wait did not end in %d ms (files in %s); its stderr:\n%s",
                  timeout_ms, dir, log ? log : "");
    submit_pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "submit exited with status %d:\n%s", st,
              log ? log : "");
    free(log);
}

/*--- What the test looks at ------------------------------------------------*/

/* The value of an unlabelled sample of a node's GET /metrics; -1 when the
 * node has no such sample, -2 when it did not answer. */
static double node_metric(const rnode *nd, const char *name)
{
    th_http_resp r;
    if (th_http(nd->port, NULL, "GET", "/metrics", NULL, &r) != 0)
        return -2;
    double v = -1;
    char head[128];
    snprintf(head, sizeof(head), "\n%s ", name);
    const char *at = r.status == 200 && r.body ? strstr(r.body, head) : NULL;
    if (at)
        v = strtod(at + strlen(head), NULL);
    th_http_free(&r);
    return v;
}

/* GET /healthz's "running": the node's checks now (-1: no answer). */
static int node_running(const rnode *nd)
{
    th_http_resp r;
    if (th_http(nd->port, NULL, "GET", "/healthz", NULL, &r) != 0)
        return -1;
    const cJSON *v = cJSON_GetObjectItem(r.json, "running");
    int n = cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
    th_http_free(&r);
    return n;
}

/* arg: an rnode. 1 while it runs a check (it then holds a slot). */
static int node_busy(void *arg)
{
    return node_running(arg) >= 1;
}

static long long leases_in_redis(void)
{
    return th_redis_int(&redis, "ZCARD sfl:{a:%d}:leases", ACCOUNT);
}

static int no_lease_left(void *arg)
{
    (void)arg;
    return leases_in_redis() == 0;
}

/* How many result lines the results file holds so far. */
static int result_lines(const char *path)
{
    char *text = th_read_file(path);
    int n = 0;
    for (const char *p = text; p && (p = strchr(p, '\n')) != NULL; p++)
        n++;
    free(text);
    return n;
}

typedef struct lines_arg {
    const char *path;
    int want;
} lines_arg;

static int has_lines(void *arg)
{
    const lines_arg *a = arg;
    return result_lines(a->path) >= a->want;
}

/* arg: a pid. 1 once it is gone or a zombie (/proc/PID/stat 'Z'). */
static int is_dead(void *arg)
{
    return !th_alive(*(pid_t *)arg);
}

/* Every stream 1..n exactly one result, all OK; per_node[i]: how many ran
 * on node i. */
static void assert_results(const char *path, int n, int *per_node)
{
    th_results r;
    th_results_read(&r, path);
    cr_assert_eq(r.n, n, "%d results for %d streams (files in %s)", r.n, n, dir);
    for (int i = 0; i < nnodes; i++)
        per_node[i] = 0;
    for (long long id = 1; id <= n; id++) {
        const cJSON *o = th_result_for(&r, id);
        cr_assert(th_has_status(o, "OK"), "stream %lld: %s on %s (%s)", id, th_str_of(o, "status"),
                  th_str_of(o, "node") ? th_str_of(o, "node") : "?",
                  th_str_of(o, "error") ? th_str_of(o, "error") : "");
        const char *node = th_str_of(o, "node");
        for (int i = 0; i < nnodes; i++)
            per_node[i] += node && strcmp(node, nodes[i].id) == 0;
    }
    th_results_free(&r);
}

/* The ground truth: the login never above limit, nothing refused, and
 * between min_total and max_total connections admitted. */
static void assert_provider(int limit, long long min_total, long long max_total)
{
    char path[64];
    snprintf(path, sizeof(path), "users.u%d.max_seen", ACCOUNT);
    long long seen = th_provider_stat(&prov, path);
    snprintf(path, sizeof(path), "users.u%d.total", ACCOUNT);
    long long total = th_provider_stat(&prov, path);
    long long violations = th_provider_stat(&prov, "violations");
    cr_assert_eq(violations, 0,
                 "the provider refused %lld connection(s) over u%d's limit %d (max_seen %lld, "
                 "total %lld; files in %s)",
                 violations, ACCOUNT, limit, seen, total, dir);
    cr_assert_leq(seen, limit, "u%d had %lld connections open at once, limit %d", ACCOUNT, seen,
                  limit);
    cr_assert_eq(seen, limit,
                 "u%d never had %d connections open at once (max_seen %lld): the limit was not "
                 "used",
                 ACCOUNT, limit, seen);
    cr_assert(total >= min_total && total <= max_total,
              "the provider admitted %lld connection(s) of u%d, expected %lld..%lld", total,
              ACCOUNT, min_total, max_total);
}

/* Asks made inside a release's script, summed over the nodes still
 * running, each node's figure written to detail ("-" when it has none).
 * *missing: the first node that has no such counter (NULL: all have it). */
static double asked_in_release(char *detail, size_t len, const char **missing)
{
    double sum = 0;
    size_t k = 0;
    detail[0] = '\0';
    *missing = NULL;
    for (int i = 0; i < nnodes; i++) {
        if (nodes[i].pid <= 0)
            continue;
        double v = node_metric(&nodes[i], METRIC);
        cr_assert_neq(v, -2, "%s: GET /metrics did not answer", nodes[i].id);
        if (v < 0 && !*missing)
            *missing = nodes[i].id;
        if (v < 0)
            k += (size_t)snprintf(detail + k, len > k ? len - k : 0, "%s%s -", k ? ", " : "",
                                  nodes[i].id);
        else
            k += (size_t)snprintf(detail + k, len > k ? len - k : 0, "%s%s %g", k ? ", " : "",
                                  nodes[i].id, v);
        sum += v > 0 ? v : 0;
    }
    return sum;
}

/* The part every test shares once the batch is done: one OK result per
 * stream, the provider clean, no lease left, the path used. */
static void judge(const char *name, const char *results, int n, int limit, long long max_total,
                  int64_t took_ms, int min_nodes)
{
    int per_node[MAX_NODES];
    assert_provider(limit, n, max_total); /* the ground truth first */
    assert_results(results, n, per_node);
    cr_assert(th_until(no_lease_left, NULL, 5000),
              "%lld lease(s) of account %d left in Redis 5 s after the batch", leases_in_redis(),
              ACCOUNT);
    int used = 0;
    for (int i = 0; i < nnodes; i++)
        used += per_node[i] > 0;
    char path[64];
    snprintf(path, sizeof(path), "users.u%d.total", ACCOUNT);
    long long total = th_provider_stat(&prov, path);
    snprintf(path, sizeof(path), "users.u%d.max_seen", ACCOUNT);
    long long seen = th_provider_stat(&prov, path);
    char detail[160];
    const char *missing;
    double asked = asked_in_release(detail, sizeof(detail), &missing);
    fprintf(stderr,
            "release_ask: %s: %d streams, limit %d, %d nodes: %lld ms; checks per node "
            "%d/%d/%d; provider max_seen %lld, total %lld, violations 0; %s: %s\n",
            name, n, limit, nnodes, (long long)took_ms, per_node[0], per_node[1],
            nnodes > 2 ? per_node[2] : 0, seen, total, METRIC, detail);
    cr_assert_geq(used, min_nodes, "the checks ran on %d node(s) only (%d/%d/%d)", used,
                  per_node[0], per_node[1], nnodes > 2 ? per_node[2] : 0);
    /* Last: a node without the counter cannot show that the path ran. */
    cr_assert_null(missing,
                   "%s: GET /metrics has no %s (the counter of asks made inside a release's "
                   "script): whether asks rode in releases cannot be seen",
                   missing, METRIC);
    cr_assert_gt(asked, 0,
                 "no node made an ask inside a release's script (%s): the path under "
                 "test did not run",
                 detail);
}

/* n streams on the nnodes nodes at limit, done within 90 s. */
static void run_batch(const char *name, int n, int limit)
{
    char streams[256], results[256];
    write_batch(n, streams, sizeof(streams));
    snprintf(results, sizeof(results), "%s/results.jsonl", dir);
    int64_t t0 = th_now_ms();
    submit_start(streams, results);
    submit_finish(90000);
    judge(name, results, n, limit, n, th_now_ms() - t0, nnodes);
}

/*--- Tests -----------------------------------------------------------------*/

/* One login of limit 1, two nodes, 24 streams of 300 ms: every check ends
 * with a release and, the node having more of the account queued, an ask
 * in the same turn. */
Test(release_ask, two_nodes_login_of_one_back_to_back_checks)
{
    cluster_up(2, 1);
    run_batch("two_nodes_login_of_one_back_to_back_checks", 24, 1);
}

/* Limit 2, three nodes, 36 streams: two slots passed around three nodes,
 * both in use at some point (the provider's max_seen is 2). */
Test(release_ask, limit_two_three_nodes)
{
    cluster_up(3, 2);
    run_batch("limit_two_three_nodes", 36, 2);
}

/* Limit 1, two nodes, 24 streams; once 6 results are in, a node is killed
 * -9 while it runs a check with its connection open at the provider (it
 * holds the slot). Its check dies with it, its lease expires (TTL 3 s), its
 * queue entries are claimed (claim_idle 2 s); everything gets checked, the
 * provider never over 1. The victim's check was admitted before the kill
 * and runs again, and a check it finished may be delivered again: up to 2
 * connections more than streams. */
Test(release_ask, node_killed_holding_the_slot)
{
    cluster_up(2, 1);
    const int n = 24;
    char streams[256], results[256];
    write_batch(n, streams, sizeof(streams));
    snprintf(results, sizeof(results), "%s/results.jsonl", dir);
    int64_t t0 = th_now_ms();
    submit_start(streams, results);
    lines_arg la = {results, 6};
    cr_assert(th_until(has_lines, &la, 30000), "fewer than 6 results after 30 s (files in %s)",
              dir);
    /* Whichever node runs a check while the login has its connection open
     * holds the slot (limit 1) and uses it. */
    rnode *victim = NULL;
    char current[64];
    snprintf(current, sizeof(current), "users.u%d.current", ACCOUNT);
    int64_t until = th_now_ms() + 20000;
    while (!victim && th_now_ms() < until) {
        for (int i = 0; i < nnodes && !victim; i++)
            if (node_busy(&nodes[i]) && th_provider_stat(&prov, current) >= 1 &&
                node_busy(&nodes[i]))
                victim = &nodes[i];
        if (!victim)
            usleep(2000);
    }
    cr_assert_not_null(victim,
                       "no node ran a check with its connection open for 20 s mid-batch "
                       "(files in %s)",
                       dir);
    kill(victim->pid, SIGKILL);
    cr_assert(th_until(is_dead, &victim->pid, 10000), "%s (pid %d) did not die of SIGKILL",
              victim->id, (int)victim->pid);
    int64_t killed_at = th_now_ms() - t0;
    int done_at_kill = result_lines(results);
    kill_reap(&victim->pid);
    submit_finish(90000);
    fprintf(stderr,
            "release_ask: node_killed_holding_the_slot: %s killed at %lld ms with %d "
            "result(s) in\n",
            victim->id, (long long)killed_at, done_at_kill);
    judge("node_killed_holding_the_slot", results, n, 1, n + 2, th_now_ms() - t0, 1);
}
