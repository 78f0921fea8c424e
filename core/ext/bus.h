/* bus.h - the delivery seam: how a published message gets its seq and
 * reaches every worker (and, in a cluster, every node) with members.
 *
 *   local (one node, bus_local):
 *     publish (worker A) --mail--> owner worker B: seq = ++room.seq, store.append
 *                                  --> host->deliver(room, msg) on B: encode once,
 *                                      one mail per worker with members --> send queues
 *   redis (cluster, bus_redis):
 *     publish (worker A) --EVALSHA (INCR seq, XADD stream, PUBLISH channel)--> ack(seq) on A
 *     subscription (every node with members, the sender's included)
 *         --> gap check / backfill (XRANGE) / dedupe, per room
 *         --> host->deliver(room, msg) on the room's owner worker of THIS node: as above
 *
 *   direct messages and disconnects (send_to_user, disconnect_user):
 *     local: host->deliver_user / host->close_user at once
 *     redis: PUBLISH on the user's channel rc:u:{user} ("rcd1" / "rck1",
 *            busmsg.h) --> every node where the user has connections
 *            --> host->deliver_user / host->close_user there
 *
 * Whatever the bus, host->deliver sees each room's messages once each, in
 * seq order, on the room's owner worker; that is what gives every member the
 * same order. The store (store.h) answers history reads; in cluster mode it
 * is the room's Redis stream, and store.append is not called (the publish
 * script already appended).
 *
 * A bus never sees a struct conn or a worker: rooms and users by name,
 * connections by id, bytes. It reaches the workers only through its host.
 *
 * Threads: every call below may come from any worker thread unless it says
 * otherwise; implementations lock what they share. Callbacks (ack, presence
 * answers) never run synchronously: exactly once, later, on the worker named
 * in the call, unless the call returned an error.
 */
#ifndef RC_EXT_BUS_H
#define RC_EXT_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct frame_ref;

/* Publish flags (struct bus_publish, struct store_msg). */
#define ROOM_PUB_BINARY 0x1u
#define ROOM_PUB_STAMP 0x2u /* payload is a JSON object: splice ,"seq":N,"ts":MS before its '}' */

/* What the server gives a bus. */
struct bus_host {
    struct store_host base; /* post(worker, fn, arg) and nworkers */
    /* The worker that owns a room on this node. */
    int (*owner_of)(void *ctx, const char *room, size_t len);
    /* On the room's owner worker (the bus posts there first): one sequenced
     * message to encode once and fan out to this node's members. exclude: a
     * connection id that must not get it (0: none). */
    void (*deliver)(void *ctx, const char *room, size_t len, const struct store_msg *m,
                    uint64_t exclude);
    /* Any worker: a direct message for every connection of `user` on this
     * node (binary: 1 for a binary frame). Returns how many got it. */
    long (*deliver_user)(void *ctx, const char *user, size_t ulen, const void *data, size_t len,
                         int binary);
    /* Any worker: the room's epoch changed (its history was lost, e.g. Redis
     * came back empty). The owner adopts it for joins that follow. */
    void (*epoch_changed)(void *ctx, const char *room, size_t len, const char *epoch);
    /* As deliver, for a bus that already encoded the message: `frame` is the
     * whole WebSocket frame (msgframe.h) whose payload is m->data; the host
     * shares it (takes its own references) instead of encoding again. */
    void (*deliver_frame)(void *ctx, const char *room, size_t len, const struct store_msg *m,
                          struct frame_ref *frame, uint64_t exclude);
    /* Any worker: closes every connection of `user` on this node with close
     * code `code` and reason[0..rlen) (rlen <= 123). Returns how many. */
    long (*close_user)(void *ctx, const char *user, size_t ulen, unsigned code, const char *reason,
                       size_t rlen);
    /* The room's owner worker, may be NULL: this node's first member joined
     * a room that already has messages, and the bus learned its last seq
     * (before any delivery). The host records it, so what it shows of the
     * room (GET /api/rooms, /stats) is the room's seq, not 0 until the next
     * message. */
    void (*room_head)(void *ctx, const char *room, size_t len, uint64_t seq);
};

/* A message to publish (the bytes are copied before publish returns). */
struct bus_publish {
    const char *room;
    size_t room_len;
    const void *data;
    size_t len;
    uint32_t flags;   /* ROOM_PUB_BINARY | ROOM_PUB_STAMP (room.h) */
    uint64_t exclude; /* a connection id that does not receive it (0: none) */
};

/* The publish's outcome, on the publishing worker: status 0 and the seq the
 * room gave it, or RC_E_DENIED ("unavailable": the bus or the store cannot
 * take it now; the client gets {"type":"error","code":"unavailable"}).
 * An unavailable given because a stalled bus did not answer in time is
 * ambiguous, as any timed-out request: the stalled server may still run the
 * publish when it wakes, so the message may yet be delivered, once, in seq
 * order. A client that retries may then see its text twice, with two seqs. */
typedef void (*bus_ack_cb)(void *ud, int status, uint64_t seq);

/* Presence answers: each distinct user once; then done(ud, status, count),
 * count: the room's connections on every node, with a user id or without
 * (as room_count on one node; a user may have several). */
typedef void (*bus_user_cb)(void *ud, const char *user, size_t ulen);
typedef void (*bus_done_cb)(void *ud, int status, long count);

struct bus;

struct bus_ops {
    const char *name; /* "local", "redis" */
    /* Sequences, stores and delivers a message. ack may be NULL (fire and
     * forget). Returns 0, or RC_E_DENIED at once when the bus is down. */
    int (*publish)(struct bus *b, int worker, const struct bus_publish *p, bus_ack_cb ack,
                   void *ud);
    /* This node gained its first (on = 1) or lost its last (on = 0) local
     * member of a room: a cluster bus subscribes / unsubscribes its channel. */
    void (*room_interest)(struct bus *b, const char *room, size_t len, int on);
    /* Same for a user's connections (direct messages). */
    void (*user_interest)(struct bus *b, const char *user, size_t len, int on);
    /* A direct message to every connection of `user`, cluster-wide. ack's seq
     * carries the count delivered locally (local bus) or 1 once the bus
     * accepted it (cluster: "delivered" means accepted by the bus). */
    int (*send_to_user)(struct bus *b, int worker, const char *user, size_t ulen, const void *data,
                        size_t len, int binary, bus_ack_cb ack, void *ud);
    /* Closes every connection of `user`, cluster-wide, with code (1000 or
     * 3000-4999) and reason[0..rlen) (rlen <= 123). ack's seq as for
     * send_to_user: the count closed locally (local bus), or, in a cluster,
     * the nodes the bus handed it to (each closes its own connections when
     * the message arrives). Returns 0, or RC_E_DENIED when the bus is down. */
    int (*disconnect_user)(struct bus *b, int worker, const char *user, size_t ulen, unsigned code,
                           const char *reason, size_t rlen, bus_ack_cb ack, void *ud);
    /* Presence bookkeeping for cluster-wide presence (NULL for the local bus:
     * the room's in-memory membership answers). member: a connection id;
     * user NULL (ulen 0): a connection without a user id, counted but not
     * listed. A connection whose user changes leaves as the old user and
     * joins as the new one. */
    void (*presence_set)(struct bus *b, const char *room, size_t len, uint64_t member,
                         const char *user, size_t ulen, int on);
    /* Cluster-wide presence of a room (NULL for the local bus). */
    int (*presence)(struct bus *b, int worker, const char *room, size_t len, bus_user_cb each,
                    bus_done_cb done, void *ud);
    /* The count alone (done's count as above), without transferring a
     * member: O(nodes) whatever the room's size (NULL for the local bus:
     * room_count). Returns 0, or RC_E_DENIED when the bus is down. */
    int (*presence_count)(struct bus *b, int worker, const char *room, size_t len, bus_done_cb done,
                          void *ud);
    /* Any thread: 0 up, 1 degraded; why: "down", "connecting", ... */
    int (*health)(struct bus *b, char *why, size_t cap);
    /* Main thread: writes the bus's lines into /stats and /metrics (NULL: none). */
    void (*stats)(struct bus *b, void (*line)(void *ud, const char *key, double value), void *ud);
    /* Main thread, workers stopped. */
    void (*destroy)(struct bus *b);
    /* The room's owner worker, may be NULL: the room's actor is gone (no
     * members and idle for a while); the bus may forget its state for it. */
    void (*room_close)(struct bus *b, const char *room, size_t len);
};

/* Every bus starts with this; implementations embed it first. */
struct bus {
    const struct bus_ops *ops;
    struct bus_host host;
};

#endif
