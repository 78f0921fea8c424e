/* conn.h - one client connection: the state machine from the HTTP upgrade to
 * the closed socket, its send queue, its receiver, and its timers.
 *
 *   HTTP --101--> OPEN --close sent/received--> CLOSING --both done--> LINGER --EOF/timeout-->
 * released
 *     \--error response---------------------------------------------> LINGER
 *
 * LINGER: our side is shut down (FIN sent after the close frame); we keep
 * reading and discarding until the peer's EOF so the kernel never answers
 * unread bytes with an RST that could destroy the close frame in flight.
 *
 * Ownership: created by the worker's accept callback, owned by the worker's
 * connection set (struct connset: its list and id map), freed only by
 * conn_reap() (the worker's before-sleep hook) after conn_release() put it on
 * cs->reap; its memory is a slot of the worker's slab (conn.c).
 * conn_close() and conn_release() may be called any number of times and
 * never free. Every function here runs on the owning worker's thread only.
 *
 * conn knows no module above it. Those that keep per-connection state
 * (rooms, the user index, the accept guard) register hooks with the
 * connection set: release hooks run in conn_release, user hooks when
 * conn_set_user changes the user (conn_user), refusal hooks when an upgrade is refused,
 * and the two gates (upgrade, message) let the guard refuse.
 */
#ifndef RC_APP_CONN_H
#define RC_APP_CONN_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "handshake.h"
#include "heartbeat.h"
#include "http_parse.h"
#include "idmap.h"
#include "kv.h"
#include "list.h"
#include "mailbox.h"
#include "pmd.h"
#include "sendq.h"
#include "stats.h"
#include "transport.h"
#include "ws_msg.h"

struct worker;
struct conn;
struct conn_head;
struct local_room;
struct mail;

#define CONN_RBUF_SIZE (64 * 1024)
/* Bytes written to one connection per flush before yielding to the others;
 * no single writev goes past it either, so a frame of megabytes (a big
 * history answer) goes out in slices across loop iterations and the other
 * connections' writes and reads interleave (issue 10: the others waited
 * ~0.2 ms per MiB of one writev on loopback). A yield is not a block: the
 * connection stays on the dirty queue (connset.yielded) and keeps reading.
 * Small frames never reach it. A read pause taken while the socket still
 * takes every byte ends once the slices bring the queue back under the soft
 * limit (conn.c, reads_may_resume): held to half the limit, 71_daemon's
 * client of unread echoes stayed paused once the kernel's buffers filled. */
#define CONN_FLUSH_BUDGET (64 * 1024)
#define CONN_MAX_HOOKS 8

#define RC_MAX_HEADERS_PARSE 128

enum conn_state {
    CONN_HTTP = 0,
    CONN_OPEN,
    CONN_CLOSING,
    CONN_LINGER,
    CONN_DEAD,
};

/* What the application (echo, Lua) does with a connection. All callbacks run
 * on the connection's worker; none may free the connection. */
struct conn_handler {
    /* Before the 101. Return 0 to accept (optionally setting *subprotocol to a
     * static or conn-lifetime string), or fill *why and return -1 to refuse. */
    int (*on_upgrade)(struct conn *c, const struct http_request *req, const struct ws_upgrade *up,
                      struct ws_refusal *why, const char **subprotocol);
    void (*on_open)(struct conn *c);
    void (*on_message)(struct conn *c, unsigned opcode, const uint8_t *data, size_t len);
    /* Once, when an OPEN connection stops being open (code 1006 when the TCP
     * connection was lost without a close frame). */
    void (*on_close)(struct conn *c, unsigned code, const uint8_t *reason, size_t reason_len);
    /* Per worker, on the worker's thread: set up (e.g. a Lua state; return 0
     * or a negative error to abort startup), tear down, reload (MAIL_RELOAD),
     * and a periodic tick. Any may be NULL. worker_start runs in the main
     * thread before the worker threads start. */
    int (*worker_start)(struct worker *w);
    void (*worker_stop)(struct worker *w);
    void (*reload)(struct worker *w);
    /* The HTTP API's publish, on the room's owner worker: body is the
     * request (a JSON object), req the request id. It must complete req
     * exactly once: api_publish_payload (api.h) with the payload to publish,
     * or api_complete with a refusal. NULL: the API answers 404. */
    void (*api_publish)(struct worker *w, uint64_t req, const char *room, size_t rlen,
                        const char *body, size_t blen);
};

typedef void (*conn_hook_fn)(void *ctx, struct conn *c);
/* old: the user before the change (NULL: none); conn_user(c) is the new one. */
typedef void (*conn_user_hook_fn)(void *ctx, struct conn *c, const char *old);

/* One worker's connections and what they share: the loop, the read buffer,
 * the timeout lists, the dirty and reap lists, the id map and the hooks.
 * Embedded in struct worker; set up by connset_init before the worker runs. */
struct connset {
    int id;                             /* the worker's index: the tag of every conn id */
    struct wloop *loop;                 /* borrowed: the worker loop */
    const struct rc_config *cfg;        /* borrowed, read-only */
    struct worker_stats *stats;         /* borrowed: the worker's counters */
    const struct conn_handler *handler; /* borrowed (static) */
    struct worker *owner;               /* opaque here: conn_worker() for the layers above */
    uint8_t *rbuf;                      /* owned: the one read buffer of this worker */
    struct ws_msg_cfg msg_cfg;          /* shared by this worker's receivers */
    struct ws_msg_cfg msg_cfg_z;        /* ... and by those that negotiated permessage-deflate */
    /* The receiver of the connection being fed while it has none of its own
     * (conn.c feed_ws): an idle connection keeps no receive state, and the
     * state left between reads (a partial frame or header, an open
     * fragmented message) moves to a c->rx allocated for it. */
    struct ws_msg rx_scratch[2]; /* [c->pmd]: one per compression setting */
#ifndef NDEBUG
    int rx_scratch_busy; /* in use by a feed_ws further up the stack (a bug) */
#endif
    struct pmd_pool pmd;    /* owned: zlib streams for every deflate connection (pmd.h) */
    struct wtimer pmd_trim; /* frees the pool after a period without use */
    /* Blocks of struct conn slots with a free one (conn.c conn_slot_alloc):
     * no malloc header or rounding per connection. Owned; empty under
     * sanitizers, where each conn is its own allocation. */
    struct rc_list conn_blocks;
    struct rc_list conns; /* every live conn (for drain and stop) */
    /* Conns with output to flush this iteration, in the order they became
     * dirty (conn_flush_dirty): a singly linked queue through dirty_next.
     * A conn stays on it until the walk takes it off, even when flushed
     * or released meanwhile (conn_reap waits for it). */
    struct conn *dirty;
    struct conn **dirty_tail; /* &dirty when empty, else the last one's dirty_next */
    /* During the walk: the conns whose flush spent its budget
     * while the socket still took every byte offered (a big answer goes
     * out in slices). Not blocked, so no WL_WRITE: the walk's end puts them
     * back on the (then empty) dirty queue, each gets one slice per
     * iteration with the other connections' events in between, and the
     * poll does not sleep while they have bytes to write:
     *
     *   walk:  dirty: A -> B -> C      A yields         yielded: A
     *   end:   dirty: A                (busy: the poll does not block)
     *   next:  events (reads, replies) dirty: A -> D -> ...
     *
     * Empty outside the walk. A yielded conn keeps c->dirty set, as on the
     * dirty queue (the reaper waits, mark_dirty does nothing). */
    struct conn *yielded;
    struct conn **yielded_tail; /* &yielded when empty */
    /* A flush outside the walk (on WL_WRITE): a yield goes straight on the
     * dirty queue (this iteration's walk flushes it again). */
    uint8_t direct;
    struct rc_list reap; /* released conns, freed by conn_reap */
    /* Fan-out coalescing (fanout_delay, conn_fanout_begin): the ids of the
     * conns holding room frames back, flushed together by later_timer.
     * Ids in an array, not a link in struct conn: a conn may be on it and
     * on the dirty queue at once (a reply flushes it early), and one
     * released meanwhile is freed without waiting (its id finds nothing). */
    uint64_t *later; /* owned */
    uint32_t nlater, later_cap;
    /* The window (loop time): room frames queued in [later_from,
     * later_until) by another iteration than later_from's are held until
     * later_until. */
    double later_from, later_until;
    /* The loop time of the last fan-out and the mean gap between fan-outs
     * (moving average, each gap capped at fanout_delay): a fan-out inside a
     * window is held only when another is due before the window ends. */
    double fanout_last, fanout_gap;
    struct wtimer later_timer; /* armed while nlater > 0 */
    struct tlist hs_list;      /* HTTP state, by accept time: handshake timeout */
    struct tlist idle_list;    /* OPEN, by last activity: ping after ping_interval */
    struct tlist pong_list;    /* OPEN, pinged, by ping time: close after pong_timeout */
    struct tlist close_list;   /* CLOSING/LINGER, by close time: hard close after close_timeout */
    struct idmap ids;          /* conn id -> conn */
    /* Hooks of the modules above (registered before the worker starts). */
    struct {
        conn_hook_fn fn;
        void *ctx;
    } on_release[CONN_MAX_HOOKS], on_refused[CONN_MAX_HOOKS];
    struct {
        conn_user_hook_fn fn;
        void *ctx;
    } on_user[CONN_MAX_HOOKS];
    int n_release, n_refused, n_user;
    /* Gates: 0 to go on. upgrade fills *why when it refuses; message
     * returns nonzero to drop the message (and may have failed c), and is
     * called only while the live snapshot's message_rate is above 0 (a
     * SIGHUP may change it between that test and the call: the gate
     * reads the snapshot again). */
    int (*gate_upgrade)(void *ctx, struct conn *c, const struct http_request *req,
                        struct ws_refusal *why);
    int (*gate_message)(void *ctx, struct conn *c);
    void *gate_ctx;
};

/* Sets up cs (main thread). owner is stored, never dereferenced here. */
void connset_init(struct connset *cs, int id, struct wloop *loop, const struct rc_config *cfg,
                  struct worker_stats *stats, const struct conn_handler *handler,
                  struct worker *owner);
/* Releases every connection and frees them, pinned or not (main thread,
 * worker stopped). */
void conn_release_all(struct connset *cs);
/* Main thread, worker stopped, after conn_release_all: stops the timers,
 * frees the buffers. */
void connset_destroy(struct connset *cs);
/* Registers MAIL_SEND_CONN / MAIL_CLOSE_CONN receivers on the worker's mailbox. */
void connset_receive(struct connset *cs, struct mailbox *mb);

void conn_hook_release(struct connset *cs, conn_hook_fn fn, void *ctx);
void conn_hook_refused(struct connset *cs, conn_hook_fn fn, void *ctx);
void conn_hook_user(struct connset *cs, conn_user_hook_fn fn, void *ctx);

/* One room this connection is in (c->cold->rooms[i]). */
struct conn_room {
    struct local_room *room; /* borrowed: the worker's local room */
    uint32_t index;          /* position of c in room->members */
};

/* What a connection holds only once it is used: its user, conn.data, its
 * rooms, its inbound message rate bucket, an IPv6 peer's address. An idle connection that never
 * sent a message nor joined a room has none (issue 14: every byte of struct
 * conn is paid by each of them). Owned by its conn; allocated by conn_cold,
 * freed by conn_cold_trim once nothing in it is used, emptied at the
 * release and freed with the conn (conn_reap). */
struct conn_cold {
    char *user;              /* owned: the user id (conn_set_user), NULL when anonymous */
    struct kv *data;         /* owned, created on first set: conn.data */
    struct conn_room *rooms; /* owned array */
    uint16_t nrooms, rooms_cap;
    float rl_tokens;   /* inbound message rate bucket (guard.c) */
    double rl_last;    /* its last refill, 0 before the first message */
    uint8_t peer6[16]; /* an IPv6 peer's address (PEER_V6: allocated with the conn) */
};

/* How c->peer4 / cold->peer6 hold the peer address: an IPv4 address (or an
 * IPv4-mapped IPv6 one, as a dual-stack listener gives IPv4 clients) in 4
 * bytes, only another IPv6 address in the cold part. */
enum conn_peer_kind {
    PEER_NONE = 0, /* not an IP socket (tests, AF_UNIX) */
    PEER_V4,
    PEER_V4MAPPED, /* ::ffff:a.b.c.d */
    PEER_V6,
};

struct conn {
    uint64_t id;        /* seq (21 bits) | slot (24) | worker (8): idmap.h */
    struct connset *cs; /* borrowed: the owner's connection set */
    struct transport t;
    struct wio io; /* the socket on the worker loop; io.events: the mask (0 = stopped) */
    uint8_t state;
    unsigned dirty : 1; /* on cs->dirty or cs->yielded (until conn_flush_dirty takes it off) */
    unsigned close_sent : 1;
    unsigned close_recv : 1;
    unsigned failing : 1; /* we failed the connection: don't wait for the peer's close */
    unsigned read_paused : 1;
    unsigned reads_held : 1; /* conn_hold_reads: its handler's queue is full */
    unsigned write_blocked : 1;
    unsigned released : 1;
    unsigned opened : 1;    /* reached OPEN (on_open ran) */
    unsigned upgrading : 1; /* inside on_upgrade: sends and joins are allowed */
    unsigned pmd : 1;       /* permessage-deflate negotiated (deflate.h) */
    unsigned pmd_bits : 4;  /* ... with this server window (9..15) */
    unsigned rx_own : 1;    /* rx is c's own (else the worker's scratch receiver) */
    unsigned later : 1;     /* its id is on cs->later (until later_timer takes it off) */
    /* A handler sent c a frame (lapi.c) since c's last held join: room.c
     * reads and clears it (room_hold_end: may the core release after 0?). */
    unsigned sent_mark : 1;
    uint16_t close_code; /* code sent or received, for on_close */
    uint16_t peer_port;
    uint32_t pin;        /* > 0: someone up the stack holds it; the reaper waits */
    uint32_t peer4;      /* PEER_V4, PEER_V4MAPPED: the IPv4 address (network order) */
    uint8_t peer_kind;   /* enum conn_peer_kind; PEER_V6: the address is in cold->peer6 */
    uint8_t notified;    /* on_close delivered (cold: out of the bitfield word, in padding) */
    uint32_t soft_since; /* ms clock (| 1) when the queue went over the soft limit, 0 if under */
    struct rc_list link; /* on cs->conns, then on cs->reap */
    struct conn *dirty_next; /* the next on cs->dirty (while dirty) */
    struct tnode tn;         /* on one of the worker's timeout lists */
    struct sendq q;
    union { /* one or the other: the head is done with before the receiver starts */
        /* Before the upgrade (!opened): owned, an incomplete request head
         * kept between reads (conn.c), NULL when none (a head that arrives
         * whole is parsed in the worker's read buffer). */
        struct conn_head *head;
        /* After it (opened): the receiver, owned (rx_own) while a frame,
         * header or fragmented message is partly received, else the
         * worker's rx_scratch[pmd] (feed_ws); NULL once released. */
        struct ws_msg *rx;
    };
    struct conn_cold *cold; /* owned: NULL until a part of it is used (conn_cold) */
};

/* c's worker (the connection set's owner), for the layers above (opaque here). */
static inline struct worker *conn_worker(const struct conn *c)
{
    return c->cs->owner;
}

/* c's cold part (struct conn_cold), allocated (zeroed) on first use: for the
 * layers that set something in it. Never NULL (aborts on OOM: fixed size). */
struct conn_cold *conn_cold(struct conn *c);
/* Frees c's cold part when nothing in it is used any more (no user, no
 * conn.data, no room, no rate bucket), e.g. after the last leave. */
void conn_cold_trim(struct conn *c);

/* c's user id (borrowed: valid until conn_set_user or the release), or NULL. */
static inline const char *conn_user(const struct conn *c)
{
    return c->cold ? c->cold->user : NULL;
}

/* The live connection with this id in cs, or NULL (closed, or on
 * another worker). */
struct conn *conn_find(struct connset *cs, uint64_t id);

/* Stops (hold = 1) or restarts (0) reading from c's socket, independently of
 * the send-queue backpressure: the handler layer holds the reads of a
 * connection whose messages queue behind a waiting handler. Messages already
 * read keep coming until the current read buffer is consumed. c's worker. */
void conn_hold_reads(struct conn *c, int hold);

/* Creates a connection for an accepted socket (takes fd) and starts reading. */
struct conn *conn_new(struct connset *cs, int fd, const struct sockaddr_storage *peer);

/* Sets (or clears, user NULL) c's user (conn_user, in its cold part) and runs the user hooks (the
 * user index, room presence). Returns 0 or RC_E_INVAL (empty, longer than CONN_USER_MAX bytes, or
 * holding a NUL). */
#define CONN_USER_MAX 256
int conn_set_user(struct conn *c, const char *user, size_t len);

/* Queues one data frame (copying the payload). Returns 0, RC_E_CLOSED when the
 * connection is not open, RC_E_LIMIT when the send queue is over its hard
 * limit (the frame is dropped and counted), RC_E_NOMEM. */
int conn_send(struct conn *c, unsigned opcode, const void *data, size_t len);
/* The same with the payload in n parts, joined in order into one frame. */
int conn_sendv(struct conn *c, unsigned opcode, const struct iovec *parts, int n);
/* Whether conn_sendv would compress a payload of len bytes for c. */
int conn_compresses(const struct conn *c, size_t len);
/* Queues f, one whole plain server frame (refs: the queue takes its own), as
 * a reply to c's own traffic: by reference, never copied or compressed (the
 * caller checked conn_compresses), with conn_sendv's limits (RC_E_LIMIT). */
int conn_send_reply_ref(struct conn *c, struct frame_ref *f);
/* The same for the frame f->data[from, f->len) (sendq_push_ref_from), when
 * no data frame is queued for c; -EAGAIN (nothing queued) otherwise. */
int conn_send_reply_ref_from(struct conn *c, struct frame_ref *f, size_t from);

/* Queues a shared, already encoded frame (a reference is taken) under the
 * configured slow-consumer policy: the limits are the hard limit (at once)
 * and the soft limit exceeded for sendq_soft_seconds (Redis's client output
 * buffer limits). Same returns as conn_send. */
int conn_send_ref(struct conn *c, struct frame_ref *f);

/* Queues a shared room frame under a slow-consumer policy (enum slow_policy):
 * over the limits (conn_send_ref's doc) SLOW_DROP drops it, SLOW_CLOSE drops
 * everything pending and closes 1008, SLOW_LATEST drops pending frames with
 * the same tag (room) and queues this one. Same returns as conn_send. */
int conn_deliver(struct conn *c, struct frame_ref *f, int policy);

/* One frame to many members (a room's fan-out), each as conn_deliver(c, f,
 * policy) would, with the limit check and the counters of the common case
 * (an idle member under the limits gets f as its only entry) paid once per
 * batch instead of once per member:
 *
 *   struct deliver_batch b;
 *   conn_batch_begin(&b, f, policy, cfg);
 *   for each member c: conn_deliver_batched(c, &b);
 *   conn_batch_end(&b);
 *
 * Counts are added before any member takes the general path (which can close
 * a connection and run hooks), so the counters never fall behind what other
 * code sees; they lag only while the walk runs. All members belong to one
 * worker (its stats). */
struct deliver_batch {
    struct frame_ref *f;
    int policy;
    int fits;                /* f is under both send-queue limits */
    uint32_t msgs;           /* messages in f: 1, or the run's (conn_batch_run) */
    uint64_t n;              /* fast deliveries not counted yet */
    struct worker_stats *st; /* the members' worker's (set by the first) */
    /* With msgs > 1: f is parts[0..msgs) end to end (a room's consecutive
     * deliveries merged, room.c). A member that takes f by reference or
     * under the limits takes it whole; one that f would put over a queue
     * limit gets the parts one by one, so that the slow-consumer policy sees
     * each message as it would have. */
    struct frame_ref *const *parts;
};

void conn_batch_begin(struct deliver_batch *b, struct frame_ref *f, int policy,
                      const struct rc_config *cfg);
/* The same for the msgs frames parts[], merged end to end into f (msgs >= 2;
 * parts stay owned by the caller and must outlive the batch). */
void conn_batch_run(struct deliver_batch *b, struct frame_ref *f, struct frame_ref *const *parts,
                    uint32_t msgs, int policy, const struct rc_config *cfg);
/* Same returns as conn_deliver. */
int conn_deliver_batched(struct conn *c, struct deliver_batch *b);
void conn_batch_end(struct deliver_batch *b);

/* conn_deliver_batched for (*members)[*count - 1] down to [0], skipping the
 * connection `exclude` (0: none), with the common case inline. Backwards,
 * re-reading *members and *count after every member: one that leaves during
 * the walk (a slow-consumer close running a disconnect hook) swaps an
 * already-visited member into its slot, so nobody is skipped or visited
 * twice. Leaves the batch's counts to conn_batch_end. */
void conn_deliver_walk(struct conn **const *members, const uint32_t *count, uint64_t exclude,
                       struct deliver_batch *b);

/* Fan-out coalescing (the fanout_delay option, read from the current rc_live
 * snapshot at each fan-out so that SIGHUP changes it; 0 turns it off). A fan-out
 * brackets its conn_deliver calls with mark = conn_fanout_begin(cs) and
 * conn_fanout_end(cs, mark). When a window is open (a fan-out was written
 * less than fanout_delay ago, in an earlier iteration), the connections
 * the fan-out made dirty leave the dirty queue and wait on cs->later; one
 * timer at the window's end makes them all dirty at once, and that flush
 * opens the next window. A member then gets every publish of the window in
 * one writev, the way a saturated loop gives it (Nagle's algorithm /
 * TCP_CORK in user space; Centrifugo's client write delay). When no window
 * is open the fan-out is written now, and opens one. Inside a window, a
 * fan-out is held only when the worker's fan-outs come closer together (the
 * moving average of their gaps) than the time left in the window: holding
 * one that no other fan-out would join batches nothing, so it is written
 * now and the window starts again from it (a rate near 1/fanout_delay
 * would otherwise pay the hold on every member for no batching, and add
 * latency). Only room fan-out is
 * held: a reply, a direct send, a control frame (close, pong) makes the
 * connection dirty as before and flushes its whole queue in this
 * iteration, held frames first, so the order of c's queue never changes.
 * A queue past FANOUT_HOLD_MAX bytes (or half the soft limit), or a
 * connection closing, is not held. Conns already dirty before the fan-out
 * (mark is the dirty queue's tail then) are not held either. A window open
 * when the value changes keeps its end (its timer is running) and holds
 * until then; the window the next write opens has the new length. With 0,
 * nothing more is held, and a held connection goes out with the next frame
 * it gets (held frames first) or at the old window's end, whichever comes
 * first. */
static inline struct conn **conn_fanout_begin(struct connset *cs)
{
    return cs->dirty_tail;
}
void conn_fanout_end_slow(struct connset *cs, struct conn **mark, double delay);
static inline void conn_fanout_end(struct connset *cs, struct conn **mark)
{
    if (*mark == NULL)
        return; /* nothing made dirty: no snapshot to load */
    double delay = rc_live_get()->fanout_delay;
    if (delay > 0)
        conn_fanout_end_slow(cs, mark, delay);
}

/* Starts the closing handshake with code/reason (reason may be NULL). Idempotent. */
void conn_close(struct conn *c, unsigned code, const char *reason);

/* Fails the connection (RFC 6455 §7.1.7): sends a close with code and closes
 * the TCP connection after it is flushed, without waiting for the peer. */
void conn_fail(struct conn *c, unsigned code, const char *reason);

/* Tears down now: stops watchers, closes the fd, unlinks, queues for reaping. */
void conn_release(struct conn *c);

/* The worker's before-sleep hook: flushes every dirty connection (one writev
 * each, up to CONN_FLUSH_BUDGET bytes), then frees the released ones nobody pins
 * and no longer on the dirty queue. Leaves the connections whose flush
 * yielded on the dirty queue (cs->dirty != NULL: the poll must not block). */
void conn_flush_dirty(struct connset *cs);
void conn_reap(struct connset *cs);

/* The peer's address family (AF_INET, AF_INET6; 0: not an IP peer) with its
 * address in addr (4 or 16 bytes, as in sockaddr_in/sockaddr_in6: the same
 * bytes as the accepted socket's peer). c's worker. */
int conn_peer_addr(const struct conn *c, uint8_t addr[16]);

/* Formats the peer as "ip:port" into buf. Returns buf. */
const char *conn_peer_str(const struct conn *c, char *buf, size_t cap);

#endif
