/* version.h - `roomcast --version`: our version and git commit, and the
 * versions of the libraries the process runs with (asked of the libraries at
 * run time, not taken from the headers it was built against).
 *
 * Main thread only.
 */
#ifndef RC_APP_VERSION_H
#define RC_APP_VERSION_H

#include <stdio.h>

/* "0.1.0", from project(VERSION) in CMakeLists.txt. Static storage. */
const char *rc_version(void);

/* "0123456789ab" or "0123456789ab-dirty" when built from a git checkout,
 * "" otherwise. Static storage. */
const char *rc_git_commit(void);

/* Prints "roomcast VERSION (git COMMIT)", then one "  NAME VERSION" line per
 * library (LuaJIT, libev, OpenSSL; SQLite and hiredis once they are linked),
 * then where the Lua runtime was found (or that it was not). */
void rc_version_print(FILE *out);

#endif
