/* addr.c - parses the Redis URL and the HTTP listen address.
 *
 * Shape: both forms come down to one host[:port] splitter (brackets for
 * IPv6, a port range per caller); the Redis URL adds a scheme, %XX-escaped
 * user info and a db, in the path for redis:// and as ?db=N for unix://.
 * A redis-sentinel:// URL has a comma-separated list of sentinel addresses
 * where redis:// has one host, and the master's name before the db.
 * Every refusal says what was expected ("bad port \"x\" (expected
 * 1..65535)"), so conf.c can put it after the config path as it is.
 *
 * Never: repeat a password in a message (a URL's password, or a unix://
 * parameter's value, which might be one), resolve a host name, touch the
 * network, or accept a form that is "probably" meant (an unbracketed IPv6
 * address, a query on redis://). */
#include "addr.h"

#include "json.h" /* sfl_json_quote, so a listen value is shown as a config value is */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the message into err (when there is one); returns -1. */
static int why(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void sfl_redis_url_clear(sfl_redis_url *u)
{
    if (!u)
        return;
    free(u->host);
    free(u->unix_path);
    free(u->user);
    free(u->password);
    for (int i = 0; u->sentinels && i < u->nsentinels; i++)
        free(u->sentinels[i].host);
    free(u->sentinels);
    free(u->master);
    memset(u, 0, sizeof(*u));
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* %XX-decodes s[0..n) into a new string; NULL for an empty result.
 * -1 on a bad escape or no memory. */
static int decode(const char *s, size_t n, char **out, const char *what, char *err, size_t errlen)
{
    *out = NULL;
    if (n == 0)
        return 0;
    char *d = malloc(n + 1);
    if (!d)
        return why(err, errlen, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        if (i + 2 < n) {
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                d[o++] = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        free(d);
        return why(err, errlen, "bad %%-escape in the %s", what);
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

static int parse_port(const char *s, size_t n, int min, int *port, char *err, size_t errlen)
{
    long v = 0;
    int ok = n > 0 && n <= 5;
    for (size_t i = 0; ok && i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (!ok || v < min || v > 65535) {
        char p[16];
        snprintf(p, sizeof(p), "%.*s", n > 8 ? 8 : (int)n, s);
        return why(err, errlen, "bad port \"%s%s\" (expected %d..65535)", p, n > 8 ? "..." : "",
                   min);
    }
    *port = (int)v;
    return 0;
}

/* Splits s[0..n) into host and port. "[v6]:port" keeps the address without
 * brackets. Without a port, *port = default_port, or an error when
 * default_port < 0. */
static int split_host_port(const char *s, size_t n, int default_port, int min_port, char **host,
                           int *port, char *err, size_t errlen)
{
    const char *h = s, *p = NULL;
    size_t hn;
    *host = NULL;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return why(err, errlen, "missing ']' after an IPv6 address");
        h = s + 1;
        hn = (size_t)(close - h);
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest > 0 && close[1] != ':')
            return why(err, errlen, "unexpected text after ']'");
        if (rest > 0)
            p = close + 2;
    } else {
        const char *colon = NULL;
        int ncolons = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') {
                ncolons++;
                colon = s + i;
            }
        if (ncolons > 1)
            return why(err, errlen, "an IPv6 address must be written in brackets ([::1]:PORT)");
        hn = colon ? (size_t)(colon - s) : n;
        if (colon)
            p = colon + 1;
    }
    if (hn == 0)
        return why(err, errlen, "missing host");
    for (size_t i = 0; i < hn; i++)
        if ((unsigned char)h[i] <= 0x20 || h[i] == 0x7f || strchr("/@?#[]", h[i]))
            return why(err, errlen, "bad character in the host");
    if (p) {
        if (parse_port(p, n - (size_t)(p - s), min_port, port, err, errlen) < 0)
            return -1;
    } else if (default_port < 0) {
        return why(err, errlen, "missing port");
    } else {
        *port = default_port;
    }
    if (!(*host = strndup(h, hn)))
        return why(err, errlen, "out of memory");
    return 0;
}

static int parse_db(const char *s, size_t n, int *db, char *err, size_t errlen)
{
    long v = 0;
    int ok = n > 0 && n <= 9;
    for (size_t i = 0; ok && i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (!ok) {
        char d[16];
        snprintf(d, sizeof(d), "%.*s", n > 8 ? 8 : (int)n, s);
        return why(err, errlen, "db must be a number, got \"%s%s\"", d, n > 8 ? "..." : "");
    }
    *db = (int)v;
    return 0;
}

/* The user info before the last '@' (so an unescaped '@' or '/' in a
 * password still works); *hostpart gets what follows it. */
static int parse_userinfo(const char *rest, sfl_redis_url *u, const char **hostpart, char *err,
                          size_t errlen)
{
    const char *at = strrchr(rest, '@');
    *hostpart = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon)
            return why(err, errlen,
                       "expected [USER]:PASSWORD@ before the host "
                       "(a password alone is written redis://:PASSWORD@HOST)");
        if (decode(rest, (size_t)(colon - rest), &u->user, "user name", err, errlen) < 0 ||
            decode(colon + 1, (size_t)(at - colon - 1), &u->password, "password", err, errlen) < 0)
            return -1;
        *hostpart = at + 1;
    }
    return 0;
}

static int parse_tcp_url(const char *rest, sfl_redis_url *u, char *err, size_t errlen)
{
    const char *hostpart;
    if (parse_userinfo(rest, u, &hostpart, err, errlen) < 0)
        return -1;
    if (strpbrk(hostpart, "?#"))
        return why(err, errlen,
                   "redis:// URLs take no query or fragment (put the db in the "
                   "path: redis://HOST:PORT/DB)");
    const char *slash = strchr(hostpart, '/');
    size_t an = slash ? (size_t)(slash - hostpart) : strlen(hostpart);
    if (split_host_port(hostpart, an, 6379, 1, &u->host, &u->port, err, errlen) < 0)
        return -1;
    if (slash && slash[1] && parse_db(slash + 1, strlen(slash + 1), &u->db, err, errlen) < 0)
        return -1;
    return 0;
}

#define SENTINEL_FORM "redis-sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]"

static int parse_sentinel_url(const char *rest, sfl_redis_url *u, char *err, size_t errlen)
{
    const char *hostpart;
    if (parse_userinfo(rest, u, &hostpart, err, errlen) < 0)
        return -1;
    if (strpbrk(hostpart, "?#"))
        return why(err, errlen, "redis-sentinel:// URLs take no query or fragment (expected %s)",
                   SENTINEL_FORM);
    const char *slash = strchr(hostpart, '/');
    if (!slash)
        return why(err, errlen, "missing the master's name (expected %s)", SENTINEL_FORM);
    int n = 1;
    for (const char *p = hostpart; p < slash; p++)
        n += *p == ',';
    if (n > SFL_SENTINELS_MAX)
        return why(err, errlen, "%d sentinels (at most %d)", n, SFL_SENTINELS_MAX);
    if (!(u->sentinels = calloc((size_t)n, sizeof(*u->sentinels))))
        return why(err, errlen, "out of memory");
    for (const char *p = hostpart; p <= slash; u->nsentinels++) {
        const char *end = memchr(p, ',', (size_t)(slash - p));
        if (!end)
            end = slash;
        char sub[160];
        if (split_host_port(p, (size_t)(end - p), 26379, 1, &u->sentinels[u->nsentinels].host,
                            &u->sentinels[u->nsentinels].port, sub, sizeof(sub)) < 0)
            return why(err, errlen, "sentinel %d: %s", u->nsentinels + 1, sub);
        p = end + 1;
    }
    const char *name = slash + 1;
    const char *dbs = strchr(name, '/');
    size_t nn = dbs ? (size_t)(dbs - name) : strlen(name);
    if (nn == 0)
        return why(err, errlen, "missing the master's name (expected %s)", SENTINEL_FORM);
    if (nn > 128)
        return why(err, errlen, "master name longer than 128 bytes");
    for (size_t i = 0; i < nn; i++)
        if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f)
            return why(err, errlen, "bad character in the master name (no spaces or controls)");
    if (!(u->master = strndup(name, nn)))
        return why(err, errlen, "out of memory");
    if (dbs && dbs[1] && parse_db(dbs + 1, strlen(dbs + 1), &u->db, err, errlen) < 0)
        return -1;
    return 0;
}

static int parse_unix_url(const char *rest, sfl_redis_url *u, char *err, size_t errlen)
{
    if (rest[0] != '/')
        return why(err, errlen, "expected unix:///ABSOLUTE/PATH[?db=N]");
    const char *q = strchr(rest, '?');
    size_t pn = q ? (size_t)(q - rest) : strlen(rest);
    if (pn >= 108) /* sizeof(sun_path) */
        return why(err, errlen, "socket path longer than 107 bytes");
    if (!(u->unix_path = strndup(rest, pn)))
        return why(err, errlen, "out of memory");
    while (q) {
        const char *param = q + 1;
        q = strchr(param, '&');
        size_t n = q ? (size_t)(q - param) : strlen(param);
        if (n > 3 && memcmp(param, "db=", 3) == 0) {
            if (parse_db(param + 3, n - 3, &u->db, err, errlen) < 0)
                return -1;
        } else if (n == 3 && memcmp(param, "db=", 3) == 0) {
            return why(err, errlen, "db must be a number, got \"\"");
        } else {
            /* Name only: the value could be a password. */
            const char *eq = memchr(param, '=', n);
            size_t kn = eq ? (size_t)(eq - param) : n;
            return why(err, errlen, "unknown parameter \"%.*s\" (only db=N)",
                       kn > 20 ? 20 : (int)kn, param);
        }
    }
    return 0;
}

int sfl_redis_url_parse(const char *url, sfl_redis_url *out, char *err, size_t errlen)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (!url || !*url)
        return why(err, errlen, "empty Redis URL");
    if (strcmp(url, "embedded") == 0) {
        out->embedded = 1;
        return 0;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        rc = parse_tcp_url(url + 8, out, err, errlen);
    } else if (strncmp(url, "unix://", 7) == 0) {
        rc = parse_unix_url(url + 7, out, err, errlen);
    } else if (strncmp(url, "redis-sentinel://", 17) == 0) {
        rc = parse_sentinel_url(url + 17, out, err, errlen);
    } else {
        const char *sep = strstr(url, "://");
        if (sep && sep - url <= 16) {
            int n = (int)(sep - url);
            rc = why(err, errlen,
                     "unknown scheme \"%.*s\" (expected redis://, redis-sentinel://, unix:// "
                     "or embedded)",
                     n, url);
        } else {
            rc = why(err, errlen,
                     "expected redis://HOST[:PORT][/DB], " SENTINEL_FORM
                     ", unix:///PATH[?db=N] or embedded");
        }
    }
    if (rc < 0)
        sfl_redis_url_clear(out);
    return rc;
}

int sfl_listen_parse(const char *listen, char *host, size_t hostlen, int *port, char *err,
                     size_t errlen)
{
    char *h = NULL;
    char sub[160];
    if (!listen || !*listen)
        return why(err, errlen, "expected HOST:PORT, got \"\"");
    if (split_host_port(listen, strlen(listen), -1, 0, &h, port, sub, sizeof(sub)) < 0) {
        char q[64];
        sfl_json_quote(listen, q, sizeof(q));
        return why(err, errlen, "expected HOST:PORT, got %s: %s", q, sub);
    }
    if (strlen(h) >= hostlen) {
        free(h);
        return why(err, errlen, "host name too long");
    }
    memcpy(host, h, strlen(h) + 1);
    free(h);
    return 0;
}
