/* test_conf.c - the config parser: every rule has a bad config that must be
 * refused with its JSON path in the message, and good configs must come out
 * with the defaults filled in and the environment applied. */
#include "conf.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each test runs in its own process: start from a clean environment. */
TestSuite(conf, .init = th_clear_env);

/* Criterion hands a parameter to the test's process as bytes, so pointers in
 * it (our string literals) would dangle there: pass the row index instead
 * and read the row from the table, which every process has. */
#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

/* Writes text to a fresh file under /tmp; returns its malloc'd path. */
static char *temp_file(const char *text)
{
    char *path = strdup("/tmp/sfl-conf-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void set_env(const char *const *env)
{
    for (size_t i = 0; env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        cr_assert_not_null(eq, "bad env spec %s", env[i]);
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
        cr_assert_eq(setenv(name, eq + 1, 1), 0);
    }
}

/* A field of the conf as text, so tables can name expected values. */
static void field(const sfl_conf *c, const char *key, char *buf, size_t len)
{
#define S(k, v)                                                                                    \
    if (strcmp(key, k) == 0) {                                                                     \
        snprintf(buf, len, "%s", (v) ? (v) : "(null)");                                            \
        return;                                                                                    \
    }
#define I(k, v)                                                                                    \
    if (strcmp(key, k) == 0) {                                                                     \
        snprintf(buf, len, "%lld", (long long)(v));                                                \
        return;                                                                                    \
    }
#define D(k, v)                                                                                    \
    if (strcmp(key, k) == 0) {                                                                     \
        snprintf(buf, len, "%g", (double)(v));                                                     \
        return;                                                                                    \
    }
    S("path", c->path);
    S("node_id", c->node_id);
    S("redis.url", c->redis_url);
    S("redis.password", c->redis_password);
    S("redis.sentinel_password", c->redis_sentinel_password);
    S("redis.namespace", c->redis_namespace);
    I("redis.connect_timeout_ms", c->connect_timeout_ms);
    I("concurrent_streams.enabled", c->concurrent_enabled);
    I("concurrent_streams.global_limit", c->global_limit);
    D("concurrent_streams.stagger_delay", c->stagger_delay);
    I("lease.ttl_ms", c->lease_ttl_ms);
    I("lease.renew_ms", c->lease_renew_ms);
    I("lease.safety_ms", c->lease_safety_ms);
    I("lease.handoff_ms", c->lease_handoff_ms);
    D("lease.acquire_timeout", c->acquire_timeout);
    S("check.parser", c->check_parser);
    D("check.timeout", c->check_timeout);
    D("stream_analysis.ffmpeg_duration", c->ffmpeg_duration);
    D("stream_analysis.timeout", c->analysis_timeout);
    I("stream_analysis.retries", c->retries);
    D("stream_analysis.retry_delay", c->retry_delay);
    S("stream_analysis.user_agent", c->user_agent);
    S("http.listen", c->http_listen);
    S("http.token", c->http_token);
    I("http.max_connections", c->http_max_connections);
    D("http.idle_timeout", c->http_idle_timeout);
    D("http.request_timeout", c->http_request_timeout);
    S("dispatcharr.url", c->dispatcharr_url);
    S("dispatcharr.username", c->dispatcharr_username);
    S("dispatcharr.password", c->dispatcharr_password);
    S("dispatcharr.api_key", c->dispatcharr_api_key);
    D("learned.window", c->learn_window);
    D("learned.quiet", c->learn_quiet);
    D("learned.recheck_after", c->learn_recheck_after);
#undef S
#undef I
#undef D
    size_t o = 0;
    buf[0] = '\0';
    if (strcmp(key, "accounts") == 0) { /* "id:name:max,..." */
        for (size_t i = 0; i < c->naccounts; i++)
            o += snprintf(buf + o, len - o, "%s%lld:%s:%lld", i ? "," : "", c->accounts[i].id,
                          c->accounts[i].name ? c->accounts[i].name : "(null)",
                          c->accounts[i].max_streams);
        return;
    }
    if (strcmp(key, "learned.refusal_codes") == 0) { /* joined by spaces */
        for (size_t i = 0; i < c->nrefusal_codes; i++)
            o += snprintf(buf + o, len - o, "%s%d", i ? " " : "", c->refusal_codes[i]);
        return;
    }
    if (strcmp(key, "check.schemes") == 0) { /* elements joined by spaces */
        for (size_t i = 0; i < c->check_nschemes; i++)
            o += snprintf(buf + o, len - o, "%s%s", i ? " " : "", c->check_schemes[i]);
        cr_assert_null(c->check_schemes[c->check_nschemes], "the list must end in NULL");
        return;
    }
    if (strcmp(key, "check.command") == 0) { /* elements joined by spaces */
        for (size_t i = 0; i < c->check_argc; i++)
            o += snprintf(buf + o, len - o, "%s%s", i ? " " : "", c->check_command[i]);
        cr_assert_null(c->check_command[c->check_argc], "argv must end in NULL");
        return;
    }
    cr_assert_fail("test asks for unknown field %s", key);
}

static void expect_fields(const sfl_conf *c, const char *const *expect)
{
    char got[1024];
    for (size_t i = 0; expect[i]; i++) {
        const char *eq = strchr(expect[i], '=');
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - expect[i]), expect[i]);
        field(c, key, got, sizeof(got));
        cr_expect_str_eq(got, eq + 1, "%s: got \"%s\", want \"%s\"", key, got, eq + 1);
    }
}

/*--- Bad configs: the error names the file and the JSON path ---*/

struct bad_case {
    const char *json;
    const char *path; /* must appear as "cfg.json: <path>: " */
    const char *what; /* and this after it */
};

static const struct bad_case bad_cases[] = {
    {"[]", "(top level)", "expected an object, got an array"},
    {"{\"nodeid\": \"a\"}", "nodeid", "unknown key"},
    {"{\"node_id\": \"a\", \"node_id\": \"b\"}", "node_id", "duplicate key"},
    {"{\"node_id\": \"\"}", "node_id", "must not be empty"},
    {"{\"node_id\": \"a b\"}", "node_id", "may contain only"},
    {"{\"node_id\": \"a/b\"}", "node_id", "may contain only"},
    {"{\"node_id\": \"x12345678901234567890123456789012345678901234567890123456789012345\"}",
     "node_id", "longer than 64"},
    {"{\"node_id\": 5}", "node_id", "expected a string, got 5"},
    {"{\"node_id\": null}", "node_id", "expected a string, got null"},
    {"{\"redis\": \"redis://h\"}", "redis", "expected an object, got \"redis://h\""},
    {"{\"redis\": {\"urll\": \"redis://h\"}}", "redis.urll", "unknown key"},
    {"{\"redis\": {\"url\": \"http://h\"}}", "redis.url", "unknown scheme \"http\""},
    {"{\"redis\": {\"url\": \"redis://h:99999\"}}", "redis.url", "bad port"},
    {"{\"redis\": {\"url\": \"redis://h:x\"}}", "redis.url", "bad port"},
    {"{\"redis\": {\"url\": \"redis://h/zero\"}}", "redis.url", "db must be a number"},
    {"{\"redis\": {\"url\": \"\"}}", "redis.url", "empty"},
    {"{\"redis\": {\"url\": null}}", "redis.url", "expected a string, got null"},
    {"{\"redis\": {\"password\": 5}}", "redis.password", "expected a string or null"},
    {"{\"redis\": {\"sentinel_password\": 5}}", "redis.sentinel_password",
     "expected a string or null"},
    {"{\"redis\": {\"url\": \"redis-sentinel://s1:26379\"}}", "redis.url",
     "missing the master's name"},
    {"{\"redis\": {\"url\": \"redis-sentinel://s1,:1/m\"}}", "redis.url",
     "sentinel 2: missing host"},
    {"{\"redis\": {\"namespace\": \"a{b}\"}}", "redis.namespace", "may contain only"},
    {"{\"redis\": {\"namespace\": \"\"}}", "redis.namespace", "must not be empty"},
    {"{\"redis\": {\"connect_timeout_ms\": 0}}", "redis.connect_timeout_ms",
     "expected an integer > 0, got 0"},
    {"{\"redis\": {\"connect_timeout_ms\": 1.5}}", "redis.connect_timeout_ms",
     "expected an integer > 0, got 1.5"},
    {"{\"concurrent_streams\": {\"enabled\": 1}}", "concurrent_streams.enabled",
     "expected true or false, got 1"},
    {"{\"concurrent_streams\": {\"global_limit\": 0}}", "concurrent_streams.global_limit",
     "expected an integer >= 1, got 0"},
    {"{\"concurrent_streams\": {\"global_limit\": 1e10}}", "concurrent_streams.global_limit",
     "too large"},
    {"{\"concurrent_streams\": {\"global_limit\": \"10\"}}", "concurrent_streams.global_limit",
     "got \"10\""},
    {"{\"concurrent_streams\": {\"stagger_delay\": -0.5}}", "concurrent_streams.stagger_delay",
     "expected a number >= 0, got -0.5"},
    {"{\"concurrent_streams\": {\"stagger\": 1}}", "concurrent_streams.stagger", "unknown key"},
    {"{\"lease\": {\"ttl_ms\": 99}}", "lease.ttl_ms", "between 100 and 86400000, got 99"},
    {"{\"lease\": {\"ttl_ms\": 9007199254740993}}", "lease.ttl_ms", "expected an integer"},
    {"{\"lease\": {\"renew_ms\": 20000}}", "lease.renew_ms",
     "must be below lease.ttl_ms (15000), got 20000"},
    {"{\"lease\": {\"renew_ms\": 15000}}", "lease.renew_ms", "must be below lease.ttl_ms"},
    {"{\"lease\": {\"renew_ms\": 0}}", "lease.renew_ms", "expected an integer > 0"},
    {"{\"lease\": {\"safety_ms\": -1}}", "lease.safety_ms", "expected an integer >= 0"},
    {"{\"lease\": {\"safety_ms\": 10000}}", "lease.safety_ms",
     "must be below lease.ttl_ms - lease.renew_ms (15000 - 5000 = 10000), got 10000"},
    {"{\"lease\": {\"ttl_ms\": 1000, \"renew_ms\": 900}}", "lease.safety_ms", "must be below"},
    {"{\"lease\": {\"acquire_timeout\": -1}}", "lease.acquire_timeout", "expected a number >= 0"},
    {"{\"lease\": {\"ttl\": 1}}", "lease.ttl", "unknown key"},
    {"{\"accounts\": {}}", "accounts", "expected an array, got an object"},
    {"{\"accounts\": [1]}", "accounts[0]", "expected an object, got 1"},
    {"{\"accounts\": [{\"id\": 1, \"max_streams\": 1}, {\"id\": 2, \"max_streams\": "
     "\"two\"}]}",
     "accounts[1].max_streams", "expected an integer >= 0, got \"two\""},
    {"{\"accounts\": [{\"id\": 1, \"max_streams\": 1}, {\"id\": 1, \"max_streams\": 2}]}",
     "accounts[1].id", "duplicate id 1 (also at accounts[0])"},
    {"{\"accounts\": [{\"id\": -1, \"max_streams\": 1}]}", "accounts[0].id",
     "expected an integer >= 0, got -1"},
    {"{\"accounts\": [{\"id\": 1.5, \"max_streams\": 1}]}", "accounts[0].id",
     "expected an integer >= 0, got 1.5"},
    {"{\"accounts\": [{\"max_streams\": 1}]}", "accounts[0].id", "missing"},
    {"{\"accounts\": [{\"id\": 3}]}", "accounts[0].max_streams", "missing"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": -2}]}", "accounts[0].max_streams", "got -2"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": 1e300}]}", "accounts[0].max_streams",
     "expected an integer >= 0"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": 1, \"limit\": 2}]}", "accounts[0].limit",
     "unknown key"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": 1, \"name\": 7}]}", "accounts[0].name",
     "expected a string or null, got 7"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": 1, \"name\": \"\\u001b[31mred\"}]}",
     "accounts[0].name", "contains a control character (U+001B at byte 0)"},
    {"{\"accounts\": [{\"id\": 1, \"max_streams\": 1}, {\"id\": 3, \"max_streams\": 1, "
     "\"name\": \"bell\\u0007\"}]}",
     "accounts[1].name", "contains a control character (U+0007 at byte 4)"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": 1, \"name\": \"a\\r\\nb\"}]}",
     "accounts[0].name", "control character (U+000D"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": 1, \"name\": \"\\u009b2J\"}]}",
     "accounts[0].name", "control character (U+009B"},
    {"{\"accounts\": [{\"id\": 3, \"max_streams\": 1, \"name\": \"x\xff\"}]}", "accounts[0].name",
     "is not valid UTF-8 (byte 0xFF at 1)"},
    {"{\"check\": {\"schemes\": []}}", "check.schemes", "non-empty array of strings, got []"},
    {"{\"check\": {\"schemes\": \"http\"}}", "check.schemes", "got \"http\""},
    {"{\"check\": {\"schemes\": null}}", "check.schemes", "got null"},
    {"{\"check\": {\"schemes\": [\"http\", 5]}}", "check.schemes[1]", "expected a string, got 5"},
    {"{\"check\": {\"schemes\": [\"http\", \"\"]}}", "check.schemes[1]", "expected a URL scheme"},
    {"{\"check\": {\"schemes\": [\"http://\"]}}", "check.schemes[0]", "got \"http://\""},
    {"{\"check\": {\"schemes\": [\"ht tp\"]}}", "check.schemes[0]", "got \"ht tp\""},
    {"{\"check\": {\"schemes\": [\"1http\"]}}", "check.schemes[0]", "expected a URL scheme"},
    {"{\"check\": {\"schemes\": [\"a23456789012345678901234567890123\"]}}", "check.schemes[0]",
     "at most 32"},
    {"{\"check\": {\"schemes\": [\"http\", \"udp\", \"HTTP\"]}}", "check.schemes[2]",
     "\"HTTP\" given twice (also at check.schemes[0])"},
    {"{\"check\": {\"command\": []}}", "check.command", "non-empty array"},
    {"{\"check\": {\"command\": \"ffmpeg -i {url}\"}}", "check.command",
     "expected a non-empty array of strings"},
    {"{\"check\": {\"command\": [\"ffmpeg\", \"\"]}}", "check.command[1]",
     "must be a non-empty string"},
    {"{\"check\": {\"command\": [\"ffmpeg\", 3]}}", "check.command[1]", "expected a string, got 3"},
    {"{\"check\": {\"command\": [\"ffmpeg\", \"-i\", \"{uri}\"]}}", "check.command[2]",
     "unknown placeholder {uri}"},
    {"{\"check\": {\"command\": [\"probe\", \"--url={URL}&x\"]}}", "check.command[1]",
     "unknown placeholder {URL}"},
    {"{\"check\": {\"command\": [\"ffmpeg\", \"x{input_options}\", \"{url}\"]}}",
     "check.command[1]", "{input_options} must be an argument of its own"},
    {"{\"check\": {\"parser\": \"xml\"}}", "check.parser", "got \"xml\""},
    {"{\"check\": {\"timeout\": 0}}", "check.timeout", "expected a number > 0, got 0"},
    {"{\"check\": {\"tmeout\": 5}}", "check.tmeout", "unknown key"},
    {"{\"stream_analysis\": {\"ffmpeg_duration\": 0}}", "stream_analysis.ffmpeg_duration", "> 0"},
    {"{\"stream_analysis\": {\"timeout\": -3}}", "stream_analysis.timeout", "> 0"},
    {"{\"stream_analysis\": {\"retries\": -1}}", "stream_analysis.retries",
     "expected an integer >= 0, got -1"},
    {"{\"stream_analysis\": {\"retries\": 1.5}}", "stream_analysis.retries",
     "expected an integer >= 0, got 1.5"},
    {"{\"stream_analysis\": {\"retry_delay\": -1}}", "stream_analysis.retry_delay", ">= 0"},
    {"{\"stream_analysis\": {\"user_agent\": null}}", "stream_analysis.user_agent",
     "expected a string, got null"},
    {"{\"stream_analysis\": {\"user_agent\": \"a\\r\\nX-Evil: 1\"}}", "stream_analysis.user_agent",
     "control characters"},
    {"{\"http\": {\"listen\": \"8470\"}}", "http.listen", "expected HOST:PORT"},
    {"{\"http\": {\"listen\": \"localhost:http\"}}", "http.listen", "bad port"},
    {"{\"http\": {\"listen\": \"::1:8470\"}}", "http.listen", "brackets"},
    {"{\"http\": {\"listen\": \":8470\"}}", "http.listen", "missing host"},
    {"{\"http\": {\"token\": \"\"}}", "http.token", "must not be empty"},
    {"{\"http\": {\"token\": \"a b\"}}", "http.token", "spaces"},
    {"{\"http\": {\"token\": 42}}", "http.token", "expected a string or null, got 42"},
    {"{\"http\": {\"max_body\": 1023}}", "http.max_body", "1024"},
    {"{\"lease\": {\"handoff_ms\": 0}}", "lease.handoff_ms", "between 1 and 60000, got 0"},
    {"{\"lease\": {\"handoff_ms\": 60001}}", "lease.handoff_ms", "60000"},
    {"{\"http\": {\"max_body\": 1e12}}", "http.max_body", "67108864"},
    {"{\"http\": {\"max_body\": \"1M\"}}", "http.max_body", "expected"},
    {"{\"http\": {\"max_connections\": 0}}", "http.max_connections", "got 0"},
    {"{\"http\": {\"max_connections\": 1000001}}", "http.max_connections", "1000000"},
    {"{\"http\": {\"max_connections\": 2.5}}", "http.max_connections", "integer"},
    {"{\"http\": {\"max_connections\": \"100\"}}", "http.max_connections", "expected"},
    {"{\"http\": {\"idle_timeout\": 0}}", "http.idle_timeout", "got 0"},
    {"{\"http\": {\"idle_timeout\": -1}}", "http.idle_timeout", "got -1"},
    {"{\"http\": {\"idle_timeout\": 86401}}", "http.idle_timeout", "86400"},
    {"{\"http\": {\"request_timeout\": 0}}", "http.request_timeout", "got 0"},
    {"{\"http\": {\"request_timeout\": null}}", "http.request_timeout", "expected"},
    {"{\"dispatcharr\": {\"url\": \"ftp://x\"}}", "dispatcharr.url", "http:// or https://"},
    {"{\"dispatcharr\": {\"api_key\": true}}", "dispatcharr.api_key",
     "expected a string or null, got true"},
    {"{\"dispatcharr\": {\"token\": \"x\"}}", "dispatcharr.token", "unknown key"},
    {"{\"dispatcharr\": [], \"http\": {}}", "dispatcharr", "expected an object"},
    {"{\"learned\": {\"refusal_codes\": [458, 200]}}", "learned.refusal_codes[1]",
     "expected an integer between 400 and 599, got 200"},
    {"{\"learned\": {\"refusal_codes\": [\"458\"]}}", "learned.refusal_codes[0]",
     "expected an integer between 400 and 599, got \"458\""},
    {"{\"learned\": {\"refusal_codes\": 458}}", "learned.refusal_codes", "expected an array"},
    {"{\"learned\": {\"window\": 0}}", "learned.window", "got 0"},
    {"{\"learned\": {\"quiet\": -5}}", "learned.quiet", "got -5"},
    {"{\"learned\": {\"recheck\": 1}}", "learned.recheck", "unknown key"},
};

ParameterizedTestParameters(conf, bad)
{
    INDEX_PARAMS(bad_cases);
}

ParameterizedTest(size_t *i, conf, bad)
{
    const struct bad_case *bc = &bad_cases[*i];
    char err[512] = "";
    sfl_conf *c = sfl_conf_parse(bc->json, strlen(bc->json), "cfg.json", err, sizeof(err));
    cr_assert_null(c, "accepted %s", bc->json);
    char want[256];
    snprintf(want, sizeof(want), "cfg.json: %s: ", bc->path);
    cr_expect_eq(strncmp(err, want, strlen(want)), 0,
                 "for %s: message \"%s\" does not start "
                 "with \"%s\"",
                 bc->json, err, want);
    cr_expect_not_null(strstr(err + strlen(want) - 2, bc->what),
                       "for %s: message \"%s\" lacks \"%s\"", bc->json, err, bc->what);
}

/*--- Text that is not JSON ---*/

struct syntax_case {
    const char *json;
    const char *what;
};

static const struct syntax_case not_json_cases[] = {
    {"", "cfg.json: not valid JSON: the text is empty"},
    {"{\"node_id\": ", "cfg.json: not valid JSON"},
    {"{\n  \"node_id\": \"a\",\n  x\n}", "near line 3, column 4 (byte 23)"},
    {"{} {}", "unexpected text after the value at line 1, column 4 (byte 3)"},
    {"{\"a\": 1,}", "cfg.json: not valid JSON near line 1, column 9 (byte 8)"},
    {"{\"node_id\": \"t\",\x01 \"lease\": {}}", "control byte 0x01 at line 1, column 17 (byte 16)"},
    {"{\"node_id\": \"a\\u0000b\"}", "\\u0000 (NUL), which is refused, at line 1, column 15"},
    {"{\"node_id\": \"a\\\\u0000b\"}", "node_id"}, /* an escaped backslash, then text */
};

ParameterizedTestParameters(conf, not_json)
{
    INDEX_PARAMS(not_json_cases);
}

ParameterizedTest(size_t *i, conf, not_json)
{
    const struct syntax_case *sc = &not_json_cases[*i];
    char err[512] = "";
    cr_assert_null(sfl_conf_parse(sc->json, strlen(sc->json), "cfg.json", err, sizeof(err)));
    cr_expect_not_null(strstr(err, sc->what), "message \"%s\" lacks \"%s\"", err, sc->what);
}

Test(conf, length_bounds_the_text)
{
    /* Only the first len bytes count: the rest may be anything. */
    const char text[] = "{\"node_id\": \"n1\"}garbage";
    char err[256] = "";
    sfl_conf *c = sfl_conf_parse(text, strlen(text) - 7, "cfg.json", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(c->node_id, "n1");
    sfl_conf_free(c);
}

/*--- Good configs: loaded from a file, defaults filled in, environment applied ---*/

#define DEFAULT_COMMAND                                                                            \
    "ffmpeg -hide_banner -nostdin -v verbose -user_agent {user_agent} {input_options} -i {url} "   \
    "-t "                                                                                          \
    "{duration} -f null -"

struct good_case {
    const char *json;
    const char *env[6];     /* "NAME=value", applied before loading */
    const char *expect[28]; /* "field=value" */
};

static const struct good_case good_cases[] = {
    {"{}",
     {NULL},
     {"redis.url=redis://127.0.0.1:6379/0",
      "redis.password=(null)",
      "redis.namespace=sfl",
      "redis.connect_timeout_ms=2000",
      "concurrent_streams.enabled=1",
      "concurrent_streams.global_limit=10",
      "concurrent_streams.stagger_delay=1",
      "lease.ttl_ms=15000",
      "lease.renew_ms=5000",
      "lease.safety_ms=2000",
      "lease.acquire_timeout=300",
      "accounts=",
      "check.command=" DEFAULT_COMMAND,
      "check.schemes=http https rtmp rtsp udp rtp srt",
      "check.parser=ffmpeg",
      "check.timeout=70",
      "stream_analysis.ffmpeg_duration=30",
      "stream_analysis.timeout=30",
      "stream_analysis.retries=1",
      "stream_analysis.retry_delay=10",
      "stream_analysis.user_agent=VLC/3.0.14",
      "http.listen=127.0.0.1:8470",
      "http.token=(null)",
      "dispatcharr.url=(null)",
      "dispatcharr.username=(null)",
      "dispatcharr.password=(null)",
      "dispatcharr.api_key=(null)",
      NULL}},
    /* The example of DESIGN §4, word for word. */
    {"{\"node_id\": \"host-a\",\n"
     " \"redis\": { \"url\": \"redis://127.0.0.1:6379/0\", \"password\": null,\n"
     "            \"namespace\": \"sfl\", \"connect_timeout_ms\": 2000 },\n"
     " \"concurrent_streams\": { \"enabled\": true, \"global_limit\": 10, "
     "\"stagger_delay\": 1.0 },\n"
     " \"lease\": { \"ttl_ms\": 15000, \"renew_ms\": 5000, \"safety_ms\": 2000,\n"
     "            \"acquire_timeout\": 300 },\n"
     " \"accounts\": [ { \"id\": 1, \"name\": \"My IPTV Provider\", \"max_streams\": 2 } ],\n"
     " \"check\": { \"command\": [\"ffmpeg\", \"-hide_banner\", \"-nostdin\", "
     "\"-user_agent\", \"{user_agent}\",\n"
     "                        \"-i\", \"{url}\", \"-t\", \"{duration}\", \"-f\", \"null\", "
     "\"-\"],\n"
     "            \"parser\": \"ffmpeg\", \"timeout\": 70 },\n"
     " \"stream_analysis\": { \"ffmpeg_duration\": 30, \"timeout\": 30, \"retries\": 1,\n"
     "                      \"retry_delay\": 10, \"user_agent\": \"VLC/3.0.14\" },\n"
     " \"http\": { \"listen\": \"127.0.0.1:8470\", \"token\": null },\n"
     " \"dispatcharr\": { \"url\": null, \"username\": null, \"password\": null, "
     "\"api_key\": null }\n"
     "}\n",
     {NULL},
     {"node_id=host-a", "accounts=1:My IPTV Provider:2",
      "check.command=ffmpeg -hide_banner -nostdin -user_agent {user_agent} -i {url} -t "
      "{duration} -f null -",
      "lease.renew_ms=5000", "concurrent_streams.enabled=1", "http.token=(null)", NULL}},
    {"{\"redis\": {\"url\": \"redis-sentinel://:pw@s1:26379,s2/mymaster/1\", "
     "\"sentinel_password\": \"spw\"}}",
     {NULL},
     {"redis.url=redis-sentinel://:pw@s1:26379,s2/mymaster/1", "redis.sentinel_password=spw",
      "redis.password=(null)", NULL}},
    {"{}",
     {"SFL_REDIS_URL=redis-sentinel://s1,s2:26380/m", NULL},
     {"redis.url=redis-sentinel://s1,s2:26380/m", "redis.sentinel_password=(null)", NULL}},
    {"{\"node_id\": \"n.1_x-y\", \"redis\": {\"url\": \"unix:///run/redis.sock?db=2\", "
     "\"password\": \"pw\", \"namespace\": \"prod:sfl\", \"connect_timeout_ms\": 500},"
     " \"concurrent_streams\": {\"enabled\": false, \"global_limit\": 3.0, "
     "\"stagger_delay\": 0},"
     " \"lease\": {\"acquire_timeout\": 0},"
     " \"accounts\": [{\"id\": 0, \"max_streams\": 0}, {\"id\": 7, \"name\": null, "
     "\"max_streams\": 3}, {\"id\": 2, \"name\": \"B\", \"max_streams\": 1}],"
     " \"check\": {\"command\": [\"/usr/bin/probe\", \"--json\", \"{url}#{id}/{name}\", "
     "\"{account}\", \"{duration}s\", \"{user_agent}\", \"{literal braces\", \"{}\"], "
     "\"parser\": \"json\", \"timeout\": 5.5},"
     " \"stream_analysis\": {\"ffmpeg_duration\": 2.5, \"timeout\": 1, \"retries\": 0, "
     "\"retry_delay\": 0, \"user_agent\": \"\"},"
     " \"http\": {\"listen\": \"[::1]:0\", \"token\": \"t0k3n\"},"
     " \"dispatcharr\": {\"url\": \"https://d.example:9191\", \"username\": \"u\", "
     "\"password\": \"p\", \"api_key\": \"k\"}}",
     {NULL},
     {"node_id=n.1_x-y",
      "redis.url=unix:///run/redis.sock?db=2",
      "redis.password=pw",
      "redis.namespace=prod:sfl",
      "redis.connect_timeout_ms=500",
      "concurrent_streams.enabled=0",
      "concurrent_streams.global_limit=3",
      "concurrent_streams.stagger_delay=0",
      "lease.acquire_timeout=0",
      "accounts=0:(null):0,7:(null):3,2:B:1",
      "check.command=/usr/bin/probe --json {url}#{id}/{name} {account} {duration}s "
      "{user_agent} {literal braces {}",
      "check.parser=json",
      "check.timeout=5.5",
      "stream_analysis.ffmpeg_duration=2.5",
      "stream_analysis.timeout=1",
      "stream_analysis.retries=0",
      "stream_analysis.retry_delay=0",
      "stream_analysis.user_agent=",
      "http.listen=[::1]:0",
      "http.token=t0k3n",
      "dispatcharr.url=https://d.example:9191",
      "dispatcharr.username=u",
      "dispatcharr.password=p",
      "dispatcharr.api_key=k",
      NULL}},
    /* Unset lease timings follow the TTL. */
    {"{\"lease\": {\"ttl_ms\": 3000}}",
     {NULL},
     {"lease.ttl_ms=3000", "lease.renew_ms=1000", "lease.safety_ms=1000", NULL}},
    {"{\"lease\": {\"ttl_ms\": 30000}}",
     {NULL},
     {"lease.ttl_ms=30000", "lease.renew_ms=10000", "lease.safety_ms=2000", NULL}},
    {"{\"lease\": {\"ttl_ms\": 100}}", {NULL}, {"lease.renew_ms=33", "lease.safety_ms=33", NULL}},
    {"{\"lease\": {\"ttl_ms\": 10000, \"renew_ms\": 7000, \"safety_ms\": 2999}}",
     {NULL},
     {"lease.renew_ms=7000", "lease.safety_ms=2999", NULL}},
    {"{\"lease\": {\"safety_ms\": 0}}", {NULL}, {"lease.safety_ms=0", NULL}},
    {"{\"accounts\": [{\"id\": 9007199254740991, \"max_streams\": 1}]}",
     {NULL},
     {"accounts=9007199254740991:(null):1", NULL}},
    {"{\"redis\": {\"url\": \"embedded\"}}", {NULL}, {"redis.url=embedded", NULL}},
    /* Schemes as given (matched without regard to case); names in any script. */
    {"{\"check\": {\"schemes\": [\"HTTPS\", \"rtmps\", \"svn+ssh\"]}, \"accounts\": [{\"id\": 4, "
     "\"name\": \"Caf\u00e9 \\u20ac\", \"max_streams\": 1}]}",
     {NULL},
     {"check.schemes=HTTPS rtmps svn+ssh", "accounts=4:Caf\u00e9 \u20ac:1", NULL}},
    /* The HTTP side's limits: 0 connections = sized to the descriptor limit at start. */
    {"{}",
     {NULL},
     {"http.max_connections=0", "http.idle_timeout=60", "http.request_timeout=10", NULL}},
    {"{}",
     {NULL},
     {"learned.refusal_codes=429 458 509", "learned.window=60", "learned.quiet=300",
      "learned.recheck_after=10", NULL}},
    {"{\"learned\": {\"refusal_codes\": [403, 458], \"window\": 5, \"quiet\": 30.5,"
     " \"recheck_after\": 0.5}}",
     {NULL},
     {"learned.refusal_codes=403 458", "learned.window=5", "learned.quiet=30.5",
      "learned.recheck_after=0.5", NULL}},
    {"{\"learned\": {\"refusal_codes\": []}}", {NULL}, {"learned.refusal_codes=", NULL}},
    {"{\"http\": {\"max_connections\": 300, \"idle_timeout\": 2.5, \"request_timeout\": 1}}",
     {NULL},
     {"http.max_connections=300", "http.idle_timeout=2.5", "http.request_timeout=1", NULL}},
    /* Environment overrides win over the file. */
    {"{\"node_id\": \"file-node\", \"redis\": {\"url\": \"redis://a:1/2\"}, "
     "\"http\": {\"listen\": \"127.0.0.1:1\", \"token\": \"file\"}}",
     {"SFL_NODE_ID=env-node", "SFL_REDIS_URL=unix:///tmp/r.sock?db=3",
      "SFL_HTTP_LISTEN=0.0.0.0:9000", "SFL_HTTP_TOKEN=s3cret", NULL},
     {"node_id=env-node", "redis.url=unix:///tmp/r.sock?db=3", "http.listen=0.0.0.0:9000",
      "http.token=s3cret", NULL}},
    {"{\"dispatcharr\": {\"url\": \"http://old\", \"api_key\": \"old\"}}",
     {"SFL_DISPATCHARR_URL=https://new:9191/", "SFL_DISPATCHARR_API_KEY=new-key", NULL},
     {"dispatcharr.url=https://new:9191/", "dispatcharr.api_key=new-key", NULL}},
    /* A variable set to "" counts as unset. */
    {"{\"node_id\": \"file-node\", \"http\": {\"token\": \"file\"}}",
     {"SFL_NODE_ID=", "SFL_HTTP_TOKEN=", NULL},
     {"node_id=file-node", "http.token=file", NULL}},
};

ParameterizedTestParameters(conf, good)
{
    INDEX_PARAMS(good_cases);
}

ParameterizedTest(size_t *i, conf, good)
{
    const struct good_case *gc = &good_cases[*i];
    char *path = temp_file(gc->json);
    set_env(gc->env);
    char err[512] = "";
    sfl_conf *c = sfl_conf_load(path, err, sizeof(err));
    unlink(path);
    cr_assert_not_null(c, "refused: %s", err);
    cr_expect_str_eq(c->path, path);
    expect_fields(c, gc->expect);
    cr_expect_eq(sfl_conf_validate(c, err, sizeof(err)), 0, "%s", err);
    sfl_conf_free(c);
    free(path);
}

/*--- Bad environment overrides ---*/

struct env_case {
    const char *env;
    const char *what;
};

static const struct env_case bad_env_cases[] = {
    {"SFL_REDIS_URL=localhost:6379", "environment: SFL_REDIS_URL: expected redis://"},
    {"SFL_REDIS_URL=redis://h:0", "environment: SFL_REDIS_URL: bad port"},
    {"SFL_NODE_ID=a b", "environment: SFL_NODE_ID: may contain only"},
    {"SFL_HTTP_LISTEN=8470", "environment: SFL_HTTP_LISTEN: expected HOST:PORT"},
    {"SFL_HTTP_TOKEN=a b", "environment: SFL_HTTP_TOKEN: must not contain spaces"},
    {"SFL_DISPATCHARR_URL=dispatcharr:9191", "environment: SFL_DISPATCHARR_URL: expected "
                                             "an http:// or https:// URL"},
    {"SFL_CONFIG=/nonexistent/sfl.json",
     "/nonexistent/sfl.json: cannot read: No such file or directory"},
};

ParameterizedTestParameters(conf, bad_env)
{
    INDEX_PARAMS(bad_env_cases);
}

ParameterizedTest(size_t *i, conf, bad_env)
{
    const struct env_case *ec = &bad_env_cases[*i];
    const char *env[] = {ec->env, NULL};
    set_env(env);
    char err[512] = "";
    cr_assert(chdir("/") == 0);
    cr_assert_null(sfl_conf_load(NULL, err, sizeof(err)), "accepted %s", ec->env);
    cr_expect_not_null(strstr(err, ec->what), "message \"%s\" lacks \"%s\"", err, ec->what);
}

/*--- Where the config comes from ---*/

Test(conf, parse_ignores_environment)
{
    setenv("SFL_NODE_ID", "env-node", 1);
    const char *json = "{\"node_id\": \"file-node\"}";
    char err[256];
    sfl_conf *c = sfl_conf_parse(json, strlen(json), "x.json", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(c->node_id, "file-node");
    cr_expect_str_eq(c->path, "x.json");
    sfl_conf_free(c);
}

Test(conf, missing_explicit_file)
{
    char err[512] = "";
    cr_assert_null(sfl_conf_load("/nonexistent/cfg.json", err, sizeof(err)));
    cr_expect_str_eq(err, "/nonexistent/cfg.json: cannot read: No such file or directory");
    cr_assert_null(sfl_conf_load("/tmp", err, sizeof(err)));
    cr_expect_str_eq(err, "/tmp: cannot read: Is a directory");
}

/* Runs in a fresh empty directory (its own process, so chdir is harmless). */
static char dir[64];

static void enter_temp_dir(void)
{
    th_clear_env();
    snprintf(dir, sizeof(dir), "/tmp/sfl-conf-d-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert(chdir(dir) == 0);
}

static void leave_temp_dir(void)
{
    unlink("sflimit.json");
    cr_assert(chdir("/") == 0);
    rmdir(dir);
}

static void write_here(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(conf, defaults_when_no_file, .init = enter_temp_dir, .fini = leave_temp_dir)
{
    char err[256] = "", host[256] = "";
    sfl_conf *c = sfl_conf_load(NULL, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_null(c->path);
    cr_assert(gethostname(host, sizeof(host)) == 0);
    host[64] = '\0';
    for (char *p = host; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
            *p = '-';
    cr_expect_str_eq(c->node_id, host[0] ? host : "sfl-node");
    cr_expect_eq(c->lease_ttl_ms, 15000);
    sfl_conf_free(c);
}

Test(conf, defaults_then_environment, .init = enter_temp_dir, .fini = leave_temp_dir)
{
    setenv("SFL_REDIS_URL", "embedded", 1);
    char err[256] = "";
    sfl_conf *c = sfl_conf_load(NULL, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(c->redis_url, "embedded");
    sfl_conf_free(c);
}

Test(conf, sflimit_json_in_cwd, .init = enter_temp_dir, .fini = leave_temp_dir)
{
    write_here("sflimit.json", "{\"node_id\": \"cwd-node\"}");
    char err[256] = "";
    sfl_conf *c = sfl_conf_load(NULL, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(c->path, "sflimit.json");
    cr_expect_str_eq(c->node_id, "cwd-node");
    sfl_conf_free(c);

    write_here("sflimit.json", "{\"lease\": {\"renew_ms\": 20000}}");
    cr_assert_null(sfl_conf_load(NULL, err, sizeof(err)));
    cr_expect_str_eq(err, "sflimit.json: lease.renew_ms: must be below lease.ttl_ms (15000), "
                          "got 20000");
}

Test(conf, sfl_config_wins_over_cwd, .init = enter_temp_dir, .fini = leave_temp_dir)
{
    write_here("sflimit.json", "{\"node_id\": \"cwd-node\"}");
    char *path = temp_file("{\"node_id\": \"env-file-node\"}");
    setenv("SFL_CONFIG", path, 1);
    char err[256] = "";
    sfl_conf *c = sfl_conf_load(NULL, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(c->node_id, "env-file-node");
    sfl_conf_free(c);
    /* An explicit path wins over $SFL_CONFIG. */
    c = sfl_conf_load("sflimit.json", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(c->node_id, "cwd-node");
    sfl_conf_free(c);
    /* SFL_CONFIG="" counts as unset. */
    setenv("SFL_CONFIG", "", 1);
    c = sfl_conf_load(NULL, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(c->node_id, "cwd-node");
    sfl_conf_free(c);
    unlink(path);
    free(path);
}

/*--- Re-validation after the command line changed fields ---*/

Test(conf, validate_after_changes)
{
    char err[256] = "";
    sfl_conf *c = sfl_conf_new();
    cr_assert_not_null(c);
    cr_expect_eq(sfl_conf_validate(c, err, sizeof(err)), 0, "%s", err);

    free(c->redis_url);
    c->redis_url = strdup("redis://h:port");
    cr_expect_eq(sfl_conf_validate(c, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "(built-in config): redis.url: bad port \"port\" (expected 1..65535)");

    free(c->redis_url);
    c->redis_url = strdup("redis://h:6380");
    c->lease_renew_ms = c->lease_ttl_ms;
    cr_expect_eq(sfl_conf_validate(c, err, sizeof(err)), -1);
    cr_expect_not_null(strstr(err, "lease.renew_ms: must be below lease.ttl_ms"), "%s", err);

    c->lease_renew_ms = 5000;
    c->global_limit = 0;
    cr_expect_eq(sfl_conf_validate(c, err, sizeof(err)), -1);
    cr_expect_not_null(strstr(err, "concurrent_streams.global_limit"), "%s", err);

    c->global_limit = 2;
    c->stagger_delay = 0.0 / 0.0;
    cr_expect_eq(sfl_conf_validate(c, err, sizeof(err)), -1);
    cr_expect_not_null(strstr(err, "concurrent_streams.stagger_delay"), "%s", err);
    c->stagger_delay = 0;
    cr_expect_eq(sfl_conf_validate(c, err, sizeof(err)), 0, "%s", err);
    sfl_conf_free(c);
    sfl_conf_free(NULL);
}

Test(conf, account_lookup)
{
    const char *json = "{\"accounts\": [{\"id\": 4, \"name\": \"Four\", \"max_streams\": 2}, "
                       "{\"id\": 5, \"max_streams\": 0}]}";
    char err[256] = "";
    sfl_conf *c = sfl_conf_parse(json, strlen(json), NULL, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_expect_null(c->path);
    cr_assert_not_null(sfl_conf_account(c, 4));
    cr_expect_str_eq(sfl_conf_account(c, 4)->name, "Four");
    cr_expect_eq(sfl_conf_account(c, 5)->max_streams, 0);
    cr_expect_null(sfl_conf_account(c, 6));
    sfl_conf_free(c);
}
