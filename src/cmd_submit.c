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

typedef struct submit {
    sfl_app app;
    sfl_streams *streams;
    char batch[64];
    int wait;
    int submitted;
    int fetching;
    int fetched_on;    /* app.ready_count when the fetch in flight was sent */
    int resubmitting;  /* the batch is being put on the queue again */
    long long read;    /* elements of the results list read on this connection */
    long long printed; /* streams whose result is printed */
    long long total;
    long long *ids;      /* the batch's stream ids, sorted */
    unsigned char *done; /* done[i]: the result of ids[i] is printed */
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
    if (!s->ids || !s->done)
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

static void on_resubmitted(int ok, const char *err, void *arg)
{
    submit *s = arg;
    s->resubmitting = 0;
    if (!ok) {
        /* Redis went again: the next connection looks once more. */
        sfl_warn("batch %s: could not put it on the queue again: %s", s->batch, err);
        return;
    }
    fetch(s);
}

/* Puts the streams without a printed result on the queue again, as the
 * batch s->batch. */
static void resubmit(submit *s)
{
    sfl_streams rest = {.v = malloc((s->streams->n ? s->streams->n : 1) * sizeof(sfl_stream))};
    if (!rest.v) {
        sfl_app_fail(&s->app, "out of memory");
        return;
    }
    for (size_t i = 0; i < s->streams->n; i++) {
        long long at = place_of(s, s->streams->v[i].id);
        if (at >= 0 && !s->done[at])
            rest.v[rest.n++] = s->streams->v[i]; /* read only, during the call */
    }
    sfl_warn("batch %s is gone from Redis (it lost its data): putting the %zu stream(s) without a "
             "result on the queue again",
             s->batch, rest.n);
    int64_t ttl = (int64_t)llround(s->app.conf->node_batch_ttl * 1000);
    s->resubmitting = 1;
    if (sfl_queue_submit(s->app.store, s->batch, &rest, ttl, on_resubmitted, s) < 0)
        s->resubmitting = 0; /* Redis away: the next connection looks again */
    free(rest.v);
}

/* On a reconnect: is the batch still in Redis? */
static void on_batch_checked(sfl_store *st, redisReply *r, void *arg)
{
    submit *s = arg;
    UNUSED(st);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && s->printed < s->total &&
        !s->resubmitting)
        resubmit(s);
    else
        fetch(s);
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
        char hash[200];
        sfl_queue_key(hash, sizeof(hash), sfl_store_ns(app->store), s->batch, NULL);
        const char *argv[2] = {"EXISTS", hash};
        if (!s->wait || sfl_store_command(app->store, on_batch_checked, s, 2, argv) < 0)
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
    sfl_streams_free(s.streams);
    return s.app.rc;
}
