/* test_log.c - credential redaction (sfl_redact) and the log lines that use it.
 *
 * Every credential is masked whatever its length: three stars, or as many
 * stars as it has characters when shorter, so the text never grows. */
#include "log.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(log);

/* Criterion passes a parameter to the test's process as bytes: pass the row
 * index and read the static table. */
#define INDEX_PARAMS(table)                                                                        \
    static size_t rows[sizeof(table) / sizeof((table)[0])];                                        \
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)                                    \
        rows[r] = r;                                                                               \
    return cr_make_param_array(size_t, rows, sizeof(rows) / sizeof(rows[0]))

struct redact_case {
    const char *in, *want;
};

static const struct redact_case redact_cases[] = {
    /* user:pass@ of any length */
    {"http://a@h/1", "http://*@h/1"},
    {"http://ab@h/1", "http://**@h/1"},
    {"http://:p@h/1", "http://**@h/1"},
    {"http://u:p@h/1", "http://***@h/1"},
    {"http://alice:hunter22@h:8080/get.php", "http://***@h:8080/get.php"},
    {"redis://:s3cretPW@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"},
    {"rtmp://u:p@ss@h/app", "rtmp://***@h/app"}, /* the last '@' ends the userinfo */
    {"http://u:p@h?x=1", "http://***@h?x=1"},
    {"http://host/path?mail=a@b", "http://host/path?mail=a@b"}, /* '@' past the authority */
    {"see http://host and me@there", "see http://host and me@there"},
    /* Xtream paths, USER and PASS of any length */
    {"/live/U/P/1.ts", "/live/*/*/1.ts"},
    {"http://h/live/ab/cd/1.ts", "http://h/live/**/**/1.ts"},
    {"http://h/live/abc/defg/1.ts", "http://h/live/***/***/1.ts"},
    {"http://h/live/alice/hunter22/123.ts", "http://h/live/***/***/123.ts"},
    {"http://h/movie/bob/x/9.mkv", "http://h/movie/***/*/9.mkv"},
    {"http://h/series/u/pp/9.mkv", "http://h/series/*/**/9.mkv"},
    {"http://h/timeshift/user/pass/60/2024-01-01:00-00/1.ts",
     "http://h/timeshift/***/***/60/2024-01-01:00-00/1.ts"},
    {"/live//p/1.ts", "/live//*/1.ts"},
    {"/live/a b/c/", "/live/a b/c/"}, /* not one path */
    {"/live/only-one/", "/live/only-one/"},
    /* query values of any length */
    {"get.php?username=a&password=bc&type=m3u", "get.php?username=*&password=**&type=m3u"},
    {"get.php?username=alice&password=hunter22", "get.php?username=***&password=***"},
    {"?token=abcdef", "?token=***"},
    {"api_key=k done", "api_key=* done"},
    {"password=", "password="},
    /* all at once, as ffmpeg's error line names the URL (the value runs to the space) */
    {"http://u:pw@h/live/ab/cd/1.ts?token=t: Server returned 401",
     "http://***@h/live/**/**/1.ts?token=** Server returned 401"},
    /* nothing to hide */
    {"", ""},
    {"no credentials here: http://host/path", "no credentials here: http://host/path"},
    {"***", "***"},
};

ParameterizedTestParameters(log, redact)
{
    INDEX_PARAMS(redact_cases);
}

ParameterizedTest(size_t *i, log, redact)
{
    const struct redact_case *c = &redact_cases[*i];
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", c->in);
    sfl_redact(buf);
    cr_expect_str_eq(buf, c->want, "redact(\"%s\")", c->in);
    cr_expect_leq(strlen(buf), strlen(c->in));
    char again[256];
    snprintf(again, sizeof(again), "%s", buf);
    sfl_redact(again);
    cr_expect_str_eq(again, buf, "redacting \"%s\" a second time changed it", buf);
}

Test(log, redact_null_is_a_no_op)
{
    sfl_redact(NULL);
}

/* A log line shows no credential, short or long, in either format. */
Test(log, log_lines_are_redacted)
{
    char path[] = "/tmp/sfl-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    int saved = dup(STDERR_FILENO);
    cr_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    sfl_log_set_level(SFL_LOG_INFO);
    sfl_log_set_format(SFL_LOG_TEXT);
    sfl_info("open http://k:Q@h/live/zz/Y7/1.ts");
    sfl_log_set_format(SFL_LOG_JSON);
    sfl_info("open http://h/get.php?username=mo&password=W9x");
    sfl_log_set_format(SFL_LOG_TEXT);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);

    char text[1024] = "";
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    unlink(path);
    cr_assert_gt(n, 0);
    text[n] = '\0';
    cr_expect_not_null(strstr(text, "open http://***@h/live/**/**/1.ts\n"), "%s", text);
    cr_expect_not_null(strstr(text, "get.php?username=**&password=***\"}\n"), "%s", text);
    cr_expect_null(strstr(text, "Y7"), "%s", text);
    cr_expect_null(strstr(text, "W9x"), "%s", text);
}
