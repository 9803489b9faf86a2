/* fuzz_redis_url.c - the two address parsers of addr.c, split on the first
 * byte: even -> sfl_redis_url_parse(), odd -> sfl_listen_parse(). The rest
 * is copied into an exactly-sized NUL-terminated buffer, so reading past the
 * string's end is an ASan report.
 *
 * Checked: a refused URL leaves *out cleared (addr.h), an accepted one has
 * a consistent shape; an accepted listen address has a port in 0..65535 and
 * a host that fits the buffer. */
#include "addr.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_redis_url: check failed: %s (line %d)\n", #cond, __LINE__);      \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static void redis_url(const char *s)
{
    sfl_redis_url u;
    char err[160];
    err[0] = '\0';
    memset(&u, 0x5a, sizeof(u)); /* the parser must clear it */
    if (sfl_redis_url_parse(s, &u, err, sizeof(err)) < 0) {
        CHECK(err[0] != '\0');
        CHECK(!u.host && !u.unix_path && !u.user && !u.password && !u.port && !u.db && !u.embedded);
        CHECK(!u.sentinels && !u.nsentinels && !u.master);
        return;
    }
    if (u.embedded)
        CHECK(!u.host && !u.unix_path && u.port == 0);
    else if (u.sentinels) {
        CHECK(!u.host && !u.unix_path && u.port == 0 && u.master && u.master[0]);
        CHECK(u.nsentinels >= 1 && u.nsentinels <= SFL_SENTINELS_MAX);
        for (int i = 0; i < u.nsentinels; i++)
            CHECK(u.sentinels[i].host && u.sentinels[i].host[0] && u.sentinels[i].port >= 1 &&
                  u.sentinels[i].port <= 65535);
    } else if (u.unix_path)
        CHECK(!u.host && u.port == 0 && u.unix_path[0] == '/' && strlen(u.unix_path) < 108);
    else
        CHECK(u.host && u.host[0] && u.port >= 1 && u.port <= 65535);
    CHECK(u.db >= 0);
    CHECK(!u.user || u.user[0]);
    CHECK(!u.password || u.password[0]);
    sfl_redis_url_clear(&u);
    CHECK(!u.host && !u.unix_path && !u.user && !u.password);
}

static void listen_addr(const char *s)
{
    char host[48], err[160];
    int port = -1;
    err[0] = '\0';
    if (sfl_listen_parse(s, host, sizeof(host), &port, err, sizeof(err)) < 0) {
        CHECK(err[0] != '\0');
        return;
    }
    CHECK(port >= 0 && port <= 65535);
    CHECK(memchr(host, '\0', sizeof(host)) != NULL && host[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] & 1)
        listen_addr(s);
    else
        redis_url(s);
    free(s);
    return 0;
}
