/* test_provider_panel.c - the fake provider's Xtream Codes panel API
 * (GET /player_api.php, see tests/tools/fake_provider.c), tested on its own
 * before sfl leans on it: active_cons is the provider's own live count of
 * the account (a held th_viewer shows as "1"), counts are strings unless
 * --panel USER:numbers=1, --panel USER:status=... shows in user_info, a
 * wrong password or an unknown user gets {"user_info": {"auth": 0}}, and
 * every request naming an account counts in its panel_requests. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>

#define PASS "Pw-panel-3a9d-distinctive"

static sfl_test_provider provider;
static th_viewer viewer;

static void setup(void)
{
    memset(&provider, 0, sizeof(provider));
    memset(&viewer, 0, sizeof(viewer));
    static const char *const users[] = {"plain:" PASS ":2", "nums:" PASS ":3", "expired:" PASS ":1",
                                        NULL};
    static const char *const args[] = {"--panel", "nums:numbers=1", "--panel",
                                       "expired:status=Expired", NULL};
    th_provider_start_args(&provider, users, 1000, NULL, args);
}

static void teardown(void)
{
    th_viewer_stop(&viewer);
    th_provider_stop(&provider);
}

TestSuite(provider_panel, .init = setup, .fini = teardown, .timeout = 30);

/* The user_info of the panel's answer for user; the caller frees *doc. */
static const cJSON *user_info(const char *user, const char *pass, cJSON **doc)
{
    char body[8192];
    th_provider_panel(&provider, user, pass, body, sizeof(body));
    *doc = cJSON_Parse(body);
    cr_assert_not_null(*doc, "player_api.php is not JSON: %s", body);
    const cJSON *ui = cJSON_GetObjectItem(*doc, "user_info");
    cr_assert(cJSON_IsObject(ui), "no user_info in %s", body);
    return ui;
}

Test(provider_panel, active_cons_is_the_live_count_as_a_string)
{
    cJSON *doc;
    const cJSON *ui = user_info("plain", PASS, &doc);
    cr_expect_eq(th_num_of(ui, "auth"), 1);
    cr_expect_str_eq(th_str_of(ui, "status"), "Active");
    cr_expect_str_eq(th_str_of(ui, "password"), PASS);
    cr_expect_str_eq(th_str_of(ui, "active_cons"), "0");
    cr_expect_str_eq(th_str_of(ui, "max_connections"), "2");
    cJSON_Delete(doc);

    cr_assert_eq(th_viewer_start(&viewer, provider.port, "plain", PASS, 1), 200);
    ui = user_info("plain", PASS, &doc);
    cr_expect_str_eq(th_str_of(ui, "active_cons"), "1");
    const cJSON *si = cJSON_GetObjectItem(doc, "server_info");
    char port[16];
    snprintf(port, sizeof(port), "%d", provider.port);
    cr_expect_str_eq(th_str_of(si, "port"), port);
    cJSON_Delete(doc);

    cr_expect_eq(th_provider_stat(&provider, "users.plain.panel_requests"), 2);
    cr_expect_eq(th_provider_stat(&provider, "users.plain.requests"), 1);
}

Test(provider_panel, numbers_gives_json_numbers)
{
    cr_assert_eq(th_viewer_start(&viewer, provider.port, "nums", PASS, 1), 200);
    cJSON *doc;
    const cJSON *ui = user_info("nums", PASS, &doc);
    const cJSON *cons = cJSON_GetObjectItem(ui, "active_cons");
    const cJSON *max = cJSON_GetObjectItem(ui, "max_connections");
    cr_expect(cJSON_IsNumber(cons) && cons->valuedouble == 1, "active_cons: want the number 1");
    cr_expect(cJSON_IsNumber(max) && max->valuedouble == 3, "max_connections: want the number 3");
    cJSON_Delete(doc);
}

Test(provider_panel, status_expired_shows)
{
    cJSON *doc;
    const cJSON *ui = user_info("expired", PASS, &doc);
    cr_expect_eq(th_num_of(ui, "auth"), 1);
    cr_expect_str_eq(th_str_of(ui, "status"), "Expired");
    cJSON_Delete(doc);
}

Test(provider_panel, wrong_password_or_unknown_user_gives_auth_0)
{
    const char *who[][2] = {{"plain", "not-the-password"}, {"nobody", PASS}};
    for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++) {
        cJSON *doc;
        const cJSON *ui = user_info(who[i][0], who[i][1], &doc);
        cr_expect_eq(th_num_of(ui, "auth"), 0, "%s", who[i][0]);
        cr_expect_null(cJSON_GetObjectItem(ui, "password"), "%s: no password echoed", who[i][0]);
        cJSON_Delete(doc);
    }
    cr_expect_eq(th_provider_stat(&provider, "users.plain.panel_requests"), 1);
}
