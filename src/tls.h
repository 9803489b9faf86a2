/* tls.h - client-side TLS for the evhttp connections to Dispatcharr and to
 * Xtream panels (tls.c). */
#ifndef SFL_TLS_H
#define SFL_TLS_H

#include <stddef.h>

struct event_base;
struct bufferevent;
struct ssl_ctx_st;

/* A client SSL_CTX that verifies the peer against the system's trust store
 * and, when ca_file is neither NULL nor "", the PEM certificates in it.
 * NULL with err set (names the file, never a secret). The caller frees it
 * with sfl_tls_ctx_free (NULL is a no-op). */
struct ssl_ctx_st *sfl_tls_ctx_new(const char *ca_file, char *err, size_t errlen);
void sfl_tls_ctx_free(struct ssl_ctx_st *ctx);

/* A new unconnected bufferevent that runs TLS over a socket evhttp opens
 * (evhttp_connection_base_bufferevent_new), with SNI and a hostname (or IP
 * address) check for host. It owns a new SSL object, freed with it; the
 * connection that takes it frees it. NULL when out of memory. */
struct bufferevent *sfl_tls_bev(struct event_base *base, struct ssl_ctx_st *ctx, const char *host);

/* Why the TLS handshake on bev (from sfl_tls_bev) failed, into buf:
 * "certificate verify failed for HOST: <reason>", or "TLS handshake with
 * HOST failed: <reason>". 0 when bev shows no TLS failure (a refused or
 * closed connection is the socket's: buf untouched). Reads bev's queue of
 * OpenSSL errors empty. */
int sfl_tls_error(struct bufferevent *bev, const char *host, char *buf, size_t len);

#endif
