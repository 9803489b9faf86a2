/* test_cluster.c - several `sflimit node`s on several "hosts", one Redis, one
 * fake provider, and the provider's own counters as the ground truth.
 *
 * As root (with `ip` working) every party gets its own network namespace:
 *
 *     redis ns ──┐                               ┌── provider ns
 *                ├─ bridge "R" (10.213.a.0/24)   │
 *     node1..3 ──┤                               ├─ bridge "P" (10.213.a+1.0/24)
 *     root ns ───┘                               └── node1..3, root ns
 *
 * so a node's link to Redis can be cut (its Redis-side veth set down) while it
 * still reaches the provider: the partition the lease safety margin exists
 * for. Without root (or when `ip netns add` fails) the same processes run on
 * loopback and the link-cut test is skipped.
 *
 * Every name carries the test process's pid (sflc<pid>...), and .fini removes
 * every namespace, veth and bridge it made, also after a failed assertion.
 * Everything started here dies with the test process (PR_SET_PDEATHSIG);
 * namespaces of a run that was killed outright (timeout, SIGKILL) are swept
 * at the next start: their owner pid no longer runs this binary.
 *
 * Traffic goes only to loopback or to addresses inside 10.213.0.0/16 that
 * this file assigns to its own namespaces. */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NNODES 3
#define NODE_HTTP_PORT 8470 /* inside each node's namespace */
#define REDIS_NS_PORT 6379  /* inside the Redis namespace */
#define MAX_ACCOUNTS 8
#define MAX_STREAMS 64

/*--- Data types ------------------------------------------------------------*/

typedef struct cl_account {
    long long id;
    long long limit;          /* in Redis and in the nodes' configs */
    long long provider_limit; /* what the provider enforces; normally the same */
} cl_account;

typedef struct cl_opts {
    const cl_account *acc;
    size_t nacc;
    int global_limit;
    int lookahead; /* 0 = the node's default (global_limit) */
    int ttl_ms, renew_ms, safety_ms;
    int allow_netns;
    const char *check_cmd[NNODES]; /* JSON argv per node; NULL = curl */
    const char *accounts_json;     /* the nodes' "accounts"; NULL = from acc */
} cl_opts;

typedef struct cl_node {
    char id[16];
    char ns[32];
    char veth_redis[32]; /* root-side end on the Redis bridge */
    char conf[256];
    char log[256];
    int http_port;
    pid_t pid;
} cl_node;

typedef struct cluster {
    int up;
    int netns;    /* 1: namespaces, 0: loopback */
    char tag[16]; /* sflc<pid>: names stay within IFNAMSIZ */
    int net;      /* Redis 10.213.net.0/24, provider 10.213.net+1.0/24 */
    char dir[128];
    char br_redis[32], br_prov[32];
    char ns_redis[32], ns_prov[32];
    int made_br_redis, made_br_prov;
    int made_ns[2 + NNODES];
    char redis_host[32];
    int redis_port;
    pid_t redis_pid;
    sfl_test_provider prov; /* started here (in its namespace), read with th_provider_stat* */
    cl_node nodes[NNODES];
    char submit_conf[256];
    pid_t submit_pid;
} cluster;

static cluster cl;

/*--- Small helpers ---------------------------------------------------------*/

/* Runs a shell command line (ours, with our names only), output to the run's
 * sh.log. Returns its exit status. */
__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
    char cmd[1024], full[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (cl.dir[0])
        snprintf(full, sizeof(full), "{ %s ; } >>%s/sh.log 2>&1", cmd, cl.dir);
    else
        snprintf(full, sizeof(full), "{ %s ; } >/dev/null 2>&1", cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* First line of a command's stdout (malloc'd, the caller frees), or NULL. */
static char *sh_out(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - 1 - n, p)) > 0)
        n += r;
    pclose(p);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* th_spawn, plus PR_SET_PDEATHSIG: if this test process is killed outright
 * (timeout), what it started dies with it instead of running on (the
 * namespaces themselves are swept by the next run). */
static pid_t spawn(const char *const *argv, const char *out_path, const char *err_path)
{
    return th_spawn_tied((char *const *)argv, out_path, err_path);
}

/* Spawns argv, inside namespace ns when ns is non-NULL (`ip netns exec` execs
 * the program, so the pid returned is the program's own). */
static pid_t spawn_in(const char *ns, const char *const *argv, const char *out, const char *err)
{
    const char *full[80];
    int k = 0;
    if (ns) {
        full[k++] = "ip";
        full[k++] = "netns";
        full[k++] = "exec";
        full[k++] = ns;
    }
    for (int i = 0; argv[i] && k < 79; i++)
        full[k++] = argv[i];
    full[k] = NULL;
    return spawn(full, out, err);
}

static void stop_pid(pid_t *pid, int sig)
{
    if (*pid > 0) {
        kill(*pid, sig);
        if (th_wait(*pid, 5000) == -1) {
            kill(*pid, SIGKILL);
            waitpid(*pid, NULL, 0);
        }
        *pid = 0;
    }
}

/* A process's name from /proc/PID/comm (th_read_file sizes files with ftell,
 * which is 0 for /proc). Returns 0 when there is no such process. */
static int proc_comm(int pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 1;
}

/* One blocking command to the cluster's Redis; NULL when it cannot be reached. */
static redisReply *rcmd(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(cl.redis_host, cl.redis_port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

/* Integer answer, -1 when Redis cannot be reached. */
static long long rint_(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(cl.redis_host, cl.redis_port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    long long v = -1;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep && rep->type == REDIS_REPLY_STRING)
        v = strtoll(rep->str, NULL, 10);
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* GET path from host:port (HTTP/1.0); the body, malloc'd, or NULL. */
static char *http_get(const char *host, int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && len < cap - 1 && (r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += r;
    close(fd);
    if (!buf)
        return NULL;
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    char *out = body ? strdup(body + 4) : NULL;
    free(buf);
    return out;
}

/* A number at a dotted path of a JSON document; NAN when missing. */
static double jnum(const cJSON *doc, const char *path)
{
    char copy[200];
    snprintf(copy, sizeof(copy), "%s", path);
    const cJSON *v = doc;
    for (char *save = NULL, *part = strtok_r(copy, ".", &save); part && v;
         part = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, part);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/*--- The provider and the nodes as the test sees them ----------------------*/

/* Asserts the ground truth: no refused connection, no user above its limit. */
static void assert_provider_clean(const cl_opts *o, const char *when)
{
    cJSON *st = th_provider_stats(&cl.prov);
    double v = jnum(st, "violations");
    char *text = cJSON_PrintUnformatted(st);
    cr_log_info("provider /stats %s: %s", when, text);
    cr_assert_eq(v, 0, "%s: the provider saw %g violation(s): %s", when, v, text);
    for (size_t i = 0; i < o->nacc; i++) {
        char path[64];
        snprintf(path, sizeof(path), "users.u%lld.max_seen", o->acc[i].id);
        double seen = jnum(st, path);
        cr_assert(!isnan(seen), "%s: no %s in %s", when, path, text);
        if (o->acc[i].provider_limit > 0)
            cr_assert_leq(seen, (double)o->acc[i].provider_limit,
                          "%s: user u%lld had %g open, limit %lld", when, o->acc[i].id, seen,
                          o->acc[i].provider_limit);
    }
    free(text);
    cJSON_Delete(st);
}

/* A node's /healthz (served on 127.0.0.1 inside its namespace). */
static cJSON *node_health(const cl_node *nd)
{
    char *body;
    if (cl.netns) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd),
                 "ip netns exec %s curl -s --max-time 2 http://127.0.0.1:%d/healthz 2>/dev/null",
                 nd->ns, nd->http_port);
        body = sh_out(cmd);
    } else {
        body = http_get("127.0.0.1", nd->http_port, "/healthz");
    }
    cJSON *doc = body ? cJSON_Parse(body) : NULL;
    free(body);
    return doc;
}

static int node_running(const cl_node *nd)
{
    cJSON *h = node_health(nd);
    double r = h ? jnum(h, "running") : NAN;
    cJSON_Delete(h);
    return isnan(r) ? -1 : (int)r;
}

/* arg: a cl_node. 1 while it runs at least one check. */
static int node_busy(void *arg)
{
    return node_running(arg) >= 1;
}

static int log_has(const char *path, const char *needle)
{
    char *text = th_read_file(path);
    int yes = text && strstr(text, needle);
    free(text);
    return yes;
}

/*--- Namespaces ------------------------------------------------------------*/

/* 1 while pid runs this test binary (a live run owns its names). */
static int owner_alive(int pid)
{
    char comm[32];
    return pid == (int)getpid() ||
           (proc_comm(pid, comm, sizeof(comm)) && strcmp(comm, "cluster_cluster") == 0);
}

/* Removes what killed runs left behind: namespaces (and the processes we had
 * started in them), bridges and veths named sflc<pid>... of a dead pid. */
static void sweep_stale(void)
{
    char *list = sh_out("ip netns list 2>/dev/null");
    for (char *save = NULL, *line = list ? strtok_r(list, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        int pid;
        char name[64];
        if (sscanf(line, "%63s", name) != 1 || sscanf(name, "sflc%d-", &pid) != 1 ||
            owner_alive(pid))
            continue;
        fprintf(stderr, "cluster: removing stale namespace %s\n", name);
        sh("ip netns pids %s | xargs -r kill -9", name);
        sh("ip netns del %s", name);
    }
    free(list);
    char *links = sh_out("ip -o link show 2>/dev/null");
    for (char *save = NULL, *line = links ? strtok_r(links, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        int pid;
        char name[64];
        if (sscanf(line, "%*d: %63[^:@ ]", name) != 1 || sscanf(name, "sflc%d", &pid) != 1 ||
            owner_alive(pid))
            continue;
        fprintf(stderr, "cluster: removing stale link %s\n", name);
        sh("ip link del %s", name);
    }
    free(links);
}

/* A free pair of /24s in 10.213.0.0/16 (not on any local interface). */
static int pick_net(void)
{
    char *addrs = sh_out("ip -o -4 addr show 2>/dev/null");
    int base = 20 + 2 * (getpid() % 100);
    for (int k = 0; k < 100; k++) {
        int a = 20 + (base - 20 + 2 * k) % 200;
        char p1[32], p2[32];
        snprintf(p1, sizeof(p1), " 10.213.%d.", a);
        snprintf(p2, sizeof(p2), " 10.213.%d.", a + 1);
        if (!addrs || (!strstr(addrs, p1) && !strstr(addrs, p2))) {
            free(addrs);
            return a;
        }
    }
    free(addrs);
    cr_assert_fail("no free subnet pair in 10.213.0.0/16");
    return 0;
}

static int ns_new(int slot, const char *name)
{
    if (sh("ip netns add %s", name) != 0)
        return -1;
    cl.made_ns[slot] = 1;
    return sh("ip -n %s link set lo up", name);
}

/* A veth pair: vroot on bridge br (root namespace), vroot+"i" in ns with ip/24. */
static int ns_attach(const char *ns, const char *br, const char *vroot, const char *ip)
{
    char vin[40];
    snprintf(vin, sizeof(vin), "%si", vroot);
    return sh("ip link add %s type veth peer name %s && ip link set %s netns %s && "
              "ip link set %s master %s && ip link set %s up && "
              "ip -n %s addr add %s/24 dev %s && ip -n %s link set %s up",
              vroot, vin, vin, ns, vroot, br, vroot, ns, ip, vin, ns, vin);
}

static int bridge_new(const char *br, const char *ip, int *made)
{
    if (sh("ip link add %s type bridge", br) != 0)
        return -1;
    *made = 1;
    return sh("ip link set %s up && ip addr add %s/24 dev %s", br, ip, br);
}

static int netns_up(void)
{
    int a = cl.net = pick_net();
    char ip[32];
    snprintf(cl.br_redis, sizeof(cl.br_redis), "%sR", cl.tag);
    snprintf(cl.br_prov, sizeof(cl.br_prov), "%sP", cl.tag);
    snprintf(cl.ns_redis, sizeof(cl.ns_redis), "%s-redis", cl.tag);
    snprintf(cl.ns_prov, sizeof(cl.ns_prov), "%s-prov", cl.tag);
    snprintf(ip, sizeof(ip), "10.213.%d.254", a);
    if (bridge_new(cl.br_redis, ip, &cl.made_br_redis) < 0)
        return -1;
    snprintf(ip, sizeof(ip), "10.213.%d.254", a + 1);
    if (bridge_new(cl.br_prov, ip, &cl.made_br_prov) < 0)
        return -1;
    char v[32];
    snprintf(cl.redis_host, sizeof(cl.redis_host), "10.213.%d.1", a);
    snprintf(v, sizeof(v), "%sr0", cl.tag);
    if (ns_new(0, cl.ns_redis) < 0 || ns_attach(cl.ns_redis, cl.br_redis, v, cl.redis_host) < 0)
        return -1;
    snprintf(cl.prov.host, sizeof(cl.prov.host), "10.213.%d.1", a + 1);
    snprintf(v, sizeof(v), "%sp0", cl.tag);
    if (ns_new(1, cl.ns_prov) < 0 || ns_attach(cl.ns_prov, cl.br_prov, v, cl.prov.host) < 0)
        return -1;
    for (int i = 0; i < NNODES; i++) {
        cl_node *nd = &cl.nodes[i];
        snprintf(nd->ns, sizeof(nd->ns), "%s-n%d", cl.tag, i + 1);
        snprintf(nd->veth_redis, sizeof(nd->veth_redis), "%sr%d", cl.tag, i + 1);
        if (ns_new(2 + i, nd->ns) < 0)
            return -1;
        snprintf(ip, sizeof(ip), "10.213.%d.%d", a, 11 + i);
        if (ns_attach(nd->ns, cl.br_redis, nd->veth_redis, ip) < 0)
            return -1;
        snprintf(ip, sizeof(ip), "10.213.%d.%d", a + 1, 11 + i);
        snprintf(v, sizeof(v), "%sp%d", cl.tag, i + 1);
        if (ns_attach(nd->ns, cl.br_prov, v, ip) < 0)
            return -1;
    }
    return 0;
}

static void netns_down(void)
{
    const char *names[2 + NNODES] = {cl.ns_redis, cl.ns_prov};
    for (int i = 0; i < NNODES; i++)
        names[2 + i] = cl.nodes[i].ns;
    for (int i = 0; i < 2 + NNODES; i++) {
        if (!cl.made_ns[i])
            continue;
        /* Only what this run started in its own namespace can be in there. */
        sh("ip netns pids %s | xargs -r kill -9", names[i]);
        sh("ip netns del %s", names[i]);
        cl.made_ns[i] = 0;
    }
    if (cl.made_br_redis)
        sh("ip link del %s", cl.br_redis);
    if (cl.made_br_prov)
        sh("ip link del %s", cl.br_prov);
    cl.made_br_redis = cl.made_br_prov = 0;
    /* Veths whose peer never reached a namespace. */
    char *links = sh_out("ip -o link show 2>/dev/null");
    for (char *save = NULL, *line = links ? strtok_r(links, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        if (sscanf(line, "%*d: %63[^:@ ]", name) == 1 && strncmp(name, cl.tag, strlen(cl.tag)) == 0)
            sh("ip link del %s", name);
    }
    free(links);
}

/*--- Bringing a cluster up and down ----------------------------------------*/

static int redis_pings(void)
{
    redisReply *r = rcmd("PING");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

static void start_redis(void)
{
    char port[16], log[200];
    cl.redis_port = cl.netns ? REDIS_NS_PORT : th_free_port();
    if (!cl.netns)
        snprintf(cl.redis_host, sizeof(cl.redis_host), "127.0.0.1");
    snprintf(port, sizeof(port), "%d", cl.redis_port);
    snprintf(log, sizeof(log), "%s/redis.log", cl.dir);
    const char *argv[] = {"redis-server",
                          "--port",
                          port,
                          "--bind",
                          cl.netns ? "0.0.0.0" : "127.0.0.1",
                          "--protected-mode",
                          "no",
                          "--save",
                          "",
                          "--appendonly",
                          "no",
                          "--dir",
                          cl.dir,
                          "--daemonize",
                          "no",
                          "--loglevel",
                          "warning",
                          NULL};
    cl.redis_pid = spawn_in(cl.netns ? cl.ns_redis : NULL, argv, log, log);
    int64_t until = th_now_ms() + 10000;
    while (th_now_ms() < until && th_alive(cl.redis_pid)) {
        if (redis_pings())
            return;
        usleep(20000);
    }
    cr_assert_fail("redis-server did not answer at %s:%d (log %s)", cl.redis_host, cl.redis_port,
                   log);
}

static void start_provider(const cl_opts *o)
{
    char portfile[200], log[200], users[MAX_ACCOUNTS][48];
    snprintf(portfile, sizeof(portfile), "%s/provider.port", cl.dir);
    snprintf(log, sizeof(log), "%s/provider.log", cl.dir);
    const char *argv[64] = {SFL_TOOLS_DIR "/sfl-fake-provider",
                            "--listen",
                            cl.netns ? "0.0.0.0:0" : "127.0.0.1:0",
                            "--port-file",
                            portfile,
                            "--hold-ms",
                            "1000"};
    int k = 7;
    for (size_t i = 0; i < o->nacc; i++) {
        snprintf(users[i], sizeof(users[i]), "u%lld:p%lld:%lld", o->acc[i].id, o->acc[i].id,
                 o->acc[i].provider_limit);
        argv[k++] = "--user";
        argv[k++] = users[i];
    }
    argv[k] = NULL;
    if (!cl.netns)
        snprintf(cl.prov.host, sizeof(cl.prov.host), "127.0.0.1");
    cl.prov.pid = spawn_in(cl.netns ? cl.ns_prov : NULL, argv, log, log);
    int64_t until = th_now_ms() + 10000;
    while (th_now_ms() < until) {
        char *text = th_read_file(portfile);
        cl.prov.port = text ? atoi(text) : 0;
        free(text);
        if (cl.prov.port > 0) {
            char *body = http_get(cl.prov.host, cl.prov.port, "/stats");
            free(body);
            if (body)
                return;
        }
        usleep(20000);
    }
    cr_assert_fail("the fake provider did not come up (log %s)", log);
}

static void write_node_conf(const cl_opts *o, int i, const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fprintf(f,
            "{\"node_id\": \"node%d\",\n"
            " \"redis\": {\"url\": \"redis://%s:%d/0\"},\n"
            " \"concurrent_streams\": {\"enabled\": true, \"global_limit\": %d, "
            "\"stagger_delay\": 0},\n"
            " \"lease\": {\"ttl_ms\": %d, \"renew_ms\": %d, \"safety_ms\": %d},\n",
            i + 1, cl.redis_host, cl.redis_port, o->global_limit, o->ttl_ms, o->renew_ms,
            o->safety_ms);
    fprintf(f, " \"node\": {\"claim_idle\": 4, \"shutdown_grace\": 1");
    if (o->lookahead > 0)
        fprintf(f, ", \"lookahead\": %d", o->lookahead);
    fprintf(f, "},\n \"accounts\": ");
    if (o->accounts_json)
        fputs(o->accounts_json, f);
    else {
        fputc('[', f);
        for (size_t a = 0; a < o->nacc; a++)
            fprintf(f, "%s{\"id\": %lld, \"name\": \"acc%lld\", \"max_streams\": %lld}",
                    a ? ", " : "", o->acc[a].id, o->acc[a].id, o->acc[a].limit);
        fputc(']', f);
    }
    fprintf(f,
            ",\n"
            " \"check\": {\"command\": %s, \"parser\": \"none\", \"timeout\": 60},\n"
            " \"stream_analysis\": {\"retries\": 0},\n"
            " \"http\": {\"listen\": \"127.0.0.1:%d\"}}\n",
            o->check_cmd[i] ? o->check_cmd[i]
                            : "[\"curl\", \"-sS\", \"-f\", \"--max-time\", \"30\", \"-o\", "
                              "\"/dev/null\", \"{url}\"]",
            cl.nodes[i].http_port);
    fclose(f);
}

static void start_node(const cl_opts *o, int i)
{
    cl_node *nd = &cl.nodes[i];
    const char *argv[] = {SFL_BIN, "node", "-c", nd->conf, NULL};
    (void)o;
    nd->pid = spawn_in(cl.netns ? nd->ns : NULL, argv, nd->log, nd->log);
}

static int nodes_registered(void *arg)
{
    (void)arg;
    for (int i = 0; i < NNODES; i++)
        if (rint_("EXISTS sfl:node:%s", cl.nodes[i].id) != 1)
            return 0;
    return 1;
}

/* Builds the cluster: namespaces (or loopback), Redis with the accounts'
 * confs already there (no recovery wait), the provider, three nodes. */
static void cl_up(const cl_opts *o)
{
    memset(&cl, 0, sizeof(cl));
    cl.up = 1;
    th_tmpdir(cl.dir, sizeof(cl.dir));
    snprintf(cl.tag, sizeof(cl.tag), "sflc%d", (int)getpid());
    cl.netns = 0;
    if (o->allow_netns && geteuid() == 0 && sh("command -v ip") == 0) {
        sweep_stale();
        if (netns_up() == 0)
            cl.netns = 1;
        else
            netns_down();
    }
    if (!cl.netns)
        fprintf(stderr,
                "cluster: %s: no network namespaces (%s); running all parties on "
                "loopback\n",
                cl.tag,
                !o->allow_netns  ? "not needed here"
                : geteuid() != 0 ? "not root"
                                 : "`ip netns add` failed");
    else
        fprintf(stderr,
                "cluster: %s: namespaces up, Redis net 10.213.%d.0/24, provider net "
                "10.213.%d.0/24, files in %s\n",
                cl.tag, cl.net, cl.net + 1, cl.dir);

    start_redis();
    for (size_t a = 0; a < o->nacc; a++) {
        redisReply *r = rcmd("HSET sfl:{a:%lld}:conf max_streams %lld updated_ms 0 epoch_ms 0 "
                             "recover_until_ms 0",
                             o->acc[a].id, o->acc[a].limit);
        cr_assert_not_null(r);
        freeReplyObject(r);
        r = rcmd("SADD sfl:accounts %lld", o->acc[a].id);
        cr_assert_not_null(r);
        freeReplyObject(r);
    }
    start_provider(o);

    for (int i = 0; i < NNODES; i++) {
        cl_node *nd = &cl.nodes[i];
        snprintf(nd->id, sizeof(nd->id), "node%d", i + 1);
        nd->http_port = cl.netns ? NODE_HTTP_PORT : th_free_port();
        snprintf(nd->log, sizeof(nd->log), "%s/node%d.log", cl.dir, i + 1);
        snprintf(nd->conf, sizeof(nd->conf), "%s/node%d.json", cl.dir, i + 1);
        write_node_conf(o, i, nd->conf);
    }
    for (int i = 0; i < NNODES; i++)
        start_node(o, i);
    char text[256];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"submitter\", \"redis\": {\"url\": "
             "\"redis://%s:%d/0\"}}\n",
             cl.redis_host, cl.redis_port);
    th_write_file(cl.dir, "submit.json", text, cl.submit_conf, sizeof(cl.submit_conf));
    cr_assert(th_until(nodes_registered, NULL, 20000),
              "the nodes did not all register in Redis (logs in %s)", cl.dir);
}

static void cl_down(void)
{
    if (!cl.up)
        return;
    stop_pid(&cl.submit_pid, SIGKILL);
    for (int i = 0; i < NNODES; i++)
        stop_pid(&cl.nodes[i].pid, SIGKILL);
    stop_pid(&cl.prov.pid, SIGKILL);
    stop_pid(&cl.redis_pid, SIGKILL);
    netns_down();
    if (!getenv("SFL_TEST_KEEP") && strncmp(cl.dir, "/tmp/sfl-test-", 14) == 0)
        sh("rm -rf %s", cl.dir);
    else
        fprintf(stderr, "cluster: files kept in %s\n", cl.dir);
    cl.up = 0;
}

/*--- Batches and results ---------------------------------------------------*/

typedef struct cl_result {
    long long id;
    char status[16];
    char node[32];
    char error[160];
    char login[72]; /* "" when missing */
    double wait_ms; /* NAN when null */
} cl_result;

/* streams[k] = {id, account, hold_ms}; writes the JSON array file. */
static void write_streams(const char *path, const long long (*s)[3], int n)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs("[\n", f);
    for (int k = 0; k < n; k++)
        fprintf(f,
                "%s{\"id\": %lld, \"name\": \"s%lld\", \"url\": "
                "\"http://%s:%d/live/u%lld/p%lld/%lld.ts?hold_ms=%lld\", \"m3u_account\": %lld}\n",
                k ? "," : "", s[k][0], s[k][0], cl.prov.host, cl.prov.port, s[k][1], s[k][1],
                s[k][0], s[k][2], s[k][1]);
    fputs("]\n", f);
    fclose(f);
}

/* Reads JSON-lines results; returns how many. */
static int load_results(const char *path, cl_result *out, int max)
{
    char *text = th_read_file(path);
    int n = 0;
    for (char *save = NULL, *line = text ? strtok_r(text, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line);
        cr_assert_not_null(r, "a result line is not JSON: %s", line);
        cr_assert_lt(n, max, "more results than streams");
        cl_result *x = &out[n++];
        const cJSON *id = cJSON_GetObjectItem(r, "stream_id");
        const cJSON *st = cJSON_GetObjectItem(r, "status");
        const cJSON *nd = cJSON_GetObjectItem(r, "node");
        const cJSON *w = cJSON_GetObjectItem(r, "lease_wait_ms");
        const cJSON *e = cJSON_GetObjectItem(r, "error");
        const cJSON *l = cJSON_GetObjectItem(r, "login");
        snprintf(x->login, sizeof(x->login), "%s", cJSON_IsString(l) ? l->valuestring : "");
        snprintf(x->error, sizeof(x->error), "%s", cJSON_IsString(e) ? e->valuestring : "");
        cr_assert(cJSON_IsNumber(id) && cJSON_IsString(st), "bad result: %s", line);
        x->id = (long long)id->valuedouble;
        snprintf(x->status, sizeof(x->status), "%s", st->valuestring);
        snprintf(x->node, sizeof(x->node), "%s", cJSON_IsString(nd) ? nd->valuestring : "");
        x->wait_ms = cJSON_IsNumber(w) ? w->valuedouble : NAN;
        cJSON_Delete(r);
    }
    free(text);
    return n;
}

/* arg: a results file. 1 once it holds a result line. */
static int has_a_result(void *arg)
{
    char *text = th_read_file(arg);
    int yes = text && strchr(text, '\n');
    free(text);
    return yes;
}

/* Every stream id exactly once. */
static void assert_one_each(const cl_result *r, int n, const long long (*s)[3], int ns)
{
    cr_assert_eq(n, ns, "%d results for %d streams", n, ns);
    for (int k = 0; k < ns; k++) {
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen += r[j].id == s[k][0];
        cr_assert_eq(seen, 1, "stream %lld has %d results", s[k][0], seen);
    }
}

static pid_t submit_start(const char *streams, const char *results)
{
    char log[200];
    snprintf(log, sizeof(log), "%s/submit.log", cl.dir);
    const char *argv[] = {SFL_BIN, "submit", "--wait", "-c", cl.submit_conf,
                          streams, "-o",     results,  NULL};
    return cl.submit_pid = spawn(argv, log, log);
}

static void submit_finish(int timeout_ms)
{
    int st = th_wait(cl.submit_pid, timeout_ms);
    cr_assert_neq(st, -1, "submit --wait did not end in %d ms (files in %s)", timeout_ms, cl.dir);
    cl.submit_pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "submit exited with status %d", st);
}

/* n streams per account, interleaved across accounts (as a mixed playlist is). */
static int make_batch(long long (*s)[3], const cl_opts *o, int per_account, long long hold)
{
    int n = 0;
    for (int k = 0; k < per_account; k++)
        for (size_t a = 0; a < o->nacc; a++) {
            s[n][0] = 1000 + n;
            s[n][1] = o->acc[a].id;
            s[n][2] = hold;
            n++;
        }
    return n;
}

static double lower_bound_ms(const cl_opts *o, int per_account, long long hold)
{
    double lb = 0;
    for (size_t a = 0; a < o->nacc; a++) {
        long long lim = o->acc[a].limit;
        double rounds = lim > 0 ? ceil((double)per_account / (double)lim) : 1;
        if (rounds * hold > lb)
            lb = rounds * hold;
    }
    return lb;
}

/*--- Tests -----------------------------------------------------------------*/

TestSuite(cluster, .fini = cl_down, .timeout = 150);

static const cl_account five_accounts[] = {{1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {4, 1, 1}, {5, 0, 0}};

static cl_opts batch_opts(void)
{
    return (cl_opts){.acc = five_accounts,
                     .nacc = 5,
                     .global_limit = 4,
                     .ttl_ms = 3000,
                     .renew_ms = 1000,
                     .safety_ms = 700,
                     .allow_netns = 1};
}

/* 30 streams over 5 accounts (limits 1, 2, 3, 1, unlimited), 2 s each, on
 * three nodes: every stream checked once and OK, the work spread over the
 * nodes, the provider never over a limit, and the batch done within 1.3 x
 * the bound the limits set (6 rounds of the limit-1 accounts = 12 s). */
Test(cluster, thirty_streams_five_accounts)
{
    cl_opts o = batch_opts();
    cl_up(&o);
    long long s[MAX_STREAMS][3];
    const long long hold = 2000;
    int ns = make_batch(s, &o, 6, hold);
    char streams[200], results[200];
    snprintf(streams, sizeof(streams), "%s/streams.json", cl.dir);
    snprintf(results, sizeof(results), "%s/results.jsonl", cl.dir);
    write_streams(streams, (const long long(*)[3])s, ns);

    int64_t t0 = th_now_ms();
    submit_start(streams, results);
    submit_finish(90000);
    int64_t makespan = th_now_ms() - t0;

    cl_result r[MAX_STREAMS];
    int n = load_results(results, r, MAX_STREAMS);
    assert_one_each(r, n, (const long long(*)[3])s, ns);
    assert_provider_clean(&o, "after the batch");
    int per_node[NNODES] = {0};
    for (int j = 0; j < n; j++) {
        cr_assert_str_eq(r[j].status, "OK", "stream %lld: %s on %s (%s)", r[j].id, r[j].status,
                         r[j].node, r[j].error);
        for (int i = 0; i < NNODES; i++)
            per_node[i] += strcmp(r[j].node, cl.nodes[i].id) == 0;
    }
    int used = 0;
    for (int i = 0; i < NNODES; i++)
        used += per_node[i] > 0;
    double lb = lower_bound_ms(&o, 6, hold);
    double ratio = makespan / lb;
    fprintf(stderr,
            "cluster: thirty_streams_five_accounts (%s): makespan %lld ms, lower bound %.0f ms, "
            "ratio %.3f; checks per node %d/%d/%d\n",
            cl.netns ? "namespaces" : "loopback", (long long)makespan, lb, ratio, per_node[0],
            per_node[1], per_node[2]);
    cr_assert_geq(used, 2, "all checks ran on one node (%d/%d/%d)", per_node[0], per_node[1],
                  per_node[2]);
    cr_assert_geq(makespan, lb, "faster than the limits allow: %lld ms < %.0f ms",
                  (long long)makespan, lb);
    cr_assert_leq(ratio, 1.3, "makespan %lld ms is %.2f x the %.0f ms lower bound",
                  (long long)makespan, ratio, lb);
}

/* The same batch; once one node runs checks, it is killed -9. Its checks
 * die with it (PDEATHSIG), its leases expire, its queue entries go idle and
 * are claimed: still one result per stream, all OK, and no violation. */
Test(cluster, node_killed_mid_batch)
{
    cl_opts o = batch_opts();
    cl_up(&o);
    long long s[MAX_STREAMS][3];
    const long long hold = 2000;
    int ns = make_batch(s, &o, 6, hold);
    char streams[200], results[200];
    snprintf(streams, sizeof(streams), "%s/streams.json", cl.dir);
    snprintf(results, sizeof(results), "%s/results.jsonl", cl.dir);
    write_streams(streams, (const long long(*)[3])s, ns);

    cl_node *victim = &cl.nodes[0];
    int64_t t0 = th_now_ms();
    submit_start(streams, results);
    cr_assert(th_until(node_busy, victim, 20000), "%s never ran a check of the batch", victim->id);
    int victim_running = node_running(victim);
    cr_assert(th_alive(victim->pid), "%s died by itself", victim->id);
    char comm[32] = "";
    cr_assert(proc_comm(victim->pid, comm, sizeof(comm)) && strcmp(comm, "sflimit") == 0,
              "pid %d is not sflimit but '%s'", (int)victim->pid, comm);
    kill(victim->pid, SIGKILL);
    waitpid(victim->pid, NULL, 0);
    victim->pid = 0;
    int64_t killed = th_now_ms() - t0;
    submit_finish(120000);
    int64_t makespan = th_now_ms() - t0;

    cl_result r[MAX_STREAMS];
    int n = load_results(results, r, MAX_STREAMS);
    assert_one_each(r, n, (const long long(*)[3])s, ns);
    assert_provider_clean(&o, "after the batch");
    int by_victim = 0;
    for (int j = 0; j < n; j++) {
        cr_assert_str_eq(r[j].status, "OK", "stream %lld: %s on %s (%s)", r[j].id, r[j].status,
                         r[j].node, r[j].error);
        by_victim += strcmp(r[j].node, victim->id) == 0;
    }
    double lb = lower_bound_ms(&o, 6, hold);
    fprintf(stderr,
            "cluster: node_killed_mid_batch (%s): %s killed at %lld ms with %d check(s) "
            "running; makespan %lld ms (%.2f x the %.0f ms bound); %d result(s) from %s "
            "before it died\n",
            cl.netns ? "namespaces" : "loopback", victim->id, (long long)killed, victim_running,
            (long long)makespan, makespan / lb, lb, by_victim, victim->id);
    /* Bound: the lost work comes back after claim_idle (4 s) + TTL (3 s) at worst. */
    cr_assert_leq(makespan, lb * 1.3 + 15000, "makespan %lld ms", (long long)makespan);
}

typedef struct holder_check {
    long long account;
    const char *not_node;
} holder_check;

/* 1 when some node other than not_node holds a lease of the account. */
static int held_elsewhere(void *arg)
{
    const holder_check *h = arg;
    redisReply *r = rcmd("HVALS sfl:{a:%lld}:holders", h->account);
    int yes = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        cJSON *j = cJSON_Parse(r->element[i]->str);
        const cJSON *nd = j ? cJSON_GetObjectItem(j, "node") : NULL;
        if (cJSON_IsString(nd) && strcmp(nd->valuestring, h->not_node) != 0)
            yes = 1;
        cJSON_Delete(j);
    }
    if (r)
        freeReplyObject(r);
    return yes;
}

/* 1 when node holds a lease of the account in Redis. */
static int holds(long long account, const char *node)
{
    redisReply *r = rcmd("HVALS sfl:{a:%lld}:holders", account);
    char needle[48];
    snprintf(needle, sizeof(needle), "\"node\":\"%s\"", node);
    int yes = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        yes |= r->element[i]->type == REDIS_REPLY_STRING && strstr(r->element[i]->str, needle);
    if (r)
        freeReplyObject(r);
    return yes;
}

/* 1 when a ticket of a node other than node waits for the account (tickets
 * are lease ids, "<node>:<hex>"). */
static int waited_for_elsewhere(long long account, const char *node)
{
    redisReply *r = rcmd("ZRANGE sfl:{a:%lld}:waiters 0 -1", account);
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "%s:", node);
    int yes = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        yes |= r->element[i]->type == REDIS_REPLY_STRING &&
               strncmp(r->element[i]->str, prefix, strlen(prefix)) != 0;
    if (r)
        freeReplyObject(r);
    return yes;
}

/* How many leases of node's (ids "<node>:<hex>") Redis still counts over
 * the accounts of o: their deadline is ahead of Redis's TIME. */
static int live_leases_of(const cl_opts *o, const char *node)
{
    redisReply *t = rcmd("TIME");
    long long now = t && t->type == REDIS_REPLY_ARRAY && t->elements == 2
                        ? atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000
                        : 0;
    if (t)
        freeReplyObject(t);
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "%s:", node);
    int n = 0;
    for (size_t a = 0; a < o->nacc; a++) {
        redisReply *r = rcmd("ZRANGE sfl:{a:%lld}:leases 0 -1 WITHSCORES", o->acc[a].id);
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
            n += strncmp(r->element[i]->str, prefix, strlen(prefix)) == 0 &&
                 atoll(r->element[i + 1]->str) > now;
        if (r)
            freeReplyObject(r);
    }
    return n;
}

typedef struct cut_ready {
    const cl_opts *o;
    cl_node *node;     /* out: the node to cut */
    long long account; /* out */
} cut_ready;

/* The moment worth cutting at: a node holds a lease of an account for which
 * another node's ticket is already waiting, so the slot is handed over the
 * instant Redis lets the lease go. A node that stopped late would overlap.
 * Whichever node gets there first is cut: which node claims which entries
 * is the queue's doing, and one whose tickets all came last holds each
 * account only after everyone else, with nobody left waiting. */
static int cut_is_ready(void *arg)
{
    cut_ready *c = arg;
    for (int i = 0; i < NNODES; i++)
        for (size_t a = 0; a < c->o->nacc; a++)
            if (holds(c->o->acc[a].id, cl.nodes[i].id) &&
                waited_for_elsewhere(c->o->acc[a].id, cl.nodes[i].id)) {
                c->node = &cl.nodes[i];
                c->account = c->o->acc[a].id;
                return 1;
            }
    return 0;
}

static int node_key_gone(void *arg)
{
    return rint_("EXISTS sfl:node:%s", ((cl_node *)arg)->id) == 0;
}

static int node_key_back(void *arg)
{
    return rint_("EXISTS sfl:node:%s", ((cl_node *)arg)->id) == 1;
}

static int node_log_lost(void *arg)
{
    return log_has(((cl_node *)arg)->log, "lost");
}

static int node_redis_up(void *arg)
{
    cJSON *h = node_health(arg);
    const cJSON *v = h ? cJSON_GetObjectItem(h, "redis") : NULL;
    int up = cJSON_IsString(v) && strcmp(v->valuestring, "up") == 0;
    cJSON_Delete(h);
    return up;
}

static int provider_violations(void)
{
    return (int)th_provider_stat(&cl.prov, "violations");
}

/* A node holds a lease, with another node's ticket waiting for it, when its
 * link to Redis is cut; it still reaches the provider. It must stop its check
 * before Redis can hand the slot over (the provider sees no overlap), the
 * waiting node takes the account over, and when the link returns the cut
 * node rejoins without a restart. stubborn: every node's check ignores
 * SIGTERM (the cut one is known only then). */
static void link_cut(const char *name, int stubborn)
{
    static const cl_account acc[] = {{21, 1, 1}, {22, 1, 1}, {23, 1, 1}};
    /* Two checks per node, one entry looked ahead: the nine entries spread
     * over the nodes, and every node has a free slot to wait with. */
    cl_opts o = {.acc = acc,
                 .nacc = 3,
                 .global_limit = 2,
                 .lookahead = 1,
                 .ttl_ms = 3000,
                 .renew_ms = 1000,
                 .safety_ms = 700,
                 .allow_netns = 1};
    for (int i = 0; i < NNODES && stubborn; i++)
        o.check_cmd[i] = "[\"sh\", \"-c\", \"trap '' TERM; exec curl -sS -f --max-time 30 "
                         "-o /dev/null \\\"$1\\\"\", \"sh\", \"{url}\"]";
    cl_up(&o);
    if (!cl.netns)
        cr_skip_test("no network namespaces (needs root and `ip netns`): a link cannot be cut "
                     "on loopback");
    long long s[MAX_STREAMS][3];
    const long long hold = 6000;
    int ns = make_batch(s, &o, 3, hold);
    char streams[200], results[200];
    snprintf(streams, sizeof(streams), "%s/streams.json", cl.dir);
    snprintf(results, sizeof(results), "%s/results.jsonl", cl.dir);
    write_streams(streams, (const long long(*)[3])s, ns);
    int64_t t0 = th_now_ms();
    submit_start(streams, results);
    cut_ready cr = {&o, NULL, 0};
    cr_assert(th_until(cut_is_ready, &cr, 25000),
              "no node held a lease that another node was waiting for");
    cl_node *cut = cr.node;
    int run[NNODES];
    for (int i = 0; i < NNODES; i++)
        run[i] = node_running(&cl.nodes[i]);
    cr_assert_eq(sh("ip link set %s down", cut->veth_redis), 0, "cannot cut %s", cut->veth_redis);
    int64_t t_cut = th_now_ms();
    fprintf(stderr,
            "cluster: %s: cut %s's Redis link at %lld ms; it held account %lld, "
            "another node's ticket waiting; running per node %d/%d/%d\n",
            name, cut->id, (long long)(t_cut - t0), cr.account, run[0], run[1], run[2]);

    cr_assert(th_until(node_log_lost, cut, 5000), "%s never said a lease was lost", cut->id);
    int64_t t_lost = th_now_ms() - t_cut;
    holder_check hc = {cr.account, cut->id};
    cr_assert(th_until(held_elsewhere, &hc, 20000), "no other node took account %lld over",
              cr.account);
    int64_t t_over = th_now_ms() - t_cut;
    int running = node_running(cut);
    /* Read after running: the cut node, renews nothing, so a lease live now
     * was live then. Its checks of other accounts may still hold full leases
     * (a lease started on a hand-off keeps only the hold's short deadline
     * until its take-over, so it can lapse well before the others). */
    int live = live_leases_of(&o, cut->id);
    /* Kept fixed: a second past the taking over, in which an overlap would
     * show as a refused connection; the violation is what must not happen. */
    usleep(1000 * 1000);
    int v = provider_violations();
    fprintf(stderr,
            "cluster: %s: %s said lost %lld ms after the cut, another node held "
            "account %lld %lld ms after the cut; provider violations %d\n",
            name, cut->id, (long long)t_lost, cr.account, (long long)t_over, v);
    assert_provider_clean(&o, "at the take-over");
    cr_assert_leq(running, live,
                  "%s still ran %d check(s) without Redis at the take-over, with %d lease(s) "
                  "still counted there",
                  cut->id, running, live);

    /* The registry key lapses (TTL 10 s) while the node is cut off... */
    cr_assert(th_until(node_key_gone, cut, 15000), "sfl:node:%s outlived its TTL", cut->id);
    int64_t t_gone = th_now_ms() - t_cut;
    cr_assert_eq(sh("ip link set %s up", cut->veth_redis), 0, "cannot restore %s", cut->veth_redis);
    int64_t t_up = th_now_ms();
    /* ...and comes back, from the same process, once the link does. */
    cr_assert(th_until(node_key_back, cut, 12000), "%s did not rejoin within 12 s", cut->id);
    int64_t t_back = th_now_ms() - t_up;
    cr_assert(th_until(node_redis_up, cut, 5000), "%s's /healthz does not say redis up", cut->id);
    cr_assert(th_alive(cut->pid), "%s exited", cut->id);
    cr_assert_eq(rint_("HGET sfl:node:%s pid", cut->id), (long long)cut->pid,
                 "sfl:node:%s is not the same process", cut->id);

    submit_finish(90000);
    int64_t makespan = th_now_ms() - t0;
    cl_result r[MAX_STREAMS];
    int n = load_results(results, r, MAX_STREAMS);
    assert_one_each(r, n, (const long long(*)[3])s, ns);
    assert_provider_clean(&o, "after the link cut");
    int lease_lost = 0;
    char lost[512] = "";
    for (int j = 0; j < n; j++) {
        cr_assert(strcmp(r[j].status, "OK") == 0 || strcmp(r[j].status, "LeaseLost") == 0,
                  "stream %lld: %s on %s (%s)", r[j].id, r[j].status, r[j].node, r[j].error);
        if (strcmp(r[j].status, "LeaseLost") == 0) {
            lease_lost++;
            size_t len = strlen(lost);
            snprintf(lost + len, sizeof(lost) - len, " %lld@%s", r[j].id, r[j].node);
        }
    }
    fprintf(stderr,
            "cluster: %s: %s's registry key lapsed %lld ms after the cut; link restored, "
            "back in Redis %lld ms later; batch %lld ms; LeaseLost results in the "
            "batch: %d%s\n",
            name, cut->id, (long long)t_gone, (long long)t_back, (long long)makespan, lease_lost,
            lost);
}

Test(cluster, redis_link_cut_mid_check)
{
    link_cut("redis_link_cut_mid_check", 0);
}

/* The same cut, but the node's check ignores SIGTERM (as a wrapper script or a
 * slow-to-exit player may). On a lost lease the check must be dead before
 * its Redis deadline whatever its own grace (SIGKILL within half the time
 * left, src/check.c), or the provider refuses the next node. */
Test(cluster, link_cut_check_ignores_sigterm)
{
    link_cut("link_cut_check_ignores_sigterm", 1);
}

/* Fair waiting across nodes: node A has 50 streams of a limit-1 account
 * queued, node B arrives a second later with one. B must be served after
 * at most about two of A's checks, not after all fifty. */
Test(cluster, single_stream_not_starved)
{
    static const cl_account acc[] = {{31, 1, 1}};
    cl_opts o = {.acc = acc,
                 .nacc = 1,
                 .global_limit = 4,
                 .ttl_ms = 3000,
                 .renew_ms = 1000,
                 .safety_ms = 700,
                 .allow_netns = 0};
    memset(&cl, 0, sizeof(cl));
    cl.up = 1;
    th_tmpdir(cl.dir, sizeof(cl.dir));
    snprintf(cl.tag, sizeof(cl.tag), "sflc%d", (int)getpid());
    start_redis();
    redisReply *rep = rcmd("HSET sfl:{a:31}:conf max_streams 1 updated_ms 0 epoch_ms 0 "
                           "recover_until_ms 0");
    cr_assert_not_null(rep);
    freeReplyObject(rep);
    rep = rcmd("SADD sfl:accounts 31");
    cr_assert_not_null(rep);
    freeReplyObject(rep);
    start_provider(&o);

    const long long hold = 500;
    long long sa[50][3], sb[1][3] = {{9001, 31, hold}};
    for (int k = 0; k < 50; k++) {
        sa[k][0] = 100 + k;
        sa[k][1] = 31;
        sa[k][2] = hold;
    }
    char fa[200], fb[200], ra[200], rb[200], la[200], lb[200];
    snprintf(fa, sizeof(fa), "%s/a.json", cl.dir);
    snprintf(fb, sizeof(fb), "%s/b.json", cl.dir);
    snprintf(ra, sizeof(ra), "%s/a.jsonl", cl.dir);
    snprintf(rb, sizeof(rb), "%s/b.jsonl", cl.dir);
    snprintf(la, sizeof(la), "%s/a.log", cl.dir);
    snprintf(lb, sizeof(lb), "%s/b.log", cl.dir);
    write_streams(fa, (const long long(*)[3])sa, 50);
    write_streams(fb, (const long long(*)[3])sb, 1);
    /* Two batch-mode nodes; cl.nodes[0] = A, cl.nodes[1] = B (http unused). */
    for (int i = 0; i < 2; i++) {
        cl_node *nd = &cl.nodes[i];
        snprintf(nd->id, sizeof(nd->id), "node%d", i + 1);
        snprintf(nd->conf, sizeof(nd->conf), "%s/%s.conf.json", cl.dir, i ? "b" : "a");
        nd->http_port = th_free_port();
        write_node_conf(&o, i, nd->conf);
    }
    const char *argv_a[] = {SFL_BIN, "check", "-c", cl.nodes[0].conf, "-o", ra, fa, NULL};
    const char *argv_b[] = {SFL_BIN, "check", "-c", cl.nodes[1].conf, "-o", rb, fb, NULL};
    int64_t t0 = th_now_ms();
    cl.nodes[0].pid = spawn(argv_a, NULL, la);
    /* B arrives once A is into its queue: a check done, 49 to go. */
    cr_assert(th_until(has_a_result, ra, 20000), "A never finished a check");
    cl.nodes[1].pid = spawn(argv_b, NULL, lb);
    int st = th_wait(cl.nodes[1].pid, 30000);
    cr_assert_neq(st, -1, "B did not finish its one stream in 30 s");
    cl.nodes[1].pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "B exited with status %d", st);
    int64_t b_done = th_now_ms() - t0;

    cl_result rbv[1];
    cr_assert_eq(load_results(rb, rbv, 1), 1);
    cr_assert_str_eq(rbv[0].status, "OK", "B's stream: %s", rbv[0].status);
    double b_wait = rbv[0].wait_ms;
    cr_assert(!isnan(b_wait), "B's result has no lease_wait_ms");

    /* Now stop A in the middle of its fifty. */
    cr_assert(th_alive(cl.nodes[0].pid), "A finished or died early");
    kill(cl.nodes[0].pid, SIGTERM);
    st = th_wait(cl.nodes[0].pid, 15000);
    cr_assert_neq(st, -1, "A did not stop on SIGTERM");
    cl.nodes[0].pid = 0;
    cr_assert(WIFEXITED(st), "A died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 143, "A exited %d, not 143", WEXITSTATUS(st));

    cl_result rav[MAX_STREAMS];
    int na = load_results(ra, rav, MAX_STREAMS);
    assert_one_each(rav, na, (const long long(*)[3])sa, 50);
    int ok = 0, cancelled = 0, other = 0;
    double waits[50];
    int nw = 0;
    for (int j = 0; j < na; j++) {
        if (strcmp(rav[j].status, "OK") == 0)
            ok++;
        else if (strcmp(rav[j].status, "Cancelled") == 0)
            cancelled++;
        else
            other++;
        if (strcmp(rav[j].status, "OK") == 0 && !isnan(rav[j].wait_ms))
            waits[nw++] = rav[j].wait_ms;
    }
    for (int i = 1; i < nw; i++) /* insertion sort: few values */
        for (int j = i; j > 0 && waits[j - 1] > waits[j]; j--) {
            double t = waits[j];
            waits[j] = waits[j - 1];
            waits[j - 1] = t;
        }
    /* The provider saw B's connection and A's, never two at once. */
    assert_provider_clean(&o, "after A and B");
    fprintf(stderr,
            "cluster: single_stream_not_starved: B done %lld ms after A started, B "
            "lease_wait_ms %.0f (bound %lld); A: %d OK (lease_wait_ms median %.0f, max %.0f), "
            "%d Cancelled, %d other, exit 143\n",
            (long long)b_done, b_wait, 3 * hold, ok, nw ? waits[nw / 2] : NAN,
            nw ? waits[nw - 1] : NAN, cancelled, other);
    cr_assert_leq(b_wait, 3.0 * hold, "B waited %.0f ms for a slot: more than ~2 of A's checks",
                  b_wait);
    cr_assert_geq(ok, 1, "A checked nothing");
    cr_assert_geq(cancelled, 1, "A had nothing left queued to cancel");
    cr_assert_eq(other, 0, "A: %d result(s) neither OK nor Cancelled", other);
}

/* One provider login shared by two accounts (issue #13): accounts 41 and 42
 * both list login "shared" (limit 1). 41's streams are the login's own URLs
 * (user u41); 42's are rewritten from user u42 to u41, the same provider
 * user. Six streams of 1 s, three of each account, on the three nodes: one
 * limit over both accounts and all nodes, so the provider sees u41 at most
 * once at a time, never u42, refuses nothing, and the batch cannot end
 * before six checks one after another; every result names "shared". */
Test(cluster, shared_login_across_accounts)
{
    static const cl_account acc[] = {{41, 1, 1}, {42, 1, 1}};
    cl_opts o = batch_opts();
    o.acc = acc;
    o.nacc = 2;
    o.accounts_json = "[{\"id\": 41, \"name\": \"acc41\", \"logins\":"
                      " [{\"id\": \"shared\", \"max_streams\": 1}]},"
                      " {\"id\": 42, \"name\": \"acc42\", \"logins\":"
                      " [{\"id\": \"shared\", \"max_streams\": 1,"
                      " \"search\": \"/live/u42/p42/\", \"replace\": \"/live/u41/p41/\"}]}]";
    cl_up(&o);
    long long s[MAX_STREAMS][3];
    const long long hold = 1000;
    int ns = make_batch(s, &o, 3, hold);
    char streams[200], results[200];
    snprintf(streams, sizeof(streams), "%s/streams.json", cl.dir);
    snprintf(results, sizeof(results), "%s/results.jsonl", cl.dir);
    write_streams(streams, (const long long(*)[3])s, ns);

    int64_t t0 = th_now_ms();
    submit_start(streams, results);
    submit_finish(90000);
    int64_t makespan = th_now_ms() - t0;

    cl_result r[MAX_STREAMS];
    int n = load_results(results, r, MAX_STREAMS);
    assert_one_each(r, n, (const long long(*)[3])s, ns);
    int per_node[NNODES] = {0};
    for (int j = 0; j < n; j++) {
        cr_assert_str_eq(r[j].status, "OK", "stream %lld: %s on %s (%s)", r[j].id, r[j].status,
                         r[j].node, r[j].error);
        cr_assert_str_eq(r[j].login, "shared", "stream %lld names login \"%s\"", r[j].id,
                         r[j].login);
        for (int i = 0; i < NNODES; i++)
            per_node[i] += strcmp(r[j].node, cl.nodes[i].id) == 0;
    }
    fprintf(stderr,
            "cluster: shared_login_across_accounts (%s): makespan %lld ms; checks per node "
            "%d/%d/%d\n",
            cl.netns ? "namespaces" : "loopback", (long long)makespan, per_node[0], per_node[1],
            per_node[2]);
    assert_provider_clean(&o, "after the batch");
    cr_assert_eq(th_provider_stat(&cl.prov, "refused"), 0, "the provider refused a request");
    cr_assert_eq(th_provider_stat(&cl.prov, "users.u41.max_seen"), 1);
    cr_assert_eq(th_provider_stat(&cl.prov, "users.u41.requests"), ns,
                 "not every check reached the shared login's user u41");
    cr_assert_eq(th_provider_stat(&cl.prov, "users.u42.requests"), 0,
                 "account 42's rewrite to the shared login's user was not applied");
    cr_assert_geq(makespan, (double)ns * hold, "faster than one login of 1 allows: %lld ms",
                  (long long)makespan);
}
