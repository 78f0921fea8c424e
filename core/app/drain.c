#include "drain.h"

#include <math.h>

#include "closecode.h"

/* Closes up to d->batch open connections. Returns how many are left. */
static size_t close_batch(struct drain *d)
{
    size_t done = 0, left = 0;
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &d->cs->conns)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        if (c->state != CONN_OPEN)
            continue;
        if (done < d->batch) {
            conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
            done++;
        } else {
            left++;
        }
    }
    return left;
}

static void on_pace(struct wloop *loop, struct wtimer *t)
{
    struct drain *d = t->data;
    if (close_batch(d) == 0)
        wtimer_stop(loop, t);
}

void drain_begin(struct drain *d, struct connset *cs, double drain_time)
{
    d->cs = cs;
    size_t open = 0;
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &cs->conns)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        if (c->state == CONN_HTTP)
            conn_release(c);
        else if (c->state == CONN_OPEN)
            open++;
    }
    double ticks = floor(drain_time / DRAIN_TICK);
    if (ticks < 1)
        ticks = 1;
    d->batch = (size_t)ceil((double)open / ticks);
    if (d->batch == 0)
        d->batch = 1;
    if (close_batch(d) > 0) {
        wtimer_init(&d->pace, on_pace, d);
        wtimer_start(cs->loop, &d->pace, DRAIN_TICK, DRAIN_TICK);
    }
}

void drain_stop(struct drain *d)
{
    if (d->cs && wtimer_active(&d->pace))
        wtimer_stop(d->cs->loop, &d->pace);
}
