/* test_text.c - text.c: what is a control character and what is valid
 * UTF-8 (the check that refuses names), the escape that makes a name safe
 * to print, and the U+FFFD replacement that keeps JSON answers UTF-8. */
#include "text.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

TestSuite(text);

#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

/*--- Checking and escaping -------------------------------------------------*/

struct text_case {
    const char *in;
    const char *why;     /* sfl_text_check's message; NULL: accepted */
    const char *escaped; /* sfl_text_escape_dup's result */
};

/* clang-format off */
static const struct text_case cases[] = {
    {"", NULL, ""},
    {"My provider", NULL, "My provider"},
    {"Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xba", NULL, "Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xba"},
    {"back\\slash", NULL, "back\\slash"},
    {"\x1b[31mred", "contains a control character (U+001B at byte 0)", "\\x1b[31mred"},
    {"bell\x07", "contains a control character (U+0007 at byte 4)", "bell\\x07"},
    {"a\r\nb", "contains a control character (U+000D at byte 1)", "a\\x0d\\x0ab"},
    {"tab\there", "contains a control character (U+0009 at byte 3)", "tab\\x09here"},
    {"del\x7f", "contains a control character (U+007F at byte 3)", "del\\x7f"},
    /* C1: U+009B is a CSI to terminals that take 8-bit controls */
    {"c1\xc2\x9b" "2J", "contains a control character (U+009B at byte 2)", "c1\\u009b2J"},
    {"\xc2\xa0nbsp", NULL, "\xc2\xa0nbsp"}, /* U+00A0 is not a control */
    {"bad\xff\xfe", "is not valid UTF-8 (byte 0xFF at 3)", "bad\\xff\\xfe"},
    {"\xc0\xaf", "is not valid UTF-8 (byte 0xC0 at 0)", "\\xc0\\xaf"},         /* overlong '/' */
    {"\xed\xa0\x80", "is not valid UTF-8 (byte 0xED at 0)", "\\xed\\xa0\\x80"}, /* surrogate */
    {"\xf4\x90\x80\x80", "is not valid UTF-8 (byte 0xF4 at 0)", "\\xf4\\x90\\x80\\x80"},
    {"cut\xe2\x82", "is not valid UTF-8 (byte 0xE2 at 3)", "cut\\xe2\\x82"},
};
/* clang-format on */

ParameterizedTestParameters(text, check_and_escape)
{
    INDEX_PARAMS(cases);
}

ParameterizedTest(size_t *i, text, check_and_escape)
{
    const struct text_case *tc = &cases[*i];
    char why[128] = "";
    int rc = sfl_text_check(tc->in, why, sizeof(why));
    if (tc->why) {
        cr_assert_eq(rc, -1, "row %zu accepted", *i);
        cr_assert_str_eq(why, tc->why, "row %zu", *i);
    } else {
        cr_assert_eq(rc, 0, "row %zu refused: %s", *i, why);
    }
    char *esc = sfl_text_escape_dup(tc->in);
    cr_assert_not_null(esc);
    cr_assert_str_eq(esc, tc->escaped, "row %zu", *i);
    cr_assert_eq(sfl_text_check(esc, NULL, 0), 0, "row %zu: the escape is not printable", *i);
    free(esc);
}

Test(text, escape_never_cuts_a_character_or_an_escape)
{
    char buf[6];
    /* "ab" + \x1b (4) does not fit in 5: the escape is left out whole */
    cr_assert_eq(sfl_text_escape("ab\x1b", buf, sizeof(buf)), 2);
    cr_assert_str_eq(buf, "ab");
    /* "abcd" + a 2-byte character does not fit either */
    cr_assert_eq(sfl_text_escape("abcd\xc3\xa9", buf, sizeof(buf)), 4);
    cr_assert_str_eq(buf, "abcd");
    cr_assert_eq(sfl_text_escape("abc\xc3\xa9", buf, sizeof(buf)), 5);
    cr_assert_str_eq(buf, "abc\xc3\xa9");
    cr_assert_eq(sfl_text_escape(NULL, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(sfl_text_check(NULL, NULL, 0), 0);
    cr_assert_null(sfl_text_escape_dup(NULL));
}

/*--- JSON answers ----------------------------------------------------------*/

Test(text, utf8_valid_replaces_bad_bytes_and_keeps_json)
{
    const char in[] = "{\"error\":\"no route /\xff\xfe\",\"ok\":\"\xc3\xa9\xe2\x82\"}";
    size_t n = 0;
    char *out = sfl_text_utf8_valid(in, sizeof(in) - 1, &n);
    cr_assert_not_null(out);
    cr_assert_str_eq(out, "{\"error\":\"no route /\xef\xbf\xbd\xef\xbf\xbd\",\"ok\":\"\xc3\xa9"
                          "\xef\xbf\xbd\xef\xbf\xbd\"}");
    cr_assert_eq(n, strlen(out));
    cr_assert_eq(sfl_text_check(out, NULL, 0), 0);
    cJSON *doc = cJSON_Parse(out);
    cr_assert_not_null(doc, "not JSON any more: %s", out);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "error")->valuestring,
                     "no route /\xef\xbf\xbd\xef\xbf\xbd");
    cJSON_Delete(doc);
    free(out);

    /* Valid text comes back as it was, NULs included. */
    const char ok[] = "a\0\xc3\xa9";
    out = sfl_text_utf8_valid(ok, sizeof(ok) - 1, &n);
    cr_assert_eq(n, sizeof(ok) - 1);
    cr_assert_eq(memcmp(out, ok, n), 0);
    free(out);
}
