#include "drain.h"

#include <math.h>

#include "closecode.h"
#include "conn.h"
#include "listener.h"
#include "worker.h"

/* Closes up to w->drain_batch open connections. Returns how many are left. */
static size_t close_batch(struct worker *w)
{
    size_t done = 0, left = 0;
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &w->conns)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        if (c->state != CONN_OPEN)
            continue;
        if (done < w->drain_batch) {
            conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
            done++;
        } else {
            left++;
        }
    }
    return left;
}

static void on_pace(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    if (close_batch(w) == 0)
        ev_timer_stop(loop, t);
}

void drain_begin(struct worker *w)
{
    listener_close(&w->tls_lst);
    size_t open = 0;
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &w->conns)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        if (c->state == CONN_HTTP)
            conn_release(c);
        else if (c->state == CONN_OPEN)
            open++;
    }
    double ticks = floor(w->cfg->drain_time / DRAIN_TICK);
    if (ticks < 1)
        ticks = 1;
    w->drain_batch = (size_t)ceil((double)open / ticks);
    if (w->drain_batch == 0)
        w->drain_batch = 1;
    if (close_batch(w) > 0) {
        ev_timer_init(&w->drain_pace, on_pace, DRAIN_TICK, DRAIN_TICK);
        w->drain_pace.data = w;
        ev_timer_start(w->loop, &w->drain_pace);
    }
}

void drain_stop(struct worker *w)
{
    if (ev_is_active(&w->drain_pace))
        ev_timer_stop(w->loop, &w->drain_pace);
}
