#include "bus_local.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "msgframe.h"
#include "strmap.h"

struct seq_state {
    uint64_t last; /* the last seq given */
};

struct bus_local {
    struct bus base;
    struct store *store; /* borrowed */
    struct strmap *seqs; /* per worker: room -> struct seq_state *, that worker's thread only */
};

/* One publish on its way: A -> owner (sequence) -> A (ack). */
struct pub_job {
    struct bus_local *b;
    int from, owner;
    bus_ack_cb ack;
    void *ud;
    uint32_t flags;
    int status;
    uint64_t exclude;
    uint64_t seq;
    size_t room_len, len;
    char *data;  /* inside this block, after room */
    char room[]; /* NUL-terminated */
};

static void ack_done(void *arg)
{
    struct pub_job *j = arg;
    j->ack(j->ud, j->status, j->seq);
    rc_free(j);
}

static void finish(struct pub_job *j)
{
    if (j->ack) {
        const struct bus_host *h = &j->b->base.host;
        h->base.post(h->base.ctx, j->from, ack_done, j);
    } else {
        rc_free(j);
    }
}

/* On the owner worker: sequence, encode once, store, deliver. */
static void sequence(void *arg)
{
    struct pub_job *j = arg;
    struct bus_local *b = j->b;
    const struct bus_host *h = &b->base.host;
    struct store *st = b->store;
    struct strmap *seqs = &b->seqs[j->owner];
    struct seq_state *s = strmap_get(seqs, j->room, j->room_len);
    if (s == NULL) {
        struct store_room info = {0};
        int rc = st->ops->room_open(st, j->room, j->room_len, &info);
        if (rc < 0)
            rc_warn("room %s: store %s: %s; its seq starts at 0", j->room, st->ops->name,
                    rc_strerror(rc));
        s = rc_xcalloc(1, sizeof(*s));
        s->last = rc < 0 ? 0 : info.last_seq;
        strmap_put(seqs, j->room, j->room_len, s);
    }
    uint64_t seq = s->last + 1;
    int64_t ts = msgframe_now_ms();
    uint32_t off = 0;
    struct frame_ref *f =
        msgframe_encode(j->room, j->room_len, j->data, j->len, j->flags, seq, ts, &off);
    if (f == NULL) {
        rc_warn("room %s: out of memory encoding a %zu-byte message", j->room, j->len);
        j->status = RC_E_NOMEM;
        finish(j);
        return;
    }
    struct store_msg m = {.seq = seq,
                          .ts_ms = ts,
                          .flags = j->flags,
                          .data = (const char *)f->data + off,
                          .len = f->len - off};
    int rc = st->ops->append(st, j->room, j->room_len, &m, f);
    if (rc < 0) {
        frame_ref_put(f);
        j->status = rc;
        finish(j);
        return;
    }
    s->last = seq;
    h->deliver_frame(h->base.ctx, j->room, j->room_len, &m, f, j->exclude);
    frame_ref_put(f);
    j->seq = seq;
    finish(j);
}

static int bl_publish(struct bus *bus, int worker, const struct bus_publish *p, bus_ack_cb ack,
                      void *ud)
{
    struct bus_local *b = (struct bus_local *)bus;
    const struct bus_host *h = &bus->host;
    struct pub_job *j = rc_try_malloc(sizeof(*j) + p->room_len + 1 + p->len);
    if (j == NULL)
        return RC_E_NOMEM;
    memset(j, 0, sizeof(*j));
    j->b = b;
    j->from = worker;
    j->owner = h->owner_of(h->base.ctx, p->room, p->room_len);
    j->ack = ack;
    j->ud = ud;
    j->flags = p->flags;
    j->exclude = p->exclude;
    j->room_len = p->room_len;
    memcpy(j->room, p->room, p->room_len);
    j->room[p->room_len] = '\0';
    j->data = j->room + p->room_len + 1;
    j->len = p->len;
    if (p->len)
        memcpy(j->data, p->data, p->len);
    h->base.post(h->base.ctx, j->owner, sequence, j);
    return 0;
}

/* One node: nothing to subscribe to. */
static void bl_interest(struct bus *b, const char *name, size_t len, int on)
{
}

struct user_job {
    bus_ack_cb ack;
    void *ud;
    long count;
};

static void user_done(void *arg)
{
    struct user_job *j = arg;
    j->ack(j->ud, 0, (uint64_t)j->count);
    rc_free(j);
}

/* Acks a user send or disconnect with its count, later on the caller's worker
 * (the same turn-later contract as the other bus ops); no ack, no post. */
static void post_user_ack(const struct bus_host *h, int worker, long n, bus_ack_cb ack, void *ud)
{
    if (ack == NULL)
        return;
    struct user_job *j = rc_xmalloc(sizeof(*j));
    j->ack = ack;
    j->ud = ud;
    j->count = n;
    h->base.post(h->base.ctx, worker, user_done, j);
}

static int bl_send_to_user(struct bus *bus, int worker, const char *user, size_t ulen,
                           const void *data, size_t len, int binary, bus_ack_cb ack, void *ud)
{
    const struct bus_host *h = &bus->host;
    long n = h->deliver_user(h->base.ctx, user, ulen, data, len, binary);
    post_user_ack(h, worker, n, ack, ud);
    return 0;
}

static int bl_disconnect_user(struct bus *bus, int worker, const char *user, size_t ulen,
                              unsigned code, const char *reason, size_t rlen, bus_ack_cb ack,
                              void *ud)
{
    const struct bus_host *h = &bus->host;
    long n = h->close_user(h->base.ctx, user, ulen, code, reason, rlen);
    post_user_ack(h, worker, n, ack, ud);
    return 0;
}

static int bl_health(struct bus *b, char *why, size_t cap)
{
    if (cap > 0)
        why[0] = '\0';
    return 0;
}

static void bl_destroy(struct bus *bus)
{
    struct bus_local *b = (struct bus_local *)bus;
    for (int i = 0; i < bus->host.base.nworkers; i++)
        strmap_clear(&b->seqs[i], rc_free);
    rc_free(b->seqs);
    rc_free(b);
}

static void bl_room_close(struct bus *bus, const char *room, size_t len)
{
    struct bus_local *b = (struct bus_local *)bus;
    const struct bus_host *h = &bus->host;
    int owner = h->owner_of(h->base.ctx, room, len);
    rc_free(strmap_del(&b->seqs[owner], room, len));
}

static const struct bus_ops local_ops = {
    .name = "local",
    .publish = bl_publish,
    .room_interest = bl_interest,
    .user_interest = bl_interest,
    .send_to_user = bl_send_to_user,
    .disconnect_user = bl_disconnect_user,
    .presence_set = NULL,
    .presence = NULL,
    .presence_count = NULL,
    .health = bl_health,
    .stats = NULL,
    .destroy = bl_destroy,
    .room_close = bl_room_close,
};

struct bus *bus_local_new(const struct bus_host *host, struct store *store)
{
    struct bus_local *b = rc_xcalloc(1, sizeof(*b));
    b->base.ops = &local_ops;
    b->base.host = *host;
    b->store = store;
    b->seqs = rc_xcalloc((size_t)host->base.nworkers, sizeof(*b->seqs));
    for (int i = 0; i < host->base.nworkers; i++)
        strmap_init(&b->seqs[i]);
    return &b->base;
}
