/* cmd_init.c - `sflimit init [--force]`.
 *
 * A Redis without sfl's epoch marker cannot tell "new" from "lost its data
 * while checks ran", so the first connection opens a recovery window of one
 * lease TTL (lua/epoch.lua). An operator who knows better says so here, once:
 * the marker is made without a window, or a window opened only because the
 * marker was missing is closed. A window opened because Redis restarted or
 * failed over protects checks that ran before: init keeps it unless
 * --force, which is the operator's word that no check ran through it.
 *
 * The work is the store's first epoch check (store.c), in mode INIT or
 * FORCE; this file only asks for it and says what it found. */
#include "cmd_init.h"

#include "app.h"
#include "cli.h"
#include "conf.h"
#include "epoch.h"
#include "log.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char init_usage[] =
    "usage: sflimit init [--force] [-c CONFIG] [--redis URL]\n"
    "\n"
    "Marks this Redis as holding every lease sfl has: on a Redis no check has\n"
    "used yet, new leases then grant at once instead of waiting one lease TTL.\n"
    "Without a marker (a new Redis, or one that lost its data) the first\n"
    "sflimit to connect opens that wait itself, so checks still running can\n"
    "re-take their slots first. init closes a wait opened for a missing marker;\n"
    "one opened because Redis restarted or failed over stays, unless --force:\n"
    "say it only when no check ran through the restart.\n";

static void on_ready(sfl_app *app, void *arg)
{
    UNUSED(arg);
    const sfl_epoch *e = sfl_store_epoch(app->store);
    switch (e->state) {
    case SFL_EPOCH_CREATED:
        printf("epoch marker made: new leases in this Redis grant at once\n");
        break;
    case SFL_EPOCH_CLOSED:
        printf("recovery window (opened for: %s) closed: new leases grant at once\n", e->reason);
        break;
    case SFL_EPOCH_INTACT:
    case SFL_EPOCH_CHANGED:
        if (e->recovering_ms > 0) {
            fprintf(stderr,
                    "sflimit: init: a recovery window is open because %s (%lld ms left): it "
                    "lets checks that ran before re-take their slots; --force closes it\n",
                    strcmp(e->reason, "failover") == 0  ? "a replica took over (failover)"
                    : strcmp(e->reason, "restart") == 0 ? "Redis restarted"
                                                        : "the epoch marker was lost",
                    e->recovering_ms);
            sfl_app_exit(app, SFL_EXIT_FAIL);
            return;
        }
        printf("this Redis already has its epoch marker: nothing to do\n");
        break;
    default:
        sfl_app_fail(app, "init: the epoch check gave no answer");
        return;
    }
    fflush(stdout);
    sfl_app_exit(app, SFL_EXIT_OK);
}

int sfl_cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"redis", required_argument, NULL, 'r'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *redis = NULL;
    int force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'r':
            redis = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            fputs(init_usage, stdout);
            return SFL_EXIT_OK;
        default:
            fputs(init_usage, stderr);
            return SFL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sflimit: init: unexpected argument '%s'\n%s", argv[optind], init_usage);
        return SFL_EXIT_USAGE;
    }
    sfl_conf *conf = sfl_cli_conf(config, redis);
    if (!conf)
        return SFL_EXIT_USAGE;
    sfl_app app = {.rc = SFL_EXIT_OK, .cmd = "init"};
    app.epoch_mode = force ? SFL_EPOCH_FORCE : SFL_EPOCH_INIT;
    char err[512];
    if (sfl_app_open(&app, conf, 0, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        return SFL_EXIT_FAIL;
    }
    app.on_ready = on_ready;
    app.on_unreachable = sfl_app_unreachable;
    int rc = sfl_app_run(&app, conf->connect_timeout_ms * 2);
    sfl_app_close(&app);
    return rc;
}
