/* test_history_read.c - what history_read.c makes of the history format
 * (issue #18's contract): one minute's value decoded, garbage refused with
 * a message, minutes summed into steps (peak = max(start, peak), means,
 * wait p50/p95 from the summed bins), missing minutes as zeros and nulls,
 * and an hour key's HGETALL answer (built by hand) read into a series. */
#include "history_read.h"
#include "keys.h"

#include "metrics.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

TestSuite(history_read);

#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

#define SIX 1796191200LL /* 2026-12-02T06:00:00Z */

/* The spec's example minute: start 2, peak 2, 1.53 leases on average,
 * limit 2, 3 waiting, 20 grants, 5 denials, 20 checks, 20 waits: 12 of
 * them <= 100 ms (bin 6), 8 <= 2.5 s (bin 10); trailing zeros left out. */
#define EXAMPLE "2,2,91800,2,0,0,0,3,20,5,0,0,0,20,20,0,0,0,0,0,0,12,0,0,0,8"

/*--- Decoding one minute ---------------------------------------------------*/

Test(history_read, decode_full_and_trailing_omitted)
{
    long long v[SFL_HIST_NPOS];
    char err[160] = "";
    cr_assert_eq(sfl_history_decode(EXAMPLE, strlen(EXAMPLE), v, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(v[SFL_HIST_START], 2);
    cr_expect_eq(v[SFL_HIST_HELD_MS], 91800);
    cr_expect_eq(v[SFL_HIST_WAITING_PEAK], 3);
    cr_expect_eq(v[SFL_HIST_DENIALS], 5);
    cr_expect_eq(v[SFL_HIST_WAIT_BIN0 + 6], 12);
    cr_expect_eq(v[SFL_HIST_WAIT_BIN0 + 10], 8);
    for (int i = SFL_HIST_WAIT_BIN0 + 11; i < SFL_HIST_NPOS; i++)
        cr_expect_eq(v[i], 0, "position %d left out, not 0", i);

    const char *four = "0,0,0,-1";
    cr_assert_eq(sfl_history_decode(four, strlen(four), v, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(v[SFL_HIST_LIMIT], -1);
    cr_expect_eq(v[SFL_HIST_GRANTS], 0);

    /* 34 positions, then two more a later format might add: ignored. */
    char all[256] = "";
    for (int i = 0; i < SFL_HIST_NPOS + 2; i++) {
        char one[16];
        snprintf(one, sizeof(one), "%s%d", i ? "," : "", i + 1);
        strcat(all, one);
    }
    cr_assert_eq(sfl_history_decode(all, strlen(all), v, err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < SFL_HIST_NPOS; i++)
        cr_expect_eq(v[i], i + 1);

    /* Only len bytes count. */
    cr_assert_eq(sfl_history_decode("1,2,3,4,garbage", 7, v, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(v[SFL_HIST_LIMIT], 4);
}

struct bad_case {
    const char *csv;
    const char *error;
};

static const struct bad_case bad_cases[] = {
    {"", "position 0: \"\" is not an integer"},
    {"1,2,3", "3 positions; at least 4"},
    {"1,x,3,4", "position 1: \"x\" is not an integer"},
    {"1,,3,4", "position 1: \"\" is not an integer"},
    {"1,2,3,4,", "position 4: \"\" is not an integer"},
    {"1,2,3,4 ", "position 3: \"4 \" is not an integer"},
    {"1,2.5,3,4", "position 1: \"2.5\" is not an integer"},
    {"-1,2,3,4", "position 0: -1 is below 0"},
    {"1,2,3,-2", "position 3: -2 is below -1"},
    {"1,2,3,4,-", "position 4: \"-\" is not an integer"},
    {"1,2,99999999999999999999,4", "position 2: number too large"},
    {"{\"start\":1}", "position 0"},
};

ParameterizedTestParameters(history_read, decode_refuses)
{
    INDEX_PARAMS(bad_cases);
}

ParameterizedTest(size_t *i, history_read, decode_refuses)
{
    const struct bad_case *c = &bad_cases[*i];
    long long v[SFL_HIST_NPOS];
    char err[160] = "";
    cr_assert_eq(sfl_history_decode(c->csv, strlen(c->csv), v, err, sizeof(err)), -1,
                 "\"%s\" accepted", c->csv);
    cr_expect_not_null(strstr(err, c->error), "\"%s\": message \"%s\" lacks \"%s\"", c->csv, err,
                       c->error);
}

/*--- Quantiles from bins ---------------------------------------------------*/

Test(history_read, quantiles_from_bins)
{
    long long bins[SFL_HISTORY_BINS] = {0};
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.5), -1, "no wait: no quantile");
    bins[6] = 12; /* <= 100 ms */
    bins[10] = 8; /* <= 2.5 s */
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.50), 100);
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.60), 100, "rank 12 is the last of bin 6");
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.65), 2500, "rank 13 is in bin 10");
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.95), 2500);
    memset(bins, 0, sizeof(bins));
    bins[1] = 1; /* <= 2.5 ms */
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.5), 2.5);
    bins[SFL_HISTORY_BINS - 1] = 99; /* above the last bound */
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.5), sfl_wait_bounds[SFL_WAIT_BUCKETS - 1] * 1000);
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.01), 2.5);
    memset(bins, 0, sizeof(bins));
    bins[0] = 1;
    cr_expect_eq(sfl_history_quantile_ms(bins, 0.95), 1);
}

/*--- Keys and limits -------------------------------------------------------*/

Test(history_read, keys)
{
    char key[200];
    sfl_history_hour_key(key, sizeof(key), "sfl", "p-alt", SIX + 59 * 60 + 59);
    cr_expect_str_eq(key, "sfl:history:p-alt:2026120206");
    sfl_history_hour_key(key, sizeof(key), "t", "1", SIX + 3600);
    cr_expect_str_eq(key, "t:history:1:2026120207");
    sfl_history_stream_key(key, sizeof(key), "sfl", 101);
    cr_expect_str_eq(key, "sfl:stream:101:history");
    sfl_history_stream_key(key, sizeof(key), "sfl", -5);
    cr_expect_str_eq(key, "sfl:stream:-5:history");
}

Test(history_read, effective_limit_as_prelude_lua)
{
    cr_expect_eq(sfl_history_effective_limit("3", NULL, NULL), 3);
    cr_expect_eq(sfl_history_effective_limit("3", "2", NULL), 2);
    cr_expect_eq(sfl_history_effective_limit("3", "5", NULL), 3, "never above max_streams");
    cr_expect_eq(sfl_history_effective_limit("0", "2", NULL), 2, "unlimited capped");
    cr_expect_eq(sfl_history_effective_limit("0", NULL, NULL), 0);
    cr_expect_eq(sfl_history_effective_limit("4", "0", "1"), 1);
    cr_expect_eq(sfl_history_effective_limit("4", "x", NULL), 4, "not a number: no cap");
    cr_expect_eq(sfl_history_effective_limit(NULL, "2", NULL), -1);
    cr_expect_eq(sfl_history_effective_limit("abc", NULL, NULL), -1);
}

/*--- Series ----------------------------------------------------------------*/

static sfl_history_series *series(int64_t from, int64_t to, int64_t step)
{
    sfl_history_range r = {from, to, step, (to - from + step - 1) / step};
    sfl_history_series *s = sfl_history_series_new(&r);
    cr_assert_not_null(s);
    return s;
}

static void add(sfl_history_series *s, int64_t minute, const char *csv)
{
    long long v[SFL_HIST_NPOS];
    char err[160];
    cr_assert_eq(sfl_history_decode(csv, strlen(csv), v, err, sizeof(err)), 0, "%s: %s", csv, err);
    sfl_history_series_add(s, minute, v);
}

static cJSON *points(sfl_history_series *s)
{
    cJSON *doc = cJSON_CreateObject();
    cr_assert_eq(sfl_history_series_json(s, doc), 0);
    return doc;
}

static cJSON *point(cJSON *doc, int i)
{
    cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "points"), i);
    cr_assert_not_null(p, "no point %d", i);
    return p;
}

static double num(const cJSON *p, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(p, k);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", k);
    return v->valuedouble;
}

static int is_null(const cJSON *p, const char *k)
{
    return cJSON_IsNull(cJSON_GetObjectItem(p, k));
}

Test(history_read, the_spec_example_point)
{
    sfl_history_series *s = series(SIX, SIX + 3600, 60);
    add(s, SIX, EXAMPLE);
    cJSON *doc = points(s);
    cr_expect_str_eq(cJSON_GetObjectItem(doc, "from")->valuestring, "2026-12-02T06:00:00Z");
    cr_expect_str_eq(cJSON_GetObjectItem(doc, "to")->valuestring, "2026-12-02T07:00:00Z");
    cr_expect_eq(num(doc, "step_s"), 60);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "points")), 60);
    cJSON *p = point(doc, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(p, "t")->valuestring, "2026-12-02T06:00:00Z");
    cr_expect_eq(num(p, "t_ms"), 1796191200000.0);
    cr_expect_eq(num(p, "minutes"), 1);
    cr_expect_eq(num(p, "in_use_peak"), 2);
    cr_expect_eq(num(p, "in_use_mean"), 1.53);
    cr_expect_eq(num(p, "limit"), 2);
    cr_expect_eq(num(p, "others_peak"), 0);
    cr_expect(is_null(p, "others_mean"), "no others' sample: null");
    cr_expect_eq(num(p, "waiting_peak"), 3);
    cr_expect_eq(num(p, "grants"), 20);
    cr_expect_eq(num(p, "denials"), 5);
    cr_expect_eq(num(p, "lost"), 0);
    cr_expect_eq(num(p, "checks"), 20);
    cr_expect_eq(num(p, "waits"), 20);
    cr_expect_eq(num(p, "wait_p50_ms"), 100);
    cr_expect_eq(num(p, "wait_p95_ms"), 2500);
    cJSON_Delete(doc);
    sfl_history_series_free(s);
}

Test(history_read, missing_minutes_are_zero_and_null)
{
    sfl_history_series *s = series(SIX, SIX + 600, 60);
    add(s, SIX + 60, "1,1,60000,2");
    cJSON *doc = points(s);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "points")), 10);
    for (int i = 0; i < 10; i++) {
        cJSON *p = point(doc, i);
        cr_expect_eq(num(p, "t_ms"), (SIX + 60.0 * i) * 1000, "points oldest first, one a step");
        if (i == 1) {
            cr_expect_eq(num(p, "minutes"), 1);
            cr_expect_eq(num(p, "in_use_mean"), 1);
            continue;
        }
        cr_expect_eq(num(p, "minutes"), 0);
        cr_expect_eq(num(p, "in_use_peak"), 0);
        cr_expect_eq(num(p, "in_use_mean"), 0);
        cr_expect_eq(num(p, "grants"), 0);
        cr_expect(is_null(p, "limit") && is_null(p, "others_mean") && is_null(p, "wait_p50_ms") &&
                      is_null(p, "wait_p95_ms"),
                  "point %d: nulls where nothing was recorded", i);
    }
    cJSON_Delete(doc);
    sfl_history_series_free(s);
}

Test(history_read, five_minute_step_sums_five_minutes)
{
    sfl_history_series *s = series(SIX, SIX + 600, 300);
    /* Minutes 0-4: one lease held throughout, then 2 on minute 3; a peak of
     * 3 seen only as a start; the limit lowered from 3 to 2 at minute 4. */
    add(s, SIX + 0, "1,1,60000,3,0,0,0,0,1,0,0,0,0,1,1,0,0,0,0,0,0,1");
    add(s, SIX + 60, "1,1,60000,3,4,8,2,2,2,1,0,0,0,2,2,0,0,0,0,0,0,0,0,0,0,2");
    add(s, SIX + 120, "3,2,60000,3");
    add(s, SIX + 180, "2,2,120000,3,2,2,2,0,0,3,1,1,1");
    add(s, SIX + 240, "1,1,60000,2");
    /* Minute 5 belongs to the next step; minute 10 is past the range. */
    add(s, SIX + 300, "1,1,30000,2,0,0,0,0,7");
    add(s, SIX + 600, "9,9,540000,9,0,0,0,0,99");
    cJSON *doc = points(s);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "points")), 2);
    cJSON *p = point(doc, 0);
    cr_expect_eq(num(p, "minutes"), 5);
    cr_expect_eq(num(p, "in_use_peak"), 3, "max(start, peak) over the minutes");
    cr_expect_eq(num(p, "in_use_mean"), 1.2, "360000 lease-ms over 300 s");
    cr_expect_eq(num(p, "limit"), 2, "the newest minute's limit");
    cr_expect_eq(num(p, "others_peak"), 4);
    cr_expect_eq(num(p, "others_mean"), 2.5, "(8 + 2) / (2 + 2)");
    cr_expect_eq(num(p, "waiting_peak"), 2);
    cr_expect_eq(num(p, "grants"), 3);
    cr_expect_eq(num(p, "denials"), 4);
    cr_expect_eq(num(p, "lost"), 1);
    cr_expect_eq(num(p, "preempted"), 1);
    cr_expect_eq(num(p, "refused"), 1);
    cr_expect_eq(num(p, "checks"), 3);
    cr_expect_eq(num(p, "waits"), 3);
    /* Bins summed: one wait <= 100 ms, two <= 2.5 s. */
    cr_expect_eq(num(p, "wait_p50_ms"), 2500);
    cr_expect_eq(num(p, "wait_p95_ms"), 2500);
    cJSON *q = point(doc, 1);
    cr_expect_eq(num(q, "minutes"), 1);
    cr_expect_eq(num(q, "grants"), 7);
    cr_expect_eq(num(q, "in_use_mean"), 0.1);
    cr_expect(is_null(q, "wait_p50_ms"));
    cr_expect_eq(sfl_history_series_last_limit(s), 2);
    cJSON_Delete(doc);
    sfl_history_series_free(s);
}

Test(history_read, last_step_cut_by_the_range_end)
{
    /* Hours, the last one 10 minutes long: its mean is over 10 minutes. */
    sfl_history_series *s = series(SIX, SIX + 3600 + 600, 3600);
    add(s, SIX + 3600, "2,2,120000,2");
    cJSON *doc = points(s);
    cr_expect_eq(num(point(doc, 1), "in_use_mean"), 0.2);
    cr_expect_eq(num(point(doc, 1), "in_use_peak"), 2);
    cJSON_Delete(doc);
    sfl_history_series_free(s);
}

/*--- An hour key's HGETALL answer ------------------------------------------*/

static redisReply *node(int type)
{
    redisReply *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->type = type;
    return r;
}

static redisReply *str(int type, const char *s)
{
    redisReply *r = node(type);
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

/* An HGETALL answer from field, value, ... (NULL-terminated). */
static redisReply *hash(const char *const *fv)
{
    redisReply *r = node(REDIS_REPLY_ARRAY);
    size_t n = 0;
    while (fv[n])
        n++;
    r->element = calloc(n ? n : 1, sizeof(*r->element));
    for (size_t i = 0; i < n; i++)
        r->element[i] = str(REDIS_REPLY_STRING, fv[i]);
    r->elements = n;
    return r;
}

static void drop(redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++)
        drop(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

Test(history_read, hash_answer_into_series)
{
    sfl_history_series *s = series(SIX, SIX + 3600, 600);
    redisReply *r = hash((const char *[]){"0", "1,1,60000,2", "9", "2,1,60000,2", "10",
                                          "1,2,60000,3", "59", "0,0,0,-1", NULL});
    char err[300] = "";
    cr_assert_eq(sfl_history_series_add_hash(s, SIX, r, "k", err, sizeof(err)), 0, "%s", err);
    drop(r);
    cJSON *doc = points(s);
    cr_expect_eq(num(point(doc, 0), "minutes"), 2);
    cr_expect_eq(num(point(doc, 0), "in_use_peak"), 2);
    cr_expect_eq(num(point(doc, 1), "minutes"), 1);
    cr_expect_eq(num(point(doc, 1), "limit"), 3);
    cr_expect_eq(num(point(doc, 5), "minutes"), 1);
    cr_expect(is_null(point(doc, 5), "limit"), "-1 is unknown: null");
    cr_expect_eq(num(point(doc, 2), "minutes"), 0);
    cJSON_Delete(doc);
    sfl_history_series_free(s);
}

Test(history_read, hash_garbage_refused)
{
    const struct {
        const char *const *fv;
        const char *error;
    } c[] = {
        {(const char *[]){"60", "1,1,1,1", NULL}, "field \"60\" is not a minute"},
        {(const char *[]){"05", "1,1,1,1", NULL}, "field \"05\" is not a minute"},
        {(const char *[]){"x", "1,1,1,1", NULL}, "field \"x\" is not a minute"},
        {(const char *[]){"7", "1,1,oops,1", NULL}, "k: minute 7: position 2: \"oops\""},
        {(const char *[]){"7", NULL}, "not a hash of minutes"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        sfl_history_series *s = series(SIX, SIX + 3600, 60);
        redisReply *r = hash(c[i].fv);
        char err[300] = "";
        cr_expect_eq(sfl_history_series_add_hash(s, SIX, r, "k", err, sizeof(err)), -1,
                     "case %zu accepted", i);
        cr_expect_not_null(strstr(err, c[i].error), "case %zu: \"%s\" lacks \"%s\"", i, err,
                           c[i].error);
        drop(r);
        sfl_history_series_free(s);
    }
    sfl_history_series *s = series(SIX, SIX + 3600, 60);
    redisReply *r = str(REDIS_REPLY_ERROR, "WRONGTYPE Operation against a key holding the wrong "
                                           "kind of value");
    char err[300] = "";
    cr_expect_eq(
        sfl_history_series_add_hash(s, SIX, r, "sfl:history:x:2026120206", err, sizeof(err)), -1);
    cr_expect_not_null(strstr(err, "sfl:history:x:2026120206: WRONGTYPE"), "%s", err);
    drop(r);
    sfl_history_series_free(s);
}
