/* test_logins_api.c - what operators and other nodes see of an account's
 * provider logins (issue #13, DESIGN §7 and §10), and the two promises a
 * shared login makes across processes: a node that was not given the logins
 * is fenced off, and a slot freed on a shared login goes to the oldest ticket
 * of any account that uses it.
 *
 * Real binaries as children (`sflimit node`, `check`, `status`, `accounts`),
 * a real redis-server, and the fake provider as the ground truth of how many
 * connections each provider user really had open. Views are compared with
 * the provider's per-user counts at the same moment (waited for, then
 * checked again afterwards so that the moment is known to have lasted); a
 * refused request is compared with Redis before and after, key by key. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "logins-api-token"
#define NODE_ID "l1"
#define NRUNS 6

static sfl_test_redis redis;
static sfl_test_provider provider;
static char dir[128];
static pid_t node_pid;
static int node_port;
static char node_conf[256];
static char node_err[256];
static int spawns;
static th_run runs[NRUNS]; /* killed by teardown if a test failed early */

static void setup(void)
{
    th_clear_env();
    node_pid = 0;
    node_port = 0;
    memset(runs, 0, sizeof(runs));
    memset(&provider, 0, sizeof(provider));
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
    for (int i = 0; i < NRUNS; i++)
        th_run_reap(&runs[i]);
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(logins_api, .init = setup, .fini = teardown, .timeout = 90);

/*--- The node and its API --------------------------------------------------*/

/* Starts `sflimit node` (NODE_ID, TOKEN) with these accounts (a JSON array)
 * on a free loopback port; waits for /healthz 200 and its registry key. Its
 * checks download the stream with curl (one provider connection each). */
static void node_start(const char *accounts)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[4096];
        node_port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"" NODE_ID "\",\n"
                 " \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\", \"token\": \"" TOKEN "\"},\n"
                 " \"lease\": {" TH_LEASE "},\n"
                 " \"concurrent_streams\": {\"global_limit\": 6, \"stagger_delay\": 0},\n"
                 " \"node\": {\"shutdown_grace\": 2},\n"
                 " \"accounts\": %s,\n"
                 " \"check\": {\"command\": " TH_CURL_CMD ", \"parser\": \"none\","
                 " \"timeout\": 30}}\n",
                 redis.url, node_port, accounts);
        th_write_file(dir, "node.json", text, node_conf, sizeof(node_conf));
        snprintf(node_err, sizeof(node_err), "%s/node%d.err", dir, spawns++);
        node_pid = th_node_start(node_conf, node_port, node_err, &redis, NODE_ID);
        if (node_pid)
            return;
    }
    cr_assert_fail("the node never got a port");
}

static th_http_resp call(const char *method, const char *path, const char *body)
{
    th_http_resp r;
    cr_assert_eq(th_http(node_port, TOKEN, method, path, body, &r), 0,
                 "%s %s: no HTTP answer from the node", method, path);
    return r;
}

/* GET /v1/accounts, 200 asserted; free with th_http_free. */
static th_http_resp get_accounts(void)
{
    th_http_resp r = call("GET", "/v1/accounts", NULL);
    cr_assert_eq(r.status, 200, "GET /v1/accounts: %d %s", r.status, r.body);
    cr_assert_not_null(r.json, "GET /v1/accounts: not JSON: %s", r.body);
    return r;
}

/*--- Reading the JSON views ------------------------------------------------*/

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char *text = cJSON_IsNumber(v) ? NULL : cJSON_PrintUnformatted(o);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\" in %s", key, text ? text : "");
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* The account of that id in a {"accounts": [...]} document; fails if none. */
static const cJSON *account_in(const cJSON *doc, long long id)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(doc, "accounts"))
    {
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(a, "id")) && num(a, "id") == id)
            return a;
    }
    char *text = cJSON_PrintUnformatted(doc);
    cr_assert_fail("no account %lld in %s", id, text ? text : "(null)");
    return NULL;
}

/* The account's "logins" array, asserted to hold n entries. */
static const cJSON *logins_of(const cJSON *a, int n)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(a, "logins");
    char *text = cJSON_PrintUnformatted(a);
    cr_assert(cJSON_IsArray(l), "account without a \"logins\" array: %s", text);
    cr_assert_eq(cJSON_GetArraySize(l), n, "%d logins, expected %d: %s", cJSON_GetArraySize(l), n,
                 text);
    free(text);
    return l;
}

/* The holders array of o (an account or a login); asserted to be an array. */
static const cJSON *holders_of(const cJSON *o)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "holders");
    cr_assert(cJSON_IsArray(h), "no \"holders\" array");
    return h;
}

/* How many of the account's holders name login id. */
static int holders_naming(const cJSON *a, const char *id)
{
    int n = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, holders_of(a))
    {
        const char *l = str(h, "login");
        char *text = l ? NULL : cJSON_PrintUnformatted(h);
        cr_assert_not_null(l, "a holder names no login: %s", text ? text : "");
        n += strcmp(l, id) == 0;
    }
    return n;
}

/*--- Redis before and after ------------------------------------------------*/

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Appends the elements of an array reply, sorted, pairs kept together when
 * pairs (HGETALL). */
static void append_array(char **out, size_t *len, const redisReply *r, int pairs)
{
    size_t n = r->elements, step = pairs ? 2 : 1;
    char **items = calloc(n + 1, sizeof(*items));
    cr_assert_not_null(items);
    size_t k = 0;
    for (size_t i = 0; i + step - 1 < n; i += step) {
        const char *a = r->element[i]->str ? r->element[i]->str : "";
        const char *b = pairs && r->element[i + 1]->str ? r->element[i + 1]->str : "";
        cr_assert_geq(asprintf(&items[k++], "%s%s%s", a, pairs ? "=" : "", b), 0);
    }
    qsort(items, k, sizeof(*items), cmp_str);
    for (size_t i = 0; i < k; i++) {
        size_t add = strlen(items[i]) + 2;
        *out = realloc(*out, *len + add + 1);
        cr_assert_not_null(*out);
        *len += (size_t)sprintf(*out + *len, " %s", items[i]);
        free(items[i]);
    }
    free(items);
}

/* Every key of sfl in Redis with its type and its whole value, sorted, one
 * a line (caller frees). The node's registry entry (a heartbeat that changes
 * on its own) is left out: it is not what a request could change. */
static char *snapshot(void)
{
    redisReply *keys = th_redis(&redis, "KEYS sfl:*");
    cr_assert_eq(keys->type, REDIS_REPLY_ARRAY);
    size_t n = keys->elements;
    char **names = calloc(n + 1, sizeof(*names));
    cr_assert_not_null(names);
    for (size_t i = 0; i < n; i++)
        names[i] = keys->element[i]->str;
    qsort(names, n, sizeof(*names), cmp_str);
    char *out = strdup("");
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(names[i], "sfl:node:", 9) == 0)
            continue;
        redisReply *t = th_redis(&redis, "TYPE %s", names[i]);
        char type[32];
        snprintf(type, sizeof(type), "%s", t->str ? t->str : "?");
        freeReplyObject(t);
        size_t add = strlen(names[i]) + strlen(type) + 4;
        out = realloc(out, len + add + 1);
        cr_assert_not_null(out);
        len += (size_t)sprintf(out + len, "%s %s:", names[i], type);
        redisReply *v = NULL;
        int pairs = 0;
        if (strcmp(type, "hash") == 0) {
            v = th_redis(&redis, "HGETALL %s", names[i]);
            pairs = 1;
        } else if (strcmp(type, "zset") == 0) {
            v = th_redis(&redis, "ZRANGE %s 0 -1 WITHSCORES", names[i]);
            pairs = 1;
        } else if (strcmp(type, "set") == 0) {
            v = th_redis(&redis, "SMEMBERS %s", names[i]);
        } else if (strcmp(type, "list") == 0) {
            v = th_redis(&redis, "LRANGE %s 0 -1", names[i]);
        } else if (strcmp(type, "string") == 0) {
            v = th_redis(&redis, "GET %s", names[i]);
        } else if (strcmp(type, "stream") == 0) {
            v = th_redis(&redis, "XRANGE %s - +", names[i]);
        }
        if (v && v->type == REDIS_REPLY_ARRAY && strcmp(type, "stream") != 0) {
            append_array(&out, &len, v, pairs);
        } else if (v && v->type == REDIS_REPLY_STRING) {
            out = realloc(out, len + v->len + 3);
            cr_assert_not_null(out);
            len += (size_t)sprintf(out + len, " %s", v->str);
        } else if (v && v->type == REDIS_REPLY_ARRAY) {
            out = realloc(out, len + 32);
            cr_assert_not_null(out);
            len += (size_t)sprintf(out + len, " %zu entries", v->elements);
        }
        if (v)
            freeReplyObject(v);
        out = realloc(out, len + 2);
        cr_assert_not_null(out);
        out[len++] = '\n';
        out[len] = '\0';
    }
    free(names);
    freeReplyObject(keys);
    return out;
}

/* A field of a hash, or NULL (caller frees). */
static char *hget(const char *key, const char *field)
{
    redisReply *r = th_redis(&redis, "HGET %s %s", key, field);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

/*--- Running sflimit commands ----------------------------------------------*/

/* `sflimit ARGS...` (NULL-terminated after SFL_BIN's subcommand) to the end;
 * the exit code, and its stdout in *out if out (caller frees). */
static int run_cli(th_run *r, const char *const *argv, char **out)
{
    th_run_start(r, dir, argv);
    int code = th_exit_code(th_run_wait(r, 20000));
    if (out) {
        *out = th_read_file(r->out);
        if (!*out)
            *out = strdup("");
    }
    return code;
}

/*--- The busy account: two logins, checks holding slots --------------------*/

/* Account 1 "P": p-main (1 slot, provider user u1) and p-alt (2 slots, the
 * same URL as user u2). Account 3 "R": no logins, limit 2. */
#define BUSY_ACCOUNTS                                                                              \
    "[{\"id\": 1, \"name\": \"P\", \"logins\": ["                                                  \
    "{\"id\": \"p-main\", \"max_streams\": 1},"                                                    \
    " {\"id\": \"p-alt\", \"max_streams\": 2, \"search\": \"/live/u1/p1/\","                       \
    " \"replace\": \"/live/u2/p2/\"}]},"                                                           \
    " {\"id\": 3, \"name\": \"R\", \"max_streams\": 2}]"

typedef struct provider_want {
    long long u1, u2;
} provider_want;

static int provider_shows(void *arg)
{
    const provider_want *w = arg;
    return th_provider_stat(&provider, "users.u1.current") == w->u1 &&
           th_provider_stat(&provider, "users.u2.current") == w->u2;
}

/* The node with BUSY_ACCOUNTS and four 20 s checks of account 1 posted to it:
 * three run (one on p-main, two on p-alt), the fourth waits. Returns once the
 * provider has u1 at 1 and u2 at 2 open. */
static void busy_scene(void)
{
    const char *users[] = {"u1:p1:1", "u2:p2:2", NULL};
    th_provider_start(&provider, users, 20000, NULL);
    node_start(BUSY_ACCOUNTS);
    char body[1024];
    size_t k = (size_t)snprintf(body, sizeof(body), "[");
    for (int i = 0; i < 4; i++)
        k += (size_t)snprintf(body + k, sizeof(body) - k,
                              "%s{\"id\": %d, \"name\": \"C%d\", \"url\":"
                              " \"http://127.0.0.1:%d/live/u1/p1/%d.ts\", \"m3u_account\": 1}",
                              i ? ", " : "", 11 + i, 11 + i, provider.port, 11 + i);
    snprintf(body + k, sizeof(body) - k, "]");
    th_http_resp r = call("POST", "/v1/checks", body);
    cr_assert_eq(r.status, 202, "POST /v1/checks: %d %s", r.status, r.body);
    th_http_free(&r);
    /* New accounts wait out one lease TTL (3 s) first. */
    provider_want w = {1, 2};
    if (!th_until(provider_shows, &w, 20000)) {
        char *log = th_read_file(node_err);
        cr_assert_fail("the provider never had u1 at 1 and u2 at 2 open (u1 %lld, u2 %lld); "
                       "node stderr:\n%s",
                       th_provider_stat(&provider, "users.u1.current"),
                       th_provider_stat(&provider, "users.u2.current"), log ? log : "");
    }
}

/* The scene still stands: what was read meanwhile was read at one moment. */
static void busy_scene_still(void)
{
    provider_want w = {1, 2};
    cr_assert(provider_shows(&w), "the provider's counts changed while the views were read");
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
}

/* Account 1 of a {"accounts": [...]} document in the busy scene: p-main
 * 1 / 1, p-alt 2 / 2 as the provider counts u1 and u2, each holder naming
 * its login, the fourth check waiting. what: where the document came from. */
static void expect_busy_account(const cJSON *doc, const char *what)
{
    const cJSON *a = account_in(doc, 1);
    char *text = cJSON_PrintUnformatted(a);
    cr_assert_str_eq(str(a, "name"), "P", "%s: %s", what, text);
    cr_assert_eq(num(a, "max_streams"), 3, "%s: the account's limit is not 1 + 2: %s", what, text);
    cr_assert_eq(num(a, "in_use"), 3, "%s: %s", what, text);
    cr_assert_eq(num(a, "waiting"), 1, "%s: the fourth check's node is not queued: %s", what, text);

    const cJSON *logins = logins_of(a, 2);
    const char *ids[2] = {"p-main", "p-alt"};
    const char *users[2] = {"users.u1.current", "users.u2.current"};
    long long limits[2] = {1, 2};
    for (int i = 0; i < 2; i++) {
        const cJSON *l = cJSON_GetArrayItem(logins, i);
        cr_assert_str_eq(str(l, "id") ? str(l, "id") : "(none)", ids[i],
                         "%s: logins[%d] is not %s (route order): %s", what, i, ids[i], text);
        cr_assert_eq(num(l, "max_streams"), limits[i], "%s: %s's limit: %s", what, ids[i], text);
        long long at_provider = th_provider_stat(&provider, users[i]);
        cr_assert_eq(num(l, "in_use"), at_provider,
                     "%s: login %s in_use %.0f, the provider has %lld open for its user: %s", what,
                     ids[i], num(l, "in_use"), at_provider, text);
        cr_assert_eq(num(l, "recovering_ms"), 0, "%s: %s", what, text);
        cr_assert_eq(cJSON_GetArraySize(holders_of(l)), at_provider,
                     "%s: login %s lists %d holders for %lld connections: %s", what, ids[i],
                     cJSON_GetArraySize(holders_of(l)), at_provider, text);
        cr_assert_eq(holders_naming(a, ids[i]), at_provider,
                     "%s: %d of the account's holders name %s, the provider has %lld: %s", what,
                     holders_naming(a, ids[i]), ids[i], at_provider, text);
    }

    /* The account's holders: this node's, three distinct checks of ours. */
    cr_assert_eq(cJSON_GetArraySize(holders_of(a)), 3, "%s: %s", what, text);
    int seen[4] = {0};
    const cJSON *h;
    cJSON_ArrayForEach(h, holders_of(a))
    {
        cr_assert_str_eq(str(h, "node") ? str(h, "node") : "(none)", NODE_ID, "%s: %s", what, text);
        const char *s = str(h, "stream");
        int id = s ? atoi(s) : 0;
        cr_assert(id >= 11 && id <= 14, "%s: a holder of stream %s: %s", what, s ? s : "(none)",
                  text);
        cr_assert_eq(seen[id - 11]++, 0, "%s: stream %d holds two slots: %s", what, id, text);
        cr_assert_gt(num(h, "fence"), 0, "%s: %s", what, text);
    }
    free(text);
}

/* GET /v1/accounts, `sflimit status --json` and `sflimit status` with three
 * checks of an account of two logins running: each login's in_use and
 * holders are the provider's count of its user, each holder names its
 * login, the text has a line per login; the account without logins has one
 * login named after it and no login lines. */
Test(logins_api, accounts_and_status_show_each_login)
{
    busy_scene();

    th_http_resp r = get_accounts();
    expect_busy_account(r.json, "GET /v1/accounts");
    const cJSON *r3 = account_in(r.json, 3);
    const cJSON *l3 = cJSON_GetArrayItem(logins_of(r3, 1), 0);
    cr_assert_str_eq(str(l3, "id") ? str(l3, "id") : "(none)", "3",
                     "an account without logins is one login named after it");
    cr_assert_eq(num(l3, "max_streams"), 2);
    cr_assert_eq(num(l3, "in_use"), 0);
    cr_assert_eq(num(account_in(r.json, 1), "held_here"), 3, "%s", r.body);
    th_http_free(&r);

    char *json = NULL;
    const char *jargv[] = {SFL_BIN, "status", "--json", "-c", node_conf, NULL};
    int code = run_cli(&runs[0], jargv, &json);
    cr_assert_eq(code, 0, "status --json: exit %d; stderr:\n%s", code, th_run_stderr(&runs[0]));
    cJSON *doc = cJSON_Parse(json);
    cr_assert_not_null(doc, "status --json is not JSON: %s", json);
    expect_busy_account(doc, "sflimit status --json");
    cJSON_Delete(doc);
    free(json);

    char *table = NULL;
    const char *targv[] = {SFL_BIN, "status", "-c", node_conf, NULL};
    code = run_cli(&runs[1], targv, &table);
    cr_assert_eq(code, 0, "status: exit %d; stderr:\n%s", code, th_run_stderr(&runs[1]));
    busy_scene_still();

    /* Account 1's line, then a line per login in route order, then account 3. */
    char *line1 = strstr(table, "\n1 ");
    char *line3 = strstr(table, "\n3 ");
    cr_assert(line1 && line3 && line1 < line3, "no lines for accounts 1 and 3:\n%s", table);
    char *next = strchr(line1 + 1, '\n');
    const char *ids[2] = {"p-main", "p-alt"};
    long long want_use[2] = {1, 2}, want_limit[2] = {1, 2};
    for (int i = 0; i < 2; i++) {
        cr_assert_not_null(next, "the table ends after account 1:\n%s", table);
        char id[80], limit[32];
        long long use = -1;
        int got = sscanf(next + 1, "  login %79s %31s %lld", id, limit, &use);
        cr_assert_eq(got, 3, "line %d under account 1 is not \"  login ID LIMIT IN_USE\":\n%s",
                     i + 1, table);
        cr_assert_str_eq(id, ids[i], "login line %d:\n%s", i + 1, table);
        cr_assert_eq(atoll(limit), want_limit[i], "%s's limit:\n%s", ids[i], table);
        cr_assert_eq(use, want_use[i], "%s's in use:\n%s", ids[i], table);
        next = strchr(next + 1, '\n');
    }
    cr_assert_eq(next, line3, "more than two lines between account 1 and account 3:\n%s", table);
    char *after3 = strchr(line3 + 1, '\n');
    cr_assert(!after3 || strncmp(after3 + 1, "  login", 7) != 0,
              "a login line under account 3, which has no logins:\n%s", table);
    free(table);
}

/* /metrics in the same scene: sfl_login_limit and sfl_login_in_use per
 * login, labelled with account and login, beside the account's gauges. */
Test(logins_api, metrics_per_login)
{
    busy_scene();
    th_http_resp r = call("GET", "/metrics", NULL);
    cr_assert_eq(r.status, 200, "GET /metrics: %d %s", r.status, r.body);
    busy_scene_still();
    const char *lines[] = {
        "\n# TYPE sfl_login_limit gauge\n",
        "\n# TYPE sfl_login_in_use gauge\n",
        "\nsfl_login_limit{account=\"1\",login=\"p-main\"} 1\n",
        "\nsfl_login_limit{account=\"1\",login=\"p-alt\"} 2\n",
        "\nsfl_login_in_use{account=\"1\",login=\"p-main\"} 1\n",
        "\nsfl_login_in_use{account=\"1\",login=\"p-alt\"} 2\n",
        "\nsfl_login_limit{account=\"3\",login=\"3\"} 2\n",
        "\nsfl_login_in_use{account=\"3\",login=\"3\"} 0\n",
        "\nsfl_account_limit{account=\"1\"} 3\n",
        "\nsfl_account_in_use{account=\"1\"} 3\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        cr_assert(strstr(r.body, lines[i]), "/metrics lacks \"%s\":\n%s", lines[i] + 1, r.body);
    /* Exactly one sample per login: 2 + 1 of each family. */
    const char *fam[] = {"\nsfl_login_limit{", "\nsfl_login_in_use{"};
    for (int f = 0; f < 2; f++) {
        int n = 0;
        for (const char *p = r.body; (p = strstr(p, fam[f])); p++)
            n++;
        cr_assert_eq(n, 3, "%d samples of %s}, expected 3:\n%s", n, fam[f] + 1, r.body);
    }
    th_http_free(&r);
}

/*--- One login shared by two accounts --------------------------------------*/

#define SHARED_ACCOUNTS                                                                            \
    "[{\"id\": 1, \"name\": \"A\", \"logins\": [{\"id\": \"shared\", \"max_streams\": 1}]},"       \
    " {\"id\": 2, \"name\": \"B\", \"logins\": [{\"id\": \"shared\", \"max_streams\": 1}]}]"

/* Accounts 1 and 2 each have one login, "shared", not named after either:
 * a lease taken through account 1 shows on login "shared" of both accounts
 * (one login, one count), under that name in GET /v1/accounts, /metrics and
 * `sflimit status` (a login line under each: the login is not named after
 * the account). */
Test(logins_api, one_shared_login_is_named_in_every_view)
{
    node_start(SHARED_ACCOUNTS);
    th_http_resp r =
        call("POST", "/v1/leases", "{\"account\": 1, \"wait_ms\": 15000, \"label\": \"rec\"}");
    cr_assert_eq(r.status, 200, "POST /v1/leases: %d %s", r.status, r.body);
    th_http_free(&r);

    r = get_accounts();
    for (long long id = 1; id <= 2; id++) {
        const cJSON *a = account_in(r.json, id);
        const cJSON *l = cJSON_GetArrayItem(logins_of(a, 1), 0);
        cr_assert_str_eq(str(l, "id") ? str(l, "id") : "(none)", "shared",
                         "account %lld's one login is not named \"shared\": %s", id, r.body);
        cr_assert_eq(num(l, "max_streams"), 1, "%s", r.body);
        cr_assert_eq(num(l, "in_use"), 1, "account %lld: the lease on the shared login: %s", id,
                     r.body);
    }
    cr_assert_eq(holders_naming(account_in(r.json, 1), "shared"), 1, "%s", r.body);
    th_http_free(&r);

    r = call("GET", "/metrics", NULL);
    cr_assert_eq(r.status, 200);
    const char *lines[] = {
        "\nsfl_login_limit{account=\"1\",login=\"shared\"} 1\n",
        "\nsfl_login_limit{account=\"2\",login=\"shared\"} 1\n",
        "\nsfl_login_in_use{account=\"1\",login=\"shared\"} 1\n",
        "\nsfl_login_in_use{account=\"2\",login=\"shared\"} 1\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        cr_assert(strstr(r.body, lines[i]), "/metrics lacks \"%s\":\n%s", lines[i] + 1, r.body);
    th_http_free(&r);

    char *table = NULL;
    const char *argv[] = {SFL_BIN, "status", "-c", node_conf, NULL};
    int code = run_cli(&runs[0], argv, &table);
    cr_assert_eq(code, 0, "status: exit %d; stderr:\n%s", code, th_run_stderr(&runs[0]));
    for (int id = 1; id <= 2; id++) {
        char head[8], id_s[80], limit[32];
        long long use = -1;
        snprintf(head, sizeof(head), "\n%d ", id);
        const char *line = strstr(table, head);
        cr_assert_not_null(line, "no line for account %d:\n%s", id, table);
        const char *next = strchr(line + 1, '\n');
        cr_assert(next && sscanf(next + 1, "  login %79s %31s %lld", id_s, limit, &use) == 3,
                  "no login line under account %d:\n%s", id, table);
        cr_assert_str_eq(id_s, "shared", "%s", table);
        cr_assert_eq(use, 1, "%s", table);
    }
    free(table);
}

/*--- PUT /v1/accounts/{id} with logins -------------------------------------*/

#define FIVE_LOGINS                                                                                \
    "{\"name\": \"Five\", \"logins\": [{\"id\": \"f-main\", \"max_streams\": 2},"                  \
    " {\"id\": \"f-alt\", \"max_streams\": 3, \"search\": \"/live/a/SECRETPW/\","                  \
    " \"replace\": \"/live/b/SECRETPW2/\"}]}"

/* PUT FIVE_LOGINS to account 5, 200 asserted. */
static void put_five(void)
{
    th_http_resp r = call("PUT", "/v1/accounts/5", FIVE_LOGINS);
    cr_assert_eq(r.status, 200, "PUT /v1/accounts/5: %d %s", r.status, r.body);
    th_http_free(&r);
}

/* A 200 with the logins in the answer, then GET shows them (limits, none in
 * use, the sum as the account's limit), Redis holds each login's limit in
 * its own conf and a description without the rewrite; a second PUT changes
 * them again. */
Test(logins_api, put_logins_then_get_shows_them)
{
    node_start("[]");
    th_http_resp r = call("PUT", "/v1/accounts/5", FIVE_LOGINS);
    cr_assert_eq(r.status, 200, "PUT /v1/accounts/5: %d %s", r.status, r.body);
    cr_assert_eq(num(r.json, "id"), 5, "%s", r.body);
    cr_assert_eq(num(r.json, "max_streams"), 5, "%s", r.body);
    const cJSON *put = logins_of(r.json, 2);
    cr_assert_str_eq(str(cJSON_GetArrayItem(put, 0), "id"), "f-main", "%s", r.body);
    cr_assert_str_eq(str(cJSON_GetArrayItem(put, 1), "id"), "f-alt", "%s", r.body);
    cr_assert_null(strstr(r.body, "SECRETPW"), "the answer shows the rewrite: %s", r.body);
    th_http_free(&r);

    r = get_accounts();
    const cJSON *a = account_in(r.json, 5);
    cr_assert_str_eq(str(a, "name"), "Five", "%s", r.body);
    cr_assert_eq(num(a, "max_streams"), 5, "%s", r.body);
    cr_assert_eq(num(a, "in_use"), 0, "%s", r.body);
    const cJSON *logins = logins_of(a, 2);
    const char *ids[2] = {"f-main", "f-alt"};
    long long limits[2] = {2, 3};
    for (int i = 0; i < 2; i++) {
        const cJSON *l = cJSON_GetArrayItem(logins, i);
        cr_assert_str_eq(str(l, "id") ? str(l, "id") : "(none)", ids[i], "%s", r.body);
        cr_assert_eq(num(l, "max_streams"), limits[i], "%s", r.body);
        cr_assert_eq(num(l, "in_use"), 0, "%s", r.body);
        cr_assert_eq(cJSON_GetArraySize(holders_of(l)), 0, "%s", r.body);
    }
    cr_assert_null(strstr(r.body, "SECRETPW"), "GET shows the rewrite: %s", r.body);
    th_http_free(&r);

    /* Redis: the first login's conf is the account's own; the description
     * names each login's keys and never the rewrite. */
    char *max = hget("sfl:{a:5}:conf", "max_streams");
    cr_assert_str_eq(max ? max : "(none)", "2", "f-main's limit in sfl:{a:5}:conf");
    free(max);
    char *desc = hget("sfl:{a:5}:conf", "logins");
    cr_assert_not_null(desc, "sfl:{a:5}:conf has no logins field");
    cr_assert_null(strstr(desc, "SECRETPW"), "Redis holds the rewrite: %s", desc);
    cJSON *d = cJSON_Parse(desc);
    cr_assert(cJSON_IsArray(d) && cJSON_GetArraySize(d) == 2, "logins field: %s", desc);
    const char *keys = str(cJSON_GetArrayItem(d, 1), "keys");
    cr_assert_not_null(keys, "no keys of f-alt in %s", desc);
    char key[256];
    snprintf(key, sizeof(key), "%sconf", keys);
    max = hget(key, "max_streams");
    cr_assert_str_eq(max ? max : "(none)", "3", "f-alt's limit in %s", key);
    free(max);
    cJSON_Delete(d);
    free(desc);
    cr_assert_eq(th_redis_int(&redis, "SISMEMBER sfl:accounts 5"), 1);

    /* Again, other limits and a third login: GET follows. */
    r = call("PUT", "/v1/accounts/5",
             "{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1},"
             " {\"id\": \"f-alt\", \"max_streams\": 4}, {\"id\": \"f-3\", \"max_streams\": 2}]}");
    cr_assert_eq(r.status, 200, "second PUT: %d %s", r.status, r.body);
    th_http_free(&r);
    r = get_accounts();
    a = account_in(r.json, 5);
    logins = logins_of(a, 3);
    cr_assert_eq(num(a, "max_streams"), 7, "%s", r.body);
    cr_assert_str_eq(str(a, "name"), "Five", "a PUT without a name dropped it: %s", r.body);
    const char *ids2[3] = {"f-main", "f-alt", "f-3"};
    long long limits2[3] = {1, 4, 2};
    for (int i = 0; i < 3; i++) {
        const cJSON *l = cJSON_GetArrayItem(logins, i);
        cr_assert_str_eq(str(l, "id") ? str(l, "id") : "(none)", ids2[i], "%s", r.body);
        cr_assert_eq(num(l, "max_streams"), limits2[i], "%s", r.body);
    }
    th_http_free(&r);
}

/* Bad bodies get 400 naming the JSON path of what is wrong, on an account
 * with logins and on a new one, and change nothing in Redis (every key and
 * value compared). A {"max_streams"} PUT to the account this node routes
 * through two logins is a 400 too; the same PUT to a plain account is
 * served (the 400s are about the bodies, not the route). */
Test(logins_api, bad_put_400_names_the_path_and_changes_nothing)
{
    node_start("[]");
    put_five();
    static const struct {
        const char *body, *names;
    } bad[] = {
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1},"
         " {\"id\": \"bad id\", \"max_streams\": 1}]}",
         "body: logins[1].id: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1},"
         " {\"id\": \"x/y\", \"max_streams\": 1}]}",
         "body: logins[1].id: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1},"
         " {\"id\": \"\", \"max_streams\": 1}]}",
         "body: logins[1].id: "},
        {"{\"logins\": [{\"id\": "
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
         " \"max_streams\": 1}]}",
         "body: logins[0].id: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1},"
         " {\"id\": \"f-main\", \"max_streams\": 2}]}",
         "body: logins[1]"},
        {"{\"logins\": [{\"max_streams\": 1}]}", "body: logins[0].id: "},
        {"{\"logins\": [{\"id\": 7, \"max_streams\": 1}]}", "body: logins[0].id: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": -1}]}",
         "body: logins[0].max_streams: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1.5}]}",
         "body: logins[0].max_streams: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": \"1\"}]}",
         "body: logins[0].max_streams: "},
        {"{\"logins\": [{\"id\": \"f-main\"}]}", "body: logins[0].max_streams: "},
        {"{\"logins\": []}", "body: logins: "},
        {"{\"logins\": \"f-main\"}", "body: logins: "},
        {"{\"logins\": [7]}", "body: logins[0]: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1, \"search\": \"/a/\"}]}",
         "body: logins[0].replace: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1, \"replace\": \"/a/\"}]}",
         "body: logins[0].search: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1, \"search\": \"/(a/\","
         " \"replace\": \"/b/\"}]}",
         "body: logins[0].search: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1, \"search\": \"(?<=a)b\","
         " \"replace\": \"c\"}]}",
         "body: logins[0].search: "},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1, \"password\": \"x\"}]}",
         "logins[0].password"},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1}], \"max_streams\": 5}",
         "max_streams"},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1}], \"name\": \"a\\u001bb\"}",
         "name"},
        {"{\"logins\": [{\"id\": \"f-main\", \"max_streams\": 1}], \"name\": 5}", "name"},
    };
    const char *paths[] = {"/v1/accounts/5", "/v1/accounts/6"};
    char *before = snapshot();
    cr_assert(strstr(before, "sfl:{a:5}:conf hash:"), "no conf of account 5 before:\n%s", before);
    for (size_t p = 0; p < 2; p++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            th_http_resp r = call("PUT", paths[p], bad[i].body);
            const char *err = r.json ? str(r.json, "error") : NULL;
            cr_assert_eq(r.status, 400, "PUT %s %s: %d %s", paths[p], bad[i].body, r.status,
                         r.body);
            cr_assert_not_null(err, "PUT %s %s: no {\"error\"}: %s", paths[p], bad[i].body, r.body);
            cr_assert(strstr(err, bad[i].names), "PUT %s %s: error \"%s\" does not name \"%s\"",
                      paths[p], bad[i].body, err, bad[i].names);
            th_http_free(&r);
        }
    }

    /* {"max_streams"} alone would make account 5 one login behind the back
     * of its two. */
    th_http_resp r = call("PUT", "/v1/accounts/5", "{\"max_streams\": 4}");
    cr_assert_eq(r.status, 400, "max_streams-only PUT to an account of two logins: %d %s", r.status,
                 r.body);
    const char *err = r.json ? str(r.json, "error") : NULL;
    cr_assert(err && strstr(err, "logins"), "the 400 does not say it has logins: %s", r.body);
    th_http_free(&r);
    r = call("PUT", "/v1/accounts/5", "{\"max_streams\": 4, \"name\": \"Flat\"}");
    cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
    th_http_free(&r);

    char *after = snapshot();
    cr_assert_str_eq(after, before, "a refused PUT changed Redis.\nbefore:\n%s\nafter:\n%s", before,
                     after);
    free(after);
    free(before);

    r = get_accounts();
    const cJSON *a = account_in(r.json, 5);
    logins_of(a, 2);
    cr_assert_eq(num(a, "max_streams"), 5, "%s", r.body);
    cr_assert_str_eq(str(a, "name"), "Five", "%s", r.body);
    th_http_free(&r);

    /* The control: the same max_streams PUT to an account of one login. */
    r = call("PUT", "/v1/accounts/6", "{\"max_streams\": 4}");
    cr_assert_eq(r.status, 200, "PUT {\"max_streams\": 4} to plain account 6: %d %s", r.status,
                 r.body);
    th_http_free(&r);
    char *max = hget("sfl:{a:6}:conf", "max_streams");
    cr_assert_str_eq(max ? max : "(none)", "4");
    free(max);
}

/*--- sflimit accounts set --------------------------------------------------*/

/* `sflimit accounts set ID MAX` on an account whose conf in Redis describes
 * logins (account 5, two logins) or a group (account 2, whose one login
 * lives under account 1's keys): exit 2, a message saying it has logins, and
 * Redis unchanged. A plain account is set (exit 0). */
Test(logins_api, accounts_set_refused_on_account_with_logins)
{
    node_start("[]");
    put_five();
    th_http_resp r =
        call("PUT", "/v1/accounts/1", "{\"logins\": [{\"id\": \"shared\", \"max_streams\": 1}]}");
    cr_assert_eq(r.status, 200, "PUT 1: %d %s", r.status, r.body);
    th_http_free(&r);
    r = call("PUT", "/v1/accounts/2", "{\"logins\": [{\"id\": \"shared\", \"max_streams\": 1}]}");
    cr_assert_eq(r.status, 200, "PUT 2: %d %s", r.status, r.body);
    th_http_free(&r);
    char *group = hget("sfl:{a:2}:conf", "group");
    cr_assert_str_eq(group ? group : "(none)", "1",
                     "account 2's conf does not name group 1 (its keys are account 1's)");
    free(group);

    char *before = snapshot();
    const char *ids[2] = {"5", "2"};
    for (int i = 0; i < 2; i++) {
        const char *argv[] = {SFL_BIN, "accounts", "set", ids[i], "9", "--redis", redis.url, NULL};
        int code = run_cli(&runs[i], argv, NULL);
        char *err = th_read_file(runs[i].err);
        cr_assert_eq(code, 2, "accounts set %s 9: exit %d; stderr:\n%s", ids[i], code,
                     err ? err : "");
        cr_assert(err && strstr(err, "has logins"), "accounts set %s 9: stderr:\n%s", ids[i],
                  err ? err : "");
        free(err);
    }
    char *after = snapshot();
    cr_assert_str_eq(after, before,
                     "a refused accounts set changed Redis.\nbefore:\n%s\nafter:\n%s", before,
                     after);
    free(after);
    free(before);

    const char *argv[] = {SFL_BIN, "accounts", "set", "9", "4", "--redis", redis.url, NULL};
    int code = run_cli(&runs[2], argv, NULL);
    cr_assert_eq(code, 0, "accounts set 9 4 (no logins): exit %d; stderr:\n%s", code,
                 th_run_stderr(&runs[2]));
    cr_assert_eq(th_account_limit(&redis, 9), 4);
}

/* Account 1's one login is "shared", which account 2 uses too: setting
 * account 1 to 9 as if it were one login named after itself would set the
 * limit of the login both accounts share. Refused like any account with
 * logins: exit 2, Redis unchanged. */
Test(logins_api, accounts_set_refused_on_account_whose_one_login_is_shared)
{
    node_start("[]");
    th_http_resp r =
        call("PUT", "/v1/accounts/1", "{\"logins\": [{\"id\": \"shared\", \"max_streams\": 1}]}");
    cr_assert_eq(r.status, 200, "PUT 1: %d %s", r.status, r.body);
    th_http_free(&r);
    r = call("PUT", "/v1/accounts/2", "{\"logins\": [{\"id\": \"shared\", \"max_streams\": 1}]}");
    cr_assert_eq(r.status, 200, "PUT 2: %d %s", r.status, r.body);
    th_http_free(&r);

    char *before = snapshot();
    const char *argv[] = {SFL_BIN, "accounts", "set", "1", "9", "--redis", redis.url, NULL};
    int code = run_cli(&runs[0], argv, NULL);
    char *after = snapshot();
    cr_assert_eq(code, 2,
                 "accounts set 1 9: exit %d, and Redis went from\n%s\nto\n%s"
                 "(the limit of login \"shared\", account 2's too, is now %lld)",
                 code, before, after, th_account_limit(&redis, 1));
    cr_assert_str_eq(after, before, "a refused accounts set changed Redis");
    free(after);
    free(before);
}

/*--- The fence: a node not given the logins --------------------------------*/

/* A streams file of n streams of account, ids from first, each held by the
 * provider hold_ms, as user u1. */
static void u1_streams(const char *name, long long first, int n, long long account, int hold_ms,
                       char *path, size_t len)
{
    char text[4096];
    size_t k = (size_t)snprintf(text, sizeof(text), "[");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(text + k, sizeof(text) - k,
                              "%s\n {\"id\": %lld, \"name\": \"S%lld\", \"url\":"
                              " \"http://127.0.0.1:%d/live/u1/p1/%lld.ts?hold_ms=%d\","
                              " \"m3u_account\": %lld}",
                              i ? "," : "", first + i, first + i, provider.port, first + i, hold_ms,
                              account);
    snprintf(text + k, sizeof(text) - k, "\n]\n");
    th_write_file(dir, name, text, path, len);
}

typedef struct field_is {
    const char *key, *field, *want;
} field_is;

static int field_equals(void *arg)
{
    const field_is *f = arg;
    char *v = hget(f->key, f->field);
    int yes = v && strcmp(v, f->want) == 0;
    free(v);
    return yes;
}

/* Process A has accounts 1 and 2 sharing login "shared" (1 slot, provider
 * user u1) and checks three streams of account 2, 1.5 s each. Once A has
 * written the accounts (account 2's conf names group 1), process B starts
 * on the same Redis with b_accounts (account 2 without its logins, or no
 * accounts at all) and checks three streams of account 2 as the same
 * provider user. B's asks go to account 2's own keys, which Redis must
 * refuse: every result of B is Error, A's are OK, the provider never sees
 * two connections of u1 nor refuses one, and account 2's conf still names
 * its group when both are done. */
static void fence_scene(const char *b_accounts)
{
    const char *users[] = {"u1:p1:1", NULL};
    th_provider_start(&provider, users, 1500, NULL);
    char conf_a[256], conf_b[256], streams_a[256], streams_b[256];
    th_write_config(
        dir,
        &(th_config){
            .redis_url = redis.url, .node_id = "a", .accounts = SHARED_ACCOUNTS, .file = "a.json"},
        conf_a, sizeof(conf_a));
    th_write_config(dir,
                    &(th_config){.redis_url = redis.url,
                                 .node_id = "b",
                                 .accounts = b_accounts,
                                 .acquire_timeout = 10,
                                 .file = "b.json"},
                    conf_b, sizeof(conf_b));
    u1_streams("a-streams.json", 21, 3, 2, 1500, streams_a, sizeof(streams_a));
    u1_streams("b-streams.json", 31, 3, 2, 1500, streams_b, sizeof(streams_b));

    th_check_start(&runs[0], dir, conf_a, streams_a, NULL);
    field_is grouped = {"sfl:{a:2}:conf", "group", "1"};
    cr_assert(th_until(field_equals, &grouped, 15000),
              "A never wrote group 1 into account 2's conf; A's stderr:\n%s",
              th_run_stderr(&runs[0]));
    th_check_start(&runs[1], dir, conf_b, streams_b, NULL);

    int code_b = th_exit_code(th_run_wait(&runs[1], 60000));
    int code_a = th_exit_code(th_run_wait(&runs[0], 60000));
    cr_assert_eq(code_a, 0, "A: exit %d; stderr:\n%s", code_a, th_run_stderr(&runs[0]));

    long long violations = th_provider_stat(&provider, "violations");
    long long max_seen = th_provider_stat(&provider, "users.u1.max_seen");
    long long refused = th_provider_stat(&provider, "refused");
    char *group = hget("sfl:{a:2}:conf", "group");
    th_results ra, rb;
    th_results_read(&ra, runs[0].out);
    th_results_read(&rb, runs[1].out);
    char *out_b = th_read_file(runs[1].out);
    cr_assert_eq(violations, 0,
                 "the provider saw %lld violations (requests over u1's one connection): B "
                 "checked account 2 beside A's checks of the shared login. Account 2's conf "
                 "names group %s now.\nB's results:\n%s\nB's stderr:\n%s",
                 violations, group ? group : "(none)", out_b ? out_b : "", th_run_stderr(&runs[1]));
    cr_assert_eq(max_seen, 1, "u1 had %lld connections at once", max_seen);
    cr_assert_eq(refused, 0, "the provider refused %lld requests", refused);
    cr_assert_eq(rb.n, 3, "B: %d results for 3 streams (exit %d); stderr:\n%s", rb.n, code_b,
                 th_run_stderr(&runs[1]));
    for (long long id = 31; id <= 33; id++) {
        cJSON *o = th_result_for(&rb, id);
        const char *st = th_str_of(o, "status"), *e = th_str_of(o, "error");
        cr_assert(th_has_status(o, "Error"),
                  "B's stream %lld: status %s (error %s), not Error: B used account 2's own "
                  "keys after they moved to account 1's.\nB's results:\n%s",
                  id, st ? st : "null", e ? e : "null", out_b ? out_b : "");
    }
    free(out_b);
    cr_assert_eq(ra.n, 3, "A: %d results", ra.n);
    for (long long id = 21; id <= 23; id++) {
        cJSON *o = th_result_for(&ra, id);
        cr_assert(th_has_status(o, "OK"), "A's stream %lld: %s (error %s)", id,
                  th_str_of(o, "status"), th_str_of(o, "error") ? th_str_of(o, "error") : "null");
        cr_assert_str_eq(th_str_of(o, "login") ? th_str_of(o, "login") : "(none)", "shared");
    }
    cr_assert_str_eq(group ? group : "(none)", "1",
                     "account 2's conf no longer names group 1 after B ran");
    free(group);
    th_results_free(&ra);
    th_results_free(&rb);
}

/* B's config has account 2 as it was before logins: one login, its own
 * limit. B writes that config to Redis when it starts, as every process
 * does; it must not take the fence down with it. */
Test(logins_api, node_without_the_logins_is_fenced_off)
{
    fence_scene("[{\"id\": 2, \"name\": \"B\", \"max_streams\": 1}]");
}

/* B has no accounts in its config at all: it writes nothing and reads the
 * limit from Redis, where account 2's conf says its keys moved. */
Test(logins_api, node_without_accounts_is_fenced_off)
{
    fence_scene("[]");
}

/*--- Fairness across a shared login ----------------------------------------*/

/* The ticket of node in a waiters ZSET: its score, or -1 when not queued. */
static double ticket_score(const char *key, const char *node)
{
    redisReply *r = th_redis(&redis, "ZRANGE %s 0 -1 WITHSCORES", key);
    double score = -1;
    size_t len = strlen(node);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strncmp(r->element[i]->str, node, len) == 0 && r->element[i]->str[len] == ':')
            score = strtod(r->element[i + 1]->str, NULL);
    freeReplyObject(r);
    return score;
}

typedef struct queued {
    const char *key, *node;
} queued;

static int is_queued(void *arg)
{
    const queued *q = arg;
    return ticket_score(q->key, q->node) >= 0;
}

static int file_exists(void *arg)
{
    return access((const char *)arg, F_OK) == 0;
}

/* Accounts 1 and 2 share login "s" (1 slot, provider user u1). Process h
 * checks a stream of account 1 that holds the slot until the test lets it
 * go. Meanwhile four processes queue, one at a time, each waiting for the
 * one before to have its ticket in Redis: w1 (account 2), w2 (account 1),
 * w3 (account 2), w4 (account 1), each with one 300 ms stream. When h ends,
 * the slots go in queue order whichever account asks: by fencing token and
 * by start time w1 < w2 < w3 < w4, and never two at once. */
Test(logins_api, shared_login_slot_goes_to_the_oldest_ticket_of_either_account)
{
    const char *users[] = {"u1:p1:1", NULL};
    th_provider_start(&provider, users, 300, NULL);
    const char *accounts =
        "[{\"id\": 1, \"name\": \"A\", \"logins\": [{\"id\": \"s\", \"max_streams\": 1}]},"
        " {\"id\": 2, \"name\": \"B\", \"logins\": [{\"id\": \"s\", \"max_streams\": 1}]}]";
    char go[200], holding[200], cmd[1024], conf[5][256], streams[5][256];
    snprintf(go, sizeof(go), "%s/go", dir);
    snprintf(holding, sizeof(holding), "%s/holding", dir);
    /* h's check: one provider connection, kept until the file go exists. */
    snprintf(cmd, sizeof(cmd),
             "[\"sh\", \"-c\", \"curl -sS -o /dev/null \\\"$1\\\" & p=$!; : > \\\"$2\\\";"
             " while [ ! -e \\\"$3\\\" ]; do sleep 0.05; done; kill $p; wait $p; exit 0\","
             " \"sh\", \"{url}\", \"%s\", \"%s\"]",
             holding, go);
    const char *nodes[5] = {"h", "w1", "w2", "w3", "w4"};
    const long long acc[5] = {1, 2, 1, 2, 1};
    for (int i = 0; i < 5; i++) {
        char file[32];
        snprintf(file, sizeof(file), "%s.json", nodes[i]);
        th_write_config(dir,
                        &(th_config){.redis_url = redis.url,
                                     .node_id = nodes[i],
                                     .accounts = accounts,
                                     .command = i == 0 ? cmd : NULL,
                                     .file = file},
                        conf[i], sizeof(conf[i]));
        snprintf(file, sizeof(file), "%s-streams.json", nodes[i]);
        u1_streams(file, 40 + i, 1, acc[i], i == 0 ? 60000 : 300, streams[i], sizeof(streams[i]));
    }

    th_check_start(&runs[0], dir, conf[0], streams[0], NULL);
    cr_assert(th_until(file_exists, holding, 20000), "h's check never started; stderr:\n%s",
              th_run_stderr(&runs[0]));
    double last = 0;
    for (int i = 1; i < 5; i++) {
        th_check_start(&runs[i], dir, conf[i], streams[i], NULL);
        queued q = {acc[i] == 1 ? "sfl:{a:1}:waiters" : "sfl:{a:1}:a:2:waiters", nodes[i]};
        cr_assert(th_until(is_queued, &q, 15000), "%s never queued a ticket in %s; stderr:\n%s",
                  nodes[i], q.key, th_run_stderr(&runs[i]));
        double score = ticket_score(q.key, nodes[i]);
        cr_assert_gt(score, last, "%s's ticket is not behind the one before", nodes[i]);
        last = score;
        usleep(200000); /* on purpose: tickets hundreds of ms apart, not just in order */
    }
    cr_assert_eq(th_provider_stat(&provider, "users.u1.current"), 1,
                 "h no longer holds the login: the waiters queued too late");
    FILE *f = fopen(go, "w");
    cr_assert_not_null(f);
    fclose(f);

    long long fence[5], start[5];
    for (int i = 0; i < 5; i++) {
        int code = th_exit_code(th_run_wait(&runs[i], 60000));
        cr_assert_eq(code, 0, "%s: exit %d; stderr:\n%s", nodes[i], code, th_run_stderr(&runs[i]));
        th_results r;
        th_results_read(&r, runs[i].out);
        cr_assert_eq(r.n, 1, "%s: %d results", nodes[i], r.n);
        cr_assert(th_has_status(r.v[0], "OK"), "%s: status %s (error %s)", nodes[i],
                  th_str_of(r.v[0], "status"),
                  th_str_of(r.v[0], "error") ? th_str_of(r.v[0], "error") : "null");
        cr_assert_str_eq(th_str_of(r.v[0], "login") ? th_str_of(r.v[0], "login") : "(none)", "s");
        fence[i] = (long long)th_num_of(r.v[0], "fence");
        struct tm tm = {0};
        int ms = 0;
        const char *at = th_str_of(r.v[0], "started_at");
        cr_assert(at && sscanf(at, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) == 7,
                  "%s: started_at %s", nodes[i], at ? at : "null");
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        start[i] = (long long)timegm(&tm) * 1000 + ms;
        th_results_free(&r);
    }
    char order[512];
    size_t k = 0;
    for (int i = 0; i < 5; i++)
        k += (size_t)snprintf(order + k, sizeof(order) - k,
                              "%s (account %lld): fence %lld, +%lld ms\n", nodes[i], acc[i],
                              fence[i], start[i] - start[0]);
    for (int i = 1; i < 5; i++) {
        cr_assert_gt(fence[i], fence[i - 1], "%s got the slot before %s, which queued first:\n%s",
                     nodes[i], nodes[i - 1], order);
        cr_assert_gt(start[i], start[i - 1], "%s started before %s, which queued first:\n%s",
                     nodes[i], nodes[i - 1], order);
    }
    cr_assert_eq(th_provider_stat(&provider, "violations"), 0);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.max_seen"), 1,
                 "two checks of the shared login at once:\n%s", order);
    cr_assert_eq(th_provider_stat(&provider, "users.u1.requests"), 5);
}
