#include "sendq.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "defs.h"
#include "err.h"

/* Per-thread caches of the allocations every busy connection makes again
 * and again: the lanes, the smallest ring and the private chunk. A queue that
 * drains gives them back here instead of to malloc, so steady traffic
 * allocates nothing. Off under sanitizers so they see every use after free
 * (h2o's recycle allocator does the same). Owned by the thread; emptied by
 * sendq_cache_flush when a worker exits. */
#define SMALL_RING 4
#define CACHE_MAX 64
#define RING_CACHE_MAX 1024 /* 32 KiB: one small ring for each of 1k busy connections */
#ifndef RC_SANITIZED
static _Thread_local struct frame_ref **ring_cache[RING_CACHE_MAX];
static _Thread_local int ring_cached;
static _Thread_local struct frame_ref *chunk_cache[CACHE_MAX];
static _Thread_local int chunk_cached;
static _Thread_local struct sendq_lanes *lanes_cache[RING_CACHE_MAX];
static _Thread_local int lanes_cached;
#endif

static struct frame_ref **ring_alloc(uint32_t cap)
{
#ifndef RC_SANITIZED
    if (cap == SMALL_RING && ring_cached > 0)
        return ring_cache[--ring_cached];
#endif
    return rc_xmalloc(sizeof(struct frame_ref *) * cap);
}

static void ring_release(struct frame_ref **r, uint32_t cap)
{
#ifndef RC_SANITIZED
    if (cap == SMALL_RING && ring_cached < RING_CACHE_MAX) {
        ring_cache[ring_cached++] = r;
        return;
    }
#endif
    (void)cap;
    rc_free(r);
}

static struct frame_ref *chunk_alloc(void)
{
#ifndef RC_SANITIZED
    if (chunk_cached > 0) {
        struct frame_ref *t = chunk_cache[--chunk_cached];
        t->len = 0;
        return t;
    }
#endif
    return frame_ref_new(SENDQ_CHUNK, FRAME_PRIVATE);
}

/* Drops the queue's reference to f (a private chunk goes back to the cache). */
static void entry_release(struct frame_ref *f)
{
#ifndef RC_SANITIZED
    if ((f->flags & FRAME_PRIVATE) && f->cap == SENDQ_CHUNK && chunk_cached < CACHE_MAX) {
        chunk_cache[chunk_cached++] = f;
        return;
    }
#endif
    frame_ref_put(f);
}

void sendq_cache_flush(void)
{
#ifndef RC_SANITIZED
    while (ring_cached > 0)
        rc_free(ring_cache[--ring_cached]);
    while (chunk_cached > 0)
        frame_ref_put(chunk_cache[--chunk_cached]);
    while (lanes_cached > 0)
        rc_free(lanes_cache[--lanes_cached]);
#endif
    frame_ref_cache_flush();
}

static void lane_free_ring(struct sendq_lane *l)
{
    if (l->cap > 1)
        ring_release(l->ring, l->cap);
    l->ring = NULL;
    l->cap = l->head = 0;
    l->head_off = 0;
}

static struct frame_ref *lane_at(const struct sendq_lane *l, uint32_t i)
{
    return l->cap == 1 ? l->one : l->ring[(l->head + i) & (l->cap - 1)];
}

static void lane_clear(struct sendq_lane *l)
{
    if (l->cap == 0)
        return;
    for (uint32_t i = 0; i < l->count; i++)
        entry_release(lane_at(l, i));
    lane_free_ring(l);
    l->count = 0;
}

/* The ring capacity is a power of two so positions wrap with a mask. */
static void lane_push(struct sendq_lane *l, struct frame_ref *f)
{
    if (l->cap == 0) {
        l->one = f;
        l->cap = l->count = 1;
        l->head = 0;
        return;
    }
    if (l->count == l->cap) {
        uint32_t ncap = l->cap == 1 ? SMALL_RING : l->cap * 2;
        struct frame_ref **r = ring_alloc(ncap);
        for (uint32_t i = 0; i < l->count; i++)
            r[i] = lane_at(l, i);
        if (l->cap > 1)
            ring_release(l->ring, l->cap);
        l->ring = r;
        l->cap = ncap;
        l->head = 0;
    }
    l->ring[(l->head + l->count) & (l->cap - 1)] = f;
    l->count++;
}

static struct frame_ref *lane_tail(const struct sendq_lane *l)
{
    return l->count ? lane_at(l, l->count - 1) : NULL;
}

/* The lanes of q, allocated on first need; the entry held in q->one moves
 * to the head of the data lane. */
static struct sendq_lanes *lanes_of(struct sendq *q)
{
    if (q->lanes != NULL)
        return q->lanes;
    struct sendq_lanes *ls = NULL;
#ifndef RC_SANITIZED
    if (lanes_cached > 0)
        ls = lanes_cache[--lanes_cached];
#endif
    if (ls == NULL)
        ls = rc_xmalloc(sizeof(*ls));
    memset(ls, 0, sizeof(*ls));
    if (q->one != NULL) {
        lane_push(&ls->data, q->one);
        q->one = NULL;
    }
    q->lanes = ls;
    return ls;
}

static void lanes_release(struct sendq *q)
{
    struct sendq_lanes *ls = q->lanes;
    q->lanes = NULL;
#ifndef RC_SANITIZED
    if (lanes_cached < RING_CACHE_MAX) {
        lanes_cache[lanes_cached++] = ls;
        return;
    }
#endif
    rc_free(ls);
}

void sendq_init(struct sendq *q)
{
    memset(q, 0, sizeof(*q));
}

void sendq_clear(struct sendq *q)
{
    if (q->one != NULL) {
        entry_release(q->one);
        q->one = NULL;
    }
    if (q->lanes != NULL) {
        lane_clear(&q->lanes->data);
        lane_clear(&q->lanes->ctrl);
        lanes_release(q);
    }
    q->bytes = 0;
}

/* Room for n more bytes in the private chunk at the data tail, or NULL. */
static struct frame_ref *private_tail(struct sendq *q, size_t n)
{
    struct sendq_lane *d = &lanes_of(q)->data;
    struct frame_ref *t = lane_tail(d);
    if (t && (t->flags & FRAME_PRIVATE) && t->cap - t->len >= n)
        return t;
    if (n > SENDQ_CHUNK)
        return NULL;
    t = chunk_alloc();
    lane_push(d, t);
    return t;
}

/* The chunk in q->one when it is private with room for n more bytes. */
static struct frame_ref *one_with_room(const struct sendq *q, size_t n)
{
    struct frame_ref *t = q->one;
    return t != NULL && (t->flags & FRAME_PRIVATE) && t->cap - t->len >= n ? t : NULL;
}

void sendq_push_ref(struct sendq *q, struct frame_ref *f)
{
    if (q->bytes == 0 && q->lanes == NULL) {
        /* The fan-out case: an idle member gets the room's frame by reference. */
        q->one = frame_ref_get(f);
        q->bytes = f->len;
        return;
    }
    /* Copied only behind another data frame: alone on the data lane (say
     * behind a pong) a frame keeps its reference and its flags. */
    if (f->len < SENDQ_COPY_MAX && (q->lanes == NULL || q->lanes->data.count > 0)) {
        struct frame_ref *t = q->lanes == NULL ? one_with_room(q, f->len) : NULL;
        if (t == NULL)
            t = private_tail(q, f->len);
        memcpy(t->data + t->len, f->data, f->len);
        t->len += f->len;
    } else {
        lane_push(&lanes_of(q)->data, frame_ref_get(f));
    }
    q->bytes += f->len;
}

/* Copies n bytes, n <= 32, by fixed-size (overlapping) moves that compile to
 * a few loads and stores instead of a call into the C library. */
static RC_ALWAYS_INLINE void copy_small(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n >= 16) {
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n >= 2) {
        memcpy(d, s, 2);
        memcpy(d + n - 2, s + n - 2, 2);
    } else if (n == 1) {
        d[0] = s[0];
    }
}

/* Every case but the common one of sendq_push_copyv (out of line so that the
 * common case has a small prologue). */
static RC_NOINLINE int push_copyv_slow(struct sendq *q, const uint8_t *hdr, size_t hlen,
                                       const struct iovec *parts, int nparts)
{
    /* One longer part that fits a chunk, into an empty queue (a 1 KiB
     * echo): a chunk of its own and one memcpy, without the sums and lane
     * tests below. */
    if (nparts == 1 && q->bytes == 0 && q->lanes == NULL && hlen <= 32 &&
        parts[0].iov_len <= SENDQ_CHUNK - 32) {
        size_t plen = parts[0].iov_len;
        struct frame_ref *t = chunk_alloc(); /* cached, or a new one */
        q->one = t;
        t->len = hlen + plen;
        q->bytes = hlen + plen;
        copy_small(t->data, hdr, hlen);
        if (plen)
            memcpy(t->data + hlen, parts[0].iov_base, plen);
        return 0;
    }
    size_t n = hlen;
    for (int i = 0; i < nparts; i++)
        n += parts[i].iov_len;
    struct frame_ref *t = NULL;
    if (q->lanes == NULL && n <= SENDQ_CHUNK) {
        if (q->bytes == 0) {
            /* An empty queue (a reply to a quiet connection): a chunk of its own. */
            t = chunk_alloc();
            q->one = t;
        } else {
            t = one_with_room(q, n);
        }
    }
    if (t == NULL && n <= SENDQ_CHUNK)
        t = private_tail(q, n);
    if (t == NULL) {
        t = frame_ref_try_new(n, FRAME_PRIVATE);
        if (t == NULL)
            return RC_E_NOMEM;
        lane_push(&lanes_of(q)->data, t);
    }
    uint8_t *p = t->data + t->len;
    memcpy(p, hdr, hlen);
    p += hlen;
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len)
            memcpy(p, parts[i].iov_base, parts[i].iov_len);
        p += parts[i].iov_len;
    }
    t->len += n;
    q->bytes += n;
    return 0;
}

/* A cached chunk, or NULL when the cache is empty (always under sanitizers,
 * which see each chunk as its own allocation). */
static inline struct frame_ref *chunk_take_cached(void)
{
#ifndef RC_SANITIZED
    if (chunk_cached > 0)
        return chunk_cache[--chunk_cached];
#endif
    return NULL;
}

/* Copies n bytes, n <= 128, by 16-byte moves (the last one overlapping),
 * or copy_small below 16: no call into the C library. */
static inline void copy_short(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n < 16) {
        copy_small(d, s, n);
        return;
    }
    for (size_t i = 0; i + 16 < n; i += 16)
        memcpy(d + i, s + i, 16);
    memcpy(d + n - 16, s + n - 16, 16);
}

int sendq_push_copyv(struct sendq *q, const uint8_t *hdr, size_t hlen, const struct iovec *parts,
                     int nparts)
{
    /* The common case: one short part into an empty queue (a reply to a
     * quiet connection), into a cached chunk of its own. Nothing here calls
     * out, so it needs no stack frame; every other case (a longer part, an
     * empty cache) goes to push_copyv_slow. */
    struct frame_ref *t;
    if (nparts == 1 && q->bytes == 0 && q->lanes == NULL && parts[0].iov_len <= 128 && hlen <= 32 &&
        (t = chunk_take_cached()) != NULL) {
        size_t plen = parts[0].iov_len;
        q->one = t;
        if (hlen == 2) /* a header for up to 125 bytes: one move, not copy_small's tests */
            memcpy(t->data, hdr, 2);
        else
            copy_small(t->data, hdr, hlen);
        copy_short(t->data + hlen, parts[0].iov_base, plen);
        t->len = hlen + plen;
        q->bytes = hlen + plen;
        return 0;
    }
    return push_copyv_slow(q, hdr, hlen, parts, nparts);
}

int sendq_push_copy(struct sendq *q, const uint8_t *hdr, size_t hlen, const uint8_t *payload,
                    size_t plen)
{
    struct iovec part = {.iov_base = (void *)(uintptr_t)payload, .iov_len = plen};
    return sendq_push_copyv(q, hdr, hlen, &part, 1);
}

void sendq_push_ctrl(struct sendq *q, struct frame_ref *f)
{
    lane_push(&lanes_of(q)->ctrl, frame_ref_get(f));
    q->bytes += f->len;
}

static int lane_iov(const struct sendq_lane *l, uint32_t from, struct iovec *iov, int n, int max)
{
    for (uint32_t i = from; i < l->count && n < max; i++) {
        struct frame_ref *f = lane_at(l, i);
        size_t off = i == 0 ? l->head_off : 0;
        iov[n].iov_base = f->data + off;
        iov[n].iov_len = f->len - off;
        n++;
    }
    return n;
}

int sendq_iov(const struct sendq *q, struct iovec *iov, int max)
{
    if (q->lanes == NULL) {
        /* The common case: one frame (or one chunk), not started. */
        if (q->one == NULL || max < 1)
            return 0;
        iov[0].iov_base = q->one->data;
        iov[0].iov_len = q->one->len;
        return 1;
    }
    const struct sendq_lanes *ls = q->lanes;
    int n = 0;
    uint32_t data_from = 0;
    if (ls->data.head_off > 0) {
        n = lane_iov(&ls->data, 0, iov, n, max < 1 ? 0 : 1);
        data_from = 1;
    }
    n = lane_iov(&ls->ctrl, 0, iov, n, max);
    return lane_iov(&ls->data, data_from, iov, n, max);
}

/* Consumes up to *n bytes from the front of one lane's head entry.
 * Returns 1 if the entry was completed (and popped). */
static int lane_consume_head(struct sendq_lane *l, size_t *n)
{
    struct frame_ref *f = lane_at(l, 0);
    size_t left = f->len - l->head_off;
    if (*n < left) {
        l->head_off += *n;
        *n = 0;
        return 0;
    }
    *n -= left;
    entry_release(f);
    l->head = (l->head + 1) & (l->cap - 1);
    l->head_off = 0;
    if (--l->count == 0)
        lane_free_ring(l);
    return 1;
}

void sendq_single_done(struct sendq *q)
{
    struct frame_ref *f = q->one;
    q->one = NULL;
    q->bytes = 0;
    entry_release(f);
}

/* Same order as sendq_iov: a partly written data head, then control, then data. */
void sendq_consume(struct sendq *q, size_t n)
{
    if (n == 0)
        return;
    q->bytes -= n;
    if (q->bytes == 0) {
        /* Everything went out: release it all without walking positions. */
        sendq_clear(q);
        return;
    }
    /* Part of the one entry went out: it needs an offset, so the lanes. */
    struct sendq_lanes *ls = lanes_of(q);
    if (ls->data.head_off > 0 && !lane_consume_head(&ls->data, &n))
        return;
    while (n > 0 && ls->ctrl.count > 0)
        if (!lane_consume_head(&ls->ctrl, &n))
            return;
    while (n > 0 && ls->data.count > 0)
        if (!lane_consume_head(&ls->data, &n))
            return;
}

void sendq_push_ref_nocopy(struct sendq *q, struct frame_ref *f)
{
    if (q->bytes == 0 && q->lanes == NULL)
        q->one = frame_ref_get(f);
    else
        lane_push(&lanes_of(q)->data, frame_ref_get(f));
    q->bytes += f->len;
}

int sendq_push_ref_from(struct sendq *q, struct frame_ref *f, size_t from)
{
    RC_ASSERT(from < f->len);
    if (q->lanes == NULL ? q->one != NULL : q->lanes->data.count > 0)
        return -EAGAIN;
    struct sendq_lane *d = &lanes_of(q)->data;
    lane_push(d, frame_ref_get(f));
    d->head_off = from;
    q->bytes += f->len - from;
    return 0;
}

size_t sendq_drop_pending(struct sendq *q, uint64_t tag, size_t *bytes)
{
    if (q->bytes == 0) {
        if (bytes)
            *bytes = 0;
        return 0;
    }
    struct sendq_lane *l = &lanes_of(q)->data;
    size_t dropped = 0, nbytes = 0;
    uint32_t keep = 0;
    uint32_t first = l->head_off > 0 ? 1 : 0;
    /* Compact the ring in place: entries [0, first) always stay. */
    for (uint32_t i = 0; i < l->count; i++) {
        struct frame_ref *f = lane_at(l, i);
        int drop = i >= first && (tag == 0 || (f->tag == tag && !(f->flags & FRAME_PRIVATE))) &&
                   !(f->flags & FRAME_CLOSE);
        if (drop) {
            nbytes += f->len;
            dropped++;
            entry_release(f);
        } else {
            if (l->cap == 1)
                l->one = f;
            else
                l->ring[(l->head + keep) & (l->cap - 1)] = f;
            keep++;
        }
    }
    l->count = keep;
    q->bytes -= nbytes;
    if (l->count == 0)
        lane_free_ring(l);
    if (q->bytes == 0)
        sendq_clear(q); /* nothing left: give the lanes back */
    if (bytes)
        *bytes = nbytes;
    return dropped;
}
