/* sidecar.h - leases held by the node for HTTP clients (POST /v1/leases). */
#ifndef SFL_SIDECAR_H
#define SFL_SIDECAR_H

#include <stdint.h>

struct event_base;
typedef struct sfl_limiter sfl_limiter;
typedef struct sfl_sidecar sfl_sidecar;
typedef struct sfl_sidecar_ask sfl_sidecar_ask;

typedef enum {
    SFL_SIDECAR_GRANTED = 0,
    SFL_SIDECAR_TIMEOUT,
    SFL_SIDECAR_UNKNOWN_ACCOUNT,
} sfl_sidecar_status;

/* id and fence valid during the call. */
/* id, fence and login (the provider login the slot is of) when granted. */
typedef void sfl_sidecar_fn(sfl_sidecar_status st, const char *id, long long fence,
                            const char *login, void *arg);

/* client_ttl_ms: a client that does not renew within this long loses its
 * lease (it crashed); the node renews the lease in Redis meanwhile. */
sfl_sidecar *sfl_sidecar_new(struct event_base *base, sfl_limiter *lim, int64_t client_ttl_ms);
/* Releases every lease and cancels every ask. NULL is a no-op. */
void sfl_sidecar_free(sfl_sidecar *s);

/* Waits up to wait_ms for a slot. fn is called once, from the loop, unless
 * the ask is cancelled first. NULL when out of memory. */
sfl_sidecar_ask *sfl_sidecar_acquire(sfl_sidecar *s, long long account, int64_t wait_ms,
                                     const char *label, sfl_sidecar_fn *fn, void *arg);
void sfl_sidecar_cancel(sfl_sidecar_ask *a);
/* 0 renewed (client deadline moved); -1 unknown id; -2 the lease was lost. */
int sfl_sidecar_renew(sfl_sidecar *s, const char *id);
/* 0 released; -1 unknown id. */
int sfl_sidecar_release(sfl_sidecar *s, const char *id);
int sfl_sidecar_count(const sfl_sidecar *s);

#endif
