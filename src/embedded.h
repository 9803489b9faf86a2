/* embedded.h - a private redis-server for a single host that has none. */
#ifndef SFL_EMBEDDED_H
#define SFL_EMBEDDED_H

#include <stddef.h>

typedef struct sfl_embedded sfl_embedded;

/* Starts `redis-server` (from PATH) on a unix socket in a fresh private
 * directory, no TCP port, no persistence, and waits (up to 5 s) until it
 * answers. It dies with this process (PR_SET_PDEATHSIG). NULL + err on failure. */
sfl_embedded *sfl_embedded_start(char *err, size_t errlen);
/* "unix:///tmp/sfl-embedded-XXXX/redis.sock"; valid while e lives. */
const char *sfl_embedded_url(const sfl_embedded *e);
/* Stops the server, waits for it, removes its directory. NULL is a no-op. */
void sfl_embedded_stop(sfl_embedded *e);

#endif
