/* test_analysis.c - the ffmpeg stderr parser against real ffmpeg 5.1 captures
 * (tests/unit/fixtures/ffmpeg, see its README.md) and against hostile input.
 *
 * Expected values in the fixture table are what the generated streams are
 * (lavfi size/rate, chosen codecs, file sizes from `ls -l` of the served files),
 * not what the parser happened to print. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

#define FIXTURE_DIR SFL_SOURCE_DIR "/tests/unit/fixtures/ffmpeg/"
#define CHECK_S 3.0 /* every capture ran with -t 3 */

TestSuite(analysis);

/*--- Helpers -----------------------------------------------------------------*/

/* Reads a fixture into a malloc'd buffer of exactly its size (no NUL after it,
 * so an over-read shows under valgrind/ASan). Caller frees. */
static char *load_fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), FIXTURE_DIR "%s", name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_gt(n, 0, "%s is empty", path);
    rewind(f);
    char *buf = malloc((size_t)n);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void parse_str(const char *s, double duration, sfl_analysis *out)
{
    sfl_analysis_parse_ffmpeg(s, strlen(s), duration, out);
}

static void assert_nothing(const sfl_analysis *a)
{
    cr_assert_str_eq(a->video_codec, "");
    cr_assert_str_eq(a->audio_codec, "");
    cr_assert_eq(a->width, 0);
    cr_assert_eq(a->height, 0);
    cr_assert_eq(a->fps, 0.0);
    cr_assert_eq(a->has_video, 0);
    cr_assert_eq(a->has_audio, 0);
}

/* xorshift64: the same "random" garbage on every run. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/*--- Real captures -----------------------------------------------------------*/

/* Arrays, not pointers: Criterion hands parameters to a re-executed worker
 * process by copying the struct, where pointers into the parent are void. */
struct capture_case {
    char file[48];
    char video_codec[32], audio_codec[32];
    int width, height;
    double fps;
    double bitrate_kbps;
    int has_video, has_audio;
    int dead;
};

/* Bitrates from Statistics: bytes of the served file(s) * 8 / 1000 / 3 s
 * (ffmpeg read the whole small file before -t 3 stopped it). */
#define KBPS(bytes) ((double)(bytes)*8.0 / 1000.0 / CHECK_S)

static struct capture_case capture_cases[] = {
    /* testsrc 1280x720@25, libx264 + aac, mpegts, 137240 bytes */
    {"h264_aac_720p25.txt", "h264", "aac", 1280, 720, 25, KBPS(137240), 1, 1, 0},
    /* testsrc 720x576@50, mpeg2video (aspect 16:9 -> SAR 64:45) + mp2, 1109012 bytes */
    {"mpeg2_mp2_576p50.txt", "mpeg2video", "mp2", 720, 576, 50, KBPS(1109012), 1, 1, 0},
    /* testsrc2 1920x1080@30000/1001, libx265 + ac3, coded 1920x1088, 1841836 bytes */
    {"hevc_ac3_1080p2997.txt", "hevc", "ac3", 1920, 1080, 29.97, KBPS(1841836), 1, 1, 0},
    /* testsrc 640x360@24, libx264 + aac in mp4 (tag avc1 / 0x31637661), 64625 bytes */
    {"mp4_h264_aac_360p24.txt", "h264", "aac", 640, 360, 24, KBPS(64625), 1, 1, 0},
    /* testsrc 320x240@25, libx264, no audio, 50196 bytes */
    {"video_only_240p25.txt", "h264", "", 320, 240, 25, KBPS(50196), 1, 0, 0},
    /* sine, aac only, 60160 bytes: no picture, so dead */
    {"audio_only_aac.txt", "", "aac", 0, 0, 0, KBPS(60160), 0, 1, 1},
    /* HLS of testsrc 854x480@25 + aac: seg000..seg003 (24064+23312+24064+24064)
     * and the 256-byte playlist, one Statistics line each */
    {"hls_h264_aac_480p25.txt", "h264", "aac", 854, 480, 25,
     KBPS(24064 + 23312 + 24064 + 24064 + 256), 1, 1, 0},
    /* 20000 random bytes: "Invalid data", Statistics still counts them */
    {"garbage_input.txt", "", "", 0, 0, 0, KBPS(20000), 0, 0, 1},
    /* 0-byte file */
    {"empty_input.txt", "", "", 0, 0, 0, 0, 0, 0, 1},
    /* 404: nothing opened, no Statistics, no progress */
    {"http_404.txt", "", "", 0, 0, 0, 0, 0, 0, 1},
    /* StreamFlow's command without -v debug: -f null only ever prints bitrate=N/A,
     * so the bitrate is unknown and StreamFlow's rule calls a good stream dead */
    {"plain_h264_aac_720p25.txt", "h264", "aac", 1280, 720, 25, 0, 1, 1, 1},
    /* -c copy -f mpegts without -v debug: numeric progress, the last is 2253.0kbits/s */
    {"plain_copy_mpeg2_576p50.txt", "mpeg2video", "mp2", 720, 576, 50, 2253.0, 1, 1, 0},
};

#define N_CAPTURES (sizeof(capture_cases) / sizeof(capture_cases[0]))

ParameterizedTestParameters(analysis, captures)
{
    return cr_make_param_array(struct capture_case, capture_cases, N_CAPTURES);
}

ParameterizedTest(struct capture_case *c, analysis, captures)
{
    size_t len;
    char *text = load_fixture(c->file, &len);
    sfl_analysis a;
    sfl_analysis_parse_ffmpeg(text, len, CHECK_S, &a);
    free(text);

    cr_assert_str_eq(a.video_codec, c->video_codec, "%s: video codec", c->file);
    cr_assert_str_eq(a.audio_codec, c->audio_codec, "%s: audio codec", c->file);
    cr_assert_eq(a.width, c->width, "%s: width %d", c->file, a.width);
    cr_assert_eq(a.height, c->height, "%s: height %d", c->file, a.height);
    cr_assert_float_eq(a.fps, c->fps, 0.005, "%s: fps %f", c->file, a.fps);
    cr_assert_float_eq(a.bitrate_kbps, c->bitrate_kbps, 0.001, "%s: bitrate %f want %f", c->file,
                       a.bitrate_kbps, c->bitrate_kbps);
    cr_assert_eq(a.has_video, c->has_video, "%s: has_video", c->file);
    cr_assert_eq(a.has_audio, c->has_audio, "%s: has_audio", c->file);
    cr_assert_eq(sfl_analysis_is_dead(&a), c->dead, "%s: dead", c->file);

    char res[32], want[32];
    sfl_analysis_resolution(&a, res, sizeof(res));
    snprintf(want, sizeof(want), "%dx%d", c->width, c->height);
    cr_assert_str_eq(res, want);
}

ParameterizedTestParameters(analysis, truncated_prefixes)
{
    return cr_make_param_array(struct capture_case, capture_cases, N_CAPTURES);
}

/* Every prefix of a capture (a check killed or a capture cut anywhere) gives a
 * subset of the whole capture's facts, never a different value. Byte by byte
 * around the stream dump, every 61st byte elsewhere. */
ParameterizedTest(struct capture_case *c, analysis, truncated_prefixes)
{
    size_t len;
    char *text = load_fixture(c->file, &len);
    sfl_analysis full;
    sfl_analysis_parse_ffmpeg(text, len, CHECK_S, &full);

    const char *in = memmem(text, len, "Input #", 7);
    size_t dense_from = in ? (size_t)(in - text) : 0;
    const char *outp = in ? memmem(in, len - dense_from, "Stream mapping:", 15) : NULL;
    size_t dense_to = outp ? (size_t)(outp - text) : dense_from;

    size_t checked = 0;
    for (size_t n = 0; n <= len; n += (n >= dense_from && n < dense_to) ? 1 : 61) {
        char *cut = malloc(n ? n : 1);
        cr_assert_not_null(cut);
        memcpy(cut, text, n);
        sfl_analysis a;
        sfl_analysis_parse_ffmpeg(cut, n, CHECK_S, &a);
        free(cut);
        checked++;

        cr_assert(a.video_codec[0] == '\0' || strcmp(a.video_codec, full.video_codec) == 0,
                  "%s cut at %zu: video codec '%s'", c->file, n, a.video_codec);
        cr_assert(a.audio_codec[0] == '\0' || strcmp(a.audio_codec, full.audio_codec) == 0,
                  "%s cut at %zu: audio codec '%s'", c->file, n, a.audio_codec);
        cr_assert((a.width == 0 && a.height == 0) ||
                      (a.width == full.width && a.height == full.height),
                  "%s cut at %zu: %dx%d", c->file, n, a.width, a.height);
        cr_assert(a.fps == 0 || a.fps == full.fps, "%s cut at %zu: fps %f", c->file, n, a.fps);
        cr_assert_leq(a.has_video, full.has_video);
        cr_assert_leq(a.has_audio, full.has_audio);
        cr_assert(isfinite(a.bitrate_kbps) && a.bitrate_kbps >= 0);
    }
    cr_assert_gt(checked, 10);
    free(text);
}

/* Cut right after the input video line: the video facts are all there already;
 * cut one byte short (the line's last token "90k tbn" incomplete): still there. */
Test(analysis, cut_after_video_line)
{
    size_t len;
    char *text = load_fixture("h264_aac_720p25.txt", &len);
    const char *in = memmem(text, len, "Input #", 7);
    cr_assert_not_null(in);
    const char *v = memmem(in, len - (size_t)(in - text), "Video: ", 7);
    cr_assert_not_null(v);
    const char *nl = memchr(v, '\n', len - (size_t)(v - text));
    cr_assert_not_null(nl);

    for (int shorter = 0; shorter <= 1; shorter++) {
        sfl_analysis a;
        sfl_analysis_parse_ffmpeg(text, (size_t)(nl - text) + 1 - (size_t)shorter, CHECK_S, &a);
        cr_assert_str_eq(a.video_codec, "h264");
        cr_assert_eq(a.width, 1280);
        cr_assert_eq(a.height, 720);
        cr_assert_float_eq(a.fps, 25.0, 1e-9);
        cr_assert_str_eq(a.audio_codec, "");
        cr_assert_eq(a.has_audio, 0);
        cr_assert_eq(a.bitrate_kbps, 0.0);
        cr_assert(sfl_analysis_is_dead(&a));
    }
    free(text);
}

/* A codec word or a WxH cut by the end of the buffer is not read short. */
Test(analysis, cut_inside_tokens)
{
    const char *line =
        "Input #0, mpegts, from 'x':\n"
        "  Stream #0:0[0x100]: Video: h264 (Main), yuv420p, 1280x720 [SAR 1:1], 25 fps";
    size_t full = strlen(line);
    const char *codec_end = strstr(line, "h264") + 4;
    const char *res_end = strstr(line, "1280x720") + 8;
    sfl_analysis a;

    sfl_analysis_parse_ffmpeg(line, (size_t)(codec_end - line) - 1, CHECK_S, &a); /* "h26" */
    cr_assert_eq(a.has_video, 1);
    cr_assert_str_eq(a.video_codec, "");

    sfl_analysis_parse_ffmpeg(line, (size_t)(res_end - line) - 1, CHECK_S, &a); /* "1280x72" */
    cr_assert_str_eq(a.video_codec, "h264");
    cr_assert_eq(a.width, 0);
    cr_assert_eq(a.height, 0);

    sfl_analysis_parse_ffmpeg(line, full - 1, CHECK_S, &a); /* "25 fp" */
    cr_assert_eq(a.width, 1280);
    cr_assert_eq(a.fps, 0.0);

    sfl_analysis_parse_ffmpeg(line, full, CHECK_S, &a); /* "25 fps" at the very end */
    cr_assert_eq(a.fps, 0.0, "an unterminated last token is not trusted");
}

/* Every fact of a, if any, is the same fact in full. */
static void assert_subset(const sfl_analysis *a, const sfl_analysis *full, size_t at)
{
    cr_assert(a->video_codec[0] == '\0' || strcmp(a->video_codec, full->video_codec) == 0,
              "cut at %zu: video codec '%s', whole '%s'", at, a->video_codec, full->video_codec);
    cr_assert(a->audio_codec[0] == '\0' || strcmp(a->audio_codec, full->audio_codec) == 0,
              "cut at %zu: audio codec '%s', whole '%s'", at, a->audio_codec, full->audio_codec);
    cr_assert((a->width == 0 && a->height == 0) ||
                  (a->width == full->width && a->height == full->height),
              "cut at %zu: %dx%d, whole %dx%d", at, a->width, a->height, full->width, full->height);
    cr_assert(a->fps == 0 || a->fps == full->fps, "cut at %zu: fps %f, whole %f", at, a->fps,
              full->fps);
    cr_assert_leq(a->has_video, full->has_video, "cut at %zu: has_video", at);
    cr_assert_leq(a->has_audio, full->has_audio, "cut at %zu: has_audio", at);
}

/* A last line cut short must not say what the whole line would not: "Audio: "
 * before "Video: " on one line is the video line once complete, and "N tbr"
 * only stands in for fps when no "M fps" follows (the lines of
 * tests/fuzz/regressions/ffmpeg/). Every prefix is checked. */
Test(analysis, cut_line_never_says_more)
{
    static const char *const logs[] = {
        "Input #0\n  Stream #0:0: Audio: aac, Video: h264, 1280x720, 25 fps\n",
        "Input #0\n  Stream #0:0: Video: h264, 1280x720, 16 tbr, 25 fps\n",
        "Input #0\n  Stream #0:0: Video: h264, 640x360, 24 tbr\n"
        "  Stream #0:1: Audio: mp3, Video: x, 48000 Hz\n",
    };
    for (size_t k = 0; k < sizeof(logs) / sizeof(logs[0]); k++) {
        size_t len = strlen(logs[k]);
        sfl_analysis full;
        sfl_analysis_parse_ffmpeg(logs[k], len, CHECK_S, &full);
        for (size_t n = 0; n <= len; n++) {
            sfl_analysis a;
            sfl_analysis_parse_ffmpeg(logs[k], n, CHECK_S, &a);
            assert_subset(&a, &full, n);
        }
    }

    sfl_analysis a;
    const char *av = logs[0];
    size_t at = (size_t)(strstr(av, "aac, ") - av) + 5; /* "...Audio: aac, " */
    sfl_analysis_parse_ffmpeg(av, at, CHECK_S, &a);
    cr_assert_eq(a.has_audio, 0);
    cr_assert_str_eq(a.audio_codec, "");
    sfl_analysis_parse_ffmpeg(av, strlen(av), CHECK_S, &a);
    cr_assert_eq(a.has_audio, 0, "the line is the video line");
    cr_assert_str_eq(a.video_codec, "h264");

    const char *tf = logs[1];
    at = (size_t)(strstr(tf, "tbr, ") - tf) + 5; /* "...16 tbr, " */
    sfl_analysis_parse_ffmpeg(tf, at, CHECK_S, &a);
    cr_assert_eq(a.width, 1280);
    cr_assert_eq(a.fps, 0.0, "tbr stood in for an fps still to come");
    sfl_analysis_parse_ffmpeg(tf, strlen(tf), CHECK_S, &a);
    cr_assert_float_eq(a.fps, 25.0, 1e-9);
}

/* Once the video line is taken, an audio line cut short still gives its codec
 * (no "Video: " later on it could change what it is); and a cut video line
 * whose tokens so far are complete keeps its fps. */
Test(analysis, cut_audio_line_after_video)
{
    const char *text = "Input #0, mpegts, from 'x':\n"
                       "  Stream #0:0: Video: h264, yuv420p, 1280x720, 25 fps, 50 tbr\n"
                       "  Stream #0:1: Audio: aac (LC), 48000 Hz, stereo";
    sfl_analysis a;
    sfl_analysis_parse_ffmpeg(text, strlen(text), CHECK_S, &a);
    cr_assert_str_eq(a.video_codec, "h264");
    cr_assert_float_eq(a.fps, 25.0, 1e-9);
    cr_assert_eq(a.has_audio, 1);
    cr_assert_str_eq(a.audio_codec, "aac");

    const char *cut = strstr(text, "50 tbr"); /* "..., 25 fps, " */
    sfl_analysis_parse_ffmpeg(text, (size_t)(cut - text), CHECK_S, &a);
    cr_assert_float_eq(a.fps, 25.0, 1e-9);
}

/*--- Hostile and empty input -------------------------------------------------*/

Test(analysis, empty_and_null)
{
    sfl_analysis a;
    memset(&a, 0x5a, sizeof(a));
    sfl_analysis_parse_ffmpeg("", 0, CHECK_S, &a);
    assert_nothing(&a);
    cr_assert_eq(a.bitrate_kbps, 0.0);
    cr_assert(sfl_analysis_is_dead(&a));

    memset(&a, 0x5a, sizeof(a));
    sfl_analysis_parse_ffmpeg(NULL, 0, CHECK_S, &a);
    assert_nothing(&a);
    cr_assert_eq(a.bitrate_kbps, 0.0);

    sfl_analysis_parse_ffmpeg("x", 1, CHECK_S, NULL); /* no crash */

    /* only separators */
    parse_str("\r\n\r\r\n\n", CHECK_S, &a);
    assert_nothing(&a);
}

Test(analysis, random_garbage)
{
    enum { N = 1 << 20 };
    unsigned char *buf = malloc(N);
    cr_assert_not_null(buf);
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < N; i++)
        buf[i] = (unsigned char)next_rand(&s);
    sfl_analysis a;
    sfl_analysis_parse_ffmpeg((const char *)buf, N, CHECK_S, &a);
    assert_nothing(&a);
    cr_assert_eq(a.bitrate_kbps, 0.0);
    free(buf);
}

/* A real capture behind 64 KiB of binary junk (NULs included) and a 1 MiB line
 * without a newline still parses to the same facts. */
Test(analysis, junk_and_long_line_before_capture)
{
    size_t len;
    char *text = load_fixture("mpeg2_mp2_576p50.txt", &len);
    size_t junk = 64 * 1024, longline = 1024 * 1024;
    size_t total = junk + 1 + longline + 1 + len;
    char *buf = malloc(total);
    cr_assert_not_null(buf);
    uint64_t s = 42;
    for (size_t i = 0; i < junk; i++) {
        char c = (char)next_rand(&s);
        buf[i] = (c == '\n' || c == '\r') ? '\0' : c;
    }
    buf[junk] = '\n';
    memset(buf + junk + 1, 'x', longline);
    buf[junk + 1 + longline] = '\n';
    memcpy(buf + junk + 1 + longline + 1, text, len);

    sfl_analysis a;
    sfl_analysis_parse_ffmpeg(buf, total, CHECK_S, &a);
    cr_assert_str_eq(a.video_codec, "mpeg2video");
    cr_assert_str_eq(a.audio_codec, "mp2");
    cr_assert_eq(a.width, 720);
    cr_assert_eq(a.height, 576);
    cr_assert_float_eq(a.fps, 50.0, 1e-9);
    cr_assert_float_eq(a.bitrate_kbps, KBPS(1109012), 0.001);
    free(buf);
    free(text);
}

/* NULs and binary inside the stream lines do not derail the parser or leak
 * into the codec names. */
Test(analysis, nul_bytes_inside_lines)
{
    static const char text[] = "Input #0, mpegts, from 'x':\n"
                               "  Stream #0:0: Video: h264\0\xff junk, 704x576, 25 fps, 25 tbr\n"
                               "  Stream #0:1: Audio: aac\0(LC)\n";
    sfl_analysis a;
    sfl_analysis_parse_ffmpeg(text, sizeof(text) - 1, CHECK_S, &a);
    cr_assert_str_eq(a.video_codec, "h264");
    cr_assert_str_eq(a.audio_codec, "aac");
    cr_assert_eq(a.width, 704);
    cr_assert_eq(a.height, 576);
    cr_assert_float_eq(a.fps, 25.0, 1e-9);
}

/* An overlong codec word is cut to the field, never past it. */
Test(analysis, overlong_codec)
{
    char text[256];
    snprintf(text, sizeof(text), "Input #0, x:\n  Stream #0:0: Video: %s, 10x10, 5 fps\n",
             "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop");
    sfl_analysis a;
    parse_str(text, CHECK_S, &a);
    cr_assert_eq(strlen(a.video_codec), sizeof(a.video_codec) - 1);
    cr_assert_eq(strncmp(a.video_codec, "abcdefghijklmnopqrstuvwxyz01234", 31), 0);
    cr_assert_eq(a.width, 10);
}

/*--- Rules on synthetic lines (shaped like ffmpeg 5.1's) --------------------*/

/* Output streams (-f null's wrapped_avframe / pcm_s16le) never stand in for
 * missing input streams. */
Test(analysis, output_streams_ignored)
{
    sfl_analysis a;
    parse_str("Input #0, mpegts, from 'http://h/a.ts':\n"
              "  Stream #0:0[0x101]: Audio: mp2 ([3][0][0][0] / 0x0003), 48000 Hz, stereo\n"
              "Stream mapping:\n"
              "  Stream #0:0 -> #0:0 (mp2 (native) -> pcm_s16le (native))\n"
              "Output #0, null, to 'pipe:':\n"
              "  Stream #0:0: Video: wrapped_avframe, yuv420p, 720x576 (0x0), 25 fps, 25 tbn\n"
              "  Stream #0:1: Audio: pcm_s16le, 48000 Hz, stereo, s16, 1536 kb/s\n",
              CHECK_S, &a);
    cr_assert_eq(a.has_video, 0);
    cr_assert_str_eq(a.video_codec, "");
    cr_assert_eq(a.width, 0);
    cr_assert_eq(a.fps, 0.0);
    cr_assert_str_eq(a.audio_codec, "mp2");

    /* stream lines before any Input header are not trusted either */
    parse_str("  Stream #0:0: Video: h264, yuv420p, 640x480, 25 fps\n", CHECK_S, &a);
    cr_assert_eq(a.has_video, 0);
}

Test(analysis, tbr_when_no_fps_and_k_suffix)
{
    sfl_analysis a;
    parse_str("Input #0, mpegts, from 'x':\n"
              "  Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), "
              "yuv420p(tv, bt709, top first), 1920x1080 [SAR 1:1 DAR 16:9], 50 tbr, 90k tbn\n",
              CHECK_S, &a);
    cr_assert_float_eq(a.fps, 50.0, 1e-9);
    cr_assert_eq(a.width, 1920);

    parse_str("Input #0, x:\n  Stream #0:0: Video: rawvideo (I420 / 0x30323449), yuv420p, "
              "352x288, 1k fps, 25 tbr\n",
              CHECK_S, &a);
    cr_assert_float_eq(a.fps, 1000.0, 1e-9);
    cr_assert_eq(a.width, 352);
    cr_assert_eq(a.height, 288);
}

Test(analysis, no_resolution_when_only_zero_or_hex)
{
    sfl_analysis a;
    parse_str("Input #0, x:\n  Stream #0:0: Video: h264 (avc1 / 0x31637661), none, 0x0, 25 fps\n",
              CHECK_S, &a);
    cr_assert_eq(a.has_video, 1);
    cr_assert_str_eq(a.video_codec, "h264");
    cr_assert_eq(a.width, 0);
    cr_assert_eq(a.height, 0);
    cr_assert_float_eq(a.fps, 25.0, 1e-9);
}

Test(analysis, statistics_beats_progress)
{
    const char *text =
        "frame=   10 fps=0.0 q=-0.0 size=  100kB time=00:00:01.00 bitrate= 999.0kbits/s\r"
        "[AVIOContext @ 0x1] Statistics: 375000 bytes read, 0 seeks\n";
    sfl_analysis a;
    parse_str(text, 3.0, &a);
    cr_assert_float_eq(a.bitrate_kbps, 1000.0, 1e-9);
    /* without a usable duration the Statistics line cannot give a rate */
    parse_str(text, 0.0, &a);
    cr_assert_float_eq(a.bitrate_kbps, 999.0, 1e-9);
    parse_str(text, NAN, &a);
    cr_assert_float_eq(a.bitrate_kbps, 999.0, 1e-9);
}

Test(analysis, last_progress_value_wins)
{
    sfl_analysis a;
    parse_str("size= 1kB bitrate=  12.5kbits/s\rsize= 2kB bitrate= 800.25kbits/s\r"
              "size= 3kB bitrate=1234.5kbits/s speed=1x\r",
              CHECK_S, &a);
    cr_assert_float_eq(a.bitrate_kbps, 1234.5, 1e-9);

    parse_str("bitrate= 500.0kbits/s\rbitrate=N/A speed=1x\n", CHECK_S, &a);
    cr_assert_eq(a.bitrate_kbps, 0.0, "N/A last means unknown");

    /* the input dump's "bitrate: N kb/s" and a truncated value are not progress */
    parse_str("  Duration: 00:00:04.89, start: 1.4, bitrate: 98 kb/s\n"
              "bitrate= 700.0kbits/s\rbitrate= 12",
              CHECK_S, &a);
    cr_assert_float_eq(a.bitrate_kbps, 700.0, 1e-9);
}

/*--- Dead rule and formatting ------------------------------------------------*/

struct dead_case {
    int width, height;
    double bitrate_kbps;
    int dead;
};

ParameterizedTestParameters(analysis, dead_rule)
{
    static struct dead_case cases[] = {
        {1920, 1080, 5000, 0}, {1, 1, 0.001, 0},   {0, 0, 5000, 1},     {1920, 0, 5000, 1},
        {0, 1080, 5000, 1},    {1920, 1080, 0, 1}, {1920, 1080, -1, 1}, {0, 0, 0, 1},
    };
    return cr_make_param_array(struct dead_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct dead_case *c, analysis, dead_rule)
{
    sfl_analysis a;
    memset(&a, 0, sizeof(a));
    a.width = c->width;
    a.height = c->height;
    a.bitrate_kbps = c->bitrate_kbps;
    cr_assert_eq(sfl_analysis_is_dead(&a), c->dead, "%dx%d @ %f", c->width, c->height,
                 c->bitrate_kbps);
}

Test(analysis, dead_edge_cases)
{
    sfl_analysis a;
    memset(&a, 0, sizeof(a));
    a.width = 1920;
    a.height = 1080;
    a.bitrate_kbps = NAN;
    cr_assert(sfl_analysis_is_dead(&a));
    cr_assert(sfl_analysis_is_dead(NULL));
}

Test(analysis, resolution_format)
{
    sfl_analysis a;
    memset(&a, 0, sizeof(a));
    char buf[16];
    sfl_analysis_resolution(&a, buf, sizeof(buf));
    cr_assert_str_eq(buf, "0x0");

    a.width = 1920;
    a.height = 1080;
    sfl_analysis_resolution(&a, buf, sizeof(buf));
    cr_assert_str_eq(buf, "1920x1080");

    sfl_analysis_resolution(&a, buf, 3);
    cr_assert_str_eq(buf, "19");

    sfl_analysis_resolution(NULL, buf, sizeof(buf));
    cr_assert_str_eq(buf, "0x0");

    sfl_analysis_resolution(&a, NULL, 0); /* no crash */
}

/*--- Why a check failed: the error line --------------------------------------*/

/* Arrays, not pointers: Criterion hands parameters to a new process. */
typedef struct error_case {
    char log[400];
    char want[80]; /* a part of the chosen line; "": no line */
    char not [32]; /* what it must not be; "": anything */
} error_case;

ParameterizedTestParameters(analysis, error_line)
{
    static error_case cases[] = {
        /* The filler-packet provider: the reason, then a statistics line. */
        {"[tcp @ 0x55] Starting connection attempt to 127.0.0.1 port 1\n"
         "[tcp @ 0x55] Successfully connected to 127.0.0.1 port 1\n"
         "http://h/live/u/p/1.ts: could not find codec parameters\n"
         "[AVIOContext @ 0x55ed824874c0] Statistics: 443680 bytes read, 0 seeks\n",
         "could not find codec parameters", "Statistics"},
        /* A 404: the HTTP error line carries the code. */
        {"[http @ 0x56] HTTP error 404 Not Found\n"
         "http://h/nothere: Server returned 404 Not Found\n",
         "HTTP error 404 Not Found", ""},
        {"[tcp @ 0x56] Connection to tcp://127.0.0.1:1 failed: Connection refused\n"
         "http://127.0.0.1:1/x: Connection refused",
         "http://127.0.0.1:1/x: Connection refused", ""},
        {"Input #0, mpegts\n"
         "x.ts: Invalid data found when processing input\n"
         "[AVIOContext @ 0x1] Statistics: 10 bytes read, 0 seeks\n"
         "size=N/A time=00:00:00.00 bitrate=N/A speed=N/A\r",
         "Invalid data found when processing input", "bitrate"},
        /* Nothing but noise: no line at all (the caller says why otherwise). */
        {"[AVIOContext @ 0x1] Statistics: 10 bytes read, 0 seeks\n", "", ""},
        /* A plain command's last words still come through. */
        {"curl: (22) The requested URL returned error: 401\n", "error: 401", ""},
    };
    return cr_make_param_array(error_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(error_case *c, analysis, error_line)
{
    char buf[256];
    sfl_analysis_error_line(c->log, strlen(c->log), buf, sizeof(buf));
    if (!c->want[0])
        cr_assert_str_eq(buf, "", "chose %s", buf);
    else
        cr_assert(strstr(buf, c->want), "chose \"%s\", want a line with \"%s\"", buf, c->want);
    if (c->not [0])
        cr_assert_null(strstr(buf, c->not ), "chose \"%s\"", buf);
}

Test(analysis, error_line_cut_and_binary)
{
    const char log[] = "x: could not find\0 codec parameters\n";
    char buf[8];
    sfl_analysis_error_line(log, sizeof(log) - 1, buf, sizeof(buf));
    cr_assert_eq(strlen(buf), 7, "cut to the buffer: %s", buf);
    sfl_analysis_error_line(NULL, 0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "");
}

Test(analysis, http_error_code)
{
    const char *log = "[http @ 0x1] HTTP error 458 Unknown\n"
                      "x: Server returned 4XX Client Error, but not one of 40{0,1,3,4}\n";
    cr_assert_eq(sfl_analysis_http_error(log, strlen(log)), 458);
    const char *two = "[http @ 0x1] HTTP error 302 x\n[http @ 0x1] HTTP error 429 Too Many\n";
    cr_assert_eq(sfl_analysis_http_error(two, strlen(two)), 429, "the last 4xx/5xx wins");
    const char *none = "HTTP error 4580 x\nHTTP error 99 x\nHTTP error 45";
    cr_assert_eq(sfl_analysis_http_error(none, strlen(none)), 0);
    cr_assert_eq(sfl_analysis_http_error(NULL, 0), 0);
}

/* A redirect to a short clip: two connections of a plain input, little read. */
Test(analysis, redirect_signals)
{
    const char *log = "[tcp @ 0x1] Starting connection attempt to 127.0.0.1 port 80\n"
                      "[tcp @ 0x2] Starting connection attempt to 127.0.0.1 port 80\n"
                      "frame=    3 fps=0.0 q=-0.0 size=N/A time=00:00:00.16 bitrate=N/A\r"
                      "frame=   20 fps=0.0 q=-0.0 Lsize=N/A time=00:01:02.84 bitrate=N/A\n";
    sfl_analysis a;
    sfl_analysis_parse_ffmpeg(log, strlen(log), 30, &a);
    cr_assert_eq(a.connections, 2);
    cr_assert_eq(a.hls, 0);
    cr_assert_float_eq(a.media_time_s, 62.84, 1e-9);
    const char *hls = "[hls @ 0x1] Opening 'http://h/seg1.ts' for reading\n"
                      "[tcp @ 0x2] Starting connection attempt to h port 80\n"
                      "time=bad time=00:00:0x\n";
    sfl_analysis_parse_ffmpeg(hls, strlen(hls), 30, &a);
    cr_assert_eq(a.hls, 1);
    cr_assert_eq(a.connections, 1);
    cr_assert_float_eq(a.media_time_s, 0, 1e-9, "no well-formed time=");
}
