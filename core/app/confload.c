#include "confload.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "guard.h"
#include "log.h"

#define JSON_MAX_DEPTH 32

struct loadctx {
    lua_State *L;
    const char *path;
    char *text; /* owned: the file's bytes, for finding a key's line */
    struct rc_config *c;
    char *err;
    size_t cap;
    int line_from; /* search keys of nested tables from this line on */
};

/* ------------------------------------------------------------------------
 * errors
 * ------------------------------------------------------------------------ */

static int is_ident(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* The first line (>= from) where `key` is assigned: `key =` or `["key"] =`,
 * not `==`. Returns 0 when the text does not show it (built by code). */
static int key_line(const struct loadctx *x, const char *key, int from)
{
    if (x->text == NULL || key == NULL)
        return 0;
    size_t kl = strlen(key);
    int line = 1;
    for (const char *p = x->text; *p; p++) {
        if (*p == '\n') {
            line++;
            continue;
        }
        if (line < from || strncmp(p, key, kl) != 0)
            continue;
        if (p > x->text && (is_ident(p[-1]) && p[-1] != '"' && p[-1] != '\''))
            continue;
        const char *q = p + kl;
        if (*q == '"' || *q == '\'')
            q++;
        if (*q == ']')
            q++;
        if (is_ident(*q))
            continue;
        while (*q == ' ' || *q == '\t')
            q++;
        if (q[0] == '=' && q[1] != '=')
            return line;
    }
    return 0;
}

static RC_PRINTF(3, 4) int fail(struct loadctx *x, const char *key, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = key_line(x, key, x->line_from);
    if (line > 0)
        snprintf(x->err, x->cap, "roomcast: %s:%d: %s", x->path, line, msg);
    else
        snprintf(x->err, x->cap, "roomcast: %s: %s", x->path, msg);
    return RC_E_CONFIG;
}

/* ------------------------------------------------------------------------
 * Lua values -> C values (the value is on the top of the stack)
 * ------------------------------------------------------------------------ */

static int get_str(struct loadctx *x, const char *key, char **slot)
{
    if (lua_type(x->L, -1) != LUA_TSTRING)
        return fail(x, key, "'%s' must be a string, not %s", key, luaL_typename(x->L, -1));
    size_t len;
    const char *s = lua_tolstring(x->L, -1, &len);
    if (strlen(s) != len)
        return fail(x, key, "'%s' contains a NUL byte", key);
    rc_config_set_str(slot, s);
    return 0;
}

/* Strings and false/nil-like "off": a false value clears the slot. */
static int get_opt_str(struct loadctx *x, const char *key, char **slot)
{
    if (lua_type(x->L, -1) == LUA_TBOOLEAN && !lua_toboolean(x->L, -1)) {
        rc_config_set_str(slot, NULL);
        return 0;
    }
    return get_str(x, key, slot);
}

static int get_num(struct loadctx *x, const char *key, double min, double max, double *out)
{
    if (lua_type(x->L, -1) != LUA_TNUMBER)
        return fail(x, key, "'%s' must be a number, not %s", key, luaL_typename(x->L, -1));
    double v = lua_tonumber(x->L, -1);
    if (!(v >= min && v <= max))
        return fail(x, key, "'%s' = %g is out of range (%g to %g)", key, v, min, max);
    *out = v;
    return 0;
}

static int get_int(struct loadctx *x, const char *key, double min, double max, int *out)
{
    double v;
    int rc = get_num(x, key, min, max, &v);
    if (rc < 0)
        return rc;
    if (v != floor(v))
        return fail(x, key, "'%s' must be a whole number, not %g", key, v);
    *out = (int)v;
    return 0;
}

static int get_bool(struct loadctx *x, const char *key, int *out)
{
    if (lua_type(x->L, -1) != LUA_TBOOLEAN)
        return fail(x, key, "'%s' must be true or false, not %s", key, luaL_typename(x->L, -1));
    *out = lua_toboolean(x->L, -1);
    return 0;
}

/* A byte size: a whole number, or a string such as "64K", "8M". */
static int get_size(struct loadctx *x, const char *key, size_t min, size_t max, size_t *out)
{
    size_t v;
    int t = lua_type(x->L, -1);
    if (t == LUA_TNUMBER) {
        double d = lua_tonumber(x->L, -1);
        if (!(d >= 0 && d <= 9.0e15) || d != floor(d))
            return fail(x, key, "'%s' must be a whole number of bytes, not %g", key, d);
        v = (size_t)d;
    } else if (t == LUA_TSTRING) {
        const char *s = lua_tostring(x->L, -1);
        if (rc_parse_size(s, &v) != 0)
            return fail(x, key, "'%s' = \"%s\" is not a size (e.g. 65536, \"64K\", \"8M\")", key,
                        s);
    } else {
        return fail(x, key, "'%s' must be a size (number or string like \"8M\"), not %s", key,
                    luaL_typename(x->L, -1));
    }
    if (v < min || v > max)
        return fail(x, key, "'%s' = %zu is out of range (%zu to %zu)", key, v, min, max);
    *out = v;
    return 0;
}

/* A duration: seconds as a number, or a string such as "500ms", "2s", "1m". */
static int get_secs(struct loadctx *x, const char *key, double min, double *out)
{
    double v;
    int t = lua_type(x->L, -1);
    if (t == LUA_TNUMBER) {
        v = lua_tonumber(x->L, -1);
    } else if (t == LUA_TSTRING) {
        const char *s = lua_tostring(x->L, -1);
        if (rc_parse_seconds(s, &v) != 0)
            return fail(x, key, "'%s' = \"%s\" is not a duration (e.g. 10, \"500ms\", \"2m\")", key,
                        s);
    } else {
        return fail(x, key, "'%s' must be a duration in seconds, not %s", key,
                    luaL_typename(x->L, -1));
    }
    if (!(v >= min && v <= 86400.0 * 365))
        return fail(x, key, "'%s' = %g is out of range (at least %g seconds)", key, v, min);
    *out = v;
    return 0;
}

/* One of `names` (NULL-terminated); *out is its index. */
static int get_enum(struct loadctx *x, const char *key, const char *const *names, int *out)
{
    if (lua_type(x->L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(x->L, -1);
        for (int i = 0; names[i]; i++) {
            if (strcmp(s, names[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    char list[128] = "";
    for (int i = 0; names[i]; i++) {
        strncat(list, i ? "|" : "", sizeof(list) - strlen(list) - 1);
        strncat(list, names[i], sizeof(list) - strlen(list) - 1);
    }
    return fail(x, key, "'%s' must be one of %s", key, list);
}

/* ------------------------------------------------------------------------
 * Lua table -> JSON (script_config, plugin config)
 * ------------------------------------------------------------------------ */

struct jbuf {
    char *p;
    size_t len, cap;
};

static void jput(struct jbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        b->p = rc_xrealloc(b->p, ncap);
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jputs(struct jbuf *b, const char *s)
{
    jput(b, s, strlen(s));
}

static void jstring(struct jbuf *b, const char *s, size_t n)
{
    jputs(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            jput(b, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            jputs(b, esc);
        } else {
            jput(b, (const char *)&s[i], 1);
        }
    }
    jputs(b, "\"");
}

/* 1..n with no other keys (n >= 1) is an array; anything else an object. */
static int is_array(lua_State *L, int idx, size_t *n)
{
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    *n = count;
    return count > 0 && lua_objlen(L, idx) == count;
}

static int to_json(struct loadctx *x, const char *key, int idx, int depth, struct jbuf *b)
{
    lua_State *L = x->L;
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        jputs(b, "null");
        return 0;
    case LUA_TBOOLEAN:
        jputs(b, lua_toboolean(L, idx) ? "true" : "false");
        return 0;
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d))
            return fail(x, key, "'%s' holds a number JSON cannot carry (%g)", key, d);
        char num[40];
        if (d == floor(d) && fabs(d) < 9.0e15)
            snprintf(num, sizeof(num), "%.0f", d);
        else
            snprintf(num, sizeof(num), "%.17g", d);
        jputs(b, num);
        return 0;
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        jstring(b, s, n);
        return 0;
    }
    case LUA_TTABLE:
        break;
    default:
        return fail(x, key, "'%s' holds a %s, which a config cannot carry", key,
                    luaL_typename(L, idx));
    }
    if (depth >= JSON_MAX_DEPTH)
        return fail(x, key, "'%s' is nested too deeply (or refers to itself)", key);
    size_t n;
    if (is_array(L, idx, &n)) {
        jputs(b, "[");
        for (size_t i = 1; i <= n; i++) {
            if (i > 1)
                jputs(b, ",");
            lua_rawgeti(L, idx, (int)i);
            int rc = to_json(x, key, -1, depth + 1, b);
            lua_pop(L, 1);
            if (rc < 0)
                return rc;
        }
        jputs(b, "]");
        return 0;
    }
    jputs(b, "{");
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return fail(x, key, "'%s' mixes list items and named fields (JSON has no such table)",
                        key);
        }
        if (!first)
            jputs(b, ",");
        first = 0;
        size_t kl;
        const char *k = lua_tolstring(L, -2, &kl);
        jstring(b, k, kl);
        jputs(b, ":");
        int rc = to_json(x, k, -1, depth + 1, b);
        lua_pop(L, 1);
        if (rc < 0) {
            lua_pop(L, 1);
            return rc;
        }
    }
    jputs(b, "}");
    return 0;
}

static int get_json(struct loadctx *x, const char *key, char **slot)
{
    if (lua_type(x->L, -1) != LUA_TTABLE)
        return fail(x, key, "'%s' must be a table, not %s", key, luaL_typename(x->L, -1));
    struct jbuf b = {0};
    int rc = to_json(x, key, -1, 0, &b);
    if (rc < 0) {
        rc_free(b.p);
        return rc;
    }
    rc_free(*slot);
    *slot = b.p;
    return 0;
}

/* ------------------------------------------------------------------------
 * structured options
 * ------------------------------------------------------------------------ */

int confload_parse_hostport(const char *s, char **addr, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon[1] == '\0')
        return RC_E_INVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return RC_E_INVAL;
    const char *a = s;
    size_t alen = (size_t)(colon - s);
    if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
        a++;
        alen -= 2;
    } else if (memchr(a, ':', alen) != NULL) {
        return RC_E_INVAL; /* an IPv6 address needs brackets */
    }
    *addr = alen ? rc_xstrndup(a, alen) : rc_xstrdup("0.0.0.0");
    *port = (int)p;
    return 0;
}

static int get_hostport(struct loadctx *x, const char *key, char **addr, int *port)
{
    if (lua_type(x->L, -1) != LUA_TSTRING)
        return fail(x, key, "'%s' must be a string \"ADDR:PORT\", not %s", key,
                    luaL_typename(x->L, -1));
    const char *s = lua_tostring(x->L, -1);
    char *a;
    int p;
    if (confload_parse_hostport(s, &a, &p) != 0)
        return fail(x, key, "'%s' = \"%s\" is not ADDR:PORT (e.g. \"127.0.0.1:8081\")", key, s);
    rc_free(*addr);
    *addr = a;
    *port = p;
    return 0;
}

/* The string field `name` of the table on the top of the stack. */
static int field_str(struct loadctx *x, const char *what, const char *name, int required,
                     char **slot)
{
    lua_getfield(x->L, -1, name);
    int rc = 0;
    if (lua_isnil(x->L, -1)) {
        if (required)
            rc = fail(x, name, "%s needs a string '%s'", what, name);
    } else {
        rc = get_str(x, name, slot);
    }
    lua_pop(x->L, 1);
    return rc;
}

static int check_fields(struct loadctx *x, const char *what, const char *const *allowed)
{
    lua_pushnil(x->L);
    while (lua_next(x->L, -2) != 0) {
        lua_pop(x->L, 1);
        const char *k = lua_type(x->L, -1) == LUA_TSTRING ? lua_tostring(x->L, -1) : NULL;
        int ok = 0;
        for (int i = 0; k && allowed[i]; i++)
            ok |= strcmp(k, allowed[i]) == 0;
        if (!ok) {
            int rc = k ? fail(x, k, "%s has an unknown field '%s'", what, k)
                       : fail(x, NULL, "%s has a field that is not a name", what);
            lua_pop(x->L, 1);
            return rc;
        }
    }
    return 0;
}

/* plugins = { {name = "jwt", path = "plugins/jwt.lua", config = {...}}, ... } */
static int get_plugins(struct loadctx *x, const char *key)
{
    lua_State *L = x->L;
    if (lua_type(L, -1) != LUA_TTABLE)
        return fail(x, key, "'%s' must be a list of {name=, path=, config=}", key);
    struct rc_config *c = x->c;
    for (int i = 0; i < c->nplugins; i++) {
        rc_free(c->plugins[i].name);
        rc_free(c->plugins[i].path);
        rc_free(c->plugins[i].config_json);
    }
    memset(c->plugins, 0, sizeof(c->plugins));
    c->nplugins = 0;
    int n = (int)lua_objlen(L, -1);
    if (n > RC_MAX_PLUGINS)
        return fail(x, key, "'%s' lists %d plugins; at most %d", key, n, RC_MAX_PLUGINS);
    int saved = x->line_from;
    x->line_from = key_line(x, key, 1);
    int rc = 0;
    static const char *const allowed[] = {"name", "path", "config", NULL};
    for (int i = 1; i <= n && rc == 0; i++) {
        lua_rawgeti(L, -1, i);
        char what[64];
        snprintf(what, sizeof(what), "plugin %d", i);
        struct rc_plugin_cfg *p = &c->plugins[c->nplugins];
        if (lua_type(L, -1) != LUA_TTABLE) {
            rc = fail(x, key, "'%s' item %d must be a table {name=, path=, config=}", key, i);
        } else {
            c->nplugins++;
            rc = check_fields(x, what, allowed);
            if (rc == 0)
                rc = field_str(x, what, "name", 1, &p->name);
            if (rc == 0)
                rc = field_str(x, what, "path", 0, &p->path);
            if (rc == 0) {
                lua_getfield(L, -1, "config");
                if (!lua_isnil(L, -1))
                    rc = get_json(x, "config", &p->config_json);
                lua_pop(L, 1);
            }
            if (rc == 0)
                x->line_from = key_line(x, "name", x->line_from) + 1;
        }
        lua_pop(L, 1);
    }
    x->line_from = saved;
    return rc;
}

/* routes = { {pattern = "game:*", script = "scripts/game.lua"}, ... } */
static int get_routes(struct loadctx *x, const char *key)
{
    lua_State *L = x->L;
    if (lua_type(L, -1) != LUA_TTABLE)
        return fail(x, key, "'%s' must be a list of {pattern=, script=}", key);
    struct rc_config *c = x->c;
    for (int i = 0; i < c->nroutes; i++) {
        rc_free(c->routes[i].pattern);
        rc_free(c->routes[i].script);
    }
    memset(c->routes, 0, sizeof(c->routes));
    c->nroutes = 0;
    int n = (int)lua_objlen(L, -1);
    if (n > RC_MAX_ROUTES)
        return fail(x, key, "'%s' lists %d routes; at most %d", key, n, RC_MAX_ROUTES);
    int saved = x->line_from;
    x->line_from = key_line(x, key, 1);
    int rc = 0;
    static const char *const allowed[] = {"pattern", "script", NULL};
    for (int i = 1; i <= n && rc == 0; i++) {
        lua_rawgeti(L, -1, i);
        char what[64];
        snprintf(what, sizeof(what), "route %d", i);
        struct rc_route_cfg *r = &c->routes[c->nroutes];
        if (lua_type(L, -1) != LUA_TTABLE) {
            rc = fail(x, key, "'%s' item %d must be a table {pattern=, script=}", key, i);
        } else {
            c->nroutes++;
            rc = check_fields(x, what, allowed);
            if (rc == 0)
                rc = field_str(x, what, "pattern", 1, &r->pattern);
            if (rc == 0)
                rc = field_str(x, what, "script", 1, &r->script);
            if (rc == 0)
                x->line_from = key_line(x, "pattern", x->line_from) + 1;
        }
        lua_pop(L, 1);
    }
    x->line_from = saved;
    return rc;
}

/* allowed_origins = { "https://example.com", ... } */
static int get_origins(struct loadctx *x, const char *key)
{
    lua_State *L = x->L;
    if (lua_type(L, -1) != LUA_TTABLE)
        return fail(x, key, "'%s' must be a list of strings", key);
    struct rc_config *c = x->c;
    for (int i = 0; i < c->norigins; i++)
        rc_free(c->origins[i]);
    rc_free(c->origins);
    c->origins = NULL;
    c->norigins = 0;
    int n = (int)lua_objlen(L, -1);
    if (n > 1024)
        return fail(x, key, "'%s' lists more than 1024 origins", key);
    if (n > 0)
        c->origins = rc_xcalloc((size_t)n, sizeof(char *));
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        int rc = 0;
        if (lua_type(L, -1) != LUA_TSTRING)
            rc = fail(x, key, "'%s' item %d must be a string", key, i);
        else
            c->origins[c->norigins++] = rc_xstrdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * the option table
 * ------------------------------------------------------------------------ */

static const char *const slow_names[] = {"drop", "close", "latest", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const rate_names[] = {"drop", "close", NULL};

/* Applies one top-level option (value on the top of the stack). */
static int apply(struct loadctx *x, const char *k)
{
    struct rc_config *c = x->c;
    double d;
    int rc, v;
    if (strcmp(k, "bind") == 0)
        return get_str(x, k, &c->bind_addr);
    if (strcmp(k, "port") == 0)
        return get_int(x, k, 0, 65535, &c->port);
    if (strcmp(k, "listen") == 0)
        return get_hostport(x, k, &c->bind_addr, &c->port);
    if (strcmp(k, "workers") == 0)
        return get_int(x, k, 0, 64, &c->workers);
    if (strcmp(k, "script") == 0)
        return get_opt_str(x, k, &c->script);
    if (strcmp(k, "echo") == 0)
        return get_bool(x, k, &c->echo);
    if (strcmp(k, "lua_dir") == 0)
        return get_str(x, k, &c->lua_dir);
    if (strcmp(k, "max_message") == 0)
        return get_size(x, k, 1, (size_t)1 << 31, &c->max_message);
    if (strcmp(k, "max_head") == 0)
        return get_size(x, k, 256, 1024 * 1024, &c->max_head);
    if (strcmp(k, "max_headers") == 0) {
        rc = get_int(x, k, 1, 128, &v);
        c->max_headers = (size_t)v;
        return rc;
    }
    if (strcmp(k, "handshake_timeout") == 0)
        return get_secs(x, k, 0.001, &c->handshake_timeout);
    if (strcmp(k, "ping_interval") == 0)
        return get_secs(x, k, 0.001, &c->ping_interval);
    if (strcmp(k, "pong_timeout") == 0)
        return get_secs(x, k, 0.001, &c->pong_timeout);
    if (strcmp(k, "close_timeout") == 0)
        return get_secs(x, k, 0.001, &c->close_timeout);
    if (strcmp(k, "drain_time") == 0)
        return get_secs(x, k, 0, &c->drain_time);
    if (strcmp(k, "accept") == 0) {
        static const char *const accept_names[] = {"reuseport", "handoff", NULL};
        return get_enum(x, k, accept_names, &c->accept_handoff);
    }
    if (strcmp(k, "sndbuf") == 0)
        return get_size(x, k, 0, (size_t)1 << 30, &c->sndbuf);
    if (strcmp(k, "sendq_limit") == 0)
        return get_size(x, k, 1024, (size_t)1 << 40, &c->sendq_hard_limit);
    if (strcmp(k, "sendq_soft_limit") == 0)
        return get_size(x, k, 0, (size_t)1 << 40, &c->sendq_soft_limit);
    if (strcmp(k, "sendq_soft_seconds") == 0)
        return get_secs(x, k, 0, &c->sendq_soft_seconds);
    if (strcmp(k, "slow_consumer") == 0)
        return get_enum(x, k, slow_names, &c->slow_policy);
    if (strcmp(k, "history_size") == 0)
        return get_size(x, k, 0, 1000000, &c->history_size);
    if (strcmp(k, "lua_budget") == 0) {
        rc = get_num(x, k, 0, 1e15, &d);
        c->lua_budget = (uint64_t)d;
        return rc;
    }
    if (strcmp(k, "tick_interval") == 0)
        return get_secs(x, k, 0, &c->tick_interval);
    if (strcmp(k, "script_config") == 0)
        return get_json(x, k, &c->script_config_json);
    if (strcmp(k, "plugins") == 0)
        return get_plugins(x, k);
    if (strcmp(k, "routes") == 0)
        return get_routes(x, k);
    if (strcmp(k, "pidfile") == 0)
        return get_opt_str(x, k, &c->pidfile);
    if (strcmp(k, "log_file") == 0)
        return get_opt_str(x, k, &c->log_file);
    if (strcmp(k, "log_level") == 0)
        return get_enum(x, k, level_names, &c->log_level);
    if (strcmp(k, "daemon") == 0)
        return get_bool(x, k, &c->daemonize);
    if (strcmp(k, "admin") == 0) {
        c->admin_explicit = 1;
        if (lua_type(x->L, -1) == LUA_TBOOLEAN && !lua_toboolean(x->L, -1)) {
            rc_config_set_str(&c->admin_addr, NULL);
            return 0;
        }
        return get_hostport(x, k, &c->admin_addr, &c->admin_port);
    }
    if (strcmp(k, "admin_token") == 0)
        return get_opt_str(x, k, &c->admin_token);
    if (strcmp(k, "tls_port") == 0)
        return get_int(x, k, 0, 65535, &c->tls_port);
    if (strcmp(k, "tls_cert") == 0)
        return get_opt_str(x, k, &c->tls_cert);
    if (strcmp(k, "tls_key") == 0)
        return get_opt_str(x, k, &c->tls_key);
    if (strcmp(k, "tls_chain") == 0)
        return get_opt_str(x, k, &c->tls_chain);
    if (strcmp(k, "max_connections") == 0)
        return get_int(x, k, 0, 1e9, &c->max_conns);
    if (strcmp(k, "max_connections_per_ip") == 0)
        return get_int(x, k, 0, 1e9, &c->max_conns_per_ip);
    if (strcmp(k, "accept_rate") == 0)
        return get_num(x, k, 0, 1e9, &c->accept_rate);
    if (strcmp(k, "accept_burst") == 0)
        return get_num(x, k, 0, 1e9, &c->accept_burst);
    if (strcmp(k, "message_rate") == 0)
        return get_num(x, k, 0, 1e9, &c->msg_rate);
    if (strcmp(k, "message_burst") == 0)
        return get_num(x, k, 0, 1e9, &c->msg_burst);
    if (strcmp(k, "message_rate_policy") == 0)
        return get_enum(x, k, rate_names, &c->msg_rate_close);
    if (strcmp(k, "allowed_origins") == 0)
        return get_origins(x, k);
    return fail(x, k, "unknown option '%s'", k);
}

/* Checks that need several options. */
static int cross_check(struct loadctx *x)
{
    struct rc_config *c = x->c;
    if (c->tls_cert || c->tls_key) {
        if (c->tls_cert == NULL || c->tls_key == NULL)
            return fail(x, c->tls_cert ? "tls_cert" : "tls_key",
                        "'tls_cert' and 'tls_key' go together");
        if (c->tls_port == c->port && c->port != 0)
            return fail(x, "tls_port", "'tls_port' must differ from 'port' (%d)", c->port);
    }
    if (c->sendq_soft_limit > c->sendq_hard_limit)
        return fail(x, "sendq_soft_limit", "'sendq_soft_limit' is above 'sendq_limit'");
    if (c->script && c->echo)
        return fail(x, "echo", "'echo' and 'script' exclude each other");
    return 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct jbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < (64u << 20))
        jput(&b, chunk, n);
    fclose(f);
    return b.p ? b.p : rc_xstrdup("");
}

int confload_file(const char *path, struct rc_config *c, char *err, size_t cap)
{
    struct loadctx x = {.path = path, .c = c, .err = err, .cap = cap, .line_from = 1};
    x.text = read_text(path);
    if (x.text == NULL) {
        snprintf(err, cap, "roomcast: %s: cannot read: %s", path, strerror(errno));
        return RC_E_CONFIG;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        rc_free(x.text);
        snprintf(err, cap, "roomcast: %s: cannot create a Lua state", path);
        return RC_E_CONFIG;
    }
    x.L = L;
    luaL_openlibs(L);
    int rc = 0;
    /* luaL_loadfile names the chunk "@path": its messages read "path:LINE: ...". */
    if (luaL_loadfile(L, path) != 0) {
        snprintf(err, cap, "roomcast: %s", lua_tostring(L, -1));
        rc = RC_E_CONFIG;
        goto out;
    }
    /* Globals the file assigns land in a fresh table that falls back to _G
     * for reads (string, math, os.getenv ...). */
    lua_newtable(L);                    /* chunk env */
    lua_newtable(L);                    /* chunk env mt */
    lua_pushvalue(L, LUA_GLOBALSINDEX); /* chunk env mt _G */
    lua_setfield(L, -2, "__index");     /* chunk env mt */
    lua_setmetatable(L, -2);            /* chunk env */
    lua_pushvalue(L, -1);               /* chunk env env */
    lua_insert(L, -3);                  /* env chunk env */
    lua_setfenv(L, -2);                 /* env chunk */
    if (lua_pcall(L, 0, 1, 0) != 0) {   /* env result|msg */
        const char *m = lua_tostring(L, -1);
        snprintf(err, cap, "roomcast: %s", m ? m : "error while running the config file");
        rc = RC_E_CONFIG;
        goto out;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_remove(L, -2); /* result */
    } else if (lua_isnil(L, -1)) {
        lua_pop(L, 1); /* env */
    } else {
        rc = fail(&x, NULL, "the file must return a table of options or set them as globals");
        goto out;
    }
    lua_pushnil(L); /* opts nil */
    while (lua_next(L, -2) != 0) {
        /* opts key value */
        if (lua_type(L, -2) != LUA_TSTRING) {
            rc = fail(&x, NULL, "option names must be strings");
            goto out;
        }
        const char *k = lua_tostring(L, -2);
        rc = apply(&x, k);
        lua_pop(L, 1); /* opts key */
        if (rc < 0)
            goto out;
    }
    rc = cross_check(&x);
out:
    lua_close(L);
    rc_free(x.text);
    return rc;
}

int confload_reload(const char *path, struct rc_config *live, char *err, size_t cap)
{
    struct rc_config n;
    rc_config_defaults(&n);
    int rc = confload_file(path, &n, err, cap);
    if (rc < 0) {
        rc_config_free(&n);
        return rc;
    }
    live->log_level = n.log_level;
    rc_log_set_level((enum rc_log_level)n.log_level);
    rc_config_set_str(&live->admin_token, n.admin_token);
    live->max_conns = n.max_conns;
    live->max_conns_per_ip = n.max_conns_per_ip;
    live->accept_rate = n.accept_rate;
    live->accept_burst = n.accept_burst;
    live->msg_rate = n.msg_rate;
    live->msg_burst = n.msg_burst;
    live->msg_rate_close = n.msg_rate_close;
    guard_configure(live);
    if (n.workers != live->workers || n.tls_port != live->tls_port ||
        (n.tls_cert == NULL) != (live->tls_cert == NULL) || n.max_message != live->max_message ||
        n.handshake_timeout != live->handshake_timeout)
        rc_warn("config reload: listeners, workers, TLS and timeouts need a restart; "
                "their new values are ignored");
    rc_config_free(&n);
    return 0;
}
