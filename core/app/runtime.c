#include "runtime.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "defs.h"
#include "err.h"

#ifndef RC_DATADIR
#define RC_DATADIR "/usr/local/share/roomcast"
#endif

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] == '/';
    char *p = rc_xmalloc(a + b + 2);
    memcpy(p, dir, a);
    if (!slash)
        p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

char *runtime_cwd(void)
{
    char buf[PATH_MAX];
    return rc_xstrdup(getcwd(buf, sizeof(buf)) ? buf : "/");
}

char *runtime_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return runtime_cwd();
    if (slash == path)
        return rc_xstrdup("/");
    char *dir = rc_xstrndup(path, (size_t)(slash - path));
    if (path[0] == '/')
        return dir;
    char *cwd = runtime_cwd();
    char *abs = join(cwd, dir);
    rc_free(cwd);
    rc_free(dir);
    return abs;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

static int has_runtime(const char *dir)
{
    char *init = join(dir, "roomcast/init.lua");
    int ok = is_file(init);
    rc_free(init);
    return ok;
}

static int same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Appends to err[0..cap) without overflowing it. */
static RC_PRINTF(3, 4) void add(char *err, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(err);
    if (n + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, cap - n, fmt, ap);
    va_end(ap);
}

int runtime_find(char **out, char *err, size_t cap)
{
    struct {
        char *dir;
        const char *why;
    } cand[3];
    int n = 0;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char why_exe[PATH_MAX + 32] = "/proc/self/exe unreadable";
    if (len > 0) {
        exe[len] = '\0';
        snprintf(why_exe, sizeof(why_exe), "next to %s", exe);
        *strrchr(exe, '/') = '\0'; /* readlink gives an absolute path */
#ifdef RC_BUILD_DIR
        if (same_dir(exe[0] ? exe : "/", RC_BUILD_DIR)) {
            cand[n].dir = rc_xstrdup(RC_SOURCE_DIR "/lua");
            cand[n++].why = "the source tree of this build directory";
        } else
#endif
        {
            cand[n].dir = join(exe, "../share/roomcast/lua");
            cand[n++].why = why_exe;
        }
    }
    cand[n].dir = rc_xstrdup(RC_DATADIR "/lua");
    cand[n++].why = "the install prefix";
    cand[n].dir = rc_xstrdup(RC_SOURCE_DIR "/lua");
    cand[n++].why = "the source tree";

    int found = -1;
    for (int i = 0; i < n && found < 0; i++)
        if (has_runtime(cand[i].dir))
            found = i;
    if (found >= 0) {
        char real[PATH_MAX];
        *out = rc_xstrdup(realpath(cand[found].dir, real) ? real : cand[found].dir);
    } else {
        snprintf(err, cap, "roomcast: cannot find the Lua runtime (roomcast/init.lua); looked in:");
        for (int i = 0; i < n; i++) {
            int dup = 0;
            for (int j = 0; j < i; j++)
                dup |= strcmp(cand[i].dir, cand[j].dir) == 0;
            if (dup)
                continue;
            add(err, cap, "%s %s (%s)", i ? "," : "", cand[i].dir, cand[i].why);
        }
        add(err, cap, "; set lua_dir in the config or pass --lua-dir DIR");
    }
    for (int i = 0; i < n; i++)
        rc_free(cand[i].dir);
    return found >= 0 ? 0 : RC_E_NOT_FOUND;
}

/* *slot: a file path. Absolute: checked. Relative: base/path, then data/path. */
static int resolve_file(char **slot, const char *what, const char *base, const char *data,
                        char *err, size_t cap)
{
    const char *p = *slot;
    if (p[0] == '/') {
        if (is_file(p))
            return 0;
        snprintf(err, cap, "roomcast: %s %s: %s", what, p,
                 access(p, R_OK) == 0 ? "not a regular file" : strerror(errno));
        return RC_E_NOT_FOUND;
    }
    char *a = join(base, p);
    char *b = data ? join(data, p) : NULL;
    char *hit = is_file(a) ? a : b && is_file(b) ? b : NULL;
    if (hit) {
        rc_free(*slot);
        *slot = rc_xstrdup(hit);
    } else {
        snprintf(err, cap, "roomcast: %s '%s' not found; looked in: %s%s%s", what, p, a,
                 b ? ", " : "", b ? b : "");
    }
    rc_free(a);
    rc_free(b);
    return hit ? 0 : RC_E_NOT_FOUND;
}

int runtime_resolve(struct rc_config *c, const char *base, char *err, size_t cap)
{
    if (c->script == NULL && c->nplugins == 0 && c->nroutes == 0)
        return 0; /* echo: no Lua */
    if (c->lua_dir) {
        if (c->lua_dir[0] != '/') {
            char *abs = join(base, c->lua_dir);
            rc_free(c->lua_dir);
            c->lua_dir = abs;
        }
        if (!has_runtime(c->lua_dir)) {
            snprintf(err, cap, "roomcast: lua_dir %s has no roomcast/init.lua", c->lua_dir);
            return RC_E_CONFIG;
        }
        /* Canonical, so that its parent is the data directory even for
         * "lua/", "." or a symlink. */
        char real[PATH_MAX];
        if (realpath(c->lua_dir, real))
            rc_config_set_str(&c->lua_dir, real);
    } else {
        int rc = runtime_find(&c->lua_dir, err, cap);
        if (rc < 0)
            return rc;
    }
    char *data = runtime_dir_of(c->lua_dir);
    int rc = 0;
    if (c->script)
        rc = resolve_file(&c->script, "script", base, data, err, cap);
    for (int i = 0; i < c->nplugins && rc == 0; i++) {
        struct rc_plugin_cfg *p = &c->plugins[i];
        if (p->path == NULL) {
            /* { name = "ratelimit" } means plugins/ratelimit.lua */
            size_t n = strlen(p->name) + sizeof("plugins/.lua");
            p->path = rc_xmalloc(n);
            snprintf(p->path, n, "plugins/%s.lua", p->name);
        }
        rc = resolve_file(&p->path, "plugin", base, data, err, cap);
    }
    for (int i = 0; i < c->nroutes && rc == 0; i++)
        rc = resolve_file(&c->routes[i].script, "route script", base, data, err, cap);
    rc_free(data);
    return rc;
}

static void rebase(char **slot, const char *dir)
{
    if (*slot == NULL || (*slot)[0] == '/')
        return;
    char *abs = join(dir, *slot);
    rc_free(*slot);
    *slot = abs;
}

void runtime_rebase_files(struct rc_config *c, const char *config_dir)
{
    rebase(&c->tls_cert, config_dir);
    rebase(&c->tls_key, config_dir);
    rebase(&c->tls_chain, config_dir);
    rebase(&c->static_dir, config_dir);
}

static int compiles(lua_State *L, const char *path, char *err, size_t cap)
{
    if (luaL_loadfile(L, path) == 0) {
        lua_pop(L, 1);
        return 0;
    }
    snprintf(err, cap, "roomcast: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return RC_E_SCRIPT;
}

int runtime_check_syntax(const struct rc_config *c, char *err, size_t cap)
{
    if (c->lua_dir == NULL)
        return 0;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(err, cap, "roomcast: cannot create a Lua state");
        return RC_E_NOMEM;
    }
    char *init = join(c->lua_dir, "roomcast/init.lua");
    int rc = compiles(L, init, err, cap);
    rc_free(init);
    if (rc == 0 && c->script)
        rc = compiles(L, c->script, err, cap);
    for (int i = 0; i < c->nplugins && rc == 0; i++)
        rc = compiles(L, c->plugins[i].path, err, cap);
    for (int i = 0; i < c->nroutes && rc == 0; i++)
        rc = compiles(L, c->routes[i].script, err, cap);
    lua_close(L);
    return rc;
}
