/* test_runner.c - the runner: exit codes, captured tails, env, timeouts, stops,
 * kill escalation, exec failures, many children, process groups, parent death.
 *
 * Every test has its own event_base and waits on conditions through the loop,
 * with a safety timer so a broken runner fails the test instead of hanging it. */
#include "clock.h"
#include "runner.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/*--- Helpers ---*/

typedef struct done_rec {
    int calls;
    int in_spawn; /* set around spawn: the callback must never run inside it */
    int called_in_spawn;
    sfl_child_result res; /* out/err point to the copies below */
    char *out, *err;
    sfl_runner *r; /* for callbacks that act on the runner */
    int *counter;  /* optional: incremented on each call */
} done_rec;

static void on_done(sfl_child *child, const sfl_child_result *res, void *arg)
{
    done_rec *d = arg;
    if (d->in_spawn)
        d->called_in_spawn = 1;
    cr_assert_eq(sfl_child_pid(child), res->pid);
    d->calls++;
    free(d->out);
    free(d->err);
    d->res = *res;
    d->out = malloc(res->out_len + 1);
    d->err = malloc(res->err_len + 1);
    cr_assert(d->out && d->err);
    memcpy(d->out, res->out, res->out_len);
    d->out[res->out_len] = '\0';
    memcpy(d->err, res->err, res->err_len);
    d->err[res->err_len] = '\0';
    d->res.out = d->out;
    d->res.err = d->err;
    if (d->counter)
        (*d->counter)++;
}

static void rec_free(done_rec *d)
{
    free(d->out);
    free(d->err);
    d->out = d->err = NULL;
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until *counter >= target or timeout_ms passes (a safety timer
 * wakes the loop; a slow ticker lets it re-check counters bumped by callbacks).
 * Returns 1 if the target was reached. */
static int wait_count(struct event_base *base, const int *counter, int target, int timeout_ms)
{
    int expired = 0;
    struct event *safety = evtimer_new(base, on_safety, &expired);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_poll, NULL);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct timeval tk = {0, 50000};
    evtimer_add(safety, &tv);
    evtimer_add(tick, &tk);
    while (*counter < target && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(safety);
    event_free(tick);
    return *counter >= target;
}

/* Runs the loop for about ms milliseconds. */
static void loop_for(struct event_base *base, int ms)
{
    int never = 0;
    wait_count(base, &never, 1, ms);
}

/* Spawns opts and waits (up to timeout_ms) for its report into d. */
static void run_one(const sfl_child_opts *opts, done_rec *d, int timeout_ms)
{
    struct event_base *base = event_base_new();
    cr_assert_not_null(base);
    sfl_runner *r = sfl_runner_new(base);
    cr_assert_not_null(r);
    char err[256];
    d->in_spawn = 1;
    sfl_child *c = sfl_runner_spawn(r, opts, on_done, d, err, sizeof(err));
    d->in_spawn = 0;
    cr_assert_not_null(c, "spawn: %s", err);
    cr_assert_eq(d->calls, 0, "callback ran inside spawn");
    cr_assert_eq(sfl_runner_running(r), 1);
    cr_assert(wait_count(base, &d->calls, 1, timeout_ms), "child not reported in %d ms",
              timeout_ms);
    loop_for(base, 20); /* a second report would show up here */
    cr_assert_eq(d->calls, 1);
    cr_assert_eq(d->called_in_spawn, 0);
    cr_assert_eq(sfl_runner_running(r), 0);
    sfl_runner_free(r);
    event_base_free(base);
}

/* State letter of /proc/PID/stat ('\0' if the process does not exist), and its pgrp. */
static char proc_state(pid_t pid, pid_t *pgrp)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return '\0';
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return '\0';
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return '\0';
    int ppid = 0, pg = 0;
    if (pgrp && sscanf(p + 4, "%d %d", &ppid, &pg) == 2)
        *pgrp = pg;
    return p[2];
}

static int proc_dead(pid_t pid)
{
    char s = proc_state(pid, NULL);
    return s == '\0' || s == 'Z' || s == 'X';
}

/* Polls (blocking; tests only) until pid is dead or a zombie. */
static int wait_dead(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (proc_dead(pid))
            return 1;
        usleep(10000);
    }
    return proc_dead(pid);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Reads a pid number from a file the child writes; 0 if not there (yet). */
static pid_t read_pid_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

TestSuite(runner, .timeout = 60);

/*--- Exit status and output ---*/

Test(runner, exit_code_passthrough)
{
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect_eq(d.res.exited, 1);
    cr_expect_eq(d.res.exit_code, 3);
    cr_expect_eq(d.res.exec_failed, 0);
    cr_expect_eq(d.res.stopped, SFL_STOP_NONE);
    cr_expect_eq(d.res.lost, 0);
    cr_expect_gt(d.res.pid, 0);
    cr_expect_geq(d.res.duration_ms, 0);
    rec_free(&d);
}

Test(runner, exit_code_without_capture)
{
    char *argv[] = {"sh", "-c", "exit 5", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 0};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect_eq(d.res.exited, 1);
    cr_expect_eq(d.res.exit_code, 5);
    cr_expect_eq(d.res.out_len, 0);
    cr_expect_eq(d.res.err_len, 0);
    rec_free(&d);
}

Test(runner, captures_stdout_and_stderr)
{
    char *argv[] = {"sh", "-c", "echo to-out; echo to-err >&2; printf more", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect_eq(d.res.exit_code, 0);
    cr_expect_str_eq(d.out, "to-out\nmore");
    cr_expect_eq(d.res.out_len, strlen("to-out\nmore"));
    cr_expect_str_eq(d.err, "to-err\n");
    rec_free(&d);
}

Test(runner, stdin_is_dev_null_with_capture)
{
    char *argv[] = {"cat", NULL}; /* would hang on an inherited terminal or pipe */
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect_eq(d.res.exited, 1);
    cr_expect_eq(d.res.exit_code, 0);
    cr_expect_eq(d.res.out_len, 0);
    rec_free(&d);
}

Test(runner, keeps_the_tail_when_output_exceeds_cap)
{
    char *argv[] = {"seq", "1", "200000", NULL};
    const size_t cap = 1000;
    sfl_child_opts o = {.argv = argv, .capture = 1, .capture_cap = cap};
    done_rec d = {0};
    run_one(&o, &d, 10000);
    cr_assert_eq(d.res.exit_code, 0);
    cr_assert_eq(d.res.out_len, cap);

    /* The whole output, built here, and its last cap bytes. */
    size_t total = 0;
    char *all = malloc(200000 * 8);
    cr_assert_not_null(all);
    for (int i = 1; i <= 200000; i++)
        total += (size_t)sprintf(all + total, "%d\n", i);
    cr_expect_eq(memcmp(d.out, all + total - cap, cap), 0, "tail differs");
    cr_expect_eq(strcmp(d.out + cap - 7, "200000\n"), 0);
    free(all);
    rec_free(&d);
}

Test(runner, small_output_with_default_cap_is_whole)
{
    char *argv[] = {"seq", "1", "1000", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect_eq(d.res.out_len, 3893); /* 9*2 + 90*3 + 900*4 + 5 */
    cr_expect_eq(strncmp(d.out, "1\n2\n3\n", 6), 0);
    rec_free(&d);
}

/*--- Environment ---*/

Test(runner, env_inherited_plus_extra)
{
    setenv("SFL_TEST_SECRET", "1", 1);
    char *argv[] = {"env", NULL};
    char *env[] = {"SFL_X=1", NULL};
    sfl_child_opts o = {.argv = argv, .env = env, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect(has_line(d.out, "SFL_X=1"), "env output: %s", d.out);
    cr_expect(has_line(d.out, "SFL_TEST_SECRET=1"));
    rec_free(&d);
}

Test(runner, env_extra_replaces_inherited)
{
    setenv("SFL_TEST_SECRET", "1", 1);
    char *argv[] = {"env", NULL};
    char *env[] = {"SFL_TEST_SECRET=2", NULL};
    sfl_child_opts o = {.argv = argv, .env = env, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect(has_line(d.out, "SFL_TEST_SECRET=2"));
    cr_expect(!has_line(d.out, "SFL_TEST_SECRET=1"));
    rec_free(&d);
}

Test(runner, clean_env)
{
    setenv("SFL_TEST_SECRET", "1", 1);
    setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
    setenv("TZ", "UTC", 1);
    char *argv[] = {"env", NULL};
    char *env[] = {"SFL_X=1", NULL};
    sfl_child_opts o = {.argv = argv, .env = env, .clean_env = 1, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect(has_line(d.out, "SFL_X=1"), "env output: %s", d.out);
    cr_expect(has_line(d.out, "PATH=/usr/local/bin:/usr/bin:/bin"));
    cr_expect(has_line(d.out, "TZ=UTC"));
    cr_expect(strstr(d.out, "SFL_TEST_SECRET") == NULL, "leaked: %s", d.out);
    rec_free(&d);
}

/*--- Timeouts, stops, kill escalation ---*/

Test(runner, timeout_stops_with_sigterm)
{
    char *argv[] = {"sleep", "30", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1, .timeout_ms = 200};
    done_rec d = {0};
    run_one(&o, &d, 10000);
    cr_expect_eq(d.res.stopped, SFL_STOP_TIMEOUT);
    cr_expect_eq(d.res.exited, 0);
    cr_expect_eq(d.res.term_signal, SIGTERM);
    cr_expect_geq(d.res.duration_ms, 190);
    rec_free(&d);
}

/* 1 once /proc/PID/status shows SIGTERM ignored. */
static int term_ignored(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long long mask = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "SigIgn: %llx", &mask) == 1)
            break;
    fclose(f);
    return (mask & (1ULL << (SIGTERM - 1))) != 0;
}

/* Runs the loop until pid ignores SIGTERM, and a moment more (so that sh has
 * started its sleep, which inherits the ignored TERM). */
static void wait_term_ignored(struct event_base *base, pid_t pid)
{
    int ready = 0;
    for (int i = 0; i < 500 && !(ready = term_ignored(pid)); i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(10000);
    }
    cr_assert(ready, "sh never ignored SIGTERM");
    loop_for(base, 50);
}

Test(runner, sigkill_after_grace_when_sigterm_is_ignored)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    cr_assert_not_null(r);
    char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30", NULL};
    const int grace = 300;
    sfl_child_opts o = {.argv = argv, .capture = 1, .kill_grace_ms = grace};
    done_rec d = {0};
    char err[256];
    sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    pid_t pid = sfl_child_pid(c);
    /* Stop only once the trap is in place, or SIGTERM alone would do. */
    wait_term_ignored(base, pid);

    int64_t t0 = sfl_mono_ms();
    sfl_child_stop(c, SFL_STOP_REQUESTED);
    loop_for(base, grace / 2);
    cr_assert_eq(d.calls, 0, "stopped before the grace ran out");
    cr_assert(wait_count(base, &d.calls, 1, 10000), "no SIGKILL after the grace");
    cr_expect_geq(sfl_mono_ms() - t0, grace - 10);
    cr_expect_eq(d.res.stopped, SFL_STOP_REQUESTED);
    cr_expect_eq(d.res.exited, 0);
    cr_expect_eq(d.res.term_signal, SIGKILL);
    sfl_runner_free(r);
    event_base_free(base);
    rec_free(&d);
}

/* A stop with a long grace already under way; a second stop with a short
 * one (a lost lease) must bring the SIGKILL closer: the child, which ignores
 * SIGTERM, dies long before the first grace of 60 s. */
Test(runner, stop_within_brings_the_kill_closer)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    cr_assert_not_null(r);
    char *argv[] = {"sh", "-c", "trap '' TERM; sleep 120", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1, .kill_grace_ms = 60000};
    done_rec d = {0};
    char err[256];
    sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    pid_t pid = sfl_child_pid(c);
    wait_term_ignored(base, pid);

    sfl_child_stop(c, SFL_STOP_REQUESTED);
    loop_for(base, 100);
    cr_assert_eq(d.calls, 0, "SIGTERM alone stopped a child that ignores it");
    sfl_child_stop_within(c, SFL_STOP_TIMEOUT, 60000); /* later: changes nothing */
    sfl_child_stop_within(c, SFL_STOP_TIMEOUT, 100);
    cr_assert(wait_count(base, &d.calls, 1, 20000), "the shorter grace did not bring SIGKILL");
    cr_expect_eq(d.res.stopped, SFL_STOP_REQUESTED, "the first reason sticks");
    cr_expect_eq(d.res.term_signal, SIGKILL);
    sfl_runner_free(r);
    event_base_free(base);
    rec_free(&d);
}

/* Grace 0: SIGKILL at once, no SIGTERM (the child would die of TERM). */
Test(runner, stop_within_zero_kills_at_once)
{
    char *argv[] = {"sleep", "30", NULL};
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    char err[256];
    sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    sfl_child_stop_within(c, SFL_STOP_REQUESTED, 0);
    cr_assert(wait_count(base, &d.calls, 1, 10000));
    cr_expect_eq(d.res.exited, 0);
    cr_expect_eq(d.res.term_signal, SIGKILL);
    sfl_runner_free(r);
    event_base_free(base);
    rec_free(&d);
}

Test(runner, stop_requested_and_idempotent)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    char *argv[] = {"sleep", "30", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1, .timeout_ms = 100};
    done_rec d = {0};
    char err[256];
    sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    sfl_child_stop(c, SFL_STOP_REQUESTED);
    sfl_child_stop(c, SFL_STOP_TIMEOUT); /* the first reason sticks */
    sfl_child_stop(c, SFL_STOP_REQUESTED);
    cr_assert_eq(d.calls, 0, "callback ran inside stop");
    cr_assert(wait_count(base, &d.calls, 1, 10000));
    loop_for(base, 200); /* past the timeout: no second report, reason unchanged */
    cr_expect_eq(d.calls, 1);
    cr_expect_eq(d.res.stopped, SFL_STOP_REQUESTED);
    cr_expect_eq(d.res.exited, 0);
    cr_expect_eq(d.res.term_signal, SIGTERM);
    sfl_runner_free(r);
    event_base_free(base);
    rec_free(&d);
}

Test(runner, signal_passthrough)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    char *argv[] = {"sleep", "30", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d, NULL, 0);
    cr_assert_not_null(c);
    sfl_child_signal(c, SIGINT);
    cr_assert(wait_count(base, &d.calls, 1, 10000));
    cr_expect_eq(d.res.term_signal, SIGINT);
    cr_expect_eq(d.res.stopped, SFL_STOP_NONE);
    sfl_runner_free(r);
    event_base_free(base);
    rec_free(&d);
}

/*--- Exec failure ---*/

Test(runner, exec_failure_is_reported)
{
    for (int capture = 0; capture <= 1; capture++) {
        char *argv[] = {"sfl-no-such-program-xyzzy", "arg", NULL};
        sfl_child_opts o = {.argv = argv, .capture = capture};
        done_rec d = {0};
        run_one(&o, &d, 5000);
        cr_expect_eq(d.res.exec_failed, 1, "capture=%d", capture);
        cr_expect_eq(d.res.exited, 1);
        cr_expect_eq(d.res.exit_code, 127);
        cr_expect(strstr(d.err, "sfl-no-such-program-xyzzy") != NULL, "err: %s", d.err);
        cr_expect(strstr(d.err, strerror(ENOENT)) != NULL, "err: %s", d.err);
        rec_free(&d);
    }
}

Test(runner, exit_127_is_not_exec_failure)
{
    char *argv[] = {"sh", "-c", "exit 127", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    run_one(&o, &d, 5000);
    cr_expect_eq(d.res.exit_code, 127);
    cr_expect_eq(d.res.exec_failed, 0);
    rec_free(&d);
}

Test(runner, bad_arguments_fail_without_callback)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    char *argv[] = {NULL};
    sfl_child_opts o = {.argv = argv};
    done_rec d = {0};
    char err[128];
    cr_expect_null(sfl_runner_spawn(r, &o, on_done, &d, err, sizeof(err)));
    cr_expect_neq(err[0], '\0');
    cr_expect_eq(sfl_runner_running(r), 0);
    loop_for(base, 20);
    cr_expect_eq(d.calls, 0);
    sfl_runner_free(r);
    sfl_runner_free(NULL);
    event_base_free(base);
}

/*--- Many children ---*/

Test(runner, twenty_children_each_reported_once)
{
    enum { N = 20 };
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    done_rec d[N];
    memset(d, 0, sizeof(d));
    char code[N][8], script[N][64];
    pid_t pids[N];
    int total = 0;
    for (int i = 0; i < N; i++) {
        snprintf(code[i], sizeof(code[i]), "%d", i);
        /* Some exit at once, some after a moment; each prints its index. */
        snprintf(script[i], sizeof(script[i]), "%secho child-%d; exit %d",
                 i % 3 == 0 ? "sleep 0.2; " : "", i, i);
        char *argv[] = {"sh", "-c", script[i], NULL};
        sfl_child_opts o = {.argv = argv, .capture = 1};
        d[i].counter = &total;
        sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d[i], NULL, 0);
        cr_assert_not_null(c);
        pids[i] = sfl_child_pid(c);
    }
    cr_assert_eq(sfl_runner_running(r), N);
    cr_assert(wait_count(base, &total, N, 20000), "only %d of %d reported", total, N);
    loop_for(base, 300);
    cr_expect_eq(total, N);
    cr_expect_eq(sfl_runner_running(r), 0);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "child-%d\n", i);
        cr_expect_eq(d[i].calls, 1, "child %d reported %d times", i, d[i].calls);
        cr_expect_eq(d[i].res.pid, pids[i]);
        cr_expect_eq(d[i].res.exit_code, i);
        cr_expect_str_eq(d[i].out, want);
        rec_free(&d[i]);
    }
    sfl_runner_free(r);
    event_base_free(base);
}

/* Someone else's child must not be reaped by the runner. */
Test(runner, does_not_reap_foreign_children)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    pid_t foreign = fork();
    cr_assert_geq(foreign, 0);
    if (foreign == 0)
        _exit(42);
    char *argv[] = {"sh", "-c", "sleep 0.2", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1};
    done_rec d = {0};
    cr_assert_not_null(sfl_runner_spawn(r, &o, on_done, &d, NULL, 0));
    cr_assert(wait_count(base, &d.calls, 1, 10000));
    int st = 0;
    cr_expect_eq(waitpid(foreign, &st, 0), foreign, "foreign child was stolen");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    sfl_runner_free(r);
    event_base_free(base);
    rec_free(&d);
}

/*--- Process groups and grandchildren ---*/

Test(runner, process_group_follows_capture)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    char *argv[] = {"sleep", "30", NULL};
    done_rec d[2];
    memset(d, 0, sizeof(d));
    for (int capture = 0; capture <= 1; capture++) {
        sfl_child_opts o = {.argv = argv, .capture = capture};
        sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d[capture], NULL, 0);
        cr_assert_not_null(c);
        pid_t pid = sfl_child_pid(c), pgrp = 0;
        cr_assert_neq(proc_state(pid, &pgrp), '\0');
        if (capture)
            cr_expect_eq(pgrp, pid, "capturing child leads its own group");
        else
            cr_expect_eq(pgrp, getpgrp(), "interactive child stays in our group");
        sfl_child_stop(c, SFL_STOP_REQUESTED);
        cr_assert(wait_count(base, &d[capture].calls, 1, 10000));
        cr_expect_eq(d[capture].res.term_signal, SIGTERM);
        rec_free(&d[capture]);
    }
    sfl_runner_free(r);
    event_base_free(base);
}

/* The stop's SIGTERM goes to the whole process group: the grandchild dies of it
 * while the child (which traps TERM) is still alive within its grace. */
Test(runner, stop_kills_grandchild)
{
    char pidfile[] = "/tmp/sfl-runner-XXXXXX";
    int fd = mkstemp(pidfile);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(pidfile);

    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    char script[512];
    snprintf(script, sizeof(script),
             "trap 'echo got-term' TERM; sleep 30 >/dev/null & echo $! > %s.tmp && mv %s.tmp %s;"
             " wait; sleep 30",
             pidfile, pidfile, pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    const int grace = 3000;
    sfl_child_opts o = {.argv = argv, .capture = 1, .kill_grace_ms = grace};
    done_rec d = {0};
    sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d, NULL, 0);
    cr_assert_not_null(c);
    pid_t gc = 0;
    for (int i = 0; i < 500 && !(gc = read_pid_file(pidfile)); i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(10000);
    }
    unlink(pidfile);
    cr_assert_gt(gc, 0, "grandchild pid never written");
    cr_assert(!proc_dead(gc), "grandchild not running before the stop");

    int64_t t0 = sfl_mono_ms();
    sfl_child_stop(c, SFL_STOP_REQUESTED);
    cr_expect(wait_dead(gc, 2000), "grandchild %d survived the stop", (int)gc);
    if (sfl_mono_ms() - t0 < grace - 200)
        cr_expect(!proc_dead(sfl_child_pid(c)), "the child should still be in its grace");
    loop_for(base, 10);
    cr_expect_eq(d.calls, 0, "reported before the grace ran out");
    cr_assert(wait_count(base, &d.calls, 1, 10000));
    cr_expect_eq(d.res.stopped, SFL_STOP_REQUESTED);
    cr_expect_eq(d.res.term_signal, SIGKILL);
    cr_expect_str_eq(d.out, "got-term\n");
    sfl_runner_free(r);
    event_base_free(base);
    rec_free(&d);
}

/* A grandchild holding stdout open must not hold back the report for long, and
 * must not outlive the check. */
Test(runner, grandchild_holding_the_pipe_is_drained_and_killed)
{
    char pidfile[] = "/tmp/sfl-runner-XXXXXX";
    int fd = mkstemp(pidfile);
    cr_assert_geq(fd, 0);
    close(fd);
    char script[256];
    snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; echo bye; exit 4", pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1, .drain_ms = 200};
    done_rec d = {0};
    run_one(&o, &d, 10000);
    pid_t gc = read_pid_file(pidfile);
    unlink(pidfile);
    cr_expect_eq(d.res.exited, 1);
    cr_expect_eq(d.res.exit_code, 4);
    cr_expect_eq(d.res.stopped, SFL_STOP_NONE);
    cr_expect_str_eq(d.out, "bye\n");
    cr_assert_gt(gc, 0);
    cr_expect(wait_dead(gc, 2000), "grandchild %d outlived the check", (int)gc);
    rec_free(&d);
}

/*--- Re-entrancy and teardown ---*/

typedef struct chain {
    int left;
    int reported;
    sfl_runner *r;
} chain;

static void on_chain(sfl_child *child, const sfl_child_result *res, void *arg)
{
    (void)child;
    chain *ch = arg;
    cr_assert_eq(res->exit_code, 0);
    ch->reported++;
    if (ch->left-- > 0) {
        char *argv[] = {"true", NULL};
        sfl_child_opts o = {.argv = argv, .capture = 1};
        cr_assert_not_null(sfl_runner_spawn(ch->r, &o, on_chain, ch, NULL, 0));
    }
}

Test(runner, spawn_from_callback)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    chain ch = {.left = 4, .r = r};
    char *argv[] = {"true", NULL};
    sfl_child_opts o = {.argv = argv, .capture = 1};
    cr_assert_not_null(sfl_runner_spawn(r, &o, on_chain, &ch, NULL, 0));
    cr_assert(wait_count(base, &ch.reported, 5, 10000));
    cr_expect_eq(sfl_runner_running(r), 0);
    sfl_runner_free(r);
    event_base_free(base);
}

Test(runner, free_kills_and_reaps_without_callbacks)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    char *argv[] = {"sleep", "30", NULL};
    done_rec d[3];
    memset(d, 0, sizeof(d));
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        sfl_child_opts o = {.argv = argv, .capture = i != 2};
        sfl_child *c = sfl_runner_spawn(r, &o, on_done, &d[i], NULL, 0);
        cr_assert_not_null(c);
        pids[i] = sfl_child_pid(c);
    }
    loop_for(base, 50);
    sfl_runner_free(r);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(proc_state(pids[i], NULL), '\0', "child %d not reaped", i);
        cr_expect_eq(d[i].calls, 0);
    }
    loop_for(base, 20);
    event_base_free(base);
}

static void on_done_free_runner(sfl_child *child, const sfl_child_result *res, void *arg)
{
    on_done(child, res, arg);
    done_rec *d = arg;
    sfl_runner_free(d->r);
}

Test(runner, free_from_callback)
{
    struct event_base *base = event_base_new();
    sfl_runner *r = sfl_runner_new(base);
    char *quick[] = {"true", NULL};
    char *slow[] = {"sleep", "30", NULL};
    done_rec dq = {.r = r}, ds = {0};
    sfl_child_opts oq = {.argv = quick, .capture = 1};
    sfl_child_opts os = {.argv = slow, .capture = 1};
    sfl_child *cs = sfl_runner_spawn(r, &os, on_done, &ds, NULL, 0);
    cr_assert_not_null(cs);
    pid_t slow_pid = sfl_child_pid(cs);
    cr_assert_not_null(sfl_runner_spawn(r, &oq, on_done_free_runner, &dq, NULL, 0));
    cr_assert(wait_count(base, &dq.calls, 1, 10000));
    cr_expect_eq(proc_state(slow_pid, NULL), '\0', "slow child not reaped by free");
    loop_for(base, 50);
    cr_expect_eq(ds.calls, 0);
    event_base_free(base);
    rec_free(&dq);
}

/*--- Parent death ---*/

/* The node dies (SIGKILL): its checks must die with it (PR_SET_PDEATHSIG). */
Test(runner, child_dies_with_its_parent)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t mid = fork();
    cr_assert_geq(mid, 0);
    if (mid == 0) {
        close(p[0]);
        struct event_base *base = event_base_new();
        sfl_runner *r = base ? sfl_runner_new(base) : NULL;
        char *argv[] = {"sleep", "30", NULL};
        sfl_child_opts o = {.argv = argv, .capture = 1};
        done_rec d = {0};
        sfl_child *c = r ? sfl_runner_spawn(r, &o, on_done, &d, NULL, 0) : NULL;
        pid_t pid = c ? sfl_child_pid(c) : -1;
        if (write(p[1], &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
            _exit(2);
        event_base_dispatch(base);
        _exit(1);
    }
    close(p[1]);
    pid_t pid = -1;
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "intermediate did not report");
    cr_assert_eq(read(p[0], &pid, sizeof(pid)), (ssize_t)sizeof(pid));
    close(p[0]);
    cr_assert_gt(pid, 0);
    /* Give it time to reach exec (after the prctl), then check it runs. */
    usleep(100000);
    cr_assert(!proc_dead(pid), "sleep is not running");

    kill(mid, SIGKILL);
    cr_assert_eq(waitpid(mid, NULL, 0), mid);
    cr_expect(wait_dead(pid, 2000), "child %d outlived its parent", (int)pid);
}
