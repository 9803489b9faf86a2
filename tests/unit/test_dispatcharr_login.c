/* test_dispatcharr_login.c - which provider login a Dispatcharr profile is:
 * the account's own for the identity rewrite, the rewritten made-up XC URL
 * read back (as Python's re.sub and Dispatcharr's credentials.py would),
 * nothing for what is not worked out. */
#include "dispatcharr_login.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

/* Arrays, not pointers: Criterion may run a case in a fresh process. "-"
 * stands for NULL in the inputs; the result is "host|user|pass", "-" for
 * each field not known. */
struct login_case {
    char what[80];
    char url[48], user[24], pass[24];
    int xc;
    char search[40], replace[24];
    char want[64];
};

/* clang-format off */
static struct login_case login_cases[] = {
    {"identity: the account's own, normalized", "http://Bob:x@P.Example:8080/get.php", " Bob ",
     " pw ", 1, "^(.*)$", "$1", "p.example|bob|pw"},
    {"no search is the identity", "http://p.example", "u", "pw", 0, "-", "-", "p.example|u|pw"},
    {"an empty search is the identity", "p.example:80", "u", "-", 1, "", "", "p.example|u|-"},
    {"a bracketed IPv6 host keeps its brackets", "http://[::1]:9000/", "u", "pw", 1, "-", "-",
     "[::1]|u|pw"},
    {"a plain swap of user and password", "http://p.example/", "u", "pw", 1, "/u/pw/",
     "/v/pw2/", "p.example|v|pw2"},
    {"matches do not overlap, left to right", "http://p.example", "aaa", "pw", 1, "aa", "b",
     "p.example|ba|pw"},
    {"'.' is any character", "http://p.example", "u_1", "pw", 1, "u.1", "z", "p.example|z|pw"},
    {"escaped punctuation is that character", "http://p.example", "u", "pw", 1, "\\/u\\/",
     "/w/", "p.example|w|pw"},
    {"a rewrite may change the host", "http://p.example", "u", "pw", 1, "p.example",
     "q.example:81", "q.example|u|pw"},
    {"no match: the URL as it was", "http://p.example", "u", "pw", 1, "/nobody/", "/x/",
     "p.example|u|pw"},
    {"a literal that is not ASCII", "http://p.example", "j\xc3\xb6hn", "pw", 1, "j\xc3\xb6hn",
     "jane", "p.example|jane|pw"},
    {"a '.' facing a byte that is not ASCII is not worked out", "http://p.example",
     "j\xc3\xb6hn", "pw", 1, "j.hn", "jane", "-|-|-"},
    {"groups are worked out", "http://p.example", "u", "pw", 1, "^(.*)/u/(.*)$", "$1/v/$2",
     "p.example|v|pw"},
    {"a class escape is worked out", "http://p.example", "u1", "pw", 1, "u\\d", "v",
     "p.example|v|pw"},
    {"a class past ASCII is not worked out", "http://p.example", "j\xc3\xb6", "pw", 1, "[a-z]",
     "v", "-|-|-"},
    {"a search rewrite.c refuses gives no login", "http://p.example", "u", "pw", 1, "u(?=/)",
     "v", "-|-|-"},
    {"a $ not before a digit is that character", "http://p.example", "u", "pw", 1, "/u/",
     "/$/", "p.example|$|pw"},
    {"two backslashes in the replacement are one", "http://p.example", "u", "pw", 1,
     "/u/", "/\\\\/", "p.example|\\|pw"},
    {"an STD account's rewrite is not worked out", "http://p.example", "u", "pw", 0, "/u/",
     "/v/", "-|-|-"},
    {"a rewrite without the password is not worked out", "http://p.example", "u", "-", 1, "/u/",
     "/v/", "-|-|-"},
    {"a rewritten URL not shaped .../live/USER/PASS/1234.ts is not read", "http://p.example",
     "u", "pw", 1, "/live/", "/", "-|-|-"},
    {"a rewritten URL that lost 1234.ts is not read", "http://p.example", "u", "pw", 1,
     "1234.ts", "1.ts", "-|-|-"},
};
/* clang-format on */

ParameterizedTestParameters(dispatcharr_login, login_of)
{
    return cr_make_param_array(struct login_case, login_cases,
                               sizeof(login_cases) / sizeof(login_cases[0]));
}

static const char *arg(const char *s)
{
    return strcmp(s, "-") ? s : NULL;
}

static const char *field(const char *s)
{
    return s ? s : "-";
}

ParameterizedTest(struct login_case *c, dispatcharr_login, login_of)
{
    sfl_dispatcharr_login l;
    cr_assert_eq(sfl_dispatcharr_login_of(arg(c->url), arg(c->user), arg(c->pass), c->xc,
                                          arg(c->search), arg(c->replace), &l),
                 0);
    char got[128];
    snprintf(got, sizeof(got), "%s|%s|%s", field(l.host), field(l.user), field(l.pass));
    cr_expect_str_eq(got, c->want, "%s", c->what);
    sfl_dispatcharr_login_clear(&l);
    cr_expect_null(l.host);
}

Test(dispatcharr_login, identity)
{
    cr_expect(sfl_dispatcharr_is_identity(NULL, NULL));
    cr_expect(sfl_dispatcharr_is_identity("", "x"));
    cr_expect(sfl_dispatcharr_is_identity("^(.*)$", "$1"));
    cr_expect_not(sfl_dispatcharr_is_identity("^(.*)$", "$1x"));
    cr_expect_not(sfl_dispatcharr_is_identity("^(.*)$", NULL));
    cr_expect_not(sfl_dispatcharr_is_identity("a", "a"));
    sfl_dispatcharr_login_clear(NULL);
}
