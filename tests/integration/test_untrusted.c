/* test_untrusted.c - what a node does with input it must not trust, as an
 * outside tester would try it: the real `sflimit` against a real
 * redis-server, the harness's HTTP client, redis-cli-like writes by hand.
 *
 *   - URLs a check may not open (file:///etc/passwd, "-", "pipe:0",
 *     FILE:///x): POST /v1/checks answers 400 naming the stream and changes
 *     nothing; a queue entry holding one (put there by hand with XADD, as an
 *     older node could) gets an Error result naming why and is never run.
 *     The check command of these nodes writes the stream id to a marker
 *     file: the proof of what ran.
 *   - Names with control bytes: refused by PUT /v1/accounts/{id}; written
 *     into Redis by hand, printed escaped by `status` and `accounts list`
 *     (valid UTF-8 with --json); from Dispatcharr, stored escaped.
 *   - Bytes that are not UTF-8 in a request path or in Redis: every JSON
 *     answer is still valid UTF-8 (checked with iconv, parsed with cJSON). */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <iconv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "untrusted-test-token"

static sfl_test_redis redis;
static sfl_test_dispatcharr fake;
static char dir[128], ran_path[256], node_err[256];
static pid_t node_pid;
static int node_port;

static void setup(void)
{
    th_clear_env();
    node_pid = 0;
    memset(&fake, 0, sizeof(fake));
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    snprintf(ran_path, sizeof(ran_path), "%s/ran", dir);
}

static void teardown(void)
{
    if (node_pid > 0 && waitpid(node_pid, NULL, WNOHANG) == 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    node_pid = 0;
    th_dispatcharr_stop(&fake);
    th_redis_stop(&redis);
}

TestSuite(untrusted, .init = setup, .fini = teardown, .timeout = 120);

/*--- Helpers ---------------------------------------------------------------*/

/* 1 when the n bytes are valid UTF-8, by glibc's iconv (not sfl's code). */
static int utf8_valid(const char *s, size_t n)
{
    iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
    cr_assert_neq(cd, (iconv_t)-1, "iconv_open");
    size_t cap = 4 * n + 4, inleft = n, outleft = cap;
    char *out = malloc(cap), *in = (char *)s, *o = out;
    cr_assert_not_null(out);
    size_t r = iconv(cd, &in, &inleft, &o, &outleft);
    iconv_close(cd);
    free(out);
    return r != (size_t)-1 && inleft == 0;
}

/* A config for the CLI and the node: the check command writes the stream
 * id to the marker file. */
static void write_config(char *path, size_t len)
{
    char text[1024];
    snprintf(
        text, sizeof(text),
        "{\"node_id\": \"u1\",\n"
        " \"redis\": {\"url\": \"%s\"},\n"
        " \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"%s\"},\n"
        " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500%s},\n"
        " \"concurrent_streams\": {\"stagger_delay\": 0},\n"
        " \"stream_analysis\": {\"retries\": 0},\n"
        " \"check\": {\"command\": [\"sh\", \"-c\", \"echo {id} >> %s\"], \"parser\": \"none\","
        " \"timeout\": 10}}\n",
        redis.url, node_port, TOKEN, th_wrap_lease(), ran_path);
    th_write_file(dir, "sflimit.json", text, path, len);
}

static void node_start(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char config[256];
        node_port = th_free_port();
        write_config(config, sizeof(config));
        snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, attempt);
        node_pid = th_node_start(config, node_port, node_err, &redis, "u1");
        if (node_pid)
            return;
    }
    cr_assert_fail("the node never got a port");
}

static th_http_resp call(const char *method, const char *path, const char *body)
{
    th_http_resp r;
    cr_assert_eq(th_http(node_port, TOKEN, method, path, body, &r), 0, "%s %s: no answer", method,
                 path);
    return r;
}

/* The stream ids the check command ran for, one a line ("" when none). */
static char *ran(void)
{
    char *t = th_read_file(ran_path);
    return t ? t : strdup("");
}

/* Every key, with its value (DUMP) and whether it has a TTL, but the
 * node's own registry key, which it rewrites every 2 s. Caller frees. */
static char *snapshot(void)
{
    redisReply *keys = th_redis(&redis, "KEYS *");
    cr_assert_eq(keys->type, REDIS_REPLY_ARRAY);
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(1, cap);
    cr_assert_not_null(out);
    for (size_t i = 0; i < keys->elements; i++)
        for (size_t j = i + 1; j < keys->elements; j++)
            if (strcmp(keys->element[i]->str, keys->element[j]->str) > 0) {
                redisReply *t = keys->element[i];
                keys->element[i] = keys->element[j];
                keys->element[j] = t;
            }
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        if (strncmp(k, "sfl:node:", 9) == 0)
            continue;
        redisReply *d = th_redis(&redis, "DUMP %s", k);
        long long pttl = th_redis_int(&redis, "PTTL %s", k);
        n += (size_t)snprintf(out + n, cap - n, "%s ttl=%s ", k, pttl >= 0 ? "yes" : "no");
        for (size_t b = 0; d->type == REDIS_REPLY_STRING && b < d->len && n + 3 < cap; b++)
            n += (size_t)snprintf(out + n, cap - n, "%02x", (unsigned char)d->str[b]);
        n += (size_t)snprintf(out + n, cap - n, "\n");
        freeReplyObject(d);
    }
    freeReplyObject(keys);
    return out;
}

typedef struct run_result {
    int code;
    char *out, *err;
} run_result;

/* Runs `sflimit <args...> -c config`; the caller frees out and err. */
static run_result run_cli(const char *const *args)
{
    char config[256];
    write_config(config, sizeof(config));
    const char *argv[16] = {SFL_BIN};
    int k = 1;
    for (int i = 0; args[i] && k < 13; i++)
        argv[k++] = args[i];
    argv[k++] = "-c";
    argv[k++] = config;
    argv[k] = NULL;
    th_run run;
    th_run_start(&run, dir, argv);
    int st = th_run_wait(&run, 30000); /* fails the test if it does not end */
    run_result r = {th_exit_code(st), th_read_file(run.out), th_read_file(run.err)};
    cr_assert(r.out && r.err);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

/*--- URLs a check may not open ---------------------------------------------*/

static int marker_has_one_line(void *arg)
{
    (void)arg;
    char *t = ran();
    int ok = strcmp(t, "900\n") == 0;
    free(t);
    return ok;
}

Test(untrusted, post_checks_refuses_urls_it_may_not_open)
{
    node_start();
    char *before = snapshot();
    static const struct {
        const char *body, *names, *why;
    } bad[] = {
        {"[{\"id\": 1, \"url\": \"file:///etc/passwd\"}]", "[0].url (stream 1)",
         "scheme \"file\" is not allowed"},
        {"[{\"id\": 2, \"url\": \"-\", \"m3u_account\": 3}]", "[0].url (stream 2)",
         "has no scheme://"},
        {"[{\"id\": 3, \"url\": \"pipe:0\"}]", "[0].url (stream 3)", "has no scheme://"},
        {"[{\"id\": 4, \"url\": \"FILE:///x\"}]", "[0].url (stream 4)",
         "scheme \"FILE\" is not allowed"},
        {"{\"streams\": [{\"id\": 5, \"url\": \"http://127.0.0.1:9/5.ts\"},"
         " {\"id\": 6, \"url\": \"rtmp://127.0.0.1/live/6\"},"
         " {\"id\": 7, \"url\": \"file:///etc/shadow\"}]}",
         "streams[2].url (stream 7)", "check.schemes: http, https, rtmp, rtsp, udp, rtp, srt"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        th_http_resp r = call("POST", "/v1/checks", bad[i].body);
        const char *err = cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "error"));
        cr_expect_eq(r.status, 400, "%s: %d %s", bad[i].body, r.status, r.body);
        cr_expect(err && strstr(err, bad[i].names) && strstr(err, bad[i].why),
                  "%s: the error does not name %s and %s: %s", bad[i].body, bad[i].names,
                  bad[i].why, r.body);
        cr_expect(!err || !strstr(err, "/etc/"), "the error echoes the URL: %s", err);
        th_http_free(&r);
    }
    /* The node reads the queue every 2 s at the latest: give it time to
     * run anything that got through. */
    usleep(2500000);
    char *after = snapshot();
    cr_expect_str_eq(after, before, "refused batches changed Redis");
    char *t = ran();
    cr_expect_str_eq(t, "", "the check command ran for streams: %s", t);
    free(t);
    free(before);
    free(after);

    /* The control: an allowed URL is taken and its check runs. */
    th_http_resp r =
        call("POST", "/v1/checks", "[{\"id\": 900, \"url\": \"http://127.0.0.1:9/x\"}]");
    cr_assert_eq(r.status, 202, "%d %s", r.status, r.body);
    th_http_free(&r);
    cr_assert(th_until(marker_has_one_line, NULL, 15000), "the allowed stream did not run");
}

static int batch_done(void *arg)
{
    return th_redis_int(&redis, "HGET sfl:batch:%s done", (const char *)arg) >= 5;
}

/* An older node (or anyone with redis-cli) puts streams with such URLs on
 * the queue: they get a result with status Error, naming why, and never
 * run; the allowed one beside them does. */
Test(untrusted, queue_entry_with_refused_url_gets_an_error_result)
{
    node_start();
    const char *batch = "20260101-badurls00001";
    static const struct {
        long long id;
        const char *url, *why;
    } entries[] = {
        {1, "file:///etc/passwd", "scheme \"file\" is not allowed"},
        {2, "-", "has no scheme://"},
        {3, "pipe:0", "has no scheme://"},
        {4, "FILE:///x", "scheme \"FILE\" is not allowed"},
        {5, "http://127.0.0.1:9/5.ts", NULL},
    };
    freeReplyObject(
        th_redis(&redis, "HSET sfl:batch:%s total 5 done 0 created 2026-01-01T00:00:00Z", batch));
    for (size_t i = 0; i < 5; i++) {
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"id\":%lld,\"url\":\"%s\",\"m3u_account\":null,\"priority\":0}", entries[i].id,
                 entries[i].url);
        redisReply *r = th_redis(&redis, "XADD sfl:jobs * batch %s stream %s", batch, json);
        cr_assert_eq(r->type, REDIS_REPLY_STRING, "XADD: %s", r->str ? r->str : "?");
        freeReplyObject(r);
    }
    freeReplyObject(th_redis(&redis, "PUBLISH sfl:jobs:new %s", batch));
    cr_assert(th_until(batch_done, (void *)batch, 20000), "the batch has %lld of 5 results",
              th_redis_int(&redis, "HGET sfl:batch:%s done", batch));

    char path[128];
    snprintf(path, sizeof(path), "/v1/checks/%s", batch);
    th_http_resp r = call("GET", path, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const cJSON *results = cJSON_GetObjectItem(r.json, "results");
    cr_assert_eq(cJSON_GetArraySize(results), 5, "%s", r.body);
    for (size_t i = 0; i < 5; i++) {
        const cJSON *res = NULL, *it;
        cJSON_ArrayForEach(it, results)
        {
            if (cJSON_GetNumberValue(cJSON_GetObjectItem(it, "stream_id")) == entries[i].id)
                res = it;
        }
        cr_assert_not_null(res, "no result for stream %lld: %s", entries[i].id, r.body);
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(res, "status"));
        const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(res, "error"));
        if (entries[i].why) {
            cr_expect_str_eq(status ? status : "?", "Error", "stream %lld", entries[i].id);
            cr_expect(error && strncmp(error, "not checked: URL ", 17) == 0 &&
                          strstr(error, entries[i].why),
                      "stream %lld: error %s", entries[i].id, error ? error : "null");
        } else {
            cr_expect_str_eq(status ? status : "?", "OK", "stream %lld: %s", entries[i].id,
                             error ? error : "");
        }
    }
    th_http_free(&r);
    char *t = ran();
    cr_expect_str_eq(t, "5\n", "the check command ran for streams: %s", t);
    free(t);
    /* Every entry acknowledged: nothing pending, nothing for another node. */
    redisReply *p = th_redis(&redis, "XPENDING sfl:jobs sfl-nodes");
    cr_assert_eq(p->type, REDIS_REPLY_ARRAY);
    cr_expect_eq(p->element[0]->integer, 0, "%lld entries still pending", p->element[0]->integer);
    freeReplyObject(p);
}

/*--- Names -----------------------------------------------------------------*/

Test(untrusted, put_account_refuses_names_with_control_bytes)
{
    node_start();
    th_account(&redis, 5, 2);
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:5}:conf name Before"));
    char *before = snapshot();
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"{\"max_streams\": 3, \"name\": \"\\u001b[31mred\"}", "U+001B at byte 0"},
        {"{\"max_streams\": 3, \"name\": \"ding\\u0007\"}", "U+0007 at byte 4"},
        {"{\"max_streams\": 3, \"name\": \"a\\r\\nb\"}", "U+000D at byte 1"},
        {"{\"max_streams\": 3, \"name\": \"c1 \\u009b2J\"}", "U+009B at byte 3"},
        {"{\"max_streams\": 3, \"name\": \"x\xff\xfe\"}", "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        th_http_resp r = call("PUT", "/v1/accounts/5", bad[i].body);
        const char *err = cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "error"));
        cr_expect_eq(r.status, 400, "%s: %d %s", bad[i].body, r.status, r.body);
        cr_expect(err && strncmp(err, "name: ", 6) == 0 && strstr(err, bad[i].why),
                  "%s: the error does not name the field and %s: %s", bad[i].body, bad[i].why,
                  r.body);
        cr_expect(utf8_valid(r.body, strlen(r.body)), "not UTF-8: %s", r.body);
        th_http_free(&r);
    }
    char *after = snapshot();
    cr_expect_str_eq(after, before, "refused PUTs changed Redis");
    free(before);
    free(after);
    th_http_resp r = call("PUT", "/v1/accounts/5", "{\"max_streams\": 3, \"name\": \"Caf\u00e9\"}");
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);
}

/* Redis holds whatever was written into it by hand: `status` and `accounts
 * list` print it escaped (no control byte reaches the terminal), --json
 * and GET /v1/accounts as valid UTF-8 JSON. */
Test(untrusted, names_written_into_redis_by_hand_are_printed_escaped)
{
    th_account(&redis, 9, 2);
    th_account(&redis, 10, 1);
    const char evil[] = "\x1b[31mEvil\x07\r\n";
    const char not_utf8[] = "caf\xc3\xa9 \xff";
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:9}:conf name %b", evil, sizeof(evil) - 1));
    freeReplyObject(
        th_redis(&redis, "HSET sfl:{a:10}:conf name %b", not_utf8, sizeof(not_utf8) - 1));
    /* A holder written by hand too, its node and stream with control bytes. */
    redisReply *t = th_redis(&redis, "TIME");
    long long now_ms = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    freeReplyObject(th_redis(&redis, "ZADD sfl:{a:9}:leases %lld hand:1", now_ms + 60000));
    char holder[256];
    snprintf(holder, sizeof(holder),
             "{\"node\":\"n\\u001b[2J\",\"stream\":\"s\\r\",\"since_ms\":%lld,\"fence\":1}",
             now_ms);
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:9}:holders hand:1 %s", holder));

    const char *const cmds[][3] = {{"status", NULL}, {"accounts", "list", NULL}};
    for (size_t c = 0; c < 2; c++) {
        run_result r = run_cli(cmds[c]);
        cr_assert_eq(r.code, 0, "%s: exit %d: %s", cmds[c][0], r.code, r.err);
        for (const char *q = r.out; *q; q++)
            cr_expect((unsigned char)*q >= 0x20 || *q == '\n', "%s: a raw byte 0x%02x in:\n%s",
                      cmds[c][0], (unsigned char)*q, r.out);
        cr_expect(strstr(r.out, "\\x1b[31mEvil\\x07\\x0d\\x0a"), "%s:\n%s", cmds[c][0], r.out);
        cr_expect(strstr(r.out, "caf\xc3\xa9 \\xff"), "%s:\n%s", cmds[c][0], r.out);
        cr_expect(strstr(r.out, "n\\x1b[2J/s\\x0d"), "%s: the holder:\n%s", cmds[c][0], r.out);
        cr_expect(utf8_valid(r.out, strlen(r.out)), "%s: not UTF-8:\n%s", cmds[c][0], r.out);
        run_free(&r);
    }

    const char *json_cmd[] = {"status", "--json", NULL};
    run_result r = run_cli(json_cmd);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect(utf8_valid(r.out, strlen(r.out)), "status --json is not UTF-8: %s", r.out);
    cJSON *doc = cJSON_Parse(r.out);
    cr_assert_not_null(doc, "status --json is not JSON: %s", r.out);
    const cJSON *a;
    int seen = 0;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(doc, "accounts"))
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(a, "name"));
        double id = cJSON_GetNumberValue(cJSON_GetObjectItem(a, "id"));
        if (id == 9 && name && strcmp(name, evil) == 0)
            seen |= 1; /* control bytes travel escaped inside JSON */
        if (id == 10 && name && strcmp(name, "caf\xc3\xa9 \xef\xbf\xbd") == 0)
            seen |= 2; /* the stray byte is U+FFFD */
    }
    cr_expect_eq(seen, 3, "names in status --json: %s", r.out);
    cJSON_Delete(doc);
    run_free(&r);

    node_start();
    th_http_resp h = call("GET", "/v1/accounts", NULL);
    cr_expect_eq(h.status, 200);
    cr_expect(utf8_valid(h.body, strlen(h.body)), "GET /v1/accounts is not UTF-8: %s", h.body);
    cr_expect_not_null(h.json, "GET /v1/accounts is not JSON: %s", h.body);
    th_http_free(&h);
}

/* One odd name from Dispatcharr does not stop the sync: it is stored with
 * its control bytes escaped, the other accounts as they are. */
Test(untrusted, dispatcharr_names_are_stored_escaped)
{
    th_dispatcharr_start(
        &fake, dir,
        "[{\"id\": 7, \"name\": \"\\u001b[31mRed\\u0007\", \"max_streams\": 2, "
        "\"is_active\": true},"
        " {\"id\": 8, \"name\": \"Plain\", \"max_streams\": 1, \"is_active\": true}]",
        "Pw-untrusted", NULL, NULL);
    char config[256], text[512];
    snprintf(text, sizeof(text),
             "{\"redis\": {\"url\": \"%s\"}, \"dispatcharr\": {\"url\": \"http://127.0.0.1:%d\", "
             "\"username\": \"admin\", \"password\": \"Pw-untrusted\"}}\n",
             redis.url, fake.port);
    th_write_file(dir, "sync.json", text, config, sizeof(config));
    char out[256], err[256];
    snprintf(out, sizeof(out), "%s/sync.out", dir);
    snprintf(err, sizeof(err), "%s/sync.err", dir);
    const char *argv[] = {SFL_BIN, "accounts", "sync", "-c", config, NULL};
    int st = th_wait(th_spawn((char *const *)argv, out, err), 30000);
    char *o = th_read_file(out), *e = th_read_file(err);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "sync failed: %s", e ? e : "");
    redisReply *n7 = th_redis(&redis, "HGET sfl:{a:7}:conf name");
    redisReply *n8 = th_redis(&redis, "HGET sfl:{a:8}:conf name");
    cr_expect_str_eq(n7->str ? n7->str : "(none)", "\\x1b[31mRed\\x07");
    cr_expect_str_eq(n8->str ? n8->str : "(none)", "Plain");
    cr_expect_eq(th_redis_int(&redis, "HGET sfl:{a:7}:conf max_streams"), 2);
    for (const char *q = o ? o : ""; *q; q++)
        cr_expect((unsigned char)*q >= 0x20 || *q == '\n', "a raw byte 0x%02x in:\n%s",
                  (unsigned char)*q, o);
    freeReplyObject(n7);
    freeReplyObject(n8);
    free(o);
    free(e);
}

/*--- JSON answers are UTF-8 ------------------------------------------------*/

Test(untrusted, not_found_answers_valid_utf8)
{
    node_start();
    static const char *const paths[] = {"/\xff\xfe", "/v1/\xc3(x%ff\xed\xa0\x80",
                                        "/v1/checks/\xff/more"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        th_http_resp r = call("GET", paths[i], NULL);
        cr_expect_eq(r.status, 404, "%d %s", r.status, r.body);
        cr_expect(utf8_valid(r.body, strlen(r.body)), "path %zu: the answer is not UTF-8: %s", i,
                  r.body);
        cJSON *doc = cJSON_Parse(r.body);
        const char *err = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "error"));
        cr_expect(err && strncmp(err, "no route /", 10) == 0, "path %zu: %s", i, r.body);
        cJSON_Delete(doc);
        th_http_free(&r);
    }
    cr_assert(th_alive(node_pid), "the node died");
}
