#include "room.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "conn.h"
#include "err.h"
#include "kv.h"
#include "log.h"
#include "mailbox.h"
#include "worker.h"
#include "ws_frame.h"

#define CONN_MAX_ROOMS 256
/* An empty room (no members) is kept this long so late joiners still get
 * its history and room.data, then collected by its owner. */
#define ROOM_IDLE_TTL 300.0
#define ROOM_GC_INTERVAL 10.0

struct hist_ent {
    uint64_t seq;
    struct frame_ref *f; /* owned reference */
    uint32_t off;        /* payload offset in f->data */
};

/* Owned by the owner worker's `rooms` map; every field below `lock` is read
 * or written only with `lock` held (seq/history are written by the owner
 * alone, but read by other workers through room_history). */
struct room {
    pthread_mutex_t lock;
    uint64_t seq;
    struct hist_ent *hist; /* ring of history_size entries, owned */
    size_t hist_cap, hist_start, hist_count;
    struct strmap members; /* conn id (8 bytes) -> char *user (owned, may be NULL) */
    uint32_t per_worker[RC_MAX_WORKERS];
    struct kv data;
    double empty_since; /* monotonic seconds; 0 while it has members */
    int policy;         /* enum slow_policy for this room's deliveries */
    size_t name_len;
    char name[];
};

/* My (one worker's) members of a room. Owned by worker->local_rooms. */
struct local_room {
    struct conn **members; /* owned array, borrowed pointers */
    uint32_t count, cap;
    uint32_t busy; /* > 0 while a fan-out walks members: freeing is deferred */
    size_t name_len;
    char name[];
};

static struct room *lock_room(struct server *s, const char *name, size_t len);

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int owner_of(const struct server *s, const char *name, size_t len)
{
    return (int)(strmap_hash(name, len) % (uint64_t)s->nworkers);
}

static void room_free(void *p)
{
    struct room *r = p;
    for (size_t i = 0; i < r->hist_count; i++)
        frame_ref_put(r->hist[(r->hist_start + i) % r->hist_cap].f);
    rc_free(r->hist);
    strmap_clear(&r->members, rc_free);
    kv_clear(&r->data);
    pthread_mutex_destroy(&r->lock);
    rc_free(r);
}

/* With the owner's rooms_lock held. */
static struct room *get_or_create(struct worker *owner, const char *name, size_t len)
{
    struct room *r = strmap_get(&owner->rooms, name, len);
    if (r)
        return r;
    r = rc_xcalloc(1, sizeof(*r) + len + 1);
    pthread_mutex_init(&r->lock, NULL);
    strmap_init(&r->members);
    kv_init(&r->data);
    r->hist_cap = owner->cfg->history_size;
    r->name_len = len;
    memcpy(r->name, name, len);
    r->empty_since = mono_now();
    r->policy = owner->cfg->slow_policy;
    strmap_put(&owner->rooms, name, len, r);
    STAT_INC(&owner->stats, rooms);
    return r;
}

/* Locks and returns the room, creating it on its owner if needed. Unlock
 * with pthread_mutex_unlock(&r->lock). Lock order: rooms_lock, then r->lock. */
static struct room *lock_room_create(struct server *s, const char *name, size_t len)
{
    struct worker *owner = &s->workers[owner_of(s, name, len)];
    pthread_mutex_lock(&owner->rooms_lock);
    struct room *r = get_or_create(owner, name, len);
    pthread_mutex_lock(&r->lock);
    pthread_mutex_unlock(&owner->rooms_lock);
    return r;
}

static void on_gc(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    double now = mono_now();
    pthread_mutex_lock(&w->rooms_lock);
    for (size_t i = 0; i < w->rooms.nbuckets; i++) {
        struct strmap_ent **pp = &w->rooms.buckets[i];
        while (*pp) {
            struct room *r = (*pp)->val;
            pthread_mutex_lock(&r->lock);
            int dead = r->members.count == 0 && now - r->empty_since > ROOM_IDLE_TTL;
            pthread_mutex_unlock(&r->lock);
            if (dead) {
                struct strmap_ent *e = *pp;
                *pp = e->next;
                w->rooms.count--;
                rc_free(e);
                room_free(r);
                STAT_DEC(&w->stats, rooms);
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    pthread_mutex_unlock(&w->rooms_lock);
}

static void local_room_free(void *p)
{
    struct local_room *lr = p;
    rc_free(lr->members);
    rc_free(lr);
}

void rooms_init(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        strmap_init(&w->rooms);
        strmap_init(&w->local_rooms);
        pthread_mutex_init(&w->rooms_lock, NULL);
        ev_timer_init(&w->room_gc, on_gc, ROOM_GC_INTERVAL, ROOM_GC_INTERVAL);
        w->room_gc.data = w;
        ev_timer_start(w->loop, &w->room_gc);
        ev_unref(w->loop); /* the GC timer alone does not keep a loop alive */
    }
}

void rooms_destroy(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        strmap_clear(&w->local_rooms, local_room_free);
        strmap_clear(&w->rooms, room_free);
        pthread_mutex_destroy(&w->rooms_lock);
    }
}

/* ------------------------------------------------------------------------
 * membership (on the conn's worker)
 * ------------------------------------------------------------------------ */

static int find_conn_room(const struct conn *c, const char *name, size_t len)
{
    for (int i = 0; i < c->nrooms; i++) {
        const struct local_room *lr = c->rooms[i].room;
        if (lr->name_len == len && memcmp(lr->name, name, len) == 0)
            return i;
    }
    return -1;
}

int room_is_member(const struct conn *c, const char *name, size_t len)
{
    return find_conn_room(c, name, len) >= 0;
}

static void summary_update(struct conn *c, const char *name, size_t len, int join)
{
    struct server *s = c->w->srv;
    struct room *r = lock_room_create(s, name, len);
    if (join) {
        char *user = c->user ? rc_xstrdup(c->user) : NULL;
        rc_free(strmap_put(&r->members, &c->id, sizeof(c->id), user));
        r->per_worker[c->w->id]++;
        r->empty_since = 0;
    } else {
        rc_free(strmap_del(&r->members, &c->id, sizeof(c->id)));
        r->per_worker[c->w->id]--;
        if (r->members.count == 0)
            r->empty_since = mono_now();
    }
    pthread_mutex_unlock(&r->lock);
}

void room_update_user(struct conn *c)
{
    struct server *s = c->w->srv;
    for (int i = 0; i < c->nrooms; i++) {
        const struct local_room *lr = c->rooms[i].room;
        struct room *r = lock_room(s, lr->name, lr->name_len);
        if (r == NULL)
            continue;
        char *user = c->user ? rc_xstrdup(c->user) : NULL;
        rc_free(strmap_put(&r->members, &c->id, sizeof(c->id), user));
        pthread_mutex_unlock(&r->lock);
    }
}

int room_join(struct conn *c, const char *name, size_t len)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    if (c->released || !(c->state == CONN_OPEN || (c->state == CONN_HTTP && c->upgrading)))
        return RC_E_CLOSED;
    if (find_conn_room(c, name, len) >= 0)
        return RC_E_EXISTS;
    if (c->nrooms >= CONN_MAX_ROOMS)
        return RC_E_LIMIT;
    struct worker *w = c->w;
    struct local_room *lr = strmap_get(&w->local_rooms, name, len);
    if (lr == NULL) {
        lr = rc_xcalloc(1, sizeof(*lr) + len + 1);
        lr->name_len = len;
        memcpy(lr->name, name, len);
        strmap_put(&w->local_rooms, name, len, lr);
    }
    if (lr->count == lr->cap) {
        lr->cap = lr->cap ? lr->cap * 2 : 4;
        lr->members = rc_xrealloc(lr->members, lr->cap * sizeof(*lr->members));
    }
    if (c->nrooms == c->rooms_cap) {
        c->rooms_cap = (uint16_t)(c->rooms_cap ? c->rooms_cap * 2 : 2);
        c->rooms = rc_xrealloc(c->rooms, c->rooms_cap * sizeof(*c->rooms));
    }
    c->rooms[c->nrooms].room = lr;
    c->rooms[c->nrooms].index = lr->count;
    c->nrooms++;
    lr->members[lr->count++] = c;
    summary_update(c, name, len, 1);
    return 0;
}

static void maybe_free_local(struct worker *w, struct local_room *lr)
{
    if (lr->count == 0 && lr->busy == 0) {
        strmap_del(&w->local_rooms, lr->name, lr->name_len);
        local_room_free(lr);
    }
}

/* Removes c->rooms[i] from its local room (swap-with-last on both arrays). */
static void leave_at(struct conn *c, int i)
{
    struct local_room *lr = c->rooms[i].room;
    uint32_t idx = c->rooms[i].index;
    uint32_t last = lr->count - 1;
    if (idx != last) {
        struct conn *moved = lr->members[last];
        lr->members[idx] = moved;
        for (int k = 0; k < moved->nrooms; k++) {
            if (moved->rooms[k].room == lr) {
                moved->rooms[k].index = idx;
                break;
            }
        }
    }
    lr->count--;
    c->rooms[i] = c->rooms[c->nrooms - 1];
    c->nrooms--;
    summary_update(c, lr->name, lr->name_len, 0);
    maybe_free_local(c->w, lr);
}

int room_leave(struct conn *c, const char *name, size_t len)
{
    int i = find_conn_room(c, name, len);
    if (i < 0)
        return RC_E_NOT_FOUND;
    leave_at(c, i);
    return 0;
}

void room_leave_all(struct conn *c)
{
    while (c->nrooms > 0)
        leave_at(c, c->nrooms - 1);
    rc_free(c->rooms);
    c->rooms = NULL;
    c->rooms_cap = 0;
}

/* ------------------------------------------------------------------------
 * publish: any worker -> owner (sequence, history, encode once) -> members
 * ------------------------------------------------------------------------ */

int room_publish(struct worker *w, const char *name, size_t len, const void *payload, size_t plen,
                 unsigned flags, uint64_t exclude)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    struct server *s = w->srv;
    struct mail *m = mail_new(MAIL_PUBLISH, name, len, payload, plen);
    if (m == NULL)
        return RC_E_NOMEM;
    m->flags = flags;
    m->conn_id = exclude;
    mail_post(w, &s->workers[owner_of(s, name, len)], m);
    return 0;
}

/* Where to splice ,"seq":N,"ts":T into a JSON object text: the index of its
 * final '}', or -1 if it does not look like an object. *empty is set when
 * the object has no members ("{}"). */
static long splice_point(const char *p, size_t n, int *empty)
{
    size_t a = 0;
    while (a < n && (p[a] == ' ' || p[a] == '\t' || p[a] == '\n' || p[a] == '\r'))
        a++;
    long b = (long)n - 1;
    while (b >= 0 && (p[b] == ' ' || p[b] == '\t' || p[b] == '\n' || p[b] == '\r'))
        b--;
    if (a >= n || b < 0 || p[a] != '{' || p[b] != '}' || (long)a >= b)
        return -1;
    long k = b - 1;
    while (k > (long)a && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r'))
        k--;
    *empty = k == (long)a;
    return b;
}

static struct frame_ref *encode(struct mail *m, uint64_t seq, uint32_t *off)
{
    unsigned opcode = (m->flags & ROOM_PUB_BINARY) ? WS_OP_BINARY : WS_OP_TEXT;
    char stamp[96];
    size_t slen = 0;
    long cut = -1;
    if (m->flags & ROOM_PUB_STAMP) {
        int empty = 0;
        cut = splice_point(m->payload, m->payload_len, &empty);
        if (cut >= 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            slen = (size_t)snprintf(stamp, sizeof(stamp), "%s\"seq\":%llu,\"ts\":%lld}",
                                    empty ? "" : ",", (unsigned long long)seq, ms);
        }
    }
    size_t plen = cut >= 0 ? (size_t)cut + slen : m->payload_len;
    size_t hl = ws_frame_header_size(plen, 0);
    struct frame_ref *f = frame_ref_try_new(hl + plen, 0);
    if (f == NULL)
        return NULL;
    ws_frame_encode_header(f->data, 1, 0, opcode, plen, NULL);
    if (cut >= 0) {
        memcpy(f->data + hl, m->payload, (size_t)cut);
        memcpy(f->data + hl + cut, stamp, slen);
    } else if (m->payload_len) {
        memcpy(f->data + hl, m->payload, m->payload_len);
    }
    f->len = hl + plen;
    f->tag = strmap_hash(m->name, m->name_len) | 1; /* never 0: 0 means untagged */
    *off = (uint32_t)hl;
    return f;
}

void room_handle_publish(struct worker *w, struct mail *m)
{
    struct server *s = w->srv;
    struct room *r = lock_room_create(s, m->name, m->name_len); /* w is its owner */
    uint64_t seq = ++r->seq;
    uint32_t off = 0;
    struct frame_ref *f = encode(m, seq, &off);
    if (f == NULL) {
        r->seq--;
        pthread_mutex_unlock(&r->lock);
        rc_warn("room %s: out of memory encoding a %zu-byte message", m->name, m->payload_len);
        return;
    }
    if (r->hist_cap > 0) {
        if (r->hist == NULL)
            r->hist = rc_xcalloc(r->hist_cap, sizeof(*r->hist));
        if (r->hist_count == r->hist_cap) {
            frame_ref_put(r->hist[r->hist_start].f);
            r->hist_start = (r->hist_start + 1) % r->hist_cap;
            r->hist_count--;
        }
        struct hist_ent *e = &r->hist[(r->hist_start + r->hist_count) % r->hist_cap];
        e->seq = seq;
        e->f = frame_ref_get(f);
        e->off = off;
        r->hist_count++;
    }
    uint32_t targets[RC_MAX_WORKERS];
    memcpy(targets, r->per_worker, sizeof(uint32_t) * (size_t)s->nworkers);
    int policy = r->policy;
    pthread_mutex_unlock(&r->lock);
    /* Posting happens in seq order on this (the owner's) thread, and each
     * mailbox is FIFO per sender, so every worker delivers in seq order. */
    for (int i = 0; i < s->nworkers; i++) {
        if (targets[i] == 0)
            continue;
        struct mail *d = mail_new(MAIL_DELIVER, m->name, m->name_len, NULL, 0);
        d->frame = frame_ref_get(f);
        d->conn_id = m->conn_id;
        d->flags = (uint32_t)policy;
        mail_post(w, &s->workers[i], d);
    }
    frame_ref_put(f);
}

void room_handle_deliver(struct worker *w, struct mail *m)
{
    struct local_room *lr = strmap_get(&w->local_rooms, m->name, m->name_len);
    if (lr == NULL)
        return;
    lr->busy++;
    /* Backwards: a member that leaves during the walk (a slow-consumer close
     * running a disconnect hook) swaps an already-visited member into its
     * slot, so nobody is skipped or visited twice. */
    for (uint32_t i = lr->count; i-- > 0;) {
        if (i >= lr->count)
            continue;
        struct conn *c = lr->members[i];
        if (c->id != m->conn_id)
            conn_deliver(c, m->frame, (int)m->flags);
    }
    lr->busy--;
    maybe_free_local(w, lr);
}

/* ------------------------------------------------------------------------
 * reads (any worker)
 * ------------------------------------------------------------------------ */

/* Locks and returns the room, or NULL. Unlock with pthread_mutex_unlock(&r->lock). */
static struct room *lock_room(struct server *s, const char *name, size_t len)
{
    struct worker *owner = &s->workers[owner_of(s, name, len)];
    pthread_mutex_lock(&owner->rooms_lock);
    struct room *r = strmap_get(&owner->rooms, name, len);
    if (r)
        pthread_mutex_lock(&r->lock);
    pthread_mutex_unlock(&owner->rooms_lock);
    return r;
}

long room_count(struct server *s, const char *name, size_t len)
{
    struct room *r = lock_room(s, name, len);
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

long room_members(struct server *s, const char *name, size_t len,
                  void (*cb)(void *ud, uint64_t conn_id), void *ud)
{
    struct room *r = lock_room(s, name, len);
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

long room_presence(struct server *s, const char *name, size_t len,
                   void (*cb)(void *ud, const char *user, size_t ulen), void *ud)
{
    struct room *r = lock_room(s, name, len);
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

long room_history(struct server *s, const char *name, size_t len, uint64_t since, size_t limit,
                  void (*cb)(void *ud, uint64_t seq, const char *payload, size_t plen), void *ud)
{
    struct room *r = lock_room(s, name, len);
    if (r == NULL)
        return RC_E_NOT_FOUND;
    size_t first = 0;
    while (first < r->hist_count && r->hist[(r->hist_start + first) % r->hist_cap].seq <= since)
        first++;
    size_t avail = r->hist_count - first;
    if (limit > 0 && avail > limit)
        first += avail - limit;
    long n = 0;
    for (size_t i = first; i < r->hist_count; i++) {
        const struct hist_ent *e = &r->hist[(r->hist_start + i) % r->hist_cap];
        cb(ud, e->seq, (const char *)e->f->data + e->off, e->f->len - e->off);
        n++;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

uint64_t room_last_seq(struct server *s, const char *name, size_t len)
{
    struct room *r = lock_room(s, name, len);
    if (r == NULL)
        return 0;
    uint64_t seq = r->seq;
    pthread_mutex_unlock(&r->lock);
    return seq;
}

int room_kv_get(struct server *s, const char *name, size_t len, const char *key, size_t klen,
                char **val, size_t *vlen)
{
    *val = NULL;
    struct room *r = lock_room(s, name, len);
    if (r == NULL)
        return RC_E_NOT_FOUND;
    const char *v = kv_get(&r->data, key, klen, vlen);
    if (v)
        *val = rc_xstrndup(v, *vlen);
    pthread_mutex_unlock(&r->lock);
    return v ? 0 : RC_E_NOT_FOUND;
}

int room_kv_set(struct server *s, const char *name, size_t len, const char *key, size_t klen,
                const char *val, size_t vlen)
{
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    struct room *r = lock_room_create(s, name, len);
    int rc = kv_set(&r->data, key, klen, val, vlen);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int room_set_policy(struct server *s, const char *name, size_t len, int policy)
{
    if (len == 0 || len > ROOM_NAME_MAX || policy < SLOW_DROP || policy > SLOW_LATEST)
        return RC_E_INVAL;
    struct room *r = lock_room_create(s, name, len);
    r->policy = policy;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

long room_owned_count(struct worker *w)
{
    pthread_mutex_lock(&w->rooms_lock);
    long n = (long)w->rooms.count;
    pthread_mutex_unlock(&w->rooms_lock);
    return n;
}
