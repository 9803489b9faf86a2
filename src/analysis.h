/* analysis.h - what one ffmpeg check says about a stream (StreamFlow's result fields).
 *
 * The checker runs `ffmpeg -v debug ... -i URL -t N -f null -`, keeps its stderr,
 * and hands the bytes here. The parser is a pure function of those bytes: no
 * allocation, no I/O, no global state, safe to call from any thread. */
#ifndef SFL_ANALYSIS_H
#define SFL_ANALYSIS_H

#include <stddef.h>

typedef struct sfl_analysis {
    char video_codec[32]; /* "" when none */
    char audio_codec[32];
    int width, height;   /* 0 when unknown */
    double fps;          /* 0 when unknown */
    double bitrate_kbps; /* 0 when unknown */
    int has_video, has_audio;
    /* What tells a redirect to a short clip (a refusal) from a stream: */
    int connections;     /* "Starting connection attempt" lines (-v verbose): 2+ with
                            -seekable 0 means the input was redirected */
    int hls;             /* an HLS input ("[hls @"): its segments are connections too */
    double media_time_s; /* the last progress "time=": how much of the input was read */
} sfl_analysis;

/* Parses ffmpeg output (stderr, any length, not NUL-terminated necessarily) of a run that
 * read `duration_s` seconds of the stream. Never fails: missing facts stay 0/"".
 * `text` is only read during the call (NULL is allowed when len is 0); `out` is
 * overwritten entirely. */
void sfl_analysis_parse_ffmpeg(const char *text, size_t len, double duration_s, sfl_analysis *out);

/* StreamFlow's dead-stream rule: resolution 0x0, width or height 0, or bitrate 0.
 * Returns 1 when dead, 0 otherwise; a NULL analysis is dead. */
int sfl_analysis_is_dead(const sfl_analysis *a);

/* Formats "1920x1080" (or "0x0") into buf, always NUL-terminated when len > 0. */
void sfl_analysis_resolution(const sfl_analysis *a, char *buf, size_t len);

/* The line of an ffmpeg log that best says why the run failed (an "HTTP
 * error NNN ..." line, then a known cause such as "could not find codec
 * parameters", "Invalid data found when processing input", "Connection
 * refused", then any line naming an error), never a statistics or progress
 * line; the last of the best rank. Copied into buf (cut to buflen - 1,
 * always terminated); "" when the log holds no such line. Not redacted. */
void sfl_analysis_error_line(const char *text, size_t len, char *buf, size_t buflen);

/* The code of the last "HTTP error NNN" line (400-599) of an ffmpeg log,
 * which ffmpeg prints at warning level for every HTTP error status; 0 when
 * none. */
int sfl_analysis_http_error(const char *text, size_t len);

#endif
