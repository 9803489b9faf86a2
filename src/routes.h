/* routes.h - which provider logins an account's checks go through, and where
 * each login's keys are in Redis (DESIGN §10).
 *
 * An account is an ordered list of logins (default first). A login is what
 * the provider limits; one login id in several accounts is one login, one
 * limit. Accounts joined by shared logins form a group, and every key of a
 * group carries the hash tag of its smallest account id G, so that one
 * admission over all of an account's logins is one script on one Redis
 * Cluster slot:
 *
 *   the first login of account G   <ns>:{a:<G>}:leases, :holders, :conf, :fence
 *   any other login L              <ns>:{a:<G>}:l:<L>:leases, ...
 *   the waiters of account G       <ns>:{a:<G>}:waiters, :waiters:exp
 *   the waiters of account A != G  <ns>:{a:<G>}:a:<A>:waiters, ...
 *
 * So an account without logins (one login, id = the account id) keeps the
 * keys it always had, and giving an account more logins never moves its
 * first one: its running leases stay counted. */
#ifndef SFL_ROUTES_H
#define SFL_ROUTES_H

#include <stddef.h>

#include "keys.h"

typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_rewrite sfl_rewrite;
typedef struct sfl_routes sfl_routes;

#define SFL_LOGIN_ID_LEN 65 /* [A-Za-z0-9._-]{1,64} and the NUL */

/* 1 when s is a login id: 1 to 64 of A-Z a-z 0-9 . _ - (never a credential). */
int sfl_login_id_valid(const char *s);

typedef struct sfl_login {
    char id[SFL_LOGIN_ID_LEN];
    long long max_streams; /* configured (0 = unlimited), or -1: not configured */
    long long known;       /* the limit last seen in Redis, or max_streams; -1 if none */
    long long reserve;     /* slots kept for others (the largest any account says) */
    long long cooldown_ms; /* a freed slot stays counted this long (the longest said) */
    long long max_age_ms;  /* > 0: others' connections come from a source, and a figure older
                              than this stops grants (the shortest said) */
    char prefix[SFL_KEY_PREFIX_LEN]; /* its keys: prefix + "leases", "holders", "conf", "fence" */
    long long *accounts;             /* the accounts that use it, ascending */
    size_t naccounts;
} sfl_login;

typedef struct sfl_route {
    long long account;
    long long group;                  /* G: the smallest account id of its group */
    int configured;                   /* 0: made on first use (one login, the account id) */
    char waiters[SFL_KEY_PREFIX_LEN]; /* prefix + "waiters", "waiters:exp" */
    sfl_login **logins;               /* route order */
    sfl_rewrite **rw; /* each login's rewrite in this account; NULL: the URL as given */
    size_t nlogins;
} sfl_route;

sfl_routes *sfl_routes_new(const char *ns);
/* NULL is a no-op. */
void sfl_routes_free(sfl_routes *r);

/* Sets the logins of these accounts (accounts set before and not given here
 * keep theirs) and regroups. A login whose max_streams differs between two
 * accounts counts with the smaller (logged). 0, or -1 with err naming the
 * account and login (a rewrite that does not compile; out of memory), the
 * routes unchanged. Pointers from sfl_routes_get before the call are
 * invalid after it. */
int sfl_routes_set(sfl_routes *r, const sfl_account_conf *accs, size_t n, char *err, size_t errlen);
/* The account's route, made with one login (id = the account id, the URL as
 * given) when none was set. NULL when out of memory. */
const sfl_route *sfl_routes_get(sfl_routes *r, long long account);
/* The login of that id in the account's route, or NULL; its index in *idx. */
const sfl_login *sfl_route_login(const sfl_route *rt, const char *id, size_t *idx);
/* The limit last seen for a login of an account's route (from an answer). */
void sfl_routes_hint(sfl_routes *r, long long account, size_t idx, long long limit);
/* Calls fn for every route (order unspecified). */
void sfl_routes_each(const sfl_routes *r, void (*fn)(const sfl_route *rt, void *arg), void *arg);

/* The URL a check through the route's login idx opens: malloc'd (a copy when
 * that login does not rewrite); NULL when out of memory. */
char *sfl_route_url(const sfl_route *rt, size_t idx, const char *url);

#endif
