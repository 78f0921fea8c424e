/* lcall.h - THE protected call into Lua (STYLE §3.3 item 8, §3.5 rule 9).
 *
 * Every call from C into a Lua state goes through lcall_pcall. It runs the
 * function in a coroutine (so later asynchronous APIs can yield), with a
 * LUA_MASKCOUNT hook that aborts it after `budget` VM instructions, and turns
 * a raised error into a log line with the script's file:line (rate-limited),
 * a traceback at debug level, and the worker's lua_errors_total counter.
 *
 *   C: push fn, args --> lcall_pcall --> coroutine: fn(args)
 *                                        \-- count hook: budget spent -> error,
 *                                            then an error at every instruction
 *                                            (Redis), so pcall loops cannot hold on
 *
 * LuaJIT runs no hooks inside compiled traces, so the budget only binds
 * interpreted code: the sandbox loads scripts and plugins with the JIT off
 * for them (jit.off(chunk, true)); lua/roomcast stays JIT-compiled.
 *
 * Thread: the thread that owns the state. Hooks are global to a LuaJIT VM,
 * so one VM must not be used by two threads (one state per worker).
 */
#ifndef RC_LUA_LCALL_H
#define RC_LUA_LCALL_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

struct worker_stats;

/* Sets where lcall_pcall counts errors for state L (NULL: nowhere) and
 * installs the budget hook. Call once after creating the state, before
 * anything takes a luaL_ref in its registry (lcall keeps its coroutine in
 * the first slot; it panics otherwise); the stats must outlive the state. */
void lcall_init(lua_State *L, struct worker_stats *stats);

/* Calls the function that sits below `nargs` arguments on top of L's stack,
 * within `budget` VM instructions (0 = unlimited; counted in steps of 10000,
 * the period of the hook installed by lcall_init). nres >= 0.
 * Returns 0 with exactly nres results pushed; or, with function and
 * arguments popped and nothing pushed:
 *   RC_E_SCRIPT  the function raised (or yielded, which nothing supports yet)
 *   RC_E_TIMEOUT the budget was exhausted
 * Errors are logged ("lua: <what>: file:line: message") through the
 * rate-limited logger and counted in lua_errors_total. `what` names the
 * event for the log ("message", "connect", ...; may be NULL). Never raises. */
int lcall_pcall(lua_State *L, int nargs, int nres, uint64_t budget);
int lcall_pcall_what(lua_State *L, int nargs, int nres, uint64_t budget, const char *what);

/* Like lcall_pcall but silent: neither logs nor counts; copies the error's
 * first line ("file:line: message") into err (NUL-terminated, truncated to
 * cap). For loading and reloading, whose caller reports the failure. */
int lcall_pcall_err(lua_State *L, int nargs, int nres, uint64_t budget, char *err, size_t cap);

/* -- asynchronous calls ---------------------------------------------------------
 *
 * A handler that needs I/O waits without blocking the worker:
 *
 *   handler (coroutine) -- rc_ffi_x(...) --> C: t = lcall_wait_ticket(timeout); start the I/O
 *                       <-- t ------------
 *   Lua: coroutine.yield(t) --> lcall sees its own ticket: parks the coroutine, returns
 *                               RC_PENDING to whoever called lcall_pcall_async
 *   ... the worker serves everyone else ...
 *   the answer arrives on the worker (mailbox, timer, store callback):
 *     lcall_complete(t, push, ud) --> push(co, ud) results --> resume: the yield returns them
 *                                     --> done(ud, tag, rc) once the handler ends
 *   lcall_expire(now) resumes overdue waits with (nil, "timeout").
 *
 * The instruction budget covers running time only: each resumed segment
 * gets what the previous ones left. A ticket nobody yields (the script
 * swallowed it) or that completes after its wait expired is ignored.
 * Thread: the state's worker (lcall_drop_state: whoever stops it, once its
 * worker thread is gone); expire and parked(NULL) see the caller's waits.
 */

/* The end of a parked call: rc is 0, RC_E_SCRIPT, RC_E_TIMEOUT (budget),
 * or RC_E_CLOSED (the state was dropped). Called exactly once, later. */
typedef void (*lcall_done_fn)(void *ud, uint64_t tag, int rc);

/* lcall_pcall with nres = 0 for a handler that may wait. Returns 0, an
 * error as lcall_pcall, or RC_PENDING: the coroutine is parked and
 * done(ud, tag, rc) will be called exactly once when it ends (never from
 * inside this call). */
int lcall_pcall_async(lua_State *L, int nargs, uint64_t budget, const char *what,
                      lcall_done_fn done, void *ud, uint64_t tag);

/* From C reached by a running handler (an rc_ffi_* function): a ticket for
 * one wait of at most timeout_ms, or 0 when this handler cannot wait (not
 * started by lcall_pcall_async, or it already holds a ticket it has not
 * yielded). The Lua side must then `coroutine.yield(ticket)` at once. */
uint64_t lcall_wait_ticket(uint32_t timeout_ms);

/* The asynchronous call that took `ticket` failed before starting: the
 * handler will not yield it (and may take another). */
void lcall_wait_cancel(uint64_t ticket);

/* Resumes the handler waiting on ticket: push (may be NULL) pushes the
 * yield's results on co and returns how many. Runs the handler to its next
 * wait or its end (then calls its done). Must not be called from inside a
 * handler (RC_E_INVAL). Returns 0, or RC_E_NOT_FOUND (unknown, expired or
 * dropped ticket: push is not called). */
int lcall_complete(uint64_t ticket, int (*push)(lua_State *co, void *ud), void *ud);

/* -- end actions ----------------------------------------------------------------
 *
 * C reached by a running handler can ask to be called when that handler's
 * call ends, however it ends: it returns, raises, runs out of budget (after
 * any number of waits), or its state is dropped while it waits. A reload
 * does not end it: a waiting handler finishes in its retired state (lhandler.c).
 *
 *   rc_ffi_x: lcall_at_end(e) -> e on the innermost running call's list
 *   ... waits: the list moves with the parked call ...
 *   the call ends -> e->fn(e, rc), newest first, then done(ud, tag, rc)
 *
 * fn runs with lcall_depth() > 0 (a close it causes defers its disconnect
 * handler, as from any rc_ffi_* call) and must not call into Lua; it owns e
 * from then on (frees it). rc is the call's end: 0, RC_E_SCRIPT,
 * RC_E_TIMEOUT, or RC_E_CLOSED (state dropped: only free e; the worker may
 * be gone). */
struct lcall_end {
    struct lcall_end *next; /* lcall's */
    void (*fn)(struct lcall_end *e, int rc);
};

/* Registers e with the running call. Returns 0, or RC_E_INVAL when no call
 * runs (e is not taken). */
int lcall_at_end(struct lcall_end *e);

/* Runs the running call's end actions now, with rc (0 or RC_E_SCRIPT: a
 * handler about to answer for a script that refused or raised,
 * lua/roomcast/boot.lua). Returns how many ran. */
int lcall_end_now(int rc);

/* Resumes every wait whose deadline is <= now_ms with (nil, "timeout").
 * Returns how many. */
size_t lcall_expire(int64_t now_ms);

/* Waits parked for state L (NULL: any state of the calling thread). */
size_t lcall_parked(lua_State *L);

/* Forgets every wait of state L (before lua_close): done(ud, tag,
 * RC_E_CLOSED) for each. Returns how many. */
size_t lcall_drop_state(lua_State *L);

/* CLOCK_MONOTONIC in milliseconds (the clock of the deadlines). */
int64_t lcall_now_ms(void);

/* > 0 while the calling thread is inside lcall_pcall (C code reached from
 * Lua, e.g. an rc_ffi_* function, must not call back into Lua). */
int lcall_depth(void);

/* Errors counted by lcall_pcall on this thread since it started (tests). */
uint64_t lcall_errors(void);

#endif
