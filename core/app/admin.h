/* admin.h - the admin HTTP listener (default 127.0.0.1:8081) on the main
 * thread's default loop, which is otherwise idle.
 *
 *   GET /              the live dashboard (dashboard.html, compiled in)
 *   GET /health        200 {"status":"ok","active_connections":N} while
 *                      serving, 503 "draining" once SIGTERM began the drain
 *   GET /stats         JSON: totals and per-worker counters, script
 *                      generation, uptime, ports, rates, busiest rooms
 *   GET /stats/history one sample a second for the last five minutes
 *   GET /metrics       Prometheus text exposition format 0.0.4: every counter
 *                      of RC_STATS_MAP per worker, closes by code, refused
 *                      handshakes by status, drops by reason, handler time
 *   /api/...           the HTTP API for backends (api.h; api_token)
 *
 * With admin_token set, /stats, /stats/history and /metrics need
 * "Authorization: Bearer TOKEN" (401 otherwise); /health and the page stay
 * open. One request per connection (Connection: close), heads parsed with
 * proto/http_parse.h (8 KiB), bodies up to api_max_body by Content-Length
 * (413 beyond), 5 s to send a request and 5 s to take the answer.
 * At most admin_max_clients at a time: when all are taken, the client that
 * has been sending its request the longest is closed for the newcomer, so
 * stalled clients cannot keep a load balancer's probe out.
 * Counters are read with relaxed atomics while the workers run (stats.h).
 */
#ifndef RC_APP_ADMIN_H
#define RC_APP_ADMIN_H

#include <ev.h>

struct server;
struct rc_config;

/* Binds cfg->admin_addr:admin_port (0 = any free port) and serves on loop,
 * logging "admin listening on http://ADDR:PORT/". srv is borrowed until
 * admin_stop; cfg only during the call (the bearer token is read per request
 * from the current rc_live snapshot, so a SIGHUP may change it). Returns 0, 1 when the admin
 * listener is off (admin_addr NULL), or -errno when the bind fails (logged). Main thread. */
int admin_start(struct ev_loop *loop, struct server *srv, const struct rc_config *cfg);

/* /health turns 503 (drain began). Main thread. */
void admin_set_draining(void);

/* Counts one SIGHUP config reload (ok = 1) or a refused one (ok = 0). Main thread. */
void admin_count_config_reload(int ok);

/* Closes the listener and every admin connection. Main thread. */
void admin_stop(void);

/* Renders /metrics into a new rc_xmalloc'd NUL-terminated string (caller
 * frees); for tests and the handler. Any thread. */
char *admin_render_metrics(const struct server *srv);

/* Renders /stats likewise. */
char *admin_render_stats(const struct server *srv);

#endif
