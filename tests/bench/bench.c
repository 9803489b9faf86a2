/* bench.c - `sflimit-bench BENCHMARK [OPTIONS]`: parses the command line and
 * hands over (bench_lease.c runs the lease benchmark, bench_stats.c turns
 * its records into figures; bench_makespan.c and bench_scale.c run whole
 * sflimit processes).
 *
 * The benchmark links the same core library as the node: no fast path of
 * its own. Usage errors exit 2 with a message naming the option.
 */
#include "bench.h"

#include "conf.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: sflimit-bench lease --redis URL --procs P --workers W --limit L\n"
    "                           --hold-ms H --seconds T [--account ID] [--warmup S]\n"
    "\n"
    "Lease benchmark: P processes, each with W workers on its own event loop; every\n"
    "worker is an independent node (its own Redis connections, node id b<p>w<w>)\n"
    "that loops: wait for a slot of ACCOUNT -> hold it H ms -> release -> ask again.\n"
    "The account's limit is set to L in Redis first (its leases and waiters are\n"
    "cleared, no recovery window). Nothing is recorded during the warm-up (default\n"
    "1 s); then T seconds are measured.\n"
    "\n"
    "  --redis URL     redis://[user:pass@]host:port/db or unix:///path\n"
    "  --procs P       processes (1..64)\n"
    "  --workers W     workers per process (1..256)\n"
    "  --limit L       the account's max_streams (>= 1)\n"
    "  --hold-ms H     how long a slot is held; 0 = released in the next loop turn\n"
    "  --seconds T     measured window, seconds (> 0)\n"
    "  --account ID    account id (default 990001; its leases are cleared!)\n"
    "  --warmup S      warm-up seconds (default 1)\n"
    "\n"
    "Prints one JSON line on stdout: procs, workers (total), limit, hold_ms, cycles,\n"
    "cycles_per_s, handoff_ms_p50/p90/p99, wait_ms_p50/p99/max, jain_fairness,\n"
    "max_concurrent_seen, redis_commands_per_cycle; a summary on stderr.\n"
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
    fprintf(stderr, "sflimit-bench %s: --%s '%s': %s\n", bench_name, opt, value ? value : "",
            what);
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

/* The end of getopt_long: a stray argument, or a required option missing. */
static int check_rest(int argc, char **argv, const char *const *names, const int *missing,
                      size_t n)
{
    if (optind < argc) {
        fprintf(stderr, "sflimit-bench %s: unexpected argument '%s'\n", bench_name,
                argv[optind]);
        return BENCH_EXIT_USAGE;
    }
    for (size_t i = 0; i < n; i++)
        if (missing[i]) {
            fprintf(stderr, "sflimit-bench %s: --%s is required (see --help)\n", bench_name,
                    names[i]);
            return BENCH_EXIT_USAGE;
        }
    return 0;
}

static int getopt_error(int c, char **argv)
{
    if (c == ':')
        fprintf(stderr, "sflimit-bench %s: %s needs a value\n", bench_name, argv[optind - 1]);
    else
        fprintf(stderr, "sflimit-bench %s: unknown option '%s' (see --help)\n", bench_name,
                argv[optind - 1]);
    return BENCH_EXIT_USAGE;
}

static int lease_main(int argc, char **argv)
{
    enum { O_REDIS = 1, O_PROCS, O_WORKERS, O_LIMIT, O_HOLD, O_SECONDS, O_ACCOUNT, O_WARMUP };
    static const struct option opts[] = {
        {"redis", required_argument, NULL, O_REDIS},
        {"procs", required_argument, NULL, O_PROCS},
        {"workers", required_argument, NULL, O_WORKERS},
        {"limit", required_argument, NULL, O_LIMIT},
        {"hold-ms", required_argument, NULL, O_HOLD},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"account", required_argument, NULL, O_ACCOUNT},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_lease_opts o = {.procs = -1,
                          .workers = -1,
                          .limit = -1,
                          .hold_ms = -1,
                          .seconds = -1,
                          .warmup = 1.0,
                          .account = 990001};
    long long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_REDIS: {
            char err[200];
            sfl_redis_url u = {0};
            if (sfl_redis_url_parse(optarg, &u, err, sizeof(err)) < 0)
                return bad("redis", optarg, err);
            int embedded = u.embedded;
            sfl_redis_url_clear(&u);
            if (embedded)
                return bad("redis", optarg, "give a running Redis, not 'embedded'");
            o.redis_url = optarg;
            break;
        }
        case O_PROCS:
            if (parse_ll(optarg, 1, 64, &v) < 0)
                return bad("procs", optarg, "expected an integer 1..64");
            o.procs = (int)v;
            break;
        case O_WORKERS:
            if (parse_ll(optarg, 1, 256, &v) < 0)
                return bad("workers", optarg, "expected an integer 1..256");
            o.workers = (int)v;
            break;
        case O_LIMIT:
            if (parse_ll(optarg, 1, 1000000, &o.limit) < 0)
                return bad("limit", optarg, "expected an integer 1..1000000");
            break;
        case O_HOLD:
            if (parse_ll(optarg, 0, 3600000, &v) < 0)
                return bad("hold-ms", optarg, "expected milliseconds 0..3600000");
            o.hold_ms = v;
            break;
        case O_SECONDS:
            if (parse_double(optarg, 0.001, 86400, &o.seconds) < 0)
                return bad("seconds", optarg, "expected seconds > 0");
            break;
        case O_ACCOUNT:
            if (parse_ll(optarg, 0, 999999999999LL, &o.account) < 0)
                return bad("account", optarg, "expected an account id >= 0");
            break;
        case O_WARMUP:
            if (parse_double(optarg, 0, 3600, &o.warmup) < 0)
                return bad("warmup", optarg, "expected seconds >= 0");
            break;
        case 'h':
            fputs(usage, stdout);
            return BENCH_EXIT_OK;
        case ':':
            fprintf(stderr, "sflimit-bench lease: %s needs a value\n", argv[optind - 1]);
            return BENCH_EXIT_USAGE;
        default:
            fprintf(stderr, "sflimit-bench lease: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return BENCH_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sflimit-bench lease: unexpected argument '%s'\n", argv[optind]);
        return BENCH_EXIT_USAGE;
    }
    static const char *const required[] = {"redis", "procs",   "workers",
                                           "limit", "hold-ms", "seconds"};
    int missing[] = {o.redis_url == NULL, o.procs < 0,   o.workers < 0,
                     o.limit < 0,         o.hold_ms < 0, o.seconds < 0};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
        if (missing[i]) {
            fprintf(stderr, "sflimit-bench lease: --%s is required (see --help)\n", required[i]);
            return BENCH_EXIT_USAGE;
        }
    return bench_lease_run(&o);
}

static int makespan_main(int argc, char **argv)
{
    enum {
        O_REDIS = 1,
        O_NODES,
        O_ACCOUNTS,
        O_STREAMS,
        O_CHECK_MS,
        O_GLOBAL,
        O_SEED,
        O_SFLIMIT,
        O_MAX_RATIO,
        O_TIMEOUT,
        O_KEEP
    };
    static const struct option opts[] = {
        {"redis", required_argument, NULL, O_REDIS},
        {"nodes", required_argument, NULL, O_NODES},
        {"accounts", required_argument, NULL, O_ACCOUNTS},
        {"streams", required_argument, NULL, O_STREAMS},
        {"check-ms", required_argument, NULL, O_CHECK_MS},
        {"global-limit", required_argument, NULL, O_GLOBAL},
        {"seed", required_argument, NULL, O_SEED},
        {"sflimit", required_argument, NULL, O_SFLIMIT},
        {"max-ratio", required_argument, NULL, O_MAX_RATIO},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"keep", no_argument, NULL, O_KEEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_makespan_opts o = {.nodes = -1,
                             .accounts = -1,
                             .streams = -1,
                             .check_ms = -1,
                             .global_limit = 10,
                             .seed = 1,
                             .account_base = 880001};
    long long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_REDIS:
            if (parse_redis(optarg, &o.redis_url) != 0)
                return BENCH_EXIT_USAGE;
            break;
        case O_NODES:
            if (parse_ll(optarg, 1, 64, &v) < 0)
                return bad("nodes", optarg, "expected an integer 1..64");
            o.nodes = (int)v;
            break;
        case O_ACCOUNTS:
            if (parse_ll(optarg, 1, 1000000, &v) < 0)
                return bad("accounts", optarg, "expected an integer 1..1000000");
            o.accounts = (int)v;
            break;
        case O_STREAMS:
            if (parse_ll(optarg, 1, 10000000, &o.streams) < 0)
                return bad("streams", optarg, "expected an integer 1..10000000");
            break;
        case O_CHECK_MS:
            if (parse_ll(optarg, 1, 3600000, &v) < 0)
                return bad("check-ms", optarg, "expected milliseconds 1..3600000");
            o.check_ms = v;
            break;
        case O_GLOBAL:
            if (parse_ll(optarg, 1, 100000, &v) < 0)
                return bad("global-limit", optarg, "expected an integer 1..100000");
            o.global_limit = (int)v;
            break;
        case O_SEED:
            if (parse_ll(optarg, 0, LLONG_MAX, &v) < 0)
                return bad("seed", optarg, "expected an integer >= 0");
            o.seed = (uint64_t)v;
            break;
        case O_SFLIMIT:
            o.sflimit = optarg;
            break;
        case O_MAX_RATIO:
            if (parse_double(optarg, 1, 1000, &o.max_ratio) < 0)
                return bad("max-ratio", optarg, "expected a ratio >= 1");
            break;
        case O_TIMEOUT:
            if (parse_double(optarg, 1, 86400, &o.timeout) < 0)
                return bad("timeout", optarg, "expected seconds 1..86400");
            break;
        case O_KEEP:
            o.keep = 1;
            break;
        case 'h':
            fputs(makespan_usage, stdout);
            return BENCH_EXIT_OK;
        default:
            return getopt_error(c, argv);
        }
    }
    static const char *const required[] = {"redis", "nodes", "accounts", "streams", "check-ms"};
    int missing[] = {o.redis_url == NULL, o.nodes < 0, o.accounts < 0, o.streams < 0,
                     o.check_ms < 0};
    int rc = check_rest(argc, argv, required, missing, sizeof(missing) / sizeof(missing[0]));
    return rc ? rc : bench_makespan_run(&o);
}

static int scale_main(int argc, char **argv)
{
    enum { O_REDIS = 1, O_ACCOUNTS, O_STREAMS, O_GLOBAL, O_SEED, O_SFLIMIT, O_KEEP };
    static const struct option opts[] = {
        {"redis", required_argument, NULL, O_REDIS},
        {"accounts", required_argument, NULL, O_ACCOUNTS},
        {"streams", required_argument, NULL, O_STREAMS},
        {"global-limit", required_argument, NULL, O_GLOBAL},
        {"seed", required_argument, NULL, O_SEED},
        {"sflimit", required_argument, NULL, O_SFLIMIT},
        {"keep", no_argument, NULL, O_KEEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_scale_opts o = {
        .accounts = -1, .streams = -1, .global_limit = 10, .seed = 1, .account_base = 770001};
    long long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_REDIS:
            if (parse_redis(optarg, &o.redis_url) != 0)
                return BENCH_EXIT_USAGE;
            break;
        case O_ACCOUNTS:
            if (parse_ll(optarg, 1, 1000000, &v) < 0)
                return bad("accounts", optarg, "expected an integer 1..1000000");
            o.accounts = (int)v;
            break;
        case O_STREAMS:
            if (parse_ll(optarg, 1, 10000000, &o.streams) < 0)
                return bad("streams", optarg, "expected an integer 1..10000000");
            break;
        case O_GLOBAL:
            if (parse_ll(optarg, 1, 100000, &v) < 0)
                return bad("global-limit", optarg, "expected an integer 1..100000");
            o.global_limit = (int)v;
            break;
        case O_SEED:
            if (parse_ll(optarg, 0, LLONG_MAX, &v) < 0)
                return bad("seed", optarg, "expected an integer >= 0");
            o.seed = (uint64_t)v;
            break;
        case O_SFLIMIT:
            o.sflimit = optarg;
            break;
        case O_KEEP:
            o.keep = 1;
            break;
        case 'h':
            fputs(scale_usage, stdout);
            return BENCH_EXIT_OK;
        default:
            return getopt_error(c, argv);
        }
    }
    static const char *const required[] = {"redis", "accounts", "streams"};
    int missing[] = {o.redis_url == NULL, o.accounts < 0, o.streams < 0};
    int rc = check_rest(argc, argv, required, missing, sizeof(missing) / sizeof(missing[0]));
    return rc ? rc : bench_scale_run(&o);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "%s\n%s\n%s", usage, makespan_usage, scale_usage);
        return BENCH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        printf("%s\n%s\n%s", usage, makespan_usage, scale_usage);
        return BENCH_EXIT_OK;
    }
    bench_name = argv[1];
    if (strcmp(argv[1], "lease") == 0)
        return lease_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "makespan") == 0)
        return makespan_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "scale") == 0)
        return scale_main(argc - 1, argv + 1);
    fprintf(stderr, "sflimit-bench: unknown benchmark '%s'\n\n%s\n%s\n%s", argv[1], usage,
            makespan_usage, scale_usage);
    return BENCH_EXIT_USAGE;
}
