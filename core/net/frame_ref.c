#include "frame_ref.h"

#include <pthread.h>
#include <string.h>
#include <sys/uio.h>

#include "alloc.h"
#include "ws_frame.h"

static atomic_long live;

static struct frame_ref *init(struct frame_ref *f, size_t cap, unsigned flags)
{
    atomic_init(&f->refs, 1);
    f->flags = flags;
    f->tag = 0;
    f->len = 0;
    f->cap = cap;
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return f;
}

/* Small frames (a room message, a direct message, a control frame) come in
 * power-of-two classes of 128..1024 bytes and are recycled through a
 * per-thread cache, so a steady publish allocates nothing; the class bounds
 * the waste of a frame held by a history ring or a queue to 2x. The cache
 * belongs to the thread that drops the last reference and is off under
 * sanitizers. frame_ref_cache_flush empties it at thread exit. */
#define SMALL_CLASSES 4
#define SMALL_MIN 128
#define SMALL_CACHE 64
#ifndef RC_SANITIZED
static _Thread_local struct frame_ref *small_cache[SMALL_CLASSES][SMALL_CACHE];
static _Thread_local int small_cached[SMALL_CLASSES];
#endif

/* The class of a block of `cap` bytes, or -1 when it is not small. */
static int size_class(size_t cap)
{
    size_t c = SMALL_MIN;
    for (int k = 0; k < SMALL_CLASSES; k++, c <<= 1)
        if (cap <= c)
            return k;
    return -1;
}

/* Big blocks (a history answer of megabytes, built on the store's reader
 * thread and freed on a worker once sent) come in power-of-two classes from
 * BIG_MIN and are recycled through one small process-wide cache: malloc
 * maps a block this size afresh and unmaps it at free, so each answer cost
 * page faults and zeroing on the thread that filled it and an munmap (with
 * its TLB shootdown) on the worker that freed it. The BIG_CACHE most
 * recently freed blocks of up to BIG_MAX bytes stay cached (64 MiB at
 * worst, after the largest answers); a full cache lets its least recent
 * block go. Off under sanitizers, as the small cache. */
#define BIG_MIN ((size_t)256 << 10)
#define BIG_MAX ((size_t)16 << 20)
#define BIG_CACHE 4
#ifndef RC_SANITIZED
static pthread_mutex_t big_mu = PTHREAD_MUTEX_INITIALIZER;
static struct frame_ref *big_cache[BIG_CACHE];
static int big_cached;
#endif

/* A cached block of exactly `cap` bytes, or NULL. */
static struct frame_ref *big_take(size_t cap)
{
    struct frame_ref *f = NULL;
#ifndef RC_SANITIZED
    pthread_mutex_lock(&big_mu);
    for (int i = big_cached - 1; i >= 0; i--) { /* the most recently kept first */
        if (big_cache[i]->cap == cap) {
            f = big_cache[i];
            memmove(big_cache + i, big_cache + i + 1, (size_t)(big_cached - i - 1) * sizeof(f));
            big_cached--;
            break;
        }
    }
    pthread_mutex_unlock(&big_mu);
#else
    (void)cap;
#endif
    return f;
}

/* Keeps f in the cache; when it is full, the least recently kept block
 * goes (a class no longer asked for must not hold a slot for ever). */
static void big_keep(struct frame_ref *f)
{
#ifndef RC_SANITIZED
    struct frame_ref *old = NULL;
    pthread_mutex_lock(&big_mu);
    if (big_cached == BIG_CACHE) {
        old = big_cache[0];
        memmove(big_cache, big_cache + 1, (BIG_CACHE - 1) * sizeof(big_cache[0]));
        big_cached--;
    }
    big_cache[big_cached++] = f;
    pthread_mutex_unlock(&big_mu);
    if (old != NULL)
        rc_free(old);
#else
    rc_free(f);
#endif
}

static struct frame_ref *alloc_block(size_t cap, unsigned flags, int may_fail)
{
    if (cap >= BIG_MIN && cap <= BIG_MAX && !(flags & FRAME_PRIVATE)) {
        size_t c = BIG_MIN;
        while (c < cap)
            c <<= 1;
        struct frame_ref *f = big_take(c);
        if (f == NULL)
            f = may_fail ? rc_try_malloc(sizeof(struct frame_ref) + c)
                         : rc_xmalloc(sizeof(struct frame_ref) + c);
        return f ? init(f, c, flags | FRAME_BIG) : NULL;
    }
    int k = (flags & FRAME_PRIVATE) ? -1 : size_class(cap);
    if (k >= 0) {
        cap = (size_t)SMALL_MIN << k;
#ifndef RC_SANITIZED
        if (small_cached[k] > 0)
            return init(small_cache[k][--small_cached[k]], cap, flags | FRAME_SMALL);
#endif
        flags |= FRAME_SMALL;
    }
    struct frame_ref *f = may_fail ? rc_try_malloc(sizeof(struct frame_ref) + cap)
                                   : rc_xmalloc(sizeof(struct frame_ref) + cap);
    return f ? init(f, cap, flags) : NULL;
}

struct frame_ref *frame_ref_new(size_t cap, unsigned flags)
{
    return alloc_block(cap, flags, 0);
}

struct frame_ref *frame_ref_try_new(size_t cap, unsigned flags)
{
    return alloc_block(cap, flags, 1);
}

void frame_ref_cache_flush(void)
{
#ifndef RC_SANITIZED
    for (int k = 0; k < SMALL_CLASSES; k++)
        while (small_cached[k] > 0)
            rc_free(small_cache[k][--small_cached[k]]);
#endif
}

struct frame_ref *frame_ref_encodev(unsigned opcode, unsigned rsv, const struct iovec *parts, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += parts[i].iov_len;
    size_t hl = ws_frame_header_size(len, 0);
    unsigned flags = ws_opcode_is_control(opcode) ? FRAME_CONTROL : 0;
    if (opcode == WS_OP_CLOSE)
        flags |= FRAME_CLOSE;
    struct frame_ref *f = frame_ref_try_new(hl + len, flags);
    if (f == NULL)
        return NULL;
    ws_frame_encode_header(f->data, 1, rsv, opcode, len, NULL);
    size_t off = hl;
    for (int i = 0; i < n; i++) {
        if (parts[i].iov_len)
            memcpy(f->data + off, parts[i].iov_base, parts[i].iov_len);
        off += parts[i].iov_len;
    }
    f->len = off;
    return f;
}

struct frame_ref *frame_ref_encode(unsigned opcode, unsigned rsv, const void *payload, size_t len)
{
    struct iovec part = {.iov_base = (void *)(uintptr_t)payload, .iov_len = len};
    return frame_ref_encodev(opcode, rsv, &part, 1);
}

void frame_ref_put(struct frame_ref *f)
{
    /* acq_rel: the freeing thread must see every write made before the other puts. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
        if (f->flags & FRAME_BIG) {
            big_keep(f);
            return;
        }
#ifndef RC_SANITIZED
        if (f->flags & FRAME_SMALL) {
            int k = size_class(f->cap);
            if (small_cached[k] < SMALL_CACHE) {
                small_cache[k][small_cached[k]++] = f;
                return;
            }
        }
#endif
        rc_free(f);
    }
}

long frame_ref_live(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}
