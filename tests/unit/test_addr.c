/* test_addr.c - the Redis URL and listen address parsers: every accepted
 * form comes out with each part in place, every refused one says why
 * without showing the password, and a refusal leaves nothing to free. */
#include "addr.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

TestSuite(addr);

/* Criterion hands a parameter to the test's process as bytes, so pointers in
 * it (our string literals) would dangle there: pass the row index instead
 * and read the row from the table, which every process has. */
#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

/*--- Redis URLs ---*/

struct url_case {
    const char *url;
    const char *host;
    int port;
    const char *unix_path;
    const char *user;
    const char *password;
    int db;
    int embedded;
    const char *error; /* non-NULL: must fail with this in the message */
};

static const struct url_case redis_url_cases[] = {
    {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, NULL, NULL, NULL, 0, 0, NULL},
    {"redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0, 0, NULL},
    {"redis://h:6380/3", "h", 6380, NULL, NULL, NULL, 3, 0, NULL},
    {"redis://h/", "h", 6379, NULL, NULL, NULL, 0, 0, NULL},
    {"redis://:secret@h", "h", 6379, NULL, NULL, "secret", 0, 0, NULL},
    {"redis://alice:p%40ss@h:1/2", "h", 1, NULL, "alice", "p@ss", 2, 0, NULL},
    {"redis://alice:p@s/s@h", "h", 6379, NULL, "alice", "p@s/s", 0, 0, NULL},
    {"redis://:@h", "h", 6379, NULL, NULL, NULL, 0, 0, NULL},
    {"redis://[::1]:6390/1", "::1", 6390, NULL, NULL, NULL, 1, 0, NULL},
    {"redis://[fe80::1]", "fe80::1", 6379, NULL, NULL, NULL, 0, 0, NULL},
    {"unix:///tmp/redis.sock", NULL, 0, "/tmp/redis.sock", NULL, NULL, 0, 0, NULL},
    {"unix:///tmp/redis.sock?db=4", NULL, 0, "/tmp/redis.sock", NULL, NULL, 4, 0, NULL},
    {"embedded", NULL, 0, NULL, NULL, NULL, 0, 1, NULL},
    {"", NULL, 0, NULL, NULL, NULL, 0, 0, "empty"},
    {"http://h", NULL, 0, NULL, NULL, NULL, 0, 0, "unknown scheme \"http\""},
    {"rediss://h", NULL, 0, NULL, NULL, NULL, 0, 0, "unknown scheme \"rediss\""},
    {"localhost:6379", NULL, 0, NULL, NULL, NULL, 0, 0, "expected redis://"},
    {"Embedded", NULL, 0, NULL, NULL, NULL, 0, 0, "expected redis://"},
    {"redis://h:0", NULL, 0, NULL, NULL, NULL, 0, 0, "bad port \"0\""},
    {"redis://h:65536", NULL, 0, NULL, NULL, NULL, 0, 0, "bad port \"65536\""},
    {"redis://h:-1", NULL, 0, NULL, NULL, NULL, 0, 0, "bad port"},
    {"redis://h:", NULL, 0, NULL, NULL, NULL, 0, 0, "bad port \"\""},
    {"redis://h:63 79", NULL, 0, NULL, NULL, NULL, 0, 0, "bad port"},
    {"redis://h/abc", NULL, 0, NULL, NULL, NULL, 0, 0, "db must be a number, got \"abc\""},
    {"redis://h/1/2", NULL, 0, NULL, NULL, NULL, 0, 0, "db must be a number"},
    {"redis://h/-1", NULL, 0, NULL, NULL, NULL, 0, 0, "db must be a number"},
    {"redis://h/1?x=1", NULL, 0, NULL, NULL, NULL, 0, 0, "no query"},
    {"redis://", NULL, 0, NULL, NULL, NULL, 0, 0, "missing host"},
    {"redis://:6379", NULL, 0, NULL, NULL, NULL, 0, 0, "missing host"},
    {"redis://hunter2@h", NULL, 0, NULL, NULL, NULL, 0, 0, "[USER]:PASSWORD@"},
    {"redis://::1:6379", NULL, 0, NULL, NULL, NULL, 0, 0, "brackets"},
    {"redis://[::1", NULL, 0, NULL, NULL, NULL, 0, 0, "missing ']'"},
    {"redis://[::1]x", NULL, 0, NULL, NULL, NULL, 0, 0, "after ']'"},
    {"redis://:p%zzhunter2@h", NULL, 0, NULL, NULL, NULL, 0, 0, "bad %-escape"},
    {"redis://:p%00@h", NULL, 0, NULL, NULL, NULL, 0, 0, "bad %-escape"},
    {"redis://:hunter2@h:port", NULL, 0, NULL, NULL, NULL, 0, 0, "bad port \"port\""},
    {"unix://tmp/sock", NULL, 0, NULL, NULL, NULL, 0, 0, "ABSOLUTE"},
    {"unix:///tmp/s?db=x", NULL, 0, NULL, NULL, NULL, 0, 0, "db must be a number"},
    {"unix:///tmp/s?db=", NULL, 0, NULL, NULL, NULL, 0, 0, "db must be a number"},
    {"unix:///tmp/s?password=hunter2", NULL, 0, NULL, NULL, NULL, 0, 0,
     "unknown parameter \"password\""},
};

ParameterizedTestParameters(addr, redis_url)
{
    INDEX_PARAMS(redis_url_cases);
}

static void expect_str_or_null(const char *got, const char *want, const char *what)
{
    if (!want)
        cr_expect_null(got, "%s: got \"%s\", want NULL", what, got);
    else if (!got)
        cr_expect_fail("%s: got NULL, want \"%s\"", what, want);
    else
        cr_expect_str_eq(got, want, "%s", what);
}

ParameterizedTest(size_t *i, addr, redis_url)
{
    const struct url_case *uc = &redis_url_cases[*i];
    sfl_redis_url u;
    char err[256] = "";
    int rc = sfl_redis_url_parse(uc->url, &u, err, sizeof(err));
    if (uc->error) {
        cr_assert_eq(rc, -1, "accepted %s", uc->url);
        cr_expect_not_null(strstr(err, uc->error), "%s: message \"%s\" lacks \"%s\"", uc->url, err,
                           uc->error);
        cr_expect_null(strstr(err, "hunter2"), "%s: message shows the password: %s", uc->url, err);
        cr_expect_null(u.host);
        cr_expect_null(u.user);
        cr_expect_null(u.password);
        cr_expect_null(u.unix_path);
        return;
    }
    cr_assert_eq(rc, 0, "%s: %s", uc->url, err);
    expect_str_or_null(u.host, uc->host, "host");
    cr_expect_eq(u.port, uc->port, "%s: port %d", uc->url, u.port);
    expect_str_or_null(u.unix_path, uc->unix_path, "unix_path");
    expect_str_or_null(u.user, uc->user, "user");
    expect_str_or_null(u.password, uc->password, "password");
    cr_expect_eq(u.db, uc->db, "%s: db %d", uc->url, u.db);
    cr_expect_eq(u.embedded, uc->embedded);
    sfl_redis_url_clear(&u);
    cr_expect_null(u.host);
    sfl_redis_url_clear(NULL);
}

Test(addr, unix_path_too_long)
{
    char url[256] = "unix:///";
    memset(url + 8, 'a', 120);
    url[128] = '\0';
    sfl_redis_url u;
    char err[256];
    cr_expect_eq(sfl_redis_url_parse(url, &u, err, sizeof(err)), -1);
    cr_expect_not_null(strstr(err, "longer than 107"), "%s", err);
}

/*--- redis-sentinel:// URLs ---*/

struct sentinel_case {
    const char *url;
    const char *hosts; /* "h1:p1,h2:p2" as parsed, or NULL: must fail */
    const char *master;
    const char *user, *password;
    int db;
    const char *error; /* must be in the message of a refusal */
};

static const struct sentinel_case sentinel_cases[] = {
    {"redis-sentinel://127.0.0.1:26379/mymaster", "127.0.0.1:26379", "mymaster", NULL, NULL, 0,
     NULL},
    {"redis-sentinel://s1,s2:26380,[::1]:5/m/3", "s1:26379,s2:26380,::1:5", "m", NULL, NULL, 3,
     NULL},
    {"redis-sentinel://:p%40ss@s1:1,s2:2/m/", "s1:1,s2:2", "m", NULL, "p@ss", 0, NULL},
    {"redis-sentinel://alice:pw@s/m.a-b_c", "s:26379", "m.a-b_c", "alice", "pw", 0, NULL},
    {"redis-sentinel://s1:1", NULL, NULL, NULL, NULL, 0, "missing the master's name"},
    {"redis-sentinel://s1:1/", NULL, NULL, NULL, NULL, 0, "missing the master's name"},
    {"redis-sentinel://s1:1//2", NULL, NULL, NULL, NULL, 0, "missing the master's name"},
    {"redis-sentinel:///m", NULL, NULL, NULL, NULL, 0, "sentinel 1: missing host"},
    {"redis-sentinel://s1,/m", NULL, NULL, NULL, NULL, 0, "sentinel 2: missing host"},
    {"redis-sentinel://s1,s2:0/m", NULL, NULL, NULL, NULL, 0, "sentinel 2: bad port \"0\""},
    {"redis-sentinel://:hunter2@s1:x/m", NULL, NULL, NULL, NULL, 0, "sentinel 1: bad port"},
    {"redis-sentinel://s1/m/x", NULL, NULL, NULL, NULL, 0, "db must be a number"},
    {"redis-sentinel://s1/m?x=1", NULL, NULL, NULL, NULL, 0, "no query"},
    {"redis-sentinel://s1/m\x01", NULL, NULL, NULL, NULL, 0, "bad character in the master name"},
    {"redis-sentinel://hunter2@s1/m", NULL, NULL, NULL, NULL, 0, "[USER]:PASSWORD@"},
    {"redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m", NULL, NULL, NULL, NULL, 0,
     "17 sentinels (at most 16)"},
    {"sentinel://s1/m", NULL, NULL, NULL, NULL, 0, "expected redis://, redis-sentinel://"},
};

ParameterizedTestParameters(addr, sentinel_url)
{
    INDEX_PARAMS(sentinel_cases);
}

ParameterizedTest(size_t *i, addr, sentinel_url)
{
    const struct sentinel_case *sc = &sentinel_cases[*i];
    sfl_redis_url u;
    char err[256] = "";
    int rc = sfl_redis_url_parse(sc->url, &u, err, sizeof(err));
    if (!sc->hosts) {
        cr_assert_eq(rc, -1, "accepted %s", sc->url);
        cr_expect_not_null(strstr(err, sc->error), "%s: message \"%s\" lacks \"%s\"", sc->url, err,
                           sc->error);
        cr_expect_null(strstr(err, "hunter2"), "%s: message shows the password: %s", sc->url, err);
        cr_expect_null(u.sentinels);
        cr_expect_eq(u.nsentinels, 0);
        cr_expect_null(u.master);
        cr_expect_null(u.password);
        return;
    }
    cr_assert_eq(rc, 0, "%s: %s", sc->url, err);
    char hosts[256] = "";
    for (int k = 0; k < u.nsentinels; k++)
        snprintf(hosts + strlen(hosts), sizeof(hosts) - strlen(hosts), "%s%s:%d", k ? "," : "",
                 u.sentinels[k].host, u.sentinels[k].port);
    cr_expect_str_eq(hosts, sc->hosts, "%s: sentinels %s", sc->url, hosts);
    expect_str_or_null(u.master, sc->master, "master");
    expect_str_or_null(u.user, sc->user, "user");
    expect_str_or_null(u.password, sc->password, "password");
    cr_expect_eq(u.db, sc->db, "%s: db %d", sc->url, u.db);
    cr_expect_null(u.host, "a sentinel URL has no master host of its own");
    cr_expect_eq(u.port, 0);
    cr_expect_null(u.unix_path);
    sfl_redis_url_clear(&u);
    cr_expect_null(u.sentinels);
    cr_expect_null(u.master);
}

/*--- http.listen ---*/

struct listen_case {
    const char *listen;
    const char *host; /* NULL: must fail */
    int port;
};

static const struct listen_case listen_cases[] = {
    {"127.0.0.1:8470", "127.0.0.1", 8470},
    {"0.0.0.0:0", "0.0.0.0", 0},
    {"localhost:65535", "localhost", 65535},
    {"[::1]:80", "::1", 80},
    {"[::]:8470", "::", 8470},
    {"", NULL, 0},
    {"8470", NULL, 0},
    {":8470", NULL, 0},
    {"h:", NULL, 0},
    {"h:65536", NULL, 0},
    {"h:80x", NULL, 0},
    {"::1:80", NULL, 0},
    {"[::1]", NULL, 0},
    {"a b:80", NULL, 0},
};

ParameterizedTestParameters(addr, listen)
{
    INDEX_PARAMS(listen_cases);
}

ParameterizedTest(size_t *i, addr, listen)
{
    const struct listen_case *lc = &listen_cases[*i];
    char host[64] = "", err[256] = "";
    int port = -1;
    int rc = sfl_listen_parse(lc->listen, host, sizeof(host), &port, err, sizeof(err));
    if (!lc->host) {
        cr_expect_eq(rc, -1, "accepted \"%s\"", lc->listen);
        cr_expect_not_null(strstr(err, "expected HOST:PORT"), "%s", err);
        return;
    }
    cr_assert_eq(rc, 0, "\"%s\": %s", lc->listen, err);
    cr_expect_str_eq(host, lc->host);
    cr_expect_eq(port, lc->port);
}
