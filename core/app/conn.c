#include "conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "closecode.h"
#include "deflate.h"
#include "err.h"
#include "log.h"
#include "static.h"
#include "tick.h"

#define HEAD_INITIAL 1024
/* Reads per readable event, so one fast sender cannot starve the others. */
#define READS_PER_EVENT 4

static struct rc_ratelimit io_rl;

/* An incomplete request head (c->head, before the upgrade). */
struct conn_head {
    uint32_t len, cap; /* bytes in buf, and its size */
    char buf[];
};

static void on_io(struct wio *io, unsigned revents);

/* ------------------------------------------------------------------------
 * watcher management: the io watcher is restarted only when the wanted
 * events change (read paused, write blocked), never per message.
 * ------------------------------------------------------------------------ */

/* Inline: it runs after every flush and every readable event, and almost
 * always finds nothing to change; epoll_ctl (wio_set_slow) only when the
 * mask changes. */
static inline void update_events(struct conn *c)
{
    unsigned want = (c->read_paused || c->reads_held ? 0 : WL_READ) |
                    (c->write_blocked ? WL_WRITE : 0) | (unsigned)transport_want_events(&c->t);
    if (want != c->io.events)
        wio_set_slow(c->cs->loop, &c->io, want);
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int conn_peer_addr(const struct conn *c, uint8_t addr[16])
{
    switch (c->peer_kind) {
    case PEER_V4:
        memcpy(addr, &c->peer4, 4);
        return AF_INET;
    case PEER_V4MAPPED:
        memcpy(addr, v4mapped_prefix, 12);
        memcpy(addr + 12, &c->peer4, 4);
        return AF_INET6;
    case PEER_V6:
        memcpy(addr, c->cold->peer6, 16);
        return AF_INET6;
    default:
        return 0;
    }
}

const char *conn_peer_str(const struct conn *c, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    uint8_t addr[16];
    int family = conn_peer_addr(c, addr);
    if (family != 0)
        inet_ntop(family, addr, ip, sizeof(ip));
    if (family == AF_INET6)
        snprintf(buf, cap, "[%s]:%u", ip, c->peer_port);
    else
        snprintf(buf, cap, "%s:%u", ip, c->peer_port);
    return buf;
}

/* Keeps the peer in 4 bytes of c unless it is a real IPv6 address (then in
 * the cold part, allocated for it: most clients are IPv4). */
static void set_peer(struct conn *c, const struct sockaddr_storage *peer)
{
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)peer;
        memcpy(&c->peer4, &s4->sin_addr, 4);
        c->peer_port = ntohs(s4->sin_port);
        c->peer_kind = PEER_V4;
    } else if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)peer;
        const uint8_t *a = s6->sin6_addr.s6_addr;
        c->peer_port = ntohs(s6->sin6_port);
        if (memcmp(a, v4mapped_prefix, 12) == 0) {
            memcpy(&c->peer4, a + 12, 4);
            c->peer_kind = PEER_V4MAPPED;
        } else {
            memcpy(conn_cold(c)->peer6, a, 16);
            c->peer_kind = PEER_V6;
        }
    }
}

/* ------------------------------------------------------------------------
 * connection memory: a slab per worker
 *
 * struct conn is most of an idle connection's memory (issue 14), and malloc
 * adds a header and rounds each one up to 16 bytes. Connections come from
 * aligned blocks of slots instead; a slot's block is found by masking its
 * address, so a slot carries nothing extra:
 *
 *   cs->conn_blocks --> [block: link | free -> slot -> slot | used | fresh | slot 0 .. N-1]
 *   (only blocks with a free slot)        (freed slots, linked through their first word)
 *
 * Slots past `fresh` were never handed out (their pages stay untouched). A
 * block whose last slot is freed goes back to the system unless it is the
 * only one with free slots. Under sanitizers every conn is its own
 * allocation, so use after free is seen. Owner thread only.
 * ------------------------------------------------------------------------ */

#define CONN_BLOCK_SIZE (64 * 1024)

#if UINTPTR_MAX == UINT64_MAX
/* Issue 14: each byte here is paid by every idle connection (tests/bench/
 * RESULTS.md, "Cold state out of struct conn"). Move what an idle
 * connection does not use into struct conn_cold rather than grow this. */
_Static_assert(sizeof(struct conn) <= 208, "struct conn grew");
#endif

struct conn_block {
    struct rc_list link; /* on cs->conn_blocks while a slot is free */
    struct conn *free;   /* freed slots */
    uint32_t used;       /* slots handed out and not freed */
    uint32_t fresh;      /* slots from here on were never handed out */
    struct conn slot[];
};

#define CONN_BLOCK_SLOTS                                                                           \
    ((uint32_t)((CONN_BLOCK_SIZE - sizeof(struct conn_block)) / sizeof(struct conn)))

#ifndef RC_SANITIZED
static int block_full(const struct conn_block *b)
{
    return b->free == NULL && b->fresh == CONN_BLOCK_SLOTS;
}

/* A block aligned to its size, straight from the kernel: only the pages
 * of slots handed out become resident (posix_memalign from the heap
 * touched a page or two of the split-off gaps per block: +60 B per
 * connection at 10 000). */
static struct conn_block *block_map(void)
{
    size_t span = 2 * (size_t)CONN_BLOCK_SIZE;
    uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        rc_panic("out of memory: a block of connections");
    uintptr_t a = ((uintptr_t)p + CONN_BLOCK_SIZE - 1) & ~(uintptr_t)(CONN_BLOCK_SIZE - 1);
    uint8_t *start = (uint8_t *)a, *end = start + CONN_BLOCK_SIZE;
    if (start > p)
        munmap(p, (size_t)(start - p));
    if (p + span > end)
        munmap(end, (size_t)(p + span - end));
    return (struct conn_block *)start;
}
#endif

static struct conn *conn_slot_alloc(struct connset *cs)
{
#ifdef RC_SANITIZED
    return rc_xcalloc(1, sizeof(struct conn));
#else
    struct conn_block *b;
    if (rc_list_empty(&cs->conn_blocks)) {
        b = block_map();
        b->free = NULL;
        b->used = b->fresh = 0;
        rc_list_push_back(&cs->conn_blocks, &b->link);
    } else {
        b = rc_list_first(&cs->conn_blocks, struct conn_block, link);
    }
    struct conn *c = b->free;
    if (c != NULL)
        memcpy(&b->free, c, sizeof(b->free));
    else
        c = &b->slot[b->fresh++];
    b->used++;
    if (block_full(b))
        rc_list_remove(&b->link);
    memset(c, 0, sizeof(*c));
    return c;
#endif
}

static void conn_slot_free(struct connset *cs, struct conn *c)
{
#ifdef RC_SANITIZED
    (void)cs;
    rc_free(c);
#else
    struct conn_block *b = (struct conn_block *)((uintptr_t)c & ~(uintptr_t)(CONN_BLOCK_SIZE - 1));
    int was_full = block_full(b);
    memcpy(c, &b->free, sizeof(b->free));
    b->free = c;
    b->used--;
    if (was_full)
        rc_list_push_front(&cs->conn_blocks, &b->link);
    if (b->used == 0 && cs->conn_blocks.next != cs->conn_blocks.prev) {
        rc_list_remove(&b->link); /* empty, and not the only block with room */
        munmap(b, CONN_BLOCK_SIZE);
    }
#endif
}

/* Frees the slab's blocks (conn_release_all freed every conn). */
static void conn_slots_destroy(struct connset *cs)
{
    while (!rc_list_empty(&cs->conn_blocks)) {
        struct conn_block *b = rc_list_first(&cs->conn_blocks, struct conn_block, link);
        RC_DASSERT(b->used == 0);
        rc_list_remove(&b->link);
        munmap(b, CONN_BLOCK_SIZE);
    }
}

struct conn *conn_new(struct connset *w, int fd, const struct sockaddr_storage *peer)
{
    struct conn *c = conn_slot_alloc(w);
    c->cs = w;
    c->id = idmap_add(&w->ids, c);
    transport_init_tcp(&c->t, fd);
    if (w->cfg->sndbuf) {
        /* A small kernel buffer makes a slow reader visible to the send
         * queue limits sooner (nginx's `sndbuf`). */
        int sb = (int)w->cfg->sndbuf;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    }
    set_peer(c, peer);
    rc_list_init(&c->link);
    tnode_init(&c->tn);
    sendq_init(&c->q);
    c->state = CONN_HTTP;
    rc_list_push_back(&w->conns, &c->link);
    wio_init(&c->io, fd, on_io);
    update_events(c);
    tlist_add(&w->hs_list, &c->tn);
    STAT_INC(w->stats, conns_total);
    STAT_INC(w->stats, conns_active);
    return c;
}

/* ------------------------------------------------------------------------
 * teardown
 * ------------------------------------------------------------------------ */

static void notify_close(struct conn *c, unsigned code, const uint8_t *reason, size_t len)
{
    if (c->notified)
        return;
    c->notified = 1;
    stats_count_close(c->cs->stats, code);
    if (c->cs->handler->on_close)
        c->cs->handler->on_close(c, code, reason, len);
}

void conn_release(struct conn *c)
{
    if (c->released)
        return;
    struct connset *w = c->cs;
    c->released = 1;
    if (c->opened) {
        notify_close(c, WS_CLOSE_ABNORMAL, NULL, 0);
        STAT_DEC(w->stats, conns_open);
        if (c->pmd)
            STAT_DEC(w->stats, deflate_conns);
    }
    /* The modules above unlink c (the guard's per-IP count, rooms), then
     * the user index forgets it (user hooks), then conn.data goes. */
    for (int i = 0; i < w->n_release; i++)
        w->on_release[i].fn(w->on_release[i].ctx, c);
    if (c->cold) {
        if (c->cold->user)
            conn_set_user(c, NULL, 0);
        if (c->cold->data) {
            kv_clear(c->cold->data);
            rc_free(c->cold->data);
        }
        c->cold->data = NULL;
        RC_ASSERT(c->cold->nrooms == 0); /* the rooms' release hook left them */
        rc_free(c->cold->rooms);
        c->cold->rooms = NULL;
        c->cold->rooms_cap = 0; /* the rest (an IPv6 peer for the logs) goes with c */
    }
    idmap_del(&w->ids, c->id);
    c->state = CONN_DEAD;
    /* Out of the epoll set BEFORE close(fd) (the set is keyed by the open
     * file; an event of this poll still in the loop's array is skipped, since
     * the mask is 0 now, and c lives until the reaper). */
    wio_stop(w->loop, &c->io);
    c->t.ops->destroy(&c->t);
    close(c->t.fd);
    c->t.fd = -1;
    tlist_remove(&c->tn);
    /* A dirty c stays on cs->dirty: the walk takes it off, then the reaper frees it. */
    STAT_ADD(w->stats, queued_bytes, (uint_fast64_t)0 - c->q.bytes);
    sendq_clear(&c->q);
    if (!c->opened) {
        rc_free(c->head);
        c->head = NULL;
    } else if (c->rx_own) { /* rx_own stays set: a feed_ws up the stack reads it */
        ws_msg_reset(c->rx);
        rc_free(c->rx);
    }
    c->rx = NULL;
    rc_list_remove(&c->link);
    rc_list_push_back(&w->reap, &c->link);
    STAT_DEC(w->stats, conns_active);
}

struct conn *conn_find(struct connset *cs, uint64_t id)
{
    struct conn *c = idmap_slot(&cs->ids, id);
    return c && c->id == id && !c->released ? c : NULL;
}

static void conn_free(struct conn *c)
{
    RC_ASSERT(c->released && c->pin == 0);
    rc_list_remove(&c->link);
    rc_free(c->cold);
    conn_slot_free(c->cs, c);
}

void conn_reap(struct connset *cs)
{
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &cs->reap)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        if (c->pin == 0 && !c->dirty) /* dirty: still on cs->dirty until the next walk */
            conn_free(c);
    }
}

struct conn_cold *conn_cold(struct conn *c)
{
    if (c->cold == NULL)
        c->cold = rc_xcalloc(1, sizeof(*c->cold));
    return c->cold;
}

void conn_cold_trim(struct conn *c)
{
    struct conn_cold *k = c->cold;
    if (k == NULL || k->user != NULL || k->data != NULL || k->nrooms > 0 || k->rl_last != 0 ||
        c->peer_kind == PEER_V6)
        return;
    rc_free(k->rooms);
    rc_free(k);
    c->cold = NULL;
}

int conn_set_user(struct conn *c, const char *user, size_t len)
{
    if (user && (len == 0 || len > CONN_USER_MAX || memchr(user, '\0', len)))
        return RC_E_INVAL;
    const char *cur = conn_user(c);
    if (cur == user || (cur && user && strlen(cur) == len && memcmp(cur, user, len) == 0))
        return 0; /* unchanged (or no user before and none now) */
    struct conn_cold *k = conn_cold(c);
    char *old = k->user;
    k->user = user ? rc_xstrndup(user, len) : NULL;
    struct connset *cs = c->cs;
    for (int i = 0; i < cs->n_user; i++)
        cs->on_user[i].fn(cs->on_user[i].ctx, c, old);
    rc_free(old);
    if (c->cold != NULL && !c->released)
        conn_cold_trim(c);
    return 0;
}

/* Our side is done (close frame or error response flushed): half-close and
 * read until the peer's EOF, bounded by close_timeout. */
static void begin_linger(struct conn *c)
{
    if (c->state == CONN_LINGER || c->released)
        return;
    c->state = CONN_LINGER;
    c->t.ops->shutdown(&c->t);
    c->read_paused = 0;
    c->write_blocked = 0;
    update_events(c);
    tlist_add(&c->cs->close_list, &c->tn);
}

/* ------------------------------------------------------------------------
 * output
 * ------------------------------------------------------------------------ */

static void mark_dirty(struct connset *w, struct conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        c->dirty_next = NULL;
        *w->dirty_tail = c;
        w->dirty_tail = &c->dirty_next;
    }
}

/* A member's queue past this many bytes is written at once, window or not:
 * the window is for many small frames, not for holding memory back. */
#define FANOUT_HOLD_MAX (64 * 1024)

/* later_timer: the window is over; every held connection is dirty now and
 * the next before-sleep flushes them (one writev each). */
static void on_fanout_window(struct wloop *loop, struct wtimer *t)
{
    struct connset *cs = t->data;
    uint32_t n = cs->nlater;
    cs->nlater = 0;
    /* This flush opens the next window (none when SIGHUP set 0 since). */
    cs->later_from = wloop_now(loop);
    cs->later_until = cs->later_from + rc_live_get()->fanout_delay;
    uint32_t woke = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct conn *c = conn_find(cs, cs->later[i]);
        if (c == NULL) /* released since (its queue went with it) */
            continue;
        c->later = 0;
        /* Flushed early by a reply, or blocked (WL_WRITE flushes it):
         * nothing to do. */
        if (!c->write_blocked && !c->dirty && !sendq_empty(&c->q)) {
            mark_dirty(cs, c);
            woke++;
        }
    }
    STAT_ADD(cs->stats, fanout_flushes_total, woke);
}

/* Puts c on the held list (once). */
static void hold(struct connset *cs, struct conn *c, double now)
{
    if (c->later)
        return;
    if (cs->nlater == cs->later_cap) {
        cs->later_cap = cs->later_cap ? cs->later_cap * 2 : 64;
        cs->later = rc_xrealloc(cs->later, cs->later_cap * sizeof(*cs->later));
    }
    c->later = 1;
    cs->later[cs->nlater++] = c->id;
    if (cs->nlater == 1)
        wtimer_start(cs->loop, &cs->later_timer, cs->later_until - now, 0);
}

void conn_fanout_end_slow(struct connset *cs, struct conn **mark, double delay)
{
    double now = wloop_now(cs->loop);
    double gap = now - cs->fanout_last;
    cs->fanout_last = now;
    if (gap > delay)
        gap = delay;
    cs->fanout_gap += (gap - cs->fanout_gap) * 0.125;
    if (now >= cs->later_until) {
        /* No window open (the last fan-out write is older than the delay):
         * write now, and hold what comes after this iteration until the
         * delay has passed. */
        cs->later_from = now;
        cs->later_until = now + delay;
        return;
    }
    if (now == cs->later_from)
        return; /* the window opened in this very iteration: written with it */
    if (cs->later_until - now <= cs->fanout_gap) {
        /* The window ends before the next fan-out is due: holding this one
         * would batch nothing. Written now (with whatever its members held),
         * and the window starts again from here. */
        cs->later_from = now;
        cs->later_until = now + delay;
        return;
    }
    /* Inside a window: the conns this fan-out made dirty (the tail of the
     * dirty queue from mark on) come off it and wait for its end. */
    size_t cap = cs->cfg->sendq_soft_limit / 2;
    if (cap > FANOUT_HOLD_MAX)
        cap = FANOUT_HOLD_MAX;
    struct conn *c = *mark;
    *mark = NULL;
    cs->dirty_tail = mark;
    while (c != NULL) {
        struct conn *next = c->dirty_next;
        c->dirty = 0;
        if (c->released) {
            /* off the queue: the reaper frees it */
        } else if (c->state != CONN_OPEN || c->q.bytes >= cap) {
            /* A close to send (a slow consumer's 1008), or too much to
             * hold: the window never takes a queue near the soft limit,
             * where the slow-consumer clock would start. */
            mark_dirty(cs, c);
        } else {
            hold(cs, c, now);
        }
        c = next;
    }
}

static inline __attribute__((always_inline)) void queued(struct conn *c, size_t before)
{
    STAT_ADD(c->cs->stats, queued_bytes, c->q.bytes - before);
    /* A blocked socket has WL_WRITE armed, which flushes when it drains:
     * trying again now would only cost a writev that returns EAGAIN for
     * every frame a slow member is sent. */
    if (!c->write_blocked)
        mark_dirty(c->cs, c);
}

static void queue_ctrl(struct conn *c, unsigned opcode, const uint8_t *payload, size_t len)
{
    struct frame_ref *f = frame_ref_encode(opcode, 0, payload, len);
    if (f == NULL) {
        conn_release(c);
        return;
    }
    size_t before = c->q.bytes;
    /* A close frame is the last frame (RFC 6455 §5.5.1): it goes behind
     * the queued data, while pings and pongs may overtake data frames. */
    if (opcode == WS_OP_CLOSE)
        sendq_push_ref(&c->q, f);
    else
        sendq_push_ctrl(&c->q, f);
    frame_ref_put(f);
    queued(c, before);
}

static int can_send(const struct conn *c);

static int over_limit(struct conn *c, size_t add)
{
    return c->q.bytes + add > c->cs->cfg->sendq_hard_limit;
}

/* Open for output: OPEN, or inside the connect hook (queued behind the 101). */
static int can_send(const struct conn *c)
{
    return (c->state == CONN_OPEN && !c->close_sent) || (c->state == CONN_HTTP && c->upgrading);
}

/* Queues one frame of opcode with the payload parts (len bytes in all). */
static inline int push_frame(struct conn *c, unsigned rsv, unsigned opcode,
                             const struct iovec *parts, int n, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_frame_encode_header(hdr, 1, rsv, opcode, len, NULL);
    /* A reply to this client's own traffic is never dropped silently: the
     * read side is paused instead (backpressure reaches TCP), but one frame
     * larger than the whole limit still has to fit once. */
    if (over_limit(c, hl + len) && c->q.bytes > 0) {
        STAT_INC(c->cs->stats, drops_total);
        return RC_E_LIMIT;
    }
    int rc = sendq_push_copyv(&c->q, hdr, hl, parts, n);
    if (rc == 0) {
        /* queued() for the hl + len bytes just copied, with the counters
         * through one pointer (each counter store makes the compiler load
         * c->cs->stats again) */
        struct worker_stats *st = c->cs->stats;
        STAT_INC(st, msgs_out_total);
        STAT_ADD(st, queued_bytes, hl + len);
        if (!c->write_blocked)
            mark_dirty(c->cs, c);
    }
    return rc;
}

/* conn_sendv for a payload this connection compresses (out of line: the
 * common reply is not compressed). */
static RC_NOINLINE int sendv_deflate(struct conn *c, unsigned opcode, const struct iovec *parts,
                                     int n, size_t len)
{
    unsigned rsv = 0;
    struct iovec zpart;
    char *joined = NULL;
    const void *data = n == 1 ? parts[0].iov_base : NULL;
    if (n != 1) { /* the compressor takes one buffer */
        joined = rc_xmalloc(len ? len : 1);
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            if (parts[i].iov_len)
                memcpy(joined + off, parts[i].iov_base, parts[i].iov_len);
            off += parts[i].iov_len;
        }
        data = joined;
    }
    const uint8_t *z;
    size_t zl = deflate_payload(&c->cs->pmd, c->cs->stats, c->cs->cfg, c->pmd_bits, data, len, &z);
    if (zl > 0) {
        /* the pool's scratch: copied below, before anything else compresses */
        zpart.iov_base = (void *)(uintptr_t)z;
        zpart.iov_len = zl;
        parts = &zpart;
        n = 1;
        len = zl;
        rsv = WS_RSV1; /* RFC 7692 §6 */
    }
    int rc = push_frame(c, rsv, opcode, parts, n, len);
    rc_free(joined);
    return rc;
}

int conn_sendv(struct conn *c, unsigned opcode, const struct iovec *parts, int n)
{
    if (!can_send(c))
        return RC_E_CLOSED;
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += parts[i].iov_len;
    if (c->pmd && deflate_wants(c->cs->cfg, len)) /* compressed per connection */
        return sendv_deflate(c, opcode, parts, n, len);
    return push_frame(c, 0, opcode, parts, n, len);
}

/* conn_sendv of one part, without the sum over parts (a handler's reply). */
int conn_send(struct conn *c, unsigned opcode, const void *data, size_t len)
{
    if (!can_send(c))
        return RC_E_CLOSED;
    struct iovec part = {.iov_base = (void *)(uintptr_t)data, .iov_len = len};
    if (c->pmd && deflate_wants(c->cs->cfg, len)) /* compressed per connection */
        return sendv_deflate(c, opcode, &part, 1, len);
    return push_frame(c, 0, opcode, &part, 1, len);
}

int conn_compresses(const struct conn *c, size_t len)
{
    return c->pmd && deflate_wants(c->cs->cfg, len);
}

int conn_send_reply_ref(struct conn *c, struct frame_ref *f)
{
    if (!can_send(c))
        return RC_E_CLOSED;
    if (over_limit(c, f->len) && c->q.bytes > 0) {
        STAT_INC(c->cs->stats, drops_total);
        return RC_E_LIMIT;
    }
    size_t before = c->q.bytes;
    sendq_push_ref(&c->q, f);
    STAT_INC(c->cs->stats, msgs_out_total);
    queued(c, before);
    return 0;
}

int conn_send_reply_ref_from(struct conn *c, struct frame_ref *f, size_t from)
{
    if (!can_send(c))
        return RC_E_CLOSED;
    if (over_limit(c, f->len - from) && c->q.bytes > 0) {
        STAT_INC(c->cs->stats, drops_total);
        return RC_E_LIMIT;
    }
    size_t before = c->q.bytes;
    int rc = sendq_push_ref_from(&c->q, f, from);
    if (rc != 0)
        return rc;
    STAT_INC(c->cs->stats, msgs_out_total);
    queued(c, before);
    return 0;
}

int conn_send_ref(struct conn *c, struct frame_ref *f)
{
    if (c->pmd) { /* a direct message is compressed for this connection alone */
        struct frame_ref *z = deflate_frame(&c->cs->pmd, c->cs->stats, c->cs->cfg, c->pmd_bits, f);
        if (z != NULL) {
            int rc = conn_deliver(c, z, c->cs->cfg->slow_policy);
            frame_ref_put(z);
            return rc;
        }
    }
    return conn_deliver(c, f, c->cs->cfg->slow_policy);
}

/* Redis-style limits: over the hard limit at once, or over the soft limit
 * for longer than sendq_soft_seconds. */
static int slow(struct conn *c, size_t add)
{
    const struct rc_config *cfg = c->cs->cfg;
    size_t after = c->q.bytes + add;
    if (after > cfg->sendq_hard_limit)
        return 1;
    if (after <= cfg->sendq_soft_limit) {
        c->soft_since = 0;
        return 0;
    }
    /* A 32-bit millisecond clock (wraps after 49 days; the difference is
     * right for any shorter stay), never 0 while set. */
    uint32_t now = (uint32_t)(uint64_t)(wloop_now(c->cs->loop) * 1000.0) | 1;
    if (c->soft_since == 0) {
        c->soft_since = now;
        return 0;
    }
    return (double)(uint32_t)(now - c->soft_since) >= cfg->sendq_soft_seconds * 1000.0;
}

/* Queues f (msgs messages) behind what c has, once the limits allowed it. */
static int push_queued(struct conn *c, struct frame_ref *f, int policy, uint32_t msgs)
{
    size_t before = c->q.bytes;
    if (policy == SLOW_LATEST && f->tag)
        sendq_push_ref_nocopy(&c->q, f);
    else
        sendq_push_ref(&c->q, f);
    STAT_ADD(c->cs->stats, msgs_out_total, msgs);
    queued(c, before);
    return 0;
}

/* conn_deliver behind other queued frames, or near the limits. */
static RC_NOINLINE int deliver_queue(struct conn *c, struct frame_ref *f, int policy)
{
    struct worker_stats *st = c->cs->stats;
    if (rc_unlikely(slow(c, f->len))) {
        size_t bytes = 0;
        size_t n;
        switch (policy) {
        case SLOW_CLOSE:
            /* What the client never started to read is dropped so the close
             * frame is next in line. */
            n = sendq_drop_pending(&c->q, 0, &bytes);
            STAT_ADD(st, drops_total, n + 1);
            STAT_ADD(st, queued_bytes, (uint_fast64_t)0 - bytes);
            STAT_INC(st, slow_closes_total);
            conn_fail(c, WS_CLOSE_POLICY, "send queue limit exceeded");
            return RC_E_LIMIT;
        case SLOW_LATEST:
            /* Keep only the newest pending message of this room. */
            n = sendq_drop_pending(&c->q, f->tag, &bytes);
            STAT_ADD(st, drops_total, n);
            STAT_ADD(st, queued_bytes, (uint_fast64_t)0 - bytes);
            if (c->q.bytes + f->len > c->cs->cfg->sendq_hard_limit) {
                STAT_INC(st, drops_total);
                return RC_E_LIMIT;
            }
            break;
        default:
            STAT_INC(st, drops_total);
            return RC_E_LIMIT;
        }
    }
    return push_queued(c, f, policy, 1);
}

/* A frame that may go to an idle member by reference at once: under both
 * queue limits on its own. */
static inline int frame_fits(const struct rc_config *cfg, size_t len)
{
    return len <= cfg->sendq_soft_limit && len <= cfg->sendq_hard_limit;
}

/* conn_deliver's common case, its counters left to the caller: 1 when taken. */
static inline __attribute__((always_inline)) int deliver_first(struct conn *c, struct frame_ref *f,
                                                               int fits)
{
    if (rc_likely(fits && can_send(c) && sendq_push_first(&c->q, f))) {
        c->soft_since = 0;
        if (!c->write_blocked)
            mark_dirty(c->cs, c);
        return 1;
    }
    return 0;
}

int conn_deliver(struct conn *c, struct frame_ref *f, int policy)
{
    if (rc_unlikely(!can_send(c)))
        return RC_E_CLOSED;
    /* The common case: an idle member under both limits gets the frame by
     * reference as its only entry (what slow() and sendq_push_ref do for an
     * empty queue, without the calls). */
    if (rc_likely(deliver_first(c, f, frame_fits(c->cs->cfg, f->len)))) {
        STAT_INC(c->cs->stats, msgs_out_total);
        STAT_ADD(c->cs->stats, queued_bytes, f->len);
        return 0;
    }
    return deliver_queue(c, f, policy);
}

/* The general path of a merged run (deliver_batch.parts): whole while f
 * keeps the queue under its limits, else part by part through conn_deliver
 * (the policy then drops or closes exactly where it would have). */
static RC_NOINLINE int deliver_run(struct conn *c, const struct deliver_batch *b)
{
    if (rc_unlikely(!can_send(c)))
        return RC_E_CLOSED;
    if (rc_likely(!slow(c, b->f->len)))
        return push_queued(c, b->f, b->policy, b->msgs);
    int rc = 0;
    for (uint32_t i = 0; i < b->msgs && rc != RC_E_CLOSED; i++)
        rc = conn_deliver(c, b->parts[i], b->policy);
    return rc;
}

/* conn_deliver of the batch's frame, or of its run. */
static inline int deliver_general(struct conn *c, const struct deliver_batch *b)
{
    return b->msgs == 1 ? conn_deliver(c, b->f, b->policy) : deliver_run(c, b);
}

void conn_batch_begin(struct deliver_batch *b, struct frame_ref *f, int policy,
                      const struct rc_config *cfg)
{
    b->f = f;
    b->policy = policy;
    b->fits = frame_fits(cfg, f->len);
    b->msgs = 1;
    b->n = 0;
    b->st = NULL;
    b->parts = NULL;
}

void conn_batch_run(struct deliver_batch *b, struct frame_ref *f, struct frame_ref *const *parts,
                    uint32_t msgs, int policy, const struct rc_config *cfg)
{
    conn_batch_begin(b, f, policy, cfg);
    b->msgs = msgs;
    b->parts = parts;
}

void conn_batch_end(struct deliver_batch *b)
{
    if (b->n == 0)
        return;
    STAT_ADD(b->st, msgs_out_total, b->n * b->msgs);
    STAT_ADD(b->st, queued_bytes, b->n * b->f->len);
    b->n = 0;
}

int conn_deliver_batched(struct conn *c, struct deliver_batch *b)
{
    if (deliver_first(c, b->f, b->fits)) {
        b->st = c->cs->stats;
        b->n++;
        return 0;
    }
    conn_batch_end(b);
    return deliver_general(c, b);
}

void conn_deliver_walk(struct conn **const *members, const uint32_t *count, uint64_t exclude,
                       struct deliver_batch *b)
{
    struct frame_ref *f = b->f;
    int fits = b->fits;
    uint64_t n = 0;
    for (uint32_t i = *count; i-- > 0;) {
        if (i >= *count)
            continue;
        struct conn *c = (*members)[i];
        if (c->id == exclude)
            continue;
        if (deliver_first(c, f, fits)) {
            b->st = c->cs->stats;
            n++;
            continue;
        }
        b->n += n; /* counted before the general path, which may run hooks */
        n = 0;
        conn_batch_end(b);
        deliver_general(c, b);
    }
    b->n += n;
}

/* A write error: the connection is gone (out of line, off the hot path). */
static RC_COLD_FN void flush_failed(struct conn *c, ssize_t wr)
{
    rc_log_limited(&io_rl, 5, RC_LOG_DEBUG, "conn %llu: write: %s", (unsigned long long)c->id,
                   rc_strerror((int)wr));
    conn_release(c);
}

/* Whether a connection whose reads paused over the soft limit may read
 * again (the flush has just run): once its queue is under half the limit,
 * or, while the socket still takes every byte offered (not write_blocked: the
 * flush yielded), once it is back under the limit itself. The half mark
 * spares a blocked socket a pause per WL_WRITE. A yielded queue is over the
 * limit only because it goes out CONN_FLUSH_BUDGET bytes per iteration; held
 * to the half mark, a peer that does not read stayed paused for good once
 * the kernel's buffers filled with the queue between the marks (71_daemon's
 * drain test read 5 of 6 echoes: paused over the limit by reads that outran
 * the slices, then blocked at 614 KB). */
static inline int reads_may_resume(const struct conn *c)
{
    size_t soft = c->cs->cfg->sendq_soft_limit;
    return c->q.bytes < soft / 2 || (!c->write_blocked && c->q.bytes <= soft);
}

/* After a flush: an empty queue may finish a close; reading resumes
 * (reads_may_resume); the events follow. */
static inline void flush_end(struct conn *c)
{
    if (sendq_empty(&c->q)) {
        c->write_blocked = 0;
        if (rc_unlikely(c->state == CONN_CLOSING) && c->close_sent &&
            (c->close_recv || c->failing)) {
            begin_linger(c);
            return;
        }
    }
    if (rc_unlikely(c->read_paused) && c->state != CONN_HTTP && reads_may_resume(c))
        c->read_paused = 0;
    update_events(c);
}

/* The flush spent its budget while the socket still took every byte: c is
 * not blocked and waits for no WL_WRITE (epoll reports a TCP socket
 * writable only once a third of its send buffer is free, long after a
 * write would succeed: a yield that waited for it stopped the reads of a
 * client that does not read, with the kernel buffer two thirds full:
 * 71_daemon). It is flushed again in the next iteration, after the events
 * of that one: on the dirty queue, or, during the walk, on cs->yielded
 * (conn_flush_dirty puts those back on the queue at its end). */
static void yield(struct conn *c)
{
    struct connset *cs = c->cs;
    if (c->dirty)
        return;
    if (rc_unlikely(cs->direct)) {
        mark_dirty(cs, c);
        return;
    }
    c->dirty = 1;
    c->dirty_next = NULL;
    *cs->yielded_tail = c;
    cs->yielded_tail = &c->dirty_next;
}

/* The general flush: writev of up to SENDQ_MAX_IOV segments until the queue
 * is empty, the socket full (EAGAIN: write_blocked) or `budget` bytes went
 * out (yield). */
static RC_NOINLINE void flush_queue(struct conn *c, size_t budget)
{
    while (!sendq_empty(&c->q)) {
        struct iovec iov[SENDQ_MAX_IOV];
        int n = sendq_iov(&c->q, iov, SENDQ_MAX_IOV);
        size_t room = budget;
        for (int i = 0; c->q.bytes > budget && i < n; i++) { /* at most `budget` bytes */
            if (iov[i].iov_len >= room) {
                iov[i].iov_len = room;
                n = i + 1;
                break;
            }
            room -= iov[i].iov_len;
        }
        ssize_t wr = transport_writev(&c->t, iov, n);
        if (wr == -EAGAIN) {
            c->write_blocked = 1;
            break;
        }
        if (wr < 0) {
            flush_failed(c, wr);
            return;
        }
        sendq_consume(&c->q, (size_t)wr);
        STAT_ADD(c->cs->stats, bytes_out_total, (uint_fast64_t)wr);
        STAT_ADD(c->cs->stats, queued_bytes, (uint_fast64_t)0 - (uint_fast64_t)wr);
        if ((size_t)wr >= budget) {
            /* The budget is spent and the socket took all of it (at most
             * `budget` bytes were offered): the others' turn. */
            if (!sendq_empty(&c->q))
                yield(c);
            break;
        }
        budget -= (size_t)wr;
    }
    flush_end(c);
}

/* Writes c's queue: until it is empty, the socket would block (then
 * write_blocked and WL_WRITE) or CONN_FLUSH_BUDGET bytes went out (then
 * yield). Called by the walk (conn_flush_dirty) and, with cs->direct set,
 * on WL_WRITE. */
static void conn_flush(struct conn *c)
{
    if (c->released)
        return;
    /* A dirty c stays on cs->dirty (a singly linked queue): the walk finds
     * its queue empty, or flushes what came since. */
    /* The common case (a fan-out frame by reference, or one reply chunk):
     * one entry, written whole by one writev of one iovec. */
    struct frame_ref *one = sendq_single(&c->q);
    if (rc_unlikely(one == NULL || one->len > CONN_FLUSH_BUDGET)) {
        flush_queue(c, CONN_FLUSH_BUDGET);
        return;
    }
    struct iovec iov = {.iov_base = one->data, .iov_len = one->len};
    ssize_t wr = transport_writev(&c->t, &iov, 1);
    if (rc_likely(wr == (ssize_t)iov.iov_len)) {
        sendq_single_done(&c->q);
    } else if (wr == -EAGAIN) {
        c->write_blocked = 1;
        flush_end(c);
        return;
    } else if (wr < 0) {
        flush_failed(c, wr);
        return;
    } else {
        /* Partly written: the general loop goes on from here. */
        sendq_consume(&c->q, (size_t)wr);
    }
    struct worker_stats *st = c->cs->stats;
    STAT_ADD(st, bytes_out_total, (uint_fast64_t)wr);
    STAT_ADD(st, queued_bytes, (uint_fast64_t)0 - (uint_fast64_t)wr);
    if (rc_unlikely(!sendq_empty(&c->q))) {
        flush_queue(c, CONN_FLUSH_BUDGET - (size_t)wr);
        return;
    }
    /* Drained, and nothing flush_end acts on: not blocked or paused before
     * (so the events stay as they are: update_events runs wherever those
     * bits change), not closing, no transport wants. */
    if (rc_likely(!c->write_blocked && !c->read_paused && c->state != CONN_CLOSING &&
                  !transport_has_wants(&c->t)))
        return;
    flush_end(c);
}

/* ------------------------------------------------------------------------
 * closing
 * ------------------------------------------------------------------------ */

static void send_close(struct conn *c, unsigned code, const char *reason)
{
    uint8_t payload[WS_MAX_CONTROL];
    size_t len = ws_close_payload(payload, code, reason, reason ? strlen(reason) : 0);
    queue_ctrl(c, WS_OP_CLOSE, payload, len);
    c->close_sent = 1;
}

void conn_close(struct conn *c, unsigned code, const char *reason)
{
    if (c->released)
        return;
    if (c->state == CONN_HTTP) {
        conn_release(c);
        return;
    }
    if (c->state != CONN_OPEN)
        return;
    c->state = CONN_CLOSING;
    c->close_code = (uint16_t)code;
    notify_close(c, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    if (c->released)
        return;
    send_close(c, code, reason);
    tlist_add(&c->cs->close_list, &c->tn);
}

void conn_fail(struct conn *c, unsigned code, const char *reason)
{
    if (c->released)
        return;
    c->failing = 1;
    if (c->state == CONN_CLOSING && c->close_sent) {
        /* Already said goodbye: stop waiting for the peer. */
        if (sendq_empty(&c->q))
            begin_linger(c);
        return;
    }
    if (reason == NULL)
        reason = ws_close_reason(code);
    conn_close(c, code, reason);
    /* Nothing more is read as messages; the reader discards until EOF. */
}

/* The peer's close frame (RFC 6455 §5.5.1): echo its code, then close TCP. */
static void on_peer_close(struct conn *c, unsigned code, const uint8_t *reason, size_t reason_len)
{
    c->close_recv = 1;
    if (c->state == CONN_OPEN) {
        c->state = CONN_CLOSING;
        c->close_code = (uint16_t)(code ? code : WS_CLOSE_NO_STATUS);
        notify_close(c, c->close_code, reason, reason_len);
        if (c->released)
            return;
        uint8_t payload[2];
        size_t len = 0;
        if (code) {
            payload[0] = (uint8_t)(code >> 8);
            payload[1] = (uint8_t)code;
            len = 2;
        }
        queue_ctrl(c, WS_OP_CLOSE, payload, len);
        c->close_sent = 1;
        tlist_add(&c->cs->close_list, &c->tn);
    } else if (c->state == CONN_CLOSING && c->close_sent && sendq_empty(&c->q)) {
        begin_linger(c);
    }
}

/* ------------------------------------------------------------------------
 * input: WebSocket frames
 * ------------------------------------------------------------------------ */

static void fail_with_error(struct conn *c, int err)
{
    unsigned code = ws_close_code_for(err);
    STAT_INC(c->cs->stats, protocol_errors_total);
    const char *reason = ws_close_reason(code);
    if (err == RC_E_TOO_BIG)
        reason = "message too big";
    else if (err == RC_E_UTF8)
        reason = "invalid UTF-8";
    else if (err == RC_E_DATA)
        reason = "invalid compressed data";
    conn_fail(c, code, reason);
}

/* Whether cs->gate_message is to be called: only while a message rate is
 * configured (the gate's contract in conn.h). The usual answer, no limit,
 * without an indirect call and what the call makes the compiler save around
 * it (callgrind echo: -7 Ir per message). */
static inline int gate_message_on(const struct connset *cs)
{
    return cs->gate_message != NULL && rc_live_get()->msg_rate > 0;
}

/* Runs the message handler on one whole message, timing the handler alone. */
static inline __attribute__((always_inline)) void run_handler(struct conn *c, unsigned opcode,
                                                              const uint8_t *data, size_t len)
{
    c->pin++;
    uint64_t t0 = rc_tick_now();
    c->cs->handler->on_message(c, opcode, data, len);
    stats_observe_handler(c->cs->stats, rc_tick_ns(t0, rc_tick_now()));
    c->pin--;
}

/* A compressed message (RSV1): inflated, then handled. Out of line, as most
 * messages are not compressed. Returns nonzero when c failed. */
static RC_NOINLINE int on_compressed(struct conn *c, unsigned opcode, const uint8_t *data,
                                     size_t len)
{
    struct connset *cs = c->cs;
    uint8_t *inflated = NULL; /* owned: the message's bytes */
    ssize_t il =
        deflate_inflate(&cs->pmd, cs->stats, opcode, data, len, cs->cfg->max_message, &inflated);
    if (il < 0) {
        fail_with_error(c, (int)il);
        return -1;
    }
    run_handler(c, opcode, inflated, (size_t)il);
    rc_free(inflated);
    return 0;
}

/* Feeds bytes to the receiver m and dispatches every complete event. */
static inline __attribute__((always_inline)) void feed_events(struct conn *c, struct ws_msg *m,
                                                              uint8_t *buf, size_t n)
{
    size_t off = 0;
    while (off < n && !c->released) {
        if (c->state == CONN_LINGER || c->close_recv || (c->failing && c->close_sent))
            return; /* discard: nothing after a close counts */
        struct ws_event ev;
        ssize_t r = ws_msg_feed(m, buf + off, n - off, &ev);
        if (r < 0) {
            fail_with_error(c, (int)r);
            return;
        }
        off += (size_t)r;
        switch (ev.type) {
        case WS_EV_NONE:
            return;
        case WS_EV_MESSAGE:
            if (c->state == CONN_OPEN) {
                STAT_INC(c->cs->stats, msgs_in_total);
                if (rc_unlikely(gate_message_on(c->cs)) &&
                    c->cs->gate_message(c->cs->gate_ctx, c) != 0)
                    break; /* over the message rate: dropped, or failed with 1008 */
                if (ev.rsv & WS_RSV1) {
                    if (on_compressed(c, ev.opcode, ev.data, ev.len) != 0)
                        return;
                } else {
                    run_handler(c, ev.opcode, ev.data, ev.len);
                }
            }
            break;
        case WS_EV_PING:
            if (!c->close_sent)
                queue_ctrl(c, WS_OP_PONG, ev.data, ev.len);
            break;
        case WS_EV_PONG:
            break; /* liveness was recorded when the bytes arrived */
        case WS_EV_CLOSE:
            on_peer_close(c, ev.close_code, ev.data, ev.len);
            break;
        }
    }
}

/* After a feed into m (c->rx: the worker's scratch receiver unless
 * c->rx_own): frees what only backed the last event, and keeps a receiver of
 * c's own only while something is partly received. Out of line: a whole frame
 * per read (the common case) leaves nothing to do. */
static __attribute__((noinline)) void rx_settle(struct conn *c, struct ws_msg *m)
{
    if (c->released) {
        /* conn_release freed an own receiver; the scratch is reset here. */
        if (!c->rx_own)
            ws_msg_reset(m);
        return;
    }
    ws_msg_trim(m); /* the last event's data is no longer borrowed */
    int idle = ws_msg_idle(m);
    if (!idle && (c->state == CONN_LINGER || c->close_recv || (c->failing && c->close_sent))) {
        ws_msg_reset(m); /* nothing after a close counts (feed_events): keep nothing */
        idle = 1;
    }
    if (!c->rx_own) {
        if (idle)
            return;
        struct ws_msg *own = rc_try_malloc(sizeof(*own));
        if (own == NULL) {
            ws_msg_reset(m);
            conn_fail(c, WS_CLOSE_INTERNAL, NULL);
            return;
        }
        *own = *m; /* takes buf and ctrl: a ws_msg holds no pointer into itself */
        c->rx = own;
        c->rx_own = 1;
        ws_msg_init(m, m->cfg);
    } else if (idle) {
        ws_msg_reset(m);
        rc_free(m);
        c->rx = &c->cs->rx_scratch[c->pmd];
        c->rx_own = 0;
    }
}

/* Feeds bytes to c's receiver c->rx: the worker's scratch receiver for c's
 * compression setting (set at the upgrade) while c has none of its own (an
 * idle connection keeps no receive state). What is left partly received
 * after the feed moves to (or stays in) a receiver of c's own (rx_settle).
 * Never re-entered: a feed reads the worker's one rbuf, and handlers never
 * start another connection's read (the debug build checks). Inline, with
 * ws_msg_feed inline in it: the read path of a message is one function,
 * on_io, without the frame and the arguments of a call per read (callgrind
 * echo -19 Ir); read_head's copy runs once per connection. */
static RC_ALWAYS_INLINE void feed_ws(struct conn *c, uint8_t *buf, size_t n)
{
    struct ws_msg *m = c->rx;
#ifndef NDEBUG
    struct connset *cs = c->cs;
    assert(c->rx_own || !cs->rx_scratch_busy);
    cs->rx_scratch_busy += !c->rx_own;
    unsigned scratch = !c->rx_own;
#endif
    feed_events(c, m, buf, n);
#ifndef NDEBUG
    cs->rx_scratch_busy -= scratch;
#endif
    /* released or own: m may be freed or must be freed once empty */
    if (c->rx_own || c->released || !ws_msg_blank(m))
        rx_settle(c, m);
}

void conn_hold_reads(struct conn *c, int hold)
{
    if (c->reads_held == (unsigned)!!hold || c->released)
        return;
    c->reads_held = !!hold;
    update_events(c);
}

/* Any bytes from the peer prove it alive: back to the tail of the idle list. */
static void touch(struct conn *c)
{
    /* Lazy like nginx's timers: a busy connection moves at most once a
     * second (its ping may come up to a second early); a pinged one moves
     * back at once so its pong deadline is cancelled. */
    if (c->state == CONN_OPEN &&
        (c->tn.on != &c->cs->idle_list || wloop_now(c->cs->loop) - c->tn.stamp >= 1.0))
        tlist_add(&c->cs->idle_list, &c->tn);
}

/* One read into buf. Returns the bytes read (> 0, counted in the stats), or
 * 0 when the caller should stop: the socket would block, or the peer is gone
 * (EOF or an error, and the connection was released). */
static inline __attribute__((always_inline)) size_t conn_read(struct conn *c, void *buf, size_t cap)
{
    ssize_t n = transport_read(&c->t, buf, cap);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0) {
        /* EOF or error: the peer is gone (1006 if it never sent a close). */
        conn_release(c);
        return 0;
    }
    STAT_ADD(c->cs->stats, bytes_in_total, (uint_fast64_t)n);
    return (size_t)n;
}

static void read_ws(struct conn *c)
{
    struct connset *w = c->cs;
    for (int i = 0; i < READS_PER_EVENT && !c->released && !c->read_paused && !c->reads_held; i++) {
        size_t n = conn_read(c, w->rbuf, CONN_RBUF_SIZE);
        if (n == 0)
            return;
        if (c->state == CONN_LINGER)
            continue; /* discard until EOF */
        touch(c);
        feed_ws(c, w->rbuf, (size_t)n); /* leaves no message buffer once idle */
        /* Backpressure: a client whose replies pile up is not read from. */
        if (c->q.bytes > w->cfg->sendq_soft_limit && c->state == CONN_OPEN) {
            c->read_paused = 1;
            update_events(c);
        }
        if ((size_t)n < CONN_RBUF_SIZE)
            return;
    }
}

/* ------------------------------------------------------------------------
 * input: the HTTP upgrade
 * ------------------------------------------------------------------------ */

/* Queues a whole HTTP response and closes after it (refusals, static files). */
static void respond_and_close(struct conn *c, const char *resp, size_t n)
{
    STAT_ADD(c->cs->stats, queued_bytes, (uint_fast64_t)0 - c->q.bytes);
    sendq_clear(&c->q); /* whatever a refusing connect hook queued */
    struct connset *cs = c->cs;
    for (int i = 0; i < cs->n_refused; i++) /* and the rooms it joined */
        cs->on_refused[i].fn(cs->on_refused[i].ctx, c);
    sendq_push_copy(&c->q, (const uint8_t *)resp, n, NULL, 0);
    STAT_ADD(c->cs->stats, queued_bytes, c->q.bytes);
    c->state = CONN_CLOSING;
    c->close_sent = 1;
    c->failing = 1;
    c->read_paused = 1; /* the rest of the request is not read */
    tlist_add(&c->cs->close_list, &c->tn);
    mark_dirty(c->cs, c);
    update_events(c);
}

/* kind: the stable label of roomcast_handshake_failures_total{reason} (stats.h). */
static void refuse(struct conn *c, int status, const char *kind, const char *reason)
{
    char resp[512];
    int n = http_error_response(resp, sizeof(resp), status, reason, NULL);
    STAT_INC(c->cs->stats, handshake_failures_total);
    stats_count_refusal(c->cs->stats, status, kind);
    rc_free(c->head);
    c->head = NULL;
    if (n < 0) {
        conn_release(c);
        return;
    }
    char peer[64];
    rc_debug("conn %llu %s: refused %d %s", (unsigned long long)c->id,
             conn_peer_str(c, peer, sizeof(peer)), status, reason);
    respond_and_close(c, resp, (size_t)n);
}

/* A plain GET/HEAD answered from static_dir (static.h); not a refusal. */
static void serve_static(struct conn *c, const struct http_request *req)
{
    size_t n;
    int status;
    char *resp = static_respond(c->cs->cfg, req, &n, &status);
    STAT_INC(c->cs->stats, static_requests_total);
    rc_free(c->head);
    c->head = NULL;
    respond_and_close(c, resp, n);
    rc_free(resp);
}

static int path_ok(const struct http_request *req)
{
    const char *path, *q;
    size_t pl, ql;
    http_split_target(req, &path, &pl, &q, &ql);
    return (pl == 1 && path[0] == '/') || (pl == 3 && memcmp(path, "/ws", 3) == 0);
}

/* buf[0..buf_len) holds the request head (head_len bytes) and whatever the
 * client sent after it; buf is c->head->buf or the worker's read buffer. */
static void upgrade(struct conn *c, const struct http_request *req, size_t head_len,
                    const char *buf, size_t buf_len)
{
    struct connset *w = c->cs;
    struct ws_upgrade up;
    struct ws_refusal why = {0};
    if (static_wants(w->cfg, req)) {
        serve_static(c, req);
        return;
    }
    if (ws_upgrade_check(req, &up, &why) != 0) {
        /* A plain GET for another path is a 404, not an invitation to upgrade. */
        if (why.status == 426 && !path_ok(req) && http_find_header(req, "upgrade") == NULL)
            why = (struct ws_refusal){404, "not found: this server speaks WebSocket at /ws",
                                      "not_found"};
        refuse(c, why.status, why.kind, why.reason);
        return;
    }
    if (!path_ok(req)) {
        refuse(c, 404, "not_found", "no WebSocket endpoint at this path; connect to /ws");
        return;
    }
    if (w->gate_upgrade && w->gate_upgrade(w->gate_ctx, c, req, &why) != 0) {
        refuse(c, why.status, why.kind, why.reason);
        return;
    }
    /* Negotiated before the connect hook, so what it sends is compressed too. */
    char ext[160];
    struct pmd_params prm;
    int ext_len = deflate_negotiate(w->cfg, req, &prm, ext, sizeof(ext));
    c->pmd = ext_len > 0;
    c->pmd_bits = ext_len > 0 ? prm.server_window_bits & 0xf : 0;
    const char *subprotocol = NULL;
    if (w->handler->on_upgrade) {
        c->pin++;
        c->upgrading = 1;
        int rc = w->handler->on_upgrade(c, req, &up, &why, &subprotocol);
        c->upgrading = 0;
        c->pin--;
        if (c->released)
            return;
        if (rc != 0) {
            refuse(c, why.status, why.kind, why.reason);
            return;
        }
    }
    char accept[WS_ACCEPT_LEN + 1];
    ws_accept_key(up.key, up.key_len, accept);
    char resp[512];
    int n = ws_response_101(resp, sizeof(resp), accept, subprotocol, ext_len > 0 ? ext : NULL);
    if (n < 0) {
        refuse(c, 500, "internal", "response too large");
        return;
    }
    /* The 101 goes on the control lane: it must precede both the frames the
     * connect hook queued (data lane) and pongs for pipelined pings. */
    struct frame_ref *f101 = frame_ref_new((size_t)n, FRAME_CONTROL);
    memcpy(f101->data, resp, (size_t)n);
    f101->len = (size_t)n;
    size_t before = c->q.bytes;
    sendq_push_ctrl(&c->q, f101);
    frame_ref_put(f101);
    queued(c, before);
    /* c->head gives its place to the receiver (a union): buf may be the
     * head's bytes, freed below once the pipelined frames were fed. */
    struct conn_head *head = c->head;
    c->head = NULL;
    c->rx = &w->rx_scratch[c->pmd]; /* until a frame is partly received (feed_ws) */
    STAT_INC(w->stats, upgrades_total);
    c->state = CONN_OPEN;
    c->opened = 1;
    STAT_INC(w->stats, conns_open);
    if (c->pmd) {
        STAT_INC(w->stats, deflate_conns);
        STAT_INC(w->stats, deflate_negotiated_total);
    }
    tlist_add(&w->idle_list, &c->tn);
    /* Bytes the client pipelined after the head are frames: feed them. */
    size_t extra = buf_len - head_len;
    if (w->handler->on_open) {
        c->pin++;
        w->handler->on_open(c);
        c->pin--;
    }
    if (extra > 0 && !c->released) {
        memmove(w->rbuf, buf + head_len, extra); /* buf may be rbuf itself */
        feed_ws(c, w->rbuf, extra);
    }
    rc_free(head);
}

/* Parses buf[0..len) (last: bytes already scanned) and acts on a complete
 * head or an error. Returns 1 when more bytes are needed. */
static int parse_head(struct conn *c, const char *buf, size_t len, size_t last)
{
    const struct rc_config *cfg = c->cs->cfg;
    struct http_header headers[RC_MAX_HEADERS_PARSE];
    struct http_request req;
    req.headers = headers;
    req.num_headers =
        cfg->max_headers < RC_MAX_HEADERS_PARSE ? cfg->max_headers : RC_MAX_HEADERS_PARSE;
    ssize_t r = http_parse_request(buf, len, last, cfg->max_head, &req);
    if (r == RC_NEED_MORE)
        return 1;
    if (r == RC_E_HEAD_TOO_BIG)
        refuse(c, 431, "head_too_large", "request head too large");
    else if (r == RC_E_TOO_MANY_HEADERS)
        refuse(c, 431, "head_too_large", "too many header fields");
    else if (r < 0)
        refuse(c, 400, "malformed", "malformed HTTP request");
    else
        upgrade(c, &req, (size_t)r, buf, len);
    return 0;
}

/* Grows c->head for more of an incomplete request head (to want bytes at
 * least). 0, or -1 after refusing or releasing the connection. */
static int grow_head(struct conn *c, size_t want)
{
    const struct rc_config *cfg = c->cs->cfg;
    size_t cap = c->head ? c->head->cap : 0;
    if (cap >= cfg->max_head + 1) {
        refuse(c, 431, "head_too_large", "request head too large");
        return -1;
    }
    size_t ncap = cap ? cap * 2 : HEAD_INITIAL;
    while (ncap < want)
        ncap *= 2;
    if (ncap > cfg->max_head + 1)
        ncap = cfg->max_head + 1;
    struct conn_head *nh = rc_try_realloc(c->head, sizeof(*nh) + ncap);
    if (nh == NULL) {
        conn_release(c);
        return -1;
    }
    if (c->head == NULL)
        nh->len = 0;
    nh->cap = (uint32_t)ncap;
    c->head = nh;
    return 0;
}

static void read_head(struct conn *c)
{
    struct connset *w = c->cs;
    if (c->head == NULL) {
        /* Most requests arrive in one segment: parse them in the worker's
         * buffer and allocate nothing. Only an incomplete head is copied
         * into a buffer of its own. */
        size_t n = conn_read(c, w->rbuf, CONN_RBUF_SIZE);
        if (n == 0)
            return;
        if (!parse_head(c, (const char *)w->rbuf, n, 0))
            return;
        /* NEED_MORE means n <= max_head (the parser refuses longer heads). */
        RC_ASSERT((size_t)n <= w->cfg->max_head);
        if (grow_head(c, (size_t)n + 1) < 0)
            return;
        memcpy(c->head->buf, w->rbuf, (size_t)n);
        c->head->len = (uint32_t)n;
    }
    for (;;) {
        struct conn_head *h = c->head;
        if (h->len == h->cap && grow_head(c, (size_t)h->len + 1) < 0)
            return;
        h = c->head; /* grown: moved */
        size_t last = h->len;
        size_t n = conn_read(c, h->buf + h->len, h->cap - h->len);
        if (n == 0)
            return;
        h->len += (uint32_t)n;
        if (!parse_head(c, h->buf, h->len, last))
            return;
    }
}

/* ------------------------------------------------------------------------
 * the io watcher
 * ------------------------------------------------------------------------ */

static void on_io(struct wio *io, unsigned revents)
{
    struct conn *c = rc_container_of(io, struct conn, io);
    c->pin++;
    if (revents & WL_WRITE) {
        c->write_blocked = 0;
        /* Outside the walk: a yield goes straight back on the dirty queue. */
        c->cs->direct = 1;
        conn_flush(c);
        c->cs->direct = 0;
    }
    /* A TLS read (or handshake) that waits for writability resumes on WL_WRITE. */
    int read_ready = (revents & WL_READ) || (transport_want_events(&c->t) & WL_WRITE);
    if (read_ready && !c->released) {
        if (c->state == CONN_HTTP)
            read_head(c);
        else
            read_ws(c);
    }
    /* A TLS transport may need the other direction to make progress. Every
     * change of the bits the mask follows (read_paused, reads_held,
     * write_blocked) updates the events where it is made, so a transport
     * with no wants of its own (plain TCP) leaves nothing to update here. */
    if (!c->released && transport_has_wants(&c->t))
        update_events(c);
    c->pin--;
}

/* ------------------------------------------------------------------------
 * timeouts (one ordered list per timeout value, see heartbeat.h)
 * ------------------------------------------------------------------------ */

static void conn_on_handshake_timeout(struct tlist *tl, struct tnode *n)
{
    struct conn *c = rc_container_of(n, struct conn, tn);
    STAT_INC(c->cs->stats, handshake_timeouts_total);
    if (c->head != NULL) /* part of a request came: it is answered */
        refuse(c, 408, "timeout", "handshake timed out");
    else
        conn_release(c);
}

static void conn_on_idle(struct tlist *tl, struct tnode *n)
{
    struct conn *c = rc_container_of(n, struct conn, tn);
    if (c->state != CONN_OPEN)
        return;
    static const uint8_t payload[] = "rc";
    queue_ctrl(c, WS_OP_PING, payload, 2);
    STAT_INC(c->cs->stats, pings_sent_total);
    tlist_add(&c->cs->pong_list, &c->tn);
}

static void conn_on_pong_timeout(struct tlist *tl, struct tnode *n)
{
    struct conn *c = rc_container_of(n, struct conn, tn);
    STAT_INC(c->cs->stats, heartbeat_closes_total);
    conn_fail(c, WS_CLOSE_GOING_AWAY, "pong timeout");
}

static void conn_on_close_timeout(struct tlist *tl, struct tnode *n)
{
    struct conn *c = rc_container_of(n, struct conn, tn);
    conn_release(c);
}

/* ------------------------------------------------------------------------
 * the connection set
 * ------------------------------------------------------------------------ */

void conn_flush_dirty(struct connset *cs)
{
    struct conn *c;
    while ((c = cs->dirty) != NULL) {
        cs->dirty = c->dirty_next;
        if (cs->dirty == NULL)
            cs->dirty_tail = &cs->dirty;
        c->dirty = 0;
        conn_flush(c); /* may queue more, and c or others again at the tail */
    }
    if (rc_unlikely(cs->yielded != NULL)) {
        /* The next iteration's first flushes (the queue is empty here). */
        cs->dirty = cs->yielded;
        cs->dirty_tail = cs->yielded_tail;
        cs->yielded = NULL;
        cs->yielded_tail = &cs->yielded;
    }
}

/* The zlib streams of permessage-deflate are pooled per worker (pmd.h);
 * once nobody has compressed or inflated for a whole period they are freed. */
#define PMD_IDLE_SECONDS 30.0

static void on_pmd_trim(struct wloop *loop, struct wtimer *t)
{
    struct connset *cs = t->data;
    (void)loop;
    pmd_pool_trim_idle(&cs->pmd);
}

void connset_init(struct connset *cs, int id, struct wloop *loop, const struct rc_config *cfg,
                  struct worker_stats *stats, const struct conn_handler *handler,
                  struct worker *owner)
{
    memset(cs, 0, sizeof(*cs));
    cs->id = id;
    cs->loop = loop;
    cs->cfg = cfg;
    cs->stats = stats;
    cs->handler = handler;
    cs->owner = owner;
    cs->rbuf = rc_xmalloc(CONN_RBUF_SIZE);
    cs->msg_cfg.max_message = cfg->max_message;
    cs->msg_cfg.require_mask = 1;
    cs->msg_cfg.reject_masked = 0;
    cs->msg_cfg.allowed_rsv = 0;
    cs->msg_cfg_z = cs->msg_cfg;
    cs->msg_cfg_z.allowed_rsv = WS_RSV1; /* RFC 7692 §6: RSV1 marks a compressed message */
    cs->msg_cfg_z.deflate = 1;
    ws_msg_init(&cs->rx_scratch[0], &cs->msg_cfg);
    ws_msg_init(&cs->rx_scratch[1], &cs->msg_cfg_z);
#ifndef NDEBUG
    cs->rx_scratch_busy = 0;
#endif
    pmd_pool_init(&cs->pmd, cfg->compression_level, cfg->compression_mem_level);
    wtimer_init(&cs->pmd_trim, on_pmd_trim, cs);
    wtimer_start(loop, &cs->pmd_trim, PMD_IDLE_SECONDS, PMD_IDLE_SECONDS);
    rc_list_init(&cs->conn_blocks);
    rc_list_init(&cs->conns);
    cs->dirty = NULL;
    cs->dirty_tail = &cs->dirty;
    cs->yielded = NULL;
    cs->yielded_tail = &cs->yielded;
    rc_list_init(&cs->reap);
    wtimer_init(&cs->later_timer, on_fanout_window, cs);
    idmap_init(&cs->ids, (uint32_t)id);
    tlist_init(&cs->hs_list, loop, cfg->handshake_timeout, conn_on_handshake_timeout, cs);
    tlist_init(&cs->idle_list, loop, cfg->ping_interval, conn_on_idle, cs);
    tlist_init(&cs->pong_list, loop, cfg->pong_timeout, conn_on_pong_timeout, cs);
    tlist_init(&cs->close_list, loop, cfg->close_timeout, conn_on_close_timeout, cs);
}

void conn_release_all(struct connset *cs)
{
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &cs->conns)
    {
        conn_release(rc_list_entry(pos, struct conn, link));
    }
    cs->dirty = NULL; /* every conn on it is freed below */
    cs->dirty_tail = &cs->dirty;
    rc_list_foreach_safe(pos, tmp, &cs->reap)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        c->pin = 0;
        c->dirty = 0;
        conn_free(c);
    }
}

void connset_destroy(struct connset *cs)
{
    tlist_stop(&cs->hs_list);
    tlist_stop(&cs->idle_list);
    tlist_stop(&cs->pong_list);
    tlist_stop(&cs->close_list);
    wtimer_stop(cs->loop, &cs->later_timer);
    rc_free(cs->later);
    cs->later = NULL;
    cs->nlater = cs->later_cap = 0;
    idmap_destroy(&cs->ids);
    conn_slots_destroy(cs);
    rc_free(cs->rbuf);
    cs->rbuf = NULL;
    wtimer_stop(cs->loop, &cs->pmd_trim);
    pmd_pool_destroy(&cs->pmd);
}

void conn_hook_release(struct connset *cs, conn_hook_fn fn, void *ctx)
{
    RC_ASSERT(cs->n_release < CONN_MAX_HOOKS);
    cs->on_release[cs->n_release].fn = fn;
    cs->on_release[cs->n_release++].ctx = ctx;
}

void conn_hook_refused(struct connset *cs, conn_hook_fn fn, void *ctx)
{
    RC_ASSERT(cs->n_refused < CONN_MAX_HOOKS);
    cs->on_refused[cs->n_refused].fn = fn;
    cs->on_refused[cs->n_refused++].ctx = ctx;
}

void conn_hook_user(struct connset *cs, conn_user_hook_fn fn, void *ctx)
{
    RC_ASSERT(cs->n_user < CONN_MAX_HOOKS);
    cs->on_user[cs->n_user].fn = fn;
    cs->on_user[cs->n_user++].ctx = ctx;
}

static void on_send_mail(void *ctx, struct mail *m)
{
    struct conn *c = conn_find(ctx, m->conn_id);
    if (c)
        conn_send_ref(c, m->frame);
}

static void on_close_mail(void *ctx, struct mail *m)
{
    struct conn *c = conn_find(ctx, m->conn_id);
    if (c)
        conn_close(c, m->flags ? m->flags : WS_CLOSE_NORMAL, m->payload);
}

void connset_receive(struct connset *cs, struct mailbox *mb)
{
    mailbox_register(mb, MAIL_SEND_CONN, on_send_mail, NULL, cs);
    mailbox_register(mb, MAIL_CLOSE_CONN, on_close_mail, NULL, cs);
}
