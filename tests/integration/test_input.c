/* test_input.c - hostile input to the real `sflimit`, one table row per case.
 *
 * Config files, stream files and command lines a user (or a broken script)
 * may hand over: garbage bytes, NUL and control bytes, truncated and
 * absurdly nested JSON, oversized files, huge and negative numbers, wrong
 * JSON types, nulls, unknown keys, bad options and option values. For every
 * row the binary runs against a real redis-server that already holds some
 * account confs, and must:
 *   - exit 2 by itself (no signal, no core dump, no hang: 20 s at most),
 *   - say on stderr what is wrong: each row lists the words a user needs to
 *     find the problem (the file, the JSON path or stream index, the option,
 *     the value),
 *   - print nothing on stdout (no results, no batch id),
 *   - run no check: the suite's check command writes a line to a marker
 *     file, which must not exist afterwards (a stream URL the config does
 *     not allow, file:///etc/passwd or "-", is refused before anything runs),
 *   - leave Redis exactly as it was: same keys, same types, same DUMP of
 *     every value, same TTL presence, and no write counted by Redis at all
 *     (rdb_changes_since_last_save), so even a write of an equal value shows.
 * HTTP bodies are test_http.c's. */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sfl_test_redis redis;
static char dir[128];
static pid_t child;

typedef struct paths {
    char config[256], streams[256], missing[256], out[256], err[256], ran[256];
} paths;
static paths files; /* removed by teardown: some are 20 MB */

static void setup(void)
{
    th_clear_env();
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    if (child > 0 && waitpid(child, NULL, WNOHANG) == 0) {
        kill(-child, SIGKILL);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    child = 0;
    th_redis_stop(&redis);
    const char *made[] = {files.config, files.streams, files.out, files.err, files.ran};
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
        if (*made[i])
            unlink(made[i]);
    if (*dir)
        rmdir(dir);
    if (*redis.dir) {
        char log[200];
        snprintf(log, sizeof(log), "%s/redis.log", redis.dir);
        unlink(log);
        rmdir(redis.dir);
    }
}

TestSuite(input, .init = setup, .fini = teardown, .timeout = 120);

/*--- File contents ---------------------------------------------------------*/

typedef enum gen_kind {
    G_DEFAULT = 0, /* the valid config / streams of the suite */
    G_TEXT,        /* text[0..len) as is, NUL bytes included */
    G_GARBAGE,     /* n pseudo-random bytes from seed */
    G_DEEP,        /* prefix, n '[' then n ']', suffix: valid JSON, absurdly deep */
    G_DEEP_OPEN,   /* prefix, n '[' and nothing after */
    G_SPACES,      /* n spaces */
} gen_kind;

typedef struct content {
    gen_kind kind;
    const char *text; /* G_TEXT; prefix of G_DEEP / G_DEEP_OPEN */
    size_t len;
    size_t n;
    uint32_t seed;
    const char *suffix; /* G_DEEP */
} content;

/* clang-format off */
#define TEXT(s) {G_TEXT, s, sizeof(s) - 1, 0, 0, NULL}
#define GARBAGE(n, seed) {G_GARBAGE, NULL, 0, n, seed, NULL}
#define DEEP(pre, n, post) {G_DEEP, pre, sizeof(pre) - 1, n, 0, post}
#define DEEP_OPEN(pre, n) {G_DEEP_OPEN, pre, sizeof(pre) - 1, n, 0, NULL}
#define SPACES(n) {G_SPACES, NULL, 0, n, 0, NULL}
/* clang-format on */

static void write_bytes(const char *path, const char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(buf, 1, len, f), len, "short write to %s", path);
    cr_assert_eq(fclose(f), 0, "cannot close %s", path);
}

/* xorshift32: the same garbage on every machine and every run. */
static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void write_content(const char *path, const content *c, const char *fallback)
{
    size_t len = 0;
    char *buf = NULL;
    switch (c->kind) {
    case G_DEFAULT:
        write_bytes(path, fallback, strlen(fallback));
        return;
    case G_TEXT:
        write_bytes(path, c->text, c->len);
        return;
    case G_GARBAGE: {
        uint32_t s = c->seed ? c->seed : 1;
        buf = malloc(c->n);
        cr_assert_not_null(buf);
        for (size_t i = 0; i < c->n; i++)
            buf[i] = (char)(next_rand(&s) >> 24);
        len = c->n;
        break;
    }
    case G_DEEP:
    case G_DEEP_OPEN: {
        size_t post = c->suffix ? strlen(c->suffix) : 0;
        buf = malloc(c->len + 2 * c->n + post + 1);
        cr_assert_not_null(buf);
        memcpy(buf, c->text, c->len);
        len = c->len;
        memset(buf + len, '[', c->n);
        len += c->n;
        if (c->kind == G_DEEP) {
            memset(buf + len, ']', c->n);
            len += c->n;
            memcpy(buf + len, c->suffix ? c->suffix : "", post);
            len += post;
        }
        break;
    }
    case G_SPACES:
        buf = malloc(c->n);
        cr_assert_not_null(buf);
        memset(buf, ' ', c->n);
        len = c->n;
        break;
    }
    write_bytes(path, buf, len);
    free(buf);
}

/*--- The table -------------------------------------------------------------*/

/* In argv, env and expect: @config the config file, @streams the streams
 * file, @redis the test's Redis URL, @dir the test's temp directory,
 * @missing a file that does not exist. An expect entry "a|b" is met by
 * either text. */
typedef struct input_case {
    const char *name;
    const char *argv[16];
    content config;
    content streams;
    const char *env; /* "NAME=value" for the child, or NULL */
    const char *expect[4];
} input_case;

#define CHECK "check", "-c", "@config", "--redis", "@redis", "@streams"

/* A stream list whose elements 0..2 are valid, for rows that break element 3. */
#define THREE_OK                                                                                   \
    "{\"id\": 1, \"url\": \"http://127.0.0.1:1/1.ts\", \"m3u_account\": 1},\n"                     \
    "{\"id\": 2, \"url\": \"http://127.0.0.1:1/2.ts\", \"m3u_account\": 7},\n"                     \
    "{\"id\": 3, \"url\": \"http://127.0.0.1:1/3.ts\", \"m3u_account\": null},\n"

/* clang-format off */
static const input_case cases[] = {
    /*--- Config files (`check` with good streams, unless said) ---*/
    {"config_garbage_bytes", {CHECK}, GARBAGE(4096, 1), {0}, NULL,
     {"@config", "not valid JSON"}},
    {"config_nul_between_tokens", {CHECK}, TEXT("{\"node_id\": \"t\",\0 \"lease\": {}}"), {0},
     NULL, {"@config", "not valid JSON"}},
    {"config_control_byte_between_tokens", {CHECK},
     TEXT("{\"node_id\": \"t\",\001 \"lease\": {}}"), {0}, NULL, {"@config", "not valid JSON"}},
    {"config_nul_inside_string", {CHECK}, TEXT("{\"node_id\": \"ab\0cd\"}"), {0}, NULL,
     {"@config", "node_id|control byte 0x00 at line 1"}},
    {"config_escaped_nul_inside_string", {CHECK}, TEXT("{\"node_id\": \"ab\\u0000cd\"}"), {0},
     NULL, {"@config", "node_id|\\u0000 (NUL), which is refused, at line 1"}},
    {"config_trailing_nul_and_text", {CHECK}, TEXT("{\"node_id\": \"t\"}\0{\"x\": 1}"), {0},
     NULL, {"@config", "not valid JSON"}},
    {"config_not_json", {CHECK}, TEXT("node_id = host-a\nredis.url = redis://x\n"), {0}, NULL,
     {"@config", "not valid JSON"}},
    {"config_truncated", {CHECK}, TEXT("{\"node_id\": \"t\", \"redis\": {\"url\": \"redis://"),
     {0}, NULL, {"@config", "not valid JSON"}},
    {"config_deep_nesting_open_100000", {CHECK}, DEEP_OPEN("{\"node\": ", 100000), {0}, NULL,
     {"@config", "not valid JSON|nested deeper than"}},
    {"config_deep_nesting_balanced_100000", {CHECK}, DEEP("{\"node\": ", 100000, "}"), {0},
     NULL, {"@config", "nest"}},
    {"config_global_limit_1e400", {CHECK},
     TEXT("{\"concurrent_streams\": {\"global_limit\": 1e400}}"), {0}, NULL,
     {"@config", "concurrent_streams.global_limit"}},
    {"config_global_limit_huge_integer", {CHECK},
     TEXT("{\"concurrent_streams\": {\"global_limit\": 99999999999999999999}}"), {0}, NULL,
     {"@config", "concurrent_streams.global_limit", "too large"}},
    {"config_ttl_negative", {CHECK}, TEXT("{\"lease\": {\"ttl_ms\": -5}}"), {0}, NULL,
     {"@config", "lease.ttl_ms", "-5"}},
    {"config_ttl_1e15", {CHECK}, TEXT("{\"lease\": {\"ttl_ms\": 1e15}}"), {0}, NULL,
     {"@config", "lease.ttl_ms"}},
    {"config_global_limit_zero", {CHECK},
     TEXT("{\"concurrent_streams\": {\"global_limit\": 0}}"), {0}, NULL,
     {"@config", "concurrent_streams.global_limit", "got 0"}},
    {"config_check_timeout_negative", {CHECK}, TEXT("{\"check\": {\"timeout\": -1}}"), {0},
     NULL, {"@config", "check.timeout"}},
    {"config_string_for_number", {CHECK}, TEXT("{\"lease\": {\"ttl_ms\": \"3000\"}}"), {0},
     NULL, {"@config", "lease.ttl_ms", "\"3000\""}},
    {"config_bool_for_number", {CHECK},
     TEXT("{\"concurrent_streams\": {\"stagger_delay\": true}}"), {0}, NULL,
     {"@config", "concurrent_streams.stagger_delay", "true"}},
    {"config_number_for_string", {CHECK}, TEXT("{\"node_id\": 42}"), {0}, NULL,
     {"@config", "node_id", "42"}},
    {"config_array_for_object", {CHECK}, TEXT("{\"redis\": []}"), {0}, NULL,
     {"@config", "redis", "array"}},
    {"config_object_for_array", {CHECK}, TEXT("{\"accounts\": {\"id\": 1}}"), {0}, NULL,
     {"@config", "accounts", "object"}},
    {"config_top_level_array", {CHECK}, TEXT("[]"), {0}, NULL,
     {"@config", "(top level)", "object"}},
    {"config_null_section", {CHECK}, TEXT("{\"lease\": null}"), {0}, NULL,
     {"@config", "lease", "null"}},
    {"config_null_number", {CHECK},
     TEXT("{\"concurrent_streams\": {\"global_limit\": null}}"), {0}, NULL,
     {"@config", "concurrent_streams.global_limit", "null"}},
    {"config_null_command", {CHECK}, TEXT("{\"check\": {\"command\": null}}"), {0}, NULL,
     {"@config", "check.command", "null"}},
    {"config_null_in_command", {CHECK}, TEXT("{\"check\": {\"command\": [\"ffmpeg\", null]}}"),
     {0}, NULL, {"@config", "check.command[1]", "null"}},
    {"config_schemes_empty", {CHECK}, TEXT("{\"check\": {\"schemes\": []}}"), {0}, NULL,
     {"@config", "check.schemes", "[]"}},
    {"config_schemes_with_slashes", {CHECK}, TEXT("{\"check\": {\"schemes\": [\"http://\"]}}"),
     {0}, NULL, {"@config", "check.schemes[0]", "\"http://\""}},
    {"config_schemes_twice", {CHECK}, TEXT("{\"check\": {\"schemes\": [\"udp\", \"UDP\"]}}"),
     {0}, NULL, {"@config", "check.schemes[1]", "twice"}},
    {"config_schemes_number", {CHECK}, TEXT("{\"check\": {\"schemes\": [\"http\", 1]}}"), {0},
     NULL, {"@config", "check.schemes[1]", "1"}},
    {"config_account_name_escape", {CHECK},
     TEXT("{\"accounts\": [{\"id\": 1, \"name\": \"\\u001b[31mred\", \"max_streams\": 1}]}"),
     {0}, NULL, {"@config", "accounts[0].name", "control character (U+001B"}},
    {"config_account_name_bell", {CHECK},
     TEXT("{\"accounts\": [{\"id\": 1, \"name\": \"ding\\u0007\", \"max_streams\": 1}]}"),
     {0}, NULL, {"@config", "accounts[0].name", "U+0007"}},
    {"config_account_name_crlf", {"accounts", "sync", "-c", "@config", "--redis", "@redis"},
     TEXT("{\"accounts\": [{\"id\": 1, \"name\": \"a\\r\\nb\", \"max_streams\": 1}]}"),
     {0}, NULL, {"@config", "accounts[0].name", "U+000D"}},
    {"config_unknown_key", {CHECK}, TEXT("{\"concurent_streams\": {}}"), {0}, NULL,
     {"@config", "concurent_streams", "unknown key"}},
    {"config_unknown_nested_key", {CHECK}, TEXT("{\"lease\": {\"ttl\": 5000}}"), {0}, NULL,
     {"@config", "lease.ttl", "unknown key"}},
    {"config_duplicate_key", {CHECK}, TEXT("{\"node_id\": \"a\", \"node_id\": \"b\"}"), {0},
     NULL, {"@config", "node_id", "duplicate"}},
    {"config_empty_file", {CHECK}, TEXT(""), {0}, NULL, {"@config", "empty"}},
    {"config_is_a_directory",
     {"check", "-c", "@dir", "--redis", "@redis", "@streams"}, {0}, {0}, NULL,
     {"@dir", "directory"}},
    {"config_nonexistent",
     {"check", "-c", "@missing", "--redis", "@redis", "@streams"}, {0}, {0}, NULL,
     {"@missing", "No such file"}},
    {"config_20mb_of_spaces", {CHECK}, SPACES(20u * 1024 * 1024), {0}, NULL,
     {"@config", "larger than"}},
    {"config_account_id_string", {CHECK},
     TEXT("{\"accounts\": [{\"id\": \"1\", \"max_streams\": 2}]}"), {0}, NULL,
     {"@config", "accounts[0].id", "\"1\""}},
    {"config_account_max_negative", {CHECK},
     TEXT("{\"accounts\": [{\"id\": 1, \"max_streams\": -1}]}"), {0}, NULL,
     {"@config", "accounts[0].max_streams", "-1"}},
    {"config_account_max_fraction", {CHECK},
     TEXT("{\"accounts\": [{\"id\": 1, \"max_streams\": 2.5}]}"), {0}, NULL,
     {"@config", "accounts[0].max_streams", "2.5"}},
    {"config_account_duplicate_id", {CHECK},
     TEXT("{\"accounts\": [{\"id\": 1, \"max_streams\": 1}, {\"id\": 1, \"max_streams\": 2}]}"),
     {0}, NULL, {"@config", "accounts[1].id", "duplicate"}},
    {"config_renew_not_below_ttl", {CHECK},
     TEXT("{\"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 3000}}"), {0}, NULL,
     {"@config", "lease.renew_ms"}},
    {"config_redis_url_not_a_url", {CHECK}, TEXT("{\"redis\": {\"url\": \"notaurl\"}}"), {0},
     NULL, {"@config", "redis.url"}},
    {"config_unknown_placeholder", {CHECK},
     TEXT("{\"check\": {\"command\": [\"ffmpeg\", \"{bogus}\"]}}"), {0}, NULL,
     {"@config", "check.command[1]", "{bogus}"}},
    {"config_listen_port_too_big", {CHECK}, TEXT("{\"http\": {\"listen\": \"0.0.0.0:99999\"}}"),
     {0}, NULL, {"@config", "http.listen", "99999"}},
    {"config_node_id_too_long", {CHECK},
     TEXT("{\"node_id\": \""
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "\"}"),
     {0}, NULL, {"@config", "node_id", "longer than"}},
    /* the same config checks behind every command */
    {"config_garbage_exec",
     {"exec", "-c", "@config", "--redis", "@redis", "-a", "1", "--", "true"}, GARBAGE(2048, 2),
     {0}, NULL, {"@config", "not valid JSON"}},
    {"config_garbage_node", {"node", "-c", "@config", "--redis", "@redis"}, GARBAGE(2048, 3), {0},
     NULL, {"@config", "not valid JSON"}},
    {"config_wrong_type_status", {"status", "-c", "@config", "--redis", "@redis"},
     TEXT("{\"lease\": {\"ttl_ms\": [1]}}"), {0}, NULL, {"@config", "lease.ttl_ms", "array"}},
    {"config_unknown_key_accounts_sync",
     {"accounts", "sync", "-c", "@config", "--redis", "@redis"},
     TEXT("{\"accounts\": [{\"id\": 1, \"max_streams\": 2, \"limit\": 3}]}"), {0}, NULL,
     {"@config", "accounts[0].limit", "unknown key"}},
    {"config_null_accounts_set",
     {"accounts", "set", "1", "4", "-c", "@config", "--redis", "@redis"},
     TEXT("{\"redis\": {\"namespace\": null}}"), {0}, NULL, {"@config", "redis.namespace"}},
    {"config_wrong_type_submit", {"submit", "-c", "@config", "--redis", "@redis", "@streams"},
     TEXT("{\"node\": {\"claim_idle\": \"15\"}}"), {0}, NULL, {"@config", "node.claim_idle"}},

    /*--- Stream files (`check`, unless said) ---*/
    {"streams_garbage_bytes", {CHECK}, {0}, GARBAGE(8192, 4), NULL,
     {"@streams", "not valid JSON"}},
    {"streams_deep_nesting_balanced_50000", {CHECK}, {0}, DEEP("", 50000, ""), NULL,
     {"@streams", "nest"}},
    {"streams_deep_nesting_open_100000", {CHECK}, {0}, DEEP_OPEN("", 100000), NULL,
     {"@streams", "not valid JSON|nested deeper than"}},
    {"streams_deep_inside_stream", {CHECK}, {0},
     DEEP("[{\"id\": 1, \"url\": \"http://127.0.0.1:1/1.ts\", \"extra\": ", 50000, "}]"), NULL,
     {"@streams", "nest"}},
    {"streams_20mb_of_spaces", {CHECK}, {0}, SPACES(20u * 1024 * 1024), NULL,
     {"@streams", "not valid JSON|empty"}},
    {"streams_empty_file", {CHECK}, {0}, TEXT(""), NULL, {"@streams", "empty"}},
    {"streams_trailing_text", {CHECK}, {0},
     TEXT("[{\"id\": 1, \"url\": \"http://127.0.0.1:1/1.ts\"}] trailing"), NULL,
     {"@streams", "after the value"}},
    {"streams_control_byte_between_elements", {CHECK}, {0},
     TEXT("[{\"id\": 1, \"url\": \"http://127.0.0.1:1/1.ts\", \"m3u_account\": 1},\001"
          "{\"id\": 2, \"url\": \"http://127.0.0.1:1/2.ts\"}]"),
     NULL, {"@streams", "not valid JSON"}},
    {"streams_nul_between_elements", {CHECK}, {0},
     TEXT("[{\"id\": 1, \"url\": \"http://127.0.0.1:1/1.ts\", \"m3u_account\": 1},\0"
          "{\"id\": 2, \"url\": \"http://127.0.0.1:1/2.ts\"}]"),
     NULL, {"@streams", "not valid JSON"}},
    {"streams_id_null", {CHECK}, {0},
     TEXT("[{\"id\": null, \"url\": \"http://127.0.0.1:1/1.ts\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].id", "null"}},
    {"streams_id_string", {CHECK}, {0},
     TEXT("[{\"id\": \"1\", \"url\": \"http://127.0.0.1:1/1.ts\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].id", "\"1\""}},
    {"streams_id_float", {CHECK}, {0},
     TEXT("[{\"id\": 1.5, \"url\": \"http://127.0.0.1:1/1.ts\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].id", "1.5"}},
    {"streams_id_huge", {CHECK}, {0},
     TEXT("[{\"id\": 99999999999999999999, \"url\": \"http://127.0.0.1:1/1.ts\"}]"), NULL,
     {"@streams", "[0].id"}},
    /* 2^53 + 1 cannot be held by a double: the message must not show a
     * different number than the one in the file (it may say what it is) */
    {"streams_id_2p53_plus_1", {CHECK}, {0},
     TEXT("[{\"id\": 9007199254740993, \"url\": \"http://127.0.0.1:1/1.ts\"}]"), NULL,
     {"@streams", "[0].id", "9007199254740993|beyond 2^53-1"}},
    {"streams_id_missing", {CHECK}, {0},
     TEXT("[" THREE_OK "{\"url\": \"http://127.0.0.1:1/4.ts\"}]"), NULL,
     {"@streams", "[3].id", "missing"}},
    {"streams_id_given_twice", {CHECK}, {0},
     TEXT("[{\"id\": 1, \"url\": \"http://127.0.0.1:1/1.ts\", \"id\": 2}]"), NULL,
     {"@streams", "[0].id", "twice"}},
    {"streams_duplicate_ids", {CHECK}, {0},
     TEXT("[" THREE_OK "{\"id\": 2, \"url\": \"http://127.0.0.1:1/4.ts\", \"m3u_account\": 1}]"),
     NULL, {"@streams", "[3].id", "duplicate"}},
    {"streams_url_null", {CHECK}, {0},
     TEXT("[" THREE_OK "{\"id\": 4, \"url\": null, \"m3u_account\": 1}]"), NULL,
     {"@streams", "[3].url", "null"}},
    {"streams_url_missing", {CHECK}, {0}, TEXT("[{\"id\": 4, \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].url", "missing"}},
    {"streams_url_empty", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].url", "empty"}},
    {"streams_url_number", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": 80, \"m3u_account\": 1}]"), NULL, {"@streams", "[0].url", "80"}},
    {"streams_url_escaped_control_char", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/\\u0007.ts\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].url", "control"}},
    {"streams_url_raw_control_char", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/\033[2J.ts\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].url|not valid JSON"}},
    /* a NUL cuts the URL short: the check would run on another URL than the file says */
    {"streams_url_escaped_nul", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\\u0000@other\", \"m3u_account\": 1}]"),
     NULL, {"@streams", "[0].url|\\u0000 (NUL), which is refused, at line 1, column 43"}},
    {"streams_url_raw_nul", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\0@other\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].url|not valid JSON"}},
    /* What a check may open: only URLs of check.schemes (default http https
     * rtmp rtsp udp rtp srt), never a file, stdin or another protocol */
    {"streams_url_file_etc_passwd", {CHECK}, {0},
     TEXT("[" THREE_OK "{\"id\": 4, \"url\": \"file:///etc/passwd\", \"m3u_account\": 1}]"),
     NULL, {"@streams", "[3].url (stream 4)", "scheme \"file\" is not allowed (check.schemes: http"}},
    {"streams_url_dash_stdin", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"-\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[0].url (stream 4)", "no scheme://"}},
    {"streams_url_pipe_0", {CHECK}, {0},
     TEXT("{\"streams\": [{\"id\": 4, \"url\": \"pipe:0\", \"m3u_account\": null}]}"), NULL,
     {"@streams", "streams[0].url (stream 4)", "no scheme://"}},
    {"streams_url_file_upper_case", {CHECK}, {0},
     TEXT("[" THREE_OK "{\"id\": 4, \"url\": \"FILE:///x\", \"m3u_account\": 1}]"), NULL,
     {"@streams", "[3].url (stream 4)", "scheme \"FILE\""}},
    {"streams_url_no_scheme_path", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"/etc/passwd\"}]"), NULL,
     {"@streams", "[0].url (stream 4)", "no scheme://"}},
    {"streams_url_concat", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"concat:http://h/1.ts|file:///etc/passwd\"}]"), NULL,
     {"@streams", "[0].url (stream 4)", "no scheme://"}},
    {"streams_url_scheme_not_in_config", {CHECK},
     TEXT("{\"check\": {\"schemes\": [\"rtmp\", \"srt\"]}}"), {0}, NULL,
     {"@streams", "[0].url (stream 1)", "scheme \"http\" is not allowed (check.schemes: rtmp, srt)"}},
    {"submit_url_file_etc_passwd", {"submit", "-c", "@config", "--redis", "@redis", "@streams"}, {0},
     TEXT("[" THREE_OK "{\"id\": 4, \"url\": \"file:///etc/passwd\", \"m3u_account\": 1}]"),
     NULL, {"@streams", "[3].url (stream 4)", "\"file\""}},
    {"submit_wait_url_dash", {"submit", "--wait", "-c", "@config", "--redis", "@redis", "@streams"},
     {0}, TEXT("[{\"id\": 5, \"url\": \"-\"}]"), NULL, {"@streams", "[0].url (stream 5)"}},
    {"submit_url_pipe_0", {"submit", "-c", "@config", "--redis", "@redis", "@streams"}, {0},
     TEXT("[{\"id\": 6, \"url\": \"pipe:0\"}]"), NULL, {"@streams", "[0].url (stream 6)"}},
    {"submit_url_file_upper_case", {"submit", "-c", "@config", "--redis", "@redis", "@streams"},
     {0}, TEXT("[{\"id\": 7, \"url\": \"FILE:///x\"}]"), NULL,
     {"@streams", "[0].url (stream 7)", "\"FILE\""}},
    {"streams_account_string", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\", \"m3u_account\": \"x\"}]"), NULL,
     {"@streams", "[0].m3u_account", "\"x\""}},
    {"streams_account_negative", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\", \"m3u_account\": -5}]"), NULL,
     {"@streams", "[0].m3u_account", "-5"}},
    {"streams_account_1e30", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\", \"m3u_account\": 1e30}]"), NULL,
     {"@streams", "[0].m3u_account"}},
    {"streams_account_fraction", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\", \"m3u_account\": 1.5}]"), NULL,
     {"@streams", "[0].m3u_account", "1.5"}},
    {"streams_account_object", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\", \"m3u_account\": {\"id\": 1}}]"),
     NULL, {"@streams", "[0].m3u_account", "object"}},
    {"streams_name_number_in_wrapper", {CHECK}, {0},
     TEXT("{\"streams\": [" THREE_OK "{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\", "
          "\"name\": 7}]}"),
     NULL, {"@streams", "streams[3].name", "7"}},
    {"streams_priority_huge", {CHECK}, {0},
     TEXT("[{\"id\": 4, \"url\": \"http://127.0.0.1:1/4.ts\", \"priority\": 1e10}]"), NULL,
     {"@streams", "[0].priority"}},
    {"streams_element_not_object", {CHECK}, {0}, TEXT("[" THREE_OK "\"x\"]"), NULL,
     {"@streams", "[3]", "object"}},
    {"streams_element_null", {CHECK}, {0}, TEXT("[null]"), NULL,
     {"@streams", "[0]", "null"}},
    {"streams_not_an_array", {CHECK}, {0}, TEXT("{\"streams\": 5}"), NULL,
     {"@streams", "streams", "array"}},
    {"streams_null_array", {CHECK}, {0}, TEXT("{\"streams\": null}"), NULL,
     {"@streams", "streams", "null"}},
    {"streams_object_of_wrong_shape", {CHECK}, {0},
     TEXT("{\"items\": [{\"id\": 1, \"url\": \"http://127.0.0.1:1/1.ts\"}]}"), NULL,
     {"@streams", "\"streams\""}},
    {"streams_top_level_number", {CHECK}, {0}, TEXT("42"), NULL,
     {"@streams", "(top level)", "42"}},
    {"streams_stdin_empty", {"check", "-c", "@config", "--redis", "@redis", "-"}, {0}, {0}, NULL,
     {"(stdin)", "empty"}},
    {"streams_is_a_directory", {"check", "-c", "@config", "--redis", "@redis", "@dir"}, {0}, {0},
     NULL, {"@dir", "directory"}},
    {"streams_nonexistent", {"check", "-c", "@config", "--redis", "@redis", "@missing"}, {0}, {0},
     NULL, {"@missing", "No such file"}},
    {"submit_garbage", {"submit", "-c", "@config", "--redis", "@redis", "@streams"}, {0},
     GARBAGE(8192, 5), NULL, {"@streams", "not valid JSON"}},
    {"submit_wait_id_null", {"submit", "--wait", "-c", "@config", "--redis", "@redis", "@streams"},
     {0}, TEXT("[{\"id\": null, \"url\": \"http://127.0.0.1:1/1.ts\"}]"), NULL,
     {"@streams", "[0].id"}},
    {"submit_deep_nesting", {"submit", "-c", "@config", "--redis", "@redis", "@streams"}, {0},
     DEEP("", 50000, ""), NULL, {"@streams", "nest"}},
    {"submit_nonexistent", {"submit", "-c", "@config", "--redis", "@redis", "@missing"}, {0}, {0},
     NULL, {"@missing", "No such file"}},

    /*--- Command lines ---*/
    {"cli_no_command", {NULL}, {0}, {0}, NULL, {"usage"}},
    {"cli_unknown_command", {"frobnicate"}, {0}, {0}, NULL, {"'frobnicate'"}},
    {"cli_unknown_option", {"check", "-c", "@config", "--redis", "@redis", "--bogus", "@streams"},
     {0}, {0}, NULL, {"--bogus"}},
    {"cli_missing_option_argument", {"check", "--redis", "@redis", "@streams", "-c"}, {0}, {0},
     NULL, {"requires an argument", "'c'"}},
    {"cli_log_level_bad", {"--log-level", "loud", "status", "-c", "@config", "--redis", "@redis"},
     {0}, {0}, NULL, {"--log-level", "'loud'"}},
    {"cli_log_format_bad", {"status", "--log-format", "xml", "-c", "@config", "--redis", "@redis"},
     {0}, {0}, NULL, {"--log-format", "'xml'"}},
    {"cli_redis_not_a_url", {"check", "-c", "@config", "--redis", "notaurl", "@streams"}, {0}, {0},
     NULL, {"--redis"}},
    {"cli_redis_port_out_of_range",
     {"exec", "-c", "@config", "--redis", "redis://host:99999", "-a", "1", "--", "true"}, {0},
     {0}, NULL, {"--redis", "99999"}},
    {"cli_redis_unknown_scheme",
     {"status", "-c", "@config", "--redis", "http://127.0.0.1:6379"}, {0}, {0}, NULL,
     {"--redis", "http"}},
    {"exec_account_not_a_number",
     {"exec", "-c", "@config", "--redis", "@redis", "-a", "abc", "--", "true"}, {0}, {0}, NULL,
     {"-a", "'abc'"}},
    {"exec_account_huge",
     {"exec", "-c", "@config", "--redis", "@redis", "-a", "99999999999999999999", "--", "true"},
     {0}, {0}, NULL, {"-a", "99999999999999999999"}},
    {"exec_account_negative",
     {"exec", "-c", "@config", "--redis", "@redis", "-a", "-1", "--", "true"}, {0}, {0}, NULL,
     {"-a", "'-1'"}},
    {"exec_account_missing", {"exec", "-c", "@config", "--redis", "@redis", "--", "true"}, {0},
     {0}, NULL, {"-a ACCOUNT"}},
    {"exec_without_command", {"exec", "-c", "@config", "--redis", "@redis", "-a", "1"}, {0}, {0},
     NULL, {"no command"}},
    {"exec_timeout_not_a_number",
     {"exec", "-c", "@config", "--redis", "@redis", "-a", "1", "--timeout", "abc", "--", "true"},
     {0}, {0}, NULL, {"--timeout", "'abc'"}},
    {"exec_timeout_negative",
     {"exec", "-c", "@config", "--redis", "@redis", "-a", "1", "--timeout", "-1", "--", "true"},
     {0}, {0}, NULL, {"--timeout", "'-1'"}},
    {"exec_timeout_1e400",
     {"exec", "-c", "@config", "--redis", "@redis", "-a", "1", "--timeout", "1e400", "--", "true"},
     {0}, {0}, NULL, {"--timeout", "1e400"}},
    {"accounts_set_negative_max",
     {"accounts", "set", "1", "-5", "-c", "@config", "--redis", "@redis"}, {0}, {0}, NULL,
     {"MAX", "-5"}},
    {"accounts_set_id_not_a_number",
     {"accounts", "set", "x", "2", "-c", "@config", "--redis", "@redis"}, {0}, {0}, NULL,
     {"ID", "'x'"}},
    {"accounts_set_max_fraction",
     {"accounts", "set", "1", "2.5", "-c", "@config", "--redis", "@redis"}, {0}, {0}, NULL,
     {"MAX", "'2.5'"}},
    {"accounts_set_max_huge",
     {"accounts", "set", "1", "99999999999999999999", "-c", "@config", "--redis", "@redis"}, {0},
     {0}, NULL, {"MAX", "99999999999999999999"}},
    {"accounts_set_max_missing", {"accounts", "set", "1", "-c", "@config", "--redis", "@redis"},
     {0}, {0}, NULL, {"ID and MAX"}},
    {"accounts_set_name_missing_argument",
     {"accounts", "set", "1", "2", "-c", "@config", "--redis", "@redis", "--name"}, {0}, {0}, NULL,
     {"requires an argument", "name"}},
    {"accounts_set_name_escape",
     {"accounts", "set", "1", "2", "--name", "\033[31mred", "-c", "@config", "--redis", "@redis"},
     {0}, {0}, NULL, {"--name", "control character (U+001B at byte 0)"}},
    {"accounts_set_name_bell",
     {"accounts", "set", "1", "2", "--name", "ding\a", "-c", "@config", "--redis", "@redis"}, {0},
     {0}, NULL, {"--name", "U+0007"}},
    {"accounts_set_name_crlf",
     {"accounts", "set", "1", "2", "--name", "a\r\nb", "-c", "@config", "--redis", "@redis"}, {0},
     {0}, NULL, {"--name", "U+000D"}},
    {"accounts_set_name_not_utf8",
     {"accounts", "set", "1", "2", "--name", "x\xff\xfe", "-c", "@config", "--redis", "@redis"},
     {0}, {0}, NULL, {"--name", "not valid UTF-8"}},
    {"accounts_unknown_verb", {"accounts", "bogus", "-c", "@config", "--redis", "@redis"}, {0},
     {0}, NULL, {"'bogus'"}},
    {"check_config_nonexistent_absolute",
     {"check", "-c", "/nonexistent", "--redis", "@redis", "@streams"}, {0}, {0}, NULL,
     {"/nonexistent", "No such file"}},
    {"check_two_stream_files",
     {"check", "-c", "@config", "--redis", "@redis", "@streams", "@streams"}, {0}, {0}, NULL,
     {"one streams file"}},
    {"check_output_unwritable",
     {"check", "-c", "@config", "--redis", "@redis", "-o", "@missing/out.jsonl", "@streams"}, {0},
     {0}, NULL, {"-o", "@missing/out.jsonl"}},
    {"status_unknown_option", {"status", "--bogus", "-c", "@config", "--redis", "@redis"}, {0},
     {0}, NULL, {"--bogus"}},
    {"status_extra_argument", {"status", "extra", "-c", "@config", "--redis", "@redis"}, {0}, {0},
     NULL, {"'extra'"}},
    {"submit_no_file", {"submit", "-c", "@config", "--redis", "@redis"}, {0}, {0}, NULL,
     {"streams file"}},
    {"node_public_listen_without_token",
     {"node", "-c", "@config", "--redis", "@redis", "--listen", "0.0.0.0:1"}, {0}, {0}, NULL,
     {"0.0.0.0:1", "token"}},
    {"node_listen_not_host_port",
     {"node", "-c", "@config", "--redis", "@redis", "--listen", "nonsense"}, {0}, {0}, NULL,
     {"--listen", "\"nonsense\""}},
    {"node_listen_port_too_big",
     {"node", "-c", "@config", "--redis", "@redis", "--listen", "127.0.0.1:99999"}, {0}, {0}, NULL,
     {"--listen", "99999"}},
    {"node_extra_argument", {"node", "-c", "@config", "--redis", "@redis", "extra"}, {0}, {0},
     NULL, {"'extra'"}},

    /*--- The environment ---*/
    {"env_node_id_bad", {CHECK}, {0}, {0}, "SFL_NODE_ID=bad id!",
     {"SFL_NODE_ID", "\"bad id!\""}},
    {"env_redis_url_bad", {"check", "-c", "@config", "@streams"}, {0}, {0},
     "SFL_REDIS_URL=bogus", {"SFL_REDIS_URL"}},
    {"env_config_nonexistent", {"check", "--redis", "@redis", "@streams"}, {0}, {0},
     "SFL_CONFIG=@missing", {"@missing", "No such file"}},
    {"env_public_listen_without_token", {"node", "-c", "@config", "--redis", "@redis"}, {0}, {0},
     "SFL_HTTP_LISTEN=0.0.0.0:1", {"0.0.0.0:1", "SFL_HTTP_TOKEN"}},
    {"env_public_listen_empty_token",
     {"node", "-c", "@config", "--redis", "@redis", "--listen", "0.0.0.0:1"}, {0}, {0},
     "SFL_HTTP_TOKEN=", {"0.0.0.0:1", "SFL_HTTP_TOKEN is empty"}},
};
/* clang-format on */

/*--- Running one case ------------------------------------------------------*/

/* s with the @ words replaced; the caller frees. */
static char *expand(const char *s, const paths *p)
{
    static const char *const words[] = {"@config", "@streams", "@redis", "@dir", "@missing"};
    const char *vals[] = {p->config, p->streams, redis.url, dir, p->missing};
    size_t cap = strlen(s) + 1;
    for (size_t w = 0; w < 5; w++)
        for (const char *q = s; (q = strstr(q, words[w])) != NULL; q += strlen(words[w]))
            cap += strlen(vals[w]);
    char *out = malloc(cap);
    cr_assert_not_null(out);
    size_t n = 0;
    while (*s) {
        size_t w = 0;
        for (; w < 5; w++)
            if (strncmp(s, words[w], strlen(words[w])) == 0)
                break;
        if (w < 5) {
            memcpy(out + n, vals[w], strlen(vals[w]));
            n += strlen(vals[w]);
            s += strlen(words[w]);
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
    return out;
}

/* Every key with its type, value (DUMP) and whether it has a TTL, sorted by
 * key, then Redis's own count of writes. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *snapshot(void)
{
    redisReply *keys = th_redis(&redis, "KEYS *");
    cr_assert_eq(keys->type, REDIS_REPLY_ARRAY);
    size_t nk = keys->elements;
    char **names = calloc(nk + 1, sizeof(char *));
    cr_assert_not_null(names);
    for (size_t i = 0; i < nk; i++)
        names[i] = strdup(keys->element[i]->str);
    freeReplyObject(keys);
    qsort(names, nk, sizeof(char *), cmp_str);

    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < nk; i++) {
        redisReply *type = th_redis(&redis, "TYPE %s", names[i]);
        redisReply *dump = th_redis(&redis, "DUMP %s", names[i]);
        long long pttl = th_redis_int(&redis, "PTTL %s", names[i]);
        size_t dl = dump->type == REDIS_REPLY_STRING ? dump->len : 0;
        size_t need = strlen(names[i]) + 64 + 2 * dl;
        while (n + need >= cap) {
            cap *= 2;
            out = realloc(out, cap);
            cr_assert_not_null(out);
        }
        n += (size_t)sprintf(out + n, "%s %s ttl=%s ", names[i],
                             type->type == REDIS_REPLY_STATUS ? type->str : "?",
                             pttl >= 0 ? "yes" : "no");
        for (size_t k = 0; k < dl; k++)
            n += (size_t)sprintf(out + n, "%02x", (unsigned char)dump->str[k]);
        out[n++] = '\n';
        out[n] = '\0';
        freeReplyObject(type);
        freeReplyObject(dump);
        free(names[i]);
    }
    free(names);
    redisReply *info = th_redis(&redis, "INFO persistence");
    const char *dirty = info->str ? strstr(info->str, "rdb_changes_since_last_save:") : NULL;
    cr_assert_not_null(dirty, "INFO persistence has no rdb_changes_since_last_save");
    long long writes = strtoll(dirty + strlen("rdb_changes_since_last_save:"), NULL, 10);
    freeReplyObject(info);
    if (n + 64 >= cap)
        out = realloc(out, cap + 64);
    sprintf(out + n, "writes=%lld\n", writes);
    return out;
}

/* Which keys a run added, changed or removed, and the write counts: the
 * readable part of two snapshots. The caller frees. */
static int has_line(const char *snap, const char *line, size_t n)
{
    for (const char *q = snap; *q;) {
        const char *e = strchr(q, '\n');
        size_t m = e ? (size_t)(e - q) : strlen(q);
        if (m == n && memcmp(q, line, n) == 0)
            return 1;
        q += m + (e ? 1 : 0);
    }
    return 0;
}

static int has_key(const char *snap, const char *key, size_t n)
{
    for (const char *q = snap; *q;) {
        if (strncmp(q, key, n) == 0 && q[n] == ' ')
            return 1;
        const char *e = strchr(q, '\n');
        if (!e)
            break;
        q = e + 1;
    }
    return 0;
}

static void diff_side(const char *from, const char *to, const char *added, const char *changed,
                      char *out, size_t cap, size_t *n)
{
    for (const char *q = from; *q && *n + 200 < cap;) {
        const char *e = strchr(q, '\n');
        size_t m = e ? (size_t)(e - q) : strlen(q);
        size_t kn = strcspn(q, " \n");
        if (!has_line(to, q, m)) {
            int known = has_key(to, q, kn);
            if (strncmp(q, "writes=", 7) == 0)
                *n += (size_t)snprintf(out + *n, cap - *n, "  %s %.*s\n", added, (int)m, q);
            else if (!known || changed)
                *n += (size_t)snprintf(out + *n, cap - *n, "  %s %.*s\n", known ? changed : added,
                                       (int)(kn > 120 ? 120 : kn), q);
        }
        q += m + (e ? 1 : 0);
    }
}

static char *snapshot_diff(const char *before, const char *after)
{
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    out[0] = '\0';
    diff_side(after, before, "new/now:", "changed:", out, cap, &n);
    diff_side(before, after, "gone/was:", NULL, out, cap, &n);
    return out;
}

/* The first 1500 characters of a text, for messages. */
static const char *clip(const char *s, char *buf, size_t len)
{
    if (!s)
        return "(nothing)";
    snprintf(buf, len, "%.1500s%s", s, strlen(s) > 1500 ? "..." : "");
    return buf;
}

/* One alternative list "a|b|c": 1 if text holds any of them. */
static int holds_any(const char *text, const char *alts)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", alts);
    char *save = NULL;
    for (char *a = strtok_r(buf, "|", &save); a; a = strtok_r(NULL, "|", &save))
        if (strstr(text, a))
            return 1;
    return 0;
}

static const char good_streams[] =
    "[{\"id\": 1, \"name\": \"A\", \"url\": \"http://127.0.0.1:1/live/u/p/1.ts\", "
    "\"m3u_account\": 1},\n"
    " {\"id\": 2, \"name\": \"B\", \"url\": \"http://127.0.0.1:1/2.ts\", \"m3u_account\": 7},\n"
    " {\"id\": 3, \"name\": \"C\", \"url\": \"http://127.0.0.1:1/3.ts\", \"m3u_account\": null}]\n";

ParameterizedTestParameters(input, refused)
{
    static size_t rows[sizeof(cases) / sizeof(cases[0])];
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
        rows[r] = r;
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]));
}

/* The test's files, a Redis with history (limits a refused start must not
 * overwrite: the valid config says other numbers for the same accounts),
 * and the valid config's text. */
static void prepare(paths *p, char *good_config, size_t len)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->config, sizeof(p->config), "%s/sflimit.json", dir);
    snprintf(p->streams, sizeof(p->streams), "%s/streams.json", dir);
    snprintf(p->missing, sizeof(p->missing), "%s/missing", dir);
    snprintf(p->out, sizeof(p->out), "%s/stdout", dir);
    snprintf(p->err, sizeof(p->err), "%s/stderr", dir);
    snprintf(p->ran, sizeof(p->ran), "%s/check-ran", dir);
    files = *p;

    th_account(&redis, 1, 2);
    th_account(&redis, 7, 3);
    freeReplyObject(th_redis(&redis, "SET canary alive"));

    snprintf(good_config, len,
             "{\"node_id\": \"t-input\",\n"
             " \"redis\": {\"url\": \"%s\"},\n"
             " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500,"
             " \"acquire_timeout\": 2},\n"
             " \"accounts\": [{\"id\": 1, \"max_streams\": 5}, {\"id\": 7, \"max_streams\": 9}],\n"
             " \"check\": {\"command\": [\"sh\", \"-c\", \"echo ran >> %s\"], \"parser\": \"none\","
             " \"timeout\": 5},\n"
             " \"http\": {\"listen\": \"127.0.0.1:0\"}}\n",
             redis.url, p->ran);
}

/* The control: the valid config and streams the rows start from are
 * taken, checked and written to Redis, so each row's refusal comes from
 * its one hostile part and the snapshot does see writes. */
Test(input, valid_inputs_are_taken)
{
    paths p;
    char good_config[1024];
    prepare(&p, good_config, sizeof(good_config));
    const content none = {0};
    write_content(p.config, &none, good_config);
    write_content(p.streams, &none, good_streams);
    char *before = snapshot();
    const char *argv[] = {SFL_BIN, "check", "-c", p.config, p.streams, NULL};
    child = th_spawn((char *const *)argv, p.out, p.err);
    int st = th_wait(child, 20000);
    char *err = th_read_file(p.err);
    char buf[1600];
    cr_assert_neq(st, -1, "the valid batch did not end within 20 s; stderr:\n%s",
                  clip(err, buf, sizeof(buf)));
    child = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the valid batch exited %d; stderr:\n%s",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, clip(err, buf, sizeof(buf)));
    char *out = th_read_file(p.out);
    int lines = 0;
    for (const char *q = out ? out : ""; (q = strchr(q, '\n')) != NULL; q++)
        lines++;
    cr_expect_eq(lines, 3, "%d result lines for 3 streams:\n%s", lines,
                 clip(out, buf, sizeof(buf)));
    char *ran = th_read_file(p.ran);
    int runs = 0;
    for (const char *q = ran ? ran : ""; (q = strchr(q, '\n')) != NULL; q++)
        runs++;
    cr_expect_eq(runs, 3, "the check command ran %d times for 3 streams", runs);
    free(ran);
    char *after = snapshot();
    cr_expect_str_neq(after, before, "a batch that ran left no trace in Redis");
    cr_expect_eq(th_redis_int(&redis, "HGET sfl:{a:1}:conf max_streams"), 5,
                 "the config's limit of account 1 was not written");
    free(before);
    free(after);
    free(err);
    free(out);
}

ParameterizedTest(size_t *row, input, refused)
{
    const input_case *c = &cases[*row];
    paths p;
    char good_config[1024];
    prepare(&p, good_config, sizeof(good_config));
    write_content(p.config, &c->config, good_config);
    write_content(p.streams, &c->streams, good_streams);

    const char *argv[20] = {SFL_BIN};
    char *owned[20] = {0};
    int k = 1;
    for (int i = 0; c->argv[i]; i++, k++)
        argv[k] = owned[k] = expand(c->argv[i], &p);
    argv[k] = NULL;

    char *env = c->env ? expand(c->env, &p) : NULL;
    char *eq = env ? strchr(env, '=') : NULL;
    if (eq) {
        *eq = '\0';
        setenv(env, eq + 1, 1);
    }

    char *before = snapshot();
    int64_t t0 = th_now_ms();
    child = th_spawn((char *const *)argv, p.out, p.err);
    int st = th_wait(child, 20000);
    int64_t took = th_now_ms() - t0;
    if (eq)
        unsetenv(env);
    char *err = th_read_file(p.err);
    char *out = th_read_file(p.out);
    char buf[1600];
    if (st == -1) {
        kill(-child, SIGKILL);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = 0;
        cr_assert_fail("[%s] still running after 20 s (killed); stderr:\n%s", c->name,
                       clip(err, buf, sizeof(buf)));
    }
    child = 0;

    if (WIFSIGNALED(st))
        cr_expect_fail("[%s] died of signal %d%s; stderr:\n%s", c->name, WTERMSIG(st),
                       WCOREDUMP(st) ? " (core dumped)" : "", clip(err, buf, sizeof(buf)));
    int refused = WIFEXITED(st) && WEXITSTATUS(st) == 2;
    cr_expect(refused || WIFSIGNALED(st), "[%s] exit %d, expected 2 (after %lld ms); stderr:\n%s",
              c->name, WIFEXITED(st) ? WEXITSTATUS(st) : -1, (long long)took,
              clip(err, buf, sizeof(buf)));
    /* What the message must say only matters once the input was refused. */
    if (refused) {
        cr_expect(err && *err, "[%s] nothing on stderr", c->name);
        for (int i = 0; c->expect[i]; i++) {
            char *want = expand(c->expect[i], &p);
            cr_expect(err && holds_any(err, want), "[%s] stderr does not name '%s':\n%s", c->name,
                      want, clip(err, buf, sizeof(buf)));
            free(want);
        }
    }
    cr_expect(!err || strlen(err) < 16384, "[%s] %zu bytes on stderr (the input echoed?)", c->name,
              err ? strlen(err) : 0);
    cr_expect(!out || !*out, "[%s] stdout of refused input:\n%s", c->name,
              clip(out, buf, sizeof(buf)));
    cr_expect(access(p.ran, F_OK) != 0, "[%s] the check command ran", c->name);

    char *after = snapshot();
    if (strcmp(after, before) != 0) {
        char *d = snapshot_diff(before, after);
        cr_expect_fail("[%s] Redis changed:\n%s", c->name, d);
        free(d);
    }

    free(before);
    free(after);
    free(err);
    free(out);
    free(env);
    for (int i = 0; i < 20; i++)
        free(owned[i]);
}
