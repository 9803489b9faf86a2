/* viewers.h - Dispatcharr's viewers as others' connections on their logins
 * (DESIGN §10, issue "viewers first").
 *
 * Dispatcharr's proxy holds one provider connection per playing channel (and
 * per VOD or catch-up session), on a profile, and a profile is a login. One
 * node of the cluster polls GET /proxy/ts/status and GET /proxy/stats/ every
 * dispatcharr.poll_ms and writes each governed login's count into Redis
 * (lua/others.lua), where acquire.lua counts it beside the leases. The role
 * is held by lua/role.lua under sfl:role:dispatcharr for a TTL of
 * 3/4 (max_age_ms - 2 poll_ms), renewed (and asked for by the others) every
 * third of it: when its node dies another takes it and polls before the
 * figures grow max_age_ms old. A login the sync marked governed (max_age_ms) whose figure grows
 * older than dispatcharr.max_age_ms grants nothing: while Dispatcharr
 * cannot be read, no new check starts on its logins. */
#ifndef SFL_VIEWERS_H
#define SFL_VIEWERS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct sfl_conf sfl_conf;
typedef struct sfl_store sfl_store;
typedef struct sfl_routes sfl_routes;
typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_viewers sfl_viewers;
struct sfl_others_seen;

/* NULL with err when the Dispatcharr client cannot be made. conf's
 * dispatcharr.* and lease.ttl_ms are copied; base, store and the node id
 * must outlive it. */
sfl_viewers *sfl_viewers_new(struct event_base *base, sfl_store *store, const sfl_conf *conf,
                             const char *node_id, char *err, size_t errlen);
/* Gives the role up (if held) and frees. NULL is a no-op. */
void sfl_viewers_free(sfl_viewers *v);
/* The logins to count: every login of the synced accounts with its
 * profiles, its keys as routes names them (set with these accounts). */
void sfl_viewers_set_logins(sfl_viewers *v, sfl_routes *routes, const sfl_account_conf *accs,
                            size_t n);
/* Forward the store's connect: the role is asked for at once. */
void sfl_viewers_on_ready(sfl_viewers *v);
/* Who is told of each figure written (copied; fn NULL: nobody). */
void sfl_viewers_on_seen(sfl_viewers *v, const struct sfl_others_seen *seen);
/* 1 while this node holds the role (and polls). */
int sfl_viewers_polling(const sfl_viewers *v);

/* What one poll counted for one profile, from the two answers' bodies:
 * the channels of /proxy/ts/status whose state holds a provider connection
 * (every state but "error" and "stopped": initializing and connecting hold
 * Dispatcharr's own reservation, stopping has not closed yet, and a state
 * not known here counts rather than be missed), one each whatever their
 * client_count; and the "vod" and "catchup" sessions of /proxy/stats/ (its
 * "live" entries are the same channels). Pure: returns the count of
 * profile, or -1 when a body is not the expected JSON. */
long long sfl_viewers_count(const char *ts_status, size_t ts_len, const char *stats,
                            size_t stats_len, long long profile);

#endif
