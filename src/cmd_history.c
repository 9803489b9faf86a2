/* cmd_history.c - `sflimit status --history [--login ID]... [--since T]
 * [--step S] [--json]`: each login's use over time, straight from Redis.
 *
 * The logins are those the config routes checks through, and those of the
 * accounts Redis knows that the config does not name, as Redis describes
 * them (described.h: the one reader of that). Then every login's history is read
 * at once (history_read.c: one pipeline of hour keys each) and printed in
 * login order: a compact table per login, a sparkline of the peak against
 * the limit when stdout is a terminal, or with --json the document of
 * GET /v1/history per login, {"logins": [...]}.
 *
 * Reads only; nothing is written. Bad options are exit 2 naming the option,
 * a --login nobody knows too; Redis holding something that is not the
 * history format is exit 1 naming the key.
 */
#include "cmd_history.h"

#include "app.h"
#include "cli.h"
#include "conf.h"
#include "described.h"
#include "history_read.h"
#include "keys.h"
#include "routes.h"
#include "store.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ASKED 32 /* --login given this many times at most */

typedef struct hist_run {
    sfl_app app;
    int json;
    int tty;
    int started;
    const char *asked[MAX_ASKED];
    size_t nasked;
    sfl_history_range range;
    int64_t now_s;
    sfl_conf *conf;              /* the app's */
    sfl_described_login *logins; /* in id order once all are known */
    size_t nlogins;
    cJSON **docs; /* each login's history, once read */
    int owed;
    int failed;
} hist_run;

/*--- The logins ------------------------------------------------------------*/

typedef struct each_ctx {
    hist_run *run;
    int oom;
} each_ctx;

static void add_route(const sfl_route *rt, void *arg)
{
    each_ctx *e = arg;
    for (size_t i = 0; i < rt->nlogins; i++)
        if (!sfl_described_add(&e->run->logins, &e->run->nlogins, rt->logins[i]->id,
                               rt->logins[i]->prefix, rt->account))
            e->oom = 1;
}

/* The config's logins. -1 with a message. */
static int config_logins(hist_run *run)
{
    char err[512];
    sfl_routes *r = sfl_routes_new(run->conf->redis_namespace);
    if (!r || sfl_routes_set(r, run->conf->accounts, run->conf->naccounts, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: status: %s\n", r ? err : "out of memory");
        sfl_routes_free(r);
        return -1;
    }
    each_ctx e = {run, 0};
    sfl_routes_each(r, add_route, &e);
    sfl_routes_free(r);
    if (e.oom)
        fprintf(stderr, "sflimit: status: out of memory\n");
    return e.oom ? -1 : 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const sfl_described_login *)a)->id, ((const sfl_described_login *)b)->id);
}

/*--- Printing --------------------------------------------------------------*/

static double num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A wait in ms, short: "-", "12ms", "2.5s", "5m". */
static const char *wait_text(double ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 1000)
        snprintf(buf, len, "%gms", ms);
    else if (ms < 60000)
        snprintf(buf, len, "%gs", ms / 1000);
    else
        snprintf(buf, len, "%gm", ms / 60000);
    return buf;
}

static void print_sparkline(const cJSON *doc)
{
    static const char *const bars[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                        "\u2585", "\u2586", "\u2587", "\u2588"};
    const cJSON *p, *points = cJSON_GetObjectItem(doc, "points");
    double top = 0;
    cJSON_ArrayForEach(p, points)
    {
        double peak = num(p, "in_use_peak", 0), limit = num(p, "limit", 0);
        if (peak > top)
            top = peak;
        if (limit > top)
            top = limit;
    }
    printf("peak vs limit (%s = %g): ", bars[7], top);
    cJSON_ArrayForEach(p, points)
    {
        double peak = num(p, "in_use_peak", 0), limit = num(p, "limit", -1);
        if (num(p, "minutes", 0) == 0) {
            printf(" ");
            continue;
        }
        int level = top > 0 ? (int)(peak / top * 7 + 0.5) : 0;
        if (level > 7)
            level = 7;
        /* At or over its limit: bold, so that saturation shows. */
        int full = limit > 0 && peak >= limit;
        printf("%s%s%s", full ? "\033[1m" : "", bars[level < 0 ? 0 : level], full ? "\033[0m" : "");
    }
    printf("\n");
}

static void print_login(const hist_run *run, const sfl_described_login *l, const cJSON *doc)
{
    const cJSON *p;
    printf("login %s (account%s", l->id, l->naccounts == 1 ? "" : "s");
    for (size_t i = 0; i < l->naccounts; i++)
        printf("%s%lld", i ? ", " : " ", l->accounts[i]);
    double now = num(doc, "limit_now", -1);
    printf(")  limit now %s", now < 0 ? "?" : now == 0 ? "unlimited" : "");
    if (now > 0)
        printf("%g", now);
    printf("  step %gs\n", num(doc, "step_s", 60));
    printf("%-17s %9s %6s %9s %7s %6s %6s %13s %12s\n", "TIME (UTC)", "PEAK/LIM", "MEAN", "OTHERS",
           "WAITING", "GRANTS", "DENIED", "WAIT p50/p95", "LOST/PRE/REF");
    char gap[20] = "";
    int gaps = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "points"))
    {
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(p, "t"));
        char when[20], peak[32], others[32], waits[40], a[16], b[16], ends[48];
        snprintf(when, sizeof(when), "%.10s %.5s", t ? t : "?", t && strlen(t) > 11 ? t + 11 : "");
        /* Steps without a record: one line for a run of them. */
        if (num(p, "minutes", 0) == 0) {
            if (gaps++ == 0)
                snprintf(gap, sizeof(gap), "%s", when);
            if (p->next)
                continue;
        }
        if (gaps) {
            printf("%-17s %9s  (no record: %d step%s)\n", gap, "-", gaps, gaps > 1 ? "s" : "");
            gaps = 0;
            if (num(p, "minutes", 0) == 0)
                continue;
        }
        double limit = num(p, "limit", -1);
        if (limit > 0)
            snprintf(peak, sizeof(peak), "%g/%g", num(p, "in_use_peak", 0), limit);
        else
            snprintf(peak, sizeof(peak), "%g/%s", num(p, "in_use_peak", 0),
                     limit == 0 ? "unl" : "?");
        double om = num(p, "others_mean", -1);
        if (om < 0)
            snprintf(others, sizeof(others), "%g", num(p, "others_peak", 0));
        else
            snprintf(others, sizeof(others), "%g/%.1f", num(p, "others_peak", 0), om);
        snprintf(waits, sizeof(waits), "%s/%s", wait_text(num(p, "wait_p50_ms", -1), a, sizeof(a)),
                 wait_text(num(p, "wait_p95_ms", -1), b, sizeof(b)));
        snprintf(ends, sizeof(ends), "%g/%g/%g", num(p, "lost", 0), num(p, "preempted", 0),
                 num(p, "refused", 0));
        printf("%-17s %9s %6.2f %9s %7g %6g %6g %13s %12s\n", when, peak, num(p, "in_use_mean", 0),
               others, num(p, "waiting_peak", 0), num(p, "grants", 0), num(p, "denials", 0), waits,
               ends);
    }
    if (run->tty)
        print_sparkline(doc);
}

static void print_all(hist_run *run)
{
    if (run->json) {
        cJSON *doc = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(doc, "logins");
        for (size_t i = 0; list && i < run->nlogins; i++) {
            cJSON_AddItemToArray(list, run->docs[i]);
            run->docs[i] = NULL; /* the document's now */
        }
        char *text = cJSON_PrintUnformatted(doc);
        char *valid = text ? sfl_text_utf8_valid(text, strlen(text), NULL) : NULL;
        printf("%s\n", valid ? valid : "");
        free(valid);
        free(text);
        cJSON_Delete(doc);
    } else {
        char from[32], to[32];
        sfl_history_iso(run->range.from_s, from, sizeof(from));
        sfl_history_iso(run->range.to_s, to, sizeof(to));
        printf("history from %s to %s\n", from, to);
        if (run->nlogins == 0)
            printf("no logins: none in the config, none in Redis\n");
        for (size_t i = 0; i < run->nlogins; i++) {
            printf("\n");
            print_login(run, &run->logins[i], run->docs[i]);
        }
    }
    fflush(stdout);
}

/*--- The reads -------------------------------------------------------------*/

typedef struct login_ask {
    hist_run *run;
    size_t i; /* the login's index */
} login_ask;

static void reads_done(hist_run *run)
{
    if (--run->owed > 0)
        return;
    if (!run->failed)
        print_all(run);
    sfl_app_exit(&run->app, run->failed ? SFL_EXIT_FAIL : SFL_EXIT_OK);
}

static void on_history(cJSON *doc, int garbled, const char *err, void *arg)
{
    login_ask *a = arg;
    hist_run *run = a->run;
    if (doc) {
        run->docs[a->i] = cJSON_Duplicate(doc, 1);
        if (!run->docs[a->i])
            err = "out of memory";
    }
    if (!run->docs[a->i] && !run->failed) {
        fprintf(stderr, "sflimit: status: login %s: %s%s\n", run->logins[a->i].id, err,
                garbled ? " (not the history format)" : "");
        run->failed = 1;
    }
    free(a);
    reads_done(run);
}

/* Every login known: keep those asked for (an unknown one ends the run,
 * exit 2), in id order, and read them all. */
static void read_all(hist_run *run)
{
    for (size_t i = 0; i < run->nasked; i++)
        if (!sfl_described_find(run->logins, run->nlogins, run->asked[i])) {
            fprintf(stderr,
                    "sflimit: status: --login: unknown login \"%s\" (neither in the config nor "
                    "in an account Redis knows)\n",
                    run->asked[i]);
            sfl_app_exit(&run->app, SFL_EXIT_USAGE);
            return;
        }
    size_t kept = 0;
    for (size_t i = 0; i < run->nlogins; i++) {
        int want = run->nasked == 0;
        for (size_t k = 0; !want && k < run->nasked; k++)
            want = strcmp(run->asked[k], run->logins[i].id) == 0;
        if (want)
            run->logins[kept++] = run->logins[i];
        else
            free(run->logins[i].accounts);
    }
    run->nlogins = kept;
    if (kept > 1)
        qsort(run->logins, kept, sizeof(*run->logins), by_id);
    run->docs = calloc(kept + 1, sizeof(*run->docs));
    if (!run->docs) {
        sfl_app_fail(&run->app, "status: out of memory");
        return;
    }
    run->owed = 1;
    for (size_t i = 0; i < run->nlogins && !run->failed; i++) {
        const sfl_described_login *l = &run->logins[i];
        login_ask *a = calloc(1, sizeof(*a));
        char conf[SFL_KEY_LEN];
        snprintf(conf, sizeof(conf), "%sconf", l->prefix);
        sfl_history_query q = {.login = l->id,
                               .conf_key = conf,
                               .accounts = l->accounts,
                               .naccounts = l->naccounts,
                               .range = run->range,
                               .now_s = run->now_s};
        if (a)
            *a = (login_ask){run, i};
        if (!a || sfl_history_read(run->app.store, &q, on_history, a) < 0) {
            free(a);
            fprintf(stderr, "sflimit: status: Redis went away\n");
            run->failed = 1;
        } else {
            run->owed++;
        }
    }
    reads_done(run);
}

static int configured(const hist_run *run, long long id)
{
    for (size_t i = 0; i < run->conf->naccounts; i++)
        if (run->conf->accounts[i].id == id)
            return 1;
    return 0;
}

/* The accounts Redis knows: the logins of those the config does not name
 * join the config's, then every login is read. */
static void on_described(const sfl_described *d, const char *err, void *arg)
{
    hist_run *run = arg;
    if (!d) {
        sfl_app_fail(&run->app, "status: %s", err);
        return;
    }
    int oom = 0;
    for (size_t i = 0; i < d->naccounts; i++) {
        const sfl_described_account *a = &d->accounts[i];
        for (size_t k = 0; !configured(run, a->id) && k < a->nlogins; k++)
            oom |= !sfl_described_add(&run->logins, &run->nlogins, d->logins[a->logins[k].login].id,
                                      a->logins[k].prefix, a->id);
    }
    if (oom)
        sfl_app_fail(&run->app, "status: out of memory");
    else
        read_all(run);
}

static void on_ready(sfl_app *app, void *arg)
{
    hist_run *run = arg;
    if (run->started)
        return; /* a reconnect: the reads are under way */
    run->started = 1;
    if (sfl_described_read(app->store, on_described, run) < 0)
        sfl_app_fail(app, "status: Redis went away");
}

/*--- The command line ------------------------------------------------------*/

static const char usage[] =
    "usage: sflimit status --history [--login ID]... [--since T] [--step S] [--json]\n"
    "                      [-c CONFIG] [--redis URL]\n"
    "\n"
    "How each login was used over time, read from Redis: per step the peak in use\n"
    "against the limit, the mean, others' connections (peak/mean), waiting tickets,\n"
    "grants, denials, lease wait p50/p95 and checks lost/preempted/refused; on a\n"
    "terminal a sparkline of the peak against the limit. Every login of the config\n"
    "and of the accounts Redis knows, or the ones named with --login.\n"
    "\n"
    "--since T  from when: 24h (the default), 90m, 7d, Unix seconds or an ISO-8601\n"
    "           UTC time (2026-12-02T07:00:00Z)\n"
    "--step S   1m, 15m, 1h, 1d or seconds (a multiple of 60); default: the\n"
    "           shortest of 1m 5m 15m 30m 1h 3h 6h 12h 1d giving at most 48 rows\n"
    "--json     {\"logins\": [...]}, each as GET /v1/history answers\n";

enum { OPT_REDIS = 1000, OPT_JSON, OPT_HISTORY, OPT_LOGIN, OPT_SINCE, OPT_STEP };

static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                     {"redis", required_argument, NULL, OPT_REDIS},
                                     {"json", no_argument, NULL, OPT_JSON},
                                     {"history", no_argument, NULL, OPT_HISTORY},
                                     {"login", required_argument, NULL, OPT_LOGIN},
                                     {"since", required_argument, NULL, OPT_SINCE},
                                     {"step", required_argument, NULL, OPT_STEP},
                                     {"help", no_argument, NULL, 'h'},
                                     {NULL, 0, NULL, 0}};

int sfl_cmd_wants_history(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--history") == 0)
            return 1;
    return 0;
}

/* The range: --since as a time, or a bare amount ("24h") as that long ago;
 * without --step, the shortest usual step giving at most 48 rows. */
static int make_range(hist_run *run, const char *since, const char *step)
{
    static const char *const steps[] = {"1m", "5m", "15m", "30m", "1h", "3h", "6h", "12h", "1d"};
    char ago[64], err[512];
    size_t n = strlen(since);
    if (n > 1 && n < sizeof(ago) - 1 && since[0] >= '0' && since[0] <= '9' &&
        strchr("smhdw", since[n - 1])) {
        snprintf(ago, sizeof(ago), "-%s", since);
        since = ago;
    }
    sfl_history_ask ask = {
        .from = since, .step = step, .from_name = "--since", .step_name = "--step"};
    for (size_t i = 0; !step && i < sizeof(steps) / sizeof(steps[0]); i++) {
        ask.step = steps[i];
        if (sfl_history_range_make(&ask, run->now_s, &run->range, err, sizeof(err)) == 0 &&
            run->range.npoints <= 48)
            return 0;
    }
    if (!step)
        ask.step = NULL; /* longer than 48 days: the API's default */
    if (sfl_history_range_make(&ask, run->now_s, &run->range, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: status: %s\n", err);
        return -1;
    }
    return 0;
}

int sfl_cmd_status_history(int argc, char **argv)
{
    hist_run run = {.app.rc = SFL_EXIT_OK, .now_s = (int64_t)time(NULL)};
    const char *config = NULL, *redis = NULL, *since = "24h", *step = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case OPT_REDIS:
            redis = optarg;
            break;
        case OPT_JSON:
            run.json = 1;
            break;
        case OPT_HISTORY:
            break;
        case OPT_LOGIN:
            if (!sfl_login_id_valid(optarg)) {
                fprintf(stderr,
                        "sflimit: status: --login: expected 1 to 64 letters, digits, '.', '_' or "
                        "'-', got '%s'\n",
                        optarg);
                return SFL_EXIT_USAGE;
            }
            if (run.nasked == MAX_ASKED) {
                fprintf(stderr, "sflimit: status: --login: at most %d\n", MAX_ASKED);
                return SFL_EXIT_USAGE;
            }
            run.asked[run.nasked++] = optarg;
            break;
        case OPT_SINCE:
            since = optarg;
            break;
        case OPT_STEP:
            step = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return SFL_EXIT_OK;
        default:
            fputs(usage, stderr);
            return SFL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sflimit: status: unexpected argument '%s'\n", argv[optind]);
        return SFL_EXIT_USAGE;
    }
    if (make_range(&run, since, step) < 0)
        return SFL_EXIT_USAGE;
    sfl_conf *conf = sfl_cli_conf(config, redis);
    if (!conf)
        return SFL_EXIT_USAGE;
    run.conf = conf;
    run.tty = !run.json && isatty(STDOUT_FILENO);
    if (config_logins(&run) < 0) {
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    char err[512];
    int rc;
    if (sfl_app_open(&run.app, conf, 0, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        rc = SFL_EXIT_FAIL;
    } else {
        run.app.on_ready = on_ready;
        run.app.on_unreachable = sfl_app_unreachable;
        run.app.arg = &run;
        rc = sfl_app_run(&run.app, conf->connect_timeout_ms * 2);
        sfl_app_close(&run.app);
    }
    for (size_t i = 0; run.docs && i < run.nlogins; i++)
        cJSON_Delete(run.docs[i]);
    free(run.docs);
    sfl_described_logins_free(run.logins, run.nlogins);
    return rc;
}
