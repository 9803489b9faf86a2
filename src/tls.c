/* tls.c - the TLS layer under evhttp (libevent_openssl): a verifying client
 * SSL_CTX and, per connection, an SSL bufferevent.
 *
 * Certificates are always verified: the peer's chain against the system's
 * trust store plus an optional CA file, and its name against the host of
 * the URL (SSL_set1_host, or the IP address for a literal one). There is no
 * switch to turn verification off. An SSL object serves one connection
 * only, so every new evhttp connection gets a new bufferevent from here; a
 * connection evhttp would reopen on the same bufferevent is replaced by its
 * owner instead (the callers never let evhttp retry).
 *
 * It never prints; errors name the host or the file, never a credential.
 */
#include "tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

SSL_CTX *sfl_tls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot set up TLS: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        ERR_clear_error(); /* no system store: a ca_file may still do */
    if (ca_file && *ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        unsigned long e = ERR_peek_last_error();
        snprintf(err, errlen, "cannot load CA file %s: %s", ca_file,
                 e ? ERR_reason_error_string(e) : "no certificate in it");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void sfl_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx); /* NULL is a no-op */
}

struct bufferevent *sfl_tls_bev(struct event_base *base, SSL_CTX *ctx, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    unsigned char addr[16];
    int literal =
        evutil_inet_pton(AF_INET, host, addr) == 1 || evutil_inet_pton(AF_INET6, host, addr) == 1;
    int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1
                     : SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1;
    struct bufferevent *bev = NULL;
    if (ok)
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int sfl_tls_error(struct bufferevent *bev, const char *host, char *buf, size_t len)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl)
        return 0;
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed for %s: %s", host,
                 X509_verify_cert_error_string(v));
        return 1;
    }
    /* libevent queues SSL_get_error's code first (SSL_ERROR_SSL,
     * SSL_ERROR_SYSCALL: no reason string), then OpenSSL's errors. Only the
     * code (a refused connect, a close) is no TLS failure of its own: the
     * caller says what the socket did. */
    const char *why = NULL;
    for (unsigned long e; (e = bufferevent_get_openssl_error(bev)) != 0;)
        if (ERR_reason_error_string(e))
            why = ERR_reason_error_string(e);
    if (!why)
        return 0;
    snprintf(buf, len, "TLS handshake with %s failed: %s", host, why);
    return 1;
}
