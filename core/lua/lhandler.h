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

#include <lua.h>
#include <stdint.h>

#include "conn.h"

struct worker;

extern const struct conn_handler lua_handler;

/* Asynchronous calls (lcall.h) on a worker:
 *   - message handlers may wait; while one waits, its connection's next
 *     messages queue behind it (at WAITQ_HOLD queued, the socket is not
 *     read until the queue is half empty), and run in order after it;
 *   - disconnect and tick handlers may wait too; connect cannot (it must
 *     answer the upgrade now: rc.sleep answers nil, "cannot_wait");
 *   - a close of the connection drops its queued messages and runs
 *     on_disconnect at once; the waiting handler resumes later and finds
 *     its connection closed (sends answer nil, "closed");
 *   - a reload lets waiting handlers finish in the state that started
 *     them; the state is freed after the last one; later messages run in
 *     the new state (in order behind the waiting one);
 *   - each wait ends by its answer or its timeout ((nil, "timeout"));
 *     worker stop ends them all.
 *
 * lhandler_complete: the one way an asynchronous answer reaches a handler
 * (a timer, a mailbox receiver, a store or bus callback on worker w): see
 * lcall_complete. Returns 0, RC_E_NOT_FOUND (the wait ended already), or
 * RC_E_CLOSED (the worker's Lua is stopping). w's thread, not from Lua. */
int lhandler_complete(struct worker *w, uint64_t ticket, int (*push)(lua_State *co, void *ud),
                      void *ud);

/* rc.sleep(ms): a ticket that completes with `true` after ms, or 0 when the
 * running handler cannot wait (or ms is negative or over a day). */
uint64_t lhandler_sleep(struct worker *w, double ms);

#endif
