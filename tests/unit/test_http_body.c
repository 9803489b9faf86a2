/* test_http_body.c - the request body parsers of the HTTP API (http_body.h):
 * what POST /v1/leases, PUT /v1/accounts/{id} and POST /v1/checks take,
 * and the 400 message for what they refuse. The routes themselves run in
 * tests/integration/test_http.c. */
#include "http_body.h"
#include "streams.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

TestSuite(http_body);

/* Criterion passes a parameter to the test's process as bytes: pass the row
 * index and read the static table. */
#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

/*--- POST /v1/leases ---*/

struct lease_case {
    const char *body;
    const char *want; /* "account|wait_ms|label", or the start of the message */
    int ok;
};

static const struct lease_case lease_cases[] = {
    {"{\"account\": 3}", "3|30000|sidecar", 1},
    {"{\"account\": 0, \"wait_ms\": 0, \"label\": \"\"}", "0|0|", 1},
    {"{\"label\": \"rec\", \"wait_ms\": 3600000, \"account\": 999999999999999}",
     "999999999999999|3600000|rec", 1},
    {" {\"account\": 7.0} \n", "7|30000|sidecar", 1},
    {"", "body: empty, expected a JSON object", 0},
    {"[5]", "body: expected a JSON object", 0},
    {"{\"account\": 5, \"wait_ms\": ", "body: not valid JSON", 0},
    {"{\"account\": 5} {}", "body: not valid JSON", 0},
    {"{\"account\": 5}}", "body: not valid JSON", 0},
    {"{\"wait_ms\": 100}", "account: required", 0},
    {"{\"account\": -1}", "account: expected an integer from 0 to 999999999999999", 0},
    {"{\"account\": 1e15}", "account: expected an integer from 0 to 999999999999999", 0},
    {"{\"account\": 5.5}", "account: expected an integer", 0},
    {"{\"account\": \"5\"}", "account: expected an integer", 0},
    {"{\"account\": 5, \"wait_ms\": 3600001}", "wait_ms: expected an integer from 0 to 3600000", 0},
    {"{\"account\": 5, \"bogus\": 1}", "bogus: unknown field", 0},
    {"{\"account\": 5, \"account\": 6}", "account: given twice", 0},
    {"{\"account\": 5, \"label\": 5}", "label: expected a string of at most 100 characters", 0},
    {"{\"account\": 5, \"label\": null}", "label: expected a string", 0},
};

ParameterizedTestParameters(http_body, lease_body)
{
    INDEX_PARAMS(lease_cases);
}

ParameterizedTest(size_t *i, http_body, lease_body)
{
    const struct lease_case *c = &lease_cases[*i];
    sfl_http_lease_ask a;
    char err[256] = "", got[256];
    int rc = sfl_http_parse_lease_body(c->body, strlen(c->body), &a, err, sizeof(err));
    if (c->ok) {
        cr_assert_eq(rc, 0, "%s: refused: %s", c->body, err);
        snprintf(got, sizeof(got), "%lld|%lld|%s", a.account, a.wait_ms, a.label);
        cr_expect_str_eq(got, c->want, "%s", c->body);
    } else {
        cr_assert_eq(rc, -1, "%s: accepted", c->body);
        cr_expect_eq(strncmp(err, c->want, strlen(c->want)), 0, "%s: \"%s\", want \"%s...\"",
                     c->body, err, c->want);
    }
}

Test(http_body, lease_label_length)
{
    char body[300], err[256];
    sfl_http_lease_ask a;
    char label[102];
    memset(label, 'l', sizeof(label) - 1);
    label[101] = '\0';
    snprintf(body, sizeof(body), "{\"account\": 1, \"label\": \"%s\"}", label);
    cr_expect_eq(sfl_http_parse_lease_body(body, strlen(body), &a, err, sizeof(err)), -1);
    label[100] = '\0';
    snprintf(body, sizeof(body), "{\"account\": 1, \"label\": \"%s\"}", label);
    cr_assert_eq(sfl_http_parse_lease_body(body, strlen(body), &a, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(a.label, label);
}

/*--- PUT /v1/accounts/{id} ---*/

struct account_case {
    const char *body;
    const char *want; /* "max_streams|has_name|name", or the start of the message */
    int ok;
};

static const struct account_case account_cases[] = {
    {"{\"max_streams\": 2, \"name\": \"My provider\"}", "2|1|My provider", 1},
    {"{\"max_streams\": 0}", "0|0|", 1},
    {"{\"name\": null, \"max_streams\": 1000000}", "1000000|0|", 1},
    {"{\"max_streams\": 3, \"name\": \"\"}", "3|1|", 1},
    {"{}", "max_streams: required (0 = unlimited)", 0},
    {"{\"name\": \"X\"}", "max_streams: required", 0},
    {"{\"max_streams\": -1}", "max_streams: expected an integer from 0 to 1000000", 0},
    {"{\"max_streams\": \"3\"}", "max_streams: expected an integer", 0},
    {"{\"max_streams\": 3, \"name\": 7}", "name: expected a string", 0},
    {"{\"max_streams\": 3, \"name\": \"Caf\u00e9 \\u20ac\"}", "3|1|Caf\u00e9 \u20ac", 1},
    {"{\"max_streams\": 3, \"name\": \"\\u001b[31mred\"}",
     "name: contains a control character (U+001B at byte 0)", 0},
    {"{\"max_streams\": 3, \"name\": \"bell\\u0007\"}",
     "name: contains a control character (U+0007 at byte 4)", 0},
    {"{\"max_streams\": 3, \"name\": \"a\\r\\nb\"}",
     "name: contains a control character (U+000D at byte 1)", 0},
    {"{\"max_streams\": 3, \"name\": \"x\xff\xfe\"}", "name: is not valid UTF-8 (byte 0xFF at 1)",
     0},
    {"{\"max_streams\": 3, \"limit\": 7}", "limit: unknown field", 0},
    {"{\"max_streams\": 3, \"max_streams\": 4}", "max_streams: given twice", 0},
    {"{\"max_streams\": 3,", "body: not valid JSON", 0},
    {"3", "body: expected a JSON object", 0},
};

ParameterizedTestParameters(http_body, account_body)
{
    INDEX_PARAMS(account_cases);
}

ParameterizedTest(size_t *i, http_body, account_body)
{
    const struct account_case *c = &account_cases[*i];
    sfl_http_account_put a;
    char err[256] = "", got[300];
    int rc = sfl_http_parse_account_body(c->body, strlen(c->body), &a, err, sizeof(err));
    if (c->ok) {
        cr_assert_eq(rc, 0, "%s: refused: %s", c->body, err);
        snprintf(got, sizeof(got), "%lld|%d|%s", a.max_streams, a.has_name, a.name);
        cr_expect_str_eq(got, c->want, "%s", c->body);
    } else {
        cr_assert_eq(rc, -1, "%s: accepted", c->body);
        cr_expect_eq(strncmp(err, c->want, strlen(c->want)), 0, "%s: \"%s\", want \"%s...\"",
                     c->body, err, c->want);
    }
}

Test(http_body, account_name_length)
{
    char body[400], name[202], err[256];
    sfl_http_account_put a;
    memset(name, 'n', sizeof(name) - 1);
    name[201] = '\0';
    snprintf(body, sizeof(body), "{\"max_streams\": 1, \"name\": \"%s\"}", name);
    cr_expect_eq(sfl_http_parse_account_body(body, strlen(body), &a, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "name: longer than 200 characters");
    name[200] = '\0';
    snprintf(body, sizeof(body), "{\"max_streams\": 1, \"name\": \"%s\"}", name);
    cr_assert_eq(sfl_http_parse_account_body(body, strlen(body), &a, err, sizeof(err)), 0, "%s",
                 err);
    cr_expect_str_eq(a.name, name);
}

/*--- POST /v1/checks ---*/

Test(http_body, checks_body)
{
    char err[512] = "";
    char *const schemes[] = {"http", "udp"};
    const char *ok = "{\"streams\": [{\"id\": 1, \"url\": \"UDP://@239.0.0.1:1\", \"m3u_account\": "
                     "2}]}";
    sfl_streams *s = sfl_http_parse_checks_body(ok, strlen(ok), schemes, 2, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_expect_eq(s->n, 1);
    cr_expect_eq(s->v[0].account, 2);
    sfl_streams_free(s);

    cr_expect_null(sfl_http_parse_checks_body("[]", 2, schemes, 2, err, sizeof(err)));
    cr_expect_str_eq(err, "body: no streams");
    const char *bad = "[{\"id\": \"one\", \"url\": \"u\"}]";
    cr_expect_null(sfl_http_parse_checks_body(bad, strlen(bad), schemes, 2, err, sizeof(err)));
    cr_expect_str_eq(err, "body: [0].id: expected an integer, got \"one\"");
    /* What a check may open: refused as bad input, naming the element. */
    const char *refused[][2] = {
        {"[{\"id\": 5, \"url\": \"http://p/1\"}, {\"id\": 6, \"url\": \"file:///etc/passwd\"}]",
         "body: [1].url (stream 6): scheme \"file\" is not allowed (check.schemes: http, udp)"},
        {"[{\"id\": 5, \"url\": \"-\"}]",
         "body: [0].url (stream 5): has no scheme:// in front (check.schemes: http, udp)"},
        {"{\"streams\": [{\"id\": 5, \"url\": \"pipe:0\"}]}",
         "body: streams[0].url (stream 5): has no scheme:// in front (check.schemes: http, udp)"},
        {"[{\"id\": 5, \"url\": \"FILE:///x\"}]",
         "body: [0].url (stream 5): scheme \"FILE\" is not allowed (check.schemes: http, udp)"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        cr_expect_null(sfl_http_parse_checks_body(refused[i][0], strlen(refused[i][0]), schemes, 2,
                                                  err, sizeof(err)));
        cr_expect_str_eq(err, refused[i][1]);
    }
}
