/* test_epoch.c - sfl_epoch_decode(): epoch.lua's answer, read once when a
 * connection is set up (store.c). Each state, and what is not an answer of
 * the script (an error, a wrong shape), which must never read as "intact". */
#include "epoch.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <string.h>

TestSuite(epoch);

static int decode(const char *resp, sfl_epoch *e)
{
    redisReader *rd = redisReaderCreate();
    cr_assert_not_null(rd);
    cr_assert_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    void *r = NULL;
    cr_assert_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    cr_assert_not_null(r, "incomplete RESP: %s", resp);
    redisReaderFree(rd);
    int rc = sfl_epoch_decode(r, e);
    freeReplyObject(r);
    return rc;
}

Test(epoch, every_state)
{
    static const struct {
        const char *resp;
        sfl_epoch_state state;
        long long recovering;
        const char *reason;
    } cases[] = {
        {"*4\r\n$7\r\nmissing\r\n:0\r\n$0\r\n\r\n:0\r\n", SFL_EPOCH_MISSING, 0, ""},
        {"*4\r\n$7\r\ncreated\r\n:0\r\n$4\r\ninit\r\n:1700000000000\r\n", SFL_EPOCH_CREATED, 0,
         "init"},
        {"*4\r\n$7\r\nchanged\r\n:15000\r\n$8\r\nfailover\r\n:1700000000000\r\n", SFL_EPOCH_CHANGED,
         15000, "failover"},
        {"*4\r\n$6\r\nclosed\r\n:0\r\n$7\r\nmissing\r\n:1700000000000\r\n", SFL_EPOCH_CLOSED, 0,
         "missing"},
        {"*4\r\n$6\r\nintact\r\n:1200\r\n$7\r\nrestart\r\n:1700000000000\r\n", SFL_EPOCH_INTACT,
         1200, "restart"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sfl_epoch e;
        cr_assert_eq(decode(cases[i].resp, &e), 0, "case %zu", i);
        cr_assert_eq(e.state, cases[i].state, "case %zu", i);
        cr_assert_eq(e.recovering_ms, cases[i].recovering, "case %zu", i);
        cr_assert_str_eq(e.reason, cases[i].reason, "case %zu", i);
    }
}

Test(epoch, eviction_policy_is_read)
{
    sfl_epoch e;
    cr_assert_eq(
        decode("*5\r\n$6\r\nintact\r\n:0\r\n$4\r\ninit\r\n:1\r\n$11\r\nallkeys-lru\r\n", &e), 0);
    cr_assert_str_eq(e.policy, "allkeys-lru");
    cr_assert_eq(decode("*4\r\n$6\r\nintact\r\n:0\r\n$4\r\ninit\r\n:1\r\n", &e), 0);
    cr_assert_str_eq(e.policy, "", "a four-element answer (an older script) says no policy");
}

Test(epoch, what_is_not_an_answer_is_unknown)
{
    static const char *const bad[] = {
        "-NOSCRIPT No matching script\r\n",
        "-READONLY You can't write against a read only replica.\r\n",
        ":1\r\n",
        "*3\r\n$6\r\nintact\r\n:0\r\n$0\r\n\r\n",       /* too short */
        "*4\r\n$6\r\nbroken\r\n:0\r\n$0\r\n\r\n:0\r\n", /* no such state */
        "*4\r\n:1\r\n:0\r\n$0\r\n\r\n:0\r\n",           /* state not a string */
        "*4\r\n$6\r\nintact\r\n:0\r\n:5\r\n:0\r\n",     /* reason not a string */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sfl_epoch e;
        e.state = SFL_EPOCH_INTACT;
        cr_assert_eq(decode(bad[i], &e), -1, "case %zu", i);
        cr_assert_eq(e.state, SFL_EPOCH_UNKNOWN, "case %zu", i);
    }
    cr_assert_eq(sfl_epoch_decode(NULL, &(sfl_epoch){0}), -1);
}

Test(epoch, modes_as_the_script_takes_them)
{
    cr_assert_str_eq(sfl_epoch_mode_arg(SFL_EPOCH_NORMAL), "");
    cr_assert_str_eq(sfl_epoch_mode_arg(SFL_EPOCH_FRESH), "fresh");
    cr_assert_str_eq(sfl_epoch_mode_arg(SFL_EPOCH_INIT), "init");
    cr_assert_str_eq(sfl_epoch_mode_arg(SFL_EPOCH_FORCE), "force");
}
