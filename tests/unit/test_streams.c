/* test_streams.c - the stream list parser: good inputs come out field for
 * field, bad ones are refused naming the element and the field. */
#include "streams.h"

#include "check.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(streams);

/* Criterion passes a parameter to the test's process as bytes: pointers in
 * it would dangle there, so pass the row index and read the static table. */
#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

/* "id|name|url|account|priority" per stream, ";" between streams. */
static void render(const sfl_streams *ss, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ss->n && o < len; i++) {
        const sfl_stream *s = &ss->v[i];
        o += snprintf(buf + o, len - o, "%s%lld|%s|%s|%lld|%d", i ? ";" : "", s->id,
                      s->name ? s->name : "(null)", s->url, s->account, s->priority);
    }
}

/*--- Good inputs ---*/

struct good_case {
    const char *json;
    const char *want;
};

static const struct good_case good_cases[] = {
    {"[]", ""},
    {"{\"streams\": []}", ""},
    {" [ ] \n", ""},
    {"[{\"id\": 101, \"name\": \"A1\", \"url\": \"http://p/1\", \"m3u_account\": 1}]",
     "101|A1|http://p/1|1|0"},
    /* Custom streams: m3u_account null or missing, never limited. */
    {"[{\"id\": 1, \"url\": \"u1\", \"m3u_account\": null}, {\"id\": 2, \"url\": \"u2\"}]",
     "1|(null)|u1|-1|0;2|(null)|u2|-1|0"},
    {"[{\"id\": 5, \"url\": \"u\", \"m3u_account\": 0, \"priority\": 7, \"name\": null}]",
     "5|(null)|u|0|7"},
    {"[{\"id\": 5, \"url\": \"u\", \"priority\": -3}, {\"id\": 6, \"url\": \"v\", "
     "\"priority\": null}]",
     "5|(null)|u|-1|-3;6|(null)|v|-1|0"},
    /* StreamFlow's extra fields are ignored, as are other wrapper keys. */
    {"{\"count\": 2, \"next\": null, \"streams\": [{\"id\": 9, \"url\": \"rtmp://x\", "
     "\"logo_url\": \"l\", \"stream_stats\": {\"resolution\": \"1920x1080\"}, "
     "\"channel_group\": 3, \"is_custom\": false, \"m3u_account\": 12}]}",
     "9|(null)|rtmp://x|12|0"},
    /* Integral numbers written with a fraction or exponent are integers. */
    {"[{\"id\": 101.0, \"url\": \"u\", \"m3u_account\": 2e0}]", "101|(null)|u|2|0"},
    {"[{\"id\": 0, \"url\": \"u\"}, {\"id\": -4, \"url\": \"v\"}]",
     "0|(null)|u|-1|0;-4|(null)|v|-1|0"},
    {"[{\"id\": 9007199254740991, \"url\": \"u\", \"m3u_account\": 9007199254740991, "
     "\"priority\": 2147483647}]",
     "9007199254740991|(null)|u|9007199254740991|2147483647"},
    {"[{\"id\": 1, \"url\": \"http://h/\\u00e9\", \"name\": \"Caf\\u00e9 \\\"HD\\\"\"}]",
     "1|Caf\xc3\xa9 \"HD\"|http://h/\xc3\xa9|-1|0"},
};

ParameterizedTestParameters(streams, good)
{
    INDEX_PARAMS(good_cases);
}

ParameterizedTest(size_t *i, streams, good)
{
    const struct good_case *gc = &good_cases[*i];
    char err[512] = "", got[1024];
    sfl_streams *ss =
        sfl_streams_parse(gc->json, strlen(gc->json), "streams.json", err, sizeof(err));
    cr_assert_not_null(ss, "refused %s: %s", gc->json, err);
    render(ss, got, sizeof(got));
    cr_expect_str_eq(got, gc->want, "for %s", gc->json);
    sfl_streams_free(ss);
}

/*--- Bad inputs: "streams.json: <path>: <what>" ---*/

struct bad_case {
    const char *json;
    const char *path; /* NULL: the message is "streams.json: <what>" */
    const char *what;
};

static const struct bad_case bad_cases[] = {
    {"", NULL, "not valid JSON"},
    {"[{\"id\": 1,]", NULL, "not valid JSON near line 1"},
    {"[] []", NULL, "not valid JSON: unexpected text after the value"},
    {"\"streams\"", NULL, "(top level): expected an array of streams"},
    {"{\"stream\": []}", NULL, "(top level): an object needs a \"streams\" array"},
    {"{\"streams\": {}}", NULL, "streams: expected an array, got an object"},
    {"[1]", "[0]", "expected an object, got 1"},
    {"[{\"url\": \"u\"}]", "[0].id", "missing"},
    {"[{\"id\": 1}]", "[0].url", "missing"},
    {"[{\"id\": 1, \"url\": \"u\"}, {\"id\": \"2\", \"url\": \"u\"}]", "[1].id",
     "expected an integer, got \"2\""},
    {"[{\"id\": 1.5, \"url\": \"u\"}]", "[0].id", "expected an integer, got 1.5"},
    {"[{\"id\": 1e300, \"url\": \"u\"}]", "[0].id", "expected an integer"},
    {"[{\"id\": 9007199254740993, \"url\": \"u\"}]", "[0].id", "expected an integer"},
    /* Beyond 2^53-1 a JSON number no longer carries every integer: refused, saying so. */
    {"[{\"id\": 9007199254740992, \"url\": \"u\"}]", "[0].id",
     "expected an integer from -9007199254740991 to 9007199254740991, got one beyond 2^53-1, "
     "the largest a JSON number carries exactly"},
    {"[{\"id\": -9007199254740992, \"url\": \"u\"}]", "[0].id",
     "expected an integer from -9007199254740991 to 9007199254740991"},
    {"[{\"id\": 1, \"url\": \"u\", \"m3u_account\": 18014398509481984}]", "[0].m3u_account",
     "expected an integer from 0 to 9007199254740991 or null, got one beyond 2^53-1"},
    {"[{\"id\": null, \"url\": \"u\"}]", "[0].id", "expected an integer, got null"},
    {"[{\"id\": 1, \"id\": 2, \"url\": \"u\"}]", "[0].id", "given twice"},
    {"[{\"id\": 1, \"url\": \"\"}]", "[0].url", "must not be empty"},
    {"[{\"id\": 1, \"url\": 5}]", "[0].url", "expected a non-empty string, got 5"},
    {"[{\"id\": 1, \"url\": null}]", "[0].url", "expected a non-empty string, got null"},
    {"[{\"id\": 1, \"url\": \"http://a\\nb\"}]", "[0].url", "contains a control character"},
    {"[{\"id\": 1, \"url\": \"u\", \"m3u_account\": \"1\"}]", "[0].m3u_account",
     "expected an integer >= 0 or null, got \"1\""},
    {"[{\"id\": 1, \"url\": \"u\", \"m3u_account\": 1.5}]", "[0].m3u_account",
     "expected an integer >= 0 or null, got 1.5"},
    {"[{\"id\": 1, \"url\": \"u\", \"m3u_account\": -1}]", "[0].m3u_account",
     "expected an integer >= 0 or null, got -1"},
    {"[{\"id\": 1, \"url\": \"u\", \"m3u_account\": {}}]", "[0].m3u_account",
     "expected an integer >= 0 or null, got an object"},
    {"[{\"id\": 1, \"url\": \"u\", \"priority\": \"high\"}]", "[0].priority",
     "expected an integer, got \"high\""},
    {"[{\"id\": 1, \"url\": \"u\", \"priority\": 1e10}]", "[0].priority", "expected an integer"},
    {"[{\"id\": 1, \"url\": \"u\", \"priority\": 0.5}]", "[0].priority", "expected an integer"},
    {"[{\"id\": 1, \"url\": \"u\", \"name\": 5}]", "[0].name", "expected a string or null, got 5"},
    {"[{\"id\": 101, \"url\": \"a\"}, {\"id\": 102, \"url\": \"b\"}, {\"id\": 103, \"url\": "
     "\"c\"}, {\"id\": 101, \"url\": \"d\"}]",
     "[3].id", "duplicate id 101 (also at [0])"},
    /* The earliest repeat is reported, whatever the ids' order. */
    {"[{\"id\": 9, \"url\": \"a\"}, {\"id\": 2, \"url\": \"b\"}, {\"id\": 2, \"url\": \"c\"}, "
     "{\"id\": 9, \"url\": \"d\"}]",
     "[2].id", "duplicate id 2 (also at [1])"},
    {"[{\"id\": 3, \"url\": \"a\"}, {\"id\": 3, \"url\": \"b\"}, {\"id\": 3, \"url\": \"c\"}]",
     "[1].id", "duplicate id 3 (also at [0])"},
    {"{\"streams\": [{\"id\": 1, \"url\": \"a\"}, {\"id\": 7, \"url\": \"b\"}, {\"id\": 7, "
     "\"url\": \"c\"}]}",
     "streams[2].id", "duplicate id 7 (also at streams[1])"},
    {"{\"streams\": [{\"id\": 1, \"url\": \"a\"}, {\"id\": 2}]}", "streams[1].url", "missing"},
    /* The first problem in the text is the one reported. */
    {"[{\"id\": 1, \"url\": \"a\"}, {\"id\": 1, \"url\": \"b\"}, {\"id\": 2, \"url\": 3}]",
     "[1].id", "duplicate id 1 (also at [0])"},
    {"[{\"id\": 1, \"url\": \"a\"}, {\"id\": 2, \"url\": 3}, {\"id\": 1, \"url\": \"b\"}]",
     "[1].url", "expected a non-empty string"},
};

ParameterizedTestParameters(streams, bad)
{
    INDEX_PARAMS(bad_cases);
}

ParameterizedTest(size_t *i, streams, bad)
{
    const struct bad_case *bc = &bad_cases[*i];
    char err[512] = "", want[600];
    sfl_streams *ss =
        sfl_streams_parse(bc->json, strlen(bc->json), "streams.json", err, sizeof(err));
    cr_assert_null(ss, "accepted %s", bc->json);
    if (bc->path)
        snprintf(want, sizeof(want), "streams.json: %s: %s", bc->path, bc->what);
    else
        snprintf(want, sizeof(want), "streams.json: %s", bc->what);
    cr_expect_eq(strncmp(err, want, strlen(want)), 0, "for %s: message \"%s\", want \"%s...\"",
                 bc->json, err, want);
}

Test(streams, error_never_shows_url)
{
    const char *json = "[{\"id\": 1, \"url\": \"http://user:hunter2@p/1\", \"m3u_account\": "
                       "\"x\"}]";
    char err[512] = "";
    cr_assert_null(sfl_streams_parse(json, strlen(json), "s.json", err, sizeof(err)));
    cr_expect_null(strstr(err, "hunter2"), "%s", err);
}

Test(streams, many_streams)
{
    /* 5000 streams: ids in descending order, all
     * distinct; input order is kept. */
    size_t n = 5000, cap = n * 64 + 16, o = 0;
    char *json = malloc(cap);
    cr_assert_not_null(json);
    o += snprintf(json + o, cap - o, "[");
    for (size_t i = 0; i < n; i++)
        o += snprintf(json + o, cap - o, "%s{\"id\": %zu, \"url\": \"u%zu\", \"m3u_account\": %zu}",
                      i ? "," : "", n - i, i, i % 3);
    o += snprintf(json + o, cap - o, "]");
    char err[256] = "";
    sfl_streams *ss = sfl_streams_parse(json, o, "big.json", err, sizeof(err));
    cr_assert_not_null(ss, "%s", err);
    cr_assert_eq(ss->n, n);
    cr_expect_eq(ss->v[0].id, (long long)n);
    cr_expect_eq(ss->v[n - 1].id, 1);
    cr_expect_eq(ss->v[4].account, 1);
    sfl_streams_free(ss);
    sfl_streams_free(NULL);
    free(json);
}

/*--- What a check may open ---*/

static char *const default_schemes[] = {"http", "https", "rtmp", "rtsp", "udp", "rtp", "srt"};
#define NDEFAULT (sizeof(default_schemes) / sizeof(default_schemes[0]))
#define DEFAULT_LIST "(check.schemes: http, https, rtmp, rtsp, udp, rtp, srt)"

struct url_case {
    const char *url;
    const char *why; /* NULL: allowed */
};

static const struct url_case url_cases[] = {
    {"http://p/live/u/p/1.ts", NULL},
    {"HTTPS://p/1.m3u8", NULL},
    {"Rtmp://p/live/x", NULL},
    {"rtsp://cam/1", NULL},
    {"udp://@239.0.0.1:1234", NULL},
    {"rtp://239.0.0.1:5004", NULL},
    {"srt://p:9000?mode=caller", NULL},
    {"file:///etc/passwd", "scheme \"file\" is not allowed " DEFAULT_LIST},
    {"FILE:///x", "scheme \"FILE\" is not allowed " DEFAULT_LIST},
    {"-", "has no scheme:// in front " DEFAULT_LIST},
    {"pipe:0", "has no scheme:// in front " DEFAULT_LIST},
    {"/etc/passwd", "has no scheme:// in front " DEFAULT_LIST},
    {"http:/p/1.ts", "has no scheme:// in front " DEFAULT_LIST},
    {"concat:http://p/1.ts|file:///etc/passwd", "has no scheme:// in front " DEFAULT_LIST},
    {"subfile,,start,0,end,0,,:http://p/1", "has no scheme:// in front " DEFAULT_LIST},
    {"crypto+http://p/1.ts", "scheme \"crypto+http\" is not allowed " DEFAULT_LIST},
    {"httpproxy://p/1", "scheme \"httpproxy\" is not allowed " DEFAULT_LIST},
    {" http://p/1", "has no scheme:// in front " DEFAULT_LIST},
    {"a23456789012345678901234567890123://x",
     "has a scheme longer than 32 characters " DEFAULT_LIST},
};

ParameterizedTestParameters(streams, url_allowed)
{
    INDEX_PARAMS(url_cases);
}

ParameterizedTest(size_t *i, streams, url_allowed)
{
    const struct url_case *uc = &url_cases[*i];
    char why[400] = "";
    int rc = sfl_url_allowed(uc->url, default_schemes, NDEFAULT, why, sizeof(why));
    if (uc->why) {
        cr_assert_eq(rc, -1, "%s allowed", uc->url);
        cr_assert_str_eq(why, uc->why);
    } else {
        cr_assert_eq(rc, 0, "%s refused: %s", uc->url, why);
    }
}

Test(streams, allowed_names_the_element_and_the_stream_not_the_url)
{
    const char *json = "{\"streams\": [{\"id\": 1, \"url\": \"http://p/1\"},"
                       " {\"id\": 42, \"url\": \"file:///home/u:hunter2/x\"}]}";
    char err[512] = "";
    sfl_streams *ss = sfl_streams_parse(json, strlen(json), "s.json", err, sizeof(err));
    cr_assert_not_null(ss, "%s", err);
    cr_assert_eq(sfl_streams_allowed(ss, default_schemes, NDEFAULT, "s.json", err, sizeof(err)),
                 -1);
    cr_expect_str_eq(
        err, "s.json: streams[1].url (stream 42): scheme \"file\" is not allowed " DEFAULT_LIST);
    cr_expect_null(strstr(err, "hunter2"), "%s", err);
    /* Only the schemes the config names. */
    char *const own[] = {"file"};
    cr_assert_eq(sfl_streams_allowed(ss, own, 1, "s.json", err, sizeof(err)), -1);
    cr_expect_str_eq(err, "s.json: streams[0].url (stream 1): scheme \"http\" is not allowed "
                          "(check.schemes: file)");
    sfl_streams_free(ss);

    json = "[{\"id\": 7, \"url\": \"rtsp://cam\"}, {\"id\": 8, \"url\": \"-\"}]";
    ss = sfl_streams_parse(json, strlen(json), "b", err, sizeof(err));
    cr_assert_not_null(ss, "%s", err);
    cr_assert_eq(sfl_streams_allowed(ss, default_schemes, NDEFAULT, "body", err, sizeof(err)), -1);
    cr_expect_str_eq(err, "body: [1].url (stream 8): has no scheme:// in front " DEFAULT_LIST);
    ss->n = 1;
    cr_expect_eq(sfl_streams_allowed(ss, default_schemes, NDEFAULT, "body", err, sizeof(err)), 0);
    ss->n = 2;
    sfl_streams_free(ss);
}

/*--- Back to JSON ---*/

/* The text of sfl_stream_to_json for ids around cJSON's 15-digit rounding
 * (from about 4.5e15) up to 2^53-1: every digit written, and parsed back the
 * same (the queue moves streams this way). */
Test(streams, to_json_writes_every_digit)
{
    static const long long ids[] = {0,
                                    -4,
                                    999999999999999LL,
                                    4503599627370497LL,
                                    5000000000000001LL,
                                    9007199254740991LL,
                                    -9007199254740991LL};
    for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
        long long acc = ids[k] < 0 ? -ids[k] : ids[k];
        sfl_stream s = {ids[k], "N", "http://h/1", acc, -2};
        char *json = sfl_stream_to_json(&s);
        cr_assert_not_null(json);
        char want[256];
        snprintf(want, sizeof(want),
                 "{\"id\":%lld,\"name\":\"N\",\"url\":\"http://h/1\",\"m3u_account\":%lld,"
                 "\"priority\":-2}",
                 ids[k], acc);
        cr_expect_str_eq(json, want);

        char text[300], err[256] = "";
        snprintf(text, sizeof(text), "[%s]", json);
        free(json);
        sfl_streams *back = sfl_streams_parse(text, strlen(text), "q", err, sizeof(err));
        cr_assert_not_null(back, "%s", err);
        cr_expect_eq(back->v[0].id, ids[k]);
        cr_expect_eq(back->v[0].account, acc);
        sfl_streams_free(back);
    }

    sfl_stream custom = {7, NULL, "u", -1, 0};
    char *json = sfl_stream_to_json(&custom);
    cr_assert_not_null(json);
    cr_expect_str_eq(json, "{\"id\":7,\"url\":\"u\",\"m3u_account\":null,\"priority\":0}");
    free(json);
}

/* The result line names the stream with the same exact digits. */
Test(streams, result_json_writes_every_digit)
{
    sfl_stream s = {5000000000000001LL, NULL, "u", 9007199254740991LL, 0};
    cJSON *r = sfl_result_new(&s, "n1", SFL_STATUS_OK, NULL);
    cr_assert_not_null(r);
    char *text = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    cr_assert_not_null(text);
    cr_expect_not_null(strstr(text, "\"stream_id\":5000000000000001,"), "%s", text);
    cr_expect_not_null(strstr(text, "\"m3u_account\":9007199254740991,"), "%s", text);
    free(text);

    cJSON *o = cJSON_CreateObject();
    cr_assert_eq(sfl_stream_json_add_id(o, "id", -1234567890123456789LL), 0);
    text = cJSON_PrintUnformatted(o);
    cr_expect_str_eq(text, "{\"id\":-1234567890123456789}");
    free(text);
    cJSON_Delete(o);
}

/*--- Files and stdin ---*/

static char *temp_file(const char *text)
{
    char *path = strdup("/tmp/sfl-streams-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

Test(streams, load_file)
{
    char *path = temp_file("[{\"id\": 3, \"name\": \"C\", \"url\": \"u\", \"m3u_account\": 4}]");
    char err[512] = "";
    sfl_streams *ss = sfl_streams_load(path, err, sizeof(err));
    cr_assert_not_null(ss, "%s", err);
    cr_assert_eq(ss->n, 1);
    cr_expect_str_eq(ss->v[0].name, "C");
    cr_expect_eq(ss->v[0].account, 4);
    sfl_streams_free(ss);
    unlink(path);
    free(path);
}

Test(streams, load_file_errors_name_the_file)
{
    char *path = temp_file("[{\"id\": 3}]");
    char err[512] = "", want[512];
    cr_assert_null(sfl_streams_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: [0].url: missing", path);
    cr_expect_str_eq(err, want);
    unlink(path);
    free(path);

    cr_assert_null(sfl_streams_load("/nonexistent/s.json", err, sizeof(err)));
    cr_expect_str_eq(err, "/nonexistent/s.json: cannot read: No such file or directory");
}

Test(streams, load_stdin)
{
    char *path = temp_file("{\"streams\": [{\"id\": 1, \"url\": \"a\"}, {\"id\": 1, \"url\": "
                           "\"b\"}]}");
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert(dup2(fd, STDIN_FILENO) == STDIN_FILENO);
    close(fd);
    char err[512] = "";
    cr_assert_null(sfl_streams_load("-", err, sizeof(err)));
    cr_expect_str_eq(err, "(stdin): streams[1].id: duplicate id 1 (also at streams[0])");

    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert(fd >= 0);
    cr_assert(write(fd, "[{\"id\": 8, \"url\": \"z\"}]", 23) == 23);
    close(fd);
    fd = open(path, O_RDONLY);
    cr_assert(dup2(fd, STDIN_FILENO) == STDIN_FILENO);
    close(fd);
    sfl_streams *ss = sfl_streams_load("-", err, sizeof(err));
    cr_assert_not_null(ss, "%s", err);
    cr_expect_eq(ss->n, 1);
    cr_expect_eq(ss->v[0].id, 8);
    sfl_streams_free(ss);
    unlink(path);
    free(path);
}
