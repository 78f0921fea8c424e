/* alloc.h - allocation policy (h2o style).
 *
 * xmalloc family: for fixed-size internal objects; aborts with file:line on
 * OOM, so callers never check for NULL.
 * try_ family: for sizes the peer controls; returns NULL on failure and the
 * caller turns that into a protocol close, never a crash.
 *
 * Test hook: rc_alloc_fail_after(n) makes the n-th try_ allocation from now
 * fail (n = 0 disables). rc_alloc_live() counts blocks currently live through
 * this module, so tests can assert that nothing leaked.
 */
#ifndef RC_BASE_ALLOC_H
#define RC_BASE_ALLOC_H

#include <stddef.h>
#include <string.h>

#include "defs.h"

void *rc_xmalloc_at(size_t n, const char *file, int line);
void *rc_xcalloc_at(size_t n, size_t sz, const char *file, int line);
void *rc_xrealloc_at(void *p, size_t n, const char *file, int line);
char *rc_xstrndup_at(const char *s, size_t n, const char *file, int line);
#define rc_xmalloc(n) rc_xmalloc_at((n), __FILE__, __LINE__)
#define rc_xcalloc(n, sz) rc_xcalloc_at((n), (sz), __FILE__, __LINE__)
#define rc_xrealloc(p, n) rc_xrealloc_at((p), (n), __FILE__, __LINE__)
#define rc_xstrndup(s, n) rc_xstrndup_at((s), (n), __FILE__, __LINE__)
#define rc_xstrdup(s) rc_xstrndup_at((s), strlen(s), __FILE__, __LINE__)

/* May return NULL (real OOM or the test hook). */
RC_WARN_UNUSED void *rc_try_malloc(size_t n);
RC_WARN_UNUSED void *rc_try_realloc(void *p, size_t n);

/* Frees memory from either family. NULL is fine. */
void rc_free(void *p);

void rc_alloc_fail_after(unsigned long n);
long rc_alloc_live(void);

#endif
