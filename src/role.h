/* role.h - a role one node of the cluster plays at a time (the poller of a
 * source of others' connections), held through Redis (lua/role.lua): a key
 * with a TTL, renewed, and asked for by the others, every third of it. When
 * its node dies the key expires and another node takes the role within
 * 4/3 of a TTL; a node that stops gives it up at once. */
#ifndef SFL_ROLE_H
#define SFL_ROLE_H

#include <stdint.h>

struct event_base;
typedef struct sfl_store sfl_store;
typedef struct sfl_role sfl_role;

/* Called when this node takes the role (held 1) or learns it lost it (0). */
typedef void sfl_role_fn(int held, void *arg);

/* Asks for <ns>:role:<name> at once (when Redis is ready), then every
 * ttl_ms / 3. NULL when out of memory. */
sfl_role *sfl_role_new(struct event_base *base, sfl_store *store, const char *name,
                       const char *node_id, int64_t ttl_ms, sfl_role_fn *fn, void *arg);
/* Gives the role up if held, and frees. NULL is a no-op. */
void sfl_role_free(sfl_role *r);
/* Ask now (the store just connected). */
void sfl_role_kick(sfl_role *r);
/* 1 while held: the last answer said so and its TTL, counted from when the
 * ask was sent, has not run out. */
int sfl_role_held(const sfl_role *r);

#endif
