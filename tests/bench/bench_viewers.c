/* bench_viewers.c - `sflimit-bench-viewers`: how long the provider sees a
 * login over its limit when a viewer arrives while sfl's checks fill it
 * (issue #14: at most poll_ms + 500 ms, the distribution over 20 runs).
 *
 * A measurement, not a test: built only when asked (`cmake --build BUILD
 * --target sflimit-bench-viewers`, with SFL_TESTS on: it links the
 * integration harness and so Criterion) and never registered with ctest.
 *
 * Each run is a world of its own, as in tests/integration/test_preempt.c:
 * a fresh redis-server, a fake provider whose user u1 may open 4
 * connections (so nothing is refused and an over-limit shows as a count),
 * a fake Dispatcharr with one XC account 7 whose profile 70 is login d70
 * of 2 on u1, a `sflimit node` that syncs it and polls its viewers every
 * poll_ms, and a `sflimit check` of two streams that hold their
 * connections. Once both checks are open, a viewer arrives: a real
 * connection held to the provider as u1 and, at the same moment, a channel
 * on profile 70 in Dispatcharr's /proxy/ts/status. From then the
 * provider's /stats is polled every ~5 ms until users.u1.current <= 2: that
 * time is over_ms, how long the provider saw the login over its limit of 2.
 * Then the run is checked: exactly one stream gave way, the youngest
 * check's (latest since_ms in the login's holders before the viewer); both
 * streams have exactly one result and it is OK; three check requests for
 * two streams; no violation at the provider.
 *
 * Prints one JSON line per run on stdout and a summary line at the end
 * (min, median, p90, max of over_ms; runs over poll_ms + 500). Knob:
 * SFL_BENCH_RUNS (20). A run whose checks went wrong, or over the bound,
 * fails the program (cr_expect), after all runs. */
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

#define API_KEY "Key-bench-viewers"
#define POLL_MS 200
#define HOLD_MS 3000
#define LOGIN_MAX 2
#define MAX_RUNS 1000

/* One run's world; torn down by world_stop, also from .fini when an
 * assertion ended the program half-way. */
static sfl_test_redis redis;
static sfl_test_provider provider;
static sfl_test_dispatcharr fake;
static th_viewer viewer;
static char dir[128];
static pid_t node_pid;
static th_run run;

static void world_stop(void)
{
    th_viewer_stop(&viewer);
    th_run_reap(&run);
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
        node_pid = 0;
    }
    th_dispatcharr_stop(&fake);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
    memset(&provider, 0, sizeof(provider));
    memset(&redis, 0, sizeof(redis));
}

static void setup(void)
{
    th_clear_env();
}

TestSuite(bench, .init = setup, .fini = world_stop, .timeout = 3600);

static long long conf_field(const char *field)
{
    redisReply *r = th_redis(&redis, "HGET sfl:{a:7}:conf %s", field);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

static int figure_written(void *arg)
{
    (void)arg;
    return conf_field("external_at_ms") > 0 && conf_field("max_age_ms") > 0;
}

static int two_checks_open(void *arg)
{
    (void)arg;
    return th_provider_stat(&provider, "users.u1.current") == LOGIN_MAX;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The stream of the youngest lease on login d70 (latest since_ms in its
 * holders), 0 when two share the latest since_ms, -1 when none. */
static long long youngest_stream(void)
{
    redisReply *r = th_redis(&redis, "HVALS sfl:{a:7}:holders");
    long long id = -1;
    double latest = -1;
    for (size_t k = 0; r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
        cJSON *h = cJSON_Parse(r->element[k]->str);
        cJSON *since = cJSON_GetObjectItem(h, "since_ms");
        cJSON *stream = cJSON_GetObjectItem(h, "stream");
        if (cJSON_IsNumber(since)) {
            long long sid = cJSON_IsNumber(stream)   ? (long long)stream->valuedouble
                            : cJSON_IsString(stream) ? strtoll(stream->valuestring, NULL, 10)
                                                     : -1;
            if (since->valuedouble > latest)
                id = sid, latest = since->valuedouble;
            else if (since->valuedouble == latest)
                id = 0;
        }
        cJSON_Delete(h);
    }
    freeReplyObject(r);
    return id;
}

/* The stream the check's stderr says gave way ("stream N gave way to
 * viewers"), -1 if none, -2 if more than one line says so. */
static long long gave_way(const char *err_path, int *lines)
{
    char *text = th_read_file(err_path);
    long long id = -1;
    *lines = 0;
    for (const char *p = text; p && (p = strstr(p, "stream ")) != NULL; p += 7) {
        char *end;
        long long n = strtoll(p + 7, &end, 10);
        if (end != p + 7 && strncmp(end, " gave way to viewers", 20) == 0) {
            id = ++*lines == 1 ? n : -2;
        }
    }
    free(text);
    return id;
}

/* What one run measured. */
typedef struct vrun {
    long long over_ms;    /* viewer's arrival -> provider's u1 current <= 2 */
    long long peak;       /* the most u1 connections seen while polling */
    long long samples;    /* /stats polls in over_ms */
    long long youngest;   /* the stream of the youngest check (0: a tie) */
    long long gave_way;   /* the stream that gave way (-1 none, -2 several) */
    int gave_way_lines;   /* how many times a stream gave way */
    int results;          /* result lines */
    int ok;               /* of them OK */
    int gave_way_results; /* results of the stream that gave way */
    long long requests;   /* u1's requests at the provider, the viewer's included */
    long long max_seen;   /* u1's max_seen at the provider */
    long long violations; /* the provider's (its limit is 4) */
    int exit_code;        /* of `sflimit check` */
    int good;             /* every check of the run passed */
} vrun;

static void one_run(int i, vrun *m)
{
    memset(m, 0, sizeof(*m));
    memset(&run, 0, sizeof(run));
    memset(&fake, 0, sizeof(fake));
    memset(&viewer, 0, sizeof(viewer));
    node_pid = 0;
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));

    const char *users[] = {"u1:p1:4", NULL};
    th_provider_start(&provider, users, HOLD_MS, NULL);
    char accounts[1024];
    snprintf(
        accounts, sizeof(accounts),
        "[{\"id\": 7, \"name\": \"P\", \"server_url\": \"http://127.0.0.1:%d\", "
        "\"max_streams\": 2, \"is_active\": true, \"account_type\": \"XC\", "
        "\"username\": \"u1\", \"password\": \"p1\", \"server_group\": null, "
        "\"profiles\": [{\"id\": 70, \"max_streams\": 2, \"is_active\": true, "
        "\"is_default\": true, \"search_pattern\": \"^(.*)$\", \"replace_pattern\": \"$1\"}]}]",
        provider.port);
    th_dispatcharr_start(&fake, dir, accounts, "pw", API_KEY, NULL);

    char text[1024], config[256], node_err[256];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"poller\", \"redis\": {\"url\": \"%s\"},\n"
             " \"http\": {\"listen\": \"127.0.0.1:0\"},\n"
             " \"lease\": {" TH_LEASE "},\n"
             " \"dispatcharr\": {\"url\": \"http://127.0.0.1:%d\", \"api_key\": \"%s\",\n"
             "                 \"sync_interval\": 5, \"viewers\": true, \"poll_ms\": %d,\n"
             "                 \"max_age_ms\": 1500}}\n",
             redis.url, fake.port, API_KEY, POLL_MS);
    th_write_file(dir, "node.json", text, config, sizeof(config));
    snprintf(node_err, sizeof(node_err), "%s/node.err", dir);
    const char *argv[] = {SFL_BIN, "node", "-c", config, NULL};
    node_pid = th_spawn((char *const *)argv, NULL, node_err);
    cr_assert(th_until(figure_written, NULL, 20000), "run %d: no viewers' figure in 20 s", i);

    char cconf[256], streams[256];
    th_write_config(dir, &(th_config){.redis_url = redis.url, .node_id = "checker"}, cconf,
                    sizeof(cconf));
    th_streams sb;
    th_streams_init(&sb);
    th_streams_add(&sb, provider.port, 1, NULL, 7, "u1", "p1");
    th_streams_add(&sb, provider.port, 2, NULL, 7, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));
    th_check_start(&run, dir, cconf, streams, NULL);
    cr_assert(th_until(two_checks_open, NULL, 30000), "run %d: the two checks never ran at once",
              i);

    m->youngest = youngest_stream();

    /* The viewer arrives: its connection and Dispatcharr's channel. */
    th_viewers v;
    th_viewers_init(&v);
    th_viewers_live(&v, &(th_live){.profile = 70,
                                   .stream = 99,
                                   .user = "u1",
                                   .pass = "p1",
                                   .provider_port = provider.port,
                                   .clients = 1});
    char buf[16384];
    th_viewers_json(&v, buf, sizeof(buf));
    th_viewers_free(&v);
    int64_t t0 = th_now_ms();
    th_dispatcharr_viewers(&fake, buf);
    int st = th_viewer_start(&viewer, provider.port, "u1", "p1", 99);
    cr_assert_eq(st, 200, "run %d: the viewer got %d", i, st);
    for (;;) {
        long long cur = th_provider_stat(&provider, "users.u1.current");
        int64_t now = th_now_ms();
        m->samples++;
        if (cur > m->peak)
            m->peak = cur;
        if (cur <= LOGIN_MAX) {
            m->over_ms = now - t0;
            break;
        }
        cr_assert(now - t0 < 30000, "run %d: u1 still over its limit 30 s after the viewer", i);
        sleep_ms(5);
    }

    m->exit_code = th_exit_code(th_run_wait(&run, 60000));
    m->gave_way = gave_way(run.err, &m->gave_way_lines);
    th_results r;
    th_results_read(&r, run.out);
    m->results = r.n;
    m->ok = th_count_status(&r, "OK");
    for (int k = 0; k < r.n; k++)
        if (th_id_of(r.v[k]) == m->gave_way)
            m->gave_way_results++;
    th_results_free(&r);
    m->requests = th_provider_stat(&provider, "users.u1.requests");
    m->max_seen = th_provider_stat(&provider, "users.u1.max_seen");
    m->violations = th_provider_stat(&provider, "violations");
    /* Two checks, one again, and the viewer: four requests. */
    m->good = m->exit_code == 0 && m->gave_way_lines == 1 && m->gave_way > 0 &&
              (m->youngest == 0 || m->youngest == m->gave_way) && m->results == 2 && m->ok == 2 &&
              m->gave_way_results == 1 && m->requests == 4 && m->violations == 0;
    world_stop();
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The value at quantile q of n sorted values (nearest rank). */
static long long rank(const long long *v, int n, double q)
{
    int k = (int)(q * n + 0.999999);
    if (k < 1)
        k = 1;
    return v[k > n ? n - 1 : k - 1];
}

Test(bench, viewer_arrives_while_checks_fill_a_login)
{
    const char *env = getenv("SFL_BENCH_RUNS");
    int runs = env ? atoi(env) : 20;
    cr_assert(runs >= 1 && runs <= MAX_RUNS, "SFL_BENCH_RUNS: %s is not 1..%d", env, MAX_RUNS);
    static long long over[MAX_RUNS];
    int exceeded = 0, bad = 0;
    long long bound = POLL_MS + 500;
    for (int i = 0; i < runs; i++) {
        vrun m;
        one_run(i + 1, &m);
        over[i] = m.over_ms;
        exceeded += m.over_ms > bound;
        bad += !m.good;
        printf(
            "{\"bench\": \"viewers\", \"run\": %d, \"poll_ms\": %d, \"over_ms\": %lld, "
            "\"over_bound\": %s, \"peak_current\": %lld, \"stat_polls\": %lld, "
            "\"youngest_stream\": %lld, \"gave_way_stream\": %lld, \"gave_way_times\": %d, "
            "\"results\": %d, \"ok\": %d, \"gave_way_results\": %d, \"provider_requests\": %lld, "
            "\"provider_max_seen\": %lld, \"violations\": %lld, \"check_exit\": %d, "
            "\"good\": %s}\n",
            i + 1, POLL_MS, m.over_ms, m.over_ms > bound ? "true" : "false", m.peak, m.samples,
            m.youngest, m.gave_way, m.gave_way_lines, m.results, m.ok, m.gave_way_results,
            m.requests, m.max_seen, m.violations, m.exit_code, m.good ? "true" : "false");
        fflush(stdout);
    }
    qsort(over, (size_t)runs, sizeof(over[0]), cmp_ll);
    printf("{\"bench\": \"viewers-summary\", \"runs\": %d, \"poll_ms\": %d, \"bound_ms\": %lld, "
           "\"over_ms_min\": %lld, \"over_ms_p50\": %lld, \"over_ms_p90\": %lld, "
           "\"over_ms_max\": %lld, \"runs_over_bound\": %d, \"runs_not_good\": %d}\n",
           runs, POLL_MS, bound, over[0], rank(over, runs, 0.5), rank(over, runs, 0.9),
           over[runs - 1], exceeded, bad);
    fflush(stdout);
    cr_expect_eq(exceeded, 0, "%d of %d runs saw u1 over its limit longer than %lld ms", exceeded,
                 runs, bound);
    cr_expect_eq(bad, 0, "%d of %d runs went wrong (\"good\": false)", bad, runs);
}
