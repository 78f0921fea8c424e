/* runtime.h - where the Lua runtime and the scripts are, without the source tree.
 *
 * The server needs lua/roomcast/ (the `roomcast` module) at run time, and the
 * scripts and plugins the config names. The runtime directory is, in order:
 *
 *   0. lua_dir from the config file (relative: to the file's directory) or
 *      --lua-dir (relative: to the working directory); it replaces 1-3;
 *   1. next to the binary: dirname(/proc/self/exe)/../share/roomcast/lua, an
 *      installed tree wherever it was put (DESTDIR or moved). A binary that
 *      still sits in the build directory it was built in uses its own source
 *      tree here instead: a checkout's build/roomcast must never pick up an
 *      older runtime installed under the prefix;
 *   2. the compiled-in prefix: RC_DATADIR/lua (CMAKE_INSTALL_PREFIX/share/roomcast);
 *   3. the source tree: RC_SOURCE_DIR/lua (a binary copied out of its checkout).
 *
 * A directory counts when it holds roomcast/init.lua. The data directory is
 * the runtime directory's parent (share/roomcast, or the checkout): it holds
 * scripts/, plugins/ and www/.
 *
 * A relative script, plugin or route path is looked up under a base
 * directory (the config file's, as nginx does, or the working directory for
 * a flag), then under the data directory, so `script = "scripts/chat.lua"`
 * works in /etc/roomcast/roomcast.conf.lua and from any working directory.
 *
 * Main thread only, before the workers start.
 */
#ifndef RC_APP_RUNTIME_H
#define RC_APP_RUNTIME_H

#include <stddef.h>

struct rc_config;

/* Finds the runtime directory (steps 1-3 above; no override). Returns 0 with
 * *out an rc_xmalloc'd absolute path (caller frees), or RC_E_NOT_FOUND with
 * "looked in: A (why), B (why), C (why)" written into err[0..cap). */
int runtime_find(char **out, char *err, size_t cap);

/* Makes c's paths absolute and checks that they exist: lua_dir (found with
 * runtime_find when unset), script, every plugin path and route script.
 * `base` is the absolute directory relative paths start from (the config
 * file's directory, or the working directory for flags); already absolute
 * paths are only checked, so a second call with another base changes only
 * what was set since. Does nothing for Lua when there is no script (echo).
 * Returns 0, or RC_E_NOT_FOUND / RC_E_CONFIG with "roomcast: ..." naming
 * every place it looked written into err[0..cap). */
int runtime_resolve(struct rc_config *c, const char *base, char *err, size_t cap);

/* Config-file values that name the operator's own files (tls_cert, tls_key,
 * tls_chain, static_dir): a relative one is made absolute under `config_dir`, as nginx
 * does for its certificates (no data-directory fallback: these are never
 * shipped). Call once, right after the file is loaded, before the flags. */
void runtime_rebase_files(struct rc_config *c, const char *config_dir);

/* -t: compiles (does not run) roomcast/init.lua of c->lua_dir and every
 * script and plugin, so a syntax error shows before a start or reload.
 * Call after runtime_resolve. Returns 0 or RC_E_SCRIPT with Lua's
 * "FILE:LINE: message" in err. */
int runtime_check_syntax(const struct rc_config *c, char *err, size_t cap);

/* The absolute directory of `path` (a file), resolved against the working
 * directory when relative. rc_xmalloc'd; caller frees. */
char *runtime_dir_of(const char *path);

/* The working directory, rc_xmalloc'd ("/" when it cannot be read). */
char *runtime_cwd(void);

#endif
