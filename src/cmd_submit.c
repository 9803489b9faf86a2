/* cmd_submit.c - `sflimit submit [--wait] STREAMS.json`.
 *
 * Validates the streams, each URL's scheme against check.schemes too (exit
 * 2 on any error, nothing written), puts one queue entry per stream under a
 * new batch id and prints the id. With --wait it follows the batch: woken
 * by the batch's progress messages (and a slow fallback timer, since
 * pub/sub can drop them), it prints each new result as a JSON line, in the
 * same format as `sflimit check`, until every stream has one.
 *
 * Each stream's result is printed once, found by its stream_id, never by
 * its place in the batch's results list: that list is the same only on one
 * Redis process. After a failover the new master may lack the last results
 * the old one had (replication is asynchronous), and holds them again later,
 * at the end, once a node has checked those streams again; a count of
 * results read would then skip a result and print another twice. So on every
 * (re)connect the list is read again from its start, and a stream already
 * printed is passed over.
 *
 * A Redis that lost the batch altogether (restarted without persistence,
 * or a failover to a replica that never had it: its hash is gone on the
 * reconnect) will never give those results: --wait puts the streams that
 * have none yet on the queue again, under the same batch id, and goes on
 * waiting. Every stream still gets its one result.
 *
 * It may also have lost part of it. The submission is a pipeline of commands
 * (the hash, then one XADD per stream), not one script, so a replica promoted
 * before it had all of them, or a snapshot taken during it, holds the hash
 * and only some of the entries. A stream's result, the acknowledgement of its
 * entry and the entry's deletion are one script (result.lua), replicated and
 * saved as one transaction (MULTI/EXEC): a Redis never holds the ack or the
 * deletion without the result, and one that lost the result has the entry as
 * it was (pending, claimed once idle, or not yet delivered). A delivery
 * (XREADGROUP, replicated as one transaction of XCLAIMs that carry the
 * group's last id) lost in a failover leaves the entry undelivered: it is
 * read again. So a stream that no node will ever check is one whose entry was
 * lost, or acknowledged and not deleted (sfl acknowledges without a result
 * only a malformed entry, never one it submitted). On a reconnect where the
 * hash is there, --wait finds them: it reads the whole queue, a page at a
 * time (queued.lua: the stream ids of the batch's entries that are
 * undelivered or pending), then, for the streams seen neither printed nor
 * queued, their r:<id> in the hash (pages of HMGET). An entry deleted while
 * the queue was read had its result stored in the same script, so the hash,
 * read after, has it. The streams with neither entry nor result go on the
 * queue again under the same batch id, the hash left as it is. A stream a
 * node was still checking from the old master's queue may then be checked
 * twice; its first result is kept (result.lua), and it is printed once.
 */
#include "cmd_submit.h"

#include "app.h"
#include "cli.h"
#include "clock.h"
#include "conf.h"
#include "log.h"
#include "queue.h"
#include "store.h"
#include "streams.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FALLBACK_MS 1000
/* Queue entries read per script call (queued.lua): about 1 ms of Redis's
 * time each on a small VM, so the scripts of leases are never held up long. */
#define QUEUE_PAGE 100
#define HASH_PAGE 1000 /* fields read per HMGET of the batch hash */

typedef struct submit {
    sfl_app app;
    sfl_streams *streams;
    char batch[64];
    int wait;
    int submitted;
    int fetching;
    int fetched_on;   /* app.ready_count when the fetch in flight was sent */
    int resubmitting; /* the batch is being put on the queue again */
    int verify;       /* this connection has yet to find the batch whole */
    int verifying;    /* a step of that is in flight */
    int verify_on;    /* app.ready_count when it began */
    char after[48];   /* the queue is read up to this entry id */
    size_t check_at;  /* the hash is read for ids[check_at...] */
    size_t npage;     /* places of the ids in the HMGET in flight */
    long long page[HASH_PAGE];
    long long read;    /* elements of the results list read on this connection */
    long long printed; /* streams whose result is printed */
    long long total;
    long long *ids;      /* the batch's stream ids, sorted */
    unsigned char *done; /* done[i]: the result of ids[i] is printed */
    unsigned char *seen; /* seen[i]: ids[i] has a queue entry or a result */
    int progress;
    FILE *out;
    struct event *fallback;
} submit;

static void fetch(submit *s);

static void progress(submit *s, int final)
{
    if (!s->progress)
        return;
    fprintf(stderr, "\r\033[Kbatch %s: %lld/%lld results%s", s->batch, s->printed, s->total,
            final ? "\n" : "");
    fflush(stderr);
}

static int cmp_id(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The batch's stream ids, sorted, each not yet printed. -1 when out of memory. */
static int ids_init(submit *s)
{
    size_t n = s->streams->n;
    s->ids = malloc((n ? n : 1) * sizeof(*s->ids));
    s->done = calloc(n ? n : 1, 1);
    s->seen = calloc(n ? n : 1, 1);
    if (!s->ids || !s->done || !s->seen)
        return -1;
    for (size_t i = 0; i < n; i++)
        s->ids[i] = s->streams->v[i].id;
    qsort(s->ids, n, sizeof(*s->ids), cmp_id);
    return 0;
}

/* The place of stream id in s->ids, or -1 when it is none of the batch's. */
static long long place_of(const submit *s, long long id)
{
    const long long *hit = bsearch(&id, s->ids, (size_t)s->total, sizeof(*s->ids), cmp_id);
    return hit ? hit - s->ids : -1;
}

/* The place of the stream a result names in s->ids, or -1 when it names none
 * of the batch's (not JSON, no stream_id, another id). */
static long long stream_of(const submit *s, const char *json, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(json, len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "stream_id");
    long long at = -1;
    /* Stream ids are within +-(2^53-1) (streams.c): exact as a double. */
    if (cJSON_IsNumber(id) && fabs(id->valuedouble) <= 9007199254740991.0) {
        long long want = (long long)id->valuedouble;
        if ((double)want == id->valuedouble)
            at = place_of(s, want);
    }
    cJSON_Delete(o);
    return at;
}

static void on_results(sfl_store *st, redisReply *r, void *arg)
{
    submit *s = arg;
    UNUSED(st);
    s->fetching = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return; /* the fallback timer tries again */
    if (s->fetched_on != s->app.ready_count) {
        fetch(s); /* an answer of the connection before: read is this one's */
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        s->read++;
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        long long at = stream_of(s, e->str, e->len);
        if (at < 0) {
            sfl_warn("batch %s: a result that names none of its streams; passed over", s->batch);
            continue;
        }
        if (s->done[at])
            continue; /* printed already: read again after a reconnect */
        s->done[at] = 1;
        fprintf(s->out, "%s\n", e->str);
        s->printed++;
    }
    if (fflush(s->out) != 0) {
        sfl_app_fail(&s->app, "cannot write results: %s", strerror(errno));
        return;
    }
    progress(s, s->printed >= s->total);
    if (s->printed >= s->total) {
        event_base_loopbreak(s->app.base);
        return;
    }
    if (r->elements > 0)
        fetch(s); /* there may be more already */
}

static void fetch(submit *s)
{
    if (s->fetching || !s->submitted || !sfl_store_ready(s->app.store))
        return;
    char key[200], from[24];
    sfl_queue_key(key, sizeof(key), sfl_store_ns(s->app.store), s->batch, "results");
    snprintf(from, sizeof(from), "%lld", s->read);
    const char *argv[4] = {"LRANGE", key, from, "-1"};
    if (sfl_store_command(s->app.store, on_results, s, 4, argv) == 0) {
        s->fetching = 1;
        s->fetched_on = s->app.ready_count;
    }
}

static void check_batch(submit *s);

static void on_resubmitted(int ok, const char *err, void *arg)
{
    submit *s = arg;
    s->resubmitting = 0;
    s->verifying = 0;
    if (!ok) {
        /* Redis went again, or failed: looked at once more on the fallback
         * timer or the next connection. */
        sfl_warn("batch %s: could not put it on the queue again: %s", s->batch, err);
        return;
    }
    s->verify = 0;
    fetch(s);
}

/* Puts streams on the queue again, as the batch s->batch: those without a
 * printed result, and with missing_only only those that also have neither
 * an entry nor a result in Redis (not s->seen). With missing_only the batch
 * hash is left as it is; else it is written anew (it is gone). */
static void resubmit(submit *s, int missing_only)
{
    sfl_streams rest = {.v = malloc((s->streams->n ? s->streams->n : 1) * sizeof(sfl_stream))};
    if (!rest.v) {
        sfl_app_fail(&s->app, "out of memory");
        return;
    }
    for (size_t i = 0; i < s->streams->n; i++) {
        long long at = place_of(s, s->streams->v[i].id);
        if (at >= 0 && !s->done[at] && !(missing_only && s->seen[at]))
            rest.v[rest.n++] = s->streams->v[i]; /* read only, during the call */
    }
    if (missing_only && rest.n == 0) {
        s->verifying = 0;
        s->verify = 0; /* every stream has its entry or its result */
        free(rest.v);
        return;
    }
    int rc;
    s->resubmitting = 1;
    s->verifying = 1;
    if (missing_only) {
        sfl_warn("batch %s: Redis lost the queue entries of %zu stream(s) without a result "
                 "(a failover, a restart from an older snapshot): putting them on the queue again",
                 s->batch, rest.n);
        rc = sfl_queue_requeue(s->app.store, s->batch, &rest, on_resubmitted, s);
    } else {
        sfl_warn("batch %s is gone from Redis (it lost its data): putting the %zu stream(s) "
                 "without a result on the queue again",
                 s->batch, rest.n);
        int64_t ttl = (int64_t)llround(s->app.conf->node_batch_ttl * 1000);
        rc = sfl_queue_submit(s->app.store, s->batch, &rest, ttl, on_resubmitted, s);
    }
    if (rc < 0)
        s->resubmitting = s->verifying = 0; /* Redis away: looked at again */
    free(rest.v);
}

/* A step of the check is answered: go on? Not with an answer of a
 * connection before (the check of this one is its own), nor after a failure:
 * then the check is tried again on the fallback timer, or on the next
 * connection. */
static int verify_current(submit *s, const redisReply *r)
{
    if (s->verify_on != s->app.ready_count)
        return 0;
    if (r && r->type != REDIS_REPLY_ERROR)
        return 1;
    if (r)
        sfl_warn("batch %s: checking it is whole: %s", s->batch, r->str);
    s->verifying = 0;
    return 0;
}

static void check_hash(submit *s);

/* Which of the streams seen nowhere on the queue have a result in the hash
 * (r:<id>, written in one script with the result, result.lua)? */
static void on_hash_page(sfl_store *st, redisReply *r, void *arg)
{
    submit *s = arg;
    UNUSED(st);
    if (!verify_current(s, r))
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != s->npage) {
        s->verifying = 0;
        return;
    }
    for (size_t i = 0; i < s->npage; i++)
        if (r->element[i]->type != REDIS_REPLY_NIL)
            s->seen[s->page[i]] = 1;
    check_hash(s);
}

/* Reads the hash for the next HASH_PAGE streams without a printed result
 * and without an entry on the queue; when none is left, the rest (neither
 * entry nor result) goes on the queue again. */
static void check_hash(submit *s)
{
    char hash[200], fields[HASH_PAGE][28];
    const char *argv[2 + HASH_PAGE] = {"HMGET", hash};
    sfl_queue_key(hash, sizeof(hash), sfl_store_ns(s->app.store), s->batch, NULL);
    s->npage = 0;
    for (; s->check_at < (size_t)s->total && s->npage < HASH_PAGE; s->check_at++) {
        size_t i = s->check_at;
        if (s->done[i] || s->seen[i])
            continue;
        snprintf(fields[s->npage], sizeof(fields[0]), "r:%lld", s->ids[i]);
        argv[2 + s->npage] = fields[s->npage];
        s->page[s->npage++] = (long long)i;
    }
    if (s->npage == 0) {
        resubmit(s, 1);
        return;
    }
    if (sfl_store_command(s->app.store, on_hash_page, s, 2 + (int)s->npage, argv) < 0)
        s->verifying = 0;
}

static void on_queue_page(int ok, const char *next, const long long *ids, size_t n, void *arg)
{
    submit *s = arg;
    if (s->verify_on != s->app.ready_count)
        return; /* an answer of the connection before */
    if (!ok) {
        s->verifying = 0;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        long long at = place_of(s, ids[i]);
        if (at >= 0)
            s->seen[at] = 1;
    }
    if (next) {
        snprintf(s->after, sizeof(s->after), "%s", next);
        if (sfl_queue_queued(s->app.store, s->batch, s->after, QUEUE_PAGE, on_queue_page, s) < 0)
            s->verifying = 0;
        return;
    }
    /* The whole queue is read. A stream whose entry was deleted meanwhile
     * had its result stored in the same script (result.lua): the hash, read
     * from now on, has it. */
    s->check_at = 0;
    check_hash(s);
}

/* Is the batch still in Redis? */
static void on_batch_checked(sfl_store *st, redisReply *r, void *arg)
{
    submit *s = arg;
    UNUSED(st);
    if (!verify_current(s, r)) {
        fetch(s);
        return;
    }
    if (r->type != REDIS_REPLY_INTEGER || s->printed >= s->total) {
        s->verifying = 0;
        s->verify = r->type != REDIS_REPLY_INTEGER;
        fetch(s);
        return;
    }
    if (r->integer == 0) {
        resubmit(s, 0);
        return;
    }
    /* It is, but maybe not whole: read the queue for the streams that still
     * have an entry there (queued.lua), page by page, then the hash for
     * those of the rest that have a result. */
    fetch(s);
    memset(s->seen, 0, (size_t)s->total);
    if (sfl_queue_queued(s->app.store, s->batch, NULL, QUEUE_PAGE, on_queue_page, s) < 0)
        s->verifying = 0;
}

/* Once per connection (again on the fallback timer until it is done): does
 * Redis still hold the batch, whole? */
static void check_batch(submit *s)
{
    if (!s->wait || !s->verify || s->verifying || s->resubmitting || !sfl_store_ready(s->app.store))
        return;
    char hash[200];
    sfl_queue_key(hash, sizeof(hash), sfl_store_ns(s->app.store), s->batch, NULL);
    const char *argv[2] = {"EXISTS", hash};
    s->verify_on = s->app.ready_count;
    if (sfl_store_command(s->app.store, on_batch_checked, s, 2, argv) == 0)
        s->verifying = 1;
}

static void on_submitted(int ok, const char *err, void *arg)
{
    submit *s = arg;
    if (!ok) {
        sfl_app_fail(&s->app, "%s", err);
        return;
    }
    s->submitted = 1;
    /* With --wait stdout carries only results, as `sflimit check` prints them. */
    fprintf(s->wait ? stderr : stdout, s->wait ? "batch %s\n" : "%s\n", s->batch);
    fflush(s->wait ? stderr : stdout);
    sfl_info("batch %s: %zu streams on the shared queue", s->batch, s->streams->n);
    if (!s->wait || s->total == 0) {
        event_base_loopbreak(s->app.base);
        return;
    }
    progress(s, 0);
    fetch(s);
}

static void on_ready(sfl_app *app, void *arg)
{
    submit *s = arg;
    if (s->submitted) {
        /* Maybe another Redis process (a failover): its list need not
         * match the one read so far, and it may not hold the batch at all. */
        s->read = 0;
        s->verify = 1;
        s->verifying = 0; /* a step of the connection before answered NULL */
        check_batch(s);
        if (!s->verifying)
            fetch(s);
        return;
    }
    if (app->ready_count > 1)
        return; /* sent once; its answer decides */
    int64_t ttl = (int64_t)llround(app->conf->node_batch_ttl * 1000);
    if (sfl_queue_submit(app->store, s->batch, s->streams, ttl, on_submitted, s) < 0)
        sfl_app_fail(app, "Redis went away");
}

static void on_message(sfl_app *app, const char *channel, const char *msg, void *arg)
{
    UNUSED(app);
    UNUSED(channel);
    UNUSED(msg);
    fetch(arg);
}

static void on_fallback(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    fetch(arg);
    check_batch(arg);
}

static void on_signal(sfl_app *app, int sig, void *arg)
{
    submit *s = arg;
    if (s->submitted)
        fprintf(stderr, "\nsflimit: submit: stopped waiting; the batch %s goes on\n", s->batch);
    sfl_app_exit(app, 128 + sig);
}

static const char usage[] =
    "usage: sflimit submit [-c CONFIG] [--redis URL] [--wait] [-o FILE] STREAMS.json|-\n"
    "\n"
    "Puts a batch of streams on the shared queue, for every running `sflimit node`\n"
    "to check, and prints the batch id. --wait follows it: progress on stderr\n"
    "(when a terminal), each result as a JSON line on stdout (or -o FILE), as\n"
    "`sflimit check` prints them, until every stream has one.\n";

int sfl_cmd_submit(int argc, char **argv)
{
    enum { OPT_REDIS = 1000, OPT_WAIT };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"redis", required_argument, NULL, OPT_REDIS},
        {"wait", no_argument, NULL, OPT_WAIT},    {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *redis = NULL, *out_path = NULL;
    submit s = {.app.rc = SFL_EXIT_OK, .app.cmd = "submit", .out = stdout};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case OPT_REDIS:
            redis = optarg;
            break;
        case OPT_WAIT:
            s.wait = 1;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return SFL_EXIT_OK;
        default:
            fputs(usage, stderr);
            return SFL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "sflimit: submit: expected one streams file (or -)\n%s", usage);
        return SFL_EXIT_USAGE;
    }
    sfl_conf *conf = sfl_cli_conf(config, redis);
    if (!conf)
        return SFL_EXIT_USAGE;
    if (strcmp(conf->redis_url, "embedded") == 0) {
        fprintf(stderr, "sflimit: submit: an embedded Redis is private to one process; "
                        "nodes could never see this batch\n");
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    char err[512];
    const char *in = argv[optind];
    s.streams = sfl_streams_load(in, err, sizeof(err));
    if (!s.streams ||
        sfl_streams_allowed(s.streams, conf->check_schemes, conf->check_nschemes,
                            strcmp(in, "-") == 0 ? "(stdin)" : in, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        sfl_streams_free(s.streams);
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    if (out_path && !(s.out = fopen(out_path, "w"))) {
        fprintf(stderr, "sflimit: -o %s: %s\n", out_path, strerror(errno));
        sfl_streams_free(s.streams);
        sfl_conf_free(conf);
        return SFL_EXIT_USAGE;
    }
    s.total = (long long)s.streams->n;
    if (ids_init(&s) < 0) {
        fprintf(stderr, "sflimit: submit: out of memory\n");
        sfl_conf_free(conf);
        s.app.rc = SFL_EXIT_FAIL;
        goto out;
    }
    s.progress = s.wait && isatty(STDERR_FILENO);
    sfl_queue_new_batch_id(s.batch, sizeof(s.batch));
    char channel[200];
    sfl_queue_key(channel, sizeof(channel), conf->redis_namespace, s.batch, NULL);
    const char *channels[2] = {s.wait ? channel : NULL, NULL};
    if (sfl_app_open(&s.app, conf, 0, channels, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        s.app.rc = SFL_EXIT_FAIL;
        goto out;
    }
    s.app.on_ready = on_ready;
    s.app.on_unreachable = sfl_app_unreachable;
    s.app.on_message = on_message;
    s.app.on_signal = on_signal;
    s.app.arg = &s;
    s.fallback = event_new(s.app.base, -1, EV_PERSIST, on_fallback, &s);
    if (s.fallback) {
        struct timeval tv = {FALLBACK_MS / 1000, (FALLBACK_MS % 1000) * 1000};
        evtimer_add(s.fallback, &tv);
        sfl_app_run(&s.app, s.app.conf->connect_timeout_ms * 2);
        event_free(s.fallback);
    } else {
        sfl_app_fail(&s.app, "out of memory");
    }
    sfl_app_close(&s.app);
out:
    if (s.out != stdout)
        fclose(s.out);
    free(s.ids);
    free(s.done);
    free(s.seen);
    sfl_streams_free(s.streams);
    return s.app.rc;
}
