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
 * installs the budget hook. Call once after creating the state; the stats
 * must outlive the state. */
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

/* > 0 while the calling thread is inside lcall_pcall (C code reached from
 * Lua, e.g. an rc_ffi_* function, must not call back into Lua). */
int lcall_depth(void);

/* Errors counted by lcall_pcall on this thread since it started (tests). */
uint64_t lcall_errors(void);

#endif
