/* test_lbridge.c - the real Lua bridge without a server: states built by
 * lbridge_new from small scripts in a temp dir, the FFI declarations of
 * lua/roomcast/ffi.lua checked against the exported rc_ffi_* symbols, the
 * instruction budget against endless loops (plain, JIT-hot, pcall-guarded,
 * loaded at run time), errors with file:line and counters, load errors,
 * state hand-over on reload, rc.jwt.verify over the C HS256 check, and the
 * performance guard: the hot lua/roomcast wrappers compile into JIT traces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "config.h"
#include "confload.h"
#include "crypto.h"
#include "err.h"
#include "lapi.h"
#include "lbridge.h"
#include "lcall.h"
#include "scratch.h"
#include "stats.h"

static char tmpdir[256];
static struct rc_config cfg;
static struct worker_stats stats;

static const char *write_script(const char *name, const char *text)
{
    return scratch_write(tmpdir, name, text);
}

static struct lbridge *bridge_for(const char *text, const char *old_state)
{
    rc_config_set_str(&cfg.script, write_script("s.lua", text));
    char err[512] = "";
    struct lbridge *b = lbridge_new(&cfg, 0, 1, &stats, old_state, err, sizeof(err));
    if (b == NULL)
        fail_msg("lbridge_new: %s", err);
    return b;
}

/* Runs Lua code in b's state; returns its lcall status, err gets the message. */
static int run_lua(struct lbridge *b, const char *code, char *err, size_t cap)
{
    assert_int_equal(luaL_loadstring(b->L, code), 0);
    return lcall_pcall_err(b->L, 0, 0, b->budget, err, cap);
}

static int deliver(struct lbridge *b, const char *data)
{
    lbridge_push(b, LB_MESSAGE);
    lua_pushnumber(b->L, 42);
    lua_pushstring(b->L, data);
    lua_pushboolean(b->L, 0);
    return lbridge_call(b, 3, 0, "message");
}

static int setup(void **state)
{
    (void)state;
    scratch_dir(tmpdir, sizeof(tmpdir), "test_lbridge.");
    rc_config_defaults(&cfg);
    const char *src = getenv("RC_SOURCE_DIR");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/lua", src ? src : RC_SOURCE_DIR);
    rc_config_set_str(&cfg.lua_dir, dir);
    cfg.lua_budget = 1000 * 1000;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(scratch_remove(tmpdir), 0);
    rc_config_free(&cfg);
    return 0;
}

static void test_loads_and_calls(void **state)
{
    (void)state;
    struct lbridge *b = bridge_for("local n = 0\n"
                                   "return { on_message = function(conn, data) n = n + 1\n"
                                   "  assert(conn.id == 42 and data == 'hi') end,\n"
                                   "  save_state = function() return { n = n } end }\n",
                                   NULL);
    assert_int_equal(b->generation, 1);
    assert_int_equal(deliver(b, "hi"), 0);
    assert_int_equal(deliver(b, "hi"), 0);
    char *saved = lbridge_save_state(b);
    assert_non_null(saved);
    assert_string_equal(saved, "{\"script\":{\"n\":2}}");
    free(saved);
    assert_int_equal(lua_gettop(b->L), 0);
    lbridge_free(b);
}

static void test_ffi_declarations_resolve(void **state)
{
    (void)state;
    struct lbridge *b = bridge_for("return {}\n", NULL);
    /* every declared name resolves in ffi.C ... */
    char err[512] = "";
    int rc = run_lua(b,
                     "local F = require('roomcast.ffi')\n"
                     "for _, n in ipairs(F.NAMES) do\n"
                     "  local ok, f = pcall(function() return F.C[n] end)\n"
                     "  if not ok or f == nil then error('unresolved: ' .. n, 0) end\n"
                     "end\n"
                     "_G.NAMES = F.NAMES\n",
                     err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    /* ... and the list is exactly lapi.c's table */
    lua_getglobal(b->L, "NAMES");
    size_t n = lua_objlen(b->L, -1);
    size_t c_count = 0;
    while (rc_ffi_names[c_count])
        c_count++;
    assert_int_equal(n, c_count);
    for (size_t i = 0; i < c_count; i++) {
        int found = 0;
        for (size_t k = 1; k <= n && !found; k++) {
            lua_rawgeti(b->L, -1, (int)k);
            found = strcmp(lua_tostring(b->L, -1), rc_ffi_names[i]) == 0;
            lua_pop(b->L, 1);
        }
        if (!found)
            fail_msg("%s is exported by lapi.c but not declared in ffi.lua", rc_ffi_names[i]);
    }
    lua_pop(b->L, 1);
    /* a harmless call through the FFI: no worker -> "closed" */
    rc = run_lua(b,
                 "local rc = require('roomcast')\n"
                 "local ok, e = rc.conn(1):send('x')\n"
                 "assert(ok == nil and e == 'closed', tostring(e))\n"
                 "assert(rc.now() > 1.6e12)\n",
                 err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    lbridge_free(b);
}

static void expect_budget_abort(const char *body)
{
    char script[1024];
    snprintf(script, sizeof(script), "return { on_message = function(conn, data)\n%s\nend }\n",
             body);
    struct lbridge *b = bridge_for(script, NULL);
    uint64_t before = STAT_GET(&stats, lua_errors_total);
    uint64_t seen = lcall_errors();
    assert_int_equal(deliver(b, "x"), RC_E_TIMEOUT);
    assert_int_equal(STAT_GET(&stats, lua_errors_total), before + 1);
    assert_int_equal(lcall_errors(), seen + 1);
    /* the state still works, and the hook is gone */
    assert_int_equal(lua_gettop(b->L), 0);
    char err[256];
    assert_int_equal(run_lua(b, "local x = 0 for i = 1, 100 do x = x + i end", err, sizeof(err)),
                     0);
    lbridge_free(b);
}

static void test_budget_endless_loop(void **state)
{
    (void)state;
    expect_budget_abort("while true do end");
    /* the message points at the loop, not at the chain runner */
    struct lbridge *b = bridge_for(
        "return { on_message = function(conn, data)\n  while true do end\nend }\n", NULL);
    lbridge_push(b, LB_MESSAGE);
    lua_pushnumber(b->L, 1);
    lua_pushstring(b->L, "x");
    lua_pushboolean(b->L, 0);
    char err[512];
    assert_int_equal(lcall_pcall_err(b->L, 3, 0, b->budget, err, sizeof(err)), RC_E_TIMEOUT);
    if (strstr(err, "s.lua:2: instruction budget of 1000000 exhausted") == NULL)
        fail_msg("%s", err);
    lbridge_free(b);
}

static void test_budget_hot_numeric_loop(void **state)
{
    (void)state;
    /* hot enough for the JIT: only works because scripts run interpreted */
    expect_budget_abort("local x = 0 for i = 1, 1e12 do x = x + i end");
}

static void test_budget_pcall_cannot_hold_on(void **state)
{
    (void)state;
    expect_budget_abort("while true do pcall(function() while true do end end) end");
}

static void test_budget_loaded_chunk(void **state)
{
    (void)state;
    expect_budget_abort("load('local x = 0 while true do x = x + 1 end')()");
}

static void test_budget_coroutine(void **state)
{
    (void)state;
    expect_budget_abort("while true do coroutine.wrap(function() while true do end end) end");
}

static void test_error_has_file_line(void **state)
{
    (void)state;
    struct lbridge *b =
        bridge_for("return { on_message = function(conn, data)\n  error('boom')\nend }\n", NULL);
    uint64_t before = STAT_GET(&stats, lua_errors_total);
    assert_int_equal(deliver(b, "x"), RC_E_SCRIPT);
    assert_int_equal(STAT_GET(&stats, lua_errors_total), before + 1);
    /* the message names the script and line */
    lbridge_push(b, LB_MESSAGE);
    lua_pushnumber(b->L, 1);
    lua_pushstring(b->L, "x");
    lua_pushboolean(b->L, 0);
    char err[512];
    assert_int_equal(lcall_pcall_err(b->L, 3, 0, b->budget, err, sizeof(err)), RC_E_SCRIPT);
    assert_non_null(strstr(err, "s.lua:2: boom"));
    assert_int_equal(STAT_GET(&stats, lua_errors_total), before + 1); /* _err is silent */
    assert_int_equal(lua_gettop(b->L), 0);
    lbridge_free(b);
}

static void test_load_errors(void **state)
{
    (void)state;
    char err[512];
    rc_config_set_str(&cfg.script, write_script("bad.lua", "return {\n on_message = \n"));
    assert_null(lbridge_new(&cfg, 0, 1, &stats, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "bad.lua:3:"));
    rc_config_set_str(&cfg.script, write_script("throws.lua", "local x = nil\nreturn x.y\n"));
    assert_null(lbridge_new(&cfg, 0, 1, &stats, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "throws.lua:2:"));
    rc_config_set_str(&cfg.script, write_script("spins.lua", "while true do end\n"));
    assert_null(lbridge_new(&cfg, 0, 1, &stats, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "budget"));
    rc_config_set_str(&cfg.script, "/nonexistent/x.lua");
    assert_null(lbridge_new(&cfg, 0, 1, &stats, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "x.lua"));
}

static void test_state_handover(void **state)
{
    (void)state;
    struct lbridge *b =
        bridge_for("local got\n"
                   "return { on_reload = function(old) got = old.n end,\n"
                   "  on_message = function() assert(got == 7, tostring(got)) end }\n",
                   "{\"script\":{\"n\":7}}");
    assert_int_equal(deliver(b, "x"), 0);
    lbridge_free(b);
}

static void b64url(const void *in, size_t n, char *out)
{
    char tmp[512];
    size_t len = rc_base64_encode(in, n, tmp);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = tmp[i];
        if (ch == '=')
            break;
        out[k++] = ch == '+' ? '-' : ch == '/' ? '_' : ch;
    }
    out[k] = '\0';
}

static void make_jwt(const char *header, const char *payload, const char *secret, char *out)
{
    char h[256], p[256], s[64];
    b64url(header, strlen(header), h);
    b64url(payload, strlen(payload), p);
    sprintf(out, "%s.%s", h, p);
    uint8_t mac[RC_SHA256_LEN];
    rc_hmac_sha256(secret, strlen(secret), out, strlen(out), mac);
    b64url(mac, sizeof(mac), s);
    strcat(out, ".");
    strcat(out, s);
}

static void test_jwt_verify(void **state)
{
    (void)state;
    struct lbridge *b = bridge_for("return {}\n", NULL);
    char good[512], expired[512], none[512], code[8192], err[512];
    make_jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"alice\",\"exp\":4000000000}", "k",
             good);
    make_jwt("{\"alg\":\"HS256\"}", "{\"sub\":\"bob\",\"exp\":1000}", "k", expired);
    make_jwt("{\"alg\":\"none\"}", "{\"sub\":\"eve\"}", "k", none);
    snprintf(code, sizeof(code),
             "local rc = require('roomcast')\n"
             "local c, e = rc.jwt.verify('%s', 'k')\n"
             "assert(c and c.sub == 'alice', tostring(e))\n"
             "assert(select(2, rc.jwt.verify('%s', 'other')) == 'bad_signature')\n"
             "assert(select(2, rc.jwt.verify('%s', 'k')) == 'expired')\n"
             "assert(select(2, rc.jwt.verify('%s', 'k')) == 'bad_alg')\n"
             "assert(select(2, rc.jwt.verify('a.b', 'k')) == 'malformed')\n"
             "assert(select(2, rc.jwt.verify('%s' .. 'x', 'k')) == 'bad_signature')\n",
             good, good, expired, none, good);
    if (run_lua(b, code, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    lbridge_free(b);
}

/* -- performance guard (STYLE.md §3.8) ---------------------------------------
 * The hot wrappers of lua/roomcast/ must compile into LuaJIT traces.
 * A jit.attach handler watches the trace events while each wrapper runs in a
 * hot loop of unsandboxed (so JIT-enabled) code: a trace that aborts with an
 * NYI inside a lua/roomcast/ file fails the test, and each wrapper must show up
 * in at least one completed trace, or the test would prove nothing. Without a
 * worker the wrappers answer nil, "closed" (or 0, nil, false), which still
 * takes the FFI path. Aborts outside lua/roomcast/ (the loops below) do not
 * count, nor do aborts that are not NYIs: the budget's count hook firing
 * while a trace is recorded aborts it, and the loop is simply recorded again.
 */
#define JIT_GUARD_ITERS 2000

static const char jit_probe[] =
    "local jutil, vmdef = require('jit.util'), require('jit.vmdef')\n"
    "local funcinfo, fmt = jutil.funcinfo, string.format\n"
    "assert(jit.status(), 'the JIT is off in the bridge state')\n"
    "local P = { problems = {} }\n"
    "local seen = {}\n"
    "local function problem(msg)\n"
    "  if not seen[msg] then seen[msg] = true P.problems[#P.problems + 1] = msg end\n"
    "end\n"
    "local name, target, recorded, done, nstop\n"
    "local function ours(src)\n"
    "  return src and src:match('^@.*/roomcast/([%w_]+%.lua)$')\n"
    "end\n"
    "local function fname(f)\n"
    "  local fi = funcinfo(f)\n"
    "  if fi.ffid then return vmdef.ffnames[fi.ffid] end\n"
    "  return fi.loc or fmt('C:%x', fi.addr or 0)\n"
    "end\n"
    "local function reason(err, info)\n"
    "  if type(err) ~= 'number' then return tostring(err) end\n"
    "  if type(info) == 'function' then info = fname(info) end\n"
    "  local msg = fmt(vmdef.traceerr[err] or ('trace error ' .. err), info)\n"
    "  if msg:find('^NYI: bytecode') then\n"
    "    msg = msg .. ' (' .. vmdef.bcnames:sub(info * 6 + 1, info * 6 + 6):gsub(' ', '') .. ')'\n"
    "  end\n"
    "  return msg\n"
    "end\n"
    "local function key(f)\n"
    "  local fi = funcinfo(f)\n"
    "  return fi.source and (fi.source .. ':' .. fi.linedefined)\n"
    "end\n"
    "function P.on_record(tr, func) recorded[func] = true end\n"
    "local function on_trace(what, tr, func, pc, otr, oex)\n"
    "  if name == nil then return end\n"
    "  if what == 'start' then\n"
    "    recorded = {}\n"
    "  elseif what == 'stop' then\n"
    "    nstop = nstop + 1\n"
    "    for f in pairs(recorded) do done[key(f) or ''] = true end\n"
    "  elseif what == 'abort' then\n"
    "    local fi = funcinfo(func, pc)\n"
    "    local file, msg = ours(fi.source), reason(otr, oex)\n"
    "    if file and msg:find('^NYI') then\n"
    "      problem(fmt('%s: trace abort at %s:%d: %s', name, file,\n"
    "        fi.currentline or 0, msg))\n"
    "    end\n"
    "  end\n"
    "end\n"
    "-- LuaJIT drops errors raised by event handlers: report them instead\n"
    "function P.on_trace(...)\n"
    "  local ok, e = pcall(on_trace, ...)\n"
    "  if not ok then problem('trace event handler: ' .. tostring(e)) end\n"
    "end\n"
    "jit.attach(P.on_record, 'record')\n"
    "jit.attach(P.on_trace, 'trace')\n"
    "function P.begin(n, f)\n"
    "  assert(ours(funcinfo(f).source), n .. ': target is not in lua/roomcast/')\n"
    "  jit.flush()\n"
    "  name, target, recorded, done, nstop = n, key(f), {}, {}, 0\n"
    "end\n"
    "function P.finish(ok)\n"
    "  if not ok then\n"
    "    problem(name .. ': unexpected result without a worker')\n"
    "  elseif nstop == 0 or not done[target] then\n"
    "    problem(fmt('%s: no completed trace ran through %s '\n"
    "      .. '(%d traces completed)', name, target:match('[^/]*$'), nstop))\n"
    "  end\n"
    "  name = nil\n"
    "end\n"
    "PROBE = P\n";

/* One hot loop per wrapper: `target` is the wrapper's Lua function (a trace
 * must record its bytecode), `body` runs JIT_GUARD_ITERS times with c a conn
 * handle, r a room handle and i the loop counter, and `check` holds for the
 * values the body leaves in a and b. Without a worker conn:join returns
 * before the on_join chain, so the chain is not covered here.
 * msg is an empty table on purpose: util.encode walks a non-empty one with
 * pairs(), an inner loop that gets its own trace, so no trace would run
 * through send_json as a whole. Either way the trace ends at cjson.encode (a
 * C function: LuaJIT returns to the interpreter there), so only the code up
 * to the encode is checked for send_json and util.reply. */
static const struct hot_case {
    const char *name, *target, *body, *check;
} hot_cases[] = {
    {"conn:send", "c.send", "a, b = c:send('hello')", "a == nil and b == 'closed'"},
    {"conn:send_binary", "c.send_binary", "a, b = c:send_binary('\\1\\2')",
     "a == nil and b == 'closed'"},
    {"conn:send_json", "c.send_json", "a, b = c:send_json(msg)", "a == nil and b == 'closed'"},
    {"conn:join", "c.join", "a, b = c:join('lobby')", "a == nil and b == 'closed'"},
    {"conn:leave", "c.leave", "a, b = c:leave('lobby')", "a == nil and b == 'closed'"},
    {"conn:in_room", "c.in_room", "a = c:in_room('lobby')", "a == false"},
    {"conn:get", "c.get", "a, b = c:get('k')", "a == nil and b == 'closed'"},
    {"conn:set", "c.set", "a, b = c:set('k', 'v')", "a == nil and b == 'closed'"},
    {"conn.data get", "getmetatable(c.data).__index", "a = c.data.k", "a == nil"},
    {"conn.data set", "getmetatable(c.data).__newindex", "c.data.k = 'v' a = true", "a"},
    {"conn.user get", "getmetatable(c).__index", "a = c.user", "a == nil"},
    {"conn.user set", "getmetatable(c).__newindex", "c.user = 'alice' a = true", "a"},
    {"room:publish", "r.publish", "a, b = r:publish('m')", "a == nil and b == 'closed'"},
    {"room:publish opts", "r.publish", "a, b = r:publish('m', opts)", "a == nil and b == 'closed'"},
    {"room:count", "r.count", "a = r:count()", "a == 0"},
    {"room:get", "r.get", "a, b = r:get('k')", "a == nil and b == 'closed'"},
    {"room:set", "r.set", "a, b = r:set('k', 'v')", "a == nil and b == 'closed'"},
    {"room.data get", "getmetatable(r.data).__index", "a = r.data.k", "a == nil"},
    {"room.data set", "getmetatable(r.data).__newindex", "r.data.k = 'v' a = true", "a"},
    {"rc.now", "rc.now", "a = rc.now()", "a > 1.6e12"},
    {"rc.conn", "rc.conn", "a = rc.conn(i)", "a.id == N"},
    {"rc.room", "rc.room", "a = rc.room('lobby')", "a.name == 'lobby'"},
    {"rc.send_to_user", "rc.send_to_user", "a = rc.send_to_user('alice', 'm')", "a == 0"},
    {"util.reply", "util.reply", "a, b = util.reply(c, nil, msg)", "a == nil and b == 'closed'"},
    {"util.send_error", "util.send_error", "a, b = util.send_error(c, 'not_member', nil, i)",
     "a == nil and b == 'closed'"},
};

static void test_lbridge__hot_wrappers_compile(void **state)
{
    (void)state;
    struct lbridge *b = bridge_for("return {}\n", NULL);
    /* jit.vmdef (the abort messages) lives in LuaJIT's own directory, which
     * the bridge's package.path leaves out: borrow the library default. */
    lua_State *plain = luaL_newstate();
    assert_non_null(plain);
    luaL_openlibs(plain);
    lua_getglobal(plain, "package");
    lua_getfield(plain, -1, "path");
    lua_getglobal(b->L, "package");
    lua_getfield(b->L, -1, "path");
    lua_pushfstring(b->L, "%s;%s", lua_tostring(b->L, -1), lua_tostring(plain, -1));
    lua_setfield(b->L, -3, "path");
    lua_pop(b->L, 2);
    lua_close(plain);
    char err[4096] = "";
    if (run_lua(b, jit_probe, err, sizeof(err)) != 0) {
        lbridge_free(b);
        fail_msg("%s", err);
    }
    for (size_t k = 0; k < sizeof(hot_cases) / sizeof(hot_cases[0]); k++) {
        const struct hot_case *h = &hot_cases[k];
        char code[2048];
        snprintf(code, sizeof(code),
                 "local P, rc, util = PROBE, require('roomcast'), require('roomcast.util')\n"
                 "local c, r = rc.conn(1), rc.room('lobby')\n"
                 "local msg, opts = {}, { stamp = true, exclude = c }\n"
                 "local a, b, N = nil, nil, %d\n"
                 "P.begin('%s', %s)\n"
                 "for i = 1, N do %s end\n"
                 "P.finish(%s)\n",
                 JIT_GUARD_ITERS, h->name, h->target, h->body, h->check);
        if (run_lua(b, code, err, sizeof(err)) != 0) {
            lbridge_free(b);
            fail_msg("%s: %s", h->name, err);
        }
    }
    assert_int_equal(
        run_lua(b, "jit.attach(PROBE.on_record) jit.attach(PROBE.on_trace)", err, sizeof(err)), 0);
    /* every problem, one a line (an error message would keep only the first) */
    lua_getglobal(b->L, "PROBE");
    lua_getfield(b->L, -1, "problems");
    size_t n = lua_objlen(b->L, -1);
    char report[8192] = "";
    for (size_t k = 1; k <= n; k++) {
        lua_rawgeti(b->L, -1, (int)k);
        size_t used = strlen(report);
        snprintf(report + used, sizeof(report) - used, "\n  %s", lua_tostring(b->L, -1));
        lua_pop(b->L, 1);
    }
    lua_pop(b->L, 2);
    lbridge_free(b);
    if (n > 0)
        fail_msg("%zu problem(s) with the hot wrappers' traces:%s", n, report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_and_calls),
        cmocka_unit_test(test_ffi_declarations_resolve),
        cmocka_unit_test(test_budget_endless_loop),
        cmocka_unit_test(test_budget_hot_numeric_loop),
        cmocka_unit_test(test_budget_pcall_cannot_hold_on),
        cmocka_unit_test(test_budget_loaded_chunk),
        cmocka_unit_test(test_budget_coroutine),
        cmocka_unit_test(test_error_has_file_line),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_state_handover),
        cmocka_unit_test(test_jwt_verify),
        cmocka_unit_test(test_lbridge__hot_wrappers_compile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
