/* xtream.h - Xtream Codes panels as a source of others' connections (DESIGN
 * §10, issue "viewers first").
 *
 * A login configured with "xtream": {"url", "username", "password",
 * "poll_s", "max_age_ms"} is counted by its panel: one node (the holder of
 * the role sfl:role:xtream:<login>, role.h) asks GET
 * <url>/player_api.php?username=U&password=P every poll_s, and writes its
 * user_info.active_cons (a string or a number: every connection on the
 * login, this cluster's checks included) less the login's leases live at
 * that moment, never below 0, as the login's others' connections
 * (lua/others.lua, mode "total"). A panel that says the login is not usable
 * (auth 0, or a status other than "Active": Expired, Banned, Disabled)
 * closes it: no grant, and an error naming the login and the status. Its
 * max_connections, exp_date and status go to learned.h (the login's
 * effective limit, and the plan shown per login). The answer echoes the
 * password: nothing of it is logged or kept. */
#ifndef SFL_XTREAM_H
#define SFL_XTREAM_H

#include <stddef.h>

struct event_base;
typedef struct sfl_store sfl_store;
typedef struct sfl_routes sfl_routes;
typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_xtream sfl_xtream;
struct sfl_others_seen;

/* One panel poller per login of accs that has an xtream source (its keys
 * as routes names them, set with these accounts); NULL when there is none
 * (or out of memory). base, store and the node id must outlive it. */
sfl_xtream *sfl_xtream_new(struct event_base *base, sfl_store *store, sfl_routes *routes,
                           const sfl_account_conf *accs, size_t n, const char *node_id);
/* Gives the roles up and frees. NULL is a no-op. */
void sfl_xtream_free(sfl_xtream *x);
/* Forward the store's connect: the roles are asked for at once. */
void sfl_xtream_on_ready(sfl_xtream *x);
/* Who is told of each figure written (copied; fn NULL: nobody). */
void sfl_xtream_on_seen(sfl_xtream *x, const struct sfl_others_seen *seen);

/* What a panel's answer says (pure): 1 and *cons (active_cons) for a usable
 * login; 0 with why ("auth 0", "status Expired") for one that is not; -1
 * when body is not a player_api.php answer. */
int sfl_xtream_read(const char *body, size_t len, long long *cons, char *why, size_t whylen);

/* What a usable panel's answer says of the login's plan (pure):
 * max_connections (a string or a number; 0 = unlimited; -1 when not said),
 * exp_date (a UNIX time as text, "" when null or not said) and status
 * (printable, "" when not said). 0, or -1 for an answer without a usable
 * user_info (auth 0, not player_api.php's). Never reads the password. */
typedef struct sfl_xtream_plan {
    long long max_connections;
    char exp_date[24];
    char status[40];
} sfl_xtream_plan;
int sfl_xtream_read_plan(const char *body, size_t len, sfl_xtream_plan *plan);

#endif
