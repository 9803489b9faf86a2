/* bench.h - what the files of sflimit-bench share: the lease benchmark's
 * options, its per-cycle records and the figures computed from them. */
#ifndef SFL_BENCH_H
#define SFL_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_EXIT_OK 0
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2

typedef struct bench_lease_opts {
    const char *redis_url;
    int procs;       /* processes */
    int workers;     /* logical workers per process */
    long long limit; /* the account's max_streams, >= 1 */
    int64_t hold_ms; /* 0: release in the next loop turn */
    double seconds;  /* measured window */
    double warmup;   /* seconds before the window; nothing in it is reported */
    long long account;
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
 * Returns the exit code (bench_worker.c). */
int bench_worker_main(const bench_lease_opts *o, bench_shm *shm, int index, int go_fd);

#endif
