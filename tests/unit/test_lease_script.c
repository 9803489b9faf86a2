/* test_lease_script.c - sfl_lease_answer_decode(): every answer of
 * acquire.lua and renew.lua is read here and nowhere else, so each shape
 * (granted, re-taken, denied, lost, unknown account) and what is not one of
 * them are pinned. The replies are real hiredis replies, parsed from the RESP
 * text Redis sends for the scripts' Lua tables. */
#include "lease_script.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <string.h>

TestSuite(lease_script);

/* The reply hiredis makes of resp; the caller frees it. */
static redisReply *parse(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    cr_assert_not_null(rd);
    cr_assert_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    void *r = NULL;
    cr_assert_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    cr_assert_not_null(r, "incomplete RESP: %s", resp);
    redisReaderFree(rd);
    return r;
}

static sfl_lease_answer decode(const char *resp)
{
    redisReply *r = parse(resp);
    sfl_lease_answer a;
    sfl_lease_answer_decode(r, &a);
    freeReplyObject(r);
    return a;
}

Test(lease_script, granted)
{
    /* {1, fence, deadline_ms, in_use, limit} */
    sfl_lease_answer a = decode("*5\r\n:1\r\n:42\r\n:1700000015000\r\n:2\r\n:3\r\n");
    cr_assert_eq(a.status, SFL_ANSWER_GRANTED);
    cr_assert_eq(a.fence, 42);
    cr_assert_eq(a.deadline_ms, 1700000015000LL);
    cr_assert_eq(a.in_use, 2);
    cr_assert_eq(a.limit, 3);
    cr_assert_eq(a.now_ms, -1, "a grant carries no Redis time of its own");
    cr_assert_eq(a.login, -1, "five elements: no login named (renew, or one login)");
}

Test(lease_script, granted_on_a_login)
{
    /* {1, fence, deadline_ms, in_use, limit, k}: k counts logins from 1 */
    sfl_lease_answer a = decode("*6\r\n:1\r\n:42\r\n:1700000015000\r\n:1\r\n:1\r\n:2\r\n");
    cr_assert_eq(a.status, SFL_ANSWER_GRANTED);
    cr_assert_eq(a.login, 1, "the second login: index 1");
    a = decode("*6\r\n:1\r\n:42\r\n:1700000015000\r\n:1\r\n:1\r\n:0\r\n");
    cr_assert_eq(a.login, -1, "no login 0: read as none");
}

Test(lease_script, retaken)
{
    sfl_lease_answer a = decode("*5\r\n:2\r\n:43\r\n:1700000016000\r\n:1\r\n:1\r\n");
    cr_assert_eq(a.status, SFL_ANSWER_RETAKEN);
    cr_assert_eq(a.fence, 43);
    cr_assert_eq(a.deadline_ms, 1700000016000LL);
}

Test(lease_script, denied)
{
    /* {0, retry_ms, in_use, limit, reason, position, now_ms} */
    sfl_lease_answer a =
        decode("*7\r\n:0\r\n:120\r\n:2\r\n:2\r\n$4\r\nfull\r\n:3\r\n:1700000000123\r\n");
    cr_assert_eq(a.status, SFL_ANSWER_DENIED);
    cr_assert_eq(a.retry_ms, 120);
    cr_assert_eq(a.in_use, 2);
    cr_assert_eq(a.limit, 2);
    cr_assert_str_eq(a.reason, "full");
    cr_assert_eq(a.position, 3);
    cr_assert_eq(a.now_ms, 1700000000123LL);
}

Test(lease_script, renew_lost_for_unknown_account)
{
    /* renew.lua's loss has acquire's denial shape, limit -1 */
    sfl_lease_answer a =
        decode("*7\r\n:0\r\n:0\r\n:1\r\n:-1\r\n$15\r\nunknown account\r\n:0\r\n:1700000000999\r\n");
    cr_assert_eq(a.status, SFL_ANSWER_DENIED);
    cr_assert_eq(a.limit, -1);
    cr_assert_str_eq(a.reason, "unknown account");
    cr_assert_eq(a.now_ms, 1700000000999LL);
}

Test(lease_script, unknown_account)
{
    sfl_lease_answer a = decode("*2\r\n:-1\r\n$15\r\nunknown account\r\n");
    cr_assert_eq(a.status, SFL_ANSWER_UNKNOWN);
    cr_assert_str_eq(a.reason, "unknown account");
    cr_assert_eq(a.limit, -1);
}

Test(lease_script, error_keeps_redis_text)
{
    redisReply *r = parse("-WRONGTYPE Operation against a key holding the wrong kind\r\n");
    sfl_lease_answer a;
    sfl_lease_answer_decode(r, &a);
    cr_assert_eq(a.status, SFL_ANSWER_NONE);
    cr_assert_not_null(a.error);
    cr_assert(strstr(a.error, "WRONGTYPE") != NULL, "%s", a.error);
    freeReplyObject(r);
}

/* Shapes that are not an answer of these scripts never read as a grant. */
Test(lease_script, not_an_answer)
{
    const char *const cases[] = {
        "*4\r\n:1\r\n:42\r\n:1700000015000\r\n:2\r\n",          /* a grant one short */
        "*6\r\n:0\r\n:120\r\n:2\r\n:2\r\n$4\r\nfull\r\n:3\r\n", /* a denial one short */
        "*5\r\n:7\r\n:1\r\n:1\r\n:1\r\n:1\r\n",                 /* no such status */
        "*1\r\n:1\r\n",                                         /* a status alone */
        ":1\r\n",                                               /* release.lua's answer */
        "$2\r\nOK\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sfl_lease_answer a = decode(cases[i]);
        cr_expect_eq(a.status, SFL_ANSWER_NONE, "case %zu read as status %d", i, a.status);
    }
    sfl_lease_answer a;
    sfl_lease_answer_decode(NULL, &a);
    cr_assert_eq(a.status, SFL_ANSWER_NONE, "a lost connection (NULL) is no answer");
    cr_assert_null(a.error);
}

/* release.lua's answers: 1 or 0, or with the node's next ask acquire.lua's
 * answer for it followed by 1 (the lease was given back). */
Test(lease_script, release_with_next_ask)
{
    const char *grant = "*7\r\n:1\r\n:43\r\n:1700000015000\r\n:1\r\n:1\r\n:1\r\n:1\r\n";
    const char *deny =
        "*8\r\n:0\r\n:120\r\n:1\r\n:1\r\n$4\r\nfull\r\n:0\r\n:1700000000000\r\n:1\r\n";
    redisReply *r = parse(grant);
    cr_assert(sfl_lease_released(r));
    sfl_lease_answer a;
    sfl_lease_answer_decode(r, &a);
    freeReplyObject(r);
    cr_assert_eq(a.status, SFL_ANSWER_GRANTED);
    cr_assert_eq(a.fence, 43);
    cr_assert_eq(a.login, 0, "the one login: index 0");
    r = parse(deny);
    cr_assert(sfl_lease_released(r));
    sfl_lease_answer_decode(r, &a);
    freeReplyObject(r);
    cr_assert_eq(a.status, SFL_ANSWER_DENIED);
    cr_assert_eq(a.retry_ms, 120);
    cr_assert_str_eq(a.reason, "full");
    cr_assert_eq(a.now_ms, 1700000000000LL);
    r = parse(":1\r\n");
    cr_assert(sfl_lease_released(r));
    freeReplyObject(r);
    r = parse(":0\r\n");
    cr_assert(!sfl_lease_released(r));
    freeReplyObject(r);
    /* acquire.lua's own answers are no release's. */
    r = parse("*7\r\n:0\r\n:120\r\n:1\r\n:1\r\n$4\r\nfull\r\n:3\r\n:1\r\n");
    cr_assert(!sfl_lease_released(r), "acquire.lua's denial read as a release");
    freeReplyObject(r);
    r = parse("*6\r\n:1\r\n:42\r\n:1700000015000\r\n:1\r\n:1\r\n:1\r\n");
    cr_assert(!sfl_lease_released(r), "acquire.lua's grant read as a release");
    freeReplyObject(r);
    cr_assert(!sfl_lease_released(NULL));
}
