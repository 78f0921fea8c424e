/* tlsserver.h - the wss:// listeners: one SO_REUSEPORT socket per worker on
 * tls_port beside the plain one. A connection accepted there is an ordinary
 * struct conn (same limits, upgrade, frame reader and send queues) whose
 * transport is TLS (net/tls.h). A client speaking plain HTTP to the TLS port
 * fails the handshake: counted in tls_handshake_failures_total and dropped,
 * nobody else notices.
 */
#ifndef RC_APP_TLSSERVER_H
#define RC_APP_TLSSERVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "conn.h"
#include "listener.h"

/* One worker's wss:// listener; embedded in struct worker. The worker fills
 * cs and admit before tls_server_init. */
struct tls_listener {
    struct listener lst; /* fd -1 when TLS is off */
    struct connset *cs;  /* borrowed: where accepted connections go */
    /* The accept-time checks: 1 to go on, or 0 after closing fd. */
    int (*admit)(void *ctx, int fd, const struct sockaddr_storage *peer);
    void *ctx;
};

/* Marks every listener closed (fd -1); then, when cfg->tls_cert is set,
 * creates the process's TLS context, binds one socket per worker on
 * bind_addr:tls_port and starts accepting on the workers' loops (each
 * part's cs->loop), logging "listening on wss://ADDR:PORT/". Returns 0,
 * RC_E_TLS (bad certificate or key; logged) or -errno (bind; logged). Main
 * thread, before the workers start. */
int tls_server_init(const struct rc_config *cfg, struct tls_listener *const *parts, int n);

/* Stops accepting (drain, stop). Worker thread, or main after the stop. */
void tls_listener_close(struct tls_listener *t);

/* For `roomcast -t`: loads cfg's certificate, chain and key (when tls_cert
 * is set) into a scratch context. Returns 0, or RC_E_TLS with err filled. */
int tls_check_config(const struct rc_config *cfg, char *err, size_t cap);

/* The port the wss:// listeners are bound to, or 0 when TLS is off. Any thread. */
int tls_bound_port(void);

#endif
