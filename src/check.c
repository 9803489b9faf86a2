/* check.c - one check of one stream, from argv template to result.
 *
 * The command comes from check.command, an argv array whose elements may
 * hold {url} {id} {name} {account} {duration} {user_agent}, or be
 * {input_options} (the input's -protocol_whitelist, and -seekable 0 for
 * http(s): see add_input_options); it runs without a shell, in a clean
 * environment plus SFL_LEASE_ID, SFL_FENCE, SFL_ACCOUNT and SFL_STREAM_ID,
 * with check.timeout. Its output is read by the parser: ffmpeg
 * (analysis.c), json (stdout is an object merged into the result) or none
 * (exit status only). A URL whose scheme check.schemes does not allow is
 * never run: the check ends at once with Error.
 *
 * Retries (stream_analysis.retries, retry_delay) are new attempts under the
 * SAME lease, as StreamFlow retries inside one semaphore hold: the stream
 * keeps its place and the provider never sees more than one connection for
 * it; the lease is renewed meanwhile. A stop (lease lost, cancel) ends the
 * current attempt and any retry.
 *
 * Errors carry the line of the command's stderr that says why it failed
 * (analysis.h: an HTTP error, a known cause such as "could not find codec
 * parameters", not ffmpeg's trailing statistics), credentials redacted.
 * An ffmpeg check that ends on an HTTP code of learned.refusal_codes is
 * Refused (with "http_code"): the provider would not give the login one
 * more connection. So is one that was redirected (a second connection of
 * a plain input) and read less than half its duration: a panel's short
 * "connected elsewhere" clip. It is not retried under its lease (a retry at once would
 * be refused again, or make the panel drop someone's stream): the worker
 * queues it again and learned.c lowers the login's limit.
 */
#include "check.h"

#include "analysis.h"
#include "clock.h"
#include "conf.h"
#include "limiter.h"
#include "log.h"
#include "routes.h"
#include "runner.h"
#include "streams.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const status_names[SFL_STATUS_COUNT] = {
    "OK", "Timeout", "Error", "LeaseLost", "NoSlot", "Cancelled", "Preempted", "Refused"};

/* The error of a check stopped for why. */
static const char *stopped_because(sfl_status why)
{
    return why == SFL_STATUS_LEASE_LOST
               ? "lease lost: the check was stopped before the slot could go to anyone else"
           : why == SFL_STATUS_PREEMPTED ? "preempted: viewers needed its slot"
                                         : "cancelled";
}

const char *sfl_status_name(sfl_status st)
{
    return st < SFL_STATUS_COUNT ? status_names[st] : "Error";
}

struct sfl_check {
    sfl_check_env env;
    const sfl_stream *stream;
    sfl_lease *lease;
    int64_t wait_ms;
    sfl_check_done_fn *fn;
    void *arg;
    sfl_child *child;
    struct event *retry_timer;
    sfl_status stopped; /* SFL_STATUS_OK = not stopped */
    int attempts;
    int64_t started_mono;
    char started_at[32];
    char *url; /* the URL the check opens: the stream's, through its lease's login */
    cJSON *result;
};

/*--- Results ---------------------------------------------------------------*/

cJSON *sfl_result_new(const sfl_stream *s, const char *node, sfl_status status, const char *error)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    sfl_stream_json_add_id(r, "stream_id", s->id);
    if (s->name)
        cJSON_AddStringToObject(r, "stream_name", s->name);
    else
        cJSON_AddNullToObject(r, "stream_name");
    cJSON_AddStringToObject(r, "stream_url", s->url);
    if (s->account >= 0)
        sfl_stream_json_add_id(r, "m3u_account", s->account);
    else
        cJSON_AddNullToObject(r, "m3u_account");
    cJSON_AddStringToObject(r, "status", sfl_status_name(status));
    cJSON_AddNullToObject(r, "video_codec");
    cJSON_AddNullToObject(r, "audio_codec");
    cJSON_AddNullToObject(r, "resolution");
    cJSON_AddNullToObject(r, "fps");
    cJSON_AddNullToObject(r, "bitrate_kbps");
    cJSON_AddStringToObject(r, "node", node ? node : "");
    cJSON_AddNullToObject(r, "login");
    cJSON_AddNullToObject(r, "lease_wait_ms");
    cJSON_AddNullToObject(r, "started_at");
    cJSON_AddNullToObject(r, "duration_ms");
    cJSON_AddNullToObject(r, "exit_code");
    if (error)
        cJSON_AddStringToObject(r, "error", error);
    else
        cJSON_AddNullToObject(r, "error");
    return r;
}

static void set_num(cJSON *r, const char *key, double v)
{
    cJSON_ReplaceItemInObject(r, key, cJSON_CreateNumber(v));
}

/* Set or add: "dead" is not in a fresh result, and a retry sets it again. */
static void set_bool(cJSON *r, const char *key, int v)
{
    cJSON *item = cJSON_CreateBool(v);
    if (cJSON_GetObjectItemCaseSensitive(r, key))
        cJSON_ReplaceItemInObjectCaseSensitive(r, key, item);
    else
        cJSON_AddItemToObject(r, key, item);
}

static void set_str(cJSON *r, const char *key, const char *v)
{
    cJSON_ReplaceItemInObject(r, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* Set or add an integer member. */
static void set_int(cJSON *r, const char *key, int v)
{
    cJSON *item = cJSON_CreateNumber(v);
    if (cJSON_GetObjectItemCaseSensitive(r, key))
        cJSON_ReplaceItemInObjectCaseSensitive(r, key, item);
    else
        cJSON_AddItemToObject(r, key, item);
}

/* Does the provider mean "too many connections" by this HTTP code? */
static int is_refusal(const sfl_conf *conf, int code)
{
    for (size_t i = 0; code > 0 && i < conf->nrefusal_codes; i++)
        if (conf->refusal_codes[i] == code)
            return 1;
    return 0;
}

/* The line of text that says best why the command failed (analysis.h:
 * an HTTP error, a known cause, an error, never a statistics line), else
 * its last non-empty line; redacted, into buf. */
static void last_line(const char *text, size_t len, char *buf, size_t buflen)
{
    sfl_analysis_error_line(text, len, buf, buflen);
    if (buf[0]) {
        sfl_redact(buf);
        return;
    }
    size_t end = len;
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' '))
        end--;
    size_t start = end;
    while (start > 0 && text[start - 1] != '\n' && text[start - 1] != '\r')
        start--;
    size_t n = end - start < buflen - 1 ? end - start : buflen - 1;
    memcpy(buf, text + start, n);
    buf[n] = '\0';
    sfl_redact(buf);
}

/*--- Running ---------------------------------------------------------------*/

/* Replaces the placeholders of one argv element. Caller frees. */
static char *expand(const char *tmpl, const sfl_check *c)
{
    const sfl_conf *conf = c->env.conf;
    char id[24], account[24], duration[32];
    snprintf(id, sizeof(id), "%lld", c->stream->id);
    if (c->stream->account >= 0)
        snprintf(account, sizeof(account), "%lld", c->stream->account);
    else
        account[0] = '\0';
    snprintf(duration, sizeof(duration), "%g", conf->ffmpeg_duration);
    const struct {
        const char *key, *value;
    } subs[] = {{"{url}", c->url},
                {"{id}", id},
                {"{name}", c->stream->name ? c->stream->name : ""},
                {"{account}", account},
                {"{duration}", duration},
                {"{user_agent}", conf->user_agent ? conf->user_agent : ""}};
    size_t cap = strlen(tmpl) + 1;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        cap += strlen(subs[i].value) * 4; /* generous: a few occurrences */
    char *out = malloc(cap + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (const char *p = tmpl; *p;) {
        int done = 0;
        for (size_t i = 0; *p == '{' && i < sizeof(subs) / sizeof(subs[0]); i++) {
            size_t kl = strlen(subs[i].key), vl = strlen(subs[i].value);
            if (strncmp(p, subs[i].key, kl) == 0) {
                if (n + vl >= cap) {
                    char *bigger = realloc(out, (cap = (n + vl) * 2 + 1) + 1);
                    if (!bigger) {
                        free(out);
                        return NULL;
                    }
                    out = bigger;
                }
                memcpy(out + n, subs[i].value, vl);
                n += vl;
                p += kl;
                done = 1;
                break;
            }
        }
        if (!done) {
            if (n + 1 >= cap) {
                char *bigger = realloc(out, (cap = cap * 2) + 1);
                if (!bigger) {
                    free(out);
                    return NULL;
                }
                out = bigger;
            }
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

/* {input_options}, an argument of its own, stands for the input options
 * (ffmpeg and ffprobe 5.1) that keep a check to what its lease counts and
 * to what its URL names:
 *
 *   - "-protocol_whitelist P": the protocols ffmpeg may open for this input,
 *     the URL's own and those it needs underneath, nothing else. A stream
 *     URL chooses the first protocol, but what ffmpeg reads there may make
 *     it open more: an HLS playlist names its segments and keys, an SDP file
 *     (served over http, say) names RTP addresses. Without this option
 *     ffmpeg's http input allows http,https,tls,rtp,tcp,udp,crypto,
 *     httpproxy,data underneath, and rtsp, rtmp, udp, rtp and srt inputs
 *     allow everything (file included). The lists, found by trying each
 *     against a real server (README, "Custom checks"):
 *       http, https  http,https,tcp,tls,crypto: a redirect from http to
 *                    https needs tls, a playlist on one may name segments
 *                    on the other, and AES-128 HLS reads crypto+http://;
 *       rtmp         rtmp,tcp;
 *       rtsp         tcp,rtp,udp: the control connection and interleaved
 *                    media are tcp, media over UDP is rtp on udp;
 *       udp          udp;
 *       rtp          rtp,udp;
 *       srt          srt (libsrt opens its own socket).
 *     A scheme the config allows beyond these gets the scheme alone: a
 *     command for such a stream names its own -protocol_whitelist.
 *   - "-seekable 0" for http(s) only: no probing of the end of a seekable
 *     input on a second connection. Other inputs have no such option and
 *     would make ffmpeg stop ("Option seekable not found.").
 *
 * Never reached with a URL whose scheme check.schemes does not allow
 * (attempt() refuses first). */
#define INPUT_OPTIONS "{input_options}"
#define INPUT_OPTIONS_MAX 4 /* arguments it may stand for */

static const struct {
    const char *scheme, *protocols;
    int seekable;
} input_protocols[] = {
    {"http", "http,https,tcp,tls,crypto", 1},
    {"https", "http,https,tcp,tls,crypto", 1},
    {"rtmp", "rtmp,tcp", 0},
    {"rtsp", "tcp,rtp,udp", 0},
    {"udp", "udp", 0},
    {"rtp", "rtp,udp", 0},
    {"srt", "srt", 0},
};

static int add_arg(char **argv, size_t *argc, const char *arg)
{
    if (!(argv[*argc] = strdup(arg)))
        return -1;
    (*argc)++;
    return 0;
}

static int add_input_options(char **argv, size_t *argc, const char *url)
{
    size_t k = sfl_scheme_span(url);
    char own[SFL_SCHEME_MAX + 1];
    const char *protocols = NULL;
    int seekable = 0;
    if (k == 0 || k > SFL_SCHEME_MAX)
        return 0; /* not reached: attempt() refuses such a URL */
    for (size_t i = 0; i < sizeof(input_protocols) / sizeof(input_protocols[0]); i++)
        if (strlen(input_protocols[i].scheme) == k &&
            strncasecmp(input_protocols[i].scheme, url, k) == 0) {
            protocols = input_protocols[i].protocols;
            seekable = input_protocols[i].seekable;
        }
    if (!protocols) {
        for (size_t i = 0; i < k; i++)
            own[i] = (char)tolower((unsigned char)url[i]);
        own[k] = '\0';
        protocols = own;
    }
    if (add_arg(argv, argc, "-protocol_whitelist") < 0 || add_arg(argv, argc, protocols) < 0)
        return -1;
    if (seekable && (add_arg(argv, argc, "-seekable") < 0 || add_arg(argv, argc, "0") < 0))
        return -1;
    return 0;
}

static void on_child_done(sfl_child *child, const sfl_child_result *res, void *arg);

static int attempt(sfl_check *c, char *err, size_t errlen)
{
    const sfl_conf *conf = c->env.conf;
    size_t argc = 0, max = 0;
    /* The last guard: whoever handed this stream over should have refused it. */
    char why[400];
    if (sfl_url_allowed(c->url, conf->check_schemes, conf->check_nschemes, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "not checked: URL %s", why);
        return -1;
    }
    for (size_t i = 0; i < conf->check_argc; i++)
        max += strcmp(conf->check_command[i], INPUT_OPTIONS) == 0 ? INPUT_OPTIONS_MAX : 1;
    char **argv = calloc(max + 1, sizeof(char *));
    int rc = -1;
    if (!argv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < conf->check_argc; i++) {
        if (strcmp(conf->check_command[i], INPUT_OPTIONS) == 0) {
            if (add_input_options(argv, &argc, c->url) < 0) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
        } else if (!(argv[argc++] = expand(conf->check_command[i], c))) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    char e_lease[160], e_fence[48], e_account[48], e_stream[48], e_login[96];
    snprintf(e_lease, sizeof(e_lease), "SFL_LEASE_ID=%s", c->lease ? sfl_lease_id(c->lease) : "");
    snprintf(e_fence, sizeof(e_fence), "SFL_FENCE=%lld", c->lease ? sfl_lease_fence(c->lease) : 0);
    if (c->stream->account >= 0)
        snprintf(e_account, sizeof(e_account), "SFL_ACCOUNT=%lld", c->stream->account);
    else
        snprintf(e_account, sizeof(e_account), "SFL_ACCOUNT=");
    snprintf(e_stream, sizeof(e_stream), "SFL_STREAM_ID=%lld", c->stream->id);
    snprintf(e_login, sizeof(e_login), "SFL_LOGIN=%s", c->lease ? sfl_lease_login(c->lease) : "");
    char *env[] = {e_lease, e_fence, e_account, e_stream, e_login, NULL};
    sfl_child_opts opts = {
        .argv = argv,
        .env = env,
        .clean_env = 1,
        .capture = 1,
        .capture_cap = 1024 * 1024, /* the tail; a verbose 30 s ffmpeg run is a few KB */
        .timeout_ms = (int64_t)llround(conf->check_timeout * 1000),
        .kill_grace_ms = 2000,
    };
    c->attempts++;
    c->child = sfl_runner_spawn(c->env.runner, &opts, on_child_done, c, err, errlen);
    rc = c->child ? 0 : -1;
done:
    for (size_t i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    return rc;
}

static void finish(sfl_check *c, sfl_status status, const char *error)
{
    set_str(c->result, "status", sfl_status_name(status));
    set_str(c->result, "error", error);
    set_num(c->result, "duration_ms", (double)(sfl_mono_ms() - c->started_mono));
    cJSON_AddNumberToObject(c->result, "attempts", c->attempts);
    cJSON *result = c->result;
    c->result = NULL;
    c->fn(c, result, c->arg);
    if (c->retry_timer)
        event_free(c->retry_timer);
    free(c->url);
    free(c);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    sfl_check *c = arg;
    UNUSED(fd);
    UNUSED(what);
    char err[256];
    if (c->stopped != SFL_STATUS_OK) {
        finish(c, c->stopped, stopped_because(c->stopped));
        return;
    }
    if (attempt(c, err, sizeof(err)) < 0)
        finish(c, SFL_STATUS_ERROR, err);
}

/* Fills the result from the command's output; returns the status. */
static sfl_status judge(sfl_check *c, const sfl_child_result *res, char *error, size_t errlen)
{
    const sfl_conf *conf = c->env.conf;
    error[0] = '\0';
    set_num(c->result, "exit_code", res->exited ? res->exit_code : 128 + res->term_signal);
    if (res->stopped == SFL_STOP_TIMEOUT) {
        snprintf(error, errlen, "no result within check.timeout (%g s)", conf->check_timeout);
        return SFL_STATUS_TIMEOUT;
    }
    if (res->exec_failed) {
        snprintf(error, errlen, "cannot run %s: %.*s", conf->check_command[0], (int)res->err_len,
                 res->err);
        return SFL_STATUS_ERROR;
    }
    int ok = res->exited && res->exit_code == 0;
    if (strcmp(conf->check_parser, "ffmpeg") == 0) {
        sfl_analysis a;
        sfl_analysis_parse_ffmpeg(res->err, res->err_len, conf->ffmpeg_duration, &a);
        char resolution[32];
        sfl_analysis_resolution(&a, resolution, sizeof(resolution));
        set_str(c->result, "video_codec", a.video_codec[0] ? a.video_codec : NULL);
        set_str(c->result, "audio_codec", a.audio_codec[0] ? a.audio_codec : NULL);
        set_str(c->result, "resolution", resolution);
        set_num(c->result, "fps", round(a.fps * 100) / 100);
        set_num(c->result, "bitrate_kbps", round(a.bitrate_kbps));
        set_bool(c->result, "dead", sfl_analysis_is_dead(&a));
        int code = sfl_analysis_http_error(res->err, res->err_len);
        if (code > 0)
            set_int(c->result, "http_code", code);
        if (!ok && is_refusal(conf, code)) {
            char line[400];
            last_line(res->err, res->err_len, line, sizeof(line));
            snprintf(error, errlen, "refused by the provider (HTTP %d): %s", code, line);
            return SFL_STATUS_REFUSED;
        }
        if (ok && a.connections >= 2 && !a.hls && conf->ffmpeg_duration > 0 &&
            a.media_time_s < conf->ffmpeg_duration / 2) {
            /* Sent elsewhere, and what came there ended at once: a panel's
             * "connected elsewhere" clip, not the stream. */
            snprintf(error, errlen,
                     "refused by the provider: redirected to a clip of %.1f s (%g s asked)",
                     a.media_time_s, conf->ffmpeg_duration);
            return SFL_STATUS_REFUSED;
        }
        if (!ok || !a.has_video) {
            last_line(res->err, res->err_len, error, errlen);
            if (!error[0])
                snprintf(error, errlen, "ffmpeg found no video stream");
            return SFL_STATUS_ERROR;
        }
        return SFL_STATUS_OK;
    }
    if (strcmp(conf->check_parser, "json") == 0) {
        cJSON *extra = cJSON_ParseWithLength(res->out, res->out_len);
        if (!cJSON_IsObject(extra)) {
            cJSON_Delete(extra);
            snprintf(error, errlen, "parser json: the command's stdout is not a JSON object");
            return SFL_STATUS_ERROR;
        }
        static const char *const own[] = {"stream_id", "stream_name", "stream_url", "m3u_account",
                                          "status",    "node",        "error"};
        cJSON *item = extra->child;
        while (item) {
            cJSON *next = item->next;
            int reserved = 0;
            for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
                reserved |= strcmp(item->string, own[i]) == 0;
            if (!reserved) {
                cJSON_DetachItemViaPointer(extra, item);
                if (cJSON_HasObjectItem(c->result, item->string))
                    cJSON_ReplaceItemInObject(c->result, item->string, item);
                else
                    cJSON_AddItemToObject(c->result, item->string, item);
            }
            item = next;
        }
        cJSON_Delete(extra);
    }
    if (!ok) {
        last_line(res->err, res->err_len, error, errlen);
        if (!error[0])
            snprintf(error, errlen, "exit code %d",
                     res->exited ? res->exit_code : 128 + res->term_signal);
        return SFL_STATUS_ERROR;
    }
    return SFL_STATUS_OK;
}

static void on_child_done(sfl_child *child, const sfl_child_result *res, void *arg)
{
    sfl_check *c = arg;
    UNUSED(child);
    c->child = NULL;
    if (c->stopped != SFL_STATUS_OK) {
        finish(c, c->stopped, stopped_because(c->stopped));
        return;
    }
    char error[512];
    sfl_status st = judge(c, res, error, sizeof(error));
    const sfl_conf *conf = c->env.conf;
    if ((st == SFL_STATUS_ERROR || st == SFL_STATUS_TIMEOUT) && !res->exec_failed &&
        c->attempts <= conf->retries) {
        sfl_info("Stream %lld: attempt %d failed (%s: %s); retrying in %g s", c->stream->id,
                 c->attempts, sfl_status_name(st), error, conf->retry_delay);
        struct timeval tv = {(time_t)conf->retry_delay,
                             (suseconds_t)((conf->retry_delay - floor(conf->retry_delay)) * 1e6)};
        evtimer_add(c->retry_timer, &tv);
        return;
    }
    finish(c, st, error[0] ? error : NULL);
}

/* The URL a check under lease opens: the stream's, rewritten for the login
 * the lease holds a slot of (routes.h). malloc'd; NULL when out of memory. */
static char *login_url(const sfl_check_env *env, const sfl_stream *stream, const sfl_lease *lease)
{
    if (!lease || !env->routes)
        return strdup(stream->url);
    const sfl_route *rt = sfl_routes_get(env->routes, sfl_lease_account(lease));
    size_t idx;
    if (!rt || !sfl_route_login(rt, sfl_lease_login(lease), &idx))
        return strdup(stream->url);
    return sfl_route_url(rt, idx, stream->url);
}

sfl_check *sfl_check_start(const sfl_check_env *env, const sfl_stream *stream, sfl_lease *lease,
                           int64_t wait_ms, sfl_check_done_fn *fn, void *arg, char *err,
                           size_t errlen)
{
    sfl_check *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->env = *env;
    c->stream = stream;
    c->lease = lease;
    c->wait_ms = wait_ms;
    c->fn = fn;
    c->arg = arg;
    c->started_mono = sfl_mono_ms();
    sfl_wall_iso(c->started_at, sizeof(c->started_at));
    c->result = sfl_result_new(stream, env->conf->node_id, SFL_STATUS_OK, NULL);
    c->retry_timer = evtimer_new(env->base, on_retry, c);
    if (!c->result || !c->retry_timer) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    set_num(c->result, "lease_wait_ms", (double)wait_ms);
    set_str(c->result, "started_at", c->started_at);
    if (lease) {
        cJSON_AddNumberToObject(c->result, "fence", (double)sfl_lease_fence(lease));
        set_str(c->result, "login", sfl_lease_login(lease));
    }
    c->url = login_url(env, stream, lease);
    if (!c->url) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (attempt(c, err, errlen) < 0)
        goto fail;
    return c;
fail:
    free(c->url);
    cJSON_Delete(c->result);
    if (c->retry_timer)
        event_free(c->retry_timer);
    free(c);
    return NULL;
}

void sfl_check_stop(sfl_check *c, sfl_status why)
{
    if ((why == SFL_STATUS_LEASE_LOST || why == SFL_STATUS_PREEMPTED) && c->child && c->lease) {
        /* Dead before the slot could go to anyone else, even if the command
         * ignores SIGTERM (and even if a cancel is already stopping it more
         * gently). */
        sfl_child_stop_within(c->child, SFL_STOP_REQUESTED, sfl_lease_stop_within_ms(c->lease));
    }
    if (c->stopped != SFL_STATUS_OK)
        return;
    c->stopped = why;
    if (c->child) {
        sfl_child_stop(c->child, SFL_STOP_REQUESTED);
    } else if (evtimer_pending(c->retry_timer, NULL)) {
        /* Between attempts: nothing runs; end from the loop (never from
         * inside the caller, which may be the limiter's lost callback). */
        struct timeval now = {0, 0};
        evtimer_del(c->retry_timer);
        evtimer_add(c->retry_timer, &now);
    }
}
