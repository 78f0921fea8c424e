/* room.h - rooms: membership, presence, room.data, and the room pipeline's
 * last stage (fan-out to this node's members).
 *
 * The room pipeline: one publish, four stages, two seams (ext/bus.h,
 * ext/store.h). With the local bus (ext/bus_local.c) and the memory store
 * (ext/store_mem.c):
 *
 *   thread     stage                          file           buffer (who owns it)
 *   --------   ----------------------------   ------------   ------------------------------------
 *   worker A   read, ws_msg, on_message       conn.c         the worker's read buffer (connset)
 *              room:publish -> room_publish   lapi.c,        payload: Lua's string until copied
 *                -> bus.publish               room.c,        into the publish job (bus_local
 *                                             bus_local.c    owns it until the ack)
 *                | host.post = MAIL_CALL      host.c,
 *                                             mailbox.c
 *   owner B    1 sequence: seq = last + 1     bus_local.c    per-room seq map (B's thread only)
 *   owner B    2 encode once, stamp seq/ts    msgframe.c     frame_ref, refs = 1 (bus_local)
 *   owner B    3 store.append(msg, frame)     store_mem.c    +1 ref per ring entry (the store,
 *                                                            until the ring overwrites it)
 *   owner B    4 host.deliver_frame           host.c,        +1 ref per MAIL_DELIVER (the mail
 *                -> room_deliver_frame        room.c         until it is handled)
 *                | one MAIL_DELIVER per worker with members (mailbox.c)
 *   worker C   fan-out: on_deliver            room.c         +1 ref per member's send queue
 *                -> conn_deliver(c, frame)    conn.c         (sendq, until written)
 *                -> before sleep: writev      worker.c ->    the iovecs point into the frame
 *                                             conn.c, tcp.c
 *   worker A   ack(ud, 0, seq)                bus_local.c    the publish job, freed
 *
 * permessage-deflate: in (4), when the room has members that negotiated it,
 * room_deliver_frame compresses the encoded frame once on the owner
 * (deflate.h; a fresh window, so one frame serves all of them) and each
 * MAIL_DELIVER carries that variant too (+1 ref each); the fan-out gives a
 * deflate member the variant and everyone else the plain frame.
 *
 * Encoding (2) comes before the store (3): the stamped payload the store
 * keeps is the one members receive, and the memory store keeps a reference
 * into the encoded frame rather than a copy (as the history ring always
 * did). A store that copies (SQLite) reads m.data, the same bytes.
 *
 * A cluster bus (Redis) replaces the hop A -> B and the sequencing: it calls
 * host.deliver on B with a message that already has its seq; room_deliver
 * encodes it once (2) and fans out (4). History reads (store.read) answer
 * on the reader's worker through host.post; nothing reads the store under a
 * room lock.
 *
 * Every member sees a room's messages in seq order: the owner posts the
 * deliveries in seq order and each mailbox is FIFO per sender.
 *
 * Membership, presence, policy and the room's KV are kept in the room under
 * a short mutex, updated synchronously by join/leave from any worker: a
 * client that got "joined" receives every message published after it, and
 * presence or count right after a join includes the joiner. (Departure from
 * DESIGN.md, which routes joins through the mailbox too: synchronous reads
 * from Lua need them, and joins are rare next to publishes.)
 *
 * Joins and leaves also tell the bus: room_interest when this node gains
 * its first or loses its last member of a room, presence_set per member
 * (a cluster bus keeps presence; the local bus has none). The user index
 * (users.c) does the same with user_interest.
 *
 * Local membership (which of MY connections are in room R) lives in the
 * worker's part of the registry (struct room_part) and in the connection
 * (c->rooms). room.c reaches connections through hooks it registers with
 * each worker's connection set (release, refusal, user change) and its
 * workers through the mailbox receiver it registers (MAIL_DELIVER).
 * Thread: the functions taking a conn run on that conn's worker; the reads
 * run on any worker.
 */
#ifndef RC_APP_ROOM_H
#define RC_APP_ROOM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"
#include "conn.h"
#include "mailbox.h"
#include "stats.h"
#include "store.h"
#include "strmap.h"

#define ROOM_NAME_MAX 256

/* One worker's share of the registry. */
struct room_part {
    int id;
    struct rooms *all;          /* back pointer */
    struct wloop *loop;         /* borrowed: the worker loop */
    struct mailbox *mb;         /* borrowed: this worker's mailbox */
    struct worker_stats *stats; /* borrowed */
    struct pmd_pool *pmd;       /* borrowed: the worker's zlib streams (its connset's) */
    struct connset *cs;         /* borrowed: the worker's connections (fan-out window) */
    struct strmap local;        /* room name -> struct local_room * (my members); my thread */
    /* rooms this worker owns: name -> struct room *; read by other workers
     * under lock */
    struct strmap owned;
    pthread_mutex_t lock;
    struct wtimer gc;
    /* My local rooms with a hold (someone waits for a replay), for the
     * recover_hold_timeout check; owned array, my thread. */
    struct local_room **holds;
    uint32_t nholds, holds_cap;
    struct wtimer hold_timer; /* runs while nholds > 0 and the timeout is on */
};

/* The room registry of a server. */
struct rooms {
    int nworkers;
    const struct rc_config *cfg; /* borrowed */
    struct store *store;         /* borrowed */
    struct bus *bus;             /* borrowed */
    struct room_part *part;      /* owned: nworkers entries */
};

/* Main thread, before the workers start: the registry, then each worker's
 * part (registers the MAIL_DELIVER receiver and the connection hooks). */
void rooms_init(struct rooms *r, int nworkers, const struct rc_config *cfg, struct store *store,
                struct bus *bus);
void rooms_attach(struct rooms *r, int worker, struct wloop *loop, struct mailbox *mb,
                  struct worker_stats *stats, struct connset *cs);
void rooms_destroy(struct rooms *r);

/* The worker that owns room `name`. Any thread. */
int rooms_owner_of(const struct rooms *r, const char *name, size_t len);

/* Joins c to room `name`. Returns 0, RC_E_EXISTS (already a member),
 * RC_E_INVAL (empty or too long name), RC_E_CLOSED (c not open),
 * RC_E_LIMIT (too many rooms for this connection). */
int room_join(struct rooms *r, struct conn *c, const char *name, size_t len);
/* room_join with flags. ROOM_JOIN_HOLD: c becomes a member (counted,
 * present, its worker delivered to) that waits for its replay: the room's
 * deliveries from now on are held for it (up to recover_hold; more marks it
 * lost) instead of reaching its send queue, until room_release. A recovering
 * join (scripts/chat.lua) joins held, reads the store, sends `joined` and
 * the replay, then releases after the last seq it replayed: the client gets
 * one run of seqs with no gap and no duplicate. A member that waits costs
 * the fan-out nothing per member (it is not in the fan-out list); the
 * room's deliveries to its worker pay one test while anyone waits there.
 * A wait nobody releases ends by room_hold_end (its handler ended) or
 * after recover_hold_timeout (the connection closes 1011).
 * Same returns as room_join. On c's worker. */
#define ROOM_JOIN_HOLD 1u
int room_join_ex(struct rooms *r, struct conn *c, const char *name, size_t len, unsigned flags);
/* For a member that waits (ROOM_JOIN_HOLD): 1 when everything delivered
 * since its join is held, 0 when the hold overflowed (recover_hold) and
 * dropped some. RC_E_NOT_FOUND when c is not a waiting member of the room. */
int room_hold_state(const struct conn *c, const char *name, size_t len);
/* Ends c's wait: queues, in seq order, each frame held since its join with
 * a seq greater than `after` (and not excluded for c). Deliveries that
 * arrive later with a seq up to there are dropped for c (the store's answer
 * can overtake the owner's deliveries of what it holds); the first newer
 * one reaches c and makes it an ordinary member of the fan-out. Returns how
 * many it queued, or RC_E_NOT_FOUND (not a waiting member, or released
 * already). May close c (slow-consumer policy), running its hooks. */
long room_release(struct rooms *r, struct conn *c, const char *name, size_t len, uint64_t after);
/* The id of c's wait in the room (ROOM_JOIN_HOLD, not released): unique
 * on c's worker, never 0; 0 when c does not wait there. */
uint64_t room_hold_token(const struct conn *c, const char *name, size_t len);
/* Ends a wait that its handler left (lua/API.md "Held joins"), when it is
 * still wait `token` and not released:
 *   - nothing was sent to c since its join (c->sent_mark, folded per wait):
 *     room_release(after 0), the held frames in seq order then live ones;
 *     returns ROOM_HOLD_END_RELEASED, *queued = how many were queued;
 *   - else c got part of an answer (joined, some replay) that the core
 *     cannot join to the live stream without a gap or a duplicate: the
 *     held frames are dropped and c gets nothing more from the room;
 *     returns ROOM_HOLD_END_CLOSE: the caller closes c (1011).
 * RC_E_NOT_FOUND: released, left, another wait, or c gone. May close c
 * (slow-consumer policy), running its hooks. On c's worker. */
#define ROOM_HOLD_END_RELEASED 0
#define ROOM_HOLD_END_CLOSE 1
int room_hold_end(struct rooms *r, struct conn *c, const char *name, size_t len, uint64_t token,
                  long *queued);
/* The record of a wait that ended without conn:release, whoever ended it
 * (room_hold_end's caller when its handler ended, or recover_hold_timeout):
 * counts it in recover_holds_ended_total and logs one warning (rate
 * limited, shared by both) that reads
 *   room '<name>': conn <id> held for its replay: <why> without conn:release: <outcome>
 * e.g. why "its handler (chat.lua) raised", outcome "closing it 1011".
 * The caller closes c where the outcome says so. */
void room_hold_ended(struct worker_stats *stats, const char *name, size_t len, uint64_t conn_id,
                     const char *why, const char *outcome);
/* Returns 0 or RC_E_NOT_FOUND (not a member). */
int room_leave(struct rooms *r, struct conn *c, const char *name, size_t len);
int room_is_member(const struct conn *c, const char *name, size_t len);
/* Calls cb with the name of each room c is in. Returns how many. */
int room_names_of(const struct conn *c, void (*cb)(void *ud, const char *name, size_t len),
                  void *ud);

/* Publishes payload to the room through the bus, from worker `worker` (the
 * room is created on its owner if needed). flags: ROOM_PUB_BINARY,
 * ROOM_PUB_STAMP. exclude: a conn id that does not receive it (0 = none).
 * Returns 0 (sequenced and delivered later), RC_E_INVAL (name),
 * RC_E_NOMEM, or the bus's refusal (RC_E_DENIED). */
int room_publish(struct rooms *r, int worker, const char *name, size_t len, const void *payload,
                 size_t plen, unsigned flags, uint64_t exclude);

/* The bus host's deliver / deliver_frame (bus.h), on the room's owner
 * worker: encode once (deliver only), then one MAIL_DELIVER per worker
 * with members. */
void room_deliver(struct rooms *r, const char *name, size_t len, const struct store_msg *m,
                  uint64_t exclude);
void room_deliver_frame(struct rooms *r, const char *name, size_t len, const struct store_msg *m,
                        struct frame_ref *frame, uint64_t exclude);
/* The bus host's epoch_changed: the room adopts epoch (any worker). */
void room_set_epoch(struct rooms *r, const char *name, size_t len, const char *epoch);
/* The bus host's room_head: the room's last seq is at least seq (a cluster
 * node's first join learned it before any delivery). Any worker. */
void room_note_seq(struct rooms *r, const char *name, size_t len, uint64_t seq);
/* Copies the epoch the bus last announced for the room into buf
 * (STORE_EPOCH_MAX + 1 bytes); "" when none. Any worker. */
void room_epoch(struct rooms *r, const char *name, size_t len, char *buf);

/* As room_publish, with ack (bus.h) called later on `worker` with the seq
 * the room gave it (or RC_E_DENIED); nobody is excluded. Returns 0 (ack
 * will run), RC_E_INVAL (name) or the bus's refusal (ack will not run). */
int room_publish_ack(struct rooms *r, int worker, const char *name, size_t len, const void *payload,
                     size_t plen, unsigned flags, bus_ack_cb ack, void *ud);

/* Calls cb(ud, name, len, members, last seq delivered on this node) for
 * every room, under the owner's lock (cb must not call back into rooms).
 * Any thread, the admin's too. Returns the number of rooms. */
long room_list(struct rooms *r,
               void (*cb)(void *ud, const char *name, size_t len, long members, uint64_t seq),
               void *ud);

/* Reads (any worker). Return RC_E_NOT_FOUND when the room does not exist. */
long room_count(struct rooms *r, const char *name, size_t len);
/* Calls cb for each member conn id. Returns the count or RC_E_NOT_FOUND. */
long room_members(struct rooms *r, const char *name, size_t len,
                  void (*cb)(void *ud, uint64_t conn_id), void *ud);
/* Calls cb once per distinct user id among members with a user. */
long room_presence(struct rooms *r, const char *name, size_t len,
                   void (*cb)(void *ud, const char *user, size_t ulen), void *ud);

/* room.data: get copies the value into a malloc'd buffer the caller frees
 * with rc_free (NULL if absent); set with val NULL deletes.
 * Returns 0, RC_E_LIMIT, RC_E_NOT_FOUND (get: absent). */
int room_kv_get(struct rooms *r, const char *name, size_t len, const char *key, size_t klen,
                char **val, size_t *vlen);
int room_kv_set(struct rooms *r, const char *name, size_t len, const char *key, size_t klen,
                const char *val, size_t vlen);

/* Sets the room's slow-consumer policy (enum slow_policy in config.h) for
 * its future deliveries. Returns 0 or RC_E_INVAL. Any worker. */
int room_set_policy(struct rooms *r, const char *name, size_t len, int policy);

#endif
