/* cmd_accounts.c - `sflimit accounts set|list|sync` and `sflimit status`.
 *
 * The commands around the account limits in Redis: argument parsing, the
 * run on the event loop, and what they print. Writing and reading the
 * limits is accounts.c's; fetching them from Dispatcharr and writing them
 * is the sync's (dispatcharr_sync.c). This file only decides what to do and
 * says what happened; it never builds a Redis key or a command itself.
 * Names are text from people and other programs: a --name with a control
 * character is refused, and whatever Redis holds (it may have been written
 * by hand) is printed escaped (text.c), --json as valid UTF-8.
 */
#include "cmd_accounts.h"

#include "accounts.h"
#include "app.h"
#include "cli.h"
#include "clock.h"
#include "cmd_history.h"
#include "conf.h"
#include "dispatcharr_sync.h"
#include "keys.h"
#include "log.h"
#include "store.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <event2/event.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*--- One run ---------------------------------------------------------------*/

typedef struct cli_run {
    sfl_app app;
    int json;
    int fresh;
    int watch;
    struct event *again;
    sfl_account_conf one;         /* accounts set */
    const sfl_account_conf *accs; /* what to write */
    size_t naccs;
    int is_set;
    int from_dispatcharr; /* accounts sync with dispatcharr.url set */
    sfl_dispatcharr_sync *sync;
    int started; /* the sync was started (once: a reconnect leaves it be) */
} cli_run;

/*--- Showing and setting limits --------------------------------------------*/

/* A string member of o made safe for a terminal (control characters and
 * bytes that are not UTF-8 escaped: Redis may hold anything written by
 * hand), at most len - 1 bytes, never cut inside a character; "?" when it
 * is not a string. Returns buf. */
static const char *shown(const cJSON *o, const char *key, char *buf, size_t len)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsString(v))
        snprintf(buf, len, "?");
    else
        sfl_text_escape(v->valuestring, buf, len);
    return buf;
}

static void limit_text(double max, char *buf, size_t len)
{
    if (max < 0)
        snprintf(buf, len, "?");
    else if (max == 0)
        snprintf(buf, len, "unlim");
    else
        snprintf(buf, len, "%.0f", max);
}

/* Under an account of several logins (or one not named after it), a line
 * per login: its id, limit and use. */
static void print_learned(const cJSON *l);
static void print_logins(const cJSON *a)
{
    const cJSON *logins = cJSON_GetObjectItem(a, "logins"), *l;
    const cJSON *first = logins ? logins->child : NULL;
    char self[24], id[80], limit[24];
    snprintf(self, sizeof(self), "%.0f", cJSON_GetObjectItem(a, "id")->valuedouble);
    const cJSON *fx = first ? cJSON_GetObjectItem(first, "external") : NULL,
                *fr = first ? cJSON_GetObjectItem(first, "reserve") : NULL;
    int plain = first && !(cJSON_IsNumber(fx) && fx->valuedouble > 0) &&
                !(cJSON_IsNumber(fr) && fr->valuedouble > 0) &&
                !cJSON_IsTrue(cJSON_GetObjectItem(first, "stale")) &&
                !cJSON_IsObject(cJSON_GetObjectItem(first, "panel")) &&
                !cJSON_IsObject(cJSON_GetObjectItem(first, "learned"));
    if (!first || (!first->next && plain && strcmp(shown(first, "id", id, sizeof(id)), self) == 0))
        return;
    cJSON_ArrayForEach(l, logins)
    {
        const cJSON *max = cJSON_GetObjectItem(l, "max_streams"),
                    *use = cJSON_GetObjectItem(l, "in_use");
        limit_text(cJSON_IsNumber(max) ? max->valuedouble : -1, limit, sizeof(limit));
        printf("  login %-26s %6s %7.0f", shown(l, "id", id, sizeof(id)), limit,
               cJSON_IsNumber(use) ? use->valuedouble : 0.0);
        /* What else counts on it: others' connections, slots kept. */
        const cJSON *ext = cJSON_GetObjectItem(l, "external"),
                    *res = cJSON_GetObjectItem(l, "reserve");
        char src[40];
        if (cJSON_IsNumber(ext) && ext->valuedouble > 0)
            printf("  +%.0f others (%s)", ext->valuedouble,
                   shown(l, "external_source", src, sizeof(src)));
        if (cJSON_IsNumber(res) && res->valuedouble > 0)
            printf("  +%.0f kept", res->valuedouble);
        if (cJSON_IsTrue(cJSON_GetObjectItem(l, "stale")))
            printf("  [no fresh viewer count: no new checks]");
        print_learned(l);
        printf("\n");
    }
}

/* A login's effective limit when it is not its max_streams (and why), its
 * panel's plan, and a plan that ends within 7 days. */
static void print_learned(const cJSON *l)
{
    const cJSON *eff = cJSON_GetObjectItem(l, "effective_limit"),
                *max = cJSON_GetObjectItem(l, "max_streams");
    const cJSON *learned = cJSON_GetObjectItem(l, "learned"),
                *panel = cJSON_GetObjectItem(l, "panel");
    char text[200];
    if (cJSON_IsNumber(eff) && cJSON_IsNumber(max) && eff->valuedouble != max->valuedouble) {
        limit_text(eff->valuedouble, text, sizeof(text));
        printf("  effective %s", text);
    }
    if (cJSON_IsObject(learned))
        printf("  [learned: %s]", shown(learned, "reason", text, sizeof(text)));
    if (cJSON_IsObject(panel)) {
        printf("  panel: %s", shown(panel, "status", text, sizeof(text)));
        const cJSON *left = cJSON_GetObjectItem(panel, "expires_in_s");
        if (cJSON_IsNumber(left))
            printf(", expires in %.1f days", left->valuedouble / 86400);
        if (cJSON_IsTrue(cJSON_GetObjectItem(panel, "expiring")))
            printf(" [EXPIRING]");
    }
}

static void print_table(cJSON *doc, int holders)
{
    cJSON *list = cJSON_GetObjectItem(doc, "accounts");
    printf("%-8s %-24s %6s %7s %7s  %s\n", "ACCOUNT", "NAME", "LIMIT", "IN USE", "WAITING",
           holders ? "HOLDERS (node/stream, age, fence)" : "");
    cJSON *a;
    cJSON_ArrayForEach(a, list)
    {
        char name[25], node[200], stream[200];
        char limit[24];
        limit_text(cJSON_GetObjectItem(a, "max_streams")->valuedouble, limit, sizeof(limit));
        printf("%-8lld %-24s %6s %7lld %7lld ",
               (long long)cJSON_GetObjectItem(a, "id")->valuedouble,
               shown(a, "name", name, sizeof(name)), limit,
               (long long)cJSON_GetObjectItem(a, "in_use")->valuedouble,
               (long long)cJSON_GetObjectItem(a, "waiting")->valuedouble);
        long long rec = (long long)cJSON_GetObjectItem(a, "recovering_ms")->valuedouble;
        if (rec > 0)
            printf(" [recovering, %lld ms]", rec);
        cJSON *h, *hl = holders ? cJSON_GetObjectItem(a, "holders") : NULL;
        cJSON_ArrayForEach(h, hl)
        {
            cJSON *age = cJSON_GetObjectItem(h, "age_ms"), *fence = cJSON_GetObjectItem(h, "fence");
            printf(" %s/%s %.1fs #%.0f", shown(h, "node", node, sizeof(node)),
                   shown(h, "stream", stream, sizeof(stream)),
                   cJSON_IsNumber(age) ? age->valuedouble / 1000.0 : 0.0,
                   cJSON_IsNumber(fence) ? fence->valuedouble : 0.0);
        }
        printf("\n");
        print_logins(a);
    }
}

static void on_fetched(cJSON *doc, const char *err, void *arg)
{
    cli_run *run = arg;
    if (!doc) {
        sfl_app_fail(&run->app, "%s", err);
        return;
    }
    if (run->json) {
        /* UTF-8 whatever Redis holds: a name written there by hand may not be. */
        char *text = cJSON_PrintUnformatted(doc);
        char *valid = text ? sfl_text_utf8_valid(text, strlen(text), NULL) : NULL;
        printf("%s\n", valid ? valid : "");
        free(valid);
        free(text);
    } else {
        if (run->watch) {
            char now[32];
            sfl_wall_iso(now, sizeof(now));
            printf("\033[H\033[J%s  (every 1 s; Ctrl-C to stop)\n\n", now);
        }
        print_table(doc, !run->is_set);
    }
    fflush(stdout);
    if (run->watch) {
        struct timeval tv = {1, 0};
        evtimer_add(run->again, &tv);
        return;
    }
    event_base_loopbreak(run->app.base);
}

static void on_again(evutil_socket_t fd, short what, void *arg)
{
    cli_run *run = arg;
    UNUSED(fd);
    UNUSED(what);
    if (sfl_accounts_fetch(run->app.store, on_fetched, run) < 0) {
        /* Redis away: try again in a second (the table says so). */
        printf("\033[H\033[JRedis is not reachable: %s\n", sfl_store_errstr(run->app.store));
        fflush(stdout);
        struct timeval tv = {1, 0};
        evtimer_add(run->again, &tv);
    }
}

/* status --watch: Ctrl-C ends it, with exit 0. */
static void on_interrupt(sfl_app *app, int sig, void *arg)
{
    UNUSED(sig);
    UNUSED(arg);
    event_base_loopbreak(app->base);
}

static void on_written(int ok, const char *err, void *arg)
{
    cli_run *run = arg;
    if (!ok) {
        sfl_app_fail(&run->app, "%s", err);
        return;
    }
    for (size_t i = 0; i < run->naccs; i++)
        printf("account %lld: max_streams %lld%s\n", run->accs[i].id, run->accs[i].max_streams,
               run->accs[i].max_streams == 0 ? " (unlimited)" : "");
    event_base_loopbreak(run->app.base);
}

/*--- `sflimit accounts sync` from Dispatcharr ------------------------------*/

static void on_synced(const sfl_account_conf *accs, const long long *was, size_t n, const char *err,
                      void *arg)
{
    cli_run *run = arg;
    if (err) {
        sfl_app_fail(&run->app, "%s", err);
        return;
    }
    if (n == 0)
        fprintf(stderr, "sflimit: dispatcharr: no active M3U accounts; nothing written\n");
    for (size_t i = 0; i < n; i++) {
        char *name = sfl_text_escape_dup(accs[i].name ? accs[i].name : "");
        printf("account %lld (%s): max_streams %lld", accs[i].id, name ? name : "?",
               accs[i].max_streams);
        free(name);
        if (was[i] < 0)
            printf(" (new)\n");
        else if (was[i] == accs[i].max_streams)
            printf(" (unchanged)\n");
        else
            printf(" (was %lld)\n", was[i]);
    }
    fflush(stdout);
    sfl_app_exit(&run->app, SFL_EXIT_OK);
}

/* accounts set ID MAX makes the account one login: refused for an account
 * whose logins Redis describes (account.lua), which would otherwise be
 * flattened behind the back of the nodes that route it through them. */
static void on_described(sfl_store *st, redisReply *r, void *arg)
{
    cli_run *run = arg;
    UNUSED(st);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        sfl_app_fail(&run->app, "Redis went away");
        return;
    }
    if (r->element[0]->type == REDIS_REPLY_STRING || r->element[1]->type == REDIS_REPLY_STRING) {
        fprintf(stderr,
                "sflimit: accounts set: account %lld has logins (sflimit status shows them): "
                "change them in the config or with PUT /v1/accounts/%lld {\"logins\": [...]}\n",
                run->one.id, run->one.id);
        sfl_app_exit(&run->app, SFL_EXIT_USAGE);
        return;
    }
    if (sfl_accounts_write(run->app.store, NULL, run->accs, run->naccs,
                           run->fresh ? 0 : run->app.recovery_ms, SFL_ACCOUNTS_FORGET, on_written,
                           run) < 0)
        sfl_app_fail(&run->app, "Redis went away");
}

/*--- The loop --------------------------------------------------------------*/

static void on_ready(sfl_app *app, void *arg)
{
    cli_run *run = arg;
    int r;
    if (run->sync) {
        if (run->started)
            return; /* a reconnect: the sync already runs */
        run->started = 1;
        if (sfl_dispatcharr_sync_run(run->sync, app->store, app->recovery_ms, on_synced, run) < 0)
            sfl_app_fail(app, "dispatcharr: %s", sfl_dispatcharr_sync_errstr(run->sync));
        return;
    }
    if (run->is_set && run->accs == &run->one) {
        char key[SFL_KEY_LEN];
        sfl_account_key(key, sizeof(key), sfl_store_ns(app->store), run->one.id, "conf");
        const char *argv[4] = {"HMGET", key, "logins", "group"};
        r = sfl_store_command(app->store, on_described, run, 4, argv);
    } else if (run->is_set)
        r = sfl_accounts_write(app->store, NULL, run->accs, run->naccs,
                               run->fresh ? 0 : app->recovery_ms, SFL_ACCOUNTS_FORGET, on_written,
                               run);
    else if (run->watch && app->ready_count > 1)
        return; /* the watch timer is already running */
    else
        r = sfl_accounts_fetch(app->store, on_fetched, run);
    if (r < 0)
        sfl_app_fail(app, "Redis went away");
}

/* Takes ownership of conf. Returns the exit code. */
static int cli_run_loop(cli_run *run, sfl_conf *conf)
{
    char err[512];
    if (run->fresh)
        run->app.epoch_mode = SFL_EPOCH_FRESH; /* a missing epoch marker: no window */
    if (sfl_app_open(&run->app, conf, 0, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        return SFL_EXIT_FAIL;
    }
    int rc;
    if (run->from_dispatcharr) {
        run->sync = sfl_dispatcharr_sync_new(run->app.base, run->app.conf, err, sizeof(err));
        if (!run->sync) {
            fprintf(stderr, "sflimit: dispatcharr: %s\n", err);
            rc = SFL_EXIT_USAGE;
            goto done;
        }
        run->app.rc = SFL_EXIT_FAIL; /* until it is done */
    }
    if (run->watch) {
        run->again = evtimer_new(run->app.base, on_again, run);
        if (!run->again) {
            fprintf(stderr, "sflimit: out of memory\n");
            rc = SFL_EXIT_FAIL;
            goto done;
        }
        run->app.on_signal = on_interrupt;
        run->app.sigint_only = 1; /* SIGTERM ends it as it always would */
    }
    run->app.on_ready = on_ready;
    run->app.on_unreachable = sfl_app_unreachable;
    run->app.arg = run;
    rc = sfl_app_run(&run->app, run->app.conf->connect_timeout_ms * 2);
done:
    if (run->again)
        event_free(run->again);
    sfl_dispatcharr_sync_free(run->sync); /* before the loop it lives on */
    sfl_app_close(&run->app);
    return rc;
}

/*--- Command lines ---------------------------------------------------------*/

static const char accounts_usage[] =
    "usage: sflimit accounts set ID MAX [--name NAME] [--fresh] [-c CONFIG] [--redis URL]\n"
    "       sflimit accounts list [--json] [-c CONFIG] [--redis URL]\n"
    "       sflimit accounts sync [-c CONFIG] [--redis URL]\n"
    "\n"
    "set   writes account ID's limit to Redis (MAX 0 = unlimited); its leases\n"
    "      grant at once. On a Redis without sfl's epoch marker (new, or it lost\n"
    "      its data) every account first waits one lease TTL, so that checks\n"
    "      still running re-take their slots; --fresh (or `sflimit init`) marks\n"
    "      a Redis no check has used, without that wait.\n"
    "list  shows every account Redis knows, with its limit and use.\n"
    "sync  writes the config's accounts to Redis.\n";

static const char status_usage[] =
    "usage: sflimit status [--json] [--watch] [-c CONFIG] [--redis URL]\n"
    "       sflimit status --history [--login ID] [--since 24h] [--step 1h] [--json]\n"
    "\n"
    "Shows every account: limit, in use cluster-wide, nodes waiting for a slot,\n"
    "and who holds its slots (node/stream, age, fencing token). --watch redraws\n"
    "every second. --history shows each login's use over time instead\n"
    "(sflimit status --history --help).\n";

enum { OPT_REDIS = 1000, OPT_JSON, OPT_NAME, OPT_FRESH, OPT_WATCH };

static const struct option cli_opts[] = {
    {"config", required_argument, NULL, 'c'}, {"redis", required_argument, NULL, OPT_REDIS},
    {"json", no_argument, NULL, OPT_JSON},    {"name", required_argument, NULL, OPT_NAME},
    {"fresh", no_argument, NULL, OPT_FRESH},  {"watch", no_argument, NULL, OPT_WATCH},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};

static int cli_common(int argc, char **argv, const char *usage, cli_run *run, const char **name,
                      sfl_conf **conf)
{
    const char *config = NULL, *redis = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", cli_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case OPT_REDIS:
            redis = optarg;
            break;
        case OPT_JSON:
            run->json = 1;
            break;
        case OPT_NAME:
            *name = optarg;
            break;
        case OPT_FRESH:
            run->fresh = 1;
            break;
        case OPT_WATCH:
            run->watch = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return SFL_EXIT_OK;
        default:
            fputs(usage, stderr);
            return SFL_EXIT_USAGE;
        }
    }
    *conf = sfl_cli_conf(config, redis);
    return *conf ? -1 : SFL_EXIT_USAGE;
}

int sfl_cmd_accounts(int argc, char **argv)
{
    cli_run run = {.app.rc = SFL_EXIT_OK};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(accounts_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SFL_EXIT_USAGE : SFL_EXIT_OK;
    }
    const char *verb = argv[1];
    /* getopt would take "-5" for an option and say "invalid option -- '5'". */
    for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (argv[i][0] == '-' && (isdigit((unsigned char)argv[i][1]) || argv[i][1] == '.')) {
            fprintf(stderr, "sflimit: accounts %s: ID and MAX must be whole numbers >= 0, got %s\n",
                    verb, argv[i]);
            return SFL_EXIT_USAGE;
        }
    /* Options may come anywhere: gather positionals after getopt. */
    const char *name = NULL;
    sfl_conf *conf = NULL;
    int rc = cli_common(argc - 1, argv + 1, accounts_usage, &run, &name, &conf);
    if (rc >= 0)
        return rc;
    int npos = argc - 1 - optind;
    char **pos = argv + 1 + optind;
    if (strcmp(verb, "set") == 0) {
        if (npos != 2) {
            fprintf(stderr, "sflimit: accounts set: expected ID and MAX\n%s", accounts_usage);
            sfl_conf_free(conf);
            return SFL_EXIT_USAGE;
        }
        if (sfl_cli_integer("accounts set: ID", pos[0], 0, &run.one.id) < 0 ||
            sfl_cli_integer("accounts set: MAX", pos[1], 0, &run.one.max_streams) < 0) {
            sfl_conf_free(conf);
            return SFL_EXIT_USAGE;
        }
        char why[96];
        if (name && sfl_text_check(name, why, sizeof(why)) < 0) {
            fprintf(stderr, "sflimit: accounts set: --name %s\n", why);
            sfl_conf_free(conf);
            return SFL_EXIT_USAGE;
        }
        run.one.name = (char *)name;
        run.accs = &run.one;
        run.naccs = 1;
        run.is_set = 1;
        return cli_run_loop(&run, conf);
    }
    if (strcmp(verb, "list") == 0 && npos == 0)
        return cli_run_loop(&run, conf);
    if (strcmp(verb, "sync") == 0 && npos == 0) {
        /* From Dispatcharr when dispatcharr.url is set; without it, the
         * config's accounts. */
        if (conf->dispatcharr_url) {
            run.from_dispatcharr = 1;
            return cli_run_loop(&run, conf);
        }
        if (conf->naccounts == 0) {
            fprintf(stderr, "sflimit: accounts sync: the config has no accounts and no "
                            "dispatcharr.url\n");
            sfl_conf_free(conf);
            return SFL_EXIT_USAGE;
        }
        run.accs = conf->accounts;
        run.naccs = conf->naccounts;
        run.is_set = 1;
        return cli_run_loop(&run, conf);
    }
    fprintf(stderr, "sflimit: accounts: unknown or malformed subcommand '%s'\n%s", verb,
            accounts_usage);
    sfl_conf_free(conf);
    return SFL_EXIT_USAGE;
}

int sfl_cmd_status(int argc, char **argv)
{
    if (sfl_cmd_wants_history(argc, argv))
        return sfl_cmd_status_history(argc, argv);
    cli_run run = {.app.rc = SFL_EXIT_OK};
    const char *name = NULL;
    sfl_conf *conf = NULL;
    int rc = cli_common(argc, argv, status_usage, &run, &name, &conf);
    if (rc >= 0)
        return rc;
    if (optind != argc) {
        fprintf(stderr, "sflimit: status: unexpected argument '%s'\n", argv[optind]);
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    return cli_run_loop(&run, conf);
}
