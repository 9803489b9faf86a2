/* test_dashboard_history.c - what the dashboard shows of history (issue
 * #18), rendered by headless Chromium:
 *
 * - the charts are drawn from the JSON of GET /v1/history alone: given a
 *   document in the spec's format (a fixture: notes/history_spec.md), every
 *   series of every chart carries the JSON's values (data-values) and its
 *   vertices sit where the values put them on the chart's scale (data-plot,
 *   data-ymax); nulls and unset limits are gaps, never zeros;
 * - holders carry their stream's name, read by the node from
 *   <ns>:stream:names, which every batch writes (a real node and batch);
 * - against a real node: history written by hand into Redis in the spec's
 *   format shows in the login's chart with the values /v1/history gives,
 *   and a stream's list (written by hand too) in the stream view; and a
 *   node's own history, after a real batch, in its chart.
 *
 * Needs /usr/bin/chromium (browser.h): skips without it unless
 * SFL_REQUIRE_CHROMIUM=1. Screenshot: build/dashboard-history.png. */
#include "browser.h"
#include "harness.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOGIN_ACCOUNT 47 /* one login, named after it: "47" */

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

TestSuite(dashboard_history, .init = setup, .fini = teardown, .timeout = 240);

/* A node without a token, with extra config members (NULL: none), whose
 * leases outlive a Chromium run (30 s TTL): the test's sidecar leases need
 * no renewal while the page renders. */
static void node_start_with(const char *extra)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char text[1024], config[256], err[256];
        node_port = th_free_port();
        snprintf(text, sizeof(text),
                 "{\"node_id\": \"hist1\", \"redis\": {\"url\": \"%s\"},\n"
                 " \"http\": {\"listen\": \"127.0.0.1:%d\"},\n"
                 " \"lease\": {\"ttl_ms\": 30000, \"renew_ms\": 10000, \"safety_ms\": 1000},\n"
                 " \"check\": {\"command\": [\"true\"], \"parser\": \"none\"}%s%s}\n",
                 redis.url, node_port, extra ? ", " : "", extra ? extra : "");
        th_write_file(dir, "hist1.json", text, config, sizeof(config));
        snprintf(err, sizeof(err), "%s/hist1-%d.err", dir, attempt);
        node_pid = th_node_start(config, node_port, err, NULL, NULL);
        if (node_pid)
            return;
    }
    cr_assert_fail("the node never got a port");
}

static void node_start(void)
{
    node_start_with(NULL);
}

static th_http_resp call(const char *method, const char *path, const char *body)
{
    th_http_resp r;
    cr_assert_eq(th_http(node_port, NULL, method, path, body, &r), 0, "%s %s: no answer", method,
                 path);
    return r;
}

/* An account in Redis before the node starts (th_account: no recovery
 * window to wait out, as a node's first account has), with a name. */
static void account(long long id, long long max_streams, const char *name)
{
    th_account(&redis, id, max_streams);
    freeReplyObject(th_redis(&redis, "HSET sfl:{a:%lld}:conf name %s", id, name));
}

static void take_lease(long long account, const char *label)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"account\": %lld, \"wait_ms\": 15000, \"label\": \"%s\"}",
             account, label);
    th_http_resp r = call("POST", "/v1/leases", body);
    cr_assert_eq(r.status, 200, "POST /v1/leases %s: %d %s", body, r.status, r.body);
    th_http_free(&r);
}

/* Chromium's DOM of url (file:// or the node's page). Caller frees. */
static char *render(const char *url, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    th_chromium_run(url, "--dump-dom", path, dir, 8000, NULL, NULL);
    char *dom = th_read_file(path);
    cr_assert_not_null(dom, "chromium wrote no DOM");
    return dom;
}

static void has(const char *where, const char *what, const char *why)
{
    cr_assert(strstr(where, what), "%s: \"%s\" not in:\n%s", why, what, where);
}

/*--- A chart against the JSON it was drawn from ----------------------------*/

/* A value of the JSON as the page's data-values writes it: "" for null. */
static int same_value(const char *text, size_t len, const cJSON *v)
{
    if (cJSON_IsNull(v) || !v)
        return len == 0;
    if (len == 0 || !cJSON_IsNumber(v))
        return 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "%.*s", (int)len, text);
    return fabs(strtod(buf, NULL) - v->valuedouble) < 1e-9;
}

/* The chart (an <svg> in card) holding series key: its data-values must be
 * the points' values of key, and its path's vertices must sit at those
 * values on its scale, one per drawn value (not null; for the limit, > 0),
 * in order. Returns how many vertices it has. */
static int check_series(const char *card, const cJSON *points, const char *key, int bars)
{
    char attr[64];
    snprintf(attr, sizeof(attr), "data-series=\"%s\"", key);
    const char *path = strstr(card, attr);
    cr_assert_not_null(path, "no series %s in:\n%s", key, card);
    while (path > card && *path != '<')
        path--;
    const char *chart = path;
    while (chart > card && strncmp(chart, "<svg", 4) != 0)
        chart--;
    cr_assert(strncmp(chart, "<svg", 4) == 0, "series %s outside an svg", key);
    char *plot = th_dom_attr(chart, "data-plot"), *ymax_s = th_dom_attr(chart, "data-ymax");
    char *npts = th_dom_attr(chart, "data-points");
    char *values = th_dom_attr(path, "data-values"), *d = th_dom_attr(path, "d");
    cr_assert(plot && ymax_s && npts && values && d, "chart of %s lacks its data attributes", key);
    int n = cJSON_GetArraySize(points);
    cr_assert_eq(atoi(npts), n, "chart of %s: data-points %s, the JSON has %d", key, npts, n);
    double x0, y0, w, h, ymax = strtod(ymax_s, NULL);
    cr_assert_eq(sscanf(plot, "%lf %lf %lf %lf", &x0, &y0, &w, &h), 4, "data-plot %s", plot);

    /* The values, in order, as the JSON has them. */
    const char *v = values;
    int i = 0;
    for (;; i++) {
        const char *comma = strchr(v, ',');
        size_t len = comma ? (size_t)(comma - v) : strlen(v);
        cr_assert_lt(i, n, "%s: more values than points: %s", key, values);
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetArrayItem(points, i), key);
        cr_assert(same_value(v, len, want), "%s[%d]: the chart has \"%.*s\", the JSON %s", key, i,
                  (int)len, v, want ? cJSON_PrintUnformatted(want) : "nothing");
        if (!comma)
            break;
        v = comma + 1;
    }
    cr_assert_eq(i + 1, n, "%s: %d values for %d points", key, i + 1, n);

    /* The vertices: where each drawn value is. */
    const char *p = d;
    int vertices = 0;
    for (i = 0; i < n; i++) {
        const cJSON *val = cJSON_GetObjectItem(cJSON_GetArrayItem(points, i), key);
        int drawn = cJSON_IsNumber(val) && (strcmp(key, "limit") != 0 || val->valuedouble > 0) &&
                    (!bars || val->valuedouble > 0);
        if (!drawn)
            continue;
        double x, y, base;
        int used = 0;
        if (bars) {
            cr_assert_eq(sscanf(p, "M%lf %lfV%lf%n", &x, &base, &y, &used), 3,
                         "%s: bar %d of d=\"%s\" at \"%s\"", key, i, d, p);
            cr_assert(fabs(base - (y0 + h)) < 0.06, "%s: bar %d from %.1f", key, i, base);
        } else {
            cr_assert_eq(sscanf(p, "%*[ML]%lf %lf%n", &x, &y, &used), 2,
                         "%s: vertex of point %d missing in d=\"%s\" at \"%s\"", key, i, d, p);
        }
        p += used;
        double want_x = x0 + (i + 0.5) * w / n, want_y = y0 + h * (1 - val->valuedouble / ymax);
        cr_assert(fabs(x - want_x) < 0.06 && fabs(y - want_y) < 0.06,
                  "%s[%d] = %g drawn at (%.1f, %.1f), wanted (%.1f, %.1f)", key, i,
                  val->valuedouble, x, y, want_x, want_y);
        vertices++;
    }
    cr_assert_eq(*p, '\0', "%s: more vertices than drawn values: d=\"%s\" left \"%s\"", key, d, p);
    free(plot);
    free(ymax_s);
    free(npts);
    free(values);
    free(d);
    return vertices;
}

static const char *const line_series[] = {"in_use_peak", "in_use_mean", "limit", "others_peak",
                                          "wait_p50_ms", "wait_p95_ms", NULL};

/* Every chart of the login's card against points; returns the vertices. */
static int check_card(const char *dom, const char *login, const cJSON *points)
{
    char attr[96];
    snprintf(attr, sizeof(attr), "class=\"account hist\" data-login=\"%s\"", login);
    char *card = th_dom_element(dom, "section", attr);
    int vertices = 0;
    for (int i = 0; line_series[i]; i++)
        vertices += check_series(card, points, line_series[i], 0);
    vertices += check_series(card, points, "waiting_peak", 1);
    free(card);
    return vertices;
}

/*--- The charts, from a document in the spec's format ----------------------*/

/* GET /v1/history's answer as the spec writes it: six minutes, one with
 * nothing recorded (nulls), one whose limit is unknown (-1), one unlimited
 * (0). */
static const char fixture[] =
    "{\"login\":\"p-alt\",\"accounts\":[1,2],\"from\":\"2026-12-02T06:00:00Z\","
    "\"to\":\"2026-12-02T06:06:00Z\",\"step_s\":60,\"limit_now\":2,\"points\":["
    "{\"t\":\"2026-12-02T06:00:00Z\",\"t_ms\":1796191200000,\"minutes\":1,\"in_use_peak\":2,"
    "\"in_use_mean\":1.53,\"limit\":2,\"others_peak\":1,\"others_mean\":0.5,\"waiting_peak\":3,"
    "\"grants\":20,\"denials\":5,\"lost\":0,\"preempted\":0,\"refused\":0,\"checks\":20,"
    "\"waits\":20,\"wait_p50_ms\":100,\"wait_p95_ms\":2500},"
    "{\"t\":\"2026-12-02T06:01:00Z\",\"t_ms\":1796191260000,\"minutes\":0,\"in_use_peak\":0,"
    "\"in_use_mean\":0,\"limit\":null,\"others_peak\":0,\"others_mean\":null,\"waiting_peak\":0,"
    "\"grants\":0,\"denials\":0,\"lost\":0,\"preempted\":0,\"refused\":0,\"checks\":0,"
    "\"waits\":0,\"wait_p50_ms\":null,\"wait_p95_ms\":null},"
    "{\"t\":\"2026-12-02T06:02:00Z\",\"t_ms\":1796191320000,\"minutes\":1,\"in_use_peak\":1,"
    "\"in_use_mean\":0.25,\"limit\":-1,\"others_peak\":0,\"others_mean\":0,\"waiting_peak\":0,"
    "\"grants\":1,\"denials\":0,\"lost\":1,\"preempted\":0,\"refused\":0,\"checks\":1,"
    "\"waits\":1,\"wait_p50_ms\":1,\"wait_p95_ms\":1},"
    "{\"t\":\"2026-12-02T06:03:00Z\",\"t_ms\":1796191380000,\"minutes\":1,\"in_use_peak\":3,"
    "\"in_use_mean\":2.9,\"limit\":0,\"others_peak\":2,\"others_mean\":1.5,\"waiting_peak\":1,"
    "\"grants\":3,\"denials\":1,\"lost\":0,\"preempted\":1,\"refused\":0,\"checks\":2,"
    "\"waits\":3,\"wait_p50_ms\":50,\"wait_p95_ms\":300000},"
    "{\"t\":\"2026-12-02T06:04:00Z\",\"t_ms\":1796191440000,\"minutes\":1,\"in_use_peak\":2,"
    "\"in_use_mean\":2,\"limit\":2,\"others_peak\":0,\"others_mean\":0,\"waiting_peak\":5,"
    "\"grants\":2,\"denials\":9,\"lost\":0,\"preempted\":0,\"refused\":1,\"checks\":2,"
    "\"waits\":2,\"wait_p50_ms\":10000,\"wait_p95_ms\":20000},"
    "{\"t\":\"2026-12-02T06:05:00Z\",\"t_ms\":1796191500000,\"minutes\":1,\"in_use_peak\":0,"
    "\"in_use_mean\":0,\"limit\":2,\"others_peak\":0,\"others_mean\":0,\"waiting_peak\":0,"
    "\"grants\":0,\"denials\":0,\"lost\":0,\"preempted\":0,\"refused\":0,\"checks\":0,"
    "\"waits\":0,\"wait_p50_ms\":null,\"wait_p95_ms\":null}]}";

/* Nothing recorded in the range: every point has minutes 0. */
static const char fixture_empty[] =
    "{\"login\":\"p-idle\",\"accounts\":[3],\"from\":\"2026-12-02T06:00:00Z\","
    "\"to\":\"2026-12-02T06:01:00Z\",\"step_s\":60,\"limit_now\":1,\"points\":["
    "{\"t\":\"2026-12-02T06:00:00Z\",\"t_ms\":1796191200000,\"minutes\":0,\"in_use_peak\":0,"
    "\"in_use_mean\":0,\"limit\":null,\"others_peak\":0,\"others_mean\":null,\"waiting_peak\":0,"
    "\"grants\":0,\"denials\":0,\"lost\":0,\"preempted\":0,\"refused\":0,\"checks\":0,"
    "\"waits\":0,\"wait_p50_ms\":null,\"wait_p95_ms\":null}]}";

/* GET /v1/streams/{id}/history's answer: two results, newest first. */
static const char fixture_stream[] =
    "{\"stream_id\":101,\"results\":["
    "{\"stream_id\":101,\"stream_name\":\"News HD\",\"status\":\"OK\",\"video_codec\":\"h264\","
    "\"audio_codec\":\"aac\",\"resolution\":\"1920x1080\",\"fps\":25,\"bitrate_kbps\":4500,"
    "\"lease_wait_ms\":120,\"duration_ms\":8300,\"login\":\"p-alt\",\"node\":\"n2\","
    "\"started_at\":\"2026-12-02T06:05:00Z\",\"error\":null,\"http_code\":200},"
    "{\"stream_id\":101,\"stream_name\":\"News HD\",\"status\":\"Timeout\",\"video_codec\":null,"
    "\"audio_codec\":null,\"resolution\":null,\"fps\":null,\"bitrate_kbps\":null,"
    "\"lease_wait_ms\":3000,\"duration_ms\":20000,\"login\":\"p-main\",\"node\":\"n1\","
    "\"started_at\":\"2026-12-02T06:01:00Z\",\"error\":\"no data in 20 s\",\"http_code\":null}]}";

/* The node's own page (src/dashboard.html as built in), drawing the
 * fixtures with its own functions into #fixture, opened from a file: its
 * calls to the node find nothing there, which leaves #fixture alone. */
Test(dashboard_history, charts_carry_the_values_of_the_json_they_are_drawn_from)
{
    th_chromium_need();
    node_start();
    th_http_resp r = call("GET", "/", NULL);
    cr_assert_eq(r.status, 200, "GET /: %d", r.status);
    const char *end = strstr(r.body, "</body>");
    cr_assert_not_null(end, "no </body> in the page");
    size_t cap =
        strlen(r.body) + sizeof(fixture) + sizeof(fixture_empty) + sizeof(fixture_stream) + 1024;
    char *page = malloc(cap);
    snprintf(page, cap,
             "%.*s<div id=\"fixture\"></div><script>\n"
             "document.getElementById(\"fixture\").append(\n"
             "  sflHistory.drawHistory(%s, \"Fixture login\"),\n"
             "  sflHistory.drawHistory(%s),\n"
             "  sflHistory.drawStream(%s));\n"
             /* A result row, clicked: the stream view follows it. */
             "renderResults([{stream_id: 909, stream_name: \"Clicked\", status: \"OK\"}]);\n"
             "document.querySelector('#results tr[data-stream=\"909\"]').click();\n"
             "</script>%s",
             (int)(end - r.body), r.body, fixture, fixture_empty, fixture_stream, end);
    th_http_free(&r);
    char path[256], url[300];
    th_write_file(dir, "fixture.html", page, path, sizeof(path));
    free(page);
    snprintf(url, sizeof(url), "file://%s", path);
    char *dom = render(url, "dom-fixture.html");
    const char *fix = strstr(dom, "id=\"fixture\"");
    cr_assert_not_null(fix, "no #fixture in:\n%s", dom);

    cJSON *doc = cJSON_Parse(fixture);
    const cJSON *points = cJSON_GetObjectItem(doc, "points");
    int vertices = check_card(fix, "p-alt", points);
    /* peak 6 + mean 6 + limit 3 (2, 2, 2: not -1, 0, null) + others 6 +
     * p50 4 + p95 4 + waiting bars 3: counted from the JSON by hand. */
    cr_assert_eq(vertices, 6 + 6 + 3 + 6 + 4 + 4 + 3, "vertices over all series: %d", vertices);
    char *card = th_dom_element(fix, "section", "data-login=\"p-alt\"");
    has(card, "Fixture login", "the card's title");
    has(card, "limit now 2", "the login's limit now");
    has(card, "peak 3 · 26 grants, 15 denials, 25 checks · lost 1, preempted 1, refused 1",
        "the range's totals");
    free(card);
    cJSON_Delete(doc);

    card = th_dom_element(fix, "section", "data-login=\"p-idle\"");
    has(card, "no history recorded", "a login with nothing recorded");
    cr_assert_null(strstr(card, "<svg"), "a chart of nothing:\n%s", card);
    free(card);

    char *box = th_dom_element(fix, "table", "class=\"stream\" data-stream=\"101\"");
    has(box, "News HD · stream 101", "the stream's name and id");
    has(box,
        "<td class=\"status OK\">OK</td><td>h264 1920x1080 25 fps</td><td>aac</td>"
        "<td class=\"num\">4500 kb/s</td><td class=\"num\">120 ms</td>"
        "<td class=\"num\">8.3 s</td><td>p-alt</td><td>n2</td>",
        "the newest result");
    has(box,
        "<td class=\"status Timeout\">Timeout</td><td>–</td><td>–</td>"
        "<td class=\"num\">–</td><td class=\"num\">3.0 s</td><td class=\"num\">20.0 s</td>"
        "<td>p-main</td><td>n1</td>",
        "the older result");
    has(box, "title=\"no data in 20 s\"", "the error in the row's tooltip");
    cr_assert(strstr(box, ">OK<") < strstr(box, ">Timeout<"), "not newest first:\n%s", box);
    free(box);
    /* The click on result 909 asked for its history (which a page opened
     * from a file cannot fetch): the stream view says so. */
    box = th_dom_element(dom, "section", "id=\"stream-view\"");
    has(box, "<div id=\"stream-results\"><div class=\"none\">no history: ",
        "the stream view after a click on a result row");
    free(box);
    free(dom);
}

/*--- Holders named ---------------------------------------------------------*/

/* Waits until the batch GET /v1/checks/{batch} names is finished. */
static void wait_batch(const char *batch)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/checks/%s", batch);
    int64_t until = th_now_ms() + 30000;
    for (;;) {
        th_http_resp r = call("GET", path, NULL);
        int done = cJSON_IsTrue(cJSON_GetObjectItem(r.json, "finished"));
        th_http_free(&r);
        if (done)
            return;
        cr_assert_lt(th_now_ms(), until, "batch %s did not finish in 30 s", batch);
        usleep(100000);
    }
}

static void submit(const char *streams)
{
    th_http_resp r = call("POST", "/v1/checks", streams);
    cr_assert_eq(r.status, 202, "POST /v1/checks: %d %s", r.status, r.body);
    char batch[128];
    snprintf(batch, sizeof(batch), "%s", cJSON_GetObjectItem(r.json, "batch")->valuestring);
    th_http_free(&r);
    wait_batch(batch);
}

/* A batch names its streams in sfl:stream:names (a week's TTL, no URL); a
 * lease labelled with one of those ids is shown with the name beside the
 * id, by GET /v1/accounts (stream_name) and on the page; a label that is
 * no stream id, or an id nobody named, stays as it is. */
Test(dashboard_history, holders_show_their_streams_name)
{
    th_chromium_need();
    account(LOGIN_ACCOUNT, 3, "Named");
    node_start();
    submit("[{\"id\": 601, \"name\": \"Channel Six\", \"url\": \"http://127.0.0.1:9/u/p/601.ts\"},"
           " {\"id\": 602, \"url\": \"http://127.0.0.1:9/u/p/602.ts\"}]");
    redisReply *name = th_redis(&redis, "HGET sfl:stream:names 601");
    cr_assert(name->type == REDIS_REPLY_STRING && strcmp(name->str, "Channel Six") == 0,
              "sfl:stream:names 601 is not \"Channel Six\"");
    freeReplyObject(name);
    cr_assert_eq(th_redis_int(&redis, "HLEN sfl:stream:names"), 1, "a stream without a name named");
    long long ttl = th_redis_int(&redis, "PTTL sfl:stream:names");
    cr_assert(ttl > 7LL * 86400 * 1000 - 600000 && ttl <= 7LL * 86400 * 1000,
              "sfl:stream:names expires in %lld ms, not a week", ttl);

    take_lease(LOGIN_ACCOUNT, "601");
    take_lease(LOGIN_ACCOUNT, "602");
    take_lease(LOGIN_ACCOUNT, "recorder");
    th_http_resp r = call("GET", "/v1/accounts", NULL);
    cr_assert_eq(r.status, 200, "GET /v1/accounts: %d", r.status);
    int named = 0, seen = 0;
    const cJSON *a, *h;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(r.json, "accounts"))
    {
        cJSON_ArrayForEach(h, cJSON_GetObjectItem(a, "holders"))
        {
            const char *stream = th_str_of(h, "stream");
            const cJSON *n = cJSON_GetObjectItem(h, "stream_name");
            seen++;
            if (strcmp(stream, "601") == 0) {
                cr_assert(cJSON_IsString(n) && strcmp(n->valuestring, "Channel Six") == 0,
                          "holder 601 has no stream_name: %s", r.body);
                named++;
            } else {
                cr_assert_null(n, "holder %s named: %s", stream, r.body);
            }
        }
    }
    cr_assert_eq(seen, 3, "holders: %s", r.body);
    cr_assert_eq(named, 1, "holders: %s", r.body);
    th_http_free(&r);

    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", node_port);
    char *dom = render(url, "dom-names.html");
    char *row =
        th_dom_element(dom, "tr", "class=\"holder\" data-node=\"hist1\" data-stream=\"601\"");
    has(row,
        "<td>hist1</td><td><span class=\"sname\">Channel Six<span class=\"sid\">601</span>"
        "</span></td>",
        "the holder's stream name, then its id");
    free(row);
    has(dom, "<td>hist1</td><td>602</td>", "a stream without a name: its id");
    has(dom, "<td>hist1</td><td>recorder</td>", "a label that is no stream id");
    cr_assert_null(strstr(dom, "127.0.0.1:9"), "a stream URL on the page");
    free(dom);
}

/*--- Against the node's own routes -----------------------------------------*/

/* 1 when the node answers path with a 404 of its router (no such route:
 * a node older than history), rather than a 404 of the route itself. */
static int route_missing(const char *path)
{
    th_http_resp r = call("GET", path, NULL);
    int missing = r.status == 404 && r.body && strstr(r.body, "no route");
    th_http_free(&r);
    return missing;
}

/* One minute of login's history as a writer leaves it (spec: the hash
 * <ns>:history:<login>:<YYYYMMDDHH>, field = the minute, value = csv). */
static void write_minute(const char *login, time_t minute, const char *csv)
{
    struct tm tm;
    gmtime_r(&minute, &tm);
    char key[128];
    snprintf(key, sizeof(key), "sfl:history:%s:%04d%02d%02d%02d", login, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
    long long hour_end = ((long long)minute / 3600 + 1) * 3600;
    freeReplyObject(th_redis(&redis, "HSET %s %d %s", key, tm.tm_min, csv));
    freeReplyObject(th_redis(&redis, "PEXPIREAT %s %lld", key, (hour_end + 7LL * 86400) * 1000));
}

/* The point of points at t_ms, or NULL. */
static const cJSON *point_at(const cJSON *points, double t_ms)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, points)
    {
        if (th_num_of(p, "t_ms") == t_ms)
            return p;
    }
    return NULL;
}

/* Renders the node's page and compares login's chart (last hour, 1 min
 * steps) with GET /v1/history for the chart's own window, value for value
 * and vertex for vertex (check_card). The node may add to the history as
 * the page renders (its own writer, every flush): the two are compared only
 * when the route said the same before and after the rendering (merges only
 * grow values: equal before and after means equal in between), else the
 * rendering is done again, twice at most. Returns the route's answer
 * (th_http_free) and the vertices drawn in *vertices. */
static th_http_resp chart_against_route(const char *url, const char *login, int *vertices)
{
    for (int attempt = 0;; attempt++) {
        char wide[200], attr[96];
        long long now_s = (long long)time(NULL);
        snprintf(wide, sizeof(wide), "/v1/history?login=%s&from=%lld&to=%lld&step=60", login,
                 (now_s / 60 - 120) * 60, (now_s / 60 + 3) * 60);
        th_http_resp before = call("GET", wide, NULL);
        cr_assert_eq(before.status, 200, "GET %s: %d %s", wide, before.status, before.body);
        char *dom = render(url, "dom-history.html");
        snprintf(attr, sizeof(attr), "class=\"account hist\" data-login=\"%s\"", login);
        char *card = th_dom_element(dom, "section", attr);
        const char *svg = strstr(card, "<svg");
        cr_assert_not_null(svg, "no chart for login %s:\n%s", login, card);
        char *t0_s = th_dom_attr(svg, "data-t0"), *n_s = th_dom_attr(svg, "data-points");
        char *step_s = th_dom_attr(svg, "data-step-ms");
        cr_assert(t0_s && n_s && step_s, "the chart lacks data-t0/data-points/data-step-ms");
        long long t0 = atoll(t0_s), n = atoll(n_s), step = atoll(step_s);
        free(t0_s);
        free(n_s);
        free(step_s);
        free(card);
        cr_assert_eq(n, 60, "the last hour at 1 min: %lld points", n);
        cr_assert_eq(step, 60000, "step %lld ms", step);

        /* The same window from the route, as the page asked for it. */
        char path[200];
        snprintf(path, sizeof(path), "/v1/history?login=%s&from=%lld&to=%lld&step=60", login,
                 t0 / 1000, (t0 + n * step) / 1000);
        th_http_resp r = call("GET", path, NULL);
        cr_assert_eq(r.status, 200, "GET %s: %d %s", path, r.status, r.body);
        const cJSON *points = cJSON_GetObjectItem(r.json, "points"), *p;
        cr_assert_eq(cJSON_GetArraySize(points), n, "GET %s: %d points", path,
                     cJSON_GetArraySize(points));
        th_http_resp after = call("GET", wide, NULL);
        int stable = 1;
        cJSON_ArrayForEach(p, points)
        {
            double t = th_num_of(p, "t_ms");
            const cJSON *was = point_at(cJSON_GetObjectItem(before.json, "points"), t);
            const cJSON *is = point_at(cJSON_GetObjectItem(after.json, "points"), t);
            cr_assert(was && is, "the wide window lacks the page's minute %.0f", t);
            stable &= cJSON_Compare(was, is, 1) && cJSON_Compare(is, p, 1);
        }
        th_http_free(&before);
        th_http_free(&after);
        if (stable) {
            *vertices = check_card(dom, login, points);
            free(dom);
            return r;
        }
        cr_assert_lt(attempt, 2, "login %s's history kept changing while the page rendered", login);
        th_http_free(&r);
        free(dom);
    }
}

/* Two minutes of login 47's last hour written by hand: the login's chart
 * has the points GET /v1/history gives for the same window
 * (chart_against_route), and those two minutes carry what was written
 * (peak = max(start, peak), mean = held_ms / 60 000, p50/p95 = the bins'
 * upper bounds). */
Test(dashboard_history, chart_has_the_points_of_v1_history)
{
    th_chromium_need();
    /* Through the node: the account put through it (a login Redis alone
     * describes is answered too: test_history_read). */
    node_start();
    th_http_resp put =
        call("PUT", "/v1/accounts/47", "{\"max_streams\": 2, \"name\": \"Historic\"}");
    cr_assert_eq(put.status, 200, "PUT /v1/accounts/47: %d %s", put.status, put.body);
    th_http_free(&put);
    time_t now = time(NULL), m1 = (now / 60 - 40) * 60, m2 = (now / 60 - 20) * 60;
    /* m1: start 0, peak 2, 1.5 lease-minutes, limit 2, others 1 (3 over 3
     * samples), 4 waiting, 5 grants, 1 denial, 5 checks, 5 waits: 3 within
     * 100 ms (bin 6), 2 within 2.5 s (bin 10). m2: 1 held all minute. */
    char csv[256];
    int len = snprintf(csv, sizeof(csv), "0,2,90000,2,1,3,3,4,5,1,0,0,0,5,5");
    for (int b = 0; b <= SFL_WAIT_BUCKETS; b++)
        len += snprintf(csv + len, sizeof(csv) - (size_t)len, ",%d", b == 6 ? 3 : b == 10 ? 2 : 0);
    cr_assert(fabs(sfl_wait_bounds[6] - 0.1) < 1e-9 && fabs(sfl_wait_bounds[10] - 2.5) < 1e-9,
              "metrics.h's bounds moved: this test's bins need new indices");
    write_minute("47", m1, csv);
    write_minute("47", m2, "1,0,60000,2");

    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", node_port);
    cr_assert(!route_missing("/v1/history?login=47"), "the node has no GET /v1/history");
    int vertices = 0;
    th_http_resp r = chart_against_route(url, "47", &vertices);
    const cJSON *points = cJSON_GetObjectItem(r.json, "points");
    const cJSON *p1 = point_at(points, (double)m1 * 1000),
                *p2 = point_at(points, (double)m2 * 1000);
    cr_assert(p1 && p2, "the written minutes are outside the chart's hour: %s", r.body);
    cr_assert_eq(th_num_of(p1, "in_use_peak"), 2);
    cr_assert(fabs(th_num_of(p1, "in_use_mean") - 1.5) < 1e-9, "mean %g",
              th_num_of(p1, "in_use_mean"));
    cr_assert_eq(th_num_of(p1, "limit"), 2);
    cr_assert_eq(th_num_of(p1, "waiting_peak"), 4);
    cr_assert_eq(th_num_of(p1, "wait_p50_ms"), 100);
    cr_assert_eq(th_num_of(p1, "wait_p95_ms"), 2500);
    cr_assert_eq(th_num_of(p2, "in_use_peak"), 1);
    cr_assert(fabs(th_num_of(p2, "in_use_mean") - 1.0) < 1e-9);
    cr_assert_geq(vertices, 2 + 2 + 2 + 1, "the written minutes are not drawn");
    th_http_free(&r);

    char shot[300];
    snprintf(shot, sizeof(shot), "--screenshot=%s", SFL_TOOLS_DIR "/dashboard-history.png");
    th_chromium_run(url, shot, NULL, dir, 8000, NULL, NULL);
}

/* Sums field over points. */
static double total(const cJSON *points, const char *field)
{
    double sum = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, points)
    {
        sum += th_num_of(p, field);
    }
    return sum;
}

/* The node's own history: a batch of three checks on login 48 (one slot)
 * through a node that writes history every second; once /v1/history counts
 * the three checks, the login's chart has the route's points, and the
 * stream view of one of the streams shows its result as the node pushed
 * it. */
Test(dashboard_history, chart_after_a_batch_has_the_points_of_v1_history)
{
    th_chromium_need();
    /* In Redis before the node starts: no recovery window to wait out. */
    account(48, 1, "Batch Login");
    node_start_with("\"history\": {\"enabled\": true, \"flush_ms\": 1000}");
    cr_assert(!route_missing("/v1/history?login=48"), "the node has no GET /v1/history");
    th_http_resp r;
    submit("[{\"id\": 801, \"name\": \"Batch One\", \"url\": \"http://127.0.0.1:9/801.ts\", "
           "\"m3u_account\": 48},"
           " {\"id\": 802, \"name\": \"Batch Two\", \"url\": \"http://127.0.0.1:9/802.ts\", "
           "\"m3u_account\": 48},"
           " {\"id\": 803, \"name\": \"Batch Three\", \"url\": \"http://127.0.0.1:9/803.ts\", "
           "\"m3u_account\": 48}]");
    /* The node sends what it gathered every second. */
    int64_t until = th_now_ms() + 30000;
    for (;;) {
        r = call("GET", "/v1/history?login=48&from=-10m", NULL);
        cr_assert_eq(r.status, 200, "GET /v1/history: %d %s", r.status, r.body);
        int done = total(cJSON_GetObjectItem(r.json, "points"), "checks") >= 3;
        if (done)
            break;
        cr_assert_lt(th_now_ms(), until, "the batch's checks never reached /v1/history: %s",
                     r.body);
        th_http_free(&r);
        usleep(200000);
    }
    th_http_free(&r);

    char url[80];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", node_port);
    int vertices = 0;
    r = chart_against_route(url, "48", &vertices);
    const cJSON *points = cJSON_GetObjectItem(r.json, "points");
    cr_assert_eq(total(points, "checks"), 3, "checks in the chart's hour: %s", r.body);
    cr_assert_eq(total(points, "grants"), 3, "grants in the chart's hour: %s", r.body);
    const cJSON *p;
    double peak = 0;
    cJSON_ArrayForEach(p, points)
    {
        if (th_num_of(p, "in_use_peak") > peak)
            peak = th_num_of(p, "in_use_peak");
    }
    cr_assert_eq(peak, 1, "login 48 has one slot: peak %g", peak);
    cr_assert_gt(vertices, 0, "nothing drawn");
    th_http_free(&r);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/#stream=802", node_port);
    char *dom = render(url, "dom-batch-stream.html");
    char *box = th_dom_element(dom, "table", "class=\"stream\" data-stream=\"802\"");
    has(box, "Batch Two · stream 802", "the stream's name");
    has(box, "<td class=\"status OK\">OK</td>", "the check's status");
    has(box, "<td>48</td><td>hist1</td>", "the login and the node");
    cr_assert_null(strstr(box, "127.0.0.1:9"), "a stream URL in the stream view");
    free(box);
    free(dom);
}

/* A stream's list written by hand (spec: <ns>:stream:<id>:history, newest
 * first) shows in the stream view of /#stream=<id>, as GET
 * /v1/streams/{id}/history gives it. */
Test(dashboard_history, stream_view_shows_the_streams_results)
{
    th_chromium_need();
    node_start();
    const char *older = "{\"stream_id\":601,\"stream_name\":\"Channel Six\",\"status\":\"Error\","
                        "\"video_codec\":null,\"audio_codec\":null,\"resolution\":null,"
                        "\"fps\":null,\"bitrate_kbps\":null,\"lease_wait_ms\":0,"
                        "\"duration_ms\":1500,\"login\":\"47\",\"node\":\"hist1\","
                        "\"started_at\":\"2026-12-02T06:01:00Z\",\"error\":\"HTTP 404\","
                        "\"http_code\":404}";
    const char *newer = "{\"stream_id\":601,\"stream_name\":\"Channel Six\",\"status\":\"OK\","
                        "\"video_codec\":\"hevc\",\"audio_codec\":\"mp2\","
                        "\"resolution\":\"1280x720\",\"fps\":50,\"bitrate_kbps\":2100,"
                        "\"lease_wait_ms\":40,\"duration_ms\":5200,\"login\":\"47\","
                        "\"node\":\"hist1\",\"started_at\":\"2026-12-02T06:09:00Z\","
                        "\"error\":null,\"http_code\":200}";
    freeReplyObject(th_redis(&redis, "LPUSH sfl:stream:601:history %s %s", older, newer));
    char url[80];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/#stream=601", node_port);
    cr_assert(!route_missing("/v1/streams/601/history"),
              "the node has no GET /v1/streams/{id}/history");
    th_http_resp r = call("GET", "/v1/streams/601/history", NULL);
    cr_assert_eq(r.status, 200, "GET /v1/streams/601/history: %d %s", r.status, r.body);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 2, "%s", r.body);
    th_http_free(&r);
    char *dom = render(url, "dom-stream.html");
    char *box = th_dom_element(dom, "table", "class=\"stream\" data-stream=\"601\"");
    has(box, "Channel Six · stream 601", "the stream's name");
    has(box,
        "<td class=\"status OK\">OK</td><td>hevc 1280x720 50 fps</td><td>mp2</td>"
        "<td class=\"num\">2100 kb/s</td><td class=\"num\">40 ms</td>"
        "<td class=\"num\">5.2 s</td><td>47</td><td>hist1</td>",
        "the newest result");
    has(box, "<td class=\"status Error\">Error</td>", "the older result");
    cr_assert(strstr(box, ">OK<") < strstr(box, ">Error<"), "not newest first:\n%s", box);
    free(box);
    free(dom);
}
