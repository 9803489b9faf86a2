/* ha.h - a Redis you can lose, for tests: a master, a replica and three
 * Redis Sentinels (redis-server --sentinel) on loopback, started and
 * stopped by the test, with kill -9 of the master, its restart, and the
 * failover scenario of three `sflimit node`s that the failover suite and
 * its benchmark share. */
#ifndef SFL_HA_H
#define SFL_HA_H

#include <stdint.h>
#include <sys/types.h>

#define TH_HA_MASTER "sflha" /* the master's name the sentinels monitor */
#define TH_HA_SENTINELS 3

typedef struct th_ha {
    char dir[128];
    int down_after_ms, failover_timeout_ms;
    pid_t server_pid[2]; /* server 0 starts as the master, server 1 as its replica */
    int server_port[2];
    pid_t sentinel_pid[TH_HA_SENTINELS];
    int sentinel_port[TH_HA_SENTINELS];
    char url[256]; /* redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/sflha */
} th_ha;

/* Starts the two servers (no persistence) and the three sentinels
 * (quorum 2) in a new temp directory, and waits until every sentinel knows
 * the replica and the two other sentinels (a failover can then happen).
 * Aborts the test on failure. Everything dies with the test process. */
void th_ha_start(th_ha *h, int down_after_ms, int failover_timeout_ms);
/* Kills everything (SIGKILL). Idempotent; NULL-safe on a zeroed th_ha. */
void th_ha_stop(th_ha *h);
/* kill -9 of server i (0 or 1), reaped. */
void th_ha_kill_server(th_ha *h, int i);
/* Starts server i again on its port, empty, as a master (the sentinels
 * turn it into a replica of the current master). */
void th_ha_restart_server(th_ha *h, int i);
/* kill -9 of sentinel i, reaped. */
void th_ha_kill_sentinel(th_ha *h, int i);
/* The port the live sentinels name as the master (the first one that
 * answers), 0 if none answers. */
int th_ha_master_port(const th_ha *h);
/* Which server the port is (0, 1), -1 if neither. */
int th_ha_server_of(const th_ha *h, int port);
/* ROLE of server i: "master", "slave", or "" when it does not answer. The
 * master it replicates goes to *master_port when it is a replica (may be
 * NULL). */
const char *th_ha_role(const th_ha *h, int i, int *master_port);

/*--- The failover scenario ----------------------------------------------------*/

typedef struct th_ha_opts {
    int down_after_ms;       /* sentinel down-after-milliseconds */
    int failover_timeout_ms; /* sentinel failover-timeout */
    int ttl_ms, renew_ms, safety_ms;
    int hold_ms;         /* how long each check holds its provider connection */
    int restart_old;     /* 1: the old master comes back (as a replica) */
    int kill_after_reqs; /* kill the master once the provider has seen this many checks */
} th_ha_opts;

typedef struct th_ha_result {
    int nstreams, nresults;
    int one_each; /* every stream exactly one result */
    int ok;       /* results with status OK */
    char statuses[256];
    long long violations; /* the provider's own count */
    int64_t killed_at_ms; /* from the batch's start */
    int64_t regrant_ms;   /* from the kill to the provider's first new check */
    int64_t switch_ms;    /* from the kill to the sentinels naming the new master */
    int64_t makespan_ms;
    int old_is_replica; /* restart_old: it came back as a replica of the new master */
    int subscribed;     /* connections subscribed to channels on the new master at the end */
    char dir[128];      /* the run's files (logs) */
} th_ha_result;

/* Three `sflimit node`s on a redis-sentinel:// URL, a fake provider, five
 * accounts (limits 1, 2, 3, 1 and unlimited), a 30-stream batch from
 * `sflimit submit --wait` (also on the sentinel URL); once the provider has
 * seen kill_after_reqs checks, kill -9 of the master. Fills *out; asserts
 * only what keeps the run going (everything starts, the batch ends within
 * a few minutes): the caller judges the figures. */
void th_ha_failover_run(const th_ha_opts *o, th_ha_result *out);
/* Stops whatever a run left (after a failed assertion): for a .fini. */
void th_ha_failover_cleanup(void);

#endif
