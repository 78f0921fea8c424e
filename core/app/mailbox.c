#include "mailbox.h"

#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "closecode.h"
#include "conn.h"
#include "log.h"
#include "room.h"
#include "worker.h"

#define MAIL_CACHE 256
#ifndef RC_SANITIZED
static _Thread_local struct mail *mail_cache[MAIL_CACHE];
static _Thread_local int mail_cached;
#endif

/* The inline payload starts 16-byte aligned after the name (a NEW_CONN
 * mail carries a sockaddr_storage). */
static size_t payload_offset(size_t name_len)
{
    return (name_len + 1 + 15) & ~(size_t)15;
}

struct mail *mail_new(uint32_t type, const char *name, size_t name_len, const void *payload,
                      size_t payload_len)
{
    size_t need = payload_offset(name_len) + (payload ? payload_len : 0);
    struct mail *m;
    if (need <= MAIL_INLINE) {
#ifndef RC_SANITIZED
        if (mail_cached > 0)
            m = mail_cache[--mail_cached];
        else
#endif
            m = rc_xmalloc(sizeof(*m) + MAIL_INLINE);
        memset(m, 0, sizeof(*m));
        m->inline_cap = MAIL_INLINE;
    } else {
        m = rc_xmalloc(sizeof(*m) + name_len + 1);
        memset(m, 0, sizeof(*m));
    }
    m->type = type;
    m->name_len = name_len;
    if (name_len)
        memcpy(m->name, name, name_len);
    m->name[name_len] = '\0';
    if (payload) {
        if (m->inline_cap) {
            m->payload = m->name + payload_offset(name_len);
        } else {
            m->payload = rc_try_malloc(payload_len ? payload_len : 1);
            if (m->payload == NULL) {
                rc_free(m);
                return NULL;
            }
        }
        memcpy(m->payload, payload, payload_len);
        m->payload_len = payload_len;
    }
    return m;
}

void mail_free(struct mail *m)
{
    if (m->frame)
        frame_ref_put(m->frame);
    if (m->inline_cap == 0) {
        rc_free(m->payload);
        rc_free(m);
        return;
    }
#ifndef RC_SANITIZED
    if (mail_cached < MAIL_CACHE) {
        mail_cache[mail_cached++] = m;
        return;
    }
#endif
    rc_free(m);
}

void mail_cache_flush(void)
{
#ifndef RC_SANITIZED
    while (mail_cached > 0)
        rc_free(mail_cache[--mail_cached]);
#endif
}

static void handle(struct worker *w, struct mail *m)
{
    switch (m->type) {
    case MAIL_PUBLISH:
        room_handle_publish(w, m);
        break;
    case MAIL_DELIVER:
        room_handle_deliver(w, m);
        break;
    case MAIL_SEND_CONN: {
        struct conn *c = conn_find(w, m->conn_id);
        if (c)
            conn_send_ref(c, m->frame);
        break;
    }
    case MAIL_CLOSE_CONN: {
        struct conn *c = conn_find(w, m->conn_id);
        if (c)
            conn_close(c, m->flags ? m->flags : WS_CLOSE_NORMAL, m->payload);
        break;
    }
    case MAIL_NEW_CONN:
        if (w->draining)
            close((int)m->conn_id);
        else
            conn_new(w, (int)m->conn_id, (const struct sockaddr_storage *)m->payload);
        break;
    case MAIL_RELOAD:
        if (w->handler->reload)
            w->handler->reload(w);
        break;
    default:
        rc_panic("unknown mail type %u", m->type);
    }
    mail_free(m);
}

static void drain_list(struct worker *w, struct mail *m)
{
    while (m) {
        struct mail *next = m->next;
        handle(w, m);
        m = next;
    }
}

void mailbox_drain_local(struct worker *w)
{
    /* Handling may post more local mail: loop until the list stays empty. */
    while (w->local_head) {
        struct mail *m = w->local_head;
        w->local_head = w->local_tail = NULL;
        drain_list(w, m);
    }
}

static void on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    pthread_mutex_lock(&w->mbox_lock);
    struct mail *m = w->mbox_head;
    w->mbox_head = w->mbox_tail = NULL;
    pthread_mutex_unlock(&w->mbox_lock);
    drain_list(w, m);
}

void mail_post(struct worker *from, struct worker *to, struct mail *m)
{
    m->next = NULL;
    if (from == to) {
        if (to->local_tail)
            to->local_tail->next = m;
        else
            to->local_head = m;
        to->local_tail = m;
        return;
    }
    pthread_mutex_lock(&to->mbox_lock);
    int was_empty = to->mbox_head == NULL;
    if (to->mbox_tail)
        to->mbox_tail->next = m;
    else
        to->mbox_head = m;
    to->mbox_tail = m;
    pthread_mutex_unlock(&to->mbox_lock);
    /* ev_async coalesces; one wakeup per empty->non-empty transition is enough
     * because the receiver drains everything it finds. */
    if (was_empty)
        ev_async_send(to->loop, &to->mbox_async);
}

void mailbox_init(struct worker *w)
{
    pthread_mutex_init(&w->mbox_lock, NULL);
    w->mbox_head = w->mbox_tail = NULL;
    w->local_head = w->local_tail = NULL;
    ev_async_init(&w->mbox_async, on_async);
    w->mbox_async.data = w;
    ev_async_start(w->loop, &w->mbox_async);
}

static void free_list(struct mail *m)
{
    while (m) {
        struct mail *n = m->next;
        if (m->type == MAIL_NEW_CONN)
            close((int)m->conn_id); /* a handed-off socket nobody took */
        mail_free(m);
        m = n;
    }
}

void mailbox_destroy(struct worker *w)
{
    free_list(w->mbox_head);
    free_list(w->local_head);
    w->mbox_head = w->mbox_tail = w->local_head = w->local_tail = NULL;
    if (w->loop)
        ev_async_stop(w->loop, &w->mbox_async);
    pthread_mutex_destroy(&w->mbox_lock);
}
