/* defs.h - tiny portable helpers shared by every layer.
 *
 * Header-only. No dependencies beyond the C library.
 */
#ifndef RC_BASE_DEFS_H
#define RC_BASE_DEFS_H

#include <stddef.h>
#include <stdint.h>

#define rc_likely(x) __builtin_expect(!!(x), 1)
#define rc_unlikely(x) __builtin_expect(!!(x), 0)
/* A rarely called function kept out of line, so the hot caller needs no
 * prologue or registers for it (GCC and Clang). */
#define RC_COLD_FN __attribute__((cold, noinline))
/* A less common path kept out of line so its prologue stays out of the caller. */
#define RC_NOINLINE __attribute__((noinline))

#define RC_UNUSED(x) ((void)(x))
#define RC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* container_of: the struct that holds `ptr` as its member `member`. */
#define rc_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define RC_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

/* The value of one hex digit, or -1 (percent-decoding in URLs and paths). */
static inline int rc_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#if defined(__GNUC__)
#define RC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define RC_NORETURN __attribute__((noreturn))
#define RC_WARN_UNUSED __attribute__((warn_unused_result))
#define RC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RC_PRINTF(fmt, args)
#define RC_NORETURN
#define RC_WARN_UNUSED
#define RC_ALWAYS_INLINE inline
#endif

/* Always-on cheap assertion (Redis serverAssert): a broken invariant is fatal. */
RC_NORETURN void rc_panic_at(const char *file, int line, const char *fmt, ...) RC_PRINTF(3, 4);
#define rc_panic(...) rc_panic_at(__FILE__, __LINE__, __VA_ARGS__)
#define RC_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (rc_unlikely(!(cond)))                                                                  \
            rc_panic_at(__FILE__, __LINE__, "assertion failed: %s", #cond);                        \
    } while (0)
#ifdef RC_DEBUG_BUILD
#define RC_DASSERT(cond) RC_ASSERT(cond)
#else
#define RC_DASSERT(cond) ((void)0)
#endif

#endif
