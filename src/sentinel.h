/* sentinel.h - finds the Redis master through Redis Sentinel
 * (redis-sentinel:// URLs), on a libevent loop, and tells when the
 * sentinels switch it to another server. */
#ifndef SFL_SENTINEL_H
#define SFL_SENTINEL_H

#include <stdint.h>

#include <stddef.h>

struct event_base;
struct sfl_redis_addr;
typedef struct sfl_sentinel sfl_sentinel;

typedef struct sfl_sentinel_opts {
    const struct sfl_redis_addr *sentinels; /* copied */
    int nsentinels;
    const char *master;   /* the master's name (copied) */
    const char *password; /* the sentinels' own (AUTH), NULL: none (copied) */
    int64_t timeout_ms;   /* per sentinel: connect and answer */
    /* The answer of sfl_sentinel_resolve: host and port of the master, or
     * host == NULL and why no sentinel could tell. Never called from inside
     * sfl_sentinel_resolve. host is valid during the call. */
    void (*on_found)(const char *host, int port, const char *why, void *arg);
    /* A sentinel announced +switch-master for our master: it is now
     * host:port (valid during the call). */
    void (*on_switch)(const char *host, int port, void *arg);
    void *arg;
} sfl_sentinel_opts;

/* NULL + err when out of memory. Nothing is sent before resolve/watch. */
sfl_sentinel *sfl_sentinel_new(struct event_base *base, const sfl_sentinel_opts *opts, char *err,
                               size_t errlen);
/* Closes every connection; no callback after this. NULL is a no-op. */
void sfl_sentinel_free(sfl_sentinel *s);
/* Asks the sentinels in turn, starting with the last one that answered,
 * skipping those down or silent for timeout_ms, until one names the master;
 * then on_found. A call while a query runs joins it (one on_found). */
void sfl_sentinel_resolve(sfl_sentinel *s);
/* Keeps one connection subscribed to +switch-master on some sentinel,
 * starting with the last one that answered a query (moving on to the next
 * one when it is lost, or not subscribed within timeout_ms), for
 * on_switch. Once; later calls change nothing. */
void sfl_sentinel_watch(sfl_sentinel *s);

#endif
