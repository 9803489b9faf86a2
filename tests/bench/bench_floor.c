/* bench_floor.c - what a hand-off through Redis costs on this machine at
 * the least, as a yardstick for the lease benchmark's hand-off (issue #17).
 *
 * Two processes, each on sfl's own store (hiredis async on a libevent
 * loop, as a node): one subscribed to a channel, one that sends every
 * interval ms, from a timer (as a worker releases when its hold ends), by
 * turns
 *   - "publish": PUBLISH of the send time, the message alone;
 *   - "script":  EVALSHA of a script that makes `calls` cheap reads (ZSCORE
 *                of a key that does not exist) and then that PUBLISH: the
 *                shape of release.lua, without its work.
 * The subscriber takes the time the message reaches it (CLOCK_MONOTONIC,
 * one clock for both processes). Nothing of the limiter runs: whatever sfl
 * adds to its hand-off (its scripts' work, its keys, its client code) is the
 * lease benchmark's figure less these. At the pace of the hold-20 runs the
 * two processes and Redis sleep between sends, so each hop pays for waking
 * a process, as sfl's hand-offs do.
 *
 * Prints one JSON line: interval_ms, samples, calls, publish_ms_p50/p90/p99,
 * script_ms_p50/p90/p99. */
#include "bench.h"

#include "log.h"
#include "store.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define FLOOR_CHANNEL "sflbench:floor"
#define MODES 2 /* 0 publish, 1 script */

typedef struct floor_area {
    size_t n[MODES];
    double ms[]; /* cap per mode, one block after the other */
} floor_area;

typedef struct floor_run {
    const bench_floor_opts *o;
    struct event_base *base;
    sfl_store *st;
    floor_area *area;
    size_t cap;
    struct event *tick;
    char sha[48];
    long long sent;
    int ready_fd; /* the subscriber's end of the pipe: -1 once told */
    int failed;
} floor_run;

static double *slot_of(floor_area *a, size_t cap, int mode)
{
    return a->ms + (size_t)mode * cap;
}

static int cmp_ms(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/*--- The subscriber ----------------------------------------------------------*/

static void sub_ready(sfl_store *st, void *arg)
{
    floor_run *r = arg;
    UNUSED(st);
    if (r->ready_fd >= 0) {
        (void)!write(r->ready_fd, "r", 1);
        close(r->ready_fd);
        r->ready_fd = -1;
    }
}

static void sub_message(sfl_store *st, const char *channel, const char *msg, void *arg)
{
    floor_run *r = arg;
    int64_t now = bench_now_ns();
    UNUSED(st);
    UNUSED(channel);
    int mode;
    long long sent_ns;
    if (sscanf(msg, "%d %lld", &mode, &sent_ns) != 2 || mode < 0 || mode >= MODES)
        return;
    if (mode == MODES - 1 && sent_ns == 0) {
        event_base_loopbreak(r->base); /* the sender is done */
        return;
    }
    floor_area *a = r->area;
    if (a->n[mode] < r->cap)
        slot_of(a, r->cap, mode)[a->n[mode]++] = (double)(now - sent_ns) / 1e6;
}

static int subscriber_main(floor_run *r, int ready_fd)
{
    const char *channels[] = {FLOOR_CHANNEL, NULL};
    sfl_store_opts so = {.url = r->o->redis_url,
                         .ns = "sflbench",
                         .connect_timeout_ms = 2000,
                         .command_timeout_ms = 10000,
                         .recovery_ms = 5000,
                         .channels = channels,
                         .on_ready = sub_ready,
                         .on_message = sub_message,
                         .arg = r};
    char err[256];
    r->ready_fd = ready_fd;
    r->base = event_base_new();
    r->st = r->base ? sfl_store_new(r->base, &so, err, sizeof(err)) : NULL;
    if (!r->st)
        return BENCH_EXIT_FAIL;
    sfl_store_start(r->st);
    event_base_dispatch(r->base);
    sfl_store_free(r->st);
    event_base_free(r->base);
    return BENCH_EXIT_OK;
}

/*--- The sender --------------------------------------------------------------*/

/* The script "script" sends: ARGV 1 the message, ARGV 2 how many reads. */
static const char floor_script[] =
    "for i = 1, tonumber(ARGV[2]) do redis.call('ZSCORE', KEYS[1], 'x') end\n"
    "redis.call('PUBLISH', KEYS[2], ARGV[1])\n"
    "return 1\n";

static void on_sent(sfl_store *st, redisReply *reply, void *arg)
{
    floor_run *r = arg;
    UNUSED(st);
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "sflimit-bench floor: Redis answered %s\n",
                reply ? reply->str : "nothing (connection lost)");
        r->failed = 1;
        event_base_loopbreak(r->base);
    }
}

static void send_one(floor_run *r, int mode, long long ns)
{
    char msg[64], calls[16];
    snprintf(msg, sizeof(msg), "%d %lld", mode, ns);
    snprintf(calls, sizeof(calls), "%d", r->o->calls);
    if (mode == 0) {
        const char *argv[] = {"PUBLISH", FLOOR_CHANNEL, msg};
        sfl_store_command(r->st, on_sent, r, 3, argv);
    } else {
        const char *argv[] = {"EVALSHA",     r->sha, "2",  "sflbench:floor:none",
                              FLOOR_CHANNEL, msg,    calls};
        sfl_store_command(r->st, on_sent, r, 7, argv);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    floor_run *r = arg;
    UNUSED(fd);
    UNUSED(what);
    if (r->sent >= (long long)(MODES * r->cap)) {
        send_one(r, MODES - 1, 0); /* the end */
        struct timeval drain = {0, 500000};
        event_base_loopexit(r->base, &drain);
        return;
    }
    send_one(r, (int)(r->sent % MODES), (long long)bench_now_ns());
    r->sent++;
    struct timeval tv = {r->o->interval_ms / 1000, (r->o->interval_ms % 1000) * 1000};
    evtimer_add(r->tick, &tv);
}

static void on_loaded(sfl_store *st, redisReply *reply, void *arg)
{
    floor_run *r = arg;
    UNUSED(st);
    if (!reply || reply->type != REDIS_REPLY_STRING || reply->len >= (int)sizeof(r->sha)) {
        fprintf(stderr, "sflimit-bench floor: SCRIPT LOAD failed: %s\n",
                reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer");
        r->failed = 1;
        event_base_loopbreak(r->base);
        return;
    }
    memcpy(r->sha, reply->str, (size_t)reply->len + 1);
    struct timeval settle = {0, 200000}; /* let both settle */
    evtimer_add(r->tick, &settle);
}

static void send_ready(sfl_store *st, void *arg)
{
    floor_run *r = arg;
    const char *argv[] = {"SCRIPT", "LOAD", floor_script};
    if (r->sha[0] || r->sent > 0) {
        fprintf(stderr, "sflimit-bench floor: the Redis connection was lost mid-run\n");
        r->failed = 1;
        event_base_loopbreak(r->base);
        return;
    }
    sfl_store_command(st, on_loaded, r, 3, argv);
}

static void print_figures(const floor_run *r, floor_area *a)
{
    static const char *const names[MODES] = {"publish", "script"};
    printf("{\"interval_ms\":%d,\"samples\":%zu,\"calls\":%d", r->o->interval_ms, r->cap,
           r->o->calls);
    for (int m = 0; m < MODES; m++) {
        double *v = slot_of(a, r->cap, m);
        qsort(v, a->n[m], sizeof(*v), cmp_ms);
        printf(",\"%s_received\":%zu,\"%s_ms_p50\":%.3f,\"%s_ms_p90\":%.3f,\"%s_ms_p99\":%.3f",
               names[m], a->n[m], names[m], bench_percentile(v, a->n[m], 50), names[m],
               bench_percentile(v, a->n[m], 90), names[m], bench_percentile(v, a->n[m], 99));
    }
    printf("}\n");
    fprintf(stderr,
            "floor: a message through Redis between two idle processes every %d ms, "
            "%zu each:\n"
            "  PUBLISH alone              p50 %.3f  p90 %.3f ms\n"
            "  a script of %2d reads + it  p50 %.3f  p90 %.3f ms\n",
            r->o->interval_ms, r->cap, bench_percentile(slot_of(a, r->cap, 0), a->n[0], 50),
            bench_percentile(slot_of(a, r->cap, 0), a->n[0], 90), r->o->calls,
            bench_percentile(slot_of(a, r->cap, 1), a->n[1], 50),
            bench_percentile(slot_of(a, r->cap, 1), a->n[1], 90));
}

int bench_floor_run(const bench_floor_opts *o)
{
    floor_run r = {.o = o, .ready_fd = -1};
    double per_mode = o->seconds * 1000.0 / (double)o->interval_ms / MODES;
    r.cap = per_mode < 1 ? 1 : (size_t)per_mode;
    size_t bytes = sizeof(floor_area) + MODES * r.cap * sizeof(double);
    floor_area *a = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int fds[2];
    if (a == MAP_FAILED || pipe(fds) < 0) {
        perror("sflimit-bench floor");
        return BENCH_EXIT_FAIL;
    }
    r.area = a;
    sfl_log_set_level(SFL_LOG_ERROR); /* the store warns of the missing epoch marker */
    pid_t child = fork();
    if (child < 0) {
        perror("sflimit-bench floor: fork");
        return BENCH_EXIT_FAIL;
    }
    if (child == 0) {
        close(fds[0]);
        _exit(subscriber_main(&r, fds[1]));
    }
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1) {
        fprintf(stderr, "sflimit-bench floor: the subscriber could not subscribe (Redis at %s?)\n",
                o->redis_url);
        close(fds[0]);
        waitpid(child, NULL, 0);
        return BENCH_EXIT_FAIL;
    }
    close(fds[0]);
    sfl_store_opts so = {.url = o->redis_url,
                         .ns = "sflbench",
                         .connect_timeout_ms = 2000,
                         .command_timeout_ms = 10000,
                         .recovery_ms = 5000,
                         .on_ready = send_ready,
                         .arg = &r};
    char err[256];
    r.base = event_base_new();
    r.st = r.base ? sfl_store_new(r.base, &so, err, sizeof(err)) : NULL;
    r.tick = r.base ? evtimer_new(r.base, on_tick, &r) : NULL;
    if (!r.st || !r.tick) {
        fprintf(stderr, "sflimit-bench floor: %s\n", r.st ? "out of memory" : err);
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
        return BENCH_EXIT_FAIL;
    }
    sfl_store_start(r.st);
    event_base_dispatch(r.base);
    event_free(r.tick);
    sfl_store_free(r.st);
    event_base_free(r.base);
    /* The subscriber stops on the last message; it is told to if that was lost. */
    int st = 0;
    for (int i = 0; i < 50 && waitpid(child, &st, WNOHANG) == 0; i++)
        usleep(100000);
    if (waitpid(child, &st, WNOHANG) == 0) {
        kill(child, SIGTERM);
        waitpid(child, &st, 0);
    }
    int ok = !r.failed && a->n[0] > 0 && a->n[1] > 0;
    if (ok)
        print_figures(&r, a);
    else if (!r.failed)
        fprintf(stderr, "sflimit-bench floor: no message came through\n");
    munmap(a, bytes);
    return ok ? BENCH_EXIT_OK : BENCH_EXIT_FAIL;
}
