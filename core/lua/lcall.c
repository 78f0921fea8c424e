#include "lcall.h"

#include <lauxlib.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "stats.h"

/* The count hook fires every LCALL_PERIOD instructions and stays installed
 * for the life of the state: setting a hook per call costs two dispatch-table
 * rewrites (~130 ns a call), counting fires costs nothing measurable. The
 * budget is therefore enforced to within LCALL_PERIOD instructions. */
#define LCALL_PERIOD 10000
/* Hook periods allowed after the first budget error, so the chain runner can
 * still answer the client with handler_error before the script is cut off. */
#define LCALL_GRACE_PERIODS 2

/* Registry keys (their addresses). */
static char key_stats;
static char key_thread;

/* One lcall_pcall in progress on this thread (they nest when a handler's C
 * call ends in another handler call, e.g. a close notification). */
struct run {
    struct run *outer;
    uint64_t budget;
    uint64_t spent; /* instructions, in LCALL_PERIOD steps */
    int exhausted;  /* 0, 1 = first error raised, 2 = erroring at every instruction */
    int grace;
};

static _Thread_local struct run *cur_run;
static _Thread_local int depth;
static _Thread_local uint64_t errors_seen;

static void budget_hook(lua_State *co, lua_Debug *ar);

void lcall_init(lua_State *L, struct worker_stats *stats)
{
    lua_pushlightuserdata(L, &key_stats);
    lua_pushlightuserdata(L, stats);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, LCALL_PERIOD);
}

int lcall_depth(void)
{
    return depth;
}

uint64_t lcall_errors(void)
{
    return errors_seen;
}

/* LUA_MASKCOUNT hook (Redis luaMaskCountHook): the first time the budget is
 * spent, raise an ordinary error; after a short grace, raise at every
 * instruction so that a script that catches the error with pcall cannot keep
 * running: each frame it returns to fails again until the coroutine is gone. */
static void budget_hook(lua_State *co, lua_Debug *ar)
{
    (void)ar;
    struct run *r = cur_run;
    if (r == NULL || r->budget == 0)
        return;
    if (r->exhausted == 0) {
        r->spent += LCALL_PERIOD;
        if (r->spent < r->budget)
            return;
        r->exhausted = 1;
    } else if (r->exhausted == 1 && ++r->grace < LCALL_GRACE_PERIODS) {
        return;
    }
    /* Level 0 is the function the hook interrupted: the script's file:line. */
    luaL_where(co, 0);
    if (r->grace == 0) {
        lua_pushfstring(co, "instruction budget of %f exhausted (endless loop?)",
                        (lua_Number)r->budget);
    } else {
        r->exhausted = 2;
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, 1);
        lua_pushliteral(co, "instruction budget exhausted");
    }
    lua_concat(co, 2);
    lua_error(co);
}

/* Takes the state's cached coroutine, or makes one; leaves it on L's stack. */
static lua_State *take_thread(lua_State *L)
{
    lua_pushlightuserdata(L, &key_thread);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_type(L, -1) == LUA_TTHREAD) {
        lua_State *co = lua_tothread(L, -1);
        /* In use by an outer call from now on: the nested call makes its own. */
        lua_pushlightuserdata(L, &key_thread);
        lua_pushnil(L);
        lua_rawset(L, LUA_REGISTRYINDEX);
        return co;
    }
    lua_pop(L, 1);
    return lua_newthread(L);
}

/* Gives a coroutine that finished cleanly back to the cache (it is on top of L). */
static void return_thread(lua_State *L)
{
    lua_pushlightuserdata(L, &key_thread);
    lua_rawget(L, LUA_REGISTRYINDEX);
    int empty = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (empty) {
        lua_pushlightuserdata(L, &key_thread);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_pop(L, 1);
}

static struct worker_stats *stats_of(lua_State *L)
{
    lua_pushlightuserdata(L, &key_stats);
    lua_rawget(L, LUA_REGISTRYINDEX);
    struct worker_stats *st = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return st;
}

/* The error message of a failed coroutine as a string (pushed on L). */
static const char *error_text(lua_State *L, lua_State *co, int status)
{
    if (status == LUA_YIELD) {
        lua_pushliteral(L, "handler yielded, but nothing resumes handlers yet");
    } else if (lua_type(co, -1) == LUA_TSTRING || lua_type(co, -1) == LUA_TNUMBER) {
        lua_pushstring(L, lua_tostring(co, -1));
    } else if (status == LUA_ERRMEM) {
        lua_pushliteral(L, "out of memory");
    } else {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(co, -1));
    }
    return lua_tostring(L, -1);
}

static int run(lua_State *L, int nargs, int nres, uint64_t budget, const char *what, char *err,
               size_t cap)
{
    lua_State *co = take_thread(L);
    /* L: ... fn args... co  ->  ... co fn args... (moved to co) */
    lua_insert(L, -(nargs + 2));
    lua_xmove(L, co, nargs + 1);

    struct run r = {.outer = cur_run, .budget = budget, .exhausted = 0};
    cur_run = &r;
    depth++;
    int status = lua_resume(co, nargs);
    depth--;
    cur_run = r.outer;
    if (r.exhausted == 2)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, LCALL_PERIOD);

    if (status == 0) {
        int got = lua_gettop(co);
        if (got > nres)
            lua_settop(co, nres);
        else
            for (; got < nres; got++)
                lua_pushnil(co);
        lua_xmove(co, L, nres);
        /* L: ... co res... */
        lua_pushvalue(L, -(nres + 1));
        return_thread(L);
        lua_remove(L, -(nres + 1));
        return 0;
    }

    int rc = r.exhausted ? RC_E_TIMEOUT : RC_E_SCRIPT;
    const char *msg = error_text(L, co, status);
    if (err != NULL) {
        size_t n = strcspn(msg, "\n");
        if (cap > 0) {
            if (n >= cap)
                n = cap - 1;
            memcpy(err, msg, n);
            err[n] = '\0';
        }
    } else {
        static _Thread_local struct rc_ratelimit rl;
        errors_seen++;
        struct worker_stats *st = stats_of(L);
        if (st != NULL)
            STAT_INC(st, lua_errors_total);
        rc_log_limited(&rl, 10, RC_LOG_WARN, "lua: %s%s%s", what ? what : "", what ? ": " : "",
                       msg);
        if (rc_log_get_level() <= RC_LOG_DEBUG && status != LUA_YIELD) {
            luaL_traceback(L, co, msg, 0);
            rc_debug("lua: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2); /* the message and the dead coroutine */
    return rc;
}

int lcall_pcall_what(lua_State *L, int nargs, int nres, uint64_t budget, const char *what)
{
    return run(L, nargs, nres, budget, what, NULL, 0);
}

int lcall_pcall(lua_State *L, int nargs, int nres, uint64_t budget)
{
    return run(L, nargs, nres, budget, NULL, NULL, 0);
}

int lcall_pcall_err(lua_State *L, int nargs, int nres, uint64_t budget, char *err, size_t cap)
{
    return run(L, nargs, nres, budget, NULL, err, cap);
}
