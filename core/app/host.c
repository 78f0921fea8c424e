#include "host.h"

void host_init(struct host *h, struct rooms *rooms, struct users *users, int n)
{
    h->rooms = rooms;
    h->users = users;
    h->nworkers = n;
}

void host_attach(struct host *h, int worker, struct mailbox *mb)
{
    h->mb[worker] = mb;
}

/* The calling thread's worker index, or -1 off the workers. */
static int current(const struct host *h)
{
    struct mailbox *mb = mailbox_current();
    for (int i = 0; mb && i < h->nworkers; i++)
        if (h->mb[i] == mb)
            return i;
    return -1;
}

static void post(void *ctx, int worker, void (*fn)(void *arg), void *arg)
{
    struct host *h = ctx;
    int self = current(h);
    mail_call(self >= 0 ? h->mb[self] : NULL, h->mb[worker], fn, arg);
}

static int owner_of(void *ctx, const char *room, size_t len)
{
    struct host *h = ctx;
    return rooms_owner_of(h->rooms, room, len);
}

static void deliver(void *ctx, const char *room, size_t len, const struct store_msg *m,
                    uint64_t exclude)
{
    struct host *h = ctx;
    room_deliver(h->rooms, room, len, m, exclude);
}

static void deliver_frame(void *ctx, const char *room, size_t len, const struct store_msg *m,
                          struct frame_ref *frame, uint64_t exclude)
{
    struct host *h = ctx;
    room_deliver_frame(h->rooms, room, len, m, frame, exclude);
}

static long deliver_user(void *ctx, const char *user, size_t ulen, const void *data, size_t len,
                         int binary)
{
    struct host *h = ctx;
    return users_send(h->users, current(h), user, ulen, data, len, binary);
}

static long close_user(void *ctx, const char *user, size_t ulen, unsigned code, const char *reason,
                       size_t rlen)
{
    struct host *h = ctx;
    return users_close(h->users, current(h), user, ulen, code, reason, rlen);
}

static void epoch_changed(void *ctx, const char *room, size_t len, const char *epoch)
{
    struct host *h = ctx;
    room_set_epoch(h->rooms, room, len, epoch);
}

static void room_head(void *ctx, const char *room, size_t len, uint64_t seq)
{
    struct host *h = ctx;
    room_note_seq(h->rooms, room, len, seq);
}

struct bus_host host_bus(struct host *h)
{
    return (struct bus_host){
        .base = {.ctx = h, .nworkers = h->nworkers, .post = post},
        .owner_of = owner_of,
        .deliver = deliver,
        .deliver_user = deliver_user,
        .epoch_changed = epoch_changed,
        .deliver_frame = deliver_frame,
        .close_user = close_user,
        .room_head = room_head,
    };
}
