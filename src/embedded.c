/* embedded.c - `--redis embedded`: a private redis-server child.
 *
 * For one host with no Redis set up: sfl starts its own server on a unix
 * socket in a 0700 directory (nothing else on the machine can reach it), with
 * no TCP port and no persistence, and stops it at exit. It blocks for the
 * start-up only (before the event loop runs). Since the server is new and
 * private, nobody can hold leases in it: the caller may skip the recovery
 * window that a shared Redis needs (DESIGN §1).
 */
#include "embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct sfl_embedded {
    pid_t pid;
    char dir[64];
    char sock[96];
    char url[128];
};

static int sock_answers(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (ok) {
        char buf[16];
        ok = write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof(buf)) > 0 && buf[0] == '+';
    }
    close(fd);
    return ok;
}

sfl_embedded *sfl_embedded_start(char *err, size_t errlen)
{
    sfl_embedded *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(e->dir, sizeof(e->dir), "%s/sfl-embedded-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(e->dir)) {
        snprintf(err, errlen, "embedded redis: mkdtemp %s: %s", e->dir, strerror(errno));
        free(e);
        return NULL;
    }
    snprintf(e->sock, sizeof(e->sock), "%s/redis.sock", e->dir);
    snprintf(e->url, sizeof(e->url), "unix://%s", e->sock);

    int fail[2];
    if (pipe2(fail, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "embedded redis: pipe: %s", strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    e->pid = fork();
    if (e->pid < 0) {
        snprintf(err, errlen, "embedded redis: fork: %s", strerror(errno));
        close(fail[0]);
        close(fail[1]);
        goto fail;
    }
    if (e->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        setpgid(0, 0); /* a terminal's Ctrl-C goes to sfl, which stops us in order */
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", e->sock,
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", e->dir,
               "--daemonize", "no", "--loglevel", "warning", (char *)NULL);
        int code = errno;
        ssize_t w = write(fail[1], &code, sizeof(code));
        (void)w;
        _exit(127);
    }
    close(fail[1]);
    int code = 0;
    ssize_t n = read(fail[0], &code, sizeof(code));
    close(fail[0]);
    if (n == (ssize_t)sizeof(code)) {
        snprintf(err, errlen, "embedded redis: cannot run redis-server: %s (install redis-server)",
                 strerror(code));
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
        goto fail;
    }
    for (int i = 0; i < 500; i++) {
        if (sock_answers(e->sock))
            return e;
        if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
            e->pid = 0;
            snprintf(err, errlen, "embedded redis: redis-server exited at start-up");
            goto fail;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    snprintf(err, errlen, "embedded redis: no answer on %s within 5 s", e->sock);
fail:
    sfl_embedded_stop(e);
    return NULL;
}

const char *sfl_embedded_url(const sfl_embedded *e)
{
    return e->url;
}

void sfl_embedded_stop(sfl_embedded *e)
{
    if (!e)
        return;
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        for (int i = 0; i < 300 && waitpid(e->pid, NULL, WNOHANG) != e->pid; i++) {
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
            if (i == 299) {
                kill(e->pid, SIGKILL);
                waitpid(e->pid, NULL, 0);
            }
        }
    }
    unlink(e->sock);
    char rdb[96];
    snprintf(rdb, sizeof(rdb), "%s/dump.rdb", e->dir);
    unlink(rdb);
    rmdir(e->dir);
    free(e);
}
