#include "users.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "frame_ref.h"
#include "idmap.h"
#include "ws_frame.h"

/* One user's connections (ids), owned by users->by_user under lock. */
struct user_conns {
    uint64_t *ids;
    uint32_t n, cap;
};

void users_init(struct users *u, int nworkers, struct bus *bus)
{
    memset(u, 0, sizeof(*u));
    u->bus = bus;
    pthread_mutex_init(&u->lock, NULL);
    strmap_init(&u->by_user);
    strmap_init(&u->user_of);
    u->nworkers = nworkers;
}

static void user_conns_free(void *p)
{
    struct user_conns *uc = p;
    rc_free(uc->ids);
    rc_free(uc);
}

void users_destroy(struct users *u)
{
    strmap_clear(&u->by_user, user_conns_free);
    strmap_clear(&u->user_of, rc_free);
    pthread_mutex_destroy(&u->lock);
}

/* With lock held. Returns 1 when it removed the user's last connection. */
static int index_remove(struct users *u, const char *user, uint64_t id)
{
    size_t ul = strlen(user);
    struct user_conns *uc = strmap_get(&u->by_user, user, ul);
    if (uc == NULL)
        return 0;
    for (uint32_t i = 0; i < uc->n; i++) {
        if (uc->ids[i] == id) {
            uc->ids[i] = uc->ids[--uc->n];
            break;
        }
    }
    if (uc->n > 0)
        return 0;
    user_conns_free(strmap_del(&u->by_user, user, ul));
    return 1;
}

/* The user hook: c's user (conn_user) changed from old (conn_set_user, or the release). */
static void on_user(void *ctx, struct conn *c, const char *old)
{
    struct users *u = ctx;
    int gone = 0, first = 0;
    pthread_mutex_lock(&u->lock);
    if (old)
        gone = index_remove(u, old, c->id);
    const char *user = conn_user(c);
    if (user) {
        size_t len = strlen(user);
        struct user_conns *uc = strmap_get(&u->by_user, user, len);
        if (uc == NULL) {
            uc = rc_xcalloc(1, sizeof(*uc));
            strmap_put(&u->by_user, user, len, uc);
        }
        if (uc->n == uc->cap) {
            uc->cap = uc->cap ? uc->cap * 2 : 2;
            uc->ids = rc_xrealloc(uc->ids, uc->cap * sizeof(*uc->ids));
        }
        uc->ids[uc->n++] = c->id;
        first = uc->n == 1;
        rc_free(strmap_put(&u->user_of, &c->id, sizeof(c->id), rc_xstrndup(user, len)));
    } else {
        rc_free(strmap_del(&u->user_of, &c->id, sizeof(c->id)));
    }
    pthread_mutex_unlock(&u->lock);
    /* A cluster bus (un)subscribes the user's channel; outside the lock. */
    if (u->bus && u->bus->ops->user_interest) {
        if (gone)
            u->bus->ops->user_interest(u->bus, old, strlen(old), 0);
        if (first)
            u->bus->ops->user_interest(u->bus, user, strlen(user), 1);
    }
}

void users_attach(struct users *u, int worker, struct connset *cs, struct mailbox *mb)
{
    u->cs[worker] = cs;
    u->mb[worker] = mb;
    conn_hook_user(cs, on_user, u);
}

/* Copies user's connection ids under the lock into *ids (a 16-entry
 * buffer, or a fresh allocation when there are more: the caller frees it
 * when *ids changed). Returns how many. */
static uint32_t snapshot_ids(struct users *u, const char *user, size_t ulen, uint64_t **ids)
{
    uint32_t n = 0;
    pthread_mutex_lock(&u->lock);
    struct user_conns *uc = strmap_get(&u->by_user, user, ulen);
    if (uc && uc->n > 0) {
        n = uc->n;
        if (n > 16)
            *ids = rc_xmalloc(n * sizeof(**ids));
        memcpy(*ids, uc->ids, n * sizeof(**ids));
    }
    pthread_mutex_unlock(&u->lock);
    return n;
}

long users_send(struct users *u, int from, const char *user, size_t ulen, const void *payload,
                size_t plen, int binary)
{
    uint64_t local[16];
    uint64_t *ids = local;
    uint32_t n = snapshot_ids(u, user, ulen, &ids);
    if (n == 0)
        return 0;
    long sent = 0;
    struct frame_ref *f = frame_ref_encode(binary ? WS_OP_BINARY : WS_OP_TEXT, 0, payload, plen);
    if (f) {
        for (uint32_t i = 0; i < n; i++) {
            int wid = idmap_tag_of(ids[i]);
            if (wid == from && from >= 0) {
                struct conn *c = conn_find(u->cs[from], ids[i]);
                if (c && conn_send_ref(c, f) == 0)
                    sent++;
            } else if (wid < u->nworkers) {
                struct mail *m = mail_new(MAIL_SEND_CONN, NULL, 0, NULL, 0);
                m->conn_id = ids[i];
                m->frame = frame_ref_get(f);
                mail_post(from >= 0 ? u->mb[from] : NULL, u->mb[wid], m);
                sent++;
            }
        }
        frame_ref_put(f);
    }
    if (ids != local)
        rc_free(ids);
    return sent;
}

long users_close(struct users *u, int from, const char *user, size_t ulen, unsigned code,
                 const char *reason, size_t rlen)
{
    uint64_t local[16];
    uint64_t *ids = local;
    uint32_t n = snapshot_ids(u, user, ulen, &ids);
    /* the reason with its NUL (conn_close wants a C string) */
    char tmp[124];
    if (rlen > sizeof(tmp) - 1)
        rlen = sizeof(tmp) - 1;
    if (rlen)
        memcpy(tmp, reason, rlen);
    tmp[rlen] = '\0';
    long closed = 0;
    for (uint32_t i = 0; i < n; i++) {
        int wid = idmap_tag_of(ids[i]);
        if (wid >= u->nworkers)
            continue;
        /* by mail even to ourselves: the close runs in the mailbox drain,
         * never inside whatever asked for it */
        struct mail *m = mail_new(MAIL_CLOSE_CONN, NULL, 0, tmp, rlen + 1);
        if (m == NULL)
            break;
        m->conn_id = ids[i];
        m->flags = code;
        mail_post(from >= 0 ? u->mb[from] : NULL, u->mb[wid], m);
        closed++;
    }
    if (ids != local)
        rc_free(ids);
    return closed;
}

size_t users_name_of(struct users *u, uint64_t id, char *buf, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&u->lock);
    const char *name = strmap_get(&u->user_of, &id, sizeof(id));
    if (name && cap > 0) {
        n = strlen(name);
        if (n >= cap)
            n = cap - 1;
        memcpy(buf, name, n);
        buf[n] = '\0';
    }
    pthread_mutex_unlock(&u->lock);
    return n;
}

long users_conn_ids(struct users *u, const char *user, size_t ulen, uint64_t *ids, size_t cap)
{
    pthread_mutex_lock(&u->lock);
    struct user_conns *uc = strmap_get(&u->by_user, user, ulen);
    long n = uc ? (long)uc->n : 0;
    if (uc)
        memcpy(ids, uc->ids, (n < (long)cap ? (size_t)n : cap) * sizeof(*ids));
    pthread_mutex_unlock(&u->lock);
    return n;
}
