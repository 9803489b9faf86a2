/* addr.h - the two network addresses a config names: the Redis URL
 * (redis.url, --redis, SFL_REDIS_URL) and the HTTP listen address
 * (http.listen, SFL_HTTP_LISTEN). Parsers only: nothing here resolves a name
 * or opens a socket. */
#ifndef SFL_ADDR_H
#define SFL_ADDR_H

#include <stddef.h>

/* Redis URL: redis://[[user]:password@]host[:port][/db], unix:///path[?db=N],
 * redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER[/db]
 * or "embedded". user and password may be %XX-escaped. A host may be a
 * bracketed IPv6 address ("redis://[::1]:6380"). Messages never repeat the
 * password. In a redis-sentinel:// URL the hosts are the sentinels (port
 * 26379 when absent), asked in this order for the master named MASTER; the
 * user and password are the master's (the sentinels' own is
 * redis.sentinel_password). */
#define SFL_SENTINELS_MAX 16
typedef struct sfl_redis_addr {
    char *host;
    int port;
} sfl_redis_addr;

typedef struct sfl_redis_url {
    char *host;                /* NULL for unix and embedded */
    int port;                  /* 6379 when absent; 0 for unix and embedded */
    char *unix_path;           /* NULL unless unix:// */
    char *user;                /* NULL when absent or empty */
    char *password;            /* NULL when absent or empty */
    int db;                    /* 0 when absent */
    int embedded;              /* 1 for "embedded" */
    sfl_redis_addr *sentinels; /* redis-sentinel:// only (host is then NULL, port 0) */
    int nsentinels;
    char *master; /* redis-sentinel:// only: the master's name */
} sfl_redis_url;
/* 0, or -1 with err set and *out left cleared. The caller clears *out with
 * sfl_redis_url_clear() after a success. */
int sfl_redis_url_parse(const char *url, sfl_redis_url *out, char *err, size_t errlen);
/* Frees the strings and zeroes the struct. NULL is a no-op. */
void sfl_redis_url_clear(sfl_redis_url *u);

/* Splits an http.listen value "HOST:PORT" ("[::1]:8470" for IPv6; port
 * 0..65535, 0 = any free port). host receives the host without brackets.
 * 0, or -1 with err set. */
int sfl_listen_parse(const char *listen, char *host, size_t hostlen, int *port, char *err,
                     size_t errlen);

#endif
