/* lbridge.h - one LuaJIT state with the roomcast runtime, plugins and script
 * loaded (STYLE §3.3 item 8): the C side of lua/roomcast/init.lua's
 * rc._boot.
 *
 *   lbridge_new: luaL_newstate, openlibs, package.path = LUA_DIR/?.lua;LUA_DIR/?/init.lua,
 *                require "roomcast" (FFI wrappers), rc._boot{script, plugins, routes,
 *                config, old_state} -> entry table kept in the registry
 *   lbridge_call_*: push an entry function, arguments -> lcall_pcall
 *
 * Ownership: the caller owns the bridge (one per worker, plus a second one
 * while a reload builds its replacement) and frees it with lbridge_free.
 * Thread: the owning worker's (a state is created on the main thread before
 * the worker starts, then only used by the worker).
 */
#ifndef RC_LUA_LBRIDGE_H
#define RC_LUA_LBRIDGE_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "lcall.h"

struct rc_config;
struct worker_stats;

/* Entry functions of the entry table, as registry refs. */
enum lbridge_fn {
    LB_CONNECT = 0, /* (id, path, query, headers, peer) -> ok, status, reason */
    LB_MESSAGE,     /* (id, data, is_binary) */
    LB_DISCONNECT,  /* (id, code, reason) */
    LB_TICK,        /* (now_ms) */
    LB_SAVE_STATE,  /* () -> json string or nil */
    LB_API_PUBLISH, /* (room, body, sender) -> payload, stamp | nil, code, message */
    LB_NFN
};

struct lbridge {
    lua_State *L;        /* owned */
    int ref[LB_NFN];     /* registry refs of the entry functions */
    uint64_t generation; /* 1 for the first state, +1 per successful reload */
    uint64_t budget;     /* instructions per handler call (cfg->lua_budget) */
};

/* Creates a state and loads lua/roomcast, the configured plugins and routes,
 * and cfg->script. old_state (JSON from lbridge_save_state, may be NULL) is
 * handed to the scripts' on_reload. stats (may be NULL) counts errors.
 * Returns the bridge, or NULL with the reason ("file:line: message") in err. */
struct lbridge *lbridge_new(const struct rc_config *cfg, int worker_id, uint64_t generation,
                            struct worker_stats *stats, const char *old_state, char *err,
                            size_t errcap);

/* For `roomcast -t`: loads lua/roomcast and runs the setup of every
 * configured plugin (rc._check_plugins) in a throwaway state, without the
 * script or routes and without a worker. jwt_auth reads and parses its key
 * files there, exactly as a worker does at start and on reload. Returns 0,
 * or -1 with the reason ("file:line: message") in err. Main thread. */
int lbridge_check_plugins(const struct rc_config *cfg, char *err, size_t errcap);

/* Closes the state and frees b (NULL is fine). */
void lbridge_free(struct lbridge *b);

/* Pushes entry function fn; push its arguments, then call lbridge_call. */
void lbridge_push(struct lbridge *b, enum lbridge_fn fn);

/* lcall_pcall with the bridge's budget; `what` names the event in the log. */
int lbridge_call(struct lbridge *b, int nargs, int nres, const char *what);

/* lcall_pcall_async with the bridge's budget (nres 0): the handler may wait
 * (lcall.h). 0, an error, or RC_PENDING (done(ud, tag, rc) later). */
int lbridge_call_async(struct lbridge *b, int nargs, const char *what, lcall_done_fn done, void *ud,
                       uint64_t tag);

/* Calls save_state; returns an rc_xmalloc'd NUL-terminated JSON text, or NULL
 * (no state, or an error, which is logged and counted). */
char *lbridge_save_state(struct lbridge *b);

#endif
