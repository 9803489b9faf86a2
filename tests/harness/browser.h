/* browser.h - headless Chromium for the tests that look at the dashboard:
 * find it (or skip), run it on an address with one flag (--dump-dom,
 * --screenshot=...), and read what it rendered. */
#ifndef SFL_TEST_BROWSER_H
#define SFL_TEST_BROWSER_H

/* /usr/bin/chromium or $SFL_CHROMIUM. Skips the test when it is not
 * installed, or fails it when SFL_REQUIRE_CHROMIUM=1 (CI). */
const char *th_chromium_need(void);

/* Runs headless Chromium on url with one extra flag, its stdout to out_path
 * (NULL: none) and its stderr to <workdir>/chromium-<n>.err, a fresh
 * profile, a virtual time budget of budget_ms; calls tick(arg) (may be NULL)
 * about every second while it runs. Fails the test when it takes over 60 s
 * or exits non-zero. */
void th_chromium_run(const char *url, const char *extra, const char *out_path, const char *workdir,
                     int budget_ms, void (*tick)(void *), void *arg);

/* The part of dom from the element carrying attr (e.g. `data-login="47"`)
 * to the first `</tag>` after it; fails the test when there is none. Caller
 * frees. */
char *th_dom_element(const char *dom, const char *tag, const char *attr);

/* The value of attribute name in the first tag at or after p (HTML entities
 * &quot; &amp; &lt; &gt; decoded), or NULL. Caller frees. */
char *th_dom_attr(const char *p, const char *name);

#endif
