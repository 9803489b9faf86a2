/* dispatcharr.h - account limits from Dispatcharr's REST API: an async
 * client on the libevent loop. The limits it reads out of the answer are
 * dispatcharr_limits.h's (pure, included here); writing them to Redis is
 * dispatcharr_sync.h's. */
#ifndef SFL_DISPATCHARR_H
#define SFL_DISPATCHARR_H

#include <stddef.h>
#include <stdint.h>

#include "dispatcharr_limits.h"

struct event_base;
typedef struct sfl_conf sfl_conf;
typedef struct sfl_account_conf sfl_account_conf;
typedef struct sfl_dispatcharr sfl_dispatcharr;

#define SFL_DISPATCHARR_TIMEOUT_MS 10000 /* per HTTP request */

/*--- The client --------------------------------------------------------------*/

/* Copies what it needs from conf (url, username, password, api_key): conf
 * may be freed afterwards. base must outlive the client. NULL with err set
 * when dispatcharr.url is unset or not http(s)://, when dispatcharr.ca_file
 * cannot be loaded, or when no credentials are configured. */
sfl_dispatcharr *sfl_dispatcharr_new(struct event_base *base, const sfl_conf *conf, char *err,
                                     size_t errlen);
/* Drops a fetch in flight (its callback is not called), closes the
 * connection and wipes the cached credentials. NULL is a no-op. May be
 * called from inside a fetch callback. */
void sfl_dispatcharr_free(sfl_dispatcharr *dc);
/* Per-request timeout (connect, send, whole answer); default
 * SFL_DISPATCHARR_TIMEOUT_MS. */
void sfl_dispatcharr_set_timeout_ms(sfl_dispatcharr *dc, int64_t ms);

/* accs: n accounts (sfl_dispatcharr_limits_from_json), owned by the client
 * and valid only during the call: copy what you keep. On failure accs is
 * NULL, n 0 and err says what went wrong; it never carries a credential. */
typedef void sfl_dispatcharr_fetch_fn(const sfl_account_conf *accs, size_t n, const char *err,
                                      void *arg);

/* Authenticates (X-API-Key when an API key is configured; else the cached
 * access token, logging in once when there is none; a 401 is answered by
 * one refresh and one retry, and only a failed refresh logs in again: the
 * login route is throttled to 3 a minute) and fetches the accounts. A
 * connection the server closed, or said it would close, is never reused; a
 * GET or a refresh whose connection closes before any answer is sent once
 * more on a new connection, a login never (dispatcharr.c). fn is
 * called exactly once, from the loop (never from inside this call), unless
 * the client is freed first. The token stays cached for the next fetch, so
 * calling this every sync interval costs one request. -1 with errstr set
 * when a fetch is already in flight or memory ran out (fn not called). */
int sfl_dispatcharr_fetch(sfl_dispatcharr *dc, sfl_dispatcharr_fetch_fn *fn, void *arg);
/* Frees what arg holds, when the client is freed with the fetch in flight. */
typedef void sfl_dispatcharr_drop_fn(void *arg);
/* sfl_dispatcharr_fetch for an arg that lives as long as the fetch: fn is
 * called as there, or drop(arg) instead when the client is freed first. */
int sfl_dispatcharr_fetch_owned(sfl_dispatcharr *dc, sfl_dispatcharr_fetch_fn *fn,
                                sfl_dispatcharr_drop_fn *drop, void *arg);
/* Any GET of Dispatcharr's API (route: "/proxy/ts/status", ...), with the
 * same authentication, retries and manners as the accounts fetch (which is
 * one of these): fn gets the body of a 2xx answer (valid during the call;
 * len bytes, not NUL-terminated), or NULL and err. One request in flight per
 * client: -1 with errstr set otherwise. */
typedef void sfl_dispatcharr_body_fn(const char *body, size_t len, const char *err, void *arg);
int sfl_dispatcharr_get(sfl_dispatcharr *dc, const char *route, sfl_dispatcharr_body_fn *fn,
                        sfl_dispatcharr_drop_fn *drop, void *arg);
/* The last reason sfl_dispatcharr_fetch returned -1. Valid while dc lives. */
const char *sfl_dispatcharr_errstr(const sfl_dispatcharr *dc);

#endif
