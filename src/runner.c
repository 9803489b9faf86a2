/* runner.c - child processes on the event loop.
 *
 * What: every stream check (ffmpeg, ffprobe, a user's command) runs as a child
 * process while the node holds a lease for it. The runner starts and execs it
 * from an argv (execvpe: PATH lookup, no shell, so nothing in a stream URL is
 * ever parsed as shell syntax), keeps the tail of its stdout and stderr, stops
 * it on timeout or on request (SIGTERM, then SIGKILL after a grace), and
 * reports it exactly once to its callback.
 *
 * Why it is shaped so:
 *  - One thread, one libevent loop. SIGCHLD is a libevent signal event; on it
 *    we call waitpid(pid, WNOHANG) for each of OUR children (not waitpid(-1):
 *    that would steal children of other code in the process, e.g. the test
 *    harness or a popen). Pipes are non-blocking and read by read events;
 *    timeouts, kill graces and drain limits are timers.
 *  - A child is reported when it has been reaped AND both pipes hit EOF, so the
 *    whole output is there. A grandchild that keeps a pipe open cannot hold the
 *    report back for more than drain_ms after the reap.
 *  - The report goes through a per-child "done" event activated from inside
 *    the loop, so the callback never runs inside spawn, inside our waitpid
 *    loop, or inside a read callback: it may spawn, stop others, or free the
 *    runner.
 *  - A capturing child leads its own process group, so stops and the final
 *    sweep reach whatever it started (ffmpeg helpers, `sh -c` pipelines): when
 *    the check ends, its lease is released, and nothing of it may keep pulling
 *    the stream. A non-capturing child (`sflimit exec`, interactive) stays in
 *    our process group so the terminal keeps treating it as foreground; it is
 *    signalled by pid only.
 *  - PR_SET_PDEATHSIG(SIGKILL) in the child: if the node dies (even SIGKILL),
 *    its checks die with it instead of running on without a lease. The
 *    getppid() check closes the race where the parent died before the prctl.
 *    (PDEATHSIG follows the forking thread: spawn from the loop's thread.)
 *  - exec failure comes back through a CLOEXEC pipe: EOF means exec happened;
 *    an 8-byte record {stage, errno} means it did not. We read it (non-blocking)
 *    only after the reap, when the writer is certainly gone.
 *  - Output tails are rings of capture_cap bytes: each byte is copied once, and
 *    rotated into place once at the end, so cost stays linear in the output.
 *  - The child is made with clone(CLONE_VM | CLONE_VFORK), as posix_spawn
 *    does, not fork: it shares our memory until its exec, so nothing is
 *    copied and a start costs the same in a node holding 100 000 queued
 *    streams as in an empty one (fork's page-table copy grew with our RSS).
 *    We stay suspended until the child has exec'd or exited.
 *
 * What it must never do:
 *  - run anything through a shell;
 *  - block the loop (the only blocking waitpid is in sfl_runner_free, after
 *    SIGKILL, at shutdown);
 *  - lose a child: every spawned child is reaped and reported exactly once, or
 *    killed and reaped by sfl_runner_free; a pid that someone else reaped is
 *    reported as lost rather than waited on forever;
 *  - signal a pid after reaping it (it may have been reused).
 *
 * Between clone and exec the child calls only async-signal-safe functions,
 * on a stack of its own, and writes no memory of ours but that stack (and
 * errno, which we do not read after a successful clone): all allocation
 * (envp, argv copies) happens in the parent before. */
#include "runner.h"

#include "clock.h"
#include "list.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

extern char **environ;

#define DEFAULT_CAP (64 * 1024)
#define DEFAULT_GRACE_MS 2000
#define DEFAULT_DRAIN_MS 500
#define READS_PER_EVENT 16 /* bounded work per read callback; the event fires again */

/*--- Data types ---*/

/* What the child tells the parent through the CLOEXEC pipe when it could not exec. */
typedef enum {
    STAGE_EXEC = 0,
    STAGE_PRCTL,
    STAGE_SETPGID,
    STAGE_FDS,
} child_stage;

typedef struct exec_report {
    int stage;
    int err;
} exec_report;

/* One captured stream: a ring holding the last `cap` bytes. */
typedef struct sfl_stream {
    sfl_child *child;
    int fd; /* read end, -1 when closed */
    struct event *ev;
    char *buf; /* cap + 1 bytes, allocated on first data */
    size_t cap;
    size_t len; /* bytes held, <= cap */
    size_t pos; /* next write index; when len == cap the oldest byte is at pos */
} sfl_stream;

struct sfl_child {
    sfl_runner *r;
    sfl_child *prev, *next;
    pid_t pid;
    int capture;
    int64_t grace_ms;
    int64_t drain_ms;
    char *argv0; /* for the exec failure message */

    sfl_child_done_fn *fn;
    void *arg;

    sfl_stream out, err;
    int errpipe; /* read end of the exec report pipe, -1 when closed */

    struct event *timeout_ev; /* NULL without timeout */
    struct event *kill_ev;    /* SIGKILL after the grace */
    struct event *drain_ev;   /* reaped, pipes still open */
    struct event *done_ev;    /* activated once: report */

    int64_t started_ms;
    int64_t reaped_ms;
    int reaped;
    int status; /* waitpid status, valid if reaped && !lost */
    int lost;
    int exec_failed;
    char msg[256]; /* exec failure text */
    sfl_stop_reason stopped;
    int term_sent;
    int64_t kill_at_ms; /* when kill_ev fires (valid if term_sent) */
    int finishing;      /* done_ev activated: no more signals, no second report */
};

struct sfl_runner {
    struct event_base *base;
    struct event *sigchld;
    sfl_child *children; /* not yet reported */
    int running;
    int in_cb;        /* depth of child callbacks on the stack */
    int free_pending; /* sfl_runner_free called from a callback */
};

static void maybe_finish(sfl_child *c);

/*--- Output rings ---*/

static void ring_append(sfl_stream *s, const char *data, size_t n)
{
    if (n == 0)
        return;
    if (!s->buf) {
        s->buf = malloc(s->cap + 1);
        if (!s->buf)
            return; /* out of memory: the output is dropped, the child still reported */
    }
    if (n >= s->cap) {
        memcpy(s->buf, data + (n - s->cap), s->cap);
        s->pos = 0;
        s->len = s->cap;
        return;
    }
    size_t first = s->cap - s->pos;
    if (first > n)
        first = n;
    memcpy(s->buf + s->pos, data, first);
    memcpy(s->buf, data + first, n - first);
    s->pos = (s->pos + n) % s->cap;
    s->len = s->len + n > s->cap ? s->cap : s->len + n;
}

static void reverse(char *p, size_t n)
{
    for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
        char t = p[i];
        p[i] = p[j - 1];
        p[j - 1] = t;
    }
}

/* Puts the ring's bytes in order at buf[0..len) and NUL-terminates; returns them. */
static const char *ring_linear(sfl_stream *s)
{
    if (!s->buf)
        return "";
    if (s->len == s->cap && s->pos != 0) {
        /* Rotate left by pos: three reversals, in place, linear. */
        reverse(s->buf, s->pos);
        reverse(s->buf + s->pos, s->cap - s->pos);
        reverse(s->buf, s->cap);
        s->pos = 0;
    }
    s->buf[s->len] = '\0';
    return s->buf;
}

static void stream_close(sfl_stream *s)
{
    if (s->ev) {
        event_free(s->ev);
        s->ev = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

/* Reads what the pipe holds, at most max_reads times. Returns 1 when the stream
 * reached EOF (or an error that will not go away) and has been closed. */
static int stream_pump(sfl_stream *s, int max_reads)
{
    char buf[16384];
    for (int i = 0; i < max_reads; i++) {
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n > 0) {
            ring_append(s, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        stream_close(s);
        return 1;
    }
    return 0;
}

static void stream_read_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    sfl_stream *s = arg;
    if (stream_pump(s, READS_PER_EVENT))
        maybe_finish(s->child);
}

/*--- Signals to children ---*/

/* Never signals a reaped pid; a capturing child's group may outlive it (the pgid
 * cannot be reused while the group has members). */
static void child_kill(sfl_child *c, int sig)
{
    if (c->capture)
        kill(-c->pid, sig);
    else if (!c->reaped)
        kill(c->pid, sig);
}

static void kill_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    child_kill(arg, SIGKILL);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    sfl_child_stop(arg, SFL_STOP_TIMEOUT);
}

void sfl_child_stop(sfl_child *c, sfl_stop_reason why)
{
    if (c)
        sfl_child_stop_within(c, why, c->grace_ms);
}

void sfl_child_stop_within(sfl_child *c, sfl_stop_reason why, int64_t grace_ms)
{
    if (!c || c->finishing)
        return;
    if (c->reaped) {
        /* Only leftovers of its group can be keeping the pipes open. */
        if (c->capture)
            kill(-c->pid, SIGKILL);
        return;
    }
    if (grace_ms < 0)
        grace_ms = 0;
    int64_t kill_at = sfl_mono_ms() + grace_ms;
    if (c->term_sent && kill_at >= c->kill_at_ms)
        return; /* already stopping, and at least as soon */
    if (!c->term_sent) {
        c->term_sent = 1;
        c->stopped = why == SFL_STOP_NONE ? SFL_STOP_REQUESTED : why;
        if (c->timeout_ev)
            event_del(c->timeout_ev);
    }
    c->kill_at_ms = kill_at;
    if (grace_ms == 0) {
        /* No time to ask politely. */
        event_del(c->kill_ev);
        child_kill(c, SIGKILL);
        return;
    }
    child_kill(c, SIGTERM);
    struct timeval tv = {grace_ms / 1000, (grace_ms % 1000) * 1000};
    if (event_add(c->kill_ev, &tv) < 0)
        child_kill(c, SIGKILL);
}

void sfl_child_signal(sfl_child *c, int sig)
{
    if (!c || c->finishing)
        return;
    child_kill(c, sig);
}

pid_t sfl_child_pid(const sfl_child *c)
{
    return c ? c->pid : -1;
}

/*--- Reaping and reporting ---*/

static void child_free(sfl_child *c)
{
    if (!c)
        return;
    stream_close(&c->out);
    stream_close(&c->err);
    free(c->out.buf);
    free(c->err.buf);
    if (c->errpipe >= 0)
        close(c->errpipe);
    if (c->timeout_ev)
        event_free(c->timeout_ev);
    if (c->kill_ev)
        event_free(c->kill_ev);
    if (c->drain_ev)
        event_free(c->drain_ev);
    if (c->done_ev)
        event_free(c->done_ev);
    free(c->argv0);
    free(c);
}

static void unlink_child(sfl_child *c)
{
    SFL_LIST_UNLINK(c->r->children, c);
    c->r->running--;
}

static void runner_destroy(sfl_runner *r)
{
    if (r->sigchld)
        event_free(r->sigchld);
    free(r);
}

static const char *stage_name(int stage)
{
    switch (stage) {
    case STAGE_EXEC:
        return "execvp";
    case STAGE_PRCTL:
        return "prctl(PR_SET_PDEATHSIG)";
    case STAGE_SETPGID:
        return "setpgid";
    default:
        return "setting up fds";
    }
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    sfl_child *c = arg;
    sfl_runner *r = c->r;

    /* The check is over (its lease goes next): nothing of its group may run on. */
    if (c->capture)
        kill(-c->pid, SIGKILL);

    sfl_child_result res;
    memset(&res, 0, sizeof(res));
    res.pid = c->pid;
    res.stopped = c->stopped;
    res.lost = c->lost;
    res.duration_ms = c->reaped_ms - c->started_ms;
    if (c->exec_failed) {
        res.exec_failed = 1;
        res.exited = 1;
        res.exit_code = 127;
    } else if (!c->lost && WIFEXITED(c->status)) {
        res.exited = 1;
        res.exit_code = WEXITSTATUS(c->status);
    } else if (!c->lost && WIFSIGNALED(c->status)) {
        res.term_signal = WTERMSIG(c->status);
    }
    res.out = ring_linear(&c->out);
    res.out_len = c->out.buf ? c->out.len : 0;
    if (c->exec_failed) {
        res.err = c->msg;
        res.err_len = strlen(c->msg);
    } else {
        res.err = ring_linear(&c->err);
        res.err_len = c->err.buf ? c->err.len : 0;
    }

    unlink_child(c);
    r->in_cb++;
    c->fn(c, &res, c->arg);
    r->in_cb--;
    child_free(c);
    if (r->free_pending && r->in_cb == 0)
        runner_destroy(r);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    sfl_child *c = arg;
    /* Reaped long enough ago; whoever still holds the pipes is a leftover. */
    if (c->capture)
        kill(-c->pid, SIGKILL);
    sfl_stream *ss[2] = {&c->out, &c->err};
    for (int i = 0; i < 2; i++) {
        if (ss[i]->fd >= 0)
            stream_pump(ss[i], READS_PER_EVENT); /* what is already buffered */
        stream_close(ss[i]);
    }
    maybe_finish(c);
}

/* Schedules the report once the child is reaped and both pipes are closed. */
static void maybe_finish(sfl_child *c)
{
    if (c->finishing || !c->reaped)
        return;
    if (c->out.fd >= 0 || c->err.fd >= 0) {
        if (event_pending(c->drain_ev, EV_TIMEOUT, NULL))
            return;
        struct timeval tv = {c->drain_ms / 1000, (c->drain_ms % 1000) * 1000};
        if (event_add(c->drain_ev, &tv) == 0)
            return;
        stream_close(&c->out); /* cannot wait for EOF: report what we have */
        stream_close(&c->err);
    }
    c->finishing = 1;
    event_del(c->drain_ev);
    event_active(c->done_ev, EV_TIMEOUT, 0);
}

static void on_reaped(sfl_child *c, int status, int lost)
{
    c->reaped = 1;
    c->status = status;
    c->lost = lost;
    c->reaped_ms = sfl_mono_ms();
    if (c->timeout_ev)
        event_del(c->timeout_ev);
    if (!c->capture)
        event_del(c->kill_ev); /* nothing left to kill: the pid is gone */

    /* The child is gone, so the report pipe holds a record or nothing; never blocks. */
    exec_report rep;
    ssize_t n;
    do {
        n = read(c->errpipe, &rep, sizeof(rep));
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(rep)) {
        c->exec_failed = 1;
        snprintf(c->msg, sizeof(c->msg), "%s %s: %s", stage_name(rep.stage), c->argv0,
                 strerror(rep.err));
    }
    close(c->errpipe);
    c->errpipe = -1;
    maybe_finish(c);
}

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
    UNUSED(sig);
    UNUSED(what);
    sfl_runner *r = arg;
    for (sfl_child *c = r->children; c; c = c->next) {
        if (c->reaped)
            continue;
        int st = 0;
        pid_t p;
        do {
            p = waitpid(c->pid, &st, WNOHANG);
        } while (p < 0 && errno == EINTR);
        if (p == c->pid)
            on_reaped(c, st, 0);
        else if (p < 0 && errno == ECHILD)
            on_reaped(c, 0, 1);
    }
}

/*--- Runner ---*/

sfl_runner *sfl_runner_new(struct event_base *base)
{
    if (!base)
        return NULL;
    sfl_runner *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = base;
    r->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, r);
    if (!r->sigchld || event_add(r->sigchld, NULL) < 0)
        goto err;
    return r;
err:
    runner_destroy(r);
    return NULL;
}

void sfl_runner_free(sfl_runner *r)
{
    if (!r || r->free_pending)
        return;
    sfl_child *c = r->children;
    while (c) {
        sfl_child *next = c->next;
        if (!c->reaped) {
            child_kill(c, SIGKILL);
            pid_t p;
            do {
                p = waitpid(c->pid, NULL, 0);
            } while (p < 0 && errno == EINTR);
        } else if (c->capture) {
            kill(-c->pid, SIGKILL);
        }
        child_free(c);
        c = next;
    }
    r->children = NULL;
    r->running = 0;
    if (r->in_cb) {
        r->free_pending = 1; /* done_cb frees it when the callback returns */
        return;
    }
    runner_destroy(r);
}

int sfl_runner_running(const sfl_runner *r)
{
    return r ? r->running : 0;
}

/*--- Spawning ---*/

static int env_key_eq(const char *a, const char *b)
{
    while (*a && *a != '=' && *a == *b) {
        a++;
        b++;
    }
    return (*a == '=' || *a == '\0') && (*b == '=' || *b == '\0');
}

static int env_overridden(const char *entry, char *const *extra)
{
    for (size_t i = 0; extra && extra[i]; i++)
        if (env_key_eq(entry, extra[i]))
            return 1;
    return 0;
}

/* The child's environment: pointers into environ and opts->env (only the array is
 * allocated; the caller frees it). NULL on allocation failure. */
static char **build_env(const sfl_child_opts *opts)
{
    static const char *keep[] = {"PATH", "HOME", "LANG", "TZ"};
    size_t n_env = 0, n_extra = 0;
    for (char **e = environ; e && *e; e++)
        n_env++;
    while (opts->env && opts->env[n_extra])
        n_extra++;

    char **envp = calloc(n_env + n_extra + 1, sizeof(char *));
    if (!envp)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e && *e; e++) {
        if (env_overridden(*e, opts->env))
            continue;
        if (opts->clean_env) {
            int wanted = 0;
            for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
                if (env_key_eq(*e, keep[i]))
                    wanted = 1;
            if (!wanted)
                continue;
        }
        envp[k++] = *e;
    }
    for (size_t i = 0; i < n_extra; i++)
        envp[k++] = opts->env[i];
    envp[k] = NULL;
    return envp;
}

typedef struct spawn_ctx {
    pid_t parent;
    int capture;
    int errfd;        /* write end of the exec report pipe */
    int out_w, err_w; /* write ends of the capture pipes, -1 without capture */
    int max_fd;       /* for the close loop when close_range is missing */
    char *const *argv;
    char **envp;
} spawn_ctx;

/* The child shares our memory, ASan's shadow of it included: its code must
 * not poison or check stack redzones on its own stack. */
#define CHILD_CODE __attribute__((no_sanitize("address", "undefined")))

CHILD_CODE static void child_fail(int fd, int stage)
{
    exec_report rep = {stage, errno};
    ssize_t w = write(fd, &rep, sizeof(rep));
    (void)w;
    _exit(127);
}

/* Moves fd to 3 or above (so the dup2s onto 0..2 cannot clobber it). */
CHILD_CODE static int child_raise_fd(int fd, int cloexec)
{
    if (fd >= 3)
        return fd;
    return fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 3);
}

/* In the child, between clone and exec: async-signal-safe calls only. Never returns. */
static void child_exec(const spawn_ctx *sc) __attribute__((noreturn));
CHILD_CODE static void child_exec(const spawn_ctx *sc)
{
    int errfd = sc->errfd;

    /* All signals are blocked (the parent blocked them around fork). Default
     * dispositions first, so nothing of the parent's handlers (libevent's) runs here. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL); /* EINVAL for libc-reserved signals: fine */

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        child_fail(errfd, STAGE_PRCTL);
    if (getppid() != sc->parent)
        _exit(127); /* the parent died before the prctl: nobody would reap or stop us */

    if (sc->capture && setpgid(0, 0) < 0)
        child_fail(errfd, STAGE_SETPGID);

    if ((errfd = child_raise_fd(errfd, 1)) < 0)
        child_fail(sc->errfd, STAGE_FDS);
    if (sc->capture) {
        int in = open("/dev/null", O_RDONLY);
        int out = in < 0 ? -1 : child_raise_fd(sc->out_w, 0);
        int err = out < 0 ? -1 : child_raise_fd(sc->err_w, 0);
        if (in >= 0)
            in = child_raise_fd(in, 0);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            child_fail(errfd, STAGE_FDS);
    }

    /* Close everything else but the report pipe (CLOEXEC: it goes at exec). */
    int closed = errfd == 3 || close_range(3, (unsigned)errfd - 1, 0) == 0;
    if (closed)
        closed = close_range((unsigned)errfd + 1, ~0U, 0) == 0;
    if (!closed)
        for (int fd = 3; fd < sc->max_fd; fd++)
            if (fd != errfd)
                close(fd);

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    execvpe(sc->argv[0], sc->argv, sc->envp);
    child_fail(errfd, STAGE_EXEC);
    _exit(127); /* not reached */
}

CHILD_CODE static int child_main(void *arg)
{
    child_exec(arg);
}

#define CHILD_STACK_SIZE (256 * 1024) /* execvpe builds PATH candidates on it */

/* Starts child_exec(sc) in a child process; its pid, or -1 with errno. */
static pid_t spawn_child(const spawn_ctx *sc)
{
    void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -1;
    pid_t pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, (void *)sc);
    int saved = errno;
    munmap(stack, CHILD_STACK_SIZE); /* the child has exec'd or exited */
    errno = saved;
    return pid;
}

static int make_pipe(int p[2], char *err, size_t errlen, const char *what)
{
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe (%s): %s", what, strerror(errno));
        p[0] = p[1] = -1;
        return -1;
    }
    if (fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "fcntl (%s): %s", what, strerror(errno));
        close(p[0]);
        close(p[1]);
        p[0] = p[1] = -1;
        return -1;
    }
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

sfl_child *sfl_runner_spawn(sfl_runner *r, const sfl_child_opts *opts, sfl_child_done_fn *fn,
                            void *arg, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!r || !opts || !opts->argv || !opts->argv[0] || !fn || r->free_pending) {
        snprintf(err, errlen, "spawn: bad arguments");
        return NULL;
    }

    int errp[2] = {-1, -1}, outp[2] = {-1, -1}, errsp[2] = {-1, -1};
    char **envp = NULL;
    sfl_child *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->r = r;
    c->fn = fn;
    c->arg = arg;
    c->capture = opts->capture ? 1 : 0;
    c->grace_ms = opts->kill_grace_ms > 0 ? opts->kill_grace_ms : DEFAULT_GRACE_MS;
    c->drain_ms = opts->drain_ms > 0 ? opts->drain_ms : DEFAULT_DRAIN_MS;
    c->errpipe = -1;
    c->out.child = c->err.child = c;
    c->out.fd = c->err.fd = -1;
    c->out.cap = c->err.cap = opts->capture_cap > 0 ? opts->capture_cap : DEFAULT_CAP;
    if (!(c->argv0 = strdup(opts->argv[0])) || !(envp = build_env(opts)))
        goto oom;

    struct event_base *base = r->base;
    c->kill_ev = evtimer_new(base, kill_cb, c);
    c->drain_ev = evtimer_new(base, drain_cb, c);
    c->done_ev = event_new(base, -1, 0, done_cb, c);
    if (!c->kill_ev || !c->drain_ev || !c->done_ev)
        goto oom;
    if (opts->timeout_ms > 0 && !(c->timeout_ev = evtimer_new(base, timeout_cb, c)))
        goto oom;

    if (make_pipe(errp, err, errlen, "exec report") < 0)
        goto err;
    if (c->capture) {
        if (make_pipe(outp, err, errlen, "stdout") < 0 ||
            make_pipe(errsp, err, errlen, "stderr") < 0)
            goto err;
        c->out.ev = event_new(base, outp[0], EV_READ | EV_PERSIST, stream_read_cb, &c->out);
        c->err.ev = event_new(base, errsp[0], EV_READ | EV_PERSIST, stream_read_cb, &c->err);
        if (!c->out.ev || !c->err.ev)
            goto oom;
    }

    spawn_ctx sc = {
        .parent = getpid(),
        .capture = c->capture,
        .errfd = errp[1],
        .out_w = outp[1],
        .err_w = errsp[1],
        .max_fd = 1024,
        .argv = opts->argv,
        .envp = envp,
    };
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        sc.max_fd = rl.rlim_cur > (1 << 20) ? (1 << 20) : (int)rl.rlim_cur;

    /* Block everything across the clone: the child must not run our handlers
     * before it has reset them. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    c->started_ms = sfl_mono_ms();
    pid_t pid = spawn_child(&sc);
    int spawn_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        snprintf(err, errlen, "clone: %s", strerror(spawn_errno));
        goto err;
    }

    c->pid = pid;
    if (c->capture)
        setpgid(pid, pid); /* also here, so the group exists when spawn returns (EACCES
                              after the child's exec: it did it itself) */
    close_fd(&errp[1]);
    close_fd(&outp[1]);
    close_fd(&errsp[1]);
    c->errpipe = errp[0];
    if (c->capture) {
        c->out.fd = outp[0];
        c->err.fd = errsp[0];
        event_add(c->out.ev, NULL);
        event_add(c->err.ev, NULL);
    }
    if (c->timeout_ev) {
        struct timeval tv = {opts->timeout_ms / 1000, (opts->timeout_ms % 1000) * 1000};
        event_add(c->timeout_ev, &tv);
    }
    free(envp);

    SFL_LIST_PUSH(r->children, c);
    r->running++;
    return c;

oom:
    snprintf(err, errlen, "spawn: out of memory");
err:
    free(envp);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&outp[0]);
    close_fd(&outp[1]);
    close_fd(&errsp[0]);
    close_fd(&errsp[1]);
    if (c) {
        c->out.fd = c->err.fd = -1; /* closed above */
        child_free(c);
    }
    return NULL;
}
