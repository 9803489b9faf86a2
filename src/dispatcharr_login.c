/* dispatcharr_login.c - which provider login a Dispatcharr profile is (pure).
 *
 * A profile's search_pattern/replace_pattern rewrite a stream's URL to its
 * credentials. Dispatcharr works out a profile's login by applying them to a
 * made-up XC URL, "<server_url>/live/<username>/<password>/1234.ts", and
 * reading the username and password back out of the path (its
 * apps/m3u/credentials.py); this file does the same, so that sfl sees the
 * logins Dispatcharr sees.
 *
 * The patterns are Python regexes, run with rewrite.c (as Python's re.sub
 * would, every non-overlapping match, left to right); a pattern it refuses
 * gives no login rather than a guess, and so does a made-up URL with bytes
 * past ASCII when the search has '.', a class or a bracket (rewrite.c
 * matches bytes, Python code points).
 *
 * Normalized as Dispatcharr's credential fingerprint is (connection_pool.py:
 * the username trimmed and lower-cased, the password trimmed); the host is
 * lower-cased without user info or port. The result is only ever compared,
 * never shown: it holds credentials.
 */
#include "dispatcharr_login.h"

#include "rewrite.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/*--- Pieces ------------------------------------------------------------------*/

/* A copy of s[0..n) without surrounding ASCII white space, lower-cased when
 * lower; NULL when nothing is left (or out of memory: *oomp set). */
static char *norm(const char *s, size_t n, int lower, int *oomp)
{
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return NULL;
    char *c = malloc(n + 1);
    if (!c) {
        *oomp = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        c[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
    c[n] = '\0';
    return c;
}

/* The host of a URL's authority (after "scheme://" if there is one), lower
 * case, without user info or port; NULL when there is none. */
static char *host_of(const char *url, int *oomp)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    for (size_t i = n; i > 0; i--)
        if (p[i - 1] == '@') {
            p += i;
            n -= i;
            break;
        }
    size_t h;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        h = close ? (size_t)(close - p) + 1 : n;
    } else {
        const char *colon = memchr(p, ':', n);
        h = colon ? (size_t)(colon - p) : n;
    }
    return norm(p, h, 1, oomp);
}

/* s rewritten by the profile's search/replace (rewrite.h: as Python's
 * re.sub); NULL when the pattern is one sfl cannot run (the profile is then
 * its own login) or out of memory (*oomp set). */
static char *profile_sub(const char *s, const char *search, const char *replace, int *oomp)
{
    /* rewrite.c matches bytes; Python's '.', classes and brackets take a
     * whole code point. Past ASCII only a literal search means the same. */
    if (strpbrk(search, ".[\\")) {
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p >= 0x80)
                return NULL;
    }
    char err[160];
    sfl_rewrite *rw = sfl_rewrite_new(search, replace, err, sizeof(err));
    if (!rw)
        return NULL;
    char *out = sfl_rewrite_apply(rw, s);
    sfl_rewrite_free(rw);
    if (!out)
        *oomp = 1;
    return out;
}

/* Dispatcharr's reading of a rewritten ".../live/USER/PASS/1234.ts": the path
 * (before any ? or #) has at least four parts, the last is "1234.ts", USER
 * and PASS are the two before it. Leaves l empty when the URL is not of that
 * shape. */
static void xc_login_of(const char *url, sfl_dispatcharr_login *l, int *oomp)
{
    const char *p = strstr(url, "://");
    if (!p)
        return;
    p += 3;
    const char *path = p + strcspn(p, "/?#"), *end = path + strcspn(path, "?#");
    const char *part[3] = {NULL, NULL, NULL};
    size_t plen[3] = {0, 0, 0}, nparts = 0;
    for (const char *s = path; s < end;) {
        while (s < end && *s == '/')
            s++;
        if (s == end)
            break;
        const char *e = s;
        while (e < end && *e != '/')
            e++;
        part[0] = part[1], plen[0] = plen[1];
        part[1] = part[2], plen[1] = plen[2];
        part[2] = s, plen[2] = (size_t)(e - s);
        nparts++;
        s = e;
    }
    if (nparts < 4 || plen[2] != 7 || memcmp(part[2], "1234.ts", 7) != 0)
        return;
    l->host = host_of(url, oomp);
    l->user = norm(part[0], plen[0], 1, oomp);
    l->pass = norm(part[1], plen[1], 0, oomp);
}

/*--- The login -----------------------------------------------------------------*/

int sfl_dispatcharr_is_identity(const char *search, const char *replace)
{
    return !search || !*search || (!strcmp(search, "^(.*)$") && replace && !strcmp(replace, "$1"));
}

int sfl_dispatcharr_login_of(const char *server_url, const char *username, const char *password,
                             int xc, const char *search, const char *replace,
                             sfl_dispatcharr_login *out)
{
    int oomp = 0;
    *out = (sfl_dispatcharr_login){NULL, NULL, NULL};
    if (sfl_dispatcharr_is_identity(search, replace)) {
        if (server_url)
            out->host = host_of(server_url, &oomp);
        if (username)
            out->user = norm(username, strlen(username), 1, &oomp);
        if (password)
            out->pass = norm(password, strlen(password), 0, &oomp);
    } else if (xc && server_url && username && *username && password && *password) {
        size_t sl = strlen(server_url), ul = strlen(username), pl = strlen(password);
        while (sl > 0 && server_url[sl - 1] == '/')
            sl--;
        char *url = malloc(sl + ul + pl + sizeof("/live///1234.ts")), *rw = NULL;
        if (url) {
            char *o = url;
            memcpy(o, server_url, sl);
            o += sl;
            memcpy(o, "/live/", 6);
            o += 6;
            memcpy(o, username, ul);
            o += ul;
            *o++ = '/';
            memcpy(o, password, pl);
            o += pl;
            memcpy(o, "/1234.ts", sizeof("/1234.ts"));
            rw = profile_sub(url, search, replace ? replace : "", &oomp);
            free(url);
        } else {
            oomp = 1;
        }
        if (rw)
            xc_login_of(rw, out, &oomp);
        free(rw);
    }
    if (oomp) {
        sfl_dispatcharr_login_clear(out);
        return -1;
    }
    return 0;
}

void sfl_dispatcharr_login_clear(sfl_dispatcharr_login *l)
{
    if (!l)
        return;
    free(l->host);
    free(l->user);
    free(l->pass);
    *l = (sfl_dispatcharr_login){NULL, NULL, NULL};
}
