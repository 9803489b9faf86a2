/* accounts.h - account limits in Redis: writing them, and reading them back
 * with their holders. */
#ifndef SFL_ACCOUNTS_H
#define SFL_ACCOUNTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sfl_store sfl_store;
typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_routes sfl_routes;
typedef struct cJSON cJSON;
struct redisReply;

/* ok: 1 when every write was answered; err names the first failure. */
typedef void sfl_accounts_done_fn(int ok, const char *err, void *arg);
/* doc: {"accounts": [...]} (DESIGN §7 shape), owned by the caller of fn
 * only during the call; NULL with err on failure. */
typedef void sfl_accounts_fetch_fn(cJSON *doc, const char *err, void *arg);

/* Writes the limits of the accounts' logins (conf.lua, each login's conf
 * key as routes names it) and adds the ids to <ns>:accounts. A limit that
 * differs from the one Redis had is logged. routes: the node's table, set
 * with these accounts already (so that logins shared with other accounts
 * land on the group's keys); NULL: the logins of just these accounts.
 * recovery_ms: the window opened if the namespace's epoch marker is missing
 * (a Redis that lost its data since this process connected). fn is called once,
 * from the loop. -1 if Redis is not ready (fn not called). */
int sfl_accounts_write(sfl_store *st, sfl_routes *routes, const sfl_account_conf *acc, size_t n,
                       int64_t recovery_ms, unsigned flags, sfl_accounts_done_fn *fn, void *arg);
/* flags: an operator's explicit change (PUT): what Redis describes of the
 * accounts' logins becomes exactly what is written, even one login again.
 * Without it (configs, syncs), a description this write leaves out stays
 * (lua/account.lua), with a warning: a node started with an older config
 * must not lift the fence of a group. */
#define SFL_ACCOUNTS_REPLACE 1u
/* Forget what each login learned of its real limit (learned.h): accounts
 * set, PUT /v1/accounts. */
#define SFL_ACCOUNTS_FORGET 2u
/* Reads every account Redis knows and its logins (described.h), then each
 * login with status.lua and its conf's figures. */
int sfl_accounts_fetch(sfl_store *st, sfl_accounts_fetch_fn *fn, void *arg);
/* Adds what status.lua answered for one account (r) to its entry object e:
 * name, max_streams, in_use, recovering_ms, waiting, holders (each the
 * holder's JSON object with age_ms, lease and expires_in_ms). Pure: elements
 * of an unexpected type read as 0 / "" / {}. 0, or -1 (e untouched) when r is
 * not an array of at least 6 elements. r is only read during the call. */
int sfl_accounts_status_decode(const struct redisReply *r, cJSON *e);

#endif
