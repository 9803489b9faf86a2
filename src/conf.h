/* conf.h - the node's configuration (DESIGN §4): JSON file -> sfl_conf.
 *
 * Every string field is a heap copy owned by the sfl_conf and released by
 * sfl_conf_free(). A caller that replaces a field (say --redis on the command
 * line) free()s the old value, assigns a malloc'd copy and then calls
 * sfl_conf_validate() again. */
#ifndef SFL_CONF_H
#define SFL_CONF_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* A provider login (server + username): what the provider limits. A stream
 * of its account is checked through it with its URL rewritten (search ->
 * replace, as Dispatcharr's profiles do; no search = the URL as given). */
typedef struct sfl_login_conf {
    char *id;              /* [A-Za-z0-9._-]{1,64}; names it in Redis and results, never a
                              credential. One id in two accounts is one login. */
    long long max_streams; /* 0 = unlimited */
    char *search;          /* regex (sfl_rewrite syntax), or NULL: the URL as given */
    char *replace;         /* with $1-style groups; set exactly when search is */
    long long reserve;     /* slots kept for connections sfl cannot see (0..max_streams) */
    long long cooldown_ms; /* a freed slot stays counted this long (0..600000) */
    long long max_age_ms;  /* > 0: a source counts others' connections on it (viewers.c),
                              and a figure older than this stops its grants; 0: none */
    long long *profiles;   /* the Dispatcharr profiles that are this login (sync only) */
    size_t nprofiles;
    /* An Xtream Codes panel that counts this login's connections (xtream.c):
     * its base URL and the login's credentials, or NULL. */
    char *xtream_url, *xtream_username, *xtream_password;
    char *xtream_ca_file;     /* NULL: an https panel is verified by the system store */
    long long xtream_poll_ms; /* 60000 */
} sfl_login_conf;

typedef struct sfl_account_conf {
    long long id;           /* >= 0, unique within the config */
    char *name;             /* may be NULL */
    long long max_streams;  /* 0 = unlimited; with logins: their sum (0 if one is 0) */
    sfl_login_conf *logins; /* in route order (default first); NULL when nlogins is 0: */
    size_t nlogins;         /* 0 = one login, id = the account id, max_streams above,
                               the URL as given (every config before logins) */
} sfl_account_conf;

#define SFL_REFUSAL_CODES_MAX 16

typedef struct sfl_conf {
    char *path;                    /* file it came from, or NULL for built-in defaults */
    char *node_id;                 /* default: gethostname(), cleaned to [A-Za-z0-9._-]{1,64} */
    char *redis_url;               /* default "redis://127.0.0.1:6379/0"; "embedded" allowed */
    char *redis_password;          /* NULL; when set it wins over a password inside the URL */
    char *redis_sentinel_password; /* NULL; the sentinels' own (redis-sentinel:// URLs) */
    char *redis_namespace;         /* "sfl" */
    int64_t connect_timeout_ms;    /* 2000 */
    int concurrent_enabled;        /* 1; 0 = one check at a time on this node */
    int global_limit;              /* 10 */
    double stagger_delay;          /* 1.0 seconds */
    int64_t lease_ttl_ms;          /* 15000 */
    int64_t lease_renew_ms;        /* 5000 (if absent from the file: ttl/3) */
    int64_t lease_safety_ms;       /* 2000 (if absent from the file: min(2000, ttl/3)) */
    int64_t lease_handoff_ms; /* 250: a slot handed to a waiting node is kept for it this long */
    double acquire_timeout;   /* 300 seconds */
    sfl_account_conf *accounts;
    size_t naccounts;
    char **check_command; /* argv template, check_argc elements plus a NULL */
    size_t check_argc;
    char **check_schemes; /* URL schemes a check may open (any case), check_nschemes of them;
                             default http https rtmp rtsp udp rtp srt */
    size_t check_nschemes;
    char *check_parser;      /* "ffmpeg" | "json" | "none" */
    double check_timeout;    /* 70 s */
    double ffmpeg_duration;  /* 30 */
    double analysis_timeout; /* 30 */
    int retries;             /* 1 */
    double retry_delay;      /* 10 */
    char *user_agent;        /* "VLC/3.0.14" */
    char *http_listen;       /* "127.0.0.1:8470" */
    char *http_token;        /* NULL */
    int64_t http_max_body;   /* 1048576: larger request bodies get 413 */
    /* The node's HTTP connections (http_conns.c): */
    int64_t http_max_connections; /* 0: sized to the descriptor limit at start (http_api.c) */
    double http_idle_timeout;     /* 60 s: a connection with no request in progress closes */
    double http_request_timeout;  /* 10 s: a request (line, headers, body) must arrive by then */
    char *dispatcharr_url, *dispatcharr_username, *dispatcharr_password,
        *dispatcharr_api_key;         /* NULL */
    char *dispatcharr_ca_file;        /* NULL: https:// trusts the system store (tls.c) */
    double dispatcharr_sync_interval; /* 0 = the node does not sync; else seconds */
    /* Viewers (viewers.c): Dispatcharr's proxy connections count on their
     * logins; one node of the cluster polls. */
    int dispatcharr_viewers;        /* 0 */
    int64_t dispatcharr_poll_ms;    /* 1000 */
    int64_t dispatcharr_max_age_ms; /* 5000: older, the logins it governs grant nothing */
    /* node: the daemon and the shared queue */
    double node_shutdown_grace; /* 10 s: running checks may finish before they are stopped */
    double node_claim_idle;     /* 15 s: a queue entry idle this long (its node is gone) is
                                   claimed by another node */
    double node_batch_ttl;      /* 86400 s: batches and their results expire after this */
    int node_lookahead;         /* 0 = global_limit: queue entries held beyond the running ones */
    /* Learned limits (learned.c): the HTTP codes that mean "too many
     * connections" (a check ending so is Refused), and the windows. */
    int refusal_codes[SFL_REFUSAL_CODES_MAX]; /* 429 458 509 */
    size_t nrefusal_codes;
    double learn_window;        /* 60 s: a second refusal within it halves the limit again */
    double learn_quiet;         /* 300 s: without a refusal this long, the limit climbs a step */
    double learn_recheck_after; /* 10 s: a refused stream queues again after this long */
    /* History (history.c): per login and minute, and per stream. */
    int history_enabled;        /* 1; 0: nothing is written */
    int history_retention_days; /* 7 (1..365) */
    int history_stream_results; /* 20 (0..1000; 0: no per-stream history) */
    int64_t history_flush_ms;   /* 60000 (1000..60000): how often a process sends */
} sfl_conf;

/* Built-in defaults. The caller frees with sfl_conf_free(). NULL when out of memory. */
sfl_conf *sfl_conf_new(void);
/* NULL is a no-op. */
void sfl_conf_free(sfl_conf *c);

/* Loads: path given -> that file (must exist); else $SFL_CONFIG if set and
 * non-empty (must exist); else ./sflimit.json if it exists; else defaults.
 * Then applies the environment overrides SFL_REDIS_URL, SFL_NODE_ID,
 * SFL_HTTP_LISTEN, SFL_HTTP_TOKEN, SFL_DISPATCHARR_URL, SFL_DISPATCHARR_API_KEY
 * (a variable set to "" counts as unset). Returns a conf the caller frees, or
 * NULL with a message in err that names the file, the JSON path and what is
 * wrong, e.g. "sflimit.json: lease.renew_ms: must be below lease.ttl_ms
 * (15000), got 20000". A bad override reads "environment: SFL_REDIS_URL: ...". */
sfl_conf *sfl_conf_load(const char *path, char *err, size_t errlen);

/* Parses a JSON text of len bytes (need not be NUL-terminated); name (may be
 * NULL) is used in messages and copied into c->path. Same rules as
 * sfl_conf_load, no environment overrides. */
sfl_conf *sfl_conf_parse(const char *json, size_t len, const char *name, char *err, size_t errlen);

/* Re-validates every field and the relations between them, after the caller
 * changed fields. 0, or -1 with a message naming the path as above. */
int sfl_conf_validate(const sfl_conf *c, char *err, size_t errlen);

/* The account entry with that id, or NULL. Valid while c lives. */
const sfl_account_conf *sfl_conf_account(const sfl_conf *c, long long id);
/* obj's "logins" (absent: none; a's fields untouched) into a->logins, with
 * the config's rules; a->max_streams (set it first, -1 when not given)
 * becomes their sum, and must equal it if given. -1 with err naming the
 * path ("body: logins[1].id: ..."); a's logins are then a's to clear. */
int sfl_account_logins_parse(const struct cJSON *obj, sfl_account_conf *a, char *err,
                             size_t errlen);
/* dst becomes a deep copy of src (dst's old content is not freed). -1 when
 * out of memory, dst then empty. */
int sfl_account_conf_copy(sfl_account_conf *dst, const sfl_account_conf *src);
/* Frees an entry's name and logins (the entry itself is the caller's). */
void sfl_account_conf_clear(sfl_account_conf *a);

#endif
