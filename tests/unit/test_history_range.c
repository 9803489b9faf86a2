/* test_history_range.c - times, steps and ranges of a history read
 * (history_range.h): the forms accepted, the values they give at a fixed
 * now, and the messages that name the parameter at fault. */
#include "history_range.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

TestSuite(history_range);

/* Criterion hands a parameter to the test's process as bytes, so pointers in
 * it (our string literals) would dangle there: pass the row index instead
 * and read the row from the table, which every process has. */
#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

#define NOW 1796196123LL      /* 2026-12-02T07:22:03Z */
#define SIX 1796191200LL      /* 2026-12-02T06:00:00Z */
#define MINUTE_END (NOW + 57) /* 07:23:00: the minute going on, included */

/*--- Times -----------------------------------------------------------------*/

struct time_case {
    const char *text;
    long long want;    /* when error is NULL */
    const char *error; /* a piece of the message */
};

static const struct time_case time_cases[] = {
    {"1796191200", SIX, NULL},
    {"0", 0, NULL},
    {"2026-12-02T06:00:00Z", SIX, NULL},
    {"2026-12-02t06:00:00z", SIX, NULL},
    {"2026-12-02T06:00Z", SIX, NULL},
    {"2026-12-02T06:00:00.750Z", SIX, NULL},
    {"2026-12-02T06:00:00+00:00", SIX, NULL},
    {"2026-12-02T06:00:00", SIX, NULL},
    {"2026-12-02", 1796169600LL, NULL},
    {"2024-02-29T00:00:00Z", 1709164800LL, NULL},
    {"now", NOW, NULL},
    {"-90m", NOW - 5400, NULL},
    {"-24h", NOW - 86400, NULL},
    {"-7d", NOW - 7 * 86400, NULL},
    {"-2w", NOW - 14 * 86400, NULL},
    {"-30s", NOW - 30, NULL},
    {"", 0, "empty"},
    {"yesterday", 0, "\"yesterday\" is not a time"},
    {"-90", 0, "not a time before now"},
    {"-m", 0, "not a time before now"},
    {"-90x", 0, "not a time before now"},
    {"--90m", 0, "not a time before now"},
    {"-100000y", 0, "not a time before now"},
    {"-999999d", 0, "before 1970"},
    {"2026-02-29T00:00:00Z", 0, "is not a time"},
    {"2026-13-01", 0, "is not a time"},
    {"2026-12-02T24:00:00Z", 0, "is not a time"},
    {"2026-12-02T06:60:00Z", 0, "is not a time"},
    {"2026-12-02T06:00:00+02:00", 0, "is not a time"},
    {"2026-12-02T06:00:00.Z", 0, "is not a time"},
    {"2026-12-02T06", 0, "is not a time"},
    {"1969-12-31", 0, "is not a time"},
    {"12abc", 0, "is not a time"},
    {" 1796191200", 0, "is not a time"},
    {"1796191200 ", 0, "is not a time"},
    {"9999999999999", 0, "is not a time"},
};

ParameterizedTestParameters(history_range, time)
{
    INDEX_PARAMS(time_cases);
}

ParameterizedTest(size_t *i, history_range, time)
{
    const struct time_case *c = &time_cases[*i];
    int64_t got = -12345;
    char err[256] = "";
    int rc = sfl_history_parse_time("from", c->text, NOW, &got, err, sizeof(err));
    if (c->error) {
        cr_assert_eq(rc, -1, "\"%s\" accepted as %lld", c->text, (long long)got);
        cr_expect_eq(got, -12345, "\"%s\": out touched on failure", c->text);
        cr_expect_not_null(strstr(err, c->error), "\"%s\": message \"%s\" lacks \"%s\"", c->text,
                           err, c->error);
        cr_expect_eq(strncmp(err, "from: ", 6), 0, "\"%s\": message does not name from: %s",
                     c->text, err);
    } else {
        cr_assert_eq(rc, 0, "\"%s\" refused: %s", c->text, err);
        cr_expect_eq(got, c->want, "\"%s\": got %lld, want %lld", c->text, (long long)got, c->want);
    }
}

/*--- Steps -----------------------------------------------------------------*/

struct step_case {
    const char *text;
    long long want;
    const char *error;
};

static const struct step_case step_cases[] = {
    {"60", 60, NULL},
    {"300", 300, NULL},
    {"1m", 60, NULL},
    {"15m", 900, NULL},
    {"1h", 3600, NULL},
    {"1d", 86400, NULL},
    {"120s", 120, NULL},
    {"366d", 366 * 86400LL, NULL},
    {"90", 0, "multiple of 60"},
    {"30s", 0, "multiple of 60"},
    {"0", 0, "multiple of 60"},
    {"0m", 0, "multiple of 60"},
    {"367d", 0, "multiple of 60"},
    {"-60", 0, "is not a step"},
    {"1x", 0, "is not a step"},
    {"m", 0, "is not a step"},
    {"", 0, "is not a step"},
    {"1.5h", 0, "is not a step"},
};

ParameterizedTestParameters(history_range, step)
{
    INDEX_PARAMS(step_cases);
}

ParameterizedTest(size_t *i, history_range, step)
{
    const struct step_case *c = &step_cases[*i];
    int64_t got = -1;
    char err[256] = "";
    int rc = sfl_history_parse_step("step", c->text, &got, err, sizeof(err));
    if (c->error) {
        cr_assert_eq(rc, -1, "\"%s\" accepted as %lld", c->text, (long long)got);
        cr_expect_not_null(strstr(err, c->error), "\"%s\": message \"%s\" lacks \"%s\"", c->text,
                           err, c->error);
        cr_expect_eq(strncmp(err, "step: ", 6), 0, "\"%s\": %s", c->text, err);
    } else {
        cr_assert_eq(rc, 0, "\"%s\" refused: %s", c->text, err);
        cr_expect_eq(got, c->want, "\"%s\": got %lld", c->text, (long long)got);
    }
}

/*--- Ranges ----------------------------------------------------------------*/

static sfl_history_range range_ok(const char *from, const char *to, const char *step)
{
    sfl_history_ask ask = {.from = from, .to = to, .step = step};
    sfl_history_range r;
    char err[256] = "";
    cr_assert_eq(sfl_history_range_make(&ask, NOW, &r, err, sizeof(err)), 0,
                 "from %s to %s step %s refused: %s", from, to, step, err);
    cr_expect_eq(r.from_s % r.step_s, 0, "from %lld is not on a step", (long long)r.from_s);
    cr_expect_eq(r.to_s % 60, 0);
    cr_expect_eq(r.npoints, (r.to_s - r.from_s + r.step_s - 1) / r.step_s);
    return r;
}

Test(history_range, defaults_last_hour_in_minutes)
{
    sfl_history_range r = range_ok(NULL, NULL, NULL);
    cr_expect_eq(r.to_s, MINUTE_END);
    cr_expect_eq(r.from_s, MINUTE_END - 3600);
    cr_expect_eq(r.step_s, 60);
    cr_expect_eq(r.npoints, 60);
}

Test(history_range, relative_minutes_make_as_many_points)
{
    sfl_history_range r = range_ok("-90m", NULL, NULL);
    cr_expect_eq(r.step_s, 60);
    cr_expect_eq(r.npoints, 90, "got %lld", (long long)r.npoints);
    cr_expect_eq(r.to_s, MINUTE_END);
    r = range_ok("-7d", "now", "1m");
    cr_expect_eq(r.npoints, 10080, "a week in minutes: got %lld", (long long)r.npoints);
}

Test(history_range, hours_are_whole_hours)
{
    sfl_history_range r = range_ok("-24h", NULL, "1h");
    cr_expect_eq(r.step_s, 3600);
    cr_expect_eq(r.from_s, 1796112000LL, "first point 2026-12-01T08:00:00Z, got %lld",
                 (long long)r.from_s);
    cr_expect_eq(r.npoints, 24);
}

Test(history_range, explicit_iso_range)
{
    sfl_history_range r = range_ok("2026-12-02T06:00:00Z", "2026-12-02T07:00:00Z", "60");
    cr_expect_eq(r.from_s, SIX);
    cr_expect_eq(r.to_s, SIX + 3600);
    cr_expect_eq(r.npoints, 60);
    r = range_ok("2026-12-02T06:00:00Z", "2026-12-02T07:00:00Z", "5m");
    cr_expect_eq(r.npoints, 12);
    /* A step longer than the range: one point, from rounded down. */
    r = range_ok("2026-12-02T06:30:00Z", "2026-12-02T06:45:00Z", "1h");
    cr_expect_eq(r.from_s, SIX);
    cr_expect_eq(r.npoints, 1);
}

Test(history_range, default_step_keeps_360_points)
{
    const struct {
        const char *from;
        long long minutes;
    } c[] = {{"-6h", 360},   {"-361m", 361},  {"-24h", 1440},
             {"-7d", 10080}, {"-30d", 43200}, {"-365d", 525600}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        sfl_history_range r = range_ok(c[i].from, NULL, NULL);
        /* The smallest whole minutes that fit 360 points, one more if
         * rounding from to the step adds a point. */
        long long least = 60 * ((c[i].minutes + 359) / 360);
        cr_expect_leq(r.npoints, 360, "%s: %lld points", c[i].from, (long long)r.npoints);
        cr_expect(r.step_s >= least && r.step_s <= least + 60, "%s: step %lld, want %lld",
                  c[i].from, (long long)r.step_s, least);
    }
    cr_expect_eq(range_ok("-6h", NULL, NULL).step_s, 60);
    cr_expect_eq(range_ok("-361m", NULL, NULL).step_s, 120);
}

static void range_bad(const sfl_history_ask *ask, const char *want)
{
    sfl_history_range r = {.from_s = -7};
    char err[256] = "";
    cr_assert_eq(sfl_history_range_make(ask, NOW, &r, err, sizeof(err)), -1, "accepted (%s)", want);
    cr_expect_eq(r.from_s, -7, "range touched on failure");
    cr_expect_not_null(strstr(err, want), "message \"%s\" lacks \"%s\"", err, want);
}

Test(history_range, refusals_name_the_parameter)
{
    range_bad(&(sfl_history_ask){.from = "-1h", .to = "-2h"}, "from: ");
    range_bad(&(sfl_history_ask){.from = "-1h", .to = "-2h"}, "is not before to");
    range_bad(&(sfl_history_ask){.from = "2026-12-02T07:00:00Z", .to = "2026-12-02T07:00:00Z"},
              "is not before to");
    range_bad(&(sfl_history_ask){.from = "-30d", .step = "1m"}, "step: ");
    range_bad(&(sfl_history_ask){.from = "-30d", .step = "1m"}, "at most 10080");
    range_bad(&(sfl_history_ask){.from = "-7d", .to = "2026-12-02T07:24:00Z", .step = "1m"},
              "10081 points");
    range_bad(&(sfl_history_ask){.to = "soon"}, "to: \"soon\"");
    range_bad(&(sfl_history_ask){.step = "7"}, "step: \"7\"");
    /* The CLI's own names. */
    range_bad(&(sfl_history_ask){.from = "x", .from_name = "--since"}, "--since: \"x\"");
    range_bad(&(sfl_history_ask){.step = "1x", .step_name = "--step"}, "--step: \"1x\"");
}

Test(history_range, iso_format)
{
    char buf[32];
    sfl_history_iso(SIX, buf, sizeof(buf));
    cr_expect_str_eq(buf, "2026-12-02T06:00:00Z");
    sfl_history_iso(0, buf, sizeof(buf));
    cr_expect_str_eq(buf, "1970-01-01T00:00:00Z");
}
