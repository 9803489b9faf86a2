/* keys.h - the names of sfl's Redis keys (DESIGN §6), in one place.
 *
 * An account's keys share one hash tag, {a:<id>}, so that every script's keys
 * live in one Redis Cluster slot. The lease scripts (lua/acquire.lua,
 * renew.lua, release.lua) take an account's keys in the order of
 * sfl_account_key_kind; lua/prelude.lua reads them in that order. */
#ifndef SFL_KEYS_H
#define SFL_KEYS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SFL_KEY_LEASES = 0,  /* ZSET lease id -> deadline (ms, Redis time) */
    SFL_KEY_HOLDERS,     /* HASH lease id -> holder JSON */
    SFL_KEY_CONF,        /* HASH max_streams, name, updated_ms, reserve, ...; others' figure
                            (others.lua), panel_* and learned_* (learn.lua) */
    SFL_KEY_FENCE,       /* STRING grant counter */
    SFL_KEY_WAITERS,     /* ZSET ticket -> arrival */
    SFL_KEY_WAITERS_EXP, /* ZSET ticket -> expiry */
    SFL_ACCOUNT_NKEYS
} sfl_account_key_kind;

#define SFL_KEY_LEN 256
#define SFL_KEY_PREFIX_LEN 224 /* a key name without its last part ("leases", "waiters:exp") */

/* Writes "<ns>:{a:<id>}:<suffix>" into buf (suffix "leases", "conf", ...). */
void sfl_account_key(char *buf, size_t len, const char *ns, long long account, const char *suffix);

/* Writes "<ns>:epoch", the namespace's epoch marker (lua/epoch.lua): the
 * last key of every script that grants, and of conf.lua and status.lua. */
void sfl_epoch_key(char *buf, size_t len, const char *ns);

/* History (issue #18; README "History"). "<ns>:history:<login>:<YYYYMMDDHH>",
 * the UTC hour holding Unix second t: a login's minutes (history_format.h). */
void sfl_history_hour_key(char *buf, size_t len, const char *ns, const char *login, int64_t t);
/* "<ns>:stream:<id>:history": a stream's last results. */
void sfl_history_stream_key(char *buf, size_t len, const char *ns, long long stream_id);

/* Every key of one account, in script order: pass .argv as a script's KEYS. */
typedef struct sfl_account_keys {
    char name[SFL_ACCOUNT_NKEYS][SFL_KEY_LEN];
    const char *argv[SFL_ACCOUNT_NKEYS]; /* point into name */
} sfl_account_keys;
void sfl_account_keys_init(sfl_account_keys *k, const char *ns, long long account);

#endif
