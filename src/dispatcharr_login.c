/* dispatcharr_login.c - which provider login a Dispatcharr profile is (pure).
 *
 * A profile's search_pattern/replace_pattern rewrite a stream's URL to its
 * credentials. Dispatcharr works out a profile's login by applying them to a
 * made-up XC URL, "<server_url>/live/<username>/<password>/1234.ts", and
 * reading the username and password back out of the path (its
 * apps/m3u/credentials.py); this file does the same, so that sfl sees the
 * logins Dispatcharr sees.
 *
 * The patterns are Python regexes, and the regex engine is rewrite.c's: this
 * file stays free of it and applies only the identity and simple patterns -
 * plain characters, '.', and punctuation escaped with a backslash, replaced
 * by plain text (no $1 or backslash) - which is how a profile that swaps
 * "user/pass" for "user2/pass2" is written. Those it applies exactly as
 * re.sub would (every non-overlapping match, left to right); any other
 * pattern gives no login rather than a guess. A '.' facing a byte that is
 * not ASCII gives none too: Python's '.' takes a whole code point.
 *
 * Normalized as Dispatcharr's credential fingerprint is (connection_pool.py:
 * the username trimmed and lower-cased, the password trimmed); the host is
 * lower-cased without user info or port. The result is only ever compared,
 * never shown: it holds credentials.
 */
#include "dispatcharr_login.h"

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

/* A search that is plain characters, '.' (any character but a newline) and
 * a backslash before a character that is neither a letter nor a digit (that
 * character), with a replacement that has no '$' or backslash: it means the
 * same in every regex dialect, and matches a fixed length. pat[k] is the character,
 * any[k] 1 for a '.'. 1 when it is such a pattern, 0 when not. */
static int simple_pattern(const char *search, const char *replace, char *pat, char *any, size_t *n)
{
    if (replace[strcspn(replace, "\\$")] != '\0')
        return 0;
    size_t k = 0;
    for (const char *s = search; *s; s++, k++) {
        any[k] = *s == '.';
        pat[k] = *s;
        if (*s == '\\') {
            if (!s[1] || isalnum((unsigned char)s[1]) || (unsigned char)s[1] >= 0x80)
                return 0;
            pat[k] = *++s;
        } else if (strchr("^$*+?()[]{}|", *s)) {
            return 0;
        }
    }
    *n = k;
    return k > 0;
}

static int matches_at(const char *s, const char *pat, const char *any, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!s[k] || (any[k] ? s[k] == '\n' : s[k] != pat[k]))
            return 0;
    return 1;
}

/* s with every non-overlapping match of the simple pattern search replaced by
 * replace, left to right, as Python's re.sub; NULL when the pattern is not
 * simple, or has a '.' and s has a byte that is not ASCII (Python's '.' takes
 * a whole code point), or out of memory (*oomp set). */
static char *simple_sub(const char *s, const char *search, const char *replace, int *oomp)
{
    size_t sl = strlen(search), len = strlen(s), rl = strlen(replace), n;
    char *pat = malloc(sl + 1), *any = malloc(sl + 1), *out = NULL;
    if (!pat || !any) {
        *oomp = 1;
        goto done;
    }
    if (!simple_pattern(search, replace, pat, any, &n))
        goto done;
    if (memchr(any, 1, n))
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p >= 0x80)
                goto done;
    /* At most len / n matches, each growing s by rl - n at most. */
    size_t cap = len + 1 + (rl > n ? (len / n) * (rl - n) : 0);
    if (!(out = malloc(cap))) {
        *oomp = 1;
        goto done;
    }
    char *o = out;
    while (*s) {
        if (matches_at(s, pat, any, n)) {
            memcpy(o, replace, rl);
            o += rl;
            s += n;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
done:
    free(pat);
    free(any);
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
            rw = simple_sub(url, search, replace ? replace : "", &oomp);
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
