/* test_http_conns.c - the HTTP side of `sflimit node` under connection
 * pressure: thousands of idle and half-sent connections against a node with
 * a low descriptor limit, the connection limit (idle connections give way,
 * busy ones do not), the idle timeout and the request deadline, and the
 * descriptor limit the node raises at start.
 *
 * The node runs as a child under `prlimit --nofile=SOFT:HARD` (util-linux),
 * which sets the limit and execs sflimit, so the pid is the node's. Every
 * request of these tests is bounded in time (non-blocking connect, poll):
 * a node that stops answering fails the test instead of hanging it. */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "conns-test-token"

static sfl_test_redis redis;
static char dir[128];
static pid_t node_pid;
static int node_port;
static char node_err[256];
static int spawns;
static const char *conf_http; /* more members of "http", ", \"k\": v" */
static const char *nofile;    /* "SOFT:HARD": the node runs under prlimit --nofile= */

static void setup(void)
{
    node_pid = 0;
    node_port = 0;
    conf_http = NULL;
    nofile = NULL;
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    if (node_pid > 0 && waitpid(node_pid, NULL, WNOHANG) == 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    node_pid = 0;
    th_redis_stop(&redis);
}

TestSuite(http_conns, .init = setup, .fini = teardown, .timeout = 240);

static void summary(const char *test, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void summary(const char *test, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "http_conns: %s: %s\n", test, line);
    fflush(stderr);
}

/*--- Bounded requests ------------------------------------------------------*/

typedef struct answer {
    int status; /* 0: no HTTP answer */
    int64_t ms; /* from connect to EOF */
    char text[16384];
    const char *body;
    cJSON *json;
} answer;

static void answer_free(answer *a)
{
    cJSON_Delete(a->json);
    a->json = NULL;
}

/* A non-blocking loopback connection to the node (connect in progress). */
static int conn_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)node_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on a new connection; connect, send and read to EOF all within
 * timeout_ms. 0 with a->status, or -1 (no answer in time, refused, reset). */
static int ask(const char *method, const char *path, const char *token, const char *body,
               int timeout_ms, answer *a)
{
    memset(a, 0, sizeof(*a));
    int64_t t0 = th_now_ms(), until = t0 + timeout_ms;
    char req[4096];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
                     method, path);
    if (token)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (body)
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n%s", body ? body : "");
    cr_assert_lt(n, (int)sizeof(req));
    int fd = conn_open();
    if (fd < 0)
        return -1;
    size_t sent = 0, got = 0;
    int rc = -1;
    for (;;) {
        int left = (int)(until - th_now_ms());
        if (left <= 0)
            break;
        struct pollfd p = {fd, sent < (size_t)n ? POLLOUT : POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            continue;
        if (sent < (size_t)n) {
            ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (w < 0)
                break;
            sent += (size_t)w;
            continue;
        }
        ssize_t r = recv(fd, a->text + got, sizeof(a->text) - 1 - got, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0)
            break;
        got += (size_t)r;
        if (r == 0 || got >= sizeof(a->text) - 1) {
            rc = 0;
            break;
        }
    }
    close(fd);
    a->ms = th_now_ms() - t0;
    a->text[got] = '\0';
    if (rc < 0 || sscanf(a->text, "HTTP/1.%*d %d", &a->status) != 1) {
        a->status = 0;
        return -1;
    }
    char *sep = strstr(a->text, "\r\n\r\n");
    a->body = sep ? sep + 4 : a->text + got;
    a->json = cJSON_Parse(a->body);
    return 0;
}

/* What the peer did to an open connection within timeout_ms: 1 closed (EOF
 * or reset), 0 still open; the bytes it sent go to buf (may be NULL). */
static int closed_within(int fd, int timeout_ms, char *buf, size_t len)
{
    int64_t until = th_now_ms() + timeout_ms;
    size_t got = 0;
    for (;;) {
        int left = (int)(until - th_now_ms());
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            continue;
        char tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            return 1;
        if (buf && got + 1 < len) {
            size_t k = (size_t)r < len - 1 - got ? (size_t)r : len - 1 - got;
            memcpy(buf + got, tmp, k);
            got += k;
            buf[got] = '\0';
        }
    }
}

/* Blocks until a non-blocking connect completes (or timeout_ms): 0 connected. */
static int connected_within(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    return err == 0 ? 0 : -1;
}

/*--- The node --------------------------------------------------------------*/

static void write_config(const char *listen, char *path, size_t len)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"c1\",\n"
             " \"redis\": {\"url\": \"%s\"},\n"
             " \"http\": {\"listen\": \"%s\", \"token\": \"%s\"%s},\n"
             " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500},\n"
             " \"concurrent_streams\": {\"stagger_delay\": 0},\n"
             " \"node\": {\"shutdown_grace\": 2},\n"
             " \"check\": {\"command\": [\"true\"], \"parser\": \"none\", \"timeout\": 10}}\n",
             redis.url, listen, TOKEN, conf_http ? conf_http : "");
    th_write_file(dir, "sflimit.json", text, path, len);
}

static char *node_log(void)
{
    char *text = th_read_file(node_err);
    return text ? text : strdup("");
}

/* Starts the node (under prlimit when nofile is set) on a free port and
 * waits for GET /healthz 200 and its registry key. */
static void node_start(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char listen[64], config[256], limit[64];
        node_port = th_free_port();
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", node_port);
        write_config(listen, config, sizeof(config));
        snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, spawns++);
        snprintf(limit, sizeof(limit), "--nofile=%s", nofile ? nofile : "");
        const char *plain[] = {SFL_BIN, "node", "-c", config, NULL};
        const char *limited[] = {"prlimit", limit, SFL_BIN, "node", "-c", config, NULL};
        node_pid = th_spawn((char *const *)(nofile ? limited : plain), NULL, node_err);
        int64_t until = th_now_ms() + 20000;
        while (th_now_ms() < until && th_alive(node_pid)) {
            answer a;
            if (ask("GET", "/healthz", NULL, NULL, 2000, &a) == 0) {
                int ok = a.status == 200;
                answer_free(&a);
                if (ok && th_redis_int(&redis, "EXISTS sfl:node:c1") == 1)
                    return;
            }
            usleep(20000);
        }
        char *log = node_log();
        int lost_port = strstr(log, "cannot listen") != NULL;
        if (!lost_port)
            cr_assert_fail("the node did not become healthy; its stderr:\n%s", log);
        free(log);
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
        node_pid = 0;
    }
    cr_assert_fail("the node never got a port");
}

/* Open descriptors of a process (/proc/PID/fd). */
static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s: %s", path, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A /proc file (its size says 0: read to EOF), NUL-terminated in buf. */
static void read_proc(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    size_t got = 0;
    ssize_t r;
    while (got + 1 < len && (r = read(fd, buf + got, len - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    buf[got] = '\0';
}

/* CPU time (user + system) of a process so far, in seconds. */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    read_proc(path, buf, sizeof(buf));
    char *p = strrchr(buf, ')');
    cr_assert_not_null(p);
    unsigned long long ut = 0, st = 0;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) */
    int n = sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    cr_assert_eq(n, 2, "cannot read %s", path);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The soft and hard "Max open files" of a process. */
static void nofile_of(pid_t pid, long long *soft, long long *hard)
{
    char path[64], text[4096];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    read_proc(path, text, sizeof(text));
    const char *line = strstr(text, "Max open files");
    cr_assert_not_null(line, "%s", text);
    cr_assert_eq(sscanf(line + strlen("Max open files"), "%lld %lld", soft, hard), 2, "%s", line);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/*--- A flood of connections ------------------------------------------------*/

/* Half-sent requests: cut inside the headers, and inside a body. */
static const char *const partial[] = {
    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    "POST /v1/leases HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{\"acc",
};

/* Opens n connections, 100 at a time, without waiting for the node to take
 * them; every other one sends the start of a request and stops there. Each
 * hundred waits at most 500 ms for its connects. Returns how many were made
 * (fds[0..]); *sent how many sent their part. */
static int flood(int *fds, int n, int *sent)
{
    int made = 0;
    *sent = 0;
    for (int start = 0; start < n; start += 100) {
        int end = start + 100 < n ? start + 100 : n;
        for (int i = start; i < end; i++) {
            fds[i] = conn_open();
            if (fds[i] >= 0)
                made++;
        }
        int64_t until = th_now_ms() + 500;
        for (int i = start; i < end; i++) {
            if (fds[i] < 0 || i % 2 == 0)
                continue;
            int left = (int)(until - th_now_ms());
            if (connected_within(fds[i], left > 0 ? left : 0) < 0)
                continue;
            const char *part = partial[(i / 2) % 2];
            if (send(fds[i], part, strlen(part), MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
                (*sent)++;
        }
    }
    return made;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* 2000 connections (idle, or stopped inside a request) against a node whose
 * descriptor limit is 256: /healthz keeps answering, a check still runs to
 * OK, the log stays small, the node does not spin, and once the connections
 * close its descriptors come back to where they were. */
Test(http_conns, flood_of_idle_and_half_sent_connections)
{
    nofile = "256:256";
    node_start();
    long long soft, hard;
    nofile_of(node_pid, &soft, &hard);
    cr_assert_eq(soft, 256, "the node runs with a soft limit of %lld, not 256", soft);
    int base_fds = fd_count(node_pid);

    /* This process holds every connection: it needs the descriptors. */
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    int want = rl.rlim_cur >= 2300 ? 2000 : (int)rl.rlim_cur - 300;
    cr_assert_geq(want, 1000, "this process may open only %llu descriptors",
                  (unsigned long long)rl.rlim_cur);
    int *fds = calloc((size_t)want, sizeof(int));
    cr_assert_not_null(fds);

    double cpu0 = cpu_seconds(node_pid);
    int64_t t0 = th_now_ms();
    int sent;
    int made = flood(fds, want, &sent);
    int64_t flood_ms = th_now_ms() - t0;
    cr_assert_geq(made, want * 9 / 10, "only %d of %d connections made", made, want);

    /* While they are held: /healthz every 100 ms, each answered within 2 s,
     * and a check submitted through the API runs to the end. */
    double cpu1 = cpu_seconds(node_pid);
    int64_t t1 = th_now_ms();
    answer a;
    int rc = ask("POST", "/v1/checks", TOKEN,
                 "[{\"id\": 7, \"name\": \"under load\", \"url\": \"http://127.0.0.1:9/7.ts\"}]",
                 2000, &a);
    cr_assert(rc == 0 && a.status == 202, "POST /v1/checks under load: %s (%lld ms)",
              rc == 0 ? a.text : "no answer", (long long)a.ms);
    char path[200];
    snprintf(path, sizeof(path), "/v1/checks/%s",
             cJSON_GetObjectItem(a.json, "batch")->valuestring);
    answer_free(&a);
    long long lat[400];
    int probes = 0, max_fds = 0, finished = 0;
    char final[4096] = "";
    while (probes < 400 && (th_now_ms() - t1 < 4000 || !finished) && th_now_ms() - t1 < 30000) {
        rc = ask("GET", "/healthz", NULL, NULL, 2000, &a);
        cr_assert(rc == 0 && a.status == 200,
                  "/healthz probe %d, %lld ms into the flood: %s after %lld ms", probes,
                  (long long)(th_now_ms() - t0), rc == 0 ? a.text : "no answer", (long long)a.ms);
        lat[probes++] = a.ms;
        answer_free(&a);
        int nf = fd_count(node_pid);
        max_fds = nf > max_fds ? nf : max_fds;
        if (!finished && probes % 5 == 0) {
            rc = ask("GET", path, TOKEN, NULL, 2000, &a);
            cr_assert(rc == 0 && a.status == 200, "GET %s under load: %s", path,
                      rc == 0 ? a.text : "no answer");
            finished = cJSON_IsTrue(cJSON_GetObjectItem(a.json, "finished"));
            if (finished)
                snprintf(final, sizeof(final), "%s", a.body);
            answer_free(&a);
        }
        usleep(100000);
    }
    int64_t hold_ms = th_now_ms() - t1;
    double hold_cpu = cpu_seconds(node_pid) - cpu1;
    cr_assert(finished, "the check did not finish within 30 s under load");
    cr_assert(strstr(final, "\"status\":\"OK\""), "the check under load: %s", final);
    cr_assert_lt(hold_cpu, 0.5 * (double)hold_ms / 1000.0,
                 "the node used %.2f s of CPU in %lld ms while the connections were held", hold_cpu,
                 (long long)hold_ms);

    /* They close: the node's descriptors come back. */
    for (int i = 0; i < want; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    int64_t t2 = th_now_ms();
    int now_fds = fd_count(node_pid);
    while (now_fds > base_fds + 3 && th_now_ms() - t2 < 10000) {
        usleep(50000);
        now_fds = fd_count(node_pid);
    }
    cr_assert_leq(now_fds, base_fds + 3,
                  "the node holds %d descriptors 10 s after the connections closed (%d before)",
                  now_fds, base_fds);
    cr_assert(th_alive(node_pid), "the node died");
    long long log_bytes = file_size(node_err);
    cr_assert_lt(log_bytes, 1024 * 1024, "the node wrote %lld bytes of log", log_bytes);
    char *log = node_log();
    cr_assert_null(strstr(log, "Error from accept() call"), "libevent's accept loop in the log");
    free(log);

    qsort(lat, (size_t)probes, sizeof(lat[0]), cmp_ll);
    summary("flood_of_idle_and_half_sent_connections",
            "nofile 256, %d connections made in %lld ms (%d half-sent); /healthz %d probes, "
            "median %lld ms, p90 %lld ms, max %lld ms; check OK; node descriptors %d before, "
            "max %d held, %d after close (%lld ms); node CPU %.2f s in the flood (%lld ms), "
            "%.2f s in %lld ms held; log %lld bytes",
            made, (long long)flood_ms, sent, probes, lat[probes / 2], lat[probes * 9 / 10],
            lat[probes - 1], base_fds, max_fds, now_fds, (long long)(th_now_ms() - t2), cpu1 - cpu0,
            (long long)flood_ms, hold_cpu, (long long)hold_ms, log_bytes);
}

/*--- The limit, the idle timeout and the request deadline ------------------*/

/* Account 4 (max_streams 1) full for the next 3 s (the client TTL). */
static void take_the_slot(void)
{
    answer a;
    int64_t until = th_now_ms() + 5000;
    do {
        cr_assert_eq(
            ask("POST", "/v1/leases", TOKEN, "{\"account\": 4, \"wait_ms\": 4000}", 6000, &a), 0,
            "no answer to POST /v1/leases");
        answer_free(&a);
    } while (a.status != 200 && th_now_ms() < until);
    cr_assert_eq(a.status, 200, "%s", a.text);
}

/* With http.max_connections 4: a new connection closes the oldest idle one
 * to make room; when all four have a request in progress, a new one is
 * closed at once. Idle keep-alive connections close after idle_timeout, a
 * request still arriving after request_timeout, and a waiting request
 * outlives both. */
Test(http_conns, limit_deadline_and_idle_timeout)
{
    th_account(&redis, 4, 1);
    conf_http = ", \"max_connections\": 4, \"idle_timeout\": 1, \"request_timeout\": 2";
    node_start();
    answer a;

    /* A request that trickles in, a header line every 300 ms: cut at 2 s. */
    int fd = conn_open();
    cr_assert_eq(connected_within(fd, 2000), 0);
    int64_t t0 = th_now_ms();
    const char *head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    cr_assert_gt(send(fd, head, strlen(head), MSG_NOSIGNAL), 0);
    int cut = 0;
    char got[4096] = "";
    while (!cut && th_now_ms() - t0 < 6000) {
        cut = closed_within(fd, 300, got, sizeof(got));
        if (!cut)
            send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL);
    }
    int64_t slow_ms = th_now_ms() - t0;
    close(fd);
    cr_assert(cut, "a request trickling in for 6 s was never cut");
    cr_assert(slow_ms >= 1800 && slow_ms <= 3500, "the trickling request was cut after %lld ms",
              (long long)slow_ms);
    cr_assert_null(strstr(got, "200 OK"), "the trickling request was answered: %s", got);

    /* A keep-alive connection after its answer: closed after the 1 s idle timeout. */
    fd = conn_open();
    cr_assert_eq(connected_within(fd, 2000), 0);
    const char *get = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    cr_assert_gt(send(fd, get, strlen(get), MSG_NOSIGNAL), 0);
    got[0] = '\0';
    int64_t t1 = th_now_ms();
    int idle_closed = closed_within(fd, 5000, got, sizeof(got));
    int64_t idle_ms = th_now_ms() - t1;
    close(fd);
    cr_assert(strstr(got, "HTTP/1.1 200"), "keep-alive request: %s", got);
    cr_assert(idle_closed, "an idle keep-alive connection stayed open 5 s");
    cr_assert(idle_ms >= 800 && idle_ms <= 3000, "the idle connection closed after %lld ms",
              (long long)idle_ms);

    /* A waiting request outlives the idle timeout: 408 after its 2 s. (The
     * lease that fills the account is the node's for its client TTL, 3 s.) */
    take_the_slot();
    cr_assert_eq(ask("POST", "/v1/leases", TOKEN, "{\"account\": 4, \"wait_ms\": 2000}", 8000, &a),
                 0, "a lease wait longer than the idle timeout got no answer");
    cr_assert_eq(a.status, 408, "%s", a.text);
    cr_assert_geq(a.ms, 1900, "408 after %lld ms", (long long)a.ms);
    answer_free(&a);

    /* Four requests in progress (lease waits): a fifth connection is closed at once. */
    int waits[4];
    const char *body = "{\"account\": 4, \"wait_ms\": 2000}";
    char wait[512];
    snprintf(wait, sizeof(wait),
             "POST /v1/leases HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " TOKEN
             "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    take_the_slot();
    for (int i = 0; i < 4; i++) {
        waits[i] = conn_open();
        cr_assert_eq(connected_within(waits[i], 2000), 0);
        cr_assert_gt(send(waits[i], wait, strlen(wait), MSG_NOSIGNAL), 0);
    }
    usleep(300000);
    int rc = ask("GET", "/healthz", NULL, NULL, 2000, &a);
    cr_assert(rc < 0 || a.status == 503, "a fifth connection with four busy: %s",
              rc == 0 ? a.text : "");
    cr_assert_lt(a.ms, 1000, "the fifth connection was not closed at once (%lld ms)",
                 (long long)a.ms);
    answer_free(&a);
    for (int i = 0; i < 4; i++) {
        got[0] = '\0';
        cr_assert(closed_within(waits[i], 6000, got, sizeof(got)), "wait %d never answered", i);
        cr_assert(strstr(got, " 408 "), "wait %d: %s", i, got);
        close(waits[i]);
    }
    rc = ask("GET", "/healthz", NULL, NULL, 2000, &a);
    cr_assert(rc == 0 && a.status == 200, "/healthz once the waits ended: %s", a.text);
    answer_free(&a);

    /* Four idle connections: a new one closes the oldest of them, and is answered. */
    int idle[4];
    for (int i = 0; i < 4; i++) {
        idle[i] = conn_open();
        cr_assert_eq(connected_within(idle[i], 2000), 0);
        usleep(50000); /* their order is their age */
    }
    usleep(100000);
    rc = ask("GET", "/healthz", NULL, NULL, 2000, &a);
    cr_assert(rc == 0 && a.status == 200, "/healthz with four idle connections: %s", a.text);
    answer_free(&a);
    cr_assert(closed_within(idle[0], 200, NULL, 0), "the oldest idle connection is still open");
    for (int i = 1; i < 4; i++)
        cr_assert(!closed_within(idle[i], 50, NULL, 0), "idle connection %d was closed too", i);
    for (int i = 0; i < 4; i++)
        close(idle[i]);
    char *log = node_log();
    cr_assert(strstr(log, "limit 4 (http.max_connections): 0 idle one(s) closed to make room, 1 "
                          "new one(s) closed at once"),
              "no word of the refused connection in the log:\n%s", log);
    cr_assert(strstr(log, "1 connection(s) closed for not sending a whole request"),
              "no word of the request deadline in the log:\n%s", log);
    free(log);
    summary("limit_deadline_and_idle_timeout",
            "max_connections 4: trickling request cut after %lld ms (request_timeout 2 s), "
            "idle keep-alive closed after %lld ms (idle_timeout 1 s), 2 s wait answered 408, "
            "fifth connection with four busy refused, oldest of four idle closed for a new one",
            (long long)slow_ms, (long long)idle_ms);
}

/* A descriptor limit (18) below what the node sets aside for itself:
 * accept() fails with EMFILE before the connection limit (8) is reached.
 * libevent 2.1 alone retries at once, forever, logging each time; the node
 * says it once, lowers its limit to what the descriptors allow, and keeps
 * answering by closing the oldest idle connection for each new one. */
Test(http_conns, out_of_descriptors_at_accept)
{
    nofile = "18:18";
    node_start();
    int base_fds = fd_count(node_pid);
    int fds[200];
    double cpu0 = cpu_seconds(node_pid);
    int64_t t0 = th_now_ms();
    for (int i = 0; i < 200; i++)
        fds[i] = conn_open();
    usleep(500000);
    long long worst = 0;
    for (int i = 0; i < 10; i++) {
        answer a;
        int rc = ask("GET", "/healthz", NULL, NULL, 2000, &a);
        cr_assert(rc == 0 && a.status == 200, "/healthz probe %d out of descriptors: %s (%lld ms)",
                  i, rc == 0 ? a.text : "no answer", (long long)a.ms);
        worst = a.ms > worst ? a.ms : worst;
        answer_free(&a);
        usleep(100000);
    }
    int64_t wall = th_now_ms() - t0;
    double cpu = cpu_seconds(node_pid) - cpu0;
    for (int i = 0; i < 200; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    cr_assert_lt(cpu, 0.5 * (double)wall / 1000.0, "the node used %.2f s of CPU in %lld ms", cpu,
                 (long long)wall);
    long long log_bytes = file_size(node_err);
    char *log = node_log();
    cr_assert(strstr(log, "accept failed") && strstr(log, "Too many open files"),
              "no word of the accept error:\n%s", log);
    cr_assert_null(strstr(log, "Error from accept() call"), "libevent's accept loop in the log");
    cr_assert_lt(log_bytes, 64 * 1024, "%lld bytes of log", log_bytes);
    free(log);
    summary("out_of_descriptors_at_accept",
            "nofile 18 (%d in use at start), 200 connections: /healthz 10 probes, worst %lld ms; "
            "node CPU %.2f s in %lld ms; log %lld bytes",
            base_fds, worst, cpu, (long long)wall, log_bytes);
}

/*--- The descriptor limit ---------------------------------------------------*/

/* The node raises its soft limit to the hard one; a max_connections the
 * limit cannot hold is lowered, and the log says so. */
Test(http_conns, node_raises_its_descriptor_limit)
{
    nofile = "200:1024";
    node_start();
    long long soft, hard;
    nofile_of(node_pid, &soft, &hard);
    cr_assert_eq(hard, 1024);
    cr_assert_eq(soft, 1024, "the soft limit stayed at %lld", soft);
    kill(node_pid, SIGKILL);
    waitpid(node_pid, NULL, 0);

    nofile = "256:256";
    conf_http = ", \"max_connections\": 5000";
    node_start();
    char *log = node_log();
    cr_assert(strstr(log, "http.max_connections"), "no word of the lowered limit:\n%s", log);
    free(log);
}
