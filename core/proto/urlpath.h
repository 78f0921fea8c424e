/* urlpath.h - turns the path of a request target into a safe relative file
 * path for static serving: percent-decoded, normalised, never escaping its
 * root. Pure: no I/O, no allocation.
 *
 *   "/"                    -> "index.html"
 *   "/js/app.js"           -> "js/app.js"
 *   "//a/./b/"             -> "a/b/index.html"
 *   "/a/../b", "/%2e%2e/x" -> refused (no ".." segment is ever resolved)
 *   "/.git/config"         -> refused (dot files are never served)
 *   "/a%00b", "/a%2fb"     -> refused (NUL, an encoded '/' or '\')
 */
#ifndef RC_PROTO_URLPATH_H
#define RC_PROTO_URLPATH_H

#include <stddef.h>
#include <sys/types.h>

/* Decodes and normalises path[0..len) (the part of the target before '?',
 * starting with '/') into out (cap bytes, NUL-terminated). A path ending in
 * '/' (or empty) gets "index.html" appended. Returns the length written, or
 * RC_E_INVAL when the path is malformed or unsafe (bad %-escape, NUL, control
 * bytes, backslash, an encoded '/', a "." or ".." segment after decoding, a
 * segment starting with '.', not starting with '/'), RC_E_TOO_BIG when the
 * result does not fit in cap. */
ssize_t urlpath_normalize(const char *path, size_t len, char *out, size_t cap);

#endif
