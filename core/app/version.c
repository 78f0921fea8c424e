#include "version.h"

#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "alloc.h"
#include "rc_git.h" /* generated at build time by cmake/gitversion.cmake */
#include "runtime.h"

#ifndef RC_VERSION
#define RC_VERSION "0.0.0"
#endif

const char *rc_version(void)
{
    return RC_VERSION;
}

const char *rc_git_commit(void)
{
    return RC_GIT_COMMIT;
}

/* jit.version of a throwaway state: the library this process loaded. */
static void luajit_version(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return;
    luaL_openlibs(L);
    lua_getglobal(L, "jit");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "version");
        if (lua_isstring(L, -1))
            snprintf(buf, cap, "%s", lua_tostring(L, -1));
    }
    lua_close(L);
}

static void libev_version(char *buf, size_t cap)
{
    snprintf(buf, cap, "libev %d.%d", ev_version_major(), ev_version_minor());
}

static void openssl_version(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", OpenSSL_version(OPENSSL_VERSION));
}

/* zlib (permessage-deflate): the library loaded, and the headers built against. */
static void zlib_lib_version(char *buf, size_t cap)
{
    snprintf(buf, cap, "zlib %s (headers %s)", zlibVersion(), ZLIB_VERSION);
}

/* The hook for more libraries: one line here per library the binary links,
 * with a function that asks the library itself. The build defines
 * RC_HAVE_SQLITE / RC_HAVE_HIREDIS when it links them (CMakeLists.txt).
 * SQLite answers sqlite3_libversion(); hiredis 0.14 has no run-time call, so
 * its line reports the headers' HIREDIS_MAJOR.MINOR.PATCH. */
#ifdef RC_HAVE_SQLITE
#include <sqlite3.h>
static void sqlite_version(char *buf, size_t cap)
{
    snprintf(buf, cap, "SQLite %s", sqlite3_libversion());
}
#endif
#ifdef RC_HAVE_HIREDIS
#include <hiredis/hiredis.h>
static void hiredis_version(char *buf, size_t cap)
{
    snprintf(buf, cap, "hiredis %d.%d.%d (headers)", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
}
#endif

static void (*const libraries[])(char *buf, size_t cap) = {
    luajit_version,  libev_version, openssl_version, zlib_lib_version,
#ifdef RC_HAVE_SQLITE
    sqlite_version,
#endif
#ifdef RC_HAVE_HIREDIS
    hiredis_version,
#endif
};

void rc_version_print(FILE *out)
{
    const char *git = rc_git_commit();
    fprintf(out, "roomcast %s%s%s%s\n", rc_version(), git[0] ? " (git " : "", git,
            git[0] ? ")" : "");
    char buf[256];
    for (size_t i = 0; i < sizeof(libraries) / sizeof(libraries[0]); i++) {
        libraries[i](buf, sizeof(buf));
        fprintf(out, "  %s\n", buf);
    }
    char *dir = NULL;
    char err[1024];
    if (runtime_find(&dir, err, sizeof(err)) == 0)
        fprintf(out, "  Lua runtime: %s\n", dir);
    else
        fprintf(out, "  Lua runtime: not found (%s)\n", err + strlen("roomcast: "));
    rc_free(dir);
}
