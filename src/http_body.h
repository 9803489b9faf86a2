/* http_body.h - what the HTTP API's routes make of request bodies. */
#ifndef SFL_HTTP_BODY_H
#define SFL_HTTP_BODY_H

#include <stddef.h>

typedef struct sfl_streams sfl_streams;

/*--- Request bodies ----------------------------------------------------------*/

/* What the routes make of a request body, as pure functions (no I/O, no
 * global state; the body, len bytes not necessarily NUL-terminated, is only
 * read during the call). Each returns 0, or -1 with the message of the 400
 * reply in err (naming "body" or the field). A JSON object body must be one
 * object and nothing after it, with no unknown and no repeated members. */

/* POST /v1/leases: {"account": N, "wait_ms": N, "label": "..."}. */
typedef struct sfl_http_lease_ask {
    long long account; /* 0 .. 999999999999999, required */
    long long wait_ms; /* 0 .. 3600000, default 30000 */
    char label[101];   /* default "sidecar" */
} sfl_http_lease_ask;
int sfl_http_parse_lease_body(const char *body, size_t len, sfl_http_lease_ask *out, char *err,
                              size_t errlen);

/* An id in a path or query: n bytes of digits only, at most 15 (every id
 * then survives a JSON number exactly). 0, or -1 (out untouched). */
int sfl_http_parse_id(const char *s, size_t n, long long *out);

/* PUT /v1/accounts/{id}: {"max_streams": N, "name": "..." or null} for an
 * account of one login, or {"logins": [...], "name": ...} (the config's
 * logins: sfl_account_logins_parse; max_streams may then be left out, and
 * must be their sum if given); a name with a control character or invalid
 * UTF-8 is refused (sfl_text_check). */
typedef struct sfl_http_account_put {
    long long max_streams; /* 0 (unlimited) .. 1000000; with logins their sum */
    int has_name;          /* name given as a string */
    char name[201];
    struct sfl_login_conf *logins; /* owned: sfl_http_account_put_clear */
    size_t nlogins;
} sfl_http_account_put;
int sfl_http_parse_account_body(const char *body, size_t len, sfl_http_account_put *out, char *err,
                                size_t errlen);
/* Frees the logins (also after a failed parse). */
void sfl_http_account_put_clear(sfl_http_account_put *p);

/* POST /v1/checks: a streams document (sfl_streams_parse, named "body") with
 * at least one stream, each URL's scheme one of the n in schemes
 * (check.schemes; sfl_streams_allowed). The caller frees the batch; NULL
 * with err. */
sfl_streams *sfl_http_parse_checks_body(const char *body, size_t len, char *const *schemes,
                                        size_t n, char *err, size_t errlen);

#endif
