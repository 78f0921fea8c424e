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

#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "conn.h"
#include "stats.h"

/* Reads the fixed settings from cfg (borrowed: the Origin list is used until
 * guard_destroy). Main thread, after the first rc_live_publish and before the
 * workers start. The accept rate uses the worker loops' clock (wloop_now,
 * monotonic). */
void guard_init(const struct rc_config *cfg);

/* Frees the per-IP table. Main thread, after the workers stopped. */
void guard_destroy(void);

/* A new TCP connection from peer (now: the worker's loop time; refusals are
 * counted in st): returns 0 to accept it (its address is then counted until
 * the connection is released), or RC_E_LIMIT (the caller closes the
 * socket). Worker thread. */
int guard_accept(struct worker_stats *st, double now, const struct sockaddr_storage *peer);

/* Puts the guard in front of one worker's connections (main thread, before
 * the worker starts): the upgrade gate (503 over max_connections, counted
 * with open_conns(ctx) = open connections of the whole server; 403 for an
 * Origin not on the allow-list), the message gate (per-connection inbound
 * rate: drop, or fail 1008, per message_rate_policy) and a release hook that
 * uncounts the address. */
void guard_attach(struct connset *cs, uint64_t (*open_conns)(void *ctx), void *ctx);

#endif
