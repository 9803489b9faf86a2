/* app.h - what every command that talks to Redis sets up: the event loop,
 * the config, an embedded Redis if asked for, the store and the limiter. */
#ifndef SFL_APP_H
#define SFL_APP_H

#include <stddef.h>
#include <stdint.h>

#include "epoch.h"

struct event_base;
struct event;
typedef struct sfl_conf sfl_conf;
typedef struct sfl_store sfl_store;
typedef struct sfl_limiter sfl_limiter;
typedef struct sfl_embedded sfl_embedded;
typedef struct sfl_history sfl_history;

typedef struct sfl_app sfl_app;
typedef void sfl_app_fn(sfl_app *app, void *arg);
/* sig: SIGINT or SIGTERM. */
typedef void sfl_app_signal_fn(sfl_app *app, int sig, void *arg);

struct sfl_app {
    struct event_base *base;
    sfl_conf *conf; /* owned */
    sfl_embedded *embedded;
    sfl_store *store;
    sfl_limiter *lim;    /* NULL unless asked for */
    sfl_history *hist;   /* with the limiter when history.enabled (history.h); else NULL */
    int64_t recovery_ms; /* the recovery window a Redis that lost its data opens: ttl */
    /* How the first epoch check treats a missing marker (epoch.h); set before
     * sfl_app_open (FRESH with an embedded Redis, whatever it says). */
    sfl_epoch_mode epoch_mode;
    int ready_count;            /* how many times the store became ready */
    sfl_app_fn *on_ready;       /* after the limiter has seen it; every (re)connect */
    sfl_app_fn *on_unreachable; /* no first connection within the connect deadline */
    /* Redis refused authentication (WRONGPASS, NOAUTH...) on every try, SFL_APP_AUTH_TRIES
     * or more, for SFL_APP_AUTH_TRIES x redis.connect_timeout_ms; once. NULL: retry forever. */
    sfl_app_fn *on_auth_refused;
    /* A message on one of the extra channels given to sfl_app_open. */
    void (*on_message)(sfl_app *app, const char *channel, const char *msg, void *arg);
    /* SIGINT and SIGTERM while sfl_app_run runs, from the loop; NULL: both
     * keep their default action. */
    sfl_app_signal_fn *on_signal;
    int sigint_only; /* on_signal gets SIGINT alone; SIGTERM keeps its default */
    const char *cmd; /* "submit": messages say "sflimit: submit: ..."; NULL: "sflimit: ..." */
    int rc;          /* the exit code sfl_app_run returns; the command's to set */
    char released_channel[80];
    void *arg;
    struct event *connect_deadline;
    struct event *auth_timer;
    struct event *finish_timer;
    struct event *sigint, *sigterm;
    int64_t finish_until_ms; /* 0: not finishing */
};

/* How many refused tries, and connect timeouts, make an authentication
 * error one that will not go away by itself. */
#define SFL_APP_AUTH_TRIES 3

/* Takes ownership of conf. Starts the embedded Redis when the URL says so.
 * with_limiter: also the limiter and the released subscription. channels:
 * more channels to subscribe to (NULL-terminated full names, or NULL); their
 * messages go to on_message. 0, or -1 with err set (everything already
 * opened is closed). */
int sfl_app_open(sfl_app *app, sfl_conf *conf, int with_limiter, const char *const *channels,
                 char *err, size_t errlen);
/* Connects; if connect_deadline_ms > 0 and no connection is ready by then,
 * on_unreachable is called (once). */
void sfl_app_start(sfl_app *app, int64_t connect_deadline_ms);
/* Catches SIGINT and SIGTERM for on_signal (when set), connects as
 * sfl_app_start does and runs the loop until a callback ends it. Returns rc;
 * SFL_EXIT_FAIL with a message when the signals cannot be caught (the loop
 * does not run). The signals stay caught until sfl_app_close. */
int sfl_app_run(sfl_app *app, int64_t connect_deadline_ms);
/* An on_unreachable for commands that give up on a Redis they cannot reach:
 * "sflimit: [cmd: ]cannot reach Redis: <why>" on stderr, exit 1. */
void sfl_app_unreachable(sfl_app *app, void *arg);
/* "sflimit: [cmd: ]<message>" on stderr, rc = SFL_EXIT_FAIL, and the loop
 * ends at once. */
void sfl_app_fail(sfl_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* rc = rc, and the loop ends at once: no wait for releases (sfl_app_finish). */
void sfl_app_exit(sfl_app *app, int rc);
/* How long a command waits at its end for its releases to reach Redis. */
#define SFL_APP_RELEASE_WAIT_MS 2000

/* Sends the history gathered so far, then ends the event loop once the
 * releases and that history have reached Redis (so the next holder need not
 * wait for a TTL), or Redis is away, or
 * max_wait_ms has passed. From the loop, never inside the call; a second
 * call changes nothing. */
void sfl_app_finish(sfl_app *app, int64_t max_wait_ms);
int sfl_app_finishing(const sfl_app *app);
/* Closes the Redis connections now (pending callbacks get NULL replies);
 * for owners that must see those callbacks before freeing their state.
 * Idempotent; sfl_app_close does it too. */
void sfl_app_disconnect(sfl_app *app);
/* Frees everything in the right order (store before limiter), the caught
 * signals first. rc is kept. */
void sfl_app_close(sfl_app *app);

#endif
