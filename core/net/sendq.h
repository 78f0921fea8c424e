/* sendq.h - a connection's outgoing queue of frames, gathered into writev.
 *
 * Two lanes (wslay's split): control frames (pong, close, ping) and data
 * frames. A lane is a ring of frame_ref pointers, each entry owning one
 * reference. Control frames may go out between data frames but never in the
 * middle of one: if the data head is partly written it is finished first.
 *
 *   writev order:  [data head, if partly written] ctrl[0..] data[rest..]
 *
 *   data ring:  head -> [f1 off=137][f2][chunk(private, small frames copied)] <- tail
 *
 * A frame queued on an empty data lane is queued by reference (one atomic
 * increment, no copy, no chunk: a fan-out to 10k members must not allocate
 * 10k chunks). Small frames queued behind others are copied into a private
 * chunk at the tail of the data lane (one iovec for many messages, no
 * refcount traffic); frames at least SENDQ_COPY_MAX bytes always go by
 * reference. An empty queue holds no memory: rings and chunks are released
 * as soon as they drain.
 *
 * Single-threaded: a sendq belongs to one connection on one worker.
 */
#ifndef RC_NET_SENDQ_H
#define RC_NET_SENDQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "frame_ref.h"

/* Frames shorter than this are copied into the private chunk; longer ones are
 * shared by reference. Measured in tests/bench (see RESULTS.md). */
#ifndef SENDQ_COPY_MAX
#define SENDQ_COPY_MAX 1024
#endif
#define SENDQ_CHUNK 4096
#define SENDQ_MAX_IOV 64
_Static_assert(SENDQ_COPY_MAX <= SENDQ_CHUNK, "a copied frame must fit in one private chunk");

/* A lane of capacity 1 keeps its one entry in `one` and allocates nothing;
 * from the second entry on it is a ring of power-of-two capacity. */
struct sendq_lane {
    union {
        struct frame_ref **ring; /* cap > 1: owned */
        struct frame_ref *one;   /* cap == 1 */
    };
    uint32_t head, count, cap; /* cap 0: empty, nothing held */
    size_t head_off;           /* bytes of the head entry already written */
};

/* The two lanes, allocated (from a per-thread cache) only while a queue holds
 * more than one entry, a control frame, or a partly written frame. */
struct sendq_lanes {
    struct sendq_lane data;
    struct sendq_lane ctrl;
};

/* Every connection has one, so an idle or lightly used queue is three words:
 *
 *   empty:            bytes 0, one NULL,  lanes NULL
 *   one entry:        bytes n, one -> f,  lanes NULL   (f not started; a frame
 *                                                       or a private chunk)
 *   anything else:    bytes n, one NULL,  lanes -> { data, ctrl }
 *
 * The usual cases (a fan-out frame by reference, a reply copied into a chunk,
 * written whole in the same iteration) stay in the first two states. */
struct sendq {
    size_t bytes;              /* bytes queued and not yet written, both lanes */
    struct frame_ref *one;     /* the only entry while lanes is NULL (one reference) */
    struct sendq_lanes *lanes; /* owned; NULL until needed, released when the queue drains */
};

void sendq_init(struct sendq *q);
/* Frees the calling thread's caches of rings, chunks and small frames (at
 * thread exit). */
void sendq_cache_flush(void);
/* Drops every queued reference and frees the rings. */
void sendq_clear(struct sendq *q);

static inline int sendq_empty(const struct sendq *q)
{
    return q->bytes == 0;
}

/* The queue's only entry while it holds exactly one frame (or chunk), not
 * started and with no lanes: bytes == its len. NULL otherwise. */
static inline struct frame_ref *sendq_single(const struct sendq *q)
{
    return q->lanes == NULL ? q->one : NULL;
}

/* Queues one reference to f as the only entry of an empty queue (no lanes),
 * inline: the fan-out case, as sendq_push_ref and sendq_push_ref_nocopy do
 * it. Returns 1, or 0 when the queue was not empty (nothing was queued). */
static inline int sendq_push_first(struct sendq *q, struct frame_ref *f)
{
    if (q->bytes != 0 || q->lanes != NULL)
        return 0;
    q->one = frame_ref_get(f);
    q->bytes = f->len;
    return 1;
}

/* Drops the single entry (sendq_single) after it was written whole; the
 * queue is then empty. The same as sendq_consume(q, q->bytes), shorter. */
void sendq_single_done(struct sendq *q);

/* Queues one reference to f (taken here; the caller keeps its own) on the
 * data lane, or copies it into the private chunk when it is small and other
 * frames are already queued. */
void sendq_push_ref(struct sendq *q, struct frame_ref *f);

/* Queues one reference to f on the data lane, never copying (so the entry
 * can later be found by its tag). */
void sendq_push_ref_nocopy(struct sendq *q, struct frame_ref *f);

/* Queues one reference to f on an EMPTY data lane, with its first `from`
 * bytes counted as already written: the frame is f->data[from, f->len) (a
 * frame built in place behind headroom of unknown size, sent without moving
 * it to the block's start). It then is a partly written frame: control
 * frames wait behind it and sendq_drop_pending keeps it. Returns 0, or
 * -EAGAIN when data frames are queued (nothing was queued). */
int sendq_push_ref_from(struct sendq *q, struct frame_ref *f, size_t from);

/* Drops queued data frames that have not started to go out: all of them
 * (tag 0) or the shared frames whose tag equals `tag`. A partly written
 * frame is kept. Returns the number of frames dropped; *bytes gets their size. */
size_t sendq_drop_pending(struct sendq *q, uint64_t tag, size_t *bytes);

/* Queues a frame made of hdr[0..hlen) + payload[0..plen) on the data lane,
 * copying the bytes. Returns 0, or RC_E_NOMEM when a large frame's block
 * cannot be allocated. */
/* Like sendq_push_copy with the payload in n parts, copied in order into the
 * one frame (a reply assembled from pieces without joining them first). */
int sendq_push_copyv(struct sendq *q, const uint8_t *hdr, size_t hlen, const struct iovec *parts,
                     int n);
int sendq_push_copy(struct sendq *q, const uint8_t *hdr, size_t hlen, const uint8_t *payload,
                    size_t plen);

/* Queues a control frame (already encoded, refs taken here) on the control lane. */
void sendq_push_ctrl(struct sendq *q, struct frame_ref *f);

/* Fills iov with up to max segments in wire order. Returns the count. */
int sendq_iov(const struct sendq *q, struct iovec *iov, int max);

/* Marks n bytes as written (n <= bytes in the segments sendq_iov returned),
 * dropping references of frames written completely. */
void sendq_consume(struct sendq *q, size_t n);

#endif
