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

struct server;
struct rc_config;

/* Marks every worker's tls_lst closed (fd -1); then, when cfg->tls_cert is
 * set, creates the process's TLS context, binds one socket per worker on
 * bind_addr:tls_port and starts accepting on the workers' loops, logging
 * "listening on wss://ADDR:PORT/". Returns 0, RC_E_TLS (bad certificate or
 * key; logged) or -errno (bind; logged). Main thread, before server_start. */
int tls_server_init(struct server *s);

/* For `roomcast -t`: loads cfg's certificate, chain and key (when tls_cert
 * is set) into a scratch context. Returns 0, or RC_E_TLS with err filled. */
int tls_check_config(const struct rc_config *cfg, char *err, size_t cap);

/* The port the wss:// listeners are bound to, or 0 when TLS is off. Any thread. */
int tls_bound_port(void);

#endif
