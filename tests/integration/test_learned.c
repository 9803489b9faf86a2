/* test_learned.c - issue #15 (learned limits) and #19 item 4 (errors that
 * name the cause), against the real binaries: `sflimit check` and `sflimit
 * node` running real ffmpeg on a real MPEG-TS that the fake provider
 * serves, a real redis-server, and the provider's own counts as the ground
 * truth (max_seen: the most connections a user had open at once;
 * real_refusals: requests refused over its "real limit", a limit below
 * the configured one, changed with POST /control/<user>).
 *
 * What must hold (the "What this must show"):
 *   - configured 3, real 2 refusing with 458: after the first refusal at
 *     most one more in the window; every stream ends OK (rechecked), never
 *     more than 2 at once at the provider;
 *   - the real limit raised back to 3: the effective limit is 3 again within
 *     the quiet period plus two check lengths, and the provider never sees
 *     more than 3;
 *   - a panel's max_connections "1" on a login of 2: at most 1 at once;
 *     "0": the configured 2 holds;
 *   - a refusal that a viewer figure explains lowers nothing;
 *   - no credential in any log, error, Redis value or metric label.
 * And learn.lua's rules one by one, on a real Redis (halving inside the
 * window, the climb a proven step at a time, reset, the panel's cap). */
#include "harness.h"

#include "scripts.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PASS "Pw-learned-7c1e-distinctive"
#define TOKEN "learned-test-token"
#define CONF1 "sfl:{a:1}:conf"

static sfl_test_redis redis;
static sfl_test_provider provider;
static char dir[128];
static char ts[256];
static th_run run, run2;
static pid_t node_pid;
static int node_port;
static char node_err[256];
static th_viewer viewer;

static void setup(void)
{
    th_clear_env();
    memset(&provider, 0, sizeof(provider));
    memset(&viewer, 0, sizeof(viewer));
    node_pid = 0;
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    th_run_reap(&run);
    th_run_reap(&run2);
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
        node_pid = 0;
    }
    th_viewer_stop(&viewer);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(learned, .init = setup, .fini = teardown, .timeout = 150);

/*--- The parties ------------------------------------------------------------*/

static int have_ffmpeg(void)
{
    const char *argv[] = {"ffmpeg", "-hide_banner", "-version", NULL};
    char log[256];
    snprintf(log, sizeof(log), "%s/ffmpeg-version.log", dir);
    int st = th_wait(th_spawn((char *const *)argv, log, log), 20000);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* A 3 s MPEG-TS (h264 + aac) in dir/media.ts; skips the test when this
 * ffmpeg cannot make one. */
static void make_media(void)
{
    if (!have_ffmpeg())
        cr_skip_test("ffmpeg is not installed");
    char log[256];
    snprintf(ts, sizeof(ts), "%s/media.ts", dir);
    snprintf(log, sizeof(log), "%s/ffmpeg-gen.log", dir);
    /* clang-format off */
    const char *gen[] = {"ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
                         "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                         "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3",
                         "-c:v", "libx264", "-c:a", "aac", "-f", "mpegts", ts, NULL};
    /* clang-format on */
    int st = th_wait(th_spawn((char *const *)gen, log, log), 60000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        cr_skip_test("ffmpeg cannot make the test stream (libx264/aac?)");
}

/* The default check of the README: ffmpeg at -v verbose, one connection,
 * read at its own pace (-re) so that a check lasts its duration. */
#define FFMPEG_CMD                                                                                 \
    "[\"ffmpeg\", \"-hide_banner\", \"-nostdin\", \"-v\", \"verbose\", \"-re\","                   \
    " \"-user_agent\", \"{user_agent}\", \"{input_options}\", \"-i\", \"{url}\", \"-t\","          \
    " \"{duration}\", \"-f\", \"null\", \"-\"]"

/* Tells the provider what user really allows and what its panel says. */
static void control(const char *user, const char *query)
{
    char path[256];
    snprintf(path, sizeof(path), "/control/%s?%s", user, query);
    th_http_resp r;
    cr_assert_eq(th_http(provider.port, NULL, "POST", path, NULL, &r), 0, "no answer to %s", path);
    cr_assert_eq(r.status, 200, "%s: %d %s", path, r.status, r.body ? r.body : "");
    th_http_free(&r);
}

static long long user_stat(const char *user, const char *what)
{
    char path[128];
    snprintf(path, sizeof(path), "users.%s.%s", user, what);
    return th_provider_stat(&provider, path);
}

/* A conf field of account 1's login as a number; -1 when absent. */
static long long conf1(const char *field)
{
    redisReply *r = th_redis(&redis, "HGET " CONF1 " %s", field);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

/* The effective limit as the grant scripts compute it (prelude.lua). */
static long long effective1(void)
{
    long long max = conf1("max_streams"), caps[2] = {conf1("panel_max"), conf1("learned_limit")};
    for (int i = 0; i < 2; i++)
        if (max >= 0 && caps[i] > 0 && (max == 0 || caps[i] < max))
            max = caps[i];
    return max;
}

/* n streams of user on account 1, ids from first, into dir/name. */
static void write_streams(const char *name, const char *user, int first, int n, char *path,
                          size_t len)
{
    th_streams b;
    th_streams_init(&b);
    for (int i = 0; i < n; i++)
        th_streams_add(&b, provider.port, first + i, NULL, 1, user, PASS);
    th_streams_write(&b, dir, name, path, len);
}

/* A config for `sflimit check` (and the node): account 1 as accounts_json,
 * ffmpeg checks of duration s, no retry, learned windows as given. */
static void write_config(const char *accounts_json, double duration, double window, double quiet,
                         const char *more, char *path, size_t len)
{
    char extra[1024];
    snprintf(extra, sizeof(extra),
             ", \"learned\": {\"window\": %g, \"quiet\": %g, \"recheck_after\": 0.5}%s", window,
             quiet, more ? more : "");
    th_write_config(dir,
                    &(th_config){.redis_url = redis.url,
                                 .accounts = accounts_json,
                                 .command = FFMPEG_CMD,
                                 .parser = "ffmpeg",
                                 .ffmpeg_duration = duration,
                                 .retries = 0,
                                 .acquire_timeout = 120,
                                 .check_timeout = 30,
                                 .extra = extra},
                    path, len);
}

/* Nothing the test named as a credential in text. */
static void expect_no_password(const char *what, const char *text)
{
    cr_assert(text, "%s: nothing to read", what);
    cr_assert_null(strstr(text, PASS), "%s carries the password", what);
}

/* Every key and value under sfl:* holds no password. */
static void expect_redis_clean(void)
{
    redisReply *keys = th_redis(&redis, "KEYS *");
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        expect_no_password("a Redis key name", k);
        redisReply *t = th_redis(&redis, "TYPE %s", k);
        redisReply *v = NULL;
        if (strcmp(t->str, "hash") == 0)
            v = th_redis(&redis, "HGETALL %s", k);
        else if (strcmp(t->str, "zset") == 0)
            v = th_redis(&redis, "ZRANGE %s 0 -1", k);
        else if (strcmp(t->str, "string") == 0)
            v = th_redis(&redis, "GET %s", k);
        else if (strcmp(t->str, "list") == 0)
            v = th_redis(&redis, "LRANGE %s 0 -1", k);
        else if (strcmp(t->str, "set") == 0)
            v = th_redis(&redis, "SMEMBERS %s", k);
        if (v && v->type == REDIS_REPLY_STRING)
            expect_no_password(k, v->str);
        for (size_t j = 0; v && v->type == REDIS_REPLY_ARRAY && j < v->elements; j++)
            if (v->element[j]->type == REDIS_REPLY_STRING)
                expect_no_password(k, v->element[j]->str);
        freeReplyObject(v);
        freeReplyObject(t);
    }
    freeReplyObject(keys);
}

/* The log of the test's run and the errors of its results hold no password
 * (a result's stream_url is the input's own URL, as given). */
static void expect_run_clean(void)
{
    char *err = th_read_file(run.err);
    expect_no_password("the log", err);
    free(err);
    th_results r;
    th_results_read(&r, run.out);
    for (int i = 0; i < r.n; i++) {
        const char *e = th_str_of(r.v[i], "error");
        if (e)
            expect_no_password("a result's error", e);
    }
    th_results_free(&r);
}

/*--- #19 item 4: the error names the cause ------------------------------------*/

/* A provider serving filler packets (not media) and a URL it answers 404:
 * each result's error is the line that says why, never ffmpeg's trailing
 * statistics line. */
Test(learned, ffmpeg_error_names_the_cause)
{
    if (!have_ffmpeg())
        cr_skip_test("ffmpeg is not installed");
    const char *users[] = {"u:" PASS ":2", NULL};
    th_provider_start(&provider, users, 1500, NULL); /* filler: TS null packets */
    char config[256], streams[256], text[1024];
    write_config("[{\"id\": 1, \"max_streams\": 2}]", 1, 60, 300, NULL, config, sizeof(config));
    snprintf(text, sizeof(text),
             "[{\"id\": 1, \"name\": \"filler\", \"url\": "
             "\"http://127.0.0.1:%d/live/u/" PASS "/1.ts\", \"m3u_account\": 1},"
             " {\"id\": 2, \"name\": \"gone\", \"url\": \"http://127.0.0.1:%d/nothere/2.ts\","
             " \"m3u_account\": 1}]",
             provider.port, provider.port);
    th_write_file(dir, "streams.json", text, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 60000)), 0, "stderr:\n%s", th_run_stderr(&run));
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 2);
    const cJSON *filler = th_result_for(&r, 1), *gone = th_result_for(&r, 2);
    const char *e1 = th_str_of(filler, "error"), *e2 = th_str_of(gone, "error");
    cr_assert_str_eq(th_str_of(filler, "status"), "Error");
    cr_assert(
        e1 && (strstr(e1, "could not find codec parameters") || strstr(e1, "Invalid data found")),
        "the filler's error does not say why: %s", e1 ? e1 : "null");
    cr_assert_null(strstr(e1, "Statistics"), "the filler's error is a statistics line: %s", e1);
    cr_assert_str_eq(th_str_of(gone, "status"), "Error", "a 404 is not a refusal");
    cr_assert(e2 && strstr(e2, "404"), "the 404's error does not say 404: %s", e2 ? e2 : "null");
    cr_assert_null(strstr(e2, "Statistics"), "%s", e2);
    cr_assert_eq(th_num_of(gone, "http_code"), 404);
    expect_run_clean();
    th_results_free(&r);
}

/*--- Refusals -----------------------------------------------------------------*/

/* Configured 3, the provider's real limit 2 refusing with 458: the first
 * refusal lowers the login to 2 (3 held - 1); within the window at most one
 * more refusal; every stream ends OK, rechecked, never more than 2 at once
 * at the provider. */
Test(learned, refusal_lowers_the_limit)
{
    make_media();
    const char *users[] = {"u:" PASS ":3", NULL};
    th_provider_start(&provider, users, 4000, ts); /* looped; ffmpeg leaves after -t */
    control("u", "real_limit=2&code=458");
    char config[256], streams[256];
    /* A window longer than the batch; no climb in it. */
    write_config("[{\"id\": 1, \"max_streams\": 3}]", 2, 120, 120, NULL, config, sizeof(config));
    write_streams("streams.json", "u", 1, 8, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 120000)), 0, "stderr:\n%s", th_run_stderr(&run));
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 8, "one result per stream; stderr:\n%s", th_run_stderr(&run));
    for (int i = 0; i < r.n; i++)
        cr_assert(th_has_status(r.v[i], "OK"), "stream %lld: %s (%s)", th_id_of(r.v[i]),
                  th_str_of(r.v[i], "status"),
                  th_str_of(r.v[i], "error") ? th_str_of(r.v[i], "error") : "");
    long long refusals = user_stat("u", "real_refusals");
    cr_assert_geq(refusals, 1, "the provider never refused: the test tests nothing");
    cr_assert_leq(refusals, 2, "%lld refusals in one window; stderr:\n%s", refusals,
                  th_run_stderr(&run));
    cr_assert_leq(user_stat("u", "max_seen"), 2, "the provider saw u over its real limit");
    cr_assert_eq(user_stat("u", "violations"), 0);
    cr_assert_eq(user_stat("u", "total"), 8, "each stream read once to its end");
    cr_assert_eq(conf1("learned_limit"), refusals == 1 ? 2 : 1);
    char *log = th_read_file(run.err);
    cr_assert(log &&
                  strstr(log, "login 1: effective limit 3 -> 2 (refused (HTTP 458) with 3 held)"),
              "the change is not logged with its reason:\n%s", log ? log : "");
    cr_assert(strstr(log, "was refused by the provider (1 of 3); checked again later"), "%s", log);
    free(log);
    expect_run_clean();
    expect_redis_clean();
    th_results_free(&r);

    /* accounts set forgets what was learned. */
    char id[8] = "1", max[8] = "3";
    const char *argv[] = {SFL_BIN, "accounts", "set", id, max, "--redis", redis.url, NULL};
    th_run_start(&run, dir, argv);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 20000)), 0, "%s", th_run_stderr(&run));
    cr_assert_eq(conf1("learned_limit"), -1, "accounts set kept the learned limit");
    cr_assert_eq(effective1(), 3);
}

/* What one node learns holds for all: two `sflimit check`s (nodes t1 and
 * t2) share the login of configured 3 that the provider really allows 2.
 * Whichever is refused first lowers the limit for both: every stream OK,
 * never more than 2 at once at the provider, at most 2 refusals. */
Test(learned, learned_limit_is_shared_by_nodes)
{
    make_media();
    const char *users[] = {"u:" PASS ":3", NULL};
    th_provider_start(&provider, users, 4000, ts); /* looped; ffmpeg leaves after -t */
    control("u", "real_limit=2&code=458");
    th_account(&redis, 1, 3); /* no recovery wait: both start at once */
    char c1[256], c2[256], s1[256], s2[256];
    write_config("[{\"id\": 1, \"max_streams\": 3}]", 2, 120, 120, NULL, c1, sizeof(c1));
    char extra[256];
    snprintf(extra, sizeof(extra),
             ", \"learned\": {\"window\": 120, \"quiet\": 120, \"recheck_after\": 0.5}");
    th_write_config(dir,
                    &(th_config){.redis_url = redis.url,
                                 .node_id = "t2",
                                 .accounts = "[{\"id\": 1, \"max_streams\": 3}]",
                                 .command = FFMPEG_CMD,
                                 .parser = "ffmpeg",
                                 .ffmpeg_duration = 2,
                                 .acquire_timeout = 120,
                                 .check_timeout = 30,
                                 .extra = extra,
                                 .file = "t2.json"},
                    c2, sizeof(c2));
    write_streams("s1.json", "u", 1, 4, s1, sizeof(s1));
    write_streams("s2.json", "u", 11, 4, s2, sizeof(s2));
    th_check_start(&run, dir, c1, s1, NULL);
    th_check_start(&run2, dir, c2, s2, NULL);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 120000)), 0, "%s", th_run_stderr(&run));
    cr_assert_eq(th_exit_code(th_run_wait(&run2, 120000)), 0, "%s", th_run_stderr(&run2));
    th_run *runs[2] = {&run, &run2};
    for (int k = 0; k < 2; k++) {
        th_results r;
        th_results_read(&r, runs[k]->out);
        cr_assert_eq(r.n, 4);
        for (int i = 0; i < r.n; i++)
            cr_assert(th_has_status(r.v[i], "OK"), "stream %lld: %s (%s)", th_id_of(r.v[i]),
                      th_str_of(r.v[i], "status"),
                      th_str_of(r.v[i], "error") ? th_str_of(r.v[i], "error") : "");
        th_results_free(&r);
    }
    long long refusals = user_stat("u", "real_refusals");
    cr_assert_geq(refusals, 1, "never refused: the test tests nothing");
    cr_assert_leq(refusals, 2, "each node learned on its own: %lld refusals", refusals);
    cr_assert_leq(user_stat("u", "max_seen"), 2);
    cr_assert_eq(user_stat("u", "violations"), 0);
    cr_assert_eq(user_stat("u", "total"), 8);
    expect_redis_clean();
}

/* Configured 2, the provider's real limit 1 enforced by a redirect to a
 * short clip (302 to /clip.ts, under a second of video): the check that
 * got the clip is Refused, not OK, the login learns 1, and every stream
 * ends OK, one at a time at the provider. */
Test(learned, redirect_to_a_clip_is_a_refusal)
{
    make_media();
    const char *users[] = {"u:" PASS ":2", NULL};
    th_provider_start(&provider, users, 4000, ts); /* looped; ffmpeg leaves after -t */
    control("u", "real_limit=1&code=302");
    char config[256], streams[256];
    write_config("[{\"id\": 1, \"max_streams\": 2}]", 3, 120, 120, NULL, config, sizeof(config));
    write_streams("streams.json", "u", 1, 3, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 90000)), 0, "stderr:\n%s", th_run_stderr(&run));
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 3);
    for (int i = 0; i < r.n; i++)
        cr_assert(th_has_status(r.v[i], "OK"), "stream %lld: %s (%s)", th_id_of(r.v[i]),
                  th_str_of(r.v[i], "status"),
                  th_str_of(r.v[i], "error") ? th_str_of(r.v[i], "error") : "");
    th_results_free(&r);
    long long refusals = user_stat("u", "real_refusals");
    cr_assert_geq(refusals, 1, "never redirected: the test tests nothing");
    cr_assert_leq(refusals, 2);
    cr_assert_eq(user_stat("u", "max_seen"), 1);
    cr_assert_eq(conf1("learned_limit"), 1);
    char *log = th_read_file(run.err);
    cr_assert(log &&
                  strstr(log, "login 1: effective limit 2 -> 1 (refused (redirect) with 2 held)"),
              "%s", log ? log : "");
    free(log);
    expect_run_clean();
}

static int refused_once(void *arg)
{
    (void)arg;
    return user_stat("u", "real_refusals") >= 1;
}

/* A refused stream waiting to be checked again is not lost when the batch
 * is stopped: SIGTERM while it waits (recheck_after 60 s) gives it a
 * result, Cancelled, as any queued stream. */
Test(learned, refused_stream_waiting_is_not_lost)
{
    make_media();
    const char *users[] = {"u:" PASS ":2", NULL};
    th_provider_start(&provider, users, 8000, ts); /* looped; ffmpeg leaves after -t */
    control("u", "real_limit=1&code=458");
    th_account(&redis, 1, 2);
    char config[256], streams[256];
    th_write_config(dir,
                    &(th_config){.redis_url = redis.url,
                                 .accounts = "[{\"id\": 1, \"max_streams\": 2}]",
                                 .command = FFMPEG_CMD,
                                 .parser = "ffmpeg",
                                 .ffmpeg_duration = 6,
                                 .check_timeout = 30,
                                 .extra = ", \"learned\": {\"recheck_after\": 60}"},
                    config, sizeof(config));
    write_streams("streams.json", "u", 1, 2, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert(th_until(refused_once, NULL, 30000), "never refused; stderr:\n%s",
              th_run_stderr(&run));
    usleep(300 * 1000); /* its result is in: it waits to queue again */
    kill(run.pid, SIGTERM);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 30000)), 128 + SIGTERM, "%s", th_run_stderr(&run));
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 2, "a stream got no result; stderr:\n%s", th_run_stderr(&run));
    int cancelled = 0;
    for (int i = 0; i < r.n; i++) {
        cr_assert(th_has_status(r.v[i], "OK") || th_has_status(r.v[i], "Cancelled"), "%s",
                  th_str_of(r.v[i], "status"));
        cancelled += th_has_status(r.v[i], "Cancelled");
    }
    cr_assert_geq(cancelled, 1);
    th_results_free(&r);
}

typedef struct climb {
    long long max_eff;  /* the highest effective limit sampled */
    long long refusals; /* real refusals when the provider allowed 3 again */
} climb;

static int back_to_3(void *arg)
{
    climb *c = arg;
    long long e = effective1();
    if (e > c->max_eff)
        c->max_eff = e;
    return e == 3 && conf1("learned_limit") == -1;
}

static int learned_something(void *arg)
{
    (void)arg;
    return conf1("learned_limit") > 0;
}

/* The provider's real limit goes back to 3 once sfl learned 2: with no
 * refusal for the quiet period, the limit climbs back to 3 within the
 * quiet period plus two check lengths, never above 3, and the provider
 * never sees more than 3. */
Test(learned, limit_climbs_back)
{
    make_media();
    const double duration = 2, quiet = 4;
    const char *users[] = {"u:" PASS ":3", NULL};
    th_provider_start(&provider, users, 4000, ts); /* looped; ffmpeg leaves after -t */
    control("u", "real_limit=2&code=458");
    char config[256], streams[256];
    write_config("[{\"id\": 1, \"max_streams\": 3}]", duration, 2, quiet, NULL, config,
                 sizeof(config));
    write_streams("streams.json", "u", 1, 24, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert(th_until(learned_something, NULL, 30000),
              "nothing learned (the provider saw at most %lld at once, refused %lld); "
              "stderr:\n%s",
              user_stat("u", "max_seen"), user_stat("u", "real_refusals"), th_run_stderr(&run));
    int64_t t0 = th_now_ms();
    control("u", "real_limit=0");
    climb c = {0, user_stat("u", "real_refusals")};
    /* The bound: the quiet period plus two check lengths, with room for a
     * slow machine (the check starts, ffmpeg's own start). */
    int bound_ms = (int)((quiet + 2 * duration) * 1000) + 4000;
    cr_assert(th_until(back_to_3, &c, bound_ms),
              "the limit is %lld, learned %lld, %lld ms after the provider allowed 3 again; "
              "stderr:\n%s",
              effective1(), conf1("learned_limit"), (long long)(th_now_ms() - t0),
              th_run_stderr(&run));
    cr_assert_leq(c.max_eff, 3);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 120000)), 0, "stderr:\n%s", th_run_stderr(&run));
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 24);
    for (int i = 0; i < r.n; i++)
        cr_assert(th_has_status(r.v[i], "OK"), "stream %lld: %s", th_id_of(r.v[i]),
                  th_str_of(r.v[i], "status"));
    cr_assert_leq(user_stat("u", "max_seen"), 3);
    cr_assert_eq(user_stat("u", "violations"), 0);
    cr_assert_eq(user_stat("u", "real_refusals"), c.refusals,
                 "refused after the provider allowed 3 again");
    char *log = th_read_file(run.err);
    cr_assert(log && strstr(log, "login 1: effective limit 2 -> 3 (no refusal for 4 s: back to 3)"),
              "%s", log ? log : "");
    free(log);
    expect_run_clean();
    th_results_free(&r);
}

/*--- The panel ----------------------------------------------------------------*/

/* Starts `sflimit node` with config path on a free port; waits for its
 * /healthz. */
static void node_start(const char *accounts_json)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char more[256], conf[256];
        node_port = th_free_port();
        snprintf(more, sizeof(more),
                 ", \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"%s\"}", node_port, TOKEN);
        char name[32];
        snprintf(name, sizeof(name), "node%d.json", attempt);
        char extra[1024];
        snprintf(extra, sizeof(extra), ", \"learned\": {\"window\": 60, \"quiet\": 300}%s", more);
        th_write_config(dir,
                        &(th_config){.redis_url = redis.url,
                                     .node_id = "n1",
                                     .accounts = accounts_json,
                                     .command = FFMPEG_CMD,
                                     .parser = "ffmpeg",
                                     .ffmpeg_duration = 1,
                                     .extra = extra + 0,
                                     .file = name},
                        conf, sizeof(conf));
        snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, attempt);
        node_pid = th_node_start(conf, node_port, node_err, NULL, NULL);
        if (node_pid)
            return;
    }
    cr_assert_fail("the node never got a port");
}

/* Account 1's one login "1" (configured 2) counted by its panel: user u of
 * the provider, polled every second. */
static void panel_accounts(char *buf, size_t len)
{
    snprintf(buf, len,
             "[{\"id\": 1, \"name\": \"Panel\", \"logins\": [{\"id\": \"1\", \"max_streams\": 2,"
             " \"xtream\": {\"url\": \"http://127.0.0.1:%d\", \"username\": \"u\","
             " \"password\": \"" PASS "\", \"poll_s\": 1, \"max_age_ms\": 5000}}]}]",
             provider.port);
}

static int panel_max_is(void *arg)
{
    return conf1("panel_max") == *(const long long *)arg;
}

static int external_is(void *arg)
{
    return conf1("external") == *(const long long *)arg;
}

/* Four 1 s checks of u through `sflimit check` beside the node; asserts
 * every one OK. */
static void check_four(const char *accounts_json, int first)
{
    char config[256], streams[256], name[32];
    write_config(accounts_json, 1, 60, 300, NULL, config, sizeof(config));
    snprintf(name, sizeof(name), "streams%d.json", first);
    write_streams(name, "u", first, 4, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 60000)), 0, "stderr:\n%s", th_run_stderr(&run));
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 4);
    for (int i = 0; i < r.n; i++)
        cr_assert(th_has_status(r.v[i], "OK"), "stream %lld: %s (%s)", th_id_of(r.v[i]),
                  th_str_of(r.v[i], "status"),
                  th_str_of(r.v[i], "error") ? th_str_of(r.v[i], "error") : "");
    th_results_free(&r);
    expect_run_clean();
}

/* player_api.php says max_connections "1" on a login configured 2: at most
 * 1 at once at the provider, the API, status and metrics show the
 * effective limit 1 and the plan (exp_date in 3 days: flagged); "0"
 * (unlimited): the configured 2 holds. */
Test(learned, panel_max_connections_caps_the_login)
{
    make_media();
    char exp[64];
    snprintf(exp, sizeof(exp), "u:exp=%lld", (long long)time(NULL) + 3 * 86400);
    const char *users[] = {"u:" PASS ":2", NULL};
    const char *args[] = {"--panel", exp, NULL};
    th_provider_start_args(&provider, users, 4000, ts, args);
    control("u", "panel_max=1");
    char accounts[1024];
    panel_accounts(accounts, sizeof(accounts));
    node_start(accounts);
    long long one = 1, zero = 0;
    cr_assert(th_until(panel_max_is, &one, 15000), "the panel's max_connections never landed");

    check_four(accounts, 1);
    cr_assert_eq(user_stat("u", "max_seen"), 1, "the panel said 1");
    cr_assert_eq(user_stat("u", "violations"), 0);

    th_http_resp r;
    cr_assert_eq(th_http(node_port, TOKEN, "GET", "/v1/accounts", NULL, &r), 0);
    cr_assert_eq(r.status, 200);
    const cJSON *acc = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "accounts"), 0);
    const cJSON *login = cJSON_GetArrayItem(cJSON_GetObjectItem(acc, "logins"), 0);
    cr_assert_eq(th_num_of(acc, "effective_limit"), 1, "%s", r.body);
    cr_assert_eq(th_num_of(login, "effective_limit"), 1, "%s", r.body);
    cr_assert_eq(th_num_of(login, "max_streams"), 2, "%s", r.body);
    const cJSON *panel = cJSON_GetObjectItem(login, "panel");
    cr_assert_str_eq(th_str_of(panel, "status"), "Active", "%s", r.body);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(panel, "expiring")), "3 days left: %s", r.body);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(acc, "expiring")), "%s", r.body);
    expect_no_password("GET /v1/accounts", r.body);
    th_http_free(&r);
    cr_assert_eq(th_http(node_port, TOKEN, "GET", "/metrics", NULL, &r), 0);
    cr_assert(strstr(r.body, "sfl_login_effective_limit{") && strstr(r.body, "login=\"1\"} 1"),
              "no effective limit 1 in the metrics:\n%s", r.body);
    cr_assert(strstr(r.body, "sfl_checks_total{status=\"Refused\"} "), "%s", r.body);
    expect_no_password("GET /metrics", r.body);
    th_http_free(&r);
    const char *sargv[] = {SFL_BIN, "status", "--redis", redis.url, NULL};
    th_run_start(&run, dir, sargv);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 20000)), 0, "%s", th_run_stderr(&run));
    char *out = th_read_file(run.out);
    cr_assert(out && strstr(out, "effective 1") && strstr(out, "[EXPIRING]"), "status:\n%s",
              out ? out : "");
    free(out);

    /* "0" = unlimited: the configured 2 holds. */
    control("u", "panel_max=0");
    cr_assert(th_until(panel_max_is, &zero, 15000), "the panel's 0 never landed");
    cr_assert_eq(effective1(), 2);
    th_http(provider.port, NULL, "POST", "/reset", NULL, &r);
    th_http_free(&r);
    check_four(accounts, 11);
    cr_assert_eq(user_stat("u", "max_seen"), 2, "max_connections 0 is no cap: 2 at once");
    cr_assert_eq(user_stat("u", "violations"), 0);
    char *log = th_read_file(node_err);
    cr_assert(log && strstr(log, "login 1: effective limit 2 -> 1 (the panel says max_connections "
                                 "1)"),
              "%s", log ? log : "");
    expect_no_password("the node's log", log);
    free(log);
    expect_redis_clean();
}

/* A viewer holds one of u's connections and the panel counts it (external
 * 1): a refusal then is explained by others' connections, and lowers
 * nothing. */
Test(learned, refusal_explained_by_viewers_lowers_nothing)
{
    make_media();
    const char *users[] = {"u:" PASS ":3", NULL};
    th_provider_start(&provider, users, 4000, ts); /* looped; ffmpeg leaves after -t */
    control("u", "real_limit=2&code=458&panel_max=0");
    cr_assert_eq(th_viewer_start(&viewer, provider.port, "u", PASS, 1), 200);
    char accounts[1024];
    snprintf(accounts, sizeof(accounts),
             "[{\"id\": 1, \"logins\": [{\"id\": \"1\", \"max_streams\": 3,"
             " \"xtream\": {\"url\": \"http://127.0.0.1:%d\", \"username\": \"u\","
             " \"password\": \"" PASS "\", \"poll_s\": 30, \"max_age_ms\": 90000}}]}]",
             provider.port);
    /* One poll now, the next in 30 s: the batch runs on the figure 1. */
    node_start(accounts);
    long long one = 1;
    cr_assert(th_until(external_is, &one, 15000), "the viewer was never counted: %lld",
              conf1("external"));
    /* 3 - 1 others = 2 checks at once, plus the viewer: the provider's 3rd
     * connection is over its real 2, and is refused. */
    char config[256], streams[256];
    write_config(accounts, 2, 60, 300, NULL, config, sizeof(config));
    write_streams("streams.json", "u", 1, 2, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert_eq(th_exit_code(th_run_wait(&run, 90000)), 0, "stderr:\n%s", th_run_stderr(&run));
    cr_assert_geq(user_stat("u", "real_refusals"), 1, "never refused: the test tests nothing:\n%s",
                  th_run_stderr(&run));
    cr_assert_eq(conf1("learned_limit"), -1, "a refusal the viewer explains lowered the limit");
    cr_assert_eq(effective1(), 3);
    char *log = th_read_file(run.err);
    cr_assert(log && strstr(log, "others explain it"), "%s", log ? log : "");
    free(log);
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 2, "one result per stream");
    for (int i = 0; i < r.n; i++)
        cr_assert(th_has_status(r.v[i], "OK") || th_has_status(r.v[i], "Refused"), "%s",
                  th_str_of(r.v[i], "status"));
    th_results_free(&r);
    expect_run_clean();
    expect_redis_clean();
}

/*--- learn.lua's rules, one by one --------------------------------------------*/

/* learn.lua on account 1's login: args are up to four words (ARGV). */
static redisReply *learn(const char *args)
{
    const sfl_script *s = sfl_script_get("learn");
    cr_assert_not_null(s);
    char copy[128], *w[4] = {"0", "0", "0", "0"}, *save = NULL;
    snprintf(copy, sizeof(copy), "%s", args);
    int n = 0;
    for (char *t = strtok_r(copy, " ", &save); t && n < 4; t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    redisReply *r = th_redis(&redis, "EVAL %s 2 %s %s %s %s %s %s", s->text, CONF1,
                             "sfl:{a:1}:leases", w[0], w[1], w[2], w[3]);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "learn %s: %s", args,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
    return r;
}

static void holders(int n)
{
    redisReply *r = th_redis(&redis, "DEL sfl:{a:1}:leases");
    freeReplyObject(r);
    for (int i = 0; i < n; i++) {
        r = th_redis(&redis, "ZADD sfl:{a:1}:leases 99999999999999 l%d", i);
        freeReplyObject(r);
    }
}

/* {changed, before, after}. */
static void expect_learn(const char *args, long long changed, long long before, long long after)
{
    redisReply *r = learn(args);
    cr_assert_eq(r->element[0]->integer, changed, "%s: changed", args);
    cr_assert_eq(r->element[1]->integer, before, "%s: before", args);
    cr_assert_eq(r->element[2]->integer, after, "%s: after (%s)", args, r->element[3]->str);
    freeReplyObject(r);
}

Test(learned, learn_script_rules)
{
    th_account(&redis, 1, 8);
    holders(6);
    /* 6 held, refused: 5; again inside the window: halved, 2. */
    expect_learn("refused 60000 0 458", 1, 8, 5);
    expect_learn("refused 60000 0 458", 1, 5, 2);
    /* Quiet over (0): an OK climbs one step, to be proven... */
    expect_learn("ok 60000 0", 1, 2, 3);
    cr_assert_eq(conf1("learned_probe"), 1);
    /* ... and nothing climbs before a check at 3 went through. */
    holders(2);
    expect_learn("ok 60000 0", 0, 3, 3);
    holders(3);
    expect_learn("ok 60000 0", 0, 3, 3); /* the proof */
    cr_assert_eq(conf1("learned_probe"), -1);
    expect_learn("ok 60000 0", 1, 3, 4);
    /* A refusal others explain lowers nothing. */
    redisReply *x = th_redis(&redis, "HSET " CONF1 " external 1");
    freeReplyObject(x);
    expect_learn("refused 60000 0 458", 0, 4, 4);
    x = th_redis(&redis, "HDEL " CONF1 " external");
    freeReplyObject(x);
    /* The panel caps it, never above max_streams; 0 is no cap. */
    expect_learn("reset", 1, 4, 8);
    expect_learn("panel 3 4102444800 Active", 1, 8, 3);
    expect_learn("panel 20 4102444800 Active", 1, 3, 8);
    expect_learn("panel 0 4102444800 Active", 0, 8, 8);
    /* A refusal at 1 held stays at 1, never 0. */
    holders(1);
    expect_learn("refused 60000 0 429", 1, 8, 1);
    expect_learn("refused 60000 0 429", 0, 1, 1);
    cr_assert_eq(effective1(), 1);
    expect_learn("reset", 1, 1, 8);
}
