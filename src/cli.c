/* cli.c - shared pieces of the subcommands' command lines: loading the
 * config with its overrides, and numbers that are checked, not atoi'd. */
#include "cli.h"

#include "addr.h"
#include "conf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sfl_conf *sfl_cli_conf(const char *path, const char *redis_url)
{
    char err[512];
    sfl_conf *c = sfl_conf_load(path, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "sflimit: %s\n", err);
        return NULL;
    }
    if (redis_url) {
        char *u = strdup(redis_url);
        if (!u) {
            sfl_conf_free(c);
            return NULL;
        }
        free(c->redis_url);
        c->redis_url = u;
        sfl_redis_url tmp;
        if (sfl_redis_url_parse(u, &tmp, err, sizeof(err)) < 0) {
            fprintf(stderr, "sflimit: --redis: %s\n", err);
            sfl_conf_free(c);
            return NULL;
        }
        sfl_redis_url_clear(&tmp);
    }
    if (sfl_conf_validate(c, err, sizeof(err)) < 0) {
        fprintf(stderr, "sflimit: %s\n", err);
        sfl_conf_free(c);
        return NULL;
    }
    return c;
}

int sfl_cli_integer(const char *what, const char *text, long long min, long long *out)
{
    char *end;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || !*text || *end || errno || v < min) {
        fprintf(stderr, "sflimit: %s: expected an integer >= %lld, got '%s'\n", what, min,
                text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

int sfl_cli_seconds(const char *what, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = text ? strtod(text, &end) : 0;
    if (!text || !*text || *end || errno || !isfinite(v) || v < 0) {
        fprintf(stderr, "sflimit: %s: expected a number of seconds >= 0, got '%s'\n", what,
                text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}
