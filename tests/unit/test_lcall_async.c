/* test_lcall_async.c - asynchronous calls in lcall.c on a bare LuaJIT state:
 * a handler waits on a ticket, is resumed with the answer, waits again; a
 * wait times out with (nil, "timeout"); the instruction budget counts the
 * running segments only (summed, waiting is free); errors after a resume
 * end the call; calls that cannot wait get no ticket; dropping the state
 * ends its waits with RC_E_CLOSED; an unknown or late ticket is ignored;
 * nothing is called back synchronously. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "err.h"
#include "lcall.h"

/* wait(timeout_ms) -> ticket | nil: what an async rc_ffi_* call does. */
static int l_wait(lua_State *L)
{
    uint64_t t = lcall_wait_ticket((uint32_t)luaL_optinteger(L, 1, 1000));
    if (t == 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)t);
    return 1;
}

static const char *prelude =
    "out = {}\n"
    "function note(s) out[#out + 1] = s end\n"
    /* The shape of every async wrapper in lua/roomcast: ticket, then yield. */
    "function await(ms) local t = wait(ms); if not t then return nil, 'cannot_wait' end\n"
    "  return coroutine.yield(t) end\n"
    "function burn(n) local x = 0; for i = 1, n do x = x + i end; return x end\n";

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lcall_init(L, NULL);
    lua_register(L, "wait", l_wait);
    assert_int_equal(luaL_dostring(L, prelude), 0);
    /* The budget hook only binds interpreted code (lcall.h). */
    assert_int_equal(luaL_dostring(L, "jit.off()"), 0);
    return L;
}

static const char *outs(lua_State *L)
{
    static char buf[512];
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "concat");
    lua_getglobal(L, "out");
    lua_pushliteral(L, ",");
    lua_call(L, 2, 1);
    snprintf(buf, sizeof(buf), "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
    return buf;
}

struct dones {
    int n;
    uint64_t tag;
    int rc;
};

static void on_done(void *ud, uint64_t tag, int rc)
{
    struct dones *d = ud;
    d->n++;
    d->tag = tag;
    d->rc = rc;
}

/* Starts global function `fn` with one string argument as a waiting call. */
static int start(lua_State *L, const char *fn, const char *arg, uint64_t budget, struct dones *d,
                 uint64_t tag)
{
    lua_getglobal(L, fn);
    lua_pushstring(L, arg);
    int top = lua_gettop(L) - 2;
    int rc = lcall_pcall_async(L, 1, budget, "test", on_done, d, tag);
    assert_int_equal(lua_gettop(L), top); /* nothing left behind either way */
    return rc;
}

static uint64_t last_ticket(lua_State *L)
{
    lua_getglobal(L, "last");
    uint64_t t = (uint64_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return t;
}

struct two {
    const char *a;
    double b;
};

static int push_two(lua_State *co, void *ud)
{
    struct two *t = ud;
    lua_pushstring(co, t->a);
    lua_pushnumber(co, t->b);
    return 2;
}

static void test_wait_and_resume(void **state)
{
    (void)state;
    lua_State *L = new_state();
    assert_int_equal(luaL_dostring(L, "function h(x)\n"
                                      "  note('start ' .. x)\n"
                                      "  local t = wait(1000); last = t\n"
                                      "  local a, b = coroutine.yield(t)\n"
                                      "  note('got ' .. a .. ' ' .. b)\n"
                                      "  local t2 = wait(1000); last = t2\n"
                                      "  local c = coroutine.yield(t2)\n"
                                      "  note('again ' .. tostring(c))\n"
                                      "end"),
                     0);
    struct dones d = {0};
    assert_int_equal(start(L, "h", "a", 1000000, &d, 42), RC_PENDING);
    assert_int_equal(d.n, 0);
    assert_int_equal(lcall_parked(L), 1);
    assert_int_equal(lcall_parked(NULL), 1);
    assert_string_equal(outs(L), "start a");
    uint64_t t1 = last_ticket(L);
    assert_true(t1 != 0);

    /* Others run while it waits (a second handler that does not wait). */
    assert_int_equal(luaL_dostring(L, "function quick(x) note('quick ' .. x) end"), 0);
    struct dones dq = {0};
    assert_int_equal(start(L, "quick", "b", 1000000, &dq, 7), 0);
    assert_int_equal(dq.n, 0); /* finished at once: done is for parked calls only */

    /* An unknown ticket: ignored, push not called. */
    assert_int_equal(lcall_complete(t1 + 1000, NULL, NULL), RC_E_NOT_FOUND);
    struct two ans = {"rows", 3};
    assert_int_equal(lcall_complete(t1, push_two, &ans), 0);
    assert_int_equal(d.n, 0); /* waiting again */
    uint64_t t2 = last_ticket(L);
    assert_true(t2 != t1);
    assert_int_equal(lcall_complete(t1, push_two, &ans), RC_E_NOT_FOUND); /* used */
    assert_int_equal(lcall_complete(t2, NULL, NULL), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.tag, 42);
    assert_int_equal(d.rc, 0);
    assert_string_equal(outs(L), "start a,quick b,got rows 3,again nil");
    assert_int_equal(lcall_parked(NULL), 0);
    lua_close(L);
}

static void test_timeout(void **state)
{
    (void)state;
    lua_State *L = new_state();
    assert_int_equal(luaL_dostring(L, "function h(x) local a, e = await(50)\n"
                                      "note(tostring(a) .. ' ' .. tostring(e)) end"),
                     0);
    struct dones d = {0};
    assert_int_equal(start(L, "h", "", 0, &d, 1), RC_PENDING);
    int64_t now = lcall_now_ms();
    assert_int_equal(lcall_expire(now), 0); /* not yet */
    assert_int_equal(d.n, 0);
    assert_int_equal(lcall_expire(now + 60), 1);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.rc, 0);
    assert_string_equal(outs(L), "nil timeout");
    lua_close(L);
}

/* The budget sums the running segments (waiting is free): calibrate B, the
 * smallest budget one burn(n) fits in (to a hook period); two segments of
 * burn(n) then fail within 1.5 B and pass within 2.5 B. */
static void test_budget_counts_running_time(void **state)
{
    (void)state;
    lua_State *L = new_state();
    assert_int_equal(luaL_dostring(L, "function one(n) burn(tonumber(n)) end\n"
                                      "function h(n) n = tonumber(n)\n"
                                      "burn(n); await(1000); burn(n); note('done') end"),
                     0);
    uint64_t b = 100000;
    for (;; b *= 2) {
        lua_getglobal(L, "one");
        lua_pushliteral(L, "300000");
        if (lcall_pcall(L, 1, 0, b) == 0)
            break;
        assert_true(b < (1ULL << 40));
    }
    /* Narrow down to c, one burn's cost within a hook period (10000). */
    uint64_t lo = b / 2, hi = b;
    while (hi - lo > 10000) {
        uint64_t mid = (lo + hi) / 2;
        lua_getglobal(L, "one");
        lua_pushliteral(L, "300000");
        if (lcall_pcall(L, 1, 0, mid) == 0)
            hi = mid;
        else
            lo = mid;
    }
    b = hi;
    struct dones d = {0};
    assert_int_equal(start(L, "h", "300000", b * 5 / 2, &d, 1), RC_PENDING);
    assert_int_equal(lcall_expire(lcall_now_ms() + 2000), 1);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.rc, 0);
    assert_string_equal(outs(L), "done");

    struct dones d2 = {0};
    int rc = start(L, "h", "300000", b * 3 / 2, &d2, 2);
    if (rc == RC_PENDING) { /* the first segment fit: the second must not */
        assert_int_equal(lcall_expire(lcall_now_ms() + 2000), 1);
        assert_int_equal(d2.n, 1);
        rc = d2.rc;
    }
    assert_int_equal(rc, RC_E_TIMEOUT);
    assert_string_equal(outs(L), "done"); /* the second never noted */
    lua_close(L);
}

static void test_errors_and_cannot_wait(void **state)
{
    (void)state;
    lua_State *L = new_state();
    assert_int_equal(luaL_dostring(L,
                                   "function boom(x) await(1000); error('after the wait') end\n"
                                   "function stray(x) coroutine.yield(123) end\n"
                                   "function sync(x) local a, e = await(10); note(e) end\n"
                                   "function twice(x) local t = wait(10); note(tostring(wait(10)))"
                                   "; coroutine.yield(t); note('ok') end"),
                     0);
    struct dones d = {0};
    assert_int_equal(start(L, "boom", "", 0, &d, 1), RC_PENDING);
    assert_int_equal(lcall_expire(lcall_now_ms() + 2000), 1);
    assert_int_equal(d.rc, RC_E_SCRIPT);

    /* A yield that is not a wait: an error, as before. */
    struct dones d2 = {0};
    assert_int_equal(start(L, "stray", "", 0, &d2, 1), RC_E_SCRIPT);
    assert_int_equal(d2.n, 0);

    /* lcall_pcall cannot wait: no ticket, the wrapper answers cannot_wait. */
    lua_getglobal(L, "sync");
    lua_pushliteral(L, "");
    assert_int_equal(lcall_pcall(L, 1, 0, 0), 0);
    assert_string_equal(outs(L), "cannot_wait");

    /* One ticket at a time: a second wait before yielding gets none. */
    struct dones d3 = {0};
    assert_int_equal(start(L, "twice", "", 0, &d3, 1), RC_PENDING);
    assert_int_equal(lcall_expire(lcall_now_ms() + 2000), 1);
    assert_int_equal(d3.rc, 0);
    assert_string_equal(outs(L), "cannot_wait,nil,ok");
    lua_close(L);
}

static int push_in_handler(lua_State *co, void *ud)
{
    (void)co;
    (void)ud;
    return 0;
}

/* From inside a handler, completing is refused (no re-entry). */
static int l_complete(lua_State *L)
{
    lua_pushinteger(L, lcall_complete((uint64_t)lua_tonumber(L, 1), push_in_handler, NULL));
    return 1;
}

static void test_drop_state_and_reentry(void **state)
{
    (void)state;
    lua_State *L = new_state();
    lua_register(L, "complete", l_complete);
    assert_int_equal(luaL_dostring(L, "function h(x) local t = wait(1000); last = t;"
                                      " coroutine.yield(t) end\n"
                                      "function inner(x) note(complete(last)) end"),
                     0);
    struct dones d1 = {0}, d2 = {0};
    assert_int_equal(start(L, "h", "", 0, &d1, 1), RC_PENDING);
    assert_int_equal(start(L, "h", "", 0, &d2, 2), RC_PENDING);
    struct dones dq = {0};
    assert_int_equal(start(L, "inner", "", 0, &dq, 3), 0);
    char want[32];
    snprintf(want, sizeof(want), "%d", RC_E_INVAL);
    assert_string_equal(outs(L), want);
    assert_int_equal(lcall_parked(L), 2);
    assert_int_equal(lcall_drop_state(L), 2);
    assert_int_equal(d1.n, 1);
    assert_int_equal(d1.rc, RC_E_CLOSED);
    assert_int_equal(d2.n, 1);
    assert_int_equal(d2.tag, 2);
    assert_int_equal(lcall_parked(NULL), 0);
    lua_close(L);
}

/* -- end actions (lcall_at_end) --------------------------------------------- */

struct rec_end {
    struct lcall_end e;
    char label[16];
};

static char ends_log[256];
static int ends_live; /* registered and not run yet (each is freed when it runs) */

static void rec_end_fn(struct lcall_end *e, int rc)
{
    struct rec_end *r = (struct rec_end *)e;
    size_t n = strlen(ends_log);
    snprintf(ends_log + n, sizeof(ends_log) - n, "%s%s:%d:%s", n ? "," : "", r->label, rc,
             lcall_depth() > 0 ? "in" : "out");
    ends_live--;
    free(r);
}

/* at_end(label): what rc_ffi_join_held does (an action for the call's end). */
static int l_at_end(lua_State *L)
{
    struct rec_end *r = calloc(1, sizeof(*r));
    r->e.fn = rec_end_fn;
    snprintf(r->label, sizeof(r->label), "%s", luaL_checkstring(L, 1));
    ends_live++;
    if (lcall_at_end(&r->e) != 0) {
        ends_live--;
        free(r);
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* end_now(): rc_ffi_end_holds(raised = 1). */
static int l_end_now(lua_State *L)
{
    lua_pushinteger(L, lcall_end_now(RC_E_SCRIPT));
    return 1;
}

static void on_done_log(void *ud, uint64_t tag, int rc)
{
    on_done(ud, tag, rc);
    size_t n = strlen(ends_log);
    snprintf(ends_log + n, sizeof(ends_log) - n, "%sdone:%d", n ? "," : "", rc);
}

static const char *ends_take(void)
{
    static char out[256];
    snprintf(out, sizeof(out), "%s", ends_log);
    ends_log[0] = '\0';
    return out;
}

static void test_end_actions(void **state)
{
    (void)state;
    lua_State *L = new_state();
    lua_register(L, "at_end", l_at_end);
    lua_register(L, "end_now", l_end_now);
    assert_int_equal(
        luaL_dostring(L, "function two(x) at_end('a'); at_end('b') end\n"
                         "function raise(x) at_end('c'); error('boom') end\n"
                         "function waits(x) at_end('d'); await(1000); note('resumed') end\n"
                         "function waitraise(x) at_end('e'); await(1000); error('late') end\n"
                         "function waitburn(x) at_end('f'); await(1000); burn(1e8) end\n"
                         "function dropped(x) at_end('g'); await(100000) end\n"
                         "function now(x) at_end('h'); note(tostring(end_now()));"
                         " note(tostring(end_now())) end\n"),
        0);
    char want[128];

    /* No call runs: refused, the action is not taken. */
    struct rec_end outside = {.e.fn = rec_end_fn};
    assert_int_equal(lcall_at_end(&outside.e), RC_E_INVAL);

    /* A call that returns: newest first, inside a raised depth. */
    lua_getglobal(L, "two");
    lua_pushliteral(L, "");
    assert_int_equal(lcall_pcall(L, 1, 0, 0), 0);
    assert_string_equal(ends_take(), "b:0:in,a:0:in");
    assert_int_equal(lcall_depth(), 0);

    /* One that raises. */
    lua_getglobal(L, "raise");
    lua_pushliteral(L, "");
    assert_int_equal(lcall_pcall(L, 1, 0, 0), RC_E_SCRIPT);
    snprintf(want, sizeof(want), "c:%d:in", RC_E_SCRIPT);
    assert_string_equal(ends_take(), want);

    /* One that waits: nothing at the park; at its end, before done. */
    struct dones d = {0};
    assert_int_equal(start(L, "waits", "", 0, &d, 1), RC_PENDING);
    assert_string_equal(ends_take(), "");
    assert_int_equal(lcall_expire(lcall_now_ms() + 2000), 1);
    assert_string_equal(outs(L), "resumed");
    assert_int_equal(d.n, 1);
    assert_string_equal(ends_take(), "d:0:in");

    struct dones d2 = {0};
    lua_getglobal(L, "waitraise");
    lua_pushliteral(L, "");
    assert_int_equal(lcall_pcall_async(L, 1, 0, "test", on_done_log, &d2, 2), RC_PENDING);
    assert_int_equal(lcall_expire(lcall_now_ms() + 2000), 1);
    snprintf(want, sizeof(want), "e:%d:in,done:%d", RC_E_SCRIPT, RC_E_SCRIPT);
    assert_string_equal(ends_take(), want);

    /* Out of budget after a wait. */
    struct dones d3 = {0};
    assert_int_equal(start(L, "waitburn", "", 200000, &d3, 3), RC_PENDING);
    assert_int_equal(lcall_expire(lcall_now_ms() + 2000), 1);
    assert_int_equal(d3.rc, RC_E_TIMEOUT);
    snprintf(want, sizeof(want), "f:%d:in", RC_E_TIMEOUT);
    assert_string_equal(ends_take(), want);

    /* The state dropped while it waits. */
    struct dones d4 = {0};
    assert_int_equal(start(L, "dropped", "", 0, &d4, 4), RC_PENDING);
    assert_int_equal(lcall_drop_state(L), 1);
    snprintf(want, sizeof(want), "g:%d:in", RC_E_CLOSED);
    assert_string_equal(ends_take(), want);

    /* lcall_end_now: runs them at once, once. */
    lua_getglobal(L, "now");
    lua_pushliteral(L, "");
    assert_int_equal(lcall_pcall(L, 1, 0, 0), 0);
    snprintf(want, sizeof(want), "h:%d:in", RC_E_SCRIPT);
    assert_string_equal(ends_take(), want);
    assert_string_equal(outs(L), "resumed,1,0");
    assert_int_equal(ends_live, 0); /* every action ran exactly once (and was freed) */
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_and_resume),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_budget_counts_running_time),
        cmocka_unit_test(test_errors_and_cannot_wait),
        cmocka_unit_test(test_drop_state_and_reentry),
        cmocka_unit_test(test_end_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
