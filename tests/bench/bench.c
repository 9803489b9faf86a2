/* bench.c - `sflimit-bench BENCHMARK [OPTIONS]`: parses the command line and
 * hands over (bench_lease.c runs the lease benchmark, bench_stats.c turns
 * its records into figures).
 *
 * The benchmark links the same core library as the node: no fast path of
 * its own. Usage errors exit 2 with a message naming the option.
 */
#include "bench.h"

#include "conf.h"

#include <errno.h>
#include <getopt.h>
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

static int bad(const char *opt, const char *value, const char *what)
{
    fprintf(stderr, "sflimit-bench lease: --%s '%s': %s\n", opt, value ? value : "", what);
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return BENCH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return BENCH_EXIT_OK;
    }
    if (strcmp(argv[1], "lease") == 0)
        return lease_main(argc - 1, argv + 1);
    fprintf(stderr, "sflimit-bench: unknown benchmark '%s'\n\n%s", argv[1], usage);
    return BENCH_EXIT_USAGE;
}
