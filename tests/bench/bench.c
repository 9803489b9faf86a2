/* bench.c - `sflimit-bench BENCHMARK [OPTIONS]`: parses the command line and
 * hands over (bench_lease.c runs the lease benchmark, bench_stats.c turns
 * its records into figures; bench_makespan.c and bench_scale.c run whole
 * sflimit processes).
 *
 * The benchmark links the same core library as the node: no fast path of
 * its own. Usage errors exit 2 with a message naming the option.
 */
#include "bench.h"

#include "addr.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: sflimit-bench lease --redis URL --procs P --workers W --limit L\n"
    "                           --hold-ms H --seconds T [--logins N] [--account ID]\n"
    "                           [--warmup S] [--history-ms F] [--jitter-ms J]\n"
    "\n"
    "Lease benchmark: P processes, each with W workers on its own event loop; every\n"
    "worker is an independent node (its own Redis connections, node id b<p>w<w>)\n"
    "that loops: wait for a slot of ACCOUNT -> hold it H ms -> release -> ask again.\n"
    "The account's limit is set to L in Redis first (its leases and waiters are\n"
    "cleared, no recovery window). Nothing is recorded during the warm-up (default\n"
    "1 s); then T seconds are measured. With N logins the account is logins l1..lN\n"
    "sharing L as evenly as they can (every URL as given), each its own limit in\n"
    "Redis, and every ask goes over all of them in route order.\n"
    "\n"
    "  --redis URL     redis://[user:pass@]host:port/db or unix:///path\n"
    "  --procs P       processes (1..64)\n"
    "  --workers W     workers per process (1..256)\n"
    "  --limit L       the account's max_streams (>= 1)\n"
    "  --hold-ms H     how long a slot is held; 0 = released in the next loop turn\n"
    "  --seconds T     measured window, seconds (> 0)\n"
    "  --logins N      the account's logins, 1..min(L, 64) (default 1: none configured,\n"
    "                  the one login and keys an account had before logins)\n"
    "  --account ID    account id (default 990001; its leases are cleared!)\n"
    "  --warmup S      warm-up seconds (default 1)\n"
    "  --jitter-ms J   each hold drawn uniformly from H-J..H+J whole ms (J <= H; default 0)\n"
    "  --history-ms F  every worker records history (per login and minute, history.c)\n"
    "                  as a node does, sending it every F ms (1000..60000); default 0: off\n"
    "\n"
    "Prints one JSON line on stdout: procs, workers (total), limit, logins, hold_ms, jitter_ms,\n"
    "cycles, cycles_per_s, handoff_ms_p50/p90/p99, wait_ms_p50/p99/max, jain_fairness,\n"
    "max_concurrent_seen, releases_close, handoff_ms_p50_alone, redis_commands_per_cycle;\n"
    "a summary on stderr.\n"
    "Exit codes: 0 done, 1 runtime failure, 2 usage error.\n";

static const char makespan_usage[] =
    "usage: sflimit-bench makespan --redis URL --nodes K --accounts A --streams N\n"
    "                              --check-ms D [--global-limit G] [--seed S]\n"
    "                              [--sflimit PATH] [--max-ratio R] [--timeout S] [--keep]\n"
    "\n"
    "Makespan benchmark: writes A accounts with limits 1..4 (seeded) into Redis, starts\n"
    "K `sflimit node` processes (check command `sleep D/1000`, global_limit G), submits\n"
    "N streams spread over the accounts (seeded) to the shared queue and measures from\n"
    "the submit to the last result. The queue (sfl:jobs) is cleared first: use a Redis\n"
    "of its own (it refuses one where nodes are registered).\n"
    "\n"
    "  --redis URL        redis://[user:pass@]host:port/db or unix:///path\n"
    "  --nodes K          node processes (1..64)\n"
    "  --accounts A       accounts (1..1000000), ids 880001..\n"
    "  --streams N        streams (1..10000000)\n"
    "  --check-ms D       duration of every check, ms (1..3600000)\n"
    "  --global-limit G   concurrent_streams.global_limit of every node (default 10)\n"
    "  --seed S           seed of the limits and the spread (default 1)\n"
    "  --sflimit PATH     the sflimit binary (default: next to sflimit-bench)\n"
    "  --max-ratio R      exit 1 when makespan / lower bound is above R\n"
    "  --timeout S        give up after S seconds (default 3 x lower bound + 60)\n"
    "  --keep             keep the scratch directory (configs, node logs)\n"
    "\n"
    "Prints one JSON line on stdout: nodes, accounts, streams, check_ms, makespan_s,\n"
    "lower_bound_s = max(max over accounts of ceil(n_a/limit_a) x D, ceil(N/(K x G)) x D),\n"
    "ratio, and what the results show (ok, accounts_over_limit, max_running, ...).\n"
    "Exit codes: 0 done, 1 runtime failure (or a result not OK, a limit exceeded,\n"
    "the ratio above --max-ratio), 2 usage error.\n";

static const char scale_usage[] =
    "usage: sflimit-bench scale --redis URL --accounts A --streams N [--global-limit G]\n"
    "                           [--seed S] [--sflimit PATH] [--keep]\n"
    "\n"
    "Scale benchmark: what A accounts and N queued streams cost. Redis: bytes per\n"
    "account conf, per held lease (one lease of every account, through the library),\n"
    "and, once those leases were dropped without release and expired, per idle\n"
    "account (only confs and sfl:accounts may remain). The node: the real\n"
    "`sflimit check` with the A accounts in its config, N streams, check command\n"
    "`true`: peak RSS, time to load the batch (to its \"Streams grouped\" log line),\n"
    "total time, and its own CPU time per stream started.\n"
    "\n"
    "  --redis URL        redis://[user:pass@]host:port/db or unix:///path\n"
    "  --accounts A       accounts (1..1000000), ids 770001.. (their keys are cleared!)\n"
    "  --streams N        streams (1..10000000)\n"
    "  --global-limit G   concurrent_streams.global_limit (default 10)\n"
    "  --seed S           seed of the limits and the spread (default 1)\n"
    "  --sflimit PATH     the sflimit binary (default: next to sflimit-bench)\n"
    "  --keep             keep the scratch directory (config, streams, results)\n"
    "\n"
    "Prints one JSON line on stdout (peak_rss_kb, load_s, queued_s (to the last\n"
    "\"Account <id>: <n> streams\" line), total_s, cpu_us_per_start,\n"
    "redis_conf_bytes_per_account, redis_bytes_per_held_lease,\n"
    "redis_idle_bytes_per_account, idle_stray_keys, ...); a summary on stderr.\n"
    "Exit codes: 0 done, 1 runtime failure (or a result missing, a stray key left\n"
    "on an idle account), 2 usage error.\n";

static const char *bench_name = "lease"; /* for messages */

static int bad(const char *opt, const char *value, const char *what)
{
    fprintf(stderr, "sflimit-bench %s: --%s '%s': %s\n", bench_name, opt, value ? value : "", what);
    return BENCH_EXIT_USAGE;
}

/* Parses an integer in [lo, hi]; 0 or -1. */
static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* --redis: a running Redis, not 'embedded'. 0, or the usage exit code. */
static int parse_redis(const char *value, const char **out)
{
    char err[200];
    sfl_redis_url u = {0};
    if (sfl_redis_url_parse(value, &u, err, sizeof(err)) < 0)
        return bad("redis", value, err);
    int embedded = u.embedded;
    sfl_redis_url_clear(&u);
    if (embedded)
        return bad("redis", value, "give a running Redis, not 'embedded'");
    *out = value;
    return 0;
}

/*--- Options: one table per benchmark ---------------------------------------*/

typedef enum {
    OPT_INT,
    OPT_LL,
    OPT_I64,
    OPT_U64,
    OPT_DOUBLE,
    OPT_STR,
    OPT_REDIS,
    OPT_FLAG
} opt_kind;

typedef struct bench_opt {
    const char *name;
    opt_kind kind;
    double lo, hi;      /* numbers: the range (integers: whole values) */
    const char *expect; /* what a bad value is told */
    void *target;
    int required;
} bench_opt;

#define MAX_OPTS 16

static int opt_store(const bench_opt *t, const char *value)
{
    long long v = 0;
    double d = 0;
    switch (t->kind) {
    case OPT_REDIS:
        return parse_redis(value, (const char **)t->target);
    case OPT_STR:
        *(const char **)t->target = value;
        return 0;
    case OPT_FLAG:
        *(int *)t->target = 1;
        return 0;
    case OPT_DOUBLE:
        if (parse_double(value, t->lo, t->hi, &d) < 0)
            return bad(t->name, value, t->expect);
        *(double *)t->target = d;
        return 0;
    default:
        if (parse_ll(value, (long long)t->lo, (long long)t->hi, &v) < 0)
            return bad(t->name, value, t->expect);
        if (t->kind == OPT_INT)
            *(int *)t->target = (int)v;
        else if (t->kind == OPT_LL)
            *(long long *)t->target = v;
        else if (t->kind == OPT_I64)
            *(int64_t *)t->target = v;
        else
            *(uint64_t *)t->target = (uint64_t)v;
        return 0;
    }
}

/* Parses argv against the table (n entries) and --help. -1 to go on; else
 * the exit code (0 after --help). */
static int parse_opts(int argc, char **argv, const bench_opt *table, size_t n, const char *help)
{
    struct option lo[MAX_OPTS + 2];
    int seen[MAX_OPTS] = {0};
    for (size_t i = 0; i < n; i++)
        lo[i] = (struct option){table[i].name,
                                table[i].kind == OPT_FLAG ? no_argument : required_argument, NULL,
                                (int)i + 1};
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n + 1] = (struct option){NULL, 0, NULL, 0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return BENCH_EXIT_OK;
        }
        if (c < 1 || c > (int)n) {
            if (c == ':')
                fprintf(stderr, "sflimit-bench %s: %s needs a value\n", bench_name,
                        argv[optind - 1]);
            else
                fprintf(stderr, "sflimit-bench %s: unknown option '%s' (see --help)\n", bench_name,
                        argv[optind - 1]);
            return BENCH_EXIT_USAGE;
        }
        if (opt_store(&table[c - 1], optarg) != 0)
            return BENCH_EXIT_USAGE;
        seen[c - 1] = 1;
    }
    if (optind < argc) {
        fprintf(stderr, "sflimit-bench %s: unexpected argument '%s'\n", bench_name, argv[optind]);
        return BENCH_EXIT_USAGE;
    }
    for (size_t i = 0; i < n; i++)
        if (table[i].required && !seen[i]) {
            fprintf(stderr, "sflimit-bench %s: --%s is required (see --help)\n", bench_name,
                    table[i].name);
            return BENCH_EXIT_USAGE;
        }
    return -1;
}

#define OPTS_N(t) (sizeof(t) / sizeof((t)[0]))

static int lease_main(int argc, char **argv)
{
    bench_lease_opts o = {.warmup = 1.0, .account = 990001, .logins = 1};
    const bench_opt table[] = {
        {"redis", OPT_REDIS, 0, 0, NULL, &o.redis_url, 1},
        {"procs", OPT_INT, 1, 64, "expected an integer 1..64", &o.procs, 1},
        {"workers", OPT_INT, 1, 256, "expected an integer 1..256", &o.workers, 1},
        {"limit", OPT_LL, 1, 1000000, "expected an integer 1..1000000", &o.limit, 1},
        {"hold-ms", OPT_I64, 0, 3600000, "expected milliseconds 0..3600000", &o.hold_ms, 1},
        {"seconds", OPT_DOUBLE, 0.001, 86400, "expected seconds > 0", &o.seconds, 1},
        {"jitter-ms", OPT_I64, 0, 3600000, "expected milliseconds 0..3600000", &o.jitter_ms, 0},
        {"logins", OPT_INT, 1, BENCH_MAX_LOGINS, "expected an integer 1..64", &o.logins, 0},
        {"account", OPT_LL, 0, 999999999999LL, "expected an account id >= 0", &o.account, 0},
        {"warmup", OPT_DOUBLE, 0, 3600, "expected seconds >= 0", &o.warmup, 0},
        {"history-ms", OPT_I64, 0, 60000, "expected milliseconds 0 or 1000..60000", &o.history_ms,
         0},
    };
    int rc = parse_opts(argc, argv, table, OPTS_N(table), usage);
    if (rc >= 0)
        return rc;
    if (o.history_ms > 0 && o.history_ms < 1000) {
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)o.history_ms);
        return bad("history-ms", v, "expected milliseconds 0 or 1000..60000");
    }
    if (o.jitter_ms > o.hold_ms) {
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)o.jitter_ms);
        return bad("jitter-ms", v, "more than --hold-ms (a hold cannot be negative)");
    }
    if (o.logins > o.limit) {
        char v[24];
        snprintf(v, sizeof(v), "%d", o.logins);
        return bad("logins", v, "more logins than --limit (each needs a slot: 0 is unlimited)");
    }
    return bench_lease_run(&o);
}

static int makespan_main(int argc, char **argv)
{
    bench_makespan_opts o = {.global_limit = 10, .seed = 1, .account_base = 880001};
    const bench_opt table[] = {
        {"redis", OPT_REDIS, 0, 0, NULL, &o.redis_url, 1},
        {"nodes", OPT_INT, 1, 64, "expected an integer 1..64", &o.nodes, 1},
        {"accounts", OPT_INT, 1, 1000000, "expected an integer 1..1000000", &o.accounts, 1},
        {"streams", OPT_LL, 1, 10000000, "expected an integer 1..10000000", &o.streams, 1},
        {"check-ms", OPT_I64, 1, 3600000, "expected milliseconds 1..3600000", &o.check_ms, 1},
        {"global-limit", OPT_INT, 1, 100000, "expected an integer 1..100000", &o.global_limit, 0},
        {"seed", OPT_U64, 0, 9e18, "expected an integer 0..9e18", &o.seed, 0},
        {"sflimit", OPT_STR, 0, 0, NULL, &o.sflimit, 0},
        {"max-ratio", OPT_DOUBLE, 1, 1000, "expected a ratio >= 1", &o.max_ratio, 0},
        {"timeout", OPT_DOUBLE, 1, 86400, "expected seconds 1..86400", &o.timeout, 0},
        {"keep", OPT_FLAG, 0, 0, NULL, &o.keep, 0},
    };
    int rc = parse_opts(argc, argv, table, OPTS_N(table), makespan_usage);
    return rc >= 0 ? rc : bench_makespan_run(&o);
}

static int scale_main(int argc, char **argv)
{
    bench_scale_opts o = {.global_limit = 10, .seed = 1, .account_base = 770001};
    const bench_opt table[] = {
        {"redis", OPT_REDIS, 0, 0, NULL, &o.redis_url, 1},
        {"accounts", OPT_INT, 1, 1000000, "expected an integer 1..1000000", &o.accounts, 1},
        {"streams", OPT_LL, 1, 10000000, "expected an integer 1..10000000", &o.streams, 1},
        {"global-limit", OPT_INT, 1, 100000, "expected an integer 1..100000", &o.global_limit, 0},
        {"seed", OPT_U64, 0, 9e18, "expected an integer 0..9e18", &o.seed, 0},
        {"sflimit", OPT_STR, 0, 0, NULL, &o.sflimit, 0},
        {"keep", OPT_FLAG, 0, 0, NULL, &o.keep, 0},
    };
    int rc = parse_opts(argc, argv, table, OPTS_N(table), scale_usage);
    return rc >= 0 ? rc : bench_scale_run(&o);
}

static const char floor_usage[] =
    "usage: sflimit-bench floor --redis URL [--interval-ms I] [--seconds T] [--calls N]\n"
    "\n"
    "What a hand-off through Redis costs here at the least: two processes on sfl's\n"
    "store (hiredis async on libevent), one subscribed to a channel, the other\n"
    "sending every I ms (default 10: the pace of the lease benchmark's hold-20\n"
    "hand-offs), by turns a PUBLISH alone and a script of N cheap reads (default\n"
    "15, release.lua's calls) that then publishes; T seconds (default 6) in all.\n"
    "The time from the send to the subscriber's callback, per kind.\n"
    "\n"
    "Prints one JSON line on stdout: interval_ms, samples, calls,\n"
    "publish_ms_p50/p90/p99, script_ms_p50/p90/p99; a summary on stderr.\n"
    "Exit codes: 0 done, 1 runtime failure, 2 usage error.\n";

static int floor_main(int argc, char **argv)
{
    bench_floor_opts o = {.interval_ms = 10, .seconds = 6, .calls = 15};
    const bench_opt table[] = {
        {"redis", OPT_REDIS, 0, 0, NULL, &o.redis_url, 1},
        {"interval-ms", OPT_INT, 1, 10000, "expected milliseconds 1..10000", &o.interval_ms, 0},
        {"seconds", OPT_DOUBLE, 0.1, 3600, "expected seconds 0.1..3600", &o.seconds, 0},
        {"calls", OPT_INT, 0, 1000, "expected an integer 0..1000", &o.calls, 0},
    };
    int rc = parse_opts(argc, argv, table, OPTS_N(table), floor_usage);
    return rc >= 0 ? rc : bench_floor_run(&o);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "%s\n%s\n%s\n%s", usage, makespan_usage, scale_usage, floor_usage);
        return BENCH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        printf("%s\n%s\n%s\n%s", usage, makespan_usage, scale_usage, floor_usage);
        return BENCH_EXIT_OK;
    }
    bench_name = argv[1];
    if (strcmp(argv[1], "lease") == 0)
        return lease_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "makespan") == 0)
        return makespan_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "scale") == 0)
        return scale_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "floor") == 0)
        return floor_main(argc - 1, argv + 1);
    fprintf(stderr, "sflimit-bench: unknown benchmark '%s'\n\n%s\n%s\n%s\n%s", argv[1], usage,
            makespan_usage, scale_usage, floor_usage);
    return BENCH_EXIT_USAGE;
}
