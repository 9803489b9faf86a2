/* described.h - the accounts Redis knows and the logins it describes for
 * them, read in one place: GET /v1/accounts (accounts.c's fetch), the
 * history of a login the node does not route (http_history.c) and
 * `sflimit status --history` (cmd_history.c) all start from it. */
#ifndef SFL_DESCRIBED_H
#define SFL_DESCRIBED_H

#include <stddef.h>

#include "keys.h"
#include "routes.h"

typedef struct sfl_store sfl_store;

/* A login, once however many accounts describe it. */
typedef struct sfl_described_login {
    char id[SFL_LOGIN_ID_LEN];
    char prefix[SFL_KEY_PREFIX_LEN]; /* its keys (routes.h): prefix + "conf", "leases", ...;
                                        where the first account met puts it */
    long long *accounts;             /* the accounts that describe it, ascending, unique */
    size_t naccounts;
} sfl_described_login;

/* One login of an account, as the account's description gives it. */
typedef struct sfl_described_use {
    size_t login;                    /* its index in sfl_described.logins */
    char prefix[SFL_KEY_PREFIX_LEN]; /* where this description puts its keys (one written
                                        before a regrouping may differ from another's) */
    double reserve, cooldown_ms;     /* as the description says; 0 when it does not */
} sfl_described_use;

typedef struct sfl_described_account {
    long long id;
    char *name;                /* its conf's "name", "" when none */
    char *waiters;             /* its tickets' key prefix (+ "waiters", "waiters:exp") */
    sfl_described_use *logins; /* route order; at least one */
    size_t nlogins;
} sfl_described_account;

/* The accounts of <ns>:accounts, ascending (a member that is not a decimal
 * id >= 0 left out), each with its logins: those its conf describes
 * (account.lua's "logins": entries with a login id and a key prefix), or
 * else one login named after it under its own keys (<ns>:{a:<id>}:). */
typedef struct sfl_described {
    sfl_described_account *accounts;
    size_t naccounts;
    sfl_described_login *logins; /* in the order met: accounts ascending, each in route order */
    size_t nlogins;
} sfl_described;

/* d is the reader's and valid only during the call; NULL with err (Redis
 * did not answer, out of memory). */
typedef void sfl_described_fn(const sfl_described *d, const char *err, void *arg);

/* Reads them: SMEMBERS <ns>:accounts, then one HMGET of each account's conf
 * (name, logins, waiters), in one pipeline. fn is called exactly once, from
 * the loop. -1 (fn not called) when Redis is not ready. */
int sfl_described_read(sfl_store *st, sfl_described_fn *fn, void *arg);

/*--- Lists of logins -------------------------------------------------------*/

/* The login of that id among logins (n of them), or NULL. */
sfl_described_login *sfl_described_find(const sfl_described_login *logins, size_t n,
                                        const char *id);
/* Account acc uses login id (its keys at prefix): the login joins *logins
 * (n of them; the array grows by realloc) with that prefix unless it is
 * there already, and acc its accounts. The login, or NULL when out of
 * memory (the list as it was, but for a login added without accounts). */
sfl_described_login *sfl_described_add(sfl_described_login **logins, size_t *n, const char *id,
                                       const char *prefix, long long acc);
/* Frees the list (n logins) and each login's accounts; NULL is a no-op. */
void sfl_described_logins_free(sfl_described_login *logins, size_t n);

#endif
