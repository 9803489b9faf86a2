/* history_compare.c - the verdict of a history run (tests/tools/history_run.sh,
 * issue #18): sets sfl's per-minute history of a login (GET /v1/history, one
 * point a minute) beside what the fake provider saw in the same minutes (GET
 * /minutes) and the load the run planned, prints one table row a minute
 * (peaks, the mean in use by the provider's connection-ms and by the
 * history's lease-ms, waiting, grants, connections opened), and
 * exits 1 when they disagree:
 *
 *   - a planned minute without a point in either answer;
 *   - a history peak more than --tolerance (1: one check) from the
 *     provider's peak of that minute;
 *   - a provider peak above the login's limit;
 *   - the provider admitting, over the run, another number of connections
 *     than the run submitted checks (a check that never reached it, or
 *     opened two: the load was not the one planned);
 *   - with --dom, a minute whose point in the dashboard's chart of the login
 *     (Chromium's --dump-dom of the page: the in_use_peak series of its
 *     "usage" chart) is missing or differs from /v1/history's peak.
 *
 * A provider peak other than the planned one is only noted ("~" in the last
 * column): the run's timing on a loaded host may move a check to the next
 * minute, and the comparison that matters is history against the provider.
 * Exit 2 for unreadable input, naming the file. Reads files only: the run
 * fetches the answers with curl, so this needs no network and no node. */

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HC_MAX_MINUTES 10080 /* a week of minutes: far more than a run */

/* One planned minute and what each side says of it. */
typedef struct hc_row {
    long long t;   /* the minute's start, Unix seconds */
    long demand;   /* checks submitted in it */
    long planned;  /* min(demand, limit) */
    long prov;     /* provider peak; -1: no minute in its answer */
    long opened;   /* provider: connections admitted in it */
    double pmean;  /* provider: mean open (held_ms / 60000) */
    long hist;     /* history in_use_peak; -1: no point */
    double mean;   /* history in_use_mean */
    long waiting;  /* history waiting_peak */
    long grants;   /* history grants */
    long chart;    /* the dashboard's point; -1: none (or no --dom), -2: drawn as null,
                      -3: before the chart's first point (a run longer than its hour) */
    bool has_hist; /* a history answer was given */
} hc_row;

typedef struct hc_opts {
    const char *plan, *history, *provider, *user, *login, *dom;
    long limit;
    long tolerance;
} hc_opts;

static char *hc_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "history-compare: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *more = realloc(buf, cap * 2);
            if (more == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL) {
        fprintf(stderr, "history-compare: out of memory reading %s\n", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static cJSON *hc_read_json(const char *path)
{
    char *text = hc_read(path);
    if (text == NULL)
        return NULL;
    cJSON *doc = cJSON_Parse(text);
    if (doc == NULL)
        fprintf(stderr, "history-compare: %s is not JSON: %.200s\n", path, text);
    free(text);
    return doc;
}

static double hc_num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* The plan: one line a minute, "T DEMAND" (T: the minute's start, Unix s). */
static int hc_load_plan(const hc_opts *o, hc_row *rows, int *n)
{
    char *text = hc_read(o->plan);
    if (text == NULL)
        return -1;
    int line = 0;
    *n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        long long t;
        long d;
        char extra;
        if (l[0] == '#')
            continue;
        if (sscanf(l, "%lld %ld %c", &t, &d, &extra) != 2 || t % 60 != 0 || d < 0 ||
            *n >= HC_MAX_MINUTES) {
            fprintf(stderr, "history-compare: %s:%d: want \"MINUTE_START DEMAND\", got \"%s\"\n",
                    o->plan, line, l);
            free(text);
            return -1;
        }
        rows[*n] = (hc_row){.t = t,
                            .demand = d,
                            .planned = d < o->limit ? d : o->limit,
                            .prov = -1,
                            .hist = -1,
                            .chart = -1};
        (*n)++;
    }
    free(text);
    if (*n == 0) {
        fprintf(stderr, "history-compare: %s plans no minute\n", o->plan);
        return -1;
    }
    return 0;
}

static hc_row *hc_find(hc_row *rows, int n, long long t)
{
    for (int i = 0; i < n; i++)
        if (rows[i].t == t)
            return &rows[i];
    return NULL;
}

/* GET /minutes?user=U: users.U.minutes[] {t, peak, opened}. */
static int hc_load_provider(const hc_opts *o, hc_row *rows, int n)
{
    cJSON *doc = hc_read_json(o->provider);
    if (doc == NULL)
        return -1;
    const cJSON *mins = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "users"), o->user), "minutes");
    if (!cJSON_IsArray(mins)) {
        fprintf(stderr, "history-compare: %s has no users.%s.minutes\n", o->provider, o->user);
        cJSON_Delete(doc);
        return -1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, mins)
    {
        hc_row *r = hc_find(rows, n, (long long)hc_num(m, "t", -1));
        if (r != NULL) {
            r->prov = (long)hc_num(m, "peak", -1);
            r->opened = (long)hc_num(m, "opened", 0);
            r->pmean = hc_num(m, "held_ms", 0) / 60000.0;
        }
    }
    cJSON_Delete(doc);
    return 0;
}

/* GET /v1/history: points[] {t_ms, in_use_peak, in_use_mean, waiting_peak, grants}. */
static int hc_load_history(const hc_opts *o, hc_row *rows, int n)
{
    cJSON *doc = hc_read_json(o->history);
    if (doc == NULL)
        return -1;
    const cJSON *points = cJSON_GetObjectItem(doc, "points");
    if (!cJSON_IsArray(points)) {
        fprintf(stderr, "history-compare: %s has no points\n", o->history);
        cJSON_Delete(doc);
        return -1;
    }
    long step = (long)hc_num(doc, "step_s", 60);
    if (step != 60) {
        fprintf(stderr, "history-compare: %s has step_s %ld, want 60 (one point a minute)\n",
                o->history, step);
        cJSON_Delete(doc);
        return -1;
    }
    for (int i = 0; i < n; i++)
        rows[i].has_hist = true;
    const cJSON *p;
    cJSON_ArrayForEach(p, points)
    {
        hc_row *r = hc_find(rows, n, (long long)(hc_num(p, "t_ms", -1) / 1000));
        if (r == NULL)
            continue;
        r->hist = (long)hc_num(p, "in_use_peak", 0);
        r->mean = hc_num(p, "in_use_mean", 0);
        r->waiting = (long)hc_num(p, "waiting_peak", 0);
        r->grants = (long)hc_num(p, "grants", 0);
    }
    cJSON_Delete(doc);
    return 0;
}

/* The value of attribute name in the tag that starts at tag (up to its
 * '>'), copied into out; -1 when the tag has none. */
static int hc_attr(const char *tag, const char *name, char *out, size_t len)
{
    const char *end = strchr(tag, '>');
    char want[64];
    snprintf(want, sizeof(want), " %s=\"", name);
    const char *at = strstr(tag, want);
    if (end == NULL || at == NULL || at > end)
        return -1;
    at += strlen(want);
    const char *q = strchr(at, '"');
    if (q == NULL || q > end)
        return -1;
    snprintf(out, len, "%.*s", (int)(q - at), at);
    return 0;
}

/* The dashboard's chart of the login, from Chromium's --dump-dom of the page
 * (src/dashboard.html draws it): the card <section ... data-login="LOGIN">,
 * its first <svg class="chart usage" data-t0="MS" data-step-ms="MS"> and in
 * it <path data-series="in_use_peak" data-values="v,v,..."> (one value a
 * step, oldest first, empty for null). Each value lands on the row of its
 * minute; *seen counts them. */
static int hc_load_dom(const hc_opts *o, hc_row *rows, int n, int *seen)
{
    char *dom = hc_read(o->dom);
    if (dom == NULL)
        return -1;
    int rc = -1;
    char want[160], t0[32], step[32], cls[128];
    snprintf(want, sizeof(want), "data-login=\"%s\"", o->login);
    const char *card = strstr(dom, want), *svg = NULL, *path = NULL;
    while (card != NULL) {
        const char *open = card;
        while (open > dom && *open != '<')
            open--;
        if (strncmp(open, "<section", 8) == 0) {
            card = open;
            break;
        }
        card = strstr(card + 1, want);
    }
    if (card == NULL) {
        fprintf(stderr, "history-compare: %s has no history card for %s (<section %s>)\n", o->dom,
                o->login, want);
        goto done;
    }
    const char *next_card = strstr(card + 1, "<section");
    for (svg = strstr(card, "<svg"); svg && (!next_card || svg < next_card);
         svg = strstr(svg + 1, "<svg"))
        if (hc_attr(svg, "class", cls, sizeof(cls)) == 0 && strstr(cls, "usage") != NULL)
            break;
    if (svg == NULL || (next_card && svg > next_card) ||
        hc_attr(svg, "data-t0", t0, sizeof(t0)) != 0 ||
        hc_attr(svg, "data-step-ms", step, sizeof(step)) != 0) {
        fprintf(stderr,
                "history-compare: %s: the card of %s has no chart <svg class=\"chart usage\" "
                "data-t0 data-step-ms>\n",
                o->dom, o->login);
        goto done;
    }
    const char *svg_end = strstr(svg, "</svg>");
    for (path = strstr(svg, "<path"); path && (!svg_end || path < svg_end);
         path = strstr(path + 1, "<path")) {
        char series[64];
        if (hc_attr(path, "data-series", series, sizeof(series)) == 0 &&
            strcmp(series, "in_use_peak") == 0)
            break;
    }
    size_t vlen = path ? (size_t)(strchr(path, '>') - path) + 1 : 0;
    char *values = path ? malloc(vlen) : NULL;
    if (values == NULL || hc_attr(path, "data-values", values, vlen) != 0) {
        fprintf(stderr,
                "history-compare: %s: the chart of %s has no <path data-series=\"in_use_peak\" "
                "data-values>\n",
                o->dom, o->login);
        free(values);
        goto done;
    }
    long long t = strtoll(t0, NULL, 10), step_ms = strtoll(step, NULL, 10);
    if (step_ms != 60000)
        fprintf(stderr, "history-compare: the chart's step is %lld ms, not a minute\n", step_ms);
    *seen = 0;
    /* A run longer than the chart's hour: its first minutes are not drawn. */
    for (int i = 0; i < n; i++)
        if (rows[i].t * 1000 < t)
            rows[i].chart = -3;
    /* strtok_r would skip empty values: the commas are walked by hand */
    for (char *v = values;; t += step_ms) {
        char *comma = strchr(v, ',');
        if (comma)
            *comma = '\0';
        hc_row *r = hc_find(rows, n, t / 1000);
        if (r != NULL) {
            r->chart = *v ? strtol(v, NULL, 10) : -2; /* -2: drawn as nothing */
            (*seen)++;
        }
        if (!comma)
            break;
        v = comma + 1;
    }
    free(values);
    rc = 0;
done:
    free(dom);
    return rc;
}

static void hc_usage(FILE *out)
{
    fprintf(out,
            "usage: sfl-history-compare --plan FILE --provider FILE --user NAME --limit N\n"
            "                           [--history FILE] [--dom FILE --login ID] [--tolerance N]\n"
            "  --plan       one line a minute: MINUTE_START_UNIX DEMAND (checks submitted)\n"
            "  --provider   the fake provider's GET /minutes?user=NAME answer\n"
            "  --user       the provider account the login's checks use\n"
            "  --limit      the login's limit\n"
            "  --history    GET /v1/history?login=...&step=60 (without: plan vs provider only)\n"
            "  --dom        Chromium --dump-dom of the dashboard: its chart points for\n"
            "               --login must equal --history's peaks\n"
            "  --login      the login (sfl's) whose chart --dom is read for\n"
            "  --tolerance  how far a history peak may be from the provider's (default 1)\n");
}

static long hc_parse_num(const char *s)
{
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    return errno || end == s || *end || n < 0 || n > INT_MAX ? -1 : n;
}

int main(int argc, char **argv)
{
    enum { O_PLAN = 1, O_HIST, O_PROV, O_USER, O_LOGIN, O_LIMIT, O_DOM, O_TOL, O_HELP };
    static const struct option opts[] = {
        {"plan", required_argument, NULL, O_PLAN},     {"history", required_argument, NULL, O_HIST},
        {"provider", required_argument, NULL, O_PROV}, {"user", required_argument, NULL, O_USER},
        {"limit", required_argument, NULL, O_LIMIT},   {"dom", required_argument, NULL, O_DOM},
        {"tolerance", required_argument, NULL, O_TOL}, {"help", no_argument, NULL, O_HELP},
        {"login", required_argument, NULL, O_LOGIN},   {NULL, 0, NULL, 0},
    };
    hc_opts o = {.limit = -1, .tolerance = 1};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_PLAN:
            o.plan = optarg;
            break;
        case O_HIST:
            o.history = optarg;
            break;
        case O_PROV:
            o.provider = optarg;
            break;
        case O_USER:
            o.user = optarg;
            break;
        case O_DOM:
            o.dom = optarg;
            break;
        case O_LOGIN:
            o.login = optarg;
            break;
        case O_LIMIT:
            if ((o.limit = hc_parse_num(optarg)) < 1) {
                fprintf(stderr, "history-compare: bad --limit %s (want 1 or more)\n", optarg);
                return 2;
            }
            break;
        case O_TOL:
            if ((o.tolerance = hc_parse_num(optarg)) < 0) {
                fprintf(stderr, "history-compare: bad --tolerance %s\n", optarg);
                return 2;
            }
            break;
        case O_HELP:
            hc_usage(stdout);
            return 0;
        default:
            hc_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !o.plan || !o.provider || !o.user || o.limit < 1 ||
        (o.dom && (!o.history || !o.login))) {
        hc_usage(stderr);
        return 2;
    }

    static hc_row rows[HC_MAX_MINUTES];
    int n = 0, chart_points = 0;
    if (hc_load_plan(&o, rows, &n) != 0 || hc_load_provider(&o, rows, n) != 0 ||
        (o.history && hc_load_history(&o, rows, n) != 0) ||
        (o.dom && hc_load_dom(&o, rows, n, &chart_points) != 0))
        return 2;

    int bad = 0;
    long demand = 0, opened = 0;
    printf("%-6s %6s %7s %8s %7s %6s %6s %7s %6s %6s %5s  %s\n", "minute", "demand", "planned",
           "provider", "history", "p.mean", "h.mean", "waiting", "grants", "opened", "chart",
           "verdict");
    for (int i = 0; i < n; i++) {
        hc_row *r = &rows[i];
        char when[8], hist[24] = "-", mean[32] = "-", wait[24] = "-", grants[24] = "-",
                      chart[24] = "-", verdict[96] = "";
        time_t t = (time_t)r->t;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%H:%M", &tm);
        demand += r->demand;
        opened += r->opened;
        if (r->prov < 0) {
            snprintf(verdict, sizeof(verdict), "MISSING at the provider");
        } else if (r->prov > o.limit) {
            snprintf(verdict, sizeof(verdict), "OVER THE LIMIT (%ld > %ld)", r->prov, o.limit);
        } else if (r->has_hist && r->hist < 0) {
            snprintf(verdict, sizeof(verdict), "MISSING in /v1/history");
        } else if (r->has_hist && labs(r->hist - r->prov) > o.tolerance) {
            snprintf(verdict, sizeof(verdict), "MISMATCH (|%ld - %ld| > %ld)", r->hist, r->prov,
                     o.tolerance);
        } else if (o.dom && r->chart != r->hist && r->chart != -3) {
            snprintf(verdict, sizeof(verdict), "CHART %s (history %ld)",
                     r->chart == -1   ? "MISSING"
                     : r->chart == -2 ? "EMPTY"
                                      : "DIFFERS",
                     r->hist);
        }
        if (verdict[0] != '\0')
            bad++;
        else
            snprintf(verdict, sizeof(verdict), "ok%s", r->prov != r->planned ? " ~plan" : "");
        if (r->hist >= 0) {
            snprintf(hist, sizeof(hist), "%ld", r->hist);
            snprintf(mean, sizeof(mean), "%.2f", r->mean);
            snprintf(wait, sizeof(wait), "%ld", r->waiting);
            snprintf(grants, sizeof(grants), "%ld", r->grants);
        }
        if (r->chart >= 0)
            snprintf(chart, sizeof(chart), "%ld", r->chart);
        else if (r->chart == -3)
            snprintf(chart, sizeof(chart), "<");
        printf("%-6s %6ld %7ld %8ld %7s %6.2f %6s %7s %6s %6ld %5s  %s\n", when, r->demand,
               r->planned, r->prov, hist, r->pmean, mean, wait, grants, r->opened, chart, verdict);
    }
    if (opened != demand) {
        printf("the provider admitted %ld connections in these minutes, the run submitted %ld "
               "checks: the load was not the one planned\n",
               opened, demand);
        bad++;
    }
    if (o.dom)
        printf("dashboard chart: %d points of the run's minutes found\n", chart_points);
    printf("%s: %d minutes, %ld checks, %d problem%s\n", bad ? "FAIL" : "PASS", n, demand, bad,
           bad == 1 ? "" : "s");
    return bad ? 1 : 0;
}
