/* static.h - files from cfg->static_dir for plain GET/HEAD requests on the
 * main listener (the demo page in www/). Off when static_dir is unset.
 *
 * Safety: the path goes through urlpath_normalize (no "..", no dot files,
 * no encoded separators or NUL), the resolved file must lie inside the
 * resolved root (a symlink out of the directory is refused), it must be a
 * regular file no larger than cfg->static_max_file, and directories are
 * never listed (a path ending in '/' means its index.html). Every refusal is
 * a 404 that says nothing about why.
 * Thread: any worker (no shared state).
 */
#ifndef RC_APP_STATIC_H
#define RC_APP_STATIC_H

#include <stddef.h>

#include "http_parse.h"

struct rc_config;

/* 1 when this request is for the static server: static_dir is set, the
 * method is GET or HEAD, there is no Upgrade header, and the path is not the
 * WebSocket endpoint /ws. */
int static_wants(const struct rc_config *cfg, const struct http_request *req);

/* Builds the whole response (head and, for GET, body) into an rc_xmalloc'd
 * buffer the caller frees with rc_free; *len gets its size. 200, 304 (the
 * ETag matches If-None-Match), 403 (larger than static_max_file), 404.
 * *status gets the status. Never NULL. */
char *static_respond(const struct rc_config *cfg, const struct http_request *req, size_t *len,
                     int *status);

#endif
