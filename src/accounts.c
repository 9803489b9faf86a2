/* accounts.c - account limits in Redis, and the commands that show them.
 *
 * Redis is where every node reads limits from (DESIGN §4): this file writes
 * them (conf.lua, which also opens the recovery window when it creates a conf
 * that did not exist) and reads them back with their live holders
 * (status.lua). The same JSON document serves `sflimit status --json` and
 * the node's GET /v1/accounts.
 */
#include "accounts.h"

#include "app.h"
#include "cli.h"
#include "clock.h"
#include "conf.h"
#include "dispatcharr.h"
#include "keys.h"
#include "limiter.h"
#include "log.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <ctype.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/*--- Writing limits --------------------------------------------------------*/

typedef struct write_op {
    sfl_accounts_done_fn *fn;
    void *arg;
    int owed;
    int ok;
    char err[256];
} write_op;

typedef struct write_one {
    write_op *op;
    long long id;
    long long max;
} write_one;

static void write_done_one(write_op *op)
{
    if (--op->owed == 0) {
        op->fn(op->ok, op->ok ? NULL : op->err, op->arg);
        free(op);
    }
}

static void write_step(write_op *op, redisReply *r, const char *what)
{
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (op->ok)
            snprintf(op->err, sizeof(op->err), "%s: %s", what,
                     r ? r->str : "no answer from Redis");
        op->ok = 0;
    }
    write_done_one(op);
}

static void on_conf_reply(sfl_store *st, redisReply *r, void *arg)
{
    write_one *w = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        long long prev = r->element[0]->integer;
        if (prev >= 0 && prev != w->max)
            sfl_info("account %lld: max_streams was %lld in Redis, now %lld", w->id, prev,
                     w->max);
        if (r->element[1]->integer > 0)
            sfl_info("account %lld: new in this Redis; new leases wait %lld ms in case its "
                     "data was lost while checks ran",
                     w->id, r->element[1]->integer);
    }
    write_step(w->op, r, "writing account limits");
    free(w);
}

static void on_sadd_reply(sfl_store *st, redisReply *r, void *arg)
{
    UNUSED(st);
    write_step(arg, r, "adding accounts");
}

int sfl_accounts_write(sfl_store *st, const sfl_account_conf *acc, size_t n, int64_t recovery_ms,
                       sfl_accounts_done_fn *fn, void *arg)
{
    if (!sfl_store_ready(st))
        return -1;
    write_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = fn;
    op->arg = arg;
    op->ok = 1;
    op->owed = 1; /* held until every command is sent */
    const char *ns = sfl_store_ns(st);
    char rec[24];
    snprintf(rec, sizeof(rec), "%" PRId64, recovery_ms);
    char setkey[160];
    snprintf(setkey, sizeof(setkey), "%s:accounts", ns);
    for (size_t i = 0; i < n; i++) {
        char key[160], max[24], id[24];
        sfl_account_key(key, sizeof(key), ns, acc[i].id, "conf");
        snprintf(max, sizeof(max), "%lld", acc[i].max_streams);
        snprintf(id, sizeof(id), "%lld", acc[i].id);
        const char *keys[1] = {key};
        const char *args[3] = {max, acc[i].name ? acc[i].name : "", rec};
        write_one *w = malloc(sizeof(*w));
        if (w) {
            *w = (write_one){op, acc[i].id, acc[i].max_streams};
            op->owed++;
            if (sfl_store_eval(st, "conf", 1, keys, 3, args, on_conf_reply, w) < 0) {
                op->owed--;
                free(w);
                w = NULL;
            }
        }
        const char *sadd[3] = {"SADD", setkey, id};
        op->owed++;
        if (!w || sfl_store_command(st, on_sadd_reply, op, 3, sadd) < 0) {
            op->owed--;
            op->ok = 0;
            snprintf(op->err, sizeof(op->err), "Redis went away while writing account limits");
        }
    }
    write_done_one(op);
    return 0;
}

/*--- Reading accounts ------------------------------------------------------*/

typedef struct fetch_op {
    sfl_accounts_fetch_fn *fn;
    void *arg;
    cJSON *doc;
    cJSON *list;
    int owed;
    int failed;
} fetch_op;

typedef struct fetch_one {
    fetch_op *op;
    cJSON *entry;
} fetch_one;

static void fetch_step(fetch_op *op)
{
    if (--op->owed > 0)
        return;
    if (op->failed)
        op->fn(NULL, "no answer from Redis while reading accounts", op->arg);
    else
        op->fn(op->doc, NULL, op->arg);
    cJSON_Delete(op->doc);
    free(op);
}

/* An integer element of a script's answer; 0 when it is something else. */
static long long rep_int(const redisReply *e)
{
    return e->type == REDIS_REPLY_INTEGER ? e->integer : 0;
}

/* Deletes every member named key (a JSON text may give one twice). */
static void drop_member(cJSON *obj, const char *key)
{
    while (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
}

/* Sets obj[key] = item, replacing every member of that name. */
static void set_member(cJSON *obj, const char *key, cJSON *item)
{
    drop_member(obj, key);
    cJSON_AddItemToObject(obj, key, item);
}

int sfl_accounts_status_decode(const redisReply *r, cJSON *e)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 6)
        return -1;
    /* Differences in double: any two int64 from Redis subtract without overflow. */
    double now = (double)rep_int(r->element[4]);
    const redisReply *name = r->element[1];
    cJSON_AddStringToObject(e, "name", name->type == REDIS_REPLY_STRING ? name->str : "");
    cJSON_AddNumberToObject(e, "max_streams", (double)rep_int(r->element[0]));
    cJSON_AddNumberToObject(e, "in_use", (double)rep_int(r->element[2]));
    cJSON_AddNumberToObject(e, "recovering_ms", (double)rep_int(r->element[3]));
    cJSON_AddNumberToObject(e, "waiting", (double)rep_int(r->element[5]));
    cJSON *holders = cJSON_AddArrayToObject(e, "holders");
    for (size_t i = 6; holders && i + 2 < r->elements; i += 3) {
        const redisReply *lease = r->element[i], *info = r->element[i + 2];
        cJSON *h = info->type == REDIS_REPLY_STRING ? cJSON_Parse(info->str) : NULL;
        if (!cJSON_IsObject(h)) {
            cJSON_Delete(h);
            h = cJSON_CreateObject();
            if (!h)
                continue;
        }
        cJSON *since = cJSON_GetObjectItemCaseSensitive(h, "since_ms");
        if (cJSON_IsNumber(since)) {
            set_member(h, "age_ms", cJSON_CreateNumber(now - since->valuedouble));
        }
        drop_member(h, "since_ms");
        set_member(h, "lease",
                   cJSON_CreateString(lease->type == REDIS_REPLY_STRING ? lease->str : ""));
        set_member(h, "expires_in_ms",
                   cJSON_CreateNumber((double)rep_int(r->element[i + 1]) - now));
        cJSON_AddItemToArray(holders, h);
    }
    return 0;
}

static void on_status_reply(sfl_store *st, redisReply *r, void *arg)
{
    fetch_one *f = arg;
    UNUSED(st);
    if (sfl_accounts_status_decode(r, f->entry) < 0)
        f->op->failed = 1;
    fetch_step(f->op);
    free(f);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void on_members_reply(sfl_store *st, redisReply *r, void *arg)
{
    fetch_op *op = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        op->failed = 1;
        fetch_step(op);
        return;
    }
    long long *ids = calloc(r->elements + 1, sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; ids && i < r->elements; i++) {
        char *end;
        const char *s = r->element[i]->str;
        long long v = s ? strtoll(s, &end, 10) : -1;
        if (s && *s && !*end && v >= 0)
            ids[n++] = v;
    }
    qsort(ids, n, sizeof(*ids), cmp_ll);
    for (size_t i = 0; i < n; i++) {
        char keys[4][160];
        sfl_account_key(keys[0], 160, sfl_store_ns(st), ids[i], "leases");
        sfl_account_key(keys[1], 160, sfl_store_ns(st), ids[i], "holders");
        sfl_account_key(keys[2], 160, sfl_store_ns(st), ids[i], "conf");
        sfl_account_key(keys[3], 160, sfl_store_ns(st), ids[i], "waiters:exp");
        const char *kv[4] = {keys[0], keys[1], keys[2], keys[3]};
        fetch_one *f = malloc(sizeof(*f));
        if (!f) {
            op->failed = 1;
            break;
        }
        f->op = op;
        f->entry = cJSON_CreateObject();
        cJSON_AddNumberToObject(f->entry, "id", (double)ids[i]);
        cJSON_AddItemToArray(op->list, f->entry);
        op->owed++;
        if (sfl_store_eval(st, "status", 4, kv, 0, NULL, on_status_reply, f) < 0) {
            op->owed--;
            op->failed = 1;
            free(f);
            break;
        }
    }
    free(ids);
    fetch_step(op);
}

int sfl_accounts_fetch(sfl_store *st, sfl_accounts_fetch_fn *fn, void *arg)
{
    fetch_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = fn;
    op->arg = arg;
    op->doc = cJSON_CreateObject();
    op->list = cJSON_AddArrayToObject(op->doc, "accounts");
    op->owed = 1;
    char setkey[160];
    snprintf(setkey, sizeof(setkey), "%s:accounts", sfl_store_ns(st));
    const char *argv[2] = {"SMEMBERS", setkey};
    if (sfl_store_command(st, on_members_reply, op, 2, argv) < 0) {
        cJSON_Delete(op->doc);
        free(op);
        return -1;
    }
    return 0;
}

/*--- Commands --------------------------------------------------------------*/

typedef struct cli_run {
    sfl_app app;
    int rc;
    int json;
    int fresh;
    int watch;
    struct event *again;
    sfl_account_conf one;        /* accounts set */
    const sfl_account_conf *accs; /* what to write */
    size_t naccs;
    int is_set;
} cli_run;

static void cli_unreachable(sfl_app *app, void *arg)
{
    cli_run *run = arg;
    fprintf(stderr, "sflimit: cannot reach Redis: %s\n", sfl_store_errstr(app->store));
    run->rc = SFL_EXIT_FAIL;
    event_base_loopbreak(app->base);
}

static void print_table(cJSON *doc, int holders)
{
    cJSON *list = cJSON_GetObjectItem(doc, "accounts");
    printf("%-8s %-24s %6s %7s %7s  %s\n", "ACCOUNT", "NAME", "LIMIT", "IN USE", "WAITING",
           holders ? "HOLDERS (node/stream, age, fence)" : "");
    cJSON *a;
    cJSON_ArrayForEach(a, list)
    {
        long long max = (long long)cJSON_GetObjectItem(a, "max_streams")->valuedouble;
        char limit[24];
        if (max < 0)
            snprintf(limit, sizeof(limit), "?");
        else if (max == 0)
            snprintf(limit, sizeof(limit), "unlim");
        else
            snprintf(limit, sizeof(limit), "%lld", max);
        printf("%-8lld %-24.24s %6s %7lld %7lld ",
               (long long)cJSON_GetObjectItem(a, "id")->valuedouble,
               cJSON_GetObjectItem(a, "name")->valuestring, limit,
               (long long)cJSON_GetObjectItem(a, "in_use")->valuedouble,
               (long long)cJSON_GetObjectItem(a, "waiting")->valuedouble);
        long long rec = (long long)cJSON_GetObjectItem(a, "recovering_ms")->valuedouble;
        if (rec > 0)
            printf(" [recovering, %lld ms]", rec);
        cJSON *h, *hl = holders ? cJSON_GetObjectItem(a, "holders") : NULL;
        cJSON_ArrayForEach(h, hl)
        {
            cJSON *node = cJSON_GetObjectItem(h, "node"), *stream = cJSON_GetObjectItem(h, "stream");
            cJSON *age = cJSON_GetObjectItem(h, "age_ms"), *fence = cJSON_GetObjectItem(h, "fence");
            printf(" %s/%s %.1fs #%.0f", cJSON_IsString(node) ? node->valuestring : "?",
                   cJSON_IsString(stream) ? stream->valuestring : "?",
                   cJSON_IsNumber(age) ? age->valuedouble / 1000.0 : 0.0,
                   cJSON_IsNumber(fence) ? fence->valuedouble : 0.0);
        }
        printf("\n");
    }
}

static void on_fetched(cJSON *doc, const char *err, void *arg)
{
    cli_run *run = arg;
    if (!doc) {
        fprintf(stderr, "sflimit: %s\n", err);
        run->rc = SFL_EXIT_FAIL;
    } else if (run->json) {
        char *text = cJSON_PrintUnformatted(doc);
        printf("%s\n", text);
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
    if (run->watch && doc) {
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

static void on_interrupt(evutil_socket_t fd, short what, void *arg)
{
    cli_run *run = arg;
    UNUSED(fd);
    UNUSED(what);
    event_base_loopbreak(run->app.base);
}

static void on_written(int ok, const char *err, void *arg)
{
    cli_run *run = arg;
    if (!ok) {
        fprintf(stderr, "sflimit: %s\n", err);
        run->rc = SFL_EXIT_FAIL;
    } else {
        for (size_t i = 0; i < run->naccs; i++)
            printf("account %lld: max_streams %lld%s\n", run->accs[i].id,
                   run->accs[i].max_streams, run->accs[i].max_streams == 0 ? " (unlimited)" : "");
    }
    event_base_loopbreak(run->app.base);
}

static void cli_ready(sfl_app *app, void *arg)
{
    cli_run *run = arg;
    int r;
    if (run->is_set)
        r = sfl_accounts_write(app->store, run->accs, run->naccs, run->fresh ? 0 : app->recovery_ms,
                               on_written, run);
    else if (run->watch && app->ready_count > 1)
        return; /* the watch timer is already running */
    else
        r = sfl_accounts_fetch(app->store, on_fetched, run);
    if (r < 0) {
        fprintf(stderr, "sflimit: Redis went away\n");
        run->rc = SFL_EXIT_FAIL;
        event_base_loopbreak(app->base);
    }
}

static int cli_run_loop(cli_run *run, sfl_conf *conf)
{
    char err[512];
    if (sfl_app_open(&run->app, conf, 0, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        return SFL_EXIT_FAIL;
    }
    run->app.on_ready = cli_ready;
    run->app.on_unreachable = cli_unreachable;
    run->app.arg = run;
    struct event *sigint = NULL;
    if (run->watch) {
        run->again = evtimer_new(run->app.base, on_again, run);
        sigint = evsignal_new(run->app.base, SIGINT, on_interrupt, run);
        if (sigint)
            evsignal_add(sigint, NULL);
    }
    sfl_app_start(&run->app, run->app.conf->connect_timeout_ms * 2);
    event_base_dispatch(run->app.base);
    if (run->again)
        event_free(run->again);
    if (sigint)
        event_free(sigint);
    sfl_app_close(&run->app);
    return run->rc;
}

static const char accounts_usage[] =
    "usage: sflimit accounts set ID MAX [--name NAME] [--fresh] [-c CONFIG] [--redis URL]\n"
    "       sflimit accounts list [--json] [-c CONFIG] [--redis URL]\n"
    "       sflimit accounts sync [-c CONFIG] [--redis URL]\n"
    "\n"
    "set   writes account ID's limit to Redis (MAX 0 = unlimited). On a Redis that\n"
    "      has never seen the account, new leases wait one lease TTL first: Redis\n"
    "      cannot tell a new account from one whose data it lost while checks ran.\n"
    "      --fresh skips that wait: say it only when no sfl node holds leases.\n"
    "list  shows every account Redis knows, with its limit and use.\n"
    "sync  writes the config's accounts to Redis.\n";

static const char status_usage[] =
    "usage: sflimit status [--json] [--watch] [-c CONFIG] [--redis URL]\n"
    "\n"
    "Shows every account: limit, in use cluster-wide, nodes waiting for a slot,\n"
    "and who holds its slots (node/stream, age, fencing token). --watch redraws\n"
    "every second.\n";

enum { OPT_REDIS = 1000, OPT_JSON, OPT_NAME, OPT_FRESH, OPT_WATCH };

static const struct option cli_opts[] = {
    {"config", required_argument, NULL, 'c'}, {"redis", required_argument, NULL, OPT_REDIS},
    {"json", no_argument, NULL, OPT_JSON},    {"name", required_argument, NULL, OPT_NAME},
    {"fresh", no_argument, NULL, OPT_FRESH},  {"watch", no_argument, NULL, OPT_WATCH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static int cli_common(int argc, char **argv, const char *usage, cli_run *run, const char **name,
                      sfl_conf **conf)
{
    const char *config = NULL, *redis = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", cli_opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case OPT_REDIS: redis = optarg; break;
        case OPT_JSON: run->json = 1; break;
        case OPT_NAME: *name = optarg; break;
        case OPT_FRESH: run->fresh = 1; break;
        case OPT_WATCH: run->watch = 1; break;
        case 'h': fputs(usage, stdout); return SFL_EXIT_OK;
        default: fputs(usage, stderr); return SFL_EXIT_USAGE;
        }
    }
    *conf = sfl_cli_conf(config, redis);
    return *conf ? -1 : SFL_EXIT_USAGE;
}

int sfl_accounts_main(int argc, char **argv)
{
    cli_run run = {.rc = SFL_EXIT_OK};
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
        run.one.name = (char *)name;
        run.accs = &run.one;
        run.naccs = 1;
        run.is_set = 1;
        return cli_run_loop(&run, conf);
    }
    if (strcmp(verb, "list") == 0 && npos == 0)
        return cli_run_loop(&run, conf);
    if (strcmp(verb, "sync") == 0 && npos == 0) {
        /* From Dispatcharr when dispatcharr.url is set (dispatcharr.c); without
         * it, the config's accounts. */
        if (conf->dispatcharr_url)
            return sfl_dispatcharr_sync_main(conf);
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

int sfl_status_main(int argc, char **argv)
{
    cli_run run = {.rc = SFL_EXIT_OK};
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
