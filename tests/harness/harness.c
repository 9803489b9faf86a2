/* harness.c - real redis-server instances and child processes for tests.
 *
 * No mock of Redis anywhere: each test that needs one starts its own server
 * on a free loopback port and kills it at the end. Waiting is on conditions
 * with generous deadlines (th_until, th_loop_until, th_wait; the polls below
 * that start a server), never on fixed sleeps. th_loop_for is not a way to
 * wait: it lets time pass on purpose, to show that something does NOT happen
 * in that time (a lease is not lost, a slot is not granted), or to pace a
 * loop that samples until its own condition. A test that sleeps a fixed time
 * for another reason (the moment or the length of a fault it injects) says
 * why where it does. */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        cr_assert_fail("no free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

void th_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/sfl-test-XXXXXX");
    cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
}

void th_clear_env(void)
{
    static const char *const vars[] = {"SFL_CONFIG",
                                       "SFL_REDIS_URL",
                                       "SFL_NODE_ID",
                                       "SFL_HTTP_LISTEN",
                                       "SFL_HTTP_TOKEN",
                                       "SFL_DISPATCHARR_URL",
                                       "SFL_DISPATCHARR_API_KEY",
                                       NULL};
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
}

static int redis_pings(const sfl_test_redis *r)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, "PING");
        ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    return ok;
}

static void redis_launch(sfl_test_redis *r, const char *const *extra)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    const char *argv[64] = {"redis-server", "--port",     port,     "--bind",
                            "127.0.0.1",    "--save",     "",       "--appendonly",
                            "no",           "--dir",      r->dir,   "--daemonize",
                            "no",           "--loglevel", "warning"};
    int n = 15;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char log[200];
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    r->pid = th_spawn((char *const *)argv, log, log);
}

void th_redis_start(sfl_test_redis *r, const char *const *extra)
{
    memset(r, 0, sizeof(*r));
    r->extra = extra;
    th_tmpdir(r->dir, sizeof(r->dir));
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = free_port();
        redis_launch(r, extra);
        int64_t until = th_now_ms() + 5000;
        while (th_now_ms() < until && th_alive(r->pid)) {
            if (redis_pings(r)) {
                snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
                return;
            }
            usleep(10000);
        }
        th_redis_stop(r);
    }
    cr_assert_fail("redis-server did not start (is it installed?)");
}

void th_redis_stop(sfl_test_redis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

void th_redis_restart(sfl_test_redis *r)
{
    th_redis_stop(r);
    redis_launch(r, r->extra);
    int64_t until = th_now_ms() + 5000;
    while (th_now_ms() < until) {
        if (redis_pings(r))
            return;
        usleep(10000);
    }
    cr_assert_fail("redis-server did not restart on port %d", r->port);
}

static redisReply *vcmd(const sfl_test_redis *r, const char *fmt, va_list ap)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    cr_assert(c && !c->err, "connect to redis :%d failed", r->port);
    redisReply *rep = redisvCommand(c, fmt, ap);
    redisFree(c);
    cr_assert_not_null(rep, "redis command failed");
    return rep;
}

redisReply *th_redis(const sfl_test_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = vcmd(r, fmt, ap);
    va_end(ap);
    return rep;
}

long long th_redis_int(const sfl_test_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = vcmd(r, fmt, ap);
    va_end(ap);
    long long v = 0;
    if (rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep->type == REDIS_REPLY_STRING)
        v = strtoll(rep->str, NULL, 10);
    freeReplyObject(rep);
    return v;
}

/* The value of "field:" in an INFO section's answer ("" if none). */
static void info_field(const sfl_test_redis *r, const char *section, const char *field, char *buf,
                       size_t len)
{
    redisReply *info = th_redis(r, "INFO %s", section);
    char pat[64], fmt[32];
    snprintf(pat, sizeof(pat), "%s:", field);
    snprintf(fmt, sizeof(fmt), "%%%zu[0-9a-f]", len - 1);
    const char *p = info->type == REDIS_REPLY_STRING ? strstr(info->str, pat) : NULL;
    buf[0] = '\0';
    if (p)
        sscanf(p + strlen(pat), fmt, buf);
    freeReplyObject(info);
}

void th_epoch_init(const sfl_test_redis *r)
{
    if (th_redis_int(r, "EXISTS sfl:epoch"))
        return;
    char run_id[64], replid[64];
    info_field(r, "server", "run_id", run_id, sizeof(run_id));
    info_field(r, "replication", "master_replid", replid, sizeof(replid));
    redisReply *rep = th_redis(r,
                               "HSET sfl:epoch created_ms 0 opened_ms 0 recover_until_ms 0 "
                               "reason init run_id %s replid %s",
                               run_id, replid);
    freeReplyObject(rep);
}

void th_account(const sfl_test_redis *r, long long id, long long max_streams)
{
    char key[64];
    th_epoch_init(r);
    snprintf(key, sizeof(key), "sfl:{a:%lld}:conf", id);
    redisReply *rep = th_redis(r, "HSET %s max_streams %lld updated_ms 0", key, max_streams);
    freeReplyObject(rep);
    rep = th_redis(r, "SADD sfl:accounts %lld", id);
    freeReplyObject(rep);
}

/* One conf hash's max_streams, -1 when there is none. */
static long long conf_max(const sfl_test_redis *r, const char *key)
{
    redisReply *rep = th_redis(r, "HGET %s max_streams", key);
    long long v = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : -1;
    freeReplyObject(rep);
    return v;
}

long long th_account_limit(const sfl_test_redis *r, long long id)
{
    char key[96];
    snprintf(key, sizeof(key), "sfl:{a:%lld}:conf", id);
    redisReply *rep = th_redis(r, "HGET %s logins", key);
    cJSON *logins = rep->type == REDIS_REPLY_STRING ? cJSON_Parse(rep->str) : NULL;
    freeReplyObject(rep);
    if (!cJSON_IsArray(logins)) {
        cJSON_Delete(logins);
        return conf_max(r, key);
    }
    /* An account of several logins (account.lua): the sum of theirs. */
    long long sum = 0;
    int unlimited = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, logins)
    {
        const char *prefix = cJSON_GetStringValue(cJSON_GetObjectItem(l, "keys"));
        char conf[256];
        snprintf(conf, sizeof(conf), "%sconf", prefix ? prefix : "?");
        long long v = conf_max(r, conf);
        if (v < 0) {
            sum = -1;
            break;
        }
        unlimited |= v == 0;
        sum += v;
    }
    cJSON_Delete(logins);
    return sum < 0 ? -1 : unlimited ? 0 : sum;
}

/* SFL_TEST_WRAP (say "valgrind -q --error-exitcode=99 ..."): words put in
 * front of the argv of every sflimit the tests start, so that the integration
 * suites run it under a checker. Split on blanks, no quoting. Runs in the
 * forked child: no allocation. Returns only if exec failed. */
static void exec_wrapped(char *const argv[])
{
    const char *wrap = getenv("SFL_TEST_WRAP");
    if (wrap && *wrap && strcmp(argv[0], SFL_BIN) == 0) {
        char words[2048], *v[256];
        int n = 0;
        snprintf(words, sizeof(words), "%s", wrap);
        for (char *save = NULL, *w = strtok_r(words, " \t", &save); w && n < 128;
             w = strtok_r(NULL, " \t", &save))
            v[n++] = w;
        for (int i = 0; argv[i] && n < 255; i++)
            v[n++] = argv[i];
        v[n] = NULL;
        execvp(v[0], v);
        return;
    }
    execvp(argv[0], argv);
}

/* th_spawn and th_spawn_tied: tied, the child dies with this process
 * (PR_SET_PDEATHSIG) and argv runs as given, never wrapped. */
static pid_t spawn_child(char *const argv[], const char *out_path, const char *err_path, int tied)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (tied) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(127);
        }
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        int err = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        setpgid(0, 0);
        if (tied)
            execvp(argv[0], argv);
        else
            exec_wrapped(argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

pid_t th_spawn(char *const argv[], const char *out_path, const char *err_path)
{
    return spawn_child(argv, out_path, err_path, 0);
}

pid_t th_spawn_tied(char *const argv[], const char *out_path, const char *err_path)
{
    return spawn_child(argv, out_path, err_path, 1);
}

int th_wait(pid_t pid, int timeout_ms)
{
    int64_t until = th_now_ms() + timeout_ms;
    int st;
    while (th_now_ms() < until) {
        pid_t p = waitpid(pid, &st, WNOHANG);
        if (p == pid)
            return st;
        usleep(5000);
    }
    return -1;
}

int th_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int th_until(int (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t until = th_now_ms() + timeout_ms;
    for (;;) {
        int v = cond(arg);
        if (v || th_now_ms() >= until)
            return v;
        usleep(10000);
    }
}

char *th_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

#include <event2/event.h>

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

int th_loop_until(struct event_base *base, int (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t until = th_now_ms() + timeout_ms;
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 5000};
    evtimer_add(tick, &tv);
    int v;
    while (!(v = cond ? cond(arg) : 0) && th_now_ms() < until)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return v;
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

void th_loop_for(struct event_base *base, int ms)
{
    th_loop_until(base, never, NULL, ms);
}

#include <cjson/cJSON.h>

void th_provider_start(sfl_test_provider *p, const char *const *users, int hold_ms,
                       const char *file)
{
    th_provider_start_args(p, users, hold_ms, file, NULL);
}

void th_provider_start_args(sfl_test_provider *p, const char *const *users, int hold_ms,
                            const char *file, const char *const *args)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->host, sizeof(p->host), "127.0.0.1");
    th_tmpdir(p->dir, sizeof(p->dir));
    char portfile[200], hold[24], log[200];
    snprintf(portfile, sizeof(portfile), "%s/port", p->dir);
    snprintf(log, sizeof(log), "%s/provider.log", p->dir);
    snprintf(hold, sizeof(hold), "%d", hold_ms);
    const char *argv[64] = {SFL_TOOLS_DIR "/sfl-fake-provider", "--port-file", portfile,
                            "--hold-ms", hold};
    int n = 5;
    for (int i = 0; users && users[i] && n < 58; i++) {
        argv[n++] = "--user";
        argv[n++] = users[i];
    }
    if (file) {
        argv[n++] = "--file";
        argv[n++] = file;
    }
    for (int i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    p->pid = th_spawn((char *const *)argv, log, log);
    int64_t until = th_now_ms() + 5000;
    while (th_now_ms() < until) {
        char *text = th_read_file(portfile);
        if (text) {
            p->port = atoi(text);
            free(text);
            if (p->port > 0)
                return;
        }
        usleep(10000);
    }
    cr_assert_fail("the fake provider did not start");
}

void th_provider_stop(sfl_test_provider *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

cJSON *th_provider_stats(const sfl_test_provider *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p->port)};
    cr_assert_eq(inet_pton(AF_INET, p->host, &a.sin_addr), 1, "bad provider address '%s'", p->host);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
              "cannot reach the fake provider at %s:%d", p->host, p->port);
    const char req[] = "GET /stats HTTP/1.0\r\nHost: x\r\n\r\n";
    cr_assert(write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1);
    char buf[65536];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
        n += r;
    close(fd);
    buf[n] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(body, "bad answer from the fake provider");
    cJSON *doc = cJSON_Parse(body + 4);
    cr_assert_not_null(doc, "fake provider /stats is not JSON: %s", body + 4);
    return doc;
}

long long th_provider_stat(const sfl_test_provider *p, const char *path)
{
    cJSON *doc = th_provider_stats(p);
    cJSON *v = doc;
    char copy[200];
    snprintf(copy, sizeof(copy), "%s", path);
    for (char *save = NULL, *part = strtok_r(copy, ".", &save); part && v;
         part = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItem(v, part);
    cr_assert(cJSON_IsNumber(v), "no number at %s in the provider's stats", path);
    long long out = (long long)v->valuedouble;
    cJSON_Delete(doc);
    return out;
}

static void pct_encode(char *out, size_t len, const char *in);
static int send_all(int fd, const char *p, size_t n);

const char *th_provider_panel(const sfl_test_provider *p, const char *user, const char *pass,
                              char *buf, size_t len)
{
    char u[256], pw[256], req[768], ans[65536];
    pct_encode(u, sizeof(u), user);
    pct_encode(pw, sizeof(pw), pass);
    int n =
        snprintf(req, sizeof(req),
                 "GET /player_api.php?username=%s&password=%s HTTP/1.0\r\nHost: x\r\n\r\n", u, pw);
    cr_assert(n > 0 && n < (int)sizeof(req));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    cr_assert_eq(inet_pton(AF_INET, p->host, &a.sin_addr), 1, "bad provider address '%s'", p->host);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
              "cannot reach the fake provider at %s:%d", p->host, p->port);
    cr_assert(send_all(fd, req, (size_t)n) == 0, "cannot ask the fake provider's panel");
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(ans) - 1 && (r = read(fd, ans + got, sizeof(ans) - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    ans[got] = '\0';
    int status = 0;
    char *body = strstr(ans, "\r\n\r\n");
    cr_assert(sscanf(ans, "HTTP/1.%*d %d", &status) == 1 && status == 200 && body,
              "player_api.php for %s: bad answer: %s", user, ans);
    snprintf(buf, len, "%s", body + 4);
    return buf;
}

void th_write_file(const char *dir, const char *name, const char *text, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, name);
    FILE *f = fopen(buf, "w");
    cr_assert_not_null(f, "cannot write %s", buf);
    fputs(text, f);
    fclose(f);
}

/*--- The fake Dispatcharr ------------------------------------------------*/

void th_dispatcharr_start(sfl_test_dispatcharr *d, const char *dir, const char *accounts_json,
                          const char *password, const char *api_key, const char *const *extra)
{
    memset(d, 0, sizeof(*d));
    char portfile[256], log[256];
    th_write_file(dir, "accounts.json", accounts_json, d->accounts, sizeof(d->accounts));
    snprintf(portfile, sizeof(portfile), "%s/fake.port", dir);
    snprintf(log, sizeof(log), "%s/fake.log", dir);
    snprintf(d->viewers, sizeof(d->viewers), "%s/viewers.json", dir);
    /* A restart in the same dir must not read the last run's port, nor
     * serve its viewers. */
    cr_assert(unlink(portfile) == 0 || errno == ENOENT, "cannot remove %s: %s", portfile,
              strerror(errno));
    cr_assert(unlink(d->viewers) == 0 || errno == ENOENT, "cannot remove %s: %s", d->viewers,
              strerror(errno));
    const char *argv[48] = {SFL_TOOLS_DIR "/sfl-fake-dispatcharr", "--port-file", portfile,
                            "--accounts", d->accounts};
    int n = 5;
    argv[n++] = "--viewers";
    argv[n++] = d->viewers;
    if (password) {
        argv[n++] = "--username";
        argv[n++] = "admin";
        argv[n++] = "--password";
        argv[n++] = password;
    }
    if (api_key) {
        argv[n++] = "--api-key";
        argv[n++] = api_key;
    }
    for (int i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    d->pid = th_spawn((char *const *)argv, log, log);
    int64_t until = th_now_ms() + 5000;
    while (th_now_ms() < until) {
        char *text = th_read_file(portfile);
        d->port = text ? atoi(text) : 0;
        free(text);
        if (d->port > 0)
            return;
        usleep(10000);
    }
    cr_assert_fail("the fake Dispatcharr did not start");
}

void th_dispatcharr_stop(sfl_test_dispatcharr *d)
{
    if (d->pid > 0) {
        /* SIGKILL ends a stopped process too; the SIGCONT first is so that
         * nothing is left stopped should the kill ever be anything else. */
        kill(d->pid, SIGCONT);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
    d->paused = 0;
}

/* The fake is a child of this process (th_spawn, its own process group), so
 * waitpid(WUNTRACED) tells when the SIGSTOP has taken effect. Should this
 * process die with it stopped, its orphaned process group gets SIGHUP and
 * SIGCONT from the kernel, and the SIGHUP ends it: nothing lingers. */
void th_dispatcharr_pause(sfl_test_dispatcharr *d)
{
    cr_assert(d->pid > 0 && !d->paused, "the fake Dispatcharr is not running, or paused already");
    cr_assert_eq(kill(d->pid, SIGSTOP), 0, "SIGSTOP: %s", strerror(errno));
    int st = 0;
    pid_t r;
    while ((r = waitpid(d->pid, &st, WUNTRACED)) < 0 && errno == EINTR)
        ;
    if (r == d->pid && WIFSTOPPED(st)) {
        d->paused = 1;
        return;
    }
    if (r == d->pid)
        d->pid = 0; /* it died, and is reaped */
    cr_assert_fail("the fake Dispatcharr did not stop (wait status %d)", st);
}

void th_dispatcharr_resume(sfl_test_dispatcharr *d)
{
    cr_assert(d->pid > 0 && d->paused, "the fake Dispatcharr is not paused");
    cr_assert_eq(kill(d->pid, SIGCONT), 0, "SIGCONT: %s", strerror(errno));
    d->paused = 0;
}

char *th_dispatcharr_call(const sfl_test_dispatcharr *d, const char *method, const char *path)
{
    cr_assert_not(d->paused, "%s %s: the fake Dispatcharr is paused", method, path);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(d->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
              "cannot reach the fake Dispatcharr");
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[256];
    int len = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                       method, path);
    cr_assert(write(fd, req, len) == len);
    char buf[8192];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(body, "bad answer from the fake Dispatcharr");
    return strdup(body + 4);
}

long th_dispatcharr_stat(const sfl_test_dispatcharr *d, const char *name)
{
    char *text = th_dispatcharr_call(d, "GET", "/fixture/stats");
    cJSON *doc = cJSON_Parse(text);
    const cJSON *v = cJSON_GetObjectItem(doc, name);
    cr_assert(cJSON_IsNumber(v), "no %s in %s", name, text);
    long out = (long)v->valuedouble;
    cJSON_Delete(doc);
    free(text);
    return out;
}

void th_dispatcharr_set_accounts(const sfl_test_dispatcharr *d, const char *accounts_json)
{
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->accounts);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f, "cannot write %s", tmp);
    fputs(accounts_json, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, d->accounts), 0);
    char *body = th_dispatcharr_call(d, "POST", "/fixture/reload");
    cr_assert_str_eq(body, "{}", "the fake Dispatcharr did not reload: %s", body);
    free(body);
}

void th_dispatcharr_viewers(const sfl_test_dispatcharr *d, const char *json)
{
    cr_assert(d->viewers[0], "the fake Dispatcharr was not started by th_dispatcharr_start");
    if (!json) {
        cr_assert(unlink(d->viewers) == 0 || errno == ENOENT, "cannot remove %s: %s", d->viewers,
                  strerror(errno));
        return;
    }
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->viewers);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f, "cannot write %s", tmp);
    fputs(json, f);
    cr_assert_eq(fclose(f), 0, "cannot write %s", tmp);
    cr_assert_eq(rename(tmp, d->viewers), 0, "cannot rename %s: %s", tmp, strerror(errno));
}

/*--- A blocking HTTP client ------------------------------------------------*/

#include <sys/time.h>

int th_free_port(void)
{
    return free_port();
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int th_http_send(int port, const char *method, const char *path, const char *token,
                 const char *body, size_t blen)
{
    /* CLOEXEC: a child spawned meanwhile must not keep the connection open
     * after the test closes it. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n", method, path,
                     port);
    if (token)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (body)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if (n >= (int)sizeof(head) || send_all(fd, head, (size_t)n) < 0) {
        close(fd);
        return -1;
    }
    if (body && blen)
        send_all(fd, body, blen);
    return fd;
}

int th_http_read(int fd, th_http_resp *out)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        free(buf);
        out->status = 0;
        return -1;
    }
    char *sep = strstr(buf, "\r\n\r\n");
    out->raw = buf;
    out->body = sep ? sep + 4 : buf + n;
    out->json = cJSON_Parse(out->body);
    return 0;
}

int th_http(int port, const char *token, const char *method, const char *path, const char *body,
            th_http_resp *out)
{
    int64_t t0 = th_now_ms();
    int fd = th_http_send(port, method, path, token, body, body ? strlen(body) : 0);
    if (fd < 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    int rc = th_http_read(fd, out);
    out->ms = th_now_ms() - t0;
    return rc;
}

void th_http_free(th_http_resp *r)
{
    if (!r)
        return;
    free(r->raw);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

int th_dispatcharr_get(const sfl_test_dispatcharr *d, const char *path, const char *header,
                       th_http_resp *out)
{
    cr_assert_not(d->paused, "GET %s: the fake Dispatcharr is paused", path);
    memset(out, 0, sizeof(*out));
    int64_t t0 = th_now_ms();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)d->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s\r\n", path,
                     d->port, header ? header : "", header ? "\r\n" : "");
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || n >= (int)sizeof(head) ||
        send_all(fd, head, (size_t)n) < 0) {
        close(fd);
        return -1;
    }
    int rc = th_http_read(fd, out);
    out->ms = th_now_ms() - t0;
    return rc;
}

/*--- Viewers as Dispatcharr describes them ---------------------------------*/

#define TH_VIEWER_UPTIME 12.3 /* s, of every channel and session */
#define TH_VIEWER_KBPS 4000   /* the average bitrate of every channel */

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void th_viewers_init(th_viewers *v)
{
    memset(v, 0, sizeof(*v));
    v->doc = cJSON_CreateObject();
    cJSON *ts = cJSON_AddObjectToObject(v->doc, "ts_status");
    cJSON *st = cJSON_AddObjectToObject(v->doc, "stats");
    cr_assert(ts && st && cJSON_AddArrayToObject(ts, "channels") &&
              cJSON_AddNumberToObject(ts, "count", 0) && cJSON_AddArrayToObject(st, "live") &&
              cJSON_AddArrayToObject(st, "vod") && cJSON_AddArrayToObject(st, "catchup") &&
              cJSON_AddNumberToObject(st, "timestamp", wall_s()));
}

/* The list member of the document's answer (asserted to be there). */
static cJSON *viewers_list(const th_viewers *v, const char *answer, const char *list)
{
    cr_assert_not_null(v->doc, "th_viewers_init first");
    cJSON *l = cJSON_GetObjectItem(cJSON_GetObjectItem(v->doc, answer), list);
    cr_assert(cJSON_IsArray(l));
    return l;
}

void th_viewers_live(th_viewers *v, const th_live *c)
{
    cJSON *channels = viewers_list(v, "ts_status", "channels");
    cJSON *live = viewers_list(v, "stats", "live");
    int n = ++v->n;
    double now = wall_s();
    char id[48], host[32], user[64], pass[64], url[512], name[64];
    snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", n);
    snprintf(host, sizeof(host), c->provider_port ? "127.0.0.1:%d" : "provider.invalid",
             c->provider_port);
    snprintf(user, sizeof(user), "user%lld", c->profile);
    snprintf(pass, sizeof(pass), "pass%lld", c->profile);
    snprintf(url, sizeof(url), "http://%s/live/%s/%s/%lld.ts", host, c->user ? c->user : user,
             c->pass ? c->pass : pass, c->stream);
    snprintf(name, sizeof(name), "Stream %lld", c->stream);
    double total = TH_VIEWER_KBPS * 1000.0 / 8 * TH_VIEWER_UPTIME;
    cJSON *ch = cJSON_CreateObject();
    cJSON *clients = ch ? cJSON_CreateArray() : NULL;
    cr_assert(clients && cJSON_AddStringToObject(ch, "channel_id", id) &&
              cJSON_AddStringToObject(ch, "state", c->state ? c->state : "active") &&
              cJSON_AddStringToObject(ch, "url", url) &&
              cJSON_AddStringToObject(ch, "stream_profile", "1") &&
              cJSON_AddStringToObject(ch, "owner", "fake-dispatcharr-worker") &&
              cJSON_AddNumberToObject(ch, "buffer_index", 42) &&
              (c->profile == 0 || cJSON_AddNumberToObject(ch, "m3u_profile_id", c->profile)) &&
              cJSON_AddNumberToObject(ch, "stream_id", (double)c->stream) &&
              cJSON_AddStringToObject(ch, "stream_name", name) &&
              cJSON_AddNumberToObject(ch, "client_count", c->clients));
    for (int i = 1; i <= c->clients && i <= 10; i++) {
        char cid[48], ip[32];
        snprintf(cid, sizeof(cid), "client_%d_%d", n, i);
        snprintf(ip, sizeof(ip), "10.0.%d.%d", n % 250 + 1, i);
        cJSON *cl = cJSON_CreateObject();
        cr_assert(cl && cJSON_AddStringToObject(cl, "client_id", cid) &&
                  cJSON_AddStringToObject(cl, "user_agent", "VLC/3.0.20 LibVLC/3.0.20") &&
                  cJSON_AddStringToObject(cl, "ip_address", ip) &&
                  cJSON_AddNumberToObject(cl, "connected_at", now - TH_VIEWER_UPTIME + i) &&
                  cJSON_AddStringToObject(cl, "user_id", "0"));
        cJSON_AddItemToArray(clients, cl);
    }
    cJSON_AddItemToObject(ch, "clients", clients);
    cr_assert(cJSON_AddNumberToObject(ch, "started_at", now - TH_VIEWER_UPTIME) &&
              cJSON_AddNumberToObject(ch, "uptime", TH_VIEWER_UPTIME) &&
              cJSON_AddNumberToObject(ch, "total_bytes", total) &&
              cJSON_AddNumberToObject(ch, "avg_bitrate_kbps", TH_VIEWER_KBPS) &&
              cJSON_AddStringToObject(ch, "avg_bitrate", "4.00 Mbps") &&
              cJSON_AddBoolToObject(ch, "is_timeshift", 0));
    cJSON *copy = cJSON_Duplicate(ch, 1);
    cr_assert_not_null(copy);
    cJSON_AddItemToArray(channels, ch);
    cJSON_AddItemToArray(live, copy);
    cJSON_SetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(v->doc, "ts_status"), "count"),
                         cJSON_GetArraySize(channels));
}

static void viewers_session(th_viewers *v, const char *list, const th_session *s, const char *type)
{
    cJSON *l = viewers_list(v, "stats", list);
    int n = ++v->n;
    char id[48], content[48], name[64], ip[32];
    snprintf(id, sizeof(id), "00000000-0000-4000-9000-%012d", n);
    snprintf(content, sizeof(content), "00000000-0000-4000-a000-%012d", n);
    snprintf(name, sizeof(name), "%s %d", strcmp(list, "vod") == 0 ? "Movie" : "Catch-up", n);
    snprintf(ip, sizeof(ip), "10.0.2.%d", n % 250 + 1);
    cJSON *o = cJSON_CreateObject();
    cr_assert(
        o && cJSON_AddStringToObject(o, "session_id", id) &&
        cJSON_AddStringToObject(o, "content_type", s->content_type ? s->content_type : type) &&
        cJSON_AddStringToObject(o, "content_uuid", content) &&
        cJSON_AddStringToObject(o, "content_name", name) &&
        (s->profile == 0 || cJSON_AddNumberToObject(o, "m3u_profile_id", s->profile)) &&
        (s->stream == 0 || cJSON_AddNumberToObject(o, "stream_id", (double)s->stream)) &&
        cJSON_AddStringToObject(o, "client_ip", s->client_ip ? s->client_ip : ip) &&
        cJSON_AddStringToObject(o, "user_agent", "VLC/3.0.20 LibVLC/3.0.20") &&
        cJSON_AddNumberToObject(o, "connected_at", wall_s() - TH_VIEWER_UPTIME) &&
        cJSON_AddNumberToObject(o, "duration", TH_VIEWER_UPTIME));
    cJSON_AddItemToArray(l, o);
}

void th_viewers_vod(th_viewers *v, const th_session *s)
{
    viewers_session(v, "vod", s, "movie");
}

void th_viewers_catchup(th_viewers *v, const th_session *s)
{
    viewers_session(v, "catchup", s, "catchup");
}

const char *th_viewers_json(const th_viewers *v, char *buf, size_t len)
{
    cr_assert_not_null(v->doc, "th_viewers_init first");
    char *text = cJSON_PrintUnformatted(v->doc);
    cr_assert_not_null(text);
    size_t n = strlen(text);
    cr_assert_lt(n, len, "the viewers document (%zu bytes) does not fit in %zu", n, len);
    memcpy(buf, text, n + 1);
    cJSON_free(text);
    return buf;
}

void th_viewers_free(th_viewers *v)
{
    if (!v)
        return;
    cJSON_Delete(v->doc);
    memset(v, 0, sizeof(*v));
}

/*--- A viewer: one real connection held to the fake provider ---------------*/

/* RFC 3986 unreserved characters as they are, the others as %XX. */
static void pct_encode(char *out, size_t len, const char *in)
{
    size_t n = 0;
    for (; *in && n + 4 < len; in++) {
        unsigned char c = (unsigned char)*in;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, len - n, "%%%02X", c);
    }
    out[n] = '\0';
}

int th_viewer_start(th_viewer *v, int provider_port, const char *user, const char *pass,
                    long long stream)
{
    memset(v, 0, sizeof(*v));
    v->fd = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)provider_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return 0;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char u[256], p[256], req[768], buf[8192];
    pct_encode(u, sizeof(u), user);
    pct_encode(p, sizeof(p), pass);
    /* hold_ms: the provider's longest hold, which no test outlives. Should
     * the stream end all the same, "Connection: close" makes the provider
     * close the connection, which th_viewer_alive sees. */
    int n =
        snprintf(req, sizeof(req),
                 "GET /live/%s/%s/%lld.ts?hold_ms=2147483647 HTTP/1.1\r\n"
                 "Host: 127.0.0.1:%d\r\nUser-Agent: sfl-test-viewer\r\nConnection: close\r\n\r\n",
                 u, p, stream, provider_port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || n >= (int)sizeof(req) ||
        send_all(fd, req, (size_t)n) < 0) {
        close(fd);
        return 0;
    }
    size_t got = 0;
    char *end = NULL;
    while (!end && got < sizeof(buf) - 1) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    buf[got] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &v->status) != 1)
        v->status = 0;
    if (v->status != 200 || !end) {
        close(fd);
        return v->status;
    }
    v->fd = fd;
    v->held = 1;
    v->bytes = (long long)(got - (size_t)(end + 4 - buf));
    return 200;
}

int th_viewer_alive(th_viewer *v)
{
    char buf[65536];
    /* Bounded: the provider sends ~0.5 MB/s, this drains faster. */
    for (int i = 0; v->held && i < 10000; i++) {
        ssize_t r = recv(v->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0) {
            v->bytes += r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        th_viewer_stop(v); /* EOF or an error: the provider let it go */
        v->ended = 1;
    }
    return v->held;
}

void th_viewer_stop(th_viewer *v)
{
    if (v->held)
        close(v->fd);
    v->held = 0;
    v->fd = -1;
}

/*--- Results ---------------------------------------------------------------*/

void th_results_read(th_results *r, const char *path)
{
    memset(r, 0, sizeof(*r));
    char *text = th_read_file(path);
    cr_assert_not_null(text, "no results file %s", path);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line)
            continue;
        cJSON *o = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(o), "result line is not a JSON object: %s", line);
        cr_assert_lt(r->n, TH_MAX_RESULTS, "too many result lines");
        r->v[r->n++] = o;
    }
    free(text);
}

void th_results_free(th_results *r)
{
    for (int i = 0; i < r->n; i++)
        cJSON_Delete(r->v[i]);
    r->n = 0;
}

const char *th_str_of(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

double th_num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "result member %s is not a number", key);
    return v->valuedouble;
}

long long th_id_of(const cJSON *o)
{
    return (long long)th_num_of(o, "stream_id");
}

int th_has_status(const cJSON *o, const char *status)
{
    const char *s = th_str_of(o, "status");
    return s && strcmp(s, status) == 0;
}

cJSON *th_result_for(const th_results *r, long long id)
{
    cJSON *found = NULL;
    for (int i = 0; i < r->n; i++) {
        if (th_id_of(r->v[i]) != id)
            continue;
        cr_assert_null(found, "stream %lld has more than one result", id);
        found = r->v[i];
    }
    cr_assert_not_null(found, "stream %lld has no result", id);
    return found;
}

int th_count_status(const th_results *r, const char *status)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += th_has_status(r->v[i], status);
    return n;
}

/*--- Streams files ---------------------------------------------------------*/

void th_streams_init(th_streams *b)
{
    b->n = (size_t)snprintf(b->text, sizeof(b->text), "[");
    b->count = 0;
}

void th_streams_add(th_streams *b, int port, long long id, const char *name, long long account,
                    const char *user, const char *pass)
{
    char acc[48] = "", nm[48];
    if (account >= 0)
        snprintf(acc, sizeof(acc), ", \"m3u_account\": %lld", account);
    if (!name) {
        snprintf(nm, sizeof(nm), "S%lld", id);
        name = nm;
    }
    b->n += (size_t)snprintf(b->text + b->n, sizeof(b->text) - b->n,
                             "%s\n {\"id\": %lld, \"name\": \"%s\","
                             " \"url\": \"http://127.0.0.1:%d/live/%s/%s/%lld.ts\"%s}",
                             b->count ? "," : "", id, name, port, user, pass, id, acc);
    b->count++;
    cr_assert_lt(b->n, sizeof(b->text) - 8, "streams text too long");
}

void th_streams_write(th_streams *b, const char *dir, const char *name, char *path, size_t len)
{
    snprintf(b->text + b->n, sizeof(b->text) - b->n, "\n]\n");
    th_write_file(dir, name, b->text, path, len);
}

/*--- A config for `sflimit check` ------------------------------------------*/

const char *th_wrap_lease(void)
{
    const char *wrap = getenv("SFL_TEST_WRAP");
    return wrap && *wrap ? ", \"handoff_ms\": 1000" : "";
}

void th_write_config(const char *dir, const th_config *c, char *path, size_t len)
{
    cr_assert_not_null(c->redis_url, "a config needs a Redis URL");
    char analysis[64] = "";
    if (c->ffmpeg_duration > 0)
        snprintf(analysis, sizeof(analysis), "\"ffmpeg_duration\": %g, ", c->ffmpeg_duration);
    /* Under a wrapper, a longer hold (th_wrap_lease). A test that sets
     * "lease" keeps its own. */
    const char *slow = c->lease ? "" : th_wrap_lease();
    char text[4096];
    int n = snprintf(text, sizeof(text),
                     "{\"node_id\": \"%s\",\n"
                     " \"redis\": {\"url\": \"%s\"},\n"
                     " \"lease\": {%s%s, \"acquire_timeout\": %g},\n"
                     " \"concurrent_streams\": {\"global_limit\": %d, \"stagger_delay\": 0},\n"
                     " \"stream_analysis\": {%s\"retries\": %d},\n"
                     " \"accounts\": %s,\n"
                     " \"check\": {\"command\": %s, \"parser\": \"%s\", \"timeout\": %g}%s}\n",
                     c->node_id ? c->node_id : "t1", c->redis_url, c->lease ? c->lease : TH_LEASE,
                     slow, c->acquire_timeout > 0 ? c->acquire_timeout : 30,
                     c->global_limit > 0 ? c->global_limit : 10, analysis, c->retries,
                     c->accounts ? c->accounts : "[]", c->command ? c->command : TH_CURL_CMD,
                     c->parser ? c->parser : "none", c->check_timeout > 0 ? c->check_timeout : 30,
                     c->extra ? c->extra : "");
    cr_assert_lt(n, (int)sizeof(text), "config text too long");
    th_write_file(dir, c->file ? c->file : "sflimit.json", text, path, len);
}

/*--- Running sflimit -------------------------------------------------------*/

static int runs; /* names the files of each run */

pid_t th_run_start(th_run *r, const char *dir, const char *const *argv)
{
    memset(r, 0, sizeof(*r));
    runs++;
    snprintf(r->what, sizeof(r->what), "sflimit %s", argv[1] ? argv[1] : "");
    snprintf(r->out, sizeof(r->out), "%s/run%d.out", dir, runs);
    snprintf(r->err, sizeof(r->err), "%s/run%d.err", dir, runs);
    r->pid = th_spawn((char *const *)argv, r->out, r->err);
    return r->pid;
}

pid_t th_check_start(th_run *r, const char *dir, const char *config, const char *streams,
                     const char *out)
{
    const char *argv[8] = {SFL_BIN, "check", "-c", config};
    int k = 4;
    if (out) {
        argv[k++] = "-o";
        argv[k++] = out;
    }
    argv[k++] = streams;
    argv[k] = NULL;
    return th_run_start(r, dir, argv);
}

const char *th_run_stderr(const th_run *r)
{
    static char buf[8192];
    char *t = th_read_file(r->err);
    size_t n = t ? strlen(t) : 0;
    snprintf(buf, sizeof(buf), "%s", t ? (n > 8000 ? t + n - 8000 : t) : "(none)");
    free(t);
    return buf;
}

int th_run_wait(th_run *r, int timeout_ms)
{
    cr_assert_gt(r->pid, 0, "%s: nothing to wait for", r->what);
    int st = th_wait(r->pid, timeout_ms);
    if (st == -1) {
        th_run_reap(r);
        cr_assert_fail("%s did not end within %d ms; stderr:\n%s", r->what, timeout_ms,
                       th_run_stderr(r));
    }
    r->pid = 0;
    return st;
}

void th_run_reap(th_run *r)
{
    /* WNOHANG first: reaps one that has ended, and leaves alone a pid that
     * is no longer our child (waited for elsewhere). */
    if (r->pid > 0 && waitpid(r->pid, NULL, WNOHANG) == 0) {
        kill(r->pid, SIGCONT); /* a test may have stopped it */
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = 0;
}

int th_exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*--- The Dispatcharr client on a loop ---------------------------------------*/

#include "conf.h"
#include "dispatcharr.h"
#include "log.h"

struct sfl_dispatcharr *th_dispatcharr_client(struct event_base *base,
                                              const sfl_test_dispatcharr *d, const char *password)
{
    sfl_log_set_level(SFL_LOG_WARN); /* debug is for the children */
    sfl_conf *c = sfl_conf_new();
    char url[64], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", d->port);
    c->dispatcharr_url = strdup(url);
    c->dispatcharr_username = strdup("admin");
    c->dispatcharr_password = strdup(password);
    sfl_dispatcharr *dc = sfl_dispatcharr_new(base, c, err, sizeof(err));
    sfl_conf_free(c);
    cr_assert_not_null(dc, "%s", err);
    return dc;
}

void th_fetch_cb(const sfl_account_conf *accs, size_t n, const char *err, void *arg)
{
    th_fetch *r = arg;
    r->calls++;
    r->n = n;
    r->max7 = -1;
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
    for (size_t i = 0; i < n; i++)
        if (accs[i].id == 7)
            r->max7 = accs[i].max_streams;
}

int th_fetch_done(void *arg)
{
    return ((th_fetch *)arg)->calls > 0;
}

void th_fetch_once(struct event_base *base, sfl_dispatcharr *dc, th_fetch *r)
{
    memset(r, 0, sizeof(*r));
    cr_assert_eq(sfl_dispatcharr_fetch(dc, th_fetch_cb, r), 0, "%s", sfl_dispatcharr_errstr(dc));
    cr_assert_eq(r->calls, 0, "the callback ran inside sfl_dispatcharr_fetch");
    cr_assert(th_loop_until(base, th_fetch_done, r, 30000), "no answer");
    cr_assert_eq(r->calls, 1);
}

pid_t th_node_start(const char *config, int port, const char *err_path, const sfl_test_redis *r,
                    const char *node_id)
{
    const char *argv[] = {SFL_BIN, "node", "-c", config, NULL};
    pid_t pid = th_spawn((char *const *)argv, NULL, err_path);
    int64_t until = th_now_ms() + 20000;
    while (th_now_ms() < until && th_alive(pid)) {
        th_http_resp h;
        if (th_http(port, NULL, "GET", "/healthz", NULL, &h) == 0) {
            int ok = h.status == 200;
            th_http_free(&h);
            if (ok && (!node_id || !r || th_redis_int(r, "EXISTS sfl:node:%s", node_id) == 1))
                return pid;
        }
        usleep(20000);
    }
    char *log = th_read_file(err_path);
    int lost_port = log && strstr(log, "cannot listen");
    if (!lost_port)
        cr_assert_fail("node %s (%s) did not become healthy:\n%s", node_id ? node_id : "", config,
                       log ? log : "");
    free(log);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;
}
