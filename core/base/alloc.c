#include "alloc.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts are only for tests; relaxed atomics keep them cheap and race-free. */
static atomic_long live_blocks;
static atomic_ulong fail_countdown;

static RC_NORETURN void oom(size_t n, const char *file, int line)
{
    rc_panic_at(file, line, "out of memory allocating %zu bytes", n);
}

void rc_panic_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "roomcast: PANIC at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *rc_xmalloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (rc_unlikely(p == NULL))
        oom(n, file, line);
    atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

void *rc_xcalloc_at(size_t n, size_t sz, const char *file, int line)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (rc_unlikely(p == NULL))
        oom(n * sz, file, line);
    atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

void *rc_xrealloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (rc_unlikely(q == NULL))
        oom(n, file, line);
    if (p == NULL)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return q;
}

char *rc_xstrndup_at(const char *s, size_t n, const char *file, int line)
{
    char *d = rc_xmalloc_at(n + 1, file, line);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int should_fail(void)
{
    unsigned long c = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (c == 0)
        return 0;
    if (c == 1) {
        atomic_store_explicit(&fail_countdown, 0, memory_order_relaxed);
        return 1;
    }
    atomic_store_explicit(&fail_countdown, c - 1, memory_order_relaxed);
    return 0;
}

void *rc_try_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

void *rc_try_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = realloc(p, n ? n : 1);
    if (q && p == NULL)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return q;
}

void rc_free(void *p)
{
    if (p == NULL)
        return;
    atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
    free(p);
}

void rc_alloc_fail_after(unsigned long n)
{
    atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

long rc_alloc_live(void)
{
    return atomic_load_explicit(&live_blocks, memory_order_relaxed);
}
