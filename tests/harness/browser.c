/* browser.c - headless Chromium for the dashboard tests (browser.h). One
 * run per rendering, each with a profile of its own that is removed after
 * (a few MB), so runs never share state and nothing is left behind. */
#include "browser.h"

#include "harness.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHROMIUM_TIMEOUT_MS 60000

static const char *chromium;

const char *th_chromium_need(void)
{
    chromium = getenv("SFL_CHROMIUM");
    if (!chromium || !*chromium)
        chromium = "/usr/bin/chromium";
    if (access(chromium, X_OK) == 0)
        return chromium;
    const char *req = getenv("SFL_REQUIRE_CHROMIUM");
    if (req && strcmp(req, "1") == 0)
        cr_assert_fail("%s not installed and SFL_REQUIRE_CHROMIUM=1 (Debian: apt-get install "
                       "chromium)",
                       chromium);
    cr_skip_test("%s not installed (Debian: apt-get install chromium); dashboard not tested "
                 "(SFL_REQUIRE_CHROMIUM=1 makes this a failure)",
                 chromium);
    return NULL;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void th_chromium_run(const char *url, const char *extra, const char *out_path, const char *workdir,
                     int budget_ms, void (*tick)(void *), void *arg)
{
    static int runs;
    char profile[128], prof_flag[200], err_path[256], budget[64];
    if (!chromium)
        th_chromium_need();
    th_tmpdir(profile, sizeof(profile));
    snprintf(prof_flag, sizeof(prof_flag), "--user-data-dir=%s", profile);
    snprintf(err_path, sizeof(err_path), "%s/chromium-%d.err", workdir, runs++);
    snprintf(budget, sizeof(budget), "--virtual-time-budget=%d", budget_ms);
    const char *argv[] = {chromium,
                          "--headless",
                          "--no-sandbox",
                          "--disable-gpu",
                          "--no-first-run",
                          "--disable-background-networking",
                          "--disable-component-update",
                          "--disable-sync",
                          "--disable-dev-shm-usage",
                          prof_flag,
                          budget,
                          extra,
                          "--window-size=1100,1400",
                          url,
                          NULL};
    pid_t pid = th_spawn_tied((char *const *)argv, out_path, err_path);
    int64_t start = th_now_ms(), last = start;
    int st = -1;
    while (th_now_ms() - start < CHROMIUM_TIMEOUT_MS) {
        if ((st = th_wait(pid, 200)) != -1)
            break;
        if (tick && th_now_ms() - last >= 1000) {
            tick(arg);
            last = th_now_ms();
        }
    }
    if (st == -1) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    nftw(profile, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    char *err = st == 0 ? NULL : th_read_file(err_path);
    cr_assert_neq(st, -1, "chromium %s did not finish in %d s; stderr:\n%s", extra,
                  CHROMIUM_TIMEOUT_MS / 1000, err ? err : "");
    cr_assert_eq(st, 0, "chromium %s failed (status %d); stderr:\n%s", extra, st, err ? err : "");
    free(err);
}

char *th_dom_element(const char *dom, const char *tag, const char *attr)
{
    const char *at = strstr(dom, attr);
    cr_assert_not_null(at, "nothing with %s in the rendered page:\n%s", attr, dom);
    const char *open = at;
    while (open > dom && *open != '<')
        open--;
    char close[32];
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *end = strstr(at, close);
    cr_assert_not_null(end, "no %s after %s", close, attr);
    return strndup(open, (size_t)(end + strlen(close) - open));
}

char *th_dom_attr(const char *p, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=\"", name);
    const char *end_tag = strchr(p, '>');
    const char *a = strstr(p, pat);
    if (!a || (end_tag && a > end_tag))
        return NULL;
    a += strlen(pat);
    const char *q = strchr(a, '"');
    if (!q)
        return NULL;
    char *out = malloc((size_t)(q - a) + 1), *o = out;
    if (!out)
        return NULL;
    static const char *const ents[][2] = {
        {"&quot;", "\""}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&nbsp;", " "}};
    while (a < q) {
        size_t k = 0;
        for (; k < sizeof(ents) / sizeof(ents[0]); k++)
            if (strncmp(a, ents[k][0], strlen(ents[k][0])) == 0)
                break;
        if (k < sizeof(ents) / sizeof(ents[0])) {
            *o++ = ents[k][1][0];
            a += strlen(ents[k][0]);
        } else {
            *o++ = *a++;
        }
    }
    *o = '\0';
    return out;
}
