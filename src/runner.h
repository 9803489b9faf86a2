/* runner.h - child processes (stream checks, `sflimit exec` commands) run on
 * the event loop: no shell, captured output tails, timeouts, stop with a kill
 * grace, and exactly one completion callback per child. */
#ifndef SFL_RUNNER_H
#define SFL_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
typedef struct sfl_runner sfl_runner;
typedef struct sfl_child sfl_child;

typedef enum { SFL_STOP_NONE = 0, SFL_STOP_TIMEOUT, SFL_STOP_REQUESTED } sfl_stop_reason;

typedef struct sfl_child_opts {
    char *const *argv;  /* argv[0] looked up in the runner's PATH (execvpe); no shell ever */
    char *const *env;   /* extra "KEY=VALUE" entries, NULL-terminated, may be NULL; an entry
                           replaces an inherited variable of the same name */
    int clean_env;      /* 1: child env = PATH, HOME, LANG, TZ (if set) + env; 0: inherit + env */
    int capture;        /* 1: capture stdout and stderr through pipes, stdin is /dev/null and
                           the child leads its own process group (stops reach grandchildren);
                           0: child inherits stdin/stdout/stderr and our process group
                           (interactive use: it stays in the terminal's foreground group) */
    size_t capture_cap; /* keep at most this many bytes of each stream: the TAIL (last bytes)
                           is kept; 0 = 64 KiB */
    int64_t timeout_ms; /* 0 = none; on expiry stop with SFL_STOP_TIMEOUT */
    int64_t kill_grace_ms; /* after SIGTERM, SIGKILL after this long; 0 = 2000 */
    int64_t drain_ms;      /* after reaping, wait at most this long for the pipes' EOF (a
                              grandchild may hold them open; it is then SIGKILLed); 0 = 500 */
} sfl_child_opts;

typedef struct sfl_child_result {
    pid_t pid;
    int exited;              /* 1 if it exited normally */
    int exit_code;           /* valid if exited */
    int term_signal;         /* valid if !exited (0 if lost) */
    sfl_stop_reason stopped; /* why sfl stopped it, if it did */
    int exec_failed;         /* 1 if execvp (or the set-up before it) failed: exited = 1,
                                exit_code 127, the errno text in err */
    int lost;                /* 1 if someone else reaped it (waitpid: ECHILD): status unknown */
    const char *out;         /* captured tails, NUL-terminated, never NULL ("" without capture); */
    size_t out_len;          /* valid only during the callback: copy what you need */
    const char *err;
    size_t err_len;
    int64_t duration_ms; /* monotonic, spawn to reap */
} sfl_child_result;

/* `child` may be used only for sfl_child_pid() here; it is freed after the callback returns. */
typedef void sfl_child_done_fn(sfl_child *child, const sfl_child_result *res, void *arg);

/* Installs a SIGCHLD libevent signal event on base. libevent delivers signals to one
 * event_base per process: keep all runners of a process on one base. NULL on failure. */
sfl_runner *sfl_runner_new(struct event_base *base);
/* NULL ok. Kills (SIGKILL; the process group for capturing children) and reaps the remaining
 * children, blocking until each is reaped, without calling their callbacks. May be called from
 * inside a child callback (the runner itself is then freed when that callback returns). */
void sfl_runner_free(sfl_runner *r);

/* Starts a child. Returns NULL and writes a message into err (if not NULL) on failure
 * (bad opts, pipe/fork/allocation failure); fn is then never called. opts and everything it
 * points to need to live only for this call. The callback is called exactly once, from the
 * event loop (never from inside spawn), after the child has been reaped AND its pipes have
 * reached EOF (or after reaping + drain_ms if a grandchild keeps a pipe open). The sfl_child
 * is freed by the runner right after the callback returns: do not use it afterwards. */
sfl_child *sfl_runner_spawn(sfl_runner *r, const sfl_child_opts *opts, sfl_child_done_fn *fn,
                            void *arg, char *err, size_t errlen);
/* SIGTERM to the child's process group (its pid alone without capture), then SIGKILL after
 * the grace. Idempotent; the first reason sticks. After the child was reaped (its pipes are
 * draining) this only kills what is left of its group. No-op inside its own callback. */
void sfl_child_stop(sfl_child *c, sfl_stop_reason why);
/* The same with a grace of its own: SIGKILL at most grace_ms from now (at once, without
 * SIGTERM, for 0). Called again while stopping, it can only bring the SIGKILL closer. */
void sfl_child_stop_within(sfl_child *c, sfl_stop_reason why, int64_t grace_ms);
/* Sends a signal to the child's process group (its pid alone without capture); used to pass
 * SIGINT/SIGTERM through. Never signals a pid that has been reaped. */
void sfl_child_signal(sfl_child *c, int sig);
pid_t sfl_child_pid(const sfl_child *c);
/* Children spawned and not yet reported (a child being reported no longer counts). */
int sfl_runner_running(const sfl_runner *r);

#endif
