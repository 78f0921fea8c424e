#include "frame_ref.h"

#include <string.h>

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

struct frame_ref *frame_ref_new(size_t cap, unsigned flags)
{
    return init(rc_xmalloc(sizeof(struct frame_ref) + cap), cap, flags);
}

struct frame_ref *frame_ref_try_new(size_t cap, unsigned flags)
{
    struct frame_ref *f = rc_try_malloc(sizeof(struct frame_ref) + cap);
    return f ? init(f, cap, flags) : NULL;
}

struct frame_ref *frame_ref_encode(unsigned opcode, unsigned rsv, const void *payload, size_t len)
{
    size_t hl = ws_frame_header_size(len, 0);
    unsigned flags = ws_opcode_is_control(opcode) ? FRAME_CONTROL : 0;
    if (opcode == WS_OP_CLOSE)
        flags |= FRAME_CLOSE;
    struct frame_ref *f = frame_ref_try_new(hl + len, flags);
    if (f == NULL)
        return NULL;
    ws_frame_encode_header(f->data, 1, rsv, opcode, len, NULL);
    if (len)
        memcpy(f->data + hl, payload, len);
    f->len = hl + len;
    return f;
}

void frame_ref_put(struct frame_ref *f)
{
    /* acq_rel: the freeing thread must see every write made before the other puts. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
        rc_free(f);
    }
}

long frame_ref_live(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}
