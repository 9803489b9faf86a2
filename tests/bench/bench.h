/* bench.h - what the files of sflimit-bench share: the lease benchmark's
 * options, its per-cycle records and the figures computed from them; the
 * makespan and scale benchmarks' options; the helpers all of them use
 * (a synchronous Redis connection, seeded work, child processes). */
#ifndef SFL_BENCH_H
#define SFL_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct redisContext;
typedef struct sfl_streams sfl_streams;
typedef struct sfl_account_conf sfl_account_conf;

#define BENCH_EXIT_OK 0
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2

typedef struct bench_lease_opts {
    const char *redis_url;
    int procs;         /* processes */
    int workers;       /* logical workers per process */
    long long limit;   /* the account's max_streams, >= 1 */
    int logins;        /* the account's logins, 1..limit; 1: none configured (as before logins) */
    int64_t hold_ms;   /* 0: release in the next loop turn */
    int64_t jitter_ms; /* each hold drawn from hold_ms +- this, whole ms, uniformly */
    double seconds;    /* measured window */
    double warmup;     /* seconds before the window; nothing in it is reported */
    long long account;
    int64_t history_ms; /* > 0: every worker records history (history.c) as a node does,
                           flushing this often; 0: history off */
} bench_lease_opts;

/* One acquire/hold/release cycle of one worker, CLOCK_MONOTONIC ns (the
 * clock every process on the machine shares). release_ns is 0 while held. */
typedef struct bench_rec {
    int64_t ask_ns;
    int64_t grant_ns;
    int64_t release_ns;
    int64_t announce_ns; /* the "<account> <this node's ticket>" message came; 0: none */
    int32_t worker;      /* global index: proc * workers + worker */
    int32_t pad;
} bench_rec;

/* Figures of one run. NaN where there was nothing to measure. */
typedef struct bench_figures {
    long long cycles;
    double cycles_per_s;
    double handoff_p50, handoff_p90, handoff_p99;
    double wait_p50, wait_p99, wait_max;
    double jain;
    int max_concurrent;
    long long handoffs; /* how many hand-offs the percentiles are taken over */
    long long negative_handoffs;
    double handoff_same_worker; /* share of them back to the worker that released */
    /* Share of the window's releases that came less than 1 ms after the
     * release before them (any worker): slots whose cycles run in step,
     * released together, make Redis answer their releases in one turn. */
    double releases_close;
    /* Hand-off p50 over the releases with no other release within 1 ms
     * either side: what a release costs when Redis has it alone. */
    double handoff_alone_p50;
    /* Hand-offs split where the next holder was told by an announcement:
     * release -> announcement seen, announcement -> grant (the take-over ask). */
    long long announced;
    double announce_p50, announce_p90, takeover_p50, takeover_p90;
} bench_figures;

/* Computes the figures from every record of the run (warm-up included:
 * hand-offs are numbered from the start of the run, when nobody held a
 * slot). Window [start_ns, end_ns). nworkers: total workers. 0, or -1 when
 * out of memory. */
int bench_figures_compute(const bench_rec *recs, size_t n, int nworkers, long long limit,
                          int64_t start_ns, int64_t end_ns, bench_figures *out);

/* Nearest-rank percentile (0 < p <= 100) of n sorted values; NaN if n == 0. */
double bench_percentile(const double *sorted, size_t n, double p);
/* Jain's fairness index (sum x)^2 / (n sum x^2); 1 when all x are 0. */
double bench_jain(const long long *x, size_t n);

int64_t bench_now_ns(void);

/* Runs the lease benchmark (options already checked); prints the JSON line
 * on stdout and a summary on stderr. Returns the exit code. */
int bench_lease_run(const bench_lease_opts *o);

#define BENCH_MAX_LOGINS 64
/* The account of a run with o->logins > 1: logins "l1".."l<N>", o->limit
 * split over them as evenly as possible (the first ones get what is left
 * over; the sum is o->limit), every URL as given. NULL when out of memory
 * (or o->logins is 1: the account has no logins configured). The caller
 * frees it with bench_lease_account_free. */
sfl_account_conf *bench_lease_account_new(const bench_lease_opts *o);
/* NULL is a no-op. */
void bench_lease_account_free(sfl_account_conf *acc);

/*--- The lease benchmark's shared memory (parent <-> children) ------------*/

#define BENCH_NS "sfl"
#define BENCH_CONNECT_DEADLINE_MS 10000

/* One process's part; written by that child only (but `failed`, which the
 * parent polls while children connect), read by the parent after the child
 * has exited. */
typedef struct bench_proc_area {
    bench_rec *recs; /* MAP_SHARED, mapped before fork: same address everywhere */
    size_t cap, count;
    int overflow;
    atomic_int failed;
    char err[200];
    uint64_t cmds_start, cmds_end;     /* client commands sent, summed over workers */
    uint64_t denied_start, denied_end; /* denied asks */
    uint64_t lost, not_granted;
} bench_proc_area;

typedef struct bench_shm {
    atomic_int ready;                /* children connected and waiting for go */
    atomic_int abort;                /* set before go: exit instead of running */
    int64_t go_ns, start_ns, end_ns; /* CLOCK_MONOTONIC; valid at go */
    bench_proc_area procs[];
} bench_shm;

/* A child: connects its workers, adds itself to shm->ready, blocks until
 * go_fd reaches EOF, runs the workers until end_ns, gives everything back.
 * acc: the account's logins, given to every worker's limiter; NULL: none
 * (one login, the account id). Returns the exit code (bench_worker.c). */
int bench_worker_main(const bench_lease_opts *o, const sfl_account_conf *acc, bench_shm *shm,
                      int index, int go_fd);

/*--- The makespan and scale benchmarks ------------------------------------*/

typedef struct bench_makespan_opts {
    const char *redis_url;
    const char *sflimit; /* NULL: next to sflimit-bench */
    int nodes;           /* K sflimit node processes */
    int accounts;        /* A */
    long long streams;   /* N */
    int64_t check_ms;    /* D: every check is `sleep D/1000` */
    int global_limit;    /* G per node */
    uint64_t seed;
    double max_ratio; /* > 0: exit 1 above it */
    double timeout;   /* seconds for the whole batch; 0: derived from the bound */
    int keep;         /* keep the scratch directory (configs, node logs) */
    long long account_base;
} bench_makespan_opts;

typedef struct bench_scale_opts {
    const char *redis_url;
    const char *sflimit;
    int accounts;
    long long streams;
    int global_limit;
    uint64_t seed;
    int keep;
    long long account_base;
} bench_scale_opts;

typedef struct bench_floor_opts {
    const char *redis_url;
    int interval_ms; /* between two sends */
    double seconds;  /* sending time, both modes */
    int calls;       /* reads in the script before its PUBLISH */
} bench_floor_opts;

/* Run the benchmark (options already checked); one JSON line on stdout, a
 * summary on stderr. Return the exit code. */
int bench_makespan_run(const bench_makespan_opts *o);
int bench_scale_run(const bench_scale_opts *o);
int bench_floor_run(const bench_floor_opts *o);

/*--- Synchronous Redis (bench_redis.c) -------------------------------------*/

/* NULL with err set. The caller frees with redisFree. */
struct redisContext *bench_redis_open(const char *url, char *err, size_t errlen);
/* The URL with credentials hidden, for messages. */
void bench_redis_shown(const char *url, char *buf, size_t len);
/* One command whose reply is only checked for errors. 0 or -1. */
int bench_redis_do(struct redisContext *c, char *err, size_t errlen, int argc, const char **argv);
/* Pipelining: append commands, then read n replies (-1 on the first error
 * reply or a broken connection; every reply is read either way unless the
 * connection broke). */
int bench_redis_append(struct redisContext *c, int argc, const char **argv);
int bench_redis_drain(struct redisContext *c, size_t n, char *err, size_t errlen);
/* The number after field in INFO text; missing (a command never called) is 0. */
long long bench_info_field(const char *text, const char *field);
/* INFO memory used_memory; -1 on failure. */
long long bench_used_memory(struct redisContext *c);
/* MEMORY USAGE key SAMPLES 0; -1 on failure or no such key. */
long long bench_memory_usage(struct redisContext *c, const char *key);
/* SCAN MATCH pattern; fn gets each key (valid during the call). 0 or -1. */
int bench_redis_scan(struct redisContext *c, const char *pattern,
                     void (*fn)(const char *key, size_t len, void *arg), void *arg);
/* Each account's conf {max_streams, updated_ms 0, epoch_ms 0,
 * recover_until_ms 0} (no recovery window), its id in <ns>:accounts, and its
 * leases, holders, fence and waiters cleared. */
int bench_accounts_write(struct redisContext *c, const long long *ids, const int *limits, size_t n,
                         char *err, size_t errlen);
/* The same for accounts of several logins, through their routes (routes.h):
 * each login's conf {its max_streams, updated_ms 0, epoch_ms 0,
 * recover_until_ms 0}, the ids in <ns>:accounts, and every login's leases,
 * holders and fence and the account's waiters cleared. */
int bench_logins_write(struct redisContext *c, const sfl_account_conf *accs, size_t n, char *err,
                       size_t errlen);
/* Every key of the accounts, conf included, and their <ns>:accounts ids. */
int bench_accounts_clean(struct redisContext *c, const long long *ids, size_t n, char *err,
                         size_t errlen);

/* The <ns>:* keys, sorted into what an idle cluster may hold (each
 * account's conf, <ns>:accounts) and what it should not (stray: any other
 * key of an account); other: queue, batches, nodes. */
#define BENCH_KEYSPACE_SHOWN 5
typedef struct bench_keyspace {
    long long conf, accounts_set, stray, other;
    char shown[BENCH_KEYSPACE_SHOWN][96]; /* the first stray keys */
} bench_keyspace;
int bench_keyspace_get(struct redisContext *c, bench_keyspace *out);

/*--- Seeded work and files (bench_workload.c) ------------------------------*/

typedef struct bench_workload {
    long long base; /* ids[i] = base + i */
    int naccounts;
    long long *ids;
    int *limit;          /* per account, 1..4 */
    size_t *per_account; /* streams per account */
    size_t nstreams;
    int *account_of; /* per stream: index of its account */
} bench_workload;

uint64_t bench_rand_next(uint64_t *state); /* splitmix64 */
/* NULL when out of memory. naccounts >= 1. */
bench_workload *bench_workload_new(int naccounts, size_t nstreams, uint64_t seed, long long base);
void bench_workload_free(bench_workload *w);
/* max over accounts of ceil(n_a / limit_a) x check_s; *critical: that account's index. */
double bench_workload_account_bound(const bench_workload *w, double check_s, int *critical);
/* The streams, ids 1..N (caller frees with sfl_streams_free). NULL: out of memory. */
sfl_streams *bench_workload_streams(const bench_workload *w);
/* The same streams as a JSON array file. 0 or -1 with err. */
int bench_workload_write_streams(const bench_workload *w, const char *path, char *err,
                                 size_t errlen);

/* What differs between the configs written here; the rest is fixed:
 * stagger_delay 0, parser none, retries 0, http.listen 127.0.0.1:0,
 * node.claim_idle 15. */
typedef struct bench_config {
    const char *node_id;
    const char *redis_url;
    int global_limit;
    const char *const *command; /* NULL-terminated */
    double check_timeout;
    int64_t lease_ttl_ms;
    const bench_workload *accounts; /* listed in "accounts", or NULL: none */
} bench_config;
int bench_config_write(const char *path, const bench_config *bc, char *err, size_t errlen);

/* mkdtemp under /tmp into buf; 0 or -1. Remove: recursively, errors ignored. */
int bench_tmpdir_make(char *buf, size_t len);
void bench_tmpdir_remove(const char *dir);

/*--- Child processes (bench_child.c) ---------------------------------------*/

typedef struct bench_child {
    pid_t pid;  /* 0: not started */
    int err_fd; /* read end of its stderr when piped, else -1 */
    int reaped;
    int status; /* wait status, once reaped */
    int cpu_known;
    double cpu_self_s;     /* user + system of the process itself */
    double cpu_children_s; /* of the children it reaped (its checks) */
    long maxrss_kb;        /* wait4 ru_maxrss */
    long vmhwm_kb;         /* the highest VmHWM sampled while it ran */
} bench_child;

/* The sflimit binary: given, or "sflimit" next to this program. 0 when it
 * is executable, else -1 (buf holds the path tried). */
int bench_sflimit_path(const char *given, char *buf, size_t len);
/* Starts argv[0] (a path) with stdin /dev/null, stdout to out_path (NULL:
 * /dev/null), stderr to err_path or, if NULL, a pipe read through c->err_fd.
 * It gets SIGTERM if the benchmark dies. 0, or -1 with err. */
int bench_child_start(bench_child *c, const char *const *argv, const char *out_path,
                      const char *err_path, char *err, size_t errlen);
/* Reads VmHWM from /proc while it runs. */
void bench_child_sample(bench_child *c);
/* Waits up to timeout_ms (< 0: forever) for it to exit, then measures and
 * reaps it. 0 when reaped, -1 when still running. */
int bench_child_wait(bench_child *c, int64_t timeout_ms);
/* SIGTERM, grace_ms, then SIGKILL; reaped either way. */
void bench_child_stop(bench_child *c, int64_t grace_ms);
/* The same without the SIGTERM, for a child already sent one (a second
 * SIGTERM is "stop now" to a node, or kills it while it tears down). */
void bench_child_finish(bench_child *c, int64_t grace_ms);
/* Closes the stderr pipe, if any. */
void bench_child_close(bench_child *c);

#endif
