/* test_logins.c - an account's provider logins (issue #13, DESIGN §10):
 * `sflimit check` as a user runs it, a real redis-server, and the fake
 * provider as the ground truth of how many connections each provider user
 * really had open.
 *
 * An account may list logins, each its own limit at the provider, each with
 * the rewrite (search -> replace) that turns a stream's URL into that login's
 * URL. A check runs through the first login with room; its result names the
 * login ("login"; an account without logins: its id as a string). A login id
 * that two accounts share is one limit, over every node. Bad logins stop
 * `sflimit check` with exit 2, a message naming the JSON path, and nothing
 * written to Redis. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sfl_test_redis redis;
static sfl_test_provider provider;
static char dir[128];
#define NRUNS 3
static th_run runs[NRUNS]; /* the test's sflimits, killed by teardown if a test failed early */

static void setup(void)
{
    th_clear_env();
    memset(runs, 0, sizeof(runs));
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    for (int i = 0; i < NRUNS; i++)
        th_run_reap(&runs[i]);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(logins, .init = setup, .fini = teardown, .timeout = 150);

/*--- Config, streams and runs ----------------------------------------------*/

/* The account of the two-login tests: p-main is the stream's own URL (user
 * u1), p-alt the same stream as user u2. */
#define TWO_LOGINS                                                                                 \
    "[{\"id\": 1, \"name\": \"P\", \"logins\": ["                                                  \
    "{\"id\": \"p-main\", \"max_streams\": 1},"                                                    \
    " {\"id\": \"p-alt\", \"max_streams\": 1, \"search\": \"/live/u1/p1/\","                       \
    " \"replace\": \"/live/u2/p2/\"}]}]"

/* A config of this suite's Redis, the rest as th_config says. */
static void write_config(const th_config *c, char *path, size_t len)
{
    th_config full = *c;
    full.redis_url = redis.url;
    th_write_config(dir, &full, path, len);
}

/* The exit code of `sflimit check -c CONFIG STREAMS` (results to the run's
 * stdout); fails the test if it does not end within 90 s. */
static int run_check(th_run *r, const char *config, const char *streams)
{
    th_check_start(r, dir, config, streams, NULL);
    return th_exit_code(th_run_wait(r, 90000));
}

/* Exactly one result per input id, none for anything else, all OK. */
static void expect_all_ok(const th_results *r, const long long *ids, int n, const th_run *run)
{
    cr_assert_eq(r->n, n, "%d results for %d streams; stderr:\n%s", r->n, n, th_run_stderr(run));
    for (int i = 0; i < n; i++) {
        cJSON *o = th_result_for(r, ids[i]);
        const char *e = th_str_of(o, "error");
        cr_assert(th_has_status(o, "OK"), "stream %lld: status %s, not OK (error: %s)", ids[i],
                  th_str_of(o, "status") ? th_str_of(o, "status") : "null", e ? e : "null");
    }
}

/* How many results name login id. Fails on a result without a string "login". */
static int count_login(const th_results *r, const char *id)
{
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        const char *l = th_str_of(r->v[i], "login");
        cr_assert_not_null(l, "stream %lld: no string member \"login\" in its result",
                           th_id_of(r->v[i]));
        n += strcmp(l, id) == 0;
    }
    return n;
}

/* started_at ("2026-01-02T03:04:05.678Z", UTC) as ms since the epoch. */
static long long started_ms(const cJSON *o)
{
    const char *at = th_str_of(o, "started_at");
    struct tm tm = {0};
    int ms = 0;
    cr_assert(at && sscanf(at, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                           &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) == 7,
              "stream %lld: started_at is not an ISO time with ms: %s", th_id_of(o),
              at ? at : "null");
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000 + ms;
}

static int cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return (a > b) - (a < b);
}

/* Every key of the sfl namespace in Redis, as one line for a message (""
 * when there is none). A static buffer. */
static const char *sfl_keys(void)
{
    static char buf[2048];
    buf[0] = '\0';
    redisReply *rep = th_redis(&redis, "KEYS sfl:*");
    size_t n = 0;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s ", rep->element[i]->str);
    freeReplyObject(rep);
    return buf;
}

/*--- Two logins of one account ----------------------------------------------*/

/* Four streams of 1.5 s on an account of two logins of 1: two rounds of two,
 * one check on each login at a time, so each provider user sees exactly two
 * requests and never more than one open at once, and nothing is refused. */
Test(logins, two_logins_two_rounds)
{
    const char *users[] = {"u1:p1:1", "u2:p2:1", NULL};
    th_provider_start(&provider, users, 1500, NULL);
    char config[256], streams[256];
    write_config(&(th_config){.accounts = TWO_LOGINS}, config, sizeof(config));
    th_streams sb;
    th_streams_init(&sb);
    long long ids[] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        th_streams_add(&sb, provider.port, ids[i], NULL, 1, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));

    cr_assert_eq(run_check(&runs[0], config, streams), 0, "stderr:\n%s", th_run_stderr(&runs[0]));
    th_results r;
    th_results_read(&r, runs[0].out);
    expect_all_ok(&r, ids, 4, &runs[0]);

    /* The provider's own counts. */
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0, "the provider saw a violation");
    cr_assert_eq(th_provider_stat(&provider, "refused"), 0, "the provider refused a request");
    cr_assert_eq(th_provider_stat(&provider, "users.u1.max_seen"), 1,
                 "user u1 (login p-main) did not have exactly one connection at its peak");
    cr_assert_eq(th_provider_stat(&provider, "users.u2.max_seen"), 1,
                 "user u2 (login p-alt, the rewritten URL) did not have exactly one connection "
                 "at its peak");
    cr_assert_eq(th_provider_stat(&provider, "users.u1.requests"), 2);
    cr_assert_eq(th_provider_stat(&provider, "users.u2.requests"), 2);
    cr_assert_eq(th_provider_stat(&provider, "max_concurrent"), 2,
                 "the two logins' checks did not run side by side");

    /* Each result names the login it used: each login twice. */
    int main_n = count_login(&r, "p-main"), alt_n = count_login(&r, "p-alt");
    cr_assert_eq(main_n + alt_n, 4, "results naming a login other than p-main and p-alt");
    cr_assert_eq(main_n, 2, "p-main used by %d results, p-alt by %d", main_n, alt_n);
    cr_assert_eq(alt_n, 2, "p-main used by %d results, p-alt by %d", main_n, alt_n);

    /* Two rounds: at most two run at once, so the third start waited for the
     * end of the first check and the fourth for the end of the second, each
     * of which held its connection 1.5 s (100 ms slack for rounding). */
    long long t[4];
    for (int i = 0; i < 4; i++)
        t[i] = started_ms(r.v[i]);
    qsort(t, 4, sizeof(t[0]), cmp_ll);
    cr_assert_geq(t[2] - t[0], 1400, "the third check started %lld ms after the first",
                  t[2] - t[0]);
    cr_assert_geq(t[3] - t[1], 1400, "the fourth check started %lld ms after the second",
                  t[3] - t[1]);
    th_results_free(&r);
}

/* One stream: the first login in route order, with the stream's own URL. */
Test(logins, first_route_first)
{
    const char *users[] = {"u1:p1:1", "u2:p2:1", NULL};
    th_provider_start(&provider, users, 300, NULL);
    char config[256], streams[256];
    write_config(&(th_config){.accounts = TWO_LOGINS}, config, sizeof(config));
    th_streams sb;
    th_streams_init(&sb);
    th_streams_add(&sb, provider.port, 5, NULL, 1, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));

    cr_assert_eq(run_check(&runs[0], config, streams), 0, "stderr:\n%s", th_run_stderr(&runs[0]));
    th_results r;
    th_results_read(&r, runs[0].out);
    long long ids[] = {5};
    expect_all_ok(&r, ids, 1, &runs[0]);
    cr_assert_str_eq(th_str_of(r.v[0], "login"), "p-main");
    cr_assert_eq(th_provider_stat(&provider, "users.u1.requests"), 1);
    cr_assert_eq(th_provider_stat(&provider, "users.u2.requests"), 0,
                 "a lone stream went to the second login");
    th_results_free(&r);
}

/* A rewrite with groups ($1, $2): the second stream, while the first holds
 * p-main, is checked as user u2 at the same host and stream. */
Test(logins, rewrite_with_groups)
{
    const char *users[] = {"u1:p1:1", "u2:p2:1", NULL};
    th_provider_start(&provider, users, 1500, NULL);
    char config[256], streams[256];
    write_config(&(th_config){.accounts = "[{\"id\": 1, \"logins\": ["
                                          "{\"id\": \"p-main\", \"max_streams\": 1},"
                                          " {\"id\": \"p-alt\", \"max_streams\": 1,"
                                          " \"search\": \"^(http://[^/]+)/live/u1/p1/(.*)$\","
                                          " \"replace\": \"$1/live/u2/p2/$2\"}]}]"},
                 config, sizeof(config));
    th_streams sb;
    th_streams_init(&sb);
    th_streams_add(&sb, provider.port, 1, NULL, 1, "u1", "p1");
    th_streams_add(&sb, provider.port, 2, NULL, 1, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));

    cr_assert_eq(run_check(&runs[0], config, streams), 0, "stderr:\n%s", th_run_stderr(&runs[0]));
    th_results r;
    th_results_read(&r, runs[0].out);
    long long ids[] = {1, 2};
    expect_all_ok(&r, ids, 2, &runs[0]);
    cr_assert_eq(count_login(&r, "p-main"), 1);
    cr_assert_eq(count_login(&r, "p-alt"), 1);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.requests"), 1);
    cr_assert_eq(th_provider_stat(&provider, "users.u2.requests"), 1,
                 "the $1/$2 rewrite did not reach user u2");
    cr_assert_eq(th_provider_stat(&provider, "refused"), 0);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    th_results_free(&r);
}

/*--- An account without logins ----------------------------------------------*/

/*--- What a login keeps for others, and how long a slot lingers -----------*/

/* A login of 3 that keeps 1 for connections sfl cannot see: the provider,
 * which here allows the user 2 (the third being the one sfl must leave for
 * others), never sees a third; six streams of 1 s run two at a time. */
Test(logins, reserve_keeps_slots_for_others)
{
    const char *users[] = {"u1:p1:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    char config[256], streams[256];
    write_config(&(th_config){.accounts = "[{\"id\": 5, \"logins\": [{\"id\": \"r\", "
                                          "\"max_streams\": 3, \"reserve\": 1}]}]"},
                 config, sizeof(config));
    th_streams sb;
    th_streams_init(&sb);
    long long ids[] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; i++)
        th_streams_add(&sb, provider.port, ids[i], NULL, 5, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));
    cr_assert_eq(run_check(&runs[0], config, streams), 0, "stderr:\n%s", th_run_stderr(&runs[0]));
    th_results r;
    th_results_read(&r, runs[0].out);
    expect_all_ok(&r, ids, 6, &runs[0]);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0, "sfl used the slot kept for others");
    cr_assert_eq(th_provider_stat(&provider, "refused"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.max_seen"), 2,
                 "3 - 1 kept: two at once, no more and no fewer");
    cr_assert_eq(count_login(&r, "r"), 6);
    th_results_free(&r);
}

/* cooldown_ms 1500 on a login of 1: between the end of one check and the
 * start of the next there are at least 1.5 s (on the node's clock: the
 * provider's connection closed before the check ended, and the next opens
 * after it started, so the provider's gap is at least as long). */
Test(logins, cooldown_keeps_a_freed_slot_counted)
{
    const char *users[] = {"u1:p1:1", NULL};
    th_provider_start(&provider, users, 300, NULL);
    char config[256], streams[256];
    write_config(&(th_config){.accounts = "[{\"id\": 6, \"logins\": [{\"id\": \"c\", "
                                          "\"max_streams\": 1, \"cooldown_ms\": 1500}]}]"},
                 config, sizeof(config));
    th_streams sb;
    th_streams_init(&sb);
    long long ids[] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        th_streams_add(&sb, provider.port, ids[i], NULL, 6, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));
    cr_assert_eq(run_check(&runs[0], config, streams), 0, "stderr:\n%s", th_run_stderr(&runs[0]));
    th_results r;
    th_results_read(&r, runs[0].out);
    expect_all_ok(&r, ids, 3, &runs[0]);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.max_seen"), 1);
    long long start[3], end[3];
    for (int i = 0; i < 3; i++) {
        start[i] = started_ms(r.v[i]);
        end[i] = start[i] + (long long)th_num_of(r.v[i], "duration_ms");
    }
    /* In start order; 2 ms for the rounding of two ms figures. */
    for (int i = 0; i < 3; i++)
        for (int k = i + 1; k < 3; k++)
            if (start[k] < start[i]) {
                long long t = start[i], e = end[i];
                start[i] = start[k], end[i] = end[k];
                start[k] = t, end[k] = e;
            }
    for (int i = 0; i + 1 < 3; i++)
        cr_assert_geq(start[i + 1] - end[i], 1498,
                      "check %d started %lld ms after the end of the one before", i + 2,
                      start[i + 1] - end[i]);
    th_results_free(&r);
}

/* Its one login is the account: "login" is the account id as a string, and
 * the rest is as before (limit 1 kept, one result each, OK). */
Test(logins, account_without_logins_names_itself)
{
    const char *users[] = {"x:pw:1", NULL};
    th_provider_start(&provider, users, 500, NULL);
    char config[256], streams[256];
    write_config(&(th_config){.accounts = "[{\"id\": 7, \"name\": \"X\", \"max_streams\": 1}]"},
                 config, sizeof(config));
    th_streams sb;
    th_streams_init(&sb);
    th_streams_add(&sb, provider.port, 71, NULL, 7, "x", "pw");
    th_streams_add(&sb, provider.port, 72, NULL, 7, "x", "pw");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));

    cr_assert_eq(run_check(&runs[0], config, streams), 0, "stderr:\n%s", th_run_stderr(&runs[0]));
    th_results r;
    th_results_read(&r, runs[0].out);
    long long ids[] = {71, 72};
    expect_all_ok(&r, ids, 2, &runs[0]);
    for (int i = 0; i < r.n; i++) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(r.v[i], "login");
        cr_assert(cJSON_IsString(l), "stream %lld: \"login\" is not a string", th_id_of(r.v[i]));
        cr_assert_str_eq(l->valuestring, "7", "stream %lld names login %s", th_id_of(r.v[i]),
                         l->valuestring);
        cr_assert_eq(th_num_of(r.v[i], "m3u_account"), 7);
    }
    cr_assert_eq(th_provider_stat(&provider, "users.x.max_seen"), 1);
    cr_assert_eq(th_provider_stat(&provider, "users.x.requests"), 2);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    th_results_free(&r);
}

/*--- Config errors ----------------------------------------------------------*/

/* A config with these accounts: exit 2, stderr names the JSON path (each of
 * paths, NULL-terminated, is accepted), no result, and Redis (empty before)
 * holds no key of sfl afterwards. */
static void expect_config_refused(const char *accounts, const char *const *paths)
{
    char config[256], streams[256];
    write_config(&(th_config){.accounts = accounts}, config, sizeof(config));
    th_write_file(dir, "streams.json",
                  "[{\"id\": 7, \"url\": \"http://127.0.0.1:9/live/u1/p1/7.ts\","
                  " \"m3u_account\": 1}]\n",
                  streams, sizeof(streams));
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), 0, "Redis is not empty before the run");
    int code = run_check(&runs[0], config, streams);
    cr_assert_eq(code, 2, "exit %d for accounts %s; stderr:\n%s", code, accounts,
                 th_run_stderr(&runs[0]));
    char *err = th_read_file(runs[0].err);
    int named = 0;
    for (int i = 0; paths[i] && err; i++)
        named |= strstr(err, paths[i]) != NULL;
    cr_assert(named, "stderr does not name %s%s%s:\n%s", paths[0], paths[1] ? " or " : "",
              paths[1] ? paths[1] : "", err ? err : "");
    free(err);
    char *out = th_read_file(runs[0].out);
    cr_assert(!out || !*out, "results were written for a refused config: %s", out);
    free(out);
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), 0, "a refused config wrote to Redis: %s",
                 sfl_keys());
}

/* One account whose second login is bad_login (a JSON object). */
#define WITH_BAD_LOGIN(bad_login)                                                                  \
    "[{\"id\": 1, \"name\": \"P\", \"logins\": ["                                                  \
    "{\"id\": \"p-main\", \"max_streams\": 1}, " bad_login "]}]"

Test(logins, refused_login_id_with_bad_characters)
{
    const char *paths[] = {"accounts[0].logins[1].id", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p alt!\", \"max_streams\": 1}"), paths);
}

Test(logins, refused_login_id_with_a_slash)
{
    const char *paths[] = {"accounts[0].logins[1].id", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p/alt\", \"max_streams\": 1}"), paths);
}

Test(logins, refused_login_id_empty)
{
    const char *paths[] = {"accounts[0].logins[1].id", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"\", \"max_streams\": 1}"), paths);
}

Test(logins, refused_login_id_too_long)
{
    /* 65 characters of the allowed set: one past the limit. */
    const char *paths[] = {"accounts[0].logins[1].id", NULL};
    expect_config_refused(
        WITH_BAD_LOGIN("{\"id\": "
                       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                       " \"max_streams\": 1}"),
        paths);
}

/* The longest id allowed (64) and every allowed kind of character: accepted,
 * and named in the result. The check fails (nothing listens on port 9), which
 * is no matter here. */
Test(logins, login_id_of_64_accepted)
{
    char config[256], streams[256];
    write_config(
        &(th_config){.accounts =
                         "[{\"id\": 1, \"logins\": [{\"id\": "
                         "\"Az09._-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                         "\", \"max_streams\": 1}]}]",
                     .command = "[\"true\"]"},
        config, sizeof(config));
    th_write_file(dir, "streams.json",
                  "[{\"id\": 7, \"url\": \"http://127.0.0.1:9/live/u1/p1/7.ts\","
                  " \"m3u_account\": 1}]\n",
                  streams, sizeof(streams));
    cr_assert_eq(run_check(&runs[0], config, streams), 0, "stderr:\n%s", th_run_stderr(&runs[0]));
    th_results r;
    th_results_read(&r, runs[0].out);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(th_str_of(r.v[0], "login"),
                     "Az09._-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    cr_assert(th_has_status(r.v[0], "OK"), "status %s", th_str_of(r.v[0], "status"));
    th_results_free(&r);
}

Test(logins, refused_duplicate_login_id)
{
    const char *paths[] = {"accounts[0].logins[1]", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p-main\", \"max_streams\": 2}"), paths);
}

Test(logins, refused_search_without_replace)
{
    const char *paths[] = {"accounts[0].logins[1].search", "accounts[0].logins[1].replace", NULL};
    expect_config_refused(
        WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": 1, \"search\": \"/live/u1/p1/\"}"),
        paths);
}

Test(logins, refused_regex_that_does_not_compile)
{
    const char *paths[] = {"accounts[0].logins[1].search", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": 1,"
                                         " \"search\": \"/live/(u1/p1/\","
                                         " \"replace\": \"/live/u2/p2/\"}"),
                          paths);
}

Test(logins, refused_max_streams_negative)
{
    const char *paths[] = {"accounts[0].logins[1].max_streams", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": -1}"), paths);
}

Test(logins, refused_reserve_over_max_streams)
{
    const char *paths[] = {"accounts[0].logins[1].reserve", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": 1, \"reserve\": 2}"),
                          paths);
}

Test(logins, refused_reserve_on_an_unlimited_login)
{
    const char *paths[] = {"accounts[0].logins[1].reserve", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": 0, \"reserve\": 1}"),
                          paths);
}

Test(logins, refused_cooldown_past_ten_minutes)
{
    const char *paths[] = {"accounts[0].logins[1].cooldown_ms", NULL};
    expect_config_refused(
        WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": 1, \"cooldown_ms\": 600001}"), paths);
}

Test(logins, refused_max_streams_fraction)
{
    const char *paths[] = {"accounts[0].logins[1].max_streams", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": 1.5}"), paths);
}

Test(logins, refused_max_streams_string)
{
    const char *paths[] = {"accounts[0].logins[1].max_streams", NULL};
    expect_config_refused(WITH_BAD_LOGIN("{\"id\": \"p-alt\", \"max_streams\": \"1\"}"), paths);
}

/* The path names the right account too: the bad login is in the second one. */
Test(logins, refused_names_the_account_index)
{
    const char *paths[] = {"accounts[1].logins[0].id", NULL};
    expect_config_refused("[{\"id\": 1, \"max_streams\": 1},"
                          " {\"id\": 2, \"logins\": [{\"id\": \"bad id\", \"max_streams\": 1}]}]",
                          paths);
}

/*--- One login shared by two accounts, three nodes --------------------------*/

/* Accounts 1 and 2 both list login "shared" (limit 1, user u1 at the
 * provider). Three `sflimit check`s at once, nodes n1..n3, each a batch of
 * one stream of each account, 1 s each: one limit over both accounts and
 * all three nodes, so the provider never sees two at once and refuses
 * nothing; every result is OK and names "shared". */
Test(logins, shared_login_across_accounts_and_nodes)
{
    const char *users[] = {"u1:p1:1", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    const char *accounts = "[{\"id\": 1, \"name\": \"A\", \"logins\":"
                           " [{\"id\": \"shared\", \"max_streams\": 1}]},"
                           " {\"id\": 2, \"name\": \"B\", \"logins\":"
                           " [{\"id\": \"shared\", \"max_streams\": 1}]}]";
    char config[NRUNS][256], streams[NRUNS][256];
    long long ids[NRUNS][2];
    for (int n = 0; n < NRUNS; n++) {
        char node[8], file[32];
        snprintf(node, sizeof(node), "n%d", n + 1);
        snprintf(file, sizeof(file), "n%d.json", n + 1);
        write_config(&(th_config){.accounts = accounts, .node_id = node, .file = file}, config[n],
                     sizeof(config[n]));
        th_streams sb;
        th_streams_init(&sb);
        ids[n][0] = 10 * (n + 1) + 1; /* of account 1 */
        ids[n][1] = 10 * (n + 1) + 2; /* of account 2 */
        th_streams_add(&sb, provider.port, ids[n][0], NULL, 1, "u1", "p1");
        th_streams_add(&sb, provider.port, ids[n][1], NULL, 2, "u1", "p1");
        snprintf(file, sizeof(file), "n%d-streams.json", n + 1);
        th_streams_write(&sb, dir, file, streams[n], sizeof(streams[n]));
    }
    for (int n = 0; n < NRUNS; n++)
        th_check_start(&runs[n], dir, config[n], streams[n], NULL);
    for (int n = 0; n < NRUNS; n++) {
        int code = th_exit_code(th_run_wait(&runs[n], 90000));
        cr_assert_eq(code, 0, "node n%d: exit %d; stderr:\n%s", n + 1, code,
                     th_run_stderr(&runs[n]));
    }

    cr_assert_eq(th_provider_stat(&provider, "violations"), 0,
                 "the provider saw a violation: the shared login was counted twice");
    cr_assert_eq(th_provider_stat(&provider, "refused"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.max_seen"), 1);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.requests"), 2 * NRUNS);
    for (int n = 0; n < NRUNS; n++) {
        th_results r;
        th_results_read(&r, runs[n].out);
        expect_all_ok(&r, ids[n], 2, &runs[n]);
        cr_assert_eq(count_login(&r, "shared"), 2, "node n%d: a result names another login", n + 1);
        cr_assert_eq(th_num_of(th_result_for(&r, ids[n][0]), "m3u_account"), 1);
        cr_assert_eq(th_num_of(th_result_for(&r, ids[n][1]), "m3u_account"), 2);
        th_results_free(&r);
    }
}
