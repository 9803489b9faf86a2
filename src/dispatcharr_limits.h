/* dispatcharr_limits.h - account limits out of the body of Dispatcharr's
 * GET /api/m3u/accounts/ (pure; see dispatcharr_limits.c). */
#ifndef SFL_DISPATCHARR_LIMITS_H
#define SFL_DISPATCHARR_LIMITS_H

#include <stddef.h>

typedef struct sfl_account_conf sfl_account_conf;

/* Reads the body of GET /api/m3u/accounts/ (len bytes, need not be
 * NUL-terminated) into one {id, name, max_streams} per active account:
 * max_streams is the sum of its active profiles' max_streams, 0 (unlimited)
 * when any active profile has 0, and the account's own max_streams when it
 * has no profiles array or no active profile. Inactive accounts are left out.
 * A name's control characters and invalid UTF-8 come out escaped
 * (sfl_text_escape: ESC as \x1b), never raw.
 * On success *out is a malloc'd array of *n entries (NULL when *n is 0) that
 * the caller frees with sfl_dispatcharr_accounts_free(). On failure -1,
 * *out = NULL, *n = 0 and err names the JSON path and what is wrong
 * ("[2].profiles[0].max_streams: expected an integer >= 0, got \"2\""). */
int sfl_dispatcharr_limits_from_json(const char *json, size_t len, sfl_account_conf **out,
                                     size_t *n, char *err, size_t errlen);
/* Frees the names and the array. NULL is a no-op. */
void sfl_dispatcharr_accounts_free(sfl_account_conf *accs, size_t n);

#endif
