/* test_dispatcharr.c - the limit computation from Dispatcharr's account list
 * (a pure function, table-driven) and the client's refusal of configs it
 * cannot serve. No network: the client is exercised against the fake server
 * in tests/integration/test_dispatcharr.c. */
#include "conf.h"
#include "dispatcharr.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/*--- Limits: good shapes ----------------------------------------------------*/

/* A profile as Dispatcharr sends it, with the fields sfl ignores. */
#define PROFILE(id, max, active)                                                                   \
    "{\"id\": " #id ", \"name\": \"p" #id "\", \"max_streams\": " #max ", \"is_active\": " #active \
    ", \"is_default\": false, \"current_viewers\": 0, \"search_pattern\": \"\", "                  \
    "\"replace_pattern\": \"\", \"custom_properties\": null}"
#define ACCOUNT(id, max, active, rest)                                                             \
    "{\"id\": " #id ", \"name\": \"acc" #id "\", \"server_url\": \"http://p.example\", "           \
    "\"max_streams\": " #max ", \"is_active\": " #active ", \"account_type\": \"XC\", "            \
    "\"username\": \"u\", \"status\": \"success\"" rest "}"

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
     "\"profiles\": [{\"max_streams\": 1}, {\"max_streams\": 2}]}]",
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
    int rc =
        sfl_dispatcharr_limits_from_json(c->json, strlen(c->json), &accs, &n, err, sizeof(err));
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

Test(dispatcharr, names_are_copied)
{
    const char json[] = "[{\"id\": 4, \"name\": \"My IPTV \\\"A\\\"\", \"max_streams\": 1, "
                        "\"is_active\": true}, {\"id\": 5, \"max_streams\": 1}]";
    sfl_account_conf *accs;
    size_t n;
    char err[256];
    cr_assert_eq(
        sfl_dispatcharr_limits_from_json(json, sizeof(json) - 1, &accs, &n, err, sizeof(err)), 0,
        "%s", err);
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
    cr_assert_eq(
        sfl_dispatcharr_limits_from_json(json, sizeof(json) - 1, &accs, &n, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(accs[0].name, "\\x1b[31mRed\\x07");
    cr_expect_str_eq(accs[1].name, "Two\\x0d\\x0aLines \\xff");
    cr_expect_str_eq(accs[2].name, "Caf\u00e9 \\ ok");
    cr_expect_eq(accs[1].max_streams, 2);
    sfl_dispatcharr_accounts_free(accs, n);
}

/*--- Limits: wrong shapes ---------------------------------------------------*/

struct shape_case {
    char json[128];
    char err[96]; /* a part of the message */
};

/* clang-format off */
static struct shape_case shape_cases[] = {
    {"{\"count\": 1, \"results\": []}",
     "accounts: expected a JSON array of accounts, got an object"},
    {"[{\"id\": 1, \"max_streams\": 2", "not valid JSON"},
    {"", "not valid JSON"},
    {"[1]", "[0]: expected an account object, got 1"},
    {"[{\"id\": \"7\", \"max_streams\": 1}]", "[0].id: expected an integer >= 0, got \"7\""},
    {"[{\"max_streams\": 1}]", "[0].id: expected an integer >= 0, got nothing"},
    {"[{\"id\": 7}]", "[0] (account 7).max_streams: expected an integer >= 0, got nothing"},
    {"[{\"id\": 7, \"max_streams\": -1}]", "max_streams: expected an integer >= 0, got -1"},
    {"[{\"id\": 7, \"max_streams\": 1.5}]", "max_streams: expected an integer >= 0, got 1.5"},
    {"[{\"id\": 7, \"max_streams\": 1, \"is_active\": \"yes\"}]",
     "[0].is_active: expected true or false"},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": {}}]",
     "[0] (account 7).profiles: expected an array, got an object"},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": [3]}]",
     "[0] (account 7).profiles[0]: expected a profile object"},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": [{\"is_active\": true}]}]",
     "[0] (account 7).profiles[0].max_streams: expected an integer >= 0, got nothing"},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": [{\"max_streams\": null}]}]",
     "profiles[0].max_streams: expected an integer >= 0, got null"},
    {"[{\"id\": 7, \"max_streams\": 1, \"profiles\": [{\"max_streams\": 1, \"is_active\": 1}]}]",
     "profiles[0].is_active: expected true or false, got 1"},
    {"[{\"id\": 7, \"max_streams\": 1, \"name\": 5}]", "(account 7).name: expected a string"},
    {"[{\"id\": 1, \"max_streams\": 1}, {\"id\": 2, \"max_streams\": \"x\"}]",
     "[1] (account 2).max_streams"},
    {"[] []", "not valid JSON"},
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
    size_t n = 99;
    char err[256] = "";
    int rc =
        sfl_dispatcharr_limits_from_json(c->json, strlen(c->json), &accs, &n, err, sizeof(err));
    cr_assert_eq(rc, -1, "accepted %s", c->json);
    cr_assert_null(accs);
    cr_assert_eq(n, 0);
    cr_assert(strstr(err, c->err), "%s: message \"%s\" lacks \"%s\"", c->json, err, c->err);
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

Test(dispatcharr_client, https_is_refused_and_says_why)
{
    char err[512] = "";
    cr_assert_null(client_for("https://d.example", "u", "pw-secret", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "https:// is not supported"), "%s", err);
    cr_assert(strstr(err, "libevent_openssl"), "%s", err);
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
