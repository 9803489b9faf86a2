/* fp.h - the fake provider's parts (tests/tools/fake_provider.c and
 * tests/tools/fake_provider/): its data types, and what one part calls in
 * another. A test tool: not linked into sflimit. */
#ifndef SFL_FP_H
#define SFL_FP_H

#include "minutes.h"
#include "real_limit.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cJSON cJSON;

/*--- Data types -------------------------------------------------------------*/

#define FP_SLICE_MS 50            /* one paced write every this often */
#define FP_MAX_BACKLOG (4u << 20) /* skip a slice if this much is unsent */
#define FP_TS_PACKET 188
#define FP_FILLER_PACKETS 256
#define FP_CLIP_BYTES (188 * 100)    /* /clip.ts: about a second of a small test file */
#define FP_CONN_TIMEOUT_S 3600       /* evhttp's default 50 s would cut long holds */
#define FP_PANEL_EXP 4102444800L     /* exp_date by default: 2100-01-01 UTC, never past */
#define FP_PANEL_CREATED 1704067200L /* created_at: 2024-01-01 UTC */

/* user_info.status as a panel spells it (fp_status_names). */
typedef enum {
    FP_STATUS_ACTIVE,
    FP_STATUS_EXPIRED,
    FP_STATUS_BANNED,
    FP_STATUS_DISABLED,
    FP_STATUS_COUNT
} fp_panel_status;

extern const char *const fp_status_names[FP_STATUS_COUNT];

/* How player_api.php describes one account (--panel). */
typedef struct fp_panel {
    fp_panel_status status;
    bool numbers;  /* active_cons and max_connections as JSON numbers */
    bool refuse;   /* auth=0: {"user_info": {"auth": 0}} even to the right password */
    long exp_date; /* -1: null */
} fp_panel;

typedef struct fp_user {
    char *name;
    char *pass;
    long limit; /* 0 = unlimited */
    long current;
    long max_seen;
    long total;    /* requests admitted */
    long requests; /* every request naming this user, admitted or not */
    long refused;  /* requests not served: over the limit, bad password, bad range */
    long violations;
    long auth_failures;
    long panel_requests; /* GET /player_api.php naming this user */
    fp_panel panel;
    fp_real real;       /* a limit below LIMIT, and what the panel says (real_limit.h) */
    fp_minutes minutes; /* per wall-clock minute: peak open, opened (minutes.h) */
} fp_user;

typedef enum {
    FP_STREAM_SENDING, /* timer running, we still own the reply */
    FP_STREAM_ENDING,  /* evhttp_send_reply_end() called, waiting for the flush */
} fp_stream_state;

struct fp_server;

typedef struct fp_stream {
    struct fp_server *srv;
    fp_user *user;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *tick;
    struct evbuffer *chunk;
    unsigned long id;
    int64_t start_us;
    long hold_ms;
    bool one_pass;     /* --file and hold 0, or --ranges: end after body_len bytes */
    uint64_t body_len; /* one pass: the bytes the reply carries */
    uint64_t sent;     /* body bytes handed to evhttp */
    size_t src_off;    /* where the next byte comes from in srv->src */
    fp_stream_state state;
    bool counted; /* still counted as open */
    struct fp_stream *prev, *next;
} fp_stream;

typedef struct fp_config {
    char *host;
    int port;
    const char *port_file;
    const char *file;
    long hold_ms;
    long rate_kbps;
    bool ranges;
    fp_user *users;
    size_t nusers;
    const char **panels; /* --panel specs, applied once every --user is known */
    size_t npanels;
} fp_config;

typedef struct fp_server {
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint;
    struct event *sigterm;
    fp_user *users; /* taken over from the config */
    size_t nusers;
    unsigned char *src; /* the body bytes: the file, or null packets */
    size_t src_len;
    bool src_is_file;
    bool ranges; /* --ranges: the file is seekable, served in parts */
    const char *content_type;
    long hold_ms;
    long rate_kbps;
    long current;
    long max_concurrent;
    unsigned long next_id;
    fp_stream *streams; /* every stream we still hold memory for */
    char host[64];      /* where we listen: player_api.php's server_info */
    int port;
} fp_server;

/*--- Calls between the parts ----------------------------------------------*/

/* The user called name, or NULL. */
fp_user *fp_user_find(fp_server *srv, const char *name);
/* Sends doc (consumed; NULL: 500) as a 200 application/json reply. */
void fp_send_json(struct evhttp_request *req, cJSON *doc);
/* GET /player_api.php (panel.c). */
void fp_serve_panel(fp_server *srv, struct evhttp_request *req);

#endif
