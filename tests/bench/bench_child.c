/* bench_child.c - the sflimit processes a benchmark runs (nodes, a check
 * batch): start, watch, measure, stop.
 *
 * Measuring a process that has ended: waitid(WNOWAIT) waits for it to become
 * a zombie without reaping it, so /proc/PID/stat still gives its own CPU
 * time apart from its children's (wait4's rusage sums both, and a check
 * batch spends much of its CPU in the checks it forks); then wait4 reaps it
 * and gives ru_maxrss. VmHWM is gone from a zombie's /proc/PID/status, so it
 * is sampled while the process runs (it only grows: the last sample is the
 * peak up to a sampling period).
 *
 * Every child dies with the benchmark (PR_SET_PDEATHSIG): a node left
 * running would keep taking work from the queue of the next run.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int bench_sflimit_path(const char *given, char *buf, size_t len)
{
    if (given) {
        snprintf(buf, len, "%s", given);
    } else {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            return -1;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
            return -1;
        *slash = '\0';
        snprintf(buf, len, "%s/sflimit", self);
    }
    return access(buf, X_OK);
}

int bench_child_start(bench_child *c, const char *const *argv, const char *out_path,
                      const char *err_path, char *err, size_t errlen)
{
    int in = -1, out = -1, errw = -1, pipefd[2] = {-1, -1};
    memset(c, 0, sizeof(*c));
    c->err_fd = -1;
    in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_path) {
        errw = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    } else if (pipe2(pipefd, O_CLOEXEC) == 0) {
        errw = pipefd[1];
        c->err_fd = pipefd[0];
    }
    if (in < 0 || out < 0 || errw < 0) {
        const char *what = in < 0 || (out < 0 && !out_path) ? "/dev/null"
                           : out < 0                        ? out_path
                           : err_path                       ? err_path
                                                            : "pipe";
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        c->pid = 0;
        goto fail;
    }
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errw, 2) < 0)
            _exit(127);
        close_range(3, ~0U, 0); /* the benchmark's Redis sockets are not CLOEXEC */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in);
    close(out);
    close(errw);
    return 0;
fail:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (errw >= 0)
        close(errw);
    if (c->err_fd >= 0)
        close(c->err_fd);
    c->err_fd = -1;
    return -1;
}

void bench_child_sample(bench_child *c)
{
    char path[64], buf[4096];
    if (!c->pid || c->reaped)
        return;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(buf, sizeof(buf), f)) {
        long kb;
        if (sscanf(buf, "VmHWM: %ld kB", &kb) == 1 && kb > c->vmhwm_kb)
            c->vmhwm_kb = kb;
    }
    fclose(f);
}

/* Own and children's CPU of a zombie, from /proc/PID/stat (fields 14-17). */
static void read_cpu(bench_child *c)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)c->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut, st;
    long cut, cst;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &ut, &st,
                     &cut, &cst) != 4)
        return;
    double tck = (double)sysconf(_SC_CLK_TCK);
    c->cpu_self_s = (double)(ut + st) / tck;
    c->cpu_children_s = (double)(cut + cst) / tck;
    c->cpu_known = 1;
}

int bench_child_wait(bench_child *c, int64_t timeout_ms)
{
    if (!c->pid || c->reaped)
        return 0;
    int64_t deadline = bench_now_ns() + timeout_ms * 1000000;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int flags = WEXITED | WNOWAIT | (timeout_ms >= 0 ? WNOHANG : 0);
        if (waitid(P_PID, (id_t)c->pid, &si, flags) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (si.si_pid != 0)
            break;
        if (bench_now_ns() >= deadline)
            return -1;
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    read_cpu(c);
    struct rusage ru;
    int st;
    while (wait4(c->pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            return -1;
    c->status = st;
    c->reaped = 1;
    c->maxrss_kb = ru.ru_maxrss;
    return 0;
}

void bench_child_finish(bench_child *c, int64_t grace_ms)
{
    if (!c->pid || c->reaped)
        return;
    if (bench_child_wait(c, grace_ms) < 0) {
        kill(c->pid, SIGKILL);
        bench_child_wait(c, -1);
    }
}

void bench_child_stop(bench_child *c, int64_t grace_ms)
{
    if (!c->pid || c->reaped)
        return;
    kill(c->pid, SIGTERM);
    bench_child_finish(c, grace_ms);
}

void bench_child_close(bench_child *c)
{
    if (c->err_fd >= 0)
        close(c->err_fd);
    c->err_fd = -1;
}
