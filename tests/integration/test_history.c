/* test_history.c - the writing side of history (issue #18): what a process
 * that takes leases leaves in Redis per login and minute, and per stream.
 * Real sflimits (check, node), a real redis-server and the fake provider,
 * whose own count of connections is the ground truth the recorded peaks
 * must agree with. Also lua/history.lua alone: deltas of one minute add
 * up, maxima keep the larger, a bad call writes nothing. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PASSWORD "Pw-h1st0ry"
#define NPOS 34
#define RETENTION_DAYS 1
#define DAY_MS 86400000LL
/* Nothing here depends on lease timing: a long TTL and hand-off keep slow
 * runs (valgrind, a loaded machine) from losing leases they renew or take
 * over late (a slot handed to a waiting exec is its own only handoff_ms
 * until the take-over is confirmed). */
#define LEASE "\"ttl_ms\": 10000, \"renew_ms\": 2000, \"safety_ms\": 1000, \"handoff_ms\": 2000"

enum {
    START = 0,
    PEAK,
    HELD_MS,
    LIMIT,
    OTHERS_PEAK,
    OTHERS_SUM,
    OTHERS_N,
    WAITING_PEAK,
    GRANTS,
    DENIALS,
    LOST,
    PREEMPTED,
    REFUSED,
    CHECKS,
    WAITS,
    BIN0
};

static sfl_test_redis redis;
static sfl_test_provider provider;
static char dir[128];
static th_run run;
static pid_t node_pid;

static void setup(void)
{
    th_clear_env();
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    node_pid = 0;
}

static void teardown(void)
{
    th_run_reap(&run);
    if (node_pid > 0 && waitpid(node_pid, NULL, WNOHANG) == 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(history, .init = setup, .fini = teardown, .timeout = 180);

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*--- Reading what was written ------------------------------------------------*/

/* One login's minutes over every hour key, merged as a reader would. */
typedef struct totals {
    long long v[NPOS]; /* sums; maxima for PEAK, LIMIT, OTHERS_PEAK, WAITING_PEAK */
    long long peak;    /* max over minutes of max(start, peak) */
    int minutes, keys;
    long long pttl_err; /* the largest |PTTL - (end of hour + retention - now)|, ms */
} totals;

static int is_max(int i)
{
    return i == PEAK || i == LIMIT || i == OTHERS_PEAK || i == WAITING_PEAK;
}

/* "YYYYMMDDHH" -> the hour's start, ms since the epoch (UTC). */
static long long hour_ms(const char *s)
{
    struct tm tm = {0};
    cr_assert_eq(sscanf(s, "%4d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour), 4,
                 "bad hour %s", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000;
}

static void parse_csv(const char *csv, long long *v)
{
    memset(v, 0, NPOS * sizeof(*v));
    int n = 0;
    const char *p = csv;
    while (*p) {
        char *end;
        cr_assert_lt(n, NPOS, "too many positions in %s", csv);
        v[n++] = strtoll(p, &end, 10);
        cr_assert(end != p && (*end == ',' || *end == '\0'), "bad csv %s", csv);
        p = *end ? end + 1 : end;
    }
    cr_assert_geq(n, 4, "positions 0-3 must be written: %s", csv);
}

static void read_totals(const char *login, totals *t)
{
    memset(t, 0, sizeof(*t));
    t->v[LIMIT] = -1;
    redisReply *keys = th_redis(&redis, "KEYS sfl:history:%s:*", login);
    cr_assert_eq(keys->type, REDIS_REPLY_ARRAY);
    for (size_t k = 0; k < keys->elements; k++) {
        const char *key = keys->element[k]->str;
        const char *hour = strrchr(key, ':') + 1;
        cr_assert_eq(strlen(hour), 10, "key %s", key);
        t->keys++;
        long long want = hour_ms(hour) + 3600000 + RETENTION_DAYS * DAY_MS - wall_ms();
        long long err = llabs(th_redis_int(&redis, "PTTL %s", key) - want);
        if (err > t->pttl_err)
            t->pttl_err = err;
        redisReply *h = th_redis(&redis, "HGETALL %s", key);
        cr_assert_eq(h->type, REDIS_REPLY_ARRAY);
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            int minute = atoi(h->element[i]->str);
            cr_assert(minute >= 0 && minute <= 59, "field %s", h->element[i]->str);
            long long v[NPOS];
            parse_csv(h->element[i + 1]->str, v);
            t->minutes++;
            for (int p = 0; p < NPOS; p++) {
                if (is_max(p))
                    t->v[p] = v[p] > t->v[p] ? v[p] : t->v[p];
                else
                    t->v[p] += v[p];
            }
            long long pk = v[START] > v[PEAK] ? v[START] : v[PEAK];
            if (pk > t->peak)
                t->peak = pk;
        }
        freeReplyObject(h);
    }
    freeReplyObject(keys);
}

static long long count_keys(const char *pattern)
{
    redisReply *r = th_redis(&redis, "KEYS %s", pattern);
    long long n = (long long)r->elements;
    freeReplyObject(r);
    return n;
}

/* The stream's history list, newest first (the caller frees). */
static redisReply *stream_list(long long id)
{
    redisReply *r = th_redis(&redis, "LRANGE sfl:stream:%lld:history 0 -1", id);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    return r;
}

/*--- Running sflimit check ----------------------------------------------------*/

/* A config of limit 2 on account 1 (one login, "1"), curl checks, 4 global
 * slots, and history as given (a JSON object). */
static void write_config(const char *history, char *path, size_t len)
{
    char extra[512];
    snprintf(extra, sizeof(extra), ", \"history\": %s", history);
    th_write_config(dir,
                    &(th_config){.redis_url = redis.url,
                                 .lease = LEASE,
                                 .global_limit = 4,
                                 .accounts = "[{\"id\": 1, \"max_streams\": 2}]",
                                 .extra = extra},
                    path, len);
}

static void write_streams(int n, long long first_id, const char *name, char *path, size_t len)
{
    th_streams sb;
    th_streams_init(&sb);
    for (int i = 0; i < n; i++)
        th_streams_add(&sb, provider.port, first_id + i, name, 1, "x", PASSWORD);
    th_streams_write(&sb, dir, "streams.json", path, len);
}

static void run_check(const char *config, const char *streams)
{
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 90000)), 0, "stderr:\n%s", th_run_stderr(&run));
}

#define HISTORY_ON                                                                                 \
    "{\"enabled\": true, \"flush_ms\": 1000, \"retention_days\": 1, \"stream_results\": 20}"

/*--- lua/history.lua alone ----------------------------------------------------*/

static char *script_text(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/lua/history.lua", SFL_TOOLS_DIR);
    char *t = th_read_file(path);
    cr_assert_not_null(t, "no %s", path);
    return t;
}

static char *hget(const char *key, const char *field)
{
    redisReply *r = th_redis(&redis, "HGET %s %s", key, field);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

Test(history, merge_script_adds_sums_and_keeps_maxima)
{
    char *lua = script_text();
    const char *key = "sfl:history:p1:2026120207";
    long long at = wall_ms() + 3600000;
    char at_s[24];
    snprintf(at_s, sizeof(at_s), "%lld", at);
    /* First flush: minute 5 with a start, peak 2, 1500 held, limit 2, one
     * waiting, 3 grants, 1 denial, and a wait in bin 0; minute 6 bare. */
    redisReply *r = th_redis(&redis, "EVAL %s 1 %s %s %s %s %s %s", lua, key, at_s, "5",
                             "1,2,1500,2,0,0,0,1,3,1,0,0,0,3,1,1", "6", "0,0,0,-1");
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s", r->str);
    cr_assert_eq(r->integer, 2);
    freeReplyObject(r);
    /* Second flush of minute 5: sums add, peak 1 < 2 keeps 2, limit 3 > 2
     * wins, waiting 4 wins; others appear; a wait above the last bound. */
    r = th_redis(&redis, "EVAL %s 1 %s %s %s %s", lua, key, at_s, "5",
                 "0,1,700,3,5,9,2,4,1,0,0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1");
    cr_assert_eq(r->integer, 1, "%s", r->str ? r->str : "");
    freeReplyObject(r);
    char *m5 = hget(key, "5"), *m6 = hget(key, "6");
    cr_assert_str_eq(m5, "1,2,2200,3,5,9,2,4,4,1,0,0,0,4,2,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1");
    cr_assert_str_eq(m6, "0,0,0,-1", "trailing zeros after position 3 are left out");
    /* A later flush of minute 6 from a process that knows the limit. */
    r = th_redis(&redis, "EVAL %s 1 %s %s %s %s", lua, key, at_s, "6", "0,1,10,2");
    freeReplyObject(r);
    free(m6);
    m6 = hget(key, "6");
    cr_assert_str_eq(m6, "0,1,10,2");
    long long pttl = th_redis_int(&redis, "PTTL %s", key);
    cr_assert(pttl > 3600000 - 60000 && pttl <= 3600000, "PTTL %lld", pttl);
    /* A bad pair: an error, and nothing of the call is written. */
    r = th_redis(&redis, "EVAL %s 1 %s %s %s %s %s %s", lua, key, at_s, "7", "1,1,1,1", "8", "1,x");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = th_redis(&redis, "EVAL %s 1 %s %s %s %s", lua, key, at_s, "60", "1,1,1,1");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "HLEN %s", key), 2, "a refused call wrote something");
    free(m5);
    free(m6);
    free(lua);
}

/* Retention: every write sets the hour's expiry to its end + retention, so
 * an hour whose end + retention has passed is gone at once, and one inside
 * it goes when that time comes (Redis's own expiry, here a 1.5 s one). */
Test(history, hours_past_their_retention_are_gone)
{
    char *lua = script_text();
    const char *old = "sfl:history:p1:2026110107", *soon = "sfl:history:p1:2026120107";
    char at[24];
    snprintf(at, sizeof(at), "%lld", wall_ms() - 1000);
    redisReply *r = th_redis(&redis, "EVAL %s 1 %s %s 5 1,1,10,1", lua, old, at);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s", r->str ? r->str : "");
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "EXISTS %s", old), 0, "an hour past retention is kept");
    snprintf(at, sizeof(at), "%lld", wall_ms() + 1500);
    r = th_redis(&redis, "EVAL %s 1 %s %s 5 1,1,10,1", lua, soon, at);
    freeReplyObject(r);
    cr_assert_eq(th_redis_int(&redis, "EXISTS %s", soon), 1, "an hour inside retention is gone");
    int64_t until = th_now_ms() + 20000;
    while (th_redis_int(&redis, "EXISTS %s", soon) == 1 && th_now_ms() < until)
        usleep(50000);
    cr_assert_eq(th_redis_int(&redis, "EXISTS %s", soon), 0, "the hour outlived its expiry");
    free(lua);
}

/*--- A check run against the fake provider ------------------------------------*/

Test(history, check_run_matches_the_provider)
{
    const char *users[] = {"x:" PASSWORD ":2", NULL};
    th_provider_start(&provider, users, 1200, NULL);
    th_account(&redis, 1, 2);
    char config[256], streams[256];
    write_config(HISTORY_ON, config, sizeof(config));
    enum { N = 6 };
    write_streams(N, 101, NULL, streams, sizeof(streams));
    run_check(config, streams);

    th_results res;
    th_results_read(&res, run.out);
    cr_assert_eq(res.n, N);
    double durations = 0;
    for (int i = 0; i < res.n; i++) {
        cr_assert(th_has_status(res.v[i], "OK"), "stream %lld: %s", th_id_of(res.v[i]),
                  th_str_of(res.v[i], "status"));
        durations += th_num_of(res.v[i], "duration_ms");
    }
    long long max_seen = th_provider_stat(&provider, "users.x.max_seen");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);

    totals t;
    read_totals("1", &t);
    cr_assert_geq(t.keys, 1, "no hour key for login 1");
    cr_assert_leq(t.keys, 2, "a run of seconds spans at most two hours");
    cr_assert_geq(t.minutes, 1);
    cr_assert_leq(t.peak, 2, "peak %lld over the limit", t.peak);
    cr_assert_geq(t.peak, max_seen, "peak %lld below the provider's %lld", t.peak, max_seen);
    cr_assert_eq(t.v[LIMIT], 2);
    cr_assert_eq(t.v[GRANTS], N, "grants %lld for %d checks", t.v[GRANTS], N);
    cr_assert_eq(t.v[CHECKS], N);
    cr_assert_gt(t.v[DENIALS], 0, "6 streams on 2 slots and no denial recorded");
    cr_assert_geq(t.v[WAITING_PEAK], 1, "a denied ask queues a ticket");
    cr_assert_eq(t.v[LOST] + t.v[PREEMPTED] + t.v[REFUSED], 0);
    cr_assert_eq(t.v[WAITS], N, "one wait per check");
    long long bins = 0;
    for (int i = BIN0; i < NPOS; i++)
        bins += t.v[i];
    cr_assert_eq(bins, t.v[WAITS], "bins %lld, waits %lld", bins, t.v[WAITS]);
    /* held: from grant to release, so at least the checks' own time, and
     * not much more (a spawn, a release's round trip). */
    cr_assert_geq(t.v[HELD_MS], (long long)durations - 20, "held %lld < checks' %.0f ms",
                  t.v[HELD_MS], durations);
    cr_assert_leq(t.v[HELD_MS], (long long)durations + N * 1000, "held %lld, checks' %.0f ms",
                  t.v[HELD_MS], durations);
    cr_assert_lt(t.pttl_err, 10000, "PTTL off the end of hour + retention by %lld ms", t.pttl_err);

    /* Each stream's list holds its result, without URL or password. */
    for (int i = 0; i < N; i++) {
        redisReply *l = stream_list(101 + i);
        cr_assert_eq(l->elements, 1, "stream %d: %zu results", 101 + i, l->elements);
        const char *json = l->element[0]->str;
        cr_assert_null(strstr(json, PASSWORD), "a password in %s", json);
        cr_assert_null(strstr(json, "http://"), "a URL in %s", json);
        cJSON *o = cJSON_Parse(json);
        cr_assert_not_null(o);
        cr_assert_eq(th_id_of(o), 101 + i);
        cr_assert_str_eq(th_str_of(o, "status"), "OK");
        cr_assert_str_eq(th_str_of(o, "login"), "1");
        cr_assert_str_eq(th_str_of(o, "node"), "t1");
        cr_assert_not_null(cJSON_GetObjectItem(o, "lease_wait_ms"));
        cr_assert_null(cJSON_GetObjectItem(o, "stream_url"));
        cJSON_Delete(o);
        long long pttl = th_redis_int(&redis, "PTTL sfl:stream:%d:history", 101 + i);
        cr_assert(pttl > DAY_MS - 60000 && pttl <= DAY_MS, "PTTL %lld", pttl);
        freeReplyObject(l);
    }
    th_results_free(&res);
}

Test(history, stream_list_newest_first_and_trimmed)
{
    const char *users[] = {"x:" PASSWORD ":2", NULL};
    th_provider_start(&provider, users, 100, NULL);
    th_account(&redis, 1, 2);
    char config[256], streams[256];
    write_config("{\"flush_ms\": 1000, \"retention_days\": 1, \"stream_results\": 2}", config,
                 sizeof(config));
    const char *names[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++) {
        write_streams(1, 7, names[i], streams, sizeof(streams));
        run_check(config, streams);
    }
    redisReply *l = stream_list(7);
    cr_assert_eq(l->elements, 2, "%zu kept, stream_results is 2", l->elements);
    for (size_t i = 0; i < 2; i++) {
        cJSON *o = cJSON_Parse(l->element[i]->str);
        cr_assert_str_eq(th_str_of(o, "stream_name"), names[2 - i], "element %zu", i);
        cJSON_Delete(o);
    }
    freeReplyObject(l);
    totals t;
    read_totals("1", &t);
    cr_assert_eq(t.v[GRANTS], 3, "three runs, one grant each");
    cr_assert_eq(t.v[CHECKS], 3);
}

Test(history, disabled_writes_nothing)
{
    const char *users[] = {"x:" PASSWORD ":2", NULL};
    th_provider_start(&provider, users, 300, NULL);
    th_account(&redis, 1, 2);
    char config[256], streams[256];
    write_config("{\"enabled\": false, \"flush_ms\": 1000}", config, sizeof(config));
    write_streams(4, 1, NULL, streams, sizeof(streams));
    run_check(config, streams);
    cr_assert_eq(th_provider_stat(&provider, "users.x.total"), 4, "the checks ran");
    cr_assert_eq(count_keys("sfl:history:*"), 0);
    cr_assert_eq(count_keys("sfl:stream:*"), 0);
}

Test(history, stream_results_0_keeps_no_stream_list)
{
    const char *users[] = {"x:" PASSWORD ":2", NULL};
    th_provider_start(&provider, users, 100, NULL);
    th_account(&redis, 1, 2);
    char config[256], streams[256];
    write_config("{\"flush_ms\": 1000, \"stream_results\": 0}", config, sizeof(config));
    write_streams(2, 1, NULL, streams, sizeof(streams));
    run_check(config, streams);
    cr_assert_eq(count_keys("sfl:stream:*"), 0);
    cr_assert_geq(count_keys("sfl:history:1:*"), 1, "the per-login history is still written");
}

Test(history, bad_config_exits_2_naming_the_path)
{
    const struct {
        const char *history, *path;
    } bad[] = {
        {"{\"flush_ms\": 999}", "history.flush_ms"},
        {"{\"retention_days\": 0}", "history.retention_days"},
        {"{\"stream_results\": 1001}", "history.stream_results"},
        {"{\"enabled\": \"yes\"}", "history.enabled"},
        {"{\"flush\": 1000}", "history.flush"},
    };
    char streams[256];
    th_write_file(dir, "empty.json", "[]", streams, sizeof(streams));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char config[256];
        write_config(bad[i].history, config, sizeof(config));
        th_check_start(&run, dir, config, streams, NULL);
        cr_assert_eq(th_exit_code(th_run_wait(&run, 30000)), 2, "%s", bad[i].history);
        const char *err = th_run_stderr(&run);
        cr_assert_not_null(strstr(err, bad[i].path), "%s: stderr does not name %s:\n%s",
                           bad[i].history, bad[i].path, err);
    }
    cr_assert_eq(count_keys("sfl:*history*"), 0);
}

/*--- A node ---------------------------------------------------------------------*/

#define TOKEN "history-token"

static int node_port;

/* accounts: the config's "accounts" array. */
static void node_start(const char *accounts)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[4096], conf[256], err[256];
        node_port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"h1\", \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"%s\"},\n"
                 " \"lease\": {" LEASE "},\n"
                 " \"concurrent_streams\": {\"global_limit\": 4, \"stagger_delay\": 0},\n"
                 " \"accounts\": %s,\n"
                 " \"history\": " HISTORY_ON ",\n"
                 " \"check\": {\"command\": [\"curl\", \"-sS\", \"-o\", \"/dev/null\", "
                 "\"{url}\"], \"parser\": \"none\", \"timeout\": 20}}\n",
                 redis.url, node_port, TOKEN, accounts);
        th_write_file(dir, "node.json", text, conf, sizeof(conf));
        snprintf(err, sizeof(err), "%s/node%d.err", dir, attempt);
        node_pid = th_node_start(conf, node_port, err, NULL, NULL);
        if (node_pid)
            return;
    }
    cr_assert_fail("the node never got a port");
}

typedef struct want_grants {
    long long n;
} want_grants;

static int grants_are(void *arg)
{
    totals t;
    read_totals("1", &t);
    return t.v[GRANTS] >= ((want_grants *)arg)->n && t.v[CHECKS] >= ((want_grants *)arg)->n;
}

Test(history, node_flushes_while_running_and_pushes_results)
{
    const char *users[] = {"x:" PASSWORD ":2", NULL};
    th_provider_start(&provider, users, 800, NULL);
    th_account(&redis, 1, 2);
    node_start("[{\"id\": 1, \"max_streams\": 2}]");
    char body[2048];
    size_t o = snprintf(body, sizeof(body), "[");
    for (int i = 0; i < 4; i++)
        o += snprintf(body + o, sizeof(body) - o,
                      "%s{\"id\": %d, \"name\": \"N%d\", \"m3u_account\": 1, "
                      "\"url\": \"http://127.0.0.1:%d/live/x/%s/%d.ts\"}",
                      i ? ", " : "", 201 + i, i, provider.port, PASSWORD, 201 + i);
    snprintf(body + o, sizeof(body) - o, "]");
    th_http_resp r;
    cr_assert_eq(th_http(node_port, TOKEN, "POST", "/v1/checks", body, &r), 0);
    cr_assert_eq(r.status, 202, "%d %s", r.status, r.body);
    th_http_free(&r);
    /* Written by the flush timer while the node runs (no stop yet). */
    want_grants w = {4};
    cr_assert(th_until(grants_are, &w, 60000), "the node's history never showed 4 grants");
    totals t;
    read_totals("1", &t);
    cr_assert_eq(t.v[GRANTS], 4);
    cr_assert_leq(t.peak, 2);
    cr_assert_geq(t.peak, th_provider_stat(&provider, "users.x.max_seen"));
    for (int i = 0; i < 4; i++) {
        redisReply *l = stream_list(201 + i);
        cr_assert_eq(l->elements, 1, "stream %d", 201 + i);
        cr_assert_null(strstr(l->element[0]->str, PASSWORD));
        cJSON *e = cJSON_Parse(l->element[0]->str);
        cr_assert_str_eq(th_str_of(e, "node"), "h1");
        cJSON_Delete(e);
        freeReplyObject(l);
    }
    kill(node_pid, SIGTERM);
    cr_assert_neq(th_wait(node_pid, 30000), -1, "the node did not stop");
    node_pid = 0;
}

/*--- sflimit exec ---------------------------------------------------------------*/

/* Three execs at once on a limit of 2: each holds its slot while its
 * command sleeps; the third waits (a wait of sfl_limiter_wait, counted by
 * the limiter's observer, not by a worker). */
Test(history, exec_records_its_lease)
{
    th_account(&redis, 1, 2);
    char config[256];
    write_config(HISTORY_ON, config, sizeof(config));
    pid_t pids[3];
    char errs[3][256];
    for (int i = 0; i < 3; i++) {
        snprintf(errs[i], sizeof(errs[i]), "%s/exec%d.err", dir, i);
        const char *argv[] = {SFL_BIN, "exec", "-c", config, "-a", "1", "--", "sleep", "1.5", NULL};
        pids[i] = th_spawn((char *const *)argv, NULL, errs[i]);
    }
    for (int i = 0; i < 3; i++) {
        int st = th_wait(pids[i], 60000);
        char *err = th_read_file(errs[i]);
        cr_assert_eq(th_exit_code(st), 0, "exec %d: exit %d; stderr:\n%s", i, th_exit_code(st),
                     err ? err : "");
        free(err);
    }
    totals t;
    read_totals("1", &t);
    cr_assert_eq(t.v[GRANTS], 3);
    cr_assert_eq(t.v[WAITS], 3, "one wait per exec");
    cr_assert_eq(t.v[CHECKS], 0, "an exec is not a check");
    cr_assert_geq(t.v[HELD_MS], 3 * 1500 - 30, "held %lld", t.v[HELD_MS]);
    cr_assert_leq(t.peak, 2);
    cr_assert_eq(t.peak, 2, "two execs held at once");
    long long slow = 0; /* waits above 250 ms: the third waited for a 1.5 s sleep */
    for (int i = BIN0 + 8; i < NPOS; i++)
        slow += t.v[i];
    cr_assert_geq(slow, 1, "no wait recorded as long");
}

/*--- Others' connections ----------------------------------------------------------*/

typedef struct want_others {
    const char *login;
    long long peak, n;
} want_others;

static int others_seen(void *arg)
{
    want_others *w = arg;
    totals t;
    read_totals(w->login, &t);
    return t.v[OTHERS_PEAK] >= w->peak && t.v[OTHERS_N] >= w->n;
}

/* A login counted by its Xtream panel (the fake provider's player_api.php):
 * a viewer holds one connection on it, so the panel says 1, and the node
 * that polls records that figure in the login's minutes, sample by sample. */
Test(history, node_records_others_connections)
{
    const char *users[] = {"u2:" PASSWORD ":2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    th_viewer viewer = {0};
    cr_assert_eq(th_viewer_start(&viewer, provider.port, "u2", PASSWORD, 600), 200);
    char accounts[1024];
    snprintf(accounts, sizeof(accounts),
             "[{\"id\": 9, \"logins\": [{\"id\": \"x1\", \"max_streams\": 2, \"xtream\": "
             "{\"url\": \"http://127.0.0.1:%d\", \"username\": \"u2\", \"password\": \"%s\", "
             "\"poll_s\": 1, \"max_age_ms\": 3000}}]}]",
             provider.port, PASSWORD);
    node_start(accounts);
    want_others w = {"x1", 1, 3};
    int ok = th_until(others_seen, &w, 30000);
    th_viewer_stop(&viewer);
    cr_assert(ok, "the panel's figure never reached the history of x1");
    totals t;
    read_totals("x1", &t);
    cr_assert_eq(t.v[OTHERS_PEAK], 1, "one viewer, peak %lld", t.v[OTHERS_PEAK]);
    cr_assert_eq(t.v[LIMIT], 2, "the login's limit, known to the node without a lease");
    cr_assert_leq(t.v[OTHERS_SUM], t.v[OTHERS_N], "no sample above 1");
    cr_assert_geq(t.v[OTHERS_SUM], 1);
    cr_assert_eq(count_keys("sfl:history:9:*"), 0, "recorded under the login, not the account");
    kill(node_pid, SIGTERM);
    cr_assert_neq(th_wait(node_pid, 30000), -1, "the node did not stop");
    node_pid = 0;
}

/*--- An account of two logins ----------------------------------------------------*/

/* Account 1 through p-main (user u1) then p-alt (the same streams as u2),
 * one slot each: each login's minutes hold its own grants and checks (as
 * many as the results that name it), its peak within 1 and at least what
 * the provider saw of its user; a denial (both full) counts on each. */
Test(history, two_logins_each_their_own)
{
    const char *users[] = {"u1:p1:1", "u2:p2:1", NULL};
    th_provider_start(&provider, users, 800, NULL);
    char config[256], streams[256];
    th_write_config(dir,
                    &(th_config){.redis_url = redis.url,
                                 .lease = LEASE,
                                 .global_limit = 4,
                                 .accounts = "[{\"id\": 1, \"logins\": ["
                                             "{\"id\": \"p-main\", \"max_streams\": 1},"
                                             " {\"id\": \"p-alt\", \"max_streams\": 1,"
                                             " \"search\": \"/live/u1/p1/\","
                                             " \"replace\": \"/live/u2/p2/\"}]}]",
                                 .extra = ", \"history\": " HISTORY_ON},
                    config, sizeof(config));
    th_streams sb;
    th_streams_init(&sb);
    for (int i = 0; i < 6; i++)
        th_streams_add(&sb, provider.port, 301 + i, NULL, 1, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));
    run_check(config, streams);
    th_results res;
    th_results_read(&res, run.out);
    cr_assert_eq(res.n, 6);
    const char *logins[] = {"p-main", "p-alt"},
               *user[] = {"users.u1.max_seen", "users.u2.max_seen"};
    long long grants = 0;
    for (int k = 0; k < 2; k++) {
        int named = 0;
        for (int i = 0; i < res.n; i++)
            named += strcmp(th_str_of(res.v[i], "login"), logins[k]) == 0;
        totals t;
        read_totals(logins[k], &t);
        cr_assert_eq(t.v[GRANTS], named, "%s: %lld grants, %d results", logins[k], t.v[GRANTS],
                     named);
        cr_assert_eq(t.v[CHECKS], named, "%s", logins[k]);
        cr_assert_leq(t.peak, 1, "%s", logins[k]);
        cr_assert_geq(t.peak, th_provider_stat(&provider, user[k]), "%s", logins[k]);
        cr_assert_eq(t.v[LIMIT], 1, "%s", logins[k]);
        cr_assert_gt(t.v[DENIALS], 0, "%s: 6 streams on 2 slots", logins[k]);
        grants += t.v[GRANTS];
    }
    cr_assert_eq(grants, 6);
    cr_assert_eq(count_keys("sfl:history:1:*"), 0, "recorded under the logins, not the account");
    th_results_free(&res);
}
