/* test_provider_minutes.c - the fake provider's GET /minutes (issue #18),
 * tested on a real provider before a history run leans on it: two
 * connections held at once in a minute are its peak 2 and opened 2, one
 * more after one of them closed is opened 3 but still peak 2, a refused
 * request (over the account's limit) is neither, another account's minute
 * is untouched, and bad parameters are refused. The minute logic on a
 * clock the test moves: tests/unit/test_fp_minutes.c. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PASS "pw-minutes"

static sfl_test_provider provider;
static th_viewer viewers[3];

static void setup(void)
{
    memset(&provider, 0, sizeof(provider));
    memset(viewers, 0, sizeof(viewers));
    static const char *const users[] = {"two:" PASS ":2", "idle:" PASS ":1", NULL};
    th_provider_start(&provider, users, 1000, NULL);
}

static void teardown(void)
{
    for (int i = 0; i < 3; i++)
        th_viewer_stop(&viewers[i]);
    th_provider_stop(&provider);
}

TestSuite(provider_minutes, .init = setup, .fini = teardown, .timeout = 90);

static int early_in_a_minute(void *arg)
{
    (void)arg;
    return time(NULL) % 60 < 40;
}

/* The minute starting at t of user in GET /minutes?user=USER; the caller
 * frees *doc. Fails the test when it is missing. */
static const cJSON *minute_of(const char *user, long long t, cJSON **doc)
{
    char path[96];
    snprintf(path, sizeof(path), "/minutes?user=%s", user);
    th_http_resp r;
    cr_assert_eq(th_http(provider.port, NULL, "GET", path, NULL, &r), 0, "no answer to %s", path);
    cr_assert_eq(r.status, 200, "%s: %d %s", path, r.status, r.body);
    cr_assert_not_null(r.json, "%s is not JSON: %s", path, r.body);
    *doc = r.json;
    r.json = NULL;
    const cJSON *mins = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(*doc, "users"), user), "minutes");
    cr_assert(cJSON_IsArray(mins), "%s: no users.%s.minutes in %s", path, user, r.body);
    const cJSON *m;
    cJSON_ArrayForEach(m, mins)
    {
        if ((long long)th_num_of(m, "t") == t) {
            th_http_free(&r);
            return m;
        }
    }
    cr_assert_fail("%s: no minute %lld in %s", path, t, r.body);
    return NULL;
}

static int status_of(const char *path)
{
    th_http_resp r;
    cr_assert_eq(th_http(provider.port, NULL, "GET", path, NULL, &r), 0, "no answer to %s", path);
    int st = r.status;
    th_http_free(&r);
    return st;
}

Test(provider_minutes, two_at_once_is_peak_two)
{
    /* Everything below happens within a few seconds: start it early in a
     * minute so that it all lands in one. */
    cr_assert(th_until(early_in_a_minute, NULL, 30000), "never early in a minute");
    long long t = (long long)time(NULL) / 60 * 60;

    cr_assert_eq(th_viewer_start(&viewers[0], provider.port, "two", PASS, 1), 200);
    cr_assert_eq(th_viewer_start(&viewers[1], provider.port, "two", PASS, 2), 200);
    cJSON *doc;
    const cJSON *m = minute_of("two", t, &doc);
    cr_expect_eq(th_num_of(m, "peak"), 2);
    cr_expect_eq(th_num_of(m, "opened"), 2);
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(m, "complete")));
    cr_expect_eq(th_num_of(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "users"), "two"), "limit"),
                 2);
    cJSON_Delete(doc);

    /* Over the limit: refused, neither opened nor a higher peak. */
    cr_assert_eq(th_viewer_start(&viewers[2], provider.port, "two", PASS, 3), 403);
    th_viewer_stop(&viewers[0]);
    int64_t until = th_now_ms() + 10000;
    while (th_provider_stat(&provider, "users.two.current") != 1 && th_now_ms() < until)
        usleep(10000);
    cr_assert_eq(th_provider_stat(&provider, "users.two.current"), 1);
    cr_assert_eq(th_viewer_start(&viewers[2], provider.port, "two", PASS, 3), 200);

    cr_assert_lt((long long)time(NULL), t + 60, "the test overran its minute");
    m = minute_of("two", t, &doc);
    cr_expect_eq(th_num_of(m, "peak"), 2);
    cr_expect_eq(th_num_of(m, "opened"), 3);
    cJSON_Delete(doc);
    m = minute_of("idle", t, &doc);
    cr_expect_eq(th_num_of(m, "peak"), 0);
    cr_expect_eq(th_num_of(m, "opened"), 0);
    cJSON_Delete(doc);
}

Test(provider_minutes, bad_parameters_are_refused)
{
    cr_expect_eq(status_of("/minutes?user=nobody"), 404);
    cr_expect_eq(status_of("/minutes?from=yesterday"), 400);
    cr_expect_eq(status_of("/minutes?to=-5"), 400);
    cr_expect_eq(status_of("/minutes?user=idle"), 200);
    cr_expect_eq(status_of("/minutes"), 200);
}
