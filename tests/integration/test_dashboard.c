/* test_dashboard.c - the page at GET / of `sflimit node`, rendered by a real
 * headless Chromium against a real node and redis-server: the account card,
 * its usage and its holder must be in the DOM the page's script builds. A
 * screenshot is kept in the build dir (dashboard.png) for people to look at.
 * Skipped when /usr/bin/chromium is missing (Debian's `chromium` package). */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHROMIUM "/usr/bin/chromium"
#define TOKEN "dash-b0ard-token"
#define ACCOUNT 42
#define CHROMIUM_TIMEOUT_MS 60000

static sfl_test_redis redis;
static char dir[128];
static pid_t node_pid, browser_pid;
static int node_port;
static const char *token; /* the node's, or NULL for none */
static char node_err[256];
static char lease_id[128];

static void setup(void)
{
    node_pid = browser_pid = 0;
    lease_id[0] = '\0';
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void reap(pid_t *pid, int group)
{
    if (*pid > 0 && waitpid(*pid, NULL, WNOHANG) == 0) {
        kill(group ? -*pid : *pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static void teardown(void)
{
    reap(&browser_pid, 1);
    reap(&node_pid, 0);
    th_redis_stop(&redis);
}

TestSuite(dashboard, .init = setup, .fini = teardown, .timeout = 240);

/*--- A tiny blocking HTTP client ------------------------------------------*/

typedef struct resp {
    int status;
    char *raw;
    const char *body;
    cJSON *json;
} resp;

static void resp_free(resp *r)
{
    free(r->raw);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                  getsockname(fd, (struct sockaddr *)&a, &len) == 0,
              "no free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* One request; 0 and *out filled if an HTTP answer came, -1 if not. */
static int http(const char *method, const char *path, const char *body, resp *out)
{
    memset(out, 0, sizeof(*out));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)node_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n", method,
                     path, node_port);
    if (token)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (body)
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    else
        n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (len + 1 < cap && (r = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        free(buf);
        return -1;
    }
    char *sep = strstr(buf, "\r\n\r\n");
    out->raw = buf;
    out->body = sep ? sep + 4 : buf + len;
    out->json = cJSON_Parse(out->body);
    return 0;
}

static resp call(const char *method, const char *path, const char *body)
{
    resp r;
    cr_assert_eq(http(method, path, body, &r), 0, "%s %s: no answer from the node", method,
                 path);
    return r;
}

/*--- The node --------------------------------------------------------------*/

static void node_start(const char *tok)
{
    token = tok;
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[2048], tokjson[128] = "", config[256];
        node_port = free_port();
        if (tok)
            snprintf(tokjson, sizeof(tokjson), ", \"token\": \"%s\"", tok);
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"dash1\",\n"
                 " \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\"%s},\n"
                 " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500},\n"
                 " \"check\": {\"command\": [\"true\"], \"parser\": \"none\"}}\n",
                 redis.url, node_port, tokjson);
        th_write_file(dir, "sflimit.json", text, config, sizeof(config));
        snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, attempt);
        const char *argv[] = {SFL_BIN, "node", "-c", config, NULL};
        node_pid = th_spawn((char *const *)argv, NULL, node_err);
        int64_t until = th_now_ms() + 20000;
        while (th_now_ms() < until && th_alive(node_pid)) {
            resp r;
            if (http("GET", "/healthz", NULL, &r) == 0) {
                int ok = r.status == 200;
                resp_free(&r);
                if (ok)
                    return;
            }
            usleep(20000);
        }
        char *log = th_read_file(node_err);
        if (!log || !strstr(log, "cannot listen"))
            cr_assert_fail("the node did not become healthy:\n%s", log ? log : "");
        free(log);
        reap(&node_pid, 0);
    }
    cr_assert_fail("the node never got a port");
}

/* "Demo Provider" with limit 2 through the API, and one sidecar lease on it. */
static void demo_account_with_a_holder(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/accounts/%d", ACCOUNT);
    resp r = call("PUT", path, "{\"max_streams\": 2, \"name\": \"Demo Provider\"}");
    cr_assert_eq(r.status, 200, "PUT %s: %d %s", path, r.status, r.body);
    resp_free(&r);
    /* A new account opens a recovery window of one lease TTL: wait it out. */
    char body[96];
    snprintf(body, sizeof(body), "{\"account\": %d, \"wait_ms\": 15000}", ACCOUNT);
    r = call("POST", "/v1/leases", body);
    cr_assert_eq(r.status, 200, "POST /v1/leases: %d %s", r.status, r.body);
    const cJSON *id = cJSON_GetObjectItem(r.json, "lease_id");
    cr_assert(cJSON_IsString(id), "%s", r.body);
    snprintf(lease_id, sizeof(lease_id), "%s", id->valuestring);
    resp_free(&r);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:%d}:leases", ACCOUNT), 1);
}

/* The node drops a sidecar lease whose client does not renew within the
 * lease TTL (3 s): the test is that client while Chromium runs. */
static void renew(void)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/leases/%s/renew", lease_id);
    resp r = call("POST", path, NULL);
    cr_assert_eq(r.status, 200, "renew: %d %s", r.status, r.body);
    resp_free(&r);
}

/*--- Chromium --------------------------------------------------------------*/

static void need_chromium(void)
{
    if (access(CHROMIUM, X_OK) != 0)
        cr_skip_test("%s not installed (Debian: apt-get install chromium); dashboard not tested",
                     CHROMIUM);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Runs headless Chromium on the dashboard with `extra` (one flag), stdout to
 * out_path; renews the lease while it runs; kills it after 60 s. */
static void run_chromium(const char *extra, const char *out_path, int n)
{
    char profile[128], url[256], err_path[256], prof_flag[200];
    th_tmpdir(profile, sizeof(profile));
    snprintf(prof_flag, sizeof(prof_flag), "--user-data-dir=%s", profile);
    snprintf(err_path, sizeof(err_path), "%s/chromium%d.err", dir, n);
    if (token)
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/?token=%s", node_port, token);
    else
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", node_port);
    const char *argv[] = {CHROMIUM,
                          "--headless",
                          "--no-sandbox",
                          "--disable-gpu",
                          "--no-first-run",
                          "--disable-background-networking",
                          "--disable-component-update",
                          "--disable-sync",
                          "--disable-dev-shm-usage",
                          prof_flag,
                          "--virtual-time-budget=5000",
                          extra,
                          "--window-size=1000,700",
                          url,
                          NULL};
    renew();
    browser_pid = th_spawn((char *const *)argv, out_path, err_path);
    int64_t start = th_now_ms(), last_renew = start;
    int st = -1;
    while (th_now_ms() - start < CHROMIUM_TIMEOUT_MS) {
        if ((st = th_wait(browser_pid, 200)) != -1)
            break;
        if (lease_id[0] && th_now_ms() - last_renew >= 1000) {
            renew();
            last_renew = th_now_ms();
        }
    }
    if (st == -1) {
        reap(&browser_pid, 1);
        char *err = th_read_file(err_path);
        cr_assert_fail("chromium %s did not finish in %d s; stderr:\n%s", extra,
                       CHROMIUM_TIMEOUT_MS / 1000, err ? err : "");
    }
    browser_pid = 0;
    nftw(profile, rm_one, 16, FTW_DEPTH | FTW_PHYS); /* a few MB per run */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *err = th_read_file(err_path);
        cr_assert_fail("chromium %s failed (status %d); stderr:\n%s", extra, st,
                       err ? err : "");
    }
    if (lease_id[0])
        renew();
}

static int is_png(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, sizeof(magic), f);
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fclose(f);
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return got == 8 && memcmp(magic, png, 8) == 0;
}

/* Dumps the DOM and takes the screenshot (both before any assertion, so the
 * screenshot shows what went wrong), then checks both. */
static void render_and_check(const char *png)
{
    char dom_path[256];
    snprintf(dom_path, sizeof(dom_path), "%s/dom.html", dir);
    run_chromium("--dump-dom", dom_path, 0);
    unlink(png);
    char shot[300];
    snprintf(shot, sizeof(shot), "--screenshot=%s", png);
    run_chromium(shot, NULL, 1);

    char *dom = th_read_file(dom_path);
    cr_assert_not_null(dom, "chromium wrote no DOM");
    char card[64];
    snprintf(card, sizeof(card), "data-account=\"%d\"", ACCOUNT);
    cr_assert(strstr(dom, card), "no account card (%s) in the rendered page:\n%s", card, dom);
    cr_assert(strstr(dom, "Demo Provider"), "the account's name is not shown:\n%s", dom);
    cr_assert(strstr(dom, "1 / 2 in use"), "usage \"1 / 2 in use\" not shown:\n%s", dom);
    cr_assert(strstr(dom, "<tr class=\"holder\"><td>dash1</td><td>sidecar</td>"),
              "no holder row (node dash1, stream sidecar):\n%s", dom);
    cr_assert(strstr(dom, "<span id=\"state\" class=\"\">redis up"),
              "the state line does not say redis is up (or says the API is unreachable):\n%s",
              dom);
    free(dom);

    long size = 0;
    cr_assert(is_png(png, &size), "no PNG screenshot at %s", png);
    cr_assert_gt(size, 1000, "the screenshot is only %ld bytes", size);
}

/* As the brief's operator opens it: a node with a token, the token in the
 * address (the page keeps it and sends it as a bearer token). */
Test(dashboard, renders_account_usage_and_holder_with_token)
{
    need_chromium();
    node_start(TOKEN);
    demo_account_with_a_holder();
    render_and_check(SFL_TOOLS_DIR "/dashboard.png");
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:%d}:leases", ACCOUNT), 1,
                 "the holder went away while the page was rendered");
}

/* The same page from a loopback node without a token: the rendering itself,
 * apart from how the token reaches the node. */
Test(dashboard, renders_account_usage_and_holder_without_token)
{
    need_chromium();
    node_start(NULL);
    demo_account_with_a_holder();
    render_and_check(SFL_TOOLS_DIR "/dashboard-open.png");
}
