#include "room.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "defs.h"
#include "deflate.h"
#include "err.h"
#include "idmap.h"
#include "kv.h"
#include "log.h"
#include "msgframe.h"

#define CONN_MAX_ROOMS 256
/* An empty room (no members) is kept this long so late joiners still get
 * its history and room.data, then collected by its owner. */
#define ROOM_IDLE_TTL 300.0
#define ROOM_GC_INTERVAL 10.0

/* Owned by the owner's part (its `owned` map); every field below `lock` is
 * read or written only with `lock` held. The seq and the history are not
 * here: the bus sequences, the store keeps. */
struct room {
    pthread_mutex_t lock;
    struct strmap members; /* conn id (8 bytes) -> char *user (owned, may be NULL) */
    uint32_t per_worker[RC_MAX_WORKERS];
    uint32_t deflate_members; /* members that negotiated permessage-deflate */
    struct kv data;
    double empty_since;              /* monotonic seconds; 0 while it has members */
    int policy;                      /* enum slow_policy for this room's deliveries */
    char epoch[STORE_EPOCH_MAX + 1]; /* the bus's last announcement, "" if none */
    uint64_t last_seq;               /* the last seq delivered on this node (owner) */
    size_t name_len;
    char name[];
};

/* The frames held for this worker's recovering members of one room
 * (room_join with ROOM_JOIN_HOLD): a member that waits for its replay is
 * not in the fan-out list, so the walk pays nothing for it; each delivery
 * that arrives meanwhile is kept here by reference, once for all the room's
 * waiting members, and room_release hands a member those after its replay.
 *
 *   local_room --hold--> room_hold
 *                        waiting: [conn, lost, released, after] ...
 *                        held:    [seq, frame, zframe, exclude, policy] ...
 *                                  in seq order (MAIL_DELIVER order)
 *
 *   join(HOLD) -> waiting -> room_release(after): held frames > after queued;
 *   released, still outside the fan-out list -> the first delivery with a
 *   seq > after: queued to it, and it joins the fan-out list (hold_serve).
 *
 * Why a released member waits for one more delivery: the store's answer
 * (another thread's mail) can overtake the owner's deliveries of messages
 * it already holds; those arrive after the release with seq <= after and
 * are dropped for it here. Deliveries come in seq order (one sender, FIFO),
 * so once one is newer than the replay every later one is too.
 *
 * At most recover_hold entries: the delivery that would be one more drops
 * them all and marks every member then waiting `lost` (its replay cannot be
 * joined to live traffic: the script answers recovered:false). Owned by its
 * local_room, on the members' worker only; freed when nobody waits. */
struct held_frame {
    uint64_t seq;
    uint64_t exclude;
    struct frame_ref *f, *z; /* owned references; z may be NULL */
    int policy;
};

struct hold_waiter {
    struct conn *c;   /* borrowed: a member (leave_at removes it first) */
    uint64_t after;   /* released: the last seq its replay covered */
    uint64_t token;   /* room_hold_token: this wait and no later one */
    uint8_t lost;     /* the hold overflowed while it waited */
    uint8_t released; /* room_release ran; waits for a delivery newer than after */
    uint8_t sent;     /* c was sent a frame since the join (c->sent_mark, folded) */
    uint8_t ended;    /* room_hold_end closes c: released, and gets nothing more */
    double since;     /* mono_now() at the join (recover_hold_timeout) */
};

/* room_hold_token's source (any worker: one counter for all). */
static _Atomic uint64_t hold_tokens;

struct room_hold {
    struct held_frame *held; /* owned array */
    uint32_t nheld, held_cap;
    struct hold_waiter *waiting; /* owned array */
    uint32_t nwaiting, waiting_cap;
    struct room_part *part; /* borrowed: the members' worker's (its holds[pos] is us) */
    uint32_t pos;
};

/* My (one worker's) members of a room. Owned by worker->local_rooms. */
struct local_room {
    struct conn **members; /* owned array, borrowed pointers */
    uint32_t count, cap;
    uint32_t busy;          /* > 0 while a fan-out walks members: freeing is deferred */
    struct room_hold *hold; /* owned, NULL unless a member waits for its replay */
    size_t name_len;
    char name[];
};

/* conn_room.index of a member waiting for its replay (not in members[]). */
#define ROOM_INDEX_HELD UINT32_MAX

static struct room *lock_room(struct rooms *R, const char *name, size_t len);
static struct hold_waiter *hold_find(struct room_hold *h, const struct conn *c);
static void hold_timer_arm(struct room_part *p);
static void on_hold_timer(struct wloop *loop, struct wtimer *t);

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int rooms_owner_of(const struct rooms *R, const char *name, size_t len)
{
    return (int)(strmap_hash(name, len) % (uint64_t)R->nworkers);
}

static void room_free(void *p)
{
    struct room *r = p;
    strmap_clear(&r->members, rc_free);
    kv_clear(&r->data);
    pthread_mutex_destroy(&r->lock);
    rc_free(r);
}

/* With the owner part's lock held. */
static struct room *get_or_create(struct room_part *owner, const char *name, size_t len)
{
    struct room *r = strmap_get(&owner->owned, name, len);
    if (r)
        return r;
    const struct rc_config *cfg = owner->all->cfg;
    r = rc_xcalloc(1, sizeof(*r) + len + 1);
    pthread_mutex_init(&r->lock, NULL);
    strmap_init(&r->members);
    kv_init(&r->data);
    r->name_len = len;
    memcpy(r->name, name, len);
    r->empty_since = mono_now();
    r->policy = cfg->slow_policy;
    strmap_put(&owner->owned, name, len, r);
    STAT_INC(owner->stats, rooms);
    return r;
}

/* Locks and returns the room, creating it on its owner if needed. Unlock
 * with pthread_mutex_unlock(&r->lock). Lock order: part lock, then r->lock. */
static struct room *lock_room_create(struct rooms *R, const char *name, size_t len)
{
    struct room_part *owner = &R->part[rooms_owner_of(R, name, len)];
    pthread_mutex_lock(&owner->lock);
    struct room *r = get_or_create(owner, name, len);
    pthread_mutex_lock(&r->lock);
    pthread_mutex_unlock(&owner->lock);
    return r;
}

/* The owner forgets rooms that have had no members for ROOM_IDLE_TTL, and
 * tells the store and the bus (a memory store drops the history with it,
 * so the room starts again at seq 1, as it always did). */
static void on_gc(struct wloop *loop, struct wtimer *t)
{
    struct room_part *p = t->data;
    struct rooms *R = p->all;
    double now = mono_now();
    struct room *dead_list[64];
    int ndead = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->owned.nbuckets && ndead < 64; i++) {
        struct strmap_ent **pp = &p->owned.buckets[i];
        while (*pp && ndead < 64) {
            struct room *r = (*pp)->val;
            pthread_mutex_lock(&r->lock);
            int dead = r->members.count == 0 && now - r->empty_since > ROOM_IDLE_TTL;
            pthread_mutex_unlock(&r->lock);
            if (dead) {
                struct strmap_ent *e = *pp;
                *pp = e->next;
                p->owned.count--;
                rc_free(e);
                dead_list[ndead++] = r;
                STAT_DEC(p->stats, rooms);
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
    /* Outside the lock: the store and the bus take their own. The rest
     * goes on the next tick. */
    for (int i = 0; i < ndead; i++) {
        struct room *r = dead_list[i];
        if (R->store && R->store->ops->room_close)
            R->store->ops->room_close(R->store, r->name, r->name_len);
        if (R->bus && R->bus->ops->room_close)
            R->bus->ops->room_close(R->bus, r->name, r->name_len);
        room_free(r);
    }
}

static void hold_drop_frames(struct room_hold *h)
{
    for (uint32_t i = 0; i < h->nheld; i++) {
        frame_ref_put(h->held[i].f);
        if (h->held[i].z)
            frame_ref_put(h->held[i].z);
    }
    h->nheld = 0;
}

static void hold_free(struct room_hold *h)
{
    if (h == NULL)
        return;
    hold_drop_frames(h);
    rc_free(h->held);
    rc_free(h->waiting);
    rc_free(h);
}

static void local_room_free(void *p)
{
    struct local_room *lr = p;
    hold_free(lr->hold);
    rc_free(lr->members);
    rc_free(lr);
}

static void on_deliver_run(void *ctx, struct mail *m, unsigned n);
static void on_conn_release(void *ctx, struct conn *c);
static void on_conn_user(void *ctx, struct conn *c, const char *old);

void rooms_init(struct rooms *R, int nworkers, const struct rc_config *cfg, struct store *store,
                struct bus *bus)
{
    memset(R, 0, sizeof(*R));
    R->nworkers = nworkers;
    R->cfg = cfg;
    R->store = store;
    R->bus = bus;
    R->part = rc_xcalloc((size_t)nworkers, sizeof(*R->part));
    for (int i = 0; i < nworkers; i++) {
        struct room_part *p = &R->part[i];
        p->id = i;
        p->all = R;
        strmap_init(&p->owned);
        strmap_init(&p->local);
        pthread_mutex_init(&p->lock, NULL);
    }
}

void rooms_attach(struct rooms *R, int worker, struct wloop *loop, struct mailbox *mb,
                  struct worker_stats *stats, struct connset *cs)
{
    struct room_part *p = &R->part[worker];
    p->loop = loop;
    p->mb = mb;
    p->stats = stats;
    p->pmd = &cs->pmd;
    p->cs = cs;
    mailbox_register_run(mb, MAIL_DELIVER, on_deliver_run, NULL, p);
    conn_hook_release(cs, on_conn_release, R);
    conn_hook_refused(cs, on_conn_release, R); /* rooms a refusing connect hook joined */
    conn_hook_user(cs, on_conn_user, R);
    wtimer_init(&p->gc, on_gc, p);
    wtimer_start(loop, &p->gc, ROOM_GC_INTERVAL, ROOM_GC_INTERVAL);
    wtimer_init(&p->hold_timer, on_hold_timer, p);
}

void rooms_destroy(struct rooms *R)
{
    for (int i = 0; i < R->nworkers; i++) {
        struct room_part *p = &R->part[i]; /* its GC timer went with the loop */
        strmap_clear(&p->local, local_room_free);
        strmap_clear(&p->owned, room_free);
        rc_free(p->holds);
        pthread_mutex_destroy(&p->lock);
    }
    rc_free(R->part);
    R->part = NULL;
}

/* ------------------------------------------------------------------------
 * membership (on the conn's worker)
 * ------------------------------------------------------------------------ */

static struct room_part *part_of(struct rooms *R, const struct conn *c)
{
    return &R->part[idmap_tag_of(c->id)];
}

/* c's rooms (in its cold part, conn.h) and their count. */
static inline int nrooms_of(const struct conn *c)
{
    return c->cold ? c->cold->nrooms : 0;
}

static int find_conn_room(const struct conn *c, const char *name, size_t len)
{
    for (int i = 0; i < nrooms_of(c); i++) {
        const struct local_room *lr = c->cold->rooms[i].room;
        if (lr->name_len == len && memcmp(lr->name, name, len) == 0)
            return i;
    }
    return -1;
}

int room_is_member(const struct conn *c, const char *name, size_t len)
{
    return find_conn_room(c, name, len) >= 0;
}

int room_names_of(const struct conn *c, void (*cb)(void *ud, const char *name, size_t len),
                  void *ud)
{
    int n = nrooms_of(c);
    for (int i = 0; i < n; i++)
        cb(ud, c->cold->rooms[i].room->name, c->cold->rooms[i].room->name_len);
    return n;
}

/* The node's interest in a room changed (first member in, last out): a
 * cluster bus subscribes or unsubscribes. Outside every lock. */
static void interest(struct rooms *R, const char *name, size_t len, int on)
{
    if (R->bus && R->bus->ops->room_interest)
        R->bus->ops->room_interest(R->bus, name, len, on);
}

/* Cluster-wide presence (a cluster bus keeps it; NULL for the local bus):
 * connection `id` of `user` (NULL: without a user id, counted all the same,
 * as room_count counts it) joins (on) or leaves the room. */
static void presence_user(struct rooms *R, const char *name, size_t len, uint64_t id,
                          const char *user, int on)
{
    if (R->bus && R->bus->ops->presence_set)
        R->bus->ops->presence_set(R->bus, name, len, id, user, user ? strlen(user) : 0, on);
}

static void presence(struct rooms *R, const char *name, size_t len, const struct conn *c, int on)
{
    presence_user(R, name, len, c->id, conn_user(c), on);
}

static void summary_update(struct rooms *R, struct conn *c, const char *name, size_t len, int join)
{
    int wid = idmap_tag_of(c->id);
    struct room *r = lock_room_create(R, name, len);
    int edge;
    if (join) {
        char *user = conn_user(c) ? rc_xstrdup(conn_user(c)) : NULL;
        rc_free(strmap_put(&r->members, &c->id, sizeof(c->id), user));
        r->per_worker[wid]++;
        r->deflate_members += c->pmd;
        r->empty_since = 0;
        edge = r->members.count == 1;
    } else {
        rc_free(strmap_del(&r->members, &c->id, sizeof(c->id)));
        r->per_worker[wid]--;
        r->deflate_members -= c->pmd;
        edge = r->members.count == 0;
        if (edge)
            r->empty_since = mono_now();
    }
    pthread_mutex_unlock(&r->lock);
    if (edge && join)
        interest(R, name, len, 1);
    presence(R, name, len, c, join);
    if (edge && !join)
        interest(R, name, len, 0);
}

/* The user hook: c's user (conn_user) changed; record it in every room c is in, for presence. */
static void on_conn_user(void *ctx, struct conn *c, const char *old)
{
    struct rooms *R = ctx;
    for (int i = 0; i < nrooms_of(c); i++) {
        const struct local_room *lr = c->cold->rooms[i].room;
        struct room *r = lock_room(R, lr->name, lr->name_len);
        if (r == NULL)
            continue;
        char *user = conn_user(c) ? rc_xstrdup(conn_user(c)) : NULL;
        rc_free(strmap_put(&r->members, &c->id, sizeof(c->id), user));
        pthread_mutex_unlock(&r->lock);
        /* the connection leaves as the old user (or an anonymous one) and
         * comes back as the new: the count stays, the users change */
        presence_user(R, lr->name, lr->name_len, c->id, old, 0);
        presence(R, lr->name, lr->name_len, c, 1);
    }
}

static void member_append(struct local_room *lr, struct conn *c)
{
    if (lr->count == lr->cap) {
        lr->cap = lr->cap ? lr->cap * 2 : 4;
        lr->members = rc_xrealloc(lr->members, lr->cap * sizeof(*lr->members));
    }
    lr->members[lr->count++] = c;
}

int room_join(struct rooms *R, struct conn *c, const char *name, size_t len)
{
    return room_join_ex(R, c, name, len, 0);
}

int room_join_ex(struct rooms *R, struct conn *c, const char *name, size_t len, unsigned flags)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    if (c->released || !(c->state == CONN_OPEN || (c->state == CONN_HTTP && c->upgrading)))
        return RC_E_CLOSED;
    if (find_conn_room(c, name, len) >= 0)
        return RC_E_EXISTS;
    if (nrooms_of(c) >= CONN_MAX_ROOMS)
        return RC_E_LIMIT;
    struct room_part *p = part_of(R, c);
    struct local_room *lr = strmap_get(&p->local, name, len);
    if (lr == NULL) {
        lr = rc_xcalloc(1, sizeof(*lr) + len + 1);
        lr->name_len = len;
        memcpy(lr->name, name, len);
        strmap_put(&p->local, name, len, lr);
    }
    struct conn_cold *k = conn_cold(c);
    if (k->nrooms == k->rooms_cap) {
        k->rooms_cap = (uint16_t)(k->rooms_cap ? k->rooms_cap * 2 : 2);
        k->rooms = rc_xrealloc(k->rooms, k->rooms_cap * sizeof(*k->rooms));
    }
    k->rooms[k->nrooms].room = lr;
    if (flags & ROOM_JOIN_HOLD) {
        /* a member in the room (counted, present, delivered to this worker)
         * whose deliveries wait in lr->hold until room_release */
        struct room_hold *h = lr->hold;
        if (h == NULL) {
            h = lr->hold = rc_xcalloc(1, sizeof(*h));
            h->part = p;
            if (p->nholds == p->holds_cap) {
                p->holds_cap = p->holds_cap ? p->holds_cap * 2 : 8;
                p->holds = rc_xrealloc(p->holds, p->holds_cap * sizeof(*p->holds));
            }
            h->pos = p->nholds;
            p->holds[p->nholds++] = lr;
            hold_timer_arm(p);
        }
        if (h->nwaiting == h->waiting_cap) {
            h->waiting_cap = h->waiting_cap ? h->waiting_cap * 2 : 2;
            h->waiting = rc_xrealloc(h->waiting, h->waiting_cap * sizeof(*h->waiting));
        }
        /* c->sent_mark restarts for this wait: the other waits of c keep
         * what it said so far (each asks "sent since MY join?") */
        for (int j = 0; j < k->nrooms; j++) {
            if (k->rooms[j].index != ROOM_INDEX_HELD)
                continue;
            struct hold_waiter *o = hold_find(k->rooms[j].room->hold, c);
            if (o != NULL)
                o->sent |= c->sent_mark;
        }
        c->sent_mark = 0;
        h->waiting[h->nwaiting++] = (struct hold_waiter){
            .c = c, .token = atomic_fetch_add(&hold_tokens, 1) + 1, .since = mono_now()};
        k->rooms[k->nrooms].index = ROOM_INDEX_HELD;
    } else {
        member_append(lr, c);
        k->rooms[k->nrooms].index = lr->count - 1;
    }
    k->nrooms++;
    summary_update(R, c, name, len, 1);
    return 0;
}

static struct hold_waiter *hold_find(struct room_hold *h, const struct conn *c)
{
    for (uint32_t i = 0; h && i < h->nwaiting; i++)
        if (h->waiting[i].c == c)
            return &h->waiting[i];
    return NULL;
}

/* c stops waiting in lr's hold; the hold goes when nobody waits. */
static void hold_unwait(struct local_room *lr, struct conn *c)
{
    struct room_hold *h = lr->hold;
    struct hold_waiter *w = hold_find(h, c);
    RC_ASSERT(w != NULL);
    *w = h->waiting[--h->nwaiting];
    if (h->nwaiting == 0) {
        struct room_part *p = h->part;
        struct local_room *moved = p->holds[--p->nholds];
        p->holds[h->pos] = moved;
        moved->hold->pos = h->pos;
        if (p->nholds == 0 && p->loop != NULL)
            wtimer_stop(p->loop, &p->hold_timer);
        hold_free(h);
        lr->hold = NULL;
    }
}

/* c gets f (the deflate variant z when it fits c) under policy. */
static void deliver_one(struct conn *c, struct frame_ref *f, struct frame_ref *z, int policy,
                        const struct rc_config *cfg)
{
    if (z && c->pmd &&
        deflate_frame_fits(c->pmd_bits, deflate_cfg_bits(cfg), deflate_frame_payload_len(f)))
        f = z;
    conn_deliver(c, f, policy);
}

/* MAIL_DELIVER while members of lr wait: keep the frame for those not
 * released yet. */
static void hold_keep(struct local_room *lr, const struct mail *m, uint32_t cap)
{
    struct room_hold *h = lr->hold;
    uint32_t unreleased = 0;
    for (uint32_t i = 0; i < h->nwaiting; i++)
        unreleased += !h->waiting[i].released;
    if (unreleased == 0)
        return;
    if (h->nheld >= cap) {
        /* over recover_hold: these members cannot be given a gap-free
         * stream; they learn it at room_hold_state (recovered:false) */
        hold_drop_frames(h);
        for (uint32_t i = 0; i < h->nwaiting; i++)
            h->waiting[i].lost = 1;
        return;
    }
    if (h->nheld == h->held_cap) {
        h->held_cap = h->held_cap ? h->held_cap * 2 : 16;
        h->held = rc_xrealloc(h->held, h->held_cap * sizeof(*h->held));
    }
    h->held[h->nheld++] = (struct held_frame){.seq = m->seq,
                                              .exclude = m->conn_id,
                                              .f = frame_ref_get(m->frame),
                                              .z = m->zframe ? frame_ref_get(m->zframe) : NULL,
                                              .policy = (int)m->flags};
}

int room_hold_state(const struct conn *c, const char *name, size_t len)
{
    int i = find_conn_room(c, name, len);
    if (i < 0 || c->cold->rooms[i].index != ROOM_INDEX_HELD)
        return RC_E_NOT_FOUND;
    const struct hold_waiter *w = hold_find(c->cold->rooms[i].room->hold, c);
    RC_ASSERT(w != NULL);
    if (w->released)
        return RC_E_NOT_FOUND;
    return w->lost ? 0 : 1;
}

long room_release(struct rooms *R, struct conn *c, const char *name, size_t len, uint64_t after)
{
    int i = find_conn_room(c, name, len);
    if (i < 0 || c->cold->rooms[i].index != ROOM_INDEX_HELD)
        return RC_E_NOT_FOUND;
    struct local_room *lr = c->cold->rooms[i].room;
    struct room_hold *h = lr->hold;
    struct hold_waiter *w = hold_find(h, c);
    RC_ASSERT(w != NULL);
    if (w->released)
        return RC_E_NOT_FOUND;
    /* What c gets, by reference, taken first: a delivery can close c (slow
     * consumer) and its leave frees the hold. seq 0 (unsequenced) is never
     * in a replay. */
    struct held_frame *out = NULL;
    uint32_t n = 0;
    uint64_t last = after;
    for (uint32_t j = 0; j < h->nheld; j++) {
        const struct held_frame *e = &h->held[j];
        if ((e->seq != 0 && e->seq <= after) || e->exclude == c->id)
            continue;
        if (out == NULL)
            out = rc_xmalloc((h->nheld - j) * sizeof(*out));
        out[n++] = (struct held_frame){
            .f = frame_ref_get(e->f), .z = e->z ? frame_ref_get(e->z) : NULL, .policy = e->policy};
        if (e->seq > last)
            last = e->seq;
    }
    w->released = 1;
    w->after = last;
    /* In seq order, before any later delivery: this runs on the worker that
     * handles them, between two mails. */
    for (uint32_t j = 0; j < n; j++) {
        if (!c->released)
            deliver_one(c, out[j].f, out[j].z, out[j].policy, R->cfg);
        frame_ref_put(out[j].f);
        if (out[j].z)
            frame_ref_put(out[j].z);
    }
    rc_free(out);
    return (long)n;
}

/* c's wait in lr ends with nothing more for c: released, and served
 * nothing (hold_serve skips it) until a close takes it out of the room;
 * what is held for nobody else goes now. */
static void hold_end_quiet(struct local_room *lr, struct conn *c)
{
    struct hold_waiter *e = hold_find(lr->hold, c);
    e->released = 1;
    e->ended = 1;
    e->after = UINT64_MAX;
    uint32_t unreleased = 0;
    for (uint32_t j = 0; j < lr->hold->nwaiting; j++)
        unreleased += !lr->hold->waiting[j].released;
    if (unreleased == 0)
        hold_drop_frames(lr->hold);
}

/* recover_hold_timeout: a wait older than the timeout that nobody released
 * (its handler waits on and on, or lost track of it) ends, and its
 * connection closes 1011: the handler still runs and may yet send part of
 * an answer, so releasing could give a duplicate; the client reconnects and
 * recovers from its last seq. Collected first: a close runs hooks that
 * leave rooms (and free holds). */
static void on_hold_timer(struct wloop *loop, struct wtimer *t)
{
    struct room_part *p = t->data;
    double limit = p->all->cfg->recover_hold_timeout;
    if (p->nholds == 0 || !(limit > 0)) {
        wtimer_stop(loop, t);
        return;
    }
    double now = mono_now();
    struct {
        uint64_t id, token;
    } due[32];
    int n = 0;
    for (uint32_t i = 0; i < p->nholds && n < 32; i++) {
        const struct room_hold *h = p->holds[i]->hold;
        for (uint32_t j = 0; j < h->nwaiting && n < 32; j++) {
            const struct hold_waiter *w = &h->waiting[j];
            if (!w->released && now - w->since >= limit) {
                due[n].id = w->c->id;
                due[n++].token = w->token;
            }
        }
    }
    for (int k = 0; k < n; k++) { /* the rest (over 32) on the next tick */
        struct conn *c = conn_find(p->cs, due[k].id);
        struct conn_cold *kc = c ? c->cold : NULL;
        for (int j = 0; kc && j < kc->nrooms; j++) {
            struct local_room *lr = kc->rooms[j].room;
            const struct hold_waiter *w =
                kc->rooms[j].index == ROOM_INDEX_HELD ? hold_find(lr->hold, c) : NULL;
            if (w == NULL || w->released || w->token != due[k].token)
                continue;
            char why[64];
            snprintf(why, sizeof(why), "over %.3gs (recover_hold_timeout)", limit);
            room_hold_ended(p->stats, lr->name, lr->name_len, c->id, why, "closing it 1011");
            hold_end_quiet(lr, c);
            conn_close(c, 1011, "held join not released in time"); /* RFC 6455 §7.4.1 */
            break;
        }
    }
}

void room_hold_ended(struct worker_stats *stats, const char *name, size_t len, uint64_t conn_id,
                     const char *why, const char *outcome)
{
    static _Thread_local struct rc_ratelimit rl;
    STAT_INC(stats, recover_holds_ended_total);
    int n = len > 64 ? 64 : (int)len;
    rc_log_limited(&rl, 10, RC_LOG_WARN,
                   "room '%.*s': conn %llu held for its replay: %s without conn:release: %s", n,
                   name, (unsigned long long)conn_id, why, outcome);
}

static void hold_timer_arm(struct room_part *p)
{
    double limit = p->all->cfg->recover_hold_timeout;
    if (!(limit > 0) || p->loop == NULL || wtimer_active(&p->hold_timer))
        return;
    double period = limit / 4 < 0.01 ? 0.01 : limit / 4 > 1.0 ? 1.0 : limit / 4;
    wtimer_start(p->loop, &p->hold_timer, period, period);
}

uint64_t room_hold_token(const struct conn *c, const char *name, size_t len)
{
    int i = find_conn_room(c, name, len);
    if (i < 0 || c->cold->rooms[i].index != ROOM_INDEX_HELD)
        return 0;
    const struct hold_waiter *w = hold_find(c->cold->rooms[i].room->hold, c);
    return w != NULL && !w->released ? w->token : 0;
}

int room_hold_end(struct rooms *R, struct conn *c, const char *name, size_t len, uint64_t token,
                  long *queued)
{
    *queued = 0;
    int i = find_conn_room(c, name, len);
    if (token == 0 || i < 0 || c->cold->rooms[i].index != ROOM_INDEX_HELD)
        return RC_E_NOT_FOUND;
    const struct hold_waiter *w = hold_find(c->cold->rooms[i].room->hold, c);
    if (w == NULL || w->released || w->token != token)
        return RC_E_NOT_FOUND;
    if (!w->sent && !c->sent_mark) {
        /* c heard nothing from its handler since the join: the held
         * frames, from the first after the join, are a stream with no
         * gap and no duplicate (as a join without replay gets) */
        long n = room_release(R, c, name, len, 0);
        *queued = n > 0 ? n : 0;
        return ROOM_HOLD_END_RELEASED;
    }
    hold_end_quiet(c->cold->rooms[i].room, c);
    return ROOM_HOLD_END_CLOSE;
}

/* MAIL_DELIVER m, after the fan-out walk: released waiters get it when it
 * is newer than their replay (or unsequenced), and the first newer one
 * makes them ordinary members. */
static void hold_serve(struct room_part *p, struct local_room *lr, const struct mail *m)
{
    struct room_hold *h = lr->hold;
    struct conn *stack[16];
    struct conn **to = h->nwaiting <= 16 ? stack : rc_xmalloc(h->nwaiting * sizeof(*to));
    uint32_t n = 0;
    /* Collected first, then moved, then delivered: a delivery can close a
     * connection, whose leave changes the waiting list (and can free it).
     * Connections are freed only by the reaper, so the pointers hold. */
    for (uint32_t i = 0; i < h->nwaiting; i++) {
        struct hold_waiter *w = &h->waiting[i];
        if (w->released && !w->ended && (m->seq == 0 || m->seq > w->after))
            to[n++] = w->c;
    }
    if (m->seq != 0) {
        for (uint32_t k = 0; k < n; k++) {
            struct conn *c = to[k];
            int i = find_conn_room(c, lr->name, lr->name_len);
            hold_unwait(lr, c);
            member_append(lr, c);
            c->cold->rooms[i].index = lr->count - 1;
        }
    }
    for (uint32_t k = 0; k < n; k++) {
        struct conn *c = to[k];
        if (!c->released && c->id != m->conn_id)
            deliver_one(c, m->frame, m->zframe, (int)m->flags, p->all->cfg);
    }
    if (to != stack)
        rc_free(to);
}

static void maybe_free_local(struct room_part *p, struct local_room *lr)
{
    if (lr->count == 0 && lr->busy == 0 && lr->hold == NULL) {
        strmap_del(&p->local, lr->name, lr->name_len);
        local_room_free(lr);
    }
}

/* Removes c->cold->rooms[i] from its local room (swap-with-last on both arrays). */
static void leave_at(struct rooms *R, struct conn *c, int i)
{
    struct conn_cold *k = c->cold;
    struct local_room *lr = k->rooms[i].room;
    uint32_t idx = k->rooms[i].index;
    uint32_t last = lr->count - 1;
    if (idx == ROOM_INDEX_HELD) {
        hold_unwait(lr, c);
    } else if (idx != last) {
        struct conn *moved = lr->members[last];
        struct conn_cold *mk = moved->cold; /* a member: its cold part holds its rooms */
        lr->members[idx] = moved;
        for (int j = 0; j < mk->nrooms; j++) {
            if (mk->rooms[j].room == lr) {
                mk->rooms[j].index = idx;
                break;
            }
        }
    }
    if (idx != ROOM_INDEX_HELD)
        lr->count--;
    k->rooms[i] = k->rooms[k->nrooms - 1];
    k->nrooms--;
    summary_update(R, c, lr->name, lr->name_len, 0);
    maybe_free_local(part_of(R, c), lr);
}

int room_leave(struct rooms *R, struct conn *c, const char *name, size_t len)
{
    int i = find_conn_room(c, name, len);
    if (i < 0)
        return RC_E_NOT_FOUND;
    leave_at(R, c, i);
    if (c->cold->nrooms == 0) { /* the last: the array and maybe the cold part go */
        rc_free(c->cold->rooms);
        c->cold->rooms = NULL;
        c->cold->rooms_cap = 0;
        conn_cold_trim(c);
    }
    return 0;
}

/* The release (and refusal) hook: leaves every room. */
static void on_conn_release(void *ctx, struct conn *c)
{
    struct rooms *R = ctx;
    if (c->cold == NULL)
        return;
    while (c->cold->nrooms > 0)
        leave_at(R, c, c->cold->nrooms - 1);
    rc_free(c->cold->rooms);
    c->cold->rooms = NULL;
    c->cold->rooms_cap = 0;
    if (!c->released) /* refused: the release frees the rest */
        conn_cold_trim(c);
}

/* ------------------------------------------------------------------------
 * publish: any worker -> bus (sequence, encode, store) -> owner -> members
 * ------------------------------------------------------------------------ */

int room_publish(struct rooms *R, int worker, const char *name, size_t len, const void *payload,
                 size_t plen, unsigned flags, uint64_t exclude)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    struct bus_publish p = {.room = name,
                            .room_len = len,
                            .data = payload,
                            .len = plen,
                            .flags = flags,
                            .exclude = exclude};
    return R->bus->ops->publish(R->bus, worker, &p, NULL, NULL);
}

int room_publish_ack(struct rooms *R, int worker, const char *name, size_t len, const void *payload,
                     size_t plen, unsigned flags, bus_ack_cb ack, void *ud)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    struct bus_publish p = {
        .room = name, .room_len = len, .data = payload, .len = plen, .flags = flags};
    return R->bus->ops->publish(R->bus, worker, &p, ack, ud);
}

long room_list(struct rooms *R,
               void (*cb)(void *ud, const char *name, size_t len, long members, uint64_t seq),
               void *ud)
{
    long n = 0;
    for (int i = 0; i < R->nworkers; i++) {
        struct room_part *o = &R->part[i];
        pthread_mutex_lock(&o->lock);
        for (size_t b = 0; b < o->owned.nbuckets; b++)
            for (struct strmap_ent *e = o->owned.buckets[b]; e; e = e->next) {
                struct room *r = e->val;
                pthread_mutex_lock(&r->lock);
                long members = (long)r->members.count;
                uint64_t seq = r->last_seq;
                pthread_mutex_unlock(&r->lock);
                cb(ud, r->name, r->name_len, members, seq);
                n++;
            }
        pthread_mutex_unlock(&o->lock);
    }
    return n;
}

void room_deliver_frame(struct rooms *R, const char *name, size_t len, const struct store_msg *m,
                        struct frame_ref *f, uint64_t exclude)
{
    int self = rooms_owner_of(R, name, len);
    struct room_part *p = &R->part[self];
    struct room *r = lock_room_create(R, name, len); /* we are its owner */
    if (m && m->seq > r->last_seq)
        r->last_seq = m->seq;
    uint32_t targets[RC_MAX_WORKERS];
    memcpy(targets, r->per_worker, sizeof(uint32_t) * (size_t)R->nworkers);
    int policy = r->policy;
    uint32_t deflate_members = r->deflate_members;
    pthread_mutex_unlock(&r->lock);
    /* The permessage-deflate variant of the encoded frame: compressed once,
     * here on the owner, for every deflate member on every worker
     * (server_no_context_takeover makes it shareable), and only when the room
     * has such members. The plain frame is built in any case: the store
     * keeps it, and a member that joined since the count was read still
     * gets a valid message. */
    struct frame_ref *z = NULL;
    if (deflate_members > 0)
        z = deflate_frame(p->pmd, p->stats, R->cfg, deflate_cfg_bits(R->cfg), f);
    /* Posting happens in seq order on this (the owner's) thread, and each
     * mailbox is FIFO per sender, so every worker delivers in seq order. */
    for (int i = 0; i < R->nworkers; i++) {
        if (targets[i] == 0)
            continue;
        struct mail *d = mail_new(MAIL_DELIVER, name, len, NULL, 0);
        d->frame = frame_ref_get(f);
        d->zframe = z ? frame_ref_get(z) : NULL;
        d->conn_id = exclude;
        d->seq = m ? m->seq : 0;
        d->flags = (uint32_t)policy;
        mail_post(p->mb, R->part[i].mb, d);
    }
    if (z)
        frame_ref_put(z);
}

void room_deliver(struct rooms *R, const char *name, size_t len, const struct store_msg *m,
                  uint64_t exclude)
{
    /* The bus delivers the payload as stored: stamped already. */
    uint32_t off;
    struct frame_ref *f = msgframe_encode(name, len, m->data, m->len, m->flags & ~ROOM_PUB_STAMP,
                                          m->seq, m->ts_ms, &off);
    if (f == NULL) {
        rc_warn("room %.*s: out of memory encoding a %zu-byte message", (int)len, name, m->len);
        return;
    }
    room_deliver_frame(R, name, len, m, f, exclude);
    frame_ref_put(f);
}

/* Consecutive deliveries of one room merged into one walk over its members
 * (the MAIL_DELIVER run receiver). A worker that fell behind finds several
 * of a room's publishes in its mailbox at once (the owner posts each of an
 * iteration's publishes, a saturated loop reads many per iteration). One
 * walk with the frames end to end gives an idle member the whole run by one
 * reference, where a walk per publish copied each one after the first into
 * every member's queue: the member touched once instead of once per
 * message, and the kernel sees the same single writev either way. Only what
 * the per-mail walk would do identically merges: same room, same excluded
 * sender and policy, no permessage-deflate variant, not the "latest" policy
 * (it replaces by message), no held joins in the room; up to
 * DELIVER_MERGE_MAX bytes. */
#define DELIVER_MERGE_MAX 16384

static int deliver_mergeable(const struct mail *a, const struct mail *b)
{
    return b->zframe == NULL && b->conn_id == a->conn_id && b->flags == a->flags &&
           b->name_len == a->name_len && memcmp(b->name, a->name, a->name_len) == 0;
}

/* The k mails from m on (`bytes` of frames in all) end to end in one new
 * frame, their frames in parts[]; NULL when out of memory. */
static struct frame_ref *merge_frames(struct mail *m, unsigned k, size_t bytes,
                                      struct frame_ref **parts)
{
    struct frame_ref *f = frame_ref_try_new(bytes, 0);
    if (f == NULL)
        return NULL;
    f->tag = m->frame->tag;
    for (unsigned i = 0; i < k; i++, m = m->next) {
        parts[i] = m->frame;
        memcpy(f->data + f->len, m->frame->data, m->frame->len);
        f->len += m->frame->len;
    }
    return f;
}

/* On a worker with members: the fan-out of the k >= 1 mails from m on
 * (k > 1: mergeable, deliver_mergeable, `bytes` of frames in all). */
static void fan_out(struct room_part *p, struct mail *m, unsigned k, size_t bytes)
{
    struct local_room *lr = strmap_get(&p->local, m->name, m->name_len);
    if (lr == NULL)
        return;
    struct frame_ref *parts[MAIL_RUN_MAX];
    struct frame_ref *merged = NULL;
    if (k > 1) {
        /* held joins keep state per message: one walk each (so on no memory) */
        merged = lr->hold == NULL ? merge_frames(m, k, bytes, parts) : NULL;
        if (merged == NULL) {
            for (unsigned i = 0; i < k; i++, m = m->next)
                fan_out(p, m, 1, m->frame->len);
            return;
        }
    }
    const struct rc_config *cfg = p->all->cfg;
    if (rc_unlikely(lr->hold != NULL)) /* once per mail, not per member */
        hold_keep(lr, m, (uint32_t)cfg->recover_hold);
    lr->busy++;
    uint64_t exclude = m->conn_id;
    struct conn **mark = conn_fanout_begin(p->cs); /* the fan-out window (conn.h) */
    struct deliver_batch plain;
    if (merged)
        conn_batch_run(&plain, merged, parts, k, (int)m->flags, cfg);
    else
        conn_batch_begin(&plain, m->frame, (int)m->flags, cfg);
    /* Backwards: a member that leaves during the walk (a slow-consumer close
     * running a disconnect hook) swaps an already-visited member into its
     * slot, so nobody is skipped or visited twice. */
    if (m->zframe == NULL) {
        conn_deliver_walk(&lr->members, &lr->count, exclude, &plain);
    } else {
        unsigned zbits = deflate_cfg_bits(cfg);
        size_t raw = deflate_frame_payload_len(m->frame);
        struct deliver_batch z;
        conn_batch_begin(&z, m->zframe, (int)m->flags, cfg);
        for (uint32_t i = lr->count; i-- > 0;) {
            if (i >= lr->count)
                continue;
            struct conn *c = lr->members[i];
            if (c->id == exclude)
                continue;
            if (c->pmd && deflate_frame_fits(c->pmd_bits, zbits, raw)) {
                conn_batch_end(&plain); /* one batch counted at a time */
                conn_deliver_batched(c, &z);
            } else {
                conn_batch_end(&z);
                conn_deliver_batched(c, &plain);
            }
        }
        conn_batch_end(&z);
    }
    conn_batch_end(&plain);
    if (rc_unlikely(lr->hold != NULL)) /* after the walk: a promoted member is not walked */
        hold_serve(p, lr, m);
    conn_fanout_end(p->cs, mark);
    lr->busy--;
    maybe_free_local(p, lr);
    if (merged)
        frame_ref_put(merged);
}

/* MAIL_DELIVER's run receiver (mailbox.h): per mail, or merged. */
static void on_deliver_run(void *ctx, struct mail *m, unsigned n)
{
    struct room_part *p = ctx;
    while (n > 0) {
        unsigned k = 1;
        size_t bytes = m->frame->len;
        struct mail *e = m->next;
        if (m->zframe == NULL && (int)m->flags != SLOW_LATEST) {
            while (k < n && deliver_mergeable(m, e) && bytes + e->frame->len <= DELIVER_MERGE_MAX) {
                bytes += e->frame->len;
                e = e->next;
                k++;
            }
        }
        fan_out(p, m, k, bytes);
        n -= k;
        m = e; /* not read when n is 0: the run may end before e */
    }
}

/* ------------------------------------------------------------------------
 * reads (any worker)
 * ------------------------------------------------------------------------ */

/* Locks and returns the room, or NULL. Unlock with pthread_mutex_unlock(&r->lock). */
static struct room *lock_room(struct rooms *R, const char *name, size_t len)
{
    struct room_part *owner = &R->part[rooms_owner_of(R, name, len)];
    pthread_mutex_lock(&owner->lock);
    struct room *r = strmap_get(&owner->owned, name, len);
    if (r)
        pthread_mutex_lock(&r->lock);
    pthread_mutex_unlock(&owner->lock);
    return r;
}

void room_set_epoch(struct rooms *R, const char *name, size_t len, const char *epoch)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return;
    struct room *r = lock_room_create(R, name, len);
    snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    pthread_mutex_unlock(&r->lock);
}

void room_note_seq(struct rooms *R, const char *name, size_t len, uint64_t seq)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return;
    struct room *r = lock_room_create(R, name, len);
    if (seq > r->last_seq)
        r->last_seq = seq;
    pthread_mutex_unlock(&r->lock);
}

void room_epoch(struct rooms *R, const char *name, size_t len, char *buf)
{
    buf[0] = '\0';
    struct room *r = lock_room(R, name, len);
    if (r == NULL)
        return;
    memcpy(buf, r->epoch, sizeof(r->epoch));
    pthread_mutex_unlock(&r->lock);
}

long room_count(struct rooms *R, const char *name, size_t len)
{
    struct room *r = lock_room(R, name, len);
    if (r == NULL)
        return RC_E_NOT_FOUND;
    long n = (long)r->members.count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

struct members_walk {
    void (*cb)(void *ud, uint64_t id);
    void *ud;
};

static void members_fn(void *ud, const char *key, size_t klen, void *val)
{
    struct members_walk *mw = ud;
    uint64_t id;
    memcpy(&id, key, sizeof(id));
    mw->cb(mw->ud, id);
}

long room_members(struct rooms *R, const char *name, size_t len,
                  void (*cb)(void *ud, uint64_t conn_id), void *ud)
{
    struct room *r = lock_room(R, name, len);
    if (r == NULL)
        return RC_E_NOT_FOUND;
    struct members_walk mw = {cb, ud};
    strmap_foreach(&r->members, members_fn, &mw);
    long n = (long)r->members.count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

struct presence_walk {
    struct strmap seen;
    void (*cb)(void *ud, const char *user, size_t ulen);
    void *ud;
    long n;
};

static void presence_fn(void *ud, const char *key, size_t klen, void *val)
{
    struct presence_walk *pw = ud;
    const char *user = val;
    if (user == NULL)
        return;
    size_t ul = strlen(user);
    if (strmap_get(&pw->seen, user, ul))
        return;
    strmap_put(&pw->seen, user, ul, (void *)1);
    pw->cb(pw->ud, user, ul);
    pw->n++;
}

long room_presence(struct rooms *R, const char *name, size_t len,
                   void (*cb)(void *ud, const char *user, size_t ulen), void *ud)
{
    struct room *r = lock_room(R, name, len);
    if (r == NULL)
        return RC_E_NOT_FOUND;
    struct presence_walk pw;
    strmap_init(&pw.seen);
    pw.cb = cb;
    pw.ud = ud;
    pw.n = 0;
    strmap_foreach(&r->members, presence_fn, &pw);
    pthread_mutex_unlock(&r->lock);
    strmap_clear(&pw.seen, NULL);
    return pw.n;
}

int room_kv_get(struct rooms *R, const char *name, size_t len, const char *key, size_t klen,
                char **val, size_t *vlen)
{
    *val = NULL;
    struct room *r = lock_room(R, name, len);
    if (r == NULL)
        return RC_E_NOT_FOUND;
    const char *v = kv_get(&r->data, key, klen, vlen);
    if (v)
        *val = rc_xstrndup(v, *vlen);
    pthread_mutex_unlock(&r->lock);
    return v ? 0 : RC_E_NOT_FOUND;
}

int room_kv_set(struct rooms *R, const char *name, size_t len, const char *key, size_t klen,
                const char *val, size_t vlen)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    struct room *r = lock_room_create(R, name, len);
    int rc = kv_set(&r->data, key, klen, val, vlen);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int room_set_policy(struct rooms *R, const char *name, size_t len, int policy)
{
    if (len == 0 || len > ROOM_NAME_MAX || policy < SLOW_DROP || policy > SLOW_LATEST)
        return RC_E_INVAL;
    struct room *r = lock_room_create(R, name, len);
    r->policy = policy;
    pthread_mutex_unlock(&r->lock);
    return 0;
}
