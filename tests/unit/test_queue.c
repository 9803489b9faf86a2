/* test_queue.c - sfl_queue_decode_entries(): XREADGROUP and XAUTOCLAIM
 * answers of the shared queue become entries, malformed ones carry an error;
 * sfl_queue_decode_consumers(): XINFO CONSUMERS answers, which decide which
 * consumers of stopped nodes are looked at. The replies are built by hand,
 * in the shapes Redis 7 sends. */
#include "queue.h"
#include "streams.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

TestSuite(queue);

/*--- Building replies --------------------------------------------------------*/

static redisReply *node(int type)
{
    redisReply *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->type = type;
    return r;
}

static redisReply *str_n(const char *s, size_t n)
{
    redisReply *r = node(REDIS_REPLY_STRING);
    r->str = malloc(n + 1);
    cr_assert_not_null(r->str);
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return r;
}

static redisReply *str(const char *s)
{
    return str_n(s, strlen(s));
}

/* An array of n elements, given as arguments. */
static redisReply *arr(size_t n, ...)
{
    redisReply *r = node(REDIS_REPLY_ARRAY);
    r->element = calloc(n ? n : 1, sizeof(*r->element));
    cr_assert_not_null(r->element);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    r->elements = n;
    return r;
}

static void drop(redisReply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->elements; i++)
        drop(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static void clear_all(sfl_queue_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sfl_queue_entry_clear(&v[i]);
    free(v);
}

#define STREAM5 "{\"id\":5,\"url\":\"http://h/1\",\"m3u_account\":2,\"priority\":0}"

/*--- Tests -------------------------------------------------------------------*/

Test(queue, xreadgroup_answer)
{
    redisReply *r = arr(
        1,
        arr(2, str("sfl:jobs"),
            arr(2, arr(2, str("1-0"), arr(4, str("batch"), str("b1"), str("stream"), str(STREAM5))),
                arr(2, str("1-1"), arr(2, str("stream"), str(STREAM5))))));
    sfl_queue_entry *v;
    size_t n;
    cr_assert_eq(sfl_queue_decode_entries(r, 0, &v, &n), 0);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(v[0].id, "1-0");
    cr_expect_str_eq(v[0].batch, "b1");
    cr_assert_not_null(v[0].stream, "%s", v[0].error);
    cr_expect_eq(v[0].stream->v[0].id, 5);
    cr_expect_eq(v[0].stream->v[0].account, 2);
    cr_expect_str_eq(v[0].error, "");
    cr_expect_null(v[1].stream);
    cr_expect_str_eq(v[1].error, "entry 1-1 lacks a batch or a stream");
    clear_all(v, n);
    drop(r);
}

Test(queue, xautoclaim_answer)
{
    /* [cursor, entries, deleted ids]; an entry deleted meanwhile has nil fields */
    redisReply *r =
        arr(3, str("0-0"),
            arr(3, arr(2, str("2-0"), arr(4, str("stream"), str(STREAM5), str("batch"), str("b2"))),
                arr(2, str("2-1"), node(REDIS_REPLY_NIL)), str("not an entry")),
            arr(0));
    sfl_queue_entry *v;
    size_t n;
    cr_assert_eq(sfl_queue_decode_entries(r, 1, &v, &n), 0);
    cr_assert_eq(n, 2, "the string is no entry: skipped");
    cr_expect_str_eq(v[0].batch, "b2");
    cr_expect_not_null(v[0].stream);
    cr_expect_null(v[1].stream);
    cr_expect_str_eq(v[1].id, "2-1");
    cr_expect_neq(v[1].error[0], '\0');
    clear_all(v, n);
    drop(r);
}

/* A batch id that would be cut short (or cut at a NUL) would send the result
 * to another batch's key: the entry is malformed instead. */
Test(queue, bad_batch_ids)
{
    char long_batch[80];
    memset(long_batch, 'b', sizeof(long_batch) - 1);
    long_batch[79] = '\0';
    redisReply *r = arr(
        3, str("0-0"),
        arr(3,
            arr(2, str("3-0"), arr(4, str("batch"), str(long_batch), str("stream"), str(STREAM5))),
            arr(2, str("3-1"), arr(4, str("batch"), str_n("b\0x", 3), str("stream"), str(STREAM5))),
            arr(2, str("3-2"), arr(4, str_n("batch\0", 6), str("b"), str("stream"), str(STREAM5)))),
        arr(0));
    sfl_queue_entry *v;
    size_t n;
    cr_assert_eq(sfl_queue_decode_entries(r, 1, &v, &n), 0);
    cr_assert_eq(n, 3);
    cr_expect_null(v[0].stream);
    cr_expect_str_eq(v[0].error, "entry 3-0: batch id too long or holding a NUL");
    cr_expect_null(v[1].stream);
    cr_expect_str_eq(v[1].error, "entry 3-1: batch id too long or holding a NUL");
    cr_expect_null(v[2].stream, "a field named \"batch\\0\" is not \"batch\"");
    clear_all(v, n);
    drop(r);
}

Test(queue, stream_json_is_checked)
{
    redisReply *r = arr(1, arr(2, str("k"),
                               arr(1, arr(2, str("4-0"),
                                          arr(4, str("batch"), str("b"), str("stream"),
                                              str("{\"id\":1,\"url\":\"\"}"))))));
    sfl_queue_entry *v;
    size_t n;
    cr_assert_eq(sfl_queue_decode_entries(r, 0, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect_null(v[0].stream);
    cr_expect_str_eq(v[0].error, "4-0: [0].url: must not be empty");
    clear_all(v, n);
    drop(r);
}

Test(queue, empty_and_failed_answers)
{
    sfl_queue_entry *v = (sfl_queue_entry *)&v;
    size_t n = 9;
    cr_expect_eq(sfl_queue_decode_entries(NULL, 0, &v, &n), -1);
    cr_expect_null(v);
    cr_expect_eq(n, 0);

    redisReply *err = node(REDIS_REPLY_ERROR);
    err->str = strdup("NOGROUP no such key");
    err->len = strlen(err->str);
    cr_expect_eq(sfl_queue_decode_entries(err, 0, &v, &n), -1);
    drop(err);

    redisReply *nil = node(REDIS_REPLY_NIL); /* XREADGROUP with nothing new */
    cr_expect_eq(sfl_queue_decode_entries(nil, 0, &v, &n), 0);
    cr_expect_null(v);
    cr_expect_eq(n, 0);
    drop(nil);

    redisReply *junk = arr(2, str("0-0"), arr(1, str("x")));
    cr_expect_eq(sfl_queue_decode_entries(junk, 1, &v, &n), 0);
    cr_expect_null(v, "no entry among the elements");
    cr_expect_eq(n, 0);
    drop(junk);
}

static redisReply *num(long long v)
{
    redisReply *r = node(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

/* Redis 7.0: [name, N, pending, N, idle, N] per consumer (7.2 adds
 * inactive, skipped here). */
Test(queue, xinfo_consumers_answer)
{
    char long_name[200];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[199] = '\0';
    redisReply *r =
        arr(6, arr(6, str("node1"), num(3), str("pending"), num(0), str("idle"), num(0)),
            arr(6, str("name"), str("node1"), str("pending"), num(2), str("idle"), num(150)),
            arr(8, str("name"), str("node2"), str("pending"), num(0), str("idle"), num(61000),
                str("inactive"), num(-1)),
            arr(6, str("name"), str(long_name), str("pending"), num(0), str("idle"), num(9)),
            arr(6, str("name"), str_n("no\0de", 5), str("pending"), num(0), str("idle"), num(9)),
            arr(4, str("name"), str("node3"), str("pending"), num(0)));
    sfl_queue_consumer *v;
    size_t n;
    cr_assert_eq(sfl_queue_decode_consumers(r, &v, &n), 0);
    cr_assert_eq(n, 2, "only the complete, well-named consumers: %zu", n);
    cr_expect_str_eq(v[0].name, "node1");
    cr_expect_eq(v[0].pending, 2);
    cr_expect_eq(v[0].idle_ms, 150);
    cr_expect_str_eq(v[1].name, "node2");
    cr_expect_eq(v[1].pending, 0);
    cr_expect_eq(v[1].idle_ms, 61000);
    free(v);
    drop(r);
}

Test(queue, xinfo_consumers_empty_and_failed)
{
    sfl_queue_consumer *v = (sfl_queue_consumer *)&v;
    size_t n = 9;
    cr_expect_eq(sfl_queue_decode_consumers(NULL, &v, &n), -1);
    cr_expect_null(v);
    cr_expect_eq(n, 0);
    redisReply *err = node(REDIS_REPLY_ERROR);
    err->str = strdup("NOGROUP No such consumer group");
    err->len = strlen(err->str);
    cr_expect_eq(sfl_queue_decode_consumers(err, &v, &n), -1);
    drop(err);
    redisReply *none = arr(0);
    cr_expect_eq(sfl_queue_decode_consumers(none, &v, &n), 0);
    cr_expect_null(v);
    cr_expect_eq(n, 0);
    drop(none);
    redisReply *junk = arr(2, str("x"), arr(1, num(1)));
    cr_expect_eq(sfl_queue_decode_consumers(junk, &v, &n), 0);
    cr_expect_null(v, "no consumer among the elements");
    cr_expect_eq(n, 0);
    drop(junk);
}

/* XINFO GROUPS: lag as a number, as nil (Redis cannot tell once entries
 * were deleted behind the last delivered one: -1, for the caller to count
 * otherwise), and another group's figures never taken for ours. */
Test(queue, xinfo_groups_answer)
{
    redisReply *r = arr(2,
                        arr(8, str("name"), str("others"), str("pending"), num(7), str("lag"),
                            num(9), str("consumers"), num(1)),
                        arr(8, str("name"), str(SFL_QUEUE_GROUP), str("pending"), num(3),
                            str("lag"), num(2), str("last-delivered-id"), str("4-0")));
    long long lag = 0, pending = 0;
    cr_assert_eq(sfl_queue_decode_groups(r, &lag, &pending), 0);
    cr_expect_eq(lag, 2);
    cr_expect_eq(pending, 3);
    drop(r->element[1]->element[5]);
    r->element[1]->element[5] = node(REDIS_REPLY_NIL);
    cr_assert_eq(sfl_queue_decode_groups(r, &lag, &pending), 0);
    cr_expect_eq(lag, -1, "a nil lag is unknown, not 0");
    cr_expect_eq(pending, 3);
    drop(r);
    r = arr(1, arr(4, str("name"), str("others"), str("lag"), num(1)));
    cr_expect_eq(sfl_queue_decode_groups(r, &lag, &pending), -1);
    drop(r);
    cr_expect_eq(sfl_queue_decode_groups(NULL, &lag, &pending), -1);
}
