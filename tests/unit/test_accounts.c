/* test_accounts.c - sfl_accounts_status_decode(): status.lua's answer for one
 * account becomes its entry of GET /v1/accounts. The replies are built by
 * hand in status.lua's shape (lua/status.lua). */
#include "accounts.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

TestSuite(accounts);

static redisReply *node(int type)
{
    redisReply *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->type = type;
    return r;
}

static redisReply *str(const char *s)
{
    redisReply *r = node(REDIS_REPLY_STRING);
    r->str = strdup(s);
    cr_assert_not_null(r->str);
    r->len = strlen(s);
    return r;
}

static redisReply *num(long long v)
{
    redisReply *r = node(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static redisReply *arr(size_t n, redisReply **v)
{
    redisReply *r = node(REDIS_REPLY_ARRAY);
    r->element = malloc(n * sizeof(*v));
    cr_assert_not_null(r->element);
    memcpy(r->element, v, n * sizeof(*v));
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

static char *decode(const redisReply *r)
{
    cJSON *e = cJSON_CreateObject();
    cr_assert_not_null(e);
    cr_assert_eq(sfl_accounts_status_decode(r, e), 0);
    char *text = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    return text;
}

Test(accounts, status_answer)
{
    redisReply *v[] = {num(2),
                       str("My provider"),
                       num(1),
                       num(0),
                       num(1700000000000LL),
                       num(3),
                       str("node-a:aa"),
                       num(1700000030000LL),
                       str("{\"node\":\"node-a\",\"stream\":\"5\",\"since_ms\":1699999990000}")};
    redisReply *r = arr(9, v);
    char *text = decode(r);
    cr_expect_str_eq(text, "{\"name\":\"My provider\",\"max_streams\":2,\"in_use\":1,"
                           "\"recovering_ms\":0,\"waiting\":3,\"holders\":[{\"node\":\"node-a\","
                           "\"stream\":\"5\",\"age_ms\":10000,\"lease\":\"node-a:aa\","
                           "\"expires_in_ms\":30000}]}");
    free(text);
    drop(r);
}

/* Holder texts that are not one JSON object, or that repeat a key the
 * decoder sets, still give one holder object with one of each key. */
Test(accounts, odd_holders)
{
    redisReply *v[] = {num(-1),
                       node(REDIS_REPLY_NIL),
                       num(0),
                       num(0),
                       num(1000),
                       num(0),
                       str("l1"),
                       num(1500),
                       str("[1,2]"),
                       num(7),
                       num(2000),
                       str("{\"since_ms\":1,\"since_ms\":2,\"lease\":\"x\"}"),
                       str("l3"),
                       str("9"),
                       node(REDIS_REPLY_NIL)};
    redisReply *r = arr(15, v);
    char *text = decode(r);
    cr_expect_str_eq(text, "{\"name\":\"\",\"max_streams\":-1,\"in_use\":0,\"recovering_ms\":0,"
                           "\"waiting\":0,\"holders\":[{\"lease\":\"l1\",\"expires_in_ms\":500},"
                           "{\"age_ms\":999,\"lease\":\"\",\"expires_in_ms\":1000},"
                           "{\"lease\":\"l3\",\"expires_in_ms\":-1000}]}");
    free(text);
    drop(r);
}

/* Values at the ends of int64 do not overflow (the differences are doubles). */
Test(accounts, extreme_times)
{
    redisReply *v[] = {num(1),
                       str("n"),
                       num(0),
                       num(0),
                       num(-9223372036854775807LL - 1),
                       num(0),
                       str("l"),
                       num(9223372036854775807LL),
                       str("{\"since_ms\":1e300}")};
    redisReply *r = arr(9, v);
    cJSON *e = cJSON_CreateObject();
    cr_assert_eq(sfl_accounts_status_decode(r, e), 0);
    const cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "holders"), 0);
    cr_assert_not_null(h);
    cr_expect_gt(cJSON_GetObjectItem(h, "expires_in_ms")->valuedouble, 1.8e19);
    cr_expect_lt(cJSON_GetObjectItem(h, "age_ms")->valuedouble, -1e299);
    cJSON_Delete(e);
    drop(r);
}

Test(accounts, not_a_status_answer)
{
    cJSON *e = cJSON_CreateObject();
    cr_expect_eq(sfl_accounts_status_decode(NULL, e), -1);
    redisReply *v[] = {num(1), num(2), num(3), num(4), num(5)};
    redisReply *r = arr(5, v);
    cr_expect_eq(sfl_accounts_status_decode(r, e), -1);
    cr_expect_null(e->child, "a refused answer leaves the entry alone");
    cJSON_Delete(e);
    drop(r);
}
