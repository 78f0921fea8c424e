#include "pmd.h"

#include <string.h>
#include <zlib.h>

#include "alloc.h"
#include "defs.h"
#include "err.h"

/* RFC 7692 §7.2.1: a message compressed with a sync flush ends with these
 * four bytes, which the sender removes and the receiver puts back (§7.2.2). */
static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* zlib's allocations go through alloc.h (so tests can count and fail them)
 * with a size prefix, so the pool knows what its streams hold. */
struct zhdr {
    size_t n;
    size_t pad; /* keeps the block 16-byte aligned */
};

static size_t *zbytes_of(void *opaque)
{
    return opaque;
}

static voidpf zalloc_fn(voidpf opaque, uInt items, uInt size)
{
    size_t n = (size_t)items * size;
    struct zhdr *h = rc_try_malloc(sizeof(*h) + n);
    if (h == NULL)
        return Z_NULL;
    h->n = n;
    *zbytes_of(opaque) += n;
    return h + 1;
}

static void zfree_fn(voidpf opaque, voidpf p)
{
    if (p == NULL)
        return;
    struct zhdr *h = (struct zhdr *)p - 1;
    *zbytes_of(opaque) -= h->n;
    rc_free(h);
}

void pmd_pool_init(struct pmd_pool *p, int level, int mem_level)
{
    memset(p, 0, sizeof(*p));
    p->level = level;
    p->mem_level = mem_level;
}

static void stream_free(struct z_stream_s *s, int deflating)
{
    if (s == NULL)
        return;
    if (deflating)
        deflateEnd(s);
    else
        inflateEnd(s);
    rc_free(s);
}

void pmd_pool_destroy(struct pmd_pool *p)
{
    stream_free(p->inf, 0);
    p->inf = NULL;
    for (int i = 0; i < 16; i++) {
        stream_free(p->def[i], 1);
        p->def[i] = NULL;
    }
    rc_free(p->scratch);
    p->scratch = NULL;
    p->scratch_cap = 0;
}

size_t pmd_pool_bytes(const struct pmd_pool *p)
{
    return p->zbytes + p->scratch_cap;
}

/* A zeroed stream whose allocations are counted in the pool (not yet
 * initialised: the caller runs inflateInit2 or deflateInit2). */
static z_stream *stream_new(struct pmd_pool *p)
{
    z_stream *s = rc_try_malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->zalloc = zalloc_fn;
    s->zfree = zfree_fn;
    s->opaque = &p->zbytes;
    return s;
}

static struct z_stream_s *inflater(struct pmd_pool *p)
{
    if (p->inf)
        return p->inf;
    z_stream *s = stream_new(p);
    if (s == NULL)
        return NULL;
    /* Raw deflate (negative bits), and the largest window: a stream made
     * with any smaller client window (8..15) inflates with it. */
    if (inflateInit2(s, -15) != Z_OK) {
        rc_free(s);
        return NULL;
    }
    p->inf = s;
    return s;
}

/* Grows *buf to hold at least `need` bytes, geometrically, never past `max`. */
static int grow(uint8_t **buf, size_t *cap, size_t need, size_t max)
{
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    if (c > max)
        c = max;
    uint8_t *nb = rc_try_realloc(*buf, c ? c : 1);
    if (nb == NULL)
        return RC_E_NOMEM;
    *buf = nb;
    *cap = c;
    return 0;
}

ssize_t pmd_inflate(struct pmd_pool *p, const uint8_t *in, size_t n, size_t max, uint8_t **out)
{
    *out = NULL;
    p->uses++;
    z_stream *s = inflater(p);
    if (s == NULL)
        return RC_E_NOMEM;
    /* No context takeover (ws_ext.h): every message starts a fresh window. */
    inflateReset(s);
    size_t limit = max + 1; /* one byte over the cap proves the message too big */
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    size_t first = n < 64 ? 256 : n * 4;
    if (grow(&buf, &cap, first < limit ? first : limit, limit) < 0)
        return RC_E_NOMEM;
    int phase = 0; /* 0: the payload, 1: the sync tail */
    s->next_in = (Bytef *)(uintptr_t)in;
    s->avail_in = 0;
    size_t in_left = n;
    ssize_t rc = 0;
    for (;;) {
        if (s->avail_in == 0) {
            if (in_left > 0) {
                /* avail_in is 32 bits wide: feed huge inputs in slices. */
                uInt take = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
                s->avail_in = take;
                in_left -= take;
            } else if (phase == 0) {
                phase = 1;
                s->next_in = (Bytef *)(uintptr_t)sync_tail;
                s->avail_in = sizeof(sync_tail);
            }
        }
        if (len == cap) {
            if (cap >= limit) {
                rc = RC_E_TOO_BIG;
                break;
            }
            if (grow(&buf, &cap, cap + 1, limit) < 0) {
                rc = RC_E_NOMEM;
                break;
            }
        }
        size_t room = cap - len;
        s->next_out = buf + len;
        s->avail_out = room > 0x40000000u ? 0x40000000u : (uInt)room;
        uInt before_out = s->avail_out;
        int z = inflate(s, Z_SYNC_FLUSH);
        len += before_out - s->avail_out;
        if (len > max) {
            rc = RC_E_TOO_BIG; /* stop here: the rest is never inflated */
            break;
        }
        if (z == Z_STREAM_END) {
            /* A final block (BFINAL) ends the message; nothing may follow it
             * but the sync tail we appended ourselves. */
            if (phase == 0 && (s->avail_in > 0 || in_left > 0))
                rc = RC_E_DATA;
            break;
        }
        if (z == Z_MEM_ERROR) {
            rc = RC_E_NOMEM;
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = RC_E_DATA; /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            break;
        }
        /* inflate stops only when its input is used up or its output is
         * full: with output room left, everything given was consumed. */
        if (s->avail_out > 0) {
            if (s->avail_in > 0) {
                rc = RC_E_DATA; /* no progress possible: cannot happen; never loop */
                break;
            }
            if (phase == 1 && in_left == 0)
                break; /* the tail went in and all output is out */
        }
    }
    if (rc == 0 && len > max)
        rc = RC_E_TOO_BIG;
    if (rc < 0) {
        rc_free(buf);
        return rc;
    }
    *out = buf;
    return (ssize_t)len;
}

static struct z_stream_s *deflater(struct pmd_pool *p, unsigned bits)
{
    if (bits < 9)
        bits = 9; /* zlib's raw deflate has no 8-bit window */
    if (bits > 15)
        bits = 15;
    if (p->def[bits])
        return p->def[bits];
    z_stream *s = stream_new(p);
    if (s == NULL)
        return NULL;
    if (deflateInit2(s, p->level, Z_DEFLATED, -(int)bits, p->mem_level, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        rc_free(s);
        return NULL;
    }
    p->def[bits] = s;
    return s;
}

ssize_t pmd_deflate(struct pmd_pool *p, unsigned window_bits, const void *in, size_t n,
                    const uint8_t **out)
{
    p->uses++;
    z_stream *s = deflater(p, window_bits);
    if (s == NULL)
        return RC_E_NOMEM;
    deflateReset(s); /* a fresh window: server_no_context_takeover */
    /* deflateBound covers Z_FINISH; a sync flush adds an empty stored block
     * (5 bytes) and each 64 KiB input slice may add a few more. */
    size_t need = deflateBound(s, n > 0xffffffffu ? 0xffffffffu : (uLong)n) + 16 + n / 8192;
    if (p->scratch_cap < need) {
        uint8_t *nb = rc_try_realloc(p->scratch, need);
        if (nb == NULL)
            return RC_E_NOMEM;
        p->scratch = nb;
        p->scratch_cap = need;
    }
    const uint8_t *src = in;
    size_t left = n, len = 0;
    s->next_in = (Bytef *)(uintptr_t)src;
    s->avail_in = 0;
    for (;;) {
        if (s->avail_in == 0 && left > 0) {
            uInt take = left > 0x40000000u ? 0x40000000u : (uInt)left;
            s->avail_in = take;
            left -= take;
        }
        if (p->scratch_cap - len < 64) {
            size_t nc = p->scratch_cap * 2;
            uint8_t *nb = rc_try_realloc(p->scratch, nc);
            if (nb == NULL)
                return RC_E_NOMEM;
            p->scratch = nb;
            p->scratch_cap = nc;
        }
        size_t room = p->scratch_cap - len;
        s->next_out = p->scratch + len;
        s->avail_out = room > 0x40000000u ? 0x40000000u : (uInt)room;
        uInt before = s->avail_out;
        int z = deflate(s, left > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
        len += before - s->avail_out;
        if (z != Z_OK && z != Z_BUF_ERROR)
            return RC_E_NOMEM; /* Z_STREAM_ERROR: cannot happen with a valid stream */
        /* Done when all input went in and the flush fitted (room was left). */
        if (left == 0 && s->avail_in == 0 && s->avail_out > 0)
            break;
    }
    /* §7.2.1: drop the 00 00 ff ff the sync flush ended with. */
    RC_ASSERT(len >= 4 && memcmp(p->scratch + len - 4, sync_tail, 4) == 0);
    *out = p->scratch;
    return (ssize_t)(len - 4);
}

int pmd_pool_trim_idle(struct pmd_pool *p)
{
    int idle = p->uses == p->uses_seen;
    p->uses_seen = p->uses;
    if (!idle || pmd_pool_bytes(p) == 0)
        return 0;
    pmd_pool_destroy(p);
    return 1;
}

void pmd_trim(struct pmd_pool *p)
{
    if (p->scratch_cap > PMD_SCRATCH_KEEP) {
        rc_free(p->scratch);
        p->scratch = NULL;
        p->scratch_cap = 0;
    }
}
