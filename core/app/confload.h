/* confload.h - the config file: a Lua chunk run in a throwaway LuaJIT state.
 *
 * The file either returns a table of options or assigns them as globals (a
 * returned table wins; see etc/roomcast.conf.lua for every key). Each value
 * is validated and copied into struct rc_config; unknown keys are errors
 * (they are almost always typos). Errors read "roomcast: FILE:LINE: message":
 * Lua supplies the line of a syntax or runtime error; for a bad value the
 * line is where the key is first assigned in the file's text (0 if not found,
 * then the line part is left out) and the message names the key.
 *
 * Main thread only; the Lua state lives only inside each call.
 */
#ifndef RC_APP_CONFLOAD_H
#define RC_APP_CONFLOAD_H

#include <stddef.h>

#include "config.h"

/* Loads `path` over the values already in c (call rc_config_defaults first;
 * CLI flags are applied after). Replaces c->plugins, routes,
 * script_config_json and origins when the file sets them. On failure writes a
 * NUL-terminated "roomcast: FILE:LINE: message" into err[0..cap) and returns
 * RC_E_CONFIG; c may then be partly updated (free it with rc_config_free).
 * Returns 0 on success. */
int confload_file(const char *path, struct rc_config *c, char *err, size_t cap);

/* SIGHUP: loads `path` into a scratch config and, when it is valid, copies the
 * reloadable options into live: log_level, admin_token and the limits
 * (max_connections, max_connections_per_ip, accept_rate/burst,
 * message_rate/burst/policy), then pushes the limits to guard.c. Everything
 * else (listeners, workers, TLS, timeouts, script, plugins) needs a restart;
 * changed values of those are logged as ignored. Returns 0, or RC_E_CONFIG
 * with err filled and live untouched. Main thread only. */
int confload_reload(const char *path, struct rc_config *live, char *err, size_t cap);

/* Parses "ADDR:PORT", "[V6]:PORT" or ":PORT" (ADDR then 0.0.0.0). Returns 0
 * with *addr a new rc_xmalloc'd string (caller frees), or RC_E_INVAL. */
int confload_parse_hostport(const char *s, char **addr, int *port);

#endif
