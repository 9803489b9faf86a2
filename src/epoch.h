/* epoch.h - the namespace's epoch marker as a connection sees it
 * (lua/epoch.lua): what to send, and what the answer means.
 *
 * Every command connection, once its scripts are loaded, runs epoch.lua
 * before the store says it is ready (store.c). The marker tells whether this
 * Redis still holds the leases sfl wrote: missing, or written by another
 * Redis process (a restart, a failover), it opens the recovery window for
 * every account at once. Nothing here talks to Redis. */
#ifndef SFL_EPOCH_H
#define SFL_EPOCH_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;

/* What epoch.lua found. */
typedef enum {
    SFL_EPOCH_UNKNOWN = 0, /* not checked yet, or an answer not epoch.lua's */
    SFL_EPOCH_MISSING,     /* no marker, none made: the first write makes it, with a window */
    SFL_EPOCH_CREATED,     /* the marker was missing: made now, without a window */
    SFL_EPOCH_CHANGED,     /* another Redis process serves the data: window opened */
    SFL_EPOCH_CLOSED,      /* `init` closed an open window */
    SFL_EPOCH_INTACT,
} sfl_epoch_state;

typedef struct sfl_epoch {
    sfl_epoch_state state;
    long long recovering_ms; /* left of the recovery window at the answer, 0 if none */
    char reason[16];         /* why the window was last opened: missing, restart,
                                failover, init ("" if no marker) */
    long long created_ms;    /* when the marker was made, Redis time */
    char policy[32];         /* Redis's maxmemory-policy ("" if not said): anything but
                                noeviction may evict leases (a warning) */
} sfl_epoch;

/* How the first check of a store treats a missing marker (later reconnects
 * always use SFL_EPOCH_NORMAL). */
typedef enum {
    SFL_EPOCH_NORMAL = 0, /* not made at connect: the first write makes it, with a
                             recovery window of one lease TTL */
    SFL_EPOCH_FRESH,      /* made without a window: a Redis no check has used
                             (an embedded Redis, `accounts set --fresh`) */
    SFL_EPOCH_INIT,       /* as FRESH, and a window opened for a missing marker is
                             closed (`sflimit init`) */
    SFL_EPOCH_FORCE,      /* any open window is closed (`sflimit init --force`) */
} sfl_epoch_mode;

/* epoch.lua's fourth argument for mode. */
const char *sfl_epoch_mode_arg(sfl_epoch_mode mode);

/* Decodes epoch.lua's answer into e; -1 (e->state UNKNOWN) when r is not one. */
int sfl_epoch_decode(const struct redisReply *r, sfl_epoch *e);

/* Logs what an answer means for the operator (once per check; where: the
 * Redis address, for the message). */
void sfl_epoch_log(const sfl_epoch *e, const char *where);

#endif
