/* fake_provider.c - a fake IPTV provider that counts connections itself.
 *
 * The tests need ground truth that does not come from sfl: the provider's own
 * view of how many streams each account has open at once. This program is that
 * provider. It serves Xtream-style stream URLs
 *
 *     GET /live/<user>/<pass>/<stream>[.ts]
 *
 * and, for every account, counts the connections open right now, the most it
 * ever saw open together, and every request refused because it would have
 * gone over the account's limit (a "violation": the number the tests assert
 * is zero). It also counts every request naming an account ("requests") and
 * every one it did not serve ("refused": over the limit, wrong password, a
 * range past the end), so a test can tell how many connections a check made.
 * GET /stats reports the counters as JSON, POST or GET /reset clears them.
 * GET /minutes[?user=U&from=UNIX&to=UNIX] gives, per account and wall-clock
 * UTC minute (the last day), the most connections open at once, the number
 * admitted and their connection-ms (tests/tools/fake_provider/minutes.c): what a history run
 * compares sfl's per-minute history with.
 * POST /control/<user>?real_limit=N&code=C&panel_max=M gives an account a
 * "real limit" below its LIMIT, refused with code C (458 by default) and
 * counted in its "real_refusals", not as violations (code=302: a redirect
 * to GET /clip.ts, a short clip in one reply), and makes the panel
 * say max_connections M (tests/tools/fake_provider/real_limit.c).
 *
 * It also answers the Xtream Codes panel API as a panel does,
 *
 *     GET /player_api.php?username=U&password=P
 *
 * with 200 and {"user_info": {...}, "server_info": {...}}: active_cons is the
 * account's live "current" at that moment, max_connections its limit, both
 * as strings (panels mostly send strings), the password echoed. An unknown
 * user or a wrong password gets {"user_info": {"auth": 0}}, still 200.
 * --panel USER:KEY=VALUE varies one account's answer (status=Expired|Banned|
 * Disabled|Active, numbers=1, auth=0, exp=null|UNIX); it only changes what
 * the panel says, never what /live serves. Each such request naming a known
 * account counts in its "panel_requests", not in "requests".
 *
 * A connection is open for its account from the moment its request is
 * admitted until the last byte of its response has been handed to the kernel
 * (evhttp's on-complete callback) or the client goes away (the connection's
 * close callback), whichever comes first. Both paths end in
 * fp_stream_count_down(), which counts a stream down at most once.
 *
 * Bodies are streamed with chunked replies paced on a libevent timer: every
 * ~50 ms the stream sends the bytes due by then at --rate-kbps, so a response
 * lasts --hold-ms (or, with --file and hold 0, exactly one pass over the
 * file). The bytes come from --file, looped, or from MPEG-TS null packets.
 *
 * With --ranges the file is a seekable one, as a VOD server (or a live server
 * that answers ranges) serves it: every reply says "Accept-Ranges: bytes" and
 * has a Content-Length, a "Range: bytes=..." request gets 206 and exactly that
 * part with its Content-Range (416 past the end), anything else 200 and the
 * whole file, each paced at --rate-kbps and sent once (no --hold-ms). A
 * client that seeks in such a file opens one more connection per seek, which
 * the counters show.
 *
 * Who frees what (libevent 2.1 evhttp rules, which this file leans on):
 *   - Response finished: evhttp_send_reply_end() hands the request back to
 *     evhttp; the on-complete callback then frees our fp_stream. It may run
 *     inside evhttp_send_reply_end(), so the caller never touches the stream
 *     afterwards.
 *   - Client closed while we were still sending: evhttp detaches the request
 *     from the dying connection (its connection becomes NULL) and leaves it to
 *     us; the close callback frees it with evhttp_send_reply_end().
 *   - Client closed after we ended, or evhttp_free() at exit: the request is
 *     still queued on the connection and evhttp frees it; the close callback
 *     only frees our fp_stream.
 *
 * It must never count a connection down twice, never count a refused request
 * as open, and never print anything by default beyond the listening line:
 * tests read its stderr. Debug lines: SFL_LOG_LEVEL=debug. */
#include "clock.h"
#include "fp.h"
#include "log.h"
#include "minutes.h"
#include "real_limit.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/*--- Users --------------------------------------------------------------------*/

fp_user *fp_user_find(fp_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->nusers; i++)
        if (strcmp(srv->users[i].name, name) == 0)
            return &srv->users[i];
    return NULL;
}

static void fp_users_free(fp_user *users, size_t n)
{
    if (users == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(users[i].name);
        free(users[i].pass);
    }
    free(users);
}

/* Unix milliseconds of the wall clock: minutes are wall-clock minutes, as
 * sfl's history counts them. */
static int64_t fp_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*--- Streams ------------------------------------------------------------------*/

static void fp_stream_tick(evutil_socket_t fd, short what, void *arg);
static void fp_stream_on_complete(struct evhttp_request *req, void *arg);
static void fp_stream_on_close(struct evhttp_connection *evcon, void *arg);

/* Creates a stream for an admitted request and counts it open. len > 0: the
 * reply is the len bytes of the file from off, sent once (--ranges); len 0:
 * the usual reply of hold_ms. Returns NULL on allocation failure (nothing
 * counted). The stream is linked into srv->streams and freed by
 * fp_stream_free(); it never owns req. */
static fp_stream *fp_stream_new(fp_server *srv, fp_user *user, struct evhttp_request *req,
                                long hold_ms, uint64_t off, uint64_t len)
{
    fp_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->tick = evtimer_new(srv->base, fp_stream_tick, s);
    s->chunk = evbuffer_new();
    if (s->tick == NULL || s->chunk == NULL) {
        if (s->tick)
            event_free(s->tick);
        if (s->chunk)
            evbuffer_free(s->chunk);
        free(s);
        return NULL;
    }
    s->srv = srv;
    s->user = user;
    s->req = req;
    s->evcon = evhttp_request_get_connection(req);
    s->id = ++srv->next_id;
    s->start_us = sfl_mono_us();
    s->hold_ms = hold_ms;
    s->one_pass = len > 0 || (srv->src_is_file && hold_ms == 0);
    s->body_len = len > 0 ? len : srv->src_len;
    s->src_off = (size_t)off;
    s->state = FP_STREAM_SENDING;

    s->next = srv->streams;
    if (srv->streams)
        srv->streams->prev = s;
    srv->streams = s;

    s->counted = true;
    fp_minutes_open(&user->minutes, fp_wall_ms(), user->current);
    user->current++;
    user->total++;
    if (user->current > user->max_seen)
        user->max_seen = user->current;
    srv->current++;
    if (srv->current > srv->max_concurrent)
        srv->max_concurrent = srv->current;
    sfl_debug("open #%lu user=%s current=%ld/%ld hold_ms=%ld", s->id, user->name, user->current,
              user->limit, hold_ms);
    return s;
}

/* Counts the stream's connection closed; a no-op the second time. */
static void fp_stream_count_down(fp_stream *s, const char *why)
{
    if (!s->counted)
        return;
    s->counted = false;
    fp_minutes_close(&s->user->minutes, fp_wall_ms(), s->user->current);
    s->user->current--;
    s->srv->current--;
    sfl_debug("close #%lu user=%s (%s) sent=%llu after %lld ms current=%ld", s->id, s->user->name,
              why, (unsigned long long)s->sent, (long long)((sfl_mono_us() - s->start_us) / 1000),
              s->user->current);
}

/* Unlinks and frees the stream (counting it down if still counted). Does not
 * touch s->req: whoever calls this has settled the request's fate. */
static void fp_stream_free(fp_stream *s)
{
    if (s == NULL)
        return;
    fp_stream_count_down(s, "freed");
    if (s->prev)
        s->prev->next = s->next;
    else
        s->srv->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    event_free(s->tick);
    evbuffer_free(s->chunk);
    free(s);
}

/* Bytes due after ms milliseconds at the server's rate (kbit/s = bits/ms). */
static uint64_t fp_bytes_due(const fp_server *srv, int64_t ms)
{
    if (ms <= 0)
        return 0;
    return (uint64_t)srv->rate_kbps * (uint64_t)ms / 8;
}

/* Appends n body bytes from the source, wrapping around its end. */
static int fp_stream_fill(fp_stream *s, uint64_t n)
{
    const fp_server *srv = s->srv;
    while (n > 0) {
        size_t take = srv->src_len - s->src_off;
        if (take > n)
            take = (size_t)n;
        if (evbuffer_add(s->chunk, srv->src + s->src_off, take) != 0)
            return -1;
        s->src_off = (s->src_off + take) % srv->src_len;
        n -= take;
    }
    return 0;
}

/* Ends the reply. The on-complete callback may free s before this returns:
 * the caller must not touch s afterwards. */
static void fp_stream_finish(fp_stream *s)
{
    s->state = FP_STREAM_ENDING;
    event_del(s->tick);
    evhttp_send_reply_end(s->req);
}

/* Sends what is due now and re-arms the timer, or ends the reply. */
static void fp_stream_tick(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    fp_stream *s = arg;
    const fp_server *srv = s->srv;
    int64_t elapsed = (sfl_mono_us() - s->start_us) / 1000;
    uint64_t due;
    bool last;
    int64_t next_ms = FP_SLICE_MS;

    if (s->one_pass) {
        /* Send each slice one period ahead; stop at the end of the body. */
        due = fp_bytes_due(srv, elapsed + FP_SLICE_MS);
        last = due >= s->body_len;
        if (last)
            due = s->body_len;
    } else {
        int64_t upto = elapsed + FP_SLICE_MS;
        if (upto > s->hold_ms)
            upto = s->hold_ms;
        due = srv->src_len ? fp_bytes_due(srv, upto) : 0;
        last = elapsed >= s->hold_ms;
        if (!last && s->hold_ms - elapsed < next_ms)
            next_ms = s->hold_ms - elapsed;
    }

    if (due > s->sent) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
        size_t backlog = bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
        /* A client that does not read gets no more than it can take; a
         * one-pass reply must still deliver the whole file, so it waits. */
        if (backlog < FP_MAX_BACKLOG) {
            uint64_t n = due - s->sent;
            if (fp_stream_fill(s, n) == 0) {
                s->sent += n;
                evhttp_send_reply_chunk(s->req, s->chunk);
            } else {
                evbuffer_drain(s->chunk, evbuffer_get_length(s->chunk));
                sfl_warn("stream #%lu: out of memory, ending early", s->id);
                last = true;
            }
        } else if (s->one_pass) {
            last = false;
        }
    }

    if (last) {
        fp_stream_finish(s); /* s may be gone now */
        return;
    }
    struct timeval tv = {(time_t)(next_ms / 1000), (suseconds_t)((next_ms % 1000) * 1000)};
    evtimer_add(s->tick, &tv);
}

/* evhttp has flushed the whole reply (the request is freed after we return). */
static void fp_stream_on_complete(struct evhttp_request *req, void *arg)
{
    UNUSED(req);
    fp_stream *s = arg;
    fp_stream_count_down(s, "sent");
    evhttp_connection_set_closecb(s->evcon, NULL, NULL);
    fp_stream_free(s);
}

/* The connection is being freed: the client went away, or we are exiting. */
static void fp_stream_on_close(struct evhttp_connection *evcon, void *arg)
{
    UNUSED(evcon);
    fp_stream *s = arg;
    fp_stream_count_down(s, "client closed");
    event_del(s->tick);
    evhttp_request_set_on_complete_cb(s->req, NULL, NULL);
    /* Detached from the dying connection: ours to free (send_reply_end on a
     * request without a connection just frees it). Otherwise it is still
     * queued on the connection and evhttp frees it next. */
    if (s->state == FP_STREAM_SENDING && evhttp_request_get_connection(s->req) == NULL)
        evhttp_send_reply_end(s->req);
    fp_stream_free(s);
}

/*--- Routes -------------------------------------------------------------------*/

static long fp_parse_num(const char *s, long max);

/* Returns the /stats document; the caller frees it with cJSON_Delete(). */
static cJSON *fp_stats_json(const fp_server *srv)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *users = root ? cJSON_AddObjectToObject(root, "users") : NULL;
    if (users == NULL)
        goto err;
    long violations = 0, requests = 0, refused = 0, panel_requests = 0;
    for (size_t i = 0; i < srv->nusers; i++) {
        const fp_user *u = &srv->users[i];
        cJSON *o = cJSON_AddObjectToObject(users, u->name);
        if (o == NULL || !cJSON_AddNumberToObject(o, "limit", (double)u->limit) ||
            !cJSON_AddNumberToObject(o, "current", (double)u->current) ||
            !cJSON_AddNumberToObject(o, "max_seen", (double)u->max_seen) ||
            !cJSON_AddNumberToObject(o, "total", (double)u->total) ||
            !cJSON_AddNumberToObject(o, "requests", (double)u->requests) ||
            !cJSON_AddNumberToObject(o, "refused", (double)u->refused) ||
            !cJSON_AddNumberToObject(o, "violations", (double)u->violations) ||
            !cJSON_AddNumberToObject(o, "auth_failures", (double)u->auth_failures) ||
            !cJSON_AddNumberToObject(o, "panel_requests", (double)u->panel_requests) ||
            !cJSON_AddNumberToObject(o, "real_limit", (double)u->real.limit) ||
            !cJSON_AddNumberToObject(o, "real_refusals", (double)u->real.refusals))
            goto err;
        violations += u->violations;
        panel_requests += u->panel_requests;
        requests += u->requests;
        refused += u->refused;
    }
    if (!cJSON_AddNumberToObject(root, "violations", (double)violations) ||
        !cJSON_AddNumberToObject(root, "max_concurrent", (double)srv->max_concurrent) ||
        !cJSON_AddNumberToObject(root, "current", (double)srv->current) ||
        !cJSON_AddNumberToObject(root, "requests", (double)requests) ||
        !cJSON_AddNumberToObject(root, "refused", (double)refused) ||
        !cJSON_AddNumberToObject(root, "panel_requests", (double)panel_requests))
        goto err;
    return root;
err:
    cJSON_Delete(root);
    return NULL;
}

/* Answers 200 with doc (consumed; NULL: out of memory, 500). */
void fp_send_json(struct evhttp_request *req, cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    if (text == NULL || evbuffer_add_printf(out, "%s\n", text) < 0) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, HTTP_OK, "OK", NULL);
    }
    cJSON_free(text);
    cJSON_Delete(doc);
}

static void fp_send_stats(fp_server *srv, struct evhttp_request *req)
{
    fp_send_json(req, fp_stats_json(srv));
}

/* GET /minutes[?user=U&from=UNIX&to=UNIX]: {"now": UNIX, "users": {"U":
 * {"limit": L, "minutes": [{"t", "utc", "peak", "opened", "held_ms",
 * "complete"}]}}},
 * the minutes starting in [from, to) (default: every one kept, the current
 * one included), oldest first; every account, or only U. 400 naming a bad
 * parameter, 404 for an unknown user. */
static void fp_serve_minutes(fp_server *srv, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    /* evhttp_parse_query_str() initialises params, and clears them on error. */
    if (evhttp_parse_query_str(query ? query : "", &params) != 0) {
        evhttp_send_error(req, HTTP_BADREQUEST, "bad query");
        return;
    }
    int64_t now_ms = fp_wall_ms(), now = now_ms / 1000, from = 0, to = now + 60;
    const char *names[] = {"from", "to"};
    int64_t *vals[] = {&from, &to};
    for (int i = 0; i < 2; i++) {
        const char *v = evhttp_find_header(&params, names[i]);
        if (v == NULL)
            continue;
        long n = fp_parse_num(v, LONG_MAX);
        if (n < 0) {
            evhttp_clear_headers(&params);
            evhttp_send_error(req, HTTP_BADREQUEST,
                              i == 0 ? "bad from (Unix seconds)" : "bad to (Unix seconds)");
            return;
        }
        *vals[i] = n;
    }
    const char *only = evhttp_find_header(&params, "user");
    if (only != NULL && fp_user_find(srv, only) == NULL) {
        evhttp_clear_headers(&params);
        evhttp_send_error(req, HTTP_NOTFOUND, "unknown user");
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *users = NULL;
    if (root == NULL || !cJSON_AddNumberToObject(root, "now", (double)now) ||
        (users = cJSON_AddObjectToObject(root, "users")) == NULL)
        goto err;
    for (size_t i = 0; i < srv->nusers; i++) {
        const fp_user *u = &srv->users[i];
        if (only != NULL && strcmp(only, u->name) != 0)
            continue;
        cJSON *o = cJSON_AddObjectToObject(users, u->name);
        cJSON *arr = fp_minutes_json(&u->minutes, now_ms, u->current, from, to);
        if (arr == NULL)
            goto err;
        if (o == NULL || !cJSON_AddNumberToObject(o, "limit", (double)u->limit) ||
            !cJSON_AddItemToObject(o, "minutes", arr)) {
            cJSON_Delete(arr);
            goto err;
        }
    }
    evhttp_clear_headers(&params);
    fp_send_json(req, root);
    return;
err:
    evhttp_clear_headers(&params);
    fp_send_json(req, NULL);
    cJSON_Delete(root);
}

/* Zeroes the counters. The maxima restart from what is open now, so that
 * max_seen >= current keeps holding. */
static void fp_reset(fp_server *srv)
{
    for (size_t i = 0; i < srv->nusers; i++) {
        fp_user *u = &srv->users[i];
        u->max_seen = u->current;
        u->total = 0;
        u->requests = 0;
        u->refused = 0;
        u->violations = 0;
        u->auth_failures = 0;
        u->panel_requests = 0;
        u->real.refusals = 0;
        fp_minutes_init(&u->minutes, fp_wall_ms(), u->current);
    }
    srv->max_concurrent = srv->current;
    sfl_debug("counters reset");
}

/* Reads ?hold_ms=N into *hold_ms. Returns 0, or -1 if present but invalid. */
static int fp_query_hold_ms(struct evhttp_request *req, long *hold_ms)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query == NULL)
        return 0;
    struct evkeyvalq params;
    /* evhttp_parse_query_str() initialises params, and clears them on error. */
    if (evhttp_parse_query_str(query, &params) != 0)
        return -1;
    int rc = 0;
    const char *v = evhttp_find_header(&params, "hold_ms");
    if (v != NULL) {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < 0 || n > INT_MAX)
            rc = -1;
        else
            *hold_ms = n;
    }
    evhttp_clear_headers(&params);
    return rc;
}

typedef enum {
    FP_RANGE_WHOLE,         /* no Range we serve in part: 200 and the whole file */
    FP_RANGE_PART,          /* 206 and [off, off + len) */
    FP_RANGE_UNSATISFIABLE, /* 416: it starts past the end */
} fp_range_kind;

/* Reads a decimal number at *p, moving *p past it; -1 if there is none. */
static int fp_range_num(const char **p, uint64_t *n)
{
    if (!isdigit((unsigned char)**p))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(*p, &end, 10);
    if (errno != 0)
        return -1;
    *n = v;
    *p = end;
    return 0;
}

/* Reads a "Range" header (bytes=A-, bytes=A-B or bytes=-N) against a body of
 * size bytes into *off and *len. A header it cannot read and a list of
 * several ranges are answered with the whole file, as RFC 9110 allows. */
static fp_range_kind fp_parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t first, last = size - 1, n;
    if (h == NULL || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
        return FP_RANGE_WHOLE;
    const char *p = h + 6;
    if (*p == '-') { /* the last N bytes */
        p++;
        if (fp_range_num(&p, &n) != 0 || *p != '\0')
            return FP_RANGE_WHOLE;
        if (n == 0)
            return FP_RANGE_UNSATISFIABLE;
        first = n >= size ? 0 : size - n;
    } else {
        if (fp_range_num(&p, &first) != 0 || *p++ != '-')
            return FP_RANGE_WHOLE;
        if (*p != '\0') {
            if (fp_range_num(&p, &n) != 0 || *p != '\0' || n < first)
                return FP_RANGE_WHOLE;
            if (n < last)
                last = n;
        }
        if (first >= size)
            return FP_RANGE_UNSATISFIABLE;
    }
    *off = first;
    *len = last - first + 1;
    return FP_RANGE_PART;
}

/* Starts the reply of an admitted --ranges request: the whole file or the
 * part asked for, with the headers of a seekable file. Refuses (416) a range
 * past the end. Returns the stream, or NULL when the request was answered
 * here (refused, or out of memory). */
static fp_stream *fp_start_ranged(fp_server *srv, fp_user *u, struct evhttp_request *req)
{
    uint64_t size = srv->src_len, off = 0, len = size;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    const char *range = evhttp_find_header(in, "Range");
    char value[96];
    fp_range_kind kind = fp_parse_range(range, size, &off, &len);
    if (kind == FP_RANGE_UNSATISFIABLE) {
        u->refused++;
        sfl_debug("unsatisfiable range %s for %s", range, u->name);
        snprintf(value, sizeof(value), "bytes */%llu", (unsigned long long)size);
        evhttp_add_header(h, "Content-Range", value); /* send_error would drop it */
        evhttp_send_reply(req, 416, "Range Not Satisfiable", NULL);
        return NULL;
    }
    fp_stream *s = fp_stream_new(srv, u, req, 0, off, len);
    if (s == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return NULL;
    }
    evhttp_add_header(h, "Accept-Ranges", "bytes");
    snprintf(value, sizeof(value), "%llu", (unsigned long long)len);
    evhttp_add_header(h, "Content-Length", value); /* so evhttp does not chunk */
    if (kind == FP_RANGE_PART) {
        snprintf(value, sizeof(value), "bytes %llu-%llu/%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1), (unsigned long long)size);
        evhttp_add_header(h, "Content-Range", value);
    }
    sfl_debug("#%lu range %s: %llu bytes from %llu", s->id, range ? range : "(none)",
              (unsigned long long)len, (unsigned long long)off);
    return s;
}

/* GET /live/<user>/<pass>/<stream>: path is the decoded part after "/live/". */
static void fp_serve_live(fp_server *srv, struct evhttp_request *req, char *path)
{
    char *user_name = path;
    char *pass = strchr(user_name, '/');
    char *stream = pass ? strchr(pass + 1, '/') : NULL;
    if (stream == NULL || strchr(stream + 1, '/') != NULL || stream[1] == '\0' ||
        pass == user_name || stream == pass + 1) {
        evhttp_send_error(req, HTTP_NOTFOUND, NULL);
        return;
    }
    *pass++ = '\0';
    *stream++ = '\0';

    long hold_ms = srv->hold_ms;
    if (fp_query_hold_ms(req, &hold_ms) != 0) {
        evhttp_send_error(req, HTTP_BADREQUEST, "bad hold_ms");
        return;
    }

    fp_user *u = fp_user_find(srv, user_name);
    if (u == NULL) {
        sfl_debug("unknown user %s", user_name);
        evhttp_send_error(req, 401, "Unauthorized");
        return;
    }
    u->requests++;
    if (strcmp(u->pass, pass) != 0) {
        u->refused++;
        u->auth_failures++;
        sfl_debug("wrong password for %s", u->name);
        evhttp_send_error(req, 401, "Unauthorized");
        return;
    }
    int code = fp_real_refuses(&u->real, u->current);
    if (code) {
        u->refused++;
        u->real.refusals++;
        sfl_debug("REAL LIMIT user=%s current=%ld real=%ld: %d", u->name, u->current, u->real.limit,
                  code);
        if (code == 302) {
            /* The "connected elsewhere" clip: a short video that ends at once. */
            char where[128];
            snprintf(where, sizeof(where), "http://%s:%d/clip.ts", srv->host, srv->port);
            evhttp_add_header(evhttp_request_get_output_headers(req), "Location", where);
            evhttp_send_reply(req, 302, "Found", NULL);
            return;
        }
        evhttp_send_error(req, code, "Too many connections");
        return;
    }
    if (u->limit > 0 && u->current >= u->limit) {
        u->refused++;
        u->violations++;
        sfl_debug("VIOLATION user=%s current=%ld limit=%ld stream=%s", u->name, u->current,
                  u->limit, stream);
        evhttp_send_error(req, 403, "Max connections reached");
        return;
    }

    fp_stream *s;
    if (srv->ranges) {
        if ((s = fp_start_ranged(srv, u, req)) == NULL)
            return;
    } else if ((s = fp_stream_new(srv, u, req, hold_ms, 0, 0)) == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    struct timeval tmo = {FP_CONN_TIMEOUT_S, 0};
    evhttp_connection_set_timeout_tv(s->evcon, &tmo);
    evhttp_connection_set_closecb(s->evcon, fp_stream_on_close, s);
    evhttp_request_set_on_complete_cb(req, fp_stream_on_complete, s);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", srv->content_type);
    evhttp_add_header(h, "Cache-Control", "no-cache");
    bool part = evhttp_find_header(h, "Content-Range") != NULL;
    evhttp_send_reply_start(req, part ? 206 : HTTP_OK, part ? "Partial Content" : "OK");
    fp_stream_tick(-1, 0, s); /* first slice now; s may be gone after this */
}

/*--- Clip and control -------------------------------------------------------*/

/* GET /clip.ts: the start of the body bytes (FP_CLIP_BYTES) in one reply,
 * counted for nobody: where a refusal by redirect (code=302) sends a
 * client, as panels send an account over its limit to a short "connected
 * elsewhere" video. */
static void fp_serve_clip(fp_server *srv, struct evhttp_request *req)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    size_t n = srv->src_len < FP_CLIP_BYTES ? srv->src_len : FP_CLIP_BYTES;
    n -= n % FP_TS_PACKET;
    if (evbuffer_add(out, srv->src, n) < 0) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", srv->content_type);
    evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

/* POST /control/<user>?real_limit=N&code=C&panel_max=M: changes what the
 * account really allows and what its panel says (real_limit.h); 400 naming
 * the bad parameter, 404 for an unknown user. Answers /stats. */
static void fp_control(fp_server *srv, struct evhttp_request *req, const char *name)
{
    fp_user *u = fp_user_find(srv, name);
    char err[160];
    if (u == NULL) {
        evhttp_send_error(req, HTTP_NOTFOUND, "unknown user");
        return;
    }
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (fp_real_apply(&u->real, query, err, sizeof(err)) < 0) {
        evhttp_send_error(req, HTTP_BADREQUEST, err);
        return;
    }
    sfl_debug("control %s: real_limit=%ld code=%d panel_max=%ld", u->name, u->real.limit,
              u->real.code, u->real.panel_max);
    fp_send_stats(srv, req);
}

/*--- Routing ------------------------------------------------------------------*/

static void fp_on_request(struct evhttp_request *req, void *arg)
{
    fp_server *srv = arg;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    const char *raw = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char *path = raw ? evhttp_uridecode(raw, 0, NULL) : NULL;
    if (path == NULL) {
        evhttp_send_error(req, HTTP_BADREQUEST, NULL);
        return;
    }

    bool get = method == EVHTTP_REQ_GET;
    if (get && strncmp(path, "/live/", 6) == 0) {
        fp_serve_live(srv, req, path + 6);
    } else if (get && strcmp(path, "/player_api.php") == 0) {
        fp_serve_panel(srv, req);
    } else if (get && strcmp(path, "/clip.ts") == 0) {
        fp_serve_clip(srv, req);
    } else if (get && strcmp(path, "/stats") == 0) {
        fp_send_stats(srv, req);
    } else if (get && strcmp(path, "/minutes") == 0) {
        fp_serve_minutes(srv, req);
    } else if (method == EVHTTP_REQ_POST && strncmp(path, "/control/", 9) == 0) {
        fp_control(srv, req, path + 9);
    } else if ((get || method == EVHTTP_REQ_POST) && strcmp(path, "/reset") == 0) {
        fp_reset(srv);
        fp_send_stats(srv, req);
    } else {
        evhttp_send_error(req, HTTP_NOTFOUND, NULL);
    }
    free(path);
}

/*--- Server -------------------------------------------------------------------*/

static void fp_on_signal(evutil_socket_t sig, short what, void *arg)
{
    UNUSED(what);
    fp_server *srv = arg;
    sfl_debug("signal %d, exiting", (int)sig);
    event_base_loopbreak(srv->base);
}

/* Loads the body source: the whole file, or a run of MPEG-TS null packets. */
static int fp_load_source(fp_server *srv, const char *file)
{
    if (file == NULL) {
        srv->src_len = (size_t)FP_TS_PACKET * FP_FILLER_PACKETS;
        srv->src = malloc(srv->src_len);
        if (srv->src == NULL)
            return -1;
        memset(srv->src, 0xFF, srv->src_len);
        for (size_t p = 0; p < srv->src_len; p += FP_TS_PACKET) {
            srv->src[p] = 0x47;     /* sync byte */
            srv->src[p + 1] = 0x1F; /* PID 0x1FFF: null packet */
            srv->src[p + 2] = 0xFF;
            srv->src[p + 3] = 0x10; /* payload only, continuity 0 */
        }
        return 0;
    }

    int rc = -1;
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        sfl_error("cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    long size;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        sfl_error("cannot size %s: %s", file, strerror(errno));
        goto done;
    }
    if (size == 0) {
        sfl_error("%s is empty", file);
        goto done;
    }
    srv->src = malloc((size_t)size);
    if (srv->src == NULL) {
        sfl_error("out of memory loading %s", file);
        goto done;
    }
    if (fread(srv->src, 1, (size_t)size, f) != (size_t)size) {
        sfl_error("cannot read %s", file);
        goto done;
    }
    srv->src_len = (size_t)size;
    srv->src_is_file = true;
    rc = 0;
done:
    fclose(f);
    return rc;
}

/* Writes "<port>\n" to path through a temporary file and rename(2), so a
 * reader never sees a partial file. */
static int fp_write_port_file(const char *path, int port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void fp_server_free(fp_server *srv);

/* Builds the server from cfg, taking over cfg->users. Returns NULL (after
 * logging why) on failure. Free with fp_server_free(). */
static fp_server *fp_server_new(fp_config *cfg)
{
    fp_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return NULL;
    srv->users = cfg->users;
    srv->nusers = cfg->nusers;
    cfg->users = NULL;
    cfg->nusers = 0;
    for (size_t i = 0; i < srv->nusers; i++)
        fp_minutes_init(&srv->users[i].minutes, fp_wall_ms(), 0);
    srv->hold_ms = cfg->hold_ms;
    srv->rate_kbps = cfg->rate_kbps;
    srv->ranges = cfg->ranges;
    srv->content_type = "video/mp2t";
    if (cfg->ranges) {
        const char *dot = strrchr(cfg->file, '.');
        if (dot && (strcmp(dot, ".mp4") == 0 || strcmp(dot, ".m4v") == 0))
            srv->content_type = "video/mp4";
    }

    if (fp_load_source(srv, cfg->file) != 0)
        goto err;
    srv->base = event_base_new();
    if (srv->base == NULL)
        goto err;
    srv->http = evhttp_new(srv->base);
    srv->sigint = evsignal_new(srv->base, SIGINT, fp_on_signal, srv);
    srv->sigterm = evsignal_new(srv->base, SIGTERM, fp_on_signal, srv);
    if (srv->http == NULL || srv->sigint == NULL || srv->sigterm == NULL ||
        event_add(srv->sigint, NULL) != 0 || event_add(srv->sigterm, NULL) != 0)
        goto err;
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(srv->http, fp_on_request, srv);

    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(srv->http, cfg->host, (ev_uint16_t)cfg->port);
    if (bound == NULL) {
        sfl_error("cannot listen on %s:%d", cfg->host, cfg->port);
        goto err;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int port = -1;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (port < 0) {
        sfl_error("cannot learn the bound port: %s", strerror(errno));
        goto err;
    }
    if (cfg->port_file && fp_write_port_file(cfg->port_file, port) != 0) {
        sfl_error("cannot write %s: %s", cfg->port_file, strerror(errno));
        goto err;
    }
    snprintf(srv->host, sizeof(srv->host), "%s", cfg->host);
    srv->port = port;
    bool v6 = strchr(cfg->host, ':') != NULL;
    fprintf(stderr, "listening on %s%s%s:%d\n", v6 ? "[" : "", cfg->host, v6 ? "]" : "", port);
    return srv;
err:
    fp_server_free(srv);
    return NULL;
}

static void fp_server_free(fp_server *srv)
{
    if (srv == NULL)
        return;
    /* Frees every connection; their close callbacks free our streams. */
    if (srv->http)
        evhttp_free(srv->http);
    while (srv->streams) {
        sfl_warn("stream #%lu outlived its connection", srv->streams->id);
        fp_stream_free(srv->streams);
    }
    if (srv->sigint)
        event_free(srv->sigint);
    if (srv->sigterm)
        event_free(srv->sigterm);
    if (srv->base)
        event_base_free(srv->base);
    fp_users_free(srv->users, srv->nusers);
    free(srv->src);
    free(srv);
}

/*--- Command line -------------------------------------------------------------*/

static void fp_usage(FILE *out)
{
    fprintf(out, "usage: sfl-fake-provider [--listen HOST:PORT] [--port-file FILE]\n"
                 "                         [--user NAME:PASS:LIMIT]... [--hold-ms N]\n"
                 "                         [--file TS_FILE] [--rate-kbps N] [--ranges]\n"
                 "                         [--panel USER:KEY=VALUE]...\n"
                 "  --listen     address to bind (default 127.0.0.1:0, port 0 = any free port)\n"
                 "  --port-file  write the bound port there (atomically) once listening\n"
                 "  --user       a provider account; LIMIT 0 = unlimited (repeatable)\n"
                 "  --hold-ms    how long each stream response lasts (default 1000;\n"
                 "               ?hold_ms=N per request; 0 with --file = one pass)\n"
                 "  --file       stream this file's bytes (looped) instead of TS null packets\n"
                 "  --rate-kbps  pacing of the body (default 4000)\n"
                 "  --ranges     serve --file as a seekable file: Accept-Ranges, Content-Length,\n"
                 "               206 for a Range, each reply one pass (no --hold-ms)\n"
                 "  --panel      how player_api.php describes USER (a --user; repeatable):\n"
                 "               status=Active|Expired|Banned|Disabled, numbers=0|1 (counts as\n"
                 "               JSON numbers), auth=0|1 (0: always auth 0), exp=null|UNIX\n"
                 "routes: GET /live/USER/PASS/STREAM[.ts], GET /player_api.php?username=U&\n"
                 "        password=P, GET /stats, GET /minutes[?user=U&from=UNIX&to=UNIX],\n"
                 "        POST|GET /reset\n");
}

/* Parses a non-negative decimal number in [0, max]; -1 when invalid. */
static long fp_parse_num(const char *s, long max)
{
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || n < 0 || n > max)
        return -1;
    return n;
}

/* NAME:PASS:LIMIT; PASS may contain ':', NAME may not. */
static int fp_config_add_user(fp_config *cfg, const char *spec)
{
    const char *c1 = strchr(spec, ':');
    const char *c2 = strrchr(spec, ':');
    if (c1 == NULL || c1 == c2 || c1 == spec)
        return -1;
    long limit = fp_parse_num(c2 + 1, LONG_MAX);
    if (limit < 0)
        return -1;
    char *name = strndup(spec, (size_t)(c1 - spec));
    char *pass = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
    fp_user *users = realloc(cfg->users, (cfg->nusers + 1) * sizeof(*users));
    if (name == NULL || pass == NULL || users == NULL) {
        free(name);
        free(pass);
        if (users)
            cfg->users = users;
        return -1;
    }
    cfg->users = users;
    for (size_t i = 0; i < cfg->nusers; i++) {
        if (strcmp(users[i].name, name) == 0) {
            free(name);
            free(pass);
            return -1;
        }
    }
    memset(&users[cfg->nusers], 0, sizeof(users[0]));
    users[cfg->nusers].name = name;
    users[cfg->nusers].pass = pass;
    users[cfg->nusers].limit = limit;
    users[cfg->nusers].panel.exp_date = FP_PANEL_EXP;
    fp_real_init(&users[cfg->nusers].real);
    cfg->nusers++;
    return 0;
}

/* USER:KEY=VALUE for a --user account, e.g. "alice:status=Expired". */
static int fp_config_apply_panel(fp_config *cfg, const char *spec)
{
    const char *colon = strchr(spec, ':');
    const char *eq = colon ? strchr(colon, '=') : NULL;
    if (colon == NULL || eq == NULL || colon == spec)
        return -1;
    fp_user *u = NULL;
    size_t nlen = (size_t)(colon - spec);
    for (size_t i = 0; i < cfg->nusers && u == NULL; i++)
        if (strlen(cfg->users[i].name) == nlen && strncmp(cfg->users[i].name, spec, nlen) == 0)
            u = &cfg->users[i];
    if (u == NULL)
        return -1;
    const char *key = colon + 1, *val = eq + 1;
    size_t klen = (size_t)(eq - key);
    if (klen == 6 && strncmp(key, "status", klen) == 0) {
        for (int s = 0; s < FP_STATUS_COUNT; s++) {
            if (strcmp(val, fp_status_names[s]) == 0) {
                u->panel.status = (fp_panel_status)s;
                return 0;
            }
        }
        return -1;
    }
    if (klen == 3 && strncmp(key, "exp", klen) == 0) {
        bool null = strcmp(val, "null") == 0;
        long exp = null ? -1 : fp_parse_num(val, LONG_MAX);
        if (exp < 0 && !null)
            return -1;
        u->panel.exp_date = exp;
        return 0;
    }
    bool on = strcmp(val, "1") == 0;
    if (!on && strcmp(val, "0") != 0)
        return -1;
    if (klen == 7 && strncmp(key, "numbers", klen) == 0)
        u->panel.numbers = on;
    else if (klen == 4 && strncmp(key, "auth", klen) == 0)
        u->panel.refuse = !on;
    else
        return -1;
    return 0;
}

/* HOST:PORT, HOST may be a bracketed IPv6 address. */
static int fp_config_set_listen(fp_config *cfg, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec)
        return -1;
    long port = fp_parse_num(colon + 1, 65535);
    if (port < 0)
        return -1;
    const char *h = spec;
    size_t hlen = (size_t)(colon - spec);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    char *host = strndup(h, hlen);
    if (host == NULL)
        return -1;
    free(cfg->host);
    cfg->host = host;
    cfg->port = (int)port;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        OPT_LISTEN = 1,
        OPT_PORT_FILE,
        OPT_USER,
        OPT_HOLD,
        OPT_FILE,
        OPT_RATE,
        OPT_RANGES,
        OPT_PANEL,
        OPT_HELP
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"user", required_argument, NULL, OPT_USER},
        {"hold-ms", required_argument, NULL, OPT_HOLD},
        {"file", required_argument, NULL, OPT_FILE},
        {"rate-kbps", required_argument, NULL, OPT_RATE},
        {"ranges", no_argument, NULL, OPT_RANGES},
        {"panel", required_argument, NULL, OPT_PANEL},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    fp_config cfg = {.port = 0, .hold_ms = 1000, .rate_kbps = 4000};
    int rc = 2;
    int opt;

    cfg.host = strdup("127.0.0.1");
    if (cfg.host == NULL)
        return 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
            if (fp_config_set_listen(&cfg, optarg) != 0) {
                fprintf(stderr, "bad --listen %s (want HOST:PORT)\n", optarg);
                goto done;
            }
            break;
        case OPT_PORT_FILE:
            cfg.port_file = optarg;
            break;
        case OPT_USER:
            if (fp_config_add_user(&cfg, optarg) != 0) {
                fprintf(stderr, "bad or duplicate --user %s (want NAME:PASS:LIMIT)\n", optarg);
                goto done;
            }
            break;
        case OPT_HOLD:
            if ((cfg.hold_ms = fp_parse_num(optarg, INT_MAX)) < 0) {
                fprintf(stderr, "bad --hold-ms %s\n", optarg);
                goto done;
            }
            break;
        case OPT_FILE:
            cfg.file = optarg;
            break;
        case OPT_RATE:
            if ((cfg.rate_kbps = fp_parse_num(optarg, 10000000)) <= 0) {
                fprintf(stderr, "bad --rate-kbps %s\n", optarg);
                goto done;
            }
            break;
        case OPT_RANGES:
            cfg.ranges = true;
            break;
        case OPT_PANEL: {
            const char **panels = realloc(cfg.panels, (cfg.npanels + 1) * sizeof(*panels));
            if (panels == NULL)
                goto done;
            cfg.panels = panels;
            cfg.panels[cfg.npanels++] = optarg;
            break;
        }
        case OPT_HELP:
            fp_usage(stdout);
            rc = 0;
            goto done;
        default:
            fp_usage(stderr);
            goto done;
        }
    }
    if (optind != argc) {
        fp_usage(stderr);
        goto done;
    }
    if (cfg.ranges && cfg.file == NULL) {
        fprintf(stderr, "--ranges needs --file (a seekable file has a size)\n");
        goto done;
    }
    for (size_t i = 0; i < cfg.npanels; i++) {
        if (fp_config_apply_panel(&cfg, cfg.panels[i]) != 0) {
            fprintf(stderr, "bad --panel %s (want USER:KEY=VALUE for a --user)\n", cfg.panels[i]);
            goto done;
        }
    }

    /* A client that vanishes mid-write must cost an EPIPE, not the process. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    rc = 1;
    fp_server *srv = fp_server_new(&cfg);
    if (srv == NULL)
        goto done;
    if (event_base_dispatch(srv->base) == 0 || event_base_got_break(srv->base))
        rc = 0;
    fp_server_free(srv);
done:
    fp_users_free(cfg.users, cfg.nusers);
    free(cfg.panels);
    free(cfg.host);
    return rc;
}
