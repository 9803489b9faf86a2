/* test_check_conn.c - one connection per check: `sflimit check` with the
 * DEFAULT check command (real ffmpeg, no check.command in the config) against
 * the fake provider serving a seekable file (--ranges: Accept-Ranges, 206 for
 * a Range), as a VOD server or a live server that answers ranges does. The
 * provider's own counts are the truth: one request per check, none refused,
 * no violation. ffmpeg 5.1 without "-seekable 0" opens a second and a third
 * connection to such a file to read its end while it holds the first, so
 * these tests fail with that command.
 *
 * The provider's per-user limit equals the account's max_streams: a second
 * connection of a check is refused (counted in "refused" and "violations")
 * exactly when it would have gone over the limit. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sfl_test_redis redis;
static sfl_test_provider provider;
static char dir[128];
static char results_path[256], err_path[256];
static pid_t child; /* the sflimit of the test, killed by teardown if a test failed early */

static void setup(void)
{
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
    if (child > 0 && waitpid(child, NULL, WNOHANG) == 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    th_provider_stop(&provider);
    th_redis_stop(&redis);
}

TestSuite(check_conn, .init = setup, .fini = teardown, .timeout = 180);

/*--- The media and the world ------------------------------------------------*/

typedef enum {
    MEDIA_TS,          /* MPEG-TS: ffmpeg reads its last timestamps at the end */
    MEDIA_MP4_FAST,    /* MP4 with its index (moov) first: "-movflags +faststart" */
    MEDIA_MP4_MOOV_END /* MP4 as ffmpeg writes it by default: moov after the media */
} media_kind;

/* Makes 20 s of 320x240 H.264 + AAC of the given kind in dir; the path goes
 * to path. Skips the test when ffmpeg cannot (not installed, no libx264). At
 * the provider's 4000 kbit/s a file takes over a second to send, so a check
 * that reads the end while the first connection is still sending shows up
 * as two connections at once. */
static void make_media(media_kind kind, char *path, size_t len)
{
    static const char *const names[] = {"media.ts", "media-fast.mp4", "media-moov-end.mp4"};
    char log[256];
    snprintf(path, len, "%s/%s", dir, names[kind]);
    snprintf(log, sizeof(log), "%s/ffmpeg-gen.log", dir);
    /* clang-format off */
    const char *argv[32] = {"ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
                            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                            "-f", "lavfi", "-i", "sine=frequency=440", "-t", "20",
                            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"};
    /* clang-format on */
    int n = 22;
    if (kind == MEDIA_TS) {
        argv[n++] = "-f";
        argv[n++] = "mpegts";
    } else if (kind == MEDIA_MP4_FAST) {
        argv[n++] = "-movflags";
        argv[n++] = "+faststart";
    }
    argv[n++] = path;
    argv[n] = NULL;
    int st = th_wait(th_spawn((char *const *)argv, log, log), 60000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *why = th_read_file(log);
        cr_skip_test("ffmpeg cannot make the test media (ffmpeg, libx264, aac?): %s",
                     why ? why : "");
    }
}

/* Two accounts as the provider sees them: a (limit 1) and b (limit 2). */
static const char *const users[] = {"a:pa:1", "b:pb:2", NULL};
static const char *const ranges[] = {"--ranges", NULL};

/* A config with no check.command and no check.parser: the defaults. */
static void write_config(char *path, size_t len)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"t1\",\n"
             " \"redis\": {\"url\": \"%s\"},\n"
             " \"lease\": {\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500,"
             " \"acquire_timeout\": 60%s},\n"
             " \"concurrent_streams\": {\"global_limit\": 10, \"stagger_delay\": 0},\n"
             " \"stream_analysis\": {\"ffmpeg_duration\": 1, \"retries\": 0},\n"
             " \"accounts\": [{\"id\": 1, \"max_streams\": 1}, {\"id\": 2, \"max_streams\": 2}],\n"
             " \"check\": {\"timeout\": 30}}\n",
             redis.url, th_wrap_lease());
    th_write_file(dir, "sflimit.json", text, path, len);
}

/* na streams of account 1 (user a), nb of account 2 (user b); ids 100+, 200+. */
static void write_streams(int na, int nb, char *path, size_t len)
{
    th_streams b;
    th_streams_init(&b);
    for (int i = 0; i < na; i++)
        th_streams_add(&b, provider.port, 100 + i, NULL, 1, "a", "pa");
    for (int i = 0; i < nb; i++)
        th_streams_add(&b, provider.port, 200 + i, NULL, 2, "b", "pb");
    th_streams_write(&b, dir, "streams.json", path, len);
}

/* The stderr of sflimit (static buffer, for messages). */
static const char *err_text(void)
{
    static char buf[8192];
    char *t = th_read_file(err_path);
    snprintf(buf, sizeof(buf), "%s", t ? t : "(none)");
    free(t);
    return buf;
}

/* Runs `sflimit check` over the batch; asserts exit 0 and one result per
 * stream, read into r. */
static void run_batch(int na, int nb, th_results *r)
{
    char config[256], streams[256];
    write_config(config, sizeof(config));
    write_streams(na, nb, streams, sizeof(streams));
    snprintf(results_path, sizeof(results_path), "%s/results.jsonl", dir);
    snprintf(err_path, sizeof(err_path), "%s/err.log", dir);
    const char *argv[] = {SFL_BIN, "check", "-c", config, streams, NULL};
    child = th_spawn((char *const *)argv, results_path, err_path);
    int st = th_wait(child, 150000);
    if (st == -1)
        cr_assert_fail("sflimit check did not end within 150 s; stderr:\n%s", err_text());
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sflimit check failed; stderr:\n%s",
              err_text());
    th_results_read(r, results_path);
    cr_assert_eq(r->n, na + nb, "%d results for %d streams; stderr:\n%s", r->n, na + nb,
                 err_text());
    for (int i = 0; i < na; i++)
        th_result_for(r, 100 + i);
    for (int i = 0; i < nb; i++)
        th_result_for(r, 200 + i);
}

static int provider_idle(void *arg)
{
    (void)arg;
    return th_provider_stat(&provider, "current") == 0;
}

/* The provider's counts, user by user: exactly one request per check, none
 * refused, no violation, never more open than the limit. */
static void expect_one_connection_each(int na, int nb)
{
    /* A connection is counted until the provider sees it closed. */
    cr_assert(th_until(provider_idle, NULL, 5000), "the provider still has connections open");
    const struct {
        const char *user;
        int checks;
        long long limit;
    } want[] = {{"a", na, 1}, {"b", nb, 2}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char key[64];
        long long requests, refused, violations, max_seen;
        snprintf(key, sizeof(key), "users.%s.requests", want[i].user);
        requests = th_provider_stat(&provider, key);
        snprintf(key, sizeof(key), "users.%s.refused", want[i].user);
        refused = th_provider_stat(&provider, key);
        snprintf(key, sizeof(key), "users.%s.violations", want[i].user);
        violations = th_provider_stat(&provider, key);
        snprintf(key, sizeof(key), "users.%s.max_seen", want[i].user);
        max_seen = th_provider_stat(&provider, key);
        cr_expect_eq(requests, want[i].checks,
                     "user %s: %lld requests for %d checks (%lld refused, %lld violations)",
                     want[i].user, requests, want[i].checks, refused, violations);
        cr_expect_eq(refused, 0, "user %s: %lld requests refused", want[i].user, refused);
        cr_expect_eq(violations, 0, "user %s: %lld violations", want[i].user, violations);
        cr_expect_leq(max_seen, want[i].limit, "user %s: %lld open at once, limit %lld",
                      want[i].user, max_seen, want[i].limit);
    }
    cr_expect_eq(th_provider_stat(&provider, "requests"), na + nb);
    cr_expect_eq(th_provider_stat(&provider, "refused"), 0);
    cr_expect_eq(th_provider_stat(&provider, "violations"), 0);
}

/* Every result OK with the test media's facts. */
static void expect_all_ok(const th_results *r)
{
    for (int i = 0; i < r->n; i++) {
        const cJSON *o = r->v[i];
        const char *e = th_str_of(o, "error");
        cr_expect_str_eq(th_str_of(o, "status"), "OK", "stream %lld: error %s", th_id_of(o),
                         e ? e : "null");
        cr_expect_str_eq(th_str_of(o, "video_codec"), "h264", "stream %lld", th_id_of(o));
        cr_expect_str_eq(th_str_of(o, "resolution"), "320x240", "stream %lld", th_id_of(o));
        cr_expect_gt(th_num_of(o, "bitrate_kbps"), 0, "stream %lld", th_id_of(o));
    }
}

static void start_provider(const char *media)
{
    th_provider_start_args(&provider, users, 0, media, ranges);
    th_account(&redis, 1, 1);
    th_account(&redis, 2, 2);
}

/*--- Tests -------------------------------------------------------------------*/

/* MPEG-TS served with ranges (a VOD .ts, or a live server that answers
 * ranges): 10 checks, 4 on a limit-1 account and 6 on a limit-2 one. */
Test(check_conn, ts_with_ranges_one_connection_per_check)
{
    char media[256];
    make_media(MEDIA_TS, media, sizeof(media));
    start_provider(media);
    th_results r;
    run_batch(4, 6, &r);
    expect_all_ok(&r); /* first: a check that never connected says why */
    expect_one_connection_each(4, 6);
    th_results_free(&r);
}

/* An MP4 with its index first (faststart), as a VOD URL serves it. */
Test(check_conn, mp4_faststart_with_ranges_one_connection_per_check)
{
    char media[256];
    make_media(MEDIA_MP4_FAST, media, sizeof(media));
    start_provider(media);
    th_results r;
    run_batch(2, 3, &r);
    expect_all_ok(&r);
    expect_one_connection_each(2, 3);
    th_results_free(&r);
}

/* An MP4 with its index (moov) after the media, as ffmpeg and many encoders
 * write it. It cannot be read in one pass: ffmpeg reads it through to the
 * index, cannot go back to the media and fails. Still one connection per
 * check and nothing refused; the result says Error with ffmpeg's last line,
 * not OK. (Reading it needs a second connection, which the lease does not
 * count: not done.) */
Test(check_conn, mp4_moov_at_end_with_ranges_one_connection_and_error)
{
    char media[256];
    make_media(MEDIA_MP4_MOOV_END, media, sizeof(media));
    start_provider(media);
    th_results r;
    run_batch(2, 3, &r);
    for (int i = 0; i < r.n; i++) {
        const cJSON *o = r.v[i];
        const char *e = th_str_of(o, "error");
        cr_expect_str_eq(th_str_of(o, "status"), "Error", "stream %lld: %s (error %s)", th_id_of(o),
                         th_str_of(o, "status"), e ? e : "null");
        if (!cJSON_IsNumber(cJSON_GetObjectItem(o, "exit_code")))
            continue; /* said above: the check never ran */
        cr_expect_neq(th_num_of(o, "exit_code"), 0, "stream %lld", th_id_of(o));
        cr_expect_not_null(e, "stream %lld: Error without a reason", th_id_of(o));
    }
    expect_one_connection_each(2, 3);
    th_results_free(&r);
}

/* {input_options} becomes the input's -protocol_whitelist (what the URL's
 * scheme needs underneath, nothing more) and, for an http(s) URL only,
 * -seekable 0 (ffmpeg refuses -seekable on udp:// rtmp:// rtsp://): a
 * command that writes down the arguments it got shows which. */
Test(check_conn, input_options_per_scheme)
{
    char config[256], streams[256], args[256];
    snprintf(args, sizeof(args), "%s/args.txt", dir);
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"t1\", \"redis\": {\"url\": \"%s\"},\n"
             " \"concurrent_streams\": {\"global_limit\": 1, \"stagger_delay\": 0},\n"
             " \"stream_analysis\": {\"retries\": 0},\n"
             " \"check\": {\"parser\": \"none\", \"timeout\": 30, \"command\": [\"sh\", \"-c\","
             " \"printf '%%s|' \\\"$@\\\" >> %s; echo >> %s\", \"sh\", \"{input_options}\","
             " \"{url}\"]}}\n",
             redis.url, args, args);
    th_write_file(dir, "sflimit.json", text, config, sizeof(config));
    th_write_file(dir, "streams.json",
                  "[{\"id\": 1, \"name\": \"h\", \"url\": \"http://127.0.0.1:9/x.ts\","
                  " \"m3u_account\": null},\n"
                  " {\"id\": 2, \"name\": \"s\", \"url\": \"HTTPS://127.0.0.1:9/y.ts\","
                  " \"m3u_account\": null},\n"
                  " {\"id\": 3, \"name\": \"u\", \"url\": \"udp://239.0.0.1:1234\","
                  " \"m3u_account\": null},\n"
                  " {\"id\": 4, \"name\": \"r\", \"url\": \"rtmp://127.0.0.1/live/z\","
                  " \"m3u_account\": null},\n"
                  " {\"id\": 5, \"name\": \"t\", \"url\": \"Rtsp://127.0.0.1/cam\","
                  " \"m3u_account\": null},\n"
                  " {\"id\": 6, \"name\": \"p\", \"url\": \"rtp://239.0.0.2:5004\","
                  " \"m3u_account\": null},\n"
                  " {\"id\": 7, \"name\": \"c\", \"url\": \"srt://127.0.0.1:9000\","
                  " \"m3u_account\": null}]\n",
                  streams, sizeof(streams));
    snprintf(results_path, sizeof(results_path), "%s/results.jsonl", dir);
    snprintf(err_path, sizeof(err_path), "%s/err.log", dir);
    const char *argv[] = {SFL_BIN, "check", "-c", config, streams, NULL};
    child = th_spawn((char *const *)argv, results_path, err_path);
    int st = th_wait(child, 60000);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "sflimit check failed:\n%s",
              err_text());
    char *got = th_read_file(args);
    cr_assert_not_null(got, "the check command never ran");
    /* One line per check, in any order (one at a time, but priorities tie). */
    const char *lines[] = {
        "-protocol_whitelist|http,https,tcp,tls,crypto|-seekable|0|http://127.0.0.1:9/x.ts|\n",
        "-protocol_whitelist|http,https,tcp,tls,crypto|-seekable|0|HTTPS://127.0.0.1:9/y.ts|\n",
        "-protocol_whitelist|udp|udp://239.0.0.1:1234|\n",
        "-protocol_whitelist|rtmp,tcp|rtmp://127.0.0.1/live/z|\n",
        "-protocol_whitelist|tcp,rtp,udp|Rtsp://127.0.0.1/cam|\n",
        "-protocol_whitelist|rtp,udp|rtp://239.0.0.2:5004|\n",
        "-protocol_whitelist|srt|srt://127.0.0.1:9000|\n",
    };
    int nlines = 0;
    for (const char *q = got; (q = strchr(q, '\n')) != NULL; q++)
        nlines++;
    cr_expect_eq(nlines, 7, "%d checks ran for 7 streams:\n%s", nlines, got);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        const char *at = strstr(got, lines[i]);
        cr_expect(at && (at == got || at[-1] == '\n'), "no line %s in:\n%s", lines[i], got);
    }
    free(got);
}
