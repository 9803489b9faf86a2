/* fuzz_ffmpeg.c - sfl_analysis_parse_ffmpeg() on arbitrary bytes (an ffmpeg
 * stderr capture), as the checker calls it: a 30 s run.
 *
 * The bytes go in as they are (not NUL-terminated). Checked: the result is
 * sane (codec names terminated, sizes and rates finite and >= 0), and
 * analysis.c's own promise that a log cut short yields a subset of the facts
 * of the whole log, never different ones (bitrate excepted): the input is
 * also parsed cut at a point chosen by its last byte. The error line of a
 * failed check and its HTTP code are taken from the same bytes. */
#include "analysis.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ffmpeg: check failed: %s (line %d)\n", #cond, __LINE__);         \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static void check_sane(const sfl_analysis *a)
{
    CHECK(memchr(a->video_codec, '\0', sizeof(a->video_codec)) != NULL);
    CHECK(memchr(a->audio_codec, '\0', sizeof(a->audio_codec)) != NULL);
    CHECK(a->width >= 0 && a->height >= 0);
    CHECK(isfinite(a->fps) && a->fps >= 0);
    CHECK(isfinite(a->bitrate_kbps) && a->bitrate_kbps >= 0);
    CHECK(a->has_video == 0 || a->has_video == 1);
    CHECK(a->has_audio == 0 || a->has_audio == 1);
    CHECK(a->connections >= 0 && (a->hls == 0 || a->hls == 1));
    CHECK(isfinite(a->media_time_s) && a->media_time_s >= 0);
    char res[32];
    sfl_analysis_resolution(a, res, sizeof(res));
    (void)sfl_analysis_is_dead(a);
}

/* The error line: terminated, within the buffer, a line of the input (no
 * line break in it), and the HTTP code in range. */
static void check_error_line(const char *text, size_t size)
{
    char line[64];
    memset(line, 'x', sizeof(line));
    sfl_analysis_error_line(text, size, line, sizeof(line));
    CHECK(memchr(line, '\0', sizeof(line)) != NULL);
    CHECK(strchr(line, '\n') == NULL && strchr(line, '\r') == NULL);
    int code = sfl_analysis_http_error(text, size);
    CHECK(code == 0 || (code >= 400 && code <= 599));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sfl_analysis whole, cut;
    sfl_analysis_parse_ffmpeg(text, size, 30, &whole);
    check_sane(&whole);
    check_error_line(text, size);
    if (size < 2)
        return 0;

    size_t at = (size_t)data[size - 1] * (size - 1) / 255; /* 0 .. size-1 */
    sfl_analysis_parse_ffmpeg(text, at, 30, &cut);
    check_sane(&cut);
    /* Subset: every fact the cut log gives, the whole log gives too. */
    if (cut.video_codec[0])
        CHECK(strcmp(cut.video_codec, whole.video_codec) == 0);
    if (cut.audio_codec[0])
        CHECK(strcmp(cut.audio_codec, whole.audio_codec) == 0);
    if (cut.width || cut.height)
        CHECK(cut.width == whole.width && cut.height == whole.height);
    if (cut.fps > 0)
        CHECK(cut.fps == whole.fps);
    CHECK(cut.has_video <= whole.has_video && cut.has_audio <= whole.has_audio);
    return 0;
}
