/* test_fp_minutes.c - the fake provider's record per minute
 * (tests/tools/fake_provider/minutes.c), on a clock the test moves: the peak
 * of a minute is the most open at once in it, a connection held across a
 * boundary counts in both minutes, minutes without an event hold what was
 * open, connection-ms add up per minute (the time since the last event
 * too), a day is kept, [from, to) selects minutes by their start, and a
 * clock that steps back never rewrites an older minute. The same code
 * behind GET /minutes is tested on a real provider in
 * tests/integration/test_provider_minutes.c. */
#include "../tools/fake_provider/minutes.c"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>

TestSuite(fp_minutes);

#define T0 1796191200LL /* 2026-12-02T06:00:00Z, a minute's start */

static fp_minutes *mins;
static long open_now; /* what the provider would count open */

/* Times are seconds here (the record takes ms: * 1000). */
static void start(int64_t at)
{
    mins = calloc(1, sizeof(*mins));
    cr_assert_not_null(mins);
    open_now = 0;
    fp_minutes_init(mins, at * 1000, 0);
}

static void open_at(int64_t at)
{
    fp_minutes_open(mins, at * 1000, open_now);
    open_now++;
}

static void close_at(int64_t at)
{
    fp_minutes_close(mins, at * 1000, open_now);
    open_now--;
}

/* The minutes of [from, to) as GET /minutes gives them at now; the caller
 * frees the array. */
static cJSON *read_at(int64_t now, int64_t from, int64_t to)
{
    cJSON *a = fp_minutes_json(mins, now * 1000, open_now, from, to);
    cr_assert(cJSON_IsArray(a));
    return a;
}

static long long field(const cJSON *a, int i, const char *key)
{
    const cJSON *o = cJSON_GetArrayItem(a, i);
    cr_assert_not_null(o, "no minute %d", i);
    const cJSON *v = cJSON_GetObjectItem(o, key);
    cr_assert(cJSON_IsNumber(v) || cJSON_IsBool(v), "minute %d has no %s", i, key);
    return cJSON_IsBool(v) ? (long long)cJSON_IsTrue(v) : (long long)v->valuedouble;
}

Test(fp_minutes, two_open_in_one_minute_peak_two)
{
    start(T0 + 1);
    open_at(T0 + 5);
    open_at(T0 + 6);
    cJSON *a = read_at(T0 + 10, T0, T0 + 60);
    cr_assert_eq(cJSON_GetArraySize(a), 1);
    cr_expect_eq(field(a, 0, "t"), T0);
    cr_expect_eq(field(a, 0, "peak"), 2);
    cr_expect_eq(field(a, 0, "opened"), 2);
    cr_expect_eq(field(a, 0, "complete"), 0);
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 0), "utc")->valuestring,
                     "2026-12-02T06:00:00Z");
    cJSON_Delete(a);
}

Test(fp_minutes, one_after_another_peak_one)
{
    start(T0);
    open_at(T0 + 5);
    close_at(T0 + 20);
    open_at(T0 + 21);
    close_at(T0 + 40);
    cJSON *a = read_at(T0 + 61, T0, T0 + 60);
    cr_expect_eq(field(a, 0, "peak"), 1);
    cr_expect_eq(field(a, 0, "opened"), 2);
    cr_expect_eq(field(a, 0, "complete"), 1);
    cJSON_Delete(a);
}

Test(fp_minutes, held_across_a_boundary_counts_in_both)
{
    start(T0);
    open_at(T0 + 50);
    open_at(T0 + 55);
    close_at(T0 + 58);
    /* one still open: minute 1 has had it all along, nothing opened */
    cJSON *a = read_at(T0 + 70, T0, T0 + 120);
    cr_assert_eq(cJSON_GetArraySize(a), 2);
    cr_expect_eq(field(a, 0, "peak"), 2);
    cr_expect_eq(field(a, 0, "opened"), 2);
    cr_expect_eq(field(a, 1, "peak"), 1);
    cr_expect_eq(field(a, 1, "opened"), 0);
    cJSON_Delete(a);
    close_at(T0 + 75);
    open_at(T0 + 80);
    open_at(T0 + 81);
    a = read_at(T0 + 125, T0, T0 + 180);
    cr_assert_eq(cJSON_GetArraySize(a), 3);
    cr_expect_eq(field(a, 1, "peak"), 2);
    cr_expect_eq(field(a, 1, "opened"), 2);
    cr_expect_eq(field(a, 2, "peak"), 2); /* both still open */
    cr_expect_eq(field(a, 2, "opened"), 0);
    cr_expect_eq(field(a, 2, "complete"), 0);
    cJSON_Delete(a);
}

Test(fp_minutes, quiet_minutes_hold_what_was_open)
{
    start(T0);
    open_at(T0 + 10);
    open_at(T0 + 11);
    open_at(T0 + 12);
    close_at(T0 + 13);
    /* two open through minutes 1..3, closed in minute 4, nothing in 5 */
    close_at(T0 + 4 * 60 + 30);
    close_at(T0 + 4 * 60 + 31);
    cJSON *a = read_at(T0 + 6 * 60, T0, T0 + 6 * 60);
    cr_assert_eq(cJSON_GetArraySize(a), 6);
    long want[] = {3, 2, 2, 2, 2, 0};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(field(a, i, "peak"), want[i], "minute %d: peak %lld, want %ld", i,
                     field(a, i, "peak"), want[i]);
        cr_expect_eq(field(a, i, "opened"), i == 0 ? 3 : 0);
    }
    cJSON_Delete(a);
}

Test(fp_minutes, from_to_select_minutes_by_their_start)
{
    start(T0);
    for (int k = 0; k < 5; k++) {
        for (int j = 0; j <= k; j++)
            open_at(T0 + k * 60 + 1 + j);
        for (int j = 0; j <= k; j++)
            close_at(T0 + k * 60 + 30 + j);
    }
    cJSON *a = read_at(T0 + 5 * 60, T0 + 60, T0 + 3 * 60); /* minutes 1 and 2 */
    cr_assert_eq(cJSON_GetArraySize(a), 2);
    cr_expect_eq(field(a, 0, "t"), T0 + 60);
    cr_expect_eq(field(a, 0, "peak"), 2);
    cr_expect_eq(field(a, 1, "peak"), 3);
    cJSON_Delete(a);
    a = read_at(T0 + 5 * 60, T0 + 61, T0 + 3 * 60 + 1); /* starts in [61, 181): 2 and 3 */
    cr_assert_eq(cJSON_GetArraySize(a), 2);
    cr_expect_eq(field(a, 0, "t"), T0 + 120);
    cr_expect_eq(field(a, 1, "peak"), 4);
    cJSON_Delete(a);
    a = read_at(T0 + 5 * 60, 0, T0 + 3600); /* all kept, up to now's minute */
    cr_assert_eq(cJSON_GetArraySize(a), 6);
    cr_expect_eq(field(a, 4, "peak"), 5);
    cr_expect_eq(field(a, 4, "opened"), 5);
    cr_expect_eq(field(a, 5, "peak"), 0);
    cJSON_Delete(a);
}

Test(fp_minutes, a_day_is_kept)
{
    start(T0);
    open_at(T0 + 1);
    close_at(T0 + 2);
    int64_t later = T0 + 2 * 86400 + 30; /* two days on */
    open_at(later);
    cJSON *a = read_at(later + 1, 0, later + 60);
    cr_assert_eq(cJSON_GetArraySize(a), FP_MINUTES);
    cr_expect_eq(field(a, 0, "t"), (later / 60 - FP_MINUTES + 1) * 60);
    cr_expect_eq(field(a, 0, "peak"), 0);
    cr_expect_eq(field(a, FP_MINUTES - 1, "peak"), 1);
    cr_expect_eq(field(a, FP_MINUTES - 1, "opened"), 1);
    cJSON_Delete(a);
}

Test(fp_minutes, a_clock_stepping_back_counts_in_the_newest_minute)
{
    start(T0);
    open_at(T0 + 70); /* minute 1 */
    close_at(T0 + 71);
    open_at(T0 + 10); /* the clock went back to minute 0 */
    open_at(T0 + 11);
    cJSON *a = read_at(T0 + 12, T0, T0 + 120);
    cr_assert_eq(cJSON_GetArraySize(a), 2);
    cr_expect_eq(field(a, 0, "peak"), 0);
    cr_expect_eq(field(a, 0, "opened"), 0);
    cr_expect_eq(field(a, 1, "peak"), 2);
    cr_expect_eq(field(a, 1, "opened"), 3);
    cJSON_Delete(a);
}

Test(fp_minutes, init_again_restarts_from_what_is_open)
{
    start(T0);
    open_at(T0 + 1);
    open_at(T0 + 2);
    fp_minutes_init(mins, (T0 + 130) * 1000, open_now); /* /reset in minute 2 */
    cJSON *a = read_at(T0 + 131, 0, T0 + 3600);
    cr_assert_eq(cJSON_GetArraySize(a), 1);
    cr_expect_eq(field(a, 0, "t"), T0 + 120);
    cr_expect_eq(field(a, 0, "peak"), 2);
    cr_expect_eq(field(a, 0, "opened"), 0);
    cJSON_Delete(a);
}

Test(fp_minutes, held_ms_adds_the_time_open_in_each_minute)
{
    start(T0);
    open_at(T0 + 10);
    open_at(T0 + 20);
    close_at(T0 + 40);
    open_at(T0 + 50); /* two open from 50 s: 10 s each in minute 0, then on */
    cJSON *a = read_at(T0 + 70, T0, T0 + 120);
    cr_assert_eq(cJSON_GetArraySize(a), 2);
    cr_expect_eq(field(a, 0, "held_ms"), 80000); /* 10 + 2 x 20 + 10 + 2 x 10 s */
    cr_expect_eq(field(a, 1, "held_ms"), 20000); /* 10 s each so far, no event yet */
    cJSON_Delete(a);
    close_at(T0 + 200); /* minute 1: 120 s; minute 2: 40 s... of two open */
    close_at(T0 + 210);
    a = read_at(T0 + 300, T0, T0 + 300);
    cr_assert_eq(cJSON_GetArraySize(a), 5);
    long long want[] = {80000, 120000, 120000, 20000 * 2 + 10000, 0};
    for (int i = 0; i < 5; i++)
        cr_expect_eq(field(a, i, "held_ms"), want[i], "minute %d: held_ms %lld, want %lld", i,
                     field(a, i, "held_ms"), want[i]);
    cJSON_Delete(a);
}
