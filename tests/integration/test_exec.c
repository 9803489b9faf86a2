/* test_exec.c - `sflimit exec`, the distributed flock, as a user runs it:
 * real processes, a real redis-server, the fake provider as ground truth. */
#include "harness.h"

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
static char config[256];
static th_run runs[5]; /* the test's execs: their stderr for messages; reaped by teardown */

static void setup(void)
{
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    char text[512];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"t\", \"redis\": {\"url\": \"%s\"},\n"
             " \"lease\": {\"ttl_ms\": 1500, \"renew_ms\": 400, \"safety_ms\": 400%s}}\n",
             redis.url, th_wrap_lease());
    th_write_file(dir, "sflimit.json", text, config, sizeof(config));
}

static void teardown(void)
{
    for (int i = 0; i < 5; i++)
        th_run_reap(&runs[i]);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(exec, .init = setup, .fini = teardown, .timeout = 120);

/* Starts `sflimit exec -a ACCOUNT [extra...] -- cmd...` as runs[n]: its
 * stdout and stderr (the command's too) go to files of its own, the stderr
 * for a failure's message (th_run_stderr). */
static pid_t run_exec(long long account, const char *const *extra, const char *const *cmd, int n)
{
    char acc[24];
    snprintf(acc, sizeof(acc), "%lld", account);
    const char *argv[40] = {SFL_BIN, "exec", "-c", config, "-a", acc};
    int k = 6;
    for (int i = 0; extra && extra[i]; i++)
        argv[k++] = extra[i];
    argv[k++] = "--";
    for (int i = 0; cmd[i]; i++)
        argv[k++] = cmd[i];
    argv[k] = NULL;
    return th_run_start(&runs[n], dir, argv);
}

/* Waits up to timeout_ms for runs[n] to end (failing the test with its
 * stderr if it does not) and returns its exit code. */
static int exec_wait(int n, int timeout_ms)
{
    return th_exit_code(th_run_wait(&runs[n], timeout_ms));
}

/* Five execs at once at max_streams 2, each holding a real 1.5 s connection:
 * the provider never sees more than 2, all exit 0, three rounds in all. */
Test(exec, five_at_limit_two)
{
    const char *users[] = {"u7:p7:2", NULL};
    th_provider_start(&provider, users, 1500, NULL);
    th_account(&redis, 7, 2);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/live/u7/p7/1.ts", provider.port);
    const char *cmd[] = {"curl", "-sSf", "-o", "/dev/null", url, NULL};
    int64_t t0 = th_now_ms();
    for (int i = 0; i < 5; i++)
        run_exec(7, NULL, cmd, i);
    for (int i = 0; i < 5; i++) {
        int code = exec_wait(i, 60000);
        cr_assert_eq(code, 0, "exec %d exited %d; stderr:\n%s", i, code, th_run_stderr(&runs[i]));
    }
    int64_t elapsed = th_now_ms() - t0;
    cr_assert_eq(th_provider_stat(&provider, "users.u7.max_seen"), 2);
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.u7.total"), 5);
    /* Five 1.5 s holds, two at a time, cannot take less than three rounds. */
    cr_assert_geq(elapsed, 3 * 1500, "done in %lld ms: fewer than three rounds",
                  (long long)elapsed);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:7}:leases"), 0, "a lease was not released");
}

/* kill -9 of sflimit: its command stops within a second; another exec gets
 * the slot once the TTL has passed. */
Test(exec, kill9_stops_child_and_slot_returns_after_ttl)
{
    th_account(&redis, 8, 1);
    char pidfile[200], script[300];
    snprintf(pidfile, sizeof(pidfile), "%s/child.pid", dir);
    snprintf(script, sizeof(script), "echo $$ > %s; exec sleep 60", pidfile);
    const char *cmd[] = {"sh", "-c", script, NULL};
    pid_t ex = run_exec(8, NULL, cmd, 0);
    pid_t child = 0;
    int64_t until = th_now_ms() + 10000;
    while (!child && th_now_ms() < until) {
        char *text = th_read_file(pidfile);
        if (text && atoi(text) > 0)
            child = atoi(text);
        free(text);
        usleep(10000);
    }
    cr_assert_gt(child, 0, "the command never started; stderr:\n%s", th_run_stderr(&runs[0]));
    cr_assert(th_alive(child));
    kill(ex, SIGKILL);
    exec_wait(0, 10000);
    int64_t killed = th_now_ms();
    while (th_alive(child) && th_now_ms() - killed < 3000)
        usleep(5000);
    int64_t gone = th_now_ms() - killed;
    cr_assert(!th_alive(child), "the command outlived sflimit");
    cr_assert_lt(gone, 1000, "the command ran %lld ms after sflimit died", (long long)gone);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:8}:leases"), 1,
                 "the crashed holder's lease should stay until its TTL");

    const char *extra[] = {"--timeout", "20", NULL};
    const char *cmd2[] = {"true", NULL};
    run_exec(8, extra, cmd2, 1);
    int code = exec_wait(1, 30000);
    cr_assert_eq(code, 0, "the next exec exited %d; stderr:\n%s", code, th_run_stderr(&runs[1]));
    cr_assert_geq(th_now_ms() - killed, 1000, "the slot came back before the lease TTL");
}

Test(exec, no_slot_in_time_exits_75)
{
    th_account(&redis, 9, 1);
    const char *hold[] = {"sleep", "5", NULL};
    pid_t holder = run_exec(9, NULL, hold, 0);
    int64_t until = th_now_ms() + 10000;
    while (th_redis_int(&redis, "ZCARD sfl:{a:9}:leases") < 1 && th_now_ms() < until)
        usleep(10000);
    const char *extra[] = {"--timeout", "0.5", NULL};
    const char *cmd[] = {"true", NULL};
    run_exec(9, extra, cmd, 1);
    int code = exec_wait(1, 20000);
    const char *err = th_run_stderr(&runs[1]);
    cr_assert_eq(code, 75, "exit %d; stderr:\n%s", code, err);
    cr_assert(strstr(err, "no slot of account 9"), "stderr:\n%s", err);
    kill(holder, SIGTERM);
    code = exec_wait(0, 10000);
    cr_assert_eq(code, 128 + SIGTERM,
                 "SIGTERM was not passed on to the command (exit %d); stderr:\n%s", code,
                 th_run_stderr(&runs[0]));
}

Test(exec, exit_status_is_the_commands)
{
    th_account(&redis, 10, 1);
    const char *cmd[] = {"sh", "-c", "exit 7", NULL};
    run_exec(10, NULL, cmd, 0);
    int code = exec_wait(0, 20000);
    cr_assert_eq(code, 7, "exit %d; stderr:\n%s", code, th_run_stderr(&runs[0]));
    const char *env[] = {"sh", "-c",
                         "test -n \"$SFL_LEASE_ID\" && test \"$SFL_ACCOUNT\" = 10 && "
                         "test \"$SFL_FENCE\" -gt 0",
                         NULL};
    run_exec(10, NULL, env, 1);
    code = exec_wait(1, 20000);
    cr_assert_eq(code, 0,
                 "SFL_* variables missing from the command's environment (exit %d); stderr:\n%s",
                 code, th_run_stderr(&runs[1]));
}

Test(exec, usage_errors_exit_2_and_touch_nothing)
{
    const char *cmd[] = {"true", NULL};
    run_exec(11, NULL, cmd, 0);
    int code = exec_wait(0, 20000);
    cr_assert_eq(code, 2,
                 "an account with no limit anywhere must be a usage error (exit %d); stderr:\n%s",
                 code, th_run_stderr(&runs[0]));
    const char *argv1[] = {SFL_BIN, "exec", "-c", config, "-a", "x", "--", "true", NULL};
    const char *argv2[] = {SFL_BIN, "exec", "-c", config, "-a", "1", NULL};
    const char *argv3[] = {SFL_BIN, "exec", "-c", "/nonexistent.json", "-a", "1",
                           "--",    "true", NULL};
    const char *const *bad[] = {argv1, argv2, argv3};
    for (int i = 0; i < 3; i++) {
        th_run_start(&runs[1 + i], dir, bad[i]);
        code = exec_wait(1 + i, 20000);
        cr_assert_eq(code, 2, "usage error %d: exit %d; stderr:\n%s", i + 1, code,
                     th_run_stderr(&runs[1 + i]));
    }
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), 0, "a failed start wrote to Redis");
}

/* Redis freezes while the command runs: sflimit stops the command before
 * the lease could expire in Redis, says so, and exits non-zero. */
Test(exec, frozen_redis_stops_command_before_deadline)
{
    th_account(&redis, 12, 1);
    char pidfile[200], script[300];
    snprintf(pidfile, sizeof(pidfile), "%s/child.pid", dir);
    snprintf(script, sizeof(script), "echo $$ > %s; exec sleep 60", pidfile);
    const char *cmd[] = {"sh", "-c", script, NULL};
    run_exec(12, NULL, cmd, 0);
    pid_t child = 0;
    int64_t until = th_now_ms() + 10000;
    while (!child && th_now_ms() < until) {
        char *text = th_read_file(pidfile);
        if (text && atoi(text) > 0)
            child = atoi(text);
        free(text);
        usleep(10000);
    }
    cr_assert_gt(child, 0, "the command never started; stderr:\n%s", th_run_stderr(&runs[0]));
    kill(redis.pid, SIGSTOP);
    int64_t frozen = th_now_ms();
    while (th_alive(child) && th_now_ms() - frozen < 5000)
        usleep(5000);
    int64_t stopped = th_now_ms() - frozen;
    kill(redis.pid, SIGCONT);
    cr_assert(!th_alive(child), "the command kept running on a lost lease");
    cr_assert_lt(stopped, 1500, "stopped %lld ms after the freeze: past the 1500 ms TTL",
                 (long long)stopped);
    int code = exec_wait(0, 10000);
    const char *err = th_run_stderr(&runs[0]);
    cr_assert_eq(code, 1, "exit %d; stderr:\n%s", code, err);
    cr_assert(strstr(err, "lease of account 12 lost"), "stderr:\n%s", err);
}
