/* tls.h - OpenSSL under the transport vtable (transport.h), non-blocking, on
 * the caller's event loop.
 *
 * The handshake is driven by the first reads: read() runs SSL_do_handshake
 * until it completes, then SSL_read (filling the caller's buffer with as many
 * records as are ready). When OpenSSL needs the socket writable for a read
 * (or readable for a write), want_events() reports it. writev() gathers the
 * iovecs into records of up to 16 KiB (SSL_MODE_ENABLE_PARTIAL_WRITE |
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: a retry after WANT_WRITE may pass the
 * same bytes from another address, which is what a send queue does).
 * SSL_MODE_RELEASE_BUFFERS keeps idle connections small.
 *
 * Thread: a context may be shared by every thread; a transport belongs to one.
 */
#ifndef RC_NET_TLS_H
#define RC_NET_TLS_H

#include <stdatomic.h>
#include <stddef.h>

#include "transport.h"

struct tls_ctx;

/* Creates a server context: TLS 1.2 and up, certificate (PEM; may hold the
 * chain after the leaf), optional extra chain file, private key (checked
 * against the certificate). Returns 0 with *out owned by the caller
 * (tls_ctx_free), or RC_E_TLS with err[0..cap) explaining. */
int tls_ctx_new(const char *cert, const char *key, const char *chain, struct tls_ctx **out,
                char *err, size_t cap);
void tls_ctx_free(struct tls_ctx *ctx);

/* Replaces t (set up by transport_init_tcp for fd) with a server-side TLS
 * transport. fail_counter (borrowed, may be NULL) is incremented when the
 * handshake fails. Returns 0 or RC_E_NOMEM/RC_E_TLS (t unchanged). */
int transport_init_tls(struct transport *t, int fd, struct tls_ctx *ctx,
                       atomic_uint_fast64_t *fail_counter);

extern const struct transport_ops tls_transport_ops;

#endif
