/* dispatcharr_limits.h - accounts and their provider logins out of the body
 * of Dispatcharr's GET /api/m3u/accounts/ (pure; see dispatcharr_limits.c). */
#ifndef SFL_DISPATCHARR_LIMITS_H
#define SFL_DISPATCHARR_LIMITS_H

#include <stddef.h>

typedef struct sfl_account_conf sfl_account_conf;

/* One profile that shares a login with others but says another max_streams
 * than the login got: the caller warns about it. */
typedef struct sfl_dispatcharr_conflict {
    char login[24];        /* the shared login's id, "d17" */
    long long account_id;  /* the account of the profile that disagrees */
    long long profile_id;  /* that profile; -1: the account's own max_streams (no active
                              profile) */
    long long max_streams; /* what it says (0 = unlimited) */
    long long used;        /* what the login got: the smallest its profiles say, where 0
                              (unlimited) is the largest */
    char why[112];         /* non-empty: the profile was left out, its search/replace being
                              one sfl cannot run (rewrite.h's reason: a construct and its
                              offset, never the pattern); login is then empty */
} sfl_dispatcharr_conflict;

/* Reads the body of GET /api/m3u/accounts/ (len bytes, need not be
 * NUL-terminated) into one sfl_account_conf per active account (inactive ones
 * are left out), in the answer's order, each with its logins (nlogins >= 1):
 *  - one login per active profile, in route order: the default profile
 *    (is_default) first, then the other active profiles by ascending profile
 *    id; inactive profiles are left out. An account with no profiles array or
 *    no active profile has one login of its own max_streams, the URL as given.
 *  - a login's max_streams is its profile's (0 = unlimited); search/replace
 *    are the profile's search_pattern/replace_pattern, NULL/NULL for the
 *    identity rewrite ("^(.*)$" -> "$1", or no search pattern).
 *  - a login's id is "d<profile id>" ("a<account id>" for an account's own),
 *    never a credential. Profiles that are one provider login share one id,
 *    that of their smallest profile id: profiles of accounts in the same
 *    server_group with the same credentials (Dispatcharr's own rule), and
 *    XC profiles with the same server host and username; both after the
 *    profile's rewrite where it can be worked out (dispatcharr_limits.c says
 *    when it cannot). Such a login's max_streams is the smallest its profiles
 *    say; each profile that says otherwise is listed in *conflicts. Two
 *    profiles of one account that are one login are one route (the first).
 *  - the account's max_streams is the sum of its logins' max_streams, 0
 *    (unlimited) when one of them is 0.
 * A name's control characters and invalid UTF-8 come out escaped
 * (sfl_text_escape: ESC as \x1b), never raw.
 * On success *out is a malloc'd array of *n entries (NULL when *n is 0) that
 * the caller frees with sfl_dispatcharr_accounts_free(), and, when conflicts
 * is not NULL, *conflicts a malloc'd array of *nconflicts entries (NULL when
 * none) that the caller free()s. On failure -1, *out = NULL, *n = 0, no
 * conflicts, and err names the JSON path and what is wrong
 * ("[2] (account 7).profiles[0].max_streams: expected an integer >= 0, got
 * \"2\""); a message never quotes a credential or a pattern. */
int sfl_dispatcharr_limits_from_json(const char *json, size_t len, sfl_account_conf **out,
                                     size_t *n, sfl_dispatcharr_conflict **conflicts,
                                     size_t *nconflicts, char *err, size_t errlen);
/* Frees the names, the logins and the array. NULL is a no-op. */
void sfl_dispatcharr_accounts_free(sfl_account_conf *accs, size_t n);

#endif
