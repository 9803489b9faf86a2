/* test_dispatcharr.c - accounts and logins out of Dispatcharr's account list
 * (a pure function, table-driven) and the client's refusal of configs it
 * cannot serve. No network: the client is exercised against the fake server
 * in tests/integration/test_dispatcharr.c. */
#include "conf.h"
#include "dispatcharr.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*--- Limits: good shapes ----------------------------------------------------*/

/* A profile as Dispatcharr sends it, with the fields sfl ignores. Its rewrite
 * puts "p<id>" before the username, so each is a login of its own. */
#define PROFILE(id, max, active)                                                                   \
    "{\"id\": " #id ", \"name\": \"p" #id "\", \"max_streams\": " #max ", \"is_active\": " #active \
    ", \"is_default\": false, \"current_viewers\": 0, \"search_pattern\": \"/live/\", "            \
    "\"replace_pattern\": \"/live/p" #id "\", \"custom_properties\": null}"
#define ACCOUNT(id, max, active, rest)                                                             \
    "{\"id\": " #id ", \"name\": \"acc" #id "\", \"server_url\": \"http://p.example\", "           \
    "\"server_group\": null, \"max_streams\": " #max ", \"is_active\": " #active                   \
    ", \"account_type\": \"XC\", \"username\": \"u" #id "\", \"password\": \"pw\", "               \
    "\"status\": \"success\"" rest "}"

/* Arrays, not pointers: Criterion may run a case in a fresh process. */
struct limits_case {
    char what[80];
    char json[1536];
    size_t n;            /* accounts expected */
    long long ids[3];    /* their ids, in order */
    long long limits[3]; /* their max_streams */
};

/* clang-format off */
static struct limits_case limits_cases[] = {
    {"two active profiles of 1 and an inactive one of 5 sum to 2",
     "[" ACCOUNT(7, 1, true, ", \"profiles\": [" PROFILE(1, 1, true) ", " PROFILE(2, 1, true) ", "
                                 PROFILE(3, 5, false) "]") "]",
     1, {7}, {2}},
    {"an active profile with 0 makes the account unlimited",
     "[" ACCOUNT(7, 3, true, ", \"profiles\": [" PROFILE(1, 3, true) ", "
                                 PROFILE(2, 0, true) "]") "]",
     1, {7}, {0}},
    {"an inactive profile with 0 does not make it unlimited",
     "[" ACCOUNT(7, 3, true, ", \"profiles\": [" PROFILE(1, 3, true) ", "
                                 PROFILE(2, 0, false) "]") "]",
     1, {7}, {3}},
    {"an inactive account is skipped",
     "[" ACCOUNT(7, 2, false, ", \"profiles\": [" PROFILE(1, 2, true) "]") ", "
         ACCOUNT(8, 4, true, ", \"profiles\": [" PROFILE(2, 4, true) "]") "]",
     1, {8}, {4}},
    {"no profiles array: the account's own max_streams",
     "[" ACCOUNT(9, 4, true, "") "]", 1, {9}, {4}},
    {"profiles null: the account's own",
     "[" ACCOUNT(9, 4, true, ", \"profiles\": null") "]", 1, {9}, {4}},
    {"an empty profiles array: the account's own",
     "[" ACCOUNT(9, 4, true, ", \"profiles\": []") "]", 1, {9}, {4}},
    {"no active profile: the account's own",
     "[" ACCOUNT(9, 4, true, ", \"profiles\": [" PROFILE(1, 9, false) "]") "]", 1, {9}, {4}},
    {"own 0 and no profiles: unlimited", "[" ACCOUNT(9, 0, true, "") "]", 1, {9}, {0}},
    {"is_active absent counts as active",
     "[{\"id\": 5, \"max_streams\": 2, "
     "\"profiles\": [{\"id\": 1, \"max_streams\": 1}, {\"id\": 2, \"max_streams\": 2}]}]",
     1, {5}, {3}},
    {"several accounts keep their order",
     "[" ACCOUNT(3, 1, true, "") ", " ACCOUNT(1, 2, true, "") ", "
         ACCOUNT(2, 5, true, ", \"profiles\": [" PROFILE(1, 5, true) ", "
                             PROFILE(2, 5, true) "]") "]",
     3, {3, 1, 2}, {1, 2, 10}},
    {"an empty list", "[]", 0, {0}, {0}},
};
/* clang-format on */

ParameterizedTestParameters(dispatcharr, limits)
{
    return cr_make_param_array(struct limits_case, limits_cases,
                               sizeof(limits_cases) / sizeof(limits_cases[0]));
}

ParameterizedTest(struct limits_case *c, dispatcharr, limits)
{
    sfl_account_conf *accs = (sfl_account_conf *)1;
    size_t n = 99;
    char err[256] = "";
    int rc = sfl_dispatcharr_limits_from_json(c->json, strlen(c->json), &accs, &n, NULL, NULL, err,
                                              sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", c->what, err);
    cr_assert_eq(n, c->n, "%s: %zu accounts", c->what, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(accs[i].id, c->ids[i], "%s: [%zu] id %lld", c->what, i, accs[i].id);
        cr_assert_eq(accs[i].max_streams, c->limits[i], "%s: account %lld max_streams %lld",
                     c->what, accs[i].id, accs[i].max_streams);
    }
    if (n == 0)
        cr_assert_null(accs);
    sfl_dispatcharr_accounts_free(accs, n);
}

/*--- Logins ------------------------------------------------------------------*/

/* A profile: id, max_streams, is_active, is_default, search, replace. */
#define P(id, max, active, def, search, replace)                                                   \
    "{\"id\": " #id ", \"max_streams\": " #max ", \"is_active\": " #active                         \
    ", \"is_default\": " #def ", \"search_pattern\": \"" search                                    \
    "\", \"replace_pattern\": \"" replace "\"}"
/* The default profile as Dispatcharr makes it: the identity rewrite. */
#define DEF(id, max) P(id, max, true, true, "^(.*)$", "$1")
/* An active account: id, max_streams, type, server_group, server_url,
 * username, password, profiles. */
#define ACC(id, max, type, group, url, user, pass, profiles)                                       \
    "{\"id\": " #id ", \"name\": \"a" #id "\", \"max_streams\": " #max                             \
    ", \"is_active\": true, \"account_type\": \"" type "\", \"server_group\": " #group             \
    ", \"server_url\": \"" url "\", \"username\": \"" user "\", \"password\": \"" pass             \
    "\", \"profiles\": [" profiles "]}"
#define XC(id, max, url, user, pass, profiles) ACC(id, max, "XC", null, url, user, pass, profiles)

struct logins_case {
    char what[96];
    char json[2048];
    /* The accounts as "id:max{login=max[search>replace] ...}", "; "
     * between accounts; [...] only for a login with a rewrite. */
    char want[320];
    /* The conflicts as "login pPROFILE aACCOUNT says>used", "; " between. */
    char conflicts[160];
};

/* clang-format off */
static struct logins_case logins_cases[] = {
    {"two profiles of 1: the default, second in the array, comes first",
     "[" XC(7, 1, "http://p.example", "u", "pw",
            P(2, 1, true, false, "/u/pw/", "/u2/pw2/") ", " DEF(4, 1)) "]",
     "7:2{d4=1 d2=1[/u/pw/>/u2/pw2/]}", ""},
    {"the others follow the default by profile id, not by array order",
     "[" XC(7, 1, "http://p.example", "u", "pw",
            P(5, 1, true, false, "/u/pw/", "/u5/pw/") ", "
            P(3, 1, true, false, "/u/pw/", "/u3/pw/") ", " DEF(9, 1)) "]",
     "7:3{d9=1 d3=1[/u/pw/>/u3/pw/] d5=1[/u/pw/>/u5/pw/]}", ""},
    {"an inactive profile is left out",
     "[" XC(7, 1, "http://p.example", "u", "pw",
            DEF(1, 1) ", " P(2, 5, false, false, "/u/pw/", "/u2/pw/")) "]",
     "7:1{d1=1}", ""},
    {"an inactive account is left out, and its profiles share nothing",
     "[{\"id\": 6, \"max_streams\": 1, \"is_active\": false, \"account_type\": \"XC\", "
     "\"server_url\": \"http://p.example\", \"username\": \"u\", \"profiles\": ["
     DEF(1, 1) "]}, " XC(7, 2, "http://p.example", "u", "pw", DEF(2, 2)) "]",
     "7:2{d2=2}", ""},
    {"identity, empty, null and absent patterns are the URL as given",
     "[" ACC(7, 1, "STD", null, "http://p.example/get.php", "", "",
             DEF(1, 1) ", " P(2, 1, true, false, "", "") ", "
             "{\"id\": 3, \"max_streams\": 1, \"search_pattern\": null}, "
             "{\"id\": 4, \"max_streams\": 1}") "]",
     "7:4{d1=1 d2=1 d3=1 d4=1}", ""},
    {"a rewrite with groups is worked out: here onto the account's own login, one route",
     "[" XC(7, 1, "http://p.example", "u", "pw",
            DEF(1, 1) ", " P(2, 1, true, false, "^(.*)/live/[^/]+/[^/]+/(.*)$",
                                "$1/live/u/pw/$2")) "]",
     "7:1{d1=1}", ""},
    {"a rewrite with groups onto other credentials is another login",
     "[" XC(7, 1, "http://p.example", "u", "pw",
            DEF(1, 1) ", " P(2, 1, true, false, "^(.*)/live/[^/]+/[^/]+/(.*)$",
                                "$1/live/v/pw2/$2")) "]",
     "7:2{d1=1 d2=1[^(.*)/live/[^/]+/[^/]+/(.*)$>$1/live/v/pw2/$2]}", ""},
    {"a profile whose search sfl cannot run is left out, and reported",
     "[" XC(7, 1, "http://p.example", "u", "pw",
            DEF(1, 1) ", " P(2, 1, true, false, "u(?=/)", "v")) "]",
     "7:1{d1=1}", "left out p2 a7"},
    {"a profile of 0 is unlimited, and so is its account",
     "[" XC(7, 3, "http://p.example", "u", "pw",
            DEF(1, 0) ", " P(2, 2, true, false, "/u/pw/", "/v/pw/")) "]",
     "7:0{d1=0 d2=2[/u/pw/>/v/pw/]}", ""},
    {"no active profile: a login of the account's own, a<id>",
     "[" XC(9, 4, "http://q.example", "u", "pw", P(1, 2, false, true, "^(.*)$", "$1")) "]",
     "9:4{a9=4}", ""},
    {"same XC host and username in two accounts: one login, the smallest profile id's",
     "[" XC(7, 1, "http://P.Example:8080/", "U", "pw", DEF(12, 1)) ", "
         XC(8, 1, "http://user@p.example", " u ", "other", DEF(11, 1)) "]",
     "7:1{d11=1}; 8:1{d11=1}", ""},
    {"a rewrite to another account's login is that login (usernames in any case)",
     "[" XC(7, 1, "http://p.example", "u", "pw", DEF(11, 1)) ", "
         XC(9, 2, "http://p.example", "x", "y",
            DEF(13, 1) ", " P(14, 1, true, false, "/x/y/", "/U/pw2/")) "]",
     "7:1{d11=1}; 9:2{d13=1 d11=1[/x/y/>/U/pw2/]}", ""},
    {"'.' (any character) and escaped punctuation in a search are worked out",
     "[" XC(7, 1, "http://p.example", "jane", "pw", DEF(21, 1)) ", "
         XC(8, 2, "http://p.example", "john_doe", "pw",
            DEF(22, 1) ", " P(23, 1, true, false, "/john.doe\\\\/pw", "/jane/pw")) "]",
     "7:1{d21=1}; 8:2{d22=1 d21=1[/john.doe\\/pw>/jane/pw]}", ""},
    {"a '.' facing a character that is not ASCII is not worked out: a login of its own",
     "[" XC(7, 1, "http://p.example", "jane", "pw", DEF(21, 1)) ", "
         XC(8, 2, "http://p.example", "j\xc3\xb6hn", "pw",
            DEF(22, 1) ", " P(23, 1, true, false, "/j.hn/pw", "/jane/pw")) "]",
     "7:1{d21=1}; 8:2{d22=1 d23=1[/j.hn/pw>/jane/pw]}", ""},
    {"a rewritten URL that is not .../live/USER/PASS/1234.ts has no known login",
     "[" XC(7, 1, "http://p.example", "u", "pw", DEF(11, 1)) ", "
         XC(9, 2, "http://p.example", "x", "y",
            DEF(13, 1) ", " P(14, 1, true, false, "/live/x/y/", "/u/pw/")) "]",
     "7:1{d11=1}; 9:2{d13=1 d14=1[/live/x/y/>/u/pw/]}", ""},
    {"the same username at another host is another login",
     "[" XC(7, 1, "http://p.example", "u", "pw", DEF(1, 1)) ", "
         XC(8, 1, "http://q.example", "u", "pw", DEF(2, 1)) "]",
     "7:1{d1=1}; 8:1{d2=1}", ""},
    {"STD accounts are not joined by host and username",
     "[" ACC(7, 1, "STD", null, "http://p.example", "u", "pw", DEF(1, 1)) ", "
         ACC(8, 1, "STD", null, "http://p.example", "u", "pw", DEF(2, 1)) "]",
     "7:1{d1=1}; 8:1{d2=1}", ""},
    {"one server group, the same credentials: one login, whatever the host",
     "[" ACC(7, 1, "STD", 3, "http://a.example", "Alice", "s3cret", DEF(31, 1)) ", "
         ACC(8, 1, "STD", 3, "http://b.example", "alice ", "s3cret", DEF(32, 1)) ", "
         ACC(9, 1, "STD", 4, "http://c.example", "alice", "s3cret", DEF(33, 1)) ", "
         ACC(10, 1, "STD", 3, "http://d.example", "alice", "other", DEF(34, 1)) "]",
     "7:1{d31=1}; 8:1{d31=1}; 9:1{d33=1}; 10:1{d34=1}", ""},
    {"one server group: an XC profile's rewritten credentials count",
     "[" ACC(7, 1, "XC", 5, "http://a.example", "u1", "p1", DEF(41, 1)) ", "
         ACC(8, 2, "XC", 5, "http://b.example", "z", "z",
             DEF(42, 1) ", " P(43, 1, true, false, "/z/z/", "/u1/p1/")) "]",
     "7:1{d41=1}; 8:2{d42=1 d41=1[/z/z/>/u1/p1/]}", ""},
    {"two profiles of one account that are one login are one route",
     "[" XC(7, 1, "http://p.example", "u", "pw",
            DEF(1, 1) ", " P(2, 1, true, false, "/nowhere/", "/else/")) "]",
     "7:1{d1=1}", ""},
    {"shared logins that disagree: the smaller counts, 0 is the largest",
     "[" XC(7, 2, "http://p.example", "u", "pw", DEF(1, 2)) ", "
         XC(8, 1, "http://p.example", "u", "pw", DEF(2, 1)) ", "
         XC(9, 0, "http://q.example", "v", "pw", DEF(3, 0)) ", "
         XC(10, 3, "http://q.example", "v", "pw", DEF(4, 3)) "]",
     "7:1{d1=1}; 8:1{d1=1}; 9:3{d3=3}; 10:3{d3=3}",
     "d1 p1 a7 2>1; d3 p3 a9 0>3"},
    {"an account's own limit shares a login with a profile",
     "[" XC(7, 4, "http://p.example", "u", "pw", "") ", "
         XC(8, 2, "http://p.example", "u", "pw", DEF(5, 2)) "]",
     "7:2{d5=2}; 8:2{d5=2}", "d5 p-1 a7 4>2"},
    {"accounts' own limits that share a login: the smallest account id",
     "[" XC(9, 1, "http://p.example", "u", "pw", "") ", "
         XC(8, 1, "http://p.example", "u", "pw", "") "]",
     "9:1{a8=1}; 8:1{a8=1}", ""},
};
/* clang-format on */

#define APPEND(buf, len, o, ...)                                                                   \
    do {                                                                                           \
        if ((o) < (len))                                                                           \
            (o) += (size_t)snprintf((buf) + (o), (len) - (o), __VA_ARGS__);                        \
    } while (0)

static void render(const sfl_account_conf *accs, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        APPEND(buf, len, o, "%s%lld:%lld{", i ? "; " : "", accs[i].id, accs[i].max_streams);
        for (size_t j = 0; j < accs[i].nlogins; j++) {
            const sfl_login_conf *l = &accs[i].logins[j];
            APPEND(buf, len, o, "%s%s=%lld", j ? " " : "", l->id, l->max_streams);
            cr_assert_eq(l->search == NULL, l->replace == NULL, "login %s: search without replace",
                         l->id);
            if (l->search)
                APPEND(buf, len, o, "[%s>%s]", l->search, l->replace);
        }
        APPEND(buf, len, o, "}");
    }
}

ParameterizedTestParameters(dispatcharr, logins)
{
    return cr_make_param_array(struct logins_case, logins_cases,
                               sizeof(logins_cases) / sizeof(logins_cases[0]));
}

ParameterizedTest(struct logins_case *c, dispatcharr, logins)
{
    sfl_account_conf *accs;
    sfl_dispatcharr_conflict *conf;
    size_t n, nconf;
    char err[256] = "", got[512], gotc[256];
    int rc = sfl_dispatcharr_limits_from_json(c->json, strlen(c->json), &accs, &n, &conf, &nconf,
                                              err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", c->what, err);
    render(accs, n, got, sizeof(got));
    cr_expect_str_eq(got, c->want, "%s", c->what);
    size_t o = 0;
    gotc[0] = '\0';
    for (size_t i = 0; i < nconf; i++)
        if (conf[i].why[0])
            APPEND(gotc, sizeof(gotc), o, "%sleft out p%lld a%lld", i ? "; " : "",
                   conf[i].profile_id, conf[i].account_id);
        else
            APPEND(gotc, sizeof(gotc), o, "%s%s p%lld a%lld %lld>%lld", i ? "; " : "",
                   conf[i].login, conf[i].profile_id, conf[i].account_id, conf[i].max_streams,
                   conf[i].used);
    cr_expect_str_eq(gotc, c->conflicts, "%s", c->what);
    cr_expect_eq(nconf == 0, conf == NULL);
    free(conf);
    sfl_dispatcharr_accounts_free(accs, n);
}

/* Without a place for them, conflicts are not listed and nothing leaks. */
Test(dispatcharr, conflicts_may_be_left_unasked)
{
    const char json[] = "[" XC(7, 2, "http://p.example", "u", "pw", DEF(1, 2)) ", " XC(
        8, 1, "http://p.example", "u", "pw", DEF(2, 1)) "]";
    sfl_account_conf *accs;
    size_t n;
    char err[256];
    cr_assert_eq(sfl_dispatcharr_limits_from_json(json, sizeof(json) - 1, &accs, &n, NULL, NULL,
                                                  err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_expect_eq(accs[0].logins[0].max_streams, 1);
    sfl_dispatcharr_accounts_free(accs, n);
}

/* A login id names it in Redis and results: never a credential. */
Test(dispatcharr, login_ids_carry_no_credential)
{
    const char json[] =
        "[" XC(7, 1, "http://p.example", "secretuser", "secretpass",
               DEF(1, 1) ", " P(2, 1, true, false, "secretuser",
                                "other")) ", " ACC(8, 1, "STD", 3, "http://p.example", "secretuser",
                                                   "secretpass", DEF(3, 1)) "]";
    sfl_account_conf *accs;
    size_t n;
    char err[256];
    cr_assert_eq(sfl_dispatcharr_limits_from_json(json, sizeof(json) - 1, &accs, &n, NULL, NULL,
                                                  err, sizeof(err)),
                 0, "%s", err);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < accs[i].nlogins; j++) {
            cr_expect_null(strstr(accs[i].logins[j].id, "secret"), "%s", accs[i].logins[j].id);
            cr_expect(accs[i].logins[j].id[0] == 'd' || accs[i].logins[j].id[0] == 'a');
        }
    sfl_dispatcharr_accounts_free(accs, n);
}

Test(dispatcharr, names_are_copied)
{
    const char json[] = "[{\"id\": 4, \"name\": \"My IPTV \\\"A\\\"\", \"max_streams\": 1, "
                        "\"is_active\": true}, {\"id\": 5, \"max_streams\": 1}]";
    sfl_account_conf *accs;
    size_t n;
    char err[256];
    cr_assert_eq(sfl_dispatcharr_limits_from_json(json, sizeof(json) - 1, &accs, &n, NULL, NULL,
                                                  err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(accs[0].name, "My IPTV \"A\"");
    cr_assert_null(accs[1].name);
    sfl_dispatcharr_accounts_free(accs, n);
}

/* Names with control characters are kept, escaped: one odd name does not
 * stop the sync (every other entry refuses them; nothing prints them raw). */
Test(dispatcharr, names_with_control_characters_come_out_escaped)
{
    const char json[] = "[{\"id\": 4, \"name\": \"\\u001b[31mRed\\u0007\", \"max_streams\": 1},"
                        " {\"id\": 5, \"name\": \"Two\\r\\nLines \xff\", \"max_streams\": 2},"
                        " {\"id\": 6, \"name\": \"Caf\u00e9 \\\\ ok\", \"max_streams\": 3}]";
    sfl_account_conf *accs;
    size_t n;
    char err[256];
    cr_assert_eq(sfl_dispatcharr_limits_from_json(json, sizeof(json) - 1, &accs, &n, NULL, NULL,
                                                  err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(accs[0].name, "\\x1b[31mRed\\x07");
    cr_expect_str_eq(accs[1].name, "Two\\x0d\\x0aLines \\xff");
    cr_expect_str_eq(accs[2].name, "Caf\u00e9 \\ ok");
    cr_expect_eq(accs[1].max_streams, 2);
    sfl_dispatcharr_accounts_free(accs, n);
}

/*--- Limits: wrong shapes ---------------------------------------------------*/

struct shape_case {
    char json[256];
    char err[128];   /* a part of the message */
    char absent[16]; /* text the message must not have (a credential), or "" */
};

#define PR(fields) "[{\"id\": 7, \"max_streams\": 1, \"profiles\": [{" fields "}]}]"

/* clang-format off */
static struct shape_case shape_cases[] = {
    {"{\"count\": 1, \"results\": []}",
     "accounts: expected a JSON array of accounts, got an object", ""},
    {"[{\"id\": 1, \"max_streams\": 2", "not valid JSON", ""},
    {"", "not valid JSON", ""},
    {"[1]", "[0]: expected an account object, got 1", ""},
    {"[{\"id\": \"7\", \"max_streams\": 1}]", "[0].id: expected an integer >= 0, got \"7\"", ""},
    {"[{\"max_streams\": 1}]", "[0].id: expected an integer >= 0, got nothing", ""},
    {"[{\"id\": 7}]", "[0] (account 7).max_streams: expected an integer >= 0, got nothing", ""},
    {"[{\"id\": 7, \"max_streams\": -1}]", "max_streams: expected an integer >= 0, got -1", ""},
    {"[{\"id\": 7, \"max_streams\": 1.5}]", "max_streams: expected an integer >= 0, got 1.5", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"is_active\": \"yes\"}]",
     "[0].is_active: expected true or false", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": {}}]",
     "[0] (account 7).profiles: expected an array, got an object", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": [3]}]",
     "[0] (account 7).profiles[0]: expected a profile object", ""},
    {PR("\"id\": 1, \"is_active\": true"),
     "[0] (account 7).profiles[0].max_streams: expected an integer >= 0, got nothing", ""},
    {PR("\"id\": 1, \"max_streams\": null"),
     "profiles[0].max_streams: expected an integer >= 0, got null", ""},
    {PR("\"max_streams\": 1, \"is_active\": 1"),
     "profiles[0].is_active: expected true or false, got 1", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"name\": 5}]", "(account 7).name: expected a string", ""},
    {"[{\"id\": 1, \"max_streams\": 1}, {\"id\": 2, \"max_streams\": \"x\"}]",
     "[1] (account 2).max_streams", ""},
    {"[] []", "not valid JSON", ""},
    /* Profiles and logins */
    {PR("\"max_streams\": 1"),
     "[0] (account 7).profiles[0].id: expected an integer >= 0, got nothing", ""},
    {PR("\"id\": -3, \"max_streams\": 1"), "profiles[0].id: expected an integer >= 0, got -3", ""},
    {PR("\"id\": 1, \"max_streams\": 1, \"is_default\": \"yes\""),
     "[0] (account 7).profiles[0].is_default: expected true or false, got \"yes\"", ""},
    {PR("\"id\": 1, \"max_streams\": 1, \"search_pattern\": 91723"),
     "[0] (account 7).profiles[0].search_pattern: expected a string, got a number", "91723"},
    {PR("\"id\": 1, \"max_streams\": 1, \"search_pattern\": \"a\", \"replace_pattern\": [\"b\"]"),
     "[0] (account 7).profiles[0].replace_pattern: expected a string, got an array", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"password\": 55501234}]",
     "[0] (account 7).password: expected a string, got a number", "55501234"},
    {"[{\"id\": 7, \"max_streams\": 1, \"username\": true}]",
     "[0] (account 7).username: expected a string, got true or false", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"server_url\": {}}]",
     "[0] (account 7).server_url: expected a string, got an object", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"account_type\": 2}]",
     "[0] (account 7).account_type: expected a string, got a number", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"server_group\": \"3\"}]",
     "[0] (account 7).server_group: expected an integer >= 0 or null, got \"3\"", ""},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": [{\"id\": 4, \"max_streams\": 1}]}, "
     "{\"id\": 8, \"max_streams\": 1, \"profiles\": [{\"id\": 5, \"max_streams\": 1}, "
     "{\"id\": 4, \"max_streams\": 1}]}]",
     "[1] (account 8).profiles[1].id: profile 4 again (first at [0] (account 7).profiles[0])", ""},
};
/* clang-format on */

ParameterizedTestParameters(dispatcharr, wrong_shapes)
{
    return cr_make_param_array(struct shape_case, shape_cases,
                               sizeof(shape_cases) / sizeof(shape_cases[0]));
}

ParameterizedTest(struct shape_case *c, dispatcharr, wrong_shapes)
{
    sfl_account_conf *accs = (sfl_account_conf *)1;
    sfl_dispatcharr_conflict *conf = (sfl_dispatcharr_conflict *)1;
    size_t n = 99, nconf = 99;
    char err[256] = "";
    int rc = sfl_dispatcharr_limits_from_json(c->json, strlen(c->json), &accs, &n, &conf, &nconf,
                                              err, sizeof(err));
    cr_assert_eq(rc, -1, "accepted %s", c->json);
    cr_assert_null(accs);
    cr_assert_eq(n, 0);
    cr_assert_null(conf);
    cr_assert_eq(nconf, 0);
    cr_assert(strstr(err, c->err), "%s: message \"%s\" lacks \"%s\"", c->json, err, c->err);
    if (c->absent[0])
        cr_assert_null(strstr(err, c->absent), "message \"%s\" shows a credential", err);
}

/* An inactive profile or account is not read beyond is_active: what
 * Dispatcharr does not use cannot stop the sync. */
Test(dispatcharr, inactive_entries_are_not_read_further)
{
    const char json[] =
        "[{\"id\": 6, \"is_active\": false, \"password\": 5}, {\"id\": 7, \"max_streams\": 1, "
        "\"profiles\": [{\"is_active\": false, \"search_pattern\": 3}, {\"id\": 1, "
        "\"max_streams\": 2}]}]";
    sfl_account_conf *accs;
    size_t n;
    char err[256];
    cr_assert_eq(sfl_dispatcharr_limits_from_json(json, sizeof(json) - 1, &accs, &n, NULL, NULL,
                                                  err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_eq(accs[0].nlogins, 1);
    cr_expect_str_eq(accs[0].logins[0].id, "d1");
    cr_expect_eq(accs[0].max_streams, 2);
    sfl_dispatcharr_accounts_free(accs, n);
}

/*--- The client's config checks -------------------------------------------------*/

static struct event_base *base;

static void client_setup(void)
{
    base = event_base_new();
    cr_assert_not_null(base);
}

static void client_teardown(void)
{
    event_base_free(base);
}

/* A new client for url and credentials (NULL = unset); its error in err. */
static sfl_dispatcharr *client_for(const char *url, const char *user, const char *pass,
                                   const char *key, char *err, size_t errlen)
{
    sfl_conf *c = sfl_conf_new();
    cr_assert_not_null(c);
    c->dispatcharr_url = url ? strdup(url) : NULL;
    c->dispatcharr_username = user ? strdup(user) : NULL;
    c->dispatcharr_password = pass ? strdup(pass) : NULL;
    c->dispatcharr_api_key = key ? strdup(key) : NULL;
    sfl_dispatcharr *dc = sfl_dispatcharr_new(base, c, err, errlen);
    sfl_conf_free(c);
    return dc;
}

TestSuite(dispatcharr_client, .init = client_setup, .fini = client_teardown);

/* https:// is accepted (what it does on the wire: test_dispatcharr_tls.c). */
Test(dispatcharr_client, https_is_accepted)
{
    char err[512] = "";
    sfl_dispatcharr *dc = client_for("https://d.example", "u", "pw-secret", NULL, err, sizeof(err));
    cr_assert_not_null(dc, "%s", err);
    sfl_dispatcharr_free(dc);
}

Test(dispatcharr_client, needs_credentials)
{
    char err[512] = "";
    cr_assert_null(client_for("http://d.example:9191", "u", NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "dispatcharr.api_key"), "%s", err);
    cr_assert_null(client_for(NULL, "u", "p", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "dispatcharr.url is not set"), "%s", err);
}

Test(dispatcharr_client, credentials_in_url_are_refused_and_not_repeated)
{
    char err[512] = "";
    cr_assert_null(
        client_for("http://admin:Pw-In-Url-77@d.example", NULL, NULL, "k", err, sizeof(err)));
    cr_assert(strstr(err, "credentials in the URL"), "%s", err);
    cr_assert_null(strstr(err, "Pw-In-Url-77"), "%s", err);
}

Test(dispatcharr_client, accepts_http_with_key_or_login)
{
    char err[512] = "";
    sfl_dispatcharr *dc = client_for("http://127.0.0.1:9191/", NULL, NULL, "k", err, sizeof(err));
    cr_assert_not_null(dc, "%s", err);
    sfl_dispatcharr_free(dc);
    dc = client_for("http://[::1]:9191/sub/path/", "u", "p", NULL, err, sizeof(err));
    cr_assert_not_null(dc, "%s", err);
    sfl_dispatcharr_free(dc);
    sfl_dispatcharr_free(NULL);
}
