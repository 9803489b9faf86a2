/* conf.c - reads the JSON config of DESIGN §4 into an sfl_conf.
 *
 * Shape: sfl_conf_new() fills in the built-in defaults; the parser walks the
 * JSON one section at a time and overwrites only what the file sets, checking
 * keys and JSON types as it goes; sfl_conf_validate() then checks every value
 * and the relations between values (lease timing) on the finished struct, so
 * the same rules apply to a file, to the defaults, to the environment
 * overrides and to whatever the command line changed afterwards.
 *
 * A config error stops startup (exit 2), so each message must let a person
 * fix the file without reading code: "<file>: <json.path>: <what is wrong>",
 * naming the value found. Messages never repeat a password or a token.
 *
 * Never: print, exit, or accept something that is "probably" meant. Unknown
 * keys, wrong types, fractions where an integer is expected and numbers past
 * 2^53 are errors. Nothing here touches Redis or the network. */
#include "conf.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF_MAX_BYTES (1024 * 1024)
#define MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1: every integer up to here is exact */
#define NODE_ID_MAX 64
#define NAMESPACE_MAX 64
#define TTL_MAX_MS 86400000.0 /* a day: a crashed node's slot must come back some day */

/* DESIGN §4's command plus two options (ffmpeg 5.1):
 *   - "-v verbose": with "-f null" ffmpeg's progress line says bitrate=N/A,
 *     and the "Statistics: N bytes read" line that gives the bitrate is only
 *     printed at verbose level.
 *   - "-seekable 0": one connection per check, as the lease counts. Without
 *     it ffmpeg asks for "Range: bytes=0-", and when the server answers with
 *     byte ranges (a VOD file; some live servers too) it opens a second
 *     connection to read the end of the file (an MPEG-TS's last timestamps,
 *     an MP4's index when it is at the end) and a third to come back, while
 *     it still holds the first: 3 requests per check for both, 1 with this
 *     option (tests/integration/test_check_conn.c). ffmpeg's -reconnect
 *     options are off by default, so a cut connection is not reopened
 *     either. The price: an MP4 whose index (moov) is at the end cannot be
 *     read in one pass (ffmpeg reads it through and fails), and -seekable is
 *     an option of http(s) and file inputs only, so ffmpeg stops with
 *     "Option seekable not found." on udp://, rtmp://, rtsp:// and the like:
 *     such streams need a check.command of their own. */
static const char *const default_command[] = {
    "ffmpeg",       "-hide_banner", "-nostdin", "-v", "verbose", "-user_agent",
    "{user_agent}", "-seekable",    "0",        "-i", "{url}",   "-t",
    "{duration}",   "-f",           "null",     "-",
};
static const char *const placeholders[] = {"url",      "id",         "name", "account",
                                           "duration", "user_agent", NULL};

/*--- Error messages ---*/

typedef struct ectx {
    const char *name; /* the file (or "environment") the message is about */
    char *err;
    size_t errlen;
} ectx;

/* Writes "name: path: message" into e->err; returns -1 so callers can
 * `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static int fail(const ectx *e, const char *path,
                                                      const char *fmt, ...)
{
    if (!e->err || e->errlen == 0)
        return -1;
    size_t n = 0;
    int w;
    if (path && *path)
        w = snprintf(e->err, e->errlen, "%s: %s: ", e->name, path);
    else
        w = snprintf(e->err, e->errlen, "%s: ", e->name);
    if (w > 0)
        n = (size_t)w < e->errlen ? (size_t)w : e->errlen - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err + n, e->errlen - n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies s for a message: at most 40 characters, control characters as '?'. */
static void quote_text(const char *s, char *buf, size_t len)
{
    size_t i = 0, o = 0;
    if (len < 8) {
        if (len)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (; s[i] && o + 5 < len && i < 40; i++)
        buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i]) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* What a JSON value is, for "got ...". */
static void describe(const cJSON *v, char *buf, size_t len)
{
    if (!v)
        snprintf(buf, len, "nothing");
    else if (cJSON_IsNull(v))
        snprintf(buf, len, "null");
    else if (cJSON_IsTrue(v))
        snprintf(buf, len, "true");
    else if (cJSON_IsFalse(v))
        snprintf(buf, len, "false");
    else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 1e17)
            snprintf(buf, len, "%.0f", d);
        else
            snprintf(buf, len, "%.15g", d);
    } else if (cJSON_IsString(v))
        quote_text(v->valuestring, buf, len);
    else if (cJSON_IsArray(v))
        snprintf(buf, len, "an array");
    else if (cJSON_IsObject(v))
        snprintf(buf, len, "an object");
    else
        snprintf(buf, len, "an unknown value");
}

static void join(char *buf, size_t len, const char *prefix, const char *key)
{
    char k[64];
    quote_text(key, k, sizeof(k));
    /* Plain keys print bare; odd ones (spaces, control characters) quoted. */
    int plain = *key != '\0';
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            plain = 0;
    const char *shown = plain && strlen(key) <= 40 ? key : k;
    if (prefix && *prefix)
        snprintf(buf, len, "%s.%s", prefix, shown);
    else
        snprintf(buf, len, "%s", shown);
}

/*--- Numbers ---*/

/* A numeric field's rule, shared by the parser (type + range) and the
 * validator (range), so both say the same thing. */
typedef struct numspec {
    int integer; /* must be integral (and within +-2^53) */
    double min;
    int min_excl; /* "> min" instead of ">= min" */
    double max;   /* inclusive */
    int show_max; /* name max in messages (else it is only a C type's limit) */
} numspec;

static const numspec NS_POS_INT64 = {1, 0, 1, MAX_SAFE_INT, 0};    /* > 0 */
static const numspec NS_NONNEG_INT64 = {1, 0, 0, MAX_SAFE_INT, 0}; /* >= 0 */
static const numspec NS_GLOBAL_LIMIT = {1, 1, 0, INT_MAX, 0};
static const numspec NS_RETRIES = {1, 0, 0, INT_MAX, 0};
static const numspec NS_TTL = {1, 100, 0, TTL_MAX_MS, 1};
static const numspec NS_HANDOFF = {1, 1, 0, 60000, 1};
static const numspec NS_MAX_BODY = {1, 1024, 0, 64 * 1024 * 1024, 1};
static const numspec NS_POS_NUM = {0, 0, 1, HUGE_VAL, 0};    /* > 0 */
static const numspec NS_NONNEG_NUM = {0, 0, 0, HUGE_VAL, 0}; /* >= 0 */

static void numspec_text(const numspec *s, char *buf, size_t len)
{
    const char *what = s->integer ? "an integer" : "a number";
    if (s->show_max)
        snprintf(buf, len, "%s between %.0f and %.0f", what, s->min, s->max);
    else
        snprintf(buf, len, "%s %s %.15g", what, s->min_excl ? ">" : ">=", s->min);
}

static int num_ok(const numspec *s, double d)
{
    if (!isfinite(d))
        return 0;
    if (s->integer && (d != floor(d) || fabs(d) > MAX_SAFE_INT))
        return 0;
    if (s->min_excl ? !(d > s->min) : !(d >= s->min))
        return 0;
    return d <= s->max;
}

static int check_num(const ectx *e, const char *path, const numspec *s, double d)
{
    if (num_ok(s, d))
        return 0;
    char want[96], got[48];
    numspec_text(s, want, sizeof(want));
    if (isfinite(d) && d == floor(d) && fabs(d) < 1e17)
        snprintf(got, sizeof(got), "%.0f", d);
    else
        snprintf(got, sizeof(got), "%.15g", d);
    const char *why = "";
    if (isfinite(d) && (!s->integer || d == floor(d)) && d > s->max && !s->show_max)
        why = " (too large)";
    return fail(e, path, "expected %s, got %s%s", want, got, why);
}

/*--- JSON walking ---*/

/* Every key of obj must be in allowed (NULL-terminated) and appear once. */
static int check_keys(const ectx *e, const cJSON *obj, const char *prefix,
                      const char *const *allowed)
{
    char path[160];
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        int known = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                known = 1;
        join(path, sizeof(path), prefix, k);
        if (!known)
            return fail(e, path, "unknown key");
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (prev->string && strcmp(prev->string, k) == 0)
                return fail(e, path, "duplicate key");
    }
    return 0;
}

/* Returns the member as an object, NULL when absent. -1 in *rc on a wrong type. */
static const cJSON *get_object(const ectx *e, const cJSON *obj, const char *key, int *rc)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *rc = 0;
    if (!v)
        return NULL;
    if (!cJSON_IsObject(v)) {
        char got[64];
        describe(v, got, sizeof(got));
        *rc = fail(e, key, "expected an object, got %s", got);
        return NULL;
    }
    return v;
}

/* 0 absent (out untouched), 1 set, -1 error. */
static int get_num(const ectx *e, const cJSON *obj, const char *key, const char *path,
                   const numspec *s, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v)) {
        char want[96], got[64];
        numspec_text(s, want, sizeof(want));
        describe(v, got, sizeof(got));
        return fail(e, path, "expected %s, got %s", want, got);
    }
    if (check_num(e, path, s, v->valuedouble) < 0)
        return -1;
    *out = v->valuedouble;
    return 1;
}

static int get_int64(const ectx *e, const cJSON *obj, const char *key, const char *path,
                     const numspec *s, int64_t *out)
{
    double d;
    int rc = get_num(e, obj, key, path, s, &d);
    if (rc == 1)
        *out = (int64_t)d;
    return rc;
}

static int get_int(const ectx *e, const cJSON *obj, const char *key, const char *path,
                   const numspec *s, int *out)
{
    double d;
    int rc = get_num(e, obj, key, path, s, &d);
    if (rc == 1)
        *out = (int)d;
    return rc;
}

static int get_double(const ectx *e, const cJSON *obj, const char *key, const char *path,
                      const numspec *s, double *out)
{
    return get_num(e, obj, key, path, s, out);
}

static int get_bool(const ectx *e, const cJSON *obj, const char *key, const char *path, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        char got[64];
        describe(v, got, sizeof(got));
        return fail(e, path, "expected true or false, got %s", got);
    }
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 1;
}

/* Replaces *out with a copy of the string (or NULL for JSON null when
 * nullable). 0 absent, 1 set, -1 error. */
static int get_string(const ectx *e, const cJSON *obj, const char *key, const char *path,
                      int nullable, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (nullable && cJSON_IsNull(v)) {
        free(*out);
        *out = NULL;
        return 1;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        char got[64];
        describe(v, got, sizeof(got));
        return fail(e, path, "expected a string%s, got %s", nullable ? " or null" : "", got);
    }
    char *copy = strdup(v->valuestring);
    if (!copy)
        return fail(e, path, "out of memory");
    free(*out);
    *out = copy;
    return 1;
}

/*--- Single-value rules (used by the validator and the environment) ---*/

static int check_node_id(const ectx *e, const char *path, const char *id)
{
    if (!id || !*id)
        return fail(e, path, "must not be empty");
    size_t n = strlen(id);
    if (n > NODE_ID_MAX)
        return fail(e, path, "longer than %d characters (%zu)", NODE_ID_MAX, n);
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            char q[64];
            quote_text(id, q, sizeof(q));
            return fail(e, path, "may contain only A-Z a-z 0-9 . _ -, got %s", q);
        }
    return 0;
}

static int check_redis_url(const ectx *e, const char *path, const char *url)
{
    sfl_redis_url u;
    char why[256];
    if (sfl_redis_url_parse(url, &u, why, sizeof(why)) < 0)
        return fail(e, path, "%s", why);
    sfl_redis_url_clear(&u);
    return 0;
}

static int check_listen(const ectx *e, const char *path, const char *listen)
{
    char host[256], why[256];
    int port;
    if (sfl_listen_parse(listen, host, sizeof(host), &port, why, sizeof(why)) < 0)
        return fail(e, path, "%s", why);
    return 0;
}

/* NULL = no token. Otherwise printable, no spaces: it travels in a header. */
static int check_token(const ectx *e, const char *path, const char *tok)
{
    if (!tok)
        return 0;
    if (!*tok)
        return fail(e, path, "must not be empty (use null for no token)");
    for (const char *p = tok; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return fail(e, path, "must not contain spaces or control characters");
    return 0;
}

static int check_http_url(const ectx *e, const char *path, const char *url)
{
    if (!url)
        return 0;
    const char *rest = NULL;
    if (strncmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        rest = url + 8;
    char q[64];
    quote_text(url, q, sizeof(q));
    if (!rest)
        return fail(e, path, "expected an http:// or https:// URL, got %s", q);
    if (!*rest || *rest == '/')
        return fail(e, path, "missing host in %s", q);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return fail(e, path, "must not contain spaces or control characters");
    return 0;
}

static int check_printable(const ectx *e, const char *path, const char *s, int allow_empty)
{
    if (!s)
        return fail(e, path, "must be set");
    if (!allow_empty && !*s)
        return fail(e, path, "must not be empty");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(e, path, "must not contain control characters");
    return 0;
}

static int check_namespace(const ectx *e, const char *path, const char *ns)
{
    if (!ns || !*ns)
        return fail(e, path, "must not be empty");
    if (strlen(ns) > NAMESPACE_MAX)
        return fail(e, path, "longer than %d characters", NAMESPACE_MAX);
    for (const char *p = ns; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._:-", *p)) {
            char q[64];
            quote_text(ns, q, sizeof(q));
            return fail(e, path, "may contain only A-Z a-z 0-9 . _ : -, got %s", q);
        }
    return 0;
}

/* Placeholders are {identifier}; any other brace is literal text. */
static int check_placeholders(const ectx *e, const char *path, const char *arg)
{
    for (const char *p = arg; (p = strchr(p, '{')) != NULL; p++) {
        const char *q = p + 1;
        while (isalnum((unsigned char)*q) || *q == '_')
            q++;
        if (*q != '}' || q == p + 1)
            continue;
        size_t n = (size_t)(q - p - 1);
        int known = 0;
        for (const char *const *k = placeholders; *k; k++)
            if (strlen(*k) == n && memcmp(*k, p + 1, n) == 0)
                known = 1;
        if (!known)
            return fail(e, path,
                        "unknown placeholder {%.*s} (known: {url} {id} {name} {account} "
                        "{duration} {user_agent})",
                        n > 40 ? 40 : (int)n, p + 1);
    }
    return 0;
}

/*--- Validation ---*/

static int validate(const sfl_conf *c, const ectx *e)
{
    char path[64];

    if (check_node_id(e, "node_id", c->node_id) < 0 ||
        check_redis_url(e, "redis.url", c->redis_url) < 0 ||
        check_namespace(e, "redis.namespace", c->redis_namespace) < 0 ||
        check_num(e, "redis.connect_timeout_ms", &NS_POS_INT64, (double)c->connect_timeout_ms) <
            0 ||
        check_num(e, "concurrent_streams.global_limit", &NS_GLOBAL_LIMIT, (double)c->global_limit) <
            0 ||
        check_num(e, "concurrent_streams.stagger_delay", &NS_NONNEG_NUM, c->stagger_delay) < 0 ||
        check_num(e, "lease.ttl_ms", &NS_TTL, (double)c->lease_ttl_ms) < 0 ||
        check_num(e, "lease.renew_ms", &NS_POS_INT64, (double)c->lease_renew_ms) < 0 ||
        check_num(e, "lease.safety_ms", &NS_NONNEG_INT64, (double)c->lease_safety_ms) < 0 ||
        check_num(e, "lease.handoff_ms", &NS_HANDOFF, (double)c->lease_handoff_ms) < 0 ||
        check_num(e, "http.max_body", &NS_MAX_BODY, (double)c->http_max_body) < 0)
        return -1;

    /* A renewal sent at renew_ms must be able to land before the node's own
     * deadline minus the safety margin, or every check would be killed. */
    if (c->lease_renew_ms >= c->lease_ttl_ms)
        return fail(e, "lease.renew_ms", "must be below lease.ttl_ms (%lld), got %lld",
                    (long long)c->lease_ttl_ms, (long long)c->lease_renew_ms);
    if (c->lease_renew_ms + c->lease_safety_ms >= c->lease_ttl_ms)
        return fail(e, "lease.safety_ms",
                    "must be below lease.ttl_ms - lease.renew_ms (%lld - %lld = %lld), got %lld",
                    (long long)c->lease_ttl_ms, (long long)c->lease_renew_ms,
                    (long long)(c->lease_ttl_ms - c->lease_renew_ms),
                    (long long)c->lease_safety_ms);
    if (check_num(e, "lease.acquire_timeout", &NS_NONNEG_NUM, c->acquire_timeout) < 0)
        return -1;

    for (size_t i = 0; i < c->naccounts; i++) {
        const sfl_account_conf *a = &c->accounts[i];
        snprintf(path, sizeof(path), "accounts[%zu].id", i);
        if (check_num(e, path, &NS_NONNEG_INT64, (double)a->id) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (c->accounts[j].id == a->id)
                return fail(e, path, "duplicate id %lld (also at accounts[%zu])", a->id, j);
        snprintf(path, sizeof(path), "accounts[%zu].max_streams", i);
        if (check_num(e, path, &NS_NONNEG_INT64, (double)a->max_streams) < 0)
            return -1;
    }

    if (c->check_argc == 0 || !c->check_command)
        return fail(e, "check.command", "must be a non-empty array of strings");
    for (size_t i = 0; i < c->check_argc; i++) {
        snprintf(path, sizeof(path), "check.command[%zu]", i);
        if (!c->check_command[i] || !*c->check_command[i])
            return fail(e, path, "must be a non-empty string");
        if (check_placeholders(e, path, c->check_command[i]) < 0)
            return -1;
    }
    if (!c->check_parser ||
        (strcmp(c->check_parser, "ffmpeg") != 0 && strcmp(c->check_parser, "json") != 0 &&
         strcmp(c->check_parser, "none") != 0)) {
        char q[64];
        quote_text(c->check_parser ? c->check_parser : "", q, sizeof(q));
        return fail(e, "check.parser", "expected \"ffmpeg\", \"json\" or \"none\", got %s", q);
    }
    if (check_num(e, "check.timeout", &NS_POS_NUM, c->check_timeout) < 0 ||
        check_num(e, "stream_analysis.ffmpeg_duration", &NS_POS_NUM, c->ffmpeg_duration) < 0 ||
        check_num(e, "stream_analysis.timeout", &NS_POS_NUM, c->analysis_timeout) < 0 ||
        check_num(e, "stream_analysis.retries", &NS_RETRIES, (double)c->retries) < 0 ||
        check_num(e, "stream_analysis.retry_delay", &NS_NONNEG_NUM, c->retry_delay) < 0 ||
        check_printable(e, "stream_analysis.user_agent", c->user_agent, 1) < 0 ||
        check_listen(e, "http.listen", c->http_listen) < 0 ||
        check_token(e, "http.token", c->http_token) < 0 ||
        check_http_url(e, "dispatcharr.url", c->dispatcharr_url) < 0)
        return -1;
    return 0;
}

int sfl_conf_validate(const sfl_conf *c, char *err, size_t errlen)
{
    ectx e = {c && c->path ? c->path : "(built-in config)", err, errlen};
    if (!c)
        return fail(&e, NULL, "no config");
    return validate(c, &e);
}

/*--- Defaults ---*/

static char *default_node_id(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof(host)) < 0)
        host[0] = '\0';
    host[sizeof(host) - 1] = '\0';
    host[NODE_ID_MAX] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            *p = '-';
    return strdup(host[0] ? host : "sfl-node");
}

static void free_argv(char **argv, size_t argc)
{
    if (!argv)
        return;
    for (size_t i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
}

sfl_conf *sfl_conf_new(void)
{
    sfl_conf *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    size_t argc = sizeof(default_command) / sizeof(default_command[0]);
    c->node_id = default_node_id();
    c->redis_url = strdup("redis://127.0.0.1:6379/0");
    c->redis_namespace = strdup("sfl");
    c->connect_timeout_ms = 2000;
    c->concurrent_enabled = 1;
    c->global_limit = 10;
    c->stagger_delay = 1.0;
    c->lease_ttl_ms = 15000;
    c->lease_renew_ms = 5000;
    c->lease_safety_ms = 2000;
    c->lease_handoff_ms = 250;
    c->acquire_timeout = 300;
    c->check_command = calloc(argc + 1, sizeof(char *));
    c->check_parser = strdup("ffmpeg");
    c->check_timeout = 70;
    c->ffmpeg_duration = 30;
    c->analysis_timeout = 30;
    c->retries = 1;
    c->retry_delay = 10;
    c->user_agent = strdup("VLC/3.0.14");
    c->http_listen = strdup("127.0.0.1:8470");
    c->http_max_body = 1024 * 1024;
    c->node_shutdown_grace = 10;
    c->node_claim_idle = 15;
    c->node_batch_ttl = 86400;
    if (!c->node_id || !c->redis_url || !c->redis_namespace || !c->check_command ||
        !c->check_parser || !c->user_agent || !c->http_listen)
        goto err;
    for (c->check_argc = 0; c->check_argc < argc; c->check_argc++)
        if (!(c->check_command[c->check_argc] = strdup(default_command[c->check_argc])))
            goto err;
    return c;
err:
    sfl_conf_free(c);
    return NULL;
}

void sfl_conf_free(sfl_conf *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->node_id);
    free(c->redis_url);
    free(c->redis_password);
    free(c->redis_namespace);
    for (size_t i = 0; i < c->naccounts; i++)
        free(c->accounts[i].name);
    free(c->accounts);
    free_argv(c->check_command, c->check_argc);
    free(c->check_parser);
    free(c->user_agent);
    free(c->http_listen);
    free(c->http_token);
    free(c->dispatcharr_url);
    free(c->dispatcharr_username);
    free(c->dispatcharr_password);
    free(c->dispatcharr_api_key);
    free(c);
}

const sfl_account_conf *sfl_conf_account(const sfl_conf *c, long long id)
{
    for (size_t i = 0; c && i < c->naccounts; i++)
        if (c->accounts[i].id == id)
            return &c->accounts[i];
    return NULL;
}

/*--- Parsing ---*/

static const char *const top_keys[] = {"node_id",     "redis", "concurrent_streams", "lease",
                                       "accounts",    "check", "stream_analysis",    "http",
                                       "dispatcharr", "node",  NULL};
static const char *const node_keys[] = {"shutdown_grace", "claim_idle", "batch_ttl", "lookahead",
                                        NULL};
static const char *const redis_keys[] = {"url", "password", "namespace", "connect_timeout_ms",
                                         NULL};
static const char *const conc_keys[] = {"enabled", "global_limit", "stagger_delay", NULL};
static const char *const lease_keys[] = {"ttl_ms",          "renew_ms",   "safety_ms",
                                         "acquire_timeout", "handoff_ms", NULL};
static const char *const account_keys[] = {"id", "name", "max_streams", NULL};
static const char *const check_section_keys[] = {"command", "parser", "timeout", NULL};
static const char *const analysis_keys[] = {"ffmpeg_duration", "timeout",    "retries",
                                            "retry_delay",     "user_agent", NULL};
static const char *const http_keys[] = {"listen", "token", "max_body", NULL};
static const char *const dispatcharr_keys[] = {"url",     "username",      "password",
                                               "api_key", "sync_interval", NULL};

/* Line and column (1-based) of byte offset off. */
static void where(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* What cJSON lets through or words badly: raw control bytes (cJSON takes any
 * byte <= 0x20 for blank, and a NUL ends its strings), \u0000 (which would cut
 * a string short: a URL checked would not be the URL given), and nesting past
 * cJSON's limit (valid JSON, but cJSON only says "not valid"). One pass;
 * -1 with the message set. */
static int json_precheck(const ectx *e, const char *json, size_t len)
{
    size_t line, col;
    int in_string = 0;
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)json[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
            where(json, i, &line, &col);
            fail(e, NULL, "not valid JSON: control byte 0x%02x at line %zu, column %zu (byte %zu)",
                 ch, line, col, i);
            return -1;
        }
        if (in_string) {
            if (ch == '"') {
                in_string = 0;
            } else if (ch == '\\' && i + 1 < len) {
                if (json[i + 1] == 'u' && i + 5 < len && memcmp(json + i + 2, "0000", 4) == 0) {
                    where(json, i, &line, &col);
                    fail(e, NULL,
                         "a string holds \\u0000 (NUL), which is refused, at line %zu, "
                         "column %zu (byte %zu)",
                         line, col, i);
                    return -1;
                }
                i++; /* the escaped character */
            }
        } else if (ch == '"') {
            in_string = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > CJSON_NESTING_LIMIT) {
                where(json, i, &line, &col);
                fail(e, NULL, "JSON nested deeper than %d levels at line %zu, column %zu (byte %zu)",
                     CJSON_NESTING_LIMIT, line, col, i);
                return -1;
            }
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static cJSON *parse_json(const ectx *e, const char *json, size_t len)
{
    const char *end = NULL;
    size_t line, col;
    if (len == 0) {
        fail(e, NULL, "not valid JSON: the text is empty");
        return NULL;
    }
    if (json_precheck(e, json, len) < 0)
        return NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
        if (off >= len) {
            fail(e, NULL, "not valid JSON: unexpected end of text");
        } else {
            where(json, off, &line, &col);
            fail(e, NULL, "not valid JSON near line %zu, column %zu (byte %zu)", line, col, off);
        }
        return NULL;
    }
    size_t off = (size_t)(end - json);
    while (off < len &&
           (json[off] == ' ' || json[off] == '\t' || json[off] == '\n' || json[off] == '\r'))
        off++;
    if (off < len) {
        where(json, off, &line, &col);
        fail(e, NULL,
             "not valid JSON: unexpected text after the value at line %zu, column %zu "
             "(byte %zu)",
             line, col, off);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static int parse_redis(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = get_object(e, root, "redis", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "redis", redis_keys) < 0 ||
        get_string(e, o, "url", "redis.url", 0, &c->redis_url) < 0 ||
        get_string(e, o, "password", "redis.password", 1, &c->redis_password) < 0 ||
        get_string(e, o, "namespace", "redis.namespace", 0, &c->redis_namespace) < 0 ||
        get_int64(e, o, "connect_timeout_ms", "redis.connect_timeout_ms", &NS_POS_INT64,
                  &c->connect_timeout_ms) < 0)
        return -1;
    return 0;
}

static int parse_concurrent(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = get_object(e, root, "concurrent_streams", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "concurrent_streams", conc_keys) < 0 ||
        get_bool(e, o, "enabled", "concurrent_streams.enabled", &c->concurrent_enabled) < 0 ||
        get_int(e, o, "global_limit", "concurrent_streams.global_limit", &NS_GLOBAL_LIMIT,
                &c->global_limit) < 0 ||
        get_double(e, o, "stagger_delay", "concurrent_streams.stagger_delay", &NS_NONNEG_NUM,
                   &c->stagger_delay) < 0)
        return -1;
    return 0;
}

static int parse_lease(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc, renew_set, safety_set;
    const cJSON *o = get_object(e, root, "lease", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "lease", lease_keys) < 0 ||
        get_int64(e, o, "ttl_ms", "lease.ttl_ms", &NS_TTL, &c->lease_ttl_ms) < 0 ||
        (renew_set = get_int64(e, o, "renew_ms", "lease.renew_ms", &NS_POS_INT64,
                               &c->lease_renew_ms)) < 0 ||
        (safety_set = get_int64(e, o, "safety_ms", "lease.safety_ms", &NS_NONNEG_INT64,
                                &c->lease_safety_ms)) < 0 ||
        get_double(e, o, "acquire_timeout", "lease.acquire_timeout", &NS_NONNEG_NUM,
                   &c->acquire_timeout) < 0 ||
        get_int64(e, o, "handoff_ms", "lease.handoff_ms", &NS_HANDOFF, &c->lease_handoff_ms) < 0)
        return -1;
    /* Unset timings follow the TTL, so a config that only shortens the TTL
     * stays valid; with the default TTL they are the documented 5000/2000. */
    if (!renew_set)
        c->lease_renew_ms = c->lease_ttl_ms / 3;
    if (!safety_set)
        c->lease_safety_ms = c->lease_ttl_ms / 3 < 2000 ? c->lease_ttl_ms / 3 : 2000;
    return 0;
}

static int parse_accounts(const ectx *e, const cJSON *root, sfl_conf *c)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "accounts");
    char path[64], got[64];
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr)) {
        describe(arr, got, sizeof(got));
        return fail(e, "accounts", "expected an array, got %s", got);
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > 0 && !(c->accounts = calloc(n, sizeof(*c->accounts))))
        return fail(e, "accounts", "out of memory");
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        sfl_account_conf *a = &c->accounts[i];
        c->naccounts = i + 1;
        snprintf(path, sizeof(path), "accounts[%zu]", i);
        if (!cJSON_IsObject(it)) {
            describe(it, got, sizeof(got));
            return fail(e, path, "expected an object, got %s", got);
        }
        if (check_keys(e, it, path, account_keys) < 0)
            return -1;
        double d;
        int rc;
        snprintf(path, sizeof(path), "accounts[%zu].id", i);
        if ((rc = get_num(e, it, "id", path, &NS_NONNEG_INT64, &d)) < 0)
            return -1;
        if (rc == 0)
            return fail(e, path, "missing");
        a->id = (long long)d;
        snprintf(path, sizeof(path), "accounts[%zu].name", i);
        if (get_string(e, it, "name", path, 1, &a->name) < 0)
            return -1;
        snprintf(path, sizeof(path), "accounts[%zu].max_streams", i);
        if ((rc = get_num(e, it, "max_streams", path, &NS_NONNEG_INT64, &d)) < 0)
            return -1;
        if (rc == 0)
            return fail(e, path, "missing");
        a->max_streams = (long long)d;
    }
    return 0;
}

static int parse_command(const ectx *e, const cJSON *arr, sfl_conf *c)
{
    char path[64], got[64];
    if (!cJSON_IsArray(arr)) {
        describe(arr, got, sizeof(got));
        return fail(e, "check.command", "expected a non-empty array of strings, got %s", got);
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0)
        return fail(e, "check.command", "expected a non-empty array of strings, got []");
    char **argv = calloc(n + 1, sizeof(char *));
    if (!argv)
        return fail(e, "check.command", "out of memory");
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        snprintf(path, sizeof(path), "check.command[%zu]", i);
        if (!cJSON_IsString(it) || !it->valuestring) {
            describe(it, got, sizeof(got));
            fail(e, path, "expected a string, got %s", got);
            goto err;
        }
        if (!(argv[i] = strdup(it->valuestring))) {
            fail(e, path, "out of memory");
            goto err;
        }
    }
    free_argv(c->check_command, c->check_argc);
    c->check_command = argv;
    c->check_argc = n;
    return 0;
err:
    free_argv(argv, n);
    return -1;
}

static int parse_check(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = get_object(e, root, "check", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "check", check_section_keys) < 0)
        return -1;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
    if (cmd && parse_command(e, cmd, c) < 0)
        return -1;
    if (get_string(e, o, "parser", "check.parser", 0, &c->check_parser) < 0 ||
        get_double(e, o, "timeout", "check.timeout", &NS_POS_NUM, &c->check_timeout) < 0)
        return -1;
    return 0;
}

static int parse_analysis(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = get_object(e, root, "stream_analysis", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "stream_analysis", analysis_keys) < 0 ||
        get_double(e, o, "ffmpeg_duration", "stream_analysis.ffmpeg_duration", &NS_POS_NUM,
                   &c->ffmpeg_duration) < 0 ||
        get_double(e, o, "timeout", "stream_analysis.timeout", &NS_POS_NUM, &c->analysis_timeout) <
            0 ||
        get_int(e, o, "retries", "stream_analysis.retries", &NS_RETRIES, &c->retries) < 0 ||
        get_double(e, o, "retry_delay", "stream_analysis.retry_delay", &NS_NONNEG_NUM,
                   &c->retry_delay) < 0 ||
        get_string(e, o, "user_agent", "stream_analysis.user_agent", 0, &c->user_agent) < 0)
        return -1;
    return 0;
}

static int parse_http(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = get_object(e, root, "http", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "http", http_keys) < 0 ||
        get_string(e, o, "listen", "http.listen", 0, &c->http_listen) < 0 ||
        get_string(e, o, "token", "http.token", 1, &c->http_token) < 0 ||
        get_int64(e, o, "max_body", "http.max_body", &NS_MAX_BODY, &c->http_max_body) < 0)
        return -1;
    return 0;
}

static int parse_dispatcharr(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = get_object(e, root, "dispatcharr", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "dispatcharr", dispatcharr_keys) < 0 ||
        get_string(e, o, "url", "dispatcharr.url", 1, &c->dispatcharr_url) < 0 ||
        get_string(e, o, "username", "dispatcharr.username", 1, &c->dispatcharr_username) < 0 ||
        get_string(e, o, "password", "dispatcharr.password", 1, &c->dispatcharr_password) < 0 ||
        get_string(e, o, "api_key", "dispatcharr.api_key", 1, &c->dispatcharr_api_key) < 0 ||
        get_double(e, o, "sync_interval", "dispatcharr.sync_interval", &NS_NONNEG_NUM,
                   &c->dispatcharr_sync_interval) < 0)
        return -1;
    return 0;
}

/* The node daemon and the shared queue (`sflimit node`). */
static int parse_node(const ectx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = get_object(e, root, "node", &rc);
    if (!o)
        return rc;
    if (check_keys(e, o, "node", node_keys) < 0 ||
        get_double(e, o, "shutdown_grace", "node.shutdown_grace", &NS_NONNEG_NUM,
                   &c->node_shutdown_grace) < 0 ||
        get_double(e, o, "claim_idle", "node.claim_idle", &NS_POS_NUM, &c->node_claim_idle) <
            0 ||
        get_double(e, o, "batch_ttl", "node.batch_ttl", &NS_POS_NUM, &c->node_batch_ttl) < 0 ||
        get_int(e, o, "lookahead", "node.lookahead", &NS_RETRIES, &c->node_lookahead) < 0)
        return -1;
    return 0;
}

sfl_conf *sfl_conf_parse(const char *json, size_t len, const char *name, char *err, size_t errlen)
{
    ectx e = {name ? name : "(config)", err, errlen};
    cJSON *root = NULL;
    sfl_conf *c = sfl_conf_new();
    if (!c || (name && !(c->path = strdup(name)))) {
        fail(&e, NULL, "out of memory");
        goto err;
    }
    if (!json) {
        fail(&e, NULL, "no text");
        goto err;
    }
    if (!(root = parse_json(&e, json, len)))
        goto err;
    if (!cJSON_IsObject(root)) {
        char got[64];
        describe(root, got, sizeof(got));
        fail(&e, "(top level)", "expected an object, got %s", got);
        goto err;
    }
    if (check_keys(&e, root, "", top_keys) < 0 ||
        get_string(&e, root, "node_id", "node_id", 0, &c->node_id) < 0 ||
        parse_redis(&e, root, c) < 0 || parse_concurrent(&e, root, c) < 0 ||
        parse_lease(&e, root, c) < 0 || parse_accounts(&e, root, c) < 0 ||
        parse_check(&e, root, c) < 0 || parse_analysis(&e, root, c) < 0 ||
        parse_http(&e, root, c) < 0 || parse_dispatcharr(&e, root, c) < 0 ||
        parse_node(&e, root, c) < 0 || validate(c, &e) < 0)
        goto err;
    cJSON_Delete(root);
    return c;
err:
    cJSON_Delete(root);
    sfl_conf_free(c);
    return NULL;
}

/*--- Loading ---*/

typedef struct env_override {
    const char *var;
    size_t offset; /* of the char * field in sfl_conf */
    int (*check)(const ectx *e, const char *path, const char *value);
} env_override;

static int check_nothing(const ectx *e, const char *path, const char *value)
{
    (void)e;
    (void)path;
    (void)value;
    return 0;
}

static const env_override env_overrides[] = {
    {"SFL_REDIS_URL", offsetof(sfl_conf, redis_url), check_redis_url},
    {"SFL_NODE_ID", offsetof(sfl_conf, node_id), check_node_id},
    {"SFL_HTTP_LISTEN", offsetof(sfl_conf, http_listen), check_listen},
    {"SFL_HTTP_TOKEN", offsetof(sfl_conf, http_token), check_token},
    {"SFL_DISPATCHARR_URL", offsetof(sfl_conf, dispatcharr_url), check_http_url},
    {"SFL_DISPATCHARR_API_KEY", offsetof(sfl_conf, dispatcharr_api_key), check_nothing},
};

static int apply_env(sfl_conf *c, char *err, size_t errlen)
{
    ectx e = {"environment", err, errlen};
    for (size_t i = 0; i < sizeof(env_overrides) / sizeof(env_overrides[0]); i++) {
        const env_override *o = &env_overrides[i];
        const char *v = getenv(o->var);
        if (!v || !*v)
            continue;
        if (o->check(&e, o->var, v) < 0)
            return -1;
        char *copy = strdup(v);
        if (!copy)
            return fail(&e, o->var, "out of memory");
        char **field = (char **)((char *)c + o->offset);
        free(*field);
        *field = copy;
    }
    return 0;
}

sfl_conf *sfl_conf_load(const char *path, char *err, size_t errlen)
{
    const char *file = path;
    int must_exist = 1;
    sfl_conf *c = NULL;
    if (!file) {
        const char *env = getenv("SFL_CONFIG");
        if (env && *env) {
            file = env;
        } else {
            file = "sflimit.json";
            must_exist = 0;
        }
    }
    size_t len = 0;
    char *text = sfl_conf_read_text(file, CONF_MAX_BYTES, &len, err, errlen);
    if (text) {
        c = sfl_conf_parse(text, len, file, err, errlen);
        free(text);
        if (!c)
            return NULL;
    } else if (errno == ENOENT && !must_exist) {
        if (!(c = sfl_conf_new())) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    } else {
        return NULL;
    }
    if (apply_env(c, err, errlen) < 0 || sfl_conf_validate(c, err, errlen) < 0) {
        sfl_conf_free(c);
        return NULL;
    }
    return c;
}

/*--- Redis URL and listen address ---*/

static int why(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void sfl_redis_url_clear(sfl_redis_url *u)
{
    if (!u)
        return;
    free(u->host);
    free(u->unix_path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* %XX-decodes s[0..n) into a new string; NULL for an empty result.
 * -1 on a bad escape or no memory. */
static int decode(const char *s, size_t n, char **out, const char *what, char *err, size_t errlen)
{
    *out = NULL;
    if (n == 0)
        return 0;
    char *d = malloc(n + 1);
    if (!d)
        return why(err, errlen, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        if (i + 2 < n) {
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                d[o++] = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        free(d);
        return why(err, errlen, "bad %%-escape in the %s", what);
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

static int parse_port(const char *s, size_t n, int min, int *port, char *err, size_t errlen)
{
    long v = 0;
    int ok = n > 0 && n <= 5;
    for (size_t i = 0; ok && i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (!ok || v < min || v > 65535) {
        char p[16];
        snprintf(p, sizeof(p), "%.*s", n > 8 ? 8 : (int)n, s);
        return why(err, errlen, "bad port \"%s%s\" (expected %d..65535)", p, n > 8 ? "..." : "",
                   min);
    }
    *port = (int)v;
    return 0;
}

/* Splits s[0..n) into host and port. "[v6]:port" keeps the address without
 * brackets. Without a port, *port = default_port, or an error when
 * default_port < 0. */
static int split_host_port(const char *s, size_t n, int default_port, int min_port, char **host,
                           int *port, char *err, size_t errlen)
{
    const char *h = s, *p = NULL;
    size_t hn;
    *host = NULL;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return why(err, errlen, "missing ']' after an IPv6 address");
        h = s + 1;
        hn = (size_t)(close - h);
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest > 0 && close[1] != ':')
            return why(err, errlen, "unexpected text after ']'");
        if (rest > 0)
            p = close + 2;
    } else {
        const char *colon = NULL;
        int ncolons = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') {
                ncolons++;
                colon = s + i;
            }
        if (ncolons > 1)
            return why(err, errlen, "an IPv6 address must be written in brackets ([::1]:PORT)");
        hn = colon ? (size_t)(colon - s) : n;
        if (colon)
            p = colon + 1;
    }
    if (hn == 0)
        return why(err, errlen, "missing host");
    for (size_t i = 0; i < hn; i++)
        if ((unsigned char)h[i] <= 0x20 || h[i] == 0x7f || strchr("/@?#[]", h[i]))
            return why(err, errlen, "bad character in the host");
    if (p) {
        if (parse_port(p, n - (size_t)(p - s), min_port, port, err, errlen) < 0)
            return -1;
    } else if (default_port < 0) {
        return why(err, errlen, "missing port");
    } else {
        *port = default_port;
    }
    if (!(*host = strndup(h, hn)))
        return why(err, errlen, "out of memory");
    return 0;
}

static int parse_db(const char *s, size_t n, int *db, char *err, size_t errlen)
{
    long v = 0;
    int ok = n > 0 && n <= 9;
    for (size_t i = 0; ok && i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (!ok) {
        char d[16];
        snprintf(d, sizeof(d), "%.*s", n > 8 ? 8 : (int)n, s);
        return why(err, errlen, "db must be a number, got \"%s%s\"", d, n > 8 ? "..." : "");
    }
    *db = (int)v;
    return 0;
}

static int parse_tcp_url(const char *rest, sfl_redis_url *u, char *err, size_t errlen)
{
    /* The last '@' ends the user info, so an unescaped '@' or '/' in a
     * password still works. */
    const char *at = strrchr(rest, '@');
    const char *hostpart = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon)
            return why(err, errlen,
                       "expected [USER]:PASSWORD@ before the host "
                       "(a password alone is written redis://:PASSWORD@HOST)");
        if (decode(rest, (size_t)(colon - rest), &u->user, "user name", err, errlen) < 0 ||
            decode(colon + 1, (size_t)(at - colon - 1), &u->password, "password", err, errlen) < 0)
            return -1;
        hostpart = at + 1;
    }
    if (strpbrk(hostpart, "?#"))
        return why(err, errlen,
                   "redis:// URLs take no query or fragment (put the db in the "
                   "path: redis://HOST:PORT/DB)");
    const char *slash = strchr(hostpart, '/');
    size_t an = slash ? (size_t)(slash - hostpart) : strlen(hostpart);
    if (split_host_port(hostpart, an, 6379, 1, &u->host, &u->port, err, errlen) < 0)
        return -1;
    if (slash && slash[1] && parse_db(slash + 1, strlen(slash + 1), &u->db, err, errlen) < 0)
        return -1;
    return 0;
}

static int parse_unix_url(const char *rest, sfl_redis_url *u, char *err, size_t errlen)
{
    if (rest[0] != '/')
        return why(err, errlen, "expected unix:///ABSOLUTE/PATH[?db=N]");
    const char *q = strchr(rest, '?');
    size_t pn = q ? (size_t)(q - rest) : strlen(rest);
    if (pn >= 108) /* sizeof(sun_path) */
        return why(err, errlen, "socket path longer than 107 bytes");
    if (!(u->unix_path = strndup(rest, pn)))
        return why(err, errlen, "out of memory");
    while (q) {
        const char *param = q + 1;
        q = strchr(param, '&');
        size_t n = q ? (size_t)(q - param) : strlen(param);
        if (n > 3 && memcmp(param, "db=", 3) == 0) {
            if (parse_db(param + 3, n - 3, &u->db, err, errlen) < 0)
                return -1;
        } else if (n == 3 && memcmp(param, "db=", 3) == 0) {
            return why(err, errlen, "db must be a number, got \"\"");
        } else {
            /* Name only: the value could be a password. */
            const char *eq = memchr(param, '=', n);
            size_t kn = eq ? (size_t)(eq - param) : n;
            return why(err, errlen, "unknown parameter \"%.*s\" (only db=N)",
                       kn > 20 ? 20 : (int)kn, param);
        }
    }
    return 0;
}

int sfl_redis_url_parse(const char *url, sfl_redis_url *out, char *err, size_t errlen)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (!url || !*url)
        return why(err, errlen, "empty Redis URL");
    if (strcmp(url, "embedded") == 0) {
        out->embedded = 1;
        return 0;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        rc = parse_tcp_url(url + 8, out, err, errlen);
    } else if (strncmp(url, "unix://", 7) == 0) {
        rc = parse_unix_url(url + 7, out, err, errlen);
    } else {
        const char *sep = strstr(url, "://");
        if (sep && sep - url <= 16) {
            int n = (int)(sep - url);
            rc = why(err, errlen,
                     "unknown scheme \"%.*s\" (expected redis://, unix:// or embedded)", n, url);
        } else {
            rc = why(err, errlen,
                     "expected redis://HOST[:PORT][/DB], unix:///PATH[?db=N] or embedded");
        }
    }
    if (rc < 0)
        sfl_redis_url_clear(out);
    return rc;
}

int sfl_listen_parse(const char *listen, char *host, size_t hostlen, int *port, char *err,
                     size_t errlen)
{
    char *h = NULL;
    char sub[160];
    if (!listen || !*listen)
        return why(err, errlen, "expected HOST:PORT, got \"\"");
    if (split_host_port(listen, strlen(listen), -1, 0, &h, port, sub, sizeof(sub)) < 0) {
        char q[64];
        quote_text(listen, q, sizeof(q));
        return why(err, errlen, "expected HOST:PORT, got %s: %s", q, sub);
    }
    if (strlen(h) >= hostlen) {
        free(h);
        return why(err, errlen, "host name too long");
    }
    memcpy(host, h, strlen(h) + 1);
    free(h);
    return 0;
}

/*--- JSON text helpers (also used by streams.c) ---*/

char *sfl_conf_read_text(const char *path, size_t max, size_t *lenp, char *err, size_t errlen)
{
    int is_stdin = strcmp(path, "-") == 0;
    ectx e = {is_stdin ? "(stdin)" : path, err, errlen};
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 4096, len = 0;
    char *buf = NULL;
    int saved;
    struct stat st;
    if (fd < 0) {
        saved = errno;
        goto err;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        saved = EISDIR;
        goto err;
    }
    saved = ENOMEM;
    if (!(buf = malloc(cap)))
        goto err;
    for (;;) {
        if (len + 1 >= cap) {
            saved = EFBIG;
            if (cap > max)
                goto err;
            saved = ENOMEM;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto err;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            saved = errno;
            goto err;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    saved = EFBIG;
    if (len > max)
        goto err;
    if (!is_stdin)
        close(fd);
    buf[len] = '\0';
    *lenp = len;
    return buf;
err:
    free(buf);
    if (fd >= 0 && !is_stdin)
        close(fd);
    if (saved == EFBIG)
        fail(&e, NULL, "cannot read: larger than %zu bytes", max);
    else
        fail(&e, NULL, "cannot read: %s", strerror(saved));
    errno = saved;
    return NULL;
}

struct cJSON *sfl_conf_json_parse(const char *text, size_t len, const char *name, char *err,
                                  size_t errlen)
{
    ectx e = {name ? name : "(input)", err, errlen};
    return parse_json(&e, text, len);
}

void sfl_conf_json_describe(const struct cJSON *v, char *buf, size_t len)
{
    describe(v, buf, len);
}
