/* harness.h - what integration tests share: a real redis-server on a free
 * port, started and stopped by the test, a blocking client to look at it,
 * child processes of the built binaries (a config for `sflimit check` and
 * runs of it), and waiting on conditions. */
#ifndef SFL_HARNESS_H
#define SFL_HARNESS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sfl_test_redis {
    pid_t pid;
    int port;
    char dir[128];
    char url[160];
    const char *const *extra; /* kept for restarts */
} sfl_test_redis;

/* Starts redis-server (no persistence) on a free loopback port; extra args
 * (NULL-terminated, may be NULL) are appended. Aborts the test on failure. */
void th_redis_start(sfl_test_redis *r, const char *const *extra);
/* SIGKILL and reap. Idempotent. */
void th_redis_stop(sfl_test_redis *r);
/* Stops and starts again on the same port: all data gone. */
void th_redis_restart(sfl_test_redis *r);
/* One blocking command; the caller frees the reply. Aborts on connection failure. */
redisReply *th_redis(const sfl_test_redis *r, const char *fmt, ...);
/* Integer result of a command (ZCARD, EXISTS, ...), or the integer in a string reply. */
long long th_redis_int(const sfl_test_redis *r, const char *fmt, ...);
/* Marks the Redis as one no check has used, as `sflimit init` does (the
 * epoch marker: no recovery window); nothing if it has its marker. */
void th_epoch_init(const sfl_test_redis *r);
/* Writes an account's conf as `sflimit accounts set ID MAX --fresh` would
 * (th_epoch_init included). */
void th_account(const sfl_test_redis *r, long long id, long long max_streams);
/* An account's max_streams as Redis holds it: its conf's, or for an account
 * whose conf describes logins (account.lua) the sum of their confs' (0 if one
 * is unlimited); -1 when one has none. */
long long th_account_limit(const sfl_test_redis *r, long long id);

/* Spawns argv (argv[0] a path) with stdout/stderr to the given files (NULL =
 * /dev/null). Returns the pid. With SFL_TEST_WRAP set, an sflimit (SFL_BIN)
 * runs under that command, e.g. valgrind; the pid is still the process the
 * test signals and waits for. */
pid_t th_spawn(char *const argv[], const char *out_path, const char *err_path);
/* As th_spawn, but the child dies with the test process (PR_SET_PDEATHSIG:
 * a test killed outright by its timeout leaves nothing running) and argv
 * runs as given (SFL_TEST_WRAP does not apply). */
pid_t th_spawn_tied(char *const argv[], const char *out_path, const char *err_path);
/* Spawns `sflimit node -c config` (stderr to err_path) and waits up to 20 s
 * until GET /healthz on port answers 200 and, when node_id is given, r
 * holds sfl:node:<node_id> (the node registered). Returns the pid; 0 when
 * the node could not listen on port (another process took it: pick another
 * port and call again). Fails the test, with the node's stderr, when the
 * node dies or is not healthy in time. */
pid_t th_node_start(const char *config, int port, const char *err_path, const sfl_test_redis *r,
                    const char *node_id);
/* Waits for pid up to timeout_ms; returns the wait status, or -1 on timeout. */
int th_wait(pid_t pid, int timeout_ms);
/* 1 while pid exists and is not a zombie (/proc/PID/stat state). */
int th_alive(pid_t pid);

/* Polls cond every 10 ms until it is true or timeout_ms passes; returns cond's last value. */
int th_until(int (*cond)(void *), void *arg, int timeout_ms);
int64_t th_now_ms(void);
/* Reads a whole file (NUL-terminated, caller frees); NULL if missing. */
char *th_read_file(const char *path);
/* A fresh temp directory for this test. */
void th_tmpdir(char *buf, size_t len);
/* Unsets every SFL_* variable sflimit reads, so that the environment
 * chooses no config, Redis or node behind a test's back. */
void th_clear_env(void);

struct event_base;
/* Runs the loop until cond(arg) is true or timeout_ms passes; returns cond's
 * last value. The way to wait for anything: give it a generous deadline. */
int th_loop_until(struct event_base *base, int (*cond)(void *), void *arg, int timeout_ms);
/* Runs the loop for ms milliseconds, whatever happens. Only for letting time
 * pass on purpose: to show that something does NOT happen within it (a loss,
 * a grant), or to pace a loop that samples until its own condition. Never to
 * wait for something that will happen: that is th_loop_until. */
void th_loop_for(struct event_base *base, int ms);

/* The fake provider (tests/tools/fake_provider.c) on a free loopback port:
 * the ground truth of how many connections each user really had open. */
typedef struct sfl_test_provider {
    pid_t pid;
    char host[32]; /* the IPv4 address it listens on; th_provider_start: 127.0.0.1 */
    int port;
    char dir[128];
} sfl_test_provider;

/* users: NULL-terminated "NAME:PASS:LIMIT" list; file may be NULL (filler bytes). */
void th_provider_start(sfl_test_provider *p, const char *const *users, int hold_ms,
                       const char *file);
/* The same with more options of the provider (NULL-terminated), e.g. "--ranges". */
void th_provider_start_args(sfl_test_provider *p, const char *const *users, int hold_ms,
                            const char *file, const char *const *args);
void th_provider_stop(sfl_test_provider *p);
/* Fetches /stats from host:port; the caller frees with cJSON_Delete. Fails
 * the test when the provider cannot be reached. */
struct cJSON *th_provider_stats(const sfl_test_provider *p);
/* A number from /stats: "violations", "max_concurrent", "requests", "refused",
 * or "users.NAME.max_seen" etc. */
long long th_provider_stat(const sfl_test_provider *p, const char *path);
/* The provider's Xtream Codes panel API (see fake_provider.c): GETs
 * /player_api.php?username=USER&password=PASS (both percent-encoded) and
 * copies the answer's body into buf (truncated to len - 1 bytes); returns
 * buf. Fails the test unless the provider answers 200. Each call counts in
 * users.USER.panel_requests of /stats. Per-user variations are options of
 * the provider, given to th_provider_start_args, e.g.
 *   {"--panel", "u1:status=Expired", "--panel", "u1:numbers=1", NULL}
 * (status=Active|Expired|Banned|Disabled, numbers=0|1: active_cons and
 * max_connections as JSON numbers, not strings; auth=0|1: 0 answers
 * {"user_info": {"auth": 0}} even to the right password; exp=null|UNIX). */
const char *th_provider_panel(const sfl_test_provider *p, const char *user, const char *pass,
                              char *buf, size_t len);
/* Writes text to a new file in dir; returns the path in buf. */
void th_write_file(const char *dir, const char *name, const char *text, char *buf, size_t len);

/*--- The fake Dispatcharr (tests/tools/fake_dispatcharr.c) -----------------*/

typedef struct sfl_test_dispatcharr {
    pid_t pid;
    int port;
    int paused;         /* between th_dispatcharr_pause and _resume */
    char accounts[256]; /* the file it serves */
    char viewers[256];  /* its --viewers file: dir/viewers.json */
} sfl_test_dispatcharr;

/* Starts it on a free loopback port, serving accounts_json (written to
 * dir/accounts.json) to the login "admin"/password and to api_key (either
 * may be NULL); extra: more arguments (NULL-terminated, may be NULL; not
 * --viewers). It is given --viewers dir/viewers.json, removed first: it
 * starts with no viewers (and a restart in dir reads its own port). Its
 * output goes to dir/fake.log. Aborts the test when it does not start. */
void th_dispatcharr_start(sfl_test_dispatcharr *d, const char *dir, const char *accounts_json,
                          const char *password, const char *api_key, const char *const *extra);
/* SIGCONT (it may be paused), SIGKILL and reap. Idempotent. */
void th_dispatcharr_stop(sfl_test_dispatcharr *d);
/* Dispatcharr unreachable: SIGSTOP, returning once it has stopped. From
 * then on connections to it are accepted by the kernel and hang with no
 * answer, as with a dead host, until th_dispatcharr_resume (SIGCONT), after
 * which it answers the requests that waited. Meanwhile th_dispatcharr_call,
 * _stat and _set_accounts fail the test rather than hang with it;
 * th_dispatcharr_viewers works. */
void th_dispatcharr_pause(sfl_test_dispatcharr *d);
void th_dispatcharr_resume(sfl_test_dispatcharr *d);
/* One HTTP/1.0 request without a body on a connection of its own; the body
 * of the answer (caller frees). Aborts the test when there is no answer
 * within 30 s, or at once when it is paused. */
char *th_dispatcharr_call(const sfl_test_dispatcharr *d, const char *method, const char *path);
/* A counter of GET /fixture/stats: "logins", "accounts_gets", "connections",
 * "ts_status_gets", "stats_gets", ... */
long th_dispatcharr_stat(const sfl_test_dispatcharr *d, const char *name);
/* Serves accounts_json from now on (rewrites the file, POST /fixture/reload). */
void th_dispatcharr_set_accounts(const sfl_test_dispatcharr *d, const char *accounts_json);
/* What GET /proxy/ts/status and GET /proxy/stats/ answer from its next
 * request on: json is the --viewers document (see fake_dispatcharr.c; one
 * is built by th_viewers_json), written to a temporary file and renamed
 * over d->viewers, so the fake never reads half of it. NULL removes the
 * file: both routes answer empty again. Works while it is paused. */
void th_dispatcharr_viewers(const sfl_test_dispatcharr *d, const char *json);
struct th_http_resp;
/* GET path with one more header line (e.g. "X-API-Key: K", "Authorization:
 * Bearer T"; NULL: none) on a connection of its own; 0 and *out filled
 * (th_http_free), or -1 with *out zeroed when no HTTP answer came. */
int th_dispatcharr_get(const sfl_test_dispatcharr *d, const char *path, const char *header,
                       struct th_http_resp *out);

/*--- Viewers as Dispatcharr describes them (the --viewers document) ---------*/

/* A builder of the document th_dispatcharr_viewers takes:
 *
 *   th_viewers v;
 *   th_viewers_init(&v);
 *   th_viewers_live(&v, &(th_live){.profile = 70, .stream = 5, .clients = 2});
 *   th_viewers_vod(&v, &(th_session){.profile = 71});
 *   char buf[16384];
 *   th_dispatcharr_viewers(&fake, th_viewers_json(&v, buf, sizeof(buf)));
 *   th_viewers_free(&v);
 *
 * gives the fake's /proxy/ts/status
 *
 *   {"channels": [{"channel_id": "00000000-0000-4000-8000-000000000001",
 *                  "state": "active",
 *                  "url": "http://provider.invalid/live/user70/pass70/5.ts",
 *                  "stream_profile": "1", "owner": "fake-dispatcharr-worker",
 *                  "buffer_index": 42, "m3u_profile_id": 70, "stream_id": 5,
 *                  "stream_name": "Stream 5", "client_count": 2,
 *                  "clients": [{"client_id": "client_1_1",
 *                               "user_agent": "VLC/3.0.20 LibVLC/3.0.20",
 *                               "ip_address": "10.0.2.1", "connected_at": T,
 *                               "user_id": "0"}, ...],
 *                  "started_at": T, "uptime": 12.3, "total_bytes": 6150000,
 *                  "avg_bitrate_kbps": 4000, "avg_bitrate": "4.00 Mbps",
 *                  "is_timeshift": false}],
 *    "count": 1}
 *
 * and its /proxy/stats/
 *
 *   {"live": [<the same channel>],
 *    "vod": [{"session_id": "00000000-0000-4000-9000-000000000002",
 *             "content_type": "movie",
 *             "content_uuid": "00000000-0000-4000-a000-000000000002",
 *             "content_name": "Movie 2", "m3u_profile_id": 71,
 *             "client_ip": "10.0.2.3", "user_agent": "VLC/3.0.20 LibVLC/3.0.20",
 *             "connected_at": T, "duration": 12.3}],
 *    "catchup": [], "timestamp": T}
 *
 * (T: the wall clock when built, in seconds). Every live channel is one
 * provider connection of its profile, whatever its client_count; every VOD
 * or catch-up session is one too. */
typedef struct th_viewers {
    struct cJSON *doc;
    int n; /* entries added: their ids */
} th_viewers;

/* One channel playing in Dispatcharr's proxy. */
typedef struct th_live {
    long long profile; /* m3u_profile_id; 0: the member is left out, as
                          Dispatcharr does when it does not know it */
    long long stream;  /* stream_id */
    const char *user;  /* the login in its url; NULL: "user<profile>" */
    const char *pass;  /* NULL: "pass<profile>" */
    int provider_port; /* its url's host: 127.0.0.1:port; 0: provider.invalid */
    const char *state; /* NULL: "active" */
    int clients;       /* client_count; at most 10 of them listed */
} th_live;

/* One VOD or catch-up session. */
typedef struct th_session {
    long long profile;        /* m3u_profile_id; 0: left out */
    long long stream;         /* catch-up: its stream_id (0: left out) */
    const char *content_type; /* NULL: "movie" (VOD), "catchup" */
    const char *client_ip;    /* NULL: "10.0.2.x" */
} th_session;

void th_viewers_init(th_viewers *v);
void th_viewers_live(th_viewers *v, const th_live *c);
void th_viewers_vod(th_viewers *v, const th_session *s);
void th_viewers_catchup(th_viewers *v, const th_session *s);
/* The document into buf (asserted to fit); returns buf. */
const char *th_viewers_json(const th_viewers *v, char *buf, size_t len);
/* NULL-safe; leaves *v zeroed. */
void th_viewers_free(th_viewers *v);

/*--- A viewer: one real connection held to the fake provider ---------------*/

/* Viewers in tests are real connections held to the fake provider, so the
 * provider's count is the ground truth. A zeroed th_viewer is a stopped one. */
typedef struct th_viewer {
    int fd;
    int held;        /* 1 while its connection is open */
    int status;      /* the provider's answer: 200; 403 over the limit, 401; 0 none */
    int ended;       /* 1 once the provider closed it (it was killed, ...) */
    long long bytes; /* of the stream read so far (th_viewer_alive reads) */
} th_viewer;

/* Opens one connection to the fake provider on 127.0.0.1:provider_port,
 * sends GET /live/USER/PASS/STREAM.ts?hold_ms=2147483647 (the provider
 * then streams until the client leaves, whatever its --hold-ms; not for a
 * --ranges provider) and reads the answer's head (10 s at most). Returns
 * the status: 200 and the connection is held until th_viewer_stop, the
 * provider counting it in its "current" for user; any other (403 over the
 * limit, 401, 0 for no answer) and it is closed. It reads no more unless
 * th_viewer_alive is called: the provider then stops sending once the
 * buffers are full, and keeps the connection (an hour at most). Never
 * fails the test itself; overwrites *v (stop a held one first). user and
 * pass are percent-encoded. The socket is close-on-exec: children started
 * meanwhile do not hold it. */
int th_viewer_start(th_viewer *v, int provider_port, const char *user, const char *pass,
                    long long stream);
/* 1 while the connection is held: reads what has come without waiting,
 * and on EOF or an error closes it, sets ended and returns 0. */
int th_viewer_alive(th_viewer *v);
/* Closes the connection (the provider counts it down as soon as it sees
 * it go: wait for that on its /stats). Idempotent; a no-op when zeroed. */
void th_viewer_stop(th_viewer *v);

struct sfl_account_conf;
struct sfl_dispatcharr;
/* The Dispatcharr client (src/dispatcharr.c) on a test's own loop, logged
 * in as "admin" with password to the fake d. Aborts the test when it cannot
 * be made; free with sfl_dispatcharr_free. */
struct sfl_dispatcharr *th_dispatcharr_client(struct event_base *base,
                                              const sfl_test_dispatcharr *d, const char *password);
/* What one fetch answered: calls (1 once answered), how many accounts, the
 * max_streams of account 7 (-1 if absent) and the error ("" if none). */
typedef struct th_fetch {
    int calls;
    size_t n;
    long long max7;
    char err[512];
} th_fetch;
/* The fetch callback filling a th_fetch (arg), and a th_loop_until
 * condition that it has been called. */
void th_fetch_cb(const struct sfl_account_conf *accs, size_t n, const char *err, void *arg);
int th_fetch_done(void *arg);
/* One fetch, answered within 30 s: asserts the callback does not run inside
 * sfl_dispatcharr_fetch and runs exactly once. */
void th_fetch_once(struct event_base *base, struct sfl_dispatcharr *dc, th_fetch *r);

/*--- A blocking HTTP client (the node's API, on loopback) ------------------*/

typedef struct th_http_resp {
    int status;
    char *raw;          /* the whole answer, NUL-terminated */
    const char *body;   /* into raw */
    struct cJSON *json; /* the body parsed, or NULL */
    int64_t ms;         /* from connect to the end of the answer */
} th_http_resp;

/* A loopback TCP port nobody listens on right now. */
int th_free_port(void);
/* Connects to 127.0.0.1:port and sends one HTTP/1.1 request (token NULL: no
 * Authorization; body NULL: none). Returns the socket with the answer not
 * read yet, or -1. A server may answer (413) and close before it has read
 * the whole body: send errors of the body are ignored. */
int th_http_send(int port, const char *method, const char *path, const char *token,
                 const char *body, size_t blen);
/* Reads the answer to EOF and closes fd; 0 and *out filled if it is HTTP, -1
 * if not (*out zeroed). Free with th_http_free. */
int th_http_read(int fd, th_http_resp *out);
/* One request and its answer (body NUL-terminated); 0, or -1 with *out
 * zeroed when no HTTP answer came. Never aborts the test. */
int th_http(int port, const char *token, const char *method, const char *path, const char *body,
            th_http_resp *out);
/* NULL-safe; leaves *r zeroed. */
void th_http_free(th_http_resp *r);

/*--- Results of `sflimit check` (one JSON object per line) ------------------*/

#define TH_MAX_RESULTS 64

typedef struct th_results {
    struct cJSON *v[TH_MAX_RESULTS];
    int n;
} th_results;

/* Every non-empty line of the file must be one JSON object (asserted). */
void th_results_read(th_results *r, const char *path);
void th_results_free(th_results *r);
const char *th_str_of(const struct cJSON *o, const char *key);
/* Asserts the member is a number. */
double th_num_of(const struct cJSON *o, const char *key);
long long th_id_of(const struct cJSON *o);
int th_has_status(const struct cJSON *o, const char *status);
/* The one result of stream id; fails if there is none or more than one. */
struct cJSON *th_result_for(const th_results *r, long long id);
int th_count_status(const th_results *r, const char *status);

/*--- A streams file for `sflimit check` ------------------------------------*/

typedef struct th_streams {
    char text[16384];
    size_t n;
    int count;
} th_streams;

void th_streams_init(th_streams *b);
/* A stream of the fake provider on port, as USER/PASS; name NULL: "S<id>";
 * account < 0: a custom stream (no m3u_account member at all). */
void th_streams_add(th_streams *b, int port, long long id, const char *name, long long account,
                    const char *user, const char *pass);
/* Closes the array and writes it to dir/name; the path goes to path. */
void th_streams_write(th_streams *b, const char *dir, const char *name, char *path, size_t len);

/*--- A config for `sflimit check` -------------------------------------------*/

/* The lease members a config starts from (th_config.lease). */
#define TH_LEASE "\"ttl_ms\": 3000, \"renew_ms\": 1000, \"safety_ms\": 500"
/* A check that holds one provider connection while it downloads the stream. */
#define TH_CURL_CMD "[\"curl\", \"-sS\", \"-o\", \"/dev/null\", \"{url}\"]"

/* Under a wrapper (SFL_TEST_WRAP: valgrind, CI's memcheck step) a node is
 * many times slower, and a slot handed to it must be held longer for its
 * take-over than the default 250 ms, or its checks are stopped (LeaseLost)
 * before the take-over's answer comes back: ", \"handoff_ms\": 1000", to
 * put after the other members of a config's "lease" object; "" without a
 * wrapper. */
const char *th_wrap_lease(void);

/* What th_write_config writes; a member left zero takes its default. */
typedef struct th_config {
    const char *redis_url;  /* required */
    const char *node_id;    /* NULL: "t1" */
    const char *lease;      /* the members of "lease" but acquire_timeout; NULL: TH_LEASE */
    double acquire_timeout; /* 0: 30 s */
    int global_limit;       /* 0: 10 */
    double ffmpeg_duration; /* stream_analysis.ffmpeg_duration; 0: not written */
    int retries;            /* stream_analysis.retries */
    const char *accounts;   /* JSON array; NULL: [] */
    const char *command;    /* check.command, a JSON array; NULL: TH_CURL_CMD */
    const char *parser;     /* NULL: "none" */
    double check_timeout;   /* 0: 30 s */
    const char *extra;      /* more top-level members, ", \"k\": v" */
    const char *file;       /* NULL: "sflimit.json" */
} th_config;

/* Writes the config to dir/file (stagger_delay 0); the path goes to path. */
void th_write_config(const char *dir, const th_config *c, char *path, size_t len);

/*--- Running sflimit --------------------------------------------------------*/

/* One run of the built sflimit (SFL_BIN): its pid and the files its output
 * goes to. */
typedef struct th_run {
    pid_t pid;     /* 0 once it has been waited for */
    char what[32]; /* the subcommand, for messages */
    char out[256]; /* its stdout: the results of `check` without -o */
    char err[256]; /* its stderr */
} th_run;

/* Spawns argv (argv[0] = SFL_BIN, NULL-terminated) with stdout and stderr to
 * new files in dir, named after a count of this process's runs: every run
 * has its own. Overwrites *r; returns the pid. */
pid_t th_run_start(th_run *r, const char *dir, const char *const *argv);
/* `sflimit check -c CONFIG [-o OUT] STREAMS` (out NULL: the results go to
 * stdout, r->out). */
pid_t th_check_start(th_run *r, const char *dir, const char *config, const char *streams,
                     const char *out);
/* The end of the run's stderr (its last 8000 bytes, where a failure shows),
 * for a message. A static buffer, overwritten by the next call. */
const char *th_run_stderr(const th_run *r);
/* Waits up to timeout_ms for the run to end and returns its wait status. If
 * it does not end, kills it and fails the test, showing its stderr. */
int th_run_wait(th_run *r, int timeout_ms);
/* Kills (SIGCONT, then SIGKILL) and reaps a run still going: for a .fini
 * after a test that failed early. A no-op once waited for. */
void th_run_reap(th_run *r);
/* A wait status as a shell shows it: the exit code, or 128 + the signal. */
int th_exit_code(int status);

#endif
