/* lhandler.h - the connection handler that runs Lua scripts (-s SCRIPT).
 *
 *   on_upgrade   -> entry.connect(id, path, query, headers, peer): refuse or accept
 *   on_message   -> entry.message(id, data, is_binary)
 *   on_close     -> entry.disconnect(id, code, reason)
 *   tick timer   -> entry.tick(now_ms) every cfg->tick_interval seconds
 *   worker_start -> a state per worker (a load error aborts startup)
 *   reload       -> a new state; the old one stays when anything fails
 *
 * A close that happens while Lua is running (a handler's send hit the
 * slow-consumer limit of another connection, say) cannot call back into the
 * VM from inside an FFI call: its disconnect is queued and delivered right
 * after the running handler returns.
 * Thread: each callback on its worker's thread; worker_start on the main
 * thread before the workers run.
 */
#ifndef RC_LUA_LHANDLER_H
#define RC_LUA_LHANDLER_H

#include <stdint.h>

#include "conn.h"

extern const struct conn_handler lua_handler;

#endif
