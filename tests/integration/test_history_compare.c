/* test_history_compare.c - the verdict of a history run
 * (tests/tools/history_compare.c, run by tests/tools/history_run.sh), on
 * answers written here in the shapes of GET /v1/history, the fake
 * provider's GET /minutes and the dashboard's chart: agreeing answers pass,
 * and each way of disagreeing fails with its word in the table (a history
 * peak two from the provider's, a provider above the limit, a minute
 * missing, connections other than checks, a chart point that differs or is
 * missing); bad input exits 2. A history one from the provider's (one
 * check) passes. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1796191200LL /* 2026-12-02T06:00:00Z */

static char dir[128];

static void setup(void)
{
    th_tmpdir(dir, sizeof(dir));
}

TestSuite(history_compare, .init = setup, .timeout = 60);

/* Three minutes: 2, 4 (3 at once, one waiting) and 1 checks. */
static const char *const plan = "1796191200 2\n1796191260 4\n1796191320 1\n";

/* The provider's answer with the given peaks and admissions. */
static void provider(const char *name, const long peak[3], const long opened[3])
{
    char text[1024], path[256];
    snprintf(text, sizeof(text),
             "{\"now\": %lld, \"users\": {\"hist\": {\"limit\": 3, \"minutes\": ["
             "{\"t\": %lld, \"peak\": %ld, \"opened\": %ld, \"complete\": true},"
             "{\"t\": %lld, \"peak\": %ld, \"opened\": %ld, \"complete\": true},"
             "{\"t\": %lld, \"peak\": %ld, \"opened\": %ld, \"complete\": true}]}}}",
             T0 + 200, T0, peak[0], opened[0], T0 + 60, peak[1], opened[1], T0 + 120, peak[2],
             opened[2]);
    th_write_file(dir, name, text, path, sizeof(path));
}

/* /v1/history's answer with the given peaks (npoints of them). */
static void history(const char *name, const long peak[3], int npoints)
{
    char text[2048], path[256];
    int n = snprintf(text, sizeof(text),
                     "{\"login\": \"hist-a\", \"step_s\": 60, \"limit_now\": 3, \"points\": [");
    for (int i = 0; i < npoints; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n,
                      "%s{\"t_ms\": %lld, \"minutes\": 1, \"in_use_peak\": %ld, "
                      "\"in_use_mean\": 0.5, \"waiting_peak\": %d, \"grants\": 2}",
                      i ? "," : "", (T0 + 60 * i) * 1000, peak[i], i == 1);
    snprintf(text + n, sizeof(text) - (size_t)n, "]}");
    th_write_file(dir, name, text, path, sizeof(path));
}

/* The dashboard's DOM as Chromium dumps it: hist-a's card, its usage chart
 * starting at T0 - 60 s (a point before the run) with these values. */
static void dom(const char *name, const char *values)
{
    char text[2048], path[256];
    snprintf(text, sizeof(text),
             "<html><body><main id=\"history\"><section class=\"account hist\" "
             "data-login=\"other\"><svg class=\"chart usage\" data-t0=\"%lld\" "
             "data-step-ms=\"60000\"><path data-series=\"in_use_peak\" "
             "data-values=\"9,9,9,9\"></path></svg></section>"
             "<section class=\"account hist\" data-login=\"hist-a\"><h3>hist-a</h3>"
             "<div><svg class=\"chart usage\" viewBox=\"0 0 600 90\" data-points=\"4\" "
             "data-t0=\"%lld\" data-step-ms=\"60000\"><path class=\"s-in_use_mean\" "
             "data-series=\"in_use_mean\" data-values=\"0,0.5,0.5,0.5\"></path>"
             "<path class=\"s-in_use_peak\" data-series=\"in_use_peak\" data-draw=\"line\" "
             "data-values=\"%s\"></path></svg></div></section></main></body></html>",
             (T0 - 60) * 1000, (T0 - 60) * 1000, values);
    th_write_file(dir, name, text, path, sizeof(path));
}

/* Runs sfl-history-compare on files of dir (NULL: not given); returns its
 * exit code, its stdout in out. */
static int compare(const char *hist, const char *prov, const char *dom_file, char *out, size_t len)
{
    char p_plan[256], p_hist[256], p_prov[256], p_dom[256], p_out[256], p_err[256];
    th_write_file(dir, "plan.txt", plan, p_plan, sizeof(p_plan));
    snprintf(p_hist, sizeof(p_hist), "%s/%s", dir, hist ? hist : "");
    snprintf(p_prov, sizeof(p_prov), "%s/%s", dir, prov);
    snprintf(p_dom, sizeof(p_dom), "%s/%s", dir, dom_file ? dom_file : "");
    snprintf(p_out, sizeof(p_out), "%s/out.txt", dir);
    snprintf(p_err, sizeof(p_err), "%s/err.txt", dir);
    const char *argv[16] = {SFL_TOOLS_DIR "/sfl-history-compare",
                            "--plan",
                            p_plan,
                            "--provider",
                            p_prov,
                            "--user",
                            "hist",
                            "--limit",
                            "3"};
    int n = 9;
    if (hist) {
        argv[n++] = "--history";
        argv[n++] = p_hist;
    }
    if (dom_file) {
        argv[n++] = "--dom";
        argv[n++] = p_dom;
        argv[n++] = "--login";
        argv[n++] = "hist-a";
    }
    argv[n] = NULL;
    int st = th_wait(th_spawn_tied((char *const *)argv, p_out, p_err), 30000);
    cr_assert_neq(st, -1, "sfl-history-compare did not finish");
    char *text = th_read_file(p_out), *err = th_read_file(p_err);
    snprintf(out, len, "%s%s", text ? text : "", err ? err : "");
    free(text);
    free(err);
    return th_exit_code(st);
}

static const long good_peak[3] = {2, 3, 1}, good_opened[3] = {2, 4, 1};

Test(history_compare, agreeing_answers_pass)
{
    char out[4096];
    provider("p.json", good_peak, good_opened);
    history("h.json", good_peak, 3);
    dom("d.html", "0,2,3,1");
    cr_assert_eq(compare("h.json", "p.json", "d.html", out, sizeof(out)), 0, "%s", out);
    cr_expect(strstr(out, "PASS: 3 minutes, 7 checks, 0 problems") != NULL, "%s", out);
    cr_expect(strstr(out, "dashboard chart: 3 points") != NULL, "%s", out);
    /* one check apart (the lease counted before the connection) passes */
    history("h1.json", (long[]){2, 3, 2}, 3);
    dom("d1.html", "0,2,3,2");
    cr_assert_eq(compare("h1.json", "p.json", "d1.html", out, sizeof(out)), 0, "%s", out);
    /* without history: the provider against the plan alone */
    cr_assert_eq(compare(NULL, "p.json", NULL, out, sizeof(out)), 0, "%s", out);
}

Test(history_compare, a_history_two_from_the_provider_fails)
{
    char out[4096];
    provider("p.json", good_peak, good_opened);
    history("h.json", (long[]){2, 3, 3}, 3);
    cr_assert_eq(compare("h.json", "p.json", NULL, out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "MISMATCH (|3 - 1| > 1)") != NULL, "%s", out);
    cr_expect(strstr(out, "FAIL: 3 minutes, 7 checks, 1 problem\n") != NULL, "%s", out);
}

Test(history_compare, a_provider_over_the_limit_fails)
{
    char out[4096];
    provider("p.json", (long[]){2, 4, 1}, good_opened);
    history("h.json", (long[]){2, 4, 1}, 3);
    cr_assert_eq(compare("h.json", "p.json", NULL, out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "OVER THE LIMIT (4 > 3)") != NULL, "%s", out);
}

Test(history_compare, a_minute_missing_from_the_history_fails)
{
    char out[4096];
    provider("p.json", good_peak, good_opened);
    history("h.json", good_peak, 2);
    cr_assert_eq(compare("h.json", "p.json", NULL, out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "MISSING in /v1/history") != NULL, "%s", out);
}

Test(history_compare, connections_other_than_checks_fail)
{
    char out[4096];
    provider("p.json", good_peak, (long[]){2, 3, 1}); /* a check never reached it */
    history("h.json", good_peak, 3);
    cr_assert_eq(compare("h.json", "p.json", NULL, out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "admitted 6 connections in these minutes, the run submitted 7") != NULL,
              "%s", out);
}

Test(history_compare, a_chart_that_differs_or_misses_fails)
{
    char out[4096];
    provider("p.json", good_peak, good_opened);
    history("h.json", good_peak, 3);
    dom("d.html", "0,2,2,1");
    cr_assert_eq(compare("h.json", "p.json", "d.html", out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "CHART DIFFERS (history 3)") != NULL, "%s", out);
    dom("d2.html", "0,2,,1");
    cr_assert_eq(compare("h.json", "p.json", "d2.html", out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "CHART EMPTY (history 3)") != NULL, "%s", out);
    dom("d3.html", "0,2,3"); /* the chart ends before the last minute */
    cr_assert_eq(compare("h.json", "p.json", "d3.html", out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "CHART MISSING (history 1)") != NULL, "%s", out);
}

Test(history_compare, bad_input_exits_2)
{
    char out[4096], path[256];
    provider("p.json", good_peak, good_opened);
    th_write_file(dir, "h.json", "{\"points\": ", path, sizeof(path));
    cr_expect_eq(compare("h.json", "p.json", NULL, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "h.json is not JSON") != NULL, "%s", out);
    th_write_file(dir, "d.html", "<html>no chart</html>", path, sizeof(path));
    history("h.json", good_peak, 3);
    cr_expect_eq(compare("h.json", "p.json", "d.html", out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "no history card for hist-a") != NULL, "%s", out);
    cr_expect_eq(compare("h.json", "missing.json", NULL, out, sizeof(out)), 2, "%s", out);
}
