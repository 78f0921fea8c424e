/* test_lbridge.c - the real Lua bridge without a server: states built by
 * lbridge_new from small scripts in a temp dir, the FFI declarations of
 * lua/roomcast/ffi.lua checked against the exported rc_ffi_* symbols, the
 * instruction budget against endless loops (plain, JIT-hot, pcall-guarded,
 * loaded at run time), errors with file:line and counters, load errors,
 * state hand-over on reload, and rc.jwt.verify over the C HS256 check. */
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

#include "config.h"
#include "crypto.h"
#include "err.h"
#include "lapi.h"
#include "lbridge.h"
#include "lcall.h"
#include "stats.h"

static char tmpdir[] = "/tmp/test_lbridge.XXXXXX";
static struct rc_config cfg;
static struct worker_stats stats;

static const char *write_script(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
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
    assert_non_null(mkdtemp(tmpdir));
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
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
