#include "confload.h"

#include <errno.h>
#include <getopt.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "busmsg.h"
#include "err.h"
#include "log.h"
#include "redisurl.h"
#include "sbuf.h"

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
    /* A nested option's line is where its last part is assigned. */
    const char *leaf = key ? strrchr(key, '.') : NULL;
    int line = key_line(x, leaf ? leaf + 1 : key, x->line_from);
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
    if (!(v >= min && v <= RC_SECS_MAX))
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

static void jputs(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
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

static int to_json(struct loadctx *x, const char *key, int idx, int depth, struct sbuf *b)
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
        sb_json_str(b, s, n);
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
        sb_json_str(b, k, kl);
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
    struct sbuf b = {0};
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

static int get_hostport(struct loadctx *x, const char *key, char **addr, int *port)
{
    if (lua_type(x->L, -1) != LUA_TSTRING)
        return fail(x, key, "'%s' must be a string \"ADDR:PORT\", not %s", key,
                    luaL_typename(x->L, -1));
    const char *s = lua_tostring(x->L, -1);
    char *a;
    int p;
    if (rc_parse_hostport(s, &a, &p) != 0)
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
 * CUSTOM options: a loader for the file and, when they have a flag, one for
 * the command line
 * ------------------------------------------------------------------------ */

struct rc_custom_opt {
    int (*load)(struct loadctx *x, const char *key); /* the value on the top of the stack */
    /* The command-line argument (also the form of the table's default).
     * Returns 0, or RC_E_INVAL with a message (no "roomcast: ") in err. */
    int (*arg)(struct rc_config *c, const char *arg, char *err, size_t cap);
    const char *doc_default; /* in the docs when the table's default is NULL */
};

/* listen = "ADDR:PORT": bind and port in one string. */
static int load_listen(struct loadctx *x, const char *key)
{
    return get_hostport(x, key, &x->c->bind_addr, &x->c->port);
}

static int arg_listen(struct rc_config *c, const char *arg, char *err, size_t cap)
{
    char *addr;
    if (rc_parse_hostport(arg, &addr, &c->port) != 0) {
        snprintf(err, cap, "invalid --listen '%s' (ADDR:PORT)", arg);
        return RC_E_INVAL;
    }
    rc_free(c->bind_addr);
    c->bind_addr = addr;
    return 0;
}

/* admin = "ADDR:PORT" | false; --admin ADDR:PORT|off */
static int load_admin(struct loadctx *x, const char *key)
{
    if (lua_type(x->L, -1) == LUA_TBOOLEAN && !lua_toboolean(x->L, -1)) {
        rc_config_set_str(&x->c->admin_addr, NULL);
        return 0;
    }
    return get_hostport(x, key, &x->c->admin_addr, &x->c->admin_port);
}

static int arg_admin(struct rc_config *c, const char *arg, char *err, size_t cap)
{
    if (strcmp(arg, "off") == 0) {
        rc_config_set_str(&c->admin_addr, NULL);
        return 0;
    }
    char *addr;
    if (rc_parse_hostport(arg, &addr, &c->admin_port) != 0) {
        snprintf(err, cap, "invalid --admin '%s' (ADDR:PORT or off)", arg);
        return RC_E_INVAL;
    }
    rc_free(c->admin_addr);
    c->admin_addr = addr;
    return 0;
}

/* --plugin NAME=PATH[=JSON]; repeatable. */
static int arg_plugins(struct rc_config *c, const char *arg, char *err, size_t cap)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || eq[1] == '\0' || c->nplugins >= RC_MAX_PLUGINS) {
        snprintf(err, cap, "invalid --plugin '%s' (NAME=PATH[=JSON], at most %d)", arg,
                 RC_MAX_PLUGINS);
        return RC_E_INVAL;
    }
    const char *eq2 = strchr(eq + 1, '=');
    struct rc_plugin_cfg *p = &c->plugins[c->nplugins++];
    p->name = rc_xstrndup(arg, (size_t)(eq - arg));
    p->path = eq2 ? rc_xstrndup(eq + 1, (size_t)(eq2 - eq - 1)) : rc_xstrdup(eq + 1);
    p->config_json = eq2 ? rc_xstrdup(eq2 + 1) : NULL;
    return 0;
}

/* --history sqlite:PATH | memory (command line only: the file says
 * history = { store = ..., path = ... }). */
static int arg_history(struct rc_config *c, const char *arg, char *err, size_t cap)
{
    if (strcmp(arg, "memory") == 0) {
        c->history_store = RC_STORE_MEMORY;
        return 0;
    }
    if (strncmp(arg, "sqlite:", 7) == 0 && arg[7] != '\0') {
        c->history_store = RC_STORE_SQLITE;
        rc_config_set_str(&c->history_path, arg + 7);
        return 0;
    }
    snprintf(err, cap, "invalid --history '%s' (sqlite:PATH or memory)", arg);
    return RC_E_INVAL;
}

static const struct rc_custom_opt custom_history = {NULL, arg_history, NULL};
static const struct rc_custom_opt custom_listen = {load_listen, arg_listen, NULL};
static const struct rc_custom_opt custom_admin = {load_admin, arg_admin, NULL};
static const struct rc_custom_opt custom_plugins = {get_plugins, arg_plugins, "{}"};
static const struct rc_custom_opt custom_routes = {get_routes, NULL, "{}"};
static const struct rc_custom_opt custom_origins = {get_origins, NULL, "{}"};

/* ------------------------------------------------------------------------
 * RC_OPTIONS as data
 * ------------------------------------------------------------------------ */

/* The DEFAULT column holds a number or a string (NULL included). */
#define DEF_NUM(d) _Generic((d), char * : 0.0, const char * : 0.0, void * : 0.0, default : (d))
#define DEF_STR(d) _Generic((d), char * : (d), const char * : (d), void * : (d), default : NULL)

#define OFF_FIELD(field) offsetof(struct rc_config, field)
#define OFF_INT OFF_FIELD
#define OFF_BOOL OFF_FIELD
#define OFF_SIZE OFF_FIELD
#define OFF_SECS OFF_FIELD
#define OFF_NUM OFF_FIELD
#define OFF_COUNT OFF_FIELD
#define OFF_STR OFF_FIELD
#define OFF_OPTSTR OFF_FIELD
#define OFF_JSON OFF_FIELD
#define OFF_ENUM_slow OFF_FIELD
#define OFF_ENUM_level OFF_FIELD
#define OFF_ENUM_accept OFF_FIELD
#define OFF_ENUM_ratepolicy OFF_FIELD
#define OFF_ENUM_store OFF_FIELD
#define OFF_ENUM_bus OFF_FIELD
#define OFF_ENUM_storeerr OFF_FIELD
#define OFF_ENUM_clock OFF_FIELD
#define OFF_CUSTOM(field) 0

#define CUSTOM_OF(type, field) CUSTOM_OF_##type(field)
#define CUSTOM_OF_CUSTOM(field) &custom_##field
#define CUSTOM_OF_INT(field) NULL
#define CUSTOM_OF_BOOL(field) NULL
#define CUSTOM_OF_SIZE(field) NULL
#define CUSTOM_OF_SECS(field) NULL
#define CUSTOM_OF_NUM(field) NULL
#define CUSTOM_OF_COUNT(field) NULL
#define CUSTOM_OF_STR(field) NULL
#define CUSTOM_OF_OPTSTR(field) NULL
#define CUSTOM_OF_JSON(field) NULL
#define CUSTOM_OF_ENUM_slow(field) NULL
#define CUSTOM_OF_ENUM_level(field) NULL
#define CUSTOM_OF_ENUM_accept(field) NULL
#define CUSTOM_OF_ENUM_ratepolicy(field) NULL
#define CUSTOM_OF_ENUM_store(field) NULL
#define CUSTOM_OF_ENUM_bus(field) NULL
#define CUSTOM_OF_ENUM_storeerr(field) NULL
#define CUSTOM_OF_ENUM_clock(field) NULL

#define OPT_DESC(name_, type, field, def, min_, max_, scope_, sflag, lflag, meta_, help_)          \
    [RC_OPT_ID_##field] = {.name = name_,                                                          \
                           .kind = RC_OPT_KIND_##type,                                             \
                           .offset = OFF_##type(field),                                            \
                           .def_num = DEF_NUM(def),                                                \
                           .def_str = DEF_STR(def),                                                \
                           .min = (min_),                                                          \
                           .max = (max_),                                                          \
                           .names = RC_OPT_NAMES_##type,                                           \
                           .scope = RC_OPT_SCOPE_##scope_,                                         \
                           .short_flag = (sflag),                                                  \
                           .long_flag = (lflag),                                                   \
                           .meta = (meta_),                                                        \
                           .help = (help_),                                                        \
                           .custom = CUSTOM_OF(type, field)},
const struct rc_option rc_options[RC_NOPTIONS] = {RC_OPTIONS(OPT_DESC)};

static void *slot(struct rc_config *c, const struct rc_option *o)
{
    return (char *)c + o->offset;
}

static const void *cslot(const struct rc_config *c, const struct rc_option *o)
{
    return (const char *)c + o->offset;
}

static int is_string_kind(enum rc_opt_kind k)
{
    return k == RC_OK_STR || k == RC_OK_OPTSTR || k == RC_OK_JSON;
}

void rc_config_defaults(struct rc_config *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        switch (o->kind) {
        case RC_OK_INT:
        case RC_OK_BOOL:
        case RC_OK_ENUM:
            *(int *)slot(c, o) = (int)o->def_num;
            break;
        case RC_OK_SIZE:
            *(size_t *)slot(c, o) = (size_t)o->def_num;
            break;
        case RC_OK_SECS:
        case RC_OK_NUM:
            *(double *)slot(c, o) = o->def_num;
            break;
        case RC_OK_COUNT:
            *(uint64_t *)slot(c, o) = (uint64_t)o->def_num;
            break;
        case RC_OK_STR:
        case RC_OK_OPTSTR:
        case RC_OK_JSON:
            rc_config_set_str((char **)slot(c, o), o->def_str);
            break;
        case RC_OK_CUSTOM:
            /* The default is an argument, as on the command line. */
            if (o->def_str) {
                char err[256];
                int rc = o->custom->arg(c, o->def_str, err, sizeof(err));
                RC_ASSERT(rc == 0);
            }
            break;
        }
    }
}

void rc_config_finish(struct rc_config *c)
{
    if (!c->echo && c->script == NULL)
        c->echo = 1;
    /* A message bigger than the send queue limit could never be echoed. */
    if (c->sendq_hard_limit < c->max_message + 16)
        c->sendq_hard_limit = c->max_message + 16;
    if (c->sendq_soft_limit > c->sendq_hard_limit)
        c->sendq_soft_limit = c->sendq_hard_limit;
}

void rc_config_free(struct rc_config *c)
{
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        if (is_string_kind(o->kind))
            rc_free(*(char **)slot(c, o));
    }
    for (int i = 0; i < c->nplugins; i++) {
        rc_free(c->plugins[i].name);
        rc_free(c->plugins[i].path);
        rc_free(c->plugins[i].config_json);
    }
    for (int i = 0; i < c->nroutes; i++) {
        rc_free(c->routes[i].pattern);
        rc_free(c->routes[i].script);
    }
    rc_free(c->admin_addr);
    for (int i = 0; i < c->norigins; i++)
        rc_free(c->origins[i]);
    rc_free(c->origins);
    memset(c, 0, sizeof(*c));
}

/* The value of option o in c as Lua source ("8M", 30, "drop", nil, {}). */
static void value_text(const struct rc_config *c, const struct rc_option *o, char *buf, size_t cap)
{
    const void *p = cslot(c, o);
    switch (o->kind) {
    case RC_OK_INT:
        snprintf(buf, cap, "%d", *(const int *)p);
        break;
    case RC_OK_BOOL:
        snprintf(buf, cap, "%s", *(const int *)p ? "true" : "false");
        break;
    case RC_OK_ENUM:
        snprintf(buf, cap, "\"%s\"", o->names[*(const int *)p]);
        break;
    case RC_OK_SIZE: {
        size_t v = *(const size_t *)p;
        static const char units[] = "KMG";
        int u = -1;
        while (v >= 1024 && v % 1024 == 0 && u < 2) {
            v /= 1024;
            u++;
        }
        if (u >= 0)
            snprintf(buf, cap, "\"%zu%c\"", v, units[u]);
        else
            snprintf(buf, cap, "%zu", v);
        break;
    }
    case RC_OK_SECS:
    case RC_OK_NUM:
        snprintf(buf, cap, "%g", *(const double *)p);
        break;
    case RC_OK_COUNT:
        snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    case RC_OK_STR:
    case RC_OK_OPTSTR: {
        const char *s = *(char *const *)p;
        if (s)
            snprintf(buf, cap, "\"%s\"", s);
        else
            snprintf(buf, cap, "nil");
        break;
    }
    case RC_OK_JSON:
        snprintf(buf, cap, "{}");
        break;
    case RC_OK_CUSTOM:
        if (o->def_str)
            snprintf(buf, cap, "\"%s\"", o->def_str);
        else
            snprintf(buf, cap, "%s", o->custom->doc_default ? o->custom->doc_default : "nil");
        break;
    }
}

void rc_option_default_text(const struct rc_option *o, char *buf, size_t cap)
{
    struct rc_config c;
    rc_config_defaults(&c);
    value_text(&c, o, buf, cap);
    rc_config_free(&c);
}

const char *rc_option_long_flag(const struct rc_option *o, char *buf, size_t cap)
{
    if (o->long_flag)
        return o->long_flag[0] ? o->long_flag : NULL;
    snprintf(buf, cap, "%s", o->name);
    for (char *p = buf; *p; p++)
        if (*p == '_' || *p == '.')
            *p = '-';
    return buf;
}

/* ------------------------------------------------------------------------
 * the config file: one value -> one option
 * ------------------------------------------------------------------------ */

static int load_value(struct loadctx *x, const struct rc_option *o)
{
    struct rc_config *c = x->c;
    const char *k = o->name;
    double d;
    int rc;
    switch (o->kind) {
    case RC_OK_INT:
        return get_int(x, k, o->min, o->max, (int *)slot(c, o));
    case RC_OK_BOOL:
        return get_bool(x, k, (int *)slot(c, o));
    case RC_OK_SIZE:
        return get_size(x, k, (size_t)o->min, (size_t)o->max, (size_t *)slot(c, o));
    case RC_OK_SECS:
        return get_secs(x, k, o->min, (double *)slot(c, o));
    case RC_OK_NUM:
        return get_num(x, k, o->min, o->max, (double *)slot(c, o));
    case RC_OK_COUNT:
        rc = get_num(x, k, o->min, o->max, &d);
        if (rc == 0 && d != floor(d))
            rc = fail(x, k, "'%s' must be a whole number, not %g", k, d);
        if (rc == 0)
            *(uint64_t *)slot(c, o) = (uint64_t)d;
        return rc;
    case RC_OK_STR:
        return get_str(x, k, (char **)slot(c, o));
    case RC_OK_OPTSTR:
        return get_opt_str(x, k, (char **)slot(c, o));
    case RC_OK_JSON:
        return get_json(x, k, (char **)slot(c, o));
    case RC_OK_ENUM:
        return get_enum(x, k, o->names, (int *)slot(c, o));
    case RC_OK_CUSTOM:
        return o->custom->load(x, k);
    }
    return fail(x, k, "option '%s' has no loader", k);
}

/* The file option `name` (a top-level key, or "group.key"), or NULL. */
static const struct rc_option *find_file_option(const char *name)
{
    for (int i = 0; i < RC_NOPTIONS; i++)
        if (rc_options[i].scope != RC_OS_CLI && strcmp(rc_options[i].name, name) == 0)
            return &rc_options[i];
    return NULL;
}

static int is_group(const char *k)
{
    size_t kl = strlen(k);
    for (int i = 0; i < RC_NOPTIONS; i++)
        if (strncmp(rc_options[i].name, k, kl) == 0 && rc_options[i].name[kl] == '.')
            return 1;
    return 0;
}

/* group = { key = value, ... }: each key is the option "group.key". */
static int apply_group(struct loadctx *x, const char *group)
{
    lua_State *L = x->L;
    if (lua_type(L, -1) != LUA_TTABLE)
        return fail(x, group, "'%s' must be a table of options, not %s", group,
                    luaL_typename(L, -1));
    int saved = x->line_from;
    x->line_from = key_line(x, group, 1);
    int rc = 0;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, -2) != 0) {
        char name[128];
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        const struct rc_option *o = NULL;
        if (k && snprintf(name, sizeof(name), "%s.%s", group, k) < (int)sizeof(name))
            o = find_file_option(name);
        if (k == NULL)
            rc = fail(x, group, "'%s' has a field that is not a name", group);
        else if (o == NULL)
            rc = fail(x, k, "unknown option '%s.%s'", group, k);
        else
            rc = load_value(x, o);
        if (rc == 0)
            x->c->set[o - rc_options] = 1;
        lua_pop(L, 1);
    }
    if (rc < 0)
        lua_pop(L, 1); /* the key */
    x->line_from = saved;
    return rc;
}

/* Applies one top-level option (value on the top of the stack). */
static int apply(struct loadctx *x, const char *k)
{
    /* "group.key" is only reached through `group = { key = ... }` */
    const struct rc_option *o = strchr(k, '.') ? NULL : find_file_option(k);
    if (o == NULL)
        return is_group(k) ? apply_group(x, k) : fail(x, k, "unknown option '%s'", k);
    int rc = load_value(x, o);
    if (rc == 0)
        x->c->set[o - rc_options] = 1;
    return rc;
}

/* ------------------------------------------------------------------------
 * the command line
 * ------------------------------------------------------------------------ */

#define FLAG_BUF 64

/* "-p/--port", "--max-message" or "-t" for messages. */
static const char *flag_name(const struct rc_option *o, char *buf, size_t cap)
{
    char lb[FLAG_BUF];
    const char *l = rc_option_long_flag(o, lb, sizeof(lb));
    if (o->short_flag && l)
        snprintf(buf, cap, "-%c/--%s", o->short_flag, l);
    else if (o->short_flag)
        snprintf(buf, cap, "-%c", o->short_flag);
    else
        snprintf(buf, cap, "--%s", l ? l : o->name);
    return buf;
}

/* One flag's argument (NULL for BOOL). Returns 0 or RC_E_INVAL with err. */
static int apply_arg(struct rc_config *c, const struct rc_option *o, const char *arg, char *err,
                     size_t cap)
{
    char fb[FLAG_BUF + 8];
    const char *f = flag_name(o, fb, sizeof(fb));
    char *end;
    switch (o->kind) {
    case RC_OK_BOOL:
        *(int *)slot(c, o) = 1;
        return 0;
    case RC_OK_INT:
    case RC_OK_NUM:
    case RC_OK_COUNT: {
        errno = 0;
        double v = strtod(arg, &end);
        int whole = o->kind != RC_OK_NUM;
        if (*arg == '\0' || *end || errno || !(v >= o->min && v <= o->max) ||
            (whole && v != floor(v))) {
            snprintf(err, cap, "invalid %s '%s' for %s (%.15g to %.15g)",
                     whole ? "whole number" : "number", arg, f, o->min, o->max);
            return RC_E_INVAL;
        }
        if (o->kind == RC_OK_INT)
            *(int *)slot(c, o) = (int)v;
        else if (o->kind == RC_OK_COUNT)
            *(uint64_t *)slot(c, o) = (uint64_t)v;
        else
            *(double *)slot(c, o) = v;
        return 0;
    }
    case RC_OK_SIZE: {
        size_t v;
        if (rc_parse_size(arg, &v) != 0 || v < (size_t)o->min || v > (size_t)o->max) {
            snprintf(err, cap, "invalid size '%s' for %s (%.15g to %.15g bytes; K/M/G suffixes)",
                     arg, f, o->min, o->max);
            return RC_E_INVAL;
        }
        *(size_t *)slot(c, o) = v;
        return 0;
    }
    case RC_OK_SECS: {
        double v;
        if (rc_parse_seconds(arg, &v) != 0 || v < o->min || v > RC_SECS_MAX) {
            snprintf(err, cap, "invalid duration '%s' for %s (at least %g seconds)", arg, f,
                     o->min);
            return RC_E_INVAL;
        }
        *(double *)slot(c, o) = v;
        return 0;
    }
    case RC_OK_STR:
    case RC_OK_OPTSTR:
    case RC_OK_JSON:
        rc_config_set_str((char **)slot(c, o), arg);
        return 0;
    case RC_OK_ENUM:
        for (int i = 0; o->names[i]; i++) {
            if (strcmp(arg, o->names[i]) == 0) {
                *(int *)slot(c, o) = i;
                return 0;
            }
        }
        snprintf(err, cap, "invalid value '%s' for %s (", arg, f);
        for (int i = 0; o->names[i]; i++) {
            size_t n = strlen(err);
            snprintf(err + n, cap - n, "%s%s", i ? "|" : "", o->names[i]);
        }
        size_t n = strlen(err);
        snprintf(err + n, cap - n, ")");
        return RC_E_INVAL;
    case RC_OK_CUSTOM:
        return o->custom->arg(c, arg, err, cap);
    }
    return RC_E_INVAL;
}

int confload_args(struct rc_config *c, int argc, char **argv, char *err, size_t cap)
{
    /* getopt_long's tables, built from RC_OPTIONS: val is 256 + the row. */
    static char longnames[RC_NOPTIONS][FLAG_BUF];
    struct option lopts[RC_NOPTIONS + 3];
    char sopts[2 * RC_NOPTIONS + 4] = ":hV";
    int nl = 0;
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        if (o->kind == RC_OK_CUSTOM && o->custom->arg == NULL)
            continue;
        int need = o->kind == RC_OK_BOOL ? no_argument : required_argument;
        const char *l = rc_option_long_flag(o, longnames[i], sizeof(longnames[i]));
        if (l)
            lopts[nl++] = (struct option){l, need, NULL, 256 + i};
        if (o->short_flag) {
            size_t n = strlen(sopts);
            sopts[n] = (char)o->short_flag;
            sopts[n + 1] = need == no_argument ? '\0' : ':';
            sopts[n + 2] = '\0';
        }
    }
    lopts[nl++] = (struct option){"help", no_argument, NULL, 'h'};
    lopts[nl++] = (struct option){"version", no_argument, NULL, 'V'};
    lopts[nl] = (struct option){NULL, 0, NULL, 0};
    optind = 0; /* GNU getopt: start over (main parses twice with -c) */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, sopts, lopts, NULL)) != -1) {
        if (ch == 'h')
            return CONFLOAD_HELP;
        if (ch == 'V')
            return CONFLOAD_VERSION;
        if (ch == ':') {
            snprintf(err, cap, "option '%s' needs a value", argv[optind - 1]);
            return RC_E_INVAL;
        }
        int row = -1;
        if (ch >= 256) {
            row = ch - 256;
        } else {
            for (int i = 0; i < RC_NOPTIONS && row < 0; i++)
                if (ch != '?' && rc_options[i].short_flag == ch)
                    row = i;
        }
        if (row < 0) {
            snprintf(err, cap, "unknown option '%s'", argv[optind - 1]);
            return RC_E_INVAL;
        }
        int rc = apply_arg(c, &rc_options[row], optarg, err, cap);
        if (rc < 0)
            return rc;
        c->set[row] = 1;
    }
    if (optind < argc) {
        snprintf(err, cap, "unexpected argument '%s'", argv[optind]);
        return RC_E_INVAL;
    }
    return 0;
}

void confload_usage(FILE *out)
{
    fputs("usage: roomcast [options]\n", out);
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        char lb[FLAG_BUF];
        const char *l = rc_option_long_flag(o, lb, sizeof(lb));
        if ((!o->short_flag && !l) || (o->kind == RC_OK_CUSTOM && o->custom->arg == NULL))
            continue;
        char head[96];
        int n = snprintf(head, sizeof(head), "  %s%c%s%s%s%s%s", o->short_flag ? "-" : "",
                         o->short_flag ? o->short_flag : ' ', o->short_flag && l ? ", " : "",
                         l ? "--" : "", l ? l : "", o->meta[0] ? " " : "", o->meta);
        if (!o->short_flag) /* "  --port" not "   --port" */
            memmove(head + 2, head + 3, (size_t)n - 2);
        char def[96] = "";
        if (o->kind != RC_OK_BOOL && o->scope != RC_OS_CLI)
            rc_option_default_text(o, def, sizeof(def));
        if (strcmp(def, "nil") == 0 || strcmp(def, "{}") == 0)
            def[0] = '\0';
        size_t dl = strlen(def);
        int quoted = dl >= 2 && def[0] == '"';
        fprintf(out, "%-30s %s%s%.*s%s\n", head, o->help, dl ? " (default " : "",
                (int)(quoted ? dl - 2 : dl), def + quoted, dl ? ")" : "");
    }
    fprintf(out, "%-30s %s\n", "  -V, --version",
            "version, library versions and where the Lua runtime is");
    fprintf(out, "%-30s %s\n", "  -h, --help", "this help");
    fputs("A flag overrides the config file; `roomcast -t -c FILE` checks a file.\n", out);
}

/* Checks that need several options. */
/* Checks of options that only make sense together, also run after the
 * flags (which may set either half): returns the option to blame, with the
 * reason in msg, or NULL. */
static const char *pair_check(const struct rc_config *c, char *msg, size_t cap)
{
    if (c->tls_cert || c->tls_key) {
        if (c->tls_cert == NULL || c->tls_key == NULL) {
            snprintf(msg, cap, "'tls_cert' and 'tls_key' go together");
            return c->tls_cert ? "tls_cert" : "tls_key";
        }
        if (c->tls_port == c->port && c->port != 0) {
            snprintf(msg, cap, "'tls_port' must differ from 'port' (%d)", c->port);
            return "tls_port";
        }
    }
    if (c->cluster_redis) {
        struct redis_url u;
        char why[96];
        if (redis_url_parse(c->cluster_redis, &u, why, sizeof(why)) < 0) {
            snprintf(msg, cap, "'cluster.redis': %s", why);
            return "cluster.redis";
        }
    }
    if (c->cluster_redis && c->history_store == RC_STORE_SQLITE) {
        snprintf(msg, cap,
                 "'cluster.redis': in a cluster the history is the rooms' Redis streams; "
                 "leave 'history.store' at memory");
        return "cluster.redis";
    }
    if (c->cluster_node_id && !busmsg_valid_node(c->cluster_node_id, strlen(c->cluster_node_id))) {
        snprintf(msg, cap, "'cluster.node_id' must be 1..64 printable characters without spaces");
        return "cluster.node_id";
    }
    return NULL;
}

/* Checks that need several options of the file. */
static int cross_check(struct loadctx *x)
{
    struct rc_config *c = x->c;
    char msg[128];
    const char *key = pair_check(c, msg, sizeof(msg));
    if (key)
        return fail(x, key, "%s", msg);
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
    struct sbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < (64u << 20))
        sb_add(&b, chunk, n);
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

int confload_all(struct rc_config *c, int argc, char **argv, confload_resolve_fn *resolve,
                 char *err, size_t cap)
{
    char msg[512];
    rc_config_defaults(c);
    int rc = confload_args(c, argc, argv, msg, sizeof(msg));
    if (rc == 0 && c->config_file) {
        /* defaults, then the file, then the flags again (flags win) */
        char *path = rc_xstrdup(c->config_file);
        char *flag_lua_dir = c->set[RC_OPT_ID_lua_dir] ? rc_xstrdup(c->lua_dir) : NULL;
        rc_config_free(c);
        rc_config_defaults(c);
        rc = confload_file(path, c, err, cap);
        if (rc == 0 && resolve)
            rc = resolve(c, path, flag_lua_dir, err, cap);
        if (rc == 0)
            rc_config_set_str(&c->config_file, path);
        rc_free(path);
        rc_free(flag_lua_dir);
        if (rc < 0)
            return RC_E_CONFIG;
        rc = confload_args(c, argc, argv, msg, sizeof(msg));
    }
    if (rc == 0 && pair_check(c, msg, sizeof(msg)) != NULL)
        rc = RC_E_INVAL;
    if (rc < 0) {
        snprintf(err, cap, "roomcast: %s (see roomcast -h)", msg);
        return RC_E_INVAL;
    }
    if (rc > 0)
        return rc;
    rc_config_finish(c);
    if (resolve && resolve(c, NULL, NULL, err, cap) < 0)
        return RC_E_CONFIG;
    return 0;
}

int confload_reload(const struct rc_config *boot, int argc, char **argv,
                    confload_resolve_fn *resolve, char *err, size_t cap)
{
    struct rc_config n;
    int rc = confload_all(&n, argc, argv, resolve, err, cap);
    if (rc != 0) {
        rc_config_free(&n);
        return rc < 0 ? RC_E_CONFIG : 0;
    }
    rc_live_publish(&n);
    /* The other options keep their values from the start. */
    char ignored[512] = "";
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        if (o->scope != RC_OS_BOOT || o->kind == RC_OK_CUSTOM)
            continue;
        char a[256], b[256];
        value_text(boot, o, a, sizeof(a));
        value_text(&n, o, b, sizeof(b));
        if (strcmp(a, b) != 0) {
            size_t len = strlen(ignored);
            snprintf(ignored + len, sizeof(ignored) - len, "%s%s", len ? ", " : "", o->name);
        }
    }
    if (ignored[0])
        rc_warn("config reload: %s changed; that needs a restart, the running values stay",
                ignored);
    rc_config_free(&n);
    return 0;
}
