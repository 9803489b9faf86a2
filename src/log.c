/* log.c - timestamped, levelled log lines on stderr.
 *
 * Library code never prints on its own account: it returns -1 and an error
 * string, and the caller decides whether that is worth a log line. This file
 * is what the callers use. One write(2) per line, so lines from the node and
 * from concurrently running helpers do not interleave mid-line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int min_level = -1;
static sfl_log_format format = SFL_LOG_TEXT;

void sfl_log_set_format(sfl_log_format f)
{
    format = f;
}

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int sfl_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcasecmp(name, level_names[i]) == 0)
            return i;
    if (name && strcasecmp(name, "warning") == 0)
        return SFL_LOG_WARN;
    return -1;
}

void sfl_log_set_level(sfl_log_level level)
{
    min_level = (int)level;
}

void sfl_log(sfl_log_level level, const char *fmt, ...)
{
    if (min_level < 0) {
        int l = sfl_log_parse_level(getenv("SFL_LOG_LEVEL"));
        min_level = l >= 0 ? l : SFL_LOG_INFO;
    }
    if ((int)level < min_level)
        return;

    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s - ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    sfl_redact(line + n); /* no log line ever carries a stream's credentials */
    if (format == SFL_LOG_JSON) {
        /* {"ts":"...","level":"...","msg":"..."}, the message escaped. */
        char msg[2048];
        snprintf(msg, sizeof(msg), "%s", line + n);
        char stamp[40];
        snprintf(stamp, sizeof(stamp), "%.24s", line);
        n = snprintf(line, sizeof(line) - 8, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp,
                     level_names[level]);
        for (const char *p = msg; *p && n < (int)sizeof(line) - 16; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"' || ch == '\\') {
                line[n++] = '\\';
                line[n++] = (char)ch;
            } else if (ch < 0x20) {
                n += snprintf(line + n, 8, "\\u%04x", ch);
            } else {
                line[n++] = (char)ch;
            }
        }
        line[n++] = '"';
        line[n++] = '}';
        line[n] = '\0';
    }
    n = (int)strlen(line);
    if (n > (int)sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

/*--- Redaction ------------------------------------------------------------*/

/* Replaces s[from, to) by min(to - from, 3) stars: a credential of any length
 * is gone, the text never gets longer, and stars are masked to themselves. */
static void mask(char *s, size_t from, size_t to)
{
    size_t n = to - from, m = n < 3 ? n : 3;
    memset(s + from, '*', m);
    if (m < n)
        memmove(s + from + m, s + to, strlen(s + to) + 1);
}

/* Ends the authority of a URL (what may hold user:pass@). */
static int ends_authority(char c)
{
    return c == '\0' || c == '/' || c == '?' || c == '#' || c == '"' || c == '\'' || c == '<' ||
           c == '>' || (unsigned char)c <= ' ' || c == 0x7f;
}

/* Ends a query value. */
static int ends_value(char c)
{
    return c == '\0' || c == '&' || c == ' ' || c == '"' || c == '\n';
}

void sfl_redact(char *s)
{
    if (!s)
        return;
    /* The passes run in this order so that one pass over the text is enough
     * (redacting the result again changes nothing): masking a query value
     * can remove a '/' that ended a URL's authority, so the userinfo pass
     * comes after it; neither of the later passes can change what an earlier
     * one matches. */

    /* ?username=...&password=... */
    static const char *const params[] = {"username=", "password=", "token=", "api_key="};
    for (size_t k = 0; k < sizeof(params) / sizeof(params[0]); k++) {
        for (char *p = strstr(s, params[k]); p; p = strstr(p + 1, params[k])) {
            char *v = p + strlen(params[k]), *e = v;
            while (!ends_value(*e))
                e++;
            mask(s, (size_t)(v - s), (size_t)(e - s));
        }
    }
    /* scheme://user:pass@host: up to the last '@' of the authority, as URL
     * parsers (ffmpeg's among them) read it */
    for (char *p = strstr(s, "://"); p; p = strstr(p + 3, "://")) {
        char *start = p + 3, *at = NULL;
        for (char *q = start; !ends_authority(*q); q++)
            if (*q == '@')
                at = q;
        if (at)
            mask(s, (size_t)(start - s), (size_t)(at - s));
    }
    /* Xtream-style paths: /live/USER/PASS/, /movie/USER/PASS/, /series/USER/PASS/ */
    static const char *const kinds[] = {"/live/", "/movie/", "/series/", "/timeshift/"};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (char *p = strstr(s, kinds[k]); p; p = strstr(p + 1, kinds[k])) {
            char *u = p + strlen(kinds[k]);
            char *e1 = strchr(u, '/');
            char *e2 = e1 ? strchr(e1 + 1, '/') : NULL;
            if (!e1 || !e2 || memchr(u, ' ', (size_t)(e2 - u)))
                continue;
            mask(s, (size_t)(e1 + 1 - s), (size_t)(e2 - s)); /* PASS first: USER stays put */
            mask(s, (size_t)(u - s), (size_t)(e1 - s));
        }
    }
}
