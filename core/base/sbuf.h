/* sbuf.h - a growing text buffer for building responses (admin, API).
 * Starts empty without allocating; aborts on OOM (rc_xrealloc): the sizes
 * are ours, not the peer's. The caller owns b->p and frees it with rc_free. */
#ifndef RC_BASE_SBUF_H
#define RC_BASE_SBUF_H

#include <stddef.h>

#include "defs.h"

struct sbuf {
    char *p; /* owned; NUL-terminated once anything was written */
    size_t len, cap;
};

/* Appends printf-style text. */
RC_PRINTF(2, 3) void sb_printf(struct sbuf *b, const char *fmt, ...);
/* Appends n bytes. */
void sb_add(struct sbuf *b, const void *s, size_t n);
/* Appends s[0..n) as a JSON string (quotes included; control bytes and
 * quotes escaped; s must be UTF-8). */
void sb_json_str(struct sbuf *b, const char *s, size_t n);

#endif
