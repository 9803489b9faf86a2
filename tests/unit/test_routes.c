/* test_routes.c - routes.c: which logins an account goes through and where
 * each login's keys are (the group's hash tag, the first login of the group
 * keeping the account keys of old), shared logins as one, limits that
 * disagree, the URL of a login, and a change that fails leaving the table
 * as it was. No Redis. */
#include "conf.h"
#include "routes.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(routes);

static sfl_login_conf L(const char *id, long long max, const char *search, const char *replace)
{
    return (sfl_login_conf){
        .id = (char *)id, .max_streams = max, .search = (char *)search, .replace = (char *)replace};
}

static const sfl_login *login_of(sfl_routes *r, long long account, const char *id)
{
    const sfl_route *rt = sfl_routes_get(r, account);
    cr_assert_not_null(rt);
    const sfl_login *lg = sfl_route_login(rt, id, NULL);
    cr_assert_not_null(lg, "account %lld has no login %s", account, id);
    return lg;
}

Test(routes, an_account_nobody_set_is_one_login_under_its_own_keys)
{
    sfl_routes *r = sfl_routes_new("sfl");
    const sfl_route *rt = sfl_routes_get(r, 7);
    cr_assert_eq(rt->nlogins, 1);
    cr_expect_str_eq(rt->logins[0]->id, "7");
    cr_expect_str_eq(rt->logins[0]->prefix, "sfl:{a:7}:");
    cr_expect_str_eq(rt->waiters, "sfl:{a:7}:");
    cr_expect_eq(rt->group, 7);
    cr_expect_eq(rt->logins[0]->known, -1);
    sfl_routes_hint(r, 7, 0, 3);
    cr_expect_eq(sfl_routes_get(r, 7)->logins[0]->known, 3);
    sfl_routes_free(r);
}

Test(routes, shared_logins_group_accounts_under_the_smallest_id)
{
    sfl_login_conf l1[] = {L("a", 1, NULL, NULL), L("b", 2, NULL, NULL)};
    sfl_login_conf l2[] = {L("b", 2, NULL, NULL)};
    sfl_login_conf l5[] = {L("c", 1, NULL, NULL)};
    sfl_account_conf accs[] = {{.id = 2, .logins = l2, .nlogins = 1},
                               {.id = 1, .logins = l1, .nlogins = 2},
                               {.id = 5, .logins = l5, .nlogins = 1},
                               {.id = 3, .max_streams = 4}};
    char err[256];
    sfl_routes *r = sfl_routes_new("sfl");
    cr_assert_eq(sfl_routes_set(r, accs, 4, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(sfl_routes_get(r, 1)->group, 1);
    cr_expect_eq(sfl_routes_get(r, 2)->group, 1);
    cr_expect_str_eq(login_of(r, 1, "a")->prefix, "sfl:{a:1}:");
    cr_expect_str_eq(login_of(r, 1, "b")->prefix, "sfl:{a:1}:l:b:");
    cr_expect_eq(login_of(r, 1, "b"), login_of(r, 2, "b"), "one login, one object");
    cr_expect_eq(login_of(r, 1, "b")->naccounts, 2);
    cr_expect_eq(login_of(r, 1, "b")->accounts[0], 1);
    cr_expect_eq(login_of(r, 1, "b")->accounts[1], 2);
    cr_expect_str_eq(sfl_routes_get(r, 1)->waiters, "sfl:{a:1}:");
    cr_expect_str_eq(sfl_routes_get(r, 2)->waiters, "sfl:{a:1}:a:2:");
    /* Route order is the config's. */
    cr_expect_str_eq(sfl_routes_get(r, 1)->logins[0]->id, "a");
    cr_expect_str_eq(sfl_routes_get(r, 1)->logins[1]->id, "b");
    /* Not joined: their own tag; a lone account keeps its old keys. */
    cr_expect_str_eq(login_of(r, 5, "c")->prefix, "sfl:{a:5}:");
    cr_expect_str_eq(login_of(r, 3, "3")->prefix, "sfl:{a:3}:");
    cr_expect_eq(login_of(r, 3, "3")->max_streams, 4);
    cr_expect_eq(login_of(r, 3, "3")->known, 4);
    sfl_routes_free(r);
}

Test(routes, a_chain_of_shared_logins_is_one_group)
{
    sfl_login_conf l9[] = {L("x", 1, NULL, NULL)};
    sfl_login_conf l4[] = {L("x", 1, NULL, NULL), L("y", 1, NULL, NULL)};
    sfl_login_conf l6[] = {L("y", 1, NULL, NULL)};
    sfl_account_conf accs[] = {{.id = 9, .logins = l9, .nlogins = 1},
                               {.id = 4, .logins = l4, .nlogins = 2},
                               {.id = 6, .logins = l6, .nlogins = 1}};
    char err[256];
    sfl_routes *r = sfl_routes_new("ns");
    cr_assert_eq(sfl_routes_set(r, accs, 3, err, sizeof(err)), 0, "%s", err);
    for (long long a = 4; a <= 9; a += (a == 4 ? 2 : 3))
        cr_expect_eq(sfl_routes_get(r, a)->group, 4, "account %lld", a);
    cr_expect_str_eq(login_of(r, 9, "x")->prefix, "ns:{a:4}:");
    cr_expect_str_eq(login_of(r, 6, "y")->prefix, "ns:{a:4}:l:y:");
    cr_expect_str_eq(sfl_routes_get(r, 9)->waiters, "ns:{a:4}:a:9:");
    sfl_routes_free(r);
}

Test(routes, limits_that_disagree_count_the_smaller)
{
    sfl_login_conf l1[] = {L("s", 3, NULL, NULL)};
    sfl_login_conf l2[] = {L("s", 2, NULL, NULL)};
    sfl_login_conf l3[] = {L("u", 0, NULL, NULL)};
    sfl_login_conf l4[] = {L("u", 5, NULL, NULL)};
    sfl_account_conf accs[] = {{.id = 1, .logins = l1, .nlogins = 1},
                               {.id = 2, .logins = l2, .nlogins = 1},
                               {.id = 3, .logins = l3, .nlogins = 1},
                               {.id = 4, .logins = l4, .nlogins = 1}};
    char err[256];
    sfl_routes *r = sfl_routes_new("sfl");
    cr_assert_eq(sfl_routes_set(r, accs, 4, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(login_of(r, 1, "s")->max_streams, 2);
    cr_expect_eq(login_of(r, 3, "u")->max_streams, 5, "0 is unlimited: 5 is the smaller");
    sfl_routes_free(r);
}

Test(routes, a_later_set_replaces_an_account_and_regroups)
{
    sfl_login_conf l1[] = {L("s", 1, NULL, NULL)};
    sfl_login_conf l2[] = {L("s", 1, NULL, NULL)};
    sfl_account_conf accs[] = {{.id = 1, .logins = l1, .nlogins = 1},
                               {.id = 2, .logins = l2, .nlogins = 1}};
    char err[256];
    sfl_routes *r = sfl_routes_new("sfl");
    cr_assert_eq(sfl_routes_set(r, accs, 2, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(sfl_routes_get(r, 2)->group, 1);
    sfl_account_conf again = {.id = 2, .max_streams = 2};
    cr_assert_eq(sfl_routes_set(r, &again, 1, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(sfl_routes_get(r, 2)->group, 2);
    cr_expect_str_eq(login_of(r, 2, "2")->prefix, "sfl:{a:2}:");
    cr_expect_eq(login_of(r, 1, "s")->naccounts, 1, "account 1 kept, alone now");
    sfl_routes_free(r);
}

Test(routes, the_url_of_each_login)
{
    sfl_login_conf l1[] = {L("main", 1, NULL, NULL), L("alt", 1, "/live/u1/p1/", "/live/u2/p2/")};
    sfl_account_conf acc = {.id = 1, .logins = l1, .nlogins = 2};
    char err[256];
    sfl_routes *r = sfl_routes_new("sfl");
    cr_assert_eq(sfl_routes_set(r, &acc, 1, err, sizeof(err)), 0, "%s", err);
    const sfl_route *rt = sfl_routes_get(r, 1);
    char *u0 = sfl_route_url(rt, 0, "http://h/live/u1/p1/9.ts");
    char *u1 = sfl_route_url(rt, 1, "http://h/live/u1/p1/9.ts");
    cr_expect_str_eq(u0, "http://h/live/u1/p1/9.ts");
    cr_expect_str_eq(u1, "http://h/live/u2/p2/9.ts");
    free(u0);
    free(u1);
    sfl_routes_free(r);
}

Test(routes, a_rewrite_that_does_not_compile_changes_nothing)
{
    sfl_login_conf good[] = {L("main", 2, NULL, NULL)};
    sfl_login_conf bad[] = {L("main", 2, NULL, NULL), L("alt", 1, "(?=x)", "y")};
    sfl_account_conf acc = {.id = 1, .logins = good, .nlogins = 1};
    char err[256] = "";
    sfl_routes *r = sfl_routes_new("sfl");
    cr_assert_eq(sfl_routes_set(r, &acc, 1, err, sizeof(err)), 0, "%s", err);
    acc.logins = bad;
    acc.nlogins = 2;
    cr_assert_eq(sfl_routes_set(r, &acc, 1, err, sizeof(err)), -1);
    cr_expect(strstr(err, "account 1, login alt") != NULL, "%s", err);
    const sfl_route *rt = sfl_routes_get(r, 1);
    cr_expect_eq(rt->nlogins, 1);
    cr_expect_str_eq(rt->logins[0]->id, "main");
    sfl_routes_free(r);
}
