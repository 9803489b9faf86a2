/* learned.h - a login's effective limit, learned from its provider (issue
 * #15, DESIGN §10 "Learned limits"): its panel's max_connections, and the
 * checks it refused or let through. The state lives in the login's conf
 * hash in Redis (lua/learn.lua decides, atomically, for every node); this
 * is how a node tells it what happened. Every change of the effective
 * limit is logged with its reason; nothing logged names a credential. */
#ifndef SFL_LEARNED_H
#define SFL_LEARNED_H

typedef struct sfl_store sfl_store;
typedef struct sfl_conf sfl_conf;

typedef enum {
    SFL_LEARN_REFUSED, /* a check was refused (its lease still held) */
    SFL_LEARN_OK,      /* a check ended OK (its lease still held) */
} sfl_learn_event;

/* Tells learn.lua what a check of the login (keys at prefix: routes.h) ended
 * with; http_code for a refusal. Send it before the check's release, on the
 * same store, so that the script still counts the check among the holders
 * and the slot freed by the release is handed out under the new limit;
 * http_code 0 for a refusal by redirect to a short clip. Fire
 * and forget: 0 sent, -1 not (Redis away). */
int sfl_learned_check(sfl_store *st, const sfl_conf *conf, const char *login, const char *prefix,
                      sfl_learn_event ev, int http_code);

/* What the login's panel said: max_connections (-1: not said; 0 =
 * unlimited), exp_date ("" for none) and status ("" for none). */
int sfl_learned_panel(sfl_store *st, const char *login, const char *prefix,
                      long long max_connections, const char *exp_date, const char *status);

/* The effective limit (prelude.lua's effective_limit): max_streams capped by
 * the panel's max_connections and by the learned limit, each when > 0;
 * never above max_streams, and an unlimited (0) login takes the smaller cap.
 * A max_streams < 0 (unknown) is returned as it is. */
double sfl_effective_limit(double max_streams, double panel_max, double learned);

/* Forgets what was learned of the login (accounts set). */
int sfl_learned_reset(sfl_store *st, const char *login, const char *prefix);

#endif
