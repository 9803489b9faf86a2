/* test_queue.c - the shared queue (DESIGN §8) as a cluster uses it:
 * `sflimit node`s and `sflimit submit --wait` as children, a real
 * redis-server, and Redis as the ground truth of what a finished batch leaves
 * behind (queue entries, stream credentials, consumers of stopped nodes).
 * Also what a node's /metrics says about lease waits: observed at the grant
 * and at NoSlot, in the bucket of the true wait, and every family served
 * listed in README.md. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "queue-test-token"
#define PASSWORD "Pw-q7Xk29zR" /* in every stream URL of a batch */
#define MAX_NODES 2

typedef struct qnode {
    char id[16];
    pid_t pid;
    int port;
    char conf[256];
    char err[256];
} qnode;

static sfl_test_redis redis;
static char dir[128];
static qnode nodes[MAX_NODES];
static pid_t others[4]; /* submit, exec: killed at teardown */
static int spawns;

static void setup(void)
{
    th_clear_env();
    memset(nodes, 0, sizeof(nodes));
    memset(others, 0, sizeof(others));
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void reap(pid_t *pid)
{
    if (*pid > 0 && waitpid(*pid, NULL, WNOHANG) == 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static void teardown(void)
{
    for (int i = 0; i < MAX_NODES; i++)
        reap(&nodes[i].pid);
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        reap(&others[i]);
    th_redis_stop(&redis);
}

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 180);

/*--- Nodes -----------------------------------------------------------------*/

typedef struct node_opts {
    const char *check; /* the "check" object */
    const char *node;  /* the "node" object */
    const char *lease; /* more members of "lease", ", \"k\": v" */
    int global_limit;
} node_opts;

static char *file_text(const char *path)
{
    char *t = th_read_file(path);
    return t ? t : strdup("");
}

/* Starts node i as q<i+1> on a free loopback port and waits for /healthz 200
 * and its registry key. */
static void node_start(int i, const node_opts *o)
{
    qnode *nd = &nodes[i];
    snprintf(nd->id, sizeof(nd->id), "q%d", i + 1);
    /* Under a wrapper, a longer hold (th_wrap_lease), unless the test sets
     * its own (a key given twice is a config error). */
    const char *more = o->lease ? o->lease : "";
    const char *slow = strstr(more, "handoff_ms") ? "" : th_wrap_lease();
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[2048];
        nd->port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"%s\",\n"
                 " \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"%s\"},\n"
                 " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500%s%s},\n"
                 " \"concurrent_streams\": {\"global_limit\": %d, \"stagger_delay\": 0},\n"
                 " \"node\": %s,\n"
                 " \"check\": %s}\n",
                 nd->id, redis.url, nd->port, TOKEN, more, slow,
                 o->global_limit > 0 ? o->global_limit : 4,
                 o->node ? o->node : "{\"shutdown_grace\": 2}",
                 o->check ? o->check
                          : "{\"command\": [\"true\"], \"parser\": \"none\", \"timeout\": 10}");
        char name[32];
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

static th_http_resp get(const qnode *nd, const char *path)
{
    th_http_resp r;
    cr_assert_eq(th_http(nd->port, TOKEN, "GET", path, NULL, &r), 0, "GET %s: no answer", path);
    cr_assert_eq(r.status, 200, "GET %s: %d %s", path, r.status, r.body);
    return r;
}

/* A sample of a /metrics body: name with its labels as written
 * ("sfl_x_bucket{le=\"5\"}"), or the test fails. */
static double sample(const char *body, const char *name)
{
    char head[160];
    snprintf(head, sizeof(head), "\n%s ", name);
    const char *at = strstr(body, head);
    cr_assert_not_null(at, "/metrics has no sample %s:\n%s", name, body);
    return strtod(at + strlen(head), NULL);
}

/* POST /v1/checks of a streams array; the batch id goes to batch. */
static void post_checks(const qnode *nd, const char *body, char *batch, size_t len)
{
    th_http_resp r;
    cr_assert_eq(th_http(nd->port, TOKEN, "POST", "/v1/checks", body, &r), 0);
    cr_assert_eq(r.status, 202, "%d %s", r.status, r.body);
    snprintf(batch, len, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "batch")));
    th_http_free(&r);
}

static int batch_done(const qnode *nd, const char *batch, int want, int timeout_ms)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/checks/%s", batch);
    int64_t until = th_now_ms() + timeout_ms;
    for (;;) {
        th_http_resp r = get(nd, path);
        int done = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "done"));
        th_http_free(&r);
        if (done >= want)
            return 1;
        if (th_now_ms() > until)
            return 0;
        usleep(20000);
    }
}

/*--- Batches ---------------------------------------------------------------*/

/* n streams, ids from 1; every URL carries PASSWORD (user info, path and
 * query). account > 0: every other stream is of that account, the rest
 * custom. */
static void write_streams(const char *name, int n, long long account, char *path, size_t len)
{
    size_t cap = 256 + (size_t)n * 320, k = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    k += (size_t)snprintf(text + k, cap - k, "[\n");
    for (int i = 1; i <= n; i++) {
        char acc[48] = "";
        if (account > 0 && i % 2 == 0)
            snprintf(acc, sizeof(acc), ", \"m3u_account\": %lld", account);
        k += (size_t)snprintf(text + k, cap - k,
                              "%s{\"id\": %d, \"name\": \"S%d\", \"url\": "
                              "\"http://sfl-user:" PASSWORD "@127.0.0.1:9/live/sfl-user/" PASSWORD
                              "/%d.ts?password=" PASSWORD "\"%s}\n",
                              i > 1 ? "," : "", i, i, i, acc);
    }
    snprintf(text + k, cap - k, "]\n");
    th_write_file(dir, name, text, path, len);
    free(text);
}

/* `sflimit submit --wait` of the streams file, results to dir/results.jsonl;
 * returns its pid (others[0]). */
static pid_t submit_start(const char *streams, char *results, size_t len)
{
    char conf[256], text[256], err[200];
    snprintf(text, sizeof(text), "{\"node_id\": \"submitter\", \"redis\": {\"url\": \"%s\"}}\n",
             redis.url);
    th_write_file(dir, "submit.json", text, conf, sizeof(conf));
    snprintf(results, len, "%s/results.jsonl", dir);
    snprintf(err, sizeof(err), "%s/submit.err", dir);
    const char *argv[] = {SFL_BIN, "submit", "--wait", "-c", conf, "-o", results, streams, NULL};
    return others[0] = th_spawn((char *const *)argv, NULL, err);
}

static void submit_finish(int timeout_ms)
{
    int st = th_wait(others[0], timeout_ms);
    char path[200];
    snprintf(path, sizeof(path), "%s/submit.err", dir);
    char *log = file_text(path);
    cr_assert_neq(st, -1, "submit --wait did not end in %d ms; its stderr:\n%s", timeout_ms, log);
    others[0] = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "submit exited with status %d:\n%s", st, log);
    free(log);
}

/* Reads the results file: per stream id (1..n), how many results, and each
 * result's status and node. Every line must be a JSON object. */
typedef struct qresult {
    int seen;
    char status[16];
    char node[16];
} qresult;

static void load_results(const char *path, qresult *out, int n)
{
    memset(out, 0, sizeof(*out) * (size_t)(n + 1));
    char *text = file_text(path);
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line);
        cr_assert_not_null(r, "a result line is not JSON: %s", line);
        const cJSON *id = cJSON_GetObjectItem(r, "stream_id");
        cr_assert(cJSON_IsNumber(id) && id->valuedouble >= 1 && id->valuedouble <= n,
                  "bad stream_id in %s", line);
        qresult *q = &out[(int)id->valuedouble];
        q->seen++;
        snprintf(q->status, sizeof(q->status), "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(r, "status")));
        snprintf(q->node, sizeof(q->node), "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(r, "node")));
        cJSON_Delete(r);
    }
    free(text);
}

/*--- Redis, looked at from outside -----------------------------------------*/

/* Appends a reply's strings (recursively) to buf, space separated. */
static void flatten(const redisReply *r, char **buf, size_t *len, size_t *cap)
{
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            flatten(r->element[i], buf, len, cap);
        return;
    }
    char num[32];
    const char *s = r->str;
    size_t n = r->len;
    if (r->type == REDIS_REPLY_INTEGER) {
        n = (size_t)snprintf(num, sizeof(num), "%lld", r->integer);
        s = num;
    } else if (!s) {
        return;
    }
    if (*len + n + 2 > *cap) {
        *cap = (*len + n + 2) * 2;
        *buf = realloc(*buf, *cap);
        cr_assert_not_null(*buf);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[(*len)++] = ' ';
    (*buf)[*len] = '\0';
}

/* Every value of key, read by its type, as one string (the caller frees). */
static char *dump_key(const char *key, char *type, size_t tlen)
{
    redisReply *t = th_redis(&redis, "TYPE %s", key);
    snprintf(type, tlen, "%s", t->str ? t->str : "?");
    freeReplyObject(t);
    redisReply *v = NULL;
    if (strcmp(type, "string") == 0)
        v = th_redis(&redis, "GET %s", key);
    else if (strcmp(type, "hash") == 0)
        v = th_redis(&redis, "HGETALL %s", key);
    else if (strcmp(type, "list") == 0)
        v = th_redis(&redis, "LRANGE %s 0 -1", key);
    else if (strcmp(type, "set") == 0)
        v = th_redis(&redis, "SMEMBERS %s", key);
    else if (strcmp(type, "zset") == 0)
        v = th_redis(&redis, "ZRANGE %s 0 -1 WITHSCORES", key);
    else if (strcmp(type, "stream") == 0)
        v = th_redis(&redis, "XINFO STREAM %s FULL COUNT 0", key); /* all entries, groups, PELs */
    else
        cr_assert_fail("key %s has type %s, not read here", key, type);
    size_t len = 0, cap = 256;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    buf[0] = '\0';
    flatten(v, &buf, &len, &cap);
    freeReplyObject(v);
    return buf;
}

static int count_in(const char *text, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *at = text; (at = strstr(at, needle)) != NULL; at += len)
        n++;
    return n;
}

static int is_results_key(const char *key)
{
    size_t n = strlen(key);
    return strncmp(key, "sfl:batch:", 10) == 0 && n > 8 && strcmp(key + n - 8, ":results") == 0;
}

typedef struct scan_totals {
    int keys;        /* scanned */
    int in_results;  /* password occurrences in batch results */
    char where[512]; /* keys (other than results) holding the password */
    char seen[1024]; /* every key and its type */
} scan_totals;

/* SCAN every key, dump every value by its type, and count the password. */
static void scan_all(scan_totals *t)
{
    memset(t, 0, sizeof(*t));
    char cursor[32] = "0";
    do {
        redisReply *r = th_redis(&redis, "SCAN %s COUNT 1000", cursor);
        cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            char type[16];
            char *v = dump_key(key, type, sizeof(type));
            t->keys++;
            snprintf(t->seen + strlen(t->seen), sizeof(t->seen) - strlen(t->seen), "%s%s (%s)",
                     t->seen[0] ? ", " : "", key, type);
            int n = count_in(v, PASSWORD) + count_in(key, PASSWORD);
            if (is_results_key(key))
                t->in_results += n;
            else if (n > 0)
                snprintf(t->where + strlen(t->where), sizeof(t->where) - strlen(t->where),
                         "%s%s (%s, %d)", t->where[0] ? ", " : "", key, type, n);
            free(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

/* 1 when the queue's group lists consumer name; *pending its entries. */
static int consumer_listed(const char *name, long long *pending)
{
    redisReply *r = th_redis(&redis, "XINFO CONSUMERS sfl:jobs sfl-nodes");
    int found = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *c = r->element[i];
        const char *cname = NULL;
        long long p = 0;
        for (size_t k = 0; k + 1 < c->elements; k += 2) {
            if (strcmp(c->element[k]->str, "name") == 0)
                cname = c->element[k + 1]->str;
            else if (strcmp(c->element[k]->str, "pending") == 0)
                p = c->element[k + 1]->integer;
        }
        if (cname && strcmp(cname, name) == 0) {
            found = 1;
            if (pending)
                *pending = p;
        }
    }
    freeReplyObject(r);
    return found;
}

/* The value of field name of a queue entry (its field/value array), or NULL. */
static const char *entry_field(const redisReply *fields, const char *name)
{
    for (size_t k = 0; k + 1 < fields->elements; k += 2)
        if (strcmp(fields->element[k]->str, name) == 0)
            return fields->element[k + 1]->str;
    return NULL;
}

/* The id of the stream a queue entry's "stream" field names. */
static int entry_stream_id(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    int id = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "id"));
    cJSON_Delete(j);
    return id;
}

/* The stream ids of the entries pending on consumer name (at most max). */
static int held_streams(const char *name, int *ids, int max)
{
    redisReply *p = th_redis(&redis, "XPENDING sfl:jobs sfl-nodes - + %d %s", max, name);
    int n = 0;
    for (size_t i = 0; p->type == REDIS_REPLY_ARRAY && i < p->elements && n < max; i++) {
        const char *entry = p->element[i]->element[0]->str;
        redisReply *e = th_redis(&redis, "XRANGE sfl:jobs %s %s", entry, entry);
        cr_assert(e->type == REDIS_REPLY_ARRAY && e->elements == 1, "entry %s is gone", entry);
        const char *json = entry_field(e->element[0]->element[1], "stream");
        if (json)
            ids[n++] = entry_stream_id(json);
        freeReplyObject(e);
    }
    freeReplyObject(p);
    return n;
}

static int has_pending(void *arg)
{
    long long p = 0;
    return consumer_listed(arg, &p) && p > 0;
}

/*--- What a finished batch leaves in Redis ---------------------------------*/

/* 100 streams through two nodes (half custom, half of an account): every
 * entry leaves sfl:jobs once its result is stored, and the streams'
 * password is found in no key but the batch's results. */
Test(queue, finished_batch_leaves_no_entry_and_no_password)
{
    th_account(&redis, 3, 4);
    /* A slot handed over is held 1 s for its node to take it over, not
     * 250 ms: CI runs this suite under valgrind beside others, where a node
     * may need longer than the default hold's margin to confirm, and its
     * check is then stopped (LeaseLost), as it must be. What this test
     * checks is what a finished batch leaves. */
    node_opts o = {.global_limit = 5, .lease = ", \"handoff_ms\": 1000"};
    node_start(0, &o);
    node_start(1, &o);
    char streams[200], results[200];
    write_streams("streams.json", 100, 3, streams, sizeof(streams));
    submit_start(streams, results, sizeof(results));
    submit_finish(120000);

    qresult r[101];
    load_results(results, r, 100);
    int per_node[MAX_NODES] = {0};
    for (int id = 1; id <= 100; id++) {
        cr_assert_eq(r[id].seen, 1, "stream %d has %d results", id, r[id].seen);
        cr_assert_str_eq(r[id].status, "OK", "stream %d: %s", id, r[id].status);
        for (int i = 0; i < MAX_NODES; i++)
            per_node[i] += strcmp(r[id].node, nodes[i].id) == 0;
    }
    long long xlen = th_redis_int(&redis, "XLEN sfl:jobs");
    redisReply *p = th_redis(&redis, "XPENDING sfl:jobs sfl-nodes");
    long long pending = p->type == REDIS_REPLY_ARRAY ? p->element[0]->integer : -1;
    freeReplyObject(p);
    scan_totals t;
    scan_all(&t);
    fprintf(stderr,
            "queue: 100 streams (q1 %d, q2 %d): XLEN sfl:jobs %lld, pending %lld; %d keys "
            "scanned (%s), password %d times in batch results, elsewhere: %s\n",
            per_node[0], per_node[1], xlen, pending, t.keys, t.seen, t.in_results,
            t.where[0] ? t.where : "none");
    cr_assert_eq(pending, 0, "%lld entries still pending after the batch", pending);
    cr_assert_eq(xlen, 0, "sfl:jobs still holds %lld entries after the batch", xlen);
    cr_assert_str_eq(t.where, "", "the streams' password is still in Redis: %s", t.where);
    /* The scan does see it where it belongs: each result keeps stream_url. */
    cr_assert_geq(t.in_results, 100, "the password is in the results only %d times", t.in_results);
}

/* Lines in the file at path (a results file): for th_until. */
static int lines_in(const char *path)
{
    char *t = file_text(path);
    int n = 0;
    for (const char *p = t; (p = strchr(p, '\n')); p++)
        n++;
    free(t);
    return n;
}

static const char *results_path;
static int two_printed(void *arg)
{
    (void)arg;
    return lines_in(results_path) >= 2;
}

static int batch_listed(void *arg)
{
    (void)arg;
    return th_redis_int(&redis, "LLEN sfl:batches") >= 1;
}

/* One result of stream id as a node stores it (result.lua): HSETNX, RPUSH,
 * HINCRBY, PUBLISH. */
static void store_result_of(const char *batch, int id)
{
    char json[160];
    snprintf(json, sizeof(json), "{\"stream_id\":%d,\"status\":\"OK\",\"node\":\"q9\"}", id);
    redisReply *r = th_redis(&redis, "HSETNX sfl:batch:%s r:%d 1", batch, id);
    freeReplyObject(r);
    r = th_redis(&redis, "RPUSH sfl:batch:%s:results %s", batch, json);
    freeReplyObject(r);
    r = th_redis(&redis, "HINCRBY sfl:batch:%s done 1", batch);
    freeReplyObject(r);
    r = th_redis(&redis, "PUBLISH sfl:batch:%s 1", batch);
    freeReplyObject(r);
}

/* `submit --wait` of streams 1-n (no node runs), its results file in
 * results (also results_path), its batch id in batch. */
static void submit_n(int n, char *results, size_t rlen, char *batch, size_t blen)
{
    char streams[200];
    write_streams("batch.json", n, 0, streams, sizeof(streams));
    submit_start(streams, results, rlen);
    results_path = results;
    cr_assert(th_until(batch_listed, NULL, 30000), "submit put no batch in sfl:batches");
    redisReply *r = th_redis(&redis, "LINDEX sfl:batches 0");
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    snprintf(batch, blen, "%s", r->str);
    freeReplyObject(r);
}

static void submit_three(char *results, size_t rlen, char *batch, size_t blen)
{
    submit_n(3, results, rlen, batch, blen);
}

/* Every client cut off, as a sentinel does when it reconfigures a master:
 * the submitter reconnects. */
static void cut_clients(void)
{
    cr_assert_geq(th_redis_int(&redis, "CLIENT KILL TYPE normal"), 1,
                  "the submitter had no connection to cut");
    freeReplyObject(th_redis(&redis, "CLIENT KILL TYPE pubsub"));
}

/* submit_n's submitter ends, having printed streams 1-n once each. */
static void finish_each_printed_once(const char *results, int n)
{
    submit_finish(60000);
    qresult *q = calloc((size_t)n + 1, sizeof(*q));
    cr_assert_not_null(q);
    load_results(results, q, n);
    for (int id = 1; id <= n; id++)
        cr_expect_eq(q[id].seen, 1, "stream %d printed %d times", id, q[id].seen);
    free(q);
}

/* What a failover does to a batch's results list, with `submit --wait`
 * reading it: the old master had the results of streams 1 and 2 and the
 * submitter printed both; the new master got only stream 1's (asynchronous
 * replication), and its clients are cut off (a sentinel's CLIENT KILL when
 * it reconfigures a master). A node checks stream 3, then stream 2 again,
 * whose entry the new master still held: the list reads 1, 3, 2. Every
 * stream is printed exactly once: 3 is not passed over, 2 not printed
 * twice. */
Test(queue, submit_prints_each_stream_once_across_a_failover)
{
    char results[200], batch[64];
    submit_three(results, sizeof(results), batch, sizeof(batch));

    store_result_of(batch, 1);
    store_result_of(batch, 2);
    cr_assert(th_until(two_printed, NULL, 30000), "submit printed %d of 2 results",
              lines_in(results));

    /* The new master: stream 2's result never reached it. */
    redisReply *r = th_redis(&redis, "RPOP sfl:batch:%s:results", batch);
    freeReplyObject(r);
    r = th_redis(&redis, "HDEL sfl:batch:%s r:2", batch);
    freeReplyObject(r);
    r = th_redis(&redis, "HSET sfl:batch:%s done 1", batch);
    freeReplyObject(r);
    cut_clients();
    store_result_of(batch, 3);
    store_result_of(batch, 2);
    finish_each_printed_once(results, 3);
}

static int one_printed(void *arg)
{
    (void)arg;
    return lines_in(results_path) >= 1;
}

/* The stream ids of the queue's entries of batch (sfl:jobs), ascending, in
 * ids (at most max); how many. */
static int queued_streams(const char *batch, int *ids, int max)
{
    redisReply *r = th_redis(&redis, "XRANGE sfl:jobs - +");
    int n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && n < max; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *b = entry_field(f, "batch"), *json = entry_field(f, "stream");
        if (b && json && strcmp(b, batch) == 0)
            ids[n++] = entry_stream_id(json);
    }
    freeReplyObject(r);
    return n;
}

typedef struct requeued {
    const char *batch;
    int n, ids[300];
    int want; /* entries of the batch on the queue, for entries_queued */
} requeued;

static int batch_requeued(void *arg)
{
    requeued *q = arg;
    q->n = queued_streams(q->batch, q->ids, 300);
    return q->n > 0 && th_redis_int(&redis, "EXISTS sfl:batch:%s", q->batch) == 1;
}

/* Redis loses the batch while `submit --wait` follows it (restarted
 * without persistence, a failover to a replica that never had it): after
 * stream 1's result was printed, everything is gone, and the clients are
 * cut off. The submitter finds the batch gone on its reconnect and puts the
 * streams without a result (2 and 3, not 1) on the queue again, under the
 * same batch id; their results come, and each stream is printed once. */
Test(queue, submit_puts_a_lost_batch_on_the_queue_again)
{
    char results[200], batch[64];
    submit_three(results, sizeof(results), batch, sizeof(batch));
    int ids[4];
    cr_assert_eq(queued_streams(batch, ids, 4), 3, "the batch is not 3 entries on the queue");
    store_result_of(batch, 1);
    cr_assert(th_until(one_printed, NULL, 30000), "submit printed no result");

    freeReplyObject(th_redis(&redis, "FLUSHALL"));
    cut_clients();
    requeued q = {.batch = batch};
    cr_assert(th_until(batch_requeued, &q, 30000),
              "the lost batch was not put on the queue again (%d entries)", q.n);
    cr_assert_eq(q.n, 2, "%d streams queued again, not 2", q.n);
    cr_assert(q.ids[0] == 2 && q.ids[1] == 3, "streams %d and %d queued again, not 2 and 3",
              q.ids[0], q.ids[1]);
    store_result_of(batch, 3);
    store_result_of(batch, 2);
    finish_each_printed_once(results, 3);
}

static int entries_queued(void *arg)
{
    requeued *q = arg;
    q->n = queued_streams(q->batch, q->ids, 300);
    return q->n >= q->want;
}

/* The id of the queue's entry of stream id of batch, in entry (the first,
 * if there are more). */
static void entry_of(const char *batch, int id, char *entry, size_t len)
{
    redisReply *r = th_redis(&redis, "XRANGE sfl:jobs - +");
    entry[0] = '\0';
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && !entry[0]; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *b = entry_field(f, "batch"), *json = entry_field(f, "stream");
        if (b && json && strcmp(b, batch) == 0 && entry_stream_id(json) == id)
            snprintf(entry, len, "%s", r->element[i]->element[0]->str);
    }
    freeReplyObject(r);
    cr_assert(entry[0], "stream %d of batch %s has no entry on the queue", id, batch);
}

static void entry_del(const char *batch, int id)
{
    char entry[48];
    entry_of(batch, id, entry, sizeof(entry));
    cr_assert_eq(th_redis_int(&redis, "XDEL sfl:jobs %s", entry), 1);
}

/* Redis keeps the batch but loses some of its queue entries (the submission
 * is one pipeline of commands, not one script: a failover to a replica that
 * got only part of it, a restart from a snapshot taken during it), and the
 * clients are cut off. Streams 1-5 of a batch, as the new master holds
 * them: 1 has its result (printed) and no entry, as result.lua leaves it;
 * 2 has neither; 3 is pending on a consumer (a node has it, or claims it
 * once idle); 4 was delivered and acknowledged but has no result (no node
 * will read it again); 5 is not yet delivered. On its reconnect the
 * submitter puts 2 and 4, and only those, on the queue again, under the
 * same batch id; their results come, and each stream is printed once. */
Test(queue, submit_puts_lost_entries_of_a_batch_on_the_queue_again)
{
    char results[200], batch[64], entry[48];
    submit_n(5, results, sizeof(results), batch, sizeof(batch));
    requeued q = {.batch = batch, .want = 5};
    cr_assert(th_until(entries_queued, &q, 30000), "the batch is %d entries on the queue", q.n);
    store_result_of(batch, 1);
    cr_assert(th_until(one_printed, NULL, 30000), "submit printed no result");

    entry_del(batch, 1);
    entry_del(batch, 2);
    freeReplyObject(th_redis(&redis, "XGROUP CREATE sfl:jobs sfl-nodes 0"));
    redisReply *r = th_redis(&redis, "XREADGROUP GROUP sfl-nodes gone COUNT 2 STREAMS sfl:jobs >");
    freeReplyObject(r); /* streams 3 and 4 */
    entry_of(batch, 4, entry, sizeof(entry));
    cr_assert_eq(th_redis_int(&redis, "XACK sfl:jobs sfl-nodes %s", entry), 1);
    cut_clients();

    /* 3, 4 and 5 as they were, then 2 and 4 again. */
    q.want = 5;
    cr_assert(th_until(entries_queued, &q, 30000),
              "the lost entries were not put on the queue again (%d entries of the batch)", q.n);
    int want[5] = {3, 4, 5, 2, 4};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(q.ids[i], want[i], "entry %d of the batch is stream %d, not %d", i, q.ids[i],
                     want[i]);
    cr_assert_eq(th_redis_int(&redis, "HGET sfl:batch:%s total", batch), 5,
                 "the batch hash was written anew");
    for (int id = 2; id <= 5; id++)
        store_result_of(batch, id);
    finish_each_printed_once(results, 5);
    cr_assert_eq(queued_streams(batch, q.ids, 300), 5, "streams were put on the queue once more");
}

/* submit_three, its three entries on the queue, stream 1's result printed:
 * the queue as the submitter last read it before a loss. */
static requeued submit_three_one_printed(char *results, size_t rlen, char *batch, size_t blen)
{
    submit_three(results, rlen, batch, blen);
    requeued q = {.batch = batch, .want = 3};
    cr_assert(th_until(entries_queued, &q, 30000), "the batch is %d entries on the queue", q.n);
    store_result_of(batch, 1);
    cr_assert(th_until(one_printed, NULL, 30000), "submit printed no result");
    return q;
}

/* The same with no node ever started (no consumer group: every entry is
 * yet to be delivered): stream 2's entry is lost, 3's is there. */
Test(queue, submit_puts_a_lost_entry_on_the_queue_again_before_any_node)
{
    char results[200], batch[64];
    requeued q = submit_three_one_printed(results, sizeof(results), batch, sizeof(batch));
    entry_del(batch, 2);
    cut_clients();

    q.want = 3;
    cr_assert(th_until(entries_queued, &q, 30000),
              "the lost entry was not put on the queue again (%d entries of the batch)", q.n);
    cr_assert(q.n == 3 && q.ids[0] == 1 && q.ids[1] == 3 && q.ids[2] == 2,
              "the queue holds %d entries of the batch, streams %d %d %d, not 1 3 2", q.n, q.ids[0],
              q.ids[1], q.ids[2]);
    store_result_of(batch, 3);
    store_result_of(batch, 2);
    finish_each_printed_once(results, 3);
}

/* A stream whose entry is gone and whose result is in the batch's hash
 * (r:<id>) is not put on the queue again: that is how the submitter sees a
 * result stored while it read the queue, whose entry went in the same
 * script (result.lua). Stream 2 stands for one (r:2 set, its result pushed
 * to the list only later); stream 3's entry is lost. */
Test(queue, submit_does_not_queue_again_a_stream_with_a_result_in_the_hash)
{
    char results[200], batch[64];
    requeued q = submit_three_one_printed(results, sizeof(results), batch, sizeof(batch));
    entry_del(batch, 1);
    entry_del(batch, 2);
    entry_del(batch, 3);
    cr_assert_eq(th_redis_int(&redis, "HSETNX sfl:batch:%s r:2 1", batch), 1);
    cut_clients();

    q.want = 1;
    cr_assert(th_until(entries_queued, &q, 30000),
              "the lost entry was not put on the queue again (%d entries of the batch)", q.n);
    cr_assert(q.n == 1 && q.ids[0] == 3,
              "the queue holds %d entries of the batch, the first of "
              "stream %d, not one of stream 3",
              q.n, q.ids[0]);
    store_result_of(batch, 2);
    store_result_of(batch, 3);
    finish_each_printed_once(results, 3);
    cr_assert_eq(queued_streams(batch, q.ids, 300), 1, "streams were put on the queue once more");
}

/* The queue is read a page (100 entries) at a time: 250 streams, whose
 * entries of streams 1, 100, 101, 200 and 250 (first, last, at the pages'
 * edges) are lost, are found and put on the queue again, and no other. */
Test(queue, submit_reads_every_page_of_the_queue_for_lost_entries)
{
    char results[200], batch[64];
    submit_n(250, results, sizeof(results), batch, sizeof(batch));
    requeued q = {.batch = batch, .want = 250};
    cr_assert(th_until(entries_queued, &q, 30000), "the batch is %d entries on the queue", q.n);
    int lost[5] = {1, 100, 101, 200, 250};
    for (int i = 0; i < 5; i++)
        entry_del(batch, lost[i]);
    cut_clients();

    cr_assert(th_until(entries_queued, &q, 30000),
              "the lost entries were not put on the queue again (%d entries of the batch)", q.n);
    cr_assert_eq(q.n, 250, "%d entries of the batch on the queue, not 250", q.n);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(q.ids[245 + i], lost[i], "entry %d of the batch is stream %d, not %d", 245 + i,
                     q.ids[245 + i], lost[i]);
    for (int id = 1; id <= 250; id++)
        store_result_of(batch, id);
    finish_each_printed_once(results, 250);
}

static int aof_ready(void *arg)
{
    (void)arg;
    redisReply *r = th_redis(&redis, "INFO persistence");
    int ok = r->str && strstr(r->str, "aof_enabled:1") &&
             strstr(r->str, "aof_rewrite_in_progress:0") &&
             strstr(r->str, "aof_rewrite_scheduled:0");
    freeReplyObject(r);
    return ok;
}

/* The commands of Redis's append-only file (the .incr.aof files in
 * appendonlydir: what a replica gets too), one a line, arguments space
 * separated. */
static char *aof_commands(void)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "cat %s/appendonlydir/*.incr.aof", redis.dir);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap), line[4096];
    cr_assert_not_null(out);
    out[0] = '\0';
    int first = 1;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '$')
            continue;
        const char *add = line[0] == '*' ? "\n" : line;
        if (line[0] == '*' && first) {
            first = 0;
            continue;
        }
        size_t n = strlen(add) + 2;
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            out = realloc(out, cap);
            cr_assert_not_null(out);
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", add, line[0] == '*' ? "" : " ");
    }
    pclose(f);
    return out;
}

/* What makes a stream's result and its entry's deletion one in every Redis
 * that holds either: result.lua is one script, and Redis hands a script's
 * writes to its replicas and its append-only file as one MULTI/EXEC, which
 * a replica applies whole or not at all (also when the link breaks in the
 * middle of it) and which a truncated file loses whole. So a failover or a
 * restart never leaves an entry acknowledged or deleted while losing its
 * result: only the submission's own commands (a pipeline) can be lost in
 * part, which `submit --wait` makes good (the tests above). A node checks a
 * stream; in the append-only file, its XACK and XDEL sit in the same
 * MULTI/EXEC as its result's HSETNX and RPUSH. */
Test(queue, result_and_entry_deletion_reach_replicas_as_one_transaction)
{
    freeReplyObject(th_redis(&redis, "CONFIG SET appendonly yes"));
    cr_assert(th_until(aof_ready, NULL, 30000), "Redis's append-only file never got ready");
    node_start(0, &(node_opts){0});
    char batch[100];
    post_checks(&nodes[0], "[{\"id\": 7, \"url\": \"http://x/7.ts\"}]", batch, sizeof(batch));
    cr_assert(batch_done(&nodes[0], batch, 1, 20000), "the batch did not end in 20 s");
    char *aof = aof_commands();
    char *xdel = strstr(aof, "\nXDEL sfl:jobs ");
    cr_assert_not_null(xdel, "no XDEL of the entry in the append-only file:\n%s", aof);
    *xdel = '\0';
    char *multi = strstr(aof, "\nMULTI "), *in = NULL;
    for (char *at = multi; at; at = strstr(at + 1, "\nMULTI "))
        in = at; /* the last MULTI before the XDEL */
    cr_assert_not_null(in, "the XDEL is in no MULTI:\n%s", aof);
    cr_assert_null(strstr(in, "\nEXEC "), "the XDEL is after the EXEC of its MULTI:\n%s", in);
    char want[200];
    snprintf(want, sizeof(want), "\nHSETNX sfl:batch:%s r:7 1 ", batch);
    cr_assert_not_null(strstr(in, want), "the result's HSETNX is not in the XDEL's MULTI:\n%s", in);
    snprintf(want, sizeof(want), "\nRPUSH sfl:batch:%s:results ", batch);
    cr_assert_not_null(strstr(in, want), "the result's RPUSH is not in the XDEL's MULTI:\n%s", in);
    cr_assert_not_null(strstr(in, "\nXACK sfl:jobs sfl-nodes "), "no XACK in the MULTI:\n%s", in);
    *xdel = '\n';
    cr_assert_not_null(strstr(xdel, "\nEXEC "), "the XDEL's MULTI has no EXEC");
    free(aof);
}

/* A node killed -9 while it holds entries: another node claims them (every
 * stream gets its one result), then the dead node's consumer leaves the
 * group. A node stopped cleanly with nothing pending leaves the group at
 * once. */
Test(queue, stopped_nodes_leave_the_group_after_their_work_is_claimed)
{
    node_opts o = {.global_limit = 2,
                   .node = "{\"claim_idle\": 1, \"shutdown_grace\": 1, \"lookahead\": 2}",
                   .check = "{\"command\": [\"sleep\", \"1\"], \"parser\": \"none\", "
                            "\"timeout\": 10}"};
    node_start(0, &o);
    node_start(1, &o);
    char streams[200], results[200];
    write_streams("streams.json", 16, 0, streams, sizeof(streams));
    submit_start(streams, results, sizeof(results));
    cr_assert(th_until(has_pending, nodes[0].id, 10000), "q1 never held an entry");
    kill(nodes[0].pid, SIGSTOP); /* what it holds stays put while we look */
    int held[16], nheld = held_streams(nodes[0].id, held, 16);
    kill(nodes[0].pid, SIGKILL);
    waitpid(nodes[0].pid, NULL, 0);
    nodes[0].pid = 0;
    int64_t killed = th_now_ms();
    cr_assert_gt(nheld, 0);

    /* Watch the group until the batch is done: q1 may leave it only with
     * nothing pending. */
    int64_t gone_at = -1, drained_at = -1, done_at = -1;
    while (done_at < 0 || (gone_at < 0 && th_now_ms() - killed < 40000)) {
        long long p = -1;
        int listed = consumer_listed(nodes[0].id, &p);
        int64_t t = th_now_ms() - killed;
        if (listed && p == 0 && drained_at < 0)
            drained_at = t;
        if (!listed && gone_at < 0)
            gone_at = t;
        int st;
        if (done_at < 0 && waitpid(others[0], &st, WNOHANG) == others[0]) {
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "submit exited with status %d", st);
            others[0] = 0;
            done_at = t;
        }
        cr_assert(done_at >= 0 || t < 60000, "submit --wait did not end in 60 s");
        usleep(20000);
    }
    qresult r[17];
    load_results(results, r, 16);
    for (int id = 1; id <= 16; id++) {
        cr_assert_eq(r[id].seen, 1, "stream %d has %d results", id, r[id].seen);
        cr_assert_str_eq(r[id].status, "OK", "stream %d: %s", id, r[id].status);
    }
    for (int i = 0; i < nheld; i++)
        cr_assert_str_eq(r[held[i]].node, nodes[1].id,
                         "stream %d, pending on q1 when it died, was checked by '%s'", held[i],
                         r[held[i]].node);
    fprintf(stderr,
            "queue: q1 killed holding %d entries; batch done %lld ms later; q1's consumer seen "
            "with nothing pending at %lld ms, gone at %lld ms; XLEN %lld\n",
            nheld, (long long)done_at, (long long)drained_at, (long long)gone_at,
            th_redis_int(&redis, "XLEN sfl:jobs"));
    cr_assert_geq(gone_at, 0, "the killed node's consumer is still in the group after 40 s");
    cr_assert(consumer_listed(nodes[1].id, NULL), "the live node's consumer went too");
    cr_assert_eq(th_redis_int(&redis, "XLEN sfl:jobs"), 0);

    /* A clean stop with nothing pending: gone when the node has exited. */
    kill(nodes[1].pid, SIGTERM);
    int st = th_wait(nodes[1].pid, 15000);
    nodes[1].pid = 0;
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "q2 exit status %d", st);
    cr_assert(!consumer_listed(nodes[1].id, NULL),
              "q2 stopped with nothing pending and is still a consumer");
}

/* sfl_queue_depth counts the entries no node took, also when Redis cannot
 * tell the group's lag (XINFO GROUPS answers nil once the last entry
 * delivered has been deleted while an older one is still in the stream). */
Test(queue, depth_counts_undelivered_entries_after_deletes)
{
    node_opts o = {.global_limit = 1,
                   .node = "{\"shutdown_grace\": 1, \"lookahead\": 1}",
                   .check = "{\"command\": [\"sleep\", \"20\"], \"parser\": \"none\", "
                            "\"timeout\": 30}"};
    node_start(0, &o);
    char batch[100];
    post_checks(
        &nodes[0],
        "[{\"id\": 1, \"url\": \"http://x/1.ts\"}, {\"id\": 2, \"url\": \"http://x/2.ts\"},"
        " {\"id\": 3, \"url\": \"http://x/3.ts\"}, {\"id\": 4, \"url\": \"http://x/4.ts\"},"
        " {\"id\": 5, \"url\": \"http://x/5.ts\"}, {\"id\": 6, \"url\": \"http://x/6.ts\"}]",
        batch, sizeof(batch));
    long long held = 0;
    int64_t until = th_now_ms() + 10000;
    while ((!consumer_listed(nodes[0].id, &held) || held < 2) && th_now_ms() < until)
        usleep(20000);
    cr_assert_eq(held, 2, "q1 holds %lld entries, not 2", held);
    /* Another consumer takes two more and is done with the newer one. */
    redisReply *r = th_redis(&redis, "XREADGROUP GROUP sfl-nodes other COUNT 2 STREAMS sfl:jobs >");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->element[0]->element[1]->elements == 2);
    char last[48];
    snprintf(last, sizeof(last), "%s", r->element[0]->element[1]->element[1]->element[0]->str);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "XACK sfl:jobs sfl-nodes %s", last), 1);
    cr_assert_eq(th_redis_int(&redis, "XDEL sfl:jobs %s", last), 1);
    r = th_redis(&redis, "XINFO GROUPS sfl:jobs");
    const redisReply *g = r->element[0], *lag = NULL;
    for (size_t i = 0; i + 1 < g->elements; i += 2)
        if (strcmp(g->element[i]->str, "lag") == 0)
            lag = g->element[i + 1];
    cr_assert_not_null(lag);
    int lag_nil = lag->type == REDIS_REPLY_NIL;
    freeReplyObject(r);

    th_http_resp m = get(&nodes[0], "/metrics");
    double depth = sample(m.body, "sfl_queue_depth"), pending = sample(m.body, "sfl_queue_pending");
    fprintf(stderr, "queue: XLEN %lld, lag %s; sfl_queue_depth %g, sfl_queue_pending %g\n",
            th_redis_int(&redis, "XLEN sfl:jobs"), lag_nil ? "nil" : "a number", depth, pending);
    cr_assert_eq(pending, 3, "pending: %g", pending);
    cr_assert_eq(depth, 2, "2 of 6 entries undelivered, sfl_queue_depth says %g", depth);
    th_http_free(&m);
}

/*--- The lease-wait histogram ----------------------------------------------*/

/* Waits until the account's leases number want. */
typedef struct zc {
    long long account, want;
} zc;

static int zcard_is(void *arg)
{
    zc *z = arg;
    return th_redis_int(&redis, "ZCARD sfl:{a:%lld}:leases", z->account) == z->want;
}

/* The account's one slot is held by someone else (`sflimit exec`) for the
 * whole test: four streams wait acquire_timeout (3 s) and end NoSlot. Their
 * waits are in the histogram: count 4, each in the bucket (2.5, 5] where the
 * true wait lies, sum between 4 x 3 s and 4 x the time the batch took. */
Test(queue, noslot_waits_are_in_the_histogram)
{
    th_account(&redis, 7, 1);
    char hconf[256], text[256], herr[200];
    snprintf(text, sizeof(text), "{\"node_id\": \"holder\", \"redis\": {\"url\": \"%s\"}}\n",
             redis.url);
    th_write_file(dir, "holder.json", text, hconf, sizeof(hconf));
    snprintf(herr, sizeof(herr), "%s/holder.err", dir);
    const char *hargv[] = {SFL_BIN, "exec", "-c", hconf, "-a", "7", "--", "sleep", "60", NULL};
    others[1] = th_spawn((char *const *)hargv, NULL, herr);
    zc one = {7, 1};
    cr_assert(th_until(zcard_is, &one, 10000), "the holder did not take account 7's slot");

    node_opts o = {.lease = ", \"acquire_timeout\": 3"};
    node_start(0, &o);
    th_http_resp m = get(&nodes[0], "/metrics");
    cr_assert_eq(sample(m.body, "sfl_lease_wait_seconds_count"), 0);
    th_http_free(&m);

    char batch[100];
    int64_t t0 = th_now_ms();
    post_checks(&nodes[0],
                "[{\"id\": 1, \"url\": \"http://127.0.0.1:9/1.ts\", \"m3u_account\": 7},"
                " {\"id\": 2, \"url\": \"http://127.0.0.1:9/2.ts\", \"m3u_account\": 7},"
                " {\"id\": 3, \"url\": \"http://127.0.0.1:9/3.ts\", \"m3u_account\": 7},"
                " {\"id\": 4, \"url\": \"http://127.0.0.1:9/4.ts\", \"m3u_account\": 7}]",
                batch, sizeof(batch));
    cr_assert(batch_done(&nodes[0], batch, 4, 20000), "the batch did not end in 20 s");
    double took = (th_now_ms() - t0) / 1000.0;

    m = get(&nodes[0], "/metrics");
    double count = sample(m.body, "sfl_lease_wait_seconds_count");
    double sum = sample(m.body, "sfl_lease_wait_seconds_sum");
    double noslot = sample(m.body, "sfl_checks_total{status=\"NoSlot\"}");
    fprintf(stderr, "queue: 4 NoSlot after %.3f s: count %g, sum %.3f s (mean %.3f s)\n", took,
            count, sum, count > 0 ? sum / count : 0);
    cr_assert_eq(noslot, 4, "NoSlot results: %g\n%s", noslot, m.body);
    cr_assert_lt(took, 5.0, "the batch took %.3f s, past the bucket the test expects", took);
    cr_assert_eq(count, 4, "NoSlot waits observed: %g of 4", count);
    double below = sample(m.body, "sfl_lease_wait_seconds_bucket{le=\"2.5\"}");
    double within = sample(m.body, "sfl_lease_wait_seconds_bucket{le=\"5\"}");
    fprintf(stderr, "queue: buckets le=2.5 %g, le=5 %g\n", below, within);
    cr_assert_eq(below, 0, "a NoSlot wait of 3 s or more counted at or below 2.5 s");
    cr_assert_eq(within, 4, "NoSlot waits in (2.5, 5]: %g of 4", within);
    cr_assert(sum >= 4 * 3.0 && sum <= 4 * took, "sum %.3f s outside [12, %.3f]", sum, 4 * took);
    th_http_free(&m);
}

/* A check that runs for long: its wait is in the histogram as soon as it has
 * its slot, not when it ends. */
Test(queue, wait_is_observed_at_the_grant)
{
    th_account(&redis, 7, 1);
    node_opts o = {.check = "{\"command\": [\"sleep\", \"30\"], \"parser\": \"none\", "
                            "\"timeout\": 60}"};
    node_start(0, &o);
    char batch[100];
    post_checks(&nodes[0],
                "[{\"id\": 1, \"url\": \"http://127.0.0.1:9/1.ts\", \"m3u_account\": 7}]", batch,
                sizeof(batch));
    zc one = {7, 1};
    cr_assert(th_until(zcard_is, &one, 10000), "the check never got its slot");
    int64_t until = th_now_ms() + 5000;
    th_http_resp m = {0};
    for (;;) {
        m = get(&nodes[0], "/metrics");
        if (strstr(m.body, "\nsfl_checks_running 1\n") || th_now_ms() > until)
            break;
        th_http_free(&m);
        usleep(20000);
    }
    cr_assert(strstr(m.body, "\nsfl_checks_running 1\n"), "the check is not running:\n%s", m.body);
    double count = sample(m.body, "sfl_lease_wait_seconds_count");
    double sum = sample(m.body, "sfl_lease_wait_seconds_sum");
    fprintf(stderr, "queue: check running, histogram count %g, sum %.4f s\n", count, sum);
    cr_assert_eq(count, 1, "the running check's wait is not in the histogram (count %g)", count);
    cr_assert_lt(sum, 1.0, "a wait of %.3f s for a free slot", sum);
    cr_assert_eq(sample(m.body, "sfl_lease_wait_seconds_bucket{le=\"1\"}"), 1);
    th_http_free(&m);
}

/*--- README and /metrics ---------------------------------------------------*/

/* The metric names README.md's metrics table lists (rows "| `sfl_...` |"),
 * each once, into names (NUL-separated, count in *n). */
static char *readme_metrics(int *n)
{
    char *text = th_read_file(SFL_SOURCE_DIR "/README.md");
    cr_assert_not_null(text, "no README.md");
    size_t cap = 4096, k = 0;
    char *names = calloc(1, cap);
    *n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "| `sfl_", 7) != 0)
            continue;
        const char *s = line + 3;
        size_t len = strcspn(s, "{`");
        cr_assert_lt(k + len + 1, cap);
        memcpy(names + k, s, len);
        names[k + len] = '\0';
        k += len + 1;
        (*n)++;
    }
    free(text);
    return names;
}

static int listed_in(const char *names, int n, const char *name)
{
    const char *p = names;
    for (int i = 0; i < n; i++, p += strlen(p) + 1)
        if (strcmp(p, name) == 0)
            return 1;
    return 0;
}

/* Every family /metrics serves (its "# TYPE" line) has a row in README's
 * metrics table, and every row is served. */
Test(queue, readme_lists_every_metric)
{
    th_account(&redis, 3, 2);
    node_start(0, &(node_opts){0});
    th_http_resp m = get(&nodes[0], "/metrics");
    int n = 0;
    char *names = readme_metrics(&n);
    cr_assert_gt(n, 0, "README.md has no metrics table (rows \"| `sfl_...` |\")");
    int served = 0;
    char missing[1024] = "";
    char *copy = strdup(m.body);
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (sscanf(line, "# TYPE %127s", name) != 1)
            continue;
        served++;
        if (!listed_in(names, n, name))
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s", name);
    }
    free(copy);
    char stale[1024] = "";
    const char *p = names;
    for (int i = 0; i < n; i++, p += strlen(p) + 1) {
        char type[160];
        snprintf(type, sizeof(type), "# TYPE %s ", p);
        if (!strstr(m.body, type))
            snprintf(stale + strlen(stale), sizeof(stale) - strlen(stale), " %s", p);
    }
    fprintf(stderr, "queue: /metrics serves %d families, README lists %d\n", served, n);
    cr_assert_str_eq(missing, "", "served but not in README:%s", missing);
    cr_assert_str_eq(stale, "", "in README but not served:%s", stale);
    free(names);
    th_http_free(&m);
}

/* `promtool check metrics` (Debian's prometheus package) takes /metrics as
 * it is, lint included. Skipped where promtool is not installed, unless
 * SFL_REQUIRE_PROMTOOL=1 (CI sets it). */
Test(queue, promtool_accepts_metrics)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        const char *req = getenv("SFL_REQUIRE_PROMTOOL");
        if (req && strcmp(req, "1") == 0)
            cr_assert_fail("promtool not installed and SFL_REQUIRE_PROMTOOL=1 (Debian: apt-get "
                           "install prometheus)");
        cr_skip_test("promtool is not installed (apt-get install prometheus)");
    }
    th_account(&redis, 3, 2);
    node_start(0, &(node_opts){0});
    char batch[100];
    post_checks(&nodes[0],
                "[{\"id\": 1, \"url\": \"http://127.0.0.1:9/1.ts\", \"m3u_account\": 3}]", batch,
                sizeof(batch));
    cr_assert(batch_done(&nodes[0], batch, 1, 10000));
    th_http_resp m = get(&nodes[0], "/metrics");
    char path[200], out[200], cmd[512];
    th_write_file(dir, "metrics.txt", m.body, path, sizeof(path));
    snprintf(out, sizeof(out), "%s/promtool.out", dir);
    snprintf(cmd, sizeof(cmd), "promtool check metrics <%s >%s 2>&1", path, out);
    int st = system(cmd);
    char *said = file_text(out);
    fprintf(stderr, "queue: promtool check metrics: status %d, said: %s\n", st, said);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool: %s\n%s", said, m.body);
    cr_assert_str_eq(said, "", "promtool has remarks");
    free(said);
    th_http_free(&m);
}
