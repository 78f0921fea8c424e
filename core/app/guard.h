/* guard.h - protection against floods and overload, each refusal counted
 * in the worker's stats (admin /metrics):
 *
 *   accept   per-IP cap on TCP connections (closed at once when over),
 *            global accept-rate token bucket (closed at once when empty)
 *   upgrade  max_connections open WebSocket connections (503 before the 101),
 *            Origin allow-list (403)
 *   message  per-connection inbound message rate (token bucket): close 1008
 *            or drop the message, per config
 *
 * Handshake timeout, head size and message size limits live in conn.c.
 * The numbers come from the current rc_live snapshot (config.h), so SIGHUP
 * changes them without writing anything the workers read; the Origin list
 * and whether per-IP counting is on are fixed at startup.
 */
#ifndef RC_APP_GUARD_H
#define RC_APP_GUARD_H

#include <sys/socket.h>

#include "config.h"
#include "handshake.h"
#include "http_parse.h"

struct worker;
struct conn;

/* Reads the fixed settings from cfg (borrowed: the Origin list is used until
 * guard_destroy). Main thread, after the first rc_live_publish and before the
 * workers start. */
void guard_init(const struct rc_config *cfg);

/* Frees the per-IP table. Main thread, after the workers stopped. */
void guard_destroy(void);

/* A new TCP connection from peer on worker w: returns 0 to accept it (its
 * address is then counted until guard_on_release), or RC_E_LIMIT (counted;
 * the caller closes the socket). Worker thread. */
int guard_accept(struct worker *w, const struct sockaddr_storage *peer);

/* The connection is going away: uncounts its address. Owning worker's thread
 * (or the main thread at shutdown). */
void guard_on_release(const struct conn *c);

/* Before the 101: returns 0 to go on, or -1 with *why set (503 over
 * max_connections, 403 for an Origin not on the allow-list) and counted. */
int guard_check_upgrade(struct conn *c, const struct http_request *req, struct ws_refusal *why);

/* One inbound data message on an open connection: returns 0 to deliver it, or
 * 1 when it is over the rate (then dropped, or the connection failed with
 * 1008 per message_rate_policy). Owning worker's thread. */
int guard_message(struct conn *c);

#endif
