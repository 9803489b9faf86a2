/* dashboard_data.h - what the dashboard shows besides the accounts, read
 * from Redis for GET /v1/nodes and GET /v1/results: the nodes alive (their
 * registry keys) and the newest results of the newest batches; and the
 * names of the streams the accounts' holders check (GET /v1/accounts). */
#ifndef SFL_DASHBOARD_DATA_H
#define SFL_DASHBOARD_DATA_H

typedef struct cJSON cJSON;
typedef struct sfl_store sfl_store;

#define SFL_RECENT_RESULTS_MAX 100

/* Called exactly once, from the loop: doc (valid during the call only) or
 * NULL with the reason (Redis did not answer, out of memory). */
typedef void sfl_dashboard_data_fn(cJSON *doc, const char *error, void *arg);

/* {"nodes": [{"id", "state", "started_at", "running", "held", "leases",
 * "global_limit", "pid"}]}, sorted by id. -1 (fn not called) when Redis is
 * not reachable. */
int sfl_dashboard_nodes(sfl_store *st, sfl_dashboard_data_fn *fn, void *arg);

/* {"results": [...]}: up to limit (1..SFL_RECENT_RESULTS_MAX) results, each
 * with its "batch", newest batch first and newest result first, without
 * stream_url (it may carry credentials). -1 as above. */
int sfl_dashboard_results(sfl_store *st, int limit, sfl_dashboard_data_fn *fn, void *arg);

/* Called once, from the loop, when the names are in (or could not be read:
 * the holders stay as they were). */
typedef void sfl_dashboard_names_fn(void *arg);

/* Adds "stream_name" beside each holder in accounts (GET /v1/accounts'
 * list: the accounts' and their logins' holders) whose "stream" is a stream
 * id named in <ns>:stream:names (queue.h), with one HMGET for all of them.
 * accounts must stay alive and unchanged until fn. 0 when asked (fn will be
 * called), 1 when there is nothing to ask, -1 when Redis is not reachable
 * (fn not called in either case). */
int sfl_dashboard_stream_names(sfl_store *st, cJSON *accounts, sfl_dashboard_names_fn *fn,
                               void *arg);

#endif
