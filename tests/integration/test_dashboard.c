/* test_dashboard.c - the page at GET / of `sflimit node`, rendered by a real
 * headless Chromium against two real nodes and a real redis-server, with
 * leases held on both, a node waiting for a slot and a finished batch: the
 * DOM the page's script builds must show the accounts (in use / limit bar,
 * waiting count), the holders (node, stream, age; the fencing token only in
 * a tooltip), the nodes alive and the recent results.
 *
 * The screenshots are test artefacts, kept in the build directory:
 * dashboard.png (node with a token) and dashboard-open.png (without).
 *
 * Needs /usr/bin/chromium (Debian: apt-get install chromium; SFL_CHROMIUM
 * names another binary). Without it the tests skip, or fail when
 * SFL_REQUIRE_CHROMIUM=1 (CI sets it).
 *
 * The token a dashboard is opened with (/?token=...) must leave the address
 * bar once the page has it: Chromium's DevTools list of targets tells which
 * address a tab shows. */
#include "browser.h"
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "dash-b0ard-token"
#define ACCOUNT 42       /* "Demo Provider", limit 2: full, one node waiting */
#define CHECK_ACCOUNT 43 /* limit 1, used by the batch of checks */
#define CHROMIUM_TIMEOUT_MS 60000

typedef struct test_node {
    const char *id;
    pid_t pid;
    int port;
    char err[256];
} test_node;

/* A sidecar lease the test holds (and renews) through one of the nodes. */
typedef struct held_lease {
    test_node *node;
    char id[128];
    long long fence;
} held_lease;

static sfl_test_redis redis;
static char dir[128];
static test_node nodes[2];
static held_lease leases[4];
static int nleases;
static pid_t browser_pid;
static int waiter_fd = -1;
static const char *token; /* the nodes', or NULL for none */

static void setup(void)
{
    memset(nodes, 0, sizeof(nodes));
    nodes[0].id = "dash1";
    nodes[1].id = "dash2";
    memset(leases, 0, sizeof(leases));
    nleases = 0;
    browser_pid = 0;
    waiter_fd = -1;
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
    if (waiter_fd >= 0)
        close(waiter_fd);
    reap(&browser_pid, 1);
    for (int i = 0; i < 2; i++)
        reap(&nodes[i].pid, 0);
    th_redis_stop(&redis);
}

TestSuite(dashboard, .init = setup, .fini = teardown, .timeout = 240);

static th_http_resp call(const test_node *n, const char *method, const char *path, const char *body)
{
    th_http_resp r;
    cr_assert_eq(th_http(n->port, token, method, path, body, &r), 0, "%s %s on %s: no answer",
                 method, path, n->id);
    return r;
}

/*--- The nodes -------------------------------------------------------------*/

static void node_start(test_node *n)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[2048], tokjson[128] = "", config[256], name[64];
        n->port = th_free_port();
        if (token)
            snprintf(tokjson, sizeof(tokjson), ", \"token\": \"%s\"", token);
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"%s\",\n"
                 " \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\"%s},\n"
                 " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500%s},\n"
                 " \"check\": {\"command\": [\"true\"], \"parser\": \"none\"}}\n",
                 n->id, redis.url, n->port, tokjson, th_wrap_lease());
        snprintf(name, sizeof(name), "%s.json", n->id);
        th_write_file(dir, name, text, config, sizeof(config));
        snprintf(n->err, sizeof(n->err), "%s/%s-%d.err", dir, n->id, attempt);
        n->pid = th_node_start(config, n->port, n->err, &redis, n->id);
        if (n->pid)
            return;
    }
    cr_assert_fail("node %s never got a port", n->id);
}

static void take_lease(test_node *n, long long account, const char *label)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"account\": %lld, \"wait_ms\": 15000, \"label\": \"%s\"}",
             account, label);
    th_http_resp r = call(n, "POST", "/v1/leases", body);
    cr_assert_eq(r.status, 200, "POST /v1/leases %s on %s: %d %s", body, n->id, r.status, r.body);
    const cJSON *id = cJSON_GetObjectItem(r.json, "lease_id");
    const cJSON *fence = cJSON_GetObjectItem(r.json, "fence");
    cr_assert(cJSON_IsString(id) && cJSON_IsNumber(fence), "%s", r.body);
    cr_assert_lt(nleases, (int)(sizeof(leases) / sizeof(leases[0])), "too many leases");
    held_lease *l = &leases[nleases++];
    l->node = n;
    snprintf(l->id, sizeof(l->id), "%s", id->valuestring);
    l->fence = (long long)fence->valuedouble;
    th_http_free(&r);
}

/* The nodes drop a sidecar lease whose client does not renew within the
 * lease TTL (3 s): the test is that client while Chromium runs. */
static void renew_all(void)
{
    for (int i = 0; i < nleases; i++) {
        char path[200];
        snprintf(path, sizeof(path), "/v1/leases/%s/renew", leases[i].id);
        th_http_resp r = call(leases[i].node, "POST", path, NULL);
        cr_assert_eq(r.status, 200, "renew %s: %d %s", leases[i].id, r.status, r.body);
        th_http_free(&r);
    }
}

/* The scene: "Demo Provider" (limit 2) full with one lease on each node and
 * a third client waiting on dash1; a batch of two checks done (one on
 * account 43, one custom stream). */
static void scene(void)
{
    node_start(&nodes[0]);
    node_start(&nodes[1]);
    char path[64];
    snprintf(path, sizeof(path), "/v1/accounts/%d", ACCOUNT);
    th_http_resp r =
        call(&nodes[0], "PUT", path, "{\"max_streams\": 2, \"name\": \"Demo Provider\"}");
    cr_assert_eq(r.status, 200, "PUT %s: %d %s", path, r.status, r.body);
    th_http_free(&r);
    th_account(&redis, CHECK_ACCOUNT, 1);

    /* A new account opens a recovery window of one lease TTL: the first
     * ask waits it out. */
    take_lease(&nodes[0], ACCOUNT, "recorder-1");
    take_lease(&nodes[1], ACCOUNT, "recorder-2");
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:%d}:leases", ACCOUNT), 2);

    const char *ask = "{\"account\": 42, \"wait_ms\": 120000, \"label\": \"late\"}";
    waiter_fd = th_http_send(nodes[0].port, "POST", "/v1/leases", token, ask, strlen(ask));
    cr_assert_geq(waiter_fd, 0);
    int64_t until = th_now_ms() + 5000;
    while (th_redis_int(&redis, "ZCARD sfl:{a:%d}:waiters:exp", ACCOUNT) < 1 && th_now_ms() < until)
        usleep(10000);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:%d}:waiters:exp", ACCOUNT), 1,
                 "the third client never queued for a slot");

    r = call(&nodes[0], "POST", "/v1/checks",
             "[{\"id\": 501, \"name\": \"Channel One\", \"url\": "
             "\"http://127.0.0.1:9/live/u/p/501.ts\", \"m3u_account\": 43},"
             " {\"id\": 502, \"name\": \"Channel Two\", \"url\": \"http://127.0.0.1:9/502.ts\"}]");
    cr_assert_eq(r.status, 202, "POST /v1/checks: %d %s", r.status, r.body);
    char batch[200];
    snprintf(batch, sizeof(batch), "/v1/checks/%s",
             cJSON_GetObjectItem(r.json, "batch")->valuestring);
    th_http_free(&r);
    until = th_now_ms() + 30000;
    for (;;) {
        r = call(&nodes[0], "GET", batch, NULL);
        int done = cJSON_IsTrue(cJSON_GetObjectItem(r.json, "finished"));
        th_http_free(&r);
        if (done)
            break;
        cr_assert_lt(th_now_ms(), until, "the batch did not finish in 30 s");
        renew_all();
        usleep(100000);
    }
}

/*--- Chromium --------------------------------------------------------------*/

static const char *chromium;

static void need_chromium(void)
{
    chromium = th_chromium_need();
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void renew_tick(void *arg)
{
    (void)arg;
    renew_all();
}

/* Runs headless Chromium on dash1's dashboard with `extra` (one flag),
 * stdout to out_path (browser.h); renews the leases while it runs. */
static void run_chromium(const char *extra, const char *out_path)
{
    char url[256];
    if (token)
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/?token=%s", nodes[0].port, token);
    else
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", nodes[0].port);
    renew_all();
    th_chromium_run(url, extra, out_path, dir, 5000, renew_tick, NULL);
    renew_all();
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

/*--- What the page shows ---------------------------------------------------*/

/* The page from the element with id="id" on. */
static const char *from_id(const char *dom, const char *id)
{
    char attr[64];
    snprintf(attr, sizeof(attr), "id=\"%s\"", id);
    const char *p = strstr(dom, attr);
    cr_assert_not_null(p, "no #%s in the rendered page:\n%s", id, dom);
    return p;
}

static void has(const char *where, const char *what, const char *why)
{
    cr_assert(strstr(where, what), "%s: \"%s\" not in:\n%s", why, what, where);
}

/* The text of the td right after `after` in row (a duration like "4.2 s"). */
static double seconds_after(const char *row, const char *after)
{
    const char *p = strstr(row, after);
    cr_assert_not_null(p, "no %s in %s", after, row);
    p = strstr(p + strlen(after), "<td");
    cr_assert_not_null(p, "no cell after %s in %s", after, row);
    p = strchr(p, '>') + 1;
    char *end;
    double v = strtod(p, &end);
    cr_assert(end != p && (strncmp(end, " s<", 3) == 0 || strncmp(end, " ms<", 4) == 0),
              "not a duration after %s: %.40s", after, p);
    return strncmp(end, " ms<", 4) == 0 ? v / 1000 : v;
}

static void check_dom(const char *dom)
{
    /* Says "unreachable: ..." when a call of the page failed. */
    has(dom, "<span id=\"state\" class=\"\">redis up", "the state line (redis up, reachable)");

    /* The full account: bar at 100 %, 2 / 2, one waiting. */
    char attr[64];
    snprintf(attr, sizeof(attr), "data-account=\"%d\"", ACCOUNT);
    char *card = th_dom_element(dom, "section", attr);
    has(card, "Demo Provider", "the account's name");
    has(card, "<span class=\"id\">#42</span>", "the account's id");
    has(card, "<div class=\"bar full\"", "a full bar");
    has(card, "<div style=\"width: 100%;\"></div>", "the bar's fill at 2 of 2");
    has(card, "<span class=\"in-use\">2 / 2 in use</span>", "in use / limit");
    has(card, "data-waiting=\"1\"", "the waiting count");
    has(card, "<span class=\"waiting some\">1 waiting</span>", "the waiting count");
    has(card, "this node: 1 held", "what dash1 holds");

    /* Holders: a header row, then node / stream / age per lease. */
    has(card,
        "<thead><tr><th>Node</th><th>Stream</th><th class=\"num\">Held for</th>"
        "<th class=\"num\">Expires in</th></tr></thead>",
        "the holder table's header");
    const char *rows[2][2] = {{"dash1", "recorder-1"}, {"dash2", "recorder-2"}};
    for (int i = 0; i < 2; i++) {
        char cells[128];
        snprintf(cells, sizeof(cells), "<td>%s</td><td>%s</td>", rows[i][0], rows[i][1]);
        has(card, cells, "a holder row (node, stream)");
        double age = seconds_after(card, cells);
        cr_assert(age > 0 && age < 120, "holder %s: held for %.1f s", rows[i][1], age);
    }
    /* The fencing token is in the tooltip, never a cell of its own. */
    for (int i = 0; i < nleases; i++) {
        char raw[64];
        snprintf(raw, sizeof(raw), "fencing token %lld\"", leases[i].fence);
        has(card, raw, "the fencing token in the row's tooltip");
        snprintf(raw, sizeof(raw), ">%lld<", leases[i].fence);
        cr_assert_null(strstr(dom, raw), "a fence shown raw: %s", raw);
        snprintf(raw, sizeof(raw), "#%lld", leases[i].fence);
        cr_assert_null(strstr(dom, raw), "a fence shown raw: %s", raw);
    }
    free(card);

    /* The account the batch used: free again. */
    snprintf(attr, sizeof(attr), "data-account=\"%d\"", CHECK_ACCOUNT);
    card = th_dom_element(dom, "section", attr);
    has(card, "<span class=\"in-use\">0 / 1 in use</span>", "account 43 after its check");
    has(card, "<span class=\"waiting\">0 waiting</span>", "account 43's waiting count");
    has(card, "No stream held.", "account 43 has no holder");
    free(card);

    /* Nodes alive: both, with their state. */
    has(dom, ">Nodes alive (2)</h2>", "the node count");
    for (int i = 0; i < 2; i++) {
        char cells[128];
        snprintf(attr, sizeof(attr), "data-node=\"%s\"", nodes[i].id);
        char *row = th_dom_element(from_id(dom, "nodes"), "tr", attr);
        snprintf(cells, sizeof(cells), "<td>%s</td><td>running</td>", nodes[i].id);
        has(row, cells, "a node row (id, state)");
        free(row);
    }

    /* Recent results: both checks, OK, with stream name, account and node. */
    const char *names[2] = {"Channel One", "Channel Two"};
    for (int i = 0; i < 2; i++) {
        snprintf(attr, sizeof(attr), "data-stream=\"%d\"", 501 + i);
        char *row = th_dom_element(from_id(dom, "results"), "tr", attr);
        char cell[64];
        snprintf(cell, sizeof(cell), "<td>%s</td>", names[i]);
        has(row, cell, "the stream's name");
        has(row, i == 0 ? "<td class=\"num\">43</td>" : "<td class=\"num\">–</td>",
            "the stream's account");
        has(row, "<td class=\"status OK\">OK</td>", "the result's status");
        cr_assert(strstr(row, "<td>dash1</td>") || strstr(row, "<td>dash2</td>"),
                  "the node that checked it: %s", row);
        cr_assert_null(strstr(row, "127.0.0.1:9"), "a stream URL on the page: %s", row);
        free(row);
    }
}

/* Dumps the DOM and takes the screenshot (both before any assertion, so the
 * screenshot shows what went wrong), then checks both. */
static void render_and_check(const char *png)
{
    char dom_path[256];
    snprintf(dom_path, sizeof(dom_path), "%s/dom.html", dir);
    run_chromium("--dump-dom", dom_path);
    unlink(png);
    char shot[300];
    snprintf(shot, sizeof(shot), "--screenshot=%s", png);
    run_chromium(shot, NULL);

    char *dom = th_read_file(dom_path);
    cr_assert_not_null(dom, "chromium wrote no DOM");
    check_dom(dom);
    free(dom);

    long size = 0;
    cr_assert(is_png(png, &size), "no PNG screenshot at %s", png);
    cr_assert_gt(size, 1000, "the screenshot is only %ld bytes", size);
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:%d}:leases", ACCOUNT), 2,
                 "a holder went away while the page was rendered");
}

/* As an operator opens it: nodes with a token, the token in the address
 * (the page keeps it and sends it as a bearer token). */
Test(dashboard, renders_accounts_holders_nodes_and_results_with_token)
{
    need_chromium();
    token = TOKEN;
    scene();
    render_and_check(SFL_TOOLS_DIR "/dashboard.png");
}

/* The same page from loopback nodes without a token: the rendering itself,
 * apart from how the token reaches the node. */
Test(dashboard, renders_accounts_holders_nodes_and_results_without_token)
{
    need_chromium();
    token = NULL;
    scene();
    render_and_check(SFL_TOOLS_DIR "/dashboard-open.png");
}

/* An account of two provider logins (44: d-main 1 slot, d-alt 2) with a
 * lease on each, beside a plain account (45) with one: the card of 44 lists
 * each login with its use ("in use / limit", full when it is) and its
 * holders table has a Login column naming each holder's login; the card of
 * 45 has neither. */
Test(dashboard, renders_each_login_of_an_account_of_two)
{
    need_chromium();
    token = TOKEN;
    node_start(&nodes[0]);
    th_http_resp r = call(&nodes[0], "PUT", "/v1/accounts/44",
                          "{\"name\": \"Two Logins\", \"logins\": ["
                          "{\"id\": \"d-main\", \"max_streams\": 1},"
                          " {\"id\": \"d-alt\", \"max_streams\": 2}]}");
    cr_assert_eq(r.status, 200, "PUT /v1/accounts/44: %d %s", r.status, r.body);
    th_http_free(&r);
    r = call(&nodes[0], "PUT", "/v1/accounts/45", "{\"max_streams\": 2, \"name\": \"Plain\"}");
    cr_assert_eq(r.status, 200, "PUT /v1/accounts/45: %d %s", r.status, r.body);
    th_http_free(&r);
    /* The first login with room: d-main, then d-alt. */
    take_lease(&nodes[0], 44, "rec-a");
    take_lease(&nodes[0], 44, "rec-b");
    take_lease(&nodes[0], 45, "rec-c");
    cr_assert_eq(th_redis_int(&redis, "ZCARD sfl:{a:44}:leases"), 1, "d-main's one slot");

    char dom_path[256];
    snprintf(dom_path, sizeof(dom_path), "%s/dom-logins.html", dir);
    run_chromium("--dump-dom", dom_path);
    char *dom = th_read_file(dom_path);
    cr_assert_not_null(dom, "chromium wrote no DOM");
    has(dom, "<span id=\"state\" class=\"\">redis up", "the state line (redis up, reachable)");

    char *card = th_dom_element(dom, "section", "data-account=\"44\"");
    has(card, "<span class=\"in-use\">2 / 3 in use</span>", "the account's use over its logins");
    has(card, "<div class=\"logins\">", "the logins box");
    char *row = th_dom_element(card, "div", "data-login=\"d-main\"");
    has(row, "<span class=\"login-id\">d-main</span>", "d-main's id");
    has(row, "<span class=\"login-use full\">1 / 1</span>", "d-main full");
    free(row);
    row = th_dom_element(card, "div", "data-login=\"d-alt\"");
    has(row, "<span class=\"login-id\">d-alt</span>", "d-alt's id");
    has(row, "<span class=\"login-use\">1 / 2</span>", "d-alt's use");
    free(row);
    cr_assert(strstr(card, "data-login=\"d-main\"") < strstr(card, "data-login=\"d-alt\""),
              "the logins are not in route order:\n%s", card);
    has(card,
        "<thead><tr><th>Node</th><th>Stream</th><th>Login</th><th class=\"num\">Held for</th>"
        "<th class=\"num\">Expires in</th></tr></thead>",
        "the holder table's header with a Login column");
    has(card, "<td>dash1</td><td>rec-a</td><td>d-main</td>", "rec-a's row names d-main");
    has(card, "<td>dash1</td><td>rec-b</td><td>d-alt</td>", "rec-b's row names d-alt");
    free(card);

    card = th_dom_element(dom, "section", "data-account=\"45\"");
    cr_assert_null(strstr(card, "class=\"logins\""), "a logins box on a plain account:\n%s", card);
    cr_assert_null(strstr(card, "<th>Login</th>"), "a Login column on a plain account:\n%s", card);
    has(card, "<td>dash1</td><td>rec-c</td><td class=\"num\">", "rec-c's row, no login cell");
    free(card);
    free(dom);
}

/* Chromium's DevTools list of targets (GET /json/list on its DevTools
 * port), or NULL. Its server keeps connections open and says how long its
 * answer is, so the answer is read up to Content-Length, not to EOF. */
static cJSON *devtools_targets(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    char req[128], buf[65536];
    size_t n = 0;
    cJSON *list = NULL;
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int len =
        snprintf(req, sizeof(req), "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || send(fd, req, (size_t)len, 0) != len)
        goto done;
    for (;;) {
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        const char *body = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "Content-Length:");
        if (body && cl && cl < body &&
            (size_t)(buf + n - (body + 4)) >= strtoul(cl + 15, NULL, 10)) {
            list = cJSON_Parse(body + 4);
            break;
        }
        if (n + 1 >= sizeof(buf))
            break;
    }
done:
    close(fd);
    return list;
}

/* Opened as /?token=...&view=all: the page keeps the token (its calls carry
 * it, as the tests above show) and takes it out of the address bar, leaving
 * the rest of the address as it was. */
Test(dashboard, token_leaves_the_address_bar)
{
    need_chromium();
    token = TOKEN;
    node_start(&nodes[0]);
    char profile[128], prof_flag[200], url[256], err_path[256], port_file[200], want[128];
    th_tmpdir(profile, sizeof(profile));
    snprintf(prof_flag, sizeof(prof_flag), "--user-data-dir=%s", profile);
    snprintf(port_file, sizeof(port_file), "%s/DevToolsActivePort", profile);
    snprintf(err_path, sizeof(err_path), "%s/chromium-address.err", dir);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/?token=%s&view=all", nodes[0].port, TOKEN);
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/?view=all", nodes[0].port);
    const char *argv[] = {chromium,
                          "--headless",
                          "--no-sandbox",
                          "--disable-gpu",
                          "--no-first-run",
                          "--disable-background-networking",
                          "--disable-component-update",
                          "--disable-sync",
                          "--disable-dev-shm-usage",
                          prof_flag,
                          "--remote-debugging-port=0",
                          "--window-size=1100,800",
                          url,
                          NULL};
    browser_pid = th_spawn((char *const *)argv, NULL, err_path);

    /* Chromium writes the port it took for DevTools into the profile. */
    int devtools = 0;
    int64_t until = th_now_ms() + CHROMIUM_TIMEOUT_MS;
    while (!devtools && th_now_ms() < until && th_alive(browser_pid)) {
        char *text = th_read_file(port_file);
        if (text)
            devtools = atoi(text);
        free(text);
        if (!devtools)
            usleep(50000);
    }
    char *err = th_read_file(err_path);
    cr_assert_gt(devtools, 0, "chromium gave no DevTools port; stderr:\n%s", err ? err : "");
    free(err);

    /* The page's address, as the tab shows it, until the token is gone. */
    char address[512] = "";
    until = th_now_ms() + 30000;
    while (th_now_ms() < until) {
        cJSON *list = devtools_targets(devtools);
        const cJSON *t;
        cJSON_ArrayForEach(t, list)
        {
            const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(t, "type"));
            const char *at = cJSON_GetStringValue(cJSON_GetObjectItem(t, "url"));
            if (type && at && strcmp(type, "page") == 0 && strstr(at, "127.0.0.1"))
                snprintf(address, sizeof(address), "%s", at);
        }
        cJSON_Delete(list);
        if (strcmp(address, want) == 0)
            break;
        usleep(100000);
    }
    reap(&browser_pid, 1);
    nftw(profile, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_null(strstr(address, "token"), "the address bar still shows the token: %s", address);
    cr_assert_str_eq(address, want, "the page's address after it read the token");
}

/* A login whose effective limit is below its max_streams (learned from a
 * refusal) and whose panel says its plan ends in 3 days: the card's bar
 * and use go by the effective limit, and the login's row says why and
 * flags the plan (issue #15). */
Test(dashboard, shows_learned_limits_and_the_plan)
{
    need_chromium();
    token = TOKEN;
    node_start(&nodes[0]);
    th_http_resp r = call(&nodes[0], "PUT", "/v1/accounts/46", "{\"max_streams\": 3}");
    cr_assert_eq(r.status, 200, "PUT /v1/accounts/46: %d %s", r.status, r.body);
    th_http_free(&r);
    redisReply *t = th_redis(&redis, "TIME");
    long long now = strtoll(t->element[0]->str, NULL, 10);
    freeReplyObject(t);
    redisReply *h =
        th_redis(&redis,
                 "HSET sfl:{a:46}:conf learned_limit 2 learned_reason %s "
                 "learned_at_ms %lld panel_max 0 panel_status Active "
                 "panel_exp_date %lld panel_at_ms %lld",
                 "refused (HTTP 458) with 3 held", now * 1000, now + 3 * 86400 + 3600, now * 1000);
    freeReplyObject(h);
    take_lease(&nodes[0], 46, "rec-l");

    char dom_path[256];
    snprintf(dom_path, sizeof(dom_path), "%s/dom-learned.html", dir);
    run_chromium("--dump-dom", dom_path);
    char *dom = th_read_file(dom_path);
    cr_assert_not_null(dom, "chromium wrote no DOM");
    char *card = th_dom_element(dom, "section", "data-account=\"46\"");
    has(card, "<span class=\"in-use\">1 / 2 in use</span>", "use against the effective limit");
    char *row = th_dom_element(card, "div", "data-login=\"46\"");
    has(row, "limit 2 of 3", "the effective limit beside max_streams");
    has(row, "learned: refused (HTTP 458) with 3 held", "why it is lower");
    has(row, "panel: Active, expires in 3.0 days", "the plan");
    has(row, "EXPIRING", "the flag of a plan ending within 7 days");
    has(row, "<span class=\"login-use\">1 / 2</span>", "the login's use");
    free(row);
    free(card);
    free(dom);
}
