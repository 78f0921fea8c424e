/* lwatch.h - reload when the script files change on disk (DESIGN.md "Lua
 * layer"): an ev_stat per file in use (script, plugins, route scripts) and
 * per directory holding them (editors that save by rename change the
 * directory), debounced so that a burst of writes gives one reload.
 *
 *   write scripts/chat.lua --ev_stat--> (re)start 200 ms timer --> cb(ud) (server_reload)
 *
 * Ownership: lwatch_start returns an object owned by the caller, freed by
 * lwatch_stop. Thread: the loop's (the main thread).
 */
#ifndef RC_LUA_LWATCH_H
#define RC_LUA_LWATCH_H

#include <ev.h>

struct rc_config;
struct lwatch;

#define LWATCH_DEBOUNCE 0.2

/* Watches the files cfg names. Returns NULL when there is nothing to watch. */
struct lwatch *lwatch_start(struct ev_loop *loop, const struct rc_config *cfg, void (*cb)(void *ud),
                            void *ud);
void lwatch_stop(struct lwatch *lw);

#endif
