/* analysis.c - turns the stderr of one ffmpeg check into StreamFlow's result fields.
 *
 * What: StreamFlow checks a stream with `ffmpeg -v debug -i URL -t N -f null -`
 * and reads four facts off ffmpeg's log: the video line of the input dump
 * (codec, WxH, fps), the audio line (codec), and the bitrate, taken from the
 * `Statistics: N bytes read` lines that -v debug prints when an input closes
 * (bytes*8/1000/duration), or else from the last `bitrate=...kbits/s` progress
 * value. This file reproduces those rules so sfl's results match StreamFlow's.
 *
 * Why it is shaped so: the text comes from a child process and may be cut off
 * anywhere (timeout, capture cap, kill), hold NULs or binary junk, carry lines
 * of any length, and end without a newline. So the parser walks the bytes once,
 * splitting on '\n' and '\r' (progress lines end in '\r'), and looks at each
 * line in place: no copy, no allocation, no str*() call on the input (it is not
 * NUL-terminated), no strtod/sscanf (locale-dependent decimal point). Only lines
 * inside an `Input #` section count as stream lines: ffmpeg also dumps the
 * `Output #` streams (`wrapped_avframe`, `pcm_s16le` for -f null), which say
 * nothing about the provider. The first input video line and the first input
 * audio line win.
 *
 * A value is only taken when it is complete: a token that runs into the end of
 * a buffer cut mid-line is ignored rather than read short ("h2" for "h264",
 * "1280x72" for "1280x720"). Nor is a fact taken from a line cut short that
 * the rest of the line could still overturn: such a line is not the audio line
 * while no video line was taken (a "Video: " may follow on it, making it the
 * video line), and its "N tbr" does not stand in for fps (an "M fps" may
 * follow). So a truncated log yields a subset of the facts of the whole log,
 * never different ones (the bitrate excepted: an earlier progress value or a
 * partial byte count is still the best available).
 *
 * Statistics lines are summed: an HLS input opens one AVIOContext per segment
 * plus the playlist, each printing its own line; their sum is what was read.
 * For a plain HTTP input there is exactly one such line.
 *
 * It also counts what tells a provider's redirect to a short "connected
 * elsewhere" clip from a stream: the connections ffmpeg opened (-v verbose
 * names each; with -seekable 0 a plain input opens one, so a second one is
 * a redirect, unless the input is HLS), and the media time it read (the
 * last progress "time=").
 *
 * What it must never do: fail, read outside [text, text+len), write outside
 * `out`, print, or keep a pointer into `text` after returning. */
#include "analysis.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*--- Byte helpers (locale-free, bounded) ------------------------------------*/

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_codec_char(char c)
{
    return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

/* Does [p, p+n) start with the C string lit? */
static int has_prefix(const char *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n >= m && memcmp(p, lit, m) == 0;
}

/* First occurrence of lit in [p, p+n), or NULL. */
static const char *find_lit(const char *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (m == 0 || n < m)
        return NULL;
    const char *end = p + n - m + 1; /* last possible start + 1 */
    while (p < end) {
        const char *hit = memchr(p, lit[0], (size_t)(end - p));
        if (!hit)
            return NULL;
        if (memcmp(hit, lit, m) == 0)
            return hit;
        p = hit + 1;
    }
    return NULL;
}

/* Parses a decimal "123" or "29.97" (and "90k" = 90000 when allow_k) at the
 * start of [p, p+n). Returns the number of bytes used, 0 when there is no
 * number there. Absurdly long integer parts are refused, not overflowed. */
static size_t parse_decimal(const char *p, size_t n, int allow_k, double *val)
{
    size_t i = 0;
    double v = 0;
    while (i < n && is_digit(p[i])) {
        if (i >= 12)
            return 0;
        v = v * 10 + (p[i] - '0');
        i++;
    }
    if (i == 0)
        return 0;
    if (i < n && p[i] == '.') {
        double scale = 0.1;
        size_t j = i + 1;
        while (j < n && is_digit(p[j])) {
            v += (p[j] - '0') * scale;
            scale /= 10;
            j++;
        }
        if (j == i + 1)
            return 0; /* "12." is not a number ffmpeg prints */
        i = j;
    }
    if (allow_k && i < n && p[i] == 'k') {
        v *= 1000;
        i++;
    }
    *val = v;
    return i;
}

/* Parses an unsigned integer of at most maxdigits digits at the start of
 * [p, p+n). Returns the digits used, 0 when none or too many. */
static size_t parse_uint(const char *p, size_t n, size_t maxdigits, uint64_t *val)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && is_digit(p[i])) {
        if (i >= maxdigits)
            return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
        i++;
    }
    *val = v;
    return i;
}

/*--- Stream lines ------------------------------------------------------------*/

/* Copies the codec word at the start of [p, p+n) ("h264" of "h264 (High)").
 * Returns the bytes consumed; leaves dst alone when the word is empty or runs
 * into the end of an incomplete line. */
static size_t take_codec(char *dst, size_t cap, const char *p, size_t n, int complete)
{
    size_t i = 0;
    while (i < n && is_codec_char(p[i]))
        i++;
    if (i == 0 || (i == n && !complete))
        return i;
    size_t m = i < cap - 1 ? i : cap - 1;
    memcpy(dst, p, m);
    dst[m] = '\0';
    return i;
}

/* The first "WxH" token with both numbers > 0. Hex codec tags (0x31637661)
 * fail on W == 0 and their digits after 'x' are glued to a letter; SAR/DAR use
 * ':' and never match. */
static void take_resolution(const char *p, size_t n, int complete, int *w, int *h)
{
    size_t i = 0;
    while (i < n) {
        if (!is_digit(p[i]) || (i > 0 && (is_alnum(p[i - 1]) || p[i - 1] == '.'))) {
            i++;
            continue;
        }
        uint64_t a = 0, b = 0;
        size_t da = parse_uint(p + i, n - i, 6, &a);
        size_t j = i;
        while (j < n && is_digit(p[j]))
            j++; /* end of this digit run, whatever parse_uint made of it */
        if (da > 0 && j < n && p[j] == 'x') {
            size_t db = parse_uint(p + j + 1, n - j - 1, 6, &b);
            size_t k = j + 1;
            while (k < n && is_digit(p[k]))
                k++;
            int bounded = k < n ? !is_alnum(p[k]) : complete;
            if (db > 0 && k == j + 1 + db && bounded && a > 0 && b > 0) {
                *w = (int)a;
                *h = (int)b;
                return;
            }
            j = k;
        }
        i = j;
    }
}

/* "25 fps" and "25 tbr" among the ", "- and " "-separated tokens of the video
 * line. fps wins; tbr stands in when ffmpeg printed no fps, which only a
 * complete line can tell. */
static double take_rate(const char *p, size_t n, int complete)
{
    const char *prev = NULL;
    size_t prevlen = 0;
    double fps = 0, tbr = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == ','))
            i++;
        size_t s = i;
        while (i < n && p[i] != ' ' && p[i] != ',')
            i++;
        if (i == s || (i == n && !complete))
            break;
        const char *tok = p + s;
        size_t len = i - s;
        if (prev && (len == 3) && (memcmp(tok, "fps", 3) == 0 || memcmp(tok, "tbr", 3) == 0)) {
            double v = 0;
            if (parse_decimal(prev, prevlen, 1, &v) == prevlen && v > 0) {
                if (tok[0] == 'f' && fps == 0)
                    fps = v;
                else if (tok[0] == 't' && tbr == 0)
                    tbr = v;
            }
        }
        prev = tok;
        prevlen = len;
    }
    return fps > 0 || !complete ? fps : tbr;
}

static void parse_stream_line(const char *p, size_t n, int complete, sfl_analysis *out)
{
    const char *v = find_lit(p, n, "Video: ");
    if (v && !out->has_video) {
        out->has_video = 1;
        const char *q = v + 7;
        size_t rest = n - (size_t)(q - p);
        size_t used = take_codec(out->video_codec, sizeof(out->video_codec), q, rest, complete);
        take_resolution(q + used, rest - used, complete, &out->width, &out->height);
        out->fps = take_rate(q + used, rest - used, complete);
        return;
    }
    /* Cut short before any video line, this may yet be one ("Audio: ..., Video: "). */
    if (!complete && !out->has_video)
        return;
    const char *a = find_lit(p, n, "Audio: ");
    if (a && !out->has_audio) {
        out->has_audio = 1;
        const char *q = a + 7;
        take_codec(out->audio_codec, sizeof(out->audio_codec), q, n - (size_t)(q - p), complete);
    }
}

/*--- Bitrate lines -----------------------------------------------------------*/

typedef struct parse_state {
    enum { SEC_NONE, SEC_INPUT, SEC_OUTPUT } section;
    uint64_t stat_bytes; /* sum of "Statistics: N bytes read" */
    int stat_seen;
    double progress_kbps; /* last well-formed "bitrate=" value, 0 for N/A */
    int progress_seen;
} parse_state;

static void scan_statistics(parse_state *st, const char *p, size_t n)
{
    static const char key[] = "Statistics: ";
    const char *end = p + n;
    const char *s;
    while ((s = find_lit(p, (size_t)(end - p), key)) != NULL) {
        const char *q = s + sizeof(key) - 1;
        uint64_t bytes = 0;
        size_t d = parse_uint(q, (size_t)(end - q), 18, &bytes);
        if (d > 0 && has_prefix(q + d, (size_t)(end - q) - d, " bytes read")) {
            st->stat_seen = 1;
            st->stat_bytes =
                bytes > UINT64_MAX - st->stat_bytes ? UINT64_MAX : st->stat_bytes + bytes;
        }
        p = q;
    }
}

static void scan_progress(parse_state *st, const char *p, size_t n)
{
    static const char key[] = "bitrate=";
    const char *end = p + n;
    const char *s;
    while ((s = find_lit(p, (size_t)(end - p), key)) != NULL) {
        const char *q = s + sizeof(key) - 1;
        while (q < end && *q == ' ')
            q++;
        double v = 0;
        size_t d;
        if (has_prefix(q, (size_t)(end - q), "N/A")) {
            st->progress_kbps = 0;
            st->progress_seen = 1;
        } else if ((d = parse_decimal(q, (size_t)(end - q), 0, &v)) > 0 &&
                   has_prefix(q + d, (size_t)(end - q) - d, "kbits/s")) {
            st->progress_kbps = v;
            st->progress_seen = 1;
        }
        p = q;
    }
}

/*--- Driver ------------------------------------------------------------------*/

/* "time=HH:MM:SS.cc" of a progress line: the media time read so far. */
static void scan_time(const char *p, size_t n, sfl_analysis *out)
{
    static const char key[] = "time=";
    const char *end = p + n;
    const char *s;
    while ((s = find_lit(p, (size_t)(end - p), key)) != NULL) {
        const char *q = s + sizeof(key) - 1;
        uint64_t h = 0, m = 0;
        double sec = 0;
        size_t dh = parse_uint(q, (size_t)(end - q), 6, &h);
        if (dh > 0 && q + dh < end && q[dh] == ':') {
            const char *r = q + dh + 1;
            size_t dm = parse_uint(r, (size_t)(end - r), 2, &m);
            if (dm == 2 && r + dm < end && r[dm] == ':') {
                const char *t = r + dm + 1;
                if (parse_decimal(t, (size_t)(end - t), 0, &sec) > 0)
                    out->media_time_s = (double)h * 3600 + (double)m * 60 + sec;
            }
        }
        p = q;
    }
}

static void parse_line(parse_state *st, const char *p, size_t n, int complete, sfl_analysis *out)
{
    scan_statistics(st, p, n);
    scan_progress(st, p, n);
    scan_time(p, n, out);
    if (find_lit(p, n, "Starting connection attempt to "))
        out->connections++;
    if (has_prefix(p, n, "[hls @"))
        out->hls = 1;

    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    if (has_prefix(p, n, "Input #"))
        st->section = SEC_INPUT;
    else if (has_prefix(p, n, "Output #"))
        st->section = SEC_OUTPUT;
    else if (has_prefix(p, n, "Stream mapping:"))
        st->section = SEC_NONE;
    else if (st->section == SEC_INPUT && has_prefix(p, n, "Stream #"))
        parse_stream_line(p, n, complete, out);
}

void sfl_analysis_parse_ffmpeg(const char *text, size_t len, double duration_s, sfl_analysis *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!text)
        return;

    parse_state st;
    memset(&st, 0, sizeof(st));
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\n' && text[i] != '\r')
            continue;
        if (i > start)
            parse_line(&st, text + start, i - start, 1, out);
        start = i + 1;
    }
    if (start < len)
        parse_line(&st, text + start, len - start, 0, out);

    if (st.stat_seen && duration_s > 0 && isfinite(duration_s))
        out->bitrate_kbps = (double)st.stat_bytes * 8.0 / 1000.0 / duration_s;
    else if (st.progress_seen)
        out->bitrate_kbps = st.progress_kbps;
}

int sfl_analysis_is_dead(const sfl_analysis *a)
{
    if (!a)
        return 1;
    return a->width <= 0 || a->height <= 0 || !(a->bitrate_kbps > 0);
}

void sfl_analysis_resolution(const sfl_analysis *a, char *buf, size_t len)
{
    if (!buf || len == 0)
        return;
    snprintf(buf, len, "%dx%d", a ? a->width : 0, a ? a->height : 0);
}

/*--- Why a check failed ------------------------------------------------------*/

/* How much a line says about why ffmpeg failed: 0 says nothing (statistics,
 * progress, connection chatter), 1 is some line, 2 names an error, 3 names
 * a known cause, 4 carries the provider's HTTP status. The last line of the
 * highest rank wins: ffmpeg's final "<input>: <reason>" line is usually it,
 * but with -v verbose a Statistics line follows it. */
static int error_rank(const char *p, size_t n)
{
    static const char *const noise[] = {"Statistics: ",
                                        "bitrate=",
                                        "Starting connection attempt",
                                        "Successfully connected",
                                        "Opening '",
                                        "Stream mapping",
                                        "Press [q]",
                                        "Exiting normally",
                                        "video:",
                                        "Input #",
                                        "Output #",
                                        "Stream #",
                                        "Metadata:",
                                        "Duration:"};
    static const char *const causes[] = {"could not find codec parameters",
                                         "Invalid data found",
                                         "Connection refused",
                                         "Connection timed out",
                                         "Connection reset",
                                         "No route to host",
                                         "Server returned",
                                         "Failed to resolve",
                                         "Network is unreachable",
                                         "End of file",
                                         "does not contain any stream",
                                         "Protocol not on whitelist",
                                         "Protocol not found"};
    static const char *const errors[] = {"error",   "Error",   "fail",   "Fail",      "Invalid",
                                         "invalid", "refused", "denied", "not found", "Not Found"};
    if (n == 0)
        return 0;
    if (find_lit(p, n, "HTTP error "))
        return 4;
    for (size_t i = 0; i < sizeof(noise) / sizeof(noise[0]); i++)
        if (find_lit(p, n, noise[i]))
            return 0;
    for (size_t i = 0; i < sizeof(causes) / sizeof(causes[0]); i++)
        if (find_lit(p, n, causes[i]))
            return 3;
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (find_lit(p, n, errors[i]))
            return 2;
    return 1;
}

void sfl_analysis_error_line(const char *text, size_t len, char *buf, size_t buflen)
{
    if (!buf || buflen == 0)
        return;
    buf[0] = '\0';
    const char *best = NULL;
    size_t best_n = 0;
    int best_rank = 0;
    size_t start = 0;
    for (size_t i = 0; text && i <= len; i++) {
        if (i < len && text[i] != '\n' && text[i] != '\r')
            continue;
        const char *p = text + start;
        size_t n = i - start;
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        int rank = error_rank(p, n);
        if (rank > 0 && rank >= best_rank) {
            best = p;
            best_n = n;
            best_rank = rank;
        }
        start = i + 1;
    }
    if (!best)
        return;
    size_t m = best_n < buflen - 1 ? best_n : buflen - 1;
    for (size_t i = 0; i < m; i++)
        buf[i] = best[i] == '\0' ? ' ' : best[i];
    buf[m] = '\0';
}

int sfl_analysis_http_error(const char *text, size_t len)
{
    static const char key[] = "HTTP error ";
    int code = 0;
    const char *p = text, *end = text ? text + len : NULL, *s;
    while (p && (s = find_lit(p, (size_t)(end - p), key)) != NULL) {
        const char *q = s + sizeof(key) - 1;
        uint64_t v = 0;
        size_t d = parse_uint(q, (size_t)(end - q), 3, &v);
        if (d == 3 && v >= 400 && v <= 599 && (q + d == end || !is_digit(q[d])))
            code = (int)v;
        p = q;
    }
    return code;
}
