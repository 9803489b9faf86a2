/* real_limit.c - see real_limit.h. A provider that allows fewer connections
 * than its customer was told answers the one too many with an HTTP error
 * (458, 429, 509, ...; DISPATCHARR.md): this lets a test choose that limit
 * and that code, and move them while sfl runs, to see sfl learn them. */
#include "real_limit.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fp_real_init(fp_real *r)
{
    memset(r, 0, sizeof(*r));
    r->code = 458;
    r->panel_max = -1;
}

static int num(const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

int fp_real_apply(fp_real *r, const char *query, char *err, size_t errlen)
{
    fp_real next = *r;
    char *copy = strdup(query ? query : "");
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *kv = strtok_r(copy, "&", &save); kv && rc == 0; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        long v = 0;
        if (!eq) {
            rc = -1;
        } else {
            *eq = '\0';
            if (strcmp(kv, "real_limit") == 0 && num(eq + 1, 0, INT_MAX, &v) == 0)
                next.limit = v;
            else if (strcmp(kv, "code") == 0 && num(eq + 1, 302, 599, &v) == 0 &&
                     (v == 302 || v >= 400))
                next.code = (int)v;
            else if (strcmp(kv, "panel_max") == 0 && num(eq + 1, -1, INT_MAX, &v) == 0)
                next.panel_max = v;
            else
                rc = -1;
        }
        if (rc < 0)
            snprintf(err, errlen,
                     "bad parameter %s (want real_limit=N, code=302 or 400..599, panel_max=N)", kv);
    }
    free(copy);
    if (rc == 0)
        *r = next;
    return rc;
}

int fp_real_refuses(const fp_real *r, long current)
{
    return r->limit > 0 && current >= r->limit ? r->code : 0;
}
