/* dashboard_data.c - the nodes alive, the newest results and the holders'
 * stream names, read from Redis for the dashboard (GET /v1/nodes,
 * GET /v1/results, GET /v1/accounts in http_routes.c).
 *
 * Both are chains of asks (SCAN then one HGETALL per registry key; LRANGE
 * of the newest batch ids then one LRANGE per batch). A chain counts the
 * answers it owes and calls back once, when the last one is in: with the
 * document, or with an error if any answer was missing. */
#include "dashboard_data.h"

#include "log.h"
#include "queue.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 1000
#define RECENT_BATCHES 5

/*--- Nodes -----------------------------------------------------------------*/

typedef struct nodes_ctx {
    sfl_dashboard_data_fn *fn;
    void *arg;
    cJSON *doc;
    int owed;
    int failed; /* an answer was missing */
    int seen;   /* registry keys asked for */
} nodes_ctx;

static int cmp_node_id(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(cJSON_GetObjectItem(x, "id")->valuestring,
                  cJSON_GetObjectItem(y, "id")->valuestring);
}

/* Every answer is in: sorted by id (SCAN may name a key twice), called back. */
static void nodes_finish(nodes_ctx *c)
{
    if (--c->owed > 0)
        return;
    cJSON *list = cJSON_GetObjectItem(c->doc, "nodes");
    int n = cJSON_GetArraySize(list);
    cJSON **v = n > 0 ? calloc((size_t)n, sizeof(*v)) : NULL;
    if (c->failed || (n > 0 && !v)) {
        c->fn(NULL, "no answer from Redis while reading the nodes", c->arg);
    } else {
        for (int i = n - 1; i >= 0; i--)
            v[i] = cJSON_DetachItemFromArray(list, i);
        if (n > 1)
            qsort(v, (size_t)n, sizeof(*v), cmp_node_id);
        for (int i = 0; i < n; i++) {
            if (i > 0 && cmp_node_id(&v[i - 1], &v[i]) == 0)
                cJSON_Delete(v[i]);
            else
                cJSON_AddItemToArray(list, v[i]);
        }
        c->fn(c->doc, NULL, c->arg);
    }
    free(v);
    cJSON_Delete(c->doc);
    free(c);
}

typedef struct node_ask {
    nodes_ctx *c;
    char id[128];
} node_ask;

/* One registry hash (cmd_node.c rewrites it every few seconds with a 10 s TTL,
 * and deletes it when the node stops): a node is alive while it exists. */
static void on_node_hash(sfl_store *st, redisReply *r, void *arg)
{
    node_ask *a = arg;
    nodes_ctx *c = a->c;
    UNUSED(st);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        c->failed = 1;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        /* Gone between SCAN and HGETALL (empty answer): not alive. */
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", a->id);
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *k = r->element[i], *v = r->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "state") == 0 || strcmp(k->str, "started_at") == 0) {
                cJSON_AddStringToObject(e, k->str, v->str);
            } else if (strcmp(k->str, "running") == 0 || strcmp(k->str, "held") == 0 ||
                       strcmp(k->str, "leases") == 0 || strcmp(k->str, "global_limit") == 0 ||
                       strcmp(k->str, "pid") == 0) {
                cJSON_AddNumberToObject(e, k->str, strtod(v->str, NULL));
            }
        }
        cJSON_AddItemToArray(cJSON_GetObjectItem(c->doc, "nodes"), e);
    }
    free(a);
    nodes_finish(c);
}

static void on_node_scan(sfl_store *st, redisReply *r, void *arg)
{
    nodes_ctx *c = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        c->failed = 1;
        nodes_finish(c);
        return;
    }
    char prefix[160];
    int plen = snprintf(prefix, sizeof(prefix), "%s:node:", sfl_store_ns(st));
    const redisReply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements && !c->failed && c->seen < MAX_NODES; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len <= (size_t)plen)
            continue;
        node_ask *a = calloc(1, sizeof(*a));
        if (!a) {
            c->failed = 1;
            break;
        }
        c->seen++;
        a->c = c;
        snprintf(a->id, sizeof(a->id), "%s", k->str + plen);
        const char *argv[2] = {"HGETALL", k->str};
        c->owed++;
        if (sfl_store_command(st, on_node_hash, a, 2, argv) < 0) {
            c->owed--;
            c->failed = 1;
            free(a);
        }
    }
    if (strcmp(r->element[0]->str, "0") != 0 && !c->failed && c->seen < MAX_NODES) {
        char pattern[170];
        snprintf(pattern, sizeof(pattern), "%s*", prefix);
        const char *argv[6] = {"SCAN", r->element[0]->str, "MATCH", pattern, "COUNT", "500"};
        if (sfl_store_command(st, on_node_scan, c, 6, argv) == 0)
            return;
        c->failed = 1;
    }
    nodes_finish(c);
}

int sfl_dashboard_nodes(sfl_store *st, sfl_dashboard_data_fn *fn, void *arg)
{
    nodes_ctx *c = calloc(1, sizeof(*c));
    if (!c || !(c->doc = cJSON_CreateObject()) || !cJSON_AddArrayToObject(c->doc, "nodes")) {
        if (c)
            cJSON_Delete(c->doc);
        free(c);
        fn(NULL, "out of memory", arg);
        return 0;
    }
    c->fn = fn;
    c->arg = arg;
    char pattern[170];
    snprintf(pattern, sizeof(pattern), "%s:node:*", sfl_store_ns(st));
    const char *argv[6] = {"SCAN", "0", "MATCH", pattern, "COUNT", "500"};
    c->owed = 1; /* the SCAN chain */
    if (sfl_store_command(st, on_node_scan, c, 6, argv) < 0) {
        cJSON_Delete(c->doc);
        free(c);
        return -1;
    }
    return 0;
}

/*--- Recent results --------------------------------------------------------*/

/* The last `limit` of each of the RECENT_BATCHES batches last put on the
 * shared queue (the head of sfl:batches: the queue's own entries are deleted
 * once done). stream_url is left out: it may carry
 * credentials, and GET /v1/checks/{batch} has it for whoever submitted the
 * batch. */
typedef struct recent_ctx {
    sfl_dashboard_data_fn *fn;
    void *arg;
    int owed;
    int failed;
    int limit;
    int nbatch;
    char batch[RECENT_BATCHES][64];
    cJSON *lists[RECENT_BATCHES];
} recent_ctx;

typedef struct recent_ask {
    recent_ctx *c;
    int i;
} recent_ask;

static void recent_finish(recent_ctx *c)
{
    if (--c->owed > 0)
        return;
    cJSON *doc = c->failed ? NULL : cJSON_CreateObject();
    cJSON *out = doc ? cJSON_AddArrayToObject(doc, "results") : NULL;
    if (!out) {
        c->fn(NULL, c->failed ? "no answer from Redis while reading the results" : "out of memory",
              c->arg);
    } else {
        int n = 0;
        for (int b = 0; b < c->nbatch && n < c->limit; b++) {
            for (int i = cJSON_GetArraySize(c->lists[b]) - 1; i >= 0 && n < c->limit; i--) {
                cJSON *one = cJSON_DetachItemFromArray(c->lists[b], i);
                cJSON_DeleteItemFromObjectCaseSensitive(one, "stream_url");
                cJSON_AddStringToObject(one, "batch", c->batch[b]);
                cJSON_AddItemToArray(out, one);
                n++;
            }
        }
        c->fn(doc, NULL, c->arg);
    }
    cJSON_Delete(doc);
    for (int b = 0; b < c->nbatch; b++)
        cJSON_Delete(c->lists[b]);
    free(c);
}

static void on_recent_list(sfl_store *st, redisReply *r, void *arg)
{
    recent_ask *a = arg;
    recent_ctx *c = a->c;
    UNUSED(st);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        c->failed = 1; /* a batch that expired meanwhile is an empty array */
    } else {
        for (size_t i = 0; i < r->elements; i++) {
            cJSON *one =
                r->element[i]->type == REDIS_REPLY_STRING ? cJSON_Parse(r->element[i]->str) : NULL;
            if (cJSON_IsObject(one))
                cJSON_AddItemToArray(c->lists[a->i], one);
            else
                cJSON_Delete(one);
        }
    }
    free(a);
    recent_finish(c);
}

/* The newest batch ids, newest first. */
static void on_recent_batches(sfl_store *st, redisReply *r, void *arg)
{
    recent_ctx *c = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        c->failed = 1;
        recent_finish(c);
        return;
    }
    for (size_t e = 0; e < r->elements && c->nbatch < RECENT_BATCHES; e++) {
        const redisReply *id = r->element[e];
        const char *batch = id->type == REDIS_REPLY_STRING ? id->str : NULL;
        /* Cut short or at a NUL, it would name another batch's keys. */
        if (!batch || id->len == 0 || id->len >= sizeof(c->batch[0]) || strlen(batch) != id->len)
            continue;
        int known = 0;
        for (int b = 0; b < c->nbatch; b++)
            known |= strcmp(c->batch[b], batch) == 0;
        if (known)
            continue;
        snprintf(c->batch[c->nbatch], sizeof(c->batch[0]), "%s", batch);
        c->lists[c->nbatch] = cJSON_CreateArray();
        recent_ask *a = malloc(sizeof(*a));
        if (!a || !c->lists[c->nbatch]) {
            free(a);
            cJSON_Delete(c->lists[c->nbatch]);
            c->failed = 1;
            break;
        }
        *a = (recent_ask){c, c->nbatch++};
        char key[200], from[24];
        sfl_queue_key(key, sizeof(key), sfl_store_ns(st), batch, "results");
        snprintf(from, sizeof(from), "-%d", c->limit);
        const char *argv[4] = {"LRANGE", key, from, "-1"};
        c->owed++;
        if (sfl_store_command(st, on_recent_list, a, 4, argv) < 0) {
            c->owed--;
            c->failed = 1;
            free(a);
            break;
        }
    }
    recent_finish(c);
}

int sfl_dashboard_results(sfl_store *st, int limit, sfl_dashboard_data_fn *fn, void *arg)
{
    recent_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        fn(NULL, "out of memory", arg);
        return 0;
    }
    c->fn = fn;
    c->arg = arg;
    c->limit = limit;
    char key[160], last[24];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, "batches");
    snprintf(last, sizeof(last), "%d", 2 * RECENT_BATCHES - 1); /* room for repeats */
    const char *argv[4] = {"LRANGE", key, "0", last};
    c->owed = 1;
    if (sfl_store_command(st, on_recent_batches, c, 4, argv) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

/*--- Stream names of the holders -------------------------------------------*/

/* A holder's "stream" is the label its lease was taken with: the stream id
 * for a check (worker.c), anything for a sidecar or `sflimit exec`. Only
 * ids are looked up; the name comes from the hash every batch writes
 * (queue.c), so every node sees the names of every node's streams. */
typedef struct names_ctx {
    sfl_dashboard_names_fn *fn;
    void *arg;
    cJSON **holders; /* in the order of the HMGET's fields */
    size_t n, cap;
} names_ctx;

static int is_stream_id(const char *s)
{
    size_t n = 0;
    if (s && *s == '-')
        s++;
    for (; s && s[n]; n++)
        if (s[n] < '0' || s[n] > '9')
            return 0;
    return n > 0 && n < 20;
}

static int collect_holders(names_ctx *c, cJSON *holders)
{
    cJSON *h;
    cJSON_ArrayForEach(h, holders)
    {
        if (!is_stream_id(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "stream"))))
            continue;
        if (c->n == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 16;
            cJSON **v = realloc(c->holders, cap * sizeof(*v));
            if (!v)
                return -1;
            c->holders = v;
            c->cap = cap;
        }
        c->holders[c->n++] = h;
    }
    return 0;
}

static void on_names(sfl_store *st, redisReply *r, void *arg)
{
    names_ctx *c = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == c->n) {
        for (size_t i = 0; i < c->n; i++) {
            const redisReply *v = r->element[i];
            if (v->type != REDIS_REPLY_STRING || v->len == 0 || strlen(v->str) != v->len)
                continue;
            cJSON_DeleteItemFromObjectCaseSensitive(c->holders[i], "stream_name");
            cJSON_AddStringToObject(c->holders[i], "stream_name", v->str);
        }
    }
    c->fn(c->arg);
    free(c->holders);
    free(c);
}

int sfl_dashboard_stream_names(sfl_store *st, cJSON *accounts, sfl_dashboard_names_fn *fn,
                               void *arg)
{
    names_ctx *c = calloc(1, sizeof(*c));
    const char **argv = NULL;
    int rc = 1;
    if (!c)
        return 1; /* shown without names */
    c->fn = fn;
    c->arg = arg;
    cJSON *a, *l;
    cJSON_ArrayForEach(a, accounts)
    {
        if (collect_holders(c, cJSON_GetObjectItemCaseSensitive(a, "holders")) < 0)
            goto done;
        cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(a, "logins"))
        {
            if (collect_holders(c, cJSON_GetObjectItemCaseSensitive(l, "holders")) < 0)
                goto done;
        }
    }
    if (c->n == 0 || !(argv = malloc((c->n + 2) * sizeof(*argv))))
        goto done;
    char key[160];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(st), NULL, SFL_QUEUE_NAMES);
    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < c->n; i++)
        argv[2 + i] = cJSON_GetObjectItemCaseSensitive(c->holders[i], "stream")->valuestring;
    rc = sfl_store_command(st, on_names, c, (int)c->n + 2, argv);
    free(argv);
    if (rc == 0)
        return 0;
done:
    free(c->holders);
    free(c);
    return rc;
}
