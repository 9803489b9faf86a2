/* test_preempt.c - viewers first: when Dispatcharr starts playing a channel
 * on a login whose slots sfl's checks fill, the youngest check gives way at
 * once and its stream is checked again later, with one final result.
 *
 * The world: a fake Dispatcharr whose one XC account has one profile (70, a
 * login of 2) on the fake provider's user u1; a node that syncs it and
 * polls its viewers (dispatcharr.viewers); a `sflimit check` with no account
 * in its config (so it takes account 7 for one login under its own keys,
 * which is where the sync put login d70) runs two checks that hold their
 * connections 4 s. The provider allows u1 three connections, so that a check
 * that did not give way shows up as a third connection rather than a
 * refusal: its count is the ground truth. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define API_KEY "Key-preempt-distinctive"

static sfl_test_redis redis;
static sfl_test_provider provider;
static sfl_test_dispatcharr fake;
static char dir[128], node_err[256];
static pid_t node_pid;
static th_run run;

static void setup(void)
{
    th_clear_env();
    memset(&run, 0, sizeof(run));
    memset(&fake, 0, sizeof(fake));
    node_pid = 0;
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    th_run_reap(&run);
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    th_dispatcharr_stop(&fake);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(preempt, .init = setup, .fini = teardown, .timeout = 120);

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

static int external_is_1(void *arg)
{
    (void)arg;
    return conf_field("external") == 1;
}

static int two_checks_open(void *arg)
{
    (void)arg;
    return th_provider_stat(&provider, "users.u1.current") == 2;
}

static int one_check_open(void *arg)
{
    (void)arg;
    return th_provider_stat(&provider, "users.u1.current") <= 1;
}

Test(preempt, youngest_check_gives_way_to_a_viewer_and_is_checked_again)
{
    const char *users[] = {"u1:p1:3", NULL};
    th_provider_start(&provider, users, 4000, NULL);
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

    /* The node: syncs the account and polls its viewers (none yet). */
    char text[1024], config[256];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"poller\", \"redis\": {\"url\": \"%s\"},\n"
             " \"http\": {\"listen\": \"127.0.0.1:0\"},\n"
             " \"lease\": {" TH_LEASE "},\n"
             " \"dispatcharr\": {\"url\": \"http://127.0.0.1:%d\", \"api_key\": \"%s\",\n"
             "                 \"sync_interval\": 5, \"viewers\": true, \"poll_ms\": 200,\n"
             "                 \"max_age_ms\": 1500}}\n",
             redis.url, fake.port, API_KEY);
    th_write_file(dir, "node.json", text, config, sizeof(config));
    snprintf(node_err, sizeof(node_err), "%s/node.err", dir);
    const char *argv[] = {SFL_BIN, "node", "-c", config, NULL};
    node_pid = th_spawn((char *const *)argv, NULL, node_err);
    cr_assert(th_until(figure_written, NULL, 20000), "no viewers' figure for login d70 in 20 s");

    /* Two checks fill the login. */
    char cconf[256], streams[256];
    th_write_config(dir, &(th_config){.redis_url = redis.url, .node_id = "checker"}, cconf,
                    sizeof(cconf));
    th_streams sb;
    th_streams_init(&sb);
    th_streams_add(&sb, provider.port, 1, NULL, 7, "u1", "p1");
    th_streams_add(&sb, provider.port, 2, NULL, 7, "u1", "p1");
    th_streams_write(&sb, dir, "streams.json", streams, sizeof(streams));
    th_check_start(&run, dir, cconf, streams, NULL);
    cr_assert(th_until(two_checks_open, NULL, 30000), "the two checks never ran at once");

    /* A viewer starts a channel on profile 70. */
    th_viewers v;
    th_viewers_init(&v);
    th_viewers_live(&v, &(th_live){.profile = 70, .stream = 99, .clients = 1});
    char buf[16384];
    int64_t t0 = th_now_ms();
    th_dispatcharr_viewers(&fake, th_viewers_json(&v, buf, sizeof(buf)));
    th_viewers_free(&v);
    cr_assert(th_until(external_is_1, NULL, 10000), "the viewer was never counted on d70");
    cr_assert(th_until(one_check_open, NULL, 10000),
              "two checks still hold the login 10 s after a viewer came");
    fprintf(stderr, "preempt: a check gave way %lld ms after the viewer came (poll_ms 200)\n",
            (long long)(th_now_ms() - t0));

    cr_assert_eq(th_exit_code(th_run_wait(&run, 60000)), 0, "stderr:\n%s", th_run_stderr(&run));
    th_results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 2, "%d results for 2 streams", r.n);
    for (int i = 0; i < 2; i++)
        cr_assert(th_has_status(r.v[i], "OK"), "stream %lld: %s (%s)", th_id_of(r.v[i]),
                  th_str_of(r.v[i], "status"), th_str_of(r.v[i], "error"));
    th_results_free(&r);
    /* The one that gave way was checked again: three requests for two. */
    cr_assert_eq(th_provider_stat(&provider, "users.u1.requests"), 3);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert(strstr(th_run_stderr(&run), "gave way to viewers"), "stderr:\n%s",
              th_run_stderr(&run));
}
