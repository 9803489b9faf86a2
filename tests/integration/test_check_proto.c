/* test_check_proto.c - what the DEFAULT check command (real ffmpeg 5.1, no
 * check.command in the config) may open beyond the stream URL itself.
 *
 * A URL chooses ffmpeg's first protocol, but what ffmpeg reads there may
 * name more: an HLS playlist names its segments, an SDP file names RTP
 * addresses. {input_options} gives the input a -protocol_whitelist per
 * scheme (http: http,https,tcp,tls,crypto), so that:
 *   - HLS over http still plays: playlist and segments fetched, result OK;
 *   - a playlist naming file:///etc/passwd, or a file:// segment that is a
 *     real MPEG-TS, is refused: result Error, and the file is never opened
 *     (inotify on it sees no IN_OPEN);
 *   - an SDP served over http, naming RTP on 127.0.0.1 where a sender
 *     streams, is refused (Error). Without the whitelist ffmpeg's http
 *     input allows rtp and udp underneath and the check reads the stream
 *     (OK): this row fails against a command without the option.
 * The http server is this test's own (a forked child serving its temp
 * directory, one request per connection, logging each path). */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static sfl_test_redis redis;
static char dir[128], served_log[256];
static pid_t server_pid, sender_pid, child;
static int server_port;

static void reap(pid_t *pid)
{
    if (*pid > 0 && waitpid(*pid, NULL, WNOHANG) == 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static void setup(void)
{
    th_clear_env();
    server_pid = sender_pid = child = 0;
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    snprintf(served_log, sizeof(served_log), "%s/served.log", dir);
}

static void teardown(void)
{
    reap(&child);
    reap(&sender_pid);
    reap(&server_pid);
    th_redis_stop(&redis);
}

TestSuite(check_proto, .init = setup, .fini = teardown, .timeout = 180);

/*--- A static http server for the temp directory ---------------------------*/

static void serve_one(int c)
{
    char req[4096];
    size_t n = 0;
    while (n + 1 < sizeof(req) && !memmem(req, n, "\r\n\r\n", 4)) {
        ssize_t r = recv(c, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
    }
    req[n] = '\0';
    char path[512] = "";
    if (sscanf(req, "GET %511s", path) != 1)
        return;
    FILE *log = fopen(served_log, "a");
    if (log) {
        fprintf(log, "%s\n", path);
        fclose(log);
    }
    char file[800];
    snprintf(file, sizeof(file), "%s%s", dir, path);
    int fd = strstr(path, "..") ? -1 : open(file, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!send(c, nf, strlen(nf), MSG_NOSIGNAL);
        if (fd >= 0)
            close(fd);
        return;
    }
    const char *type = strstr(path, ".m3u8")  ? "application/vnd.apple.mpegurl"
                       : strstr(path, ".sdp") ? "application/sdp"
                                              : "video/mp2t";
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
                      "Connection: close\r\n\r\n",
                      type, (long long)sb.st_size);
    (void)!send(c, head, (size_t)hl, MSG_NOSIGNAL);
    char buf[65536];
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        if (send(c, buf, (size_t)r, MSG_NOSIGNAL) != r)
            break;
    close(fd);
}

static void server_start(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 16) == 0 &&
              getsockname(s, (struct sockaddr *)&a, &al) == 0);
    server_port = ntohs(a.sin_port);
    server_pid = fork();
    cr_assert_geq(server_pid, 0);
    if (server_pid == 0) {
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c < 0)
                continue;
            serve_one(c);
            close(c);
        }
    }
    close(s);
}

/* How many requests for paths holding `part` the server saw. */
static int served(const char *part)
{
    char *log = th_read_file(served_log);
    int n = 0;
    for (const char *q = log ? log : ""; (q = strstr(q, part)) != NULL; q += strlen(part))
        n++;
    free(log);
    return n;
}

/*--- The media -------------------------------------------------------------*/

/* Runs ffmpeg with args (NULL-terminated, after "ffmpeg -hide_banner
 * -nostdin -v error -y"); skips the test when it cannot. */
static void ffmpeg_make(const char *const *args)
{
    char log[256];
    snprintf(log, sizeof(log), "%s/ffmpeg-gen.log", dir);
    const char *argv[48] = {"ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"};
    int n = 6;
    for (int i = 0; args[i] && n < 47; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int st = th_wait(th_spawn((char *const *)argv, log, log), 60000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *why = th_read_file(log);
        cr_skip_test("ffmpeg cannot make the test media (ffmpeg, libx264, aac?): %s",
                     why ? why : "");
    }
}

/* dir/media.ts (8 s of 320x240 H.264 + AAC) and, cut from it, an HLS of
 * 2 s segments: dir/ok.m3u8 and dir/seg0.ts ... */
static void make_media(void)
{
    char ts[256], seg[256], m3u8[256];
    snprintf(ts, sizeof(ts), "%s/media.ts", dir);
    snprintf(seg, sizeof(seg), "%s/seg%%d.ts", dir);
    snprintf(m3u8, sizeof(m3u8), "%s/ok.m3u8", dir);
    const char *gen[] = {"-f",      "lavfi",     "-i",   "testsrc=size=320x240:rate=25",
                         "-f",      "lavfi",     "-i",   "sine=frequency=440",
                         "-t",      "8",         "-c:v", "libx264",
                         "-preset", "ultrafast", "-g",   "25",
                         "-c:a",    "aac",       "-f",   "mpegts",
                         ts,        NULL};
    ffmpeg_make(gen);
    const char *hls[] = {"-i",
                         ts,
                         "-c",
                         "copy",
                         "-f",
                         "hls",
                         "-hls_time",
                         "2",
                         "-hls_list_size",
                         "0",
                         "-hls_segment_filename",
                         seg,
                         m3u8,
                         NULL};
    ffmpeg_make(hls);
}

/*--- Running the default command -------------------------------------------*/

static const char *err_text(const char *path)
{
    static char buf[8192];
    char *t = th_read_file(path);
    snprintf(buf, sizeof(buf), "%s", t ? t : "(none)");
    free(t);
    return buf;
}

/* `sflimit check` of one custom stream (id 1) at url with the default
 * command; its one result (caller deletes). */
static cJSON *check_one(const char *url)
{
    static int n;
    char text[1024], config[256], streams[256], out[256], err[256], name[32];
    snprintf(text, sizeof(text),
             "{\"node_id\": \"p1\", \"redis\": {\"url\": \"%s\"},\n"
             " \"concurrent_streams\": {\"stagger_delay\": 0},\n"
             " \"stream_analysis\": {\"ffmpeg_duration\": 1, \"retries\": 0},\n"
             " \"check\": {\"timeout\": 30}}\n",
             redis.url);
    th_write_file(dir, "sflimit.json", text, config, sizeof(config));
    snprintf(text, sizeof(text), "[{\"id\": 1, \"name\": \"p\", \"url\": \"%s\"}]\n", url);
    snprintf(name, sizeof(name), "streams%d.json", n);
    th_write_file(dir, name, text, streams, sizeof(streams));
    snprintf(out, sizeof(out), "%s/out%d.jsonl", dir, n);
    snprintf(err, sizeof(err), "%s/err%d.log", dir, n++);
    const char *argv[] = {SFL_BIN, "check", "-c", config, streams, NULL};
    child = th_spawn((char *const *)argv, out, err);
    int st = th_wait(child, 60000);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "sflimit check failed:\n%s",
              err_text(err));
    child = 0;
    th_results r;
    th_results_read(&r, out);
    cr_assert_eq(r.n, 1, "%d results; stderr:\n%s", r.n, err_text(err));
    cJSON *one = cJSON_Duplicate(r.v[0], 1);
    th_results_free(&r);
    return one;
}

static void expect_status(const cJSON *res, const char *status, const char *what)
{
    const char *st = th_str_of(res, "status"), *e = th_str_of(res, "error");
    cr_expect_str_eq(st ? st : "?", status, "%s: status %s, error %s", what, st ? st : "?",
                     e ? e : "null");
}

/*--- Tests -----------------------------------------------------------------*/

/* A plain HLS over http: the playlist and its segments come through. */
Test(check_proto, hls_over_http_plays)
{
    make_media();
    server_start();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok.m3u8", server_port);
    cJSON *res = check_one(url);
    expect_status(res, "OK", "HLS over http");
    cr_expect_str_eq(th_str_of(res, "video_codec"), "h264");
    cr_expect_str_eq(th_str_of(res, "resolution"), "320x240");
    cJSON_Delete(res);
    cr_expect_eq(served("/ok.m3u8"), 1);
    cr_expect_geq(served("/seg"), 1, "no segment fetched");
}

/* Playlists on the http server that name local files: refused, and the
 * file (a real MPEG-TS, which ffmpeg would read fine) is never opened. */
Test(check_proto, hls_playlist_naming_files_is_refused)
{
    make_media();
    server_start();
    char text[1024], path[256], media[256];
    snprintf(media, sizeof(media), "%s/media.ts", dir);
    snprintf(text, sizeof(text),
             "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:8\n#EXT-X-MEDIA-SEQUENCE:0\n"
             "#EXTINF:8.0,\nfile://%s\n#EXT-X-ENDLIST\n",
             media);
    th_write_file(dir, "local.m3u8", text, path, sizeof(path));
    th_write_file(dir, "passwd.m3u8",
                  "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
                  "#EXTINF:2.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
                  path, sizeof(path));

    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    cr_assert_geq(in, 0);
    cr_assert_geq(inotify_add_watch(in, media, IN_OPEN | IN_ACCESS), 0);
    const char *lists[] = {"local.m3u8", "passwd.m3u8"};
    for (size_t i = 0; i < 2; i++) {
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", server_port, lists[i]);
        cJSON *res = check_one(url);
        expect_status(res, "Error", lists[i]);
        cJSON_Delete(res);
        cr_expect_eq(served(lists[i]), 1, "%s not fetched", lists[i]);
    }
    char ev[4096];
    ssize_t got = read(in, ev, sizeof(ev));
    close(in);
    cr_expect_leq(got, 0, "%s was opened or read (%zd bytes of inotify events)", media, got);
}

/* An SDP served over http names RTP on 127.0.0.1 where a sender streams:
 * ffmpeg's http input would allow rtp and udp underneath. Refused. */
Test(check_proto, sdp_over_http_cannot_open_rtp)
{
    make_media();
    server_start();
    int rtp_port = th_free_port() & ~1; /* RTP wants an even port; RTCP the next */
    char text[512], path[256], media[256], dest[64];
    snprintf(text, sizeof(text),
             "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=t\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             "m=video %d RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n",
             rtp_port);
    th_write_file(dir, "s.sdp", text, path, sizeof(path));
    snprintf(media, sizeof(media), "%s/media.ts", dir);
    snprintf(dest, sizeof(dest), "rtp://127.0.0.1:%d", rtp_port);
    const char *argv[] = {"ffmpeg",       "-hide_banner", "-nostdin", "-v",         "error", "-re",
                          "-stream_loop", "-1",           "-i",       media,        "-map",  "0",
                          "-c",           "copy",         "-f",       "rtp_mpegts", dest,    NULL};
    sender_pid = th_spawn((char *const *)argv, NULL, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/s.sdp", server_port);
    cJSON *res = check_one(url);
    expect_status(res, "Error", "SDP over http");
    cJSON_Delete(res);
    cr_expect_eq(served("/s.sdp"), 1);
    cr_expect(th_alive(sender_pid), "the RTP sender stopped early: the test proves nothing");
}
