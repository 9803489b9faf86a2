/* dispatcharr_sync.h - account limits from Dispatcharr written to Redis:
 * one fetch, then one write of every limit. Used by `sflimit accounts sync`
 * and by the node's periodic sync. */
#ifndef SFL_DISPATCHARR_SYNC_H
#define SFL_DISPATCHARR_SYNC_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct sfl_conf sfl_conf;
typedef struct sfl_store sfl_store;
typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_dispatcharr_sync sfl_dispatcharr_sync;

/* A Dispatcharr client (sfl_dispatcharr_new: conf is copied from, base must
 * outlive the sync). NULL with err set as sfl_dispatcharr_new sets it, or
 * "out of memory". */
sfl_dispatcharr_sync *sfl_dispatcharr_sync_new(struct event_base *base, const sfl_conf *conf,
                                               char *err, size_t errlen);
/* Frees the client. A run still fetching is dropped (its callback is not
 * called); a run already past the fetch goes on with Redis alone and calls
 * back as usual (with an error when the store is freed first). NULL is a
 * no-op. May be called from inside a run's callback. */
void sfl_dispatcharr_sync_free(sfl_dispatcharr_sync *s);

/* accs: the accounts Dispatcharr has; was[i]: the limit Redis had for
 * accs[i] before (-1: none); both valid only during the call. On failure
 * accs and was are NULL, n 0, and err says what went wrong ("dispatcharr:
 * ..." when the fetch failed, in which case nothing was written). n 0 and
 * no err: Dispatcharr has no active account, nothing was written. */
typedef void sfl_dispatcharr_sync_fn(const sfl_account_conf *accs, const long long *was, size_t n,
                                     const char *err, void *arg);

/* Fetch, then write: reads each account's current limit (HGET <ns>:{a:ID}:conf
 * max_streams), then writes all of them with sfl_accounts_write (recovery_ms
 * as there). fn is called exactly once, from the loop (never from inside
 * this call), unless the sync is freed during the fetch. store must outlive
 * the run. -1 with errstr set when a fetch is already in flight or memory
 * ran out (fn not called). */
int sfl_dispatcharr_sync_run(sfl_dispatcharr_sync *s, sfl_store *st, int64_t recovery_ms,
                             sfl_dispatcharr_sync_fn *fn, void *arg);
/* The last reason sfl_dispatcharr_sync_run returned -1. Valid while s lives. */
const char *sfl_dispatcharr_sync_errstr(const sfl_dispatcharr_sync *s);

#endif
