#include "store_mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "err.h"
#include "frame_ref.h"
#include "strmap.h"

struct mem_ent {
    uint64_t seq;
    int64_t ts_ms;
    uint32_t flags;
    uint32_t off;        /* payload offset in f->data */
    struct frame_ref *f; /* owned reference */
};

/* Owned by the store's map. Fields below lock: with lock held. */
struct mem_room {
    pthread_mutex_t lock;
    uint64_t last_seq;
    char epoch[STORE_EPOCH_MAX + 1];
    struct mem_ent *ring; /* cap entries, allocated on the first append */
    size_t start, count;
};

struct store_mem {
    struct store base;
    size_t cap;
    pthread_mutex_t lock; /* the map; lock order: map, then room */
    struct strmap rooms;  /* name -> struct mem_room * */
    atomic_uint_fast64_t epochs;
    uint64_t boot; /* start time: epochs differ across restarts */
};

#define MEM(st) ((struct store_mem *)(st))

static void room_free(void *p)
{
    struct mem_room *r = p;
    for (size_t i = 0; r->ring && i < r->count; i++)
        frame_ref_put(r->ring[i].f); /* start > 0 only once the ring is full */
    rc_free(r->ring);
    pthread_mutex_destroy(&r->lock);
    rc_free(r);
}

static struct mem_ent *ent_at(struct store_mem *m, struct mem_room *r, size_t i)
{
    return &r->ring[(r->start + i) % m->cap];
}

/* Locks and returns the room, or NULL. */
static struct mem_room *lock_room(struct store_mem *m, const char *room, size_t len)
{
    pthread_mutex_lock(&m->lock);
    struct mem_room *r = strmap_get(&m->rooms, room, len);
    if (r)
        pthread_mutex_lock(&r->lock);
    pthread_mutex_unlock(&m->lock);
    return r;
}

static int mem_room_open(struct store *st, const char *room, size_t len, struct store_room *out)
{
    struct store_mem *m = MEM(st);
    pthread_mutex_lock(&m->lock);
    struct mem_room *r = strmap_get(&m->rooms, room, len);
    if (r == NULL) {
        r = rc_xcalloc(1, sizeof(*r));
        pthread_mutex_init(&r->lock, NULL);
        uint64_t n = atomic_fetch_add(&m->epochs, 1) + 1;
        snprintf(r->epoch, sizeof(r->epoch), "m%llx%llx", (unsigned long long)(m->boot & 0xffffff),
                 (unsigned long long)(n & 0xffffffff));
        strmap_put(&m->rooms, room, len, r);
    }
    pthread_mutex_lock(&r->lock);
    pthread_mutex_unlock(&m->lock);
    out->last_seq = r->last_seq;
    memcpy(out->epoch, r->epoch, sizeof(out->epoch));
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static int mem_append(struct store *st, const char *room, size_t len, const struct store_msg *msg,
                      struct frame_ref *frame)
{
    struct store_mem *m = MEM(st);
    uint32_t off = 0;
    if (m->cap == 0) {
        frame = NULL; /* only the last seq is kept */
    } else if (frame) {
        frame_ref_get(frame);
        off = (uint32_t)((const uint8_t *)msg->data - frame->data);
    } else {
        frame = frame_ref_try_new(msg->len, 0);
        if (frame == NULL)
            return RC_E_NOMEM;
        memcpy(frame->data, msg->data, msg->len);
        frame->len = msg->len;
    }
    struct mem_room *r = lock_room(m, room, len);
    if (r == NULL) { /* append without room_open: open it now */
        struct store_room info;
        mem_room_open(st, room, len, &info);
        r = lock_room(m, room, len);
    }
    r->last_seq = msg->seq;
    struct frame_ref *drop = NULL;
    if (m->cap > 0) {
        if (r->ring == NULL)
            r->ring = rc_xcalloc(m->cap, sizeof(*r->ring));
        if (r->count == m->cap) {
            drop = r->ring[r->start].f;
            r->start = (r->start + 1) % m->cap;
            r->count--;
        }
        struct mem_ent *e = ent_at(m, r, r->count++);
        e->seq = msg->seq;
        e->ts_ms = msg->ts_ms;
        e->flags = msg->flags;
        e->off = off;
        e->f = frame;
    }
    pthread_mutex_unlock(&r->lock);
    if (drop)
        frame_ref_put(drop);
    return 0;
}

/* The entries of r matching q: [*first, *first + *n) in ring order. */
static void select_range(struct store_mem *m, struct mem_room *r, uint64_t since, uint64_t before,
                         size_t limit, int newest, size_t *first, size_t *n)
{
    size_t a = 0;
    while (a < r->count && ent_at(m, r, a)->seq <= since)
        a++;
    size_t b = a;
    while (b < r->count && (before == 0 || ent_at(m, r, b)->seq < before))
        b++;
    size_t avail = b - a;
    if (limit > 0 && avail > limit) {
        if (newest)
            a = b - limit;
        avail = limit;
    }
    *first = a;
    *n = avail;
}

struct read_job {
    struct store_mem *m;
    store_read_cb cb;
    void *ud;
    struct store_query q; /* its sink (if any) runs just before cb */
    struct store_room info;
    size_t n;
    struct mem_ent ents[];
};

static void read_done(void *arg)
{
    struct read_job *j = arg;
    struct store_msg stack[32];
    struct store_msg *msgs = j->n <= 32 ? stack : rc_xmalloc(j->n * sizeof(*msgs));
    for (size_t i = 0; i < j->n; i++) {
        const struct mem_ent *e = &j->ents[i];
        msgs[i] = (struct store_msg){.seq = e->seq,
                                     .ts_ms = e->ts_ms,
                                     .flags = e->flags,
                                     .data = (const char *)e->f->data + e->off,
                                     .len = e->f->len - e->off};
    }
    store_sink_feed(&j->q, &j->info, msgs, j->n);
    j->cb(j->ud, 0, &j->info, msgs, j->n);
    for (size_t i = 0; i < j->n; i++)
        frame_ref_put(j->ents[i].f);
    if (msgs != stack)
        rc_free(msgs);
    rc_free(j);
}

static int mem_read(struct store *st, int worker, const char *room, size_t len,
                    const struct store_query *q, store_read_cb cb, void *ud)
{
    struct store_mem *m = MEM(st);
    if (q->limit < 1 || q->limit > STORE_READ_MAX || worker < 0 || worker >= st->host.nworkers)
        return RC_E_INVAL;
    struct read_job *j;
    struct mem_room *r = lock_room(m, room, len);
    if (r == NULL) {
        /* A room read before its first message gets its epoch now, so that
         * `joined` and later reads agree on it. */
        struct store_room info;
        mem_room_open(st, room, len, &info);
        r = lock_room(m, room, len);
    }
    if (r == NULL) {
        j = rc_xcalloc(1, sizeof(*j));
    } else {
        size_t first, n;
        select_range(m, r, q->since, q->before, q->limit, q->newest, &first, &n);
        j = rc_xcalloc(1, sizeof(*j) + n * sizeof(j->ents[0]));
        for (size_t i = 0; i < n; i++) {
            j->ents[i] = *ent_at(m, r, first + i);
            frame_ref_get(j->ents[i].f);
        }
        j->n = n;
        j->info.last_seq = r->last_seq;
        memcpy(j->info.epoch, r->epoch, sizeof(j->info.epoch));
        pthread_mutex_unlock(&r->lock);
    }
    j->m = m;
    j->cb = cb;
    j->ud = ud;
    j->q = *q;
    st->host.post(st->host.ctx, worker, read_done, j);
    return 0;
}

static int mem_health(struct store *st, char *why, size_t cap)
{
    if (cap > 0)
        why[0] = '\0';
    return 0;
}

static void mem_flush(struct store *st)
{
}

static void mem_destroy(struct store *st)
{
    struct store_mem *m = MEM(st);
    strmap_clear(&m->rooms, room_free);
    pthread_mutex_destroy(&m->lock);
    rc_free(m);
}

static void mem_room_close(struct store *st, const char *room, size_t len)
{
    struct store_mem *m = MEM(st);
    pthread_mutex_lock(&m->lock);
    struct mem_room *r = strmap_del(&m->rooms, room, len);
    pthread_mutex_unlock(&m->lock);
    if (r) {
        /* Nobody else can hold it: readers lock it only under the map lock. */
        pthread_mutex_lock(&r->lock);
        pthread_mutex_unlock(&r->lock);
        room_free(r);
    }
}

static const struct store_ops mem_ops = {
    .name = "memory",
    .room_open = mem_room_open,
    .append = mem_append,
    .read = mem_read,
    .health = mem_health,
    .flush = mem_flush,
    .destroy = mem_destroy,
    .room_close = mem_room_close,
};

struct store *store_mem_new(const struct store_host *host, size_t history_size)
{
    struct store_mem *m = rc_xcalloc(1, sizeof(*m));
    m->base.ops = &mem_ops;
    m->base.host = *host;
    m->cap = history_size;
    pthread_mutex_init(&m->lock, NULL);
    strmap_init(&m->rooms);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->boot = (uint64_t)ts.tv_sec;
    return &m->base;
}
