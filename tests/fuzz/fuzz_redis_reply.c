/* fuzz_redis_reply.c - the decoders of Redis answers on arbitrary reply
 * trees: sfl_accounts_status_decode() (status.lua's answer, behind
 * `sflimit status` and GET /v1/accounts) and sfl_queue_decode_entries()
 * (XREADGROUP and XAUTOCLAIM answers of the shared queue, each entry's
 * stream JSON going through sfl_streams_parse()).
 *
 * The input is a redisReply tree written one element per line, like RESP
 * without the lengths (so mutations stay well-formed):
 *
 *   *N     an array of the N elements that follow (N <= 64, depth <= 8)
 *   :N     an integer (saturated to 64 bits)
 *   $text  a string (any bytes but '\n', NULs included)
 *   +text  a status, -text an error, anything else nil
 *
 * An array cut short by the end of the input has the elements read so far.
 * The first line picks the decoder: "S" status.lua, "R" XREADGROUP, "C"
 * XAUTOCLAIM (anything else: its first byte mod 3); the tree follows.
 * Checked: the decoders' promises in accounts.h and queue.h (status: -1 only
 * for a non-array or fewer than 6 elements, at most one holder object per
 * three elements after the sixth, each with one lease, one expires_in_ms, at
 * most one age_ms and no since_ms, printable JSON; queue: -1 only for nil
 * input or an error reply, each entry either a stream or an error, never
 * both). */
#include "accounts.h"
#include "queue.h"
#include "streams.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_redis_reply: check failed: %s (line %d)\n", #cond, __LINE__);    \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#define MAX_ELEMENTS 64
#define MAX_DEPTH 8
#define MAX_NODES 4096

/*--- Building the tree -------------------------------------------------------*/

typedef struct src {
    const char *p, *end;
    size_t nodes; /* built so far, at most MAX_NODES */
} src;

static int next_line(src *s, const char **line, size_t *len)
{
    if (s->p >= s->end)
        return 0;
    const char *nl = memchr(s->p, '\n', (size_t)(s->end - s->p));
    const char *e = nl ? nl : s->end;
    *line = s->p;
    *len = (size_t)(e - s->p);
    s->p = nl ? nl + 1 : s->end;
    return 1;
}

static long long parse_ll(const char *p, size_t n)
{
    int neg = n > 0 && p[0] == '-';
    unsigned long long v = 0;
    for (size_t i = neg; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10) {
            v = (unsigned long long)LLONG_MAX + 1;
            break;
        }
        v = v * 10 + d;
    }
    if (neg)
        return v > (unsigned long long)LLONG_MAX ? LLONG_MIN : -(long long)v;
    return v > (unsigned long long)LLONG_MAX ? LLONG_MAX : (long long)v;
}

static void free_tree(redisReply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->elements; i++)
        free_tree(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

/* The next element, or NULL at the end of the input (or out of memory). */
static redisReply *build(src *s, int depth)
{
    const char *l;
    size_t n;
    if (s->nodes >= MAX_NODES || !next_line(s, &l, &n))
        return NULL;
    redisReply *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    s->nodes++;
    char kind = n ? l[0] : '_';
    switch (kind) {
    case '*': {
        long long want = parse_ll(l + 1, n - 1);
        size_t cap = want < 0 ? 0 : want > MAX_ELEMENTS ? MAX_ELEMENTS : (size_t)want;
        if (depth >= MAX_DEPTH)
            cap = 0;
        r->type = REDIS_REPLY_ARRAY;
        r->element = cap ? calloc(cap, sizeof(*r->element)) : NULL;
        for (size_t i = 0; r->element && i < cap; i++) {
            redisReply *e = build(s, depth + 1);
            if (!e)
                break;
            r->element[r->elements++] = e;
        }
        break;
    }
    case ':':
        r->type = REDIS_REPLY_INTEGER;
        r->integer = parse_ll(l + 1, n - 1);
        break;
    case '$':
    case '+':
    case '-':
        r->type = kind == '$'   ? REDIS_REPLY_STRING
                  : kind == '+' ? REDIS_REPLY_STATUS
                                : REDIS_REPLY_ERROR;
        r->len = n - 1;
        r->str = malloc(n); /* hiredis NUL-terminates every str */
        if (!r->str) {
            free(r);
            return NULL;
        }
        memcpy(r->str, l + 1, n - 1);
        r->str[n - 1] = '\0';
        break;
    default:
        r->type = REDIS_REPLY_NIL;
        break;
    }
    return r;
}

/*--- The decoders ------------------------------------------------------------*/

static size_t count_members(const cJSON *obj, const char *key)
{
    size_t n = 0;
    for (const cJSON *it = obj->child; it; it = it->next)
        n += it->string && strcmp(it->string, key) == 0;
    return n;
}

static void status(const redisReply *r)
{
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return;
    int rc = sfl_accounts_status_decode(r, e);
    int shaped = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 6;
    CHECK((rc == 0) == shaped);
    if (rc < 0) {
        CHECK(e->child == NULL);
        cJSON_Delete(e);
        return;
    }
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "name")));
    static const char *const nums[] = {"max_streams", "in_use", "recovering_ms", "waiting"};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, nums[i])));
    const cJSON *holders = cJSON_GetObjectItemCaseSensitive(e, "holders");
    if (holders) { /* absent only when out of memory */
        CHECK(cJSON_IsArray(holders));
        size_t n = 0;
        for (const cJSON *h = holders->child; h; h = h->next, n++) {
            CHECK(cJSON_IsObject(h));
            CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(h, "lease")));
            CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(h, "expires_in_ms")));
            CHECK(cJSON_GetObjectItemCaseSensitive(h, "since_ms") == NULL);
            CHECK(count_members(h, "lease") == 1 && count_members(h, "expires_in_ms") == 1);
            CHECK(count_members(h, "age_ms") <= 1);
        }
        CHECK(n <= (r->elements - 6) / 3);
    }
    char *text = cJSON_PrintUnformatted(e);
    if (text) {
        cJSON *back = cJSON_Parse(text);
        CHECK(back != NULL);
        cJSON_Delete(back);
        free(text);
    }
    cJSON_Delete(e);
}

static void queue(const redisReply *r, int claim)
{
    sfl_queue_entry *v = (sfl_queue_entry *)1;
    size_t n = 99;
    int rc = sfl_queue_decode_entries(r, claim, &v, &n);
    CHECK((rc < 0) == (!r || r->type == REDIS_REPLY_ERROR));
    CHECK((n == 0) == (v == NULL));
    for (size_t i = 0; i < n; i++) {
        sfl_queue_entry *e = &v[i];
        CHECK(memchr(e->id, '\0', sizeof(e->id)) != NULL);
        CHECK(memchr(e->batch, '\0', sizeof(e->batch)) != NULL);
        CHECK(memchr(e->error, '\0', sizeof(e->error)) != NULL);
        CHECK((e->stream != NULL) == (e->error[0] == '\0'));
        if (e->stream) {
            CHECK(e->stream->n == 1);
            CHECK(e->batch[0] != '\0');
            CHECK(e->stream->v[0].url && e->stream->v[0].url[0]);
        }
        sfl_queue_entry_clear(e);
    }
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src s = {(const char *)data, (const char *)data + size, 0};
    const char *l;
    size_t n;
    if (!next_line(&s, &l, &n))
        return 0;
    int mode = n == 0 ? 0 : l[0] == 'S' ? 0 : l[0] == 'R' ? 1 : l[0] == 'C' ? 2 : (uint8_t)l[0] % 3;
    redisReply *r = build(&s, 0);
    if (mode == 0)
        status(r);
    else
        queue(r, mode == 2);
    free_tree(r);
    return 0;
}
