#include "heartbeat.h"

static void arm(struct tlist *tl)
{
    if (rc_list_empty(&tl->head)) {
        wtimer_stop(tl->loop, &tl->timer);
        return;
    }
    struct tnode *h = rc_list_first(&tl->head, struct tnode, link);
    double after = h->stamp + tl->timeout - wloop_now(tl->loop);
    if (after < 0.001)
        after = 0.001;
    wtimer_start(tl->loop, &tl->timer, after, 0.);
}

static void on_timer(struct wloop *loop, struct wtimer *t)
{
    struct tlist *tl = t->data;
    double now = wloop_now(loop);
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

void tlist_init(struct tlist *tl, struct wloop *loop, double timeout, tlist_expire_cb cb,
                void *data)
{
    rc_list_init(&tl->head);
    tl->loop = loop;
    tl->timeout = timeout;
    tl->expire = cb;
    tl->data = data;
    wtimer_init(&tl->timer, on_timer, tl);
}

void tlist_add(struct tlist *tl, struct tnode *n)
{
    if (n->on)
        rc_list_remove(&n->link);
    n->stamp = wloop_now(tl->loop);
    n->on = tl;
    rc_list_push_back(&tl->head, &n->link);
    if (!wtimer_active(&tl->timer))
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
    wtimer_stop(tl->loop, &tl->timer);
}
