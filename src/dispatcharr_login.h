/* dispatcharr_login.h - which provider login a Dispatcharr profile is: the
 * server host, username and password its rewrite leads to (pure; see
 * dispatcharr_login.c). dispatcharr_limits.c finds the profiles that share
 * one login with it. */
#ifndef SFL_DISPATCHARR_LOGIN_H
#define SFL_DISPATCHARR_LOGIN_H

/* Each field NULL when it cannot be known (or is empty). */
typedef struct sfl_dispatcharr_login {
    char *host; /* server host: lower case, no user info, no port */
    char *user; /* username: trimmed, lower case (as Dispatcharr's fingerprint) */
    char *pass; /* password: trimmed */
} sfl_dispatcharr_login;

/* 1 when search/replace is the identity rewrite (the URL as given): no search
 * (NULL or ""), or "^(.*)$" -> "$1" (Dispatcharr's default profile). */
int sfl_dispatcharr_is_identity(const char *search, const char *replace);

/* The login of a profile with rewrite search -> replace (identity: see
 * above; replace NULL counts as "") of an account with server_url, username
 * and password (each may be NULL); xc: the account is an XC account.
 *  - identity: the account's own host (of server_url), username, password;
 *  - else, for an XC account with username and password: the rewrite applied,
 *    as Python's re.sub, to "<server_url>/live/<username>/<password>/1234.ts",
 *    read back as Dispatcharr reads it (apps/m3u/credentials.py) - when the
 *    search is simple enough to be applied here (dispatcharr_login.c);
 *  - else nothing is known.
 * *out is filled with malloc'd strings (the caller clears it with
 * sfl_dispatcharr_login_clear). 0, or -1 when out of memory (*out cleared). */
int sfl_dispatcharr_login_of(const char *server_url, const char *username, const char *password,
                             int xc, const char *search, const char *replace,
                             sfl_dispatcharr_login *out);
/* Frees the fields and sets them NULL. NULL is a no-op. */
void sfl_dispatcharr_login_clear(sfl_dispatcharr_login *l);

#endif
