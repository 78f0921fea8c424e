#include "users.h"

#include <string.h>

#include "alloc.h"
#include "conn.h"
#include "err.h"
#include "frame_ref.h"
#include "mailbox.h"
#include "room.h"
#include "worker.h"
#include "ws_frame.h"

#define USER_MAX USERS_NAME_MAX

/* One user's connections (ids), owned by server->users under users_lock. */
struct user_conns {
    uint64_t *ids;
    uint32_t n, cap;
};

void users_init(struct server *s)
{
    pthread_mutex_init(&s->users_lock, NULL);
    strmap_init(&s->users);
    strmap_init(&s->user_of);
}

static void user_conns_free(void *p)
{
    struct user_conns *u = p;
    rc_free(u->ids);
    rc_free(u);
}

void users_destroy(struct server *s)
{
    strmap_clear(&s->users, user_conns_free);
    strmap_clear(&s->user_of, rc_free);
    pthread_mutex_destroy(&s->users_lock);
}

/* With users_lock held. */
static void index_remove(struct server *s, const char *user, uint64_t id)
{
    size_t ul = strlen(user);
    struct user_conns *u = strmap_get(&s->users, user, ul);
    if (u == NULL)
        return;
    for (uint32_t i = 0; i < u->n; i++) {
        if (u->ids[i] == id) {
            u->ids[i] = u->ids[--u->n];
            break;
        }
    }
    if (u->n == 0)
        user_conns_free(strmap_del(&s->users, user, ul));
}

int conn_set_user(struct conn *c, const char *user, size_t len)
{
    if (user && (len == 0 || len > USER_MAX || memchr(user, '\0', len)))
        return RC_E_INVAL;
    struct server *s = c->w->srv;
    if (c->user && user && strlen(c->user) == len && memcmp(c->user, user, len) == 0)
        return 0;
    pthread_mutex_lock(&s->users_lock);
    if (c->user)
        index_remove(s, c->user, c->id);
    if (user) {
        struct user_conns *u = strmap_get(&s->users, user, len);
        if (u == NULL) {
            u = rc_xcalloc(1, sizeof(*u));
            strmap_put(&s->users, user, len, u);
        }
        if (u->n == u->cap) {
            u->cap = u->cap ? u->cap * 2 : 2;
            u->ids = rc_xrealloc(u->ids, u->cap * sizeof(*u->ids));
        }
        u->ids[u->n++] = c->id;
        rc_free(strmap_put(&s->user_of, &c->id, sizeof(c->id), rc_xstrndup(user, len)));
    } else {
        rc_free(strmap_del(&s->user_of, &c->id, sizeof(c->id)));
    }
    pthread_mutex_unlock(&s->users_lock);
    rc_free(c->user);
    c->user = user ? rc_xstrndup(user, len) : NULL;
    if (c->nrooms)
        room_update_user(c);
    return 0;
}

long users_send(struct worker *w, const char *user, size_t ulen, const void *payload, size_t plen,
                int binary)
{
    struct server *s = w->srv;
    uint64_t local[16];
    uint64_t *ids = local;
    uint32_t n = 0;
    pthread_mutex_lock(&s->users_lock);
    struct user_conns *u = strmap_get(&s->users, user, ulen);
    if (u && u->n > 0) {
        n = u->n;
        if (n > 16)
            ids = rc_xmalloc(n * sizeof(*ids));
        memcpy(ids, u->ids, n * sizeof(*ids));
    }
    pthread_mutex_unlock(&s->users_lock);
    if (n == 0)
        return 0;
    long sent = 0;
    struct frame_ref *f = frame_ref_encode(binary ? WS_OP_BINARY : WS_OP_TEXT, 0, payload, plen);
    if (f) {
        for (uint32_t i = 0; i < n; i++) {
            int wid = worker_of_conn_id(ids[i]);
            if (wid == w->id) {
                struct conn *c = conn_find(w, ids[i]);
                if (c && conn_send_ref(c, f) == 0)
                    sent++;
            } else if (wid < s->nworkers) {
                struct mail *m = mail_new(MAIL_SEND_CONN, NULL, 0, NULL, 0);
                m->conn_id = ids[i];
                m->frame = frame_ref_get(f);
                mail_post(w, &s->workers[wid], m);
                sent++;
            }
        }
        frame_ref_put(f);
    }
    if (ids != local)
        rc_free(ids);
    return sent;
}

size_t users_name_of(struct server *s, uint64_t id, char *buf, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&s->users_lock);
    const char *u = strmap_get(&s->user_of, &id, sizeof(id));
    if (u && cap > 0) {
        n = strlen(u);
        if (n >= cap)
            n = cap - 1;
        memcpy(buf, u, n);
        buf[n] = '\0';
    }
    pthread_mutex_unlock(&s->users_lock);
    return n;
}

long users_count(struct server *s, const char *user, size_t ulen)
{
    pthread_mutex_lock(&s->users_lock);
    struct user_conns *u = strmap_get(&s->users, user, ulen);
    long n = u ? (long)u->n : 0;
    pthread_mutex_unlock(&s->users_lock);
    return n;
}
