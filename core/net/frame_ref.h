/* frame_ref.h - refcounted, immutable encoded frames shared across members.
 *
 * A room message is encoded ONCE (server frames are unmasked, so every
 * recipient gets the same bytes) into one block holding header and payload:
 *
 *   +--------------------+-----------+--------------------------+
 *   | refs | len | cap   | flags     | data[0..len): hdr|payload |
 *   +--------------------+-----------+--------------------------+
 *
 * Lifetime: frame_ref_new returns refs = 1, owned by the caller. Each send
 * queue entry owns one reference (frame_ref_get when queued) and drops it
 * with frame_ref_put after the frame's last byte was written. The block is
 * freed by whichever put brings refs to 0, on any thread (atomic refcount).
 * After the first share the bytes are never modified.
 *
 * A frame_ref with FRAME_PRIVATE is a connection's own output chunk: small
 * frames are copied into it (cheaper than one iovec and one atomic per
 * message); only its owner appends, and only while refs == 1.
 */
#ifndef RC_NET_FRAME_REF_H
#define RC_NET_FRAME_REF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define FRAME_PRIVATE 0x1u
#define FRAME_CONTROL 0x2u /* close/ping/pong: never dropped by slow-consumer policy */
#define FRAME_CLOSE 0x4u
#define FRAME_SMALL 0x8u /* a recycled size-class block (frame_ref.c) */
#define FRAME_BIG 0x10u  /* a recycled block of 256 KiB..16 MiB (frame_ref.c) */

struct frame_ref {
    atomic_uint refs;
    uint32_t flags;
    uint64_t tag; /* the room a shared frame belongs to (hash), 0 for none */
    size_t len;   /* bytes used in data */
    size_t cap;   /* bytes allocated for data */
    uint8_t data[];
};

/* Allocates a block for `cap` bytes (len = 0, refs = 1). Aborts on OOM. */
struct frame_ref *frame_ref_new(size_t cap, unsigned flags);

/* Like frame_ref_new but returns NULL on failure (for sizes the peer controls). */
struct frame_ref *frame_ref_try_new(size_t cap, unsigned flags);

/* Encodes one complete unmasked server frame (FIN set). Returns NULL only on
 * allocation failure. refs = 1, owned by the caller. */
struct frame_ref *frame_ref_encode(unsigned opcode, unsigned rsv, const void *payload, size_t len);
/* The same with the payload in n parts (struct iovec, sys/uio.h), joined in order. */
struct frame_ref *frame_ref_encodev(unsigned opcode, unsigned rsv, const struct iovec *parts,
                                    int n);

static inline struct frame_ref *frame_ref_get(struct frame_ref *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

/* Drops one reference; frees the block when it was the last one. */
void frame_ref_put(struct frame_ref *f);

/* Frees the calling thread's cache of small blocks (at thread exit). */
void frame_ref_cache_flush(void);

/* Live frame_ref blocks in the process (for leak checks in tests). */
long frame_ref_live(void);

#endif
