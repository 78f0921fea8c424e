#include "lbridge.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "lapi.h"
#include "lcall.h"
#include "log.h"

/* Instructions allowed to load everything (scripts' top-level code). */
#define LOAD_BUDGET (200u * 1000 * 1000)

static const char *const fn_names[LB_NFN] = {"connect", "message",    "disconnect",
                                             "tick",    "save_state", "api_publish"};

static void set_path(lua_State *L, const char *dir)
{
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* Pushes the options table of rc._boot (see lua/roomcast/init.lua). */
static void push_opts(lua_State *L, const struct rc_config *cfg, int worker_id, uint64_t generation,
                      const char *old_state)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, cfg->script);
    lua_setfield(L, -2, "script");
    lua_createtable(L, cfg->nplugins, 0);
    for (int i = 0; i < cfg->nplugins; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, cfg->plugins[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, cfg->plugins[i].path);
        lua_setfield(L, -2, "path");
        if (cfg->plugins[i].config_json) {
            lua_pushstring(L, cfg->plugins[i].config_json);
            lua_setfield(L, -2, "config_json");
        }
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "plugins");
    lua_createtable(L, cfg->nroutes, 0);
    for (int i = 0; i < cfg->nroutes; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, cfg->routes[i].pattern);
        lua_setfield(L, -2, "pattern");
        lua_pushstring(L, cfg->routes[i].script);
        lua_setfield(L, -2, "script");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "routes");
    if (cfg->script_config_json) {
        lua_pushstring(L, cfg->script_config_json);
        lua_setfield(L, -2, "config_json");
    }
    if (old_state) {
        lua_pushstring(L, old_state);
        lua_setfield(L, -2, "old_state");
    }
    /* rc.store_errors: a script that must answer every refused publish
     * waits for the room's answer when publishes can be refused. */
    lua_pushstring(L, rc_names_storeerr[cfg->store_errors]);
    lua_setfield(L, -2, "store_errors");
    lua_pushinteger(L, worker_id);
    lua_setfield(L, -2, "worker_id");
    lua_pushnumber(L, (lua_Number)generation);
    lua_setfield(L, -2, "generation");
}

/* Runs in protected mode: openlibs can raise (out of memory). */
static int open_libs(lua_State *L)
{
    luaL_openlibs(L);
    return 0;
}

struct lbridge *lbridge_new(const struct rc_config *cfg, int worker_id, uint64_t generation,
                            struct worker_stats *stats, const char *old_state, char *err,
                            size_t errcap)
{
    /* Keep lapi.o (and so every rc_ffi_* symbol) in binaries linking the
     * static library: ffi.C looks them up by name at run time. */
    if (rc_ffi_symbols[0] == NULL) {
        snprintf(err, errcap, "rc_ffi_* symbols missing");
        return NULL;
    }
    if (cfg->script == NULL || cfg->lua_dir == NULL) {
        snprintf(err, errcap, "no script or lua_dir configured");
        return NULL;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(err, errcap, "cannot create a Lua state (out of memory)");
        return NULL;
    }
    struct lbridge *b = rc_xcalloc(1, sizeof(*b));
    b->L = L;
    b->generation = generation;
    b->budget = cfg->lua_budget;
    for (int i = 0; i < LB_NFN; i++)
        b->ref[i] = LUA_NOREF;
    lcall_init(L, stats);
    lua_pushcfunction(L, open_libs);
    if (lcall_pcall_err(L, 0, 0, 0, err, errcap) != 0)
        goto fail;
    set_path(L, cfg->lua_dir);

    /* local entry = require("roomcast")._boot(opts) */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "roomcast");
    if (lcall_pcall_err(L, 1, 1, LOAD_BUDGET, err, errcap) != 0)
        goto fail;
    lua_getfield(L, -1, "_boot");
    lua_remove(L, -2);
    push_opts(L, cfg, worker_id, generation, old_state);
    if (lcall_pcall_err(L, 1, 1, LOAD_BUDGET, err, errcap) != 0)
        goto fail;
    if (!lua_istable(L, -1)) {
        snprintf(err, errcap, "roomcast._boot returned no entry table");
        goto fail;
    }
    for (int i = 0; i < LB_NFN; i++) {
        lua_getfield(L, -1, fn_names[i]);
        if (!lua_isfunction(L, -1)) {
            snprintf(err, errcap, "roomcast._boot: entry.%s is not a function", fn_names[i]);
            goto fail;
        }
        b->ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_settop(L, 0);
    /* A full collection now, so the first requests do not pay for loading. */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return b;
fail:
    lbridge_free(b);
    return NULL;
}

int lbridge_check_plugins(const struct rc_config *cfg, char *err, size_t errcap)
{
    if (cfg->nplugins == 0)
        return 0;
    if (cfg->lua_dir == NULL) {
        snprintf(err, errcap, "no lua_dir configured");
        return -1;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(err, errcap, "cannot create a Lua state (out of memory)");
        return -1;
    }
    lcall_init(L, NULL);
    int rc = -1;
    lua_pushcfunction(L, open_libs);
    if (lcall_pcall_err(L, 0, 0, 0, err, errcap) != 0)
        goto out;
    set_path(L, cfg->lua_dir);
    /* require("roomcast")._check_plugins(opts) */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "roomcast");
    if (lcall_pcall_err(L, 1, 1, LOAD_BUDGET, err, errcap) != 0)
        goto out;
    lua_getfield(L, -1, "_check_plugins");
    lua_remove(L, -2);
    push_opts(L, cfg, 0, 1, NULL);
    if (lcall_pcall_err(L, 1, 0, LOAD_BUDGET, err, errcap) != 0)
        goto out;
    rc = 0;
out:
    lua_close(L);
    return rc;
}

void lbridge_free(struct lbridge *b)
{
    if (b == NULL)
        return;
    if (b->L)
        lua_close(b->L);
    rc_free(b);
}

void lbridge_push(struct lbridge *b, enum lbridge_fn fn)
{
    lua_rawgeti(b->L, LUA_REGISTRYINDEX, b->ref[fn]);
}

int lbridge_call(struct lbridge *b, int nargs, int nres, const char *what)
{
    return lcall_pcall_what(b->L, nargs, nres, b->budget, what);
}

int lbridge_call_async(struct lbridge *b, int nargs, const char *what, lcall_done_fn done, void *ud,
                       uint64_t tag)
{
    return lcall_pcall_async(b->L, nargs, b->budget, what, done, ud, tag);
}

char *lbridge_save_state(struct lbridge *b)
{
    lua_State *L = b->L;
    lbridge_push(b, LB_SAVE_STATE);
    if (lbridge_call(b, 0, 1, "save_state") != 0)
        return NULL;
    char *out = NULL;
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s != NULL) {
        out = rc_xmalloc(len + 1);
        memcpy(out, s, len);
        out[len] = '\0';
    }
    lua_pop(L, 1);
    return out;
}
