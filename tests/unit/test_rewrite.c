/* test_rewrite.c - rewrite.c: a stream URL rewritten as Dispatcharr's
 * profiles do it (re.sub with $N turned into \N). Every expected URL in the
 * table was checked against Python's re.sub and the regex module's (the one
 * Dispatcharr calls), with Dispatcharr's $N -> \N conversion; every refusal
 * names the construct and its byte offset. */
#include "rewrite.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a loop in apply that never ends fails in 30 s */
TestSuite(rewrite, .timeout = 30);

#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

/* search, replace and url through sfl_rewrite; the result, malloc'd */
static char *rewrite(const char *search, const char *replace, const char *url)
{
    char err[256] = "";
    sfl_rewrite *rw = sfl_rewrite_new(search, replace, err, sizeof(err));
    cr_assert_not_null(rw, "\"%s\" -> \"%s\" refused: %s", search, replace, err);
    char *out = sfl_rewrite_apply(rw, url);
    cr_assert_not_null(out);
    sfl_rewrite_free(rw);
    return out;
}

/*--- Rewrites --------------------------------------------------------------*/

struct apply_case {
    const char *search, *replace, *url;
    const char *want; /* Python's re.sub (and regex.sub) */
};

/* clang-format off */
static const struct apply_case applies[] = {
    /* Dispatcharr's default profile: the identity */
    {"^(.*)$", "$1", "http://p.example:8080/live/u1/p1/123.ts", "http://p.example:8080/live/u1/p1/123.ts"},
    /* XC logins: a path swapped, with groups, with \d */
    {"/live/user1/pass1/", "/live/user2/pass2/", "http://p.example/live/user1/pass1/42.ts", "http://p.example/live/user2/pass2/42.ts"},
    {"(.*)/live/[^/]+/[^/]+/(.*)", "$1/live/u2/p2/$2", "http://p.example/live/u1/p1/42.ts", "http://p.example/live/u2/p2/42.ts"},
    {"/(\\d+)\\.ts$", "/$1.m3u8", "http://h/live/u/p/123.ts", "http://h/live/u/p/123.m3u8"},
    {"^(https?://[^/]+)/(live/)?user1/pass1/(\\d+)", "$1/$2user2/pass2/$3", "http://h:80/user1/pass1/7.ts", "http://h:80/user2/pass2/7.ts"},
    {"^(https?://[^/]+)/(live/)?user1/pass1/(\\d+)", "$1/$2user2/pass2/$3", "http://h:80/live/user1/pass1/7.ts", "http://h:80/live/user2/pass2/7.ts"},
    {"^http://([\\d.]+):(\\d+)/", "http://10.0.0.9:$2/", "http://192.168.1.2:8080/live/a", "http://10.0.0.9:8080/live/a"},
    {"^(?:https?)://([^/]+)/(?:live|movie)/([^/]+)/", "http://$1/live/$2x/", "https://h.example/movie/u1/9.mkv", "http://h.example/live/u1x/9.mkv"},
    /* (?:...) is counted by ERE, not by Python: $1 and $2 still name (a) and (c) */
    {"(?:(a)|b)(c)", "[$1|$2]", "bc ac", "[|c] [a|c]"},
    /* $12 is group 12; $109 is group 10 and a 9 (Python reads two digits) */
    {"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)", "$12$1", "abcdefghijkl", "la"},
    {"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)", "$109$1", "abcdefghijkl", "j9a"},
    {"(\\w+)@", "\\1#", "user@host", "user#host"},
    /* no match: the URL as it was; every match, left to right */
    {"/live/nobody/", "/x/", "http://h/live/u/p/1.ts", "http://h/live/u/p/1.ts"},
    {"pass1", "pass2", "http://h/pass1/pass1/x", "http://h/pass2/pass2/x"},
    /* empty matches, as re.sub since Python 3.7 (one right after a match, none twice) */
    {"x*", "-", "abc", "-a-b-c-"},
    {"x*", "-", "abxd", "-a-b--d-"},
    {"(.*)", "[$1]", "abc", "[abc][]"},
    {"", "-", "ab", "-a-b-"},
    {"x*", "-", "", "-"},
    /* anchors: ^ only at the start, also for the matches after the first */
    {"^h", "H", "hah", "Hah"},
    {"h$", "H", "hah", "haH"},
    {"^a", "b", "aaa", "baa"},
    {"\\.ts$", ".m3u8", "a.ts.ts", "a.ts.m3u8"},
    /* escaped punctuation is the character */
    {"\\?token=\\w+", "", "http://h/a.ts?token=abc_1", "http://h/a.ts"},
    {"\\/live\\/", "/x/", "http://h/live/1", "http://h/x/1"},
    {"a\\-b", "X", "a-b", "X"},
    {"a\\\\b", "X", "a\\b", "X"},
    {"\\(\\)\\[\\]\\{\\}\\|\\^\\$\\*\\+\\?\\.", "ok", "x()[]{}|^$*+?.y", "xoky"},
    /* [...] rebuilt from its members: ] first, ^ never first, - and [ last */
    {"[\\]]", "_", "a]b", "a_b"},
    {"[\\-]", "_", "a-b", "a_b"},
    {"[a\\-z]", "_", "a-mz", "__m_"},
    {"[]a]", "_", "]ab", "__b"},
    {"[^/]+$", "X", "http://h/a/b.ts", "http://h/a/X"},
    {"[\\^-]", "_", "a^-b", "a__b"},
    {"[\\^]", "_", "a^b", "a_b"},
    {"[[:]", "_", "a[:b", "a__b"},
    {"[\\[\\]^\\\\]", "_", "[a]^\\", "_a___"},
    {"[\\w.-]+@", "", "my.name-x_1@h", "h"},
    /* . is anything but a newline; {m,n}, {,n}, and { that is no quantifier */
    {"a.c", "X", "a\nc abc", "a\nc X"},
    {"\\d{2,3}", "N", "1 12 1234", "1 N N4"},
    {"a{,2}", "-", "aaa", "---"},
    {"a{2}", "-", "aaa", "-a"},
    {"a{x}", "-", "a{x}", "-"},
    {"x{}", "-", "x{}", "-"},
    /* classes and alternatives */
    {"\\s+", "_", "a  b\tc", "a_b_c"},
    {"\\S+", "_", "a  b\tc", "_  _\t_"},
    {"\\D+", "", "ab12cd3", "123"},
    {"\\W", "", "a-b.c", "abc"},
    {"live|movie", "X", "/live/movie/", "/X/X/"},
    /* replace: \\\\ is a backslash; $$, ${1} and $<> are literal (Dispatcharr converts neither) */
    {"a", "\\\\$$x", "a", "\\$$x"},
    {"(a)", "${1}", "a", "${1}"},
    {"(a)", "$<>$", "a", "$<>$"},
    /* UTF-8: an empty match steps over a whole character; a literal and a group of one */
    {"^(.*)$", "$1", "http://h/caf\xc3\xa9.ts", "http://h/caf\xc3\xa9.ts"},
    {"x*", "-", "\xc3\xa9", "-\xc3\xa9-"},
    {"\xc3\xa9", "e", "caf\xc3\xa9", "cafe"},
    {"(?:\xc3\xa9)+", "e", "caf\xc3\xa9\xc3\xa9", "cafe"},
};
/* clang-format on */

ParameterizedTestParameters(rewrite, apply)
{
    INDEX_PARAMS(applies);
}

ParameterizedTest(size_t *i, rewrite, apply)
{
    const struct apply_case *tc = &applies[*i];
    char *out = rewrite(tc->search, tc->replace, tc->url);
    cr_assert_str_eq(out, tc->want, "row %zu: \"%s\" -> \"%s\"", *i, tc->search, tc->replace);
    free(out);
}

/*--- Refusals --------------------------------------------------------------*/

struct refuse_case {
    const char *search, *replace;
    const char *why; /* sfl_rewrite_new's message */
};

/* clang-format off */
static const struct refuse_case refusals[] = {
    {"(.*?)", "$1", "search: lazy quantifier \"*?\" at byte 2"},
    {"a+?", "", "search: lazy quantifier \"+?\" at byte 1"},
    {"a??", "", "search: lazy quantifier \"??\" at byte 1"},
    {"a{1,2}?", "", "search: lazy quantifier \"}?\" at byte 5"},
    {"a*+", "", "search: possessive quantifier \"*+\" at byte 1"},
    {"a**", "", "search: multiple repeat \"*\" at byte 2"},
    {"*a", "", "search: nothing to repeat \"*\" at byte 0"},
    {"x(?=y)", "", "search: lookahead \"(?=\" at byte 1"},
    {"x(?!y)", "", "search: negative lookahead \"(?!\" at byte 1"},
    {"(?<=x)y", "", "search: lookbehind \"(?<=\" at byte 0"},
    {"(?<!x)y", "", "search: negative lookbehind \"(?<!\" at byte 0"},
    {"(?P<user>\\w+)", "", "search: named group \"(?P<\" at byte 0"},
    {"(?<user>\\w+)", "", "search: named group \"(?<\" at byte 0"},
    {"(?P<u>a)(?P=u)", "", "search: named group \"(?P<\" at byte 0"},
    {"(?i)live", "", "search: inline flag or group extension \"(?i\" at byte 0"},
    {"(?#note)x", "", "search: comment \"(?#\" at byte 0"},
    {"(a)\\1", "", "search: backreference \"\\1\" at byte 3"},
    {"\\bx", "", "search: word boundary \"\\b\" at byte 0"},
    {"x\\B", "", "search: word boundary \"\\B\" at byte 1"},
    {"\\Ahttp", "", "search: string anchor \"\\A\" at byte 0"},
    {"ts\\Z", "", "search: string anchor \"\\Z\" at byte 2"},
    {"a\\nb", "", "search: escape \"\\n\" at byte 1"},
    {"\\x41", "", "search: escape \"\\x\" at byte 0"},
    {"a\\", "", "search: trailing backslash \"\\\" at byte 1"},
    {"[\\D]", "", "search: negated class in [...] \"\\D\" at byte 1"},
    {"[a\\n]", "", "search: escape \"\\n\" at byte 2"},
    {"[z-a]", "", "search: bad range \"z-a\" at byte 1"},
    {"[\\d-z]", "", "search: bad range \"\\d-z\" at byte 1"},
    {"[a-\\w]", "", "search: bad range \"a-\\w\" at byte 1"},
    {"x[ab", "", "search: unterminated [ \"[\" at byte 1"},
    {"(a", "", "search: missing \")\" at byte 2 (the end)"},
    {"a)", "", "search: unbalanced parenthesis \")\" at byte 1"},
    /* glibc matches these unlike Python (or not at all): refused */
    {"(?:^a)+", "", "search: ^ or $ repeated by \"+\" at byte 6"},
    {"(a|b$)?c", "", "search: ^ or $ repeated by \"?\" at byte 6"},
    {"x((?:^a)b)*", "", "search: ^ or $ repeated by \"*\" at byte 10"},
    {"/(\\w+/)+", "$1", "search: capturing group repeated by \"+\" at byte 7"},
    {"(1?){2}", "", "search: capturing group repeated by \"{\" at byte 4"},
    {"(?:(\\w)/)*", "$1", "search: capturing group repeated by \"*\" at byte 9"},
    {"caf\xc3\xa9+", "", "search: quantifier after a non-ASCII character \"+\" at byte 5"},
    {"[\xc3\xa9]", "", "search: non-ASCII character in [...] \"\xc3\" at byte 1"},
    /* replace: a group search does not have, $0, octal, escapes, names */
    {"(a)", "$2", "replace: \"$2\" at byte 0 names group 2; search has 1"},
    {"(a)(?:b)", "x\\2", "replace: \"\\2\" at byte 1 names group 2; search has 1"},
    {"(a)", "$12", "replace: \"$12\" at byte 0 names group 12; search has 1"},
    {"a", "$1", "replace: \"$1\" at byte 0 names group 1; search has 0"},
    {"(a)", "$0", "replace: \"$0\" at byte 0 is an octal character to Python, not a group"},
    {"(a)", "x\\0", "replace: \"\\0\" at byte 1 is an octal character to Python, not a group"},
    {"(a)", "$123", "replace: \"$123\" at byte 0 is an octal character to Python, not a group"},
    {"(a)", "\\n", "replace: escape \"\\n\" at byte 0 is not supported"},
    {"(a)", "\\g<1>", "replace: escape \"\\g\" at byte 0 is not supported"},
    {"(a)", "\\$1", "replace: escape \"\\$\" at byte 0 is not supported"},
    {"(a)", "a\\", "replace: escape \"\\\" at byte 1 is not supported"},
    {"(a)", "$<user>", "replace: named group \"$<\" at byte 0 is not supported"},
};
/* clang-format on */

ParameterizedTestParameters(rewrite, refuse)
{
    INDEX_PARAMS(refusals);
}

ParameterizedTest(size_t *i, rewrite, refuse)
{
    const struct refuse_case *tc = &refusals[*i];
    char err[256] = "";
    sfl_rewrite *rw = sfl_rewrite_new(tc->search, tc->replace, err, sizeof(err));
    cr_assert_null(rw, "row %zu: \"%s\" -> \"%s\" accepted", *i, tc->search, tc->replace);
    cr_assert_str_eq(err, tc->why, "row %zu", *i);
    /* without room for a message it is refused all the same */
    cr_assert_null(sfl_rewrite_new(tc->search, tc->replace, NULL, 0));
}

Test(rewrite, counts_that_posix_cannot_take_are_refused_by_regcomp)
{
    char err[256] = "";
    cr_assert_null(sfl_rewrite_new("a{3,2}", "", err, sizeof(err)));
    cr_assert_eq(strncmp(err, "search: regcomp refused its POSIX translation: ", 47), 0, "%s", err);
}

/*--- Long URLs -------------------------------------------------------------*/

Test(rewrite, long_urls)
{
    /* 200 KB: far past any real URL and past every buffer's first size */
    size_t n = 200000;
    char *url = malloc(n + 1), *want = malloc(n + 1);
    cr_assert(url && want);
    memset(url, 'a', n);
    memcpy(url, "http://h/live/user1/pass1/", 26);
    memcpy(url + n - 3, ".ts", 3);
    url[n] = '\0';
    memcpy(want, url, n + 1);
    memcpy(want + 14, "user2/pass2/", 12);

    char *out = rewrite("^(.*)$", "$1", url);
    cr_assert_eq(strlen(out), n);
    cr_assert(strcmp(out, url) == 0, "identity changed a long URL");
    free(out);

    out = rewrite("(.*)/live/[^/]+/[^/]+/(.*)", "$1/live/user2/pass2/$2", url);
    cr_assert(strcmp(out, want) == 0, "path swap in a long URL");
    free(out);

    /* an empty match at each of 2001 places: a '-' before every byte and at the end */
    url[2000] = '\0';
    out = rewrite("x*", "-", url);
    cr_assert_eq(strlen(out), 4001);
    for (size_t k = 0; k < 2000; k++)
        cr_assert(out[2 * k] == '-' && out[2 * k + 1] == url[k], "at %zu", k);
    cr_assert_eq(out[4000], '-');
    free(out);
    free(url);
    free(want);
}

Test(rewrite, one_rewrite_many_urls_and_free_null)
{
    char err[256] = "";
    sfl_rewrite *rw = sfl_rewrite_new("/live/[^/]+/[^/]+/", "/live/u2/p2/", err, sizeof(err));
    cr_assert_not_null(rw, "%s", err);
    for (int k = 0; k < 3; k++) {
        char url[64], want[64];
        snprintf(url, sizeof(url), "http://h/live/u%d/p%d/%d.ts", k, k, k);
        snprintf(want, sizeof(want), "http://h/live/u2/p2/%d.ts", k);
        char *out = sfl_rewrite_apply(rw, url);
        cr_assert_str_eq(out, want);
        free(out);
    }
    sfl_rewrite_free(rw);
    sfl_rewrite_free(NULL);
}
