/* test_json.c - json.c on its own: the strict parse and its messages, the
 * bounded file reader, the "got ..." describer, and the typed member
 * getters (absent leaves the value alone, a wrong type names the path). */
#include "json.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(json);

/* Criterion hands a parameter to the test's process as bytes, so pointers in
 * it (our string literals) would dangle there: pass the row index instead
 * and read the row from the table, which every process has. */
#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

/*--- Parsing ---*/

struct parse_case {
    const char *text;
    const char *error; /* the whole message; NULL: must parse */
};

static const struct parse_case parse_cases[] = {
    {"{\"a\": [1, 2, {\"b\": null}]}", NULL},
    {" \t\r\n[] \n", NULL},
    {"\"just a string\"", NULL},
    {"", "in.json: not valid JSON: the text is empty"},
    /* cJSON puts the error of a text cut short on its last byte */
    {"{\"a\": ", "in.json: not valid JSON near line 1, column 6 (byte 5)"},
    {"{\n  \"a\": 1,\n  x\n}", "in.json: not valid JSON near line 3, column 4 (byte 15)"},
    {"{} {}", "in.json: not valid JSON: unexpected text after the value at line 1, column 4 "
              "(byte 3)"},
    {"[1,\x01 2]", "in.json: not valid JSON: control byte 0x01 at line 1, column 4 (byte 3)"},
    {"\"a\x7f\"", NULL}, /* DEL is not a control byte to JSON */
    {"[\"a\\u0000b\"]", "in.json: a string holds \\u0000 (NUL), which is refused, at line 1, "
                        "column 4 (byte 3)"},
    {"[\"a\\\\u0000b\"]", NULL}, /* an escaped backslash, then text */
    {"[\"{[{[\"]", NULL},        /* brackets inside a string do not nest */
};

ParameterizedTestParameters(json, parse)
{
    INDEX_PARAMS(parse_cases);
}

ParameterizedTest(size_t *i, json, parse)
{
    const struct parse_case *pc = &parse_cases[*i];
    char err[256] = "";
    cJSON *v = sfl_json_parse(pc->text, strlen(pc->text), "in.json", err, sizeof(err));
    if (!pc->error) {
        cr_expect_not_null(v, "refused %s: %s", pc->text, err);
    } else {
        cr_expect_null(v, "accepted %s", pc->text);
        cr_expect_str_eq(err, pc->error);
    }
    cJSON_Delete(v);
}

Test(json, parse_names_input_when_unnamed)
{
    char err[256] = "";
    cr_assert_null(sfl_json_parse("[", 1, NULL, err, sizeof(err)));
    cr_expect_str_eq(err, "(input): not valid JSON near line 1, column 1 (byte 0)");
}

Test(json, parse_reads_only_len_bytes)
{
    const char text[] = "[1, 2]garbage";
    char err[256] = "";
    cJSON *v = sfl_json_parse(text, strlen(text) - 7, "in.json", err, sizeof(err));
    cr_assert_not_null(v, "%s", err);
    cr_expect_eq(cJSON_GetArraySize(v), 2);
    cJSON_Delete(v);
}

/* depth arrays, one inside the other: "[[...]]". */
static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    cr_assert_not_null(s);
    memset(s, '[', (size_t)depth);
    memset(s + depth, ']', (size_t)depth);
    s[depth * 2] = '\0';
    return s;
}

Test(json, nesting_up_to_cjson_limit)
{
    char err[256] = "";
    char *ok = nested(CJSON_NESTING_LIMIT), *deep = nested(CJSON_NESTING_LIMIT + 1);
    cJSON *v = sfl_json_parse(ok, strlen(ok), "in.json", err, sizeof(err));
    cr_expect_not_null(v, "%s", err);
    cJSON_Delete(v);
    cr_expect_null(sfl_json_parse(deep, strlen(deep), "in.json", err, sizeof(err)));
    char want[128];
    snprintf(want, sizeof(want),
             "in.json: JSON nested deeper than %d levels at line 1, column %d (byte %d)",
             CJSON_NESTING_LIMIT, CJSON_NESTING_LIMIT + 1, CJSON_NESTING_LIMIT);
    cr_expect_str_eq(err, want);
    free(ok);
    free(deep);
}

/*--- Reading ---*/

/* Writes text to a fresh file under /tmp; returns its malloc'd path. */
static char *temp_file(const char *text)
{
    char *path = strdup("/tmp/sfl-json-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

Test(json, read_text_whole_file)
{
    char *path = temp_file("{\"a\": 1}\n");
    char err[256] = "";
    size_t len = 0;
    char *text = sfl_json_read_text(path, 1024, &len, err, sizeof(err));
    cr_assert_not_null(text, "%s", err);
    cr_expect_eq(len, 9);
    cr_expect_str_eq(text, "{\"a\": 1}\n");
    free(text);
    unlink(path);
    free(path);
}

Test(json, read_text_refuses_past_max)
{
    char big[10000];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *path = temp_file(big);
    char err[256] = "", want[300];
    size_t len = 0;
    errno = 0;
    cr_expect_null(sfl_json_read_text(path, 5000, &len, err, sizeof(err)));
    cr_expect_eq(errno, EFBIG);
    snprintf(want, sizeof(want), "%s: cannot read: larger than 5000 bytes", path);
    cr_expect_str_eq(err, want);
    /* max itself still fits */
    char *text = sfl_json_read_text(path, sizeof(big) - 1, &len, err, sizeof(err));
    cr_expect_not_null(text, "%s", err);
    cr_expect_eq(len, sizeof(big) - 1);
    free(text);
    unlink(path);
    free(path);
}

Test(json, read_text_errors_name_the_path)
{
    char err[256] = "";
    size_t len = 0;
    errno = 0;
    cr_expect_null(sfl_json_read_text("/nonexistent/x.json", 1024, &len, err, sizeof(err)));
    cr_expect_eq(errno, ENOENT);
    cr_expect_str_eq(err, "/nonexistent/x.json: cannot read: No such file or directory");
    cr_expect_null(sfl_json_read_text("/tmp", 1024, &len, err, sizeof(err)));
    cr_expect_eq(errno, EISDIR);
    cr_expect_str_eq(err, "/tmp: cannot read: Is a directory");
}

/*--- Messages ---*/

struct describe_case {
    const char *json; /* NULL: describe(NULL) */
    const char *want;
};

static const struct describe_case describe_cases[] = {
    {NULL, "nothing"},
    {"null", "null"},
    {"true", "true"},
    {"false", "false"},
    {"42", "42"},
    {"-7", "-7"},
    {"1.5", "1.5"},
    {"1e20", "1e+20"},
    {"\"text\"", "\"text\""},
    {"\"tab\\there\"", "\"tab?here\""},
    {"\"0123456789012345678901234567890123456789\"",
     "\"0123456789012345678901234567890123456789\""},
    {"\"01234567890123456789012345678901234567890\"",
     "\"0123456789012345678901234567890123456789...\""},
    {"[1]", "an array"},
    {"{}", "an object"},
};

ParameterizedTestParameters(json, describe)
{
    INDEX_PARAMS(describe_cases);
}

ParameterizedTest(size_t *i, json, describe)
{
    const struct describe_case *dc = &describe_cases[*i];
    cJSON *v = dc->json ? cJSON_Parse(dc->json) : NULL;
    cr_assert(!dc->json || v, "test table: bad JSON %s", dc->json);
    char buf[64];
    sfl_json_describe(v, buf, sizeof(buf));
    cr_expect_str_eq(buf, dc->want);
    cJSON_Delete(v);
}

Test(json, quote_needs_room)
{
    char buf[8] = "x";
    sfl_json_quote("abc", buf, 7);
    cr_expect_str_eq(buf, "");
    sfl_json_quote("abcdef", buf, 8);
    cr_expect_str_eq(buf, "\"ab...\"");
}

Test(json, fail_formats_and_returns_minus_one)
{
    char err[64] = "";
    sfl_json_ctx e = {"f.json", err, sizeof(err)};
    cr_expect_eq(sfl_json_fail(&e, "a.b", "got %d", 3), -1);
    cr_expect_str_eq(err, "f.json: a.b: got 3");
    cr_expect_eq(sfl_json_fail(&e, "", "no path"), -1);
    cr_expect_str_eq(err, "f.json: no path");
    cr_expect_eq(sfl_json_fail(&e, NULL, "no path"), -1);
    cr_expect_str_eq(err, "f.json: no path");
    char small[12];
    sfl_json_ctx s = {"f.json", small, sizeof(small)};
    sfl_json_fail(&s, "a.b", "long message");
    cr_expect_str_eq(small, "f.json: a.b");
    sfl_json_ctx none = {"f.json", NULL, 0};
    cr_expect_eq(sfl_json_fail(&none, "a", "x"), -1);
}

/*--- Numbers ---*/

static const sfl_json_numspec POS_INT = {1, 0, 1, SFL_JSON_MAX_SAFE_INT, 0};
static const sfl_json_numspec SMALL_INT = {1, 0, 0, 100, 0};
static const sfl_json_numspec RANGE = {1, 100, 0, 60000, 1};
static const sfl_json_numspec NONNEG_NUM = {0, 0, 0, HUGE_VAL, 0};

struct num_case {
    const sfl_json_numspec *spec;
    double d;
    const char *error; /* NULL: accepted */
};

static const struct num_case num_cases[] = {
    {&POS_INT, 1, NULL},
    {&POS_INT, 9007199254740991.0, NULL},
    {&POS_INT, 0, "f: x: expected an integer > 0, got 0"},
    {&POS_INT, 1.5, "f: x: expected an integer > 0, got 1.5"},
    {&POS_INT, 9007199254740992.0,
     "f: x: expected an integer > 0, got 9007199254740992 (too large)"},
    {&SMALL_INT, 101, "f: x: expected an integer >= 0, got 101 (too large)"},
    {&RANGE, 99, "f: x: expected an integer between 100 and 60000, got 99"},
    {&RANGE, 60001, "f: x: expected an integer between 100 and 60000, got 60001"},
    {&NONNEG_NUM, 0.25, NULL},
    {&NONNEG_NUM, -0.5, "f: x: expected a number >= 0, got -0.5"},
    {&NONNEG_NUM, HUGE_VAL, "f: x: expected a number >= 0, got inf"},
};

ParameterizedTestParameters(json, check_num)
{
    INDEX_PARAMS(num_cases);
}

ParameterizedTest(size_t *i, json, check_num)
{
    const struct num_case *nc = &num_cases[*i];
    char err[128] = "";
    sfl_json_ctx e = {"f", err, sizeof(err)};
    int rc = sfl_json_check_num(&e, "x", nc->spec, nc->d);
    if (!nc->error) {
        cr_expect_eq(rc, 0, "%g refused: %s", nc->d, err);
    } else {
        cr_expect_eq(rc, -1, "%g accepted", nc->d);
        cr_expect_str_eq(err, nc->error);
    }
}

/*--- Members of an object ---*/

static cJSON *obj(const char *json)
{
    cJSON *o = cJSON_Parse(json);
    cr_assert_not_null(o, "test: bad JSON %s", json);
    return o;
}

struct keys_case {
    const char *json;
    const char *prefix;
    const char *error; /* NULL: accepted */
};

static const char *const allowed[] = {"a", "b-c", "d_e", NULL};

static const struct keys_case keys_cases[] = {
    {"{}", "", NULL},
    {"{\"a\": 1, \"b-c\": 2, \"d_e\": 3}", "sec", NULL},
    {"{\"x\": 1}", "", "f: x: unknown key"},
    {"{\"x\": 1}", "sec", "f: sec.x: unknown key"},
    {"{\"a b\": 1}", "sec", "f: sec.\"a b\": unknown key"},
    {"{\"\": 1}", "", "f: \"\": unknown key"},
    {"{\"a\": 1, \"a\": 2}", "sec", "f: sec.a: duplicate key"},
};

ParameterizedTestParameters(json, check_keys)
{
    INDEX_PARAMS(keys_cases);
}

ParameterizedTest(size_t *i, json, check_keys)
{
    const struct keys_case *kc = &keys_cases[*i];
    char err[128] = "";
    sfl_json_ctx e = {"f", err, sizeof(err)};
    cJSON *o = obj(kc->json);
    int rc = sfl_json_check_keys(&e, o, kc->prefix, allowed);
    if (!kc->error) {
        cr_expect_eq(rc, 0, "%s refused: %s", kc->json, err);
    } else {
        cr_expect_eq(rc, -1, "%s accepted", kc->json);
        cr_expect_str_eq(err, kc->error);
    }
    cJSON_Delete(o);
}

Test(json, getters_leave_absent_members_alone)
{
    char err[128] = "";
    sfl_json_ctx e = {"f", err, sizeof(err)};
    cJSON *o = obj("{}");
    int rc = 7, b = 7, n = 7;
    int64_t i64 = 7;
    double d = 7;
    char *s = strdup("keep");
    cr_expect_null(sfl_json_get_object(&e, o, "k", &rc));
    cr_expect_eq(rc, 0);
    cr_expect_eq(sfl_json_get_num(&e, o, "k", "p.k", &NONNEG_NUM, &d), 0);
    cr_expect_eq(sfl_json_get_double(&e, o, "k", "p.k", &NONNEG_NUM, &d), 0);
    cr_expect_eq(sfl_json_get_int64(&e, o, "k", "p.k", &POS_INT, &i64), 0);
    cr_expect_eq(sfl_json_get_int(&e, o, "k", "p.k", &SMALL_INT, &n), 0);
    cr_expect_eq(sfl_json_get_bool(&e, o, "k", "p.k", &b), 0);
    cr_expect_eq(sfl_json_get_string(&e, o, "k", "p.k", 1, &s), 0);
    cr_expect(d == 7 && i64 == 7 && n == 7 && b == 7);
    cr_expect_str_eq(s, "keep");
    cr_expect_str_eq(err, "");
    free(s);
    cJSON_Delete(o);
}

Test(json, getters_set_values)
{
    char err[128] = "";
    sfl_json_ctx e = {"f", err, sizeof(err)};
    cJSON *o = obj("{\"o\": {}, \"n\": 0.5, \"i\": 9007199254740991, \"s\": 42, \"b\": false, "
                   "\"t\": \"text\", \"z\": null}");
    int rc = -7, b = 7, n = 7;
    int64_t i64 = 0;
    double d = 0;
    char *t = NULL, *z = strdup("old");
    cr_expect_not_null(sfl_json_get_object(&e, o, "o", &rc));
    cr_expect_eq(rc, 0);
    cr_expect_eq(sfl_json_get_double(&e, o, "n", "n", &NONNEG_NUM, &d), 1);
    cr_expect(d == 0.5);
    cr_expect_eq(sfl_json_get_int64(&e, o, "i", "i", &POS_INT, &i64), 1);
    cr_expect_eq(i64, INT64_C(9007199254740991));
    cr_expect_eq(sfl_json_get_int(&e, o, "s", "s", &SMALL_INT, &n), 1);
    cr_expect_eq(n, 42);
    cr_expect_eq(sfl_json_get_bool(&e, o, "b", "b", &b), 1);
    cr_expect_eq(b, 0);
    cr_expect_eq(sfl_json_get_string(&e, o, "t", "t", 0, &t), 1);
    cr_expect_str_eq(t, "text");
    cr_expect_eq(sfl_json_get_string(&e, o, "z", "z", 1, &z), 1);
    cr_expect_null(z);
    cr_expect_str_eq(err, "");
    free(t);
    cJSON_Delete(o);
}

Test(json, getters_name_the_path_on_a_wrong_type)
{
    char err[128] = "";
    sfl_json_ctx e = {"f", err, sizeof(err)};
    cJSON *o = obj("{\"k\": \"1\", \"a\": [], \"z\": null, \"big\": 200}");
    int rc = 0, b = 7, n = 7;
    double d = 7;
    char *s = strdup("keep");
    cr_expect_null(sfl_json_get_object(&e, o, "a", &rc));
    cr_expect_eq(rc, -1);
    cr_expect_str_eq(err, "f: a: expected an object, got an array");
    cr_expect_eq(sfl_json_get_num(&e, o, "k", "sec.k", &NONNEG_NUM, &d), -1);
    cr_expect_str_eq(err, "f: sec.k: expected a number >= 0, got \"1\"");
    cr_expect_eq(sfl_json_get_int(&e, o, "big", "sec.big", &SMALL_INT, &n), -1);
    cr_expect_str_eq(err, "f: sec.big: expected an integer >= 0, got 200 (too large)");
    cr_expect_eq(sfl_json_get_bool(&e, o, "k", "sec.k", &b), -1);
    cr_expect_str_eq(err, "f: sec.k: expected true or false, got \"1\"");
    cr_expect_eq(sfl_json_get_string(&e, o, "z", "sec.z", 0, &s), -1);
    cr_expect_str_eq(err, "f: sec.z: expected a string, got null");
    cr_expect_eq(sfl_json_get_string(&e, o, "a", "sec.a", 1, &s), -1);
    cr_expect_str_eq(err, "f: sec.a: expected a string or null, got an array");
    cr_expect(d == 7 && n == 7 && b == 7);
    cr_expect_str_eq(s, "keep");
    free(s);
    cJSON_Delete(o);
}
