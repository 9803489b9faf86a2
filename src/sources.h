/* sources.h - where a node learns the connections others hold on its
 * logins: Dispatcharr's viewers (viewers.h) and Xtream Codes panels
 * (xtream.h), each polled by one node of the cluster. The node daemon owns
 * one of these. */
#ifndef SFL_SOURCES_H
#define SFL_SOURCES_H

#include <stddef.h>

struct event_base;
typedef struct sfl_conf sfl_conf;
typedef struct sfl_store sfl_store;
typedef struct sfl_routes sfl_routes;
typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_sources sfl_sources;

/* The sources conf asks for: Dispatcharr's viewers with dispatcharr.viewers,
 * a panel per config login with an xtream source. routes: the node's (set
 * with conf's accounts). NULL with err when one cannot be made; NULL with
 * err "" when there is none. */
sfl_sources *sfl_sources_new(struct event_base *base, sfl_store *store, sfl_routes *routes,
                             const sfl_conf *conf, char *err, size_t errlen);
/* Gives the roles up and frees. NULL is a no-op. */
void sfl_sources_free(sfl_sources *s);
void sfl_sources_on_ready(sfl_sources *s);
/* 1 when the Dispatcharr sync should run now (the viewers need logins). */
int sfl_sources_want_sync(const sfl_sources *s);
/* A sync's accounts (routes set with them): the logins the viewers count. */
void sfl_sources_synced(sfl_sources *s, sfl_routes *routes, const sfl_account_conf *accs, size_t n);
/* fn is told of every figure of others' connections written for a login
 * (what admission counts), by whichever source; fn NULL: nobody. */
void sfl_sources_on_seen(sfl_sources *s,
                         void (*fn)(const char *login, long long external, void *arg), void *arg);
/* The config's accounts changed (SIGHUP): the panels follow. */
void sfl_sources_configured(sfl_sources *s, sfl_routes *routes, const sfl_account_conf *accs,
                            size_t n);

#endif
