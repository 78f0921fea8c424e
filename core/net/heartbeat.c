#include "heartbeat.h"

static void arm(struct tlist *tl)
{
    if (rc_list_empty(&tl->head)) {
        ev_timer_stop(tl->loop, &tl->timer);
        return;
    }
    struct tnode *h = rc_list_first(&tl->head, struct tnode, link);
    ev_tstamp after = h->stamp + tl->timeout - ev_now(tl->loop);
    if (after < 0.001)
        after = 0.001;
    ev_timer_stop(tl->loop, &tl->timer);
    ev_timer_set(&tl->timer, after, 0.);
    ev_timer_start(tl->loop, &tl->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct tlist *tl = t->data;
    ev_tstamp now = ev_now(loop);
    /* Bounded batch per firing keeps one timer from stalling the loop; the
     * rest expire on the immediate re-arm. */
    int budget = 4096;
    while (!rc_list_empty(&tl->head) && budget-- > 0) {
        struct tnode *h = rc_list_first(&tl->head, struct tnode, link);
        if (h->stamp + tl->timeout > now)
            break;
        tlist_remove(h);
        tl->expire(tl, h);
    }
    arm(tl);
}

void tnode_init(struct tnode *n)
{
    rc_list_init(&n->link);
    n->stamp = 0;
    n->on = NULL;
}

void tlist_init(struct tlist *tl, struct ev_loop *loop, ev_tstamp timeout, tlist_expire_cb cb,
                void *data)
{
    rc_list_init(&tl->head);
    tl->loop = loop;
    tl->timeout = timeout;
    tl->expire = cb;
    tl->data = data;
    ev_timer_init(&tl->timer, on_timer, timeout, 0.);
    tl->timer.data = tl;
}

void tlist_add(struct tlist *tl, struct tnode *n)
{
    if (n->on)
        rc_list_remove(&n->link);
    n->stamp = ev_now(tl->loop);
    n->on = tl;
    rc_list_push_back(&tl->head, &n->link);
    if (!ev_is_active(&tl->timer))
        arm(tl);
}

void tlist_remove(struct tnode *n)
{
    if (n->on) {
        rc_list_remove(&n->link);
        n->on = NULL;
    }
}

void tlist_stop(struct tlist *tl)
{
    ev_timer_stop(tl->loop, &tl->timer);
}
