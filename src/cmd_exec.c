/* cmd_exec.c - `sflimit exec -a ACCOUNT -- CMD ARGS...`: a distributed flock.
 *
 * Waits for one slot of ACCOUNT (woken by release messages and retry hints,
 * never polling), runs CMD without a shell in the foreground, renews the
 * lease while it runs, releases it when it ends and exits with its status.
 *
 * The command must never outlive its lease:
 *  - it gets PR_SET_PDEATHSIG (SIGKILL), so even `kill -9` of sflimit stops it;
 *  - when the lease is lost (no renewal confirmed before the local deadline
 *    minus safety_ms, or Redis says it is gone with no room), it is stopped
 *    (SIGTERM, SIGKILL after a grace) and sflimit exits 1;
 *  - SIGINT/SIGTERM are passed on to it; while still waiting they end the
 *    wait (exit 130/143).
 * Exit codes: the command's (128+signal if it was killed), 75 when no slot
 * came in time, 2 for usage errors and unknown accounts, 1 otherwise.
 */
#include "cmd_exec.h"

#include "accounts.h"
#include "app.h"
#include "cli.h"
#include "conf.h"
#include "limiter.h"
#include "log.h"
#include "runner.h"
#include "store.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef struct exec_run {
    sfl_app app;
    sfl_runner *runner;
    long long account;
    double timeout_s;
    char **cmd;
    char label[128];
    sfl_wait *wait;
    sfl_lease *lease;
    sfl_child *child;
    int lost;
    int interrupted; /* signal number that ended the wait */
} exec_run;

/* rc: the exit code; app.rc stays -1 until then. */
static void finish(exec_run *run, int rc)
{
    run->app.rc = rc;
    if (run->wait) {
        sfl_wait_cancel(run->wait);
        run->wait = NULL;
    }
    if (run->lease) {
        sfl_lease_release(run->lease);
        run->lease = NULL;
    }
    sfl_app_finish(&run->app, SFL_APP_RELEASE_WAIT_MS);
}

static void on_child_done(sfl_child *child, const sfl_child_result *res, void *arg)
{
    exec_run *run = arg;
    UNUSED(child);
    run->child = NULL;
    int rc;
    if (res->exec_failed) {
        fprintf(stderr, "sflimit: exec: cannot run %s: %.*s\n", run->cmd[0], (int)res->err_len,
                res->err ? res->err : "");
        rc = 127;
    } else if (res->exited) {
        rc = res->exit_code;
    } else {
        rc = 128 + res->term_signal;
    }
    if (run->lost)
        rc = SFL_EXIT_FAIL;
    finish(run, rc);
}

static void on_lost(sfl_lease *lease, const char *why, void *arg)
{
    exec_run *run = arg;
    fprintf(stderr, "sflimit: exec: lease of account %lld lost (%s); stopping %s\n", run->account,
            why, run->cmd[0]);
    run->lost = 1;
    if (run->child)
        sfl_child_stop_within(run->child, SFL_STOP_REQUESTED, sfl_lease_stop_within_ms(lease));
}

static void on_slot(sfl_wait *w, sfl_wait_status status, sfl_lease *lease, void *arg)
{
    exec_run *run = arg;
    UNUSED(w);
    run->wait = NULL;
    if (status == SFL_WAIT_UNKNOWN_ACCOUNT) {
        fprintf(stderr,
                "sflimit: exec: account %lld has no max_streams in Redis; set it with "
                "`sflimit accounts set %lld MAX` or list it in the config's accounts\n",
                run->account, run->account);
        finish(run, SFL_EXIT_USAGE);
        return;
    }
    if (status == SFL_WAIT_TIMEOUT) {
        fprintf(stderr, "sflimit: exec: no slot of account %lld within %g s\n", run->account,
                run->timeout_s);
        finish(run, SFL_EXIT_TEMPFAIL);
        return;
    }
    run->lease = lease;
    sfl_lease_on_lost(lease, on_lost, run);
    sfl_debug("exec: slot of account %lld after %" PRId64 " ms (lease %s, fence %lld)",
              run->account, sfl_lease_wait_ms(lease), sfl_lease_id(lease), sfl_lease_fence(lease));

    char env_lease[160], env_fence[48], env_account[48], env_stream[160], env_login[96];
    snprintf(env_lease, sizeof(env_lease), "SFL_LEASE_ID=%s", sfl_lease_id(lease));
    snprintf(env_fence, sizeof(env_fence), "SFL_FENCE=%lld", sfl_lease_fence(lease));
    snprintf(env_account, sizeof(env_account), "SFL_ACCOUNT=%lld", run->account);
    snprintf(env_stream, sizeof(env_stream), "SFL_STREAM_ID=%s", run->label);
    snprintf(env_login, sizeof(env_login), "SFL_LOGIN=%s", sfl_lease_login(lease));
    char *env[] = {env_lease, env_fence, env_account, env_stream, env_login, NULL};
    sfl_child_opts opts = {
        .argv = run->cmd,
        .env = env,
        .clean_env = 0,
        .capture = 0,
        .kill_grace_ms = 2000,
    };
    char err[256];
    run->child = sfl_runner_spawn(run->runner, &opts, on_child_done, run, err, sizeof(err));
    if (!run->child) {
        fprintf(stderr, "sflimit: exec: %s\n", err);
        finish(run, SFL_EXIT_FAIL);
    }
}

static void on_accounts_written(int ok, const char *err, void *arg)
{
    UNUSED(arg);
    if (!ok)
        sfl_warn("exec: %s", err);
}

/* The config's limits go to Redis on every connect (DESIGN §4). The wait's
 * asks go out on the same connection after them. */
static void on_ready(sfl_app *app, void *arg)
{
    if (app->conf->naccounts > 0)
        sfl_accounts_write(app->store, sfl_limiter_routes(app->lim), app->conf->accounts,
                           app->conf->naccounts, app->recovery_ms, 0, on_accounts_written, arg);
}

static void on_signal(sfl_app *app, int sig, void *arg)
{
    exec_run *run = arg;
    if (run->child) {
        sfl_child_signal(run->child, sig);
        return;
    }
    if (app->rc < 0) {
        run->interrupted = sig;
        finish(run, 128 + sig);
    }
}

static const char exec_usage[] =
    "usage: sflimit exec -a ACCOUNT [-c CONFIG] [--redis URL] [--timeout S] [--label L] -- CMD "
    "[ARGS...]\n"
    "\n"
    "Runs CMD (no shell) while holding one lease of ACCOUNT, shared through Redis\n"
    "with every other sflimit: a distributed flock. Waits up to --timeout seconds\n"
    "(default: lease.acquire_timeout of the config) for a slot.\n"
    "CMD gets SFL_LEASE_ID, SFL_FENCE, SFL_ACCOUNT, SFL_STREAM_ID, SFL_LOGIN in its environment.\n"
    "Exit: CMD's status; 75 if no slot came in time; 1 if the lease was lost\n"
    "(CMD is stopped first); 2 for usage errors.\n";

int sfl_cmd_exec(int argc, char **argv)
{
    enum { OPT_REDIS = 1000, OPT_TIMEOUT, OPT_LABEL };
    static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"redis", required_argument, NULL, OPT_REDIS},
                                         {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                         {"label", required_argument, NULL, OPT_LABEL},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *redis = NULL, *account = NULL, *timeout = NULL, *label = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+a:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            account = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case OPT_REDIS:
            redis = optarg;
            break;
        case OPT_TIMEOUT:
            timeout = optarg;
            break;
        case OPT_LABEL:
            label = optarg;
            break;
        case 'h':
            fputs(exec_usage, stdout);
            return SFL_EXIT_OK;
        default:
            fputs(exec_usage, stderr);
            return SFL_EXIT_USAGE;
        }
    }
    exec_run run = {.app.rc = -1};
    if (!account) {
        fprintf(stderr, "sflimit: exec: -a ACCOUNT is required\n%s", exec_usage);
        return SFL_EXIT_USAGE;
    }
    if (sfl_cli_integer("exec: -a", account, 0, &run.account) < 0)
        return SFL_EXIT_USAGE;
    if (optind >= argc) {
        fprintf(stderr, "sflimit: exec: no command given (put it after --)\n%s", exec_usage);
        return SFL_EXIT_USAGE;
    }
    run.cmd = argv + optind;
    sfl_conf *conf = sfl_cli_conf(config, redis);
    if (!conf)
        return SFL_EXIT_USAGE;
    run.timeout_s = conf->acquire_timeout;
    if (timeout && sfl_cli_seconds("exec: --timeout", timeout, &run.timeout_s) < 0) {
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    snprintf(run.label, sizeof(run.label), "%s", label ? label : run.cmd[0]);

    char err[512];
    if (sfl_app_open(&run.app, conf, 1, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        return SFL_EXIT_FAIL;
    }
    run.app.on_ready = on_ready;
    run.app.on_signal = on_signal;
    run.app.arg = &run;
    run.runner = sfl_runner_new(run.app.base);
    signal(SIGPIPE, SIG_IGN);
    if (run.runner)
        run.wait = sfl_limiter_wait(run.app.lim, run.account, run.label,
                                    (int64_t)llround(run.timeout_s * 1000), on_slot, &run);
    if (run.wait)
        sfl_app_run(&run.app, 0);
    else
        sfl_app_fail(&run.app, "out of memory");
    sfl_runner_free(run.runner);
    sfl_app_close(&run.app);
    return run.app.rc < 0 ? SFL_EXIT_FAIL : run.app.rc;
}
