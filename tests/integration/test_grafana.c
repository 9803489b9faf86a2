/* test_grafana.c - deploy/grafana/sfl.json, the Grafana dashboard of the
 * nodes' Prometheus metrics, against a live node's GET /metrics: every
 * sfl_ metric its queries name must be one the node serves (a histogram's
 * _bucket/_sum/_count included), every label they group or select by one
 * the node's samples carry (or Prometheus' own: instance, job), every panel
 * must query through the dashboard's Prometheus datasource variable; and
 * where promtool is installed, every query must parse as PromQL. A renamed
 * metric, or a panel written for one that never existed, fails here. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DASHBOARD SFL_SOURCE_DIR "/deploy/grafana/sfl.json"
#define MAX_NAMES 256

static sfl_test_redis redis;
static char dir[128];
static pid_t node_pid;
static int node_port;

static void setup(void)
{
    node_pid = 0;
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    if (node_pid > 0 && waitpid(node_pid, NULL, WNOHANG) == 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
    th_redis_stop(&redis);
}

TestSuite(grafana, .init = setup, .fini = teardown, .timeout = 120);

/*--- What the node serves --------------------------------------------------*/

typedef struct served {
    char names[MAX_NAMES][80]; /* sample names and families */
    int n;
    char labels[64][32];
    int nlabels;
} served;

static void add_name(served *s, const char *name, size_t len)
{
    if (len >= sizeof(s->names[0]) || s->n >= MAX_NAMES)
        return;
    for (int i = 0; i < s->n; i++)
        if (strlen(s->names[i]) == len && strncmp(s->names[i], name, len) == 0)
            return;
    memcpy(s->names[s->n], name, len);
    s->names[s->n++][len] = '\0';
}

static void add_label(served *s, const char *label, size_t len)
{
    if (len >= sizeof(s->labels[0]) || s->nlabels >= 64)
        return;
    for (int i = 0; i < s->nlabels; i++)
        if (strlen(s->labels[i]) == len && strncmp(s->labels[i], label, len) == 0)
            return;
    memcpy(s->labels[s->nlabels], label, len);
    s->labels[s->nlabels++][len] = '\0';
}

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* The families (# TYPE lines; a histogram's series names too), the sample
 * names and the label names of a /metrics text. */
static void read_metrics(const char *text, served *s)
{
    memset(s, 0, sizeof(*s));
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            const char *name = line + 7;
            size_t len = 0;
            while (is_name_char(name[len]))
                len++;
            add_name(s, name, len);
            if (strncmp(name + len, " histogram", 10) == 0) {
                static const char *const parts[] = {"_bucket", "_sum", "_count"};
                for (int i = 0; i < 3; i++) {
                    char full[96];
                    int n = snprintf(full, sizeof(full), "%.*s%s", (int)len, name, parts[i]);
                    add_name(s, full, (size_t)n);
                }
            }
            continue;
        }
        if (*line == '#' || *line == '\n')
            continue;
        size_t len = 0;
        while (is_name_char(line[len]))
            len++;
        add_name(s, line, len);
        const char *p = line + len;
        if (*p != '{')
            continue;
        for (p++; *p && *p != '}' && *p != '\n';) {
            size_t l = 0;
            while (is_name_char(p[l]))
                l++;
            add_label(s, p, l);
            p = strchr(p, '"');
            p = p ? strchr(p + 1, '"') : NULL; /* values here carry no quotes */
            if (!p)
                break;
            p++;
            if (*p == ',')
                p++;
        }
    }
}

static int has_name(const served *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return 1;
    return 0;
}

static int has_label(const served *s, const char *label)
{
    if (strcmp(label, "instance") == 0 || strcmp(label, "job") == 0)
        return 1; /* Prometheus adds them to every scraped series */
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i], label) == 0)
            return 1;
    return 0;
}

/*--- What a query names ----------------------------------------------------*/

/* Appends to bad (" name" each) the sfl_ metrics expr names that s does not
 * serve, and the labels it groups by (by (...)) or selects on ({l=~...})
 * that no sample carries. Returns how many sfl_ names expr has. */
static int check_expr(const served *s, const char *expr, char *bad, size_t len)
{
    int names = 0;
    for (const char *p = expr; *p; p++) {
        if ((p == expr || !is_name_char(p[-1])) && strncmp(p, "sfl_", 4) == 0) {
            char name[96];
            size_t l = 0;
            while (is_name_char(p[l]) && l + 1 < sizeof(name))
                l++;
            snprintf(name, sizeof(name), "%.*s", (int)l, p);
            names++;
            if (!has_name(s, name))
                snprintf(bad + strlen(bad), len - strlen(bad), " %s", name);
            p += l - 1;
            continue;
        }
        /* A label list: "by (a, b)" or a selector "{a=~"...", b="..."}". */
        int by = strncmp(p, "by (", 4) == 0 && (p == expr || !is_name_char(p[-1]));
        if (!by && *p != '{')
            continue;
        const char *q = p + (by ? 4 : 1);
        while (*q && *q != (by ? ')' : '}')) {
            while (*q == ' ' || *q == ',')
                q++;
            size_t l = 0;
            while (is_name_char(q[l]))
                l++;
            if (l == 0)
                break;
            char label[64];
            snprintf(label, sizeof(label), "%.*s", (int)l, q);
            if (!has_label(s, label))
                snprintf(bad + strlen(bad), len - strlen(bad), " label:%s", label);
            q += l;
            if (!by) { /* skip the operator and the quoted value */
                q = strchr(q, '"');
                q = q ? strchr(q + 1, '"') : NULL;
                if (!q)
                    break;
                q++;
            }
        }
        p = *q ? q : q - 1;
    }
    return names;
}

/* Every query of the dashboard: panels' targets (rows' panels included) and
 * the templating variables' queries, into out (at most max). */
static int collect_queries(const cJSON *dash, const char **out, int max)
{
    int n = 0;
    const cJSON *p, *t, *inner;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(dash, "panels"))
    {
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(p, "targets"))
        {
            const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(t, "expr"));
            if (e && n < max)
                out[n++] = e;
        }
        cJSON_ArrayForEach(inner, cJSON_GetObjectItem(p, "panels"))
        {
            cJSON_ArrayForEach(t, cJSON_GetObjectItem(inner, "targets"))
            {
                const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(t, "expr"));
                if (e && n < max)
                    out[n++] = e;
            }
        }
    }
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(cJSON_GetObjectItem(dash, "templating"), "list"))
    {
        const char *def = cJSON_GetStringValue(cJSON_GetObjectItem(t, "definition"));
        if (def && n < max)
            out[n++] = def;
    }
    return n;
}

static cJSON *load_dashboard(void)
{
    char *text = th_read_file(DASHBOARD);
    cr_assert_not_null(text, "cannot read %s", DASHBOARD);
    cJSON *dash = cJSON_Parse(text);
    cr_assert_not_null(dash, "%s is not JSON (near: %.60s)", DASHBOARD, cJSON_GetErrorPtr());
    free(text);
    return dash;
}

/*--- The node --------------------------------------------------------------*/

/* A node with an account of two logins and one finished check, so that
 * every family of /metrics has samples and labels. */
static char *live_metrics(void)
{
    th_account(&redis, 44, 2);
    for (int attempt = 0; attempt < 5 && !node_pid; attempt++) {
        char text[1024], config[256], err[256];
        node_port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"graf1\", \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\"},\n"
                 " \"check\": {\"command\": [\"true\"], \"parser\": \"none\"}}\n",
                 redis.url, node_port);
        th_write_file(dir, "graf1.json", text, config, sizeof(config));
        snprintf(err, sizeof(err), "%s/graf1-%d.err", dir, attempt);
        node_pid = th_node_start(config, node_port, err, NULL, NULL);
    }
    cr_assert_gt(node_pid, 0, "the node never got a port");
    th_http_resp r = {0};
    cr_assert_eq(
        th_http(node_port, NULL, "PUT", "/v1/accounts/45",
                "{\"name\": \"Two\", \"logins\": [{\"id\": \"g-main\", \"max_streams\": 1},"
                " {\"id\": \"g-alt\", \"max_streams\": 2}]}",
                &r),
        0);
    cr_assert_eq(r.status, 200, "PUT /v1/accounts/45: %d %s", r.status, r.body);
    th_http_free(&r);
    cr_assert_eq(th_http(node_port, NULL, "POST", "/v1/checks",
                         "[{\"id\": 1, \"url\": \"http://127.0.0.1:9/1.ts\", \"m3u_account\": 44}]",
                         &r),
                 0);
    cr_assert_eq(r.status, 202, "POST /v1/checks: %d %s", r.status, r.body);
    th_http_free(&r);
    int64_t until = th_now_ms() + 20000;
    for (;;) {
        cr_assert_eq(th_http(node_port, NULL, "GET", "/metrics", NULL, &r), 0);
        if (strstr(r.body, "sfl_checks_total{status=\"OK\"} 1"))
            break;
        cr_assert_lt(th_now_ms(), until, "the check never finished:\n%s", r.body);
        th_http_free(&r);
        usleep(100000);
    }
    char *body = strdup(r.body);
    th_http_free(&r);
    return body;
}

/*--- Tests -----------------------------------------------------------------*/

Test(grafana, names_only_metrics_and_labels_the_node_serves)
{
    cJSON *dash = load_dashboard();
    char *text = live_metrics();
    served s;
    read_metrics(text, &s);
    cr_assert(has_name(&s, "sfl_redis_up") && has_label(&s, "login") && has_label(&s, "le"),
              "the /metrics reader missed what the node serves:\n%s", text);

    /* The checker itself rejects what the node does not serve. */
    char bad[4096] = "";
    check_expr(&s, "sum by (nolabel) (rate(sfl_no_such_metric_total[5m]))", bad, sizeof(bad));
    cr_assert_str_eq(bad, " label:nolabel sfl_no_such_metric_total", "the checker: %s", bad);
    bad[0] = '\0';

    const char *queries[128];
    int nq = collect_queries(dash, queries, 128), names = 0;
    for (int i = 0; i < nq; i++)
        names += check_expr(&s, queries[i], bad, sizeof(bad));
    cr_assert_str_eq(bad, "", "%s names what GET /metrics does not serve:%s", DASHBOARD, bad);
    cr_assert_geq(nq, 15, "only %d queries in %s", nq, DASHBOARD);
    cr_assert_geq(names, nq, "queries without an sfl_ metric");

    /* Every family the issue asks for has a panel. */
    static const char *const wanted[] = {"sfl_leases_held",
                                         "sfl_account_in_use",
                                         "sfl_account_limit",
                                         "sfl_login_in_use",
                                         "sfl_login_effective_limit",
                                         "sfl_lease_wait_seconds_bucket",
                                         "sfl_checks_total",
                                         "sfl_leases_denied_total",
                                         "sfl_leases_lost_total",
                                         "sfl_queue_depth",
                                         "sfl_redis_up",
                                         NULL};
    for (int w = 0; wanted[w]; w++) {
        int found = 0;
        for (int i = 0; i < nq && !found; i++)
            found = strstr(queries[i], wanted[w]) != NULL;
        cr_assert(found, "no panel queries %s", wanted[w]);
    }

    /* Panels query through the datasource variable, which picks Prometheus. */
    const cJSON *v, *p, *t;
    int ds_var = 0, panels = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(cJSON_GetObjectItem(dash, "templating"), "list"))
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(v, "type"));
        const char *q = cJSON_GetStringValue(cJSON_GetObjectItem(v, "query"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(v, "name"));
        ds_var |= type && q && name && strcmp(type, "datasource") == 0 &&
                  strcmp(q, "prometheus") == 0 && strcmp(name, "datasource") == 0;
    }
    cr_assert(ds_var, "no \"datasource\" variable of type datasource, query prometheus");
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(dash, "panels"))
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(p, "type"));
        if (!type || strcmp(type, "row") == 0)
            continue;
        panels++;
        const cJSON *grid = cJSON_GetObjectItem(p, "gridPos");
        cr_assert_leq(th_num_of(grid, "x") + th_num_of(grid, "w"), 24, "panel %s overflows",
                      th_str_of(p, "title"));
        cr_assert_gt(cJSON_GetArraySize(cJSON_GetObjectItem(p, "targets")), 0, "panel %s: no query",
                     th_str_of(p, "title"));
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(p, "targets"))
        {
            const char *uid = th_str_of(cJSON_GetObjectItem(t, "datasource"), "uid");
            cr_assert(uid && strcmp(uid, "${datasource}") == 0,
                      "panel %s: a query not through ${datasource}", th_str_of(p, "title"));
        }
    }
    cr_assert_geq(panels, 10, "only %d panels", panels);
    fprintf(stderr, "grafana: %d panels, %d queries, %d metric names, all served\n", panels, nq,
            names);
    free(text);
    cJSON_Delete(dash);
}

/* promtool parses each query as a recording rule's expression (Grafana's
 * variables replaced by what they stand for). Skipped without promtool,
 * unless SFL_REQUIRE_PROMTOOL=1. */
Test(grafana, every_query_parses_as_promql)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        const char *req = getenv("SFL_REQUIRE_PROMTOOL");
        if (req && strcmp(req, "1") == 0)
            cr_assert_fail("promtool not installed and SFL_REQUIRE_PROMTOOL=1");
        cr_skip_test("promtool is not installed (apt-get install prometheus)");
    }
    cJSON *dash = load_dashboard();
    const char *queries[128];
    int nq = collect_queries(dash, queries, 128), rules = 0;
    char path[256], out[256], cmd[700];
    snprintf(path, sizeof(path), "%s/rules.yml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "groups:\n  - name: sfl-grafana\n    rules:\n");
    for (int i = 0; i < nq; i++) {
        if (strncmp(queries[i], "label_values(", 13) == 0)
            continue; /* Grafana's, not PromQL */
        char expr[1024] = "";
        for (const char *p = queries[i]; *p && strlen(expr) + 8 < sizeof(expr);) {
            static const char *const vars[][2] = {
                {"$__rate_interval", "5m"}, {"$account", ".*"}, {"$login", ".*"}};
            size_t k = 0;
            for (; k < 3; k++)
                if (strncmp(p, vars[k][0], strlen(vars[k][0])) == 0)
                    break;
            if (k < 3) {
                strcat(expr, vars[k][1]);
                p += strlen(vars[k][0]);
            } else {
                strncat(expr, p++, 1);
            }
        }
        cr_assert_null(strchr(expr, '$'), "a Grafana variable left in %s", expr);
        cr_assert_null(strchr(expr, '\''), "a quote the rules file cannot carry: %s", expr);
        fprintf(f, "      - record: sfl:grafana_query_%d\n        expr: '%s'\n", i, expr);
        rules++;
    }
    fclose(f);
    snprintf(out, sizeof(out), "%s/promtool.out", dir);
    snprintf(cmd, sizeof(cmd), "promtool check rules %s >%s 2>&1", path, out);
    int st = system(cmd);
    char *said = th_read_file(out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool check rules: %s", said);
    cr_assert_not_null(strstr(said, "SUCCESS"), "promtool: %s", said);
    fprintf(stderr, "grafana: promtool parsed %d queries\n", rules);
    free(said);
    cJSON_Delete(dash);
}
