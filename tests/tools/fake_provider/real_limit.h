/* real_limit.h - the fake provider's "real limit" (issue #15): a limit below
 * the one sfl is configured with, enforced with a chosen refusal code, and
 * what its panel says as max_connections; both changed on request
 * (POST /control/<user>?real_limit=N&code=C&panel_max=M). Kept apart from
 * fake_provider.c, which serves and counts. */
#ifndef FP_REAL_LIMIT_H
#define FP_REAL_LIMIT_H

#include <stddef.h>

typedef struct fp_real {
    long limit;     /* 0: none (the account's --user LIMIT alone) */
    int code;       /* HTTP status of a refusal over it: 458 unless set; 302: a redirect to
                       a short clip (fake_provider.c's /clip.ts) */
    long panel_max; /* player_api.php's max_connections; -1: the account's LIMIT */
    long refusals;  /* requests refused over the real limit (not violations) */
} fp_real;

void fp_real_init(fp_real *r);
/* Applies a query string of real_limit=N (0: none), code=C (400-599) and
 * panel_max=M (-1: the account's limit). 0, or -1 with err naming the bad
 * parameter (r unchanged then). code may also be 302. */
int fp_real_apply(fp_real *r, const char *query, char *err, size_t errlen);
/* The code to refuse a new connection with when the account has current
 * open; 0: admit it. */
int fp_real_refuses(const fp_real *r, long current);

#endif
