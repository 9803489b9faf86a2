/* test_conf_history.c - the "history" section of the config
 * (conf_history.c): its defaults, good values, and every bad value refused
 * with its JSON path in the message, nothing half-applied. */
#include "conf.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

TestSuite(conf_history, .init = th_clear_env);

static sfl_conf *parse(const char *json, char *err, size_t len)
{
    return sfl_conf_parse(json, strlen(json), "cfg.json", err, len);
}

Test(conf_history, defaults)
{
    char err[256] = "";
    sfl_conf *c = parse("{}", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->history_enabled, 1);
    cr_assert_eq(c->history_retention_days, 7);
    cr_assert_eq(c->history_stream_results, 20);
    cr_assert_eq(c->history_flush_ms, 60000);
    sfl_conf_free(c);
}

Test(conf_history, good_values)
{
    char err[256] = "";
    sfl_conf *c = parse("{\"history\": {\"enabled\": false, \"retention_days\": 365, "
                        "\"stream_results\": 0, \"flush_ms\": 1000}}",
                        err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->history_enabled, 0);
    cr_assert_eq(c->history_retention_days, 365);
    cr_assert_eq(c->history_stream_results, 0);
    cr_assert_eq(c->history_flush_ms, 1000);
    sfl_conf_free(c);
    c = parse("{\"history\": {\"retention_days\": 1, \"stream_results\": 1000, \"flush_ms\": "
              "60000}}",
              err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->history_enabled, 1, "enabled stays on when not given");
    cr_assert_eq(c->history_stream_results, 1000);
    sfl_conf_free(c);
}

struct bad_case {
    const char *json, *path, *says;
};

static const struct bad_case bad_cases[] = {
    {"{\"history\": []}", "history", "expected an object"},
    {"{\"history\": {\"enabled\": 1}}", "history.enabled", "got 1"},
    {"{\"history\": {\"enabled\": null}}", "history.enabled", "got null"},
    {"{\"history\": {\"retention_days\": 0}}", "history.retention_days", "got 0"},
    {"{\"history\": {\"retention_days\": 366}}", "history.retention_days", "365"},
    {"{\"history\": {\"retention_days\": 7.5}}", "history.retention_days", "integer"},
    {"{\"history\": {\"retention_days\": \"7\"}}", "history.retention_days", "got \"7\""},
    {"{\"history\": {\"stream_results\": -1}}", "history.stream_results", "got -1"},
    {"{\"history\": {\"stream_results\": 1001}}", "history.stream_results", "1000"},
    {"{\"history\": {\"flush_ms\": 999}}", "history.flush_ms", "got 999"},
    {"{\"history\": {\"flush_ms\": 60001}}", "history.flush_ms", "60000"},
    {"{\"history\": {\"flush_ms\": 1e3, \"flush\": 1}}", "history.flush", "unknown key"},
};

ParameterizedTestParameters(conf_history, bad)
{
    static size_t rows[sizeof(bad_cases) / sizeof(bad_cases[0])];
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
        rows[r] = r;
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]));
}

ParameterizedTest(size_t *i, conf_history, bad)
{
    const struct bad_case *bc = &bad_cases[*i];
    char err[512] = "";
    sfl_conf *c = parse(bc->json, err, sizeof(err));
    cr_assert_null(c, "accepted %s", bc->json);
    char want[128];
    snprintf(want, sizeof(want), "cfg.json: %s: ", bc->path);
    cr_expect_eq(strncmp(err, want, strlen(want)), 0, "for %s: \"%s\" does not start with \"%s\"",
                 bc->json, err, want);
    cr_expect_not_null(strstr(err, bc->says), "for %s: \"%s\" does not say \"%s\"", bc->json, err,
                       bc->says);
}

/* A caller that changes a field after parsing is checked again. */
Test(conf_history, validate_after_a_change)
{
    char err[256] = "";
    sfl_conf *c = parse("{}", err, sizeof(err));
    cr_assert_not_null(c);
    c->history_flush_ms = 10;
    cr_assert_eq(sfl_conf_validate(c, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "history.flush_ms"), "%s", err);
    sfl_conf_free(c);
}
