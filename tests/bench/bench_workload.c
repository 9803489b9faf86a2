/* bench_workload.c - the seeded work the makespan and scale benchmarks give
 * sflimit: accounts with limits 1..4, streams spread over them, and the
 * config files and streams files the sflimit processes read.
 *
 * Same seed, same work: the generator is splitmix64, not rand(), so a figure
 * can be reproduced on another libc. Account i has id base + i; stream k
 * (from 0) has id k + 1 and an account drawn uniformly. Stream URLs point at
 * a closed loopback port: the check commands here never open them.
 */
#include "bench.h"

#include "streams.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t bench_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (rejection: no modulo bias). */
static uint64_t rand_below(uint64_t *state, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do
        v = bench_rand_next(state);
    while (v >= limit);
    return v % n;
}

bench_workload *bench_workload_new(int naccounts, size_t nstreams, uint64_t seed, long long base)
{
    bench_workload *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->base = base;
    w->naccounts = naccounts;
    w->nstreams = nstreams;
    w->ids = calloc((size_t)naccounts, sizeof(*w->ids));
    w->limit = calloc((size_t)naccounts, sizeof(*w->limit));
    w->per_account = calloc((size_t)naccounts, sizeof(*w->per_account));
    w->account_of = calloc(nstreams + 1, sizeof(*w->account_of));
    if (!w->ids || !w->limit || !w->per_account || !w->account_of) {
        bench_workload_free(w);
        return NULL;
    }
    uint64_t st = seed;
    for (int i = 0; i < naccounts; i++) {
        w->ids[i] = base + i;
        w->limit[i] = 1 + (int)rand_below(&st, 4);
    }
    for (size_t k = 0; k < nstreams; k++) {
        int a = (int)rand_below(&st, (uint64_t)naccounts);
        w->account_of[k] = a;
        w->per_account[a]++;
    }
    return w;
}

void bench_workload_free(bench_workload *w)
{
    if (!w)
        return;
    free(w->ids);
    free(w->limit);
    free(w->per_account);
    free(w->account_of);
    free(w);
}

double bench_workload_account_bound(const bench_workload *w, double check_s, int *critical)
{
    double best = 0;
    if (critical)
        *critical = -1;
    for (int i = 0; i < w->naccounts; i++) {
        double rounds = ceil((double)w->per_account[i] / (double)w->limit[i]);
        if (rounds * check_s > best) {
            best = rounds * check_s;
            if (critical)
                *critical = i;
        }
    }
    return best;
}

static void stream_fields(const bench_workload *w, size_t k, char *name, size_t nlen, char *url,
                          size_t ulen)
{
    snprintf(name, nlen, "bench-%zu", k + 1);
    snprintf(url, ulen, "http://127.0.0.1:9/bench/%lld/%zu.ts", w->ids[w->account_of[k]], k + 1);
}

sfl_streams *bench_workload_streams(const bench_workload *w)
{
    sfl_streams *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->v = calloc(w->nstreams + 1, sizeof(*s->v));
    if (!s->v) {
        free(s);
        return NULL;
    }
    for (size_t k = 0; k < w->nstreams; k++) {
        char name[32], url[96];
        stream_fields(w, k, name, sizeof(name), url, sizeof(url));
        sfl_stream *v = &s->v[k];
        s->n = k + 1; /* so sfl_streams_free frees a half-filled element */
        v->id = (long long)k + 1;
        v->account = w->ids[w->account_of[k]];
        v->name = strdup(name);
        v->url = strdup(url);
        if (!v->name || !v->url) {
            sfl_streams_free(s);
            return NULL;
        }
    }
    return s;
}

int bench_workload_write_streams(const bench_workload *w, const char *path, char *err,
                                 size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fputs("[\n", f);
    for (size_t k = 0; k < w->nstreams; k++) {
        char name[32], url[96];
        stream_fields(w, k, name, sizeof(name), url, sizeof(url));
        fprintf(f, "{\"id\": %zu, \"name\": \"%s\", \"url\": \"%s\", \"m3u_account\": %lld}%s\n",
                k + 1, name, url, w->ids[w->account_of[k]], k + 1 < w->nstreams ? "," : "");
    }
    fputs("]\n", f);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/*--- Config files ----------------------------------------------------------*/

int bench_config_write(const char *path, const bench_config *bc, char *err, size_t errlen)
{
    int rc = -1;
    char *text = NULL;
    FILE *f = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *redis = cJSON_AddObjectToObject(root, "redis");
    cJSON *conc = cJSON_AddObjectToObject(root, "concurrent_streams");
    cJSON *lease = cJSON_AddObjectToObject(root, "lease");
    cJSON *check = cJSON_AddObjectToObject(root, "check");
    cJSON *analysis = cJSON_AddObjectToObject(root, "stream_analysis");
    cJSON *http = cJSON_AddObjectToObject(root, "http");
    cJSON *node = cJSON_AddObjectToObject(root, "node");
    cJSON *cmd = cJSON_AddArrayToObject(check, "command");
    cJSON *arr = bc->accounts ? cJSON_AddArrayToObject(root, "accounts") : NULL;
    if (!root || !redis || !conc || !lease || !check || !analysis || !http || !node || !cmd ||
        (bc->accounts && !arr)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    cJSON_AddStringToObject(root, "node_id", bc->node_id);
    cJSON_AddStringToObject(redis, "url", bc->redis_url);
    cJSON_AddBoolToObject(conc, "enabled", 1);
    cJSON_AddNumberToObject(conc, "global_limit", bc->global_limit);
    cJSON_AddNumberToObject(conc, "stagger_delay", 0);
    cJSON_AddNumberToObject(lease, "ttl_ms", (double)bc->lease_ttl_ms);
    for (const char *const *a = bc->command; *a; a++)
        cJSON_AddItemToArray(cmd, cJSON_CreateString(*a));
    cJSON_AddStringToObject(check, "parser", "none");
    cJSON_AddNumberToObject(check, "timeout", bc->check_timeout);
    cJSON_AddNumberToObject(analysis, "retries", 0);
    cJSON_AddStringToObject(http, "listen", "127.0.0.1:0");
    cJSON_AddNumberToObject(node, "claim_idle", 15);
    for (int i = 0; arr && i < bc->accounts->naccounts; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, a);
        cJSON_AddNumberToObject(a, "id", (double)bc->accounts->ids[i]);
        cJSON_AddNumberToObject(a, "max_streams", bc->accounts->limit[i]);
    }
    text = cJSON_Print(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (f)
        fclose(f);
    free(text);
    cJSON_Delete(root);
    return rc;
}

/*--- Scratch directory -----------------------------------------------------*/

int bench_tmpdir_make(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/sfl-bench-XXXXXX");
    return mkdtemp(buf) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void bench_tmpdir_remove(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
