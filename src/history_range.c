/* history_range.c - times and steps as people write them, turned into the
 * points of a history read (history_range.h).
 *
 * Everything here is a pure function of its text and a given now: the
 * API, the CLI and the unit tests see the same answers. A text that is not
 * exactly one of the accepted forms is refused with a message naming the
 * parameter and showing the forms; nothing is guessed (no local time zone:
 * history keys are UTC hours, and so are the times here). The arithmetic
 * stays within a year range (1970..9999) where no int64 can overflow.
 */
#include "history_range.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TIME_FORMS                                                                                 \
    "Unix seconds, an ISO-8601 UTC time (2026-12-02T07:00:00Z) or a time before now (-90m, "       \
    "-24h, -7d)"
#define MAX_TIME_S 253402300799LL /* 9999-12-31T23:59:59Z */

/*--- Pieces ----------------------------------------------------------------*/

/* n digits at s into *out; 0, or -1 when one is not a digit. */
static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* A whole number of at most 12 digits, the whole of [s, end). */
static int number(const char *s, const char *end, int64_t *out)
{
    if (s == end || end - s > 12)
        return -1;
    int64_t v = 0;
    for (const char *p = s; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* Seconds in one of the units s m h d w; 0 for anything else. */
static int64_t unit_s(char c)
{
    switch (c) {
    case 's':
        return 1;
    case 'm':
        return 60;
    case 'h':
        return 3600;
    case 'd':
        return 86400;
    case 'w':
        return 7 * 86400;
    default:
        return 0;
    }
}

/* An amount with a unit, the whole text ("90m"): 0 and seconds, or -1. */
static int amount(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int64_t v, u;
    if (n < 2 || !(u = unit_s(s[n - 1])) || number(s, s + n - 1, &v) < 0 || v > MAX_TIME_S / u)
        return -1;
    *out = v * u;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1970). */
static int64_t days_since_epoch(int y, int m, int d)
{
    static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t days = 0;
    for (int yy = 1970; yy < y; yy++)
        days += is_leap(yy) ? 366 : 365;
    return days + before[m - 1] + (m > 2 && is_leap(y)) + (d - 1);
}

/* YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+00:00]: 0 and Unix seconds, or -1. */
static int iso_time(const char *s, int64_t *out)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (strlen(s) < 10 || digits(s, 4, &y) < 0 || s[4] != '-' || digits(s + 5, 2, &mo) < 0 ||
        s[7] != '-' || digits(s + 8, 2, &d) < 0)
        return -1;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't') {
        if (digits(p + 1, 2, &h) < 0 || p[3] != ':' || digits(p + 4, 2, &mi) < 0)
            return -1;
        p += 6;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec) < 0)
                return -1;
            p += 3;
            if (*p == '.') {
                if (!isdigit((unsigned char)p[1]))
                    return -1;
                for (p++; isdigit((unsigned char)*p); p++)
                    ;
            }
        }
        if (*p == 'Z' || *p == 'z')
            p++;
        else if (strcmp(p, "+00:00") == 0)
            p += 6;
    }
    if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || h > 23 || mi > 59 || sec > 59)
        return -1;
    *out = days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return 0;
}

/*--- Times and steps -------------------------------------------------------*/

int sfl_history_parse_time(const char *what, const char *text, int64_t now_s, int64_t *out,
                           char *err, size_t errlen)
{
    int64_t v;
    if (!text || !*text) {
        snprintf(err, errlen, "%s: empty; expected " TIME_FORMS, what);
        return -1;
    }
    if (strcmp(text, "now") == 0) {
        *out = now_s;
        return 0;
    }
    if (text[0] == '-') {
        if (amount(text + 1, &v) < 0) {
            snprintf(err, errlen,
                     "%s: \"%.40s\" is not a time before now: expected a minus, a whole number "
                     "and a unit (s, m, h, d or w), e.g. -90m",
                     what, text);
            return -1;
        }
        if (v > now_s) {
            snprintf(err, errlen, "%s: \"%.40s\" goes back before 1970", what, text);
            return -1;
        }
        *out = now_s - v;
        return 0;
    }
    if (number(text, text + strlen(text), &v) == 0 && v <= MAX_TIME_S) {
        *out = v;
        return 0;
    }
    if (iso_time(text, &v) == 0) {
        *out = v;
        return 0;
    }
    snprintf(err, errlen, "%s: \"%.40s\" is not a time: expected " TIME_FORMS, what, text);
    return -1;
}

int sfl_history_parse_step(const char *what, const char *text, int64_t *out, char *err,
                           size_t errlen)
{
    int64_t v;
    if (!text || !*text || (number(text, text + strlen(text), &v) < 0 && amount(text, &v) < 0)) {
        snprintf(err, errlen,
                 "%s: \"%.40s\" is not a step: expected seconds (300) or an amount with a "
                 "unit (1m, 15m, 1h, 1d)",
                 what, text ? text : "");
        return -1;
    }
    if (v <= 0 || v % 60 != 0 || v > SFL_HISTORY_MAX_STEP_S) {
        snprintf(err, errlen,
                 "%s: \"%.40s\" must be a whole number of minutes (a multiple of 60 s), from 1m "
                 "to 366d",
                 what, text);
        return -1;
    }
    *out = v;
    return 0;
}

/*--- The range -------------------------------------------------------------*/

static int64_t floor_to(int64_t t, int64_t unit)
{
    return t - t % unit; /* t >= 0 */
}

static int64_t points(int64_t from, int64_t to, int64_t step)
{
    return (to - from + step - 1) / step;
}

/* The first point's start: from rounded up to the step (so that "-7d" in
 * minutes is 10080 points, the minute going on the last), or down when that
 * would leave nothing before to. */
static int64_t first(int64_t from, int64_t to, int64_t step)
{
    int64_t up = floor_to(from + step - 1, step);
    return up < to ? up : floor_to(from, step);
}

int sfl_history_range_make(const sfl_history_ask *ask, int64_t now_s, sfl_history_range *out,
                           char *err, size_t errlen)
{
    const char *fname = ask->from_name ? ask->from_name : "from";
    const char *tname = ask->to_name ? ask->to_name : "to";
    const char *sname = ask->step_name ? ask->step_name : "step";
    int64_t from, to = now_s, step = 0;
    if (ask->to && sfl_history_parse_time(tname, ask->to, now_s, &to, err, errlen) < 0)
        return -1;
    to = floor_to(to + 59, 60);
    if (ask->from) {
        if (sfl_history_parse_time(fname, ask->from, now_s, &from, err, errlen) < 0)
            return -1;
    } else {
        from = to >= 3600 ? to - 3600 : 0;
    }
    if (ask->step && sfl_history_parse_step(sname, ask->step, &step, err, errlen) < 0)
        return -1;
    if (from >= to) {
        char f[32], t[32];
        sfl_history_iso(from, f, sizeof(f));
        sfl_history_iso(to, t, sizeof(t));
        snprintf(err, errlen, "%s: %s is not before %s (%s)", fname, f, tname, t);
        return -1;
    }
    if (step == 0) {
        int64_t minutes = (to - first(from, to, 60)) / 60;
        step = 60 * ((minutes + SFL_HISTORY_AUTO_POINTS - 1) / SFL_HISTORY_AUTO_POINTS);
        /* Rounding from to the step may add a point: one step more then. */
        while (points(first(from, to, step), to, step) > SFL_HISTORY_AUTO_POINTS)
            step += 60;
    }
    int64_t start = first(from, to, step), n = points(start, to, step);
    if (n > SFL_HISTORY_MAX_POINTS) {
        snprintf(err, errlen,
                 "%s: %lld s over %lld minutes makes %lld points; at most %d (take a larger "
                 "step or a shorter range)",
                 sname, (long long)step, (long long)((to - start) / 60), (long long)n,
                 SFL_HISTORY_MAX_POINTS);
        return -1;
    }
    *out = (sfl_history_range){.from_s = start, .to_s = to, .step_s = step, .npoints = n};
    return 0;
}

void sfl_history_iso(int64_t s, char *buf, size_t len)
{
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "?");
}
