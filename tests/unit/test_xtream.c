/* test_xtream.c - what a panel's player_api.php answer says (xtream.c):
 * active_cons as a string or a number, a login that cannot be used (auth 0,
 * a status other than Active), and answers that are not the panel's. */
#include "xtream.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(xtream);

static int read_answer(const char *body, long long *cons, char *why)
{
    *cons = -7;
    why[0] = '\0';
    return sfl_xtream_read(body, strlen(body), cons, why, 64);
}

Test(xtream, active_cons_as_a_string_or_a_number)
{
    long long c;
    char why[64];
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": 1, \"status\": \"Active\", "
                             "\"active_cons\": \"1\", \"max_connections\": \"2\", "
                             "\"password\": \"secret\"}}",
                             &c, why),
                 1);
    cr_assert_eq(c, 1);
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": 1, \"status\": \"Active\", "
                             "\"active_cons\": 3}}",
                             &c, why),
                 1);
    cr_assert_eq(c, 3);
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": \"1\", \"active_cons\": \"0\"}}", &c, why),
                 1, "no status: usable");
    cr_assert_eq(c, 0);
}

Test(xtream, a_login_that_cannot_be_used)
{
    long long c;
    char why[64];
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": 0}}", &c, why), 0);
    cr_assert_str_eq(why, "auth 0");
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": 1, \"status\": \"Expired\", "
                             "\"active_cons\": \"0\"}}",
                             &c, why),
                 0);
    cr_assert_str_eq(why, "status Expired");
    cr_assert_eq(
        read_answer("{\"user_info\": {\"auth\": 1, \"status\": \"Ban\\u001bned\"}}", &c, why), 0);
    cr_assert_str_eq(why, "status Ban\\x1bned", "a control character comes out escaped");
}

Test(xtream, answers_that_are_not_the_panel_s)
{
    long long c;
    char why[64];
    cr_assert_eq(read_answer("", &c, why), -1);
    cr_assert_eq(read_answer("<html>", &c, why), -1);
    cr_assert_eq(read_answer("{\"user_info\": []}", &c, why), -1);
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": 1, \"status\": \"Active\"}}", &c, why), -1,
                 "no active_cons");
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": 1, \"active_cons\": \"-1\"}}", &c, why),
                 -1);
    cr_assert_eq(read_answer("{\"user_info\": {\"auth\": 1, \"active_cons\": \"2x\"}}", &c, why),
                 -1);
}

static int read_plan(const char *body, sfl_xtream_plan *p)
{
    return sfl_xtream_read_plan(body, strlen(body), p);
}

/* The plan: max_connections a string or a number (0 = unlimited, absent =
 * -1), exp_date a UNIX time as text or none, status escaped. */
Test(xtream, plan_of_an_answer)
{
    sfl_xtream_plan p;
    cr_assert_eq(
        read_plan("{\"user_info\": {\"auth\": 1, \"status\": \"Active\", \"max_connections\":"
                  " \"1\", \"exp_date\": \"1767225600\", \"password\": \"pw-x\"}}",
                  &p),
        0);
    cr_assert_eq(p.max_connections, 1);
    cr_assert_str_eq(p.exp_date, "1767225600");
    cr_assert_str_eq(p.status, "Active");
    cr_assert_eq(read_plan("{\"user_info\": {\"auth\": \"1\", \"max_connections\": 0, \"exp_date\":"
                           " null, \"status\": \"Exp\\u001bired\"}}",
                           &p),
                 0);
    cr_assert_eq(p.max_connections, 0, "0 = unlimited, kept as 0");
    cr_assert_str_eq(p.exp_date, "");
    cr_assert_str_eq(p.status, "Exp\\x1bired");
    cr_assert_eq(read_plan("{\"user_info\": {\"auth\": 1}}", &p), 0);
    cr_assert_eq(p.max_connections, -1, "not said");
    cr_assert_eq(read_plan("{\"user_info\": {\"auth\": 0}}", &p), -1);
    cr_assert_eq(read_plan("<html>", &p), -1);
}
