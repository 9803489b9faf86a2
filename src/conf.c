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
 * Reading the file, the strict JSON parse, the typed member getters and the
 * message format are json.c's; this file holds the schema: which keys, which
 * types and ranges, the defaults, the relations and the environment.
 *
 * Never: print, exit, or accept something that is "probably" meant. Unknown
 * keys, wrong types, fractions where an integer is expected and numbers past
 * 2^53 are errors. Nothing here touches Redis or the network. */
#include "conf.h"
#include "conf_int.h"

#include "addr.h"
#include "json.h"
#include "streams.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONF_MAX_BYTES (1024 * 1024)
#define NODE_ID_MAX 64
#define NAMESPACE_MAX 64
#define TTL_MAX_MS 86400000.0 /* a day: a crashed node's slot must come back some day */

/* DESIGN §4's command plus two options (ffmpeg 5.1):
 *   - "-v verbose": with "-f null" ffmpeg's progress line says bitrate=N/A,
 *     and the "Statistics: N bytes read" line that gives the bitrate is only
 *     printed at verbose level.
 *   - "{input_options}": "-protocol_whitelist" with the protocols the
 *     URL's scheme needs (http,https,tcp,tls,crypto for http(s); see
 *     add_input_options in src/check.c), so that what ffmpeg reads (a
 *     playlist, an SDP) cannot make it open files or other protocols; and
 *     "-seekable 0" for http(s):// URLs only, so that a check is one
 *     connection, as the lease counts. Without -seekable 0 ffmpeg asks for
 *     "Range: bytes=0-", and when the server answers with byte ranges (a
 *     VOD file; some live servers too) it opens a second connection to read
 *     the end of the file (an MPEG-TS's last timestamps, an MP4's index
 *     when it is at the end) and a third to come back, while it still holds
 *     the first: 3 requests per check for both, 1 with this option
 *     (tests/integration/test_check_conn.c).
 *     ffmpeg's -reconnect options are off by default, so a cut connection is
 *     not reopened either. The price: an MP4 whose index (moov) is at the
 *     end cannot be read in one pass (ffmpeg reads it through and fails).
 *     -seekable is an option of http(s) and file inputs only: given for
 *     udp://, rtmp:// or rtsp://, ffmpeg stops with "Option seekable not
 *     found.", and the whitelist differs per scheme, hence a placeholder
 *     and not the options themselves. */
static const char *const default_command[] = {
    "ffmpeg",
    "-hide_banner",
    "-nostdin",
    "-v",
    "verbose",
    "-user_agent",
    "{user_agent}",
    "{input_options}",
    "-i",
    "{url}",
    "-t",
    "{duration}",
    "-f",
    "null",
    "-",
};
/* What a check may open by default: the protocols of IPTV streams. Not
 * file (a node's own files), not pipe or "-" (its stdin), nor the many
 * others ffmpeg knows (ftp, sftp, unix, concat, subfile, data, ...). */
static const char *const default_schemes[] = {"http", "https", "rtmp", "rtsp", "udp", "rtp", "srt"};
static const char *const placeholders[] = {"url",      "id",         "name",          "account",
                                           "duration", "user_agent", "input_options", NULL};

/*--- Numbers ---*/

/* A numeric field's rule, shared by the parser (type + range) and the
 * validator (range), so both say the same thing. */
static const sfl_json_numspec NS_POS_INT64 = {1, 0, 1, SFL_JSON_MAX_SAFE_INT, 0};    /* > 0 */
static const sfl_json_numspec NS_NONNEG_INT64 = {1, 0, 0, SFL_JSON_MAX_SAFE_INT, 0}; /* >= 0 */
static const sfl_json_numspec NS_GLOBAL_LIMIT = {1, 1, 0, INT_MAX, 0};
static const sfl_json_numspec NS_RETRIES = {1, 0, 0, INT_MAX, 0};
static const sfl_json_numspec NS_TTL = {1, 100, 0, TTL_MAX_MS, 1};
static const sfl_json_numspec NS_HANDOFF = {1, 1, 0, 60000, 1};
static const sfl_json_numspec NS_MAX_BODY = {1, 1024, 0, 64 * 1024 * 1024, 1};
static const sfl_json_numspec NS_MAX_CONNECTIONS = {1, 1, 0, 1000000, 1};
static const sfl_json_numspec NS_HTTP_TIMEOUT = {0, 0, 1, 86400, 1};  /* seconds, > 0 */
static const sfl_json_numspec NS_POS_NUM = {0, 0, 1, HUGE_VAL, 0};    /* > 0 */
static const sfl_json_numspec NS_NONNEG_NUM = {0, 0, 0, HUGE_VAL, 0}; /* >= 0 */

/*--- Single-value rules (used by the validator and the environment) ---*/

static int check_node_id(const sfl_json_ctx *e, const char *path, const char *id)
{
    if (!id || !*id)
        return sfl_json_fail(e, path, "must not be empty");
    size_t n = strlen(id);
    if (n > NODE_ID_MAX)
        return sfl_json_fail(e, path, "longer than %d characters (%zu)", NODE_ID_MAX, n);
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            char q[64];
            sfl_json_quote(id, q, sizeof(q));
            return sfl_json_fail(e, path, "may contain only A-Z a-z 0-9 . _ -, got %s", q);
        }
    return 0;
}

static int check_redis_url(const sfl_json_ctx *e, const char *path, const char *url)
{
    sfl_redis_url u;
    char why[256];
    if (sfl_redis_url_parse(url, &u, why, sizeof(why)) < 0)
        return sfl_json_fail(e, path, "%s", why);
    sfl_redis_url_clear(&u);
    return 0;
}

static int check_listen(const sfl_json_ctx *e, const char *path, const char *listen)
{
    char host[256], why[256];
    int port;
    if (sfl_listen_parse(listen, host, sizeof(host), &port, why, sizeof(why)) < 0)
        return sfl_json_fail(e, path, "%s", why);
    return 0;
}

/* NULL = no token. Otherwise printable, no spaces: it travels in a header. */
static int check_token(const sfl_json_ctx *e, const char *path, const char *tok)
{
    if (!tok)
        return 0;
    if (!*tok)
        return sfl_json_fail(e, path, "must not be empty (use null for no token)");
    for (const char *p = tok; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return sfl_json_fail(e, path, "must not contain spaces or control characters");
    return 0;
}

static int check_http_url(const sfl_json_ctx *e, const char *path, const char *url)
{
    if (!url)
        return 0;
    const char *rest = NULL;
    if (strncmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        rest = url + 8;
    char q[64];
    sfl_json_quote(url, q, sizeof(q));
    if (!rest)
        return sfl_json_fail(e, path, "expected an http:// or https:// URL, got %s", q);
    if (!*rest || *rest == '/')
        return sfl_json_fail(e, path, "missing host in %s", q);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return sfl_json_fail(e, path, "must not contain spaces or control characters");
    return 0;
}

int sfl_conf_check_ca_file(const sfl_json_ctx *e, const char *path, const char *file)
{
    if (!file)
        return 0;
    char q[300];
    sfl_json_quote(file, q, sizeof(q));
    if (!*file)
        return sfl_json_fail(e, path, "must not be empty (use null for the system's CAs)");
    if (access(file, R_OK) != 0)
        return sfl_json_fail(e, path, "cannot read %s: %s", q, strerror(errno));
    return 0;
}

static int check_printable(const sfl_json_ctx *e, const char *path, const char *s, int allow_empty)
{
    if (!s)
        return sfl_json_fail(e, path, "must be set");
    if (!allow_empty && !*s)
        return sfl_json_fail(e, path, "must not be empty");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return sfl_json_fail(e, path, "must not contain control characters");
    return 0;
}

static int check_namespace(const sfl_json_ctx *e, const char *path, const char *ns)
{
    if (!ns || !*ns)
        return sfl_json_fail(e, path, "must not be empty");
    if (strlen(ns) > NAMESPACE_MAX)
        return sfl_json_fail(e, path, "longer than %d characters", NAMESPACE_MAX);
    for (const char *p = ns; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._:-", *p)) {
            char q[64];
            sfl_json_quote(ns, q, sizeof(q));
            return sfl_json_fail(e, path, "may contain only A-Z a-z 0-9 . _ : -, got %s", q);
        }
    return 0;
}

/* Placeholders are {identifier}; any other brace is literal text. */
static int check_placeholders(const sfl_json_ctx *e, const char *path, const char *arg)
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
            return sfl_json_fail(e, path,
                                 "unknown placeholder {%.*s} (known: {url} {id} {name} {account} "
                                 "{duration} {user_agent} {input_options})",
                                 n > 40 ? 40 : (int)n, p + 1);
        if (strncmp(p, "{input_options}", 15) == 0 && strcmp(arg, "{input_options}") != 0)
            return sfl_json_fail(e, path,
                                 "{input_options} must be an argument of its own (it stands for "
                                 "zero or more arguments)");
    }
    return 0;
}

/* check.schemes: at least one; each a URL scheme's syntax, not given twice
 * (in any case: the match is case-insensitive). */
static int check_schemes(const sfl_json_ctx *e, char *const *schemes, size_t n)
{
    char path[64], q[64];
    if (n == 0 || !schemes)
        return sfl_json_fail(e, "check.schemes", "must name at least one URL scheme, got []");
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "check.schemes[%zu]", i);
        const char *s = schemes[i] ? schemes[i] : "";
        size_t len = strlen(s);
        if (len == 0 || sfl_scheme_span(s) != len || len > SFL_SCHEME_MAX) {
            sfl_json_quote(s, q, sizeof(q));
            return sfl_json_fail(e, path,
                                 "expected a URL scheme (a letter, then letters, digits, + - ., "
                                 "at most %d; no \"://\"), got %s",
                                 SFL_SCHEME_MAX, q);
        }
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(schemes[j], s) == 0) {
                sfl_json_quote(s, q, sizeof(q));
                return sfl_json_fail(e, path, "%s given twice (also at check.schemes[%zu])", q, j);
            }
    }
    return 0;
}

/*--- Validation ---*/

static int validate(const sfl_conf *c, const sfl_json_ctx *e)
{
    char path[64];

    if (check_node_id(e, "node_id", c->node_id) < 0 ||
        check_redis_url(e, "redis.url", c->redis_url) < 0 ||
        check_namespace(e, "redis.namespace", c->redis_namespace) < 0 ||
        sfl_json_check_num(e, "redis.connect_timeout_ms", &NS_POS_INT64,
                           (double)c->connect_timeout_ms) < 0 ||
        sfl_json_check_num(e, "concurrent_streams.global_limit", &NS_GLOBAL_LIMIT,
                           (double)c->global_limit) < 0 ||
        sfl_json_check_num(e, "concurrent_streams.stagger_delay", &NS_NONNEG_NUM,
                           c->stagger_delay) < 0 ||
        sfl_json_check_num(e, "lease.ttl_ms", &NS_TTL, (double)c->lease_ttl_ms) < 0 ||
        sfl_json_check_num(e, "lease.renew_ms", &NS_POS_INT64, (double)c->lease_renew_ms) < 0 ||
        sfl_json_check_num(e, "lease.safety_ms", &NS_NONNEG_INT64, (double)c->lease_safety_ms) <
            0 ||
        sfl_json_check_num(e, "lease.handoff_ms", &NS_HANDOFF, (double)c->lease_handoff_ms) < 0 ||
        sfl_json_check_num(e, "http.max_body", &NS_MAX_BODY, (double)c->http_max_body) < 0 ||
        (c->http_max_connections != 0 &&
         sfl_json_check_num(e, "http.max_connections", &NS_MAX_CONNECTIONS,
                            (double)c->http_max_connections) < 0) ||
        sfl_json_check_num(e, "http.idle_timeout", &NS_HTTP_TIMEOUT, c->http_idle_timeout) < 0 ||
        sfl_json_check_num(e, "http.request_timeout", &NS_HTTP_TIMEOUT, c->http_request_timeout) <
            0)
        return -1;

    /* A renewal sent at renew_ms must be able to land before the node's own
     * deadline minus the safety margin, or every check would be killed. */
    if (c->lease_renew_ms >= c->lease_ttl_ms)
        return sfl_json_fail(e, "lease.renew_ms", "must be below lease.ttl_ms (%lld), got %lld",
                             (long long)c->lease_ttl_ms, (long long)c->lease_renew_ms);
    if (c->lease_renew_ms + c->lease_safety_ms >= c->lease_ttl_ms)
        return sfl_json_fail(
            e, "lease.safety_ms",
            "must be below lease.ttl_ms - lease.renew_ms (%lld - %lld = %lld), got %lld",
            (long long)c->lease_ttl_ms, (long long)c->lease_renew_ms,
            (long long)(c->lease_ttl_ms - c->lease_renew_ms), (long long)c->lease_safety_ms);
    if (sfl_json_check_num(e, "lease.acquire_timeout", &NS_NONNEG_NUM, c->acquire_timeout) < 0)
        return -1;

    if (sfl_conf_validate_accounts(c, e) < 0 || sfl_conf_validate_history(c, e) < 0)
        return -1;

    if (c->check_argc == 0 || !c->check_command)
        return sfl_json_fail(e, "check.command", "must be a non-empty array of strings");
    for (size_t i = 0; i < c->check_argc; i++) {
        snprintf(path, sizeof(path), "check.command[%zu]", i);
        if (!c->check_command[i] || !*c->check_command[i])
            return sfl_json_fail(e, path, "must be a non-empty string");
        if (check_placeholders(e, path, c->check_command[i]) < 0)
            return -1;
    }
    if (check_schemes(e, c->check_schemes, c->check_nschemes) < 0)
        return -1;
    if (!c->check_parser ||
        (strcmp(c->check_parser, "ffmpeg") != 0 && strcmp(c->check_parser, "json") != 0 &&
         strcmp(c->check_parser, "none") != 0)) {
        char q[64];
        sfl_json_quote(c->check_parser ? c->check_parser : "", q, sizeof(q));
        return sfl_json_fail(e, "check.parser", "expected \"ffmpeg\", \"json\" or \"none\", got %s",
                             q);
    }
    if (sfl_json_check_num(e, "check.timeout", &NS_POS_NUM, c->check_timeout) < 0 ||
        sfl_json_check_num(e, "stream_analysis.ffmpeg_duration", &NS_POS_NUM, c->ffmpeg_duration) <
            0 ||
        sfl_json_check_num(e, "stream_analysis.timeout", &NS_POS_NUM, c->analysis_timeout) < 0 ||
        sfl_json_check_num(e, "stream_analysis.retries", &NS_RETRIES, (double)c->retries) < 0 ||
        sfl_json_check_num(e, "stream_analysis.retry_delay", &NS_NONNEG_NUM, c->retry_delay) < 0 ||
        check_printable(e, "stream_analysis.user_agent", c->user_agent, 1) < 0 ||
        check_listen(e, "http.listen", c->http_listen) < 0 ||
        check_token(e, "http.token", c->http_token) < 0 ||
        check_http_url(e, "dispatcharr.url", c->dispatcharr_url) < 0 ||
        sfl_conf_check_ca_file(e, "dispatcharr.ca_file", c->dispatcharr_ca_file) < 0)
        return -1;
    /* The viewers are counted per profile; the sync says which login each
     * profile is. */
    if (c->dispatcharr_viewers && (!c->dispatcharr_url || c->dispatcharr_sync_interval <= 0))
        return sfl_json_fail(e, "dispatcharr.viewers",
                             "needs dispatcharr.url and dispatcharr.sync_interval (the sync "
                             "says which login each profile is)");
    /* Room for a dead poller's successor to take over (viewers.c). */
    if (c->dispatcharr_viewers && c->dispatcharr_max_age_ms < 3 * c->dispatcharr_poll_ms)
        return sfl_json_fail(e, "dispatcharr.max_age_ms",
                             "must be at least 3 x dispatcharr.poll_ms (%lld), got %lld",
                             (long long)(3 * c->dispatcharr_poll_ms),
                             (long long)c->dispatcharr_max_age_ms);
    return 0;
}

int sfl_conf_validate(const sfl_conf *c, char *err, size_t errlen)
{
    sfl_json_ctx e = {c && c->path ? c->path : "(built-in config)", err, errlen};
    if (!c)
        return sfl_json_fail(&e, NULL, "no config");
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
    size_t nschemes = sizeof(default_schemes) / sizeof(default_schemes[0]);
    c->node_id = default_node_id();
    c->redis_url = strdup("redis://127.0.0.1:6379/0");
    c->redis_namespace = strdup("sfl");
    c->connect_timeout_ms = 2000;
    c->concurrent_enabled = 1;
    c->global_limit = 10;
    sfl_conf_learned_defaults(c);
    sfl_conf_history_defaults(c);
    c->stagger_delay = 1.0;
    c->lease_ttl_ms = 15000;
    c->lease_renew_ms = 5000;
    c->lease_safety_ms = 2000;
    c->lease_handoff_ms = 250;
    c->dispatcharr_poll_ms = 1000;
    c->dispatcharr_max_age_ms = 5000;
    c->acquire_timeout = 300;
    c->check_command = calloc(argc + 1, sizeof(char *));
    c->check_schemes = calloc(nschemes + 1, sizeof(char *));
    c->check_parser = strdup("ffmpeg");
    c->check_timeout = 70;
    c->ffmpeg_duration = 30;
    c->analysis_timeout = 30;
    c->retries = 1;
    c->retry_delay = 10;
    c->user_agent = strdup("VLC/3.0.14");
    c->http_listen = strdup("127.0.0.1:8470");
    c->http_max_body = 1024 * 1024;
    c->http_idle_timeout = 60;
    c->http_request_timeout = 10;
    c->node_shutdown_grace = 10;
    c->node_claim_idle = 15;
    c->node_batch_ttl = 86400;
    if (!c->node_id || !c->redis_url || !c->redis_namespace || !c->check_command ||
        !c->check_schemes || !c->check_parser || !c->user_agent || !c->http_listen)
        goto err;
    for (c->check_argc = 0; c->check_argc < argc; c->check_argc++)
        if (!(c->check_command[c->check_argc] = strdup(default_command[c->check_argc])))
            goto err;
    for (c->check_nschemes = 0; c->check_nschemes < nschemes; c->check_nschemes++)
        if (!(c->check_schemes[c->check_nschemes] = strdup(default_schemes[c->check_nschemes])))
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
    free(c->redis_sentinel_password);
    free(c->redis_namespace);
    for (size_t i = 0; i < c->naccounts; i++)
        sfl_account_conf_clear(&c->accounts[i]);
    free(c->accounts);
    free_argv(c->check_command, c->check_argc);
    free_argv(c->check_schemes, c->check_nschemes);
    free(c->check_parser);
    free(c->user_agent);
    free(c->http_listen);
    free(c->http_token);
    free(c->dispatcharr_url);
    free(c->dispatcharr_username);
    free(c->dispatcharr_password);
    free(c->dispatcharr_api_key);
    free(c->dispatcharr_ca_file);
    free(c);
}

static const char *const top_keys[] = {"node_id",
                                       "redis",
                                       "concurrent_streams",
                                       "lease",
                                       "accounts",
                                       "check",
                                       "stream_analysis",
                                       "http",
                                       "dispatcharr",
                                       "node",
                                       "learned",
                                       "history",
                                       NULL};
static const char *const node_keys[] = {"shutdown_grace", "claim_idle", "batch_ttl", "lookahead",
                                        NULL};
static const char *const redis_keys[] = {"url",       "password",           "sentinel_password",
                                         "namespace", "connect_timeout_ms", NULL};
static const char *const conc_keys[] = {"enabled", "global_limit", "stagger_delay", NULL};
static const char *const lease_keys[] = {"ttl_ms",          "renew_ms",   "safety_ms",
                                         "acquire_timeout", "handoff_ms", NULL};
static const char *const check_section_keys[] = {"command", "parser", "timeout", "schemes", NULL};
static const char *const analysis_keys[] = {"ffmpeg_duration", "timeout",    "retries",
                                            "retry_delay",     "user_agent", NULL};
static const char *const http_keys[] = {
    "listen", "token", "max_body", "max_connections", "idle_timeout", "request_timeout", NULL};
static const char *const dispatcharr_keys[] = {
    "url",     "username", "password",   "api_key", "sync_interval",
    "viewers", "poll_ms",  "max_age_ms", "ca_file", NULL};
static const sfl_json_numspec NS_POLL_MS = {1, 100, 0, 3600000, 1};

static int parse_redis(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "redis", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "redis", redis_keys) < 0 ||
        sfl_json_get_string(e, o, "url", "redis.url", 0, &c->redis_url) < 0 ||
        sfl_json_get_string(e, o, "password", "redis.password", 1, &c->redis_password) < 0 ||
        sfl_json_get_string(e, o, "sentinel_password", "redis.sentinel_password", 1,
                            &c->redis_sentinel_password) < 0 ||
        sfl_json_get_string(e, o, "namespace", "redis.namespace", 0, &c->redis_namespace) < 0 ||
        sfl_json_get_int64(e, o, "connect_timeout_ms", "redis.connect_timeout_ms", &NS_POS_INT64,
                           &c->connect_timeout_ms) < 0)
        return -1;
    return 0;
}

static int parse_concurrent(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "concurrent_streams", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "concurrent_streams", conc_keys) < 0 ||
        sfl_json_get_bool(e, o, "enabled", "concurrent_streams.enabled", &c->concurrent_enabled) <
            0 ||
        sfl_json_get_int(e, o, "global_limit", "concurrent_streams.global_limit", &NS_GLOBAL_LIMIT,
                         &c->global_limit) < 0 ||
        sfl_json_get_double(e, o, "stagger_delay", "concurrent_streams.stagger_delay",
                            &NS_NONNEG_NUM, &c->stagger_delay) < 0)
        return -1;
    return 0;
}

static int parse_lease(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc, renew_set, safety_set;
    const cJSON *o = sfl_json_get_object(e, root, "lease", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "lease", lease_keys) < 0 ||
        sfl_json_get_int64(e, o, "ttl_ms", "lease.ttl_ms", &NS_TTL, &c->lease_ttl_ms) < 0 ||
        (renew_set = sfl_json_get_int64(e, o, "renew_ms", "lease.renew_ms", &NS_POS_INT64,
                                        &c->lease_renew_ms)) < 0 ||
        (safety_set = sfl_json_get_int64(e, o, "safety_ms", "lease.safety_ms", &NS_NONNEG_INT64,
                                         &c->lease_safety_ms)) < 0 ||
        sfl_json_get_double(e, o, "acquire_timeout", "lease.acquire_timeout", &NS_NONNEG_NUM,
                            &c->acquire_timeout) < 0 ||
        sfl_json_get_int64(e, o, "handoff_ms", "lease.handoff_ms", &NS_HANDOFF,
                           &c->lease_handoff_ms) < 0)
        return -1;
    /* Unset timings follow the TTL, so a config that only shortens the TTL
     * stays valid; with the default TTL they are the documented 5000/2000. */
    if (!renew_set)
        c->lease_renew_ms = c->lease_ttl_ms / 3;
    if (!safety_set)
        c->lease_safety_ms = c->lease_ttl_ms / 3 < 2000 ? c->lease_ttl_ms / 3 : 2000;
    return 0;
}

/* A non-empty array of strings (check.command, check.schemes) at path; it
 * replaces *list (freed) and *count, NULL-terminated. */
static int parse_strings(const sfl_json_ctx *e, const cJSON *arr, const char *path, char ***list,
                         size_t *count)
{
    char elem[64], got[64];
    if (!cJSON_IsArray(arr)) {
        sfl_json_describe(arr, got, sizeof(got));
        return sfl_json_fail(e, path, "expected a non-empty array of strings, got %s", got);
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0)
        return sfl_json_fail(e, path, "expected a non-empty array of strings, got []");
    char **argv = calloc(n + 1, sizeof(char *));
    if (!argv)
        return sfl_json_fail(e, path, "out of memory");
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        snprintf(elem, sizeof(elem), "%s[%zu]", path, i);
        if (!cJSON_IsString(it) || !it->valuestring) {
            sfl_json_describe(it, got, sizeof(got));
            sfl_json_fail(e, elem, "expected a string, got %s", got);
            goto err;
        }
        if (!(argv[i] = strdup(it->valuestring))) {
            sfl_json_fail(e, elem, "out of memory");
            goto err;
        }
    }
    free_argv(*list, *count);
    *list = argv;
    *count = n;
    return 0;
err:
    free_argv(argv, n);
    return -1;
}

static int parse_check(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "check", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "check", check_section_keys) < 0)
        return -1;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
    if (cmd && parse_strings(e, cmd, "check.command", &c->check_command, &c->check_argc) < 0)
        return -1;
    const cJSON *schemes = cJSON_GetObjectItemCaseSensitive(o, "schemes");
    if (schemes &&
        parse_strings(e, schemes, "check.schemes", &c->check_schemes, &c->check_nschemes) < 0)
        return -1;
    if (sfl_json_get_string(e, o, "parser", "check.parser", 0, &c->check_parser) < 0 ||
        sfl_json_get_double(e, o, "timeout", "check.timeout", &NS_POS_NUM, &c->check_timeout) < 0)
        return -1;
    return 0;
}

static int parse_analysis(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "stream_analysis", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "stream_analysis", analysis_keys) < 0 ||
        sfl_json_get_double(e, o, "ffmpeg_duration", "stream_analysis.ffmpeg_duration", &NS_POS_NUM,
                            &c->ffmpeg_duration) < 0 ||
        sfl_json_get_double(e, o, "timeout", "stream_analysis.timeout", &NS_POS_NUM,
                            &c->analysis_timeout) < 0 ||
        sfl_json_get_int(e, o, "retries", "stream_analysis.retries", &NS_RETRIES, &c->retries) <
            0 ||
        sfl_json_get_double(e, o, "retry_delay", "stream_analysis.retry_delay", &NS_NONNEG_NUM,
                            &c->retry_delay) < 0 ||
        sfl_json_get_string(e, o, "user_agent", "stream_analysis.user_agent", 0, &c->user_agent) <
            0)
        return -1;
    return 0;
}

static int parse_http(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "http", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "http", http_keys) < 0 ||
        sfl_json_get_string(e, o, "listen", "http.listen", 0, &c->http_listen) < 0 ||
        sfl_json_get_string(e, o, "token", "http.token", 1, &c->http_token) < 0 ||
        sfl_json_get_int64(e, o, "max_body", "http.max_body", &NS_MAX_BODY, &c->http_max_body) <
            0 ||
        sfl_json_get_int64(e, o, "max_connections", "http.max_connections", &NS_MAX_CONNECTIONS,
                           &c->http_max_connections) < 0 ||
        sfl_json_get_double(e, o, "idle_timeout", "http.idle_timeout", &NS_HTTP_TIMEOUT,
                            &c->http_idle_timeout) < 0 ||
        sfl_json_get_double(e, o, "request_timeout", "http.request_timeout", &NS_HTTP_TIMEOUT,
                            &c->http_request_timeout) < 0)
        return -1;
    return 0;
}

static int parse_dispatcharr(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "dispatcharr", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "dispatcharr", dispatcharr_keys) < 0 ||
        sfl_json_get_string(e, o, "url", "dispatcharr.url", 1, &c->dispatcharr_url) < 0 ||
        sfl_json_get_string(e, o, "username", "dispatcharr.username", 1, &c->dispatcharr_username) <
            0 ||
        sfl_json_get_string(e, o, "password", "dispatcharr.password", 1, &c->dispatcharr_password) <
            0 ||
        sfl_json_get_string(e, o, "ca_file", "dispatcharr.ca_file", 1, &c->dispatcharr_ca_file) <
            0 ||
        sfl_json_get_string(e, o, "api_key", "dispatcharr.api_key", 1, &c->dispatcharr_api_key) <
            0 ||
        sfl_json_get_double(e, o, "sync_interval", "dispatcharr.sync_interval", &NS_NONNEG_NUM,
                            &c->dispatcharr_sync_interval) < 0 ||
        sfl_json_get_bool(e, o, "viewers", "dispatcharr.viewers", &c->dispatcharr_viewers) < 0 ||
        sfl_json_get_int64(e, o, "poll_ms", "dispatcharr.poll_ms", &NS_POLL_MS,
                           &c->dispatcharr_poll_ms) < 0 ||
        sfl_json_get_int64(e, o, "max_age_ms", "dispatcharr.max_age_ms", &NS_POLL_MS,
                           &c->dispatcharr_max_age_ms) < 0)
        return -1;
    return 0;
}

/* The node daemon and the shared queue (`sflimit node`). */
static int parse_node(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "node", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "node", node_keys) < 0 ||
        sfl_json_get_double(e, o, "shutdown_grace", "node.shutdown_grace", &NS_NONNEG_NUM,
                            &c->node_shutdown_grace) < 0 ||
        sfl_json_get_double(e, o, "claim_idle", "node.claim_idle", &NS_POS_NUM,
                            &c->node_claim_idle) < 0 ||
        sfl_json_get_double(e, o, "batch_ttl", "node.batch_ttl", &NS_POS_NUM, &c->node_batch_ttl) <
            0 ||
        sfl_json_get_int(e, o, "lookahead", "node.lookahead", &NS_RETRIES, &c->node_lookahead) < 0)
        return -1;
    return 0;
}

sfl_conf *sfl_conf_parse(const char *json, size_t len, const char *name, char *err, size_t errlen)
{
    sfl_json_ctx e = {name ? name : "(config)", err, errlen};
    cJSON *root = NULL;
    sfl_conf *c = sfl_conf_new();
    if (!c || (name && !(c->path = strdup(name)))) {
        sfl_json_fail(&e, NULL, "out of memory");
        goto err;
    }
    if (!json) {
        sfl_json_fail(&e, NULL, "no text");
        goto err;
    }
    if (!(root = sfl_json_parse(json, len, e.name, err, errlen)))
        goto err;
    if (!cJSON_IsObject(root)) {
        char got[64];
        sfl_json_describe(root, got, sizeof(got));
        sfl_json_fail(&e, "(top level)", "expected an object, got %s", got);
        goto err;
    }
    if (sfl_json_check_keys(&e, root, "", top_keys) < 0 ||
        sfl_json_get_string(&e, root, "node_id", "node_id", 0, &c->node_id) < 0 ||
        parse_redis(&e, root, c) < 0 || parse_concurrent(&e, root, c) < 0 ||
        parse_lease(&e, root, c) < 0 || sfl_conf_parse_accounts(&e, root, c) < 0 ||
        parse_check(&e, root, c) < 0 || parse_analysis(&e, root, c) < 0 ||
        parse_http(&e, root, c) < 0 || parse_dispatcharr(&e, root, c) < 0 ||
        parse_node(&e, root, c) < 0 || sfl_conf_parse_learned(&e, root, c) < 0 ||
        sfl_conf_parse_history(&e, root, c) < 0 || validate(c, &e) < 0)
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
    int (*check)(const sfl_json_ctx *e, const char *path, const char *value);
} env_override;

static int check_nothing(const sfl_json_ctx *e, const char *path, const char *value)
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
    sfl_json_ctx e = {"environment", err, errlen};
    for (size_t i = 0; i < sizeof(env_overrides) / sizeof(env_overrides[0]); i++) {
        const env_override *o = &env_overrides[i];
        const char *v = getenv(o->var);
        if (!v || !*v)
            continue;
        if (o->check(&e, o->var, v) < 0)
            return -1;
        char *copy = strdup(v);
        if (!copy)
            return sfl_json_fail(&e, o->var, "out of memory");
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
    char *text = sfl_json_read_text(file, CONF_MAX_BYTES, &len, err, errlen);
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
