/* test_check.c - `sflimit check`, StreamFlow's batch job, as a user runs it:
 * the real binary, a real redis-server, and the fake provider as the ground
 * truth of how many connections each account really had open. The seed's
 * scenarios (limit 1, limit 2, independent accounts, mixed limits, unlimited,
 * custom streams, one result per stream), the global limit, no head-of-line
 * blocking, NoSlot, Timeout, SIGTERM, refused input, a real ffmpeg analysis
 * and a failing check whose error must not carry the credentials. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sfl_test_redis redis;
static sfl_test_provider provider;
static char dir[128];
static th_run run, run2; /* the test's sflimits, killed by teardown if a test failed early */

static void setup(void)
{
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    th_run_reap(&run);
    th_run_reap(&run2);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(check, .init = setup, .fini = teardown, .timeout = 120);

/*--- Config and streams ----------------------------------------------------*/

typedef th_config cfg;

/* This suite's configs: its Redis, and ffmpeg runs of 1 s; the rest as
 * th_config says. */
static void write_config(const cfg *c, char *path, size_t len)
{
    cfg full = *c;
    full.redis_url = redis.url;
    if (full.ffmpeg_duration <= 0)
        full.ffmpeg_duration = 1;
    th_write_config(dir, &full, path, len);
}

typedef th_streams sbuf;

static void sb_init(sbuf *b)
{
    th_streams_init(b);
}

/* A stream of the fake provider's USER/PASS; account < 0: a custom stream
 * (no m3u_account member at all). */
static void sb_add(sbuf *b, long long id, const char *name, long long account, const char *user,
                   const char *pass)
{
    th_streams_add(b, provider.port, id, name, account, user, pass);
}

static void sb_write(sbuf *b, char *path, size_t len)
{
    th_streams_write(b, dir, "streams.json", path, len);
}

/*--- Running sflimit check -------------------------------------------------*/

/* The exit code of a run (128 + N for signal N); fails the test if it does
 * not end within 60 s. */
static int wait_check(th_run *r)
{
    return th_exit_code(th_run_wait(r, 60000));
}

/* `sflimit check -c CONFIG STREAMS` to its end, as the test's run. */
static int run_check(const char *config, const char *streams)
{
    th_check_start(&run, dir, config, streams, NULL);
    return wait_check(&run);
}

/*--- Results ---------------------------------------------------------------*/

typedef th_results results;

/* Exactly one result per input id, none for anything else. */
static void expect_one_each(const results *r, const long long *ids, int n)
{
    cr_assert_eq(r->n, n, "%d results for %d streams; stderr:\n%s", r->n, n, th_run_stderr(&run));
    for (int i = 0; i < n; i++)
        th_result_for(r, ids[i]);
}

static void expect_all(const results *r, const char *status)
{
    for (int i = 0; i < r->n; i++)
        cr_assert(th_has_status(r->v[i], status), "stream %lld: status %s, not %s (error: %s)",
                  th_id_of(r->v[i]), th_str_of(r->v[i], "status"), status,
                  th_str_of(r->v[i], "error") ? th_str_of(r->v[i], "error") : "null");
}

/*--- Waiting on the world --------------------------------------------------*/

static long long leases_of(long long account)
{
    return th_redis_int(&redis, "ZCARD sfl:{a:%lld}:leases", account);
}

typedef struct acct_arg {
    long long account;
} acct_arg;

static int no_leases(void *arg)
{
    return leases_of(((acct_arg *)arg)->account) == 0;
}

static int provider_busy(void *arg)
{
    (void)arg;
    return th_provider_stat(&provider, "current") >= 1;
}

static int provider_idle(void *arg)
{
    (void)arg;
    return th_provider_stat(&provider, "current") == 0;
}

static int have_ffmpeg(void)
{
    const char *argv[] = {"ffmpeg", "-hide_banner", "-version", NULL};
    int st = th_wait(th_spawn((char *const *)argv, NULL, NULL), 20000);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/*--- Tests -----------------------------------------------------------------*/

/* Nothing to check: exit 0, no result, no lease key of the config's account. */
Test(check, empty_input)
{
    th_account(&redis, 1, 2);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 2}]"}, config, sizeof(config));
    th_write_file(dir, "streams.json", "[]\n", streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 0, "%d results for no streams", r.n);
    static const char *const kinds[] = {"leases", "holders", "fence", "waiters"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        cr_assert_eq(th_redis_int(&redis, "EXISTS sfl:{a:1}:%s", kinds[i]), 0,
                     "sfl:{a:1}:%s was written for an empty batch", kinds[i]);
}

/* One stream: one OK result carrying StreamFlow's fields; the lease is gone. */
Test(check, single_stream)
{
    const char *users[] = {"x:pw:1", NULL};
    th_provider_start(&provider, users, 300, NULL);
    th_account(&redis, 1, 1);
    char config[256], streams[256], url[160];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"name\": \"X\", \"max_streams\": 1}]"}, config,
                 sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 101, "A1", 1, "x", "pw");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    long long ids[] = {101};
    expect_one_each(&r, ids, 1);
    cJSON *o = r.v[0];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/live/x/pw/101.ts", provider.port);
    cr_assert_str_eq(th_str_of(o, "stream_name"), "A1");
    cr_assert_str_eq(th_str_of(o, "stream_url"), url);
    cr_assert_eq(th_num_of(o, "m3u_account"), 1);
    cr_assert_str_eq(th_str_of(o, "node"), "t1");
    cr_assert_str_eq(th_str_of(o, "status"), "OK", "error: %s", th_str_of(o, "error"));
    cr_assert_eq(th_num_of(o, "exit_code"), 0);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "error")), "error is not null");
    const char *at = th_str_of(o, "started_at");
    cr_assert(at && strlen(at) >= 20 && at[4] == '-' && at[10] == 'T',
              "started_at is not an ISO time: %s", at ? at : "null");
    cr_assert_geq(th_num_of(o, "duration_ms"), 250, "the check did not hold its 300 ms connection");
    cr_assert_geq(th_num_of(o, "lease_wait_ms"), 0);
    cr_assert_lt(th_num_of(o, "lease_wait_ms"), 3000, "a lone stream waited for its slot");
    cr_assert_eq(th_provider_stat(&provider, "users.x.total"), 1);
    cr_assert_eq(leases_of(1), 0, "the lease was not released");
    cr_assert_eq(th_redis_int(&redis, "HLEN sfl:{a:1}:holders"), 0, "a holder entry was left");
    th_results_free(&r);
}

/* The seed's test_multiple_stream_limit through the whole command. */
Test(check, limit_respected)
{
    const char *users[] = {"x:pw:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    th_account(&redis, 1, 2);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 2}]"}, config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    long long ids[] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        sb_add(&sb, ids[i], "s", 1, "x", "pw");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    expect_one_each(&r, ids, 4);
    expect_all(&r, "OK");
    cr_assert_eq(th_provider_stat(&provider, "users.x.max_seen"), 2);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.x.total"), 4);
    /* At least two of the four had to wait for a 1 s hold to end. */
    int waited = 0;
    for (int i = 0; i < r.n; i++)
        waited += th_num_of(r.v[i], "lease_wait_ms") >= 800;
    cr_assert_geq(waited, 2, "only %d stream(s) waited for a slot", waited);
    cr_assert_eq(leases_of(1), 0);
    th_results_free(&r);
}

/* The seed's test_multiple_accounts_independent: limit 1 each, they overlap. */
Test(check, two_accounts_in_parallel)
{
    const char *users[] = {"a:pa:1", "b:pb:1", NULL};
    th_provider_start(&provider, users, 1500, NULL);
    th_account(&redis, 1, 1);
    th_account(&redis, 2, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 1},"
                                    " {\"id\": 2, \"max_streams\": 1}]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 1, "A1", 1, "a", "pa");
    sb_add(&sb, 2, "B1", 2, "b", "pb");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    long long ids[] = {1, 2};
    expect_one_each(&r, ids, 2);
    expect_all(&r, "OK");
    cr_assert_eq(th_provider_stat(&provider, "max_concurrent"), 2,
                 "the two accounts' checks did not overlap");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    th_results_free(&r);
}

/* The seed's example: A limit 1, B limit 2, streams A1 A2 B1 B2 B3. Phase 1
 * runs A1 B1 B2 (3 at once), then A2 and B3 follow releases. */
Test(check, seed_mixed_limits)
{
    const char *users[] = {"a:pa:1", "b:pb:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    th_account(&redis, 1, 1);
    th_account(&redis, 2, 2);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"name\": \"A\", \"max_streams\": 1},"
                                    " {\"id\": 2, \"name\": \"B\", \"max_streams\": 2}]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 11, "A1", 1, "a", "pa");
    sb_add(&sb, 12, "A2", 1, "a", "pa");
    sb_add(&sb, 21, "B1", 2, "b", "pb");
    sb_add(&sb, 22, "B2", 2, "b", "pb");
    sb_add(&sb, 23, "B3", 2, "b", "pb");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    long long ids[] = {11, 12, 21, 22, 23};
    expect_one_each(&r, ids, 5);
    expect_all(&r, "OK");
    cr_assert_eq(th_provider_stat(&provider, "users.a.max_seen"), 1);
    cr_assert_eq(th_provider_stat(&provider, "users.b.max_seen"), 2);
    cr_assert_eq(th_provider_stat(&provider, "max_concurrent"), 3,
                 "phase 1 should run A1, B1 and B2 together");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    /* Phases 2 and 3: A2 and B3 waited for a release, and started after
     * every stream of phase 1. */
    cr_assert_geq(th_num_of(th_result_for(&r, 12), "lease_wait_ms"), 800);
    cr_assert_geq(th_num_of(th_result_for(&r, 23), "lease_wait_ms"), 800);
    long long phase1[] = {11, 21, 22}, later[] = {12, 23};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) {
            const char *p1 = th_str_of(th_result_for(&r, phase1[i]), "started_at");
            const char *p2 = th_str_of(th_result_for(&r, later[k]), "started_at");
            cr_assert(p1 && p2 && strcmp(p1, p2) < 0,
                      "stream %lld (%s) did not start before %lld (%s)", phase1[i],
                      p1 ? p1 : "null", later[k], p2 ? p2 : "null");
        }
    char *err = th_read_file(run.err);
    cr_assert(err && strstr(err, "Account 1: 2 streams, limit=1") &&
                  strstr(err, "Account 2: 3 streams, limit=2") &&
                  strstr(err, "Completed smart parallel check of 5/5 streams"),
              "the seed's log lines are missing:\n%s", err ? err : "");
    free(err);
    th_results_free(&r);
}

/* The seed's "progress called once per stream": 12 streams, 3 accounts,
 * result ids == input ids as sets, no duplicates. */
Test(check, every_stream_exactly_one_result)
{
    const char *users[] = {"a:pa:1", "b:pb:2", "c:pc:3", NULL};
    th_provider_start(&provider, users, 300, NULL);
    th_account(&redis, 1, 1);
    th_account(&redis, 2, 2);
    th_account(&redis, 3, 3);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 1},"
                                    " {\"id\": 2, \"max_streams\": 2},"
                                    " {\"id\": 3, \"max_streams\": 3}]"},
                 config, sizeof(config));
    static const char *const user[] = {"a", "b", "c"};
    static const char *const pass[] = {"pa", "pb", "pc"};
    long long ids[12];
    sbuf sb;
    sb_init(&sb);
    for (int i = 0; i < 12; i++) {
        ids[i] = 1000 + (long long)i * 37 - (i % 2) * 500; /* scattered, unsorted */
        sb_add(&sb, ids[i], "s", 1 + i % 3, user[i % 3], pass[i % 3]);
    }
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    expect_one_each(&r, ids, 12);
    expect_all(&r, "OK");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.a.total"), 4);
    cr_assert_eq(th_provider_stat(&provider, "users.b.total"), 4);
    cr_assert_eq(th_provider_stat(&provider, "users.c.total"), 4);
    th_results_free(&r);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Four streams of a full account ahead of one of another account: the other
 * account's stream does not wait behind them (the seed's version did). */
Test(check, no_head_of_line_blocking)
{
    const char *users[] = {"a:pa:1", "b:pb:1", NULL};
    th_provider_start(&provider, users, 1500, NULL);
    th_account(&redis, 1, 1);
    th_account(&redis, 2, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 1},"
                                    " {\"id\": 2, \"max_streams\": 1}]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    long long ids[] = {1, 2, 3, 4, 9};
    for (int i = 0; i < 4; i++)
        sb_add(&sb, ids[i], "A", 1, "a", "pa");
    sb_add(&sb, 9, "B", 2, "b", "pb");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    expect_one_each(&r, ids, 5);
    expect_all(&r, "OK");
    cJSON *b = th_result_for(&r, 9);
    cr_assert_lt(th_num_of(b, "lease_wait_ms"), 1000, "B waited %g ms behind account A's queue",
                 th_num_of(b, "lease_wait_ms"));
    const char *a_started[4];
    for (int i = 0; i < 4; i++) {
        a_started[i] = th_str_of(th_result_for(&r, ids[i]), "started_at");
        cr_assert_not_null(a_started[i]);
    }
    qsort(a_started, 4, sizeof(a_started[0]), cmp_str);
    const char *b_started = th_str_of(b, "started_at");
    cr_assert_not_null(b_started);
    cr_assert_lt(strcmp(b_started, a_started[1]), 0,
                 "B started at %s, after A's second stream (%s)", b_started, a_started[1]);
    cr_assert_eq(th_provider_stat(&provider, "users.a.max_seen"), 1);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    th_results_free(&r);
}

/* global_limit 2 over three accounts of limit 2: never more than 2 at once. */
Test(check, global_limit)
{
    const char *users[] = {"a:pa:2", "b:pb:2", "c:pc:2", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    th_account(&redis, 1, 2);
    th_account(&redis, 2, 2);
    th_account(&redis, 3, 2);
    char config[256], streams[256];
    write_config(&(cfg){.global_limit = 2,
                        .accounts = "[{\"id\": 1, \"max_streams\": 2},"
                                    " {\"id\": 2, \"max_streams\": 2},"
                                    " {\"id\": 3, \"max_streams\": 2}]"},
                 config, sizeof(config));
    static const char *const user[] = {"a", "b", "c"};
    static const char *const pass[] = {"pa", "pb", "pc"};
    long long ids[6];
    sbuf sb;
    sb_init(&sb);
    for (int i = 0; i < 6; i++) {
        ids[i] = i + 1;
        sb_add(&sb, ids[i], "s", 1 + i % 3, user[i % 3], pass[i % 3]);
    }
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    expect_one_each(&r, ids, 6);
    expect_all(&r, "OK");
    cr_assert_eq(th_provider_stat(&provider, "max_concurrent"), 2,
                 "global_limit 2 not kept (or not used)");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    th_results_free(&r);
}

/* max_streams 0 is unlimited and a stream without m3u_account is never
 * limited: all seven run at once under global_limit 10. */
Test(check, unlimited_and_custom)
{
    const char *users[] = {"u:pu:0", "c:pc:0", NULL};
    th_provider_start(&provider, users, 2500, NULL);
    th_account(&redis, 5, 0);
    char config[256], streams[256];
    write_config(&(cfg){.global_limit = 10, .accounts = "[{\"id\": 5, \"max_streams\": 0}]"},
                 config, sizeof(config));
    long long ids[7];
    sbuf sb;
    sb_init(&sb);
    for (int i = 0; i < 6; i++) {
        ids[i] = 50 + i;
        sb_add(&sb, ids[i], "U", 5, "u", "pu");
    }
    ids[6] = 77;
    sb_add(&sb, 77, "custom", -1, "c", "pc");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    expect_one_each(&r, ids, 7);
    expect_all(&r, "OK");
    cr_assert_eq(th_provider_stat(&provider, "max_concurrent"), 7);
    cr_assert_eq(th_provider_stat(&provider, "users.u.max_seen"), 6);
    cr_assert_eq(th_provider_stat(&provider, "users.c.total"), 1);
    cJSON *custom = th_result_for(&r, 77);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(custom, "m3u_account")),
              "a custom stream's m3u_account is not null");
    cr_assert_eq(th_num_of(th_result_for(&r, 50), "m3u_account"), 5);
    cr_assert_eq(leases_of(5), 0);
    th_results_free(&r);
}

/* No slot within acquire_timeout: NoSlot results naming the account; those
 * streams never reached the provider. */
Test(check, no_slot_in_time)
{
    const char *users[] = {"n:pn:1", NULL};
    th_provider_start(&provider, users, 1500, NULL);
    th_account(&redis, 4, 1);
    char config[256], streams[256];
    write_config(&(cfg){.acquire_timeout = 1, .accounts = "[{\"id\": 4, \"max_streams\": 1}]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    long long ids[] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        sb_add(&sb, ids[i], "N", 4, "n", "pn");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    expect_one_each(&r, ids, 3);
    int noslot = th_count_status(&r, "NoSlot"), ok = th_count_status(&r, "OK");
    cr_assert_geq(noslot, 1, "no NoSlot result with acquire_timeout 1 s and a 1.5 s hold");
    cr_assert_geq(ok, 1, "the first stream should have been checked");
    cr_assert_eq(noslot + ok, 3, "results other than OK and NoSlot");
    for (int i = 0; i < r.n; i++) {
        if (!th_has_status(r.v[i], "NoSlot"))
            continue;
        const char *e = th_str_of(r.v[i], "error");
        cr_assert(e && strstr(e, "account 4"), "NoSlot error does not name the account: %s",
                  e ? e : "null");
    }
    cr_assert_eq(th_provider_stat(&provider, "users.n.max_seen"), 1);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.n.total"), ok,
                 "a NoSlot stream reached the provider");
    /* Giving up on an account leaves nothing behind in Redis either: no
     * lease, and no ticket for the released slot to be handed to. */
    acct_arg a = {4};
    cr_assert(th_until(no_leases, &a, 2000), "%lld lease(s) left after the batch ended",
              leases_of(4));
    th_results_free(&r);
}

/* check.timeout 1 s against a 5 s stream: Timeout, the command is stopped,
 * the lease released. */
Test(check, timeout)
{
    const char *users[] = {"x:pw:1", NULL};
    th_provider_start(&provider, users, 5000, NULL);
    th_account(&redis, 6, 1);
    char config[256], streams[256];
    write_config(&(cfg){.check_timeout = 1, .accounts = "[{\"id\": 6, \"max_streams\": 1}]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 1, "T", 6, "x", "pw");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    long long ids[] = {1};
    expect_one_each(&r, ids, 1);
    cJSON *o = r.v[0];
    cr_assert_str_eq(th_str_of(o, "status"), "Timeout");
    const char *e = th_str_of(o, "error");
    cr_assert(e && strstr(e, "timeout"), "error does not mention the timeout: %s", e ? e : "null");
    cr_assert_geq(th_num_of(o, "duration_ms"), 900);
    cr_assert_lt(th_num_of(o, "duration_ms"), 4800, "the command ran to the end of the stream");
    acct_arg a = {6};
    cr_assert(th_until(no_leases, &a, 2000), "the lease was not released");
    cr_assert(th_until(provider_idle, NULL, 2000), "the timed-out command kept its connection");
    th_results_free(&r);
}

/* SIGTERM while one check runs and five wait: exit 143, six results (the
 * running one Cancelled or OK, the rest Cancelled), nothing new starts, no
 * lease left in Redis. */
Test(check, sigterm_cancels)
{
    const char *users[] = {"x:pw:1", NULL};
    th_provider_start(&provider, users, 2000, NULL);
    th_account(&redis, 1, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 1}]"}, config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    long long ids[] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; i++)
        sb_add(&sb, ids[i], "s", 1, "x", "pw");
    sb_write(&sb, streams, sizeof(streams));
    th_check_start(&run, dir, config, streams, NULL);
    cr_assert(th_until(provider_busy, NULL, 20000), "no check reached the provider; stderr:\n%s",
              th_run_stderr(&run));
    cr_assert_eq(leases_of(1), 1);
    kill(run.pid, SIGTERM);
    int st = th_run_wait(&run, 60000);
    cr_assert(WIFEXITED(st), "sflimit died of signal %d instead of exiting 143",
              WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 143, "exit %d; stderr:\n%s", WEXITSTATUS(st),
                 th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    expect_one_each(&r, ids, 6);
    cJSON *first = th_result_for(&r, 1);
    cr_assert(th_has_status(first, "Cancelled") || th_has_status(first, "OK"),
              "the running stream ended %s", th_str_of(first, "status"));
    cr_assert_not_null(th_str_of(first, "started_at"));
    for (int i = 1; i < 6; i++)
        cr_assert(th_has_status(th_result_for(&r, ids[i]), "Cancelled"), "queued stream %lld: %s",
                  ids[i], th_str_of(th_result_for(&r, ids[i]), "status"));
    cr_assert_geq(th_count_status(&r, "Cancelled"), 5);
    acct_arg a = {1};
    cr_assert(th_until(no_leases, &a, 2000), "%lld lease(s) left after SIGTERM", leases_of(1));
    cr_assert(th_until(provider_idle, NULL, 2000), "the running check outlived sflimit");
    cr_assert_eq(th_provider_stat(&provider, "users.x.total"), 1,
                 "a check started after the signal");
    th_results_free(&r);
}

/* Refused input: exit 2, the message names the field, Redis unchanged (the
 * config's accounts are not written either). */
static void expect_refused(const char *config, const char *streams, const char *needle)
{
    long long before = th_redis_int(&redis, "DBSIZE");
    cr_assert_eq(run_check(config, streams), 2, "stderr:\n%s", th_run_stderr(&run));
    char *err = th_read_file(run.err);
    cr_assert(err && strstr(err, needle), "stderr does not name %s:\n%s", needle, err ? err : "");
    free(err);
    char *out = th_read_file(run.out);
    cr_assert(!out || !*out, "results were written for refused input: %s", out);
    free(out);
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), before, "refused input changed Redis");
    cr_assert_eq(th_redis_int(&redis, "HGET sfl:{a:1}:conf max_streams"), 1,
                 "the config's limit was written for refused input");
}

Test(check, refused_duplicate_id)
{
    th_account(&redis, 1, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 3}]"}, config, sizeof(config));
    th_write_file(dir, "streams.json",
                  "[{\"id\": 7, \"url\": \"http://127.0.0.1:1/a\", \"m3u_account\": 1},\n"
                  " {\"id\": 7, \"url\": \"http://127.0.0.1:1/b\", \"m3u_account\": 1}]\n",
                  streams, sizeof(streams));
    expect_refused(config, streams, "[1].id");
}

Test(check, refused_missing_url)
{
    th_account(&redis, 1, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 3}]"}, config, sizeof(config));
    th_write_file(dir, "streams.json",
                  "[{\"id\": 7, \"url\": \"http://127.0.0.1:1/a\", \"m3u_account\": 1},\n"
                  " {\"id\": 8, \"name\": \"no url\", \"m3u_account\": 1}]\n",
                  streams, sizeof(streams));
    expect_refused(config, streams, "[1].url");
}

Test(check, refused_unknown_config_key)
{
    th_account(&redis, 1, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 1, \"max_streams\": 3}]",
                        .extra = ", \"concurrent_streamz\": {}"},
                 config, sizeof(config));
    th_write_file(dir, "streams.json",
                  "[{\"id\": 7, \"url\": \"http://127.0.0.1:1/a\", \"m3u_account\": 1}]\n", streams,
                  sizeof(streams));
    expect_refused(config, streams, "concurrent_streamz");
}

/* Real ffmpeg against a real MPEG-TS served by the fake provider, with the
 * built-in parser. */
Test(check, ffmpeg_end_to_end)
{
    if (!have_ffmpeg())
        cr_skip_test("ffmpeg is not installed");
    char ts[256], log[256];
    snprintf(ts, sizeof(ts), "%s/test.ts", dir);
    snprintf(log, sizeof(log), "%s/ffmpeg-gen.log", dir);
    /* clang-format off */
    const char *gen[] = {"ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
                         "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                         "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3",
                         "-c:v", "libx264", "-c:a", "aac", "-f", "mpegts", ts, NULL};
    /* clang-format on */
    int st = th_wait(th_spawn((char *const *)gen, log, log), 60000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *why = th_read_file(log);
        cr_skip_test("ffmpeg cannot make the test stream (libx264/aac?): %s", why ? why : "");
    }
    const char *users[] = {"v:pv:1", NULL};
    th_provider_start(&provider, users, 5000, ts);
    th_account(&redis, 3, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 3, \"max_streams\": 1}]",
                        .parser = "ffmpeg",
                        .command = "[\"ffmpeg\", \"-hide_banner\", \"-nostdin\", \"-v\","
                                   " \"verbose\", \"-re\", \"-user_agent\", \"{user_agent}\","
                                   " \"-i\", \"{url}\", \"-t\", \"{duration}\", \"-f\","
                                   " \"null\", \"-\"]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 9, "V", 3, "v", "pv");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    long long ids[] = {9};
    expect_one_each(&r, ids, 1);
    cJSON *o = r.v[0];
    cr_assert_str_eq(th_str_of(o, "status"), "OK", "error: %s", th_str_of(o, "error"));
    cr_assert_str_eq(th_str_of(o, "video_codec"), "h264");
    cr_assert_str_eq(th_str_of(o, "audio_codec"), "aac");
    cr_assert_str_eq(th_str_of(o, "resolution"), "320x240");
    cr_assert_float_eq(th_num_of(o, "fps"), 25.0, 0.01);
    cr_assert_gt(th_num_of(o, "bitrate_kbps"), 0);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(o, "dead")), "a live stream reported dead");
    cr_assert_eq(th_num_of(o, "exit_code"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.v.total"), 1);
    th_results_free(&r);
}

/* The provider refuses a wrong password: Error with the command's exit
 * code; neither the result's error nor the log carries the password. */
Test(check, failing_check_error_hides_password)
{
    const char *users[] = {"alice:s3cretPW:1", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    th_account(&redis, 2, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 2, \"max_streams\": 1}]",
                        .command = "[\"curl\", \"-sS\", \"-f\", \"-o\", \"/dev/null\", \"{url}\"]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 5, "W", 2, "alice", "WRONGpass77");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    long long ids[] = {5};
    expect_one_each(&r, ids, 1);
    cJSON *o = r.v[0];
    cr_assert_str_eq(th_str_of(o, "status"), "Error");
    cr_assert_neq(th_num_of(o, "exit_code"), 0);
    const char *e = th_str_of(o, "error");
    cr_assert_not_null(e, "an Error result without an error text");
    cr_assert_null(strstr(e, "WRONGpass77"), "the error carries the password: %s", e);
    cr_assert_eq(th_provider_stat(&provider, "users.alice.auth_failures"), 1);
    char *log = th_read_file(run.err);
    cr_assert(log && !strstr(log, "WRONGpass77"), "the log carries the password:\n%s",
              log ? log : "");
    free(log);
    cr_assert_eq(leases_of(2), 0);
    th_results_free(&r);
}

/* The same with ffmpeg, whose error line does name the URL: the URL's
 * credentials are redacted in the result. */
Test(check, failing_ffmpeg_error_redacts_url)
{
    if (!have_ffmpeg())
        cr_skip_test("ffmpeg is not installed");
    const char *users[] = {"alice:s3cretPW:1", NULL};
    th_provider_start(&provider, users, 1000, NULL);
    th_account(&redis, 2, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 2, \"max_streams\": 1}]",
                        .parser = "ffmpeg",
                        .command = "[\"ffmpeg\", \"-hide_banner\", \"-nostdin\", \"-v\","
                                   " \"verbose\", \"-i\", \"{url}\", \"-t\", \"{duration}\","
                                   " \"-f\", \"null\", \"-\"]"},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 5, "W", 2, "alice", "WRONGpass77");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    results r;
    th_results_read(&r, run.out);
    long long ids[] = {5};
    expect_one_each(&r, ids, 1);
    cJSON *o = r.v[0];
    cr_assert_str_eq(th_str_of(o, "status"), "Error");
    cr_assert_neq(th_num_of(o, "exit_code"), 0);
    const char *e = th_str_of(o, "error");
    cr_assert(e && strstr(e, "401"), "the error is not ffmpeg's 401 line: %s", e ? e : "null");
    cr_assert_null(strstr(e, "WRONGpass77"), "the error carries the password: %s", e);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "dead")), "a refused stream is not dead");
    th_results_free(&r);
}

/* A retried ffmpeg check sets its analysis fields once more: each result
 * still has each field once (a repeated member is not valid JSON for many
 * readers), with the last attempt's values. */
Test(check, retried_check_sets_each_field_once)
{
    th_account(&redis, 2, 1);
    char config[256], streams[256];
    write_config(&(cfg){.accounts = "[{\"id\": 2, \"max_streams\": 1}]",
                        .command = "[\"sh\", \"-c\", \"echo '  Stream #0:0: Video: h264, "
                                   "yuv420p, 640x360, 25 fps' >&2; exit 1\"]",
                        .parser = "ffmpeg",
                        .retries = 2},
                 config, sizeof(config));
    sbuf sb;
    sb_init(&sb);
    sb_add(&sb, 9, "R", 2, "u", "p");
    sb_write(&sb, streams, sizeof(streams));
    cr_assert_eq(run_check(config, streams), 0, "stderr:\n%s", th_run_stderr(&run));
    char *text = th_read_file(run.out);
    cr_assert_not_null(text);
    const char *fields[] = {"\"dead\"", "\"fps\"", "\"video_codec\"", "\"status\""};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        int n = 0;
        for (const char *at = text; (at = strstr(at, fields[i])); at++)
            n++;
        cr_expect_eq(n, 1, "%s appears %d times in %s", fields[i], n, text);
    }
    results r;
    th_results_read(&r, run.out);
    cr_assert_eq(r.n, 1);
    cr_expect_eq(th_num_of(r.v[0], "attempts"), 3);
    th_results_free(&r);
    free(text);
}

typedef struct holder_arg {
    long long account;
    const char *node;
    int min;
} holder_arg;

/* At least min of the account's slots are held by node ("node" in holders). */
static int node_holds(void *p)
{
    holder_arg *h = p;
    redisReply *r = th_redis(&redis, "HVALS sfl:{a:%lld}:holders", h->account);
    int n = 0;
    char want[64];
    snprintf(want, sizeof(want), "\"node\":\"%s\"", h->node);
    for (size_t i = 0; r && i < r->elements; i++)
        n += r->element[i]->str && strstr(r->element[i]->str, want) != NULL;
    freeReplyObject(r);
    return n >= h->min;
}

static int waiters_at_least(void *p)
{
    holder_arg *h = p;
    return th_redis_int(&redis, "ZCARD sfl:{a:%lld}:waiters", h->account) >= h->min;
}

/* A slot handed to a node whose global slots are all busy is passed on at
 * once, not kept idle for it. Node x (global_limit 1) queues for account 1,
 * then runs an 8 s check of account 2; node y queues for account 1 after it.
 * When account 1's holder lets go, its slot goes to x's ticket first: x is
 * full and must give it on, so y runs account 1 while x's check of account 2
 * still runs. (Kept for x instead, with lease.handoff_ms 20000, y would wait
 * until x's check ended and x's own check of account 1 after it.) */
Test(check, handoff_to_a_full_node_is_passed_on)
{
    th_account(&redis, 1, 1);
    th_account(&redis, 2, 1);
    const char *accounts = "[{\"id\": 1, \"max_streams\": 1}, {\"id\": 2, \"max_streams\": 1}]";
    /* Room for a slow start (valgrind, a busy machine): y must queue while z
     * still holds account 1 (4 s), and get it while x's check of account 2
     * still runs (8 s). */
    const char *sleep8 = "[\"sleep\", \"8\"]";
    char cz[256], cx[256], cy[256], sx[256], sy[256];
    /* The releaser's handoff_ms sets how long a handed slot is kept. */
    write_config(&(cfg){.accounts = accounts,
                        .node_id = "z",
                        .file = "z.json",
                        .lease = TH_LEASE ", \"handoff_ms\": 20000"},
                 cz, sizeof(cz));
    write_config(&(cfg){.accounts = accounts,
                        .node_id = "x",
                        .file = "x.json",
                        .global_limit = 1,
                        .command = sleep8,
                        .lease = TH_LEASE ", \"handoff_ms\": 20000"},
                 cx, sizeof(cx));
    write_config(&(cfg){.accounts = accounts,
                        .node_id = "y",
                        .file = "y.json",
                        .command = sleep8,
                        .lease = TH_LEASE ", \"handoff_ms\": 20000"},
                 cy, sizeof(cy));
    th_write_file(dir, "x-streams.json",
                  "[{\"id\": 1, \"url\": \"http://h/1\", \"m3u_account\": 1},"
                  " {\"id\": 2, \"url\": \"http://h/2\", \"m3u_account\": 2}]",
                  sx, sizeof(sx));
    th_write_file(dir, "y-streams.json",
                  "[{\"id\": 3, \"url\": \"http://h/3\", \"m3u_account\": 1}]", sy, sizeof(sy));

    char zerr[256];
    snprintf(zerr, sizeof(zerr), "%s/z.err", dir);
    const char *zargv[] = {SFL_BIN, "exec", "-c", cz, "-a", "1", "--", "sleep", "4", NULL};
    pid_t z = th_spawn((char *const *)zargv, NULL, zerr);
    holder_arg z1 = {1, "z", 1};
    cr_assert(th_until(node_holds, &z1, 20000), "z never held account 1");

    th_run *x = &run2, *y = &run;
    th_check_start(x, dir, cx, sx, NULL);
    holder_arg x2 = {2, "x", 1}, w1 = {1, NULL, 1};
    cr_assert(th_until(node_holds, &x2, 20000), "x never ran account 2");
    cr_assert(th_until(waiters_at_least, &w1, 20000), "x is not queued for account 1");

    th_check_start(y, dir, cy, sy, NULL);
    holder_arg w2 = {1, NULL, 2};
    cr_assert(th_until(waiters_at_least, &w2, 20000), "y is not queued behind x");
    cr_assert(node_holds(&x2), "x's check of account 2 ended before the test could start");

    holder_arg y1 = {1, "y", 1};
    cr_assert(th_until(node_holds, &y1, 30000), "y never got account 1");
    int x_still_running = node_holds(&x2);
    cr_expect(x_still_running,
              "y got account 1 only after x's check of account 2 ended: the slot handed to "
              "full node x was kept for it");

    cr_assert_eq(th_wait(z, 30000) >= 0, 1, "exec z did not end");
    cr_assert_eq(wait_check(y), 0, "y: %s", th_run_stderr(y));
    cr_assert_eq(wait_check(x), 0, "x: %s", th_run_stderr(x));
    cr_assert_eq(leases_of(1), 0);
}
